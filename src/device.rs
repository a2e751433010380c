//! `EvtDriverDeviceAdd` and the device's passive-level Plug and Play callbacks.
//!
//! `EvtDriverDeviceAdd` is where power pageability is chosen: the per-device settings
//! are read from the hardware key *before* `WdfDeviceCreate`, because
//! `WdfDeviceInitSetPowerPageable` / `WdfDeviceInitSetPowerNotPageable` work only on the
//! `WDFDEVICE_INIT`. The decision itself is `pagewise_core::settings::Settings::from_raw`.
//!
//! Every function here runs at `PASSIVE_LEVEL` and off the return-to-D0 path, so all of
//! them are `PAGE` (`#[paged]`).

use pagewise_core::deferred::PersistedCounters;
use pagewise_core::locked::{Op, PowerCallback};
use pagewise_core::pageability::LockAction;
use pagewise_core::settings::{
    DEVICE_SDDL_W, IDLE_TIMEOUT_MS_W, LIFETIME_D0_ENTRIES_W, LIFETIME_D0_EXITS_W, POWER_PAGEABLE_W,
    RawSettings, SPECIAL_FILE_SUPPORT_W, Settings,
};
use pagewise_ioctl::DEVICE_INTERFACE_GUID;
use pagewise_macros::paged;
use wdk::nt_success;
use wdk_sys::{
    _DEVICE_POWER_STATE, _WDF_POWER_POLICY_IDLE_TIMEOUT_TYPE,
    _WDF_POWER_POLICY_S0_IDLE_CAPABILITIES, _WDF_POWER_POLICY_S0_IDLE_USER_CONTROL,
    _WDF_SPECIAL_FILE_TYPE, _WDF_TRI_STATE, GUID, KEY_QUERY_VALUE, NTSTATUS,
    PLUGPLAY_REGKEY_DEVICE, PWDFDEVICE_INIT, STATUS_INVALID_IMAGE_FORMAT, STATUS_SUCCESS, ULONG,
    WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS, WDF_NO_OBJECT_ATTRIBUTES, WDF_OBJECT_ATTRIBUTES,
    WDF_PNPPOWER_EVENT_CALLBACKS, WDF_TIMER_CONFIG, WDF_WORKITEM_CONFIG, WDFCMRESLIST, WDFDEVICE,
    WDFDRIVER, WDFKEY, WDFOBJECT, WDFQUEUE, WDFSPINLOCK, WDFTIMER, WDFWORKITEM,
    call_unsafe_wdf_function_binding,
};

use crate::callbacks;
use crate::context::{DEVICE_CONTEXT_TYPE, DeviceContext, NewContext};
use crate::persist::write_counters;
use crate::power::{PowerStart, apply_lock_action, record_power};
use crate::queue::{create_queues, release_hold};
use crate::selfcheck::check_placements;
use crate::wdf::{object_attributes, structure_size, trace, unicode_string};

/// `DEVICE_INTERFACE_GUID` of the shared protocol crate, in the WDK's layout.
const INTERFACE_GUID: GUID = GUID {
    Data1: DEVICE_INTERFACE_GUID.data1,
    Data2: DEVICE_INTERFACE_GUID.data2,
    Data3: DEVICE_INTERFACE_GUID.data3,
    Data4: DEVICE_INTERFACE_GUID.data4,
};

/// Returns early with the status of a failed framework call.
macro_rules! check {
    ($status:expr, $what:literal) => {{
        let status: NTSTATUS = $status;
        if !nt_success(status) {
            trace!(
                DPFLTR_ERROR_LEVEL,
                "%s failed %08x",
                concat!($what, "\0").as_ptr(),
                status
            );
            return status;
        }
    }};
}

/// `WdfRegistryQueryULong(key, name)`: `None` when the value is absent or not a DWORD.
/// `PASSIVE_LEVEL`; `PAGE` like its caller.
#[paged]
fn query_ulong(key: WDFKEY, name: &'static [u16]) -> Option<u32> {
    let name = unicode_string(name);
    let mut value: ULONG = 0;
    // SAFETY: `key` is open; `name` and `value` are locals that outlive the call.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfRegistryQueryULong,
            key,
            &raw const name,
            &raw mut value
        )
    };
    nt_success(status).then_some(value)
}

/// Reads the per-device settings and the lifetime counters from the device's hardware
/// key (`PLUGPLAY_REGKEY_DEVICE`, the INF's `AddReg` target). A key that cannot be
/// opened gives the defaults: the device still works, with KMDF's default pageability.
///
/// `PASSIVE_LEVEL`, before `WdfDeviceCreate`: `PAGE`.
#[paged]
fn read_registry(device_init: PWDFDEVICE_INIT) -> (RawSettings, PersistedCounters) {
    let mut key: WDFKEY = core::ptr::null_mut();
    // SAFETY: `device_init` is the framework's, still owned by us (WdfDeviceCreate has
    // not run); the out-pointer is a local. KEY_QUERY_VALUE is all a read needs.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfFdoInitOpenRegistryKey,
            device_init,
            PLUGPLAY_REGKEY_DEVICE,
            KEY_QUERY_VALUE,
            WDF_NO_OBJECT_ATTRIBUTES,
            &raw mut key,
        )
    };
    if !nt_success(status) {
        trace!(
            DPFLTR_ERROR_LEVEL,
            "hardware key not readable %08x, using defaults", status
        );
        return (RawSettings::default(), PersistedCounters::default());
    }
    let raw = RawSettings {
        power_pageable: query_ulong(key, POWER_PAGEABLE_W),
        idle_timeout_ms: query_ulong(key, IDLE_TIMEOUT_MS_W),
        special_file_support: query_ulong(key, SPECIAL_FILE_SUPPORT_W),
    };
    let stored = PersistedCounters {
        d0_entries: query_ulong(key, LIFETIME_D0_ENTRIES_W).unwrap_or(0),
        d0_exits: query_ulong(key, LIFETIME_D0_EXITS_W).unwrap_or(0),
    };
    // SAFETY: closes the key opened above, once.
    unsafe { call_unsafe_wdf_function_binding!(WdfRegistryClose, key) };
    (raw, stored)
}

/// `EvtDriverDeviceAdd`: reads the settings, chooses power pageability, creates the
/// device with its context, queues, timer and work item, runs the self-check, locks the
/// power-down section if the device is power-nonpageable, then [`configure_device`].
///
/// `PASSIVE_LEVEL`, once per device, off the power path: `PAGE`.
#[paged]
pub(crate) unsafe extern "C" fn evt_driver_device_add(
    driver: WDFDRIVER,
    mut device_init: PWDFDEVICE_INIT,
) -> NTSTATUS {
    let (raw, stored) = read_registry(device_init);
    let settings = Settings::from_raw(raw);
    if settings.issues != 0 {
        trace!(
            DPFLTR_ERROR_LEVEL,
            "invalid settings ignored, issue bits %x", settings.issues
        );
    }

    // Decide now whether the power callbacks may touch pageable data (docs/paging.md).
    // Both calls only work on the WDFDEVICE_INIT, before WdfDeviceCreate.
    if settings.power_pageable {
        // SAFETY: `device_init` is still ours (before WdfDeviceCreate).
        unsafe { call_unsafe_wdf_function_binding!(WdfDeviceInitSetPowerPageable, device_init) };
    } else {
        // SAFETY: as above.
        unsafe { call_unsafe_wdf_function_binding!(WdfDeviceInitSetPowerNotPageable, device_init) };
    }

    // Who may open the device: the system and administrators only, so that no other
    // account can keep it in D0 with renewable holds. Before WdfDeviceCreate, like the
    // pageability choice.
    let sddl = unicode_string(DEVICE_SDDL_W);
    // SAFETY: `device_init` is still ours; the framework copies the descriptor string.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDeviceInitAssignSDDLString,
            device_init,
            &raw const sddl
        )
    };
    check!(status, "WdfDeviceInitAssignSDDLString");

    // WDF_PNPPOWER_EVENT_CALLBACKS_INIT: zeroed and sized, then the callbacks.
    let mut pnp_power = callbacks::pnp_power(WDF_PNPPOWER_EVENT_CALLBACKS {
        Size: const { structure_size::<WDF_PNPPOWER_EVENT_CALLBACKS>() },
        ..WDF_PNPPOWER_EVENT_CALLBACKS::default()
    });
    // SAFETY: `device_init` is ours; the framework copies the structure.
    unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDeviceInitSetPnpPowerEventCallbacks,
            device_init,
            &raw mut pnp_power,
        );
    }

    let mut attributes = callbacks::device_attributes(WDF_OBJECT_ATTRIBUTES {
        ContextTypeInfo: DEVICE_CONTEXT_TYPE.get(),
        ..object_attributes()
    });
    let mut device: WDFDEVICE = core::ptr::null_mut();
    // SAFETY: on success the framework takes `device_init` and sets it to null; the
    // other pointers are locals.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDeviceCreate,
            &raw mut device_init,
            &raw mut attributes,
            &raw mut device,
        )
    };
    check!(status, "WdfDeviceCreate");

    // From here on, a failure return makes the framework delete the device, which runs
    // its cleanup callback and deletes every child object created below.
    let (lock, hold_timer, persist_item) = match create_children(device) {
        Ok(children) => children,
        Err(status) => return status,
    };
    let power_queue: WDFQUEUE = match create_queues(device) {
        Ok(queue) => queue,
        Err(status) => return status,
    };

    let placements = check_placements(driver);
    // SAFETY: the device was created with DEVICE_CONTEXT_TYPE.
    let raw_context = unsafe { DeviceContext::raw(device) };
    if raw_context.is_null() {
        return wdk_sys::STATUS_INSUFFICIENT_RESOURCES;
    }
    let new = NewContext {
        lock,
        hold_timer,
        persist_item,
        power_queue,
        settings,
        stored,
        placements: &placements,
    };
    // SAFETY: the framework allocated and zeroed the context of the device just
    // created; none of its callbacks can run before EvtDriverDeviceAdd returns.
    let action = unsafe { DeviceContext::init_in_place(raw_context, &new) };
    if action == LockAction::Refuse {
        // The device needs PAGEPWR locked (power-nonpageable, or special-file support),
        // and MmLockPagableCodeSection needs an address inside it, but the self-check did
        // not find EvtDeviceD0Exit there: an image not laid out as built. Failing the add
        // makes the framework delete the device (its cleanup finds nothing locked).
        trace!(
            DPFLTR_ERROR_LEVEL,
            "EvtDeviceD0Exit is not in PAGEPWR: the power-down section cannot be locked"
        );
        return STATUS_INVALID_IMAGE_FORMAT;
    }
    // SAFETY: just initialised.
    let Some(context) = (unsafe { DeviceContext::get(device) }) else {
        return wdk_sys::STATUS_INSUFFICIENT_RESOURCES;
    };
    // Before the first power transition: a power-nonpageable device, or one with
    // special-file support, gets its power-down section locked now. SAFETY:
    // EvtDriverDeviceAdd is serialised with the device's other PnP callbacks (none can
    // run before it returns).
    unsafe { apply_lock_action(context, action) };

    let status = configure_device(device, &settings);
    if !nt_success(status) {
        return status;
    }

    trace!(
        DPFLTR_INFO_LEVEL,
        "device added: power pageable %u, idle timeout %u ms",
        u32::from(settings.power_pageable),
        settings.idle_timeout_ms
    );
    STATUS_SUCCESS
}

/// The device's interface, special-file support and S0 idle settings, after
/// `WdfDeviceCreate`.
///
/// `PASSIVE_LEVEL`, from `EvtDriverDeviceAdd`: `PAGE`.
#[paged]
fn configure_device(device: WDFDEVICE, settings: &Settings) -> NTSTATUS {
    // SAFETY: `device` is live; the GUID is a constant; no reference string.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDeviceCreateDeviceInterface,
            device,
            &INTERFACE_GUID,
            core::ptr::null(),
        )
    };
    check!(status, "WdfDeviceCreateDeviceInterface");

    if settings.special_file_support {
        for file_type in [
            _WDF_SPECIAL_FILE_TYPE::WdfSpecialFilePaging,
            _WDF_SPECIAL_FILE_TYPE::WdfSpecialFileHibernation,
            _WDF_SPECIAL_FILE_TYPE::WdfSpecialFileDump,
        ] {
            // SAFETY: `device` is live. Without this call KMDF fails these usage
            // notifications itself and EvtDeviceUsageNotificationEx never sees them.
            unsafe {
                call_unsafe_wdf_function_binding!(
                    WdfDeviceSetSpecialFileSupport,
                    device,
                    file_type,
                    1,
                );
            }
        }
    }

    // WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS_INIT(&idle, IdleCannotWakeFromS0), then the
    // timeout: a software device has no wake signal, it idles to D3 and comes back when
    // a request reaches the power-managed queue.
    let mut idle = WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS {
        Size: const { structure_size::<WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS>() },
        IdleCaps: _WDF_POWER_POLICY_S0_IDLE_CAPABILITIES::IdleCannotWakeFromS0,
        DxState: _DEVICE_POWER_STATE::PowerDeviceD3,
        IdleTimeout: settings.idle_timeout_ms,
        UserControlOfIdleSettings: _WDF_POWER_POLICY_S0_IDLE_USER_CONTROL::IdleAllowUserControl,
        Enabled: _WDF_TRI_STATE::WdfUseDefault,
        PowerUpIdleDeviceOnSystemWake: _WDF_TRI_STATE::WdfUseDefault,
        IdleTimeoutType: _WDF_POWER_POLICY_IDLE_TIMEOUT_TYPE::DriverManagedIdleTimeout,
        ExcludeD3Cold: _WDF_TRI_STATE::WdfUseDefault,
    };
    // SAFETY: `device` is live; `idle` is initialised as the C INIT function does.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(WdfDeviceAssignS0IdleSettings, device, &raw mut idle)
    };
    check!(status, "WdfDeviceAssignS0IdleSettings");

    STATUS_SUCCESS
}

/// Creates the device's spin lock, D0-hold timer and persistence work item, all with the
/// device as parent so the framework deletes them with it.
///
/// `PASSIVE_LEVEL`, from `EvtDriverDeviceAdd`: `PAGE`.
#[paged]
fn create_children(device: WDFDEVICE) -> Result<(WDFSPINLOCK, WDFTIMER, WDFWORKITEM), NTSTATUS> {
    let mut attributes = object_attributes();
    attributes.ParentObject = device.cast();

    let mut lock: WDFSPINLOCK = core::ptr::null_mut();
    // SAFETY: the attributes and out-pointer are locals.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(WdfSpinLockCreate, &raw mut attributes, &raw mut lock)
    };
    if !nt_success(status) {
        return Err(status);
    }

    // WDF_TIMER_CONFIG_INIT(&config, evt_hold_timer): one-shot. No automatic
    // serialisation: the callback synchronises through the spin lock, and the device
    // has no synchronisation scope to serialise with anyway.
    let mut timer_config = callbacks::hold_timer(WDF_TIMER_CONFIG {
        Size: const { structure_size::<WDF_TIMER_CONFIG>() },
        Period: 0,
        AutomaticSerialization: 0,
        TolerableDelay: 0,
        ..WDF_TIMER_CONFIG::default()
    });
    let mut timer: WDFTIMER = core::ptr::null_mut();
    // SAFETY: as above.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfTimerCreate,
            &raw mut timer_config,
            &raw mut attributes,
            &raw mut timer,
        )
    };
    if !nt_success(status) {
        return Err(status);
    }

    // WDF_WORKITEM_CONFIG_INIT(&config, evt_persist_work_item), without automatic
    // serialisation for the same reason as the timer.
    let mut work_config = callbacks::persist_work_item(WDF_WORKITEM_CONFIG {
        Size: const { structure_size::<WDF_WORKITEM_CONFIG>() },
        AutomaticSerialization: 0,
        ..WDF_WORKITEM_CONFIG::default()
    });
    let mut work_item: WDFWORKITEM = core::ptr::null_mut();
    // SAFETY: as above.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfWorkItemCreate,
            &raw mut work_config,
            &raw mut attributes,
            &raw mut work_item,
        )
    };
    if !nt_success(status) {
        return Err(status);
    }
    Ok((lock, timer, work_item))
}

/// `EvtDevicePrepareHardware`: a software device has no resources to map.
///
/// `PASSIVE_LEVEL`, start-up only (before the first `D0Entry`), not on the resume path:
/// `PAGE`.
#[paged]
pub(crate) unsafe extern "C" fn evt_device_prepare_hardware(
    _device: WDFDEVICE,
    _resources_raw: WDFCMRESLIST,
    _resources_translated: WDFCMRESLIST,
) -> NTSTATUS {
    STATUS_SUCCESS
}

/// `EvtDeviceReleaseHardware`: the device has left D0 for a `PnP` stop or removal, a
/// pageable point outside transitions, so pending counters are written here.
///
/// `PASSIVE_LEVEL`, stop or removal only: `PAGE`. `WdfWorkItemFlush` needs `PASSIVE_LEVEL` and
/// must not run from the work item itself, which holds here.
#[paged]
pub(crate) unsafe extern "C" fn evt_device_release_hardware(
    device: WDFDEVICE,
    _resources_translated: WDFCMRESLIST,
) -> NTSTATUS {
    // SAFETY: called by the framework for this device.
    let Some(context) = (unsafe { DeviceContext::get(device) }) else {
        return STATUS_SUCCESS;
    };
    // A work item still writing holds the one write the portable state allows at a time,
    // and the take below would then get nothing: the final counts would be lost. Wait
    // for it first. None can be queued meanwhile: only the power-up callbacks queue it,
    // and the device stays out of D0 until it is started again, if ever.
    // SAFETY: the work item is a live child of this device; we are not in its callback.
    unsafe { call_unsafe_wdf_function_binding!(WdfWorkItemFlush, context.persist_item) };
    // The device has left its last power transition: written whatever its pageability.
    if let (Some(counters), _) = context.locked(Op::TakePersistAtRelease).into_persist() {
        // SAFETY: `device` is live; PASSIVE_LEVEL, outside any power transition.
        let written = unsafe { write_counters(device, counters) };
        let _ = context.locked(Op::PersistDone(written));
    }
    STATUS_SUCCESS
}

/// `EvtDeviceSelfManagedIoInit`: the first start (KMDF calls Restart on later ones).
/// Logs it and has the work item persist the counts of that first `D0Entry`.
///
/// `PASSIVE_LEVEL`, first start only: `PAGE`.
#[paged]
pub(crate) unsafe extern "C" fn evt_device_self_managed_io_init(device: WDFDEVICE) -> NTSTATUS {
    // SAFETY: the framework calls this for its live device; `start` is read first.
    let recorded = unsafe {
        let start = PowerStart::now(device);
        record_power(device, PowerCallback::SelfManagedIoInit, 0, start)
    };
    if let Some((context, reply)) = recorded
        && let (_, true) = reply.into_persist()
    {
        // The work item writes once the device is out of the start-up transition.
        // SAFETY: the work item is a live child of this device.
        unsafe { call_unsafe_wdf_function_binding!(WdfWorkItemEnqueue, context.persist_item) };
    }
    STATUS_SUCCESS
}

/// `EvtDeviceSelfManagedIoFlush`: the device is being removed. Ends a D0 hold that is
/// still active: stops the timer (waiting for a running callback) and drops the power
/// reference the hold took.
///
/// `PASSIVE_LEVEL` (`WdfTimerStop` with `Wait = TRUE` needs it), removal only: `PAGE`.
#[paged]
pub(crate) unsafe extern "C" fn evt_device_self_managed_io_flush(device: WDFDEVICE) {
    // SAFETY: called by the framework for this device.
    if let Some(context) = unsafe { DeviceContext::get(device) } {
        // SAFETY: `device` is live and owns `context`; PASSIVE_LEVEL, not in the timer's
        // callback.
        unsafe { release_hold(device, context) };
    }
}

/// `EvtDeviceSelfManagedIoCleanup`: nothing left to undo; registered so that the whole
/// self-managed I/O life cycle shows up in the paging map.
///
/// `PASSIVE_LEVEL`, removal only: `PAGE`.
#[paged]
pub(crate) unsafe extern "C" fn evt_device_self_managed_io_cleanup(_device: WDFDEVICE) {}

/// `EvtCleanupCallback` of the WDFDEVICE: releases the power-down section lock (every
/// handle must be released before the image unloads) and a hold that flush did not see.
/// Uses no child object of the device: KMDF has disposed them all before this runs.
///
/// `PASSIVE_LEVEL` for a device object, removal only: `PAGE`.
#[paged]
pub(crate) unsafe extern "C" fn evt_device_context_cleanup(object: WDFOBJECT) {
    let device: WDFDEVICE = object.cast();
    // SAFETY: the framework passes the device being cleaned up; a context that
    // EvtDriverDeviceAdd never initialised is skipped.
    let Some(context) = (unsafe { DeviceContext::get(device) }) else {
        return;
    };
    // KMDF has disposed the device's children, the spin lock among them, before this
    // callback: the state is reached without the lock (`state_in_cleanup`).
    // SAFETY: this is the device's EvtCleanupCallback; the reference ends here.
    let actions = unsafe { context.state_in_cleanup() }.on_cleanup();
    // SAFETY: cleanup is the last PnP-serialised user of the handle.
    unsafe { apply_lock_action(context, actions.lock) };
    if actions.resume_idle {
        // SAFETY: the hold took exactly one reference with WdfDeviceStopIdle.
        unsafe {
            call_unsafe_wdf_function_binding!(
                WdfDeviceResumeIdleActual,
                device,
                core::ptr::null_mut(),
                0,
                core::ptr::null(),
            );
        }
    }
}
