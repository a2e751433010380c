//! `cargo pagerun`: runs a real x64 KMDF driver image on x86_64 Linux through Plug and Play and
//! power scenarios, with paging enforced deterministically.
//!
//! The parent ([`run`]) reads the image and its PDB with pagecheck's readers and starts one
//! child process per scenario ([`child`]); the child maps the image ([`loader`]), binds its
//! imports to the host's kernel ([`kernel`]) and framework ([`framework`]) implementations,
//! drives it through the scenario ([`scenario`]) on the simulated processor ([`machine`]) and
//! streams what happens ([`protocol`]); every routine the driver calls is reached through a
//! gate ([`gate`]) that checks the call against the routine's reference-page contract. The
//! parent names each address and prints the report ([`report`]).

// Pedantic lints this crate opts out of, for the reasons given: the driver's ABI is integers of
// fixed widths that the host converts between on purpose (casts); the framework and scenario
// functions follow KMDF's sequences step by step, and splitting them would hide the order
// (too_many_lines); handlers and table builders index fixed arrays by region number.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::too_many_lines,
    clippy::must_use_candidate,
    clippy::doc_markdown,
    clippy::needless_range_loop,
    clippy::struct_excessive_bools,
    clippy::single_match_else,
    clippy::similar_names
)]

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
compile_error!("cargo-pagerun runs x64 driver code natively: it needs x86_64 Linux");

pub mod child;
pub mod clock;
pub mod framework;
pub mod gate;
pub mod host;
pub mod kernel;
pub mod loader;
pub mod machine;
pub mod protocol;
pub mod report;
pub mod run;
pub mod scenario;

pub use run::{IoctlAnswer, Options, Report, ScenarioReport, Violation, run};
