//! Helpers shared by the integration tests: run the real binary, build fixtures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use pagecheck::{Options, Report, analyze_path};

/// What one run of `cargo-pagecheck` did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the built binary with `args`.
pub fn run<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    run_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

/// Runs the built binary with `args` in the directory `dir`.
pub fn run_in<I, S>(dir: &Path, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = Command::new(env!("CARGO_BIN_EXE_cargo-pagecheck"))
        .args(args)
        .current_dir(dir)
        // `dir` may be a throwaway workspace whose build output the test lays out itself:
        // the outer run's target directory must not redirect its `cargo metadata`.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .output()
        .expect("run cargo-pagecheck");
    Run {
        // A signal (a crash) has no code: -1 fails every assertion on it.
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Exit 2, nothing on stdout, no panic: what every refusal has in common.
fn assert_refused(run: &Run, what: &str) {
    assert_eq!(run.code, 2, "{what}: exit code; stderr: {}", run.stderr);
    assert!(
        run.stdout.is_empty(),
        "{what}: stdout not empty: {}",
        run.stdout
    );
    assert!(
        !run.stderr.contains("panicked"),
        "{what}: panic: {}",
        run.stderr
    );
}

/// Asserts the bad-input contract: exit 2, exactly one line on stderr, nothing on stdout, no
/// panic. Returns the line.
pub fn assert_bad_input(run: &Run, what: &str) -> String {
    assert_refused(run, what);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: stderr is not one line: {:?}",
        run.stderr
    );
    assert!(
        lines[0].starts_with("cargo-pagecheck: "),
        "{what}: {}",
        lines[0]
    );
    lines[0].to_owned()
}

/// Asserts a usage error: exit 2, clap's whole message on stderr (what is wrong, and the way
/// to `--help`), nothing on stdout, no panic. Returns stderr.
pub fn assert_usage_error(run: &Run, what: &str) -> String {
    assert_refused(run, what);
    assert!(run.stderr.starts_with("error: "), "{what}: {}", run.stderr);
    assert!(run.stderr.contains("--help"), "{what}: {}", run.stderr);
    run.stderr.clone()
}

/// Builds a C fixture.
pub fn c(name: &str) -> pe_fixtures::Image {
    pe_fixtures::c(name).expect("build C fixture")
}

/// Builds a Rust fixture.
pub fn rust(name: &str) -> pe_fixtures::Image {
    pe_fixtures::rust(name).expect("build Rust fixture")
}

/// Runs the library analysis with `roots` given as `ROLE=SYMBOL`.
pub fn analyze(image: &pe_fixtures::Image, roots: &[&str]) -> Report {
    let options = Options {
        pdb: None,
        roots: roots
            .iter()
            .map(|r| r.parse().expect("root spec"))
            .collect(),
        ..Options::default()
    };
    analyze_path(&image.image, &options).expect("analysis")
}

/// A scratch directory under the target dir, unique to `name`, emptied first.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Copies `from` into `dir` under `name`.
pub fn copy_to(from: &Path, dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    std::fs::copy(from, &to).expect("copy");
    to
}

/// The symbols of a violation's chain.
pub fn chain_symbols(v: &pagecheck::checks::Violation) -> Vec<&str> {
    v.chain.iter().map(|l| l.symbol.as_str()).collect()
}

/// The section names of a violation's chain.
pub fn chain_sections(v: &pagecheck::checks::Violation) -> Vec<&str> {
    v.chain.iter().map(|l| l.section.as_str()).collect()
}

/// The violations of `report` at error level (warnings such as PC005 left out).
pub fn errors(report: &Report) -> Vec<&pagecheck::checks::Violation> {
    report
        .violations
        .iter()
        .filter(|v| v.level == pagecheck::checks::Level::Error)
        .collect()
}

/// File offsets of each section header, by current name.
pub fn headers(bytes: &[u8]) -> Vec<(String, usize)> {
    let (first, count) = section_table(bytes);
    (0..count)
        .map(|i| {
            let at = first + i * 40;
            let name = String::from_utf8_lossy(&bytes[at..at + 8])
                .trim_end_matches('\0')
                .to_owned();
            (name, at)
        })
        .collect()
}

/// File offset of the first section header and the number of sections.
fn section_table(bytes: &[u8]) -> (usize, usize) {
    let lfanew = u32::from_le_bytes(bytes[60..64].try_into().expect("4")) as usize;
    let count = usize::from(u16::from_le_bytes(
        bytes[lfanew + 6..lfanew + 8].try_into().expect("2"),
    ));
    let optional = usize::from(u16::from_le_bytes(
        bytes[lfanew + 20..lfanew + 22].try_into().expect("2"),
    ));
    (lfanew + 24 + optional, count)
}

/// File offset of the PE32+ optional header.
pub fn optional_header(bytes: &[u8]) -> usize {
    u32::from_le_bytes(bytes[60..64].try_into().expect("4")) as usize + 24
}

/// The file offset of `rva`, from the section headers.
pub fn file_offset(bytes: &[u8], rva: u32) -> usize {
    for (_, at) in headers(bytes) {
        let word = |o: usize| u32::from_le_bytes(bytes[at + o..at + o + 4].try_into().expect("4"));
        let (size, start, raw) = (word(8), word(12), word(20));
        if rva >= start && rva < start + size {
            return (raw + (rva - start)) as usize;
        }
    }
    panic!("{rva:#x} is in no section");
}

/// Writes `bytes` as `<name>.sys` next to a copy of the fixture's PDB in a scratch directory
/// (the image's `CodeView` record names the PDB file, so the copy is found beside it).
pub fn write_variant(image: &pe_fixtures::Image, name: &str, bytes: &[u8]) -> PathBuf {
    let dir = scratch(name);
    let stem = image
        .image
        .file_stem()
        .expect("stem")
        .to_string_lossy()
        .into_owned();
    let path = dir.join(format!("{stem}.sys"));
    std::fs::write(&path, bytes).expect("write");
    copy_to(&image.pdb, &dir, &format!("{stem}.pdb"));
    path
}

/// Builds a C fixture with its registrations inferred: the analysis with no `--root`.
pub fn inferred(name: &str) -> (pe_fixtures::Image, Report) {
    let image = c(name);
    let report = analyze(&image, &[]);
    (image, report)
}

/// The framework calls a report counts, by name.
pub fn wdf_calls(report: &pagecheck::Report) -> Vec<(String, u32)> {
    report
        .externals
        .iter()
        .filter(|e| e.kind == "wdf")
        .map(|e| (e.name.clone(), e.calls))
        .collect()
}

/// A registration as the tests compare them: `(function, slot, role, method)`.
pub type Registration = (String, &'static str, &'static str, &'static str);

/// `(function, slot, role, method)` of every registration, sorted.
pub fn registrations(report: &Report) -> Vec<Registration> {
    let mut out: Vec<_> = report
        .registrations
        .list
        .iter()
        .map(|r| (r.symbol.clone(), r.slot, r.role().name(), r.method))
        .collect();
    out.sort();
    out
}

/// An expected registration table, sorted like [`registrations`].
pub fn table(rows: &[(&str, &'static str, &'static str, &'static str)]) -> Vec<Registration> {
    let mut out: Vec<_> = rows
        .iter()
        .map(|&(f, s, r, m)| (f.to_owned(), s, r, m))
        .collect();
    out.sort();
    out
}
