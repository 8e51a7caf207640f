//! Checks the arguments against the function and the runtime crate, and resolves the signals.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens as _, quote};
use syn::spanned::Spanned;

use super::parse::Args;
use super::{CORE_SIGNALS, DJANGO_SIGNALS, MODEL_SIGNALS};
use crate::root::Root;
use crate::suggest;

/// A validated receiver, ready to expand.
pub struct Receiver {
    pub root: Root,
    pub signals: Vec<Signal>,
    pub sender: Option<syn::Type>,
    pub dispatch_uid: Option<syn::LitStr>,
    pub priority: i32,
    pub on_commit: bool,
    pub is_async: bool,
    /// Parameter types, one or two (the sender's excluded).
    pub params: Vec<syn::Type>,
    /// The type of a last parameter named `Sender`: the sender of the send, as Django passes
    /// `sender` to every receiver.
    pub sender_param: Option<syn::Type>,
    /// The declared return type (`None` for `()`), which the generated call names so that a
    /// type the dispatcher cannot take is reported there.
    pub output: Option<syn::Type>,
    /// The function's name, where a missing return type is reported.
    pub name_span: Span,
    /// `durable`: the job's payload type and options.
    pub durable: Option<Durable>,
}

/// A durable receiver's part: what its `Job<T>` holds, and its jobs' options.
pub struct Durable {
    /// `T` of the parameter `Job<T>`.
    pub payload: syn::Type,
    /// `key = expression`, each a `JobOptions` method.
    pub options: Vec<(syn::Ident, syn::Expr)>,
    /// `name = "..."`: the name its jobs carry, instead of the function's path.
    pub name: Option<syn::LitStr>,
}

/// One signal of the attribute.
pub struct Signal {
    /// Its type path.
    pub path: TokenStream,
    /// Written as a Django name (`post_save`): a model signal of the ORM, whose senders are
    /// checked.
    pub django: bool,
}

/// The ORM's payload types and the signal each belongs to, for the payload written in place
/// of its signal (`#[receiver(PreSave, ..)]`).
const PAYLOADS: &[(&str, &str)] = &[
    ("PreSave", "pre_save"),
    ("PostSave", "post_save"),
    ("PreDelete", "pre_delete"),
    ("PostDelete", "post_delete"),
    ("M2mChanged", "m2m_changed"),
    ("AnyM2mChanged", "m2m_changed"),
];

pub fn receiver(
    root: Root,
    args: Args,
    function: &syn::ItemFn,
    errors: &mut Vec<syn::Error>,
) -> Option<Receiver> {
    let root = match args.krate.clone() {
        Some(path) => Root::Custom(path, Box::new(root)),
        None => root,
    };
    let signals: Vec<Signal> = args
        .signals
        .iter()
        .filter_map(|path| resolve_signal(&root, path, &args, errors))
        .collect();
    if args.on_commit.is_some() && !root.has_orm() {
        errors.push(syn::Error::new(
            args.on_commit.unwrap_or_else(Span::call_site),
            "`on_commit` applies to model signals, which run inside a transaction: use `signals_orm::receiver`",
        ));
    }
    let (params, sender_param) = check_signature(&root, &function.sig, errors);
    let django = signals.len() == args.signals.len() && signals.iter().all(|s| s.django);
    if let (true, Some(first)) = (django, params.first()) {
        check_payload(&args, first, errors);
    }
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
    let durable = check_durable(&root, &args, &params, sender_param.as_ref(), django, errors);
    (signals.len() == args.signals.len()).then(|| Receiver {
        root,
        signals,
        sender: args.sender,
        dispatch_uid: args.dispatch_uid,
        priority: args.priority.map_or(0, |(p, _)| p),
        on_commit: args.on_commit.is_some(),
        is_async: function.sig.asyncness.is_some(),
        params,
        sender_param,
        output,
        name_span: function.sig.ident.span(),
        durable,
    })
}

/// Checks a durable receiver's attribute and parameter: `durable` with the ORM, not with
/// `on_commit`, one parameter `Job<T>`, a sender for a model signal; job options only with
/// `durable`. Returns its payload type and options.
fn check_durable(
    root: &Root,
    args: &Args,
    params: &[syn::Type],
    sender_param: Option<&syn::Type>,
    django: bool,
    errors: &mut Vec<syn::Error>,
) -> Option<Durable> {
    let Some(span) = args.durable else {
        let keys = args
            .job_options
            .iter()
            .map(|(key, _)| (key.to_string(), key.span()))
            .chain(
                args.durable_name
                    .iter()
                    .map(|(_, span)| ("name".to_owned(), *span)),
            );
        for (key, span) in keys {
            errors.push(syn::Error::new(
                span,
                format!("`{key}` is an option of a durable receiver's jobs: add `durable` to the attribute"),
            ));
        }
        return None;
    };
    let mut ok = true;
    let mut fail = |span: Span, message: &str| {
        errors.push(syn::Error::new(span, message));
        ok = false;
    };
    if !root.has_orm() {
        fail(
            span,
            "`durable` receivers enqueue a job in the write's transaction: use `signals_orm::receiver`",
        );
        return None;
    }
    if let Some(on_commit) = args.on_commit {
        fail(
            on_commit,
            "a receiver is `on_commit` (run after COMMIT, in this process, lost if it dies) or `durable` (a job enqueued in the transaction, run by a worker at least once), not both: remove one",
        );
    }
    if params.len() > 1 {
        fail(
            params[1].span(),
            "a durable receiver runs later, in a worker, and gets no transaction: take only the job, `job: Job<Order>`",
        );
    }
    if let Some(ty) = sender_param {
        fail(
            ty.span(),
            "a durable receiver gets the sender in its job (`job.sender`): remove this parameter",
        );
    }
    if django && args.sender.is_none() {
        fail(
            span,
            "a durable receiver of a model signal needs its model: add `sender = Order` and take `Job<Order>` (durable receivers of every model are not supported)",
        );
    }
    let payload = params.first().and_then(|ty| {
        let payload = job_payload(ty);
        if payload.is_none() {
            fail(
                ty.span(),
                "a durable receiver takes `Job<T>`: `Job<Order>` for a model's signal (`signals_orm::durable::Job`), `Job<M2mChange<PostTags>>` for m2m_changed, `Job<MySignal>` for a custom signal",
            );
        }
        payload
    });
    let payload = payload?;
    ok.then(|| Durable {
        payload,
        options: args.job_options.clone(),
        name: args.durable_name.as_ref().map(|(name, _)| name.clone()),
    })
}

/// `T` of a parameter type written `Job<T>` (any path ending in `Job`).
fn job_payload(ty: &syn::Type) -> Option<syn::Type> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != "Job" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(generics) = &last.arguments else {
        return None;
    };
    let mut types = generics.args.iter().filter_map(|arg| match arg {
        syn::GenericArgument::Type(ty) => Some(ty.clone()),
        _ => None,
    });
    let payload = types.next()?;
    types.next().is_none().then_some(payload)
}

/// A Django name (`post_save`, `request_started`) becomes the built-in signal of that name (a
/// model signal, whose senders are checked, or another built-in one, received as a custom
/// signal); any other path is a custom signal type that the compiler checks.
fn resolve_signal(
    root: &Root,
    path: &syn::Path,
    args: &Args,
    errors: &mut Vec<syn::Error>,
) -> Option<Signal> {
    let custom = || Signal {
        path: path.to_token_stream(),
        django: false,
    };
    if root.has_orm()
        && let Some(error) = payload_as_signal(path, args)
    {
        errors.push(error);
        return None;
    }
    let Some(ident) = path.get_ident() else {
        return Some(custom());
    };
    let name = ident.to_string();
    if CORE_SIGNALS.contains(&name.as_str()) {
        // The dispatcher's own signals, by their Django names, from either crate; their
        // receivers take the signal's type, as a custom signal's do.
        let private = root.private();
        return Some(Signal {
            path: quote!(#private::django_signals::#ident),
            django: false,
        });
    }
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
        return Some(Signal {
            path: quote!(#private::model_signals::#ident),
            django: MODEL_SIGNALS.contains(&name.as_str()),
        });
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
    Some(custom())
}

/// The error for an ORM payload type written where the signal goes (`#[receiver(PreSave)]`),
/// naming the signal to write instead.
fn payload_as_signal(path: &syn::Path, args: &Args) -> Option<syn::Error> {
    // A bare name or one under `signals_orm`: a custom signal of the same name stays reachable
    // as `crate::PostSave`.
    let last = path.segments.last()?;
    if path.segments.len() > 1 && path.segments[0].ident != "signals_orm" {
        return None;
    }
    let name = last.ident.to_string();
    let sender = args.sender.as_ref().map_or_else(|| "User".to_owned(), show);
    let message = if name == "Committed" {
        format!(
            "`Committed` is the payload of `on_commit` receivers; the signal is the one they follow: write `#[receiver(post_save, sender = {sender}, on_commit)]`"
        )
    } else {
        let (_, signal) = PAYLOADS.iter().find(|(payload, _)| *payload == name)?;
        let sender = if *signal == "m2m_changed" {
            args.sender
                .as_ref()
                .map_or_else(|| "PostTags".to_owned(), show)
        } else {
            sender
        };
        format!(
            "`{name}` is the payload type; the signal is `{signal}`: write `#[receiver({signal}, sender = {sender})]`"
        )
    };
    Some(syn::Error::new_spanned(path, message))
}

/// Checks the payload a receiver of model signals takes against `sender` and `on_commit`, where
/// rustc would report an unmet bound of the generated handler without the fix.
fn check_payload(args: &Args, ty: &syn::Type, errors: &mut Vec<syn::Error>) {
    let Some((payload, about)) = payload_of(ty) else {
        return;
    };
    let (every, of_every) = match payload.as_str() {
        "Committed" => ("Committed<ModelSnapshot>", "every model"),
        "M2mChanged" | "AnyM2mChanged" => ("AnyM2mChanged<'_>", "every relation"),
        "PreSave" => ("PreSave<'_, dyn AnyModel>", "every model"),
        "PostSave" => ("PostSave<'_, dyn AnyModel>", "every model"),
        "Changes" => ("Changes<'_, dyn AnyModel>", "every model"),
        "PreDelete" => ("PreDelete<'_, dyn AnyModel>", "every model"),
        "PostDelete" => ("PostDelete<'_, dyn AnyModel>", "every model"),
        _ => return,
    };
    let shown = show(ty);
    let signals = match args.signals.as_slice() {
        [one] => show(one),
        many => format!("[{}]", many.iter().map(show).collect::<Vec<_>>().join(", ")),
    };
    let sender = args.sender.as_ref().map(show);
    if payload == "Committed" && args.on_commit.is_none() {
        let sender = sender
            .as_ref()
            .map_or_else(String::new, |s| format!(", sender = {s}"));
        errors.push(syn::Error::new_spanned(
            ty,
            format!(
                "`{shown}` is what `on_commit` receivers get, after COMMIT: add `on_commit` to the attribute, `#[receiver({signals}{sender}, on_commit)]`"
            ),
        ));
    }
    // `dyn AnyModel`, `ModelSnapshot` and `AnyM2mChanged` are the payloads of every sender.
    let is_every = match about {
        None | Some(syn::Type::TraitObject(_)) => true,
        Some(syn::Type::Path(p)) => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "ModelSnapshot"),
        Some(_) => false,
    };
    match (sender, about) {
        (None, Some(about)) if !is_every => {
            let about = show(about);
            errors.push(syn::Error::new_spanned(
                ty,
                format!(
                    "`{shown}` is for a receiver of `{about}` only, and this receiver has no `sender`: add `sender = {about}` to the attribute, or take `{every}` to receive {of_every}"
                ),
            ));
        }
        (Some(sender), _) if is_every => {
            let typed = match payload.as_str() {
                "Committed" => format!("Committed<{sender}>"),
                "M2mChanged" | "AnyM2mChanged" => format!("M2mChanged<'_, {sender}>"),
                _ => format!("{payload}<'_, {sender}>"),
            };
            errors.push(syn::Error::new_spanned(
                ty,
                format!(
                    "`{shown}` is for a receiver of {of_every}, but this receiver has `sender = {sender}`: take `{typed}`, or remove `sender` to receive {of_every}"
                ),
            ));
        }
        _ => {}
    }
}

/// The ORM payload a parameter type names (`PostSave`, `Committed` ...), with the type it is
/// about (`User`, `dyn AnyModel`, `PostTags`; none for `AnyM2mChanged<'_>`).
fn payload_of(ty: &syn::Type) -> Option<(String, Option<&syn::Type>)> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    let about = match &last.arguments {
        syn::PathArguments::AngleBracketed(generics) => {
            generics.args.iter().find_map(|arg| match arg {
                syn::GenericArgument::Type(ty) => Some(ty),
                _ => None,
            })
        }
        _ => None,
    };
    Some((last.ident.to_string(), about))
}

/// A type as the user would write it, for messages (`PostSave<'_, User>`, not the token
/// stream's `PostSave < '_ , User >`).
fn show(tokens: &impl quote::ToTokens) -> String {
    let mut out = tokens.to_token_stream().to_string();
    for (from, to) in [
        (" :: ", "::"),
        (":: ", "::"),
        (" ::", "::"),
        (" < ", "<"),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        (" ,", ","),
        ("& ", "&"),
        ("( ", "("),
        (" )", ")"),
    ] {
        out = out.replace(from, to);
    }
    out
}

/// The parameter types, after checking the function is one the dispatcher can call.
fn check_signature(
    root: &Root,
    sig: &syn::Signature,
    errors: &mut Vec<syn::Error>,
) -> (Vec<syn::Type>, Option<syn::Type>) {
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
    // A last parameter of a type named `Sender` gets the send's sender, after the others.
    let sender_param = (params.len() > 1 && params.last().is_some_and(is_sender))
        .then(|| params.pop())
        .flatten();
    let max = if root.has_orm() { 2 } else { 1 };
    let mut typed: Vec<&syn::FnArg> = sig
        .inputs
        .iter()
        .filter(|a| matches!(a, syn::FnArg::Typed(_)))
        .collect();
    if sender_param.is_some() {
        typed.pop();
    }
    if sig.inputs.is_empty() {
        errors.push(syn::Error::new(
            sig.paren_token.span.join(),
            "a receiver takes the signal's event: add a parameter such as `ev: &MySignal` (model signals: `ev: PostSave<'_, User>`)",
        ));
    } else if typed.len() > max {
        let extra = &typed[max..];
        let message = if max == 1 {
            "a receiver of a custom signal takes the event and, optionally, last, its `Sender`: remove the others"
        } else {
            "a receiver takes the event and, optionally, the write's transaction and, last, the `Sender`: remove the others"
        };
        errors.push(syn::Error::new_spanned(quote!(#(#extra),*), message));
    }
    (params, sender_param)
}

/// Whether a parameter type is written `Sender` (any path ending in it): the dispatcher's
/// sender type, which the generated code then checks at this type.
fn is_sender(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(path) if path.qself.is_none()
        && path.path.segments.last().is_some_and(|s| s.ident == "Sender" && s.arguments.is_none()))
}
