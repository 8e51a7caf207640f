//! Model signals around real writes, on SQLite (memory and file) and PostgreSQL: payloads,
//! `created`, `update_fields`, deletes, atomicity of every receiver's failure, `on_commit` with
//! the savepoint rules, nested saves, concurrency. Receivers record into a `log` table through
//! the write's own transaction, so what a test reads is what was committed.

mod support;

use std::sync::Mutex;

use signals_orm::{
    AnyTx, Committed, Model, ModelExt, OrmError, Persist, PostDelete, PostSave, PreDelete, PreSave,
    SendError, Tx, receiver,
};
use sqlx::Pool;
use support::{Log, TestBackend, log, logged};

const SCHEMA: &str = "
CREATE TABLE log (id {serial}, entry TEXT NOT NULL);
CREATE TABLE people (id {serial}, name TEXT NOT NULL, email_address TEXT NOT NULL);
CREATE TABLE skus (code TEXT PRIMARY KEY, stock BIGINT NOT NULL);
CREATE TABLE docs (id {serial}, title TEXT NOT NULL);
CREATE TABLE fragile (id {serial}, name TEXT NOT NULL);
CREATE TABLE orders (id {serial}, item TEXT NOT NULL);
CREATE TABLE parents (id {serial}, name TEXT NOT NULL);
CREATE TABLE children (id {serial}, parent_id BIGINT NOT NULL REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE accounts (id {serial}, name TEXT NOT NULL);
CREATE TABLE profiles (id {serial}, account_id BIGINT NOT NULL, bio TEXT NOT NULL);
CREATE TABLE workers (id {serial}, n BIGINT NOT NULL);
CREATE TABLE typed_tx (id {serial}, name TEXT NOT NULL);
";

every_backend!(
    save_payloads_created_and_pre_save_changes,
    update_fields_rules,
    application_keys,
    delete_signals_run_inside_the_transaction,
    a_failing_receiver_of_each_signal_leaves_nothing_behind,
    a_failure_inside_a_callers_transaction_makes_it_rollback_only,
    on_commit_runs_once_after_commit_and_never_after_rollback,
    on_commit_follows_the_savepoint_rules,
    a_failed_commit_runs_no_callback,
    a_callers_failed_statement_never_lets_callbacks_run_after_a_rollback,
    receivers_save_other_models_in_the_same_transaction,
    concurrent_saves_through_one_pool_lose_nothing,
    a_receiver_typed_for_one_backend_names_the_mismatch,
);

// ---- save: payloads, created, pre_save changes --------------------------------------------

#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "people")]
struct Person {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
    #[model(column = "email_address")]
    email: String,
}

#[receiver(pre_save, sender = Person)]
async fn person_pre_save(ev: PreSave<'_, Person>, tx: AnyTx<'_>) -> Result<(), OrmError> {
    let mut chars = ev.instance.name.chars();
    ev.instance.name = chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default();
    let entry = format!(
        "pre_save {} pk={:?} raw={} fields={:?} using={}",
        ev.instance.name, ev.instance.id, ev.raw, ev.update_fields, ev.using
    );
    log(tx, entry).await
}

#[receiver(post_save, sender = Person)]
async fn person_post_save(ev: PostSave<'_, Person>, tx: AnyTx<'_>) -> Result<(), OrmError> {
    let entry = format!(
        "post_save {} pk={:?} created={} raw={} fields={:?}",
        ev.instance.name, ev.instance.id, ev.created, ev.raw, ev.update_fields
    );
    log(tx, entry).await
}

async fn save_payloads_created_and_pre_save_changes<DB: TestBackend>(pool: Pool<DB>)
where
    Person: Persist<DB>,
    Log: Persist<DB>,
{
    let using = <DB as signals_orm::Backend>::NAME;
    let mut ada = Person {
        id: None,
        name: "ada".into(),
        email: "ada@example.com".into(),
    };
    assert!(ada.save(&pool).await.unwrap().created());
    let id = ada.id.expect("the generated key is set after the INSERT");
    assert_eq!(ada.name, "Ada", "pre_save changed the instance");
    let stored = Person::get(&pool, &id).await.unwrap().unwrap();
    assert_eq!(
        stored, ada,
        "the change made in pre_save was written (and `column` maps email)"
    );
    assert_eq!(
        logged(&pool).await,
        [
            format!("pre_save Ada pk=None raw=false fields=None using={using}"),
            format!("post_save Ada pk=Some({id}) created=true raw=false fields=None"),
        ]
    );

    ada.email = "countess@example.com".into();
    assert_eq!(ada.save(&pool).await.unwrap(), signals_orm::Saved::Updated);
    ada.save_raw(&pool).await.unwrap();
    let entries = logged(&pool).await;
    assert_eq!(
        entries[3],
        format!("post_save Ada pk=Some({id}) created=false raw=false fields=None")
    );
    assert_eq!(
        entries[4],
        format!("pre_save Ada pk=Some({id}) raw=true fields=None using={using}")
    );
    assert_eq!(
        entries[5],
        format!("post_save Ada pk=Some({id}) created=false raw=true fields=None")
    );

    // A key given for a row that does not exist: UPDATE matches nothing, so it INSERTs.
    let mut grace = Person {
        id: Some(id + 100),
        name: "grace".into(),
        email: "g@example.com".into(),
    };
    assert!(grace.save(&pool).await.unwrap().created());
    assert!(Person::get(&pool, &(id + 100)).await.unwrap().is_some());
    assert_eq!(Person::get(&pool, &(id + 999)).await.unwrap(), None);
}

async fn update_fields_rules<DB: TestBackend>(pool: Pool<DB>)
where
    Person: Persist<DB>,
    Log: Persist<DB>,
{
    let mut p = Person {
        id: None,
        name: "linus".into(),
        email: "l@example.com".into(),
    };
    p.save(&pool).await.unwrap();
    let id = p.id.unwrap();
    let before = logged(&pool).await.len();

    // Empty: no SQL, no signals.
    assert_eq!(
        p.save_fields(&[], &pool).await.unwrap(),
        signals_orm::Saved::Skipped
    );
    assert_eq!(logged(&pool).await.len(), before);

    // Unknown name: an error before any signal.
    let error = p.save_fields(&["emial"], &pool).await.unwrap_err();
    assert!(
        matches!(&error, OrmError::UnknownField { field, .. } if field == "emial"),
        "{error}"
    );
    assert!(error.to_string().contains("Person"), "{error}");
    assert_eq!(logged(&pool).await.len(), before);

    // Only the named column is written, duplicates count once, receivers see the field list.
    p.email = "torvalds@example.com".into();
    p.name = "not written".into();
    p.save_fields(&["email", "email"], &pool).await.unwrap();
    let stored = Person::get(&pool, &id).await.unwrap().unwrap();
    assert_eq!(
        (stored.name.as_str(), stored.email.as_str()),
        ("Linus", "torvalds@example.com")
    );
    let entries = logged(&pool).await;
    assert!(
        entries[before].ends_with(r#"fields=Some(["email"]) using=sqlite"#)
            || entries[before].contains(r#"fields=Some(["email"])"#)
    );
    assert_eq!(
        entries[before + 1],
        format!(
            r#"post_save Not written pk=Some({id}) created=false raw=false fields=Some(["email"])"#
        )
    );

    // No row with that key: NotUpdated, and the transaction (with pre_save's log row) is undone.
    let mut ghost = Person {
        id: Some(id + 500),
        name: "ghost".into(),
        email: "-".into(),
    };
    let error = ghost.save_fields(&["name"], &pool).await.unwrap_err();
    assert!(
        matches!(error, OrmError::NotUpdated { model: "Person" }),
        "{error}"
    );
    assert_eq!(logged(&pool).await.len(), before + 2);
    assert_eq!(Person::get(&pool, &(id + 500)).await.unwrap(), None);
    // No key at all.
    let mut unsaved = Person {
        id: None,
        name: "x".into(),
        email: "x".into(),
    };
    assert!(matches!(
        unsaved.save_fields(&["name"], &pool).await,
        Err(OrmError::NoPrimaryKey { .. })
    ));
}

// ---- application-given keys ---------------------------------------------------------------

#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "skus")]
struct Sku {
    #[model(primary_key)]
    code: String,
    stock: i64,
}

async fn application_keys<DB: TestBackend>(pool: Pool<DB>)
where
    Sku: Persist<DB>,
{
    let mut pen = Sku {
        code: "PEN-1".into(),
        stock: 10,
    };
    assert_eq!(pen.save(&pool).await.unwrap(), signals_orm::Saved::Created);
    pen.stock = 9;
    assert_eq!(pen.save(&pool).await.unwrap(), signals_orm::Saved::Updated);
    assert_eq!(
        Sku::get(&pool, &"PEN-1".to_owned()).await.unwrap(),
        Some(pen.clone())
    );
    // insert() is one INSERT: a duplicate key is the database's error and changes nothing.
    let mut dup = Sku {
        code: "PEN-1".into(),
        stock: 0,
    };
    assert!(matches!(
        dup.insert(&pool).await,
        Err(OrmError::Database { .. })
    ));
    assert_eq!(
        Sku::get(&pool, &"PEN-1".to_owned())
            .await
            .unwrap()
            .unwrap()
            .stock,
        9
    );
    assert_eq!(pen.delete(&pool).await.unwrap().total(), 1);
    assert_eq!(
        pen.code, "PEN-1",
        "an application key stays set after delete"
    );
}

// ---- delete -------------------------------------------------------------------------------

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "docs")]
struct Doc {
    #[model(primary_key)]
    id: Option<i64>,
    title: String,
}

/// Rows with this document's key, counted through the delete's own transaction.
async fn doc_rows(tx: AnyTx<'_>, id: i64) -> Result<i64, sqlx::Error> {
    const SQL: &str = "SELECT COUNT(*) FROM docs WHERE id = $1";
    match tx {
        AnyTx::Sqlite(tx) => sqlx::query_scalar(SQL).bind(id).fetch_one(tx.conn()).await,
        AnyTx::Postgres(tx) => sqlx::query_scalar(SQL).bind(id).fetch_one(tx.conn()).await,
    }
}

#[receiver(pre_delete, sender = Doc)]
async fn doc_pre_delete(
    ev: PreDelete<'_, Doc>,
    mut tx: AnyTx<'_>,
) -> Result<(), signals_orm::BoxError> {
    let id = ev.instance.id.ok_or("pre_delete sees the key")?;
    let rows = doc_rows(tx.reborrow(), id).await?;
    let same = ev.origin.is(ev.instance);
    log(
        tx,
        format!(
            "pre_delete {} rows={rows} origin_is_instance={same} using={}",
            ev.instance.title, ev.using
        ),
    )
    .await?;
    Ok(())
}

#[receiver(post_delete, sender = Doc)]
async fn doc_post_delete(
    ev: PostDelete<'_, Doc>,
    mut tx: AnyTx<'_>,
) -> Result<(), signals_orm::BoxError> {
    let id = ev.instance.id.ok_or("post_delete still sees the key")?;
    let rows = doc_rows(tx.reborrow(), id).await?;
    log(
        tx,
        format!(
            "post_delete {} rows={rows} origin={}",
            ev.instance.title,
            ev.origin.meta().table
        ),
    )
    .await?;
    Ok(())
}

async fn delete_signals_run_inside_the_transaction<DB: TestBackend>(pool: Pool<DB>)
where
    Doc: Persist<DB>,
    Log: Persist<DB>,
{
    let using = <DB as signals_orm::Backend>::NAME;
    let mut doc = Doc {
        id: None,
        title: "draft".into(),
    };
    doc.save(&pool).await.unwrap();
    assert_eq!(doc.delete(&pool).await.unwrap().total(), 1);
    assert_eq!(
        doc.id, None,
        "a generated key is unset after delete, as Django sets pk = None"
    );
    assert_eq!(
        logged(&pool).await,
        [
            format!("pre_delete draft rows=1 origin_is_instance=true using={using}"),
            "post_delete draft rows=0 origin=docs".to_owned()
        ]
    );
    let error = doc.delete(&pool).await.unwrap_err();
    assert!(
        matches!(error, OrmError::NoPrimaryKey { model: "Doc", .. }),
        "{error}"
    );
    assert_eq!(
        logged(&pool).await.len(),
        2,
        "no signal for an instance without key"
    );
}

// ---- atomicity ----------------------------------------------------------------------------

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "fragile")]
struct Fragile {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

/// Logs, then fails when the instance's name asks this signal to fail.
async fn fragile(signal: &str, name: &str, tx: AnyTx<'_>) -> Result<(), signals_orm::BoxError> {
    log(tx, format!("{signal} {name}")).await?;
    if name == format!("fail-{signal}") {
        Err(format!("{signal} refused {name}").into())
    } else {
        Ok(())
    }
}

#[receiver(pre_save, sender = Fragile)]
async fn fragile_pre_save(
    ev: PreSave<'_, Fragile>,
    tx: AnyTx<'_>,
) -> Result<(), signals_orm::BoxError> {
    fragile("pre_save", &ev.instance.name, tx).await
}
#[receiver(post_save, sender = Fragile)]
async fn fragile_post_save(
    ev: PostSave<'_, Fragile>,
    tx: AnyTx<'_>,
) -> Result<(), signals_orm::BoxError> {
    fragile("post_save", &ev.instance.name, tx).await
}
#[receiver(pre_delete, sender = Fragile)]
async fn fragile_pre_delete(
    ev: PreDelete<'_, Fragile>,
    tx: AnyTx<'_>,
) -> Result<(), signals_orm::BoxError> {
    fragile("pre_delete", &ev.instance.name, tx).await
}
#[receiver(post_delete, sender = Fragile)]
async fn fragile_post_delete(
    ev: PostDelete<'_, Fragile>,
    tx: AnyTx<'_>,
) -> Result<(), signals_orm::BoxError> {
    fragile("post_delete", &ev.instance.name, tx).await
}

async fn a_failing_receiver_of_each_signal_leaves_nothing_behind<DB: TestBackend>(pool: Pool<DB>)
where
    Fragile: Persist<DB>,
    Log: Persist<DB>,
{
    for signal in ["pre_save", "post_save"] {
        let mut f = Fragile {
            id: None,
            name: format!("fail-{signal}"),
        };
        let error = f.save(&pool).await.unwrap_err();
        let OrmError::Signal(SendError::Receiver {
            signal: s,
            receiver,
            sender,
            ..
        }) = &error
        else {
            panic!("{error}")
        };
        assert_eq!(*s, signal);
        assert_eq!(*receiver, format!("orm::fragile_{signal}"));
        assert!(sender.ends_with("Fragile"), "{sender}");
        assert_eq!(
            DB::scalar(&pool, "SELECT COUNT(*) FROM fragile").await,
            0,
            "{signal}: no row"
        );
        assert!(
            logged(&pool).await.is_empty(),
            "{signal}: no receiver write either"
        );
    }
    for signal in ["pre_delete", "post_delete"] {
        let mut f = Fragile {
            id: None,
            name: format!("fail-{signal}"),
        };
        f.save(&pool).await.unwrap();
        let writes = logged(&pool).await.len();
        let error = f.delete(&pool).await.unwrap_err();
        assert!(
            format!("{error:#}").contains(&format!("{signal} refused")),
            "{error}"
        );
        assert!(f.id.is_some(), "a failed delete keeps the key");
        assert_eq!(
            DB::scalar(
                &pool,
                "SELECT COUNT(*) FROM fragile WHERE name LIKE 'fail-%delete'"
            )
            .await,
            1,
            "{signal}: row kept"
        );
        assert_eq!(
            logged(&pool).await.len(),
            writes,
            "{signal}: the receivers' writes are undone"
        );
        DB::exec(&pool, "DELETE FROM fragile").await;
    }
}

async fn a_failure_inside_a_callers_transaction_makes_it_rollback_only<DB: TestBackend>(
    pool: Pool<DB>,
) where
    Fragile: Persist<DB>,
    Log: Persist<DB>,
{
    // Without a savepoint: the transaction can only roll back, and commit says why.
    let mut tx = Tx::begin(&pool).await.unwrap();
    Fragile {
        id: None,
        name: "kept?".into(),
    }
    .save(&mut tx)
    .await
    .unwrap();
    let error = Fragile {
        id: None,
        name: "fail-post_save".into(),
    }
    .save(&mut tx)
    .await
    .unwrap_err();
    assert!(
        tx.rollback_only().unwrap().contains("post_save refused"),
        "{error}"
    );
    let next = Fragile {
        id: None,
        name: "later".into(),
    }
    .save(&mut tx)
    .await
    .unwrap_err();
    assert!(matches!(next, OrmError::RollbackOnly { .. }), "{next}");
    let commit = tx.commit().await.unwrap_err();
    assert!(
        matches!(&commit, OrmError::RollbackOnly { reason } if reason.contains("post_save refused")),
        "{commit}"
    );
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM fragile").await, 0);
    assert!(logged(&pool).await.is_empty());

    // With a savepoint (Tx::atomic): the failed write is undone and the rest commits.
    let mut tx = Tx::begin(&pool).await.unwrap();
    Fragile {
        id: None,
        name: "kept".into(),
    }
    .save(&mut tx)
    .await
    .unwrap();
    let failed: Result<(), OrmError> = tx
        .atomic(|tx| {
            Box::pin(async move {
                Fragile {
                    id: None,
                    name: "fail-pre_save".into(),
                }
                .save(tx)
                .await
                .map(drop)
            })
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(
        tx.rollback_only(),
        None,
        "rolling back the savepoint clears the mark"
    );
    tx.commit().await.unwrap();
    assert_eq!(
        DB::strings(&pool, "SELECT name FROM fragile").await,
        ["kept"]
    );
    assert_eq!(logged(&pool).await, ["pre_save kept", "post_save kept"]);
}

// ---- on_commit ----------------------------------------------------------------------------

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "orders")]
struct Order {
    #[model(primary_key)]
    id: Option<i64>,
    item: String,
}

/// Items confirmed after COMMIT; every test uses its own item names (tests run in parallel).
static CONFIRMED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn confirmed(prefix: &str) -> Vec<String> {
    CONFIRMED
        .lock()
        .unwrap()
        .iter()
        .filter(|i| i.starts_with(prefix))
        .cloned()
        .collect()
}

#[receiver(post_save, sender = Order, on_commit)]
async fn confirm_order(ev: Committed<Order>) -> Result<(), String> {
    tokio::task::yield_now().await;
    let id = ev.instance.id.ok_or("the copy has the generated key")?;
    assert!(id > 0 && ev.created && ev.signal == "post_save");
    if ev.instance.item.ends_with("explode") {
        return Err(format!("cannot confirm {}", ev.instance.item));
    }
    CONFIRMED.lock().unwrap().push(ev.instance.item);
    Ok(())
}

fn unique(tag: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!(
        "{tag}{}-",
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    )
}

async fn on_commit_runs_once_after_commit_and_never_after_rollback<DB: TestBackend>(pool: Pool<DB>)
where
    Order: Persist<DB>,
{
    let p = unique("oc");
    // A pool write commits its own transaction, then runs the receiver.
    Order {
        id: None,
        item: format!("{p}pool"),
    }
    .save(&pool)
    .await
    .unwrap();
    assert_eq!(confirmed(&p), [format!("{p}pool")]);

    // Inside a transaction: nothing before COMMIT, once after, in registration order.
    let mut tx = Tx::begin(&pool).await.unwrap();
    Order {
        id: None,
        item: format!("{p}a"),
    }
    .save(&mut tx)
    .await
    .unwrap();
    let q = p.clone();
    tx.on_commit(
        move || async move { CONFIRMED.lock().unwrap().push(format!("{q}user-callback")) },
    );
    Order {
        id: None,
        item: format!("{p}b"),
    }
    .save(&mut tx)
    .await
    .unwrap();
    assert_eq!(confirmed(&p).len(), 1, "nothing runs before COMMIT");
    let report = tx.commit().await.unwrap();
    assert_eq!(report.ran, 3);
    assert!(report.failures.is_empty());
    assert_eq!(
        confirmed(&p),
        [
            format!("{p}pool"),
            format!("{p}a"),
            format!("{p}user-callback"),
            format!("{p}b")
        ]
    );

    // Rolled back or dropped: never.
    let mut tx = Tx::begin(&pool).await.unwrap();
    Order {
        id: None,
        item: format!("{p}rolled-back"),
    }
    .save(&mut tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    let mut tx = Tx::begin(&pool).await.unwrap();
    Order {
        id: None,
        item: format!("{p}dropped"),
    }
    .save(&mut tx)
    .await
    .unwrap();
    drop(tx);
    assert_eq!(confirmed(&p).len(), 4);
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM orders").await, 3);

    // A failing callback does not undo the commit; it is reported, naming the receiver.
    let mut tx = Tx::begin(&pool).await.unwrap();
    Order {
        id: None,
        item: format!("{p}explode"),
    }
    .save(&mut tx)
    .await
    .unwrap();
    let report = tx.commit().await.unwrap();
    assert_eq!(report.failures.len(), 1);
    let failure = report.failures[0].to_string();
    assert!(
        failure.contains("orm::confirm_order")
            && failure.contains("post_save")
            && failure.contains("Order"),
        "{failure}"
    );
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM orders").await, 4);
}

async fn on_commit_follows_the_savepoint_rules<DB: TestBackend>(pool: Pool<DB>)
where
    Order: Persist<DB>,
{
    let p = unique("sp");
    let mut tx = Tx::begin(&pool).await.unwrap();
    Order {
        id: None,
        item: format!("{p}outer"),
    }
    .save(&mut tx)
    .await
    .unwrap();
    tx.savepoint().await.unwrap();
    Order {
        id: None,
        item: format!("{p}rolled-back-savepoint"),
    }
    .save(&mut tx)
    .await
    .unwrap();
    tx.rollback_to_savepoint().await.unwrap();
    tx.savepoint().await.unwrap();
    tx.savepoint().await.unwrap();
    Order {
        id: None,
        item: format!("{p}released-twice"),
    }
    .save(&mut tx)
    .await
    .unwrap();
    tx.release_savepoint().await.unwrap();
    tx.release_savepoint().await.unwrap();
    assert!(matches!(
        tx.release_savepoint().await,
        Err(OrmError::NoSavepoint)
    ));
    assert!(confirmed(&p).is_empty());
    tx.commit().await.unwrap();
    assert_eq!(
        confirmed(&p),
        [format!("{p}outer"), format!("{p}released-twice")]
    );
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM orders").await, 2);
}

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "children")]
struct Child {
    #[model(primary_key)]
    id: Option<i64>,
    parent_id: i64,
}

static CHILDREN_CONFIRMED: Mutex<Vec<i64>> = Mutex::new(Vec::new());

#[receiver(post_save, sender = Child, on_commit)]
fn child_confirmed(ev: Committed<Child>) {
    CHILDREN_CONFIRMED
        .lock()
        .unwrap()
        .push(ev.instance.parent_id);
}

async fn a_failed_commit_runs_no_callback<DB: TestBackend>(pool: Pool<DB>)
where
    Child: Persist<DB>,
{
    // The foreign key is checked at COMMIT (deferred), so COMMIT itself fails.
    let missing_parent = 1_000_000 + i64::from(std::process::id());
    let mut tx = Tx::begin(&pool).await.unwrap();
    Child {
        id: None,
        parent_id: missing_parent,
    }
    .save(&mut tx)
    .await
    .unwrap();
    let error = tx.commit().await.unwrap_err();
    assert!(matches!(error, OrmError::Database { .. }), "{error}");
    assert!(!CHILDREN_CONFIRMED.lock().unwrap().contains(&missing_parent));
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM children").await, 0);
}

async fn a_callers_failed_statement_never_lets_callbacks_run_after_a_rollback<DB: TestBackend>(
    pool: Pool<DB>,
) where
    Order: Persist<DB>,
{
    let p = unique("ab");
    let mut tx = Tx::begin(&pool).await.unwrap();
    Order {
        id: None,
        item: format!("{p}kept?"),
    }
    .save(&mut tx)
    .await
    .unwrap();
    DB::fail_in(&mut tx).await;
    let committed = tx.commit().await;
    if <DB as signals_orm::Backend>::NAME == "postgres" {
        // PostgreSQL aborted the transaction: COMMIT would silently roll back, so it is refused.
        let error = committed.unwrap_err();
        assert!(format!("{error:#}").contains("aborted"), "{error:#}");
        assert!(confirmed(&p).is_empty(), "no callback after a rollback");
        assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM orders").await, 0);
    } else {
        // SQLite undoes only the failed statement; the transaction commits and the callback runs.
        committed.unwrap();
        assert_eq!(confirmed(&p), [format!("{p}kept?")]);
        assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM orders").await, 1);
    }
}

// ---- nested saves -------------------------------------------------------------------------

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "accounts")]
struct Account {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "profiles")]
struct Profile {
    #[model(primary_key)]
    id: Option<i64>,
    account_id: i64,
    bio: String,
}

#[receiver(post_save, sender = Account)]
async fn create_profile(ev: PostSave<'_, Account>, tx: AnyTx<'_>) -> Result<(), OrmError> {
    if !ev.created {
        return Ok(());
    }
    let bio = if ev.instance.name == "bad" {
        "fail".to_owned()
    } else {
        format!("{}'s profile", ev.instance.name)
    };
    let mut profile = Profile {
        id: None,
        account_id: ev.instance.id.unwrap_or_default(),
        bio,
    };
    match tx {
        AnyTx::Sqlite(tx) => profile.save(tx).await?,
        AnyTx::Postgres(tx) => profile.save(tx).await?,
    };
    Ok(())
}

#[receiver(post_save, sender = Profile)]
async fn check_profile(
    ev: PostSave<'_, Profile>,
    tx: AnyTx<'_>,
) -> Result<(), signals_orm::BoxError> {
    if ev.instance.bio == "fail" {
        return Err("profile rejected".into());
    }
    log(
        tx,
        format!(
            "profile {} for account {}",
            ev.instance.bio, ev.instance.account_id
        ),
    )
    .await?;
    Ok(())
}

async fn receivers_save_other_models_in_the_same_transaction<DB: TestBackend>(pool: Pool<DB>)
where
    Account: Persist<DB>,
    Profile: Persist<DB>,
    Log: Persist<DB>,
{
    let mut account = Account {
        id: None,
        name: "kim".into(),
    };
    account.save(&pool).await.unwrap();
    let id = account.id.unwrap();
    assert_eq!(
        logged(&pool).await,
        [format!("profile kim's profile for account {id}")]
    );
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM profiles").await, 1);
    account.save(&pool).await.unwrap();
    assert_eq!(
        DB::scalar(&pool, "SELECT COUNT(*) FROM profiles").await,
        1,
        "only on create"
    );

    // A failure two levels down undoes the account, the profile and every log row.
    let error = Account {
        id: None,
        name: "bad".into(),
    }
    .save(&pool)
    .await
    .unwrap_err();
    assert!(
        format!("{error:#}").contains("create_profile")
            && format!("{error:#}").contains("profile rejected"),
        "{error:#}"
    );
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM accounts").await, 1);
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM profiles").await, 1);
}

// ---- concurrency --------------------------------------------------------------------------

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "workers")]
struct Worker {
    #[model(primary_key)]
    id: Option<i64>,
    n: i64,
}

#[receiver(post_save, sender = Worker)]
async fn worker_saved(ev: PostSave<'_, Worker>, tx: AnyTx<'_>) -> Result<(), OrmError> {
    tokio::task::yield_now().await;
    log(tx, format!("worker {}", ev.instance.n)).await
}

async fn concurrent_saves_through_one_pool_lose_nothing<DB: TestBackend>(pool: Pool<DB>)
where
    Worker: Persist<DB>,
    Log: Persist<DB>,
{
    const TASKS: i64 = 8;
    const SAVES: i64 = 25;
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for i in 0..SAVES {
                    Worker {
                        id: None,
                        n: t * SAVES + i,
                    }
                    .save(&pool)
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        DB::scalar(&pool, "SELECT COUNT(*) FROM workers").await,
        TASKS * SAVES
    );
    assert_eq!(
        DB::scalar(&pool, "SELECT COUNT(DISTINCT entry) FROM log").await,
        TASKS * SAVES
    );
}

// ---- a receiver for one backend -----------------------------------------------------------

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "typed_tx")]
struct TypedTx {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

#[receiver(post_save, sender = TypedTx)]
async fn postgres_only(
    ev: PostSave<'_, TypedTx>,
    tx: &mut Tx<sqlx::Postgres>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE typed_tx SET name = name || '!' WHERE id = $1")
        .bind(ev.instance.id)
        .execute(tx.conn())
        .await?;
    Ok(())
}

async fn a_receiver_typed_for_one_backend_names_the_mismatch<DB: TestBackend>(pool: Pool<DB>)
where
    TypedTx: Persist<DB>,
{
    let result = TypedTx {
        id: None,
        name: "x".into(),
    }
    .save(&pool)
    .await;
    if <DB as signals_orm::Backend>::NAME == "postgres" {
        result.unwrap();
        assert_eq!(
            DB::strings(&pool, "SELECT name FROM typed_tx").await,
            ["x!"]
        );
    } else {
        let error = format!("{:#}", result.unwrap_err());
        assert!(
            error.contains("orm::postgres_only")
                && error.contains("Tx<sqlx_postgres")
                && error.contains("runs on sqlite"),
            "{error}"
        );
        assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM typed_tx").await, 0);
    }
}

/// The SQL texts themselves are pinned by the unit tests of `signals-orm/src/sql.rs`.
#[test]
fn the_derive_records_names_columns_and_key_kind() {
    assert_eq!(Person::META.table, "people");
    assert_eq!(Person::META.columns, ["name", "email_address"]);
    assert_eq!(
        (Person::META.pk_generated, Sku::META.pk_generated),
        (true, false)
    );
    assert_eq!(Person::META.fields, ["name", "email"]);
}
