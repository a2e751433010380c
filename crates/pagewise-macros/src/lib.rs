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
//!    function-pointer type built from the signature, the function's address and name, and
//!    `store`, which writes the function into a field whose slot accepts the role;
//! 4. `impl <name> { const ROLE_RECORD: &'static RoleRecord }` (the function's visibility),
//!    pointing at a `#[used]` static
//!    [`RoleRecord`](pagewise_roles::RoleRecord) in the `.pwrole` section, which
//!    `cargo pagecheck` reads back from the linked image.
//!
//! For a callback, a function with an `extern` ABI, items 1, 3 and 4 go inside an anonymous
//! `const _: () = { ... };` block: outside it the name stands for the marker type only, so the
//! function cannot be stored anywhere but through a `callbacks!` table (see below). Rust-ABI
//! helpers stay items of the module, callable by name.
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
//! A driver stores callbacks only through [`callbacks!`], a table with one block per WDF
//! configuration structure in which each field names the function that goes into it. The
//! field name selects the slot (`pagewise_roles::config`), and the slot decides which
//! placements it accepts. (The example is not compiled as a doctest: the expansion calls
//! `::wdk::paged_code!()` and the callbacks use wdk-sys types, which build only against a
//! WDK. `tests/ui/pass/*.rs` compile and run the same pattern against stand-ins.)
//!
//! ```ignore
//! use pagewise_macros::{callbacks, paged, resident};
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
//! callbacks! {
//!     const REGISTERED: [CallbackId];
//!
//!     fn pnp_power(WDF_PNPPOWER_EVENT_CALLBACKS) {
//!         EvtDeviceD0Entry: evt_device_d0_entry => CallbackId::D0Entry,
//!         EvtDeviceD0Exit: evt_device_d0_exit => CallbackId::D0Exit,
//!     }
//! }
//! ```
//!
//! Putting the `#[paged(power_down)]` function above into `EvtDeviceD0Entry` fails to
//! compile, at the field:
//!
//! ```text
//! error[E0277]: a function placed as `pagewise_roles::role::PowerDown` cannot be registered in a slot that needs `pagewise_roles::needs::PowerUp`
//!   --> src/callbacks.rs:28:9
//!    |
//! 28 |         EvtDeviceD0Entry: evt_device_d0_exit => CallbackId::D0Entry,
//!    |         ^^^^^^^^^^^^^^^^ placement does not meet this callback slot's needs
//!    |
//!    = note: mark the function with the placement attribute the slot needs: power-up slots take #[resident(power_up)], ...
//! ```
//!
//! (`tests/ui/fail/*.stderr` hold the complete messages.) There is no way to name the slot
//! apart from the field, nor to store a callback past the table: a function with an
//! `extern` ABI is defined inside the expansion, and its name outside stands for the marker
//! type only, so `Some(evt_device_d0_exit)` is "expected value, found enum". The table stores
//! it with `Placed::store` into a field type it defines locally, one per entry.
//! `pagewise_roles::register::<Slot, f>()` exists only with that crate's `tools` feature,
//! for tools and tests.
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

mod callbacks;
mod expand;
mod resident_wdf;
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

/// The driver's registration table: every callback it registers, grouped by the WDF
/// configuration structure whose field it goes into, and the list of all of them.
///
/// ```ignore
/// pagewise_macros::callbacks! {
///     /// Every registration below, for the self-check.
///     pub(crate) const REGISTERED: [CallbackId];
///
///     /// For `WdfDeviceInitSetPnpPowerEventCallbacks`.
///     pub(crate) fn pnp_power(WDF_PNPPOWER_EVENT_CALLBACKS) {
///         EvtDeviceD0Entry: evt_device_d0_entry => CallbackId::D0Entry,
///         EvtDeviceD0Exit: evt_device_d0_exit => CallbackId::D0Exit,
///     }
///
///     /// The default queue, created with `WdfExecutionLevelPassive`.
///     pub(crate) fn control_queue(WDF_IO_QUEUE_CONFIG(passive)) {
///         EvtIoDeviceControl: evt_control_io_device_control => CallbackId::ControlIoDeviceControl,
///     }
/// }
///
/// let mut callbacks = pnp_power(WDF_PNPPOWER_EVENT_CALLBACKS {
///     Size: ..,
///     ..WDF_PNPPOWER_EVENT_CALLBACKS::default()
/// });
/// ```
///
/// Each block becomes an `#[inline(always)]` function that takes the structure, sized and
/// otherwise filled in by the caller, and returns it with the listed callback fields set;
/// inlined, its stores run from the caller's section. The field name is the slot:
/// `pagewise_roles::config::<STRUCTURE>[::<kind>]::<field>` names the
/// [`pagewise_roles::slot`] the field takes, so the slot cannot be named apart from the
/// field. A function whose placement that slot does not accept, a field with no slot, or a
/// field whose rules depend on the object written without the kind
/// (`WDF_OBJECT_ATTRIBUTES(device)`, `WDF_IO_QUEUE_CONFIG(passive)`) is a compile error at
/// the field name. The leading `const` is an array of
/// [`pagewise_roles::Registration`]s, one per entry in table order, each with the id
/// written after `=>`: the same table is the list the driver's self-check walks.
///
/// The structure's name must be in scope: it is the type the function builds.
#[proc_macro]
pub fn callbacks(input: TokenStream) -> TokenStream {
    callbacks::expand(input.into()).into()
}

/// A WDF call for resident code: `resident_wdf_call!(WdfTimerStart, timer, due)` calls
/// `WdfTimerStart` as `wdk_sys::call_unsafe_wdf_function_binding!` does, through the
/// framework's function table, and returns `Some(result)`, or `None` for an empty table
/// entry. Like that macro it must be used inside an `unsafe` block, with arguments that
/// meet the WDF function's contract.
///
/// What it leaves out is the per-call check of the table index against the table's
/// length, whose failure path panics: in resident code that check puts a branch, a panic
/// call and (through the panic handler) `KeBugCheckEx` into the driver's never-paged
/// memory, at every call site. The driver checks the table once instead: `DriverEntry`
/// refuses to run unless the framework's table has every entry of the KMDF version the
/// driver was built for (`WdfFunctionTableNumEntries`), which makes every index of that
/// version valid for the driver's lifetime. The function-pointer type and the table index
/// are the names wdk-sys generates for the function (`PFN_WDFTIMERSTART`,
/// `WdfTimerStartTableIndex`), derived from the function's name as windows-drivers-rs'
/// macro derives them.
///
/// The expansion names `::wdk_sys`: the crate depends on it under that name.
#[proc_macro]
pub fn resident_wdf_call(input: TokenStream) -> TokenStream {
    resident_wdf::expand(input.into()).into()
}
