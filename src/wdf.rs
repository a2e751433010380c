//! Small pieces of `wdf.h` that `wdk-sys` cannot bind: structure sizes, the `*_INIT`
//! inline functions, typed object contexts, and a debug print that does not pull in
//! `core::fmt`.
//!
//! Everything here is `const` or a small `#[inline]` function without a section of its
//! own: inlined into a pageable caller it becomes part of that caller, out of line it is
//! in `.text`, which is resident. Either way no resident code ends up calling pageable
//! code through it.

use core::ffi::CStr;

use pagewise_macros::resident_wdf_call;
use wdk_sys::{
    _WDF_EXECUTION_LEVEL, _WDF_IO_QUEUE_DISPATCH_TYPE, _WDF_SYNCHRONIZATION_SCOPE, _WDF_TRI_STATE,
    PCWDF_OBJECT_CONTEXT_TYPE_INFO, ULONG, UNICODE_STRING, USHORT, WDF_IO_QUEUE_CONFIG,
    WDF_OBJECT_ATTRIBUTES, WDF_OBJECT_CONTEXT_TYPE_INFO, WDFOBJECT,
};

/// `WDF_STRUCTURE_SIZE(T)`: the `Size` member of a WDF configuration structure
/// (windows-drivers-rs #242 asks for it in `wdk-sys`). Evaluated at compile time; a
/// structure that did not fit a `ULONG` would be a compile error, not a truncation.
pub const fn structure_size<T>() -> ULONG {
    let size = core::mem::size_of::<T>();
    assert!(
        size <= ULONG::MAX as usize,
        "WDF structure larger than a ULONG"
    );
    // The assert above makes the cast lossless.
    #[allow(clippy::cast_possible_truncation)]
    let size = size as ULONG;
    size
}

/// True when the framework's function table has every entry of the KMDF version the
/// driver was built for (`WdfFunctionTableNumEntries` of its headers).
///
/// Resident code calls the framework through `pagewise_macros::resident_wdf_call!`, which
/// has no per-call bounds check; this one check, in `DriverEntry`, is what makes its table
/// indices valid. It fails only on a framework older than the driver's KMDF version, which
/// the INF's `KmdfLibraryVersion` already keeps from loading the driver.
///
/// `PASSIVE_LEVEL`, from `DriverEntry`: inlined into it, in `INIT`.
#[inline]
pub fn function_table_complete() -> bool {
    // SAFETY: the framework's loader stub sets `WdfFunctionCount` when it binds the driver,
    // before `DriverEntry` runs, and nothing writes it afterwards.
    let count = unsafe { wdk_sys::WdfFunctionCount };
    u32::try_from(wdk_sys::_WDFFUNCENUM::WdfFunctionTableNumEntries)
        .is_ok_and(|needed| count >= needed)
}

/// `WDF_OBJECT_ATTRIBUTES_INIT`: zeroed, sized, execution level and synchronization
/// scope inherited from the parent. Pure computation, any IRQL.
#[inline]
pub fn object_attributes() -> WDF_OBJECT_ATTRIBUTES {
    WDF_OBJECT_ATTRIBUTES {
        Size: const { structure_size::<WDF_OBJECT_ATTRIBUTES>() },
        ExecutionLevel: _WDF_EXECUTION_LEVEL::WdfExecutionLevelInheritFromParent,
        SynchronizationScope: _WDF_SYNCHRONIZATION_SCOPE::WdfSynchronizationScopeInheritFromParent,
        ..WDF_OBJECT_ATTRIBUTES::default()
    }
}

/// `WDF_IO_QUEUE_CONFIG_INIT(config, WdfIoQueueDispatchSequential)`. Sequential, so the
/// parallel-only `Settings.Parallel.NumberOfPresentedRequests` stays zero as in C.
/// Pure computation, any IRQL.
#[inline]
pub fn sequential_queue_config() -> WDF_IO_QUEUE_CONFIG {
    WDF_IO_QUEUE_CONFIG {
        Size: const { structure_size::<WDF_IO_QUEUE_CONFIG>() },
        PowerManaged: _WDF_TRI_STATE::WdfUseDefault,
        DispatchType: _WDF_IO_QUEUE_DISPATCH_TYPE::WdfIoQueueDispatchSequential,
        ..WDF_IO_QUEUE_CONFIG::default()
    }
}

/// A `UNICODE_STRING` over a UTF-16 constant without a terminating NUL (the value names
/// of `pagewise_core::settings`). The registry functions only read through `Buffer`.
/// Pure computation, any IRQL.
#[inline]
pub fn unicode_string(text: &'static [u16]) -> UNICODE_STRING {
    // Registry value names are a few dozen characters; a name over 32767 characters
    // cannot be a UNICODE_STRING at all, and this clamps rather than wraps.
    let bytes = USHORT::try_from(text.len().saturating_mul(2)).unwrap_or(USHORT::MAX & !1);
    UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: text.as_ptr().cast_mut(),
    }
}

/// `WDF_OBJECT_CONTEXT_TYPE_INFO` in a `static`. The C macro
/// `WDF_DECLARE_CONTEXT_TYPE` emits one per context type; the framework identifies the
/// type by the address of its `UniqueType`, which points back at the static itself.
#[repr(transparent)]
pub struct ContextTypeInfo(WDF_OBJECT_CONTEXT_TYPE_INFO);

// SAFETY: the structure is immutable after compile time; its pointers are to 'static
// data (the name literal and the static itself), so sharing it between threads is sound.
unsafe impl Sync for ContextTypeInfo {}

impl ContextTypeInfo {
    /// The type information of a context of type `T` named `name`, whose static lives at
    /// `this`.
    pub const fn new<T>(name: &'static CStr, this: &'static ContextTypeInfo) -> Self {
        Self(WDF_OBJECT_CONTEXT_TYPE_INFO {
            Size: structure_size::<WDF_OBJECT_CONTEXT_TYPE_INFO>(),
            ContextName: name.as_ptr(),
            ContextSize: core::mem::size_of::<T>(),
            UniqueType: core::ptr::from_ref(this).cast::<WDF_OBJECT_CONTEXT_TYPE_INFO>(),
            EvtDriverGetUniqueContextType: None,
        })
    }

    /// `WDF_GET_CONTEXT_TYPE_INFO(T)`, for `WDF_OBJECT_ATTRIBUTES::ContextTypeInfo`.
    #[inline]
    pub const fn get(&'static self) -> PCWDF_OBJECT_CONTEXT_TYPE_INFO {
        self.0.UniqueType
    }

    /// `WdfObjectGetTypedContext(handle, T)`: the context of this type on `handle`, or
    /// null when the object has none (KMDF's verifier breaks in then).
    ///
    /// # Safety
    ///
    /// `handle` must be a live WDF object. Callable at any IRQL up to `DISPATCH_LEVEL`.
    #[inline]
    pub unsafe fn context_of<T>(&'static self, handle: WDFOBJECT) -> *mut T {
        // SAFETY: the caller passes a live handle; the type info is a valid static.
        unsafe { resident_wdf_call!(WdfObjectGetTypedContextWorker, handle, self.get()) }
            .unwrap_or(core::ptr::null_mut())
            .cast::<T>()
    }
}

/// Prints through `DbgPrintEx(DPFLTR_IHVDRIVER_ID, level, "pagewise: " fmt, args...)`
/// in builds with debug assertions; compiles to nothing otherwise, arguments included.
///
/// A C format string, never `core::fmt`: `wdk::println!` would pull the formatting
/// machinery into the resident image, even in release builds. `DbgPrintEx` may be called
/// at any IRQL up to `DIRQL`, so this is usable on every path of the driver.
macro_rules! trace {
    ($level:ident, $fmt:literal $(, $arg:expr)* $(,)?) => {
        #[cfg(debug_assertions)]
        {
            // The component id is a C enum value (77); the conversion cannot fail.
            let component =
                ::wdk_sys::ULONG::try_from(::wdk_sys::_DPFLTR_TYPE::DPFLTR_IHVDRIVER_ID)
                    .unwrap_or(0);
            // DbgPrintEx's return value is the status of the print, which nobody acts on.
            // SAFETY: the format is a NUL-terminated literal whose conversions match the
            // arguments, each of which is a 32-bit integer or a NUL-terminated string.
            let _ = unsafe {
                ::wdk_sys::ntddk::DbgPrintEx(
                    component,
                    ::wdk_sys::$level,
                    concat!("pagewise: ", $fmt, "\n\0").as_ptr().cast(),
                    $($arg),*
                )
            };
        }
    };
}

pub(crate) use trace;
