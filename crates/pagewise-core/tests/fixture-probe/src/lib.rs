//! Every function of pagewise-core that the driver calls, exported behind a C ABI with opaque
//! arguments so the optimiser cannot specialise them away. If any of them kept a path to a
//! panic (an index out of bounds, an overflow check, an `unwrap`) or to `core::fmt`, the linker
//! would have to keep the panic handler below, and with it its import of `KeBugCheckEx`.
//! tests/no_panic.rs checks the import table; the `control` feature adds one function with a
//! panic path, to show the check sees one.
#![no_std]
#![allow(clippy::missing_safety_doc)]

use core::slice;

use pagewise_core::DeviceState;
use pagewise_core::device_state::Transition;
use pagewise_core::image::{PeHeaders, Placements};
use pagewise_core::ioctl::decode;
use pagewise_core::settings::{RawSettings, Settings};
use pagewise_ioctl::CallbackId;
use pagewise_roles::Role;

#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize) -> !;
}

/// What a driver's panic handler does (wdk-panic loops; a bug check is more visible). Any
/// panic path left in the image references this, and so imports `KeBugCheckEx`.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: never runs in the test; in a kernel, a bug check is the end of the line.
    unsafe { KeBugCheckEx(0xE2, 0, 0, 0, 0) }
}

/// Positive control: an index the compiler cannot prove in bounds.
#[cfg(feature = "control")]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn probe_control(bytes: *const [u8; 4], index: usize) -> u8 {
    // SAFETY: never run.
    unsafe { (*bytes)[index] }
}

fn opt(present: u32, value: u32) -> Option<u32> {
    (present != 0).then_some(value)
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn probe_device_add(
    state: *mut DeviceState,
    values: *const [u32; 6],
    image: *const u8,
    image_len: usize,
    rvas: *const [u32; 4],
) -> u32 {
    // SAFETY: the probe is never run; the test only inspects what it links.
    let (state, values, rvas) = unsafe { (&mut *state, &*values, &*rvas) };
    // SAFETY: as above.
    let image = unsafe { slice::from_raw_parts(image, image_len) };
    let settings = Settings::from_raw(RawSettings {
        power_pageable: opt(values[0], values[1]),
        idle_timeout_ms: opt(values[2], values[3]),
        special_file_support: opt(values[4], values[5]),
    });
    let mut placements = Placements::new();
    if let Ok(headers) = PeHeaders::parse(image) {
        for (i, role) in [Role::PowerUp, Role::Paged, Role::PowerDown, Role::Init]
            .into_iter()
            .enumerate()
        {
            let _ = placements.record(&headers, CallbackId::D0Entry, role, rvas[i]);
        }
    }
    *state = DeviceState::new();
    state.on_device_created(
        settings,
        pagewise_core::deferred::PersistedCounters::default(),
        &placements,
    ) as u32
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn probe_power(
    state: *mut DeviceState,
    which: u32,
    t: *const Transition,
) -> u64 {
    // SAFETY: the probe is never run.
    let (state, t) = unsafe { (&mut *state, &*t) };
    match which {
        0 => {
            state.on_d0_entry(t);
            0
        }
        1 => state.on_self_managed_io_restart(t).unwrap_or(0),
        2 => {
            state.on_self_managed_io_init(t);
            0
        }
        3 => {
            state.on_self_managed_io_suspend(t);
            0
        }
        4 => state.on_d0_exit(t).map_or(0, |c| u64::from(c.d0_entries)),
        5 => state.take_persist().map_or(0, |c| u64::from(c.d0_exits)),
        6 => {
            state.persist_done(t.np);
            u64::from(state.persist_pending())
        }
        7 => {
            let d = state.on_usage_notification(t.power_state, t.np);
            d.action as u64 ^ u64::from(d.status.cast_unsigned())
        }
        8 => u64::from(state.release_hold()),
        9 => {
            let c = state.on_cleanup();
            c.lock as u64 ^ u64::from(c.resume_idle)
        }
        _ => 0,
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn probe_ioctl(
    state: *mut DeviceState,
    code: u32,
    input: *const u8,
    input_len: usize,
    output: *mut u8,
    output_len: usize,
    now: u64,
) -> i64 {
    // SAFETY: the probe is never run.
    let state = unsafe { &mut *state };
    // SAFETY: as above.
    let request = match decode(code, unsafe { slice::from_raw_parts(input, input_len) }) {
        Ok(request) => request,
        Err(status) => return i64::from(status),
    };
    if let pagewise_core::ioctl::Request::HoldD0 { duration_ms } = request {
        return match state.hold_request(now, duration_ms) {
            pagewise_core::hold::HoldAction::StopIdleAndStartTimer { due_ms } => i64::from(due_ms),
            _ => {
                state.hold_stop_idle_failed();
                -1
            }
        };
    }
    // SAFETY: the probe is never run.
    let out = unsafe { slice::from_raw_parts_mut(output, output_len) };
    match state.answer(request, out, 0x0001_0000) {
        Ok(n) => i64::try_from(n).unwrap_or(0),
        Err(status) => i64::from(status),
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn probe_timer(state: *mut DeviceState, now: u64) -> u32 {
    // SAFETY: the probe is never run.
    let state = unsafe { &mut *state };
    match state.hold_timer_fired(now) {
        pagewise_core::hold::TimerAction::None => 0,
        pagewise_core::hold::TimerAction::ResumeIdle => 1,
        pagewise_core::hold::TimerAction::Restart { due_ms } => due_ms,
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn probe_config(
    state: *const DeviceState,
    out: *mut pagewise_ioctl::Config,
) {
    // SAFETY: the probe is never run.
    unsafe { *out = (*state).config() };
}

#[unsafe(no_mangle)]
pub extern "system" fn DriverEntry(_: usize, _: usize) -> i32 {
    0
}

/// compiler-builtins' `mem` functions reference the MSVC floating-point marker; a kernel image
/// has no CRT to define it.
#[unsafe(no_mangle)]
pub static _fltused: i32 = 0;
