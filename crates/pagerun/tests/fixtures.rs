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
    all_completed_of(report, 7);
}

fn all_completed_of(report: &Value, count: usize) {
    let scenarios = report["scenarios"].as_array().expect("scenarios");
    assert_eq!(scenarios.len(), count, "{report:#}");
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
fn the_driver_object_describes_the_loaded_image() {
    // run_driver.inc's DriverEntry fails unless DriverStart is the image's base, DriverSize
    // its SizeOfImage (read back from the PE headers there), DriverInit the entry point, the
    // driver extension points back at the object and DriverName is set.
    let (code, report) = run("run_driver_clean", &["--scenario", "start"]);
    let scenario = &report["scenarios"][0];
    assert_eq!(scenario["status"], "completed", "{report:#}");
    assert_eq!(scenario["called"]["EvtDriverDeviceAdd"], 1, "{report:#}");
    assert_eq!(violations(&report), vec![], "{report:#}");
    assert_eq!(code, 0);
}

#[test]
fn a_device_that_does_not_start_fails_every_scenario() {
    for (fail, callback, status) in [
        ("3", "EvtDriverDeviceAdd", "0xc000009a"),
        ("1", "EvtDevicePrepareHardware", "0xc0000182"),
    ] {
        let (code, report) = run("run_driver_fails", &["--registry", &format!("Fail={fail}")]);
        let scenarios = report["scenarios"].as_array().expect("scenarios");
        assert_eq!(scenarios.len(), 7, "{report:#}");
        for s in scenarios {
            assert_eq!(s["status"], "failed", "Fail={fail}: {s:#}");
            let reason = s["stop"].as_str().unwrap_or("");
            assert!(
                reason.starts_with(&format!("{callback} failed with {status}")),
                "{reason}"
            );
            // Nothing after the failed start: no power transition ran.
            assert_eq!(s["called"].get("EvtDeviceD0Exit"), None, "{s:#}");
        }
        let found = violations(&report);
        assert_eq!(found.len(), 7, "{report:#}");
        for (kind, symbol, section, in_callback, _) in &found {
            assert_eq!(
                (
                    kind.as_str(),
                    symbol.as_str(),
                    section.as_str(),
                    in_callback.as_str()
                ),
                ("start", callback, "PAGE", callback)
            );
        }
        assert_eq!(code, 1, "Fail={fail}: a failed start is not a success");
    }
}

#[test]
fn a_device_that_does_not_return_to_d0_fails_the_scenarios_that_power_it_down() {
    let (code, report) = run("run_driver_fails", &["--registry", "Fail=2"]);
    let status = |name: &str| {
        report["scenarios"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == name))
            .map(|s| s["status"].as_str().unwrap_or("").to_owned())
            .unwrap_or_default()
    };
    // EvtDeviceD0Entry fails only on a return from D3: the start (from D3Final) and the
    // stop-restart (back from D3Final too) succeed.
    for name in ["start", "io", "stop-restart", "surprise-removal"] {
        assert_eq!(status(name), "completed", "{name}: {report:#}");
    }
    for name in ["idle", "sleep", "hibernate"] {
        assert_eq!(status(name), "failed", "{name}: {report:#}");
    }
    assert_eq!(
        violations(&report),
        ["hibernate", "idle", "sleep"]
            .iter()
            .map(|s| v(
                "power-up",
                "EvtDeviceD0Entry",
                ".text",
                "EvtDeviceD0Entry",
                s
            ))
            .collect::<Vec<_>>(),
        "{report:#}"
    );
    assert_eq!(code, 1);
    // The same driver without the failure is clean.
    let (code, report) = run("run_driver_fails", &["--registry", "Fail=0"]);
    all_completed(&report);
    assert_eq!(code, 0, "{report:#}");
}

#[test]
fn ioctl_answers_are_read_back_at_the_end_of_each_scenario() {
    // The fixture's EvtIoDeviceControl answers g_answers[(code >> 2) & 15] as a ULONG when
    // the output buffer holds one, and STATUS_BUFFER_TOO_SMALL otherwise.
    let (code, report) = run(
        "run_driver_clean",
        &[
            "--scenario",
            "sleep",
            "--scenario",
            "surprise-removal",
            "--ioctl",
            "0x8:4",
            "--ioctl",
            "8:2",
            "--ioctl",
            "0x20:8:0102",
        ],
    );
    all_completed_of(&report, 2);
    assert_eq!(code, 0);
    for s in report["scenarios"].as_array().expect("scenarios") {
        let answers = s["ioctls"].as_array().expect("ioctls");
        assert_eq!(answers.len(), 3, "{s:#}");
        let fields = |a: &Value| {
            (
                a["code"].as_u64(),
                a["input"].as_str().unwrap_or("?").to_owned(),
                a["output_length"].as_u64(),
                a["completed"].as_bool(),
                a["status"].as_u64(),
                a["information"].as_u64(),
                a["output"].as_str().unwrap_or("?").to_owned(),
            )
        };
        assert_eq!(
            fields(&answers[0]),
            (
                Some(8),
                String::new(),
                Some(4),
                Some(true),
                Some(0),
                Some(4),
                "04000000".to_owned()
            )
        );
        assert_eq!(
            fields(&answers[1]),
            (
                Some(8),
                String::new(),
                Some(2),
                Some(true),
                Some(0xC000_0023),
                Some(0),
                String::new()
            )
        );
        // Only Information bytes come back, not the whole output buffer.
        assert_eq!(
            fields(&answers[2]),
            (
                Some(0x20),
                "0102".to_owned(),
                Some(8),
                Some(true),
                Some(0),
                Some(4),
                "05000000".to_owned()
            )
        );
        // Sent before the removal: the device was still started, in its last scenario step but
        // the removal's.
        assert!(
            s["called"]["EvtIoDeviceControl"].as_u64() >= Some(3),
            "{s:#}"
        );
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
    for bad in [
        &["--scenario", "nap"][..],
        &["--ioctl", "0x8:many"],
        &["--ioctl", "0x8:4:abc"],
        &["--ioctl", "nine"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_cargo-pagerun"))
            .arg(&image.image)
            .args(bad)
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(2), "{bad:?}");
    }
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

/// `(kind, symbol, callback, scenario)` of every violation, with the message, sorted.
fn violations_with_messages(report: &Value) -> Vec<(String, String, String, String, String)> {
    let mut out: Vec<_> = report["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
            (
                s("kind"),
                s("symbol"),
                s("callback"),
                s("scenario"),
                s("message"),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn registry_write_in_d0_exit_is_a_violation_only_while_the_paging_disk_may_be_off() {
    let (code, report) = run(
        "run_driver_registry_d0_exit",
        &["--registry", "PowerNotPageable=1"],
    );
    all_completed(&report);
    let found = violations_with_messages(&report);
    // Open, assign and close of the hardware key, each in the sleep and the hibernate
    // power-down; the D3Final power-downs of removal and stop keep the disk on.
    assert_eq!(found.len(), 6, "{report:#}");
    for scenario in ["hibernate", "sleep"] {
        for routine in [
            "WdfDeviceOpenRegistryKey",
            "WdfRegistryAssignULong",
            "WdfRegistryClose",
        ] {
            assert!(
                found
                    .iter()
                    .any(|(kind, symbol, callback, s, message)| kind == "paging"
                        && symbol == "SaveResumeCount"
                        && callback == "EvtDeviceD0Exit"
                        && s == scenario
                        && message.starts_with(&format!("{routine} touches the registry"))),
                "{routine} in {scenario}: {found:#?}"
            );
        }
    }
    // Each is charged to the call instruction, with its source line, at PASSIVE_LEVEL.
    for v in report["violations"].as_array().expect("violations") {
        assert_eq!(v["irql"], 0, "{v:#}");
        assert!(
            v["source"]["file"]
                .as_str()
                .unwrap_or("")
                .ends_with("run_driver.inc"),
            "{v:#}"
        );
    }
    let lines: std::collections::BTreeSet<u64> = report["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .filter_map(|v| v["source"]["line"].as_u64())
        .collect();
    assert_eq!(lines.len(), 3, "one line per call: {lines:?}");
    assert_eq!(code, 1);

    // Power-pageable, the paging disk stays on during the transition: allowed.
    let (code, report) = run(
        "run_driver_registry_d0_exit",
        &["--registry", "PowerNotPageable=0"],
    );
    all_completed(&report);
    assert_eq!(violations(&report), vec![]);
    assert_eq!(code, 0);
}

#[test]
fn registry_write_under_the_wdf_dev_state_is_np_guard_is_clean() {
    for registry in ["PowerNotPageable=0", "PowerNotPageable=1"] {
        let (code, report) = run("run_driver_registry_guarded", &["--registry", registry]);
        all_completed(&report);
        assert_eq!(violations(&report), vec![], "{registry}: {report:#}");
        assert_eq!(code, 0, "{registry}");
    }
}

#[test]
fn passive_only_routine_called_from_a_dispatch_queue_callback_is_an_irql_violation() {
    let (code, report) = run("run_driver_irql_call", &[]);
    all_completed(&report);
    let found = violations_with_messages(&report);
    // The io scenario's requests reach EvtIoDeviceControl at DISPATCH_LEVEL: opening and
    // closing the key there are two violations (each counted once per request).
    assert_eq!(found.len(), 2, "{found:#?}");
    for (routine, (kind, symbol, callback, scenario, message)) in
        ["WdfDeviceOpenRegistryKey", "WdfRegistryClose"]
            .iter()
            .zip(&found)
    {
        assert_eq!(
            (
                kind.as_str(),
                symbol.as_str(),
                callback.as_str(),
                scenario.as_str()
            ),
            ("irql", "EvtIoDeviceControl", "EvtIoDeviceControl", "io")
        );
        assert!(
            message.starts_with(&format!(
                "{routine} called at IRQL 2 (DISPATCH_LEVEL); its reference page allows at most PASSIVE_LEVEL"
            )),
            "{message}"
        );
        assert!(
            message.contains("https://learn.microsoft.com/"),
            "{message}"
        );
    }
    assert!(
        report["violations"][0]["count"].as_u64() > Some(1),
        "{report:#}"
    );
    assert_eq!(report["violations"][0]["irql"], 2);
    assert_eq!(code, 1);
}

/// Runs the Rust fixture driver (with its planted defects compiled in when `defects`).
fn run_rust(defects: bool, args: &[&str]) -> (i32, Value) {
    let image = if defects {
        pe_fixtures::rust_with_features("rust_run_driver", &["defects"])
    } else {
        pe_fixtures::rust("rust_run_driver")
    }
    .expect("build the Rust fixture");
    let output = Command::new(env!("CARGO_BIN_EXE_cargo-pagerun"))
        .arg(&image.image)
        .args(["--format", "json"])
        .args(args)
        .output()
        .expect("run cargo-pagerun");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "rust_run_driver: not JSON ({e}): {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), report)
}

fn called(report: &Value, scenario: &str, callback: &str) -> u64 {
    report["scenarios"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == scenario))
        .and_then(|s| s["called"][callback].as_u64())
        .unwrap_or(0)
}

#[test]
fn rust_driver_runs_every_scenario_clean_pageable_and_nonpageable() {
    for (registry, pageable) in [("PowerNotPageable=0", "yes"), ("PowerNotPageable=1", "no")] {
        let (code, report) = run_rust(false, &["--registry", registry]);
        all_completed(&report);
        assert_eq!(violations(&report), vec![], "{registry}: {report:#}");
        assert_eq!(code, 0, "{registry}");
        for s in report["scenarios"].as_array().expect("scenarios") {
            assert_eq!(s["info"]["power_pageable"], pageable, "{s:#}");
        }
        // Every request reached the driver, got its context and was destroyed after its
        // completion (16 IOCTLs, a read, a write).
        assert_eq!(
            called(&report, "io", "EvtIoDeviceControl"),
            16,
            "{report:#}"
        );
        assert_eq!(called(&report, "io", "EvtDestroyCallback(WDFREQUEST)"), 18);
        // The write was held until the timer completed it, while the queue stop waited.
        assert!(called(&report, "io", "EvtTimerFunc") >= 1, "{report:#}");
        let io = &report["scenarios"][1];
        assert!(
            io["info"]["queue_stop_waited"]
                .as_str()
                .unwrap_or("")
                .contains("WdfIoQueueStopSynchronously"),
            "{io:#}"
        );
        // Wake from Sx is armed before the sleep and disarmed on the way back.
        for scenario in ["sleep", "hibernate"] {
            assert_eq!(called(&report, scenario, "EvtDeviceArmWakeFromSx"), 1);
            assert_eq!(called(&report, scenario, "EvtDeviceDisarmWakeFromSx"), 1);
        }
        // S0 idle without wake: idled, never armed.
        assert_eq!(called(&report, "idle", "EvtDeviceD0Exit"), 2);
        assert_eq!(called(&report, "idle", "EvtDeviceArmWakeFromSx"), 0);
    }
}

#[test]
fn rust_driver_d0_entry_helper_in_page_faults_in_the_nonpageable_resume() {
    let (code, report) = run_rust(
        true,
        &["--registry", "Defect=1", "--registry", "PowerNotPageable=1"],
    );
    all_completed(&report);
    assert_eq!(
        violations(&report),
        vec![
            v(
                "fetch",
                "rust_run_driver::reprogram_paged",
                "PAGE",
                "EvtDeviceD0Entry",
                "hibernate"
            ),
            v(
                "fetch",
                "rust_run_driver::reprogram_paged",
                "PAGE",
                "EvtDeviceD0Entry",
                "sleep"
            ),
        ],
        "{report:#}"
    );
    assert!(
        report["violations"][0]["source"]["file"]
            .as_str()
            .unwrap_or("")
            .ends_with("lib.rs"),
        "{report:#}"
    );
    assert_eq!(code, 1);
    // The same image without the defect selected is clean, and power-pageable the paging
    // disk stays on.
    for args in [
        ["--registry", "Defect=0", "--registry", "PowerNotPageable=1"],
        ["--registry", "Defect=1", "--registry", "PowerNotPageable=0"],
    ] {
        let (code, report) = run_rust(true, &args);
        assert_eq!(violations(&report), vec![], "{args:?}: {report:#}");
        assert_eq!(code, 0, "{args:?}");
    }
}

#[test]
fn rust_driver_disarm_wake_in_page_faults_on_the_way_back_to_d0() {
    let (code, report) = run_rust(
        true,
        &["--registry", "Defect=2", "--registry", "PowerNotPageable=1"],
    );
    all_completed(&report);
    assert_eq!(
        violations(&report),
        vec![
            v(
                "fetch",
                "rust_run_driver::evt_device_disarm_wake_from_sx_paged",
                "PAGE",
                "EvtDeviceDisarmWakeFromSx",
                "hibernate"
            ),
            v(
                "fetch",
                "rust_run_driver::evt_device_disarm_wake_from_sx_paged",
                "PAGE",
                "EvtDeviceDisarmWakeFromSx",
                "sleep"
            ),
        ],
        "{report:#}"
    );
    assert_eq!(code, 1);
}

#[test]
fn rust_driver_registry_write_without_the_np_guard_is_a_paging_violation() {
    let (code, report) = run_rust(
        true,
        &["--registry", "Defect=3", "--registry", "PowerNotPageable=1"],
    );
    all_completed(&report);
    let found = violations_with_messages(&report);
    assert_eq!(found.len(), 6, "{found:#?}");
    for scenario in ["hibernate", "sleep"] {
        for routine in [
            "WdfDeviceOpenRegistryKey",
            "WdfRegistryAssignULong",
            "WdfRegistryClose",
        ] {
            assert!(
                found
                    .iter()
                    .any(|(kind, symbol, callback, s, message)| kind == "paging"
                        && symbol.starts_with("rust_run_driver::")
                        && callback == "EvtDeviceD0Exit"
                        && s == scenario
                        && message.starts_with(&format!("{routine} touches the registry"))),
                "{routine} in {scenario}: {found:#?}"
            );
        }
    }
    assert_eq!(code, 1);
    let (code, report) = run_rust(
        true,
        &["--registry", "Defect=3", "--registry", "PowerNotPageable=0"],
    );
    assert_eq!(violations(&report), vec![], "{report:#}");
    assert_eq!(code, 0);
}

#[test]
fn rust_driver_panic_is_a_bug_check_with_its_callback_and_step() {
    let (code, report) = run_rust(true, &["--registry", "Defect=4", "--scenario", "io"]);
    let found = violations_with_messages(&report);
    assert_eq!(found.len(), 1, "{found:#?}");
    let (kind, symbol, callback, scenario, message) = &found[0];
    assert_eq!(
        (kind.as_str(), callback.as_str(), scenario.as_str()),
        ("bugcheck", "EvtIoDeviceControl", "io")
    );
    assert!(symbol.starts_with("rust_run_driver::"), "{symbol}");
    assert!(message.contains("a Rust panic"), "{message}");
    assert_eq!(report["violations"][0]["step_label"], "I/O requests");
    assert_eq!(report["scenarios"][0]["status"], "stopped");
    assert_eq!(code, 1);
}

#[test]
fn framework_features_run_as_kmdf_does() {
    let (code, report) = run("run_features", &[]);
    all_completed(&report);
    // The driver's self-checks (version string, version availability, request contexts in
    // destroy callbacks, the WMI set getting back what the query gave) bug-check on a wrong
    // answer: none did.
    assert_eq!(violations(&report), vec![], "{report:#}");
    assert_eq!(code, 0);
    // 16 IOCTLs, a read and a write: each through EvtIoInCallerContext, then the queue its
    // type is dispatched to. The write reached the write queue's handler (the default queue
    // has none, so a write sent there would have been failed without it).
    assert_eq!(
        called(&report, "io", "EvtIoInCallerContext"),
        18,
        "{report:#}"
    );
    assert_eq!(called(&report, "io", "EvtIoDeviceControl"), 16);
    assert_eq!(called(&report, "io", "EvtIoRead"), 1);
    assert_eq!(called(&report, "io", "EvtIoWrite"), 1);
    assert_eq!(called(&report, "io", "EvtDestroyCallback(WDFREQUEST)"), 18);
    // WMI: the registered instance was queried and set once, at PASSIVE_LEVEL (its callbacks
    // are in PAGE).
    assert_eq!(called(&report, "io", "EvtWmiInstanceQueryInstance"), 1);
    assert_eq!(called(&report, "io", "EvtWmiInstanceSetInstance"), 1);
}

#[test]
fn control_device_runs_io_and_skips_power_scenarios() {
    let (code, report) = run("run_control_clean", &[]);
    all_completed(&report);
    assert_eq!(violations(&report), vec![], "{report:#}");
    assert_eq!(code, 0);
    assert_eq!(
        called(&report, "io", "EvtIoDeviceControl"),
        16,
        "{report:#}"
    );
    for s in report["scenarios"].as_array().expect("scenarios") {
        let skipped = s["info"]["skipped"].as_str().unwrap_or("");
        if ["start", "io"].contains(&s["name"].as_str().unwrap_or("")) {
            assert_eq!(skipped, "", "{s:#}");
        } else {
            assert!(skipped.contains("control device"), "{s:#}");
            assert_eq!(
                called(
                    &report,
                    s["name"].as_str().unwrap_or(""),
                    "EvtIoDeviceControl"
                ),
                0
            );
        }
        // Its queue is not power-managed and it is never powered down.
        assert_eq!(s["called"]["EvtDeviceD0Exit"], Value::Null, "{s:#}");
    }
    // The same driver with its PAGE queue callback left at the default execution level.
    let (code, report) = run("run_control_dispatch", &["--scenario", "io"]);
    assert_eq!(
        violations(&report),
        vec![v(
            "fetch",
            "EvtIoDeviceControl",
            "PAGE",
            "EvtIoDeviceControl",
            "io"
        )],
        "{report:#}"
    );
    assert_eq!(report["violations"][0]["irql"], 2);
    assert_eq!(report["violations"][0]["count"], 16);
    assert_eq!(code, 1);
}

#[test]
fn special_file_path_makes_the_device_nonpageable_and_needs_the_power_down_lock() {
    // Support enabled and PAGEPWR locked from device add: on the paging path the device is
    // nonpageable, the driver is told, and nothing faults.
    let (code, report) = run_rust(
        false,
        &["--registry", "SpecialFiles=1", "--special-file", "paging"],
    );
    all_completed(&report);
    assert_eq!(violations(&report), vec![], "{report:#}");
    assert_eq!(code, 0);
    for s in report["scenarios"].as_array().expect("scenarios") {
        assert_eq!(s["called"]["EvtDeviceUsageNotificationEx"], 1, "{s:#}");
        assert!(
            s["info"]["power_pageable"]
                .as_str()
                .unwrap_or("")
                .starts_with("no (on the paging path"),
            "{s:#}"
        );
        // KMDF fails the query-stop of a device with an open special file: no stop.
        let stop_restart = s["name"] == "stop-restart";
        assert_eq!(
            s["info"]["skipped"].as_str().is_some_and(
                |why| why.starts_with("stop-restart: the device is on the paging path")
            ),
            stop_restart,
            "{s:#}"
        );
        if stop_restart {
            assert_eq!(s["called"].get("EvtDeviceQueryStop"), None, "{s:#}");
            assert_eq!(s["called"]["EvtDevicePrepareHardware"], 1, "{s:#}");
        }
    }
    // Without WdfDeviceSetSpecialFileSupport the framework refuses the path: the device stays
    // pageable and the driver is not called.
    let (_, report) = run_rust(false, &["--special-file", "paging", "--scenario", "sleep"]);
    let sleep = &report["scenarios"][0];
    assert_eq!(sleep["info"]["power_pageable"], "yes", "{sleep:#}");
    assert_eq!(sleep["called"]["EvtDeviceUsageNotificationEx"], Value::Null);
    assert!(
        sleep["info"]["special_file_paging"]
            .as_str()
            .unwrap_or("")
            .starts_with("refused")
    );
    // Defect 5: support enabled, PAGEPWR not locked. On the paging path, every power-down
    // callback in PAGEPWR faults in the system sleep's power-down (the paging disk may be off).
    let (code, report) = run_rust(
        true,
        &[
            "--registry",
            "SpecialFiles=1",
            "--registry",
            "Defect=5",
            "--special-file",
            "paging",
            "--scenario",
            "sleep",
        ],
    );
    assert_eq!(
        violations(&report),
        vec![
            v(
                "fetch",
                "rust_run_driver::evt_device_arm_wake_from_sx",
                "PAGEPWR",
                "EvtDeviceArmWakeFromSx",
                "sleep"
            ),
            v(
                "fetch",
                "rust_run_driver::evt_device_d0_exit",
                "PAGEPWR",
                "EvtDeviceD0Exit",
                "sleep"
            ),
            v(
                "fetch",
                "rust_run_driver::evt_device_self_managed_io_suspend",
                "PAGEPWR",
                "EvtDeviceSelfManagedIoSuspend",
                "sleep"
            ),
        ],
        "{report:#}"
    );
    assert_eq!(code, 1);
}
