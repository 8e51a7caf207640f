//! `#[derive(Model)]`: read the struct and its `#[model(...)]` attributes (`parse`), check them
//! and build the model (`validate`), expand into `Model` and `Persist<DB>` impls (`expand`).
//! Every error found is reported at once; a struct with errors still gets stub impls, so one
//! mistake in the derive is not followed by an error at every use of the model.

mod expand;
mod parse;
mod validate;

use proc_macro2::TokenStream;

use crate::root::Root;

pub fn derive(root: Root, item: TokenStream) -> TokenStream {
    let item = match syn::parse2::<syn::DeriveInput>(item) {
        Ok(item) => item,
        Err(error) => return error.to_compile_error(),
    };
    let mut errors = Vec::new();
    let input = parse::input(root, &item, &mut errors);
    // The stub names the type, which a generic struct's cannot do without its parameters,
    // and an enum or union is no model to stand in for.
    let stub = (matches!(item.data, syn::Data::Struct(_)) && item.generics.params.is_empty())
        .then(|| expand::stub(&input.root, &item.ident));
    if let Some(model) = validate::model(input, &mut errors) {
        return expand::model(&model);
    }
    let mut out: TokenStream = errors.iter().map(syn::Error::to_compile_error).collect();
    out.extend(stub);
    out
}
