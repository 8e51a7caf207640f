//! Errors of the ORM's writes and transactions.

use signals_core::SendError;

/// Why a write, a fetch or a transaction step failed. A failed write leaves the database as
/// it was: its own transaction rolled back, or the caller's marked rollback-only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrmError {
    /// The database refused a statement.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A receiver failed, so the write was undone.
    #[error(transparent)]
    Signal(#[from] SendError),
    /// An earlier write in this transaction failed; it can only roll back.
    #[error("the transaction can only roll back, because an earlier write in it failed: {reason}")]
    RollbackOnly {
        /// The earlier failure.
        reason: String,
    },
    /// `update_fields` named something that is not a saved field of the model.
    #[error(
        "`{model}` has no saved field `{field}` to update{hint}; update_fields takes the names of non-key fields"
    )]
    UnknownField {
        /// The model's type name.
        model: &'static str,
        /// The unknown name.
        field: String,
        /// A suggestion, or empty.
        hint: String,
    },
    /// A write that needs the primary key was given an instance without one.
    #[error("`{model}` has no primary key value yet, so it cannot be {action}; save it first")]
    NoPrimaryKey {
        /// The model's type name.
        model: &'static str,
        /// `"deleted"` or `"updated with update_fields"`.
        action: &'static str,
    },
    /// A save with `update_fields` matched no row (Django's `NotUpdated`).
    #[error(
        "save of `{model}` with update_fields did not affect any rows (no row has that primary key)"
    )]
    NotUpdated {
        /// The model's type name.
        model: &'static str,
    },
    /// `release_savepoint` or `rollback_to_savepoint` without an open savepoint.
    #[error("no savepoint is open in this transaction")]
    NoSavepoint,
}
