//! The IOCTL conversation with the driver, over any [`Transport`].
//!
//! The Windows transport lives in `os.rs`; tests drive the same code with a fake that
//! answers from byte buffers, so every decoding and validation path runs on Linux.

use crate::decode::{self, LogBatch};
use crate::error::{Error, OsError};
use pagewise_ioctl::{
    Config, HoldD0, IOCTL_PAGEWISE_GET_CONFIG, IOCTL_PAGEWISE_GET_LOG, IOCTL_PAGEWISE_GET_STATS,
    IOCTL_PAGEWISE_GET_VERSION, IOCTL_PAGEWISE_HOLD_D0, LogHeader, LogQuery, MAX_HOLD_D0_MS, Stats,
    TransitionRecord, VersionInfo, Wire,
};
use std::mem::size_of;

/// Sends one `METHOD_BUFFERED` IOCTL.
pub trait Transport {
    /// Sends `code` with `input`; the driver writes at most `output.len()` bytes into
    /// `output`. Returns how many it wrote.
    ///
    /// # Errors
    ///
    /// The Win32 error the request completed with.
    fn ioctl(&mut self, code: u32, input: &[u8], output: &mut [u8]) -> Result<usize, OsError>;
}

/// A zeroed byte buffer aligned to 8, the strictest alignment of the protocol structures,
/// so that [`Wire::read_from`] accepts any prefix of it that starts at offset 0.
pub struct AlignedBuf {
    words: Vec<u64>,
    len: usize,
}

impl AlignedBuf {
    /// `len` zero bytes.
    #[must_use]
    pub fn zeroed(len: usize) -> Self {
        AlignedBuf {
            words: vec![0; len.div_ceil(8)],
            len,
        }
    }

    /// The bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `words` owns at least `len` initialised bytes (len.div_ceil(8) u64s), u8
        // has no alignment requirement, and the slice borrows `self`.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }

    /// The bytes, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`; the exclusive borrow of `self` makes this the only view,
        // and any byte pattern is a valid u64.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), self.len) }
    }
}

/// How many transition records one `GET_LOG` asks for. The driver returns as many as fit;
/// [`Client::log_since`] repeats the request until it has caught up.
pub const LOG_CHUNK: usize = 128;

/// Typed requests on a [`Transport`].
pub struct Client<T> {
    transport: T,
}

impl<T: Transport> Client<T> {
    /// Wraps a transport.
    pub fn new(transport: T) -> Self {
        Client { transport }
    }

    /// The transport, for tests that inspect what was sent.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    fn call(
        &mut self,
        code: u32,
        input: &[u8],
        out_len: usize,
    ) -> Result<(AlignedBuf, usize), Error> {
        let mut out = AlignedBuf::zeroed(out_len);
        let written = self.transport.ioctl(code, input, out.bytes_mut())?;
        if written > out_len {
            return Err(Error::Protocol(format!(
                "the driver reported {written} bytes written into a {out_len}-byte buffer"
            )));
        }
        Ok((out, written))
    }

    /// `IOCTL_PAGEWISE_GET_VERSION`.
    ///
    /// # Errors
    ///
    /// OS failure, or a short answer.
    pub fn version(&mut self) -> Result<VersionInfo, Error> {
        let (out, n) = self.call(IOCTL_PAGEWISE_GET_VERSION, &[], size_of::<VersionInfo>())?;
        decode::exact::<VersionInfo>(&out.bytes()[..n], "VersionInfo")
    }

    /// Asks for the version and refuses a driver of another interface version.
    ///
    /// # Errors
    ///
    /// [`Error::VersionMismatch`], or what [`Client::version`] returns.
    pub fn check_version(&mut self) -> Result<VersionInfo, Error> {
        let info = self.version()?;
        decode::check_interface(&info)?;
        Ok(info)
    }

    /// `IOCTL_PAGEWISE_GET_CONFIG`, validated.
    ///
    /// # Errors
    ///
    /// OS failure or an invalid answer.
    pub fn config(&mut self) -> Result<Config, Error> {
        let (out, n) = self.call(IOCTL_PAGEWISE_GET_CONFIG, &[], size_of::<Config>())?;
        let config = decode::exact::<Config>(&out.bytes()[..n], "Config")?;
        decode::validate_config(&config)?;
        Ok(config)
    }

    /// `IOCTL_PAGEWISE_GET_STATS`, validated.
    ///
    /// # Errors
    ///
    /// OS failure or an invalid answer.
    pub fn stats(&mut self) -> Result<Stats, Error> {
        let (out, n) = self.call(IOCTL_PAGEWISE_GET_STATS, &[], size_of::<Stats>())?;
        let stats = decode::exact::<Stats>(&out.bytes()[..n], "Stats")?;
        decode::validate_stats(&stats)?;
        Ok(stats)
    }

    /// One `IOCTL_PAGEWISE_GET_LOG` starting at `first_sequence`.
    ///
    /// # Errors
    ///
    /// OS failure or an invalid answer.
    pub fn log_once(&mut self, first_sequence: u64) -> Result<LogBatch, Error> {
        let query = LogQuery { first_sequence };
        let len = size_of::<LogHeader>() + LOG_CHUNK * size_of::<TransitionRecord>();
        let (out, n) = self.call(IOCTL_PAGEWISE_GET_LOG, query.as_bytes(), len)?;
        decode::log(&out.bytes()[..n], first_sequence)
    }

    /// Every record from `first_sequence` up to what the driver has logged now, in as
    /// many `GET_LOG` requests as it takes.
    ///
    /// # Errors
    ///
    /// OS failure or an invalid answer.
    pub fn log_since(&mut self, first_sequence: u64) -> Result<LogBatch, Error> {
        let mut all = self.log_once(first_sequence)?;
        // Each round either ends or advances the cursor by at least one record, and the
        // driver's ring is finite, but a driver that logs faster than we read could keep
        // us here: stop after a generous number of rounds and read the rest next time.
        for _ in 0..64 {
            let Some(last) = all.records.last() else {
                break;
            };
            let cursor = last.sequence + 1;
            if cursor >= all.header.next_sequence {
                break;
            }
            let more = self.log_once(cursor)?;
            if more.records.is_empty() {
                break;
            }
            all.lost += more.lost;
            all.header = more.header;
            all.records.extend(more.records);
        }
        Ok(all)
    }

    /// `IOCTL_PAGEWISE_HOLD_D0`: wakes an idle device, then keeps it in D0 for
    /// `duration_ms`.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] above [`MAX_HOLD_D0_MS`], or OS failure.
    pub fn hold(&mut self, duration_ms: u32) -> Result<(), Error> {
        if duration_ms > MAX_HOLD_D0_MS {
            return Err(Error::Usage(format!(
                "hold: {duration_ms} ms is more than the driver's limit of {MAX_HOLD_D0_MS} ms"
            )));
        }
        let input = HoldD0 { duration_ms };
        self.call(IOCTL_PAGEWISE_HOLD_D0, input.as_bytes(), 0)?;
        Ok(())
    }
}

/// Splits a `REG_MULTI_SZ`-style list (what `CM_Get_Device_Interface_ListW` returns) into
/// its strings, without their terminators. Stops at the empty string that ends the list or
/// at the end of the buffer, whichever comes first.
#[must_use]
pub fn split_multi_sz(list: &[u16]) -> Vec<&[u16]> {
    let mut out = Vec::new();
    let mut rest = list;
    while let Some(end) = rest.iter().position(|&c| c == 0) {
        if end == 0 {
            break;
        }
        out.push(&rest[..end]);
        rest = &rest[end + 1..];
    }
    if !rest.is_empty() && !rest.contains(&0) {
        // An unterminated last string: take it rather than read past the buffer.
        out.push(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wide(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn multi_sz_lists() {
        let mut list = wide("\\\\?\\ROOT#PAGEWISE#0000#{ca7cada4}");
        list.push(0);
        list.extend(wide("second"));
        list.extend([0, 0, 0x41]);
        let parts = split_multi_sz(&list);
        assert_eq!(parts.len(), 2);
        assert_eq!(String::from_utf16_lossy(parts[1]), "second");
        assert!(
            split_multi_sz(&[0, 0]).is_empty(),
            "an empty list is one NUL"
        );
        assert!(split_multi_sz(&[]).is_empty());
        assert_eq!(split_multi_sz(&wide("cut")), vec![&wide("cut")[..]]);
    }

    #[test]
    fn aligned_buffer_is_aligned_and_sized() {
        for len in [0, 1, 7, 8, 9, 4120] {
            let mut buf = AlignedBuf::zeroed(len);
            assert_eq!(buf.bytes().len(), len);
            assert_eq!(buf.bytes_mut().as_ptr() as usize % 8, 0);
            assert!(buf.bytes().iter().all(|&b| b == 0));
        }
    }
}
