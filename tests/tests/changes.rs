//! What changed in a save (`Changes`): the previous row and the changed fields given to
//! `pre_save` and `post_save` receivers that ask for them, on every backend. The previous row
//! is read by a SELECT of the write's own (`FOR UPDATE` on PostgreSQL), and only when some
//! receiver of the model takes `Changes`: the statements each save runs are read from the
//! events sqlx logs. Rules: `docs/orm.md`, "What changed".
//!
//! Receivers are linked at build time, so each configuration of receivers has a model of its
//! own, all on the `orders` table. Every scenario works on rows of its own `run` (unique in the
//! test binary), and receivers record what they hear per run.

mod support;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use signals_orm::model_signals::{post_save, pre_save};
use signals_orm::{
    AnyModel, AnyTx, Changes, Model, ModelExt, OrmError, Persist, PostSave, PreSave, Tx, receiver,
};
use sqlx::Pool;
use support::{TestBackend, log, logged, statements};

const SCHEMA: &str = "
CREATE TABLE log (id {serial}, entry TEXT NOT NULL);
CREATE TABLE orders (
    id {serial},
    run TEXT NOT NULL,
    status TEXT NOT NULL,
    total BIGINT NOT NULL,
    note TEXT,
    paid_at TEXT
);
";

every_backend!(
    an_update_reports_the_previous_row_and_exactly_the_changed_fields,
    update_fields_limit_the_changed_fields,
    a_change_made_by_pre_save_is_in_post_save_changes,
    the_transition_filter_fires_only_from_pending_to_paid,
    an_insert_has_no_previous_row,
    the_previous_row_is_read_only_when_a_receiver_asks,
    a_runtime_receiver_asks_while_it_is_connected,
    a_row_deleted_before_the_save_has_no_previous_row,
    a_filtered_update_gives_each_row_its_previous_values,
    a_filtered_update_heard_only_by_post_save_changes_selects_first,
    bulk_update_gives_each_instance_its_previous_row,
);

// ---- models and receivers ---------------------------------------------------------------

/// Declares a model of its own on the `orders` table: each configuration of receivers hears
/// the saves of one such model only.
macro_rules! order_model {
    ($(#[$attr:meta])* $name:ident) => {
        $(#[$attr])*
        #[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
        #[model(table = "orders")]
        struct $name {
            #[model(primary_key)]
            id: Option<i64>,
            run: String,
            status: String,
            total: i64,
            note: Option<String>,
            paid_at: Option<String>,
        }

        impl $name {
            /// A new row of `run`, without note or payment.
            #[allow(dead_code)]
            fn new(run: &str, status: &str, total: i64) -> Self {
                $name {
                    id: None,
                    run: run.to_owned(),
                    status: status.to_owned(),
                    total,
                    note: None,
                    paid_at: None,
                }
            }
        }
    };
}

order_model!(
    /// Heard by `Changes` receivers in `pre_save` (a recorder, then a transition filter that
    /// stamps `paid_at`) and in `post_save` (a recorder).
    Order
);

order_model!(
    /// Heard by `PreSave` and `PostSave` receivers only: its saves read no previous row.
    Plain
);

order_model!(
    /// Heard by one `post_save` receiver taking `Changes` and the write's transaction, async.
    Audited
);

order_model!(
    /// Heard by a `PostSave` receiver at link time; a test connects a `Changes` one at runtime.
    Quiet
);

/// What the receivers heard, per run.
static HEARD: Mutex<BTreeMap<String, Vec<String>>> = Mutex::new(BTreeMap::new());

fn hear(run: &str, entry: String) {
    HEARD
        .lock()
        .unwrap()
        .entry(run.to_owned())
        .or_default()
        .push(entry);
}

/// What the receivers heard for `run`, and forget it.
fn heard(run: &str) -> Vec<String> {
    HEARD.lock().unwrap().remove(run).unwrap_or_default()
}

/// One line per payload: the signal, `created`, the previous row's status and total, the
/// changed fields.
fn entry<M: ?Sized>(
    signal: &str,
    ev: &Changes<'_, M>,
    previous: impl Fn(&M) -> (String, i64),
) -> String {
    let previous = ev
        .previous
        .map_or_else(|| "none".to_owned(), |p| format!("{:?}", previous(p)));
    format!(
        "{signal} created={} previous={previous} changed={:?}",
        ev.created,
        ev.changed_fields()
    )
}

fn status_total(o: &Order) -> (String, i64) {
    (o.status.clone(), o.total)
}

#[receiver(pre_save, sender = Order)]
fn order_pre(ev: Changes<'_, Order>) {
    hear(&ev.instance().run, entry("pre", &ev, status_total));
}

// Declared after `order_pre`, so it runs after it: `order_pre` does not see its change.
#[receiver(pre_save, sender = Order)]
fn stamp_when_paid(mut ev: Changes<'_, Order>) {
    if !ev.went(|o| &o.status, "pending", "paid") {
        return;
    }
    if let Some(order) = ev.instance_mut() {
        order.paid_at = Some(format!("stamped {}", order.total));
    }
}

#[receiver(post_save, sender = Order)]
fn order_post(ev: Changes<'_, Order>) {
    hear(&ev.instance().run, entry("post", &ev, status_total));
}

#[receiver(pre_save, sender = Plain)]
fn plain_pre(ev: PreSave<'_, Plain>) {
    hear(&ev.instance.run, "plain pre".to_owned());
}

#[receiver(post_save, sender = Plain)]
fn plain_post(ev: PostSave<'_, Plain>) {
    hear(&ev.instance.run, "plain post".to_owned());
}

#[receiver(post_save, sender = Audited)]
async fn audited_post(ev: Changes<'_, Audited>, tx: AnyTx<'_>) -> Result<(), OrmError> {
    let line = entry("audited", &ev, |a| (a.status.clone(), a.total));
    log(tx, format!("{} {line}", ev.instance().run)).await
}

#[receiver(post_save, sender = Quiet)]
fn quiet_post(ev: PostSave<'_, Quiet>) {
    hear(&ev.instance.run, "quiet post".to_owned());
}

// ---- helpers ---------------------------------------------------------------------------------

/// A text unique to one scenario on one backend.
fn run<DB: TestBackend>(scenario: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{scenario}-{}-{}",
        <DB as signals_orm::Backend>::NAME,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The statements of `ran` that are SELECTs.
fn selects(ran: &[String]) -> Vec<&String> {
    ran.iter().filter(|s| s.starts_with("SELECT")).collect()
}

/// The SELECT a save of a `Changes`-heard model runs before its UPDATE.
fn previous_select<DB: TestBackend>() -> String {
    let select =
        r#"SELECT "id", "run", "status", "total", "note", "paid_at" FROM "orders" WHERE "id" = $1"#;
    if <DB as signals_orm::Backend>::NAME == "postgres" {
        format!("{select} FOR UPDATE")
    } else {
        select.to_owned()
    }
}

const ALL: &str = r#"["run", "status", "total", "note", "paid_at"]"#;

// ---- scenarios ---------------------------------------------------------------------------------

async fn an_update_reports_the_previous_row_and_exactly_the_changed_fields<DB: TestBackend>(
    pool: Pool<DB>,
) where
    Order: Persist<DB>,
{
    let run = run::<DB>("update");
    let mut o = Order::new(&run, "pending", 10);
    o.save(&pool).await.unwrap();
    o.total = 20;
    o.note = Some("gift".into());
    o.save(&pool).await.unwrap();
    // Saved again unchanged: nothing changed, though the row is written.
    o.save(&pool).await.unwrap();
    assert_eq!(
        heard(&run),
        [
            format!("pre created=true previous=none changed={ALL}"),
            format!("post created=true previous=none changed={ALL}"),
            r#"pre created=false previous=("pending", 10) changed=["total", "note"]"#.to_owned(),
            r#"post created=false previous=("pending", 10) changed=["total", "note"]"#.to_owned(),
            r#"pre created=false previous=("pending", 20) changed=[]"#.to_owned(),
            r#"post created=false previous=("pending", 20) changed=[]"#.to_owned(),
        ]
    );
    // The previous row is the whole row as it was, and the save wrote the instance.
    let mut tx = Tx::begin(&pool).await.unwrap();
    let stored = Order::get(&mut tx, &o.id.unwrap()).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    assert_eq!(stored, o);
}

async fn update_fields_limit_the_changed_fields<DB: TestBackend>(pool: Pool<DB>)
where
    Order: Persist<DB>,
{
    let run = run::<DB>("fields");
    let mut o = Order::new(&run, "pending", 10);
    o.save(&pool).await.unwrap();
    heard(&run);
    o.total = 11;
    o.note = Some("not saved".into());
    o.status = "shipped".into();
    o.save_fields(&["total", "status"], &pool).await.unwrap();
    assert_eq!(
        heard(&run),
        [
            r#"pre created=false previous=("pending", 10) changed=["status", "total"]"#,
            r#"post created=false previous=("pending", 10) changed=["status", "total"]"#,
        ]
    );
    // `note` differs from the row but is not saved, so it is not listed; nor is a saved field
    // that did not change.
    o.save_fields(&["note", "total"], &pool).await.unwrap();
    assert_eq!(
        heard(&run),
        [
            r#"pre created=false previous=("shipped", 11) changed=["note"]"#,
            r#"post created=false previous=("shipped", 11) changed=["note"]"#,
        ]
    );
}

async fn a_change_made_by_pre_save_is_in_post_save_changes<DB: TestBackend>(pool: Pool<DB>)
where
    Order: Persist<DB>,
{
    let run = run::<DB>("stamp");
    let mut o = Order::new(&run, "pending", 7);
    o.save(&pool).await.unwrap();
    heard(&run);
    o.status = "paid".into();
    o.save(&pool).await.unwrap();
    // `order_pre` ran before `stamp_when_paid` set `paid_at`; `post_save` sees it written.
    assert_eq!(
        heard(&run),
        [
            r#"pre created=false previous=("pending", 7) changed=["status"]"#,
            r#"post created=false previous=("pending", 7) changed=["status", "paid_at"]"#,
        ]
    );
    assert_eq!(o.paid_at.as_deref(), Some("stamped 7"));
    let stored: Vec<String> = DB::strings(
        &pool,
        "SELECT paid_at FROM orders WHERE paid_at IS NOT NULL",
    )
    .await;
    assert!(stored.contains(&"stamped 7".to_owned()), "{stored:?}");
}

async fn the_transition_filter_fires_only_from_pending_to_paid<DB: TestBackend>(pool: Pool<DB>)
where
    Order: Persist<DB>,
{
    let run = run::<DB>("transition");
    // Inserted as paid: no previous row, so it went nowhere.
    let mut born_paid = Order::new(&run, "paid", 1);
    born_paid.save(&pool).await.unwrap();
    assert_eq!(born_paid.paid_at, None);
    // pending -> shipped -> paid: neither step is pending -> paid.
    let mut detour = Order::new(&run, "pending", 2);
    detour.save(&pool).await.unwrap();
    detour.status = "shipped".into();
    detour.save(&pool).await.unwrap();
    detour.status = "paid".into();
    detour.save(&pool).await.unwrap();
    assert_eq!(detour.paid_at, None);
    // pending -> pending (another field changed): no transition.
    let mut direct = Order::new(&run, "pending", 3);
    direct.save(&pool).await.unwrap();
    direct.total = 4;
    direct.save(&pool).await.unwrap();
    assert_eq!(direct.paid_at, None);
    // pending -> paid: the one that fires, in a caller's transaction too.
    direct.status = "paid".into();
    let mut tx = Tx::begin(&pool).await.unwrap();
    direct.save(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(direct.paid_at.as_deref(), Some("stamped 4"));
    // paid -> paid again: no second stamp.
    direct.paid_at = None;
    direct.save(&pool).await.unwrap();
    assert_eq!(direct.paid_at, None);
    heard(&run);
}

async fn an_insert_has_no_previous_row<DB: TestBackend>(pool: Pool<DB>)
where
    Order: Persist<DB>,
{
    let run = run::<DB>("insert");
    let mut generated = Order::new(&run, "pending", 1);
    let (saved, ran) = statements::of(generated.save(&pool)).await;
    saved.unwrap();
    assert!(
        selects(&ran).is_empty(),
        "an INSERT reads no previous row: {ran:#?}"
    );
    // `insert` of a given key, and `bulk_insert`: no previous row either.
    let mut keyed = Order::new(&run, "pending", 2);
    keyed.id = Some(generated.id.unwrap() + 1_000_000);
    let (saved, ran) = statements::of(keyed.insert(&pool)).await;
    saved.unwrap();
    assert!(selects(&ran).is_empty(), "{ran:#?}");
    let mut many = vec![Order::new(&run, "pending", 3), Order::new(&run, "paid", 4)];
    let (inserted, ran) = statements::of(Order::bulk_insert(&pool, &mut many)).await;
    assert_eq!(inserted.unwrap(), 2);
    assert!(selects(&ran).is_empty(), "{ran:#?}");
    let line = |signal: &str| format!("{signal} created=true previous=none changed={ALL}");
    assert_eq!(
        heard(&run),
        [
            line("pre"),
            line("post"),
            line("pre"),
            line("post"),
            line("pre"),
            line("pre"),
            line("post"),
            line("post"),
        ]
    );
}

async fn the_previous_row_is_read_only_when_a_receiver_asks<DB: TestBackend>(pool: Pool<DB>)
where
    Order: Persist<DB>,
    Plain: Persist<DB>,
    Audited: Persist<DB>,
{
    let run = run::<DB>("statements");
    let no_runtime_receiver = RUNTIME.lock().await;
    // Receivers that do not take `Changes`: the UPDATE alone.
    let mut plain = Plain::new(&run, "pending", 1);
    plain.save(&pool).await.unwrap();
    plain.total = 2;
    let (saved, ran) = statements::of(plain.save(&pool)).await;
    saved.unwrap();
    assert!(selects(&ran).is_empty(), "{ran:#?}");
    assert!(ran.iter().any(|s| s.starts_with("UPDATE")), "{ran:#?}");
    plain.total = 3;
    let (saved, ran) = statements::of(plain.save_fields(&["total"], &pool)).await;
    saved.unwrap();
    assert!(selects(&ran).is_empty(), "{ran:#?}");
    drop(no_runtime_receiver);

    // `Changes` receivers: exactly one SELECT of the row by key, before the UPDATE.
    let mut o = Order::new(&run, "pending", 1);
    o.save(&pool).await.unwrap();
    o.total = 2;
    let (saved, ran) = statements::of(o.save(&pool)).await;
    saved.unwrap();
    assert_eq!(selects(&ran), [&previous_select::<DB>()], "{ran:#?}");
    let select = ran.iter().position(|s| s.starts_with("SELECT"));
    let update = ran.iter().position(|s| s.starts_with("UPDATE"));
    assert!(select < update && update.is_some(), "{ran:#?}");
    let (saved, ran) = statements::of(o.save_fields(&["note"], &pool)).await;
    saved.unwrap();
    assert_eq!(selects(&ran), [&previous_select::<DB>()], "{ran:#?}");

    // One `post_save` receiver taking `Changes` and the transaction asks as well.
    let mut audited = Audited::new(&run, "pending", 5);
    let (saved, ran) = statements::of(audited.save(&pool)).await;
    saved.unwrap();
    assert!(selects(&ran).is_empty(), "an INSERT: {ran:#?}");
    audited.status = "paid".into();
    let (saved, ran) = statements::of(audited.save(&pool)).await;
    saved.unwrap();
    assert_eq!(selects(&ran), [&previous_select::<DB>()], "{ran:#?}");
    let logged: Vec<String> = logged(&pool)
        .await
        .into_iter()
        .filter(|l| l.starts_with(&run))
        .collect();
    assert_eq!(
        logged,
        [
            format!("{run} audited created=true previous=none changed={ALL}"),
            format!(r#"{run} audited created=false previous=("pending", 5) changed=["status"]"#),
        ]
    );
    heard(&run);
}

/// Held by the scenario that connects `Changes` receivers at runtime (one of `Quiet`, one of
/// every model), and by the checks that a model nobody asks for reads no row: while those
/// receivers are connected, every save of `Quiet`, and of every model, reads its row. The
/// backends of a scenario run in parallel.
static RUNTIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn a_runtime_receiver_asks_while_it_is_connected<DB: TestBackend>(pool: Pool<DB>)
where
    Quiet: Persist<DB>,
{
    let _one_at_a_time = RUNTIME.lock().await;
    let run = run::<DB>("runtime");
    let mut q = Quiet::new(&run, "pending", 1);
    q.save(&pool).await.unwrap();
    q.total = 2;
    let (saved, ran) = statements::of(q.save(&pool)).await;
    saved.unwrap();
    assert!(selects(&ran).is_empty(), "{ran:#?}");

    let mine = run.clone();
    let connection = pre_save.connect(move |ev: Changes<'_, Quiet>| {
        if ev.instance().run == mine {
            let line = entry("runtime pre", &ev, |q| (q.status.clone(), q.total));
            hear(&mine, line);
        }
    });
    // A receiver of every model asks too, and compares the same way.
    let mine = run.clone();
    let any = pre_save.connect(move |ev: Changes<'_, dyn AnyModel>| {
        let instance = ev.instance();
        if instance.meta().name == "Quiet" && format!("{instance:?}").contains(&mine) {
            let previous = ev.previous.map(|p| p.pk_value() == instance.pk_value());
            hear(
                &mine,
                format!(
                    "any pre same key={previous:?} changed={:?}",
                    ev.changed_fields()
                ),
            );
        }
    });
    let mine = run.clone();
    let post = post_save.connect(move |ev: Changes<'_, Quiet>, _tx: &mut Tx<DB>| {
        if ev.instance().run == mine {
            hear(
                &mine,
                format!("runtime post was={:?}", ev.was(|q| &q.total)),
            );
        }
    });
    q.total = 3;
    let (saved, ran) = statements::of(q.save(&pool)).await;
    saved.unwrap();
    assert_eq!(selects(&ran), [&previous_select::<DB>()], "{ran:#?}");
    drop(connection);
    drop(any);
    drop(post);

    q.total = 4;
    let (saved, ran) = statements::of(q.save(&pool)).await;
    saved.unwrap();
    assert!(selects(&ran).is_empty(), "disconnected: {ran:#?}");
    assert_eq!(
        heard(&run),
        [
            "quiet post",
            "quiet post",
            r#"runtime pre created=false previous=("pending", 2) changed=["total"]"#,
            r#"any pre same key=Some(true) changed=["total"]"#,
            "quiet post",
            "runtime post was=Some(2)",
            "quiet post",
        ]
    );
}

async fn a_row_deleted_before_the_save_has_no_previous_row<DB: TestBackend>(pool: Pool<DB>)
where
    Order: Persist<DB>,
{
    let run = run::<DB>("deleted");
    let mut o = Order::new(&run, "pending", 1);
    o.save(&pool).await.unwrap();
    let mut gone = o.clone();
    heard(&run);
    // Another transaction deletes the row, and commits while the save waits for it (on
    // PostgreSQL the save's `SELECT .. FOR UPDATE` waits for the row lock; on SQLite the save
    // waits for the write lock, or for the one connection of an in-memory pool).
    let mut deleter = Tx::begin(&pool).await.unwrap();
    let mut victim = o.clone();
    victim.delete(&mut deleter).await.unwrap();
    o.total = 2;
    let save = tokio::spawn({
        let pool = pool.clone();
        async move { o.save(&pool).await.map(|saved| (saved, o)) }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    deleter.commit().await.unwrap();
    let (saved, o) = save.await.unwrap().unwrap();
    // No row to read: `previous` is `None` and every field counts as changed; `save` then
    // inserts the row again.
    assert!(saved.created());
    assert_eq!(
        heard(&run),
        [
            format!("pre created=false previous=none changed={ALL}"),
            format!("post created=true previous=none changed={ALL}"),
        ]
    );
    let mut tx = Tx::begin(&pool).await.unwrap();
    assert_eq!(Order::get(&mut tx, &o.id.unwrap()).await.unwrap(), Some(o));
    tx.commit().await.unwrap();

    // `save_fields` of a row that is gone: `pre_save` without a previous row, then
    // `NotUpdated`, and nothing written.
    DB::run(
        &pool,
        format!("DELETE FROM orders WHERE id = {}", gone.id.unwrap()),
    )
    .await;
    gone.total = 5;
    let error = gone.save_fields(&["total"], &pool).await.unwrap_err();
    assert!(matches!(error, OrmError::NotUpdated { .. }), "{error:?}");
    assert_eq!(
        heard(&run),
        [r#"pre created=false previous=none changed=["total"]"#]
    );
}

async fn a_filtered_update_gives_each_row_its_previous_values<DB: TestBackend>(pool: Pool<DB>)
where
    Order: Persist<DB>,
{
    let run = run::<DB>("query-update");
    for (status, total) in [("pending", 1), ("paid", 2), ("pending", 3)] {
        Order::new(&run, status, total).save(&pool).await.unwrap();
    }
    heard(&run);
    let c = Order::columns();
    let updated = Order::filter(c.run.eq(run.clone()))
        .update(&pool, [c.status.set("paid".to_owned())])
        .await
        .unwrap();
    assert_eq!(updated, 3);
    // Only the assigned field can change; `stamp_when_paid` fires for the pending rows, but
    // `paid_at` is not assigned, so it is not written, and `post_save` (the row as written)
    // does not list it. `pre_save` comes by key; `post_save` in the order the UPDATE returned
    // its rows, each matched to its previous row by key.
    let mut heard = heard(&run);
    heard[3..].sort();
    assert_eq!(
        heard,
        [
            r#"pre created=false previous=("pending", 1) changed=["status"]"#,
            r#"pre created=false previous=("paid", 2) changed=[]"#,
            r#"pre created=false previous=("pending", 3) changed=["status"]"#,
            r#"post created=false previous=("paid", 2) changed=[]"#,
            r#"post created=false previous=("pending", 1) changed=["status"]"#,
            r#"post created=false previous=("pending", 3) changed=["status"]"#,
        ]
    );
}

async fn a_filtered_update_heard_only_by_post_save_changes_selects_first<DB: TestBackend>(
    pool: Pool<DB>,
) where
    Audited: Persist<DB>,
    Quiet: Persist<DB>,
{
    let run = run::<DB>("query-post");
    for total in [1, 2] {
        let mut a = Audited::new(&run, "pending", total);
        a.save(&pool).await.unwrap();
    }
    let c = Audited::columns();
    let (updated, ran) = statements::of(
        Audited::filter(c.run.eq(run.clone()) & c.total.eq(2))
            .update(&pool, [c.total.set(20), c.note.set(Some("x".to_owned()))]),
    )
    .await;
    assert_eq!(updated.unwrap(), 1);
    // The rows are selected (and locked) first, then updated by key.
    assert_eq!(selects(&ran).len(), 1, "{ran:#?}");
    assert!(ran[0].starts_with("SELECT"), "{ran:#?}");
    let logged: Vec<String> = logged(&pool)
        .await
        .into_iter()
        .filter(|l| l.starts_with(&run))
        .collect();
    assert_eq!(
        logged[2..],
        [format!(
            r#"{run} audited created=false previous=("pending", 2) changed=["total", "note"]"#
        )]
    );
    // A model only `post_save` receivers hear, none taking `Changes`, keeps its one
    // `UPDATE .. RETURNING`.
    let _no_runtime_receiver = RUNTIME.lock().await;
    let c = Quiet::columns();
    let (updated, ran) =
        statements::of(Quiet::filter(c.run.eq(run.clone())).update(&pool, [c.total.set(0)])).await;
    assert_eq!(updated.unwrap(), 2);
    assert!(selects(&ran).is_empty(), "{ran:#?}");
    assert!(ran[0].starts_with("UPDATE"), "{ran:#?}");
    heard(&run);
}

async fn bulk_update_gives_each_instance_its_previous_row<DB: TestBackend>(pool: Pool<DB>)
where
    Order: Persist<DB>,
{
    let run = run::<DB>("bulk");
    let mut orders = vec![
        Order::new(&run, "pending", 1),
        Order::new(&run, "pending", 2),
    ];
    Order::bulk_insert(&pool, &mut orders).await.unwrap();
    heard(&run);
    orders[0].total = 10;
    orders[1].status = "paid".into();
    orders[1].note = Some("not saved".into());
    let (updated, ran) =
        statements::of(Order::bulk_update(&pool, &mut orders, &["total", "status"])).await;
    assert_eq!(updated.unwrap(), 2);
    // One SELECT of both rows by key, before the UPDATE.
    assert_eq!(selects(&ran).len(), 1, "{ran:#?}");
    assert!(ran[0].starts_with("SELECT"), "{ran:#?}");
    assert_eq!(
        heard(&run),
        [
            r#"pre created=false previous=("pending", 1) changed=["total"]"#,
            r#"pre created=false previous=("pending", 2) changed=["status"]"#,
            r#"post created=false previous=("pending", 1) changed=["total"]"#,
            r#"post created=false previous=("pending", 2) changed=["status"]"#,
        ]
    );
    // `stamp_when_paid` set `paid_at`, which `bulk_update` does not save (not in `fields`).
    assert_eq!(orders[1].paid_at.as_deref(), Some("stamped 2"));
}

// ---- without a database ---------------------------------------------------------------------

/// A field type without `PartialEq`: always counts as changed.
#[derive(Clone, Debug, serde::Serialize, sqlx::Type)]
#[sqlx(transparent)]
struct Opaque(String);

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "things")]
struct Thing {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
    blob: Opaque,
    weight: f64,
}

#[test]
fn partial_eq_decides_and_a_type_without_it_always_changed() {
    let before = Thing {
        id: Some(1),
        name: "a".into(),
        blob: Opaque("x".into()),
        weight: 1.0,
    };
    let same = before.clone();
    let changes = Changes::post_save(&same, Some(&before));
    assert_eq!(changes.changed_fields(), ["blob"]);
    assert!(changes.changed("blob") && !changes.changed("name"));
    assert_eq!(changes.was(|t| &t.name).map(String::as_str), Some("a"));

    let after = Thing {
        name: "b".into(),
        weight: f64::NAN,
        ..before.clone()
    };
    let changes = Changes::post_save(&after, Some(&before));
    assert_eq!(changes.changed_fields(), ["name", "blob", "weight"]);
    assert!(changes.went(|t| &t.name, "a", "b"));
    assert!(!changes.went(|t| &t.name, "b", "a"));
    assert!(changes.became(|t| &t.name, "b"));
    let limited = Changes::post_save(&after, Some(&before)).with_update_fields(&["weight"]);
    assert_eq!(limited.changed_fields(), ["weight"]);

    // Receivers of every model compare the same way, through `dyn AnyModel`.
    let erased = Changes::post_save(&after as &dyn AnyModel, Some(&before as &dyn AnyModel));
    assert_eq!(erased.changed_fields(), ["name", "blob", "weight"]);
    // No previous row: every field, and nothing went anywhere.
    let new = Changes::post_save(&after, None);
    assert!(new.created);
    assert_eq!(new.changed_fields(), ["name", "blob", "weight"]);
    assert!(!new.went(|t| &t.name, "a", "b"));
    assert!(new.became(|t| &t.name, "b"));
}

#[test]
fn a_pre_save_payload_lends_the_instance_and_a_post_save_one_does_not() {
    let before = Order::new("unit", "pending", 5);
    let mut after = Order::new("unit", "paid", 5);
    stamp_when_paid(Changes::pre_save(&mut after, Some(&before)));
    assert_eq!(after.paid_at.as_deref(), Some("stamped 5"));
    let mut post = Changes::post_save(&after, Some(&before));
    assert!(post.instance_mut().is_none());
    assert_eq!(post.changed_fields(), ["status", "paid_at"]);
}
