//! The expansion of the placement attributes, on `proc_macro2` tokens so that unit tests
//! can run it outside the compiler.

use pagewise_roles::{Role, section};
use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, Ident, ItemFn, Meta, ReturnType, Type};

/// Which attribute was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `#[init]`
    Init,
    /// `#[paged]`, `#[paged(power_down)]`
    Paged,
    /// `#[resident(power_up)]`, `#[resident(dispatch)]`
    Resident,
}

impl Kind {
    fn attribute_name(self) -> &'static str {
        match self {
            Kind::Init => "init",
            Kind::Paged => "paged",
            Kind::Resident => "resident",
        }
    }
}

/// Expands one placement attribute. On error the result is a spanned `compile_error!`
/// followed by the function unchanged, so that the one error is all the user sees (no
/// follow-up "cannot find function" errors at the function's call sites).
pub(crate) fn expand(kind: Kind, attr: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(kind, attr, item.clone()) {
        Ok(tokens) => tokens,
        Err(error) => {
            let mut tokens = error.to_compile_error();
            tokens.extend(item);
            tokens
        }
    }
}

pub(crate) fn try_expand(
    kind: Kind,
    attr: TokenStream,
    item: TokenStream,
) -> syn::Result<TokenStream> {
    let role = parse_role(kind, attr)?;
    let item: syn::Item = syn::parse2(item)?;
    let syn::Item::Fn(mut function) = item else {
        return Err(syn::Error::new_spanned(
            item,
            format!(
                "`#[{}]` places a function: put it on a free `fn` item with a body",
                kind.attribute_name()
            ),
        ));
    };
    check_signature(role, &function)?;
    check_attributes(role, &function.attrs)?;

    let name = function.sig.ident.clone();
    let cfgs = cfg_attributes(&function.attrs);
    let vis = function.vis.clone();
    let fn_type = fn_pointer_type(&function)?;

    place(role, &mut function)?;

    let role_variant = format_ident!("{role:?}");
    let role_name = role.name();
    let name_str = name.unraw().to_string();
    let records = section::ROLE_RECORDS;
    let marker_doc = marker_doc(&name_str, role);
    let record_doc = format!(
        " The role record of `{name_str}`, kept in the image's `{records}` section for `cargo pagecheck`."
    );
    let safety_doc = format!(
        " SAFETY: `{}` placed `{name_str}` as `{role_name}` just above; this impl and \
         the function come from the same expansion.",
        spelling(role)
    );

    let placed = quote! {
        #[doc = #safety_doc]
        #(#cfgs)*
        unsafe impl ::pagewise_roles::Placed for #name {
            type Role = ::pagewise_roles::role::#role_variant;
            type Fn = #fn_type;
            const ADDRESS: *const () = #name as *const ();
            const NAME: &'static str = #name_str;
            #[inline(always)]
            #[allow(clippy::inline_always)]
            fn store<F>(target: &mut F::Structure)
            where
                F: ::pagewise_roles::Field<Fn = Self::Fn>,
                <F::Slot as ::pagewise_roles::Slot>::Needs:
                    ::pagewise_roles::Accepts<Self::Role>,
            {
                F::store(target, #name);
            }
        }

        #(#cfgs)*
        #[allow(dead_code)]
        impl #name {
            #[doc = #record_doc]
            #vis const ROLE_RECORD: &'static ::pagewise_roles::RoleRecord = {
                #[used]
                #[cfg_attr(not(target_vendor = "apple"), unsafe(link_section = #records))]
                static RECORD: ::pagewise_roles::RoleRecord = ::pagewise_roles::RoleRecord::new(
                    ::pagewise_roles::Role::#role_variant,
                    #name as *const (),
                );
                &RECORD
            };
        }
    };
    let marker = quote! {
        #[doc = #marker_doc]
        #(#cfgs)*
        #[allow(non_camel_case_types, dead_code)]
        #vis enum #name {}
    };

    if is_callback(&function) {
        // A callback's name stands for its marker type only: the function is defined
        // inside an anonymous `const` block, where nothing outside can name it, so it can
        // be stored only through `Placed::store`, into a field whose slot accepts it.
        // The user's documentation goes on the marker too, which is what rustdoc shows.
        let docs: Vec<&Attribute> = function
            .attrs
            .iter()
            .filter(|attr| attr.path().is_ident("doc"))
            .collect();
        let separator = (!docs.is_empty()).then(|| quote!(#[doc = ""]));
        function.vis = syn::Visibility::Inherited;
        Ok(quote! {
            #(#docs)*
            #separator
            #marker

            #(#cfgs)*
            const _: () = {
                #function

                #placed
            };
        })
    } else {
        Ok(quote! {
            #function

            #marker

            #placed
        })
    }
}

/// Puts `function` in its role's section: the section attribute and `#[inline(never)]` for
/// `INIT`/`PAGE*`, and `paged_code!()` as the first statement of `PAGE*` functions.
fn place(role: Role, function: &mut ItemFn) -> syn::Result<()> {
    let mut placement = TokenStream::new();
    if !role.is_resident() {
        let section = role.section();
        // Mach-O takes section names as "segment,section" and rejects these; on an Apple
        // host (tests only, no driver runs there) the functions stay in the default section.
        placement.extend(quote! {
            #[cfg_attr(not(target_vendor = "apple"), unsafe(link_section = #section))]
        });
        if !has_inline_never(&function.attrs) {
            placement.extend(quote!(#[inline(never)]));
        }
    }
    if matches!(role, Role::Paged | Role::PowerDown) {
        function
            .block
            .stmts
            .insert(0, syn::parse_quote!(::wdk::paged_code!();));
    }
    // The placement attributes go after the user's own, so `#[doc]` stays first.
    let placement: Vec<Attribute> = Attribute::parse_outer.parse2(placement)?;
    function.attrs.extend(placement);
    Ok(())
}

/// A function with an `extern` ABI is a callback: something the framework calls through a
/// pointer, which the driver stores in a configuration structure. Rust-ABI functions are
/// helpers the driver calls by name; they cannot go into a WDF field (the pointer types
/// differ), so they keep their name as a value.
fn is_callback(function: &ItemFn) -> bool {
    function.sig.abi.is_some()
}

fn marker_doc(name: &str, role: Role) -> String {
    let role_name = role.name();
    let section = role.section();
    let placed = if role.is_resident() {
        // Why no section attribute: see the crate docs.
        format!("resident: no section attribute, the compiler's default `{section}` is never paged")
    } else {
        format!("section `{section}`")
    };
    format!(
        " Placement marker of the function `{name}` (role `{role_name}`, {placed}): \
         register `{name}` in a `callbacks!` table, which checks it against the slot \
         (a callback's name stands for this type only: the function itself cannot be \
         named outside the table)."
    )
}

/// How the user writes the attribute for `role`, for messages.
fn spelling(role: Role) -> &'static str {
    match role {
        Role::Init => "#[init]",
        Role::Paged => "#[paged]",
        Role::PowerDown => "#[paged(power_down)]",
        Role::PowerUp => "#[resident(power_up)]",
        Role::Dispatch => "#[resident(dispatch)]",
    }
}

/// The role the attribute's arguments select.
fn parse_role(kind: Kind, attr: TokenStream) -> syn::Result<Role> {
    let argument = parse_single_ident(kind, attr)?;
    let argument_name = argument.as_ref().map(Ident::to_string);
    match (kind, argument_name.as_deref()) {
        (Kind::Init, None) => Ok(Role::Init),
        (Kind::Paged, None) => Ok(Role::Paged),
        (Kind::Paged, Some("power_down")) => Ok(Role::PowerDown),
        (Kind::Resident, Some("power_up")) => Ok(Role::PowerUp),
        (Kind::Resident, Some("dispatch")) => Ok(Role::Dispatch),
        (Kind::Resident, None) => Err(syn::Error::new(
            Span::call_site(),
            "`#[resident]` needs the reason the function stays resident: \
             `#[resident(power_up)]` (return-to-D0 path) or `#[resident(dispatch)]` \
             (may run at DISPATCH_LEVEL or under a spin lock)",
        )),
        (Kind::Paged, Some(other @ ("power_up" | "dispatch"))) => Err(syn::Error::new_spanned(
            &argument,
            format!("`{other}` code must stay resident: write `#[resident({other})]`"),
        )),
        (Kind::Resident, Some("power_down")) => Err(syn::Error::new_spanned(
            &argument,
            "the power-down path has its own section: write `#[paged(power_down)]` (a \
             resident function may also be registered in a power-down slot)",
        )),
        (_, Some(other)) => Err(syn::Error::new_spanned(
            &argument,
            format!("unknown argument `{other}`: {}", usage(kind)),
        )),
    }
}

fn usage(kind: Kind) -> &'static str {
    match kind {
        Kind::Init => "`#[init]` takes no arguments",
        Kind::Paged => {
            "write `#[paged]` (section PAGE) or `#[paged(power_down)]` (section PAGEPWR)"
        }
        Kind::Resident => "write `#[resident(power_up)]` or `#[resident(dispatch)]`",
    }
}

/// Nothing, or exactly one identifier.
fn parse_single_ident(kind: Kind, attr: TokenStream) -> syn::Result<Option<Ident>> {
    let parser = |input: syn::parse::ParseStream| -> syn::Result<Option<Ident>> {
        if input.is_empty() {
            return Ok(None);
        }
        let ident = Ident::parse_any(input).map_err(|error| {
            syn::Error::new(
                error.span(),
                format!("expected a role name: {}", usage(kind)),
            )
        })?;
        if !input.is_empty() {
            return Err(input.error(format!("unexpected tokens: {}", usage(kind))));
        }
        Ok(Some(ident))
    };
    parser.parse2(attr)
}

fn check_signature(role: Role, function: &ItemFn) -> syn::Result<()> {
    let attribute = spelling(role);
    let sig = &function.sig;
    if let Some(constness) = &sig.constness {
        return Err(syn::Error::new_spanned(
            constness,
            format!(
                "`{attribute}` cannot place a `const fn`: the compiler may evaluate or \
                 inline it anywhere, so its code has no one section"
            ),
        ));
    }
    if let Some(asyncness) = &sig.asyncness {
        return Err(syn::Error::new_spanned(
            asyncness,
            format!(
                "`{attribute}` cannot place an `async fn`: its body runs in the future's \
                 `poll`, which the section attribute would not cover"
            ),
        ));
    }
    let generics: Option<&dyn ToTokens> = if sig.generics.params.is_empty() {
        sig.generics
            .where_clause
            .as_ref()
            .map(|w| w as &dyn ToTokens)
    } else {
        Some(&sig.generics)
    };
    if let Some(generics) = generics {
        return Err(syn::Error::new_spanned(
            generics,
            format!(
                "`{attribute}` cannot place a generic function: a callback slot takes one \
                 function pointer and the role record one address; write lifetimes elided"
            ),
        ));
    }
    if let Some(receiver) = sig.receiver() {
        return Err(syn::Error::new_spanned(
            receiver,
            format!(
                "`{attribute}` places free functions only: the attribute also emits a \
                 marker type and a record, which cannot live in an `impl` block"
            ),
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new_spanned(
            variadic,
            format!("`{attribute}` cannot place a variadic function"),
        ));
    }
    let impl_trait = sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(typed) => Some(&*typed.ty),
            FnArg::Receiver(_) => None,
        })
        .chain(match &sig.output {
            ReturnType::Type(_, ty) => Some(&**ty),
            ReturnType::Default => None,
        })
        .find(|ty| matches!(ty, Type::ImplTrait(_)));
    if let Some(ty) = impl_trait {
        return Err(syn::Error::new_spanned(
            ty,
            format!(
                "`{attribute}` cannot place a function with `impl Trait` in its signature: \
                 it has no single function-pointer type"
            ),
        ));
    }
    Ok(())
}

/// Rejects attributes that fight the placement: another section, or inlining of a function
/// whose section is the point.
fn check_attributes(role: Role, attrs: &[Attribute]) -> syn::Result<()> {
    let attribute = spelling(role);
    for attr in attrs {
        if any_meta(
            &attr.meta,
            &|meta| matches!(meta, Meta::NameValue(nv) if nv.path.is_ident("link_section")),
        ) {
            return Err(syn::Error::new_spanned(
                attr,
                format!(
                    "`{attribute}` chooses the function's section itself; remove this \
                     `link_section`"
                ),
            ));
        }
        // A top-level `#[inline(never)]` is what the attribute adds anyway; any other
        // inlining attribute, or one under `cfg_attr`, would defeat or duplicate it.
        let inlining = !is_inline_never(&attr.meta)
            && any_meta(&attr.meta, &|meta| meta.path().is_ident("inline"));
        if !role.is_resident() && inlining {
            return Err(syn::Error::new_spanned(
                attr,
                format!(
                    "`{attribute}` functions are never inlined: an inlined copy runs from \
                     its caller's section, not from `{}`",
                    role.section()
                ),
            ));
        }
    }
    Ok(())
}

/// Whether `meta`, or an attribute inside it through `unsafe(..)` or `cfg_attr(..)`,
/// satisfies `test`.
fn any_meta(meta: &Meta, test: &dyn Fn(&Meta) -> bool) -> bool {
    if test(meta) {
        return true;
    }
    match meta {
        Meta::List(list) if list.path.is_ident("unsafe") => list
            .parse_args::<Meta>()
            .is_ok_and(|inner| any_meta(&inner, test)),
        Meta::List(list) if list.path.is_ident("cfg_attr") => {
            cfg_attr_parts(list).is_some_and(|(_, metas)| metas.iter().any(|m| any_meta(m, test)))
        }
        _ => false,
    }
}

/// `cfg_attr(predicate, attr, ...)` split into its predicate and attributes.
fn cfg_attr_parts(list: &syn::MetaList) -> Option<(TokenStream, Vec<Meta>)> {
    let parser = |input: syn::parse::ParseStream| {
        let predicate: Meta = input.parse()?;
        let _: syn::Token![,] = input.parse()?;
        let metas = syn::punctuated::Punctuated::<Meta, syn::Token![,]>::parse_terminated(input)?;
        Ok((predicate.into_token_stream(), metas.into_iter().collect()))
    };
    parser.parse2(list.tokens.clone()).ok()
}

fn is_inline_never(meta: &Meta) -> bool {
    match meta {
        Meta::List(list) if list.path.is_ident("inline") => list
            .parse_args::<Ident>()
            .is_ok_and(|ident| ident == "never"),
        _ => false,
    }
}

fn has_inline_never(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| is_inline_never(&attr.meta))
}

/// The function's `#[cfg]`s (and the `cfg` parts of its `#[cfg_attr]`s), repeated on the
/// generated items so that they exist exactly when the function does.
fn cfg_attributes(attrs: &[Attribute]) -> Vec<TokenStream> {
    let mut out = Vec::new();
    for attr in attrs {
        match &attr.meta {
            Meta::List(list) if list.path.is_ident("cfg") => out.push(attr.to_token_stream()),
            Meta::List(list) if list.path.is_ident("cfg_attr") => {
                let Some((predicate, metas)) = cfg_attr_parts(list) else {
                    continue;
                };
                let cfgs: Vec<&Meta> = metas.iter().filter(|m| m.path().is_ident("cfg")).collect();
                if !cfgs.is_empty() {
                    let span = attr.span();
                    out.push(quote_spanned!(span=> #[cfg_attr(#predicate, #(#cfgs),*)]));
                }
            }
            _ => {}
        }
    }
    out
}

/// `unsafe extern "C" fn(A, B) -> R` from the function's signature: only the types of the
/// parameters matter, so any pattern (`_`, `mut x`, tuples) is fine.
fn fn_pointer_type(function: &ItemFn) -> syn::Result<TokenStream> {
    let sig = &function.sig;
    let unsafety = &sig.unsafety;
    let abi = &sig.abi;
    let output = &sig.output;
    let mut inputs = Vec::new();
    for arg in &sig.inputs {
        match arg {
            FnArg::Typed(typed) => {
                let attrs = &typed.attrs;
                let ty = &typed.ty;
                inputs.push(quote!(#(#attrs)* #ty));
            }
            FnArg::Receiver(receiver) => {
                return Err(syn::Error::new_spanned(receiver, "unexpected receiver"));
            }
        }
    }
    Ok(quote!(#unsafety #abi fn(#(#inputs),*) #output))
}
