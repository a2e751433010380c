//! Correctly placed functions register in every kind of slot, and what `register` returns
//! is the function itself.
#![deny(warnings, missing_docs)]

use pagewise_roles::{Placed, register, slot};

/// Callbacks with stand-in WDF types; public and documented so that `missing_docs` checks
/// the generated marker types too.
pub mod callbacks {
    use pagewise_macros::{init, paged, resident};

    /// `NTSTATUS`
    pub type Status = i32;

    /// DriverEntry-like.
    #[init]
    #[unsafe(export_name = "DriverEntry")]
    pub unsafe extern "C" fn driver_entry(_driver: usize, _path: usize) -> Status {
        1
    }

    /// EvtDriverDeviceAdd.
    #[paged]
    pub unsafe extern "C" fn device_add(_driver: usize, _init: usize) -> Status {
        2
    }

    /// EvtDeviceD0Entry.
    #[resident(power_up)]
    pub unsafe extern "C" fn d0_entry(_device: usize, _previous: i32) -> Status {
        3
    }

    /// EvtDeviceD0Exit.
    #[paged(power_down)]
    pub unsafe extern "C" fn d0_exit(_device: usize, _target: i32) -> Status {
        4
    }

    /// EvtIoDeviceControl of a dispatch-level queue.
    #[resident(dispatch)]
    pub unsafe extern "C" fn io_device_control(_q: usize, _r: usize, _o: usize, _i: usize, _code: u32) {}

    /// EvtTimerFunc.
    #[resident(dispatch)]
    pub(crate) unsafe extern "C" fn timer(_timer: usize) {}

    /// EvtDeviceSelfManagedIoSuspend, kept resident.
    #[resident(power_up)]
    pub unsafe extern "C" fn suspend(_device: usize) -> Status {
        5
    }
}

use callbacks::*;

fn main() {
    // SAFETY: the stand-in callbacks only return constants.
    unsafe {

        // Passive slots take everything but INIT.
        assert_eq!(register::<slot::EvtDriverDeviceAdd, device_add>()(0, 0), 2);
        let _: unsafe extern "C" fn(usize) -> Status = register::<slot::EvtDeviceSelfManagedIoInit, suspend>();
        let _ = register::<slot::EvtDriverDeviceAdd, d0_entry>();
        let _ = register::<slot::EvtDriverDeviceAdd, d0_exit>();
        let _ = register::<slot::EvtWorkItem, timer>();

        // Power-up slots take power-up only.
        assert_eq!(register::<slot::EvtDeviceD0Entry, d0_entry>()(0, 0), 3);

        // Power-down slots take the power-down section or resident code.
        assert_eq!(register::<slot::EvtDeviceD0Exit, d0_exit>()(0, 0), 4);
        assert_eq!(register::<slot::EvtDeviceD0Exit, d0_entry>()(0, 0), 3);
        assert_eq!(register::<slot::EvtDeviceSelfManagedIoSuspend, suspend>()(0), 5);

        // Dispatch-level slots take resident code.
        register::<slot::EvtIoDeviceControl, io_device_control>()(0, 0, 0, 0, 0);
        register::<slot::EvtTimerFunc, timer>()(0);
        let _ = register::<slot::EvtIoStop, io_device_control>();
    }
    assert_eq!(
        register::<slot::EvtDriverDeviceAdd, device_add>() as *const (),
        <device_add as Placed>::ADDRESS
    );
    assert!(!<driver_entry as Placed>::ADDRESS.is_null());
}
