//! `#[init]` on DriverEntry: INIT, never inlined, exported name kept.
use pagewise_macros::init;

/// The driver's entry point.
#[init]
#[unsafe(export_name = "DriverEntry")]
pub unsafe extern "system" fn driver_entry(
    driver: PDRIVER_OBJECT,
    registry_path: PCUNICODE_STRING,
) -> NTSTATUS {
    unsafe { create_driver(driver, registry_path) }
}
