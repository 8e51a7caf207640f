//! Django's request signals (`django.core.signals`) for any tower service: axum, hyper, tonic.
//!
//! [`RequestSignalsLayer`] wraps a service of `http::Request` → `http::Response` and sends
//!
//! - [`RequestStarted`] (`request_started`) before the inner service runs, with the method,
//!   URI, headers and a [`RequestId`];
//! - [`GotRequestException`] (`got_request_exception`) when the inner service returns an
//!   error or panics; a panic becomes a `500 Internal Server Error` response;
//! - [`RequestFinished`] (`request_finished`) once per request, when the response body has
//!   been sent to its end or dropped before it (a client that went away), so a streaming
//!   response is timed to its last chunk, as Django sends it when the response is closed.
//!
//! They are custom signals like any other: receive them with `#[receiver(RequestStarted)]`
//! (the Rust type; the Django name is the signal's displayed [`NAME`](crate::Signal::NAME))
//! or [`connect`](crate::connect), sync or `async`. They are sent with
//! [`send_robust`](crate::send_robust): a receiver that fails or panics is reported through
//! `tracing` (on stderr when no subscriber is installed) and never changes the response.
//!
//! A request nobody listens to costs three [`has_listeners`] checks (two atomic loads each)
//! and no allocation, lock or hashing; the rules, and where they differ from Django, are in `docs/dispatch.md`,
//! section "Request signals".
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//!
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt as _, Full};
//! use signals_core::receiver;
//! use signals_core::request::{BodyEnd, RequestFinished, RequestSignalsLayer, RequestStarted};
//! use tower::{Layer as _, ServiceExt as _};
//!
//! static STARTED: AtomicUsize = AtomicUsize::new(0);
//! static COMPLETED: AtomicUsize = AtomicUsize::new(0);
//!
//! #[receiver(RequestStarted)]
//! fn log_start(ev: &RequestStarted) {
//!     println!("#{} {} {}", ev.request_id, ev.method(), ev.uri());
//!     STARTED.fetch_add(1, Ordering::SeqCst);
//! }
//!
//! #[receiver(RequestFinished)]
//! async fn log_end(ev: &RequestFinished) {
//!     println!("#{} {:?} in {:.2} ms", ev.request_id, ev.status, ev.duration_ms());
//!     if ev.end == BodyEnd::Completed {
//!         COMPLETED.fetch_add(1, Ordering::SeqCst);
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let app = tower::service_fn(|_: Request<()>| async {
//!     Ok::<_, Infallible>(Response::new(Full::new(&b"hello"[..])))
//! });
//! // With axum: `Router::new().route(..).layer(RequestSignalsLayer::new())`.
//! let app = RequestSignalsLayer::new().layer(app);
//! let response = app.oneshot(Request::get("/hello").body(())?).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(STARTED.load(Ordering::SeqCst), 1);
//! assert_eq!(COMPLETED.load(Ordering::SeqCst), 0, "the body is not sent yet");
//! let body = response.into_body().collect().await?.to_bytes();
//! assert_eq!(&body[..], b"hello");
//! assert_eq!(COMPLETED.load(Ordering::SeqCst), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```
//!
//! [`has_listeners`]: crate::has_listeners

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use http::{Extensions, HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::receiver::BoxFuture;
use crate::report::Report;
use crate::{Sender, Signal, has_listeners};

/// The number [`RequestSignalsLayer`] gives a request, carried by each of its signals so that
/// receivers can pair a [`RequestStarted`] with its [`RequestFinished`].
///
/// Unique within the process and increasing (one counter for every layer), starting at 1.
/// Only requests that some request signal listened to when they started take a number, so
/// numbers are not dense. It is not sent to the client nor put in the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(u64);

impl RequestId {
    /// The number.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }

    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        RequestId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Django's `request_started`: a request arrived and the inner service is about to run.
///
/// Sent by [`RequestSignalsLayer`] before it calls the inner service, which runs only once
/// every receiver has returned (async ones awaited). The request's head (method, URI, version,
/// headers, extensions) is lent to the receivers and handed back to the request afterwards,
/// so sending copies nothing. Django passes the WSGI `environ`; the head is its counterpart.
#[derive(Signal, Debug)]
#[signal(name = "request_started", crate = crate)]
pub struct RequestStarted {
    /// The request's number, also in its [`RequestFinished`] and [`GotRequestException`].
    pub request_id: RequestId,
    parts: http::request::Parts,
}

impl RequestStarted {
    /// The request's method.
    #[must_use]
    pub fn method(&self) -> &Method {
        &self.parts.method
    }

    /// The request's URI (for HTTP/1, usually the path and query only).
    #[must_use]
    pub fn uri(&self) -> &Uri {
        &self.parts.uri
    }

    /// The request's HTTP version.
    #[must_use]
    pub fn version(&self) -> Version {
        self.parts.version
    }

    /// The request's headers.
    #[must_use]
    pub fn headers(&self) -> &HeaderMap {
        &self.parts.headers
    }

    /// The request's extensions, as the layers outside this one left them (axum's
    /// `ConnectInfo`, for one).
    #[must_use]
    pub fn extensions(&self) -> &Extensions {
        &self.parts.extensions
    }
}

/// Django's `request_finished`: a request is over. Sent exactly once per request that
/// [`RequestStarted`] was sent for, or that a receiver of this signal or of
/// [`GotRequestException`] listened to when it started.
///
/// When it is sent, in the order things can end:
///
/// - the response body reported its end ([`BodyEnd::Completed`]): the server was handed its
///   last frame, so a streaming response is timed to its last chunk, not to its headers;
/// - the body was dropped before its end ([`BodyEnd::DroppedEarly`]): the client went away
///   mid-stream, or the server gave up; also when the request was dropped before the inner
///   service answered (`status` is then `None`);
/// - the body returned an error ([`BodyEnd::Failed`]);
/// - the inner service returned an error and there is no response ([`BodyEnd::NoResponse`],
///   right after [`GotRequestException`]).
///
/// # How receivers run
///
/// It is sent from the body's `poll_frame` or `Drop`, which cannot await. Receivers run at
/// once, in dispatch order, inside that poll or drop; an async receiver runs there too until it
/// first waits on something not ready. From that point the rest of the send (that receiver and
/// the ones after it) goes on in a task spawned on the current tokio runtime, so it may end
/// after the connection moved on to its next request. Without a tokio runtime on the thread (a
/// body dropped outside one), that rest is dropped and a warning is reported. Sync receivers
/// placed before every async one always run to the end inline.
#[derive(Signal, Debug, Clone)]
#[signal(name = "request_finished", crate = crate)]
#[non_exhaustive]
pub struct RequestFinished {
    /// The request's number, as in its [`RequestStarted`].
    pub request_id: RequestId,
    /// The request's method.
    pub method: Method,
    /// The request's URI.
    pub uri: Uri,
    /// The response's status: `500` for a panic turned into a response; `None` when there was
    /// no response (the inner service returned an error, or the request was dropped first).
    pub status: Option<StatusCode>,
    /// Time from the request's arrival at the layer (before `request_started`) to this signal.
    pub duration: Duration,
    /// How the response ended.
    pub end: BodyEnd,
}

impl RequestFinished {
    /// [`duration`](Self::duration) in milliseconds, with fractions.
    #[must_use]
    pub fn duration_ms(&self) -> f64 {
        self.duration.as_secs_f64() * 1_000.0
    }

    /// Whether the response body was sent to its end ([`BodyEnd::Completed`]).
    #[must_use]
    pub fn completed(&self) -> bool {
        self.end == BodyEnd::Completed
    }
}

/// How a response ended, in [`RequestFinished::end`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyEnd {
    /// The body reported its end: the server was handed every frame.
    Completed,
    /// The body, or the request before its response existed, was dropped before the end: the
    /// client disconnected, or the server stopped serving it.
    DroppedEarly,
    /// The body returned an error; the server aborts such a response.
    Failed,
    /// The inner service returned an error instead of a response.
    NoResponse,
}

/// Django's `got_request_exception`: the inner service returned an error or panicked.
///
/// Sent from the response future, and awaited, before the layer hands back the error or the
/// `500` response that replaces a panic; [`RequestFinished`] follows. Errors are passed on
/// unchanged to what is outside the layer (axum's `HandleErrorLayer`, hyper, tonic), which
/// turns them into a response or closes the connection; a panic is caught and answered with an
/// empty `500 Internal Server Error`, as Django answers an unhandled exception. Django passes
/// the request object; here the request's number, method and URI name it.
#[derive(Signal, Debug, Clone)]
#[signal(name = "got_request_exception", crate = crate)]
#[non_exhaustive]
pub struct GotRequestException {
    /// The request's number, as in its [`RequestStarted`].
    pub request_id: RequestId,
    /// The request's method.
    pub method: Method,
    /// The request's URI.
    pub uri: Uri,
    /// What went wrong.
    pub exception: RequestException,
}

/// What went wrong in [`GotRequestException`]: the text of the inner service's error, or the
/// message of its panic.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestException {
    /// The inner service returned an error; its `Display` text.
    Error(String),
    /// The inner service panicked (in `call` or while its future was polled); the panic's
    /// message.
    Panic(String),
}

impl RequestException {
    /// The error's text or the panic's message.
    #[must_use]
    pub fn message(&self) -> &str {
        match self {
            RequestException::Error(message) | RequestException::Panic(message) => message,
        }
    }

    /// Whether it was a panic.
    #[must_use]
    pub fn is_panic(&self) -> bool {
        matches!(self, RequestException::Panic(_))
    }
}

impl fmt::Display for RequestException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestException::Error(message) => write!(f, "the service failed: {message}"),
            RequestException::Panic(message) => write!(f, "the service panicked: {message}"),
        }
    }
}

impl std::error::Error for RequestException {}

/// A tower [`Layer`] that sends Django's request signals around a service; see the
/// [module](crate::request) for what is sent when.
///
/// Works with any tower `Service<http::Request<B>, Response = http::Response<R>>` that is
/// `Clone` and whose error is `Display`: `Router::layer(RequestSignalsLayer::new())` in axum,
/// `Server::builder().layer(..)` in tonic, `ServiceBuilder` anywhere, and with hyper through
/// `hyper_util::service::TowerToHyperService`. The response body becomes a [`SignalledBody`]
/// that sends [`RequestFinished`] when it ends.
///
/// Signals are sent from [`Sender::NONE`] unless [`sender`](Self::sender) names a type, so
/// that two servers in one program can be told apart (Django's `sender` is the handler class).
///
/// # Example
///
/// ```
/// use signals_core::request::{RequestSignalsLayer, RequestStarted};
/// use signals_core::{ConnectOptions, Sender};
///
/// /// The sender of the admin server's request signals.
/// struct Admin;
///
/// let layer = RequestSignalsLayer::new().sender::<Admin>();
/// assert_eq!(layer.sender_of_signals(), Sender::of::<Admin>());
/// // Hears the admin server's requests only.
/// signals_core::connect_with(ConnectOptions::new().sender::<Admin>(), |ev: &RequestStarted| {
///     println!("admin: {} {}", ev.method(), ev.uri());
/// })
/// .forever();
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RequestSignalsLayer {
    sender: Sender,
}

impl RequestSignalsLayer {
    /// A layer sending from [`Sender::NONE`].
    #[must_use]
    pub const fn new() -> Self {
        RequestSignalsLayer {
            sender: Sender::NONE,
        }
    }

    /// Sends the request signals from `T`: receivers connected with `sender = T` hear them,
    /// as do receivers connected without a sender.
    #[must_use]
    pub fn sender<T: ?Sized + 'static>(mut self) -> Self {
        self.sender = Sender::of::<T>();
        self
    }

    /// The sender of the signals this layer sends.
    #[must_use]
    pub const fn sender_of_signals(&self) -> Sender {
        self.sender
    }
}

impl Default for RequestSignalsLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for RequestSignalsLayer {
    type Service = RequestSignals<S>;

    fn layer(&self, inner: S) -> RequestSignals<S> {
        RequestSignals {
            inner,
            sender: self.sender,
        }
    }
}

/// The service [`RequestSignalsLayer`] makes: `inner` with Django's request signals.
#[derive(Debug, Clone)]
pub struct RequestSignals<S> {
    inner: S,
    sender: Sender,
}

impl<S> RequestSignals<S> {
    /// Wraps `inner`, sending from [`Sender::NONE`]; the same as
    /// `RequestSignalsLayer::new().layer(inner)`.
    #[must_use]
    pub const fn new(inner: S) -> Self {
        RequestSignals {
            inner,
            sender: Sender::NONE,
        }
    }

    /// The wrapped service.
    #[must_use]
    pub const fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, unwrapped.
    #[must_use]
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequestSignals<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    S::Error: fmt::Display,
    ResBody: Body,
{
    type Response = Response<SignalledBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    /// Sends nothing and allocates nothing when no request signal has a receiver for this
    /// layer's sender; otherwise numbers the request, and sends [`RequestStarted`] (boxed, as
    /// receivers may be async) when it has receivers, calling the inner service after it.
    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let sender = self.sender;
        let started = has_listeners::<RequestStarted>(sender);
        let tracked = has_listeners::<RequestFinished>(sender)
            || has_listeners::<GotRequestException>(sender);
        let mut future = ResponseFuture {
            inner: None,
            starting: None,
            reporting: None,
            tracked: None,
            sender,
        };
        if !started && !tracked {
            future.call(&mut self.inner, request);
            return future;
        }
        let request_id = RequestId::next();
        if tracked {
            future.tracked = Some(Tracked {
                request_id,
                method: request.method().clone(),
                uri: request.uri().clone(),
                start: Instant::now(),
                sender,
                status: None,
                at_end: false,
                sent: false,
            });
        }
        if started {
            // Tower's rule: `call` goes to the instance that was polled ready, so that one
            // leaves with the future and a clone stays for the next request.
            let clone = self.inner.clone();
            let service = std::mem::replace(&mut self.inner, clone);
            let (parts, body) = request.into_parts();
            let event = RequestStarted { request_id, parts };
            future.starting = Some(Starting {
                send: Box::pin(async move {
                    crate::send_robust(sender, &event).await;
                    event
                }),
                service,
                body,
            });
        } else {
            future.call(&mut self.inner, request);
        }
        future
    }
}

/// The request, held while [`RequestStarted`] is sent.
struct Starting<S, B> {
    send: BoxFuture<'static, RequestStarted>,
    service: S,
    body: B,
}

/// What the response future does after the inner service failed: send
/// [`GotRequestException`], then hand back the error (`None`: a panic, answered with 500).
struct Reporting<E> {
    send: Option<BoxFuture<'static, ()>>,
    error: Option<E>,
}

pin_project! {
    /// The future of [`RequestSignals`]: sends [`RequestStarted`] if heard, runs the inner
    /// service (catching its panics), sends [`GotRequestException`] if it failed, and wraps the
    /// response body in a [`SignalledBody`].
    ///
    /// Dropped before it completes (a client that went away while the service ran), it sends
    /// [`RequestFinished`] with [`BodyEnd::DroppedEarly`] and no status.
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        inner: Option<S::Future>,
        starting: Option<Starting<S, ReqBody>>,
        reporting: Option<Reporting<S::Error>>,
        tracked: Option<Tracked>,
        sender: Sender,
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
    S::Error: fmt::Display,
{
    /// Calls the inner service, catching a panic there as the future's panics are.
    fn call(&mut self, service: &mut S, request: Request<ReqBody>) {
        match catch_unwind(AssertUnwindSafe(|| service.call(request))) {
            Ok(inner) => self.inner = Some(inner),
            Err(panic) => {
                let reporting = start_reporting(
                    self.tracked.as_ref(),
                    self.sender,
                    Err(panic_message(&*panic)),
                );
                self.reporting = Some(reporting);
            }
        }
    }
}

/// Begins the report of a failure: the [`GotRequestException`] send if heard (and an ERROR
/// report for a panic, heard or not, as Django logs unhandled exceptions).
fn start_reporting<E: fmt::Display>(
    tracked: Option<&Tracked>,
    sender: Sender,
    failure: Result<E, String>,
) -> Reporting<E> {
    let heard = tracked.filter(|_| has_listeners::<GotRequestException>(sender));
    let (exception, error) = match failure {
        Ok(error) => (
            heard.map(|_| RequestException::Error(error.to_string())),
            Some(error),
        ),
        Err(message) => {
            let exception = RequestException::Panic(message);
            Report::error("request answered 500 Internal Server Error", &exception).emit();
            (Some(exception), None)
        }
    };
    let send = heard.zip(exception).map(|(tracked, exception)| {
        let event = GotRequestException {
            request_id: tracked.request_id,
            method: tracked.method.clone(),
            uri: tracked.uri.clone(),
            exception,
        };
        let send: BoxFuture<'static, ()> = Box::pin(async move {
            crate::send_robust(sender, &event).await;
        });
        send
    });
    Reporting { send, error }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: fmt::Display,
    ResBody: Body,
{
    type Output = Result<Response<SignalledBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(starting) = this.starting {
            let event = ready!(starting.send.as_mut().poll(cx));
            let Some(Starting {
                mut service, body, ..
            }) = this.starting.take()
            else {
                unreachable!("`starting` was just polled")
            };
            let request = Request::from_parts(event.parts, body);
            match catch_unwind(AssertUnwindSafe(|| service.call(request))) {
                Ok(inner) => this.inner.set(Some(inner)),
                Err(panic) => {
                    *this.reporting = Some(start_reporting(
                        this.tracked.as_ref(),
                        *this.sender,
                        Err(panic_message(&*panic)),
                    ));
                }
            }
        }
        if let Some(inner) = this.inner.as_mut().as_pin_mut() {
            let output = match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
                Ok(Poll::Pending) => return Poll::Pending,
                Ok(Poll::Ready(output)) => Ok(output),
                Err(panic) => Err(panic_message(&*panic)),
            };
            this.inner.set(None);
            let failure = match output {
                Ok(Ok(response)) => {
                    return Poll::Ready(Ok(wrap(response, this.tracked.take())));
                }
                Ok(Err(error)) => Ok(error),
                Err(message) => Err(message),
            };
            *this.reporting = Some(start_reporting(
                this.tracked.as_ref(),
                *this.sender,
                failure,
            ));
        }
        let Some(reporting) = this.reporting else {
            panic!("a RequestSignals response future was polled after it completed");
        };
        if let Some(send) = &mut reporting.send {
            ready!(send.as_mut().poll(cx));
            reporting.send = None;
        }
        let error = reporting.error.take();
        *this.reporting = None;
        let tracked = this.tracked.take();
        if let Some(error) = error {
            if let Some(mut tracked) = tracked {
                tracked.finish(BodyEnd::NoResponse);
            }
            return Poll::Ready(Err(error));
        }
        // A panic: Django's 500, without the page.
        let body = SignalledBody {
            inner: None,
            tracked: None,
        };
        let mut response = Response::new(body);
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        Poll::Ready(Ok(attach(response, tracked, true)))
    }
}

/// The inner service's response, its body wrapped.
fn wrap<B: Body>(response: Response<B>, tracked: Option<Tracked>) -> Response<SignalledBody<B>> {
    let at_end = response.body().is_end_stream();
    attach(
        response.map(|inner| SignalledBody {
            inner: Some(inner),
            tracked: None,
        }),
        tracked,
        at_end,
    )
}

/// Gives the body the request's [`Tracked`], with the response's status.
fn attach<B>(
    mut response: Response<SignalledBody<B>>,
    tracked: Option<Tracked>,
    at_end: bool,
) -> Response<SignalledBody<B>> {
    let status = response.status();
    response.body_mut().tracked = tracked.map(|mut tracked| {
        tracked.status = Some(status);
        // A body that is empty from the start may never be polled: the server checks
        // `is_end_stream` and drops it once the head is written. That drop completes it.
        tracked.at_end = at_end;
        tracked
    });
    response
}

/// What [`RequestFinished`] needs, from the request's start to its end; sends the signal once,
/// at the latest when dropped.
struct Tracked {
    request_id: RequestId,
    method: Method,
    uri: Uri,
    start: Instant,
    sender: Sender,
    status: Option<StatusCode>,
    /// The body was at its end when last seen: a drop completes it.
    at_end: bool,
    sent: bool,
}

impl Tracked {
    /// Sends [`RequestFinished`] unless it was sent already.
    fn finish(&mut self, end: BodyEnd) {
        if std::mem::replace(&mut self.sent, true) {
            return;
        }
        if !has_listeners::<RequestFinished>(self.sender) {
            return;
        }
        let event = RequestFinished {
            request_id: self.request_id,
            method: std::mem::take(&mut self.method),
            uri: std::mem::take(&mut self.uri),
            status: self.status,
            duration: self.start.elapsed(),
            end,
        };
        send_without_awaiting(self.sender, event);
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let end = if self.at_end {
            BodyEnd::Completed
        } else {
            BodyEnd::DroppedEarly
        };
        self.finish(end);
    }
}

/// Sends `request_finished` from code that cannot await: polls the send once here, and spawns
/// the rest on the current tokio runtime if a receiver is still waiting (see
/// [`RequestFinished`]).
fn send_without_awaiting(sender: Sender, event: RequestFinished) {
    let mut send: BoxFuture<'static, ()> = Box::pin(async move {
        crate::send_robust(sender, &event).await;
    });
    if send
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
        .is_ready()
    {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn(send)),
        Err(_) => Report::warning(
            "an async receiver of request_finished was still waiting where no tokio runtime runs; the rest of that send was dropped",
        )
        .emit(),
    }
}

pin_project! {
    /// A response body that sends [`RequestFinished`] when it ends: when the body reports its
    /// end (its last frame, or `None`), when it fails, or when it is dropped before its end
    /// (a client that disconnected mid-stream). Frames, size hint and end are the inner body's.
    ///
    /// The `500` that replaces a panic has an empty one.
    pub struct SignalledBody<B> {
        #[pin]
        inner: Option<B>,
        tracked: Option<Tracked>,
    }
}

impl<B> SignalledBody<B> {
    fn finish(tracked: &mut Option<Tracked>, end: BodyEnd) {
        if let Some(mut tracked) = tracked.take() {
            tracked.finish(end);
        }
    }
}

impl<B: Body> Body for SignalledBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let Some(mut inner) = this.inner.as_pin_mut() else {
            Self::finish(this.tracked, BodyEnd::Completed);
            return Poll::Ready(None);
        };
        let frame = ready!(inner.as_mut().poll_frame(cx));
        if this.tracked.is_some() {
            match &frame {
                None => Self::finish(this.tracked, BodyEnd::Completed),
                Some(Err(_)) => Self::finish(this.tracked, BodyEnd::Failed),
                Some(Ok(_)) if inner.is_end_stream() => {
                    Self::finish(this.tracked, BodyEnd::Completed);
                }
                Some(Ok(_)) => {}
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl<B> fmt::Debug for SignalledBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalledBody")
            .field("empty", &self.inner.is_none())
            .field("signalled", &self.tracked.is_some())
            .finish_non_exhaustive()
    }
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::{Pending, Ready, pending, ready};
    use std::pin::{Pin, pin};
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, Waker};

    use http::{Request, Response, StatusCode};
    use http_body::Body;
    use http_body_util::{Empty, Full};
    use tower::{Layer as _, Service};

    use super::{
        BodyEnd, GotRequestException, RequestException, RequestFinished, RequestSignalsLayer,
    };
    use crate::{ConnectOptions, Connection};

    type Seen<T> = Arc<Mutex<Vec<T>>>;

    /// Records the `request_finished` and `got_request_exception` sent from `T`.
    fn listen<T: 'static>() -> (
        Seen<RequestFinished>,
        Seen<GotRequestException>,
        [Connection; 2],
    ) {
        let finished = Seen::default();
        let exceptions = Seen::default();
        let (f, e) = (Arc::clone(&finished), Arc::clone(&exceptions));
        let guards = [
            crate::connect_with(
                ConnectOptions::new().sender::<T>(),
                move |ev: &RequestFinished| f.lock().unwrap().push(ev.clone()),
            ),
            crate::connect_with(
                ConnectOptions::new().sender::<T>(),
                move |ev: &GotRequestException| e.lock().unwrap().push(ev.clone()),
            ),
        ];
        (finished, exceptions, guards)
    }

    fn poll_once<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    /// Calls `service` through the layer (sending from `T`) and returns the ready response.
    fn respond<T: 'static, S, B>(service: S) -> Response<super::SignalledBody<B>>
    where
        S: Service<Request<()>, Response = Response<B>, Error = Infallible> + Clone,
        B: Body,
    {
        let mut service = RequestSignalsLayer::new().sender::<T>().layer(service);
        let mut future = pin!(service.call(Request::get("/unit").body(()).unwrap()));
        let Poll::Ready(Ok(response)) = poll_once(future.as_mut()) else {
            panic!("ready at once");
        };
        response
    }

    fn full(_: Request<()>) -> Ready<Result<Response<Full<&'static [u8]>>, Infallible>> {
        ready(Ok(Response::new(Full::new(&b"abc"[..]))))
    }

    #[test]
    fn a_body_finishes_once_at_its_end_and_not_again_when_dropped() {
        struct Sender;
        let (finished, _, _guards) = listen::<Sender>();
        let response = respond::<Sender, _, _>(tower::service_fn(full));
        let mut body = Box::pin(response.into_body());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(
            body.as_mut().poll_frame(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
        assert_eq!(finished.lock().unwrap().len(), 1, "the last frame ends it");
        assert!(body.is_end_stream());
        drop(body);
        let finished = finished.lock().unwrap();
        assert_eq!(finished.len(), 1, "once: {finished:?}");
        assert_eq!(finished[0].end, BodyEnd::Completed);
        assert_eq!(finished[0].status, Some(StatusCode::OK));
        assert_eq!(finished[0].uri.path(), "/unit");
    }

    #[test]
    fn an_empty_body_the_server_never_polls_completes_when_dropped() {
        struct Sender;
        let (finished, _, _guards) = listen::<Sender>();
        let response = respond::<Sender, _, _>(tower::service_fn(|_| {
            ready(Ok::<_, Infallible>(Response::new(Empty::<&[u8]>::new())))
        }));
        assert!(response.body().is_end_stream());
        drop(response);
        let finished = finished.lock().unwrap();
        assert_eq!(finished.len(), 1);
        assert_eq!(finished[0].end, BodyEnd::Completed);
    }

    #[test]
    fn a_body_dropped_before_its_end_finishes_dropped_early() {
        struct Sender;
        let (finished, _, _guards) = listen::<Sender>();
        drop(respond::<Sender, _, _>(tower::service_fn(full)));
        let finished = finished.lock().unwrap();
        assert_eq!(finished.len(), 1);
        assert_eq!(finished[0].end, BodyEnd::DroppedEarly);
        assert_eq!(finished[0].status, Some(StatusCode::OK));
    }

    #[test]
    fn a_request_dropped_before_the_service_answers_finishes_without_status() {
        struct Sender;
        let (finished, exceptions, _guards) = listen::<Sender>();
        let never =
            |_: Request<()>| -> Pending<Result<Response<Empty<&'static [u8]>>, Infallible>> {
                pending()
            };
        let mut service = RequestSignalsLayer::new()
            .sender::<Sender>()
            .layer(tower::service_fn(never));
        {
            let mut future = pin!(service.call(Request::new(())));
            assert!(poll_once(future.as_mut()).is_pending());
            assert!(finished.lock().unwrap().is_empty());
        }
        let finished = finished.lock().unwrap();
        assert_eq!(finished.len(), 1);
        assert_eq!(finished[0].end, BodyEnd::DroppedEarly);
        assert_eq!(finished[0].status, None);
        assert!(exceptions.lock().unwrap().is_empty());
    }

    #[test]
    fn a_panic_in_call_is_answered_500_and_reported() {
        struct Sender;
        let (finished, exceptions, _guards) = listen::<Sender>();
        let panics = |_: Request<()>| -> Ready<Result<Response<Empty<&'static [u8]>>, Infallible>> {
            panic!("call panicked")
        };
        let response = respond::<Sender, _, _>(tower::service_fn(panics));
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            exceptions.lock().unwrap()[0].exception,
            RequestException::Panic("call panicked".to_owned())
        );
        drop(response);
        let finished = finished.lock().unwrap();
        assert_eq!(finished.len(), 1);
        assert_eq!(finished[0].status, Some(StatusCode::INTERNAL_SERVER_ERROR));
        assert_eq!(finished[0].end, BodyEnd::Completed);
    }
}
