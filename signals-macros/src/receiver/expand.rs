//! Code generation: per signal, a zero-sized handler type calling the user's function, a
//! `static` handler, and an `inventory` submission carrying the receiver's metadata.
//!
//! Adapter calls are spanned at the user's parameter and return types, so a type that does
//! not fit the signal is reported there and not inside generated code.

use proc_macro2::TokenStream;
use quote::{ToTokens as _, format_ident, quote, quote_spanned};
use syn::spanned::Spanned as _;

use super::validate::Receiver;

pub fn receiver(receiver: &Receiver, function: &syn::ItemFn) -> TokenStream {
    receiver
        .signals
        .iter()
        .map(|signal| one_signal(receiver, signal, function))
        .collect()
}

fn one_signal(receiver: &Receiver, signal: &TokenStream, function: &syn::ItemFn) -> TokenStream {
    let private = receiver.root.private();
    let name = &function.sig.ident;
    let sender_marker = receiver
        .sender
        .as_ref()
        .map_or_else(|| quote!(#private::AnySender), |ty| quote!(#ty));
    let name_str = name.to_string();
    let receiver_name = quote!(::core::concat!(::core::module_path!(), "::", #name_str));
    let (handler_impl, handler_variant) =
        handler(receiver, signal, &sender_marker, &receiver_name, name);
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

    let at = name.span();
    let line = quote_spanned!(at=> ::core::line!());
    let column = quote_spanned!(at=> ::core::column!());
    quote! {
        #[doc(hidden)]
        const _: () = {
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
                    },
                }
            }
        };
    }
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
    let (arg_names, extract) = arguments(receiver, signal, sender_marker);
    let into_result = into_result(receiver);
    if receiver.on_commit {
        // Runs at commit: the handler only queues an owned copy of the payload on the write's
        // transaction; it is sync whatever the function is.
        let ty = &receiver.params[0];
        let arg = &arg_names[0];
        let run = if receiver.is_async {
            quote!(#name(#arg).await)
        } else {
            quote!(#name(#arg))
        };
        let call = quote! {
            fn call<'e>(&self, event: <#signal as #private::Signal>::Event<'e>)
                -> #private::Result<(), #private::BoxError>
            {
                #private::defer_on_commit::<#signal, #sender_marker, #ty, _, _>(
                    event,
                    #receiver_name,
                    move |#arg: #ty| async move { #into_result(#run) },
                )
            }
        };
        (
            quote!(impl #private::SyncHandler<#signal> for __SignalsReceiver { #call }),
            quote!(Sync),
        )
    } else if receiver.is_async {
        let call = quote! {
            fn call<'e>(&self, event: <#signal as #private::Signal>::Event<'e>)
                -> #private::BoxFuture<'e, #private::Result<(), #private::BoxError>>
            {
                #private::Box::pin(async move {
                    #extract
                    #into_result(#name(#(#arg_names),*).await)
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
            fn call<'e>(&self, event: <#signal as #private::Signal>::Event<'e>)
                -> #private::Result<(), #private::BoxError>
            {
                #extract
                #into_result(#name(#(#arg_names),*))
            }
        };
        (
            quote!(impl #private::SyncHandler<#signal> for __SignalsReceiver { #call }),
            quote!(Sync),
        )
    }
}

/// The path of the return adapter: `<Output as ReceiverOutput>::into_result`, spanned at the
/// declared return type so an unsupported one is reported there. Types that cannot be named in
/// an expression (`impl Trait`, `!`) go through inference instead.
fn into_result(receiver: &Receiver) -> TokenStream {
    let private = receiver.root.private();
    match &receiver.output {
        Some(ty) if !matches!(ty, syn::Type::Never(_)) && !mentions_impl(ty.to_token_stream()) => {
            quote_spanned!(ty.span()=> <#ty as #private::ReceiverOutput>::into_result)
        }
        _ => quote!(#private::ReceiverOutput::into_result),
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

/// The argument names and the statement that builds them from `event`.
fn arguments(
    receiver: &Receiver,
    signal: &TokenStream,
    sender: &TokenStream,
) -> (Vec<syn::Ident>, TokenStream) {
    let private = receiver.root.private();
    let names: Vec<syn::Ident> = (0..receiver.params.len())
        .map(|i| format_ident!("__signals_arg{i}"))
        .collect();
    let extract = if let [ty] = receiver.params.as_slice() {
        let from = quote_spanned!(ty.span()=> <#ty as #private::FromEvent<'e, #signal, #sender>>::from_event);
        let arg = &names[0];
        quote!(let #arg = #from(event)?;)
    } else {
        let tys = &receiver.params;
        let span = tys
            .last()
            .map_or_else(proc_macro2::Span::call_site, syn::spanned::Spanned::span);
        let from = quote_spanned!(span=> <(#(#tys),*) as #private::FromEvent<'e, #signal, #sender>>::from_event);
        quote!(let (#(#names),*) = #from(event)?;)
    };
    (names, extract)
}
