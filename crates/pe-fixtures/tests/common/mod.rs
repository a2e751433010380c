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
