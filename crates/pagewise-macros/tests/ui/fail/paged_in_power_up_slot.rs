// A pageable function as EvtDeviceD0Entry: on resume it would wait for the paging disk.
use pagewise_macros::paged;
use pagewise_roles::{register, slot};

#[paged]
unsafe extern "C" fn evt_device_d0_entry(_device: usize, _previous_state: i32) -> i32 {
    0
}

fn main() {
    let _callback: Option<unsafe extern "C" fn(usize, i32) -> i32> =
        Some(register::<slot::EvtDeviceD0Entry, evt_device_d0_entry>());
}
