//! Code generation: per signal, a zero-sized handler type calling the user's function, a
//! `static` handler, and an `inventory` submission carrying the receiver's metadata.
//!
//! Adapter calls are spanned at the user's parameter and return types, so a type that does
//! not fit the signal is reported there and not inside generated code.

use proc_macro2::TokenStream;
use quote::{ToTokens as _, format_ident, quote, quote_spanned};
use syn::spanned::Spanned as _;

use super::parse::JOB_OPTIONS;
use super::validate::{Durable, Receiver, Signal};

pub fn receiver(receiver: &Receiver, function: &syn::ItemFn) -> TokenStream {
    receiver
        .signals
        .iter()
        .map(|signal| one_signal(receiver, signal, function))
        .collect()
}

fn one_signal(receiver: &Receiver, signal: &Signal, function: &syn::ItemFn) -> TokenStream {
    let private = receiver.root.private();
    let sender_check = match (&receiver.sender, signal.django) {
        (Some(sender), true) => sender_check(receiver, &signal.path, sender),
        _ => TokenStream::new(),
    };
    let django = signal.django;
    let signal = &signal.path;
    let name = &function.sig.ident;
    let sender_marker = receiver
        .sender
        .as_ref()
        .map_or_else(|| quote!(#private::AnySender), |ty| quote!(#ty));
    let name_str = name.to_string();
    let receiver_name = quote!(::core::concat!(::core::module_path!(), "::", #name_str));
    let (durable_items, (handler_impl, handler_variant)) = match &receiver.durable {
        Some(durable) => durable_receiver(receiver, durable, signal, django, &receiver_name, name),
        None => (
            TokenStream::new(),
            handler(receiver, signal, &sender_marker, &receiver_name, name),
        ),
    };
    let sender = receiver.sender.as_ref().map_or_else(
        || quote!(#private::Option::None),
        |ty| quote!(#private::Option::Some(#private::sender_of::<#ty>)),
    );
    let dispatch_uid = match &receiver.dispatch_uid {
        Some(uid) if !uid.value().is_empty() => {
            quote!(#private::Option::Some(#private::Cow::Borrowed(#uid)))
        }
        _ => quote!(#private::Option::None),
    };
    let priority = receiver.priority;
    let phase = if receiver.on_commit {
        quote!(OnCommit)
    } else {
        quote!(Immediate)
    };

    let (needs_fn, needs) = needs(receiver, signal, &sender_marker);

    let at = name.span();
    let line = quote_spanned!(at=> ::core::line!());
    let column = quote_spanned!(at=> ::core::column!());
    quote! {
        #[doc(hidden)]
        const _: () = {
            #sender_check
            #needs_fn
            #durable_items
            struct __SignalsReceiver;
            #handler_impl
            static __SIGNALS_HANDLER: #private::Handler<#signal> =
                #private::Handler::#handler_variant(#private::StaticOrShared::Static(&__SignalsReceiver));
            #private::inventory::submit! {
                #private::LinkedReceiver {
                    handler: &__SIGNALS_HANDLER,
                    registry: #private::erased_registry::<#signal>,
                    sender: #sender,
                    identity: #private::type_id_of_val(&#name),
                    info: #private::ReceiverInfo {
                        name: #receiver_name,
                        module_path: ::core::module_path!(),
                        file: ::core::file!(),
                        line: #line,
                        column: #column,
                        priority: #priority,
                        dispatch_uid: #dispatch_uid,
                        phase: #private::Phase::#phase,
                        needs: #needs,
                    },
                }
            }
        };
    }
}

/// What the receiver's parameters need the sender to prepare (`FromEvent::NEEDS`, for
/// `ReceiverInfo::needs`): a `const fn __signals_needs` and the expression calling it. An
/// `on_commit` receiver takes an owned copy made after the write (`Committed`), which needs
/// nothing, and has none.
///
/// The function names what the handler's extraction names (`arguments`), with the same
/// tokens, spans and lifetime name: a parameter that does not fit gives the same error in
/// both, which rustc shows once.
fn needs(
    receiver: &Receiver,
    signal: &TokenStream,
    sender: &TokenStream,
) -> (TokenStream, TokenStream) {
    let private = receiver.root.private();
    let body = match receiver.params.as_slice() {
        _ if receiver.on_commit || receiver.durable.is_some() => {
            return (TokenStream::new(), quote!(0));
        }
        [payload, tx] => {
            let parts = payload_and_tx(receiver, signal, sender, payload, tx);
            quote!(#parts.1)
        }
        [ty] => quote_spanned!(ty.span()=>
            <#ty as #private::FromEvent<'e, #signal, #sender>>::NEEDS
        ),
        _ => return (TokenStream::new(), quote!(0)),
    };
    (
        quote! {
            const fn __signals_needs<'e>() -> u8 {
                #body
            }
        },
        quote!(__signals_needs()),
    )
}

/// The call of `payload_and_tx` that gives a two-parameter receiver's extraction and needs.
fn payload_and_tx(
    receiver: &Receiver,
    signal: &TokenStream,
    sender: &TokenStream,
    payload: &syn::Type,
    tx: &syn::Type,
) -> TokenStream {
    let private = receiver.root.private();
    let (open, close) = around(tx, quote!(<), quote!(>::Param));
    let param = quote!(#open #tx as #private::TxParam<'e> #close);
    quote!(#private::payload_and_tx::<#signal, #sender, #payload, #param>())
}

/// A model signal's sender must be one of its senders (a model; for `m2m_changed` a through
/// type): a field type naming `<signal as SenderOf<Sender>>::Sender`, spanned from the first to
/// the last token of the user's sender so that rustc reports it there. A field, not a constant:
/// its type is checked once, with no body to check it again.
fn sender_check(receiver: &Receiver, signal: &TokenStream, sender: &syn::Type) -> TokenStream {
    let private = receiver.root.private();
    let (open, close) = around(sender, quote!(<), quote!(>::Sender));
    quote! {
        #[allow(dead_code)]
        struct __SignalsSender(#open #signal as #private::SenderOf<#sender> #close);
    }
}

/// `open` and `close` spanned at the first and the last token of `ty`, so that what is written
/// between them spans `ty` as the user wrote it: rustc reports there what fails in it.
fn around(ty: &syn::Type, open: TokenStream, close: TokenStream) -> (TokenStream, TokenStream) {
    let mut tokens = ty.to_token_stream().into_iter();
    let first = tokens
        .next()
        .map_or_else(proc_macro2::Span::call_site, |t| t.span());
    let last = tokens.last().map_or(first, |t| t.span());
    (respan(open, first), respan(close, last))
}

fn respan(tokens: TokenStream, span: proc_macro2::Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let proc_macro2::TokenTree::Group(group) = &token {
                let mut group =
                    proc_macro2::Group::new(group.delimiter(), respan(group.stream(), span));
                group.set_span(span);
                token = proc_macro2::TokenTree::Group(group);
            } else {
                token.set_span(span);
            }
            token
        })
        .collect()
}

/// A durable receiver: its checks, its jobs' options, the function a worker runs a job with
/// and its link-time registration (`DurableDef`); and the dispatcher's handler, which enqueues
/// the job in the write's transaction (a model signal) or in the durable send in progress (a
/// custom signal), with the `Handler` variant it goes in.
fn durable_receiver(
    receiver: &Receiver,
    durable: &Durable,
    signal: &TokenStream,
    django: bool,
    receiver_name: &TokenStream,
    name: &syn::Ident,
) -> (TokenStream, (TokenStream, TokenStream)) {
    let private = receiver.root.private();
    let payload = &durable.payload;
    // The name its jobs carry: the function's path unless `name = ".."` fixes it.
    let receiver_name = durable
        .name
        .as_ref()
        .map_or_else(|| receiver_name.clone(), |name| quote!(#name));
    let receiver_name = &receiver_name;
    // The payload as the generated code names it: unknown when it is not a payload, so that
    // the check below is the only error reported about it.
    let checked =
        quote_spanned!(payload.span()=> <#payload as #private::durable::DurablePayload>::Checked);
    let checks = match (&receiver.sender, django) {
        (Some(sender), true) => quote_spanned!(payload.span()=>
            #private::durable::payload::<#payload>();
            #private::durable::job_of::<#payload, #sender>();
        ),
        _ if django => quote_spanned!(payload.span()=> #private::durable::payload::<#payload>();),
        _ => quote_spanned!(payload.span()=>
            #private::durable::payload::<#payload>();
            #private::durable::signal_job::<#payload, #signal>();
        ),
    };
    let options = durable.options.iter().map(|(key, value)| {
        let method = if key == "job_priority" {
            format_ident!("priority", span = key.span())
        } else {
            debug_assert!(JOB_OPTIONS.contains(&key.to_string().as_str()));
            key.clone()
        };
        quote_spanned!(value.span()=> .#method(#value))
    });
    // A durable receiver runs later, in a worker: it gives no reply, whatever the signal's.
    let into_result = into_result(receiver, &quote!(()));
    let call = if receiver.is_async {
        quote!(#name(job).await)
    } else {
        quote!(#name(job))
    };
    let sender_name = receiver.sender.as_ref().map_or_else(
        || quote!(|| "-"),
        |ty| quote!(|| #private::sender_of::<#ty>().name()),
    );
    let items = quote! {
        const _: () = { #checks };
        const __SIGNALS_JOB_OPTIONS: #private::durable::JobOptions =
            #private::durable::JobOptions::new() #(#options)*;
        fn __signals_run(
            job: #private::durable::RawJob,
        ) -> #private::BoxFuture<'static, #private::Result<(), #private::durable::JobError>> {
            match job.decode::<#checked>() {
                #private::Result::Ok(job) => #private::Box::pin(async move {
                    #into_result(#call).map_err(#private::durable::JobError::Failed)
                }),
                #private::Result::Err(error) => {
                    #private::Box::pin(::core::future::ready(#private::Result::Err(error)))
                }
            }
        }
        #private::inventory::submit! {
            #private::durable::DurableDef {
                name: #receiver_name,
                function: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)),
                signal: <#signal as #private::Signal>::NAME,
                sender: #sender_name,
                payload: || ::core::any::type_name::<#checked>(),
                options: __SIGNALS_JOB_OPTIONS,
                run: __signals_run,
            }
        }
    };
    let handler = if django {
        let call = quote! {
            fn call<'e>(&self, __signals_sender: #private::Sender, event: <#signal as #private::Signal>::Event<'e>)
                -> #private::BoxFuture<'e, #private::Result<(), #private::BoxError>>
            {
                #private::durable::enqueue::<#signal, #checked>(event, #receiver_name, __SIGNALS_JOB_OPTIONS)
            }
        };
        (
            quote!(impl #private::AsyncHandler<#signal> for __SignalsReceiver { #call }),
            quote!(Async),
        )
    } else {
        let checked_signal = quote_spanned!(payload.span()=>
            <#signal as #private::durable::DurablePayload>::Checked
        );
        let call = quote! {
            fn call<'e>(&self, __signals_sender: #private::Sender, event: <#signal as #private::Signal>::Event<'e>)
                -> #private::Result<(), #private::BoxError>
            {
                #private::durable::collect::<#checked_signal>(event, __signals_sender, #receiver_name, __SIGNALS_JOB_OPTIONS)
            }
        };
        (
            quote!(impl #private::SyncHandler<#signal> for __SignalsReceiver { #call }),
            quote!(Sync),
        )
    };
    (items, handler)
}

/// The handler impl calling the user's function, and the `Handler` variant it goes in.
fn handler(
    receiver: &Receiver,
    signal: &TokenStream,
    sender_marker: &TokenStream,
    receiver_name: &TokenStream,
    name: &syn::Ident,
) -> (TokenStream, TokenStream) {
    let private = receiver.root.private();
    let (mut args, extract) = arguments(receiver, signal, sender_marker);
    if let Some(ty) = &receiver.sender_param {
        // Checked at the user's type: a `Sender` that is not the dispatcher's is reported there.
        args.push(
            quote_spanned!(ty.span()=> { let __signals_s: #ty = __signals_sender; __signals_s }),
        );
    }
    let reply = quote!(<#signal as #private::Signal>::Reply);
    // An `on_commit` receiver runs after COMMIT and gives no reply.
    let into_result = if receiver.on_commit {
        into_result(receiver, &quote!(()))
    } else {
        into_result(receiver, &reply)
    };
    if receiver.on_commit {
        // Runs at commit: the handler only queues an owned copy of the payload on the write's
        // transaction.
        let ty = &receiver.params[0];
        let arg = format_ident!("__signals_arg0");
        let sender_arg = args.get(1).into_iter();
        let call = quote!(#name(#arg #(, #sender_arg)*));
        let run = if receiver.is_async {
            quote!(#call.await)
        } else {
            call
        };
        let defer = quote! {
            #private::defer_on_commit::<#signal, #sender_marker, #ty, _, _>(
                event,
                #receiver_name,
                move |#arg: #ty| async move { #into_result(#run) },
            )
        };
        if receiver.is_async {
            // Queued at once all the same. An async handler (a ready future, one allocation
            // per send) only so that introspection lists the receiver as async, as it runs.
            let call = quote! {
                fn call<'e>(&self, __signals_sender: #private::Sender, event: <#signal as #private::Signal>::Event<'e>)
                    -> #private::BoxFuture<'e, #private::Result<(), #private::BoxError>>
                {
                    #private::Box::pin(::core::future::ready(#defer))
                }
            };
            return (
                quote!(impl #private::AsyncHandler<#signal> for __SignalsReceiver { #call }),
                quote!(Async),
            );
        }
        let call = quote! {
            fn call<'e>(&self, __signals_sender: #private::Sender, event: <#signal as #private::Signal>::Event<'e>)
                -> #private::Result<(), #private::BoxError>
            {
                #defer
            }
        };
        (
            quote!(impl #private::SyncHandler<#signal> for __SignalsReceiver { #call }),
            quote!(Sync),
        )
    } else if receiver.is_async {
        // `call` drops the reply (a plain send), `call_reply` keeps it (`send_collect`).
        let call = quote! {
            fn call<'e>(&self, __signals_sender: #private::Sender, event: <#signal as #private::Signal>::Event<'e>)
                -> #private::BoxFuture<'e, #private::Result<(), #private::BoxError>>
            {
                #private::Box::pin(async move {
                    #extract
                    #private::discard_reply(#into_result(#name(#(#args),*).await))
                })
            }
            fn call_reply<'e>(&self, __signals_sender: #private::Sender, event: <#signal as #private::Signal>::Event<'e>)
                -> #private::BoxFuture<'e, #private::Result<#private::Option<<#signal as #private::Signal>::Reply>, #private::BoxError>>
            {
                #private::Box::pin(async move {
                    #extract
                    #into_result(#name(#(#args),*).await).map(#private::Option::Some)
                })
            }
        };
        (
            quote!(impl #private::AsyncHandler<#signal> for __SignalsReceiver { #call }),
            quote!(Async),
        )
    } else {
        let call = quote! {
            #[inline]
            fn call<'e>(&self, __signals_sender: #private::Sender, event: <#signal as #private::Signal>::Event<'e>)
                -> #private::Result<(), #private::BoxError>
            {
                #extract
                #private::discard_reply(#into_result(#name(#(#args),*)))
            }
            fn call_reply<'e>(&self, __signals_sender: #private::Sender, event: <#signal as #private::Signal>::Event<'e>)
                -> #private::Result<#private::Option<<#signal as #private::Signal>::Reply>, #private::BoxError>
            {
                #extract
                #into_result(#name(#(#args),*)).map(#private::Option::Some)
            }
        };
        (
            quote!(impl #private::SyncHandler<#signal> for __SignalsReceiver { #call }),
            quote!(Sync),
        )
    }
}

/// The path of the return adapter: `<Output as ReceiverOutput<Reply>>::into_result`, where
/// `reply` is the signal's reply type (`()` for a receiver that runs later and gives none),
/// spanned at the declared return type so an unsupported one is reported there. Types that
/// cannot be named in an expression (`impl Trait`, `!`) go through inference instead, and a
/// function without a return type (which returns `()`) is reported at its name.
fn into_result(receiver: &Receiver, reply: &TokenStream) -> TokenStream {
    let private = receiver.root.private();
    match &receiver.output {
        Some(ty) if !matches!(ty, syn::Type::Never(_)) && !mentions_impl(ty.to_token_stream()) => {
            quote_spanned!(ty.span()=> <#ty as #private::ReceiverOutput<#reply>>::into_result)
        }
        None => {
            let at = receiver.name_span;
            quote_spanned!(at=> <() as #private::ReceiverOutput<#reply>>::into_result)
        }
        _ => quote!(<_ as #private::ReceiverOutput<#reply>>::into_result),
    }
}

/// Whether `impl` appears anywhere in a type.
fn mentions_impl(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|tree| match tree {
        proc_macro2::TokenTree::Ident(ident) => ident == "impl",
        proc_macro2::TokenTree::Group(group) => mentions_impl(group.stream()),
        _ => false,
    })
}

/// The arguments of the call and the statement that builds them from `event`.
///
/// With two parameters (payload and transaction) each is checked at its own type. The tuple
/// comes from the function `payload_and_tx::<.., Payload, <Tx as TxParam>::Param>()` returns,
/// which rustc blames on the payload type; the transaction type is checked by `TxParam`,
/// reported at that type (`tx_param::<Tx, _>` hands the transaction over as `Tx`). A
/// transaction type that is not one leaves `Param` unknown, so the tuple is not reported too.
fn arguments(
    receiver: &Receiver,
    signal: &TokenStream,
    sender: &TokenStream,
) -> (Vec<TokenStream>, TokenStream) {
    let private = receiver.root.private();
    let arg0 = format_ident!("__signals_arg0");
    if let [payload, tx] = receiver.params.as_slice() {
        let arg1 = format_ident!("__signals_arg1");
        let parts = payload_and_tx(receiver, signal, sender, payload, tx);
        let extract = quote! {
            let (#arg0, #arg1) = (#parts.0)(event)?;
        };
        (
            vec![quote!(#arg0), quote!(#private::tx_param::<#tx, _>(#arg1))],
            extract,
        )
    } else {
        // One parameter (validation rejects the other counts).
        let from = receiver.params.first().map(|ty| {
            quote_spanned!(ty.span()=> <#ty as #private::FromEvent<'e, #signal, #sender>>::from_event)
        });
        (vec![quote!(#arg0)], quote!(let #arg0 = #from(event)?;))
    }
}
