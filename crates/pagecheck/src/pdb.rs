//! Symbols from the PDB: public symbols (every linker-visible name, mangled for Rust) and
//! the procedure records of each module (names as the compiler wrote them, with lengths).
//!
//! Reader: `pdb2`, the maintained fork of the `pdb` crate (`pdb` 0.8 has had no release
//! since 2022; `pdb2` carries its fixes and is what `pdb-addr2line` and samply build on).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// Readable name: demangled when the raw name is a Rust symbol, else the raw name
    /// itself (shared, not copied).
    pub name: Arc<str>,
    /// The name exactly as stored in the PDB.
    pub raw: Arc<str>,
    /// Record kind.
    pub kind: SymbolKind,
}

/// The symbols of a PDB that matches the image.
#[derive(Debug, Default)]
pub struct Symbols {
    /// All symbols with an RVA, sorted by RVA then kind.
    pub symbols: Vec<Symbol>,
    /// `(start, end, module, offset)` of every procedure: which module's line table covers an
    /// RVA, and where in it the procedure's lines are.
    procedures: Vec<(u32, u32, usize, pdb2::PdbInternalSectionOffset)>,
    /// The PDB file, opened again to read line tables when a finding needs them (reading
    /// every module's would cost more than the whole analysis of a large driver).
    path: Option<PathBuf>,
    /// GUID and age of the PDB read, so that a file replaced since is not read for lines.
    identity: ([u8; 16], u32),
}

/// A place in the source, as the PDB records it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SourceLine {
    /// The file: relative to the source root when it lies under it (`/` separated), else as
    /// the PDB names it.
    pub file: String,
    /// True when `file` is relative to the source root.
    #[serde(skip)]
    pub relative: bool,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, when the PDB has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
}

/// The line tables of a PDB: which source line each code address comes from.
#[derive(Debug, Default)]
pub struct Lines {
    /// `(start, file, line, column)` sorted by start: each runs to the next one. (The lengths
    /// pdb2 computes are not used: they are wrong across blocks of different files.)
    entries: Vec<(u32, u32, u32, u32)>,
    /// File names, by index.
    files: Vec<String>,
}

/// Line numbers the compilers write for code with no line of its own.
const HIDDEN_LINES: [u32; 2] = [0x00fe_efee, 0x00f0_0f00];

impl Lines {
    /// True when the PDB has no line information.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The source line of the code at `rva` in the function that starts at `function`, with
    /// file names made relative to `root` when they lie under it. `None` when the function has
    /// no line before `rva` (a line of the previous function does not count).
    #[must_use]
    pub fn at(&self, rva: u32, function: u32, root: Option<&Path>) -> Option<SourceLine> {
        let i = self
            .entries
            .partition_point(|e| e.0 <= rva)
            .checked_sub(1)?;
        let (start, file, line, column) = self.entries[i];
        if start < function {
            return None;
        }
        let recorded = self.files.get(file as usize)?;
        let (file, relative) = relative_to(recorded, root);
        Some(SourceLine {
            file,
            relative,
            line,
            column: (column != 0).then_some(column),
        })
    }
}

/// `path` relative to `root` (both with either separator; drive letters compared without
/// case), or `path` itself when it is not under `root`.
#[must_use]
pub fn relative_to(path: &str, root: Option<&Path>) -> (String, bool) {
    let normal = path.replace('\\', "/");
    let Some(root) = root else {
        return (normal, false);
    };
    let root = root.to_string_lossy().replace('\\', "/");
    let root = root.trim_end_matches('/');
    let windows = normal.as_bytes().get(1) == Some(&b':');
    let under = if windows {
        normal.len() > root.len() && normal[..root.len()].eq_ignore_ascii_case(root)
    } else {
        normal.starts_with(root)
    };
    if !root.is_empty() && under && normal.as_bytes().get(root.len()) == Some(&b'/') {
        (normal[root.len() + 1..].to_owned(), true)
    } else if !normal.starts_with('/') && !windows {
        // Already relative (a compiler run from the workspace root).
        (normal, true)
    } else {
        (normal, false)
    }
}

/// Demangles a Rust symbol (legacy `_ZN` or v0 `_R`) without the hash suffix; other names
/// are returned unchanged.
///
/// A `_` path segment, an anonymous `const _: () = { .. };` block, is left out: no source
/// path can name it, and pagewise's placement attributes define every callback inside one
/// (so that its name outside stands for the placement marker only). `krate::_::f` reads
/// `krate::f`, the path the function is written under.
#[must_use]
pub fn demangle(raw: &str) -> String {
    let rust = is_mangled(raw);
    let mut name = if rust {
        rustc_demangle::try_demangle(raw).map_or_else(|_| raw.to_owned(), |d| format!("{d:#}"))
    } else {
        raw.to_owned()
    };
    // Procedure names from Rust debug info come demangled already, `_` segment included.
    while let Some(at) = name.find("::_::") {
        name.replace_range(at..at + 5, "::");
    }
    name
}

/// Whether `raw` may be a Rust mangled name: only Rust's two manglings (legacy `_ZN`, v0 `_R`,
/// with or without the extra underscore some platforms add) can demangle. C names, the bulk
/// of a C driver's PDB, skip the demangler's searches.
fn is_mangled(raw: &str) -> bool {
    ["_ZN", "ZN", "__ZN", "_R", "R", "__R"]
        .iter()
        .any(|p| raw.starts_with(p))
}

/// A symbol's raw name as read and its readable one ([`demangle`]): one shared string when
/// they are the same, as for every C name.
fn names(raw: &pdb2::RawString<'_>) -> (Arc<str>, Arc<str>) {
    let raw: Arc<str> = Arc::from(&*raw.to_string());
    let name = if is_mangled(&raw) || raw.contains("::_::") {
        Arc::from(demangle(&raw))
    } else {
        Arc::clone(&raw)
    };
    (name, raw)
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
    Error::new(format!("{}: {}", path.display(), pdb_message(e)))
}

/// A PDB reader's error in words: what is wrong with the file, not the reader's names.
#[must_use]
pub fn pdb_message(e: &pdb2::Error) -> String {
    use pdb2::Error as E;
    match e {
        E::UnrecognizedFileFormat => "not a PDB file (no MSF 7.0 header)".to_owned(),
        E::InvalidPageSize(size) => format!("damaged PDB: page size {size} is not one MSF allows"),
        E::PageReferenceOutOfRange(page) => {
            format!("truncated or damaged PDB: page {page} lies past the end of the file")
        }
        E::StreamNotFound(stream) => format!("damaged PDB: stream {stream} is missing"),
        E::StreamNameNotFound => "incomplete PDB: a named stream it needs is missing".to_owned(),
        E::InvalidStreamLength(what) => {
            format!("damaged PDB: the {what} stream has an impossible length")
        }
        E::IoError(io) => format!("cannot read the PDB: {io}"),
        E::UnexpectedEof => "truncated PDB: a stream ends in the middle of a record".to_owned(),
        E::UnimplementedFeature(what) => {
            format!("the PDB uses a feature this reader does not support ({what})")
        }
        E::GlobalSymbolsNotFound => "incomplete PDB: it has no global symbol stream".to_owned(),
        E::SymbolTooShort => {
            "damaged PDB: a symbol record is shorter than its kind needs".to_owned()
        }
        E::UnimplementedSymbolKind(kind) => {
            format!("the PDB has a symbol record of a kind this reader does not know ({kind:#06x})")
        }
        other => format!("damaged PDB: {other}"),
    }
}

impl Symbols {
    /// Symbols with no PDB behind them (no line tables): for images read without one and for
    /// tests.
    #[must_use]
    pub fn from_list(symbols: Vec<Symbol>) -> Self {
        Symbols {
            symbols,
            ..Symbols::default()
        }
    }

    /// Opens `path`, checks that its GUID and age match the image's `CodeView` record, and
    /// reads its symbols: the global symbols and the modules' procedures on two threads, each
    /// with the file opened on its own.
    ///
    /// # Errors
    /// Missing file, not a PDB, a GUID or age mismatch, malformed streams.
    pub fn load(path: &Path, image: &Image) -> Result<Symbols, Error> {
        let open = || {
            std::fs::File::open(path)
                .map_err(|e| Error::new(format!("{}: cannot open PDB: {e}", path.display())))
        };
        let (first, second) = (open()?, open()?);
        let (globals, modules) = std::thread::scope(|scope| {
            let modules = scope.spawn(|| {
                let mut pdb = Matched::open(second, image.codeview.as_ref(), path)?;
                pdb.procedures(path)
            });
            let globals = Matched::open(first, image.codeview.as_ref(), path)
                .and_then(|mut pdb| pdb.globals(path));
            (
                globals,
                modules
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            )
        });
        let (identity, mut symbols) = globals?;
        let (more, procedures) = modules?;
        symbols.extend(more);
        let mut symbols = Symbols::assemble(symbols, procedures, identity);
        symbols.path = Some(path.to_owned());
        Ok(symbols)
    }

    /// The line tables of the modules whose procedures hold `rvas`. Empty when the PDB has no
    /// line information, or was not read from a file.
    #[must_use]
    pub fn lines_at(&self, rvas: &[u32]) -> Lines {
        let mut lines = Lines::default();
        let Some(path) = &self.path else {
            return lines;
        };
        // The procedures holding the RVAs, by module.
        let mut wanted: Vec<(usize, pdb2::PdbInternalSectionOffset)> = rvas
            .iter()
            .filter_map(|&rva| {
                let i = self
                    .procedures
                    .partition_point(|p| p.0 <= rva)
                    .checked_sub(1)?;
                let (start, end, module, offset) = self.procedures[i];
                (rva >= start && rva < end.max(start + 1)).then_some((module, offset))
            })
            .collect();
        wanted.sort_unstable_by_key(|&(module, offset)| (module, offset.section, offset.offset));
        wanted.dedup();
        if wanted.is_empty() {
            return lines;
        }
        // The file was read once already; if it cannot be read again (replaced meanwhile), the
        // findings keep their image offsets only.
        let Some(mut pdb) = std::fs::File::open(path)
            .ok()
            .and_then(|f| pdb2::PDB::open(f).ok())
        else {
            return lines;
        };
        let (Ok(info), Ok(dbi), Ok(address_map), Ok(strings)) = (
            pdb.pdb_information(),
            pdb.debug_information(),
            pdb.address_map(),
            pdb.string_table(),
        ) else {
            return lines;
        };
        if (info.guid.to_bytes_le(), dbi.age().unwrap_or(info.age)) != self.identity {
            return lines;
        }
        let Ok(mut modules) = dbi.modules() else {
            return lines;
        };
        let mut file_ids: HashMap<String, u32> = HashMap::new();
        let mut index = 0usize;
        while let Ok(Some(module)) = modules.next() {
            let first = wanted.partition_point(|&(m, _)| m < index);
            let procedures: Vec<pdb2::PdbInternalSectionOffset> = wanted[first..]
                .iter()
                .take_while(|&&(m, _)| m == index)
                .map(|&(_, offset)| offset)
                .collect();
            if !procedures.is_empty()
                && let Ok(Some(info)) = pdb.module_info(&module)
            {
                read_lines(
                    &info,
                    &procedures,
                    &strings,
                    &address_map,
                    &mut lines,
                    &mut file_ids,
                );
            }
            index += 1;
        }
        lines.entries.sort_unstable();
        lines.entries.dedup_by_key(|e| e.0);
        lines
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
        let mut pdb = Matched::open(source, expected, path)?;
        let (identity, mut symbols) = pdb.globals(path)?;
        let (more, procedures) = pdb.procedures(path)?;
        symbols.extend(more);
        Ok(Symbols::assemble(symbols, procedures, identity))
    }

    /// The symbols sorted by RVA then kind (ties in reading order), with the procedures.
    fn assemble(
        symbols: Vec<Symbol>,
        mut procedures: Vec<Procedure>,
        identity: Identity,
    ) -> Symbols {
        // The keys are sorted, not the symbols: moving tens of thousands of records through a
        // comparison sort costs more than reading them.
        let mut order: Vec<(u32, SymbolKind, usize)> = symbols
            .iter()
            .enumerate()
            .map(|(i, s)| (s.rva, s.kind, i))
            .collect();
        order.sort_unstable();
        let mut slots: Vec<Option<Symbol>> = symbols.into_iter().map(Some).collect();
        let symbols: Vec<Symbol> = order
            .into_iter()
            .filter_map(|(_, _, i)| slots[i].take())
            .collect();
        procedures.sort_unstable_by_key(|p| (p.0, p.2));
        Symbols {
            symbols,
            procedures,
            path: None,
            identity,
        }
    }

    /// Finds a symbol by raw or readable name. A Rust path matches with or without the
    /// crate-hash suffix the demangler drops.
    #[must_use]
    pub fn find(&self, name: &str) -> Option<&Symbol> {
        let code_first = |s: &&Symbol| s.kind != SymbolKind::Data;
        self.symbols
            .iter()
            .filter(code_first)
            .find(|s| *s.raw == *name || *s.name == *name)
            .or_else(|| {
                self.symbols
                    .iter()
                    .find(|s| *s.raw == *name || *s.name == *name)
            })
    }
}

/// Adds the lines of the module's procedures at `procedures` to `lines`. A module whose lines
/// cannot be read only loses its source lines: findings still name functions and image offsets.
fn read_lines(
    info: &pdb2::ModuleInfo<'_>,
    procedures: &[pdb2::PdbInternalSectionOffset],
    strings: &pdb2::StringTable<'_>,
    address_map: &pdb2::AddressMap<'_>,
    lines: &mut Lines,
    file_ids: &mut HashMap<String, u32>,
) {
    let Ok(program) = info.line_program() else {
        return;
    };
    // File names are resolved once per file of the module, not once per line.
    let mut module_files: HashMap<u32, u32> = HashMap::new();
    for &procedure in procedures {
        let mut iter = program.lines_for_symbol(procedure);
        while let Ok(Some(line)) = iter.next() {
            if HIDDEN_LINES.contains(&line.line_start) || line.line_start == 0 {
                continue;
            }
            let Some(rva) = line.offset.to_rva(address_map) else {
                continue;
            };
            let id = if let Some(&id) = module_files.get(&line.file_index.0) {
                id
            } else {
                let Ok(file) = program.get_file_info(line.file_index) else {
                    continue;
                };
                let Ok(name) = file.name.to_string_lossy(strings) else {
                    continue;
                };
                let next = u32::try_from(lines.files.len()).unwrap_or(u32::MAX);
                let id = *file_ids
                    .entry(name.into_owned())
                    .or_insert_with_key(|name| {
                        lines.files.push(name.clone());
                        next
                    });
                module_files.insert(line.file_index.0, id);
                id
            };
            lines
                .entries
                .push((rva.0, id, line.line_start, line.column_start.unwrap_or(0)));
        }
    }
}

fn push_data(
    symbols: &mut Vec<Symbol>,
    address_map: &pdb2::AddressMap<'_>,
    offset: pdb2::PdbInternalSectionOffset,
    name: &pdb2::RawString<'_>,
) {
    if let Some(rva) = offset.to_rva(address_map) {
        let (name, raw) = names(name);
        symbols.push(Symbol {
            rva: rva.0,
            len: None,
            name,
            raw,
            kind: SymbolKind::Data,
        });
    }
}

/// The `CodeView` record kinds this reader uses (numbers from `cvinfo.h`): data (`S_LDATA32`,
/// `S_GDATA32`, their managed and pre-7.0 `_ST` forms), publics (`S_PUB32`) and procedures
/// (`S_LPROC32`, `S_GPROC32`, their `_ID`, `_DPC` and `_ST` forms). A module's stream is mostly
/// other records (frames, locals, blocks, inlinee lines): their kind is read, not the record.
fn is_wanted(kind: u16) -> bool {
    matches!(
        kind,
        0x1007..=0x100b // S_LDATA32_ST, S_GDATA32_ST, S_PUB32_ST, S_LPROC32_ST, S_GPROC32_ST
            | 0x110c..=0x1110 // S_LDATA32, S_GDATA32, S_PUB32, S_LPROC32, S_GPROC32
            | 0x111c | 0x111d // S_LMANDATA, S_GMANDATA
            | 0x1020 | 0x1021 // S_LMANDATA_ST, S_GMANDATA_ST
            | 0x1146 | 0x1147 // S_LPROC32_ID, S_GPROC32_ID
            | 0x1155 | 0x1156 // S_LPROC32_DPC, S_LPROC32_DPC_ID
    )
}

/// A procedure: `(start RVA, end RVA, module index, section offset)`.
type Procedure = (u32, u32, usize, pdb2::PdbInternalSectionOffset);
/// The PDB's GUID (as the image records it) and age.
type Identity = ([u8; 16], u32);

/// An open PDB whose identity was checked against the image.
struct Matched<'s, S> {
    pdb: pdb2::PDB<'s, S>,
    address_map: pdb2::AddressMap<'s>,
    identity: Identity,
}

impl<'s, S: pdb2::Source<'s> + Send + 's> Matched<'s, S> {
    /// Opens the PDB in `source` and checks its GUID and age against `expected`.
    fn open(source: S, expected: Option<&CodeView>, path: &Path) -> Result<Self, Error> {
        let mut pdb = pdb2::PDB::open(source).map_err(|e| pdb_err(path, &e))?;
        let info = pdb.pdb_information().map_err(|e| pdb_err(path, &e))?;
        let dbi = pdb.debug_information().map_err(|e| pdb_err(path, &e))?;
        // The image's age is compared with the DBI stream's, as the debuggers do; the PDB-info
        // age is the fallback for PDBs without one.
        let age = dbi.age().unwrap_or(info.age);
        let guid = info.guid.to_bytes_le();
        if let Some(cv) = expected
            && (guid != cv.guid || age != cv.age)
        {
            return Err(Error::new(format!(
                "{}: PDB does not match the image (PDB {} age {}, image expects {} age {})",
                path.display(),
                info.guid,
                age,
                format_guid(&cv.guid),
                cv.age
            )));
        }
        let address_map = pdb.address_map().map_err(|e| pdb_err(path, &e))?;
        Ok(Matched {
            pdb,
            address_map,
            identity: (guid, age),
        })
    }

    /// The public and global data symbols.
    fn globals(&mut self, path: &Path) -> Result<(Identity, Vec<Symbol>), Error> {
        let mut symbols = Vec::new();
        let globals = self.pdb.global_symbols().map_err(|e| pdb_err(path, &e))?;
        let mut iter = globals.iter();
        while let Some(symbol) = iter.next().map_err(|e| pdb_err(path, &e))? {
            // Records this reader does not know are skipped, not fatal: new compilers add kinds.
            if !is_wanted(symbol.raw_kind()) {
                continue;
            }
            let Ok(data) = symbol.parse() else { continue };
            match data {
                pdb2::SymbolData::Public(p) => {
                    if let Some(rva) = p.offset.to_rva(&self.address_map) {
                        let (name, raw) = names(&p.name);
                        symbols.push(Symbol {
                            rva: rva.0,
                            len: None,
                            name,
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
                    push_data(&mut symbols, &self.address_map, d.offset, &d.name);
                }
                _ => {}
            }
        }
        Ok((self.identity, symbols))
    }

    /// The modules' procedures (as symbols too) and module-level data.
    fn procedures(&mut self, path: &Path) -> Result<(Vec<Symbol>, Vec<Procedure>), Error> {
        let mut symbols = Vec::new();
        let mut procedures = Vec::new();
        let dbi = self
            .pdb
            .debug_information()
            .map_err(|e| pdb_err(path, &e))?;
        let mut modules = dbi.modules().map_err(|e| pdb_err(path, &e))?;
        let mut module_index = 0usize;
        while let Some(module) = modules.next().map_err(|e| pdb_err(path, &e))? {
            let this = module_index;
            module_index += 1;
            let Some(info) = self
                .pdb
                .module_info(&module)
                .map_err(|e| pdb_err(path, &e))?
            else {
                continue;
            };
            let mut iter = info.symbols().map_err(|e| pdb_err(path, &e))?;
            while let Some(symbol) = iter.next().map_err(|e| pdb_err(path, &e))? {
                if !is_wanted(symbol.raw_kind()) {
                    continue;
                }
                let Ok(data) = symbol.parse() else { continue };
                match data {
                    pdb2::SymbolData::Procedure(p) => {
                        if let Some(rva) = p.offset.to_rva(&self.address_map) {
                            procedures.push((rva.0, rva.0.saturating_add(p.len), this, p.offset));
                            let (name, raw) = names(&p.name);
                            symbols.push(Symbol {
                                rva: rva.0,
                                len: Some(p.len),
                                name,
                                raw,
                                kind: SymbolKind::Procedure,
                            });
                        }
                    }
                    pdb2::SymbolData::Data(d) => {
                        push_data(&mut symbols, &self.address_map, d.offset, &d.name);
                    }
                    _ => {}
                }
            }
        }
        Ok((symbols, procedures))
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

#[cfg(test)]
mod tests {
    use super::{demangle, is_wanted};

    #[test]
    fn only_data_public_and_procedure_records_are_parsed() {
        // S_LDATA32, S_GDATA32, S_PUB32, S_LPROC32, S_GPROC32, the _ID and _DPC procedures,
        // the managed data and the pre-7.0 _ST forms.
        for kind in [
            0x110c, 0x110d, 0x110e, 0x110f, 0x1110, 0x1146, 0x1147, 0x1155, 0x1156, 0x111c, 0x111d,
            0x1007, 0x1008, 0x1009, 0x100a, 0x100b, 0x1020, 0x1021,
        ] {
            assert!(is_wanted(kind), "{kind:#06x}");
        }
        // S_END, S_FRAMEPROC, S_OBJNAME, S_BLOCK32, S_LABEL32, S_CONSTANT, S_UDT, S_REGREL32,
        // S_PROCREF, S_DATAREF, S_LPROCREF, S_COMPILE3, S_LOCAL, S_INLINESITE.
        for kind in [
            0x0006, 0x1012, 0x1101, 0x1103, 0x1105, 0x1107, 0x1108, 0x1111, 0x1125, 0x1126, 0x1127,
            0x113c, 0x113e, 0x114d,
        ] {
            assert!(!is_wanted(kind), "{kind:#06x}");
        }
    }

    /// A callback placed by pagewise's attributes lives in an anonymous `const` block; its
    /// name reads as the path it is written under (legacy and v0 manglings).
    #[test]
    fn anonymous_const_segments_are_left_out() {
        assert_eq!(
            demangle("_ZN18rust_registrations1_18evt_device_d0_exit17h0123456789abcdefE"),
            "rust_registrations::evt_device_d0_exit"
        );
        assert_eq!(
            demangle("_ZN8pagewise5power1_1_18evt_device_d0_exit17h0123456789abcdefE"),
            "pagewise::power::evt_device_d0_exit"
        );
        assert_eq!(
            demangle("_ZN8pagewise5power18evt_device_d0_exit17h0123456789abcdefE"),
            "pagewise::power::evt_device_d0_exit"
        );
        assert_eq!(
            demangle("rust_violation::_::evt_device_d0_entry"),
            "rust_violation::evt_device_d0_entry",
            "a debug-info name"
        );
        assert_eq!(demangle("EvtDeviceD0Exit"), "EvtDeviceD0Exit");
    }
}
