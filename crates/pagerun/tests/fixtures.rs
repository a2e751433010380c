//! `cargo pagerun` on the fixture drivers built here from `run_driver.inc`: each defect gives
//! exactly the expected violations, in the expected scenarios, and the clean driver none, both
//! power-pageable and power-nonpageable.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn run(name: &str, args: &[&str]) -> (i32, Value) {
    let image = pe_fixtures::c(name).expect("build the fixture");
    let output = Command::new(env!("CARGO_BIN_EXE_cargo-pagerun"))
        .arg(&image.image)
        .args(["--format", "json"])
        .args(args)
        .output()
        .expect("run cargo-pagerun");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{name}: not JSON ({e}): {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), report)
}

/// `(kind, symbol, section, callback, scenario)` of every violation, sorted.
fn violations(report: &Value) -> Vec<(String, String, String, String, String)> {
    let mut out: Vec<_> = report["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
            (
                s("kind"),
                s("symbol"),
                s("section"),
                s("callback"),
                s("scenario"),
            )
        })
        .collect();
    out.sort();
    out
}

fn all_completed(report: &Value) {
    let scenarios = report["scenarios"].as_array().expect("scenarios");
    assert_eq!(scenarios.len(), 7, "{report:#}");
    for s in scenarios {
        assert_eq!(s["status"], "completed", "{s:#}");
    }
}

fn v(
    kind: &str,
    symbol: &str,
    section: &str,
    callback: &str,
    scenario: &str,
) -> (String, String, String, String, String) {
    (
        kind.to_owned(),
        symbol.to_owned(),
        section.to_owned(),
        callback.to_owned(),
        scenario.to_owned(),
    )
}

#[test]
fn clean_driver_runs_every_scenario_without_a_violation() {
    for registry in ["PowerNotPageable=0", "PowerNotPageable=1"] {
        let (code, report) = run("run_driver_clean", &["--registry", registry]);
        all_completed(&report);
        assert_eq!(violations(&report), vec![], "{registry}: {report:#}");
        assert_eq!(code, 0, "{registry}");
        let pageable = if registry.ends_with('1') { "no" } else { "yes" };
        for s in report["scenarios"].as_array().expect("scenarios") {
            assert_eq!(s["info"]["power_pageable"], pageable, "{s:#}");
        }
        // The S0 idle scenario really idled: D0 exit and entry ran (more steps than start).
        let steps = |name: &str| {
            report["scenarios"]
                .as_array()
                .and_then(|a| a.iter().find(|s| s["name"] == name))
                .and_then(|s| s["steps"].as_u64())
                .unwrap_or(0)
        };
        assert!(steps("idle") > steps("start"), "{report:#}");
        assert!(steps("sleep") > steps("start"), "{report:#}");
    }
}

#[test]
fn resident_d0_entry_reaching_page_faults_only_in_the_nonpageable_resume_window() {
    let (code, report) = run("run_driver_d0_paged", &["--registry", "PowerNotPageable=1"]);
    all_completed(&report);
    assert_eq!(
        violations(&report),
        vec![
            v(
                "fetch",
                "ReprogramDevice",
                "PAGE",
                "EvtDeviceD0Entry",
                "hibernate"
            ),
            v(
                "fetch",
                "ReprogramDevice",
                "PAGE",
                "EvtDeviceD0Entry",
                "sleep"
            ),
        ]
    );
    assert_eq!(code, 1);
    let first = &report["violations"][0];
    assert_eq!(first["irql"], 0);
    assert!(
        first["source"]["file"]
            .as_str()
            .unwrap_or("")
            .ends_with("run_driver.inc")
    );
    assert!(
        first["step_label"]
            .as_str()
            .unwrap_or("")
            .starts_with("EvtDeviceD0Entry")
    );
    // Power-pageable, the paging disk stays on: a slow resume, not a fault.
    let (code, report) = run("run_driver_d0_paged", &["--registry", "PowerNotPageable=0"]);
    assert_eq!(violations(&report), vec![]);
    assert_eq!(code, 0);
}

#[test]
fn dispatch_queue_callback_in_page_faults_at_its_first_request() {
    let (code, report) = run("run_driver_queue_paged", &[]);
    all_completed(&report);
    assert_eq!(
        violations(&report),
        vec![v(
            "fetch",
            "EvtIoDeviceControl",
            "PAGE",
            "EvtIoDeviceControl",
            "io"
        )]
    );
    assert_eq!(report["violations"][0]["irql"], 2);
    assert_eq!(code, 1);
}

#[test]
fn init_code_used_after_driver_entry_faults() {
    let (code, report) = run(
        "run_driver_init_used",
        &["--scenario", "start", "--scenario", "stop-restart"],
    );
    assert_eq!(
        violations(&report),
        vec![
            v(
                "fetch",
                "EvtDevicePrepareHardware",
                "INIT",
                "EvtDevicePrepareHardware",
                "start"
            ),
            v(
                "fetch",
                "EvtDevicePrepareHardware",
                "INIT",
                "EvtDevicePrepareHardware",
                "stop-restart"
            ),
            v(
                "fetch",
                "EvtDevicePrepareHardware",
                "INIT",
                "EvtDevicePrepareHardware",
                "stop-restart"
            ),
        ]
    );
    assert_eq!(code, 1);
}

#[test]
fn paged_call_under_a_spin_lock_faults_even_at_passive_level() {
    let (code, report) = run(
        "run_driver_lock_paged",
        &["--scenario", "start", "--scenario", "io"],
    );
    assert_eq!(
        violations(&report),
        vec![
            v("fetch", "RecordEvent", "PAGE", "EvtDeviceD0Entry", "io"),
            v("fetch", "RecordEvent", "PAGE", "EvtDeviceD0Entry", "start"),
            v("fetch", "RecordEvent", "PAGE", "EvtIoDeviceControl", "io"),
        ]
    );
    // EvtDeviceD0Entry runs at PASSIVE_LEVEL: the lock is what makes the fault.
    let d0 = report["violations"]
        .as_array()
        .and_then(|a| a.iter().find(|v| v["callback"] == "EvtDeviceD0Entry"))
        .expect("D0 entry violation");
    assert!(
        d0["message"].as_str().unwrap_or("").contains("spin lock"),
        "{d0:#}"
    );
    assert_eq!(code, 1);
}

#[test]
fn table_in_a_pageable_data_section_read_at_dispatch_faults() {
    let (code, report) = run("run_driver_paged_table", &[]);
    all_completed(&report);
    assert_eq!(
        violations(&report),
        vec![v(
            "read",
            "EvtIoDeviceControl",
            "PAGEDATA",
            "EvtIoDeviceControl",
            "io"
        )]
    );
    assert_eq!(code, 1);
}

#[test]
fn cycles_repeat_the_sleep_and_the_violation_counts_per_step() {
    let (_, one) = run(
        "run_driver_d0_paged",
        &["--scenario", "sleep", "--registry", "PowerNotPageable=1"],
    );
    let (_, three) = run(
        "run_driver_d0_paged",
        &[
            "--scenario",
            "sleep",
            "--cycles",
            "3",
            "--registry",
            "PowerNotPageable=1",
        ],
    );
    assert_eq!(one["violations"].as_array().map(Vec::len), Some(1));
    // One violation per resume: three cycles, three resume steps.
    assert_eq!(three["violations"].as_array().map(Vec::len), Some(3));
    assert!(three["scenarios"][0]["steps"].as_u64() > one["scenarios"][0]["steps"].as_u64());
}

#[test]
fn bad_input_is_exit_2_with_one_line() {
    let dir = std::env::temp_dir().join(format!("pagerun-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.sys");
    std::fs::write(&bad, b"MZ not really").expect("write");
    for args in [
        vec![bad.to_str().expect("utf-8")],
        vec![Path::new("/nonexistent/x.sys").to_str().expect("utf-8")],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_cargo-pagerun"))
            .args(&args)
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
    let image = pe_fixtures::c("run_driver_clean").expect("fixture");
    let output = Command::new(env!("CARGO_BIN_EXE_cargo-pagerun"))
        .arg(&image.image)
        .args(["--scenario", "nap"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sarif_has_one_result_per_violation() {
    let image = pe_fixtures::c("run_driver_queue_paged").expect("fixture");
    let output = Command::new(env!("CARGO_BIN_EXE_cargo-pagerun"))
        .arg(&image.image)
        .args(["--format", "sarif", "--scenario", "io"])
        .output()
        .expect("run");
    let sarif: Value = serde_json::from_slice(&output.stdout).expect("SARIF is JSON");
    assert_eq!(sarif["version"], "2.1.0");
    let results = sarif["runs"][0]["results"].as_array().expect("results");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["ruleId"], "pagerun/fetch");
    assert!(
        results[0]["locations"][0]["physicalLocation"]["region"]["startLine"]
            .as_u64()
            .is_some()
    );
}
