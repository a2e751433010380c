//! The part of `wdk` 0.5.0's API the pagewise driver uses, for its image built without a WDK
//! (`driver-image`): `nt_success` and `paged_code!`, with the same meaning.
#![no_std]

/// `NT_SUCCESS(status)`: success and informational codes are non-negative.
#[must_use]
pub const fn nt_success(nt_status: wdk_sys::NTSTATUS) -> bool {
    nt_status >= 0
}

/// `PAGED_CODE()`: in builds with debug assertions, asserts that the IRQL is at most
/// `APC_LEVEL`, where a page fault may be taken; nothing otherwise. As wdk 0.5.0's macro.
#[macro_export]
macro_rules! paged_code {
    () => {
        debug_assert!(
            // SAFETY: reading the current IRQL has no precondition.
            u32::from(unsafe { $crate::__wdk_sys::ntddk::KeGetCurrentIrql() })
                <= $crate::__wdk_sys::APC_LEVEL
        );
    };
}

#[doc(hidden)]
pub use wdk_sys as __wdk_sys;

#[cfg(test)]
mod tests {
    use super::nt_success;

    #[test]
    fn success_and_informational_codes_succeed() {
        assert!(nt_success(0));
        assert!(nt_success(0x4000_0000));
        assert!(!nt_success(0x8000_0005_u32.cast_signed()));
        assert!(!nt_success(wdk_sys::STATUS_INVALID_DEVICE_STATE));
    }
}
