//! Decoding and validating what the driver returns.
//!
//! The driver is trusted to follow the protocol, but a client that prints garbage from a
//! mismatched or buggy driver as if it were data misleads whoever reads the numbers, so
//! every field with a closed set of values is checked and a violation is an error.

use crate::error::Error;
use pagewise_ioctl::{
    CallbackId, CallbackPlacement, Config, INTERFACE_VERSION, LogHeader, MAX_CALLBACKS,
    PageabilityReason, Stats, TransitionRecord, VersionInfo, Wire, special_file, transition_flag,
};
use pagewise_roles::{Role, section};
use std::mem::size_of;

/// Reads a `T` from an answer that must be exactly its size.
///
/// # Errors
///
/// [`Error::Protocol`] when the answer has another length or is misaligned.
pub fn exact<T: Wire>(bytes: &[u8], name: &str) -> Result<T, Error> {
    if bytes.len() != size_of::<T>() {
        return Err(Error::Protocol(format!(
            "{name}: {} bytes returned, {} expected",
            bytes.len(),
            size_of::<T>()
        )));
    }
    T::read_from(bytes).map_err(|e| Error::Protocol(format!("{name}: {e:?}")))
}

/// Refuses a driver of another interface version.
///
/// # Errors
///
/// [`Error::VersionMismatch`].
pub fn check_interface(info: &VersionInfo) -> Result<(), Error> {
    if info.interface_version == INTERFACE_VERSION {
        Ok(())
    } else {
        Err(Error::VersionMismatch {
            driver: info.interface_version,
            client: INTERFACE_VERSION,
        })
    }
}

/// `major.minor.patch` of [`VersionInfo::driver_version`].
#[must_use]
pub fn driver_version_string(packed: u32) -> String {
    format!(
        "{}.{}.{}",
        packed >> 16,
        (packed >> 8) & 0xFF,
        packed & 0xFF
    )
}

fn flag(value: u32, field: &str) -> Result<bool, Error> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(Error::Protocol(format!(
            "Config.{field} = {other}, expected 0 or 1"
        ))),
    }
}

/// Checks every field of a [`Config`] with a closed set of values.
///
/// # Errors
///
/// [`Error::Protocol`] naming the first bad field.
pub fn validate_config(config: &Config) -> Result<(), Error> {
    flag(config.power_pageable, "power_pageable")?;
    flag(config.effective_nonpageable, "effective_nonpageable")?;
    flag(config.power_down_locked, "power_down_locked")?;
    if PageabilityReason::from_u32(config.reason).is_none() {
        return Err(Error::Protocol(format!(
            "Config.reason = {}",
            config.reason
        )));
    }
    let known =
        special_file::PAGING | special_file::HIBERNATION | special_file::DUMP | special_file::BOOT;
    if config.special_files & !known != 0 {
        return Err(Error::Protocol(format!(
            "Config.special_files = {:#x} has unknown bits",
            config.special_files
        )));
    }
    let count = config.callback_count as usize;
    if count > MAX_CALLBACKS {
        return Err(Error::Protocol(format!(
            "Config.callback_count = {count}, at most {MAX_CALLBACKS}"
        )));
    }
    for (i, placement) in config.callbacks[..count].iter().enumerate() {
        if CallbackId::from_u16(placement.callback).is_none() {
            return Err(Error::Protocol(format!(
                "Config.callbacks[{i}].callback = {}",
                placement.callback
            )));
        }
        if Role::from_u16(placement.role).is_none() {
            return Err(Error::Protocol(format!(
                "Config.callbacks[{i}].role = {}",
                placement.role
            )));
        }
        section_name(&placement.section)
            .map_err(|why| Error::Protocol(format!("Config.callbacks[{i}].section: {why}")))?;
    }
    Ok(())
}

/// The section name of a placement: printable ASCII up to the first NUL, NULs after it.
///
/// # Errors
///
/// A description of what is wrong with the bytes.
pub fn section_name(raw: &[u8; 8]) -> Result<&str, String> {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    if end == 0 {
        return Err("empty".into());
    }
    if raw[end..].iter().any(|&b| b != 0) {
        return Err("bytes after the terminating NUL".into());
    }
    let name = &raw[..end];
    if !name.iter().all(u8::is_ascii_graphic) {
        return Err(format!("not printable ASCII: {name:02x?}"));
    }
    std::str::from_utf8(name).map_err(|e| e.to_string())
}

/// What a callback's actual section means for its declared role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// In the section its role puts it in.
    Expected,
    /// Elsewhere, harmlessly (e.g. a pageable role that ended up resident).
    Differs,
    /// A resident role (power-up or dispatch) in a pageable or discardable section: the
    /// bug this project exists to prevent.
    Violation,
}

impl Placement {
    /// The word shown in tables and JSON.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Placement::Expected => "ok",
            Placement::Differs => "differs",
            Placement::Violation => "VIOLATION",
        }
    }
}

/// Judges one placement. Call after [`validate_config`].
#[must_use]
pub fn judge(placement: &CallbackPlacement) -> Placement {
    let (Some(role), Ok(name)) = (
        Role::from_u16(placement.role),
        section_name(&placement.section),
    ) else {
        return Placement::Violation;
    };
    if role.is_resident() && (section::is_pageable(name) || section::is_init(name)) {
        Placement::Violation
    } else if name == role.section() {
        Placement::Expected
    } else {
        Placement::Differs
    }
}

/// Checks the internal consistency of [`Stats`]: the resume-time aggregates must agree.
///
/// # Errors
///
/// [`Error::Protocol`] naming the broken relation.
pub fn validate_stats(stats: &Stats) -> Result<(), Error> {
    let bad = |what: &str| Err(Error::Protocol(format!("Stats: {what}")));
    if stats.resumes > stats.d0_entries {
        return bad("more resumes than D0 entries");
    }
    if stats.resumes == 0 {
        if stats.last_resume_100ns != 0
            || stats.max_resume_100ns != 0
            || stats.total_resume_100ns != 0
        {
            return bad("resume times without any resume");
        }
        return Ok(());
    }
    if stats.min_resume_100ns > stats.max_resume_100ns {
        return bad("min_resume > max_resume");
    }
    if !(stats.min_resume_100ns..=stats.max_resume_100ns).contains(&stats.last_resume_100ns) {
        return bad("last_resume outside [min_resume, max_resume]");
    }
    if stats.total_resume_100ns < stats.max_resume_100ns {
        return bad("total_resume < max_resume");
    }
    Ok(())
}

/// A decoded `GET_LOG` answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogBatch {
    /// The header as returned.
    pub header: LogHeader,
    /// The records, oldest first, sequences strictly increasing.
    pub records: Vec<TransitionRecord>,
    /// Records between the requested start and the oldest one the ring still held: the
    /// ring overwrote them before they were read.
    pub lost: u64,
}

/// Decodes and validates a `GET_LOG` answer for a query that started at `first_sequence`.
///
/// # Errors
///
/// [`Error::Protocol`] for a short or inconsistent answer.
pub fn log(bytes: &[u8], first_sequence: u64) -> Result<LogBatch, Error> {
    let bad = |what: String| Err(Error::Protocol(format!("log: {what}")));
    let header_len = size_of::<LogHeader>();
    let record_len = size_of::<TransitionRecord>();
    if bytes.len() < header_len {
        return bad(format!(
            "{} bytes returned, the header alone is {header_len}",
            bytes.len()
        ));
    }
    let header = LogHeader::read_from(bytes).map_err(|e| Error::Protocol(format!("log: {e:?}")))?;
    if header.oldest_sequence > header.next_sequence {
        return bad(format!(
            "oldest sequence {} after next sequence {}",
            header.oldest_sequence, header.next_sequence
        ));
    }
    if header.count > header.capacity {
        return bad(format!(
            "{} records from a ring of {}",
            header.count, header.capacity
        ));
    }
    let count = header.count as usize;
    let needed = header_len + count * record_len;
    if bytes.len() < needed {
        return bad(format!(
            "header announces {count} records ({needed} bytes), {} bytes returned",
            bytes.len()
        ));
    }
    let start = first_sequence.max(header.oldest_sequence);
    let mut records = Vec::with_capacity(count);
    for (i, expected) in (0..count).zip(start..) {
        let at = header_len + i * record_len;
        let record = TransitionRecord::read_from(&bytes[at..at + record_len])
            .map_err(|e| Error::Protocol(format!("log record {i}: {e:?}")))?;
        if record.sequence != expected {
            return bad(format!(
                "record {i} has sequence {}, expected {expected}",
                record.sequence
            ));
        }
        if record.sequence >= header.next_sequence {
            return bad(format!(
                "record {i} has sequence {} at or past next sequence {}",
                record.sequence, header.next_sequence
            ));
        }
        if CallbackId::from_u16(record.callback).is_none() {
            return bad(format!("record {i} has callback id {}", record.callback));
        }
        let known = transition_flag::NONPAGEABLE_STATE
            | transition_flag::POWER_PAGEABLE
            | transition_flag::FAILED
            | transition_flag::POWER_DOWN_LOCKED;
        if record.flags & !known != 0 {
            return bad(format!("record {i} has unknown flags {:#x}", record.flags));
        }
        records.push(record);
    }
    Ok(LogBatch {
        header,
        records,
        lost: header.oldest_sequence.saturating_sub(first_sequence),
    })
}

/// Name of a `WDF_POWER_DEVICE_STATE` value.
#[must_use]
pub fn power_state_name(state: u8) -> String {
    match state {
        0 => "-".into(),
        1 => "D0".into(),
        2 => "D1".into(),
        3 => "D2".into(),
        4 => "D3".into(),
        5 => "D3Final".into(),
        6 => "Hibernate".into(),
        other => format!("?{other}"),
    }
}

/// Name of an IRQL.
#[must_use]
pub fn irql_name(irql: u8) -> String {
    match irql {
        0 => "PASSIVE".into(),
        1 => "APC".into(),
        2 => "DISPATCH".into(),
        other => other.to_string(),
    }
}

/// Names of the [`special_file`] bits set.
#[must_use]
pub fn special_file_names(bits: u32) -> Vec<&'static str> {
    [
        (special_file::PAGING, "paging"),
        (special_file::HIBERNATION, "hibernation"),
        (special_file::DUMP, "dump"),
        (special_file::BOOT, "boot"),
    ]
    .into_iter()
    .filter(|(bit, _)| bits & bit != 0)
    .map(|(_, name)| name)
    .collect()
}

/// Words for a [`PageabilityReason`].
#[must_use]
pub const fn reason_text(reason: PageabilityReason) -> &'static str {
    match reason {
        PageabilityReason::Default => "default (no PowerPageable value)",
        PageabilityReason::Setting => "PowerPageable registry value",
        PageabilityReason::InvalidSetting => "PowerPageable value invalid, default used",
        PageabilityReason::SpecialFile => "on a paging/hibernation/dump path",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::device::AlignedBuf;
    use pagewise_ioctl::MAX_CALLBACKS;

    pub(crate) fn placement(callback: CallbackId, role: Role, section: &str) -> CallbackPlacement {
        let mut name = [0u8; 8];
        name[..section.len()].copy_from_slice(section.as_bytes());
        CallbackPlacement {
            callback: callback as u16,
            role: role as u16,
            section: name,
            rva: 0x1000,
        }
    }

    pub(crate) fn good_config() -> Config {
        let mut config = Config {
            power_pageable: 1,
            reason: PageabilityReason::Setting as u32,
            idle_timeout_ms: 2000,
            callback_count: 3,
            ..Config::default()
        };
        config.callbacks[0] = placement(CallbackId::D0Entry, Role::PowerUp, ".text");
        config.callbacks[1] = placement(CallbackId::D0Exit, Role::PowerDown, "PAGEPWR");
        config.callbacks[2] = placement(CallbackId::DeviceAdd, Role::Paged, "PAGE");
        config
    }

    /// Serialises a log answer: header then records, in an aligned buffer.
    pub(crate) fn log_bytes(header: LogHeader, records: &[TransitionRecord]) -> AlignedBuf {
        let mut buf = AlignedBuf::zeroed(24 + 32 * records.len());
        header.write_to(buf.bytes_mut()).expect("header fits");
        for (i, r) in records.iter().enumerate() {
            r.write_to(&mut buf.bytes_mut()[24 + 32 * i..])
                .expect("record fits");
        }
        buf
    }

    pub(crate) fn record(
        sequence: u64,
        callback: CallbackId,
        timestamp: u64,
        duration: u32,
    ) -> TransitionRecord {
        TransitionRecord {
            sequence,
            timestamp_100ns: timestamp,
            duration_100ns: duration,
            callback: callback as u16,
            ..TransitionRecord::default()
        }
    }

    #[test]
    fn exact_size_is_required() {
        let mut buf = AlignedBuf::zeroed(16);
        VersionInfo {
            interface_version: INTERFACE_VERSION,
            driver_version: 0x0001_0203,
        }
        .write_to(buf.bytes_mut())
        .expect("fits");
        let info = exact::<VersionInfo>(&buf.bytes()[..8], "VersionInfo").expect("valid");
        assert_eq!(driver_version_string(info.driver_version), "1.2.3");
        assert!(check_interface(&info).is_ok());
        for len in [0, 4, 7, 9, 16] {
            let err =
                exact::<VersionInfo>(&buf.bytes()[..len], "VersionInfo").expect_err("wrong size");
            assert_eq!(err.exit_status().code(), 1);
        }
        let old = VersionInfo {
            interface_version: INTERFACE_VERSION - 1,
            driver_version: 0,
        };
        assert_eq!(
            check_interface(&old),
            Err(Error::VersionMismatch {
                driver: INTERFACE_VERSION - 1,
                client: INTERFACE_VERSION
            })
        );
    }

    #[test]
    fn config_validation_rejects_each_bad_field() {
        type Spoil = fn(&mut Config);
        assert!(validate_config(&good_config()).is_ok());
        let cases: [(&str, Spoil); 8] = [
            ("power_pageable", |c| c.power_pageable = 2),
            ("power_down_locked", |c| c.power_down_locked = 7),
            ("reason", |c| c.reason = 9),
            ("special_files", |c| c.special_files = 0x10),
            ("callback_count", |c| {
                // One past the array; the exact bound is checked below.
                c.callback_count = 25;
            }),
            ("callbacks[1].callback", |c| c.callbacks[1].callback = 0),
            ("callbacks[2].role", |c| c.callbacks[2].role = 6),
            ("callbacks[0].section", |c| {
                c.callbacks[0].section = *b".te\0xt\0\0";
            }),
        ];
        for (field, spoil) in cases {
            let mut config = good_config();
            spoil(&mut config);
            let err = validate_config(&config).expect_err(field).to_string();
            assert!(err.contains(field), "{err} names {field}");
        }
        assert_eq!(MAX_CALLBACKS, 24, "the case above is one past the array");
        let mut full = good_config();
        full.callback_count = 24;
        for slot in &mut full.callbacks[3..] {
            *slot = placement(CallbackId::HoldTimer, Role::Dispatch, ".text");
        }
        assert!(validate_config(&full).is_ok(), "a full array is valid");
        // Entries past callback_count are not looked at.
        let mut config = good_config();
        config.callbacks[5].callback = 999;
        assert!(validate_config(&config).is_ok());
    }

    #[test]
    fn section_names() {
        assert_eq!(section_name(b"PAGEPWR\0"), Ok("PAGEPWR"));
        assert_eq!(section_name(b".text\0\0\0"), Ok(".text"));
        assert_eq!(section_name(b"ABCDEFGH"), Ok("ABCDEFGH"));
        assert!(section_name(&[0; 8]).is_err());
        assert!(section_name(b"PA E\0\0\0\0").is_err());
        assert!(section_name(b"PAGE\0\0\0x").is_err());
    }

    #[test]
    fn placements_are_judged_by_role() {
        let ok = placement(CallbackId::D0Entry, Role::PowerUp, ".text");
        assert_eq!(judge(&ok), Placement::Expected);
        for bad in ["PAGE", "PAGEPWR", "INIT"] {
            let p = placement(CallbackId::SelfManagedIoRestart, Role::PowerUp, bad);
            assert_eq!(judge(&p), Placement::Violation, "power-up in {bad}");
            let p = placement(CallbackId::PowerIoDeviceControl, Role::Dispatch, bad);
            assert_eq!(judge(&p), Placement::Violation, "dispatch in {bad}");
        }
        // A pageable function the linker left resident wastes memory but is safe.
        let p = placement(CallbackId::DeviceAdd, Role::Paged, ".text");
        assert_eq!(judge(&p), Placement::Differs);
        let p = placement(CallbackId::D0Exit, Role::PowerDown, "PAGEPWR");
        assert_eq!(judge(&p), Placement::Expected);
    }

    #[test]
    fn stats_consistency() {
        let good = Stats {
            d0_entries: 5,
            d0_exits: 4,
            resumes: 4,
            last_resume_100ns: 300,
            min_resume_100ns: 200,
            max_resume_100ns: 400,
            total_resume_100ns: 1200,
            ..Stats::default()
        };
        assert!(validate_stats(&good).is_ok());
        assert!(
            validate_stats(&Stats {
                d0_entries: 1,
                ..Stats::default()
            })
            .is_ok()
        );
        let spoilt = [
            Stats { resumes: 6, ..good },
            Stats {
                min_resume_100ns: 500,
                ..good
            },
            Stats {
                last_resume_100ns: 401,
                ..good
            },
            Stats {
                last_resume_100ns: 199,
                ..good
            },
            Stats {
                total_resume_100ns: 399,
                ..good
            },
            Stats { resumes: 0, ..good },
        ];
        for stats in spoilt {
            assert!(validate_stats(&stats).is_err(), "{stats:?}");
        }
    }

    #[test]
    fn log_answers_are_checked() {
        let header = LogHeader {
            next_sequence: 12,
            oldest_sequence: 8,
            count: 2,
            capacity: 4,
        };
        let records = [
            record(10, CallbackId::D0Exit, 100, 5),
            record(11, CallbackId::D0Entry, 900, 7),
        ];
        let buf = log_bytes(header, &records);
        let batch = log(buf.bytes(), 10).expect("valid");
        assert_eq!(batch.records, records);
        assert_eq!(batch.lost, 0);

        // Asking for records the ring no longer holds: the answer starts at the oldest one.
        let from_oldest = [
            record(8, CallbackId::D0Exit, 1, 1),
            record(9, CallbackId::D0Entry, 2, 1),
        ];
        let buf = log_bytes(header, &from_oldest);
        assert_eq!(log(buf.bytes(), 3).expect("valid").lost, 5);

        // Truncated: the header announces two records, one and a half are there.
        let buf = log_bytes(header, &records);
        let err = log(&buf.bytes()[..24 + 48], 10).expect_err("short");
        assert!(err.to_string().contains("announces 2 records"), "{err}");
        assert!(log(&buf.bytes()[..20], 10).is_err());

        let spoil = |header: LogHeader, records: &[TransitionRecord], first: u64| {
            let buf = log_bytes(header, records);
            log(buf.bytes(), first).expect_err("invalid").to_string()
        };
        let gap = [
            record(10, CallbackId::D0Exit, 1, 1),
            record(12, CallbackId::D0Entry, 2, 1),
        ];
        assert!(
            spoil(
                LogHeader {
                    next_sequence: 13,
                    ..header
                },
                &gap,
                10
            )
            .contains("expected 11")
        );
        assert!(
            spoil(
                LogHeader {
                    next_sequence: 11,
                    ..header
                },
                &records,
                10
            )
            .contains("past next")
        );
        assert!(
            spoil(
                LogHeader {
                    oldest_sequence: 13,
                    ..header
                },
                &records,
                10
            )
            .contains("after next")
        );
        assert!(
            spoil(
                LogHeader {
                    capacity: 1,
                    ..header
                },
                &records,
                10
            )
            .contains("ring of 1")
        );
        let mut unknown = records;
        unknown[1].callback = 77;
        assert!(spoil(header, &unknown, 10).contains("callback id 77"));
        unknown = records;
        unknown[0].flags = 0x40;
        assert!(spoil(header, &unknown, 10).contains("unknown flags"));
    }

    #[test]
    fn names() {
        assert_eq!(power_state_name(4), "D3");
        assert_eq!(power_state_name(5), "D3Final");
        assert_eq!(power_state_name(42), "?42");
        assert_eq!(irql_name(2), "DISPATCH");
        assert_eq!(
            special_file_names(special_file::PAGING | special_file::DUMP),
            ["paging", "dump"]
        );
        assert!(special_file_names(0).is_empty());
    }
}
