//! `#[receiver(...)]`: parse the arguments, validate them against the function, expand into a
//! handler type and an `inventory` submission. Every error found is reported at once, and the
//! function is emitted unchanged next to them so the rest of the crate still type-checks.

mod expand;
mod parse;
mod validate;

use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::root::Root;

/// The signals the ORM defines, by their Django names, with the type each maps to.
pub const MODEL_SIGNALS: &[(&str, &str)] = &[
    ("pre_save", "PreSaveSignal"),
    ("post_save", "PostSaveSignal"),
    ("pre_delete", "PreDeleteSignal"),
    ("post_delete", "PostDeleteSignal"),
    ("m2m_changed", "M2mChangedSignal"),
];

/// Every Django signal name, for "did you mean" and for names not built yet.
pub const DJANGO_SIGNALS: &[&str] = &[
    "pre_save",
    "post_save",
    "pre_delete",
    "post_delete",
    "m2m_changed",
    "pre_init",
    "post_init",
    "class_prepared",
    "pre_migrate",
    "post_migrate",
    "connection_created",
    "request_started",
    "request_finished",
    "got_request_exception",
];

pub fn expand(root: Root, args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Vec::new();
    let args = parse::args(args, &mut errors);
    let Ok(function) = syn::parse2::<syn::ItemFn>(item.clone()) else {
        let error = syn::Error::new(
            proc_macro2::Span::call_site(),
            "#[receiver] goes on a free function, e.g. `#[receiver(MySignal)] fn on_it(ev: &MySignal) {}`",
        );
        let mut out = item;
        out.extend(error.to_compile_error());
        return out;
    };
    let receiver = args.and_then(|args| validate::receiver(root, args, &function, &mut errors));
    // The framework fixes the parameter shape (payloads by value), so the pedantic lint about
    // it would fire on every receiver that only reads its payload.
    let mut function = function;
    function
        .attrs
        .push(syn::parse_quote!(#[allow(clippy::needless_pass_by_value)]));
    let mut out = function.to_token_stream();
    match (receiver, errors.is_empty()) {
        (Some(receiver), true) => out.extend(expand::receiver(&receiver, &function)),
        _ => out.extend(errors.into_iter().map(|e| e.to_compile_error())),
    }
    out
}
