//! Builds the `no_std` x64 images under `tests/` (PAGING.md section 8): Debian's rustc 1.96
//! with its library sources (`-Zbuild-std=core`), linked by Debian's `lld-link` as a driver.
//!
//! The tools are Debian packages (`rustc-web cargo-web rust-web-src lld`); without them a test
//! fails with one line naming them, rather than passing without checking anything.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

const RUSTC: &str = "/usr/bin/rustc";
const CARGO: &str = "/usr/bin/cargo";
const LLD_LINK: &str = "/usr/bin/lld-link";
const RUST_SRC: &str = "/usr/lib/rustlib/src/rust/library/core/Cargo.toml";

/// Link arguments of a driver, with the section flags `link.exe /DRIVER` plus a WDK build
/// give: `.text` not paged, `INIT` discardable.
const LINK_ARGS: &[&str] = &[
    "/DRIVER",
    "/SUBSYSTEM:NATIVE",
    "/NODEFAULTLIB",
    "/ENTRY:DriverEntry",
    "/SECTION:.text,ERP",
    "/SECTION:INIT,ERD",
];

/// Builds `tests/<fixture>` (a cdylib package) in release with `features`, and returns the
/// image's bytes. Builds are serialised: two feature sets of one fixture write the same file.
pub fn build(fixture: &str, features: &[&str]) -> Result<Vec<u8>, String> {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for (path, package) in [
        (RUSTC, "rustc-web"),
        (CARGO, "cargo-web"),
        (RUST_SRC, "rust-web-src"),
        (LLD_LINK, "lld"),
    ] {
        if !Path::new(path).exists() {
            return Err(format!(
                "{path} missing: install the Debian package {package}"
            ));
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(fixture);
    // One target directory for every fixture, so core is compiled once.
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pagewise-core-fixtures");
    let mut command = Command::new(CARGO);
    command
        .current_dir(&dir)
        .args(["rustc", "--release", "--target", "x86_64-pc-windows-msvc"])
        .arg("-Zbuild-std=core")
        // The kernel exports memcpy and friends; a fixture linked /NODEFAULTLIB takes
        // compiler-builtins' instead.
        .arg("-Zbuild-std-features=compiler-builtins-mem")
        .arg("--target-dir")
        .arg(&target_dir);
    if !features.is_empty() {
        command.arg("--features").arg(features.join(","));
    }
    command.arg("--");
    for arg in LINK_ARGS {
        command.arg("-C").arg(format!("link-arg={arg}"));
    }
    // The outer `cargo test` exports variables meant for this crate's build; the fixture's
    // build must not inherit them.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        command.env_remove(var);
    }
    command
        .env("RUSTC", RUSTC)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_X86_64_PC_WINDOWS_MSVC_LINKER", LLD_LINK);
    let output = command
        .output()
        .map_err(|e| format!("cannot run {CARGO}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "building tests/{fixture} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let name = fixture.replace('-', "_");
    let crate_name = match name.as_str() {
        "fixture_driver" => "pagewise_core_fixture",
        _ => "pagewise_core_probe",
    };
    let path = target_dir.join(format!("x86_64-pc-windows-msvc/release/{crate_name}.dll"));
    std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
}
