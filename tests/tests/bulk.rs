//! `bulk_insert` and `bulk_update` (issue 12, set-based writes that still signal), on SQLite in
//! memory, a SQLite WAL file and PostgreSQL: the order and payloads of their signals, the
//! statements they run and where chunks split, atomicity with the receivers and key give-back,
//! muting, and the rules checked before any signal.
//!
//! Receivers are linked per model, so each receiver configuration has a model (and table) of
//! its own: `Note` (both signals, writing to `log` in the write's transaction, failing on
//! request), `Tally` (counting receivers), `Sku` (an application-given key), `Dot` and `Mixed`
//! (nobody listens). What receivers hear is kept per test task (a task-local), since the three
//! backends of a scenario run at once in this binary.

mod support;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use signals_core::Mute;
use signals_orm::model_signals::{PostSaveSignal, PreSaveSignal};
use signals_orm::{
    AnyTx, Backend, BoxError, Model, ModelExt, OrmError, Persist, PostSave, PreSave, Tx, receiver,
};
use sqlx::Pool;
use support::{TestBackend, log, logged, statements};

const SCHEMA: &str = "
CREATE TABLE log (id {serial}, entry TEXT NOT NULL);
CREATE TABLE notes (id {serial}, title TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE tallies (id {serial}, n BIGINT NOT NULL);
CREATE TABLE skus (code TEXT PRIMARY KEY, stock BIGINT NOT NULL);
CREATE TABLE dots (id {serial}, n BIGINT NOT NULL CHECK (n >= 0));
CREATE TABLE mixed (id {serial}, label TEXT, amount DOUBLE PRECISION NOT NULL, flag BOOLEAN NOT NULL);
";

every_backend!(
    bulk_insert_sends_every_pre_save_then_every_post_save,
    a_key_set_already_is_inserted_with_it_first,
    generated_keys_follow_the_order_of_the_rows_over_chunk_boundaries,
    receivers_hear_every_row_over_chunk_boundaries,
    a_failing_receiver_undoes_the_whole_insert_and_gives_the_keys_back,
    a_failure_in_a_later_chunk_undoes_the_earlier_ones,
    a_failure_in_a_callers_transaction_makes_it_rollback_only,
    a_cancelled_bulk_insert_gives_the_keys_back,
    application_keys_are_inserted_as_given,
    a_muted_bulk_write_sends_nothing_and_still_writes,
    bulk_update_sends_update_fields_and_sets_each_row_by_key,
    an_instance_whose_row_is_gone_is_not_counted_nor_post_saved,
    bulk_update_checks_before_any_signal,
    bulk_update_splits_its_case_statement_at_the_chunk_boundary,
    typed_values_and_nulls_round_trip_through_case,
);

// ---- models and receivers ------------------------------------------------------------------

/// Heard by `note_pre_save` and `note_post_save`, which log through the write's transaction.
#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "notes")]
struct Note {
    #[model(primary_key)]
    id: Option<i64>,
    title: String,
    body: String,
}

/// Counted by `tally_pre_save` and `tally_post_save`.
#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "tallies")]
struct Tally {
    #[model(primary_key)]
    id: Option<i64>,
    n: i64,
}

/// An application-given key, heard by `sku_pre_save` and `sku_post_save`.
#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "skus")]
struct Sku {
    #[model(primary_key)]
    code: String,
    stock: i64,
}

/// Nobody listens: one column, so a statement takes the most rows.
#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "dots")]
struct Dot {
    #[model(primary_key)]
    id: Option<i64>,
    n: i64,
}

/// Nobody listens: several column types, one nullable.
#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "mixed")]
struct Mixed {
    #[model(primary_key)]
    id: Option<i64>,
    label: Option<String>,
    amount: f64,
    flag: bool,
}

/// What the receivers of the current test task heard.
#[derive(Default)]
struct Ears {
    lines: Mutex<Vec<String>>,
    pre: AtomicUsize,
    post: AtomicUsize,
    /// `post_save`s of an instance without its key.
    keyless: AtomicUsize,
}

tokio::task_local! {
    static EARS: Arc<Ears>;
}

fn hear(line: String) {
    let _ = EARS.try_with(|ears| ears.lines.lock().unwrap().push(line));
}

fn count(pre: bool, keyed: bool) {
    let _ = EARS.try_with(|ears| {
        let counter = if pre { &ears.pre } else { &ears.post };
        counter.fetch_add(1, Ordering::SeqCst);
        if !pre && !keyed {
            ears.keyless.fetch_add(1, Ordering::SeqCst);
        }
    });
}

/// Runs `work` with ears of its own; returns its output and what its receivers heard.
async fn listening<T>(work: impl Future<Output = T>) -> (T, Arc<Ears>) {
    let ears = Arc::new(Ears::default());
    let out = EARS.scope(Arc::clone(&ears), work).await;
    (out, ears)
}

fn lines(ears: &Ears) -> Vec<String> {
    ears.lines.lock().unwrap().clone()
}

/// Records the payload, fails for a title starting with `fail pre`, and otherwise capitalises
/// the body (saved with the row) and logs in the write's transaction.
#[receiver(pre_save, sender = Note)]
async fn note_pre_save(ev: PreSave<'_, Note>, tx: AnyTx<'_>) -> Result<(), BoxError> {
    hear(format!(
        "pre {} pk={:?} adding={} raw={} fields={:?} using={}",
        ev.instance.title, ev.instance.id, ev.adding, ev.raw, ev.update_fields, ev.using
    ));
    if ev.instance.title.starts_with("fail pre") {
        return Err(format!("refused {}", ev.instance.title).into());
    }
    ev.instance.body = ev.instance.body.to_uppercase();
    log(tx, format!("pre {}", ev.instance.title)).await?;
    Ok(())
}

/// Records the payload, fails for a title starting with `fail post`, never returns for one
/// starting with `hang`, logs otherwise.
#[receiver(post_save, sender = Note)]
async fn note_post_save(ev: PostSave<'_, Note>, tx: AnyTx<'_>) -> Result<(), BoxError> {
    hear(format!(
        "post {} pk={:?} created={} raw={} fields={:?}",
        ev.instance.title, ev.instance.id, ev.created, ev.raw, ev.update_fields
    ));
    if ev.instance.title.starts_with("fail post") {
        return Err(format!("refused {}", ev.instance.title).into());
    }
    if ev.instance.title.starts_with("hang") {
        std::future::pending::<()>().await;
    }
    log(
        tx,
        format!("post {} {:?}", ev.instance.title, ev.instance.id),
    )
    .await?;
    Ok(())
}

#[receiver(pre_save, sender = Tally)]
fn tally_pre_save(ev: PreSave<'_, Tally>) {
    count(true, ev.instance.id.is_some());
    if ev.update_fields.is_some() {
        hear(format!(
            "pre fields={:?} adding={}",
            ev.update_fields, ev.adding
        ));
    }
}

#[receiver(post_save, sender = Tally)]
fn tally_post_save(ev: PostSave<'_, Tally>) {
    count(false, ev.instance.id.is_some());
    if ev.update_fields.is_some() {
        hear(format!(
            "post fields={:?} created={}",
            ev.update_fields, ev.created
        ));
    }
}

#[receiver(pre_save, sender = Sku)]
fn sku_pre_save(ev: PreSave<'_, Sku>) {
    hear(format!(
        "pre {} adding={} fields={:?}",
        ev.instance.code, ev.adding, ev.update_fields
    ));
}

#[receiver(post_save, sender = Sku)]
fn sku_post_save(ev: PostSave<'_, Sku>) {
    hear(format!(
        "post {} created={} fields={:?}",
        ev.instance.code, ev.created, ev.update_fields
    ));
}

// ---- the statements sqlx ran ---------------------------------------------------------------

// ---- helpers -------------------------------------------------------------------------------

fn notes(titles: &[&str]) -> Vec<Note> {
    titles
        .iter()
        .map(|title| Note {
            id: None,
            title: (*title).to_owned(),
            body: format!("body of {title}"),
        })
        .collect()
}

fn keys<M: Model<Pk = i64>>(instances: &[M]) -> Vec<Option<i64>> {
    instances.iter().map(Model::pk).collect()
}

/// The statements of what ran that wrote rows of `table` (not the transaction's own, not a new
/// connection's set-up, not the receivers' `log` rows).
fn writes<'r>(ran: &'r [String], table: &str) -> Vec<&'r str> {
    let quoted = format!("\"{table}\"");
    ran.iter()
        .map(String::as_str)
        .filter(|s| (s.starts_with("INSERT") || s.starts_with("UPDATE")) && s.contains(&quoted))
        .collect()
}

/// Placeholder `n` as the bulk statements of `DB` write it.
fn ph<DB: Backend>(n: usize) -> String {
    if DB::ANONYMOUS_PLACEHOLDERS {
        "?".to_owned()
    } else {
        format!("${n}")
    }
}

/// `rows` rows of `per_row` placeholders, as a bulk INSERT of `DB` writes them after `VALUES`.
fn values<DB: Backend>(rows: usize, per_row: usize) -> String {
    (0..rows)
        .map(|row| {
            let row: Vec<String> = (1..=per_row).map(|c| ph::<DB>(row * per_row + c)).collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every row of `table` as (id, n), by id.
async fn id_n<DB: TestBackend>(pool: &Pool<DB>, table: &str) -> Vec<(i64, i64)> {
    let ids = DB::integers(pool, format!("SELECT id FROM {table} ORDER BY id")).await;
    let ns = DB::integers(pool, format!("SELECT n FROM {table} ORDER BY id")).await;
    ids.into_iter().zip(ns).collect()
}

/// Checks that every instance's key is the row holding its `n`, that the keys are distinct,
/// and that the table holds `expected` rows.
async fn check_rows<DB: TestBackend>(
    pool: &Pool<DB>,
    table: &str,
    instances: &[(Option<i64>, i64)],
    expected: usize,
) {
    let rows: std::collections::HashMap<i64, i64> = id_n(pool, table).await.into_iter().collect();
    assert_eq!(rows.len(), expected, "rows in {table}");
    let mut seen = std::collections::HashSet::new();
    for (i, (id, n)) in instances.iter().enumerate() {
        let id = id.unwrap_or_else(|| panic!("instance {i} has its key"));
        assert!(seen.insert(id), "key {id} given twice");
        assert_eq!(rows.get(&id), Some(n), "instance {i}: its key is its row");
    }
}

// ---- bulk_insert ---------------------------------------------------------------------------

/// `pre_save` for every instance in order (as an INSERT's, changes saved), one INSERT, then
/// `post_save` for every instance in order with its key; all in one transaction with the
/// receivers' own writes. An empty slice does and sends nothing.
async fn bulk_insert_sends_every_pre_save_then_every_post_save<DB: TestBackend>(pool: Pool<DB>)
where
    Note: Persist<DB>,
    support::Log: Persist<DB>,
{
    let using = <DB as Backend>::NAME;
    let (inserted, ears) = listening(Note::bulk_insert(&pool, &mut [])).await;
    assert_eq!(inserted.unwrap(), 0);
    assert!(lines(&ears).is_empty(), "an empty slice sends nothing");

    let mut batch = notes(&["a", "b", "c"]);
    let ((inserted, ran), ears) =
        listening(statements::of(Note::bulk_insert(&pool, &mut batch))).await;
    assert_eq!(inserted.unwrap(), 3);
    let k = keys(&batch);
    assert!(k.iter().all(Option::is_some), "{k:?}");
    assert_eq!(
        lines(&ears),
        [
            format!("pre a pk=None adding=true raw=false fields=None using={using}"),
            format!("pre b pk=None adding=true raw=false fields=None using={using}"),
            format!("pre c pk=None adding=true raw=false fields=None using={using}"),
            format!("post a pk={:?} created=true raw=false fields=None", k[0]),
            format!("post b pk={:?} created=true raw=false fields=None", k[1]),
            format!("post c pk={:?} created=true raw=false fields=None", k[2]),
        ]
    );
    let insert = format!(
        r#"INSERT INTO "notes" ("title", "body") VALUES {} RETURNING "id""#,
        values::<DB>(3, 2)
    );
    let notes_written = writes(&ran, "notes");
    assert_eq!(notes_written, [insert.as_str()], "one INSERT for the three");
    assert_eq!(
        DB::strings(&pool, "SELECT body FROM notes ORDER BY id").await,
        ["BODY OF A", "BODY OF B", "BODY OF C"],
        "pre_save's changes are saved"
    );
    assert_eq!(
        DB::strings(&pool, "SELECT title FROM notes ORDER BY id").await,
        ["a", "b", "c"]
    );
    let ids = DB::integers(&pool, "SELECT id FROM notes ORDER BY id".into()).await;
    assert_eq!(k, ids.into_iter().map(Some).collect::<Vec<_>>());
    assert_eq!(
        logged(&pool).await,
        [
            "pre a".to_owned(),
            "pre b".to_owned(),
            "pre c".to_owned(),
            format!("post a {:?}", k[0]),
            format!("post b {:?}", k[1]),
            format!("post c {:?}", k[2]),
        ],
        "the receivers' writes are committed with the rows"
    );
}

/// A generated key set already is inserted as given, in a statement of its own, first;
/// `post_save` still follows the instances' order.
async fn a_key_set_already_is_inserted_with_it_first<DB: TestBackend>(pool: Pool<DB>)
where
    Note: Persist<DB>,
    support::Log: Persist<DB>,
{
    let mut mixed = notes(&["d", "e", "f"]);
    mixed[1].id = Some(1_000);
    let ((inserted, ran), ears) =
        listening(statements::of(Note::bulk_insert(&pool, &mut mixed))).await;
    assert_eq!(inserted.unwrap(), 3);
    let k = keys(&mixed);
    assert_eq!(k[1], Some(1_000));
    assert!(k[0].is_some() && k[2].is_some() && k[0] != k[2]);
    let posts: Vec<String> = lines(&ears)
        .into_iter()
        .filter(|l| l.starts_with("post"))
        .collect();
    assert_eq!(
        posts,
        [
            format!("post d pk={:?} created=true raw=false fields=None", k[0]),
            "post e pk=Some(1000) created=true raw=false fields=None".to_owned(),
            format!("post f pk={:?} created=true raw=false fields=None", k[2]),
        ]
    );
    let notes_written = writes(&ran, "notes");
    assert_eq!(
        notes_written,
        [
            format!(
                r#"INSERT INTO "notes" ("id", "title", "body") VALUES {}"#,
                values::<DB>(1, 3)
            ),
            format!(
                r#"INSERT INTO "notes" ("title", "body") VALUES {} RETURNING "id""#,
                values::<DB>(2, 2)
            ),
        ]
    );
    assert_eq!(
        DB::scalar(
            &pool,
            "SELECT COUNT(*) FROM notes WHERE id = 1000 AND title = 'e'"
        )
        .await,
        1
    );
}

/// Nobody listens to `Dot`: 0, 1, a chunk, a chunk and one more, and 100,000 rows; each
/// instance gets the key of the row holding its value (the rows of a multi-row INSERT come back
/// in `VALUES` order). A chunk given the pool is one statement alone in autocommit; more is
/// one INSERT per chunk in a transaction.
async fn generated_keys_follow_the_order_of_the_rows_over_chunk_boundaries<DB: TestBackend>(
    pool: Pool<DB>,
) where
    Dot: Persist<DB>,
{
    let chunk = DB::MAX_BIND_PARAMETERS; // one column a row
    let mut total = 0;
    for (round, size) in [0, 1, chunk, chunk + 1, 100_000].into_iter().enumerate() {
        // Values unique to the round, so a key matched to the wrong instance shows.
        let base = i64::try_from(round).unwrap() * 1_000_000;
        let mut dots: Vec<Dot> = (0..size)
            .map(|i| Dot {
                id: None,
                n: base + i64::try_from(i).unwrap(),
            })
            .collect();
        let (inserted, ran) = statements::of(Dot::bulk_insert(&pool, &mut dots)).await;
        assert_eq!(inserted.unwrap(), size);
        total += size;
        let written = writes(&ran, "dots");
        assert_eq!(
            written.len(),
            size.div_ceil(chunk),
            "{size} rows: one INSERT a chunk"
        );
        assert!(
            written
                .iter()
                .all(|s| s.starts_with(r#"INSERT INTO "dots" ("n") VALUES"#))
        );
        if <DB as Backend>::NAME == "postgres" {
            let committed = ran.iter().any(|s| s == "COMMIT");
            assert_eq!(
                committed,
                size > chunk,
                "{size} rows: a transaction only for chunks"
            );
        }
        let instances: Vec<(Option<i64>, i64)> = dots.iter().map(|d| (d.id, d.n)).collect();
        check_rows(&pool, "dots", &instances, total).await;
    }
}

/// With receivers (`Tally`), every row is heard once before and once after, with its key set
/// in `post_save`, at the same boundaries.
async fn receivers_hear_every_row_over_chunk_boundaries<DB: TestBackend>(pool: Pool<DB>)
where
    Tally: Persist<DB>,
{
    let chunk = DB::MAX_BIND_PARAMETERS;
    let mut total = 0;
    for (round, size) in [0, 1, chunk, chunk + 1, 100_000].into_iter().enumerate() {
        let base = i64::try_from(round).unwrap() * 1_000_000;
        let mut tallies: Vec<Tally> = (0..size)
            .map(|i| Tally {
                id: None,
                n: base + i64::try_from(i).unwrap(),
            })
            .collect();
        let ((inserted, ran), ears) =
            listening(statements::of(Tally::bulk_insert(&pool, &mut tallies))).await;
        assert_eq!(inserted.unwrap(), size);
        total += size;
        assert_eq!(ears.pre.load(Ordering::SeqCst), size, "pre_save for each");
        assert_eq!(ears.post.load(Ordering::SeqCst), size, "post_save for each");
        assert_eq!(
            ears.keyless.load(Ordering::SeqCst),
            0,
            "post_save sees the key"
        );
        assert_eq!(writes(&ran, "tallies").len(), size.div_ceil(chunk));
        let instances: Vec<(Option<i64>, i64)> = tallies.iter().map(|t| (t.id, t.n)).collect();
        check_rows(&pool, "tallies", &instances, total).await;
    }
}

/// A receiver failing on row k of n undoes every row and every receiver's write, and gives
/// every generated key back (a key set before the call stays); a retry then inserts.
async fn a_failing_receiver_undoes_the_whole_insert_and_gives_the_keys_back<DB: TestBackend>(
    pool: Pool<DB>,
) where
    Note: Persist<DB>,
    support::Log: Persist<DB>,
{
    // post_save of row 3 of 4 fails: the INSERT ran and the keys were set.
    let mut batch = notes(&["one", "two", "fail post three", "four"]);
    batch[3].id = Some(77);
    let (failed, ears) = listening(Note::bulk_insert(&pool, &mut batch)).await;
    let error = failed.unwrap_err();
    assert!(matches!(error, OrmError::Signal(_)), "{error:?}");
    assert!(
        format!("{error:#}").contains("refused fail post three"),
        "{error:#}"
    );
    assert_eq!(
        keys(&batch),
        [None, None, None, Some(77)],
        "keys given back"
    );
    let heard = lines(&ears);
    assert_eq!(heard.iter().filter(|l| l.starts_with("pre")).count(), 4);
    assert_eq!(
        heard.iter().filter(|l| l.starts_with("post")).count(),
        3,
        "post_save stops at the failing row: {heard:#?}"
    );
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM notes").await, 0);
    assert!(
        logged(&pool).await.is_empty(),
        "the receivers' writes are undone"
    );
    assert_eq!(
        batch[0].body, "BODY OF ONE",
        "what pre_save changed stays changed, as with save"
    );

    // pre_save of row 2 of 3 fails: nothing was inserted.
    let mut batch = notes(&["first", "fail pre second", "third"]);
    let (failed, ears) = listening(Note::bulk_insert(&pool, &mut batch)).await;
    assert!(matches!(failed, Err(OrmError::Signal(_))));
    assert_eq!(keys(&batch), [None, None, None]);
    assert_eq!(lines(&ears).len(), 2, "no send after the failing one");
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM notes").await, 0);
    assert!(logged(&pool).await.is_empty());

    // The retry inserts every row (no stale key sends it to UPDATE).
    batch[1].title = "second".into();
    assert_eq!(Note::bulk_insert(&pool, &mut batch).await.unwrap(), 3);
    assert_eq!(
        DB::strings(&pool, "SELECT title FROM notes ORDER BY id").await,
        ["first", "second", "third"]
    );
    let ids = DB::integers(&pool, "SELECT id FROM notes ORDER BY id".into()).await;
    assert_eq!(keys(&batch), ids.into_iter().map(Some).collect::<Vec<_>>());
}

/// A database failure in the second chunk undoes the first chunk too, and the keys it set.
async fn a_failure_in_a_later_chunk_undoes_the_earlier_ones<DB: TestBackend>(pool: Pool<DB>)
where
    Dot: Persist<DB>,
{
    let chunk = DB::MAX_BIND_PARAMETERS;
    let mut dots: Vec<Dot> = (0..=chunk)
        .map(|i| Dot {
            id: None,
            n: i64::try_from(i).unwrap(),
        })
        .collect();
    dots[chunk].n = -1; // refused by the CHECK, in the second INSERT
    let error = Dot::bulk_insert(&pool, &mut dots).await.unwrap_err();
    assert!(
        matches!(&error, OrmError::Database { operation, .. } if operation.action == "bulk insert"),
        "{error:?}"
    );
    assert!(dots.iter().all(|d| d.id.is_none()), "every key given back");
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM dots").await, 0);

    // Fixed, it goes in whole.
    dots[chunk].n = 1;
    assert_eq!(Dot::bulk_insert(&pool, &mut dots).await.unwrap(), chunk + 1);
    let instances: Vec<(Option<i64>, i64)> = dots.iter().map(|d| (d.id, d.n)).collect();
    check_rows(&pool, "dots", &instances, chunk + 1).await;
}

/// In a caller's transaction, a failure marks it rollback-only and gives the keys back; what
/// committed before it stays, nothing of it does.
async fn a_failure_in_a_callers_transaction_makes_it_rollback_only<DB: TestBackend>(pool: Pool<DB>)
where
    Note: Persist<DB>,
    support::Log: Persist<DB>,
{
    let mut tx = Tx::begin(&pool).await.unwrap();
    let mut kept = notes(&["kept"]);
    assert_eq!(Note::bulk_insert(&mut tx, &mut kept).await.unwrap(), 1);
    tx.commit().await.unwrap();

    let mut tx = Tx::begin(&pool).await.unwrap();
    let mut batch = notes(&["x", "y", "fail post z"]);
    let failed = Note::bulk_insert(&mut tx, &mut batch).await;
    assert!(matches!(failed, Err(OrmError::Signal(_))));
    assert_eq!(keys(&batch), [None, None, None]);
    assert!(tx.rollback_only().is_some());
    assert!(matches!(
        tx.commit().await,
        Err(OrmError::RollbackOnly { .. })
    ));
    assert_eq!(
        DB::strings(&pool, "SELECT title FROM notes ORDER BY id").await,
        ["kept"]
    );
    assert_eq!(
        logged(&pool).await.len(),
        2,
        "only the committed insert's receivers wrote"
    );
}

/// A bulk insert whose future is dropped while a `post_save` receiver runs (its INSERT done,
/// its keys set) gives the keys back and leaves no row; in a caller's transaction it marks it
/// rollback-only.
async fn a_cancelled_bulk_insert_gives_the_keys_back<DB: TestBackend>(pool: Pool<DB>)
where
    Note: Persist<DB>,
    support::Log: Persist<DB>,
{
    let patience = std::time::Duration::from_millis(200);
    let mut batch = notes(&["one", "hang two", "three"]);
    let cancelled = tokio::time::timeout(patience, Note::bulk_insert(&pool, &mut batch)).await;
    assert!(cancelled.is_err(), "the receiver never returns");
    assert_eq!(keys(&batch), [None, None, None]);
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM notes").await, 0);
    assert!(logged(&pool).await.is_empty());

    let mut tx = Tx::begin(&pool).await.unwrap();
    let cancelled = tokio::time::timeout(patience, Note::bulk_insert(&mut tx, &mut batch)).await;
    assert!(cancelled.is_err());
    assert_eq!(keys(&batch), [None, None, None]);
    assert!(tx.rollback_only().is_some(), "half a write never commits");
    assert!(tx.commit().await.is_err());
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM notes").await, 0);
}

/// Application-given keys are inserted as given (`adding` true, `created` true) and stay.
async fn application_keys_are_inserted_as_given<DB: TestBackend>(pool: Pool<DB>)
where
    Sku: Persist<DB>,
{
    let mut skus: Vec<Sku> = ["PEN-1", "INK-2", "PAD-3"]
        .into_iter()
        .zip(1..)
        .map(|(code, stock)| Sku {
            code: code.into(),
            stock,
        })
        .collect();
    let ((inserted, ran), ears) =
        listening(statements::of(Sku::bulk_insert(&pool, &mut skus))).await;
    assert_eq!(inserted.unwrap(), 3);
    assert_eq!(
        lines(&ears),
        [
            "pre PEN-1 adding=true fields=None",
            "pre INK-2 adding=true fields=None",
            "pre PAD-3 adding=true fields=None",
            "post PEN-1 created=true fields=None",
            "post INK-2 created=true fields=None",
            "post PAD-3 created=true fields=None",
        ]
    );
    assert_eq!(
        writes(&ran, "skus"),
        [format!(
            r#"INSERT INTO "skus" ("code", "stock") VALUES ({}, {}), ({}, {}), ({}, {})"#,
            ph::<DB>(1),
            ph::<DB>(2),
            ph::<DB>(3),
            ph::<DB>(4),
            ph::<DB>(5),
            ph::<DB>(6)
        )]
    );
    assert_eq!(
        DB::strings(
            &pool,
            "SELECT code || ':' || CAST(stock AS TEXT) FROM skus ORDER BY code"
        )
        .await,
        ["INK-2:2", "PAD-3:3", "PEN-1:1"]
    );

    // A duplicate key is the database's error, and nothing of the batch stays.
    let mut again = vec![
        Sku {
            code: "NEW-4".into(),
            stock: 4,
        },
        Sku {
            code: "PEN-1".into(),
            stock: 9,
        },
    ];
    let error = Sku::bulk_insert(&pool, &mut again).await.unwrap_err();
    assert!(matches!(error, OrmError::Database { .. }), "{error:?}");
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM skus").await, 3);

    // bulk_update of an application key.
    for sku in &mut skus {
        sku.stock *= 10;
    }
    let (updated, ears) = listening(Sku::bulk_update(&pool, &mut skus, &["stock"])).await;
    assert_eq!(updated.unwrap(), 3);
    assert_eq!(
        lines(&ears),
        [
            r#"pre PEN-1 adding=false fields=Some(["stock"])"#,
            r#"pre INK-2 adding=false fields=Some(["stock"])"#,
            r#"pre PAD-3 adding=false fields=Some(["stock"])"#,
            r#"post PEN-1 created=false fields=Some(["stock"])"#,
            r#"post INK-2 created=false fields=Some(["stock"])"#,
            r#"post PAD-3 created=false fields=Some(["stock"])"#,
        ]
    );
    assert_eq!(
        DB::strings(
            &pool,
            "SELECT code || ':' || CAST(stock AS TEXT) FROM skus ORDER BY code"
        )
        .await,
        ["INK-2:20", "PAD-3:30", "PEN-1:10"]
    );
}

/// Muted `pre_save` and `post_save`: no receiver runs (so `pre_save` changes nothing and
/// nobody logs), and the rows are written all the same.
async fn a_muted_bulk_write_sends_nothing_and_still_writes<DB: TestBackend>(pool: Pool<DB>)
where
    Note: Persist<DB>,
    support::Log: Persist<DB>,
{
    let mute = || {
        Mute::new()
            .signal::<PreSaveSignal>()
            .signal::<PostSaveSignal>()
    };
    let mut batch = notes(&["quiet", "quieter"]);
    let (inserted, ears) = listening(mute().scope(Note::bulk_insert(&pool, &mut batch))).await;
    assert_eq!(inserted.unwrap(), 2);
    assert!(lines(&ears).is_empty(), "muted: {:?}", lines(&ears));
    assert!(batch.iter().all(|n| n.id.is_some()));
    assert_eq!(
        DB::strings(&pool, "SELECT body FROM notes ORDER BY id").await,
        ["body of quiet", "body of quieter"],
        "written, and unchanged by the muted pre_save"
    );

    for note in &mut batch {
        note.title = format!("{} still", note.title);
    }
    let (updated, ears) =
        listening(mute().scope(Note::bulk_update(&pool, &mut batch, &["title"]))).await;
    assert_eq!(updated.unwrap(), 2);
    assert!(lines(&ears).is_empty());
    assert_eq!(
        DB::strings(&pool, "SELECT title FROM notes ORDER BY id").await,
        ["quiet still", "quieter still"]
    );
    assert!(logged(&pool).await.is_empty());
}

// ---- bulk_update ---------------------------------------------------------------------------

/// `pre_save` for each instance with `update_fields`, one CASE UPDATE, then `post_save` for
/// each row updated; only the fields named are written, `pre_save`'s changes to them included.
async fn bulk_update_sends_update_fields_and_sets_each_row_by_key<DB: TestBackend>(pool: Pool<DB>)
where
    Note: Persist<DB>,
    support::Log: Persist<DB>,
{
    let using = <DB as Backend>::NAME;
    let mut batch = notes(&["a", "b", "c"]);
    Note::bulk_insert(&pool, &mut batch).await.unwrap();
    let k = keys(&batch);
    for note in &mut batch {
        note.title = format!("{}2", note.title);
        note.body = format!("new body of {}", note.title);
    }
    // `title` twice counts once; `body` is not saved even though pre_save changes it.
    let ((updated, ran), ears) = listening(statements::of(Note::bulk_update(
        &pool,
        &mut batch,
        &["title", "title"],
    )))
    .await;
    assert_eq!(updated.unwrap(), 3);
    assert_eq!(
        lines(&ears),
        [
            format!(
                r#"pre a2 pk={:?} adding=false raw=false fields=Some(["title"]) using={using}"#,
                k[0]
            ),
            format!(
                r#"pre b2 pk={:?} adding=false raw=false fields=Some(["title"]) using={using}"#,
                k[1]
            ),
            format!(
                r#"pre c2 pk={:?} adding=false raw=false fields=Some(["title"]) using={using}"#,
                k[2]
            ),
            format!(
                r#"post a2 pk={:?} created=false raw=false fields=Some(["title"])"#,
                k[0]
            ),
            format!(
                r#"post b2 pk={:?} created=false raw=false fields=Some(["title"])"#,
                k[1]
            ),
            format!(
                r#"post c2 pk={:?} created=false raw=false fields=Some(["title"])"#,
                k[2]
            ),
        ]
    );
    let p = ph::<DB>;
    let update = format!(
        r#"UPDATE "notes" SET "title" = CASE "id" WHEN {} THEN {} WHEN {} THEN {} WHEN {} THEN {} END WHERE "id" IN ({}, {}, {}) RETURNING "id""#,
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6),
        p(7),
        p(8),
        p(9)
    );
    let notes_written = writes(&ran, "notes");
    assert_eq!(notes_written, [update.as_str()]);
    assert_eq!(
        DB::strings(&pool, "SELECT title FROM notes ORDER BY id").await,
        ["a2", "b2", "c2"]
    );
    assert_eq!(
        DB::strings(&pool, "SELECT body FROM notes ORDER BY id").await,
        ["BODY OF A", "BODY OF B", "BODY OF C"],
        "a field not named is not written"
    );

    // Both fields, in another order: pre_save's change to `body` is saved this time.
    let ((updated, ran), _) = listening(statements::of(Note::bulk_update(
        &pool,
        &mut batch[1..],
        &["body", "title"],
    )))
    .await;
    assert_eq!(updated.unwrap(), 2);
    let both = format!(
        r#"UPDATE "notes" SET "body" = CASE "id" WHEN {} THEN {} WHEN {} THEN {} END, "title" = CASE "id" WHEN {} THEN {} WHEN {} THEN {} END WHERE "id" IN ({}, {}) RETURNING "id""#,
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6),
        p(7),
        p(8),
        p(9),
        p(10)
    );
    assert!(writes(&ran, "notes").contains(&both.as_str()), "{ran:#?}");
    assert_eq!(
        DB::strings(&pool, "SELECT body FROM notes ORDER BY id").await,
        ["BODY OF A", "NEW BODY OF B2", "NEW BODY OF C2"]
    );
}

/// An instance whose row is gone gets `pre_save`, but no `post_save`, and is not counted.
async fn an_instance_whose_row_is_gone_is_not_counted_nor_post_saved<DB: TestBackend>(
    pool: Pool<DB>,
) where
    Note: Persist<DB>,
    support::Log: Persist<DB>,
{
    let mut batch = notes(&["a", "b", "c"]);
    Note::bulk_insert(&pool, &mut batch).await.unwrap();
    let mut gone = vec![
        batch[0].clone(),
        Note {
            id: Some(999_999),
            title: "ghost".into(),
            body: String::new(),
        },
    ];
    gone[0].title = "a3".into();
    let (updated, ears) = listening(Note::bulk_update(&pool, &mut gone, &["title"])).await;
    assert_eq!(updated.unwrap(), 1);
    let heard = lines(&ears);
    assert_eq!(heard.len(), 3, "{heard:#?}");
    assert!(heard[1].starts_with("pre ghost pk=Some(999999)"));
    assert!(heard[2].starts_with("post a3 "));
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM notes").await, 3);
}

/// Unknown fields and missing keys fail before any signal; empty fields or instances do and
/// send nothing.
async fn bulk_update_checks_before_any_signal<DB: TestBackend>(pool: Pool<DB>)
where
    Note: Persist<DB>,
    support::Log: Persist<DB>,
{
    let mut batch = notes(&["a", "b"]);
    Note::bulk_insert(&pool, &mut batch).await.unwrap();
    let logged_before = logged(&pool).await;
    batch[0].title = "changed".into();

    let (failed, ears) = listening(Note::bulk_update(&pool, &mut batch, &["titel"])).await;
    match failed {
        Err(OrmError::UnknownField { model, field, hint }) => {
            assert_eq!((model, field.as_str()), ("Note", "titel"));
            assert!(hint.is_empty() || hint.contains("title"), "{hint}");
        }
        other => panic!("{other:?}"),
    }
    assert!(lines(&ears).is_empty());
    // The key is not a field that can be updated, as with save_fields.
    let (failed, ears) = listening(Note::bulk_update(&pool, &mut batch, &["id"])).await;
    assert!(matches!(failed, Err(OrmError::UnknownField { .. })));
    assert!(lines(&ears).is_empty());

    let mut unsaved = vec![batch[0].clone(), notes(&["new"]).remove(0)];
    let (failed, ears) = listening(Note::bulk_update(&pool, &mut unsaved, &["title"])).await;
    assert!(
        matches!(failed, Err(OrmError::NoPrimaryKey { model: "Note", .. })),
        "{failed:?}"
    );
    assert!(lines(&ears).is_empty());

    let (nothing, ears) = listening(Note::bulk_update(&pool, &mut batch, &[])).await;
    assert_eq!(nothing.unwrap(), 0);
    let (none, ears2) = listening(Note::bulk_update(&pool, &mut [], &["title"])).await;
    assert_eq!(none.unwrap(), 0);
    assert!(lines(&ears).is_empty() && lines(&ears2).is_empty());

    assert_eq!(
        DB::strings(&pool, "SELECT title FROM notes ORDER BY id").await,
        ["a", "b"],
        "nothing written"
    );
    assert_eq!(logged(&pool).await, logged_before);
}

/// One CASE statement takes at most 500 rows: 500 rows nobody hears are one UPDATE alone (in
/// autocommit given the pool), 501 are two in one transaction, each row set to its own value;
/// heard (`Tally`), every row gets its `pre_save` and `post_save` with `update_fields`.
async fn bulk_update_splits_its_case_statement_at_the_chunk_boundary<DB: TestBackend>(
    pool: Pool<DB>,
) where
    Dot: Persist<DB>,
    Tally: Persist<DB>,
{
    const CHUNK: usize = 500; // one column: under either backend's parameter limit
    let mut dots: Vec<Dot> = (0..=CHUNK)
        .map(|i| Dot {
            id: None,
            n: i64::try_from(i).unwrap(),
        })
        .collect();
    Dot::bulk_insert(&pool, &mut dots).await.unwrap();

    for dot in &mut dots {
        dot.n = dot.n * 3 + 1;
    }
    let (updated, ran) = statements::of(Dot::bulk_update(&pool, &mut dots[..CHUNK], &["n"])).await;
    assert_eq!(updated.unwrap(), 500);
    assert_eq!(writes(&ran, "dots").len(), 1);
    if <DB as Backend>::NAME == "postgres" {
        assert!(
            !ran.iter().any(|s| s == "COMMIT"),
            "alone, in autocommit: {ran:#?}"
        );
    }
    let (updated, ran) = statements::of(Dot::bulk_update(&pool, &mut dots, &["n"])).await;
    assert_eq!(updated.unwrap(), 501);
    let written = writes(&ran, "dots");
    assert_eq!(written.len(), 2, "one UPDATE a chunk");
    let p = ph::<DB>;
    assert!(
        written[0].starts_with(&format!(
            r#"UPDATE "dots" SET "n" = CASE "id" WHEN {} THEN {} WHEN {} THEN {}"#,
            p(1),
            p(2),
            p(3),
            p(4)
        )),
        "{}",
        &written[0][..80]
    );
    assert!(written[0].ends_with(&format!(", {})", p(1500))));
    assert_eq!(
        written[1],
        format!(
            r#"UPDATE "dots" SET "n" = CASE "id" WHEN {} THEN {} END WHERE "id" IN ({})"#,
            p(1),
            p(2),
            p(3)
        )
    );
    if <DB as Backend>::NAME == "postgres" {
        assert!(
            ran.iter().any(|s| s == "COMMIT"),
            "in a transaction: {ran:#?}"
        );
    }
    let instances: Vec<(Option<i64>, i64)> = dots.iter().map(|d| (d.id, d.n)).collect();
    check_rows(&pool, "dots", &instances, CHUNK + 1).await;

    // Heard, over the boundary.
    let mut tallies: Vec<Tally> = (0..=CHUNK)
        .map(|i| Tally {
            id: None,
            n: i64::try_from(i).unwrap(),
        })
        .collect();
    Tally::bulk_insert(&pool, &mut tallies).await.unwrap();
    for tally in &mut tallies {
        tally.n = -tally.n;
    }
    let ((updated, ran), ears) = listening(statements::of(Tally::bulk_update(
        &pool,
        &mut tallies,
        &["n"],
    )))
    .await;
    assert_eq!(updated.unwrap(), 501);
    assert_eq!(writes(&ran, "tallies").len(), 2);
    assert_eq!(ears.pre.load(Ordering::SeqCst), 501);
    assert_eq!(ears.post.load(Ordering::SeqCst), 501);
    let heard = lines(&ears);
    assert_eq!(heard.len(), 1002);
    assert!(
        heard[..501]
            .iter()
            .all(|l| l == r#"pre fields=Some(["n"]) adding=false"#)
    );
    assert!(
        heard[501..]
            .iter()
            .all(|l| l == r#"post fields=Some(["n"]) created=false"#)
    );
    let instances: Vec<(Option<i64>, i64)> = tallies.iter().map(|t| (t.id, t.n)).collect();
    check_rows(&pool, "tallies", &instances, CHUNK + 1).await;
}

/// Text, nullable text, floating point and boolean values, NULLs included, inserted and set by
/// CASE: on PostgreSQL each bound value carries its type, so no cast is needed.
async fn typed_values_and_nulls_round_trip_through_case<DB: TestBackend>(pool: Pool<DB>)
where
    Mixed: Persist<DB>,
{
    let mut rows: Vec<Mixed> = (0..4_u8)
        .map(|i| Mixed {
            id: None,
            label: (i % 2 == 0).then(|| format!("label {i}")),
            amount: f64::from(i) + 0.5,
            flag: i % 3 == 0,
        })
        .collect();
    Mixed::bulk_insert(&pool, &mut rows).await.unwrap();
    for row in &mut rows {
        row.label = match &row.label {
            Some(_) => None,
            None => Some(format!("now {:?}", row.id)),
        };
        row.amount *= -2.0;
        row.flag = !row.flag;
    }
    let updated = Mixed::bulk_update(&pool, &mut rows, &["label", "amount", "flag"])
        .await
        .unwrap();
    assert_eq!(updated, 4);
    for row in &rows {
        let read = Mixed::get(&pool, &row.id.unwrap()).await.unwrap().unwrap();
        assert_eq!(&read, row);
    }
}
