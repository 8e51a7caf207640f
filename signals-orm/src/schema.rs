//! Django's system checks, for the one thing an ORM of typed structs can get wrong at run time:
//! the database. [`check`] compares every model of the program (the model registry,
//! [`registry::models`]) with the tables a pool reaches, and returns a
//! [`CheckReport`] naming, per model, a missing table, a missing column, a column whose SQL type
//! the field does not decode from, and a column whose `NULL`s the field cannot hold (or the
//! other way round). Rules: `docs/orm.md`, "Model registry and checks".

use std::fmt;

use futures_util::future::BoxFuture;

use crate::backend::Backend;
use crate::error::{Context as _, Operation, OrmError};
use crate::model::{ColumnMeta, ModelMeta};
use crate::registry::{self, Stored};

/// Checks that every model stored on `pool`'s backend has its table and columns there, with
/// types its fields decode from and the nullability they expect (Django's `manage.py check`,
/// for the schema). Run it at start-up, after the migrations:
///
/// ```standalone_crate
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use signals_orm::Model;
///
/// #[derive(Model, sqlx::FromRow, Debug)]
/// #[model(table = "users")]
/// struct User {
///     #[model(primary_key)]
///     id: Option<i64>,
///     email: String,
///     nickname: Option<String>,
/// }
///
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
/// sqlx::raw_sql("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, nickname TEXT)")
///     .execute(&pool)
///     .await?;
/// let report = signals_orm::check(&pool).await?;
/// assert!(report.is_ok(), "{report}");
/// report.into_result()?; // what start-up code writes: fails on any problem
///
/// // A column dropped by a migration the code does not know of yet:
/// sqlx::raw_sql("ALTER TABLE users DROP COLUMN nickname").execute(&pool).await?;
/// let report = signals_orm::check(&pool).await?;
/// assert!(!report.is_ok());
/// let text = report.to_string();
/// assert!(text.contains("User (table \"users\")"), "{text}");
/// assert!(text.contains("column \"nickname\" (field `nickname: Option<String>`) does not exist"), "{text}");
/// assert!(report.into_result().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
///
/// What is compared, per model:
///
/// - the table, as an unqualified name resolves (SQLite: `pragma_table_info`; PostgreSQL:
///   `information_schema.columns` of the schema the search path finds it in, else of the
///   current schema);
/// - each stored column (the key and the saved fields, not `#[model(skip)]` ones), by name
///   (SQLite compares names without ASCII case, as it resolves them);
/// - its type, by sqlx's own rule when it decodes (`sqlx::Type::compatible`): on PostgreSQL
///   against the column's type as a prepared `SELECT` of the columns reports it; on SQLite,
///   whose columns take any value, against the storage classes the declared type's affinity
///   gives values (`BIGINT`: integers; `TEXT`: text; `REAL`, `DOUBLE`: floats; `NUMERIC`,
///   `BOOLEAN`, `DATETIME`: integers, floats or text; `BLOB` or no type: anything);
/// - its nullability, for saved fields (not the key): an `Option` field on a `NOT NULL` column
///   (saving `None` fails), and a field that is no `Option` on a column that allows `NULL`
///   (reading a `NULL` fails).
///
/// Models whose field types the backend cannot store (a model meant for the other database)
/// are not checked, and are listed in [`CheckReport::skipped`]. Columns of the table that no
/// field names are not reported. The registry is [prepared](crate::prepare) first.
///
/// # Errors
///
/// [`OrmError::Database`] when no connection can be had or a catalogue query fails: a problem
/// of the schema is not an error here but a line of the report ([`CheckReport::into_result`]
/// turns problems into an error).
pub async fn check<DB: Backend>(pool: &sqlx::Pool<DB>) -> Result<CheckReport, OrmError> {
    registry::prepared();
    let acquire = Operation {
        action: "check the schema",
        model: None,
        table: None,
    };
    let mut conn = pool.acquire().await.during(acquire)?;
    let mut report = CheckReport {
        backend: <DB as Backend>::NAME,
        models: Vec::new(),
        skipped: Vec::new(),
    };
    for entry in registry::entries() {
        let meta = entry.meta;
        let Some(stored) = DB::stored(entry) else {
            report.skipped.push(meta);
            continue;
        };
        let operation = Operation {
            action: "check the schema",
            model: Some(meta.name),
            table: Some(meta.table),
        };
        let found = DB::table_columns(&mut conn, meta.table, meta.schema)
            .await
            .during(operation)?;
        report.models.push(ModelCheck {
            meta,
            problems: problems(meta, stored, found.as_deref()),
        });
    }
    Ok(report)
}

/// What does not fit between `meta` and the columns found (`None`: no table).
fn problems<DB: Backend>(
    meta: &'static ModelMeta,
    stored: &dyn Stored<DB>,
    found: Option<&[Option<TableColumn<DB>>]>,
) -> Vec<Problem> {
    let Some(found) = found else {
        return vec![Problem::MissingTable { table: meta.table }];
    };
    let mut problems = Vec::new();
    for (index, (column, found)) in meta.schema.iter().zip(found).enumerate() {
        let Some(found) = found else {
            problems.push(Problem::MissingColumn { column });
            continue;
        };
        if !found.types.is_empty() && !found.types.iter().any(|t| stored.accepts(index, t)) {
            problems.push(Problem::TypeMismatch {
                column,
                expected: stored
                    .expected_type(index)
                    .unwrap_or_else(|| "?".to_owned()),
                found: found.found.clone(),
            });
        }
        if !column.primary_key && column.nullable != found.nullable {
            problems.push(Problem::Nullability {
                column,
                column_nullable: found.nullable,
            });
        }
    }
    problems
}

/// What [`check`] found: each model checked with its problems, and the models not stored on
/// the backend. `Display` lists the problems per model (or says there are none).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CheckReport {
    /// The backend checked (`"sqlite"` or `"postgres"`).
    pub backend: &'static str,
    /// Each model checked, in [`models`](crate::registry::models) order, with its problems
    /// (none for a model that fits).
    pub models: Vec<ModelCheck>,
    /// The models whose field types this backend cannot store, so not checked.
    pub skipped: Vec<&'static ModelMeta>,
}

/// One model's result in a [`CheckReport`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ModelCheck {
    /// The model.
    pub meta: &'static ModelMeta,
    /// What does not fit, in column order; empty when the model fits its table.
    pub problems: Vec<Problem>,
}

/// A difference between a model and its table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The model's table does not exist.
    MissingTable {
        /// The table's name.
        table: &'static str,
    },
    /// A stored field's column does not exist.
    MissingColumn {
        /// The column, as the model declares it.
        column: &'static ColumnMeta,
    },
    /// The column's values are of an SQL type the field does not decode from.
    TypeMismatch {
        /// The column, as the model declares it.
        column: &'static ColumnMeta,
        /// The SQL type sqlx binds and expects for the field's Rust type (`INTEGER`, `INT8`).
        expected: String,
        /// The column's type in the database (SQLite: as declared; PostgreSQL: as sqlx names
        /// it, `INT4`).
        found: String,
    },
    /// The column allows `NULL` and the field is no `Option`, or the field is an `Option` and
    /// the column is `NOT NULL`.
    Nullability {
        /// The column, as the model declares it (`nullable`: whether the field is an `Option`).
        column: &'static ColumnMeta,
        /// Whether the database column allows `NULL`.
        column_nullable: bool,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let named = |c: &ColumnMeta| {
            format!(
                "column \"{}\" (field `{}: {}`)",
                c.column, c.field, c.rust_type
            )
        };
        match self {
            Problem::MissingTable { table } => write!(f, "table \"{table}\" does not exist"),
            Problem::MissingColumn { column } => write!(f, "{} does not exist", named(column)),
            Problem::TypeMismatch {
                column,
                expected,
                found,
            } => {
                let found = if found.is_empty() {
                    "no declared type"
                } else {
                    found
                };
                write!(
                    f,
                    "{}: type mismatch: expected {expected}, found {found}",
                    named(column)
                )
            }
            Problem::Nullability {
                column,
                column_nullable: true,
            } => write!(
                f,
                "{} allows NULL, but the field is not an Option: reading a NULL fails",
                named(column)
            ),
            Problem::Nullability { column, .. } => write!(
                f,
                "{} is NOT NULL, but the field is an Option: saving None fails",
                named(column)
            ),
        }
    }
}

impl CheckReport {
    /// Whether no model has a problem.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.models.iter().all(|model| model.problems.is_empty())
    }

    /// Every problem, with its model, in report order.
    pub fn problems(&self) -> impl Iterator<Item = (&'static ModelMeta, &Problem)> + '_ {
        self.models
            .iter()
            .flat_map(|model| model.problems.iter().map(move |p| (model.meta, p)))
    }

    /// The report when no model has a problem; the error carrying it (its `Display` is the
    /// report) otherwise: how start-up code fails loudly, `check(&pool).await?.into_result()?`.
    ///
    /// # Errors
    ///
    /// [`CheckFailed`] when some model has a problem.
    pub fn into_result(self) -> Result<Self, CheckFailed> {
        if self.is_ok() {
            Ok(self)
        } else {
            Err(CheckFailed { report: self })
        }
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let problems = self.problems().count();
        let checked = self.models.len();
        if problems == 0 {
            write!(
                f,
                "schema check ({}): {checked} model{}, no problems",
                self.backend,
                plural(checked)
            )?;
        } else {
            let failing = self
                .models
                .iter()
                .filter(|m| !m.problems.is_empty())
                .count();
            write!(
                f,
                "schema check ({}): {problems} problem{} in {failing} of {checked} model{}",
                self.backend,
                plural(problems),
                plural(checked)
            )?;
            for model in self.models.iter().filter(|m| !m.problems.is_empty()) {
                write!(
                    f,
                    "\n  {} (table \"{}\"):",
                    model.meta.name, model.meta.table
                )?;
                for problem in &model.problems {
                    write!(f, "\n    - {problem}")?;
                }
            }
        }
        if !self.skipped.is_empty() {
            let names: Vec<&str> = self.skipped.iter().map(|m| m.name).collect();
            write!(
                f,
                "\n  not stored on {}, not checked: {}",
                self.backend,
                names.join(", ")
            )?;
        }
        Ok(())
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The error of a [`CheckReport`] with problems ([`CheckReport::into_result`]); its `Display`
/// is the report, and so is its `Debug`, so that a `main` returning it prints the problems.
#[derive(Clone)]
#[non_exhaustive]
pub struct CheckFailed {
    /// The report.
    pub report: CheckReport,
}

impl fmt::Debug for CheckFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.report, f)
    }
}

impl fmt::Display for CheckFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.report, f)
    }
}

impl std::error::Error for CheckFailed {}

/// A column of a table as the database's catalogue describes it.
#[doc(hidden)]
pub struct TableColumn<DB: Backend> {
    /// Whether it allows `NULL`.
    pub nullable: bool,
    /// Its type as the report shows it.
    pub found: String,
    /// The SQL types (sqlx's) its values come back as; empty when they may be of any.
    pub types: Vec<DB::TypeInfo>,
}

/// The columns of a table, one per wanted column (`None` for those it lacks); `None` when
/// there is no table.
pub(crate) type Found<DB> = Option<Vec<Option<TableColumn<DB>>>>;

/// `Backend::table_columns` of SQLite: `pragma_table_info`, names compared without ASCII case.
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite_columns<'c>(
    conn: &'c mut sqlx::SqliteConnection,
    table: &'static str,
    wanted: &'static [ColumnMeta],
) -> BoxFuture<'c, Result<Found<sqlx::Sqlite>, sqlx::Error>> {
    Box::pin(async move {
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as(r#"SELECT name, type, "notnull" FROM pragma_table_info($1)"#)
                .bind(table)
                .fetch_all(&mut *conn)
                .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            wanted
                .iter()
                .map(|column| {
                    let (_, declared, not_null) = rows
                        .iter()
                        .find(|(name, ..)| name.eq_ignore_ascii_case(column.column))?;
                    Some(TableColumn {
                        nullable: *not_null == 0,
                        found: declared.clone(),
                        types: sqlite_value_types(declared),
                    })
                })
                .collect(),
        ))
    })
}

/// The storage classes (as sqlx's types) a SQLite column of declared type `declared` gives its
/// values, by SQLite's affinity rules (<https://sqlite.org/datatype3.html#affname>); empty for
/// BLOB affinity (a value is kept as it is given).
#[cfg(feature = "sqlite")]
fn sqlite_value_types(declared: &str) -> Vec<sqlx::sqlite::SqliteTypeInfo> {
    use sqlx::{Sqlite, Type};
    let upper = declared.to_ascii_uppercase();
    let has = |part: &str| upper.contains(part);
    let integer = <i64 as Type<Sqlite>>::type_info();
    let real = <f64 as Type<Sqlite>>::type_info();
    let text = <String as Type<Sqlite>>::type_info();
    if has("INT") {
        vec![integer]
    } else if has("CHAR") || has("CLOB") || has("TEXT") {
        vec![text]
    } else if has("BLOB") || upper.trim().is_empty() {
        Vec::new()
    } else if has("REAL") || has("FLOA") || has("DOUB") {
        vec![real]
    } else {
        // NUMERIC affinity: a value that reads as a number is stored as one, others as text.
        vec![integer, real, text]
    }
}

/// `Backend::table_columns` of PostgreSQL: `information_schema.columns` of the schema the
/// search path finds the table in (else of the current schema), and each column's type as a
/// prepared `SELECT` of the columns reports it.
#[cfg(feature = "postgres")]
pub(crate) fn postgres_columns<'c>(
    conn: &'c mut sqlx::PgConnection,
    table: &'static str,
    wanted: &'static [ColumnMeta],
) -> BoxFuture<'c, Result<Found<sqlx::Postgres>, sqlx::Error>> {
    use sqlx::{Column as _, Executor as _, SqlSafeStr as _, Statement as _};
    Box::pin(async move {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT c.column_name::text, c.data_type::text, c.is_nullable::text \
             FROM information_schema.columns c \
             WHERE c.table_name = $1 AND c.table_schema = COALESCE( \
                 (SELECT n.nspname FROM pg_catalog.pg_class r \
                  JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace \
                  WHERE r.oid = to_regclass(quote_ident($1))), \
                 current_schema()) \
             ORDER BY c.ordinal_position",
        )
        .bind(table)
        .fetch_all(&mut *conn)
        .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let present: Vec<&(String, String, String)> = wanted
            .iter()
            .filter_map(|column| rows.iter().find(|(name, ..)| name == column.column))
            .collect();
        let mut types = Vec::new();
        if !present.is_empty() {
            let select = format!(
                "SELECT {} FROM {}",
                present
                    .iter()
                    .map(|(name, ..)| crate::sql::quote(name))
                    .collect::<Vec<_>>()
                    .join(", "),
                crate::sql::quote(table)
            );
            let statement = conn
                .prepare(sqlx::AssertSqlSafe(select).into_sql_str())
                .await?;
            types = statement
                .columns()
                .iter()
                .map(|c| c.type_info().clone())
                .collect();
        }
        Ok(Some(
            wanted
                .iter()
                .map(|column| {
                    let i = present
                        .iter()
                        .position(|(name, ..)| name == column.column)?;
                    let (_, data_type, is_nullable) = present[i];
                    let ty = types.get(i).cloned();
                    Some(TableColumn {
                        nullable: is_nullable == "YES",
                        found: ty.as_ref().map_or_else(
                            || data_type.clone(),
                            |t| sqlx::TypeInfo::name(t).to_owned(),
                        ),
                        types: ty.into_iter().collect(),
                    })
                })
                .collect(),
        ))
    })
}
