//! The KMDF callback slots a driver registers functions in, each with what it needs.
//!
//! This is the project's paging map (docs/paging.md) in code: one marker type per
//! callback, whose [`Slot::Needs`] decides at compile time which
//! placements [`Placed::store`](crate::Placed::store) accepts, and whose [`SlotInfo`] documents the
//! IRQL and the rule. [`ALL`] lists every row, for the README's table and for tools.
//! [`crate::config`] maps each WDF configuration field to its slot.

use crate::{Slot, needs};

/// What a slot needs, as a value (the type-level twin is [`crate::needs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Only the power-up role: resident.
    PowerUp,
    /// Resident: may run at `DISPATCH_LEVEL`.
    Resident,
    /// The power-down section (locked while power-nonpageable) or resident.
    PowerDown,
    /// Anything but `INIT`.
    Passive,
}

impl Need {
    /// The placement this map recommends for the slot.
    #[must_use]
    pub const fn recommended(self) -> crate::Role {
        match self {
            Need::PowerUp => crate::Role::PowerUp,
            Need::Resident => crate::Role::Dispatch,
            Need::PowerDown => crate::Role::PowerDown,
            Need::Passive => crate::Role::Paged,
        }
    }

    /// Whether a function placed as `role` may be registered in a slot with this need.
    /// Mirrors the [`crate::Accepts`] impls, for tools that check at run time.
    #[must_use]
    pub const fn accepts(self, role: crate::Role) -> bool {
        use crate::Role;
        match self {
            Need::PowerUp => matches!(role, Role::PowerUp),
            Need::Resident => matches!(role, Role::PowerUp | Role::Dispatch),
            Need::PowerDown => matches!(role, Role::PowerDown | Role::PowerUp | Role::Dispatch),
            Need::Passive => !matches!(role, Role::Init),
        }
    }
}

/// One row of the paging map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotInfo {
    /// The KMDF callback's name.
    pub name: &'static str,
    /// The IRQL KMDF calls it at.
    pub irql: &'static str,
    /// What it needs.
    pub need: Need,
    /// Why.
    pub rule: &'static str,
}

macro_rules! slots {
    ($( $(#[$doc:meta])* $name:ident : $need:ident, $irql:literal, $rule:literal; )*) => {
        $(
            $(#[$doc])*
            pub enum $name {}
            impl Slot for $name {
                type Needs = needs::$need;
                const INFO: SlotInfo = SlotInfo {
                    name: stringify!($name),
                    irql: $irql,
                    need: Need::$need,
                    rule: $rule,
                };
            }
        )*
        /// Every slot, in the order of the paging map.
        pub const ALL: &[SlotInfo] = &[$(<$name as Slot>::INFO),*];
    };
}

slots! {
    /// `EvtDriverDeviceAdd`.
    EvtDriverDeviceAdd: Passive, "PASSIVE_LEVEL", "runs once per device at PASSIVE_LEVEL, off the power path";
    /// `EvtDriverUnload`.
    EvtDriverUnload: Passive, "PASSIVE_LEVEL", "runs once at unload";
    /// `EvtCleanupCallback` of the WDFDRIVER object.
    EvtDriverContextCleanup: Passive, "PASSIVE_LEVEL", "driver object cleanup runs at PASSIVE_LEVEL";
    /// `EvtDevicePrepareHardware`.
    EvtDevicePrepareHardware: Passive, "PASSIVE_LEVEL", "start-up only, not on the D0 path";
    /// `EvtDeviceReleaseHardware`.
    EvtDeviceReleaseHardware: Passive, "PASSIVE_LEVEL", "removal only";
    /// `EvtDeviceD0Entry`.
    EvtDeviceD0Entry: PowerUp, "PASSIVE_LEVEL", "return to D0: paged code here waits for the paging disk on resume";
    /// `EvtDeviceD0EntryPostInterruptsEnabled`.
    EvtDeviceD0EntryPostInterruptsEnabled: PowerUp, "PASSIVE_LEVEL", "return to D0";
    /// `EvtDeviceSelfManagedIoRestart`.
    EvtDeviceSelfManagedIoRestart: PowerUp, "PASSIVE_LEVEL", "return to D0: last callback before the device is working";
    /// `EvtDeviceDisarmWakeFromS0`.
    EvtDeviceDisarmWakeFromS0: PowerUp, "PASSIVE_LEVEL", "return to D0 (power policy owner)";
    /// `EvtDeviceDisarmWakeFromSx`.
    EvtDeviceDisarmWakeFromSx: PowerUp, "PASSIVE_LEVEL", "return to D0 (power policy owner)";
    /// `EvtIoResume`.
    EvtIoResume: PowerUp, "<= DISPATCH_LEVEL", "power-managed queues restart on the return to D0";
    /// `EvtDeviceSelfManagedIoSuspend`.
    EvtDeviceSelfManagedIoSuspend: PowerDown, "PASSIVE_LEVEL", "leaving D0: must not fault while power-nonpageable";
    /// `EvtDeviceArmWakeFromS0`.
    EvtDeviceArmWakeFromS0: PowerDown, "PASSIVE_LEVEL", "leaving D0: must not fault while power-nonpageable";
    /// `EvtDeviceD0ExitPreInterruptsDisabled`.
    EvtDeviceD0ExitPreInterruptsDisabled: PowerDown, "PASSIVE_LEVEL", "leaving D0: must not fault while power-nonpageable";
    /// `EvtDeviceD0Exit`.
    EvtDeviceD0Exit: PowerDown, "PASSIVE_LEVEL", "leaving D0: must not fault while power-nonpageable";
    /// `EvtDeviceSelfManagedIoInit`.
    EvtDeviceSelfManagedIoInit: Passive, "PASSIVE_LEVEL", "first start only";
    /// `EvtDeviceSelfManagedIoFlush`.
    EvtDeviceSelfManagedIoFlush: Passive, "PASSIVE_LEVEL", "removal only";
    /// `EvtDeviceSelfManagedIoCleanup`.
    EvtDeviceSelfManagedIoCleanup: Passive, "PASSIVE_LEVEL", "removal only";
    /// `EvtDeviceUsageNotificationEx`.
    EvtDeviceUsageNotificationEx: Passive, "PASSIVE_LEVEL", "special-file notifications come at PASSIVE_LEVEL, off the power path";
    /// `EvtCleanupCallback` of the WDFDEVICE object.
    EvtDeviceContextCleanup: Passive, "PASSIVE_LEVEL", "device object cleanup runs at PASSIVE_LEVEL";
    /// `EvtDeviceFileCreate`.
    EvtDeviceFileCreate: Passive, "PASSIVE_LEVEL", "file objects are created at PASSIVE_LEVEL";
    /// `EvtFileClose`.
    EvtFileClose: Passive, "PASSIVE_LEVEL", "file objects are closed at PASSIVE_LEVEL";
    /// `EvtIoDeviceControl` of a queue created with `ExecutionLevel = WdfExecutionLevelPassive`.
    EvtIoDeviceControlPassive: Passive, "PASSIVE_LEVEL", "the queue's execution level is passive";
    /// `EvtIoDeviceControl` of a queue with the default execution level.
    EvtIoDeviceControl: Resident, "<= DISPATCH_LEVEL", "queue callbacks run at up to DISPATCH_LEVEL";
    /// `EvtIoStop`.
    EvtIoStop: Resident, "<= DISPATCH_LEVEL", "queue callbacks run at up to DISPATCH_LEVEL";
    /// `EvtTimerFunc`.
    EvtTimerFunc: Resident, "DISPATCH_LEVEL", "timers fire at DISPATCH_LEVEL";
    /// `EvtWorkItem`.
    EvtWorkItem: Passive, "PASSIVE_LEVEL", "work items run at PASSIVE_LEVEL";
    /// `EvtCleanupCallback` of an object other than the driver or device.
    EvtObjectCleanup: Resident, "<= DISPATCH_LEVEL", "cleanup of other objects may run at DISPATCH_LEVEL";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    const PASSIVE: &str = "PASSIVE_LEVEL";
    const UP_TO_DISPATCH: &str = "<= DISPATCH_LEVEL";

    #[test]
    fn irql_literals_are_the_documented_ones() {
        for info in ALL {
            assert!(
                [PASSIVE, UP_TO_DISPATCH, "DISPATCH_LEVEL"].contains(&info.irql),
                "{}: {}",
                info.name,
                info.irql
            );
            // Anything that can run above PASSIVE_LEVEL must be resident.
            if info.irql != PASSIVE {
                assert!(
                    !info.need.accepts(Role::Paged) && !info.need.accepts(Role::PowerDown),
                    "{} runs at {} but accepts pageable code",
                    info.name,
                    info.irql
                );
            }
        }
    }

    #[test]
    fn power_up_slots_accept_only_power_up_and_nothing_accepts_init() {
        for info in ALL {
            assert!(!info.need.accepts(Role::Init), "{}", info.name);
            assert!(info.need.accepts(info.need.recommended()), "{}", info.name);
            if info.need == Need::PowerUp {
                for role in Role::ALL {
                    assert_eq!(
                        info.need.accepts(role),
                        role == Role::PowerUp,
                        "{}",
                        info.name
                    );
                }
            }
        }
        let d0 = ALL
            .iter()
            .find(|i| i.name == "EvtDeviceD0Entry")
            .expect("listed");
        assert_eq!(d0.need, Need::PowerUp);
        let exit = ALL
            .iter()
            .find(|i| i.name == "EvtDeviceD0Exit")
            .expect("listed");
        assert_eq!(
            exit.need.recommended().section(),
            crate::section::POWER_DOWN
        );
    }
}
