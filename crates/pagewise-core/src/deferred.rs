//! Counter persistence that waits for a pageable point.
//!
//! The registry lives in paged pool and its hives on disk: during a transition in an NP
//! state the paging disk may be off, so a registry write there can hang the machine
//! (`WdfDeviceInitSetPowerNotPageable`: no files, registry or paged pool during
//! transitions). The driver therefore records new counter values here at any
//! time, and writes them only when [`PersistGate::should_write_now`] says the current
//! point is pageable. A refused point counts as a deferred write; the values wait for the
//! next pageable point (the next transition in a pageable state, or any passive-level
//! point outside transitions: the control queue, a work item, `EvtDeviceReleaseHardware`).

/// The counters kept in the device's hardware key
/// ([`crate::settings::LIFETIME_D0_ENTRIES`], [`crate::settings::LIFETIME_D0_EXITS`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PersistedCounters {
    /// Lifetime `EvtDeviceD0Entry` calls.
    pub d0_entries: u32,
    /// Lifetime `EvtDeviceD0Exit` calls.
    pub d0_exits: u32,
}

/// Pending counter values and the bookkeeping of writes done and deferred.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PersistGate {
    /// The newest values recorded.
    latest: PersistedCounters,
    /// What the registry holds, as far as the driver knows: the values read at start
    /// ([`PersistGate::load`]) or the last write confirmed.
    stored: PersistedCounters,
    /// A write handed out by [`PersistGate::take`] and not yet confirmed.
    in_flight: Option<PersistedCounters>,
    pending: bool,
    deferred: u64,
    written: u64,
    failed: u64,
}

impl PersistGate {
    /// Nothing pending, registry assumed to hold zeros.
    #[must_use]
    pub const fn new() -> Self {
        const ZERO: PersistedCounters = PersistedCounters {
            d0_entries: 0,
            d0_exits: 0,
        };
        PersistGate {
            latest: ZERO,
            stored: ZERO,
            in_flight: None,
            pending: false,
            deferred: 0,
            written: 0,
            failed: 0,
        }
    }

    /// The values read from the registry at start: what is stored already.
    pub fn load(&mut self, stored: PersistedCounters) {
        self.stored = stored;
        self.latest = stored;
        self.pending = false;
    }

    /// Records values to persist. Newer values replace older pending ones: only the
    /// latest count matters, so deferral never queues more than one write.
    pub fn record(&mut self, counters: PersistedCounters) {
        self.latest = counters;
        self.pending = match self.in_flight {
            Some(sent) => sent != counters,
            None => self.stored != counters,
        };
    }

    /// True when values are pending and `np` is false. `np` is true when the caller is
    /// inside a power transition in a nonpageable state (`WdfDevStateIsNP`, or the device
    /// effectively nonpageable); every refused call with values pending counts as one
    /// deferred write.
    pub fn should_write_now(&mut self, np: bool) -> bool {
        if !self.pending {
            return false;
        }
        if np {
            self.deferred = self.deferred.saturating_add(1);
            return false;
        }
        true
    }

    /// [`PersistGate::should_write_now`], and when it says yes, the values to write,
    /// in flight until [`PersistGate::complete`]. While one write is in flight no second
    /// one is handed out: two writers (the persist work item and a `D0Exit`) could
    /// otherwise finish in either order and the older values could land last. Values
    /// recorded meanwhile stay pending for the next point.
    pub fn take(&mut self, np: bool) -> Option<PersistedCounters> {
        if self.in_flight.is_some() || !self.should_write_now(np) {
            return None;
        }
        self.pending = false;
        self.in_flight = Some(self.latest);
        Some(self.latest)
    }

    /// Reports the outcome of the write [`PersistGate::take`] handed out. A failed
    /// write leaves the values pending for the next point.
    pub fn complete(&mut self, ok: bool) {
        let Some(sent) = self.in_flight.take() else {
            return;
        };
        if ok {
            self.stored = sent;
            self.written = self.written.saturating_add(1);
        } else {
            self.failed = self.failed.saturating_add(1);
        }
        self.pending = self.latest != self.stored;
    }

    /// True when values wait for a pageable point.
    #[must_use]
    pub const fn is_pending(&self) -> bool {
        self.pending
    }

    /// The latest values recorded.
    #[must_use]
    pub const fn latest(&self) -> PersistedCounters {
        self.latest
    }

    /// Points that refused a pending write because they were nonpageable.
    #[must_use]
    pub const fn deferred_writes(&self) -> u64 {
        self.deferred
    }

    /// Writes confirmed done.
    #[must_use]
    pub const fn persisted_writes(&self) -> u64 {
        self.written
    }

    /// Writes that failed (and were kept pending).
    #[must_use]
    pub const fn failed_writes(&self) -> u64 {
        self.failed
    }
}

impl Default for PersistGate {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(d0_entries: u32, d0_exits: u32) -> PersistedCounters {
        PersistedCounters {
            d0_entries,
            d0_exits,
        }
    }

    #[test]
    fn nothing_pending_nothing_written() {
        let mut g = PersistGate::new();
        assert!(!g.should_write_now(false));
        assert!(!g.should_write_now(true));
        assert_eq!(g.deferred_writes(), 0, "no deferral without pending values");
        assert_eq!(g.take(false), None);
    }

    #[test]
    fn np_points_defer_and_the_next_pageable_point_writes_the_latest() {
        let mut g = PersistGate::new();
        g.record(c(1, 0));
        assert!(!g.should_write_now(true));
        g.record(c(1, 1));
        assert_eq!(g.take(true), None);
        assert_eq!(g.deferred_writes(), 2);
        assert!(g.is_pending());
        assert_eq!(g.take(false), Some(c(1, 1)), "only the latest values");
        g.complete(true);
        assert!(!g.is_pending());
        assert_eq!(g.persisted_writes(), 1);
        assert_eq!(g.take(false), None, "one write per batch");
    }

    #[test]
    fn a_failed_write_stays_pending() {
        let mut g = PersistGate::new();
        g.record(c(2, 2));
        assert_eq!(g.take(false), Some(c(2, 2)));
        g.complete(false);
        assert_eq!(g.failed_writes(), 1);
        assert!(g.is_pending());
        assert_eq!(g.take(false), Some(c(2, 2)));
        g.complete(true);
        assert_eq!(g.persisted_writes(), 1);
        g.complete(true);
        assert_eq!(
            g.persisted_writes(),
            1,
            "completion without a take is ignored"
        );
    }

    #[test]
    fn values_recorded_during_a_write_stay_pending() {
        let mut g = PersistGate::new();
        g.record(c(1, 0));
        assert_eq!(g.take(false), Some(c(1, 0)));
        g.record(c(2, 1));
        g.complete(true);
        assert!(g.is_pending(), "the newer values were not written");
        assert_eq!(g.take(false), Some(c(2, 1)));
        g.complete(false);
        assert!(g.is_pending());
    }

    #[test]
    fn loaded_values_are_not_rewritten() {
        let mut g = PersistGate::new();
        g.load(c(40, 39));
        g.record(c(40, 39));
        assert!(!g.is_pending());
        g.record(c(41, 39));
        assert_eq!(g.take(false), Some(c(41, 39)));
        g.complete(true);
        assert!(!g.is_pending());
        assert_eq!(g.latest(), c(41, 39));
    }

    /// Random records, points and outcomes: nothing is ever handed out at an NP point,
    /// what is handed out is the latest value, writes never overlap, and one good
    /// pageable point at the end always leaves the registry holding the latest values.
    #[test]
    fn random_sequences_never_lose_the_latest_values() {
        let mut seed: u64 = 7;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        for _ in 0..300 {
            let mut g = PersistGate::new();
            let mut registry = c(0, 0);
            let mut writing: Option<PersistedCounters> = None;
            let mut latest = c(0, 0);
            for _ in 0..60 {
                match next(4) {
                    0 => {
                        latest.d0_entries += 1;
                        latest.d0_exits += u32::from(next(2) == 0);
                        g.record(latest);
                    }
                    1 | 2 => {
                        let np = next(2) == 0;
                        if let Some(values) = g.take(np) {
                            assert!(!np, "handed out at an NP point");
                            assert!(writing.is_none(), "two writes in flight");
                            assert_eq!(values, latest);
                            writing = Some(values);
                        }
                    }
                    _ => {
                        if let Some(values) = writing.take() {
                            let ok = next(3) != 0;
                            if ok {
                                registry = values;
                            }
                            g.complete(ok);
                        }
                    }
                }
            }
            if let Some(values) = writing.take() {
                registry = values;
                g.complete(true);
            }
            if let Some(values) = g.take(false) {
                registry = values;
                g.complete(true);
            }
            assert_eq!(registry, latest);
            assert!(!g.is_pending());
        }
    }

    #[test]
    fn one_write_in_flight_at_a_time() {
        let mut g = PersistGate::new();
        g.record(c(1, 0));
        assert_eq!(g.take(false), Some(c(1, 0)));
        g.record(c(1, 1));
        assert_eq!(g.take(false), None, "the first write has not finished");
        assert_eq!(g.deferred_writes(), 0, "not an NP deferral");
        // The first write fails after the second point passed: nothing is lost.
        g.complete(false);
        assert!(g.is_pending());
        assert_eq!(g.take(false), Some(c(1, 1)));
        g.complete(true);
        assert!(!g.is_pending());
        assert_eq!((g.persisted_writes(), g.failed_writes()), (1, 1));
    }

    #[test]
    fn recording_the_values_in_flight_does_not_queue_a_second_write() {
        let mut g = PersistGate::new();
        g.record(c(3, 3));
        assert_eq!(g.take(false), Some(c(3, 3)));
        g.record(c(3, 3));
        g.complete(true);
        assert!(!g.is_pending());
    }
}
