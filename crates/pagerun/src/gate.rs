//! The gates every kernel routine and framework method the host implements is reached
//! through: the import address table and the `WdfFunctions` table point at a small thunk per
//! routine, which calls [`check`] with the routine's number and the caller's registers and
//! stack, then jumps to the implementation with every argument register intact.
//!
//! [`check`] holds each call against the routine's contract (crate `routine-contracts`, one row
//! per reference page): the highest IRQL the page allows for the call's arguments, and whether
//! the call touches pageable data outside the driver (a file, the registry, paged pool) while
//! the paging disk is off. It also remembers the call site, so that whatever the routine's
//! implementation finds wrong (a bad handle, a lock released twice) is charged to the driver's
//! instruction that called it, with its source line.
//!
//! Thunk, per routine (48-byte slot):
//!
//! ```text
//! mov r10, <routine number>
//! mov r11, <implementation>
//! jmp [rip + 0]            ; -> gate_common
//! ```
//!
//! `gate_common` saves the four argument registers and R11, calls [`check`] with the number and
//! a pointer to what it saved, restores them and jumps to R11. R10 and R11 are volatile in the
//! Windows x64 convention and carry no argument, so the implementation sees the driver's call
//! exactly as made. No routine the host implements takes a floating-point argument, so the
//! XMM registers [`check`] may clobber carry none either.

use std::sync::OnceLock;

use routine_contracts::{Access, Contract, Irql};

use crate::host;
use crate::machine;

/// Bytes per thunk.
const SLOT: usize = 48;

/// One gated routine.
#[derive(Debug)]
pub struct Entry {
    /// The routine's name (`KeSetEvent`, `WdfRegistryQueryULong`).
    pub name: String,
    /// Its contract, when the table has a row for it.
    pub contract: Option<&'static Contract>,
}

static ENTRIES: OnceLock<Vec<Entry>> = OnceLock::new();

/// Builds the thunks while the image is being bound; [`Gates::finish`] makes them executable.
pub struct Gates {
    base: usize,
    capacity: usize,
    entries: Vec<Entry>,
}

impl Gates {
    /// Room for `capacity` gated routines.
    ///
    /// # Errors
    /// The mapping failed.
    pub fn new(capacity: usize) -> Result<Gates, String> {
        let len = (capacity.max(1) * SLOT).div_ceil(0x1000) * 0x1000;
        // SAFETY: a fresh anonymous mapping, written here and made read+execute in `finish`.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err("cannot map the routine gates".to_owned());
        }
        Ok(Gates {
            base: base as usize,
            capacity: len / SLOT,
            entries: Vec::with_capacity(capacity),
        })
    }

    /// The address the driver is to call for `name`, whose implementation is at
    /// `implementation`; `None` when the gates are full (the caller then binds the
    /// implementation directly, unchecked).
    pub fn wrap(&mut self, name: &str, implementation: usize) -> Option<usize> {
        let index = self.entries.len();
        if index >= self.capacity {
            return None;
        }
        self.entries.push(Entry {
            name: name.to_owned(),
            contract: routine_contracts::lookup(name),
        });
        let at = self.base + index * SLOT;
        let mut code = [0u8; 34];
        code[0..2].copy_from_slice(&[0x49, 0xBA]);
        code[2..10].copy_from_slice(&(index as u64).to_le_bytes());
        code[10..12].copy_from_slice(&[0x49, 0xBB]);
        code[12..20].copy_from_slice(&(implementation as u64).to_le_bytes());
        code[20..26].copy_from_slice(&[0xFF, 0x25, 0, 0, 0, 0]);
        code[26..34].copy_from_slice(&(gate_common as *const () as usize as u64).to_le_bytes());
        // SAFETY: slot `index` lies inside the writable mapping made in `new`.
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), at as *mut u8, code.len()) };
        Some(at)
    }

    /// How many routines are gated, and how many of them have a contract.
    #[must_use]
    pub fn counts(&self) -> (usize, usize) {
        (
            self.entries.len(),
            self.entries.iter().filter(|e| e.contract.is_some()).count(),
        )
    }

    /// Makes the thunks executable and publishes the entries for [`check`].
    pub fn finish(self) {
        let len = (self.capacity * SLOT).div_ceil(0x1000) * 0x1000;
        // SAFETY: the mapping made in `new`, fully written; from now on it is only executed.
        unsafe {
            libc::mprotect(
                self.base as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_EXEC,
            );
        }
        let _ = ENTRIES.set(self.entries);
    }
}

/// The shared part of every gate (see the module documentation for the frame it builds).
///
/// On entry RSP is 8 modulo 16 (the driver's `call` pushed its return address); five pushes
/// make it 0, and the 32 bytes of shadow space keep it so for the call of [`check`].
#[unsafe(naked)]
unsafe extern "C" fn gate_common() {
    core::arch::naked_asm!(
        "push rcx",
        "push rdx",
        "push r8",
        "push r9",
        "push r11",
        "sub rsp, 0x20",
        "mov rcx, r10",
        "lea rdx, [rsp + 0x20]",
        "call {check}",
        "add rsp, 0x20",
        "pop r11",
        "pop r9",
        "pop r8",
        "pop rdx",
        "pop rcx",
        "jmp r11",
        check = sym check,
    );
}

/// Argument `k` of the call whose registers `gate_common` saved at `frame`: `frame[0]` R11,
/// `[1]` R9, `[2]` R8, `[3]` RDX, `[4]` RCX, `[5]` the return address, `[6..10]` the caller's
/// shadow space, `[10..]` the arguments from the fifth on.
///
/// # Safety
/// `frame` is the frame `gate_common` built, and the routine takes more than `k` arguments (so
/// the caller wrote stack argument `k`).
unsafe fn argument(frame: *const u64, k: u8) -> u64 {
    let slot = match k {
        0 => 4,
        1 => 3,
        2 => 2,
        3 => 1,
        k => 6 + usize::from(k),
    };
    // SAFETY: per the function's contract.
    unsafe { frame.add(slot).read() }
}

/// The numeric IRQL a contract's level stands for: `DIRQL` is the highest device level
/// (below the clock and IPI levels), `HIGH_LEVEL` anything.
#[must_use]
pub const fn level(irql: Irql) -> u8 {
    match irql {
        Irql::Passive => machine::PASSIVE_LEVEL,
        Irql::Apc => machine::APC_LEVEL,
        Irql::Dispatch => machine::DISPATCH_LEVEL,
        Irql::Dirql => 12,
        Irql::High => machine::HIGH_LEVEL,
    }
}

/// What a call of `contract` with `argument` (the value of its deciding argument) breaks at
/// `irql`, with the paging disk `disk_off`: `(kind, message)` pairs.
#[must_use]
pub fn judge(
    contract: &Contract,
    argument: Option<u64>,
    irql: u8,
    disk_off: bool,
) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    let limit = contract.irql_limit(argument);
    if irql > level(limit) {
        let why = if limit == contract.max_irql {
            String::new()
        } else {
            format!(
                " with this value of argument {} (at most {} for other values)",
                contract.lower.map_or(0, |l| l.argument),
                contract.max_irql.name()
            )
        };
        found.push((
            "irql",
            format!(
                "{} called at IRQL {irql} ({}); its reference page allows at most {}{why} ({})",
                contract.name,
                host::irql_name(irql),
                limit.name(),
                contract.reference
            ),
        ));
    }
    if disk_off {
        let what = match contract.access(argument) {
            Access::File => Some("a file"),
            Access::Registry => Some("the registry"),
            Access::PagedPool | Access::PoolUnknown => Some("paged pool"),
            Access::None => None,
        };
        if let Some(what) = what {
            found.push((
                "paging",
                format!(
                    "{} touches {what} while the paging disk may be off (a power-nonpageable device \
                     in a system power transition): call it only when WdfDevStateIsNP is FALSE, or \
                     keep the device power-pageable",
                    contract.name
                ),
            ));
        }
    }
    found
}

/// Called by every gate before the routine runs: remembers the call site and checks the
/// routine's contract.
extern "win64" fn check(index: u64, frame: *const u64) {
    // SAFETY: `gate_common` passes the frame it built; slot 5 is the driver's return address.
    let returns_to = unsafe { frame.add(5).read() };
    // An address inside the call instruction, so that the function and line are the call's.
    let site = returns_to.wrapping_sub(1);
    machine::set_call_site(site);
    let Some(entry) = ENTRIES
        .get()
        .and_then(|e| e.get(usize::try_from(index).ok()?))
    else {
        return;
    };
    let Some(contract) = entry.contract else {
        return;
    };
    let argument = contract
        .argument_of_interest()
        // SAFETY: the table's deciding argument is one the routine takes, so the caller
        // passed it (in a register or its stack slot).
        .map(|k| unsafe { argument(frame, k) });
    for (kind, message) in judge(contract, argument, machine::irql(), machine::disk_off()) {
        host::violation(kind, site, &message);
    }
}

/// The routines gated so far, by gate number (for the report's counts).
#[must_use]
pub fn entries() -> &'static [Entry] {
    ENTRIES.get().map_or(&[], Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(name: &str) -> &'static Contract {
        routine_contracts::lookup(name).unwrap_or_else(|| panic!("{name} has a row"))
    }

    #[test]
    fn irql_above_the_page_is_a_violation_and_at_it_is_not() {
        let query = contract("WdfRegistryQueryULong");
        assert!(judge(query, None, 0, false).is_empty());
        let found = judge(query, None, 2, false);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "irql");
        assert!(found[0].1.contains("PASSIVE_LEVEL"), "{}", found[0].1);
        assert!(judge(contract("KeStallExecutionProcessor"), None, 12, false).is_empty());
    }

    #[test]
    fn the_deciding_argument_lowers_the_limit() {
        let set = contract("KeSetEvent");
        // Wait = FALSE at DISPATCH_LEVEL is allowed; Wait = TRUE is not.
        assert!(judge(set, Some(0), 2, false).is_empty());
        let found = judge(set, Some(1), 2, false);
        assert_eq!(found.len(), 1);
        assert!(found[0].1.contains("APC_LEVEL"), "{}", found[0].1);
        let pool = contract("ExAllocatePool2");
        assert!(judge(pool, Some(routine_contracts::POOL_FLAG_NON_PAGED), 2, false).is_empty());
        assert_eq!(
            judge(pool, Some(routine_contracts::POOL_FLAG_PAGED), 2, false).len(),
            1
        );
    }

    #[test]
    fn pageable_data_matters_only_while_the_disk_is_off() {
        let assign = contract("WdfRegistryAssignULong");
        assert!(judge(assign, None, 0, false).is_empty());
        let found = judge(assign, None, 0, true);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "paging");
        assert!(found[0].1.contains("the registry"), "{}", found[0].1);
        let pool = contract("ExAllocatePoolWithTag");
        // NonPagedPoolNx while the disk is off: fine; PagedPool: not.
        assert!(judge(pool, Some(routine_contracts::NON_PAGED_POOL_NX), 0, true).is_empty());
        let found = judge(pool, Some(routine_contracts::PAGED_POOL), 0, true);
        assert_eq!(found.len(), 1);
        assert!(found[0].1.contains("paged pool"), "{}", found[0].1);
        assert!(judge(contract("KeSetEvent"), Some(0), 0, true).is_empty());
    }

    #[test]
    fn stack_arguments_are_read_past_the_shadow_space() {
        // The frame gate_common builds: R11, R9, R8, RDX, RCX, return, 4 shadow slots, args 4+.
        let frame: [u64; 12] = [11, 9, 8, 2, 1, 0xAAAA, 0, 0, 0, 0, 40, 50];
        // SAFETY: a frame of the layout `argument` reads, long enough for arguments 0 to 5.
        let read = |k| unsafe { argument(frame.as_ptr(), k) };
        assert_eq!(
            (0..6).map(read).collect::<Vec<_>>(),
            vec![1, 2, 8, 9, 40, 50]
        );
    }
}
