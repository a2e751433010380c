//! Registration shapes beyond the configuration structures of `reg_driver`, as real KMDF drivers
//! write them: child lists, an exported interface, `WdfInterruptSynchronize` calls the compiler
//! merges, a remote I/O target's remove notifications, a passive-level timer, a queue
//! configuration filled by a helper on several branches, code addresses handed to the framework
//! where no callback is read, and the framework's object lock on passive and dispatch-level
//! objects. Each fixture's header comment says what it registers and what pagecheck must say.

mod common;

use common::{Registration, errors, inferred, registrations, run, table};
use pagecheck::checks::{Level, Rule};
use pagecheck::roots::Origin;

const DEFAULT_LIST: &str = "WdfFdoInitSetDefaultChildListConfig";
const PORT_LIST: &str = "WdfChildListCreate";
const INTERFACE: &str = "WdfDeviceAddQueryInterface";
/// The slot name of every routine of an exported interface.
const ROUTINE: &str = "an interface routine";
const SYNC: &str = "WdfInterruptSynchronize";
const TARGET: &str = "WdfIoTargetOpen";
const QUEUE: &str = "WdfIoQueueCreate";

/// What `reg_shapes.inc` registers (its header comment), whatever the build.
#[allow(clippy::too_many_lines)]
fn reg_shapes_table() -> Vec<Registration> {
    table(&[
        // The default child list: create in PAGE, scan on the way back to D0, descriptions at
        // up to DISPATCH_LEVEL.
        (
            "EvtSlotCreateDevice",
            "EvtChildListCreateDevice",
            "paged",
            DEFAULT_LIST,
        ),
        (
            "EvtScanForChildren",
            "EvtChildListScanForChildren",
            "power-up",
            DEFAULT_LIST,
        ),
        (
            "EvtIdentificationCopy",
            "EvtChildListIdentificationDescriptionCopy",
            "dispatch",
            DEFAULT_LIST,
        ),
        (
            "EvtIdentificationDuplicate",
            "EvtChildListIdentificationDescriptionDuplicate",
            "dispatch",
            DEFAULT_LIST,
        ),
        (
            "EvtIdentificationCleanup",
            "EvtChildListIdentificationDescriptionCleanup",
            "dispatch",
            DEFAULT_LIST,
        ),
        (
            "EvtIdentificationCompare",
            "EvtChildListIdentificationDescriptionCompare",
            "dispatch",
            DEFAULT_LIST,
        ),
        // The port list, created after the device, with a cleanup in its attributes.
        (
            "EvtPortCreateDevice",
            "EvtChildListCreateDevice",
            "paged",
            PORT_LIST,
        ),
        (
            "EvtAddressCopy",
            "EvtChildListAddressDescriptionCopy",
            "dispatch",
            PORT_LIST,
        ),
        (
            "EvtAddressCleanup",
            "EvtChildListAddressDescriptionCleanup",
            "dispatch",
            PORT_LIST,
        ),
        (
            "EvtDeviceReenumerated",
            "EvtChildListDeviceReenumerated",
            "dispatch",
            PORT_LIST,
        ),
        (
            "EvtPortListCleanup",
            "EvtCleanupCallback",
            "dispatch",
            PORT_LIST,
        ),
        // The exported interface: the header's two routines and the driver's three.
        ("BusInterfaceReference", ROUTINE, "dispatch", INTERFACE),
        ("BusInterfaceDereference", ROUTINE, "dispatch", INTERFACE),
        ("BusGetSlotCount", ROUTINE, "dispatch", INTERFACE),
        ("BusSetSlotPower", ROUTINE, "dispatch", INTERFACE),
        ("BusNotifyChildEvent", ROUTINE, "dispatch", INTERFACE),
        (
            "EvtProcessQueryInterface",
            "EvtDeviceProcessQueryInterfaceRequest",
            "paged",
            INTERFACE,
        ),
        // WdfInterruptSynchronize's three callbacks.
        ("SyncResetPort", "EvtInterruptSynchronize", "dispatch", SYNC),
        ("SyncStartPort", "EvtInterruptSynchronize", "dispatch", SYNC),
        ("SyncStopPort", "EvtInterruptSynchronize", "dispatch", SYNC),
        // The remote target's remove notifications.
        (
            "EvtTargetQueryRemove",
            "EvtIoTargetQueryRemove",
            "paged",
            TARGET,
        ),
        (
            "EvtTargetRemoveCanceled",
            "EvtIoTargetRemoveCanceled",
            "paged",
            TARGET,
        ),
        (
            "EvtTargetRemoveComplete",
            "EvtIoTargetRemoveComplete",
            "paged",
            TARGET,
        ),
        // The passive-level timer.
        ("EvtPollTimer", "EvtTimerFunc", "paged", "WdfTimerCreate"),
        // The queue FillQueueConfig fills on one of three branches.
        ("EvtPortRead", "EvtIoRead", "dispatch", QUEUE),
        ("EvtPortWrite", "EvtIoWrite", "dispatch", QUEUE),
        (
            "EvtPortDeviceControl",
            "EvtIoDeviceControl",
            "dispatch",
            QUEUE,
        ),
        // And the ordinary registrations around them.
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
    ])
}

/// The functions handed to the framework where it reads no callback, with the method.
const HANDED: [(&str, &str); 2] = [
    ("LogCompletion", "WdfRequestSetCompletionRoutine"),
    (
        "EvtPolicyStateChange",
        "WdfDeviceInitRegisterPowerPolicyStateChangeCallback",
    ),
];

#[test]
fn every_build_of_reg_shapes_registers_the_same_callbacks() {
    let expected = reg_shapes_table();
    for name in ["reg_shapes_o0", "reg_shapes_os", "reg_shapes_o2"] {
        let (image, report) = inferred(name);
        assert_eq!(registrations(&report), expected, "{name}");
        // Every registered function is a root with its registration's role.
        for r in &report.registrations.list {
            assert!(
                report.roots.iter().any(|root| root.symbol == r.symbol
                    && root.role == r.role().name()
                    && root.origin == Origin::Registration),
                "{name}: {} is not a {} root",
                r.symbol,
                r.role().name()
            );
        }

        // Only some paths through FillQueueConfig set each request callback: each is possible.
        // Nothing else is, except the WdfInterruptSynchronize callbacks where the compiler made
        // the three calls one.
        let sync_sites: Vec<u32> = report
            .registrations
            .list
            .iter()
            .filter(|r| r.method == SYNC)
            .map(|r| r.site)
            .collect();
        let merged = sync_sites.iter().all(|&s| s == sync_sites[0]);
        for r in &report.registrations.list {
            let possible = r.method == QUEUE || (r.method == SYNC && merged);
            assert_eq!(r.possible, possible, "{name}: {}", r.symbol);
        }
        // -O0 keeps a call per case; -Os and -O2 merge them (pe-fixtures' test checks the
        // machine code): the one call site then registers each callback possibly.
        assert_eq!(merged, name != "reg_shapes_o0", "{name}: {sync_sites:x?}");

        // The two hand-overs the model reads no callback from: reported, naming the method
        // and the function, and nothing else is unreadable (the interface's data members, a
        // number and a pointer to read-only data, are no routines).
        let mut unreadable: Vec<(&str, String)> = report
            .registrations
            .unreadable
            .iter()
            .map(|u| (u.method, u.what.join("; ")))
            .collect();
        unreadable.sort();
        assert_eq!(unreadable.len(), HANDED.len(), "{name}: {unreadable:#?}");
        for (function, method) in HANDED {
            assert!(
                unreadable
                    .iter()
                    .any(|(m, what)| *m == method && what.contains(&format!("`{function}`"))),
                "{name}: {function} via {method} not reported: {unreadable:#?}"
            );
        }

        // The findings: a PC007 warning per hand-over, the PC005 warning of DispatchHandler's
        // indirect call, no error.
        assert!(errors(&report).is_empty(), "{name}: {:#?}", errors(&report));
        let mut rules: Vec<(Rule, Level)> = report
            .violations
            .iter()
            .map(|v| (v.rule, v.level))
            .collect();
        rules.sort_by_key(|&(r, _)| r);
        assert_eq!(
            rules,
            [
                (Rule::UnresolvedIndirect, Level::Warning),
                (Rule::UnreadableRegistration, Level::Warning),
                (Rule::UnreadableRegistration, Level::Warning),
            ],
            "{name}: {:#?}",
            report.violations
        );
        for (function, method) in HANDED {
            assert!(
                report
                    .violations
                    .iter()
                    .any(|v| v.rule == Rule::UnreadableRegistration
                        && v.message.starts_with(&format!("{method} at "))
                        && v.message.contains(function)),
                "{name}: no PC007 for {function}"
            );
        }
        // The indirect call may reach PagedHandler, whose address is in the driver's own
        // table; the functions the framework was handed are not among its possible targets.
        let pc005 = report
            .violations
            .iter()
            .find(|v| v.rule == Rule::UnresolvedIndirect)
            .expect("PC005");
        assert_eq!(pc005.chain[0].symbol, "DispatchHandler", "{name}");
        assert!(
            pc005.message.contains("`PagedHandler`"),
            "{}",
            pc005.message
        );
        for (function, _) in HANDED {
            assert!(
                !pc005.message.contains(function),
                "{name}: {function} taken for a target of the driver's own indirect call: {}",
                pc005.message
            );
        }
        // Warnings only: the check passes.
        assert_eq!(run([&image.image]).code, 0, "{name}");
    }
}

#[test]
fn an_object_lock_of_a_passive_device_is_a_mutex() {
    let (image, report) = inferred("object_lock_passive");
    assert!(report.registrations.object_locks_passive);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    // The queue inherits the device's passive level: its callback may be pageable.
    assert_eq!(
        registrations(&report),
        table(&[
            ("EvtIoRead", "EvtIoRead", "paged", QUEUE),
            (
                "EvtDriverDeviceAdd",
                "EvtDriverDeviceAdd",
                "paged",
                "WdfDriverCreate"
            ),
        ])
    );
    // Holding a mutex is no dispatch-level root.
    assert!(
        report.roots.iter().all(|r| r.origin != Origin::Lock),
        "{:#?}",
        report.roots
    );
    assert_eq!(run([&image.image]).code, 0);
}

#[test]
fn the_same_object_lock_of_a_dispatch_level_device_is_a_spin_lock() {
    let (image, report) = inferred("object_lock_dispatch");
    assert!(!report.registrations.object_locks_passive);
    assert_eq!(
        registrations(&report),
        table(&[
            ("EvtIoRead", "EvtIoRead", "dispatch", QUEUE),
            (
                "EvtDriverDeviceAdd",
                "EvtDriverDeviceAdd",
                "paged",
                "WdfDriverCreate"
            ),
        ])
    );
    let mut found: Vec<(Rule, Vec<&str>)> = report
        .violations
        .iter()
        .map(|v| {
            assert_eq!(v.level, Level::Error, "{v:#?}");
            assert!(
                v.message.contains("taken by WdfObjectAcquireLock"),
                "{}",
                v.message
            );
            (v.rule, common::chain_symbols(v))
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            (
                Rule::ResidentReachesPageable,
                vec!["RecordUnderDeviceLock", "AppendHistory"]
            ),
            (Rule::ResidentRootNotResident, vec!["ResetUnderQueueLock"]),
        ]
    );
    assert_eq!(run([&image.image]).code, 1);
}

/// The Rust driver's child list and exported interface: every callback inferred with the role
/// its placement attribute records.
#[test]
fn a_rust_drivers_child_list_and_interface_agree_with_its_role_records() {
    let image = common::rust("rust_shapes");
    let report = common::analyze(&image, &[]);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert!(report.registrations.unreadable.is_empty());
    let mut inferred: Vec<(String, &str, &str, &str)> = report
        .registrations
        .list
        .iter()
        .map(|r| {
            (
                r.symbol.trim_start_matches("rust_shapes::").to_owned(),
                r.slot,
                r.role().name(),
                r.method,
            )
        })
        .collect();
    inferred.sort();
    assert_eq!(
        inferred,
        table(&[
            (
                "evt_slot_create_device",
                "EvtChildListCreateDevice",
                "paged",
                DEFAULT_LIST
            ),
            (
                "evt_scan_for_children",
                "EvtChildListScanForChildren",
                "power-up",
                DEFAULT_LIST
            ),
            (
                "evt_identification_copy",
                "EvtChildListIdentificationDescriptionCopy",
                "dispatch",
                DEFAULT_LIST
            ),
            (
                "evt_identification_cleanup",
                "EvtChildListIdentificationDescriptionCleanup",
                "dispatch",
                DEFAULT_LIST
            ),
            (
                "evt_identification_compare",
                "EvtChildListIdentificationDescriptionCompare",
                "dispatch",
                DEFAULT_LIST
            ),
            ("bus_interface_reference", ROUTINE, "dispatch", INTERFACE),
            ("bus_interface_dereference", ROUTINE, "dispatch", INTERFACE),
            ("bus_get_slot_count", ROUTINE, "dispatch", INTERFACE),
            ("bus_set_slot_power", ROUTINE, "dispatch", INTERFACE),
            ("bus_notify_child_event", ROUTINE, "dispatch", INTERFACE),
            (
                "evt_process_query_interface",
                "EvtDeviceProcessQueryInterfaceRequest",
                "paged",
                INTERFACE
            ),
            (
                "evt_driver_device_add",
                "EvtDriverDeviceAdd",
                "paged",
                "WdfDriverCreate"
            ),
        ])
    );
    // Every registered function also has a role record, and the two agree: one root each,
    // from the record, with the registered slot.
    for r in &report.registrations.list {
        let roots: Vec<_> = report
            .roots
            .iter()
            .filter(|root| root.symbol == r.symbol)
            .collect();
        assert_eq!(roots.len(), 1, "{}", r.symbol);
        assert_eq!(roots[0].origin, Origin::Record, "{}", r.symbol);
        assert_eq!(roots[0].role, r.role().name(), "{}", r.symbol);
        assert_eq!(roots[0].slot, Some(r.slot), "{}", r.symbol);
    }
    assert_eq!(run([&image.image]).code, 0);
}
