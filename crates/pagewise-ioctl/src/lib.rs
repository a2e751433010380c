//! The wire protocol between the pagewise driver and user mode.
//!
//! `no_std`, no dependencies: the driver, the portable driver logic and the client all
//! build against this one definition. Every structure is `#[repr(C)]` with explicit
//! sizes checked at compile time, so the C view of it (`pagewise.h`, if one is ever
//! written) can be derived field by field.
//!
//! All IOCTLs are `METHOD_BUFFERED`. Queries need `FILE_READ_ACCESS`; the request that
//! changes device behaviour ([`IOCTL_PAGEWISE_HOLD_D0`]) needs `FILE_WRITE_ACCESS`.
#![no_std]

#[cfg(test)]
extern crate std;

mod wire;
pub use wire::{Wire, WireError};

/// Bumped whenever a structure or code below changes incompatibly. The client refuses a
/// driver whose [`VersionInfo::interface_version`] differs.
pub const INTERFACE_VERSION: u32 = 1;

/// A GUID in its Windows layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guid {
    /// First 32 bits.
    pub data1: u32,
    /// Next 16 bits.
    pub data2: u16,
    /// Next 16 bits.
    pub data3: u16,
    /// Last 64 bits, in byte order.
    pub data4: [u8; 8],
}

/// `{CA7CADA4-F546-4BC0-A665-C7B2097F4F2A}`: the device interface the driver registers
/// and the client looks for.
pub const DEVICE_INTERFACE_GUID: Guid = Guid {
    data1: 0xCA7C_ADA4,
    data2: 0xF546,
    data3: 0x4BC0,
    data4: [0xA6, 0x65, 0xC7, 0xB2, 0x09, 0x7F, 0x4F, 0x2A],
};

/// Device type of the IOCTL codes: in the range 0x8000-0xFFFF that Microsoft leaves to
/// vendors.
pub const FILE_DEVICE_PAGEWISE: u32 = 0x8A17;
/// `METHOD_BUFFERED`.
pub const METHOD_BUFFERED: u32 = 0;
/// `FILE_READ_ACCESS`.
pub const FILE_READ_ACCESS: u32 = 1;
/// `FILE_WRITE_ACCESS`.
pub const FILE_WRITE_ACCESS: u32 = 2;

/// `CTL_CODE` from `devioctl.h`.
#[must_use]
pub const fn ctl_code(device_type: u32, function: u32, method: u32, access: u32) -> u32 {
    (device_type << 16) | (access << 14) | (function << 2) | method
}

/// Output [`VersionInfo`]. Never changes shape, so any client can ask any driver.
pub const IOCTL_PAGEWISE_GET_VERSION: u32 = ctl_code(
    FILE_DEVICE_PAGEWISE,
    0x800,
    METHOD_BUFFERED,
    FILE_READ_ACCESS,
);
/// Output [`Config`].
pub const IOCTL_PAGEWISE_GET_CONFIG: u32 = ctl_code(
    FILE_DEVICE_PAGEWISE,
    0x801,
    METHOD_BUFFERED,
    FILE_READ_ACCESS,
);
/// Output [`Stats`].
pub const IOCTL_PAGEWISE_GET_STATS: u32 = ctl_code(
    FILE_DEVICE_PAGEWISE,
    0x802,
    METHOD_BUFFERED,
    FILE_READ_ACCESS,
);
/// Input [`LogQuery`]; output a [`LogHeader`] followed by `count` [`TransitionRecord`]s,
/// as many as fit the output buffer.
pub const IOCTL_PAGEWISE_GET_LOG: u32 = ctl_code(
    FILE_DEVICE_PAGEWISE,
    0x803,
    METHOD_BUFFERED,
    FILE_READ_ACCESS,
);
/// Input [`HoldD0`]; no output. Goes through the power-managed queue, so it first brings
/// an idle device back to D0, then keeps it there for the given time.
pub const IOCTL_PAGEWISE_HOLD_D0: u32 = ctl_code(
    FILE_DEVICE_PAGEWISE,
    0x804,
    METHOD_BUFFERED,
    FILE_WRITE_ACCESS,
);

/// Longest [`HoldD0::duration_ms`] the driver accepts (10 minutes).
pub const MAX_HOLD_D0_MS: u32 = 600_000;

/// Output of [`IOCTL_PAGEWISE_GET_VERSION`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VersionInfo {
    /// [`INTERFACE_VERSION`] of the driver.
    pub interface_version: u32,
    /// `major << 16 | minor << 8 | patch` of the driver package.
    pub driver_version: u32,
}

/// Why the device is power-pageable or not.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageabilityReason {
    /// No `PowerPageable` value: KMDF's default for a function driver, pageable.
    Default = 0,
    /// `PowerPageable` = 1 in the device's hardware key.
    Setting = 1,
    /// `PowerPageable` held a value other than 0 or 1, so the default was used.
    InvalidSetting = 2,
    /// The device is on a paging, hibernation or crash-dump path: KMDF treats it as
    /// nonpageable whatever was chosen at init.
    SpecialFile = 3,
}

impl PageabilityReason {
    /// Decodes the wire value.
    #[must_use]
    pub const fn from_u32(value: u32) -> Option<Self> {
        match value {
            0 => Some(Self::Default),
            1 => Some(Self::Setting),
            2 => Some(Self::InvalidSetting),
            3 => Some(Self::SpecialFile),
            _ => None,
        }
    }
}

/// Bits of [`Config::special_files`]: the special-file paths the device is on now.
pub mod special_file {
    /// A paging file.
    pub const PAGING: u32 = 1;
    /// The hibernation file.
    pub const HIBERNATION: u32 = 2;
    /// A crash-dump file.
    pub const DUMP: u32 = 4;
    /// The boot path.
    pub const BOOT: u32 = 8;
}

/// Which driver function a placement or log record is about.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallbackId {
    /// `DriverEntry`.
    DriverEntry = 1,
    /// `EvtDriverDeviceAdd`.
    DeviceAdd = 2,
    /// `EvtDriverUnload`.
    DriverUnload = 3,
    /// `EvtDevicePrepareHardware`.
    PrepareHardware = 4,
    /// `EvtDeviceReleaseHardware`.
    ReleaseHardware = 5,
    /// `EvtDeviceD0Entry`.
    D0Entry = 6,
    /// `EvtDeviceD0Exit`.
    D0Exit = 7,
    /// `EvtDeviceSelfManagedIoInit`.
    SelfManagedIoInit = 8,
    /// `EvtDeviceSelfManagedIoRestart`.
    SelfManagedIoRestart = 9,
    /// `EvtDeviceSelfManagedIoSuspend`.
    SelfManagedIoSuspend = 10,
    /// `EvtDeviceSelfManagedIoFlush`.
    SelfManagedIoFlush = 11,
    /// `EvtDeviceSelfManagedIoCleanup`.
    SelfManagedIoCleanup = 12,
    /// `EvtDeviceUsageNotificationEx`.
    UsageNotification = 13,
    /// `EvtCleanupCallback` of the device.
    DeviceContextCleanup = 14,
    /// `EvtIoDeviceControl` of the passive-level control queue.
    ControlIoDeviceControl = 15,
    /// `EvtIoDeviceControl` of the power-managed queue.
    PowerIoDeviceControl = 16,
    /// `EvtTimerFunc` that ends a D0 hold.
    HoldTimer = 17,
    /// `EvtWorkItem` that persists counters.
    PersistWorkItem = 18,
}

impl CallbackId {
    /// Every id, in wire order.
    pub const ALL: [CallbackId; 18] = [
        Self::DriverEntry,
        Self::DeviceAdd,
        Self::DriverUnload,
        Self::PrepareHardware,
        Self::ReleaseHardware,
        Self::D0Entry,
        Self::D0Exit,
        Self::SelfManagedIoInit,
        Self::SelfManagedIoRestart,
        Self::SelfManagedIoSuspend,
        Self::SelfManagedIoFlush,
        Self::SelfManagedIoCleanup,
        Self::UsageNotification,
        Self::DeviceContextCleanup,
        Self::ControlIoDeviceControl,
        Self::PowerIoDeviceControl,
        Self::HoldTimer,
        Self::PersistWorkItem,
    ];

    /// Decodes the wire value.
    #[must_use]
    pub fn from_u16(value: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|id| *id as u16 == value)
    }

    /// The KMDF name of the callback.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::DriverEntry => "DriverEntry",
            Self::DeviceAdd => "EvtDriverDeviceAdd",
            Self::DriverUnload => "EvtDriverUnload",
            Self::PrepareHardware => "EvtDevicePrepareHardware",
            Self::ReleaseHardware => "EvtDeviceReleaseHardware",
            Self::D0Entry => "EvtDeviceD0Entry",
            Self::D0Exit => "EvtDeviceD0Exit",
            Self::SelfManagedIoInit => "EvtDeviceSelfManagedIoInit",
            Self::SelfManagedIoRestart => "EvtDeviceSelfManagedIoRestart",
            Self::SelfManagedIoSuspend => "EvtDeviceSelfManagedIoSuspend",
            Self::SelfManagedIoFlush => "EvtDeviceSelfManagedIoFlush",
            Self::SelfManagedIoCleanup => "EvtDeviceSelfManagedIoCleanup",
            Self::UsageNotification => "EvtDeviceUsageNotificationEx",
            Self::DeviceContextCleanup => "EvtDeviceContextCleanup",
            Self::ControlIoDeviceControl => "EvtIoDeviceControl (control queue)",
            Self::PowerIoDeviceControl => "EvtIoDeviceControl (power-managed queue)",
            Self::HoldTimer => "EvtTimerFunc (D0 hold)",
            Self::PersistWorkItem => "EvtWorkItem (persist counters)",
        }
    }
}

/// Where one registered callback ended up in the loaded image, as the driver's self-check
/// found it in its own section table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallbackPlacement {
    /// A [`CallbackId`].
    pub callback: u16,
    /// A `pagewise_roles::Role` discriminant: the placement the attribute declared.
    pub role: u16,
    /// Name of the image section holding the function, NUL-padded.
    pub section: [u8; 8],
    /// RVA of the function in the image.
    pub rva: u32,
}

/// How many [`CallbackPlacement`]s a [`Config`] holds at most.
pub const MAX_CALLBACKS: usize = 24;

/// Output of [`IOCTL_PAGEWISE_GET_CONFIG`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// 1 when the driver called `WdfDeviceInitSetPowerPageable`, 0 when
    /// `WdfDeviceInitSetPowerNotPageable`.
    pub power_pageable: u32,
    /// A [`PageabilityReason`] for the choice at init.
    pub reason: u32,
    /// [`special_file`] bits the device is on now.
    pub special_files: u32,
    /// 1 while the driver behaves as power-nonpageable (chosen at init, or a special file).
    pub effective_nonpageable: u32,
    /// 1 while the power-down section is locked in memory.
    pub power_down_locked: u32,
    /// S0 idle timeout in milliseconds.
    pub idle_timeout_ms: u32,
    /// Number of valid entries in `callbacks`.
    pub callback_count: u32,
    /// Zero.
    pub reserved: u32,
    /// Placement of each registered callback.
    pub callbacks: [CallbackPlacement; MAX_CALLBACKS],
}

impl Default for Config {
    fn default() -> Self {
        Config {
            power_pageable: 0,
            reason: 0,
            special_files: 0,
            effective_nonpageable: 0,
            power_down_locked: 0,
            idle_timeout_ms: 0,
            callback_count: 0,
            reserved: 0,
            callbacks: [CallbackPlacement::default(); MAX_CALLBACKS],
        }
    }
}

/// Output of [`IOCTL_PAGEWISE_GET_STATS`]. Times are in 100 ns units.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Stats {
    /// `EvtDeviceD0Entry` calls since the device started.
    pub d0_entries: u64,
    /// `EvtDeviceD0Exit` calls since the device started.
    pub d0_exits: u64,
    /// Resumes measured (`EvtDeviceD0Entry` to the end of `EvtDeviceSelfManagedIoRestart`).
    pub resumes: u64,
    /// Time to working of the last resume.
    pub last_resume_100ns: u64,
    /// Shortest time to working.
    pub min_resume_100ns: u64,
    /// Longest time to working.
    pub max_resume_100ns: u64,
    /// Sum of all times to working, for the mean.
    pub total_resume_100ns: u64,
    /// D0 entries recorded in the registry before this start (lifetime count).
    pub persisted_d0_entries: u64,
    /// D0 exits recorded in the registry before this start (lifetime count).
    pub persisted_d0_exits: u64,
    /// Registry writes deferred because the device was in a nonpageable state.
    pub deferred_writes: u64,
    /// Registry writes done.
    pub persisted_writes: u64,
    /// Transition records the ring dropped to make room for newer ones; a reader tells
    /// which of them it missed from `LogHeader::oldest_sequence`.
    pub log_overwritten: u64,
}

/// Input of [`IOCTL_PAGEWISE_GET_LOG`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// Oldest sequence number wanted; older records are skipped, and if it is older than
    /// what the ring still holds the answer starts at the oldest record held.
    pub first_sequence: u64,
}

/// Head of the output of [`IOCTL_PAGEWISE_GET_LOG`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogHeader {
    /// Sequence number the next record will get.
    pub next_sequence: u64,
    /// Sequence number of the oldest record the ring holds.
    pub oldest_sequence: u64,
    /// Records following this header.
    pub count: u32,
    /// Records the ring holds at most.
    pub capacity: u32,
}

/// Bits of [`TransitionRecord::flags`].
pub mod transition_flag {
    /// `WdfDevStateIsNP` was true for the device's power state.
    pub const NONPAGEABLE_STATE: u8 = 1;
    /// The device was power-pageable.
    pub const POWER_PAGEABLE: u8 = 2;
    /// The callback returned a failure status.
    pub const FAILED: u8 = 4;
    /// The power-down section was locked.
    pub const POWER_DOWN_LOCKED: u8 = 8;
}

/// One power transition callback, as the driver logged it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransitionRecord {
    /// Position in the log, from 0.
    pub sequence: u64,
    /// Interrupt time at the callback's start, 100 ns units.
    pub timestamp_100ns: u64,
    /// How long the callback ran, 100 ns units.
    pub duration_100ns: u32,
    /// A [`CallbackId`].
    pub callback: u16,
    /// `WDF_POWER_DEVICE_STATE` the device comes from (`EvtDeviceD0Entry`) or 0.
    pub previous_state: u8,
    /// `WDF_POWER_DEVICE_STATE` the device goes to (`EvtDeviceD0Exit`) or 0.
    pub target_state: u8,
    /// IRQL at the callback's start.
    pub irql: u8,
    /// [`transition_flag`] bits.
    pub flags: u8,
    /// Zero.
    pub reserved: u16,
    /// NTSTATUS the callback returned.
    pub status: i32,
}

/// Input of [`IOCTL_PAGEWISE_HOLD_D0`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HoldD0 {
    /// How long to keep the device in D0, 0 to [`MAX_HOLD_D0_MS`]. 0 only wakes it.
    pub duration_ms: u32,
}

const _: () = {
    use core::mem::{align_of, size_of};
    assert!(size_of::<Guid>() == 16);
    assert!(size_of::<VersionInfo>() == 8);
    assert!(size_of::<CallbackPlacement>() == 16);
    assert!(size_of::<Config>() == 32 + 16 * MAX_CALLBACKS);
    assert!(size_of::<Stats>() == 96);
    assert!(size_of::<LogQuery>() == 8);
    assert!(size_of::<LogHeader>() == 24 && align_of::<LogHeader>() == 8);
    assert!(size_of::<TransitionRecord>() == 32 && align_of::<TransitionRecord>() == 8);
    assert!(size_of::<HoldD0>() == 4);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_ctl_code() {
        // CTL_CODE(0x8A17, 0x800, METHOD_BUFFERED, FILE_READ_ACCESS) computed by hand.
        assert_eq!(IOCTL_PAGEWISE_GET_VERSION, 0x8A17_6000);
        assert_eq!(IOCTL_PAGEWISE_HOLD_D0 >> 14 & 3, FILE_WRITE_ACCESS);
        let codes = [
            IOCTL_PAGEWISE_GET_VERSION,
            IOCTL_PAGEWISE_GET_CONFIG,
            IOCTL_PAGEWISE_GET_STATS,
            IOCTL_PAGEWISE_GET_LOG,
            IOCTL_PAGEWISE_HOLD_D0,
        ];
        for (i, a) in codes.iter().enumerate() {
            assert_eq!(a & 3, METHOD_BUFFERED);
            assert!(codes[i + 1..].iter().all(|b| a != b));
        }
    }

    #[test]
    fn callback_ids_round_trip() {
        for id in CallbackId::ALL {
            assert_eq!(CallbackId::from_u16(id as u16), Some(id));
        }
        assert_eq!(CallbackId::from_u16(0), None);
        assert_eq!(
            PageabilityReason::from_u32(3),
            Some(PageabilityReason::SpecialFile)
        );
        assert_eq!(PageabilityReason::from_u32(4), None);
    }
}
