//! Random sequences of saves and deletes, through the pool and through callers' transactions
//! (committed, rolled back or dropped), with receivers that fail, panic or are cancelled at
//! random points, on SQLite (memory and WAL file) and PostgreSQL. After every step the
//! database must equal a model of the committed operations, every receiver's own write must
//! have committed exactly with its operation, and `on_commit` must have run exactly once per
//! committed save or delete.
//!
//! What a row does is chosen by its `qty` (see [`Code`]), so a generated sequence says which
//! receiver fails where.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use signals_orm::m2m::{M2mAction, M2mChanged, M2mSide};
use signals_orm::{
    AnyTx, Committed, Model, ModelExt, OrmError, PostDelete, PostSave, PreDelete, PreSave, Tx,
    receiver,
};
use sqlx::Pool;
use support::TestBackend;

const SCHEMA: &str = "
CREATE TABLE log (id {serial}, entry TEXT NOT NULL);
CREATE TABLE items (id {serial}, run TEXT NOT NULL, qty BIGINT NOT NULL);
CREATE TABLE tags (id {serial}, name TEXT NOT NULL);
CREATE TABLE item_tags (item_id BIGINT NOT NULL, tag_id BIGINT NOT NULL, PRIMARY KEY (item_id, tag_id));
";

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "items")]
struct Item {
    #[model(primary_key)]
    id: Option<i64>,
    run: String,
    qty: i64,
}

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "tags")]
struct Tag {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

signals_orm::many_to_many! {
    /// Tags of items; no foreign keys, so links outlive a deleted item, as the model says.
    struct ItemTags(Item => "item_id", Tag => "tag_id") in "item_tags";
}

/// What the receivers do with a row, by its `qty` modulo 12.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    Plain,
    /// `post_save` returns an error (after writing its log row).
    PostSaveFails,
    /// `post_save` panics.
    PostSavePanics,
    /// `post_save` writes its log row, then sleeps until the test cancels the save.
    PostSaveHangs,
    /// `pre_delete` returns an error.
    PreDeleteFails,
    /// `post_delete` writes its log row, then sleeps until the test cancels the delete.
    PostDeleteHangs,
    /// `pre_save` returns an error.
    PreSaveFails,
    /// `post_delete` panics.
    PostDeletePanics,
    /// `post_add` and `post_remove` return an error (after writing their log row).
    M2mFails,
    /// `post_add` and `post_remove` write their log row, then sleep until cancelled.
    M2mHangs,
    /// `pre_add` takes tag 1 out of the keys to link.
    PreAddDropsTagOne,
}

fn code(qty: i64) -> Code {
    match qty.rem_euclid(12) {
        1 => Code::PostSaveFails,
        2 => Code::PostSavePanics,
        3 => Code::PostSaveHangs,
        4 => Code::PreDeleteFails,
        5 => Code::PostDeleteHangs,
        6 => Code::PreSaveFails,
        7 => Code::PostDeletePanics,
        8 => Code::M2mFails,
        9 => Code::M2mHangs,
        10 => Code::PreAddDropsTagOne,
        _ => Code::Plain,
    }
}

const HANG: Duration = Duration::from_secs(20);
/// How long the test waits for an operation it expects to hang before dropping it.
const CANCEL_AFTER: Duration = Duration::from_millis(60);

#[receiver(pre_save, sender = Item)]
fn pre_save_by_code(ev: PreSave<'_, Item>) -> Result<(), String> {
    if code(ev.instance.qty) == Code::PreSaveFails {
        return Err("pre_save refused".into());
    }
    Ok(())
}

#[receiver(post_save, sender = Item)]
async fn post_save_by_code(ev: PostSave<'_, Item>, tx: AnyTx<'_>) -> Result<(), OrmError> {
    support::log(tx, format!("save {}", ev.instance.run)).await?;
    match code(ev.instance.qty) {
        Code::PostSaveFails => Err(OrmError::NoSavepoint),
        Code::PostSavePanics => panic!("post_save panicked"),
        Code::PostSaveHangs => {
            tokio::time::sleep(HANG).await;
            Ok(())
        }
        _ => Ok(()),
    }
}

#[receiver(pre_delete, sender = Item)]
fn pre_delete_by_code(ev: PreDelete<'_, Item>) -> Result<(), String> {
    if code(ev.instance.qty) == Code::PreDeleteFails {
        return Err("pre_delete refused".into());
    }
    Ok(())
}

#[receiver(post_delete, sender = Item)]
async fn post_delete_by_code(ev: PostDelete<'_, Item>, tx: AnyTx<'_>) -> Result<(), OrmError> {
    support::log(tx, format!("delete {}", ev.instance.run)).await?;
    match code(ev.instance.qty) {
        Code::PostDeleteHangs => {
            tokio::time::sleep(HANG).await;
            Ok(())
        }
        Code::PostDeletePanics => panic!("post_delete panicked"),
        _ => Ok(()),
    }
}

#[receiver(m2m_changed, sender = ItemTags)]
async fn m2m_by_code(ev: M2mChanged<'_, ItemTags>, tx: AnyTx<'_>) -> Result<(), OrmError> {
    let action = ev.action;
    let M2mSide::Forward { instance, pk_set } = ev.side else {
        return Ok(());
    };
    let c = code(instance.qty);
    match action {
        M2mAction::PreAdd if c == Code::PreAddDropsTagOne => {
            if let Some(keys) = pk_set {
                keys.remove(&1);
            }
        }
        M2mAction::PostAdd | M2mAction::PostRemove => {
            support::log(tx, format!("m2m {}", instance.run)).await?;
            match c {
                Code::M2mFails => return Err(OrmError::NoSavepoint),
                Code::M2mHangs => tokio::time::sleep(HANG).await,
                _ => {}
            }
        }
        _ => {}
    }
    Ok(())
}

/// `(run, what)` of every `on_commit` call: `"save <id> <qty>"` or `"delete <id>"`.
static COMMITTED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

#[receiver(post_save, sender = Item, on_commit)]
fn saved_on_commit(ev: Committed<Item>) {
    let id = ev.instance.id.unwrap();
    COMMITTED.lock().unwrap().push((
        ev.instance.run.clone(),
        format!("save {id} {}", ev.instance.qty),
    ));
}

#[receiver(post_delete, sender = Item, on_commit)]
fn deleted_on_commit(ev: Committed<Item>) {
    let id = ev.instance.id.unwrap();
    COMMITTED
        .lock()
        .unwrap()
        .push((ev.instance.run.clone(), format!("delete {id}")));
}

#[derive(Debug, Clone)]
enum Op {
    Insert { qty: i64 },
    Update { pick: usize, qty: i64 },
    Delete { pick: usize },
    Link { pick: usize, tags: BTreeSet<i64> },
    Unlink { pick: usize, tags: BTreeSet<i64> },
}

#[derive(Debug, Clone, Copy)]
enum End {
    Commit,
    Rollback,
    Drop,
}

#[derive(Debug, Clone)]
enum Step {
    /// One operation given the pool (its own transaction).
    Pool(Op),
    /// Operations in a caller's transaction, then its end.
    Tx(Vec<Op>, End),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..24_i64).prop_map(|qty| Op::Insert { qty }),
        2 => (any::<usize>(), 0..24_i64).prop_map(|(pick, qty)| Op::Update { pick, qty }),
        2 => any::<usize>().prop_map(|pick| Op::Delete { pick }),
        2 => (any::<usize>(), prop::collection::btree_set(1..5_i64, 1..4))
            .prop_map(|(pick, tags)| Op::Link { pick, tags }),
        1 => (any::<usize>(), prop::collection::btree_set(1..5_i64, 1..4))
            .prop_map(|(pick, tags)| Op::Unlink { pick, tags }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => op().prop_map(Step::Pool),
        1 => (
            prop::collection::vec(op(), 1..5),
            prop_oneof![Just(End::Commit), Just(End::Commit), Just(End::Rollback), Just(End::Drop)],
        )
            .prop_map(|(ops, end)| Step::Tx(ops, end)),
    ]
}

/// The committed state the database must match, and what must have been observed.
#[derive(Debug, Default, Clone)]
struct Expected {
    rows: BTreeMap<i64, i64>,
    /// `(item, tag)` links.
    links: BTreeSet<(i64, i64)>,
    /// Log rows written by receivers of committed operations.
    log: usize,
    /// `on_commit` calls, in order.
    committed: Vec<String>,
}

static SEQUENCES: AtomicUsize = AtomicUsize::new(0);
static OPERATIONS: AtomicUsize = AtomicUsize::new(0);
static RUNS: AtomicUsize = AtomicUsize::new(0);

/// Where an operation runs.
enum Target<'t, DB: TestBackend> {
    Pool(&'t Pool<DB>),
    Tx(&'t mut Tx<DB>),
}

/// Runs `$call` (a method call on the pool or transaction `$db`), dropping it after
/// [`CANCEL_AFTER`] when `$hangs`.
macro_rules! run {
    ($target:expr, $hangs:expr, |$db:ident| $call:expr) => {{
        let result = match &mut $target {
            Target::Pool($db) => {
                let $db = *$db;
                bounded($hangs, $call).await
            }
            Target::Tx($db) => {
                let $db = &mut **$db;
                bounded($hangs, $call).await
            }
        };
        result
    }};
}

/// Awaits `fut`, or drops it after [`CANCEL_AFTER`] when it is expected to hang (then its
/// result is an error standing for "cancelled").
async fn bounded<T>(
    hangs: bool,
    fut: impl Future<Output = Result<T, OrmError>>,
) -> Result<T, OrmError> {
    if hangs {
        tokio::time::timeout(CANCEL_AFTER, fut)
            .await
            .unwrap_or(Err(OrmError::NoSavepoint))
    } else {
        fut.await
    }
}

/// Runs one operation (inside `state`, the working copy of the transaction or of the
/// committed state) and checks that it failed exactly when its codes say, or with
/// `RollbackOnly` when the transaction was already marked (`usable` false); returns whether it
/// succeeded.
async fn run_op<DB: TestBackend>(
    op: &Op,
    run: &str,
    mut target: Target<'_, DB>,
    state: &mut Expected,
    usable: bool,
) -> bool
where
    Item: signals_orm::Persist<DB>,
    Tag: signals_orm::Persist<DB>,
{
    let ids: Vec<i64> = state.rows.keys().copied().collect();
    let pick = |pick: usize| ids[pick % ids.len()];
    let (id, qty) = match *op {
        Op::Link { .. } | Op::Unlink { .. } => {
            return run_link_op(op, run, target, state, usable).await;
        }
        Op::Insert { qty } => (None, qty),
        Op::Update { .. } | Op::Delete { .. } if ids.is_empty() => return true,
        Op::Update { pick: p, qty } => (Some(pick(p)), qty),
        Op::Delete { pick: p } => (Some(pick(p)), state.rows[&pick(p)]),
    };
    let mut item = Item {
        id,
        run: run.to_owned(),
        qty,
    };
    let c = code(qty);
    let deleting = matches!(op, Op::Delete { .. });
    let (result, expect_ok) = if deleting {
        let hangs = c == Code::PostDeleteHangs;
        let result = run!(target, hangs, |db| item.delete(db)).map(drop);
        let refused = matches!(
            c,
            Code::PreDeleteFails | Code::PostDeleteHangs | Code::PostDeletePanics
        );
        (result, !refused)
    } else {
        let hangs = c == Code::PostSaveHangs;
        let result = run!(target, hangs, |db| item.save(db)).map(drop);
        let refused = matches!(
            c,
            Code::PostSaveFails | Code::PostSavePanics | Code::PostSaveHangs | Code::PreSaveFails
        );
        (result, !refused)
    };
    OPERATIONS.fetch_add(1, Ordering::Relaxed);
    if !usable {
        assert!(
            matches!(result, Err(OrmError::RollbackOnly { .. })),
            "{op:?} in a marked transaction: {result:?}"
        );
        return false;
    }
    assert_eq!(result.is_ok(), expect_ok, "{op:?}: {result:?}");
    if result.is_err() {
        if id.is_none() {
            assert_eq!(item.id, None, "a failed insert gives the key back");
        }
        return false;
    }
    state.log += 1;
    if deleting {
        let id = id.unwrap();
        state.rows.remove(&id);
        state.committed.push(format!("delete {id}"));
    } else {
        let id = item.id.unwrap();
        state.rows.insert(id, qty);
        state.committed.push(format!("save {id} {qty}"));
    }
    true
}

/// Runs a link or unlink of tags on a picked item, checked as [`run_op`] does; the counts
/// returned must be the links this call wrote.
async fn run_link_op<DB: TestBackend>(
    op: &Op,
    run: &str,
    mut target: Target<'_, DB>,
    state: &mut Expected,
    usable: bool,
) -> bool
where
    Item: signals_orm::Persist<DB>,
    Tag: signals_orm::Persist<DB>,
{
    let (Op::Link { pick, tags } | Op::Unlink { pick, tags }) = op else {
        unreachable!("only links here")
    };
    let adding = matches!(op, Op::Link { .. });
    let ids: Vec<i64> = state.rows.keys().copied().collect();
    if ids.is_empty() {
        return true;
    }
    let id = ids[pick % ids.len()];
    let qty = state.rows[&id];
    let item = Item {
        id: Some(id),
        run: run.to_owned(),
        qty,
    };
    let c = code(qty);
    let hangs = c == Code::M2mHangs;
    let manager = ItemTags::of(&item);
    let keys = tags.iter().copied();
    let result = if adding {
        run!(target, hangs, |db| manager.add(db, keys)).map(|n| n as u64)
    } else {
        run!(target, hangs, |db| manager.remove(db, keys))
    };
    OPERATIONS.fetch_add(1, Ordering::Relaxed);
    if !usable {
        assert!(
            matches!(result, Err(OrmError::RollbackOnly { .. })),
            "{op:?} in a marked transaction: {result:?}"
        );
        return false;
    }
    let expect_ok = !matches!(c, Code::M2mFails | Code::M2mHangs);
    assert_eq!(result.is_ok(), expect_ok, "{op:?}: {result:?}");
    let Ok(count) = result else {
        return false;
    };
    let changed: BTreeSet<(i64, i64)> = tags
        .iter()
        .map(|tag| (id, *tag))
        .filter(|link| {
            if adding {
                let dropped = c == Code::PreAddDropsTagOne && link.1 == 1;
                !state.links.contains(link) && !dropped
            } else {
                state.links.contains(link)
            }
        })
        .collect();
    assert_eq!(count, changed.len() as u64, "{op:?} wrote {count} links");
    if adding {
        state.links.extend(&changed);
    } else {
        state.links.retain(|link| !changed.contains(link));
    }
    state.log += 1;
    true
}

async fn check<DB: TestBackend>(pool: &Pool<DB>, run: &str, expected: &Expected) {
    let rows = DB::strings(
        pool,
        "SELECT CAST(id AS TEXT) || ' ' || CAST(qty AS TEXT) || ' ' || run FROM items ORDER BY id",
    )
    .await;
    let rows: BTreeMap<i64, i64> = rows
        .iter()
        .filter_map(|r| {
            let mut parts = r.split(' ');
            let id = parts.next()?.parse().ok()?;
            let qty = parts.next()?.parse().ok()?;
            (parts.next()? == run).then_some((id, qty))
        })
        .collect();
    assert_eq!(rows, expected.rows, "rows of {run}");
    let links: BTreeSet<(i64, i64)> = DB::strings(
        pool,
        "SELECT CAST(item_id AS TEXT) || ' ' || CAST(tag_id AS TEXT) FROM item_tags",
    )
    .await
    .iter()
    .map(|l| {
        let (item, tag) = l.split_once(' ').unwrap();
        (item.parse().unwrap(), tag.parse().unwrap())
    })
    .collect();
    assert_eq!(links, expected.links, "links of {run}");
    let log = DB::strings(pool, "SELECT entry FROM log").await;
    let ours = log
        .iter()
        .filter(|e| e.ends_with(&format!(" {run}")))
        .count();
    assert_eq!(ours, expected.log, "receivers' writes of {run}");
    let committed: Vec<String> = COMMITTED
        .lock()
        .unwrap()
        .iter()
        .filter(|(r, _)| r == run)
        .map(|(_, what)| what.clone())
        .collect();
    assert_eq!(committed, expected.committed, "on_commit calls of {run}");
}

async fn sequence<DB: TestBackend>(pool: &Pool<DB>, steps: Vec<Step>)
where
    Item: signals_orm::Persist<DB>,
    Tag: signals_orm::Persist<DB>,
{
    let run = format!("r{}", RUNS.fetch_add(1, Ordering::SeqCst));
    // Each sequence starts from empty tables (cases of one backend run one after another), so
    // links left by a deleted item of an earlier sequence cannot meet a reused SQLite rowid.
    for table in [
        "DELETE FROM items",
        "DELETE FROM item_tags",
        "DELETE FROM log",
    ] {
        DB::exec(pool, table).await;
    }
    let mut committed = Expected::default();
    for step in steps {
        match step {
            Step::Pool(op) => {
                run_op(&op, &run, Target::Pool(pool), &mut committed, true).await;
            }
            Step::Tx(ops, end) => {
                let mut tx = Tx::begin(pool).await.unwrap();
                let mut working = committed.clone();
                let mut usable = true;
                for op in &ops {
                    usable &= run_op(op, &run, Target::Tx(&mut tx), &mut working, usable).await;
                }
                match end {
                    End::Commit => {
                        let result = tx.commit().await;
                        assert_eq!(result.is_ok(), usable, "commit: {result:?}");
                        if usable {
                            committed = working;
                        }
                    }
                    End::Rollback => tx.rollback().await.unwrap(),
                    End::Drop => drop(tx),
                }
            }
        }
        check(pool, &run, &committed).await;
    }
    SEQUENCES.fetch_add(1, Ordering::Relaxed);
}

async fn random_sequences_match_a_model_of_what_committed<DB: TestBackend>(pool: Pool<DB>)
where
    Item: signals_orm::Persist<DB>,
    Tag: signals_orm::Persist<DB>,
{
    let runtime = tokio::runtime::Handle::current();
    let cases = std::env::var("SIGNALS_PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64);
    quiet_deliberate_panics();
    tokio::task::block_in_place(|| {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&prop::collection::vec(step(), 1..10), |steps| {
                runtime.block_on(sequence(&pool, steps));
                Ok(())
            })
            .unwrap();
    });
    eprintln!(
        "tx_proptest: {} sequences, {} operations so far",
        SEQUENCES.load(Ordering::Relaxed),
        OPERATIONS.load(Ordering::Relaxed)
    );
}

/// The receivers' deliberate panics are caught by the dispatcher and checked as failures;
/// the default hook would print each one, so they are kept off stderr (others still print).
fn quiet_deliberate_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info.payload().downcast_ref::<&str>().copied().unwrap_or("");
            if !matches!(message, "post_save panicked" | "post_delete panicked") {
                default(info);
            }
        }));
    });
}

every_backend!(random_sequences_match_a_model_of_what_committed);
