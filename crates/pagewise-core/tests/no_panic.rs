//! No panic and no formatting in the driver's resident use of pagewise-core, checked on a
//! linked image rather than claimed.
//!
//! The fixture `core_no_panic` (a member of `crates/pagecheck/tests/fixtures/rust`, built by
//! `pe-fixtures`) exports every `DeviceState`, `ioctl`, `image` and `settings` function the
//! driver calls, with opaque arguments, built like the driver (its `core-lto` profile: opt-level
//! 3, fat LTO, one codegen unit, `panic = "abort"`). Its panic handler calls `KeBugCheckEx`,
//! imported from `ntoskrnl.exe`. If any path of the probed code could panic (an index the
//! compiler cannot prove in bounds, an overflow check, an `unwrap`, a formatting call inside a
//! panic message), the handler would be reachable and the image would import `KeBugCheckEx`.
//! The crate's clippy lints (`indexing_slicing`, `arithmetic_side_effects`, `unwrap_used`, ...)
//! keep those paths out of the source; this test shows the compiler agrees.
//!
//! The `control` feature adds one function with an unprovable index, to show that the check
//! does see a panic path when there is one.

use object::Object;
use object::read::pe::PeFile64;

/// The image of `core_no_panic` with `features`, built or found in the fixture cache.
fn build(features: &[&str]) -> Vec<u8> {
    let image = pe_fixtures::rust_with_features("core_no_panic", features)
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::read(&image.image).unwrap_or_else(|e| panic!("{}: {e}", image.image.display()))
}

fn imports(image: &[u8]) -> Vec<String> {
    let file = PeFile64::parse(image).expect("object parses the probe");
    file.imports()
        .expect("import table")
        .into_iter()
        .map(|import| String::from_utf8_lossy(import.name()).into_owned())
        .collect()
}

fn exports(image: &[u8]) -> Vec<String> {
    let file = PeFile64::parse(image).expect("object parses the probe");
    file.exports()
        .expect("export table")
        .into_iter()
        .map(|export| String::from_utf8_lossy(export.name()).into_owned())
        .collect()
}

#[test]
fn probed_driver_paths_keep_no_panic_handler() {
    let image = build(&[]);
    let exported = exports(&image);
    for probe in [
        "probe_device_add",
        "probe_power",
        "probe_pageability",
        "probe_ioctl",
        "probe_timer",
        "probe_config",
    ] {
        assert!(
            exported.iter().any(|e| e == probe),
            "{probe} not in the image"
        );
    }
    let imported = imports(&image);
    assert!(
        !imported.iter().any(|i| i == "KeBugCheckEx"),
        "a panic path survived in pagewise-core's driver-side code: imports {imported:?}"
    );
}

#[test]
fn the_check_sees_a_panic_path_when_there_is_one() {
    let image = build(&["control"]);
    assert!(exports(&image).iter().any(|e| e == "probe_control"));
    assert!(
        imports(&image).iter().any(|i| i == "KeBugCheckEx"),
        "the control's out-of-bounds index should keep the panic handler"
    );
}
