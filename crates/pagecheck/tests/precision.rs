//! Every finding true, every indirect call bounded: lock regions instead of lock functions,
//! indirect calls bounded by what they can reach, severity by Microsoft's rules, and sections
//! the driver locks itself. Each fixture must give exactly the finding it should and no other.

mod common;

use common::{chain_symbols, inferred, run};
use pagecheck::checks::{Level, Rule};

/// `(rule, level, first and last symbol of the chain)` of every finding.
fn findings(report: &pagecheck::Report) -> Vec<(Rule, Level, String, String)> {
    report
        .violations
        .iter()
        .map(|v| {
            let first = v
                .chain
                .first()
                .map_or_else(String::new, |l| l.symbol.clone());
            let last = v
                .chain
                .last()
                .map_or_else(String::new, |l| l.symbol.clone());
            (v.rule, v.level, first, last)
        })
        .collect()
}

fn finding(rule: Rule, level: Level, first: &str, last: &str) -> (Rule, Level, String, String) {
    (rule, level, first.to_owned(), last.to_owned())
}

#[test]
fn only_calls_made_while_the_lock_is_held_are_dispatch_level() {
    let (_, report) = inferred("lock_regions");
    // ResetCounters calls before the acquire, HandleRequest in an arm that never takes the
    // lock: neither is reported. UpdateCounters calls under the lock.
    assert_eq!(
        findings(&report),
        [finding(
            Rule::ResidentReachesPageable,
            Level::Error,
            "UpdateCounters",
            "ComputeChecksum"
        )]
    );
    let v = &report.violations[0];
    assert!(
        v.message
            .contains("holds a spin lock taken by WdfSpinLockAcquire at UpdateCounters+0x"),
        "{}",
        v.message
    );
    // All three take the lock somewhere; each is a lock root.
    let mut holders: Vec<&str> = report
        .roots
        .iter()
        .filter(|r| r.origin == pagecheck::roots::Origin::Lock)
        .map(|r| r.symbol.as_str())
        .collect();
    holders.sort_unstable();
    assert_eq!(
        holders,
        ["HandleRequest", "ResetCounters", "UpdateCounters"]
    );
}

#[test]
fn an_import_held_in_a_register_is_an_import_call() {
    let (image, report) = inferred("import_register");
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert!(report.unresolved.is_empty(), "{:#?}", report.unresolved);
    let stall = report
        .externals
        .iter()
        .find(|e| e.name == "ntoskrnl.exe!KeStallExecutionProcessor")
        .expect("the import call is counted");
    assert!(stall.calls >= 1);
    // The premise: the call is `call reg`, not `call [rip+slot]`. FF /2 with ModRM mod=11.
    let bytes = std::fs::read(&image.image).expect("read");
    let parsed = pagecheck::image::Image::parse(bytes.clone()).expect("parse");
    let text = parsed
        .sections
        .iter()
        .find(|s| s.name == ".text")
        .expect(".text");
    let code = &bytes[text.file_offset as usize..(text.file_offset + text.file_size) as usize];
    assert!(
        code.windows(2)
            .any(|w| w[0] == 0xff && w[1] & 0xf8 == 0xd0 && w[1] != 0xd0),
        "no `call reg` other than rax in .text"
    );
}

#[test]
fn control_flow_guard_calls_and_tail_jumps_are_the_calls_they_guard() {
    let image = common::c("reg_driver_cfg");
    let bytes = std::fs::read(&image.image).expect("read");
    let parsed = pagecheck::image::Image::parse(bytes.clone()).expect("parse");
    // The load configuration names the dispatch pointer...
    let dispatch = *parsed
        .guard_dispatch
        .first()
        .expect("GuardCFDispatchFunctionPointer");
    assert!(!parsed.guard_functions.is_empty(), "GuardCFFunctionTable");
    // ...and the image calls and tail-jumps through it: FF 15 / 48 FF 25 with a rel32 to it.
    let (mut calls, mut jumps) = (0, 0);
    for s in parsed.sections.iter().filter(|s| s.is_code()) {
        let code = &bytes[s.file_offset as usize..(s.file_offset + s.file_size) as usize];
        for at in 0..code.len().saturating_sub(7) {
            let target = |opcode_len: usize| {
                let disp = i32::from_le_bytes(
                    code[at + opcode_len..at + opcode_len + 4]
                        .try_into()
                        .expect("4"),
                );
                let next = s.rva + u32::try_from(at + opcode_len + 4).expect("small");
                next.wrapping_add_signed(disp)
            };
            if code[at] == 0xff && code[at + 1] == 0x15 && target(2) == dispatch {
                calls += 1;
            }
            if code[at] == 0x48
                && code[at + 1] == 0xff
                && code[at + 2] == 0x25
                && target(3) == dispatch
            {
                jumps += 1;
            }
        }
    }
    assert!(calls > 0 && jumps > 0, "calls {calls}, tail jumps {jumps}");
    // Analysed as the same driver without Control Flow Guard.
    let report = common::analyze(&image, &[]);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert!(report.unresolved.is_empty(), "{:#?}", report.unresolved);
}

#[test]
fn the_return_to_d0_reaching_paged_code_follows_power_pageability() {
    let (pageable_image, pageable) = inferred("slow_resume_pageable");
    assert_eq!(
        findings(&pageable),
        [finding(
            Rule::SlowResume,
            Level::Warning,
            "EvtDeviceD0Entry",
            "LoadCalibration"
        )]
    );
    assert!(pageable.policy.nonpageable.is_empty());
    assert_eq!(run([&pageable_image.image]).code, 0);
    let denied = run([
        pageable_image.image.as_os_str(),
        "--deny".as_ref(),
        "warnings".as_ref(),
    ]);
    assert_eq!(denied.code, 1, "{}", denied.stdout);
    assert!(
        denied.stdout.contains("warning[PC008]"),
        "{}",
        denied.stdout
    );

    let (nonpageable_image, nonpageable) = inferred("slow_resume_nonpageable");
    assert_eq!(
        findings(&nonpageable),
        [finding(
            Rule::ResidentReachesPageable,
            Level::Error,
            "EvtDeviceD0Entry",
            "LoadCalibration"
        )]
    );
    assert_eq!(nonpageable.policy.nonpageable.len(), 1);
    assert_eq!(run([&nonpageable_image.image]).code, 1);
}

/// Issue 18, point 8: with the unlock routine declared without dllimport (as wdk-sys declares
/// kernel functions), the call goes to the linker's import thunk; the report still names the
/// place that unlocks, the call of the thunk, not "no site".
#[test]
fn an_unlock_through_an_import_thunk_is_named_at_its_call() {
    let (_, report) = inferred("locked_section_thunk");
    assert_eq!(
        findings(&report),
        [finding(
            Rule::LockedSection,
            Level::Warning,
            "EvtIoRead",
            "SerialGetCharTime"
        )]
    );
    let message = &report.violations[0].message;
    assert!(
        message.contains("unlocked at EvtDeviceReleaseHardware+0x"),
        "{message}"
    );
    assert_eq!(report.policy.unlocks.len(), 1);
    assert!(
        report.policy.unlocks[0]
            .place
            .starts_with("EvtDeviceReleaseHardware+0x"),
        "{:?}",
        report.policy.unlocks
    );
}

#[test]
fn dispatch_code_in_a_section_the_driver_locks_is_safe_only_while_locked() {
    let (image, report) = inferred("locked_section");
    assert_eq!(
        findings(&report),
        [finding(
            Rule::LockedSection,
            Level::Warning,
            "EvtIoRead",
            "SerialGetCharTime"
        )]
    );
    let v = &report.violations[0];
    assert_eq!(chain_symbols(v), ["EvtIoRead", "SerialGetCharTime"]);
    for part in [
        "`PAGESER`",
        "MmLockPagableCodeSection at EvtDevicePrepareHardware+0x",
        "unlocked at EvtDeviceReleaseHardware+0x",
    ] {
        assert!(v.message.contains(part), "{part} not in {}", v.message);
    }
    let locked: Vec<&str> = report
        .policy
        .locked
        .iter()
        .map(|l| l.section.as_str())
        .collect();
    assert_eq!(locked, ["PAGESER"]);
    assert_eq!(report.policy.unlocks.len(), 1);
    assert_eq!(run([&image.image]).code, 0);
}
