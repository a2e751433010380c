//! The WDFDEVICE's context: the portable state behind one `WDFSPINLOCK`, and the handles
//! the callbacks need.
//!
//! The framework allocates the context from nonpaged pool and zeroes it; a zeroed
//! `DeviceState` is not a valid value, so `EvtDriverDeviceAdd` initialises the context in
//! place once every handle in it exists, the spin lock last. The spin lock handle doubles as the
//! "initialised" flag: [`DeviceContext::get`] hands out a reference only when it is
//! non-null, which keeps the cleanup callback of a device whose `EvtDriverDeviceAdd`
//! failed half-way from touching a zeroed state.
//!
//! Everything that runs with the spin lock held is resident: acquiring it raises the
//! IRQL to `DISPATCH_LEVEL`, where a page fault is a bug check. All of it goes through one
//! non-generic function, [`DeviceContext::locked`], which performs a
//! `pagewise_core::locked::Op` with `DeviceState::apply`: one copy of the lock sequence
//! and of the state logic, both in `.text`, whichever section the caller is in.

use core::cell::UnsafeCell;

use pagewise_core::DeviceState;
use pagewise_core::deferred::PersistedCounters;
use pagewise_core::image::Placements;
use pagewise_core::locked::{Op, Reply};
use pagewise_core::pageability::LockAction;
use pagewise_core::settings::Settings;
use pagewise_macros::resident_wdf_call;
use wdk_sys::{KIRQL, PVOID, WDFDEVICE, WDFQUEUE, WDFSPINLOCK, WDFTIMER, WDFWORKITEM};

use crate::wdf::ContextTypeInfo;

/// The context of the pagewise WDFDEVICE.
pub struct DeviceContext {
    /// Guards `state`. Created with the device as parent; null until the context is
    /// initialised.
    lock: WDFSPINLOCK,
    /// Everything the driver decides and records. Only touched inside
    /// [`DeviceContext::locked`], once the context is published.
    state: UnsafeCell<DeviceState>,
    /// The handle `MmLockPagableCodeSection` returned for the power-down section, null
    /// until the first lock. Kept after an unlock: it stays valid while the image is
    /// loaded, and later locks go through `MmLockPagableSectionByHandle` with it. Only
    /// the PnP-serialised `PASSIVE_LEVEL` callbacks touch it (`EvtDriverDeviceAdd`,
    /// `EvtDeviceUsageNotificationEx`, device cleanup): the framework never runs two of
    /// them at once for one device, so it needs no lock of its own.
    power_down_handle: UnsafeCell<PVOID>,
    /// Fires at the end of a D0 hold (`DISPATCH_LEVEL`).
    pub hold_timer: WDFTIMER,
    /// Writes the lifetime counters at `PASSIVE_LEVEL` when the resident path asks.
    pub persist_item: WDFWORKITEM,
    /// The power-managed queue `IOCTL_PAGEWISE_HOLD_D0` is forwarded to.
    pub power_queue: WDFQUEUE,
}

/// `WDF_DECLARE_CONTEXT_TYPE(DeviceContext)`.
pub static DEVICE_CONTEXT_TYPE: ContextTypeInfo =
    ContextTypeInfo::new::<DeviceContext>(c"DeviceContext", &DEVICE_CONTEXT_TYPE);

/// What `EvtDriverDeviceAdd` puts in a new context.
pub struct NewContext<'a> {
    /// The spin lock guarding the state.
    pub lock: WDFSPINLOCK,
    /// The D0-hold timer.
    pub hold_timer: WDFTIMER,
    /// The persistence work item.
    pub persist_item: WDFWORKITEM,
    /// The power-managed queue.
    pub power_queue: WDFQUEUE,
    /// The settings the device was created with.
    pub settings: Settings,
    /// The lifetime counters read from the hardware key.
    pub stored: PersistedCounters,
    /// The self-check's result.
    pub placements: &'a Placements,
}

impl DeviceContext {
    /// Initialises the framework's zeroed context memory at `raw` in place and returns
    /// the lock action to run before the first power transition. The state (a few KiB)
    /// is written where it lives rather than built on the kernel stack and copied, and
    /// set up without the spin lock: nothing can reach it before the lock handle, written
    /// last, tells [`DeviceContext::get`] the context is ready. That keeps the set-up code
    /// in the caller's pageable section instead of under the lock, in resident code.
    ///
    /// # Safety
    ///
    /// `raw` is the context of a device created by the caller, in `EvtDriverDeviceAdd`,
    /// before any callback of that device can run (`PASSIVE_LEVEL`).
    #[expect(
        clippy::inline_always,
        reason = "out of line it would be resident code run once per device; inlined it is \
                  part of its one caller, EvtDriverDeviceAdd, in PAGE"
    )]
    #[inline(always)]
    pub unsafe fn init_in_place(raw: *mut DeviceContext, new: &NewContext<'_>) -> LockAction {
        // SAFETY: `raw` is valid for writes of a whole DeviceContext (caller); each
        // field is written once through a raw pointer, never through a reference to the
        // not yet valid whole. The state is unpublished (the lock is still null), so the
        // exclusive reference to it is the only one.
        unsafe {
            core::ptr::addr_of_mut!((*raw).state).write(UnsafeCell::new(DeviceState::new()));
            let action =
                (*(*raw).state.get()).on_device_created(new.settings, new.stored, new.placements);
            core::ptr::addr_of_mut!((*raw).power_down_handle)
                .write(UnsafeCell::new(core::ptr::null_mut()));
            core::ptr::addr_of_mut!((*raw).hold_timer).write(new.hold_timer);
            core::ptr::addr_of_mut!((*raw).persist_item).write(new.persist_item);
            core::ptr::addr_of_mut!((*raw).power_queue).write(new.power_queue);
            core::ptr::addr_of_mut!((*raw).lock).write(new.lock);
            action
        }
    }

    /// The raw context memory of `device` (zeroed until `EvtDriverDeviceAdd` writes it).
    ///
    /// # Safety
    ///
    /// `device` must be a live WDFDEVICE created with [`DEVICE_CONTEXT_TYPE`]. Any IRQL
    /// up to `DISPATCH_LEVEL`.
    #[inline]
    pub unsafe fn raw(device: WDFDEVICE) -> *mut DeviceContext {
        // SAFETY: forwarded from the caller.
        unsafe { DEVICE_CONTEXT_TYPE.context_of::<DeviceContext>(device.cast()) }
    }

    /// The initialised context of `device`, or `None` before `EvtDriverDeviceAdd` wrote
    /// it (or if the framework found no context, which the verifier reports).
    ///
    /// Resident and not inlined: every callback starts here, resident ones included, and
    /// one copy serves them all.
    ///
    /// # Safety
    ///
    /// As [`DeviceContext::raw`]; the reference must not outlive the device object,
    /// which holds for any use inside one of its callbacks.
    #[inline(never)]
    pub unsafe fn get<'a>(device: WDFDEVICE) -> Option<&'a DeviceContext> {
        // SAFETY: forwarded from the caller.
        let raw = unsafe { Self::raw(device) };
        if raw.is_null() {
            return None;
        }
        // SAFETY: `raw` points at the framework's zero-initialised context; reading the
        // handle field through a raw pointer is valid for any bit pattern of a pointer.
        let lock = unsafe { core::ptr::addr_of!((*raw).lock).read() };
        if lock.is_null() {
            return None;
        }
        // SAFETY: a non-null lock means EvtDriverDeviceAdd wrote the whole context
        // (see the module documentation); the framework keeps it alive with the device.
        Some(unsafe { &*raw })
    }

    /// Performs `op` on the state with the spin lock held, at `DISPATCH_LEVEL`: the
    /// driver's one locked entry point.
    ///
    /// Resident (no section attribute) and never inlined: the lock raises the IRQL, and
    /// code that runs at `DISPATCH_LEVEL` must not be pageable, so neither this function
    /// nor `DeviceState::apply` may be copied into a pageable caller. Not generic, so
    /// there is one copy however many callers there are. `apply` is short, allocation-free
    /// and panic-free (`pagewise-core`'s lints).
    #[inline(never)]
    pub fn locked(&self, op: Op<'_>) -> Reply {
        // SAFETY: `lock` is the live spin lock created with the device as its parent.
        // A missing table entry would leave the state unguarded: then nothing is done.
        if unsafe { resident_wdf_call!(WdfSpinLockAcquire, self.lock) }.is_none() {
            return Reply::Nothing;
        }
        // SAFETY: the spin lock serialises every access to `state`; the reference ends
        // with this statement.
        let reply = unsafe { &mut *self.state.get() }.apply(op);
        // SAFETY: acquired above.
        let _ = unsafe { resident_wdf_call!(WdfSpinLockRelease, self.lock) };
        reply
    }

    /// The state without the spin lock, for the device's `EvtCleanupCallback` only.
    ///
    /// KMDF disposes every child object of the device before it calls the device's
    /// `EvtCleanupCallback` (its object state machine disposes the children first, so that
    /// their cleanup runs while the parent is still valid). The spin lock is one of those
    /// children: its handle must not be used there. Nothing else can reach the state by then:
    /// the timer, the work item and the queues are disposed children too, and no `PnP` or
    /// power callback follows cleanup.
    ///
    /// # Safety
    ///
    /// Only from the `EvtCleanupCallback` of the device that owns `self`, and the reference
    /// must not outlive it.
    #[expect(
        clippy::mut_from_ref,
        reason = "exclusive by the framework's order of cleanup, as the doc says"
    )]
    #[inline]
    pub unsafe fn state_in_cleanup(&self) -> &mut DeviceState {
        // SAFETY: the caller's contract: no other code can reach the state any more.
        unsafe { &mut *self.state.get() }
    }

    /// The power-down section's lock handle.
    ///
    /// # Safety
    ///
    /// Only from the PnP-serialised `PASSIVE_LEVEL` callbacks (see the field).
    #[inline]
    pub unsafe fn power_down_handle(&self) -> *mut PVOID {
        self.power_down_handle.get()
    }
}

/// `KeGetCurrentIrql()`, for the transition log. Any IRQL.
#[inline]
pub fn current_irql() -> KIRQL {
    // SAFETY: reads the current processor's IRQL; no preconditions.
    unsafe { wdk_sys::ntddk::KeGetCurrentIrql() }
}

/// Interrupt time in 100 ns units, for the transition log and the D0 hold. Any IRQL.
///
/// `KeQueryInterruptTime` is a macro over `KUSER_SHARED_DATA` in `wdm.h` on x64, so
/// `wdk-sys` has no binding for it; `KeQueryInterruptTimePrecise` is the exported
/// function (Windows 8.1 and later, any IRQL), and its precision is what a
/// time-to-working measurement of a few hundred microseconds needs.
#[inline]
pub fn interrupt_time() -> u64 {
    let mut qpc: u64 = 0;
    // SAFETY: the out-parameter is a valid local.
    unsafe { wdk_sys::ntddk::KeQueryInterruptTimePrecise(&raw mut qpc) }
}
