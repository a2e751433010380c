//! Reading back what the fixture builder produced, with `object` (PE) and `pdb2` (PDB).

#![allow(dead_code, reason = "each test file uses a different subset")]

use object::LittleEndian as LE;
use object::pe;
use object::read::pe::PeFile64;
use object::{Object, ObjectSection};
use pe_fixtures::Image;

/// `IMAGE_SCN_CNT_CODE | MEM_EXECUTE | MEM_READ`.
pub const CODE: u32 = pe::IMAGE_SCN_CNT_CODE | pe::IMAGE_SCN_MEM_EXECUTE | pe::IMAGE_SCN_MEM_READ;
/// Resident code as `link.exe /DRIVER` marks `.text`: 0x68000020.
pub const CODE_NOT_PAGED: u32 = CODE | pe::IMAGE_SCN_MEM_NOT_PAGED;
/// Discardable code (`INIT`): 0x62000020.
pub const CODE_DISCARDABLE: u32 = CODE | pe::IMAGE_SCN_MEM_DISCARDABLE;

/// One section header, as read from the image.
#[derive(Debug, Clone)]
pub struct Section {
    pub name: String,
    pub characteristics: u32,
    pub rva: u32,
    pub size: u32,
}

impl Section {
    pub fn contains(&self, rva: u64) -> bool {
        rva >= u64::from(self.rva) && rva < u64::from(self.rva) + u64::from(self.size)
    }
}

/// A parsed fixture image and its facts.
pub struct Loaded {
    pub data: Vec<u8>,
    pub sections: Vec<Section>,
    pub image_base: u64,
}

impl Loaded {
    pub fn section(&self, name: &str) -> &Section {
        self.sections
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no section {name} in {:?}", self.names()))
    }

    pub fn names(&self) -> Vec<&str> {
        self.sections.iter().map(|s| s.name.as_str()).collect()
    }

    pub fn section_data(&self, name: &str) -> Vec<u8> {
        let file = PeFile64::parse(&*self.data).expect("parsed before");
        let section = file
            .sections()
            .find(|s| s.name() == Ok(name))
            .unwrap_or_else(|| panic!("no section {name}"));
        section.data().expect("section data").to_vec()
    }

    pub fn section_of_rva(&self, rva: u64) -> Option<&Section> {
        self.sections.iter().find(|s| s.contains(rva))
    }
}

/// Asserts what every fixture image must be: a PE32+ AMD64 native-subsystem image whose PDB
/// exists beside it and matches its `CodeView` record (GUID and age).
pub fn load(image: &Image) -> Loaded {
    let data = std::fs::read(&image.image).expect("read image");
    // PeFile64 parses only PE32+ (optional header magic 0x20b).
    let file = PeFile64::parse(&*data).expect("a PE32+ image");
    let headers = file.nt_headers();
    assert_eq!(
        headers.file_header.machine.get(LE),
        pe::IMAGE_FILE_MACHINE_AMD64,
        "machine"
    );
    assert_eq!(
        headers.optional_header.subsystem.get(LE),
        pe::IMAGE_SUBSYSTEM_NATIVE,
        "a driver's subsystem"
    );
    let sections = file
        .section_table()
        .iter()
        .map(|header| Section {
            name: String::from_utf8_lossy(header.raw_name())
                .trim_end_matches('\0')
                .to_owned(),
            characteristics: header.characteristics.get(LE),
            rva: header.virtual_address.get(LE),
            size: header.virtual_size.get(LE),
        })
        .collect();

    let codeview = file
        .pdb_info()
        .expect("debug directory readable")
        .expect("a CodeView record");
    let stem = image.image.file_stem().expect("stem").to_string_lossy();
    assert_eq!(
        codeview.path(),
        format!("{stem}.pdb").as_bytes(),
        "CodeView names the PDB beside the image"
    );
    assert_eq!(image.pdb, image.image.with_extension("pdb"));
    let pdb_file = std::fs::File::open(&image.pdb).expect("PDB exists");
    let mut pdb = pdb2::PDB::open(pdb_file).expect("a PDB");
    let info = pdb.pdb_information().expect("PDB info stream");
    let guid = codeview.guid();
    // The CodeView GUID is stored as a Windows GUID: three little-endian fields, then 8 bytes.
    let fields = (
        u32::from_le_bytes(guid[0..4].try_into().expect("4 bytes")),
        u16::from_le_bytes(guid[4..6].try_into().expect("2 bytes")),
        u16::from_le_bytes(guid[6..8].try_into().expect("2 bytes")),
    );
    let (d1, d2, d3, d4) = info.guid.as_fields();
    assert_eq!((d1, d2, d3), fields, "PDB GUID");
    assert_eq!(d4, &guid[8..16], "PDB GUID");
    let dbi = pdb.debug_information().expect("DBI stream");
    assert_eq!(Some(codeview.age()), dbi.age(), "PDB age");

    Loaded {
        image_base: file.relative_address_base(),
        data,
        sections,
    }
}

/// The RVA of a public symbol, from the PDB's global symbol stream.
pub fn public_rva(image: &Image, name: &str) -> Option<u32> {
    use pdb2::FallibleIterator;
    let mut pdb = pdb2::PDB::open(std::fs::File::open(&image.pdb).expect("PDB")).expect("PDB");
    let map = pdb.address_map().expect("address map");
    let symbols = pdb.global_symbols().expect("globals");
    let mut iter = symbols.iter();
    while let Some(symbol) = iter.next().expect("symbol") {
        if let Ok(pdb2::SymbolData::Public(public)) = symbol.parse()
            && public.name.to_string() == name
        {
            return public.offset.to_rva(&map).map(|rva| rva.0);
        }
    }
    None
}

/// Asserts that a section exists with exactly these characteristics.
pub fn assert_section(loaded: &Loaded, name: &str, characteristics: u32) {
    let section = loaded.section(name);
    assert_eq!(
        section.characteristics, characteristics,
        "{name}: {:#010x}, expected {characteristics:#010x}",
        section.characteristics
    );
}

/// A function from the PDB's module symbols (`S_GPROC32`/`S_LPROC32`): C names as written,
/// Rust names as paths (`crate::function`).
#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    pub rva: u32,
    pub len: u32,
}

/// Every procedure of every module in the PDB.
pub fn functions(image: &Image) -> Vec<Function> {
    use pdb2::FallibleIterator;
    let mut pdb = pdb2::PDB::open(std::fs::File::open(&image.pdb).expect("PDB")).expect("PDB");
    let map = pdb.address_map().expect("address map");
    let dbi = pdb.debug_information().expect("DBI");
    let mut modules = dbi.modules().expect("modules");
    let mut out = Vec::new();
    while let Some(module) = modules.next().expect("module") {
        let Some(info) = pdb.module_info(&module).expect("module info") else {
            continue;
        };
        let mut symbols = info.symbols().expect("symbols");
        while let Some(symbol) = symbols.next().expect("symbol") {
            if let Ok(pdb2::SymbolData::Procedure(procedure)) = symbol.parse()
                && let Some(rva) = procedure.offset.to_rva(&map)
            {
                out.push(Function {
                    // The placement attributes define a callback inside an anonymous
                    // `const _` block; its path reads as written, without the `_`.
                    name: procedure.name.to_string().replace("::_::", "::"),
                    rva: rva.0,
                    len: procedure.len,
                });
            }
        }
    }
    out
}

/// The function called `name`, or for a Rust generic the first whose name starts with it.
pub fn function<'f>(functions: &'f [Function], name: &str) -> &'f Function {
    functions
        .iter()
        .find(|f| f.name == name)
        .or_else(|| functions.iter().find(|f| f.name.starts_with(name)))
        .unwrap_or_else(|| {
            let names: Vec<&str> = functions.iter().map(|f| f.name.as_str()).collect();
            panic!("no function {name} in {names:?}")
        })
}

/// What one instruction of a function does with another address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// `call rel32` to an RVA.
    Call(u64),
    /// `jmp rel32` to an RVA (a tail call when outside the function).
    Jump(u64),
    /// `lea reg, [rip + disp]` of an RVA (an address taken).
    Address(u64),
    /// `call`/`jmp` through a register.
    IndirectRegister,
    /// `call`/`jmp` through memory (not the import table), with the displacement.
    IndirectMemory {
        base_is_rip: bool,
        displacement: u64,
    },
    /// `mov reg, [rip + disp]` loading from an RVA.
    Load(u64),
}

/// Decodes `function` with iced-x86 and lists its edges (RVAs relative to the image base).
pub fn edges(loaded: &Loaded, function: &Function) -> Vec<Edge> {
    use iced_x86::{Decoder, DecoderOptions, Mnemonic, OpKind, Register};
    let section = loaded
        .section_of_rva(u64::from(function.rva))
        .expect("function in a section");
    let data = loaded.section_data(&section.name);
    let start = (function.rva - section.rva) as usize;
    let bytes = &data[start..start + function.len as usize];
    let ip = loaded.image_base + u64::from(function.rva);
    let mut decoder = Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE);
    let base = loaded.image_base;
    let mut out = Vec::new();
    for instruction in &mut decoder {
        let mnemonic = instruction.mnemonic();
        let branch = matches!(mnemonic, Mnemonic::Call | Mnemonic::Jmp);
        match instruction.op0_kind() {
            OpKind::NearBranch64 if branch => {
                let target = instruction.near_branch_target() - base;
                out.push(if mnemonic == Mnemonic::Call {
                    Edge::Call(target)
                } else {
                    Edge::Jump(target)
                });
            }
            OpKind::Register if branch => out.push(Edge::IndirectRegister),
            OpKind::Memory if branch => {
                let rip = instruction.memory_base() == Register::RIP;
                let displacement = if rip {
                    instruction.memory_displacement64() - base
                } else {
                    instruction.memory_displacement64()
                };
                out.push(Edge::IndirectMemory {
                    base_is_rip: rip,
                    displacement,
                });
            }
            _ => {}
        }
        if mnemonic == Mnemonic::Lea && instruction.memory_base() == Register::RIP {
            out.push(Edge::Address(instruction.memory_displacement64() - base));
        }
        if mnemonic == Mnemonic::Mov
            && instruction.op1_kind() == OpKind::Memory
            && instruction.memory_base() == Register::RIP
        {
            out.push(Edge::Load(instruction.memory_displacement64() - base));
        }
    }
    out
}

/// The RVA of `name` among the functions, as u64 for comparing with edges.
pub fn rva_of(functions: &[Function], name: &str) -> u64 {
    u64::from(function(functions, name).rva)
}

/// A built fixture with its sections and its function table, or the builder's error as the
/// test's failure message.
pub fn open(built: Result<Image, pe_fixtures::Error>) -> (Image, Loaded, Vec<Function>) {
    let image = built.unwrap_or_else(|error| panic!("{error}"));
    let loaded = load(&image);
    let functions = functions(&image);
    (image, loaded, functions)
}
