// The driver's own section link arguments, shared by build.rs (the WDK build, link.exe) and
// `cargo xtask driver` (the Linux image build, lld-link): one list, so both images get the
// same section attributes.
//
// `link.exe /DRIVER` marks every section not named `PAGE*` as not pageable, `INIT`
// included, so without these flags `DriverEntry`'s code would stay resident for the
// driver's whole life. The C WDK build passes `/SECTION:INIT,d`; wdk-build 0.6.0's
// `configure_wdk_binary_build` does not (docs/paging.md section 6).
//
// The letters are spelled out in full. link.exe keeps a section's R/W/E bits when they are
// omitted (so the C WDK's `INIT,d` works there), but lld-link sets exactly the letters
// given, and `.pwrole,d` linked by lld comes out unreadable: with `ERD`/`RD` both linkers
// produce the same flags. Not naming P clears not-paged, which is the point.

/// Section attributes that make the sections mean what the placement attributes promise.
#[cfg_attr(not(windows), allow(dead_code))]
const SECTION_LINK_ARGS: &[&str] = &[
    // DriverEntry and what only it calls: freed once DriverEntry returns.
    "/SECTION:INIT,ERD",
    // The role records of pagewise-roles: read by `cargo pagecheck` from the file, never
    // by the driver, so the loader can drop them with INIT.
    "/SECTION:.pwrole,RD",
];
