//! The host's state: framework objects, the simulated registry, pools, the virtual clock, and
//! the one way driver code is called ([`invoke`]), which sets the callback's IRQL and checks
//! what the driver left behind when it returns.
//!
//! One thread runs everything. The state lives in a thread-local `RefCell`; no borrow is held
//! while driver code runs, because driver code calls back into the host.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};

use crate::machine::{self, RegionKind, TRAP_SLOT};
use crate::record;

/// Handles are `HANDLE_BASE + 16 * index`: not memory, so a driver that dereferences one
/// faults and is reported.
pub const HANDLE_BASE: u64 = 0x5A5A_0000_0000;

/// `STATUS_SUCCESS` and the statuses the model returns.
pub mod status {
    /// Success.
    pub const SUCCESS: i32 = 0;
    /// `STATUS_UNSUCCESSFUL`.
    pub const UNSUCCESSFUL: i32 = 0xC000_0001_u32.cast_signed();
    /// `STATUS_INVALID_PARAMETER`.
    pub const INVALID_PARAMETER: i32 = 0xC000_000D_u32.cast_signed();
    /// `STATUS_INVALID_DEVICE_REQUEST`.
    pub const INVALID_DEVICE_REQUEST: i32 = 0xC000_0010_u32.cast_signed();
    /// `STATUS_BUFFER_TOO_SMALL`.
    pub const BUFFER_TOO_SMALL: i32 = 0xC000_0023_u32.cast_signed();
    /// `STATUS_INSUFFICIENT_RESOURCES`.
    pub const INSUFFICIENT_RESOURCES: i32 = 0xC000_009A_u32.cast_signed();
    /// `STATUS_OBJECT_NAME_NOT_FOUND`.
    pub const OBJECT_NAME_NOT_FOUND: i32 = 0xC000_0034_u32.cast_signed();
    /// `STATUS_NO_MORE_ENTRIES`.
    pub const NO_MORE_ENTRIES: i32 = 0x8000_001A_u32.cast_signed();
    /// `STATUS_CANCELLED`.
    pub const CANCELLED: i32 = 0xC000_0120_u32.cast_signed();
    /// `STATUS_DEVICE_REMOVED`.
    pub const DEVICE_REMOVED: i32 = 0xC000_02B6_u32.cast_signed();
}

/// A context attached to an object.
#[derive(Clone, Debug)]
pub struct ContextBlock {
    /// The type's unique key (`UniqueType`, or the type info itself).
    pub unique: u64,
    /// The memory given to the driver.
    pub memory: u64,
}

/// Object kinds and their state.
#[derive(Debug)]
pub enum Kind {
    /// `WDFDRIVER`.
    Driver,
    /// `WDFDEVICE`.
    Device,
    /// `WDFQUEUE`.
    Queue(Box<Queue>),
    /// `WDFREQUEST`.
    Request(Box<Request>),
    /// `WDFTIMER`.
    Timer(Timer),
    /// `WDFWORKITEM`.
    WorkItem {
        /// `EvtWorkItemFunc`.
        function: u64,
        /// Enqueued and not run yet.
        queued: bool,
    },
    /// `WDFDPC`.
    Dpc {
        /// `EvtDpcFunc`.
        function: u64,
        /// Enqueued and not run yet.
        queued: bool,
    },
    /// `WDFSPINLOCK`.
    SpinLock {
        /// Held now.
        held: bool,
        /// IRQL to return to on release.
        saved: u8,
    },
    /// `WDFWAITLOCK`.
    WaitLock {
        /// Held now.
        held: bool,
    },
    /// `WDFKEY` of the hardware key.
    Key,
    /// `WDFSTRING`: the `UNICODE_STRING` it holds.
    String {
        /// Address of its `UNICODE_STRING`.
        unicode: u64,
    },
    /// `WDFWMIPROVIDER`.
    WmiProvider {
        /// `WdfWmiProviderEventOnly`.
        event_only: bool,
        /// `MinInstanceBufferSize`.
        min_buffer: u32,
    },
    /// `WDFWMIINSTANCE`.
    WmiInstance(Box<WmiInstance>),
    /// `WDFMEMORY`.
    Memory {
        /// Buffer.
        buffer: u64,
        /// Length.
        length: u64,
    },
    /// Anything else the model creates but does not animate.
    Other(&'static str),
}

impl Kind {
    /// The handle type's name.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Driver => "WDFDRIVER",
            Kind::Device => "WDFDEVICE",
            Kind::Queue(_) => "WDFQUEUE",
            Kind::Request(_) => "WDFREQUEST",
            Kind::Timer(_) => "WDFTIMER",
            Kind::WorkItem { .. } => "WDFWORKITEM",
            Kind::Dpc { .. } => "WDFDPC",
            Kind::SpinLock { .. } => "WDFSPINLOCK",
            Kind::WaitLock { .. } => "WDFWAITLOCK",
            Kind::Key => "WDFKEY",
            Kind::String { .. } => "WDFSTRING",
            Kind::WmiProvider { .. } => "WDFWMIPROVIDER",
            Kind::WmiInstance(_) => "WDFWMIINSTANCE",
            Kind::Memory { .. } => "WDFMEMORY",
            Kind::Other(name) => name,
        }
    }
}

/// A framework object.
#[derive(Debug)]
pub struct Object {
    /// What it is.
    pub kind: Kind,
    /// Parent handle (0: none).
    pub parent: u64,
    /// Contexts.
    pub contexts: Vec<ContextBlock>,
    /// `EvtCleanupCallback`.
    pub cleanup: u64,
    /// `EvtDestroyCallback`.
    pub destroy: u64,
    /// `ExecutionLevel` resolved to passive.
    pub passive: bool,
    /// Its `EvtDestroyCallback` is running: only its contexts may still be used.
    pub destroying: bool,
    /// Deleted (the handle is stale).
    pub deleted: bool,
}

/// `WDF_IO_QUEUE_CONFIG`, as the model keeps it.
#[derive(Debug, Default)]
pub struct Queue {
    /// 1 sequential, 2 parallel, 3 manual.
    pub dispatch: u32,
    /// Power-managed.
    pub power_managed: bool,
    /// Default queue.
    pub default: bool,
    /// Request callbacks by field (`EvtIoDefault` .. `EvtIoCanceledOnQueue`).
    pub callbacks: [u64; 8],
    /// Requests waiting in the queue (manual queues, or stopped ones).
    pub waiting: VecDeque<u64>,
    /// Requests the queue gave to the driver that are not completed.
    pub owned: Vec<u64>,
    /// Accepting and dispatching.
    pub started: bool,
}

/// Request types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Major {
    /// `IRP_MJ_READ`.
    Read,
    /// `IRP_MJ_WRITE`.
    Write,
    /// `IRP_MJ_DEVICE_CONTROL`.
    DeviceControl,
}

/// A request the host sent.
#[derive(Debug)]
pub struct Request {
    /// Type.
    pub major: Major,
    /// IOCTL code.
    pub code: u32,
    /// System buffer (input copied in, output read back).
    pub buffer: u64,
    /// Input length.
    pub input_length: u64,
    /// Output length.
    pub output_length: u64,
    /// Times completed.
    pub completions: u32,
    /// Final status.
    pub status: i32,
    /// Information.
    pub information: u64,
    /// Cancel routine while cancelable.
    pub cancel: u64,
    /// Cancelled (its cancel routine was called).
    pub canceled: bool,
    /// Queue it came from.
    pub queue: u64,
    /// `WdfRequestStopAcknowledge` was called.
    pub acknowledged: bool,
    /// What the host calls it in findings.
    pub label: String,
    /// Keep its completion status and `Information` in [`Host::answers`] (an `--ioctl`
    /// read-back, whose output is reported).
    pub keep_answer: bool,
}

/// A WMI instance: its callbacks (`WDF_WMI_INSTANCE_CONFIG`), for the queries the `io`
/// scenario makes.
#[derive(Debug, Default)]
pub struct WmiInstance {
    /// Its provider.
    pub provider: u64,
    /// `EvtWmiInstanceQueryInstance`.
    pub query: u64,
    /// `EvtWmiInstanceSetInstance`.
    pub set: u64,
    /// The provider's minimum buffer size.
    pub min_buffer: u32,
    /// An event-only provider (no queries).
    pub event_only: bool,
    /// Registered with WMI.
    pub registered: bool,
}

/// A timer.
#[derive(Debug, Default)]
pub struct Timer {
    /// `EvtTimerFunc`.
    pub function: u64,
    /// Period in ms (0: one-shot).
    pub period: u32,
    /// Due time on the virtual clock (100 ns units), when started.
    pub due: Option<u64>,
}

/// What `WDF_OBJECT_ATTRIBUTES` asks of objects the framework creates itself (requests).
#[derive(Debug, Default, Clone, Copy)]
pub struct ObjectTemplate {
    /// `EvtCleanupCallback`.
    pub cleanup: u64,
    /// `EvtDestroyCallback`.
    pub destroy: u64,
    /// The context type's key (0: no context).
    pub unique: u64,
    /// Context bytes.
    pub size: u64,
}

/// The settings `WDFDEVICE_INIT` collects before `WdfDeviceCreate`.
#[derive(Debug, Default, Clone)]
pub struct DeviceInit {
    /// `WDF_PNPPOWER_EVENT_CALLBACKS` fields by index (offset / 8 - 1).
    pub pnp: [u64; 17],
    /// `WDF_POWER_POLICY_EVENT_CALLBACKS` fields by index.
    pub policy: [u64; 7],
    /// `WDF_FILEOBJECT_CONFIG` create, close, cleanup.
    pub file: [u64; 3],
    /// `Some(true)` after `SetPowerPageable`, `Some(false)` after `SetPowerNotPageable` or
    /// `SetPowerInrush`.
    pub power_pageable: Option<bool>,
    /// `WdfDeviceInitSetRequestAttributes`: what every request of the device gets.
    pub request_attributes: Option<ObjectTemplate>,
    /// `EvtIoInCallerContext` (`WdfDeviceInitSetIoInCallerContextCallback`).
    pub io_in_caller_context: u64,
    /// `EvtDeviceShutdownNotification` of a control device, and its flags.
    pub shutdown_notification: (u64, u8),
    /// Methods called on the init structure, for the report.
    pub calls: Vec<&'static str>,
}

/// The device's state.
#[derive(Debug, Default)]
pub struct Device {
    /// Its handle.
    pub handle: u64,
    /// What `WDFDEVICE_INIT` said.
    pub init: DeviceInit,
    /// `WdfDeviceSetSpecialFileSupport(.., type, TRUE)` by `WDF_SPECIAL_FILE_TYPE` (1 paging,
    /// 2 hibernation, 3 dump, 4 boot).
    pub special_supported: [bool; 5],
    /// The special-file paths the device is on (by the same index).
    pub in_path: [bool; 5],
    /// `WdfDeviceAssignS0IdleSettings` was called.
    pub s0_idle: bool,
    /// In D0.
    pub in_d0: bool,
    /// Hardware prepared.
    pub prepared: bool,
    /// Started at least once (self-managed I/O initialised).
    pub started_once: bool,
    /// `WdfDeviceStopIdle` references.
    pub stop_idle: i64,
    /// The device power state KMDF reports (`WDF_DEVICE_POWER_STATE`), with `WdfDevStateNP`.
    pub power_state: u32,
    /// `WdfDeviceConfigureRequestDispatching`: `(WDF_REQUEST_TYPE, queue)`.
    pub dispatching: Vec<(u32, u64)>,
    /// `WdfDeviceAssignS0IdleSettings` said the device can wake itself from S0 idle (the
    /// framework then arms it before idling).
    pub idle_wake: bool,
    /// `WdfDeviceAssignSxWakeSettings` with wake from Sx enabled (armed before system sleep).
    pub sx_wake: bool,
}

impl Device {
    /// Whether the device runs power-pageable (the default), as KMDF decides: not after
    /// `SetPowerNotPageable`/`Inrush`, and not while it is on a paging, hibernation, dump or
    /// boot path (KMDF clears `DO_POWER_PAGABLE` when the device enters one).
    #[must_use]
    pub fn power_pageable(&self) -> bool {
        self.init.power_pageable.unwrap_or(true) && !self.in_path.iter().any(|&p| p)
    }
}

/// A bump arena for pool allocations: `len` bytes reserved at `base`.
#[derive(Debug, Default)]
pub struct Arena {
    /// Start.
    pub base: u64,
    /// Bytes reserved.
    pub len: u64,
    /// Next free byte.
    pub next: u64,
}

impl Arena {
    /// Reserves `len` bytes (not committed until touched).
    ///
    /// # Errors
    /// The reservation failed.
    pub fn new(len: usize) -> Result<Arena, String> {
        // SAFETY: anonymous, private, not fixed: cannot disturb other mappings.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(format!("cannot reserve {len} bytes of pool"));
        }
        Ok(Arena {
            base: base as u64,
            len: len as u64,
            next: base as u64,
        })
    }

    /// 16-byte aligned, zeroed memory, or `None` when the arena is used up.
    pub fn alloc(&mut self, size: u64) -> Option<u64> {
        let size = size.max(1).checked_add(15)? & !15;
        let at = self.next;
        if at.checked_add(size)? > self.base + self.len {
            return None;
        }
        self.next = at + size;
        Some(at)
    }

    /// True when `address` came from this arena.
    #[must_use]
    pub fn contains(&self, address: u64) -> bool {
        address >= self.base && address < self.base + self.len
    }
}

/// Everything the host keeps.
pub struct Host {
    /// Objects by handle index.
    pub objects: Vec<Object>,
    /// The `WDFDRIVER`.
    pub driver: u64,
    /// `EvtDriverDeviceAdd`.
    pub device_add: u64,
    /// `EvtDriverUnload`.
    pub unload: u64,
    /// The device, once created.
    pub device: Option<Device>,
    /// Settings collected on the `WDFDEVICE_INIT` now being built.
    pub init: DeviceInit,
    /// The hardware key: name to `REG_DWORD` value.
    pub registry: BTreeMap<String, u32>,
    /// Virtual clock, 100 ns units.
    pub clock: u64,
    /// DPCs and work items waiting: `(handle, passive)`.
    pub pending: VecDeque<u64>,
    /// Next callback id.
    pub next_callback: u32,
    /// Nonpaged pool.
    pub nonpaged: Arena,
    /// Paged pool (a trimmed region).
    pub paged: Arena,
    /// Memory the host hands out that must stay put (buffers, contexts, structures).
    pub keep: Vec<Box<[u64]>>,
    /// The address of the `WDFDEVICE_INIT` structure given to `EvtDriverDeviceAdd`.
    pub init_pointer: u64,
    /// `DRIVER_OBJECT`.
    pub driver_object: u64,
    /// The globals structure handed to the driver.
    pub globals: u64,
    /// Completion status and `Information` of each completed request that asked for it
    /// ([`Request::keep_answer`]), by handle.
    pub answers: BTreeMap<u64, (i32, u64)>,
    /// The device's start or a return to D0 failed (a callback that must succeed did not):
    /// the scenario goes straight to the removal.
    pub device_failed: bool,
}

thread_local! {
    static HOST: RefCell<Option<Host>> = const { RefCell::new(None) };
}

/// Installs the host state.
pub fn install(host: Host) {
    HOST.with(|h| *h.borrow_mut() = Some(host));
}

/// Runs `f` on the host state. Never call driver code inside `f`.
///
/// # Panics
/// Before [`install`], or re-entered (a bug in the host).
pub fn with<T>(f: impl FnOnce(&mut Host) -> T) -> T {
    HOST.with(|h| {
        let mut guard = h.borrow_mut();
        let host = guard.as_mut().expect("host installed");
        f(host)
    })
}

static SECTION_REGION_NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// Names of the image's pageable/discardable sections, in region order (set by the loader).
pub fn set_section_regions(names: Vec<String>) {
    for (i, name) in names.iter().enumerate() {
        record!("region {i} {name}");
    }
    let _ = SECTION_REGION_NAMES.set(names);
}

impl Host {
    /// A new object; returns its handle.
    pub fn create(&mut self, kind: Kind, parent: u64) -> u64 {
        self.objects.push(Object {
            kind,
            parent,
            contexts: Vec::new(),
            cleanup: 0,
            destroy: 0,
            passive: false,
            destroying: false,
            deleted: false,
        });
        HANDLE_BASE + 16 * (self.objects.len() as u64 - 1)
    }

    /// The live object of `handle`.
    pub fn object(&mut self, handle: u64) -> Option<&mut Object> {
        self.object_or_destroying(handle).filter(|o| !o.destroying)
    }

    /// The object of `handle`, live or inside its `EvtDestroyCallback` (whose contexts KMDF
    /// frees only after the callback returns).
    pub fn object_or_destroying(&mut self, handle: u64) -> Option<&mut Object> {
        let index = usize::try_from(handle.checked_sub(HANDLE_BASE)? / 16).ok()?;
        if !handle.is_multiple_of(16) {
            return None;
        }
        self.objects.get_mut(index).filter(|o| !o.deleted)
    }

    /// Memory that stays valid for the run, zeroed, 8-aligned.
    pub fn keep_zeroed(&mut self, bytes: usize) -> u64 {
        let block = vec![0u64; bytes.div_ceil(8).max(1)].into_boxed_slice();
        let address = block.as_ptr() as u64;
        self.keep.push(block);
        address
    }

    /// A `UNICODE_STRING` holding `text` (NUL-terminated beyond its `Length`), in memory that
    /// stays valid for the run; returns its address.
    pub fn unicode_string(&mut self, text: &str) -> u64 {
        let units: Vec<u16> = text.encode_utf16().chain(std::iter::once(0)).collect();
        let buffer = self.keep_zeroed(units.len() * 2);
        for (i, u) in units.iter().enumerate() {
            // SAFETY: the block just allocated holds units.len() u16 values.
            unsafe { write::<u16>(buffer + 2 * i as u64, *u) };
        }
        let string = self.keep_zeroed(16);
        let bytes = u16::try_from((units.len() - 1) * 2).unwrap_or(u16::MAX - 1);
        // SAFETY: a UNICODE_STRING of 16 bytes just allocated: Length, MaximumLength, Buffer.
        unsafe {
            write::<u16>(string, bytes);
            write::<u16>(string + 2, bytes.saturating_add(2));
            write::<u64>(string + 8, buffer);
        }
        string
    }

    /// The request of `handle`.
    pub fn request(&mut self, handle: u64) -> Option<&mut Request> {
        match &mut self.object(handle)?.kind {
            Kind::Request(r) => Some(r),
            _ => None,
        }
    }

    /// The queue of `handle`.
    pub fn queue(&mut self, handle: u64) -> Option<&mut Queue> {
        match &mut self.object(handle)?.kind {
            Kind::Queue(q) => Some(q),
            _ => None,
        }
    }
}

/// Reads a `T` the driver handed over.
///
/// # Safety
/// `address` must point to readable memory holding a `T` (a wild pointer faults and is
/// reported as a crash of the scenario).
#[must_use]
pub unsafe fn read<T: Copy>(address: u64) -> T {
    // SAFETY: per the function's contract.
    unsafe { std::ptr::read_unaligned(address as *const T) }
}

/// Writes a `T` where the driver asked.
///
/// # Safety
/// `address` must point to writable memory for a `T`.
pub unsafe fn write<T: Copy>(address: u64, value: T) {
    // SAFETY: per the function's contract.
    unsafe { std::ptr::write_unaligned(address as *mut T, value) }
}

/// Where a finding is charged: `at` when given, else the driver's call of the kernel or
/// framework routine now running (see [`machine::call_site`]), else nothing (0: the parent
/// then names the callback).
fn place(at: u64) -> u64 {
    if at == 0 { machine::call_site() } else { at }
}

/// A violation found by the host, charged to the callback now running and to `at` (0: the
/// driver's call of the routine now running).
pub fn violation(kind: &str, at: u64, text: &str) {
    record!(
        "v {kind} {:#x} {} {} {} {text}",
        place(at),
        machine::step(),
        machine::callback(),
        machine::irql()
    );
}

/// An event worth reporting that is not a violation.
pub fn event(kind: &str, at: u64, text: &str) {
    record!(
        "event {kind} {:#x} {} {} {} {text}",
        place(at),
        machine::step(),
        machine::callback(),
        machine::irql()
    );
}

/// The id [`invoke`] gives the next callback it calls, for a caller that reports on that
/// invocation once it has returned ([`failure`]).
pub fn next_callback_id() -> u32 {
    with(|h| h.next_callback + 1)
}

/// A callback the device's start or its return to D0 depends on failed (`kind`: `start` or
/// `power-up`): charged to the function `at` and its invocation `callback` (from
/// [`next_callback_id`]), at the IRQL it was called at. The scenario is reported failed; the
/// device is marked failed, so the scenario skips to the removal.
pub fn failure(kind: &str, at: u64, callback: u32, irql: u8, text: &str) {
    with(|h| h.device_failed = true);
    record!(
        "fail {kind} {:#x} {} {callback} {irql} {text}",
        place(at),
        machine::step()
    );
}

/// Ends the scenario: the driver did something the host cannot go on from.
pub fn stop(kind: &str, at: u64, text: &str) -> ! {
    record!(
        "stop {kind} {:#x} {} {} {} {text}",
        place(at),
        machine::step(),
        machine::callback(),
        machine::irql()
    );
    // SAFETY: ends the child process; the parent reads the records written so far.
    unsafe { libc::_exit(machine::EXIT_STOPPED) }
}

/// The conventional name of an IRQL.
#[must_use]
pub fn irql_name(irql: u8) -> &'static str {
    match irql {
        0 => "PASSIVE_LEVEL",
        1 => "APC_LEVEL",
        2 => "DISPATCH_LEVEL",
        15 => "HIGH_LEVEL",
        _ => "DIRQL",
    }
}

type Callback6 = extern "win64" fn(u64, u64, u64, u64, u64, u64) -> u64;

/// Calls a driver function as the framework calls the callback `slot`: at `irql`, with up to
/// six integer arguments (the Windows x64 convention lets a callee ignore extra ones), and
/// checks on return that the IRQL and the spin locks are as they were.
pub fn invoke(slot: &str, function: u64, irql: u8, args: &[u64]) -> u64 {
    if function == 0 {
        return 0;
    }
    let id = with(|h| {
        h.next_callback += 1;
        h.next_callback
    });
    record!("cb {id} {} {irql} {function:#x} {slot}", machine::step());
    let outer_callback = machine::callback();
    let outer_irql = machine::irql();
    let outer_locks = machine::spin_locks();
    let outer_site = machine::call_site();
    machine::set_call_site(0);
    machine::set_callback(id);
    machine::set_irql(irql);
    let arg = |i: usize| args.get(i).copied().unwrap_or(0);
    // SAFETY: `function` is a callback the driver registered (an address in its image); the
    // Windows x64 convention passes the first four arguments in registers and the rest on the
    // stack, and a callee reads only the arguments it declares.
    let f: Callback6 = unsafe { std::mem::transmute::<usize, Callback6>(function as usize) };
    let result = f(arg(0), arg(1), arg(2), arg(3), arg(4), arg(5));
    let after = machine::irql();
    if after != irql {
        violation(
            "irql",
            function,
            &format!(
                "{slot} returned at IRQL {after} ({}), entered at {irql} ({})",
                irql_name(after),
                irql_name(irql)
            ),
        );
    }
    let locks = machine::spin_locks();
    if locks != outer_locks {
        violation(
            "lock",
            function,
            &format!(
                "{slot} returned holding {} spin lock(s)",
                locks - outer_locks.min(locks)
            ),
        );
        release_all_spin_locks();
        machine::set_spin_locks(outer_locks);
    }
    machine::set_irql(outer_irql);
    machine::set_callback(outer_callback);
    machine::set_call_site(outer_site);
    result
}

fn release_all_spin_locks() {
    with(|h| {
        for o in &mut h.objects {
            if let Kind::SpinLock { held, .. } = &mut o.kind {
                *held = false;
            }
        }
    });
}

/// Sets up the trap pages (one slot per routine in `names`) and returns their base.
///
/// # Errors
/// The mapping failed.
pub fn map_traps(slots: usize) -> Result<usize, String> {
    let len = (slots * TRAP_SLOT).div_ceil(0x1000) * 0x1000;
    // SAFETY: an anonymous PROT_NONE reservation: any access faults, which is its purpose.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len.max(0x1000),
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err("cannot map the trap pages".to_owned());
    }
    Ok(base as usize)
}

static STUBS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// An executable page with the host's machine-code stubs: `jmp rax` (Control Flow Guard's
/// dispatch, which calls the target in RAX) at offset 0 and `ret` at offset 16.
fn stubs() -> usize {
    *STUBS.get_or_init(|| {
        // SAFETY: a fresh anonymous page, written, then made read+execute.
        unsafe {
            let page = libc::mmap(
                std::ptr::null_mut(),
                0x1000,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if page == libc::MAP_FAILED {
                return 0;
            }
            let bytes = page.cast::<u8>();
            // jmp rax
            *bytes = 0xFF;
            *bytes.add(1) = 0xE0;
            // ret
            *bytes.add(16) = 0xC3;
            libc::mprotect(page, 0x1000, libc::PROT_READ | libc::PROT_EXEC);
            page as usize
        }
    })
}

/// What `GuardCFDispatchFunctionPointer` is set to.
#[must_use]
pub fn guard_dispatch_address() -> usize {
    stubs()
}

/// What `GuardCFCheckFunctionPointer` is set to: every target is allowed (the image's own
/// check routine would be `_guard_check_icall_nop` too outside of a CFG-enforcing kernel).
#[must_use]
pub fn guard_check_address() -> usize {
    stubs() + 16
}

/// Allocates pool; paged pool comes from the trimmed arena.
pub fn pool_alloc(paged: bool, size: u64) -> u64 {
    with(|h| {
        let arena = if paged { &mut h.paged } else { &mut h.nonpaged };
        arena.alloc(size).unwrap_or(0)
    })
}

/// Registers the paged-pool arena as a trimmed region.
pub fn register_paged_pool(arena: &Arena) {
    let index = machine::add_region(
        usize::try_from(arena.base).unwrap_or(0),
        usize::try_from(arena.len).unwrap_or(0),
        libc::PROT_READ | libc::PROT_WRITE,
        RegionKind::PagedPool,
    );
    record!("region {index} <paged pool>");
}
