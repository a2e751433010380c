//! The IOCTL interface: two queues and the D0-hold timer.
//!
//! - The default queue is **not** power-managed and has `ExecutionLevel =
//!   WdfExecutionLevelPassive`: it answers queries (version, configuration, statistics,
//!   log) at `PASSIVE_LEVEL` even while the device idles in D3, without waking it. Only
//!   because its execution level is passive may its callback be pageable (`PAGE`).
//! - `IOCTL_PAGEWISE_HOLD_D0` is forwarded to a second, power-managed queue: the
//!   framework brings an idle device back to D0 before it dispatches the request. That
//!   queue has the default execution level, so its callback may run at `DISPATCH_LEVEL`
//!   and is resident.
//! - The hold ends in a `WDFTIMER` callback at `DISPATCH_LEVEL`: resident.
//!
//! Validation, answers and hold bookkeeping are `pagewise_core::ioctl` and
//! `pagewise_core::DeviceState`; this module only moves bytes and calls the framework.
//! The control queue copies what it answers out of the locked state and formats it after
//! releasing the lock, in its own pageable code; only the copy runs in resident code.

use pagewise_core::hold::{HoldAction, TimerAction};
use pagewise_core::ioctl::{Queue, decode, decode_hold};
use pagewise_core::locked::{Op, answer};
use pagewise_macros::{paged, resident, resident_wdf_call};
use wdk::nt_success;
use wdk_sys::{
    _WDF_EXECUTION_LEVEL, _WDF_TRI_STATE, LONG, NTSTATUS, PCCH, PVOID, STATUS_INVALID_DEVICE_STATE,
    STATUS_SUCCESS, ULONG, ULONG_PTR, WDF_IO_QUEUE_CONFIG, WDF_OBJECT_ATTRIBUTES, WDFDEVICE,
    WDFQUEUE, WDFREQUEST, WDFTIMER, call_unsafe_wdf_function_binding,
};

use crate::DRIVER_VERSION;
use crate::callbacks;
use crate::context::{DeviceContext, interrupt_time};
use crate::wdf::{object_attributes, sequential_queue_config};

/// `__FILE__` for the tag-tracking variants of `WdfDeviceStopIdle`/`ResumeIdle`, which
/// the C macros call with `__LINE__` and `__FILE__`.
const THIS_FILE: PCCH = c"queue.rs".as_ptr();

/// `WDF_REL_TIMEOUT_IN_MS(ms)`: a relative due time in 100 ns units, negative.
/// `u32::MAX * 10_000` is far inside `i64`; the saturating form only keeps an overflow
/// check (a panic path) out of this resident code in builds with debug assertions.
/// Pure computation, any IRQL.
#[inline]
fn relative_timeout_ms(ms: u32) -> i64 {
    i64::from(ms).saturating_mul(-10_000)
}

/// `__LINE__` as the `LONG` the tracking functions take. Pure computation, any IRQL.
#[inline]
fn line(line: u32) -> LONG {
    LONG::try_from(line).unwrap_or(LONG::MAX)
}

/// Creates the power-managed hold queue and the default (control) queue; returns the
/// hold queue, which the control queue forwards to.
///
/// `PASSIVE_LEVEL`, from `EvtDriverDeviceAdd`: `PAGE`.
#[paged]
pub(crate) fn create_queues(device: WDFDEVICE) -> Result<WDFQUEUE, NTSTATUS> {
    // WDF_IO_QUEUE_CONFIG_INIT(&config, WdfIoQueueDispatchSequential), power-managed.
    let hold_config = callbacks::hold_queue(WDF_IO_QUEUE_CONFIG {
        PowerManaged: _WDF_TRI_STATE::WdfTrue,
        ..sequential_queue_config()
    });
    let hold_queue = create_queue(device, hold_config, object_attributes())?;

    // WDF_IO_QUEUE_CONFIG_INIT_DEFAULT_QUEUE(&config, WdfIoQueueDispatchSequential), not
    // power-managed, passive execution level: the attributes below are what make the
    // `passive` registration true.
    let control_config = callbacks::control_queue(WDF_IO_QUEUE_CONFIG {
        DefaultQueue: 1,
        PowerManaged: _WDF_TRI_STATE::WdfFalse,
        ..sequential_queue_config()
    });
    let control_attributes = WDF_OBJECT_ATTRIBUTES {
        ExecutionLevel: _WDF_EXECUTION_LEVEL::WdfExecutionLevelPassive,
        ..object_attributes()
    };
    create_queue(device, control_config, control_attributes)?;
    Ok(hold_queue)
}

/// `WdfIoQueueCreate` with a finished configuration; the queue is a child of `device`.
///
/// `PASSIVE_LEVEL`, from [`create_queues`]: `PAGE`.
#[paged]
fn create_queue(
    device: WDFDEVICE,
    mut config: WDF_IO_QUEUE_CONFIG,
    mut attributes: WDF_OBJECT_ATTRIBUTES,
) -> Result<WDFQUEUE, NTSTATUS> {
    let mut queue: WDFQUEUE = core::ptr::null_mut();
    // SAFETY: `device` is live; the configuration, attributes and out-pointer are locals
    // that outlive the call, which copies what it keeps.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfIoQueueCreate,
            device,
            &raw mut config,
            &raw mut attributes,
            &raw mut queue,
        )
    };
    if nt_success(status) {
        Ok(queue)
    } else {
        Err(status)
    }
}

/// The request's input buffer, or an empty slice when it has none or the framework
/// will not give it (the portable decoder then answers `STATUS_INVALID_PARAMETER` to a
/// request that needs input). Inlined into each caller, resident or not: it takes no
/// lock and runs at the caller's IRQL (`WdfRequestRetrieveInputBuffer` allows up to
/// `DISPATCH_LEVEL`).
///
/// # Safety
///
/// `request` must be a live request this driver owns; the slice must be dropped before
/// the output buffer is retrieved (`METHOD_BUFFERED` shares one system buffer) and
/// before the request is completed.
#[inline]
unsafe fn input_bytes<'a>(request: WDFREQUEST, input_length: usize) -> &'a [u8] {
    if input_length == 0 {
        return &[];
    }
    let mut buffer: PVOID = core::ptr::null_mut();
    let mut length: usize = 0;
    // SAFETY: `request` is live (caller); the out-pointers are locals.
    let status = unsafe {
        resident_wdf_call!(
            WdfRequestRetrieveInputBuffer,
            request,
            0,
            &raw mut buffer,
            &raw mut length
        )
    }
    .unwrap_or(STATUS_INVALID_DEVICE_STATE);
    if !nt_success(status) || buffer.is_null() {
        return &[];
    }
    // SAFETY: the framework returned a buffer of `length` readable bytes that stays
    // valid until the request completes.
    unsafe { core::slice::from_raw_parts(buffer.cast::<u8>().cast_const(), length) }
}

/// The request's output buffer, or an empty slice (the portable answer then reports
/// `STATUS_BUFFER_TOO_SMALL`). Same IRQL and placement reasoning as [`input_bytes`].
///
/// # Safety
///
/// As [`input_bytes`]; no input slice of the same request may be alive.
#[inline]
unsafe fn output_bytes<'a>(request: WDFREQUEST, output_length: usize) -> &'a mut [u8] {
    if output_length == 0 {
        return &mut [];
    }
    let mut buffer: PVOID = core::ptr::null_mut();
    let mut length: usize = 0;
    // SAFETY: as in `input_bytes`.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfRequestRetrieveOutputBuffer,
            request,
            0,
            &raw mut buffer,
            &raw mut length,
        )
    };
    if !nt_success(status) || buffer.is_null() {
        return &mut [];
    }
    // SAFETY: the framework returned a buffer of `length` writable bytes that stays
    // valid until the request completes, and nothing else refers to it now.
    unsafe { core::slice::from_raw_parts_mut(buffer.cast::<u8>(), length) }
}

/// `WdfRequestCompleteWithInformation`. Any IRQL up to `DISPATCH_LEVEL`.
///
/// # Safety
///
/// `request` must be live and owned by this driver; it is gone afterwards.
#[inline]
unsafe fn complete(request: WDFREQUEST, status: NTSTATUS, information: usize) {
    // SAFETY: forwarded from the caller.
    let _ = unsafe {
        resident_wdf_call!(
            WdfRequestCompleteWithInformation,
            request,
            status,
            information as ULONG_PTR
        )
    };
}

/// `EvtIoDeviceControl` of the default queue: validates the request, answers queries
/// from the device context, forwards `IOCTL_PAGEWISE_HOLD_D0` to the power-managed
/// queue.
///
/// `PASSIVE_LEVEL` because the queue was created with `WdfExecutionLevelPassive`, and
/// not power-managed, so never part of a power transition: `PAGE`. Only the copies of
/// the values it answers with are made under the spin lock, in resident code; the answer
/// is written here.
#[paged]
pub(crate) unsafe extern "C" fn evt_control_io_device_control(
    queue: WDFQUEUE,
    request: WDFREQUEST,
    output_buffer_length: usize,
    input_buffer_length: usize,
    io_control_code: ULONG,
) {
    // SAFETY: the framework passes the live queue, created on our device.
    let device = unsafe { call_unsafe_wdf_function_binding!(WdfIoQueueGetDevice, queue) };
    // SAFETY: the queue's device is ours.
    let Some(context) = (unsafe { DeviceContext::get(device) }) else {
        // SAFETY: we own the request.
        unsafe { complete(request, STATUS_INVALID_DEVICE_STATE, 0) };
        return;
    };
    // The decoder copies what it needs, so the input slice ends with this statement.
    // SAFETY: we own the request; the slice is dropped before the output is retrieved.
    let decoded = decode(io_control_code, unsafe {
        input_bytes(request, input_buffer_length)
    });
    let request_kind = match decoded {
        Ok(kind) => kind,
        Err(status) => {
            // SAFETY: we own the request.
            unsafe { complete(request, status, 0) };
            return;
        }
    };
    if request_kind.queue() == Queue::PowerManaged {
        // SAFETY: we own the request; both queues belong to this device.
        let status = unsafe {
            call_unsafe_wdf_function_binding!(
                WdfRequestForwardToIoQueue,
                request,
                context.power_queue
            )
        };
        if !nt_success(status) {
            // SAFETY: forwarding failed, so the request is still ours.
            unsafe { complete(request, status, 0) };
        }
        return;
    }
    // SAFETY: we own the request and no input slice is alive.
    let out = unsafe { output_bytes(request, output_buffer_length) };
    // The values are copied out under the lock; the answer is written here, in pageable
    // code, after it is released.
    let answer = answer(request_kind, out, DRIVER_VERSION, &mut |op| {
        context.locked(op)
    });
    let (status, information) = match answer {
        Ok(written) => (STATUS_SUCCESS, written),
        Err(status) => (status, 0),
    };
    // SAFETY: we own the request; `out` is not used after this.
    unsafe { complete(request, status, information) };
}

/// `EvtIoDeviceControl` of the power-managed queue: the device is in D0 when this runs.
/// Re-validates the request (a queue callback must not trust what reached it) and
/// starts or extends a D0 hold: `WdfDeviceStopIdle(device, FALSE)` takes one power
/// reference, the hold timer drops it.
///
/// Up to `DISPATCH_LEVEL` (the queue has the default execution level): resident,
/// `#[resident(dispatch)]`. `WdfDeviceStopIdle` is called with `WaitForD0 = FALSE`, the
/// only form allowed at `DISPATCH_LEVEL`.
#[resident(dispatch)]
pub(crate) unsafe extern "C" fn evt_power_io_device_control(
    queue: WDFQUEUE,
    request: WDFREQUEST,
    _output_buffer_length: usize,
    input_buffer_length: usize,
    io_control_code: ULONG,
) {
    // SAFETY: the framework passes the live queue, created on our device.
    let Some(device) = (unsafe { resident_wdf_call!(WdfIoQueueGetDevice, queue) }) else {
        // No table entry, so no device to look a context up on: the request cannot be
        // served.
        // SAFETY: we own the request.
        unsafe { complete(request, STATUS_INVALID_DEVICE_STATE, 0) };
        return;
    };
    // SAFETY: we own the request; the slice ends with this statement.
    let decoded = decode_hold(io_control_code, unsafe {
        input_bytes(request, input_buffer_length)
    });
    // SAFETY: the queue's device is ours.
    let status = match (decoded, unsafe { DeviceContext::get(device) }) {
        // SAFETY: `device` is live and owns `context`; up to DISPATCH_LEVEL is what the
        // hold needs.
        (Ok(duration_ms), Some(context)) => unsafe { start_hold(device, context, duration_ms) },
        (Err(status), _) => status,
        (Ok(_), None) => STATUS_INVALID_DEVICE_STATE,
    };
    // SAFETY: we own the request.
    unsafe { complete(request, status, 0) };
}

/// Executes the portable hold decision. Up to `DISPATCH_LEVEL`; inlined into the
/// resident queue callback, its only caller.
///
/// # Safety
///
/// `device` is this driver's live WDFDEVICE and `context` its context.
#[inline]
unsafe fn start_hold(device: WDFDEVICE, context: &DeviceContext, duration_ms: u32) -> NTSTATUS {
    let now = interrupt_time();
    let due_ms = match context
        .locked(Op::HoldRequest { now, duration_ms })
        .into_hold()
    {
        HoldAction::None | HoldAction::AlreadyHeld => return STATUS_SUCCESS,
        HoldAction::StopIdleAndStartTimer { due_ms } => {
            // SAFETY: `device` is live; WaitForD0 = FALSE as DISPATCH_LEVEL requires. A
            // missing table entry reads as a failure: no reference was taken.
            let status = unsafe {
                resident_wdf_call!(
                    WdfDeviceStopIdleActual,
                    device,
                    0,
                    core::ptr::null_mut(),
                    line(line!()),
                    THIS_FILE
                )
            }
            .unwrap_or(STATUS_INVALID_DEVICE_STATE);
            if !nt_success(status) {
                let _ = context.locked(Op::HoldStopIdleFailed);
                return status;
            }
            due_ms
        }
        // A hold is active and now lasts longer: restarting the timer replaces its due time.
        HoldAction::RestartTimer { due_ms } => due_ms,
    };
    // SAFETY: the hold timer is a live child of `device`.
    unsafe { start_timer(context.hold_timer, due_ms) };
    STATUS_SUCCESS
}

/// `WdfTimerStart(timer, WDF_REL_TIMEOUT_IN_MS(due_ms))`. Its return value only says
/// whether the timer was already queued, which nothing here acts on.
///
/// Any IRQL up to `DISPATCH_LEVEL`; resident and shared by the hold request and the timer
/// callback (no section attribute, not inlined: one copy).
///
/// # Safety
///
/// `timer` is the device's live hold timer.
#[inline(never)]
unsafe fn start_timer(timer: WDFTIMER, due_ms: u32) {
    // SAFETY: `timer` is the device's live hold timer (the caller's contract); restarting
    // a started timer, also from its own callback, is allowed.
    let _ = unsafe { resident_wdf_call!(WdfTimerStart, timer, relative_timeout_ms(due_ms)) };
}

/// `EvtTimerFunc` of the hold timer: the hold is over, drop its power reference so the
/// device may idle again (or re-arm if the hold was extended meanwhile).
///
/// `DISPATCH_LEVEL` (a timer DPC): resident, `#[resident(dispatch)]`.
/// `WdfDeviceResumeIdle` is callable up to `DISPATCH_LEVEL`.
#[resident(dispatch)]
pub(crate) unsafe extern "C" fn evt_hold_timer(timer: WDFTIMER) {
    // SAFETY: the framework passes the live timer, whose parent is our device.
    let Some(parent) = (unsafe { resident_wdf_call!(WdfTimerGetParentObject, timer) }) else {
        // No table entry: no device to end the hold on.
        return;
    };
    let device: WDFDEVICE = parent.cast();
    // SAFETY: the timer's parent is our device.
    let Some(context) = (unsafe { DeviceContext::get(device) }) else {
        return;
    };
    let now = interrupt_time();
    match context.locked(Op::HoldTimerFired(now)).into_timer() {
        TimerAction::None => {}
        TimerAction::ResumeIdle => {
            // SAFETY: drops the one reference the hold took.
            let _ = unsafe {
                resident_wdf_call!(
                    WdfDeviceResumeIdleActual,
                    device,
                    core::ptr::null_mut(),
                    line(line!()),
                    THIS_FILE
                )
            };
        }
        // The timer fired before a deadline that was extended meanwhile: re-arm it.
        // SAFETY: `timer` is the live hold timer the framework called back.
        TimerAction::Restart { due_ms } => unsafe { start_timer(timer, due_ms) },
    }
}

/// Ends a hold at device removal: stops the timer, waiting for a callback in progress,
/// then drops the power reference if the hold was still active.
///
/// `PASSIVE_LEVEL` (`WdfTimerStop` with `Wait = TRUE` requires it), from
/// `EvtDeviceSelfManagedIoFlush`: `PAGE`.
///
/// # Safety
///
/// `device` is this driver's live WDFDEVICE and `context` its context; `PASSIVE_LEVEL`,
/// not from the hold timer's own callback.
#[paged]
pub(crate) unsafe fn release_hold(device: WDFDEVICE, context: &DeviceContext) {
    // SAFETY: the timer is a live child of the device; not called from its callback.
    let _ = unsafe { call_unsafe_wdf_function_binding!(WdfTimerStop, context.hold_timer, 1) };
    if context.locked(Op::ReleaseHold).into_flag() {
        // SAFETY: drops the one reference the hold took.
        unsafe {
            call_unsafe_wdf_function_binding!(
                WdfDeviceResumeIdleActual,
                device,
                core::ptr::null_mut(),
                line(line!()),
                THIS_FILE,
            );
        }
    }
}
