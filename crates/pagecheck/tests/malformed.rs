//! Bad input never panics: exit status 2 and one line on stderr, for every way an image or
//! a PDB can be wrong, and for usage errors.

mod common;

use common::{assert_bad_input, assert_usage_error, run, scratch};

#[test]
fn missing_and_empty_and_non_pe_files() {
    let dir = scratch("malformed-basic");
    let line = assert_bad_input(&run([dir.join("nope.sys")]), "missing file");
    assert!(line.contains("nope.sys"), "{line}");

    let empty = dir.join("empty.sys");
    std::fs::write(&empty, b"").expect("write");
    assert!(assert_bad_input(&run([&empty]), "empty").contains("empty file"));

    let text = dir.join("text.sys");
    std::fs::write(
        &text,
        b"this is not a portable executable, just some text\n".repeat(4),
    )
    .expect("write");
    assert!(assert_bad_input(&run([&text]), "text").contains("not a PE image"));

    // MZ but no PE header behind e_lfanew.
    let mut mz = vec![0u8; 128];
    mz[..2].copy_from_slice(b"MZ");
    mz[60] = 0x40;
    let mz_path = dir.join("mz.sys");
    std::fs::write(&mz_path, &mz).expect("write");
    assert!(assert_bad_input(&run([&mz_path]), "mz only").contains("not a PE image"));
}

#[test]
fn truncated_images_at_many_offsets() {
    let image = common::c("clean");
    let bytes = std::fs::read(&image.image).expect("read");
    let dir = scratch("malformed-truncated");
    std::fs::copy(&image.pdb, dir.join("cut.pdb")).expect("copy pdb");
    let len = bytes.len();
    for cut in [
        1,
        2,
        63,
        64,
        0x80,
        0x98,
        0x100,
        0x180,
        0x200,
        0x400,
        len / 2,
        len - 8,
        len - 1,
    ] {
        let path = dir.join("cut.sys");
        std::fs::write(&path, &bytes[..cut]).expect("write");
        assert_bad_input(&run([&path]), &format!("cut at {cut:#x} of {len:#x}"));
    }
    // The uncut copy passes, so the failures above come from the cuts.
    let whole = dir.join("cut.sys");
    std::fs::write(&whole, &bytes).expect("write");
    assert_eq!(run([&whole]).code, 0);
}

#[test]
fn missing_pdb_and_pdb_of_another_image() {
    let clean = common::c("clean");
    let other = common::rust("rust_clean");
    let dir = scratch("malformed-pdb");
    let alone = common::copy_to(&clean.image, &dir, "alone.sys");
    let line = assert_bad_input(&run([&alone]), "no pdb");
    assert!(line.contains("no PDB beside the image"), "{line}");
    assert!(line.contains("pass it with --pdb"), "{line}");

    let line = assert_bad_input(
        &run([
            clean.image.as_os_str(),
            "--pdb".as_ref(),
            other.pdb.as_os_str(),
        ]),
        "mismatch",
    );
    assert!(line.contains("does not match"), "{line}");

    // The same mismatch found beside the image: a stale PDB next to a rebuilt driver.
    let stale = common::copy_to(&clean.image, &dir, "stale.sys");
    common::copy_to(&other.pdb, &dir, "stale.pdb");
    // The CodeView record names clean.pdb; stale.pdb is found first by stem.
    let line = assert_bad_input(&run([&stale]), "stale pdb");
    assert!(line.contains("does not match"), "{line}");

    // Not a PDB at all.
    let garbage = dir.join("garbage.pdb");
    std::fs::write(
        &garbage,
        b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0 truncated",
    )
    .expect("write");
    assert_bad_input(
        &run([
            clean.image.as_os_str(),
            "--pdb".as_ref(),
            garbage.as_os_str(),
        ]),
        "garbage pdb",
    );
}

#[test]
fn x86_image_is_rejected() {
    assert!(
        pe_fixtures::tools_missing().is_none(),
        "fixture tools missing: {:?}",
        pe_fixtures::tools_missing()
    );
    let dir = scratch("malformed-x86");
    let src = dir.join("x86.c");
    std::fs::write(
        &src,
        "int __stdcall DriverEntry(void *d, void *r) { return d == r; }\n",
    )
    .expect("write");
    let obj = dir.join("x86.obj");
    let status = std::process::Command::new(pe_fixtures::CLANG)
        .args([
            "--target=i686-pc-windows-msvc",
            "-O2",
            "-ffreestanding",
            "-c",
            "-o",
        ])
        .arg(&obj)
        .arg(&src)
        .status()
        .expect("clang");
    assert!(status.success());
    let sys = dir.join("x86.sys");
    let status = std::process::Command::new(pe_fixtures::LLD_LINK)
        .args([
            "/MACHINE:X86",
            "/DRIVER",
            "/SUBSYSTEM:NATIVE",
            "/NODEFAULTLIB",
            "/ENTRY:DriverEntry",
            "/DEBUG",
        ])
        .arg(format!("/OUT:{}", sys.display()))
        .arg(&obj)
        .status()
        .expect("lld-link");
    assert!(status.success());
    let line = assert_bad_input(&run([&sys]), "x86 image");
    assert!(line.contains("not an x64 image"), "{line}");
}

#[test]
fn unknown_root_symbol_and_bad_root_spec() {
    let clean = common::c("clean");
    let line = assert_bad_input(
        &run([
            clean.image.as_os_str(),
            "--root".as_ref(),
            "power-up=NoSuchFunction".as_ref(),
        ]),
        "unknown root",
    );
    assert!(
        line.contains("unknown root symbol `NoSuchFunction`"),
        "{line}"
    );
    let usage = assert_usage_error(
        &run([
            clean.image.as_os_str(),
            "--root".as_ref(),
            "wake=EvtDeviceD0Entry".as_ref(),
        ]),
        "bad role",
    );
    assert!(usage.contains("unknown role `wake`"), "{usage}");
}

#[test]
fn usage_errors_show_clap_s_whole_message() {
    let usage = assert_usage_error(&run(["x.sys", "--format", "xml"]), "bad format");
    assert!(
        usage.contains("[possible values: text, json, sarif]"),
        "{usage}"
    );
    let usage = assert_usage_error(&run(["x.sys", "--no-such-flag"]), "unknown flag");
    assert!(usage.contains("--no-such-flag"), "{usage}");
    assert!(usage.contains("Usage: cargo pagecheck"), "{usage}");
    let help = run(["pagecheck", "--help"]);
    assert_eq!(help.code, 0);
    for part in [
        "--fail-on-unresolved",
        "--deny",
        "Exit status:",
        "  2  the check could not be made",
    ] {
        assert!(help.stdout.contains(part), "{part}: {}", help.stdout);
    }
}

#[test]
fn without_an_image_outside_a_driver_package_says_what_to_do() {
    // Run in this crate: a package, but not a driver.
    for args in [&[][..], &["pagecheck"][..]] {
        let line = assert_bad_input(&run(args), "no image");
        assert!(line.contains("builds no driver"), "{line}");
    }
}

#[test]
fn closed_stdout_is_not_a_panic() {
    // `cargo pagecheck x.sys --format json | head -1`: the reader goes away mid-report.
    let image = common::c("deep_chain");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cargo-pagecheck"))
        .arg(&image.image)
        .args(["--root", "power-up=EvtDeviceD0Entry", "--format", "sarif"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The verdict survives: the image has a violation.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
}

#[test]
fn an_image_linked_without_debug_says_so_with_or_without_pdb() {
    let clean = common::c("clean");
    let mut bytes = std::fs::read(&clean.image).expect("read");
    // Empty the debug data directory (entry 6 of the PE32+ optional header's 16, at 112 + 6*8).
    let directory = common::optional_header(&bytes) + 112 + 6 * 8;
    bytes[directory..directory + 8].fill(0);
    let path = common::write_variant(&clean, "no-codeview", &bytes);
    for args in [
        vec![path.clone()],
        vec![path.clone(), "--pdb".into(), clean.pdb.clone()],
    ] {
        let line = assert_bad_input(&run(&args), "no CodeView");
        assert!(line.contains("linked without /DEBUG"), "{line}");
        assert!(line.contains("relink with /DEBUG"), "{line}");
    }
}

#[test]
fn pdb_errors_are_told_in_words() {
    let clean = common::c("clean");
    let dir = scratch("malformed-pdb-words");
    let garbage = dir.join("garbage.pdb");
    std::fs::write(&garbage, b"this is not a program database\n".repeat(64)).expect("write");
    let line = assert_bad_input(
        &run([
            clean.image.as_os_str(),
            "--pdb".as_ref(),
            garbage.as_os_str(),
        ]),
        "garbage pdb",
    );
    assert!(line.contains("not a PDB file"), "{line}");
    // A real PDB cut short.
    let whole = std::fs::read(&clean.pdb).expect("read pdb");
    let cut = dir.join("cut.pdb");
    std::fs::write(&cut, &whole[..whole.len() / 3]).expect("write");
    let line = assert_bad_input(
        &run([clean.image.as_os_str(), "--pdb".as_ref(), cut.as_os_str()]),
        "cut pdb",
    );
    assert!(line.contains("PDB"), "{line}");
    for variant in [
        "UnrecognizedFileFormat",
        "UnexpectedEof",
        "PageReferenceOutOfRange",
        "SymbolTooShort",
    ] {
        assert!(!line.contains(variant), "{line}");
    }
}

#[test]
fn a_data_symbol_is_not_a_root() {
    let clean = common::c("clean");
    let line = assert_bad_input(
        &run([
            clean.image.as_os_str(),
            "--root".as_ref(),
            "dispatch=g_lock".as_ref(),
        ]),
        "data root",
    );
    assert!(line.contains("is data, not code"), "{line}");
}

/// A corrupt section name is escaped in the one-line error: no control character (a form
/// feed here) reaches the terminal or splits the line.
#[test]
fn control_characters_in_names_are_escaped() {
    let image = common::c("clean");
    let mut bytes = std::fs::read(&image.image).expect("read");
    // The last section's data ends the file: cutting the file makes it the one reported.
    let (name, header) = common::headers(&bytes)
        .into_iter()
        .last()
        .expect("a section");
    bytes[header + 1] = 0x0c;
    let escaped = format!("{}\\u{{c}}{}", &name[..1], &name[2..]);
    bytes.truncate(bytes.len() - 8);
    let dir = scratch("malformed-names");
    std::fs::copy(&image.pdb, dir.join("names.pdb")).expect("copy pdb");
    let path = dir.join("names.sys");
    std::fs::write(&path, &bytes).expect("write");
    let out = run([&path]);
    let line = assert_bad_input(&out, "control character in a section name");
    assert!(line.contains(&escaped), "{escaped} not in {line}");
    assert!(
        !out.stderr.trim_end().chars().any(char::is_control),
        "{:?}",
        out.stderr
    );
}
