//! The shop over HTTP (`examples/src/web.rs`), served in-process on 127.0.0.1:0 and driven by a
//! real HTTP client (reqwest), on a SQLite file and, with `DATABASE_URL`, on PostgreSQL (a
//! schema per test): registering, ordering and listing run the use cases' receivers;
//! `template_rendered` names the template and its context; a refused order is a `4xx` that
//! changes nothing; `request_finished` comes once per request with its status, and is logged;
//! a handler's panic is logged by the `got_request_exception` receiver; and an order whose
//! client hangs up while its transaction is open leaves nothing behind.
//!
//! Receivers are process-wide and the tests run in parallel, each with a server and a database
//! of its own: each test puts its marker in its requests' query (`?t=MARKER`) and its
//! customers' emails, and looks only at the events and log lines that carry it.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use examples::db::ShopDb;
use examples::models::{Order, Product};
use examples::on_db;
use examples::run::Run;
use examples::trace::Trace;
use examples::web::{self, App, NewCustomer, NewOrder, NewProduct, Server, TemplateRendered};
use reqwest::StatusCode;
use serde_json::{Value, json};
use signals_core::request::{BodyEnd, RequestFinished, RequestSignalsLayer};
use signals_orm::{ConnectOptions, Connection, Model as _, ModelExt as _, PostSave, receiver};
use tokio::sync::Notify;
use tracing::field::Field;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt as _;

const WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a scenario on SQLite and on PostgreSQL: `NAME::sqlite` and `NAME::postgres`.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$scenario(super::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$scenario(super::Backend::Postgres).await;
            }
        }
    )*};
}

on_both_backends!(
    register_order_and_list,
    a_refused_order_is_a_4xx_and_changes_nothing,
    request_finished_comes_once_per_request_with_its_status,
    a_client_gone_mid_order_leaves_no_half_written_order,
);

// ---- What the tests hear: request_finished, template_rendered, the log.

/// The `request_finished` and `template_rendered` of one test (those with its marker), heard
/// until it is dropped.
struct Heard {
    finished: Arc<Mutex<Vec<RequestFinished>>>,
    rendered: Arc<Mutex<Vec<TemplateRendered>>>,
    _connections: [Connection; 2],
}

impl Heard {
    fn listen(marker: &str) -> Self {
        let finished = Arc::new(Mutex::new(Vec::new()));
        let rendered = Arc::new(Mutex::new(Vec::new()));
        let (f, m) = (Arc::clone(&finished), marker.to_owned());
        let on_finished = signals_orm::connect_with(
            ConnectOptions::new().sender::<App>(),
            move |ev: &RequestFinished| {
                if ev.uri.query().is_some_and(|q| q.contains(&m)) {
                    f.lock().unwrap().push(ev.clone());
                }
            },
        );
        let (r, m) = (Arc::clone(&rendered), marker.to_owned());
        let on_rendered = signals_orm::connect_with(
            ConnectOptions::new().sender::<web::Templates>(),
            move |ev: &TemplateRendered| {
                if ev.context.to_string().contains(&m) {
                    r.lock().unwrap().push(ev.clone());
                }
            },
        );
        Heard {
            finished,
            rendered,
            _connections: [on_finished, on_rendered],
        }
    }

    /// Waits for the `request_finished` of `method path`, and checks that it came once.
    async fn finished(&self, method: &str, path: &str) -> RequestFinished {
        let matching = || -> Vec<RequestFinished> {
            self.finished
                .lock()
                .unwrap()
                .iter()
                .filter(|ev| ev.method == method && ev.uri.path() == path)
                .cloned()
                .collect()
        };
        let found = wait_for(&format!("request_finished of {method} {path}"), || {
            matching().into_iter().next()
        })
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(matching().len(), 1, "once: {:#?}", matching());
        found
    }

    fn rendered(&self, template: &str) -> Vec<Value> {
        self.rendered
            .lock()
            .unwrap()
            .iter()
            .filter(|ev| ev.template == template)
            .map(|ev| ev.context.clone())
            .collect()
    }
}

/// Polls `find` every 10 ms until it finds something, for [`WAIT`] at most.
async fn wait_for<T>(what: &str, mut find: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(found) = find() {
            return found;
        }
        assert!(Instant::now() < deadline, "no {what} within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The events of target `examples::web` (the request log), as `LEVEL field=value ...` lines.
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Collects [`LOG`].
struct CaptureLog;

impl<S: tracing::Subscriber> Layer<S> for CaptureLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != "examples::web" {
            return;
        }
        let mut line = event.metadata().level().to_string();
        event.record(&mut |field: &Field, value: &dyn std::fmt::Debug| {
            let _ = write!(line, " {}={value:?}", field.name());
        });
        LOG.lock().unwrap().push(line);
    }
}

/// The log lines that mention `marker`, once [`CaptureLog`] is installed (for the whole
/// process: the receivers log from the servers' tasks, on any thread).
fn log_lines(marker: &str) -> Vec<String> {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(CaptureLog))
            .unwrap();
    });
    LOG.lock()
        .unwrap()
        .iter()
        .filter(|line| line.contains(marker))
        .cloned()
        .collect()
}

// ---- One test's shop.

/// A server on its own database and folder, a client, and the test's marker.
struct Shop {
    server: Server,
    run: Run,
    client: reqwest::Client,
    marker: String,
    _dir: tempfile::TempDir,
}

impl Shop {
    /// The shop for the scenario `name` on `backend`; `None` (the test is skipped, and says
    /// so) for PostgreSQL without `DATABASE_URL`.
    async fn start(name: &str, backend: Backend) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let db = match backend {
            Backend::Sqlite => ShopDb::sqlite_file(&dir.path().join("shop.db"))
                .await
                .unwrap(),
            Backend::Postgres => {
                let Ok(url) = std::env::var("DATABASE_URL") else {
                    use std::io::Write as _;
                    let _ = writeln!(
                        std::io::stderr(),
                        "NOTE: DATABASE_URL is not set: {name} on PostgreSQL is SKIPPED"
                    );
                    return None;
                };
                let schema = format!("web_{}_{}", name.replace('-', "_"), std::process::id());
                ShopDb::postgres(&url, Some(&schema)).await.unwrap()
            }
        };
        let run = Run::with_db(dir.path(), db, Trace::default()).unwrap();
        let app = App::new(run.db.clone(), &run.outbox);
        let server = Server::start(app, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        assert!(server.addr().ip().is_loopback());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let marker = format!("{name}-{backend:?}").to_lowercase();
        Some(Shop {
            server,
            run,
            client,
            marker,
            _dir: dir,
        })
    }

    /// The URL of `path` with the marker in its query.
    fn url(&self, path: &str) -> String {
        self.server.url(&format!("{path}?t={}", self.marker))
    }

    /// An email address carrying the marker.
    fn email(&self, who: &str) -> String {
        format!("{who}.{}@example.com", self.marker)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    async fn post_json(&self, path: &str, body: &impl serde::Serialize) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Registers `name` (JSON) with an email of [`Shop::email`]; returns the stored row.
    async fn register(&self, name: &str, who: &str) -> Value {
        let new = NewCustomer {
            name: name.to_owned(),
            email: self.email(who),
        };
        let response = self.post_json("/customers", &new).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }

    /// Adds a product (JSON); returns its key.
    async fn add_product(&self, name: &str, stock: i64, price_cents: i64) -> i64 {
        let new = NewProduct {
            name: name.to_owned(),
            stock,
            price_cents,
        };
        let response = self.post_json("/products", &new).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let product: Value = response.json().await.unwrap();
        product["id"].as_i64().unwrap()
    }

    async fn order(&self, customer_id: i64, product_id: i64, quantity: i64) -> reqwest::Response {
        let new = NewOrder {
            customer_id,
            product_id,
            quantity,
        };
        self.post_json("/orders", &new).await
    }

    async fn stock(&self, product: i64) -> i64 {
        on_db!(&self.run.db, |pool| Product::get(pool, &product).await)
            .unwrap()
            .unwrap()
            .stock
    }

    async fn orders(&self) -> Vec<Order> {
        on_db!(&self.run.db, |pool| Order::objects().all(pool).await).unwrap()
    }

    async fn count(&self, sql: &'static str) -> i64 {
        self.run.db.scalar(sql).await.unwrap()
    }
}

fn id(row: &Value) -> i64 {
    row["id"].as_i64().unwrap()
}

// ---- The scenarios.

async fn register_order_and_list(backend: Backend) {
    let Some(shop) = Shop::start("list", backend).await else {
        return;
    };
    let heard = Heard::listen(&shop.marker);

    // JSON: 201 with the row, its name as `capitalize_name`'s pre_save stored it.
    let ada = shop.register("ada lovelace", "ada").await;
    assert_eq!(ada["name"], "Ada Lovelace");
    // A form: 303 to the shop's page.
    let response = shop
        .client
        .post(shop.url("/customers"))
        .form(&[("name", "grace hopper"), ("email", &shop.email("grace"))])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/");
    assert_eq!(
        shop.count("SELECT COUNT(*) FROM profiles").await,
        2,
        "create_profile ran for both"
    );
    let chair = shop.add_product("Chair", 5, 12_000).await;

    let response = shop.order(id(&ada), chair, 2).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let placed: Value = response.json().await.unwrap();
    assert_eq!(
        (
            &placed["quantity"],
            &placed["total_cents"],
            &placed["email"]
        ),
        (&json!(2), &json!(24_000), &json!(shop.email("ada")))
    );
    // A form order: 303 to the list.
    let response = shop
        .client
        .post(shop.url("/orders"))
        .form(&[
            ("customer_id", id(&ada).to_string()),
            ("product_id", chair.to_string()),
            ("quantity", "1".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/orders");
    assert_eq!(shop.stock(chair).await, 2, "take_from_stock ran for both");
    let orders = shop.orders().await;
    assert_eq!(orders.len(), 2);

    check_the_list(&shop, &heard, &orders, &placed).await;

    // The shop's page renders index.html with the products and the customers.
    assert_eq!(shop.get("/").await.status(), StatusCode::OK);
    let index = heard.rendered("index.html");
    assert_eq!(index.len(), 1);
    assert_eq!(index[0]["products"][0]["stock"], 2);
    assert_eq!(index[0]["customers"].as_array().unwrap().len(), 2);

    // The rest of the receivers: emails written by the shop's worker once their jobs ran,
    // invoices, the audit log as `web`.
    let jobs = shop.server.jobs_done().await.unwrap();
    assert_eq!((jobs.dead, jobs.waiting), (0, 0), "{jobs:?}");
    let mut emails = shop.run.emails().unwrap();
    emails.dedup();
    assert_eq!(emails, [shop.email("ada"), shop.email("grace")]);
    assert_eq!(
        shop.run.emails().unwrap().len(),
        4,
        "two welcomes, two confirmations"
    );
    assert_eq!(shop.count("SELECT COUNT(*) FROM invoices").await, 2);
    let audited = shop
        .run
        .db
        .texts("SELECT actor || ' ' || action || ' ' || model FROM audit_log WHERE model = 'Order'")
        .await
        .unwrap();
    assert_eq!(audited, ["web created Order", "web created Order"]);
    shop.server.stop().await.unwrap();
}

/// `GET /orders`: an HTML page from `orders.html` listing `orders` (the first is `placed`, of
/// two chairs; the second of one), and the `template_rendered` of that request, naming the
/// template with the orders in its context.
async fn check_the_list(shop: &Shop, heard: &Heard, orders: &[Order], placed: &Value) {
    // The list: an HTML page from orders.html, with both orders.
    let response = shop.get("/orders").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = response.text().await.unwrap();
    for order in orders {
        assert!(
            html.contains(&format!("<tr id=\"order-{}\">", order.id.unwrap())),
            "{html}"
        );
    }
    assert!(
        html.contains("Ada Lovelace &lt;ada.list-"),
        "escaped: {html}"
    );
    assert!(html.contains("240.00") && html.contains("120.00"), "{html}");

    // template_rendered: the template's name and the context the page was rendered with.
    let contexts = heard.rendered("orders.html");
    assert_eq!(contexts.len(), 1, "one list request: {contexts:#?}");
    let listed = contexts[0]["orders"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["id"], placed["id"]);
    assert_eq!(
        (
            &listed[0]["customer"],
            &listed[0]["product"],
            &listed[0]["quantity"],
            &listed[0]["total"]
        ),
        (
            &json!("Ada Lovelace"),
            &json!("Chair"),
            &json!(2),
            &json!("240.00")
        )
    );
    assert_eq!(listed[1]["quantity"], 1);
}

async fn a_refused_order_is_a_4xx_and_changes_nothing(backend: Backend) {
    let Some(shop) = Shop::start("refused", backend).await else {
        return;
    };
    let alan = shop.register("alan turing", "alan").await;
    let desk = shop.add_product("Desk", 1, 25_000).await;
    let audit_rows = shop.count("SELECT COUNT(*) FROM audit_log").await;
    shop.server.jobs_done().await.unwrap();
    let emails = shop.run.emails().unwrap();

    let response = shop.order(id(&alan), desk, 2).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(
        response.text().await.unwrap(),
        format!("out of stock: product {desk} has fewer than 2 units\n")
    );
    let response = shop.order(id(&alan), desk + 1000, 1).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.text().await.unwrap(),
        format!("no product with id {}\n", desk + 1000)
    );
    let response = shop.order(id(&alan), desk, 0).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // A registration create_profile refuses: 422 with its reason, no customer.
    let response = shop
        .post_json(
            "/customers",
            &json!({"name": "mallory", "email": "mallory@blocked.example"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .starts_with("profiles cannot be created for @blocked.example addresses")
    );

    assert!(shop.orders().await.is_empty());
    assert_eq!(shop.stock(desk).await, 1);
    assert_eq!(shop.count("SELECT COUNT(*) FROM invoices").await, 0);
    assert_eq!(shop.count("SELECT COUNT(*) FROM customers").await, 1);
    assert_eq!(
        shop.count("SELECT COUNT(*) FROM audit_log").await,
        audit_rows,
        "nothing audited"
    );
    // Once the queue drained: still no confirmation (no job was enqueued for a refusal).
    shop.server.jobs_done().await.unwrap();
    assert_eq!(shop.run.emails().unwrap(), emails, "no confirmation");
    // The stock is still there for an order that fits.
    assert_eq!(
        shop.order(id(&alan), desk, 1).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(shop.stock(desk).await, 0);
}

async fn request_finished_comes_once_per_request_with_its_status(backend: Backend) {
    let Some(shop) = Shop::start("finished", backend).await else {
        return;
    };
    let heard = Heard::listen(&shop.marker);
    let _ = log_lines(&shop.marker);
    let started = Instant::now();

    assert_eq!(shop.get("/").await.status(), StatusCode::OK);
    let barbara = shop.register("barbara liskov", "barbara").await;
    let response = shop
        .client
        .post(shop.url("/customers"))
        .form(&[("name", "edsger"), ("email", &shop.email("edsger"))])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    // JSON without `email`: axum's extractor refuses it.
    let response = shop.post_json("/products", &json!({"name": "Lamp"})).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let response = shop.order(id(&barbara), 4242, 1).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = shop.get("/orders").await;
    assert_eq!(response.status(), StatusCode::OK);
    let _ = response.text().await.unwrap();
    let elapsed = started.elapsed();

    for (method, path, status) in [
        ("GET", "/", 200),
        ("POST", "/products", 422),
        ("POST", "/orders", 404),
        ("GET", "/orders", 200),
    ] {
        let ev = heard.finished(method, path).await;
        assert_eq!(ev.status.map(|s| s.as_u16()), Some(status), "{ev:?}");
        assert_eq!(ev.end, BodyEnd::Completed, "{ev:?}");
        assert!(ev.duration > Duration::ZERO && ev.duration <= elapsed);
        let logged = wait_for(&format!("the log line of {method} {path}"), || {
            log_lines(&shop.marker).into_iter().find(|line| {
                line.contains(&format!("method={method} uri={path}?t="))
                    && line.contains(&format!("status={status} "))
            })
        })
        .await;
        assert!(
            logged.starts_with("INFO message=request finished")
                && logged.contains("duration_ms=")
                && logged.contains("end=Completed"),
            "{logged}"
        );
    }
    // Two registrations, a JSON one (201) and a form (303): one request_finished each.
    let registrations: Vec<u16> = {
        wait_for("both registrations", || {
            let finished = heard.finished.lock().unwrap();
            let statuses: Vec<u16> = finished
                .iter()
                .filter(|ev| ev.uri.path() == "/customers")
                .filter_map(|ev| ev.status.map(|s| s.as_u16()))
                .collect();
            (statuses.len() >= 2).then_some(statuses)
        })
        .await
    };
    let mut sorted = registrations.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [201, 303]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(heard.finished.lock().unwrap().len(), 6, "one per request");
}

// ---- The client that hangs up.

/// An order whose transaction [`stall_marked_orders`] holds open.
#[derive(Default)]
struct Stall {
    /// The receiver got there: the order's rows are written, not committed.
    reached: Notify,
    /// Never notified in the disconnect test: only a dropped future ends the wait.
    release: Notify,
    /// The receiver's future was dropped while it waited.
    dropped: AtomicBool,
}

/// The orders to stall, by email; each stalls once.
static STALLS: Mutex<Vec<(String, Arc<Stall>)>> = Mutex::new(Vec::new());

/// Sets [`Stall::dropped`] unless disarmed.
struct DroppedWhileWaiting(Option<Arc<Stall>>);

impl Drop for DroppedWhileWaiting {
    fn drop(&mut self) {
        if let Some(stall) = self.0.take() {
            stall.dropped.store(true, Ordering::SeqCst);
        }
    }
}

/// Last of the order's `post_save` receivers (after the stock, the invoice and the audit row
/// are written in its transaction): waits, for the orders [`STALLS`] names.
#[receiver(post_save, sender = Order, priority = -100)]
async fn stall_marked_orders(ev: PostSave<'_, Order>) {
    let stall = {
        let mut stalls = STALLS.lock().unwrap();
        let found = stalls
            .iter()
            .position(|(email, _)| *email == ev.instance.email);
        found.map(|at| stalls.remove(at).1)
    };
    let Some(stall) = stall else { return };
    let mut dropped = DroppedWhileWaiting(Some(Arc::clone(&stall)));
    stall.reached.notify_one();
    stall.release.notified().await;
    dropped.0 = None;
}

async fn a_client_gone_mid_order_leaves_no_half_written_order(backend: Backend) {
    let Some(shop) = Shop::start("hangup", backend).await else {
        return;
    };
    let heard = Heard::listen(&shop.marker);
    let linus = shop.register("linus", "linus").await;
    let chair = shop.add_product("Chair", 3, 12_000).await;
    let audit_rows = shop.count("SELECT COUNT(*) FROM audit_log").await;
    shop.server.jobs_done().await.unwrap();
    let emails = shop.run.emails().unwrap();

    let stall = Arc::new(Stall::default());
    STALLS
        .lock()
        .unwrap()
        .push((shop.email("linus"), Arc::clone(&stall)));
    let request = {
        let (client, url) = (shop.client.clone(), shop.url("/orders"));
        let new = NewOrder {
            customer_id: id(&linus),
            product_id: chair,
            quantity: 2,
        };
        tokio::spawn(async move { client.post(url).json(&new).send().await })
    };
    tokio::time::timeout(WAIT, stall.reached.notified())
        .await
        .expect("the order's transaction reached the stalling receiver");
    // The order, its stock change, its invoice and its audit row are written in the open
    // transaction. The client hangs up: its connection closes.
    request.abort();
    assert!(request.await.unwrap_err().is_cancelled());

    // The server drops the handler's future, and the transaction with it.
    wait_for("the handler's future dropped", || {
        stall.dropped.load(Ordering::SeqCst).then_some(())
    })
    .await;
    let finished = heard.finished("POST", "/orders").await;
    assert_eq!(
        (finished.status, finished.end),
        (None, BodyEnd::DroppedEarly),
        "request_finished: no response, dropped: {finished:?}"
    );

    // Nothing of it is left, and its transaction is over: the next order takes the same
    // product's stock (on SQLite it needs the write lock the stalled transaction held, on
    // PostgreSQL the product row's lock).
    assert!(shop.orders().await.is_empty());
    assert_eq!(shop.stock(chair).await, 3);
    let response = tokio::time::timeout(WAIT, shop.order(id(&linus), chair, 1))
        .await
        .expect("the abandoned transaction holds no lock");
    assert_eq!(response.status(), StatusCode::CREATED);
    let orders = shop.orders().await;
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert_eq!(orders[0].quantity, 1, "the second order only");
    assert_eq!(shop.stock(chair).await, 2, "3, less the second order's 1");
    assert_eq!(shop.count("SELECT COUNT(*) FROM invoices").await, 1);
    let audited = shop
        .run
        .db
        .texts("SELECT actor || ' ' || action || ' ' || model FROM audit_log WHERE model IN ('Order', 'Invoice') ORDER BY id")
        .await
        .unwrap();
    assert_eq!(
        audited,
        ["web created Order", "web created Invoice"],
        "the second order's rows only"
    );
    assert_eq!(
        shop.count("SELECT COUNT(*) FROM audit_log").await,
        audit_rows + 2
    );
    shop.server.jobs_done().await.unwrap();
    let mut after = shop.run.emails().unwrap();
    assert_eq!(
        after.len(),
        emails.len() + 1,
        "one confirmation: the second order's"
    );
    after.dedup();
    assert_eq!(after, [shop.email("linus")]);
}

// ---- Without a database.

async fn boom() -> &'static str {
    panic!("a handler bug")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_answered_500_and_logged_by_got_request_exception() {
    let marker = "panic-marker";
    let _ = log_lines(marker);
    // Any server whose layer sends from `App` is heard by the web module's receivers.
    let app = axum::Router::new()
        .route("/boom", axum::routing::get(boom))
        .layer(RequestSignalsLayer::new().sender::<App>());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let response = reqwest::get(format!("http://{addr}/boom?t={marker}"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let logged = wait_for("the error's log line", || {
        log_lines(marker)
            .into_iter()
            .find(|line| line.starts_with("ERROR"))
    })
    .await;
    assert!(
        logged.contains("message=request failed")
            && logged.contains(&format!("method=GET uri=/boom?t={marker}"))
            && logged.contains("a handler bug"),
        "{logged}"
    );
    wait_for("the request's log line", || {
        log_lines(marker)
            .into_iter()
            .find(|line| line.starts_with("INFO") && line.contains("status=500"))
    })
    .await;
}

#[tokio::test]
async fn the_server_stops_gracefully_and_every_template_renders() {
    let dir = tempfile::tempdir().unwrap();
    let db = ShopDb::sqlite_file(&dir.path().join("shop.db"))
        .await
        .unwrap();
    let app = App::new(db, dir.path());
    let products = web::add_catalogue(&app).await.unwrap();
    assert_eq!(products.len(), 2);
    let server = Server::start(app, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = server.url("/");
    let html = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert!(html.contains("<td>Chair</td>") && html.contains("<td>Desk</td>"));
    assert!(
        web::render("orders.html", json!({"orders": []}))
            .await
            .unwrap()
            .contains("No orders yet.")
    );
    assert!(web::render("nope.html", json!({})).await.is_err());
    server.stop().await.unwrap();
    assert!(
        reqwest::get(&url).await.is_err(),
        "nothing listens once stopped"
    );
}
