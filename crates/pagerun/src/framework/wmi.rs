//! WMI: `WdfDeviceAssignMofResourceName`, providers and instances (`WdfWmiProviderCreate`,
//! `WdfWmiInstanceCreate`, register, deregister, fire event). The `io` scenario queries each
//! registered instance the way the WMI service would ([`registered_instances`]).

use pagecheck::kmdf;

use crate::host::{self, Kind, WmiInstance, read, status, violation, with, write};

use super::{bad_handle, create_object, device_of, fields};

/// `WdfWmiProviderEventOnly` of `WDF_WMI_PROVIDER_FLAGS`.
const EVENT_ONLY: u32 = 0x1;

extern "win64" fn device_assign_mof_resource_name(_globals: u64, device: u64, name: u64) -> i32 {
    if !device_of("WdfDeviceAssignMofResourceName", device) {
        return status::INVALID_PARAMETER;
    }
    if super::unicode(name).is_none_or(|n| n.is_empty()) {
        violation(
            "parameter",
            0,
            "WdfDeviceAssignMofResourceName without a resource name",
        );
        return status::INVALID_PARAMETER;
    }
    status::SUCCESS
}

/// `WDF_WMI_PROVIDER_CONFIG`: Size 0, Guid 4, Flags 20, MinInstanceBufferSize 24,
/// EvtWmiProviderFunctionControl 32.
fn provider_config(config: u64) -> Option<(bool, u32)> {
    if config == 0 {
        return None;
    }
    // SAFETY: the driver's WDF_WMI_PROVIDER_CONFIG.
    let (size, flags, min_buffer) = unsafe {
        (
            read::<u32>(config),
            read::<u32>(config + 20),
            read::<u32>(config + 24),
        )
    };
    (size >= 28).then_some((flags & EVENT_ONLY != 0, min_buffer))
}

fn create_provider(device: u64, config: u64, attrs: u64) -> Option<u64> {
    let (event_only, min_buffer) = provider_config(config)?;
    Some(create_object(
        Kind::WmiProvider {
            event_only,
            min_buffer,
        },
        device,
        attrs,
    ))
}

extern "win64" fn wmi_provider_create(
    _globals: u64,
    device: u64,
    config: u64,
    attrs: u64,
    out: u64,
) -> i32 {
    if !device_of("WdfWmiProviderCreate", device) {
        return status::INVALID_PARAMETER;
    }
    let Some(provider) = create_provider(device, config, attrs) else {
        violation(
            "parameter",
            0,
            "WdfWmiProviderCreate without a WDF_WMI_PROVIDER_CONFIG of the right size",
        );
        return status::INVALID_PARAMETER;
    };
    if out != 0 {
        // SAFETY: the driver's WDFWMIPROVIDER out parameter.
        unsafe { write::<u64>(out, provider) };
    }
    status::SUCCESS
}

/// `WDF_WMI_INSTANCE_CONFIG`: Size 0, Provider 8, ProviderConfig 16, UseContextForQuery 24,
/// Register 25, then the four callbacks (`pagecheck::kmdf::WMI_INSTANCE_CONFIG`).
extern "win64" fn wmi_instance_create(
    _globals: u64,
    device: u64,
    config: u64,
    attrs: u64,
    out: u64,
) -> i32 {
    if !device_of("WdfWmiInstanceCreate", device) {
        return status::INVALID_PARAMETER;
    }
    if config == 0 {
        violation(
            "parameter",
            0,
            "WdfWmiInstanceCreate without a WDF_WMI_INSTANCE_CONFIG",
        );
        return status::INVALID_PARAMETER;
    }
    // SAFETY: the driver's WDF_WMI_INSTANCE_CONFIG.
    let (provider, provider_config, register) = unsafe {
        (
            read::<u64>(config + 8),
            read::<u64>(config + 16),
            read::<u8>(config + 25),
        )
    };
    let provider = if provider == 0 {
        match create_provider(device, provider_config, 0) {
            Some(p) => p,
            None => {
                violation(
                    "parameter",
                    0,
                    "WdfWmiInstanceCreate with neither a Provider nor a valid ProviderConfig",
                );
                return status::INVALID_PARAMETER;
            }
        }
    } else {
        provider
    };
    let Some((event_only, min_buffer)) = with(|h| match h.object(provider)?.kind {
        Kind::WmiProvider {
            event_only,
            min_buffer,
        } => Some((event_only, min_buffer)),
        _ => None,
    }) else {
        bad_handle("WdfWmiInstanceCreate", provider);
        return status::INVALID_PARAMETER;
    };
    let mut instance = WmiInstance {
        provider,
        min_buffer,
        event_only,
        registered: register != 0,
        ..WmiInstance::default()
    };
    for (offset, value) in fields(config, &kmdf::WMI_INSTANCE_CONFIG) {
        match offset {
            32 => instance.query = value,
            40 => instance.set = value,
            _ => {}
        }
    }
    let handle = create_object(Kind::WmiInstance(Box::new(instance)), device, attrs);
    if out != 0 {
        // SAFETY: the driver's WDFWMIINSTANCE out parameter.
        unsafe { write::<u64>(out, handle) };
    }
    status::SUCCESS
}

fn set_registered(method: &str, instance: u64, registered: bool) -> bool {
    let ok = with(|h| match &mut h.object(instance)?.kind {
        Kind::WmiInstance(i) => {
            i.registered = registered;
            Some(())
        }
        _ => None,
    });
    if ok.is_none() {
        bad_handle(method, instance);
    }
    ok.is_some()
}

extern "win64" fn wmi_instance_register(_globals: u64, instance: u64) -> i32 {
    if set_registered("WdfWmiInstanceRegister", instance, true) {
        status::SUCCESS
    } else {
        status::INVALID_PARAMETER
    }
}

extern "win64" fn wmi_instance_deregister(_globals: u64, instance: u64) {
    set_registered("WdfWmiInstanceDeregister", instance, false);
}

extern "win64" fn wmi_get_device(_globals: u64, object: u64) -> u64 {
    let device = with(|h| {
        let o = h.object(object)?;
        matches!(o.kind, Kind::WmiInstance(_) | Kind::WmiProvider { .. }).then_some(o.parent)
    });
    device.unwrap_or_else(|| {
        bad_handle("WdfWmiInstanceGetDevice", object);
        0
    })
}

extern "win64" fn wmi_instance_get_provider(_globals: u64, instance: u64) -> u64 {
    let provider = with(|h| match &h.object(instance)?.kind {
        Kind::WmiInstance(i) => Some(i.provider),
        _ => None,
    });
    provider.unwrap_or_else(|| {
        bad_handle("WdfWmiInstanceGetProvider", instance);
        0
    })
}

extern "win64" fn wmi_provider_is_enabled(_globals: u64, provider: u64, _control: u32) -> u8 {
    if with(|h| h.object(provider).is_none()) {
        bad_handle("WdfWmiProviderIsEnabled", provider);
    }
    // Nobody listens in the model.
    0
}

extern "win64" fn wmi_instance_fire_event(
    _globals: u64,
    instance: u64,
    size: u32,
    data: u64,
) -> i32 {
    let registered = with(|h| match &h.object(instance)?.kind {
        Kind::WmiInstance(i) => Some(i.registered),
        _ => None,
    });
    match registered {
        None => {
            bad_handle("WdfWmiInstanceFireEvent", instance);
            status::INVALID_PARAMETER
        }
        Some(_) if size > 0 && data == 0 => {
            violation(
                "parameter",
                0,
                "WdfWmiInstanceFireEvent with a size and no data",
            );
            status::INVALID_PARAMETER
        }
        Some(_) => {
            host::event("wmi", 0, &format!("WMI event of {size} bytes fired"));
            status::SUCCESS
        }
    }
}

/// The registered instances that answer queries: `(handle, query, set, minimum buffer)`.
#[must_use]
pub fn registered_instances() -> Vec<(u64, u64, u64, u32)> {
    with(|h| {
        h.objects
            .iter()
            .enumerate()
            .filter(|(_, o)| !o.deleted && !o.destroying)
            .filter_map(|(k, o)| match &o.kind {
                Kind::WmiInstance(i) if i.registered && !i.event_only && i.query != 0 => Some((
                    host::HANDLE_BASE + 16 * k as u64,
                    i.query,
                    i.set,
                    i.min_buffer,
                )),
                _ => None,
            })
            .collect()
    })
}

/// The implementation of a method of this family.
#[must_use]
pub fn method(name: &str) -> Option<usize> {
    Some(match name {
        "WdfDeviceAssignMofResourceName" => device_assign_mof_resource_name as *const () as usize,
        "WdfWmiProviderCreate" => wmi_provider_create as *const () as usize,
        "WdfWmiInstanceCreate" => wmi_instance_create as *const () as usize,
        "WdfWmiInstanceRegister" => wmi_instance_register as *const () as usize,
        "WdfWmiInstanceDeregister" => wmi_instance_deregister as *const () as usize,
        "WdfWmiInstanceGetDevice" | "WdfWmiProviderGetDevice" => {
            wmi_get_device as *const () as usize
        }
        "WdfWmiInstanceGetProvider" => wmi_instance_get_provider as *const () as usize,
        "WdfWmiProviderIsEnabled" => wmi_provider_is_enabled as *const () as usize,
        "WdfWmiInstanceFireEvent" => wmi_instance_fire_event as *const () as usize,
        _ => return None,
    })
}
