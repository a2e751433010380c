//! Arbitrary bytes through the PE reader and, when they parse, the whole analysis (function
//! table from `.pdata`, decoding, every check, every output format). Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pagecheck::image::Image;
use pagecheck::pdb::Symbols;
use pagecheck::{Options, analyze, report};

fuzz_target!(|data: &[u8]| {
    let Ok(image) = Image::parse(data.to_vec()) else {
        return;
    };
    let symbols = Symbols::default();
    if let Ok(report) = analyze(
        &image,
        &symbols,
        &Options::default(),
        "fuzz.sys",
        "fuzz.pdb",
    ) {
        for color in [false, true] {
            for quiet in [false, true] {
                let _ = report::text(&report, &report::TextOptions { color, quiet });
            }
        }
        let _ = report::json(&report);
        let _ = report::sarif(&report);
    }
});
