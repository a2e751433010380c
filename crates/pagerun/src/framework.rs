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

use crate::host::{
    self, ContextBlock, Device, DeviceInit, Kind, Major, Queue, Timer, check_call, read, status,
    violation, with, write,
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
fn fields(config: u64, structure: &kmdf::Structure) -> Vec<(u16, u64)> {
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
fn create_object(kind: Kind, default_parent: u64, attrs: u64) -> u64 {
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

fn bad_handle(method: &str, handle: u64) {
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
    check_call("WdfDriverCreate", 0, false);
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
    if out != 0 {
        // SAFETY: the driver's WDFDRIVER out parameter.
        unsafe { write::<u64>(out, handle) };
    }
    status::SUCCESS
}

extern "win64" fn driver_get_registry_path(_globals: u64, _driver: u64) -> u64 {
    0
}

extern "win64" fn driver_wdm_get_driver_object(_globals: u64, _driver: u64) -> u64 {
    with(|h| h.driver_object)
}

fn record_info(key: &str, value: &str) {
    crate::record!("info {key} {value}");
}

// ---- device init -----------------------------------------------------------------------------

fn init_call(method: &'static str) {
    check_call(method, 0, false);
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

extern "win64" fn control_device_init_allocate(_globals: u64, _driver: u64, _sddl: u64) -> u64 {
    check_call("WdfControlDeviceInitAllocate", 0, false);
    with(|h| {
        h.init = DeviceInit::default();
        if h.init_pointer == 0 {
            h.init_pointer = h.keep_zeroed(64);
        }
        h.init_pointer
    })
}

extern "win64" fn control_finish_initializing(_globals: u64, _device: u64) {
    check_call("WdfControlFinishInitializing", 0, false);
}

// ---- device ----------------------------------------------------------------------------------

extern "win64" fn device_create(_globals: u64, init: u64, attrs: u64, out: u64) -> i32 {
    check_call("WdfDeviceCreate", 0, false);
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

fn device_of(method: &str, handle: u64) -> bool {
    let ok = with(|h| h.device.as_ref().is_some_and(|d| d.handle == handle));
    if !ok {
        bad_handle(method, handle);
    }
    ok
}

extern "win64" fn device_ok(_globals: u64, device: u64, _a: u64, _b: u64) -> i32 {
    check_call("WdfDevice (method without effect on the model)", 0, false);
    device_of("WdfDevice method", device);
    status::SUCCESS
}

extern "win64" fn device_void(_globals: u64, device: u64, _a: u64) {
    check_call("WdfDevice (method without effect on the model)", 0, false);
    device_of("WdfDevice method", device);
}

extern "win64" fn device_set_special_file_support(
    _globals: u64,
    device: u64,
    file_type: u32,
    supported: u8,
) {
    check_call("WdfDeviceSetSpecialFileSupport", 0, false);
    if device_of("WdfDeviceSetSpecialFileSupport", device) {
        with(|h| {
            if let Some(d) = h.device.as_mut() {
                d.special_files |= supported != 0;
            }
        });
        record_info(
            "special_file_support",
            &format!("type {file_type} {}", supported != 0),
        );
    }
}

extern "win64" fn device_get_power_state(_globals: u64, device: u64) -> u32 {
    check_call("WdfDeviceGetDevicePowerState", 0, false);
    device_of("WdfDeviceGetDevicePowerState", device);
    with(|h| h.device.as_ref().map_or(0, |d| d.power_state))
}

extern "win64" fn device_assign_s0_idle(_globals: u64, device: u64, _settings: u64) -> i32 {
    check_call("WdfDeviceAssignS0IdleSettings", 0, false);
    if device_of("WdfDeviceAssignS0IdleSettings", device) {
        with(|h| {
            if let Some(d) = h.device.as_mut() {
                d.s0_idle = true;
            }
        });
    }
    status::SUCCESS
}

extern "win64" fn device_stop_idle(_globals: u64, device: u64, _wait: u8) -> i32 {
    check_call("WdfDeviceStopIdle", 0, false);
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
    check_call("WdfDeviceResumeIdle", 0, false);
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
    check_call("WdfDeviceGetDefaultQueue", 0, false);
    device_of("WdfDeviceGetDefaultQueue", device);
    with(|h| {
        h.objects
            .iter()
            .position(|o| matches!(&o.kind, Kind::Queue(q) if q.default) && !o.deleted)
            .map_or(0, |i| host::HANDLE_BASE + 16 * i as u64)
    })
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
    check_call(method, 0, false);
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

fn unicode(address: u64) -> Option<String> {
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
    check_call("WdfRegistryQueryULong", 0, false);
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
    check_call("WdfRegistryAssignULong", 0, false);
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
    check_call("WdfRegistryClose", 0, false);
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
    check_call("WdfIoQueueCreate", 0, false);
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
    let mut queue = Queue {
        dispatch,
        // WdfUseDefault (2): power-managed for a function driver.
        power_managed: power_managed != 0,
        default: default != 0,
        started: true,
        ..Queue::default()
    };
    for (offset, value) in fields(config, &kmdf::IO_QUEUE_CONFIG) {
        queue.callbacks[usize::from((offset - 16) / 8)] = value;
    }
    let handle = create_object(Kind::Queue(Box::new(queue)), device, attrs);
    if out != 0 {
        // SAFETY: the driver's WDFQUEUE out parameter.
        unsafe { write::<u64>(out, handle) };
    }
    status::SUCCESS
}

extern "win64" fn io_queue_get_device(_globals: u64, queue: u64) -> u64 {
    with(|h| {
        let device = h.device.as_ref().map_or(0, |d| d.handle);
        if h.queue(queue).is_some() { device } else { 0 }
    })
}

extern "win64" fn io_queue_start(_globals: u64, queue: u64) {
    check_call("WdfIoQueueStart", 0, false);
    let ok = with(|h| h.queue(queue).map(|q| q.started = true).is_some());
    if !ok {
        bad_handle("WdfIoQueueStart", queue);
    }
}

extern "win64" fn io_queue_stop(_globals: u64, queue: u64, _callback: u64, _context: u64) {
    check_call("WdfIoQueueStop", 0, false);
    let ok = with(|h| h.queue(queue).map(|q| q.started = false).is_some());
    if !ok {
        bad_handle("WdfIoQueueStop", queue);
    }
}

extern "win64" fn io_queue_retrieve_next_request(_globals: u64, queue: u64, out: u64) -> i32 {
    check_call("WdfIoQueueRetrieveNextRequest", 0, false);
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
        Some(Some(request)) => {
            if out != 0 {
                // SAFETY: the driver's WDFREQUEST out parameter.
                unsafe { write::<u64>(out, request) };
            }
            status::SUCCESS
        }
    }
}

// ---- requests --------------------------------------------------------------------------------

/// Completes a request once; a second completion, or one of a stale handle, is a violation.
pub fn complete(request: u64, result: i32, information: Option<u64>, method: &str) {
    check_call(method, 0, false);
    let outcome = with(|h| {
        let r = h.request(request)?;
        r.completions += 1;
        r.status = result;
        if let Some(info) = information {
            r.information = info;
        }
        let (queue, twice, label) = (r.queue, r.completions > 1, r.label.clone());
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
        Some((false, _)) => {}
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
    check_call(method, 0, false);
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
    if out != 0 {
        // SAFETY: the driver's WDFMEMORY out parameter.
        unsafe { write::<u64>(out, memory) };
    }
    status::SUCCESS
}

extern "win64" fn request_retrieve_input_memory(_globals: u64, request: u64, out: u64) -> i32 {
    check_call("WdfRequestRetrieveInputMemory", 0, false);
    memory_for(request, false, out)
}

extern "win64" fn request_retrieve_output_memory(_globals: u64, request: u64, out: u64) -> i32 {
    check_call("WdfRequestRetrieveOutputMemory", 0, false);
    memory_for(request, true, out)
}

extern "win64" fn request_get_parameters(_globals: u64, request: u64, parameters: u64) {
    check_call("WdfRequestGetParameters", 0, false);
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
    check_call("WdfRequestMarkCancelable", 0, false);
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
    check_call("WdfRequestUnmarkCancelable", 0, false);
    let ok = with(|h| h.request(request).map(|r| r.cancel = 0).is_some());
    if ok {
        status::SUCCESS
    } else {
        bad_handle("WdfRequestUnmarkCancelable", request);
        status::INVALID_PARAMETER
    }
}

extern "win64" fn request_is_canceled(_globals: u64, _request: u64) -> u8 {
    0
}

extern "win64" fn request_get_io_queue(_globals: u64, request: u64) -> u64 {
    with(|h| h.request(request).map_or(0, |r| r.queue))
}

extern "win64" fn request_get_status(_globals: u64, request: u64) -> i32 {
    with(|h| h.request(request).map_or(0, |r| r.status))
}

extern "win64" fn request_stop_acknowledge(_globals: u64, request: u64, _requeue: u8) {
    check_call("WdfRequestStopAcknowledge", 0, false);
    let ok = with(|h| h.request(request).map(|r| r.acknowledged = true).is_some());
    if !ok {
        bad_handle("WdfRequestStopAcknowledge", request);
    }
}

extern "win64" fn request_forward_to_io_queue(_globals: u64, request: u64, queue: u64) -> i32 {
    check_call("WdfRequestForwardToIoQueue", 0, false);
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
    check_call("WdfMemoryCreate", 0, paged);
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

extern "win64" fn memory_copy_to_buffer(
    _globals: u64,
    memory: u64,
    offset: u64,
    target: u64,
    count: u64,
) -> i32 {
    let Some((buffer, len)) = memory_of(memory) else {
        bad_handle("WdfMemoryCopyToBuffer", memory);
        return status::INVALID_PARAMETER;
    };
    if offset.checked_add(count).is_none_or(|end| end > len) {
        return status::BUFFER_TOO_SMALL;
    }
    // SAFETY: within the memory object, into the driver's buffer of `count` bytes.
    unsafe {
        std::ptr::copy(
            (buffer + offset) as *const u8,
            target as *mut u8,
            count as usize,
        );
    }
    status::SUCCESS
}

extern "win64" fn memory_copy_from_buffer(
    _globals: u64,
    memory: u64,
    offset: u64,
    source: u64,
    count: u64,
) -> i32 {
    let Some((buffer, len)) = memory_of(memory) else {
        bad_handle("WdfMemoryCopyFromBuffer", memory);
        return status::INVALID_PARAMETER;
    };
    if offset.checked_add(count).is_none_or(|end| end > len) {
        return status::BUFFER_TOO_SMALL;
    }
    // SAFETY: from the driver's buffer of `count` bytes into the memory object.
    unsafe {
        std::ptr::copy(
            source as *const u8,
            (buffer + offset) as *mut u8,
            count as usize,
        );
    }
    status::SUCCESS
}

// ---- objects ---------------------------------------------------------------------------------

extern "win64" fn object_get_typed_context(_globals: u64, handle: u64, type_info: u64) -> u64 {
    let unique = unique_of(type_info);
    let found = with(|h| {
        h.object(handle).map(|o| {
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
    check_call("WdfObjectAllocateContext", 0, false);
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
        Some(memory) => {
            if out != 0 {
                // SAFETY: the driver's PVOID out parameter.
                unsafe { write::<u64>(out, memory) };
            }
            status::SUCCESS
        }
        None => {
            bad_handle("WdfObjectAllocateContext", handle);
            status::INVALID_PARAMETER
        }
    }
}

extern "win64" fn object_delete(_globals: u64, handle: u64) {
    check_call("WdfObjectDelete", 0, false);
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
            o.deleted = true;
        }
    });
    host::invoke(
        &format!("EvtDestroyCallback({name})"),
        destroy,
        irql,
        &[handle],
    );
}

extern "win64" fn object_noop(_globals: u64, _handle: u64, _tag: u64, _line: u64, _file: u64) {}

// ---- locks -----------------------------------------------------------------------------------

extern "win64" fn spin_lock_create(_globals: u64, attrs: u64, out: u64) -> i32 {
    check_call("WdfSpinLockCreate", 0, false);
    let parent = with(|h| h.device.as_ref().map_or(h.driver, |d| d.handle));
    let lock = create_object(
        Kind::SpinLock {
            held: false,
            saved: 0,
        },
        parent,
        attrs,
    );
    if out != 0 {
        // SAFETY: the driver's WDFSPINLOCK out parameter.
        unsafe { write::<u64>(out, lock) };
    }
    status::SUCCESS
}

extern "win64" fn spin_lock_acquire(_globals: u64, lock: u64) {
    check_call("WdfSpinLockAcquire", 0, false);
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
    check_call("WdfSpinLockRelease", 0, false);
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
    check_call("WdfWaitLockCreate", 0, false);
    let parent = with(|h| h.device.as_ref().map_or(h.driver, |d| d.handle));
    let lock = create_object(Kind::WaitLock { held: false }, parent, attrs);
    if out != 0 {
        // SAFETY: the driver's WDFWAITLOCK out parameter.
        unsafe { write::<u64>(out, lock) };
    }
    status::SUCCESS
}

extern "win64" fn wait_lock_acquire(_globals: u64, lock: u64, timeout: u64) -> i32 {
    check_call("WdfWaitLockAcquire", 0, false);
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
    check_call("WdfWaitLockRelease", 0, false);
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
    check_call("WdfTimerCreate", 0, false);
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
    if out != 0 {
        // SAFETY: the driver's WDFTIMER out parameter.
        unsafe { write::<u64>(out, timer) };
    }
    status::SUCCESS
}

extern "win64" fn timer_start(_globals: u64, timer: u64, due: i64) -> u8 {
    check_call("WdfTimerStart", 0, false);
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
    check_call("WdfTimerStop", 0, false);
    let was = with(|h| match &mut h.object(timer)?.kind {
        Kind::Timer(t) => Some(t.due.take().is_some()),
        _ => None,
    });
    if was.is_none() {
        bad_handle("WdfTimerStop", timer);
    }
    u8::from(was.unwrap_or(false))
}

extern "win64" fn work_item_create(_globals: u64, config: u64, attrs: u64, out: u64) -> i32 {
    check_call("WdfWorkItemCreate", 0, false);
    let function = fields(config, &kmdf::WORKITEM_CONFIG)
        .first()
        .map_or(0, |&(_, f)| f);
    let parent = attributes(attrs).parent;
    let item = create_object(
        Kind::WorkItem {
            function,
            queued: false,
        },
        parent,
        attrs,
    );
    if out != 0 {
        // SAFETY: the driver's WDFWORKITEM out parameter.
        unsafe { write::<u64>(out, item) };
    }
    status::SUCCESS
}

extern "win64" fn dpc_create(_globals: u64, config: u64, attrs: u64, out: u64) -> i32 {
    check_call("WdfDpcCreate", 0, false);
    let function = fields(config, &kmdf::DPC_CONFIG)
        .first()
        .map_or(0, |&(_, f)| f);
    let parent = attributes(attrs).parent;
    let dpc = create_object(
        Kind::Dpc {
            function,
            queued: false,
        },
        parent,
        attrs,
    );
    if out != 0 {
        // SAFETY: the driver's WDFDPC out parameter.
        unsafe { write::<u64>(out, dpc) };
    }
    status::SUCCESS
}

fn enqueue(handle: u64, method: &str) -> u8 {
    check_call(method, 0, false);
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
    check_call("WdfWorkItemFlush", 0, false);
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
        | "WdfDeviceInitSetRequestAttributes"
        | "WdfDeviceInitSetIoTypeEx"
        | "WdfDeviceInitSetPowerPolicyOwnership"
        | "WdfDeviceInitSetIoInCallerContextCallback" => init_ignored as *const () as usize,
        "WdfDeviceInitAssignName"
        | "WdfDeviceInitAssignSDDLString"
        | "WdfDeviceInitSetDeviceClass" => init_ok as *const () as usize,
        "WdfDeviceInitSetFileObjectConfig" => init_set_file_object_config as *const () as usize,
        "WdfDeviceInitFree" => init_free as *const () as usize,
        "WdfControlDeviceInitAllocate" => control_device_init_allocate as *const () as usize,
        "WdfControlFinishInitializing" => control_finish_initializing as *const () as usize,
        "WdfDeviceCreate" => device_create as *const () as usize,
        "WdfDeviceCreateDeviceInterface"
        | "WdfDeviceCreateSymbolicLink"
        | "WdfDeviceAssignSxWakeSettings"
        | "WdfDeviceConfigureRequestDispatching" => device_ok as *const () as usize,
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
        "WdfIoQueueStop"
        | "WdfIoQueueStopSynchronously"
        | "WdfIoQueuePurge"
        | "WdfIoQueuePurgeSynchronously"
        | "WdfIoQueueDrain"
        | "WdfIoQueueDrainSynchronously" => io_queue_stop as *const () as usize,
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

/// Builds the function table: implemented methods, and for the others the trap slot
/// `trap_base + index * TRAP_SLOT` (slots 0..458 are the table's). Returns its address and the
/// number of implemented entries.
pub fn build_table(trap_base: usize) -> (u64, usize) {
    let mut implemented = 0;
    let entries: Vec<u64> = (0..TABLE_ENTRIES)
        .map(|i| {
            let name = pagecheck::wdf::function_name(i as u64).unwrap_or("?");
            if let Some(f) = method(name) {
                implemented += 1;
                f as u64
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
