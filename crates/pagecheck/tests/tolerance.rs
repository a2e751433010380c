//! Where the Windows loader is tolerant, pagecheck is too, with a warning: GNU ld writes
//! zero-length `.pdata` entries and has written base-relocation blocks whose size is not a
//! multiple of 4.

mod common;

use common::{headers, run};

/// The `reg_rdata_o2` fixture (its registrations are relocated pointers in `.rdata`) with
/// `edit` applied to its bytes; returns stdout. The analysis must go through (exit 0 or 1).
fn analyse_edited(name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> String {
    let image = common::c("reg_rdata_o2");
    let mut bytes = std::fs::read(&image.image).expect("read");
    edit(&mut bytes);
    let path = common::write_variant(&image, name, &bytes);
    let out = run([path.as_os_str()]);
    assert!(
        out.code == 0 || out.code == 1,
        "{name}: {}{}",
        out.stdout,
        out.stderr
    );
    out.stdout
}

fn section(bytes: &[u8], name: &str) -> (usize, u32) {
    let (_, at) = headers(bytes)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name}"));
    let raw = u32::from_le_bytes(bytes[at + 20..at + 24].try_into().expect("4"));
    let size = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().expect("4"));
    (raw as usize, size)
}

#[test]
fn a_zero_length_pdata_entry_is_skipped_with_a_warning() {
    let out = analyse_edited("zero-pdata", |bytes| {
        let (pdata, size) = section(bytes, ".pdata");
        // The last entry: end = begin.
        let last = pdata + (size as usize / 12 - 1) * 12;
        let begin: [u8; 4] = bytes[last..last + 4].try_into().expect("4");
        bytes[last + 4..last + 8].copy_from_slice(&begin);
    });
    assert!(
        out.contains("warning: skipped 1 zero-length .pdata entry"),
        "{out}"
    );
}

#[test]
fn a_malformed_relocation_block_ends_the_relocations_with_a_warning() {
    let out = analyse_edited("odd-reloc-block", |bytes| {
        let (reloc, _) = section(bytes, ".reloc");
        // The first block's SizeOfBlock, made not a multiple of 4.
        let size = u32::from_le_bytes(bytes[reloc + 4..reloc + 8].try_into().expect("4"));
        bytes[reloc + 4..reloc + 8].copy_from_slice(&(size - 2).to_le_bytes());
    });
    assert!(
        out.contains("warning: base relocations read up to a malformed block"),
        "{out}"
    );
}

/// Line tables are read from the PDB file again when findings need them: from the same PDB
/// (same GUID and age) only. A different PDB put at the same path in between gives no lines,
/// rather than lines of another build.
#[test]
fn lines_come_only_from_the_pdb_that_was_matched() {
    let image = common::c("reg_rdata_o2");
    let bytes = std::fs::read(&image.image).expect("read");
    let path = common::write_variant(&image, "lines_identity", &bytes);
    let pdb_path = path.with_extension("pdb");
    let parsed = pagecheck::image::Image::parse(bytes).expect("parse");
    let symbols = pagecheck::pdb::Symbols::load(&pdb_path, &parsed).expect("pdb");
    let entry = symbols
        .find("EvtIoDeviceControl")
        .expect("EvtIoDeviceControl in the PDB")
        .rva;
    let lines = symbols.lines_at(&[entry]);
    assert!(!lines.is_empty(), "no lines from the matched PDB");
    assert!(lines.at(entry, entry, None).is_some());

    // Another fixture's PDB, same file name.
    std::fs::copy(common::c("reg_rdata_os").pdb, &pdb_path).expect("replace the PDB");
    assert!(symbols.lines_at(&[entry]).is_empty());
}
