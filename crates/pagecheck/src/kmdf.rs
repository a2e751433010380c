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
    /// Offset of a pointer to a driver-defined interface (an `INTERFACE` header followed by
    /// the interface's own routines), whose every routine is a callback ([`INTERFACE_ROUTINE`]).
    pub interface: Option<u16>,
}

/// The routines of an interface a driver exports with `WdfDeviceAddQueryInterface`: the
/// `INTERFACE` header's `InterfaceReference` (+16) and `InterfaceDereference` (+24) and the
/// routines the driver's own interface structure adds after the 32-byte header. Other drivers
/// call them under a contract of the interface's own, which may be `DISPATCH_LEVEL`: they
/// must be resident.
pub const INTERFACE_ROUTINE: Field = f(0, "an interface routine", Dispatch);

/// Where [`RegArg`](crate::dataflow::RegArg) fields of an interface's routines start: the
/// routine at byte `k` of the interface is field `INTERFACE_FIELDS + k`.
pub const INTERFACE_FIELDS: u16 = 0x8000;

/// The first routine of an `INTERFACE` (`InterfaceReference`).
pub const INTERFACE_FIRST_ROUTINE: u16 = 16;

/// The most interface bytes read for routines.
pub const INTERFACE_MAX_SIZE: u16 = 512;

use Runs::{Dispatch, Passive, PowerDown, PowerUp};

/// `WDF_DRIVER_CONFIG`.
pub const DRIVER_CONFIG: Structure = Structure {
    name: "WDF_DRIVER_CONFIG",
    passive_flag: None,
    interface: None,
    fields: &[
        f(8, "EvtDriverDeviceAdd", Passive),
        f(16, "EvtDriverUnload", Passive),
    ],
};

/// `WDF_PNPPOWER_EVENT_CALLBACKS`.
pub const PNPPOWER_EVENT_CALLBACKS: Structure = Structure {
    name: "WDF_PNPPOWER_EVENT_CALLBACKS",
    passive_flag: None,
    interface: None,
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
    interface: None,
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
    interface: None,
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
    interface: None,
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
    interface: None,
    fields: &[leveled(8, "EvtTimerFunc", Dispatch, Passive)],
};

/// `WDF_WORKITEM_CONFIG`.
pub const WORKITEM_CONFIG: Structure = Structure {
    name: "WDF_WORKITEM_CONFIG",
    passive_flag: None,
    interface: None,
    fields: &[f(8, "EvtWorkItemFunc", Passive)],
};

/// `WDF_DPC_CONFIG`.
pub const DPC_CONFIG: Structure = Structure {
    name: "WDF_DPC_CONFIG",
    passive_flag: None,
    interface: None,
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
    interface: None,
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
    interface: None,
    fields: &[
        f(48, "EvtUsbTargetPipeReadComplete", Dispatch),
        f(64, "EvtUsbTargetPipeReadersFailed", Passive),
    ],
};

/// `WDF_WMI_PROVIDER_CONFIG` (its `GUID` puts the callback at 32).
pub const WMI_PROVIDER_CONFIG: Structure = Structure {
    name: "WDF_WMI_PROVIDER_CONFIG",
    passive_flag: None,
    interface: None,
    fields: &[f(32, "EvtWmiProviderFunctionControl", Passive)],
};

/// `WDF_WMI_INSTANCE_CONFIG`: every WMI callback runs at `PASSIVE_LEVEL`. A provider
/// configuration it points to is not followed: its callback is read when the driver passes
/// it to `WdfWmiProviderCreate`.
pub const WMI_INSTANCE_CONFIG: Structure = Structure {
    name: "WDF_WMI_INSTANCE_CONFIG",
    passive_flag: None,
    interface: None,
    fields: &[
        f(32, "EvtWmiInstanceQueryInstance", Passive),
        f(40, "EvtWmiInstanceSetInstance", Passive),
        f(48, "EvtWmiInstanceSetItem", Passive),
        f(56, "EvtWmiInstanceExecuteMethod", Passive),
    ],
};

/// `WDF_CHILD_LIST_CONFIG`: a bus driver's child list. Creating a child device runs at
/// `PASSIVE_LEVEL`; scanning for children runs each time the parent enters D0 (its reference
/// page says not to make it pageable); the description callbacks run at up to
/// `DISPATCH_LEVEL`.
pub const CHILD_LIST_CONFIG: Structure = Structure {
    name: "WDF_CHILD_LIST_CONFIG",
    passive_flag: None,
    interface: None,
    fields: &[
        f(16, "EvtChildListCreateDevice", Passive),
        f(24, "EvtChildListScanForChildren", PowerUp),
        f(32, "EvtChildListIdentificationDescriptionCopy", Dispatch),
        f(
            40,
            "EvtChildListIdentificationDescriptionDuplicate",
            Dispatch,
        ),
        f(48, "EvtChildListIdentificationDescriptionCleanup", Dispatch),
        f(56, "EvtChildListIdentificationDescriptionCompare", Dispatch),
        f(64, "EvtChildListAddressDescriptionCopy", Dispatch),
        f(72, "EvtChildListAddressDescriptionDuplicate", Dispatch),
        f(80, "EvtChildListAddressDescriptionCleanup", Dispatch),
        f(88, "EvtChildListDeviceReenumerated", Dispatch),
    ],
};

/// `WDF_CHILD_RETRIEVE_INFO`: the comparison the framework calls while it holds the child
/// list's lock.
pub const CHILD_RETRIEVE_INFO: Structure = Structure {
    name: "WDF_CHILD_RETRIEVE_INFO",
    passive_flag: None,
    interface: None,
    fields: &[f(
        32,
        "EvtChildListIdentificationDescriptionCompare",
        Dispatch,
    )],
};

/// `WDF_PDO_EVENT_CALLBACKS`: every callback at `PASSIVE_LEVEL`.
pub const PDO_EVENT_CALLBACKS: Structure = Structure {
    name: "WDF_PDO_EVENT_CALLBACKS",
    passive_flag: None,
    interface: None,
    fields: &[
        f(8, "EvtDeviceResourcesQuery", Passive),
        f(16, "EvtDeviceResourceRequirementsQuery", Passive),
        f(24, "EvtDeviceEject", Passive),
        f(32, "EvtDeviceSetLock", Passive),
        f(40, "EvtDeviceEnableWakeAtBus", Passive),
        f(48, "EvtDeviceDisableWakeAtBus", Passive),
        f(56, "EvtDeviceReportedMissing", Passive),
    ],
};

/// `WDF_FDO_EVENT_CALLBACKS`: resource-requirement filters, at `PASSIVE_LEVEL`.
pub const FDO_EVENT_CALLBACKS: Structure = Structure {
    name: "WDF_FDO_EVENT_CALLBACKS",
    passive_flag: None,
    interface: None,
    fields: &[
        f(8, "EvtDeviceFilterAddResourceRequirements", Passive),
        f(16, "EvtDeviceFilterRemoveResourceRequirements", Passive),
        f(24, "EvtDeviceRemoveAddedResources", Passive),
    ],
};

/// `WDF_QUERY_INTERFACE_CONFIG`: the request callback at `PASSIVE_LEVEL`, and the interface
/// it exports (a pointer at 8), whose routines are [`INTERFACE_ROUTINE`]s.
pub const QUERY_INTERFACE_CONFIG: Structure = Structure {
    name: "WDF_QUERY_INTERFACE_CONFIG",
    passive_flag: None,
    interface: Some(8),
    fields: &[f(32, "EvtDeviceProcessQueryInterfaceRequest", Passive)],
};

/// `WDF_IO_TARGET_OPEN_PARAMS`: the remove notifications of a remote target, at
/// `PASSIVE_LEVEL`.
pub const IO_TARGET_OPEN_PARAMS: Structure = Structure {
    name: "WDF_IO_TARGET_OPEN_PARAMS",
    passive_flag: None,
    interface: None,
    fields: &[
        f(8, "EvtIoTargetQueryRemove", Passive),
        f(16, "EvtIoTargetRemoveCanceled", Passive),
        f(24, "EvtIoTargetRemoveComplete", Passive),
    ],
};

/// `WDF_DMA_ENABLER_CONFIG`: fill, enable and self-managed I/O start run on the way into D0
/// (their pages say not to make them pageable); flush, disable and stop on the way out.
pub const DMA_ENABLER_CONFIG: Structure = Structure {
    name: "WDF_DMA_ENABLER_CONFIG",
    passive_flag: None,
    interface: None,
    fields: &[
        f(16, "EvtDmaEnablerFill", PowerUp),
        f(24, "EvtDmaEnablerFlush", PowerDown),
        f(32, "EvtDmaEnablerDisable", PowerDown),
        f(40, "EvtDmaEnablerEnable", PowerUp),
        f(48, "EvtDmaEnablerSelfManagedIoStart", PowerUp),
        f(56, "EvtDmaEnablerSelfManagedIoStop", PowerDown),
    ],
};

/// `WDF_IO_QUEUE_FORWARD_PROGRESS_POLICY`: every callback at up to `DISPATCH_LEVEL`.
pub const IO_QUEUE_FORWARD_PROGRESS_POLICY: Structure = Structure {
    name: "WDF_IO_QUEUE_FORWARD_PROGRESS_POLICY",
    passive_flag: None,
    interface: None,
    fields: &[
        f(16, "EvtIoWdmIrpForForwardProgress", Dispatch),
        f(24, "EvtIoAllocateResourcesForReservedRequest", Dispatch),
        f(32, "EvtIoAllocateRequestResources", Dispatch),
    ],
};

/// `WDF_POWER_FRAMEWORK_SETTINGS`: the registration callbacks at `PASSIVE_LEVEL`, the power
/// framework's component callbacks at up to `DISPATCH_LEVEL`.
pub const POWER_FRAMEWORK_SETTINGS: Structure = Structure {
    name: "WDF_POWER_FRAMEWORK_SETTINGS",
    passive_flag: None,
    interface: None,
    fields: &[
        f(8, "EvtDeviceWdmPostPoFxRegisterDevice", Passive),
        f(16, "EvtDeviceWdmPrePoFxUnregisterDevice", Passive),
        f(32, "ComponentActiveConditionCallback", Dispatch),
        f(40, "ComponentIdleConditionCallback", Dispatch),
        f(48, "ComponentIdleStateCallback", Dispatch),
        f(56, "PowerControlCallback", Dispatch),
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
    /// The IRP major function a WDM callback is registered for (a `UCHAR`): it decides the
    /// callback's IRQL ([`major_function_is_passive`]).
    MajorFunction,
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
/// `EvtDeviceWdmIrpPreprocess` runs at the IRQL the IRP arrives at: `PASSIVE_LEVEL` for most
/// major functions, but read, write and device control in the paging path at `APC_LEVEL`
/// where they must be resident, internal device control from other drivers and power in the
/// paging or hibernation path at `DISPATCH_LEVEL` ([`major_function_is_passive`]).
const WDM_IRP_PREPROCESS: Field = leveled(0, "EvtDeviceWdmIrpPreprocess", Dispatch, Passive);
/// `EvtDeviceWdmIrpDispatch`, like the preprocess callback, at the IRP's IRQL.
const WDM_IRP_DISPATCH: Field = leveled(0, "EvtDeviceWdmIrpDispatch", Dispatch, Passive);

/// Whether the dispatch routine of an IRP major function runs at `PASSIVE_LEVEL` whatever
/// the driver's place in the stack: every major function but read (3), write (4), device
/// control (0x0e), internal device control (0x0f) and power (0x16), by Microsoft's
/// "Dispatch Routines and IRQLs".
#[must_use]
pub const fn major_function_is_passive(major: u64) -> bool {
    major <= 0x1b && !matches!(major, 0x03 | 0x04 | 0x0e | 0x0f | 0x16)
}
/// `EvtProgramDma` runs at `DISPATCH_LEVEL`.
const PROGRAM_DMA: Field = f(0, "EvtProgramDma", Dispatch);
/// `EvtDeviceShutdownNotification` of a control device runs at `PASSIVE_LEVEL`.
const SHUTDOWN_NOTIFICATION: Field = f(0, "EvtDeviceShutdownNotification", Passive);
/// `EvtInterruptSynchronize` runs at the device's IRQL holding the interrupt lock (or at
/// `PASSIVE_LEVEL` for a passive-level interrupt, which the call does not show).
const INTERRUPT_SYNCHRONIZE: Field = f(0, "EvtInterruptSynchronize", Dispatch);
/// `EvtDmaTransactionDmaTransferComplete` runs at `DISPATCH_LEVEL`.
const DMA_TRANSFER_COMPLETE: Field = f(0, "EvtDmaTransactionDmaTransferComplete", Dispatch);
/// `EvtDmaTransactionConfigureDmaChannel` runs at `DISPATCH_LEVEL`.
const CONFIGURE_DMA_CHANNEL: Field = f(0, "EvtDmaTransactionConfigureDmaChannel", Dispatch);
/// `EvtReserveDma` runs at `DISPATCH_LEVEL`.
const RESERVE_DMA: Field = f(0, "EvtReserveDma", Dispatch);
/// `EvtDevicePnpStateChange` runs at `PASSIVE_LEVEL`.
const PNP_STATE_CHANGE: Field = f(0, "EvtDevicePnpStateChange", Passive);

const fn other(name: &'static str) -> Arg {
    Arg::Attributes(Object::Other(name))
}

const fn m(name: &'static str, args: &'static [(u8, Arg)]) -> Method {
    Method { name, args }
}

/// Every method this module knows, sorted by name.
pub const METHODS: &[Method] = &[
    m(
        "WdfChildListCreate",
        &[
            (2, Arg::Config(&CHILD_LIST_CONFIG)),
            (3, other("WDFCHILDLIST")),
        ],
    ),
    m(
        "WdfChildListRetrieveNextDevice",
        &[(4, Arg::Config(&CHILD_RETRIEVE_INFO))],
    ),
    m(
        "WdfChildListRetrievePdo",
        &[(2, Arg::Config(&CHILD_RETRIEVE_INFO))],
    ),
    m("WdfCollectionCreate", &[(1, other("WDFCOLLECTION"))]),
    m("WdfCommonBufferCreate", &[(3, other("WDFCOMMONBUFFER"))]),
    m(
        "WdfCommonBufferCreateWithConfig",
        &[(4, other("WDFCOMMONBUFFER"))],
    ),
    m(
        "WdfControlDeviceInitSetShutdownNotification",
        &[(2, Arg::Callback(&SHUTDOWN_NOTIFICATION))],
    ),
    m(
        "WdfCxDeviceInitAllocateContext",
        &[(2, other("an object's context"))],
    ),
    m(
        "WdfCxDeviceInitAssignWdmIrpPreprocessCallback",
        &[
            (2, Arg::Callback(&WDM_IRP_PREPROCESS)),
            (3, Arg::MajorFunction),
        ],
    ),
    m(
        "WdfCxDeviceInitSetIoInCallerContextCallback",
        &[(2, Arg::Callback(&IN_CALLER_CONTEXT))],
    ),
    m(
        "WdfCxDeviceInitSetRequestAttributes",
        &[(2, other("WDFREQUEST"))],
    ),
    m(
        "WdfDeviceAddQueryInterface",
        &[(2, Arg::Config(&QUERY_INTERFACE_CONFIG))],
    ),
    m("WdfDeviceAllocAndQueryProperty", &[(4, other("WDFMEMORY"))]),
    m(
        "WdfDeviceAllocAndQueryPropertyEx",
        &[(4, other("WDFMEMORY"))],
    ),
    m(
        "WdfDeviceConfigureWdmIrpDispatchCallback",
        &[
            (3, Arg::MajorFunction),
            (4, Arg::Callback(&WDM_IRP_DISPATCH)),
        ],
    ),
    m("WdfDeviceCreate", &[(2, Arg::Attributes(Object::Device))]),
    m(
        "WdfDeviceInitAssignWdmIrpPreprocessCallback",
        &[
            (2, Arg::Callback(&WDM_IRP_PREPROCESS)),
            (3, Arg::MajorFunction),
        ],
    ),
    m(
        "WdfDeviceInitRegisterPnpStateChangeCallback",
        &[(3, Arg::Callback(&PNP_STATE_CHANGE))],
    ),
    m(
        "WdfDeviceInitSetFileObjectConfig",
        &[
            (2, Arg::Config(&FILEOBJECT_CONFIG)),
            (3, other("WDFFILEOBJECT")),
        ],
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
        "WdfDeviceInitSetRequestAttributes",
        &[(2, other("WDFREQUEST"))],
    ),
    m(
        "WdfDeviceMiniportCreate",
        &[(2, Arg::Attributes(Object::Device))],
    ),
    m("WdfDeviceOpenDevicemapKey", &[(4, other("WDFKEY"))]),
    m("WdfDeviceOpenRegistryKey", &[(4, other("WDFKEY"))]),
    m(
        "WdfDeviceWdmAssignPowerFrameworkSettings",
        &[(2, Arg::Config(&POWER_FRAMEWORK_SETTINGS))],
    ),
    m(
        "WdfDmaEnablerCreate",
        &[
            (2, Arg::Config(&DMA_ENABLER_CONFIG)),
            (3, other("WDFDMAENABLER")),
        ],
    ),
    m(
        "WdfDmaTransactionAllocateResources",
        &[(4, Arg::Callback(&RESERVE_DMA))],
    ),
    m(
        "WdfDmaTransactionCreate",
        &[(2, other("WDFDMATRANSACTION"))],
    ),
    m(
        "WdfDmaTransactionInitialize",
        &[(2, Arg::Callback(&PROGRAM_DMA))],
    ),
    m(
        "WdfDmaTransactionInitializeUsingOffset",
        &[(2, Arg::Callback(&PROGRAM_DMA))],
    ),
    m(
        "WdfDmaTransactionInitializeUsingRequest",
        &[(3, Arg::Callback(&PROGRAM_DMA))],
    ),
    m(
        "WdfDmaTransactionSetChannelConfigurationCallback",
        &[(2, Arg::Callback(&CONFIGURE_DMA_CHANNEL))],
    ),
    m(
        "WdfDmaTransactionSetTransferCompleteCallback",
        &[(2, Arg::Callback(&DMA_TRANSFER_COMPLETE))],
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
        "WdfDriverOpenParametersRegistryKey",
        &[(3, other("WDFKEY"))],
    ),
    m(
        "WdfDriverOpenPersistentStateRegistryKey",
        &[(3, other("WDFKEY"))],
    ),
    m(
        "WdfFdoInitAllocAndQueryProperty",
        &[(4, other("WDFMEMORY"))],
    ),
    m(
        "WdfFdoInitAllocAndQueryPropertyEx",
        &[(4, other("WDFMEMORY"))],
    ),
    m("WdfFdoInitOpenRegistryKey", &[(4, other("WDFKEY"))]),
    m(
        "WdfFdoInitSetDefaultChildListConfig",
        &[
            (2, Arg::Config(&CHILD_LIST_CONFIG)),
            (3, other("WDFCHILDLIST")),
        ],
    ),
    m(
        "WdfFdoInitSetEventCallbacks",
        &[(2, Arg::Config(&FDO_EVENT_CALLBACKS))],
    ),
    m(
        "WdfInterruptCreate",
        &[
            (2, Arg::Config(&INTERRUPT_CONFIG)),
            (3, other("WDFINTERRUPT")),
        ],
    ),
    m(
        "WdfInterruptSynchronize",
        &[(2, Arg::Callback(&INTERRUPT_SYNCHRONIZE))],
    ),
    m(
        "WdfIoQueueAssignForwardProgressPolicy",
        &[(2, Arg::Config(&IO_QUEUE_FORWARD_PROGRESS_POLICY))],
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
    m("WdfIoResourceListCreate", &[(2, other("WDFIORESLIST"))]),
    m(
        "WdfIoTargetAllocAndQueryTargetProperty",
        &[(4, other("WDFMEMORY"))],
    ),
    m("WdfIoTargetCreate", &[(2, other("WDFIOTARGET"))]),
    m(
        "WdfIoTargetOpen",
        &[(2, Arg::Config(&IO_TARGET_OPEN_PARAMS))],
    ),
    m(
        "WdfLookasideListCreate",
        &[(1, other("WDFLOOKASIDE")), (4, other("WDFMEMORY"))],
    ),
    m("WdfMemoryCreate", &[(1, other("WDFMEMORY"))]),
    m("WdfMemoryCreatePreallocated", &[(1, other("WDFMEMORY"))]),
    m(
        "WdfObjectAllocateContext",
        &[(2, other("an object's context"))],
    ),
    m("WdfObjectCreate", &[(1, other("WDFOBJECT"))]),
    m(
        "WdfPdoInitSetEventCallbacks",
        &[(2, Arg::Config(&PDO_EVENT_CALLBACKS))],
    ),
    m("WdfRegistryCreateKey", &[(6, other("WDFKEY"))]),
    m("WdfRegistryOpenKey", &[(4, other("WDFKEY"))]),
    m("WdfRegistryQueryMemory", &[(4, other("WDFMEMORY"))]),
    m("WdfRegistryQueryMultiString", &[(3, other("WDFSTRING"))]),
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
    m("WdfSpinLockCreate", &[(1, other("WDFSPINLOCK"))]),
    m("WdfStringCreate", &[(2, other("WDFSTRING"))]),
    m(
        "WdfTimerCreate",
        &[(1, Arg::Config(&TIMER_CONFIG)), (2, other("WDFTIMER"))],
    ),
    m("WdfUsbInterfaceSelectSetting", &[(2, other("WDFUSBPIPE"))]),
    m(
        "WdfUsbTargetDeviceAllocAndQueryString",
        &[(2, other("WDFMEMORY"))],
    ),
    m("WdfUsbTargetDeviceCreate", &[(2, other("WDFUSBDEVICE"))]),
    m(
        "WdfUsbTargetDeviceCreateIsochUrb",
        &[(2, other("WDFMEMORY"))],
    ),
    m("WdfUsbTargetDeviceCreateUrb", &[(2, other("WDFMEMORY"))]),
    m(
        "WdfUsbTargetDeviceCreateWithParameters",
        &[(3, other("WDFUSBDEVICE"))],
    ),
    m(
        "WdfUsbTargetDeviceSelectConfig",
        &[(2, other("WDFUSBPIPE"))],
    ),
    m(
        "WdfUsbTargetPipeConfigContinuousReader",
        &[(2, Arg::Config(&USB_CONTINUOUS_READER_CONFIG))],
    ),
    m("WdfWaitLockCreate", &[(1, other("WDFWAITLOCK"))]),
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

/// Framework methods known to take a callback whose IRQL or path this model does not place:
/// what the driver passes there is reported unreadable (PC007), not dropped. So is a code
/// address passed to any other method in an argument position not read above (see
/// `crate::dataflow::transfer`).
///
/// - the power and power-policy state-change notifications run inside the framework's power
///   state machines, at whatever point of a transition they were registered for;
/// - the class-extension structures (`WDFCX_*`) are not in the public headers;
/// - `WdfDriverRegisterTraceInfo` is reserved for the framework's own use.
pub const UNMODELLED: &[&str] = &[
    "WdfCxDeviceInitSetFileObjectConfig",
    "WdfCxDeviceInitSetPnpPowerEventCallbacks",
    "WdfCxDeviceInitSetPowerPolicyEventCallbacks",
    "WdfDeviceInitRegisterPowerPolicyStateChangeCallback",
    "WdfDeviceInitRegisterPowerStateChangeCallback",
    "WdfDriverRegisterTraceInfo",
];

/// Methods whose arguments may hold code addresses that are not callbacks: the framework
/// fills the interface (an output), or only looks a context type up.
pub const NOT_REGISTRATIONS: &[&str] = &[
    "WdfCxDeviceInitGetTypedContextWorker",
    "WdfFdoQueryForInterface",
    "WdfIoTargetQueryForInterface",
    "WdfObjectGetTypedContextWorker",
];

/// Framework methods after which the device may be power-nonpageable: its power-down path
/// can then run while the paging device is off.
pub const NONPAGEABLE_METHODS: &[&str] = &[
    "WdfDeviceInitSetPowerNotPageable",
    "WdfDeviceInitSetPowerInrush",
    "WdfDeviceSetSpecialFileSupport",
];

/// The table of `docs/kmdf-callbacks.md`: every KMDF 1.33 method known to take a callback,
/// what pagecheck reads of it and with which role, and what it reports instead. Kept in the
/// repository and checked against this module by a test, so the two cannot drift.
#[must_use]
pub fn callback_table() -> String {
    use std::fmt::Write as _;
    let role = |field: &Field| {
        let base = match field.runs {
            Runs::Passive => "paged",
            Runs::PowerDown => "power-down",
            Runs::PowerUp => "power-up",
            Runs::Dispatch => "dispatch",
        };
        if field.passive == field.runs {
            base.to_owned()
        } else {
            let passive = match field.passive {
                Runs::Passive => "paged",
                Runs::PowerDown => "power-down",
                Runs::PowerUp => "power-up",
                Runs::Dispatch => "dispatch",
            };
            format!("{base} ({passive} when passive)")
        }
    };
    let mut out =
        String::from("| method | argument | callbacks (role) | pagecheck |\n|---|---|---|---|\n");
    for method in METHODS {
        for &(position, arg) in method.args {
            let (what, callbacks) = match arg {
                Arg::Config(s) => {
                    let mut list: Vec<String> = s
                        .fields
                        .iter()
                        .map(|f| format!("`{}` {}", f.name, role(f)))
                        .collect();
                    if s.interface.is_some() {
                        list.push(format!(
                            "every routine of the `INTERFACE` {}",
                            role(&INTERFACE_ROUTINE)
                        ));
                    }
                    (format!("`{}`", s.name), list.join(", "))
                }
                Arg::Attributes(o) => (
                    format!("`WDF_OBJECT_ATTRIBUTES` of the {}", o.name()),
                    o.attribute_fields()
                        .iter()
                        .map(|f| format!("`{}` {}", f.name, role(f)))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                Arg::Callback(f) => (
                    "the callback".to_owned(),
                    format!("`{}` {}", f.name, role(f)),
                ),
                Arg::MajorFunction => continue,
            };
            let _ = writeln!(
                out,
                "| `{}` | {position}: {what} | {callbacks} | read |",
                method.name
            );
        }
    }
    for name in UNMODELLED {
        let _ = writeln!(
            out,
            "| `{name}` | any | not placed by the model | PC007 for each function passed |"
        );
    }
    for name in NOT_REGISTRATIONS {
        let _ = writeln!(
            out,
            "| `{name}` | any | filled by the framework, or a type lookup | not a registration |"
        );
    }
    out
}

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
        assert_eq!(sorted, names, "METHODS is sorted by name, each method once");
        for name in NONPAGEABLE_METHODS {
            assert!(crate::wdf::KMDF_1_33.contains(name), "{name}");
        }
        for name in UNMODELLED.iter().chain(NOT_REGISTRATIONS) {
            assert!(crate::wdf::KMDF_1_33.contains(name), "{name}");
            assert!(!names.contains(name), "{name} is modelled");
        }
        // Every argument read lies within the method's arguments (DriverGlobals included).
        for m in METHODS {
            let count = crate::wdf::index_of(m.name).and_then(crate::wdf::argument_count);
            for &(position, _) in m.args {
                assert!(count.is_some_and(|n| position < n), "{} {position}", m.name);
            }
        }
    }

    #[test]
    fn callback_offsets_of_the_newer_structures() {
        // Offsets of the 1.33 headers' x64 layouts (checked with a compiler against them).
        let offsets = |s: &Structure| -> Vec<(u16, &str)> {
            s.fields.iter().map(|f| (f.offset, f.name)).collect()
        };
        assert_eq!(
            offsets(&CHILD_LIST_CONFIG)[..2],
            [
                (16, "EvtChildListCreateDevice"),
                (24, "EvtChildListScanForChildren")
            ]
        );
        assert_eq!(
            CHILD_LIST_CONFIG.fields.last().map(|f| (f.offset, f.name)),
            Some((88, "EvtChildListDeviceReenumerated"))
        );
        assert_eq!(
            offsets(&QUERY_INTERFACE_CONFIG),
            [(32, "EvtDeviceProcessQueryInterfaceRequest")]
        );
        assert_eq!(QUERY_INTERFACE_CONFIG.interface, Some(8));
        assert_eq!(
            offsets(&IO_TARGET_OPEN_PARAMS),
            [
                (8, "EvtIoTargetQueryRemove"),
                (16, "EvtIoTargetRemoveCanceled"),
                (24, "EvtIoTargetRemoveComplete")
            ]
        );
        assert_eq!(offsets(&CHILD_RETRIEVE_INFO)[0].0, 32);
        assert_eq!(offsets(&PDO_EVENT_CALLBACKS).len(), 7);
        assert_eq!(offsets(&DMA_ENABLER_CONFIG)[0], (16, "EvtDmaEnablerFill"));
        assert_eq!(
            offsets(&POWER_FRAMEWORK_SETTINGS)[2],
            (32, "ComponentActiveConditionCallback")
        );
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
            &CHILD_LIST_CONFIG,
            &CHILD_RETRIEVE_INFO,
            &PDO_EVENT_CALLBACKS,
            &FDO_EVENT_CALLBACKS,
            &QUERY_INTERFACE_CONFIG,
            &IO_TARGET_OPEN_PARAMS,
            &DMA_ENABLER_CONFIG,
            &IO_QUEUE_FORWARD_PROGRESS_POLICY,
            &POWER_FRAMEWORK_SETTINGS,
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
    fn the_documented_table_is_the_model() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/kmdf-callbacks.md"),
        )
        .expect("docs/kmdf-callbacks.md");
        let table = callback_table();
        assert!(
            doc.contains(&table),
            "docs/kmdf-callbacks.md does not hold the table of src/kmdf.rs: regenerate it with \
             `cargo test -p cargo-pagecheck --lib print_callback_table -- --ignored --nocapture`"
        );
    }

    #[test]
    #[ignore = "prints the table of docs/kmdf-callbacks.md"]
    fn print_callback_table() {
        print!("{}", callback_table());
    }

    #[test]
    fn wdm_callbacks_follow_their_major_function() {
        // IRP_MJ_CREATE, CLOSE, FLUSH_BUFFERS, QUERY/SET_INFORMATION, CLEANUP, PNP.
        for major in [0x00, 0x02, 0x09, 0x05, 0x06, 0x12, 0x1b] {
            assert!(major_function_is_passive(major), "{major:#x}");
        }
        // READ, WRITE, DEVICE_CONTROL, INTERNAL_DEVICE_CONTROL, POWER, and no such function.
        for major in [0x03, 0x04, 0x0e, 0x0f, 0x16, 0x1c, 0xff] {
            assert!(!major_function_is_passive(major), "{major:#x}");
        }
    }

    #[test]
    fn anything_that_can_run_at_dispatch_is_resident() {
        for m in METHODS {
            for (_, arg) in m.args {
                let fields: Vec<Field> = match arg {
                    Arg::Config(s) => s.fields.to_vec(),
                    Arg::Attributes(o) => o.attribute_fields().to_vec(),
                    Arg::Callback(field) => vec![**field],
                    Arg::MajorFunction => Vec::new(),
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
