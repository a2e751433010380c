// A function without a placement attribute has no marker type: it cannot be registered,
// and neither can a type that merely has its name.
use pagewise_roles::{register, slot};

unsafe extern "C" fn evt_device_d0_entry(_device: usize, _previous_state: i32) -> i32 {
    0
}

#[allow(non_camel_case_types, dead_code)]
enum evt_device_self_managed_io_restart {}

fn main() {
    let _callback = register::<slot::EvtDeviceD0Entry, evt_device_d0_entry>();
    let _callback = register::<slot::EvtDeviceSelfManagedIoRestart, evt_device_self_managed_io_restart>();
}
