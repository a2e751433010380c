//! Per-device settings, read from the device's hardware registry key.
//!
//! The INF's `AddReg` writes the defaults; an administrator may change them (the device
//! must be restarted for them to take effect). `EvtDriverDeviceAdd` opens the key with
//! `WdfFdoInitOpenRegistryKey(PLUGPLAY_REGKEY_DEVICE)`, reads each DWORD into a
//! [`RawSettings`] (`None` when the value is absent or not a `REG_DWORD`), and calls
//! [`Settings::from_raw`] before `WdfDeviceCreate`, because
//! `WdfDeviceInitSetPowerPageable`/`WdfDeviceInitSetPowerNotPageable` only work on the
//! `WDFDEVICE_INIT`.
//!
//! | value | type | default | range | effect |
//! |---|---|---|---|---|
//! | `PowerPageable` | DWORD | absent = 1 | 0 or 1 | 1: `WdfDeviceInitSetPowerPageable`; 0: `WdfDeviceInitSetPowerNotPageable` |
//! | `IdleTimeoutMs` | DWORD | 5000 | 1000..=600000, clamped | S0 idle timeout for `WdfDeviceAssignS0IdleSettings` |
//! | `SpecialFileSupport` | DWORD | 0 | 0 or 1 | 1: `WdfDeviceSetSpecialFileSupport` for paging, hibernation and dump |
//!
//! The driver also keeps two counters in the same key, written at pageable points
//! ([`crate::deferred`]): [`LIFETIME_D0_ENTRIES`] and [`LIFETIME_D0_EXITS`].

use pagewise_ioctl::PageabilityReason;

/// Defines a value name as `&str` (for docs and the INF test) and as UTF-16 without a
/// terminating NUL, the form a `UNICODE_STRING` needs (`Length = 2 * len`).
macro_rules! value_name {
    ($(#[$doc:meta])* $name:ident, $wide:ident = $text:literal) => {
        $(#[$doc])*
        pub const $name: &str = $text;
        /// UTF-16 form of the value name above, for `RtlInitUnicodeString`-free
        /// `UNICODE_STRING`s: no terminating NUL.
        pub const $wide: &[u16] = &ascii_to_utf16::<{ $text.len() }>($text);
    };
}

value_name!(
    /// DWORD: 1 = power-pageable, 0 = power-nonpageable. Absent: pageable (KMDF's default).
    POWER_PAGEABLE, POWER_PAGEABLE_W = "PowerPageable"
);
value_name!(
    /// DWORD: S0 idle timeout in milliseconds, [`MIN_IDLE_TIMEOUT_MS`]..=[`MAX_IDLE_TIMEOUT_MS`].
    IDLE_TIMEOUT_MS, IDLE_TIMEOUT_MS_W = "IdleTimeoutMs"
);
value_name!(
    /// DWORD: 1 = call `WdfDeviceSetSpecialFileSupport` for paging, hibernation and dump
    /// files, 0 = do not (the framework then fails those usage notifications). Absent: 0.
    /// Off by default: the root-enumerated software device never hosts such a file, and
    /// with support on the power-down section stays locked for the device's whole life
    /// ([`crate::pageability`]).
    SPECIAL_FILE_SUPPORT, SPECIAL_FILE_SUPPORT_W = "SpecialFileSupport"
);
value_name!(
    /// DWORD counter: `EvtDeviceD0Entry` calls over the device's lifetime.
    LIFETIME_D0_ENTRIES, LIFETIME_D0_ENTRIES_W = "LifetimeD0Entries"
);
value_name!(
    /// DWORD counter: `EvtDeviceD0Exit` calls over the device's lifetime.
    LIFETIME_D0_EXITS, LIFETIME_D0_EXITS_W = "LifetimeD0Exits"
);

/// The device object's security descriptor, for `WdfDeviceInitAssignSDDLString`: a
/// protected DACL (`P`, no inherited entries) that grants all access (`GA`) to the local
/// system (`SY`) and built-in administrators (`BA`), and nothing to anyone else. The same
/// string as `wdmsec.h`'s `SDDL_DEVOBJ_SYS_ALL_ADM_ALL`. Without it the device would get
/// the default descriptor of its class, and any account that can open it for write could
/// hold it in D0 with `IOCTL_PAGEWISE_HOLD_D0`, renewing the hold for as long as it likes.
pub const DEVICE_SDDL: &str = "D:P(A;;GA;;;SY)(A;;GA;;;BA)";
/// [`DEVICE_SDDL`] in UTF-16, no terminating NUL (a `UNICODE_STRING`'s buffer).
pub const DEVICE_SDDL_W: &[u16] = &ascii_to_utf16::<{ DEVICE_SDDL.len() }>(DEVICE_SDDL);

/// Widens an ASCII string to UTF-16 at compile time; a non-ASCII byte or a wrong `N` is
/// a compile error, never a run-time failure.
// Evaluated only in the `const` items above, so its indexing (and asserts) run in the
// compiler: no panic path reaches the driver image.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
const fn ascii_to_utf16<const N: usize>(text: &str) -> [u16; N] {
    let bytes = text.as_bytes();
    assert!(bytes.len() == N, "length mismatch");
    let mut out = [0u16; N];
    let mut i = 0;
    while i < N {
        assert!(bytes[i].is_ascii(), "value names are ASCII");
        out[i] = bytes[i] as u16;
        i += 1;
    }
    out
}

/// KMDF's default S0 idle timeout, which the INF also writes.
pub const DEFAULT_IDLE_TIMEOUT_MS: u32 = 5_000;
/// Shortest accepted idle timeout: below one second the device would bounce between D0
/// and D3 on every pause of a client, which tests nothing and wears the log.
pub const MIN_IDLE_TIMEOUT_MS: u32 = 1_000;
/// Longest accepted idle timeout: ten minutes.
pub const MAX_IDLE_TIMEOUT_MS: u32 = 600_000;

/// The values as read from the registry; `None` for an absent value (or one of the
/// wrong type, which the FFI cannot read as a DWORD).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawSettings {
    /// [`POWER_PAGEABLE`].
    pub power_pageable: Option<u32>,
    /// [`IDLE_TIMEOUT_MS`].
    pub idle_timeout_ms: Option<u32>,
    /// [`SPECIAL_FILE_SUPPORT`].
    pub special_file_support: Option<u32>,
}

/// Bits of [`Settings::issues`]: which values were present but unusable. The driver
/// logs them once at `EvtDriverDeviceAdd`; the defaults are used in their place.
pub mod issue {
    /// `PowerPageable` was neither 0 nor 1.
    pub const POWER_PAGEABLE_INVALID: u32 = 1;
    /// `IdleTimeoutMs` was outside the accepted range and was clamped.
    pub const IDLE_TIMEOUT_CLAMPED: u32 = 2;
    /// `SpecialFileSupport` was neither 0 nor 1.
    pub const SPECIAL_FILE_SUPPORT_INVALID: u32 = 4;
}

/// The settings the driver acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// True: call `WdfDeviceInitSetPowerPageable`; false: `WdfDeviceInitSetPowerNotPageable`.
    pub power_pageable: bool,
    /// Why `power_pageable` has its value.
    pub reason: PageabilityReason,
    /// S0 idle timeout for `WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS::IdleTimeout`.
    pub idle_timeout_ms: u32,
    /// True: call `WdfDeviceSetSpecialFileSupport(.., TRUE)` for paging, hibernation and dump.
    pub special_file_support: bool,
    /// [`issue`] bits.
    pub issues: u32,
}

impl Settings {
    /// What the driver does with no registry values at all: the INF's defaults.
    pub const DEFAULT: Settings = Settings {
        power_pageable: true,
        reason: PageabilityReason::Default,
        idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
        special_file_support: false,
        issues: 0,
    };

    /// Turns registry values into settings: absent values take the default, invalid
    /// ones take the default and set an [`issue`] bit, an out-of-range timeout is
    /// clamped into range and flagged.
    #[must_use]
    pub const fn from_raw(raw: RawSettings) -> Settings {
        let mut settings = Settings::DEFAULT;
        match raw.power_pageable {
            None => {}
            Some(value @ (0 | 1)) => {
                settings.power_pageable = value == 1;
                settings.reason = PageabilityReason::Setting;
            }
            Some(_) => {
                settings.reason = PageabilityReason::InvalidSetting;
                settings.issues |= issue::POWER_PAGEABLE_INVALID;
            }
        }
        if let Some(value) = raw.idle_timeout_ms {
            let clamped = if value < MIN_IDLE_TIMEOUT_MS {
                MIN_IDLE_TIMEOUT_MS
            } else if value > MAX_IDLE_TIMEOUT_MS {
                MAX_IDLE_TIMEOUT_MS
            } else {
                value
            };
            if clamped != value {
                settings.issues |= issue::IDLE_TIMEOUT_CLAMPED;
            }
            settings.idle_timeout_ms = clamped;
        }
        match raw.special_file_support {
            None => {}
            Some(value @ (0 | 1)) => settings.special_file_support = value == 1,
            Some(_) => settings.issues |= issue::SPECIAL_FILE_SUPPORT_INVALID,
        }
        settings
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(p: Option<u32>, t: Option<u32>, s: Option<u32>) -> RawSettings {
        RawSettings {
            power_pageable: p,
            idle_timeout_ms: t,
            special_file_support: s,
        }
    }

    #[test]
    fn absent_values_take_defaults() {
        let s = Settings::from_raw(RawSettings::default());
        assert_eq!(s, Settings::DEFAULT);
        assert!(s.power_pageable);
        assert_eq!(s.reason, PageabilityReason::Default);
        assert_eq!(s.idle_timeout_ms, 5_000);
        assert!(!s.special_file_support);
        assert_eq!(s.issues, 0);
        assert_eq!(Settings::default(), s);
    }

    #[test]
    fn power_pageable_values() {
        let on = Settings::from_raw(raw(Some(1), None, None));
        assert!(on.power_pageable);
        assert_eq!(on.reason, PageabilityReason::Setting);
        let off = Settings::from_raw(raw(Some(0), None, None));
        assert!(!off.power_pageable);
        assert_eq!(off.reason, PageabilityReason::Setting);
        assert_eq!(off.issues, 0);
        for bad in [2, 0xFFFF_FFFF, 0x100] {
            let s = Settings::from_raw(raw(Some(bad), None, None));
            assert!(s.power_pageable, "invalid falls back to the default");
            assert_eq!(s.reason, PageabilityReason::InvalidSetting);
            assert_eq!(s.issues, issue::POWER_PAGEABLE_INVALID);
        }
    }

    #[test]
    fn idle_timeout_is_clamped_and_flagged() {
        let cases = [
            (0, MIN_IDLE_TIMEOUT_MS, true),
            (999, 1_000, true),
            (1_000, 1_000, false),
            (5_000, 5_000, false),
            (600_000, 600_000, false),
            (600_001, MAX_IDLE_TIMEOUT_MS, true),
            (u32::MAX, MAX_IDLE_TIMEOUT_MS, true),
        ];
        for (given, expected, flagged) in cases {
            let s = Settings::from_raw(raw(None, Some(given), None));
            assert_eq!(s.idle_timeout_ms, expected, "{given}");
            assert_eq!(
                s.issues & issue::IDLE_TIMEOUT_CLAMPED != 0,
                flagged,
                "{given}"
            );
            assert_eq!(
                s.reason,
                PageabilityReason::Default,
                "timeout leaves reason"
            );
        }
    }

    #[test]
    fn special_file_support_values() {
        assert!(!Settings::from_raw(raw(None, None, Some(0))).special_file_support);
        assert!(Settings::from_raw(raw(None, None, Some(1))).special_file_support);
        let bad = Settings::from_raw(raw(None, None, Some(7)));
        assert!(
            !bad.special_file_support,
            "invalid falls back to the default, off"
        );
        assert_eq!(bad.issues, issue::SPECIAL_FILE_SUPPORT_INVALID);
    }

    #[test]
    fn issues_accumulate() {
        let s = Settings::from_raw(raw(Some(3), Some(1), Some(3)));
        assert_eq!(
            s.issues,
            issue::POWER_PAGEABLE_INVALID
                | issue::IDLE_TIMEOUT_CLAMPED
                | issue::SPECIAL_FILE_SUPPORT_INVALID
        );
    }

    /// Issue 18, point 6: the device is open to the system and administrators only. The
    /// descriptor is protected, allows exactly those two, and denies nothing by omission
    /// to them: every ACE is an allow with generic-all.
    #[test]
    fn the_device_descriptor_admits_system_and_administrators_only() {
        assert_eq!(
            std::string::String::from_utf16(DEVICE_SDDL_W).expect("utf16"),
            DEVICE_SDDL
        );
        let dacl = DEVICE_SDDL
            .strip_prefix("D:P")
            .expect("a protected DACL, nothing else");
        let aces: std::vec::Vec<&str> = dacl
            .trim_start_matches('(')
            .trim_end_matches(')')
            .split(")(")
            .collect();
        let mut trustees: std::vec::Vec<&str> = aces
            .iter()
            .map(|ace| {
                let fields: std::vec::Vec<&str> = ace.split(';').collect();
                assert_eq!(fields.len(), 6, "{ace}");
                assert_eq!((fields[0], fields[1], fields[2]), ("A", "", "GA"), "{ace}");
                fields[5]
            })
            .collect();
        trustees.sort_unstable();
        assert_eq!(trustees, ["BA", "SY"]);
    }

    #[test]
    fn wide_names_match() {
        for (narrow, wide) in [
            (POWER_PAGEABLE, POWER_PAGEABLE_W),
            (IDLE_TIMEOUT_MS, IDLE_TIMEOUT_MS_W),
            (SPECIAL_FILE_SUPPORT, SPECIAL_FILE_SUPPORT_W),
            (LIFETIME_D0_ENTRIES, LIFETIME_D0_ENTRIES_W),
            (LIFETIME_D0_EXITS, LIFETIME_D0_EXITS_W),
        ] {
            assert_eq!(
                std::string::String::from_utf16(wide).expect("utf16"),
                narrow
            );
            assert!(!wide.contains(&0));
        }
    }
}
