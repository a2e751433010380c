//! The part of `wdk-sys` 0.5.2's API that the pagewise driver uses, written by hand from the
//! published definitions (the KMDF 1.33 public headers, `wdm.h`, `ntdef.h`), for building the
//! driver's unchanged `src/` where `wdk-sys` cannot be generated: a machine without a WDK.
//!
//! `cargo xtask driver` builds `driver-image`, a package whose library *is* the root
//! `src/lib.rs`, with this crate under the name `wdk_sys` (and the `standin-wdk*` crates as
//! `wdk`, `wdk_alloc`, `wdk_panic`). Every name below is spelled as `wdk-sys` spells it (the
//! names bindgen gives the C declarations: `_WDF_TRI_STATE::WdfUseDefault`,
//! `PFN_WDFTIMERSTART`, `_WDFFUNCENUM::WdfTimerStartTableIndex`), so the same source compiles
//! against both. Only what the driver names is here.
//!
//! What makes this more than a guess:
//! - every structure the driver fills or reads has its size and the offset of every field
//!   the driver uses asserted at compile time, in `src/layout_facts.rs` at the repository
//!   root, with the header each number comes from. The driver includes the same file, so a
//!   Windows build checks the same numbers against the real `wdk-sys`, and this crate's own
//!   test build checks them here: a drift on either side fails a build;
//! - every framework method is called through the KMDF function table at the index of
//!   KMDF 1.33's `wdffuncenum.h` (asserted in the same file), with the function-pointer type
//!   of its header, exactly as `wdk-sys`' `call_unsafe_wdf_function_binding!` does;
//! - the kernel routines are imported from `ntoskrnl.exe` by name (`raw-dylib`), with their
//!   `wdm.h` signatures.
//!
//! Integer types are the Windows ones with fixed widths (`ULONG` is `u32` on every host),
//! so the layouts checked on a Linux test host are the x64 Windows layouts.
#![no_std]
// The names are the C declarations' names, as in wdk-sys; documenting each would repeat
// its header.
#![allow(
    missing_docs,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    clippy::upper_case_acronyms,
    clippy::missing_safety_doc,
    clippy::must_use_candidate,
    clippy::pub_underscore_fields
)]

pub mod ntddk;

/// `WDF_NO_OBJECT_ATTRIBUTES`.
pub const WDF_NO_OBJECT_ATTRIBUTES: PWDF_OBJECT_ATTRIBUTES = core::ptr::null_mut();

// Basic types (ntdef.h, basetsd.h), fixed-width.
pub type UCHAR = u8;
pub type CHAR = i8;
pub type USHORT = u16;
pub type CSHORT = i16;
pub type ULONG = u32;
pub type LONG = i32;
pub type LONGLONG = i64;
pub type ULONG64 = u64;
pub type PULONG64 = *mut ULONG64;
pub type PULONG = *mut ULONG;
pub type ULONG_PTR = u64;
pub type SIZE_T = ULONG_PTR;
pub type BOOLEAN = UCHAR;
pub type KIRQL = UCHAR;
pub type NTSTATUS = LONG;
pub type ACCESS_MASK = ULONG;
pub type PVOID = *mut core::ffi::c_void;
pub type HANDLE = PVOID;
pub type PCCH = *const CHAR;
pub type PCSTR = *const CHAR;
pub type LPCSTR = *const CHAR;
pub type WCHAR = u16;
pub type PWSTR = *mut WCHAR;
pub type POOL_FLAGS = ULONG64;

/// All-zero values of the structures below are valid (integers, raw pointers and optional
/// function pointers), as bindgen's `Default` for them is.
macro_rules! zeroed_default {
    ($($name:ident),* $(,)?) => {
        $(
            impl Default for $name {
                fn default() -> Self {
                    // SAFETY: every field is an integer, a raw pointer, an `Option` of a
                    // function pointer or an array or union of those: zero is valid for all.
                    unsafe { core::mem::zeroed() }
                }
            }
        )*
    };
}

/// `UNICODE_STRING` (ntdef.h).
#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct _UNICODE_STRING {
    pub Length: USHORT,
    pub MaximumLength: USHORT,
    pub Buffer: PWSTR,
}
pub type UNICODE_STRING = _UNICODE_STRING;
pub type PUNICODE_STRING = *mut UNICODE_STRING;
pub type PCUNICODE_STRING = *const UNICODE_STRING;

/// `GUID` (guiddef.h).
#[repr(C)]
#[derive(Debug, Default, Copy, Clone)]
pub struct _GUID {
    pub Data1: u32,
    pub Data2: u16,
    pub Data3: u16,
    pub Data4: [u8; 8],
}
pub type GUID = _GUID;

/// Opaque kernel objects the driver only passes around.
#[repr(C)]
pub struct _DEVICE_OBJECT {
    _opaque: [u8; 0],
}
#[repr(C)]
pub struct _IRP {
    _opaque: [u8; 0],
}
#[repr(C)]
pub struct _DRIVER_EXTENSION {
    _opaque: [u8; 0],
}
#[repr(C)]
pub struct _FAST_IO_DISPATCH {
    _opaque: [u8; 0],
}
pub type PDEVICE_OBJECT = *mut _DEVICE_OBJECT;
pub type PDRIVER_EXTENSION = *mut _DRIVER_EXTENSION;
pub type PDRIVER_INITIALIZE = Option<
    unsafe extern "C" fn(
        DriverObject: *mut _DRIVER_OBJECT,
        RegistryPath: PUNICODE_STRING,
    ) -> NTSTATUS,
>;
pub type PDRIVER_STARTIO =
    Option<unsafe extern "C" fn(DeviceObject: PDEVICE_OBJECT, Irp: *mut _IRP)>;
pub type PDRIVER_UNLOAD = Option<unsafe extern "C" fn(DriverObject: *mut _DRIVER_OBJECT)>;
pub type PDRIVER_DISPATCH =
    Option<unsafe extern "C" fn(DeviceObject: PDEVICE_OBJECT, Irp: *mut _IRP) -> NTSTATUS>;

/// `DRIVER_OBJECT` (wdm.h). The driver reads `DriverStart` and `DriverSize`.
#[repr(C)]
pub struct _DRIVER_OBJECT {
    pub Type: CSHORT,
    pub Size: CSHORT,
    pub DeviceObject: PDEVICE_OBJECT,
    pub Flags: ULONG,
    pub DriverStart: PVOID,
    pub DriverSize: ULONG,
    pub DriverSection: PVOID,
    pub DriverExtension: PDRIVER_EXTENSION,
    pub DriverName: UNICODE_STRING,
    pub HardwareDatabase: PUNICODE_STRING,
    pub FastIoDispatch: *mut _FAST_IO_DISPATCH,
    pub DriverInit: PDRIVER_INITIALIZE,
    pub DriverStartIo: PDRIVER_STARTIO,
    pub DriverUnload: PDRIVER_UNLOAD,
    pub MajorFunction: [PDRIVER_DISPATCH; 28],
}
pub type DRIVER_OBJECT = _DRIVER_OBJECT;
pub type PDRIVER_OBJECT = *mut DRIVER_OBJECT;

/// Framework handles (wdftypes.h): pointers to distinct opaque types.
macro_rules! handles {
    ($($handle:ident = $opaque:ident),* $(,)?) => {
        $(
            #[repr(C)]
            #[derive(Debug, Default, Copy, Clone)]
            pub struct $opaque {
                pub unused: i32,
            }
            pub type $handle = *mut $opaque;
        )*
    };
}
handles! {
    WDFDRIVER = WDFDRIVER__,
    WDFDEVICE = WDFDEVICE__,
    WDFQUEUE = WDFQUEUE__,
    WDFREQUEST = WDFREQUEST__,
    WDFTIMER = WDFTIMER__,
    WDFWORKITEM = WDFWORKITEM__,
    WDFSPINLOCK = WDFSPINLOCK__,
    WDFKEY = WDFKEY__,
    WDFCMRESLIST = WDFCMRESLIST__,
}
pub type WDFOBJECT = HANDLE;
#[repr(C)]
pub struct WDFDEVICE_INIT {
    _opaque: [u8; 0],
}
pub type PWDFDEVICE_INIT = *mut WDFDEVICE_INIT;

/// `WDF_DRIVER_GLOBALS` (wdfglobals.h).
#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct _WDF_DRIVER_GLOBALS {
    pub Driver: WDFDRIVER,
    pub DriverFlags: ULONG,
    pub DriverTag: ULONG,
    pub DriverName: [CHAR; 32],
    pub DisplaceDriverUnload: BOOLEAN,
}
pub type WDF_DRIVER_GLOBALS = _WDF_DRIVER_GLOBALS;
pub type PWDF_DRIVER_GLOBALS = *mut WDF_DRIVER_GLOBALS;

/// One entry of the framework's function table.
pub type WDFFUNC = Option<unsafe extern "C" fn()>;

/// C enumerations as wdk-sys has them (bindgen's module-consts style): a module per enum
/// with its `Type` (`int`, as MSVC gives every enum) and its values.
macro_rules! enums {
    ($($module:ident as $alias:ident { $($value:ident = $number:literal),* $(,)? })*) => {
        $(
            pub mod $module {
                pub type Type = i32;
                $(pub const $value: Type = $number;)*
            }
            pub type $alias = $module::Type;
        )*
    };
}
enums! {
    _WDF_TRI_STATE as WDF_TRI_STATE { WdfFalse = 0, WdfTrue = 1, WdfUseDefault = 2 }
    _WDF_EXECUTION_LEVEL as WDF_EXECUTION_LEVEL {
        WdfExecutionLevelInvalid = 0,
        WdfExecutionLevelInheritFromParent = 1,
        WdfExecutionLevelPassive = 2,
        WdfExecutionLevelDispatch = 3,
    }
    _WDF_SYNCHRONIZATION_SCOPE as WDF_SYNCHRONIZATION_SCOPE {
        WdfSynchronizationScopeInvalid = 0,
        WdfSynchronizationScopeInheritFromParent = 1,
        WdfSynchronizationScopeDevice = 2,
        WdfSynchronizationScopeQueue = 3,
        WdfSynchronizationScopeNone = 4,
    }
    _WDF_IO_QUEUE_DISPATCH_TYPE as WDF_IO_QUEUE_DISPATCH_TYPE {
        WdfIoQueueDispatchInvalid = 0,
        WdfIoQueueDispatchSequential = 1,
        WdfIoQueueDispatchParallel = 2,
        WdfIoQueueDispatchManual = 3,
    }
    _WDF_POWER_DEVICE_STATE as WDF_POWER_DEVICE_STATE {
        WdfPowerDeviceInvalid = 0,
        WdfPowerDeviceD0 = 1,
        WdfPowerDeviceD1 = 2,
        WdfPowerDeviceD2 = 3,
        WdfPowerDeviceD3 = 4,
        WdfPowerDeviceD3Final = 5,
        WdfPowerDevicePrepareForHibernation = 6,
    }
    _WDF_SPECIAL_FILE_TYPE as WDF_SPECIAL_FILE_TYPE {
        WdfSpecialFileUndefined = 0,
        WdfSpecialFilePaging = 1,
        WdfSpecialFileHibernation = 2,
        WdfSpecialFileDump = 3,
        WdfSpecialFileBoot = 4,
    }
    _WDF_DEVICE_POWER_STATE as WDF_DEVICE_POWER_STATE { WdfDevStatePowerInvalid = 0 }
    _DEVICE_POWER_STATE as DEVICE_POWER_STATE {
        PowerDeviceUnspecified = 0,
        PowerDeviceD0 = 1,
        PowerDeviceD1 = 2,
        PowerDeviceD2 = 3,
        PowerDeviceD3 = 4,
    }
    _WDF_POWER_POLICY_S0_IDLE_CAPABILITIES as WDF_POWER_POLICY_S0_IDLE_CAPABILITIES {
        IdleCapsInvalid = 0,
        IdleCannotWakeFromS0 = 1,
        IdleCanWakeFromS0 = 2,
        IdleUsbSelectiveSuspend = 3,
    }
    _WDF_POWER_POLICY_S0_IDLE_USER_CONTROL as WDF_POWER_POLICY_S0_IDLE_USER_CONTROL {
        IdleUserControlInvalid = 0,
        IdleDoNotAllowUserControl = 1,
        IdleAllowUserControl = 2,
    }
    _WDF_POWER_POLICY_IDLE_TIMEOUT_TYPE as WDF_POWER_POLICY_IDLE_TIMEOUT_TYPE {
        DriverManagedIdleTimeout = 0,
        SystemManagedIdleTimeout = 1,
        SystemManagedIdleTimeoutWithHint = 2,
    }
    _DPFLTR_TYPE as DPFLTR_TYPE { DPFLTR_IHVDRIVER_ID = 77 }
}

// Constants (wdm.h, winnt.h, dpfilter.h), typed as bindgen types `#define`s.
pub const APC_LEVEL: u32 = 1;
pub const KEY_QUERY_VALUE: u32 = 1;
pub const KEY_SET_VALUE: u32 = 2;
pub const PLUGPLAY_REGKEY_DEVICE: u32 = 1;
pub const DPFLTR_ERROR_LEVEL: u32 = 0;
pub const DPFLTR_INFO_LEVEL: u32 = 3;

// NTSTATUS values (ntstatus.h), as wdk-sys types them.
pub const STATUS_SUCCESS: NTSTATUS = 0;
pub const STATUS_INSUFFICIENT_RESOURCES: NTSTATUS = 0xC000_009A_u32.cast_signed();
pub const STATUS_INVALID_DEVICE_STATE: NTSTATUS = 0xC000_0184_u32.cast_signed();
pub const STATUS_INVALID_IMAGE_FORMAT: NTSTATUS = 0xC000_007B_u32.cast_signed();
pub const STATUS_REVISION_MISMATCH: NTSTATUS = 0xC000_0059_u32.cast_signed();

// Callback types (wdfdriver.h, wdfdevice.h, wdfobject.h, wdfio.h, wdftimer.h, wdfworkitem.h).
pub type PFN_WDF_DRIVER_DEVICE_ADD =
    Option<unsafe extern "C" fn(Driver: WDFDRIVER, DeviceInit: PWDFDEVICE_INIT) -> NTSTATUS>;
pub type PFN_WDF_DRIVER_UNLOAD = Option<unsafe extern "C" fn(Driver: WDFDRIVER)>;
pub type PFN_WDF_OBJECT_CONTEXT_CLEANUP = Option<unsafe extern "C" fn(Object: WDFOBJECT)>;
pub type PFN_WDF_OBJECT_CONTEXT_DESTROY = Option<unsafe extern "C" fn(Object: WDFOBJECT)>;
pub type PFN_WDF_DEVICE_D0_ENTRY = Option<
    unsafe extern "C" fn(Device: WDFDEVICE, PreviousState: WDF_POWER_DEVICE_STATE) -> NTSTATUS,
>;
pub type PFN_WDF_DEVICE_D0_ENTRY_POST_INTERRUPTS_ENABLED = PFN_WDF_DEVICE_D0_ENTRY;
pub type PFN_WDF_DEVICE_D0_EXIT = Option<
    unsafe extern "C" fn(Device: WDFDEVICE, TargetState: WDF_POWER_DEVICE_STATE) -> NTSTATUS,
>;
pub type PFN_WDF_DEVICE_D0_EXIT_PRE_INTERRUPTS_DISABLED = PFN_WDF_DEVICE_D0_EXIT;
pub type PFN_WDF_DEVICE_PREPARE_HARDWARE = Option<
    unsafe extern "C" fn(
        Device: WDFDEVICE,
        ResourcesRaw: WDFCMRESLIST,
        ResourcesTranslated: WDFCMRESLIST,
    ) -> NTSTATUS,
>;
pub type PFN_WDF_DEVICE_RELEASE_HARDWARE =
    Option<unsafe extern "C" fn(Device: WDFDEVICE, ResourcesTranslated: WDFCMRESLIST) -> NTSTATUS>;
pub type PFN_WDF_DEVICE_SELF_MANAGED_IO_CLEANUP = Option<unsafe extern "C" fn(Device: WDFDEVICE)>;
pub type PFN_WDF_DEVICE_SELF_MANAGED_IO_FLUSH = Option<unsafe extern "C" fn(Device: WDFDEVICE)>;
pub type PFN_WDF_DEVICE_SELF_MANAGED_IO_INIT =
    Option<unsafe extern "C" fn(Device: WDFDEVICE) -> NTSTATUS>;
pub type PFN_WDF_DEVICE_SELF_MANAGED_IO_SUSPEND = PFN_WDF_DEVICE_SELF_MANAGED_IO_INIT;
pub type PFN_WDF_DEVICE_SELF_MANAGED_IO_RESTART = PFN_WDF_DEVICE_SELF_MANAGED_IO_INIT;
pub type PFN_WDF_DEVICE_SURPRISE_REMOVAL = Option<unsafe extern "C" fn(Device: WDFDEVICE)>;
pub type PFN_WDF_DEVICE_QUERY_REMOVE = Option<unsafe extern "C" fn(Device: WDFDEVICE) -> NTSTATUS>;
pub type PFN_WDF_DEVICE_QUERY_STOP = PFN_WDF_DEVICE_QUERY_REMOVE;
pub type PFN_WDF_DEVICE_USAGE_NOTIFICATION = Option<
    unsafe extern "C" fn(
        Device: WDFDEVICE,
        NotificationType: WDF_SPECIAL_FILE_TYPE,
        IsInNotificationPath: BOOLEAN,
    ),
>;
pub type PFN_WDF_DEVICE_RELATIONS_QUERY =
    Option<unsafe extern "C" fn(Device: WDFDEVICE, RelationType: i32)>;
pub type PFN_WDF_DEVICE_USAGE_NOTIFICATION_EX = Option<
    unsafe extern "C" fn(
        Device: WDFDEVICE,
        NotificationType: WDF_SPECIAL_FILE_TYPE,
        IsInNotificationPath: BOOLEAN,
    ) -> NTSTATUS,
>;
pub type PFN_WDF_IO_QUEUE_IO_DEFAULT =
    Option<unsafe extern "C" fn(Queue: WDFQUEUE, Request: WDFREQUEST)>;
pub type PFN_WDF_IO_QUEUE_IO_READ =
    Option<unsafe extern "C" fn(Queue: WDFQUEUE, Request: WDFREQUEST, Length: usize)>;
pub type PFN_WDF_IO_QUEUE_IO_WRITE = PFN_WDF_IO_QUEUE_IO_READ;
pub type PFN_WDF_IO_QUEUE_IO_DEVICE_CONTROL = Option<
    unsafe extern "C" fn(
        Queue: WDFQUEUE,
        Request: WDFREQUEST,
        OutputBufferLength: usize,
        InputBufferLength: usize,
        IoControlCode: ULONG,
    ),
>;
pub type PFN_WDF_IO_QUEUE_IO_INTERNAL_DEVICE_CONTROL = PFN_WDF_IO_QUEUE_IO_DEVICE_CONTROL;
pub type PFN_WDF_IO_QUEUE_IO_STOP =
    Option<unsafe extern "C" fn(Queue: WDFQUEUE, Request: WDFREQUEST, ActionFlags: ULONG)>;
pub type PFN_WDF_IO_QUEUE_IO_RESUME = PFN_WDF_IO_QUEUE_IO_DEFAULT;
pub type PFN_WDF_IO_QUEUE_IO_CANCELED_ON_QUEUE = PFN_WDF_IO_QUEUE_IO_DEFAULT;
pub type PFN_WDF_TIMER = Option<unsafe extern "C" fn(Timer: WDFTIMER)>;
pub type PFN_WDF_WORKITEM = Option<unsafe extern "C" fn(WorkItem: WDFWORKITEM)>;
pub type PFN_GET_UNIQUE_CONTEXT_TYPE =
    Option<unsafe extern "C" fn() -> PCWDF_OBJECT_CONTEXT_TYPE_INFO>;

/// `WDF_DRIVER_CONFIG` (wdfdriver.h).
#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct _WDF_DRIVER_CONFIG {
    pub Size: ULONG,
    pub EvtDriverDeviceAdd: PFN_WDF_DRIVER_DEVICE_ADD,
    pub EvtDriverUnload: PFN_WDF_DRIVER_UNLOAD,
    pub DriverInitFlags: ULONG,
    pub DriverPoolTag: ULONG,
}
pub type WDF_DRIVER_CONFIG = _WDF_DRIVER_CONFIG;
pub type PWDF_DRIVER_CONFIG = *mut WDF_DRIVER_CONFIG;

/// `WDF_PNPPOWER_EVENT_CALLBACKS` (wdfdevice.h).
#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct _WDF_PNPPOWER_EVENT_CALLBACKS {
    pub Size: ULONG,
    pub EvtDeviceD0Entry: PFN_WDF_DEVICE_D0_ENTRY,
    pub EvtDeviceD0EntryPostInterruptsEnabled: PFN_WDF_DEVICE_D0_ENTRY_POST_INTERRUPTS_ENABLED,
    pub EvtDeviceD0Exit: PFN_WDF_DEVICE_D0_EXIT,
    pub EvtDeviceD0ExitPreInterruptsDisabled: PFN_WDF_DEVICE_D0_EXIT_PRE_INTERRUPTS_DISABLED,
    pub EvtDevicePrepareHardware: PFN_WDF_DEVICE_PREPARE_HARDWARE,
    pub EvtDeviceReleaseHardware: PFN_WDF_DEVICE_RELEASE_HARDWARE,
    pub EvtDeviceSelfManagedIoCleanup: PFN_WDF_DEVICE_SELF_MANAGED_IO_CLEANUP,
    pub EvtDeviceSelfManagedIoFlush: PFN_WDF_DEVICE_SELF_MANAGED_IO_FLUSH,
    pub EvtDeviceSelfManagedIoInit: PFN_WDF_DEVICE_SELF_MANAGED_IO_INIT,
    pub EvtDeviceSelfManagedIoSuspend: PFN_WDF_DEVICE_SELF_MANAGED_IO_SUSPEND,
    pub EvtDeviceSelfManagedIoRestart: PFN_WDF_DEVICE_SELF_MANAGED_IO_RESTART,
    pub EvtDeviceSurpriseRemoval: PFN_WDF_DEVICE_SURPRISE_REMOVAL,
    pub EvtDeviceQueryRemove: PFN_WDF_DEVICE_QUERY_REMOVE,
    pub EvtDeviceQueryStop: PFN_WDF_DEVICE_QUERY_STOP,
    pub EvtDeviceUsageNotification: PFN_WDF_DEVICE_USAGE_NOTIFICATION,
    pub EvtDeviceRelationsQuery: PFN_WDF_DEVICE_RELATIONS_QUERY,
    pub EvtDeviceUsageNotificationEx: PFN_WDF_DEVICE_USAGE_NOTIFICATION_EX,
}
pub type WDF_PNPPOWER_EVENT_CALLBACKS = _WDF_PNPPOWER_EVENT_CALLBACKS;
pub type PWDF_PNPPOWER_EVENT_CALLBACKS = *mut WDF_PNPPOWER_EVENT_CALLBACKS;

/// `WDF_OBJECT_CONTEXT_TYPE_INFO` (wdfobject.h).
#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct _WDF_OBJECT_CONTEXT_TYPE_INFO {
    pub Size: ULONG,
    pub ContextName: LPCSTR,
    pub ContextSize: usize,
    pub UniqueType: PCWDF_OBJECT_CONTEXT_TYPE_INFO,
    pub EvtDriverGetUniqueContextType: PFN_GET_UNIQUE_CONTEXT_TYPE,
}
pub type WDF_OBJECT_CONTEXT_TYPE_INFO = _WDF_OBJECT_CONTEXT_TYPE_INFO;
pub type PCWDF_OBJECT_CONTEXT_TYPE_INFO = *const WDF_OBJECT_CONTEXT_TYPE_INFO;

/// `WDF_OBJECT_ATTRIBUTES` (wdfobject.h).
#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct _WDF_OBJECT_ATTRIBUTES {
    pub Size: ULONG,
    pub EvtCleanupCallback: PFN_WDF_OBJECT_CONTEXT_CLEANUP,
    pub EvtDestroyCallback: PFN_WDF_OBJECT_CONTEXT_DESTROY,
    pub ExecutionLevel: WDF_EXECUTION_LEVEL,
    pub SynchronizationScope: WDF_SYNCHRONIZATION_SCOPE,
    pub ParentObject: WDFOBJECT,
    pub ContextSizeOverride: usize,
    pub ContextTypeInfo: PCWDF_OBJECT_CONTEXT_TYPE_INFO,
}
pub type WDF_OBJECT_ATTRIBUTES = _WDF_OBJECT_ATTRIBUTES;
pub type PWDF_OBJECT_ATTRIBUTES = *mut WDF_OBJECT_ATTRIBUTES;

/// `WDF_IO_QUEUE_CONFIG::Settings.Parallel` (wdfio.h).
#[repr(C)]
#[derive(Debug, Default, Copy, Clone)]
pub struct WDF_IO_QUEUE_CONFIG_PARALLEL {
    pub NumberOfPresentedRequests: ULONG,
}
/// `WDF_IO_QUEUE_CONFIG::Settings` (wdfio.h).
#[repr(C)]
#[derive(Copy, Clone)]
pub union WDF_IO_QUEUE_CONFIG_SETTINGS {
    pub Parallel: WDF_IO_QUEUE_CONFIG_PARALLEL,
}

/// `WDF_IO_QUEUE_CONFIG` (wdfio.h).
#[repr(C)]
#[derive(Copy, Clone)]
pub struct _WDF_IO_QUEUE_CONFIG {
    pub Size: ULONG,
    pub DispatchType: WDF_IO_QUEUE_DISPATCH_TYPE,
    pub PowerManaged: WDF_TRI_STATE,
    pub AllowZeroLengthRequests: BOOLEAN,
    pub DefaultQueue: BOOLEAN,
    pub EvtIoDefault: PFN_WDF_IO_QUEUE_IO_DEFAULT,
    pub EvtIoRead: PFN_WDF_IO_QUEUE_IO_READ,
    pub EvtIoWrite: PFN_WDF_IO_QUEUE_IO_WRITE,
    pub EvtIoDeviceControl: PFN_WDF_IO_QUEUE_IO_DEVICE_CONTROL,
    pub EvtIoInternalDeviceControl: PFN_WDF_IO_QUEUE_IO_INTERNAL_DEVICE_CONTROL,
    pub EvtIoStop: PFN_WDF_IO_QUEUE_IO_STOP,
    pub EvtIoResume: PFN_WDF_IO_QUEUE_IO_RESUME,
    pub EvtIoCanceledOnQueue: PFN_WDF_IO_QUEUE_IO_CANCELED_ON_QUEUE,
    pub Settings: WDF_IO_QUEUE_CONFIG_SETTINGS,
    pub Driver: WDFDRIVER,
}
pub type WDF_IO_QUEUE_CONFIG = _WDF_IO_QUEUE_CONFIG;
pub type PWDF_IO_QUEUE_CONFIG = *mut WDF_IO_QUEUE_CONFIG;

/// `WDF_TIMER_CONFIG` (wdftimer.h).
#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct _WDF_TIMER_CONFIG {
    pub Size: ULONG,
    pub EvtTimerFunc: PFN_WDF_TIMER,
    pub Period: ULONG,
    pub AutomaticSerialization: BOOLEAN,
    pub TolerableDelay: ULONG,
    /// The header aligns the next field to 8 (`DECLSPEC_ALIGN(8)`); bindgen spells the gap
    /// this way too.
    pub __bindgen_padding_0: [u8; 4],
    pub UseHighResolutionTimer: BOOLEAN,
}
pub type WDF_TIMER_CONFIG = _WDF_TIMER_CONFIG;
pub type PWDF_TIMER_CONFIG = *mut WDF_TIMER_CONFIG;

/// `WDF_WORKITEM_CONFIG` (wdfworkitem.h).
#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct _WDF_WORKITEM_CONFIG {
    pub Size: ULONG,
    pub EvtWorkItemFunc: PFN_WDF_WORKITEM,
    pub AutomaticSerialization: BOOLEAN,
}
pub type WDF_WORKITEM_CONFIG = _WDF_WORKITEM_CONFIG;
pub type PWDF_WORKITEM_CONFIG = *mut WDF_WORKITEM_CONFIG;

/// `WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS` (wdfdevice.h).
#[repr(C)]
#[derive(Debug, Default, Copy, Clone)]
pub struct _WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS {
    pub Size: ULONG,
    pub IdleCaps: WDF_POWER_POLICY_S0_IDLE_CAPABILITIES,
    pub DxState: DEVICE_POWER_STATE,
    pub IdleTimeout: ULONG,
    pub UserControlOfIdleSettings: WDF_POWER_POLICY_S0_IDLE_USER_CONTROL,
    pub Enabled: WDF_TRI_STATE,
    pub PowerUpIdleDeviceOnSystemWake: WDF_TRI_STATE,
    pub IdleTimeoutType: WDF_POWER_POLICY_IDLE_TIMEOUT_TYPE,
    pub ExcludeD3Cold: WDF_TRI_STATE,
}
pub type WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS = _WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS;
pub type PWDF_DEVICE_POWER_POLICY_IDLE_SETTINGS = *mut WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS;

zeroed_default!(
    _UNICODE_STRING,
    _WDF_DRIVER_CONFIG,
    _WDF_PNPPOWER_EVENT_CALLBACKS,
    _WDF_OBJECT_CONTEXT_TYPE_INFO,
    _WDF_OBJECT_ATTRIBUTES,
    WDF_IO_QUEUE_CONFIG_SETTINGS,
    _WDF_IO_QUEUE_CONFIG,
    _WDF_TIMER_CONFIG,
    _WDF_WORKITEM_CONFIG,
    _WDF_DRIVER_GLOBALS,
);

// The KMDF function table and the globals the KMDF stub library (WdfDriverEntry.lib)
// defines and fills before DriverEntry; a driver built with this crate defines them itself,
// under the stub's names, and whoever loads it fills them (`cargo pagerun` does, from the
// PDB's symbols).
#[unsafe(no_mangle)]
pub static mut WdfFunctions_01033: *const WDFFUNC = core::ptr::null();
pub use self::WdfFunctions_01033 as WdfFunctions;
#[unsafe(no_mangle)]
pub static mut WdfDriverGlobals: PWDF_DRIVER_GLOBALS = core::ptr::null_mut();
#[unsafe(no_mangle)]
pub static mut WdfFunctionCount: ULONG = 0;

/// The symbol the MSVC toolchain references from any object that uses floating point
/// (LLVM marks every such object, used or not); the C runtime defines it, which a driver
/// links without. wdk-sys defines it the same way.
#[unsafe(no_mangle)]
pub static _fltused: i32 = 0;

/// The framework methods the driver calls: for each, its function-pointer type
/// (`PFN_<NAME>`, from its header's declaration), its `_WDFFUNCENUM` index (KMDF 1.33's
/// `wdffuncenum.h`) and the call `call_unsafe_wdf_function_binding!` expands to.
macro_rules! wdf_functions {
    ($(
        $name:ident / $pfn:ident / $index:ident = $number:literal
            ($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?;
    )*) => {
        $(
            pub type $pfn =
                Option<unsafe extern "C" fn(DriverGlobals: PWDF_DRIVER_GLOBALS $(, $arg: $ty)*) $(-> $ret)?>;
        )*

        /// `WDFFUNCENUM` (wdffuncenum.h, KMDF 1.33): the methods' table indices.
        pub mod _WDFFUNCENUM {
            pub type Type = i32;
            $(pub const $index: Type = $number;)*
            /// Entries of KMDF 1.33's function table.
            pub const WdfFunctionTableNumEntries: Type = 458;
        }

        #[doc(hidden)]
        pub mod __wdf_calls {
            use super::*;
            $(
                wdf_functions!(@call $name $pfn $index ($($arg: $ty),*) $(-> $ret)?);
            )*
        }
    };
    (@call $name:ident $pfn:ident $index:ident ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        #[must_use]
        #[inline(always)]
        pub unsafe fn $name($($arg: $ty),*) -> $ret {
            // SAFETY: the caller's contract (the method's); see `table_entry`.
            match unsafe { table_entry::<$pfn>(_WDFFUNCENUM::$index) } {
                // SAFETY: the entry is the method; its contract is the caller's.
                Some(function) => unsafe { function(WdfDriverGlobals, $($arg),*) },
                None => unreachable!("empty KMDF function table entry"),
            }
        }
    };
    (@call $name:ident $pfn:ident $index:ident ($($arg:ident: $ty:ty),*)) => {
        #[inline(always)]
        pub unsafe fn $name($($arg: $ty),*) {
            // SAFETY: the caller's contract (the method's); see `table_entry`.
            match unsafe { table_entry::<$pfn>(_WDFFUNCENUM::$index) } {
                // SAFETY: the entry is the method; its contract is the caller's.
                Some(function) => unsafe { function(WdfDriverGlobals, $($arg),*) },
                None => unreachable!("empty KMDF function table entry"),
            }
        }
    };
}

/// The table entry at `index` as the method's function-pointer type `P`, with the bounds
/// check `wdk-sys` makes (against `WdfFunctionCount`, KMDF 1.25 and later).
///
/// # Safety
///
/// The framework has filled `WdfFunctions` and `WdfFunctionCount`, and `P` is the type of
/// the method at `index`.
#[inline(always)]
#[allow(clippy::inline_always)]
unsafe fn table_entry<P>(index: i32) -> P {
    const { assert!(size_of::<P>() == size_of::<WDFFUNC>()) };
    // SAFETY: the framework's table holds `WdfFunctionCount` entries (caller), which it
    // never changes; the index is checked against it below.
    let table = unsafe { core::slice::from_raw_parts(WdfFunctions, WdfFunctionCount as usize) };
    let entry = table[usize::try_from(index).unwrap_or(usize::MAX)];
    // SAFETY: same size (asserted), and the entry at `index` is the method of type `P`.
    unsafe { core::mem::transmute_copy::<WDFFUNC, P>(&entry) }
}

/// `wdk_sys::call_unsafe_wdf_function_binding!(WdfMethod, args...)`: calls the framework
/// method through its table entry with the driver globals, as the C inline of each
/// method's header does. Must be used inside `unsafe`.
#[macro_export]
macro_rules! call_unsafe_wdf_function_binding {
    ($name:ident $(, $arg:expr)* $(,)?) => {
        $crate::__wdf_calls::$name($($arg),*)
    };
}

wdf_functions! {
    WdfDeviceGetDevicePowerState / PFN_WDFDEVICEGETDEVICEPOWERSTATE
        / WdfDeviceGetDevicePowerStateTableIndex = 44
        (Device: WDFDEVICE) -> WDF_DEVICE_POWER_STATE;
    WdfDeviceAssignS0IdleSettings / PFN_WDFDEVICEASSIGNS0IDLESETTINGS
        / WdfDeviceAssignS0IdleSettingsTableIndex = 46
        (Device: WDFDEVICE, Settings: PWDF_DEVICE_POWER_POLICY_IDLE_SETTINGS) -> NTSTATUS;
    WdfDeviceOpenRegistryKey / PFN_WDFDEVICEOPENREGISTRYKEY
        / WdfDeviceOpenRegistryKeyTableIndex = 48
        (Device: WDFDEVICE, DeviceInstanceKeyType: ULONG, DesiredAccess: ACCESS_MASK,
         KeyAttributes: PWDF_OBJECT_ATTRIBUTES, Key: *mut WDFKEY) -> NTSTATUS;
    WdfDeviceSetSpecialFileSupport / PFN_WDFDEVICESETSPECIALFILESUPPORT
        / WdfDeviceSetSpecialFileSupportTableIndex = 49
        (Device: WDFDEVICE, FileType: WDF_SPECIAL_FILE_TYPE, FileTypeIsSupported: BOOLEAN);
    WdfDeviceInitSetPnpPowerEventCallbacks / PFN_WDFDEVICEINITSETPNPPOWEREVENTCALLBACKS
        / WdfDeviceInitSetPnpPowerEventCallbacksTableIndex = 55
        (DeviceInit: PWDFDEVICE_INIT, PnpPowerEventCallbacks: PWDF_PNPPOWER_EVENT_CALLBACKS);
    WdfDeviceInitSetPowerNotPageable / PFN_WDFDEVICEINITSETPOWERNOTPAGEABLE
        / WdfDeviceInitSetPowerNotPageableTableIndex = 63
        (DeviceInit: PWDFDEVICE_INIT);
    WdfDeviceInitSetPowerPageable / PFN_WDFDEVICEINITSETPOWERPAGEABLE
        / WdfDeviceInitSetPowerPageableTableIndex = 64
        (DeviceInit: PWDFDEVICE_INIT);
    WdfDeviceInitAssignSDDLString / PFN_WDFDEVICEINITASSIGNSDDLSTRING
        / WdfDeviceInitAssignSDDLStringTableIndex = 68
        (DeviceInit: PWDFDEVICE_INIT, SDDLString: PCUNICODE_STRING) -> NTSTATUS;
    WdfDeviceCreate / PFN_WDFDEVICECREATE / WdfDeviceCreateTableIndex = 75
        (DeviceInit: *mut PWDFDEVICE_INIT, DeviceAttributes: PWDF_OBJECT_ATTRIBUTES,
         Device: *mut WDFDEVICE) -> NTSTATUS;
    WdfDeviceCreateDeviceInterface / PFN_WDFDEVICECREATEDEVICEINTERFACE
        / WdfDeviceCreateDeviceInterfaceTableIndex = 77
        (Device: WDFDEVICE, InterfaceClassGUID: *const GUID, ReferenceString: PCUNICODE_STRING)
        -> NTSTATUS;
    WdfDriverCreate / PFN_WDFDRIVERCREATE / WdfDriverCreateTableIndex = 116
        (DriverObject: PDRIVER_OBJECT, RegistryPath: PCUNICODE_STRING,
         DriverAttributes: PWDF_OBJECT_ATTRIBUTES, DriverConfig: PWDF_DRIVER_CONFIG,
         Driver: *mut WDFDRIVER) -> NTSTATUS;
    WdfDriverWdmGetDriverObject / PFN_WDFDRIVERWDMGETDRIVEROBJECT
        / WdfDriverWdmGetDriverObjectTableIndex = 118
        (Driver: WDFDRIVER) -> PDRIVER_OBJECT;
    WdfFdoInitOpenRegistryKey / PFN_WDFFDOINITOPENREGISTRYKEY
        / WdfFdoInitOpenRegistryKeyTableIndex = 125
        (DeviceInit: PWDFDEVICE_INIT, DeviceInstanceKeyType: ULONG, DesiredAccess: ACCESS_MASK,
         KeyAttributes: PWDF_OBJECT_ATTRIBUTES, Key: *mut WDFKEY) -> NTSTATUS;
    WdfIoQueueCreate / PFN_WDFIOQUEUECREATE / WdfIoQueueCreateTableIndex = 152
        (Device: WDFDEVICE, Config: PWDF_IO_QUEUE_CONFIG, QueueAttributes: PWDF_OBJECT_ATTRIBUTES,
         Queue: *mut WDFQUEUE) -> NTSTATUS;
    WdfIoQueueGetDevice / PFN_WDFIOQUEUEGETDEVICE / WdfIoQueueGetDeviceTableIndex = 157
        (Queue: WDFQUEUE) -> WDFDEVICE;
    WdfObjectGetTypedContextWorker / PFN_WDFOBJECTGETTYPEDCONTEXTWORKER
        / WdfObjectGetTypedContextWorkerTableIndex = 202
        (Handle: WDFOBJECT, TypeInfo: PCWDF_OBJECT_CONTEXT_TYPE_INFO) -> PVOID;
    WdfRegistryClose / PFN_WDFREGISTRYCLOSE / WdfRegistryCloseTableIndex = 231
        (Key: WDFKEY);
    WdfRegistryQueryULong / PFN_WDFREGISTRYQUERYULONG / WdfRegistryQueryULongTableIndex = 240
        (Key: WDFKEY, ValueName: PCUNICODE_STRING, Value: PULONG) -> NTSTATUS;
    WdfRegistryAssignULong / PFN_WDFREGISTRYASSIGNULONG
        / WdfRegistryAssignULongTableIndex = 246
        (Key: WDFKEY, ValueName: PCUNICODE_STRING, Value: ULONG) -> NTSTATUS;
    WdfRequestCompleteWithInformation / PFN_WDFREQUESTCOMPLETEWITHINFORMATION
        / WdfRequestCompleteWithInformationTableIndex = 265
        (Request: WDFREQUEST, Status: NTSTATUS, Information: ULONG_PTR);
    WdfRequestRetrieveInputBuffer / PFN_WDFREQUESTRETRIEVEINPUTBUFFER
        / WdfRequestRetrieveInputBufferTableIndex = 269
        (Request: WDFREQUEST, MinimumRequiredLength: usize, Buffer: *mut PVOID,
         Length: *mut usize) -> NTSTATUS;
    WdfRequestRetrieveOutputBuffer / PFN_WDFREQUESTRETRIEVEOUTPUTBUFFER
        / WdfRequestRetrieveOutputBufferTableIndex = 270
        (Request: WDFREQUEST, MinimumRequiredSize: usize, Buffer: *mut PVOID,
         Length: *mut usize) -> NTSTATUS;
    WdfRequestForwardToIoQueue / PFN_WDFREQUESTFORWARDTOIOQUEUE
        / WdfRequestForwardToIoQueueTableIndex = 281
        (Request: WDFREQUEST, DestinationQueue: WDFQUEUE) -> NTSTATUS;
    WdfSpinLockCreate / PFN_WDFSPINLOCKCREATE / WdfSpinLockCreateTableIndex = 315
        (SpinLockAttributes: PWDF_OBJECT_ATTRIBUTES, SpinLock: *mut WDFSPINLOCK) -> NTSTATUS;
    WdfSpinLockAcquire / PFN_WDFSPINLOCKACQUIRE / WdfSpinLockAcquireTableIndex = 316
        (SpinLock: WDFSPINLOCK);
    WdfSpinLockRelease / PFN_WDFSPINLOCKRELEASE / WdfSpinLockReleaseTableIndex = 317
        (SpinLock: WDFSPINLOCK);
    WdfTimerCreate / PFN_WDFTIMERCREATE / WdfTimerCreateTableIndex = 318
        (Config: PWDF_TIMER_CONFIG, Attributes: PWDF_OBJECT_ATTRIBUTES, Timer: *mut WDFTIMER)
        -> NTSTATUS;
    WdfTimerStart / PFN_WDFTIMERSTART / WdfTimerStartTableIndex = 319
        (Timer: WDFTIMER, DueTime: LONGLONG) -> BOOLEAN;
    WdfTimerStop / PFN_WDFTIMERSTOP / WdfTimerStopTableIndex = 320
        (Timer: WDFTIMER, Wait: BOOLEAN) -> BOOLEAN;
    WdfTimerGetParentObject / PFN_WDFTIMERGETPARENTOBJECT
        / WdfTimerGetParentObjectTableIndex = 321
        (Timer: WDFTIMER) -> WDFOBJECT;
    WdfWorkItemCreate / PFN_WDFWORKITEMCREATE / WdfWorkItemCreateTableIndex = 379
        (Config: PWDF_WORKITEM_CONFIG, Attributes: PWDF_OBJECT_ATTRIBUTES,
         WorkItem: *mut WDFWORKITEM) -> NTSTATUS;
    WdfWorkItemEnqueue / PFN_WDFWORKITEMENQUEUE / WdfWorkItemEnqueueTableIndex = 380
        (WorkItem: WDFWORKITEM);
    WdfWorkItemGetParentObject / PFN_WDFWORKITEMGETPARENTOBJECT
        / WdfWorkItemGetParentObjectTableIndex = 381
        (WorkItem: WDFWORKITEM) -> WDFOBJECT;
    WdfWorkItemFlush / PFN_WDFWORKITEMFLUSH / WdfWorkItemFlushTableIndex = 382
        (WorkItem: WDFWORKITEM);
    WdfDeviceStopIdleActual / PFN_WDFDEVICESTOPIDLEACTUAL
        / WdfDeviceStopIdleActualTableIndex = 438
        (Device: WDFDEVICE, WaitForD0: BOOLEAN, Tag: PVOID, Line: LONG, File: PCCH) -> NTSTATUS;
    WdfDeviceResumeIdleActual / PFN_WDFDEVICERESUMEIDLEACTUAL
        / WdfDeviceResumeIdleActualTableIndex = 439
        (Device: WDFDEVICE, Tag: PVOID, Line: LONG, File: PCCH);
}

/// The layout facts, checked against this crate when its test target builds (the driver
/// checks the same file against whichever bindings it is built with).
#[cfg(test)]
mod layout_facts {
    use crate as wdk_sys;
    include!("../../../src/layout_facts.rs");
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::sync::Mutex;

    static CALLS: Mutex<std::vec::Vec<(usize, usize, i64)>> = Mutex::new(std::vec::Vec::new());

    unsafe extern "C" fn timer_start(
        globals: PWDF_DRIVER_GLOBALS,
        timer: WDFTIMER,
        due: LONGLONG,
    ) -> BOOLEAN {
        CALLS
            .lock()
            .expect("lock")
            .push((globals.addr(), timer.addr(), due));
        1
    }

    /// `call_unsafe_wdf_function_binding!` calls the table entry at the method's KMDF 1.33
    /// index with the driver globals first, and refuses an index past `WdfFunctionCount`,
    /// as wdk-sys' macro does.
    #[test]
    fn methods_are_called_through_their_table_entry_with_the_globals() {
        let mut table: std::vec::Vec<WDFFUNC> = std::vec![None; 458];
        // SAFETY: a function pointer of another signature stored in the table's entry type,
        // as the framework's table holds them; only called back as its own type.
        table[319] =
            unsafe { core::mem::transmute::<PFN_WDFTIMERSTART, WDFFUNC>(Some(timer_start)) };
        let mut globals = WDF_DRIVER_GLOBALS::default();
        // SAFETY: single-threaded test; the statics point at locals that outlive the calls.
        unsafe {
            WdfFunctions = table.as_ptr();
            WdfFunctionCount = 458;
            WdfDriverGlobals = &raw mut globals;
        }
        let timer: WDFTIMER = 0x1234 as WDFTIMER;
        // SAFETY: entry 319 is `timer_start`, of WdfTimerStart's type.
        let queued = unsafe { call_unsafe_wdf_function_binding!(WdfTimerStart, timer, -10_000,) };
        assert_eq!(queued, 1);
        assert_eq!(
            CALLS.lock().expect("lock").as_slice(),
            [((&raw mut globals).addr(), 0x1234, -10_000)]
        );
        // A framework whose table is shorter than the index: the bounds check panics.
        // SAFETY: as above, with a count that ends before entry 319.
        unsafe { WdfFunctionCount = 300 };
        let short = std::panic::catch_unwind(|| {
            // SAFETY: the call never reaches the table entry.
            unsafe { call_unsafe_wdf_function_binding!(WdfTimerStart, timer, 0) }
        });
        assert!(short.is_err());
        // SAFETY: leaves no pointer to the locals behind.
        unsafe {
            WdfFunctions = core::ptr::null();
            WdfFunctionCount = 0;
            WdfDriverGlobals = core::ptr::null_mut();
        }
    }
}
