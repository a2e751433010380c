// A default queue's EvtIoDeviceControl runs at up to DISPATCH_LEVEL, where a page fault
// is a bugcheck.
use pagewise_macros::paged;
use pagewise_roles::{register, slot};

#[paged]
unsafe extern "C" fn evt_io_device_control(
    _queue: usize,
    _request: usize,
    _output_buffer_length: usize,
    _input_buffer_length: usize,
    _io_control_code: u32,
) {
}

fn main() {
    let _callback = register::<slot::EvtIoDeviceControl, evt_io_device_control>();
}
