//! Errors of the ORM's writes and transactions.
//!
//! Each error says once what the ORM was doing (the operation, and the model and table it
//! touched); its `Display` is that text and `source()` the cause, never both, so a chain
//! printer (`anyhow`'s `{:#}`, `tracing`'s error fields) prints each cause once.

use std::fmt;

use signals_core::__private::write_causes;
use signals_core::SendError;

use crate::model::Model;

/// What the ORM was doing when the database failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Operation {
    /// `"insert"`, `"update"`, `"delete"`, `"fetch"`, `"add links"`, `"BEGIN"`, `"COMMIT"`,
    /// `"SAVEPOINT"`, ...
    pub action: &'static str,
    /// The model's type name, for model reads and writes.
    pub model: Option<&'static str>,
    /// The table the statement touched, when it was one table.
    pub table: Option<&'static str>,
}

impl Operation {
    /// An operation on the rows of model `M`.
    pub(crate) fn on<M: Model>(action: &'static str) -> Self {
        Operation {
            action,
            model: Some(M::META.name),
            table: Some(M::META.table),
        }
    }

    /// An operation on a table without a model (a link table).
    pub(crate) fn on_table(action: &'static str, table: &'static str) -> Self {
        Operation {
            action,
            model: None,
            table: Some(table),
        }
    }

    /// A transaction step (`BEGIN`, `COMMIT`, `SAVEPOINT`, ...).
    pub(crate) fn tx(action: &'static str) -> Self {
        Operation {
            action,
            model: None,
            table: None,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.action)?;
        if let Some(model) = self.model {
            write!(f, " of `{model}`")?;
        }
        if let Some(table) = self.table {
            write!(f, " (table `{table}`)")?;
        }
        Ok(())
    }
}

/// Why a write, a fetch or a transaction step failed. A failed write leaves the database as
/// it was: its own transaction rolled back, or the caller's marked rollback-only.
///
/// `Display` says what failed; `source()` gives the cause (the database's error, a receiver's
/// error). The alternate form `{:#}` prints the text followed by every cause (as `anyhow`'s
/// `{:#}` does), and so does `Debug`, one cause per line.
#[non_exhaustive]
pub enum OrmError {
    /// The database refused a statement, or the connection failed.
    Database {
        /// What the ORM was doing.
        operation: Operation,
        /// sqlx's error.
        source: sqlx::Error,
    },
    /// A receiver failed, so the write was undone. Its `Display` names the receiver, the
    /// signal and the sender.
    Signal(SendError),
    /// An earlier write in this transaction failed; it can only roll back.
    RollbackOnly {
        /// The earlier failure.
        reason: String,
    },
    /// `update_fields` named something that is not a saved field of the model.
    UnknownField {
        /// The model's type name.
        model: &'static str,
        /// The unknown name.
        field: String,
        /// A suggestion, or empty.
        hint: String,
    },
    /// A write that needs the primary key was given an instance without one.
    NoPrimaryKey {
        /// The model's type name.
        model: &'static str,
        /// `"deleted"`, `"updated with update_fields"` or `"updated with bulk_update"`.
        action: &'static str,
    },
    /// A save with `update_fields` matched no row (Django's `NotUpdated`).
    NotUpdated {
        /// The model's type name.
        model: &'static str,
    },
    /// `release_savepoint` or `rollback_to_savepoint` without an open savepoint.
    NoSavepoint,
    /// `get_or_create` or `update_or_create` found more than one row matching its query
    /// (Django's `MultipleObjectsReturned`).
    MultipleRows {
        /// The model's type name.
        model: &'static str,
    },
    /// A query with a limit or an offset was given to a set-based write (`delete`, `update`),
    /// as Django refuses: which rows a slice holds can change while the write runs.
    Sliced {
        /// The model's type name.
        model: &'static str,
        /// `"delete"` or `"update"`.
        write: &'static str,
    },
    /// A write was given the pool inside a receiver of a write that holds a connection of that
    /// same pool in a transaction. It would wait for the lock or the connection that write
    /// holds, which waits for the receiver: a deadlock, so it fails at once instead.
    PoolInReceiver,
    /// A delete was refused, before any signal, because rows of `protect` relations point at
    /// rows it would delete (Django's `ProtectedError`).
    Protected {
        /// The rows in the way, per relation.
        blocking: Vec<Blocking>,
    },
    /// A delete was refused, before any signal, because rows of `restrict` relations point
    /// at rows it would delete and the delete does not also remove them through a cascade
    /// (Django's `RestrictedError`).
    Restricted {
        /// The rows in the way, per relation.
        blocking: Vec<Blocking>,
    },
    /// A delete reached a relation whose child or parent cannot be stored in this backend
    /// (a field type only the other database has), so its rows cannot be collected.
    NotOnBackend {
        /// The child model's type name.
        child: &'static str,
        /// The foreign key field.
        field: &'static str,
        /// `"sqlite"` or `"postgres"`.
        backend: &'static str,
    },
    /// No row has the key a foreign key holds (Django's `DoesNotExist`, from
    /// `order.customer`).
    DoesNotExist {
        /// The model's type name.
        model: &'static str,
        /// The key, as JSON.
        key: String,
    },
    /// sqlx's migrator failed in [`migrate`](crate::migrate::migrate): a migration's SQL, a
    /// changed checksum, a dirty version (the source says which).
    Migration(sqlx::migrate::MigrateError),
}

/// Rows of one relation that stop a delete: [`OrmError::Protected`] and
/// [`OrmError::Restricted`] list them.
#[derive(Clone, Debug, PartialEq)]
pub struct Blocking {
    /// The model whose rows the delete would remove (`Customer`).
    pub parent: &'static str,
    /// The model whose rows point at them (`Invoice`).
    pub child: &'static str,
    /// The child's foreign key field (`customer_id`).
    pub field: &'static str,
    /// The keys of the child's rows in the way, as JSON.
    pub keys: Vec<serde_json::Value>,
}

impl Blocking {
    pub(crate) fn new(relation: &crate::relations::Relation, keys: Vec<serde_json::Value>) -> Self {
        Blocking {
            parent: relation.parent_meta.name,
            child: relation.child_meta.name,
            field: relation.field(),
            keys,
        }
    }
}

/// Keys listed in a refused delete's message; the rest are counted.
const KEYS_SHOWN: usize = 5;

impl fmt::Display for Blocking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows = if self.keys.len() == 1 { "row" } else { "rows" };
        write!(
            f,
            "{} `{}` {rows} through `{}.{}` (",
            self.keys.len(),
            self.child,
            self.child,
            self.field
        )?;
        for (i, key) in self.keys.iter().take(KEYS_SHOWN).enumerate() {
            let comma = if i == 0 { "" } else { ", " };
            write!(f, "{comma}{key}")?;
        }
        if self.keys.len() > KEYS_SHOWN {
            write!(f, " and {} more", self.keys.len() - KEYS_SHOWN)?;
        }
        f.write_str(")")
    }
}

/// `a; b; c` of the blocking relations, and the parent models they name.
fn write_blocking(f: &mut fmt::Formatter<'_>, blocking: &[Blocking]) -> fmt::Result {
    let mut parents: Vec<&str> = blocking.iter().map(|b| b.parent).collect();
    parents.dedup();
    write!(f, "`{}` rows are referred to by ", parents.join("`, `"))?;
    for (i, b) in blocking.iter().enumerate() {
        if i > 0 {
            f.write_str("; ")?;
        }
        write!(f, "{b}")?;
    }
    Ok(())
}

/// Whether `error` is SQLite's plain `SQLITE_BUSY` (code 5): another connection held the lock,
/// usually past the busy timeout (the extended codes, e.g. a stale WAL snapshot, are other
/// failures).
#[cfg(feature = "sqlite")]
fn sqlite_busy(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(error) = error else {
        return false;
    };
    if error
        .try_downcast_ref::<sqlx::sqlite::SqliteError>()
        .is_none()
    {
        return false;
    }
    error
        .code()
        .and_then(|code| code.parse::<u32>().ok())
        .is_some_and(|code| code == 5)
}

#[cfg(not(feature = "sqlite"))]
fn sqlite_busy(_: &sqlx::Error) -> bool {
    false
}

impl fmt::Display for OrmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.text(f)?;
        if f.alternate() {
            write_causes(f, std::error::Error::source(self), ": ")?;
        }
        Ok(())
    }
}

impl OrmError {
    /// Whether the write was refused before it wrote anything or sent any signal (a delete
    /// `protect` or `restrict` stopped): a caller's transaction stays usable, so it can go on
    /// after the refusal, as Django's `except ProtectedError:` can.
    pub(crate) fn refused_before_writing(&self) -> bool {
        matches!(
            self,
            OrmError::Protected { .. } | OrmError::Restricted { .. }
        )
    }

    /// The text without the causes.
    fn text(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrmError::Database { operation, source } => {
                write!(f, "{operation} failed")?;
                if sqlite_busy(source) {
                    f.write_str(" because another connection held SQLite's write lock; a writer waits for it only up to the busy timeout (sqlx's default is 5 s; raise it with `SqliteConnectOptions::busy_timeout`, or shorten the transactions that write)")?;
                }
                Ok(())
            }
            // The depth error is the source, so receivers that save in turn pass it up whole
            // (the dispatcher looks for it in their errors' sources) instead of wrapping it.
            OrmError::Signal(SendError::TooDeep { .. }) => {
                f.write_str("a receiver's nested writes and sends went too deep")
            }
            OrmError::Signal(error) => fmt::Display::fmt(error, f),
            OrmError::RollbackOnly { reason } => write!(
                f,
                "the transaction can only roll back, because {reason}"
            ),
            OrmError::UnknownField { model, field, hint } => write!(
                f,
                "`{model}` has no saved field `{field}` to update{hint}; update_fields takes the names of non-key fields"
            ),
            OrmError::NoPrimaryKey { model, action } => write!(
                f,
                "`{model}` has no primary key value yet, so it cannot be {action}; save it first"
            ),
            OrmError::NotUpdated { model } => write!(
                f,
                "save of `{model}` with update_fields did not affect any rows (no row has that primary key)"
            ),
            OrmError::NoSavepoint => f.write_str("no savepoint is open in this transaction"),
            OrmError::MultipleRows { model } => write!(
                f,
                "more than one `{model}` row matches the query, so it does not name one row; narrow the condition (a unique column is the usual key)"
            ),
            OrmError::Sliced { model, write } => write!(
                f,
                "cannot {write} a query of `{model}` that has a limit or an offset; narrow it with a condition instead (for example on the keys of the rows to {write})"
            ),
            OrmError::Protected { blocking } => {
                f.write_str("cannot delete: ")?;
                write_blocking(f, blocking)?;
                f.write_str(", whose foreign keys are `on_delete = protect`; delete or re-point those rows first")
            }
            OrmError::Restricted { blocking } => {
                f.write_str("cannot delete: ")?;
                write_blocking(f, blocking)?;
                f.write_str(", whose foreign keys are `on_delete = restrict` and which this delete does not reach through a cascade; delete them first, or delete the row they cascade from")
            }
            OrmError::NotOnBackend { child, field, backend } => write!(
                f,
                "cannot collect the `{child}` rows whose `{field}` points at the rows to delete: `{child}` or its parent cannot be stored in {backend}"
            ),
            OrmError::DoesNotExist { model, key } => {
                write!(f, "no `{model}` row has the key {key}")
            }
            OrmError::Migration(_) => f.write_str("migrating the database failed"),
            OrmError::PoolInReceiver => f.write_str(
                "a receiver wrote through the pool while the write that sent its signal holds a connection of that pool in a transaction, which would deadlock: write through the transaction given to the receiver (a `tx: &mut Tx<..>` or `AnyTx` parameter)",
            ),
        }
    }
}

/// The text and its causes, one per line, as `anyhow` prints them: what `main` returning
/// `Result<(), Box<dyn Error>>` shows.
impl fmt::Debug for OrmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.text(f)?;
        let cause = std::error::Error::source(self);
        if cause.is_some() {
            f.write_str("\n\nCaused by:")?;
        }
        write_causes(f, cause, "\n    ")
    }
}

impl std::error::Error for OrmError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // sqlx's `Database` variant prints its inner error and also returns it as its
            // source; skipping the wrapper keeps the database's message once in the chain.
            OrmError::Database {
                source: sqlx::Error::Database(error),
                ..
            } => Some(error.as_error()),
            OrmError::Database { source, .. } => Some(source),
            OrmError::Signal(error @ SendError::TooDeep { .. }) => Some(error),
            OrmError::Signal(error) => error.source(),
            OrmError::Migration(error) => Some(error),
            _ => None,
        }
    }
}

impl From<SendError> for OrmError {
    fn from(error: SendError) -> Self {
        OrmError::Signal(error)
    }
}

/// Adds what the ORM was doing to a sqlx error.
pub(crate) trait Context<T> {
    /// Wraps the error as [`OrmError::Database`] with `operation`.
    fn during(self, operation: Operation) -> Result<T, OrmError>;
}

impl<T> Context<T> for Result<T, sqlx::Error> {
    fn during(self, operation: Operation) -> Result<T, OrmError> {
        self.map_err(|source| OrmError::Database { operation, source })
    }
}

/// The error and its causes on one line: what a rollback-only mark keeps of the failure
/// that set it.
pub(crate) fn chain_text(error: &OrmError) -> String {
    format!("{error:#}")
}
