//! Builds real x64 PE driver images (`.sys` + `.pdb`) from this repository's own test sources,
//! on Linux, with Debian's toolchain only.
//!
//! The images are what `cargo pagecheck` reads in its tests: a checker that proves properties of
//! the *linked* image is only tested honestly against images a real compiler and linker produced,
//! with real `.pdata`, real PDBs and real call/jump encodings.
//!
//! - C fixtures (`crates/pagecheck/tests/fixtures/c/<name>.c`) are compiled by Debian's `clang`
//!   for `x86_64-pc-windows-msvc` and linked by Debian's `lld-link` as a driver.
//! - Rust fixtures (members of the cargo workspace `crates/pagecheck/tests/fixtures/rust/`) are
//!   `#![no_std]` cdylibs built by Debian's `rustc`/`cargo` (1.96 with its library sources, so
//!   `-Zbuild-std=core` works without rustup) and linked by the same `lld-link`. Besides
//!   `cargo pagecheck`'s fixtures, the workspace holds pagewise-core's (`core_*`), which its
//!   section-lookup and no-panic tests read.
//!
//! Outputs are cached under `<target>/pe-fixtures/`, keyed by a hash of the sources, the flags
//! and the tool versions. A build runs in a private temporary directory under an exclusive file
//! lock and is renamed into place, so test threads and processes that want the same image at the
//! same time neither corrupt nor duplicate each other's work.
//!
//! Linker defaults ([`DEFAULT_LINK_ARGS`]) make a *well-formed* driver: `.text`, `.rdata`,
//! `.data` and `.pdata` not paged (as `link.exe /DRIVER` marks them), `INIT` discardable. A
//! fixture adds arguments after them (a `<name>.link` file); for `/SECTION` the last one wins,
//! which is how the deliberately bad images are made.

use std::ffi::OsStr;
use std::fmt;
use std::fmt::Write as _;
use std::fs;
use std::hash::{DefaultHasher, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

mod large;

pub use large::{
    generate_large_c, generate_large_c_units, generate_large_kmdf_c_units,
    generate_large_shaped_c_units,
};

/// A linked driver image and the PDB the linker wrote for it (same stem, same directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// The `.sys` file.
    pub image: PathBuf,
    /// The `.pdb` file. The image's `CodeView` record names it by file name only
    /// (`/PDBALTPATH`), so a tool looking beside the image finds it.
    pub pdb: PathBuf,
}

/// Why a fixture could not be built. The message names the step, the command and the tool's
/// stderr, because a fixture failure is nearly always a toolchain problem to read, not to catch.
pub struct Error {
    message: String,
}

impl Error {
    fn new(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
        }
    }

    fn io(what: &str, path: &Path, err: &io::Error) -> Error {
        Error::new(format!("pe-fixtures: {what} {}: {err}", path.display()))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

// Tests call `.expect()` on results: Debug prints the message as is, so the failure reads as the
// toolchain's own error text rather than an escaped string in a struct.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// The Debian packages the fixtures need; `cargo xtask setup` installs exactly these.
/// `llvm` is for `llvm-objdump`, which `cargo pagecheck`'s benchmark and disassembly tests run
/// next to it.
pub const DEBIAN_PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    "clang",
    "lld",
    "llvm",
];

/// Debian's rustc (1.96, `rustc-web`): rustup's, first on `PATH`, has no `rust-src` here.
pub const RUSTC: &str = "/usr/bin/rustc";
/// Debian's cargo (`cargo-web`).
pub const CARGO: &str = "/usr/bin/cargo";
/// Debian's clang.
pub const CLANG: &str = "/usr/bin/clang";
/// Debian's lld in link.exe mode.
pub const LLD_LINK: &str = "/usr/bin/lld-link";
/// Debian's `llvm-objdump` (`llvm`).
pub const LLVM_OBJDUMP: &str = "/usr/bin/llvm-objdump";
/// The library sources `-Zbuild-std` compiles (`rust-web-src`).
const RUST_SRC_CORE: &str = "/usr/lib/rustlib/src/rust/library/core/Cargo.toml";

/// The target every fixture is built for.
pub const TARGET: &str = "x86_64-pc-windows-msvc";

/// Linker arguments every fixture starts with: a native-subsystem driver whose entry point is
/// `DriverEntry`, with a PDB, and the section flags `link.exe /DRIVER` plus a WDK build give
/// (lld alone leaves `.text` pageable: windows-drivers-rs #182). `ERP` = execute, read, not
/// paged; `ERD` = execute, read, discardable. A `/SECTION` for a section the image lacks is
/// ignored by lld, so one list fits every fixture.
pub const DEFAULT_LINK_ARGS: &[&str] = &[
    "/DRIVER",
    "/SUBSYSTEM:NATIVE",
    "/NODEFAULTLIB",
    "/ENTRY:DriverEntry",
    "/DEBUG",
    "/MACHINE:X64",
    "/SECTION:.text,ERP",
    "/SECTION:.rdata,RP",
    "/SECTION:.data,RWP",
    "/SECTION:.pdata,RP",
    "/SECTION:INIT,ERD",
    "/SECTION:.pwrole,RD",
];

/// Compiler flags of every C fixture. `-O2` so that sibling calls become `jmp` as in a release
/// driver; `-g` so the PDB has module symbols for `static` functions, not only publics;
/// `-mno-stack-arg-probe` because a driver linked `/NODEFAULTLIB` has no `__chkstk`;
/// `-fasynchronous-unwind-tables` because `-ffreestanding` alone drops `.pdata`, which every x64
/// Windows image has and pagecheck reads for function boundaries.
pub const DEFAULT_CFLAGS: &[&str] = &[
    "--target=x86_64-pc-windows-msvc",
    "-O2",
    "-g",
    "-gcodeview",
    "-ffreestanding",
    "-fasynchronous-unwind-tables",
    "-fms-extensions",
    "-fno-stack-protector",
    "-mno-stack-arg-probe",
    "-Wall",
    "-Werror",
];

/// Which required tool is absent, as one line naming the Debian package to install, or `None`.
#[must_use]
pub fn tools_missing() -> Option<String> {
    let checks: [(&str, &str); 6] = [
        (RUSTC, "rustc-web"),
        (CARGO, "cargo-web"),
        (RUST_SRC_CORE, "rust-web-src"),
        (CLANG, "clang"),
        (LLD_LINK, "lld"),
        (LLVM_OBJDUMP, "llvm"),
    ];
    let missing: Vec<String> = checks
        .iter()
        .filter(|(path, _)| !Path::new(path).exists())
        .map(|(path, package)| format!("{path} (Debian package {package})"))
        .collect();
    if missing.is_empty() {
        None
    } else {
        Some(missing.join(", "))
    }
}

fn require_tools() -> Result<(), Error> {
    match tools_missing() {
        None => Ok(()),
        Some(missing) => Err(Error::new(format!(
            "PE fixture tools missing: {missing}; run `cargo xtask setup`"
        ))),
    }
}

/// The repository root (this crate lives in `crates/pe-fixtures`).
#[must_use]
pub fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // Canonical when possible: the paths end up in error messages and in the PDBs.
    root.canonicalize().unwrap_or(root)
}

/// Where the fixture sources live: `crates/pagecheck/tests/fixtures`.
#[must_use]
pub fn fixtures_dir() -> PathBuf {
    workspace_root().join("crates/pagecheck/tests/fixtures")
}

/// `<target>/pe-fixtures`: `CARGO_TARGET_DIR` when the test run sets it, else `<root>/target`.
#[must_use]
pub fn cache_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from);
    target.join("pe-fixtures")
}

/// Builds the C fixture `crates/pagecheck/tests/fixtures/c/<name>.c`.
///
/// Optional companions: `<name>.link` (extra linker arguments, appended after
/// [`DEFAULT_LINK_ARGS`]) and `<name>.cflags` (extra compiler flags, after [`DEFAULT_CFLAGS`]).
/// Both are whitespace-separated; `#` starts a comment to the end of the line.
///
/// # Errors
/// Missing tools, unreadable sources, or a failed compile or link (with the tool's stderr).
pub fn c(name: &str) -> Result<Image, Error> {
    require_tools()?;
    let dir = fixtures_dir().join("c");
    let source_path = dir.join(format!("{name}.c"));
    let source = read_text(&source_path)?;
    let link_args = read_args(&dir.join(format!("{name}.link")))?;
    let cflags = read_args(&dir.join(format!("{name}.cflags")))?;
    build_c(
        name,
        &[CUnit {
            file_name: format!("{name}.c"),
            source,
        }],
        &cflags,
        &link_args,
        // Compile from the checked-in file so the PDB's source paths point at it.
        Some(&dir),
    )
}

/// Builds the C fixture `<name>.c` like [`c`], at the optimisation level `level` (`"-O0"`,
/// `"-Os"`, `"-O2"`: clang takes the last `-O`, so it overrides `<name>.cflags`). The image is
/// `<name>_<level without the dash, lower-case>.sys` (`power_pool_paged_o0.sys`), cached apart
/// from the other levels.
///
/// # Errors
/// A level other than `-O0`, `-O1`, `-O2`, `-O3`, `-Os`, `-Oz`; missing tools, unreadable
/// sources, or a failed compile or link (with the tool's stderr).
pub fn c_at_level(name: &str, level: &str) -> Result<Image, Error> {
    if !["-O0", "-O1", "-O2", "-O3", "-Os", "-Oz"].contains(&level) {
        return Err(Error {
            message: format!("C fixture {name}: unknown optimisation level `{level}`"),
        });
    }
    require_tools()?;
    let dir = fixtures_dir().join("c");
    let source_path = dir.join(format!("{name}.c"));
    let source = read_text(&source_path)?;
    let link_args = read_args(&dir.join(format!("{name}.link")))?;
    let mut cflags = read_args(&dir.join(format!("{name}.cflags")))?;
    cflags.push(level.to_owned());
    let image_name = format!(
        "{name}_{}",
        level.trim_start_matches('-').to_ascii_lowercase()
    );
    build_c(
        &image_name,
        &[CUnit {
            file_name: format!("{name}.c"),
            source,
        }],
        &cflags,
        &link_args,
        Some(&dir),
    )
}

/// Builds generated C source (one translation unit) as the driver image `<name>.sys`.
///
/// # Errors
/// Missing tools, or a failed compile or link (with the tool's stderr).
pub fn c_source(name: &str, source: &str, link_args: &[&str]) -> Result<Image, Error> {
    c_sources(name, &[source.to_owned()], link_args)
}

/// Like [`c_source`] for several translation units, compiled in parallel (one thread per
/// available core) and linked into one image. The benchmark image is built this way: a single
/// 40,000-function unit takes one core for its whole compile.
///
/// # Errors
/// Missing tools, or a failed compile or link (with the tool's stderr).
pub fn c_sources(name: &str, sources: &[String], link_args: &[&str]) -> Result<Image, Error> {
    c_sources_with_cflags(name, sources, &[], link_args)
}

/// Like [`c_sources`] with extra compiler flags after [`DEFAULT_CFLAGS`] (clang takes the last
/// `-O`, so `&["-O0"]` trades the optimised shapes for a build about six times faster).
///
/// # Errors
/// Missing tools, or a failed compile or link (with the tool's stderr).
pub fn c_sources_with_cflags(
    name: &str,
    sources: &[String],
    cflags: &[&str],
    link_args: &[&str],
) -> Result<Image, Error> {
    require_tools()?;
    let units: Vec<CUnit> = sources
        .iter()
        .enumerate()
        .map(|(index, source)| CUnit {
            file_name: format!("{name}_{index}.c"),
            source: source.clone(),
        })
        .collect();
    let cflags: Vec<String> = cflags.iter().map(|&flag| flag.to_owned()).collect();
    let link_args: Vec<String> = link_args.iter().map(|&arg| arg.to_owned()).collect();
    build_c(name, &units, &cflags, &link_args, None)
}

/// Builds the Rust fixture `<name>`, a member of the cargo workspace
/// `crates/pagecheck/tests/fixtures/rust/`, with its default features.
///
/// Optional companions in `rust/<name>/`, same syntax as a C fixture's `.link` file:
/// - `fixture.link`: extra linker arguments after [`DEFAULT_LINK_ARGS`];
/// - `fixture.cargo`: extra cargo arguments. `--profile <name>` picks one of the workspace's
///   profiles instead of `release` (the pagewise-core fixtures use `core-lto`);
///   `-Zbuild-std-features=...` changes how the standard library crates are built.
///
/// # Errors
/// Missing tools, unreadable sources, or a failed cargo build (with its stderr).
pub fn rust(name: &str) -> Result<Image, Error> {
    rust_with_features(name, &[])
}

/// Like [`rust`], with the package's cargo `features` enabled. Each feature set is its own
/// cached image (order and repetition do not matter), so a test can hold the images of several
/// feature sets of one fixture at once.
///
/// # Errors
/// A feature name cargo would not accept here (empty, or other than ASCII letters, digits, `_`
/// and `-`), missing tools, unreadable sources, or a failed cargo build (with its stderr).
pub fn rust_with_features(name: &str, features: &[&str]) -> Result<Image, Error> {
    let features = feature_set(name, features)?;
    require_tools()?;
    let workspace = fixtures_dir().join("rust");
    let member = workspace.join(name);
    if !member.join("Cargo.toml").is_file() {
        return Err(Error::new(format!(
            "pe-fixtures: no Rust fixture {name}: {} has no Cargo.toml",
            member.display()
        )));
    }
    let extra = read_args(&member.join("fixture.link"))?;
    let mut link_args: Vec<String> = DEFAULT_LINK_ARGS.iter().map(|&a| a.to_owned()).collect();
    link_args.extend(extra);
    link_args.push(format!("/PDBALTPATH:{name}.pdb"));
    let (profile, cargo_args) = cargo_profile(read_args(&member.join("fixture.cargo"))?)
        .map_err(|message| Error::new(format!("pe-fixtures: {name}/fixture.cargo: {message}")))?;

    let mut key = Key::new("rust-v2");
    key.text(tool_versions()?);
    key.text(name);
    key.text(&profile);
    for arg in &cargo_args {
        key.text(arg);
    }
    // Counted, so that a feature never hashes like the linker argument after it.
    key.count(features.len());
    for feature in &features {
        key.text(feature);
    }
    for arg in &link_args {
        key.text(arg);
    }
    // The fixtures' own sources and the repository crates they use by path.
    key.tree(&workspace)?;
    let root = workspace_root();
    for krate in [
        "crates/pagewise-roles",
        "crates/pagewise-macros",
        "crates/pagewise-core",
        "crates/pagewise-ioctl",
    ] {
        key.tree(&root.join(krate))?;
    }
    // Cargo reads configuration from every directory above the fixture workspace: the
    // repository's `.cargo/config.toml` (its MSVC rustflags) applies to the fixtures too.
    if let Ok(config) = fs::read_to_string(root.join(".cargo/config.toml")) {
        key.text(&config);
    }

    // The feature set is part of the cache entry's name, not only of its hash: pruning keeps
    // one image per entry name, and the feature sets of one fixture must not evict each other.
    let entry = std::iter::once(name)
        .chain(features.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join("+");
    cached("rust", &entry, name, key.finish(), |out| {
        let target_dir = cache_dir().join("rust-target");
        let mut cmd = Command::new(CARGO);
        isolate_cargo_env(&mut cmd);
        cmd.current_dir(&workspace)
            .env("RUSTC", RUSTC)
            .env("RUSTC_BOOTSTRAP", "1")
            .env("CARGO_TARGET_DIR", &target_dir)
            .env("CARGO_TARGET_X86_64_PC_WINDOWS_MSVC_LINKER", LLD_LINK)
            .args([
                "rustc",
                "--quiet",
                "--profile",
                &profile,
                "--target",
                TARGET,
            ])
            .arg("-Zbuild-std=core")
            .args(&cargo_args)
            .args(["-p", name, "--lib"]);
        if !features.is_empty() {
            cmd.arg("--features").arg(features.join(","));
        }
        cmd.arg("--");
        for arg in &link_args {
            cmd.arg(format!("-Clink-arg={arg}"));
        }
        run(&mut cmd, "cargo build of Rust fixture")?;
        // Cargo names the output directory of its `dev` profile `debug`.
        let profile_dir = if profile == "dev" { "debug" } else { &profile };
        let built = target_dir.join(TARGET).join(profile_dir);
        let file_stem = name.replace('-', "_");
        copy(
            &built.join(format!("{file_stem}.dll")),
            &out.join(format!("{name}.sys")),
        )?;
        copy(
            &built.join(format!("{file_stem}.pdb")),
            &out.join(format!("{name}.pdb")),
        )?;
        Ok(())
    })
}

/// The features sorted and deduplicated, each checked to be a plain feature name: it becomes
/// part of a directory name and of a comma-separated cargo argument.
fn feature_set(name: &str, features: &[&str]) -> Result<Vec<String>, Error> {
    let mut set: Vec<String> = Vec::with_capacity(features.len());
    for &feature in features {
        let plain = !feature.is_empty()
            && feature
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !plain {
            return Err(Error::new(format!(
                "pe-fixtures: Rust fixture {name}: feature {feature:?} is not a plain feature name"
            )));
        }
        set.push(feature.to_owned());
    }
    set.sort_unstable();
    set.dedup();
    Ok(set)
}

/// Splits a fixture's extra cargo arguments into the profile (`release` unless
/// `--profile <name>` or `--profile=<name>` says otherwise; the last one wins, as in cargo) and
/// the rest, which are passed on as they are. `--release` and `--debug` are refused: the
/// profile must be known here, to find the output.
fn cargo_profile(args: Vec<String>) -> Result<(String, Vec<String>), String> {
    let mut profile = "release".to_owned();
    let mut rest = Vec::with_capacity(args.len());
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--profile" {
            profile = args
                .next()
                .ok_or_else(|| "--profile without a profile name".to_owned())?;
        } else if let Some(name) = arg.strip_prefix("--profile=") {
            name.clone_into(&mut profile);
        } else if arg == "--release" || arg == "-r" {
            return Err(format!("{arg}: name the profile with --profile <name>"));
        } else {
            rest.push(arg);
        }
    }
    if profile.is_empty() {
        return Err("--profile with an empty profile name".to_owned());
    }
    Ok((profile, rest))
}

/// Removes the variables the outer cargo (rustup's) sets for a test process, so the inner
/// Debian cargo builds independently: its own target dir, no wrapper, no outer RUSTFLAGS.
pub fn isolate_cargo_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let outer = (key.starts_with("CARGO") && key != "CARGO_HOME")
            || key.starts_with("__CARGO")
            || key.starts_with("RUSTC")
            || key.starts_with("RUSTDOC")
            || key.starts_with("RUSTUP")
            || key == "RUSTFLAGS"
            || key == "MAKEFLAGS"
            || key == "MFLAGS";
        if outer {
            cmd.env_remove(key);
        }
    }
}

/// One C translation unit.
struct CUnit {
    file_name: String,
    source: String,
}

fn build_c(
    name: &str,
    units: &[CUnit],
    extra_cflags: &[String],
    extra_link_args: &[String],
    source_dir: Option<&Path>,
) -> Result<Image, Error> {
    let def_path = fixtures_dir().join("c/ntoskrnl.def");
    let def = read_text(&def_path)?;
    let mut cflags: Vec<String> = DEFAULT_CFLAGS.iter().map(|&f| f.to_owned()).collect();
    cflags.extend(extra_cflags.iter().cloned());
    let mut link_args: Vec<String> = DEFAULT_LINK_ARGS.iter().map(|&a| a.to_owned()).collect();
    link_args.extend(extra_link_args.iter().cloned());
    link_args.push(format!("/PDBALTPATH:{name}.pdb"));

    let mut key = Key::new("c-v1");
    key.text(tool_versions()?);
    key.text(name);
    key.text(&def);
    for flag in &cflags {
        key.text(flag);
    }
    for arg in &link_args {
        key.text(arg);
    }
    for unit in units {
        key.text(&unit.file_name);
        key.text(&unit.source);
    }
    if let Some(dir) = source_dir {
        // Headers next to the fixtures are part of the input too.
        key.tree(dir)?;
    }

    cached("c", name, name, key.finish(), |out| {
        let import_lib = import_library(out, &def)?;
        let objects = compile_units(out, units, &cflags, source_dir)?;
        let mut cmd = Command::new(LLD_LINK);
        cmd.args(&link_args)
            .arg(format!(
                "/OUT:{}",
                out.join(format!("{name}.sys")).display()
            ))
            .arg(format!(
                "/PDB:{}",
                out.join(format!("{name}.pdb")).display()
            ))
            .args(&objects)
            .arg(&import_lib);
        run(&mut cmd, "lld-link of C fixture")?;
        // The objects of the benchmark image are tens of megabytes; the image and PDB are
        // what the tests read.
        for object in objects.iter().chain([&import_lib]) {
            let _ = fs::remove_file(object);
        }
        Ok(())
    })
}

/// Compiles every unit, spreading them over the available cores.
fn compile_units(
    out: &Path,
    units: &[CUnit],
    cflags: &[String],
    source_dir: Option<&Path>,
) -> Result<Vec<PathBuf>, Error> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut objects = Vec::with_capacity(units.len());
    for chunk in units.chunks(threads) {
        let results: Vec<Result<PathBuf, Error>> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|unit| scope.spawn(move || compile_unit(out, unit, cflags, source_dir)))
                .collect();
            handles
                .into_iter()
                .map(|handle| {
                    handle
                        .join()
                        .unwrap_or_else(|_| Err(Error::new("pe-fixtures: compile thread panicked")))
                })
                .collect()
        });
        for result in results {
            objects.push(result?);
        }
    }
    Ok(objects)
}

fn compile_unit(
    out: &Path,
    unit: &CUnit,
    cflags: &[String],
    source_dir: Option<&Path>,
) -> Result<PathBuf, Error> {
    let source = if let Some(dir) = source_dir {
        dir.join(&unit.file_name)
    } else {
        let path = out.join(&unit.file_name);
        fs::write(&path, &unit.source).map_err(|e| Error::io("cannot write", &path, &e))?;
        path
    };
    let object = out.join(Path::new(&unit.file_name).with_extension("obj"));
    let mut cmd = Command::new(CLANG);
    cmd.args(cflags)
        .arg("-c")
        .arg(&source)
        .arg("-o")
        .arg(&object);
    run(&mut cmd, "clang compile of C fixture")?;
    Ok(object)
}

/// Makes `ntoskrnl.lib`, the import library for the kernel exports listed in `def`.
///
/// lld 14's `llvm-lib` cannot turn a `.def` into an import library, and `llvm-dlltool` is in a
/// package (`llvm-14`) the fixtures do not otherwise need. lld-link writes one as a by-product of
/// linking a DLL with `/DEF` and `/IMPLIB`, so link a stub `ntoskrnl.exe` whose exports are
/// empty functions: only its import library is used, the stub itself is thrown away.
fn import_library(out: &Path, def: &str) -> Result<PathBuf, Error> {
    let exports = def_exports(def);
    let mut stub_source = String::new();
    for name in &exports {
        let _ = writeln!(stub_source, "void {name}(void) {{}}");
    }
    let stub_c = out.join("ntoskrnl_stub.c");
    let stub_obj = out.join("ntoskrnl_stub.obj");
    let def_path = out.join("ntoskrnl.def");
    let lib = out.join("ntoskrnl.lib");
    fs::write(&stub_c, stub_source).map_err(|e| Error::io("cannot write", &stub_c, &e))?;
    fs::write(&def_path, def).map_err(|e| Error::io("cannot write", &def_path, &e))?;
    run(
        Command::new(CLANG)
            .args([
                "--target=x86_64-pc-windows-msvc",
                "-ffreestanding",
                "-fno-builtin",
                "-w",
                "-c",
            ])
            .arg(&stub_c)
            .arg("-o")
            .arg(&stub_obj),
        "clang compile of the ntoskrnl stub",
    )?;
    run(
        Command::new(LLD_LINK)
            .args(["/DLL", "/NOENTRY", "/NODEFAULTLIB", "/MACHINE:X64"])
            .arg(format!("/DEF:{}", def_path.display()))
            .arg(format!("/OUT:{}", out.join("ntoskrnl.exe").display()))
            .arg(format!("/IMPLIB:{}", lib.display()))
            .arg(&stub_obj),
        "lld-link of the ntoskrnl import library",
    )?;
    for scratch in [&stub_c, &stub_obj, &def_path, &out.join("ntoskrnl.exe")] {
        // Best effort: leftovers only cost disk space in the cache.
        let _ = fs::remove_file(scratch);
    }
    Ok(lib)
}

/// The export names of a module-definition file (the lines after `EXPORTS`).
fn def_exports(def: &str) -> Vec<String> {
    def.lines()
        .map(|line| line.split(';').next().unwrap_or("").trim())
        .skip_while(|line| !line.eq_ignore_ascii_case("EXPORTS"))
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Runs a tool; on failure the error carries the command line, the exit status and stderr.
fn run(cmd: &mut Command, what: &str) -> Result<(), Error> {
    let output = cmd
        .output()
        .map_err(|e| Error::new(format!("pe-fixtures: {what}: cannot run {cmd:?}: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::new(format!(
            "pe-fixtures: {what} failed ({}): {cmd:?}\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )))
    }
}

/// The tools' version lines, part of every cache key: a toolchain upgrade rebuilds everything.
fn tool_versions() -> Result<&'static str, Error> {
    static VERSIONS: OnceLock<Result<String, String>> = OnceLock::new();
    VERSIONS
        .get_or_init(|| {
            let mut all = String::new();
            for (tool, arg) in [
                (RUSTC, "-vV"),
                (CARGO, "-V"),
                (CLANG, "--version"),
                (LLD_LINK, "--version"),
            ] {
                let output = Command::new(tool)
                    .arg(arg)
                    .output()
                    .map_err(|e| format!("pe-fixtures: cannot run {tool} {arg}: {e}"))?;
                all.push_str(&String::from_utf8_lossy(&output.stdout));
            }
            Ok(all)
        })
        .as_deref()
        .map_err(|message| Error::new(message.clone()))
}

/// A cache key: a hash over length-prefixed strings and file trees.
struct Key(DefaultHasher);

impl Key {
    fn new(kind: &str) -> Key {
        let mut key = Key(DefaultHasher::new());
        key.text(kind);
        key
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.0.write_usize(bytes.len());
        self.0.write(bytes);
    }

    fn text(&mut self, text: &str) {
        self.bytes(text.as_bytes());
    }

    fn count(&mut self, count: usize) {
        self.0.write_usize(count);
    }

    /// Every file under `dir` (sorted, `target` directories and dot files skipped), by relative
    /// path and content.
    fn tree(&mut self, dir: &Path) -> Result<(), Error> {
        let mut files = Vec::new();
        collect_files(dir, &mut files)?;
        files.sort();
        for file in files {
            let relative = file.strip_prefix(dir).unwrap_or(&file);
            self.bytes(relative.as_os_str().as_encoded_bytes());
            let content = fs::read(&file).map_err(|e| Error::io("cannot read", &file, &e))?;
            self.bytes(&content);
        }
        Ok(())
    }

    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), Error> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io("cannot list", dir, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("cannot list", dir, &e))?;
        let path = entry.path();
        let file_name = entry.file_name();
        if file_name.as_encoded_bytes().starts_with(b".") || file_name == OsStr::new("target") {
            continue;
        }
        let file_type = entry
            .file_type()
            .map_err(|e| Error::io("cannot stat", &path, &e))?;
        if file_type.is_dir() {
            collect_files(&path, files)?;
        } else if file_type.is_file() {
            files.push(path);
        }
    }
    Ok(())
}

/// Returns the cached image for `(kind, entry, hash)`, building it with `build` into a fresh
/// directory if absent. `build` writes `<name>.sys` and `<name>.pdb` into the directory it gets.
/// `entry` names the cache entry: the image's `name`, or more when one name has several
/// variants that are current at the same time (a Rust fixture's feature sets).
fn cached(
    kind: &str,
    entry: &str,
    name: &str,
    hash: u64,
    build: impl FnOnce(&Path) -> Result<(), Error>,
) -> Result<Image, Error> {
    let cache = cache_dir();
    let done = cache.join(format!("{kind}-{entry}-{hash:016x}"));
    let image = Image {
        image: done.join(format!("{name}.sys")),
        pdb: done.join(format!("{name}.pdb")),
    };
    // A directory appears under its final name only by rename, complete: if it is there, it is
    // whole.
    if done.is_dir() {
        return Ok(image);
    }
    fs::create_dir_all(&cache).map_err(|e| Error::io("cannot create", &cache, &e))?;
    // Rust fixtures share one inner target directory: one lock for all of them. C fixtures only
    // need to keep two builders of the same name from doing the work twice.
    let lock_name = if kind == "rust" {
        "rust.lock".to_owned()
    } else {
        format!("{kind}-{entry}.lock")
    };
    let lock_path = cache.join(lock_name);
    let lock =
        fs::File::create(&lock_path).map_err(|e| Error::io("cannot create", &lock_path, &e))?;
    lock.lock()
        .map_err(|e| Error::io("cannot lock", &lock_path, &e))?;
    if done.is_dir() {
        return Ok(image);
    }
    let scratch = cache.join(format!("tmp-{kind}-{entry}-{}", unique()));
    fs::create_dir_all(&scratch).map_err(|e| Error::io("cannot create", &scratch, &e))?;
    let result = build(&scratch).and_then(|()| {
        for file in [format!("{name}.sys"), format!("{name}.pdb")] {
            if !scratch.join(&file).is_file() {
                return Err(Error::new(format!(
                    "pe-fixtures: the {kind} build of {name} produced no {file}"
                )));
            }
        }
        fs::rename(&scratch, &done).map_err(|e| Error::io("cannot rename into", &done, &e))
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&scratch);
    } else {
        prune_older(&cache, kind, entry, &done);
    }
    // The lock is released when `lock` is dropped, after the rename.
    drop(lock);
    result.map(|()| image)
}

/// Removes the images an earlier version of the same cache entry left (`<kind>-<entry>-<hash>`
/// with another hash): every source edit would otherwise leave a copy behind. One entry has one
/// current image, so callers that want several variants at once give each its own entry name
/// (the benchmark's sizes, a Rust fixture's feature sets).
fn prune_older(cache: &Path, kind: &str, entry: &str, keep: &Path) {
    let prefix = format!("{kind}-{entry}-");
    let Ok(entries) = fs::read_dir(cache) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        // `<prefix><16 hex digits>` exactly: `c-large-1-...` is not an older `c-large`.
        let is_older = file_name
            .strip_prefix(&prefix)
            .is_some_and(|hash| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
        if is_older && path != keep {
            // Best effort: a leftover only costs disk space.
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// A name no other thread or process uses at the same time.
fn unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn copy(from: &Path, to: &Path) -> Result<(), Error> {
    fs::copy(from, to)
        .map(drop)
        .map_err(|e| Error::io(&format!("cannot copy to {} from", to.display()), from, &e))
}

fn read_text(path: &Path) -> Result<String, Error> {
    fs::read_to_string(path).map_err(|e| Error::io("cannot read", path, &e))
}

/// Reads an arguments file (whitespace-separated, `#` comments); a missing file is no arguments.
fn read_args(path: &Path) -> Result<Vec<String>, Error> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .map(|line| line.split('#').next().unwrap_or(""))
            .flat_map(str::split_whitespace)
            .map(str::to_owned)
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io("cannot read", path, &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::{cargo_profile, def_exports, feature_set, prune_older, read_args};

    #[test]
    fn prune_removes_only_older_images_of_the_same_name() {
        let dir = std::env::temp_dir().join(format!("pe-fixtures-prune-{}", std::process::id()));
        let names = [
            "c-large-00000000000000aa",    // older image of `large`: removed
            "c-large-00000000000000bb",    // current: kept
            "c-large_1-00000000000000aa",  // another name: kept
            "c-large-O0-00000000000000aa", // another name with a dash: kept
            "rust-large-00000000000000aa", // another kind: kept
        ];
        for name in names {
            std::fs::create_dir_all(dir.join(name)).expect("create");
        }
        prune_older(&dir, "c", "large", &dir.join(names[1]));
        let exists: Vec<bool> = names.iter().map(|n| dir.join(n).exists()).collect();
        assert_eq!(exists, [false, true, true, true, true]);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    /// A Rust fixture's feature sets are separate entries: building one must not remove the
    /// others, in either direction.
    #[test]
    fn prune_keeps_other_feature_sets_of_a_rust_fixture() {
        let dir =
            std::env::temp_dir().join(format!("pe-fixtures-prune-features-{}", std::process::id()));
        let names = [
            "rust-probe-00000000000000aa", // older default-feature image: removed
            "rust-probe-00000000000000bb", // current default-feature image
            "rust-probe+control-00000000000000aa", // older `control` image
            "rust-probe+control-00000000000000cc", // current `control` image
        ];
        for name in names {
            std::fs::create_dir_all(dir.join(name)).expect("create");
        }
        prune_older(&dir, "rust", "probe", &dir.join(names[1]));
        let exists: Vec<bool> = names.iter().map(|n| dir.join(n).exists()).collect();
        assert_eq!(exists, [false, true, true, true]);
        prune_older(&dir, "rust", "probe+control", &dir.join(names[3]));
        let exists: Vec<bool> = names.iter().map(|n| dir.join(n).exists()).collect();
        assert_eq!(exists, [false, true, false, true]);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn feature_sets_are_canonical_and_plain() {
        assert_eq!(
            feature_set("f", &["b", "a-1", "b", "a_2"]).expect("plain"),
            ["a-1", "a_2", "b"]
        );
        assert!(feature_set("f", &[]).expect("none").is_empty());
        for bad in ["", "a,b", "dep/feature", "a b", "../x"] {
            assert!(feature_set("f", &["ok", bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fixture_cargo_arguments_name_the_profile() {
        let args = |list: &[&str]| list.iter().map(|&a| a.to_owned()).collect::<Vec<_>>();
        assert_eq!(
            cargo_profile(Vec::new()).expect("default"),
            ("release".to_owned(), Vec::new())
        );
        assert_eq!(
            cargo_profile(args(&["--profile", "core-lto", "-Zbuild-std-features=x"]))
                .expect("named"),
            ("core-lto".to_owned(), args(&["-Zbuild-std-features=x"]))
        );
        assert_eq!(
            cargo_profile(args(&["--profile=a", "--profile", "b"])).expect("last wins"),
            ("b".to_owned(), Vec::new())
        );
        for bad in [&["--profile"][..], &["--profile="], &["--release"], &["-r"]] {
            assert!(cargo_profile(args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn def_exports_skip_header_and_comments() {
        let def =
            "LIBRARY ntoskrnl.exe\n; kernel\nEXPORTS\n  DbgPrint ; varargs\n\nKeGetCurrentIrql\n";
        assert_eq!(def_exports(def), ["DbgPrint", "KeGetCurrentIrql"]);
    }

    #[test]
    fn args_file_comments_and_missing_file() {
        let dir = std::env::temp_dir().join(format!("pe-fixtures-args-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("x.link");
        std::fs::write(
            &file,
            "# why\n/SECTION:.text,ER  # pageable .text\n/FOO /BAR\n",
        )
        .expect("write");
        assert_eq!(
            read_args(&file).expect("read"),
            ["/SECTION:.text,ER", "/FOO", "/BAR"]
        );
        assert!(
            read_args(&dir.join("absent.link"))
                .expect("absent")
                .is_empty()
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
