//! `cargo pagecheck` without an image finds the package's driver as cargo subcommands find
//! their artefact: through `cargo metadata`, in the cargo-make package folder first.

mod common;

use std::path::Path;

use common::run_in;

/// A cargo workspace with two driver packages (cdylibs), `alpha-driver` at the root and
/// `beta` in a member directory.
fn workspace(name: &str) -> std::path::PathBuf {
    let dir = common::scratch(name);
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"alpha-driver\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n\
         [workspace]\nmembers = [\".\", \"beta\"]\n",
    )
    .expect("manifest");
    std::fs::create_dir_all(dir.join("src")).expect("src");
    std::fs::write(dir.join("src/lib.rs"), "").expect("lib");
    std::fs::create_dir_all(dir.join("beta/src")).expect("beta");
    std::fs::write(
        dir.join("beta/Cargo.toml"),
        "[package]\nname = \"beta\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n",
    )
    .expect("beta manifest");
    std::fs::write(dir.join("beta/src/lib.rs"), "").expect("beta lib");
    dir
}

/// Puts a copy of a fixture image (and its PDB, found by the image's stem) at `to`.
fn place(image: &pe_fixtures::Image, to: &Path) {
    std::fs::create_dir_all(to.parent().expect("parent")).expect("dirs");
    std::fs::copy(&image.image, to).expect("image");
    std::fs::copy(&image.pdb, to.with_extension("pdb")).expect("pdb");
}

#[test]
fn the_package_folder_the_build_output_and_the_selection_flags() {
    let dir = workspace("locate-workspace");
    let clean = common::c("reg_driver_o2");
    let mistakes = common::c("reg_mistakes");

    // Nothing built yet: a one-line error naming where it looked.
    let out = run_in(&dir, Vec::<&str>::new());
    let line = common::assert_bad_input(&out, "nothing built");
    assert!(
        line.contains("no built driver for package `alpha-driver`"),
        "{line}"
    );
    assert!(
        line.contains("alpha_driver_package/alpha_driver.sys"),
        "{line}"
    );

    // The cargo-make package folder of the dev profile.
    place(
        &clean,
        &dir.join("target/debug/alpha_driver_package/alpha_driver.sys"),
    );
    let out = run_in(&dir, Vec::<&str>::new());
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("35 roots"), "{}", out.stdout);

    // --release: the plain build output, as the linker wrote it, of the release profile.
    place(&mistakes, &dir.join("target/release/alpha_driver.dll"));
    let out = run_in(&dir, ["--release"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("error[PC003]"), "{}", out.stdout);

    // -p picks the member; --target its target directory; --manifest-path from elsewhere.
    place(
        &clean,
        &dir.join("target/x86_64-pc-windows-msvc/release/beta.sys"),
    );
    let out = run_in(
        &dir,
        [
            "-p",
            "beta",
            "--profile",
            "release",
            "--target",
            "x86_64-pc-windows-msvc",
        ],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let elsewhere = common::scratch("locate-elsewhere");
    let manifest = dir.join("beta/Cargo.toml");
    let out = run_in(
        &elsewhere,
        [
            "--manifest-path".as_ref(),
            manifest.as_os_str(),
            "--release".as_ref(),
        ],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    // Source paths are relative to the workspace root cargo reported.
    let out = run_in(&dir, ["--format", "sarif"]);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("SARIF");
    let root = doc["runs"][0]["originalUriBaseIds"]["SRCROOT"]["uri"]
        .as_str()
        .expect("SRCROOT");
    assert!(root.ends_with("/locate-workspace/"), "{root}");
}

/// cargo-wdk's package folder, in both of its spellings: `<name>_package` (what cargo-wdk
/// 0.2.0's build writes, the cargo-make layout above) and `<package-name>-package` (what its
/// README says), each found without an image argument.
#[test]
fn cargo_wdk_package_folders_are_found() {
    let dir = workspace("locate-cargo-wdk");
    let clean = common::c("reg_driver_o2");

    // The documented layout: target\<profile>\<project-name>-package.
    place(
        &clean,
        &dir.join("target/release/alpha-driver-package/alpha_driver.sys"),
    );
    let out = run_in(&dir, ["--release"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("35 roots"), "{}", out.stdout);

    // What cargo-wdk 0.2.0 writes, beside the DLL of a --target-arch build.
    place(
        &clean,
        &dir.join("target/x86_64-pc-windows-msvc/debug/alpha_driver_package/alpha_driver.sys"),
    );
    let out = run_in(&dir, Vec::<&str>::new());
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);

    // With nothing of a profile built, the error names the cargo-wdk folder too.
    let out = run_in(&dir, ["--profile", "bench"]);
    let line = common::assert_bad_input(&out, "nothing built for that profile");
    assert!(
        line.contains("bench/alpha-driver-package/alpha_driver.sys"),
        "{line}"
    );
}

#[test]
fn report_to_a_file_in_utf8_and_colour_only_when_asked() {
    let image = common::c("reg_mistakes");
    let dir = common::scratch("output-file");
    let file = dir.join("report.sarif");
    let out = common::run([
        image.image.as_os_str(),
        "--format".as_ref(),
        "sarif".as_ref(),
        "--output".as_ref(),
        file.as_os_str(),
    ]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    let bytes = std::fs::read(&file).expect("written");
    // UTF-8 without a byte-order mark, as code scanning reads it.
    assert_eq!(bytes.first(), Some(&b'{'));
    serde_json::from_slice::<serde_json::Value>(&bytes).expect("JSON");

    // Piped (not a terminal): no colour unless --color always.
    let plain = common::run([image.image.as_os_str()]);
    assert!(!plain.stdout.contains('\x1b'), "{}", plain.stdout);
    let coloured = common::run([
        image.image.as_os_str(),
        "--color".as_ref(),
        "always".as_ref(),
    ]);
    assert!(
        coloured.stdout.contains("\x1b[1;31merror\x1b[0m[PC003]"),
        "{}",
        coloured.stdout
    );
    // -q: the findings and the summary line, without the footprint.
    let quiet = common::run([image.image.as_os_str(), "-q".as_ref()]);
    assert!(quiet.stdout.contains("error[PC003]"), "{}", quiet.stdout);
    assert!(
        quiet.stdout.contains("pagecheck: 7 error(s)"),
        "{}",
        quiet.stdout
    );
    assert!(!quiet.stdout.contains("footprint:"), "{}", quiet.stdout);
}
