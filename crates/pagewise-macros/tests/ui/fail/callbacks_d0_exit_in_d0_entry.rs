// The mistake of putting the D0 exit function in the D0 entry field
// in the registration table: the field names the slot, so the power-down function is
// checked against EvtDeviceD0Entry's slot and refused there.
#![allow(non_snake_case, non_camel_case_types, dead_code)]

use pagewise_macros::{callbacks, paged, resident};

#[derive(Default)]
struct WDF_PNPPOWER_EVENT_CALLBACKS {
    EvtDeviceD0Entry: Option<unsafe extern "C" fn(usize, i32) -> i32>,
    EvtDeviceD0Exit: Option<unsafe extern "C" fn(usize, i32) -> i32>,
}

#[resident(power_up)]
unsafe extern "C" fn evt_device_d0_entry(_device: usize, _previous_state: i32) -> i32 {
    0
}

#[paged(power_down)]
unsafe extern "C" fn evt_device_d0_exit(_device: usize, _target_state: i32) -> i32 {
    0
}

callbacks! {
    const REGISTERED: [u16];

    fn pnp_power(WDF_PNPPOWER_EVENT_CALLBACKS) {
        EvtDeviceD0Entry: evt_device_d0_exit => 6,
        EvtDeviceD0Exit: evt_device_d0_exit => 7,
    }
}

fn main() {
    let _ = pnp_power(WDF_PNPPOWER_EVENT_CALLBACKS::default());
}
