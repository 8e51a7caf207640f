//! Django's request signals (`signals_core::request`) around a real axum server (and a plain
//! hyper one) on a loopback port, driven by hyper's HTTP/1 client over real TCP connections: `request_started` before
//! the handler, `request_finished` when the body ends or is dropped (timed to a streaming
//! body's last chunk; "dropped early" for a client that disconnects mid-stream),
//! `got_request_exception` for a panic (answered 500) and for a service error; failing
//! receivers never change a response; unheard requests allocate nothing. Rules:
//! `docs/dispatch.md` (Request signals).
//!
//! Tests run in parallel in one process and receivers are process-wide: every server here sends
//! from the `Tests` sender, each test requests paths of its own, and each looks only at the
//! events of its paths.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use signals_core::request::{
    BodyEnd, GotRequestException, RequestException, RequestFinished, RequestSignalsLayer,
    RequestStarted,
};
use signals_core::{ConnectOptions, receiver};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tower::{BoxError, Layer as _, ServiceBuilder};

/// The sender of every server of this file; all receivers here are connected for it (or for
/// [`Loud`]), so that the allocation test's layer, sending from [`Quiet`], has no listener.
struct Tests;
/// The allocation test's unheard sender.
struct Quiet;
/// The allocation test's control: one receiver listens to it.
struct Loud;

/// One event a receiver of this file saw, with when it saw it.
#[derive(Debug, Clone)]
enum Seen {
    Started {
        id: u64,
        path: String,
        method: String,
        test_header: Option<String>,
    },
    /// `by`: the sync receiver or the async one that awaits first.
    Finished {
        event: RequestFinished,
        by: &'static str,
    },
    Exception(GotRequestException),
}

impl Seen {
    fn path(&self) -> &str {
        match self {
            Seen::Started { path, .. } => path,
            Seen::Finished { event, .. } => event.uri.path(),
            Seen::Exception(event) => event.uri.path(),
        }
    }
}

static SEEN: Mutex<Vec<(Instant, Seen)>> = Mutex::new(Vec::new());

fn record(seen: Seen) {
    SEEN.lock().unwrap().push((Instant::now(), seen));
}

/// The events seen for `path`, in the order they were recorded.
fn seen_for(path: &str) -> Vec<(Instant, Seen)> {
    SEEN.lock()
        .unwrap()
        .iter()
        .filter(|(_, seen)| seen.path() == path)
        .cloned()
        .collect()
}

#[receiver(RequestStarted, sender = Tests)]
fn record_started(ev: &RequestStarted) {
    record(Seen::Started {
        id: ev.request_id.get(),
        path: ev.uri().path().to_owned(),
        method: ev.method().to_string(),
        test_header: ev
            .headers()
            .get("x-test")
            .map(|v| v.to_str().unwrap().to_owned()),
    });
}

#[receiver(RequestFinished, sender = Tests)]
fn record_finished(ev: &RequestFinished) {
    record(Seen::Finished {
        event: ev.clone(),
        by: "sync",
    });
}

/// Awaits a timer before recording: the rest of its send runs in a spawned task.
#[receiver(RequestFinished, sender = Tests)]
async fn record_finished_later(ev: &RequestFinished) {
    let event = ev.clone();
    tokio::time::sleep(Duration::from_millis(5)).await;
    record(Seen::Finished { event, by: "async" });
}

/// Async: awaited by the response future before it answers.
#[receiver(GotRequestException, sender = Tests)]
async fn record_exception(ev: &GotRequestException) {
    tokio::task::yield_now().await;
    record(Seen::Exception(ev.clone()));
}

/// Polls `find` over the events of `path` every 10 ms until it finds something (10 s at most).
async fn wait_for<T>(path: &str, what: &str, find: impl Fn(&[(Instant, Seen)]) -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = seen_for(path);
        if let Some(found) = find(&seen) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} for {path} within 10 s; seen: {seen:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn started(seen: &[(Instant, Seen)]) -> Option<(Instant, u64, String, Option<String>)> {
    seen.iter().find_map(|(at, seen)| match seen {
        Seen::Started {
            id,
            method,
            test_header,
            ..
        } => Some((*at, *id, method.clone(), test_header.clone())),
        _ => None,
    })
}

fn finished(seen: &[(Instant, Seen)], by: &str) -> Vec<(Instant, RequestFinished)> {
    seen.iter()
        .filter_map(|(at, seen)| match seen {
            Seen::Finished { event, by: b } if *b == by => Some((*at, event.clone())),
            _ => None,
        })
        .collect()
}

fn exceptions(seen: &[(Instant, Seen)]) -> Vec<(Instant, GotRequestException)> {
    seen.iter()
        .filter_map(|(at, seen)| match seen {
            Seen::Exception(event) => Some((*at, event.clone())),
            _ => None,
        })
        .collect()
}

/// Waits for the sync receiver's `request_finished` of `path`, then 200 ms more, checks that
/// it was the only one, and returns it with when it was seen.
async fn finished_once(path: &str) -> (Instant, RequestFinished) {
    wait_for(path, "request_finished", |seen| {
        finished(seen, "sync").into_iter().next()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let all = finished(&seen_for(path), "sync");
    assert_eq!(
        all.len(),
        1,
        "request_finished sent once for {path}: {all:#?}"
    );
    all.into_iter().next().unwrap()
}

// The handlers.

async fn normal() -> &'static str {
    // `request_started` ran before the inner service.
    let seen = started(&seen_for("/normal")).is_some();
    tokio::time::sleep(Duration::from_millis(20)).await;
    if seen {
        "started seen"
    } else {
        "started not seen"
    }
}

const CHUNKS: u32 = 5;
const CHUNK_DELAY: Duration = Duration::from_millis(60);

/// `count` chunks, each after `delay`.
fn chunks(count: u32, delay: Duration) -> Body {
    Body::from_stream(futures_util::stream::unfold(0, move |i| async move {
        if i == count {
            return None;
        }
        tokio::time::sleep(delay).await;
        Some((
            Ok::<_, Infallible>(Bytes::from(format!("chunk {i}\n"))),
            i + 1,
        ))
    }))
}

async fn panics() -> &'static str {
    panic!("handler bug at /panic")
}

async fn bad_receivers_panic() -> &'static str {
    panic!("handler bug at /bad-receivers/panic")
}

/// A server on 127.0.0.1:0 with every route of this file.
async fn serve() -> SocketAddr {
    let layer = RequestSignalsLayer::new().sender::<Tests>();
    // A tower service that fails (axum's handlers cannot): the layer passes its error on, and
    // axum's `HandleErrorLayer` outside it turns the error into a 503.
    let failing = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|error: BoxError| async move {
            (StatusCode::SERVICE_UNAVAILABLE, error.to_string())
        }))
        .layer(layer)
        .service_fn(|_: Request<Body>| async {
            Err::<Response<Body>, BoxError>("database unavailable".into())
        });
    let app = Router::new()
        .route("/normal", get(normal))
        .route("/stream", get(|| async { chunks(CHUNKS, CHUNK_DELAY) }))
        .route(
            "/endless",
            get(|| async { chunks(500, Duration::from_millis(20)) }),
        )
        .route("/panic", get(panics))
        .route("/bad-receivers", get(|| async { "still fine" }))
        .route("/bad-receivers/panic", get(bad_receivers_panic))
        .layer(layer)
        // Added after `layer`, so not wrapped twice.
        .route_service("/fail", failing);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Opens an HTTP/1 connection; the task drives it (aborting it closes the socket).
async fn connect(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    JoinHandle<()>,
) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    (sender, task)
}

/// GETs `path` on a connection of its own; returns the response (head received) and the
/// connection's task.
async fn get_path(addr: SocketAddr, path: &str) -> (Response<Incoming>, JoinHandle<()>) {
    let (mut sender, task) = connect(addr).await;
    let request = Request::get(path)
        .header("host", "localhost")
        .header("x-test", path)
        .body(Empty::new())
        .unwrap();
    (sender.send_request(request).await.unwrap(), task)
}

async fn text(response: Response<Incoming>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_started_before_its_handler_and_finished_with_status_and_duration() {
    let addr = serve().await;
    let before = Instant::now();
    let (response, _) = get_path(addr, "/normal").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "started seen");
    let elapsed = before.elapsed();

    let (_, id, method, header) = started(&seen_for("/normal")).expect("request_started");
    assert_eq!(method, "GET");
    assert_eq!(
        header.as_deref(),
        Some("/normal"),
        "headers reach receivers"
    );
    let (_, event) = finished_once("/normal").await;
    assert_eq!(event.request_id.get(), id, "one id from start to finish");
    assert_eq!(event.method, http::Method::GET);
    assert_eq!(event.status, Some(StatusCode::OK));
    assert_eq!(event.end, BodyEnd::Completed);
    assert!(event.completed());
    assert!(
        event.duration >= Duration::from_millis(20) && event.duration <= elapsed,
        "the handler slept 20 ms and the client waited {elapsed:?}: {:?}",
        event.duration
    );
    assert!((event.duration_ms() - event.duration.as_secs_f64() * 1e3).abs() < 1e-9);
    // The async receiver, which awaits before recording, ran too (in a spawned task).
    let (_, later) = wait_for("/normal", "async request_finished", |seen| {
        finished(seen, "async").into_iter().next()
    })
    .await;
    assert_eq!(later.request_id.get(), id);
    assert!(
        exceptions(&seen_for("/normal")).is_empty(),
        "no got_request_exception"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_response_finishes_after_its_last_chunk_not_its_headers() {
    let addr = serve().await;
    let (response, _) = get_path(addr, "/stream").await;
    let headers_at = Instant::now();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut received = String::new();
    let mut last_chunk_at = headers_at;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            received.push_str(std::str::from_utf8(&data).unwrap());
            last_chunk_at = Instant::now();
        }
    }
    assert_eq!(received.lines().count(), CHUNKS as usize, "{received}");

    let (finished_at, event) = finished_once("/stream").await;
    assert_eq!(event.end, BodyEnd::Completed);
    assert_eq!(event.status, Some(StatusCode::OK));
    let streamed = CHUNK_DELAY * CHUNKS;
    assert!(
        event.duration >= streamed,
        "timed to the last of {CHUNKS} chunks {CHUNK_DELAY:?} apart: {:?}",
        event.duration
    );
    assert!(
        last_chunk_at.duration_since(headers_at) >= CHUNK_DELAY * (CHUNKS - 1),
        "the client saw the chunks arrive over time"
    );
    // Sent when the head was sent, it would come before the client even had the head.
    assert!(
        finished_at >= headers_at + streamed / 2,
        "request_finished came {:?} after the head reached the client",
        finished_at.saturating_duration_since(headers_at)
    );
    // The slack is the client's own delay in reading the last chunk.
    assert!(
        finished_at + 2 * CHUNK_DELAY >= last_chunk_at,
        "request_finished came {:?} before the client had the last chunk",
        last_chunk_at.duration_since(finished_at)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_stream_finishes_the_request_dropped_early() {
    let addr = serve().await;
    let (response, connection) = get_path(addr, "/endless").await;
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"chunk 0\n");
    // Gone: the socket is closed with 499 chunks still to come (10 s of them).
    connection.abort();
    drop(body);

    let (_, event) = finished_once("/endless").await;
    assert_eq!(event.end, BodyEnd::DroppedEarly, "{event:?}");
    assert!(!event.completed());
    assert_eq!(event.status, Some(StatusCode::OK), "the head had been sent");
    assert!(
        event.duration < Duration::from_secs(5),
        "sent soon after the disconnect, not when the stream would have ended (10 s): {:?}",
        event.duration
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_answered_500_reported_and_finished() {
    let addr = serve().await;
    let (response, _) = get_path(addr, "/panic").await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(text(response).await, "", "an empty 500");

    let seen = seen_for("/panic");
    let (_, id, ..) = started(&seen).expect("request_started");
    let exceptions = exceptions(&seen);
    assert_eq!(exceptions.len(), 1, "{exceptions:#?}");
    let (exception_at, exception) = &exceptions[0];
    assert_eq!(exception.request_id.get(), id);
    assert_eq!(exception.uri.path(), "/panic");
    assert_eq!(
        exception.exception,
        RequestException::Panic("handler bug at /panic".to_owned())
    );
    assert!(exception.exception.is_panic());
    let (finished_at, event) = finished_once("/panic").await;
    assert_eq!(event.request_id.get(), id);
    assert_eq!(event.status, Some(StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(event.end, BodyEnd::Completed);
    assert!(*exception_at <= finished_at, "exception, then finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inner_service_error_is_reported_and_passed_on() {
    let addr = serve().await;
    let (response, _) = get_path(addr, "/fail").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        text(response).await,
        "database unavailable",
        "the error reached HandleErrorLayer"
    );

    let seen = seen_for("/fail");
    let (_, id, ..) = started(&seen).expect("request_started");
    let exceptions = exceptions(&seen);
    assert_eq!(exceptions.len(), 1, "{exceptions:#?}");
    assert_eq!(exceptions[0].1.request_id.get(), id);
    assert_eq!(
        exceptions[0].1.exception,
        RequestException::Error("database unavailable".to_owned())
    );
    let (_, event) = finished_once("/fail").await;
    assert_eq!(event.request_id.get(), id);
    assert_eq!(event.status, None, "no response came out of the layer");
    assert_eq!(event.end, BodyEnd::NoResponse);
}

/// The layer on plain hyper, without axum: a `tower::service_fn` wrapped by
/// `RequestSignalsLayer`, served by hyper's HTTP/1 server through hyper-util's
/// `TowerToHyperService` (a hyper body, not axum's, flows through the layer both ways).
async fn serve_hyper() -> SocketAddr {
    let service = ServiceBuilder::new()
        .layer(RequestSignalsLayer::new().sender::<Tests>())
        .service_fn(|request: Request<Incoming>| async move {
            let chunks = if request.uri().path() == "/hyper/stream" {
                CHUNKS
            } else {
                1
            };
            // The request's own body is read through the layer too.
            let sent = request.into_body().collect().await?.to_bytes();
            let frames = futures_util::stream::unfold(0, move |i| {
                let sent = sent.clone();
                async move {
                    if i == chunks {
                        return None;
                    }
                    if chunks > 1 {
                        tokio::time::sleep(CHUNK_DELAY).await;
                    }
                    let data = format!("hyper {i} after {} bytes\n", sent.len());
                    Some((Ok::<_, Infallible>(Frame::data(Bytes::from(data))), i + 1))
                }
            });
            Ok::<_, hyper::Error>(Response::new(StreamBody::new(frames)))
        });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_serves_plain_hyper_and_times_its_streaming_body() {
    let addr = serve_hyper().await;
    let (response, _) = get_path(addr, "/hyper").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "hyper 0 after 0 bytes\n");
    let (_, id, method, header) = started(&seen_for("/hyper")).expect("request_started");
    assert_eq!(
        (method.as_str(), header.as_deref()),
        ("GET", Some("/hyper"))
    );
    let (_, event) = finished_once("/hyper").await;
    assert_eq!(event.request_id.get(), id);
    assert_eq!(event.status, Some(StatusCode::OK));
    assert_eq!(event.end, BodyEnd::Completed);

    let (response, _) = get_path(addr, "/hyper/stream").await;
    assert_eq!(text(response).await.lines().count(), CHUNKS as usize);
    let (_, event) = finished_once("/hyper/stream").await;
    assert_eq!(event.end, BodyEnd::Completed);
    assert!(
        event.duration >= CHUNK_DELAY * CHUNKS,
        "timed to the last of {CHUNKS} chunks {CHUNK_DELAY:?} apart: {:?}",
        event.duration
    );
}

fn is_bad(path: &str) -> bool {
    path.starts_with("/bad-receivers")
}

async fn failing_started(ev: &RequestStarted) -> Result<(), String> {
    tokio::task::yield_now().await;
    if is_bad(ev.uri().path()) {
        Err("started receiver failed".to_owned())
    } else {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_and_panicking_receivers_do_not_change_the_response() {
    // Priority 10: they run before this file's recorders, which must still run after them.
    let bad = || ConnectOptions::new().sender::<Tests>().priority(10);
    let _guards = [
        signals_core::connect_with(bad(), |ev: &RequestStarted| {
            assert!(!is_bad(ev.uri().path()), "started receiver panicked");
        }),
        signals_core::connect_with(bad(), failing_started),
        signals_core::connect_with(bad(), |ev: &RequestFinished| {
            assert!(!is_bad(ev.uri.path()), "finished receiver panicked");
        }),
        signals_core::connect_with(bad(), |ev: &RequestFinished| -> Result<(), String> {
            if is_bad(ev.uri.path()) {
                Err("finished receiver failed".to_owned())
            } else {
                Ok(())
            }
        }),
        signals_core::connect_with(bad(), |ev: &GotRequestException| {
            assert!(!is_bad(ev.uri.path()), "exception receiver panicked");
        }),
    ];
    let addr = serve().await;

    let (response, _) = get_path(addr, "/bad-receivers").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "still fine");
    assert!(
        started(&seen_for("/bad-receivers")).is_some(),
        "the recorder ran after them"
    );
    let (_, event) = finished_once("/bad-receivers").await;
    assert_eq!(event.end, BodyEnd::Completed);

    let (response, _) = get_path(addr, "/bad-receivers/panic").await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(exceptions(&seen_for("/bad-receivers/panic")).len(), 1);
    let (_, event) = finished_once("/bad-receivers/panic").await;
    assert_eq!(event.status, Some(StatusCode::INTERNAL_SERVER_ERROR));
}

/// Calls `service` `times` times with an empty request and polls each response and body to
/// the end, on this thread; returns how many allocations that made.
fn allocations<S>(service: &mut S, times: usize) -> u64
where
    S: tower::Service<Request<()>, Error = Infallible>,
    S::Response: IntoBody,
{
    let mut cx = Context::from_waker(Waker::noop());
    allocation_counter::measure(|| {
        for _ in 0..times {
            let mut future = pin!(service.call(Request::new(())));
            let Poll::Ready(Ok(response)) = future.as_mut().poll(&mut cx) else {
                panic!("the response is ready at once");
            };
            response.poll_to_end(&mut cx);
        }
    })
    .count_total
}

/// A response whose body can be polled to its end.
trait IntoBody {
    fn poll_to_end(self, cx: &mut Context<'_>);
}

impl<B: hyper::body::Body> IntoBody for Response<B> {
    fn poll_to_end(self, cx: &mut Context<'_>) {
        let mut body = pin!(self.into_body());
        while let Poll::Ready(Some(_)) = body.as_mut().poll_frame(cx) {}
    }
}

#[test]
fn unheard_requests_allocate_nothing() {
    let inner = tower::service_fn(|_: Request<()>| {
        std::future::ready(Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new())))
    });
    let mut bare = inner;
    let mut quiet = RequestSignalsLayer::new().sender::<Quiet>().layer(inner);
    // First uses build the registries and this thread's copies of their receiver lists.
    allocations(&mut quiet, 1);
    let baseline = allocations(&mut bare, 100);
    assert_eq!(baseline, 0, "the bare service allocates nothing");
    // Another test connecting or disconnecting meanwhile makes this thread refresh its copy
    // of a receiver list once: some round must be clean.
    let rounds: Vec<u64> = (0..5).map(|_| allocations(&mut quiet, 100)).collect();
    assert!(
        rounds.contains(&baseline),
        "100 unheard requests allocated in every round: {rounds:?}"
    );

    // The control: with a receiver of `request_started`, the layer boxes its send.
    let _guard = signals_core::connect_with(
        ConnectOptions::new().sender::<Loud>(),
        |_: &RequestStarted| {},
    );
    let mut loud = RequestSignalsLayer::new().sender::<Loud>().layer(inner);
    allocations(&mut loud, 1);
    assert!(
        allocations(&mut loud, 100) >= 100,
        "heard requests allocate"
    );
}
