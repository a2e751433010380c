//! Build script of the pagewise driver.
//!
//! On a Windows host with a WDK (or an EWDK build environment) it configures the driver
//! build through wdk-build and adds the link arguments C WDK builds use that
//! windows-drivers-rs does not emit. On any other host it does nothing, so that
//! `cargo test --workspace` can build the rest of the workspace.

#[cfg(windows)]
fn main() -> Result<(), wdk_build::ConfigError> {
    wdk_build::configure_wdk_binary_build()?;
    for arg in SECTION_LINK_ARGS {
        println!("cargo::rustc-cdylib-link-arg={arg}");
    }
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=link_sections.rs");
    Ok(())
}

#[cfg(not(windows))]
fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=link_sections.rs");
}

// SECTION_LINK_ARGS: one list with `cargo xtask driver`, which links the same source on
// Linux with lld-link.
include!("link_sections.rs");
