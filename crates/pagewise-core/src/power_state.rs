//! WDF power-state values and the NP test.
//!
//! `WdfDevStateIsNP` is an inline function in `wdfdevice.h`, not a framework export, so
//! `wdk-sys` has no binding for it: the driver writes it itself.
//! Every `WDF_DEVICE_POWER_STATE` the framework uses while the device is
//! power-nonpageable has bit 0x8000 set (`WdfDevStatePowerD0NP`, ...).

/// `WdfDevStateNP`: the bit of a `WDF_DEVICE_POWER_STATE` (or power-policy state) that
/// marks the nonpageable variant of a state.
pub const WDF_DEV_STATE_NP: u32 = 0x8000;

/// `WdfDevStateIsNP(state)`: true when `state`, a value returned by
/// `WdfDeviceGetDevicePowerState` or `WdfDeviceGetDevicePowerPolicyState`, is a
/// nonpageable state. While it is, the driver must not touch the registry, files, paged
/// pool or pageable code. The FFI passes the C enum's `int` reinterpreted as `u32`.
#[must_use]
#[inline]
pub const fn wdf_dev_state_is_np(state: u32) -> bool {
    state & WDF_DEV_STATE_NP != 0
}

/// `WDF_POWER_DEVICE_STATE`: the device power state a D0 transition comes from or goes to.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerDeviceState {
    /// `WdfPowerDeviceInvalid`.
    Invalid = 0,
    /// `WdfPowerDeviceD0`.
    D0 = 1,
    /// `WdfPowerDeviceD1`.
    D1 = 2,
    /// `WdfPowerDeviceD2`.
    D2 = 3,
    /// `WdfPowerDeviceD3`: a low-power state the device comes back from (S0 idle, sleep).
    D3 = 4,
    /// `WdfPowerDeviceD3Final`: the device is being stopped or removed, or is starting
    /// for the first time.
    D3Final = 5,
    /// `WdfPowerDevicePrepareForHibernation`: `D0Exit` before hibernation, on a device on
    /// the hibernation path (it stays powered).
    PrepareForHibernation = 6,
    /// `WdfPowerDeviceMaximum`.
    Maximum = 7,
}

impl PowerDeviceState {
    /// Every value, in encoding order.
    pub const ALL: [PowerDeviceState; 8] = [
        Self::Invalid,
        Self::D0,
        Self::D1,
        Self::D2,
        Self::D3,
        Self::D3Final,
        Self::PrepareForHibernation,
        Self::Maximum,
    ];

    /// Decodes a `WDF_POWER_DEVICE_STATE` (the C enum's `int` reinterpreted as `u32`).
    #[must_use]
    pub const fn from_u32(value: u32) -> Option<Self> {
        Some(match value {
            0 => Self::Invalid,
            1 => Self::D0,
            2 => Self::D1,
            3 => Self::D2,
            4 => Self::D3,
            5 => Self::D3Final,
            6 => Self::PrepareForHibernation,
            7 => Self::Maximum,
            _ => return None,
        })
    }

    /// The value stored in a `TransitionRecord`'s state bytes: the state itself, or
    /// 0xFF for a value this crate does not know (a newer framework), so the log still
    /// shows something was odd.
    #[must_use]
    pub const fn log_byte(value: u32) -> u8 {
        match Self::from_u32(value) {
            Some(state) => state as u8,
            None => 0xFF,
        }
    }

    /// The framework's name, for the client and the tests. The driver never formats it.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Invalid => "WdfPowerDeviceInvalid",
            Self::D0 => "WdfPowerDeviceD0",
            Self::D1 => "WdfPowerDeviceD1",
            Self::D2 => "WdfPowerDeviceD2",
            Self::D3 => "WdfPowerDeviceD3",
            Self::D3Final => "WdfPowerDeviceD3Final",
            Self::PrepareForHibernation => "WdfPowerDevicePrepareForHibernation",
            Self::Maximum => "WdfPowerDeviceMaximum",
        }
    }

    /// True for a state a `D0Entry` comes back from without a restart: D1, D2 or D3. A
    /// `D0Entry` from `D3Final` is a (re)start, for which KMDF calls
    /// `EvtDeviceSelfManagedIoInit` (first start) or `EvtDeviceSelfManagedIoRestart`
    /// (restart after a `PnP` stop).
    #[must_use]
    pub const fn is_low_power(self) -> bool {
        matches!(self, Self::D1 | Self::D2 | Self::D3)
    }

    /// True when a `D0Entry` whose `PreviousState` is `value` is a resume, the return of
    /// a device that was working before: from D1, D2 or D3 (S0 idle or a system sleep),
    /// or from `PrepareForHibernation`, the state KMDF records for a device on the
    /// hibernation path that left D0 for S4. A `D0Entry` from `D3Final` is a start: the
    /// first one, or the one after a `PnP` stop (a rebalance, `devcon restart`). KMDF
    /// follows the latter with `EvtDeviceSelfManagedIoRestart` as it does a resume, so
    /// only the previous state tells them apart. Unknown values are not resumes.
    #[must_use]
    pub const fn is_resume_from(value: u32) -> bool {
        match Self::from_u32(value) {
            Some(state) => state.is_low_power() || matches!(state, Self::PrepareForHibernation),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn np_bit() {
        // Only bit 15 decides, whatever the base state number is.
        assert!(!wdf_dev_state_is_np(0x307));
        assert!(wdf_dev_state_is_np(0x8000 | 0x307));
        assert!(wdf_dev_state_is_np(0xFFFF_FFFF));
        assert!(!wdf_dev_state_is_np(0x7FFF));
        assert!(!wdf_dev_state_is_np(0x1_0000));
    }

    #[test]
    fn states_round_trip() {
        for (i, state) in PowerDeviceState::ALL.into_iter().enumerate() {
            let value = u32::try_from(i).expect("small");
            assert_eq!(PowerDeviceState::from_u32(value), Some(state));
            assert_eq!(PowerDeviceState::log_byte(value), state as u8);
            assert!(state.name().starts_with("WdfPowerDevice"));
        }
        assert_eq!(PowerDeviceState::from_u32(8), None);
        assert_eq!(PowerDeviceState::log_byte(8), 0xFF);
        assert_eq!(PowerDeviceState::log_byte(u32::MAX), 0xFF);
        assert!(PowerDeviceState::D3.is_low_power());
        assert!(!PowerDeviceState::D3Final.is_low_power());
        assert!(!PowerDeviceState::D0.is_low_power());
    }

    #[test]
    fn only_low_power_and_hibernation_states_start_a_resume() {
        let resumes: std::vec::Vec<PowerDeviceState> = PowerDeviceState::ALL
            .into_iter()
            .filter(|&state| PowerDeviceState::is_resume_from(state as u32))
            .collect();
        assert_eq!(
            resumes,
            [
                PowerDeviceState::D1,
                PowerDeviceState::D2,
                PowerDeviceState::D3,
                PowerDeviceState::PrepareForHibernation
            ]
        );
        // A PnP stop and start comes back from D3Final: a start, not a resume.
        assert!(!PowerDeviceState::is_resume_from(
            PowerDeviceState::D3Final as u32
        ));
        assert!(!PowerDeviceState::is_resume_from(8));
        assert!(!PowerDeviceState::is_resume_from(u32::MAX));
    }
}
