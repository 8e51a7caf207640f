//! What `#[derive(Model)]` implements: metadata and SQL per model, value binding per backend,
//! and the type-erased view receivers of every model get.

use std::any::Any;
use std::fmt;
use std::fmt::Write as _;

use sqlx::query::Query;

use crate::backend::Backend;

/// A model's table, columns and SQL, generated once at compile time.
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
    /// One SQL text per statement.
    pub sql: ModelSql,
}

/// The statements of a model, shared by both backends: `$N` placeholders, double-quoted
/// identifiers, values always bound.
#[derive(Debug)]
pub struct ModelSql {
    /// `INSERT` of the non-key columns, `RETURNING` the generated key.
    pub insert: &'static str,
    /// `INSERT` of the key and every column.
    pub insert_with_pk: &'static str,
    /// `UPDATE` of every non-key column by key.
    pub update: &'static str,
    /// `DELETE` by key.
    pub delete: &'static str,
    /// `SELECT` of every column by key.
    pub select_by_pk: &'static str,
}

impl ModelSql {
    /// `UPDATE` of the given columns (by index in [`ModelMeta::columns`]), key bound last.
    #[must_use]
    pub fn update_of(meta: &ModelMeta, indexes: &[usize]) -> String {
        let mut sql = format!("UPDATE {} SET ", quote(meta.table));
        for (n, &i) in indexes.iter().enumerate() {
            if n > 0 {
                sql.push_str(", ");
            }
            let _ = write!(sql, "{} = ${}", quote(meta.columns[i]), n + 1);
        }
        let _ = write!(
            sql,
            " WHERE {} = ${}",
            quote(meta.pk_column),
            indexes.len() + 1
        );
        sql
    }
}

/// A SQL identifier in double quotes, inner quotes doubled.
#[must_use]
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A persisted struct: `#[derive(Model)]` implements it.
///
/// Like a Django model class: it has a table, a primary key and saved fields, and its writes
/// ([`ModelExt`](crate::ModelExt)) send `pre_save`, `post_save`, `pre_delete` and
/// `post_delete` with the model as sender.
pub trait Model: Send + Sync + Unpin + Sized + 'static {
    /// The key's type (`i64` for an `id: Option<i64>` field).
    type Pk: Clone + Send + Sync + fmt::Debug + serde::Serialize + 'static;

    /// Table, columns and SQL.
    const META: &'static ModelMeta;

    /// The key, `None` before a generated key is assigned.
    fn pk(&self) -> Option<Self::Pk>;

    /// Sets a generated key (no effect on application-given keys).
    fn set_pk(&mut self, pk: Option<Self::Pk>);

    /// Every saved field, key first, as JSON values (what audit logs write).
    fn values(&self) -> Vec<(&'static str, serde_json::Value)>;
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
    /// Table, columns and SQL.
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
