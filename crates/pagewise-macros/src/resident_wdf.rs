//! `resident_wdf_call!`: a WDF call for resident code, without a panic path.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, Token};

/// `WdfFunctionName, arg, arg, ...`, as `call_unsafe_wdf_function_binding!` takes it.
struct Call {
    function: Ident,
    arguments: Punctuated<Expr, Token![,]>,
}

impl Parse for Call {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let function = input.parse()?;
        let arguments = if input.is_empty() {
            Punctuated::new()
        } else {
            input.parse::<Token![,]>()?;
            Punctuated::parse_terminated(input)?
        };
        Ok(Call {
            function,
            arguments,
        })
    }
}

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let Call {
        function,
        arguments,
    } = match syn::parse2::<Call>(input) {
        Ok(call) => call,
        Err(error) => return error.to_compile_error(),
    };
    // The names wdk-sys generates for every WDF function, derived the way
    // windows-drivers-rs' own `call_unsafe_wdf_function_binding!` derives them.
    let pointer_type = format_ident!(
        "PFN_{}",
        function.to_string().to_uppercase(),
        span = function.span()
    );
    let index = format_ident!("{function}TableIndex", span = function.span());
    let arguments = arguments.iter();
    quote! {
        {
            const INDEX: usize = {
                let index = ::wdk_sys::_WDFFUNCENUM::#index;
                ::core::assert!(index >= 0, "a WDF function table index is not negative");
                #[allow(clippy::cast_sign_loss)]
                let index = index as usize;
                index
            };
            const {
                ::core::assert!(
                    ::core::mem::size_of::<::wdk_sys::#pointer_type>()
                        == ::core::mem::size_of::<::wdk_sys::WDFFUNC>(),
                    "a WDF function table entry is one function pointer"
                );
            }
            // The caller's `unsafe` block covers these reads and the call: the table entry
            // at this index is this function (the framework's table is laid out by
            // `_WDFFUNCENUM`), and the index is in the table because `DriverEntry` refused
            // to run on a table shorter than `WdfFunctionTableNumEntries`.
            let entry: ::wdk_sys::#pointer_type = ::wdk_sys::WdfFunctions
                .add(INDEX)
                .cast::<::wdk_sys::#pointer_type>()
                .read();
            match entry {
                ::core::option::Option::Some(function) => ::core::option::Option::Some(
                    function(::wdk_sys::WdfDriverGlobals, #(#arguments),*)
                ),
                ::core::option::Option::None => ::core::option::Option::None,
            }
        }
    }
}
