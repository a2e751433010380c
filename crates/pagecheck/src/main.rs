//! `cargo pagecheck <IMAGE> [--pdb <PDB>] [--root <ROLE>=<SYMBOL>]... [--format text|json|sarif]
//! [--fail-on-unresolved] [--no-lock-roots]`
//!
//! Exit status: 0 no violation, 1 violations, 2 bad input or usage.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use pagecheck::roots::RootSpec;
use pagecheck::{Options, report};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Compiler-style diagnostics with one call chain per violation.
    Text,
    /// One JSON object with a `violations` array.
    Json,
    /// SARIF 2.1.0 for GitHub code scanning.
    Sarif,
}

/// What `--deny` turns into failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Deny {
    /// Every warning.
    Warnings,
}

/// Proves on a linked x64 driver image and its PDB that no resident code calls into
/// pageable (PAGE*) or discarded (INIT) code.
#[derive(Debug, Parser)]
#[command(name = "cargo-pagecheck", bin_name = "cargo pagecheck", version)]
struct Cli {
    /// The linked driver image (.sys or .dll).
    image: PathBuf,
    /// The matching PDB; by default the same stem beside the image, or the path in the
    /// image's `CodeView` record.
    #[arg(long, value_name = "PDB")]
    pdb: Option<PathBuf>,
    /// An extra root: ROLE is power-up, dispatch, power-down, paged or init; SYMBOL a public
    /// or module symbol of the PDB (a C name or a Rust path).
    #[arg(long = "root", value_name = "ROLE=SYMBOL")]
    roots: Vec<RootSpec>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Make unresolved indirect calls in resident code errors (default: warnings).
    #[arg(long)]
    fail_on_unresolved: bool,
    /// `--deny warnings`: fail (exit 1) on warnings too, as CI should.
    #[arg(long, value_enum, value_name = "WHAT")]
    deny: Vec<Deny>,
    /// Do not treat functions that acquire a spin lock (or raise the IRQL) as dispatch roots.
    #[arg(long)]
    no_lock_roots: bool,
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
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) {
                let _ = write!(std::io::stdout().lock(), "{e}");
                return ExitCode::SUCCESS;
            }
            let rendered = e.to_string();
            let line = rendered
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid usage");
            eprintln!(
                "cargo-pagecheck: {} (see --help)",
                line.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    let options = Options {
        pdb: cli.pdb,
        roots: cli.roots,
        fail_on_unresolved: cli.fail_on_unresolved,
        deny_warnings: cli.deny.contains(&Deny::Warnings),
        no_lock_roots: cli.no_lock_roots,
    };
    let result = pagecheck::analyze_path(&cli.image, &options);
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            eprintln!("cargo-pagecheck: {e}");
            return ExitCode::from(2);
        }
    };
    let out = match cli.format {
        Format::Text => report::text(&report),
        Format::Json => report::json(&report),
        Format::Sarif => report::sarif(&report),
    };
    // Not println!: a closed pipe (`| head`) must not turn into a panic. Failing to print
    // the report is not bad input either; the exit status still tells the verdict.
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{out}").and_then(|()| stdout.flush());
    if report.failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
