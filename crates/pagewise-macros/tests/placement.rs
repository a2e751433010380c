//! Runs expanded code on the test host: the role records, the `Placed` impls, the inserted
//! `paged_code!()`, and (on Linux, where ELF takes any section name) the sections the
//! functions and records end up in after linking.

// `register` is disallowed in the driver (clippy.toml); these tests call placed callbacks
// through it on purpose.
#![allow(clippy::disallowed_methods)]

use pagewise_macros::{init, paged, resident};
use pagewise_roles::{Placed, PlacementRole, Role, RoleRecord, register, slot};
use std::any::type_name;

/// Stand-in for `EvtDeviceD0Entry`.
///
/// # Safety
///
/// None needed: `unsafe extern "C"` only to have the shape of a WDF callback.
#[resident(power_up)]
#[must_use]
pub unsafe extern "C" fn power_up_fn(value: u32) -> u32 {
    value + 1
}

/// Stand-in for `EvtDriverDeviceAdd`.
///
/// # Safety
///
/// None needed: `unsafe extern "C"` only to have the shape of a WDF callback.
#[paged]
#[must_use]
pub unsafe extern "C" fn paged_fn(value: u32) -> u32 {
    value * 2
}

/// Stand-in for `EvtDeviceD0Exit`.
#[paged(power_down)]
#[must_use]
pub fn power_down_fn(value: u32) -> u32 {
    value * 3
}

/// Stand-in for a helper only `DriverEntry` calls.
#[init]
#[must_use]
pub fn init_fn(a: u8, (b, c): (u8, u8)) -> u8 {
    a + b + c
}

/// Stand-in for `EvtIoDeviceControl`.
#[resident(dispatch)]
pub fn dispatch_fn(value: &mut u8) {
    *value += 1;
}

/// The runtime role of `P`, read through its type-level role marker.
fn role_of<P: Placed>() -> Role {
    <P::Role as PlacementRole>::ROLE
}

/// Checks one placed function: its record, its `Placed` impl and its role marker type.
fn check<P: Placed>(record: &RoleRecord, function: *const (), role: Role, marker: &str) {
    assert_eq!(record.magic, pagewise_roles::RECORD_MAGIC);
    assert_eq!(record.version, pagewise_roles::RECORD_VERSION);
    assert_eq!(Role::from_u16(record.role), Some(role), "{}", P::NAME);
    assert_eq!(record.function, function, "{}", P::NAME);
    assert_eq!(role_of::<P>(), role, "{}", P::NAME);
    assert_eq!(
        type_name::<P::Role>(),
        format!("pagewise_roles::role::{marker}")
    );
}

#[test]
fn records_and_placed_impls_describe_each_function() {
    check::<power_up_fn>(
        power_up_fn::ROLE_RECORD,
        <power_up_fn as Placed>::ADDRESS,
        Role::PowerUp,
        "PowerUp",
    );
    check::<paged_fn>(
        paged_fn::ROLE_RECORD,
        <paged_fn as Placed>::ADDRESS,
        Role::Paged,
        "Paged",
    );
    check::<power_down_fn>(
        power_down_fn::ROLE_RECORD,
        <power_down_fn as Placed>::ADDRESS,
        Role::PowerDown,
        "PowerDown",
    );
    check::<init_fn>(
        init_fn::ROLE_RECORD,
        <init_fn as Placed>::ADDRESS,
        Role::Init,
        "Init",
    );
    check::<dispatch_fn>(
        dispatch_fn::ROLE_RECORD,
        <dispatch_fn as Placed>::ADDRESS,
        Role::Dispatch,
        "Dispatch",
    );
    assert_eq!(<init_fn as Placed>::NAME, "init_fn");
}

/// A callback (an `extern` function) has no value under its name; `Placed::store` (here
/// through `register`, the `tools` feature's door for tests) hands out the function itself.
/// Rust-ABI helpers keep their name as a value.
#[test]
fn stored_functions_are_the_functions() {
    let power_up = register::<slot::EvtDeviceD0Entry, power_up_fn>();
    let paged = register::<slot::EvtDriverDeviceAdd, paged_fn>();
    assert_eq!(power_up as *const (), <power_up_fn as Placed>::ADDRESS);
    assert_eq!(paged as *const (), <paged_fn as Placed>::ADDRESS);
    // SAFETY: the functions only do arithmetic.
    unsafe {
        assert_eq!(power_up(1), 2);
        assert_eq!(paged(3), 6);
    }
    assert_eq!(power_down_fn(3), 9);
    assert_eq!(
        <power_down_fn as Placed>::ADDRESS,
        power_down_fn as *const ()
    );
    assert_eq!(init_fn(1, (2, 3)), 6);
    let mut value = 1;
    dispatch_fn(&mut value);
    assert_eq!(value, 2);
}

#[test]
fn paged_code_runs_first_in_paged_functions_only() {
    let calls = wdk::paged_code_calls;
    let before = calls();
    // SAFETY: arithmetic only.
    let doubled = unsafe { register::<slot::EvtDriverDeviceAdd, paged_fn>()(4) };
    assert_eq!(doubled, 8);
    assert_eq!(calls(), before + 1, "#[paged] inserts paged_code!()");
    assert_eq!(power_down_fn(1), 3);
    assert_eq!(calls(), before + 2, "#[paged(power_down)] inserts it too");
    // SAFETY: arithmetic only.
    let incremented = unsafe { register::<slot::EvtDeviceD0Entry, power_up_fn>()(1) };
    assert_eq!(incremented, 2);
    assert_eq!(init_fn(0, (0, 0)), 0);
    dispatch_fn(&mut 0);
    assert_eq!(
        calls(),
        before + 2,
        "resident and INIT code has no paged_code!()"
    );
}

/// Where the linker put things, read from the test binary itself.
#[cfg(target_os = "linux")]
mod elf {
    use super::{dispatch_fn, init_fn, paged_fn, power_down_fn, power_up_fn};
    use pagewise_roles::Placed;
    use pagewise_roles::{Role, parse_records, section};
    use std::ops::Range;

    // GNU ld and lld define `__start_<name>`/`__stop_<name>` around every output section
    // whose name is a C identifier: INIT, PAGE and PAGEPWR qualify, `.pwrole` does not.
    unsafe extern "C" {
        static __start_INIT: u8;
        static __stop_INIT: u8;
        static __start_PAGE: u8;
        static __stop_PAGE: u8;
        static __start_PAGEPWR: u8;
        static __stop_PAGEPWR: u8;
    }

    fn range(start: *const u8, stop: *const u8) -> Range<usize> {
        start as usize..stop as usize
    }

    fn init() -> Range<usize> {
        range(&raw const __start_INIT, &raw const __stop_INIT)
    }
    fn page() -> Range<usize> {
        range(&raw const __start_PAGE, &raw const __stop_PAGE)
    }
    fn pagepwr() -> Range<usize> {
        range(&raw const __start_PAGEPWR, &raw const __stop_PAGEPWR)
    }

    #[test]
    fn functions_are_in_the_sections_their_attribute_names() {
        let sections = [("INIT", init()), ("PAGE", page()), ("PAGEPWR", pagepwr())];
        let placed = [
            (
                "init_fn",
                <init_fn as Placed>::ADDRESS as usize,
                Some("INIT"),
            ),
            (
                "paged_fn",
                <paged_fn as Placed>::ADDRESS as usize,
                Some("PAGE"),
            ),
            (
                "power_down_fn",
                <power_down_fn as Placed>::ADDRESS as usize,
                Some("PAGEPWR"),
            ),
            (
                "power_up_fn",
                <power_up_fn as Placed>::ADDRESS as usize,
                None,
            ),
            (
                "dispatch_fn",
                <dispatch_fn as Placed>::ADDRESS as usize,
                None,
            ),
        ];
        for (name, address, expected) in placed {
            let found = sections
                .iter()
                .find(|(_, range)| range.contains(&address))
                .map(|(section, _)| *section);
            assert_eq!(found, expected, "{name} at {address:#x}");
        }
    }

    /// The section headers of an ELF64 little-endian file: (name, address, size).
    fn section_headers(image: &[u8]) -> Vec<(String, u64, u64)> {
        let u16_at = |at: usize| u16::from_le_bytes([image[at], image[at + 1]]);
        let u32_at = |at: usize| u32::from_le_bytes(image[at..at + 4].try_into().expect("4"));
        let u64_at = |at: usize| u64::from_le_bytes(image[at..at + 8].try_into().expect("8"));
        assert_eq!(&image[..5], b"\x7fELF\x02", "an ELF64 test binary");
        let offset = usize::try_from(u64_at(0x28)).expect("fits");
        let (entry_size, count) = (usize::from(u16_at(0x3a)), usize::from(u16_at(0x3c)));
        let names_index = usize::from(u16_at(0x3e));
        let header = |index: usize| offset + index * entry_size;
        let names = usize::try_from(u64_at(header(names_index) + 0x18)).expect("fits");
        (0..count)
            .map(|index| {
                let at = header(index);
                let name_at = names + usize::try_from(u32_at(at)).expect("fits");
                let name_len = image[name_at..]
                    .iter()
                    .position(|&b| b == 0)
                    .expect("terminated");
                let name = String::from_utf8_lossy(&image[name_at..name_at + name_len]);
                (name.into_owned(), u64_at(at + 0x10), u64_at(at + 0x20))
            })
            .collect()
    }

    #[test]
    fn records_are_in_the_record_section_and_parse_back() {
        let image = std::fs::read("/proc/self/exe").expect("test binary readable");
        let headers = section_headers(&image);
        let address_of = |name: &str| {
            headers.iter().find(|(n, _, _)| n == name).map_or_else(
                || panic!("no {name} section in the test binary"),
                |&(_, address, size)| (address, size),
            )
        };
        // The binary is position independent: the distance between the link-time and the
        // run-time address of PAGE is the load bias of every section.
        let (page_link, _) = address_of(section::PAGED);
        let bias = (page().start as u64).wrapping_sub(page_link);
        let (records_link, records_size) = address_of(section::ROLE_RECORDS);
        let records_start = usize::try_from(records_link.wrapping_add(bias)).expect("fits");
        let records_size = usize::try_from(records_size).expect("fits");
        let records_range = records_start..records_start + records_size;

        let ours = [
            (
                init_fn::ROLE_RECORD,
                Role::Init,
                <init_fn as Placed>::ADDRESS as usize,
            ),
            (
                paged_fn::ROLE_RECORD,
                Role::Paged,
                <paged_fn as Placed>::ADDRESS as usize,
            ),
            (
                power_down_fn::ROLE_RECORD,
                Role::PowerDown,
                <power_down_fn as Placed>::ADDRESS as usize,
            ),
            (
                power_up_fn::ROLE_RECORD,
                Role::PowerUp,
                <power_up_fn as Placed>::ADDRESS as usize,
            ),
            (
                dispatch_fn::ROLE_RECORD,
                Role::Dispatch,
                <dispatch_fn as Placed>::ADDRESS as usize,
            ),
        ];
        for (record, _, _) in ours {
            let at = std::ptr::from_ref(record) as usize;
            assert!(
                records_range.contains(&at),
                "record at {at:#x} outside {records_range:x?}"
            );
        }

        // SAFETY: `.pwrole` is an allocated, loaded section of this very binary (its
        // run-time range was computed above and holds the records just checked), and
        // nothing writes to it.
        let bytes = unsafe { std::slice::from_raw_parts(records_start as *const u8, records_size) };
        let parsed: Vec<_> = parse_records(bytes)
            .collect::<Result<_, _>>()
            .expect("every record in the section is well-formed");
        for (_, role, function) in ours {
            let address = function as u64;
            assert!(
                parsed
                    .iter()
                    .any(|r| r.role == role && r.address == address),
                "no {role:?} record for {address:#x} in {parsed:x?}"
            );
        }
    }
}
