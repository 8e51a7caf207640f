//! Checks a read `#[derive(Model)]` item and builds the checked `Model`: a struct with named
//! fields and no generics, a table, exactly one primary key, skipped fields that sqlx skips
//! too, no sqlx renames.

use proc_macro2::Span;
use syn::ext::IdentExt as _;

use super::parse::{self, Body, Input, SqlxKey};
use crate::root::Root;

/// A checked model.
pub struct Model {
    pub root: Root,
    pub ident: syn::Ident,
    /// The struct's visibility, given to its generated columns.
    pub vis: syn::Visibility,
    pub table: String,
    pub key: Field,
    /// Whether the key is an `Option<T>` the database fills in.
    pub key_generated: bool,
    /// The key's value type (`T` of `Option<T>`, or the field type).
    pub key_type: syn::Type,
    /// Saved non-key fields, in declaration order.
    pub fields: Vec<Field>,
}

pub struct Field {
    pub ident: syn::Ident,
    pub ty: syn::Type,
    /// The field's name as written, without `r#`.
    pub name: String,
    pub column: String,
}

/// The checked model; `None` when an error was pushed to `errors` (here or while reading).
pub fn model(input: Input<'_>, errors: &mut Vec<syn::Error>) -> Option<Model> {
    let item = input.item;
    reject_sqlx_renames(&input.sqlx_keys, errors);
    if !item.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &item.generics,
            "a model cannot be generic: its table, columns and field types are fixed at compile time; remove the parameters and give the fields concrete types",
        ));
    }
    let named = named_fields(input.body, &item.ident, errors);
    let table = table(input.table, input.table_meant, &item.ident, errors);
    let (key, fields) = named.map_or((None, Vec::new()), |named| {
        key_and_fields(&named, &item.ident, errors)
    });
    if !errors.is_empty() {
        return None;
    }
    let (table, key) = (table?, key?);
    let (key_generated, key_type) = match option_inner(&key.ty) {
        Some(inner) => (true, inner.clone()),
        None => (false, key.ty.clone()),
    };
    Some(Model {
        root: input.root,
        ident: item.ident.clone(),
        vis: item.vis.clone(),
        table,
        key,
        key_generated,
        key_type,
        fields,
    })
}

/// The fields of a struct with named fields; anything else is reported.
fn named_fields<'a>(
    body: Body<'a>,
    ident: &syn::Ident,
    errors: &mut Vec<syn::Error>,
) -> Option<Vec<parse::Field<'a>>> {
    let error = match body {
        Body::Named(fields) => return Some(fields),
        Body::Unnamed(span) => syn::Error::new(
            span.unwrap_or_else(|| ident.span()),
            "derive(Model) needs named fields, one per column: `struct User { #[model(primary_key)] id: Option<i64>, name: String }`",
        ),
        Body::Enum(data) => syn::Error::new(
            data.enum_token.span,
            "derive(Model) goes on a struct with named fields, not an enum",
        ),
        Body::Union(data) => syn::Error::new(
            data.union_token.span,
            "derive(Model) goes on a struct with named fields, not a union",
        ),
    };
    errors.push(error);
    None
}

/// The table's name, which must be given and not empty.
fn table(
    table: Option<syn::LitStr>,
    meant: bool,
    ident: &syn::Ident,
    errors: &mut Vec<syn::Error>,
) -> Option<String> {
    let Some(lit) = table else {
        if !meant {
            errors.push(syn::Error::new(
                ident.span(),
                "derive(Model) needs the table: add `#[model(table = \"...\")]` to the struct",
            ));
        }
        return None;
    };
    let table = lit.value();
    if table.is_empty() {
        errors.push(syn::Error::new(
            lit.span(),
            "the table name is empty: write the table's name, as in `#[model(table = \"users\")]`",
        ));
        return None;
    }
    Some(table)
}

/// The one primary key and the saved fields (skipped ones left out).
fn key_and_fields(
    named: &[parse::Field<'_>],
    ident: &syn::Ident,
    errors: &mut Vec<syn::Error>,
) -> (Option<Field>, Vec<Field>) {
    let mut key: Option<Field> = None;
    let mut key_meant = false;
    let mut fields = Vec::new();
    for field in named {
        reject_sqlx_renames(&field.sqlx_keys, errors);
        key_meant |= field.primary_key_meant;
        if let Some(skip) = field.skip {
            check_skip(field, skip, errors);
            continue;
        }
        let checked = checked_field(field, errors);
        match (field.primary_key, &key) {
            (Some(span), Some(first)) => errors.push(syn::Error::new(
                span,
                format!(
                    "only one field can be `#[model(primary_key)]`, and `{}` already is: remove this one (composite keys are not supported)",
                    first.name
                ),
            )),
            (Some(_), None) => key = Some(checked),
            (None, _) => fields.push(checked),
        }
    }
    if key.is_none() && !key_meant {
        errors.push(syn::Error::new(
            ident.span(),
            "derive(Model) needs a primary key: mark one field `#[model(primary_key)]` (an `Option<i64>` key is generated by the database)",
        ));
    }
    (key, fields)
}

/// A saved field with its name and column (the field's name unless `column` is given).
fn checked_field(field: &parse::Field<'_>, errors: &mut Vec<syn::Error>) -> Field {
    let name = field.ident.unraw().to_string();
    let column = match &field.column {
        Some(lit) if lit.value().is_empty() => {
            errors.push(syn::Error::new(
                lit.span(),
                "the column name is empty: write the column's name, or remove `column` to use the field's name",
            ));
            name.clone()
        }
        Some(lit) => lit.value(),
        None => name.clone(),
    };
    Field {
        ident: field.ident.clone(),
        ty: field.ty.clone(),
        name,
        column,
    }
}

/// A `#[model(skip)]` field: not the key, no column, and skipped by sqlx too.
fn check_skip(field: &parse::Field<'_>, skip: Span, errors: &mut Vec<syn::Error>) {
    if field.primary_key.is_some() {
        errors.push(syn::Error::new(
            skip,
            "the primary key cannot be skipped: remove `skip` (the key is always saved and loaded)",
        ));
    }
    if field.column.is_some() {
        errors.push(syn::Error::new(
            skip,
            "a skipped field has no column: remove `column` or `skip`",
        ));
    }
    if !field.sqlx_keys.iter().any(|key| key.name == "skip") {
        errors.push(syn::Error::new(
            skip,
            "a skipped field must also be `#[sqlx(skip)]`, or sqlx::FromRow will look for its column: add `#[sqlx(skip)]` to the field (its type must implement `Default`)",
        ));
    }
}

/// `#[sqlx(rename)]` / `#[sqlx(rename_all)]` would make `sqlx::FromRow` read other column names
/// than the ones the model's SQL selects.
fn reject_sqlx_renames(keys: &[SqlxKey], errors: &mut Vec<syn::Error>) {
    for SqlxKey { name, span } in keys {
        if name == "rename" || name == "rename_all" {
            errors.push(syn::Error::new(
                *span,
                format!("`#[sqlx({name})]` would make sqlx::FromRow read other columns than the model writes: name columns with `#[model(column = \"...\")]` instead"),
            ));
        }
    }
}

/// `T` when `ty` is `Option<T>` (also `std::option::Option<T>`).
fn option_inner(ty: &syn::Type) -> Option<&syn::Type> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != "Option" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first() {
        Some(syn::GenericArgument::Type(inner)) if args.args.len() == 1 => Some(inner),
        _ => None,
    }
}
