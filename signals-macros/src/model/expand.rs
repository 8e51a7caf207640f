//! The `Model` and `Persist<DB>` impls of a checked model, or the stub impls that stand in
//! for them when the model has errors.

use proc_macro2::TokenStream;
use quote::{ToTokens as _, quote, quote_spanned};
use syn::ext::IdentExt as _;
use syn::spanned::Spanned as _;

use super::validate::{ForeignKey, Model, OnDelete};
use crate::root::Root;

pub fn model(model: &Model) -> TokenStream {
    let private = model.root.private();
    let ident = &model.ident;
    let key = &model.key.ident;
    let key_name = &model.key.name;
    let key_type = &model.key_type;
    let field_names: Vec<&str> = model.fields.iter().map(|f| f.name.as_str()).collect();
    let field_idents: Vec<&syn::Ident> = model.fields.iter().map(|f| &f.ident).collect();
    let field_types: Vec<&syn::Type> = model.fields.iter().map(|f| &f.ty).collect();
    let (pk, set_pk) = if model.key_generated {
        (
            quote!(::core::clone::Clone::clone(&self.#key)),
            quote!(self.#key = pk;),
        )
    } else {
        (
            quote!(::core::option::Option::Some(::core::clone::Clone::clone(&self.#key))),
            quote!(let _ = pk;),
        )
    };
    // Spanned at each field's type: a field that is not `Serialize` is reported there.
    let json = |ident: &syn::Ident, ty: &syn::Type| quote_spanned!(ty.span()=> #private::json::<#ty>(&self.#ident));
    let key_json = json(key, &model.key.ty);
    let field_json: Vec<TokenStream> = model.fields.iter().map(|f| json(&f.ident, &f.ty)).collect();
    // Spanned at each field's type and at the struct's name: with one backend on, a field the
    // database cannot store, or a missing `sqlx::FromRow`, is reported there.
    let column_checks = std::iter::once(&model.key.ty)
        .chain(field_types.iter().copied())
        .map(|ty| quote_spanned!(ty.span()=> #private::checks::column::<#ty>();));
    let row_check = quote_spanned!(ident.span()=> #private::checks::row::<#ident>(););
    let meta = meta(model);
    let columns = columns(model);
    let columns_ident = quote::format_ident!("{}Columns", ident);
    let value_indexes: Vec<usize> = (1..=model.fields.len()).collect();
    let set_key = if model.key_generated {
        quote!(::core::option::Option::Some(#private::take_value::<#key_type>(value)))
    } else {
        quote!(#private::take_value::<#key_type>(value))
    };
    let persist = persist(model);
    let foreign_keys = foreign_keys(model);
    let field_differs = field_differs(model);
    quote! {
        const _: () = {
            #(#column_checks)*
            #row_check
        };

        // The model registry: `class_prepared` and `signals_orm::check` find it here.
        const _: () = {
            #private::inventory::submit! {
                #private::RegisteredModel {
                    meta: <#ident as #private::Model>::META,
                    sender: #private::sender_of::<#ident>,
                    backends: #private::model_backends!(#ident),
                }
            }
        };

        const _: () = {
        #columns

        #[automatically_derived]
        impl #private::Model for #ident {
            type Pk = #key_type;
            type Columns = #columns_ident;
            fn columns() -> #columns_ident {
                #columns_ident::NEW
            }
            const META: &'static #private::ModelMeta = &#meta;
            fn sql() -> &'static #private::ModelSql {
                static SQL: #private::OnceLock<#private::ModelSql> = #private::OnceLock::new();
                SQL.get_or_init(|| #private::ModelSql::new(<Self as #private::Model>::META))
            }
            fn pk(&self) -> ::core::option::Option<Self::Pk> {
                #pk
            }
            fn set_value(
                &mut self,
                column: usize,
                value: #private::Box<dyn ::core::any::Any + ::core::marker::Send + ::core::marker::Sync>,
            ) {
                match column {
                    0 => self.#key = #set_key,
                    #(#value_indexes => self.#field_idents = #private::take_value::<#field_types>(value),)*
                    _ => {}
                }
            }
            fn set_pk(&mut self, pk: ::core::option::Option<Self::Pk>) {
                #set_pk
            }
            #field_differs
            fn values(&self) -> ::std::vec::Vec<(&'static str, #private::serde_json::Value)> {
                ::std::vec![
                    (#key_name, #key_json),
                    #((#field_names, #field_json),)*
                ]
            }
        }
        };

        #persist

        #foreign_keys
    }
}

/// `Model::field_differs`: per saved field, `PartialEq` where the field's type implements it,
/// else "differs" (autoref specialisation on the concrete field type, see `FieldPair`).
fn field_differs(model: &Model) -> TokenStream {
    let private = model.root.private();
    let indexes = 0..model.fields.len();
    let idents = model.fields.iter().map(|f| &f.ident);
    quote! {
        fn field_differs(&self, other: &Self, field: usize) -> bool {
            #[allow(unused_imports)]
            use #private::{DiffersAlways as _, DiffersByEq as _};
            match field {
                #(#indexes => (&#private::FieldPair(&self.#idents, &other.#idents)).differs(),)*
                _ => true,
            }
        }
    }
}

/// For each foreign key: the check that it holds the parent's key type, the `Relation` the
/// parent's deletes find at link time, the method that fetches the parent, and, for a parent
/// only one foreign key points at, `BelongsTo` (`Child::of(&parent)`).
fn foreign_keys(model: &Model) -> TokenStream {
    if model.foreign_keys.is_empty() {
        return TokenStream::new();
    }
    let private = model.root.private();
    let ident = &model.ident;
    let parents: Vec<String> = model
        .foreign_keys
        .iter()
        .map(|f| f.parent.to_token_stream().to_string())
        .collect();
    let mut checks = Vec::new();
    let mut relations = Vec::new();
    let mut accessors = Vec::new();
    let mut belongs_to = Vec::new();
    for (foreign_key, parent_name) in model.foreign_keys.iter().zip(&parents) {
        let ForeignKey {
            ty,
            key_type,
            parent,
            ..
        } = foreign_key;
        // Spanned at the field's type: a key of another type than the parent's is reported
        // there.
        checks.push(quote_spanned!(ty.span()=>
            #private::checks::foreign_key_holds_parent_key::<#parent, #key_type>();
        ));
        relations.push(relation(model, foreign_key));
        accessors.push(accessor(model, foreign_key));
        if parents.iter().filter(|p| *p == parent_name).count() == 1 {
            belongs_to.push(belongs_to_impl(model, foreign_key));
        }
    }
    // The parent's path is the user's: `crate::Customer` where `Customer` would do is theirs to
    // write in an attribute.
    quote! {
        #[allow(unused_qualifications)]
        const _: () = {
            #(#checks)*
        };

        #[allow(unused_qualifications)]
        const _: () = {
            #(#relations)*

            impl #ident {
                #(#accessors)*
            }

            #(#belongs_to)*
        };
    }
}

/// `BelongsTo<Parent>`: the filter on the foreign key's column.
///
/// The column is typed with the parent's key type, not the field's: the same type when the
/// field's check passes, and when it fails, the check's error is the only one.
fn belongs_to_impl(model: &Model, foreign_key: &ForeignKey) -> TokenStream {
    let private = model.root.private();
    let ident = &model.ident;
    let parent = &foreign_key.parent;
    let parent_key = quote!(<#parent as #private::Model>::Pk);
    let value_type = if foreign_key.optional && foreign_key.column != 0 {
        quote!(::core::option::Option<#parent_key>)
    } else {
        parent_key.clone()
    };
    let column = proc_macro2::Literal::usize_unsuffixed(foreign_key.column);
    // Spanned at the parent: one that is no model is reported there (only the check's errors
    // add to it).
    respan(
        quote! {
            #[automatically_derived]
            impl #private::BelongsTo<#parent> for #ident {
                fn parent_filter(parent: #parent_key) -> #private::Filter<Self> {
                    #private::Column::<Self, #value_type>::eq(#private::Column::new(#column), parent)
                }
            }
        },
        parent.span(),
    )
}

/// `tokens` with every span set to `span`, so that an error anywhere in them is reported at
/// `span` (and identical errors there are reported once).
fn respan(tokens: TokenStream, span: proc_macro2::Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let proc_macro2::TokenTree::Group(group) = &tree {
                let mut new =
                    proc_macro2::Group::new(group.delimiter(), respan(group.stream(), span));
                new.set_span(span);
                tree = new.into();
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}

/// The `Relation` of a foreign key, submitted to `inventory`.
fn relation(model: &Model, foreign_key: &ForeignKey) -> TokenStream {
    let private = model.root.private();
    let ident = &model.ident;
    let ForeignKey {
        ty,
        parent,
        on_delete,
        default,
        ..
    } = foreign_key;
    let column = proc_macro2::Literal::usize_unsuffixed(foreign_key.column);
    // Spanned at the parent: one that is no model is reported there.
    let parent_meta = respan(quote!(<#parent as #private::Model>::META), parent.span());
    let variant = syn::Ident::new(on_delete.variant(), proc_macro2::Span::call_site());
    let boxed =
        quote!(#private::Box<dyn ::core::any::Any + ::core::marker::Send + ::core::marker::Sync>);
    let value = match (on_delete, default) {
        (OnDelete::SetNull, _) => quote! {
            ::core::option::Option::Some(|| #private::Box::new(<#ty>::None) as #boxed)
        },
        (OnDelete::SetDefault, Some(default)) => {
            // Spanned at the expression: a value of another type is reported there.
            let value = quote_spanned!(default.span()=> { let value: #ty = #default; value });
            quote! {
                ::core::option::Option::Some(|| #private::Box::new(#value) as #boxed)
            }
        }
        _ => quote!(::core::option::Option::None),
    };
    quote! {
        #private::inventory::submit! {
            #private::Relation {
                child: ::core::any::TypeId::of::<#ident>,
                parent: ::core::any::TypeId::of::<#parent>,
                child_meta: <#ident as #private::Model>::META,
                parent_meta: #parent_meta,
                column: #column,
                on_delete: #private::OnDelete::#variant,
                value: #value,
                ops: #private::relation_ops!(#ident, #parent),
            }
        }
    }
}

/// The method that fetches a foreign key's parent: `order.customer(&pool)`.
fn accessor(model: &Model, foreign_key: &ForeignKey) -> TokenStream {
    let private = model.root.private();
    let vis = &model.vis;
    let ForeignKey {
        field,
        name,
        parent,
        accessor,
        ..
    } = foreign_key;
    let parent_name = parent
        .segments
        .last()
        .map_or_else(String::new, |s| s.ident.unraw().to_string());
    let instance = snake_case(&model.ident.unraw().to_string());
    let method = accessor.unraw();
    let parent_key = respan(quote!(<#parent as #private::Model>::Pk), parent.span());
    let bound = respan(quote!(#parent: #private::Persist<DB>), parent.span());
    // The field's value as the parent's key type: the same type, as the check next to it
    // makes sure. Going through `Any` keeps this body free of errors when the check fails,
    // so that a mismatch is reported once, at the field.
    let key = |ty: TokenStream| {
        quote! {
            ::core::option::Option::expect(
                <dyn ::core::any::Any>::downcast_ref::<#ty>(&self.#field),
                "derive(Model) checks that a foreign key holds its parent's key type",
            )
        }
    };
    let (doc, output, body) = if foreign_key.optional {
        let key = key(quote!(::core::option::Option<#parent_key>));
        (
            format!(
                "The `{parent_name}` that `{name}` points to, `None` when it is `NULL` or no `{parent_name}` has that key (Django's `{instance}.{method}`)."
            ),
            quote!(::core::option::Option<#parent>),
            quote!(#private::optional_parent::<#parent, DB>(#private::IntoDb::into_db(db), ::core::option::Option::as_ref(#key))),
        )
    } else {
        let key = key(parent_key);
        (
            format!(
                "The `{parent_name}` that `{name}` points to (Django's `{instance}.{method}`); `OrmError::DoesNotExist` when no `{parent_name}` has that key."
            ),
            quote!(#parent),
            quote!(#private::parent::<#parent, DB>(#private::IntoDb::into_db(db), #key)),
        )
    };
    quote! {
        #[doc = #doc]
        #vis fn #accessor<'a, DB: #private::Backend>(
            &'a self,
            db: impl #private::IntoDb<'a, DB>,
        ) -> impl ::core::future::Future<Output = ::core::result::Result<#output, #private::OrmError>> + ::core::marker::Send + 'a
        where
            #bound,
        {
            #body
        }
    }
}

/// `OrderLine` -> `order_line`, for docs.
fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The `Persist<DB>` impl: binding and decoding for every backend whose types fit the fields.
fn persist(model: &Model) -> TokenStream {
    let private = model.root.private();
    let ident = &model.ident;
    let key_type = &model.key_type;
    let field_idents: Vec<&syn::Ident> = model.fields.iter().map(|f| &f.ident).collect();
    let field_types: Vec<&syn::Type> = model.fields.iter().map(|f| &f.ty).collect();
    let indexes: Vec<usize> = (0..model.fields.len()).collect();
    let value_indexes: Vec<usize> = (1..=model.fields.len()).collect();
    let sqlx = quote!(#private::sqlx);
    let query = quote!(#sqlx::query::Query<'q, DB, <DB as #sqlx::Database>::Arguments>);
    quote! {
        #[automatically_derived]
        impl<DB: #private::Backend> #private::Persist<DB> for #ident
        where
            #(#field_types: for<'t> #sqlx::Encode<'t, DB> + #sqlx::Type<DB>,)*
            #key_type: for<'t> #sqlx::Encode<'t, DB> + for<'r> #sqlx::Decode<'r, DB> + #sqlx::Type<DB>,
            Self: for<'r> #sqlx::FromRow<'r, <DB as #sqlx::Database>::Row>,
            usize: #sqlx::ColumnIndex<<DB as #sqlx::Database>::Row>,
        {
            fn bind_fields<'q>(&self, query: #query) -> #query {
                query #(.bind(&self.#field_idents))*
            }
            fn bind_field<'q>(&self, index: usize, query: #query) -> #query {
                match index {
                    #(#indexes => query.bind(&self.#field_idents),)*
                    _ => query,
                }
            }
            fn bind_pk<'q>(pk: &Self::Pk, query: #query) -> #query {
                query.bind(pk)
            }
            fn bind_value<'q>(
                column: usize,
                value: &'q (dyn ::core::any::Any + ::core::marker::Send + ::core::marker::Sync),
                query: #query,
            ) -> #query {
                match column {
                    0 => query.bind(#private::expect_value::<#key_type>(value)),
                    #(#value_indexes => query.bind(#private::expect_value::<#field_types>(value)),)*
                    _ => query,
                }
            }
            fn pk_from_row(row: &<DB as #sqlx::Database>::Row) -> ::core::result::Result<Self::Pk, #sqlx::Error> {
                #sqlx::Row::try_get::<Self::Pk, usize>(row, 0)
            }
            fn from_row(row: &<DB as #sqlx::Database>::Row) -> ::core::result::Result<Self, #sqlx::Error> {
                <Self as #sqlx::FromRow<'_, <DB as #sqlx::Database>::Row>>::from_row(row)
            }
            fn column_type(column: usize) -> ::core::option::Option<<DB as #sqlx::Database>::TypeInfo> {
                match column {
                    0 => ::core::option::Option::Some(<#key_type as #sqlx::Type<DB>>::type_info()),
                    #(#value_indexes => ::core::option::Option::Some(<#field_types as #sqlx::Type<DB>>::type_info()),)*
                    _ => ::core::option::Option::None,
                }
            }
            fn column_accepts(column: usize, found: &<DB as #sqlx::Database>::TypeInfo) -> bool {
                match column {
                    0 => <#key_type as #sqlx::Type<DB>>::compatible(found),
                    #(#value_indexes => <#field_types as #sqlx::Type<DB>>::compatible(found),)*
                    _ => false,
                }
            }
        }
    }
}

/// The struct of typed columns (`User::columns()`): a `Column` per saved field, named like it,
/// and the key's.
fn columns(model: &Model) -> TokenStream {
    let private = model.root.private();
    let ident = &model.ident;
    let vis = &model.vis;
    let columns_ident = quote::format_ident!("{}Columns", ident);
    let key = &model.key.ident;
    let key_type = &model.key_type;
    let key_doc = format!("The key column, `{}`.", model.key.column);
    let idents: Vec<&syn::Ident> = model.fields.iter().map(|f| &f.ident).collect();
    let types: Vec<&syn::Type> = model.fields.iter().map(|f| &f.ty).collect();
    let docs: Vec<String> = model
        .fields
        .iter()
        .map(|f| format!("The column `{}`.", f.column))
        .collect();
    let indexes: Vec<usize> = (1..=model.fields.len()).collect();
    let doc = format!("The typed columns of [`{ident}`], from `{ident}::columns()`.");
    quote! {
        #[doc = #doc]
        #[derive(Clone, Copy, Debug)]
        #vis struct #columns_ident {
            #[doc = #key_doc]
            pub #key: #private::Column<#ident, #key_type>,
            #(
                #[doc = #docs]
                pub #idents: #private::Column<#ident, #types>,
            )*
        }

        impl #columns_ident {
            const NEW: Self = #columns_ident {
                #key: #private::Column::new(0),
                #(#idents: #private::Column::new(#indexes),)*
            };
        }
    }
}

/// The `ModelMeta` literal: the names of the type, table, key and fields, their columns, and
/// each stored column as the struct declares it (key first).
fn meta(model: &Model) -> TokenStream {
    let private = model.root.private();
    let name = model.ident.to_string();
    let table = &model.table;
    let key_name = &model.key.name;
    let key_column = &model.key.column;
    let generated = model.key_generated;
    let field_names: Vec<&str> = model.fields.iter().map(|f| f.name.as_str()).collect();
    let columns: Vec<&str> = model.fields.iter().map(|f| f.column.as_str()).collect();
    let schema = std::iter::once(&model.key)
        .chain(&model.fields)
        .enumerate()
        .map(|(i, f)| {
            let (field, column, rust_type) = (&f.name, &f.column, &f.type_text);
            // The key's `Option` means "generated", not "may be NULL".
            let primary_key = i == 0;
            let nullable = f.optional && !primary_key;
            quote! {
                #private::ColumnMeta {
                    field: #field,
                    column: #column,
                    rust_type: #rust_type,
                    nullable: #nullable,
                    primary_key: #primary_key,
                }
            }
        });
    quote! {
        #private::ModelMeta {
            name: #name,
            table: #table,
            pk_field: #key_name,
            pk_column: #key_column,
            pk_generated: #generated,
            fields: &[#(#field_names),*],
            columns: &[#(#columns),*],
            schema: &[#(#schema),*],
        }
    }
}

/// Stand-in `Model` and `Persist<DB>` impls for a struct whose derive failed, so that its uses
/// (`user.save(&pool)`, `#[receiver(post_save, sender = User)]`) type-check and the derive's
/// own errors are the only ones reported.
pub fn stub(root: &Root, ident: &syn::Ident) -> TokenStream {
    let private = root.private();
    quote!(#private::stub_model!(#ident);)
}
