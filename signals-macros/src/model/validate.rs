//! Checks a read `#[derive(Model)]` item and builds the checked `Model`: a struct with named
//! fields and no generics, a table, exactly one primary key, skipped fields that sqlx skips
//! too, no sqlx renames, foreign keys with an `on_delete` that fits the field.

use proc_macro2::Span;
use syn::ext::IdentExt as _;
use syn::spanned::Spanned as _;

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
    /// The foreign keys (the key's, if it is one, then the fields'), in declaration order.
    pub foreign_keys: Vec<ForeignKey>,
}

/// A `#[model(foreign_key = Parent, on_delete = ...)]` field.
pub struct ForeignKey {
    pub field: syn::Ident,
    /// The field's name as written, without `r#`.
    pub name: String,
    /// The field's type.
    pub ty: syn::Type,
    /// The parent's key type it holds: `T` of `Option<T>`, or the field type.
    pub key_type: syn::Type,
    /// Whether the field is an `Option` (the key can be `NULL`).
    pub optional: bool,
    /// The parent model, `Self` replaced by the struct's name.
    pub parent: syn::Path,
    /// The field's column index: 0 for the key, `i + 1` for saved field `i`.
    pub column: usize,
    pub on_delete: OnDelete,
    /// `default = ...`, given exactly with `SetDefault`.
    pub default: Option<syn::Expr>,
    /// The method that fetches the parent: the field's name without a trailing `_id`.
    pub accessor: syn::Ident,
}

/// Django's `on_delete`, as `on_delete = ...` names it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OnDelete {
    Cascade,
    Protect,
    Restrict,
    SetNull,
    SetDefault,
    DoNothing,
}

impl OnDelete {
    /// The variant of the runtime's `OnDelete`.
    pub fn variant(self) -> &'static str {
        match self {
            Self::Cascade => "Cascade",
            Self::Protect => "Protect",
            Self::Restrict => "Restrict",
            Self::SetNull => "SetNull",
            Self::SetDefault => "SetDefault",
            Self::DoNothing => "DoNothing",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "cascade" => Self::Cascade,
            "protect" => Self::Protect,
            "restrict" => Self::Restrict,
            "set_null" => Self::SetNull,
            "set_default" => Self::SetDefault,
            "do_nothing" => Self::DoNothing,
            _ => return None,
        })
    }
}

/// The methods of `Model`, `ModelExt`, `Persist` and `AnyModel`, which an accessor of the
/// same name would hide (an inherent method wins over a trait's).
const MODEL_METHODS: &[(&str, &str)] = &[
    ("pk", "Model"),
    ("set_pk", "Model"),
    ("values", "Model"),
    ("sql", "Model"),
    ("columns", "Model"),
    ("set_value", "Model"),
    ("objects", "Model"),
    ("filter", "Model"),
    ("of", "Model"),
    ("save", "ModelExt"),
    ("insert", "ModelExt"),
    ("save_fields", "ModelExt"),
    ("save_raw", "ModelExt"),
    ("delete", "ModelExt"),
    ("get", "ModelExt"),
    ("bulk_insert", "ModelExt"),
    ("bulk_update", "ModelExt"),
    ("bind_fields", "Persist"),
    ("bind_field", "Persist"),
    ("bind_pk", "Persist"),
    ("bind_value", "Persist"),
    ("pk_from_row", "Persist"),
    ("from_row", "Persist"),
    ("meta", "AnyModel"),
    ("pk_value", "AnyModel"),
    ("field_values", "AnyModel"),
];

pub struct Field {
    pub ident: syn::Ident,
    pub ty: syn::Type,
    /// The field's name as written, without `r#`.
    pub name: String,
    pub column: String,
    /// The type as written, without the spaces tokens print with (`Option<String>`), for the
    /// model's `ColumnMeta`.
    pub type_text: String,
    /// Whether the type is an `Option` (read from the tokens: an alias of `Option` is not).
    pub optional: bool,
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
    let (key, fields, foreign_keys) = named.map_or((None, Vec::new(), Vec::new()), |named| {
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
        foreign_keys,
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

/// The one primary key, the saved fields (skipped ones left out) and the foreign keys.
fn key_and_fields(
    named: &[parse::Field<'_>],
    ident: &syn::Ident,
    errors: &mut Vec<syn::Error>,
) -> (Option<Field>, Vec<Field>, Vec<ForeignKey>) {
    let mut key: Option<Field> = None;
    let mut key_meant = false;
    let mut fields = Vec::new();
    let mut foreign_keys: Vec<ForeignKey> = Vec::new();
    for field in named {
        reject_sqlx_renames(&field.sqlx_keys, errors);
        key_meant |= field.primary_key_meant;
        if let Some(skip) = field.skip {
            check_skip(field, skip, errors);
            continue;
        }
        let column = if field.primary_key.is_some() {
            0
        } else {
            fields.len() + 1
        };
        if let Some(foreign_key) = foreign_key(field, column, ident, errors) {
            check_accessor(&foreign_key, &foreign_keys, errors);
            foreign_keys.push(foreign_key);
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
    (key, fields, foreign_keys)
}

/// The foreign key of a saved field at column `column`, if it is one and its keys fit together;
/// `foreign_key`, `on_delete` and `default` that do not fit are reported.
fn foreign_key(
    field: &parse::Field<'_>,
    column: usize,
    ident: &syn::Ident,
    errors: &mut Vec<syn::Error>,
) -> Option<ForeignKey> {
    let Some(foreign_key) = &field.foreign_key else {
        check_without_foreign_key(field, errors);
        return None;
    };
    let on_delete = field
        .on_delete
        .as_ref()
        .and_then(|key| Some((key, OnDelete::from_name(&key.value.to_string())?)));
    let Some((on_delete_key, on_delete)) = on_delete else {
        if !field.on_delete_meant {
            errors.push(syn::Error::new(
                foreign_key.span,
                "a foreign key needs `on_delete`: add `on_delete = cascade` (or protect, restrict, set_null, set_default, do_nothing), as Django requires",
            ));
        }
        return None;
    };
    let value = &on_delete_key.value;
    let inner = option_inner(field.ty);
    let is_key = field.primary_key.is_some();
    let mut fits = true;
    let mut fail = |error: syn::Error| {
        errors.push(error);
        fits = false;
    };
    match on_delete {
        OnDelete::SetNull | OnDelete::SetDefault if is_key => fail(syn::Error::new(
            value.span(),
            format!(
                "the primary key cannot be changed when its parent is deleted: use `on_delete = cascade` (or protect, restrict, do_nothing) instead of `{value}`"
            ),
        )),
        OnDelete::SetNull if inner.is_none() => {
            let ty = type_text(field.ty);
            fail(syn::Error::new(
                value.span(),
                format!(
                    "`set_null` writes NULL, which the field's type `{ty}` cannot hold: make the field `Option<{ty}>` (and its column nullable), or use another `on_delete`"
                ),
            ));
        }
        _ => {}
    }
    match (&field.default, on_delete) {
        (None, OnDelete::SetDefault) if !is_key => fail(syn::Error::new(
            value.span(),
            "`set_default` needs the value to write: add `default = ...`, a value of the field's type (`default = 1`, or `default = None` for an `Option` field)",
        )),
        (Some(default), other) if other != OnDelete::SetDefault => fail(syn::Error::new(
            default.span,
            format!(
                "`default` is the value `on_delete = set_default` writes, and `{value}` writes none: remove `default`, or use `on_delete = set_default`"
            ),
        )),
        _ => {}
    }
    let name = field.ident.unraw().to_string();
    let accessor = accessor(field.ident, &name, errors);
    if !fits {
        return None;
    }
    let parent = if foreign_key.parent.is_ident("Self") {
        let mut own = ident.clone();
        own.set_span(foreign_key.parent.span());
        syn::Path::from(own)
    } else {
        foreign_key.parent.clone()
    };
    Some(ForeignKey {
        field: field.ident.clone(),
        name,
        ty: field.ty.clone(),
        key_type: inner.unwrap_or(field.ty).clone(),
        optional: inner.is_some(),
        parent,
        column,
        on_delete,
        default: field.default.as_ref().map(|d| d.value.clone()),
        accessor: accessor?,
    })
}

/// `on_delete` and `default` on a field that is no foreign key (or a skipped one).
fn check_without_foreign_key(field: &parse::Field<'_>, errors: &mut Vec<syn::Error>) {
    if field.foreign_key_meant {
        return;
    }
    if let Some(on_delete) = &field.on_delete {
        errors.push(syn::Error::new(
            on_delete.span,
            "`on_delete` goes with `foreign_key`: add `foreign_key = Parent` (the model this field holds the key of), or remove `on_delete`",
        ));
    }
    if let Some(default) = &field.default {
        errors.push(syn::Error::new(
            default.span,
            "`default` is the value a foreign key gets when its parent is deleted: add `foreign_key = Parent, on_delete = set_default`, or remove `default`",
        ));
    }
}

/// The accessor of foreign key field `ident` named `name`: `name` without a trailing `_id`
/// (`customer_id` -> `customer`), else `name`; spanned at the field. A name Rust does not
/// allow is reported, and so is one that would hide a method of the model's traits.
fn accessor(ident: &syn::Ident, name: &str, errors: &mut Vec<syn::Error>) -> Option<syn::Ident> {
    let accessor = match name.strip_suffix("_id") {
        Some(stripped) if name.len() > 3 => stripped,
        _ => name,
    };
    if let Some((_, owner)) = MODEL_METHODS.iter().find(|(m, _)| *m == accessor) {
        errors.push(syn::Error::new(
            ident.span(),
            format!(
                "the foreign key `{name}` gets the method `{accessor}()` to fetch its parent, which would hide `{owner}::{accessor}`: rename the field"
            ),
        ));
        return None;
    }
    if matches!(accessor, "_" | "self" | "Self" | "super" | "crate") {
        errors.push(syn::Error::new(
            ident.span(),
            format!(
                "the foreign key `{name}` would get the method `{accessor}()` to fetch its parent, which Rust does not allow: rename the field"
            ),
        ));
        return None;
    }
    // A keyword (`type_id` -> `r#type`) is written raw; so is `gen`, reserved since 2024.
    Some(
        if syn::parse_str::<syn::Ident>(accessor).is_err() || matches!(accessor, "gen" | "try") {
            syn::Ident::new_raw(accessor, ident.span())
        } else {
            syn::Ident::new(accessor, ident.span())
        },
    )
}

/// Two foreign keys whose accessors share a name (`customer` and `customer_id`).
fn check_accessor(new: &ForeignKey, before: &[ForeignKey], errors: &mut Vec<syn::Error>) {
    let name = new.accessor.unraw().to_string();
    if let Some(first) = before.iter().find(|f| f.accessor.unraw() == name) {
        errors.push(syn::Error::new(
            new.field.span(),
            format!(
                "the foreign keys `{}` and `{}` would both get the method `{name}()` to fetch their parent: rename one of the fields",
                first.name, new.name
            ),
        ));
    }
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
        type_text: type_text(field.ty),
        optional: option_inner(field.ty).is_some(),
    }
}

/// A `#[model(skip)]` field: not the key, no column, no foreign key, and skipped by sqlx too.
fn check_skip(field: &parse::Field<'_>, skip: Span, errors: &mut Vec<syn::Error>) {
    if let Some(foreign_key) = &field.foreign_key {
        errors.push(syn::Error::new(
            foreign_key.span,
            "a skipped field has no column to hold a foreign key: remove `skip` (and `#[sqlx(skip)]`), or remove `foreign_key`",
        ));
    } else {
        check_without_foreign_key(field, errors);
    }
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

/// A type as written, without the spaces tokens print with (`Option < i64 >`).
fn type_text(ty: &syn::Type) -> String {
    let text = quote::quote!(#ty).to_string();
    [
        (" :: ", "::"),
        (":: ", "::"),
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ,", ","),
        ("( ", "("),
        (" )", ")"),
        ("[ ", "["),
        (" ]", "]"),
        (" ;", ";"),
        ("& ", "&"),
    ]
    .iter()
    .fold(text, |text, (from, to)| text.replace(from, to))
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
