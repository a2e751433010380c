//! Compile tests: correctly placed functions register and run in every kind of slot, and
//! every misplacement or misuse is a compile error with a message that says why.
//!
//! The `.stderr` files are pinned to the toolchain in use (rustc 1.95); regenerate them with
//! `TRYBUILD=overwrite cargo test -p pagewise-macros --test ui` after a toolchain change.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
