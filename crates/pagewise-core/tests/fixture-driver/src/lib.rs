//! A driver-shaped image with one function in each kind of section, so the section lookup can
//! be checked against a real compiler's and linker's output. Each function is exported (so the
//! test finds its RVA in the export table) and `#[inline(never)]` (so it has its own body where
//! its attribute put it).
#![no_std]

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

/// Resident (`.text`).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "system" fn resident_function(x: u32) -> u32 {
    x.wrapping_mul(2_654_435_761).rotate_left(7)
}

/// Pageable.
#[unsafe(no_mangle)]
#[unsafe(link_section = "PAGE")]
#[inline(never)]
pub extern "system" fn paged_function(x: u32) -> u32 {
    resident_function(x ^ 0x5A5A).wrapping_add(11)
}

/// The power-down section.
#[unsafe(no_mangle)]
#[unsafe(link_section = "PAGEPWR")]
#[inline(never)]
pub extern "system" fn power_down_function(x: u32) -> u32 {
    x.rotate_right(3) ^ 0xA5A5_A5A5
}

/// Discardable.
#[unsafe(no_mangle)]
#[unsafe(link_section = "INIT")]
#[inline(never)]
pub extern "system" fn DriverEntry(driver: usize, registry: usize) -> i32 {
    let x = u32::try_from(driver ^ registry).unwrap_or(0);
    let y = paged_function(x) ^ power_down_function(x) ^ resident_function(x);
    i32::from_ne_bytes(y.to_ne_bytes()) & 0x7FFF_FFFF
}
