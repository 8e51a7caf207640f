//! Reads a `#[derive(Model)]` item: the `#[model(...)]` keys of the struct and of its fields,
//! and their `#[sqlx(...)]` keys, into plain structs. Only what cannot be read is reported here
//! (unknown or repeated keys, values of the wrong kind); how the parts fit together is checked
//! by `validate`.

use proc_macro2::Span;
use syn::spanned::Spanned as _;

use crate::root::Root;
use crate::suggest;

/// The keys of `#[model(...)]` on the struct.
const STRUCT_KEYS: &[&str] = &["table", "crate"];
/// The keys of `#[model(...)]` on a field.
const FIELD_KEYS: &[&str] = &["primary_key", "column", "skip"];

/// The derive input as written.
pub struct Input<'a> {
    pub item: &'a syn::DeriveInput,
    /// The runtime crate, after `#[model(crate = ...)]`.
    pub root: Root,
    /// `#[model(table = "...")]`, when given as a string literal.
    pub table: Option<syn::LitStr>,
    /// `table` was written (maybe invalid), or a misspelling of it: no "needs the table"
    /// follow-up.
    pub table_meant: bool,
    /// The keys of the struct's `#[sqlx(...)]` attributes.
    pub sqlx_keys: Vec<SqlxKey>,
    pub body: Body<'a>,
}

/// What the derive was put on.
pub enum Body<'a> {
    /// A struct with named fields, each read.
    Named(Vec<Field<'a>>),
    /// A tuple struct (its fields' span) or a unit struct.
    Unnamed(Option<Span>),
    Enum(&'a syn::DataEnum),
    Union(&'a syn::DataUnion),
}

/// A named field and its keys.
pub struct Field<'a> {
    pub ident: &'a syn::Ident,
    pub ty: &'a syn::Type,
    /// The span of `primary_key`.
    pub primary_key: Option<Span>,
    /// `primary_key` was written, or a misspelling of it: no "needs a primary key" follow-up.
    pub primary_key_meant: bool,
    /// `column = "..."`, when given as a string literal.
    pub column: Option<syn::LitStr>,
    /// The span of `skip`.
    pub skip: Option<Span>,
    pub sqlx_keys: Vec<SqlxKey>,
}

/// A key of a `#[sqlx(...)]` attribute.
pub struct SqlxKey {
    pub name: String,
    pub span: Span,
}

/// Reads the item; every problem found is pushed to `errors` and reading goes on.
pub fn input<'a>(
    root: Root,
    item: &'a syn::DeriveInput,
    errors: &mut Vec<syn::Error>,
) -> Input<'a> {
    let mut input = Input {
        item,
        root,
        table: None,
        table_meant: false,
        sqlx_keys: sqlx_keys(&item.attrs),
        body: Body::Unnamed(None),
    };
    struct_attrs(&mut input, errors);
    input.body = match &item.data {
        syn::Data::Struct(data) => match &data.fields {
            syn::Fields::Named(named) => Body::Named(
                named
                    .named
                    .iter()
                    .filter_map(|field| field_attrs(field, errors))
                    .collect(),
            ),
            syn::Fields::Unnamed(unnamed) => Body::Unnamed(Some(unnamed.span())),
            syn::Fields::Unit => Body::Unnamed(None),
        },
        syn::Data::Enum(data) => Body::Enum(data),
        syn::Data::Union(data) => Body::Union(data),
    };
    input
}

fn struct_attrs(input: &mut Input<'_>, errors: &mut Vec<syn::Error>) {
    let mut table_given = false;
    let mut custom_root = false;
    for attr in input
        .item
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("model"))
    {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("table") {
                input.table_meant = true;
                let Some(value) = string_value(&meta, "table", errors)? else {
                    table_given = true;
                    return Ok(());
                };
                if table_given {
                    errors.push(meta.error("`table` is given twice: keep one"));
                } else {
                    input.table = Some(value);
                }
                table_given = true;
            } else if meta.path.is_ident("crate") {
                let path: syn::Path = meta.value()?.parse()?;
                if custom_root {
                    errors.push(meta.error("`crate` is given twice: keep one"));
                } else {
                    custom_root = true;
                    input.root = Root::Custom(path, Box::new(input.root.clone()));
                }
            } else {
                let key = path_name(&meta.path);
                let message = if FIELD_KEYS.contains(&key.as_str()) {
                    let example = example(&key);
                    format!(
                        "`{key}` goes on a field, not on the struct: move `{example}` onto the field; the struct keys are `table` and `crate`"
                    )
                } else {
                    input.table_meant |= suggest::closest(&key, STRUCT_KEYS) == Some("table");
                    let hint = misspelt(&key, STRUCT_KEYS, FIELD_KEYS, "goes on a field");
                    format!(
                        "unknown #[model] key `{key}` on a struct{hint}; the struct keys are `table` and `crate`"
                    )
                };
                errors.push(syn::Error::new_spanned(&meta.path, message));
                skip_value(&meta)?;
            }
            Ok(())
        });
        if let Err(error) = result {
            errors.push(error);
        }
    }
}

/// The keys of a named field (`None` for an unnamed one, which `Body::Unnamed` covers).
fn field_attrs<'a>(field: &'a syn::Field, errors: &mut Vec<syn::Error>) -> Option<Field<'a>> {
    let mut read = Field {
        ident: field.ident.as_ref()?,
        ty: &field.ty,
        primary_key: None,
        primary_key_meant: false,
        column: None,
        skip: None,
        sqlx_keys: sqlx_keys(&field.attrs),
    };
    let mut column_given = false;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("model")) {
        let result = attr.parse_nested_meta(|meta| {
            let span = meta.path.span();
            if meta.path.is_ident("primary_key") {
                read.primary_key_meant = true;
                if read.primary_key.is_some() {
                    errors.push(meta.error("`primary_key` is given twice: keep one"));
                } else {
                    read.primary_key = Some(span);
                }
            } else if meta.path.is_ident("skip") {
                if read.skip.is_some() {
                    errors.push(meta.error("`skip` is given twice: keep one"));
                } else {
                    read.skip = Some(span);
                }
            } else if meta.path.is_ident("column") {
                let Some(value) = string_value(&meta, "column", errors)? else {
                    column_given = true;
                    return Ok(());
                };
                if column_given {
                    errors.push(meta.error("`column` is given twice: keep one"));
                } else {
                    read.column = Some(value);
                }
                column_given = true;
            } else {
                let key = path_name(&meta.path);
                let message = if STRUCT_KEYS.contains(&key.as_str()) {
                    let example = example(&key);
                    format!(
                        "`{key}` goes on the struct, not on a field: move `{example}` above the struct; the field keys are `primary_key`, `column` and `skip`"
                    )
                } else {
                    read.primary_key_meant |=
                        suggest::closest(&key, FIELD_KEYS) == Some("primary_key");
                    let hint = misspelt(&key, FIELD_KEYS, STRUCT_KEYS, "goes on the struct");
                    format!(
                        "unknown #[model] key `{key}` on a field{hint}; the field keys are `primary_key`, `column` and `skip`"
                    )
                };
                errors.push(syn::Error::new_spanned(&meta.path, message));
                skip_value(&meta)?;
            }
            Ok(())
        });
        if let Err(error) = result {
            errors.push(error);
        }
    }
    Some(read)
}

/// The string of `key = "..."`; anything else is reported (and `None`), and parsing goes on.
fn string_value(
    meta: &syn::meta::ParseNestedMeta<'_>,
    key: &str,
    errors: &mut Vec<syn::Error>,
) -> syn::Result<Option<syn::LitStr>> {
    let value: syn::Expr = meta.value()?.parse()?;
    if let syn::Expr::Lit(syn::ExprLit {
        lit: syn::Lit::Str(lit),
        ..
    }) = value
    {
        return Ok(Some(lit));
    }
    let example = example(key);
    errors.push(syn::Error::new_spanned(
        value,
        format!("`{key}` takes a string literal: `{example}`"),
    ));
    Ok(None)
}

/// Consumes the `= value` or `(...)` of a key already reported, so the keys after it are
/// still checked.
fn skip_value(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let _: syn::Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        let _: proc_macro2::TokenStream = content.parse()?;
    }
    Ok(())
}

/// " (did you mean `x`?)" for a key of this place, or " (did you mean `x`? it goes on ...)" for
/// a key of the other place, or nothing.
fn misspelt(key: &str, here: &[&str], there: &[&str], goes: &str) -> String {
    match (suggest::closest(key, here), suggest::closest(key, there)) {
        (Some(c), _) => format!(" (did you mean `{c}`?)"),
        (None, Some(c)) => format!(" (did you mean `{c}`? it {goes})"),
        (None, None) => String::new(),
    }
}

/// How a known key is written, for "move it" hints.
fn example(key: &str) -> &'static str {
    match key {
        "table" => "#[model(table = \"users\")]",
        "crate" => "#[model(crate = path::to::signals_orm)]",
        "column" => "#[model(column = \"user_name\")]",
        "skip" => "#[model(skip)]",
        _ => "#[model(primary_key)]",
    }
}

fn path_name(path: &syn::Path) -> String {
    path.get_ident()
        .map_or_else(|| quote::quote!(#path).to_string(), ToString::to_string)
}

/// The keys of `#[sqlx(...)]` attributes, with their spans. Whatever sqlx accepts is its own
/// business: what cannot be read is skipped, not reported.
fn sqlx_keys(attrs: &[syn::Attribute]) -> Vec<SqlxKey> {
    let mut keys = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("sqlx")) {
        let _ = attr.parse_nested_meta(|meta| {
            keys.push(SqlxKey {
                name: path_name(&meta.path),
                span: meta.path.span(),
            });
            if meta.input.peek(syn::Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            }
            Ok(())
        });
    }
    keys
}
