//! The power callbacks and the lock of the power-down section.
//!
//! - Return to D0 (`EvtDeviceD0Entry`, `EvtDeviceSelfManagedIoRestart`): resident,
//!   `#[resident(power_up)]`. They run at `PASSIVE_LEVEL`, so paging them would be
//!   *allowed*, but after a sleep the paging disk may still be waking up and the device
//!   would wait for it (PAGING.md section 1, rule 2). They never touch the registry.
//! - Leaving D0 (`EvtDeviceSelfManagedIoSuspend`, `EvtDeviceD0Exit`): `PAGEPWR`,
//!   `#[paged(power_down)]`. Pageable while the device is power-pageable (the paging
//!   device is then guaranteed to be in D0 during our transitions); locked in memory
//!   while it is not, because then they may run after the paging device has powered
//!   down. A device with special-file support keeps it locked from device add on:
//!   KMDF makes it nonpageable before `EvtDeviceUsageNotificationEx` runs
//!   (`pagewise_core::pageability` has the reasoning).
//! - `EvtDeviceUsageNotificationEx`: `PAGE`. It runs at `PASSIVE_LEVEL` outside power
//!   transitions; it counts the paging, hibernation and dump paths the device is on,
//!   which decide whether the registry may be written between transitions.
//!
//! Each callback logs itself in the transition ring: start time, IRQL, the power state
//! argument and `WdfDevStateIsNP(WdfDeviceGetDevicePowerState(device))`.

use pagewise_core::device_state::Transition;
use pagewise_core::pageability::LockAction;
use pagewise_core::power_state::wdf_dev_state_is_np;
use pagewise_macros::{paged, resident};
use wdk_sys::{
    BOOLEAN, NTSTATUS, PVOID, STATUS_SUCCESS, WDF_POWER_DEVICE_STATE, WDF_SPECIAL_FILE_TYPE,
    WDFDEVICE, call_unsafe_wdf_function_binding,
};

use crate::context::{DeviceContext, current_irql, interrupt_time};
use crate::persist::write_counters;
use crate::wdf::trace;

/// What a power callback observed when it started.
#[derive(Clone, Copy)]
struct Probe {
    start_100ns: u64,
    irql: u8,
    np: bool,
}

/// Start-of-callback measurements. No section of its own: inlined it is part of its
/// caller, out of line it is resident; it takes no lock and runs at the caller's
/// `PASSIVE_LEVEL`.
#[inline]
fn probe(device: WDFDEVICE) -> Probe {
    Probe {
        start_100ns: interrupt_time(),
        irql: current_irql(),
        np: device_state_is_np(device),
    }
}

/// The log entry of a callback that started with `probe`, ending now.
#[inline]
fn finish(probe: Probe, power_state: WDF_POWER_DEVICE_STATE, status: NTSTATUS) -> Transition {
    Transition {
        start_100ns: probe.start_100ns,
        end_100ns: interrupt_time(),
        irql: probe.irql,
        // The C enum is an `int` with small non-negative values; anything else is
        // logged as "unknown" by the portable code.
        power_state: u32::try_from(power_state).unwrap_or(u32::MAX),
        np: probe.np,
        status,
    }
}

/// `WdfDevStateIsNP(WdfDeviceGetDevicePowerState(device))`: true while the device is in
/// one of the framework's nonpageable power states, where the registry, paged pool and
/// pageable code are off limits. `PASSIVE_LEVEL` up to `DISPATCH_LEVEL`.
#[inline]
pub fn device_state_is_np(device: WDFDEVICE) -> bool {
    // SAFETY: `device` is the live device of the calling callback.
    let state = unsafe { call_unsafe_wdf_function_binding!(WdfDeviceGetDevicePowerState, device) };
    // A value that does not fit is not a state this driver knows: treat it as NP, the
    // conservative answer.
    u32::try_from(state).map_or(true, wdf_dev_state_is_np)
}

/// `EvtDeviceD0Entry`: the first callback of every return to D0. Counts and logs the
/// transition and starts the time-to-working measurement.
///
/// `PASSIVE_LEVEL`, on the power-up path: resident, so a resume never waits for the
/// paging disk. No registry access: the counters wait for a pageable point.
#[resident(power_up)]
pub(crate) unsafe extern "C" fn evt_device_d0_entry(
    device: WDFDEVICE,
    previous_state: WDF_POWER_DEVICE_STATE,
) -> NTSTATUS {
    let probe = probe(device);
    // SAFETY: called by the framework for this device.
    if let Some(context) = unsafe { DeviceContext::get(device) } {
        let transition = finish(probe, previous_state, STATUS_SUCCESS);
        context.with_state(|state| state.on_d0_entry(&transition));
    }
    STATUS_SUCCESS
}

/// `EvtDeviceSelfManagedIoRestart`: the last callback of a resume; the device is working
/// when it returns. Ends the time-to-working measurement and asks the persistence work
/// item to write the new counters once the system can page again.
///
/// `PASSIVE_LEVEL`, on the power-up path: resident. `WdfWorkItemEnqueue` is callable up
/// to `DISPATCH_LEVEL` and never waits.
#[resident(power_up)]
pub(crate) unsafe extern "C" fn evt_device_self_managed_io_restart(device: WDFDEVICE) -> NTSTATUS {
    let probe = probe(device);
    // SAFETY: called by the framework for this device.
    if let Some(context) = unsafe { DeviceContext::get(device) } {
        let transition = finish(probe, 0, STATUS_SUCCESS);
        let wanted = context.with_state(|state| {
            // The time to working is in the statistics; nothing to do with it here.
            let _time_to_working = state.on_self_managed_io_restart(&transition);
            state.persist_wanted()
        });
        if wanted {
            // SAFETY: the work item is a live child of this device.
            unsafe { call_unsafe_wdf_function_binding!(WdfWorkItemEnqueue, context.persist_item) };
        }
    }
    STATUS_SUCCESS
}

/// `EvtDeviceSelfManagedIoSuspend`: the first callback of leaving D0. Logs it.
///
/// `PASSIVE_LEVEL`, power-down path: `PAGEPWR`, locked while the device is
/// power-nonpageable.
#[paged(power_down)]
pub(crate) unsafe extern "C" fn evt_device_self_managed_io_suspend(device: WDFDEVICE) -> NTSTATUS {
    let probe = probe(device);
    // SAFETY: called by the framework for this device.
    if let Some(context) = unsafe { DeviceContext::get(device) } {
        let transition = finish(probe, 0, STATUS_SUCCESS);
        context.with_state(|state| state.on_self_managed_io_suspend(&transition));
    }
    STATUS_SUCCESS
}

/// `EvtDeviceD0Exit`: the last callback of leaving D0. Counts and logs it; in a pageable
/// state it also writes the lifetime counters, which is the cheapest pageable point
/// there is (the registry is guaranteed reachable). In an NP state the portable state
/// defers the write.
///
/// `PASSIVE_LEVEL`, power-down path: `PAGEPWR`. Its address is what
/// [`lock_power_down_section`] hands to `MmLockPagableCodeSection`.
#[paged(power_down)]
pub(crate) unsafe extern "C" fn evt_device_d0_exit(
    device: WDFDEVICE,
    target_state: WDF_POWER_DEVICE_STATE,
) -> NTSTATUS {
    let probe = probe(device);
    // SAFETY: called by the framework for this device.
    if let Some(context) = unsafe { DeviceContext::get(device) } {
        let transition = finish(probe, target_state, STATUS_SUCCESS);
        if let Some(counters) = context.with_state(|state| state.on_d0_exit(&transition)) {
            // The portable state said "pageable point": not NP and not effectively
            // nonpageable, so the registry may be touched here.
            let written = write_counters(device, counters);
            context.with_state(|state| state.persist_done(written));
        }
    }
    STATUS_SUCCESS
}

/// `EvtDeviceUsageNotificationEx`: the device enters or leaves a paging, hibernation or
/// dump path. On one, KMDF runs the device's transitions in NP states and the driver
/// defers registry writes. The power-down section is locked already (special-file
/// support locks it at device add); the lock action is for a notification KMDF should
/// not have delivered, which the portable state still handles safely.
///
/// `PASSIVE_LEVEL`, outside power transitions: `PAGE`. `MmLockPagableCodeSection`
/// needs `<= APC_LEVEL`, which holds here.
#[paged]
pub(crate) unsafe extern "C" fn evt_device_usage_notification_ex(
    device: WDFDEVICE,
    notification_type: WDF_SPECIAL_FILE_TYPE,
    is_in_notification_path: BOOLEAN,
) -> NTSTATUS {
    // SAFETY: called by the framework for this device.
    let Some(context) = (unsafe { DeviceContext::get(device) }) else {
        return STATUS_SUCCESS;
    };
    let file_type = u32::try_from(notification_type).unwrap_or(u32::MAX);
    let in_path = is_in_notification_path != 0;
    let decision = context.with_state(|state| state.on_usage_notification(file_type, in_path));
    // SAFETY: usage notifications are PnP-serialised with the other users of the handle.
    unsafe { apply_lock_action(context, decision.action) };
    trace!(
        DPFLTR_INFO_LEVEL,
        "usage notification type %u in_path %u status %08x",
        file_type,
        u32::from(in_path),
        decision.status
    );
    decision.status
}

/// Executes a [`LockAction`] of the portable pageability state machine, which locks only
/// when unlocked, unlocks only when locked, and asks for the lookup by address only once,
/// so lock and unlock calls pair up and `handle` is set before it is used.
///
/// `PASSIVE_LEVEL` (`MmLockPagableCodeSection`, `MmLockPagableSectionByHandle` and
/// `MmUnlockPagableImageSection` need `<= APC_LEVEL`); called from `EvtDriverDeviceAdd`,
/// `EvtDeviceUsageNotificationEx` and device cleanup, all pageable: `PAGE`.
///
/// # Safety
///
/// Only from those PnP-serialised callbacks of the device that owns `context`.
#[paged]
pub(crate) unsafe fn apply_lock_action(context: &DeviceContext, action: LockAction) {
    // SAFETY: forwarded from the caller.
    let handle = unsafe { context.power_down_handle() };
    // SAFETY: the callers are serialised (see `power_down_handle`), so this is the only
    // access to the handle while it runs.
    let kept = unsafe { *handle };
    match action {
        LockAction::None => {}
        LockAction::Lock => {
            debug_assert!(kept.is_null(), "power-down section looked up twice");
            // SAFETY: as above. The handle stays valid while the image is loaded, so it
            // is kept for every later lock and unlock.
            unsafe { *handle = lock_power_down_section() };
        }
        LockAction::Relock => {
            if !kept.is_null() {
                // SAFETY: `kept` came from MmLockPagableDataSection on this image, and the
                // portable state relocks only an unlocked section.
                unsafe { wdk_sys::ntddk::MmLockPagableSectionByHandle(kept) };
            }
        }
        LockAction::Unlock => {
            if !kept.is_null() {
                // SAFETY: `kept` came from MmLockPagableDataSection, and the portable
                // state unlocks only a locked section, once per lock.
                unsafe { wdk_sys::ntddk::MmUnlockPagableImageSection(kept) };
            }
        }
    }
}

/// Locks the whole `PAGEPWR` section in memory and returns its handle: the first lock
/// only, later ones go through `MmLockPagableSectionByHandle`.
///
/// `MmLockPagableCodeSection` is a macro in `wdm.h` that expands to
/// `MmLockPagableDataSection` (one kernel export serves both), so that is the binding
/// `wdk-sys` has. Any address inside the section selects it: the address of
/// [`evt_device_d0_exit`], which the placement attribute put there and the self-check
/// verifies. `PASSIVE_LEVEL`; `PAGE`, like its callers.
#[paged]
fn lock_power_down_section() -> PVOID {
    let address: PVOID = (evt_device_d0_exit as *const ()).cast_mut().cast();
    // SAFETY: `address` lies in a pageable section of this image, as the routine needs.
    unsafe { wdk_sys::ntddk::MmLockPagableDataSection(address) }
}
