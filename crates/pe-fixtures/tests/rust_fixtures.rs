//! Builds each Rust fixture (one cargo workspace, Debian's rustc with -Zbuild-std=core, lld-link)
//! and checks the image: sections, the role records the placement attributes embed, and the
//! instructions each fixture is about.

mod common;

use common::{
    CODE, CODE_DISCARDABLE, CODE_NOT_PAGED, Edge, Loaded, assert_section, edges, function,
    public_rva, rva_of,
};
use pagewise_roles::{Role, parse_records};
use pe_fixtures::Image;

fn build(name: &str) -> (Image, Loaded, Vec<common::Function>) {
    common::open(pe_fixtures::rust(name))
}

/// Parses `.pwrole`, asserts every record points into its role's section and at the start of a
/// function, and returns (role, function name) pairs, sorted.
fn records(loaded: &Loaded, functions: &[common::Function]) -> Vec<(Role, String)> {
    assert_section(loaded, ".pwrole", 0x4200_0040);
    let data = loaded.section_data(".pwrole");
    let mut out = Vec::new();
    for record in parse_records(&data) {
        let record = record.expect("a well-formed record");
        let rva = record.address - loaded.image_base;
        let section = loaded
            .section_of_rva(rva)
            .expect("record points into the image");
        assert_eq!(section.name, record.role.section(), "{record:?}");
        let function = functions
            .iter()
            .find(|f| u64::from(f.rva) == rva)
            .unwrap_or_else(|| panic!("record {record:?} points at no function start"));
        out.push((record.role, function.name.clone()));
    }
    out.sort();
    out
}

fn assert_in(loaded: &Loaded, functions: &[common::Function], name: &str, section: &str) {
    let rva = rva_of(functions, name);
    let found = loaded
        .section_of_rva(rva)
        .map_or("<none>", |s| s.name.as_str());
    assert_eq!(found, section, "{name} at {rva:#x}");
}

#[test]
fn rust_clean() {
    let (_, loaded, functions) = build("rust_clean");
    assert_section(&loaded, ".text", CODE_NOT_PAGED);
    assert_section(&loaded, "PAGE", CODE);
    assert_section(&loaded, "PAGEPWR", CODE);
    assert_section(&loaded, "INIT", CODE_DISCARDABLE);
    let found = records(&loaded, &functions);
    let expected = [
        (Role::Init, "rust_clean::DriverEntry"),
        (Role::Paged, "rust_clean::configure_queues"),
        (Role::Paged, "rust_clean::evt_driver_device_add"),
        (Role::PowerDown, "rust_clean::evt_device_d0_exit"),
        (Role::PowerUp, "rust_clean::evt_device_d0_entry"),
        (Role::Dispatch, "rust_clean::evt_io_device_control"),
    ];
    let mut expected: Vec<(Role, String)> =
        expected.iter().map(|&(r, n)| (r, n.to_owned())).collect();
    expected.sort();
    assert_eq!(found, expected);
    let d0 = edges(
        &loaded,
        function(&functions, "rust_clean::evt_device_d0_entry"),
    );
    assert!(
        d0.contains(&Edge::Call(rva_of(
            &functions,
            "rust_clean::reset_hardware"
        ))),
        "{d0:?}"
    );
    assert_in(&loaded, &functions, "rust_clean::reset_hardware", ".text");
    // paged_code!() in a #[paged] body: a call to the resident violation handler.
    let add = edges(
        &loaded,
        function(&functions, "rust_clean::evt_driver_device_add"),
    );
    assert!(
        add.contains(&Edge::Call(rva_of(&functions, "wdk::paged_code_violation"))),
        "{add:?}"
    );
}

#[test]
fn rust_violation() {
    let (_, loaded, functions) = build("rust_violation");
    assert_section(&loaded, ".text", CODE_NOT_PAGED);
    let found = records(&loaded, &functions);
    assert!(found.contains(&(
        Role::PowerUp,
        "rust_violation::evt_device_d0_entry".to_owned()
    )));
    assert!(found.contains(&(Role::Paged, "rust_violation::load_calibration".to_owned())));
    assert!(found.contains(&(Role::Dispatch, "rust_violation::evt_io_stop".to_owned())));
    assert_in(
        &loaded,
        &functions,
        "rust_violation::load_calibration",
        "PAGE",
    );
    let d0 = edges(
        &loaded,
        function(&functions, "rust_violation::evt_device_d0_entry"),
    );
    let target = rva_of(&functions, "rust_violation::load_calibration");
    assert!(d0.contains(&Edge::Call(target)), "a call into PAGE: {d0:?}");
}

#[test]
fn rust_generic_inline() {
    let (_, loaded, functions) = build("rust_generic_inline");
    records(&loaded, &functions);
    // 1. The generic instantiation is resident although its only caller is paged.
    assert_in(
        &loaded,
        &functions,
        "rust_generic_inline::checksum<",
        ".text",
    );
    let prepare = edges(
        &loaded,
        function(
            &functions,
            "rust_generic_inline::evt_device_prepare_hardware",
        ),
    );
    assert!(
        prepare.contains(&Edge::Call(rva_of(
            &functions,
            "rust_generic_inline::checksum<"
        ))),
        "{prepare:?}"
    );
    assert_in(
        &loaded,
        &functions,
        "rust_generic_inline::evt_device_prepare_hardware",
        "PAGE",
    );
    // 2. The inline(always) PAGE helper left no out-of-line copy, and its caller calls nothing in PAGE.
    assert!(
        functions.iter().all(|f| !f.name.ends_with("::scale")),
        "scale was inlined"
    );
    let page = loaded.section("PAGE").clone();
    let d0 = edges(
        &loaded,
        function(&functions, "rust_generic_inline::evt_device_d0_entry"),
    );
    assert!(
        !d0.iter()
            .any(|e| matches!(e, Edge::Call(t) | Edge::Jump(t) if page.contains(*t))),
        "{d0:?}"
    );
    // 3. The paged helper stays out of line and the dispatch root calls it.
    let control = edges(
        &loaded,
        function(&functions, "rust_generic_inline::evt_io_device_control"),
    );
    let read_config = rva_of(&functions, "rust_generic_inline::read_config");
    assert!(page.contains(read_config));
    assert!(
        control.contains(&Edge::Call(read_config)) || control.contains(&Edge::Jump(read_config)),
        "{control:?}"
    );
}

#[test]
fn rust_no_records() {
    let (_, loaded, functions) = build("rust_no_records");
    assert!(!loaded.names().contains(&".pwrole"), "{:?}", loaded.names());
    assert_section(&loaded, "PAGE", CODE);
    assert_in(
        &loaded,
        &functions,
        "rust_no_records::evt_device_d0_entry",
        ".text",
    );
    assert_in(&loaded, &functions, "rust_no_records::evt_io_stop", ".text");
    assert_in(
        &loaded,
        &functions,
        "rust_no_records::load_calibration",
        "PAGE",
    );
    assert_in(
        &loaded,
        &functions,
        "rust_no_records::prepare_registers",
        "INIT",
    );
    let d0 = edges(
        &loaded,
        function(&functions, "rust_no_records::evt_device_d0_entry"),
    );
    assert!(
        d0.contains(&Edge::Call(rva_of(
            &functions,
            "rust_no_records::load_calibration"
        ))),
        "{d0:?}"
    );
}

#[test]
fn rust_wdf_shape() {
    let (image, loaded, functions) = build("rust_wdf_shape");
    records(&loaded, &functions);
    let table = u64::from(public_rva(&image, "WdfFunctions_01033").expect("WdfFunctions_01033"));
    let count = rva_of(&functions, "rust_wdf_shape::wdf::get_wdf_function_count");
    for name in [
        "rust_wdf_shape::evt_device_d0_entry",
        "rust_wdf_shape::evt_io_device_control",
        "rust_wdf_shape::evt_driver_device_add",
        "rust_wdf_shape::DriverEntry",
    ] {
        let found = edges(&loaded, function(&functions, name));
        assert!(
            found.contains(&Edge::Load(table)),
            "{name} loads the table: {found:?}"
        );
        assert!(
            found.contains(&Edge::Call(count)),
            "{name} calls the count: {found:?}"
        );
        // The entry is loaded into a register and called or jumped through it.
        assert!(found.contains(&Edge::IndirectRegister), "{name}: {found:?}");
    }
}

/// Two feature sets of one fixture are two cached images that stay side by side (building one
/// does not prune the other), the order and repetition of features do not matter, and the
/// features reach the build: only the `control` image exports `probe_control`.
#[test]
fn rust_shapes() {
    let (_, loaded, functions) = build("rust_shapes");
    assert_section(&loaded, ".text", CODE_NOT_PAGED);
    assert_section(&loaded, "PAGE", CODE);
    let found = records(&loaded, &functions);
    let mut expected: Vec<(Role, String)> = [
        (Role::Init, "DriverEntry"),
        (Role::Paged, "evt_driver_device_add"),
        (Role::Paged, "evt_slot_create_device"),
        (Role::Paged, "evt_process_query_interface"),
        (Role::Paged, "slot_list_config"),
        (Role::Paged, "slot_interface"),
        (Role::PowerUp, "evt_scan_for_children"),
        (Role::Dispatch, "evt_identification_copy"),
        (Role::Dispatch, "evt_identification_compare"),
        (Role::Dispatch, "evt_identification_cleanup"),
        (Role::Dispatch, "bus_interface_reference"),
        (Role::Dispatch, "bus_interface_dereference"),
        (Role::Dispatch, "bus_get_slot_count"),
        (Role::Dispatch, "bus_set_slot_power"),
        (Role::Dispatch, "bus_notify_child_event"),
    ]
    .iter()
    .map(|&(r, n)| (r, format!("rust_shapes::{n}")))
    .collect();
    expected.sort();
    assert_eq!(found, expected);
    // The helpers fill the structures the caller hands them: each takes the addresses of the
    // callbacks it stores.
    let interface = edges(&loaded, function(&functions, "rust_shapes::slot_interface"));
    for routine in [
        "bus_interface_reference",
        "bus_interface_dereference",
        "bus_get_slot_count",
        "bus_set_slot_power",
        "bus_notify_child_event",
    ] {
        let rva = rva_of(&functions, &format!("rust_shapes::{routine}"));
        assert!(
            interface.contains(&Edge::Address(rva)),
            "{routine}: {interface:?}"
        );
    }
}

#[test]
fn feature_sets_are_separate_images() {
    let plain = pe_fixtures::rust("core_no_panic").unwrap_or_else(|error| panic!("{error}"));
    let control = pe_fixtures::rust_with_features("core_no_panic", &["control"])
        .unwrap_or_else(|error| panic!("{error}"));
    let again = pe_fixtures::rust_with_features("core_no_panic", &["control", "control"])
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(control, again);
    assert_ne!(plain.image.parent(), control.image.parent());
    for image in [&plain, &control] {
        assert!(image.image.is_file(), "{}", image.image.display());
        assert!(image.pdb.is_file(), "{}", image.pdb.display());
    }
    let exports = |image: &Image| {
        let bytes = std::fs::read(&image.image).expect("read the image");
        let file = object::read::pe::PeFile64::parse(&*bytes).expect("a PE image");
        object::Object::exports(&file)
            .expect("export table")
            .iter()
            .any(|export| export.name() == b"probe_control")
    };
    assert!(!exports(&plain));
    assert!(exports(&control));
}

#[test]
fn a_feature_that_is_not_a_plain_name_is_an_error() {
    let error = pe_fixtures::rust_with_features("core_no_panic", &["pagewise-core/std"])
        .expect_err("not a plain feature name");
    assert!(error.to_string().contains("pagewise-core/std"), "{error}");
}
