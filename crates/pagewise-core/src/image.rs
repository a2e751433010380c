//! The self-check: which section of the driver's own image holds each callback.
//!
//! `DriverEntry` gets the mapped image at `DriverObject->DriverStart` (`DriverSize`
//! bytes). [`PeHeaders::parse`] reads its headers, [`PeHeaders::section_containing`]
//! finds the section of a callback's RVA (`function address - DriverStart`), and
//! [`check_placement`] compares that section with the role the placement attribute
//! declared. Optimisation can move code (a `link_section` covers one out-of-line body:
//! LTO inlines a small paged function into a resident caller, and a resident helper into
//! a paged one; see docs/paging.md), so the result is reported, not assumed.
//!
//! Every malformed input is an [`ImageError`]: all reads go through bounds-checked
//! helpers, so no input can make this code panic or read outside the slice.

use pagewise_ioctl::{CallbackId, CallbackPlacement, MAX_CALLBACKS};
use pagewise_roles::Role;

/// `IMAGE_DOS_SIGNATURE`, "MZ".
pub const DOS_MAGIC: u16 = 0x5A4D;
/// `IMAGE_NT_SIGNATURE`, "PE\0\0".
pub const NT_SIGNATURE: u32 = 0x0000_4550;
/// `IMAGE_FILE_MACHINE_AMD64`.
pub const MACHINE_AMD64: u16 = 0x8664;
/// `IMAGE_NT_OPTIONAL_HDR64_MAGIC` (PE32+).
pub const PE32_PLUS_MAGIC: u16 = 0x20B;
/// The Windows loader refuses images with more sections than this.
pub const MAX_SECTIONS: u16 = 96;
/// Size of `IMAGE_SECTION_HEADER`.
pub const SECTION_HEADER_SIZE: usize = 40;
/// Size of `IMAGE_FILE_HEADER`.
const FILE_HEADER_SIZE: usize = 20;
/// Bytes of a PE32+ optional header up to and including `NumberOfRvaAndSizes`.
pub const MIN_OPTIONAL_HEADER_64: u16 = 112;

/// `IMAGE_SCN_CNT_CODE`.
pub const SCN_CNT_CODE: u32 = 0x0000_0020;
/// `IMAGE_SCN_MEM_DISCARDABLE`.
pub const SCN_MEM_DISCARDABLE: u32 = 0x0200_0000;
/// `IMAGE_SCN_MEM_NOT_PAGED`.
pub const SCN_MEM_NOT_PAGED: u32 = 0x0800_0000;
/// `IMAGE_SCN_MEM_EXECUTE`.
pub const SCN_MEM_EXECUTE: u32 = 0x2000_0000;

/// Why the headers cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// Shorter than a DOS header.
    TooSmall,
    /// No "MZ".
    BadDosMagic,
    /// `e_lfanew` points outside the bytes, or the NT headers do not fit.
    BadNtHeadersOffset,
    /// No "PE\0\0".
    BadNtSignature,
    /// Not an x64 image.
    NotAmd64 {
        /// `FileHeader.Machine`.
        machine: u16,
    },
    /// Not PE32+.
    NotPe32Plus {
        /// `OptionalHeader.Magic`.
        magic: u16,
    },
    /// `SizeOfOptionalHeader` too small for a PE32+ optional header.
    OptionalHeaderTooSmall {
        /// The value found.
        size: u16,
    },
    /// No sections.
    NoSections,
    /// More than [`MAX_SECTIONS`].
    TooManySections {
        /// `NumberOfSections`.
        count: u16,
    },
    /// The section table runs past the bytes given (or past `SizeOfHeaders`).
    SectionTableOutOfBounds,
    /// No section covers the RVA.
    RvaNotInSection {
        /// The RVA looked up.
        rva: u32,
    },
}

/// One entry of the section table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionInfo {
    /// The name, NUL-padded.
    pub name: [u8; 8],
    /// `VirtualAddress`: RVA of the section's start.
    pub virtual_address: u32,
    /// `Misc.VirtualSize`.
    pub virtual_size: u32,
    /// `SizeOfRawData`.
    pub size_of_raw_data: u32,
    /// `Characteristics`.
    pub characteristics: u32,
}

impl SectionInfo {
    /// Bytes the section spans in memory: `VirtualSize`, or `SizeOfRawData` when a
    /// linker left `VirtualSize` zero.
    #[must_use]
    pub const fn memory_size(&self) -> u32 {
        if self.virtual_size != 0 {
            self.virtual_size
        } else {
            self.size_of_raw_data
        }
    }

    /// True when `rva` lies in the section.
    #[must_use]
    pub fn contains(&self, rva: u32) -> bool {
        rva >= self.virtual_address
            && u64::from(rva)
                < u64::from(self.virtual_address).saturating_add(u64::from(self.memory_size()))
    }

    /// The name without its NUL padding.
    #[must_use]
    pub fn name_bytes(&self) -> &[u8] {
        trim_name(&self.name)
    }
}

/// `name` without trailing NULs.
#[must_use]
pub fn trim_name(name: &[u8; 8]) -> &[u8] {
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    name.get(..len).unwrap_or(&[])
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let end = at.checked_add(2)?;
    let b = bytes.get(at..end)?;
    Some(u16::from_le_bytes([*b.first()?, *b.get(1)?]))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let end = at.checked_add(4)?;
    let b = bytes.get(at..end)?;
    Some(u32::from_le_bytes([
        *b.first()?,
        *b.get(1)?,
        *b.get(2)?,
        *b.get(3)?,
    ]))
}

/// Validated headers of a mapped PE32+ x64 image.
#[derive(Clone, Copy, Debug)]
pub struct PeHeaders<'a> {
    bytes: &'a [u8],
    table: usize,
    count: u16,
    size_of_image: u32,
}

impl<'a> PeHeaders<'a> {
    /// Validates the DOS header, the NT headers (PE32+, AMD64) and the bounds of the
    /// section table. `bytes` starts at the image base; it needs to cover the headers
    /// only, but may be the whole image.
    ///
    /// # Errors
    ///
    /// An [`ImageError`] naming the first check that failed.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ImageError> {
        let magic = read_u16(bytes, 0).ok_or(ImageError::TooSmall)?;
        let lfanew = read_u32(bytes, 0x3C).ok_or(ImageError::TooSmall)?;
        if magic != DOS_MAGIC {
            return Err(ImageError::BadDosMagic);
        }
        let nt = usize::try_from(lfanew).map_err(|_| ImageError::BadNtHeadersOffset)?;
        let file_header = nt.checked_add(4).ok_or(ImageError::BadNtHeadersOffset)?;
        let optional = file_header
            .checked_add(FILE_HEADER_SIZE)
            .ok_or(ImageError::BadNtHeadersOffset)?;
        let signature = read_u32(bytes, nt).ok_or(ImageError::BadNtHeadersOffset)?;
        if signature != NT_SIGNATURE {
            return Err(ImageError::BadNtSignature);
        }
        let machine = read_u16(bytes, file_header).ok_or(ImageError::BadNtHeadersOffset)?;
        let count =
            read_u16(bytes, file_header.saturating_add(2)).ok_or(ImageError::BadNtHeadersOffset)?;
        let optional_size = read_u16(bytes, file_header.saturating_add(16))
            .ok_or(ImageError::BadNtHeadersOffset)?;
        if machine != MACHINE_AMD64 {
            return Err(ImageError::NotAmd64 { machine });
        }
        let opt_magic = read_u16(bytes, optional).ok_or(ImageError::BadNtHeadersOffset)?;
        if opt_magic != PE32_PLUS_MAGIC {
            return Err(ImageError::NotPe32Plus { magic: opt_magic });
        }
        if optional_size < MIN_OPTIONAL_HEADER_64 {
            return Err(ImageError::OptionalHeaderTooSmall {
                size: optional_size,
            });
        }
        let size_of_image =
            read_u32(bytes, optional.saturating_add(56)).ok_or(ImageError::BadNtHeadersOffset)?;
        let size_of_headers =
            read_u32(bytes, optional.saturating_add(60)).ok_or(ImageError::BadNtHeadersOffset)?;
        if count == 0 {
            return Err(ImageError::NoSections);
        }
        if count > MAX_SECTIONS {
            return Err(ImageError::TooManySections { count });
        }
        let table = optional
            .checked_add(usize::from(optional_size))
            .ok_or(ImageError::SectionTableOutOfBounds)?;
        let table_end = usize::from(count)
            .checked_mul(SECTION_HEADER_SIZE)
            .and_then(|len| table.checked_add(len))
            .ok_or(ImageError::SectionTableOutOfBounds)?;
        let headers_end = usize::try_from(size_of_headers).unwrap_or(usize::MAX);
        if table_end > bytes.len() || table_end > headers_end {
            return Err(ImageError::SectionTableOutOfBounds);
        }
        Ok(PeHeaders {
            bytes,
            table,
            count,
            size_of_image,
        })
    }

    /// `NumberOfSections`.
    #[must_use]
    pub const fn section_count(&self) -> u16 {
        self.count
    }

    /// `SizeOfImage`.
    #[must_use]
    pub const fn size_of_image(&self) -> u32 {
        self.size_of_image
    }

    /// Section `index` (0-based), if it exists.
    #[must_use]
    pub fn section(&self, index: u16) -> Option<SectionInfo> {
        if index >= self.count {
            return None;
        }
        let at = usize::from(index)
            .checked_mul(SECTION_HEADER_SIZE)?
            .checked_add(self.table)?;
        let end = at.checked_add(SECTION_HEADER_SIZE)?;
        let raw = self.bytes.get(at..end)?;
        let mut name = [0u8; 8];
        name.copy_from_slice(raw.get(..8)?);
        Some(SectionInfo {
            name,
            virtual_size: read_u32(raw, 8)?,
            virtual_address: read_u32(raw, 12)?,
            size_of_raw_data: read_u32(raw, 16)?,
            characteristics: read_u32(raw, 36)?,
        })
    }

    /// Every section, in table order.
    pub fn sections(&self) -> impl Iterator<Item = SectionInfo> + '_ {
        (0..self.count).filter_map(|i| self.section(i))
    }

    /// The section holding `rva`.
    ///
    /// # Errors
    ///
    /// [`ImageError::RvaNotInSection`] when no section covers it (headers, a gap, past
    /// the image).
    pub fn section_containing(&self, rva: u32) -> Result<SectionInfo, ImageError> {
        self.sections()
            .find(|s| s.contains(rva))
            .ok_or(ImageError::RvaNotInSection { rva })
    }
}

/// [`PeHeaders::parse`] then [`PeHeaders::section_containing`].
///
/// # Errors
///
/// As those two.
pub fn find_section(image: &[u8], rva: u32) -> Result<SectionInfo, ImageError> {
    PeHeaders::parse(image)?.section_containing(rva)
}

/// A function found where its role says it must not be, or where it was not meant to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlacementViolation {
    /// A power-up or dispatch function in a `PAGE*` section: resume waits for the paging
    /// disk, or a page fault at `DISPATCH_LEVEL` bug-checks. A hazard.
    ResidentInPageable,
    /// A function called after `DriverEntry` returned lives in the discarded `INIT`
    /// section: the call jumps into freed memory. A hazard.
    CalledAfterInit,
    /// A power-down function in a pageable section other than `PAGEPWR`: the
    /// power-down lock does not cover it. A hazard while the device is nonpageable.
    PowerDownOutsideLockedSection,
    /// A paged or power-down function ended up resident (inlined or merged into
    /// `.text`): correct, but the resident image is larger than planned.
    NotPaged,
    /// An init function ended up outside `INIT`: correct, but not discarded.
    InitNotDiscarded,
}

impl PlacementViolation {
    /// True for a placement that can hang or crash the machine; false for one that
    /// only wastes resident memory.
    #[must_use]
    pub const fn is_hazard(self) -> bool {
        matches!(
            self,
            Self::ResidentInPageable | Self::CalledAfterInit | Self::PowerDownOutsideLockedSection
        )
    }
}

/// True for a name the loader pages: `PAGE` followed by at most four characters.
#[must_use]
pub fn is_pageable_section(name: &[u8; 8]) -> bool {
    trim_name(name).starts_with(b"PAGE")
}

/// True for the discardable init section.
#[must_use]
pub fn is_init_section(name: &[u8; 8]) -> bool {
    trim_name(name) == b"INIT"
}

/// Checks that a function of `role` may live in the section named `section`.
///
/// | role | allowed | otherwise |
/// |---|---|---|
/// | power-up, dispatch | not `PAGE*`, not `INIT` | hazard |
/// | paged | `PAGE*` | `INIT`: hazard; resident: waste |
/// | power-down | `PAGEPWR` or resident | other `PAGE*`, `INIT`: hazard |
/// | init | `INIT` | waste |
///
/// # Errors
///
/// The [`PlacementViolation`] found.
pub fn check_placement(role: Role, section: &[u8; 8]) -> Result<(), PlacementViolation> {
    let name = trim_name(section);
    let pageable = is_pageable_section(section);
    let init = is_init_section(section);
    match role {
        Role::PowerUp | Role::Dispatch => {
            if init {
                Err(PlacementViolation::CalledAfterInit)
            } else if pageable {
                Err(PlacementViolation::ResidentInPageable)
            } else {
                Ok(())
            }
        }
        Role::Paged => {
            if init {
                Err(PlacementViolation::CalledAfterInit)
            } else if pageable {
                Ok(())
            } else {
                Err(PlacementViolation::NotPaged)
            }
        }
        Role::PowerDown => {
            if init {
                Err(PlacementViolation::CalledAfterInit)
            } else if name == pagewise_roles::section::POWER_DOWN.as_bytes() {
                Ok(())
            } else if pageable {
                Err(PlacementViolation::PowerDownOutsideLockedSection)
            } else {
                Err(PlacementViolation::NotPaged)
            }
        }
        Role::Init => {
            if init {
                Ok(())
            } else {
                Err(PlacementViolation::InitNotDiscarded)
            }
        }
    }
}

/// Where each registered callback was found, for `IOCTL_PAGEWISE_GET_CONFIG`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placements {
    entries: [CallbackPlacement; MAX_CALLBACKS],
    count: usize,
    hazards: u32,
    warnings: u32,
}

const NO_PLACEMENT: CallbackPlacement = CallbackPlacement {
    callback: 0,
    role: 0,
    section: [0; 8],
    rva: 0,
};

/// What [`Placements::record`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlacementOutcome {
    /// Recorded, placed as declared.
    Ok,
    /// Recorded, with a violation (counted in [`Placements::hazards`] or
    /// [`Placements::warnings`]).
    Violation(PlacementViolation),
    /// The RVA is in no section (recorded with an empty section name, counted as a
    /// hazard: a callback outside the image is a bug).
    NotFound,
    /// The table is full: not recorded.
    Full,
}

impl Placements {
    /// Empty.
    #[must_use]
    pub const fn new() -> Self {
        Placements {
            entries: [NO_PLACEMENT; MAX_CALLBACKS],
            count: 0,
            hazards: 0,
            warnings: 0,
        }
    }

    /// Looks `rva` up in `headers`, checks it against `role` and records it for
    /// `callback` (a `pagewise_ioctl::CallbackId`). In a build with debug assertions the
    /// driver asserts that no outcome is a hazard.
    ///
    /// `#[inline]`: its only caller is the driver's self-check in `PAGE`. A library
    /// function without it is emitted out of line in `.text`, resident for the driver's
    /// whole life for the sake of one call at device add (helpers without a section
    /// attribute land in `.text`); inlined, it takes its caller's section.
    #[inline]
    pub fn record(
        &mut self,
        headers: &PeHeaders<'_>,
        callback: CallbackId,
        role: Role,
        rva: u32,
    ) -> PlacementOutcome {
        let Some(slot) = self.entries.get_mut(self.count) else {
            return PlacementOutcome::Full;
        };
        let found = headers.section_containing(rva).ok();
        *slot = CallbackPlacement {
            callback: callback as u16,
            role: role as u16,
            section: found.map_or([0; 8], |s| s.name),
            rva,
        };
        self.count = self.count.saturating_add(1);
        let Some(section) = found else {
            self.hazards = self.hazards.saturating_add(1);
            return PlacementOutcome::NotFound;
        };
        match check_placement(role, &section.name) {
            Ok(()) => PlacementOutcome::Ok,
            Err(violation) => {
                if violation.is_hazard() {
                    self.hazards = self.hazards.saturating_add(1);
                } else {
                    self.warnings = self.warnings.saturating_add(1);
                }
                PlacementOutcome::Violation(violation)
            }
        }
    }

    /// True when the self-check found `callback` in `PAGEPWR`, the section the power-down
    /// lock covers. `MmLockPagableCodeSection` is given that callback's address and needs
    /// it inside a `PAGExxxx` section; an address the self-check did not find there (not
    /// recorded, resident, another section, or headers it could not read) must not be
    /// passed to it.
    #[must_use]
    pub fn in_power_down_section(&self, callback: CallbackId) -> bool {
        self.as_slice().iter().any(|entry| {
            entry.callback == callback as u16
                && trim_name(&entry.section) == pagewise_roles::section::POWER_DOWN.as_bytes()
        })
    }

    /// The recorded placements.
    #[must_use]
    pub fn as_slice(&self) -> &[CallbackPlacement] {
        self.entries.get(..self.count).unwrap_or(&[])
    }

    /// The whole table and the valid count, as `Config` carries them.
    #[must_use]
    pub const fn raw(&self) -> (&[CallbackPlacement; MAX_CALLBACKS], usize) {
        (&self.entries, self.count)
    }

    /// Placements that can hang or crash the machine.
    #[must_use]
    pub const fn hazards(&self) -> u32 {
        self.hazards
    }

    /// Placements that only waste resident memory.
    #[must_use]
    pub const fn warnings(&self) -> u32 {
        self.warnings
    }
}

#[cfg(test)]
impl Placements {
    /// A self-check result with only `EvtDeviceD0Exit`, found in `section`: for the tests
    /// of the modules that decide from it.
    pub(crate) fn with_d0_exit_in(section: &[u8]) -> Placements {
        let mut name = [0u8; 8];
        name[..section.len()].copy_from_slice(section);
        let mut placements = Placements::new();
        placements.entries[0] = CallbackPlacement {
            callback: CallbackId::D0Exit as u16,
            role: Role::PowerDown as u16,
            section: name,
            rva: 0x3000,
        };
        placements.count = 1;
        placements
    }
}

impl Default for Placements {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    const LFANEW: usize = 0x80;
    const OPT_SIZE: u16 = 240;
    const HEADERS: usize = 0x400;

    struct Section {
        name: &'static [u8],
        va: u32,
        vsize: u32,
        raw: u32,
        flags: u32,
    }

    fn put16(b: &mut [u8], at: usize, v: u16) {
        b[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }
    fn put32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    const FILE_HEADER: usize = LFANEW + 4;
    const OPTIONAL: usize = FILE_HEADER + 20;
    const TABLE: usize = OPTIONAL + OPT_SIZE as usize;

    /// Headers of a PE32+ x64 image with these sections, `HEADERS` bytes long.
    fn build(sections: &[Section]) -> Vec<u8> {
        let mut b = vec![0u8; HEADERS];
        put16(&mut b, 0, DOS_MAGIC);
        put32(&mut b, 0x3C, u32::try_from(LFANEW).expect("small"));
        put32(&mut b, LFANEW, NT_SIGNATURE);
        put16(&mut b, FILE_HEADER, MACHINE_AMD64);
        put16(
            &mut b,
            FILE_HEADER + 2,
            u16::try_from(sections.len()).expect("few"),
        );
        put16(&mut b, FILE_HEADER + 16, OPT_SIZE);
        put16(&mut b, OPTIONAL, PE32_PLUS_MAGIC);
        put32(&mut b, OPTIONAL + 56, 0x8000);
        put32(
            &mut b,
            OPTIONAL + 60,
            u32::try_from(HEADERS).expect("small"),
        );
        for (i, s) in sections.iter().enumerate() {
            let at = TABLE + i * SECTION_HEADER_SIZE;
            b[at..at + s.name.len()].copy_from_slice(s.name);
            put32(&mut b, at + 8, s.vsize);
            put32(&mut b, at + 12, s.va);
            put32(&mut b, at + 16, s.raw);
            put32(&mut b, at + 36, s.flags);
        }
        b
    }

    fn sample() -> Vec<u8> {
        build(&[
            Section {
                name: b".text",
                va: 0x1000,
                vsize: 0x234,
                raw: 0x400,
                flags: 0x6800_0020,
            },
            Section {
                name: b"PAGE",
                va: 0x2000,
                vsize: 0x10,
                raw: 0x200,
                flags: 0x6000_0020,
            },
            // A linker that left VirtualSize zero: SizeOfRawData counts.
            Section {
                name: b"PAGEPWR",
                va: 0x3000,
                vsize: 0,
                raw: 0x200,
                flags: 0x6000_0020,
            },
            Section {
                name: b"INIT",
                va: 0x4000,
                vsize: 0x80,
                raw: 0x200,
                flags: 0x6200_0020,
            },
        ])
    }

    fn section_at(image: &[u8], rva: u32) -> Result<Vec<u8>, ImageError> {
        find_section(image, rva).map(|s| s.name_bytes().to_vec())
    }

    /// The power-down lock is taken on `EvtDeviceD0Exit`'s address only when the self-check
    /// found it in `PAGEPWR`, not merely pageable or resident (issue 18, point 3).
    #[test]
    fn the_lock_target_must_be_found_in_pagepwr() {
        let image = sample();
        let headers = PeHeaders::parse(&image).expect("valid");
        for (rva, role, found) in [
            (0x3010, Role::PowerDown, true),
            (0x2008, Role::PowerDown, false),
            (0x1010, Role::PowerDown, false),
            (0x9000, Role::PowerDown, false),
        ] {
            let mut placements = Placements::new();
            let _ = placements.record(&headers, CallbackId::D0Entry, Role::PowerUp, 0x3020);
            let _ = placements.record(&headers, CallbackId::D0Exit, role, rva);
            assert_eq!(
                placements.in_power_down_section(CallbackId::D0Exit),
                found,
                "{rva:#x}"
            );
            assert!(
                !placements.in_power_down_section(CallbackId::SelfManagedIoSuspend),
                "not recorded"
            );
        }
        assert!(!Placements::new().in_power_down_section(CallbackId::D0Exit));
    }

    #[test]
    fn valid_headers_and_lookups() {
        let image = sample();
        let h = PeHeaders::parse(&image).expect("valid");
        assert_eq!(h.section_count(), 4);
        assert_eq!(h.size_of_image(), 0x8000);
        assert_eq!(section_at(&image, 0x1000).as_deref(), Ok(&b".text"[..]));
        assert_eq!(section_at(&image, 0x1233).as_deref(), Ok(&b".text"[..]));
        assert_eq!(section_at(&image, 0x2005).as_deref(), Ok(&b"PAGE"[..]));
        assert_eq!(section_at(&image, 0x31FF).as_deref(), Ok(&b"PAGEPWR"[..]));
        assert_eq!(section_at(&image, 0x407F).as_deref(), Ok(&b"INIT"[..]));
        for gap in [0, 0xFFF, 0x1234, 0x2010, 0x3200, 0x4080, u32::MAX] {
            assert_eq!(
                section_at(&image, gap),
                Err(ImageError::RvaNotInSection { rva: gap }),
                "{gap:#x}"
            );
        }
        let text = h.section(0).expect("first");
        assert_eq!(text.characteristics, 0x6800_0020);
        assert_eq!(text.size_of_raw_data, 0x400);
        assert_eq!(h.section(4), None);
        assert_eq!(h.sections().count(), 4);
    }

    #[test]
    fn a_section_near_the_top_of_the_address_space_does_not_overflow() {
        let image = build(&[Section {
            name: b"TOP",
            va: 0xFFFF_FF00,
            vsize: 0x1000,
            raw: 0,
            flags: 0,
        }]);
        assert_eq!(section_at(&image, u32::MAX).as_deref(), Ok(&b"TOP"[..]));
        assert!(section_at(&image, 0xFFFF_FEFF).is_err());
    }

    #[test]
    fn malformed_headers_are_errors() {
        let good = sample();
        let cases: Vec<(Vec<u8>, ImageError)> = vec![
            (vec![], ImageError::TooSmall),
            (good[..1].to_vec(), ImageError::TooSmall),
            (good[..0x3F].to_vec(), ImageError::TooSmall),
            (good[..0x40].to_vec(), ImageError::BadNtHeadersOffset),
            (good[..LFANEW + 3].to_vec(), ImageError::BadNtHeadersOffset),
            (good[..LFANEW + 10].to_vec(), ImageError::BadNtHeadersOffset),
            (good[..=OPTIONAL].to_vec(), ImageError::BadNtHeadersOffset),
            (
                good[..OPTIONAL + 61].to_vec(),
                ImageError::BadNtHeadersOffset,
            ),
            (
                good[..TABLE + 4 * SECTION_HEADER_SIZE - 1].to_vec(),
                ImageError::SectionTableOutOfBounds,
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                PeHeaders::parse(&bytes).err(),
                Some(expected),
                "len {}",
                bytes.len()
            );
        }
        let patched = |at: usize, value: &[u8]| {
            let mut b = good.clone();
            b[at..at + value.len()].copy_from_slice(value);
            b
        };
        let cases = [
            (patched(0, b"ZM"), ImageError::BadDosMagic),
            (
                patched(0x3C, &u32::MAX.to_le_bytes()),
                ImageError::BadNtHeadersOffset,
            ),
            (
                patched(0x3C, &0x3FEu32.to_le_bytes()),
                ImageError::BadNtHeadersOffset,
            ),
            (patched(LFANEW, b"PE\0\x01"), ImageError::BadNtSignature),
            (
                patched(FILE_HEADER, &0x014Cu16.to_le_bytes()),
                ImageError::NotAmd64 { machine: 0x14C },
            ),
            (
                patched(FILE_HEADER, &0xAA64u16.to_le_bytes()),
                ImageError::NotAmd64 { machine: 0xAA64 },
            ),
            (
                patched(OPTIONAL, &0x10Bu16.to_le_bytes()),
                ImageError::NotPe32Plus { magic: 0x10B },
            ),
            (
                patched(FILE_HEADER + 16, &111u16.to_le_bytes()),
                ImageError::OptionalHeaderTooSmall { size: 111 },
            ),
            (
                patched(FILE_HEADER + 2, &0u16.to_le_bytes()),
                ImageError::NoSections,
            ),
            (
                patched(FILE_HEADER + 2, &97u16.to_le_bytes()),
                ImageError::TooManySections { count: 97 },
            ),
            (
                patched(FILE_HEADER + 2, &u16::MAX.to_le_bytes()),
                ImageError::TooManySections { count: u16::MAX },
            ),
            // 96 sections would run past the 0x400 bytes given.
            (
                patched(FILE_HEADER + 2, &96u16.to_le_bytes()),
                ImageError::SectionTableOutOfBounds,
            ),
            // An optional header claiming 64 KiB pushes the table out of the buffer.
            (
                patched(FILE_HEADER + 16, &u16::MAX.to_le_bytes()),
                ImageError::SectionTableOutOfBounds,
            ),
            // SizeOfHeaders says the headers end before the section table does.
            (
                patched(OPTIONAL + 60, &0x100u32.to_le_bytes()),
                ImageError::SectionTableOutOfBounds,
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(PeHeaders::parse(&bytes).err(), Some(expected));
        }
        // Lookups on malformed headers report the header error, not a section miss.
        assert_eq!(find_section(&good[..10], 0x1000), Err(ImageError::TooSmall));
    }

    /// Every prefix of valid headers and every single-byte corruption of them parses to
    /// Ok or Err, and lookups on whatever parses stay in bounds: no panic, whatever the
    /// input (an out-of-bounds read would panic in these test builds).
    #[test]
    fn truncations_and_corruptions_never_panic() {
        let good = sample();
        for len in 0..=good.len() {
            if let Ok(h) = PeHeaders::parse(&good[..len]) {
                assert!(len >= TABLE + 4 * SECTION_HEADER_SIZE);
                assert_eq!(h.sections().count(), 4);
            }
        }
        let mut ok = 0;
        for at in 0..TABLE + 4 * SECTION_HEADER_SIZE {
            for value in [0x00, 0x7F, 0x80, 0xFF] {
                let mut b = good.clone();
                b[at] = value;
                if let Ok(h) = PeHeaders::parse(&b) {
                    ok += 1;
                    for rva in [0, 0x1000, 0x2005, 0x3100, 0x4000, u32::MAX] {
                        let _ = h.section_containing(rva);
                    }
                    assert!(h.sections().count() <= usize::from(MAX_SECTIONS));
                }
            }
        }
        assert!(ok > 0, "most corruptions of padding bytes still parse");
    }

    fn n(name: &str) -> [u8; 8] {
        let mut out = [0; 8];
        out[..name.len()].copy_from_slice(name.as_bytes());
        out
    }

    #[test]
    fn placement_rules() {
        use PlacementViolation::*;
        let table: [(Role, &str, Result<(), PlacementViolation>); 25] = [
            (Role::PowerUp, ".text", Ok(())),
            (Role::PowerUp, "PAGE", Err(ResidentInPageable)),
            (Role::PowerUp, "PAGEPWR", Err(ResidentInPageable)),
            (Role::PowerUp, "INIT", Err(CalledAfterInit)),
            (Role::PowerUp, ".rdata", Ok(())),
            (Role::Dispatch, ".text", Ok(())),
            (Role::Dispatch, "PAGELK", Err(ResidentInPageable)),
            (Role::Dispatch, "INIT", Err(CalledAfterInit)),
            (Role::Dispatch, "page", Ok(())), // lower case is not pageable to the loader
            (Role::Paged, "PAGE", Ok(())),
            (Role::Paged, "PAGEPWR", Ok(())),
            (Role::Paged, ".text", Err(NotPaged)),
            (Role::Paged, "INIT", Err(CalledAfterInit)),
            (Role::PowerDown, "PAGEPWR", Ok(())),
            (Role::PowerDown, ".text", Err(NotPaged)),
            (Role::PowerDown, "PAGE", Err(PowerDownOutsideLockedSection)),
            (
                Role::PowerDown,
                "PAGEPWR2",
                Err(PowerDownOutsideLockedSection),
            ),
            (Role::PowerDown, "INIT", Err(CalledAfterInit)),
            (Role::Init, "INIT", Ok(())),
            (Role::Init, ".text", Err(InitNotDiscarded)),
            (Role::Init, "PAGE", Err(InitNotDiscarded)),
            (Role::Init, "INITDATA", Err(InitNotDiscarded)),
            (Role::Init, "", Err(InitNotDiscarded)),
            (Role::PowerUp, "", Ok(())),
            (Role::Paged, "PAG", Err(NotPaged)),
        ];
        for (role, name, expected) in table {
            assert_eq!(
                check_placement(role, &n(name)),
                expected,
                "{role:?} in {name:?}"
            );
        }
        assert!(ResidentInPageable.is_hazard());
        assert!(CalledAfterInit.is_hazard());
        assert!(PowerDownOutsideLockedSection.is_hazard());
        assert!(!NotPaged.is_hazard());
        assert!(!InitNotDiscarded.is_hazard());
    }

    #[test]
    fn names_are_trimmed_at_the_first_nul() {
        assert_eq!(trim_name(b"PAGE\0\0\0\0"), b"PAGE");
        assert_eq!(trim_name(b"PAGEPWR1"), b"PAGEPWR1");
        assert_eq!(trim_name(&[0; 8]), b"");
        assert!(is_pageable_section(&n("PAGE")));
        assert!(!is_pageable_section(&n("PAG")));
        assert!(is_init_section(&n("INIT")));
        assert!(!is_init_section(&n("INIT1")));
    }

    #[test]
    fn placements_table_records_counts_and_fills_up() {
        let image = sample();
        let h = PeHeaders::parse(&image).expect("valid");
        let mut p = Placements::new();
        assert_eq!(
            p.record(&h, CallbackId::D0Entry, Role::PowerUp, 0x1010),
            PlacementOutcome::Ok
        );
        assert_eq!(
            p.record(&h, CallbackId::D0Exit, Role::PowerDown, 0x2004),
            PlacementOutcome::Violation(PlacementViolation::PowerDownOutsideLockedSection)
        );
        assert_eq!(
            p.record(&h, CallbackId::DriverEntry, Role::Init, 0x1100),
            PlacementOutcome::Violation(PlacementViolation::InitNotDiscarded)
        );
        assert_eq!(
            p.record(&h, CallbackId::HoldTimer, Role::Dispatch, 0x9000),
            PlacementOutcome::NotFound
        );
        assert_eq!((p.hazards(), p.warnings()), (2, 1));
        let s = p.as_slice();
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].section, n(".text"));
        assert_eq!(s[1].section, n("PAGE"));
        assert_eq!(s[3].section, [0; 8]);
        assert_eq!(s[3].callback, CallbackId::HoldTimer as u16);
        for _ in 4..MAX_CALLBACKS {
            assert_ne!(
                p.record(&h, CallbackId::D0Entry, Role::PowerUp, 0x1000),
                PlacementOutcome::Full
            );
        }
        assert_eq!(
            p.record(&h, CallbackId::D0Entry, Role::PowerUp, 0x1000),
            PlacementOutcome::Full
        );
        assert_eq!(p.as_slice().len(), MAX_CALLBACKS);
        assert_eq!(p.raw().1, MAX_CALLBACKS);
    }
}
