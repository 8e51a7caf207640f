//! `post_init`: sent once for every instance the ORM builds from a row, by every fetch path
//! (queries, `get`, `get_or_create` / `update_or_create`, relation accessors, many-to-many
//! reads, the delete collector's whole rows, the rows set-based writes read or get back from
//! `RETURNING`, the previous rows a save reads for `Changes`), on every backend; what a
//! receiver changes is what the fetch returns; a failing or async receiver fails the fetch
//! naming itself; nothing is sent for a model nobody listens to. Rules: `docs/orm.md`,
//! "`post_init`".
//!
//! Receivers are process-wide and the scenarios run in parallel: each records what it hears
//! under the row's tag, unique per scenario run, and a scenario reads only its own tags.

mod support;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use signals_orm::dispatch::has_listeners;
use signals_orm::model_signals::PostInitSignal;
use signals_orm::testing::Recorder;
use signals_orm::{
    Changes, Model, ModelExt, OrmError, Persist, PostInit, PostSave, PreDelete, Sender, Tx,
    receiver,
};
use sqlx::Pool;
use support::TestBackend;

const SCHEMA: &str = "
CREATE TABLE log (id {serial}, entry TEXT NOT NULL);
CREATE TABLE sensors (id {serial}, name TEXT NOT NULL);
CREATE TABLE readings (id {serial}, sensor_id BIGINT NOT NULL REFERENCES sensors (id), tag TEXT NOT NULL, value BIGINT NOT NULL);
CREATE TABLE labels (id {serial}, name TEXT NOT NULL);
CREATE TABLE sensor_labels (sensor_id BIGINT NOT NULL REFERENCES sensors (id), label_id BIGINT NOT NULL REFERENCES labels (id), PRIMARY KEY (sensor_id, label_id));
CREATE TABLE fragile (id {serial}, tag TEXT NOT NULL);
CREATE TABLE slow (id {serial}, tag TEXT NOT NULL);
CREATE TABLE quiet (id {serial}, tag TEXT NOT NULL);
";

every_backend!(
    every_read_sends_post_init_once_per_instance,
    writes_send_post_init_for_the_rows_they_read,
    a_failing_or_async_receiver_fails_the_fetch_naming_itself,
);

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "sensors")]
struct Sensor {
    #[model(primary_key)]
    id: Option<i64>,
    /// The scenario's tag.
    name: String,
    #[model(skip)]
    #[sqlx(skip)]
    loaded: u32,
}

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "readings")]
struct Reading {
    #[model(primary_key)]
    id: Option<i64>,
    #[model(foreign_key = Sensor, on_delete = cascade)]
    sensor_id: i64,
    tag: String,
    value: i64,
    /// Not stored: how many `post_init`s this instance got.
    #[model(skip)]
    #[sqlx(skip)]
    loaded: u32,
}

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "labels")]
struct Label {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

signals_orm::many_to_many! {
    /// Labels of sensors.
    struct SensorLabels(Sensor => "sensor_id", Label => "label_id") in "sensor_labels";
}

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "fragile")]
struct Fragile {
    #[model(primary_key)]
    id: Option<i64>,
    tag: String,
}

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "slow")]
struct Slow {
    #[model(primary_key)]
    id: Option<i64>,
    tag: String,
}

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "quiet")]
struct Quiet {
    #[model(primary_key)]
    id: Option<i64>,
    tag: String,
    #[model(skip)]
    #[sqlx(skip)]
    loaded: u32,
}

/// Every `post_init` heard, by tag: the model and the key of each instance, in order.
static INITS: Mutex<BTreeMap<String, Vec<(&'static str, i64)>>> = Mutex::new(BTreeMap::new());

fn heard(tag: &str, model: &'static str, pk: Option<i64>) {
    INITS
        .lock()
        .unwrap()
        .entry(tag.to_owned())
        .or_default()
        .push((model, pk.expect("a row has its key")));
}

/// What `tag`'s rows were sent since the last call, sorted.
fn take(tag: &str) -> Vec<(&'static str, i64)> {
    let mut sent = INITS.lock().unwrap().remove(tag).unwrap_or_default();
    sent.sort_unstable();
    sent
}

#[receiver(post_init, sender = Reading)]
fn reading_loaded(ev: PostInit<'_, Reading>) {
    ev.instance.loaded += 1;
    heard(&ev.instance.tag, "Reading", ev.instance.id);
}

#[receiver(post_init, sender = Sensor)]
fn sensor_loaded(ev: PostInit<'_, Sensor>) {
    ev.instance.loaded += 1;
    heard(&ev.instance.name, "Sensor", ev.instance.id);
}

// Receivers that make the set-based writes and the collector read whole rows: `post_save`
// heard (an update `RETURNING` its rows), `pre_delete` heard (a delete reads its rows first),
// `Changes` taken (a save reads the previous row).
#[receiver(post_save, sender = Reading)]
fn reading_saved(_: PostSave<'_, Reading>) {}

#[receiver(pre_delete, sender = Reading)]
fn reading_deleting(_: PreDelete<'_, Reading>) {}

#[receiver(pre_save, sender = Sensor)]
fn sensor_changes(_: Changes<'_, Sensor>) {}

#[receiver(post_init, sender = Fragile)]
fn refuse_bad(ev: PostInit<'_, Fragile>) -> Result<(), String> {
    if ev.instance.tag.ends_with("bad") {
        return Err(format!("{} is bad", ev.instance.tag));
    }
    Ok(())
}

#[receiver(post_init, sender = Slow)]
async fn slow_loaded(_: PostInit<'_, Slow>) {}

static QUIET: AtomicUsize = AtomicUsize::new(0);

#[receiver(post_init, sender = Quiet)]
fn quiet_loaded(ev: PostInit<'_, Quiet>) {
    ev.instance.loaded += 1;
    QUIET.fetch_add(1, Ordering::SeqCst);
}

fn unique(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A sensor named `tag` with three readings tagged `tag`, none sent `post_init` (saves build
/// no instance from a row).
async fn sensor_with_readings<DB: TestBackend>(pool: &Pool<DB>, tag: &str) -> (Sensor, Vec<i64>)
where
    Sensor: Persist<DB>,
    Reading: Persist<DB>,
{
    let mut sensor = Sensor {
        id: None,
        name: tag.to_owned(),
        loaded: 0,
    };
    sensor.save(pool).await.unwrap();
    let mut keys = Vec::new();
    for value in 1..=3 {
        let mut reading = Reading {
            id: None,
            sensor_id: sensor.id.unwrap(),
            tag: tag.to_owned(),
            value,
            loaded: 0,
        };
        reading.save(pool).await.unwrap();
        keys.push(reading.id.unwrap());
    }
    assert_eq!(take(tag), [], "saves send no post_init");
    (sensor, keys)
}

fn readings(keys: &[i64]) -> Vec<(&'static str, i64)> {
    keys.iter().map(|&k| ("Reading", k)).collect()
}

/// Each instance got exactly one `post_init`, and it changed the instance returned.
fn assert_loaded_once(instances: &[Reading]) {
    assert!(instances.iter().all(|r| r.loaded == 1), "{instances:?}");
}

async fn every_read_sends_post_init_once_per_instance<DB: TestBackend>(pool: Pool<DB>)
where
    Sensor: Persist<DB>,
    Reading: Persist<DB>,
    Label: Persist<DB>,
{
    let tag = unique("reads");
    let (sensor, keys) = sensor_with_readings(&pool, &tag).await;
    let mine = || Reading::filter(Reading::columns().tag.eq(tag.clone()));

    let all = mine().all(&pool).await.unwrap();
    assert_loaded_once(&all);
    assert_eq!(take(&tag), readings(&keys), "Query::all");

    let first = mine()
        .order_by(Reading::columns().value.desc())
        .first(&pool)
        .await;
    assert_loaded_once(&[first.unwrap().unwrap()]);
    assert_eq!(take(&tag), readings(&keys[2..]), "Query::first");

    let got = Reading::get(&pool, &keys[0]).await.unwrap().unwrap();
    assert_loaded_once(&[got]);
    assert_eq!(take(&tag), readings(&keys[..1]), "ModelExt::get");

    let one = || mine().filter(Reading::columns().value.eq(2_i64));
    let (found, created) = one()
        .get_or_create(&pool, || unreachable!("the row exists"))
        .await
        .unwrap();
    assert!(!created);
    assert_loaded_once(&[found]);
    assert_eq!(take(&tag), readings(&keys[1..2]), "get_or_create, found");
    let (made, created) = mine()
        .filter(Reading::columns().value.eq(4_i64))
        .get_or_create(&pool, || Reading {
            id: None,
            sensor_id: sensor.id.unwrap(),
            tag: tag.clone(),
            value: 4,
            loaded: 0,
        })
        .await
        .unwrap();
    assert!(created && made.loaded == 0, "built in code: {made:?}");
    assert_eq!(take(&tag), [], "get_or_create, created");
    let (updated, created) = one()
        .update_or_create(&pool, |r| r.value = 20, || unreachable!("the row exists"))
        .await
        .unwrap();
    assert!(!created && updated.value == 20);
    assert_loaded_once(&[updated]);
    assert_eq!(take(&tag), readings(&keys[1..2]), "update_or_create, found");

    // Relations: the parent accessor and the children of a parent.
    let parent = all[0].sensor(&pool).await.unwrap();
    assert_eq!(parent.loaded, 1);
    assert_eq!(
        take(&tag),
        [("Sensor", sensor.id.unwrap())],
        "parent accessor"
    );
    let children = Reading::of(&sensor).all(&pool).await.unwrap();
    assert_eq!(children.len(), 4);
    assert_loaded_once(&children);
    assert_eq!(
        take(&tag),
        readings(&[keys[0], keys[1], keys[2], made.id.unwrap()]),
        "Model::of"
    );

    // Many-to-many, from the other side: the sensors of a label.
    let mut label = Label {
        id: None,
        name: tag.clone(),
    };
    label.save(&pool).await.unwrap();
    SensorLabels::of(&sensor)
        .add(&pool, [label.id.unwrap()])
        .await
        .unwrap();
    let sensors = SensorLabels::of_target(&label).all(&pool).await.unwrap();
    assert!(sensors.len() == 1 && sensors[0].loaded == 1, "{sensors:?}");
    assert_eq!(take(&tag), [("Sensor", sensor.id.unwrap())], "Related::all");

    // In a transaction, as through a pool.
    let mut tx = Tx::begin(&pool).await.unwrap();
    let in_tx = mine().limit(2).all(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_loaded_once(&in_tx);
    assert_eq!(take(&tag).len(), 2, "Query::all in a transaction");
}

async fn writes_send_post_init_for_the_rows_they_read<DB: TestBackend>(pool: Pool<DB>)
where
    Sensor: Persist<DB>,
    Reading: Persist<DB>,
{
    let tag = unique("writes");
    let (mut sensor, keys) = sensor_with_readings(&pool, &tag).await;
    let mine = || Reading::filter(Reading::columns().tag.eq(tag.clone()));

    // `post_save` is heard: the update returns each row it wrote, an instance each.
    let changed = mine()
        .update(&pool, [Reading::columns().value.set(9_i64)])
        .await
        .unwrap();
    assert_eq!(changed, 3);
    assert_eq!(take(&tag), readings(&keys), "Query::update RETURNING");

    // `pre_delete` is heard: the delete reads the row (for `pre_delete`), then gets it back from
    // `DELETE .. RETURNING` (for `post_delete`): two instances of one row.
    let deleted = mine()
        .filter(Reading::columns().id.eq(keys[0]))
        .delete(&pool)
        .await
        .unwrap();
    assert_eq!(deleted.total(), 1);
    assert_eq!(take(&tag), readings(&[keys[0], keys[0]]), "Query::delete");

    // A save whose receiver takes `Changes` reads the row as it was: one instance.
    sensor.name = format!("{tag}-renamed");
    sensor.save(&pool).await.unwrap();
    assert_eq!(
        sensor.loaded, 0,
        "the saved instance itself was built in code"
    );
    assert_eq!(
        take(&tag),
        [("Sensor", sensor.id.unwrap())],
        "the previous row"
    );
    sensor.name.clone_from(&tag);
    Sensor::bulk_update(&pool, std::slice::from_mut(&mut sensor), &["name"])
        .await
        .unwrap();
    assert_eq!(
        take(&format!("{tag}-renamed")),
        [("Sensor", sensor.id.unwrap())],
        "bulk_update's previous rows"
    );

    // The collector reads the cascaded readings whole (their `pre_delete` is heard); the
    // sensor itself is the caller's instance, not read.
    sensor.delete(&pool).await.unwrap();
    assert_eq!(take(&tag), readings(&keys[1..]), "the delete collector");
}

async fn a_failing_or_async_receiver_fails_the_fetch_naming_itself<DB: TestBackend>(pool: Pool<DB>)
where
    Fragile: Persist<DB>,
    Slow: Persist<DB>,
{
    let tag = unique("fragile");
    for suffix in ["ok", "bad"] {
        let mut row = Fragile {
            id: None,
            tag: format!("{tag}-{suffix}"),
        };
        row.save(&pool).await.unwrap();
    }
    let mine = || Fragile::filter(Fragile::columns().tag.like(format!("{tag}-%")));
    let error = mine().all(&pool).await.unwrap_err();
    assert!(matches!(error, OrmError::Signal(_)), "{error:?}");
    let text = format!("{error:#}");
    assert!(
        text.contains("refuse_bad") && text.contains("post_init") && text.contains("is bad"),
        "{text}"
    );
    let ok = mine()
        .filter(Fragile::columns().tag.eq(format!("{tag}-ok")))
        .all(&pool)
        .await
        .unwrap();
    assert_eq!(ok.len(), 1);

    // A failed receiver leaves a transaction usable: it failed no statement.
    let mut tx = Tx::begin(&pool).await.unwrap();
    assert!(mine().all(&mut tx).await.is_err());
    assert_eq!(mine().count(&mut tx).await.unwrap(), 2);
    tx.commit().await.unwrap();

    let mut slow = Slow {
        id: None,
        tag: tag.clone(),
    };
    slow.save(&pool).await.unwrap();
    let error = Slow::get(&pool, &slow.id.unwrap()).await.unwrap_err();
    let text = format!("{error:#}");
    assert!(
        text.contains("slow_loaded") && text.contains("async"),
        "post_init receivers are sync: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_sent_for_a_model_nobody_listens_to() {
    let pool = support::sqlite_memory(SCHEMA).await;
    for tag in ["a", "b", "c"] {
        let mut row = Quiet {
            id: None,
            tag: tag.into(),
            loaded: 0,
        };
        row.save(&pool).await.unwrap();
    }
    let sender = Sender::of::<Quiet>();
    let fetch_all_ways = || async {
        let mut fetched = Quiet::objects().all(&pool).await.unwrap();
        fetched.push(Quiet::objects().first(&pool).await.unwrap().unwrap());
        fetched.push(Quiet::get(&pool, &2).await.unwrap().unwrap());
        fetched
    };

    assert!(has_listeners::<PostInitSignal>(sender));
    assert!(signals_orm::disconnect::<PostInitSignal, _>(
        quiet_loaded,
        sender
    ));
    assert!(!has_listeners::<PostInitSignal>(sender));
    let fetched = fetch_all_ways().await;
    assert_eq!(fetched.len(), 5);
    assert!(fetched.iter().all(|q| q.loaded == 0), "{fetched:?}");
    assert_eq!(
        QUIET.load(Ordering::SeqCst),
        0,
        "nobody listens: nothing sent"
    );

    // A recorder listens to every signal: the sends happen, and are recorded, not delivered.
    let recorder = Recorder::new();
    recorder.scope(fetch_all_ways()).await;
    assert_eq!(
        recorder.lines(),
        [
            "post_init[Quiet] pk=1",
            "post_init[Quiet] pk=2",
            "post_init[Quiet] pk=3",
            "post_init[Quiet] pk=1",
            "post_init[Quiet] pk=2",
        ]
    );
    assert_eq!(QUIET.load(Ordering::SeqCst), 0);

    // Reconnected, each fetch asks again: every instance is sent.
    assert!(signals_core::reconnect::<PostInitSignal, _>(
        quiet_loaded,
        sender
    ));
    let fetched = fetch_all_ways().await;
    assert!(fetched.iter().all(|q| q.loaded == 1), "{fetched:?}");
    assert_eq!(QUIET.load(Ordering::SeqCst), 5);
}

#[test]
fn a_receiver_is_called_directly_with_a_payload_built_by_hand() {
    let mut reading = Reading {
        id: Some(7),
        sensor_id: 1,
        tag: unique("direct"),
        value: 0,
        loaded: 0,
    };
    reading_loaded(PostInit::new(&mut reading).with_using("postgres"));
    assert_eq!(reading.loaded, 1);
    assert_eq!(take(&reading.tag), [("Reading", 7)]);
}
