//! `cargo xtask setup | test [ARGS]`.
//!
//! The tests of `cargo pagecheck` and of the driver's section lookup link real PE images
//! from this repository's own sources, which needs a Rust toolchain with library sources
//! for `x86_64-pc-windows-msvc`, clang and lld. On Debian those are packages
//! ([`pe_fixtures::DEBIAN_PACKAGES`]); `setup` installs the missing ones, so that one
//! command, `cargo xtask test`, passes on a clean machine.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    let result = match task.as_deref() {
        Some("setup") if rest.is_empty() => setup(),
        Some("test") => setup().and_then(|()| test(&rest)),
        _ => {
            eprintln!("usage: cargo xtask setup | cargo xtask test [-- cargo test arguments]");
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

/// Installs the Debian packages the PE fixtures need, if any is missing.
fn setup() -> Result<(), String> {
    if !is_debian() {
        match pe_fixtures::tools_missing() {
            None => {}
            Some(missing) => eprintln!(
                "xtask: not a Debian system, so nothing is installed; the PE fixture tests \
                 will fail until these are present: {missing}"
            ),
        }
        return Ok(());
    }
    let missing: Vec<&str> = pe_fixtures::DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|package| !dpkg_installed(package))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    let sudo = !is_root();
    run(apt(sudo).arg("update").arg("-q"))?;
    run(apt(sudo)
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing))
}

/// Runs the whole workspace's tests with the cargo that runs this task.
fn test(extra: &[String]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    run(Command::new(cargo)
        .args(["test", "--workspace"])
        .args(extra))
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
    std::path::Path::new("/etc/debian_version").exists()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|out| out.status.success() && out.stdout.ends_with(b"install ok installed"))
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
