//! The INF's `AddReg` defaults and the settings code agree: same value names, DWORD type, and
//! values that `Settings::from_raw` accepts as given (no clamping, no "invalid" report), that
//! equal the documented defaults and what the driver assumes when a value is absent
//! (`Settings::DEFAULT`). A rename or a new default on one side fails here.

use pagewise_core::settings::{
    DEFAULT_IDLE_TIMEOUT_MS, IDLE_TIMEOUT_MS, POWER_PAGEABLE, RawSettings, SPECIAL_FILE_SUPPORT,
    Settings,
};
use pagewise_ioctl::PageabilityReason;

/// `FLG_ADDREG_TYPE_DWORD` (0x00010001), optionally with `FLG_ADDREG_NOCLOBBER` (0x2).
fn is_dword_flag(flags: &str) -> bool {
    let value = flags
        .strip_prefix("0x")
        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
        .or_else(|| flags.parse().ok());
    value.is_some_and(|v| v & !0x2 == 0x0001_0001)
}

/// `HKR,,<name>,<flags>,<value>` lines of the INF, comments stripped.
fn addreg_values(inf: &str) -> Vec<(String, String, String)> {
    inf.lines()
        .map(|line| line.split(';').next().unwrap_or("").trim())
        .filter(|line| line.starts_with("HKR,"))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            match fields.as_slice() {
                ["HKR", "", name, flags, value] => {
                    Some(((*name).to_owned(), (*flags).to_owned(), (*value).to_owned()))
                }
                _ => None,
            }
        })
        .collect()
}

#[test]
fn inf_defaults_match_the_settings_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../pagewise.inx");
    let inf = std::fs::read_to_string(path).expect("pagewise.inx at the repository root");
    let values = addreg_values(&inf);
    let dword = |name: &str| -> u32 {
        let (_, flags, value) = values
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("pagewise.inx has no AddReg for {name}"));
        assert!(is_dword_flag(flags), "{name} is not a DWORD: {flags}");
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}: {value} is not a number"))
    };
    let raw = RawSettings {
        power_pageable: Some(dword(POWER_PAGEABLE)),
        idle_timeout_ms: Some(dword(IDLE_TIMEOUT_MS)),
        special_file_support: Some(dword(SPECIAL_FILE_SUPPORT)),
    };
    let settings = Settings::from_raw(raw);
    assert_eq!(
        settings.issues, 0,
        "the INF writes a value the driver rejects"
    );
    assert!(
        settings.power_pageable,
        "the INF's default is power-pageable"
    );
    assert_eq!(settings.reason, PageabilityReason::Setting);
    assert_eq!(settings.idle_timeout_ms, DEFAULT_IDLE_TIMEOUT_MS);
    // The root-enumerated software device never hosts a paging, hibernation or dump file,
    // and special-file support keeps PAGEPWR locked from device add to cleanup: off unless
    // an administrator sets SpecialFileSupport=1.
    assert_eq!(
        dword(SPECIAL_FILE_SUPPORT),
        0,
        "the INF turns special-file support off"
    );
    assert!(!settings.special_file_support);
    // An absent value means what the INF writes.
    assert_eq!(
        settings.special_file_support,
        Settings::DEFAULT.special_file_support
    );
    assert_eq!(settings.power_pageable, Settings::DEFAULT.power_pageable);
    assert_eq!(settings.idle_timeout_ms, Settings::DEFAULT.idle_timeout_ms);
    // Every HKR value the INF writes is one the driver reads.
    for (name, _, _) in &values {
        assert!(
            [POWER_PAGEABLE, IDLE_TIMEOUT_MS, SPECIAL_FILE_SUPPORT].contains(&name.as_str()),
            "pagewise.inx writes {name}, which the driver does not read"
        );
    }
}

#[test]
fn the_addreg_reader_is_not_blind() {
    let sample = "[x]\n; HKR,,Commented,0x00010003,9\nHKR,,PowerPageable,0x00010003,0 ; off\nHKR,,Other,0x00010001,7\n";
    let values = addreg_values(sample);
    assert_eq!(
        values,
        [
            (
                "PowerPageable".to_owned(),
                "0x00010003".to_owned(),
                "0".to_owned()
            ),
            ("Other".to_owned(), "0x00010001".to_owned(), "7".to_owned()),
        ]
    );
    assert!(is_dword_flag("0x00010003") && is_dword_flag("65537"));
    assert!(!is_dword_flag("0x00000000") && !is_dword_flag("0x00010000"));
}
