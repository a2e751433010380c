// Layout facts of the WDK and KMDF 1.33 declarations the driver fills, reads or indexes:
// sizes and field offsets on x64, enumeration values and function-table indices, each with
// the header it comes from. Compile-time assertions against whichever `wdk_sys` is in
// scope: the driver includes this file (src/lib.rs, `mod layout_facts`), so a Windows build
// checks it against the real wdk-sys and the Linux image build against the stand-in,
// whose own test build (crates/standin-wdk-sys) checks it too. A failing fact names itself.
//
// Only fields the driver uses are listed (a structure's size covers the rest).

macro_rules! facts {
    ($($header:literal { $($what:literal: $actual:expr => $expected:expr;)* })*) => {
        const _: () = {
            $($(assert!($actual == $expected, concat!($header, ": ", $what));)*)*
        };
    };
}

facts! {
    "wdfdriver.h" {
        "sizeof(WDF_DRIVER_CONFIG) == 32": size_of::<wdk_sys::WDF_DRIVER_CONFIG>() => 32;
        "WDF_DRIVER_CONFIG.Size at 0": core::mem::offset_of!(wdk_sys::WDF_DRIVER_CONFIG, Size) => 0;
        "WDF_DRIVER_CONFIG.EvtDriverDeviceAdd at 8":
            core::mem::offset_of!(wdk_sys::WDF_DRIVER_CONFIG, EvtDriverDeviceAdd) => 8;
        "WDF_DRIVER_CONFIG.EvtDriverUnload at 16":
            core::mem::offset_of!(wdk_sys::WDF_DRIVER_CONFIG, EvtDriverUnload) => 16;
    }
    "wdfdevice.h" {
        "sizeof(WDF_PNPPOWER_EVENT_CALLBACKS) == 144":
            size_of::<wdk_sys::WDF_PNPPOWER_EVENT_CALLBACKS>() => 144;
        "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDeviceD0Entry at 8":
            core::mem::offset_of!(wdk_sys::WDF_PNPPOWER_EVENT_CALLBACKS, EvtDeviceD0Entry) => 8;
        "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDeviceD0Exit at 24":
            core::mem::offset_of!(wdk_sys::WDF_PNPPOWER_EVENT_CALLBACKS, EvtDeviceD0Exit) => 24;
        "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDevicePrepareHardware at 40":
            core::mem::offset_of!(wdk_sys::WDF_PNPPOWER_EVENT_CALLBACKS, EvtDevicePrepareHardware) => 40;
        "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDeviceReleaseHardware at 48":
            core::mem::offset_of!(wdk_sys::WDF_PNPPOWER_EVENT_CALLBACKS, EvtDeviceReleaseHardware) => 48;
        "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDeviceSelfManagedIoCleanup at 56":
            core::mem::offset_of!(wdk_sys::WDF_PNPPOWER_EVENT_CALLBACKS, EvtDeviceSelfManagedIoCleanup) => 56;
        "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDeviceSelfManagedIoFlush at 64":
            core::mem::offset_of!(wdk_sys::WDF_PNPPOWER_EVENT_CALLBACKS, EvtDeviceSelfManagedIoFlush) => 64;
        "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDeviceSelfManagedIoInit at 72":
            core::mem::offset_of!(wdk_sys::WDF_PNPPOWER_EVENT_CALLBACKS, EvtDeviceSelfManagedIoInit) => 72;
        "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDeviceSelfManagedIoSuspend at 80":
            core::mem::offset_of!(wdk_sys::WDF_PNPPOWER_EVENT_CALLBACKS, EvtDeviceSelfManagedIoSuspend) => 80;
        "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDeviceSelfManagedIoRestart at 88":
            core::mem::offset_of!(wdk_sys::WDF_PNPPOWER_EVENT_CALLBACKS, EvtDeviceSelfManagedIoRestart) => 88;
        "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDeviceUsageNotificationEx at 136":
            core::mem::offset_of!(wdk_sys::WDF_PNPPOWER_EVENT_CALLBACKS, EvtDeviceUsageNotificationEx) => 136;
        "sizeof(WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS) == 36":
            size_of::<wdk_sys::WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS>() => 36;
        "WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS.IdleCaps at 4":
            core::mem::offset_of!(wdk_sys::WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS, IdleCaps) => 4;
        "WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS.DxState at 8":
            core::mem::offset_of!(wdk_sys::WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS, DxState) => 8;
        "WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS.IdleTimeout at 12":
            core::mem::offset_of!(wdk_sys::WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS, IdleTimeout) => 12;
        "WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS.UserControlOfIdleSettings at 16":
            core::mem::offset_of!(wdk_sys::WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS, UserControlOfIdleSettings) => 16;
        "WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS.Enabled at 20":
            core::mem::offset_of!(wdk_sys::WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS, Enabled) => 20;
        "WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS.PowerUpIdleDeviceOnSystemWake at 24":
            core::mem::offset_of!(wdk_sys::WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS, PowerUpIdleDeviceOnSystemWake) => 24;
        "WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS.IdleTimeoutType at 28":
            core::mem::offset_of!(wdk_sys::WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS, IdleTimeoutType) => 28;
        "WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS.ExcludeD3Cold at 32":
            core::mem::offset_of!(wdk_sys::WDF_DEVICE_POWER_POLICY_IDLE_SETTINGS, ExcludeD3Cold) => 32;
        "WdfPowerDeviceD3 == 4": wdk_sys::_WDF_POWER_DEVICE_STATE::WdfPowerDeviceD3 => 4;
        "WdfPowerDeviceD3Final == 5": wdk_sys::_WDF_POWER_DEVICE_STATE::WdfPowerDeviceD3Final => 5;
        "WdfSpecialFilePaging == 1": wdk_sys::_WDF_SPECIAL_FILE_TYPE::WdfSpecialFilePaging => 1;
        "WdfSpecialFileDump == 3": wdk_sys::_WDF_SPECIAL_FILE_TYPE::WdfSpecialFileDump => 3;
        "IdleCannotWakeFromS0 == 1":
            wdk_sys::_WDF_POWER_POLICY_S0_IDLE_CAPABILITIES::IdleCannotWakeFromS0 => 1;
        "IdleAllowUserControl == 2":
            wdk_sys::_WDF_POWER_POLICY_S0_IDLE_USER_CONTROL::IdleAllowUserControl => 2;
        "DriverManagedIdleTimeout == 0":
            wdk_sys::_WDF_POWER_POLICY_IDLE_TIMEOUT_TYPE::DriverManagedIdleTimeout => 0;
    }
    "wdfobject.h" {
        "sizeof(WDF_OBJECT_ATTRIBUTES) == 56": size_of::<wdk_sys::WDF_OBJECT_ATTRIBUTES>() => 56;
        "WDF_OBJECT_ATTRIBUTES.EvtCleanupCallback at 8":
            core::mem::offset_of!(wdk_sys::WDF_OBJECT_ATTRIBUTES, EvtCleanupCallback) => 8;
        "WDF_OBJECT_ATTRIBUTES.ExecutionLevel at 24":
            core::mem::offset_of!(wdk_sys::WDF_OBJECT_ATTRIBUTES, ExecutionLevel) => 24;
        "WDF_OBJECT_ATTRIBUTES.SynchronizationScope at 28":
            core::mem::offset_of!(wdk_sys::WDF_OBJECT_ATTRIBUTES, SynchronizationScope) => 28;
        "WDF_OBJECT_ATTRIBUTES.ParentObject at 32":
            core::mem::offset_of!(wdk_sys::WDF_OBJECT_ATTRIBUTES, ParentObject) => 32;
        "WDF_OBJECT_ATTRIBUTES.ContextTypeInfo at 48":
            core::mem::offset_of!(wdk_sys::WDF_OBJECT_ATTRIBUTES, ContextTypeInfo) => 48;
        "sizeof(WDF_OBJECT_CONTEXT_TYPE_INFO) == 40":
            size_of::<wdk_sys::WDF_OBJECT_CONTEXT_TYPE_INFO>() => 40;
        "WDF_OBJECT_CONTEXT_TYPE_INFO.ContextName at 8":
            core::mem::offset_of!(wdk_sys::WDF_OBJECT_CONTEXT_TYPE_INFO, ContextName) => 8;
        "WDF_OBJECT_CONTEXT_TYPE_INFO.ContextSize at 16":
            core::mem::offset_of!(wdk_sys::WDF_OBJECT_CONTEXT_TYPE_INFO, ContextSize) => 16;
        "WDF_OBJECT_CONTEXT_TYPE_INFO.UniqueType at 24":
            core::mem::offset_of!(wdk_sys::WDF_OBJECT_CONTEXT_TYPE_INFO, UniqueType) => 24;
        "WDF_OBJECT_CONTEXT_TYPE_INFO.EvtDriverGetUniqueContextType at 32":
            core::mem::offset_of!(wdk_sys::WDF_OBJECT_CONTEXT_TYPE_INFO, EvtDriverGetUniqueContextType) => 32;
        "WdfExecutionLevelInheritFromParent == 1":
            wdk_sys::_WDF_EXECUTION_LEVEL::WdfExecutionLevelInheritFromParent => 1;
        "WdfExecutionLevelPassive == 2": wdk_sys::_WDF_EXECUTION_LEVEL::WdfExecutionLevelPassive => 2;
        "WdfSynchronizationScopeInheritFromParent == 1":
            wdk_sys::_WDF_SYNCHRONIZATION_SCOPE::WdfSynchronizationScopeInheritFromParent => 1;
    }
    "wdfio.h" {
        "sizeof(WDF_IO_QUEUE_CONFIG) == 96": size_of::<wdk_sys::WDF_IO_QUEUE_CONFIG>() => 96;
        "WDF_IO_QUEUE_CONFIG.DispatchType at 4":
            core::mem::offset_of!(wdk_sys::WDF_IO_QUEUE_CONFIG, DispatchType) => 4;
        "WDF_IO_QUEUE_CONFIG.PowerManaged at 8":
            core::mem::offset_of!(wdk_sys::WDF_IO_QUEUE_CONFIG, PowerManaged) => 8;
        "WDF_IO_QUEUE_CONFIG.DefaultQueue at 13":
            core::mem::offset_of!(wdk_sys::WDF_IO_QUEUE_CONFIG, DefaultQueue) => 13;
        "WDF_IO_QUEUE_CONFIG.EvtIoDeviceControl at 40":
            core::mem::offset_of!(wdk_sys::WDF_IO_QUEUE_CONFIG, EvtIoDeviceControl) => 40;
        "WDF_IO_QUEUE_CONFIG.Settings at 80":
            core::mem::offset_of!(wdk_sys::WDF_IO_QUEUE_CONFIG, Settings) => 80;
        "WdfIoQueueDispatchSequential == 1":
            wdk_sys::_WDF_IO_QUEUE_DISPATCH_TYPE::WdfIoQueueDispatchSequential => 1;
        "WdfFalse == 0 (wdftypes.h)": wdk_sys::_WDF_TRI_STATE::WdfFalse => 0;
        "WdfTrue == 1 (wdftypes.h)": wdk_sys::_WDF_TRI_STATE::WdfTrue => 1;
        "WdfUseDefault == 2 (wdftypes.h)": wdk_sys::_WDF_TRI_STATE::WdfUseDefault => 2;
    }
    "wdftimer.h" {
        "sizeof(WDF_TIMER_CONFIG) == 40": size_of::<wdk_sys::WDF_TIMER_CONFIG>() => 40;
        "WDF_TIMER_CONFIG.EvtTimerFunc at 8":
            core::mem::offset_of!(wdk_sys::WDF_TIMER_CONFIG, EvtTimerFunc) => 8;
        "WDF_TIMER_CONFIG.Period at 16": core::mem::offset_of!(wdk_sys::WDF_TIMER_CONFIG, Period) => 16;
        "WDF_TIMER_CONFIG.AutomaticSerialization at 20":
            core::mem::offset_of!(wdk_sys::WDF_TIMER_CONFIG, AutomaticSerialization) => 20;
        "WDF_TIMER_CONFIG.TolerableDelay at 24":
            core::mem::offset_of!(wdk_sys::WDF_TIMER_CONFIG, TolerableDelay) => 24;
        "WDF_TIMER_CONFIG.UseHighResolutionTimer at 32 (DECLSPEC_ALIGN(8))":
            core::mem::offset_of!(wdk_sys::WDF_TIMER_CONFIG, UseHighResolutionTimer) => 32;
    }
    "wdfworkitem.h" {
        "sizeof(WDF_WORKITEM_CONFIG) == 24": size_of::<wdk_sys::WDF_WORKITEM_CONFIG>() => 24;
        "WDF_WORKITEM_CONFIG.EvtWorkItemFunc at 8":
            core::mem::offset_of!(wdk_sys::WDF_WORKITEM_CONFIG, EvtWorkItemFunc) => 8;
        "WDF_WORKITEM_CONFIG.AutomaticSerialization at 16":
            core::mem::offset_of!(wdk_sys::WDF_WORKITEM_CONFIG, AutomaticSerialization) => 16;
    }
    "ntdef.h, guiddef.h, wdm.h" {
        "sizeof(UNICODE_STRING) == 16": size_of::<wdk_sys::UNICODE_STRING>() => 16;
        "UNICODE_STRING.MaximumLength at 2":
            core::mem::offset_of!(wdk_sys::UNICODE_STRING, MaximumLength) => 2;
        "UNICODE_STRING.Buffer at 8": core::mem::offset_of!(wdk_sys::UNICODE_STRING, Buffer) => 8;
        "sizeof(GUID) == 16": size_of::<wdk_sys::GUID>() => 16;
        "GUID.Data2 at 4": core::mem::offset_of!(wdk_sys::GUID, Data2) => 4;
        "GUID.Data3 at 6": core::mem::offset_of!(wdk_sys::GUID, Data3) => 6;
        "GUID.Data4 at 8": core::mem::offset_of!(wdk_sys::GUID, Data4) => 8;
        "sizeof(DRIVER_OBJECT) == 336": size_of::<wdk_sys::DRIVER_OBJECT>() => 336;
        "DRIVER_OBJECT.DriverStart at 24": core::mem::offset_of!(wdk_sys::DRIVER_OBJECT, DriverStart) => 24;
        "DRIVER_OBJECT.DriverSize at 32": core::mem::offset_of!(wdk_sys::DRIVER_OBJECT, DriverSize) => 32;
        "DPFLTR_IHVDRIVER_ID == 77 (dpfilter.h)": wdk_sys::_DPFLTR_TYPE::DPFLTR_IHVDRIVER_ID => 77;
        "KEY_QUERY_VALUE == 1 (winnt.h)": wdk_sys::KEY_QUERY_VALUE => 1;
        "KEY_SET_VALUE == 2 (winnt.h)": wdk_sys::KEY_SET_VALUE => 2;
        "PLUGPLAY_REGKEY_DEVICE == 1": wdk_sys::PLUGPLAY_REGKEY_DEVICE => 1;
    }
    "wdffuncenum.h (KMDF 1.33)" {
        "WdfFunctionTableNumEntries == 458": wdk_sys::_WDFFUNCENUM::WdfFunctionTableNumEntries => 458;
        "WdfDeviceGetDevicePowerState 44": wdk_sys::_WDFFUNCENUM::WdfDeviceGetDevicePowerStateTableIndex => 44;
        "WdfDeviceAssignS0IdleSettings 46": wdk_sys::_WDFFUNCENUM::WdfDeviceAssignS0IdleSettingsTableIndex => 46;
        "WdfDeviceOpenRegistryKey 48": wdk_sys::_WDFFUNCENUM::WdfDeviceOpenRegistryKeyTableIndex => 48;
        "WdfDeviceSetSpecialFileSupport 49": wdk_sys::_WDFFUNCENUM::WdfDeviceSetSpecialFileSupportTableIndex => 49;
        "WdfDeviceInitSetPnpPowerEventCallbacks 55":
            wdk_sys::_WDFFUNCENUM::WdfDeviceInitSetPnpPowerEventCallbacksTableIndex => 55;
        "WdfDeviceInitSetPowerNotPageable 63":
            wdk_sys::_WDFFUNCENUM::WdfDeviceInitSetPowerNotPageableTableIndex => 63;
        "WdfDeviceInitSetPowerPageable 64": wdk_sys::_WDFFUNCENUM::WdfDeviceInitSetPowerPageableTableIndex => 64;
        "WdfDeviceInitAssignSDDLString 68": wdk_sys::_WDFFUNCENUM::WdfDeviceInitAssignSDDLStringTableIndex => 68;
        "WdfDeviceCreate 75": wdk_sys::_WDFFUNCENUM::WdfDeviceCreateTableIndex => 75;
        "WdfDeviceCreateDeviceInterface 77": wdk_sys::_WDFFUNCENUM::WdfDeviceCreateDeviceInterfaceTableIndex => 77;
        "WdfDriverCreate 116": wdk_sys::_WDFFUNCENUM::WdfDriverCreateTableIndex => 116;
        "WdfDriverWdmGetDriverObject 118": wdk_sys::_WDFFUNCENUM::WdfDriverWdmGetDriverObjectTableIndex => 118;
        "WdfFdoInitOpenRegistryKey 125": wdk_sys::_WDFFUNCENUM::WdfFdoInitOpenRegistryKeyTableIndex => 125;
        "WdfIoQueueCreate 152": wdk_sys::_WDFFUNCENUM::WdfIoQueueCreateTableIndex => 152;
        "WdfIoQueueGetDevice 157": wdk_sys::_WDFFUNCENUM::WdfIoQueueGetDeviceTableIndex => 157;
        "WdfObjectGetTypedContextWorker 202":
            wdk_sys::_WDFFUNCENUM::WdfObjectGetTypedContextWorkerTableIndex => 202;
        "WdfRegistryClose 231": wdk_sys::_WDFFUNCENUM::WdfRegistryCloseTableIndex => 231;
        "WdfRegistryQueryULong 240": wdk_sys::_WDFFUNCENUM::WdfRegistryQueryULongTableIndex => 240;
        "WdfRegistryAssignULong 246": wdk_sys::_WDFFUNCENUM::WdfRegistryAssignULongTableIndex => 246;
        "WdfRequestCompleteWithInformation 265":
            wdk_sys::_WDFFUNCENUM::WdfRequestCompleteWithInformationTableIndex => 265;
        "WdfRequestRetrieveInputBuffer 269": wdk_sys::_WDFFUNCENUM::WdfRequestRetrieveInputBufferTableIndex => 269;
        "WdfRequestRetrieveOutputBuffer 270":
            wdk_sys::_WDFFUNCENUM::WdfRequestRetrieveOutputBufferTableIndex => 270;
        "WdfRequestForwardToIoQueue 281": wdk_sys::_WDFFUNCENUM::WdfRequestForwardToIoQueueTableIndex => 281;
        "WdfSpinLockCreate 315": wdk_sys::_WDFFUNCENUM::WdfSpinLockCreateTableIndex => 315;
        "WdfSpinLockAcquire 316": wdk_sys::_WDFFUNCENUM::WdfSpinLockAcquireTableIndex => 316;
        "WdfSpinLockRelease 317": wdk_sys::_WDFFUNCENUM::WdfSpinLockReleaseTableIndex => 317;
        "WdfTimerCreate 318": wdk_sys::_WDFFUNCENUM::WdfTimerCreateTableIndex => 318;
        "WdfTimerStart 319": wdk_sys::_WDFFUNCENUM::WdfTimerStartTableIndex => 319;
        "WdfTimerStop 320": wdk_sys::_WDFFUNCENUM::WdfTimerStopTableIndex => 320;
        "WdfTimerGetParentObject 321": wdk_sys::_WDFFUNCENUM::WdfTimerGetParentObjectTableIndex => 321;
        "WdfWorkItemCreate 379": wdk_sys::_WDFFUNCENUM::WdfWorkItemCreateTableIndex => 379;
        "WdfWorkItemEnqueue 380": wdk_sys::_WDFFUNCENUM::WdfWorkItemEnqueueTableIndex => 380;
        "WdfWorkItemGetParentObject 381": wdk_sys::_WDFFUNCENUM::WdfWorkItemGetParentObjectTableIndex => 381;
        "WdfWorkItemFlush 382": wdk_sys::_WDFFUNCENUM::WdfWorkItemFlushTableIndex => 382;
        "WdfDeviceStopIdleActual 438": wdk_sys::_WDFFUNCENUM::WdfDeviceStopIdleActualTableIndex => 438;
        "WdfDeviceResumeIdleActual 439": wdk_sys::_WDFFUNCENUM::WdfDeviceResumeIdleActualTableIndex => 439;
    }
}
