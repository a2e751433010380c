//! Builds each C fixture with Debian's clang and lld-link and checks that the image is what the
//! pagecheck tests take it for: sections and flags, where each function landed, and the
//! instruction each fixture is about (a call, a tail jump, an address taken, an indirect call).

mod common;

use common::{
    CODE, CODE_DISCARDABLE, CODE_NOT_PAGED, Edge, Loaded, assert_section, edges, function,
    functions, load, public_rva, rva_of,
};
use pe_fixtures::Image;

fn build(name: &str) -> (Image, Loaded, Vec<common::Function>) {
    common::open(pe_fixtures::c(name))
}

/// The function `name` lies in `section`.
fn assert_in(loaded: &Loaded, functions: &[common::Function], name: &str, section: &str) {
    let rva = rva_of(functions, name);
    let found = loaded
        .section_of_rva(rva)
        .map_or("<none>", |s| s.name.as_str());
    assert_eq!(found, section, "{name} at {rva:#x}");
}

/// The well-formed flags every fixture but `bad_sections` has.
fn assert_driver_sections(loaded: &Loaded) {
    assert_section(loaded, ".text", CODE_NOT_PAGED);
    assert_section(loaded, "INIT", CODE_DISCARDABLE);
    for section in &loaded.sections {
        // PAGE* is pageable by design, INIT and .reloc are discardable.
        if section.name.starts_with("PAGE") || matches!(section.name.as_str(), "INIT" | ".reloc") {
            continue;
        }
        assert_ne!(
            section.characteristics & object::pe::IMAGE_SCN_MEM_NOT_PAGED,
            0,
            "{} {:#x} should be resident",
            section.name,
            section.characteristics
        );
    }
}

#[test]
fn clean() {
    let (_, loaded, functions) = build("clean");
    assert_driver_sections(&loaded);
    assert_section(&loaded, "PAGE", CODE);
    assert_section(&loaded, ".pdata", 0x4800_0040);
    for (name, section) in [
        ("DriverEntry", "INIT"),
        ("EvtDriverDeviceAdd", "PAGE"),
        ("ConfigureQueues", "PAGE"),
        ("EvtDeviceD0Entry", ".text"),
        ("ResetHardware", ".text"),
        ("EvtIoDeviceControl", ".text"),
        ("CountRequest", ".text"),
    ] {
        assert_in(&loaded, &functions, name, section);
    }
    let d0 = edges(&loaded, function(&functions, "EvtDeviceD0Entry"));
    assert!(
        d0.contains(&Edge::Call(rva_of(&functions, "ResetHardware"))),
        "{d0:?}"
    );
    let add = edges(&loaded, function(&functions, "EvtDriverDeviceAdd"));
    assert!(
        add.contains(&Edge::Call(rva_of(&functions, "ConfigureQueues"))),
        "{add:?}"
    );
    // DriverEntry calls paged code (allowed in INIT).
    let entry = edges(&loaded, function(&functions, "DriverEntry"));
    assert!(
        entry.contains(&Edge::Call(rva_of(&functions, "EvtDriverDeviceAdd"))),
        "{entry:?}"
    );
}

#[test]
fn resident_calls_paged() {
    let (_, loaded, functions) = build("resident_calls_paged");
    assert_driver_sections(&loaded);
    assert_in(&loaded, &functions, "EvtDeviceD0Entry", ".text");
    assert_in(&loaded, &functions, "LoadCalibration", "PAGE");
    let d0 = edges(&loaded, function(&functions, "EvtDeviceD0Entry"));
    assert!(
        d0.contains(&Edge::Call(rva_of(&functions, "LoadCalibration"))),
        "{d0:?}"
    );
}

#[test]
fn deep_chain() {
    let (_, loaded, functions) = build("deep_chain");
    assert_driver_sections(&loaded);
    let chain = [
        "EvtDeviceD0Entry",
        "RestoreContext",
        "ReprogramRegisters",
        "ApplyDefaults",
        "ReadDefaultsFromRegistry",
    ];
    for (index, name) in chain.iter().enumerate() {
        let section = if index + 1 == chain.len() {
            "PAGE"
        } else {
            ".text"
        };
        assert_in(&loaded, &functions, name, section);
    }
    for pair in chain.windows(2) {
        let from = edges(&loaded, function(&functions, pair[0]));
        assert!(
            from.contains(&Edge::Call(rva_of(&functions, pair[1]))),
            "{} -> {}: {from:?}",
            pair[0],
            pair[1]
        );
    }
    let other = edges(&loaded, function(&functions, "OtherPath"));
    assert!(other.contains(&Edge::Call(rva_of(&functions, "ReprogramRegisters"))));
}

#[test]
fn tail_jump() {
    let (_, loaded, functions) = build("tail_jump");
    assert_driver_sections(&loaded);
    assert_in(&loaded, &functions, "EvtDeviceD0Entry", ".text");
    assert_in(&loaded, &functions, "ResumeFirmware", "PAGE");
    let target = rva_of(&functions, "ResumeFirmware");
    let d0 = edges(&loaded, function(&functions, "EvtDeviceD0Entry"));
    assert!(d0.contains(&Edge::Jump(target)), "a jmp into PAGE: {d0:?}");
    assert!(!d0.contains(&Edge::Call(target)), "and no call: {d0:?}");
}

#[test]
fn root_in_page() {
    let (_, loaded, functions) = build("root_in_page");
    assert_driver_sections(&loaded);
    assert_in(&loaded, &functions, "EvtDeviceD0Entry", "PAGE");
    assert_in(&loaded, &functions, "EvtIoRead", ".text");
    assert_in(&loaded, &functions, "ResetCounters", ".text");
}

#[test]
fn paged_calls_init() {
    let (_, loaded, functions) = build("paged_calls_init");
    assert_driver_sections(&loaded);
    assert_in(&loaded, &functions, "EvtDevicePrepareHardware", "PAGE");
    assert_in(&loaded, &functions, "ParseRegistryDefaults", "INIT");
    assert_in(&loaded, &functions, "InitOnlyCallback", "INIT");
    assert_in(&loaded, &functions, "EvtDeviceD0Entry", ".text");
    let prepare = edges(&loaded, function(&functions, "EvtDevicePrepareHardware"));
    assert!(
        prepare.contains(&Edge::Call(rva_of(&functions, "ParseRegistryDefaults"))),
        "{prepare:?}"
    );
    let d0 = edges(&loaded, function(&functions, "EvtDeviceD0Entry"));
    assert!(
        d0.contains(&Edge::Address(rva_of(&functions, "InitOnlyCallback"))),
        "{d0:?}"
    );
}

#[test]
fn indirect_call() {
    let (_, loaded, functions) = build("indirect_call");
    assert_driver_sections(&loaded);
    let d0 = edges(&loaded, function(&functions, "EvtDeviceD0Entry"));
    assert!(
        d0.contains(&Edge::IndirectMemory {
            base_is_rip: false,
            displacement: 8
        }),
        "call [reg+8]: {d0:?}"
    );
    let control = edges(&loaded, function(&functions, "EvtIoDeviceControl"));
    assert!(
        control.contains(&Edge::IndirectRegister),
        "call reg: {control:?}"
    );
    for edges in [&d0, &control] {
        assert!(
            !edges
                .iter()
                .any(|e| matches!(e, Edge::Call(_) | Edge::Jump(_))),
            "no direct call leaves the roots: {edges:?}"
        );
    }
}

#[test]
fn wdf_call_shape() {
    let (image, loaded, functions) = build("wdf_call_shape");
    assert_driver_sections(&loaded);
    let table = u64::from(public_rva(&image, "WdfFunctions_01033").expect("WdfFunctions_01033"));
    let globals = u64::from(public_rva(&image, "WdfDriverGlobals").expect("WdfDriverGlobals"));
    assert_eq!(
        loaded.section_of_rva(table).map(|s| s.name.as_str()),
        Some(".data")
    );
    // (function, table index, called through [reg + index*8] directly?)
    for (name, index, direct) in [
        ("EvtDeviceD0Entry", 44_u64, true),
        ("EvtIoDeviceControl", 265, false),
        ("EvtDriverDeviceAdd", 75, true),
        ("EvtDriverDeviceAdd", 152, true),
        ("DriverEntry", 116, true),
    ] {
        let found = edges(&loaded, function(&functions, name));
        assert!(
            found.contains(&Edge::Load(table)),
            "{name} loads the table: {found:?}"
        );
        assert!(
            found.contains(&Edge::Load(globals)),
            "{name} loads the globals: {found:?}"
        );
        if direct {
            assert!(
                found.contains(&Edge::IndirectMemory {
                    base_is_rip: false,
                    displacement: index * 8
                }),
                "{name}: call [reg + {index}*8]: {found:?}"
            );
        } else {
            assert!(
                found.contains(&Edge::IndirectRegister),
                "{name}: jmp reg: {found:?}"
            );
        }
    }
}

/// `call [reg + index*8]` edges through the `WdfFunctions` table entry `index` in `edges`.
fn table_calls(edges: &[Edge], index: u64) -> usize {
    edges
        .iter()
        .filter(|&&e| {
            e == Edge::IndirectMemory {
                base_is_rip: false,
                displacement: index * 8,
            }
        })
        .count()
}

#[test]
fn reg_shapes() {
    for name in ["reg_shapes_o0", "reg_shapes_os", "reg_shapes_o2"] {
        let (_, loaded, functions) = build(name);
        assert_driver_sections(&loaded);
        assert_section(&loaded, "PAGE", CODE);
        for (function, section) in [
            ("DriverEntry", "INIT"),
            ("EvtDriverDeviceAdd", "PAGE"),
            ("FillQueueConfig", "PAGE"),
            ("EvtSlotCreateDevice", "PAGE"),
            ("EvtPortCreateDevice", "PAGE"),
            ("EvtProcessQueryInterface", "PAGE"),
            ("EvtTargetQueryRemove", "PAGE"),
            ("EvtPollTimer", "PAGE"),
            ("LogCompletion", "PAGE"),
            ("EvtPolicyStateChange", "PAGE"),
            ("PagedHandler", "PAGE"),
            ("EvtScanForChildren", ".text"),
            ("EvtIdentificationCompare", ".text"),
            ("BusGetSlotCount", ".text"),
            ("SyncResetPort", ".text"),
            ("SynchronizeCommand", ".text"),
            ("DispatchHandler", ".text"),
        ] {
            assert_in(&loaded, &functions, function, section);
        }
        // WdfInterruptSynchronize (index 143): each case takes its callback's address; -O0
        // calls the entry in each case (`mov rax, [rax + 0x478]; call rax`), -Os and -O2 call
        // it once, after the cases join (`call [rax + 0x478]`).
        let sync = edges(&loaded, function(&functions, "SynchronizeCommand"));
        for callback in ["SyncResetPort", "SyncStartPort", "SyncStopPort"] {
            assert!(
                sync.contains(&Edge::Address(rva_of(&functions, callback))),
                "{name}: {callback} {sync:?}"
            );
        }
        let through_register = sync
            .iter()
            .filter(|&&e| e == Edge::IndirectRegister)
            .count();
        if name == "reg_shapes_o0" {
            assert_eq!(
                (table_calls(&sync, 143), through_register),
                (0, 3),
                "{sync:?}"
            );
        } else {
            assert_eq!(
                (table_calls(&sync, 143), through_register),
                (1, 0),
                "{name}: {sync:?}"
            );
        }
        // FillQueueConfig stores one of three callbacks, a branch each.
        let fill = edges(&loaded, function(&functions, "FillQueueConfig"));
        for callback in ["EvtPortRead", "EvtPortWrite", "EvtPortDeviceControl"] {
            assert!(
                fill.contains(&Edge::Address(rva_of(&functions, callback))),
                "{name}: {callback} {fill:?}"
            );
        }
    }
}

#[test]
fn object_lock() {
    for name in ["object_lock_passive", "object_lock_dispatch"] {
        let (_, loaded, functions) = build(name);
        assert_driver_sections(&loaded);
        for (function, section) in [
            ("RecordUnderDeviceLock", ".text"),
            ("AppendHistory", "PAGE"),
            ("ResetUnderQueueLock", "PAGE"),
            ("EvtDriverDeviceAdd", "PAGE"),
        ] {
            assert_in(&loaded, &functions, function, section);
        }
        // WdfObjectAcquireLock (310) is called through the table (`call [rax + 0x9b0]`) in both
        // holders; RecordUnderDeviceLock calls AppendHistory before the release (311).
        for holder in ["RecordUnderDeviceLock", "ResetUnderQueueLock"] {
            let found = edges(&loaded, function(&functions, holder));
            assert_eq!(table_calls(&found, 310), 1, "{name}: {holder} {found:?}");
        }
        let record = edges(&loaded, function(&functions, "RecordUnderDeviceLock"));
        let append = Edge::Call(rva_of(&functions, "AppendHistory"));
        let acquire = Edge::IndirectMemory {
            base_is_rip: false,
            displacement: 310 * 8,
        };
        let release = Edge::IndirectMemory {
            base_is_rip: false,
            displacement: 311 * 8,
        };
        let at = |edge: Edge| {
            record
                .iter()
                .position(|&e| e == edge)
                .unwrap_or_else(|| panic!("{name}: no {edge:?} in {record:?}"))
        };
        assert!(
            at(acquire) < at(append) && at(append) < at(release),
            "{name}: {record:?}"
        );
    }
}

#[test]
fn bad_sections() {
    let (_, loaded, functions) = build("bad_sections");
    assert_section(&loaded, ".text", CODE);
    assert_section(&loaded, "INIT", CODE);
    assert_section(&loaded, "page", CODE);
    assert_section(&loaded, ".retplne", 0);
    assert_eq!(loaded.section(".retplne").size, 2);
    assert!(loaded.sections.iter().all(|s| s.name != "PAGE"));
    assert_in(&loaded, &functions, "TrimCaches", "page");
}

#[test]
fn rebuild_is_cached() {
    let first = pe_fixtures::c("clean").expect("clean");
    let started = std::time::Instant::now();
    let second = pe_fixtures::c("clean").expect("clean");
    assert_eq!(first, second, "same inputs, same cached image");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "a cached fixture costs hashing only"
    );
}

#[test]
fn generated_source_builds() {
    let source = pe_fixtures::generate_large_c(200, 3);
    let image = pe_fixtures::c_source("generated_small", &source, &[]).expect("generated");
    let loaded = load(&image);
    let functions = functions(&image);
    assert!(functions.len() >= 200, "{} functions", functions.len());
    for section in [".text", "PAGE", "PAGEPWR", "INIT"] {
        assert!(
            loaded.names().contains(&section),
            "{section} in {:?}",
            loaded.names()
        );
    }
    // f0 is the resident root the benchmark names.
    assert_in(&loaded, &functions, "f0", ".text");
}

#[test]
fn missing_fixture_is_an_error_naming_the_file() {
    let error = pe_fixtures::c("no_such_fixture").expect_err("absent");
    assert!(error.to_string().contains("no_such_fixture.c"), "{error}");
}

#[test]
fn compile_error_carries_clang_stderr() {
    let error = pe_fixtures::c_source(
        "broken",
        "int DriverEntry(void) { return undeclared; }",
        &[],
    )
    .expect_err("does not compile");
    let message = error.to_string();
    assert!(message.contains("clang"), "{message}");
    assert!(message.contains("undeclared"), "{message}");
}
