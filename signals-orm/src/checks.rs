//! Compile-time checks that `#[derive(Model)]` places on the struct and its fields, one per
//! enabled backend, so that a field the database cannot store or a missing `sqlx::FromRow` is
//! reported at the field or the derive, instead of as an unmet `Persist` bound at the first
//! `.save(..)` (or nowhere, when the program never saves).
//!
//! The generated code calls [`column`] and [`row`] with the spans of the field types and of the
//! struct's name; they type-check or fail with these traits' messages.
//!
//! With both backends on, nothing is checked here: a model may be meant for one database only
//! (a field type only PostgreSQL stores), and a bound cannot say "one of the two". Its fields
//! are then checked where it is saved, against that backend.

#[cfg(feature = "postgres")]
use sqlx::Postgres;
#[cfg(feature = "sqlite")]
use sqlx::Sqlite;

/// A field type SQLite can store through sqlx.
#[cfg(feature = "sqlite")]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in a SQLite column",
    label = "not a sqlx type of SQLite",
    note = "a saved field needs `sqlx::Type<Sqlite>` and `sqlx::Encode<'_, Sqlite>`; mark a field that is not stored `#[model(skip)]` and `#[sqlx(skip)]`"
)]
pub trait SqliteColumn {}
#[cfg(feature = "sqlite")]
impl<T> SqliteColumn for T where T: sqlx::Type<Sqlite> + for<'q> sqlx::Encode<'q, Sqlite> {}

/// A field type PostgreSQL can store through sqlx.
#[cfg(feature = "postgres")]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in a PostgreSQL column",
    label = "not a sqlx type of PostgreSQL",
    note = "a saved field needs `sqlx::Type<Postgres>` and `sqlx::Encode<'_, Postgres>`; mark a field that is not stored `#[model(skip)]` and `#[sqlx(skip)]`"
)]
pub trait PostgresColumn {}
#[cfg(feature = "postgres")]
impl<T> PostgresColumn for T where T: sqlx::Type<Postgres> + for<'q> sqlx::Encode<'q, Postgres> {}

/// A model that can be read from a SQLite row.
#[cfg(feature = "sqlite")]
#[diagnostic::on_unimplemented(
    message = "`{Self}` derives `Model` but not `sqlx::FromRow`",
    label = "add `sqlx::FromRow`: `#[derive(Model, sqlx::FromRow)]`",
    note = "the ORM reads rows back (`get`, `Related::all`) through the model's `sqlx::FromRow`"
)]
pub trait SqliteRow {}
#[cfg(feature = "sqlite")]
impl<T> SqliteRow for T where T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> {}

/// A model that can be read from a PostgreSQL row.
#[cfg(feature = "postgres")]
#[diagnostic::on_unimplemented(
    message = "`{Self}` derives `Model` but not `sqlx::FromRow`",
    label = "add `sqlx::FromRow`: `#[derive(Model, sqlx::FromRow)]`",
    note = "the ORM reads rows back (`get`, `Related::all`) through the model's `sqlx::FromRow`"
)]
pub trait PostgresRow {}
#[cfg(feature = "postgres")]
impl<T> PostgresRow for T where T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> {}

/// Checks nothing with both backends on (see the module's doc).
#[cfg(all(feature = "sqlite", feature = "postgres"))]
pub const fn column<T: ?Sized>() {}
/// Checks that the enabled backend stores `T`.
#[cfg(all(feature = "sqlite", not(feature = "postgres")))]
pub const fn column<T: SqliteColumn>() {}
/// Checks that the enabled backend stores `T`.
#[cfg(all(feature = "postgres", not(feature = "sqlite")))]
pub const fn column<T: PostgresColumn>() {}

/// Checks nothing with both backends on (see the module's doc).
#[cfg(all(feature = "sqlite", feature = "postgres"))]
pub const fn row<M: ?Sized>() {}
/// Checks that `M` reads from a row of the enabled backend.
#[cfg(all(feature = "sqlite", not(feature = "postgres")))]
pub const fn row<M: SqliteRow>() {}
/// Checks that `M` reads from a row of the enabled backend.
#[cfg(all(feature = "postgres", not(feature = "sqlite")))]
pub const fn row<M: PostgresRow>() {}

/// A foreign key field's key type `Self` is model `P`'s key type.
#[doc(hidden)]
pub trait KeyOf<P> {}
impl<P: crate::Model> KeyOf<P> for P::Pk {}

/// Checks that a foreign key field (or the `T` of its `Option<T>`) holds `P`'s key type; a
/// mismatch reads "type mismatch resolving `<P as Model>::Pk == K`" at the field.
pub const fn foreign_key_holds_parent_key<P: crate::Model, K: KeyOf<P>>() {}
