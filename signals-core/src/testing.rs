//! The test kit: record the signals a test sends, replace one receiver by a stub, and compare
//! sequences with a readable diff.
//!
//! Everything here is scoped like [`Mute`](crate::Mute): a tokio task-local for
//! `scope(fut)`, a thread-local for `sync_scope(f)`. A test sees its own sends only, however
//! many tests run at once in other tasks and threads, and a task spawned inside a scope is
//! outside it (wrap its future in the scope again to include it).
//!
//! What it costs when no test uses it: nothing but the one relaxed atomic load every send
//! already pays for muting (one counter counts the live scopes of both), and one more for a
//! send nobody listens to. While a scope is alive somewhere, sends of every task look up their
//! task-local, and only the sends inside a scope record, allocate or lock.
//!
//! - [`Recorder`]: every send in its scope (signal, sender, the payload's key fields from
//!   [`Signal::describe`]), checked with [`Recorder::assert_sent`], which panics with a
//!   diff. Inside a recording scope every signal counts as heard ([`has_listeners`] says
//!   `true`), so the ORM sends the signals of models nobody listens to as well, and they are
//!   recorded.
//! - [`Fake`]: one receiver replaced by a stub inside the scope; the stub records its calls
//!   and does nothing, fails, or runs a closure given to it.
//! - [`Mute::all`](crate::Mute::all) with [`except`](crate::Mute::except): everything but
//!   the signals under test muted.
//! - [`assert_lines`]: the same diff for any sequence (the ORM's queued `on_commit`
//!   callbacks, a fake's calls).
//!
//! [`has_listeners`]: crate::has_listeners
//!
//! # Example
//!
//! ```
//! use signals_core::testing::Recorder;
//! use signals_core::{Sender, Signal};
//!
//! #[derive(Signal, Debug)]
//! struct PaymentSuccessful { order_id: i64 }
//! struct Order;
//!
//! let rec = Recorder::new();
//! rec.sync_scope(|| {
//!     signals_core::send_sync(Sender::of::<Order>(), &PaymentSuccessful { order_id: 7 })
//! })
//! .unwrap();
//! rec.assert_sent(&["PaymentSuccessful[Order] { order_id: 7 }"]);
//! ```

use std::any::{Any, TypeId};
use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::mute::{ScopeGuard, any_scope, is_muted_here};
use crate::receiver::{BoxError, Handler, IntoReceiver, StaticOrShared, SyncHandler};
use crate::registry::Entry;
use crate::signal::{Sender, Signal};

tokio::task_local! {
    static TESTING: Arc<TestScope>;
}

/// What the test-kit scopes around the current task hold, merged (inner ones after outer ones).
#[derive(Clone, Default)]
struct TestScope {
    recorders: Vec<Log>,
    fakes: Vec<Arc<FakeRule>>,
}

impl TestScope {
    /// The scope the current task is in, to add to.
    fn current() -> Self {
        TESTING
            .try_with(|scope| TestScope::clone(scope))
            .unwrap_or_default()
    }

    async fn run<F: Future>(self, fut: F) -> F::Output {
        let _active = ScopeGuard::new();
        TESTING.scope(Arc::new(self), fut).await
    }

    fn run_sync<R>(self, f: impl FnOnce() -> R) -> R {
        let _active = ScopeGuard::new();
        TESTING.sync_scope(Arc::new(self), f)
    }
}

/// A shared list of sends.
type Log = Arc<Mutex<Vec<Sent>>>;

fn lock(log: &Log) -> MutexGuard<'_, Vec<Sent>> {
    // A test that panicked while holding it left a list that is still whole.
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether a recorder is in scope in this task: it makes every signal count as heard.
#[inline]
pub(crate) fn recording() -> bool {
    any_scope() && recording_here()
}

#[cold]
#[inline(never)]
fn recording_here() -> bool {
    TESTING
        .try_with(|scope| !scope.recorders.is_empty())
        .unwrap_or(false)
}

/// What the scopes around the current task say about one send, once some scope is known to be
/// alive somewhere.
pub(crate) enum Verdict {
    /// Deliver to the receivers as they are.
    Deliver,
    /// A mute scope silences it.
    Muted,
    /// Deliver, with some receivers of this signal replaced by fakes.
    Faked(Fakes),
}

/// Decides [`Verdict`] and records the send in every recorder in scope (after the mute check,
/// before any receiver runs).
#[inline(never)]
pub(crate) fn verdict<S: Signal>(sender: Sender, event: &S::Event<'_>) -> Verdict {
    if is_muted_here::<S>(sender) {
        return Verdict::Muted;
    }
    let Ok(scope) = TESTING.try_with(Arc::clone) else {
        return Verdict::Deliver;
    };
    if !scope.recorders.is_empty() {
        let sent = Sent::of::<S>(sender, event);
        for log in &scope.recorders {
            lock(log).push(sent.clone());
        }
    }
    let signal = TypeId::of::<S>();
    if scope.fakes.iter().any(|fake| fake.signal == signal) {
        Verdict::Faked(Fakes(scope))
    } else {
        Verdict::Deliver
    }
}

/// The fakes in scope for one send.
pub(crate) struct Fakes(Arc<TestScope>);

impl Fakes {
    /// The fake replacing `entry`, the innermost scope's first.
    fn rule<S: Signal>(&self, entry: &Entry<S>) -> Option<&FakeRule> {
        let signal = TypeId::of::<S>();
        let identity = entry.identity?;
        self.0
            .fakes
            .iter()
            .rev()
            .find(|fake| {
                fake.signal == signal && fake.identity == identity && fake.sender == entry.sender
            })
            .map(|fake| &**fake)
    }

    /// What runs for `entry`: its stub if it is faked, else its own handler.
    pub(crate) fn handler<'a, S: Signal>(&'a self, entry: &'a Entry<S>) -> &'a Handler<S> {
        self.rule(entry)
            .and_then(|fake| fake.stub.downcast_ref::<Handler<S>>())
            .unwrap_or(&entry.handler)
    }

    /// [`handler`](Fakes::handler), noting the call in the fake when it is one.
    pub(crate) fn call<'a, S: Signal>(
        &'a self,
        entry: &'a Entry<S>,
        sender: Sender,
        event: &S::Event<'_>,
    ) -> &'a Handler<S> {
        match self.rule(entry) {
            Some(fake) => {
                lock(&fake.calls).push(Sent::of::<S>(sender, event));
                fake.stub
                    .downcast_ref::<Handler<S>>()
                    .unwrap_or(&entry.handler)
            }
            None => &entry.handler,
        }
    }
}

/// One send as a recorder saw it: the signal, the sender and the payload's key fields.
///
/// Its `Display` is one line, `signal[Sender] name=value ...`, with the sender's type shown
/// without its module path (`post_save[User] pk=1 created=true update_fields=-`), which is
/// what [`Recorder::assert_sent`] compares.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sent {
    /// The signal's name ([`Signal::NAME`]: `post_save`, `PaymentSuccessful`).
    pub signal: &'static str,
    /// The sender's full type path (`app::models::User`), `-` for [`Sender::NONE`].
    pub sender: &'static str,
    /// The payload's key fields from [`Signal::describe`], in its order. A field with an
    /// empty name is shown as its value alone (a custom signal's `Debug` text).
    pub fields: Vec<(&'static str, String)>,
    signal_type: TypeId,
    sender_type: Option<TypeId>,
}

impl Sent {
    fn of<S: Signal>(sender: Sender, event: &S::Event<'_>) -> Self {
        Sent {
            signal: S::NAME,
            sender: sender.name(),
            fields: S::describe(event),
            signal_type: TypeId::of::<S>(),
            sender_type: sender.type_id(),
        }
    }

    /// The value of field `name`, if the payload described one.
    #[must_use]
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| *field == name)
            .map(|(_, value)| value.as_str())
    }

    /// Whether this was a send of signal `S`.
    #[must_use]
    pub fn is<S: Signal>(&self) -> bool {
        self.signal_type == TypeId::of::<S>()
    }

    /// Whether the sender was `T` (for the ORM's model signals: the model).
    #[must_use]
    pub fn is_from<T: ?Sized + 'static>(&self) -> bool {
        self.sender_type == Some(TypeId::of::<T>())
    }
}

impl fmt::Display for Sent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.signal, short_type_name(self.sender))?;
        for (name, value) in &self.fields {
            if name.is_empty() {
                write!(f, " {value}")?;
            } else {
                write!(f, " {name}={value}")?;
            }
        }
        Ok(())
    }
}

/// A type path without its module paths: `Vec<app::User>` as `Vec<User>`.
fn short_type_name(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut segment = 0;
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            out.truncate(segment);
        } else {
            out.push(c);
            if !(c.is_alphanumeric() || c == '_') {
                segment = out.len();
            }
        }
    }
    out
}

/// Records every signal sent inside its scopes, by this task (or thread) only.
///
/// What Django tests build by hand with a receiver appending to a list, without the receiver
/// and without seeing other tests' sends: each send made inside
/// [`scope`](Recorder::scope) or [`sync_scope`](Recorder::sync_scope) is recorded as a
/// [`Sent`] when it starts, after the mute check (a muted send is not recorded) and before any
/// receiver runs, nested sends included, in the order they started. A failed send is recorded
/// too. Inside the scope every signal counts as heard, so a save of a model no receiver
/// listens to still sends (and records) its `pre_save` and `post_save`.
///
/// Clones share one record: a clone can enter the scope of a task the test spawns.
///
/// # Example
///
/// ```
/// use signals_core::testing::Recorder;
/// use signals_core::{Sender, Signal};
///
/// #[derive(Signal, Debug)]
/// struct Shipped { order_id: i64 }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let rec = Recorder::new();
/// rec.scope(async {
///     signals_core::send(Sender::NONE, &Shipped { order_id: 1 }).await.unwrap();
///     signals_core::send(Sender::NONE, &Shipped { order_id: 2 }).await.unwrap();
/// })
/// .await;
/// rec.assert_sent(&["Shipped[-] { order_id: 1 }", "Shipped[-] { order_id: 2 }"]);
/// assert_eq!(rec.sent()[1].signal, "Shipped");
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    log: Log,
}

impl Recorder {
    /// An empty recorder.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn scope_with_me(&self) -> TestScope {
        let mut scope = TestScope::current();
        scope.recorders.push(Arc::clone(&self.log));
        scope
    }

    /// Runs `fut` recording the sends of its task. Scopes nest: an outer recorder records
    /// what an inner one does.
    pub async fn scope<F: Future>(&self, fut: F) -> F::Output {
        self.scope_with_me().run(fut).await
    }

    /// Runs `f` recording the sends of this thread, for synchronous code.
    pub fn sync_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        self.scope_with_me().run_sync(f)
    }

    /// Every send recorded so far, in the order they started.
    #[must_use]
    pub fn sent(&self) -> Vec<Sent> {
        lock(&self.log).clone()
    }

    /// Every send recorded so far as its one-line text (see [`Sent`]).
    #[must_use]
    pub fn lines(&self) -> Vec<String> {
        lock(&self.log).iter().map(ToString::to_string).collect()
    }

    /// Forgets what was recorded.
    pub fn clear(&self) {
        lock(&self.log).clear();
    }

    /// Checks that the sends recorded are exactly `expected`, as [`Sent`]'s one-line text, in
    /// order.
    ///
    /// # Panics
    ///
    /// When they differ, with the two sequences as a diff: lines only expected start with
    /// `-`, lines only sent with `+`, lines in both with a space.
    #[track_caller]
    pub fn assert_sent(&self, expected: &[&str]) {
        assert_lines_titled("the signals sent", &self.sent(), expected);
    }

    /// [`assert_sent`](Recorder::assert_sent) on the sends `keep` accepts only, to leave out
    /// what a test is not about (`|s| s.is_from::<User>()`).
    ///
    /// # Panics
    ///
    /// When they differ, with the diff.
    #[track_caller]
    pub fn assert_sent_matching(&self, keep: impl Fn(&Sent) -> bool, expected: &[&str]) {
        let kept: Vec<Sent> = self.sent().into_iter().filter(|s| keep(s)).collect();
        assert_lines_titled("the signals sent (those kept)", &kept, expected);
    }
}

/// Checks that `actual`, each shown with `Display`, is exactly the lines `expected`, in order:
/// the comparison [`Recorder::assert_sent`] makes, for other sequences (the `on_commit`
/// callbacks a transaction queued, a [`Fake`]'s calls).
///
/// # Panics
///
/// When they differ, with a diff: lines only expected start with `-`, lines only in `actual`
/// with `+`, lines in both with a space.
///
/// ```should_panic
/// signals_core::testing::assert_lines(&["a", "b"], &["a", "c"]);
/// // panics with:
/// //   lines differ from the expected ones (2 expected, 2 actual; -expected +actual):
/// //    a
/// //   -c
/// //   +b
/// ```
#[track_caller]
pub fn assert_lines<T: fmt::Display>(actual: &[T], expected: &[&str]) {
    assert_lines_titled("lines", actual, expected);
}

#[track_caller]
fn assert_lines_titled<T: fmt::Display>(what: &str, actual: &[T], expected: &[&str]) {
    let actual: Vec<String> = actual.iter().map(ToString::to_string).collect();
    if actual
        .iter()
        .map(String::as_str)
        .eq(expected.iter().copied())
    {
        return;
    }
    panic!("{}", diff(what, expected, &actual));
}

/// The message of a failed comparison: every line of both sequences, marked.
fn diff(what: &str, expected: &[&str], actual: &[String]) -> String {
    let actual: Vec<&str> = actual.iter().map(String::as_str).collect();
    let mut out = format!(
        "{what} differ from the expected ones ({} expected, {} actual; -expected +actual):\n",
        expected.len(),
        actual.len()
    );
    let diff = similar::TextDiff::from_slices(expected, &actual);
    for change in diff.iter_all_changes() {
        let mark = match change.tag() {
            similar::ChangeTag::Delete => '-',
            similar::ChangeTag::Insert => '+',
            similar::ChangeTag::Equal => ' ',
        };
        let _ = writeln!(out, "{mark}{}", change.value());
    }
    if expected.is_empty() && actual.is_empty() {
        out.push_str("(both empty)\n");
    }
    out
}

/// A replaced receiver, as the scopes hold it.
struct FakeRule {
    signal: TypeId,
    identity: TypeId,
    sender: Option<TypeId>,
    /// A `Handler<S>` of the fake's signal.
    stub: Box<dyn Any + Send + Sync>,
    calls: Log,
}

/// Replaces one receiver by a stub inside a scope: what Laravel's and Rails' fakes, and
/// `mock.patch` in a Django test, are used for (a receiver that sends mail, calls a payment
/// service, or must be made to fail).
///
/// The receiver is named as [`disconnect`](crate::disconnect) names it: the function and the
/// sender it is connected for. Inside [`scope`](Fake::scope) (or
/// [`sync_scope`](Fake::sync_scope)) the stub runs instead of it, in its place in the
/// dispatch order; other tasks and threads, tests running at the same time among them, still
/// get the real receiver, since no receiver list is changed. The stub records each call as a
/// [`Sent`] ([`calls`](Fake::calls)) and by default does nothing else; [`failing`](Fake::failing)
/// makes it return an error, [`with`](Fake::with) runs a closure of the signal's payload.
/// The ORM's model signals take a typed closure through `signals_orm::testing::FakeModel`.
///
/// A faked `on_commit` receiver of the ORM is replaced at the send: its stub runs then, and
/// nothing is queued for after COMMIT.
///
/// # Example
///
/// ```
/// use signals_core::testing::Fake;
/// use signals_core::{receiver, Sender, Signal};
///
/// #[derive(Signal, Debug)]
/// struct Signup { email: &'static str }
///
/// #[receiver(Signup)]
/// fn send_welcome_mail(ev: &Signup) -> Result<(), String> {
///     Err(format!("no mail server in tests ({})", ev.email))
/// }
///
/// let fake = Fake::<Signup>::receiver(send_welcome_mail, Sender::NONE);
/// fake.sync_scope(|| signals_core::send_sync(Sender::NONE, &Signup { email: "ada@example.com" }))
///     .unwrap();
/// assert_eq!(fake.calls().len(), 1);
/// // Outside the scope the real receiver runs.
/// assert!(signals_core::send_sync(Sender::NONE, &Signup { email: "bob@example.com" }).is_err());
/// ```
pub struct Fake<S: Signal> {
    identity: TypeId,
    sender: Option<TypeId>,
    stub: Handler<S>,
    calls: Log,
}

/// The default stub: succeeds, or fails with its message.
struct Stub(Option<String>);

impl<S: Signal> SyncHandler<S> for Stub {
    fn call(&self, _sender: Sender, _event: S::Event<'_>) -> Result<(), BoxError> {
        match &self.0 {
            None => Ok(()),
            Some(message) => Err(message.clone().into()),
        }
    }
}

impl<S: Signal> Fake<S> {
    /// A fake of `real`, a receiver function of `S` connected for `sender` (`Sender::NONE`
    /// for a receiver of every sender; a `#[receiver(post_save, sender = User)]` is connected
    /// for `Sender::of::<User>()`). Its stub records its calls and returns `Ok`.
    ///
    /// # Panics
    ///
    /// When `real` is not connected to `S` for `sender` now (a receiver of another signal, a
    /// wrong sender, a disconnected receiver, a closure): the fake could never run.
    #[track_caller]
    #[expect(
        clippy::needless_pass_by_value,
        reason = "the function is named by value, as `disconnect` takes it; only its type counts"
    )]
    pub fn receiver<F: 'static>(real: F, sender: Sender) -> Self {
        let _ = real;
        let identity = TypeId::of::<F>();
        let snapshot = S::registry().inner().lend();
        let of_real: Vec<&Entry<S>> = snapshot
            .entries
            .iter()
            .filter(|entry| entry.identity == Some(identity))
            .collect();
        if !of_real.iter().any(|entry| entry.sender == sender.type_id()) {
            let connected: Vec<&str> = of_real
                .iter()
                .map(|entry| entry.sender_name.unwrap_or("-"))
                .collect();
            let connected = if connected.is_empty() {
                format!("it is not a connected receiver of `{}`", S::NAME)
            } else {
                format!(
                    "it is connected for sender(s) {} (`Sender::NONE` for `-`)",
                    connected.join(", ")
                )
            };
            panic!(
                "cannot fake `{}` for sender `{}`: {connected}",
                std::any::type_name::<F>(),
                sender.name(),
            );
        }
        Fake {
            identity,
            sender: sender.type_id(),
            stub: Handler::Sync(StaticOrShared::Shared(Arc::new(Stub(None)))),
            calls: Log::default(),
        }
    }

    /// Makes the stub fail with `error` (a receiver error naming the real receiver), to test
    /// what a failing receiver does: a model signal's write is rolled back, `send` returns the
    /// error.
    #[must_use]
    pub fn failing(mut self, error: impl Into<String>) -> Self {
        self.stub = Handler::Sync(StaticOrShared::Shared(Arc::new(Stub(Some(error.into())))));
        self
    }

    /// Runs `stub` instead of the receiver: a closure or function taking `&S` (and the
    /// [`Sender`] if it wants it), sync or `async fn`, as [`connect`](crate::connect) takes.
    /// Calls are still recorded.
    #[must_use]
    pub fn with<M>(self, stub: impl IntoReceiver<S, M>) -> Self {
        self.with_handler(stub.into_handler())
    }

    /// Runs `stub` instead of the receiver; for crates that build handlers of their own
    /// signals (signals-orm's model-signal closures).
    #[doc(hidden)]
    #[must_use]
    pub fn with_handler(mut self, stub: Handler<S>) -> Self {
        self.stub = stub;
        self
    }

    fn scope_with_me(&self) -> TestScope {
        let mut scope = TestScope::current();
        scope.fakes.push(Arc::new(FakeRule {
            signal: TypeId::of::<S>(),
            identity: self.identity,
            sender: self.sender,
            stub: Box::new(self.stub.clone()),
            calls: Arc::clone(&self.calls),
        }));
        scope
    }

    /// Runs `fut` with the receiver replaced in its task. Scopes nest; an inner fake of the
    /// same receiver wins.
    pub async fn scope<Fut: Future>(&self, fut: Fut) -> Fut::Output {
        self.scope_with_me().run(fut).await
    }

    /// Runs `f` with the receiver replaced on this thread, for synchronous code.
    pub fn sync_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        self.scope_with_me().run_sync(f)
    }

    /// Each call of the stub so far, as the send it was called for.
    #[must_use]
    pub fn calls(&self) -> Vec<Sent> {
        lock(&self.calls).clone()
    }
}

impl<S: Signal> fmt::Debug for Fake<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fake")
            .field("signal", &S::NAME)
            .field("calls", &lock(&self.calls).len())
            .finish_non_exhaustive()
    }
}

/// A custom signal's `Debug` text as its one described field: without the type's name it
/// starts with (`{ order_id: 7 }`), nothing for a unit struct.
pub(crate) fn debug_fields(type_name: &str, debug: &str) -> Vec<(&'static str, String)> {
    let rest = match debug.strip_prefix(type_name) {
        Some(rest) if rest.is_empty() || rest.starts_with([' ', '(', '{']) => rest.trim_start(),
        _ => debug,
    };
    if rest.is_empty() {
        Vec::new()
    } else {
        vec![("", rest.to_owned())]
    }
}

#[cfg(test)]
mod tests {
    use super::{debug_fields, diff, short_type_name};

    #[test]
    fn short_names_drop_module_paths() {
        assert_eq!(short_type_name("app::models::User"), "User");
        assert_eq!(short_type_name("alloc::vec::Vec<app::User>"), "Vec<User>");
        assert_eq!(short_type_name("dyn app::AnyModel"), "dyn AnyModel");
        assert_eq!(short_type_name("-"), "-");
    }

    #[test]
    fn debug_text_loses_the_type_name() {
        assert_eq!(
            debug_fields("Paid", "Paid { id: 1 }"),
            [("", "{ id: 1 }".to_owned())]
        );
        assert_eq!(debug_fields("Paid", "Paid(1)"), [("", "(1)".to_owned())]);
        assert!(debug_fields("Ping", "Ping").is_empty());
        assert_eq!(
            debug_fields("Kind", "Created { id: 1 }"),
            [("", "Created { id: 1 }".to_owned())]
        );
        assert_eq!(
            debug_fields("Paid", "Paidout"),
            [("", "Paidout".to_owned())]
        );
    }

    #[test]
    fn the_diff_marks_each_line() {
        let text = diff(
            "lines",
            &["a", "b", "c"],
            &["a".to_owned(), "x".to_owned(), "c".to_owned()],
        );
        assert_eq!(
            text,
            "lines differ from the expected ones (3 expected, 3 actual; -expected +actual):\n a\n-b\n+x\n c\n"
        );
        assert!(text.contains("\n a\n"), "{text}");
        assert!(text.contains("\n-b\n"), "{text}");
        assert!(text.contains("\n+x\n"), "{text}");
        assert!(text.contains("\n c\n"), "{text}");
    }
}
