//! The callback fields of the WDF configuration structures, each named after its field and
//! standing for the [`crate::slot`] that field takes.
//!
//! One module per structure, named exactly like the structure, so that
//! `pagewise_macros::callbacks!` can look the slot up from the two names the driver writes anyway:
//! the structure and the field. A field that several kinds of object share, with different
//! rules, has one module per kind below the structure, and the structure's own module
//! leaves it out, so that the kind must be named:
//!
//! - `WDF_IO_QUEUE_CONFIG` is a queue with the default execution level, whose callbacks
//!   may run at `DISPATCH_LEVEL`; `WDF_IO_QUEUE_CONFIG::passive` is a queue created with
//!   `ExecutionLevel = WdfExecutionLevelPassive`.
//! - `WDF_OBJECT_ATTRIBUTES::device`, `::driver` and `::object` are the attributes of a
//!   WDFDEVICE, of the WDFDRIVER and of any other object: only the first two run their
//!   cleanup at `PASSIVE_LEVEL`.
//!
//! Only fields with a slot in [`crate::slot`] are listed; a field missing here cannot be
//! registered through `pagewise_macros::callbacks!` (the compiler reports it as not found in the
//! structure's module).
#![allow(non_snake_case)]

/// `WDF_DRIVER_CONFIG`.
pub mod WDF_DRIVER_CONFIG {
    /// The field's slot.
    pub type EvtDriverDeviceAdd = crate::slot::EvtDriverDeviceAdd;
    /// The field's slot.
    pub type EvtDriverUnload = crate::slot::EvtDriverUnload;
}

/// `WDF_PNPPOWER_EVENT_CALLBACKS`.
pub mod WDF_PNPPOWER_EVENT_CALLBACKS {
    /// The field's slot.
    pub type EvtDeviceD0Entry = crate::slot::EvtDeviceD0Entry;
    /// The field's slot.
    pub type EvtDeviceD0EntryPostInterruptsEnabled =
        crate::slot::EvtDeviceD0EntryPostInterruptsEnabled;
    /// The field's slot.
    pub type EvtDeviceD0Exit = crate::slot::EvtDeviceD0Exit;
    /// The field's slot.
    pub type EvtDeviceD0ExitPreInterruptsDisabled =
        crate::slot::EvtDeviceD0ExitPreInterruptsDisabled;
    /// The field's slot.
    pub type EvtDevicePrepareHardware = crate::slot::EvtDevicePrepareHardware;
    /// The field's slot.
    pub type EvtDeviceReleaseHardware = crate::slot::EvtDeviceReleaseHardware;
    /// The field's slot.
    pub type EvtDeviceSelfManagedIoCleanup = crate::slot::EvtDeviceSelfManagedIoCleanup;
    /// The field's slot.
    pub type EvtDeviceSelfManagedIoFlush = crate::slot::EvtDeviceSelfManagedIoFlush;
    /// The field's slot.
    pub type EvtDeviceSelfManagedIoInit = crate::slot::EvtDeviceSelfManagedIoInit;
    /// The field's slot.
    pub type EvtDeviceSelfManagedIoSuspend = crate::slot::EvtDeviceSelfManagedIoSuspend;
    /// The field's slot.
    pub type EvtDeviceSelfManagedIoRestart = crate::slot::EvtDeviceSelfManagedIoRestart;
    /// The field's slot.
    pub type EvtDeviceUsageNotificationEx = crate::slot::EvtDeviceUsageNotificationEx;
}

/// `WDF_POWER_POLICY_EVENT_CALLBACKS`.
pub mod WDF_POWER_POLICY_EVENT_CALLBACKS {
    /// The field's slot.
    pub type EvtDeviceArmWakeFromS0 = crate::slot::EvtDeviceArmWakeFromS0;
    /// The field's slot.
    pub type EvtDeviceDisarmWakeFromS0 = crate::slot::EvtDeviceDisarmWakeFromS0;
    /// The field's slot.
    pub type EvtDeviceDisarmWakeFromSx = crate::slot::EvtDeviceDisarmWakeFromSx;
}

/// `WDF_FILEOBJECT_CONFIG`.
pub mod WDF_FILEOBJECT_CONFIG {
    /// The field's slot.
    pub type EvtDeviceFileCreate = crate::slot::EvtDeviceFileCreate;
    /// The field's slot.
    pub type EvtFileClose = crate::slot::EvtFileClose;
}

/// `WDF_IO_QUEUE_CONFIG` of a queue with the default execution level: its callbacks may
/// run at `DISPATCH_LEVEL`.
pub mod WDF_IO_QUEUE_CONFIG {
    /// The field's slot.
    pub type EvtIoDeviceControl = crate::slot::EvtIoDeviceControl;
    /// The field's slot.
    pub type EvtIoStop = crate::slot::EvtIoStop;
    /// The field's slot.
    pub type EvtIoResume = crate::slot::EvtIoResume;

    /// `WDF_IO_QUEUE_CONFIG` of a queue whose attributes set `ExecutionLevel =
    /// WdfExecutionLevelPassive`.
    pub mod passive {
        /// The field's slot: passive, so it may be pageable.
        pub type EvtIoDeviceControl = crate::slot::EvtIoDeviceControlPassive;
        /// The field's slot. Still resident: on a power-managed queue it runs while the
        /// device leaves D0, and this map does not know whether the queue is one.
        pub type EvtIoStop = crate::slot::EvtIoStop;
        /// The field's slot.
        pub type EvtIoResume = crate::slot::EvtIoResume;
    }
}

/// `WDF_TIMER_CONFIG`.
pub mod WDF_TIMER_CONFIG {
    /// The field's slot.
    pub type EvtTimerFunc = crate::slot::EvtTimerFunc;
}

/// `WDF_WORKITEM_CONFIG`.
pub mod WDF_WORKITEM_CONFIG {
    /// The field's slot.
    pub type EvtWorkItemFunc = crate::slot::EvtWorkItem;
}

/// `WDF_OBJECT_ATTRIBUTES`: its cleanup callback's rules depend on the object, so the
/// field is listed only in the per-object modules.
pub mod WDF_OBJECT_ATTRIBUTES {
    /// The attributes of a WDFDEVICE.
    pub mod device {
        /// The field's slot.
        pub type EvtCleanupCallback = crate::slot::EvtDeviceContextCleanup;
    }
    /// The attributes of the WDFDRIVER.
    pub mod driver {
        /// The field's slot.
        pub type EvtCleanupCallback = crate::slot::EvtDriverContextCleanup;
    }
    /// The attributes of any other object, whose cleanup may run at `DISPATCH_LEVEL`.
    pub mod object {
        /// The field's slot.
        pub type EvtCleanupCallback = crate::slot::EvtObjectCleanup;
    }
}
