//! Test stand-in for `wdk`: `paged_code!()` counts its calls on the current thread.
//!
//! The real `wdk::paged_code!()` asserts `KeGetCurrentIrql() <= APC_LEVEL` in builds with
//! debug assertions. Here the IRQL check has nothing to check, so the macro records that it
//! ran instead, which lets a test prove the placement attribute inserted it (and only
//! where it belongs). The count is per thread because the test harness runs tests in
//! parallel threads.

use std::cell::Cell;

thread_local! {
    static CALLS: Cell<usize> = const { Cell::new(0) };
}

/// Records one `paged_code!()` call on this thread. Not for direct use.
#[doc(hidden)]
pub fn record_paged_code() {
    CALLS.with(|calls| calls.set(calls.get() + 1));
}

/// How many times `paged_code!()` ran on this thread.
#[must_use]
pub fn paged_code_calls() -> usize {
    CALLS.with(Cell::get)
}

/// Stand-in for `wdk::paged_code!()`.
#[macro_export]
macro_rules! paged_code {
    () => {
        $crate::record_paged_code()
    };
}
