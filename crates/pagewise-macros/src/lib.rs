//! Placement attributes for the functions of a KMDF driver: which section each function
//! lives in, recorded in the image and checked by the type system at registration.
//!
//! | attribute | role | section | inserted first statement |
//! |---|---|---|---|
//! | `#[init]` | `init` | `INIT` (discarded after `DriverEntry`) | |
//! | `#[paged]` | `paged` | `PAGE` | `::wdk::paged_code!();` |
//! | `#[paged(power_down)]` | `power-down` | `PAGEPWR` (locked while power-nonpageable) | `::wdk::paged_code!();` |
//! | `#[resident(power_up)]` | `power-up` | `.text` (no attribute) | |
//! | `#[resident(dispatch)]` | `dispatch` | `.text` (no attribute) | |
//!
//! Each attribute goes on a free `fn`, usually an `unsafe extern "C" fn` WDF callback, and
//! expands to four items:
//!
//! 1. the function itself, with the user's attributes kept (`#[unsafe(export_name)]`,
//!    `#[cfg_attr]`, docs, lints), plus for `INIT`/`PAGE*` the section attribute and
//!    `#[inline(never)]`, and for `PAGE*` a `::wdk::paged_code!();` first statement;
//! 2. a marker type with the function's own name, `enum <name> {}`, with the function's
//!    visibility. An enum without variants lives only in the type namespace, so it does not
//!    clash with the function, which lives in the value namespace;
//! 3. `unsafe impl pagewise_roles::Placed for <name>`, giving the role marker type, the
//!    function-pointer type built from the signature, the function and its name;
//! 4. `impl <name> { const ROLE_RECORD: &'static RoleRecord }` (the function's visibility),
//!    pointing at a `#[used]` static
//!    [`RoleRecord`](pagewise_roles::RoleRecord) in the `.pwrole` section, which
//!    `cargo pagecheck` reads back from the linked image.
//!
//! The section attribute is `#[cfg_attr(not(target_vendor = "apple"),
//! unsafe(link_section = "PAGE"))]`: PE and ELF take any section name (so tests on a Linux
//! host run the expanded code as is), Mach-O wants `segment,section` and would reject it.
//!
//! # Why the resident roles name no section
//!
//! `.text` is where the compiler puts every function, and `link.exe /DRIVER` marks it not
//! paged: a function without a section attribute is already resident. Writing
//! `link_section = ".text"` would add nothing on PE, and leaving it out keeps a resident
//! function compiled exactly like any unmarked function. What the resident attributes add
//! is the role: the record that lets `cargo pagecheck` check everything they call, and the
//! [`Placed`](pagewise_roles::Placed) impl that lets them be registered in power-up and
//! dispatch-level slots.
//!
//! # Why `#[inline(never)]`
//!
//! A section attribute covers the out-of-line body only. A `PAGE` function inlined into a
//! resident caller becomes resident code, and, the dangerous direction, its callees are
//! then called from resident code. Keeping `INIT` and `PAGE*` functions out of line makes
//! the section the attribute names the section the code runs from. `#[inline]` or
//! `#[inline(always)]` on such a function is a compile error.
//!
//! # Registration is checked by type
//!
//! A driver stores callbacks only through [`pagewise_roles::register`], naming the slot and
//! the marker type. (The example is not compiled as a doctest: the expansion calls
//! `::wdk::paged_code!()` and the callbacks use wdk-sys types, which build only against a
//! WDK. `tests/ui/pass/*.rs` compile and run the same pattern against a stub `wdk`.)
//!
//! ```ignore
//! use pagewise_macros::{paged, resident};
//! use pagewise_roles::{register, slot};
//!
//! #[resident(power_up)]
//! unsafe extern "C" fn evt_device_d0_entry(
//!     device: WDFDEVICE,
//!     previous_state: WDF_POWER_DEVICE_STATE,
//! ) -> NTSTATUS {
//!     STATUS_SUCCESS
//! }
//!
//! #[paged(power_down)]
//! unsafe extern "C" fn evt_device_d0_exit(
//!     device: WDFDEVICE,
//!     target_state: WDF_POWER_DEVICE_STATE,
//! ) -> NTSTATUS {
//!     // `::wdk::paged_code!();` was inserted here.
//!     STATUS_SUCCESS
//! }
//!
//! callbacks.EvtDeviceD0Entry =
//!     Some(register::<slot::EvtDeviceD0Entry, evt_device_d0_entry>());
//! callbacks.EvtDeviceD0Exit =
//!     Some(register::<slot::EvtDeviceD0Exit, evt_device_d0_exit>());
//! ```
//!
//! Registering a function whose placement the slot does not accept, for example the
//! `#[paged(power_down)]` function above as `EvtDeviceD0Entry`, fails to compile with:
//!
//! ```text
//! error[E0277]: a function placed as `pagewise_roles::role::PowerDown` cannot be registered in a slot that needs `pagewise_roles::needs::PowerUp`
//!   --> src/device.rs:40:25
//!    |
//! 40 |     Some(register::<slot::EvtDeviceD0Entry, evt_device_d0_exit>());
//!    |                     ^^^^^^^^^^^^^^^^^^^^^^ placement does not meet this callback slot's needs
//!    |
//!    = note: mark the function with the placement attribute the slot needs: power-up slots take #[resident(power_up)], ...
//! ```
//!
//! (`tests/ui/fail/*.stderr` hold the complete messages.)
//!
//! A function without a placement attribute has no marker type, so it cannot be registered
//! at all.
//!
//! # Rejected
//!
//! Each with a spanned error: unknown arguments, `#[resident]` without a role, generic,
//! `const` or `async` functions, methods, variadic functions, `impl Trait` in the
//! signature, a function that already has a `link_section`, and `#[inline]` or
//! `#[inline(always)]` on an `INIT`/`PAGE*` function. Argument patterns are fine: only the
//! argument types go into the function-pointer type.
//!
//! # Requirements on the user's crate
//!
//! The expansion names `::pagewise_roles` and, for `#[paged]`, `::wdk`: the crate depends
//! on both under those names.

use proc_macro::TokenStream;

mod expand;
#[cfg(test)]
mod tests;

use expand::{Kind, expand};

/// Places the function in `INIT`, discarded once `DriverEntry` returns: for `DriverEntry`
/// and what only it calls. No callback slot accepts it.
#[proc_macro_attribute]
pub fn init(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Init, attr.into(), item.into()).into()
}

/// Places the function in `PAGE` (`#[paged]`) or in the power-down section `PAGEPWR`
/// (`#[paged(power_down)]`), and makes `::wdk::paged_code!();` its first statement.
#[proc_macro_attribute]
pub fn paged(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Paged, attr.into(), item.into()).into()
}

/// Keeps the function resident and records why: `#[resident(power_up)]` for the
/// return-to-D0 path, `#[resident(dispatch)]` for code that may run at `DISPATCH_LEVEL` or
/// under a spin lock.
#[proc_macro_attribute]
pub fn resident(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Resident, attr.into(), item.into()).into()
}
