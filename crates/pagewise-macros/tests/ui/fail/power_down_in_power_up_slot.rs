// The power-down section is pageable while the device is power-pageable: not for the
// return-to-D0 path.
use pagewise_macros::paged;
use pagewise_roles::{register, slot};

#[paged(power_down)]
unsafe extern "C" fn evt_device_self_managed_io_restart(_device: usize) -> i32 {
    0
}

fn main() {
    let _callback = register::<slot::EvtDeviceSelfManagedIoRestart, evt_device_self_managed_io_restart>();
}
