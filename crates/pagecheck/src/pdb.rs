//! Symbols from the PDB: public symbols (every linker-visible name, mangled for Rust) and
//! the procedure records of each module (names as the compiler wrote them, with lengths).
//!
//! Reader: `pdb2`, the maintained fork of the `pdb` crate (`pdb` 0.8 has had no release
//! since 2022; `pdb2` carries its fixes and is what `pdb-addr2line` and samply build on).

use std::fs::File;
use std::path::{Path, PathBuf};

use pdb2::FallibleIterator;

use crate::Error;
use crate::image::{CodeView, Image};

/// Where a symbol came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SymbolKind {
    /// `S_GPROC32`/`S_LPROC32` in a module stream: has a length.
    Procedure,
    /// `S_PUB32` in the public symbol stream.
    Public,
    /// `S_GDATA32`/`S_LDATA32`: a variable.
    Data,
}

/// One named address.
#[derive(Clone, Debug)]
pub struct Symbol {
    /// RVA in the image.
    pub rva: u32,
    /// Length in bytes when the PDB records it (procedures).
    pub len: Option<u32>,
    /// Readable name: demangled when the raw name is a Rust symbol.
    pub name: String,
    /// The name exactly as stored in the PDB.
    pub raw: String,
    /// Record kind.
    pub kind: SymbolKind,
}

/// The symbols of a PDB that matches the image.
#[derive(Debug, Default)]
pub struct Symbols {
    /// All symbols with an RVA, sorted by RVA then kind.
    pub symbols: Vec<Symbol>,
}

/// Demangles a Rust symbol (legacy `_ZN` or v0 `_R`) without the hash suffix; other names
/// are returned unchanged.
#[must_use]
pub fn demangle(raw: &str) -> String {
    match rustc_demangle::try_demangle(raw) {
        Ok(d) => format!("{d:#}"),
        Err(_) => raw.to_owned(),
    }
}

/// Finds the PDB for `image_path`: the `CodeView` path when that file exists, otherwise the
/// same stem with `.pdb` beside the image.
#[must_use]
pub fn locate(image_path: &Path, codeview: Option<&CodeView>) -> Option<PathBuf> {
    let beside = image_path.with_extension("pdb");
    if beside.is_file() {
        return Some(beside);
    }
    let recorded = codeview?.path.replace('\\', "/");
    let recorded_path = PathBuf::from(&recorded);
    if recorded_path.is_file() {
        return Some(recorded_path);
    }
    // A path from another machine: try its file name beside the image.
    let file_name = recorded.rsplit('/').next()?;
    let candidate = image_path.with_file_name(file_name);
    candidate.is_file().then_some(candidate)
}

fn pdb_err(path: &Path, e: &pdb2::Error) -> Error {
    Error::new(format!("{}: unreadable PDB: {e}", path.display()))
}

impl Symbols {
    /// Opens `path`, checks that its GUID and age match the image's `CodeView` record, and
    /// reads its symbols.
    ///
    /// # Errors
    /// Missing file, not a PDB, a GUID or age mismatch, malformed streams.
    pub fn load(path: &Path, image: &Image) -> Result<Symbols, Error> {
        let file = File::open(path)
            .map_err(|e| Error::new(format!("{}: cannot open PDB: {e}", path.display())))?;
        Symbols::read(file, image.codeview.as_ref(), path)
    }

    /// Reads symbols from any seekable source (used by the fuzz target); `expected` is the
    /// image's `CodeView` record to match, when there is one.
    ///
    /// # Errors
    /// As [`Symbols::load`].
    pub fn read<'s, S: pdb2::Source<'s> + Send + 's>(
        source: S,
        expected: Option<&CodeView>,
        path: &Path,
    ) -> Result<Symbols, Error> {
        let mut pdb = pdb2::PDB::open(source).map_err(|e| pdb_err(path, &e))?;
        let info = pdb.pdb_information().map_err(|e| pdb_err(path, &e))?;
        let dbi = pdb.debug_information().map_err(|e| pdb_err(path, &e))?;
        if let Some(cv) = expected {
            let guid = info.guid.to_bytes_le();
            // The image's age is compared with the DBI stream's, as the debuggers do; the
            // PDB-info age is the fallback for PDBs without one.
            let age = dbi.age().unwrap_or(info.age);
            if guid != cv.guid || age != cv.age {
                return Err(Error::new(format!(
                    "{}: PDB does not match the image (PDB {} age {}, image expects {} age {})",
                    path.display(),
                    info.guid,
                    age,
                    format_guid(&cv.guid),
                    cv.age
                )));
            }
        }
        let address_map = pdb.address_map().map_err(|e| pdb_err(path, &e))?;
        let mut symbols = Vec::new();

        let globals = pdb.global_symbols().map_err(|e| pdb_err(path, &e))?;
        let mut iter = globals.iter();
        while let Some(symbol) = iter.next().map_err(|e| pdb_err(path, &e))? {
            // Records this reader does not know are skipped, not fatal: new compilers add kinds.
            let Ok(data) = symbol.parse() else { continue };
            match data {
                pdb2::SymbolData::Public(p) => {
                    if let Some(rva) = p.offset.to_rva(&address_map) {
                        let raw = p.name.to_string().into_owned();
                        symbols.push(Symbol {
                            rva: rva.0,
                            len: None,
                            name: demangle(&raw),
                            raw,
                            kind: if p.function || p.code {
                                SymbolKind::Public
                            } else {
                                SymbolKind::Data
                            },
                        });
                    }
                }
                pdb2::SymbolData::Data(d) => {
                    push_data(&mut symbols, &address_map, d.offset, &d.name);
                }
                _ => {}
            }
        }

        let mut modules = dbi.modules().map_err(|e| pdb_err(path, &e))?;
        while let Some(module) = modules.next().map_err(|e| pdb_err(path, &e))? {
            let Some(info) = pdb.module_info(&module).map_err(|e| pdb_err(path, &e))? else {
                continue;
            };
            let mut iter = info.symbols().map_err(|e| pdb_err(path, &e))?;
            while let Some(symbol) = iter.next().map_err(|e| pdb_err(path, &e))? {
                let Ok(data) = symbol.parse() else { continue };
                match data {
                    pdb2::SymbolData::Procedure(p) => {
                        if let Some(rva) = p.offset.to_rva(&address_map) {
                            let raw = p.name.to_string().into_owned();
                            symbols.push(Symbol {
                                rva: rva.0,
                                len: Some(p.len),
                                name: demangle(&raw),
                                raw,
                                kind: SymbolKind::Procedure,
                            });
                        }
                    }
                    pdb2::SymbolData::Data(d) => {
                        push_data(&mut symbols, &address_map, d.offset, &d.name);
                    }
                    _ => {}
                }
            }
        }
        symbols.sort_by_key(|a| (a.rva, a.kind));
        Ok(Symbols { symbols })
    }

    /// Finds a symbol by raw or readable name. A Rust path matches with or without the
    /// crate-hash suffix the demangler drops.
    #[must_use]
    pub fn find(&self, name: &str) -> Option<&Symbol> {
        let code_first = |s: &&Symbol| s.kind != SymbolKind::Data;
        self.symbols
            .iter()
            .filter(code_first)
            .find(|s| s.raw == name || s.name == name)
            .or_else(|| {
                self.symbols
                    .iter()
                    .find(|s| s.raw == name || s.name == name)
            })
    }
}

fn push_data(
    symbols: &mut Vec<Symbol>,
    address_map: &pdb2::AddressMap<'_>,
    offset: pdb2::PdbInternalSectionOffset,
    name: &pdb2::RawString<'_>,
) {
    if let Some(rva) = offset.to_rva(address_map) {
        let raw = name.to_string().into_owned();
        symbols.push(Symbol {
            rva: rva.0,
            len: None,
            name: demangle(&raw),
            raw,
            kind: SymbolKind::Data,
        });
    }
}

/// Formats a GUID stored in file byte order the way Windows tools print it.
#[must_use]
pub fn format_guid(g: &[u8; 16]) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
        u16::from_le_bytes([g[4], g[5]]),
        u16::from_le_bytes([g[6], g[7]]),
        g[8],
        g[9],
        g[10],
        g[11],
        g[12],
        g[13],
        g[14],
        g[15]
    )
}
