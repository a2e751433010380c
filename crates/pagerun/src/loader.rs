//! Maps a driver image into this process as the kernel loader would: at its preferred base when
//! that range is free (else anywhere, with its base relocations applied), each section with its
//! own protection, imports bound to the host's implementations, the security cookie and the
//! Control Flow Guard pointers set, `INIT` and `PAGE*` registered with [`crate::machine`].

use pagecheck::image::{Image, Residency};

use crate::machine::{self, RegionKind, TRAP_SLOT};

const PAGE: usize = 0x1000;
const SCN_EXECUTE: u32 = 0x2000_0000;
const SCN_READ: u32 = 0x4000_0000;
const SCN_WRITE: u32 = 0x8000_0000;
/// The value `/GS` images carry until the loader replaces it.
const DEFAULT_SECURITY_COOKIE: u64 = 0x2B99_2DDF_A232;

/// An image in memory.
#[derive(Debug)]
pub struct Loaded {
    /// Where it was mapped.
    pub base: usize,
    /// `SizeOfImage`, rounded to pages.
    pub size: usize,
    /// Whether base relocations were applied (the preferred base was taken).
    pub relocated: bool,
    /// Imports no implementation was found for, by name.
    pub unbound: Vec<String>,
}

impl Loaded {
    /// The address of `rva`.
    #[must_use]
    pub fn at(&self, rva: u32) -> usize {
        self.base + rva as usize
    }
}

fn round_up(n: usize) -> usize {
    n.div_ceil(PAGE) * PAGE
}

/// What the loader binds: the address of an import's implementation, if the host has one.
pub trait Binder {
    /// `dll` and `name` as the import table spells them (`ntoskrnl.exe`, `KeGetCurrentIrql`).
    fn resolve(&mut self, dll: &str, name: &str) -> Option<usize>;
}

/// Checks what the loader needs before anything is mapped.
///
/// # Errors
/// Sections not page-aligned (paging is enforced per page), or more pageable sections than
/// the machine tracks.
pub fn check(image: &Image) -> Result<(), String> {
    for s in &image.sections {
        if !(s.rva as usize).is_multiple_of(PAGE) {
            return Err(format!(
                "section {} starts at RVA {:#x}, not on a page boundary: paging cannot be enforced per section \
                 (link with the default /ALIGN of 4096)",
                s.name, s.rva
            ));
        }
    }
    let pageable = image
        .sections
        .iter()
        .filter(|s| s.residency != Residency::Resident)
        .count();
    if pageable > 24 {
        return Err(format!(
            "{pageable} PAGE*/INIT sections: more than the 24 this host tracks"
        ));
    }
    Ok(())
}

/// Maps `image`, binds its imports through `binder` (unbound ones to the trap slots after the
/// `reserved_traps` the caller uses itself), and protects it.
///
/// # Errors
/// No memory for the image, or a section outside it.
pub fn load(
    image: &Image,
    binder: &mut dyn Binder,
    trap_base: usize,
    first_free_trap: usize,
) -> Result<(Loaded, Vec<(usize, String)>), String> {
    check(image)?;
    let size = round_up(image.size_of_image as usize);
    let preferred = usize::try_from(image.image_base).unwrap_or(0);
    // SAFETY: an anonymous private mapping; MAP_FIXED_NOREPLACE never replaces an existing
    // mapping, so at worst the call fails or returns another address.
    let mut base = unsafe {
        libc::mmap(
            preferred as *mut libc::c_void,
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED || base as usize != preferred {
        if base != libc::MAP_FAILED {
            // SAFETY: the mapping just returned, not used yet.
            unsafe { libc::munmap(base, size) };
        }
        // SAFETY: as above, at an address of the kernel's choice.
        base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(format!("cannot map {size:#x} bytes for the image"));
        }
    }
    let base = base as usize;
    let bytes = image.bytes();
    // SAFETY: [base, base + size) was just mapped read-write and belongs to nothing else.
    let memory = unsafe { std::slice::from_raw_parts_mut(base as *mut u8, size) };
    let headers = bytes.len().min(PAGE);
    memory[..headers].copy_from_slice(&bytes[..headers]);
    for (index, s) in image.sections.iter().enumerate() {
        let data = image.section_data(index);
        let start = s.rva as usize;
        let end = start + data.len();
        if end > size {
            return Err(format!("section {} lies outside SizeOfImage", s.name));
        }
        memory[start..end].copy_from_slice(data);
    }

    let delta = (base as u64).wrapping_sub(image.image_base);
    let relocated = delta != 0;
    if relocated {
        for &site in &image.dir64_relocations {
            let at = site as usize;
            if let Some(slot) = memory.get_mut(at..at + 8) {
                let value = u64::from_le_bytes(slot.try_into().unwrap_or([0; 8]));
                slot.copy_from_slice(&value.wrapping_add(delta).to_le_bytes());
            }
        }
    }

    let mut unbound = Vec::new();
    let mut traps = Vec::new();
    for (slot, full) in &image.imports {
        let (dll, name) = full.split_once('!').unwrap_or(("?", full.as_str()));
        let target = binder.resolve(dll, name).unwrap_or_else(|| {
            let index = first_free_trap + traps.len();
            traps.push((index, full.clone()));
            unbound.push(full.clone());
            trap_base + index * TRAP_SLOT
        });
        let at = *slot as usize;
        if let Some(cell) = memory.get_mut(at..at + 8) {
            cell.copy_from_slice(&(target as u64).to_le_bytes());
        }
    }

    set_load_config(image, memory, delta);

    // Protections, and the regions paging is enforced on.
    // SAFETY: the headers page of the mapping made above.
    unsafe { libc::mprotect(base as *mut libc::c_void, PAGE, libc::PROT_READ) };
    let mut names = Vec::new();
    for s in &image.sections {
        let start = base + s.rva as usize;
        let len = round_up(s.virtual_size.max(1) as usize);
        let mut prot = 0;
        if s.characteristics & SCN_READ != 0 {
            prot |= libc::PROT_READ;
        }
        if s.characteristics & SCN_WRITE != 0 {
            prot |= libc::PROT_WRITE;
        }
        if s.characteristics & SCN_EXECUTE != 0 {
            prot |= libc::PROT_EXEC | libc::PROT_READ;
        }
        // SAFETY: a page range inside the image mapping.
        unsafe { libc::mprotect(start as *mut libc::c_void, len, prot) };
        let kind = match s.residency {
            Residency::Resident => continue,
            Residency::Pageable => RegionKind::Pageable,
            Residency::Discardable => RegionKind::Init,
        };
        machine::add_region(start, len, prot, kind);
        names.push(s.name.clone());
    }
    Ok((
        Loaded {
            base,
            size,
            relocated,
            unbound,
        },
        traps,
    ))
    .map(|(loaded, traps)| {
        crate::host::set_section_regions(names);
        (loaded, traps)
    })
}

/// The security cookie and the Control Flow Guard function pointers of the load configuration
/// (x64 layout: `SecurityCookie` at 88, `GuardCFCheckFunctionPointer` at 112,
/// `GuardCFDispatchFunctionPointer` at 120): the cookie gets a value other than the default,
/// the guard pointers the host's check and dispatch routines.
fn set_load_config(image: &Image, memory: &mut [u8], delta: u64) {
    let Some((rva, size)) = load_config(image) else {
        return;
    };
    let read = |memory: &[u8], at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(memory.get(at..at + 8)?.try_into().ok()?))
    };
    let len = memory.len();
    let rva_of = |va: u64| -> Option<usize> {
        let va = va.checked_sub(image.image_base.wrapping_add(delta))?;
        usize::try_from(va).ok().filter(|&r| r + 8 <= len)
    };
    let base = rva as usize;
    if size >= 96
        && let Some(cookie_va) = read(memory, base + 88)
        && let Some(cookie) = rva_of(cookie_va)
        && read(memory, cookie) == Some(DEFAULT_SECURITY_COOKIE)
    {
        // Any value but the default, with the top 16 bits clear as the kernel's are.
        memory[cookie..cookie + 8].copy_from_slice(&0x0000_5EED_C00C_1E5Fu64.to_le_bytes());
    }
    if size >= 128 {
        for (offset, target) in [
            (112, crate::host::guard_check_address()),
            (120, crate::host::guard_dispatch_address()),
        ] {
            if let Some(va) = read(memory, base + offset)
                && let Some(slot) = rva_of(va)
            {
                memory[slot..slot + 8].copy_from_slice(&(target as u64).to_le_bytes());
            }
        }
    }
}

fn load_config(image: &Image) -> Option<(u32, u32)> {
    // The data directory is in the optional header: e_lfanew + 24 + 112 + 10 * 8 for x64.
    let bytes = image.bytes();
    let lfanew = u32::from_le_bytes(bytes.get(60..64)?.try_into().ok()?) as usize;
    let at = lfanew + 24 + 112 + 10 * 8;
    let rva = u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?);
    let size = u32::from_le_bytes(bytes.get(at + 4..at + 8)?.try_into().ok()?);
    (rva != 0).then_some((rva, size))
}
