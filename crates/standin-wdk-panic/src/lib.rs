//! The panic handler of a Rust driver, as wdk-panic 0.5.0 has it, for the pagewise driver's
//! image built without a WDK: a kernel has no unwinding, so a panic stops the machine with
//! `KeBugCheckEx`, bug check code `RPNC` ("Rust panic", read big-endian) and the panic's
//! file (address and length), line and column as the four parameters, which a crash dump
//! shows. Only in the driver's image (a Windows target): a host build of the workspace has
//! std's handler.
#![no_std]

#[cfg(windows)]
mod handler {
    use core::panic::PanicInfo;

    #[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
    unsafe extern "system" {
        /// `KeBugCheckEx` (wdm.h): never returns.
        fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize) -> !;
    }

    /// "RPNC".
    const RUST_PANIC: u32 = u32::from_be_bytes(*b"RPNC");

    #[cold]
    #[panic_handler]
    fn panic(info: &PanicInfo) -> ! {
        let (file, length, line, column) = info.location().map_or((0, 0, 0, 0), |at| {
            (
                at.file().as_ptr().addr(),
                at.file().len(),
                at.line() as usize,
                at.column() as usize,
            )
        });
        // SAFETY: KeBugCheckEx takes any arguments at any IRQL and does not return.
        unsafe { KeBugCheckEx(RUST_PANIC, file, length, line, column) }
    }
}
