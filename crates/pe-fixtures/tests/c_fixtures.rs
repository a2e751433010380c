//! Builds each C fixture with Debian's clang and lld-link and checks the image is what the
//! pagecheck tests take it for.

mod common;

use common::{CODE, CODE_DISCARDABLE, CODE_NOT_PAGED, assert_section, load, public_rva};

fn build(name: &str) -> pe_fixtures::Image {
    pe_fixtures::c(name).unwrap_or_else(|error| panic!("{error}"))
}

/// The function `name` lies in `section`.
fn assert_in(image: &pe_fixtures::Image, loaded: &common::Loaded, name: &str, section: &str) {
    let rva = public_rva(image, name).unwrap_or_else(|| panic!("no public symbol {name}"));
    let found = loaded
        .section_of_rva(u64::from(rva))
        .map_or("<none>", |s| s.name.as_str());
    assert_eq!(found, section, "{name} at {rva:#x}");
}

#[test]
fn clean() {
    let image = build("clean");
    let loaded = load(&image);
    assert_section(&loaded, ".text", CODE_NOT_PAGED);
    assert_section(&loaded, "PAGE", CODE);
    assert_section(&loaded, "INIT", CODE_DISCARDABLE);
    assert_in(&image, &loaded, "DriverEntry", "INIT");
    assert_in(&image, &loaded, "EvtDriverDeviceAdd", "PAGE");
    assert_in(&image, &loaded, "ConfigureQueues", "PAGE");
    assert_in(&image, &loaded, "EvtDeviceD0Entry", ".text");
    assert_in(&image, &loaded, "ResetHardware", ".text");
    assert_in(&image, &loaded, "EvtIoDeviceControl", ".text");
    // Every other section holding code or data is resident.
    for section in &loaded.sections {
        if matches!(section.name.as_str(), "PAGE" | "INIT" | ".reloc") {
            continue;
        }
        assert_ne!(
            section.characteristics & object::pe::IMAGE_SCN_MEM_NOT_PAGED,
            0,
            "{} {:#x}",
            section.name,
            section.characteristics
        );
    }
}

#[test]
fn rebuild_is_cached() {
    let first = build("clean");
    let started = std::time::Instant::now();
    let second = build("clean");
    assert_eq!(first, second, "same inputs, same cached image");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "a cached fixture costs hashing only"
    );
}
