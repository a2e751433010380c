//! Function boundaries: `.pdata` gives every non-leaf function's range, the PDB's procedure
//! records give ranges and names, public symbols give the names of the rest. The result is
//! one table sorted by start RVA, searched with binary search.
//!
//! A frameless leaf has no `.pdata` entry, and an LTO build without debug info has no PDB
//! symbol for it either, so two more sources mark starts whose end is not known: the
//! addresses of the role records (each points at a placed function's first byte) and the
//! image entry point. Such a function runs to the next known start, clipped to its section.

use std::sync::Arc;

use crate::image::{Image, Residency};
use crate::pdb::{SymbolKind, Symbols};

/// A possible function start: ends from .pdata and procedure lengths win; otherwise the
/// function runs to the next start or the end of its section.
struct Candidate<'a> {
    start: u32,
    end: Option<u32>,
    symbol: Option<&'a crate::pdb::Symbol>,
}

/// Every start in a code section: `.pdata`, code symbols, role records and the entry point.
fn candidates<'a>(image: &Image, symbols: &'a Symbols) -> Vec<Candidate<'a>> {
    let in_code = |rva: u32| {
        image
            .section_of(rva)
            .is_some_and(|i| image.sections[i].is_code())
    };
    let mut candidates: Vec<Candidate<'a>> =
        Vec::with_capacity(image.runtime_functions.len() + symbols.symbols.len());
    for rf in &image.runtime_functions {
        if in_code(rf.begin) {
            candidates.push(Candidate {
                start: rf.begin,
                end: Some(rf.end),
                symbol: None,
            });
        }
    }
    for s in &symbols.symbols {
        if s.kind == SymbolKind::Data || !in_code(s.rva) {
            continue;
        }
        let end = s.len.filter(|&l| l > 0).map(|l| s.rva.saturating_add(l));
        candidates.push(Candidate {
            start: s.rva,
            end,
            symbol: Some(s),
        });
    }
    // Role records and the entry point: starts without an end or a name (a frameless leaf
    // of an LTO build without debug info has neither .pdata nor a symbol).
    let extra = image
        .roles
        .iter()
        .map(|r| r.rva)
        .chain(std::iter::once(image.entry_point));
    for start in extra {
        if in_code(start) {
            candidates.push(Candidate {
                start,
                end: None,
                symbol: None,
            });
        }
    }
    candidates
}

/// One function.
#[derive(Clone, Debug)]
pub struct Function {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
    /// Readable name (demangled for Rust). Shared with the PDB's symbol: a large driver has
    /// tens of thousands, and copying each into every table that names it cost more than
    /// decoding the code.
    pub name: Arc<str>,
    /// Name as stored in the PDB (mangled for Rust); the same string as `name` for C.
    pub raw: Arc<str>,
    /// Index of the section that holds it.
    pub section: usize,
    /// Residency of that section.
    pub residency: Residency,
}

impl Function {
    /// Size in bytes.
    #[must_use]
    pub fn size(&self) -> u32 {
        self.end - self.start
    }
}

/// All functions of the image, sorted by start, non-overlapping.
#[derive(Debug, Default)]
pub struct Functions {
    /// The table.
    pub list: Vec<Function>,
    starts: Vec<u32>,
    /// `buckets[b]`: how many functions start below `b << shift`. [`Functions::containing`]
    /// runs for every call edge of every analysis, and a search of the whole table for each
    /// was the largest cost of the third-step rules on a large image; a bucket narrows it to
    /// the few functions that start near the address.
    buckets: Vec<u32>,
    /// The bytes one bucket covers, as a power of two: 256, or more for an image whose code
    /// is spread wider than two buckets per function (so the index stays within twice the
    /// table's length whatever the section layout).
    shift: u32,
}

impl Functions {
    /// Builds the table from `.pdata` and the symbols of the code sections.
    #[must_use]
    pub fn build(image: &Image, symbols: &Symbols) -> Functions {
        let code_section = |rva: u32| {
            image
                .section_of(rva)
                .filter(|&i| image.sections[i].is_code())
        };
        let mut candidates = candidates(image, symbols);
        candidates.sort_by_key(|c| c.start);

        let mut list: Vec<Function> = Vec::with_capacity(candidates.len());
        // The last function with a symbol name, for naming the anonymous ones after it.
        let mut named: Option<usize> = None;
        let mut i = 0;
        while i < candidates.len() {
            let start = candidates[i].start;
            let mut end: Option<u32> = None;
            let mut best: Option<&crate::pdb::Symbol> = None;
            // The linker-level name (mangled for Rust), kept next to the readable one.
            let mut public: Option<&crate::pdb::Symbol> = None;
            while i < candidates.len() && candidates[i].start == start {
                let c = &candidates[i];
                end = match (end, c.end) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                if let Some(s) = c.symbol {
                    // Procedure names (with the module's view) beat public names; among
                    // publics the first sorted one wins, which is deterministic.
                    if best.is_none_or(|b| (s.kind, &s.raw) < (b.kind, &b.raw)) {
                        best = Some(s);
                    }
                    if s.kind == SymbolKind::Public && public.is_none_or(|p| s.raw < p.raw) {
                        public = Some(s);
                    }
                }
                i += 1;
            }
            let Some(section) = code_section(start) else {
                continue;
            };
            let sec = &image.sections[section];
            let section_end = sec.rva.saturating_add(sec.virtual_size);
            let next_start = candidates
                .get(i)
                .map_or(section_end, |c| c.start.min(section_end));
            let end = end
                .unwrap_or(next_start)
                .min(section_end)
                .max(start.saturating_add(1));
            let (name, raw) = if let Some(s) = best {
                let raw = public.map_or_else(|| s.raw.clone(), |p| p.raw.clone());
                (s.name.clone(), raw)
            } else {
                // A range without a symbol: a split-off part (`.cold`, chained unwind), a
                // stripped function or a leaf known only from a role record. Name it by its
                // offset from the nearest named function before it in the same section (not
                // from another anonymous one, so names do not chain).
                let name = match named.map(|n| &list[n]) {
                    Some(prev) if prev.section == section => {
                        format!("{}+{:#x}", prev.name, start - prev.start)
                    }
                    _ => format!("sub_{start:x}"),
                };
                let name: Arc<str> = Arc::from(name);
                (Arc::clone(&name), name)
            };
            // Overlaps (a procedure whose length runs into the next .pdata start) are cut at
            // the next function: each byte belongs to one function so each is decoded once.
            let end = end.min(next_start.max(start.saturating_add(1)));
            if best.is_some() {
                named = Some(list.len());
            }
            list.push(Function {
                start,
                end,
                name,
                raw,
                section,
                residency: sec.residency,
            });
        }
        Functions::from_list(list)
    }

    /// The table of `list` (sorted by start, non-overlapping).
    fn from_list(list: Vec<Function>) -> Functions {
        let starts: Vec<u32> = list.iter().map(|f| f.start).collect();
        let Some(&highest) = starts.last() else {
            return Functions::default();
        };
        let mut shift = 8;
        while (highest >> shift) as usize > 2 * starts.len() {
            shift += 1;
        }
        let count = (highest >> shift) as usize + 2;
        let mut buckets = Vec::with_capacity(count);
        let mut below = 0;
        for bucket in 0..count as u64 {
            while starts
                .get(below)
                .is_some_and(|&s| u64::from(s) < bucket << shift)
            {
                below += 1;
            }
            buckets.push(u32::try_from(below).unwrap_or(u32::MAX));
        }
        Functions {
            list,
            starts,
            buckets,
            shift,
        }
    }

    /// The index of the function that contains `rva`.
    #[must_use]
    pub fn containing(&self, rva: u32) -> Option<usize> {
        let bucket = (rva >> self.shift) as usize;
        // Every start before `below` is below the bucket, every start from `until` on is past
        // it: the last start at or before `rva` is the last of those between that are, or the
        // one before them.
        let (below, until) = match (self.buckets.get(bucket), self.buckets.get(bucket + 1)) {
            (Some(&below), Some(&until)) => (below as usize, until as usize),
            _ => (self.starts.len(), self.starts.len()),
        };
        let idx =
            (below + self.starts[below..until].partition_point(|&s| s <= rva)).checked_sub(1)?;
        (rva < self.list[idx].end).then_some(idx)
    }

    /// The index of the function whose readable or raw name is `name`.
    #[must_use]
    pub fn by_name(&self, name: &str) -> Option<usize> {
        self.list
            .iter()
            .position(|f| *f.name == *name || *f.raw == *name)
    }

    /// Number of functions.
    #[must_use]
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when the image has no function.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{RoleRoot, RuntimeFunction, SCN_CODE, SCN_EXECUTE, Section};
    use crate::pdb::Symbol;

    fn text() -> Section {
        Section {
            name: ".text".to_owned(),
            rva: 0x1000,
            virtual_size: 0x100,
            file_offset: 0x400,
            file_size: 0x100,
            characteristics: SCN_CODE | SCN_EXECUTE,
            residency: Residency::Resident,
        }
    }

    fn pdata(begin: u32, end: u32) -> RuntimeFunction {
        RuntimeFunction {
            begin,
            end,
            unwind: 0,
            chained: false,
        }
    }

    /// `.pdata` ranges at 0x1000 (named `f`), 0x1020 and 0x1040 (no symbol), a role record
    /// at 0x1060 and the entry point at 0x1080 (neither in `.pdata` nor the PDB).
    fn table() -> Functions {
        let image = Image::for_tests(
            vec![text()],
            vec![
                pdata(0x1000, 0x1010),
                pdata(0x1020, 0x1030),
                pdata(0x1040, 0x1050),
            ],
            vec![RoleRoot {
                role: pagewise_roles::Role::Dispatch,
                rva: 0x1060,
            }],
            0x1080,
        );
        let symbols = Symbols::from_list(vec![Symbol {
            rva: 0x1000,
            len: None,
            name: "f".into(),
            raw: "f".into(),
            kind: SymbolKind::Public,
        }]);
        Functions::build(&image, &symbols)
    }

    /// The function that holds an address, by a search of the whole table.
    fn by_search(functions: &Functions, rva: u32) -> Option<usize> {
        let idx = functions
            .list
            .partition_point(|f| f.start <= rva)
            .checked_sub(1)?;
        (rva < functions.list[idx].end).then_some(idx)
    }

    #[test]
    fn the_bucket_index_finds_what_a_search_finds() {
        // Functions of 1 to 700 bytes with gaps of 0 to 300, some far apart (a sparse layout
        // widens the buckets), from a fixed pseudo-random sequence.
        let mut seed = 0x2545_f491_u32;
        let mut next = |n: u32| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed % n
        };
        for sparse in [false, true] {
            let mut list = Vec::new();
            let mut at = 0x1000_u32;
            for i in 0..2000 {
                let start = at + next(300) + if sparse && i % 100 == 0 { 1 << 20 } else { 0 };
                let end = start + 1 + next(700);
                list.push(Function {
                    start,
                    end,
                    name: "f".into(),
                    raw: "f".into(),
                    section: 0,
                    residency: Residency::Resident,
                });
                at = end;
            }
            let functions = Functions::from_list(list);
            assert!(functions.buckets.len() <= 2 * functions.len() + 2);
            let end = functions.list.last().map_or(0, |f| f.end);
            for rva in (0..end + 0x1000)
                .step_by(7)
                .chain([0, u32::MAX, end, end - 1])
            {
                assert_eq!(
                    functions.containing(rva),
                    by_search(&functions, rva),
                    "{rva:#x}"
                );
            }
        }
        assert_eq!(Functions::from_list(Vec::new()).containing(0x1000), None);
    }

    #[test]
    fn role_records_and_the_entry_point_start_functions() {
        let functions = table();
        let ranges: Vec<(u32, u32)> = functions.list.iter().map(|f| (f.start, f.end)).collect();
        // The leaf at the record runs to the entry point; the entry point to the section end.
        assert_eq!(
            ranges,
            [
                (0x1000, 0x1010),
                (0x1020, 0x1030),
                (0x1040, 0x1050),
                (0x1060, 0x1080),
                (0x1080, 0x1100)
            ]
        );
        assert_eq!(functions.containing(0x1065), Some(3));
        assert_eq!(functions.containing(0x1055), None);
    }

    #[test]
    fn anonymous_ranges_are_named_from_the_nearest_named_start() {
        let names: Vec<String> = table().list.iter().map(|f| f.name.to_string()).collect();
        assert_eq!(names, ["f", "f+0x20", "f+0x40", "f+0x60", "f+0x80"]);
    }
}
