//! The power callbacks and the lock of the power-down section.
//!
//! - Return to D0 (`EvtDeviceD0Entry`, `EvtDeviceSelfManagedIoRestart`): resident,
//!   `#[resident(power_up)]`. They run at `PASSIVE_LEVEL`, so paging them would be
//!   *allowed*, but after a sleep the paging disk may still be waking up and the device
//!   would wait for it (docs/paging.md). They never touch the registry.
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
//! Each callback reads its start time, the IRQL and
//! `WdfDevStateIsNP(WdfDeviceGetDevicePowerState(device))` as it starts ([`PowerStart`]),
//! and logs itself in the transition ring at its end through [`record_power`], so that a
//! record's duration, and the time to working that ends with
//! `EvtDeviceSelfManagedIoRestart`, include the callback's own work.
//!
//! The `PAGEPWR` functions start with `paged_code!()` (inserted by `#[paged(power_down)]`)
//! like any pageable function: it asserts `IRQL <= APC_LEVEL`, which is what makes touching
//! pageable code allowed at all. Whether the pages are *present* is a different question,
//! answered by the lock, not by an IRQL check: while the device is power-nonpageable the
//! section is locked and these functions never fault; while it is power-pageable they may
//! fault, which is allowed at `PASSIVE_LEVEL` because the paging device is then guaranteed
//! to be in D0 during the device's transitions.

use pagewise_core::device_state::Transition;
use pagewise_core::locked::{Op, PowerCallback, Reply};
use pagewise_core::pageability::{LockAction, Pageability};
use pagewise_core::power_state::wdf_dev_state_is_np;
use pagewise_macros::{paged, resident, resident_wdf_call};
use pagewise_roles::Placed;
use wdk_sys::{
    BOOLEAN, KIRQL, NTSTATUS, PVOID, STATUS_SUCCESS, WDF_POWER_DEVICE_STATE, WDF_SPECIAL_FILE_TYPE,
    WDFDEVICE,
};

use crate::context::{DeviceContext, current_irql, interrupt_time};
use crate::persist::write_counters;
use crate::wdf::trace;

/// What a power callback saw as it started: the interrupt time, the IRQL and
/// `WdfDevStateIsNP(WdfDeviceGetDevicePowerState(device))`.
#[derive(Clone, Copy)]
pub(crate) struct PowerStart {
    start_100ns: u64,
    irql: KIRQL,
    np: bool,
}

impl PowerStart {
    /// Reads them now, first thing in a power callback.
    ///
    /// Resident and not inlined: the power-up callbacks (resident), the power-down ones
    /// (`PAGEPWR`, which may call resident code) and `EvtDeviceSelfManagedIoInit` (`PAGE`)
    /// share one copy.
    ///
    /// # Safety
    ///
    /// `device` is the live device of the calling power callback.
    #[inline(never)]
    pub(crate) unsafe fn now(device: WDFDEVICE) -> Self {
        let start_100ns = interrupt_time();
        let irql = current_irql();
        // SAFETY: forwarded from the caller.
        let np = unsafe { device_state_is_np(device) };
        PowerStart {
            start_100ns,
            irql,
            np,
        }
    }
}

/// Records one power callback of `device` in the portable state, last thing before it
/// returns: what [`PowerStart::now`] read as it started, the time now as its end, and its
/// power-state argument. Returns the device's context with what the state asks for; `None`
/// before the context exists.
///
/// Resident and not inlined, for the same callers as [`PowerStart::now`]. It takes the spin
/// lock once, through [`DeviceContext::locked`].
///
/// # Safety
///
/// `device` is the live device of the calling power callback, and `start` is what
/// [`PowerStart::now`] read as that callback started.
#[inline(never)]
pub(crate) unsafe fn record_power<'a>(
    device: WDFDEVICE,
    callback: PowerCallback,
    power_state: WDF_POWER_DEVICE_STATE,
    start: PowerStart,
) -> Option<(&'a DeviceContext, Reply)> {
    // SAFETY: called from a callback of this device (the caller's contract).
    let context = unsafe { DeviceContext::get(device) }?;
    let transition = Transition {
        start_100ns: start.start_100ns,
        end_100ns: interrupt_time(),
        irql: start.irql,
        // The C enum is an `int` with small non-negative values; anything else is
        // logged as "unknown" by the portable code.
        power_state: u32::try_from(power_state).unwrap_or(u32::MAX),
        np: start.np,
        status: STATUS_SUCCESS,
    };
    Some((context, context.locked(Op::Power(callback, transition))))
}

/// `WdfDevStateIsNP(WdfDeviceGetDevicePowerState(device))`: true while the device is in
/// one of the framework's nonpageable power states, where the registry, paged pool and
/// pageable code are off limits. `PASSIVE_LEVEL` up to `DISPATCH_LEVEL`.
///
/// # Safety
///
/// `device` is a live WDFDEVICE, and the call comes from one of its `PnP` or power
/// callbacks: KMDF defines the value it reads only there.
#[inline]
pub unsafe fn device_state_is_np(device: WDFDEVICE) -> bool {
    // SAFETY: `device` is live (the caller's contract).
    let state = unsafe { resident_wdf_call!(WdfDeviceGetDevicePowerState, device) };
    // No answer, or a value that does not fit, is not a state this driver knows: treat it
    // as NP, the conservative answer.
    state
        .and_then(|state| u32::try_from(state).ok())
        .is_none_or(wdf_dev_state_is_np)
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
    // SAFETY: the framework calls this for its live device; `start` is read first.
    unsafe {
        let start = PowerStart::now(device);
        let _ = record_power(device, PowerCallback::D0Entry, previous_state, start);
    }
    STATUS_SUCCESS
}

/// `EvtDeviceSelfManagedIoRestart`: the last callback of a resume; the device is working
/// when it returns. Ends the time-to-working measurement (its record is the callback's
/// last act but queuing the work item) and asks the persistence work item to write the new
/// counters outside the transition.
///
/// `PASSIVE_LEVEL`, on the power-up path: resident. `WdfWorkItemEnqueue` is callable up
/// to `DISPATCH_LEVEL` and never waits.
#[resident(power_up)]
pub(crate) unsafe extern "C" fn evt_device_self_managed_io_restart(device: WDFDEVICE) -> NTSTATUS {
    // SAFETY: the framework calls this for its live device; `start` is read first.
    let recorded = unsafe {
        let start = PowerStart::now(device);
        record_power(device, PowerCallback::SelfManagedIoRestart, 0, start)
    };
    if let Some((context, reply)) = recorded
        && let (_, true) = reply.into_persist()
    {
        // SAFETY: the work item is a live child of this device.
        let _ = unsafe { resident_wdf_call!(WdfWorkItemEnqueue, context.persist_item) };
    }
    STATUS_SUCCESS
}

/// `EvtDeviceSelfManagedIoSuspend`: the first callback of leaving D0. Logs it.
///
/// `PASSIVE_LEVEL`, power-down path: `PAGEPWR`, locked while the device is
/// power-nonpageable.
#[paged(power_down)]
pub(crate) unsafe extern "C" fn evt_device_self_managed_io_suspend(device: WDFDEVICE) -> NTSTATUS {
    // SAFETY: the framework calls this for its live device; `start` is read first.
    unsafe {
        let start = PowerStart::now(device);
        let _ = record_power(device, PowerCallback::SelfManagedIoSuspend, 0, start);
    }
    STATUS_SUCCESS
}

/// `EvtDeviceD0Exit`: the last callback of leaving D0. Counts it; on a device that may
/// write from a transition (chosen power-pageable, no special-file support, on no path)
/// and in a pageable framework state it also writes the lifetime counters, the cheapest
/// pageable point there is (the registry is guaranteed reachable). Otherwise the portable
/// state defers the write to the work item or `EvtDeviceReleaseHardware`. Logs itself
/// last, so the record's duration includes the write.
///
/// `PASSIVE_LEVEL`, power-down path: `PAGEPWR`. Its address is what
/// [`lock_power_down_section`] hands to `MmLockPagableCodeSection`.
#[paged(power_down)]
pub(crate) unsafe extern "C" fn evt_device_d0_exit(
    device: WDFDEVICE,
    target_state: WDF_POWER_DEVICE_STATE,
) -> NTSTATUS {
    // SAFETY: the framework calls this for its live device.
    let start = unsafe { PowerStart::now(device) };
    // SAFETY: as above.
    if let Some(context) = unsafe { DeviceContext::get(device) }
        && let (Some(counters), _) = context
            .locked(Op::D0ExitBegin { np: start.np })
            .into_persist()
    {
        // The portable state allows the write; the framework's own state is asked once
        // more right where the registry is touched (WdfDevStateIsNP, as the guide has it),
        // so the guard stands in the image next to the write, where `cargo pagecheck` and
        // `cargo pagerun` check it.
        // SAFETY: `device` is live and this is PASSIVE_LEVEL.
        let written = !unsafe { device_state_is_np(device) }
            // SAFETY: as above; the framework's state is not NP.
            && unsafe { write_counters(device, counters) };
        let _ = context.locked(Op::PersistDone(written));
    }
    // SAFETY: as above; `start` was read as this callback started.
    let _ = unsafe { record_power(device, PowerCallback::D0Exit, target_state, start) };
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
    // Only PnP callbacks change the pageability state, and the framework runs them one
    // at a time: the transition runs on a copy, here in pageable code, and the result is
    // published under the lock for the power callbacks and the IOCTLs to read.
    let mut pageability = Pageability::new();
    let _ = context.locked(Op::ReadPageability(&mut pageability));
    let decision = pageability.on_usage_notification(file_type, in_path);
    let _ = context.locked(Op::WritePageability(pageability));
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
        // `Refuse`: the portable state asks for no lock when the self-check did not find
        // the lock target in PAGEPWR; EvtDriverDeviceAdd fails the device on this answer,
        // and a usage notification is vetoed. Nothing to execute.
        LockAction::None | LockAction::Refuse => {}
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
/// [`evt_device_d0_exit`], which the placement attribute put there. The portable state asks
/// for this lock only when the self-check found that function in `PAGEPWR`
/// (`Pageability::set_lock_target_found`); otherwise it answers `LockAction::Refuse` and
/// nothing reaches here. `PASSIVE_LEVEL`; `PAGE`, like its callers.
#[paged]
fn lock_power_down_section() -> PVOID {
    // A callback has no value under its name outside the registration table; its address,
    // a number, is what the placement attribute exposes.
    let address: PVOID = <evt_device_d0_exit as Placed>::ADDRESS.cast_mut().cast();
    // SAFETY: `address` lies in a pageable section of this image, as the routine needs.
    unsafe { wdk_sys::ntddk::MmLockPagableDataSection(address) }
}
