//! The driver's release image under `cargo pagerun`, in `cargo xtask test`: every scenario,
//! power-pageable and power-nonpageable, with special-file support off and on (the device on
//! the paging path), [`CYCLES`] cycles each. Each run must complete every scenario without a
//! violation, and what the driver itself counted and logged, read back at the end of each
//! scenario through its IOCTLs (`cargo pagerun --ioctl`) and decoded with
//! `pagewise-client`, must be what the scenario did.

use std::time::Instant;

use pagewise_client::device::{Client, Transport};
use pagewise_client::error::OsError;
use pagewise_client::{Error, decode};
use pagewise_ioctl::{
    CallbackId, IOCTL_PAGEWISE_GET_CONFIG, IOCTL_PAGEWISE_GET_LOG, IOCTL_PAGEWISE_GET_STATS,
    IOCTL_PAGEWISE_GET_VERSION, LogHeader, PageabilityReason, TransitionRecord, special_file,
    transition_flag,
};
use serde_json::Value;

use crate::image::Built;

/// Sleep/resume (idle, stop/restart) cycles of each scenario.
pub const CYCLES: u64 = 100;

/// What the hardware key holds and where the device is put for one run.
pub struct Configuration {
    /// For the output.
    pub name: &'static str,
    /// `PowerPageable`: 1 `WdfDeviceInitSetPowerPageable`, 0 `...NotPageable`.
    pub power_pageable: bool,
    /// `SpecialFileSupport`, and the device put on the paging path once started.
    pub special_files: bool,
}

impl Configuration {
    /// `cargo pagerun` arguments of this configuration.
    fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--registry".to_owned(),
            format!("PowerPageable={}", u32::from(self.power_pageable)),
            "--registry".to_owned(),
            format!("SpecialFileSupport={}", u32::from(self.special_files)),
        ];
        if self.special_files {
            args.extend(["--special-file".to_owned(), "paging".to_owned()]);
        }
        args
    }
}

/// The four configurations of issue 17.
pub const CONFIGURATIONS: [Configuration; 4] = [
    Configuration {
        name: "power-pageable",
        power_pageable: true,
        special_files: false,
    },
    Configuration {
        name: "power-nonpageable",
        power_pageable: false,
        special_files: false,
    },
    Configuration {
        name: "power-pageable, on the paging path",
        power_pageable: true,
        special_files: true,
    },
    Configuration {
        name: "power-nonpageable, on the paging path",
        power_pageable: false,
        special_files: true,
    },
];

/// Lifetime counters the hardware key holds before the run: the driver reads them at device
/// add and reports them as `persisted_d0_entries`/`_exits`.
const STORED_ENTRIES: u64 = 1000;
const STORED_EXITS: u64 = 999;

/// The `GET_LOG` request `pagewise-client` sends for "everything since sequence 0": a
/// zero `LogQuery` and room for its chunk of records.
const LOG_OUTPUT: usize =
    size_of::<LogHeader>() + pagewise_client::device::LOG_CHUNK * size_of::<TransitionRecord>();

/// The IOCTLs read back at the end of each scenario, as `--ioctl` arguments: the same
/// requests `pagewise-client` sends.
fn read_back_args() -> Vec<String> {
    [
        format!(
            "{IOCTL_PAGEWISE_GET_VERSION:#x}:{}",
            size_of::<pagewise_ioctl::VersionInfo>()
        ),
        format!(
            "{IOCTL_PAGEWISE_GET_CONFIG:#x}:{}",
            size_of::<pagewise_ioctl::Config>()
        ),
        format!(
            "{IOCTL_PAGEWISE_GET_STATS:#x}:{}",
            size_of::<pagewise_ioctl::Stats>()
        ),
        format!(
            "{IOCTL_PAGEWISE_GET_LOG:#x}:{LOG_OUTPUT}:{}",
            "00".repeat(size_of::<pagewise_ioctl::LogQuery>())
        ),
    ]
    .into_iter()
    .flat_map(|arg| ["--ioctl".to_owned(), arg])
    .collect()
}

/// One violation of a pagerun report.
#[derive(Debug)]
pub struct Violation {
    /// Kind (`fetch`).
    pub kind: String,
    /// Function.
    pub symbol: String,
    /// Callback slot running.
    pub callback: String,
    /// Scenario.
    pub scenario: String,
    /// What happened.
    pub message: String,
}

/// A finished `cargo pagerun`.
pub struct Outcome {
    /// Its exit status (0 or 1).
    pub exit: i32,
    /// Its JSON report.
    pub report: Value,
}

impl Outcome {
    /// The report's violations.
    pub fn violations(&self) -> Vec<Violation> {
        self.report["violations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
                Violation {
                    kind: s("kind"),
                    symbol: s("symbol"),
                    callback: s("callback"),
                    scenario: s("scenario"),
                    message: s("message"),
                }
            })
            .collect()
    }
}

/// `cargo pagerun --format json` on `built` in `configuration`, with `extra` arguments.
pub fn pagerun(
    cargo: &str,
    built: &Built,
    configuration: &Configuration,
    extra: &[&str],
) -> Result<Outcome, String> {
    let output = super::cargo_run(cargo, "cargo-pagerun")
        .arg("pagerun")
        .arg(&built.sys)
        .arg("--pdb")
        .arg(&built.pdb)
        .args(["--format", "json"])
        .args(configuration.args())
        .args(extra)
        .output()
        .map_err(|e| format!("cannot run cargo pagerun: {e}"))?;
    let exit = output.status.code().unwrap_or(-1);
    if !matches!(exit, 0 | 1) {
        return Err(format!(
            "cargo pagerun could not run {} ({}, exit {exit}): {}",
            built.sys.display(),
            configuration.name,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let report = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("cargo pagerun's JSON does not parse: {e}"))?;
    Ok(Outcome { exit, report })
}

/// One `--ioctl` answer of a scenario.
struct Answer {
    code: u32,
    input: Vec<u8>,
    output_length: usize,
    status: Option<u32>,
    output: Vec<u8>,
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

fn answers(scenario: &Value) -> Result<Vec<Answer>, String> {
    scenario["ioctls"]
        .as_array()
        .ok_or("no `ioctls` in the scenario's report")?
        .iter()
        .map(|a| {
            Some(Answer {
                code: u32::try_from(a["code"].as_u64()?).ok()?,
                input: hex(a["input"].as_str()?)?,
                output_length: usize::try_from(a["output_length"].as_u64()?).ok()?,
                status: a["status"].as_u64().and_then(|s| u32::try_from(s).ok()),
                output: hex(a["output"].as_str()?)?,
            })
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| "an `ioctls` entry that does not parse".to_owned())
}

/// Answers `pagewise-client`'s requests with what the run read back: the request must be one
/// the run sent, with the same input and output length.
struct Replay(Vec<Answer>);

impl Transport for Replay {
    fn ioctl(&mut self, code: u32, input: &[u8], output: &mut [u8]) -> Result<usize, OsError> {
        let failed = |code: u32, message: String| OsError {
            operation: format!("DeviceIoControl({code:#010x})"),
            code,
            message,
        };
        let answer = self
            .0
            .iter()
            .find(|a| a.code == code && a.input == input && a.output_length == output.len())
            .ok_or_else(|| failed(code, "not sent by the run".to_owned()))?;
        match answer.status {
            None => Err(failed(
                code,
                "still pending at the end of the run".to_owned(),
            )),
            Some(status) if status.cast_signed() < 0 => Err(failed(
                code,
                format!("completed with NTSTATUS {status:#010x}"),
            )),
            Some(_) => {
                let bytes = output
                    .get_mut(..answer.output.len())
                    .ok_or_else(|| failed(code, "more output than its buffer".to_owned()))?;
                bytes.copy_from_slice(&answer.output);
                Ok(answer.output.len())
            }
        }
    }
}

/// One logged callback: id, previous state, target state (`WDF_POWER_DEVICE_STATE`).
type Logged = (CallbackId, u8, u8);

const D0: u8 = 1;
const D3: u8 = 4;
const D3_FINAL: u8 = 5;

/// The log of a start: `EvtDeviceD0Entry` from `D3Final`, `EvtDeviceSelfManagedIoInit`.
const START: [Logged; 2] = [
    (CallbackId::D0Entry, D3_FINAL, D0),
    (CallbackId::SelfManagedIoInit, 0, 0),
];

/// What the driver must have counted and logged at the end of `scenario`.
struct Expected {
    d0_entries: u64,
    d0_exits: u64,
    resumes: u64,
    log: Vec<Logged>,
}

/// `on_path`: the device is on the paging path, which KMDF does not let be stopped, so
/// `stop-restart` is only a start and a removal.
fn expected(scenario: &str, on_path: bool) -> Result<Expected, String> {
    // A power-down and the return to D0: suspend, D0 exit, D0 entry, restart.
    let cycle = |low: u8| -> [Logged; 4] {
        [
            (CallbackId::SelfManagedIoSuspend, 0, 0),
            (CallbackId::D0Exit, D0, low),
            (CallbackId::D0Entry, low, D0),
            (CallbackId::SelfManagedIoRestart, 0, 0),
        ]
    };
    let (low, resumes) = match scenario {
        "start" | "io" | "surprise-removal" => {
            return Ok(Expected {
                d0_entries: 1,
                d0_exits: 0,
                resumes: 0,
                log: START.to_vec(),
            });
        }
        "stop-restart" if on_path => {
            return Ok(Expected {
                d0_entries: 1,
                d0_exits: 0,
                resumes: 0,
                log: START.to_vec(),
            });
        }
        // A return from D3 is a resume, timed; one from D3Final (a PnP stop) is a start.
        "idle" | "sleep" | "hibernate" => (D3, CYCLES),
        "stop-restart" => (D3_FINAL, 0),
        other => return Err(format!("no expectation for scenario `{other}`")),
    };
    let mut log = START.to_vec();
    for _ in 0..CYCLES {
        log.extend(cycle(low));
    }
    Ok(Expected {
        d0_entries: 1 + CYCLES,
        d0_exits: CYCLES,
        resumes,
        log,
    })
}

/// What one scenario's read-back showed, for the output.
struct Seen {
    d0_entries: u64,
    d0_exits: u64,
    resumes: u64,
    logged: u64,
    held: usize,
    persisted_writes: u64,
}

fn client_error(what: &str, e: &Error) -> String {
    format!("{what}: {e:?}")
}

/// Decodes a scenario's read-back with `pagewise-client` and compares it with what the
/// scenario did in `configuration`.
fn check_read_back(
    configuration: &Configuration,
    scenario: &Value,
    registered: usize,
    version: &str,
) -> Result<Seen, String> {
    let name = scenario["name"].as_str().unwrap_or_default();
    let expected = expected(name, configuration.special_files)?;
    if name == "stop-restart" && configuration.special_files {
        let skipped = scenario["info"]["skipped"].as_str().unwrap_or_default();
        if !skipped.starts_with("stop-restart: the device is on the paging path") {
            return Err(format!(
                "a device on the paging path was stopped (info.skipped: {skipped:?})"
            ));
        }
    }
    let mut client = Client::new(Replay(answers(scenario)?));
    let info = client
        .check_version()
        .map_err(|e| client_error("version", &e))?;
    if decode::driver_version_string(info.driver_version) != version {
        return Err(format!(
            "the driver reports version {}, its package is {version}",
            decode::driver_version_string(info.driver_version)
        ));
    }

    let config = client.config().map_err(|e| client_error("config", &e))?;
    check_config(configuration, &config, registered)?;
    let stats = client.stats().map_err(|e| client_error("stats", &e))?;
    check_stats(configuration, &stats, &expected)?;
    let log = client.log_since(0).map_err(|e| client_error("log", &e))?;
    check_log(configuration, &log, &stats, &expected)?;
    Ok(Seen {
        d0_entries: stats.d0_entries,
        d0_exits: stats.d0_exits,
        resumes: stats.resumes,
        logged: log.header.next_sequence,
        held: log.records.len(),
        persisted_writes: stats.persisted_writes,
    })
}

/// The configuration: as chosen from the registry, the device on the paging path when put
/// there, PAGEPWR locked when nonpageable or with special-file support, and the self-check's
/// table complete: every registered callback where its placement puts it, which needs the
/// driver object to describe the loaded image.
fn check_config(
    configuration: &Configuration,
    config: &pagewise_ioctl::Config,
    registered: usize,
) -> Result<(), String> {
    let nonpageable = !configuration.power_pageable || configuration.special_files;
    let want = [
        (
            "power_pageable",
            config.power_pageable,
            u32::from(configuration.power_pageable),
        ),
        ("reason", config.reason, PageabilityReason::Setting as u32),
        (
            "special_files",
            config.special_files,
            if configuration.special_files {
                special_file::PAGING
            } else {
                0
            },
        ),
        (
            "effective_nonpageable",
            config.effective_nonpageable,
            u32::from(nonpageable),
        ),
        (
            "power_down_locked",
            config.power_down_locked,
            u32::from(!configuration.power_pageable || configuration.special_files),
        ),
        (
            "callback_count",
            config.callback_count,
            u32::try_from(registered).unwrap_or(u32::MAX),
        ),
    ];
    for (field, got, wanted) in want {
        if got != wanted {
            return Err(format!("Config.{field} = {got}, expected {wanted}"));
        }
    }
    for placement in &config.callbacks[..config.callback_count as usize] {
        let judged = decode::judge(placement);
        if judged != decode::Placement::Expected {
            return Err(format!(
                "the self-check found callback {} in {:?}: {}",
                placement.callback,
                decode::section_name(&placement.section),
                judged.name()
            ));
        }
    }

    Ok(())
}

/// The counters: D0 entries, exits and timed resumes as the scenario ran them, the lifetime
/// counts the hardware key held, and no registry write on the paging path.
fn check_stats(
    configuration: &Configuration,
    stats: &pagewise_ioctl::Stats,
    expected: &Expected,
) -> Result<(), String> {
    let want = [
        ("d0_entries", stats.d0_entries, expected.d0_entries),
        ("d0_exits", stats.d0_exits, expected.d0_exits),
        ("resumes", stats.resumes, expected.resumes),
        (
            "persisted_d0_entries",
            stats.persisted_d0_entries,
            STORED_ENTRIES,
        ),
        ("persisted_d0_exits", stats.persisted_d0_exits, STORED_EXITS),
    ];
    for (field, got, wanted) in want {
        if got != wanted {
            return Err(format!("Stats.{field} = {got}, expected {wanted}"));
        }
    }
    // On the paging path the driver must not touch the registry: its device may be the
    // paging device itself.
    if configuration.special_files && stats.persisted_writes != 0 {
        return Err(format!(
            "Stats.persisted_writes = {} on the paging path, expected 0",
            stats.persisted_writes
        ));
    }

    Ok(())
}

/// The transition log: every callback the scenario ran, in order, with the flags of the
/// device's pageability at the time; the ring holds the newest of them and says how many it
/// dropped.
fn check_log(
    configuration: &Configuration,
    log: &decode::LogBatch,
    stats: &pagewise_ioctl::Stats,
    expected: &Expected,
) -> Result<(), String> {
    let total = expected.log.len() as u64;
    let capacity = u64::from(log.header.capacity);
    let held = total.min(capacity);
    if log.header.next_sequence != total
        || log.records.len() as u64 != held
        || log.lost != total - held
        || stats.log_overwritten != total - held
    {
        return Err(format!(
            "log: next sequence {}, {} records held, {} lost, {} overwritten; expected {total} \
             logged, {held} held, {} dropped",
            log.header.next_sequence,
            log.records.len(),
            log.lost,
            stats.log_overwritten,
            total - held
        ));
    }
    for record in &log.records {
        let sequence = usize::try_from(record.sequence).unwrap_or(usize::MAX);
        let &(callback, previous, target) = expected
            .log
            .get(sequence)
            .ok_or_else(|| format!("log record {sequence} past the scenario's end"))?;
        let from_start = sequence < START.len();
        // The device is put on the paging path after its start.
        let on_path = configuration.special_files && !from_start;
        let effective_nonpageable = !configuration.power_pageable || on_path;
        let mut flags = 0;
        if !effective_nonpageable {
            flags |= transition_flag::POWER_PAGEABLE;
        }
        if !configuration.power_pageable || configuration.special_files {
            flags |= transition_flag::POWER_DOWN_LOCKED;
        }
        // WdfDevStateIsNP of the framework's state is defined for the transitions after the
        // start; the start's own records are not checked for it.
        let np_known = !from_start;
        if np_known && effective_nonpageable {
            flags |= transition_flag::NONPAGEABLE_STATE;
        }
        let got_flags = if np_known {
            record.flags
        } else {
            record.flags & !transition_flag::NONPAGEABLE_STATE
        };
        let got = (
            CallbackId::from_u16(record.callback),
            record.previous_state,
            record.target_state,
            got_flags,
            record.irql,
            record.status,
        );
        if got != (Some(callback), previous, target, flags, 0, 0) {
            return Err(format!(
                "log record {sequence} is {got:?}, expected {:?}",
                (Some(callback), previous, target, flags, 0, 0)
            ));
        }
    }
    Ok(())
}

/// Runs the image through every scenario in each of [`CONFIGURATIONS`]: no violation, every
/// scenario completed, and the read-back as the scenario ran.
pub fn check(cargo: &str, built: &Built, registered: usize, version: &str) -> Result<(), String> {
    let cycles = CYCLES.to_string();
    let stored = [
        format!("LifetimeD0Entries={STORED_ENTRIES}"),
        format!("LifetimeD0Exits={STORED_EXITS}"),
    ];
    let read_back = read_back_args();
    let mut args: Vec<&str> = vec!["--cycles", &cycles];
    for value in &stored {
        args.extend(["--registry", value.as_str()]);
    }
    args.extend(read_back.iter().map(String::as_str));
    for configuration in &CONFIGURATIONS {
        let started = Instant::now();
        let outcome = pagerun(cargo, built, configuration, &args)?;
        let seconds = started.elapsed().as_secs_f64();
        let violations = outcome.violations();
        if !violations.is_empty() || outcome.exit != 0 {
            return Err(format!(
                "cargo pagerun ({}, {CYCLES} cycles) on {}: exit {}, {} violation(s):\n{}",
                configuration.name,
                built.sys.display(),
                outcome.exit,
                violations.len(),
                violations
                    .iter()
                    .map(|v| format!(
                        "  {} in {} during {} ({}): {}",
                        v.kind, v.symbol, v.callback, v.scenario, v.message
                    ))
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
        let scenarios = outcome.report["scenarios"]
            .as_array()
            .ok_or("no scenarios in pagerun's report")?;
        if scenarios.len() != 7 {
            return Err(format!(
                "cargo pagerun ran {} scenarios, not 7",
                scenarios.len()
            ));
        }
        let mut line = Vec::new();
        for scenario in scenarios {
            let name = scenario["name"].as_str().unwrap_or_default();
            if scenario["status"] != "completed" {
                return Err(format!(
                    "cargo pagerun ({}): scenario {name} is {}: {}",
                    configuration.name, scenario["status"], scenario["stop"]
                ));
            }
            let seen =
                check_read_back(configuration, scenario, registered, version).map_err(|e| {
                    format!(
                        "cargo pagerun ({}), scenario {name}: the driver's read-back does not \
                         match the scenario: {e}",
                        configuration.name
                    )
                })?;
            line.push(format!(
                "{name} {}/{}/{} D0 entries/exits/resumes, {} logged ({} held), {} registry \
                 writes",
                seen.d0_entries,
                seen.d0_exits,
                seen.resumes,
                seen.logged,
                seen.held,
                seen.persisted_writes
            ));
        }
        println!(
            "xtask: pagerun ({}, {CYCLES} cycles): 7 scenarios completed, 0 violations, read-back \
             as run, {seconds:.1} s",
            configuration.name
        );
        for item in line {
            println!("xtask:   {item}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_follow_the_scenarios() {
        let sleep = expected("sleep", false).expect("sleep");
        assert_eq!(
            (sleep.d0_entries, sleep.d0_exits, sleep.resumes),
            (CYCLES + 1, CYCLES, CYCLES)
        );
        assert_eq!(sleep.log.len() as u64, 2 + 4 * CYCLES);
        assert_eq!(sleep.log[3], (CallbackId::D0Exit, D0, D3));
        let stop = expected("stop-restart", false).expect("stop-restart");
        assert_eq!(stop.resumes, 0);
        assert_eq!(stop.log[4], (CallbackId::D0Entry, D3_FINAL, D0));
        assert_eq!(expected("io", false).expect("io").log, START.to_vec());
        assert_eq!(
            expected("stop-restart", true)
                .expect("on the path")
                .d0_exits,
            0
        );
        assert!(expected("nap", false).is_err());
    }

    #[test]
    fn the_replay_answers_only_what_was_sent() {
        let mut replay = Replay(vec![
            Answer {
                code: 7,
                input: vec![1],
                output_length: 4,
                status: Some(0),
                output: vec![9, 8],
            },
            Answer {
                code: 8,
                input: Vec::new(),
                output_length: 4,
                status: Some(0xC000_0023),
                output: Vec::new(),
            },
        ]);
        let mut out = [0u8; 4];
        assert_eq!(replay.ioctl(7, &[1], &mut out), Ok(2));
        assert_eq!(out, [9, 8, 0, 0]);
        assert!(replay.ioctl(7, &[2], &mut out).is_err());
        assert!(replay.ioctl(7, &[1], &mut [0u8; 8]).is_err());
        assert!(replay.ioctl(8, &[], &mut out).is_err());
    }

    #[test]
    fn configurations_give_pagerun_the_registry_values() {
        assert_eq!(
            CONFIGURATIONS[3].args(),
            [
                "--registry",
                "PowerPageable=0",
                "--registry",
                "SpecialFileSupport=1",
                "--special-file",
                "paging"
            ]
        );
        assert_eq!(read_back_args().len(), 8);
        assert!(read_back_args()[7].ends_with(":4120:0000000000000000"));
    }
}
