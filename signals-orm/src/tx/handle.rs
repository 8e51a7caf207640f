//! The write's transaction as signal payloads carry it: type-erased (`TxHandle`), and given
//! back to receivers as `&mut Tx<DB>` or [`AnyTx`].

use std::any::Any;

use signals_core::BoxError;
#[cfg(feature = "postgres")]
use sqlx::Postgres;
#[cfg(feature = "sqlite")]
use sqlx::Sqlite;

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
///
/// It has a variant per backend feature that is on, so a program built with one backend
/// matches one variant.
#[derive(Debug)]
pub enum AnyTx<'e> {
    /// A SQLite transaction.
    #[cfg(feature = "sqlite")]
    Sqlite(&'e mut Tx<Sqlite>),
    /// A PostgreSQL transaction.
    #[cfg(feature = "postgres")]
    Postgres(&'e mut Tx<Postgres>),
}

impl<'e> AnyTx<'e> {
    pub(crate) fn of(tx: &'e mut dyn TxHandle) -> Result<Self, BoxError> {
        #[cfg(feature = "sqlite")]
        if (tx as &dyn Any).is::<Tx<Sqlite>>() {
            return Ok(AnyTx::Sqlite(tx_of::<Sqlite>(tx)?));
        }
        #[cfg(feature = "postgres")]
        if (tx as &dyn Any).is::<Tx<Postgres>>() {
            return Ok(AnyTx::Postgres(tx_of::<Postgres>(tx)?));
        }
        Err(format!(
            "no backend of this build runs a `{}` transaction",
            tx.backend()
        )
        .into())
    }

    /// Lends the transaction again, to use it more than once in a receiver.
    pub fn reborrow(&mut self) -> AnyTx<'_> {
        match self {
            #[cfg(feature = "sqlite")]
            AnyTx::Sqlite(tx) => AnyTx::Sqlite(tx),
            #[cfg(feature = "postgres")]
            AnyTx::Postgres(tx) => AnyTx::Postgres(tx),
        }
    }

    /// The backend's name.
    #[must_use]
    pub fn backend(&self) -> &'static str {
        match self {
            #[cfg(feature = "sqlite")]
            AnyTx::Sqlite(_) => <Sqlite as Backend>::NAME,
            #[cfg(feature = "postgres")]
            AnyTx::Postgres(_) => <Postgres as Backend>::NAME,
        }
    }
}
