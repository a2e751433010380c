// The kind selects the slot: a pageable cleanup is fine for the device object, whose
// cleanup runs at PASSIVE_LEVEL, and refused for any other object, whose cleanup may run
// at DISPATCH_LEVEL. Likewise a pageable EvtIoDeviceControl needs a passive-level queue.
#![allow(non_snake_case, non_camel_case_types, dead_code)]

use pagewise_macros::{callbacks, paged};

#[derive(Default)]
struct WDF_OBJECT_ATTRIBUTES {
    EvtCleanupCallback: Option<unsafe extern "C" fn(usize)>,
}

#[derive(Default)]
struct WDF_IO_QUEUE_CONFIG {
    EvtIoDeviceControl: Option<unsafe extern "C" fn(usize, usize, usize, usize, u32)>,
}

#[paged]
unsafe extern "C" fn evt_cleanup(_object: usize) {}

#[paged]
unsafe extern "C" fn evt_io_device_control(_q: usize, _r: usize, _o: usize, _i: usize, _c: u32) {}

callbacks! {
    const REGISTERED: [u16];

    fn device_attributes(WDF_OBJECT_ATTRIBUTES(device)) {
        EvtCleanupCallback: evt_cleanup => 1,
    }

    fn timer_attributes(WDF_OBJECT_ATTRIBUTES(object)) {
        EvtCleanupCallback: evt_cleanup => 2,
    }

    fn passive_queue(WDF_IO_QUEUE_CONFIG(passive)) {
        EvtIoDeviceControl: evt_io_device_control => 3,
    }

    fn dispatch_queue(WDF_IO_QUEUE_CONFIG) {
        EvtIoDeviceControl: evt_io_device_control => 4,
    }
}

fn main() {}
