// INIT is discarded when DriverEntry returns; EvtDriverDeviceAdd runs later.
use pagewise_macros::init;
use pagewise_roles::{register, slot};

#[init]
unsafe extern "C" fn evt_driver_device_add(_driver: usize, _device_init: usize) -> i32 {
    0
}

fn main() {
    let _callback = register::<slot::EvtDriverDeviceAdd, evt_driver_device_add>();
}
