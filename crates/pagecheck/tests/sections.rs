//! Check 1 on real images whose section headers are rewritten the ways a bad link leaves
//! them: pageable flags on resident sections, lower-case `page`, a non-discardable INIT,
//! empty characteristics, and a name that is not UTF-8 (found by the fuzzer: it used to
//! panic on slicing).

mod common;

use common::{headers, run};
use pagecheck::checks::Rule;
use pagecheck::image::SCN_NOT_PAGED;

fn characteristics_at(bytes: &mut [u8], header: usize) -> &mut [u8] {
    &mut bytes[header + 36..header + 40]
}

fn rewrite(name: &str, edit: impl FnOnce(&mut Vec<u8>, &[(String, usize)])) -> pagecheck::Report {
    let image = common::c("clean");
    let mut bytes = std::fs::read(&image.image).expect("read");
    let table = headers(&bytes);
    edit(&mut bytes, &table);
    let dir = common::scratch(&format!("sections-{name}"));
    let path = dir.join("clean.sys");
    std::fs::write(&path, &bytes).expect("write");
    common::copy_to(&image.pdb, &dir, "clean.pdb");
    pagecheck::analyze_path(&path, &pagecheck::Options::default()).expect("analysis")
}

fn header(table: &[(String, usize)], name: &str) -> usize {
    table
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, at)| *at)
        .expect(name)
}

fn section_errors(report: &pagecheck::Report) -> Vec<&str> {
    report
        .violations
        .iter()
        .filter(|v| v.rule == Rule::SectionFlags)
        .map(|v| v.message.as_str())
        .collect()
}

#[test]
fn the_unmodified_image_passes_check_1() {
    let report = rewrite("none", |_, _| {});
    assert!(section_errors(&report).is_empty());
}

#[test]
fn resident_section_without_not_paged() {
    let report = rewrite("text-paged", |bytes, table| {
        let at = header(table, ".text");
        let c = u32::from_le_bytes(characteristics_at(bytes, at).try_into().expect("4"));
        characteristics_at(bytes, at).copy_from_slice(&(c & !SCN_NOT_PAGED).to_le_bytes());
    });
    let errors = section_errors(&report);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("section `.text` holds code but is not marked not-paged"),
        "{}",
        errors[0]
    );
}

#[test]
fn init_not_discardable_and_empty_characteristics() {
    let report = rewrite("init-retplne", |bytes, table| {
        let init = header(table, "INIT");
        characteristics_at(bytes, init).copy_from_slice(&0x6800_0020u32.to_le_bytes());
        let rdata = header(table, ".rdata");
        characteristics_at(bytes, rdata).copy_from_slice(&0u32.to_le_bytes());
    });
    let errors = section_errors(&report);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("section `INIT` is not discardable"))
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("section `.rdata` has empty characteristics"))
    );
}

#[test]
fn lower_case_page_is_flagged_and_treated_as_resident() {
    let report = rewrite("lower-page", |bytes, table| {
        let at = header(table, "PAGE");
        bytes[at..at + 4].copy_from_slice(b"page");
    });
    let errors = section_errors(&report);
    // Two findings: the spelling, and (as the loader keeps `page` resident) the missing
    // not-paged flag on a section that is now resident code.
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("section `page` looks pageable but is not upper-case"))
    );
    let functions = &report.footprint.functions;
    let configure = functions
        .iter()
        .find(|f| &*f.symbol == "ConfigureQueues")
        .expect("ConfigureQueues");
    assert_eq!(&*configure.section, "page");
    assert_eq!(configure.residency, pagecheck::image::Residency::Resident);
}

#[test]
fn non_utf8_section_name_does_not_panic() {
    let image = common::c("clean");
    let mut bytes = std::fs::read(&image.image).expect("read");
    let at = header(&headers(&bytes), ".rdata");
    // "pA" + an invalid UTF-8 byte + "GE": lossy decoding puts a 3-byte U+FFFD where a
    // 4-byte str slice used to end.
    bytes[at..at + 8].copy_from_slice(b"pA\xffGE\0\0\0");
    let dir = common::scratch("sections-utf8");
    let path = dir.join("clean.sys");
    std::fs::write(&path, &bytes).expect("write");
    common::copy_to(&image.pdb, &dir, "clean.pdb");
    let out = run([&path]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(!out.stderr.contains("panicked"));
}
