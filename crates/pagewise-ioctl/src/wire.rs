//! Reading and writing the protocol structures from and to raw buffers, checked.

use core::mem::{align_of, size_of};

/// Why a buffer cannot hold a structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// The buffer is shorter than the structure.
    TooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        given: usize,
    },
    /// The buffer does not start at a multiple of the structure's alignment.
    Misaligned {
        /// Alignment needed.
        align: usize,
    },
}

/// A protocol structure: `#[repr(C)]`, no padding, every bit pattern valid.
///
/// # Safety
///
/// Implement only for `#[repr(C)]` types made of integers and arrays of integers with no
/// padding bytes, so that any byte string of the right length is a valid value and every
/// byte of a value is initialised.
pub unsafe trait Wire: Copy + Sized {
    /// Reads a value from the start of `bytes`, which must be long enough and aligned.
    ///
    /// # Errors
    ///
    /// [`WireError::TooSmall`] or [`WireError::Misaligned`].
    fn read_from(bytes: &[u8]) -> Result<Self, WireError> {
        check::<Self>(bytes.as_ptr(), bytes.len())?;
        // SAFETY: `check` proved the buffer holds size_of::<Self>() bytes at an aligned
        // address, and the trait contract makes any byte pattern a valid Self.
        Ok(unsafe { bytes.as_ptr().cast::<Self>().read() })
    }

    /// Writes the value to the start of `out`, which must be long enough and aligned, and
    /// returns the number of bytes written.
    ///
    /// # Errors
    ///
    /// [`WireError::TooSmall`] or [`WireError::Misaligned`]; `out` is untouched then.
    fn write_to(&self, out: &mut [u8]) -> Result<usize, WireError> {
        check::<Self>(out.as_ptr(), out.len())?;
        // SAFETY: `check` proved `out` holds size_of::<Self>() bytes at an aligned address;
        // the exclusive borrow makes the write the only access.
        unsafe { out.as_mut_ptr().cast::<Self>().write(*self) };
        Ok(size_of::<Self>())
    }

    /// The value's bytes.
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: the trait contract says every byte of a value is initialised; the slice
        // borrows `self` and covers exactly its size.
        unsafe {
            core::slice::from_raw_parts(core::ptr::from_ref(self).cast::<u8>(), size_of::<Self>())
        }
    }
}

fn check<T>(ptr: *const u8, len: usize) -> Result<(), WireError> {
    if len < size_of::<T>() {
        return Err(WireError::TooSmall {
            needed: size_of::<T>(),
            given: len,
        });
    }
    if !(ptr as usize).is_multiple_of(align_of::<T>()) {
        return Err(WireError::Misaligned {
            align: align_of::<T>(),
        });
    }
    Ok(())
}

// SAFETY (for each impl below): repr(C), integer fields only, and the compile-time size
// assertions in lib.rs equal the sum of the field sizes, so there is no padding.
macro_rules! wire {
    ($($t:ty),*) => { $(
        // SAFETY: see the comment above the macro.
        unsafe impl Wire for $t {}
    )* };
}
wire!(
    crate::VersionInfo,
    crate::CallbackPlacement,
    crate::Config,
    crate::Stats,
    crate::LogQuery,
    crate::LogHeader,
    crate::TransitionRecord,
    crate::HoldD0
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HoldD0, LogHeader, TransitionRecord};

    #[repr(C, align(8))]
    struct Aligned([u8; 64]);

    #[test]
    fn round_trip_and_errors() {
        let mut buf = Aligned([0; 64]);
        let record = TransitionRecord {
            sequence: 7,
            duration_100ns: 42,
            callback: 6,
            flags: 1,
            status: -1_073_741_823,
            ..TransitionRecord::default()
        };
        assert_eq!(record.write_to(&mut buf.0), Ok(32));
        assert_eq!(TransitionRecord::read_from(&buf.0), Ok(record));
        assert_eq!(record.as_bytes(), &buf.0[..32]);
        assert_eq!(
            TransitionRecord::read_from(&buf.0[..31]),
            Err(WireError::TooSmall {
                needed: 32,
                given: 31
            })
        );
        assert_eq!(
            LogHeader::read_from(&buf.0[4..]),
            Err(WireError::Misaligned { align: 8 })
        );
        let before = buf.0;
        assert!(record.write_to(&mut buf.0[1..]).is_err());
        assert_eq!(before, buf.0, "a failed write leaves the buffer alone");
        assert_eq!(HoldD0::read_from(&buf.0[4..]).map(|h| h.duration_ms), Ok(0));
    }
}
