//! The shop over HTTP: an axum server whose handlers are thin wrappers around the ORM writes the
//! use cases make, so every receiver of the crate runs for them as it does for the use cases
//! (names normalised, profiles created, welcome and confirmation emails enqueued in the write's
//! transaction and written by the shop's durable worker after COMMIT, stock taken, invoices
//! opened, every change audited, here as the actor [`ACTOR`]). The server runs that worker in
//! its process ([`crate::jobs::ShopWorker`]) for as long as it serves.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the shop's page (`index.html`): products, customers, forms to register and order |
//! | `POST /customers` | registers a customer (`name`, `email`: [`NewCustomer`]) |
//! | `POST /products` | adds a product (`name`, `stock`, `price_cents`: [`NewProduct`]) |
//! | `POST /orders` | places an order (`customer_id`, `product_id`, `quantity`: [`NewOrder`]) in one transaction |
//! | `GET /orders` | the orders, an HTML page rendered from `orders.html` |
//!
//! A `POST` takes a form (`application/x-www-form-urlencoded`) or JSON (`application/json`). A
//! JSON request is answered `201 Created` with the new row as JSON; a form is answered `303 See
//! Other` to the page that shows the row. Refusals are `4xx` with the reason as text: `404` for
//! an unknown customer or product, `409` for an order beyond the stock, `422` for invalid input
//! or a receiver's refusal (`create_profile` refuses `@blocked.example`); failures are `500`,
//! logged.
//!
//! # Signals
//!
//! - **Request signals.** [`router`] wraps the routes in [`RequestSignalsLayer`], sending from
//!   [`App`]: a receiver of `request_finished` here logs each request's method, URI, status,
//!   duration and how its body ended (a client gone before the answer shows as no status,
//!   dropped early), and one of `got_request_exception` logs a handler's panic (the layer
//!   answers it `500`; an error a handler returns is an ordinary response, shown by its status,
//!   and a `5xx` one is logged with its cause). Both log through `tracing` (target
//!   `examples::web`); the `web` program prints them, and its signal trace shows the receivers
//!   running.
//! - **`template_rendered`.** Every page goes through [`render`], which sends
//!   [`TemplateRendered`] (the template's name and its context) before rendering, so a test
//!   can assert which template a handler rendered with what context. Django sends its
//!   `template_rendered` only under its test runner, which instruments `Template.render`; this
//!   is the smallest honest equivalent: the shop's own render function sends it, in tests and
//!   out, and when nobody listens it costs one `has_listeners` check (no clone of the context,
//!   no future). Another application's templates send it only if its render function does.
//!
//! # A client that goes away
//!
//! axum drops a handler's future when its client disconnects before the answer. Placing an
//! order ([`place_order`]) reads the customer and the product, saves the order (whose
//! `post_save` receivers take the stock, open the invoice and write the audit row in the same
//! transaction) and commits, all in one [`Tx`]: dropped anywhere before its COMMIT, the `Tx` is
//! dropped with it and sqlx rolls the transaction back, so no half-written order is left
//! (`examples/tests/web.rs` proves it by stalling an order's transaction in a receiver and
//! hanging up). Once COMMIT is sent the order stands, and its `on_commit` receivers still run;
//! its durable jobs (the confirmation, the sales count) committed with it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use signals_core::request::{GotRequestException, RequestFinished, RequestSignalsLayer};
use signals_orm::dispatch::has_listeners;
use signals_orm::{Model as _, ModelExt as _, OrmError, SendError, Sender, Signal, Tx, receiver};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::db::ShopDb;
use crate::jobs::{DRAIN_TIMEOUT, JobStats, ShopWorker};
use crate::models::{Customer, Order, Product, euros};
use crate::usecases::audit_log::acting_as;
use crate::usecases::order_creation::OutOfStock;
use crate::usecases::register;
use crate::{Error, jobs, on_db};

/// Who the audit log says made the web's changes.
pub const ACTOR: &str = "web";

/// The web front's state, shared by the handlers: the database and the folder emails go to.
/// Also the sender of the server's request signals: receivers with `sender = App` hear this
/// server's requests only.
#[derive(Clone, Debug)]
pub struct App {
    db: ShopDb,
    outbox: PathBuf,
}

impl App {
    /// The shop on `db`, writing `.eml` files to `outbox` (SMTP instead with `SMTP_URL`).
    #[must_use]
    pub fn new(db: ShopDb, outbox: &Path) -> Self {
        App {
            db,
            outbox: outbox.to_path_buf(),
        }
    }

    /// The database.
    #[must_use]
    pub fn db(&self) -> &ShopDb {
        &self.db
    }

    /// Starts the shop's durable worker on this app's database and outbox (on PostgreSQL,
    /// waiting while another shop's runs on the same database: see [`ShopWorker::start`]).
    async fn start_worker(&self) -> io::Result<ShopWorker> {
        ShopWorker::start(&self.db, &self.outbox)
            .await
            .map_err(io::Error::other)
    }
}

/// Runs `fut` as [`ACTOR`]. Boxed: the writes' futures are large.
fn as_web<'a, F: Future + Send + 'a>(fut: F) -> impl Future<Output = F::Output> + Send + 'a {
    acting_as(ACTOR, Box::pin(fut))
}

/// A customer to register: the body of `POST /customers`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NewCustomer {
    /// The name (normalised by `capitalize_name`'s `pre_save`).
    pub name: String,
    /// The email address (the welcome email goes there).
    pub email: String,
}

/// A product to add: the body of `POST /products`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NewProduct {
    /// The name.
    pub name: String,
    /// Units in stock.
    pub stock: i64,
    /// Price of one unit, in cents.
    pub price_cents: i64,
}

/// An order to place: the body of `POST /orders`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NewOrder {
    /// Who orders.
    pub customer_id: i64,
    /// What.
    pub product_id: i64,
    /// How many units.
    pub quantity: i64,
}

/// Why a request was refused or failed; its response has [`WebError::status`] and, for a
/// refusal, the reason as text. A failure (`5xx`) is logged and answered without details.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    /// No row has the key (`404`).
    #[error("no {what} with id {id}")]
    NotFound {
        /// `"customer"` or `"product"`.
        what: &'static str,
        /// The key asked for.
        id: i64,
    },
    /// The input is invalid (`422`).
    #[error("{0}")]
    Invalid(String),
    /// A write or a read failed: `409` for an order beyond the stock ([`OutOfStock`] among its
    /// causes) or a delete refused by a foreign key, `422` for another receiver's refusal
    /// (one whose error is not the database's), `500` otherwise.
    #[error(transparent)]
    Orm(#[from] OrmError),
    /// A receiver of [`TemplateRendered`] failed (`500`).
    #[error("a receiver of template_rendered failed: {0}")]
    Signal(#[from] SendError),
    /// A template did not render (`500`).
    #[error("template error: {0:#}")]
    Template(#[from] minijinja::Error),
}

impl WebError {
    /// The response's status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::NotFound { .. } => StatusCode::NOT_FOUND,
            WebError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            WebError::Orm(error) if cause::<OutOfStock>(error).is_some() => StatusCode::CONFLICT,
            WebError::Orm(OrmError::Protected { .. } | OrmError::Restricted { .. }) => {
                StatusCode::CONFLICT
            }
            WebError::Orm(error @ OrmError::Signal(_)) if cause::<sqlx::Error>(error).is_none() => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            WebError::Orm(_) | WebError::Signal(_) | WebError::Template(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

/// The first error of type `E` in `error`'s chain of causes, `error` included.
fn cause<'e, E: std::error::Error + 'static>(
    error: &'e (dyn std::error::Error + 'static),
) -> Option<&'e E> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(found) = error.downcast_ref::<E>() {
            return Some(found);
        }
        next = error.source();
    }
    None
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %format!("{self:#}"), "request failed: {status}");
            return (status, "the shop failed; the error is logged\n").into_response();
        }
        (status, format!("{}\n", self.reason())).into_response()
    }
}

impl WebError {
    /// What a refusal's response says: for a receiver's refusal, the receiver's own error
    /// (`out of stock: ...`), without the chain around it.
    fn reason(&self) -> String {
        if let WebError::Orm(error @ OrmError::Signal(_)) = self {
            let mut root: &(dyn std::error::Error + 'static) = error;
            while let Some(source) = root.source() {
                root = source;
            }
            return root.to_string();
        }
        format!("{self:#}")
    }
}

/// A `POST` body, from a form or JSON (by its `Content-Type`), and which it was.
struct Input<T> {
    value: T,
    json: bool,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Input<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if json {
            let Json(value) = Json::<T>::from_request(request, state)
                .await
                .map_err(IntoResponse::into_response)?;
            Ok(Input { value, json })
        } else {
            let Form(value) = Form::<T>::from_request(request, state)
                .await
                .map_err(IntoResponse::into_response)?;
            Ok(Input { value, json })
        }
    }
}

/// Django's `template_rendered`: a page is about to be rendered from `template` with
/// `context`. Sent by [`render`], from [`Templates`], for every page the shop renders.
///
/// Django sends it only in tests (its test runner instruments `Template.render`), so that a
/// test can check which template a view used with what context. Here the shop's render
/// function sends it, in tests and out; with no receiver it costs one `has_listeners` check.
#[derive(Signal, Debug, Clone)]
#[signal(name = "template_rendered")]
pub struct TemplateRendered {
    /// The template's name (`orders.html`).
    pub template: &'static str,
    /// The context it is rendered with.
    pub context: Value,
}

/// The shop's templates (`examples/templates/`, compiled in): the sender of
/// [`TemplateRendered`], as Django's sender is the template.
#[derive(Debug)]
pub struct Templates;

impl Templates {
    /// The templates' names and sources, compiled into the program from `examples/templates/`.
    pub const FILES: [(&'static str, &'static str); 3] = [
        ("base.html", include_str!("../templates/base.html")),
        ("index.html", include_str!("../templates/index.html")),
        ("orders.html", include_str!("../templates/orders.html")),
    ];
}

/// minijinja's environment with [`Templates::FILES`] (HTML autoescaped, by their extension).
static ENVIRONMENT: LazyLock<minijinja::Environment<'static>> = LazyLock::new(|| {
    let mut environment = minijinja::Environment::new();
    for (name, source) in Templates::FILES {
        if let Err(error) = environment.add_template(name, source) {
            // Compiled in, and rendered by the tests: a syntax error is a bug of this crate.
            panic!("examples/templates/{name} does not compile: {error:#}");
        }
    }
    environment
});

/// Renders the page `template` with `context`, sending [`TemplateRendered`] (from
/// [`Templates`]) just before, as Django's instrumented renderer does, when a receiver listens.
///
/// # Errors
///
/// [`WebError::Template`] for an unknown template or one that fails; [`WebError::Signal`] when
/// a receiver of [`TemplateRendered`] fails (it is sent with `send`, as Django sends it).
pub async fn render(template: &'static str, context: Value) -> Result<String, WebError> {
    let page = ENVIRONMENT.get_template(template)?;
    let sender = Sender::of::<Templates>();
    let context = if has_listeners::<TemplateRendered>(sender) {
        let event = TemplateRendered { template, context };
        signals_orm::send(sender, &event).await?;
        event.context
    } else {
        context
    };
    Ok(page.render(minijinja::value::Serde(&context))?)
}

/// The shop's routes (see the [module](self)) on `app`, wrapped in the request signals' layer
/// sending from [`App`].
pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/customers", axum::routing::post(create_customer))
        .route("/products", axum::routing::post(create_product))
        .route("/orders", get(list_orders).post(create_order))
        .with_state(app)
        .layer(RequestSignalsLayer::new().sender::<App>())
}

/// Serves [`router`]`(app)` on `listener` until `shutdown` completes, with the shop's durable
/// worker running (started before the first request), then shuts down gracefully: no new
/// connection is accepted, idle ones are closed, requests in flight are answered, and the
/// worker runs the jobs left (at most [`DRAIN_TIMEOUT`]) before it returns.
///
/// # Errors
///
/// When accepting connections fails, or the worker fails to start, finish or stop.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let worker = app.start_worker().await?;
    serve_with(listener, app, shutdown, worker).await
}

async fn serve_with(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
    worker: ShopWorker,
) -> io::Result<()> {
    let served = axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await;
    let finished = worker.drain(DRAIN_TIMEOUT).await;
    worker.stop().await.map_err(io::Error::other)?;
    finished.map_err(io::Error::other)?;
    served
}

/// A server running in a task of its own, as tests start it in-process. Dropping it shuts the
/// server down gracefully too, without waiting.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    db: ShopDb,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl Server {
    /// Starts the shop's durable worker (on PostgreSQL waiting, as [`ShopWorker::start`] does,
    /// while another shop's runs on the same database), binds `addr` (`127.0.0.1:0` for any free port) and
    /// serves `app` there ([`serve`]) in a task spawned on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// When the worker cannot start or the address cannot be bound.
    pub async fn start(app: App, addr: SocketAddr) -> io::Result<Self> {
        let worker = app.start_worker().await?;
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let db = app.db.clone();
        let task = tokio::spawn(serve_with(
            listener,
            app,
            async move {
                // A message or the sender's drop: either way, stop.
                let _ = stopped.await;
            },
            worker,
        ));
        Ok(Server {
            addr,
            db,
            stop: Some(stop),
            task,
        })
    }

    /// Waits until the shop's jobs enqueued so far ran (emails written, sales counted), at
    /// most [`DRAIN_TIMEOUT`]; returns their statistics.
    ///
    /// # Errors
    ///
    /// When jobs are still waiting at the timeout, or the database fails.
    pub async fn jobs_done(&self) -> Result<JobStats, Error> {
        jobs::drain(&self.db, DRAIN_TIMEOUT).await
    }

    /// The address it listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR{path}`: the URL of `path` (which starts with `/`) on this server.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Shuts down gracefully and waits until requests in flight are answered and the jobs
    /// left ran.
    ///
    /// # Errors
    ///
    /// The server's error, or its task's panic.
    pub async fn stop(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.map_err(io::Error::other)?
    }
}

/// Logs every request of an [`App`] server once it is over: method, URI, status (none when
/// there was no response, as for a client gone before the answer), duration in milliseconds
/// and how the response ended.
#[receiver(RequestFinished, sender = App)]
fn log_request(ev: &RequestFinished) {
    tracing::info!(
        method = %ev.method,
        uri = %ev.uri,
        status = ev.status.map(|s| s.as_u16()),
        duration_ms = (ev.duration_ms() * 100.0).round() / 100.0,
        end = ?ev.end,
        "request finished"
    );
}

/// Logs a request of an [`App`] server whose handler panicked (answered `500` by the layer).
#[receiver(GotRequestException, sender = App)]
fn log_exception(ev: &GotRequestException) {
    tracing::error!(
        method = %ev.method,
        uri = %ev.uri,
        error = %ev.exception,
        "request failed"
    );
}

/// `GET /`: products and customers, with the forms (`index.html`).
async fn index(State(app): State<App>) -> Result<Html<String>, WebError> {
    let (products, customers) = on_db!(&app.db, |pool| {
        let products = Product::objects()
            .order_by(Product::columns().id.asc())
            .all(pool)
            .await?;
        let customers = Customer::objects()
            .order_by(Customer::columns().id.asc())
            .all(pool)
            .await?;
        (products, customers)
    });
    let context = json!({
        "products": products.iter().map(product_json).collect::<Vec<_>>(),
        "customers": customers,
    });
    Ok(Html(render("index.html", context).await?))
}

fn product_json(product: &Product) -> Value {
    json!({
        "id": product.id,
        "name": product.name,
        "stock": product.stock,
        "price_cents": product.price_cents,
        "price": euros(product.price_cents),
    })
}

fn order_json(order: &Order) -> Value {
    json!({
        "id": order.id,
        "customer_id": order.customer_id,
        "email": order.email,
        "product_id": order.product_id,
        "quantity": order.quantity,
        "total_cents": order.total_cents,
        "paid": order.paid,
    })
}

/// A JSON request's `201 Created` with `body`, or a form's `303 See Other` to `page`.
fn created(json: bool, body: Value, page: &str) -> Response {
    if json {
        (StatusCode::CREATED, Json(body)).into_response()
    } else {
        Redirect::to(page).into_response()
    }
}

/// `POST /customers`: the use cases' [`register`] (a save through the pool).
async fn create_customer(
    State(app): State<App>,
    Input { value, json }: Input<NewCustomer>,
) -> Result<Response, WebError> {
    let (name, email) = (value.name.trim(), value.email.trim());
    if name.is_empty() || !email.contains('@') {
        return Err(WebError::Invalid(
            "a customer needs a name and an email address".to_owned(),
        ));
    }
    let customer = as_web(register(&app.db, name, email)).await?;
    let body = serde_json::to_value(&customer).unwrap_or_default();
    Ok(created(json, body, "/"))
}

/// `POST /products`: see [`add_product`].
async fn create_product(
    State(app): State<App>,
    Input { value, json }: Input<NewProduct>,
) -> Result<Response, WebError> {
    let product = add_product(&app, &value).await?;
    Ok(created(json, product_json(&product), "/"))
}

/// Adds a product (a save through the pool, audited), as `POST /products` does.
///
/// # Errors
///
/// [`WebError::Invalid`] for an empty name or a negative stock or price; the save's error.
pub async fn add_product(app: &App, new: &NewProduct) -> Result<Product, WebError> {
    let name = new.name.trim();
    if name.is_empty() || new.stock < 0 || new.price_cents < 0 {
        return Err(WebError::Invalid(
            "a product needs a name, and a stock and a price of at least 0".to_owned(),
        ));
    }
    let mut product = Product {
        id: None,
        name: name.to_owned(),
        stock: new.stock,
        price_cents: new.price_cents,
        image_path: String::new(),
    };
    as_web(async { on_db!(&app.db, |pool| product.save(pool).await) }).await?;
    Ok(product)
}

/// `POST /orders`: see [`place_order`].
async fn create_order(
    State(app): State<App>,
    Input { value, json }: Input<NewOrder>,
) -> Result<Response, WebError> {
    let order = place_order(&app, &value).await?;
    Ok(created(json, order_json(&order), "/orders"))
}

/// Places an order, as `POST /orders` does, in one transaction: reads the customer (for the
/// email) and the product (for the price), saves the order, whose `post_save` receivers take
/// the units from stock (refusing when there are too few: [`OutOfStock`]), open its invoice
/// and audit it in the same transaction, and enqueue its confirmation email and sales count,
/// and commits; the shop's worker sends the email after the COMMIT. A refusal or a failure rolls everything back, and so does dropping the future
/// before the COMMIT (a client that hung up): the transaction goes with it.
///
/// # Errors
///
/// [`WebError::Invalid`] for a quantity below 1, [`WebError::NotFound`] for an unknown
/// customer or product, the ORM's error (an [`OutOfStock`] refusal among them).
pub async fn place_order(app: &App, new: &NewOrder) -> Result<Order, WebError> {
    if new.quantity < 1 {
        return Err(WebError::Invalid(
            "an order needs a quantity of at least 1".to_owned(),
        ));
    }
    as_web(async {
        on_db!(&app.db, |pool| {
            let mut tx = Tx::begin(pool).await?;
            let customer =
                Customer::get(&mut tx, &new.customer_id)
                    .await?
                    .ok_or(WebError::NotFound {
                        what: "customer",
                        id: new.customer_id,
                    })?;
            let product =
                Product::get(&mut tx, &new.product_id)
                    .await?
                    .ok_or(WebError::NotFound {
                        what: "product",
                        id: new.product_id,
                    })?;
            let mut order =
                Order {
                    id: None,
                    customer_id: new.customer_id,
                    email: customer.email,
                    product_id: new.product_id,
                    quantity: new.quantity,
                    total_cents: new.quantity.checked_mul(product.price_cents).ok_or_else(
                        || WebError::Invalid("the order's total is too large".to_owned()),
                    )?,
                    paid: false,
                };
            order.save(&mut tx).await?;
            tx.commit().await?;
            Ok(order)
        })
    })
    .await
}

/// `GET /orders`: every order with its customer and product (`orders.html`).
async fn list_orders(State(app): State<App>) -> Result<Html<String>, WebError> {
    let (orders, customers, products) = on_db!(&app.db, |pool| {
        let orders = Order::objects()
            .order_by(Order::columns().id.asc())
            .all(pool)
            .await?;
        let customers = Customer::filter(
            Customer::columns()
                .id
                .is_in(orders.iter().map(|o| o.customer_id)),
        )
        .all(pool)
        .await?;
        let products = Product::filter(
            Product::columns()
                .id
                .is_in(orders.iter().map(|o| o.product_id)),
        )
        .all(pool)
        .await?;
        (orders, customers, products)
    });
    let orders: Vec<Value> = orders
        .iter()
        .map(|order| {
            let customer = customers.iter().find(|c| c.id == Some(order.customer_id));
            let product = products.iter().find(|p| p.id == Some(order.product_id));
            json!({
                "id": order.id,
                "customer_id": order.customer_id,
                "customer": customer.map(|c| c.name.as_str()),
                "email": order.email,
                "product_id": order.product_id,
                "product": product.map(|p| p.name.as_str()),
                "quantity": order.quantity,
                "total_cents": order.total_cents,
                "total": euros(order.total_cents),
                "paid": order.paid,
            })
        })
        .collect();
    Ok(Html(
        render("orders.html", json!({ "orders": orders })).await?,
    ))
}

/// Adds the demo catalogue the `web` program starts with: a chair (5 in stock, 120.00 EUR) and
/// a desk (2 in stock, 250.00 EUR).
///
/// # Errors
///
/// A failed save.
pub async fn add_catalogue(app: &App) -> Result<Vec<Product>, WebError> {
    let mut added = Vec::new();
    for (name, stock, price_cents) in [("Chair", 5, 12_000), ("Desk", 2, 25_000)] {
        let new = NewProduct {
            name: name.to_owned(),
            stock,
            price_cents,
        };
        added.push(add_product(app, &new).await?);
    }
    Ok(added)
}
