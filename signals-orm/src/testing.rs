//! The test kit, model signals included: record what a test sends, check the `on_commit`
//! callbacks a transaction queued (and run them without committing), replace one receiver by a
//! stub, mute everything but the signals under test.
//!
//! Every scope is the test's own task (or thread, for `sync_scope`): tests running in parallel
//! never see each other's sends, fakes or mutes. The dispatcher's part is
//! [`signals_core::testing`], re-exported here; this module adds the ORM's:
//!
//! - [`Recorder`]: inside its scope every model counts as listened to, so saves and deletes
//!   send (and record) their signals even for models without receivers. Model signals are
//!   described by their key fields: `pre_save[User] pk=- adding=true update_fields=-`,
//!   `post_save[User] pk=1 created=true update_fields=-`, `raw=true` only for `save_raw`,
//!   `pre_delete[User] pk=1 origin=self` (`origin=Customer(3)` in a cascade,
//!   `origin=query(User WHERE ..)` for a query's delete), and
//!   `m2m_changed[PostTags] pk=1 action=pre_add reverse=false pk_set=[2,3]`.
//! - [`Tx::on_commit_queue`](crate::Tx::on_commit_queue) and
//!   [`Tx::run_on_commit_queue`](crate::Tx::run_on_commit_queue): Django's
//!   `captureOnCommitCallbacks`, listing [`OnCommitCallback`]s.
//! - [`Fake`]: replaces one `#[receiver]` function, named as `disconnect` names it (the
//!   function and its sender). The stub records its calls and returns `Ok`, or fails
//!   ([`Fake::failing`]), or runs a typed closure of the payload ([`FakeModel::with_model`]).
//! - [`Mute::all`](crate::Mute::all)`.except::<PostSaveSignal>()`: `factory_boy`'s
//!   `mute_signals`, the other way round.
//!
//! # Example
//!
//! ```
//! use signals_orm::testing::{Fake, FakeModel, Recorder};
//! use signals_orm::model_signals::PostSaveSignal;
//! use signals_orm::{receiver, Committed, Model, ModelExt, PostSave, Sender, Tx};
//!
//! #[derive(Model, sqlx::FromRow, Clone, Debug)]
//! #[model(table = "users")]
//! struct User {
//!     #[model(primary_key)]
//!     id: Option<i64>,
//!     email: String,
//! }
//!
//! #[receiver(post_save, sender = User, on_commit)]
//! async fn send_welcome(ev: Committed<User>) -> Result<(), String> {
//!     Err(format!("no mail server here to welcome {}", ev.instance.email))
//! }
//!
//! #[receiver(post_save, sender = User)]
//! fn check_email(ev: PostSave<'_, User>) -> Result<(), String> {
//!     if ev.instance.email.contains('@') { Ok(()) } else { Err("no @".into()) }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
//! sqlx::raw_sql("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL)")
//!     .execute(&pool)
//!     .await?;
//!
//! // What a save sends, and what it queues for after COMMIT, in a transaction rolled back.
//! let rec = Recorder::new();
//! let mut tx = Tx::begin(&pool).await?;
//! let mut user = User { id: None, email: "ada@example.com".into() };
//! rec.scope(user.save(&mut tx)).await?;
//! rec.assert_sent(&[
//!     "pre_save[User] pk=- adding=true update_fields=-",
//!     "post_save[User] pk=1 created=true update_fields=-",
//! ]);
//! let queued = tx.on_commit_queue();
//! assert_eq!((queued[0].signal, queued.len()), ("post_save", 1));
//! assert!(queued[0].receiver.ends_with("::send_welcome"));
//! tx.rollback().await?; // nothing committed, no mail
//!
//! // A receiver replaced by a typed stub, in this task only.
//! let fake = Fake::<PostSaveSignal>::receiver(check_email, Sender::of::<User>())
//!     .with_model(|ev: PostSave<'_, User>| assert!(ev.created));
//! let mut tx = Tx::begin(&pool).await?;
//! let mut bob = User { id: None, email: "bob".into() };
//! fake.scope(bob.save(&mut tx)).await?; // `check_email` would have refused "bob"
//! assert_eq!(fake.calls().len(), 1);
//! // Outside the scope, the real receiver runs.
//! let mut eve = User { id: None, email: "eve".into() };
//! assert!(eve.save(&mut tx).await.is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```

pub use signals_core::testing::{Fake, Recorder, Sent, assert_lines};

pub use crate::tx::OnCommitCallback;

use signals_core::Signal;

use crate::model_signals::ModelReceiver;

/// Typed stubs for fakes of the ORM's model-signal receivers: [`Fake::with`] takes closures of
/// custom signals, this takes what `post_save.connect(..)` takes.
pub trait FakeModel<S: Signal>: Sized {
    /// Runs `stub` instead of the faked receiver: a closure or function of the signal's
    /// payload (`|ev: PostSave<'_, User>| ..`), optionally with the write's `&mut Tx<DB>`,
    /// sync or `async fn`, as [`post_save.connect`](crate::model_signals::PostSaveSignal::connect)
    /// takes. Calls are still recorded ([`Fake::calls`]).
    ///
    /// A stub of an `on_commit` receiver runs when the signal is sent, inside the write's
    /// transaction, not after COMMIT.
    #[must_use]
    fn with_model<M>(self, stub: impl ModelReceiver<S, M>) -> Self;
}

impl<S: Signal> FakeModel<S> for Fake<S> {
    fn with_model<M>(self, stub: impl ModelReceiver<S, M>) -> Self {
        self.with_handler(stub.into_handler())
    }
}
