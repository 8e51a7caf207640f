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
const FIELD_KEYS: &[&str] = &[
    "primary_key",
    "column",
    "skip",
    "foreign_key",
    "on_delete",
    "default",
];
/// The values of `on_delete = ...`, Django's `on_delete` in lower case.
const ON_DELETE: &[&str] = &[
    "cascade",
    "protect",
    "restrict",
    "set_null",
    "set_default",
    "do_nothing",
];
/// How messages list the field keys.
const FIELD_KEYS_TEXT: &str =
    "`primary_key`, `column`, `skip`, `foreign_key`, `on_delete` and `default`";

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
    /// `foreign_key = Parent`, when its value is a path.
    pub foreign_key: Option<ForeignKey>,
    /// `foreign_key` was written (maybe with an invalid value), or a misspelling of it: no
    /// "goes with `foreign_key`" follow-up.
    pub foreign_key_meant: bool,
    /// `on_delete = ...`, when its value is one of [`ON_DELETE`].
    pub on_delete: Option<OnDeleteKey>,
    /// `on_delete` was written (maybe with an unknown value), or a misspelling of it: no
    /// "needs `on_delete`" follow-up.
    pub on_delete_meant: bool,
    /// `default = <expr>`.
    pub default: Option<DefaultKey>,
    pub sqlx_keys: Vec<SqlxKey>,
}

/// `foreign_key = Parent`.
pub struct ForeignKey {
    /// The span of `foreign_key`.
    pub span: Span,
    /// The parent model's type, as written (maybe `Self`).
    pub parent: syn::Path,
}

/// `on_delete = cascade`.
pub struct OnDeleteKey {
    /// The span of `on_delete`.
    pub span: Span,
    /// The value, one of [`ON_DELETE`].
    pub value: syn::Ident,
}

/// `default = <expr>`.
pub struct DefaultKey {
    /// The span of `default`.
    pub span: Span,
    pub value: syn::Expr,
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
        foreign_key: None,
        foreign_key_meant: false,
        on_delete: None,
        on_delete_meant: false,
        default: None,
        sqlx_keys: sqlx_keys(&field.attrs),
    };
    let mut column_given = false;
    let mut foreign_key_given = false;
    let mut on_delete_given = false;
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
            } else if meta.path.is_ident("foreign_key") {
                let parent = foreign_key_value(&meta, errors)?;
                if foreign_key_given {
                    errors.push(meta.error("`foreign_key` is given twice: keep one"));
                } else if let Some(parent) = parent {
                    read.foreign_key = Some(ForeignKey { span, parent });
                }
                foreign_key_given = true;
                read.foreign_key_meant = true;
            } else if meta.path.is_ident("on_delete") {
                let value = on_delete_value(&meta, errors)?;
                if on_delete_given {
                    errors.push(meta.error("`on_delete` is given twice: keep one"));
                } else if let Some(value) = value {
                    read.on_delete = Some(OnDeleteKey { span, value });
                }
                on_delete_given = true;
                read.on_delete_meant = true;
            } else if meta.path.is_ident("default") {
                let value: syn::Expr = meta.value()?.parse()?;
                if read.default.is_some() {
                    errors.push(meta.error("`default` is given twice: keep one"));
                } else {
                    read.default = Some(DefaultKey { span, value });
                }
            } else {
                let key = path_name(&meta.path);
                let message = if STRUCT_KEYS.contains(&key.as_str()) {
                    let example = example(&key);
                    format!(
                        "`{key}` goes on the struct, not on a field: move `{example}` above the struct; the field keys are {FIELD_KEYS_TEXT}"
                    )
                } else {
                    let closest = suggest::closest(&key, FIELD_KEYS);
                    read.primary_key_meant |= closest == Some("primary_key");
                    read.on_delete_meant |= closest == Some("on_delete");
                    read.foreign_key_meant |= closest == Some("foreign_key");
                    let hint = misspelt(&key, FIELD_KEYS, STRUCT_KEYS, "goes on the struct");
                    format!(
                        "unknown #[model] key `{key}` on a field{hint}; the field keys are {FIELD_KEYS_TEXT}"
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

/// The parent of `foreign_key = Parent`; a string or another expression is reported (and
/// `None`), and parsing goes on.
fn foreign_key_value(
    meta: &syn::meta::ParseNestedMeta<'_>,
    errors: &mut Vec<syn::Error>,
) -> syn::Result<Option<syn::Path>> {
    let value: syn::Expr = meta.value()?.parse()?;
    let message = match value {
        syn::Expr::Path(syn::ExprPath {
            qself: None, path, ..
        }) if path.segments.iter().all(|s| s.arguments.is_none()) => return Ok(Some(path)),
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(ref lit),
            ..
        }) => format!(
            "`foreign_key` takes the parent model's type, not a string: `foreign_key = {}`",
            lit.value()
        ),
        _ => "`foreign_key` takes the parent model's type: `#[model(foreign_key = Customer, on_delete = cascade)]`".to_owned(),
    };
    errors.push(syn::Error::new_spanned(value, message));
    Ok(None)
}

/// The value of `on_delete = cascade`, one of [`ON_DELETE`]; anything else is reported (and
/// `None`), and parsing goes on.
fn on_delete_value(
    meta: &syn::meta::ParseNestedMeta<'_>,
    errors: &mut Vec<syn::Error>,
) -> syn::Result<Option<syn::Ident>> {
    let value: syn::Expr = meta.value()?.parse()?;
    let values = "`cascade`, `protect`, `restrict`, `set_null`, `set_default` or `do_nothing`";
    let message = match &value {
        syn::Expr::Path(syn::ExprPath {
            qself: None, path, ..
        }) => {
            let word = path.segments.last().map(|s| s.ident.to_string());
            match (path.get_ident(), word) {
                (Some(ident), _) if ON_DELETE.contains(&ident.to_string().as_str()) => {
                    return Ok(Some(ident.clone()));
                }
                // `models.CASCADE` is Django's; `OnDelete::Cascade` the runtime's.
                (_, Some(word)) => {
                    let lower = word.to_lowercase();
                    let hint = if ON_DELETE.contains(&lower.as_str()) {
                        format!(" (did you mean `{lower}`?)")
                    } else {
                        suggest::hint(&lower, ON_DELETE)
                    };
                    format!(
                        "unknown `on_delete` value `{}`{hint}: write {values}",
                        path_name(path)
                    )
                }
                (_, None) => format!("`on_delete` takes {values}"),
            }
        }
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(lit),
            ..
        }) => {
            let lower = lit.value().to_lowercase();
            let word = suggest::closest(&lower, ON_DELETE).unwrap_or("cascade");
            format!("`on_delete` takes a name, not a string: `on_delete = {word}` ({values})")
        }
        _ => format!("`on_delete` takes {values}"),
    };
    errors.push(syn::Error::new_spanned(value, message));
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
        "foreign_key" | "on_delete" => "#[model(foreign_key = Customer, on_delete = cascade)]",
        "default" => "#[model(foreign_key = Customer, on_delete = set_default, default = 1)]",
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
