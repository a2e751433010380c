//! Registration inference on real images: with no `--root`, pagecheck must find every callback
//! a driver hands to KMDF, with the role its slot implies, however the compiler built the
//! configuration structure; cross-check it against the placement; and refuse inputs it cannot
//! read rather than pass them.

mod common;

use common::{Registration, chain_symbols, inferred, registrations, run, table, wdf_calls};
use pagecheck::checks::{Level, Rule};
use pagecheck::roots::Origin;
use serde_json::Value;

const PNP: &str = "WdfDeviceInitSetPnpPowerEventCallbacks";
const POLICY: &str = "WdfDeviceInitSetPowerPolicyEventCallbacks";
const FILE: &str = "WdfDeviceInitSetFileObjectConfig";
const QUEUE: &str = "WdfIoQueueCreate";

/// What `reg_driver.inc` registers (its header comment), whatever the build.
#[allow(clippy::too_many_lines)]
fn reg_driver_table() -> Vec<Registration> {
    table(&[
        ("EvtDeviceD0Entry", "EvtDeviceD0Entry", "power-up", PNP),
        (
            "EvtDeviceD0EntryPostInterruptsEnabled",
            "EvtDeviceD0EntryPostInterruptsEnabled",
            "power-up",
            PNP,
        ),
        (
            "EvtDeviceSelfManagedIoRestart",
            "EvtDeviceSelfManagedIoRestart",
            "power-up",
            PNP,
        ),
        ("EvtDeviceD0Exit", "EvtDeviceD0Exit", "power-down", PNP),
        (
            "EvtDeviceSelfManagedIoSuspend",
            "EvtDeviceSelfManagedIoSuspend",
            "power-down",
            PNP,
        ),
        (
            "EvtDevicePrepareHardware",
            "EvtDevicePrepareHardware",
            "paged",
            PNP,
        ),
        (
            "EvtDeviceReleaseHardware",
            "EvtDeviceReleaseHardware",
            "paged",
            PNP,
        ),
        (
            "EvtDeviceSelfManagedIoInit",
            "EvtDeviceSelfManagedIoInit",
            "paged",
            PNP,
        ),
        (
            "EvtDeviceArmWakeFromS0",
            "EvtDeviceArmWakeFromS0",
            "power-down",
            POLICY,
        ),
        (
            "EvtDeviceDisarmWakeFromS0",
            "EvtDeviceDisarmWakeFromS0",
            "power-up",
            POLICY,
        ),
        ("EvtDeviceFileCreate", "EvtDeviceFileCreate", "paged", FILE),
        ("EvtFileClose", "EvtFileClose", "paged", FILE),
        ("EvtFileCleanup", "EvtFileCleanup", "paged", FILE),
        (
            "EvtDeviceContextCleanup",
            "EvtCleanupCallback",
            "paged",
            "WdfDeviceCreate",
        ),
        ("EvtIoRead", "EvtIoRead", "dispatch", QUEUE),
        ("EvtIoWrite", "EvtIoWrite", "dispatch", QUEUE),
        (
            "EvtIoDeviceControl",
            "EvtIoDeviceControl",
            "dispatch",
            QUEUE,
        ),
        ("EvtIoStop", "EvtIoStop", "dispatch", QUEUE),
        ("EvtIoResume", "EvtIoResume", "dispatch", QUEUE),
        ("EvtQueueCleanup", "EvtCleanupCallback", "dispatch", QUEUE),
        (
            "EvtPassiveIoDeviceControl",
            "EvtIoDeviceControl",
            "paged",
            QUEUE,
        ),
        ("EvtPassiveIoStop", "EvtIoStop", "power-down", QUEUE),
        ("EvtTimerFunc", "EvtTimerFunc", "dispatch", "WdfTimerCreate"),
        (
            "EvtWorkItemFunc",
            "EvtWorkItemFunc",
            "paged",
            "WdfWorkItemCreate",
        ),
        ("EvtDpcFunc", "EvtDpcFunc", "dispatch", "WdfDpcCreate"),
        (
            "EvtInterruptIsr",
            "EvtInterruptIsr",
            "dispatch",
            "WdfInterruptCreate",
        ),
        (
            "EvtInterruptDpc",
            "EvtInterruptDpc",
            "dispatch",
            "WdfInterruptCreate",
        ),
        (
            "EvtInterruptEnable",
            "EvtInterruptEnable",
            "dispatch",
            "WdfInterruptCreate",
        ),
        (
            "EvtInterruptDisable",
            "EvtInterruptDisable",
            "dispatch",
            "WdfInterruptCreate",
        ),
        (
            "EvtInterruptWorkItem",
            "EvtInterruptWorkItem",
            "paged",
            "WdfInterruptCreate",
        ),
        (
            "EvtRequestCancel",
            "EvtRequestCancel",
            "dispatch",
            "WdfRequestMarkCancelable",
        ),
        (
            "EvtRequestCancel",
            "EvtRequestCancel",
            "dispatch",
            "WdfRequestMarkCancelableEx",
        ),
        (
            "EvtRequestCompletion",
            "EvtRequestCompletionRoutine",
            "dispatch",
            "WdfRequestSetCompletionRoutine",
        ),
        (
            "EvtDriverDeviceAdd",
            "EvtDriverDeviceAdd",
            "paged",
            "WdfDriverCreate",
        ),
        (
            "EvtDriverUnload",
            "EvtDriverUnload",
            "paged",
            "WdfDriverCreate",
        ),
        (
            "EvtDriverCleanup",
            "EvtCleanupCallback",
            "paged",
            "WdfDriverCreate",
        ),
    ])
}

#[test]
fn every_build_of_reg_driver_registers_the_same_callbacks() {
    let expected = reg_driver_table();
    let (_, o2) = inferred("reg_driver_o2");
    for name in [
        "reg_driver_o0",
        "reg_driver_os",
        "reg_driver_o2",
        "reg_driver_cfg",
    ] {
        let (_, report) = inferred(name);
        assert_eq!(registrations(&report), expected, "{name}");
        assert!(
            report.violations.is_empty(),
            "{name}: {:#?}",
            report.violations
        );
        assert!(
            report.unresolved.is_empty(),
            "{name}: {:#?}",
            report.unresolved
        );
        assert!(report.registrations.unreadable.is_empty(), "{name}");
        // One root per registered function, each from its registration.
        assert_eq!(report.roots.len(), 35, "{name}");
        assert!(
            report
                .roots
                .iter()
                .all(|r| r.origin == Origin::Registration && r.slot.is_some()),
            "{name}"
        );
        // The same framework calls, named from their table index, in every build: Control Flow
        // Guard's dispatch does not hide them.
        assert_eq!(wdf_calls(&report), wdf_calls(&o2), "{name}");
    }
}

#[test]
fn registration_roots_in_text_and_json() {
    let image = common::c("reg_driver_o2");
    let out = run([&image.image]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("pagecheck: 0 error(s), 0 warning(s); 35 roots"),
        "{}",
        out.stdout
    );

    let out = run([
        image.image.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    assert_eq!(out.code, 0);
    let doc: Value = serde_json::from_str(&out.stdout).expect("JSON");
    let read = doc["roots"]
        .as_array()
        .expect("roots")
        .iter()
        .find(|r| r["symbol"] == "EvtIoRead")
        .expect("EvtIoRead is a root");
    assert_eq!(read["role"], "dispatch");
    assert_eq!(read["origin"], "registration");
    assert_eq!(read["slot"], "EvtIoRead");
    assert_eq!(read["method"], "WdfIoQueueCreate");
    assert_eq!(read["placement"], "resident");
    // The site is the framework call inside CreateQueues.
    let site = read["site"].as_u64().expect("site");
    let create = doc["footprint"]["functions"]
        .as_array()
        .expect("functions")
        .iter()
        .find(|f| f["symbol"] == "CreateQueues")
        .expect("CreateQueues");
    let (start, len) = (
        create["rva"].as_u64().expect("rva"),
        create["size"].as_u64().expect("size"),
    );
    assert!(site >= start && site < start + len, "{site:#x}");
    let listed = doc["registrations"]["list"].as_array().expect("list");
    assert_eq!(listed.len(), 36);
    assert!(
        listed
            .iter()
            .all(|r| r["structure"].is_string() && r["runs"].is_string())
    );
}

#[test]
fn pointers_that_cross_blocks_and_a_driver_that_may_be_nonpageable() {
    let (image, report) = inferred("reg_dataflow");
    // The linear pass alone cannot name the framework call whose table pointer was loaded
    // before the branch; the dataflow pass does.
    let bytes = std::fs::read(&image.image).expect("read");
    let parsed = pagecheck::image::Image::parse(bytes).expect("parse");
    let symbols = pagecheck::pdb::Symbols::load(&image.pdb, &parsed).expect("pdb");
    let functions = pagecheck::functions::Functions::build(&parsed, &symbols);
    let tables = symbols
        .symbols
        .iter()
        .filter(|s| pagecheck::wdf::is_function_table(&s.raw))
        .map(|s| s.rva)
        .collect();
    let ctx = pagecheck::view::Context::new(&parsed, &functions, tables);
    let linear = pagecheck::decode::build(&ctx);
    let control = functions.by_name("EvtIoDeviceControl").expect("function");
    assert!(
        !linear.unresolved_of(control).is_empty(),
        "premise: the linear pass misses it"
    );
    assert!(report.unresolved.is_empty(), "{:#?}", report.unresolved);

    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    // EvtIoStop is set on one path only: still a registration, marked possible.
    let stop = report
        .registrations
        .list
        .iter()
        .find(|r| r.symbol == "EvtIoStop")
        .expect("EvtIoStop registered");
    assert!(stop.possible);
    assert_eq!(stop.role().name(), "dispatch");
    // The branch that calls WdfDeviceInitSetPowerNotPageable is enough to make the power-down
    // path strict; the two power-down callbacks are resident and in the locked PAGEPWR.
    let calls: Vec<&str> = report.policy.nonpageable.iter().map(|s| s.call).collect();
    assert_eq!(calls, ["WdfDeviceInitSetPowerNotPageable"]);
    let locked: Vec<&str> = report
        .policy
        .locked
        .iter()
        .map(|l| l.section.as_str())
        .collect();
    assert_eq!(locked, ["PAGEPWR"]);
    let placement = |name: &str| {
        report
            .roots
            .iter()
            .find(|r| r.symbol == name)
            .map(|r| (r.role, r.placement))
    };
    assert_eq!(
        placement("EvtDeviceD0Exit"),
        Some(("power-down", "resident"))
    );
    assert_eq!(
        placement("EvtDeviceSelfManagedIoSuspend"),
        Some(("power-down", "locked"))
    );
}

#[test]
fn misplaced_callbacks_are_reported_with_their_slot_and_site() {
    let (image, report) = inferred("reg_mistakes");
    let mut found: Vec<(Rule, String)> = report
        .violations
        .iter()
        .map(|v| {
            assert_eq!(v.level, Level::Error, "{v:#?}");
            let subject = if v.rule == Rule::InitUseAfterDiscard {
                v.chain.last()
            } else {
                v.chain.first()
            };
            (v.rule, subject.expect("chain").symbol.clone())
        })
        .collect();
    found.sort();
    let mut expected: Vec<(Rule, String)> = [
        (Rule::ResidentReachesPageable, "EvtIoDeviceControl"),
        (Rule::ResidentRootNotResident, "EvtDeviceD0Entry"),
        (Rule::ResidentRootNotResident, "EvtDeviceD0Exit"),
        (Rule::ResidentRootNotResident, "EvtIoRead"),
        (Rule::ResidentRootNotResident, "EvtTimerFunc"),
        (Rule::ResidentRootNotResident, "EvtQueueCleanup"),
        (Rule::InitUseAfterDiscard, "EvtWorkItemFunc"),
    ]
    .iter()
    .map(|&(r, s)| (r, s.to_owned()))
    .collect();
    expected.sort();
    assert_eq!(found, expected);

    let message = |symbol: &str| {
        report
            .violations
            .iter()
            .find(|v| v.chain.first().is_some_and(|l| l.symbol == symbol))
            .map(|v| v.message.clone())
            .expect(symbol)
    };
    // The field, the framework call and its site; for a queue callback both fixes.
    let read = message("EvtIoRead");
    for part in [
        "EvtIoRead of WDF_IO_QUEUE_CONFIG",
        "registered by WdfIoQueueCreate at CreateQueuesAndTimer+0x",
        "move it to a resident section",
        "ExecutionLevel = WdfExecutionLevelPassive",
    ] {
        assert!(read.contains(part), "{part} not in {read}");
    }
    let d0 = message("EvtDeviceD0Entry");
    assert!(d0.contains("can be power-nonpageable"), "{d0}");
    let exit = message("EvtDeviceD0Exit");
    assert!(exit.contains("MmLockPagableCodeSection"), "{exit}");
    let chain = report
        .violations
        .iter()
        .find(|v| v.rule == Rule::ResidentReachesPageable)
        .expect("PC002");
    assert_eq!(chain_symbols(chain), ["EvtIoDeviceControl", "FormatReply"]);
    // The passive queue's callback and PrepareHardware in PAGE are correct: not reported.
    assert!(
        !report
            .violations
            .iter()
            .any(|v| v.message.contains("EvtPassiveIoDeviceControl"))
    );
    assert!(
        !report
            .violations
            .iter()
            .any(|v| v.message.contains("EvtDevicePrepareHardware"))
    );
    assert_eq!(run([&image.image]).code, 1);
}

/// What `reg_more.c` registers (its header comment).
fn reg_more_table() -> Vec<Registration> {
    table(&[
        (
            "EvtDriverDeviceAdd",
            "EvtDriverDeviceAdd",
            "paged",
            "WdfDriverCreate",
        ),
        (
            "EvtIoInCallerContext",
            "EvtIoInCallerContext",
            "dispatch",
            "WdfDeviceInitSetIoInCallerContextCallback",
        ),
        (
            "EvtWdmIrpPreprocess",
            "EvtDeviceWdmIrpPreprocess",
            "dispatch",
            "WdfDeviceInitAssignWdmIrpPreprocessCallback",
        ),
        (
            "EvtShutdownNotification",
            "EvtDeviceShutdownNotification",
            "paged",
            "WdfControlDeviceInitSetShutdownNotification",
        ),
        (
            "EvtWdmIrpDispatch",
            "EvtDeviceWdmIrpDispatch",
            "dispatch",
            "WdfDeviceConfigureWdmIrpDispatchCallback",
        ),
        (
            "EvtWmiQueryInstance",
            "EvtWmiInstanceQueryInstance",
            "paged",
            "WdfWmiInstanceCreate",
        ),
        ("EvtIoWrite", "EvtIoWrite", "dispatch", QUEUE),
        (
            "EvtUsbReadComplete",
            "EvtUsbTargetPipeReadComplete",
            "dispatch",
            "WdfUsbTargetPipeConfigContinuousReader",
        ),
        (
            "EvtUsbReadersFailed",
            "EvtUsbTargetPipeReadersFailed",
            "paged",
            "WdfUsbTargetPipeConfigContinuousReader",
        ),
        (
            "QueueStopped",
            "EvtIoQueueState",
            "dispatch",
            "WdfIoQueueStop",
        ),
        (
            "PassiveIsr",
            "EvtInterruptIsr",
            "paged",
            "WdfInterruptCreate",
        ),
        (
            "PassiveInterruptEnable",
            "EvtInterruptEnable",
            "power-up",
            "WdfInterruptCreate",
        ),
        (
            "EvtProgramDma",
            "EvtProgramDma",
            "dispatch",
            "WdfDmaTransactionInitialize",
        ),
    ])
}

/// Callbacks passed directly (in registers and on the stack) and in the WMI and USB reader
/// configurations: each one is a root with its slot's role, and the one misplaced (a queue
/// state callback in PAGE) is the only finding.
#[test]
fn callbacks_passed_directly_and_in_wmi_and_usb_configurations() {
    let (image, report) = inferred("reg_more");
    assert_eq!(registrations(&report), reg_more_table());
    // The method pagecheck does not model: its callback is reported, not dropped.
    let unreadable: Vec<(&str, &[String])> = report
        .registrations
        .unreadable
        .iter()
        .map(|u| (u.method, u.what.as_slice()))
        .collect();
    assert_eq!(unreadable.len(), 1, "{unreadable:?}");
    assert_eq!(
        unreadable[0].0,
        "WdfDeviceInitRegisterPowerStateChangeCallback"
    );
    assert!(
        unreadable[0].1[0].contains("`EvtPowerStateChange` passed to a method"),
        "{:?}",
        unreadable[0].1
    );
    let found: Vec<(Rule, String)> = report
        .violations
        .iter()
        .map(|v| {
            (
                v.rule,
                v.chain
                    .first()
                    .map(|l| l.symbol.clone())
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (Rule::ResidentRootNotResident, "QueueStopped".to_owned()),
            (
                Rule::UnreadableRegistration,
                "EvtDriverDeviceAdd".to_owned()
            ),
        ]
    );
    let message = &report.violations[0].message;
    for part in [
        "EvtIoQueueState (an argument), registered by WdfIoQueueStop at StopQueue+0x",
        "ExecutionLevel = WdfExecutionLevelPassive",
    ] {
        assert!(message.contains(part), "{part} not in {message}");
    }
    assert_eq!(run([&image.image]).code, 1);
}

#[test]
fn structures_in_read_only_data_by_pointer_and_by_copy() {
    let expected = table(&[
        ("EvtDeviceD0Entry", "EvtDeviceD0Entry", "power-up", PNP),
        (
            "EvtDeviceSelfManagedIoRestart",
            "EvtDeviceSelfManagedIoRestart",
            "power-up",
            PNP,
        ),
        ("EvtDeviceD0Exit", "EvtDeviceD0Exit", "power-down", PNP),
        (
            "EvtDevicePrepareHardware",
            "EvtDevicePrepareHardware",
            "paged",
            PNP,
        ),
        (
            "EvtDeviceContextCleanup",
            "EvtCleanupCallback",
            "paged",
            "WdfDeviceCreate",
        ),
        (
            "EvtIoDeviceControl",
            "EvtIoDeviceControl",
            "dispatch",
            QUEUE,
        ),
        ("EvtIoRead", "EvtIoRead", "dispatch", QUEUE),
        ("EvtIoStop", "EvtIoStop", "dispatch", QUEUE),
        (
            "EvtDriverDeviceAdd",
            "EvtDriverDeviceAdd",
            "paged",
            "WdfDriverCreate",
        ),
    ]);
    for name in ["reg_rdata_o0", "reg_rdata_os", "reg_rdata_o2"] {
        let (_, report) = inferred(name);
        assert_eq!(registrations(&report), expected, "{name}");
        assert!(
            report.violations.is_empty(),
            "{name}: {:#?}",
            report.violations
        );
        // The premise of each build: -O0 copies the templates with memcpy, the others inline.
        let memcpy = report
            .externals
            .iter()
            .any(|e| e.name == "ntoskrnl.exe!memcpy");
        assert_eq!(memcpy, name == "reg_rdata_o0", "{name}");
    }
}

#[test]
fn registrations_through_helpers_keep_each_callers_structure() {
    let (_, report) = inferred("reg_helper");
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    let queue: Vec<(&str, &str, bool)> = report
        .registrations
        .list
        .iter()
        .filter(|r| r.method == QUEUE)
        .map(|r| (r.symbol.as_str(), r.role().name(), r.via.is_empty()))
        .collect();
    assert_eq!(
        queue,
        [
            ("EvtIoDeviceControl", "dispatch", false),
            ("EvtIoStop", "dispatch", false),
            ("EvtPassiveIoDeviceControl", "paged", false),
        ]
    );
    // Each site is the WdfIoQueueCreate call in CreateQueue, reached from EvtDriverDeviceAdd.
    let text = run([common::c("reg_helper").image]).stdout;
    assert!(text.contains("0 error(s), 0 warning(s)"), "{text}");
}

#[test]
fn the_drivers_registration_shapes_agree_with_its_role_records() {
    let image = common::rust("rust_registrations");
    let report = common::analyze(&image, &[]);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert!(report.registrations.unreadable.is_empty());
    let mut inferred: Vec<(String, &str)> = report
        .registrations
        .list
        .iter()
        .map(|r| {
            (
                r.symbol
                    .trim_start_matches("rust_registrations::")
                    .to_owned(),
                r.slot,
            )
        })
        .collect();
    inferred.sort();
    assert_eq!(
        inferred,
        [
            (
                "evt_control_io_device_control".to_owned(),
                "EvtIoDeviceControl"
            ),
            (
                "evt_device_context_cleanup".to_owned(),
                "EvtCleanupCallback"
            ),
            ("evt_device_d0_entry".to_owned(), "EvtDeviceD0Entry"),
            ("evt_device_d0_exit".to_owned(), "EvtDeviceD0Exit"),
            (
                "evt_device_prepare_hardware".to_owned(),
                "EvtDevicePrepareHardware"
            ),
            (
                "evt_device_self_managed_io_restart".to_owned(),
                "EvtDeviceSelfManagedIoRestart"
            ),
            (
                "evt_device_self_managed_io_suspend".to_owned(),
                "EvtDeviceSelfManagedIoSuspend"
            ),
            ("evt_driver_device_add".to_owned(), "EvtDriverDeviceAdd"),
            ("evt_hold_timer".to_owned(), "EvtTimerFunc"),
            ("evt_persist_work_item".to_owned(), "EvtWorkItemFunc"),
            (
                "evt_power_io_device_control".to_owned(),
                "EvtIoDeviceControl"
            ),
        ]
    );
    // Every registered function also has a role record, and the two agree: one root each.
    for r in &report.registrations.list {
        let roots: Vec<_> = report
            .roots
            .iter()
            .filter(|root| root.symbol == r.symbol)
            .collect();
        assert_eq!(roots.len(), 1, "{}", r.symbol);
        assert_eq!(roots[0].origin, Origin::Record, "{}", r.symbol);
        assert_eq!(roots[0].slot, Some(r.slot), "{}", r.symbol);
    }
    // The device may be made power-nonpageable, and PAGEPWR is locked when it is.
    assert_eq!(report.policy.nonpageable.len(), 1);
    assert_eq!(report.policy.locked.len(), 1);
    assert_eq!(report.policy.locked[0].section, "PAGEPWR");
}

#[test]
fn a_power_down_function_in_the_d0_entry_field_is_a_finding() {
    let image =
        pe_fixtures::rust_with_features("rust_registrations", &["slot_bypass"]).expect("build");
    let report = common::analyze(&image, &[]);
    // The role record disagrees with the slot (an error), and the return to D0 now runs from
    // PAGEPWR, which is in memory only while the driver locks it (a slow-resume warning).
    let mut rules: Vec<(Rule, Level)> = report
        .violations
        .iter()
        .map(|v| (v.rule, v.level))
        .collect();
    rules.sort_by_key(|(r, _)| *r);
    assert_eq!(
        rules,
        [
            (Rule::DeclaredRoleMismatch, Level::Error),
            (Rule::SlowResume, Level::Warning)
        ],
        "{:#?}",
        report.violations
    );
    for v in &report.violations {
        assert!(
            v.chain
                .iter()
                .any(|l| l.symbol == "rust_registrations::evt_device_d0_exit"),
            "{v:#?}"
        );
        assert!(
            v.message
                .contains("EvtDeviceD0Entry of WDF_PNPPOWER_EVENT_CALLBACKS"),
            "{}",
            v.message
        );
        assert!(
            v.message
                .contains("WdfDeviceInitSetPnpPowerEventCallbacks at "),
            "{}",
            v.message
        );
    }
    assert_eq!(run([&image.image]).code, 1);
}

/// Runs every output format on `path` and asserts each refuses it with one line on stderr
/// containing `reason`.
fn refused_in_every_format(path: &std::path::Path, reason: &str) {
    for format in ["text", "json", "sarif"] {
        let out = run([path.as_os_str(), "--format".as_ref(), format.as_ref()]);
        let line = common::assert_bad_input(&out, &format!("{reason} ({format})"));
        assert!(line.contains(reason), "{format}: {line}");
    }
}

/// A way to damage a role record, and what the refusal says.
type Corruption = (&'static str, fn(&mut [u8]), &'static str);

#[test]
fn corrupt_role_records_are_refused_not_dropped() {
    let image = common::rust("rust_violation");
    let bytes = std::fs::read(&image.image).expect("read");
    let parsed = pagecheck::image::Image::parse(bytes.clone()).expect("parse");
    let section = parsed
        .sections
        .iter()
        .find(|s| s.name == pagewise_roles::section::ROLE_RECORDS)
        .expect(".pwrole");
    let first = common::file_offset(&bytes, section.rva);
    // The intact image fails with its one real violation (exit 1), so a pass below would be
    // a record dropped, not a clean image.
    assert_eq!(run([&image.image]).code, 1);
    // A record's address is relocated: moved outside the image it is caught with the other
    // relocated addresses.
    let cases: [Corruption; 3] = [
        ("version", |r| r[4] = 2, "role record"),
        ("magic", |r| r[0] ^= 0x20, "role record"),
        (
            "address",
            |r| r[8..16].copy_from_slice(&0x7fff_0000_0000_u64.to_le_bytes()),
            "relocated addresses point outside the image",
        ),
    ];
    for (what, corrupt, reason) in cases {
        let mut bad = bytes.clone();
        corrupt(&mut bad[first..first + 16]);
        let path = common::write_variant(&image, &format!("records-{what}"), &bad);
        refused_in_every_format(&path, reason);
    }
}

#[test]
fn a_section_stretched_over_the_next_is_refused() {
    let image = common::c("reg_mistakes");
    let mut bytes = std::fs::read(&image.image).expect("read");
    let headers = common::headers(&bytes);
    let text = headers.iter().find(|(n, _)| n == ".text").expect(".text").1;
    // .text's VirtualSize reaching over everything after it, PAGE included.
    bytes[text + 8..text + 12].copy_from_slice(&0x0010_0000_u32.to_le_bytes());
    let size_of_image = common::optional_header(&bytes) + 56;
    bytes[size_of_image..size_of_image + 4].copy_from_slice(&0x0020_0000_u32.to_le_bytes());
    let path = common::write_variant(&image, "stretched-text", &bytes);
    refused_in_every_format(&path, "overlap");
}

#[test]
fn an_image_base_changed_without_rebasing_is_refused() {
    let image = common::c("reg_rdata_o2");
    let mut bytes = std::fs::read(&image.image).expect("read");
    let base = common::optional_header(&bytes) + 24;
    let old = u64::from_le_bytes(bytes[base..base + 8].try_into().expect("8"));
    bytes[base..base + 8].copy_from_slice(&(old + 0x1000_0000).to_le_bytes());
    let path = common::write_variant(&image, "moved-base", &bytes);
    refused_in_every_format(&path, "ImageBase");
}

#[test]
fn an_image_with_nothing_to_check_is_refused() {
    // resident_calls_paged registers nothing with the framework and takes no lock.
    let image = common::c("resident_calls_paged");
    refused_in_every_format(&image.image, "no roots");
}

/// The benchmark's KMDF image at a small size: every eighth function creates a timer with its
/// first callee as `EvtTimerFunc`, and pagecheck must find each of those registrations (so the
/// benchmark's KMDF figure measures inference, not an image it skips).
#[test]
fn the_kmdf_benchmark_image_registers_a_timer_in_every_eighth_function() {
    let functions = 96;
    let sources = pe_fixtures::generate_large_kmdf_c_units(functions, 0x5eed, 2);
    let image = pe_fixtures::c_sources("bench_kmdf_small", &sources, &[]).expect("build");
    let options = pagecheck::Options {
        roots: vec!["power-up=f0".parse().expect("root")],
        ..pagecheck::Options::default()
    };
    let report = pagecheck::analyze_path(&image.image, &options).expect("analysis");
    // The callback of function i's timer, from its source: `c.EvtTimerFunc = (...)f<n>;`.
    let mut expected: Vec<String> = sources
        .concat()
        .lines()
        .filter_map(|l| l.split("c.EvtTimerFunc = (void (*)(void *))").nth(1))
        .map(|rest| rest.trim_end_matches(';').to_owned())
        .collect();
    assert_eq!(expected.len(), functions / 8);
    let mut found: Vec<String> = report
        .registrations
        .list
        .iter()
        .filter(|r| r.method == "WdfTimerCreate" && r.slot == "EvtTimerFunc")
        .map(|r| r.symbol.clone())
        .collect();
    expected.sort();
    found.sort();
    assert_eq!(found, expected);
    assert!(report.registrations.unreadable.is_empty());
    assert!(report.summary.dataflow_functions >= functions / 8);
    // Every timer callback is a dispatch-level root.
    for symbol in &expected {
        assert!(
            report
                .roots
                .iter()
                .any(|r| &r.symbol == symbol && r.role == "dispatch"),
            "{symbol} is not a dispatch root"
        );
    }
}

/// The linear pass split across threads builds the same graph as one thread: every function's
/// edges, external calls, unresolved transfers and data references, in order.
#[test]
fn the_linear_pass_on_several_threads_is_the_same_graph() {
    let image = common::c("reg_shapes_o2");
    let bytes = std::fs::read(&image.image).expect("read");
    let parsed = pagecheck::image::Image::parse(bytes).expect("parse");
    let symbols = pagecheck::pdb::Symbols::load(&image.pdb, &parsed).expect("pdb");
    let functions = pagecheck::functions::Functions::build(&parsed, &symbols);
    let ctx = pagecheck::view::Context::new(&parsed, &functions, Vec::new());
    let one = pagecheck::decode::build_on(&ctx, 1);
    assert!(functions.len() > 8, "premise: enough functions to split");
    for threads in [2, 3, 7] {
        let split = pagecheck::decode::build_on(&ctx, threads);
        assert_eq!(split.function_count(), one.function_count());
        assert_eq!(
            (split.instructions, split.code_bytes),
            (one.instructions, one.code_bytes)
        );
        for f in 0..functions.len() {
            assert_eq!(
                split.edges_of(f),
                one.edges_of(f),
                "{threads} threads, function {f}"
            );
            assert_eq!(split.externals_of(f), one.externals_of(f));
            assert_eq!(split.unresolved_of(f), one.unresolved_of(f));
            assert_eq!(split.data_refs_of(f), one.data_refs_of(f));
        }
    }
}
