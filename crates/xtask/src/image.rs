//! The driver's own image, built on Linux (`cargo xtask driver`), and its check in
//! `cargo xtask test`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

// SECTION_LINK_ARGS, the list build.rs gives the WDK build.
include!("../../../link_sections.rs");

/// lld-link's arguments for the image, before [`SECTION_LINK_ARGS`]: what `link.exe
/// /DRIVER` and wdk-build 0.6.0's `configure_wdk_binary_build` give the WDK build, as far as
/// lld-link has them. Two differences, both because no WDK is here: the entry point is
/// `DriverEntry` itself (the WDK build enters through the KMDF stub library's
/// `FxDriverEntry`, which binds the framework and then calls it; whoever loads this image,
/// `cargo pagerun`, fills the stub's globals instead), and no merging of identical
/// functions (`/OPT:NOICF` where wdk-build gives `ICF`, and rustc's
/// `-Zmerge-functions=disabled`, see [`build`]): merging folds `EvtDriverUnload` into
/// `EvtDeviceSelfManagedIoCleanup` (both empty in a release build), after which the PDB
/// names only one of them, so reports and the check against the `callbacks!` table would
/// name one for the other. It saves a few bytes of `PAGE` in the shipped image. lld leaves `.text` pageable unless told (windows-drivers-rs #182), so the
/// not-paged sections are spelled out as `link.exe /DRIVER` marks them.
const DRIVER_LINK_ARGS: &[&str] = &[
    "/DRIVER",
    "/SUBSYSTEM:NATIVE",
    "/NODEFAULTLIB",
    "/ENTRY:DriverEntry",
    "/DEBUG",
    "/MACHINE:X64",
    "/NXCOMPAT",
    "/DYNAMICBASE",
    "/INTEGRITYCHECK",
    "/OPT:REF",
    "/OPT:NOICF",
    "/SECTION:.text,ERP",
    "/SECTION:.rdata,RP",
    "/SECTION:.data,RWP",
    "/SECTION:.pdata,RP",
];

/// A built image.
pub struct Built {
    /// `target/driver-image/<profile>/pagewise.sys`.
    pub sys: PathBuf,
    /// Its PDB, beside it.
    pub pdb: PathBuf,
}

/// Builds `driver-image` (the root `src/` against the stand-in WDK crates) for
/// `x86_64-pc-windows-msvc` with Debian's rustc and lld-link.
pub fn build(release: bool) -> Result<Built, String> {
    let root = super::root();
    let root_version = package_version(&root.join("Cargo.toml"))?;
    let image_version = package_version(&root.join("driver-image/Cargo.toml"))?;
    if root_version != image_version {
        return Err(format!(
            "driver-image/Cargo.toml has version {image_version}, the driver {root_version}: \
             they must be equal (the driver reports its version)"
        ));
    }
    let target_dir = root.join("target/driver-image");
    let profile = if release { "release" } else { "debug" };
    let built = compile(&root.join("driver-image"), &target_dir, release)?;
    let out = target_dir.join(profile);
    let built = copy_out(&built, &out)?;
    println!(
        "xtask: built {} and {}",
        built.sys.display(),
        built.pdb.display()
    );
    Ok(built)
}

/// Compiles the image package whose manifest is in `package` into `target_dir` with the
/// image recipe; returns the folder holding `pagewise.dll` and `pagewise.pdb`.
pub fn compile(package: &Path, target_dir: &Path, release: bool) -> Result<PathBuf, String> {
    let mut cargo = Command::new(pe_fixtures::CARGO);
    // Nothing of the cargo that runs this task may leak into Debian's cargo building for
    // another target.
    pe_fixtures::isolate_cargo_env(&mut cargo);
    cargo
        .current_dir(package)
        .env("RUSTC", pe_fixtures::RUSTC)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", target_dir)
        .args(["rustc", "--lib", "--target", pe_fixtures::TARGET])
        .args(release.then_some("--release"))
        .arg("-Zbuild-std=core,alloc")
        .arg("--config")
        .arg(format!(
            "target.{}.linker=\"{}\"",
            pe_fixtures::TARGET,
            pe_fixtures::LLD_LINK
        ))
        .arg("--");
    // LLVM's function merging (on by default) would fold identical functions into aliases
    // before the linker sees them; see DRIVER_LINK_ARGS.
    cargo.arg("-Zmerge-functions=disabled");
    for arg in DRIVER_LINK_ARGS.iter().chain(SECTION_LINK_ARGS) {
        cargo.arg(format!("-Clink-arg={arg}"));
    }
    super::run(&mut cargo)?;
    let profile = if release { "release" } else { "debug" };
    Ok(target_dir.join(pe_fixtures::TARGET).join(profile))
}

/// Copies `pagewise.dll` and `pagewise.pdb` of `built` to `out` as `pagewise.sys` and
/// `pagewise.pdb`.
pub fn copy_out(built: &Path, out: &Path) -> Result<Built, String> {
    fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let sys = out.join("pagewise.sys");
    let pdb = out.join("pagewise.pdb");
    for (from, to) in [
        (built.join("pagewise.dll"), &sys),
        (built.join("pagewise.pdb"), &pdb),
    ] {
        fs::copy(&from, to)
            .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))?;
    }
    Ok(Built { sys, pdb })
}

/// `cargo pagecheck --deny warnings --format json` on `built`: its report, once pagecheck
/// could check the image (exit 0 or 1).
pub fn pagecheck(cargo: &str, built: &Built) -> Result<Value, String> {
    let output = super::cargo_run(cargo, "cargo-pagecheck")
        .arg("pagecheck")
        .arg(&built.sys)
        .arg("--pdb")
        .arg(&built.pdb)
        .args(["--deny", "warnings", "--format", "json"])
        .output()
        .map_err(|e| format!("cannot run cargo pagecheck: {e}"))?;
    let code = output.status.code();
    if !matches!(code, Some(0 | 1)) {
        return Err(format!(
            "cargo pagecheck could not check {} ({:?}): {}",
            built.sys.display(),
            code,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("cargo pagecheck's JSON does not parse: {e}"))
}

/// `cargo pagecheck --deny warnings` on the image: no finding, the registrations it finds
/// equal to the `callbacks!` table, and the footprint printed. Returns the number of
/// registered callbacks.
pub fn check(cargo: &str, built: &Built) -> Result<usize, String> {
    let report = pagecheck(cargo, built)?;
    let findings = findings(&report);
    if !findings.is_empty() {
        return Err(format!(
            "cargo pagecheck --deny warnings found on {}:\n{}",
            built.sys.display(),
            findings
                .iter()
                .map(|(rule, message)| format!("  {rule}: {message}"))
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }

    let table_source = fs::read_to_string(super::root().join("src/callbacks.rs"))
        .map_err(|e| format!("cannot read src/callbacks.rs: {e}"))?;
    let table = parse_table(&table_source)?;
    let registered = registrations(&report);
    if table != registered {
        return Err(format!(
            "the callbacks pagecheck finds registered in the image differ from the callbacks! \
             table of src/callbacks.rs:\n  table:    {table:?}\n  in image: {registered:?}"
        ));
    }
    println!(
        "xtask: pagecheck: {} callbacks registered in the image, as in the callbacks! table",
        registered.len()
    );
    print_footprint(&report);
    Ok(registered.len())
}

/// `(rule, message)` of every violation in pagecheck's JSON report.
pub fn findings(report: &Value) -> Vec<(String, String)> {
    report["violations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            (
                v["rule"].as_str().unwrap_or_default().to_owned(),
                v["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// One registration: the structure (without an object kind), the field, the function's
/// name (its last path segment).
type Entry = (String, String, String);

/// The registrations pagecheck read from the image, sorted.
fn registrations(report: &Value) -> Vec<Entry> {
    let mut list: Vec<Entry> = report["registrations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let structure = r["structure"].as_str().unwrap_or_default();
            let symbol = r["symbol"].as_str().unwrap_or_default();
            (
                structure.split(' ').next().unwrap_or_default().to_owned(),
                r["slot"].as_str().unwrap_or_default().to_owned(),
                symbol.rsplit("::").next().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    list.sort();
    list
}

/// The entries of the `pagewise_macros::callbacks!` table in `source`, sorted: each block
/// `fn name(STRUCTURE[(kind)]) { Field: function => id, ... }`.
fn parse_table(source: &str) -> Result<Vec<Entry>, String> {
    let text: String = source
        .lines()
        .map(|line| line.split_once("//").map_or(line, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n");
    let start = text
        .find("callbacks!")
        .ok_or("src/callbacks.rs has no callbacks! table")?;
    let mut rest = &text[start..];
    let mut entries = Vec::new();
    while let Some(at) = rest.find("fn ") {
        rest = &rest[at + 3..];
        let open = rest
            .find('(')
            .ok_or("a table block without its structure")?;
        let structure = rest[open + 1..]
            .split(['(', ')'])
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let body_start = rest.find('{').ok_or("a table block without a body")?;
        let body_end = rest[body_start..]
            .find('}')
            .ok_or("a table block without its closing brace")?
            + body_start;
        for item in rest[body_start + 1..body_end].split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let (field, tail) = item
                .split_once(':')
                .ok_or_else(|| format!("table entry `{item}` has no `field:`"))?;
            let (function, _id) = tail
                .split_once("=>")
                .ok_or_else(|| format!("table entry `{item}` has no `=> id`"))?;
            entries.push((
                structure.clone(),
                field.trim().to_owned(),
                function.trim().to_owned(),
            ));
        }
        rest = &rest[body_end..];
    }
    if entries.is_empty() {
        return Err("the callbacks! table of src/callbacks.rs has no entries".to_owned());
    }
    entries.sort();
    Ok(entries)
}

/// The section table and the share of the code that is resident.
fn print_footprint(report: &Value) {
    println!("xtask: sections of the driver's image:");
    println!(
        "  {:<8} {:>8} {:>12}  residency",
        "section", "size", "flags"
    );
    for section in report["sections"].as_array().into_iter().flatten() {
        println!(
            "  {:<8} {:>8} {:>#12x}  {}",
            section["name"].as_str().unwrap_or_default(),
            section["size"].as_u64().unwrap_or_default(),
            section["characteristics"].as_u64().unwrap_or_default(),
            section["residency"].as_str().unwrap_or_default()
        );
    }
    // docs/driver-footprint.md's measure: code sections (IMAGE_SCN_CNT_CODE) by size.
    let (mut resident_sections, mut code_sections) = (0, 0);
    for section in report["sections"].as_array().into_iter().flatten() {
        if section["characteristics"].as_u64().unwrap_or_default() & 0x20 != 0 {
            let size = section["size"].as_u64().unwrap_or_default();
            code_sections += size;
            if section["residency"].as_str() == Some("resident") {
                resident_sections += size;
            }
        }
    }
    println!(
        "xtask: resident share {} by section size ({resident_sections} of {code_sections} B of \
         code sections)",
        share(resident_sections, code_sections)
    );
    let footprint = &report["footprint"];
    let resident = footprint["resident"].as_u64().unwrap_or_default();
    let pageable = footprint["pageable"].as_u64().unwrap_or_default();
    let discardable = footprint["discardable"].as_u64().unwrap_or_default();
    let code = resident + pageable + discardable;
    println!(
        "xtask: function bytes: resident {resident}, pageable {pageable}, discardable \
         {discardable}: {} resident",
        share(resident, code)
    );
    println!(
        "xtask: toolchain: {}, {}",
        super::rustc_version().unwrap_or_else(|| "rustc ?".to_owned()),
        tool_line(pe_fixtures::LLD_LINK, "--version")
    );
}

/// `part` of `whole` as a percentage with one decimal.
fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "n/a".to_owned();
    }
    let tenths = (part * 1000 + whole / 2) / whole;
    format!("{}.{}%", tenths / 10, tenths % 10)
}

fn tool_line(tool: &str, arg: &str) -> String {
    Command::new(tool).arg(arg).output().map_or_else(
        |_| format!("{tool} ?"),
        |out| String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}

/// The `version` of the `[package]` of a manifest.
pub fn package_version(manifest: &std::path::Path) -> Result<String, String> {
    let text = fs::read_to_string(manifest)
        .map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
    let package = text
        .split("\n[")
        .find(|table| table.trim_start_matches('[').starts_with("package]"))
        .ok_or_else(|| format!("{} has no [package]", manifest.display()))?;
    package
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == "version").then(|| value.trim().trim_matches('"').to_owned())
        })
        .ok_or_else(|| format!("{} has no package version", manifest.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = r"
use x;
pagewise_macros::callbacks! {
    /// docs, with a colon: and an arrow => here
    pub(crate) const REGISTERED: [CallbackId];

    pub(crate) fn driver_config(WDF_DRIVER_CONFIG) {
        EvtDriverDeviceAdd: evt_driver_device_add => CallbackId::DeviceAdd,
        EvtDriverUnload: evt_driver_unload => CallbackId::DriverUnload, // trailing
    }

    pub(crate) fn device_attributes(WDF_OBJECT_ATTRIBUTES(device)) {
        EvtCleanupCallback: evt_device_context_cleanup
            => CallbackId::DeviceContextCleanup,
    }
}
";

    fn entry(structure: &str, field: &str, function: &str) -> Entry {
        (structure.to_owned(), field.to_owned(), function.to_owned())
    }

    #[test]
    fn the_table_parses_into_structure_field_function() {
        assert_eq!(
            parse_table(TABLE),
            Ok(vec![
                entry(
                    "WDF_DRIVER_CONFIG",
                    "EvtDriverDeviceAdd",
                    "evt_driver_device_add"
                ),
                entry("WDF_DRIVER_CONFIG", "EvtDriverUnload", "evt_driver_unload"),
                entry(
                    "WDF_OBJECT_ATTRIBUTES",
                    "EvtCleanupCallback",
                    "evt_device_context_cleanup"
                ),
            ])
        );
        assert!(parse_table("no table here").is_err());
    }

    #[test]
    fn the_real_table_parses() {
        let source = fs::read_to_string(crate::root().join("src/callbacks.rs")).expect("read");
        let table = parse_table(&source).expect("parses");
        assert_eq!(table.len(), 17, "{table:?}");
        assert!(table.contains(&entry(
            "WDF_PNPPOWER_EVENT_CALLBACKS",
            "EvtDeviceD0Exit",
            "evt_device_d0_exit"
        )));
    }

    #[test]
    fn pagechecks_registrations_compare_by_structure_slot_and_name() {
        let report: Value = serde_json::json!({
            "registrations": { "list": [
                { "structure": "WDF_OBJECT_ATTRIBUTES of the WDFDEVICE", "slot": "EvtCleanupCallback",
                  "symbol": "pagewise::device::evt_device_context_cleanup" },
                { "structure": "WDF_DRIVER_CONFIG", "slot": "EvtDriverUnload",
                  "symbol": "pagewise::driver::evt_driver_unload" },
                { "structure": "WDF_DRIVER_CONFIG", "slot": "EvtDriverDeviceAdd",
                  "symbol": "pagewise::device::evt_driver_device_add" }
            ]}
        });
        assert_eq!(registrations(&report), parse_table(TABLE).expect("parses"));
    }

    #[test]
    fn versions_and_shares() {
        let version = package_version(&crate::root().join("Cargo.toml")).expect("root version");
        assert_eq!(
            package_version(&crate::root().join("driver-image/Cargo.toml")).expect("image"),
            version
        );
        assert_eq!(share(4020, 14794), "27.2%");
        assert_eq!(share(0, 0), "n/a");
    }
}
