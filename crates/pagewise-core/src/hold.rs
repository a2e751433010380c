//! Keeping the device in D0 for `IOCTL_PAGEWISE_HOLD_D0`.
//!
//! The request arrives on the power-managed queue, so the framework has already brought
//! the device to D0 when the handler runs. The handler then takes one power reference
//! with `WdfDeviceStopIdle(device, FALSE)` and starts a `WDFTIMER`; the timer's
//! `EvtTimerFunc` (`DISPATCH_LEVEL`) drops the reference with `WdfDeviceResumeIdle`.
//!
//! [`D0Hold`] keeps at most one reference: a hold requested while one is active extends
//! the deadline and restarts the timer, without a second `StopIdle`. So `StopIdle` and
//! `ResumeIdle` balance by construction: the reference is taken only when none is held
//! and dropped only when one is. All times are interrupt time in 100 ns units.

/// 100 ns units per millisecond.
const TICKS_PER_MS: u64 = 10_000;

/// What the `IOCTL_PAGEWISE_HOLD_D0` handler must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum HoldAction {
    /// Nothing: a zero duration only wakes the device, which the queue already did.
    None,
    /// `WdfDeviceStopIdle(device, FALSE)`; if it fails call
    /// [`D0Hold::stop_idle_failed`] and complete the request with its status; else
    /// `WdfTimerStart(timer, WDF_REL_TIMEOUT_IN_MS(due_ms))`.
    StopIdleAndStartTimer {
        /// Milliseconds until the timer fires.
        due_ms: u32,
    },
    /// A hold is active and now lasts longer: `WdfTimerStart` again with this due time
    /// (restarting a started timer replaces its due time). No `StopIdle`.
    RestartTimer {
        /// Milliseconds until the timer fires.
        due_ms: u32,
    },
    /// A hold is active and already lasts at least as long: nothing to do.
    AlreadyHeld,
}

/// What the timer callback must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum TimerAction {
    /// Nothing: no hold is active (a stale timer).
    None,
    /// `WdfDeviceResumeIdle(device)`: the hold is over.
    ResumeIdle,
    /// The timer fired early (a restart raced it): `WdfTimerStart` with this due time.
    Restart {
        /// Milliseconds until the deadline.
        due_ms: u32,
    },
}

/// The D0-hold bookkeeping of one device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct D0Hold {
    active: bool,
    deadline: u64,
    holds: u64,
}

/// Milliseconds from `now` to `deadline`, rounded up so a timer never fires before the
/// deadline, saturated at `u32::MAX`.
fn due_ms(now: u64, deadline: u64) -> u32 {
    let ticks = deadline.saturating_sub(now);
    let ms = ticks.div_ceil(TICKS_PER_MS);
    u32::try_from(ms).unwrap_or(u32::MAX)
}

impl D0Hold {
    /// No hold.
    #[must_use]
    pub const fn new() -> Self {
        D0Hold {
            active: false,
            deadline: 0,
            holds: 0,
        }
    }

    /// A validated `HoldD0` request at `now` for `duration_ms` (already checked against
    /// `MAX_HOLD_D0_MS` by [`crate::ioctl`]).
    pub fn request(&mut self, now: u64, duration_ms: u32) -> HoldAction {
        if duration_ms == 0 {
            return HoldAction::None;
        }
        let deadline = now.saturating_add(u64::from(duration_ms).saturating_mul(TICKS_PER_MS));
        if self.active {
            if deadline <= self.deadline {
                return HoldAction::AlreadyHeld;
            }
            self.deadline = deadline;
            return HoldAction::RestartTimer {
                due_ms: due_ms(now, deadline),
            };
        }
        self.active = true;
        self.deadline = deadline;
        self.holds = self.holds.saturating_add(1);
        HoldAction::StopIdleAndStartTimer {
            due_ms: duration_ms,
        }
    }

    /// `WdfDeviceStopIdle` failed: no reference was taken, so none may be dropped.
    pub fn stop_idle_failed(&mut self) {
        self.active = false;
        self.holds = self.holds.saturating_sub(1);
    }

    /// The hold timer fired at `now`.
    pub fn timer_fired(&mut self, now: u64) -> TimerAction {
        if !self.active {
            return TimerAction::None;
        }
        if now < self.deadline {
            return TimerAction::Restart {
                due_ms: due_ms(now, self.deadline),
            };
        }
        self.active = false;
        TimerAction::ResumeIdle
    }

    /// Device teardown (`EvtDeviceSelfManagedIoFlush` at removal, or cleanup), after
    /// `WdfTimerStop(timer, TRUE)`: true when the FFI must call `WdfDeviceResumeIdle`
    /// for a hold that was still active.
    #[must_use]
    pub fn release(&mut self) -> bool {
        let was = self.active;
        self.active = false;
        was
    }

    /// True while the device holds a power reference for a hold.
    #[must_use]
    pub const fn is_active(&self) -> bool {
        self.active
    }

    /// Holds started (references taken) since the device started.
    #[must_use]
    pub const fn holds_started(&self) -> u64 {
        self.holds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = TICKS_PER_MS;

    #[derive(Default)]
    struct Power {
        refs: i32,
        timer_due: Option<u64>,
    }

    impl Power {
        fn request(&mut self, h: &mut D0Hold, now: u64, ms: u32, stop_idle_ok: bool) {
            match h.request(now, ms) {
                HoldAction::None | HoldAction::AlreadyHeld => {}
                HoldAction::StopIdleAndStartTimer { due_ms } => {
                    assert_eq!(self.refs, 0, "second StopIdle");
                    if stop_idle_ok {
                        self.refs += 1;
                        self.timer_due = Some(now + u64::from(due_ms) * MS);
                    } else {
                        h.stop_idle_failed();
                    }
                }
                HoldAction::RestartTimer { due_ms } => {
                    assert_eq!(self.refs, 1);
                    self.timer_due = Some(now + u64::from(due_ms) * MS);
                }
            }
        }

        fn fire(&mut self, h: &mut D0Hold, now: u64) {
            self.timer_due = None;
            match h.timer_fired(now) {
                TimerAction::None => {}
                TimerAction::ResumeIdle => {
                    assert_eq!(self.refs, 1, "ResumeIdle without StopIdle");
                    self.refs -= 1;
                }
                TimerAction::Restart { due_ms } => {
                    self.timer_due = Some(now + u64::from(due_ms) * MS);
                }
            }
        }
    }

    #[test]
    fn a_hold_takes_one_reference_and_the_timer_drops_it() {
        let mut h = D0Hold::new();
        let mut p = Power::default();
        p.request(&mut h, 0, 1_000, true);
        assert!(h.is_active());
        assert_eq!((p.refs, p.timer_due), (1, Some(1_000 * MS)));
        p.fire(&mut h, 1_000 * MS);
        assert_eq!(p.refs, 0);
        assert!(!h.is_active());
        assert_eq!(h.holds_started(), 1);
    }

    #[test]
    fn a_second_request_extends_without_a_second_stop_idle() {
        let mut h = D0Hold::new();
        let mut p = Power::default();
        p.request(&mut h, 0, 1_000, true);
        p.request(&mut h, 500 * MS, 2_000, true);
        assert_eq!(p.refs, 1);
        assert_eq!(p.timer_due, Some(2_500 * MS));
        assert_eq!(h.request(600 * MS, 100), HoldAction::AlreadyHeld);
        p.fire(&mut h, 2_500 * MS);
        assert_eq!(p.refs, 0);
        assert_eq!(h.holds_started(), 1);
    }

    #[test]
    fn an_early_timer_restarts_for_the_rest() {
        let mut h = D0Hold::new();
        let mut p = Power::default();
        p.request(&mut h, 0, 1_000, true);
        // The restart raced a timer already queued for the old due time.
        h.request(100 * MS, 5_000).expect_restart();
        p.fire(&mut h, 1_000 * MS);
        assert_eq!(p.refs, 1);
        assert_eq!(p.timer_due, Some(5_100 * MS));
        p.fire(&mut h, 5_100 * MS);
        assert_eq!(p.refs, 0);
    }

    trait ExpectRestart {
        fn expect_restart(self);
    }
    impl ExpectRestart for HoldAction {
        fn expect_restart(self) {
            assert!(matches!(self, HoldAction::RestartTimer { .. }), "{self:?}");
        }
    }

    #[test]
    fn zero_duration_only_wakes() {
        let mut h = D0Hold::new();
        assert_eq!(h.request(0, 0), HoldAction::None);
        assert!(!h.is_active());
        assert_eq!(h.timer_fired(0), TimerAction::None);
    }

    #[test]
    fn failed_stop_idle_takes_no_reference() {
        let mut h = D0Hold::new();
        let mut p = Power::default();
        p.request(&mut h, 0, 1_000, false);
        assert!(!h.is_active());
        assert_eq!(h.holds_started(), 0);
        assert_eq!(h.timer_fired(1_000 * MS), TimerAction::None);
        p.request(&mut h, 0, 1_000, true);
        assert_eq!(p.refs, 1);
    }

    #[test]
    fn release_drops_an_active_hold_once() {
        let mut h = D0Hold::new();
        h.request(0, 10).expect_start();
        assert!(h.release());
        assert!(!h.release());
        assert_eq!(h.timer_fired(u64::MAX), TimerAction::None);
    }

    trait ExpectStart {
        fn expect_start(self);
    }
    impl ExpectStart for HoldAction {
        fn expect_start(self) {
            assert!(
                matches!(self, HoldAction::StopIdleAndStartTimer { .. }),
                "{self:?}"
            );
        }
    }

    #[test]
    fn due_times_round_up_and_saturate() {
        assert_eq!(due_ms(0, 1), 1);
        assert_eq!(due_ms(0, MS), 1);
        assert_eq!(due_ms(0, MS + 1), 2);
        assert_eq!(due_ms(10, 5), 0);
        assert_eq!(due_ms(0, u64::MAX), u32::MAX);
        let mut h = D0Hold::new();
        h.request(u64::MAX - 5, 600_000).expect_start();
        assert_eq!(h.timer_fired(u64::MAX), TimerAction::ResumeIdle);
    }

    #[test]
    fn random_sequences_balance() {
        let mut seed: u64 = 12345;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        for _ in 0..500 {
            let mut h = D0Hold::new();
            let mut p = Power::default();
            let mut now = 0u64;
            for _ in 0..50 {
                now += next(3_000) * MS;
                match next(3) {
                    0 => p.request(
                        &mut h,
                        now,
                        u32::try_from(next(2_000)).expect("small"),
                        next(5) != 0,
                    ),
                    1 => {
                        if let Some(due) = p.timer_due
                            && due <= now
                        {
                            p.fire(&mut h, now);
                        }
                    }
                    _ => p.fire(&mut h, now),
                }
                assert_eq!(p.refs, i32::from(h.is_active()));
            }
            if h.release() {
                p.refs -= 1;
            }
            assert_eq!(p.refs, 0);
        }
    }
}
