//! The parent: reads the image and PDB, runs each scenario in a child process under its
//! budgets, and turns the record streams into violations named by function, section and line.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pagecheck::Error;
use pagecheck::functions::Functions;
use pagecheck::image::Image;
use pagecheck::pdb::Symbols;
use serde::Serialize;

use crate::protocol::{self, Record};
use crate::scenario::Ioctl;

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The PDB; found beside the image when `None`.
    pub pdb: Option<PathBuf>,
    /// Scenarios to run (all when empty).
    pub scenarios: Vec<String>,
    /// Repetitions of each scenario's cycle.
    pub cycles: u32,
    /// The device's hardware key.
    pub registry: BTreeMap<String, u32>,
    /// Special-file paths (`WDF_SPECIAL_FILE_TYPE` 1 to 4) the device is put on once started.
    pub special_files: Vec<u32>,
    /// Wall-clock seconds per scenario.
    pub timeout_seconds: u64,
    /// CPU seconds per scenario.
    pub cpu_seconds: u64,
    /// Faulting instructions single-stepped per scenario.
    pub step_budget: u64,
    /// IOCTLs sent at the end of each scenario, their answers reported (`--ioctl`).
    pub ioctls: Vec<Ioctl>,
    /// The program to start children with (this executable).
    pub program: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pdb: None,
            scenarios: Vec::new(),
            cycles: 1,
            registry: BTreeMap::new(),
            special_files: Vec::new(),
            timeout_seconds: 60,
            cpu_seconds: 30,
            step_budget: 1_000_000,
            ioctls: Vec::new(),
            program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("cargo-pagerun")),
        }
    }
}

/// A source position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Source {
    /// File.
    pub file: String,
    /// Line.
    pub line: u32,
}

/// One violation.
#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    /// `fetch`, `read`, `write`, `irql`, `lock`, `request`, `bugcheck`, `crash`, `budget`, ...
    pub kind: String,
    /// The function that did it (for a fetch: the function fetched).
    pub symbol: String,
    /// The section touched (for a fetch: the function's section).
    pub section: String,
    /// Source line of the instruction.
    pub source: Option<Source>,
    /// IRQL at the time.
    pub irql: Option<u8>,
    /// The callback running.
    pub callback: String,
    /// Scenario.
    pub scenario: String,
    /// Step index in the scenario.
    pub step: u32,
    /// What the step was.
    pub step_label: String,
    /// What happened.
    pub message: String,
    /// The instruction's RVA, when in the image.
    pub rva: Option<u32>,
    /// In how many callback invocations it happened (same kind, place, callback and step).
    pub count: u32,
}

/// The answer to an `--ioctl` sent at the end of a scenario: what a user-mode
/// `DeviceIoControl` with the same buffers would have received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IoctlAnswer {
    /// The control code.
    pub code: u32,
    /// The input buffer, in hex.
    pub input: String,
    /// The output buffer's length.
    pub output_length: usize,
    /// The driver completed the request (within 1 s of virtual time).
    pub completed: bool,
    /// Its completion status (`NTSTATUS` as an unsigned 32-bit number); `None` when pending.
    pub status: Option<u32>,
    /// Its `Information`.
    pub information: u64,
    /// The output bytes copied back (`Information` of them, at most `output_length`), in hex.
    pub output: String,
}

/// One scenario's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioReport {
    /// Name.
    pub name: String,
    /// `completed`; `failed` (the driver failed a callback its device's start or return to D0
    /// needs, so the scenario's own steps did not all run: see `stop`); `stopped` (the run
    /// could not go on: see `stop`); or `incomplete`.
    pub status: &'static str,
    /// Why it failed or stopped.
    pub stop: Option<String>,
    /// Steps run.
    pub steps: u32,
    /// Callbacks called.
    pub callbacks: u32,
    /// How many times each callback slot was called (`EvtDeviceD0Entry`, `EvtIoRead`, ...).
    pub called: BTreeMap<String, u32>,
    /// Facts the run reported.
    pub info: BTreeMap<String, String>,
    /// The answers to `--ioctl`, in the order given.
    pub ioctls: Vec<IoctlAnswer>,
    /// Wall time in milliseconds.
    pub millis: u64,
}

/// Everything a run found; serialises as the `--format json` object.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Image path as given.
    pub image: String,
    /// PDB used.
    pub pdb: String,
    /// Scenarios.
    pub scenarios: Vec<ScenarioReport>,
    /// Violations, in scenario order.
    pub violations: Vec<Violation>,
}

impl Report {
    /// Exit status: 1 with violations (a failed scenario has one: its `start` or `power-up`
    /// failure), 2 when a scenario could not run to its end for a reason that is the host's (an
    /// unmodelled routine), 0 otherwise.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        if !self.violations.is_empty() {
            1
        } else if self.scenarios.iter().any(|s| s.status != "completed") {
            2
        } else {
            0
        }
    }
}

/// Stops that are the driver's fault, reported as violations.
const DRIVER_STOPS: &[&str] = &["crash", "budget", "bugcheck", "hang"];

struct Names<'a> {
    image: &'a Image,
    functions: Functions,
    symbols: &'a Symbols,
    /// Line programs read so far, by function start.
    lines: std::cell::RefCell<BTreeMap<u32, pagecheck::pdb::Lines>>,
}

impl Names<'_> {
    fn rva(&self, base: u64, address: u64) -> Option<u32> {
        let rva = address.checked_sub(base)?;
        u32::try_from(rva)
            .ok()
            .filter(|&r| r < self.image.size_of_image)
    }

    fn function(&self, rva: Option<u32>) -> String {
        match rva {
            Some(rva) => self.functions.containing(rva).map_or_else(
                || format!("<image+{rva:#x}>"),
                |f| self.functions.list[f].name.to_string(),
            ),
            None => "<framework or kernel code of the host>".to_owned(),
        }
    }

    fn section(&self, rva: Option<u32>) -> String {
        rva.and_then(|r| self.image.section_of(r))
            .map_or_else(|| "-".to_owned(), |s| self.image.sections[s].name.clone())
    }

    fn source(&self, rva: Option<u32>) -> Option<Source> {
        let rva = rva?;
        let f = self.functions.containing(rva)?;
        let start = self.functions.list[f].start;
        // The PDB's line program is read once per function, however many violations it has.
        let mut cache = self.lines.borrow_mut();
        let lines = cache
            .entry(start)
            .or_insert_with(|| self.symbols.lines_at(&[start, rva]));
        // A function whose code spans more than one PDB procedure: read the one at `rva`.
        let line = lines
            .at(rva, start, None)
            .or_else(|| self.symbols.lines_at(&[rva]).at(rva, start, None))?;
        Some(Source {
            file: line.file,
            line: line.line,
        })
    }
}

/// Runs every requested scenario on `image_path`.
///
/// # Errors
/// Unreadable or foreign image, missing PDB, an image the loader cannot map, an unknown
/// scenario, or a child that could not be started.
pub fn run(image_path: &Path, options: &Options) -> Result<Report, Error> {
    let bytes = std::fs::read(image_path)
        .map_err(|e| Error::new(format!("{}: {e}", image_path.display())))?;
    let image =
        Image::parse(bytes).map_err(|e| Error::new(format!("{}: {e}", image_path.display())))?;
    crate::loader::check(&image)
        .map_err(|e| Error::new(format!("{}: {e}", image_path.display())))?;
    let pdb_path = match &options.pdb {
        Some(p) => p.clone(),
        None => pagecheck::pdb::locate(image_path, image.codeview.as_ref()).ok_or_else(|| {
            Error::new(format!(
                "{}: no PDB beside the image; pass it with --pdb",
                image_path.display()
            ))
        })?,
    };
    let symbols = Symbols::load(&pdb_path, &image)?;
    let names = Names {
        functions: Functions::build(&image, &symbols),
        image: &image,
        symbols: &symbols,
        lines: std::cell::RefCell::new(BTreeMap::new()),
    };
    let binds = image
        .imports
        .iter()
        .any(|(_, n)| n.eq_ignore_ascii_case("WdfLdr.sys!WdfVersionBind"));
    let rva_of = |name: &str| symbols.find(name).map(|s| s.rva);
    let table_rva = if binds {
        None
    } else {
        symbols
            .symbols
            .iter()
            .find(|s| pagecheck::wdf::is_function_table(&s.raw))
            .map(|s| s.rva)
    };
    let globals_rva = if binds {
        None
    } else {
        rva_of("WdfDriverGlobals")
    };
    let count_rva = rva_of("WdfFunctionCount");

    let scenarios: Vec<String> = if options.scenarios.is_empty() {
        crate::scenario::ALL
            .iter()
            .map(|(n, _)| (*n).to_owned())
            .collect()
    } else {
        for s in &options.scenarios {
            if !crate::scenario::ALL.iter().any(|(n, _)| n == s) {
                return Err(Error::new(format!(
                    "unknown scenario `{s}`; the scenarios are {}",
                    crate::scenario::ALL
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        options.scenarios.clone()
    };

    let mut report = Report {
        image: image_path.display().to_string(),
        pdb: pdb_path.display().to_string(),
        scenarios: Vec::new(),
        violations: Vec::new(),
    };
    for scenario in scenarios {
        let mut command = Command::new(&options.program);
        command
            .arg("__child")
            .arg(image_path)
            .arg(&scenario)
            .arg(options.cycles.to_string())
            .arg(options.step_budget.to_string())
            .arg(options.cpu_seconds.to_string())
            .arg(table_rva.map_or("-".to_owned(), |r| r.to_string()))
            .arg(globals_rva.map_or("-".to_owned(), |r| r.to_string()))
            .arg(count_rva.map_or("-".to_owned(), |r| r.to_string()));
        for (k, v) in &options.registry {
            command.arg(format!("{k}={v}"));
        }
        for t in &options.special_files {
            command.arg(format!("special:{t}"));
        }
        for ioctl in &options.ioctls {
            command.arg(format!("ioctl:{}", ioctl.to_arg()));
        }
        let started = Instant::now();
        let child = run_child(command, Duration::from_secs(options.timeout_seconds))?;
        let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        collect(
            &names,
            &scenario,
            &options.ioctls,
            &child,
            child.timed_out.then_some(options.timeout_seconds),
            millis,
            &mut report,
        );
    }
    Ok(report)
}

/// What a scenario process left behind.
struct ChildOutput {
    /// Its record stream.
    records: String,
    /// Its standard error (the host's own panic message, if it had one), at most 64 KiB.
    stderr: String,
    /// Killed at the wall-clock budget.
    timed_out: bool,
    /// Exit status (`None`: ended by a signal).
    exit: Option<i32>,
}

fn run_child(mut command: Command, timeout: Duration) -> Result<ChildOutput, Error> {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null());
    let mut child = command
        .spawn()
        .map_err(|e| Error::new(format!("cannot start the scenario process: {e}")))?;
    let mut stdout = child.stdout.take().ok_or_else(|| Error::new("no pipe"))?;
    let mut stderr = child.stderr.take().ok_or_else(|| Error::new("no pipe"))?;
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        // The budgets bound what a child can write: at most one record per step and fault.
        let _ = (&mut stdout).take(64 << 20).read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    });
    let error_reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = (&mut stderr).take(64 << 10).read_to_end(&mut text);
        // Drain the rest so the child never blocks on a full pipe.
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        String::from_utf8_lossy(&text).into_owned()
    });
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(_) => break None,
        }
    };
    Ok(ChildOutput {
        records: reader.join().unwrap_or_default(),
        stderr: error_reader.join().unwrap_or_default(),
        timed_out,
        exit: status.and_then(|s| s.code()),
    })
}

/// One line saying why a scenario process ended without finishing: its exit status and, when
/// the host itself panicked, the panic's place and message from its standard error (else the
/// last line it wrote there).
#[must_use]
pub fn incomplete_reason(exit: Option<i32>, stderr: &str) -> String {
    let status = exit.map_or_else(|| "none: killed by a signal".to_owned(), |c| c.to_string());
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let detail = if let Some(at) = lines.iter().position(|l| l.contains("panicked at")) {
        // `thread 'main' (123) panicked at src/x.rs:1:2:` then the message on the next line
        // (older toolchains put the message after a comma on the same line).
        let place = lines[at]
            .split_once("panicked at ")
            .map_or(lines[at], |(_, p)| p)
            .trim_end_matches(':');
        let message = lines
            .get(at + 1)
            .filter(|l| !l.starts_with("note:") && !l.starts_with("stack backtrace"))
            .copied()
            .unwrap_or("");
        format!(": the host panicked at {place}: {message}")
    } else if let Some(last) = lines.last() {
        format!(": {last}")
    } else {
        String::new()
    };
    let mut reason =
        format!("the scenario process ended without finishing (exit status {status}){detail}");
    reason.retain(|c| !c.is_control());
    reason
}

fn collect(
    names: &Names<'_>,
    scenario: &str,
    ioctls: &[Ioctl],
    child: &ChildOutput,
    timed_out: Option<u64>,
    millis: u64,
    report: &mut Report,
) {
    let mut base = names.image.image_base;
    let mut steps: BTreeMap<u32, String> = BTreeMap::new();
    let mut callbacks: BTreeMap<u32, (String, u64)> = BTreeMap::new();
    let mut regions: BTreeMap<usize, String> = BTreeMap::new();
    let mut info = BTreeMap::new();
    let mut done = false;
    let mut stop = None;
    let mut failed = None;
    let mut answers: Vec<IoctlAnswer> = Vec::new();
    let mut found: Vec<Violation> = Vec::new();
    // The same violation again: same kind, function, section, callback and step, and (except
    // for an instruction fetch, which faults at every instruction of a paged function) the
    // same instruction, so that two calls that break a contract stay two violations.
    // `count` is the number of callback invocations it happened in: a paged function fetched
    // instruction by instruction, or a loop that calls a routine many times, counts once per
    // invocation.
    let mut invocations: std::collections::HashSet<(usize, u32)> = std::collections::HashSet::new();
    let mut push = |v: Violation, invocation: u32, found: &mut Vec<Violation>| {
        let index = if let Some(i) = found.iter().position(|x| {
            x.kind == v.kind
                && x.symbol == v.symbol
                && x.section == v.section
                && x.callback == v.callback
                && x.step == v.step
                && (v.kind == "fetch" || x.rva == v.rva)
        }) {
            if !invocations.contains(&(i, invocation)) {
                found[i].count += 1;
            }
            i
        } else {
            found.push(v);
            found.len() - 1
        };
        invocations.insert((index, invocation));
    };
    for line in child.records.lines() {
        let Some(record) = protocol::parse(line) else {
            continue;
        };
        match record {
            Record::Step { index, label } => {
                steps.insert(index, label);
            }
            Record::Callback {
                id, name, address, ..
            } => {
                callbacks.insert(id, (name, address));
            }
            Record::Region { index, name } => {
                regions.insert(index, name);
            }
            Record::Info { key, value } => {
                if key == "base"
                    && let Some(b) = value
                        .split(' ')
                        .next()
                        .and_then(|v| v.strip_prefix("0x"))
                        .and_then(|v| u64::from_str_radix(v, 16).ok())
                {
                    base = b;
                }
                info.insert(key, value);
            }
            Record::Done => done = true,
            Record::Ioctl {
                index,
                status,
                information,
                output,
            } => {
                if let Some(sent) = ioctls.get(index) {
                    answers.push(IoctlAnswer {
                        code: sent.code,
                        input: crate::scenario::encode_hex(&sent.input),
                        output_length: sent.output_length,
                        completed: status.is_some(),
                        status: status.map(i32::cast_unsigned),
                        information,
                        output,
                    });
                }
            }
            Record::Fault {
                kind,
                rip,
                address,
                irql,
                step,
                callback,
                region,
                locks,
                disk_off,
            } => {
                let rip_rva = names.rva(base, rip);
                let data_rva = names.rva(base, address);
                let region_name = regions
                    .get(&region)
                    .cloned()
                    .unwrap_or_else(|| format!("region {region}"));
                let (symbol, section) = if kind == "fetch" {
                    (names.function(data_rva.or(rip_rva)), region_name.clone())
                } else {
                    (names.function(rip_rva), region_name.clone())
                };
                let why = if region_name.starts_with("INIT") {
                    "INIT is discarded once DriverEntry returns".to_owned()
                } else if disk_off {
                    "the paging disk is off (power-nonpageable device in a system power transition)"
                        .to_owned()
                } else if locks > 0 {
                    format!("{locks} spin lock(s) held, IRQL {irql}")
                } else {
                    format!("IRQL {irql} ({})", crate::host::irql_name(irql))
                };
                let what = match kind.as_str() {
                    "fetch" => format!("instruction fetch from {region_name}"),
                    "read" => format!("read of {region_name} data at {address:#x}"),
                    _ => format!("write of {region_name} data at {address:#x}"),
                };
                let (callback_name, _) = callbacks.get(&callback).cloned().unwrap_or_default();
                push(
                    Violation {
                        kind: kind.clone(),
                        symbol,
                        section,
                        source: names.source(if kind == "fetch" {
                            data_rva.or(rip_rva)
                        } else {
                            rip_rva
                        }),
                        irql: Some(irql),
                        callback: callback_name,
                        scenario: scenario.to_owned(),
                        step,
                        step_label: steps.get(&step).cloned().unwrap_or_default(),
                        message: format!("{what} while it is inaccessible: {why}"),
                        rva: rip_rva,
                        count: 1,
                    },
                    callback,
                    &mut found,
                );
            }
            Record::Finding {
                class,
                kind,
                rip,
                step,
                callback,
                irql,
                text,
            } => {
                let (callback_name, callback_address) =
                    callbacks.get(&callback).cloned().unwrap_or_default();
                let at = if rip == 0 { callback_address } else { rip };
                let rva = names.rva(base, at);
                let v = Violation {
                    kind: kind.clone(),
                    symbol: if at == 0 {
                        "-".to_owned()
                    } else {
                        names.function(rva)
                    },
                    section: names.section(rva),
                    source: names.source(rva),
                    irql: Some(irql),
                    callback: callback_name,
                    scenario: scenario.to_owned(),
                    step,
                    step_label: steps.get(&step).cloned().unwrap_or_default(),
                    message: text.clone(),
                    rva,
                    count: 1,
                };
                match class.as_str() {
                    "v" => push(v, callback, &mut found),
                    "fail" => {
                        failed.get_or_insert_with(|| text.clone());
                        push(v, callback, &mut found);
                    }
                    "stop" if DRIVER_STOPS.contains(&kind.as_str()) => {
                        stop = Some(format!("{kind}: {text}"));
                        push(v, callback, &mut found);
                    }
                    "stop" => {
                        stop = Some(if kind == "unmodelled" {
                            format!(
                                "the driver called {text}, which this host does not implement (from {} in {})",
                                v.symbol,
                                if v.callback.is_empty() {
                                    "-"
                                } else {
                                    &v.callback
                                }
                            )
                        } else {
                            format!("{kind}: {text}")
                        });
                    }
                    _ => {
                        info.insert(format!("event {kind}"), text);
                    }
                }
            }
        }
    }
    let status = if let Some(seconds) = timed_out {
        let step = steps.keys().next_back().copied().unwrap_or(0);
        push(
            Violation {
                kind: "budget".to_owned(),
                symbol: "-".to_owned(),
                section: "-".to_owned(),
                source: None,
                irql: None,
                callback: String::new(),
                scenario: scenario.to_owned(),
                step,
                step_label: steps.get(&step).cloned().unwrap_or_default(),
                message: format!("the wall-clock budget of {seconds} s per scenario was exceeded"),
                rva: None,
                count: 1,
            },
            0,
            &mut found,
        );
        stop = Some(format!("wall-clock budget of {seconds} s exceeded"));
        "stopped"
    } else if done && failed.is_some() {
        stop = failed;
        "failed"
    } else if done {
        "completed"
    } else if stop.is_some() {
        "stopped"
    } else {
        stop = Some(incomplete_reason(child.exit, &child.stderr));
        "incomplete"
    };
    report.scenarios.push(ScenarioReport {
        name: scenario.to_owned(),
        status,
        stop,
        steps: u32::try_from(steps.len()).unwrap_or(u32::MAX),
        callbacks: u32::try_from(callbacks.len()).unwrap_or(u32::MAX),
        called: callbacks
            .values()
            .fold(BTreeMap::new(), |mut called, (name, _)| {
                *called.entry(name.clone()).or_insert(0) += 1;
                called
            }),
        info,
        ioctls: answers,
        millis,
    });
    report.violations.extend(found);
}

#[cfg(test)]
mod tests {
    use super::incomplete_reason;

    #[test]
    fn a_host_panic_is_one_line_with_its_place_and_message() {
        let stderr = "\nthread 'main' (4242) panicked at crates/pagerun/src/host.rs:321:42:\n\
                      host installed\nnote: run with `RUST_BACKTRACE=1` environment variable to \
                      display a backtrace\n";
        assert_eq!(
            incomplete_reason(Some(101), stderr),
            "the scenario process ended without finishing (exit status 101): the host panicked \
             at crates/pagerun/src/host.rs:321:42: host installed"
        );
    }

    #[test]
    fn other_endings_name_the_status_and_the_last_line() {
        assert_eq!(
            incomplete_reason(None, ""),
            "the scenario process ended without finishing (exit status none: killed by a signal)"
        );
        assert_eq!(
            incomplete_reason(Some(134), "memory allocation of 8 bytes failed\n"),
            "the scenario process ended without finishing (exit status 134): memory allocation \
             of 8 bytes failed"
        );
    }
}
