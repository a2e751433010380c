//! The portable logic of the pagewise KMDF driver.
//!
//! Every decision the driver makes, every validation of outside input and every data
//! structure it keeps lives here, in `no_std` code with unit tests that run on any OS.
//! The Windows-only FFI layer (the root crate's `src/`) only translates: it reads
//! registry values and WDF arguments, calls one method of [`device_state::DeviceState`]
//! per callback, and executes the action that method returns (lock a section, call
//! `WdfDeviceStopIdle`, write a registry value, complete a request with a status).
//!
//! # What the driver's resident code may pull in from here
//!
//! Nothing in this crate allocates, formats or panics on a driver path:
//! - no `alloc`: every buffer is a fixed-size array inside the device context, which
//!   the framework allocates from nonpaged pool;
//! - no `core::fmt` on driver paths (library code lands in `.text` whatever section its
//!   caller is in, so formatting machinery would be resident; see docs/paging.md): types
//!   derive `Debug` for the tests, and no driver-side function formats anything;
//! - no panics: outside tests the crate denies the clippy lints that find the ways
//!   safe code can panic (slice indexing, unchecked arithmetic, `unwrap`, `expect`,
//!   `panic!`, `unreachable!`). Every index is a `get`/`get_mut`, every sum is
//!   checked, wrapping or saturating. That makes "no panic" a property the compiler
//!   checks on every build, not a claim in a comment, and it matters because
//!   [`translog`], [`hold`] and [`device_state`] run under a spin lock at
//!   `DISPATCH_LEVEL`, where a panic is a bug check.
//!
//! Nothing here has a `link_section`: the crate's code is resident (`.text`), which is
//! what its callers at `DISPATCH_LEVEL` need.
#![no_std]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented,
        clippy::float_arithmetic,
    )
)]

#[cfg(test)]
extern crate std;

pub mod deferred;
pub mod device_state;
pub mod hold;
pub mod image;
pub mod ioctl;
pub mod locked;
pub mod pageability;
pub mod power_state;
pub mod settings;
pub mod status;
pub mod translog;

pub use device_state::DeviceState;
