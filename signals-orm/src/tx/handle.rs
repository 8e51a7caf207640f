//! The write's transaction as signal payloads carry it: type-erased (`TxHandle`), and given
//! back to receivers as `&mut Tx<DB>` or [`AnyTx`].

use std::any::Any;

use signals_core::BoxError;
use sqlx::{Postgres, Sqlite};

use super::Tx;
use super::hooks::Hook;
use crate::backend::Backend;

/// What a transaction handed to signal payloads can do without naming its backend.
#[doc(hidden)]
pub trait TxHandle: Any + Send {
    /// Queues a callback for after the outermost COMMIT.
    fn push_hook(&mut self, hook: Hook);
    /// The backend's name.
    fn backend(&self) -> &'static str;
}

impl<DB: Backend> TxHandle for Tx<DB> {
    fn push_hook(&mut self, hook: Hook) {
        self.hooks.push(hook);
    }

    fn backend(&self) -> &'static str {
        <DB as Backend>::NAME
    }
}

fn wrong_backend<DB: Backend>(tx: &dyn TxHandle) -> BoxError {
    format!(
        "the receiver takes a `Tx<{}>` but the write runs on {}",
        std::any::type_name::<DB>(),
        tx.backend()
    )
    .into()
}

pub(crate) fn tx_of<DB: Backend>(tx: &mut dyn TxHandle) -> Result<&mut Tx<DB>, BoxError> {
    if (tx as &dyn Any).is::<Tx<DB>>() {
        Ok((tx as &mut dyn Any)
            .downcast_mut::<Tx<DB>>()
            .expect("checked just above"))
    } else {
        Err(wrong_backend::<DB>(tx))
    }
}

/// The write's transaction for receivers that serve either backend: match on it to reach the
/// typed [`Tx`]. Take `&mut Tx<Sqlite>` (or `Postgres`) instead when the program uses one.
#[derive(Debug)]
pub enum AnyTx<'e> {
    /// A SQLite transaction.
    Sqlite(&'e mut Tx<Sqlite>),
    /// A PostgreSQL transaction.
    Postgres(&'e mut Tx<Postgres>),
}

impl<'e> AnyTx<'e> {
    pub(crate) fn of(tx: &'e mut dyn TxHandle) -> Result<Self, BoxError> {
        if (tx as &dyn Any).is::<Tx<Sqlite>>() {
            Ok(AnyTx::Sqlite(tx_of::<Sqlite>(tx)?))
        } else {
            Ok(AnyTx::Postgres(tx_of::<Postgres>(tx)?))
        }
    }

    /// Lends the transaction again, to use it more than once in a receiver.
    pub fn reborrow(&mut self) -> AnyTx<'_> {
        match self {
            AnyTx::Sqlite(tx) => AnyTx::Sqlite(tx),
            AnyTx::Postgres(tx) => AnyTx::Postgres(tx),
        }
    }

    /// The backend's name.
    #[must_use]
    pub fn backend(&self) -> &'static str {
        match self {
            AnyTx::Sqlite(_) => <Sqlite as Backend>::NAME,
            AnyTx::Postgres(_) => <Postgres as Backend>::NAME,
        }
    }
}
