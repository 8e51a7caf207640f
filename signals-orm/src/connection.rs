//! Django's `connection_created`: sent for each new database connection of a pool made with
//! [`pool_options`], so receivers can set PRAGMAs, `search_path` or session settings once per
//! connection. Rules: `docs/orm.md`, "`connection_created`".

use std::any::Any;
use std::marker::PhantomData;

use signals_core::__private::{FromEvent, Registry, Report};
use signals_core::{BoxError, Sender, Signal};
use sqlx::pool::PoolOptions;

use crate::Backend;

/// `connection_created` as a type: what receivers name in `#[receiver(..)]`.
///
/// Sent with the backend as sender (`sqlx::Sqlite` or `sqlx::Postgres`), so a receiver of one
/// backend's connections names it: `#[receiver(ConnectionCreatedSignal, sender = sqlx::Sqlite)]
/// async fn pragmas(ev: ConnectionCreated<'_, sqlx::Sqlite>)`. A failing receiver fails the
/// connection attempt (sqlx then reports the error to whoever was acquiring), as an exception
/// in a Django receiver fails the connection. sqlx then closes it and tries a new one until its
/// acquire timeout, reporting only the timeout, so the receiver's error is also reported
/// through `tracing` (a stderr line when no subscriber is installed), naming the receiver.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionCreatedSignal;

/// The event behind `connection_created`: the new connection, type-erased.
pub struct ConnectionEvent<'e> {
    conn: &'e mut (dyn Any + Send),
    using: &'static str,
}

impl Signal for ConnectionCreatedSignal {
    const NAME: &'static str = "connection_created";
    type Event<'e> = ConnectionEvent<'e>;
    type Reply = ();

    fn reborrow<'s>(event: &'s mut ConnectionEvent<'_>) -> ConnectionEvent<'s> {
        ConnectionEvent {
            conn: &mut *event.conn,
            using: event.using,
        }
    }

    fn registry() -> &'static Registry<Self> {
        signals_core::__signal_registry!(ConnectionCreatedSignal)
    }
}

/// `connection_created`'s payload: the new connection of backend `DB`, to configure.
#[non_exhaustive]
pub struct ConnectionCreated<'e, DB: Backend> {
    /// The connection, before anything else uses it: run session settings on it
    /// (`sqlx::query("PRAGMA ..").execute(&mut *ev.conn)`).
    pub conn: &'e mut DB::Connection,
    /// The backend (`"sqlite"` or `"postgres"`), Django's `connection.alias` nearest match.
    pub using: &'static str,
    backend: PhantomData<DB>,
}

impl<DB: Backend> std::fmt::Debug for ConnectionCreated<'_, DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionCreated")
            .field("using", &self.using)
            .finish_non_exhaustive()
    }
}

impl<'e, X: ?Sized, DB: Backend> FromEvent<'e, ConnectionCreatedSignal, X>
    for ConnectionCreated<'e, DB>
{
    fn from_event(event: ConnectionEvent<'e>) -> Result<Self, BoxError> {
        let using = event.using;
        match event.conn.downcast_mut::<DB::Connection>() {
            Some(conn) => Ok(ConnectionCreated {
                conn,
                using,
                backend: PhantomData,
            }),
            None => Err(format!(
                "this receiver configures `{}` connections but was sent a {using} one: connect it with `sender = {}`",
                <DB as Backend>::NAME,
                std::any::type_name::<DB>()
            )
            .into()),
        }
    }
}

/// sqlx's pool options for `DB`, with an `after_connect` that sends `connection_created` for
/// each new connection (Django sends it from `connect()`). Chain the usual settings and
/// connect:
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use signals_orm::connection::{pool_options, ConnectionCreated, ConnectionCreatedSignal};
/// use signals_orm::receiver;
///
/// #[receiver(ConnectionCreatedSignal, sender = sqlx::Sqlite)]
/// async fn pragmas(ev: ConnectionCreated<'_, sqlx::Sqlite>) -> Result<(), sqlx::Error> {
///     sqlx::query("PRAGMA cache_size = -8000").execute(&mut *ev.conn).await?;
///     Ok(())
/// }
///
/// let pool = pool_options::<sqlx::Sqlite>().max_connections(2).connect("sqlite::memory:").await.unwrap();
/// let size: i64 = sqlx::query_scalar("PRAGMA cache_size").fetch_one(&pool).await.unwrap();
/// assert_eq!(size, -8000);
/// # });
/// ```
///
/// The pool has one `after_connect`: setting another replaces this one (connect a
/// `connection_created` receiver instead).
#[must_use]
pub fn pool_options<DB: Backend>() -> PoolOptions<DB> {
    PoolOptions::new().after_connect(|conn: &mut DB::Connection, _meta| {
        Box::pin(async move {
            if !ConnectionCreatedSignal::registry().has_listeners(Sender::of::<DB>()) {
                return Ok(());
            }
            let event = ConnectionEvent {
                conn: conn as &mut (dyn Any + Send),
                using: <DB as Backend>::NAME,
            };
            ConnectionCreatedSignal::registry()
                .send(Sender::of::<DB>(), event)
                .await
                .map_err(|error| {
                    // sqlx closes the connection and tries another until its acquire timeout,
                    // then reports only the timeout: this report is where the cause shows.
                    Report::error(
                        "connection_created receiver failed; the new connection was closed",
                        &error,
                    )
                    .emit();
                    sqlx::Error::Configuration(Box::new(error))
                })
        })
    })
}
