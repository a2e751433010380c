//! Unit tests of the expansion: snapshots of every attribute form, and every rejection.
//!
//! The snapshots live in `tests/expand/`: each `<case>.rs` holds functions with placement
//! attributes, `<case>.expanded.rs` the file after expansion, formatted by prettyplease.
//! `PAGEWISE_BLESS=1 cargo test -p pagewise-macros` rewrites the `.expanded.rs` files.

use crate::expand::{Kind, expand, try_expand};
use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// Which placement attribute `attr` is, if any (`#[paged]` or `#[pagewise_macros::paged]`).
fn placement_kind(attr: &syn::Attribute) -> Option<Kind> {
    let name = attr.path().segments.last()?.ident.to_string();
    match name.as_str() {
        "init" => Some(Kind::Init),
        "paged" => Some(Kind::Paged),
        "resident" => Some(Kind::Resident),
        _ => None,
    }
}

/// Expands every placement attribute in a source file, as the compiler would.
fn expand_source(source: &str) -> String {
    let file: syn::File = syn::parse_str(source).expect("snapshot input parses");
    let mut items = Vec::new();
    for item in file.items {
        let syn::Item::Fn(mut function) = item else {
            items.push(item);
            continue;
        };
        let Some(index) = function
            .attrs
            .iter()
            .position(|attr| placement_kind(attr).is_some())
        else {
            items.push(syn::Item::Fn(function));
            continue;
        };
        let attr = function.attrs.remove(index);
        let kind = placement_kind(&attr).expect("found above");
        let args = match attr.meta {
            syn::Meta::Path(_) => TokenStream::new(),
            syn::Meta::List(list) => list.tokens,
            syn::Meta::NameValue(_) => panic!("placement attributes take no `= value`"),
        };
        let expanded = expand(kind, args, function.into_token_stream());
        let expanded: syn::File = syn::parse2(expanded).expect("expansion parses as items");
        items.extend(expanded.items);
    }
    prettyplease::unparse(&syn::File {
        shebang: None,
        attrs: file.attrs,
        items,
    })
}

/// A line diff (longest common subsequence), `-` expected, `+` actual.
fn line_diff(expected: &str, actual: &str) -> String {
    let old: Vec<&str> = expected.lines().collect();
    let new: Vec<&str> = actual.lines().collect();
    let mut common = vec![vec![0usize; new.len() + 1]; old.len() + 1];
    for i in (0..old.len()).rev() {
        for j in (0..new.len()).rev() {
            common[i][j] = if old[i] == new[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < old.len() || j < new.len() {
        if i < old.len() && j < new.len() && old[i] == new[j] {
            let _ = writeln!(out, "  {}", old[i]);
            i += 1;
            j += 1;
        } else if j < new.len() && (i == old.len() || common[i][j + 1] >= common[i + 1][j]) {
            let _ = writeln!(out, "+ {}", new[j]);
            j += 1;
        } else {
            let _ = writeln!(out, "- {}", old[i]);
            i += 1;
        }
    }
    out
}

fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/expand")
}

fn snapshot_inputs() -> Vec<PathBuf> {
    let mut inputs: Vec<PathBuf> = fs::read_dir(snapshot_dir())
        .expect("tests/expand exists")
        .map(|entry| entry.expect("readable directory").path())
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // The snapshot files are ours and all lower-case.
            #[allow(clippy::case_sensitive_file_extension_comparisons)]
            let is_input = name.ends_with(".rs") && !name.ends_with(".expanded.rs");
            is_input
        })
        .collect();
    inputs.sort();
    inputs
}

#[test]
fn expansions_match_snapshots() {
    let bless = std::env::var_os("PAGEWISE_BLESS").is_some_and(|v| v == "1");
    let inputs = snapshot_inputs();
    // One snapshot per attribute form at least.
    for form in [
        "init",
        "paged",
        "paged_power_down",
        "resident_power_up",
        "resident_dispatch",
    ] {
        assert!(
            inputs
                .iter()
                .any(|p| p.file_stem().is_some_and(|s| s == form)),
            "missing snapshot input tests/expand/{form}.rs"
        );
    }
    let mut failures = Vec::new();
    for input in &inputs {
        let source = fs::read_to_string(input).expect("readable input");
        let actual = expand_source(&source);
        let expected_path = input.with_extension("expanded.rs");
        if bless {
            fs::write(&expected_path, &actual).expect("writable snapshot");
            continue;
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "{} differs from the expansion of {} (-expected +actual; PAGEWISE_BLESS=1 to accept):\n{}",
                expected_path.display(),
                input.display(),
                line_diff(&expected, &actual)
            ));
        }
    }
    // A snapshot without its input would never be checked again.
    for entry in fs::read_dir(snapshot_dir()).expect("tests/expand exists") {
        let path = entry.expect("readable directory").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(stem) = name.strip_suffix(".expanded.rs") {
            assert!(
                snapshot_dir().join(format!("{stem}.rs")).exists(),
                "{} has no input file",
                path.display()
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn line_diff_marks_changed_lines() {
    let diff = line_diff("a\nb\nc\n", "a\nx\nc\nd\n");
    assert_eq!(diff, "  a\n+ x\n- b\n  c\n+ d\n");
}

/// The error message `try_expand` gives for `#[<kind>(<attr>)] <item>`.
fn error(kind: Kind, attr: TokenStream, item: TokenStream) -> String {
    match try_expand(kind, attr, item) {
        Ok(tokens) => panic!("expected an error, got {tokens}"),
        Err(error) => error.to_string(),
    }
}

fn plain_fn() -> TokenStream {
    quote!(
        fn f() {}
    )
}

#[test]
fn arguments_select_the_role_and_others_are_rejected() {
    let role_of = |kind, attr: TokenStream| {
        let tokens = try_expand(kind, attr, plain_fn()).expect("valid");
        let file: syn::File = syn::parse2(tokens).expect("items");
        let syn::Item::Impl(placed) = &file.items[2] else {
            panic!("third item is the Placed impl");
        };
        placed.items[0].to_token_stream().to_string()
    };
    assert!(role_of(Kind::Init, quote!()).contains("role :: Init"));
    assert!(role_of(Kind::Paged, quote!()).contains("role :: Paged"));
    assert!(role_of(Kind::Paged, quote!(power_down)).contains("role :: PowerDown"));
    assert!(role_of(Kind::Resident, quote!(power_up)).contains("role :: PowerUp"));
    assert!(role_of(Kind::Resident, quote!(dispatch)).contains("role :: Dispatch"));

    let cases = [
        (Kind::Paged, quote!(foo), "unknown argument `foo`"),
        (
            Kind::Paged,
            quote!(power_up),
            "write `#[resident(power_up)]`",
        ),
        (
            Kind::Paged,
            quote!(dispatch),
            "write `#[resident(dispatch)]`",
        ),
        (Kind::Resident, quote!(), "`#[resident]` needs the reason"),
        (
            Kind::Resident,
            quote!(power_down),
            "write `#[paged(power_down)]`",
        ),
        (
            Kind::Resident,
            quote!(power_up, dispatch),
            "unexpected tokens",
        ),
        (Kind::Resident, quote!("dispatch"), "expected a role name"),
        (Kind::Init, quote!(paged), "`#[init]` takes no arguments"),
        (Kind::Paged, quote!(power_down = true), "unexpected tokens"),
    ];
    for (kind, attr, expected) in cases {
        let message = error(kind, attr.clone(), plain_fn());
        assert!(
            message.contains(expected),
            "{kind:?}({attr}): {message:?} lacks {expected:?}"
        );
    }
}

fn tokens(source: &str) -> TokenStream {
    source.parse().expect("test source tokenizes")
}

#[test]
fn functions_that_cannot_be_placed_are_rejected() {
    let cases = [
        ("struct S;", "put it on a free `fn` item"),
        ("const fn f() {}", "cannot place a `const fn`"),
        ("async fn f() {}", "cannot place an `async fn`"),
        ("fn f<T>(t: T) {}", "cannot place a generic function"),
        ("fn f<'a>(t: &'a u8) {}", "cannot place a generic function"),
        (
            "fn f<const N: usize>() {}",
            "cannot place a generic function",
        ),
        (
            "fn f() where u8: Copy {}",
            "cannot place a generic function",
        ),
        ("fn f(&self) {}", "places free functions only"),
        ("fn f(self: Box<Self>) {}", "places free functions only"),
        ("unsafe extern \"C\" fn f(a: i32, args: ...) {}", "variadic"),
        ("fn f(g: impl Fn()) {}", "`impl Trait` in its signature"),
        ("fn f() -> impl Copy { 0 }", "`impl Trait` in its signature"),
        (
            "#[link_section = \"PAGE\"] fn f() {}",
            "remove this `link_section`",
        ),
        (
            "#[unsafe(link_section = \".text\")] fn f() {}",
            "remove this `link_section`",
        ),
        (
            "#[cfg_attr(windows, inline, unsafe(link_section = \"X\"))] fn f() {}",
            "remove this `link_section`",
        ),
        ("#[inline] fn f() {}", "never inlined"),
        ("#[inline(always)] fn f() {}", "never inlined"),
        (
            "#[cfg_attr(debug_assertions, inline)] fn f() {}",
            "never inlined",
        ),
        (
            "#[cfg_attr(all(), inline(never))] fn f() {}",
            "never inlined",
        ),
    ];
    for (item, expected) in cases {
        let message = error(Kind::Paged, quote!(), tokens(item));
        assert!(
            message.contains(expected),
            "{item}: {message:?} lacks {expected:?}"
        );
    }
    // Resident functions may be inlined: the copy that slots point at, and that the record
    // names, is the out-of-line one in `.text`.
    assert!(
        try_expand(
            Kind::Resident,
            quote!(dispatch),
            tokens("#[inline] fn f() {}")
        )
        .is_ok()
    );
    // `#[inline(never)]` is what the attribute adds anyway.
    assert!(try_expand(Kind::Init, quote!(), tokens("#[inline(never)] fn f() {}")).is_ok());
}

#[test]
fn an_error_keeps_the_function_so_that_it_is_the_only_error() {
    let item = quote!(
        fn keep_me(value: u32) -> u32 {
            value
        }
    );
    let out = expand(Kind::Paged, quote!(bogus), item.clone()).to_string();
    assert!(out.starts_with(":: core :: compile_error !"), "{out}");
    assert!(out.ends_with(&item.to_string()), "{out}");
    assert!(!out.contains("Placed"), "{out}");
}

#[test]
fn expansion_uses_the_names_defined_in_pagewise_roles() {
    use pagewise_roles::{Role, section};
    for (kind, attr, role) in [
        (Kind::Init, quote!(), Role::Init),
        (Kind::Paged, quote!(), Role::Paged),
        (Kind::Paged, quote!(power_down), Role::PowerDown),
        (Kind::Resident, quote!(power_up), Role::PowerUp),
        (Kind::Resident, quote!(dispatch), Role::Dispatch),
    ] {
        let out = try_expand(kind, attr, plain_fn())
            .expect("valid")
            .to_string();
        let section_attribute = format!("link_section = \"{}\"", role.section());
        assert_eq!(
            out.contains(&section_attribute),
            !role.is_resident(),
            "{role:?}: {out}"
        );
        assert!(
            out.contains(&format!("link_section = \"{}\"", section::ROLE_RECORDS)),
            "{out}"
        );
        assert!(out.contains(&format!("Role :: {role:?}")), "{out}");
        assert_eq!(
            out.contains("paged_code"),
            matches!(role, Role::Paged | Role::PowerDown),
            "{role:?}: {out}"
        );
        assert_eq!(
            out.contains("inline (never)"),
            !role.is_resident(),
            "{role:?}: {out}"
        );
    }
}

/// `callbacks!`: what a table expands to, and what it refuses to parse.
mod callbacks_table {
    use crate::callbacks::expand;
    use quote::quote;

    fn expanded(input: proc_macro2::TokenStream) -> String {
        expand(input).to_string()
    }

    #[test]
    fn one_function_per_block_and_one_list_entry_per_field() {
        let out = expanded(quote! {
            pub(crate) const REGISTERED: [u16];
            fn power(WDF_PNPPOWER_EVENT_CALLBACKS) {
                EvtDeviceD0Entry: entry => 6,
                EvtDeviceD0Exit: exit => 7,
            }
            fn queue(WDF_IO_QUEUE_CONFIG(passive)) {
                EvtIoDeviceControl: control => 15
            }
        });
        assert!(
            out.contains(
                "fn power (base : WDF_PNPPOWER_EVENT_CALLBACKS) -> WDF_PNPPOWER_EVENT_CALLBACKS"
            ),
            "{out}"
        );
        assert!(out.contains("inline (always)"), "{out}");
        // The slot is the structure's field, through pagewise_roles::config, in the field
        // type the block defines for it, which stores into that field and no other.
        assert!(
            out.contains(
                "enum EvtDeviceD0Entry { } unsafe impl :: pagewise_roles :: Field for EvtDeviceD0Entry { \
                 type Slot = :: pagewise_roles :: config :: WDF_PNPPOWER_EVENT_CALLBACKS :: EvtDeviceD0Entry ;"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "target . EvtDeviceD0Entry = :: core :: option :: Option :: Some (value) ;"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "type Slot = :: pagewise_roles :: config :: WDF_IO_QUEUE_CONFIG :: passive :: EvtIoDeviceControl ;"
            ),
            "{out}"
        );
        assert!(
            out.contains("pub (crate) const REGISTERED : [:: pagewise_roles :: Registration < u16 > ; 3usize]"),
            "{out}"
        );
        assert_eq!(out.matches("Registration :: __new").count(), 3, "{out}");
        // The checked store is the only place a slot is named: the list is not checked
        // twice, so a mismatch is reported once. Nothing hands the function out as a value.
        assert_eq!(
            out.matches(":: store :: < EvtDevice").count()
                + out.matches(":: store :: < EvtIo").count(),
            3,
            "{out}"
        );
        assert_eq!(out.matches(":: Placed > :: store").count(), 3, "{out}");
    }

    #[test]
    fn the_list_comes_first_and_blocks_are_well_formed() {
        let missing_list = expanded(quote! {
            fn power(WDF_PNPPOWER_EVENT_CALLBACKS) { EvtDeviceD0Entry: entry => 6 }
        });
        assert!(
            missing_list.contains("starts with the list of registrations"),
            "{missing_list}"
        );
        let two_kinds = expanded(quote! {
            const REGISTERED: [u16];
            fn queue(WDF_IO_QUEUE_CONFIG(passive) extra) { EvtIoDeviceControl: control => 15 }
        });
        assert!(
            two_kinds.contains("expected `STRUCTURE` or `STRUCTURE(kind)`"),
            "{two_kinds}"
        );
        let no_id = expanded(quote! {
            const REGISTERED: [u16];
            fn power(WDF_PNPPOWER_EVENT_CALLBACKS) { EvtDeviceD0Entry: entry }
        });
        assert!(no_id.contains("compile_error"), "{no_id}");
    }
}
