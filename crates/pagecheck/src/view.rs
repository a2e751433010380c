//! What the decoder asks about the image: [`View`] answers questions of one instruction's
//! operands (is this address code, an import slot, the KMDF function table, read-only data?),
//! [`Context`] answers them from a real image, and [`Special`] names the few functions whose
//! effect the analysis models instead of following (the C memory functions, Control Flow
//! Guard's pointers, section locking, the calls that raise or lower the IRQL).

use crate::dataflow::ImageBytes;
use crate::functions::Functions;
use crate::image::{Image, Residency};
use crate::locks;

/// What a call or an indirect slot is, beyond an ordinary function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Special {
    /// `memcpy`/`memmove`: `rcx` destination, `rdx` source, `r8` length.
    Copy,
    /// `memset`: `rcx` destination, `dl` byte, `r8` length.
    Fill,
    /// Control Flow Guard's dispatch pointer: the call goes to `rax`.
    GuardDispatch,
    /// Control Flow Guard's check pointer: validates `rcx`, changes nothing else.
    GuardCheck,
    /// `MmLockPagableDataSection` (`MmLockPagableCodeSection` is a macro for it): locks the
    /// pageable section that holds the address in `rcx`.
    LockSection,
    /// Takes or releases a spin lock ([`crate::locks`]).
    Irql(locks::Effect),
}

/// What the decoder asks about the image while classifying instructions. [`Context`] answers
/// from a real image; the unit tests answer from hand-assembled bytes.
pub trait View: ImageBytes {
    /// Preferred image base.
    fn image_base(&self) -> u64;
    /// The RVA of an absolute address inside the image.
    fn rva_of_va(&self, va: u64) -> Option<u32>;
    /// Four bytes at `rva`, little-endian.
    fn read_u32(&self, rva: u32) -> Option<u32>;
    /// Whether `rva` lies in a code section.
    fn is_code(&self, rva: u32) -> bool;
    /// Whether `rva` lies in a section the image never writes.
    fn is_read_only(&self, rva: u32) -> bool;
    /// Whether `rva` is an import address table slot.
    fn is_import_slot(&self, rva: u32) -> bool;
    /// Whether `rva` is a `WdfFunctions_01xxx` table pointer variable.
    fn is_wdf_table(&self, rva: u32) -> bool;
    /// The code a relocated pointer in read-only data at `slot` points to.
    fn constant_code_pointer(&self, slot: u32) -> Option<u32>;
    /// What calling through the pointer (import or data) at `slot` does, if special.
    fn special_slot(&self, slot: u32) -> Option<Special>;
    /// What calling the image's own function at `rva` does, if special (`memcpy`...).
    fn special_function(&self, rva: u32) -> Option<Special>;
    /// Whether `rva` is data (not code) in a pageable or discardable section.
    fn is_paged_data(&self, rva: u32) -> bool;
    /// The `dll!name` of the import whose address table slot is at `slot`.
    fn import_name(&self, slot: u32) -> Option<&str>;
}

/// Everything the decoder needs to know about the image to classify one instruction.
pub struct Context<'a> {
    image: &'a Image,
    functions: &'a Functions,
    /// RVAs of the `WdfFunctions_01xxx` pointer variables.
    wdf_tables: Vec<u32>,
    /// Slots and functions with a [`Special`] meaning, sorted by RVA.
    specials: Vec<(u32, Special)>,
}

/// Names of the functions and pointer variables [`Special`] stands for: the C memory
/// functions (the kernel exports them; Rust's `compiler_builtins` defines them in the image)
/// and the Control Flow Guard pointers (`__guard_xfg_*` are the XFG variants).
const SPECIAL_NAMES: &[(&str, Special)] = &[
    ("memcpy", Special::Copy),
    ("memmove", Special::Copy),
    ("RtlCopyMemory", Special::Copy),
    ("RtlMoveMemory", Special::Copy),
    ("memset", Special::Fill),
    ("RtlFillMemory", Special::Fill),
    ("__guard_dispatch_icall_fptr", Special::GuardDispatch),
    ("__guard_xfg_dispatch_icall_fptr", Special::GuardDispatch),
    ("__guard_check_icall_fptr", Special::GuardCheck),
    ("__guard_xfg_check_icall_fptr", Special::GuardCheck),
    ("MmLockPagableDataSection", Special::LockSection),
    ("MmLockPagableCodeSection", Special::LockSection),
];

/// The [`Special`] a symbol or import name stands for (`dll!name` for imports).
#[must_use]
pub fn special_of(name: &str) -> Option<Special> {
    let name = name.rsplit_once('!').map_or(name, |(_, n)| n);
    if let Some(effect) = locks::effect_of(name) {
        return Some(Special::Irql(effect));
    }
    let name = name
        .strip_prefix("compiler_builtins::mem::")
        .unwrap_or(name);
    SPECIAL_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, s)| s)
}

/// The Control Flow Guard pointer a PDB symbol names, if it names one. Only whole names are
/// compared, and a comparison looks at the length before the text: this runs on every symbol
/// of the PDB.
#[must_use]
pub fn guard_pointer(name: &str) -> Option<Special> {
    SPECIAL_NAMES
        .iter()
        .find(|&&(n, s)| matches!(s, Special::GuardDispatch | Special::GuardCheck) && n == name)
        .map(|&(_, s)| s)
}

impl<'a> Context<'a> {
    /// A context for `image`; `wdf_tables` are the RVAs of the KMDF table variables.
    #[must_use]
    pub fn new(image: &'a Image, functions: &'a Functions, wdf_tables: Vec<u32>) -> Context<'a> {
        let mut specials: Vec<(u32, Special)> = image
            .imports
            .iter()
            .filter_map(|(slot, name)| special_of(name).map(|s| (*slot, s)))
            .chain(
                functions
                    .list
                    .iter()
                    .filter_map(|f| special_of(&f.name).map(|s| (f.start, s))),
            )
            .chain(
                image
                    .guard_dispatch
                    .iter()
                    .map(|&rva| (rva, Special::GuardDispatch)),
            )
            .chain(
                image
                    .guard_check
                    .iter()
                    .map(|&rva| (rva, Special::GuardCheck)),
            )
            .collect();
        // Import thunks (`jmp [rip+__imp_X]`, what the linker makes for a call to an import
        // not declared dllimport) stand for their import.
        for f in &functions.list {
            if let Some(b) = image.read_at(f.start, 6)
                && b[0] == 0xff
                && b[1] == 0x25
            {
                let disp = i32::from_le_bytes([b[2], b[3], b[4], b[5]]);
                let slot = f.start.wrapping_add(6).wrapping_add_signed(disp);
                if let Some(special) = image.import_at(slot).and_then(special_of) {
                    specials.push((f.start, special));
                }
            }
        }
        specials.sort_unstable_by_key(|&(rva, _)| rva);
        specials.dedup_by_key(|&mut (rva, _)| rva);
        Context {
            image,
            functions,
            wdf_tables,
            specials,
        }
    }

    /// Adds special slots known from symbols (the Control Flow Guard pointers of an image
    /// whose load configuration does not name them).
    pub fn add_special(&mut self, rva: u32, special: Special) {
        if let Err(at) = self.specials.binary_search_by_key(&rva, |&(r, _)| r) {
            self.specials.insert(at, (rva, special));
        }
    }

    /// The functions.
    #[must_use]
    pub fn functions(&self) -> &Functions {
        self.functions
    }

    /// The image.
    #[must_use]
    pub fn image(&self) -> &Image {
        self.image
    }

    fn special_at(&self, rva: u32) -> Option<Special> {
        self.specials
            .binary_search_by_key(&rva, |&(r, _)| r)
            .ok()
            .map(|i| self.specials[i].1)
    }
}

impl ImageBytes for Context<'_> {
    fn read_bytes(&self, rva: u32, out: &mut [u8]) -> bool {
        match self.image.read_at(rva, out.len()) {
            Some(bytes) => {
                out.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }

    fn pointer_at(&self, rva: u32) -> Option<u32> {
        self.image.dir64_relocations.binary_search(&rva).ok()?;
        let bytes = self.image.read_at(rva, 8)?;
        self.image
            .rva_of_va(u64::from_le_bytes(bytes.try_into().ok()?))
    }
}

impl View for Context<'_> {
    fn image_base(&self) -> u64 {
        self.image.image_base
    }

    fn rva_of_va(&self, va: u64) -> Option<u32> {
        self.image.rva_of_va(va)
    }

    fn read_u32(&self, rva: u32) -> Option<u32> {
        let b = self.image.read_at(rva, 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn is_code(&self, rva: u32) -> bool {
        self.image
            .section_of(rva)
            .is_some_and(|s| self.image.sections[s].is_code())
    }

    fn is_read_only(&self, rva: u32) -> bool {
        self.image.section_of(rva).is_some_and(|s| {
            self.image.sections[s].characteristics & object::pe::IMAGE_SCN_MEM_WRITE == 0
        })
    }

    fn is_import_slot(&self, rva: u32) -> bool {
        self.image.import_at(rva).is_some()
    }

    fn is_wdf_table(&self, rva: u32) -> bool {
        self.wdf_tables.contains(&rva)
    }

    /// A pointer to code stored in read-only data (a relocated constant function pointer):
    /// `call [rip+slot]` through it is a direct call in all but form.
    fn constant_code_pointer(&self, slot: u32) -> Option<u32> {
        if !self.is_read_only(slot) {
            return None;
        }
        let rva = self.pointer_at(slot)?;
        self.is_code(rva).then_some(rva)
    }

    fn special_slot(&self, slot: u32) -> Option<Special> {
        self.special_at(slot)
    }

    fn special_function(&self, rva: u32) -> Option<Special> {
        self.special_at(rva).filter(|s| {
            matches!(
                s,
                Special::Copy | Special::Fill | Special::Irql(_) | Special::LockSection
            )
        })
    }

    fn import_name(&self, slot: u32) -> Option<&str> {
        self.image.import_at(slot)
    }

    fn is_paged_data(&self, rva: u32) -> bool {
        self.image.section_of(rva).is_some_and(|s| {
            let section = &self.image.sections[s];
            !section.is_code() && section.residency != Residency::Resident
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_pointers_are_named_whole_and_nothing_else_is_one() {
        assert_eq!(
            guard_pointer("__guard_dispatch_icall_fptr"),
            Some(Special::GuardDispatch)
        );
        assert_eq!(
            guard_pointer("__guard_xfg_check_icall_fptr"),
            Some(Special::GuardCheck)
        );
        // Special, but not a guard pointer; a longer name; an import's form.
        assert_eq!(guard_pointer("memcpy"), None);
        assert_eq!(guard_pointer("__guard_dispatch_icall_fptr_"), None);
        assert_eq!(guard_pointer("ntoskrnl.exe!__guard_check_icall_fptr"), None);
        // special_of reads all three forms.
        assert_eq!(
            special_of("ntoskrnl.exe!__guard_check_icall_fptr"),
            Some(Special::GuardCheck)
        );
        assert_eq!(
            special_of("compiler_builtins::mem::memcpy"),
            Some(Special::Copy)
        );
    }
}
