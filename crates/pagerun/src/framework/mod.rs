//! The framework model: the methods of the KMDF 1.33 function table the host implements, and
//! the table itself. Each method takes `DriverGlobals` first, as the table's entries do.
//! Configuration structures are read with the offsets `pagecheck::kmdf` holds (the 1.33 x64
//! header layout), and only as far as the `Size` the driver wrote.

#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::too_many_arguments
)]

use pagecheck::kmdf;

mod string;
pub mod wmi;

use crate::host::{
    self, ContextBlock, Device, DeviceInit, Kind, Major, ObjectTemplate, Queue, Request, Timer,
    read, status, violation, with, write,
};
use crate::machine::{self, DISPATCH_LEVEL, PASSIVE_LEVEL};

/// Entries of the KMDF 1.33 function table (`WdfFunctionTableNumEntries`).
pub const TABLE_ENTRIES: usize = 458;

/// Function-table sizes of released KMDF versions a driver's bind may ask for (the minor
/// versions 1.0 to 1.31/1.33 as the framework's own bind check lists them).
pub const RELEASED_TABLE_SIZES: &[u32] = &[
    383, 386, 387, 396, 432, 438, 444, 446, 448, 451, 453, 454, 458,
];

/// `WdfExecutionLevelPassive`.
const EXECUTION_LEVEL_PASSIVE: i32 = 2;
/// `WdfDevStateNP`, set in a device power state while the device is in a nonpageable state.
pub const DEV_STATE_NP: u32 = 0x8000;
/// `WdfDevStatePowerD0` (a `WDF_DEVICE_POWER_STATE` of the 1.33 headers).
pub const POWER_D0: u32 = 0x307;
/// `WdfDevStatePowerDx`.
pub const POWER_DX: u32 = 0x31D;

/// Reads the callback fields of a configuration structure within its `Size`.
pub(crate) fn fields(config: u64, structure: &kmdf::Structure) -> Vec<(u16, u64)> {
    if config == 0 {
        return Vec::new();
    }
    // SAFETY: the driver passes a pointer to the structure, whose first ULONG is its size.
    let size = unsafe { read::<u32>(config) };
    structure
        .fields
        .iter()
        .filter(|f| u32::from(f.offset) + 8 <= size)
        .map(|f| {
            // SAFETY: a pointer field within the structure's declared size.
            let value = unsafe { read::<u64>(config + u64::from(f.offset)) };
            (f.offset, value)
        })
        .collect()
}

/// `WDF_OBJECT_ATTRIBUTES` as the model uses it.
#[derive(Clone, Copy, Debug, Default)]
struct Attributes {
    cleanup: u64,
    destroy: u64,
    level: i32,
    parent: u64,
    context_size: u64,
    type_info: u64,
}

fn attributes(address: u64) -> Attributes {
    if address == 0 {
        return Attributes::default();
    }
    // SAFETY: the driver's WDF_OBJECT_ATTRIBUTES (x64 layout: Size, cleanup 8, destroy 16,
    // ExecutionLevel 24, SynchronizationScope 28, ParentObject 32, ContextSizeOverride 40,
    // ContextTypeInfo 48).
    unsafe {
        Attributes {
            cleanup: read(address + 8),
            destroy: read(address + 16),
            level: read(address + 24),
            parent: read(address + 32),
            context_size: read(address + 40),
            type_info: read(address + 48),
        }
    }
}

/// The key a context type is looked up by: `UniqueType` when set, else the type info itself.
fn unique_of(type_info: u64) -> u64 {
    if type_info == 0 {
        return 0;
    }
    // SAFETY: a WDF_OBJECT_CONTEXT_TYPE_INFO of the driver: UniqueType at 24.
    let unique = unsafe { read::<u64>(type_info + 24) };
    if unique == 0 { type_info } else { unique }
}

/// Creates an object with the driver's attributes: contexts, callbacks, execution level.
pub(crate) fn create_object(kind: Kind, default_parent: u64, attrs: u64) -> u64 {
    let a = attributes(attrs);
    let parent = if a.parent != 0 {
        a.parent
    } else {
        default_parent
    };
    let context = if a.type_info != 0 {
        // SAFETY: the type info's ContextSize at 16.
        let size = unsafe { read::<u64>(a.type_info + 16) };
        Some((unique_of(a.type_info), size.max(a.context_size)))
    } else {
        None
    };
    with(|h| {
        let parent_passive = h.object(parent).is_some_and(|o| o.passive);
        let handle = h.create(kind, parent);
        let memory = context.map(|(unique, size)| (unique, h.keep_zeroed(size as usize)));
        if let Some(o) = h.object(handle) {
            o.cleanup = a.cleanup;
            o.destroy = a.destroy;
            o.passive = a.level == EXECUTION_LEVEL_PASSIVE || (a.level <= 1 && parent_passive);
            if let Some((unique, memory)) = memory {
                o.contexts.push(ContextBlock { unique, memory });
            }
        }
        handle
    })
}

pub(crate) fn bad_handle(method: &str, handle: u64) {
    violation(
        "parameter",
        0,
        &format!("{method} with {handle:#x}, which is not a live handle of the right type"),
    );
}

// ---- driver ----------------------------------------------------------------------------------

extern "win64" fn driver_create(
    _globals: u64,
    driver_object: u64,
    _registry_path: u64,
    attrs: u64,
    config: u64,
    out: u64,
) -> i32 {
    if config == 0 {
        violation(
            "parameter",
            0,
            "WdfDriverCreate without a WDF_DRIVER_CONFIG",
        );
        return status::INVALID_PARAMETER;
    }
    let handle = create_object(Kind::Driver, 0, attrs);
    let mut add = 0;
    let mut unload = 0;
    for (offset, value) in fields(config, &kmdf::DRIVER_CONFIG) {
        match offset {
            8 => add = value,
            _ => unload = value,
        }
    }
    // SAFETY: DriverInitFlags at 24 of WDF_DRIVER_CONFIG (within its 32 bytes).
    let flags = unsafe { read::<u32>(config + 24) };
    with(|h| {
        h.driver = handle;
        h.device_add = add;
        h.unload = unload;
        h.driver_object = driver_object;
        // WDF_DRIVER_GLOBALS.Driver at 0.
        // SAFETY: the globals block the host allocated.
        unsafe { write::<u64>(h.globals, handle) };
    });
    record_info("driver_init_flags", &flags.to_string());
    hand_out(out, handle)
}

extern "win64" fn driver_get_registry_path(_globals: u64, _driver: u64) -> u64 {
    0
}

extern "win64" fn driver_wdm_get_driver_object(_globals: u64, _driver: u64) -> u64 {
    with(|h| h.driver_object)
}

pub(crate) fn record_info(key: &str, value: &str) {
    crate::record!("info {key} {value}");
}

// ---- device init -----------------------------------------------------------------------------

fn init_call(method: &'static str) {
    with(|h| h.init.calls.push(method));
}

extern "win64" fn init_set_pnp_power_callbacks(_globals: u64, _init: u64, callbacks: u64) {
    init_call("WdfDeviceInitSetPnpPowerEventCallbacks");
    let f = fields(callbacks, &kmdf::PNPPOWER_EVENT_CALLBACKS);
    with(|h| {
        for (offset, value) in f {
            h.init.pnp[usize::from(offset / 8 - 1)] = value;
        }
    });
}

extern "win64" fn init_set_power_policy_callbacks(_globals: u64, _init: u64, callbacks: u64) {
    init_call("WdfDeviceInitSetPowerPolicyEventCallbacks");
    let f = fields(callbacks, &kmdf::POWER_POLICY_EVENT_CALLBACKS);
    with(|h| {
        for (offset, value) in f {
            h.init.policy[usize::from(offset / 8 - 1)] = value;
        }
    });
}

extern "win64" fn init_set_power_pageable(_globals: u64, _init: u64) {
    init_call("WdfDeviceInitSetPowerPageable");
    with(|h| h.init.power_pageable = Some(true));
}

extern "win64" fn init_set_power_not_pageable(_globals: u64, _init: u64) {
    init_call("WdfDeviceInitSetPowerNotPageable");
    with(|h| h.init.power_pageable = Some(false));
}

extern "win64" fn init_set_power_inrush(_globals: u64, _init: u64) {
    init_call("WdfDeviceInitSetPowerInrush");
    with(|h| h.init.power_pageable = Some(false));
}

extern "win64" fn init_ignored(_globals: u64, _init: u64, _a: u64, _b: u64) {
    init_call("WdfDeviceInit (setting without effect on the model)");
}

extern "win64" fn init_ok(_globals: u64, _init: u64, _a: u64) -> i32 {
    init_call("WdfDeviceInit (setting without effect on the model)");
    status::SUCCESS
}

extern "win64" fn init_set_file_object_config(_globals: u64, _init: u64, config: u64, _attrs: u64) {
    init_call("WdfDeviceInitSetFileObjectConfig");
    let f = fields(config, &kmdf::FILEOBJECT_CONFIG);
    with(|h| {
        for (offset, value) in f {
            h.init.file[usize::from(offset / 8 - 1)] = value;
        }
    });
}

extern "win64" fn init_free(_globals: u64, _init: u64) {
    init_call("WdfDeviceInitFree");
}

extern "win64" fn init_set_request_attributes(_globals: u64, _init: u64, attrs: u64) {
    init_call("WdfDeviceInitSetRequestAttributes");
    let a = attributes(attrs);
    let (unique, size) = if a.type_info == 0 {
        (0, 0)
    } else {
        // SAFETY: the type info's ContextSize at 16.
        let size = unsafe { read::<u64>(a.type_info + 16) };
        (unique_of(a.type_info), size.max(a.context_size))
    };
    with(|h| {
        h.init.request_attributes = Some(ObjectTemplate {
            cleanup: a.cleanup,
            destroy: a.destroy,
            unique,
            size,
        });
    });
}

extern "win64" fn init_set_io_in_caller_context(_globals: u64, _init: u64, callback: u64) {
    init_call("WdfDeviceInitSetIoInCallerContextCallback");
    with(|h| h.init.io_in_caller_context = callback);
}

extern "win64" fn control_init_set_shutdown_notification(
    _globals: u64,
    _init: u64,
    notification: u64,
    flags: u8,
) {
    init_call("WdfControlDeviceInitSetShutdownNotification");
    with(|h| h.init.shutdown_notification = (notification, flags));
}

/// A request the framework creates for the device, with the context and callbacks of the
/// device's request attributes; `queue` is its parent until it is presented.
pub fn create_request(request: Request, queue: u64) -> u64 {
    with(|h| {
        let template = h
            .device
            .as_ref()
            .and_then(|d| d.init.request_attributes)
            .unwrap_or_default();
        let handle = h.create(Kind::Request(Box::new(request)), queue);
        let memory = (template.unique != 0).then(|| h.keep_zeroed(template.size as usize));
        if let Some(o) = h.object(handle) {
            o.cleanup = template.cleanup;
            o.destroy = template.destroy;
            if let Some(memory) = memory {
                o.contexts.push(ContextBlock {
                    unique: template.unique,
                    memory,
                });
            }
        }
        handle
    })
}

/// `WDF_REQUEST_TYPE` of a request type (the IRP major function code).
#[must_use]
pub const fn request_type(major: Major) -> u32 {
    match major {
        Major::Read => 3,
        Major::Write => 4,
        Major::DeviceControl => 0x0E,
    }
}

/// The queue a new request of `major` goes to: the one `WdfDeviceConfigureRequestDispatching`
/// named for its type, else the default queue.
#[must_use]
pub fn queue_for(major: Major) -> Option<u64> {
    with(|h| {
        let configured = h.device.as_ref().and_then(|d| {
            d.dispatching
                .iter()
                .find(|(t, _)| *t == request_type(major))
                .map(|&(_, q)| q)
        });
        configured.filter(|&q| h.queue(q).is_some()).or_else(|| {
            h.objects
                .iter()
                .position(|o| !o.deleted && matches!(&o.kind, Kind::Queue(q) if q.default))
                .map(|i| host::HANDLE_BASE + 16 * i as u64)
        })
    })
}

extern "win64" fn device_configure_request_dispatching(
    _globals: u64,
    device: u64,
    queue: u64,
    request_type: u32,
) -> i32 {
    if !device_of("WdfDeviceConfigureRequestDispatching", device) {
        return status::INVALID_PARAMETER;
    }
    let ok = with(|h| {
        h.queue(queue)?;
        let d = h.device.as_mut()?;
        d.dispatching.retain(|(t, _)| *t != request_type);
        d.dispatching.push((request_type, queue));
        Some(())
    });
    if ok.is_none() {
        bad_handle("WdfDeviceConfigureRequestDispatching", queue);
        return status::INVALID_PARAMETER;
    }
    status::SUCCESS
}

/// `WdfDeviceEnqueueRequest`: from `EvtIoInCallerContext`, hands the request to the queue its
/// type is dispatched to (the scenario presents it once the callback returns).
extern "win64" fn device_enqueue_request(_globals: u64, device: u64, request: u64) -> i32 {
    if !device_of("WdfDeviceEnqueueRequest", device) {
        return status::INVALID_PARAMETER;
    }
    let Some(major) = with(|h| h.request(request).map(|r| r.major)) else {
        bad_handle("WdfDeviceEnqueueRequest", request);
        return status::INVALID_PARAMETER;
    };
    let Some(queue) = queue_for(major) else {
        return status::INVALID_DEVICE_REQUEST;
    };
    with(|h| {
        if let Some(r) = h.request(request) {
            r.queue = queue;
        }
        if let Some(q) = h.queue(queue) {
            q.waiting.push_back(request);
        }
    });
    status::SUCCESS
}

extern "win64" fn control_device_init_allocate(_globals: u64, _driver: u64, _sddl: u64) -> u64 {
    with(|h| {
        h.init = DeviceInit::default();
        if h.init_pointer == 0 {
            h.init_pointer = h.keep_zeroed(64);
        }
        h.init_pointer
    })
}

extern "win64" fn control_finish_initializing(_globals: u64, _device: u64) {}

// ---- device ----------------------------------------------------------------------------------

extern "win64" fn device_create(_globals: u64, init: u64, attrs: u64, out: u64) -> i32 {
    if init == 0 || out == 0 {
        violation("parameter", 0, "WdfDeviceCreate with a null argument");
        return status::INVALID_PARAMETER;
    }
    // SAFETY: PWDFDEVICE_INIT* of the driver.
    let init_pointer = unsafe { read::<u64>(init) };
    if init_pointer == 0 {
        violation(
            "parameter",
            0,
            "WdfDeviceCreate with a WDFDEVICE_INIT already consumed",
        );
        return status::INVALID_PARAMETER;
    }
    if with(|h| h.device.is_some()) {
        violation(
            "parameter",
            0,
            "a second WdfDeviceCreate: the model runs one device",
        );
        return status::INSUFFICIENT_RESOURCES;
    }
    let driver = with(|h| h.driver);
    let handle = create_object(Kind::Device, driver, attrs);
    with(|h| {
        let init = std::mem::take(&mut h.init);
        h.device = Some(Device {
            handle,
            init,
            ..Device::default()
        });
    });
    // The framework takes the init structure: the driver's pointer is set to NULL.
    // SAFETY: as above.
    unsafe {
        write::<u64>(init, 0);
        write::<u64>(out, handle);
    }
    status::SUCCESS
}

pub(crate) fn device_of(method: &str, handle: u64) -> bool {
    let ok = with(|h| h.device.as_ref().is_some_and(|d| d.handle == handle));
    if !ok {
        bad_handle(method, handle);
    }
    ok
}

extern "win64" fn device_ok(_globals: u64, device: u64, _a: u64, _b: u64) -> i32 {
    device_of("WdfDevice method", device);
    status::SUCCESS
}

extern "win64" fn device_void(_globals: u64, device: u64, _a: u64) {
    device_of("WdfDevice method", device);
}

extern "win64" fn device_set_special_file_support(
    _globals: u64,
    device: u64,
    file_type: u32,
    supported: u8,
) {
    if device_of("WdfDeviceSetSpecialFileSupport", device) {
        let Some(index) = usize::try_from(file_type)
            .ok()
            .filter(|t| (1..=4).contains(t))
        else {
            violation(
                "parameter",
                0,
                &format!(
                    "WdfDeviceSetSpecialFileSupport with FileType {file_type}, not a WDF_SPECIAL_FILE_TYPE"
                ),
            );
            return;
        };
        with(|h| {
            if let Some(d) = h.device.as_mut() {
                d.special_supported[index] = supported != 0;
            }
        });
        record_info(
            "special_file_support",
            &format!("type {file_type} {}", supported != 0),
        );
    }
}

extern "win64" fn device_get_power_state(_globals: u64, device: u64) -> u32 {
    device_of("WdfDeviceGetDevicePowerState", device);
    with(|h| h.device.as_ref().map_or(0, |d| d.power_state))
}

/// `IdleCanWakeFromS0` and `IdleUsbSelectiveSuspend` of `WDF_POWER_POLICY_S0_IDLE_CAPABILITIES`.
const IDLE_CAN_WAKE_FROM_S0: u32 = 2;
const IDLE_USB_SELECTIVE_SUSPEND: u32 = 3;
/// `WdfFalse` of `WDF_TRI_STATE`.
const WDF_FALSE: u32 = 0;

extern "win64" fn device_assign_s0_idle(_globals: u64, device: u64, settings: u64) -> i32 {
    if !device_of("WdfDeviceAssignS0IdleSettings", device) {
        return status::INVALID_PARAMETER;
    }
    if settings == 0 {
        violation(
            "parameter",
            0,
            "WdfDeviceAssignS0IdleSettings without settings",
        );
        return status::INVALID_PARAMETER;
    }
    // SAFETY: WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS: Size 0, IdleCaps 4, DxState 8,
    // IdleTimeout 12, UserControlOfIdleSettings 16, Enabled 20.
    let (size, caps, enabled) = unsafe {
        (
            read::<u32>(settings),
            read::<u32>(settings + 4),
            read::<u32>(settings + 20),
        )
    };
    if !(1..=3).contains(&caps) {
        violation(
            "parameter",
            0,
            &format!(
                "WdfDeviceAssignS0IdleSettings with IdleCaps {caps}, not a WDF_POWER_POLICY_S0_IDLE_CAPABILITIES value"
            ),
        );
        return status::INVALID_PARAMETER;
    }
    let enabled = size < 24 || enabled != WDF_FALSE;
    with(|h| {
        if let Some(d) = h.device.as_mut() {
            d.s0_idle = enabled;
            d.idle_wake =
                enabled && matches!(caps, IDLE_CAN_WAKE_FROM_S0 | IDLE_USB_SELECTIVE_SUSPEND);
        }
    });
    status::SUCCESS
}

extern "win64" fn device_assign_sx_wake(_globals: u64, device: u64, settings: u64) -> i32 {
    if !device_of("WdfDeviceAssignSxWakeSettings", device) {
        return status::INVALID_PARAMETER;
    }
    if settings == 0 {
        violation(
            "parameter",
            0,
            "WdfDeviceAssignSxWakeSettings without settings",
        );
        return status::INVALID_PARAMETER;
    }
    // SAFETY: WDF_DEVICE_POWER_POLICY_WAKE_SETTINGS: Size 0, DxState 4,
    // UserControlOfWakeSettings 8, Enabled 12.
    let (size, enabled) = unsafe { (read::<u32>(settings), read::<u32>(settings + 12)) };
    with(|h| {
        if let Some(d) = h.device.as_mut() {
            d.sx_wake = size < 16 || enabled != WDF_FALSE;
        }
    });
    status::SUCCESS
}

extern "win64" fn device_stop_idle(_globals: u64, device: u64, _wait: u8) -> i32 {
    if device_of("WdfDeviceStopIdle", device) {
        with(|h| {
            if let Some(d) = h.device.as_mut() {
                d.stop_idle += 1;
            }
        });
    }
    status::SUCCESS
}

extern "win64" fn device_resume_idle(_globals: u64, device: u64) {
    if device_of("WdfDeviceResumeIdle", device) {
        let underflow = with(|h| {
            h.device.as_mut().is_some_and(|d| {
                d.stop_idle -= 1;
                d.stop_idle < 0
            })
        });
        if underflow {
            violation(
                "idle",
                0,
                "WdfDeviceResumeIdle without a matching WdfDeviceStopIdle",
            );
        }
    }
}

extern "win64" fn device_get_default_queue(_globals: u64, device: u64) -> u64 {
    device_of("WdfDeviceGetDefaultQueue", device);
    with(|h| {
        h.objects
            .iter()
            .position(|o| matches!(&o.kind, Kind::Queue(q) if q.default) && !o.deleted)
            .map_or(0, |i| host::HANDLE_BASE + 16 * i as u64)
    })
}

/// A `WDFCMRESLIST` for the prepare/release-hardware callbacks: the model's device has no
/// hardware resources, so the list is empty.
pub fn resource_list(device: u64) -> u64 {
    with(|h| h.create(Kind::Other("WDFCMRESLIST"), device))
}

fn is_resource_list(method: &str, list: u64) -> bool {
    let ok = with(|h| {
        h.object(list)
            .is_some_and(|o| matches!(o.kind, Kind::Other("WDFCMRESLIST")))
    });
    if !ok {
        bad_handle(method, list);
    }
    ok
}

extern "win64" fn cm_resource_list_get_count(_globals: u64, list: u64) -> u32 {
    is_resource_list("WdfCmResourceListGetCount", list);
    0
}

extern "win64" fn cm_resource_list_get_descriptor(_globals: u64, list: u64, index: u32) -> u64 {
    if is_resource_list("WdfCmResourceListGetDescriptor", list) {
        violation(
            "parameter",
            0,
            &format!("WdfCmResourceListGetDescriptor({index}) of a list of 0 resources"),
        );
    }
    0
}

/// `STATUS_NOT_SUPPORTED`: no bus driver under the model's device offers an interface.
const STATUS_NOT_SUPPORTED: i32 = 0xC000_00BB_u32.cast_signed();

extern "win64" fn fdo_query_for_interface(
    _globals: u64,
    device: u64,
    guid: u64,
    interface: u64,
    _size: u16,
    _version: u16,
    _specific: u64,
) -> i32 {
    if !device_of("WdfFdoQueryForInterface", device) {
        return status::INVALID_PARAMETER;
    }
    if guid == 0 || interface == 0 {
        violation(
            "parameter",
            0,
            "WdfFdoQueryForInterface without a GUID or an INTERFACE",
        );
        return status::INVALID_PARAMETER;
    }
    STATUS_NOT_SUPPORTED
}

/// `DEVICE_REGISTRY_PROPERTY` values the model answers, with the text it gives.
fn device_property(property: u32) -> Option<&'static str> {
    match property {
        // DevicePropertyDeviceDescription, DevicePropertyFriendlyName.
        0 | 0xC => Some("pagerun device"),
        // DevicePropertyHardwareID (a REG_MULTI_SZ: the string and an empty one).
        1 => Some("root\\pagerun\0"),
        // DevicePropertyManufacturer.
        0xB => Some("pagerun"),
        _ => None,
    }
}

extern "win64" fn device_alloc_and_query_property(
    _globals: u64,
    device: u64,
    property: u32,
    pool_type: u32,
    attrs: u64,
    out: u64,
) -> i32 {
    if !device_of("WdfDeviceAllocAndQueryProperty", device) {
        return status::INVALID_PARAMETER;
    }
    if out == 0 {
        violation(
            "parameter",
            0,
            "WdfDeviceAllocAndQueryProperty without a WDFMEMORY out parameter",
        );
        return status::INVALID_PARAMETER;
    }
    let Some(text) = device_property(property) else {
        return status::OBJECT_NAME_NOT_FOUND;
    };
    let units: Vec<u16> = text.encode_utf16().chain(std::iter::once(0)).collect();
    let length = units.len() as u64 * 2;
    let buffer = host::pool_alloc(pool_type & 1 != 0, length);
    if buffer == 0 {
        return status::INSUFFICIENT_RESOURCES;
    }
    for (i, u) in units.iter().enumerate() {
        // SAFETY: `buffer` holds `length` bytes of pool just allocated.
        unsafe { write::<u16>(buffer + 2 * i as u64, *u) };
    }
    let memory = create_object(Kind::Memory { buffer, length }, device, attrs);
    // SAFETY: the driver's WDFMEMORY out parameter.
    unsafe { write::<u64>(out, memory) };
    status::SUCCESS
}

extern "win64" fn device_set_device_state(_globals: u64, device: u64, state: u64) {
    if device_of("WdfDeviceSetDeviceState", device) && state == 0 {
        violation(
            "parameter",
            0,
            "WdfDeviceSetDeviceState without a WDF_DEVICE_STATE",
        );
    }
}

extern "win64" fn device_wdm_get_device_object(_globals: u64, _device: u64) -> u64 {
    with(|h| h.keep_zeroed(0x150))
}

extern "win64" fn device_get_driver(_globals: u64, _device: u64) -> u64 {
    with(|h| h.driver)
}

extern "win64" fn object_get_parent(_globals: u64, handle: u64) -> u64 {
    with(|h| h.object(handle).map_or(0, |o| o.parent))
}

// ---- registry --------------------------------------------------------------------------------

fn open_key(out: u64, method: &'static str) -> i32 {
    if out == 0 {
        violation(
            "parameter",
            0,
            &format!("{method} without a WDFKEY out parameter"),
        );
        return status::INVALID_PARAMETER;
    }
    let parent = with(|h| h.device.as_ref().map_or(h.driver, |d| d.handle));
    let key = create_object(Kind::Key, parent, 0);
    // SAFETY: the driver's WDFKEY out parameter.
    unsafe { write::<u64>(out, key) };
    status::SUCCESS
}

extern "win64" fn fdo_init_open_registry_key(
    _globals: u64,
    _init: u64,
    _key_type: u32,
    _access: u32,
    _attrs: u64,
    out: u64,
) -> i32 {
    open_key(out, "WdfFdoInitOpenRegistryKey")
}

extern "win64" fn device_open_registry_key(
    _globals: u64,
    _device: u64,
    _key_type: u32,
    _access: u32,
    _attrs: u64,
    out: u64,
) -> i32 {
    open_key(out, "WdfDeviceOpenRegistryKey")
}

extern "win64" fn driver_open_parameters_key(
    _globals: u64,
    _driver: u64,
    _access: u32,
    _attrs: u64,
    out: u64,
) -> i32 {
    open_key(out, "WdfDriverOpenParametersRegistryKey")
}

pub(crate) fn unicode(address: u64) -> Option<String> {
    if address == 0 {
        return None;
    }
    // SAFETY: the driver's UNICODE_STRING: Length (bytes) at 0, Buffer at 8.
    let (len, buffer) = unsafe { (read::<u16>(address), read::<u64>(address + 8)) };
    if buffer == 0 {
        return None;
    }
    let units: Vec<u16> = (0..u64::from(len / 2))
        // SAFETY: Length bytes of UTF-16 at Buffer.
        .map(|i| unsafe { read::<u16>(buffer + 2 * i) })
        .collect();
    Some(String::from_utf16_lossy(&units))
}

fn key_of(method: &str, key: u64) -> bool {
    let ok = with(|h| h.object(key).is_some_and(|o| matches!(o.kind, Kind::Key)));
    if !ok {
        bad_handle(method, key);
    }
    ok
}

extern "win64" fn registry_query_ulong(_globals: u64, key: u64, name: u64, value: u64) -> i32 {
    if !key_of("WdfRegistryQueryULong", key) || value == 0 {
        return status::INVALID_PARAMETER;
    }
    let Some(name) = unicode(name) else {
        violation(
            "parameter",
            0,
            "WdfRegistryQueryULong with a bad value name",
        );
        return status::INVALID_PARAMETER;
    };
    match with(|h| h.registry.get(&name).copied()) {
        Some(v) => {
            // SAFETY: the driver's ULONG out parameter.
            unsafe { write::<u32>(value, v) };
            status::SUCCESS
        }
        None => status::OBJECT_NAME_NOT_FOUND,
    }
}

extern "win64" fn registry_assign_ulong(_globals: u64, key: u64, name: u64, value: u32) -> i32 {
    if !key_of("WdfRegistryAssignULong", key) {
        return status::INVALID_PARAMETER;
    }
    let Some(name) = unicode(name) else {
        violation(
            "parameter",
            0,
            "WdfRegistryAssignULong with a bad value name",
        );
        return status::INVALID_PARAMETER;
    };
    with(|h| h.registry.insert(name, value));
    status::SUCCESS
}

extern "win64" fn registry_close(_globals: u64, key: u64) {
    if key_of("WdfRegistryClose", key) {
        with(|h| {
            if let Some(o) = h.object(key) {
                o.deleted = true;
            }
        });
    }
}

// ---- queues ----------------------------------------------------------------------------------

extern "win64" fn io_queue_create(
    _globals: u64,
    device: u64,
    config: u64,
    attrs: u64,
    out: u64,
) -> i32 {
    if !device_of("WdfIoQueueCreate", device) || config == 0 {
        return status::INVALID_PARAMETER;
    }
    // SAFETY: WDF_IO_QUEUE_CONFIG: Size 0, DispatchType 4, PowerManaged 8 (WDF_TRI_STATE),
    // AllowZeroLengthRequests 12, DefaultQueue 13.
    let (dispatch, power_managed, default) = unsafe {
        (
            read::<u32>(config + 4),
            read::<u32>(config + 8),
            read::<u8>(config + 13),
        )
    };
    if !(1..=3).contains(&dispatch) {
        violation(
            "parameter",
            0,
            &format!("WdfIoQueueCreate with DispatchType {dispatch}"),
        );
        return status::INVALID_PARAMETER;
    }
    // WdfUseDefault (2): power-managed, except a control device's queues, which take no part
    // in power management (KMDF refuses WdfTrue for them).
    let control = with(|h| h.device_add == 0);
    if control && power_managed == 1 {
        violation(
            "parameter",
            0,
            "WdfIoQueueCreate with PowerManaged = WdfTrue on a control device, which has no power states",
        );
        return status::INVALID_PARAMETER;
    }
    let mut queue = Queue {
        dispatch,
        power_managed: power_managed == 1 || (power_managed == 2 && !control),
        default: default != 0,
        started: true,
        ..Queue::default()
    };
    for (offset, value) in fields(config, &kmdf::IO_QUEUE_CONFIG) {
        queue.callbacks[usize::from((offset - 16) / 8)] = value;
    }
    let handle = create_object(Kind::Queue(Box::new(queue)), device, attrs);
    hand_out(out, handle)
}

extern "win64" fn io_queue_get_device(_globals: u64, queue: u64) -> u64 {
    with(|h| {
        let device = h.device.as_ref().map_or(0, |d| d.handle);
        if h.queue(queue).is_some() { device } else { 0 }
    })
}

extern "win64" fn io_queue_start(_globals: u64, queue: u64) {
    let ok = with(|h| h.queue(queue).map(|q| q.started = true).is_some());
    if ok {
        // Requests that waited while the queue was stopped are presented now.
        crate::scenario::dispatch(queue);
    } else {
        bad_handle("WdfIoQueueStart", queue);
    }
}

/// How much virtual time a synchronous wait for the driver's requests may take before the host
/// calls it a wait that never ends.
pub const REQUEST_WAIT_MS: u64 = 120_000;

/// True while `queue` has a request the driver owns that is neither completed nor (when
/// `acknowledged_is_enough`) acknowledged with `WdfRequestStopAcknowledge`.
fn owned_outstanding(queue: u64, acknowledged_is_enough: bool) -> bool {
    with(|h| {
        let owned = h.queue(queue).map(|q| q.owned.clone()).unwrap_or_default();
        owned.iter().any(|&r| {
            h.request(r)
                .is_some_and(|r| r.completions == 0 && !(acknowledged_is_enough && r.acknowledged))
        })
    })
}

/// Waits, in virtual time, for the requests the driver owns on `queue` (see
/// [`owned_outstanding`]); the milliseconds it took, or `None` when they never finish.
pub fn wait_for_owned(queue: u64, acknowledged_is_enough: bool) -> Option<u64> {
    crate::clock::pass_until(REQUEST_WAIT_MS, || {
        !owned_outstanding(queue, acknowledged_is_enough)
    })
}

/// Waiting requests of `queue` are cancelled by the framework (completed with
/// `STATUS_CANCELLED`, through `EvtIoCanceledOnQueue` when the queue has one).
fn cancel_waiting(queue: u64) {
    let (waiting, canceled_on_queue) = with(|h| {
        h.queue(queue).map_or((Vec::new(), 0), |q| {
            (q.waiting.drain(..).collect::<Vec<u64>>(), q.callbacks[7])
        })
    });
    let irql = queue_irql(queue);
    for request in waiting {
        if canceled_on_queue == 0 {
            with(|h| {
                if let Some(r) = h.request(request) {
                    r.completions = 1;
                    r.status = status::CANCELLED;
                }
            });
        } else {
            with(|h| {
                if let Some(q) = h.queue(queue) {
                    q.owned.push(request);
                }
            });
            host::invoke(
                "EvtIoCanceledOnQueue",
                canceled_on_queue,
                irql,
                &[queue, request],
            );
        }
    }
}

/// The driver-owned requests of `queue` that are cancelable get their `EvtRequestCancel`.
fn cancel_owned(queue: u64) {
    let cancelable: Vec<(u64, u64)> = with(|h| {
        let owned = h.queue(queue).map(|q| q.owned.clone()).unwrap_or_default();
        owned
            .into_iter()
            .filter_map(|r| {
                let cancel = h.request(r)?.cancel;
                (cancel != 0).then_some((r, cancel))
            })
            .collect()
    });
    for (request, cancel) in cancelable {
        with(|h| {
            if let Some(r) = h.request(request) {
                r.cancel = 0;
                r.canceled = true;
            }
        });
        host::invoke("EvtRequestCancel", cancel, DISPATCH_LEVEL, &[request]);
    }
}

/// The IRQL a queue's request callbacks run at: `PASSIVE_LEVEL` only for a passive queue.
#[must_use]
pub fn queue_irql(queue: u64) -> u8 {
    if with(|h| h.object(queue).is_some_and(|o| o.passive)) {
        PASSIVE_LEVEL
    } else {
        DISPATCH_LEVEL
    }
}

/// What a stop, purge or drain does to a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Halt {
    /// Stop presenting requests; waiting ones stay.
    Stop,
    /// Stop, cancel waiting requests and the driver's cancelable ones.
    Purge,
    /// Accept no new request, but present the waiting ones.
    Drain,
}

fn halt(method: &str, queue: u64, how: Halt, synchronous: bool, callback: u64, context: u64) {
    let ok = with(|h| {
        h.queue(queue)
            .map(|q| q.started = how == Halt::Drain && q.started)
            .is_some()
    });
    if !ok {
        bad_handle(method, queue);
        return;
    }
    match how {
        Halt::Stop => {}
        Halt::Purge => {
            cancel_waiting(queue);
            cancel_owned(queue);
        }
        Halt::Drain => crate::scenario::dispatch(queue),
    }
    if synchronous || callback != 0 {
        let waiting_too = how == Halt::Drain;
        let finished = crate::clock::pass_until(REQUEST_WAIT_MS, || {
            let waiting =
                waiting_too && with(|h| h.queue(queue).is_some_and(|q| !q.waiting.is_empty()));
            !(waiting || owned_outstanding(queue, false))
        });
        if let Some(ms) = finished.filter(|&ms| ms > 0) {
            record_info(
                "queue_stop_waited",
                &format!("{ms} ms of virtual time in {method} for requests the driver held"),
            );
        }
        if finished.is_none() {
            host::stop(
                "hang",
                0,
                &format!(
                    "{method} waits for requests the driver owns, and none of them is completed within {} s of virtual time",
                    REQUEST_WAIT_MS / 1000
                ),
            );
        }
    }
    if callback != 0 {
        // EvtIoQueueState(Queue, Context), at up to DISPATCH_LEVEL.
        host::invoke(
            "EvtIoQueueState",
            callback,
            DISPATCH_LEVEL,
            &[queue, context],
        );
    }
}

extern "win64" fn io_queue_stop(_globals: u64, queue: u64, callback: u64, context: u64) {
    halt(
        "WdfIoQueueStop",
        queue,
        Halt::Stop,
        false,
        callback,
        context,
    );
}

extern "win64" fn io_queue_stop_synchronously(_globals: u64, queue: u64) {
    halt("WdfIoQueueStopSynchronously", queue, Halt::Stop, true, 0, 0);
}

extern "win64" fn io_queue_purge(_globals: u64, queue: u64, callback: u64, context: u64) {
    halt(
        "WdfIoQueuePurge",
        queue,
        Halt::Purge,
        false,
        callback,
        context,
    );
}

extern "win64" fn io_queue_purge_synchronously(_globals: u64, queue: u64) {
    halt(
        "WdfIoQueuePurgeSynchronously",
        queue,
        Halt::Purge,
        true,
        0,
        0,
    );
}

extern "win64" fn io_queue_drain(_globals: u64, queue: u64, callback: u64, context: u64) {
    halt(
        "WdfIoQueueDrain",
        queue,
        Halt::Drain,
        false,
        callback,
        context,
    );
}

extern "win64" fn io_queue_drain_synchronously(_globals: u64, queue: u64) {
    halt(
        "WdfIoQueueDrainSynchronously",
        queue,
        Halt::Drain,
        true,
        0,
        0,
    );
}

extern "win64" fn io_queue_retrieve_next_request(_globals: u64, queue: u64, out: u64) -> i32 {
    let next = with(|h| {
        let q = h.queue(queue)?;
        let r = q.waiting.pop_front();
        if let Some(r) = r {
            q.owned.push(r);
        }
        Some(r)
    });
    match next {
        None => {
            bad_handle("WdfIoQueueRetrieveNextRequest", queue);
            status::INVALID_PARAMETER
        }
        Some(None) => status::NO_MORE_ENTRIES,
        Some(Some(request)) => hand_out(out, request),
    }
}

// ---- requests --------------------------------------------------------------------------------

/// Completes a request once; a second completion, or one of a stale handle, is a violation.
pub fn complete(request: u64, result: i32, information: Option<u64>, method: &str) {
    let outcome = with(|h| {
        let r = h.request(request)?;
        r.completions += 1;
        r.status = result;
        if let Some(info) = information {
            r.information = info;
        }
        let (queue, twice, label) = (r.queue, r.completions > 1, r.label.clone());
        if r.keep_answer && !twice {
            let answer = (r.status, r.information);
            h.answers.insert(request, answer);
        }
        if let Some(q) = h.queue(queue) {
            q.owned.retain(|&x| x != request);
        }
        Some((twice, label))
    });
    match outcome {
        None => violation(
            "request",
            0,
            &format!(
                "{method} of {request:#x}, which is not a live request (completed already, or never given to the driver)"
            ),
        ),
        Some((true, label)) => violation(
            "request",
            0,
            &format!("{method}: {label} completed a second time"),
        ),
        // A request the framework created is deleted once completed: its cleanup and destroy
        // callbacks run now, and its handle is stale from here on.
        Some((false, _)) => delete_tree(request),
    }
}

extern "win64" fn request_complete(_globals: u64, request: u64, result: i32) {
    complete(request, result, None, "WdfRequestComplete");
}

extern "win64" fn request_complete_with_information(
    _globals: u64,
    request: u64,
    result: i32,
    information: u64,
) {
    complete(
        request,
        result,
        Some(information),
        "WdfRequestCompleteWithInformation",
    );
}

extern "win64" fn request_complete_with_boost(_globals: u64, request: u64, result: i32, _b: u8) {
    complete(request, result, None, "WdfRequestCompleteWithPriorityBoost");
}

extern "win64" fn request_set_information(_globals: u64, request: u64, information: u64) {
    let ok = with(|h| {
        h.request(request)
            .map(|r| r.information = information)
            .is_some()
    });
    if !ok {
        bad_handle("WdfRequestSetInformation", request);
    }
}

extern "win64" fn request_get_information(_globals: u64, request: u64) -> u64 {
    with(|h| h.request(request).map_or(0, |r| r.information))
}

fn retrieve(request: u64, minimum: u64, buffer: u64, length: u64, output: bool) -> i32 {
    let method = if output {
        "WdfRequestRetrieveOutputBuffer"
    } else {
        "WdfRequestRetrieveInputBuffer"
    };
    let found = with(|h| {
        h.request(request).map(|r| {
            let len = if output {
                r.output_length
            } else {
                r.input_length
            };
            (r.buffer, len, r.major)
        })
    });
    let Some((address, len, major)) = found else {
        bad_handle(method, request);
        return status::INVALID_PARAMETER;
    };
    if buffer == 0 {
        violation("parameter", 0, &format!("{method} with a null Buffer"));
        return status::INVALID_PARAMETER;
    }
    let len = match (major, output) {
        (Major::Read, false) | (Major::Write, true) => return status::INVALID_DEVICE_REQUEST,
        _ => len,
    };
    if len == 0 || len < minimum || address == 0 {
        return status::BUFFER_TOO_SMALL;
    }
    // SAFETY: the driver's out parameters.
    unsafe {
        write::<u64>(buffer, address);
        if length != 0 {
            write::<u64>(length, len);
        }
    }
    status::SUCCESS
}

extern "win64" fn request_retrieve_input_buffer(
    _globals: u64,
    request: u64,
    minimum: u64,
    buffer: u64,
    length: u64,
) -> i32 {
    retrieve(request, minimum, buffer, length, false)
}

extern "win64" fn request_retrieve_output_buffer(
    _globals: u64,
    request: u64,
    minimum: u64,
    buffer: u64,
    length: u64,
) -> i32 {
    retrieve(request, minimum, buffer, length, true)
}

fn memory_for(request: u64, output: bool, out: u64) -> i32 {
    let found = with(|h| {
        let (buffer, len) = h.request(request).map(|r| {
            (
                r.buffer,
                if output {
                    r.output_length
                } else {
                    r.input_length
                },
            )
        })?;
        Some((buffer, len))
    });
    let Some((buffer, length)) = found.filter(|&(_, len)| len > 0) else {
        return status::BUFFER_TOO_SMALL;
    };
    let memory = create_object(Kind::Memory { buffer, length }, request, 0);
    hand_out(out, memory)
}

extern "win64" fn request_retrieve_input_memory(_globals: u64, request: u64, out: u64) -> i32 {
    memory_for(request, false, out)
}

extern "win64" fn request_retrieve_output_memory(_globals: u64, request: u64, out: u64) -> i32 {
    memory_for(request, true, out)
}

extern "win64" fn request_get_parameters(_globals: u64, request: u64, parameters: u64) {
    let found = with(|h| {
        h.request(request)
            .map(|r| (r.major, r.code, r.input_length, r.output_length))
    });
    let Some((major, code, input, output)) = found else {
        bad_handle("WdfRequestGetParameters", request);
        return;
    };
    if parameters == 0 {
        return;
    }
    // SAFETY: the driver's WDF_REQUEST_PARAMETERS: Size 0, MinorFunction 4, Type 8, then the
    // Parameters union at 16 (DeviceIoControl: OutputBufferLength 16, InputBufferLength 24,
    // IoControlCode 32; Read/Write: Length 16).
    unsafe {
        write::<u8>(parameters + 4, 0);
        match major {
            Major::DeviceControl => {
                write::<u32>(parameters + 8, 0x0E);
                write::<u64>(parameters + 16, output);
                write::<u64>(parameters + 24, input);
                write::<u32>(parameters + 32, code);
            }
            Major::Read => {
                write::<u32>(parameters + 8, 0x03);
                write::<u64>(parameters + 16, output);
            }
            Major::Write => {
                write::<u32>(parameters + 8, 0x04);
                write::<u64>(parameters + 16, input);
            }
        }
    }
}

extern "win64" fn request_mark_cancelable(_globals: u64, request: u64, cancel: u64) {
    let ok = with(|h| h.request(request).map(|r| r.cancel = cancel).is_some());
    if !ok {
        bad_handle("WdfRequestMarkCancelable", request);
    }
}

extern "win64" fn request_mark_cancelable_ex(_globals: u64, request: u64, cancel: u64) -> i32 {
    request_mark_cancelable(0, request, cancel);
    status::SUCCESS
}

extern "win64" fn request_unmark_cancelable(_globals: u64, request: u64) -> i32 {
    let was = with(|h| {
        h.request(request).map(|r| {
            r.cancel = 0;
            r.canceled
        })
    });
    match was {
        // Its cancel routine has run (or is about to): the driver must not complete it here.
        Some(true) => status::CANCELLED,
        Some(false) => status::SUCCESS,
        None => {
            bad_handle("WdfRequestUnmarkCancelable", request);
            status::INVALID_PARAMETER
        }
    }
}

extern "win64" fn request_is_canceled(_globals: u64, request: u64) -> u8 {
    u8::from(with(|h| h.request(request).is_some_and(|r| r.canceled)))
}

extern "win64" fn request_get_io_queue(_globals: u64, request: u64) -> u64 {
    with(|h| h.request(request).map_or(0, |r| r.queue))
}

extern "win64" fn request_get_status(_globals: u64, request: u64) -> i32 {
    with(|h| h.request(request).map_or(0, |r| r.status))
}

extern "win64" fn request_stop_acknowledge(_globals: u64, request: u64, _requeue: u8) {
    let ok = with(|h| h.request(request).map(|r| r.acknowledged = true).is_some());
    if !ok {
        bad_handle("WdfRequestStopAcknowledge", request);
    }
}

extern "win64" fn request_forward_to_io_queue(_globals: u64, request: u64, queue: u64) -> i32 {
    let ok = with(|h| {
        let from = h.request(request)?.queue;
        h.queue(queue)?;
        if let Some(q) = h.queue(from) {
            q.owned.retain(|&x| x != request);
        }
        if let Some(r) = h.request(request) {
            r.queue = queue;
        }
        h.queue(queue)?.waiting.push_back(request);
        Some(())
    });
    if ok.is_some() {
        status::SUCCESS
    } else {
        bad_handle("WdfRequestForwardToIoQueue", request);
        status::INVALID_PARAMETER
    }
}

// ---- memory ----------------------------------------------------------------------------------

extern "win64" fn memory_create(
    _globals: u64,
    attrs: u64,
    pool_type: u32,
    _tag: u32,
    size: u64,
    out: u64,
    buffer: u64,
) -> i32 {
    let paged = pool_type & 1 != 0;
    let address = host::pool_alloc(paged, size);
    if address == 0 {
        return status::INSUFFICIENT_RESOURCES;
    }
    let parent = with(|h| h.driver);
    let memory = create_object(
        Kind::Memory {
            buffer: address,
            length: size,
        },
        parent,
        attrs,
    );
    // SAFETY: the driver's out parameters.
    unsafe {
        if out != 0 {
            write::<u64>(out, memory);
        }
        if buffer != 0 {
            write::<u64>(buffer, address);
        }
    }
    status::SUCCESS
}

fn memory_of(memory: u64) -> Option<(u64, u64)> {
    with(|h| match h.object(memory)?.kind {
        Kind::Memory { buffer, length } => Some((buffer, length)),
        _ => None,
    })
}

extern "win64" fn memory_get_buffer(_globals: u64, memory: u64, length: u64) -> u64 {
    let Some((buffer, len)) = memory_of(memory) else {
        bad_handle("WdfMemoryGetBuffer", memory);
        return 0;
    };
    if length != 0 {
        // SAFETY: the driver's size_t out parameter.
        unsafe { write::<u64>(length, len) };
    }
    buffer
}

/// The address of `count` bytes at `offset` in a memory object, or the status its copy
/// methods return: `STATUS_INVALID_PARAMETER` for a handle that is no memory object (also a
/// violation), `STATUS_BUFFER_TOO_SMALL` for a range past its end.
fn memory_range(method: &str, memory: u64, offset: u64, count: u64) -> Result<u64, i32> {
    let Some((buffer, len)) = memory_of(memory) else {
        bad_handle(method, memory);
        return Err(status::INVALID_PARAMETER);
    };
    if offset.checked_add(count).is_none_or(|end| end > len) {
        return Err(status::BUFFER_TOO_SMALL);
    }
    Ok(buffer + offset)
}

extern "win64" fn memory_copy_to_buffer(
    _globals: u64,
    memory: u64,
    offset: u64,
    target: u64,
    count: u64,
) -> i32 {
    match memory_range("WdfMemoryCopyToBuffer", memory, offset, count) {
        Ok(at) => {
            // SAFETY: within the memory object, into the driver's buffer of `count` bytes.
            unsafe { std::ptr::copy(at as *const u8, target as *mut u8, count as usize) };
            status::SUCCESS
        }
        Err(status) => status,
    }
}

extern "win64" fn memory_copy_from_buffer(
    _globals: u64,
    memory: u64,
    offset: u64,
    source: u64,
    count: u64,
) -> i32 {
    match memory_range("WdfMemoryCopyFromBuffer", memory, offset, count) {
        Ok(at) => {
            // SAFETY: from the driver's buffer of `count` bytes into the memory object.
            unsafe { std::ptr::copy(source as *const u8, at as *mut u8, count as usize) };
            status::SUCCESS
        }
        Err(status) => status,
    }
}

// ---- objects ---------------------------------------------------------------------------------

extern "win64" fn object_get_typed_context(_globals: u64, handle: u64, type_info: u64) -> u64 {
    let unique = unique_of(type_info);
    let found = with(|h| {
        h.object_or_destroying(handle).map(|o| {
            o.contexts
                .iter()
                .find(|c| c.unique == unique)
                .map_or(0, |c| c.memory)
        })
    });
    match found {
        Some(memory) => memory,
        None => {
            bad_handle("WdfObjectGetTypedContextWorker", handle);
            0
        }
    }
}

extern "win64" fn object_allocate_context(_globals: u64, handle: u64, attrs: u64, out: u64) -> i32 {
    let a = attributes(attrs);
    if a.type_info == 0 {
        return status::INVALID_PARAMETER;
    }
    // SAFETY: the type info's ContextSize at 16.
    let size = unsafe { read::<u64>(a.type_info + 16) }.max(a.context_size);
    let unique = unique_of(a.type_info);
    let memory = with(|h| {
        let memory = h.keep_zeroed(size as usize);
        let o = h.object(handle)?;
        o.contexts.push(ContextBlock { unique, memory });
        if o.cleanup == 0 {
            o.cleanup = a.cleanup;
        }
        Some(memory)
    });
    match memory {
        Some(memory) => hand_out(out, memory),
        None => {
            bad_handle("WdfObjectAllocateContext", handle);
            status::INVALID_PARAMETER
        }
    }
}

extern "win64" fn object_delete(_globals: u64, handle: u64) {
    delete_tree(handle);
}

/// Deletes an object and its children, children first, each with its cleanup then destroy
/// callback (cleanup of objects other than the driver and device at up to `DISPATCH_LEVEL`
/// unless passive; here at the level the documentation allows at most).
pub fn delete_tree(handle: u64) {
    let children: Vec<u64> = with(|h| {
        h.objects
            .iter()
            .enumerate()
            .filter(|(_, o)| o.parent == handle && !o.deleted)
            .map(|(i, _)| host::HANDLE_BASE + 16 * i as u64)
            .filter(|&c| c != handle)
            .collect()
    });
    for child in children {
        delete_tree(child);
    }
    let info = with(|h| {
        let o = h.object(handle)?;
        let passive = o.passive || matches!(o.kind, Kind::Driver | Kind::Device);
        Some((o.cleanup, o.destroy, passive, o.kind.name()))
    });
    let Some((cleanup, destroy, passive, name)) = info else {
        return;
    };
    let irql = if passive {
        PASSIVE_LEVEL
    } else {
        DISPATCH_LEVEL
    };
    host::invoke(
        &format!("EvtCleanupCallback({name})"),
        cleanup,
        irql,
        &[handle],
    );
    with(|h| {
        if let Some(o) = h.object(handle) {
            o.destroying = true;
        }
    });
    host::invoke(
        &format!("EvtDestroyCallback({name})"),
        destroy,
        irql,
        &[handle],
    );
    with(|h| {
        if let Some(o) = h.object_or_destroying(handle) {
            o.deleted = true;
        }
    });
}

extern "win64" fn object_noop(_globals: u64, _handle: u64, _tag: u64, _line: u64, _file: u64) {}

// ---- locks -----------------------------------------------------------------------------------

extern "win64" fn spin_lock_create(_globals: u64, attrs: u64, out: u64) -> i32 {
    let parent = with(|h| h.device.as_ref().map_or(h.driver, |d| d.handle));
    let lock = create_object(
        Kind::SpinLock {
            held: false,
            saved: 0,
        },
        parent,
        attrs,
    );
    hand_out(out, lock)
}

extern "win64" fn spin_lock_acquire(_globals: u64, lock: u64) {
    let old = machine::irql();
    let state = with(|h| match &mut h.object(lock)?.kind {
        Kind::SpinLock { held, saved } => {
            let was = *held;
            *held = true;
            *saved = old;
            Some(was)
        }
        _ => None,
    });
    match state {
        None => bad_handle("WdfSpinLockAcquire", lock),
        Some(true) => violation(
            "lock",
            0,
            "WdfSpinLockAcquire of a lock this thread already holds (a deadlock on a real machine)",
        ),
        Some(false) => {}
    }
    machine::set_irql(old.max(DISPATCH_LEVEL));
    machine::set_spin_locks(machine::spin_locks() + 1);
}

extern "win64" fn spin_lock_release(_globals: u64, lock: u64) {
    let state = with(|h| match &mut h.object(lock)?.kind {
        Kind::SpinLock { held, saved } => {
            let was = *held;
            *held = false;
            Some((was, *saved))
        }
        _ => None,
    });
    match state {
        None => bad_handle("WdfSpinLockRelease", lock),
        Some((false, _)) => violation("lock", 0, "WdfSpinLockRelease of a lock not held"),
        Some((true, saved)) => {
            machine::set_spin_locks(machine::spin_locks().saturating_sub(1));
            machine::set_irql(saved);
        }
    }
}

extern "win64" fn wait_lock_create(_globals: u64, attrs: u64, out: u64) -> i32 {
    let parent = with(|h| h.device.as_ref().map_or(h.driver, |d| d.handle));
    let lock = create_object(Kind::WaitLock { held: false }, parent, attrs);
    hand_out(out, lock)
}

extern "win64" fn wait_lock_acquire(_globals: u64, lock: u64, timeout: u64) -> i32 {
    let state = with(|h| match &mut h.object(lock)?.kind {
        Kind::WaitLock { held } => {
            let was = *held;
            *held = true;
            Some(was)
        }
        _ => None,
    });
    match state {
        None => {
            bad_handle("WdfWaitLockAcquire", lock);
            status::INVALID_PARAMETER
        }
        Some(true) if timeout != 0 => 0x102,
        Some(true) => host::stop(
            "hang",
            0,
            "WdfWaitLockAcquire without a timeout of a wait lock this thread holds: it would wait forever",
        ),
        Some(false) => status::SUCCESS,
    }
}

extern "win64" fn wait_lock_release(_globals: u64, lock: u64) {
    let state = with(|h| match &mut h.object(lock)?.kind {
        Kind::WaitLock { held } => {
            let was = *held;
            *held = false;
            Some(was)
        }
        _ => None,
    });
    match state {
        None => bad_handle("WdfWaitLockRelease", lock),
        Some(false) => violation("lock", 0, "WdfWaitLockRelease of a lock not held"),
        Some(true) => {}
    }
}

// ---- timers, work items, DPCs ------------------------------------------------------------------

extern "win64" fn timer_create(_globals: u64, config: u64, attrs: u64, out: u64) -> i32 {
    if config == 0 {
        return status::INVALID_PARAMETER;
    }
    let function = fields(config, &kmdf::TIMER_CONFIG)
        .first()
        .map_or(0, |&(_, f)| f);
    // SAFETY: WDF_TIMER_CONFIG.Period at 16.
    let period = unsafe { read::<u32>(config + 16) };
    let parent = attributes(attrs).parent;
    if parent == 0 {
        violation(
            "parameter",
            0,
            "WdfTimerCreate without a ParentObject (KMDF requires one)",
        );
        return status::INVALID_PARAMETER;
    }
    let timer = create_object(
        Kind::Timer(Timer {
            function,
            period,
            due: None,
        }),
        parent,
        attrs,
    );
    hand_out(out, timer)
}

extern "win64" fn timer_start(_globals: u64, timer: u64, due: i64) -> u8 {
    let was = with(|h| {
        let now = h.clock;
        match &mut h.object(timer)?.kind {
            Kind::Timer(t) => {
                let was = t.due.is_some();
                let at = if due < 0 {
                    now + due.unsigned_abs()
                } else {
                    (due as u64)
                        .saturating_sub(crate::clock::EPOCH_TICKS)
                        .max(now)
                };
                t.due = Some(at);
                Some(was)
            }
            _ => None,
        }
    });
    match was {
        None => {
            bad_handle("WdfTimerStart", timer);
            0
        }
        Some(was) => u8::from(was),
    }
}

extern "win64" fn timer_stop(_globals: u64, timer: u64, _wait: u8) -> u8 {
    let was = with(|h| match &mut h.object(timer)?.kind {
        Kind::Timer(t) => Some(t.due.take().is_some()),
        _ => None,
    });
    if was.is_none() {
        bad_handle("WdfTimerStop", timer);
    }
    u8::from(was.unwrap_or(false))
}

/// Stores a created object's handle (or an allocation's address) in the driver's optional out
/// parameter (`WDFTIMER *`, `PVOID *`...) and reports success, as the create methods do.
fn hand_out(out: u64, handle: u64) -> i32 {
    if out != 0 {
        // SAFETY: the driver's out parameter for the new handle, which KMDF writes too.
        unsafe { write::<u64>(out, handle) };
    }
    status::SUCCESS
}

/// A work item or DPC: an object with one callback, the first field of its configuration.
fn create_deferred(
    config: u64,
    structure: &kmdf::Structure,
    attrs: u64,
    out: u64,
    kind: fn(u64) -> Kind,
) -> i32 {
    let function = fields(config, structure).first().map_or(0, |&(_, f)| f);
    let handle = create_object(kind(function), attributes(attrs).parent, attrs);
    hand_out(out, handle)
}

extern "win64" fn work_item_create(_globals: u64, config: u64, attrs: u64, out: u64) -> i32 {
    create_deferred(config, &kmdf::WORKITEM_CONFIG, attrs, out, |function| {
        Kind::WorkItem {
            function,
            queued: false,
        }
    })
}

extern "win64" fn dpc_create(_globals: u64, config: u64, attrs: u64, out: u64) -> i32 {
    create_deferred(config, &kmdf::DPC_CONFIG, attrs, out, |function| {
        Kind::Dpc {
            function,
            queued: false,
        }
    })
}

fn enqueue(handle: u64, method: &str) -> u8 {
    let newly = with(|h| {
        let newly = match &mut h.object(handle)?.kind {
            Kind::WorkItem { queued, .. } | Kind::Dpc { queued, .. } => {
                let newly = !*queued;
                *queued = true;
                newly
            }
            _ => return None,
        };
        if newly {
            h.pending.push_back(handle);
        }
        Some(newly)
    });
    match newly {
        None => {
            bad_handle(method, handle);
            0
        }
        Some(newly) => u8::from(newly),
    }
}

extern "win64" fn work_item_enqueue(_globals: u64, item: u64) {
    enqueue(item, "WdfWorkItemEnqueue");
}

extern "win64" fn dpc_enqueue(_globals: u64, dpc: u64) -> u8 {
    enqueue(dpc, "WdfDpcEnqueue")
}

extern "win64" fn work_item_flush(_globals: u64, _item: u64) {
    crate::clock::run_pending();
}

// ---- binding ---------------------------------------------------------------------------------

/// `WdfLdr.sys!WdfVersionBind(DriverObject, RegistryPath, BindInfo, ComponentGlobals)`: checks
/// the `WDF_BIND_INFO` (`Size` 0, `Component` 8, `Version` 16: major, minor, build; `FuncCount`
/// 28, `FuncTable` 32) and points the driver's `WdfFunctions_01xxx` at the host's table.
extern "win64" fn version_bind(_driver: u64, _registry: u64, info: u64, globals_out: u64) -> i32 {
    if info == 0 || globals_out == 0 {
        violation("parameter", 0, "WdfVersionBind with a null argument");
        return status::INVALID_PARAMETER;
    }
    // SAFETY: the stub library's WDF_BIND_INFO in the image's data.
    let (major, minor, count, table) = unsafe {
        (
            read::<u32>(info + 16),
            read::<u32>(info + 20),
            read::<u32>(info + 28),
            read::<u64>(info + 32),
        )
    };
    record_info("kmdf_version", &format!("{major}.{minor}"));
    record_info("function_count", &count.to_string());
    if major != 1 || minor > 33 || !RELEASED_TABLE_SIZES.contains(&count) || table == 0 {
        host::stop(
            "bind",
            0,
            &format!(
                "WdfVersionBind: the driver asks for KMDF {major}.{minor} with {count} functions; this host provides 1.33 with {TABLE_ENTRIES} (and the table sizes of earlier releases)"
            ),
        );
    }
    let (functions, globals) = with(|h| (table_address(h), h.globals));
    // SAFETY: FuncTable points at the driver's WdfFunctions_01xxx variable (1.15 and later).
    unsafe {
        write::<u64>(table, functions);
        write::<u64>(globals_out, globals);
    }
    status::SUCCESS
}

extern "win64" fn version_unbind(_driver: u64, _info: u64, _globals: u64) -> i32 {
    status::SUCCESS
}

static TABLE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

fn table_address(_host: &host::Host) -> u64 {
    TABLE.get().copied().unwrap_or(0)
}

/// The implementation of `WdfLdr.sys!name`, if any.
#[must_use]
pub fn resolve_loader(name: &str) -> Option<usize> {
    match name {
        "WdfVersionBind" => Some(version_bind as *const () as usize),
        "WdfVersionUnbind" => Some(version_unbind as *const () as usize),
        _ => None,
    }
}

/// The host's implementation of a framework method, by `WDFFUNCENUM` name.
#[must_use]
pub fn method(name: &str) -> Option<usize> {
    string::method(name)
        .or_else(|| wmi::method(name))
        .or_else(|| core_method(name))
}

fn core_method(name: &str) -> Option<usize> {
    Some(match name {
        "WdfDriverCreate" => driver_create as *const () as usize,
        "WdfDriverGetRegistryPath" => driver_get_registry_path as *const () as usize,
        "WdfDriverWdmGetDriverObject" => driver_wdm_get_driver_object as *const () as usize,
        "WdfDriverOpenParametersRegistryKey" => driver_open_parameters_key as *const () as usize,
        "WdfDeviceInitSetPnpPowerEventCallbacks" => {
            init_set_pnp_power_callbacks as *const () as usize
        }
        "WdfDeviceInitSetPowerPolicyEventCallbacks" => {
            init_set_power_policy_callbacks as *const () as usize
        }
        "WdfDeviceInitSetPowerPageable" => init_set_power_pageable as *const () as usize,
        "WdfDeviceInitSetPowerNotPageable" => init_set_power_not_pageable as *const () as usize,
        "WdfDeviceInitSetPowerInrush" => init_set_power_inrush as *const () as usize,
        "WdfDeviceInitSetIoType"
        | "WdfDeviceInitSetExclusive"
        | "WdfDeviceInitSetDeviceType"
        | "WdfDeviceInitSetCharacteristics"
        | "WdfDeviceInitSetIoTypeEx"
        | "WdfDeviceInitSetPowerPolicyOwnership" => init_ignored as *const () as usize,
        "WdfDeviceInitSetRequestAttributes" => init_set_request_attributes as *const () as usize,
        "WdfDeviceInitSetIoInCallerContextCallback" => {
            init_set_io_in_caller_context as *const () as usize
        }
        "WdfControlDeviceInitSetShutdownNotification" => {
            control_init_set_shutdown_notification as *const () as usize
        }
        "WdfDeviceConfigureRequestDispatching" => {
            device_configure_request_dispatching as *const () as usize
        }
        "WdfDeviceEnqueueRequest" => device_enqueue_request as *const () as usize,
        "WdfDeviceInitAssignName"
        | "WdfDeviceInitAssignSDDLString"
        | "WdfDeviceInitSetDeviceClass" => init_ok as *const () as usize,
        "WdfDeviceInitSetFileObjectConfig" => init_set_file_object_config as *const () as usize,
        "WdfDeviceInitFree" => init_free as *const () as usize,
        "WdfControlDeviceInitAllocate" => control_device_init_allocate as *const () as usize,
        "WdfControlFinishInitializing" => control_finish_initializing as *const () as usize,
        "WdfDeviceCreate" => device_create as *const () as usize,
        "WdfCmResourceListGetCount" => cm_resource_list_get_count as *const () as usize,
        "WdfCmResourceListGetDescriptor" => cm_resource_list_get_descriptor as *const () as usize,
        "WdfFdoQueryForInterface" => fdo_query_for_interface as *const () as usize,
        "WdfDeviceAllocAndQueryProperty" => device_alloc_and_query_property as *const () as usize,
        "WdfDeviceSetDeviceState" => device_set_device_state as *const () as usize,
        "WdfDeviceCreateDeviceInterface" | "WdfDeviceCreateSymbolicLink" => {
            device_ok as *const () as usize
        }
        "WdfDeviceAssignSxWakeSettings" => device_assign_sx_wake as *const () as usize,
        "WdfDeviceSetPnpCapabilities"
        | "WdfDeviceSetPowerCapabilities"
        | "WdfDeviceSetCharacteristics"
        | "WdfDeviceSetDeviceInterfaceState" => device_void as *const () as usize,
        "WdfDeviceSetSpecialFileSupport" => device_set_special_file_support as *const () as usize,
        "WdfDeviceGetDevicePowerState" | "WdfDeviceGetDevicePowerPolicyState" => {
            device_get_power_state as *const () as usize
        }
        "WdfDeviceAssignS0IdleSettings" => device_assign_s0_idle as *const () as usize,
        "WdfDeviceStopIdleNoTrack" | "WdfDeviceStopIdleActual" => {
            device_stop_idle as *const () as usize
        }
        "WdfDeviceResumeIdleNoTrack" | "WdfDeviceResumeIdleActual" => {
            device_resume_idle as *const () as usize
        }
        "WdfDeviceGetDefaultQueue" => device_get_default_queue as *const () as usize,
        "WdfDeviceWdmGetDeviceObject" => device_wdm_get_device_object as *const () as usize,
        "WdfDeviceGetDriver" => device_get_driver as *const () as usize,
        "WdfFdoInitOpenRegistryKey" => fdo_init_open_registry_key as *const () as usize,
        "WdfDeviceOpenRegistryKey" => device_open_registry_key as *const () as usize,
        "WdfRegistryQueryULong" => registry_query_ulong as *const () as usize,
        "WdfRegistryAssignULong" => registry_assign_ulong as *const () as usize,
        "WdfRegistryClose" => registry_close as *const () as usize,
        "WdfIoQueueCreate" => io_queue_create as *const () as usize,
        "WdfIoQueueGetDevice" => io_queue_get_device as *const () as usize,
        "WdfIoQueueStart" => io_queue_start as *const () as usize,
        "WdfIoQueueStop" => io_queue_stop as *const () as usize,
        "WdfIoQueueStopSynchronously" => io_queue_stop_synchronously as *const () as usize,
        "WdfIoQueuePurge" => io_queue_purge as *const () as usize,
        "WdfIoQueuePurgeSynchronously" => io_queue_purge_synchronously as *const () as usize,
        "WdfIoQueueDrain" => io_queue_drain as *const () as usize,
        "WdfIoQueueDrainSynchronously" => io_queue_drain_synchronously as *const () as usize,
        "WdfIoQueueRetrieveNextRequest" => io_queue_retrieve_next_request as *const () as usize,
        "WdfRequestComplete" => request_complete as *const () as usize,
        "WdfRequestCompleteWithInformation" => {
            request_complete_with_information as *const () as usize
        }
        "WdfRequestCompleteWithPriorityBoost" => request_complete_with_boost as *const () as usize,
        "WdfRequestSetInformation" => request_set_information as *const () as usize,
        "WdfRequestGetInformation" => request_get_information as *const () as usize,
        "WdfRequestRetrieveInputBuffer" => request_retrieve_input_buffer as *const () as usize,
        "WdfRequestRetrieveOutputBuffer" => request_retrieve_output_buffer as *const () as usize,
        "WdfRequestRetrieveInputMemory" => request_retrieve_input_memory as *const () as usize,
        "WdfRequestRetrieveOutputMemory" => request_retrieve_output_memory as *const () as usize,
        "WdfRequestGetParameters" => request_get_parameters as *const () as usize,
        "WdfRequestMarkCancelable" => request_mark_cancelable as *const () as usize,
        "WdfRequestMarkCancelableEx" => request_mark_cancelable_ex as *const () as usize,
        "WdfRequestUnmarkCancelable" => request_unmark_cancelable as *const () as usize,
        "WdfRequestIsCanceled" => request_is_canceled as *const () as usize,
        "WdfRequestGetIoQueue" => request_get_io_queue as *const () as usize,
        "WdfRequestGetStatus" => request_get_status as *const () as usize,
        "WdfRequestStopAcknowledge" => request_stop_acknowledge as *const () as usize,
        "WdfRequestForwardToIoQueue" => request_forward_to_io_queue as *const () as usize,
        "WdfMemoryCreate" => memory_create as *const () as usize,
        "WdfMemoryGetBuffer" => memory_get_buffer as *const () as usize,
        "WdfMemoryCopyToBuffer" => memory_copy_to_buffer as *const () as usize,
        "WdfMemoryCopyFromBuffer" => memory_copy_from_buffer as *const () as usize,
        "WdfObjectGetTypedContextWorker" => object_get_typed_context as *const () as usize,
        "WdfObjectAllocateContext" => object_allocate_context as *const () as usize,
        "WdfObjectDelete" => object_delete as *const () as usize,
        "WdfObjectReferenceActual" | "WdfObjectDereferenceActual" => {
            object_noop as *const () as usize
        }
        "WdfTimerGetParentObject" | "WdfWorkItemGetParentObject" | "WdfDpcGetParentObject" => {
            object_get_parent as *const () as usize
        }
        "WdfSpinLockCreate" => spin_lock_create as *const () as usize,
        "WdfSpinLockAcquire" => spin_lock_acquire as *const () as usize,
        "WdfSpinLockRelease" => spin_lock_release as *const () as usize,
        "WdfWaitLockCreate" => wait_lock_create as *const () as usize,
        "WdfWaitLockAcquire" => wait_lock_acquire as *const () as usize,
        "WdfWaitLockRelease" => wait_lock_release as *const () as usize,
        "WdfTimerCreate" => timer_create as *const () as usize,
        "WdfTimerStart" => timer_start as *const () as usize,
        "WdfTimerStop" => timer_stop as *const () as usize,
        "WdfWorkItemCreate" => work_item_create as *const () as usize,
        "WdfWorkItemEnqueue" => work_item_enqueue as *const () as usize,
        "WdfWorkItemFlush" => work_item_flush as *const () as usize,
        "WdfDpcCreate" => dpc_create as *const () as usize,
        "WdfDpcEnqueue" => dpc_enqueue as *const () as usize,
        _ => return None,
    })
}

/// Builds the function table: implemented methods (each through its gate), and for the others
/// the trap slot
/// `trap_base + index * TRAP_SLOT` (slots 0..458 are the table's). Returns its address and the
/// number of implemented entries.
pub fn build_table(trap_base: usize, gates: &mut crate::gate::Gates) -> (u64, usize) {
    let mut implemented = 0;
    let entries: Vec<u64> = (0..TABLE_ENTRIES)
        .map(|i| {
            let name = pagecheck::wdf::function_name(i as u64).unwrap_or("?");
            if let Some(f) = method(name) {
                implemented += 1;
                gates.wrap(name, f).unwrap_or(f) as u64
            } else {
                (trap_base + i * crate::machine::TRAP_SLOT) as u64
            }
        })
        .collect();
    let address = with(|h| {
        let at = h.keep_zeroed(TABLE_ENTRIES * 8);
        for (i, e) in entries.iter().enumerate() {
            // SAFETY: the block just allocated, TABLE_ENTRIES u64 long.
            unsafe { write::<u64>(at + 8 * i as u64, *e) };
        }
        at
    });
    let _ = TABLE.set(address);
    (address, implemented)
}

/// Names of the table's trap slots.
#[must_use]
pub fn table_names() -> Vec<String> {
    (0..TABLE_ENTRIES)
        .map(|i| {
            pagecheck::wdf::function_name(i as u64).map_or_else(
                || format!("WdfFunctions[{i}]"),
                |n| format!("{n} (KMDF method {i})"),
            )
        })
        .collect()
}
