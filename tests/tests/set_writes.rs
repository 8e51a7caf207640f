//! The set-based writes of a `Query` (`delete`, `update`, `get_or_create`, `update_or_create`)
//! attacked with receivers, on every backend: the exact sequence of signals around each
//! chunk's statement and their payloads, the chunk boundaries, receivers that fail (in the
//! write's own transaction and in a caller's), muting, rows a concurrent transaction changes
//! while the write waits for them, races for a unique key, and random conditions checked
//! against the same condition evaluated in Rust.
//!
//! Receivers are linked at build time, so each configuration of receivers has a model type of
//! its own, and several share the `people` table. Every scenario works on the rows of its own
//! `run` (a text unique in the whole test binary), and receivers record what they hear per
//! run; for rows whose `nick` is `probe` they also count, through the write's own transaction,
//! what the table holds at that moment, which shows where each signal falls relative to the
//! statements.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use signals_orm::model_signals::{
    PostDeleteSignal, PostSaveSignal, PreDeleteSignal, PreSaveSignal,
};
use signals_orm::query::{Filter, ROWS_PER_CHUNK};
use signals_orm::{
    AnyTx, BoxError, Model, ModelExt, Mute, Origin, OrmError, Persist, PostDelete, PostSave,
    PreDelete, PreSave, SendError, Tx, receiver,
};
use sqlx::Pool;
use support::{TestBackend, log, logged};

const SCHEMA: &str = "
CREATE TABLE log (id {serial}, entry TEXT NOT NULL);
CREATE TABLE people (
    id {serial},
    run TEXT NOT NULL,
    name TEXT NOT NULL,
    age BIGINT NOT NULL,
    nickname TEXT
);
CREATE INDEX people_run ON people (run);
CREATE TABLE keyed (id {serial}, code TEXT NOT NULL UNIQUE, hits BIGINT NOT NULL);
";

every_backend!(
    a_delete_sends_pre_delete_before_and_post_delete_after_with_whole_rows,
    a_delete_only_post_delete_hears_sends_the_rows_as_deleted,
    delete_chunk_boundaries_with_pre_and_post_delete,
    delete_chunk_boundaries_with_post_delete_only,
    an_update_only_post_save_hears_sends_the_rows_as_written,
    pre_save_sees_the_assignments_and_only_assigned_fields_are_written,
    update_chunk_boundaries_with_pre_and_post_save,
    update_chunk_boundaries_with_post_save_only,
    an_update_assigning_every_field_updates_each_row_once,
    sliced_queries_and_key_assignments_send_nothing,
    a_failing_receiver_undoes_the_whole_write,
    a_failing_receiver_in_a_later_chunk_undoes_the_earlier_chunks,
    a_failing_receiver_in_a_callers_transaction_makes_it_rollback_only,
    muted_writes_send_nothing_and_still_write,
    a_concurrent_change_before_a_delete_pre_delete_hears,
    a_concurrent_change_before_a_delete_only_post_delete_hears,
    a_concurrent_change_before_an_update_pre_save_hears,
    a_concurrent_change_before_an_update_only_post_save_hears,
    get_or_create_races_create_one_row_once,
    update_or_create_races_apply_once_per_caller,
    get_or_create_with_failing_receivers_inserts_nothing,
    several_matching_rows_are_refused_before_any_write,
    random_conditions_select_update_and_delete_what_a_rust_filter_selects,
    a_pre_save_change_of_the_key_does_not_redirect_the_update,
    a_pre_save_unsetting_the_key_does_not_break_the_update,
);

// ---- models: one per configuration of receivers, all on `people` ---------------------------

/// A row of `people`, whichever model read it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    id: i64,
    run: String,
    name: String,
    age: i64,
    nick: Option<String>,
}

impl Row {
    fn probe(&self) -> bool {
        self.nick.as_deref() == Some("probe")
    }
}

macro_rules! people {
    ($($(#[$doc:meta])* $model:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
        #[model(table = "people")]
        struct $model {
            #[model(primary_key)]
            id: Option<i64>,
            run: String,
            name: String,
            age: i64,
            #[model(column = "nickname")]
            nick: Option<String>,
        }

        impl $model {
            fn row(&self) -> Row {
                Row {
                    id: self.id.expect("a row read or written has its key"),
                    run: self.run.clone(),
                    name: self.name.clone(),
                    age: self.age,
                    nick: self.nick.clone(),
                }
            }
        }
    )*};
}

people! {
    /// No receiver: fills and reads the table, and changes it from a concurrent transaction.
    Quiet;
    /// `pre_delete` and `post_delete` record.
    Both;
    /// Only `post_delete` records.
    PostOnly;
    /// Only `post_save` records.
    Saved;
    /// `pre_save` records, then changes `age` of a row named `override`, `nick` of one named
    /// `sneak` and the key of one named `rekey` (the next key) or `unkey` (none); `post_save`
    /// records.
    PreSaved;
    /// `pre_delete` and `pre_save` log, then fail on a row named `fail`.
    Fragile;
    /// `post_delete` and `post_save` log, then fail on a row named `fail`.
    Brittle;
}

/// A row of `keyed`, whose `code` is unique.
#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "keyed")]
struct Keyed {
    #[model(primary_key)]
    id: Option<i64>,
    code: String,
    hits: i64,
}

// ---- what receivers heard -----------------------------------------------------------------

/// One signal as a receiver got it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Heard {
    signal: &'static str,
    /// The payload's instance.
    row: Row,
    /// For a probe row, what the receiver counted through the write's transaction: the run's
    /// rows (deletes) or the run's rows already carrying the instance's `age` (updates).
    seen: Option<i64>,
    /// The rest of the payload.
    detail: String,
}

/// What was heard, per run, in the order sent.
static HEARD: Mutex<BTreeMap<String, Vec<Heard>>> = Mutex::new(BTreeMap::new());
static RUNS: AtomicUsize = AtomicUsize::new(0);

/// A run name no other scenario of this binary uses (backends run in parallel, and `HEARD`
/// is shared).
fn new_run(what: &str) -> String {
    format!("{what}-{}", RUNS.fetch_add(1, Ordering::SeqCst))
}

fn hear(heard: Heard) {
    HEARD
        .lock()
        .unwrap()
        .entry(heard.row.run.clone())
        .or_default()
        .push(heard);
}

fn heard(run: &str) -> Vec<Heard> {
    HEARD.lock().unwrap().get(run).cloned().unwrap_or_default()
}

/// What was heard, with each stretch of consecutive `post_*` signals sorted by key: they follow
/// the order a statement's `RETURNING` gave the rows, which neither database promises.
fn heard_sorted(run: &str) -> Vec<Heard> {
    let mut all = heard(run);
    let mut start = 0;
    while start < all.len() {
        let post = all[start].signal.starts_with("post_");
        let end = all[start..]
            .iter()
            .position(|h| h.signal.starts_with("post_") != post)
            .map_or(all.len(), |n| start + n);
        if post {
            all[start..end].sort_by_key(|h| h.row.id);
        }
        start = end;
    }
    all
}

/// `origin` as text: its kind, its model, and for a query its condition.
fn origin_text(origin: &Origin<'_>) -> String {
    match origin {
        Origin::Query(query) => format!(
            "query of {} ({query:?}), instance={}",
            origin.meta().name,
            origin.instance().is_some()
        ),
        Origin::Instance(_) => format!("instance of {}", origin.meta().name),
        _ => "unknown origin".to_owned(),
    }
}

/// Rows counted through the write's own transaction: the run's (`age` `None`), or the run's
/// with that `age`.
async fn count_rows(tx: AnyTx<'_>, run: &str, age: Option<i64>) -> Result<i64, sqlx::Error> {
    const ALL: &str = "SELECT COUNT(*) FROM people WHERE run = $1";
    const AGED: &str = "SELECT COUNT(*) FROM people WHERE run = $1 AND age = $2";
    match (tx, age) {
        (AnyTx::Sqlite(tx), None) => sqlx::query_scalar(ALL).bind(run).fetch_one(tx.conn()).await,
        (AnyTx::Sqlite(tx), Some(age)) => {
            sqlx::query_scalar(AGED)
                .bind(run)
                .bind(age)
                .fetch_one(tx.conn())
                .await
        }
        (AnyTx::Postgres(tx), None) => sqlx::query_scalar(ALL).bind(run).fetch_one(tx.conn()).await,
        (AnyTx::Postgres(tx), Some(age)) => {
            sqlx::query_scalar(AGED)
                .bind(run)
                .bind(age)
                .fetch_one(tx.conn())
                .await
        }
    }
}

/// Records a delete signal; a probe row also counts the run's rows left in the table.
async fn hear_delete(
    signal: &'static str,
    row: Row,
    origin: &Origin<'_>,
    using: &str,
    tx: AnyTx<'_>,
) -> Result<(), BoxError> {
    let seen = if row.probe() {
        Some(count_rows(tx, &row.run, None).await?)
    } else {
        None
    };
    let detail = format!("origin={} using={using}", origin_text(origin));
    hear(Heard {
        signal,
        row,
        seen,
        detail,
    });
    Ok(())
}

/// Records a save signal; a probe row also counts the run's rows already written with the
/// instance's `age` (the value the update assigns).
async fn hear_save(
    signal: &'static str,
    row: Row,
    detail: String,
    tx: AnyTx<'_>,
) -> Result<(), BoxError> {
    let seen = if row.probe() {
        Some(count_rows(tx, &row.run, Some(row.age)).await?)
    } else {
        None
    };
    hear(Heard {
        signal,
        row,
        seen,
        detail,
    });
    Ok(())
}

#[receiver(pre_delete, sender = Both)]
async fn both_pre_delete(ev: PreDelete<'_, Both>, tx: AnyTx<'_>) -> Result<(), BoxError> {
    hear_delete("pre_delete", ev.instance.row(), &ev.origin, ev.using, tx).await
}

#[receiver(post_delete, sender = Both)]
async fn both_post_delete(ev: PostDelete<'_, Both>, tx: AnyTx<'_>) -> Result<(), BoxError> {
    hear_delete("post_delete", ev.instance.row(), &ev.origin, ev.using, tx).await
}

#[receiver(post_delete, sender = PostOnly)]
async fn post_only_post_delete(
    ev: PostDelete<'_, PostOnly>,
    tx: AnyTx<'_>,
) -> Result<(), BoxError> {
    hear_delete("post_delete", ev.instance.row(), &ev.origin, ev.using, tx).await
}

#[receiver(post_save, sender = Saved)]
async fn saved_post_save(ev: PostSave<'_, Saved>, tx: AnyTx<'_>) -> Result<(), BoxError> {
    let detail = format!(
        "created={} raw={} fields={:?} using={}",
        ev.created, ev.raw, ev.update_fields, ev.using
    );
    hear_save("post_save", ev.instance.row(), detail, tx).await
}

#[receiver(pre_save, sender = PreSaved)]
async fn pre_saved_pre_save(ev: PreSave<'_, PreSaved>, tx: AnyTx<'_>) -> Result<(), BoxError> {
    let detail = format!(
        "adding={} raw={} fields={:?} using={}",
        ev.adding, ev.raw, ev.update_fields, ev.using
    );
    hear_save("pre_save", ev.instance.row(), detail, tx).await?;
    match ev.instance.name.as_str() {
        "override" => ev.instance.age = 777,
        "sneak" => ev.instance.nick = Some("sneaked".into()),
        // The key is no assigned field: changing it must not redirect the write.
        "rekey" => ev.instance.id = ev.instance.id.map(|id| id + 1),
        "unkey" => ev.instance.id = None,
        _ => {}
    }
    Ok(())
}

#[receiver(post_save, sender = PreSaved)]
async fn pre_saved_post_save(ev: PostSave<'_, PreSaved>, tx: AnyTx<'_>) -> Result<(), BoxError> {
    let detail = format!(
        "created={} raw={} fields={:?} using={}",
        ev.created, ev.raw, ev.update_fields, ev.using
    );
    hear_save("post_save", ev.instance.row(), detail, tx).await
}

/// Logs through the write's transaction (not for the bulk rows named `row..`), then fails on
/// a row named `fail`.
async fn fragile(signal: &str, row: &Row, tx: AnyTx<'_>) -> Result<(), BoxError> {
    if !row.name.starts_with("row") {
        log(tx, format!("{signal} {} {}", row.run, row.name)).await?;
    }
    if row.name == "fail" {
        return Err(format!("{signal} refused row {}", row.id).into());
    }
    Ok(())
}

#[receiver(pre_delete, sender = Fragile)]
async fn fragile_pre_delete(ev: PreDelete<'_, Fragile>, tx: AnyTx<'_>) -> Result<(), BoxError> {
    fragile("pre_delete", &ev.instance.row(), tx).await
}

#[receiver(pre_save, sender = Fragile)]
async fn fragile_pre_save(ev: PreSave<'_, Fragile>, tx: AnyTx<'_>) -> Result<(), BoxError> {
    fragile("pre_save", &ev.instance.row(), tx).await
}

#[receiver(post_delete, sender = Brittle)]
async fn brittle_post_delete(ev: PostDelete<'_, Brittle>, tx: AnyTx<'_>) -> Result<(), BoxError> {
    fragile("post_delete", &ev.instance.row(), tx).await
}

#[receiver(post_save, sender = Brittle)]
async fn brittle_post_save(ev: PostSave<'_, Brittle>, tx: AnyTx<'_>) -> Result<(), BoxError> {
    fragile("post_save", &ev.instance.row(), tx).await
}

/// `(code, created)` of every `post_save` of `Keyed`.
static KEYED_SAVES: Mutex<Vec<(String, bool)>> = Mutex::new(Vec::new());

fn keyed_saves(code: &str) -> Vec<bool> {
    KEYED_SAVES
        .lock()
        .unwrap()
        .iter()
        .filter(|(c, _)| c == code)
        .map(|&(_, created)| created)
        .collect()
}

/// The INSERTs of each `meet-` code: how many reached `pre_save`, and the rendezvous of the
/// two racing tasks.
static MEETINGS: Mutex<BTreeMap<String, (usize, Arc<tokio::sync::Barrier>)>> =
    Mutex::new(BTreeMap::new());

fn inserts_tried(code: &str) -> usize {
    MEETINGS.lock().unwrap().get(code).map_or(0, |m| m.0)
}

/// Refuses codes starting with `fail-pre`. On PostgreSQL, the INSERT of a `meet-` code waits
/// (up to a few seconds) for the other racing task's INSERT, so that both read no row and both
/// insert: the race `get_or_create` must survive, forced. (On SQLite `BEGIN IMMEDIATE`
/// serialises the two callers, so they cannot meet there.)
#[receiver(pre_save, sender = Keyed)]
async fn keyed_pre_save(ev: PreSave<'_, Keyed>) -> Result<(), String> {
    if ev.adding && ev.instance.code.starts_with("meet-") {
        let barrier = {
            let mut meetings = MEETINGS.lock().unwrap();
            let meeting = meetings
                .entry(ev.instance.code.clone())
                .or_insert_with(|| (0, Arc::new(tokio::sync::Barrier::new(2))));
            meeting.0 += 1;
            Arc::clone(&meeting.1)
        };
        if ev.using == "postgres" {
            let _ = tokio::time::timeout(Duration::from_secs(5), barrier.wait()).await;
        }
    }
    tokio::task::yield_now().await;
    if ev.instance.code.starts_with("fail-pre") {
        return Err(format!("pre_save refused {}", ev.instance.code));
    }
    Ok(())
}

/// Logs and records every save, then refuses codes starting with `fail-post`.
#[receiver(post_save, sender = Keyed)]
async fn keyed_post_save(ev: PostSave<'_, Keyed>, tx: AnyTx<'_>) -> Result<(), BoxError> {
    let what = if ev.created { "created" } else { "updated" };
    log(
        tx,
        format!("{what} {} hits={}", ev.instance.code, ev.instance.hits),
    )
    .await?;
    KEYED_SAVES
        .lock()
        .unwrap()
        .push((ev.instance.code.clone(), ev.created));
    tokio::task::yield_now().await;
    if ev.instance.code.starts_with("fail-post") {
        return Err(format!("post_save refused {}", ev.instance.code).into());
    }
    Ok(())
}

// ---- fixtures -----------------------------------------------------------------------------

/// Inserts rows `(name, age, nick)` of `run` in one statement; returns them in key order.
async fn insert_rows<DB: TestBackend>(
    pool: &Pool<DB>,
    run: &str,
    rows: &[(&str, i64, Option<&str>)],
) -> Vec<Row>
where
    Quiet: Persist<DB>,
{
    let mut new: Vec<Quiet> = rows
        .iter()
        .map(|&(name, age, nick)| Quiet {
            id: None,
            run: run.to_owned(),
            name: name.to_owned(),
            age,
            nick: nick.map(Into::into),
        })
        .collect();
    if !new.is_empty() {
        Quiet::bulk_insert(pool, &mut new).await.unwrap();
    }
    rows_of(pool, run).await
}

/// Inserts `rows` rows of `run` in one statement: `row1`.. `rowN`, age 1..N, `probe` for the
/// first and last row and the first and last row of each chunk; returns them in key order.
async fn fill<DB: TestBackend>(pool: &Pool<DB>, run: &str, rows: usize) -> Vec<Row>
where
    Quiet: Persist<DB>,
{
    DB::run(
        pool,
        format!(
            "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {rows}) \
             INSERT INTO people (run, name, age, nickname) \
             SELECT '{run}', 'row' || n, n, \
                    CASE WHEN n = 1 OR n = {rows} OR n % {ROWS_PER_CHUNK} IN (0, 1) THEN 'probe' END \
             FROM seq WHERE n <= {rows}"
        ),
    )
    .await;
    let filled = rows_of(pool, run).await;
    assert_eq!(filled.len(), rows);
    filled
}

/// The rows of `run`, in key order.
async fn rows_of<DB: TestBackend>(pool: &Pool<DB>, run: &str) -> Vec<Row>
where
    Quiet: Persist<DB>,
{
    let c = Quiet::columns();
    Quiet::filter(c.run.eq(run))
        .order_by(c.id.asc())
        .all(pool)
        .await
        .unwrap()
        .iter()
        .map(Quiet::row)
        .collect()
}

/// The log entries that mention `run`.
async fn logged_for<DB: TestBackend>(pool: &Pool<DB>, run: &str) -> Vec<String> {
    logged(pool)
        .await
        .into_iter()
        .filter(|entry| entry.split(' ').any(|word| word == run))
        .collect()
}

/// What `pre_delete`/`post_delete` receivers must hear when `deleted` (in key order) go, per
/// chunk: every row's `pre_delete` (when `pre`), then every row's `post_delete`; probes count
/// the run's rows, `total` before the first chunk.
fn expected_deletes(deleted: &[Row], total: usize, pre: bool, detail: &str) -> Vec<Heard> {
    let mut expected = Vec::new();
    let mut left = i64::try_from(total).unwrap();
    let heard = |signal, row: &Row, left| Heard {
        signal,
        row: row.clone(),
        seen: row.probe().then_some(left),
        detail: detail.to_owned(),
    };
    for chunk in deleted.chunks(ROWS_PER_CHUNK) {
        if pre {
            expected.extend(chunk.iter().map(|row| heard("pre_delete", row, left)));
        }
        left -= i64::try_from(chunk.len()).unwrap();
        expected.extend(chunk.iter().map(|row| heard("post_delete", row, left)));
    }
    expected
}

/// What `pre_save`/`post_save` receivers must hear when `updated` (in key order, as selected)
/// get `age`: per chunk, every row's `pre_save` with the assignment applied (when `pre`), then
/// every row's `post_save`; probes count the rows already carrying `age`, `before` at first.
fn expected_saves(
    updated: &[Row],
    age: i64,
    before: i64,
    pre: Option<&str>,
    post: &str,
) -> Vec<Heard> {
    let mut expected = Vec::new();
    let mut written = before;
    for chunk in updated.chunks(ROWS_PER_CHUNK) {
        let heard = |signal, row: &Row, seen, detail: &str| Heard {
            signal,
            row: Row { age, ..row.clone() },
            seen: row.probe().then_some(seen),
            detail: detail.to_owned(),
        };
        if let Some(pre) = pre {
            expected.extend(chunk.iter().map(|row| heard("pre_save", row, written, pre)));
        }
        written += i64::try_from(chunk.len()).unwrap();
        expected.extend(
            chunk
                .iter()
                .map(|row| heard("post_save", row, written, post)),
        );
    }
    expected
}

/// Asserts that `error` is receiver `receiver` of `signal` failing, for `model`.
#[track_caller]
fn assert_receiver_failed(error: &OrmError, signal: &str, receiver: &str, model: &str) {
    let OrmError::Signal(SendError::Receiver {
        signal: failed_signal,
        receiver: failed,
        sender,
        ..
    }) = error
    else {
        panic!("expected {receiver} to fail, got: {error:#}")
    };
    assert_eq!((*failed_signal, *failed), (signal, receiver), "{error:#}");
    assert!(sender.ends_with(model), "{sender}");
    assert!(format!("{error:#}").contains("refused"), "{error:#}");
}

fn using<DB: TestBackend>() -> &'static str {
    <DB as signals_orm::Backend>::NAME
}

fn probes(rows: &[(&'static str, i64)]) -> Vec<(&'static str, i64, Option<&'static str>)> {
    rows.iter()
        .map(|&(name, age)| (name, age, Some("probe")))
        .collect()
}

// ---- delete: sequence and payloads --------------------------------------------------------

async fn a_delete_sends_pre_delete_before_and_post_delete_after_with_whole_rows<DB: TestBackend>(
    pool: Pool<DB>,
) where
    Quiet: Persist<DB>,
    Both: Persist<DB>,
{
    let run = new_run("delete-both");
    let rows = insert_rows(
        &pool,
        &run,
        &[
            ("ada", 36, Some("probe")),
            ("alan", 41, Some("probe")),
            ("grace", 85, Some("probe")),
            ("kid", 7, Some("probe")),
            ("edsger", 72, None),
            ("o'brien \"q\"", 90, Some("it's")),
        ],
    )
    .await;
    let c = Both::columns();
    let query = Both::filter(c.run.eq(run.as_str()) & c.age.gt(40));
    let deleted = query.delete(&pool).await.unwrap();
    assert_eq!(deleted.total(), 4);
    assert_eq!(deleted.of::<Both>(), 4);
    assert_eq!(
        deleted.of::<Quiet>(),
        0,
        "rows of the table, counted for Both"
    );
    assert_eq!(deleted.iter().collect::<Vec<_>>(), [("Both", 4)]);

    let (gone, kept): (Vec<Row>, Vec<Row>) = rows.into_iter().partition(|r| r.age > 40);
    let detail = format!(
        "origin=query of Both (Both WHERE (run = ? AND age > ?)), instance=false using={}",
        using::<DB>()
    );
    assert_eq!(
        heard(&run),
        expected_deletes(&gone, 6, true, &detail),
        "every pre_delete (the row still there) before the DELETE, every post_delete after"
    );
    assert_eq!(rows_of(&pool, &run).await, kept);

    // In a caller's transaction: the same signals; rolled back, nothing is gone.
    let run = new_run("delete-both-tx");
    let rows = insert_rows(&pool, &run, &probes(&[("a", 1), ("b", 2), ("c", 3)])).await;
    let mut tx = Tx::begin(&pool).await.unwrap();
    let query = Both::filter(c.run.eq(run.as_str()));
    assert_eq!(query.delete(&mut tx).await.unwrap().total(), 3);
    let detail = format!(
        "origin=query of Both (Both WHERE run = ?), instance=false using={}",
        using::<DB>()
    );
    assert_eq!(heard(&run), expected_deletes(&rows, 3, true, &detail));
    assert_eq!(
        Both::filter(c.run.eq(run.as_str()))
            .count(&mut tx)
            .await
            .unwrap(),
        0
    );
    tx.rollback().await.unwrap();
    assert_eq!(
        rows_of(&pool, &run).await,
        rows,
        "rolled back with the caller's transaction"
    );

    // Nothing matching: no signal, nothing deleted.
    let run = new_run("delete-both-none");
    let rows = insert_rows(&pool, &run, &probes(&[("a", 1)])).await;
    let nothing = Both::filter(c.run.eq(run.as_str()) & c.age.gt(1))
        .delete(&pool)
        .await
        .unwrap();
    assert_eq!(nothing.total(), 0);
    assert!(heard(&run).is_empty());
    assert_eq!(rows_of(&pool, &run).await, rows);
}

async fn a_delete_only_post_delete_hears_sends_the_rows_as_deleted<DB: TestBackend>(pool: Pool<DB>)
where
    Quiet: Persist<DB>,
    PostOnly: Persist<DB>,
{
    let run = new_run("delete-post");
    let rows = insert_rows(
        &pool,
        &run,
        &[
            ("ada", 36, Some("probe")),
            ("alan", 41, Some("probe")),
            ("grace", 85, None),
            ("kid", 7, Some("probe")),
            ("edsger", 72, Some("probe")),
        ],
    )
    .await;
    let c = PostOnly::columns();
    let query = PostOnly::filter(c.run.eq(run.as_str()) & (c.age.lt(10) | c.age.ge(72)));
    let deleted = query.delete(&pool).await.unwrap();
    assert_eq!((deleted.total(), deleted.of::<PostOnly>()), (3, 3));
    let (gone, kept): (Vec<Row>, Vec<Row>) =
        rows.into_iter().partition(|r| r.age < 10 || r.age >= 72);
    let detail = format!(
        "origin=query of PostOnly (PostOnly WHERE (run = ? AND (age < ? OR age >= ?))), \
         instance=false using={}",
        using::<DB>()
    );
    assert_eq!(
        heard_sorted(&run),
        expected_deletes(&gone, 5, false, &detail),
        "each row as deleted, after its DELETE"
    );
    assert_eq!(rows_of(&pool, &run).await, kept);
}

// ---- delete: chunk boundaries -------------------------------------------------------------

const BOUNDARIES: [usize; 4] = [0, 1, ROWS_PER_CHUNK, ROWS_PER_CHUNK + 1];

async fn delete_chunk_boundaries_with_pre_and_post_delete<DB: TestBackend>(pool: Pool<DB>)
where
    Quiet: Persist<DB>,
    Both: Persist<DB>,
{
    for n in BOUNDARIES {
        let run = new_run("chunks-both");
        let rows = fill(&pool, &run, n).await;
        // A row of another run on each side stays.
        let others = new_run("chunks-both-other");
        let kept = insert_rows(&pool, &others, &probes(&[("x", 1)])).await;
        let c = Both::columns();
        let deleted = Both::filter(c.run.eq(run.as_str()) & c.age.ge(1))
            .delete(&pool)
            .await
            .unwrap();
        assert_eq!(deleted.total(), n as u64, "{n} rows");
        let detail = format!(
            "origin=query of Both (Both WHERE (run = ? AND age >= ?)), instance=false using={}",
            using::<DB>()
        );
        let got = heard_sorted(&run);
        assert_eq!(
            got.len(),
            2 * n,
            "{n} rows: one pre_delete and one post_delete each"
        );
        assert!(
            got == expected_deletes(&rows, n, true, &detail),
            "{n} rows: per chunk, pre_delete of each row, its DELETE, post_delete of each row"
        );
        assert!(rows_of(&pool, &run).await.is_empty(), "{n} rows: all gone");
        assert_eq!(rows_of(&pool, &others).await, kept);
    }
}

async fn delete_chunk_boundaries_with_post_delete_only<DB: TestBackend>(pool: Pool<DB>)
where
    Quiet: Persist<DB>,
    PostOnly: Persist<DB>,
{
    for n in BOUNDARIES {
        let run = new_run("chunks-post");
        let rows = fill(&pool, &run, n).await;
        let c = PostOnly::columns();
        let deleted = PostOnly::filter(c.run.eq(run.as_str()) & c.name.like("row%"))
            .delete(&pool)
            .await
            .unwrap();
        assert_eq!(deleted.total(), n as u64, "{n} rows");
        let detail = format!(
            "origin=query of PostOnly (PostOnly WHERE (run = ? AND name LIKE ?)), \
             instance=false using={}",
            using::<DB>()
        );
        let got = heard_sorted(&run);
        assert_eq!(got.len(), n, "{n} rows: one post_delete each");
        assert!(
            got == expected_deletes(&rows, n, false, &detail),
            "{n} rows: post_delete of each row after the DELETE of its chunk"
        );
        assert!(rows_of(&pool, &run).await.is_empty(), "{n} rows: all gone");
    }
}

// ---- update: payloads ---------------------------------------------------------------------

async fn an_update_only_post_save_hears_sends_the_rows_as_written<DB: TestBackend>(pool: Pool<DB>)
where
    Quiet: Persist<DB>,
    Saved: Persist<DB>,
{
    let run = new_run("update-post");
    let rows = insert_rows(
        &pool,
        &run,
        &[
            ("ada", 36, Some("probe")),
            ("alan", 41, Some("x")),
            ("grace", 85, None),
            ("kid", 7, Some("probe")),
        ],
    )
    .await;
    let c = Saved::columns();
    // A later assignment of a field replaces the earlier one, and comes last.
    let changed = Saved::filter(c.run.eq(run.as_str()) & c.age.gt(30))
        .update(
            &pool,
            [c.age.set(1), c.nick.set(None::<String>), c.age.set(2)],
        )
        .await
        .unwrap();
    assert_eq!(changed, 3);
    let after = rows_of(&pool, &run).await;
    let expected_rows: Vec<Row> = rows
        .iter()
        .map(|r| {
            if r.age > 30 {
                Row {
                    age: 2,
                    nick: None,
                    ..r.clone()
                }
            } else {
                r.clone()
            }
        })
        .collect();
    assert_eq!(after, expected_rows);
    let detail = format!(
        "created=false raw=false fields=Some([\"nick\", \"age\"]) using={}",
        using::<DB>()
    );
    let expected: Vec<Heard> = after
        .iter()
        .filter(|r| r.age == 2)
        .map(|r| Heard {
            signal: "post_save",
            row: r.clone(),
            seen: None,
            detail: detail.clone(),
        })
        .collect();
    assert_eq!(heard_sorted(&run), expected, "each row as written");

    // Probes: post_save runs after the UPDATE (the row carries the new value already).
    let run = new_run("update-post-probe");
    let rows = insert_rows(&pool, &run, &probes(&[("a", 1), ("b", 2), ("c", 3)])).await;
    let changed = Saved::filter(c.run.eq(run.as_str()))
        .update(&pool, [c.age.set(-5)])
        .await
        .unwrap();
    assert_eq!(changed, 3);
    let post = format!(
        "created=false raw=false fields=Some([\"age\"]) using={}",
        using::<DB>()
    );
    let mut expected = expected_saves(&rows, -5, 0, None, &post);
    for heard in &mut expected {
        heard.seen = Some(3);
    }
    assert_eq!(
        heard_sorted(&run),
        expected,
        "one UPDATE, then every post_save"
    );
}

async fn pre_save_sees_the_assignments_and_only_assigned_fields_are_written<DB: TestBackend>(
    pool: Pool<DB>,
) where
    Quiet: Persist<DB>,
    PreSaved: Persist<DB>,
{
    let run = new_run("update-pre");
    let rows = insert_rows(
        &pool,
        &run,
        &[
            ("ada", 36, Some("probe")),
            ("override", 50, None),
            ("sneak", 60, Some("orig")),
            ("young", 10, None),
            ("last", 70, Some("probe")),
        ],
    )
    .await;
    let c = PreSaved::columns();
    let changed = PreSaved::filter(c.run.eq(run.as_str()) & c.age.ge(30))
        .update(&pool, [c.age.set(99)])
        .await
        .unwrap();
    assert_eq!(changed, 4);
    let after = rows_of(&pool, &run).await;
    let by_name = |name: &str| after.iter().find(|r| r.name == name).unwrap().clone();
    assert_eq!(
        by_name("override").age,
        777,
        "a pre_save change of an assigned field is written"
    );
    assert_eq!(
        by_name("sneak").nick.as_deref(),
        Some("orig"),
        "a pre_save change of another field is not written"
    );
    assert_eq!(by_name("ada").age, 99);
    assert_eq!(by_name("last").age, 99);
    assert_eq!(by_name("young"), rows[3], "not selected, untouched");

    let using = using::<DB>();
    let pre = format!("adding=false raw=false fields=Some([\"age\"]) using={using}");
    let post = format!("created=false raw=false fields=Some([\"age\"]) using={using}");
    let selected: Vec<Row> = rows.iter().filter(|r| r.age >= 30).cloned().collect();
    let mut expected = expected_saves(&selected, 99, 0, Some(&pre), &post);
    // post_save shows each row as written: 777 for `override`, the old nick for `sneak`;
    // the probes count the rows with 99 (`override` has 777).
    for heard in &mut expected {
        if heard.signal == "post_save" {
            heard.row = by_name(&heard.row.name);
            if heard.seen.is_some() {
                heard.seen = Some(3);
            }
        }
    }
    assert_eq!(heard_sorted(&run), expected);

    // When the other field is assigned too, the receiver's change of it is written; fields
    // come in assignment order, a later assignment replacing an earlier one.
    let changed = PreSaved::filter(c.run.eq(run.as_str()) & c.name.eq("sneak"))
        .update(
            &pool,
            [
                c.nick.set(Some("n2".to_owned())),
                c.age.set(1),
                c.age.set(50),
            ],
        )
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let sneak = rows_of(&pool, &run)
        .await
        .into_iter()
        .find(|r| r.name == "sneak")
        .unwrap();
    assert_eq!((sneak.age, sneak.nick.as_deref()), (50, Some("sneaked")));
    let tail: Vec<Heard> = heard(&run).split_off(expected.len());
    assert_eq!(
        tail,
        [
            Heard {
                signal: "pre_save",
                row: Row {
                    age: 50,
                    nick: Some("n2".into()),
                    ..sneak.clone()
                },
                seen: None,
                detail: format!(
                    "adding=false raw=false fields=Some([\"nick\", \"age\"]) using={using}"
                ),
            },
            Heard {
                signal: "post_save",
                row: sneak.clone(),
                seen: None,
                detail: format!(
                    "created=false raw=false fields=Some([\"nick\", \"age\"]) using={using}"
                ),
            },
        ]
    );
}

// ---- update: chunk boundaries -------------------------------------------------------------

async fn update_chunk_boundaries_with_pre_and_post_save<DB: TestBackend>(pool: Pool<DB>)
where
    Quiet: Persist<DB>,
    PreSaved: Persist<DB>,
{
    let using = using::<DB>();
    let pre = format!("adding=false raw=false fields=Some([\"age\"]) using={using}");
    let post = format!("created=false raw=false fields=Some([\"age\"]) using={using}");
    for n in BOUNDARIES {
        let run = new_run("chunks-pre-save");
        let rows = fill(&pool, &run, n).await;
        let c = PreSaved::columns();
        // Every row still matches once updated: none may be updated twice.
        let changed = PreSaved::filter(c.run.eq(run.as_str()) & c.name.like("row%"))
            .update(&pool, [c.age.set(-7)])
            .await
            .unwrap();
        assert_eq!(changed, n as u64, "{n} rows");
        let got = heard_sorted(&run);
        assert_eq!(
            got.len(),
            2 * n,
            "{n} rows: one pre_save and one post_save each"
        );
        assert!(
            got == expected_saves(&rows, -7, 0, Some(&pre), &post),
            "{n} rows: per chunk, pre_save of each row, its UPDATE, post_save of each row"
        );
        let after = rows_of(&pool, &run).await;
        assert_eq!(after.len(), n);
        assert!(after.iter().all(|r| r.age == -7), "{n} rows: all written");
    }
}

async fn update_chunk_boundaries_with_post_save_only<DB: TestBackend>(pool: Pool<DB>)
where
    Quiet: Persist<DB>,
    Saved: Persist<DB>,
{
    let post = format!(
        "created=false raw=false fields=Some([\"age\"]) using={}",
        using::<DB>()
    );
    for n in BOUNDARIES {
        let run = new_run("chunks-post-save");
        let rows = fill(&pool, &run, n).await;
        let c = Saved::columns();
        let changed = Saved::filter(c.run.eq(run.as_str()) & c.age.ge(1))
            .update(&pool, [c.age.set(-7)])
            .await
            .unwrap();
        assert_eq!(changed, n as u64, "{n} rows");
        let got = heard_sorted(&run);
        assert_eq!(got.len(), n, "{n} rows: one post_save each");
        // One UPDATE for all rows: every probe sees all of them written.
        let mut expected = expected_saves(&rows, -7, 0, None, &post);
        for h in &mut expected {
            if h.seen.is_some() {
                h.seen = Some(i64::try_from(n).unwrap());
            }
        }
        assert!(
            got == expected,
            "{n} rows: post_save of each row as written"
        );
        let after = rows_of(&pool, &run).await;
        assert!(after.iter().all(|r| r.age == -7), "{n} rows: all written");
    }
}

async fn an_update_assigning_every_field_updates_each_row_once<DB: TestBackend>(pool: Pool<DB>)
where
    Quiet: Persist<DB>,
    PreSaved: Persist<DB>,
{
    // Four values and a key per row: 32,766 / 5 = 6,553 rows fit in one statement on SQLite,
    // fewer than `ROWS_PER_CHUNK`, so one row more crosses a statement boundary there (the
    // update's `CASE` grows with the square of the rows: more would only be slower).
    let n = 32_766 / 5 + 1;
    assert!(n < ROWS_PER_CHUNK);
    let run = new_run("every-field");
    let rows = fill(&pool, &run, n).await;
    let c = PreSaved::columns();
    let changed = PreSaved::filter(c.run.eq(run.as_str()) & c.age.ge(1))
        .update(
            &pool,
            [
                c.run.set(run.as_str()),
                c.name.set("renamed"),
                c.age.set(3),
                c.nick.set(None::<String>),
            ],
        )
        .await
        .unwrap();
    assert_eq!(changed, n as u64);
    let got = heard(&run);
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut pre: Vec<i64> = got
        .iter()
        .filter(|h| h.signal == "pre_save")
        .map(|h| h.row.id)
        .collect();
    assert!(pre == ids, "one pre_save per row, in key order");
    let mut post: Vec<i64> = got
        .iter()
        .filter(|h| h.signal == "post_save")
        .map(|h| h.row.id)
        .collect();
    post.sort_unstable();
    assert!(post == ids, "one post_save per row");
    pre.dedup();
    assert_eq!(pre.len(), n);
    assert!(
        got.iter()
            .all(|h| h.row.name == "renamed" && h.row.age == 3 && h.row.nick.is_none()),
        "pre_save with every assignment applied, post_save as written"
    );
    let after = rows_of(&pool, &run).await;
    assert_eq!(after.len(), n);
    assert!(
        after
            .iter()
            .all(|r| r.name == "renamed" && r.age == 3 && r.nick.is_none()),
        "every row written"
    );
}

async fn a_pre_save_change_of_the_key_does_not_redirect_the_update<DB: TestBackend>(pool: Pool<DB>)
where
    Quiet: Persist<DB>,
    PreSaved: Persist<DB>,
{
    let run = new_run("rekey");
    let rows = insert_rows(&pool, &run, &[("rekey", 1, None), ("victim", 2, None)]).await;
    assert_eq!(rows[1].id, rows[0].id + 1, "consecutive keys");
    let c = PreSaved::columns();
    let changed = PreSaved::filter(c.run.eq(run.as_str()) & c.name.eq("rekey"))
        .update(&pool, [c.age.set(99)])
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let after = rows_of(&pool, &run).await;
    assert_eq!(
        after,
        [
            Row {
                age: 99,
                ..rows[0].clone()
            },
            rows[1].clone()
        ],
        "the selected row is written and the row the receiver's key names is not (the key \
         is no assigned field: its change is not written)"
    );
    let post: Vec<Row> = heard(&run)
        .into_iter()
        .filter(|h| h.signal == "post_save")
        .map(|h| h.row)
        .collect();
    assert_eq!(
        post,
        [after[0].clone()],
        "post_save: the selected row as written"
    );
}

async fn a_pre_save_unsetting_the_key_does_not_break_the_update<DB: TestBackend>(pool: Pool<DB>)
where
    Quiet: Persist<DB>,
    PreSaved: Persist<DB>,
{
    let run = new_run("unkey");
    let rows = insert_rows(
        &pool,
        &run,
        &[("a", 1, None), ("unkey", 2, None), ("c", 3, None)],
    )
    .await;
    let c = PreSaved::columns();
    let changed = PreSaved::filter(c.run.eq(run.as_str()))
        .update(&pool, [c.age.set(99)])
        .await;
    let after = rows_of(&pool, &run).await;
    assert_eq!(
        (
            changed.as_ref().ok(),
            after.iter().map(|r| r.age).collect::<Vec<_>>()
        ),
        (Some(&3), vec![99, 99, 99]),
        "every selected row written, whatever pre_save did to the key: {changed:?}, rows before: {rows:?}"
    );
}

async fn sliced_queries_and_key_assignments_send_nothing<DB: TestBackend>(pool: Pool<DB>)
where
    Quiet: Persist<DB>,
    Both: Persist<DB>,
    PreSaved: Persist<DB>,
{
    let run = new_run("sliced");
    let rows = insert_rows(&pool, &run, &probes(&[("a", 1), ("b", 2)])).await;
    let b = Both::columns();
    let error = Both::filter(b.run.eq(run.as_str()))
        .offset(1)
        .delete(&pool)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            OrmError::Sliced {
                model: "Both",
                write: "delete"
            }
        ),
        "{error}"
    );
    let p = PreSaved::columns();
    let error = PreSaved::filter(p.run.eq(run.as_str()))
        .limit(1)
        .update(&pool, [p.age.set(3)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            OrmError::Sliced {
                model: "PreSaved",
                write: "update"
            }
        ),
        "{error}"
    );
    let error = PreSaved::filter(p.run.eq(run.as_str()))
        .update(&pool, [p.age.set(3), p.id.set(1)])
        .await
        .unwrap_err();
    assert!(matches!(error, OrmError::UnknownField { .. }), "{error}");
    assert_eq!(
        PreSaved::filter(p.run.eq(run.as_str()))
            .update(&pool, [])
            .await
            .unwrap(),
        0
    );
    assert!(heard(&run).is_empty());
    assert_eq!(rows_of(&pool, &run).await, rows);
}

// ---- failing receivers --------------------------------------------------------------------

const FRAGILE_ROWS: [(&str, i64, Option<&str>); 5] = [
    ("a", 1, None),
    ("b", 2, None),
    ("fail", 3, None),
    ("d", 4, None),
    ("e", 5, None),
];

async fn a_failing_receiver_undoes_the_whole_write<DB: TestBackend>(pool: Pool<DB>)
where
    Quiet: Persist<DB>,
    Fragile: Persist<DB>,
    Brittle: Persist<DB>,
{
    let run = new_run("fail");
    let rows = insert_rows(&pool, &run, &FRAGILE_ROWS).await;
    let f = Fragile::columns();
    let error = Fragile::filter(f.run.eq(run.as_str()))
        .delete(&pool)
        .await
        .unwrap_err();
    assert_receiver_failed(
        &error,
        "pre_delete",
        "set_writes::fragile_pre_delete",
        "Fragile",
    );
    assert_eq!(
        rows_of(&pool, &run).await,
        rows,
        "pre_delete: every row kept"
    );
    let error = Fragile::filter(f.run.eq(run.as_str()))
        .update(&pool, [f.age.set(100)])
        .await
        .unwrap_err();
    assert_receiver_failed(
        &error,
        "pre_save",
        "set_writes::fragile_pre_save",
        "Fragile",
    );
    assert_eq!(
        rows_of(&pool, &run).await,
        rows,
        "pre_save: every row unchanged"
    );

    let b = Brittle::columns();
    let error = Brittle::filter(b.run.eq(run.as_str()))
        .delete(&pool)
        .await
        .unwrap_err();
    assert_receiver_failed(
        &error,
        "post_delete",
        "set_writes::brittle_post_delete",
        "Brittle",
    );
    assert_eq!(
        rows_of(&pool, &run).await,
        rows,
        "post_delete: every row kept"
    );
    let error = Brittle::filter(b.run.eq(run.as_str()))
        .update(&pool, [b.age.set(100), b.nick.set(Some("x".to_owned()))])
        .await
        .unwrap_err();
    assert_receiver_failed(
        &error,
        "post_save",
        "set_writes::brittle_post_save",
        "Brittle",
    );
    assert_eq!(
        rows_of(&pool, &run).await,
        rows,
        "post_save: every row unchanged"
    );

    assert_eq!(
        logged_for(&pool, &run).await,
        Vec::<String>::new(),
        "the receivers' own writes (rows before the failing one) are undone"
    );

    // The same write without the failing row succeeds, receivers' writes included.
    let done = Fragile::filter(f.run.eq(run.as_str()) & f.name.ne("fail"))
        .delete(&pool)
        .await
        .unwrap();
    assert_eq!(done.total(), 4);
    assert_eq!(
        logged_for(&pool, &run).await,
        ["a", "b", "d", "e"].map(|name| format!("pre_delete {run} {name}"))
    );
}

async fn a_failing_receiver_in_a_later_chunk_undoes_the_earlier_chunks<DB: TestBackend>(
    pool: Pool<DB>,
) where
    Quiet: Persist<DB>,
    Fragile: Persist<DB>,
    Brittle: Persist<DB>,
{
    let run = new_run("fail-late");
    let n = ROWS_PER_CHUNK + 1;
    let mut rows = fill(&pool, &run, n).await;
    // The row with the highest key, alone in the second chunk, fails.
    let last = rows.last().unwrap().id;
    let q = Quiet::columns();
    Quiet::filter(q.id.eq(last))
        .update(&pool, [q.name.set("fail")])
        .await
        .unwrap();
    rows.last_mut().unwrap().name = "fail".into();
    let count = |pool: Pool<DB>, run: String| async move { rows_of(&pool, &run).await };

    let f = Fragile::columns();
    let error = Fragile::filter(f.run.eq(run.as_str()))
        .delete(&pool)
        .await
        .unwrap_err();
    assert_receiver_failed(
        &error,
        "pre_delete",
        "set_writes::fragile_pre_delete",
        "Fragile",
    );
    assert!(
        count(pool.clone(), run.clone()).await == rows,
        "pre_delete in chunk 2: the DELETE of chunk 1 is undone"
    );
    let error = Fragile::filter(f.run.eq(run.as_str()))
        .update(&pool, [f.age.set(-1)])
        .await
        .unwrap_err();
    assert_receiver_failed(
        &error,
        "pre_save",
        "set_writes::fragile_pre_save",
        "Fragile",
    );
    assert!(
        count(pool.clone(), run.clone()).await == rows,
        "pre_save in chunk 2: the UPDATE of chunk 1 is undone"
    );
    let b = Brittle::columns();
    let error = Brittle::filter(b.run.eq(run.as_str()))
        .delete(&pool)
        .await
        .unwrap_err();
    assert_receiver_failed(
        &error,
        "post_delete",
        "set_writes::brittle_post_delete",
        "Brittle",
    );
    assert!(
        count(pool.clone(), run.clone()).await == rows,
        "post_delete in chunk 2: the DELETE of chunk 1 is undone"
    );
    let error = Brittle::filter(b.run.eq(run.as_str()))
        .update(&pool, [b.age.set(-1)])
        .await
        .unwrap_err();
    assert_receiver_failed(
        &error,
        "post_save",
        "set_writes::brittle_post_save",
        "Brittle",
    );
    assert!(
        count(pool.clone(), run.clone()).await == rows,
        "post_save of the last row: the UPDATE is undone"
    );
    assert!(logged_for(&pool, &run).await.is_empty());
}

async fn a_failing_receiver_in_a_callers_transaction_makes_it_rollback_only<DB: TestBackend>(
    pool: Pool<DB>,
) where
    Quiet: Persist<DB>,
    Fragile: Persist<DB>,
    Brittle: Persist<DB>,
{
    let run = new_run("fail-tx");
    let rows = insert_rows(&pool, &run, &FRAGILE_ROWS).await;
    let f = Fragile::columns();
    let b = Brittle::columns();
    for case in 0..4 {
        let mut tx = Tx::begin(&pool).await.unwrap();
        // A write of the caller's before the failing one, lost with it.
        let mut before = Quiet {
            id: None,
            run: run.clone(),
            name: "before".into(),
            age: 0,
            nick: None,
        };
        before.save(&mut tx).await.unwrap();
        let error = match case {
            0 => Fragile::filter(f.run.eq(run.as_str()))
                .delete(&mut tx)
                .await
                .map(drop),
            1 => Fragile::filter(f.run.eq(run.as_str()))
                .update(&mut tx, [f.age.set(100)])
                .await
                .map(drop),
            2 => Brittle::filter(b.run.eq(run.as_str()))
                .delete(&mut tx)
                .await
                .map(drop),
            _ => Brittle::filter(b.run.eq(run.as_str()))
                .update(&mut tx, [b.age.set(100)])
                .await
                .map(drop),
        }
        .unwrap_err();
        let (signal, receiver, model) = [
            ("pre_delete", "set_writes::fragile_pre_delete", "Fragile"),
            ("pre_save", "set_writes::fragile_pre_save", "Fragile"),
            ("post_delete", "set_writes::brittle_post_delete", "Brittle"),
            ("post_save", "set_writes::brittle_post_save", "Brittle"),
        ][case];
        assert_receiver_failed(&error, signal, receiver, model);
        let why = tx.rollback_only().map(str::to_owned);
        assert!(
            why.as_deref().is_some_and(|why| why.contains("refused")),
            "{signal}: {why:?}"
        );
        let next = Quiet {
            id: None,
            run: run.clone(),
            name: "after".into(),
            age: 0,
            nick: None,
        }
        .save(&mut tx)
        .await
        .unwrap_err();
        assert!(
            matches!(next, OrmError::RollbackOnly { .. }),
            "{signal}: {next}"
        );
        let commit = tx.commit().await.unwrap_err();
        assert!(
            matches!(&commit, OrmError::RollbackOnly { reason } if reason.contains("refused")),
            "{signal}: {commit}"
        );
        assert_eq!(
            rows_of(&pool, &run).await,
            rows,
            "{signal}: every row as it was, the caller's own write gone too"
        );
        assert!(logged_for(&pool, &run).await.is_empty(), "{signal}");
    }
}

// ---- muting -------------------------------------------------------------------------------

async fn muted_writes_send_nothing_and_still_write<DB: TestBackend>(pool: Pool<DB>)
where
    Quiet: Persist<DB>,
    Both: Persist<DB>,
    PreSaved: Persist<DB>,
    Saved: Persist<DB>,
    Fragile: Persist<DB>,
    Keyed: Persist<DB>,
{
    let run = new_run("muted");
    insert_rows(
        &pool,
        &run,
        &probes(&[("a", 1), ("b", 2), ("override", 3), ("c", 40)]),
    )
    .await;
    let pc = PreSaved::columns();
    let changed = Mute::new()
        .signal::<PreSaveSignal>()
        .signal::<PostSaveSignal>()
        .scope(
            PreSaved::filter(pc.run.eq(run.as_str()) & pc.age.lt(10))
                .update(&pool, [pc.age.set(9)]),
        )
        .await
        .unwrap();
    assert_eq!(changed, 3);
    assert_eq!(
        rows_of(&pool, &run)
            .await
            .iter()
            .map(|r| r.age)
            .collect::<Vec<_>>(),
        [9, 9, 9, 40],
        "written, and no pre_save changed `override`"
    );
    let sc = Saved::columns();
    let changed = Mute::new()
        .signal_from::<PostSaveSignal, Saved>()
        .scope(Saved::filter(sc.run.eq(run.as_str()) & sc.age.eq(9)).update(&pool, [sc.age.set(8)]))
        .await
        .unwrap();
    assert_eq!(changed, 3);
    let bc = Both::columns();
    let deleted = Mute::new()
        .signal::<PreDeleteSignal>()
        .signal::<PostDeleteSignal>()
        .scope(Both::filter(bc.run.eq(run.as_str()) & bc.name.eq("a")).delete(&pool))
        .await
        .unwrap();
    assert_eq!(deleted.total(), 1);
    assert!(heard(&run).is_empty(), "{:?}", heard(&run));
    assert_eq!(
        rows_of(&pool, &run)
            .await
            .iter()
            .map(|r| (r.name.as_str(), r.age))
            .collect::<Vec<_>>(),
        [("b", 8), ("override", 8), ("c", 40)]
    );

    // Muting post_delete only: pre_delete is still heard.
    let deleted = Mute::new()
        .signal::<PostDeleteSignal>()
        .scope(Both::filter(bc.run.eq(run.as_str()) & bc.name.eq("b")).delete(&pool))
        .await
        .unwrap();
    assert_eq!(deleted.total(), 1);
    let got = heard(&run);
    assert_eq!(
        got.iter()
            .map(|h| (h.signal, h.row.name.as_str()))
            .collect::<Vec<_>>(),
        [("pre_delete", "b")]
    );

    // A muted failing receiver cannot refuse.
    let fail = new_run("muted-fail");
    insert_rows(&pool, &fail, &FRAGILE_ROWS).await;
    let fc = Fragile::columns();
    let deleted = Mute::new()
        .signal_from::<PreDeleteSignal, Fragile>()
        .scope(Fragile::filter(fc.run.eq(fail.as_str())).delete(&pool))
        .await
        .unwrap();
    assert_eq!(deleted.total(), 5);
    assert!(rows_of(&pool, &fail).await.is_empty());
    assert!(logged_for(&pool, &fail).await.is_empty());

    // get_or_create muted: created, with no receiver.
    let code = format!("fail-pre-{run}");
    let kc = Keyed::columns();
    let (made, created) = Mute::new()
        .signal::<PreSaveSignal>()
        .signal::<PostSaveSignal>()
        .scope(
            Keyed::filter(kc.code.eq(code.as_str())).get_or_create(&pool, || Keyed {
                id: None,
                code: code.clone(),
                hits: 1,
            }),
        )
        .await
        .unwrap();
    assert!(created && made.id.is_some());
    assert!(keyed_saves(&code).is_empty());
    assert!(!logged(&pool).await.iter().any(|e| e.contains(&code)));
}

// ---- concurrency --------------------------------------------------------------------------

/// Rows `a` 10, `b` 20, `c` 30, `d` 40 of `run`, all probes. A transaction then changes them
/// and stays open: `b` gets age 5, `c` the name `c-changed`, `d` is deleted; `write` starts in
/// a task of its own, must wait (for the rows on PostgreSQL, for the write lock on SQLite),
/// and runs on once the transaction commits. Returns `write`'s result and the rows before.
async fn with_a_concurrent_change<DB, T>(
    pool: &Pool<DB>,
    run: &str,
    write: impl Future<Output = T> + Send + 'static,
) -> (T, Vec<Row>)
where
    DB: TestBackend,
    Quiet: Persist<DB>,
    T: Send + 'static,
{
    let rows = insert_rows(
        pool,
        run,
        &probes(&[("a", 10), ("b", 20), ("c", 30), ("d", 40)]),
    )
    .await;
    let q = Quiet::columns();
    let mut blocker = Tx::begin(pool).await.unwrap();
    let changed = Quiet::filter(q.id.eq(rows[1].id))
        .update(&mut blocker, [q.age.set(5)])
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let changed = Quiet::filter(q.id.eq(rows[2].id))
        .update(&mut blocker, [q.name.set("c-changed")])
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let deleted = Quiet::filter(q.id.eq(rows[3].id))
        .delete(&mut blocker)
        .await
        .unwrap();
    assert_eq!(deleted.total(), 1);
    let task = tokio::spawn(write);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !task.is_finished(),
        "the write waits for the open transaction's rows or lock"
    );
    blocker.commit().await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the write finishes once the other transaction committed")
        .unwrap();
    (result, rows)
}

/// Whether the pool can hold two transactions at once (not the one-connection memory database).
fn concurrent<DB: TestBackend>(pool: &Pool<DB>) -> bool {
    pool.options().get_max_connections() > 1
}

async fn a_concurrent_change_before_a_delete_pre_delete_hears<DB: TestBackend>(pool: Pool<DB>)
where
    Quiet: Persist<DB>,
    Both: Persist<DB>,
{
    if !concurrent(&pool) {
        return;
    }
    let run = new_run("race-delete-both");
    let write = {
        let (pool, run) = (pool.clone(), run.clone());
        async move {
            let c = Both::columns();
            Both::filter(c.run.eq(run.as_str()) & c.age.gt(8))
                .delete(&pool)
                .await
        }
    };
    let (deleted, rows) = with_a_concurrent_change(&pool, &run, write).await;
    assert_eq!(deleted.unwrap().total(), 2, "a and c, as changed");
    let b = Row {
        age: 5,
        ..rows[1].clone()
    };
    assert_eq!(rows_of(&pool, &run).await, [b], "b no longer matched: kept");
    let c = Row {
        name: "c-changed".into(),
        ..rows[2].clone()
    };
    let detail = format!(
        "origin=query of Both (Both WHERE (run = ? AND age > ?)), instance=false using={}",
        using::<DB>()
    );
    assert_eq!(
        heard_sorted(&run),
        expected_deletes(&[rows[0].clone(), c], 3, true, &detail),
        "signals for a and c (with its committed values) only"
    );
}

async fn a_concurrent_change_before_a_delete_only_post_delete_hears<DB: TestBackend>(pool: Pool<DB>)
where
    Quiet: Persist<DB>,
    PostOnly: Persist<DB>,
{
    if !concurrent(&pool) {
        return;
    }
    let run = new_run("race-delete-post");
    let write = {
        let (pool, run) = (pool.clone(), run.clone());
        async move {
            let c = PostOnly::columns();
            PostOnly::filter(c.run.eq(run.as_str()) & c.age.gt(8))
                .delete(&pool)
                .await
        }
    };
    let (deleted, rows) = with_a_concurrent_change(&pool, &run, write).await;
    assert_eq!(deleted.unwrap().total(), 2, "a and c, as changed");
    let b = Row {
        age: 5,
        ..rows[1].clone()
    };
    assert_eq!(rows_of(&pool, &run).await, [b], "b no longer matched: kept");
    let c = Row {
        name: "c-changed".into(),
        ..rows[2].clone()
    };
    let detail = format!(
        "origin=query of PostOnly (PostOnly WHERE (run = ? AND age > ?)), instance=false \
         using={}",
        using::<DB>()
    );
    assert_eq!(
        heard_sorted(&run),
        expected_deletes(&[rows[0].clone(), c], 3, false, &detail)
    );
}

async fn a_concurrent_change_before_an_update_pre_save_hears<DB: TestBackend>(pool: Pool<DB>)
where
    Quiet: Persist<DB>,
    PreSaved: Persist<DB>,
{
    if !concurrent(&pool) {
        return;
    }
    let run = new_run("race-update-pre");
    let write = {
        let (pool, run) = (pool.clone(), run.clone());
        async move {
            let c = PreSaved::columns();
            PreSaved::filter(c.run.eq(run.as_str()) & c.age.gt(8))
                .update(&pool, [c.age.set(9)])
                .await
        }
    };
    let (changed, rows) = with_a_concurrent_change(&pool, &run, write).await;
    assert_eq!(changed.unwrap(), 2, "a and c");
    let a = Row {
        age: 9,
        ..rows[0].clone()
    };
    let b = Row {
        age: 5,
        ..rows[1].clone()
    };
    let c = Row {
        age: 9,
        name: "c-changed".into(),
        ..rows[2].clone()
    };
    assert_eq!(
        rows_of(&pool, &run).await,
        [a.clone(), b, c.clone()],
        "b no longer matched: not updated"
    );
    let using = using::<DB>();
    let pre = format!("adding=false raw=false fields=Some([\"age\"]) using={using}");
    let post = format!("created=false raw=false fields=Some([\"age\"]) using={using}");
    assert_eq!(
        heard_sorted(&run),
        expected_saves(&[a, c], 9, 0, Some(&pre), &post)
    );
}

async fn a_concurrent_change_before_an_update_only_post_save_hears<DB: TestBackend>(pool: Pool<DB>)
where
    Quiet: Persist<DB>,
    Saved: Persist<DB>,
{
    if !concurrent(&pool) {
        return;
    }
    let run = new_run("race-update-post");
    let write = {
        let (pool, run) = (pool.clone(), run.clone());
        async move {
            let c = Saved::columns();
            Saved::filter(c.run.eq(run.as_str()) & c.age.gt(8))
                .update(&pool, [c.age.set(9)])
                .await
        }
    };
    let (changed, rows) = with_a_concurrent_change(&pool, &run, write).await;
    assert_eq!(changed.unwrap(), 2, "a and c");
    let a = Row {
        age: 9,
        ..rows[0].clone()
    };
    let b = Row {
        age: 5,
        ..rows[1].clone()
    };
    let c = Row {
        age: 9,
        name: "c-changed".into(),
        ..rows[2].clone()
    };
    assert_eq!(rows_of(&pool, &run).await, [a.clone(), b, c.clone()]);
    let post = format!(
        "created=false raw=false fields=Some([\"age\"]) using={}",
        using::<DB>()
    );
    assert_eq!(
        heard_sorted(&run),
        expected_saves(&[a, c], 9, 0, None, &post)
    );
}

// ---- get_or_create and update_or_create ---------------------------------------------------

const RACES: usize = 20;

/// Two tasks run `op(task)` at the same moment; returns both results, task 0's first.
async fn race<T: Send + 'static, F: Future<Output = T> + Send + 'static>(
    op: impl Fn(usize) -> F,
) -> [T; 2] {
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let tasks = [0, 1].map(|task| {
        let barrier = Arc::clone(&barrier);
        let op = op(task);
        tokio::spawn(async move {
            barrier.wait().await;
            op.await
        })
    });
    let [first, second] = tasks;
    [first.await.unwrap(), second.await.unwrap()]
}

/// `get_or_create` or `update_or_create` of `code`, through the pool or (`in_tx`) a caller's
/// transaction committed afterwards.
async fn keyed_write<DB: TestBackend>(
    pool: Pool<DB>,
    code: String,
    in_tx: bool,
    update: bool,
    hits: i64,
) -> Result<(Keyed, bool), OrmError>
where
    Keyed: Persist<DB>,
{
    let k = Keyed::columns();
    let query = Keyed::filter(k.code.eq(code.as_str()));
    let create = || Keyed {
        id: None,
        code: code.clone(),
        hits,
    };
    let apply = |row: &mut Keyed| row.hits += 1;
    if in_tx {
        let mut tx = Tx::begin(&pool).await?;
        let result = if update {
            query.update_or_create(&mut tx, apply, create).await?
        } else {
            query.get_or_create(&mut tx, create).await?
        };
        tokio::task::yield_now().await;
        tx.commit().await?;
        Ok(result)
    } else if update {
        query.update_or_create(&pool, apply, create).await
    } else {
        query.get_or_create(&pool, create).await
    }
}

async fn get_or_create_races_create_one_row_once<DB: TestBackend>(pool: Pool<DB>)
where
    Keyed: Persist<DB>,
{
    let run = new_run("goc");
    let postgres = using::<DB>() == "postgres";
    for round in 0..RACES {
        // Two rounds in three force both INSERTs on PostgreSQL; the others race freely.
        let forced = round % 3 != 0;
        let code = if forced {
            format!("meet-{run}-{round}")
        } else {
            format!("{run}-{round}")
        };
        let in_tx = round % 2 == 1;
        let results = race(|task| {
            keyed_write(
                pool.clone(),
                code.clone(),
                in_tx && task == 0,
                false,
                i64::try_from(task).unwrap(),
            )
        })
        .await;
        let [first, second] = results
            .map(|r| r.unwrap_or_else(|e| panic!("round {round}: no error expected: {e:#}")));
        assert!(
            first.1 != second.1,
            "round {round}: exactly one created: {first:?} {second:?}"
        );
        let (made, found) = if first.1 {
            (first.0, second.0)
        } else {
            (second.0, first.0)
        };
        assert!(made.id.is_some());
        assert_eq!(found, made, "round {round}: the other gets the same row");
        let stored = Keyed::filter(Keyed::columns().code.eq(code.as_str()))
            .all(&pool)
            .await
            .unwrap();
        assert_eq!(
            stored,
            std::slice::from_ref(&made),
            "round {round}: one row"
        );
        assert_eq!(
            keyed_saves(&code),
            [true],
            "round {round}: one post_save, created"
        );
        let entries: Vec<String> = logged(&pool)
            .await
            .into_iter()
            .filter(|e| e.split(' ').nth(1) == Some(code.as_str()))
            .collect();
        assert_eq!(
            entries,
            [format!("created {code} hits={}", made.hits)],
            "round {round}: the committed post_save"
        );
        if forced {
            assert_eq!(
                inserts_tried(&code),
                if postgres { 2 } else { 1 },
                "round {round}: both INSERT on PostgreSQL (one refused by the unique \
                 constraint), one on SQLite (the other caller waits for the write lock)"
            );
        }
    }
}

async fn update_or_create_races_apply_once_per_caller<DB: TestBackend>(pool: Pool<DB>)
where
    Keyed: Persist<DB>,
{
    let run = new_run("uoc");
    let postgres = using::<DB>() == "postgres";
    for round in 0..RACES {
        let existing = round % 2 == 0;
        // Most rounds without a row force both INSERTs on PostgreSQL.
        let forced = !existing && round % 3 != 0;
        let code = if forced {
            format!("meet-{run}-{round}")
        } else {
            format!("{run}-{round}")
        };
        let in_tx = round % 4 >= 2;
        if existing {
            DB::run(
                &pool,
                format!("INSERT INTO keyed (code, hits) VALUES ('{code}', 0)"),
            )
            .await;
        }
        let results =
            race(|task| keyed_write(pool.clone(), code.clone(), in_tx && task == 0, true, 1)).await;
        let [first, second] = results
            .map(|r| r.unwrap_or_else(|e| panic!("round {round}: no error expected: {e:#}")));
        let created = usize::from(first.1) + usize::from(second.1);
        assert_eq!(
            created,
            usize::from(!existing),
            "round {round}: {first:?} {second:?}"
        );
        assert_eq!(first.0.id, second.0.id, "round {round}: the same row");
        let mut hits = [first.0.hits, second.0.hits];
        hits.sort_unstable();
        assert_eq!(
            hits,
            [1, 2],
            "round {round}: each caller applied once, in turn"
        );
        let stored = Keyed::filter(Keyed::columns().code.eq(code.as_str()))
            .all(&pool)
            .await
            .unwrap();
        assert_eq!(stored.len(), 1, "round {round}");
        assert_eq!(stored[0].hits, 2, "round {round}: both applies kept");
        let expected_saves = if existing {
            vec![false, false]
        } else {
            vec![true, false]
        };
        assert_eq!(keyed_saves(&code), expected_saves, "round {round}");
        let entries: Vec<String> = logged(&pool)
            .await
            .into_iter()
            .filter(|e| e.split(' ').nth(1) == Some(code.as_str()))
            .collect();
        let first_entry = if existing { "updated" } else { "created" };
        assert_eq!(
            entries,
            [
                format!("{first_entry} {code} hits=1"),
                format!("updated {code} hits=2")
            ],
            "round {round}"
        );
        if forced {
            assert_eq!(
                inserts_tried(&code),
                if postgres { 2 } else { 1 },
                "round {round}: both INSERT on PostgreSQL, the loser then updates the row"
            );
        }
    }
}

async fn get_or_create_with_failing_receivers_inserts_nothing<DB: TestBackend>(pool: Pool<DB>)
where
    Keyed: Persist<DB>,
{
    let run = new_run("goc-fail");
    let k = Keyed::columns();
    let rows = |code: String| {
        let pool = pool.clone();
        async move {
            Keyed::filter(Keyed::columns().code.eq(code))
                .count(&pool)
                .await
                .unwrap()
        }
    };
    for (prefix, signal, receiver) in [
        ("fail-pre", "pre_save", "set_writes::keyed_pre_save"),
        ("fail-post", "post_save", "set_writes::keyed_post_save"),
    ] {
        let code = format!("{prefix}-{run}");
        let create = || Keyed {
            id: None,
            code: code.clone(),
            hits: 1,
        };
        let error = Keyed::filter(k.code.eq(code.as_str()))
            .get_or_create(&pool, create)
            .await
            .unwrap_err();
        assert_receiver_failed(&error, signal, receiver, "Keyed");
        assert_eq!(rows(code.clone()).await, 0, "{signal}: nothing inserted");
        let error = Keyed::filter(k.code.eq(code.as_str()))
            .update_or_create(&pool, |_| panic!("no row to apply to"), create)
            .await
            .unwrap_err();
        assert_receiver_failed(&error, signal, receiver, "Keyed");
        assert_eq!(rows(code.clone()).await, 0, "{signal}: nothing inserted");

        // In a caller's transaction: it can only roll back, taking its other writes along.
        let mut tx = Tx::begin(&pool).await.unwrap();
        let fine = format!("fine-{prefix}-{run}");
        let (_, created) = Keyed::filter(k.code.eq(fine.as_str()))
            .get_or_create(&mut tx, || Keyed {
                id: None,
                code: fine.clone(),
                hits: 1,
            })
            .await
            .unwrap();
        assert!(created);
        let error = Keyed::filter(k.code.eq(code.as_str()))
            .get_or_create(&mut tx, create)
            .await
            .unwrap_err();
        assert_receiver_failed(&error, signal, receiver, "Keyed");
        assert!(
            tx.rollback_only()
                .is_some_and(|why| why.contains("refused"))
        );
        let commit = tx.commit().await.unwrap_err();
        assert!(matches!(commit, OrmError::RollbackOnly { .. }), "{commit}");
        assert_eq!(rows(code.clone()).await, 0);
        assert_eq!(
            rows(fine.clone()).await,
            0,
            "the caller's earlier write is gone"
        );
        assert!(
            !logged(&pool)
                .await
                .iter()
                .any(|e| e.contains(&code) || e.contains(&fine)),
            "{signal}: no receiver's write committed"
        );
    }

    // update_or_create of an existing row whose save is refused: the row is unchanged.
    let code = format!("fail-post-existing-{run}");
    DB::run(
        &pool,
        format!("INSERT INTO keyed (code, hits) VALUES ('{code}', 5)"),
    )
    .await;
    let error = Keyed::filter(k.code.eq(code.as_str()))
        .update_or_create(&pool, |row| row.hits += 1, || panic!("the row exists"))
        .await
        .unwrap_err();
    assert_receiver_failed(&error, "post_save", "set_writes::keyed_post_save", "Keyed");
    let stored = Keyed::filter(k.code.eq(code.as_str()))
        .first(&pool)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.hits, 5);
}

async fn several_matching_rows_are_refused_before_any_write<DB: TestBackend>(pool: Pool<DB>)
where
    Keyed: Persist<DB>,
{
    let run = new_run("multiple");
    DB::run(
        &pool,
        format!("INSERT INTO keyed (code, hits) VALUES ('{run}-1', 4242), ('{run}-2', 4242)"),
    )
    .await;
    let k = Keyed::columns();
    let query = Keyed::filter(k.hits.eq(4242));
    let error = query
        .get_or_create(&pool, || panic!("two rows match: nothing to create"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, OrmError::MultipleRows { model: "Keyed" }),
        "{error}"
    );
    let error = query
        .update_or_create(
            &pool,
            |_| panic!("two rows match: nothing to apply"),
            || panic!("two rows match: nothing to create"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, OrmError::MultipleRows { model: "Keyed" }),
        "{error}"
    );
    let mut tx = Tx::begin(&pool).await.unwrap();
    let error = query
        .get_or_create(&mut tx, || panic!("two rows match"))
        .await
        .unwrap_err();
    assert!(matches!(error, OrmError::MultipleRows { .. }), "{error}");
    assert!(
        tx.rollback_only().is_some(),
        "a failed write marks the caller's transaction"
    );
    tx.rollback().await.unwrap();
    let stored = query.order_by(k.id.asc()).all(&pool).await.unwrap();
    assert_eq!(
        stored.iter().map(|k| k.code.clone()).collect::<Vec<_>>(),
        [format!("{run}-1"), format!("{run}-2")]
    );
    assert!(keyed_saves(&format!("{run}-1")).is_empty());
    assert!(logged(&pool).await.is_empty(), "no signal");
}

// ---- random conditions --------------------------------------------------------------------

const NAMES: &[&str] = &["ann", "bob", "cy", "dee"];
const NICKS: &[&str] = &["x", "y"];

/// A condition on `name`, `age` and the nullable `nick`.
#[derive(Clone, Debug)]
enum Cond {
    AgeGt(i64),
    AgeLe(i64),
    NameIn(Vec<&'static str>),
    NickNull,
    NickEq(&'static str),
    Not(Box<Cond>),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
}

fn cond() -> impl Strategy<Value = Cond> {
    let leaf = prop_oneof![
        (0..50_i64).prop_map(Cond::AgeGt),
        (0..50_i64).prop_map(Cond::AgeLe),
        prop::sample::subsequence(NAMES, 0..=NAMES.len()).prop_map(Cond::NameIn),
        Just(Cond::NickNull),
        prop::sample::select(NICKS).prop_map(Cond::NickEq),
    ];
    leaf.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|c| Cond::Not(Box::new(c))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Cond::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Cond::Or(Box::new(a), Box::new(b))),
        ]
    })
}

type Spec = (&'static str, i64, Option<&'static str>);

fn specs() -> impl Strategy<Value = Vec<Spec>> {
    prop::collection::vec(
        (
            prop::sample::select(NAMES),
            0..50_i64,
            prop::option::of(prop::sample::select(NICKS)),
        ),
        0..12,
    )
}

/// SQL's three-valued answer of `cond` for `row`: `None` is NULL (selects nothing).
fn eval(cond: &Cond, row: &Row) -> Option<bool> {
    match cond {
        Cond::AgeGt(x) => Some(row.age > *x),
        Cond::AgeLe(x) => Some(row.age <= *x),
        Cond::NameIn(names) => Some(names.contains(&row.name.as_str())),
        Cond::NickNull => Some(row.nick.is_none()),
        Cond::NickEq(x) => row.nick.as_deref().map(|nick| nick == *x),
        Cond::Not(a) => eval(a, row).map(|a| !a),
        Cond::And(a, b) => match (eval(a, row), eval(b, row)) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        Cond::Or(a, b) => match (eval(a, row), eval(b, row)) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
    }
}

/// `cond` as a `Filter` of model `M`, built from `M`'s columns by `columns`.
macro_rules! filter_of {
    ($model:ident) => {{
        fn filter(cond: &Cond) -> Filter<$model> {
            let c = $model::columns();
            match cond {
                Cond::AgeGt(x) => c.age.gt(*x),
                Cond::AgeLe(x) => c.age.le(*x),
                Cond::NameIn(names) => c.name.is_in(names.iter().copied()),
                Cond::NickNull => c.nick.is_null(),
                Cond::NickEq(x) => c.nick.eq(Some((*x).to_owned())),
                Cond::Not(a) => !filter(a),
                Cond::And(a, b) => filter(a) & filter(b),
                Cond::Or(a, b) => filter(a) | filter(b),
            }
        }
        filter
    }};
}

async fn one_random_case<DB: TestBackend>(pool: &Pool<DB>, specs: &[Spec], cond: &Cond)
where
    Quiet: Persist<DB>,
    Both: Persist<DB>,
    PreSaved: Persist<DB>,
{
    let both = filter_of!(Both);
    let pre_saved = filter_of!(PreSaved);

    // Reading, then deleting with pre_delete and post_delete heard.
    let run = new_run("prop-delete");
    let rows = insert_rows(pool, &run, specs).await;
    let (matching, others): (Vec<Row>, Vec<Row>) = rows
        .iter()
        .cloned()
        .partition(|r| eval(cond, r) == Some(true));
    let b = Both::columns();
    let query = Both::filter(b.run.eq(run.as_str())).filter(both(cond));
    let mut read: Vec<Row> = query
        .all(pool)
        .await
        .unwrap()
        .iter()
        .map(Both::row)
        .collect();
    read.sort();
    assert_eq!(read, matching, "all: {cond:?}");
    assert_eq!(query.count(pool).await.unwrap(), matching.len() as u64);
    assert_eq!(query.exists(pool).await.unwrap(), !matching.is_empty());
    let deleted = query.delete(pool).await.unwrap();
    assert_eq!(deleted.total(), matching.len() as u64, "delete: {cond:?}");
    assert_eq!(
        rows_of(pool, &run).await,
        others,
        "delete keeps the others: {cond:?}"
    );
    let got = heard_sorted(&run);
    let ids = |signal: &str| -> Vec<i64> {
        got.iter()
            .filter(|h| h.signal == signal)
            .map(|h| h.row.id)
            .collect()
    };
    let expected: Vec<i64> = matching.iter().map(|r| r.id).collect();
    assert_eq!(ids("pre_delete"), expected, "{cond:?}");
    assert_eq!(ids("post_delete"), expected, "{cond:?}");

    // Updating with pre_save and post_save heard.
    let run = new_run("prop-update");
    let rows = insert_rows(pool, &run, specs).await;
    let p = PreSaved::columns();
    let changed = PreSaved::filter(p.run.eq(run.as_str()))
        .filter(pre_saved(cond))
        .update(pool, [p.age.set(99)])
        .await
        .unwrap();
    let expected: Vec<Row> = rows
        .iter()
        .map(|r| {
            if eval(cond, r) == Some(true) {
                Row {
                    age: 99,
                    ..r.clone()
                }
            } else {
                r.clone()
            }
        })
        .collect();
    assert_eq!(
        changed,
        expected.iter().filter(|r| r.age == 99).count() as u64,
        "update: {cond:?}"
    );
    assert_eq!(rows_of(pool, &run).await, expected, "update: {cond:?}");
    assert_eq!(
        heard(&run)
            .iter()
            .filter(|h| h.signal == "post_save")
            .count() as u64,
        changed
    );
}

async fn random_conditions_select_update_and_delete_what_a_rust_filter_selects<DB: TestBackend>(
    pool: Pool<DB>,
) where
    Quiet: Persist<DB>,
    Both: Persist<DB>,
    PreSaved: Persist<DB>,
{
    let runtime = tokio::runtime::Handle::current();
    let cases = std::env::var("SIGNALS_PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(32);
    tokio::task::block_in_place(|| {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&(specs(), cond()), |(specs, cond)| {
                runtime.block_on(one_random_case(&pool, &specs, &cond));
                Ok(())
            })
            .unwrap();
    });
}
