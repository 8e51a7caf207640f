//! The sealed [`Backend`] trait: the two databases the ORM writes to, without sqlx's `Any`.
//!
//! The statement-running methods box their futures so that generic ORM code needs no
//! higher-ranked `Executor` bounds, and users' signatures stay `save<DB: Backend>`.

use std::borrow::Cow;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::AssertSqlSafe;
use sqlx::Database;
use sqlx::query::Query;

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!(
    "signals-orm needs a database: turn on its `sqlite` feature (the default) or `postgres`"
);

mod sealed {
    pub trait Sealed {}
    #[cfg(feature = "sqlite")]
    impl Sealed for sqlx::Sqlite {}
    #[cfg(feature = "postgres")]
    impl Sealed for sqlx::Postgres {}
}

/// A database the ORM supports: `sqlx::Sqlite` (cargo feature `sqlite`, on by default) or
/// `sqlx::Postgres` (feature `postgres`). Sealed.
///
/// Both run the same generated SQL text (`$N` placeholders, double-quoted identifiers,
/// `RETURNING`). A backend whose feature is off is not a `Backend`, so a `Tx<sqlx::Postgres>`
/// in a SQLite-only program is a compile error, not a failure at run time.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a database of this build of signals-orm",
    label = "not an enabled backend",
    note = "signals-orm's cargo features choose its databases: `sqlite` (on by default) and `postgres`"
)]
pub trait Backend: Database + sealed::Sealed {
    /// `"sqlite"` or `"postgres"`, for errors and traces (Django's `using` alias).
    const NAME: &'static str;

    /// The statement that opens the ORM's transactions: `BEGIN IMMEDIATE` on SQLite, so the
    /// write lock is taken at once and concurrent writers wait instead of failing to upgrade.
    const BEGIN: &'static str;

    /// The most bind parameters one statement may carry: 32,766 on SQLite (its default
    /// `SQLITE_MAX_VARIABLE_NUMBER` since 3.32, which the SQLite sqlx bundles keeps unless built
    /// with that environment variable set), 65,535 on PostgreSQL (the protocol counts them in 16
    /// bits; sqlx refuses more before sending). The bulk writes
    /// ([`bulk_insert`](crate::ModelExt::bulk_insert), [`bulk_update`](crate::ModelExt::bulk_update))
    /// put at most `MAX_BIND_PARAMETERS / parameters per row` rows in each statement.
    const MAX_BIND_PARAMETERS: usize;

    /// Whether the bulk statements write their placeholders `?` (bound in order) rather than
    /// `$N`: on SQLite, which looks each `$N` name up in a list, so preparing and binding a
    /// statement of P of them takes time in P² (an INSERT of 16,000 values took 0.67 s with
    /// `$N`, 8 ms with `?`, release build).
    #[doc(hidden)]
    const ANONYMOUS_PLACEHOLDERS: bool;

    /// A query of `sql` whose arguments have room for `params` keys of 8 bytes, bound next
    /// (a link INSERT of many rows would otherwise grow them several times).
    #[doc(hidden)]
    fn query_with_room<'q>(
        sql: Cow<'static, str>,
        params: usize,
    ) -> Query<'q, Self, Self::Arguments>;

    /// Binds text (a `LIKE` pattern).
    #[doc(hidden)]
    fn bind_text<'q>(
        query: Query<'q, Self, Self::Arguments>,
        text: &'q str,
    ) -> Query<'q, Self, Self::Arguments>;

    /// Binds an integer (a `LIMIT` or `OFFSET`).
    #[doc(hidden)]
    fn bind_i64(
        query: Query<'_, Self, Self::Arguments>,
        value: i64,
    ) -> Query<'_, Self, Self::Arguments>;

    /// The first column of `row` as an integer (a `COUNT(*)`).
    #[doc(hidden)]
    fn first_i64(row: &Self::Row) -> Result<i64, sqlx::Error>;

    /// Runs `query`; returns the rows affected.
    #[doc(hidden)]
    fn execute<'c>(
        conn: &'c mut Self::Connection,
        query: Query<'c, Self, Self::Arguments>,
    ) -> BoxFuture<'c, Result<u64, sqlx::Error>>;

    /// Runs `query`; returns its first row, if any.
    #[doc(hidden)]
    fn fetch_optional<'c>(
        conn: &'c mut Self::Connection,
        query: Query<'c, Self, Self::Arguments>,
    ) -> BoxFuture<'c, Result<Option<Self::Row>, sqlx::Error>>;

    /// Runs `query` and returns every row.
    #[doc(hidden)]
    fn fetch_all<'c>(
        conn: &'c mut Self::Connection,
        query: Query<'c, Self, Self::Arguments>,
    ) -> BoxFuture<'c, Result<Vec<Self::Row>, sqlx::Error>>;

    /// Runs `query` and yields its rows as they arrive, so a caller that decodes each one holds
    /// no more than one undecoded row (a `Vec` of rows costs a page fault per few rows).
    #[doc(hidden)]
    fn fetch<'c>(
        conn: &'c mut Self::Connection,
        query: Query<'c, Self, Self::Arguments>,
    ) -> BoxStream<'c, Result<Self::Row, sqlx::Error>>;

    /// Runs SQL without arguments through the simple protocol (`SAVEPOINT`, DDL).
    #[doc(hidden)]
    fn execute_raw(
        conn: &mut Self::Connection,
        sql: String,
    ) -> BoxFuture<'_, Result<(), sqlx::Error>>;

    /// Fails if the transaction can no longer commit. PostgreSQL answers COMMIT of a
    /// transaction aborted by a failed statement with a silent ROLLBACK, which sqlx reports as
    /// success; running a statement first tells the two apart.
    #[doc(hidden)]
    fn check_committable(conn: &mut Self::Connection) -> BoxFuture<'_, Result<(), sqlx::Error>>;

    /// A foreign key's statements on this backend, `None` when its child or parent cannot be
    /// stored here.
    #[doc(hidden)]
    fn relation_ops(
        relation: &crate::relations::Relation,
    ) -> Option<&'static dyn crate::relations::RelationOps<Self>>;

    /// A model's column types on this backend, `None` when its field types do not fit it.
    #[doc(hidden)]
    fn stored(
        model: &crate::registry::RegisteredModel,
    ) -> Option<&'static dyn crate::registry::Stored<Self>>;

    /// The columns `wanted` of `table` as the database's catalogue describes them, one per
    /// wanted column (`None` for a column the table lacks); `None` when there is no table
    /// (`signals_orm::check`).
    #[doc(hidden)]
    #[expect(
        clippy::type_complexity,
        reason = "spelt out: a sealed trait's signature names no crate-private alias"
    )]
    fn table_columns<'c>(
        conn: &'c mut Self::Connection,
        table: &'static str,
        wanted: &'static [crate::model::ColumnMeta],
    ) -> BoxFuture<'c, Result<Option<Vec<Option<crate::schema::TableColumn<Self>>>>, sqlx::Error>>;
}

macro_rules! backend {
    ($db:ty, $name:literal, $begin:literal, $max_params:expr, $anonymous:literal, $check:expr, $ops:ident, $columns:path) => {
        impl Backend for $db {
            const NAME: &'static str = $name;
            const BEGIN: &'static str = $begin;
            const MAX_BIND_PARAMETERS: usize = $max_params;
            const ANONYMOUS_PLACEHOLDERS: bool = $anonymous;

            fn query_with_room<'q>(
                sql: Cow<'static, str>,
                params: usize,
            ) -> Query<'q, Self, Self::Arguments> {
                let mut arguments = <Self as Database>::Arguments::default();
                sqlx::Arguments::reserve(&mut arguments, params, 8 * params);
                sqlx::query_with(AssertSqlSafe(sql), arguments)
            }

            fn bind_text<'q>(
                query: Query<'q, Self, Self::Arguments>,
                text: &'q str,
            ) -> Query<'q, Self, Self::Arguments> {
                query.bind(text)
            }

            fn bind_i64(
                query: Query<'_, Self, Self::Arguments>,
                value: i64,
            ) -> Query<'_, Self, Self::Arguments> {
                query.bind(value)
            }

            fn first_i64(row: &Self::Row) -> Result<i64, sqlx::Error> {
                sqlx::Row::try_get(row, 0)
            }

            fn execute<'c>(
                conn: &'c mut Self::Connection,
                query: Query<'c, Self, Self::Arguments>,
            ) -> BoxFuture<'c, Result<u64, sqlx::Error>> {
                Box::pin(async move { Ok(query.execute(conn).await?.rows_affected()) })
            }

            fn fetch_optional<'c>(
                conn: &'c mut Self::Connection,
                query: Query<'c, Self, Self::Arguments>,
            ) -> BoxFuture<'c, Result<Option<Self::Row>, sqlx::Error>> {
                Box::pin(query.fetch_optional(conn))
            }

            fn fetch_all<'c>(
                conn: &'c mut Self::Connection,
                query: Query<'c, Self, Self::Arguments>,
            ) -> BoxFuture<'c, Result<Vec<Self::Row>, sqlx::Error>> {
                Box::pin(query.fetch_all(conn))
            }

            fn fetch<'c>(
                conn: &'c mut Self::Connection,
                query: Query<'c, Self, Self::Arguments>,
            ) -> BoxStream<'c, Result<Self::Row, sqlx::Error>> {
                query.fetch(conn)
            }

            fn check_committable(
                conn: &mut Self::Connection,
            ) -> BoxFuture<'_, Result<(), sqlx::Error>> {
                match $check {
                    Some(sql) => Self::execute_raw(conn, String::from(sql)),
                    None => Box::pin(async { Ok(()) }),
                }
            }

            fn relation_ops(
                relation: &crate::relations::Relation,
            ) -> Option<&'static dyn crate::relations::RelationOps<Self>> {
                (relation.ops.$ops)()
            }

            fn stored(
                model: &crate::registry::RegisteredModel,
            ) -> Option<&'static dyn crate::registry::Stored<Self>> {
                (model.backends.$ops)()
            }

            fn table_columns<'c>(
                conn: &'c mut Self::Connection,
                table: &'static str,
                wanted: &'static [crate::model::ColumnMeta],
            ) -> BoxFuture<'c, Result<crate::schema::Found<Self>, sqlx::Error>> {
                $columns(conn, table, wanted)
            }

            fn execute_raw(
                conn: &mut Self::Connection,
                sql: String,
            ) -> BoxFuture<'_, Result<(), sqlx::Error>> {
                Box::pin(async move {
                    sqlx::raw_sql(AssertSqlSafe(sql)).execute(conn).await?;
                    Ok(())
                })
            }
        }
    };
}

// SQLite keeps a transaction usable after a failed statement: nothing to check.
#[cfg(feature = "sqlite")]
backend!(
    sqlx::Sqlite,
    "sqlite",
    "BEGIN IMMEDIATE",
    crate::sql::SQLITE_MAX_BIND_PARAMETERS,
    true,
    None::<&str>,
    sqlite,
    crate::schema::sqlite_columns
);
#[cfg(feature = "postgres")]
backend!(
    sqlx::Postgres,
    "postgres",
    "BEGIN",
    crate::sql::POSTGRES_MAX_BIND_PARAMETERS,
    false,
    Some("SELECT 1"),
    postgres,
    crate::schema::postgres_columns
);

/// Runs `query` and hands each row to `each` as it arrives (decoding while streaming, as
/// sqlx's `query_as(..).fetch_all` does); returns how many rows came.
///
/// # Errors
///
/// The database's error during `operation`, or the first error `each` returns (the rest of
/// the rows are then dropped unread).
pub(crate) async fn for_each_row<'c, DB: Backend>(
    conn: &'c mut DB::Connection,
    query: Query<'c, DB, DB::Arguments>,
    operation: crate::error::Operation,
    mut each: impl FnMut(&DB::Row) -> Result<(), crate::OrmError>,
) -> Result<u64, crate::OrmError> {
    use crate::error::Context as _;
    use futures_util::TryStreamExt as _;
    let mut rows = DB::fetch(conn, query);
    let mut count = 0;
    while let Some(row) = rows.try_next().await.during(operation)? {
        each(&row)?;
        count += 1;
    }
    Ok(count)
}
