//! Which runtime crate generated code reaches. Each public crate re-exports its own entry
//! point, so users never depend on a crate they did not add.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};

/// The crate whose `__private` module generated code goes through.
#[derive(Clone)]
pub enum Root {
    Core,
    Orm,
    /// `crate = some::path` given by the user (a renamed dependency).
    Custom(syn::Path, Box<Self>),
}

impl Root {
    /// Whether the ORM's model signals and transaction parameters are available.
    pub fn has_orm(&self) -> bool {
        match self {
            Self::Core => false,
            Self::Orm => true,
            Self::Custom(_, base) => base.has_orm(),
        }
    }

    /// The path of `__private`.
    pub fn private(&self) -> TokenStream {
        quote!(#self::__private)
    }
}

impl ToTokens for Root {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        match self {
            Self::Core => tokens.extend(quote!(::signals_core)),
            Self::Orm => tokens.extend(quote!(::signals_orm)),
            Self::Custom(path, _) => path.to_tokens(tokens),
        }
    }
}
