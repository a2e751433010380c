//! The framework methods through which a KMDF driver hands over its callbacks, and where each
//! callback sits in the structure the method takes.
//!
//! Everything here is a fact of the KMDF public headers (x64 layout, KMDF 1.33; earlier
//! versions have the same offsets, structures only ever grow at the end, and each starts
//! with its `Size`) and of Microsoft's reference pages for the callbacks' IRQL. Arguments are
//! numbered as the `WdfFunctions` entry receives them: argument 0 is `DriverGlobals`, so
//! `WdfIoQueueCreate(Device, Config, Attributes, Queue)` has its configuration in argument 2.

use pagewise_roles::Role;

/// When a callback runs, which decides where it may live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Runs {
    /// At `PASSIVE_LEVEL`, off the power path: may be pageable.
    Passive,
    /// While the device leaves D0: pageable only while the device is power-pageable.
    PowerDown,
    /// While the device returns to D0: resident, or resume waits for the paging disk.
    PowerUp,
    /// At up to `DISPATCH_LEVEL` (or above): resident.
    Dispatch,
}

impl Runs {
    /// The placement role that serves it.
    #[must_use]
    pub const fn role(self) -> Role {
        match self {
            Runs::Passive => Role::Paged,
            Runs::PowerDown => Role::PowerDown,
            Runs::PowerUp => Role::PowerUp,
            Runs::Dispatch => Role::Dispatch,
        }
    }

    /// The IRQL and path, as messages say it.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Runs::Passive => "runs at PASSIVE_LEVEL",
            Runs::PowerDown => "runs while the device leaves D0",
            Runs::PowerUp => "runs while the device returns to D0",
            Runs::Dispatch => "may run at DISPATCH_LEVEL",
        }
    }
}

/// A callback pointer field of a configuration structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Byte offset in the structure.
    pub offset: u16,
    /// The field's (and the callback's) name.
    pub name: &'static str,
    /// When it runs by default.
    pub runs: Runs,
    /// When it runs if the object's execution level is `WdfExecutionLevelPassive`.
    pub passive: Runs,
}

const fn f(offset: u16, name: &'static str, runs: Runs) -> Field {
    Field {
        offset,
        name,
        runs,
        passive: runs,
    }
}

/// A field whose IRQL follows the object's execution level.
const fn leveled(offset: u16, name: &'static str, runs: Runs, passive: Runs) -> Field {
    Field {
        offset,
        name,
        runs,
        passive,
    }
}

/// A configuration structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Structure {
    /// Its type name.
    pub name: &'static str,
    /// Its callback fields.
    pub fields: &'static [Field],
    /// Offset of a `BOOLEAN` member that, when set, makes every field run as its `passive`
    /// (`PassiveHandling` of `WDF_INTERRUPT_CONFIG`).
    pub passive_flag: Option<u16>,
}

use Runs::{Dispatch, Passive, PowerDown, PowerUp};

/// `WDF_DRIVER_CONFIG`.
pub const DRIVER_CONFIG: Structure = Structure {
    name: "WDF_DRIVER_CONFIG",
    passive_flag: None,
    fields: &[
        f(8, "EvtDriverDeviceAdd", Passive),
        f(16, "EvtDriverUnload", Passive),
    ],
};

/// `WDF_PNPPOWER_EVENT_CALLBACKS`.
pub const PNPPOWER_EVENT_CALLBACKS: Structure = Structure {
    name: "WDF_PNPPOWER_EVENT_CALLBACKS",
    passive_flag: None,
    fields: &[
        f(8, "EvtDeviceD0Entry", PowerUp),
        f(16, "EvtDeviceD0EntryPostInterruptsEnabled", PowerUp),
        f(24, "EvtDeviceD0Exit", PowerDown),
        f(32, "EvtDeviceD0ExitPreInterruptsDisabled", PowerDown),
        f(40, "EvtDevicePrepareHardware", Passive),
        f(48, "EvtDeviceReleaseHardware", Passive),
        f(56, "EvtDeviceSelfManagedIoCleanup", Passive),
        f(64, "EvtDeviceSelfManagedIoFlush", Passive),
        f(72, "EvtDeviceSelfManagedIoInit", Passive),
        f(80, "EvtDeviceSelfManagedIoSuspend", PowerDown),
        f(88, "EvtDeviceSelfManagedIoRestart", PowerUp),
        f(96, "EvtDeviceSurpriseRemoval", Passive),
        f(104, "EvtDeviceQueryRemove", Passive),
        f(112, "EvtDeviceQueryStop", Passive),
        f(120, "EvtDeviceUsageNotification", Passive),
        f(128, "EvtDeviceRelationsQuery", Passive),
        f(136, "EvtDeviceUsageNotificationEx", Passive),
    ],
};

/// `WDF_POWER_POLICY_EVENT_CALLBACKS`. The wake-triggered callbacks run on the way back to
/// D0, so they count as the return path.
pub const POWER_POLICY_EVENT_CALLBACKS: Structure = Structure {
    name: "WDF_POWER_POLICY_EVENT_CALLBACKS",
    passive_flag: None,
    fields: &[
        f(8, "EvtDeviceArmWakeFromS0", PowerDown),
        f(16, "EvtDeviceDisarmWakeFromS0", PowerUp),
        f(24, "EvtDeviceWakeFromS0Triggered", PowerUp),
        f(32, "EvtDeviceArmWakeFromSx", PowerDown),
        f(40, "EvtDeviceDisarmWakeFromSx", PowerUp),
        f(48, "EvtDeviceWakeFromSxTriggered", PowerUp),
        f(56, "EvtDeviceArmWakeFromSxWithReason", PowerDown),
    ],
};

/// `WDF_FILEOBJECT_CONFIG`.
pub const FILEOBJECT_CONFIG: Structure = Structure {
    name: "WDF_FILEOBJECT_CONFIG",
    passive_flag: None,
    fields: &[
        f(8, "EvtDeviceFileCreate", Passive),
        f(16, "EvtFileClose", Passive),
        f(24, "EvtFileCleanup", Passive),
    ],
};

/// `WDF_IO_QUEUE_CONFIG`: request callbacks run at up to `DISPATCH_LEVEL` unless the queue's
/// execution level is passive.
pub const IO_QUEUE_CONFIG: Structure = Structure {
    name: "WDF_IO_QUEUE_CONFIG",
    passive_flag: None,
    fields: &[
        leveled(16, "EvtIoDefault", Dispatch, Passive),
        leveled(24, "EvtIoRead", Dispatch, Passive),
        leveled(32, "EvtIoWrite", Dispatch, Passive),
        leveled(40, "EvtIoDeviceControl", Dispatch, Passive),
        leveled(48, "EvtIoInternalDeviceControl", Dispatch, Passive),
        leveled(56, "EvtIoStop", Dispatch, PowerDown),
        leveled(64, "EvtIoResume", Dispatch, PowerUp),
        leveled(72, "EvtIoCanceledOnQueue", Dispatch, Passive),
    ],
};

/// `WDF_TIMER_CONFIG`: `DISPATCH_LEVEL` unless the timer's execution level is passive.
pub const TIMER_CONFIG: Structure = Structure {
    name: "WDF_TIMER_CONFIG",
    passive_flag: None,
    fields: &[leveled(8, "EvtTimerFunc", Dispatch, Passive)],
};

/// `WDF_WORKITEM_CONFIG`.
pub const WORKITEM_CONFIG: Structure = Structure {
    name: "WDF_WORKITEM_CONFIG",
    passive_flag: None,
    fields: &[f(8, "EvtWorkItemFunc", Passive)],
};

/// `WDF_DPC_CONFIG`.
pub const DPC_CONFIG: Structure = Structure {
    name: "WDF_DPC_CONFIG",
    passive_flag: None,
    fields: &[f(8, "EvtDpcFunc", Dispatch)],
};

/// `WDF_INTERRUPT_CONFIG`: the service routine and enable/disable run at the device's
/// IRQL, the DPC at `DISPATCH_LEVEL`, only the work item at `PASSIVE_LEVEL`. With
/// `PassiveHandling` (offset 88, KMDF 1.11 and later) the service routine and the other
/// interrupt callbacks run at `PASSIVE_LEVEL` under the passive interrupt lock: enable on the
/// way into D0, disable on the way out.
pub const INTERRUPT_CONFIG: Structure = Structure {
    name: "WDF_INTERRUPT_CONFIG",
    passive_flag: Some(88),
    fields: &[
        leveled(24, "EvtInterruptIsr", Dispatch, Passive),
        f(32, "EvtInterruptDpc", Dispatch),
        leveled(40, "EvtInterruptEnable", Dispatch, PowerUp),
        leveled(48, "EvtInterruptDisable", Dispatch, PowerDown),
        f(56, "EvtInterruptWorkItem", Passive),
    ],
};

/// `WDF_USB_CONTINUOUS_READER_CONFIG`: a read completes at the IRQL the I/O target completed
/// it, up to `DISPATCH_LEVEL`; the failure callback runs at `PASSIVE_LEVEL`.
pub const USB_CONTINUOUS_READER_CONFIG: Structure = Structure {
    name: "WDF_USB_CONTINUOUS_READER_CONFIG",
    passive_flag: None,
    fields: &[
        f(48, "EvtUsbTargetPipeReadComplete", Dispatch),
        f(64, "EvtUsbTargetPipeReadersFailed", Passive),
    ],
};

/// `WDF_WMI_PROVIDER_CONFIG` (its `GUID` puts the callback at 32).
pub const WMI_PROVIDER_CONFIG: Structure = Structure {
    name: "WDF_WMI_PROVIDER_CONFIG",
    passive_flag: None,
    fields: &[f(32, "EvtWmiProviderFunctionControl", Passive)],
};

/// `WDF_WMI_INSTANCE_CONFIG`: every WMI callback runs at `PASSIVE_LEVEL`. A provider
/// configuration it points to is not followed: its callback is read when the driver passes
/// it to `WdfWmiProviderCreate`.
pub const WMI_INSTANCE_CONFIG: Structure = Structure {
    name: "WDF_WMI_INSTANCE_CONFIG",
    passive_flag: None,
    fields: &[
        f(32, "EvtWmiInstanceQueryInstance", Passive),
        f(40, "EvtWmiInstanceSetInstance", Passive),
        f(48, "EvtWmiInstanceSetItem", Passive),
        f(56, "EvtWmiInstanceExecuteMethod", Passive),
    ],
};

/// Offset of `ExecutionLevel` in `WDF_OBJECT_ATTRIBUTES`.
pub const EXECUTION_LEVEL_OFFSET: u16 = 24;
/// `WdfExecutionLevelPassive`.
pub const EXECUTION_LEVEL_PASSIVE: u64 = 2;

/// The object a `WDF_OBJECT_ATTRIBUTES` argument creates, which decides where its cleanup
/// and destroy callbacks run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Object {
    /// `WDFDRIVER`: cleanup at `PASSIVE_LEVEL`.
    Driver,
    /// `WDFDEVICE`: cleanup at `PASSIVE_LEVEL`.
    Device,
    /// Any other object (`WDFQUEUE`, `WDFTIMER`, ...): cleanup at up to `DISPATCH_LEVEL`
    /// unless its execution level is passive.
    Other(&'static str),
}

impl Object {
    /// The handle type's name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Object::Driver => "WDFDRIVER",
            Object::Device => "WDFDEVICE",
            Object::Other(name) => name,
        }
    }

    /// The cleanup and destroy fields of this object's attributes.
    #[must_use]
    pub const fn attribute_fields(self) -> &'static [Field; 2] {
        match self {
            Object::Driver | Object::Device => &PASSIVE_ATTRIBUTE_FIELDS,
            Object::Other(_) => &LEVELED_ATTRIBUTE_FIELDS,
        }
    }
}

const PASSIVE_ATTRIBUTE_FIELDS: [Field; 2] = [
    f(8, "EvtCleanupCallback", Passive),
    f(16, "EvtDestroyCallback", Passive),
];
const LEVELED_ATTRIBUTE_FIELDS: [Field; 2] = [
    leveled(8, "EvtCleanupCallback", Dispatch, Passive),
    leveled(16, "EvtDestroyCallback", Dispatch, Passive),
];

/// What one argument of a registration method carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// A pointer to a configuration structure.
    Config(&'static Structure),
    /// A pointer to the `WDF_OBJECT_ATTRIBUTES` of the object being created (may be null).
    Attributes(Object),
    /// A callback passed directly.
    Callback(&'static Field),
}

/// A framework method that takes callbacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Method {
    /// Its name, as in `WDFFUNCENUM` without `TableIndex`.
    pub name: &'static str,
    /// Its arguments that matter, by position (0 is `DriverGlobals`).
    pub args: &'static [(u8, Arg)],
}

impl Method {
    /// The argument that sets the execution level of the created object, if any.
    #[must_use]
    pub fn attributes_position(&self) -> Option<u8> {
        self.args
            .iter()
            .find(|(_, a)| matches!(a, Arg::Attributes(_)))
            .map(|&(p, _)| p)
    }
}

/// `EvtRequestCancel`, passed to `WdfRequestMarkCancelable(Ex)`.
const REQUEST_CANCEL: Field = f(0, "EvtRequestCancel", Dispatch);
/// The completion routine of `WdfRequestSetCompletionRoutine`.
const COMPLETION_ROUTINE: Field = f(0, "EvtRequestCompletionRoutine", Dispatch);
/// `EvtIoQueueState`, passed to `WdfIoQueueStop`, `Drain`, `Purge`, `StopAndPurge` and
/// `ReadyNotify`: up to `DISPATCH_LEVEL` unless the queue was created passive, which the
/// call does not show, so it is checked as dispatch.
const QUEUE_STATE: Field = f(0, "EvtIoQueueState", Dispatch);
/// `EvtIoInCallerContext` runs at the IRQL of the thread that sent the request: up to
/// `DISPATCH_LEVEL` when that is another driver.
const IN_CALLER_CONTEXT: Field = f(0, "EvtIoInCallerContext", Dispatch);
/// `EvtDeviceWdmIrpPreprocess` runs at the IRQL the IRP arrives at (power IRPs at up to
/// `DISPATCH_LEVEL`).
const WDM_IRP_PREPROCESS: Field = f(0, "EvtDeviceWdmIrpPreprocess", Dispatch);
/// `EvtDeviceWdmIrpDispatch`, like the preprocess callback, at the IRP's IRQL.
const WDM_IRP_DISPATCH: Field = f(0, "EvtDeviceWdmIrpDispatch", Dispatch);
/// `EvtProgramDma` runs at `DISPATCH_LEVEL`.
const PROGRAM_DMA: Field = f(0, "EvtProgramDma", Dispatch);
/// `EvtDeviceShutdownNotification` of a control device runs at `PASSIVE_LEVEL`.
const SHUTDOWN_NOTIFICATION: Field = f(0, "EvtDeviceShutdownNotification", Passive);

const fn other(name: &'static str) -> Arg {
    Arg::Attributes(Object::Other(name))
}

const fn m(name: &'static str, args: &'static [(u8, Arg)]) -> Method {
    Method { name, args }
}

/// Every method this module knows.
pub const METHODS: &[Method] = &[
    m("WdfChildListCreate", &[(3, other("WDFCHILDLIST"))]),
    m("WdfCollectionCreate", &[(1, other("WDFCOLLECTION"))]),
    m("WdfCommonBufferCreate", &[(3, other("WDFCOMMONBUFFER"))]),
    m(
        "WdfControlDeviceInitSetShutdownNotification",
        &[(2, Arg::Callback(&SHUTDOWN_NOTIFICATION))],
    ),
    m(
        "WdfDeviceConfigureWdmIrpDispatchCallback",
        &[(4, Arg::Callback(&WDM_IRP_DISPATCH))],
    ),
    m(
        "WdfDeviceInitAssignWdmIrpPreprocessCallback",
        &[(2, Arg::Callback(&WDM_IRP_PREPROCESS))],
    ),
    m(
        "WdfDeviceInitSetIoInCallerContextCallback",
        &[(2, Arg::Callback(&IN_CALLER_CONTEXT))],
    ),
    m(
        "WdfDeviceInitSetPnpPowerEventCallbacks",
        &[(2, Arg::Config(&PNPPOWER_EVENT_CALLBACKS))],
    ),
    m(
        "WdfDeviceInitSetPowerPolicyEventCallbacks",
        &[(2, Arg::Config(&POWER_POLICY_EVENT_CALLBACKS))],
    ),
    m(
        "WdfDeviceInitSetFileObjectConfig",
        &[
            (2, Arg::Config(&FILEOBJECT_CONFIG)),
            (3, other("WDFFILEOBJECT")),
        ],
    ),
    m(
        "WdfDeviceInitSetRequestAttributes",
        &[(2, other("WDFREQUEST"))],
    ),
    m("WdfDeviceCreate", &[(2, Arg::Attributes(Object::Device))]),
    m("WdfDmaEnablerCreate", &[(3, other("WDFDMAENABLER"))]),
    m(
        "WdfDmaTransactionCreate",
        &[(2, other("WDFDMATRANSACTION"))],
    ),
    m(
        "WdfDmaTransactionInitialize",
        &[(2, Arg::Callback(&PROGRAM_DMA))],
    ),
    m(
        "WdfDmaTransactionInitializeUsingRequest",
        &[(3, Arg::Callback(&PROGRAM_DMA))],
    ),
    m(
        "WdfDpcCreate",
        &[(1, Arg::Config(&DPC_CONFIG)), (2, other("WDFDPC"))],
    ),
    m(
        "WdfDriverCreate",
        &[
            (3, Arg::Attributes(Object::Driver)),
            (4, Arg::Config(&DRIVER_CONFIG)),
        ],
    ),
    m(
        "WdfInterruptCreate",
        &[
            (2, Arg::Config(&INTERRUPT_CONFIG)),
            (3, other("WDFINTERRUPT")),
        ],
    ),
    m(
        "WdfIoQueueCreate",
        &[(2, Arg::Config(&IO_QUEUE_CONFIG)), (3, other("WDFQUEUE"))],
    ),
    m("WdfIoQueueDrain", &[(2, Arg::Callback(&QUEUE_STATE))]),
    m("WdfIoQueuePurge", &[(2, Arg::Callback(&QUEUE_STATE))]),
    m("WdfIoQueueReadyNotify", &[(2, Arg::Callback(&QUEUE_STATE))]),
    m("WdfIoQueueStop", &[(2, Arg::Callback(&QUEUE_STATE))]),
    m(
        "WdfIoQueueStopAndPurge",
        &[(2, Arg::Callback(&QUEUE_STATE))],
    ),
    m("WdfIoTargetCreate", &[(2, other("WDFIOTARGET"))]),
    m("WdfMemoryCreate", &[(1, other("WDFMEMORY"))]),
    m("WdfMemoryCreatePreallocated", &[(1, other("WDFMEMORY"))]),
    m(
        "WdfLookasideListCreate",
        &[(1, other("WDFLOOKASIDE")), (4, other("WDFMEMORY"))],
    ),
    m(
        "WdfObjectAllocateContext",
        &[(2, other("an object's context"))],
    ),
    m("WdfObjectCreate", &[(1, other("WDFOBJECT"))]),
    m("WdfRequestCreate", &[(1, other("WDFREQUEST"))]),
    m("WdfRequestCreateFromIrp", &[(1, other("WDFREQUEST"))]),
    m(
        "WdfRequestMarkCancelable",
        &[(2, Arg::Callback(&REQUEST_CANCEL))],
    ),
    m(
        "WdfRequestMarkCancelableEx",
        &[(2, Arg::Callback(&REQUEST_CANCEL))],
    ),
    m(
        "WdfRequestSetCompletionRoutine",
        &[(2, Arg::Callback(&COMPLETION_ROUTINE))],
    ),
    m("WdfStringCreate", &[(2, other("WDFSTRING"))]),
    m("WdfWaitLockCreate", &[(1, other("WDFWAITLOCK"))]),
    m("WdfSpinLockCreate", &[(1, other("WDFSPINLOCK"))]),
    m(
        "WdfTimerCreate",
        &[(1, Arg::Config(&TIMER_CONFIG)), (2, other("WDFTIMER"))],
    ),
    m("WdfUsbTargetDeviceCreate", &[(2, other("WDFUSBDEVICE"))]),
    m(
        "WdfUsbTargetPipeConfigContinuousReader",
        &[(2, Arg::Config(&USB_CONTINUOUS_READER_CONFIG))],
    ),
    m(
        "WdfWmiInstanceCreate",
        &[
            (2, Arg::Config(&WMI_INSTANCE_CONFIG)),
            (3, other("WDFWMIINSTANCE")),
        ],
    ),
    m(
        "WdfWmiProviderCreate",
        &[
            (2, Arg::Config(&WMI_PROVIDER_CONFIG)),
            (3, other("WDFWMIPROVIDER")),
        ],
    ),
    m(
        "WdfWorkItemCreate",
        &[
            (1, Arg::Config(&WORKITEM_CONFIG)),
            (2, other("WDFWORKITEM")),
        ],
    ),
];

/// The registration method at this `WDFFUNCENUM` index.
#[must_use]
pub fn method(index: u32) -> Option<&'static Method> {
    method_named(crate::wdf::function_name(u64::from(index))?)
}

/// The registration method of this name.
#[must_use]
pub fn method_named(name: &str) -> Option<&'static Method> {
    METHODS.iter().find(|m| m.name == name)
}

/// The callback argument position of a method in [`UNMODELLED_CALLBACK_ARGS`].
#[must_use]
pub fn unmodelled_callback_position(name: &str) -> Option<u8> {
    UNMODELLED_CALLBACK_ARGS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, position)| position)
}

/// Framework methods that take a callback argument (at this position, `DriverGlobals` being 0)
/// whose IRQL this model does not assert: a function passed there is reported as unreadable
/// (PC007) instead of being dropped. Only the listed position is read: the other argument
/// registers of a call may hold anything left from earlier code.
pub const UNMODELLED_CALLBACK_ARGS: &[(&str, u8)] = &[
    ("WdfDeviceInitRegisterPnpStateChangeCallback", 3),
    ("WdfDeviceInitRegisterPowerStateChangeCallback", 3),
    ("WdfDeviceInitRegisterPowerPolicyStateChangeCallback", 3),
    ("WdfDmaTransactionSetTransferCompleteCallback", 2),
    ("WdfDmaTransactionSetChannelConfigurationCallback", 2),
];

/// Framework methods after which the device may be power-nonpageable: its power-down path
/// can then run while the paging device is off.
pub const NONPAGEABLE_METHODS: &[&str] = &[
    "WdfDeviceInitSetPowerNotPageable",
    "WdfDeviceInitSetPowerInrush",
    "WdfDeviceSetSpecialFileSupport",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_indices_name_the_documented_methods() {
        let names: Vec<&str> = METHODS.iter().map(|m| m.name).collect();
        for name in &names {
            let index = crate::wdf::KMDF_1_33
                .iter()
                .position(|n| n == name)
                .unwrap_or_else(|| panic!("{name} is not a KMDF 1.33 method"));
            let index = u32::try_from(index).expect("small");
            assert_eq!(method(index).map(|m| m.name), Some(*name));
        }
        // Spot checks against WDFFUNCENUM of the 1.33 headers.
        assert_eq!(method(152).map(|m| m.name), Some("WdfIoQueueCreate"));
        assert_eq!(method(155).map(|m| m.name), Some("WdfIoQueueStop"));
        assert_eq!(
            method(74).map(|m| m.name),
            Some("WdfDeviceInitSetIoInCallerContextCallback")
        );
        assert_eq!(
            method(404).map(|m| m.name),
            Some("WdfDeviceConfigureWdmIrpDispatchCallback")
        );
        assert_eq!(
            method(350).map(|m| m.name),
            Some("WdfUsbTargetPipeConfigContinuousReader")
        );
        assert_eq!(method(373).map(|m| m.name), Some("WdfWmiInstanceCreate"));
        assert_eq!(
            method(393).map(|m| m.name),
            Some("WdfRequestMarkCancelableEx")
        );
        assert_eq!(
            method(55).map(|m| m.name),
            Some("WdfDeviceInitSetPnpPowerEventCallbacks")
        );
        for expected in [
            "WdfDriverCreate",
            "WdfDeviceInitSetPnpPowerEventCallbacks",
            "WdfDeviceInitSetPowerPolicyEventCallbacks",
            "WdfDeviceInitSetFileObjectConfig",
            "WdfDeviceCreate",
            "WdfIoQueueCreate",
            "WdfTimerCreate",
            "WdfWorkItemCreate",
            "WdfDpcCreate",
            "WdfInterruptCreate",
            "WdfRequestMarkCancelable",
            "WdfRequestMarkCancelableEx",
            "WdfRequestSetCompletionRoutine",
            "WdfObjectCreate",
            "WdfSpinLockCreate",
            "WdfChildListCreate",
            "WdfCollectionCreate",
            "WdfCommonBufferCreate",
            "WdfDeviceInitSetRequestAttributes",
            "WdfDmaEnablerCreate",
            "WdfDmaTransactionCreate",
            "WdfIoTargetCreate",
            "WdfMemoryCreate",
            "WdfMemoryCreatePreallocated",
            "WdfLookasideListCreate",
            "WdfObjectAllocateContext",
            "WdfRequestCreate",
            "WdfRequestCreateFromIrp",
            "WdfStringCreate",
            "WdfWaitLockCreate",
            "WdfUsbTargetDeviceCreate",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
        assert_eq!(names.len(), METHODS.len());
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "a method listed twice");
        for name in NONPAGEABLE_METHODS {
            assert!(crate::wdf::KMDF_1_33.contains(name), "{name}");
        }
        for (name, _) in UNMODELLED_CALLBACK_ARGS {
            assert!(crate::wdf::KMDF_1_33.contains(name), "{name}");
            assert!(!names.contains(name), "{name} is modelled");
        }
    }

    #[test]
    fn structures_match_the_x64_header_layout() {
        // Pointers are 8-aligned after the leading ULONG Size.
        for s in [
            &DRIVER_CONFIG,
            &PNPPOWER_EVENT_CALLBACKS,
            &POWER_POLICY_EVENT_CALLBACKS,
            &FILEOBJECT_CONFIG,
            &IO_QUEUE_CONFIG,
            &TIMER_CONFIG,
            &WORKITEM_CONFIG,
            &DPC_CONFIG,
            &INTERRUPT_CONFIG,
        ] {
            for field in s.fields {
                assert_eq!(field.offset % 8, 0, "{}.{}", s.name, field.name);
                assert!(field.offset >= 8, "{}.{}", s.name, field.name);
            }
        }
        // WDF_PNPPOWER_EVENT_CALLBACKS: 17 consecutive pointers after Size (144 bytes).
        let last = PNPPOWER_EVENT_CALLBACKS.fields.last().expect("fields");
        assert_eq!(
            (last.offset, last.name),
            (136, "EvtDeviceUsageNotificationEx")
        );
        // WDF_IO_QUEUE_CONFIG: Size, DispatchType, PowerManaged, two BOOLEANs (16 bytes).
        assert_eq!(IO_QUEUE_CONFIG.fields[0].offset, 16);
        // WDF_INTERRUPT_CONFIG: Size, SpinLock, ShareVector + two BOOLEANs (24 bytes).
        assert_eq!(INTERRUPT_CONFIG.fields[0].offset, 24);
    }

    #[test]
    fn anything_that_can_run_at_dispatch_is_resident() {
        for m in METHODS {
            for (_, arg) in m.args {
                let fields: Vec<Field> = match arg {
                    Arg::Config(s) => s.fields.to_vec(),
                    Arg::Attributes(o) => o.attribute_fields().to_vec(),
                    Arg::Callback(field) => vec![**field],
                };
                for field in fields {
                    assert!(field.runs >= field.passive, "{}", field.name);
                    if field.runs == Dispatch {
                        assert!(field.runs.role().is_resident(), "{}", field.name);
                    }
                }
            }
        }
    }
}
