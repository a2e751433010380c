//! Every callback the driver registers, in one table.
//!
//! Each block fills the callback fields of one WDF configuration structure; the field name
//! selects the slot whose rules the function's placement must meet
//! (`pagewise_roles::config`), so a function can only go where its placement allows, and
//! there is no second place where a slot is named. The same table gives [`REGISTERED`],
//! the list the self-check looks up in the loaded image.
//!
//! The generated functions are `#[inline(always)]`: their few stores land in the caller,
//! `DriverEntry` (`INIT`) or `EvtDriverDeviceAdd`'s helpers (`PAGE`).

use pagewise_ioctl::CallbackId;
use wdk_sys::{
    WDF_DRIVER_CONFIG, WDF_IO_QUEUE_CONFIG, WDF_OBJECT_ATTRIBUTES, WDF_PNPPOWER_EVENT_CALLBACKS,
    WDF_TIMER_CONFIG, WDF_WORKITEM_CONFIG,
};

use crate::device::{
    evt_device_context_cleanup, evt_device_prepare_hardware, evt_device_release_hardware,
    evt_device_self_managed_io_cleanup, evt_device_self_managed_io_flush,
    evt_device_self_managed_io_init, evt_driver_device_add,
};
use crate::driver::evt_driver_unload;
use crate::persist::evt_persist_work_item;
use crate::power::{
    evt_device_d0_entry, evt_device_d0_exit, evt_device_self_managed_io_restart,
    evt_device_self_managed_io_suspend, evt_device_usage_notification_ex,
};
use crate::queue::{evt_control_io_device_control, evt_hold_timer, evt_power_io_device_control};

pagewise_macros::callbacks! {
    /// Every callback registered below, for the self-check.
    pub(crate) const REGISTERED: [CallbackId];

    /// The driver object's callbacks, for `WdfDriverCreate`.
    pub(crate) fn driver_config(WDF_DRIVER_CONFIG) {
        EvtDriverDeviceAdd: evt_driver_device_add => CallbackId::DeviceAdd,
        EvtDriverUnload: evt_driver_unload => CallbackId::DriverUnload,
    }

    /// The Plug and Play and power callbacks, for `WdfDeviceInitSetPnpPowerEventCallbacks`.
    pub(crate) fn pnp_power(WDF_PNPPOWER_EVENT_CALLBACKS) {
        EvtDevicePrepareHardware: evt_device_prepare_hardware => CallbackId::PrepareHardware,
        EvtDeviceReleaseHardware: evt_device_release_hardware => CallbackId::ReleaseHardware,
        EvtDeviceD0Entry: evt_device_d0_entry => CallbackId::D0Entry,
        EvtDeviceD0Exit: evt_device_d0_exit => CallbackId::D0Exit,
        EvtDeviceSelfManagedIoInit: evt_device_self_managed_io_init
            => CallbackId::SelfManagedIoInit,
        EvtDeviceSelfManagedIoRestart: evt_device_self_managed_io_restart
            => CallbackId::SelfManagedIoRestart,
        EvtDeviceSelfManagedIoSuspend: evt_device_self_managed_io_suspend
            => CallbackId::SelfManagedIoSuspend,
        EvtDeviceSelfManagedIoFlush: evt_device_self_managed_io_flush
            => CallbackId::SelfManagedIoFlush,
        EvtDeviceSelfManagedIoCleanup: evt_device_self_managed_io_cleanup
            => CallbackId::SelfManagedIoCleanup,
        EvtDeviceUsageNotificationEx: evt_device_usage_notification_ex
            => CallbackId::UsageNotification,
    }

    /// The WDFDEVICE's attributes: its cleanup runs at `PASSIVE_LEVEL`.
    pub(crate) fn device_attributes(WDF_OBJECT_ATTRIBUTES(device)) {
        EvtCleanupCallback: evt_device_context_cleanup => CallbackId::DeviceContextCleanup,
    }

    /// The default queue: its attributes set `WdfExecutionLevelPassive`
    /// (`queue::create_queues`, next to this call), which is what lets its callback be
    /// pageable.
    pub(crate) fn control_queue(WDF_IO_QUEUE_CONFIG(passive)) {
        EvtIoDeviceControl: evt_control_io_device_control
            => CallbackId::ControlIoDeviceControl,
    }

    /// The power-managed queue, default execution level: up to `DISPATCH_LEVEL`.
    pub(crate) fn hold_queue(WDF_IO_QUEUE_CONFIG) {
        EvtIoDeviceControl: evt_power_io_device_control => CallbackId::PowerIoDeviceControl,
    }

    /// The D0-hold timer.
    pub(crate) fn hold_timer(WDF_TIMER_CONFIG) {
        EvtTimerFunc: evt_hold_timer => CallbackId::HoldTimer,
    }

    /// The work item that persists the lifetime counters.
    pub(crate) fn persist_work_item(WDF_WORKITEM_CONFIG) {
        EvtWorkItemFunc: evt_persist_work_item => CallbackId::PersistWorkItem,
    }
}
