//! Finding the driver a `cargo pagecheck` run without an image means, the way cargo
//! subcommands find their artefact: `cargo metadata` names the package and the target
//! directory; the image is the driver package folder's `.sys` (what `cargo make` or
//! `cargo wdk build` signs and installs), else the plain build output.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::Error;

/// Which build of which package.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// `--manifest-path`.
    pub manifest_path: Option<PathBuf>,
    /// `-p/--package`.
    pub package: Option<String>,
    /// The profile name (`dev` when not given; `--release` is `release`).
    pub profile: Option<String>,
    /// `--target`.
    pub target: Option<String>,
}

/// A located driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// The `.sys` (or `.dll` when the build did not rename it).
    pub image: PathBuf,
    /// The workspace root, the default source root.
    pub workspace_root: PathBuf,
}

/// The target cargo-make's driver flow builds when none is given on a Windows host.
const DRIVER_TARGET: &str = "x86_64-pc-windows-msvc";

/// Finds the image for `query`.
///
/// # Errors
/// `cargo metadata` fails, the package does not exist or is ambiguous, builds no library, or
/// has not been built for that profile and target.
pub fn find(query: &Query) -> Result<Located, Error> {
    let metadata = metadata(query.manifest_path.as_deref())?;
    let package = select_package(&metadata, query)?;
    let name = library_name(package)?;
    let package_name = package["name"].as_str().unwrap_or(&name).to_owned();
    let target_dir = metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| Error::new("cargo metadata names no target directory"))?;
    let workspace_root = metadata["workspace_root"]
        .as_str()
        .map_or_else(|| target_dir.clone(), PathBuf::from);
    let profile = query.profile.as_deref().unwrap_or("dev");
    let candidates = candidates(
        &target_dir,
        query.target.as_deref(),
        profile,
        &package_name,
        &name,
    );
    match candidates.iter().find(|c| c.is_file()) {
        Some(image) => Ok(Located {
            image: image.clone(),
            workspace_root,
        }),
        None => Err(Error::new(format!(
            "no built driver for package `{}` ({profile} profile): looked for {}; build it with `cargo make`{} or `cargo wdk build`, or \
             pass the image's path",
            package["name"].as_str().unwrap_or("?"),
            candidates
                .iter()
                .map(|c| c.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            if profile == "release" {
                " --profile release"
            } else {
                ""
            }
        ))),
    }
}

/// Where a build leaves the image, most specific first: the driver package folder, then the
/// linker output renamed to `.sys`, then the linker output itself. `package` is the cargo
/// package's name, `name` its library's file name (`-` turned into `_`).
///
/// The package folder is `<name>_package` for both of windows-drivers-rs' build tools:
/// wdk-build's cargo-make flow, and `cargo wdk build` (cargo-wdk 0.2.0 names it after the
/// package with `-` turned into `_`, beside the built DLL). cargo-wdk's README describes it
/// as `target\<profile>\<project-name>-package` instead, so that spelling is looked for
/// too, with the package's own name and with the library's.
#[must_use]
pub fn candidates(
    target_dir: &Path,
    target: Option<&str>,
    profile: &str,
    package: &str,
    name: &str,
) -> Vec<PathBuf> {
    // Cargo names the output directory of the `dev` profile `debug`.
    let profile_dir = if profile == "dev" { "debug" } else { profile };
    let dirs = if let Some(triple) = target {
        vec![target_dir.join(triple).join(profile_dir)]
    } else {
        vec![
            target_dir.join(profile_dir),
            target_dir.join(DRIVER_TARGET).join(profile_dir),
        ]
    };
    let mut out = Vec::new();
    for dir in dirs {
        out.push(
            dir.join(format!("{name}_package"))
                .join(format!("{name}.sys")),
        );
        for folder in [package, name] {
            let candidate = dir
                .join(format!("{folder}-package"))
                .join(format!("{name}.sys"));
            if !out.contains(&candidate) {
                out.push(candidate);
            }
        }
        out.push(dir.join(format!("{name}.sys")));
        out.push(dir.join(format!("{name}.dll")));
    }
    out
}

/// `cargo metadata --no-deps` as JSON.
fn metadata(manifest_path: Option<&Path>) -> Result<Value, Error> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["metadata", "--format-version", "1", "--no-deps"]);
    if let Some(path) = manifest_path {
        command.arg("--manifest-path").arg(path);
    }
    let output = command
        .output()
        .map_err(|e| Error::new(format!("cannot run cargo metadata: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = stderr
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no reason given")
            .trim_start_matches("error: ");
        return Err(Error::new(format!(
            "no image given and cargo metadata failed ({reason}): pass the driver's .sys, or run in its package"
        )));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| Error::new(format!("cargo metadata printed something unreadable: {e}")))
}

/// The package `-p` names, else the one whose manifest is the one cargo read, else the only
/// package that builds a `cdylib` (a driver).
fn select_package<'m>(metadata: &'m Value, query: &Query) -> Result<&'m Value, Error> {
    let packages = metadata["packages"]
        .as_array()
        .ok_or_else(|| Error::new("cargo metadata lists no packages"))?;
    if let Some(name) = &query.package {
        return packages
            .iter()
            .find(|p| p["name"] == name.as_str())
            .ok_or_else(|| Error::new(format!("no package `{name}` in this workspace")));
    }
    let manifest = match &query.manifest_path {
        Some(path) => path.canonicalize().ok(),
        None => nearest_manifest(),
    };
    if let Some(manifest) = manifest
        && let Some(package) = packages.iter().find(|p| {
            p["manifest_path"]
                .as_str()
                .and_then(|m| Path::new(m).canonicalize().ok())
                .is_some_and(|m| m == manifest)
        })
    {
        return Ok(package);
    }
    let drivers: Vec<&Value> = packages.iter().filter(|p| builds_cdylib(p)).collect();
    match drivers.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::new(
            "no package in this workspace builds a driver (a cdylib)",
        )),
        many => Err(Error::new(format!(
            "several packages build a driver ({}): choose one with -p",
            many.iter()
                .filter_map(|p| p["name"].as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The `Cargo.toml` cargo would read from the current directory.
fn nearest_manifest() -> Option<PathBuf> {
    let mut dir = std::env::current_dir().ok()?;
    loop {
        let manifest = dir.join("Cargo.toml");
        if manifest.is_file() {
            return manifest.canonicalize().ok();
        }
        if !dir.pop() {
            return None;
        }
    }
}

fn builds_cdylib(package: &Value) -> bool {
    package["targets"].as_array().is_some_and(|targets| {
        targets.iter().any(|t| {
            t["crate_types"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "cdylib"))
        })
    })
}

/// The file name the package's driver is linked as: its `cdylib` target's name, `-` become `_`.
fn library_name(package: &Value) -> Result<String, Error> {
    let name = package["name"].as_str().unwrap_or("?");
    package["targets"]
        .as_array()
        .and_then(|targets| {
            targets.iter().find(|t| {
                t["crate_types"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "cdylib"))
            })
        })
        .and_then(|t| t["name"].as_str())
        .map(|n| n.replace('-', "_"))
        .ok_or_else(|| {
            Error::new(format!(
                "package `{name}` builds no driver (no cdylib target): run in the driver's package, pass -p, or \
                 pass the image's path"
            ))
        })
}

/// The default source root when an image is named: the outermost directory above the current
/// one whose `Cargo.toml` declares a workspace, else the nearest package, else the current
/// directory.
#[must_use]
pub fn default_source_root() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    let mut dir = cwd.clone();
    let mut package = None;
    let mut workspace = None;
    loop {
        let manifest = dir.join("Cargo.toml");
        if let Ok(text) = std::fs::read_to_string(&manifest) {
            package.get_or_insert_with(|| dir.clone());
            if text.lines().any(|l| l.trim() == "[workspace]") {
                workspace = Some(dir.clone());
            }
        }
        if !dir.pop() {
            break;
        }
    }
    Some(workspace.or(package).unwrap_or(cwd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_prefer_the_package_folder_and_know_cargos_profile_directories() {
        let c = candidates(Path::new("/t"), None, "dev", "pagewise", "pagewise");
        assert_eq!(
            c[..4],
            [
                PathBuf::from("/t/debug/pagewise_package/pagewise.sys"),
                PathBuf::from("/t/debug/pagewise-package/pagewise.sys"),
                PathBuf::from("/t/debug/pagewise.sys"),
                PathBuf::from("/t/debug/pagewise.dll"),
            ]
        );
        assert_eq!(
            c[4],
            PathBuf::from("/t/x86_64-pc-windows-msvc/debug/pagewise_package/pagewise.sys")
        );
        let c = candidates(
            Path::new("/t"),
            Some("aarch64-pc-windows-msvc"),
            "release",
            "my-drv",
            "my_drv",
        );
        assert_eq!(
            c,
            [
                PathBuf::from("/t/aarch64-pc-windows-msvc/release/my_drv_package/my_drv.sys"),
                PathBuf::from("/t/aarch64-pc-windows-msvc/release/my-drv-package/my_drv.sys"),
                PathBuf::from("/t/aarch64-pc-windows-msvc/release/my_drv-package/my_drv.sys"),
                PathBuf::from("/t/aarch64-pc-windows-msvc/release/my_drv.sys"),
                PathBuf::from("/t/aarch64-pc-windows-msvc/release/my_drv.dll"),
            ]
        );
    }
}
