// A field the structure has no slot for, and a field whose rules depend on the object,
// written without the kind: neither can be registered.
#![allow(non_snake_case, non_camel_case_types, dead_code)]

use pagewise_macros::{callbacks, paged, resident};

#[derive(Default)]
struct WDF_PNPPOWER_EVENT_CALLBACKS {
    EvtTimerFunc: Option<unsafe extern "C" fn(usize)>,
}

#[derive(Default)]
struct WDF_OBJECT_ATTRIBUTES {
    EvtCleanupCallback: Option<unsafe extern "C" fn(usize)>,
}

#[resident(dispatch)]
unsafe extern "C" fn evt_timer(_timer: usize) {}

#[paged]
unsafe extern "C" fn evt_cleanup(_object: usize) {}

callbacks! {
    const REGISTERED: [u16];

    fn pnp_power(WDF_PNPPOWER_EVENT_CALLBACKS) {
        EvtTimerFunc: evt_timer => 1,
    }

    fn attributes(WDF_OBJECT_ATTRIBUTES) {
        EvtCleanupCallback: evt_cleanup => 2,
    }
}

fn main() {}
