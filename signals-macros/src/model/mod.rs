//! `#[derive(Model)]`: parse the struct and its `#[model(...)]` attributes (collecting every
//! error), then expand into `Model` and `Persist<DB>` impls with one SQL text per statement.

mod expand;
mod parse;
mod sql;

use proc_macro2::TokenStream;

use crate::root::Root;

pub fn derive(root: Root, item: TokenStream) -> TokenStream {
    let input = match syn::parse2::<syn::DeriveInput>(item) {
        Ok(input) => input,
        Err(error) => return error.to_compile_error(),
    };
    match parse::model(root, &input) {
        Ok(model) => expand::model(&model),
        Err(errors) => errors.into_iter().map(|e| e.to_compile_error()).collect(),
    }
}
