//! pagewise: a KMDF function driver for a root-enumerated software device that keeps
//! resident only what must be resident.
//!
//! This crate is the driver's FFI layer: it translates between the framework and the
//! portable logic of `pagewise-core`, which decides everything and is tested on any OS.
//! Each function says in its documentation at which IRQL it runs and why it lives in its
//! section; the placement attributes of `pagewise-macros` put it there and record the
//! role for `cargo pagecheck`, and the registration table of [`callbacks`] refuses, at
//! compile time, to put a function in a callback field whose slot its placement does not
//! meet.
//!
//! | module | what |
//! |---|---|
//! | [`callbacks`] | every registered callback: the field each goes into, and the self-check's list |
//! | [`driver`] | `DriverEntry` (`INIT`), `EvtDriverUnload` |
//! | [`device`] | `EvtDriverDeviceAdd`: settings, power pageability, device object, S0 idle |
//! | [`power`] | the power callbacks: up resident, down in `PAGEPWR`, and its lock |
//! | [`queue`] | the IOCTL queues and the D0-hold timer |
//! | [`context`] | the device context and the spin lock around the portable state |
//! | [`persist`] | lifetime counters written to the registry at pageable points |
//! | [`selfcheck`] | the section of every registered callback, read from the image |
//! | [`wdf`] | `wdf.h` inlines `wdk-sys` cannot bind |
//! | `layout_facts` | the KMDF 1.33 sizes, offsets and table indices the bindings must meet |
//!
//! The WDK crates build only on Windows (their bindings are generated from the WDK
//! headers), so on any other host this crate is empty. The same source is also built for
//! `x86_64-pc-windows-msvc` on Linux by `cargo xtask driver`, through `driver-image/`,
//! against stand-ins of the WDK crates (`crates/standin-wdk*`).
#![cfg(windows)]
#![no_std]

#[cfg(not(test))]
extern crate wdk_panic;

#[cfg(not(test))]
use wdk_alloc::WdkAllocator;

// Nothing in the driver allocates; `wdk` links `alloc`, which needs an allocator to
// exist. `WdkAllocator` takes nonpaged pool, which is what any allocation reachable from
// a resident path would need.
#[cfg(not(test))]
#[global_allocator]
static GLOBAL_ALLOCATOR: WdkAllocator = WdkAllocator;

mod callbacks;
mod context;
/// Sizes, field offsets, enumeration values and function-table indices of the bindings this
/// build uses, checked at compile time against the KMDF 1.33 and WDK headers' numbers: the
/// real wdk-sys on Windows, the stand-in (`crates/standin-wdk-sys`) in the Linux image build.
mod layout_facts {
    include!("layout_facts.rs");
}
mod device;
mod driver;
mod persist;
mod power;
mod queue;
mod selfcheck;
mod wdf;

/// `major << 16 | minor << 8 | patch` of this package, for `IOCTL_PAGEWISE_GET_VERSION`.
pub(crate) const DRIVER_VERSION: u32 = (parse_version_part(env!("CARGO_PKG_VERSION_MAJOR")) << 16)
    | (parse_version_part(env!("CARGO_PKG_VERSION_MINOR")) << 8)
    | parse_version_part(env!("CARGO_PKG_VERSION_PATCH"));

/// Parses one decimal component of the package version at compile time; each component
/// is masked to 8 bits so the packed value never overlaps.
const fn parse_version_part(text: &str) -> u32 {
    let bytes = text.as_bytes();
    let mut value: u32 = 0;
    let mut i = 0;
    while i < bytes.len() {
        let digit = bytes[i];
        assert!(digit.is_ascii_digit(), "version component is not a number");
        value = value * 10 + (digit - b'0') as u32;
        i += 1;
    }
    value & 0xFF
}
