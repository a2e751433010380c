//! `cargo xtask setup | driver [--release] | test [ARGS] | image`.
//!
//! - `setup` installs (or upgrades) the Debian packages the PE images need: Debian's Rust
//!   toolchain with library sources for `x86_64-pc-windows-msvc` (`rustc-web`, `cargo-web`,
//!   `rust-web-src`, at least [`MIN_DEBIAN_RUST`]), clang and lld. It checks versions, not
//!   only that a package is there, and says what to do when it cannot fix them itself.
//! - `driver [--release]` builds the driver's own image on Linux: the unchanged `src/`,
//!   through `driver-image/` against the stand-in WDK crates (`crates/standin-wdk*`), for
//!   `x86_64-pc-windows-msvc` with `-Zbuild-std` and `lld-link`, with the section flags of
//!   `link_sections.rs` that `build.rs` gives the WDK build. Output:
//!   `target/driver-image/<profile>/pagewise.sys` and `pagewise.pdb`.
//! - `test` runs every test of the workspace, then builds the release image and checks it:
//!   `cargo pagecheck --deny warnings` (no finding; the callbacks it finds registered agree
//!   with the `callbacks!` table of `src/callbacks.rs`), and prints its section table and
//!   resident share; runs it under `cargo pagerun` through every scenario in four
//!   configurations and checks what it reads back ([`run`]); and builds it with each planted
//!   defect, which both tools must report ([`defects`]).
//! - `image` does what `test` does after the workspace's tests.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod defects;
mod image;
mod run;
mod versions;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    let result = match task.as_deref() {
        Some("setup") if rest.is_empty() => setup(),
        Some("driver") if rest.is_empty() => setup().and_then(|()| image::build(false).map(drop)),
        Some("driver") if rest == ["--release"] => {
            setup().and_then(|()| image::build(true).map(drop))
        }
        Some("test") => setup().and_then(|()| test(&rest)),
        Some("image") if rest.is_empty() => setup().and_then(|()| check_image()),
        _ => {
            eprintln!(
                "usage: cargo xtask setup | cargo xtask driver [--release] | \
                 cargo xtask test [-- cargo test arguments] | cargo xtask image"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The repository root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

/// Installs the Debian packages the PE images need when one is missing, and upgrades
/// Debian's Rust toolchain when it is older than the driver needs.
fn setup() -> Result<(), String> {
    if !is_debian() {
        match pe_fixtures::tools_missing() {
            None => {}
            Some(missing) => eprintln!(
                "xtask: not a Debian system, so nothing is installed; the PE image tests \
                 will fail until these are present: {missing}"
            ),
        }
        return Ok(());
    }
    let missing: Vec<&str> = pe_fixtures::DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|package| dpkg_version(package).is_none())
        .collect();
    let sudo = !is_root();
    if !missing.is_empty() {
        eprintln!("xtask: installing {}", missing.join(" "));
        run(apt(sudo).arg("update").arg("-q"))?;
        run(apt(sudo)
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing))?;
    }
    let installed = versions::Installed::read(dpkg_version, rustc_version);
    if installed.check().is_ok() {
        return Ok(());
    }
    // Bookworm itself has rustc-web 1.85; bookworm-security (enabled on a stock
    // installation) has the newer one.
    eprintln!(
        "xtask: upgrading {}: {}",
        versions::RUST_PACKAGES.join(" "),
        installed.check().err().unwrap_or_default()
    );
    if missing.is_empty() {
        run(apt(sudo).arg("update").arg("-q"))?;
    }
    run(apt(sudo)
        .args([
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "--only-upgrade",
        ])
        .args(versions::RUST_PACKAGES))?;
    versions::Installed::read(dpkg_version, rustc_version)
        .check()
        .map_err(|problem| format!("{problem}\n{}", versions::WHAT_TO_DO))
}

/// Runs the whole workspace's tests with the cargo that runs this task, then builds the
/// driver's release image and checks it.
fn test(extra: &[String]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    run(Command::new(&cargo)
        .args(["test", "--workspace"])
        .args(extra))?;
    check_image()
}

/// What `test` does after the workspace's tests: builds the driver's release image, checks it
/// with `cargo pagecheck`, runs it under `cargo pagerun` and checks the planted defects.
fn check_image() -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let built = image::build(true)?;
    let registered = image::check(&cargo, &built)?;
    let version = image::package_version(&root().join("Cargo.toml"))?;
    run::check(&cargo, &built, registered, &version)?;
    defects::check(&cargo)
}

fn apt(sudo: bool) -> Command {
    let mut command = if sudo {
        let mut sudo = Command::new("sudo");
        sudo.arg("apt-get");
        sudo
    } else {
        Command::new("apt-get")
    };
    command.env("DEBIAN_FRONTEND", "noninteractive");
    command
}

fn is_debian() -> bool {
    Path::new("/etc/debian_version").exists()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// The installed version of a Debian package, `None` when it is not installed.
fn dpkg_version(package: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}\t${Version}", package])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, version) = text.split_once('\t')?;
    (out.status.success() && status.ends_with("install ok installed")).then(|| version.to_owned())
}

/// What Debian's rustc says of itself (`rustc 1.96.0 (...)`), `None` when it does not run.
fn rustc_version() -> Option<String> {
    let out = Command::new(pe_fixtures::RUSTC).arg("-V").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `cargo run --quiet --release --package <package> --`: one of the workspace's tools, built
/// in release as users run it, ready for its own arguments.
fn cargo_run(cargo: &str, package: &str) -> Command {
    let mut command = Command::new(cargo);
    command.args(["run", "--quiet", "--release", "--package", package, "--"]);
    command
}

fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    let status = command
        .status()
        .map_err(|error| format!("cannot run {shown}: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed with {status}"))
    }
}
