//! Rust `no_std` drivers built for x86_64-pc-windows-msvc and linked by lld with a PDB: roots
//! from the `.pwrole` role records, generic and inlined helpers, the windows-drivers-rs WDF
//! call shape, and an image without records.

mod common;

use common::{analyze, chain_sections, chain_symbols, run};
use pagecheck::checks::{Level, Rule};
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
            .any(|s| s.symbol == "rust_clean::save_state"),
        "{:?}",
        report.slack.functions
    );
    assert!(
        !report
            .slack
            .functions
            .iter()
            .any(|s| s.symbol == "rust_clean::reset_hardware")
    );
    assert_eq!(run([&image.image]).code, 0);
}

#[test]
fn rust_violation_one_chain_from_records() {
    let image = common::rust("rust_violation");
    let report = analyze(&image, &[]);
    let errors: Vec<_> = report
        .violations
        .iter()
        .filter(|v| v.level == Level::Error)
        .collect();
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
            "error[PC002]: resident root `rust_violation::evt_device_d0_entry` (power-up) reaches paged code \
             `rust_violation::load_calibration` in `PAGE`"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(" --> chain: rust_violation::evt_device_d0_entry (.text+0x"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("-> rust_violation::load_calibration (PAGE+0x0)"),
        "{}",
        out.stdout
    );
}

#[test]
fn rust_generic_inline_slack_and_violation() {
    let image = common::rust("rust_generic_inline");
    let report = analyze(&image, &[]);
    let errors: Vec<_> = report
        .violations
        .iter()
        .filter(|v| v.level == Level::Error)
        .collect();
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
    assert_eq!(checksum.section, ".text");
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
    let report = analyze(&image, &[]);
    assert!(report.roots.is_empty());
    assert!(report.violations.is_empty());

    let report = analyze(
        &image,
        &[
            "power-up=rust_no_records::evt_device_d0_entry",
            "dispatch=rust_no_records::evt_io_stop",
        ],
    );
    let errors: Vec<_> = report
        .violations
        .iter()
        .filter(|v| v.level == Level::Error)
        .collect();
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
    let wdf: Vec<(&str, u32)> = report
        .externals
        .iter()
        .filter(|e| e.kind == "wdf")
        .map(|e| (e.name.as_str(), e.calls))
        .collect();
    assert_eq!(
        wdf,
        vec![
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
