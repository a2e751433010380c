//! The PE32+ image: sections, `.pdata`, the import address table, role records, base
//! relocations and the `CodeView` record that names the matching PDB.
//!
//! Everything is copied out of `object`'s borrowed views into owned tables once, so the
//! rest of the analysis works on plain sorted vectors.

use object::LittleEndian as LE;
use object::Object;
use object::pe;
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, ImageThunkData, PeFile64};

use crate::Error;

/// `IMAGE_SCN_MEM_NOT_PAGED`: what `link.exe /DRIVER` sets on every resident section.
pub const SCN_NOT_PAGED: u32 = pe::IMAGE_SCN_MEM_NOT_PAGED;
/// `IMAGE_SCN_MEM_DISCARDABLE`: what `/SECTION:INIT,d` sets.
pub const SCN_DISCARDABLE: u32 = pe::IMAGE_SCN_MEM_DISCARDABLE;
/// Section holds code.
pub const SCN_CODE: u32 = pe::IMAGE_SCN_CNT_CODE;
/// Section holds executable memory.
pub const SCN_EXECUTE: u32 = pe::IMAGE_SCN_MEM_EXECUTE;
/// Any content flag: a section with none of them holds nothing the loader maps.
pub const SCN_CONTENT: u32 = pe::IMAGE_SCN_CNT_CODE
    | pe::IMAGE_SCN_CNT_INITIALIZED_DATA
    | pe::IMAGE_SCN_CNT_UNINITIALIZED_DATA;

/// How the kernel loader treats a section, decided by its name: upper-case `PAGE` (plus up to
/// four characters) is pageable, `INIT` is discarded once `DriverEntry` returns, the rest stays
/// in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Residency {
    /// Stays in memory while the driver is loaded.
    Resident,
    /// `PAGE*`: may be paged out.
    Pageable,
    /// `INIT`: freed when `DriverEntry` returns.
    Discardable,
}

impl Residency {
    /// The lower-case name used in reports.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Residency::Resident => "resident",
            Residency::Pageable => "pageable",
            Residency::Discardable => "discardable",
        }
    }
}

/// One section header, owned.
#[derive(Clone, Debug)]
pub struct Section {
    /// The name as written in the header (at most 8 bytes; long names are not used in images).
    pub name: String,
    /// Relative virtual address.
    pub rva: u32,
    /// Size in memory.
    pub virtual_size: u32,
    /// File range of the raw data that backs the section (may be shorter than in memory).
    pub file_offset: u32,
    /// Raw size available in the file.
    pub file_size: u32,
    /// `IMAGE_SCN_*` flags.
    pub characteristics: u32,
    /// Residency by name.
    pub residency: Residency,
}

impl Section {
    /// True when the section is executable code.
    #[must_use]
    pub fn is_code(&self) -> bool {
        self.characteristics & (SCN_CODE | SCN_EXECUTE) != 0
    }

    /// True when `rva` lies inside the section's memory range.
    #[must_use]
    pub fn contains(&self, rva: u32) -> bool {
        rva >= self.rva && u64::from(rva) < u64::from(self.rva) + u64::from(self.virtual_size)
    }
}

/// Text from the image (section, import and PDB names), with control characters escaped: a
/// corrupt name must not split a one-line error or reach the terminal raw.
fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if !text.chars().any(char::is_control) {
        return text.into_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Residency of a section name: upper-case `PAGE` prefix pageable, `INIT` discardable,
/// everything else resident.
#[must_use]
pub fn residency_of(name: &str) -> Residency {
    if pagewise_roles::section::is_init(name) {
        Residency::Discardable
    } else if name.starts_with(pagewise_roles::section::PAGED) {
        Residency::Pageable
    } else {
        Residency::Resident
    }
}

/// One `RUNTIME_FUNCTION` entry of `.pdata`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuntimeFunction {
    /// First byte.
    pub begin: u32,
    /// One past the last byte.
    pub end: u32,
    /// RVA of the `UNWIND_INFO`.
    pub unwind: u32,
    /// `UNW_FLAG_CHAININFO`: this entry continues another function (a split-off part).
    pub chained: bool,
}

/// The `CodeView` `RSDS` record: which PDB the linker wrote alongside this image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeView {
    /// PDB GUID, in the byte order of the file.
    pub guid: [u8; 16],
    /// PDB age.
    pub age: u32,
    /// The PDB path the linker recorded.
    pub path: String,
}

/// A role record read from `.pwrole`, with the function address turned into an RVA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoleRoot {
    /// The role.
    pub role: pagewise_roles::Role,
    /// The function's RVA.
    pub rva: u32,
}

/// A parsed x64 PE image.
#[derive(Debug)]
pub struct Image {
    bytes: Vec<u8>,
    /// Preferred image base.
    pub image_base: u64,
    /// `AddressOfEntryPoint`.
    pub entry_point: u32,
    /// `SizeOfImage`.
    pub size_of_image: u32,
    /// Section headers in file order.
    pub sections: Vec<Section>,
    /// `.pdata` entries sorted by start.
    pub runtime_functions: Vec<RuntimeFunction>,
    /// Import address table slots, sorted by RVA: `(slot rva, "dll!name")`.
    pub imports: Vec<(u32, String)>,
    /// Role records from `.pwrole`.
    pub roles: Vec<RoleRoot>,
    /// Problems with role records (bad magic, out-of-image address).
    pub role_errors: Vec<String>,
    /// `IMAGE_REL_BASED_DIR64` sites, sorted: an absolute address stored in the image.
    pub dir64_relocations: Vec<u32>,
    /// The `RSDS` record, if any.
    pub codeview: Option<CodeView>,
    /// Control Flow Guard's dispatch pointer variables (from the load configuration).
    pub guard_dispatch: Vec<u32>,
    /// Control Flow Guard's check pointer variables (from the load configuration).
    pub guard_check: Vec<u32>,
    /// Control Flow Guard's table of valid indirect-call targets, sorted; empty without one.
    pub guard_functions: Vec<u32>,
    /// What the loader tolerates but a careful reader should know (skipped `.pdata`
    /// entries, a malformed relocation block).
    pub warnings: Vec<String>,
}

fn bad(message: impl Into<String>) -> Error {
    Error::new(message)
}

impl Image {
    /// Parses an image from its bytes.
    ///
    /// # Errors
    /// Non-PE data, a PE32 (x86) image or a machine other than AMD64, and truncated or
    /// inconsistent headers.
    pub fn parse(bytes: Vec<u8>) -> Result<Image, Error> {
        precheck(&bytes)?;
        let pe =
            PeFile64::parse(&*bytes).map_err(|e| bad(format!("not a valid PE32+ image: {e}")))?;
        let nt = pe.nt_headers();
        let machine = nt.file_header().machine.get(LE);
        if machine != pe::IMAGE_FILE_MACHINE_AMD64 {
            return Err(bad(format!(
                "not an x64 image: machine {machine:#06x}, expected {:#06x} (AMD64)",
                pe::IMAGE_FILE_MACHINE_AMD64
            )));
        }
        let optional = nt.optional_header();
        let image_base = optional.image_base();
        let entry_point = optional.address_of_entry_point();
        let size_of_image = optional.size_of_image();
        let file_len = u32::try_from(bytes.len()).map_err(|_| bad("image larger than 4 GiB"))?;

        let mut sections = Vec::new();
        for section in pe.sections() {
            let header = section.pe_section();
            let name = printable(header.raw_name());
            let (file_offset, file_size) = header.pe_file_range();
            // The loader maps SizeOfRawData bytes; a file shorter than that was cut.
            let raw_end = u64::from(header.pointer_to_raw_data.get(LE))
                + u64::from(header.size_of_raw_data.get(LE));
            if raw_end > u64::from(file_len)
                || u64::from(file_offset) + u64::from(file_size) > u64::from(file_len)
            {
                return Err(bad(format!(
                    "section {name} extends past the end of the file (truncated image?)"
                )));
            }
            // A zero VirtualSize means "as large as the raw data" (old linkers).
            let virtual_size = match header.virtual_size.get(LE) {
                0 => file_size,
                size => size,
            };
            sections.push(Section {
                residency: residency_of(&name),
                name,
                rva: header.virtual_address.get(LE),
                virtual_size,
                file_offset,
                file_size: file_size.min(virtual_size),
                characteristics: header.characteristics.get(LE),
            });
        }

        check_layout(&sections, size_of_image)?;

        let mut image = Image {
            bytes: Vec::new(),
            image_base,
            entry_point,
            size_of_image,
            sections,
            runtime_functions: Vec::new(),
            imports: Vec::new(),
            roles: Vec::new(),
            role_errors: Vec::new(),
            dir64_relocations: Vec::new(),
            codeview: None,
            guard_dispatch: Vec::new(),
            guard_check: Vec::new(),
            guard_functions: Vec::new(),
            warnings: Vec::new(),
        };
        image.codeview = pe
            .pdb_info()
            .map_err(|e| bad(format!("unreadable debug directory: {e}")))?
            .map(|cv| CodeView {
                guid: cv.guid(),
                age: cv.age(),
                path: String::from_utf8_lossy(cv.path()).into_owned(),
            });
        image.imports = read_imports(&pe)?;
        let (relocations, warning) = read_relocations(&pe, &bytes)?;
        image.dir64_relocations = relocations;
        image.warnings.extend(warning);
        let load_config = pe
            .data_directory(pe::IMAGE_DIRECTORY_ENTRY_LOAD_CONFIG)
            .map(|d| (d.virtual_address.get(LE), d.size.get(LE)));
        image.bytes = bytes;
        image.check_relocations()?;
        image.runtime_functions = image.read_pdata()?;
        if let Some((rva, size)) = load_config {
            image.read_load_config(rva, size);
        }
        image.read_roles();
        Ok(image)
    }

    /// The raw file bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The section index that holds `rva`.
    #[must_use]
    pub fn section_of(&self, rva: u32) -> Option<usize> {
        self.sections.iter().position(|s| s.contains(rva))
    }

    /// The file-backed bytes of section `index`.
    #[must_use]
    pub fn section_data(&self, index: usize) -> &[u8] {
        let s = &self.sections[index];
        let start = s.file_offset as usize;
        self.bytes
            .get(start..start + s.file_size as usize)
            .unwrap_or(&[])
    }

    /// Reads `len` bytes at `rva`, if the file backs them.
    #[must_use]
    pub fn read_at(&self, rva: u32, len: usize) -> Option<&[u8]> {
        let index = self.section_of(rva)?;
        let offset = (rva - self.sections[index].rva) as usize;
        self.section_data(index)
            .get(offset..offset.checked_add(len)?)
    }

    /// The import bound to the IAT slot at `rva`.
    #[must_use]
    pub fn import_at(&self, rva: u32) -> Option<&str> {
        self.imports
            .binary_search_by_key(&rva, |(slot, _)| *slot)
            .ok()
            .map(|i| self.imports[i].1.as_str())
    }

    /// Converts an absolute address (as found in an instruction or in data) to an RVA
    /// inside the image.
    #[must_use]
    pub fn rva_of_va(&self, va: u64) -> Option<u32> {
        let rva = va.checked_sub(self.image_base)?;
        u32::try_from(rva).ok().filter(|&r| r < self.size_of_image)
    }

    fn read_pdata(&mut self) -> Result<Vec<RuntimeFunction>, Error> {
        let Some(index) = self.sections.iter().position(|s| s.name == ".pdata") else {
            return Ok(Vec::new());
        };
        let data = self.section_data(index);
        let mut out = Vec::with_capacity(data.len() / 12);
        let mut skipped = 0usize;
        for entry in data.chunks_exact(12) {
            let word =
                |i: usize| u32::from_le_bytes([entry[i], entry[i + 1], entry[i + 2], entry[i + 3]]);
            let (begin, end, unwind) = (word(0), word(4), word(8));
            if begin == 0 && end == 0 {
                continue;
            }
            if end == begin {
                // GNU ld writes these for functions it folded away; the loader ignores them.
                skipped += 1;
                continue;
            }
            if end < begin || end > self.size_of_image {
                return Err(bad(format!(
                    ".pdata entry {begin:#x}..{end:#x} is malformed"
                )));
            }
            // UNWIND_INFO byte 0: version in bits 0-2, flags in bits 3-7; 0x4 is CHAININFO.
            // Bit 0 of the unwind RVA marks an indirect entry (ARM-style); x64 never sets it.
            let chained = self
                .read_at(unwind & !1, 1)
                .is_some_and(|b| (b[0] >> 3) & 0x4 != 0);
            out.push(RuntimeFunction {
                begin,
                end,
                unwind,
                chained,
            });
        }
        out.sort_unstable_by_key(|f| f.begin);
        if skipped > 0 {
            self.warnings.push(format!(
                "skipped {skipped} zero-length .pdata entr{} (the loader ignores them too)",
                if skipped == 1 { "y" } else { "ies" }
            ));
        }
        Ok(out)
    }

    /// Every relocated absolute address must point into the image: if they do not, the
    /// `ImageBase` in the header is not the one the image was linked (or rebased) for, and
    /// every address read from data (role records, constant function pointers, callback
    /// structures) would be misread.
    fn check_relocations(&self) -> Result<(), Error> {
        let end = self
            .image_base
            .saturating_add(u64::from(self.size_of_image));
        let mut outside = self.dir64_relocations.iter().filter(|&&slot| {
            self.read_at(slot, 8).is_some_and(|b| {
                let va = u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
                va < self.image_base || va > end
            })
        });
        let Some(&first) = outside.next() else {
            return Ok(());
        };
        let count = 1 + outside.count();
        Err(bad(format!(
            "{count} of {} relocated addresses point outside the image at ImageBase {:#x} (the first at RVA {first:#x}): the ImageBase was changed without rebasing, or the relocations are corrupt",
            self.dir64_relocations.len(),
            self.image_base
        )))
    }

    /// Control Flow Guard's pointers and function table, from `IMAGE_LOAD_CONFIG_DIRECTORY64`
    /// (offsets 112, 120, 128, 136 and 144 of the x64 layout). A load configuration too short
    /// to hold them is an image without Control Flow Guard.
    fn read_load_config(&mut self, rva: u32, size: u32) {
        if rva == 0 || size < 148 {
            return;
        }
        let Some(bytes) = self.read_at(rva, 148) else {
            return;
        };
        let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap_or([0; 8]));
        let declared = u32::from_le_bytes(bytes[0..4].try_into().unwrap_or([0; 4]));
        if declared < 148 {
            return;
        }
        let (check, dispatch, table, count) = (u64_at(112), u64_at(120), u64_at(128), u64_at(136));
        let flags = u32::from_le_bytes(bytes[144..148].try_into().unwrap_or([0; 4]));
        self.guard_check.extend(self.rva_of_va(check));
        self.guard_dispatch.extend(self.rva_of_va(dispatch));
        // Each entry is an RVA followed by as many metadata bytes as the flags say.
        let stride = 4 + ((flags >> 28) & 0xf) as usize;
        if let Some(table) = self.rva_of_va(table)
            && let Ok(count) = usize::try_from(count)
            && let Some(entries) = count
                .checked_mul(stride)
                .and_then(|len| self.read_at(table, len))
        {
            let mut functions: Vec<u32> = entries
                .chunks_exact(stride)
                .map(|e| u32::from_le_bytes([e[0], e[1], e[2], e[3]]))
                .collect();
            functions.sort_unstable();
            functions.dedup();
            self.guard_functions = functions;
        }
    }

    fn read_roles(&mut self) {
        let Some(index) = self
            .sections
            .iter()
            .position(|s| s.name == pagewise_roles::section::ROLE_RECORDS)
        else {
            return;
        };
        let data = self.section_data(index).to_vec();
        for record in pagewise_roles::parse_records(&data) {
            match record {
                Ok(record) => match self.rva_of_va(record.address) {
                    Some(rva) => self.roles.push(RoleRoot {
                        role: record.role,
                        rva,
                    }),
                    None => self.role_errors.push(format!(
                        "role record for {} points outside the image ({:#x})",
                        record.role.name(),
                        record.address
                    )),
                },
                Err(e) => self.role_errors.push(e.to_string()),
            }
        }
    }
}

/// Sections must be in address order, must not overlap and must lie inside `SizeOfImage`, as
/// the loader requires: otherwise an address belongs to two sections and its residency is
/// whichever one a reader happens to look at first.
fn check_layout(sections: &[Section], size_of_image: u32) -> Result<(), Error> {
    for pair in sections.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if b.rva <= a.rva {
            return Err(bad(format!(
                "sections are not in address order: {} at {:#x} follows {} at {:#x}",
                b.name, b.rva, a.name, a.rva
            )));
        }
        if u64::from(a.rva) + u64::from(a.virtual_size) > u64::from(b.rva) {
            return Err(bad(format!(
                "sections {} and {} overlap: {} is {:#x} bytes from {:#x}, into {} at {:#x}",
                a.name, b.name, a.name, a.virtual_size, a.rva, b.name, b.rva
            )));
        }
    }
    if let Some(s) = sections
        .iter()
        .find(|s| u64::from(s.rva) + u64::from(s.virtual_size) > u64::from(size_of_image))
    {
        return Err(bad(format!(
            "section {} ends at {:#x}, past SizeOfImage {size_of_image:#x}",
            s.name,
            u64::from(s.rva) + u64::from(s.virtual_size)
        )));
    }
    Ok(())
}

/// Fast rejections with precise messages, before `object` reports a generic parse error.
fn precheck(bytes: &[u8]) -> Result<(), Error> {
    if bytes.is_empty() {
        return Err(bad("empty file"));
    }
    if bytes.len() < 64 || &bytes[..2] != b"MZ" {
        return Err(bad("not a PE image (no MZ header)"));
    }
    let lfanew = u32::from_le_bytes([bytes[60], bytes[61], bytes[62], bytes[63]]) as usize;
    let Some(nt) = bytes.get(lfanew..lfanew.saturating_add(26)) else {
        return Err(bad("truncated PE image (NT headers past end of file)"));
    };
    if &nt[..4] != b"PE\0\0" {
        return Err(bad("not a PE image (no PE signature)"));
    }
    let machine = u16::from_le_bytes([nt[4], nt[5]]);
    let magic = u16::from_le_bytes([nt[24], nt[25]]);
    if magic == pe::IMAGE_NT_OPTIONAL_HDR32_MAGIC || machine == pe::IMAGE_FILE_MACHINE_I386 {
        return Err(bad(format!(
            "not an x64 image: PE32 (machine {machine:#06x}); only x64 drivers are supported"
        )));
    }
    Ok(())
}

fn read_imports<'a>(pe: &PeFile64<'a, &'a [u8]>) -> Result<Vec<(u32, String)>, Error> {
    let mut out = Vec::new();
    let Some(table) = pe
        .import_table()
        .map_err(|e| bad(format!("unreadable import table: {e}")))?
    else {
        return Ok(out);
    };
    let mut descriptors = table
        .descriptors()
        .map_err(|e| bad(format!("unreadable import table: {e}")))?;
    while let Some(desc) = descriptors
        .next()
        .map_err(|e| bad(format!("unreadable import descriptor: {e}")))?
    {
        let dll = table
            .name(desc.name.get(LE))
            .map_or_else(|_| "?".to_owned(), printable);
        let first = desc.first_thunk.get(LE);
        let lookup = match desc.original_first_thunk.get(LE) {
            0 => first,
            rva => rva,
        };
        let mut thunks = table
            .thunks(lookup)
            .map_err(|e| bad(format!("unreadable import thunks of {dll}: {e}")))?;
        let mut slot = first;
        while let Some(thunk) = thunks
            .next::<pe::ImageNtHeaders64>()
            .map_err(|e| bad(format!("unreadable import thunk of {dll}: {e}")))?
        {
            let name = if thunk.is_ordinal() {
                format!("{dll}!#{}", thunk.ordinal())
            } else {
                match table.hint_name(thunk.address()) {
                    Ok((_, name)) => format!("{dll}!{}", printable(name)),
                    Err(_) => format!("{dll}!?"),
                }
            };
            out.push((slot, name));
            slot = slot.wrapping_add(8);
        }
    }
    out.sort_unstable_by_key(|(slot, _)| *slot);
    Ok(out)
}

/// The `IMAGE_REL_BASED_DIR64` sites, sorted, and a warning when a block could not be read:
/// the loader stops at a malformed block too (GNU ld has written blocks whose size is not a
/// multiple of 4), so the relocations before it are what the image really gets.
fn read_relocations<'a>(
    pe: &PeFile64<'a, &'a [u8]>,
    bytes: &'a [u8],
) -> Result<(Vec<u32>, Option<String>), Error> {
    let mut out = Vec::new();
    let Some(mut blocks) = pe
        .data_directories()
        .relocation_blocks(bytes, &pe.section_table())
        .map_err(|e| bad(format!("unreadable base relocations: {e}")))?
    else {
        return Ok((out, None));
    };
    let mut warning = None;
    loop {
        match blocks.next() {
            Ok(Some(block)) => {
                for reloc in block {
                    if reloc.typ == pe::IMAGE_REL_BASED_DIR64 {
                        out.push(reloc.virtual_address);
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                warning = Some(format!(
                    "base relocations read up to a malformed block ({e}); the rest are ignored"
                ));
                break;
            }
        }
    }
    out.sort_unstable();
    Ok((out, warning))
}

#[cfg(test)]
impl Image {
    /// An image with only headers' worth of facts (no bytes), for unit tests of the layers
    /// above the parser.
    pub(crate) fn for_tests(
        sections: Vec<Section>,
        runtime_functions: Vec<RuntimeFunction>,
        roles: Vec<RoleRoot>,
        entry_point: u32,
    ) -> Image {
        Image {
            bytes: Vec::new(),
            image_base: 0x1_4000_0000,
            entry_point,
            size_of_image: 0x10_0000,
            sections,
            runtime_functions,
            imports: Vec::new(),
            roles,
            role_errors: Vec::new(),
            dir64_relocations: Vec::new(),
            codeview: None,
            guard_dispatch: Vec::new(),
            guard_check: Vec::new(),
            guard_functions: Vec::new(),
            warnings: Vec::new(),
        }
    }
}
