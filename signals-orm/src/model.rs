//! What `#[derive(Model)]` implements: metadata and SQL per model, value binding per backend,
//! and the type-erased view receivers of every model get.

use std::any::Any;
use std::fmt;

use sqlx::query::Query;

use crate::backend::Backend;
use crate::sql::ModelSql;

/// A model's name, table and columns, generated at compile time; the ORM builds the model's
/// SQL statements from them on first use.
#[derive(Debug)]
pub struct ModelMeta {
    /// The Rust type's name (`User`).
    pub name: &'static str,
    /// The table.
    pub table: &'static str,
    /// The primary key's field.
    pub pk_field: &'static str,
    /// The primary key's column.
    pub pk_column: &'static str,
    /// Whether the database generates the key (the field is an `Option`).
    pub pk_generated: bool,
    /// The saved non-key fields, in declaration order.
    pub fields: &'static [&'static str],
    /// Their columns, in the same order.
    pub columns: &'static [&'static str],
}

/// A persisted struct: `#[derive(Model)]` implements it.
///
/// Like a Django model class: it has a table, a primary key and saved fields, and its writes
/// ([`ModelExt`](crate::ModelExt)) send `pre_save`, `post_save`, `pre_delete` and
/// `post_delete` with the model as sender.
pub trait Model: Send + Sync + Unpin + Sized + 'static {
    /// The key's type (`i64` for an `id: Option<i64>` field).
    type Pk: Clone + Send + Sync + fmt::Debug + serde::Serialize + 'static;

    /// Name, table and columns.
    const META: &'static ModelMeta;

    /// The key, `None` before a generated key is assigned.
    fn pk(&self) -> Option<Self::Pk>;

    /// Sets a generated key (no effect on application-given keys).
    fn set_pk(&mut self, pk: Option<Self::Pk>);

    /// Every saved field, key first, as JSON values (what audit logs write).
    fn values(&self) -> Vec<(&'static str, serde_json::Value)>;

    /// The model's statements, built from [`Model::META`] on first use and kept.
    #[doc(hidden)]
    fn sql() -> &'static ModelSql;
}

/// Binding and decoding of a model for one backend; implemented by `#[derive(Model)]` for
/// every backend whose types fit the fields.
pub trait Persist<DB: Backend>: Model {
    /// Binds the non-key fields in [`ModelMeta::fields`] order.
    fn bind_fields<'q>(&self, query: Query<'q, DB, DB::Arguments>) -> Query<'q, DB, DB::Arguments>;

    /// Binds the non-key field at `index`.
    fn bind_field<'q>(
        &self,
        index: usize,
        query: Query<'q, DB, DB::Arguments>,
    ) -> Query<'q, DB, DB::Arguments>;

    /// Binds a key.
    fn bind_pk<'q>(
        pk: &Self::Pk,
        query: Query<'q, DB, DB::Arguments>,
    ) -> Query<'q, DB, DB::Arguments>;

    /// Reads the key from the first column of a row (`RETURNING`).
    ///
    /// # Errors
    ///
    /// When the column does not decode.
    fn pk_from_row(row: &DB::Row) -> Result<Self::Pk, sqlx::Error>;

    /// Builds the model from a row (through its `sqlx::FromRow`).
    ///
    /// # Errors
    ///
    /// When a column is missing or does not decode.
    fn from_row(row: &DB::Row) -> Result<Self, sqlx::Error>;
}

/// Any model, type-erased: what receivers connected without a sender get, so one audit-log
/// receiver can watch every model.
pub trait AnyModel: Any + Send + Sync {
    /// Name, table and columns.
    fn meta(&self) -> &'static ModelMeta;
    /// The key as JSON (`null` before a generated key is assigned).
    fn pk_value(&self) -> serde_json::Value;
    /// Every saved field, key first, as JSON values.
    fn field_values(&self) -> Vec<(&'static str, serde_json::Value)>;
}

impl<M: Model> AnyModel for M {
    fn meta(&self) -> &'static ModelMeta {
        M::META
    }

    fn pk_value(&self) -> serde_json::Value {
        self.pk()
            .and_then(|pk| serde_json::to_value(pk).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    fn field_values(&self) -> Vec<(&'static str, serde_json::Value)> {
        self.values()
    }
}

impl fmt::Debug for dyn AnyModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct(self.meta().name);
        for (name, value) in self.field_values() {
            s.field(name, &value);
        }
        s.finish()
    }
}

impl dyn AnyModel {
    /// The concrete model, if it is an `M`.
    #[must_use]
    pub fn downcast_ref<M: Model>(&self) -> Option<&M> {
        (self as &dyn Any).downcast_ref()
    }
}

/// A field value as JSON for [`Model::values`]; a value serde cannot represent becomes a
/// string saying so rather than failing the write.
#[doc(hidden)]
pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Value {
    serde_json::to_value(value)
        .unwrap_or_else(|e| serde_json::Value::String(format!("<not serialisable: {e}>")))
}

/// What `derive(Model)` emits beside its errors: `Model` and `Persist` impls with no behaviour,
/// so one mistake in the struct is reported once and not again at every `save` call.
#[doc(hidden)]
#[macro_export]
macro_rules! __stub_model {
    ($model:ident) => {
        impl $crate::__private::Model for $model {
            type Pk = ();
            const META: &'static $crate::__private::ModelMeta = &$crate::__private::ModelMeta {
                name: ::core::stringify!($model),
                table: "",
                pk_field: "",
                pk_column: "",
                pk_generated: false,
                fields: &[],
                columns: &[],
            };
            fn pk(&self) -> ::core::option::Option<()> {
                ::core::option::Option::None
            }
            fn set_pk(&mut self, _: ::core::option::Option<()>) {}
            fn values(
                &self,
            ) -> $crate::__private::Vec<(&'static str, $crate::__private::serde_json::Value)> {
                $crate::__private::Vec::new()
            }
            fn sql() -> &'static $crate::__private::ModelSql {
                ::core::unreachable!("derive(Model) failed to compile")
            }
        }
        impl<DB: $crate::Backend> $crate::__private::Persist<DB> for $model {
            fn bind_fields<'q>(
                &self,
                query: $crate::__private::Query<'q, DB>,
            ) -> $crate::__private::Query<'q, DB> {
                query
            }
            fn bind_field<'q>(
                &self,
                _: usize,
                query: $crate::__private::Query<'q, DB>,
            ) -> $crate::__private::Query<'q, DB> {
                query
            }
            fn bind_pk<'q>(
                _: &(),
                query: $crate::__private::Query<'q, DB>,
            ) -> $crate::__private::Query<'q, DB> {
                query
            }
            fn pk_from_row(
                _: &<DB as $crate::__private::sqlx::Database>::Row,
            ) -> ::core::result::Result<(), $crate::__private::sqlx::Error> {
                ::core::unreachable!("derive(Model) failed to compile")
            }
            fn from_row(
                _: &<DB as $crate::__private::sqlx::Database>::Row,
            ) -> ::core::result::Result<Self, $crate::__private::sqlx::Error> {
                ::core::unreachable!("derive(Model) failed to compile")
            }
        }
    };
}
