//! A registration table over stand-in WDF structures: each function fills exactly its
//! fields with the registered functions and keeps the rest of the structure, and the list
//! holds every entry in table order with its id, role and address.
#![deny(warnings)]
#![allow(non_snake_case, non_camel_case_types)]

use pagewise_macros::{callbacks, init, paged, resident};
use pagewise_roles::{Placed, Role};

type Status = i32;
type DeviceFn = unsafe extern "C" fn(usize) -> Status;
type PowerFn = unsafe extern "C" fn(usize, i32) -> Status;
type QueueFn = unsafe extern "C" fn(usize, usize, usize, usize, u32);

#[derive(Clone, Copy, Default)]
struct WDF_DRIVER_CONFIG {
    Size: u32,
    EvtDriverDeviceAdd: Option<unsafe extern "C" fn(usize, usize) -> Status>,
    EvtDriverUnload: Option<unsafe extern "C" fn(usize)>,
}

#[derive(Clone, Copy, Default)]
struct WDF_PNPPOWER_EVENT_CALLBACKS {
    Size: u32,
    EvtDeviceD0Entry: Option<PowerFn>,
    EvtDeviceD0Exit: Option<PowerFn>,
    EvtDeviceSelfManagedIoRestart: Option<DeviceFn>,
    EvtDeviceSelfManagedIoSuspend: Option<DeviceFn>,
}

#[derive(Clone, Copy, Default)]
struct WDF_IO_QUEUE_CONFIG {
    PowerManaged: u32,
    EvtIoDeviceControl: Option<QueueFn>,
}

#[derive(Clone, Copy, Default)]
struct WDF_OBJECT_ATTRIBUTES {
    EvtCleanupCallback: Option<unsafe extern "C" fn(usize)>,
}

#[derive(Clone, Copy, Default)]
struct WDF_TIMER_CONFIG {
    Period: u32,
    EvtTimerFunc: Option<unsafe extern "C" fn(usize)>,
}

#[derive(Clone, Copy, Default)]
struct WDF_WORKITEM_CONFIG {
    EvtWorkItemFunc: Option<unsafe extern "C" fn(usize)>,
}

#[init]
#[unsafe(export_name = "DriverEntry")]
unsafe extern "C" fn driver_entry(_driver: usize, _path: usize) -> Status {
    0
}

#[paged]
unsafe extern "C" fn device_add(_driver: usize, _init: usize) -> Status {
    1
}

#[paged]
unsafe extern "C" fn unload(_driver: usize) {}

#[resident(power_up)]
unsafe extern "C" fn d0_entry(_device: usize, _previous: i32) -> Status {
    2
}

#[paged(power_down)]
unsafe extern "C" fn d0_exit(_device: usize, _target: i32) -> Status {
    3
}

#[resident(power_up)]
unsafe extern "C" fn restart(_device: usize) -> Status {
    4
}

#[paged(power_down)]
unsafe extern "C" fn suspend(_device: usize) -> Status {
    5
}

#[paged]
unsafe extern "C" fn control(_q: usize, _r: usize, _o: usize, _i: usize, _code: u32) {}

#[resident(dispatch)]
unsafe extern "C" fn hold(_q: usize, _r: usize, _o: usize, _i: usize, _code: u32) {}

#[paged]
unsafe extern "C" fn device_cleanup(_object: usize) {}

#[resident(dispatch)]
unsafe extern "C" fn timer(_timer: usize) {}

#[paged]
unsafe extern "C" fn work_item(_item: usize) {}

callbacks! {
    /// Every registration.
    const REGISTERED: [u16];

    /// The driver object.
    fn driver_config(WDF_DRIVER_CONFIG) {
        EvtDriverDeviceAdd: device_add => 2,
        EvtDriverUnload: unload => 3,
    }

    /// Power callbacks.
    fn pnp_power(WDF_PNPPOWER_EVENT_CALLBACKS) {
        EvtDeviceD0Entry: d0_entry => 6,
        EvtDeviceD0Exit: d0_exit => 7,
        EvtDeviceSelfManagedIoRestart: restart => 9,
        EvtDeviceSelfManagedIoSuspend: suspend => 10,
    }

    fn control_queue(WDF_IO_QUEUE_CONFIG(passive)) {
        EvtIoDeviceControl: control => 15,
    }

    fn hold_queue(WDF_IO_QUEUE_CONFIG) {
        EvtIoDeviceControl: hold => 16,
    }

    fn device_attributes(WDF_OBJECT_ATTRIBUTES(device)) {
        EvtCleanupCallback: device_cleanup => 14,
    }

    fn hold_timer(WDF_TIMER_CONFIG) {
        EvtTimerFunc: timer => 17,
    }

    fn persist(WDF_WORKITEM_CONFIG) {
        EvtWorkItemFunc: work_item => 18,
    }
}

/// True when the field holds the function placed as `P`. A callback has no value under its
/// name, so the comparison is by address.
fn same<P: Placed>(stored: Option<P::Fn>) -> bool {
    stored.is_some_and(|function| {
        assert_eq!(size_of::<P::Fn>(), size_of::<*const ()>());
        // SAFETY: `P::Fn` is a function-pointer type, the size of a data pointer.
        let address: *const () = unsafe { std::mem::transmute_copy(&function) };
        address == P::ADDRESS
    })
}

fn main() {
    assert!(!<driver_entry as Placed>::ADDRESS.is_null());

    let config = driver_config(WDF_DRIVER_CONFIG {
        Size: 24,
        ..WDF_DRIVER_CONFIG::default()
    });
    assert_eq!(config.Size, 24, "the caller's fields are kept");
    assert!(same::<device_add>(config.EvtDriverDeviceAdd));
    assert!(same::<unload>(config.EvtDriverUnload));

    let power = pnp_power(WDF_PNPPOWER_EVENT_CALLBACKS::default());
    assert!(same::<d0_entry>(power.EvtDeviceD0Entry));
    assert!(same::<d0_exit>(power.EvtDeviceD0Exit));
    assert!(same::<restart>(power.EvtDeviceSelfManagedIoRestart));
    assert!(same::<suspend>(power.EvtDeviceSelfManagedIoSuspend));

    let queue = hold_queue(WDF_IO_QUEUE_CONFIG {
        PowerManaged: 1,
        ..WDF_IO_QUEUE_CONFIG::default()
    });
    assert_eq!(queue.PowerManaged, 1);
    assert!(same::<hold>(queue.EvtIoDeviceControl));
    assert!(same::<control>(
        control_queue(WDF_IO_QUEUE_CONFIG::default()).EvtIoDeviceControl
    ));
    assert!(
        device_attributes(WDF_OBJECT_ATTRIBUTES::default())
            .EvtCleanupCallback
            .is_some()
    );
    assert_eq!(
        hold_timer(WDF_TIMER_CONFIG {
            Period: 5,
            ..Default::default()
        })
        .Period,
        5
    );
    assert!(
        persist(WDF_WORKITEM_CONFIG::default())
            .EvtWorkItemFunc
            .is_some()
    );

    let expected: [(u16, Role, *const ()); 11] = [
        (2, Role::Paged, <device_add as Placed>::ADDRESS),
        (3, Role::Paged, <unload as Placed>::ADDRESS),
        (6, Role::PowerUp, <d0_entry as Placed>::ADDRESS),
        (7, Role::PowerDown, <d0_exit as Placed>::ADDRESS),
        (9, Role::PowerUp, <restart as Placed>::ADDRESS),
        (10, Role::PowerDown, <suspend as Placed>::ADDRESS),
        (15, Role::Paged, <control as Placed>::ADDRESS),
        (16, Role::Dispatch, <hold as Placed>::ADDRESS),
        (14, Role::Paged, <device_cleanup as Placed>::ADDRESS),
        (17, Role::Dispatch, <timer as Placed>::ADDRESS),
        (18, Role::Paged, <work_item as Placed>::ADDRESS),
    ];
    assert_eq!(REGISTERED.len(), expected.len(), "one entry per field");
    for (registration, (id, role, function)) in REGISTERED.iter().zip(expected) {
        assert_eq!((registration.id, registration.role), (id, role));
        assert_eq!(registration.function, function);
    }
}
