//! The per-device state and the one method the FFI calls from each callback.
//!
//! [`DeviceState`] lives in the WDF device context (nonpaged pool, zeroed by the
//! framework, then initialised in place with [`DeviceState::new`]). It holds only
//! fixed-size data. The FFI serialises access with one `WDFSPINLOCK` (power callbacks
//! at `PASSIVE_LEVEL`, the hold timer at `DISPATCH_LEVEL`, the IOCTL queues); every
//! method is short, allocation-free and panic-free (see the crate documentation), and
//! none does I/O: each returns what the FFI must do after it drops the lock.
//!
//! Callback order and what to call:
//!
//! | callback | call |
//! |---|---|
//! | `EvtDriverDeviceAdd`, before `WdfDeviceCreate` | [`crate::settings::Settings::from_raw`] |
//! | `EvtDriverDeviceAdd`, after `WdfDeviceCreate` | [`DeviceState::on_device_created`] → lock action |
//! | `EvtDeviceD0Entry` | [`DeviceState::on_d0_entry`] |
//! | `EvtDeviceSelfManagedIoInit` | [`DeviceState::on_self_managed_io_init`] |
//! | `EvtDeviceSelfManagedIoRestart` | [`DeviceState::on_self_managed_io_restart`] |
//! | `EvtDeviceSelfManagedIoSuspend` | [`DeviceState::on_self_managed_io_suspend`] |
//! | `EvtDeviceD0Exit` | [`DeviceState::on_d0_exit`] → counters to write now, if any |
//! | `EvtDeviceUsageNotificationEx` | [`DeviceState::on_usage_notification`] → status + lock action (the FFI: on a copy, see [`crate::locked`]) |
//! | end of Restart/Init, if [`DeviceState::persist_wanted`] | enqueue the persist work item |
//! | persist `EvtWorkItem` | [`DeviceState::take_persist_in_work_item`] / [`DeviceState::persist_done`] |
//! | `EvtDeviceReleaseHardware`, after `WdfWorkItemFlush` | [`DeviceState::take_persist_at_release`] / [`DeviceState::persist_done`] |
//! | `EvtIoDeviceControl` | [`crate::ioctl::decode`], then [`crate::locked::answer`] |
//! | `HOLD_D0` on the power-managed queue | [`DeviceState::hold_request`] |
//! | hold `EvtTimerFunc` | [`DeviceState::hold_timer_fired`] |
//! | `EvtDeviceSelfManagedIoFlush`, after stopping the hold timer | [`DeviceState::release_hold`] → resume idle |
//! | device cleanup | [`DeviceState::on_cleanup`] → unlock / resume idle (the FFI: on a copy, see [`crate::locked`]) |
//!
//! The FFI reaches all of this through one locked entry point, [`DeviceState::apply`]
//! with a [`crate::locked::Op`]; the methods here are what each operation does.

use pagewise_ioctl::{CallbackId, Config, Stats, TransitionRecord, transition_flag};

use crate::deferred::{PersistGate, PersistedCounters};
use crate::hold::{D0Hold, HoldAction, TimerAction};
use crate::image::Placements;
use crate::pageability::{LockAction, Pageability, UsageDecision};
use crate::power_state::PowerDeviceState;
use crate::settings::Settings;
use crate::status::{NtStatus, nt_success};
use crate::translog::{ResumeTimer, StatsAccumulator, TransitionLog};

/// One power callback as the FFI observed it: times from `KeQueryInterruptTime` at the
/// callback's start and end (100 ns units), the IRQL, the power state argument and
/// `WdfDevStateIsNP(WdfDeviceGetDevicePowerState(device))`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transition {
    /// Interrupt time at the callback's start.
    pub start_100ns: u64,
    /// Interrupt time at the callback's end.
    pub end_100ns: u64,
    /// `KeGetCurrentIrql()` at the start.
    pub irql: u8,
    /// The callback's `WDF_POWER_DEVICE_STATE` argument (`PreviousState` of `D0Entry`,
    /// `TargetState` of `D0Exit`), 0 for callbacks without one.
    pub power_state: u32,
    /// `WdfDevStateIsNP` of the device's power state during the callback.
    pub np: bool,
    /// What the callback returns.
    pub status: NtStatus,
}

/// What device cleanup must undo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct CleanupActions {
    /// `MmUnlockPagableImageSection` if `Unlock`.
    pub lock: LockAction,
    /// `WdfDeviceResumeIdle` for a hold still active (after `WdfTimerStop(.., TRUE)`).
    pub resume_idle: bool,
}

/// What the `IOCTL_PAGEWISE_GET_CONFIG` answer is made of, copied out of the locked state
/// so that the answer is built in the caller's pageable code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigInputs {
    /// The settings the device was created with.
    pub settings: Settings,
    /// The pageability state.
    pub pageability: Pageability,
    /// The self-check's result.
    pub placements: Placements,
}

impl ConfigInputs {
    /// Empty inputs, to be filled by `Op::ReadConfigInputs`.
    #[must_use]
    pub const fn new() -> Self {
        ConfigInputs {
            settings: Settings::DEFAULT,
            pageability: Pageability::new(),
            placements: Placements::new(),
        }
    }

    /// The answer to `IOCTL_PAGEWISE_GET_CONFIG`.
    #[must_use]
    #[inline]
    pub fn config(&self) -> Config {
        let (callbacks, count) = self.placements.raw();
        Config {
            power_pageable: u32::from(self.pageability.chosen_pageable()),
            reason: self.pageability.reason() as u32,
            special_files: self.pageability.special_files(),
            effective_nonpageable: u32::from(self.pageability.effective_nonpageable()),
            power_down_locked: u32::from(self.pageability.is_locked()),
            idle_timeout_ms: self.settings.idle_timeout_ms,
            callback_count: u32::try_from(count).unwrap_or(0),
            reserved: 0,
            callbacks: *callbacks,
        }
    }
}

impl Default for ConfigInputs {
    fn default() -> Self {
        Self::new()
    }
}

/// Everything the driver keeps per device. See the module documentation.
#[derive(Clone, Debug)]
pub struct DeviceState {
    settings: Settings,
    pageability: Pageability,
    stats: StatsAccumulator,
    resume: ResumeTimer,
    log: TransitionLog,
    placements: Placements,
    hold: D0Hold,
    persist: PersistGate,
}

impl DeviceState {
    /// Default settings, nothing recorded. `const` so the FFI can build it in place.
    #[must_use]
    pub const fn new() -> Self {
        DeviceState {
            settings: Settings::DEFAULT,
            pageability: Pageability::new(),
            stats: StatsAccumulator::new(),
            resume: ResumeTimer::new(),
            log: TransitionLog::new(),
            placements: Placements::new(),
            hold: D0Hold::new(),
            persist: PersistGate::new(),
        }
    }

    /// After `WdfDeviceCreate` in `EvtDriverDeviceAdd`: the settings the device was
    /// created with, the lifetime counters read from its hardware key, and the driver's
    /// self-check. Returns the lock action to run before the first power transition:
    /// `Lock` when the device is power-nonpageable or has special-file support, `Refuse`
    /// when it needs the lock but the self-check did not find `EvtDeviceD0Exit` in
    /// `PAGEPWR` (the FFI then fails the device add).
    pub fn on_device_created(
        &mut self,
        settings: Settings,
        stored: PersistedCounters,
        placements: &Placements,
    ) -> LockAction {
        self.settings = settings;
        self.pageability
            .set_choice(settings.power_pageable, settings.reason);
        self.pageability
            .set_special_file_support(settings.special_file_support);
        self.pageability
            .set_lock_target_found(placements.in_power_down_section(CallbackId::D0Exit));
        self.stats.set_persisted(stored.d0_entries, stored.d0_exits);
        self.persist.load(stored);
        self.placements = *placements;
        self.pageability.before_first_transition()
    }

    fn flags(&self, t: &Transition) -> u8 {
        let mut flags = 0;
        if t.np {
            flags |= transition_flag::NONPAGEABLE_STATE;
        }
        if !self.pageability.effective_nonpageable() {
            flags |= transition_flag::POWER_PAGEABLE;
        }
        if !nt_success(t.status) {
            flags |= transition_flag::FAILED;
        }
        if self.pageability.is_locked() {
            flags |= transition_flag::POWER_DOWN_LOCKED;
        }
        flags
    }

    /// Not inlined: five callbacks log, all under the spin lock, and one resident copy
    /// serves them.
    #[inline(never)]
    fn push_log(&mut self, callback: CallbackId, t: &Transition, previous: u8, target: u8) {
        let record = TransitionRecord {
            sequence: 0,
            timestamp_100ns: t.start_100ns,
            duration_100ns: u32::try_from(t.end_100ns.saturating_sub(t.start_100ns))
                .unwrap_or(u32::MAX),
            callback: callback as u16,
            previous_state: previous,
            target_state: target,
            irql: t.irql,
            flags: self.flags(t),
            reserved: 0,
            status: t.status,
        };
        self.log.push(record);
    }

    fn record_counters(&mut self) {
        let (d0_entries, d0_exits) = self.stats.lifetime();
        self.persist.record(PersistedCounters {
            d0_entries,
            d0_exits,
        });
    }

    /// `EvtDeviceD0Entry(PreviousState)`: counts it, logs it, and when it is a resume
    /// (see [`PowerDeviceState::is_resume_from`]) starts the time-to-working measurement
    /// at `t.start_100ns`. A start from `D3Final`, the first or one after a `PnP` stop,
    /// is not measured even though KMDF ends the latter with
    /// `EvtDeviceSelfManagedIoRestart` too. Never writes the registry (that would
    /// lengthen resume); the new counts wait for a pageable point.
    pub fn on_d0_entry(&mut self, t: &Transition) {
        self.push_log(
            CallbackId::D0Entry,
            t,
            PowerDeviceState::log_byte(t.power_state),
            PowerDeviceState::D0 as u8,
        );
        if nt_success(t.status) {
            self.stats.d0_entry();
            if PowerDeviceState::is_resume_from(t.power_state) {
                self.resume.d0_entry(t.start_100ns);
            } else {
                self.resume.cancel();
            }
            self.record_counters();
        }
    }

    /// `EvtDeviceSelfManagedIoInit`: the first start, so the `D0Entry` before it was not
    /// a resume.
    pub fn on_self_managed_io_init(&mut self, t: &Transition) {
        self.resume.cancel();
        self.push_log(CallbackId::SelfManagedIoInit, t, 0, 0);
    }

    /// `EvtDeviceSelfManagedIoRestart`: the device is working again. Returns the time
    /// to working (`D0Entry` start to `t.end_100ns`) when this ends a resume.
    pub fn on_self_managed_io_restart(&mut self, t: &Transition) -> Option<u64> {
        self.push_log(CallbackId::SelfManagedIoRestart, t, 0, 0);
        let sample = self.resume.restart_done(t.end_100ns)?;
        self.stats.resume(sample);
        Some(sample)
    }

    /// `EvtDeviceSelfManagedIoSuspend`.
    pub fn on_self_managed_io_suspend(&mut self, t: &Transition) {
        self.push_log(CallbackId::SelfManagedIoSuspend, t, 0, 0);
    }

    /// `EvtDeviceD0Exit(TargetState)`, as it starts: counts the exit and, when a
    /// transition may touch the registry ([`Pageability::transition_writes_allowed`]) and
    /// the framework's state is not NP (`np`, `WdfDevStateIsNP`), returns the counters to
    /// write now (then call [`DeviceState::persist_done`]); otherwise the write is deferred.
    /// [`DeviceState::on_d0_exit`] logs the callback at its end.
    pub fn d0_exit_begin(&mut self, np: bool) -> Option<PersistedCounters> {
        self.resume.cancel();
        self.stats.d0_exit();
        self.record_counters();
        self.persist
            .take(np || !self.pageability.transition_writes_allowed())
    }

    /// `EvtDeviceD0Exit(TargetState)`, at its end (after any write
    /// [`DeviceState::d0_exit_begin`] asked for): logs it, its duration included.
    pub fn on_d0_exit(&mut self, t: &Transition) {
        self.push_log(
            CallbackId::D0Exit,
            t,
            PowerDeviceState::D0 as u8,
            PowerDeviceState::log_byte(t.power_state),
        );
    }

    /// True when the persist work item should be queued: counters wait for a pageable
    /// point and the device is on no special-file path, so the work item will be allowed
    /// to write them. The FFI asks at the end of `EvtDeviceSelfManagedIoRestart` and
    /// `EvtDeviceSelfManagedIoInit` (the device and the system are working again).
    ///
    /// A power-nonpageable device queues it too: `WdfDeviceInitSetPowerNotPageable`
    /// forbids pageable data *during the device's power transitions*, where a fault could
    /// wait for a paging disk that is off while the transition holds up the system's. The
    /// work item is no part of a transition: it runs at `PASSIVE_LEVEL` in a system worker
    /// thread, and nothing in a transition waits for it (only `EvtDeviceReleaseHardware`
    /// flushes it, after the last one), so a write there that has to wait for paging I/O
    /// delays only itself. Without it, a power-nonpageable device would persist only at
    /// `EvtDeviceReleaseHardware`, which KMDF does not call at shutdown: every count since
    /// the last removal would be lost at each reboot. A device on a special-file path
    /// still waits: it may be the paging device itself.
    ///
    /// The answer comes from state the driver owns, not from
    /// `WdfDeviceGetDevicePowerState`, whose value KMDF defines only inside `PnP` and
    /// power callbacks.
    #[must_use]
    pub fn persist_wanted(&self) -> bool {
        self.persist.is_pending() && self.pageability.special_files() == 0
    }

    /// The persist work item: the counters to write now, or `None` when nothing is
    /// pending, a write is in flight, or the device went onto a special-file path since the
    /// item was queued (a refusal that counts as a deferred write).
    pub fn take_persist_in_work_item(&mut self) -> Option<PersistedCounters> {
        self.persist.take(self.pageability.special_files() != 0)
    }

    /// `EvtDeviceReleaseHardware`: the last pageable point of the device, after its last
    /// power transition, so the counters are written whatever the pageability. The FFI
    /// calls it after `WdfWorkItemFlush`: while the work item's own write is in flight,
    /// this returns `None` (one write at a time), and the final counts would be lost.
    pub fn take_persist_at_release(&mut self) -> Option<PersistedCounters> {
        self.persist.take(false)
    }

    /// The registry write of counters handed out by [`DeviceState::on_d0_exit`],
    /// [`DeviceState::take_persist_in_work_item`] or
    /// [`DeviceState::take_persist_at_release`] finished.
    pub fn persist_done(&mut self, ok: bool) {
        self.persist.complete(ok);
    }

    /// `EvtDeviceUsageNotificationEx(type, in_path)`: return `status`, execute `action`.
    /// The FFI makes the same change on a copy of the pageability state, outside the
    /// lock, and publishes it with [`DeviceState::set_pageability`] (see
    /// [`crate::locked`]).
    pub fn on_usage_notification(&mut self, file_type: u32, in_path: bool) -> UsageDecision {
        self.pageability.on_usage_notification(file_type, in_path)
    }

    /// Publishes a pageability state a `PnP` callback computed from a copy.
    pub fn set_pageability(&mut self, pageability: Pageability) {
        self.pageability = pageability;
    }

    /// A validated `HoldD0` on the power-managed queue at `now`.
    pub fn hold_request(&mut self, now: u64, duration_ms: u32) -> HoldAction {
        self.hold.request(now, duration_ms)
    }

    /// `WdfDeviceStopIdle` failed for the hold just requested.
    pub fn hold_stop_idle_failed(&mut self) {
        self.hold.stop_idle_failed();
    }

    /// The hold timer fired at `now`.
    pub fn hold_timer_fired(&mut self, now: u64) -> TimerAction {
        self.hold.timer_fired(now)
    }

    /// Ends a hold at removal (`EvtDeviceSelfManagedIoFlush`, after
    /// `WdfTimerStop(timer, TRUE)`): true when the FFI must call `WdfDeviceResumeIdle`
    /// for a hold that was still active. A later [`DeviceState::on_cleanup`] then finds
    /// nothing to release.
    #[must_use]
    pub fn release_hold(&mut self) -> bool {
        self.hold.release()
    }

    /// Device cleanup: release the lock and any hold still active.
    pub fn on_cleanup(&mut self) -> CleanupActions {
        CleanupActions {
            lock: self.pageability.on_cleanup(),
            resume_idle: self.hold.release(),
        }
    }

    /// What the answer to `IOCTL_PAGEWISE_GET_CONFIG` is made of.
    #[must_use]
    pub fn config_inputs(&self) -> ConfigInputs {
        ConfigInputs {
            settings: self.settings,
            pageability: self.pageability,
            placements: self.placements,
        }
    }

    /// The answer to `IOCTL_PAGEWISE_GET_CONFIG`.
    #[must_use]
    pub fn config(&self) -> Config {
        self.config_inputs().config()
    }

    /// The answer to `IOCTL_PAGEWISE_GET_STATS`.
    #[must_use]
    pub fn stats(&self) -> Stats {
        let mut stats = self.stats.get();
        stats.deferred_writes = self.persist.deferred_writes();
        stats.persisted_writes = self.persist.persisted_writes();
        stats.log_overwritten = self.log.overwritten();
        stats
    }

    /// The settings in force.
    #[must_use]
    pub const fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The pageability state.
    #[must_use]
    pub const fn pageability(&self) -> &Pageability {
        &self.pageability
    }

    /// The transition log.
    #[must_use]
    pub const fn log(&self) -> &TransitionLog {
        &self.log
    }

    /// The self-check's placements.
    #[must_use]
    pub const fn placements(&self) -> &Placements {
        &self.placements
    }

    /// The D0-hold state.
    #[must_use]
    pub const fn hold(&self) -> &D0Hold {
        &self.hold
    }
}

impl Default for DeviceState {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hold::HoldAction;
    use crate::ioctl::decode;
    use crate::settings::RawSettings;
    use crate::status::{STATUS_BUFFER_TOO_SMALL, STATUS_SUCCESS};
    use pagewise_ioctl::{
        IOCTL_PAGEWISE_GET_CONFIG, LogHeader, PageabilityReason, Wire, special_file,
    };

    const PAGING: u32 = 1;

    #[repr(C, align(8))]
    struct Out([u8; 4096]);

    /// A device without special-file support (its section is locked only while it is
    /// effectively nonpageable); [`created_with_special_files`] for one with it.
    fn created(power_pageable: u32, stored: PersistedCounters) -> (DeviceState, LockAction) {
        created_with(power_pageable, 0, stored)
    }

    fn created_with_special_files(
        power_pageable: u32,
        stored: PersistedCounters,
    ) -> (DeviceState, LockAction) {
        created_with(power_pageable, 1, stored)
    }

    fn created_with(
        power_pageable: u32,
        special_file_support: u32,
        stored: PersistedCounters,
    ) -> (DeviceState, LockAction) {
        let settings = Settings::from_raw(RawSettings {
            power_pageable: Some(power_pageable),
            idle_timeout_ms: Some(2_000),
            special_file_support: Some(special_file_support),
        });
        let mut state = DeviceState::new();
        let action =
            state.on_device_created(settings, stored, &Placements::with_d0_exit_in(b"PAGEPWR"));
        (state, action)
    }

    fn at(start: u64, end: u64, power_state: u32, np: bool) -> Transition {
        Transition {
            start_100ns: start,
            end_100ns: end,
            irql: 0,
            power_state,
            np,
            status: STATUS_SUCCESS,
        }
    }

    const D3: u32 = PowerDeviceState::D3 as u32;
    const D3_FINAL: u32 = PowerDeviceState::D3Final as u32;

    /// `EvtDeviceD0Exit` as the FFI runs it: the persistence decision as it starts, the
    /// log record at its end.
    fn d0_exit(s: &mut DeviceState, t: &Transition) -> Option<PersistedCounters> {
        let write = s.d0_exit_begin(t.np);
        s.on_d0_exit(t);
        write
    }

    fn counters(d0_entries: u32, d0_exits: u32) -> PersistedCounters {
        PersistedCounters {
            d0_entries,
            d0_exits,
        }
    }

    #[test]
    fn nonpageable_device_lifecycle() {
        let (mut s, action) = created(0, counters(10, 9));
        assert_eq!(
            action,
            LockAction::Lock,
            "locked before the first transition"
        );
        // First start: D0Entry from D3Final, then SelfManagedIoInit: not a resume.
        s.on_d0_entry(&at(100, 120, D3_FINAL, true));
        s.on_self_managed_io_init(&at(130, 140, 0, true));
        assert_eq!(s.stats().resumes, 0);
        // The first start's counts go out from the work item, outside any transition.
        assert!(s.persist_wanted());
        assert_eq!(s.take_persist_in_work_item(), Some(counters(11, 9)));
        s.persist_done(true);
        // Idle: suspend, D0Exit in an NP state: the counter write is deferred.
        s.on_self_managed_io_suspend(&at(1_000, 1_001, 0, true));
        assert_eq!(d0_exit(&mut s, &at(1_010, 1_020, D3, true)), None);
        assert_eq!(s.stats().deferred_writes, 1);
        // Resume: D0Entry from D3, Restart: one sample, from D0Entry start to Restart end.
        s.on_d0_entry(&at(5_000, 5_100, D3, true));
        assert_eq!(
            s.on_self_managed_io_restart(&at(5_200, 5_700, 0, true)),
            Some(700)
        );
        let stats = s.stats();
        assert_eq!((stats.d0_entries, stats.d0_exits, stats.resumes), (2, 1, 1));
        assert_eq!(
            (stats.persisted_d0_entries, stats.persisted_d0_exits),
            (10, 9)
        );
        assert_eq!(stats.last_resume_100ns, 700);
        // The resume asks for the work item, which writes the latest counts; removal then
        // has nothing left to write.
        assert!(s.persist_wanted());
        assert_eq!(s.take_persist_in_work_item(), Some(counters(12, 10)));
        s.persist_done(true);
        assert_eq!(s.take_persist_at_release(), None);
        assert_eq!(s.stats().persisted_writes, 2);

        let config = s.config();
        assert_eq!(config.power_pageable, 0);
        assert_eq!(config.reason, PageabilityReason::Setting as u32);
        assert_eq!(config.effective_nonpageable, 1);
        assert_eq!(config.power_down_locked, 1);
        assert_eq!(config.idle_timeout_ms, 2_000);

        let cleanup = s.on_cleanup();
        assert_eq!(cleanup.lock, LockAction::Unlock);
        assert!(!cleanup.resume_idle);
    }

    /// What the registry holds after a run that ends at shutdown: KMDF calls `D0Exit`
    /// (target `D3Final`) and no `EvtDeviceReleaseHardware`, so whatever was not written by
    /// then is lost. Each resume's work item runs; `registry` is what the writes left.
    fn counters_after_reboot(
        power_pageable: u32,
        special_file_support: u32,
        cycles: u32,
    ) -> PersistedCounters {
        let (mut s, _) = created_with(power_pageable, special_file_support, counters(0, 0));
        let mut registry = counters(0, 0);
        let np = power_pageable == 0;
        let work_item = |s: &mut DeviceState, registry: &mut PersistedCounters| {
            if s.persist_wanted()
                && let Some(written) = s.take_persist_in_work_item()
            {
                *registry = written;
                s.persist_done(true);
            }
        };
        s.on_d0_entry(&at(0, 1, D3_FINAL, np));
        s.on_self_managed_io_init(&at(2, 3, 0, np));
        work_item(&mut s, &mut registry);
        for i in 0..u64::from(cycles) {
            let base = 100 * (i + 1);
            s.on_self_managed_io_suspend(&at(base, base + 1, 0, np));
            if let Some(written) = d0_exit(&mut s, &at(base + 2, base + 3, D3, np)) {
                registry = written;
                s.persist_done(true);
            }
            s.on_d0_entry(&at(base + 10, base + 11, D3, np));
            s.on_self_managed_io_restart(&at(base + 12, base + 13, 0, np));
            work_item(&mut s, &mut registry);
        }
        // Shutdown.
        s.on_self_managed_io_suspend(&at(10_000, 10_001, 0, np));
        if let Some(written) = d0_exit(&mut s, &at(10_002, 10_003, D3_FINAL, np)) {
            registry = written;
            s.persist_done(true);
        }
        registry
    }

    /// Issue 18, point 5: the lifetime counters survive a reboot whatever the pageability.
    /// A power-pageable device without special-file support loses nothing; a
    /// power-nonpageable one, or one with special-file support, loses the shutdown's own
    /// `D0Exit` only (no pageable point follows it), as docs/driver.md says.
    #[test]
    fn lifetime_counters_survive_a_reboot_in_both_modes() {
        assert_eq!(counters_after_reboot(1, 0, 5), counters(6, 6));
        assert_eq!(counters_after_reboot(0, 0, 5), counters(6, 5));
        assert_eq!(counters_after_reboot(1, 1, 5), counters(6, 5));
        assert_eq!(counters_after_reboot(0, 1, 0), counters(1, 0));
    }

    #[test]
    fn log_records_carry_states_flags_and_durations() {
        let (mut s, _) = created(0, counters(0, 0));
        s.on_d0_entry(&at(100, 130, D3_FINAL, true));
        let mut failed = at(200, 260, D3, true);
        failed.status = -1;
        d0_exit(&mut s, &failed);
        let log = s.log();
        assert_eq!(log.len(), 2);
        let entry = log.get(0).expect("first");
        assert_eq!(entry.callback, CallbackId::D0Entry as u16);
        assert_eq!(entry.previous_state, PowerDeviceState::D3Final as u8);
        assert_eq!(entry.target_state, PowerDeviceState::D0 as u8);
        assert_eq!((entry.timestamp_100ns, entry.duration_100ns), (100, 30));
        assert_eq!(
            entry.flags,
            transition_flag::NONPAGEABLE_STATE | transition_flag::POWER_DOWN_LOCKED
        );
        let exit = log.get(1).expect("second");
        assert_eq!(exit.callback, CallbackId::D0Exit as u16);
        assert_eq!(exit.previous_state, PowerDeviceState::D0 as u8);
        assert_eq!(exit.target_state, PowerDeviceState::D3 as u8);
        assert_ne!(exit.flags & transition_flag::FAILED, 0);
        assert_eq!(exit.status, -1);
    }

    #[test]
    fn a_failed_d0_entry_is_logged_but_not_counted_or_timed() {
        let (mut s, _) = created(1, counters(0, 0));
        let mut t = at(10, 20, D3, false);
        t.status = -5;
        s.on_d0_entry(&t);
        assert_eq!(s.stats().d0_entries, 0);
        assert_eq!(s.on_self_managed_io_restart(&at(30, 40, 0, false)), None);
        assert_eq!(s.log().len(), 2);
    }

    #[test]
    fn special_file_support_never_writes_from_a_transition() {
        let (mut s, action) = created_with_special_files(1, counters(0, 0));
        assert_eq!(
            action,
            LockAction::Lock,
            "special files possible: locked now"
        );
        s.on_d0_entry(&at(0, 1, D3_FINAL, false));
        s.on_self_managed_io_init(&at(2, 3, 0, false));
        assert!(
            s.persist_wanted(),
            "the first start's counts go out at once"
        );
        assert_eq!(s.take_persist_in_work_item(), Some(counters(1, 0)));
        s.persist_done(true);
        // KMDF may already have cleared DO_POWER_PAGABLE for a notification the driver has
        // not been told of, while its state (`np`) still reads pageable: no write here.
        assert_eq!(d0_exit(&mut s, &at(10, 11, D3, false)), None);
        assert_eq!(s.stats().deferred_writes, 1);
        assert!(s.persist_wanted(), "the work item writes it later");
        assert_eq!(s.take_persist_in_work_item(), Some(counters(1, 1)));
        s.persist_done(true);
        let flags = s.log().get(0).expect("entry").flags;
        assert_eq!(
            flags,
            transition_flag::POWER_PAGEABLE | transition_flag::POWER_DOWN_LOCKED
        );

        // Now a paging file lands on the device: it behaves NP; the lock is already held.
        let d = s.on_usage_notification(PAGING, true);
        assert_eq!((d.status, d.action), (STATUS_SUCCESS, LockAction::None));
        assert_eq!(s.config().special_files, special_file::PAGING);
        s.on_d0_entry(&at(100, 101, D3, true));
        s.on_self_managed_io_restart(&at(102, 103, 0, true));
        assert!(!s.persist_wanted(), "no work item while on the path");
        // Even if the FFI's NP test said false, the device on a paging path defers.
        assert_eq!(d0_exit(&mut s, &at(200, 201, D3, false)), None);
        assert_eq!(s.stats().deferred_writes, 2);
        let d = s.on_usage_notification(PAGING, false);
        assert_eq!(d.action, LockAction::None, "locked until cleanup");
        assert!(
            s.persist_wanted(),
            "off the path: the next restart queues it"
        );
        assert_eq!(s.take_persist_in_work_item(), Some(counters(2, 2)));
        s.persist_done(false);
        assert_eq!(
            s.take_persist_in_work_item(),
            Some(counters(2, 2)),
            "retried after a failure"
        );
        s.persist_done(true);
        let cleanup = s.on_cleanup();
        assert_eq!(cleanup.lock, LockAction::Unlock);
    }

    #[test]
    fn a_work_item_queued_before_a_path_arrives_writes_nothing() {
        let (mut s, _) = created(1, counters(0, 0));
        s.on_d0_entry(&at(0, 1, D3_FINAL, false));
        s.on_self_managed_io_init(&at(2, 3, 0, false));
        assert!(s.persist_wanted());
        // The item is queued; a paging file arrives before it runs.
        let d = s.on_usage_notification(PAGING, true);
        assert_eq!(d.action, LockAction::Lock);
        assert_eq!(s.take_persist_in_work_item(), None);
        assert_eq!(s.stats().deferred_writes, 1);
        // At removal the counts go out regardless.
        assert_eq!(s.take_persist_at_release(), Some(counters(1, 0)));
    }

    /// `EvtDeviceReleaseHardware` flushes the work item before its own write: while the
    /// item's write is in flight, the final take gets nothing, and the counts of the last
    /// `D0Exit` would never reach the registry.
    #[test]
    fn release_hardware_writes_the_final_counts_once_the_work_item_finished() {
        let (mut s, _) = created(1, counters(0, 0));
        s.on_d0_entry(&at(0, 1, D3_FINAL, false));
        s.on_self_managed_io_init(&at(2, 3, 0, false));
        let in_flight = s.take_persist_in_work_item();
        assert_eq!(in_flight, Some(counters(1, 0)));
        // Removal: the last D0Exit (target D3Final) in an NP state defers its counts.
        assert_eq!(d0_exit(&mut s, &at(10, 11, D3_FINAL, true)), None);
        assert_eq!(
            s.take_persist_at_release(),
            None,
            "without the flush: the final counts are refused while the item writes"
        );
        // With the flush, the item has completed first.
        s.persist_done(true);
        assert_eq!(s.take_persist_at_release(), Some(counters(1, 1)));
        s.persist_done(true);
        assert_eq!(s.stats().persisted_writes, 2);
    }

    #[test]
    fn a_pnp_stop_and_start_is_not_a_resume() {
        let (mut s, _) = created(1, counters(0, 0));
        // First start.
        s.on_d0_entry(&at(0, 10, D3_FINAL, false));
        s.on_self_managed_io_init(&at(20, 30, 0, false));
        // PnP stop (rebalance, devcon restart): suspend, D0Exit to D3Final, then the
        // start: D0Entry from D3Final and, because self-managed I/O was initialised
        // before, Restart rather than Init.
        s.on_self_managed_io_suspend(&at(100, 101, 0, false));
        let _ = d0_exit(&mut s, &at(110, 111, D3_FINAL, false));
        s.on_d0_entry(&at(1_000, 1_010, D3_FINAL, false));
        assert_eq!(
            s.on_self_managed_io_restart(&at(1_020, 1_030, 0, false)),
            None
        );
        assert_eq!(s.stats().resumes, 0);
        // A real resume after it is measured.
        s.on_self_managed_io_suspend(&at(2_000, 2_001, 0, false));
        let _ = d0_exit(&mut s, &at(2_010, 2_011, D3, false));
        s.on_d0_entry(&at(3_000, 3_010, D3, false));
        assert_eq!(
            s.on_self_managed_io_restart(&at(3_020, 3_100, 0, false)),
            Some(100)
        );
        let stats = s.stats();
        assert_eq!((stats.resumes, stats.d0_entries), (1, 3));
    }

    #[test]
    fn hold_goes_through_the_state_and_cleanup_releases_it() {
        let (mut s, _) = created(1, counters(0, 0));
        assert!(matches!(
            s.hold_request(0, 1_000),
            HoldAction::StopIdleAndStartTimer { due_ms: 1_000 }
        ));
        assert!(matches!(
            s.hold_request(0, 2_000),
            HoldAction::RestartTimer { .. }
        ));
        assert_eq!(
            s.hold_timer_fired(5),
            TimerAction::Restart { due_ms: 2_000 }
        );
        assert!(s.hold().is_active());
        let cleanup = s.on_cleanup();
        assert!(cleanup.resume_idle);
        assert!(!s.hold().is_active());
        assert!(matches!(
            s.hold_request(0, 10),
            HoldAction::StopIdleAndStartTimer { .. }
        ));
        s.hold_stop_idle_failed();
        assert!(!s.hold().is_active());
    }

    #[test]
    fn a_hold_released_at_flush_is_not_released_again_at_cleanup() {
        let (mut s, _) = created(1, counters(0, 0));
        assert!(!s.release_hold(), "nothing to release");
        let _ = s.hold_request(0, 1_000);
        assert!(s.release_hold());
        assert!(!s.release_hold());
        assert!(!s.on_cleanup().resume_idle);
        assert_eq!(s.hold_timer_fired(u64::MAX), TimerAction::None);
    }

    #[test]
    fn answers_come_from_the_state() {
        use crate::ioctl::Request;
        use crate::locked::answer;
        let (mut s, _) = created(0, counters(3, 4));
        s.on_d0_entry(&at(1, 2, D3_FINAL, true));
        let mut out = Out([0; 4096]);
        let ask = |s: &mut DeviceState, request: Request, out: &mut [u8], version: u32| {
            answer(request, out, version, &mut |op| s.apply(op))
        };

        let config_request = decode(IOCTL_PAGEWISE_GET_CONFIG, &[]).expect("ok");
        let n = ask(&mut s, config_request, &mut out.0, 1).expect("fits");
        assert_eq!(Config::read_from(&out.0[..n]), Ok(s.config()));

        let n = ask(&mut s, Request::GetStats, &mut out.0, 1).expect("fits");
        let stats = Stats::read_from(&out.0[..n]).expect("decodes");
        assert_eq!((stats.d0_entries, stats.persisted_d0_exits), (1, 4));

        let n = ask(&mut s, Request::GetLog { first_sequence: 0 }, &mut out.0, 1).expect("fits");
        let header = LogHeader::read_from(&out.0[..n]).expect("decodes");
        assert_eq!((header.count, header.next_sequence), (1, 1));
        assert_eq!(n, 24 + 32);

        assert_eq!(
            ask(&mut s, Request::GetStats, &mut out.0[..95], 1),
            Err(STATUS_BUFFER_TOO_SMALL)
        );
        assert_eq!(
            ask(
                &mut s,
                Request::HoldD0 { duration_ms: 5 },
                &mut out.0[..0],
                1
            ),
            Ok(0)
        );
        let n = ask(&mut s, Request::GetVersion, &mut out.0, 0x0001_0203).expect("fits");
        assert_eq!(n, 8);
        assert_eq!(
            u32::from_le_bytes(out.0[4..8].try_into().expect("4")),
            0x0001_0203
        );
    }

    #[test]
    fn placements_reach_the_config() {
        // Headers of a one-section image, enough for Placements::record.
        let mut image = std::vec![0u8; 0x400];
        image[0..2].copy_from_slice(b"MZ");
        image[0x3C] = 0x40;
        image[0x40..0x44].copy_from_slice(b"PE\0\0");
        image[0x44..0x46].copy_from_slice(&0x8664u16.to_le_bytes());
        image[0x46] = 1;
        image[0x54] = 240;
        image[0x58..0x5A].copy_from_slice(&0x20Bu16.to_le_bytes());
        image[0x58 + 60..0x58 + 64].copy_from_slice(&0x400u32.to_le_bytes());
        let table = 0x58 + 240;
        image[table..table + 5].copy_from_slice(b".text");
        image[table + 8..table + 12].copy_from_slice(&0x100u32.to_le_bytes());
        image[table + 12..table + 16].copy_from_slice(&0x1000u32.to_le_bytes());
        let headers = crate::image::PeHeaders::parse(&image).expect("valid");
        let mut placements = Placements::new();
        let _ = placements.record(
            &headers,
            CallbackId::D0Entry,
            pagewise_roles::Role::PowerUp,
            0x1010,
        );
        let mut s = DeviceState::new();
        let _ = s.on_device_created(Settings::DEFAULT, counters(0, 0), &placements);
        let config = s.config();
        assert_eq!(config.callback_count, 1);
        assert_eq!(config.callbacks[0].rva, 0x1010);
        assert_eq!(&config.callbacks[0].section[..5], b".text");
        assert_eq!(
            config.callbacks[0].role,
            pagewise_roles::Role::PowerUp as u16
        );
        assert_eq!(config.reason, PageabilityReason::Default as u32);
        assert_eq!(config.power_pageable, 1);
        assert_eq!(
            config.power_down_locked, 0,
            "the default is power-pageable without special-file support: nothing locked"
        );
    }

    /// Issue 18, point 3: a device that needs the power-down lock, whose self-check did not
    /// find `EvtDeviceD0Exit` in `PAGEPWR`, is refused rather than locked on an address
    /// outside the section; one that needs no lock is created as usual.
    #[test]
    fn a_device_that_needs_the_lock_is_refused_without_its_target_in_pagepwr() {
        for section in [&b".text"[..], b"PAGE", b""] {
            for (pageable, support, expected) in [
                (0, 0, LockAction::Refuse),
                (1, 1, LockAction::Refuse),
                (1, 0, LockAction::None),
            ] {
                let settings = Settings::from_raw(RawSettings {
                    power_pageable: Some(pageable),
                    idle_timeout_ms: None,
                    special_file_support: Some(support),
                });
                let placements = if section.is_empty() {
                    Placements::new()
                } else {
                    Placements::with_d0_exit_in(section)
                };
                let mut s = DeviceState::new();
                assert_eq!(
                    s.on_device_created(settings, counters(0, 0), &placements),
                    expected,
                    "{section:?} pageable {pageable} support {support}"
                );
                assert_eq!(s.config().power_down_locked, 0);
            }
        }
    }

    #[test]
    fn new_is_usable_in_a_const_context() {
        static STATE: DeviceState = DeviceState::new();
        assert_eq!(STATE.stats(), Stats::default());
        assert!(STATE.log().is_empty());
        assert_eq!(STATE.config().callback_count, 0);
    }
}
