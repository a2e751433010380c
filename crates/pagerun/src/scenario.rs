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
use crate::machine::{self, DISPATCH_LEVEL, PASSIVE_LEVEL};
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

/// The IRQL a queue's request callbacks run at: `PASSIVE_LEVEL` only for a passive queue.
fn queue_irql(queue: u64) -> u8 {
    if with(|h| h.object(queue).is_some_and(|o| o.passive)) {
        PASSIVE_LEVEL
    } else {
        DISPATCH_LEVEL
    }
}

/// The return to D0: D0Entry, D0EntryPostInterruptsEnabled, power-managed queues resume
/// (EvtIoResume for requests the driver acknowledged at stop), self-managed I/O restart.
fn power_up(steps: &mut Steps, previous: u64, first: bool) {
    let Some(dev) = device() else { return };
    steps.begin(&format!("EvtDeviceD0Entry(previous state {previous})"));
    call_pnp(pnp::D0_ENTRY, "EvtDeviceD0Entry", &[dev, previous]);
    steps.begin("EvtDeviceD0EntryPostInterruptsEnabled");
    call_pnp(
        pnp::D0_ENTRY_POST_INTERRUPTS,
        "EvtDeviceD0EntryPostInterruptsEnabled",
        &[dev, previous],
    );
    with(|h| {
        if let Some(d) = h.device.as_mut() {
            d.in_d0 = true;
        }
    });
    set_power_state(POWER_D0);
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
        dispatch_waiting(queue);
    }
    if first {
        steps.begin("EvtDeviceSelfManagedIoInit");
        call_pnp(
            pnp::SELF_MANAGED_IO_INIT,
            "EvtDeviceSelfManagedIoInit",
            &[dev],
        );
        with(|h| {
            if let Some(d) = h.device.as_mut() {
                d.started_once = true;
            }
        });
    } else {
        steps.begin("EvtDeviceSelfManagedIoRestart");
        call_pnp(
            pnp::SELF_MANAGED_IO_RESTART,
            "EvtDeviceSelfManagedIoRestart",
            &[dev],
        );
    }
}

/// Leaving D0: self-managed I/O suspend, power-managed queues stop (EvtIoStop for requests the
/// driver owns), D0ExitPreInterruptsDisabled, D0Exit.
fn power_down(steps: &mut Steps, target: u64) {
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
        for request in owned {
            // WdfRequestStopActionSuspend (1), the request not yet cancelable or cancelable.
            host::invoke(
                "EvtIoStop",
                stop_fn,
                queue_irql(queue),
                &[queue, request, 1],
            );
            let (done, acked, label) = with(|h| match h.request(request) {
                Some(r) => (r.completions > 0, r.acknowledged, r.label.clone()),
                None => (true, false, String::new()),
            });
            if !done && !acked {
                host::violation(
                    "request",
                    stop_fn,
                    &format!(
                        "{label} is still with the driver, neither completed nor acknowledged (WdfRequestStopAcknowledge), when the device leaves D0: the power-down waits for it"
                    ),
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
    let target = if hibernate && with(|h| h.device.as_ref().is_some_and(|d| d.special_files)) {
        power::PREPARE_FOR_HIBERNATION
    } else {
        power::D3
    };
    power_down(steps, target);
    steps.begin(if hibernate {
        "system in S4"
    } else {
        "system in S3"
    });
    power_up(steps, power::D3, false);
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
    #[allow(clippy::cast_possible_truncation)]
    let result = host::invoke("EvtDriverDeviceAdd", add, PASSIVE_LEVEL, &[driver, init]) as i32;
    if result < 0 {
        host::event(
            "status",
            add,
            &format!(
                "EvtDriverDeviceAdd failed with {:#010x}",
                result.cast_unsigned()
            ),
        );
        return false;
    }
    if device().is_none() {
        host::event(
            "status",
            add,
            "EvtDriverDeviceAdd returned success without creating a device",
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
    let resources = with(|h| h.keep_zeroed(64));
    let result = call_pnp(
        pnp::PREPARE_HARDWARE,
        "EvtDevicePrepareHardware",
        &[dev, resources, resources],
    );
    if result < 0 {
        return false;
    }
    with(|h| {
        if let Some(d) = h.device.as_mut() {
            d.prepared = true;
        }
    });
    power_up(steps, power::D3_FINAL, true);
    true
}

/// Orderly removal and unload: leave D0 (D3Final), flush, release hardware, cleanup, objects,
/// `EvtDriverUnload`, the driver object.
fn remove(steps: &mut Steps) {
    if let Some(dev) = device() {
        let pnp_device = with(|h| h.device_add != 0);
        if pnp_device {
            if with(|h| h.device.as_ref().is_some_and(|d| d.in_d0)) {
                power_down(steps, power::D3_FINAL);
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
        let resources = with(|h| h.keep_zeroed(64));
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

/// Sends a request to the default queue (or the queue configured for its type) and lets the
/// driver handle it: a request of a started dispatching queue is presented at once.
fn send(major: Major, code: u32, input: &[u8], output_length: usize, label: String) -> u64 {
    let Some(queue) = default_queue() else {
        record!("info no_queue {label}: the driver has no default queue");
        return 0;
    };
    let request = with(|h| {
        let len = input.len().max(output_length);
        let buffer = if len == 0 { 0 } else { h.keep_zeroed(len) };
        if buffer != 0 && !input.is_empty() {
            // SAFETY: `buffer` was just allocated with at least `input.len()` bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(input.as_ptr(), buffer as *mut u8, input.len());
            }
        }
        let r = Request {
            major,
            code,
            buffer,
            input_length: input.len() as u64,
            output_length: output_length as u64,
            completions: 0,
            status: 0,
            information: 0,
            cancel: 0,
            queue,
            acknowledged: false,
            label,
        };
        let handle = h.create(Kind::Request(Box::new(r)), queue);
        if let Some(q) = h.queue(queue) {
            q.waiting.push_back(handle);
        }
        handle
    });
    dispatch_waiting(queue);
    request
}

fn default_queue() -> Option<u64> {
    with(|h| {
        h.objects
            .iter()
            .position(|o| !o.deleted && matches!(&o.kind, Kind::Queue(q) if q.default))
            .map(|i| host::HANDLE_BASE + 16 * i as u64)
    })
}

/// Presents waiting requests of a started, non-manual queue to the driver.
fn dispatch_waiting(queue: u64) {
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
}

/// Runs `name` (after `DriverEntry` has run) `cycles` times where the scenario repeats.
pub fn run(name: &str, cycles: u32) {
    let mut steps = Steps { next: 1 };
    if !start(&mut steps) {
        unload(&mut steps);
        return;
    }
    crate::clock::pass(100);
    match name {
        "io" => {
            steps.begin("I/O requests");
            io_requests();
        }
        "idle" => {
            if with(|h| h.device.as_ref().is_some_and(|d| d.s0_idle)) {
                for _ in 0..cycles {
                    crate::clock::pass(100);
                    power_down(&mut steps, power::D3);
                    steps.begin("device idle in D3");
                    power_up(&mut steps, power::D3, false);
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
            }
        }
        "stop-restart" => {
            for _ in 0..cycles {
                let Some(dev) = device() else { break };
                steps.begin("EvtDeviceQueryStop");
                call_pnp(pnp::QUERY_STOP, "EvtDeviceQueryStop", &[dev]);
                power_down(&mut steps, power::D3_FINAL);
                steps.begin("EvtDeviceReleaseHardware (stop)");
                let resources = with(|h| h.keep_zeroed(64));
                call_pnp(
                    pnp::RELEASE_HARDWARE,
                    "EvtDeviceReleaseHardware",
                    &[dev, resources],
                );
                steps.begin("EvtDevicePrepareHardware (restart)");
                call_pnp(
                    pnp::PREPARE_HARDWARE,
                    "EvtDevicePrepareHardware",
                    &[dev, resources, resources],
                );
                power_up(&mut steps, power::D3_FINAL, false);
            }
        }
        "surprise-removal" => {
            if let Some(dev) = device() {
                steps.begin("EvtDeviceSurpriseRemoval");
                call_pnp(pnp::SURPRISE_REMOVAL, "EvtDeviceSurpriseRemoval", &[dev]);
                if with(|h| h.device.as_ref().is_some_and(|d| d.in_d0)) {
                    power_down(&mut steps, power::D3_FINAL);
                }
                finish_removal(&mut steps, dev);
            }
            unload(&mut steps);
            return;
        }
        _ => {}
    }
    remove(&mut steps);
}
