//! The transition log, resume timing and statistics.
//!
//! [`TransitionLog`] is a fixed-size ring of [`TransitionRecord`]s kept in the device
//! context (nonpaged pool). Power callbacks push at `PASSIVE_LEVEL`; the control queue
//! copies it out for `IOCTL_PAGEWISE_GET_LOG`. The FFI guards both with one
//! `WDFSPINLOCK`, so every function here is short, allocation-free and panic-free by
//! construction: the ring index is masked into range and then looked up with `get`,
//! every counter is wrapping or saturating, and the crate denies indexing and unchecked
//! arithmetic outside tests (see the crate documentation).

use pagewise_ioctl::{LogHeader, Stats, TransitionRecord, Wire, WireError};

/// Records the ring holds. A power of two, so that a sequence number maps to its slot
/// with a mask.
pub const LOG_CAPACITY: usize = 64;
const _: () = assert!(LOG_CAPACITY.is_power_of_two());
const MASK: u64 = (LOG_CAPACITY as u64) - 1;
/// [`LOG_CAPACITY`] as the header's field; the assertion makes the cast exact.
#[allow(clippy::cast_possible_truncation)] // exact: the assertion below checks it
const CAPACITY_U32: u32 = LOG_CAPACITY as u32;
const _: () = assert!(CAPACITY_U32 as usize == LOG_CAPACITY);

const HEADER_SIZE: usize = core::mem::size_of::<LogHeader>();
const RECORD_SIZE: usize = core::mem::size_of::<TransitionRecord>();

/// The ring. See the module documentation.
#[derive(Clone, Debug)]
pub struct TransitionLog {
    records: [TransitionRecord; LOG_CAPACITY],
    /// Sequence number of the next push; also the number of pushes ever made.
    next_sequence: u64,
}

const EMPTY: TransitionRecord = TransitionRecord {
    sequence: 0,
    timestamp_100ns: 0,
    duration_100ns: 0,
    callback: 0,
    previous_state: 0,
    target_state: 0,
    irql: 0,
    flags: 0,
    reserved: 0,
    status: 0,
};

/// The slot of `sequence`: always below [`LOG_CAPACITY`] because of the mask.
fn slot(sequence: u64) -> usize {
    usize::try_from(sequence & MASK).unwrap_or(0)
}

impl TransitionLog {
    /// An empty ring, usable as a `const` initialiser of the device context.
    #[must_use]
    pub const fn new() -> Self {
        TransitionLog {
            records: [EMPTY; LOG_CAPACITY],
            next_sequence: 0,
        }
    }

    /// Appends `record`, giving it the next sequence number (its own `sequence` field
    /// is ignored), and returns that number. When the ring is full the oldest record is
    /// overwritten. O(1), no allocation, no panic.
    pub fn push(&mut self, mut record: TransitionRecord) -> u64 {
        let sequence = self.next_sequence;
        record.sequence = sequence;
        if let Some(entry) = self.records.get_mut(slot(sequence)) {
            *entry = record;
        }
        self.next_sequence = sequence.wrapping_add(1);
        sequence
    }

    /// Sequence number the next record will get.
    #[must_use]
    pub const fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// Sequence number of the oldest record held (equal to
    /// [`TransitionLog::next_sequence`] when empty).
    #[must_use]
    pub const fn oldest_sequence(&self) -> u64 {
        self.next_sequence.saturating_sub(LOG_CAPACITY as u64)
    }

    /// Records held.
    #[must_use]
    pub fn len(&self) -> usize {
        usize::try_from(self.next_sequence.saturating_sub(self.oldest_sequence())).unwrap_or(0)
    }

    /// True when nothing was pushed yet.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.next_sequence == 0
    }

    /// Records the ring has dropped to make room for newer ones. Reading changes nothing
    /// here: the log has any number of readers (every handle with read access), and none
    /// of them may move state the others see. Each reader tells what it missed from its
    /// own position: the records from the `first_sequence` it asked for up to the answer's
    /// `oldest_sequence`.
    #[must_use]
    pub const fn overwritten(&self) -> u64 {
        self.oldest_sequence()
    }

    /// The record with `sequence`, if the ring still holds it.
    #[must_use]
    pub fn get(&self, sequence: u64) -> Option<TransitionRecord> {
        if sequence < self.oldest_sequence() || sequence >= self.next_sequence {
            return None;
        }
        self.records.get(slot(sequence)).copied()
    }

    /// How many records a buffer of `len` bytes holds after the header.
    #[must_use]
    pub const fn records_that_fit(len: usize) -> usize {
        len.saturating_sub(HEADER_SIZE) / RECORD_SIZE
    }

    /// Writes the answer to `IOCTL_PAGEWISE_GET_LOG` into `out`: a [`LogHeader`], then
    /// the records from `first_sequence` on (from the oldest held, if that is later),
    /// as many as fit. Returns the header and the bytes written; nothing past that is
    /// touched, and the log is not changed.
    ///
    /// [`TransitionLog::read`] then [`LogClaim::write`]. A reader that shares the log with
    /// writers reads under their lock, which copies only the records it returns, and
    /// writes the answer from that copy after releasing it.
    ///
    /// # Errors
    ///
    /// `out` shorter than a header or not 8-byte aligned; `out` is untouched then.
    pub fn copy_out(
        &self,
        first_sequence: u64,
        out: &mut [u8],
    ) -> Result<(LogHeader, usize), WireError> {
        check_output(out)?;
        let mut records = [EMPTY; LOG_CAPACITY];
        let fit = Self::records_that_fit(out.len()).min(LOG_CAPACITY);
        let claim = self.read(first_sequence, records.get_mut(..fit).unwrap_or(&mut []));
        let written = claim.write(&records, out)?;
        Ok((claim.header, written))
    }

    /// Copies the records a reader gets from `first_sequence` on into `records`, as many as
    /// it holds, and returns the answer's header. Only the records returned are copied;
    /// nothing in the log changes. O(number copied).
    #[must_use]
    pub fn read(&self, first_sequence: u64, records: &mut [TransitionRecord]) -> LogClaim {
        let oldest = self.oldest_sequence();
        let start = first_sequence.clamp(oldest, self.next_sequence);
        let mut count: u32 = 0;
        let mut sequence = start;
        for slot in records.iter_mut() {
            let Some(record) = self.get(sequence) else {
                break;
            };
            *slot = record;
            count = count.saturating_add(1);
            sequence = sequence.saturating_add(1);
        }
        LogClaim {
            header: LogHeader {
                next_sequence: self.next_sequence,
                oldest_sequence: oldest,
                count,
                capacity: CAPACITY_U32,
            },
            start,
        }
    }
}

impl LogClaim {
    /// Writes the answer of this read: the header, then the first `header.count` of
    /// `records` (the copy [`TransitionLog::read`] filled). Returns the bytes written;
    /// nothing past them is touched.
    ///
    /// # Errors
    ///
    /// `out` shorter than the answer or not 8-byte aligned; `out` is untouched then.
    #[inline]
    pub fn write(&self, records: &[TransitionRecord], out: &mut [u8]) -> Result<usize, WireError> {
        let count = usize::try_from(self.header.count).unwrap_or(usize::MAX);
        let needed = HEADER_SIZE.saturating_add(count.saturating_mul(RECORD_SIZE));
        let Some(out) = out.get_mut(..needed) else {
            return Err(WireError::TooSmall {
                needed,
                given: out.len(),
            });
        };
        let mut written = self.header.write_to(out)?;
        for record in records.iter().take(count) {
            let Some(rest) = out.get_mut(written..) else {
                break;
            };
            let Ok(n) = record.write_to(rest) else {
                break;
            };
            written = written.saturating_add(n);
        }
        Ok(written)
    }
}

/// What [`TransitionLog::read`] gave a reader: the header of its answer and the sequence
/// number of the first record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogClaim {
    /// The answer's header.
    pub header: LogHeader,
    /// Sequence number of the first claimed record.
    pub start: u64,
}

/// The checks `LogHeader::write_to` makes, without writing: a failed copy-out leaves the
/// buffer alone.
pub(crate) fn check_output(out: &[u8]) -> Result<(), WireError> {
    if out.len() < HEADER_SIZE {
        return Err(WireError::TooSmall {
            needed: HEADER_SIZE,
            given: out.len(),
        });
    }
    let align = core::mem::align_of::<LogHeader>();
    if !out.as_ptr().addr().is_multiple_of(align) {
        return Err(WireError::Misaligned { align });
    }
    Ok(())
}

impl Default for TransitionLog {
    fn default() -> Self {
        Self::new()
    }
}

/// Time to working after a resume: from the start of `EvtDeviceD0Entry` to the end of
/// `EvtDeviceSelfManagedIoRestart`.
///
/// KMDF calls `EvtDeviceSelfManagedIoRestart` only when the device comes back after its
/// self-managed I/O was suspended; on the first start it calls
/// `EvtDeviceSelfManagedIoInit` instead. So a `D0Entry` that is followed by Init, by a
/// `D0Exit` (a failed power-up) or by another `D0Entry` produces no sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResumeTimer {
    started_at: Option<u64>,
}

impl ResumeTimer {
    /// Not running.
    #[must_use]
    pub const fn new() -> Self {
        ResumeTimer { started_at: None }
    }

    /// `EvtDeviceD0Entry` started at `now` (100 ns units). Replaces a stale start.
    pub fn d0_entry(&mut self, now: u64) {
        self.started_at = Some(now);
    }

    /// `EvtDeviceSelfManagedIoInit` or `EvtDeviceD0Exit`: the pending `D0Entry` was not a
    /// resume, or the resume never reached working.
    pub fn cancel(&mut self) {
        self.started_at = None;
    }

    /// `EvtDeviceSelfManagedIoRestart` ended at `now`: the time to working, if a
    /// `D0Entry` started the measurement. A clock that went backwards gives 0.
    pub fn restart_done(&mut self, now: u64) -> Option<u64> {
        self.started_at
            .take()
            .map(|start| now.saturating_sub(start))
    }

    /// True while a `D0Entry` waits for its Restart.
    #[must_use]
    pub const fn is_running(&self) -> bool {
        self.started_at.is_some()
    }
}

/// Accumulates [`Stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsAccumulator {
    stats: Stats,
}

impl StatsAccumulator {
    /// All zero.
    #[must_use]
    pub const fn new() -> Self {
        StatsAccumulator {
            stats: Stats {
                d0_entries: 0,
                d0_exits: 0,
                resumes: 0,
                last_resume_100ns: 0,
                min_resume_100ns: 0,
                max_resume_100ns: 0,
                total_resume_100ns: 0,
                persisted_d0_entries: 0,
                persisted_d0_exits: 0,
                deferred_writes: 0,
                persisted_writes: 0,
                log_overwritten: 0,
            },
        }
    }

    /// The lifetime counts read from the registry at start.
    pub fn set_persisted(&mut self, d0_entries: u32, d0_exits: u32) {
        self.stats.persisted_d0_entries = u64::from(d0_entries);
        self.stats.persisted_d0_exits = u64::from(d0_exits);
    }

    /// One `EvtDeviceD0Entry`.
    pub fn d0_entry(&mut self) {
        self.stats.d0_entries = self.stats.d0_entries.saturating_add(1);
    }

    /// One `EvtDeviceD0Exit`.
    pub fn d0_exit(&mut self) {
        self.stats.d0_exits = self.stats.d0_exits.saturating_add(1);
    }

    /// One time-to-working sample.
    pub fn resume(&mut self, duration_100ns: u64) {
        let s = &mut self.stats;
        s.min_resume_100ns = if s.resumes == 0 {
            duration_100ns
        } else {
            s.min_resume_100ns.min(duration_100ns)
        };
        s.max_resume_100ns = s.max_resume_100ns.max(duration_100ns);
        s.last_resume_100ns = duration_100ns;
        s.total_resume_100ns = s.total_resume_100ns.saturating_add(duration_100ns);
        s.resumes = s.resumes.saturating_add(1);
    }

    /// Lifetime counts to persist: what the registry held at start plus this session's,
    /// saturated at the registry's DWORD.
    #[must_use]
    pub fn lifetime(&self) -> (u32, u32) {
        let total =
            |base: u64, now: u64| u32::try_from(base.saturating_add(now)).unwrap_or(u32::MAX);
        (
            total(self.stats.persisted_d0_entries, self.stats.d0_entries),
            total(self.stats.persisted_d0_exits, self.stats.d0_exits),
        )
    }

    /// The statistics, without the fields other parts of the state own (the caller
    /// fills `deferred_writes`, `persisted_writes` and `log_overwritten`).
    #[must_use]
    pub const fn get(&self) -> Stats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    #[repr(C, align(8))]
    struct Buf([u8; 4096]);

    fn rec(callback: u16) -> TransitionRecord {
        TransitionRecord {
            callback,
            timestamp_100ns: u64::from(callback) * 10,
            sequence: 999, // ignored by push
            ..TransitionRecord::default()
        }
    }

    fn decode(out: &[u8], written: usize) -> (LogHeader, Vec<TransitionRecord>) {
        let header = LogHeader::read_from(out).expect("header");
        let mut records = vec![];
        let mut at = HEADER_SIZE;
        while at < written {
            records.push(TransitionRecord::read_from(&out[at..]).expect("record"));
            at += RECORD_SIZE;
        }
        assert_eq!(at, written);
        assert_eq!(records.len(), header.count as usize);
        (header, records)
    }

    #[test]
    fn push_assigns_sequences_and_get_finds_them() {
        let mut log = TransitionLog::new();
        assert!(log.is_empty());
        assert_eq!(log.get(0), None);
        for i in 0..10 {
            assert_eq!(log.push(rec(i)), u64::from(i));
        }
        assert_eq!(log.len(), 10);
        assert_eq!(log.oldest_sequence(), 0);
        assert_eq!(log.get(3).map(|r| (r.sequence, r.callback)), Some((3, 3)));
        assert_eq!(log.get(10), None);
    }

    #[test]
    fn full_ring_overwrites_oldest_and_counts_what_it_dropped() {
        let mut log = TransitionLog::new();
        let total = LOG_CAPACITY as u64 + 10;
        for i in 0..total {
            log.push(rec(u16::try_from(i).expect("small")));
        }
        assert_eq!(log.len(), LOG_CAPACITY);
        assert_eq!(log.oldest_sequence(), 10);
        assert_eq!(log.get(9), None);
        assert_eq!(log.get(10).map(|r| r.callback), Some(10));
        assert_eq!(log.get(total - 1).map(|r| r.sequence), Some(total - 1));
        assert_eq!(log.overwritten(), 10);

        // Reading changes nothing: the count is of pushes the ring had no room for.
        let mut buf = Buf([0; 4096]);
        let (header, _) = log.copy_out(0, &mut buf.0).expect("fits");
        assert_eq!(header.count as usize, LOG_CAPACITY);
        assert_eq!(header.oldest_sequence, 10, "the reader from 0 missed ten");
        for i in 0..5 {
            log.push(rec(i));
        }
        assert_eq!(log.overwritten(), 15);
    }

    #[test]
    fn copy_out_respects_first_sequence_and_buffer_size() {
        let mut log = TransitionLog::new();
        for i in 0..20 {
            log.push(rec(i));
        }
        let mut buf = Buf([0xAB; 4096]);
        let len = HEADER_SIZE + 3 * RECORD_SIZE + RECORD_SIZE - 1;
        let (header, written) = log.copy_out(5, &mut buf.0[..len]).expect("ok");
        assert_eq!(written, HEADER_SIZE + 3 * RECORD_SIZE);
        assert!(
            buf.0[written..].iter().all(|&b| b == 0xAB),
            "nothing past written"
        );
        let (decoded, records) = decode(&buf.0, written);
        assert_eq!(decoded, header);
        assert_eq!(header.next_sequence, 20);
        assert_eq!(header.oldest_sequence, 0);
        assert_eq!(header.capacity as usize, LOG_CAPACITY);
        let seqs: Vec<u64> = records.iter().map(|r| r.sequence).collect();
        assert_eq!(seqs, [5, 6, 7]);

        // A first_sequence in the future gives an empty answer with a valid header.
        let (header, written) = log.copy_out(1_000, &mut buf.0).expect("ok");
        assert_eq!((header.count, written), (0, HEADER_SIZE));
        // One older than the ring holds starts at the oldest.
        for i in 0..LOG_CAPACITY {
            log.push(rec(u16::try_from(i).expect("small")));
        }
        let (header, written) = log.copy_out(0, &mut buf.0).expect("ok");
        let (_, records) = decode(&buf.0, written);
        assert_eq!(records[0].sequence, header.oldest_sequence);
        assert_eq!(header.oldest_sequence, 20);
        assert!(
            records
                .windows(2)
                .all(|w| w[1].sequence == w[0].sequence + 1)
        );
    }

    #[test]
    fn copy_out_rejects_short_and_misaligned_buffers_untouched() {
        let mut log = TransitionLog::new();
        log.push(rec(1));
        let mut buf = Buf([0x5A; 4096]);
        assert!(matches!(
            log.copy_out(0, &mut buf.0[..HEADER_SIZE - 1]),
            Err(WireError::TooSmall { .. })
        ));
        assert!(matches!(
            log.copy_out(0, &mut buf.0[4..100]),
            Err(WireError::Misaligned { .. })
        ));
        assert!(buf.0.iter().all(|&b| b == 0x5A));
        // Exactly a header: no records, but the header tells how many there are.
        let (header, written) = log.copy_out(0, &mut buf.0[..HEADER_SIZE]).expect("ok");
        assert_eq!(
            (header.count, written, header.next_sequence),
            (0, HEADER_SIZE, 1)
        );
    }

    /// Random pushes and copy-outs against a model that keeps every record: the ring
    /// answers with exactly the model's newest records, in order, as many as fit, reads
    /// change nothing, and it counts as dropped exactly the records evicted.
    #[test]
    fn random_operations_match_a_model() {
        let mut seed: u64 = 0xDEAD_BEEF;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        let mut log = TransitionLog::new();
        let mut all: Vec<u64> = vec![]; // timestamps, indexed by sequence
        let mut dropped = 0u64;
        let mut buf = Buf([0; 4096]);
        for step in 0..5_000u64 {
            // Mostly pushes, a read now and then: bursts longer than the ring lose records.
            if next(100) >= 3 {
                let seq = log.push(TransitionRecord {
                    timestamp_100ns: step,
                    ..TransitionRecord::default()
                });
                assert_eq!(seq, all.len() as u64);
                if seq >= LOG_CAPACITY as u64 {
                    dropped += 1;
                }
                all.push(step);
                continue;
            }
            let total = all.len() as u64;
            let first = next(total + 10);
            let len =
                usize::try_from(next(HEADER_SIZE as u64 + 70 * RECORD_SIZE as u64)).expect("small");
            let result = log.copy_out(first, &mut buf.0[..len]);
            if len < HEADER_SIZE {
                assert!(result.is_err());
                continue;
            }
            let (header, written) = result.expect("fits");
            let oldest = total.saturating_sub(LOG_CAPACITY as u64);
            let start = first.clamp(oldest, total);
            let fit = (len - HEADER_SIZE) / RECORD_SIZE;
            let expected: Vec<u64> = (start..total).take(fit).collect();
            let (_, records) = decode(&buf.0, written);
            let got: Vec<u64> = records.iter().map(|r| r.sequence).collect();
            assert_eq!(got, expected, "step {step}");
            for r in &records {
                assert_eq!(
                    r.timestamp_100ns,
                    all[usize::try_from(r.sequence).expect("small")]
                );
            }
            assert_eq!(
                (header.oldest_sequence, header.next_sequence),
                (oldest, total)
            );
            assert_eq!(log.overwritten(), dropped, "a read changes nothing");
        }
        assert_eq!(log.overwritten(), dropped);
        assert!(dropped > 0, "the sequence evicts records");
    }

    #[test]
    fn resume_timer_ignores_first_start_and_failed_power_ups() {
        let mut t = ResumeTimer::new();
        // First start: D0Entry then SelfManagedIoInit.
        t.d0_entry(100);
        t.cancel();
        assert_eq!(t.restart_done(500), None);
        // Resume: D0Entry then Restart.
        t.d0_entry(1_000);
        assert!(t.is_running());
        assert_eq!(t.restart_done(1_750), Some(750));
        assert_eq!(t.restart_done(2_000), None, "one sample per D0Entry");
        // A D0Entry without Restart, then another D0Entry: measured from the second.
        t.d0_entry(3_000);
        t.d0_entry(4_000);
        assert_eq!(t.restart_done(4_100), Some(100));
        // A clock going backwards does not wrap.
        t.d0_entry(10);
        assert_eq!(t.restart_done(5), Some(0));
    }

    #[test]
    fn stats_accumulate_min_max_total_last() {
        let mut s = StatsAccumulator::new();
        assert_eq!(s.get(), Stats::default());
        for d in [300, 100, 200] {
            s.resume(d);
        }
        let st = s.get();
        assert_eq!(
            (st.resumes, st.min_resume_100ns, st.max_resume_100ns),
            (3, 100, 300)
        );
        assert_eq!((st.total_resume_100ns, st.last_resume_100ns), (600, 200));
        s.d0_entry();
        s.d0_entry();
        s.d0_exit();
        s.set_persisted(10, u32::MAX);
        assert_eq!(s.lifetime(), (12, u32::MAX), "saturates at the DWORD");
        let st = s.get();
        assert_eq!((st.d0_entries, st.d0_exits), (2, 1));
        assert_eq!(
            (st.persisted_d0_entries, st.persisted_d0_exits),
            (10, u64::from(u32::MAX))
        );
    }

    #[test]
    fn first_sample_sets_min_even_when_large() {
        let mut s = StatsAccumulator::new();
        s.resume(5_000);
        assert_eq!(s.get().min_resume_100ns, 5_000);
        s.resume(0);
        assert_eq!(s.get().min_resume_100ns, 0);
        assert_eq!(s.get().max_resume_100ns, 5_000);
    }
}
