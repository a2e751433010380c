//! `callbacks!`: the registration table. Parsing and expansion on `proc_macro2` tokens, so
//! unit tests can run them outside the compiler.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, Ident, Token, Type, Visibility, braced, bracketed, parenthesized};

/// The whole invocation: the list declaration, then one block per structure.
pub(crate) struct Table {
    list_attrs: Vec<Attribute>,
    list_vis: Visibility,
    list_name: Ident,
    id_type: Type,
    blocks: Vec<Block>,
}

/// `fn name(STRUCTURE[(kind)]) { field: function => id, ... }`.
struct Block {
    attrs: Vec<Attribute>,
    vis: Visibility,
    name: Ident,
    structure: Ident,
    kind: Option<Ident>,
    entries: Vec<Entry>,
}

/// `field: function => id`.
struct Entry {
    field: Ident,
    function: Ident,
    id: Expr,
}

impl Parse for Entry {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let field = input.parse()?;
        input.parse::<Token![:]>()?;
        let function = input.parse()?;
        input.parse::<Token![=>]>()?;
        let id = input.parse()?;
        Ok(Entry {
            field,
            function,
            id,
        })
    }
}

impl Parse for Block {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        input.parse::<Token![fn]>()?;
        let name = input.parse()?;
        let signature;
        parenthesized!(signature in input);
        let structure = signature.parse()?;
        let kind = if signature.is_empty() {
            None
        } else {
            let kind;
            parenthesized!(kind in signature);
            let kind = kind.parse()?;
            if !signature.is_empty() {
                return Err(signature.error(
                    "expected `STRUCTURE` or `STRUCTURE(kind)`, e.g. `WDF_IO_QUEUE_CONFIG(passive)`",
                ));
            }
            Some(kind)
        };
        let body;
        braced!(body in input);
        let entries = Punctuated::<Entry, Token![,]>::parse_terminated(&body)?
            .into_iter()
            .collect();
        Ok(Block {
            attrs,
            vis,
            name,
            structure,
            kind,
            entries,
        })
    }
}

impl Parse for Table {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let list_attrs = input.call(Attribute::parse_outer)?;
        let list_vis = input.parse()?;
        input.parse::<Token![const]>().map_err(|error| {
            syn::Error::new(
                error.span(),
                "`callbacks!` starts with the list of registrations: \
                 `const NAME: [IdType];`",
            )
        })?;
        let list_name = input.parse()?;
        input.parse::<Token![:]>()?;
        let id_type;
        bracketed!(id_type in input);
        let id_type = id_type.parse()?;
        input.parse::<Token![;]>()?;
        let mut blocks = Vec::new();
        while !input.is_empty() {
            blocks.push(input.parse()?);
        }
        Ok(Table {
            list_attrs,
            list_vis,
            list_name,
            id_type,
            blocks,
        })
    }
}

impl Block {
    /// `::pagewise_roles::config::STRUCTURE[::kind]::field`, the slot of one field, with
    /// every token at the field's span: a function the slot does not accept, or a field
    /// the structure has no slot for, is reported at the field name.
    fn slot(&self, field: &Ident) -> TokenStream {
        let structure = &self.structure;
        let kind = self.kind.iter();
        quote_spanned!(field.span()=>
            ::pagewise_roles::config::#structure #(::#kind)* ::#field
        )
    }
}

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    match syn::parse2::<Table>(input) {
        Ok(table) => expand_table(&table),
        Err(error) => error.to_compile_error(),
    }
}

fn expand_table(table: &Table) -> TokenStream {
    let mut items = TokenStream::new();
    let mut registrations = Vec::new();
    for block in &table.blocks {
        let Block {
            attrs,
            vis,
            name,
            structure,
            entries,
            ..
        } = block;
        let stores = entries.iter().map(|entry| {
            let Entry {
                field, function, ..
            } = entry;
            let slot = block.slot(field);
            // One local type per field, named after it, whose slot is the field's: the
            // function can be stored only where its `Field` impl writes, and that impl
            // writes exactly this field. Nothing outside this function can name the type.
            // The call carries the field's span, so a placement the slot does not accept
            // is reported at the field name.
            let store = quote_spanned!(field.span()=>
                <#function as ::pagewise_roles::Placed>::store::<#field>(&mut structure);
            );
            quote! {
                {
                    #[allow(non_camel_case_types)]
                    enum #field {}
                    unsafe impl ::pagewise_roles::Field for #field {
                        type Slot = #slot;
                        type Structure = #structure;
                        type Fn = <#function as ::pagewise_roles::Placed>::Fn;
                        #[inline(always)]
                        #[allow(clippy::inline_always)]
                        fn store(target: &mut #structure, value: Self::Fn) {
                            target.#field = ::core::option::Option::Some(value);
                        }
                    }
                    #store
                }
            }
        });
        items.extend(quote! {
            #(#attrs)*
            #[inline(always)]
            #vis fn #name(base: #structure) -> #structure {
                let mut structure = base;
                #(#stores)*
                structure
            }
        });
        for entry in entries {
            let Entry {
                field,
                function,
                id,
            } = entry;
            // The slot is checked where the function is stored above, once.
            registrations.push(quote_spanned!(field.span()=>
                ::pagewise_roles::Registration::__new::<#function>(#id)
            ));
        }
    }
    let Table {
        list_attrs,
        list_vis,
        list_name,
        id_type,
        ..
    } = table;
    let count = registrations.len();
    let list = quote_spanned!(Span::call_site()=>
        #(#list_attrs)*
        #list_vis const #list_name: [::pagewise_roles::Registration<#id_type>; #count] = [
            #(#registrations,)*
        ];
    );
    items.extend(list);
    items
}
