//! The simulated processor the driver runs on: its IRQL, the spin locks it holds, whether the
//! paging disk is on, and the memory protection that follows from them.
//!
//! The driver's code runs natively on this thread. What the kernel would do differently is
//! done here, in the fault handlers:
//!
//! - a pageable region (`PAGE*` section, paged pool) is `PROT_NONE` whenever the simulated IRQL
//!   is `DISPATCH_LEVEL` or above, a spin lock is held, interrupts are off or the paging disk
//!   is off, unless the driver locked it; `INIT` is `PROT_NONE` once `DriverEntry` returns;
//! - an access to such a region is recorded, the region opened, the trap flag set, and after
//!   that one instruction the region is closed again: one run lists every violation;
//! - `mov cr8`, `cli`/`sti` and reads of `KUSER_SHARED_DATA` (privileged in a Linux process)
//!   are decoded with iced-x86 and emulated;
//! - a call into an unimplemented import or framework method lands in a `PROT_NONE` trap page
//!   whose offset names it;
//! - anything else (a wild pointer, `__fastfail`, `ud2`, an exhausted budget) ends the scenario
//!   with a record saying where.
//!
//! Everything a handler touches is an atomic or a fixed array set up before the driver runs;
//! handlers write their records with `write(2)` from stack buffers, never allocating.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU32, AtomicU64, AtomicUsize};

use iced_x86::{Code, Decoder, DecoderOptions, Instruction, Register};

use crate::protocol::RawLine;

/// Relaxed everywhere: one thread, and signal handlers run on it.
const R: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;

/// `PASSIVE_LEVEL`.
pub const PASSIVE_LEVEL: u8 = 0;
/// `APC_LEVEL`.
pub const APC_LEVEL: u8 = 1;
/// `DISPATCH_LEVEL`.
pub const DISPATCH_LEVEL: u8 = 2;
/// The device IRQL an interrupt service routine runs at in this model.
pub const DEVICE_LEVEL: u8 = 5;
/// `HIGH_LEVEL`.
pub const HIGH_LEVEL: u8 = 15;

/// The kernel address of `KUSER_SHARED_DATA`.
pub const KUSER_SHARED_DATA: u64 = 0xFFFF_F780_0000_0000;

/// Exit status of a child whose scenario was stopped by a fault handler (the record says why).
pub const EXIT_STOPPED: i32 = 3;

/// What a region holds, which decides when it is inaccessible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RegionKind {
    /// `INIT`: inaccessible once `DriverEntry` returns.
    Init = 0,
    /// A `PAGE*` section.
    Pageable = 1,
    /// The paged-pool arena.
    PagedPool = 2,
}

const MAX_REGIONS: usize = 32;

struct Region {
    base: AtomicUsize,
    len: AtomicUsize,
    prot: AtomicI32,
    kind: AtomicU8,
    trimmed: AtomicBool,
    locks: AtomicU32,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_REGION: Region = Region {
    base: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    prot: AtomicI32::new(0),
    kind: AtomicU8::new(0),
    trimmed: AtomicBool::new(false),
    locks: AtomicU32::new(0),
};

static REGIONS: [Region; MAX_REGIONS] = [EMPTY_REGION; MAX_REGIONS];
static REGION_COUNT: AtomicUsize = AtomicUsize::new(0);
static REGION_NAMES: OnceLock<Vec<String>> = OnceLock::new();

static IRQL: AtomicU8 = AtomicU8::new(PASSIVE_LEVEL);
static SPIN_LOCKS: AtomicU32 = AtomicU32::new(0);
static INTERRUPTS_OFF: AtomicBool = AtomicBool::new(false);
static DISK_OFF: AtomicBool = AtomicBool::new(false);
static INIT_DISCARDED: AtomicBool = AtomicBool::new(false);
/// Regions opened for the one instruction being single-stepped (bit per region).
static STEPPING: AtomicU32 = AtomicU32::new(0);
static STEPS: AtomicU64 = AtomicU64::new(0);
static STEP_BUDGET: AtomicU64 = AtomicU64::new(u64::MAX);

/// The scenario step and the callback (its id in the record stream) now running.
static STEP: AtomicU32 = AtomicU32::new(0);
static CALLBACK: AtomicU32 = AtomicU32::new(0);
/// An address inside the driver's call instruction of the kernel or framework routine now
/// running (0 between routines).
static CALL_SITE: AtomicU64 = AtomicU64::new(0);

/// Trap pages: `[base, base + len)`, one 16-byte slot per unimplemented routine.
static TRAP_BASE: AtomicUsize = AtomicUsize::new(0);
static TRAP_LEN: AtomicUsize = AtomicUsize::new(0);
static TRAP_NAMES: OnceLock<Vec<String>> = OnceLock::new();
/// Bytes of each trap slot.
pub const TRAP_SLOT: usize = 16;

/// The emulated `KUSER_SHARED_DATA` page.
static KUSER: [AtomicU64; 512] = [const { AtomicU64::new(0) }; 512];

/// Recently recorded faults `(kind << 56 | step, rip)`, so a loop over paged code reports once.
const SEEN: usize = 256;
static SEEN_FAULTS: [AtomicU64; SEEN * 2] = [const { AtomicU64::new(0) }; SEEN * 2];
static SEEN_NEXT: AtomicUsize = AtomicUsize::new(0);

/// Kind of memory fault, as the report names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Instruction fetch.
    Fetch,
    /// Data read.
    Read,
    /// Data write.
    Write,
}

impl Access {
    /// The report's name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Access::Fetch => "fetch",
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

/// Adds a region; `prot` is its protection when accessible.
///
/// # Panics
/// More than 32 regions (the loader refuses images with that many pageable sections first).
pub fn add_region(base: usize, len: usize, prot: i32, kind: RegionKind) -> usize {
    let i = REGION_COUNT.fetch_add(1, R);
    assert!(i < MAX_REGIONS, "too many pageable regions");
    let r = &REGIONS[i];
    r.base.store(base, R);
    r.len.store(len, R);
    r.prot.store(prot, R);
    r.kind.store(kind as u8, R);
    r.trimmed.store(false, R);
    i
}

/// Names of the regions, by index, for records.
pub fn set_region_names(names: Vec<String>) {
    let _ = REGION_NAMES.set(names);
}

/// Names of the trap slots, by index.
pub fn set_traps(base: usize, len: usize, names: Vec<String>) {
    TRAP_BASE.store(base, R);
    TRAP_LEN.store(len, R);
    let _ = TRAP_NAMES.set(names);
}

/// The region holding `address`.
#[must_use]
pub fn region_of(address: usize) -> Option<usize> {
    (0..REGION_COUNT.load(R)).find(|&i| {
        let r = &REGIONS[i];
        let base = r.base.load(R);
        address >= base && address < base + r.len.load(R)
    })
}

/// Number of regions.
#[must_use]
pub fn region_count() -> usize {
    REGION_COUNT.load(R)
}

/// Kind of region `i`.
#[must_use]
pub fn region_kind(i: usize) -> RegionKind {
    match REGIONS[i].kind.load(R) {
        0 => RegionKind::Init,
        1 => RegionKind::Pageable,
        _ => RegionKind::PagedPool,
    }
}

/// Current IRQL.
#[must_use]
pub fn irql() -> u8 {
    IRQL.load(R)
}

/// Sets the IRQL and applies the protection that follows.
pub fn set_irql(level: u8) {
    IRQL.store(level, R);
    sync();
}

/// Number of spin locks held.
#[must_use]
pub fn spin_locks() -> u32 {
    SPIN_LOCKS.load(R)
}

/// Sets the number of spin locks held.
pub fn set_spin_locks(count: u32) {
    SPIN_LOCKS.store(count, R);
    sync();
}

/// Turns the paging disk on or off.
pub fn set_disk_off(off: bool) {
    DISK_OFF.store(off, R);
    sync();
}

/// True while the paging disk is off.
#[must_use]
pub fn disk_off() -> bool {
    DISK_OFF.load(R)
}

/// `INIT` becomes inaccessible.
pub fn discard_init() {
    INIT_DISCARDED.store(true, R);
    sync();
}

/// Interrupts disabled (`cli`) or enabled (`sti`).
pub fn set_interrupts_off(off: bool) {
    INTERRUPTS_OFF.store(off, R);
    sync();
}

/// Lock count of region `i` (`MmLockPagable*`).
#[must_use]
pub fn lock_count(i: usize) -> u32 {
    REGIONS[i].locks.load(R)
}

/// Adds `delta` to the lock count of region `i`; false when it would go below zero.
pub fn add_lock(i: usize, delta: i32) -> bool {
    let r = &REGIONS[i];
    let now = r.locks.load(R);
    let Some(next) = now.checked_add_signed(delta) else {
        return false;
    };
    r.locks.store(next, R);
    sync();
    true
}

/// The scenario step now running.
pub fn set_step(step: u32) {
    STEP.store(step, R);
}

/// The step now running.
#[must_use]
pub fn step() -> u32 {
    STEP.load(R)
}

/// The callback (record id) now running.
pub fn set_callback(id: u32) {
    CALLBACK.store(id, R);
}

/// The callback now running.
#[must_use]
pub fn callback() -> u32 {
    CALLBACK.load(R)
}

/// Records the call site of the routine the driver just called (see [`call_site`]).
pub fn set_call_site(address: u64) {
    CALL_SITE.store(address, R);
}

/// An address inside the driver's call of the kernel or framework routine now running, or 0
/// when the host is not inside such a routine.
#[must_use]
pub fn call_site() -> u64 {
    CALL_SITE.load(R)
}

/// Single-steps allowed before the scenario is stopped.
pub fn set_step_budget(steps: u64) {
    STEP_BUDGET.store(steps, R);
}

/// Single-steps taken so far.
#[must_use]
pub fn steps_taken() -> u64 {
    STEPS.load(R)
}

/// Writes `value` into the emulated `KUSER_SHARED_DATA` at byte `offset` (8-aligned).
pub fn set_kuser_u64(offset: usize, value: u64) {
    if let Some(slot) = KUSER.get(offset / 8) {
        slot.store(value, R);
    }
}

/// Writes the low 32 bits of `value` into the emulated `KUSER_SHARED_DATA` at byte `offset`.
pub fn set_kuser_u32(offset: usize, value: u64) {
    let Some(slot) = KUSER.get(offset / 8) else {
        return;
    };
    let shift = (offset % 8) * 8;
    if shift > 32 {
        return;
    }
    let mask = 0xffff_ffffu64 << shift;
    let old = slot.load(R);
    slot.store((old & !mask) | ((value & 0xffff_ffff) << shift), R);
}

fn kuser_read(offset: usize, size: usize) -> u64 {
    let mut value = 0u64;
    for k in 0..size {
        let at = offset + k;
        let Some(word) = KUSER.get(at / 8) else { break };
        let byte = (word.load(R) >> ((at % 8) * 8)) & 0xff;
        value |= byte << (8 * k);
    }
    value
}

fn should_trim(i: usize) -> bool {
    let r = &REGIONS[i];
    match region_kind(i) {
        RegionKind::Init => INIT_DISCARDED.load(R),
        RegionKind::Pageable | RegionKind::PagedPool => {
            r.locks.load(R) == 0
                && (IRQL.load(R) >= DISPATCH_LEVEL
                    || SPIN_LOCKS.load(R) > 0
                    || INTERRUPTS_OFF.load(R)
                    || DISK_OFF.load(R))
        }
    }
}

fn protect(i: usize, trimmed: bool) {
    let r = &REGIONS[i];
    let prot = if trimmed {
        libc::PROT_NONE
    } else {
        r.prot.load(R)
    };
    // SAFETY: base/len describe a mapping this process created for the region (page-aligned,
    // page-sized); changing its protection affects nothing else.
    unsafe {
        libc::mprotect(r.base.load(R) as *mut libc::c_void, r.len.load(R), prot);
    }
    r.trimmed.store(trimmed, R);
}

/// Brings every region's protection in line with the state (regions open for a single step
/// are left alone until the step ends).
pub fn sync() {
    let stepping = STEPPING.load(R);
    for i in 0..REGION_COUNT.load(R) {
        if stepping & (1 << i) != 0 {
            continue;
        }
        let want = should_trim(i);
        if want != REGIONS[i].trimmed.load(R) {
            protect(i, want);
        }
    }
}

/// True when region `i` is inaccessible now.
#[must_use]
pub fn trimmed(i: usize) -> bool {
    REGIONS[i].trimmed.load(R)
}

// ---- signal handling ----------------------------------------------------------------------

/// Installs the handlers (on an alternate stack, so a driver's stack overflow is reported too).
///
/// # Errors
/// `sigaltstack` or `sigaction` failed.
pub fn install_handlers() -> Result<(), String> {
    const ALT_STACK: usize = 256 * 1024;
    // SAFETY: a fresh anonymous mapping for the alternate signal stack, never unmapped (the
    // process ends with the scenario); sigaltstack and sigaction get valid, initialised
    // structures, and the handlers have the SA_SIGINFO signature.
    unsafe {
        let stack = libc::mmap(
            std::ptr::null_mut(),
            ALT_STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if stack == libc::MAP_FAILED {
            return Err("cannot map the signal stack".to_owned());
        }
        let ss = libc::stack_t {
            ss_sp: stack,
            ss_flags: 0,
            ss_size: ALT_STACK,
        };
        if libc::sigaltstack(&raw const ss, std::ptr::null_mut()) != 0 {
            return Err("sigaltstack failed".to_owned());
        }
        for (signal, handler) in [
            (libc::SIGSEGV, on_segv as *const () as usize),
            (libc::SIGBUS, on_segv as *const () as usize),
            (libc::SIGTRAP, on_trap as *const () as usize),
            (libc::SIGILL, on_ill as *const () as usize),
            (libc::SIGVTALRM, on_budget as *const () as usize),
        ] {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&raw mut action.sa_mask);
            if libc::sigaction(signal, &raw const action, std::ptr::null_mut()) != 0 {
                return Err(format!("sigaction({signal}) failed"));
            }
        }
    }
    Ok(())
}

/// Starts the CPU budget: `SIGVTALRM` after `seconds` of user CPU time stops the scenario.
pub fn start_cpu_budget(seconds: u64) {
    let value = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        it_value: libc::timeval {
            tv_sec: libc::time_t::try_from(seconds).unwrap_or(libc::time_t::MAX),
            tv_usec: 0,
        },
    };
    // SAFETY: a valid itimerval; ITIMER_VIRTUAL only delivers SIGVTALRM, whose handler is set.
    unsafe {
        libc::setitimer(libc::ITIMER_VIRTUAL, &raw const value, std::ptr::null_mut());
    }
}

/// The saved general registers of the interrupted context.
struct Context(*mut libc::ucontext_t);

impl Context {
    fn get(&self, index: libc::c_int) -> u64 {
        // SAFETY: the kernel passed a valid ucontext to the handler; index is a REG_* constant.
        #[allow(clippy::cast_sign_loss)]
        unsafe {
            (*self.0).uc_mcontext.gregs[index as usize] as u64
        }
    }
    fn set(&self, index: libc::c_int, value: u64) {
        // SAFETY: as in `get`; the kernel restores these registers on return from the handler.
        #[allow(clippy::cast_possible_wrap)]
        unsafe {
            (*self.0).uc_mcontext.gregs[index as usize] = value as i64;
        }
    }
}

fn greg(register: Register) -> Option<libc::c_int> {
    Some(match register.full_register() {
        Register::RAX => libc::REG_RAX,
        Register::RCX => libc::REG_RCX,
        Register::RDX => libc::REG_RDX,
        Register::RBX => libc::REG_RBX,
        Register::RSP => libc::REG_RSP,
        Register::RBP => libc::REG_RBP,
        Register::RSI => libc::REG_RSI,
        Register::RDI => libc::REG_RDI,
        Register::R8 => libc::REG_R8,
        Register::R9 => libc::REG_R9,
        Register::R10 => libc::REG_R10,
        Register::R11 => libc::REG_R11,
        Register::R12 => libc::REG_R12,
        Register::R13 => libc::REG_R13,
        Register::R14 => libc::REG_R14,
        Register::R15 => libc::REG_R15,
        _ => return None,
    })
}

/// Writes `value` to `register` as the CPU would: a 32-bit destination clears the upper half,
/// 8- and 16-bit ones keep the rest.
fn write_register(ctx: &Context, register: Register, value: u64) -> bool {
    let Some(index) = greg(register) else {
        return false;
    };
    let old = ctx.get(index);
    let new = match register.size() {
        8 => value,
        4 => value & 0xffff_ffff,
        2 => (old & !0xffff) | (value & 0xffff),
        1 if register.is_gpr8()
            && matches!(
                register,
                Register::AH | Register::CH | Register::DH | Register::BH
            ) =>
        {
            (old & !0xff00) | ((value & 0xff) << 8)
        }
        1 => (old & !0xff) | (value & 0xff),
        _ => return false,
    };
    ctx.set(index, new);
    true
}

fn read_register(ctx: &Context, register: Register) -> Option<u64> {
    let index = greg(register)?;
    let full = ctx.get(index);
    Some(match register.size() {
        8 => full,
        4 => full & 0xffff_ffff,
        2 => full & 0xffff,
        _ => full & 0xff,
    })
}

fn decode_at(rip: u64) -> Option<Instruction> {
    // Only code the process can read: the image's accessible sections or host code.
    if let Some(region) = region_of(usize::try_from(rip).ok()?)
        && trimmed(region)
    {
        return None;
    }
    // SAFETY: rip is the address the CPU just faulted on while executing, so the bytes of the
    // instruction are mapped and readable (a trimmed region was excluded above); 15 bytes is
    // the longest x86 instruction, and an instruction near the end of a mapping is decoded
    // from what remains of the page.
    let bytes = unsafe {
        let page_end = (rip | 0xfff) + 1;
        let len = usize::try_from((page_end - rip).min(15)).ok()?;
        std::slice::from_raw_parts(rip as *const u8, len)
    };
    let mut decoder = Decoder::with_ip(64, bytes, rip, DecoderOptions::NONE);
    let instruction = decoder.decode();
    (!instruction.is_invalid()).then_some(instruction)
}

fn effective_address(ctx: &Context, i: &Instruction) -> Option<u64> {
    let base = match i.memory_base() {
        Register::None => 0,
        Register::RIP => return Some(i.memory_displacement64()),
        register => read_register(ctx, register)?,
    };
    let index = match i.memory_index() {
        Register::None => 0,
        register => read_register(ctx, register)?.wrapping_mul(u64::from(i.memory_index_scale())),
    };
    Some(
        base.wrapping_add(index)
            .wrapping_add(i.memory_displacement64()),
    )
}

/// Emulates a privileged instruction or a `KUSER_SHARED_DATA` read; true when done (RIP
/// advanced).
fn emulate(ctx: &Context, rip: u64) -> bool {
    let Some(i) = decode_at(rip) else {
        return false;
    };
    let done = match i.code() {
        Code::Mov_r64_cr if i.op1_register() == Register::CR8 => {
            write_register(ctx, i.op0_register(), u64::from(irql()))
        }
        Code::Mov_cr_r64 if i.op0_register() == Register::CR8 => {
            match read_register(ctx, i.op1_register()) {
                Some(value) => {
                    #[allow(clippy::cast_possible_truncation)]
                    set_irql((value & 0xf) as u8);
                    true
                }
                None => false,
            }
        }
        Code::Cli => {
            set_interrupts_off(true);
            true
        }
        Code::Sti => {
            set_interrupts_off(false);
            true
        }
        Code::Mov_r64_rm64
        | Code::Mov_r32_rm32
        | Code::Mov_r16_rm16
        | Code::Mov_r8_rm8
        | Code::Movzx_r32_rm8
        | Code::Movzx_r32_rm16
        | Code::Movzx_r64_rm8
        | Code::Movzx_r64_rm16 => match effective_address(ctx, &i) {
            Some(address) if (KUSER_SHARED_DATA..KUSER_SHARED_DATA + 0x1000).contains(&address) => {
                let size = match i.code() {
                    Code::Mov_r64_rm64 => 8,
                    Code::Mov_r32_rm32 => 4,
                    Code::Mov_r16_rm16 | Code::Movzx_r32_rm16 | Code::Movzx_r64_rm16 => 2,
                    _ => 1,
                };
                #[allow(clippy::cast_possible_truncation)]
                let offset = (address - KUSER_SHARED_DATA) as usize;
                let value = kuser_read(offset, size);
                let target = i.op0_register();
                // movzx writes the whole destination.
                if matches!(
                    i.code(),
                    Code::Movzx_r32_rm8
                        | Code::Movzx_r32_rm16
                        | Code::Movzx_r64_rm8
                        | Code::Movzx_r64_rm16
                ) {
                    write_register(ctx, target.full_register32(), value)
                } else {
                    write_register(ctx, target, value)
                }
            }
            _ => false,
        },
        _ => false,
    };
    if done {
        ctx.set(libc::REG_RIP, rip + i.len() as u64);
    }
    done
}

/// A record that starts `<kind> <rip> <step> <callback> <irql> `, as the parent's protocol
/// reads stops and events; the caller appends the rest. Allocates nothing (signal handlers).
fn record(kind: &str, rip: u64) -> RawLine {
    let mut line = RawLine::new();
    line.text(kind)
        .text(" ")
        .hex(rip)
        .text(" ")
        .dec(u64::from(step()))
        .text(" ")
        .dec(u64::from(callback()))
        .text(" ")
        .dec(u64::from(irql()))
        .text(" ");
    line
}

fn stop(line: &RawLine) -> ! {
    line.write();
    // SAFETY: _exit is async-signal-safe and ends the child process at once; the parent reads
    // the records written so far.
    unsafe { libc::_exit(EXIT_STOPPED) }
}

fn already_seen(kind: u8, rip: u64, address: u64) -> bool {
    let key =
        (u64::from(kind) << 56) | (u64::from(step()) << 24) | u64::from(callback() & 0xff_ffff);
    let place = rip ^ (address.rotate_left(32));
    for k in 0..SEEN {
        if SEEN_FAULTS[2 * k].load(R) == key && SEEN_FAULTS[2 * k + 1].load(R) == place {
            return true;
        }
    }
    let slot = SEEN_NEXT.fetch_add(1, R) % SEEN;
    SEEN_FAULTS[2 * slot].store(key, R);
    SEEN_FAULTS[2 * slot + 1].store(place, R);
    false
}

extern "C" fn on_segv(_signal: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    let ctx = Context(uc.cast());
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let address = unsafe { (*info).si_addr() } as u64;
    let rip = ctx.get(libc::REG_RIP);

    // A call into an unimplemented routine lands in the trap pages.
    let trap_base = TRAP_BASE.load(R) as u64;
    let trap_len = TRAP_LEN.load(R) as u64;
    if rip >= trap_base && rip < trap_base + trap_len {
        let slot = usize::try_from((rip - trap_base) / TRAP_SLOT as u64).unwrap_or(0);
        let name = TRAP_NAMES
            .get()
            .and_then(|n| n.get(slot))
            .map_or("?", String::as_str);
        let rsp = ctx.get(libc::REG_RSP);
        // SAFETY: rsp is the stack pointer of the interrupted call, whose first slot holds
        // the return address the call pushed.
        let caller = unsafe { *(rsp as *const u64) };
        let mut line = record("stop unmodelled", caller);
        line.text(name).text("\n");
        stop(&line);
    }

    // An access to a trimmed region: record it, open the region for one instruction.
    if let Some(region) = usize::try_from(address).ok().and_then(region_of)
        && trimmed(region)
    {
        let err = ctx.get(libc::REG_ERR);
        let access = if address >= rip && address < rip + 16 || err & 0x10 != 0 {
            Access::Fetch
        } else if err & 2 != 0 {
            Access::Write
        } else {
            Access::Read
        };
        if !already_seen(access as u8, rip, address) {
            let mut line = RawLine::new();
            line.text("fault ")
                .text(access.name())
                .text(" ")
                .hex(rip)
                .text(" ")
                .hex(address)
                .text(" ")
                .dec(u64::from(irql()))
                .text(" ")
                .dec(u64::from(step()))
                .text(" ")
                .dec(u64::from(callback()))
                .text(" ")
                .dec(region as u64)
                .text(" ")
                .dec(u64::from(spin_locks()))
                .text(" ")
                .dec(u64::from(disk_off()))
                .text("\n");
            line.write();
        }
        STEPPING.fetch_or(1 << region, R);
        protect(region, false);
        ctx.set(libc::REG_EFL, ctx.get(libc::REG_EFL) | 0x100);
        return;
    }

    if emulate(&ctx, rip) {
        return;
    }

    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let code = unsafe { (*info).si_code };
    let mut line = record("stop crash", rip);
    describe_crash(&mut line, &ctx, rip, address, code);
    line.text("\n");
    stop(&line);
}

/// `si_code` of a fault the processor raised as a general-protection exception (a privileged
/// instruction, a non-canonical address, a misaligned 16-byte SSE access): the kernel reports
/// no address for it.
const SI_KERNEL: libc::c_int = 0x80;

/// Says what the instruction at `rip` did wrong, as precisely as the decoder allows (never
/// allocating: this runs in the signal handler).
fn describe_crash(line: &mut RawLine, ctx: &Context, rip: u64, address: u64, code: libc::c_int) {
    use std::fmt::Write as _;
    let Some(i) = decode_at(rip) else {
        line.text("execution at an unreadable address ").hex(rip);
        return;
    };
    if i.code() == Code::Int_imm8 && i.immediate8() == 0x29 {
        line.text("__fastfail (a Rust panic with panic=abort, or a /GS or CFG failure) code ")
            .hex(ctx.get(libc::REG_RCX));
        return;
    }
    if i.code() == Code::Int_imm8 {
        line.text("software interrupt ")
            .hex(u64::from(i.immediate8()));
        return;
    }
    let mnemonic = i.mnemonic();
    let has_memory = (0..i.op_count()).any(|k| i.op_kind(k) == iced_x86::OpKind::Memory);
    if matches!(i.memory_segment(), Register::GS | Register::FS) && has_memory {
        // Kernel code reads its processor block through GS (KeGetCurrentThread,
        // KeGetCurrentProcessorNumberEx, the current IRQL's shadow...): not modelled.
        let _ = write!(
            line,
            "{mnemonic:?} through {:?}: a read of the kernel's processor block (KPCR/KPRCB) at offset ",
            i.memory_segment()
        );
        line.hex(i.memory_displacement64());
        return;
    }
    if code == SI_KERNEL {
        let target = has_memory.then(|| effective_address(ctx, &i)).flatten();
        match target {
            Some(at) if (at >> 47) != 0 && (at >> 47) != 0x1_FFFF => {
                let _ = write!(line, "{mnemonic:?} of the non-canonical address ");
                line.hex(at);
            }
            Some(at) if at % 16 != 0 => {
                let _ = write!(
                    line,
                    "{mnemonic:?} of a 16-byte operand at an address not 16-byte aligned: "
                );
                line.hex(at);
            }
            _ => {
                let _ = write!(
                    line,
                    "privileged or unmodelled instruction {mnemonic:?} (general-protection fault)"
                );
            }
        }
        return;
    }
    if address < 0x1_0000 {
        let _ = write!(line, "{mnemonic:?} through a null pointer: address ");
        line.hex(address);
        return;
    }
    let _ = write!(line, "{mnemonic:?}: access violation at ");
    line.hex(address);
}

extern "C" fn on_trap(_signal: libc::c_int, _info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    let ctx = Context(uc.cast());
    let stepping = STEPPING.swap(0, R);
    if stepping != 0 {
        ctx.set(libc::REG_EFL, ctx.get(libc::REG_EFL) & !0x100);
        let steps = STEPS.fetch_add(1, R) + 1;
        sync();
        if steps > STEP_BUDGET.load(R) {
            let mut line = record("stop budget", ctx.get(libc::REG_RIP));
            line.text("single-step budget of ")
                .dec(STEP_BUDGET.load(R))
                .text(" faulting instructions exceeded\n");
            stop(&line);
        }
        return;
    }
    // int3 in the driver (DbgBreakPoint, __debugbreak, NT_ASSERT): reported, execution goes on.
    let rip = ctx.get(libc::REG_RIP);
    record("event breakpoint", rip.wrapping_sub(1))
        .text("int3 (a breakpoint or assertion in the driver)\n")
        .write();
}

extern "C" fn on_ill(_signal: libc::c_int, _info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    let ctx = Context(uc.cast());
    let mut line = record("stop crash", ctx.get(libc::REG_RIP));
    line.text("invalid instruction (ud2: an abort or unreachable code)\n");
    stop(&line);
}

extern "C" fn on_budget(_signal: libc::c_int, _info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    let ctx = Context(uc.cast());
    let mut line = record("stop budget", ctx.get(libc::REG_RIP));
    line.text("CPU time budget exceeded (a loop that does not end?)\n");
    stop(&line);
}
