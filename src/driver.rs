//! `DriverEntry` and the driver object's callbacks.
//!
//! `DriverEntry` runs once, at `PASSIVE_LEVEL`, before anything else: it lives in `INIT`,
//! which the loader discards when it returns. It only creates the WDFDRIVER, so nothing it
//! calls stays in the image after load. It neither allocates nor formats: library code
//! lands in `.text` whatever section its caller is in, so a `println!` here would pull
//! `core::fmt` into the resident image for one message.

use pagewise_macros::{init, paged};
use wdk::nt_success;
use wdk_sys::{
    NTSTATUS, PCUNICODE_STRING, PDRIVER_OBJECT, STATUS_REVISION_MISMATCH, WDF_DRIVER_CONFIG,
    WDF_NO_OBJECT_ATTRIBUTES, WDFDRIVER, call_unsafe_wdf_function_binding,
};

use crate::callbacks;
use crate::wdf::{function_table_complete, structure_size, trace};

/// `DriverEntry`: creates the framework driver object with `EvtDriverDeviceAdd` and
/// `EvtDriverUnload`.
///
/// `PASSIVE_LEVEL`. `INIT` (`#[init]`): runs once and is discarded after it returns, so
/// it must not be referenced afterwards; it registers only functions that live elsewhere.
#[init]
#[cfg_attr(not(test), unsafe(export_name = "DriverEntry"))]
pub unsafe extern "system" fn driver_entry(
    driver: PDRIVER_OBJECT,
    registry_path: PCUNICODE_STRING,
) -> NTSTATUS {
    if !function_table_complete() {
        trace!(
            DPFLTR_ERROR_LEVEL,
            "KMDF function table shorter than the driver's version"
        );
        return STATUS_REVISION_MISMATCH;
    }
    // WDF_DRIVER_CONFIG_INIT(&config, EvtDriverDeviceAdd), then the unload callback.
    let mut config = callbacks::driver_config(WDF_DRIVER_CONFIG {
        Size: const { structure_size::<WDF_DRIVER_CONFIG>() },
        ..WDF_DRIVER_CONFIG::default()
    });
    let mut wdf_driver: WDFDRIVER = core::ptr::null_mut();

    // SAFETY: `driver` and `registry_path` are what the I/O manager passed to
    // DriverEntry; the config is initialised as WDF_DRIVER_CONFIG_INIT does, and both
    // out-pointers live on this stack frame for the duration of the call.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDriverCreate,
            driver,
            registry_path,
            WDF_NO_OBJECT_ATTRIBUTES,
            &raw mut config,
            &raw mut wdf_driver,
        )
    };
    if !nt_success(status) {
        trace!(DPFLTR_ERROR_LEVEL, "WdfDriverCreate failed %08x", status);
    }
    status
}

/// `EvtDriverUnload`: nothing to free, every resource belongs to a WDF object that the
/// framework deletes before this runs. Registered so that the unload is visible in a
/// debugger and the driver can be stopped without a reboot.
///
/// `PASSIVE_LEVEL`, runs once: `PAGE`.
#[paged]
pub(crate) unsafe extern "C" fn evt_driver_unload(_driver: WDFDRIVER) {
    trace!(DPFLTR_INFO_LEVEL, "unload");
}
