//! `cargo pagecheck [IMAGE] [OPTIONS]`: see `--help`.

use std::io::{IsTerminal as _, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use pagecheck::roots::RootSpec;
use pagecheck::{Options, locate, report};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Compiler-style diagnostics, one source line per link of each call chain.
    Text,
    /// One JSON object: roots, registrations, findings, footprint.
    Json,
    /// SARIF 2.1.0, for GitHub code scanning.
    Sarif,
}

/// When to colour the text output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Color {
    /// When writing to a terminal and `NO_COLOR` is not set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// What `--deny` turns into failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Deny {
    /// Every warning.
    Warnings,
}

const EXIT_CODES: &str = "\
Exit status:
  0  no error (warnings do not fail the check unless --deny warnings)
  1  at least one finding fails the check
  2  the check could not be made: bad usage, an unreadable, truncated or foreign image, a missing
     or mismatched PDB, or an image with nothing to check";

/// Proves on a linked x64 KMDF driver and its PDB that no resident code calls into pageable
/// (PAGE*) or discarded (INIT) code, from the callbacks the image registers with the framework.
// Command-line switches: independent flags by nature.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Parser)]
#[command(name = "cargo-pagecheck", bin_name = "cargo pagecheck", version, after_help = EXIT_CODES)]
struct Cli {
    /// The linked driver (.sys or .dll). Without it, the package's driver is found through
    /// `cargo metadata`: the cargo-make package folder's .sys, else the build output.
    image: Option<PathBuf>,
    /// The matching PDB; by default the same stem beside the image, or the path in the image's
    /// `CodeView` record.
    #[arg(long, value_name = "PDB")]
    pdb: Option<PathBuf>,
    /// An extra root: ROLE is power-up, dispatch, power-down, paged or init; SYMBOL a public
    /// or module symbol of the PDB (a C name or a Rust path) naming a function's first byte.
    #[arg(long = "root", value_name = "ROLE=SYMBOL")]
    roots: Vec<RootSpec>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Write the report to FILE, as UTF-8 (PowerShell 5.1's `>` would write UTF-16).
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Colour the text output.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    color: Color,
    /// Print only the findings and the summary line.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// `--deny warnings`: fail (exit 1) on warnings too, as CI should.
    #[arg(long, value_enum, value_name = "WHAT")]
    deny: Vec<Deny>,
    /// Make unresolved indirect calls in resident code errors (default: warnings).
    #[arg(long)]
    fail_on_unresolved: bool,
    /// Do not check the calls made while a spin lock is held.
    #[arg(long)]
    no_lock_roots: bool,
    /// Source paths under DIR are reported relative to it (SARIF's `%SRCROOT%`). Default: the
    /// workspace root.
    #[arg(long, value_name = "DIR")]
    source_root: Option<PathBuf>,
    /// Without IMAGE: the package's Cargo.toml.
    #[arg(
        long,
        value_name = "PATH",
        help_heading = "Package selection (without IMAGE)"
    )]
    manifest_path: Option<PathBuf>,
    /// Without IMAGE: the package whose driver to check.
    #[arg(
        long,
        short = 'p',
        value_name = "SPEC",
        help_heading = "Package selection (without IMAGE)"
    )]
    package: Option<String>,
    /// Without IMAGE: the release build (the `release` profile).
    #[arg(
        long,
        short = 'r',
        conflicts_with = "profile",
        help_heading = "Package selection (without IMAGE)"
    )]
    release: bool,
    /// Without IMAGE: the build of this profile.
    #[arg(
        long,
        value_name = "NAME",
        help_heading = "Package selection (without IMAGE)"
    )]
    profile: Option<String>,
    /// Without IMAGE: the build for this target triple.
    #[arg(
        long,
        value_name = "TRIPLE",
        help_heading = "Package selection (without IMAGE)"
    )]
    target: Option<String>,
}

fn main() -> ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `cargo pagecheck x` runs `cargo-pagecheck pagecheck x`.
    if args.get(1).is_some_and(|a| a == "pagecheck") {
        args.remove(1);
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with status 0; a usage error, whole, to stderr.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(failed) => ExitCode::from(u8::from(failed)),
        Err(e) => {
            eprintln!("cargo-pagecheck: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs the check; `Ok(true)` when a finding fails it.
fn run(cli: Cli) -> Result<bool, pagecheck::Error> {
    let (image, workspace_root) = if let Some(image) = cli.image {
        (image, None)
    } else {
        let located = locate::find(&locate::Query {
            manifest_path: cli.manifest_path,
            package: cli.package,
            profile: if cli.release {
                Some("release".to_owned())
            } else {
                cli.profile
            },
            target: cli.target,
        })?;
        (located.image, Some(located.workspace_root))
    };
    let options = Options {
        pdb: cli.pdb,
        roots: cli.roots,
        fail_on_unresolved: cli.fail_on_unresolved,
        deny_warnings: cli.deny.contains(&Deny::Warnings),
        no_lock_roots: cli.no_lock_roots,
        source_root: cli
            .source_root
            .or(workspace_root)
            .or_else(locate::default_source_root),
    };
    let loaded = pagecheck::load(&image, options.pdb.as_deref())?;
    let report = pagecheck::analyze(
        &loaded.image,
        &loaded.symbols,
        &options,
        &image.display().to_string(),
        &loaded.pdb_path.display().to_string(),
    )?;
    let color = match cli.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => {
            cli.output.is_none()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stdout().is_terminal()
        }
    };
    let rendered = match cli.format {
        // Streamed: the JSON of a large image (every function's size) is megabytes, built
        // neither as one string nor copied again on its way out.
        Format::Json => None,
        Format::Text => Some(report::text(
            &report,
            &report::TextOptions {
                color,
                quiet: cli.quiet,
            },
        )),
        Format::Sarif => Some(report::sarif(&report)),
    };
    let emit = |w: &mut dyn Write| -> std::io::Result<()> {
        if let Some(out) = &rendered {
            writeln!(w, "{out}")?;
        } else {
            report::write_json(&report, &mut *w)?;
            writeln!(w)?;
        }
        w.flush()
    };
    if let Some(path) = &cli.output {
        std::fs::File::create(path)
            .and_then(|file| emit(&mut std::io::BufWriter::with_capacity(1 << 16, file)))
            .map_err(|e| {
                pagecheck::Error::new(format!("{}: cannot write the report: {e}", path.display()))
            })?;
    } else {
        // Not println!: a closed pipe (`| head`) must not turn into a panic. Failing to print
        // the report is not bad input either; the exit status still tells the verdict.
        let _ = emit(&mut std::io::BufWriter::with_capacity(
            1 << 16,
            std::io::stdout().lock(),
        ));
    }
    let failed = report.failed();
    // The process ends here: freeing the symbols, the image and the report one allocation at
    // a time (a hundred thousand names in a large driver) would only delay the exit, so the
    // operating system takes the memory back whole, as clang's `-disable-free` does.
    std::mem::forget((loaded, report));
    Ok(failed)
}
