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
//! IRQL to `DISPATCH_LEVEL`, where a page fault is a bug check. [`DeviceContext::with_state`]
//! is therefore never inlined into its (possibly pageable) callers, and the `DeviceState`
//! methods it runs live in `pagewise-core`'s `.text`.

use core::cell::UnsafeCell;

use pagewise_core::DeviceState;
use wdk_sys::{
    KIRQL, PVOID, WDFDEVICE, WDFQUEUE, WDFSPINLOCK, WDFTIMER, WDFWORKITEM,
    call_unsafe_wdf_function_binding,
};

use crate::wdf::ContextTypeInfo;

/// The context of the pagewise WDFDEVICE.
pub struct DeviceContext {
    /// Guards `state`. Created with the device as parent; null until the context is
    /// initialised.
    lock: WDFSPINLOCK,
    /// Everything the driver decides and records. Only touched inside
    /// [`DeviceContext::with_state`].
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

impl DeviceContext {
    /// Initialises the framework's zeroed context memory at `raw` in place: the state
    /// (a few KiB: written where it lives rather than built on the kernel stack and
    /// copied), the handles, and the spin lock last, because a non-null lock is what
    /// tells [`DeviceContext::get`] the context is ready.
    ///
    /// # Safety
    ///
    /// `raw` is the context of a device created by the caller, in `EvtDriverDeviceAdd`,
    /// before any callback of that device can run (`PASSIVE_LEVEL`).
    pub unsafe fn init_in_place(
        raw: *mut DeviceContext,
        lock: WDFSPINLOCK,
        hold_timer: WDFTIMER,
        persist_item: WDFWORKITEM,
        power_queue: WDFQUEUE,
    ) {
        // SAFETY: `raw` is valid for writes of a whole DeviceContext (caller); each
        // field is written once through a raw pointer, never through a reference to the
        // not yet valid whole.
        unsafe {
            core::ptr::addr_of_mut!((*raw).state).write(UnsafeCell::new(DeviceState::new()));
            core::ptr::addr_of_mut!((*raw).power_down_handle)
                .write(UnsafeCell::new(core::ptr::null_mut()));
            core::ptr::addr_of_mut!((*raw).hold_timer).write(hold_timer);
            core::ptr::addr_of_mut!((*raw).persist_item).write(persist_item);
            core::ptr::addr_of_mut!((*raw).power_queue).write(power_queue);
            core::ptr::addr_of_mut!((*raw).lock).write(lock);
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
    /// # Safety
    ///
    /// As [`DeviceContext::raw`]; the reference must not outlive the device object,
    /// which holds for any use inside one of its callbacks.
    #[inline]
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

    /// Runs `f` on the state with the spin lock held, at `DISPATCH_LEVEL`.
    ///
    /// Resident and never inlined: the lock raises the IRQL, so neither this code nor
    /// anything `f` calls may be pageable (PAGING.md section 2). Every caller passes a
    /// closure that only calls `DeviceState` methods, which are resident, short and
    /// panic-free.
    #[inline(never)]
    pub fn with_state<R>(&self, f: impl FnOnce(&mut DeviceState) -> R) -> R {
        // SAFETY: `lock` is the live spin lock created with the device as its parent.
        unsafe { call_unsafe_wdf_function_binding!(WdfSpinLockAcquire, self.lock) };
        // SAFETY: the spin lock serialises every access to `state`; no reference to it
        // escapes the closure.
        let result = f(unsafe { &mut *self.state.get() });
        // SAFETY: acquired above.
        unsafe { call_unsafe_wdf_function_binding!(WdfSpinLockRelease, self.lock) };
        result
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
