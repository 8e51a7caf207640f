//! Procedural macros of the signals workspace. Use them through `signals_core` or
//! `signals_orm`, which re-export them under their public names and make the generated code
//! reach the right runtime crate.
//!
//! The macros are documented where they are re-exported (`signals_orm::receiver` ...), where
//! the documentation can link the types it names.
#![expect(
    missing_docs,
    reason = "rustdoc appends a macro's own documentation to its re-export's page: the macros are documented there only"
)]

mod model;
mod receiver;
mod root;
mod signal;
mod suggest;

use proc_macro::TokenStream;

use root::Root;

#[proc_macro_attribute]
pub fn core_receiver(args: TokenStream, item: TokenStream) -> TokenStream {
    receiver::expand(Root::Core, args.into(), item.into()).into()
}

#[proc_macro_attribute]
pub fn orm_receiver(args: TokenStream, item: TokenStream) -> TokenStream {
    receiver::expand(Root::Orm, args.into(), item.into()).into()
}

#[proc_macro_derive(CoreSignal, attributes(signal))]
pub fn core_signal(item: TokenStream) -> TokenStream {
    signal::expand(Root::Core, item.into()).into()
}

#[proc_macro_derive(OrmSignal, attributes(signal))]
pub fn orm_signal(item: TokenStream) -> TokenStream {
    signal::expand(Root::Orm, item.into()).into()
}

#[proc_macro_derive(OrmModel, attributes(model))]
pub fn orm_model(item: TokenStream) -> TokenStream {
    model::derive(Root::Orm, item.into()).into()
}
