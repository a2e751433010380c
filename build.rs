//! Build script of the pagewise driver.
//!
//! On a Windows host with a WDK (or an EWDK build environment) it configures the driver
//! build through wdk-build and adds the link arguments C WDK builds use that
//! windows-drivers-rs does not emit. On any other host it does nothing, so that
//! `cargo test --workspace` can build the rest of the workspace.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    #[cfg(windows)]
    {
        wdk_build::configure_wdk_binary_build()?;
        for arg in SECTION_LINK_ARGS {
            println!("cargo::rustc-cdylib-link-arg={arg}");
        }
    }
    println!("cargo::rerun-if-changed=build.rs");
    Ok(())
}

/// Section attributes that make the sections mean what the placement attributes promise.
///
/// `link.exe /DRIVER` marks every section not named `PAGE*` as not pageable, `INIT`
/// included, so without these flags `DriverEntry`'s code would stay resident for the
/// driver's whole life. The C WDK build passes `/SECTION:INIT,d`; wdk-build 0.6.0 does
/// not (PAGING.md section 6).
///
/// link.exe keeps a section's R/W/E bits when the letters are omitted and sets the other
/// bits (D, K, P, S) exactly as listed, so `d` alone makes a section discardable and
/// clears not-paged.
#[cfg(windows)]
const SECTION_LINK_ARGS: &[&str] = &[
    // DriverEntry and what only it calls: freed once DriverEntry returns.
    "/SECTION:INIT,d",
    // The role records of pagewise-roles: read by `cargo pagecheck` from the file, never
    // by the driver, so the loader can drop them with INIT.
    "/SECTION:.pwrole,d",
];
