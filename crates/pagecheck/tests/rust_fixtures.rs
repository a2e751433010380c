//! Rust `no_std` drivers built for x86_64-pc-windows-msvc and linked by lld with a PDB: roots
//! from the `.pwrole` role records, generic and inlined helpers, the windows-drivers-rs WDF
//! call shape, and an image without records.

mod common;

use common::errors;
use common::{analyze, chain_sections, chain_symbols, run};
use pagecheck::checks::Rule;
use pagecheck::image::Residency;

#[test]
fn rust_clean_roots_come_from_role_records() {
    let image = common::rust("rust_clean");
    let report = analyze(&image, &[]);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    let mut roots: Vec<(&str, &str, &str)> = report
        .roots
        .iter()
        .map(|r| (r.role, r.symbol.as_str(), r.section.as_str()))
        .collect();
    roots.sort_unstable();
    assert_eq!(
        roots,
        vec![
            ("dispatch", "rust_clean::evt_io_device_control", ".text"),
            ("init", "rust_clean::DriverEntry", "INIT"),
            ("paged", "rust_clean::configure_queues", "PAGE"),
            ("paged", "rust_clean::evt_driver_device_add", "PAGE"),
            ("power-down", "rust_clean::evt_device_d0_exit", "PAGEPWR"),
            ("power-up", "rust_clean::evt_device_d0_entry", ".text"),
        ]
    );
    // save_state is resident but only the PAGEPWR root calls it: resident slack.
    assert!(
        report
            .slack
            .functions
            .iter()
            .any(|s| &*s.symbol == "rust_clean::save_state"),
        "{:?}",
        report.slack.functions
    );
    assert!(
        !report
            .slack
            .functions
            .iter()
            .any(|s| &*s.symbol == "rust_clean::reset_hardware")
    );
    assert_eq!(run([&image.image]).code, 0);
}

#[test]
fn rust_violation_one_chain_from_records() {
    let image = common::rust("rust_violation");
    let report = analyze(&image, &[]);
    let errors = errors(&report);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let v = errors[0];
    assert_eq!(v.rule, Rule::ResidentReachesPageable);
    assert_eq!(
        chain_symbols(v),
        [
            "rust_violation::evt_device_d0_entry",
            "rust_violation::load_calibration"
        ]
    );
    assert_eq!(chain_sections(v), [".text", "PAGE"]);
    // The call site is inside the root and the target is the start of the paged function.
    let root = &v.chain[0];
    let site = root.site.expect("call site");
    assert!(
        site > root.rva && site < root.rva + 0x100,
        "{site:#x} vs {:#x}",
        root.rva
    );
    assert_eq!(v.chain[1].site, None);

    let out = run([&image.image]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains(
            "error[PC002]: resident root `rust_violation::evt_device_d0_entry` (power-up, declared by its \
             placement attribute) reaches paged code `rust_violation::load_calibration` in `PAGE`"
        ),
        "{}",
        out.stdout
    );
    // One line per link: the source line, then the function and the image offset of the call
    // (of the function's start for the last link).
    let source = "crates/pagecheck/tests/fixtures/rust/rust_violation/src/lib.rs:";
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with(&format!("  --> {source}"))
                && l.contains(" in rust_violation::evt_device_d0_entry (.text+0x")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with(&format!("  --> {source}"))
                && l.ends_with(" in rust_violation::load_calibration (PAGE+0x0)")),
        "{}",
        out.stdout
    );
}

#[test]
fn rust_generic_inline_slack_and_violation() {
    let image = common::rust("rust_generic_inline");
    let report = analyze(&image, &[]);
    let errors = errors(&report);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(
        chain_symbols(errors[0]),
        [
            "rust_generic_inline::evt_io_device_control",
            "rust_generic_inline::read_config"
        ]
    );
    // The inlined PAGE helper leaves no call into PAGE from the power-up root.
    assert!(
        !report
            .violations
            .iter()
            .any(|v| v.chain[0].symbol.ends_with("evt_device_d0_entry"))
    );
    assert!(
        report
            .footprint
            .functions
            .iter()
            .all(|f| !f.symbol.ends_with("::scale"))
    );
    // The generic instantiation called only from PAGE code is resident slack, with its size.
    let checksum = report
        .slack
        .functions
        .iter()
        .find(|s| s.symbol.starts_with("rust_generic_inline::checksum<"))
        .expect("checksum<T> in the slack");
    assert_eq!(&*checksum.section, ".text");
    assert_eq!(checksum.residency, Residency::Resident);
    assert!(checksum.size > 16);
    // Largest first, like cargo-bloat.
    assert!(
        report
            .slack
            .functions
            .windows(2)
            .all(|w| w[0].size >= w[1].size)
    );
}

#[test]
fn rust_no_records_needs_command_line_roots() {
    let image = common::rust("rust_no_records");
    let err = pagecheck::analyze_path(&image.image, &pagecheck::Options::default())
        .expect_err("no roots");
    assert!(err.to_string().starts_with("no roots"), "{err}");

    let report = analyze(
        &image,
        &[
            "power-up=rust_no_records::evt_device_d0_entry",
            "dispatch=rust_no_records::evt_io_stop",
        ],
    );
    let errors = errors(&report);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(
        chain_symbols(errors[0]),
        [
            "rust_no_records::evt_device_d0_entry",
            "rust_no_records::load_calibration"
        ]
    );
    // DriverEntry calling INIT code is not a use after discard.
    assert!(
        !report
            .violations
            .iter()
            .any(|v| v.rule == Rule::InitUseAfterDiscard)
    );

    let out = run([
        image.image.as_os_str(),
        "--root".as_ref(),
        "power-up=rust_no_records::evt_device_d0_entry".as_ref(),
    ]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
}

#[test]
fn rust_wdf_shape_names_framework_calls() {
    let image = common::rust("rust_wdf_shape");
    let report = analyze(&image, &[]);
    assert!(!report.failed(), "{:#?}", report.violations);
    let wdf = common::wdf_calls(&report);
    let wdf: Vec<(&str, u32)> = wdf.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    assert_eq!(
        wdf,
        [
            ("WdfDeviceCreate", 1),
            ("WdfDeviceGetDevicePowerState", 1),
            ("WdfDriverCreate", 1),
            ("WdfIoQueueCreate", 1),
            ("WdfRequestCompleteWithInformation", 1),
        ]
    );
    // The framework calls in the resident roots are not unresolved.
    assert!(
        !report.unresolved.iter().any(|u| u.resident),
        "{:#?}",
        report.unresolved
    );
    // Even when unresolved calls fail the check.
    let out = run([image.image.as_os_str(), "--fail-on-unresolved".as_ref()]);
    assert_eq!(out.code, 0, "{}", out.stdout);
}

/// The resident leaf callbacks of `rust_release_leaf`: checks the premise on the image (no
/// `.pdata` entry covers the two `.text` role records) and returns the parsed image. (The
/// paged function is no leaf: `#[paged]` adds the `KeGetCurrentIrql` check, a call.)
fn release_leaf_premise(image: &pe_fixtures::Image) -> pagecheck::image::Image {
    let parsed = pagecheck::image::Image::parse(std::fs::read(&image.image).expect("read image"))
        .expect("parse image");
    assert_eq!(parsed.roles.len(), 4, "{:?}", parsed.roles);
    let text = parsed
        .sections
        .iter()
        .find(|s| s.name == ".text")
        .expect(".text");
    let leaves: Vec<_> = parsed
        .roles
        .iter()
        .filter(|r| text.contains(r.rva))
        .collect();
    assert_eq!(leaves.len(), 2, "{:?}", parsed.roles);
    for record in leaves {
        assert!(
            !parsed
                .runtime_functions
                .iter()
                .any(|rf| rf.begin <= record.rva && record.rva < rf.end),
            "role record at {:#x} is covered by .pdata: the fixture no longer has a leaf",
            record.rva
        );
    }
    parsed
}

#[test]
fn rust_release_leaves_are_functions_without_pdata_or_symbols() {
    let image = common::rust("rust_release_leaf");
    let parsed = release_leaf_premise(&image);
    let report = analyze(&image, &[]);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    // Every record became a root at exactly its address.
    let mut root_rvas: Vec<u32> = report.roots.iter().map(|r| r.rva).collect();
    let mut record_rvas: Vec<u32> = parsed.roles.iter().map(|r| r.rva).collect();
    root_rvas.sort_unstable();
    record_rvas.sort_unstable();
    assert_eq!(root_rvas, record_rvas);
    let text_roots: Vec<_> = report
        .roots
        .iter()
        .filter(|r| r.role == "power-up" || r.role == "dispatch")
        .collect();
    assert_eq!(text_roots.len(), 2, "{:#?}", report.roots);
    for root in &text_roots {
        assert_eq!(root.section, ".text");
        // No PDB name: `sub_<rva>` or `<named function>+0x<offset>`, never a chain of offsets.
        assert!(
            root.symbol == format!("sub_{:x}", root.rva) || root.symbol.matches("+0x").count() == 1,
            "{}",
            root.symbol
        );
        // The leaf ends at the next start: small, not the rest of the section.
        let size = report
            .footprint
            .functions
            .iter()
            .find(|f| f.rva == root.rva)
            .map(|f| f.size)
            .expect("root in the footprint");
        assert!(size < 0x40, "{}: {size} bytes", root.symbol);
    }
    let out = run([&image.image]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

#[test]
fn rust_release_leaf_violation_is_found_through_a_leaf() {
    let image = pe_fixtures::rust_with_features("rust_release_leaf", &["violation"])
        .expect("build Rust fixture");
    let parsed = release_leaf_premise(&image);
    let report = analyze(&image, &[]);
    let errors = errors(&report);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let v = errors[0];
    assert_eq!(v.rule, Rule::ResidentReachesPageable);
    assert_eq!(chain_sections(v), [".text", "PAGE"]);
    // Both ends of the chain are role-record leaves: the dispatch root and the paged function.
    let dispatch = report
        .roots
        .iter()
        .find(|r| r.role == "dispatch")
        .expect("dispatch root");
    let paged = report
        .roots
        .iter()
        .find(|r| r.role == "paged")
        .expect("paged root");
    assert_eq!(v.chain[0].rva, dispatch.rva);
    assert_eq!(v.chain[1].rva, paged.rva);
    assert!(parsed.roles.iter().any(|r| r.rva == v.chain[1].rva));
    // The jump is the leaf's last instruction: its site lies inside the (small) leaf.
    let site = v.chain[0].site.expect("jump site");
    assert!(
        site >= dispatch.rva && site < dispatch.rva + 0x10,
        "{site:#x}"
    );
    let out = run([&image.image]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("error[PC002]"), "{}", out.stdout);
}

#[test]
fn json_section_residency_follows_the_discardable_flag_for_data() {
    let image = common::rust("rust_clean");
    let out = run([
        image.image.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let residency = |name: &str| {
        json["sections"]
            .as_array()
            .expect("sections")
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["residency"].as_str().expect("residency").to_owned())
    };
    // Freed after load (role records, base relocations): not resident.
    assert_eq!(residency(".pwrole").as_deref(), Some("discardable"));
    assert_eq!(residency(".reloc").as_deref(), Some("discardable"));
    // Not-paged data and code by name, as before.
    assert_eq!(residency(".rdata").as_deref(), Some("resident"));
    assert_eq!(residency(".text").as_deref(), Some("resident"));
    assert_eq!(residency("PAGE").as_deref(), Some("pageable"));
    assert_eq!(residency("INIT").as_deref(), Some("discardable"));
}
