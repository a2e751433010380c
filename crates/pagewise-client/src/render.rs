//! What each command prints: a view that serialises to JSON for scripts and renders as a
//! table for people.

use crate::cycles::{CyclesReport, Summary};
use crate::decode::{self, LogBatch, Placement};
use crate::error::ExitStatus;
use pagewise_ioctl::{
    CallbackId, Config, INTERFACE_VERSION, PageabilityReason, Stats, VersionInfo, transition_flag,
};
use pagewise_roles::Role;
use serde::Serialize;
use std::fmt::Write as _;

/// `version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VersionView {
    /// The driver's interface version.
    pub interface_version: u32,
    /// This client's interface version.
    pub client_interface_version: u32,
    /// The driver package version, `major.minor.patch`.
    pub driver_version: String,
    /// True when the two interface versions match.
    pub compatible: bool,
}

/// One callback of `config`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlacementView {
    /// KMDF name.
    pub callback: &'static str,
    /// Declared role.
    pub role: &'static str,
    /// Section the driver found the function in.
    pub section: String,
    /// Section the role asks for.
    pub expected_section: &'static str,
    /// Relative virtual address.
    pub rva: u32,
    /// `ok`, `differs` or `VIOLATION`.
    pub placement: &'static str,
}

/// `config`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigView {
    /// Chosen at init.
    pub power_pageable: bool,
    /// Why, machine-readable.
    pub reason: &'static str,
    /// Why, in words.
    pub reason_text: &'static str,
    /// Special-file paths the device is on.
    pub special_files: Vec<&'static str>,
    /// Behaving as nonpageable now.
    pub effective_nonpageable: bool,
    /// Power-down section locked now.
    pub power_down_locked: bool,
    /// S0 idle timeout.
    pub idle_timeout_ms: u32,
    /// Every registered callback.
    pub callbacks: Vec<PlacementView>,
    /// Callbacks whose placement is a [`Placement::Violation`].
    pub violations: usize,
}

impl ConfigView {
    /// Builds the view of a validated [`Config`].
    #[must_use]
    pub fn new(config: &Config) -> Self {
        let count = (config.callback_count as usize).min(config.callbacks.len());
        let callbacks: Vec<PlacementView> = config.callbacks[..count]
            .iter()
            .map(|p| {
                let role = Role::from_u16(p.role);
                PlacementView {
                    callback: CallbackId::from_u16(p.callback).map_or("?", CallbackId::name),
                    role: role.map_or("?", Role::name),
                    section: decode::section_name(&p.section).unwrap_or("?").to_owned(),
                    expected_section: role.map_or("?", Role::section),
                    rva: p.rva,
                    placement: decode::judge(p).name(),
                }
            })
            .collect();
        let reason = PageabilityReason::from_u32(config.reason);
        ConfigView {
            power_pageable: config.power_pageable == 1,
            reason: match reason {
                Some(PageabilityReason::Default) => "default",
                Some(PageabilityReason::Setting) => "setting",
                Some(PageabilityReason::InvalidSetting) => "invalid-setting",
                Some(PageabilityReason::SpecialFile) => "special-file",
                None => "?",
            },
            reason_text: reason.map_or("?", decode::reason_text),
            special_files: decode::special_file_names(config.special_files),
            effective_nonpageable: config.effective_nonpageable == 1,
            power_down_locked: config.power_down_locked == 1,
            idle_timeout_ms: config.idle_timeout_ms,
            violations: callbacks
                .iter()
                .filter(|c| c.placement == Placement::Violation.name())
                .count(),
            callbacks,
        }
    }
}

/// `stats`: the driver's [`Stats`] plus the mean.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatsView {
    /// As returned.
    #[serde(flatten)]
    pub stats: Stats,
    /// `total_resume_100ns / resumes`, 0 without resumes.
    pub mean_resume_100ns: u64,
}

impl StatsView {
    /// Builds the view.
    #[must_use]
    pub fn new(s: &Stats) -> Self {
        StatsView {
            stats: *s,
            mean_resume_100ns: s.total_resume_100ns.checked_div(s.resumes).unwrap_or(0),
        }
    }
}

/// One record of `log`.
// The booleans are the record's independent flag bits, spelled out for JSON readers.
#[allow(clippy::struct_excessive_bools)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordView {
    /// Log sequence.
    pub sequence: u64,
    /// Interrupt time at the start.
    pub timestamp_100ns: u64,
    /// Run time.
    pub duration_100ns: u32,
    /// KMDF name.
    pub callback: &'static str,
    /// Power state left.
    pub previous_state: String,
    /// Power state entered.
    pub target_state: String,
    /// IRQL at the start.
    pub irql: u8,
    /// `WdfDevStateIsNP` was true.
    pub nonpageable_state: bool,
    /// The device was power-pageable.
    pub power_pageable: bool,
    /// The power-down section was locked.
    pub power_down_locked: bool,
    /// The callback failed.
    pub failed: bool,
    /// NTSTATUS, hex.
    pub status: String,
}

/// `log`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogView {
    /// Sequence the next record will get: pass it to `log --since` to read only newer ones.
    pub next_sequence: u64,
    /// Oldest sequence the ring holds.
    pub oldest_sequence: u64,
    /// Ring size.
    pub capacity: u32,
    /// Records asked for but already overwritten.
    pub lost: u64,
    /// The records.
    pub records: Vec<RecordView>,
}

impl LogView {
    /// Builds the view.
    #[must_use]
    pub fn new(batch: &LogBatch) -> Self {
        let has = |flags: u8, bit: u8| flags & bit != 0;
        LogView {
            next_sequence: batch.header.next_sequence,
            oldest_sequence: batch.header.oldest_sequence,
            capacity: batch.header.capacity,
            lost: batch.lost,
            records: batch
                .records
                .iter()
                .map(|r| RecordView {
                    sequence: r.sequence,
                    timestamp_100ns: r.timestamp_100ns,
                    duration_100ns: r.duration_100ns,
                    callback: CallbackId::from_u16(r.callback).map_or("?", CallbackId::name),
                    previous_state: decode::power_state_name(r.previous_state),
                    target_state: decode::power_state_name(r.target_state),
                    irql: r.irql,
                    nonpageable_state: has(r.flags, transition_flag::NONPAGEABLE_STATE),
                    power_pageable: has(r.flags, transition_flag::POWER_PAGEABLE),
                    power_down_locked: has(r.flags, transition_flag::POWER_DOWN_LOCKED),
                    failed: has(r.flags, transition_flag::FAILED),
                    status: format!("{:#010x}", r.status.cast_unsigned()),
                })
                .collect(),
        }
    }
}

/// `hold`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HoldView {
    /// The hold asked for.
    pub held_ms: u32,
}

/// The result of a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Output {
    /// `version`.
    Version(VersionView),
    /// `config`.
    Config(ConfigView),
    /// `stats`.
    Stats(StatsView),
    /// `log`.
    Log(LogView),
    /// `hold`.
    Hold(HoldView),
    /// `cycles`.
    Cycles(CyclesReport),
}

impl Output {
    /// The exit status after printing: failures that still produce a full report.
    #[must_use]
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Output::Version(v) if !v.compatible => ExitStatus::VersionMismatch,
            Output::Config(c) if c.violations > 0 => ExitStatus::Failed,
            Output::Cycles(r) if !r.success() => ExitStatus::Failed,
            _ => ExitStatus::Ok,
        }
    }

    /// Pretty JSON.
    #[must_use]
    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail (no maps with non-string keys, no
        // custom serialisers); fall back to an error object rather than panic.
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\": \"serialising output: {e}\"}}"))
    }

    /// Human-readable tables.
    #[must_use]
    pub fn to_text(&self) -> String {
        match self {
            Output::Version(v) => version_text(v),
            Output::Config(c) => config_text(c),
            Output::Stats(s) => stats_text(s),
            Output::Log(l) => log_text(l),
            Output::Hold(h) => format!("device woken and held in D0 for {} ms\n", h.held_ms),
            Output::Cycles(r) => cycles_text(r),
        }
    }
}

/// The version view of a driver answer.
#[must_use]
pub fn version_view(info: &VersionInfo) -> VersionView {
    VersionView {
        interface_version: info.interface_version,
        client_interface_version: INTERFACE_VERSION,
        driver_version: decode::driver_version_string(info.driver_version),
        compatible: info.interface_version == INTERFACE_VERSION,
    }
}

/// Formats 100 ns units as microseconds below 1 ms and milliseconds above, exactly
/// (integer arithmetic, ASCII `us` so that any console code page shows it).
#[must_use]
pub fn duration_100ns(units: u64) -> String {
    if units < 10_000 {
        format!("{}.{} us", units / 10, units % 10)
    } else {
        format!("{}.{:03} ms", units / 10_000, (units % 10_000) / 10)
    }
}

/// Left-aligned columns separated by two spaces, with a header underline.
#[must_use]
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (cell, w) in cells.zip(&widths) {
            let _ = write!(text, "{cell:<w$}  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    let rules: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&mut rules.iter().map(String::as_str));
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

fn yes(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

fn version_text(v: &VersionView) -> String {
    let mut out = format!(
        "driver version            {}\ndriver interface version  {}\nclient interface version  {}\n",
        v.driver_version, v.interface_version, v.client_interface_version
    );
    if !v.compatible {
        out.push_str("MISMATCH: install a pagewisectl built with this driver\n");
    }
    out
}

fn config_text(c: &ConfigView) -> String {
    let special = if c.special_files.is_empty() {
        "none".to_owned()
    } else {
        c.special_files.join(", ")
    };
    let mut out = format!(
        "power pageable        {} ({})\n\
         special files         {special}\n\
         behaves nonpageable   {}\n\
         power-down locked     {}\n\
         idle timeout          {} ms\n\n",
        yes(c.power_pageable),
        c.reason_text,
        yes(c.effective_nonpageable),
        yes(c.power_down_locked),
        c.idle_timeout_ms,
    );
    let rows: Vec<Vec<String>> = c
        .callbacks
        .iter()
        .map(|p| {
            vec![
                p.callback.to_owned(),
                p.role.to_owned(),
                p.section.clone(),
                p.expected_section.to_owned(),
                format!("{:#010x}", p.rva),
                p.placement.to_owned(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "callback",
            "role",
            "section",
            "expected",
            "rva",
            "placement",
        ],
        &rows,
    ));
    if c.violations > 0 {
        let _ = writeln!(
            out,
            "\n{} callback(s) on the power-up or dispatch path sit in a pageable or discardable section",
            c.violations
        );
    }
    out
}

fn stats_text(s: &StatsView) -> String {
    let f = &s.stats;
    let rows = [
        ("D0 entries", f.d0_entries.to_string()),
        ("D0 exits", f.d0_exits.to_string()),
        ("resumes measured", f.resumes.to_string()),
        ("last time to working", duration_100ns(f.last_resume_100ns)),
        ("min time to working", duration_100ns(f.min_resume_100ns)),
        ("mean time to working", duration_100ns(s.mean_resume_100ns)),
        ("max time to working", duration_100ns(f.max_resume_100ns)),
        ("D0 entries (persisted)", f.persisted_d0_entries.to_string()),
        ("D0 exits (persisted)", f.persisted_d0_exits.to_string()),
        ("registry writes", f.persisted_writes.to_string()),
        ("registry writes deferred", f.deferred_writes.to_string()),
        ("log records overwritten", f.log_overwritten.to_string()),
    ];
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(k, v)| vec![k.to_owned(), v])
        .collect();
    table(&["counter", "value"], &rows)
}

fn log_text(l: &LogView) -> String {
    let first = l.records.first().map_or(0, |r| r.timestamp_100ns);
    let rows: Vec<Vec<String>> = l
        .records
        .iter()
        .map(|r| {
            let mut flags = Vec::new();
            if r.nonpageable_state {
                flags.push("NP");
            }
            if r.power_pageable {
                flags.push("pageable");
            }
            if r.power_down_locked {
                flags.push("locked");
            }
            if r.failed {
                flags.push("FAILED");
            }
            vec![
                r.sequence.to_string(),
                format!(
                    "+{}",
                    duration_100ns(r.timestamp_100ns.saturating_sub(first))
                ),
                r.callback.to_owned(),
                if r.previous_state == "-" && r.target_state == "-" {
                    String::new()
                } else {
                    format!("{} -> {}", r.previous_state, r.target_state)
                },
                decode::irql_name(r.irql),
                duration_100ns(u64::from(r.duration_100ns)),
                flags.join(","),
                r.status.clone(),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "seq", "time", "callback", "power", "irql", "took", "flags", "status",
        ],
        &rows,
    );
    let _ = writeln!(
        out,
        "\n{} record(s); ring holds {} to {} of capacity {}; next sequence {}",
        l.records.len(),
        l.oldest_sequence,
        l.next_sequence.saturating_sub(1),
        l.capacity,
        l.next_sequence
    );
    if l.lost > 0 {
        let _ = writeln!(
            out,
            "{} requested record(s) were overwritten before this read",
            l.lost
        );
    }
    out
}

fn summary_line(label: &str, s: Option<&Summary>) -> String {
    match s {
        Some(s) => format!(
            "{label}: median {}  p95 {}  max {}  (n = {})\n",
            duration_100ns(s.median_100ns),
            duration_100ns(s.p95_100ns),
            duration_100ns(s.max_100ns),
            s.count
        ),
        None => format!("{label}: no resume measured\n"),
    }
}

fn cycles_text(r: &CyclesReport) -> String {
    let rows: Vec<Vec<String>> = r
        .resumes
        .iter()
        .enumerate()
        .map(|(i, x)| {
            vec![
                (i + 1).to_string(),
                format!(
                    "{}/{}/{}",
                    x.exit_sequence, x.entry_sequence, x.restart_sequence
                ),
                decode::power_state_name(x.previous_state),
                duration_100ns(x.time_to_working_100ns),
                x.stats_last_resume_100ns
                    .map_or_else(|| "-".to_owned(), duration_100ns),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "cycle",
            "exit/entry/restart seq",
            "from",
            "time to working (log)",
            "(stats)",
        ],
        &rows,
    );
    out.push('\n');
    out.push_str(&summary_line(
        "time to working (log)  ",
        r.log_summary.as_ref(),
    ));
    out.push_str(&summary_line(
        "time to working (stats)",
        r.stats_summary.as_ref(),
    ));
    let _ = writeln!(
        out,
        "{} of {} cycles in {} ms (idle timeout {} ms, limit {} ms, {} wake request(s))",
        r.completed, r.requested, r.elapsed_ms, r.idle_timeout_ms, r.timeout_ms, r.wakes_sent
    );
    if r.timed_out {
        out.push_str("TIMED OUT: the device did not idle and resume often enough; is something holding it in D0?\n");
    }
    if r.lost_records > 0 {
        let _ = writeln!(
            out,
            "LOST {} log record(s): the ring wrapped between reads",
            r.lost_records
        );
    }
    for f in &r.failed_callbacks {
        let _ = writeln!(
            out,
            "FAILED: {} (sequence {}) returned {}",
            f.callback, f.sequence, f.status
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::tests::{good_config, placement};
    use pagewise_ioctl::LogHeader;

    #[test]
    fn durations_are_exact() {
        assert_eq!(duration_100ns(0), "0.0 us");
        assert_eq!(duration_100ns(1234), "123.4 us");
        assert_eq!(duration_100ns(9999), "999.9 us");
        assert_eq!(duration_100ns(10_000), "1.000 ms");
        assert_eq!(duration_100ns(123_456_789), "12345.678 ms");
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["a", "long header"],
            &[
                vec!["wide cell".into(), "x".into()],
                vec!["y".into(), "z".into()],
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "a          long header");
        assert_eq!(lines[1], "---------  -----------");
        assert_eq!(lines[2], "wide cell  x");
        assert_eq!(lines[3], "y          z");
    }

    #[test]
    fn config_view_counts_violations() {
        let mut config = good_config();
        let view = ConfigView::new(&config);
        assert_eq!(view.violations, 0);
        assert_eq!(Output::Config(view.clone()).exit_status(), ExitStatus::Ok);
        assert_eq!(view.callbacks[1].section, "PAGEPWR");
        assert_eq!(view.reason, "setting");
        config.callbacks[3] = placement(CallbackId::SelfManagedIoRestart, Role::PowerUp, "PAGE");
        config.callback_count = 4;
        let view = ConfigView::new(&config);
        assert_eq!(view.violations, 1);
        let text = Output::Config(view.clone()).to_text();
        assert!(
            text.contains("EvtDeviceSelfManagedIoRestart  power-up"),
            "{text}"
        );
        assert!(text.contains("VIOLATION"));
        assert_eq!(Output::Config(view).exit_status(), ExitStatus::Failed);
    }

    #[test]
    fn json_is_machine_readable() {
        let view = version_view(&VersionInfo {
            interface_version: INTERFACE_VERSION + 1,
            driver_version: 0x0002_0001,
        });
        let output = Output::Version(view);
        assert_eq!(output.exit_status(), ExitStatus::VersionMismatch);
        let json: serde_json::Value = serde_json::from_str(&output.to_json()).expect("valid JSON");
        assert_eq!(json["driver_version"], "2.0.1");
        assert_eq!(json["compatible"], false);

        let stats = Stats {
            d0_entries: 3,
            resumes: 2,
            total_resume_100ns: 500,
            max_resume_100ns: 300,
            ..Stats::default()
        };
        let json: serde_json::Value =
            serde_json::from_str(&Output::Stats(StatsView::new(&stats)).to_json()).expect("valid");
        assert_eq!(json["mean_resume_100ns"], 250);
        assert_eq!(json["d0_entries"], 3, "fields are flattened");
    }

    #[test]
    fn log_view_decodes_flags_and_states() {
        let mut r = crate::decode::tests::record(4, CallbackId::D0Exit, 1_000, 20);
        r.target_state = 4;
        r.flags = transition_flag::NONPAGEABLE_STATE | transition_flag::FAILED;
        r.status = -1_073_741_823;
        let batch = LogBatch {
            header: LogHeader {
                next_sequence: 5,
                oldest_sequence: 0,
                count: 1,
                capacity: 64,
            },
            records: vec![r],
            lost: 0,
        };
        let view = LogView::new(&batch);
        let rec = &view.records[0];
        assert!(rec.nonpageable_state && rec.failed && !rec.power_pageable);
        assert_eq!(rec.target_state, "D3");
        assert_eq!(rec.status, "0xc0000001");
        let text = Output::Log(view).to_text();
        assert!(text.contains("- -> D3"), "{text}");
        assert!(text.contains("NP,FAILED"), "{text}");
    }
}
