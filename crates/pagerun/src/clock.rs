//! The virtual clock: time moves only when the scenario or the driver moves it (a stall, a
//! wait with a timeout, the scenario letting time pass), and timers, DPCs and work items run
//! when it does, each at its own IRQL.

use crate::host::{self, Kind, with};
use crate::machine::{self, DISPATCH_LEVEL, PASSIVE_LEVEL};

/// 100 ns units from 1601 to the day this clock starts (an arbitrary fixed date, 2024-01-01).
pub const EPOCH_TICKS: u64 = 133_485_408_000_000_000;
/// `KUSER_SHARED_DATA` offsets: `InterruptTime` (`KSYSTEM_TIME`), `SystemTime`,
/// `TickCountMultiplier`, `TickCount`.
const INTERRUPT_TIME: usize = 0x08;
const SYSTEM_TIME: usize = 0x14;
const TICK_COUNT_MULTIPLIER: usize = 0x04;
const TICK_COUNT: usize = 0x320;

/// The system time now (100 ns units since 1601).
#[must_use]
pub fn system_time() -> u64 {
    EPOCH_TICKS + with(|h| h.clock)
}

/// Writes a `KSYSTEM_TIME` (low part, high part, high part again) at `offset`.
fn ksystem_time(offset: usize, value: u64) {
    let low = value & 0xffff_ffff;
    let high = value >> 32;
    machine::set_kuser_u32(offset, low);
    machine::set_kuser_u32(offset + 4, high);
    machine::set_kuser_u32(offset + 8, high);
}

/// Publishes the clock in `KUSER_SHARED_DATA`.
pub fn publish() {
    let now = with(|h| h.clock);
    ksystem_time(INTERRUPT_TIME, now);
    ksystem_time(SYSTEM_TIME, EPOCH_TICKS + now);
    // One tick is 15.625 ms; the multiplier makes TickCount * multiplier >> 24 milliseconds.
    machine::set_kuser_u32(TICK_COUNT_MULTIPLIER, 0x0FA0_0000);
    ksystem_time(TICK_COUNT, now / 156_250);
}

/// Moves the clock forward by `ticks` (100 ns) without running anything.
pub fn advance(ticks: u64) {
    with(|h| h.clock = h.clock.saturating_add(ticks));
    publish();
}

/// Runs the DPCs and work items that are queued, in order, until none is left (bounded).
pub fn run_pending() {
    for _ in 0..10_000 {
        let next = with(|h| {
            let handle = h.pending.pop_front()?;
            let object = h.object(handle)?;
            let passive = object.passive;
            match &mut object.kind {
                Kind::Dpc { function, queued } => {
                    *queued = false;
                    Some((handle, *function, "EvtDpcFunc", DISPATCH_LEVEL))
                }
                Kind::WorkItem { function, queued } => {
                    *queued = false;
                    Some((handle, *function, "EvtWorkItemFunc", PASSIVE_LEVEL))
                }
                Kind::Timer(timer) => Some((
                    handle,
                    timer.function,
                    "EvtTimerFunc",
                    if passive {
                        PASSIVE_LEVEL
                    } else {
                        DISPATCH_LEVEL
                    },
                )),
                _ => None,
            }
        });
        let Some((handle, function, slot, irql)) = next else {
            if with(|h| h.pending.is_empty()) {
                return;
            }
            continue;
        };
        host::invoke(slot, function, irql, &[handle]);
    }
}

/// Lets `ms` milliseconds pass: timers fall due in order and run with what they queue.
pub fn pass(ms: u64) {
    let end = with(|h| h.clock) + ms * 10_000;
    run_pending();
    for _ in 0..100_000 {
        // The earliest timer due by `end`.
        let due = with(|h| {
            h.objects
                .iter()
                .enumerate()
                .filter(|(_, o)| !o.deleted)
                .filter_map(|(i, o)| match &o.kind {
                    Kind::Timer(t) => t.due.filter(|&d| d <= end).map(|d| (d, i)),
                    _ => None,
                })
                .min()
        });
        let Some((due, index)) = due else { break };
        let handle = host::HANDLE_BASE + 16 * index as u64;
        with(|h| {
            h.clock = h.clock.max(due);
            if let Some(o) = h.object(handle)
                && let Kind::Timer(t) = &mut o.kind
            {
                t.due = (t.period > 0).then(|| due + u64::from(t.period) * 10_000);
            }
            h.pending.push_back(handle);
        });
        publish();
        run_pending();
    }
    with(|h| h.clock = h.clock.max(end));
    publish();
}
