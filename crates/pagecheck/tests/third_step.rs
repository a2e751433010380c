//! The guide's third step on real images: PC010 (a routine above its IRQL), PC011 (file,
//! registry or paged pool on the power path of a driver that can be power-nonpageable), PC012
//! (pageable or discarded data from code that must not fault), and the answer the report gives.
//! C fixtures at `-O0`, `-Os` and `-O2`; the Rust fixture built as the driver is (fat LTO).

mod common;

use common::run;
use pagecheck::Report;
use pagecheck::checks::{Level, Rule, Violation};
use pagecheck::rules::answer::Verdict;
use serde_json::Value;

/// The optimisation levels the C registration fixtures are built at.
const LEVELS: [&str; 3] = ["-O0", "-Os", "-O2"];

fn c_at(name: &str, level: &str) -> pe_fixtures::Image {
    pe_fixtures::c_at_level(name, level).expect("build C fixture")
}

fn rust_with(features: &[&str]) -> pe_fixtures::Image {
    pe_fixtures::rust_with_features("rust_power_data", features).expect("build Rust fixture")
}

/// The findings of the third-step rules (and PC008/PC009 where they judge data).
fn third(report: &Report) -> Vec<&Violation> {
    report
        .violations
        .iter()
        .filter(|v| {
            matches!(
                v.rule,
                Rule::RoutineAboveIrql
                    | Rule::PowerPathPageableAccess
                    | Rule::PageableDataFromResident
            ) || v.chain.iter().any(|l| l.symbol.starts_with("<data"))
        })
        .collect()
}

/// `(rule, routine or data named in the message, the function holding the site)` of each.
fn shape(findings: &[&Violation]) -> Vec<(Rule, String)> {
    let mut out: Vec<(Rule, String)> = findings
        .iter()
        .map(|v| {
            let site = v
                .chain
                .iter()
                .rev()
                .find(|l| !l.symbol.starts_with("<data"))
                .map_or_else(String::new, |l| l.symbol.clone());
            (v.rule, site)
        })
        .collect();
    out.sort();
    out
}

fn names_routine(v: &Violation, routine: &str) -> bool {
    v.message.contains(&format!("`{routine}`"))
}

#[test]
fn registry_in_d0_exit_of_a_nonpageable_driver_is_one_error_per_call() {
    for level in LEVELS {
        let image = c_at("power_registry_nonpageable", level);
        let report = common::analyze(&image, &[]);
        let found = third(&report);
        assert_eq!(found.len(), 3, "{level}: {found:#?}");
        for (v, routine) in found.iter().zip([
            "WdfDeviceOpenRegistryKey",
            "WdfRegistryAssignULong",
            "WdfRegistryClose",
        ]) {
            assert_eq!(v.rule, Rule::PowerPathPageableAccess, "{level}");
            assert_eq!(v.level, Level::Error);
            assert!(names_routine(v, routine), "{level}: {}", v.message);
            assert!(
                v.message
                    .contains("WdfDeviceInitSetPowerNotPageable at EvtDriverDeviceAdd+"),
                "{}",
                v.message
            );
            // From the registered callback, through the helper, to the call.
            let symbols: Vec<&str> = v.chain.iter().map(|l| l.symbol.as_str()).collect();
            assert_eq!(symbols, ["EvtDeviceD0Exit", "SaveExitCount"], "{level}");
            assert!(
                v.chain
                    .iter()
                    .all(|l| l.site.is_some() && l.source.is_some()),
                "{level}: {v:#?}"
            );
        }
        assert!(report.third_step.nonpageable);
        assert_eq!(report.third_step.verdict, Verdict::Unguarded);
        assert_eq!(report.third_step.unguarded(), 3);
    }
}

#[test]
fn registry_in_d0_exit_of_a_pageable_driver_is_allowed_and_answered() {
    for level in LEVELS {
        let image = c_at("power_registry_pageable", level);
        let report = common::analyze(&image, &[]);
        assert!(
            report.violations.is_empty(),
            "{level}: {:#?}",
            report.violations
        );
        let answer = &report.third_step;
        assert!(!answer.nonpageable);
        assert_eq!(answer.verdict, Verdict::Unguarded, "{level}");
        assert!(
            answer
                .answer
                .starts_with("must stay power-pageable, or guard these 3 accesses"),
            "{}",
            answer.answer
        );
        let routines: Vec<&str> = answer
            .accesses
            .iter()
            .filter_map(|a| a.routine.as_deref())
            .collect();
        assert_eq!(
            routines,
            [
                "WdfDeviceOpenRegistryKey",
                "WdfRegistryAssignULong",
                "WdfRegistryClose"
            ]
        );
        assert!(
            answer
                .accesses
                .iter()
                .all(|a| a.kind == "registry" && a.callback == "EvtDeviceD0Exit" && !a.guarded)
        );
    }
}

/// The `WdfDevStateIsNP` guard as the dataflow pass follows it: tested inline, kept and tested
/// later (negated, spilled to the stack at `-O0`, materialised with `cmovne`), and returned
/// by a helper the callback branches on.
fn assert_guarded(fixture: &str) {
    for level in LEVELS {
        let image = c_at(fixture, level);
        let report = common::analyze(&image, &[]);
        assert!(
            third(&report).is_empty(),
            "{fixture} {level}: {:#?}",
            report.violations
        );
        assert_eq!(
            report.third_step.verdict,
            Verdict::AllGuarded,
            "{fixture} {level}"
        );
        assert_eq!(report.third_step.accesses.len(), 3);
        assert!(report.third_step.accesses.iter().all(|a| a.guarded));
    }
}

#[test]
fn a_wdf_dev_state_is_np_guard_allows_the_access() {
    for fixture in [
        "power_registry_guarded",
        "power_registry_guard_negated",
        "power_registry_guard_np_helper",
    ] {
        assert_guarded(fixture);
    }
}

/// A helper returning `!WdfDevStateIsNP(..)`: clang writes `shr eax, 15; not al; and al, 1`.
#[test]
fn a_helper_returning_the_negated_test_guards_too() {
    assert_guarded("power_registry_guard_helper");
}

#[test]
fn a_log_file_written_from_d0_entry() {
    for level in LEVELS {
        let image = c_at("power_log_file", level);
        let report = common::analyze(&image, &[]);
        let found = third(&report);
        assert_eq!(
            shape(&found),
            vec![
                (Rule::PowerPathPageableAccess, "AppendLog".to_owned()),
                (Rule::PowerPathPageableAccess, "AppendLog".to_owned()),
            ],
            "{level}"
        );
        assert!(names_routine(found[0], "ZwCreateFile") || names_routine(found[1], "ZwCreateFile"));
        assert!(found.iter().any(|v| names_routine(v, "ZwWriteFile")));
        // Closing the handle is no file access.
        assert!(!found.iter().any(|v| names_routine(v, "ZwClose")));
        assert!(
            found
                .iter()
                .all(|v| v.message.contains("returns the device to D0"))
        );
    }
}

#[test]
fn paged_pool_in_d0_exit_is_an_error_and_nonpaged_pool_is_not() {
    for level in LEVELS {
        let paged = common::analyze(&c_at("power_pool_paged", level), &[]);
        let found = third(&paged);
        assert_eq!(found.len(), 1, "{level}: {found:#?}");
        assert_eq!(found[0].rule, Rule::PowerPathPageableAccess);
        assert!(
            found[0]
                .message
                .contains("paged pool access `ExAllocatePool2`"),
            "{}",
            found[0].message
        );

        let nonpaged = common::analyze(&c_at("power_pool_nonpaged", level), &[]);
        assert!(
            nonpaged.violations.is_empty(),
            "{level}: {:#?}",
            nonpaged.violations
        );
        assert_eq!(
            nonpaged.third_step.verdict,
            Verdict::NoPageableData,
            "{level}"
        );
        assert!(nonpaged.third_step.answer.starts_with(
            "can call WdfDeviceInitSetPowerNotPageable: its power callbacks touch no pageable data"
        ));
    }
}

#[test]
fn a_passive_only_routine_from_a_dispatch_level_queue() {
    for level in LEVELS {
        let dispatch = common::analyze(&c_at("queue_registry_dispatch", level), &[]);
        let found = third(&dispatch);
        assert_eq!(
            shape(&found),
            vec![(Rule::RoutineAboveIrql, "ReadSetting".to_owned())],
            "{level}"
        );
        let message = &found[0].message;
        assert!(
            message.contains("may run at DISPATCH_LEVEL and calls `ZwQueryValueKey`"),
            "{message}"
        );
        assert!(
            message.contains("allows only at IRQL <= PASSIVE_LEVEL"),
            "{message}"
        );
        assert!(message.contains("https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-zwqueryvaluekey"));
        // The key opened in EvtDriverDeviceAdd (PASSIVE_LEVEL) is no finding.
        assert!(!message.contains("ZwOpenKey"));

        let passive = common::analyze(&c_at("queue_registry_passive", level), &[]);
        assert!(
            passive.violations.is_empty(),
            "{level}: {:#?}",
            passive.violations
        );
    }
}

#[test]
fn a_table_in_a_pageable_data_section_read_at_dispatch_level() {
    for level in LEVELS {
        let paged = common::analyze(&c_at("pageable_table_paged", level), &[]);
        let found = third(&paged);
        assert_eq!(found.len(), 1, "{level}: {found:#?}");
        let v = found[0];
        assert_eq!(
            (v.rule, v.level),
            (Rule::PageableDataFromResident, Level::Error)
        );
        assert!(
            v.message.contains("`g_scale_table` (PAGEDATA+0x0)"),
            "{}",
            v.message
        );
        let last = v.chain.last().expect("data link");
        assert_eq!(last.section, "PAGEDATA");
        assert!(
            last.symbol.starts_with("<data at PAGEDATA+"),
            "{}",
            last.symbol
        );

        let resident = common::analyze(&c_at("pageable_table_resident", level), &[]);
        assert!(
            resident.violations.is_empty(),
            "{level}: {:#?}",
            resident.violations
        );
    }
}

#[test]
fn init_data_used_after_driver_entry() {
    for level in LEVELS {
        let report = common::analyze(&c_at("init_data", level), &[]);
        let found = third(&report);
        assert_eq!(
            shape(&found),
            vec![(
                Rule::PageableDataFromResident,
                "EvtDriverDeviceAdd".to_owned()
            )],
            "{level}: {found:#?}"
        );
        assert!(
            found[0].message.contains("`g_defaults`"),
            "{}",
            found[0].message
        );
        assert!(
            found[0].message.contains("when INIT is freed"),
            "{}",
            found[0].message
        );
    }
}

/// The Rust fixture without a planted defect: its registry writes lie behind the driver's
/// `WdfDevStateIsNP` test, its pool is nonpaged, its passive queue reads the registry, its
/// table is resident.
#[test]
fn rust_driver_shape_is_clean() {
    let report = common::analyze(&rust_with(&[]), &[]);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert!(report.third_step.nonpageable);
    assert_eq!(report.third_step.verdict, Verdict::AllGuarded);
    assert_eq!(report.third_step.accesses.len(), 3);
    assert!(
        report.third_step.answer.starts_with(
            "can call WdfDeviceInitSetPowerNotPageable: its 3 accesses to pageable data on power paths all lie \
             behind a WdfDevStateIsNP test"
        ),
        "{}",
        report.third_step.answer
    );
}

#[test]
fn rust_driver_shape_without_its_guard() {
    let report = common::analyze(&rust_with(&["unguarded"]), &[]);
    let found = third(&report);
    assert_eq!(found.len(), 3, "{found:#?}");
    for (v, routine) in found.iter().zip([
        "WdfDeviceOpenRegistryKey",
        "WdfRegistryAssignULong",
        "WdfRegistryClose",
    ]) {
        assert_eq!(v.rule, Rule::PowerPathPageableAccess);
        assert!(names_routine(v, routine), "{}", v.message);
        let symbols: Vec<&str> = v.chain.iter().map(|l| l.symbol.as_str()).collect();
        assert_eq!(
            symbols,
            [
                "rust_power_data::evt_device_d0_exit",
                "rust_power_data::write_counter"
            ],
            "the helper's own placement attribute does not make it a root of its own"
        );
    }
    assert_eq!(report.third_step.verdict, Verdict::Unguarded);

    // The same unguarded writes in a driver that never makes its device nonpageable.
    let pageable = common::analyze(&rust_with(&["power_pageable", "unguarded"]), &[]);
    assert!(pageable.violations.is_empty(), "{:#?}", pageable.violations);
    assert!(!pageable.third_step.nonpageable);
    assert_eq!(pageable.third_step.accesses.len(), 3);
}

#[test]
fn rust_driver_shape_defects() {
    let pool = common::analyze(&rust_with(&["paged_pool"]), &[]);
    let found = third(&pool);
    assert!(
        found.iter().any(|v| v.rule == Rule::PowerPathPageableAccess
            && v.message.contains("paged pool access `ExAllocatePool2`")),
        "{found:#?}"
    );

    let dispatch = common::analyze(&rust_with(&["dispatch_registry"]), &[]);
    let irql: Vec<&Violation> = third(&dispatch)
        .into_iter()
        .filter(|v| v.rule == Rule::RoutineAboveIrql)
        .collect();
    assert_eq!(irql.len(), 1, "{irql:#?}");
    assert!(names_routine(irql[0], "ZwQueryValueKey"));
    assert_eq!(
        irql[0].chain[0].symbol,
        "rust_power_data::evt_power_io_device_control"
    );

    let table = common::analyze(&rust_with(&["paged_table"]), &[]);
    let data: Vec<&Violation> = third(&table)
        .into_iter()
        .filter(|v| v.rule == Rule::PageableDataFromResident)
        .collect();
    assert_eq!(data.len(), 1, "{data:#?}");
    assert_eq!(
        data[0].chain.last().map(|l| l.section.as_str()),
        Some("PAGEDATA")
    );
}

#[test]
fn the_answer_in_text_json_and_sarif() {
    let image = c_at("power_registry_nonpageable", "-O2");
    let text = run([image.image.as_os_str()]);
    assert_eq!(text.code, 1, "{}", text.stderr);
    assert!(
        text.stdout.contains(
            "  = third step (pageable data during power transitions): must stay power-pageable, or guard these 3 \
             accesses to pageable data on its power paths with WdfDevStateIsNP\n"
        ),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains("      registry `WdfRegistryAssignULong` at SaveExitCount+0x"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("error[PC011]: `EvtDeviceD0Exit`"),
        "{}",
        text.stdout
    );

    let json = run([
        image.image.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    let doc: Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(doc["third_step"]["verdict"], "unguarded");
    assert_eq!(
        doc["third_step"]["accesses"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(doc["third_step"]["accesses"][0]["kind"], "registry");

    let sarif = run([
        image.image.as_os_str(),
        "--format".as_ref(),
        "sarif".as_ref(),
    ]);
    let doc: Value = serde_json::from_str(&sarif.stdout).expect("SARIF");
    let run = &doc["runs"][0];
    assert_eq!(run["properties"]["thirdStep"]["verdict"], "unguarded");
    let rules = run["tool"]["driver"]["rules"].as_array().expect("rules");
    for (id, name) in [
        ("PC010", "routine-above-irql"),
        ("PC011", "power-path-pageable-access"),
        ("PC012", "pageable-data-from-resident"),
    ] {
        let rule = rules.iter().find(|r| r["id"] == id).expect(id);
        assert_eq!(rule["name"], name);
        assert!(
            rule["helpUri"]
                .as_str()
                .is_some_and(|u| u.starts_with("https://learn.microsoft.com/"))
        );
    }
    let results = run["results"].as_array().expect("results");
    assert_eq!(results.iter().filter(|r| r["ruleId"] == "PC011").count(), 3);

    let clean = c_at("power_pool_nonpaged", "-O2");
    let text = run_text(&clean);
    assert!(
        text.contains(
            "  = third step (pageable data during power transitions): can call WdfDeviceInitSetPowerNotPageable: its \
             power callbacks touch no pageable data\n"
        ),
        "{text}"
    );
}

fn run_text(image: &pe_fixtures::Image) -> String {
    let out = run([image.image.as_os_str()]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    out.stdout
}
