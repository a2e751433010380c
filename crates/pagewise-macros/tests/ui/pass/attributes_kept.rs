//! The user's own attributes survive, `#[cfg]` removes the generated items with the
//! function, and argument patterns are fine.
#![deny(warnings)]

use pagewise_macros::{init, paged, resident};
use pagewise_roles::{Placed, Role};

/// Documented.
#[paged]
#[allow(clippy::unused_unit)]
#[inline(never)]
#[must_use]
fn documented(mut value: u32, (a, _): (u8, u8), _: &str) -> u32 {
    value += u32::from(a);
    value
}

// Removed on every target: if the marker or the record outlived the function, they would
// name a function that does not exist.
#[cfg(any())]
#[paged]
fn configured_out() {}

#[cfg_attr(all(), cfg(any()))]
#[resident(dispatch)]
fn configured_out_by_cfg_attr() {}

#[resident(power_up)]
#[cfg_attr(all(), unsafe(no_mangle))]
extern "C" fn exported_power_up() -> u8 {
    7
}

#[init]
fn r#type() -> &'static str {
    "raw"
}

#[paged]
unsafe fn returns_never() -> ! {
    std::process::exit(0)
}

// A callback has no value under its name; its `no_mangle` export is how it is reached here,
// which also shows the attribute was kept.
unsafe extern "C" {
    #[link_name = "exported_power_up"]
    fn exported_power_up_by_symbol() -> u8;
}

fn main() {
    assert_eq!(documented(1, (2, 3), ""), 3);
    // SAFETY: the exported function takes nothing and returns a constant.
    assert_eq!(unsafe { exported_power_up_by_symbol() }, 7);
    assert_eq!(<r#type as Placed>::NAME, "type");
    assert_eq!(r#type(), "raw");
    assert_eq!(r#type::ROLE_RECORD.role, Role::Init as u16);
    assert_eq!(returns_never::ROLE_RECORD.role, Role::Paged as u16);
    let function: unsafe fn() -> ! = returns_never;
    assert_eq!(function as *const (), <returns_never as Placed>::ADDRESS);
}
