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
//! | `EvtDeviceUsageNotificationEx` | [`DeviceState::on_usage_notification`] → status + lock action |
//! | a pageable point outside transitions | [`DeviceState::take_persist`] / [`DeviceState::persist_done`] |
//! | `EvtIoDeviceControl` | [`crate::ioctl::decode`], then [`DeviceState::answer`] |
//! | HOLD_D0 on the power-managed queue | [`DeviceState::hold_request`] |
//! | hold `EvtTimerFunc` | [`DeviceState::hold_timer_fired`] |
//! | device cleanup | [`DeviceState::on_cleanup`] → unlock / resume idle |

use pagewise_ioctl::{CallbackId, Config, Stats, TransitionRecord, transition_flag};

use crate::deferred::{PersistGate, PersistedCounters};
use crate::hold::{D0Hold, HoldAction, TimerAction};
use crate::image::Placements;
use crate::ioctl::{self, Request};
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
    /// self-check. Returns the lock action to run before the first power transition
    /// (`Lock` when the device is power-nonpageable).
    pub fn on_device_created(
        &mut self,
        settings: Settings,
        stored: PersistedCounters,
        placements: &Placements,
    ) -> LockAction {
        self.settings = settings;
        self.pageability
            .set_choice(settings.power_pageable, settings.reason);
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

    /// `EvtDeviceD0Entry(PreviousState)`: counts it, logs it, starts the time-to-working
    /// measurement at `t.start_100ns`. Never writes the registry (that would lengthen
    /// resume); the new counts wait for a pageable point.
    pub fn on_d0_entry(&mut self, t: &Transition) {
        self.push_log(
            CallbackId::D0Entry,
            t,
            PowerDeviceState::log_byte(t.power_state),
            PowerDeviceState::D0 as u8,
        );
        if nt_success(t.status) {
            self.stats.d0_entry();
            self.resume.d0_entry(t.start_100ns);
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

    /// `EvtDeviceD0Exit(TargetState)`: counts and logs it, and when the device is in a
    /// pageable state returns the counters to write to the registry now (then call
    /// [`DeviceState::persist_done`]); in an NP state the write is deferred.
    pub fn on_d0_exit(&mut self, t: &Transition) -> Option<PersistedCounters> {
        self.resume.cancel();
        self.push_log(
            CallbackId::D0Exit,
            t,
            PowerDeviceState::D0 as u8,
            PowerDeviceState::log_byte(t.power_state),
        );
        self.stats.d0_exit();
        self.record_counters();
        self.persist
            .take(t.np || self.pageability.effective_nonpageable())
    }

    /// A passive-level point outside power transitions (the control queue, a work item,
    /// `EvtDeviceReleaseHardware`): the counters to write now, if any are pending.
    pub fn take_persist(&mut self) -> Option<PersistedCounters> {
        self.persist.take(false)
    }

    /// The registry write of counters handed out by [`DeviceState::on_d0_exit`] or
    /// [`DeviceState::take_persist`] finished.
    pub fn persist_done(&mut self, ok: bool) {
        self.persist.complete(ok);
    }

    /// `EvtDeviceUsageNotificationEx(type, in_path)`: return `status`, execute `action`.
    pub fn on_usage_notification(&mut self, file_type: u32, in_path: bool) -> UsageDecision {
        self.pageability.on_usage_notification(file_type, in_path)
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

    /// Device cleanup: release the lock and any hold.
    pub fn on_cleanup(&mut self) -> CleanupActions {
        CleanupActions {
            lock: self.pageability.on_cleanup(),
            resume_idle: self.hold.release(),
        }
    }

    /// Answers a query decoded by [`ioctl::decode`] into `out`; returns the bytes
    /// written (`Information`). `HoldD0` writes nothing and returns 0: it is served by
    /// [`DeviceState::hold_request`].
    ///
    /// # Errors
    ///
    /// `STATUS_BUFFER_TOO_SMALL` / `STATUS_INVALID_PARAMETER` for an unusable output.
    pub fn answer(
        &mut self,
        request: Request,
        out: &mut [u8],
        driver_version: u32,
    ) -> Result<usize, NtStatus> {
        match request {
            Request::GetVersion => ioctl::fill_version(out, driver_version),
            Request::GetConfig => ioctl::fill_config(out, &self.config()),
            Request::GetStats => ioctl::fill_stats(out, &self.stats()),
            Request::GetLog { first_sequence } => {
                ioctl::fill_log(out, &mut self.log, first_sequence)
            }
            Request::HoldD0 { .. } => Ok(0),
        }
    }

    /// The answer to `IOCTL_PAGEWISE_GET_CONFIG`.
    #[must_use]
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
