//! Arbitrary bytes through the PDB reader: open, match check, public and module symbols.
#![no_main]

use std::io::Cursor;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pagecheck::pdb::Symbols;

fuzz_target!(|data: &[u8]| {
    let _ = Symbols::read(Cursor::new(data.to_vec()), None, Path::new("fuzz.pdb"));
});
