//! String objects and the framework's version: `WdfStringCreate`, `WdfStringGetUnicodeString`,
//! `WdfDriverRetrieveVersionString`, `WdfDriverIsVersionAvailable`.

use crate::host::{Kind, read, status, violation, with, write};

use super::{bad_handle, create_object, unicode};

/// What `WdfDriverRetrieveVersionString` gives: the framework this host stands for.
pub const VERSION_STRING: &str = "Kernel Mode Driver Framework (pagerun host) version 1.33";

/// `WDFSTRING`'s parent when the attributes name none: the driver.
fn driver() -> u64 {
    with(|h| h.driver)
}

extern "win64" fn string_create(_globals: u64, text: u64, attrs: u64, out: u64) -> i32 {
    if out == 0 {
        violation(
            "parameter",
            0,
            "WdfStringCreate without a WDFSTRING out parameter",
        );
        return status::INVALID_PARAMETER;
    }
    let copy = unicode(text).unwrap_or_default();
    let unicode = with(|h| h.unicode_string(&copy));
    let string = create_object(Kind::String { unicode }, driver(), attrs);
    // SAFETY: the driver's WDFSTRING out parameter.
    unsafe { write::<u64>(out, string) };
    status::SUCCESS
}

fn string_of(method: &str, string: u64) -> Option<u64> {
    let found = with(|h| match h.object(string)?.kind {
        Kind::String { unicode } => Some(unicode),
        _ => None,
    });
    if found.is_none() {
        bad_handle(method, string);
    }
    found
}

extern "win64" fn string_get_unicode_string(_globals: u64, string: u64, out: u64) {
    let Some(unicode) = string_of("WdfStringGetUnicodeString", string) else {
        return;
    };
    if out == 0 {
        violation(
            "parameter",
            0,
            "WdfStringGetUnicodeString without a UNICODE_STRING",
        );
        return;
    }
    // SAFETY: copies the 16-byte UNICODE_STRING the host keeps into the driver's.
    unsafe {
        write::<u64>(out, read::<u64>(unicode));
        write::<u64>(out + 8, read::<u64>(unicode + 8));
    }
}

extern "win64" fn driver_retrieve_version_string(_globals: u64, driver: u64, string: u64) -> i32 {
    if with(|h| h.driver != driver) {
        bad_handle("WdfDriverRetrieveVersionString", driver);
        return status::INVALID_PARAMETER;
    }
    if string_of("WdfDriverRetrieveVersionString", string).is_none() {
        return status::INVALID_PARAMETER;
    }
    let unicode = with(|h| h.unicode_string(VERSION_STRING));
    with(|h| {
        if let Some(o) = h.object(string) {
            o.kind = Kind::String { unicode };
        }
    });
    status::SUCCESS
}

/// `WdfDriverIsVersionAvailable(Driver, WDF_DRIVER_VERSION_AVAILABLE_PARAMS { Size,
/// MajorVersion, MinorVersion })`: TRUE for 1.0 to 1.33.
extern "win64" fn driver_is_version_available(_globals: u64, driver: u64, params: u64) -> u8 {
    if with(|h| h.driver != driver) {
        bad_handle("WdfDriverIsVersionAvailable", driver);
        return 0;
    }
    if params == 0 {
        violation(
            "parameter",
            0,
            "WdfDriverIsVersionAvailable without WDF_DRIVER_VERSION_AVAILABLE_PARAMS",
        );
        return 0;
    }
    // SAFETY: the driver's parameters: Size 0, MajorVersion 4, MinorVersion 8.
    let (size, major, minor) = unsafe {
        (
            read::<u32>(params),
            read::<u32>(params + 4),
            read::<u32>(params + 8),
        )
    };
    if size < 12 {
        violation(
            "parameter",
            0,
            &format!("WdfDriverIsVersionAvailable with Size {size}, smaller than the structure"),
        );
        return 0;
    }
    u8::from(major == 1 && minor <= 33)
}

/// The implementation of a method of this family.
#[must_use]
pub fn method(name: &str) -> Option<usize> {
    Some(match name {
        "WdfStringCreate" => string_create as *const () as usize,
        "WdfStringGetUnicodeString" => string_get_unicode_string as *const () as usize,
        "WdfDriverRetrieveVersionString" => driver_retrieve_version_string as *const () as usize,
        "WdfDriverIsVersionAvailable" => driver_is_version_available as *const () as usize,
        _ => return None,
    })
}
