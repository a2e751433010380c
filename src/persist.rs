//! Lifetime counters in the device's hardware key, written only at pageable points.
//!
//! The registry lives in paged pool and on disk. The resident power-up path therefore
//! never writes it: it records the new counts in the portable state and, when the state
//! says a write can happen (`DeviceState::persist_wanted`: counts pending and the device
//! on no special-file path), queues a `WDFWORKITEM` that writes them at `PASSIVE_LEVEL`,
//! outside any power transition, whether the device is power-pageable or not: nothing in
//! a transition waits for the item, so a write that has to wait for paging I/O delays only
//! itself. `EvtDeviceD0Exit` writes too, but only on a device that may touch the registry
//! from a transition (chosen power-pageable, without special-file support, on no path:
//! `Pageability::transition_writes_allowed`); `EvtDeviceReleaseHardware` writes what is
//! left, after `WdfWorkItemFlush` has waited out any write still running.
//!
//! At shutdown KMDF calls `EvtDeviceD0Exit` (target `D3Final`) and no
//! `EvtDeviceReleaseHardware`: a device that may not write from that `D0Exit` loses the
//! count of that one exit at each reboot; everything before it was written by a work item.
//!
//! The decisions come from the driver's own state, not from
//! `WdfDeviceGetDevicePowerState`: KMDF defines that value only inside `PnP` and power
//! callbacks, and with special-file support it clears `DO_POWER_PAGABLE` before either its
//! state or the driver knows (see `pagewise_core::pageability`).

use pagewise_core::deferred::PersistedCounters;
use pagewise_core::locked::Op;
use pagewise_core::settings::{LIFETIME_D0_ENTRIES_W, LIFETIME_D0_EXITS_W};
use pagewise_macros::paged;
use wdk::nt_success;
use wdk_sys::{
    KEY_SET_VALUE, PLUGPLAY_REGKEY_DEVICE, WDF_NO_OBJECT_ATTRIBUTES, WDFDEVICE, WDFKEY,
    WDFWORKITEM, call_unsafe_wdf_function_binding,
};

use crate::context::DeviceContext;
use crate::wdf::unicode_string;

/// Writes both counters to the device's hardware key; true when both writes succeeded.
///
/// `PASSIVE_LEVEL` (`WdfDeviceOpenRegistryKey` requires it). `PAGEPWR`, not `PAGE`:
/// `EvtDeviceD0Exit` calls it, and a power-down function must only call code that is
/// locked whenever it is (it is called there only in a pageable state, but keeping it in
/// the locked section makes that a property of the image, not of the call site). Its
/// `paged_code!()` checks the IRQL, which is what allows a page fault here; the lock, not
/// that check, is what keeps the pages present while the device is power-nonpageable.
///
/// # Safety
///
/// `device` is a live WDFDEVICE of this driver, and the caller runs at `PASSIVE_LEVEL` at a
/// point where the registry may be touched: outside a power transition, or in one the
/// portable state allowed (`Pageability::transition_writes_allowed`, not NP).
#[paged(power_down)]
pub(crate) unsafe fn write_counters(device: WDFDEVICE, counters: PersistedCounters) -> bool {
    let mut key: WDFKEY = core::ptr::null_mut();
    // SAFETY: `device` is live; the out-pointer is a local. KEY_SET_VALUE is all a value
    // write needs.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDeviceOpenRegistryKey,
            device,
            PLUGPLAY_REGKEY_DEVICE,
            KEY_SET_VALUE,
            WDF_NO_OBJECT_ATTRIBUTES,
            &raw mut key,
        )
    };
    if !nt_success(status) {
        return false;
    }
    let entries = unicode_string(LIFETIME_D0_ENTRIES_W);
    let exits = unicode_string(LIFETIME_D0_EXITS_W);
    // SAFETY: `key` was just opened; the names are valid UNICODE_STRINGs over 'static
    // UTF-16 constants.
    let first = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfRegistryAssignULong,
            key,
            &raw const entries,
            counters.d0_entries,
        )
    };
    // SAFETY: as above.
    let second = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfRegistryAssignULong,
            key,
            &raw const exits,
            counters.d0_exits,
        )
    };
    // SAFETY: closes the key opened above, once.
    unsafe { call_unsafe_wdf_function_binding!(WdfRegistryClose, key) };
    nt_success(first) && nt_success(second)
}

/// Writes pending counters now unless the device has gone onto a special-file path since
/// the item was queued. Returns nothing: a refused (counted as deferred) or failed
/// write stays pending in the portable state.
///
/// `PASSIVE_LEVEL`, off the power path: `PAGE`.
#[paged]
fn persist_if_pageable(device: WDFDEVICE, context: &DeviceContext) {
    if let (Some(counters), _) = context.locked(Op::TakePersistInWorkItem).into_persist() {
        // SAFETY: `device` is live; a work item runs at PASSIVE_LEVEL, outside any power
        // transition of the device.
        let written = unsafe { write_counters(device, counters) };
        let _ = context.locked(Op::PersistDone(written));
    }
}

/// `EvtWorkItem` of the persistence work item, queued by the resident power-up path.
///
/// `PASSIVE_LEVEL`, not a power callback: `PAGE`.
#[paged]
pub(crate) unsafe extern "C" fn evt_persist_work_item(work_item: WDFWORKITEM) {
    // SAFETY: the framework passes the live work item, whose parent is the device.
    let device: WDFDEVICE =
        unsafe { call_unsafe_wdf_function_binding!(WdfWorkItemGetParentObject, work_item) }.cast();
    // SAFETY: the parent of the work item is our device.
    if let Some(context) = unsafe { DeviceContext::get(device) } {
        persist_if_pageable(device, context);
    }
}
