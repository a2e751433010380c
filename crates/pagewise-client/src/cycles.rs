//! `pagewisectl cycles N`: N S0-idle power-down/power-up cycles, and how long each resume
//! took the driver.
//!
//! The client must not keep the device awake itself, or there would be nothing to measure.
//! Its queries (`GET_STATS`, `GET_LOG`) go to the driver's non-power-managed control queue,
//! which answers without waking the device; only `HOLD_D0` (with 0 ms, "just wake") goes
//! through the power-managed queue. Each cycle is therefore: wait until the log shows the
//! idle power-down (`EvtDeviceD0Exit`, after `Config::idle_timeout_ms` without I/O), send
//! `hold 0`, and wait until the log shows the resume: `EvtDeviceD0Entry` and then the end
//! of `EvtDeviceSelfManagedIoRestart`. Time to working is measured from the log's
//! timestamps and cross-checked against `Stats::last_resume_100ns`.

use crate::device::{Client, Transport};
use crate::error::Error;
use pagewise_ioctl::{CallbackId, TransitionRecord, transition_flag};
use serde::Serialize;
use std::time::Duration;

/// Time as the cycle loop sees it; tests substitute a simulated clock.
pub trait Clock {
    /// Time since an arbitrary fixed start.
    fn now(&self) -> Duration;
    /// Waits for `d`.
    fn sleep(&mut self, d: Duration);
}

/// The real clock.
pub struct SystemClock(std::time::Instant);

impl SystemClock {
    /// Starts now.
    #[must_use]
    pub fn new() -> Self {
        SystemClock(std::time::Instant::now())
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// Where the device is in its idle cycle, as far as the log tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// In D0 (or unknown): waiting for the next `EvtDeviceD0Exit`.
    AwaitExit,
    /// Powered down by the record with this sequence: waiting for `EvtDeviceD0Entry`.
    AwaitEntry {
        /// Sequence of the `EvtDeviceD0Exit` record.
        exit: u64,
    },
    /// `EvtDeviceD0Entry` seen: waiting for `EvtDeviceSelfManagedIoRestart`.
    AwaitRestart {
        /// The `EvtDeviceD0Entry` record.
        entry: TransitionRecord,
    },
}

/// One measured resume.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Resume {
    /// Sequence of the `EvtDeviceD0Exit` that powered the device down.
    pub exit_sequence: u64,
    /// Sequence of the `EvtDeviceD0Entry` record.
    pub entry_sequence: u64,
    /// Sequence of the `EvtDeviceSelfManagedIoRestart` record.
    pub restart_sequence: u64,
    /// `WDF_POWER_DEVICE_STATE` the device came back from.
    pub previous_state: u8,
    /// `EvtDeviceD0Entry` start to `EvtDeviceSelfManagedIoRestart` end, from the log.
    pub time_to_working_100ns: u64,
    /// `Stats::last_resume_100ns` read right after the resume appeared in the log, when
    /// the stats had counted it.
    pub stats_last_resume_100ns: Option<u64>,
}

/// `WdfPowerDeviceD3Final`.
const D3_FINAL: u8 = 5;

/// Follows the log record by record and reports each complete resume.
#[derive(Clone, Debug)]
pub struct Tracker {
    phase: Phase,
    last_exit: u64,
}

impl Default for Tracker {
    fn default() -> Self {
        Self::new()
    }
}

impl Tracker {
    /// Starts not knowing the device's state.
    #[must_use]
    pub const fn new() -> Self {
        Tracker {
            phase: Phase::AwaitExit,
            last_exit: 0,
        }
    }

    /// The current phase.
    #[must_use]
    pub const fn phase(&self) -> Phase {
        self.phase
    }

    /// Forgets the state after records were lost.
    pub fn reset(&mut self) {
        self.phase = Phase::AwaitExit;
    }

    /// Feeds the next record.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] when the restart ends before the entry began: the driver's
    /// clock or log is broken.
    pub fn feed(&mut self, record: &TransitionRecord) -> Result<Option<Resume>, Error> {
        match (self.phase, CallbackId::from_u16(record.callback)) {
            // D0Exit to D3Final is a stop or removal, not an idle power-down: the next
            // D0Entry is a fresh start (followed by SelfManagedIoInit), not a resume.
            (_, Some(CallbackId::D0Exit)) if record.target_state == D3_FINAL => {
                self.phase = Phase::AwaitExit;
            }
            (_, Some(CallbackId::D0Exit)) => {
                self.last_exit = record.sequence;
                self.phase = Phase::AwaitEntry {
                    exit: record.sequence,
                };
            }
            (Phase::AwaitEntry { .. } | Phase::AwaitRestart { .. }, Some(CallbackId::D0Entry)) => {
                self.phase = Phase::AwaitRestart { entry: *record };
            }
            (Phase::AwaitRestart { entry }, Some(CallbackId::SelfManagedIoRestart)) => {
                self.phase = Phase::AwaitExit;
                let end = record
                    .timestamp_100ns
                    .saturating_add(u64::from(record.duration_100ns));
                let Some(time) = end.checked_sub(entry.timestamp_100ns) else {
                    return Err(Error::Protocol(format!(
                        "log: SelfManagedIoRestart (sequence {}) ends before D0Entry (sequence {}) starts",
                        record.sequence, entry.sequence
                    )));
                };
                return Ok(Some(Resume {
                    exit_sequence: self.last_exit,
                    entry_sequence: entry.sequence,
                    restart_sequence: record.sequence,
                    previous_state: entry.previous_state,
                    time_to_working_100ns: time,
                    stats_last_resume_100ns: None,
                }));
            }
            // A first start (D0Entry from D3Final, then SelfManagedIoInit) or any other
            // callback: not a resume.
            _ => {}
        }
        Ok(None)
    }
}

/// Median, 95th percentile and maximum of a sample, in 100 ns units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Number of values.
    pub count: usize,
    /// Smallest value.
    pub min_100ns: u64,
    /// Median; the mean of the two middle values for an even count.
    pub median_100ns: u64,
    /// 95th percentile, nearest-rank: the smallest value with at least 95% of the sample
    /// at or below it.
    pub p95_100ns: u64,
    /// Largest value.
    pub max_100ns: u64,
}

impl Summary {
    /// Summarises `values`; `None` when empty.
    #[must_use]
    pub fn of(values: &[u64]) -> Option<Summary> {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        let n = sorted.len();
        let (&min, &max) = (sorted.first()?, sorted.last()?);
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            // Average without overflow.
            let (a, b) = (sorted[n / 2 - 1], sorted[n / 2]);
            a + (b - a) / 2
        };
        // Nearest rank: ceil(0.95 * n), 1-based. Integer arithmetic keeps it exact.
        let rank = (95 * n).div_ceil(100).max(1);
        Some(Summary {
            count: n,
            min_100ns: min,
            median_100ns: median,
            p95_100ns: sorted[rank - 1],
            max_100ns: max,
        })
    }
}

/// What `cycles` found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CyclesReport {
    /// Cycles asked for.
    pub requested: u32,
    /// Cycles measured.
    pub completed: u32,
    /// The driver's S0 idle timeout.
    pub idle_timeout_ms: u32,
    /// The limit the run had.
    pub timeout_ms: u64,
    /// How long the run took.
    pub elapsed_ms: u64,
    /// True when the limit ended the run.
    pub timed_out: bool,
    /// `hold 0` requests sent to wake the device.
    pub wakes_sent: u32,
    /// Log records the ring overwrote before they were read.
    pub lost_records: u64,
    /// Power callbacks logged with the failure flag during the run.
    pub failed_callbacks: Vec<FailedCallback>,
    /// Each resume.
    pub resumes: Vec<Resume>,
    /// Time to working from the log.
    pub log_summary: Option<Summary>,
    /// Time to working from `Stats::last_resume_100ns`.
    pub stats_summary: Option<Summary>,
}

impl CyclesReport {
    /// True when every cycle was seen and nothing failed.
    #[must_use]
    pub fn success(&self) -> bool {
        self.completed >= self.requested
            && self.failed_callbacks.is_empty()
            && self.lost_records == 0
    }
}

/// A callback the log marks as failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailedCallback {
    /// Log sequence.
    pub sequence: u64,
    /// Callback name.
    pub callback: &'static str,
    /// NTSTATUS, as hex.
    pub status: String,
}

/// Parameters of a cycles run.
#[derive(Clone, Copy, Debug)]
pub struct CyclesOptions {
    /// Cycles to measure.
    pub count: u32,
    /// Limit for the whole run; `None` derives one from the idle timeout.
    pub timeout: Option<Duration>,
}

/// The limit used when none is given: per cycle twice the idle timeout plus 10 s for the
/// wake and for a slow VM, plus 10 s.
#[must_use]
pub fn default_timeout(count: u32, idle_timeout_ms: u32) -> Duration {
    let per_cycle = Duration::from_millis(2 * u64::from(idle_timeout_ms) + 10_000);
    per_cycle * count + Duration::from_secs(10)
}

/// How often to read the log: a tenth of the idle timeout, within [50 ms, 500 ms]. Reads go
/// to the control queue and do not reset the idle timer.
#[must_use]
pub fn poll_interval(idle_timeout_ms: u32) -> Duration {
    Duration::from_millis(u64::from(idle_timeout_ms / 10).clamp(50, 500))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Runs the cycles.
///
/// # Errors
///
/// An OS or protocol error from any request. Too few cycles within the limit is not an
/// error: the report says so and [`CyclesReport::success`] is false.
pub fn run<T: Transport, C: Clock>(
    client: &mut Client<T>,
    clock: &mut C,
    options: CyclesOptions,
) -> Result<CyclesReport, Error> {
    let config = client.config()?;
    let idle = config.idle_timeout_ms;
    let limit = options
        .timeout
        .unwrap_or_else(|| default_timeout(options.count, idle));
    let poll = poll_interval(idle);
    let started = clock.now();
    let mut stats_resumes = client.stats()?.resumes;

    // Replay what the ring holds so the tracker knows whether the device is idle right
    // now; resumes from before the run are not counted.
    let mut tracker = Tracker::new();
    let history = client.log_since(0)?;
    for record in &history.records {
        tracker.feed(record)?;
    }
    let mut cursor = history.header.next_sequence;

    let mut report = CyclesReport {
        requested: options.count,
        completed: 0,
        idle_timeout_ms: idle,
        timeout_ms: millis(limit),
        elapsed_ms: 0,
        timed_out: false,
        wakes_sent: 0,
        lost_records: 0,
        failed_callbacks: Vec::new(),
        resumes: Vec::new(),
        log_summary: None,
        stats_summary: None,
    };
    let mut woken_after: Option<u64> = None;

    while report.completed < options.count {
        if clock.now().saturating_sub(started) >= limit {
            report.timed_out = true;
            break;
        }
        let batch = client.log_since(cursor)?;
        if batch.lost > 0 {
            report.lost_records += batch.lost;
            tracker.reset();
        }
        for record in &batch.records {
            if record.flags & transition_flag::FAILED != 0 {
                report.failed_callbacks.push(FailedCallback {
                    sequence: record.sequence,
                    callback: CallbackId::from_u16(record.callback).map_or("?", CallbackId::name),
                    status: format!("{:#010x}", record.status.cast_unsigned()),
                });
            }
            if let Some(mut resume) = tracker.feed(record)? {
                let stats = client.stats()?;
                if stats.resumes > stats_resumes {
                    resume.stats_last_resume_100ns = Some(stats.last_resume_100ns);
                    stats_resumes = stats.resumes;
                }
                report.resumes.push(resume);
                report.completed += 1;
                if report.completed == options.count {
                    break;
                }
            }
        }
        cursor = batch
            .records
            .last()
            .map_or(batch.header.next_sequence, |r| r.sequence + 1);
        if report.completed == options.count {
            break;
        }
        if let Phase::AwaitEntry { exit } = tracker.phase()
            && woken_after != Some(exit)
        {
            // The device idled out: wake it through the power-managed queue. The
            // request completes once the device is back in D0.
            client.hold(0)?;
            woken_after = Some(exit);
            report.wakes_sent += 1;
            continue;
        }
        clock.sleep(poll);
    }

    report.elapsed_ms = millis(clock.now().saturating_sub(started));
    let from_log: Vec<u64> = report
        .resumes
        .iter()
        .map(|r| r.time_to_working_100ns)
        .collect();
    let from_stats: Vec<u64> = report
        .resumes
        .iter()
        .filter_map(|r| r.stats_last_resume_100ns)
        .collect();
    report.log_summary = Summary::of(&from_log);
    report.stats_summary = Summary::of(&from_stats);
    Ok(report)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::decode::tests::record;
    use crate::sim::SimDriver;

    #[test]
    fn summary_statistics() {
        assert_eq!(Summary::of(&[]), None);
        let one = Summary::of(&[7]).expect("one value");
        assert_eq!((one.median_100ns, one.p95_100ns, one.max_100ns), (7, 7, 7));
        let even = Summary::of(&[40, 10, 30, 20]).expect("values");
        assert_eq!(even.median_100ns, 25);
        assert_eq!(even.p95_100ns, 40);
        assert_eq!(even.min_100ns, 10);
        // 1..=100 shuffled: nearest-rank p95 is the 95th value.
        let values: Vec<u64> = (1..=100).map(|i| (i * 37) % 101).collect();
        let s = Summary::of(&values).expect("values");
        assert_eq!(s.p95_100ns, {
            let mut v = values.clone();
            v.sort_unstable();
            v[94]
        });
        assert_eq!(s.max_100ns, *values.iter().max().expect("non-empty"));
        // 20 values: ceil(19.0) = 19th; 21 values: ceil(19.95) = 20th.
        let twenty: Vec<u64> = (1..=20).collect();
        assert_eq!(Summary::of(&twenty).expect("values").p95_100ns, 19);
        let twenty_one: Vec<u64> = (1..=21).collect();
        assert_eq!(Summary::of(&twenty_one).expect("values").p95_100ns, 20);
        let big = Summary::of(&[u64::MAX, u64::MAX - 2]).expect("values");
        assert_eq!(big.median_100ns, u64::MAX - 1, "no overflow");
    }

    #[test]
    fn tracker_measures_entry_start_to_restart_end() {
        let mut t = Tracker::new();
        let start = [
            record(0, CallbackId::D0Entry, 100, 10),
            record(1, CallbackId::SelfManagedIoInit, 120, 10),
        ];
        for r in &start {
            assert_eq!(t.feed(r).expect("valid"), None, "first start is no resume");
        }
        assert_eq!(t.phase(), Phase::AwaitExit);
        assert_eq!(
            t.feed(&record(2, CallbackId::SelfManagedIoSuspend, 5000, 3))
                .expect("valid"),
            None
        );
        t.feed(&record(3, CallbackId::D0Exit, 5010, 3))
            .expect("valid");
        assert_eq!(t.phase(), Phase::AwaitEntry { exit: 3 });
        let mut entry = record(4, CallbackId::D0Entry, 9000, 40);
        entry.previous_state = 4;
        t.feed(&entry).expect("valid");
        let resume = t
            .feed(&record(5, CallbackId::SelfManagedIoRestart, 9100, 25))
            .expect("valid")
            .expect("a resume");
        assert_eq!(resume.time_to_working_100ns, 9125 - 9000);
        assert_eq!(
            (
                resume.exit_sequence,
                resume.entry_sequence,
                resume.restart_sequence
            ),
            (3, 4, 5)
        );
        assert_eq!(resume.previous_state, 4);
        // A restart without a preceding exit/entry is not a resume.
        assert_eq!(
            t.feed(&record(6, CallbackId::SelfManagedIoRestart, 9200, 1))
                .expect("valid"),
            None
        );
    }

    #[test]
    fn tracker_ignores_stops() {
        let mut t = Tracker::new();
        let mut stop = record(0, CallbackId::D0Exit, 10, 1);
        stop.target_state = 5;
        t.feed(&stop).expect("valid");
        assert_eq!(
            t.phase(),
            Phase::AwaitExit,
            "a stop is not an idle power-down"
        );
        let mut idle = record(1, CallbackId::D0Exit, 20, 1);
        idle.target_state = 4;
        t.feed(&idle).expect("valid");
        assert_eq!(t.phase(), Phase::AwaitEntry { exit: 1 });
        t.feed(&stop).expect("valid");
        assert_eq!(
            t.phase(),
            Phase::AwaitExit,
            "a stop while idle ends the cycle"
        );
    }

    #[test]
    fn tracker_rejects_time_going_backwards() {
        let mut t = Tracker::new();
        t.feed(&record(0, CallbackId::D0Exit, 10, 1))
            .expect("valid");
        t.feed(&record(1, CallbackId::D0Entry, 500, 1))
            .expect("valid");
        let err = t
            .feed(&record(2, CallbackId::SelfManagedIoRestart, 100, 5))
            .expect_err("backwards");
        assert!(err.to_string().contains("ends before"), "{err}");
    }

    #[test]
    fn timeouts_scale_with_idle() {
        assert_eq!(default_timeout(3, 5000), Duration::from_secs(3 * 20 + 10));
        assert_eq!(poll_interval(100), Duration::from_millis(50));
        assert_eq!(poll_interval(2000), Duration::from_millis(200));
        assert_eq!(poll_interval(60_000), Duration::from_millis(500));
    }

    #[test]
    fn cycles_against_a_simulated_driver() {
        let mut sim = SimDriver::new(1000);
        sim.start();
        let (mut client, mut clock) = sim.into_parts();
        let report = run(
            &mut client,
            &mut clock,
            CyclesOptions {
                count: 4,
                timeout: None,
            },
        )
        .expect("runs");
        assert!(report.success(), "{report:?}");
        assert_eq!(report.completed, 4);
        assert_eq!(report.wakes_sent, 4, "one wake per cycle");
        let log = report.log_summary.expect("resumes");
        assert_eq!(log.count, 4);
        // The simulator's resumes take 1000 + 100 * n (n = 1..) units.
        assert_eq!(log.min_100ns, 1100);
        assert_eq!(log.max_100ns, 1400);
        assert_eq!(log.median_100ns, 1250);
        assert_eq!(report.stats_summary, Some(log), "stats agree with the log");
        // Each cycle waits for the idle timeout, so the run takes at least 4 of them.
        assert!(report.elapsed_ms >= 4 * 1000, "{}", report.elapsed_ms);
        let sim = client.transport().borrow();
        assert_eq!(
            sim.power_managed_requests, 4,
            "only the wakes use the power-managed queue"
        );
    }

    #[test]
    fn cycles_starting_while_idle_wake_at_once() {
        let mut sim = SimDriver::new(500);
        sim.start();
        sim.advance_ms(2000); // the device idles out before the client starts
        let (mut client, mut clock) = sim.into_parts();
        let report = run(
            &mut client,
            &mut clock,
            CyclesOptions {
                count: 1,
                timeout: None,
            },
        )
        .expect("runs");
        assert_eq!(report.completed, 1);
        assert!(
            report.elapsed_ms < 500,
            "no wait for an idle that already happened: {}",
            report.elapsed_ms
        );
    }

    #[test]
    fn cycles_time_out_when_the_device_never_idles() {
        let mut sim = SimDriver::new(1000);
        sim.start();
        sim.never_idle = true;
        let (mut client, mut clock) = sim.into_parts();
        let options = CyclesOptions {
            count: 2,
            timeout: Some(Duration::from_secs(5)),
        };
        let report = run(&mut client, &mut clock, options).expect("runs");
        assert!(report.timed_out);
        assert_eq!(report.completed, 0);
        assert!(!report.success());
        assert!(report.elapsed_ms >= 5000);
        assert_eq!(report.log_summary, None);
    }

    #[test]
    fn failed_callbacks_fail_the_run() {
        let mut sim = SimDriver::new(300);
        sim.start();
        sim.fail_next_restart = true;
        let (mut client, mut clock) = sim.into_parts();
        let report = run(
            &mut client,
            &mut clock,
            CyclesOptions {
                count: 2,
                timeout: None,
            },
        )
        .expect("runs");
        assert_eq!(report.completed, 2);
        assert_eq!(report.failed_callbacks.len(), 1);
        assert_eq!(
            report.failed_callbacks[0].callback,
            "EvtDeviceSelfManagedIoRestart"
        );
        assert_eq!(report.failed_callbacks[0].status, "0xc0000001");
        assert!(!report.success());
    }

    #[test]
    fn overwritten_records_are_reported() {
        let mut sim = SimDriver::new(300);
        sim.capacity = 3; // the run logs more records between reads than the ring holds
        sim.noisy = true;
        sim.start();
        let (mut client, mut clock) = sim.into_parts();
        let report = run(
            &mut client,
            &mut clock,
            CyclesOptions {
                count: 1,
                timeout: Some(Duration::from_secs(10)),
            },
        )
        .expect("runs");
        assert!(report.lost_records > 0, "{report:?}");
        assert!(!report.success());
    }
}
