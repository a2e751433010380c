//! The kernel routines a driver imports from `ntoskrnl.exe` (and `HAL.dll`), implemented for
//! the simulated machine. Anything not listed here is bound to a trap that names it when the
//! driver first calls it.

#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]

use crate::host::{self, status, violation, with};
use crate::machine::{self, APC_LEVEL, DISPATCH_LEVEL};

// ---- IRQL ----------------------------------------------------------------------------------

extern "win64" fn ke_get_current_irql() -> u8 {
    machine::irql()
}

extern "win64" fn kf_raise_irql(new: u8) -> u8 {
    let old = machine::irql();
    if new < old {
        violation(
            "irql",
            0,
            &format!("KfRaiseIrql to {new}, below the current IRQL {old}"),
        );
    }
    machine::set_irql(new);
    old
}

extern "win64" fn ke_raise_irql_to_dpc_level() -> u8 {
    kf_raise_irql(DISPATCH_LEVEL)
}

extern "win64" fn ke_lower_irql(new: u8) {
    let old = machine::irql();
    if new > old {
        violation(
            "irql",
            0,
            &format!("KeLowerIrql to {new}, above the current IRQL {old}"),
        );
    }
    machine::set_irql(new);
}

// ---- spin locks ----------------------------------------------------------------------------

fn lock_word(lock: u64) -> Option<u64> {
    (lock != 0).then(|| {
        // SAFETY: the driver passes its KSPIN_LOCK (a ULONG_PTR it owns).
        unsafe { host::read::<u64>(lock) }
    })
}

fn take(lock: u64, routine: &str) {
    match lock_word(lock) {
        None => violation("lock", 0, &format!("{routine} with a null lock")),
        Some(0) => {}
        Some(_) => violation(
            "lock",
            0,
            &format!(
                "{routine}: the spin lock at {lock:#x} is already held (a deadlock on a real machine)"
            ),
        ),
    }
    if lock != 0 {
        // SAFETY: as in lock_word.
        unsafe { host::write::<u64>(lock, 1) };
    }
    machine::set_spin_locks(machine::spin_locks() + 1);
}

fn give(lock: u64, routine: &str) {
    match lock_word(lock) {
        Some(0) => violation(
            "lock",
            0,
            &format!("{routine}: the spin lock at {lock:#x} is not held"),
        ),
        None => violation("lock", 0, &format!("{routine} with a null lock")),
        Some(_) => {
            // SAFETY: as in lock_word.
            unsafe { host::write::<u64>(lock, 0) };
            machine::set_spin_locks(machine::spin_locks().saturating_sub(1));
        }
    }
}

extern "win64" fn ke_acquire_spin_lock_raise_to_dpc(lock: u64) -> u8 {
    let old = machine::irql();
    machine::set_irql(old.max(DISPATCH_LEVEL));
    take(lock, "KeAcquireSpinLockRaiseToDpc");
    old
}

extern "win64" fn ke_release_spin_lock(lock: u64, old: u8) {
    give(lock, "KeReleaseSpinLock");
    machine::set_irql(old);
}

extern "win64" fn ke_acquire_spin_lock_at_dpc_level(lock: u64) {
    if machine::irql() < DISPATCH_LEVEL {
        violation(
            "irql",
            0,
            "KeAcquireSpinLockAtDpcLevel below DISPATCH_LEVEL",
        );
    }
    take(lock, "KeAcquireSpinLockAtDpcLevel");
}

extern "win64" fn ke_release_spin_lock_from_dpc_level(lock: u64) {
    give(lock, "KeReleaseSpinLockFromDpcLevel");
}

// ---- debug output --------------------------------------------------------------------------

extern "win64" fn dbg_print(_format: u64) -> u32 {
    0
}

extern "win64" fn dbg_print_ex(_component: u32, _level: u32, _format: u64) -> u32 {
    0
}

extern "win64" fn dbg_break_point() {
    host::event("breakpoint", 0, "DbgBreakPoint");
}

// ---- pool ----------------------------------------------------------------------------------

/// `POOL_FLAG_PAGED`.
const POOL_FLAG_PAGED: u64 = 0x100;

extern "win64" fn ex_allocate_pool2(flags: u64, size: u64, _tag: u32) -> u64 {
    // Paged pool above APC_LEVEL is the contract's (checked by the gate).
    host::pool_alloc(flags & POOL_FLAG_PAGED != 0, size)
}

extern "win64" fn ex_allocate_pool_with_tag(pool_type: u32, size: u64, _tag: u32) -> u64 {
    // Odd POOL_TYPE values (PagedPool = 1, PagedPoolCacheAligned = 5, ...) are paged.
    host::pool_alloc(pool_type & 1 != 0, size)
}

extern "win64" fn ex_allocate_pool(pool_type: u32, size: u64) -> u64 {
    ex_allocate_pool_with_tag(pool_type, size, 0)
}

extern "win64" fn ex_free_pool_with_tag(address: u64, _tag: u32) {
    let known = with(|h| h.paged.contains(address) || h.nonpaged.contains(address));
    if address == 0 || !known {
        violation(
            "pool",
            0,
            &format!("ExFreePool of {address:#x}, which is not pool memory"),
        );
    }
}

extern "win64" fn ex_free_pool(address: u64) {
    ex_free_pool_with_tag(address, 0);
}

// ---- locking pageable sections ---------------------------------------------------------------

extern "win64" fn mm_lock_pagable_data_section(address: u64) -> u64 {
    match usize::try_from(address).ok().and_then(machine::region_of) {
        Some(region) if machine::region_kind(region) == machine::RegionKind::Pageable => {
            machine::add_lock(region, 1);
            // The handle names the section; 0 is never a handle.
            region as u64 + 1
        }
        _ => {
            violation(
                "lock",
                0,
                &format!("MmLockPagable*Section({address:#x}): the address is in no PAGE section"),
            );
            0
        }
    }
}

extern "win64" fn mm_lock_pagable_section_by_handle(handle: u64) {
    match handle.checked_sub(1).map(|r| r as usize) {
        Some(region) if region < 32 => {
            machine::add_lock(region, 1);
        }
        _ => violation(
            "lock",
            0,
            &format!(
                "MmLockPagableSectionByHandle with a handle no lock call returned ({handle:#x})"
            ),
        ),
    }
}

extern "win64" fn mm_unlock_pagable_image_section(handle: u64) {
    let ok = handle
        .checked_sub(1)
        .map(|r| r as usize)
        .is_some_and(|region| region < 32 && machine::add_lock(region, -1));
    if !ok {
        violation(
            "lock",
            0,
            &format!("MmUnlockPagableImageSection({handle:#x}) without a matching lock"),
        );
    }
}

// ---- memory and strings --------------------------------------------------------------------

extern "win64" fn memcpy(dest: u64, src: u64, count: u64) -> u64 {
    // SAFETY: the driver's arguments, as the C function requires them (non-overlapping).
    unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dest as *mut u8, count as usize) };
    dest
}

extern "win64" fn memmove(dest: u64, src: u64, count: u64) -> u64 {
    // SAFETY: the driver's arguments, as the C function requires them.
    unsafe { std::ptr::copy(src as *const u8, dest as *mut u8, count as usize) };
    dest
}

extern "win64" fn memset(dest: u64, value: i32, count: u64) -> u64 {
    // SAFETY: the driver's arguments, as the C function requires them.
    unsafe { std::ptr::write_bytes(dest as *mut u8, value as u8, count as usize) };
    dest
}

extern "win64" fn memcmp(left: u64, right: u64, count: u64) -> i32 {
    for i in 0..count {
        // SAFETY: the driver's arguments, as the C function requires them.
        let (a, b) = unsafe { (host::read::<u8>(left + i), host::read::<u8>(right + i)) };
        if a != b {
            return i32::from(a) - i32::from(b);
        }
    }
    0
}

extern "win64" fn rtl_compare_memory(left: u64, right: u64, count: u64) -> u64 {
    for i in 0..count {
        // SAFETY: the driver's arguments, as the routine requires them.
        let (a, b) = unsafe { (host::read::<u8>(left + i), host::read::<u8>(right + i)) };
        if a != b {
            return i;
        }
    }
    count
}

/// Length of a NUL-terminated string of `unit`-byte characters, at most `limit` characters.
fn c_length(string: u64, unit: u64, limit: u64) -> u64 {
    let mut n = 0;
    while n < limit {
        // SAFETY: the driver's NUL-terminated string, as the C function requires it.
        let c = unsafe {
            if unit == 1 {
                u64::from(host::read::<u8>(string + n))
            } else {
                u64::from(host::read::<u16>(string + 2 * n))
            }
        };
        if c == 0 {
            break;
        }
        n += 1;
    }
    n
}

extern "win64" fn strlen(string: u64) -> u64 {
    c_length(string, 1, u64::MAX)
}

extern "win64" fn wcslen(string: u64) -> u64 {
    c_length(string, 2, u64::MAX)
}

extern "win64" fn strnlen(string: u64, limit: u64) -> u64 {
    c_length(string, 1, limit)
}

extern "win64" fn wcsnlen(string: u64, limit: u64) -> u64 {
    c_length(string, 2, limit)
}

/// Compares two NUL-terminated strings of `unit`-byte characters, at most `limit` of them.
fn c_compare(left: u64, right: u64, unit: u64, limit: u64) -> i32 {
    for k in 0..limit {
        // SAFETY: the driver's NUL-terminated strings, as the C function requires them.
        let (a, b) = unsafe {
            if unit == 1 {
                (
                    i32::from(host::read::<u8>(left + k)),
                    i32::from(host::read::<u8>(right + k)),
                )
            } else {
                (
                    i32::from(host::read::<u16>(left + 2 * k)),
                    i32::from(host::read::<u16>(right + 2 * k)),
                )
            }
        };
        if a != b || a == 0 {
            return a - b;
        }
    }
    0
}

extern "win64" fn strcmp(left: u64, right: u64) -> i32 {
    c_compare(left, right, 1, u64::MAX)
}

extern "win64" fn wcscmp(left: u64, right: u64) -> i32 {
    c_compare(left, right, 2, u64::MAX)
}

extern "win64" fn strncmp(left: u64, right: u64, limit: u64) -> i32 {
    c_compare(left, right, 1, limit)
}

extern "win64" fn wcsncmp(left: u64, right: u64, limit: u64) -> i32 {
    c_compare(left, right, 2, limit)
}

extern "win64" fn rtl_init_unicode_string(target: u64, source: u64) {
    let mut len = 0u64;
    if source != 0 {
        // SAFETY: a NUL-terminated UTF-16 string of the driver.
        while unsafe { host::read::<u16>(source + 2 * len) } != 0 && len < 0x7FFF {
            len += 1;
        }
    }
    // SAFETY: the driver's UNICODE_STRING: Length, MaximumLength, padding, Buffer.
    unsafe {
        host::write::<u16>(target, (2 * len) as u16);
        host::write::<u16>(target + 2, (2 * len + 2 * u64::from(source != 0)) as u16);
        host::write::<u64>(target + 8, source);
    }
}

// ---- time and events -----------------------------------------------------------------------

extern "win64" fn ke_stall_execution_processor(microseconds: u32) {
    crate::clock::advance(u64::from(microseconds) * 10);
}

extern "win64" fn ke_query_performance_counter(frequency: u64) -> u64 {
    if frequency != 0 {
        // SAFETY: the driver's LARGE_INTEGER.
        unsafe { host::write::<u64>(frequency, 10_000_000) };
    }
    with(|h| h.clock)
}

extern "win64" fn ke_query_system_time_precise(time: u64) {
    // SAFETY: the driver's LARGE_INTEGER.
    unsafe { host::write::<u64>(time, crate::clock::system_time()) };
}

extern "win64" fn ke_query_system_time(time: u64) {
    // SAFETY: the driver's LARGE_INTEGER.
    unsafe { host::write::<u64>(time, crate::clock::system_time()) };
}

extern "win64" fn ke_query_interrupt_time() -> u64 {
    with(|h| h.clock)
}

extern "win64" fn ke_query_interrupt_time_precise(qpc: u64) -> u64 {
    let now = with(|h| h.clock);
    if qpc != 0 {
        // SAFETY: the driver's ULONG64 for the performance counter (10 MHz here).
        unsafe { host::write::<u64>(qpc, now) };
    }
    now
}

extern "win64" fn ke_query_time_increment() -> u32 {
    // 15.625 ms, the default clock interval, in 100 ns units.
    156_250
}

// ---- WMI -----------------------------------------------------------------------------------

extern "win64" fn io_wmi_device_object_to_provider_id(device_object: u64) -> u32 {
    // Any stable number: the low bits of the object's address.
    (device_object >> 4) as u32
}

extern "win64" fn io_wmi_write_event(event: u64) -> i32 {
    if event == 0 {
        violation("parameter", 0, "IoWMIWriteEvent with a null event");
        return status::INVALID_PARAMETER;
    }
    // WMI frees the event buffer once the call succeeds.
    host::event("wmi", 0, "WMI event written (IoWMIWriteEvent)");
    status::SUCCESS
}

extern "win64" fn ke_initialize_event(event: u64, kind: u32, state: u8) {
    // SAFETY: the driver's KEVENT: DISPATCHER_HEADER Type at 0, SignalState at 4, wait list
    // at 8 (two pointers, initialised empty to point at itself).
    unsafe {
        host::write::<u8>(event, kind as u8);
        host::write::<i32>(event + 4, i32::from(state));
        host::write::<u64>(event + 8, event + 8);
        host::write::<u64>(event + 16, event + 8);
    }
}

extern "win64" fn ke_set_event(event: u64, _increment: i32, wait: u8) -> i32 {
    if wait != 0 {
        host::event(
            "wait",
            0,
            "KeSetEvent with Wait = TRUE: the caller must be resident until its next wait",
        );
    }
    // SAFETY: the driver's KEVENT.
    unsafe {
        let old = host::read::<i32>(event + 4);
        host::write::<i32>(event + 4, 1);
        old
    }
}

extern "win64" fn ke_clear_event(event: u64) {
    // SAFETY: the driver's KEVENT.
    unsafe { host::write::<i32>(event + 4, 0) };
}

extern "win64" fn ke_reset_event(event: u64) -> i32 {
    // SAFETY: the driver's KEVENT.
    unsafe {
        let old = host::read::<i32>(event + 4);
        host::write::<i32>(event + 4, 0);
        old
    }
}

extern "win64" fn ke_read_state_event(event: u64) -> i32 {
    // SAFETY: the driver's KEVENT.
    unsafe { host::read::<i32>(event + 4) }
}

/// `STATUS_TIMEOUT`.
const STATUS_TIMEOUT: i32 = 0x102;

extern "win64" fn ke_wait_for_single_object(
    object: u64,
    _reason: u32,
    _mode: u8,
    _alertable: u8,
    timeout: u64,
) -> i32 {
    // A zero timeout polls; any other wait at DISPATCH_LEVEL is a bug check on Windows. The
    // contract (checked by the gate) covers a NULL timeout; a nonzero one is checked here,
    // since the table does not read what an argument points to.
    // SAFETY: a LARGE_INTEGER of the driver when not null.
    if timeout != 0 && unsafe { host::read::<i64>(timeout) } != 0 && machine::irql() > APC_LEVEL {
        violation(
            "irql",
            0,
            &format!(
                "KeWaitForSingleObject with a nonzero timeout at IRQL {}; its reference page allows at most APC_LEVEL unless the timeout is zero",
                machine::irql()
            ),
        );
    }
    // The model runs one thread: another thread cannot signal the object while this one waits,
    // so only what is queued on the virtual clock can. Run it, then look.
    crate::clock::run_pending();
    // SAFETY: the driver's dispatcher object: Type at 0, SignalState at 4.
    let (kind, signalled) = unsafe { (host::read::<u8>(object), host::read::<i32>(object + 4)) };
    if signalled > 0 {
        if kind == 1 {
            // A synchronization event wakes one waiter and resets.
            // SAFETY: as above.
            unsafe { host::write::<i32>(object + 4, 0) };
        }
        return status::SUCCESS;
    }
    if timeout != 0 {
        // SAFETY: as above.
        let t = unsafe { host::read::<i64>(timeout) };
        if t < 0 {
            crate::clock::advance(t.unsigned_abs());
        }
        return STATUS_TIMEOUT;
    }
    host::stop(
        "hang",
        0,
        "KeWaitForSingleObject without a timeout on an object nothing will signal: the thread would wait forever",
    );
}

// ---- bug checks ----------------------------------------------------------------------------

/// The bug check wdk-panic's panic handler raises for a Rust panic (`RPNC`).
const RUST_PANIC_BUGCHECK_CODE: u32 = u32::from_be_bytes(*b"RPNC");

extern "win64" fn ke_bug_check_ex(code: u32, p1: u64, p2: u64, p3: u64, p4: u64) -> ! {
    let what = if code == RUST_PANIC_BUGCHECK_CODE {
        ": a Rust panic (the bug check wdk-panic raises, 'RPNC')"
    } else {
        ""
    };
    host::stop(
        "bugcheck",
        0,
        &format!("KeBugCheckEx({code:#x}, {p1:#x}, {p2:#x}, {p3:#x}, {p4:#x}){what}"),
    );
}

extern "win64" fn ke_bug_check(code: u32) -> ! {
    ke_bug_check_ex(code, 0, 0, 0, 0)
}

/// The implementation of `ntoskrnl.exe!name` (or `HAL.dll!name`), if the host has one.
#[must_use]
pub fn resolve(name: &str) -> Option<usize> {
    let f: usize = match name {
        "KeGetCurrentIrql" => ke_get_current_irql as *const () as usize,
        "KfRaiseIrql" | "KeRaiseIrql" => kf_raise_irql as *const () as usize,
        "KeRaiseIrqlToDpcLevel" => ke_raise_irql_to_dpc_level as *const () as usize,
        "KeLowerIrql" | "KfLowerIrql" => ke_lower_irql as *const () as usize,
        "KeAcquireSpinLockRaiseToDpc" => ke_acquire_spin_lock_raise_to_dpc as *const () as usize,
        "KeReleaseSpinLock" => ke_release_spin_lock as *const () as usize,
        "KeAcquireSpinLockAtDpcLevel" => ke_acquire_spin_lock_at_dpc_level as *const () as usize,
        "KeReleaseSpinLockFromDpcLevel" => {
            ke_release_spin_lock_from_dpc_level as *const () as usize
        }
        "DbgPrint" => dbg_print as *const () as usize,
        "DbgPrintEx" | "vDbgPrintEx" => dbg_print_ex as *const () as usize,
        "DbgBreakPoint" => dbg_break_point as *const () as usize,
        "ExAllocatePool2" => ex_allocate_pool2 as *const () as usize,
        "ExAllocatePoolWithTag" => ex_allocate_pool_with_tag as *const () as usize,
        "ExAllocatePool" => ex_allocate_pool as *const () as usize,
        "ExFreePoolWithTag" => ex_free_pool_with_tag as *const () as usize,
        "ExFreePool" => ex_free_pool as *const () as usize,
        "MmLockPagableDataSection" | "MmLockPagableCodeSection" => {
            mm_lock_pagable_data_section as *const () as usize
        }
        "MmLockPagableSectionByHandle" => mm_lock_pagable_section_by_handle as *const () as usize,
        "MmUnlockPagableImageSection" => mm_unlock_pagable_image_section as *const () as usize,
        "memcpy" => memcpy as *const () as usize,
        "memmove" => memmove as *const () as usize,
        "memset" => memset as *const () as usize,
        "memcmp" => memcmp as *const () as usize,
        "strlen" => strlen as *const () as usize,
        "wcslen" => wcslen as *const () as usize,
        "strnlen" => strnlen as *const () as usize,
        "wcsnlen" => wcsnlen as *const () as usize,
        "strcmp" => strcmp as *const () as usize,
        "wcscmp" => wcscmp as *const () as usize,
        "strncmp" => strncmp as *const () as usize,
        "wcsncmp" => wcsncmp as *const () as usize,
        "RtlCompareMemory" => rtl_compare_memory as *const () as usize,
        "RtlInitUnicodeString" => rtl_init_unicode_string as *const () as usize,
        "KeStallExecutionProcessor" => ke_stall_execution_processor as *const () as usize,
        "KeQueryPerformanceCounter" => ke_query_performance_counter as *const () as usize,
        "KeQuerySystemTimePrecise" => ke_query_system_time_precise as *const () as usize,
        "KeQuerySystemTime" => ke_query_system_time as *const () as usize,
        "KeQueryInterruptTime" => ke_query_interrupt_time as *const () as usize,
        "KeQueryTimeIncrement" => ke_query_time_increment as *const () as usize,
        "KeQueryInterruptTimePrecise" => ke_query_interrupt_time_precise as *const () as usize,
        "IoWMIDeviceObjectToProviderId" => {
            io_wmi_device_object_to_provider_id as *const () as usize
        }
        "IoWMIWriteEvent" => io_wmi_write_event as *const () as usize,
        "KeInitializeEvent" => ke_initialize_event as *const () as usize,
        "KeSetEvent" => ke_set_event as *const () as usize,
        "KeClearEvent" => ke_clear_event as *const () as usize,
        "KeResetEvent" => ke_reset_event as *const () as usize,
        "KeReadStateEvent" => ke_read_state_event as *const () as usize,
        "KeWaitForSingleObject" => ke_wait_for_single_object as *const () as usize,
        "KeBugCheckEx" => ke_bug_check_ex as *const () as usize,
        "KeBugCheck" => ke_bug_check as *const () as usize,
        _ => return None,
    };
    Some(f)
}
