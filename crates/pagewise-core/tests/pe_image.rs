//! The section lookup on a real PE image.
//!
//! The fixture `core_section_probe` (a member of `crates/pagecheck/tests/fixtures/rust`) is a
//! `no_std` cdylib with one exported function in each of `.text`, `PAGE`, `PAGEPWR` and `INIT`.
//! `pe-fixtures` builds it for `x86_64-pc-windows-msvc` with Debian's rustc and
//! `-Zbuild-std=core` and links it with `lld-link` as a driver (docs/paging.md); this test
//! checks that `pagewise_core::image` finds every exported function in the section its
//! attribute named, and that it agrees with the `object` crate on every section and every RVA.
//!
//! Without the tools the test fails with a line naming them (`cargo xtask setup` installs them),
//! rather than passing without checking anything.

use std::sync::OnceLock;

use object::{Object, ObjectSection, read::pe::PeFile64};
use pagewise_core::image::{
    PeHeaders, PlacementOutcome, PlacementViolation, Placements, SCN_MEM_DISCARDABLE,
    SCN_MEM_NOT_PAGED, check_placement, find_section,
};
use pagewise_ioctl::CallbackId;
use pagewise_roles::Role;

/// The image's bytes, built (or found in the fixture cache) once per test process.
fn image() -> &'static [u8] {
    static IMAGE: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    let built = IMAGE.get_or_init(|| {
        let image = pe_fixtures::rust("core_section_probe").map_err(|e| e.to_string())?;
        std::fs::read(&image.image).map_err(|e| format!("{}: {e}", image.image.display()))
    });
    match built {
        Ok(bytes) => bytes,
        Err(message) => panic!("{message}"),
    }
}

/// Exported function name -> RVA, from `object`'s export table.
fn exports(file: &PeFile64<'_>) -> Vec<(String, u32)> {
    let base = file.relative_address_base();
    file.exports()
        .expect("export table")
        .into_iter()
        .map(|e| {
            let name = String::from_utf8(e.name().to_vec()).expect("ASCII name");
            let rva = u32::try_from(e.address() - base).expect("RVA fits");
            (name, rva)
        })
        .collect()
}

fn name(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn every_function_is_found_in_its_section() {
    let bytes = image();
    let file = PeFile64::parse(bytes).expect("object parses the fixture");
    let expected = [
        ("resident_function", ".text"),
        ("paged_function", "PAGE"),
        ("power_down_function", "PAGEPWR"),
        ("DriverEntry", "INIT"),
    ];
    let exports = exports(&file);
    for (function, section) in expected {
        let &(_, rva) = exports
            .iter()
            .find(|(n, _)| n == function)
            .unwrap_or_else(|| panic!("{function} not exported"));
        let found = find_section(bytes, rva).expect("lookup");
        assert_eq!(name(found.name_bytes()), section, "{function} at {rva:#x}");
        // And a byte inside the function, not only its first one.
        let inside = find_section(bytes, rva + 1).expect("lookup");
        assert_eq!(inside.name, found.name);
    }
}

#[test]
fn section_table_agrees_with_object() {
    let bytes = image();
    let file = PeFile64::parse(bytes).expect("object parses the fixture");
    let headers = PeHeaders::parse(bytes).expect("our parser accepts it");
    let ours: Vec<_> = headers.sections().collect();
    let theirs: Vec<_> = file.sections().collect();
    assert_eq!(ours.len(), theirs.len());
    assert_eq!(usize::from(headers.section_count()), theirs.len());
    let base = file.relative_address_base();
    for (mine, other) in ours.iter().zip(&theirs) {
        let other_name = other.name_bytes().expect("name");
        assert_eq!(mine.name_bytes(), other_name);
        assert_eq!(u64::from(mine.virtual_address), other.address() - base);
        let pe = other.pe_section();
        assert_eq!(mine.virtual_size, pe.virtual_size.get(object::LittleEndian));
        assert_eq!(
            mine.characteristics,
            pe.characteristics.get(object::LittleEndian)
        );
        // Every RVA object places in this section, we place there too: first, last, and
        // the first byte past it is elsewhere.
        let start = u32::try_from(other.address() - base).expect("RVA");
        let size = mine.memory_size();
        assert!(size > 0);
        for rva in [start, start + size / 2, start + size - 1] {
            let hit = headers.section_containing(rva).expect("inside");
            assert_eq!(hit.name_bytes(), other_name, "{rva:#x}");
        }
        if let Ok(next) = headers.section_containing(start + size) {
            assert_ne!(next.name, mine.name);
        }
    }
    // The headers themselves (RVA 0) are in no section.
    assert!(headers.section_containing(0).is_err());
    assert!(headers.section_containing(headers.size_of_image()).is_err());
}

#[test]
fn linker_flags_reach_the_characteristics() {
    let headers = PeHeaders::parse(image()).expect("parses");
    let flags = |wanted: &[u8]| {
        headers
            .sections()
            .find(|s| s.name_bytes() == wanted)
            .map(|s| s.characteristics)
            .expect("section present")
    };
    assert_ne!(flags(b".text") & SCN_MEM_NOT_PAGED, 0);
    assert_ne!(flags(b"INIT") & SCN_MEM_DISCARDABLE, 0);
    assert_eq!(flags(b"PAGE") & SCN_MEM_NOT_PAGED, 0);
    assert_eq!(
        flags(b"PAGEPWR") & (SCN_MEM_NOT_PAGED | SCN_MEM_DISCARDABLE),
        0
    );
}

#[test]
fn self_check_on_the_real_image() {
    let bytes = image();
    let file = PeFile64::parse(bytes).expect("parses");
    let exports = exports(&file);
    let rva = |f: &str| {
        exports
            .iter()
            .find(|(n, _)| n == f)
            .map(|&(_, r)| r)
            .expect("export")
    };
    let headers = PeHeaders::parse(bytes).expect("parses");
    let mut placements = Placements::new();
    let cases = [
        (
            CallbackId::D0Entry,
            Role::PowerUp,
            "resident_function",
            PlacementOutcome::Ok,
        ),
        (
            CallbackId::DeviceAdd,
            Role::Paged,
            "paged_function",
            PlacementOutcome::Ok,
        ),
        (
            CallbackId::D0Exit,
            Role::PowerDown,
            "power_down_function",
            PlacementOutcome::Ok,
        ),
        (
            CallbackId::DriverEntry,
            Role::Init,
            "DriverEntry",
            PlacementOutcome::Ok,
        ),
        // What the self-check must catch: a power-up callback that ended up paged, a
        // dispatch one in INIT, a paged one inlined into .text.
        (
            CallbackId::SelfManagedIoRestart,
            Role::PowerUp,
            "paged_function",
            PlacementOutcome::Violation(PlacementViolation::ResidentInPageable),
        ),
        (
            CallbackId::HoldTimer,
            Role::Dispatch,
            "DriverEntry",
            PlacementOutcome::Violation(PlacementViolation::CalledAfterInit),
        ),
        (
            CallbackId::PrepareHardware,
            Role::Paged,
            "resident_function",
            PlacementOutcome::Violation(PlacementViolation::NotPaged),
        ),
    ];
    for (callback, role, function, expected) in cases {
        assert_eq!(
            placements.record(&headers, callback, role, rva(function)),
            expected,
            "{function} as {role:?}"
        );
    }
    assert_eq!(placements.hazards(), 2);
    assert_eq!(placements.warnings(), 1);
    let recorded = placements.as_slice();
    assert_eq!(recorded.len(), cases.len());
    assert_eq!(&recorded[2].section[..7], b"PAGEPWR");
    assert_eq!(recorded[2].role, Role::PowerDown as u16);
    assert_eq!(recorded[2].rva, rva("power_down_function"));
    for placement in recorded {
        let section = find_section(bytes, placement.rva).expect("found");
        assert_eq!(section.name, placement.section);
        let role = Role::from_u16(placement.role).expect("role");
        assert_eq!(
            check_placement(role, &placement.section).is_err_and(PlacementViolation::is_hazard),
            matches!(
                placements.as_slice().iter().position(|p| p == placement),
                Some(4 | 5)
            )
        );
    }
}

/// Every RVA of the image, one by one: our lookup and `object`'s section table name the same
/// section (or both none).
#[test]
fn every_rva_agrees_with_object() {
    let bytes = image();
    let file = PeFile64::parse(bytes).expect("parses");
    let headers = PeHeaders::parse(bytes).expect("parses");
    let base = file.relative_address_base();
    let theirs = |rva: u32| {
        file.sections()
            .find(|s| {
                let start = s.address() - base;
                (start..start + s.size()).contains(&u64::from(rva))
            })
            .map(|s| s.name_bytes().expect("name").to_vec())
    };
    let mut hits = 0;
    for rva in 0..headers.size_of_image() + 0x100 {
        let ours = headers
            .section_containing(rva)
            .ok()
            .map(|s| s.name_bytes().to_vec());
        assert_eq!(ours, theirs(rva), "{rva:#x}");
        hits += usize::from(ours.is_some());
    }
    assert!(hits > 0);
}
