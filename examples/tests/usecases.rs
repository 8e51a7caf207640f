//! Every use case and the shop, run as the example programs run them, with their effects
//! checked: `.eml` files and their recipients (written by the shop's durable worker, once the
//! jobs ran), the image file gone, rows in the database, the jobs enqueued and run.

use std::time::Duration;

use examples::db::ShopDb;
use examples::jobs::{DRAIN_TIMEOUT, ShopWorker};
use examples::models::{Customer, Invoice, Order, Profile};
use examples::on_db;
use examples::run::Run;
use examples::trace::Trace;
use examples::usecases::{
    audit_log, capitalize_name, create_profile, custom_signal, delete_customer, introspection,
    login_logout, order_creation, product_cache, product_image_cleanup, register, tag_counts,
    welcome_email,
};
use signals_orm::{ModelExt as _, OrmError};
use tracing_subscriber::layer::SubscriberExt as _;

/// A payment reaches every runtime receiver connected at the time, whichever test connected it
/// (connections are global, as in Django): the tests that send payments, the custom signal's
/// and the shop's, take turns so that each counts only its own receipts.
static PAYMENTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A run on a fresh SQLite file in a temporary folder, tracing into its own `Trace`.
async fn sqlite_run() -> (Run, tempfile::TempDir, tracing::subscriber::DefaultGuard) {
    let dir = tempfile::tempdir().unwrap();
    let db = quietly(ShopDb::sqlite_file(&dir.path().join("shop.db")))
        .await
        .unwrap();
    let trace = Trace::default();
    let guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(trace.clone()));
    (Run::with_db(dir.path(), db, trace).unwrap(), dir, guard)
}

/// Runs `setup` (making a database, whose migrations send `pre_migrate` and `post_migrate`)
/// under a trace of its own, thrown away. Not untraced: the dispatcher's spans are created
/// through `tracing` callsites whose interest is cached at their first use, and a first use
/// while no test has a subscriber yet (which a parallel test's can race) would cache "never":
/// every later trace of this process would then miss those spans.
async fn quietly<T>(setup: impl Future<Output = T>) -> T {
    let _scratch =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(Trace::default()));
    setup.await
}

/// The receivers of other use cases that ran, sorted: what the programs that do not mute them
/// name at their end.
fn others(run: &Run, own: &str) -> Vec<String> {
    let mut others = run.others(own);
    others.sort();
    others
}

/// How many rows `table` has.
async fn count(run: &Run, table: &str) -> i64 {
    let sql = match table {
        "customers" => "SELECT COUNT(*) FROM customers",
        "profiles" => "SELECT COUNT(*) FROM profiles",
        "orders" => "SELECT COUNT(*) FROM orders",
        "invoices" => "SELECT COUNT(*) FROM invoices",
        "audit_log" => "SELECT COUNT(*) FROM audit_log",
        other => panic!("no count for {other}"),
    };
    run.db.scalar(sql).await.unwrap()
}

#[tokio::test]
async fn welcome_email_writes_eml_files_to_the_new_customers() {
    let (run, _dir, _trace) = sqlite_run().await;
    let (customers, jobs) = run
        .with_worker(run.act("signup-form", welcome_email::run(&run)))
        .await
        .unwrap();
    assert_eq!(customers.unwrap().len(), 2);
    assert_eq!(
        (jobs.enqueued, jobs.mail, jobs.done, jobs.retried),
        (2, 2, 2, 0),
        "one welcome job per registration, each run once"
    );
    assert_eq!(
        run.emails().unwrap(),
        ["ada@example.com", "grace@example.com"]
    );
    // One file per event, named after the job's event id, which is its Message-ID too.
    let done = on_db!(&run.db, |pool| signals_orm::durable::jobs(
        pool,
        &signals_orm::durable::JobFilter::new().queue(examples::jobs::MAIL_QUEUE)
    )
    .await)
    .unwrap();
    assert_eq!(done.len(), 2);
    for job in &done {
        let text = std::fs::read_to_string(run.outbox.join(format!("{}.eml", job.id))).unwrap();
        assert!(
            text.contains("Subject: Welcome to the Signals Shop"),
            "{text}"
        );
        assert!(
            text.contains(&format!("Message-ID: <{}@signals-shop.example>", job.id)),
            "{text}"
        );
    }
    // Enqueued in the registration's transaction (an immediate receiver), not after COMMIT.
    assert!(
        run.trace
            .lines()
            .iter()
            .any(|l| l == "post_save[models::Customer] -> welcome_email::send_welcome_email")
    );
    let durable = signals_orm::durable::receivers().to_string();
    assert!(
        durable
            .lines()
            .any(|l| l.contains("welcome_email::send_welcome_email") && l.contains("shop-mail")),
        "{durable}"
    );
    assert_eq!(
        others(&run, "welcome_email"),
        [
            "audit_log::audit_save",
            "capitalize_name::normalise_customer",
            "create_profile::create_profile"
        ],
        "what the program's doc comment names"
    );
}

/// Two shops (two SQLite files) run their workers at the same time in one process, and each
/// job writes its mail to its own shop's outbox: the shop's services are its worker's `data`,
/// not a process-wide setting, so a shop's job cannot reach the other shop's outbox.
#[tokio::test]
async fn two_shops_run_their_workers_side_by_side_each_job_with_its_own_shops_services() {
    let (one, _dir_one, _trace_one) = sqlite_run().await;
    let (two, _dir_two, _trace_two) = sqlite_run().await;
    let first = ShopWorker::start(&one.db, &one.outbox).await.unwrap();
    // Started while the first runs (they used to take turns, the second waiting here).
    let second = tokio::time::timeout(
        Duration::from_secs(10),
        ShopWorker::start(&two.db, &two.outbox),
    )
    .await
    .expect("a second shop's worker starts while the first one runs")
    .unwrap();
    register(&one.db, "ada lovelace", "ada@one.example")
        .await
        .unwrap();
    register(&two.db, "grace hopper", "grace@two.example")
        .await
        .unwrap();
    register(&two.db, "alan turing", "alan@two.example")
        .await
        .unwrap();
    let (ran_one, ran_two) = tokio::join!(first.drain(DRAIN_TIMEOUT), second.drain(DRAIN_TIMEOUT));
    let (ran_one, ran_two) = (ran_one.unwrap(), ran_two.unwrap());
    assert_eq!(
        (
            ran_one.enqueued,
            ran_one.done,
            ran_two.enqueued,
            ran_two.done
        ),
        (1, 1, 2, 2),
        "each shop's worker ran its own shop's welcome jobs"
    );
    assert_eq!(one.emails().unwrap(), ["ada@one.example"]);
    assert_eq!(
        two.emails().unwrap(),
        ["alan@two.example", "grace@two.example"]
    );
    first.stop().await.unwrap();
    second.stop().await.unwrap();
}

#[tokio::test]
async fn capitalize_name_stores_the_normalised_name() {
    let (run, _dir, _trace) = sqlite_run().await;
    let stored = run
        .act("signup-form", capitalize_name::run(&run))
        .await
        .unwrap();
    assert_eq!(
        (stored.name.as_str(), stored.email.as_str()),
        ("Edsger Wybe Dijkstra", "ewd@example.com")
    );
}

#[tokio::test]
async fn product_image_cleanup_removes_the_file_only_after_commit() {
    let (run, _dir, _trace) = sqlite_run().await;
    let image = run
        .act("admin", product_image_cleanup::run(&run))
        .await
        .unwrap();
    assert!(
        image.kept_after_rollback,
        "a rolled-back delete keeps the file"
    );
    assert!(!image.exists_after_delete);
    assert!(
        std::fs::read_dir(&run.media).unwrap().next().is_none(),
        "the media folder is empty"
    );
    assert_eq!(
        run.db
            .scalar("SELECT COUNT(*) FROM products")
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        others(&run, "product_image_cleanup"),
        [
            "audit_log::audit_delete",
            "audit_log::audit_save",
            "product_cache::invalidate_deleted_product",
            "product_cache::invalidate_saved_product"
        ],
        "what the program's doc comment names"
    );
}

#[tokio::test]
async fn create_profile_is_atomic_with_the_customer() {
    let (run, _dir, _trace) = sqlite_run().await;
    let (registered, jobs) = run
        .with_worker(run.act("signup-form", create_profile::run(&run)))
        .await
        .unwrap();
    let (customer, refused) = registered.unwrap();
    assert_eq!(
        (jobs.enqueued, jobs.done),
        (1, 1),
        "the refused registration's job was rolled back with it"
    );
    assert!(
        format!("{refused:#}").contains("blocked.example"),
        "{refused:#}"
    );
    assert_eq!(
        run.db
            .scalar("SELECT COUNT(*) FROM customers")
            .await
            .unwrap(),
        1
    );
    let profile_owner = run
        .db
        .scalar("SELECT customer_id FROM profiles")
        .await
        .unwrap();
    assert_eq!(
        Some(profile_owner),
        customer.id,
        "one profile, the accepted customer's"
    );
    assert_eq!(
        run.emails().unwrap(),
        ["barbara@example.com"],
        "no welcome for the refused one"
    );
    assert_eq!(
        others(&run, "create_profile"),
        [
            "audit_log::audit_save",
            "capitalize_name::normalise_customer",
            "welcome_email::send_welcome_email"
        ],
        "what the program's doc comment names"
    );
}

#[tokio::test]
async fn an_order_takes_stock_and_a_refused_one_changes_nothing() {
    let (run, _dir, _trace) = sqlite_run().await;
    let (orders, jobs) = run
        .with_worker(run.act("alan", order_creation::run(&run)))
        .await
        .unwrap();
    let orders = orders.unwrap();
    assert_eq!(
        (orders.stock_after_order, orders.stock_after_refusal),
        (0, 0)
    );
    // The welcome, the confirmation and the sales count; none for the refused order. The
    // confirmation was greylisted once, then delivered.
    assert_eq!(
        (
            jobs.enqueued,
            jobs.mail,
            jobs.analytics,
            jobs.done,
            jobs.retried,
            jobs.dead
        ),
        (3, 2, 1, 3, 1, 0)
    );
    assert_eq!(
        product_cache::sales(&run.db).await.unwrap(),
        [("Chair".to_owned(), 2, 1)]
    );
    assert!(
        format!("{:#}", orders.refused).contains("out of stock"),
        "{}",
        orders.refused
    );
    assert_eq!(
        run.db.scalar("SELECT COUNT(*) FROM orders").await.unwrap(),
        1
    );
    assert_eq!(
        run.emails().unwrap(),
        ["alan@example.com", "alan@example.com"],
        "welcome + one confirmation, none for the refusal"
    );
    let audited = run
        .db
        .texts("SELECT actor || ' ' || action || ' ' || model FROM audit_log WHERE model = 'Order'")
        .await
        .unwrap();
    assert_eq!(audited, ["alan created Order"]);
    assert_eq!(
        count(&run, "invoices").await,
        1,
        "the unpaid order's, none for the refusal"
    );
    // A product with orders is protected: its delete is refused and changes nothing.
    let mut chair = on_db!(&run.db, |pool| orders.placed.product(pool).await).unwrap();
    let refused = on_db!(&run.db, |pool| chair.delete(pool).await).unwrap_err();
    let OrmError::Protected { blocking } = &refused else {
        panic!("expected Protected, got {refused}");
    };
    assert_eq!(
        (blocking[0].parent, blocking[0].child, blocking[0].field),
        ("Product", "Order", "product_id")
    );
    assert_eq!(
        run.db
            .scalar("SELECT COUNT(*) FROM products")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        others(&run, "order_creation"),
        [
            "audit_log::audit_save",
            "capitalize_name::normalise_customer",
            "create_profile::create_profile",
            "delete_customer::keep_invoice",
            "product_cache::count_sale",
            "product_cache::invalidate_ordered_product",
            "product_cache::invalidate_saved_product",
            "welcome_email::send_welcome_email"
        ],
        "what the program's doc comment names"
    );
}

#[tokio::test]
async fn the_audit_log_records_who_did_what_to_every_model() {
    let (run, _dir, _trace) = sqlite_run().await;
    let rows = run.act("auditor", audit_log::run(&run)).await.unwrap();
    assert_eq!(
        rows,
        [
            "auditor created Customer",
            "auditor created Profile",
            "auditor updated Customer",
            "auditor created Post",
            "auditor deleted Post"
        ]
    );
    let when = run
        .db
        .scalar("SELECT MIN(at) FROM audit_log")
        .await
        .unwrap();
    assert!(when > 1_700_000_000, "a real Unix time: {when}");
    assert_eq!(
        others(&run, "audit_log"),
        [
            "capitalize_name::normalise_customer",
            "create_profile::create_profile",
            "welcome_email::send_welcome_email"
        ],
        "what the program's doc comment names"
    );
}

#[tokio::test]
async fn the_custom_payment_signal_reaches_link_time_and_runtime_receivers() {
    let _payments = PAYMENTS.lock().await;
    let (run, _dir, _trace) = sqlite_run().await;
    let orders = run.act("alan", order_creation::run(&run)).await.unwrap();
    let (receipts, paid) = run
        .act("gateway", custom_signal::run(&run, &orders.placed))
        .await
        .unwrap();
    assert_eq!(
        receipts, 1,
        "the runtime receiver ran once, then was disconnected"
    );
    assert!(paid);
}

#[tokio::test]
async fn a_customers_delete_is_protected_by_an_unpaid_order_then_cascades() {
    let _payments = PAYMENTS.lock().await;
    let (run, _dir, _trace) = sqlite_run().await;
    let deletion = run.act("admin", delete_customer::run(&run)).await.unwrap();
    let OrmError::Protected { blocking } = &deletion.refused else {
        panic!("expected Protected, got {}", deletion.refused);
    };
    assert_eq!(
        (
            blocking[0].parent,
            blocking[0].child,
            blocking[0].field,
            blocking[0].keys.len()
        ),
        ("Customer", "Invoice", "customer_id", 1)
    );
    assert_eq!(
        deletion.refused.to_string(),
        "cannot delete: `Customer` rows are referred to by 1 `Invoice` row through \
         `Invoice.customer_id` (1), whose foreign keys are `on_delete = protect`; delete or \
         re-point those rows first"
    );
    let deleted = &deletion.deleted;
    assert_eq!(
        (
            deleted.of::<Customer>(),
            deleted.of::<Profile>(),
            deleted.of::<Order>(),
            deleted.of::<Invoice>()
        ),
        (1, 1, 1, 0)
    );
    assert_eq!(deleted.total(), 3);
    assert_eq!(deletion.stock, (2, 3), "the order's desk is back in stock");
    for table in ["customers", "profiles", "orders", "invoices"] {
        assert_eq!(count(&run, table).await, 0, "{table}");
    }
    // Nothing of the refused delete is audited; every row of the cascade is, by the same actor.
    let audited = run
        .db
        .texts("SELECT actor || ' ' || action || ' ' || model FROM audit_log WHERE action = 'deleted' ORDER BY id")
        .await
        .unwrap();
    assert_eq!(
        audited,
        [
            "admin deleted Invoice",
            "admin deleted Profile",
            "admin deleted Order",
            "admin deleted Customer"
        ]
    );
    // Django's order: every pre_delete first, then per model its DELETE and post_delete.
    let trace = run.trace.lines();
    let start = trace
        .iter()
        .position(|l| l.starts_with("pre_delete"))
        .unwrap();
    assert_eq!(
        trace[start..],
        [
            "pre_delete[models::Order] -> delete_customer::return_to_stock",
            "post_delete[models::Profile] -> audit_log::audit_delete",
            "post_delete[models::Order] -> audit_log::audit_delete",
            "post_delete[models::Order] -> product_cache::invalidate_returned_product (queued until COMMIT)",
            "post_delete[models::Customer] -> audit_log::audit_delete",
            "after COMMIT  post_delete -> product_cache::invalidate_returned_product",
        ]
    );
    assert_eq!(
        others(&run, "delete_customer"),
        [
            "audit_log::audit_delete",
            "audit_log::audit_save",
            "capitalize_name::normalise_customer",
            "create_profile::create_profile",
            "custom_signal::mark_order_paid",
            "order_creation::send_order_confirmation",
            "order_creation::take_from_stock",
            "product_cache::count_sale",
            "product_cache::invalidate_ordered_product",
            "product_cache::invalidate_returned_product",
            "product_cache::invalidate_saved_product",
            "welcome_email::send_welcome_email"
        ],
        "what the program's doc comment names"
    );
}

#[tokio::test]
async fn login_and_logout_signals_update_the_customer() {
    let (run, _dir, _trace) = sqlite_run().await;
    let customer = register(&run.db, "grace hopper", "grace@example.com")
        .await
        .unwrap();
    let (after_login, after_logout) = run
        .act("grace", login_logout::run(&run, &customer))
        .await
        .unwrap();
    assert!(after_login.online && after_login.last_login.is_some());
    assert!(!after_logout.online);
    assert_eq!(after_logout.last_login, after_login.last_login);
}

#[tokio::test]
async fn tag_counts_follow_every_m2m_change() {
    let (run, _dir, _trace) = sqlite_run().await;
    let counts = run.act("editor", tag_counts::run(&run)).await.unwrap();
    assert_eq!(
        counts,
        [
            ("rust".to_owned(), 1),
            ("signals".to_owned(), 0),
            ("sql".to_owned(), 1)
        ]
    );
    let real = run
        .db
        .texts("SELECT t.name || '=' || CAST(COUNT(pt.post_id) AS TEXT) FROM tags t LEFT JOIN post_tags pt ON pt.tag_id = t.id GROUP BY t.name ORDER BY t.name")
        .await
        .unwrap();
    assert_eq!(
        real,
        ["rust=1", "signals=0", "sql=1"],
        "the counts match the links"
    );
}

#[tokio::test]
async fn the_capitalize_name_program_runs_only_the_pre_save() {
    let (run, _dir, _trace) = sqlite_run().await;
    let muted = capitalize_name::mute_others();
    let (stored, jobs) = run
        .with_worker(run.act("signup-form", muted.scope(capitalize_name::run(&run))))
        .await
        .unwrap();
    let stored = stored.unwrap();
    assert_eq!(jobs.enqueued, 0, "the muted post_save enqueued no welcome");
    assert_eq!(stored.name, "Edsger Wybe Dijkstra");
    assert_eq!(run.others("capitalize_name"), Vec::<String>::new());
    assert_eq!(
        (
            count(&run, "profiles").await,
            count(&run, "audit_log").await
        ),
        (0, 0)
    );
    assert!(run.emails().unwrap().is_empty(), "no welcome email");
}

#[tokio::test]
async fn the_custom_signal_program_runs_only_the_payment_receivers() {
    let _payments = PAYMENTS.lock().await;
    let (run, _dir, _trace) = sqlite_run().await;
    let muted = custom_signal::mute_others();
    let order = muted
        .clone()
        .scope(custom_signal::unpaid_order(&run))
        .await
        .unwrap();
    let (paid, jobs) = run
        .with_worker(run.act("gateway", muted.scope(custom_signal::run(&run, &order))))
        .await
        .unwrap();
    let (receipts, paid) = paid.unwrap();
    assert_eq!((receipts, paid), (1, true));
    assert_eq!(jobs.enqueued, 0, "no durable receiver heard a muted save");
    let mut own = run.trace.receivers();
    own.sort();
    assert_eq!(own.len(), 2, "{own:?}");
    assert_eq!(own[0], "custom_signal::mark_order_paid");
    assert!(
        own[1].starts_with("custom_signal::run::"),
        "the printer: {own:?}"
    );
    assert_eq!(count(&run, "audit_log").await, 0);
    assert!(run.emails().unwrap().is_empty());
}

#[tokio::test]
async fn the_login_logout_program_runs_only_the_session_receivers() {
    let (run, _dir, _trace) = sqlite_run().await;
    let muted = login_logout::mute_others();
    let customer = muted
        .clone()
        .scope(register(&run.db, "grace hopper", "grace@example.com"))
        .await
        .unwrap();
    let (after_login, after_logout) = run
        .act("grace", muted.scope(login_logout::run(&run, &customer)))
        .await
        .unwrap();
    assert!(after_login.online && !after_logout.online);
    let mut own = run.trace.receivers();
    own.sort();
    assert_eq!(
        own,
        [
            "login_logout::mark_offline",
            "login_logout::update_last_login"
        ]
    );
    assert_eq!(
        (
            count(&run, "customers").await,
            count(&run, "profiles").await,
            count(&run, "audit_log").await
        ),
        (1, 0, 0)
    );
    assert!(run.emails().unwrap().is_empty());
}

#[tokio::test]
async fn the_tag_counts_program_runs_only_the_m2m_receiver() {
    let (run, _dir, _trace) = sqlite_run().await;
    let muted = tag_counts::mute_others();
    let counts = run
        .act("editor", muted.scope(tag_counts::run(&run)))
        .await
        .unwrap();
    assert_eq!(
        counts,
        [
            ("rust".to_owned(), 1),
            ("signals".to_owned(), 0),
            ("sql".to_owned(), 1)
        ]
    );
    assert_eq!(run.trace.receivers(), ["tag_counts::count_posts_per_tag"]);
    assert_eq!(count(&run, "audit_log").await, 0);
}

#[test]
fn introspection_lists_every_receiver_of_the_shop() {
    let table = introspection::run();
    let shop: Vec<_> = table
        .iter()
        .filter(|r| r.module_path.starts_with("examples::usecases::"))
        .collect();
    assert_eq!(shop.len(), 19, "{table}");
    let text = table.to_string();
    for name in [
        "capitalize_name::normalise_customer",
        "welcome_email::send_welcome_email",
        "tag_counts::count_posts_per_tag",
        "custom_signal::mark_order_paid",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
    // A durable receiver is listed as `immediate`: what runs in the write is its enqueue.
    assert!(text.lines().any(|l| l.contains("send_welcome_email")
        && l.contains("immediate")
        && l.contains("welcome_email.rs:")));
    assert!(text.lines().any(|l| l.contains("invalidate_saved_product")
        && l.contains("on_commit")
        && l.contains("product_cache.rs:")));
}

/// What the shop's durable jobs did: every job ran before the summary, the emails are there,
/// the sales counted once.
fn check_jobs_emails_sales(summary: &examples::shop::Summary) {
    // Every job ran before the summary: a welcome per registration (10 with the updates, whose
    // jobs do nothing), a confirmation and a sales count per order save (5 each: 3 new orders,
    // 2 updates), the 3 new orders' confirmations greylisted once each.
    let jobs = summary.jobs;
    assert_eq!(
        (
            jobs.enqueued,
            jobs.mail,
            jobs.analytics,
            jobs.done,
            jobs.retried,
            jobs.dead,
            jobs.waiting
        ),
        (20, 15, 5, 20, 3, 0, 0)
    );
    assert_eq!(
        summary.emails,
        [
            "ada@example.com",
            "alan@example.com",
            "alan@example.com",
            "barbara@example.com",
            "ewd@example.com",
            "grace@example.com",
            "liskov@example.com",
            "liskov@example.com",
            "liskov@example.com",
            "nw@example.com"
        ],
        "seven welcomes (none for the refused registration), three confirmations"
    );
    assert_eq!(
        summary.sales,
        [("Chair".to_owned(), 2, 1), ("Lamp".to_owned(), 3, 2)],
        "counted once per order, the refused order not at all"
    );
    // The cache's five reads; how many hit depends on the other tests of this process, whose
    // product writes invalidate the same keys (every cache hears every write).
    assert_eq!(summary.cache.hits + summary.cache.misses, 5);
    assert!(summary.cache.misses >= 3, "{:?}", summary.cache);
}

async fn check_shop(run: &Run) {
    let _payments = PAYMENTS.lock().await;
    let summary = examples::shop::run(run).await.unwrap();
    let rows: Vec<_> = summary
        .rows
        .iter()
        .map(|(t, n)| format!("{t}={n}"))
        .collect();
    assert_eq!(
        rows,
        [
            "customers=6",
            "profiles=6",
            "products=2",
            "orders=2",
            "invoices=2",
            "audit_log=41",
            "posts=2",
            "tags=3",
            "post_tags=2",
            "shipping_methods=2",
            "product_sales=2",
            "sales_events=3"
        ]
    );
    check_jobs_emails_sales(&summary);
    assert_eq!(summary.files_removed, 1);
    let text = summary.to_string();
    assert_eq!(
        text.lines().count(),
        13,
        "CI shows the last 14 lines:\n{text}"
    );
    assert!(
        text.contains("jobs run: 20 done, 0 waiting") && text.contains("jobs failed: 0 dead"),
        "{text}"
    );
    let trace = run.trace.lines();
    let placed = trace
        .iter()
        .position(|l| l.ends_with("order_creation::take_from_stock"))
        .unwrap();
    let enqueued = trace
        .iter()
        .position(|l| l == "post_save[models::Order] -> order_creation::send_order_confirmation")
        .unwrap();
    assert!(
        placed < enqueued,
        "the confirmation is enqueued in the order's transaction, after the stock is taken"
    );
    assert!(
        trace
            .iter()
            .any(|l| l.contains("x order_creation::take_from_stock failed")
                && l.contains("out of stock"))
    );
    // The buyer's delete: refused while the order is unpaid, then a cascade with each row's
    // signals once it is paid.
    let refused = trace
        .iter()
        .position(|l| {
            l.starts_with(
                "   refused: cannot delete: `Customer` rows are referred to by 1 `Invoice` row",
            )
        })
        .unwrap();
    let paid = trace
        .iter()
        .position(|l| l.ends_with("custom_signal::mark_order_paid"))
        .unwrap();
    let cascade = trace
        .iter()
        .position(|l| l == "pre_delete[models::Order] -> delete_customer::return_to_stock")
        .unwrap();
    assert!(refused < paid && paid < cascade, "{trace:#?}");
    assert_eq!(
        trace[cascade..cascade + 7],
        [
            "pre_delete[models::Order] -> delete_customer::return_to_stock",
            "post_delete[models::Profile] -> audit_log::audit_delete",
            "post_delete[models::Order] -> audit_log::audit_delete",
            "post_delete[models::Order] -> product_cache::invalidate_returned_product (queued until COMMIT)",
            "post_delete[models::Customer] -> audit_log::audit_delete",
            "after COMMIT  post_delete -> product_cache::invalidate_returned_product",
            "   deleted 3 rows: Profile 1, Order 1, Customer 1; Chair in stock again: 2",
        ]
    );
}

#[tokio::test]
async fn the_shop_session_runs_end_to_end_and_twice_in_the_same_folder() {
    let (run, dir, _trace) = sqlite_run().await;
    check_shop(&run).await;
    // A second run in the same folder starts from a fresh database and outbox.
    Run::prepare(dir.path()).unwrap();
    let db = ShopDb::sqlite_file(&dir.path().join("shop.db"))
        .await
        .unwrap();
    let again = Run::with_db(dir.path(), db, run.trace.clone()).unwrap();
    check_shop(&again).await;
}

#[tokio::test]
async fn the_shop_session_runs_on_postgresql() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "NOTE: DATABASE_URL is not set: the shop's PostgreSQL run is SKIPPED"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let schema = format!("shop_test_{}", std::process::id());
    let db = quietly(ShopDb::postgres(&url, Some(&schema)))
        .await
        .unwrap();
    let trace = Trace::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(trace.clone()));
    check_shop(&Run::with_db(dir.path(), db, trace).unwrap()).await;
}
