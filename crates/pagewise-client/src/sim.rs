//! A simulated pagewise driver for tests: answers the IOCTLs from byte buffers the way the
//! real driver's control and power-managed queues do, with its own S0-idle timer running
//! on simulated time shared with a [`Clock`].

use crate::cycles::Clock;
use crate::device::{AlignedBuf, Client, Transport};
use crate::error::{ERROR_INVALID_FUNCTION, OsError};
use pagewise_ioctl::{
    CallbackId, CallbackPlacement, Config, HoldD0, INTERFACE_VERSION, IOCTL_PAGEWISE_GET_CONFIG,
    IOCTL_PAGEWISE_GET_LOG, IOCTL_PAGEWISE_GET_STATS, IOCTL_PAGEWISE_GET_VERSION,
    IOCTL_PAGEWISE_HOLD_D0, LogHeader, LogQuery, PageabilityReason, Stats, TransitionRecord,
    VersionInfo, Wire, transition_flag,
};
use pagewise_roles::Role;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

const MS: u64 = 10_000;
const D3: u8 = 4;
const D3_FINAL: u8 = 5;

/// The simulated driver and device.
// Independent knobs of a test double.
#[allow(clippy::struct_excessive_bools)]
pub struct SimDriver {
    /// Simulated time, 100 ns units.
    pub now: u64,
    /// S0 idle timeout.
    pub idle_timeout_ms: u32,
    /// Ring capacity.
    pub capacity: usize,
    /// Keep the device in D0 forever (something else holds it).
    pub never_idle: bool,
    /// Log the next `SelfManagedIoRestart` as failed.
    pub fail_next_restart: bool,
    /// Log unrelated records as time passes, faster than a small ring can be read.
    pub noisy: bool,
    /// Requests that went through the power-managed queue.
    pub power_managed_requests: u32,
    /// Interface version reported.
    pub interface_version: u32,
    in_d0: bool,
    last_activity: u64,
    ring: VecDeque<TransitionRecord>,
    next_sequence: u64,
    stats: Stats,
}

impl SimDriver {
    /// A device with the given idle timeout, not started.
    pub fn new(idle_timeout_ms: u32) -> Self {
        SimDriver {
            now: 0,
            idle_timeout_ms,
            capacity: 64,
            never_idle: false,
            fail_next_restart: false,
            noisy: false,
            power_managed_requests: 0,
            interface_version: INTERFACE_VERSION,
            in_d0: false,
            last_activity: 0,
            ring: VecDeque::new(),
            next_sequence: 0,
            stats: Stats::default(),
        }
    }

    fn log(
        &mut self,
        callback: CallbackId,
        at: u64,
        duration: u32,
        previous: u8,
        target: u8,
        flags: u8,
    ) {
        let status = if flags & transition_flag::FAILED != 0 {
            -1_073_741_823
        } else {
            0
        };
        self.ring.push_back(TransitionRecord {
            sequence: self.next_sequence,
            timestamp_100ns: at,
            duration_100ns: duration,
            callback: callback as u16,
            previous_state: previous,
            target_state: target,
            irql: 0,
            flags: flags | transition_flag::POWER_PAGEABLE,
            reserved: 0,
            status,
        });
        self.next_sequence += 1;
        while self.ring.len() > self.capacity {
            self.ring.pop_front();
        }
    }

    /// First start: `D0Entry` from `D3Final` and `SelfManagedIoInit`.
    pub fn start(&mut self) {
        self.log(CallbackId::D0Entry, self.now, 50, D3_FINAL, 0, 0);
        self.log(CallbackId::SelfManagedIoInit, self.now + 60, 20, 0, 0, 0);
        self.stats.d0_entries += 1;
        self.in_d0 = true;
        self.last_activity = self.now;
    }

    /// Lets simulated time pass, powering down when the idle timer expires.
    pub fn advance_ms(&mut self, ms: u64) {
        self.advance(ms * MS);
    }

    fn advance(&mut self, by: u64) {
        let end = self.now + by;
        if self.noisy {
            for i in 0..5 {
                self.log(CallbackId::PersistWorkItem, self.now + i, 1, 0, 0, 0);
            }
        }
        let idle_at = self.last_activity + u64::from(self.idle_timeout_ms) * MS;
        if self.in_d0 && !self.never_idle && idle_at <= end {
            self.log(CallbackId::SelfManagedIoSuspend, idle_at, 30, 0, 0, 0);
            self.log(CallbackId::D0Exit, idle_at + 40, 30, 0, D3, 0);
            self.stats.d0_exits += 1;
            self.in_d0 = false;
            // The power-down takes its time even when the request that noticed it was quick.
            self.now = end.max(idle_at + 70);
            return;
        }
        self.now = end;
    }

    fn resume(&mut self) {
        self.stats.resumes += 1;
        let time = 1000 + 100 * self.stats.resumes;
        let entry = self.now;
        self.log(CallbackId::D0Entry, entry, 40, D3, 0, 0);
        let flags = if std::mem::take(&mut self.fail_next_restart) {
            transition_flag::FAILED
        } else {
            0
        };
        self.log(
            CallbackId::SelfManagedIoRestart,
            entry + time - 25,
            25,
            0,
            0,
            flags,
        );
        self.stats.d0_entries += 1;
        self.stats.last_resume_100ns = time;
        self.stats.min_resume_100ns = if self.stats.resumes == 1 {
            time
        } else {
            self.stats.min_resume_100ns.min(time)
        };
        self.stats.max_resume_100ns = self.stats.max_resume_100ns.max(time);
        self.stats.total_resume_100ns += time;
        self.now += time;
        self.in_d0 = true;
    }

    fn answer_log(&self, input: &[u8], output: &mut [u8]) -> Result<usize, OsError> {
        let mut aligned = AlignedBuf::zeroed(input.len());
        aligned.bytes_mut().copy_from_slice(input);
        let query = LogQuery::read_from(aligned.bytes()).map_err(|_| invalid_parameter())?;
        let header_len = std::mem::size_of::<LogHeader>();
        if output.len() < header_len {
            return Err(invalid_parameter());
        }
        let room = (output.len() - header_len) / 32;
        let chosen: Vec<&TransitionRecord> = self
            .ring
            .iter()
            .filter(|r| r.sequence >= query.first_sequence)
            .take(room)
            .collect();
        let header = LogHeader {
            next_sequence: self.next_sequence,
            oldest_sequence: self.ring.front().map_or(self.next_sequence, |r| r.sequence),
            count: u32::try_from(chosen.len()).expect("small"),
            capacity: u32::try_from(self.capacity).expect("small"),
        };
        header.write_to(output).map_err(|_| invalid_parameter())?;
        for (i, r) in chosen.iter().enumerate() {
            r.write_to(&mut output[header_len + 32 * i..])
                .map_err(|_| invalid_parameter())?;
        }
        Ok(header_len + 32 * chosen.len())
    }

    /// Splits into a client and a clock sharing this simulation.
    pub fn into_parts(self) -> (Client<SimTransport>, SimClock) {
        let shared = Rc::new(RefCell::new(self));
        (
            Client::new(SimTransport(Rc::clone(&shared))),
            SimClock(shared),
        )
    }
}

fn invalid_parameter() -> OsError {
    OsError {
        operation: "DeviceIoControl".into(),
        code: 87,
        message: "The parameter is incorrect.".into(),
    }
}

/// The transport half of a [`SimDriver`].
pub struct SimTransport(pub Rc<RefCell<SimDriver>>);

impl SimTransport {
    /// Snapshot accessor used by tests.
    pub fn borrow(&self) -> std::cell::Ref<'_, SimDriver> {
        self.0.borrow()
    }
}

impl Transport for SimTransport {
    fn ioctl(&mut self, code: u32, input: &[u8], output: &mut [u8]) -> Result<usize, OsError> {
        let mut sim = self.0.borrow_mut();
        // Every request costs a little simulated time, as a real round trip does.
        sim.advance(1);
        match code {
            IOCTL_PAGEWISE_GET_VERSION => {
                let info = VersionInfo {
                    interface_version: sim.interface_version,
                    driver_version: 0x0001_0000,
                };
                info.write_to(output).map_err(|_| invalid_parameter())
            }
            IOCTL_PAGEWISE_GET_CONFIG => {
                let mut config = Config {
                    power_pageable: 1,
                    reason: PageabilityReason::Default as u32,
                    idle_timeout_ms: sim.idle_timeout_ms,
                    ..Config::default()
                };
                // The placements the real driver reports, one per role.
                let placements = [
                    (CallbackId::DeviceAdd, Role::Paged, "PAGE", 0x3010),
                    (CallbackId::PrepareHardware, Role::Paged, "PAGE", 0x3200),
                    (CallbackId::D0Entry, Role::PowerUp, ".text", 0x1040),
                    (
                        CallbackId::SelfManagedIoRestart,
                        Role::PowerUp,
                        ".text",
                        0x1120,
                    ),
                    (
                        CallbackId::SelfManagedIoSuspend,
                        Role::PowerDown,
                        "PAGEPWR",
                        0x5000,
                    ),
                    (CallbackId::D0Exit, Role::PowerDown, "PAGEPWR", 0x50a0),
                    (
                        CallbackId::ControlIoDeviceControl,
                        Role::Paged,
                        "PAGE",
                        0x3400,
                    ),
                    (
                        CallbackId::PowerIoDeviceControl,
                        Role::Dispatch,
                        ".text",
                        0x1200,
                    ),
                    (CallbackId::HoldTimer, Role::Dispatch, ".text", 0x1300),
                ];
                for (slot, (callback, role, section, rva)) in
                    config.callbacks.iter_mut().zip(placements)
                {
                    let mut name = [0u8; 8];
                    name[..section.len()].copy_from_slice(section.as_bytes());
                    *slot = CallbackPlacement {
                        callback: callback as u16,
                        role: role as u16,
                        section: name,
                        rva,
                    };
                }
                config.callback_count = u32::try_from(placements.len()).expect("small");
                config.write_to(output).map_err(|_| invalid_parameter())
            }
            IOCTL_PAGEWISE_GET_STATS => sim.stats.write_to(output).map_err(|_| invalid_parameter()),
            IOCTL_PAGEWISE_GET_LOG => sim.answer_log(input, output),
            IOCTL_PAGEWISE_HOLD_D0 => {
                if input.len() != std::mem::size_of::<HoldD0>() {
                    return Err(invalid_parameter());
                }
                sim.power_managed_requests += 1;
                if !sim.in_d0 {
                    sim.resume();
                }
                sim.last_activity = sim.now;
                Ok(0)
            }
            _ => Err(OsError {
                operation: "DeviceIoControl".into(),
                code: ERROR_INVALID_FUNCTION,
                message: "Incorrect function.".into(),
            }),
        }
    }
}

/// The clock half of a [`SimDriver`]: sleeping lets simulated time pass.
pub struct SimClock(Rc<RefCell<SimDriver>>);

impl Clock for SimClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.0.borrow().now * 100)
    }
    fn sleep(&mut self, d: Duration) {
        let units = u64::try_from(d.as_nanos() / 100).expect("short sleeps");
        self.0.borrow_mut().advance(units);
    }
}
