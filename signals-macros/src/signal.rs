//! `derive(Signal)`: a custom signal whose receivers take `&Self`, with its own `static`
//! registry so sends never hash.

use proc_macro2::TokenStream;
use quote::quote;

use crate::root::Root;
use crate::suggest;

pub fn expand(root: Root, item: TokenStream) -> TokenStream {
    let input = match syn::parse2::<syn::DeriveInput>(item) {
        Ok(input) => input,
        Err(error) => return error.to_compile_error(),
    };
    let mut errors = Vec::new();
    let Attributes { name, root, reply } = attributes(&input, root, &mut errors);
    if !input.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &input.generics,
            "a signal cannot be generic: each signal type owns one static registry; declare one signal per concrete type",
        ));
    }
    if let syn::Data::Union(data) = &input.data {
        errors.push(syn::Error::new(
            data.union_token.span,
            "a signal is a struct or an enum, not a union",
        ));
    }
    if !errors.is_empty() {
        return errors.into_iter().map(|e| e.to_compile_error()).collect();
    }
    let ident = &input.ident;
    let name = name.unwrap_or_else(|| ident.to_string());
    let private = root.private();
    let ident_text = ident.to_string();
    // The user's type with its own spans: a reply that is not `Send + 'static` is reported
    // there.
    let reply = reply.map_or_else(|| quote!(()), |ty| quote!(#ty));
    quote! {
        #[automatically_derived]
        impl #private::Signal for #ident {
            const NAME: &'static str = #name;
            type Event<'e> = &'e Self;
            type Reply = #reply;
            #[inline]
            fn reborrow<'s>(event: &'s mut &Self) -> &'s Self {
                *event
            }
            /// The signal's `Debug` text when it implements `Debug`, else nothing: for the
            /// test kit's recorder.
            fn describe(
                event: &<Self as #private::Signal>::Event<'_>,
            ) -> #private::Vec<(&'static str, #private::String)> {
                #[allow(unused_imports)]
                use #private::{DescribeByDebug as _, DescribeNothing as _};
                (&#private::Describe(*event, #ident_text)).describe_fields()
            }
            #[inline]
            fn registry() -> &'static #private::Registry<Self> {
                ::std::thread_local! {
                    static LOCAL: #private::LocalCopy<#ident> = const { #private::LocalCopy::new() };
                }
                static REGISTRY: #private::Registry<#ident> = #private::Registry::new(&LOCAL);
                &REGISTRY
            }
        }
        #[automatically_derived]
        impl #private::PlainSignal for #ident {
            #[inline]
            fn as_event(&self) -> &Self {
                self
            }
            #[inline]
            fn from_event<'e>(event: <Self as #private::Signal>::Event<'e>) -> &'e Self {
                event
            }
        }
    }
}

/// What `#[signal(..)]` says.
struct Attributes {
    /// `name = "..."`: the displayed name.
    name: Option<String>,
    /// `crate = path`: where the runtime crate is.
    root: Root,
    /// `reply = Type`: what each receiver returns to `send_collect`.
    reply: Option<syn::Type>,
}

/// `#[signal(name = "...", reply = Type, crate = path)]`.
fn attributes(input: &syn::DeriveInput, root: Root, errors: &mut Vec<syn::Error>) -> Attributes {
    let mut name = None;
    let mut reply = None;
    let mut root = root;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("signal")) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                name = Some(meta.value()?.parse::<syn::LitStr>()?.value());
                Ok(())
            } else if meta.path.is_ident("reply") {
                let ty: syn::Type = meta.value()?.parse()?;
                if reply.replace(ty).is_some() {
                    return Err(meta.error("`reply` is given twice: keep one"));
                }
                Ok(())
            } else if meta.path.is_ident("crate") {
                let path: syn::Path = meta.value()?.parse()?;
                root = Root::Custom(path, Box::new(root.clone()));
                Ok(())
            } else {
                let key = meta
                    .path
                    .get_ident()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let hint = suggest::hint(&key, &["name", "reply", "crate"]);
                Err(meta.error(format!(
                    "unknown #[signal] key `{key}`{hint}; the keys are `name`, `reply` and `crate`"
                )))
            }
        });
        if let Err(error) = result {
            errors.push(error);
        }
    }
    Attributes { name, root, reply }
}
