//! No panic and no formatting in the driver's resident use of pagewise-core, checked on a
//! linked image rather than claimed.
//!
//! `tests/fixture-probe` exports every `DeviceState`, `ioctl`, `image` and `settings` function
//! the driver calls, with opaque arguments, built like the driver (release, fat LTO, one codegen
//! unit, `panic = "abort"`). Its panic handler calls `KeBugCheckEx`, imported from
//! `ntoskrnl.exe`. If any path of the probed code could panic (an index the compiler cannot
//! prove in bounds, an overflow check, an `unwrap`, a formatting call inside a panic message),
//! the handler would be reachable and the image would import `KeBugCheckEx`. The crate's clippy
//! lints (`indexing_slicing`, `arithmetic_side_effects`, `unwrap_used`, ...) keep those paths
//! out of the source; this test shows the compiler agrees.
//!
//! The `control` feature adds one function with an unprovable index, to show that the check
//! does see a panic path when there is one.

use object::Object;
use object::read::pe::PeFile64;

mod common;

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
    let image = common::build("fixture-probe", &[]).unwrap_or_else(|e| panic!("{e}"));
    let exported = exports(&image);
    for probe in [
        "probe_device_add",
        "probe_power",
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
    let image = common::build("fixture-probe", &["control"]).unwrap_or_else(|e| panic!("{e}"));
    assert!(exports(&image).iter().any(|e| e == "probe_control"));
    assert!(
        imports(&image).iter().any(|i| i == "KeBugCheckEx"),
        "the control's out-of-bounds index should keep the panic handler"
    );
}
