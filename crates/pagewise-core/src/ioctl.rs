//! IOCTL validation and answers.
//!
//! The FFI's `EvtIoDeviceControl` does three things, in this order:
//! 1. [`decode`] the code and the input buffer into a [`Request`] (or an `NTSTATUS` to
//!    complete with). All IOCTLs are `METHOD_BUFFERED`: input and output are the same
//!    system buffer, so the FFI must finish with the input slice (decode copies what it
//!    needs) before it makes the output slice;
//! 2. send the request to its [`Queue`]: queries are answered by the passive-level
//!    control queue; `IOCTL_PAGEWISE_HOLD_D0` is forwarded to the power-managed queue,
//!    whose dispatch brings an idle device back to D0 first;
//! 3. fill the output with one of the `fill_*` functions (or
//!    [`crate::locked::answer`]), which check the output's size and alignment,
//!    never write past it, and return the byte count for the request's `Information`.
//!
//! Input shorter than its structure, misaligned, or with an out-of-range value is
//! `STATUS_INVALID_PARAMETER`; an output too small for the answer is
//! `STATUS_BUFFER_TOO_SMALL`, a misaligned one `STATUS_INVALID_PARAMETER`; an unknown
//! code is `STATUS_INVALID_DEVICE_REQUEST`. Longer buffers are fine: only the structure
//! at their start is read or written.

use core::mem::size_of;

use pagewise_ioctl::{
    Config, HoldD0, INTERFACE_VERSION, IOCTL_PAGEWISE_GET_CONFIG, IOCTL_PAGEWISE_GET_LOG,
    IOCTL_PAGEWISE_GET_STATS, IOCTL_PAGEWISE_GET_VERSION, IOCTL_PAGEWISE_HOLD_D0, LogHeader,
    LogQuery, MAX_HOLD_D0_MS, Stats, VersionInfo, Wire, WireError,
};

use crate::status::{
    NtStatus, STATUS_BUFFER_TOO_SMALL, STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_PARAMETER,
};
use crate::translog::TransitionLog;

/// A validated request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// `IOCTL_PAGEWISE_GET_VERSION`.
    GetVersion,
    /// `IOCTL_PAGEWISE_GET_CONFIG`.
    GetConfig,
    /// `IOCTL_PAGEWISE_GET_STATS`.
    GetStats,
    /// `IOCTL_PAGEWISE_GET_LOG` from this sequence number.
    GetLog {
        /// `LogQuery::first_sequence`.
        first_sequence: u64,
    },
    /// `IOCTL_PAGEWISE_HOLD_D0` for this long (at most `MAX_HOLD_D0_MS`).
    HoldD0 {
        /// `HoldD0::duration_ms`.
        duration_ms: u32,
    },
}

/// The queue a request is served by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queue {
    /// The default queue: not power-managed, `WdfExecutionLevelPassive`. Answers queries
    /// even while the device idles in D3, without waking it.
    Control,
    /// The power-managed queue: dispatching a request to it powers the device up.
    PowerManaged,
}

impl Request {
    /// The queue that serves this request.
    #[must_use]
    pub const fn queue(self) -> Queue {
        match self {
            Request::HoldD0 { .. } => Queue::PowerManaged,
            _ => Queue::Control,
        }
    }

    /// Smallest output buffer the answer needs (for `GetLog`, the header alone).
    #[must_use]
    pub const fn min_output_len(self) -> usize {
        match self {
            Request::GetVersion => size_of::<VersionInfo>(),
            Request::GetConfig => size_of::<Config>(),
            Request::GetStats => size_of::<Stats>(),
            Request::GetLog { .. } => size_of::<LogHeader>(),
            Request::HoldD0 { .. } => 0,
        }
    }

    /// The IOCTL code.
    #[must_use]
    pub const fn code(self) -> u32 {
        match self {
            Request::GetVersion => IOCTL_PAGEWISE_GET_VERSION,
            Request::GetConfig => IOCTL_PAGEWISE_GET_CONFIG,
            Request::GetStats => IOCTL_PAGEWISE_GET_STATS,
            Request::GetLog { .. } => IOCTL_PAGEWISE_GET_LOG,
            Request::HoldD0 { .. } => IOCTL_PAGEWISE_HOLD_D0,
        }
    }
}

/// Validates `code` and `input` (the whole input buffer; empty when the request has
/// none). Queries without input ignore whatever input they are given.
///
/// # Errors
///
/// `STATUS_INVALID_DEVICE_REQUEST` for an unknown code; `STATUS_INVALID_PARAMETER` for
/// input too short, misaligned, or a hold longer than `MAX_HOLD_D0_MS`.
pub fn decode(code: u32, input: &[u8]) -> Result<Request, NtStatus> {
    match code {
        IOCTL_PAGEWISE_GET_VERSION => Ok(Request::GetVersion),
        IOCTL_PAGEWISE_GET_CONFIG => Ok(Request::GetConfig),
        IOCTL_PAGEWISE_GET_STATS => Ok(Request::GetStats),
        IOCTL_PAGEWISE_GET_LOG => {
            let query = LogQuery::read_from(input).map_err(|_| STATUS_INVALID_PARAMETER)?;
            Ok(Request::GetLog {
                first_sequence: query.first_sequence,
            })
        }
        IOCTL_PAGEWISE_HOLD_D0 => {
            decode_hold(code, input).map(|duration_ms| Request::HoldD0 { duration_ms })
        }
        _ => Err(STATUS_INVALID_DEVICE_REQUEST),
    }
}

/// Validates a request that reached the power-managed queue, where only
/// `IOCTL_PAGEWISE_HOLD_D0` belongs, and returns the hold's duration. The same checks as
/// [`decode`] for that code; any other code is `STATUS_INVALID_DEVICE_REQUEST`.
///
/// The queue's handler is resident (it may run at `DISPATCH_LEVEL`), and this is what it
/// re-validates with: one code and one structure, so the decoder of every other request
/// stays in the pageable control queue.
///
/// # Errors
///
/// As [`decode`].
pub fn decode_hold(code: u32, input: &[u8]) -> Result<u32, NtStatus> {
    if code != IOCTL_PAGEWISE_HOLD_D0 {
        return Err(STATUS_INVALID_DEVICE_REQUEST);
    }
    let hold = HoldD0::read_from(input).map_err(|_| STATUS_INVALID_PARAMETER)?;
    if hold.duration_ms > MAX_HOLD_D0_MS {
        return Err(STATUS_INVALID_PARAMETER);
    }
    Ok(hold.duration_ms)
}

/// The status for an output buffer the answer cannot be written to.
#[must_use]
pub const fn output_status(error: WireError) -> NtStatus {
    match error {
        WireError::TooSmall { .. } => STATUS_BUFFER_TOO_SMALL,
        WireError::Misaligned { .. } => STATUS_INVALID_PARAMETER,
    }
}

fn write<T: Wire>(value: &T, out: &mut [u8]) -> Result<usize, NtStatus> {
    value.write_to(out).map_err(output_status)
}

/// Answers `IOCTL_PAGEWISE_GET_VERSION`.
///
/// # Errors
///
/// `STATUS_BUFFER_TOO_SMALL` or `STATUS_INVALID_PARAMETER` (misaligned); `out` untouched.
pub fn fill_version(out: &mut [u8], driver_version: u32) -> Result<usize, NtStatus> {
    let info = VersionInfo {
        interface_version: INTERFACE_VERSION,
        driver_version,
    };
    write(&info, out)
}

/// Answers `IOCTL_PAGEWISE_GET_CONFIG`.
///
/// # Errors
///
/// As [`fill_version`].
pub fn fill_config(out: &mut [u8], config: &Config) -> Result<usize, NtStatus> {
    write(config, out)
}

/// Answers `IOCTL_PAGEWISE_GET_STATS`.
///
/// # Errors
///
/// As [`fill_version`].
pub fn fill_stats(out: &mut [u8], stats: &Stats) -> Result<usize, NtStatus> {
    write(stats, out)
}

/// Answers `IOCTL_PAGEWISE_GET_LOG`: header plus as many records as fit.
///
/// # Errors
///
/// As [`fill_version`], for an output shorter than a [`LogHeader`].
pub fn fill_log(
    out: &mut [u8],
    log: &mut TransitionLog,
    first_sequence: u64,
) -> Result<usize, NtStatus> {
    log.copy_out(first_sequence, out)
        .map(|(_, written)| written)
        .map_err(output_status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pagewise_ioctl::{TransitionRecord, ctl_code};

    const GUARD: u8 = 0xEE;

    /// An 8-aligned buffer with a guard region: tests hand out `[off..off + len]` and
    /// check every byte outside it kept its guard value.
    #[repr(C, align(16))]
    struct Arena([u8; 2048]);

    impl Arena {
        fn new() -> Self {
            Arena([GUARD; 2048])
        }
        fn untouched_outside(&self, off: usize, len: usize) -> bool {
            self.0[..off]
                .iter()
                .chain(&self.0[off + len..])
                .all(|&b| b == GUARD)
        }
    }

    fn log_with(n: u16) -> TransitionLog {
        let mut log = TransitionLog::new();
        for i in 0..n {
            log.push(TransitionRecord {
                callback: i,
                ..TransitionRecord::default()
            });
        }
        log
    }

    /// Runs decode + fill the way the FFI does, on input/output carved out of arenas.
    fn serve(
        code: u32,
        input: &[u8],
        out: &mut [u8],
        log: &mut TransitionLog,
    ) -> Result<usize, NtStatus> {
        match decode(code, input)? {
            Request::GetVersion => fill_version(out, 0x0001_0000),
            Request::GetConfig => fill_config(out, &Config::default()),
            Request::GetStats => fill_stats(out, &Stats::default()),
            Request::GetLog { first_sequence } => fill_log(out, log, first_sequence),
            Request::HoldD0 { .. } => Ok(0),
        }
    }

    #[derive(Clone, Copy, Debug)]
    enum Shape {
        Empty,
        ShortByOne,
        MisalignedBy(usize),
        Exact,
        Oversized,
    }
    const SHAPES: [Shape; 6] = [
        Shape::Empty,
        Shape::ShortByOne,
        Shape::MisalignedBy(1),
        Shape::MisalignedBy(4),
        Shape::Exact,
        Shape::Oversized,
    ];

    /// (offset, len) of a buffer of `size` bytes in `shape`, in an arena.
    fn carve(shape: Shape, size: usize) -> (usize, usize) {
        match shape {
            Shape::Empty => (64, 0),
            Shape::ShortByOne => (64, size.saturating_sub(1)),
            Shape::MisalignedBy(k) => (64 + k, size),
            Shape::Exact => (64, size),
            Shape::Oversized => (64, size + 100),
        }
    }

    fn input_size(code: u32) -> usize {
        match code {
            IOCTL_PAGEWISE_GET_LOG => size_of::<LogQuery>(),
            IOCTL_PAGEWISE_HOLD_D0 => size_of::<HoldD0>(),
            _ => 0,
        }
    }

    fn input_align(code: u32) -> usize {
        match code {
            IOCTL_PAGEWISE_GET_LOG => 8,
            IOCTL_PAGEWISE_HOLD_D0 => 4,
            _ => 1,
        }
    }

    fn output_align(request: Request) -> usize {
        match request {
            Request::GetVersion => core::mem::align_of::<VersionInfo>(),
            Request::GetConfig => core::mem::align_of::<Config>(),
            Request::GetStats => core::mem::align_of::<Stats>(),
            Request::GetLog { .. } => core::mem::align_of::<LogHeader>(),
            Request::HoldD0 { .. } => 1,
        }
    }

    const CODES: [u32; 5] = [
        IOCTL_PAGEWISE_GET_VERSION,
        IOCTL_PAGEWISE_GET_CONFIG,
        IOCTL_PAGEWISE_GET_STATS,
        IOCTL_PAGEWISE_GET_LOG,
        IOCTL_PAGEWISE_HOLD_D0,
    ];

    #[test]
    fn every_code_with_every_input_shape() {
        for code in CODES {
            let needed = input_size(code);
            for shape in SHAPES {
                let mut arena = Arena::new();
                let (off, len) = carve(shape, needed);
                // A valid value in the input: first_sequence 0 / duration 10 ms.
                arena.0[off..off + len].fill(0);
                if code == IOCTL_PAGEWISE_HOLD_D0 && len >= 1 {
                    arena.0[off] = 10;
                }
                let result = decode(code, &arena.0[off..off + len]);
                let ok = match shape {
                    _ if needed == 0 => true,
                    Shape::Empty | Shape::ShortByOne => false,
                    Shape::MisalignedBy(k) => k % input_align(code) == 0,
                    Shape::Exact | Shape::Oversized => true,
                };
                if ok {
                    assert_eq!(result.map(Request::code), Ok(code), "{code:#x} {shape:?}");
                } else {
                    assert_eq!(result, Err(STATUS_INVALID_PARAMETER), "{code:#x} {shape:?}");
                }
            }
        }
    }

    #[test]
    fn every_code_with_every_output_shape_never_writes_outside() {
        for code in CODES {
            let request = decode(code, &[0u8; 16][..input_size(code)]).expect("valid input");
            let needed = request.min_output_len();
            for shape in SHAPES {
                let mut arena = Arena::new();
                let mut log = log_with(3);
                let (off, len) = carve(shape, needed);
                let result = serve(
                    code,
                    &[0; 16][..input_size(code)],
                    &mut arena.0[off..off + len],
                    &mut log,
                );
                assert!(arena.untouched_outside(off, len), "{code:#x} {shape:?}");
                let expected = match shape {
                    _ if needed == 0 => Ok(0),
                    Shape::Empty | Shape::ShortByOne => Err(STATUS_BUFFER_TOO_SMALL),
                    Shape::MisalignedBy(k) if k % output_align(request) != 0 => {
                        Err(STATUS_INVALID_PARAMETER)
                    }
                    Shape::Oversized if code == IOCTL_PAGEWISE_GET_LOG => {
                        // 100 spare bytes hold 3 records of 32.
                        Ok(needed + 3 * size_of::<TransitionRecord>())
                    }
                    Shape::MisalignedBy(_) | Shape::Exact | Shape::Oversized => Ok(needed),
                };
                assert_eq!(result, expected, "{code:#x} {shape:?}");
                if let Ok(written) = result {
                    assert!(written <= len);
                    if written > 0 {
                        assert!(arena.0[off..off + written].iter().any(|&b| b != GUARD));
                    }
                }
            }
        }
    }

    #[test]
    fn answers_decode_back() {
        let mut arena = Arena::new();
        let n = fill_version(&mut arena.0, 0x0102_0300).expect("fits");
        let v = VersionInfo::read_from(&arena.0[..n]).expect("decodes");
        assert_eq!(
            (v.interface_version, v.driver_version),
            (INTERFACE_VERSION, 0x0102_0300)
        );
        let stats = Stats {
            d0_entries: 7,
            log_overwritten: 9,
            ..Stats::default()
        };
        let n = fill_stats(&mut arena.0, &stats).expect("fits");
        assert_eq!(Stats::read_from(&arena.0[..n]), Ok(stats));
        let config = Config {
            idle_timeout_ms: 1234,
            callback_count: 2,
            ..Config::default()
        };
        let n = fill_config(&mut arena.0, &config).expect("fits");
        assert_eq!(Config::read_from(&arena.0[..n]), Ok(config));
    }

    #[test]
    fn unknown_codes_are_invalid_device_requests() {
        let near_misses = [
            0,
            u32::MAX,
            IOCTL_PAGEWISE_GET_VERSION + (5 << 2), // function 0x805: not defined
            IOCTL_PAGEWISE_GET_VERSION | 1,        // METHOD_IN_DIRECT
            IOCTL_PAGEWISE_GET_VERSION ^ (3 << 14), // other access bits
            ctl_code(0x22, 0x800, 0, 0),           // FILE_DEVICE_UNKNOWN, same function
            ctl_code(pagewise_ioctl::FILE_DEVICE_PAGEWISE, 0x805, 0, 2),
        ];
        for code in near_misses {
            assert!(!CODES.contains(&code));
            assert_eq!(
                decode(code, &[0; 64]),
                Err(STATUS_INVALID_DEVICE_REQUEST),
                "{code:#x}"
            );
        }
    }

    #[test]
    fn hold_duration_range() {
        #[repr(C, align(4))]
        struct In([u8; 4]);
        for (ms, ok) in [
            (0, true),
            (1, true),
            (MAX_HOLD_D0_MS, true),
            (MAX_HOLD_D0_MS + 1, false),
            (u32::MAX, false),
        ] {
            let input = In(ms.to_le_bytes());
            let result = decode(IOCTL_PAGEWISE_HOLD_D0, &input.0);
            if ok {
                assert_eq!(result, Ok(Request::HoldD0 { duration_ms: ms }));
            } else {
                assert_eq!(result, Err(STATUS_INVALID_PARAMETER));
            }
        }
    }

    #[test]
    fn log_query_is_passed_through() {
        #[repr(C, align(8))]
        struct In([u8; 8]);
        let input = In(42u64.to_le_bytes());
        assert_eq!(
            decode(IOCTL_PAGEWISE_GET_LOG, &input.0),
            Ok(Request::GetLog { first_sequence: 42 })
        );
    }

    #[test]
    fn queues() {
        assert_eq!(
            Request::HoldD0 { duration_ms: 1 }.queue(),
            Queue::PowerManaged
        );
        for r in [
            Request::GetVersion,
            Request::GetConfig,
            Request::GetStats,
            Request::GetLog { first_sequence: 0 },
        ] {
            assert_eq!(r.queue(), Queue::Control);
        }
    }

    /// The power-managed queue's decoder agrees with the full one: it accepts exactly what
    /// `decode` turns into a `HoldD0`, fails a bad hold with the same status, and refuses
    /// every other code as a request that does not belong on that queue.
    #[test]
    fn hold_decoder_agrees_with_the_full_decoder() {
        let mut arena = Arena([GUARD; 2048]);
        for (i, byte) in arena.0.iter_mut().enumerate().take(16) {
            *byte = u8::try_from(i * 37 % 251).expect("small");
        }
        let codes = [
            IOCTL_PAGEWISE_GET_VERSION,
            IOCTL_PAGEWISE_GET_CONFIG,
            IOCTL_PAGEWISE_GET_STATS,
            IOCTL_PAGEWISE_GET_LOG,
            IOCTL_PAGEWISE_HOLD_D0,
            0,
            u32::MAX,
        ];
        for durations in [0u32, 1, MAX_HOLD_D0_MS, MAX_HOLD_D0_MS + 1, u32::MAX] {
            arena.0[..4].copy_from_slice(&durations.to_le_bytes());
            for code in codes {
                for (offset, len) in [(0, 0), (0, 3), (0, 4), (0, 16), (1, 4), (2, 8)] {
                    let input = &arena.0[offset..offset + len];
                    let full = decode(code, input);
                    let hold = decode_hold(code, input);
                    match full {
                        Ok(Request::HoldD0 { duration_ms }) => assert_eq!(hold, Ok(duration_ms)),
                        _ if code != IOCTL_PAGEWISE_HOLD_D0 => {
                            assert_eq!(hold, Err(STATUS_INVALID_DEVICE_REQUEST));
                        }
                        Ok(other) => panic!("HOLD_D0 decoded as {other:?}"),
                        Err(status) => assert_eq!(hold, Err(status), "{offset} {len}"),
                    }
                }
            }
        }
    }
}
