//! `#[receiver(...)]`: parse the arguments, validate them against the function, expand into a
//! handler type and an `inventory` submission. Every error found is reported at once, and the
//! function is emitted unchanged next to them so the rest of the crate still type-checks.

mod expand;
mod parse;
mod validate;

use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::root::Root;

/// Django's signal names. Each resolves to the dispatcher's
/// `__private::django_signals::<name>` ([`CORE_SIGNALS`], from either attribute) or, from
/// `signals_orm::receiver`, to the ORM's `__private::model_signals::<name>` (the others), so
/// the crates alone decide which they provide (rustc reports the others at the user's token);
/// from `signals_core::receiver` the ORM's are pointed to the ORM. Only [`MODEL_SIGNALS`] get
/// their senders and payloads checked; the ORM's other signals (`pre_migrate`, `post_migrate`,
/// `connection_created`) are received as custom signals are. Also the candidates of "did you
/// mean" for misspelt snake-case names.
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
    "setting_changed",
];

/// The Django names of signals sent by the ORM whose sender is a model (or, for
/// `m2m_changed`, a relation): a receiver's `sender` and payload are checked against them.
pub const MODEL_SIGNALS: &[&str] = &[
    "pre_save",
    "post_save",
    "pre_delete",
    "post_delete",
    "m2m_changed",
    "pre_init",
    "post_init",
    "class_prepared",
];

/// The Django names of the dispatcher's own signals (`signals_core::request`, behind its
/// `http` feature, and `signals_core::settings`): named through
/// `__private::django_signals`, which both crates' `__private` have, and received as custom
/// signals are.
pub const CORE_SIGNALS: &[&str] = &[
    "request_started",
    "request_finished",
    "got_request_exception",
    "setting_changed",
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
    // The dispatcher hands the event over by value (`PreSave<'_, User>`, `Committed<User>`,
    // `AnyTx<'_>`, any `FromEvent` type), so a sync receiver that only reads it would be told to
    // take a reference it cannot take. Clippy does not check async functions for this lint.
    let mut function = function;
    if function.sig.asyncness.is_none() {
        function.attrs.push(syn::parse_quote!(#[allow(
            clippy::needless_pass_by_value,
            reason = "the dispatcher passes the event by value; a receiver cannot take it by reference"
        )]));
    }
    let mut out = function.to_token_stream();
    match (receiver, errors.is_empty()) {
        (Some(receiver), true) => out.extend(expand::receiver(&receiver, &function)),
        _ => out.extend(errors.into_iter().map(|e| e.to_compile_error())),
    }
    out
}
