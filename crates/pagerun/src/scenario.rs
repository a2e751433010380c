//! Scenarios: sequences of Plug and Play and power events, each calling the driver's callbacks
//! in the order KMDF calls them, at the IRQL KMDF calls them at.
//!
//! The orders are those of Microsoft's "PnP and Power Management Scenarios" pages (a device is
//! enumerated, powered down and up for system sleep and for idle, stopped for rebalancing,
//! removed in an orderly way or surprise-removed); the IRQL of each callback is its reference
//! page's, as `pagecheck::kmdf` records it. The crate README lists both.

use pagewise_ioctl as ioctl;

use crate::framework::{self, DEV_STATE_NP, POWER_D0, POWER_DX};
use crate::host::{self, Kind, Major, Request, status, with};
use crate::machine::{self, PASSIVE_LEVEL};
use crate::record;

/// The scenarios, by name.
pub const ALL: &[(&str, &str)] = &[
    (
        "start",
        "start the device, then remove it and unload the driver",
    ),
    (
        "io",
        "start; every IOCTL the client knows, with good and malformed buffers; remove",
    ),
    ("idle", "start; idle to D3 and back to D0 (S0 idle); remove"),
    ("sleep", "start; system sleep (S3) and resume; remove"),
    ("hibernate", "start; hibernate (S4) and resume; remove"),
    (
        "stop-restart",
        "start; PnP stop (rebalance) and restart; remove",
    ),
    ("surprise-removal", "start; surprise removal"),
];

/// `WDF_POWER_DEVICE_STATE` values.
mod power {
    pub const D3: u64 = 4;
    pub const D3_FINAL: u64 = 5;
    pub const PREPARE_FOR_HIBERNATION: u64 = 6;
}

/// PnP/power callback fields, by index of `WDF_PNPPOWER_EVENT_CALLBACKS` (offset / 8 - 1).
mod pnp {
    pub const D0_ENTRY: usize = 0;
    pub const D0_ENTRY_POST_INTERRUPTS: usize = 1;
    pub const D0_EXIT: usize = 2;
    pub const D0_EXIT_PRE_INTERRUPTS: usize = 3;
    pub const PREPARE_HARDWARE: usize = 4;
    pub const RELEASE_HARDWARE: usize = 5;
    pub const SELF_MANAGED_IO_CLEANUP: usize = 6;
    pub const SELF_MANAGED_IO_FLUSH: usize = 7;
    pub const SELF_MANAGED_IO_INIT: usize = 8;
    pub const SELF_MANAGED_IO_SUSPEND: usize = 9;
    pub const SELF_MANAGED_IO_RESTART: usize = 10;
    pub const SURPRISE_REMOVAL: usize = 11;
    pub const QUERY_STOP: usize = 13;
    pub const USAGE_NOTIFICATION: usize = 14;
    pub const USAGE_NOTIFICATION_EX: usize = 16;
}

/// Power policy callback fields, by index of `WDF_POWER_POLICY_EVENT_CALLBACKS`
/// (offset / 8 - 1).
mod policy {
    pub const ARM_WAKE_FROM_S0: usize = 0;
    pub const DISARM_WAKE_FROM_S0: usize = 1;
    pub const ARM_WAKE_FROM_SX: usize = 3;
    pub const DISARM_WAKE_FROM_SX: usize = 4;
    pub const ARM_WAKE_FROM_SX_WITH_REASON: usize = 6;
}

/// Which wake the power policy owner arms before leaving D0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wake {
    /// None (a D3Final power-down, or wake not enabled).
    None,
    /// Wake from S0 idle (`IdleCanWakeFromS0` settings).
    S0,
    /// Wake from a system sleep (`WdfDeviceAssignSxWakeSettings` enabled).
    Sx,
}

/// Queue callback fields, by index of `WDF_IO_QUEUE_CONFIG` ((offset - 16) / 8).
mod io {
    pub const DEFAULT: usize = 0;
    pub const READ: usize = 1;
    pub const WRITE: usize = 2;
    pub const DEVICE_CONTROL: usize = 3;
    pub const STOP: usize = 5;
    pub const RESUME: usize = 6;
}

struct Steps {
    next: u32,
}

impl Steps {
    fn begin(&mut self, label: &str) {
        machine::set_step(self.next);
        record!("step {} {label}", self.next);
        self.next += 1;
    }
}

fn device() -> Option<u64> {
    with(|h| h.device.as_ref().map(|d| d.handle))
}

fn pnp_callback(index: usize) -> u64 {
    with(|h| h.device.as_ref().map_or(0, |d| d.init.pnp[index]))
}

fn policy_callback(index: usize) -> u64 {
    with(|h| h.device.as_ref().map_or(0, |d| d.init.policy[index]))
}

/// The wake the device is armed for when it leaves D0 for `purpose`.
fn wake_for(purpose: Wake) -> Wake {
    let armed = with(|h| {
        h.device.as_ref().is_some_and(|d| match purpose {
            Wake::None => false,
            Wake::S0 => d.idle_wake,
            Wake::Sx => d.sx_wake,
        })
    });
    if armed { purpose } else { Wake::None }
}

fn call_policy(index: usize, slot: &str, args: &[u64]) {
    let f = policy_callback(index);
    #[allow(clippy::cast_possible_truncation)]
    let result = host::invoke(slot, f, PASSIVE_LEVEL, args) as i32;
    if f != 0 && result < 0 {
        host::event(
            "status",
            f,
            &format!("{slot} failed with {:#010x}", result.cast_unsigned()),
        );
    }
}

fn call_pnp(index: usize, slot: &str, args: &[u64]) -> i32 {
    let f = pnp_callback(index);
    #[allow(clippy::cast_possible_truncation)]
    let result = host::invoke(slot, f, PASSIVE_LEVEL, args) as i32;
    if f != 0 && result < 0 && !slot.contains("Exit") && !slot.contains("Suspend") {
        host::event(
            "status",
            f,
            &format!("{slot} failed with {:#010x}", result.cast_unsigned()),
        );
    }
    result
}

/// Calls a PnP/power callback the device's start or its return to D0 depends on; when it fails,
/// records the failure (`kind`: `start` or `power-up`) and returns false: the framework would
/// fail the device, so the scenario goes on with its removal.
fn call_pnp_must_succeed(index: usize, slot: &str, args: &[u64], kind: &str) -> bool {
    let f = pnp_callback(index);
    let id = host::next_callback_id();
    #[allow(clippy::cast_possible_truncation)]
    let result = host::invoke(slot, f, PASSIVE_LEVEL, args) as i32;
    if f != 0 && result < 0 {
        host::failure(
            kind,
            f,
            id,
            PASSIVE_LEVEL,
            &format!(
                "{slot} failed with {:#010x}: {}",
                result.cast_unsigned(),
                if kind == "start" {
                    "the device did not start, so the scenario's own steps did not run"
                } else {
                    "the device did not return to D0, so the framework fails it and the rest of the scenario did not run"
                }
            ),
        );
        return false;
    }
    true
}

/// The device's start or a return to D0 failed earlier in the scenario.
fn device_failed() -> bool {
    with(|h| h.device_failed)
}

fn set_power_state(state: u32) {
    with(|h| {
        if let Some(d) = h.device.as_mut() {
            let np = if d.power_pageable() { 0 } else { DEV_STATE_NP };
            d.power_state = state | np;
        }
    });
}

fn queues() -> Vec<u64> {
    with(|h| {
        h.objects
            .iter()
            .enumerate()
            .filter(|(_, o)| !o.deleted && matches!(o.kind, Kind::Queue(_)))
            .map(|(i, _)| host::HANDLE_BASE + 16 * i as u64)
            .collect()
    })
}

use framework::queue_irql;

/// The return to D0: D0Entry, D0EntryPostInterruptsEnabled, power-managed queues resume
/// (EvtIoResume for requests the driver acknowledged at stop), self-managed I/O restart.
///
/// Returns false when a callback of it failed (recorded as a `start` failure for the first
/// start, `power-up` otherwise): the device stays out of D0 and the rest is not called.
fn power_up(steps: &mut Steps, previous: u64, first: bool, wake: Wake) -> bool {
    let Some(dev) = device() else { return false };
    let kind = if first { "start" } else { "power-up" };
    steps.begin(&format!("EvtDeviceD0Entry(previous state {previous})"));
    if !call_pnp_must_succeed(pnp::D0_ENTRY, "EvtDeviceD0Entry", &[dev, previous], kind) {
        return false;
    }
    steps.begin("EvtDeviceD0EntryPostInterruptsEnabled");
    if !call_pnp_must_succeed(
        pnp::D0_ENTRY_POST_INTERRUPTS,
        "EvtDeviceD0EntryPostInterruptsEnabled",
        &[dev, previous],
        kind,
    ) {
        return false;
    }
    with(|h| {
        if let Some(d) = h.device.as_mut() {
            d.in_d0 = true;
        }
    });
    set_power_state(POWER_D0);
    match wake {
        Wake::None => {}
        Wake::S0 => {
            steps.begin("EvtDeviceDisarmWakeFromS0");
            call_policy(
                policy::DISARM_WAKE_FROM_S0,
                "EvtDeviceDisarmWakeFromS0",
                &[dev],
            );
        }
        Wake::Sx => {
            steps.begin("EvtDeviceDisarmWakeFromSx");
            call_policy(
                policy::DISARM_WAKE_FROM_SX,
                "EvtDeviceDisarmWakeFromSx",
                &[dev],
            );
        }
    }
    steps.begin("power-managed queues restart");
    for queue in queues() {
        let (resume, acknowledged) = with(|h| {
            let owned: Vec<u64> = h.queue(queue).map(|q| q.owned.clone()).unwrap_or_default();
            let resume = h.queue(queue).map_or(0, |q| q.callbacks[io::RESUME]);
            let acked: Vec<u64> = owned
                .into_iter()
                .filter(|&r| h.request(r).is_some_and(|r| r.acknowledged))
                .collect();
            if let Some(q) = h.queue(queue) {
                q.started = true;
            }
            (resume, acked)
        });
        for request in acknowledged {
            with(|h| {
                if let Some(r) = h.request(request) {
                    r.acknowledged = false;
                }
            });
            host::invoke("EvtIoResume", resume, queue_irql(queue), &[queue, request]);
        }
        dispatch(queue);
    }
    if first {
        steps.begin("EvtDeviceSelfManagedIoInit");
        let started = call_pnp_must_succeed(
            pnp::SELF_MANAGED_IO_INIT,
            "EvtDeviceSelfManagedIoInit",
            &[dev],
            kind,
        );
        with(|h| {
            if let Some(d) = h.device.as_mut() {
                d.started_once = true;
            }
        });
        started
    } else {
        steps.begin("EvtDeviceSelfManagedIoRestart");
        call_pnp_must_succeed(
            pnp::SELF_MANAGED_IO_RESTART,
            "EvtDeviceSelfManagedIoRestart",
            &[dev],
            kind,
        )
    }
}

/// Leaving D0: self-managed I/O suspend, power-managed queues stop (EvtIoStop for requests the
/// driver owns), D0ExitPreInterruptsDisabled, D0Exit.
fn power_down(steps: &mut Steps, target: u64, wake: Wake) {
    let Some(dev) = device() else { return };
    if with(|h| h.device.as_ref().is_some_and(|d| d.started_once)) {
        steps.begin("EvtDeviceSelfManagedIoSuspend");
        call_pnp(
            pnp::SELF_MANAGED_IO_SUSPEND,
            "EvtDeviceSelfManagedIoSuspend",
            &[dev],
        );
    }
    steps.begin("power-managed queues stop");
    for queue in queues() {
        let (stop_fn, owned, managed) = with(|h| {
            let q = h.queue(queue);
            q.map_or((0, Vec::new(), false), |q| {
                q.started = !q.power_managed;
                (q.callbacks[io::STOP], q.owned.clone(), q.power_managed)
            })
        });
        if !managed {
            continue;
        }
        for &request in &owned {
            // WdfRequestStopActionSuspend (1): the request is still the driver's to finish.
            host::invoke(
                "EvtIoStop",
                stop_fn,
                queue_irql(queue),
                &[queue, request, 1],
            );
        }
        if owned.is_empty() {
            continue;
        }
        // The framework waits for each request the driver neither completed nor acknowledged;
        // only the driver's timers, DPCs and work items can finish it meanwhile.
        match framework::wait_for_owned(queue, true) {
            Some(0) => {}
            Some(ms) => record!(
                "info power_down_waited {ms} ms of virtual time for requests the driver held"
            ),
            None => {
                let labels: Vec<String> = with(|h| {
                    owned
                        .iter()
                        .filter_map(|&r| {
                            let r = h.request(r)?;
                            (r.completions == 0 && !r.acknowledged).then(|| r.label.clone())
                        })
                        .collect()
                });
                for label in labels {
                    host::violation(
                        "request",
                        stop_fn,
                        &format!(
                            "{label} is still with the driver, neither completed nor acknowledged (WdfRequestStopAcknowledge), {} s of virtual time after its queue began to stop for a power-down: the device would never leave D0",
                            framework::REQUEST_WAIT_MS / 1000
                        ),
                    );
                }
            }
        }
    }
    match wake {
        Wake::None => {}
        Wake::S0 => {
            steps.begin("EvtDeviceArmWakeFromS0");
            call_policy(policy::ARM_WAKE_FROM_S0, "EvtDeviceArmWakeFromS0", &[dev]);
        }
        Wake::Sx => {
            steps.begin("EvtDeviceArmWakeFromSx");
            if policy_callback(policy::ARM_WAKE_FROM_SX_WITH_REASON) == 0 {
                call_policy(policy::ARM_WAKE_FROM_SX, "EvtDeviceArmWakeFromSx", &[dev]);
            } else {
                // DeviceWakeEnabled TRUE, ChildrenArmedForWake FALSE.
                call_policy(
                    policy::ARM_WAKE_FROM_SX_WITH_REASON,
                    "EvtDeviceArmWakeFromSxWithReason",
                    &[dev, 1, 0],
                );
            }
        }
    }
    steps.begin(&format!(
        "EvtDeviceD0ExitPreInterruptsDisabled(target state {target})"
    ));
    call_pnp(
        pnp::D0_EXIT_PRE_INTERRUPTS,
        "EvtDeviceD0ExitPreInterruptsDisabled",
        &[dev, target],
    );
    steps.begin(&format!("EvtDeviceD0Exit(target state {target})"));
    call_pnp(pnp::D0_EXIT, "EvtDeviceD0Exit", &[dev, target]);
    with(|h| {
        if let Some(d) = h.device.as_mut() {
            d.in_d0 = false;
        }
    });
    set_power_state(POWER_DX);
}

fn power_pageable() -> bool {
    with(|h| h.device.as_ref().is_none_or(host::Device::power_pageable))
}

/// A system sleep: for a power-nonpageable device the paging disk is off from the moment the
/// device starts leaving D0 until its return to D0 has finished.
fn system_sleep(steps: &mut Steps, hibernate: bool) {
    let nonpageable = !power_pageable();
    record!(
        "info sleep_window {}",
        if nonpageable {
            "paging disk off (power-nonpageable device)"
        } else {
            "paging disk on (power-pageable device)"
        }
    );
    // Time passes before the system sleeps: timers and work run.
    crate::clock::pass(100);
    if nonpageable {
        machine::set_disk_off(true);
    }
    // A device on the hibernation path is told the target is the hibernation file's.
    let target = if hibernate && with(|h| h.device.as_ref().is_some_and(|d| d.in_path[2])) {
        power::PREPARE_FOR_HIBERNATION
    } else {
        power::D3
    };
    let wake = wake_for(Wake::Sx);
    power_down(steps, target, wake);
    steps.begin(if hibernate {
        "system in S4"
    } else {
        "system in S3"
    });
    let _ = power_up(steps, power::D3, false, wake);
    machine::set_disk_off(false);
    crate::clock::pass(100);
}

/// Creates the device: `EvtDriverDeviceAdd` with a fresh `WDFDEVICE_INIT`.
fn add_device(steps: &mut Steps) -> bool {
    let (add, driver) = with(|h| (h.device_add, h.driver));
    if add == 0 {
        // A non-PnP driver (a control device created in DriverEntry) has no device add.
        return device().is_some();
    }
    let init = with(|h| {
        h.init = host::DeviceInit::default();
        if h.init_pointer == 0 {
            h.init_pointer = h.keep_zeroed(64);
        }
        h.init_pointer
    });
    steps.begin("EvtDriverDeviceAdd");
    let id = host::next_callback_id();
    #[allow(clippy::cast_possible_truncation)]
    let result = host::invoke("EvtDriverDeviceAdd", add, PASSIVE_LEVEL, &[driver, init]) as i32;
    if result < 0 {
        host::failure(
            "start",
            add,
            id,
            PASSIVE_LEVEL,
            &format!(
                "EvtDriverDeviceAdd failed with {:#010x}: the device did not start, so the scenario's own steps did not run",
                result.cast_unsigned()
            ),
        );
        return false;
    }
    if device().is_none() {
        host::failure(
            "start",
            add,
            id,
            PASSIVE_LEVEL,
            "EvtDriverDeviceAdd returned success without creating a device: the scenario's own steps did not run",
        );
        return false;
    }
    record!(
        "info power_pageable {}",
        if power_pageable() { "yes" } else { "no" }
    );
    true
}

fn start(steps: &mut Steps) -> bool {
    if !add_device(steps) {
        return false;
    }
    let Some(dev) = device() else { return false };
    let pnp_device = with(|h| h.device_add != 0);
    if !pnp_device {
        set_power_state(POWER_D0);
        return true;
    }
    steps.begin("EvtDevicePrepareHardware");
    let resources = framework::resource_list(dev);
    if !call_pnp_must_succeed(
        pnp::PREPARE_HARDWARE,
        "EvtDevicePrepareHardware",
        &[dev, resources, resources],
        "start",
    ) {
        return false;
    }
    with(|h| {
        if let Some(d) = h.device.as_mut() {
            d.prepared = true;
        }
    });
    power_up(steps, power::D3_FINAL, true, Wake::None)
}

/// Orderly removal and unload: leave D0 (D3Final), flush, release hardware, cleanup, objects,
/// `EvtDriverUnload`, the driver object.
fn remove(steps: &mut Steps) {
    if let Some(dev) = device() {
        let pnp_device = with(|h| h.device_add != 0);
        if pnp_device {
            if with(|h| h.device.as_ref().is_some_and(|d| d.in_d0)) {
                power_down(steps, power::D3_FINAL, Wake::None);
            }
            finish_removal(steps, dev);
        } else {
            steps.begin("control device deleted");
            framework::delete_tree(dev);
        }
    }
    unload(steps);
}

fn finish_removal(steps: &mut Steps, dev: u64) {
    if with(|h| h.device.as_ref().is_some_and(|d| d.started_once)) {
        steps.begin("EvtDeviceSelfManagedIoFlush");
        call_pnp(
            pnp::SELF_MANAGED_IO_FLUSH,
            "EvtDeviceSelfManagedIoFlush",
            &[dev],
        );
    }
    purge_requests(dev);
    if with(|h| h.device.as_ref().is_some_and(|d| d.prepared)) {
        steps.begin("EvtDeviceReleaseHardware");
        let resources = framework::resource_list(dev);
        call_pnp(
            pnp::RELEASE_HARDWARE,
            "EvtDeviceReleaseHardware",
            &[dev, resources],
        );
    }
    if with(|h| h.device.as_ref().is_some_and(|d| d.started_once)) {
        steps.begin("EvtDeviceSelfManagedIoCleanup");
        call_pnp(
            pnp::SELF_MANAGED_IO_CLEANUP,
            "EvtDeviceSelfManagedIoCleanup",
            &[dev],
        );
    }
    steps.begin("device object deleted (children first)");
    framework::delete_tree(dev);
}

fn unload(steps: &mut Steps) {
    let (unload, driver) = with(|h| (h.unload, h.driver));
    steps.begin("EvtDriverUnload");
    host::invoke("EvtDriverUnload", unload, PASSIVE_LEVEL, &[driver]);
    steps.begin("driver object deleted");
    framework::delete_tree(driver);
    // Every request must have been completed once; every pageable section unlocked.
    let open: Vec<String> = with(|h| {
        h.objects
            .iter()
            .filter_map(|o| match &o.kind {
                Kind::Request(r) if r.completions == 0 => Some(r.label.clone()),
                _ => None,
            })
            .collect()
    });
    for label in open {
        host::violation(
            "request",
            0,
            &format!("{label} was never completed by the time the driver unloaded"),
        );
    }
    for region in 0..machine::region_count() {
        let locks = machine::lock_count(region);
        if locks > 0 && machine::region_kind(region) == machine::RegionKind::Pageable {
            host::violation(
                "lock",
                0,
                &format!(
                    "region {region} is still locked ({locks} MmLockPagable* without MmUnlockPagableImageSection) when the driver unloads"
                ),
            );
        }
    }
}

/// Requests still waiting in queues when the device goes away are cancelled by the framework;
/// those the driver owns must be completed by it.
fn purge_requests(_dev: u64) {
    for queue in queues() {
        let waiting = with(|h| {
            h.queue(queue)
                .map(|q| q.waiting.drain(..).collect::<Vec<u64>>())
                .unwrap_or_default()
        });
        for request in waiting {
            with(|h| {
                if let Some(r) = h.request(request) {
                    r.completions = 1;
                    r.status = status::CANCELLED;
                }
            });
        }
    }
    crate::clock::pass(10);
}

/// Sends a request as the I/O manager would: to the driver's `EvtIoInCallerContext` first
/// (at `PASSIVE_LEVEL`, in the sender's thread) when it has one, which hands it on with
/// `WdfDeviceEnqueueRequest`; else to the queue its type is dispatched to (the default queue
/// unless `WdfDeviceConfigureRequestDispatching` chose another). A started dispatching queue
/// presents it at once.
fn send(major: Major, code: u32, input: &[u8], output_length: usize, label: String) -> u64 {
    send_request(major, code, input, output_length, label, false).0
}

/// [`send`], returning the request and its system buffer; with `keep_answer` the completion
/// is kept in [`host::Host::answers`].
fn send_request(
    major: Major,
    code: u32,
    input: &[u8],
    output_length: usize,
    label: String,
    keep_answer: bool,
) -> (u64, u64) {
    let Some(queue) = framework::queue_for(major) else {
        record!("info no_queue {label}: the driver has no queue for this request type");
        return (0, 0);
    };
    let buffer = with(|h| {
        let len = input.len().max(output_length);
        let buffer = if len == 0 { 0 } else { h.keep_zeroed(len) };
        if buffer != 0 && !input.is_empty() {
            // SAFETY: `buffer` was just allocated with at least `input.len()` bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(input.as_ptr(), buffer as *mut u8, input.len());
            }
        }
        buffer
    });
    let request = framework::create_request(
        Request {
            major,
            code,
            buffer,
            input_length: input.len() as u64,
            output_length: output_length as u64,
            completions: 0,
            status: 0,
            information: 0,
            cancel: 0,
            canceled: false,
            queue,
            acknowledged: false,
            label,
            keep_answer,
        },
        queue,
    );
    let (in_caller, dev) = with(|h| {
        h.device
            .as_ref()
            .map_or((0, 0), |d| (d.init.io_in_caller_context, d.handle))
    });
    if in_caller == 0 {
        with(|h| {
            if let Some(q) = h.queue(queue) {
                q.waiting.push_back(request);
            }
        });
    } else {
        host::invoke(
            "EvtIoInCallerContext",
            in_caller,
            PASSIVE_LEVEL,
            &[dev, request],
        );
    }
    let target = with(|h| h.request(request).map_or(queue, |r| r.queue));
    dispatch(target);
    (request, buffer)
}

/// Presents waiting requests of a started, non-manual queue to the driver (a sequential queue
/// one at a time).
pub fn dispatch(queue: u64) {
    for _ in 0..10_000 {
        let next = with(|h| {
            let q = h.queue(queue)?;
            if !q.started || q.dispatch == 3 {
                return None;
            }
            // A sequential queue presents one request at a time.
            if q.dispatch == 1 && !q.owned.is_empty() {
                return None;
            }
            let request = q.waiting.pop_front()?;
            q.owned.push(request);
            let callbacks = q.callbacks;
            let r = h.request(request)?;
            Some((
                request,
                r.major,
                r.code,
                r.input_length,
                r.output_length,
                callbacks,
            ))
        });
        let Some((request, major, code, input, output, callbacks)) = next else {
            return;
        };
        let irql = queue_irql(queue);
        let (slot, function, args) = match major {
            Major::DeviceControl => (
                "EvtIoDeviceControl",
                callbacks[io::DEVICE_CONTROL],
                vec![queue, request, output, input, u64::from(code)],
            ),
            Major::Read => (
                "EvtIoRead",
                callbacks[io::READ],
                vec![queue, request, output],
            ),
            Major::Write => (
                "EvtIoWrite",
                callbacks[io::WRITE],
                vec![queue, request, input],
            ),
        };
        let (slot, function) = if function == 0 {
            ("EvtIoDefault", callbacks[io::DEFAULT])
        } else {
            (slot, function)
        };
        if function == 0 {
            // No handler: the framework fails the request.
            framework::complete(
                request,
                status::INVALID_DEVICE_REQUEST,
                None,
                "the framework (no handler)",
            );
            continue;
        }
        let args = if slot == "EvtIoDefault" {
            vec![queue, request]
        } else {
            args
        };
        host::invoke(slot, function, irql, &args);
    }
}

/// The IOCTLs `pagewise-client` knows, each with the buffers it sends and malformed ones.
fn io_requests() {
    let ioctls: [(u32, &str, usize, usize); 5] = [
        (
            ioctl::IOCTL_PAGEWISE_GET_VERSION,
            "IOCTL_PAGEWISE_GET_VERSION",
            0,
            size_of::<ioctl::VersionInfo>(),
        ),
        (
            ioctl::IOCTL_PAGEWISE_GET_CONFIG,
            "IOCTL_PAGEWISE_GET_CONFIG",
            0,
            size_of::<ioctl::Config>(),
        ),
        (
            ioctl::IOCTL_PAGEWISE_GET_STATS,
            "IOCTL_PAGEWISE_GET_STATS",
            0,
            size_of::<ioctl::Stats>(),
        ),
        (
            ioctl::IOCTL_PAGEWISE_GET_LOG,
            "IOCTL_PAGEWISE_GET_LOG",
            size_of::<ioctl::LogQuery>(),
            4096,
        ),
        (
            ioctl::IOCTL_PAGEWISE_HOLD_D0,
            "IOCTL_PAGEWISE_HOLD_D0",
            size_of::<ioctl::HoldD0>(),
            0,
        ),
    ];
    for (code, name, input, output) in ioctls {
        let zeros = vec![0u8; input];
        send(
            Major::DeviceControl,
            code,
            &zeros,
            output,
            format!("{name} (well-formed)"),
        );
        if output > 0 {
            send(
                Major::DeviceControl,
                code,
                &zeros,
                output - 1,
                format!("{name} (output buffer one byte short)"),
            );
            send(
                Major::DeviceControl,
                code,
                &zeros,
                0,
                format!("{name} (no output buffer)"),
            );
        }
        if input > 0 {
            send(
                Major::DeviceControl,
                code,
                &zeros[..input - 1],
                output,
                format!("{name} (input buffer one byte short)"),
            );
        }
        crate::clock::pass(10);
    }
    send(
        Major::DeviceControl,
        ioctl::ctl_code(
            ioctl::FILE_DEVICE_PAGEWISE,
            0xFFF,
            ioctl::METHOD_BUFFERED,
            0,
        ),
        &[],
        0,
        "an IOCTL code the driver does not define".to_owned(),
    );
    send(Major::Read, 0, &[], 64, "a read of 64 bytes".to_owned());
    send(
        Major::Write,
        0,
        &[0x5A; 64],
        0,
        "a write of 64 bytes".to_owned(),
    );
    crate::clock::pass(1000);
    wmi_queries();
}

/// What the WMI service asks of each registered WMI instance: a query of the whole instance
/// (`EvtWmiInstanceQueryInstance`, again with the size it asked for if the buffer was too
/// small) and, when the instance can be set, the same bytes written back
/// (`EvtWmiInstanceSetInstance`), each at `PASSIVE_LEVEL`.
fn wmi_queries() {
    let instances = framework::wmi::registered_instances();
    if instances.is_empty() {
        return;
    }
    for (instance, query, set, min_buffer) in instances {
        let mut size: u32 = 4096.max(min_buffer);
        for _ in 0..2 {
            let (buffer, used) = with(|h| (h.keep_zeroed(size as usize), h.keep_zeroed(4)));
            #[allow(clippy::cast_possible_truncation)]
            let result = host::invoke(
                "EvtWmiInstanceQueryInstance",
                query,
                PASSIVE_LEVEL,
                &[instance, u64::from(size), buffer, used],
            ) as i32;
            // SAFETY: the ULONG the host allocated for BufferUsed.
            let used = unsafe { host::read::<u32>(used) };
            if result == status::BUFFER_TOO_SMALL && used > size && used <= 1 << 20 {
                size = used;
                continue;
            }
            if result >= 0 && used > size {
                host::violation(
                    "parameter",
                    query,
                    &format!(
                        "EvtWmiInstanceQueryInstance reported {used} bytes used in a buffer of {size}"
                    ),
                );
            } else if result >= 0 && set != 0 && used >= min_buffer {
                host::invoke(
                    "EvtWmiInstanceSetInstance",
                    set,
                    PASSIVE_LEVEL,
                    &[instance, u64::from(used), buffer],
                );
            }
            break;
        }
    }
}

/// The names of `WDF_SPECIAL_FILE_TYPE` values 1 to 4, as `--special-file` takes them.
pub const SPECIAL_FILES: [&str; 4] = ["paging", "hibernation", "dump", "boot"];

/// Puts the started device on the special-file paths `types` (`WDF_SPECIAL_FILE_TYPE`), as the
/// system does when a paging, hibernation, dump or boot file is placed on it: KMDF accepts the
/// notification only for a type the driver enabled with `WdfDeviceSetSpecialFileSupport`,
/// makes the device nonpageable, then tells the driver (`EvtDeviceUsageNotificationEx`, else
/// `EvtDeviceUsageNotification`, at `PASSIVE_LEVEL`).
fn enter_special_paths(steps: &mut Steps, types: &[u32]) {
    let Some(dev) = device() else { return };
    for &file_type in types {
        let index = file_type as usize;
        let name = SPECIAL_FILES
            .get(index.wrapping_sub(1))
            .copied()
            .unwrap_or("?");
        let supported = with(|h| {
            h.device
                .as_ref()
                .is_some_and(|d| d.special_supported.get(index).copied().unwrap_or(false))
        });
        if !supported {
            record!(
                "info special_file_{name} refused: the driver did not enable it with WdfDeviceSetSpecialFileSupport, so the framework fails the notification"
            );
            continue;
        }
        steps.begin(&format!("device placed on the {name} path"));
        let was_pageable = power_pageable();
        with(|h| {
            if let Some(d) = h.device.as_mut() {
                d.in_path[index] = true;
            }
        });
        set_power_state(POWER_D0);
        let (ex, plain) = (
            pnp_callback(pnp::USAGE_NOTIFICATION_EX),
            pnp_callback(pnp::USAGE_NOTIFICATION),
        );
        let accepted = if ex != 0 {
            #[allow(clippy::cast_possible_truncation)]
            let result = host::invoke(
                "EvtDeviceUsageNotificationEx",
                ex,
                PASSIVE_LEVEL,
                &[dev, u64::from(file_type), 1],
            ) as i32;
            result >= 0
        } else {
            host::invoke(
                "EvtDeviceUsageNotification",
                plain,
                PASSIVE_LEVEL,
                &[dev, u64::from(file_type), 1],
            );
            true
        };
        if !accepted {
            // The driver refused: the framework restores what it changed.
            with(|h| {
                if let Some(d) = h.device.as_mut() {
                    d.in_path[index] = false;
                }
            });
            set_power_state(POWER_D0);
            record!(
                "info special_file_{name} refused by the driver's EvtDeviceUsageNotificationEx"
            );
        } else if was_pageable {
            record!(
                "info power_pageable no (on the {name} path: the framework made the device nonpageable)"
            );
        }
    }
}

/// Runs `name` (after `DriverEntry` has run) `cycles` times where the scenario repeats, with
/// the device on the special-file paths `special_files` once it has started, and sends
/// `ioctls` at the end of the scenario's own steps, before the device is removed (for
/// `surprise-removal`, before the surprise removal). A failed start or return to D0 ends the
/// scenario's own steps at once: the device is removed and the driver unloaded.
pub fn run(name: &str, cycles: u32, special_files: &[u32], ioctls: &[Ioctl]) {
    let mut steps = Steps { next: 1 };
    if !start(&mut steps) {
        remove(&mut steps);
        return;
    }
    enter_special_paths(&mut steps, special_files);
    crate::clock::pass(100);
    let pnp = with(|h| h.device_add != 0);
    if !pnp && name != "io" && name != "start" {
        record!(
            "info skipped {name}: the driver's device is a control device (non-PnP), which takes no part in Plug and Play or power transitions"
        );
        read_back(&mut steps, ioctls);
        remove(&mut steps);
        return;
    }
    match name {
        "io" => {
            steps.begin("I/O requests");
            io_requests();
        }
        "idle" => {
            if with(|h| h.device.as_ref().is_some_and(|d| d.s0_idle)) {
                let wake = wake_for(Wake::S0);
                for _ in 0..cycles {
                    crate::clock::pass(100);
                    power_down(&mut steps, power::D3, wake);
                    steps.begin("device idle in D3");
                    if !power_up(&mut steps, power::D3, false, wake) {
                        break;
                    }
                }
            } else {
                record!(
                    "info skipped idle: the driver does not call WdfDeviceAssignS0IdleSettings, so KMDF never idles the device"
                );
            }
        }
        "sleep" | "hibernate" => {
            for _ in 0..cycles {
                system_sleep(&mut steps, name == "hibernate");
                if device_failed() {
                    break;
                }
            }
        }
        "stop-restart" => {
            // KMDF does not let a device with an open special file be stopped: it fails the
            // query-stop itself (WdfDeviceSetSpecialFileSupport, "Handling Requests to Stop a
            // Device").
            let path = with(|h| {
                h.device
                    .as_ref()
                    .and_then(|d| d.in_path.iter().skip(1).position(|&p| p))
            });
            if let Some(path) = path {
                record!(
                    "info skipped stop-restart: the device is on the {} path, and the framework fails the query-stop of a device with an open special file",
                    SPECIAL_FILES[path]
                );
            }
            for _ in 0..if path.is_some() { 0 } else { cycles } {
                let Some(dev) = device() else { break };
                steps.begin("EvtDeviceQueryStop");
                call_pnp(pnp::QUERY_STOP, "EvtDeviceQueryStop", &[dev]);
                power_down(&mut steps, power::D3_FINAL, Wake::None);
                steps.begin("EvtDeviceReleaseHardware (stop)");
                let resources = framework::resource_list(dev);
                call_pnp(
                    pnp::RELEASE_HARDWARE,
                    "EvtDeviceReleaseHardware",
                    &[dev, resources],
                );
                steps.begin("EvtDevicePrepareHardware (restart)");
                if !call_pnp_must_succeed(
                    pnp::PREPARE_HARDWARE,
                    "EvtDevicePrepareHardware",
                    &[dev, resources, resources],
                    "start",
                ) {
                    with(|h| {
                        if let Some(d) = h.device.as_mut() {
                            d.prepared = false;
                        }
                    });
                    break;
                }
                if !power_up(&mut steps, power::D3_FINAL, false, Wake::None) {
                    break;
                }
            }
        }
        "surprise-removal" => {
            read_back(&mut steps, ioctls);
            if let Some(dev) = device() {
                steps.begin("EvtDeviceSurpriseRemoval");
                call_pnp(pnp::SURPRISE_REMOVAL, "EvtDeviceSurpriseRemoval", &[dev]);
                if with(|h| h.device.as_ref().is_some_and(|d| d.in_d0)) {
                    power_down(&mut steps, power::D3_FINAL, Wake::None);
                }
                finish_removal(&mut steps, dev);
            }
            unload(&mut steps);
            return;
        }
        _ => {}
    }
    read_back(&mut steps, ioctls);
    remove(&mut steps);
}

/// An IOCTL sent at the end of a scenario (`--ioctl`), whose answer the report carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ioctl {
    /// The control code.
    pub code: u32,
    /// Output buffer length.
    pub output_length: usize,
    /// Input buffer bytes.
    pub input: Vec<u8>,
}

/// Largest `--ioctl` output buffer.
pub const MAX_IOCTL_OUTPUT: usize = 1 << 20;
/// Largest `--ioctl` input buffer.
pub const MAX_IOCTL_INPUT: usize = 64 << 10;

impl Ioctl {
    /// Parses `CODE[:OUTPUT_LENGTH[:INPUT_HEX]]`: the code in hex (`0x` optional) or decimal,
    /// the output buffer length in bytes (0 by default), the input buffer as hex digits.
    ///
    /// # Errors
    /// A field that does not parse, or a buffer over [`MAX_IOCTL_OUTPUT`] /
    /// [`MAX_IOCTL_INPUT`].
    pub fn parse(text: &str) -> Result<Ioctl, String> {
        let mut fields = text.splitn(3, ':');
        let code = fields.next().unwrap_or("");
        let code = match code.strip_prefix("0x").or_else(|| code.strip_prefix("0X")) {
            Some(hex) => u32::from_str_radix(hex, 16),
            None => code.parse(),
        }
        .map_err(|_| format!("`{code}`: an IOCTL code is a 32-bit number"))?;
        let output_length = match fields.next() {
            None | Some("") => 0,
            Some(n) => n
                .parse::<usize>()
                .ok()
                .filter(|&n| n <= MAX_IOCTL_OUTPUT)
                .ok_or_else(|| {
                    format!("`{n}`: an output length is a number of bytes up to {MAX_IOCTL_OUTPUT}")
                })?,
        };
        let input = match fields.next() {
            None => Vec::new(),
            Some(hex) => decode_hex(hex).filter(|b| b.len() <= MAX_IOCTL_INPUT).ok_or_else(|| {
                format!(
                    "`{hex}`: the input is an even number of hex digits, up to {MAX_IOCTL_INPUT} bytes"
                )
            })?,
        };
        Ok(Ioctl {
            code,
            output_length,
            input,
        })
    }

    /// The form [`Ioctl::parse`] reads.
    #[must_use]
    pub fn to_arg(&self) -> String {
        format!(
            "{:#x}:{}:{}",
            self.code,
            self.output_length,
            encode_hex(&self.input)
        )
    }
}

/// Lower-case hex digits of `bytes`.
#[must_use]
pub fn encode_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The bytes of an even number of hex digits; `None` for anything else.
#[must_use]
pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// Sends each of `ioctls` as a user-mode `DeviceIoControl` would, and records its answer: the
/// completion status, `Information`, and the output bytes the I/O manager would copy back
/// (`Information` of them, at most the output buffer's length). A request the driver has not
/// completed after 1 s of virtual time is recorded as pending.
fn read_back(steps: &mut Steps, ioctls: &[Ioctl]) {
    if ioctls.is_empty() {
        return;
    }
    if device_failed() || device().is_none() {
        record!("info ioctl_read_back skipped: the device is not started");
        return;
    }
    steps.begin("IOCTL read-back");
    for (index, ioctl) in ioctls.iter().enumerate() {
        let (request, buffer) = send_request(
            Major::DeviceControl,
            ioctl.code,
            &ioctl.input,
            ioctl.output_length,
            format!("IOCTL {:#010x} (read-back {index})", ioctl.code),
            true,
        );
        let mut answer = with(|h| h.answers.remove(&request));
        for _ in 0..100 {
            if answer.is_some() || request == 0 {
                break;
            }
            crate::clock::pass(10);
            answer = with(|h| h.answers.remove(&request));
        }
        match answer {
            Some((status, information)) => {
                let length = usize::try_from(information)
                    .unwrap_or(usize::MAX)
                    .min(ioctl.output_length);
                let bytes = if buffer == 0 || length == 0 {
                    Vec::new()
                } else {
                    // SAFETY: `buffer` is the host's buffer of at least `output_length` bytes
                    // for this request, kept for the run.
                    unsafe { std::slice::from_raw_parts(buffer as *const u8, length) }.to_vec()
                };
                record!(
                    "ioctl {index} {status} {information} {}",
                    encode_hex(&bytes)
                );
            }
            None => record!("ioctl {index} pending 0 "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Ioctl, MAX_IOCTL_INPUT, MAX_IOCTL_OUTPUT, decode_hex, encode_hex};

    #[test]
    fn ioctl_arguments_parse_and_round_trip() {
        let full = Ioctl::parse("0x8A17600C:4120:0000000000000000").expect("parses");
        assert_eq!(
            full,
            Ioctl {
                code: 0x8A17_600C,
                output_length: 4120,
                input: vec![0; 8],
            }
        );
        assert_eq!(Ioctl::parse(&full.to_arg()), Ok(full));
        assert_eq!(
            Ioctl::parse("2316787720"),
            Ok(Ioctl {
                code: 0x8A17_6008,
                output_length: 0,
                input: Vec::new(),
            })
        );
        assert_eq!(Ioctl::parse("8:16:").map(|i| i.input), Ok(Vec::new()));
        for bad in ["", "0x1_0000_0000", "0xg", "8:-1", "8:x", "8:4:0", "8:4:zz"] {
            assert!(Ioctl::parse(bad).is_err(), "{bad}");
        }
        assert!(Ioctl::parse(&format!("8:{}", MAX_IOCTL_OUTPUT + 1)).is_err());
        let long = "00".repeat(MAX_IOCTL_INPUT + 1);
        assert!(Ioctl::parse(&format!("8:0:{long}")).is_err());
    }

    #[test]
    fn hex_round_trips() {
        let bytes = [0x00, 0x0f, 0xa5, 0xff];
        assert_eq!(encode_hex(&bytes), "000fa5ff");
        assert_eq!(decode_hex("000FA5ff"), Some(bytes.to_vec()));
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("é0"), None);
    }
}
