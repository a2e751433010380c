// Issue 18, point 1, first line: the check the table expands to, called by hand with the
// slot named apart from the field. Before, `pagewise_roles::__register_field` handed out the
// power-down function for the D0Exit slot and the line stored it in the D0Entry field. No
// function hands out a callback's value any more: the table stores it through
// `Placed::store` into a field type only the table can name.
#![allow(non_snake_case, non_camel_case_types, dead_code)]

#[derive(Default)]
pub struct WDF_PNPPOWER_EVENT_CALLBACKS {
    pub EvtDeviceD0Entry: Option<unsafe extern "C" fn(usize, i32) -> i32>,
    pub EvtDeviceD0Exit: Option<unsafe extern "C" fn(usize, i32) -> i32>,
}

mod power {
    use pagewise_macros::{paged, resident};

    #[resident(power_up)]
    pub(crate) unsafe extern "C" fn evt_device_d0_entry(_device: usize, _previous: i32) -> i32 {
        0
    }

    #[paged(power_down)]
    pub(crate) unsafe extern "C" fn evt_device_d0_exit(_device: usize, _target: i32) -> i32 {
        0
    }
}

mod callbacks {
    use crate::WDF_PNPPOWER_EVENT_CALLBACKS;
    use crate::power::{evt_device_d0_entry, evt_device_d0_exit};

    pagewise_macros::callbacks! {
        pub(crate) const REGISTERED: [u16];

        pub(crate) fn pnp_power(WDF_PNPPOWER_EVENT_CALLBACKS) {
            EvtDeviceD0Entry: evt_device_d0_entry => 6,
            EvtDeviceD0Exit: evt_device_d0_exit => 7,
        }
    }
}

mod device {
    use pagewise_roles::slot;

    use crate::WDF_PNPPOWER_EVENT_CALLBACKS;
    use crate::power::evt_device_d0_exit;

    pub(crate) fn device_add() -> WDF_PNPPOWER_EVENT_CALLBACKS {
        let mut pnp_power = crate::callbacks::pnp_power(WDF_PNPPOWER_EVENT_CALLBACKS::default());
        pnp_power.EvtDeviceD0Entry = Some(pagewise_roles::__register_field::<slot::EvtDeviceD0Exit, evt_device_d0_exit>());
        pnp_power
    }
}

fn main() {
    let _ = device::device_add();
}
