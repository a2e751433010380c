//! The `NTSTATUS` values the driver's decisions produce.
//!
//! Defined here, not taken from `wdk-sys`, because this crate builds without the WDK.
//! They are the values of `ntstatus.h`; the FFI passes them on unchanged.

/// An `NTSTATUS`: negative is an error, as `NT_SUCCESS` tests.
pub type NtStatus = i32;

/// Reinterprets the `0xC...` spelling of `ntstatus.h` as the signed value.
const fn nt(value: u32) -> NtStatus {
    i32::from_ne_bytes(value.to_ne_bytes())
}

/// `STATUS_SUCCESS`.
pub const STATUS_SUCCESS: NtStatus = 0;
/// `STATUS_INVALID_PARAMETER` (0xC000000D): input too small, misaligned or out of range.
pub const STATUS_INVALID_PARAMETER: NtStatus = nt(0xC000_000D);
/// `STATUS_INVALID_DEVICE_REQUEST` (0xC0000010): an IOCTL code the driver does not know.
pub const STATUS_INVALID_DEVICE_REQUEST: NtStatus = nt(0xC000_0010);
/// `STATUS_BUFFER_TOO_SMALL` (0xC0000023): the output buffer cannot hold the answer.
pub const STATUS_BUFFER_TOO_SMALL: NtStatus = nt(0xC000_0023);
/// `STATUS_INVALID_DEVICE_STATE` (0xC0000184): the request does not fit the device's
/// state (a special-file notification after cleanup began).
pub const STATUS_INVALID_DEVICE_STATE: NtStatus = nt(0xC000_0184);

/// `NT_SUCCESS(status)`.
#[must_use]
pub const fn nt_success(status: NtStatus) -> bool {
    status >= 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_ntstatus_h() {
        assert_eq!(STATUS_INVALID_PARAMETER, -1_073_741_811);
        assert_eq!(STATUS_INVALID_DEVICE_REQUEST, -1_073_741_808);
        assert_eq!(STATUS_BUFFER_TOO_SMALL, -1_073_741_789);
        assert_eq!(STATUS_INVALID_DEVICE_STATE.cast_unsigned(), 0xC000_0184);
        assert!(nt_success(STATUS_SUCCESS));
        assert!(nt_success(0x0000_0103)); // STATUS_PENDING is a success code
        for error in [
            STATUS_INVALID_PARAMETER,
            STATUS_INVALID_DEVICE_REQUEST,
            STATUS_BUFFER_TOO_SMALL,
            STATUS_INVALID_DEVICE_STATE,
        ] {
            assert!(!nt_success(error));
        }
    }
}
