//! The self-check: where did each registered callback end up in the loaded image?
//!
//! The placement attributes ask for a section, but the optimiser decides (a small paged
//! function can be inlined into a resident caller and vice versa; see docs/paging.md),
//! so the driver reads its own section table and looks every callback up.
//! The result is reported through `IOCTL_PAGEWISE_GET_CONFIG`, and decides whether the
//! power-down section may be locked (`EvtDeviceD0Exit` must be in `PAGEPWR`); a build with
//! debug assertions also asserts that nothing resident ended up pageable or in `INIT`, and
//! that every power-down callback is in `PAGEPWR` (or resident).

use pagewise_core::image::{PeHeaders, Placements};
use pagewise_macros::paged;
use pagewise_roles::Role;
use wdk_sys::{DRIVER_OBJECT, WDFDRIVER, call_unsafe_wdf_function_binding};

use crate::callbacks::REGISTERED;
use crate::wdf::trace;

/// The headers of a PE image fit in its first page: `SizeOfHeaders` is at most the
/// section alignment, 4 KiB for a driver. Reading no further matters: the rest of the
/// image includes `INIT`, which is gone once `DriverEntry` has returned.
const HEADER_BYTES: usize = 0x1000;

/// Looks up every callback the driver registers ([`REGISTERED`], the registration table
/// itself) in the section table of the image the driver object maps, and returns the
/// table for `IOCTL_PAGEWISE_GET_CONFIG`.
///
/// `PASSIVE_LEVEL`, called once per device from `EvtDriverDeviceAdd`: `PAGE`.
/// `DriverEntry` is not in the list: it is in `INIT`, whose pages are freed by now.
#[paged]
pub(crate) fn check_placements(driver: WDFDRIVER) -> Placements {
    let mut placements = Placements::new();
    // SAFETY: `driver` is the live WDFDRIVER; the framework returns its WDM object.
    let driver_object: *mut DRIVER_OBJECT =
        unsafe { call_unsafe_wdf_function_binding!(WdfDriverWdmGetDriverObject, driver) };
    if driver_object.is_null() {
        return placements;
    }
    // SAFETY: the I/O manager's driver object of this driver, valid while it is loaded.
    let (start, size) = unsafe { ((*driver_object).DriverStart, (*driver_object).DriverSize) };
    if start.is_null() {
        return placements;
    }
    let length = usize::try_from(size).map_or(HEADER_BYTES, |size| size.min(HEADER_BYTES));
    // SAFETY: the loader maps the image at DriverStart; its first page (the headers)
    // stays mapped and resident while the driver is loaded, and `length` does not
    // exceed it or the image.
    let headers = unsafe { core::slice::from_raw_parts(start.cast::<u8>().cast_const(), length) };
    let Ok(headers) = PeHeaders::parse(headers) else {
        trace!(DPFLTR_ERROR_LEVEL, "self-check: own PE headers unreadable");
        return placements;
    };

    let base = start.addr();
    for registration in REGISTERED {
        let role = registration.role;
        // An address below the base or beyond 4 GiB of it is not in this image; the
        // lookup then reports "not found", which counts as a hazard.
        let rva =
            u32::try_from(registration.function.addr().wrapping_sub(base)).unwrap_or(u32::MAX);
        let outcome = placements.record(&headers, registration.id, role, rva);
        debug_assert!(
            !matches!(role, Role::PowerUp | Role::Dispatch | Role::PowerDown)
                || matches!(outcome, pagewise_core::image::PlacementOutcome::Ok),
            "a resident or power-down callback is not where its placement puts it"
        );
    }
    trace!(
        DPFLTR_INFO_LEVEL,
        "self-check: %u hazards, %u warnings",
        placements.hazards(),
        placements.warnings()
    );
    placements
}
