//! `cargo pagerun`: runs a real x64 KMDF driver image on x86_64 Linux through Plug and Play and
//! power scenarios, with paging enforced deterministically.
//!
//! The parent ([`run`]) reads the image and its PDB with pagecheck's readers and starts one
//! child process per scenario ([`child`]); the child maps the image ([`loader`]), binds its
//! imports to the host's kernel ([`kernel`]) and framework ([`framework`]) implementations,
//! drives it through the scenario ([`scenario`]) on the simulated processor ([`machine`]) and
//! streams what happens ([`protocol`]); the parent names each address and prints the report
//! ([`report`]).

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
compile_error!("cargo-pagerun runs x64 driver code natively: it needs x86_64 Linux");

pub mod child;
pub mod clock;
pub mod contracts;
pub mod framework;
pub mod host;
pub mod kernel;
pub mod loader;
pub mod machine;
pub mod protocol;
pub mod report;
pub mod run;
pub mod scenario;

pub use run::{Options, Report, ScenarioReport, Violation, run};
