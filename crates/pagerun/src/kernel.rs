//! The kernel routines a driver imports from `ntoskrnl.exe` (and `HAL.dll`), implemented for
//! the simulated machine. Anything not listed here is bound to a trap that names it when the
//! driver first calls it.

#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]

use crate::host::{self, check_call, status, violation, with};
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
    check_call("KeAcquireSpinLockRaiseToDpc", 0, false);
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
    let paged = flags & POOL_FLAG_PAGED != 0;
    check_call("ExAllocatePool2", 0, paged);
    if paged && machine::irql() > APC_LEVEL {
        violation(
            "irql",
            0,
            &format!("ExAllocatePool2 of paged pool at IRQL {}", machine::irql()),
        );
    }
    host::pool_alloc(paged, size)
}

extern "win64" fn ex_allocate_pool_with_tag(pool_type: u32, size: u64, _tag: u32) -> u64 {
    // Odd POOL_TYPE values (PagedPool = 1, PagedPoolCacheAligned = 5, ...) are paged.
    let paged = pool_type & 1 != 0;
    check_call("ExAllocatePoolWithTag", 0, paged);
    if paged && machine::irql() > APC_LEVEL {
        violation(
            "irql",
            0,
            &format!(
                "ExAllocatePoolWithTag of paged pool at IRQL {}",
                machine::irql()
            ),
        );
    }
    host::pool_alloc(paged, size)
}

extern "win64" fn ex_allocate_pool(pool_type: u32, size: u64) -> u64 {
    ex_allocate_pool_with_tag(pool_type, size, 0)
}

extern "win64" fn ex_free_pool_with_tag(address: u64, _tag: u32) {
    check_call("ExFreePoolWithTag", 0, false);
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
    check_call("MmLockPagableDataSection", 0, false);
    if machine::irql() > APC_LEVEL {
        violation(
            "irql",
            0,
            &format!(
                "MmLockPagableDataSection at IRQL {} (allowed: APC_LEVEL or below)",
                machine::irql()
            ),
        );
    }
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
    check_call("MmLockPagableSectionByHandle", 0, false);
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
    check_call("MmUnlockPagableImageSection", 0, false);
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
    check_call("KeSetEvent", 0, false);
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
    check_call("KeWaitForSingleObject", 0, false);
    // A zero timeout polls; any other wait at DISPATCH_LEVEL is a bug check on Windows.
    // SAFETY: a LARGE_INTEGER of the driver when not null.
    let zero_timeout = timeout != 0 && unsafe { host::read::<i64>(timeout) } == 0;
    if machine::irql() >= DISPATCH_LEVEL && !zero_timeout {
        violation(
            "irql",
            0,
            "KeWaitForSingleObject with a nonzero timeout at DISPATCH_LEVEL",
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

extern "win64" fn ke_bug_check_ex(code: u32, p1: u64, p2: u64, p3: u64, p4: u64) -> ! {
    host::stop(
        "bugcheck",
        0,
        &format!("KeBugCheckEx({code:#x}, {p1:#x}, {p2:#x}, {p3:#x}, {p4:#x})"),
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
        "RtlCompareMemory" => rtl_compare_memory as *const () as usize,
        "RtlInitUnicodeString" => rtl_init_unicode_string as *const () as usize,
        "KeStallExecutionProcessor" => ke_stall_execution_processor as *const () as usize,
        "KeQueryPerformanceCounter" => ke_query_performance_counter as *const () as usize,
        "KeQuerySystemTimePrecise" => ke_query_system_time_precise as *const () as usize,
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
