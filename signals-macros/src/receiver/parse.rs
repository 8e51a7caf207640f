//! Parsing `#[receiver(SIGNAL, key = value, flag)]`.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt as _;
use syn::parse::{ParseStream, Parser as _};
use syn::punctuated::Punctuated;
use syn::{Token, bracketed};

use crate::suggest;

/// The keys `#[receiver]` accepts after the signal.
const KEYS: &[&str] = &[
    "sender",
    "dispatch_uid",
    "priority",
    "crate",
    "on_commit",
    "durable",
    "name",
    "queue",
    "max_attempts",
    "backoff",
    "delay",
    "job_priority",
];

/// The options of a durable receiver's jobs: each is the `signals_orm::durable::JobOptions`
/// method of the same name (`job_priority` is its `priority`, the key `priority` being the
/// dispatch order).
pub const JOB_OPTIONS: &[&str] = &["queue", "max_attempts", "backoff", "delay", "job_priority"];

/// The attribute's arguments, each with the span of its key for later errors.
pub struct Args {
    pub signals: Vec<syn::Path>,
    pub sender: Option<syn::Type>,
    pub dispatch_uid: Option<syn::LitStr>,
    pub priority: Option<(i32, Span)>,
    pub krate: Option<syn::Path>,
    pub on_commit: Option<Span>,
    /// `durable`: the receiver's work is a job, run by a worker (signals-orm's `durable`).
    pub durable: Option<Span>,
    /// The durable job's options, `key = expression`, in the order written.
    pub job_options: Vec<(syn::Ident, syn::Expr)>,
    /// `name = "..."`: the name a durable receiver's jobs carry, with the key's span.
    pub durable_name: Option<(syn::LitStr, Span)>,
}

/// Parses the arguments; `None` when they cannot be read at all. Errors about single keys are
/// pushed to `errors` and parsing goes on.
pub fn args(tokens: TokenStream, errors: &mut Vec<syn::Error>) -> Option<Args> {
    if tokens.is_empty() {
        errors.push(syn::Error::new(
            Span::call_site(),
            "#[receiver] needs a signal: `#[receiver(post_save, sender = User)]` or `#[receiver(MySignal)]`",
        ));
        return None;
    }
    let parser = |input: ParseStream| Ok(parse_args(input, errors));
    match parser.parse2(tokens) {
        Ok(args) => args,
        Err(error) => {
            errors.push(error);
            None
        }
    }
}

fn parse_args(input: ParseStream, errors: &mut Vec<syn::Error>) -> Option<Args> {
    let signals = match parse_signals(input) {
        Ok(signals) => signals,
        Err(error) => {
            errors.push(error);
            let _ = input.parse::<TokenStream>();
            return None;
        }
    };
    let mut args = Args {
        signals,
        sender: None,
        dispatch_uid: None,
        priority: None,
        krate: None,
        on_commit: None,
        durable: None,
        job_options: Vec::new(),
        durable_name: None,
    };
    while !input.is_empty() {
        if let Err(error) = input.parse::<Token![,]>() {
            errors.push(syn::Error::new(
                error.span(),
                "expected `,` between #[receiver] arguments",
            ));
            let _ = input.parse::<TokenStream>();
            return None;
        }
        if input.is_empty() {
            break;
        }
        if let Err(error) = parse_key(input, &mut args) {
            errors.push(error);
            skip_value(input);
        }
    }
    Some(args)
}

fn parse_signals(input: ParseStream) -> syn::Result<Vec<syn::Path>> {
    if input.peek(syn::token::Bracket) {
        let content;
        let brackets = bracketed!(content in input);
        let list = Punctuated::<syn::Path, Token![,]>::parse_terminated(&content)?;
        if list.is_empty() {
            return Err(syn::Error::new(
                brackets.span.join(),
                "the signal list is empty: name at least one signal",
            ));
        }
        Ok(list.into_iter().collect())
    } else {
        let path: syn::Path = input.parse().map_err(|e| {
            syn::Error::new(e.span(), "expected a signal first: `post_save`, `MySignal` or a list `[pre_save, post_save]`")
        })?;
        Ok(vec![path])
    }
}

fn parse_key(input: ParseStream, args: &mut Args) -> syn::Result<()> {
    let key = input.call(syn::Ident::parse_any)?;
    let name = key.to_string();
    let has_value = input.peek(Token![=]);
    let repeated = || syn::Error::new(key.span(), format!("`{name}` is given twice: keep one"));
    let needs_value = |example: &str| {
        syn::Error::new(
            key.span(),
            format!("`{name}` needs a value: `{name} = {example}`"),
        )
    };
    if durable_key(&key, has_value, input, args)? {
        return Ok(());
    }
    match name.as_str() {
        "on_commit" => {
            if has_value {
                return Err(syn::Error::new(
                    key.span(),
                    "`on_commit` is a flag and takes no value: write `on_commit`",
                ));
            }
            if args.on_commit.replace(key.span()).is_some() {
                return Err(repeated());
            }
        }
        "sender" | "dispatch_uid" | "priority" | "crate" if !has_value => {
            let example = match name.as_str() {
                "sender" => "User",
                "dispatch_uid" => "\"unique-name\"",
                "priority" => "10",
                _ => "signals_orm",
            };
            return Err(needs_value(example));
        }
        "sender" => {
            input.parse::<Token![=]>()?;
            let ty: syn::Type = input.parse()?;
            if args.sender.replace(ty).is_some() {
                return Err(repeated());
            }
        }
        "dispatch_uid" => {
            input.parse::<Token![=]>()?;
            let uid: syn::LitStr = input.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "`dispatch_uid` takes a string literal: `dispatch_uid = \"my-uid\"`",
                )
            })?;
            if args.dispatch_uid.replace(uid).is_some() {
                return Err(repeated());
            }
        }
        "priority" => {
            input.parse::<Token![=]>()?;
            let value = parse_priority(input)?;
            if args.priority.replace((value, key.span())).is_some() {
                return Err(repeated());
            }
        }
        "crate" => {
            input.parse::<Token![=]>()?;
            let path = input.call(syn::Path::parse_mod_style)?;
            if args.krate.replace(path).is_some() {
                return Err(repeated());
            }
        }
        _ => {
            let hint = suggest::hint(&name, KEYS);
            return Err(syn::Error::new(
                key.span(),
                format!(
                    "unknown #[receiver] key `{name}`{hint}; the keys are `sender`, `dispatch_uid`, `priority`, `on_commit`, `durable` (with `name`, `queue`, `max_attempts`, `backoff`, `delay`, `job_priority`) and `crate`"
                ),
            ));
        }
    }
    Ok(())
}

/// Parses `durable` and the job options; `false` for any other key.
fn durable_key(
    key: &syn::Ident,
    has_value: bool,
    input: ParseStream,
    args: &mut Args,
) -> syn::Result<bool> {
    let name = key.to_string();
    let repeated = || syn::Error::new(key.span(), format!("`{name}` is given twice: keep one"));
    if name == "durable" {
        if has_value {
            return Err(syn::Error::new(
                key.span(),
                "`durable` is a flag and takes no value: write `durable`, and the job's options as keys of their own (`queue = \"mail\"`, `max_attempts = 5`)",
            ));
        }
        if args.durable.replace(key.span()).is_some() {
            return Err(repeated());
        }
        return Ok(true);
    }
    if name == "name" {
        if !has_value {
            return Err(syn::Error::new(
                key.span(),
                "`name` needs a value: `name = \"shop.send_confirmation\"`",
            ));
        }
        input.parse::<Token![=]>()?;
        let value: syn::LitStr = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "`name` takes a string literal: `name = \"shop.send_confirmation\"`",
            )
        })?;
        if value.value().is_empty() {
            return Err(syn::Error::new(
                value.span(),
                "a durable receiver's name cannot be empty",
            ));
        }
        if args.durable_name.replace((value, key.span())).is_some() {
            return Err(repeated());
        }
        return Ok(true);
    }
    if !JOB_OPTIONS.contains(&name.as_str()) {
        return Ok(false);
    }
    if !has_value {
        let example = match name.as_str() {
            "queue" => "\"mail\"",
            "backoff" => "Backoff::Fixed(Duration::from_secs(30))",
            "delay" => "Duration::from_secs(60)",
            _ => "5",
        };
        return Err(syn::Error::new(
            key.span(),
            format!("`{name}` needs a value: `{name} = {example}`"),
        ));
    }
    input.parse::<Token![=]>()?;
    let value: syn::Expr = input.parse()?;
    if args.job_options.iter().any(|(k, _)| k == key) {
        return Err(repeated());
    }
    args.job_options.push((key.clone(), value));
    Ok(true)
}

fn parse_priority(input: ParseStream) -> syn::Result<i32> {
    let negative = input.parse::<Option<Token![-]>>()?.is_some();
    let lit: syn::LitInt = input.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            "`priority` takes an integer: `priority = 10` (higher runs first)",
        )
    })?;
    let value: i64 = lit.base10_parse()?;
    let value = if negative { -value } else { value };
    i32::try_from(value).map_err(|_| syn::Error::new(lit.span(), "`priority` must fit in an i32"))
}

/// After a bad key, skips to the next top-level comma so later keys are still checked.
fn skip_value(input: ParseStream) {
    while !input.is_empty() && !input.peek(Token![,]) {
        if input.parse::<proc_macro2::TokenTree>().is_err() {
            return;
        }
    }
}
