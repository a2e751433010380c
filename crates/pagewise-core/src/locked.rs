//! The one door into the locked state: [`Op`] in, [`Reply`] out, through
//! [`DeviceState::apply`].
//!
//! The FFI guards [`DeviceState`] with a `WDFSPINLOCK`. Everything that runs while it is
//! held runs at `DISPATCH_LEVEL` and must therefore be resident, whatever section its
//! caller is in. A generic "run this closure under the lock" helper instantiates the lock
//! sequence and an inlined copy of the state logic once per call site, all of it resident;
//! the driver had sixteen. Instead, every locked operation is a value of [`Op`], and one
//! non-generic function, [`DeviceState::apply`], performs any of them. The FFI's locked
//! entry point is then one small resident function (acquire, `apply`, release), and the
//! state logic exists once.
//!
//! Only what must see or change a consistent state runs here; everything that can work on
//! a copy does so in its pageable caller, after the lock is released:
//!
//! - the IOCTL answers: [`Op::ReadConfigInputs`] and [`Op::ReadStats`] copy values out,
//!   and [`Op::ReadLog`] copies the log records the answer returns, and only those (a read
//!   moves nothing other readers see); the caller formats the answer from the copies;
//! - the pageability state machine: only `PnP` callbacks change it (device add, usage
//!   notifications, cleanup), and the framework never runs two of those at once for a
//!   device, so they read it ([`Op::ReadPageability`]), run
//!   [`Pageability`]'s transition on the copy, and publish the result
//!   ([`Op::WritePageability`]) without losing an update. Power callbacks, the work item
//!   and the IOCTLs only read it, under the lock;
//! - initialising the state after `WdfDeviceCreate` needs no lock at all, because no
//!   callback can reach the state before `EvtDriverDeviceAdd` publishes it
//!   ([`DeviceState::on_device_created`]).
//!
//! Each reply variant has a typed accessor ([`Reply::into_persist`], ...), so that a
//! caller states what it expects; a mismatched reply (a programming error) yields the
//! neutral value of that type, never a panic.

use pagewise_ioctl::{Stats, TransitionRecord};

use crate::deferred::PersistedCounters;
use crate::device_state::{ConfigInputs, DeviceState, Transition};
use crate::hold::{HoldAction, TimerAction};
use crate::ioctl::{Request, fill_config, fill_stats, fill_version, output_status};
use crate::pageability::Pageability;
use crate::status::NtStatus;
use crate::translog::{LOG_CAPACITY, LogClaim, TransitionLog};

/// The power callbacks the state records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerCallback {
    /// `EvtDeviceD0Entry`; the transition's `power_state` is `PreviousState`.
    D0Entry,
    /// `EvtDeviceSelfManagedIoInit`.
    SelfManagedIoInit,
    /// `EvtDeviceSelfManagedIoRestart`.
    SelfManagedIoRestart,
    /// `EvtDeviceSelfManagedIoSuspend`.
    SelfManagedIoSuspend,
    /// `EvtDeviceD0Exit`; the transition's `power_state` is `TargetState`.
    D0Exit,
}

/// One operation on the locked state.
#[derive(Debug)]
pub enum Op<'a> {
    /// A power callback ran, recorded at its end with the time it took: [`Reply::Persist`]
    /// (whether to queue the persist work item after `SelfManagedIoInit`/`Restart`).
    Power(PowerCallback, Transition),
    /// `EvtDeviceD0Exit` starts; `np` is `WdfDevStateIsNP` of the framework's state:
    /// [`Reply::Persist`] with the counters to write now, if a transition may write.
    /// Its [`Op::Power`] at the end logs it.
    D0ExitBegin {
        /// The framework's power state is nonpageable.
        np: bool,
    },
    /// The persist work item: [`Reply::Persist`] with the counters to write, if any.
    TakePersistInWorkItem,
    /// `EvtDeviceReleaseHardware`, after `WdfWorkItemFlush`: [`Reply::Persist`].
    TakePersistAtRelease,
    /// A write handed out by a [`Reply::Persist`] finished, successfully or not.
    PersistDone(bool),
    /// Copy the pageability state into the caller's value (a `PnP` callback about to
    /// change it).
    ReadPageability(&'a mut Pageability),
    /// Publish a pageability state a `PnP` callback computed from its copy.
    WritePageability(Pageability),
    /// A validated `HoldD0` at `now`: [`Reply::Hold`].
    HoldRequest {
        /// Interrupt time, 100 ns units.
        now: u64,
        /// The hold's length.
        duration_ms: u32,
    },
    /// `WdfDeviceStopIdle` failed for the hold just requested.
    HoldStopIdleFailed,
    /// The hold timer fired at this interrupt time: [`Reply::Timer`].
    HoldTimerFired(u64),
    /// `EvtDeviceSelfManagedIoFlush` and device cleanup, after stopping the timer:
    /// [`Reply::Flag`], true when a hold's power reference must be dropped.
    ReleaseHold,
    /// Copy what the `IOCTL_PAGEWISE_GET_CONFIG` answer is made of into the caller's
    /// value; [`ConfigInputs::config`] builds it.
    ReadConfigInputs(&'a mut ConfigInputs),
    /// Copy the `IOCTL_PAGEWISE_GET_STATS` answer into the caller's value.
    ReadStats(&'a mut Stats),
    /// `IOCTL_PAGEWISE_GET_LOG`: copy the records from `first_sequence` on into
    /// `records`, as many as it holds ([`TransitionLog::read`], which changes nothing in
    /// the log): [`Reply::Claim`]. The caller writes the answer from the copy with
    /// [`LogClaim::write`](crate::translog::LogClaim::write).
    ReadLog {
        /// `LogQuery::first_sequence`.
        first_sequence: u64,
        /// Room for the records the output buffer holds after the header.
        records: &'a mut [TransitionRecord],
    },
}

/// What an [`Op`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Reply {
    /// Nothing to do.
    Nothing,
    /// Counter persistence: the counters to write now (then [`Op::PersistDone`]), and
    /// whether to queue the persist work item.
    Persist {
        /// Write these to the registry now.
        write_now: Option<PersistedCounters>,
        /// `WdfWorkItemEnqueue` the persist work item.
        enqueue: bool,
    },
    /// What the `HoldD0` handler must do.
    Hold(HoldAction),
    /// What the hold timer must do.
    Timer(TimerAction),
    /// A yes or no.
    Flag(bool),
    /// The log records a reader claimed.
    Claim(LogClaim),
}

impl Reply {
    /// The counters to write now and whether to queue the work item; nothing for any
    /// other reply.
    #[must_use]
    pub fn into_persist(self) -> (Option<PersistedCounters>, bool) {
        match self {
            Reply::Persist { write_now, enqueue } => (write_now, enqueue),
            _ => (None, false),
        }
    }

    /// The hold action; [`HoldAction::None`] for any other reply.
    pub fn into_hold(self) -> HoldAction {
        match self {
            Reply::Hold(action) => action,
            _ => HoldAction::None,
        }
    }

    /// The timer action; [`TimerAction::None`] for any other reply.
    pub fn into_timer(self) -> TimerAction {
        match self {
            Reply::Timer(action) => action,
            _ => TimerAction::None,
        }
    }

    /// The flag; false for any other reply.
    #[must_use]
    pub fn into_flag(self) -> bool {
        matches!(self, Reply::Flag(true))
    }

    /// The claim; an empty one (no records, zero header) for any other reply.
    #[must_use]
    pub fn into_claim(self) -> LogClaim {
        match self {
            Reply::Claim(claim) => claim,
            _ => LogClaim::default(),
        }
    }
}

/// Answers a control-queue query decoded by [`crate::ioctl::decode`] into `out`, and
/// returns the bytes written (`Information`). `locked` performs an [`Op`] on the locked
/// state: the FFI passes its locked entry point. The lock is taken only to copy values
/// out (and, for the log, to claim records); the answer is written after it is released,
/// by this function's caller's code, which the control queue keeps pageable. `HoldD0`
/// writes nothing and returns 0: the power-managed queue serves it.
///
/// The log copy is a [`TransitionLog`] on the stack (about 2 KiB), at `PASSIVE_LEVEL`.
///
/// # Errors
///
/// `STATUS_BUFFER_TOO_SMALL` / `STATUS_INVALID_PARAMETER` for an unusable output.
#[inline]
pub fn answer(
    request: Request,
    out: &mut [u8],
    driver_version: u32,
    locked: &mut dyn FnMut(Op<'_>) -> Reply,
) -> Result<usize, NtStatus> {
    match request {
        Request::GetVersion => fill_version(out, driver_version),
        Request::GetConfig => {
            let mut inputs = ConfigInputs::new();
            let _ = locked(Op::ReadConfigInputs(&mut inputs));
            fill_config(out, &inputs.config())
        }
        Request::GetStats => {
            let mut stats = Stats::default();
            let _ = locked(Op::ReadStats(&mut stats));
            fill_stats(out, &stats)
        }
        Request::GetLog { first_sequence } => {
            // An output that cannot hold a header fails before the lock is taken.
            crate::translog::check_output(out).map_err(output_status)?;
            let mut records = [TransitionRecord::default(); LOG_CAPACITY];
            let fit = TransitionLog::records_that_fit(out.len()).min(LOG_CAPACITY);
            let claim = locked(Op::ReadLog {
                first_sequence,
                records: records.get_mut(..fit).unwrap_or(&mut []),
            })
            .into_claim();
            claim.write(&records, out).map_err(output_status)
        }
        Request::HoldD0 { .. } => Ok(0),
    }
}

impl DeviceState {
    /// Performs `op`. Every path is short, allocation-free and panic-free (the crate's
    /// lints), because the FFI calls this with its spin lock held.
    ///
    /// Not inlined: the FFI's locked entry point calls it from exactly one place, and a
    /// separate function keeps the state logic in one copy whatever the optimiser does
    /// with that entry point.
    #[inline(never)]
    pub fn apply(&mut self, op: Op<'_>) -> Reply {
        match op {
            Op::Power(callback, t) => self.power(callback, &t),
            Op::D0ExitBegin { np } => Reply::Persist {
                write_now: self.d0_exit_begin(np),
                enqueue: false,
            },
            Op::TakePersistInWorkItem => Reply::Persist {
                write_now: self.take_persist_in_work_item(),
                enqueue: false,
            },
            Op::TakePersistAtRelease => Reply::Persist {
                write_now: self.take_persist_at_release(),
                enqueue: false,
            },
            Op::PersistDone(ok) => {
                self.persist_done(ok);
                Reply::Nothing
            }
            Op::ReadPageability(out) => {
                *out = *self.pageability();
                Reply::Nothing
            }
            Op::WritePageability(pageability) => {
                self.set_pageability(pageability);
                Reply::Nothing
            }
            Op::HoldRequest { now, duration_ms } => {
                Reply::Hold(self.hold_request(now, duration_ms))
            }
            Op::HoldStopIdleFailed => {
                self.hold_stop_idle_failed();
                Reply::Nothing
            }
            Op::HoldTimerFired(now) => Reply::Timer(self.hold_timer_fired(now)),
            Op::ReleaseHold => Reply::Flag(self.release_hold()),
            Op::ReadConfigInputs(out) => {
                *out = self.config_inputs();
                Reply::Nothing
            }
            Op::ReadStats(out) => {
                *out = self.stats();
                Reply::Nothing
            }
            Op::ReadLog {
                first_sequence,
                records,
            } => Reply::Claim(self.log().read(first_sequence, records)),
        }
    }

    fn power(&mut self, callback: PowerCallback, t: &Transition) -> Reply {
        let (write_now, enqueue) = match callback {
            PowerCallback::D0Entry => {
                self.on_d0_entry(t);
                (None, false)
            }
            PowerCallback::SelfManagedIoInit => {
                self.on_self_managed_io_init(t);
                (None, self.persist_wanted())
            }
            PowerCallback::SelfManagedIoRestart => {
                // The sample is in the statistics; the FFI has no use for it.
                let _time_to_working = self.on_self_managed_io_restart(t);
                (None, self.persist_wanted())
            }
            PowerCallback::SelfManagedIoSuspend => {
                self.on_self_managed_io_suspend(t);
                (None, false)
            }
            PowerCallback::D0Exit => {
                self.on_d0_exit(t);
                (None, false)
            }
        };
        Reply::Persist { write_now, enqueue }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deferred::PersistedCounters;
    use crate::image::Placements;
    use crate::ioctl::{Request, decode};
    use crate::power_state::PowerDeviceState;
    use crate::settings::{RawSettings, Settings};
    use crate::status::{STATUS_BUFFER_TOO_SMALL, STATUS_SUCCESS};
    use pagewise_ioctl::{IOCTL_PAGEWISE_GET_LOG, LogHeader, LogQuery, Wire};

    const D3: u32 = PowerDeviceState::D3 as u32;
    const D3_FINAL: u32 = PowerDeviceState::D3Final as u32;
    const PAGING: u32 = 1;

    #[repr(C, align(8))]
    struct Out([u8; 1024]);

    fn device(power_pageable: u32) -> DeviceState {
        let settings = Settings::from_raw(RawSettings {
            power_pageable: Some(power_pageable),
            idle_timeout_ms: None,
            special_file_support: Some(0),
        });
        let mut state = DeviceState::new();
        let _ = state.on_device_created(
            settings,
            PersistedCounters {
                d0_entries: 5,
                d0_exits: 4,
            },
            &Placements::with_d0_exit_in(b"PAGEPWR"),
        );
        state
    }

    fn at(start: u64, power_state: u32, np: bool) -> Transition {
        Transition {
            start_100ns: start,
            end_100ns: start + 10,
            irql: 0,
            power_state,
            np,
            status: STATUS_SUCCESS,
        }
    }

    /// The same callback sequence through `apply` and through the methods gives the same
    /// state and the same answers: `apply` is only a dispatcher.
    #[test]
    fn apply_matches_the_methods_step_by_step() {
        let mut by_op = device(1);
        let mut direct = device(1);
        let steps = [
            (PowerCallback::D0Entry, at(0, D3_FINAL, false)),
            (PowerCallback::SelfManagedIoInit, at(20, 0, false)),
            (PowerCallback::SelfManagedIoSuspend, at(100, 0, false)),
            (PowerCallback::D0Exit, at(110, D3, false)),
            (PowerCallback::D0Entry, at(500, D3, false)),
            (PowerCallback::SelfManagedIoRestart, at(520, 0, false)),
        ];
        for (callback, t) in steps {
            if callback == PowerCallback::D0Exit {
                let begun = by_op.apply(Op::D0ExitBegin { np: t.np }).into_persist();
                assert_eq!(begun, (direct.d0_exit_begin(t.np), false));
                assert!(begun.0.is_some(), "a pageable device writes from D0Exit");
                let _ = by_op.apply(Op::PersistDone(true));
                direct.persist_done(true);
            }
            let (write_now, enqueue) = by_op.apply(Op::Power(callback, t)).into_persist();
            let expected = match callback {
                PowerCallback::D0Entry => {
                    direct.on_d0_entry(&t);
                    (None, false)
                }
                PowerCallback::SelfManagedIoInit => {
                    direct.on_self_managed_io_init(&t);
                    (None, direct.persist_wanted())
                }
                PowerCallback::SelfManagedIoRestart => {
                    let _ = direct.on_self_managed_io_restart(&t);
                    (None, direct.persist_wanted())
                }
                PowerCallback::SelfManagedIoSuspend => {
                    direct.on_self_managed_io_suspend(&t);
                    (None, false)
                }
                PowerCallback::D0Exit => {
                    direct.on_d0_exit(&t);
                    (None, false)
                }
            };
            assert_eq!((write_now, enqueue), expected, "{callback:?}");
            if write_now.is_some() {
                let _ = by_op.apply(Op::PersistDone(true));
                direct.persist_done(true);
            }
            assert_eq!(by_op.stats(), direct.stats(), "{callback:?}");
            assert_eq!(by_op.config(), direct.config(), "{callback:?}");
        }
        assert_eq!(by_op.stats().resumes, 1);
        assert_eq!(by_op.log().len(), direct.log().len());
    }

    #[test]
    fn restart_and_init_ask_for_the_work_item_off_special_file_paths() {
        let mut pageable = device(1);
        let _ = pageable.apply(Op::Power(PowerCallback::D0Entry, at(0, D3_FINAL, false)));
        let reply = pageable.apply(Op::Power(
            PowerCallback::SelfManagedIoInit,
            at(10, 0, false),
        ));
        assert_eq!(reply.into_persist(), (None, true));
        let taken = pageable.apply(Op::TakePersistInWorkItem).into_persist();
        assert_eq!(
            taken.0,
            Some(PersistedCounters {
                d0_entries: 6,
                d0_exits: 4
            })
        );
        assert_eq!(pageable.apply(Op::PersistDone(true)), Reply::Nothing);

        let mut nonpageable = device(0);
        let _ = nonpageable.apply(Op::Power(PowerCallback::D0Entry, at(0, D3_FINAL, true)));
        let reply = nonpageable.apply(Op::Power(PowerCallback::SelfManagedIoInit, at(10, 0, true)));
        assert_eq!(
            reply.into_persist(),
            (None, true),
            "a power-nonpageable device persists from the work item too"
        );
        // On a paging path the item is not queued, and one queued before writes nothing.
        let _ = nonpageable.apply(Op::WritePageability({
            let mut p = *nonpageable.pageability();
            let _ = p.on_usage_notification(1, true);
            p
        }));
        let _ = nonpageable.apply(Op::Power(PowerCallback::D0Entry, at(20, D3, true)));
        let reply = nonpageable.apply(Op::Power(
            PowerCallback::SelfManagedIoRestart,
            at(30, 0, true),
        ));
        assert_eq!(reply.into_persist(), (None, false));
        assert_eq!(
            nonpageable.apply(Op::TakePersistInWorkItem).into_persist(),
            (None, false)
        );
        assert!(
            nonpageable
                .apply(Op::TakePersistAtRelease)
                .into_persist()
                .0
                .is_some()
        );
    }

    /// Issue 18, points 6 and 7: the log is read under the lock, which copies only the
    /// records the answer returns, and written from that copy afterwards: records pushed
    /// (and overwritten) in between do not change the answer. A read moves nothing other
    /// readers see: a second reader with the same query gets the same records, and the
    /// shared count of dropped records depends only on what was pushed.
    #[test]
    fn a_log_read_copies_its_records_and_changes_nothing_shared() {
        let mut state = device(0);
        for i in 0..10 {
            let _ = state.apply(Op::Power(PowerCallback::D0Entry, at(i * 100, D3, true)));
        }
        let mut records = [TransitionRecord::default(); 3];
        let claim = state
            .apply(Op::ReadLog {
                first_sequence: 4,
                records: &mut records,
            })
            .into_claim();
        assert_eq!((claim.start, claim.header.count), (4, 3));
        assert_eq!(
            records.map(|r| r.sequence),
            [4, 5, 6],
            "exactly the returned records were copied"
        );
        let mut again = [TransitionRecord::default(); 3];
        let second = state
            .apply(Op::ReadLog {
                first_sequence: 4,
                records: &mut again,
            })
            .into_claim();
        assert_eq!(
            (second, again),
            (claim, records),
            "the first read moved nothing"
        );
        assert_eq!(state.stats().log_overwritten, 0);
        // The ring moves on while the reader formats: 64 more records evict all of it.
        for i in 0..64 {
            let _ = state.apply(Op::Power(PowerCallback::D0Exit, at(5_000 + i, D3, true)));
        }
        let mut out = Out([0; 1024]);
        let written = claim.write(&records, &mut out.0).expect("fits");
        assert_eq!(written, 24 + 3 * 32);
        let header = LogHeader::read_from(&out.0).expect("header");
        assert_eq!((header.count, header.next_sequence), (3, 10));
        let first = pagewise_ioctl::TransitionRecord::read_from(&out.0[24..]).expect("record");
        assert_eq!((first.sequence, first.timestamp_100ns), (4, 400));
        // 74 pushed into 64 slots: ten dropped, whoever read what.
        assert_eq!(state.stats().log_overwritten, 10);
    }

    #[test]
    fn reads_copy_what_the_answers_are_made_of() {
        let mut state = device(0);
        let _ = state.apply(Op::Power(PowerCallback::D0Entry, at(0, D3_FINAL, true)));
        let mut inputs = ConfigInputs::new();
        assert_eq!(
            state.apply(Op::ReadConfigInputs(&mut inputs)),
            Reply::Nothing
        );
        assert_eq!(inputs.config(), state.config());
        let mut copied = Stats::default();
        let _ = state.apply(Op::ReadStats(&mut copied));
        assert_eq!(copied, state.stats());
        assert_eq!(copied.d0_entries, 1);

        let query = LogQuery { first_sequence: 0 };
        let Ok(request @ Request::GetLog { .. }) = decode(IOCTL_PAGEWISE_GET_LOG, query.as_bytes())
        else {
            panic!("a log query decodes");
        };
        let mut out = Out([0; 1024]);
        let mut locked = |op: Op<'_>| state.apply(op);
        assert_eq!(answer(request, &mut out.0, 1, &mut locked), Ok(24 + 32));
        // An output too short for a header claims nothing: the record stays unread.
        assert_eq!(
            answer(request, &mut out.0[..8], 1, &mut locked),
            Err(STATUS_BUFFER_TOO_SMALL)
        );
    }

    #[test]
    fn a_short_log_output_claims_nothing() {
        let mut state = device(0);
        for i in 0..70 {
            let _ = state.apply(Op::Power(PowerCallback::D0Entry, at(i, D3, true)));
        }
        assert_eq!(state.stats().log_overwritten, 6);
        let mut out = Out([0; 1024]);
        let mut locked = |op: Op<'_>| state.apply(op);
        let request = Request::GetLog { first_sequence: 0 };
        assert!(answer(request, &mut out.0[..23], 1, &mut locked).is_err());
        assert!(answer(request, &mut out.0[4..100], 1, &mut locked).is_err());
        for i in 0..64 {
            let _ = state.apply(Op::Power(PowerCallback::D0Entry, at(1_000 + i, D3, true)));
        }
        assert_eq!(
            state.stats().log_overwritten,
            70,
            "nothing was read: every evicted record counts"
        );
    }

    /// The pageability round trip the `PnP` callbacks make gives the same state and
    /// decision as changing it in place.
    #[test]
    fn pageability_changes_made_on_a_copy_are_the_in_place_changes() {
        let mut in_place = device(1);
        let mut round_trip = device(1);
        for (file_type, in_path) in [(PAGING, true), (3, true), (PAGING, false), (3, false)] {
            let expected = in_place.on_usage_notification(file_type, in_path);
            let mut copy = Pageability::new();
            let _ = round_trip.apply(Op::ReadPageability(&mut copy));
            let decision = copy.on_usage_notification(file_type, in_path);
            let _ = round_trip.apply(Op::WritePageability(copy));
            assert_eq!(decision, expected);
            assert_eq!(round_trip.pageability(), in_place.pageability());
        }
        let mut copy = Pageability::new();
        let _ = round_trip.apply(Op::ReadPageability(&mut copy));
        assert_eq!(copy.on_cleanup(), in_place.on_cleanup().lock);
    }

    #[test]
    fn hold_operations_go_through_apply() {
        let mut state = device(1);
        assert!(matches!(
            state
                .apply(Op::HoldRequest {
                    now: 0,
                    duration_ms: 100
                })
                .into_hold(),
            HoldAction::StopIdleAndStartTimer { due_ms: 100 }
        ));
        assert_eq!(
            state.apply(Op::HoldTimerFired(5)).into_timer(),
            TimerAction::Restart { due_ms: 100 }
        );
        assert!(state.apply(Op::ReleaseHold).into_flag());
        assert!(!state.apply(Op::ReleaseHold).into_flag());
        let _ = state.apply(Op::HoldRequest {
            now: 0,
            duration_ms: 10,
        });
        assert_eq!(state.apply(Op::HoldStopIdleFailed), Reply::Nothing);
        assert!(!state.hold().is_active());
    }

    /// A caller that expects one reply and gets another sees the neutral value of what it
    /// expected: nothing to write, no hold, no resume, no records.
    #[test]
    fn mismatched_replies_are_neutral() {
        let other = Reply::Flag(true);
        assert_eq!(other.into_persist(), (None, false));
        assert_eq!(other.into_hold(), HoldAction::None);
        assert_eq!(other.into_timer(), TimerAction::None);
        assert!(!Reply::Nothing.into_flag());
        assert_eq!(other.into_claim().header.count, 0);
    }
}
