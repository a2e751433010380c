//! Builds of the driver with one planted defect each, which `cargo pagecheck` and
//! `cargo pagerun` must each catch by name: the proof that the clean results of
//! [`crate::image::check`] and [`crate::run`] are not clean because nothing is looked at.
//!
//! The shipped source has no defect switches. Each variant is the root `src/` copied into
//! `target/driver-defects/source/src/` with one textual edit, whose anchor must occur in the
//! source exactly once (a source that moved on fails loudly instead of building a variant
//! without its defect), and built with the image recipe of [`crate::image::compile`] from a
//! manifest generated from `driver-image/Cargo.toml`. The variants share one package and one
//! target folder, so the standard library is built once; every file of the copy is written
//! anew for each variant, which makes cargo rebuild the driver crate, and the output is
//! checked to be newer than the copy.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::image::{self, Built};
use crate::run::{self, Configuration};

/// One textual edit of a file under `src/`.
pub struct Edit {
    /// The file, relative to `src/`.
    pub file: &'static str,
    /// Text that must occur in it exactly once.
    pub anchor: &'static str,
    /// What replaces it.
    pub replacement: &'static str,
    /// Appended to the file after the replacement (a helper the edit calls).
    pub append: &'static str,
}

/// What `cargo pagecheck` must report on a variant: a finding of `rule` whose message names
/// every string of `names`.
pub struct PagecheckExpects {
    /// The rule id (`PC002`).
    pub rule: &'static str,
    /// Strings the finding's message contains (function names, callback names).
    pub names: &'static [&'static str],
}

/// What `cargo pagerun` must report on a variant in `configuration`: at least one violation
/// of `kind` in the function `symbol` (a suffix of its path) while `callback` ran, in
/// `scenario`; `None` where the run cannot see the defect (the reason is in the README).
pub struct PagerunExpects {
    /// Registry values and special files of the run.
    pub configuration: &'static Configuration,
    /// Scenario.
    pub scenario: &'static str,
    /// Violation kind (`fetch`).
    pub kind: &'static str,
    /// The function's path ends with this.
    pub symbol: &'static str,
    /// The callback slot running.
    pub callback: &'static str,
}

/// One planted defect.
pub struct Defect {
    /// Short name: the folder of its image under `target/driver-defects/`.
    pub name: &'static str,
    /// What it is, for the output.
    pub what: &'static str,
    /// The edit that plants it.
    pub edit: Edit,
    /// pagecheck's expected finding.
    pub pagecheck: PagecheckExpects,
    /// pagerun's expected violation.
    pub pagerun: Option<PagerunExpects>,
}

/// The planted defects of issue 17: one per kind.
pub const DEFECTS: &[Defect] = &[
    Defect {
        name: "d0-entry-helper-paged",
        what: "a helper of EvtDeviceD0Entry (device_state_is_np, through PowerStart::now) moved to PAGE",
        edit: Edit {
            file: "power.rs",
            anchor: "#[inline]\npub unsafe fn device_state_is_np(device: WDFDEVICE) -> bool {",
            replacement: "#[paged]\npub unsafe fn device_state_is_np(device: WDFDEVICE) -> bool {",
            append: "",
        },
        pagecheck: PagecheckExpects {
            rule: "PC002",
            names: &["EvtDeviceD0Entry", "device_state_is_np", "PAGE"],
        },
        pagerun: Some(PagerunExpects {
            configuration: &run::CONFIGURATIONS[1],
            scenario: "sleep",
            kind: "fetch",
            symbol: "power::device_state_is_np",
            callback: "EvtDeviceD0Entry",
        }),
    },
    Defect {
        name: "spin-lock-across-page",
        what: "the state update under the spin lock (DeviceContext::locked) calls a PAGE function",
        edit: Edit {
            file: "context.rs",
            anchor: "let reply = unsafe { &mut *self.state.get() }.apply(op);",
            replacement: "let reply = apply_in_page(unsafe { &mut *self.state.get() }, op);",
            append: "\n/// Planted defect: called with the spin lock held, at `DISPATCH_LEVEL`, from `PAGE`.\n\
                     #[pagewise_macros::paged]\n\
                     fn apply_in_page(state: &mut DeviceState, op: Op<'_>) -> Reply {\n    \
                     state.apply(op)\n}\n",
        },
        pagecheck: PagecheckExpects {
            rule: "PC002",
            names: &["holds a spin lock", "apply_in_page", "PAGE"],
        },
        pagerun: Some(PagerunExpects {
            configuration: &run::CONFIGURATIONS[0],
            scenario: "start",
            kind: "fetch",
            symbol: "context::apply_in_page",
            callback: "EvtDeviceD0Entry",
        }),
    },
    Defect {
        name: "d0-exit-without-np-guard",
        what: "EvtDeviceD0Exit writes the registry without its WdfDevStateIsNP test",
        edit: Edit {
            file: "power.rs",
            anchor: "let written = !unsafe { device_state_is_np(device) }\n            \
                     // SAFETY: as above; the framework's state is not NP.\n            \
                     && unsafe { write_counters(device, counters) };",
            replacement: "let written = unsafe { write_counters(device, counters) };",
            append: "",
        },
        pagecheck: PagecheckExpects {
            rule: "PC011",
            names: &[
                "EvtDeviceD0Exit",
                "registry access",
                "not behind a WdfDevStateIsNP test",
            ],
        },
        // The write runs only when the portable state allows it (power-pageable, on no
        // special-file path, not NP at the callback's start), so no run reaches it while
        // the paging disk may be off: nothing for pagerun to see.
        pagerun: None,
    },
];

/// The folder the variants are built in.
fn scratch() -> PathBuf {
    super::root().join("target/driver-defects")
}

/// Copies `from` into `to` recursively, every file written anew.
fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    fs::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    let entries = fs::read_dir(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", from.display()))?;
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_tree(&path, &target)?;
        } else {
            fs::copy(&path, &target).map_err(|e| {
                format!(
                    "cannot copy {} to {}: {e}",
                    path.display(),
                    target.display()
                )
            })?;
        }
    }
    Ok(())
}

/// Applies `edit` to `source`: the anchor must occur exactly once.
pub fn plant(source: &str, edit: &Edit) -> Result<String, String> {
    let count = source.matches(edit.anchor).count();
    if count != 1 {
        return Err(format!(
            "src/{}: the defect's anchor occurs {count} times, not once (has the source \
             changed?): {:?}",
            edit.file, edit.anchor
        ));
    }
    let mut planted = source.replacen(edit.anchor, edit.replacement, 1);
    planted.push_str(edit.append);
    Ok(planted)
}

/// `driver-image/Cargo.toml` for a copy of the package in another folder: the library at
/// `src/lib.rs` beside it, the workspace's crates by absolute path.
pub fn variant_manifest(manifest: &str, root: &Path) -> Result<String, String> {
    let lib = "path = \"../src/lib.rs\"";
    if manifest.matches(lib).count() != 1 {
        return Err(format!(
            "driver-image/Cargo.toml: `{lib}` does not occur exactly once"
        ));
    }
    let crates = "path = \"../crates/";
    if !manifest.contains(crates) {
        return Err(format!("driver-image/Cargo.toml: no `{crates}`"));
    }
    let text = manifest
        .replacen(lib, "path = \"src/lib.rs\"", 1)
        .replace(crates, &format!("path = \"{}/crates/", root.display()));
    if text.contains("\"../") {
        return Err(
            "driver-image/Cargo.toml: a relative path the variant manifest does not rewrite"
                .to_owned(),
        );
    }
    Ok(text)
}

/// Builds the release image of `defect`: `target/driver-defects/<name>/pagewise.sys`.
pub fn build(defect: &Defect) -> Result<Built, String> {
    let root = super::root();
    let scratch = scratch();
    let package = scratch.join("source");
    let src = package.join("src");
    if src.exists() {
        fs::remove_dir_all(&src).map_err(|e| format!("cannot remove {}: {e}", src.display()))?;
    }
    let copied = SystemTime::now();
    copy_tree(&root.join("src"), &src)?;
    let file = src.join(defect.edit.file);
    let source =
        fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let planted = plant(&source, &defect.edit)?;
    fs::write(&file, planted).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    let manifest = fs::read_to_string(root.join("driver-image/Cargo.toml"))
        .map_err(|e| format!("cannot read driver-image/Cargo.toml: {e}"))?;
    fs::write(
        package.join("Cargo.toml"),
        variant_manifest(&manifest, &root)?,
    )
    .map_err(|e| format!("cannot write the variant's manifest: {e}"))?;
    fs::copy(
        root.join("driver-image/Cargo.lock"),
        package.join("Cargo.lock"),
    )
    .map_err(|e| format!("cannot copy driver-image/Cargo.lock: {e}"))?;

    let built = image::compile(&package, &scratch.join("target"), true)?;
    let dll = built.join("pagewise.dll");
    let fresh = fs::metadata(&dll)
        .and_then(|m| m.modified())
        .is_ok_and(|modified| modified >= copied);
    if !fresh {
        return Err(format!(
            "{} is older than the planted source: cargo did not rebuild the variant {}",
            dll.display(),
            defect.name
        ));
    }
    image::copy_out(&built, &scratch.join(defect.name))
}

/// Builds every variant and checks that pagecheck and pagerun each report its defect.
pub fn check(cargo: &str) -> Result<(), String> {
    for defect in DEFECTS {
        println!("xtask: planted defect `{}`: {}", defect.name, defect.what);
        let built = build(defect)?;
        let report = image::pagecheck(cargo, &built)?;
        let findings = image::findings(&report);
        let found: Vec<&str> = findings
            .iter()
            .filter(|(rule, _)| rule == defect.pagecheck.rule)
            .map(|(_, message)| message.as_str())
            .collect();
        let Some(message) = found
            .iter()
            .find(|m| defect.pagecheck.names.iter().all(|n| m.contains(n)))
        else {
            return Err(format!(
                "defect `{}`: cargo pagecheck reports no {} naming {:?}; it reports:\n{}",
                defect.name,
                defect.pagecheck.rule,
                defect.pagecheck.names,
                findings
                    .iter()
                    .map(|(rule, message)| format!("  {rule}: {message}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        };
        println!(
            "xtask:   pagecheck: {} finding(s), {} of them {}: {message}",
            findings.len(),
            found.len(),
            defect.pagecheck.rule
        );
        check_pagerun(cargo, &built, defect)?;
    }
    Ok(())
}

/// Runs the variant under `cargo pagerun` and checks the violation `defect` expects; for a
/// defect no run can reach, prints what the run saw.
fn check_pagerun(cargo: &str, built: &Built, defect: &Defect) -> Result<(), String> {
    let Some(expects) = &defect.pagerun else {
        let outcome = run::pagerun(cargo, built, &run::CONFIGURATIONS[1], &[])?;
        println!(
            "xtask:   pagerun ({}): exit {}, {} violation(s): no run reaches this defect (see \
             crates/xtask/src/defects.rs)",
            run::CONFIGURATIONS[1].name,
            outcome.exit,
            outcome.violations().len()
        );
        return Ok(());
    };
    let outcome = run::pagerun(
        cargo,
        built,
        expects.configuration,
        &["--scenario", expects.scenario],
    )?;
    let matching = outcome
        .violations()
        .into_iter()
        .filter(|v| {
            v.kind == expects.kind
                && v.symbol.ends_with(expects.symbol)
                && v.callback == expects.callback
                && v.scenario == expects.scenario
        })
        .count();
    if matching == 0 || outcome.exit != 1 {
        return Err(format!(
            "defect `{}`: cargo pagerun ({}, {}) exited {} without a `{}` violation in {} \
             during {}; it reports: {:#?}",
            defect.name,
            expects.configuration.name,
            expects.scenario,
            outcome.exit,
            expects.kind,
            expects.symbol,
            expects.callback,
            outcome.violations()
        ));
    }
    println!(
        "xtask:   pagerun ({}, {}): exit {}, {} violation(s), {matching} `{}` in {} during {}",
        expects.configuration.name,
        expects.scenario,
        outcome.exit,
        outcome.violations().len(),
        expects.kind,
        expects.symbol,
        expects.callback
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_anchor_is_in_the_source_once() {
        let root = crate::root();
        for defect in DEFECTS {
            let source = fs::read_to_string(root.join("src").join(defect.edit.file))
                .expect("read the driver's source");
            let planted = plant(&source, &defect.edit).expect("anchor found once");
            assert_ne!(planted, source, "{}", defect.name);
            assert!(planted.contains(defect.edit.replacement), "{}", defect.name);
        }
    }

    #[test]
    fn a_missing_or_repeated_anchor_is_an_error() {
        let edit = Edit {
            file: "x.rs",
            anchor: "fn a()",
            replacement: "fn b()",
            append: "// appended\n",
        };
        assert!(plant("fn c() {}", &edit).is_err());
        assert!(plant("fn a() {} fn a() {}", &edit).is_err());
        assert_eq!(
            plant("fn a() {}\n", &edit),
            Ok("fn b() {}\n// appended\n".to_owned())
        );
    }

    #[test]
    fn the_variant_manifest_points_at_the_workspace() {
        let root = crate::root();
        let manifest =
            fs::read_to_string(root.join("driver-image/Cargo.toml")).expect("read the manifest");
        let variant = variant_manifest(&manifest, &root).expect("rewrites");
        assert!(variant.contains("path = \"src/lib.rs\""));
        assert!(variant.contains(&format!("{}/crates/pagewise-core", root.display())));
        assert!(!variant.contains("\"../"));
        assert!(variant_manifest("[package]\n", &root).is_err());
    }
}
