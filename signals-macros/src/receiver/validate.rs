//! Checks the arguments against the function and the runtime crate, and resolves the signals.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens as _, quote};
use syn::spanned::Spanned;

use super::DJANGO_SIGNALS;
use super::parse::Args;
use crate::root::Root;
use crate::suggest;

/// A validated receiver, ready to expand.
pub struct Receiver {
    pub root: Root,
    /// One type path per signal.
    pub signals: Vec<TokenStream>,
    pub sender: Option<syn::Type>,
    pub dispatch_uid: Option<syn::LitStr>,
    pub priority: i32,
    pub on_commit: bool,
    pub is_async: bool,
    /// Parameter types, one or two.
    pub params: Vec<syn::Type>,
    /// The declared return type (`None` for `()`), which the generated call names so that a
    /// type the dispatcher cannot take is reported there.
    pub output: Option<syn::Type>,
}

pub fn receiver(
    root: Root,
    args: Args,
    function: &syn::ItemFn,
    errors: &mut Vec<syn::Error>,
) -> Option<Receiver> {
    let root = match args.krate {
        Some(path) => Root::Custom(path, Box::new(root)),
        None => root,
    };
    let signals: Vec<TokenStream> = args
        .signals
        .iter()
        .filter_map(|path| resolve_signal(&root, path, errors))
        .collect();
    if args.on_commit.is_some() && !root.has_orm() {
        errors.push(syn::Error::new(
            args.on_commit.unwrap_or_else(Span::call_site),
            "`on_commit` applies to model signals, which run inside a transaction: use `signals_orm::receiver`",
        ));
    }
    let params = check_signature(&root, &function.sig, errors);
    if let (Some(span), true) = (args.on_commit, params.len() > 1) {
        errors.push(syn::Error::new(
            span,
            "an `on_commit` receiver runs after COMMIT and gets no transaction: take only the event, `ev: Committed<User>`",
        ));
    }
    let output = match &function.sig.output {
        syn::ReturnType::Default => None,
        syn::ReturnType::Type(_, ty) => Some((**ty).clone()),
    };
    (signals.len() == args.signals.len()).then(|| Receiver {
        root,
        signals,
        sender: args.sender,
        dispatch_uid: args.dispatch_uid,
        priority: args.priority.map_or(0, |(p, _)| p),
        on_commit: args.on_commit.is_some(),
        is_async: function.sig.asyncness.is_some(),
        params,
        output,
    })
}

/// A Django name (`post_save`) becomes the ORM's signal of that name; any other path is a
/// custom signal type that the compiler checks.
fn resolve_signal(
    root: &Root,
    path: &syn::Path,
    errors: &mut Vec<syn::Error>,
) -> Option<TokenStream> {
    let Some(ident) = path.get_ident() else {
        return Some(path.to_token_stream());
    };
    let name = ident.to_string();
    if DJANGO_SIGNALS.contains(&name.as_str()) {
        if !root.has_orm() {
            errors.push(syn::Error::new(
                ident.span(),
                format!("`{name}` is a Django signal, received with signals-orm: import the attribute as `use signals_orm::receiver;`"),
            ));
            return None;
        }
        // The user's ident, with its span: a name the ORM does not provide is reported by
        // rustc at the user's token.
        let private = root.private();
        return Some(quote!(#private::model_signals::#ident));
    }
    let is_snake = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if let Some(close) = is_snake
        .then(|| suggest::closest(&name, DJANGO_SIGNALS))
        .flatten()
    {
        errors.push(syn::Error::new(
            ident.span(),
            format!("unknown signal `{name}`; did you mean `{close}`? (custom signals are types, such as `MySignal`)"),
        ));
        return None;
    }
    Some(path.to_token_stream())
}

/// The parameter types, after checking the function is one the dispatcher can call.
fn check_signature(
    root: &Root,
    sig: &syn::Signature,
    errors: &mut Vec<syn::Error>,
) -> Vec<syn::Type> {
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new(
            constness.span(),
            "a receiver cannot be a `const fn`: remove `const`",
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(syn::Error::new(
            unsafety.span(),
            "a receiver cannot be `unsafe`: the dispatcher calls it from safe code",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "a receiver cannot have an `extern` ABI: remove it",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "a receiver cannot be generic: the dispatcher calls one concrete function; write concrete types and `'_` for lifetimes",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "a receiver cannot be variadic",
        ));
    }
    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            syn::FnArg::Receiver(receiver) => errors.push(syn::Error::new_spanned(
                receiver,
                "a receiver is a free function and cannot take `self`: move it out of the `impl` block, or connect a closure at runtime with `connect`",
            )),
            syn::FnArg::Typed(pat) => {
                if let syn::Type::ImplTrait(_) = &*pat.ty {
                    errors.push(syn::Error::new_spanned(&pat.ty, "a receiver cannot take `impl Trait`: name the event type, such as `&MySignal`"));
                }
                params.push((*pat.ty).clone());
            }
        }
    }
    let max = if root.has_orm() { 2 } else { 1 };
    let typed: Vec<&syn::FnArg> = sig
        .inputs
        .iter()
        .filter(|a| matches!(a, syn::FnArg::Typed(_)))
        .collect();
    if sig.inputs.is_empty() {
        errors.push(syn::Error::new(
            sig.paren_token.span.join(),
            "a receiver takes the signal's event: add a parameter such as `ev: &MySignal` (model signals: `ev: PostSave<'_, User>`)",
        ));
    } else if typed.len() > max {
        let extra = &typed[max..];
        let message = if max == 1 {
            "a receiver of a custom signal takes one parameter, the event: remove the others"
        } else {
            "a receiver takes the event and, optionally, the write's transaction: remove the others"
        };
        errors.push(syn::Error::new_spanned(quote!(#(#extra),*), message));
    }
    params
}
