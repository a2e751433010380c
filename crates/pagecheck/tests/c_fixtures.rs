//! C drivers compiled by clang for x86_64-pc-windows-msvc and linked by lld-link: each
//! fixture is one shape of the paging mistake, checked through the library and the binary.

mod common;

use common::errors;
use common::{analyze, chain_sections, chain_symbols, run};
use pagecheck::checks::{Level, Rule, Violation};
use serde_json::Value;

#[test]
fn clean_has_no_violation() {
    let image = common::c("clean");
    let report = analyze(
        &image,
        &["power-up=EvtDeviceD0Entry", "dispatch=EvtIoDeviceControl"],
    );
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert_eq!(report.roots.len(), 2);
    // Footprint: every function lands in the residency of its section.
    let section_of = |name: &str| {
        report
            .footprint
            .functions
            .iter()
            .find(|f| &*f.symbol == name)
            .map(|f| &*f.section)
    };
    assert_eq!(section_of("EvtDeviceD0Entry"), Some(".text"));
    assert_eq!(section_of("ConfigureQueues"), Some("PAGE"));
    assert_eq!(section_of("DriverEntry"), Some("INIT"));
    let sum = |res| {
        report
            .footprint
            .functions
            .iter()
            .filter(|f| f.residency == res)
            .map(|f| u64::from(f.size))
            .sum::<u64>()
    };
    assert_eq!(
        report.footprint.resident,
        sum(pagecheck::image::Residency::Resident)
    );
    assert!(report.footprint.pageable > 0 && report.footprint.discardable > 0);
    // The kernel imports are external calls, not edges or unresolved sites.
    assert!(
        report
            .externals
            .iter()
            .any(|e| e.name == "ntoskrnl.exe!KeAcquireSpinLockRaiseToDpc")
    );
    assert!(report.unresolved.is_empty());

    let out = run([
        image.image.as_os_str(),
        "--root".as_ref(),
        "power-up=EvtDeviceD0Entry".as_ref(),
        "--root".as_ref(),
        "dispatch=EvtIoDeviceControl".as_ref(),
    ]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("pagecheck: 0 error(s), 0 warning(s); 2 roots"),
        "{}",
        out.stdout
    );
    let by_section = out
        .stdout
        .lines()
        .find(|l| l.starts_with("  = code by section: "))
        .expect("per-section line");
    for part in [
        ".text ",
        "(resident)",
        "PAGE ",
        "(pageable)",
        "INIT ",
        "(discardable)",
    ] {
        assert!(by_section.contains(part), "{by_section}");
    }
}

#[test]
fn resident_calls_paged_directly() {
    let image = common::c("resident_calls_paged");
    let report = analyze(&image, &["power-up=EvtDeviceD0Entry"]);
    let errors = errors(&report);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].rule, Rule::ResidentReachesPageable);
    assert_eq!(
        chain_symbols(errors[0]),
        ["EvtDeviceD0Entry", "LoadCalibration"]
    );
    assert_eq!(chain_sections(errors[0]), [".text", "PAGE"]);
    // Without the root there is nothing to check from, and saying so is not a pass.
    let err = pagecheck::analyze_path(&image.image, &pagecheck::Options::default())
        .expect_err("no roots");
    assert!(err.to_string().starts_with("no roots"), "{err}");
}

#[test]
fn code_address_merging_into_an_indirect_call() {
    // The `lea` of PagedHandler falls through into the join where `call rax` is also reached
    // with a pointer loaded from memory: a possible paged call (PC002) and an unresolved site.
    let image = common::c("join_call");
    let report = analyze(&image, &["dispatch=EvtIoDeviceControl"]);
    let errors = errors(&report);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].rule, Rule::ResidentReachesPageable);
    assert_eq!(
        chain_symbols(errors[0]),
        ["EvtIoDeviceControl", "PagedHandler"]
    );
    let unresolved: Vec<&str> = report
        .unresolved
        .iter()
        .map(|u| u.function.as_str())
        .collect();
    assert_eq!(unresolved, ["EvtIoDeviceControl"]);
}

#[test]
fn a_branch_proven_never_taken_reaches_nothing() {
    let image = common::c("dead_branch");
    let report = analyze(
        &image,
        &[
            "dispatch=EvtIoDeviceControl",
            "dispatch=EvtIoInternalDeviceControl",
        ],
    );
    let errors = errors(&report);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].rule, Rule::ResidentReachesPageable);
    assert_eq!(
        chain_symbols(errors[0]),
        ["EvtIoInternalDeviceControl", "ReportMissingEntry"]
    );
}

fn errors_of(image: &pe_fixtures::Image, roots: &[&str]) -> Vec<Violation> {
    errors(&analyze(image, roots))
        .into_iter()
        .cloned()
        .collect()
}

#[test]
fn deep_chain_reports_every_link() {
    let image = common::c("deep_chain");
    let errors = errors_of(&image, &["power-up=EvtDeviceD0Entry"]);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(
        chain_symbols(&errors[0]),
        [
            "EvtDeviceD0Entry",
            "RestoreContext",
            "ReprogramRegisters",
            "ApplyDefaults",
            "ReadDefaultsFromRegistry"
        ]
    );
    assert_eq!(
        chain_sections(&errors[0]),
        [".text", ".text", ".text", ".text", "PAGE"]
    );
    // Every link but the last names the call site inside its function.
    for link in &errors[0].chain[..4] {
        let site = link.site.expect("site");
        assert!(site >= link.rva, "{link:?}");
    }
    assert!(!chain_symbols(&errors[0]).contains(&"OtherPath"));
}

#[test]
fn tail_jump_into_paged_code() {
    let image = common::c("tail_jump");
    let errors = errors_of(&image, &["power-up=EvtDeviceD0Entry"]);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(
        chain_symbols(&errors[0]),
        ["EvtDeviceD0Entry", "ResumeFirmware"]
    );
    // The site is the root's last instruction: a jmp rel32 (E9) in the image bytes.
    let site = errors[0].chain[0].site.expect("site");
    let bytes = std::fs::read(&image.image).expect("read");
    let file = object_offset(&bytes, site);
    assert_eq!(bytes[file], 0xe9, "expected jmp rel32 at {site:#x}");
}

/// File offset of `rva` (via the library's own reader).
fn object_offset(bytes: &[u8], rva: u32) -> usize {
    let image = pagecheck::image::Image::parse(bytes.to_vec()).expect("parse");
    let s = &image.sections[image.section_of(rva).expect("section")];
    (s.file_offset + (rva - s.rva)) as usize
}

#[test]
fn root_placed_in_page() {
    let image = common::c("root_in_page");
    let errors = errors_of(&image, &["power-up=EvtDeviceD0Entry", "dispatch=EvtIoRead"]);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].rule, Rule::ResidentRootNotResident);
    assert_eq!(chain_symbols(&errors[0]), ["EvtDeviceD0Entry"]);
    assert_eq!(chain_sections(&errors[0]), ["PAGE"]);
    // The same function given a non-resident role is fine.
    assert!(errors_of(&image, &["paged=EvtDeviceD0Entry"]).is_empty());
}

#[test]
fn paged_code_calling_init_and_resident_code_keeping_init_address() {
    let image = common::c("paged_calls_init");
    let errors = errors_of(&image, &["init=DriverEntry"]);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors.iter().all(|v| v.rule == Rule::InitUseAfterDiscard));
    let mut chains: Vec<Vec<&str>> = errors.iter().map(chain_symbols).collect();
    chains.sort();
    assert_eq!(
        chains,
        vec![
            vec!["EvtDeviceD0Entry", "InitOnlyCallback"],
            vec!["EvtDevicePrepareHardware", "ParseRegistryDefaults"]
        ]
    );
    let call = errors
        .iter()
        .find(|v| v.chain[0].symbol == "EvtDevicePrepareHardware")
        .expect("call");
    assert!(call.message.contains("calls INIT code"), "{}", call.message);
    assert_eq!(chain_sections(call), ["PAGE", "INIT"]);
    let lea = errors
        .iter()
        .find(|v| v.chain[0].symbol == "EvtDeviceD0Entry")
        .expect("lea");
    assert!(
        lea.message.contains("takes the address of INIT code"),
        "{}",
        lea.message
    );
}

/// The roots of the `indirect_call` fixtures, as command-line arguments after the image.
fn indirect_args(image: &pe_fixtures::Image, extra: &[&str]) -> Vec<String> {
    let mut args = vec![image.image.display().to_string()];
    for root in ["power-up=EvtDeviceD0Entry", "dispatch=EvtIoDeviceControl"] {
        args.push("--root".into());
        args.push(root.into());
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

#[test]
fn indirect_calls_whose_possible_targets_are_resident_are_bounded() {
    let image = common::c("indirect_call");
    let report = analyze(
        &image,
        &["power-up=EvtDeviceD0Entry", "dispatch=EvtIoDeviceControl"],
    );
    // Two indirect sites in resident code...
    let mut sites: Vec<&str> = report
        .unresolved
        .iter()
        .filter(|u| u.resident)
        .map(|u| u.function.as_str())
        .collect();
    sites.sort_unstable();
    assert_eq!(sites, ["EvtDeviceD0Entry", "EvtIoDeviceControl"]);
    // ...whose possible targets are ResidentHandlerA/B: nothing to report.
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    let strict = run(indirect_args(&image, &["--fail-on-unresolved"]));
    assert_eq!(strict.code, 0, "{}", strict.stdout);
}

#[test]
fn an_indirect_call_that_may_reach_pageable_code_names_it() {
    let image = common::c("indirect_call_paged");
    let report = analyze(
        &image,
        &["power-up=EvtDeviceD0Entry", "dispatch=EvtIoDeviceControl"],
    );
    assert!(!report.failed());
    let warnings: Vec<_> = report
        .violations
        .iter()
        .filter(|v| v.rule == Rule::UnresolvedIndirect)
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    for w in &warnings {
        assert_eq!(w.level, Level::Warning);
        assert!(
            w.message.contains("pageable `PagedHandler`"),
            "{}",
            w.message
        );
    }
    // No invented edge: nothing the roots reach is reported paged for certain.
    assert!(
        !report
            .violations
            .iter()
            .any(|v| v.rule == Rule::ResidentReachesPageable)
    );
    assert_eq!(run(indirect_args(&image, &[])).code, 0);
    let strict = run(indirect_args(&image, &["--fail-on-unresolved"]));
    assert_eq!(strict.code, 1, "{}", strict.stdout);
    assert_eq!(
        strict.stdout.matches("error[PC005]").count(),
        2,
        "{}",
        strict.stdout
    );
}

#[test]
fn json_output_shape() {
    let image = common::c("deep_chain");
    let out = run([
        image.image.as_os_str(),
        "--root".as_ref(),
        "power-up=EvtDeviceD0Entry".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    assert_eq!(out.code, 1);
    let doc: Value = serde_json::from_str(&out.stdout).expect("one JSON object");
    let violations = doc["violations"].as_array().expect("violations array");
    assert_eq!(violations.len(), 1);
    let v = &violations[0];
    assert_eq!(v["rule"], "PC002");
    assert!(
        v["message"]
            .as_str()
            .expect("message")
            .contains("ReadDefaultsFromRegistry")
    );
    let chain = v["chain"].as_array().expect("chain");
    assert_eq!(chain.len(), 5);
    for link in chain {
        assert!(
            link["symbol"].is_string() && link["rva"].is_u64() && link["section"].is_string(),
            "{link}"
        );
    }
    assert_eq!(chain[0]["symbol"], "EvtDeviceD0Entry");
    assert_eq!(chain[4]["section"], "PAGE");
    for key in [
        "footprint",
        "slack",
        "unresolved",
        "roots",
        "summary",
        "externals",
    ] {
        assert!(!doc[key].is_null(), "missing {key}");
    }
    assert!(doc["footprint"]["resident"].as_u64().expect("resident") > 0);
}

#[test]
fn sarif_output_has_the_fields_code_scanning_requires() {
    let image = common::c("deep_chain");
    let out = run([
        image.image.as_os_str(),
        "--root".as_ref(),
        "power-up=EvtDeviceD0Entry".as_ref(),
        "--format".as_ref(),
        "sarif".as_ref(),
    ]);
    assert_eq!(out.code, 1);
    let doc: Value = serde_json::from_str(&out.stdout).expect("SARIF is JSON");
    assert_eq!(doc["version"], "2.1.0");
    assert!(
        doc["$schema"]
            .as_str()
            .expect("$schema")
            .contains("sarif-2.1.0")
    );
    let run0 = &doc["runs"][0];
    let driver = &run0["tool"]["driver"];
    assert_eq!(driver["name"], "cargo-pagecheck");
    let rules = driver["rules"].as_array().expect("rules");
    let ids: Vec<&str> = rules
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        [
            "PC001", "PC002", "PC003", "PC004", "PC005", "PC006", "PC007", "PC008", "PC009",
            "PC010", "PC011", "PC012"
        ]
    );
    assert!(
        rules
            .iter()
            .all(|r| r["shortDescription"]["text"].is_string())
    );
    let results = run0["results"].as_array().expect("results");
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(r["ruleId"], "PC002");
    assert_eq!(r["level"], "error");
    assert_eq!(
        rules[usize::try_from(r["ruleIndex"].as_u64().expect("ruleIndex")).expect("index")]["id"],
        "PC002"
    );
    assert!(
        r["message"]["text"]
            .as_str()
            .expect("text")
            .contains("EvtDeviceD0Entry")
    );
    // The primary location is the offending call: in ApplyDefaults, at its source line.
    let loc = &r["locations"][0];
    assert_eq!(
        loc["physicalLocation"]["artifactLocation"]["uri"],
        "crates/pagecheck/tests/fixtures/c/deep_chain.c"
    );
    assert_eq!(loc["logicalLocations"][0]["name"], "ApplyDefaults");
    let flow = r["codeFlows"][0]["threadFlows"][0]["locations"]
        .as_array()
        .expect("thread flow");
    let names: Vec<&str> = flow
        .iter()
        .map(|l| {
            l["location"]["logicalLocations"][0]["name"]
                .as_str()
                .expect("name")
        })
        .collect();
    assert_eq!(
        names,
        [
            "EvtDeviceD0Entry",
            "RestoreContext",
            "ReprogramRegisters",
            "ApplyDefaults",
            "ReadDefaultsFromRegistry"
        ]
    );
}

#[test]
fn wdf_call_shape_is_external_and_named() {
    let image = common::c("wdf_call_shape");
    let report = analyze(
        &image,
        &["power-up=EvtDeviceD0Entry", "dispatch=EvtIoDeviceControl"],
    );
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert!(report.unresolved.is_empty(), "{:#?}", report.unresolved);
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
    let strict = run([
        image.image.as_os_str(),
        "--root".as_ref(),
        "dispatch=EvtIoDeviceControl".as_ref(),
        "--fail-on-unresolved".as_ref(),
    ]);
    assert_eq!(strict.code, 0, "{}", strict.stdout);
}

#[test]
fn bad_sections_four_image_findings() {
    let image = common::c("bad_sections");
    let report = analyze(&image, &["power-up=EvtDeviceD0Entry"]);
    let mut messages: Vec<&str> = report
        .violations
        .iter()
        .map(|v| {
            assert_eq!(v.rule, Rule::SectionFlags, "{v:#?}");
            v.message.as_str()
        })
        .collect();
    messages.sort_unstable();
    let expect = [
        "section `.retplne` has empty characteristics",
        "section `.text` holds code but is not marked not-paged",
        "section `INIT` is not discardable",
        "section `page` looks pageable but is not upper-case",
    ];
    assert_eq!(messages.len(), 5, "{messages:#?}");
    for e in expect {
        assert!(
            messages.iter().any(|m| m.starts_with(e)),
            "missing `{e}` in {messages:#?}"
        );
    }
    // The fifth: `page` is resident by name, so it also lacks the not-paged flag.
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("section `page` holds code but is not marked not-paged"))
    );
    let out = run([
        image.image.as_os_str(),
        "--root".as_ref(),
        "power-up=EvtDeviceD0Entry".as_ref(),
        "--format".as_ref(),
        "sarif".as_ref(),
    ]);
    assert_eq!(out.code, 1);
    let doc: Value = serde_json::from_str(&out.stdout).expect("sarif");
    let results = doc["runs"][0]["results"].as_array().expect("results");
    assert_eq!(results.len(), 5);
    assert!(results.iter().all(|r| r["ruleId"] == "PC001"
        && r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].is_string()));
}

/// The lock roots of a report: `(symbol, acquires)`.
fn lock_roots(report: &pagecheck::Report) -> Vec<(&str, &str)> {
    report
        .roots
        .iter()
        .filter(|r| r.origin == pagecheck::roots::Origin::Lock)
        .map(|r| {
            assert_eq!(r.role, "dispatch");
            (
                r.symbol.as_str(),
                r.acquires.expect("lock root names its call"),
            )
        })
        .collect()
}

#[test]
fn lock_holder_reached_from_page_is_a_dispatch_root() {
    let image = common::c("lock_holder_paged");
    let report = analyze(&image, &["paged=EvtDriverDeviceAdd"]);
    assert_eq!(
        lock_roots(&report),
        [("UpdateStatistics", "KeAcquireSpinLockRaiseToDpc")]
    );
    let errors = errors(&report);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].rule, Rule::ResidentReachesPageable);
    assert_eq!(
        chain_symbols(errors[0]),
        ["UpdateStatistics", "AppendHistory"]
    );
    assert_eq!(chain_sections(errors[0]), [".text", "PAGE"]);

    let out = run([image.image.as_os_str()]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(
            "error[PC002]: resident root `UpdateStatistics` (dispatch: holds a spin lock taken by \
             KeAcquireSpinLockRaiseToDpc at UpdateStatistics+0x"
        ) && out
            .stdout
            .contains(") reaches paged code `AppendHistory` in `PAGE`"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("  = 1 of the roots are lock holders"),
        "{}",
        out.stdout
    );
    // Turned off, no root is left (the fixture registers nothing with the framework): with
    // nothing to prove the run is bad input, not a pass.
    let out = run([image.image.as_os_str(), "--no-lock-roots".as_ref()]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("no roots"), "{}", out.stderr);
    // With a (non-resident) paged root there is something to check, and nothing to report.
    let options = pagecheck::Options {
        no_lock_roots: true,
        roots: vec!["paged=EvtDriverDeviceAdd".parse().expect("root")],
        ..pagecheck::Options::default()
    };
    let report = pagecheck::analyze_path(&image.image, &options).expect("analysis");
    assert!(lock_roots(&report).is_empty());
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
}

#[test]
fn wdf_spin_lock_holders_are_dispatch_roots() {
    let image = common::c("lock_wdf_shape");
    let report = analyze(&image, &[]);
    let mut roots = lock_roots(&report);
    roots.sort_unstable();
    assert_eq!(
        roots,
        [
            ("ResetStatistics", "WdfSpinLockAcquire"),
            ("UpdateStatistics", "WdfSpinLockAcquire"),
        ]
    );
    // Named from the index, not an unresolved indirect call.
    assert!(
        report
            .externals
            .iter()
            .any(|e| e.name == "WdfSpinLockAcquire" && e.kind == "wdf" && e.calls == 2),
        "{:#?}",
        report.externals
    );
    assert!(report.unresolved.is_empty(), "{:#?}", report.unresolved);
    let errors = errors(&report);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    let reach = errors
        .iter()
        .find(|v| v.rule == Rule::ResidentReachesPageable)
        .expect("PC002");
    assert_eq!(chain_symbols(reach), ["UpdateStatistics", "AppendHistory"]);
    let placed = errors
        .iter()
        .find(|v| v.rule == Rule::ResidentRootNotResident)
        .expect("PC003");
    assert_eq!(chain_symbols(placed), ["ResetStatistics"]);
    assert!(
        placed.message.contains(
            "(dispatch: holds a spin lock taken by WdfSpinLockAcquire at ResetStatistics+0x"
        ) && placed
            .message
            .contains(") is placed in pageable section `PAGE`"),
        "{}",
        placed.message
    );
    assert_eq!(run([image.image.as_os_str()]).code, 1);
}

#[test]
fn lock_holder_calling_resident_code_is_clean() {
    let image = common::c("lock_clean");
    let report = analyze(&image, &[]);
    assert_eq!(
        lock_roots(&report),
        [("UpdateStatistics", "KeAcquireSpinLockRaiseToDpc")]
    );
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    // What the lock holder calls must stay resident: it is not slack.
    let slack: Vec<&str> = report.slack.functions.iter().map(|f| &*f.symbol).collect();
    assert!(!slack.contains(&"BumpCounter"), "{slack:?}");
    assert!(!slack.contains(&"UpdateStatistics"), "{slack:?}");
    // Without lock roots nothing resident reaches them: both are slack.
    let options = pagecheck::Options {
        no_lock_roots: true,
        roots: vec!["init=DriverEntry".parse().expect("root")],
        ..pagecheck::Options::default()
    };
    let report = pagecheck::analyze_path(&image.image, &options).expect("analysis");
    let slack: Vec<&str> = report.slack.functions.iter().map(|f| &*f.symbol).collect();
    assert!(slack.contains(&"BumpCounter"), "{slack:?}");
    let out = run([image.image.as_os_str()]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

#[test]
fn caller_of_a_tail_jumping_acquire_helper_is_the_lock_root() {
    let image = common::c("lock_wrapper");
    let report = analyze(&image, &[]);
    // The helper (and the import thunk) only jump to the acquire: their callers hold the lock.
    assert_eq!(
        lock_roots(&report),
        [("UpdateStatistics", "KeAcquireSpinLockRaiseToDpc")]
    );
    let errors = errors(&report);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(
        chain_symbols(errors[0]),
        ["UpdateStatistics", "AppendHistory"]
    );
}
