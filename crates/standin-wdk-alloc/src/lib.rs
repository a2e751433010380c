//! `WdkAllocator` as wdk-alloc 0.4.2 has it, for the pagewise driver's image built without a
//! WDK: allocations from nonpaged pool (`ExAllocatePool2(POOL_FLAG_NON_PAGED, ..)`), freed
//! with `ExFreePool`. The driver allocates nothing; `#[global_allocator]` needs one to exist.
#![no_std]

use core::alloc::{GlobalAlloc, Layout};

/// `POOL_FLAG_NON_PAGED` (wdm.h): nonpaged, no-execute pool.
const POOL_FLAG_NON_PAGED: wdk_sys::POOL_FLAGS = 0x0000_0000_0000_0040;
/// The pool tag wdk-alloc uses, `"rust"` as the tag's bytes in memory.
const RUST_TAG: wdk_sys::ULONG = u32::from_le_bytes(*b"rust");

/// The global allocator of a KMDF driver: nonpaged pool.
pub struct WdkAllocator;

// SAFETY: ExAllocatePool2 returns memory aligned to at least 16 bytes (the pool's
// alignment on x64) or null, and every pointer freed here came from it.
unsafe impl GlobalAlloc for WdkAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() > 16 {
            return core::ptr::null_mut();
        }
        let size = wdk_sys::SIZE_T::try_from(layout.size()).unwrap_or(wdk_sys::SIZE_T::MAX);
        // SAFETY: any IRQL up to DISPATCH_LEVEL for nonpaged pool; the size is the layout's.
        unsafe { wdk_sys::ntddk::ExAllocatePool2(POOL_FLAG_NON_PAGED, size, RUST_TAG).cast() }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from `alloc` (GlobalAlloc's contract).
        unsafe { wdk_sys::ntddk::ExFreePool(ptr.cast()) }
    }
}
