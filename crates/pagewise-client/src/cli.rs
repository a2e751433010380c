//! The command line and what each command does, independent of the OS.

use crate::cycles::{self, Clock, CyclesOptions};
use crate::device::{Client, Transport};
use crate::error::{EXIT_CODES_HELP, Error, ExitStatus};
use crate::render::{ConfigView, HoldView, LogView, Output, StatsView, version_view};
use clap::{Parser, Subcommand};
use pagewise_ioctl::MAX_HOLD_D0_MS;
use std::ffi::OsStr;
use std::time::Duration;

/// Query and exercise the pagewise driver.
#[derive(Debug, Parser)]
#[command(name = "pagewisectl", version, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// Print JSON on stdout instead of tables (errors too, as an object with `error` and `exit_code`).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Power pageability chosen at init and why, idle timeout, and the section of every
    /// registered callback (exit 1 if a power-up or dispatch callback is pageable).
    Config,
    /// D0 entry/exit counters and time-to-working statistics.
    Stats,
    /// The power-transition log.
    Log {
        /// Only records with this sequence number or later (see `next_sequence`).
        #[arg(long, value_name = "SEQ", default_value_t = 0)]
        since: u64,
    },
    /// Wake the device if idle and keep it in D0 for MS milliseconds (0 only wakes it).
    Hold {
        /// Milliseconds, at most 600000.
        #[arg(value_name = "MS", value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_HOLD_D0_MS)))]
        ms: u32,
    },
    /// Wait for N S0-idle power-down/power-up cycles, waking the device after each idle
    /// power-down, and report time to working (median, p95, max). Exit 1 if fewer than N
    /// cycles complete before the timeout.
    Cycles {
        /// Number of cycles.
        #[arg(value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
        n: u32,
        /// Give up after S seconds [default: N x (2 x idle timeout + 10 s) + 10 s].
        #[arg(long, value_name = "S", value_parser = clap::value_parser!(u64).range(1..=604_800))]
        timeout: Option<u64>,
    },
    /// Driver and interface versions (exit 4 on an interface mismatch).
    Version,
}

impl Command {
    /// True for commands that send `IOCTL_PAGEWISE_HOLD_D0`, which needs write access.
    #[must_use]
    pub const fn needs_write(&self) -> bool {
        matches!(self, Command::Hold { .. } | Command::Cycles { .. })
    }
}

/// Runs a command against a device.
///
/// # Errors
///
/// Whatever stops the command; see [`Error::exit_status`].
pub fn execute<T: Transport, C: Clock>(
    command: &Command,
    client: &mut Client<T>,
    clock: &mut C,
) -> Result<Output, Error> {
    if *command == Command::Version {
        return Ok(Output::Version(version_view(&client.version()?)));
    }
    // Any other request is only meaningful with a driver that speaks our layouts.
    client.check_version()?;
    Ok(match command {
        Command::Config => Output::Config(ConfigView::new(&client.config()?)),
        Command::Stats => Output::Stats(StatsView::new(&client.stats()?)),
        Command::Log { since } => Output::Log(LogView::new(&client.log_since(*since)?)),
        Command::Hold { ms } => {
            client.hold(*ms)?;
            Output::Hold(HoldView { held_ms: *ms })
        }
        Command::Cycles { n, timeout } => {
            let options = CyclesOptions {
                count: *n,
                timeout: timeout.map(Duration::from_secs),
            };
            Output::Cycles(cycles::run(client, clock, options)?)
        }
        Command::Version => unreachable!("handled above"),
    })
}

/// What to print and how to exit.
#[derive(Debug, PartialEq, Eq)]
pub struct Finished {
    /// For stdout.
    pub stdout: String,
    /// For stderr.
    pub stderr: String,
    /// The exit status.
    pub status: ExitStatus,
}

/// Turns a command's result into output: tables or JSON on stdout, errors on stderr as one
/// line (and, with `--json`, also as a JSON object on stdout so a script that parses
/// stdout always gets JSON).
#[must_use]
pub fn finish(result: Result<Output, Error>, json: bool) -> Finished {
    match result {
        Ok(output) => Finished {
            stdout: if json {
                output.to_json() + "\n"
            } else {
                output.to_text()
            },
            stderr: String::new(),
            status: output.exit_status(),
        },
        Err(error) => {
            let status = error.exit_status();
            let stdout = if json {
                let value =
                    serde_json::json!({ "error": error.to_string(), "exit_code": status.code() });
                format!("{value}\n")
            } else {
                String::new()
            };
            Finished {
                stdout,
                stderr: format!("pagewisectl: {error}\n"),
                status,
            }
        }
    }
}

/// True when `--json` is among the arguments (before a `--`, after the program name).
///
/// Used only when the command line did not parse, so it cannot rely on clap: the flag is
/// global and may stand before or after the subcommand.
#[must_use]
pub fn wants_json<I, T>(args: I) -> bool
where
    I: IntoIterator<Item = T>,
    T: AsRef<OsStr>,
{
    args.into_iter()
        .skip(1)
        .map_while(|arg| (arg.as_ref() != "--").then(|| arg.as_ref() == "--json"))
        .any(|is_json| is_json)
}

/// A command line that did not parse, as `--json` promises it: the `{"error", "exit_code"}`
/// object on stdout and one line on stderr, like every other error.
///
/// Returns `None` when clap should report it itself: without `--json`, and for `--help` and
/// `--version`, which are answers rather than errors (clap prints them to stdout and exits 0).
#[must_use]
pub fn usage_error(error: &clap::Error, json: bool) -> Option<Finished> {
    if !json || !error.use_stderr() {
        return None;
    }
    // clap renders "error: <what>", then usage and a hint on further lines; the object and
    // the stderr line carry the first line's message, as `finish` does for other errors.
    let rendered = error.render().to_string();
    let first = rendered.lines().next().unwrap_or_default();
    let message = first.strip_prefix("error: ").unwrap_or(first).trim();
    let status = ExitStatus::Usage;
    let value = serde_json::json!({ "error": message, "exit_code": status.code() });
    Some(Finished {
        stdout: format!("{value}\n"),
        stderr: format!("pagewisectl: {message}\n"),
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimDriver;
    use clap::CommandFactory;
    use clap::error::ErrorKind;
    use pagewise_ioctl::INTERFACE_VERSION;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("pagewisectl").chain(args.iter().copied()))
    }

    #[test]
    fn command_line() {
        Cli::command().debug_assert();
        let cli = parse(&["log", "--since", "42", "--json"]).expect("valid");
        assert!(cli.json);
        assert_eq!(cli.command, Command::Log { since: 42 });
        assert_eq!(
            parse(&["log"]).expect("valid").command,
            Command::Log { since: 0 }
        );
        assert_eq!(
            parse(&["cycles", "5", "--timeout", "90"])
                .expect("valid")
                .command,
            Command::Cycles {
                n: 5,
                timeout: Some(90)
            }
        );
        assert_eq!(
            parse(&["hold", "600000"]).expect("valid").command,
            Command::Hold { ms: 600_000 }
        );
        assert!(parse(&["hold", "0"]).expect("valid").command.needs_write());
        assert!(!parse(&["stats"]).expect("valid").command.needs_write());
        for bad in [
            &["hold", "600001"][..],
            &["hold", "-1"],
            &["hold"],
            &["cycles", "0"],
            &["cycles", "x"],
            &["log", "--since", "-3"],
            &["frobnicate"],
            &[],
        ] {
            let err = parse(bad).expect_err("usage error");
            // clap's own exit code for these is 2, the documented usage code.
            assert_eq!(
                err.exit_code(),
                i32::from(ExitStatus::Usage.code()),
                "{bad:?}: {err}"
            );
        }
        assert_eq!(
            parse(&["--help"]).expect_err("help").kind(),
            ErrorKind::DisplayHelp
        );
        let help = Cli::command().render_long_help().to_string();
        assert!(
            help.contains("Exit codes:") && help.contains("3  no pagewise device"),
            "{help}"
        );
    }

    fn run_sim(sim: SimDriver, args: &[&str]) -> Finished {
        let cli = parse(args).expect("valid");
        let (mut client, mut clock) = sim.into_parts();
        finish(execute(&cli.command, &mut client, &mut clock), cli.json)
    }

    #[test]
    fn commands_against_the_simulator() {
        let mut sim = SimDriver::new(1000);
        sim.start();
        let out = run_sim(sim, &["stats", "--json"]);
        assert_eq!(out.status, ExitStatus::Ok);
        let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
        assert_eq!(json["d0_entries"], 1);

        let mut sim = SimDriver::new(1000);
        sim.start();
        let out = run_sim(sim, &["config"]);
        assert_eq!(out.status, ExitStatus::Ok, "{}", out.stdout);
        let d0_exit = out
            .stdout
            .lines()
            .find(|l| l.starts_with("EvtDeviceD0Exit"))
            .expect("row");
        assert!(
            d0_exit.contains("power-down  PAGEPWR  PAGEPWR"),
            "{d0_exit}"
        );

        let mut sim = SimDriver::new(1000);
        sim.start();
        let out = run_sim(sim, &["log"]);
        assert!(
            out.stdout.contains("EvtDeviceSelfManagedIoInit"),
            "{}",
            out.stdout
        );
        assert!(out.stdout.contains("D3Final -> -"), "{}", out.stdout);

        let mut sim = SimDriver::new(1000);
        sim.start();
        let out = run_sim(sim, &["cycles", "2", "--json"]);
        assert_eq!(out.status, ExitStatus::Ok, "{}", out.stdout);
        let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
        assert_eq!(json["completed"], 2);
        assert_eq!(json["log_summary"]["max_100ns"], 1200);
    }

    #[test]
    fn version_mismatch_is_exit_4_for_every_command() {
        for args in [
            &["stats"][..],
            &["config"],
            &["hold", "0"],
            &["cycles", "1"],
            &["version"],
        ] {
            let mut sim = SimDriver::new(1000);
            sim.interface_version = INTERFACE_VERSION + 1;
            sim.start();
            let out = run_sim(sim, args);
            assert_eq!(out.status, ExitStatus::VersionMismatch, "{args:?}");
        }
        let mut sim = SimDriver::new(1000);
        sim.interface_version = 0;
        let out = run_sim(sim, &["stats", "--json"]);
        assert!(out.stderr.contains("too old"), "{}", out.stderr);
        let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON error object");
        assert_eq!(json["exit_code"], 4);
    }

    /// The JSON fields tests/vm/*.ps1 read: each must exist in the client's output, and
    /// each must still be used by a script (so the list cannot silently go stale).
    #[test]
    fn json_fields_the_vm_scripts_read() {
        let contract: [(&[&str], &[&str]); 4] = [
            (
                &["cycles", "2"],
                &[
                    "completed",
                    "timed_out",
                    "lost_records",
                    "failed_callbacks/0/callback",
                    "failed_callbacks/0/sequence",
                    "failed_callbacks/0/status",
                    "log_summary/median_100ns",
                    "log_summary/p95_100ns",
                    "log_summary/max_100ns",
                ],
            ),
            (
                &["log"],
                &[
                    "next_sequence",
                    "lost",
                    "records/0/callback",
                    "records/0/failed",
                    "records/0/sequence",
                    "records/0/status",
                ],
            ),
            (
                &["config"],
                &[
                    "power_pageable",
                    "reason_text",
                    "power_down_locked",
                    "idle_timeout_ms",
                    "violations",
                ],
            ),
            (&["version"], &["driver_version", "interface_version"]),
        ];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vm");
        let scripts: String = std::fs::read_dir(&dir)
            .expect("tests/vm")
            .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("text"))
            .collect();
        for (args, fields) in contract {
            let mut sim = SimDriver::new(500);
            sim.start();
            sim.fail_next_restart = true;
            let mut with_json = args.to_vec();
            with_json.push("--json");
            let out = run_sim(sim, &with_json);
            let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
            for field in fields {
                let pointer = format!("/{field}");
                assert!(
                    json.pointer(&pointer).is_some(),
                    "{args:?}: no {field} in {}",
                    out.stdout
                );
                let leaf = field.rsplit('/').next().expect("non-empty");
                assert!(
                    scripts.contains(&format!(".{leaf}")),
                    "no script reads .{leaf}: drop it from the list"
                );
            }
        }
    }

    #[test]
    fn json_is_found_on_a_command_line_that_does_not_parse() {
        assert!(wants_json(["pagewisectl", "hold", "x", "--json"]));
        assert!(wants_json(["pagewisectl", "--json", "frobnicate"]));
        assert!(!wants_json(["pagewisectl", "hold", "x"]));
        // The program name and anything after `--` are not flags.
        assert!(!wants_json(["--json", "hold"]));
        assert!(!wants_json(["pagewisectl", "log", "--", "--json"]));
    }

    #[test]
    fn usage_errors_with_json_are_the_documented_object() {
        for bad in [
            &["hold", "600001", "--json"][..],
            &["--json", "frobnicate"],
            &["cycles", "0", "--json"],
            &["--json"],
        ] {
            let err = parse(bad).expect_err("usage error");
            let out = usage_error(&err, true).expect("a usage error is reported as JSON");
            assert_eq!(out.status, ExitStatus::Usage, "{bad:?}");
            let json: serde_json::Value =
                serde_json::from_str(&out.stdout).expect("one JSON document");
            let object = json.as_object().expect("an object");
            assert_eq!(object.len(), 2, "only error and exit_code: {json}");
            assert_eq!(json["exit_code"], 2, "{bad:?}");
            let message = json["error"].as_str().expect("error is a string");
            assert!(
                !message.is_empty() && !message.starts_with("error:"),
                "{message}"
            );
            assert!(!message.contains('\n'), "{message}");
            assert_eq!(out.stderr, format!("pagewisectl: {message}\n"));
        }
        let err = parse(&["hold", "600001", "--json"]).expect_err("usage error");
        let out = usage_error(&err, true).expect("reported");
        assert!(
            out.stdout.contains("600001"),
            "names the bad value: {}",
            out.stdout
        );
        // Without --json clap reports it; --help is an answer, not an error.
        assert!(usage_error(&err, false).is_none());
        let help = parse(&["--help", "--json"]).expect_err("help");
        assert!(usage_error(&help, true).is_none());
    }

    #[test]
    fn errors_are_one_line() {
        let out = finish(Err(Error::NotFound), false);
        assert_eq!(
            out.stderr,
            "pagewisectl: no pagewise device: is the driver installed? see README\n"
        );
        assert_eq!(out.status.code(), 3);
        assert!(out.stdout.is_empty());
    }
}
