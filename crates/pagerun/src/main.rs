//! `cargo pagerun IMAGE [OPTIONS]`: see `--help`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// One block per violation, with the callback, scenario step and source line.
    Text,
    /// One JSON object with `scenarios` and `violations`.
    Json,
    /// SARIF 2.1.0.
    Sarif,
}

const EXIT_CODES: &str = "\
Scenarios: start, io, idle, sleep, hibernate, stop-restart, surprise-removal (all by default).

Exit status:
  0  every scenario ran to its end without a violation
  1  at least one violation; a scenario whose device did not start or did not return to D0
     (DriverEntry or a start or power-up callback failed) has one and is reported `failed`
  2  could not run: bad usage, an unreadable or foreign image, a missing PDB, or a scenario
     stopped by something this host does not model (the report says what)";

/// Runs a linked x64 KMDF driver on Linux through Plug and Play and power scenarios, with its
/// pageable sections made inaccessible whenever Windows could have paged them out.
#[derive(Debug, Parser)]
#[command(name = "cargo-pagerun", bin_name = "cargo pagerun", version, after_help = EXIT_CODES)]
struct Cli {
    /// The linked driver (.sys).
    image: PathBuf,
    /// The matching PDB; by default the same stem beside the image.
    #[arg(long, value_name = "PDB")]
    pdb: Option<PathBuf>,
    /// A scenario to run (repeatable); all when none is given.
    #[arg(long = "scenario", value_name = "NAME")]
    scenarios: Vec<String>,
    /// Repeat each scenario's cycle (sleep/resume, idle, stop/restart) N times.
    #[arg(long, default_value_t = 1, value_name = "N")]
    cycles: u32,
    /// A `REG_DWORD` value in the device's hardware key (repeatable), e.g. `PowerNotPageable=1`.
    #[arg(long = "registry", value_name = "NAME=VALUE", value_parser = parse_registry)]
    registry: Vec<(String, u32)>,
    /// Put the device on a special-file path once it has started (repeatable): the framework
    /// then makes it nonpageable and calls its usage notification, if the driver enabled that
    /// type with `WdfDeviceSetSpecialFileSupport`.
    #[arg(long = "special-file", value_name = "TYPE", value_parser = parse_special_file)]
    special_files: Vec<u32>,
    /// Send an IOCTL at the end of each scenario, before the device is removed, and report
    /// its answer (status, Information, output bytes) in the JSON report (repeatable):
    /// `CODE[:OUTPUT_LENGTH[:INPUT_HEX]]`, e.g. `0x8a176008:96`.
    #[arg(long = "ioctl", value_name = "CODE[:OUT[:IN]]", value_parser = pagerun::scenario::Ioctl::parse)]
    ioctls: Vec<pagerun::scenario::Ioctl>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Write the report to FILE.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Wall-clock budget of each scenario, in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    timeout: u64,
    /// CPU-time budget of each scenario, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    cpu_budget: u64,
    /// Faulting instructions each scenario may single-step through.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    step_budget: u64,
}

fn parse_registry(text: &str) -> Result<(String, u32), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: expected NAME=VALUE"))?;
    let value = if let Some(hex) = value.strip_prefix("0x") {
        u32::from_str_radix(hex, 16)
    } else {
        value.parse()
    }
    .map_err(|_| format!("`{value}`: a REG_DWORD value is a 32-bit number"))?;
    if name.is_empty() {
        return Err("an empty value name".to_owned());
    }
    Ok((name.to_owned(), value))
}

fn parse_special_file(text: &str) -> Result<u32, String> {
    pagerun::scenario::SPECIAL_FILES
        .iter()
        .position(|&n| n == text)
        .and_then(|i| u32::try_from(i + 1).ok())
        .ok_or_else(|| {
            format!(
                "`{text}`: the special files are {}",
                pagerun::scenario::SPECIAL_FILES.join(", ")
            )
        })
}

fn child(args: &[String]) -> ExitCode {
    // __child IMAGE SCENARIO CYCLES STEPS CPU TABLE GLOBALS COUNT
    //         [NAME=VALUE | special:N | ioctl:CODE:OUT:IN ...]
    let number = |i: usize| args.get(i).and_then(|a| a.parse::<u64>().ok());
    let rva = |i: usize| args.get(i).and_then(|a| a.parse::<u32>().ok());
    let (Some(image), Some(scenario)) = (args.first(), args.get(1)) else {
        return ExitCode::from(2);
    };
    let registry: BTreeMap<String, u32> = args
        .iter()
        .skip(8)
        .filter(|a| !a.starts_with("special:") && !a.starts_with("ioctl:"))
        .filter_map(|a| parse_registry(a).ok())
        .collect();
    let special_files: Vec<u32> = args
        .iter()
        .skip(8)
        .filter_map(|a| a.strip_prefix("special:")?.parse().ok())
        .collect();
    let mut ioctls = Vec::new();
    for arg in args.iter().skip(8) {
        if let Some(ioctl) = arg.strip_prefix("ioctl:") {
            match pagerun::scenario::Ioctl::parse(ioctl) {
                Ok(ioctl) => ioctls.push(ioctl),
                Err(_) => return ExitCode::from(2),
            }
        }
    }
    let plan = pagerun::child::Plan {
        scenario: scenario.clone(),
        cycles: u32::try_from(number(2).unwrap_or(1)).unwrap_or(1),
        registry,
        special_files,
        table_rva: rva(5),
        globals_rva: rva(6),
        count_rva: rva(7),
        step_budget: number(3).unwrap_or(1_000_000),
        cpu_seconds: number(4).unwrap_or(30),
        ioctls,
    };
    let status = pagerun::child::run(std::path::Path::new(image), &plan);
    ExitCode::from(u8::try_from(status).unwrap_or(2))
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| a == "__child") {
        return child(&args[2..]);
    }
    // `cargo pagerun x` runs `cargo-pagerun pagerun x`.
    if args.get(1).is_some_and(|a| a == "pagerun") {
        args.remove(1);
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let options = pagerun::Options {
        pdb: cli.pdb,
        scenarios: cli.scenarios,
        cycles: cli.cycles.max(1),
        registry: cli.registry.into_iter().collect(),
        special_files: cli.special_files,
        timeout_seconds: cli.timeout.max(1),
        cpu_seconds: cli.cpu_budget.max(1),
        step_budget: cli.step_budget,
        ioctls: cli.ioctls,
        ..pagerun::Options::default()
    };
    let report = match pagerun::run(&cli.image, &options) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("cargo-pagerun: {e}");
            return ExitCode::from(2);
        }
    };
    let out = match cli.format {
        Format::Text => pagerun::report::text(&report),
        Format::Json => pagerun::report::json(&report),
        Format::Sarif => pagerun::report::sarif(&report),
    };
    if let Some(path) = &cli.output {
        if let Err(e) = std::fs::write(path, format!("{out}\n")) {
            eprintln!(
                "cargo-pagerun: {}: cannot write the report: {e}",
                path.display()
            );
            return ExitCode::from(2);
        }
    } else {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{out}").and_then(|()| stdout.flush());
    }
    if report.exit_code() == 2 {
        for s in report
            .scenarios
            .iter()
            .filter(|s| s.status != "completed" && s.status != "failed")
        {
            eprintln!(
                "cargo-pagerun: scenario {} could not run to its end: {}",
                s.name,
                s.stop.as_deref().unwrap_or("?")
            );
        }
    }
    ExitCode::from(report.exit_code())
}
