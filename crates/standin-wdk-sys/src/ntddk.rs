//! The kernel routines the driver calls, with their `wdm.h` signatures, imported from
//! `ntoskrnl.exe` by name (`raw-dylib`: no import library needed). On a non-Windows host
//! (this crate's own tests) the declarations exist without a link attribute; nothing
//! there calls them.

use crate::{KIRQL, NTSTATUS, PCSTR, POOL_FLAGS, PULONG64, PVOID, SIZE_T, ULONG, ULONG64};

#[cfg_attr(
    windows,
    link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")
)]
unsafe extern "C" {
    /// `DbgPrintEx` (wdm.h).
    pub fn DbgPrintEx(ComponentId: ULONG, Level: ULONG, Format: PCSTR, ...) -> ULONG;
    /// `KeGetCurrentIrql` (wdm.h).
    pub fn KeGetCurrentIrql() -> KIRQL;
    /// `KeQueryInterruptTimePrecise` (wdm.h, Windows 8.1 and later).
    pub fn KeQueryInterruptTimePrecise(QpcTimeStamp: PULONG64) -> ULONG64;
    /// `MmLockPagableDataSection` (wdm.h); `MmLockPagableCodeSection` is a macro for it.
    pub fn MmLockPagableDataSection(AddressWithinSection: PVOID) -> PVOID;
    /// `MmLockPagableSectionByHandle` (ntddk.h).
    pub fn MmLockPagableSectionByHandle(ImageSectionHandle: PVOID);
    /// `MmUnlockPagableImageSection` (wdm.h).
    pub fn MmUnlockPagableImageSection(ImageSectionHandle: PVOID);
    /// `ExAllocatePool2` (wdm.h, Windows 10 2004 and later).
    pub fn ExAllocatePool2(Flags: POOL_FLAGS, NumberOfBytes: SIZE_T, Tag: ULONG) -> PVOID;
    /// `ExFreePool` (wdm.h).
    pub fn ExFreePool(P: PVOID);
    /// The C library's memory routines, which the kernel exports and which the compiler
    /// calls for block copies and fills (the WDK's `ntoskrnl.lib` provides them the same
    /// way). Declared here so that the image imports them.
    pub fn memcpy(dest: *mut u8, src: *const u8, count: usize) -> *mut u8;
    pub fn memmove(dest: *mut u8, src: *const u8, count: usize) -> *mut u8;
    pub fn memset(dest: *mut u8, value: i32, count: usize) -> *mut u8;
    pub fn memcmp(left: *const u8, right: *const u8, count: usize) -> i32;
    /// The stack probe the compiler calls in functions with frames over a page (a debug
    /// build of the driver has some); the kernel exports it, as the WDK's `ntoskrnl.lib`
    /// declares.
    pub fn __chkstk();
}

/// Unused here; keeps `NTSTATUS` in the module's vocabulary as in wdk-sys.
#[doc(hidden)]
pub type _Status = NTSTATUS;
