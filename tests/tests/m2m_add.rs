//! `add` of many-to-many links: one multi-row INSERT per chunk of keys, and nothing else when
//! nobody listens (issue 11, item 4), on every backend.
//!
//! A test binary of its own: it links no `m2m_changed` receiver without sender, so its quiet
//! relations (`QuietLabels`, `Friends`) have no receiver at all, while `Labels` and
//! `LoudFriends`, on the same tables, have one. The statements an operation runs are read from
//! the events sqlx logs for each (target `sqlx::query`), inside a span naming the operation.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use signals_core::Mute;
use signals_orm::m2m::{LINKS_PER_INSERT, M2mAction, M2mChanged, M2mChangedSignal, M2mSide};
use signals_orm::{AnyTx, Model, ModelExt, OrmError, Persist, Tx, receiver};
use sqlx::Pool;
use support::TestBackend;

const SCHEMA: &str = r"
CREATE TABLE log (id {serial}, entry TEXT NOT NULL);
CREATE TABLE notes (id {serial}, title TEXT NOT NULL);
CREATE TABLE labels (id {serial}, name TEXT NOT NULL);
CREATE TABLE note_labels (
    note_id BIGINT NOT NULL REFERENCES notes (id),
    label_id BIGINT NOT NULL REFERENCES labels (id),
    PRIMARY KEY (note_id, label_id));
CREATE TABLE people (id {serial}, name TEXT NOT NULL);
CREATE TABLE friends (
    person_id BIGINT NOT NULL REFERENCES people (id),
    friend_id BIGINT NOT NULL REFERENCES people (id),
    PRIMARY KEY (person_id, friend_id));
";

every_backend!(
    an_add_over_the_chunk_boundary_links_every_key_once,
    an_add_reports_only_the_links_it_inserted,
    concurrent_adds_of_overlapping_keys_link_each_key_once,
    an_add_nobody_hears_runs_its_insert_alone,
    a_symmetrical_add_writes_both_rows,
);

#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "notes")]
struct Note {
    #[model(primary_key)]
    id: Option<i64>,
    title: String,
}

#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "labels")]
struct Label {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "people")]
struct Person {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

signals_orm::many_to_many! {
    /// Labels of notes, heard by `labels_changed`.
    struct Labels(Note => "note_id", Label => "label_id") in "note_labels";
}

signals_orm::many_to_many! {
    /// The same links, with no receiver.
    struct QuietLabels(Note => "note_id", Label => "label_id") in "note_labels";
}

signals_orm::many_to_many! {
    /// Friendship goes both ways; no receiver.
    struct Friends(Person => "person_id", Person => "friend_id") in "friends", symmetrical;
}

signals_orm::many_to_many! {
    /// The same friendships, heard by `loud_friends_changed`.
    struct LoudFriends(Person => "person_id", Person => "friend_id") in "friends", symmetrical;
}

// ---- what receivers heard ------------------------------------------------------------------

/// `pk_set`s heard, per instance name (names are unique: scenarios run in parallel on databases
/// whose keys overlap).
static HEARD: Mutex<Heard> = Mutex::new(BTreeMap::new());

/// Each instance's `(action, pk_set)`s, in the order sent.
type Heard = BTreeMap<String, Vec<(M2mAction, BTreeSet<i64>)>>;
static NAMES: AtomicUsize = AtomicUsize::new(0);

fn unique(what: &str) -> String {
    format!("{what} {}", NAMES.fetch_add(1, Ordering::SeqCst))
}

fn hear(name: &str, action: M2mAction, keys: &BTreeSet<i64>) {
    HEARD
        .lock()
        .unwrap()
        .entry(name.to_owned())
        .or_default()
        .push((action, keys.clone()));
}

fn heard(name: &str) -> Vec<(M2mAction, BTreeSet<i64>)> {
    HEARD.lock().unwrap().get(name).cloned().unwrap_or_default()
}

/// Records every `pk_set`; for a note titled `sneaky ..`, `pre_add` first links the lowest
/// candidate itself, through the quiet relation in the same transaction, as a concurrent add
/// committing in between would.
#[receiver(m2m_changed, sender = Labels)]
async fn labels_changed(ev: M2mChanged<'_, Labels>, tx: AnyTx<'_>) -> Result<(), OrmError> {
    let M2mSide::Forward {
        instance,
        pk_set: Some(keys),
    } = ev.side
    else {
        if let M2mSide::Reverse {
            instance,
            pk_set: Some(keys),
        } = ev.side
        {
            hear(&instance.name, ev.action, keys);
        }
        return Ok(());
    };
    hear(&instance.title, ev.action, keys);
    if ev.action == M2mAction::PreAdd
        && instance.title.starts_with("sneaky")
        && let Some(&first) = keys.first()
    {
        let linked = match tx {
            AnyTx::Sqlite(tx) => QuietLabels::of(instance).add(tx, [first]).await?,
            AnyTx::Postgres(tx) => QuietLabels::of(instance).add(tx, [first]).await?,
        };
        assert_eq!(linked, 1);
    }
    Ok(())
}

#[receiver(m2m_changed, sender = LoudFriends)]
fn loud_friends_changed(ev: M2mChanged<'_, LoudFriends>) {
    if let M2mSide::Forward {
        instance,
        pk_set: Some(keys),
    } = ev.side
    {
        hear(&instance.name, ev.action, keys);
    }
}

// ---- the statements sqlx ran ---------------------------------------------------------------

mod statements {
    //! A global `tracing` subscriber keeping the statements sqlx logs inside a `probe` span,
    //! per probe. Global, because sqlx runs SQLite statements on a worker thread of its own,
    //! which enters the caller's span but not the caller's thread-local subscriber.

    use std::collections::BTreeMap;
    use std::fmt;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Mutex, Once};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id};
    use tracing::{Event, Instrument as _, Subscriber};
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::{Context, SubscriberExt as _};
    use tracing_subscriber::registry::LookupSpan;

    static RAN: Mutex<BTreeMap<u64, Vec<String>>> = Mutex::new(BTreeMap::new());
    static PROBES: AtomicU64 = AtomicU64::new(1);
    static INSTALL: Once = Once::new();

    /// A span's probe number.
    struct Probe(u64);

    #[derive(Default)]
    struct Fields {
        probe: Option<u64>,
        summary: String,
        statement: String,
    }

    impl Visit for Fields {
        fn record_u64(&mut self, field: &Field, value: u64) {
            if field.name() == "probe" {
                self.probe = Some(value);
            }
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            match field.name() {
                "summary" => value.clone_into(&mut self.summary),
                "db.statement" => value.trim().clone_into(&mut self.statement),
                _ => {}
            }
        }
        fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {}
    }

    struct Statements;

    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Statements {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
            let mut fields = Fields::default();
            attrs.record(&mut fields);
            if let (Some(probe), Some(span)) = (fields.probe, ctx.span(id)) {
                span.extensions_mut().insert(Probe(probe));
            }
        }

        fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
            if event.metadata().target() != "sqlx::query" {
                return;
            }
            let Some(probe) = ctx.event_scope(event).and_then(|scope| {
                scope
                    .from_root()
                    .find_map(|span| span.extensions().get::<Probe>().map(|p| p.0))
            }) else {
                return;
            };
            let mut fields = Fields::default();
            event.record(&mut fields);
            // sqlx logs the whole text when its summary (the first words) is not all of it.
            let text = if fields.statement.is_empty() {
                fields.summary
            } else {
                fields.statement
            };
            RAN.lock().unwrap().entry(probe).or_default().push(text);
        }
    }

    /// Runs `operation` and returns what it returned and the statements it ran, in order.
    pub async fn of<T>(operation: impl Future<Output = T>) -> (T, Vec<String>) {
        INSTALL.call_once(|| {
            tracing::subscriber::set_global_default(
                tracing_subscriber::registry().with(Statements),
            )
            .expect("no other global subscriber in this test binary");
        });
        let probe = PROBES.fetch_add(1, Ordering::SeqCst);
        let out = operation
            .instrument(tracing::info_span!("probe", probe))
            .await;
        let ran = RAN.lock().unwrap().remove(&probe).unwrap_or_default();
        (out, ran)
    }
}

// ---- helpers -------------------------------------------------------------------------------

async fn note<DB: TestBackend>(pool: &Pool<DB>, title: &str) -> Note
where
    Note: Persist<DB>,
{
    let mut note = Note {
        id: None,
        title: title.to_owned(),
    };
    note.save(pool).await.unwrap();
    note
}

async fn person<DB: TestBackend>(pool: &Pool<DB>, name: &str) -> Person
where
    Person: Persist<DB>,
{
    let mut person = Person {
        id: None,
        name: name.to_owned(),
    };
    person.save(pool).await.unwrap();
    person
}

/// `n` new labels in one statement; returns their keys.
async fn labels<DB: TestBackend>(pool: &Pool<DB>, n: usize) -> BTreeSet<i64> {
    let before = DB::scalar(pool, "SELECT COALESCE(MAX(id), 0) FROM labels").await;
    let sql = format!(
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {n}) \
         INSERT INTO labels (name) SELECT 'label ' || x FROM n"
    );
    DB::run(pool, sql).await;
    let keys = keys_where::<DB>(pool, format!("SELECT id FROM labels WHERE id > {before}")).await;
    assert_eq!(keys.len(), n);
    keys
}

async fn keys_where<DB: TestBackend>(pool: &Pool<DB>, sql: String) -> BTreeSet<i64> {
    DB::integers(pool, sql).await.into_iter().collect()
}

/// The labels linked to `note`, read with plain SQL.
async fn linked<DB: TestBackend>(pool: &Pool<DB>, note: &Note) -> BTreeSet<i64> {
    let sql = format!(
        "SELECT label_id FROM note_labels WHERE note_id = {}",
        note.id.unwrap()
    );
    keys_where::<DB>(pool, sql).await
}

async fn link_rows<DB: TestBackend>(pool: &Pool<DB>, note: &Note) -> i64 {
    let sql = format!(
        "SELECT COUNT(*) FROM note_labels WHERE note_id = {}",
        note.id.unwrap()
    );
    DB::integers(pool, sql).await[0]
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap()
}

/// The keys of `action` in what `name`'s receivers heard, one entry per send.
fn sets(name: &str, action: M2mAction) -> Vec<BTreeSet<i64>> {
    heard(name)
        .into_iter()
        .filter(|(a, _)| *a == action)
        .map(|(_, keys)| keys)
        .collect()
}

// ---- scenarios -----------------------------------------------------------------------------

/// `LINKS_PER_INSERT + 1` keys take two INSERTs: every key is linked once, `post_add` carries
/// exactly the keys, a second add links nothing, and a failure in the second INSERT undoes the
/// first also when nobody listens.
async fn an_add_over_the_chunk_boundary_links_every_key_once<DB: TestBackend>(pool: Pool<DB>)
where
    Note: Persist<DB>,
    Label: Persist<DB>,
{
    let n = LINKS_PER_INSERT + 1;
    let keys = labels(&pool, n).await;

    let title = unique("chunk");
    let heard_note = note(&pool, &title).await;
    let (added, ran) = statements::of(Labels::of(&heard_note).add(&pool, keys.clone())).await;
    assert_eq!(added.unwrap(), n);
    let inserts = ran.iter().filter(|s| s.starts_with("INSERT")).count();
    assert_eq!(inserts, 2, "two chunks, two INSERTs");
    assert_eq!(sets(&title, M2mAction::PreAdd), std::slice::from_ref(&keys));
    assert_eq!(
        sets(&title, M2mAction::PostAdd),
        std::slice::from_ref(&keys),
        "exact"
    );
    assert_eq!(
        link_rows(&pool, &heard_note).await,
        count(n),
        "each key once"
    );
    assert_eq!(linked(&pool, &heard_note).await, keys);
    assert_eq!(
        Labels::of(&heard_note)
            .add(&pool, keys.clone())
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        sets(&title, M2mAction::PostAdd)[1],
        BTreeSet::new(),
        "the second add inserted nothing"
    );

    let quiet = note(&pool, &unique("quiet chunk")).await;
    assert_eq!(
        QuietLabels::of(&quiet)
            .add(&pool, keys.clone())
            .await
            .unwrap(),
        n
    );
    assert_eq!(link_rows(&pool, &quiet).await, count(n));
    assert_eq!(
        QuietLabels::of(&quiet)
            .add(&pool, keys.clone())
            .await
            .unwrap(),
        0
    );

    // The key that does not exist sorts last, into the second INSERT, which then fails: the
    // first, already run, is undone with it.
    let failing = note(&pool, &unique("failing chunk")).await;
    let first_chunk: Vec<i64> = keys.iter().copied().take(LINKS_PER_INSERT).collect();
    let error = QuietLabels::of(&failing)
        .add(&pool, first_chunk.into_iter().chain([i64::MAX]))
        .await
        .unwrap_err();
    assert!(matches!(error, OrmError::Database { .. }), "{error}");
    assert_eq!(link_rows(&pool, &failing).await, 0, "nothing stays");
}

/// Keys linked already are left out of `pre_add`, `post_add` and the result; a key linked
/// between `pre_add` and the INSERT (here by the receiver itself, as a concurrent add would)
/// is left out of `post_add` and the result. From either side, heard or not.
async fn an_add_reports_only_the_links_it_inserted<DB: TestBackend>(pool: Pool<DB>)
where
    Note: Persist<DB>,
    Label: Persist<DB>,
{
    let keys: Vec<i64> = labels(&pool, 5).await.into_iter().collect();
    let all: BTreeSet<i64> = keys.iter().copied().collect();
    let new: BTreeSet<i64> = keys[2..].iter().copied().collect();

    let title = unique("some linked");
    let some = note(&pool, &title).await;
    assert_eq!(
        QuietLabels::of(&some)
            .add(&pool, [keys[0], keys[1]])
            .await
            .unwrap(),
        2
    );
    assert_eq!(Labels::of(&some).add(&pool, keys.clone()).await.unwrap(), 3);
    assert_eq!(sets(&title, M2mAction::PreAdd), std::slice::from_ref(&new));
    assert_eq!(sets(&title, M2mAction::PostAdd), std::slice::from_ref(&new));
    assert_eq!(linked(&pool, &some).await, all);

    let quiet = note(&pool, &unique("quiet some linked")).await;
    assert_eq!(
        QuietLabels::of(&quiet)
            .add(&pool, [keys[0], keys[1]])
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        QuietLabels::of(&quiet)
            .add(&pool, keys.clone())
            .await
            .unwrap(),
        3
    );
    assert_eq!(linked(&pool, &quiet).await, all);

    let title = unique("sneaky");
    let sneaky = note(&pool, &title).await;
    assert_eq!(
        Labels::of(&sneaky).add(&pool, new.clone()).await.unwrap(),
        2
    );
    assert_eq!(sets(&title, M2mAction::PreAdd), std::slice::from_ref(&new));
    let lost: BTreeSet<i64> = keys[3..].iter().copied().collect();
    assert_eq!(
        sets(&title, M2mAction::PostAdd),
        [lost],
        "the key linked in between is not this add's"
    );
    assert_eq!(linked(&pool, &sneaky).await, new);

    // From the label's side: the INSERT returns the notes' keys.
    let label = Label::get(&pool, &keys[4]).await.unwrap().unwrap();
    let others = [
        note(&pool, "other a").await.id.unwrap(),
        note(&pool, "other b").await.id.unwrap(),
    ];
    let notes: BTreeSet<i64> = [some.id.unwrap(), others[0], others[1]].into();
    assert_eq!(
        Labels::of_target(&label)
            .add(&pool, notes.clone())
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        sets(&label.name, M2mAction::PostAdd).last(),
        Some(&others.into_iter().collect())
    );
    let third = note(&pool, "other c").await.id.unwrap();
    assert_eq!(
        QuietLabels::of_target(&label)
            .add(&pool, [others[0], third])
            .await
            .unwrap(),
        1
    );
    let sql = format!(
        "SELECT note_id FROM note_labels WHERE label_id = {}",
        keys[4]
    );
    let linked_notes = keys_where::<DB>(&pool, sql).await;
    assert!(linked_notes.is_superset(&notes) && linked_notes.contains(&third));
}

/// Two tasks, each on its own connection, add overlapping keys to one note, many times: every
/// key is linked once, the two results add up to the keys, and the two `post_add`s are
/// disjoint and together the keys.
async fn concurrent_adds_of_overlapping_keys_link_each_key_once<DB: TestBackend>(pool: Pool<DB>)
where
    Note: Persist<DB>,
    Label: Persist<DB>,
{
    let keys: Vec<i64> = labels(&pool, 12).await.into_iter().collect();
    let all: BTreeSet<i64> = keys.iter().copied().collect();
    let halves = [keys[..8].to_vec(), keys[4..].to_vec()];
    for round in 0..10 {
        for heard_by_receiver in [true, false] {
            let title = unique(&format!("race {round}"));
            let note = note(&pool, &title).await;
            let mut tasks = tokio::task::JoinSet::new();
            for half in halves.clone() {
                let (pool, note) = (pool.clone(), note.clone());
                tasks.spawn(async move {
                    if heard_by_receiver {
                        Labels::of(&note).add(&pool, half).await
                    } else {
                        QuietLabels::of(&note).add(&pool, half).await
                    }
                });
            }
            let added: usize = tasks
                .join_all()
                .await
                .into_iter()
                .map(|added| added.expect("no error, whoever wins"))
                .sum();
            assert_eq!(added, keys.len(), "round {round}");
            assert_eq!(link_rows(&pool, &note).await, count(keys.len()));
            if heard_by_receiver {
                let posted = sets(&title, M2mAction::PostAdd);
                assert_eq!(posted.len(), 2);
                assert!(posted[0].is_disjoint(&posted[1]), "{posted:?}");
                let union: BTreeSet<i64> = posted[0].union(&posted[1]).copied().collect();
                assert_eq!(union, all);
            }
        }
    }
}

/// With no receiver, an add given the pool is its one INSERT, in autocommit: no SELECT, no
/// BEGIN. Given a transaction, it is that INSERT in it. With a receiver it reads the current
/// links first (which shows the statements are seen), also when the receiver is muted, and the
/// muted receiver hears nothing.
async fn an_add_nobody_hears_runs_its_insert_alone<DB: TestBackend>(pool: Pool<DB>)
where
    Note: Persist<DB>,
    Label: Persist<DB>,
{
    let keys = labels(&pool, 3).await;
    let insert = r#"INSERT INTO "note_labels" ("note_id", "label_id") VALUES ($1, $2), ($3, $4), ($5, $6) ON CONFLICT DO NOTHING"#;

    let quiet = note(&pool, &unique("quiet")).await;
    let (added, ran) = statements::of(QuietLabels::of(&quiet).add(&pool, keys.clone())).await;
    assert_eq!(added.unwrap(), 3);
    assert_eq!(ran, [insert]);

    let in_tx = note(&pool, &unique("quiet in tx")).await;
    let mut tx = Tx::begin(&pool).await.unwrap();
    let (added, ran) = statements::of(QuietLabels::of(&in_tx).add(&mut tx, keys.clone())).await;
    assert_eq!(added.unwrap(), 3);
    assert_eq!(ran, [insert]);
    tx.commit().await.unwrap();
    assert_eq!(linked(&pool, &in_tx).await, keys);

    let title = unique("heard");
    let loud = note(&pool, &title).await;
    let (added, ran) = statements::of(Labels::of(&loud).add(&pool, keys.clone())).await;
    assert_eq!(added.unwrap(), 3);
    let select = r#"SELECT "label_id" FROM "note_labels" WHERE "note_id" = $1 ORDER BY "label_id""#;
    let position = |text: &str| ran.iter().position(|s| s == text);
    let returning = format!(r#"{insert} RETURNING "label_id""#);
    assert!(
        position(select) < position(&returning) && position(select).is_some(),
        "{ran:#?}"
    );
    assert_eq!(
        sets(&title, M2mAction::PostAdd),
        std::slice::from_ref(&keys)
    );

    let title = unique("muted");
    let muted = note(&pool, &title).await;
    let (added, ran) = Mute::new()
        .signal::<M2mChangedSignal>()
        .scope(statements::of(Labels::of(&muted).add(&pool, keys.clone())))
        .await;
    assert_eq!(added.unwrap(), 3);
    assert!(ran.iter().any(|s| s == select), "{ran:#?}");
    assert!(heard(&title).is_empty(), "muted");
    assert_eq!(linked(&pool, &muted).await, keys);
}

/// A symmetrical add writes the link and its mirror, from either side, heard or not; with no
/// receiver it reads nothing, and its two INSERTs are one transaction.
async fn a_symmetrical_add_writes_both_rows<DB: TestBackend>(pool: Pool<DB>)
where
    Person: Persist<DB>,
{
    let mut people = Vec::new();
    for name in ["alice", "bob", "chuck", "dave", "erin"] {
        people.push(person(&pool, &unique(name)).await);
    }
    let id = |i: usize| people[i].id.unwrap();
    let friends_of = |i: usize| {
        let pool = pool.clone();
        let me = id(i);
        async move {
            let sql = format!("SELECT friend_id FROM friends WHERE person_id = {me}");
            keys_where::<DB>(&pool, sql).await
        }
    };

    let (added, ran) = statements::of(Friends::of(&people[0]).add(&pool, [id(1), id(2)])).await;
    assert_eq!(added.unwrap(), 2);
    // The transaction's own statements are not all logged (sqlx logs PostgreSQL's COMMIT, not
    // its BEGIN, and neither on SQLite): its atomicity is checked in the chunk scenario.
    let insert = r#"INSERT INTO "friends" ("person_id", "friend_id") VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING"#;
    let statements: Vec<&str> = ran
        .iter()
        .map(String::as_str)
        .filter(|s| !matches!(*s, "BEGIN" | "BEGIN IMMEDIATE" | "COMMIT"))
        .collect();
    assert_eq!(
        statements,
        [
            format!(r#"{insert} RETURNING "friend_id""#).as_str(),
            insert
        ],
        "the links, then their mirrors; nothing read"
    );
    assert_eq!(friends_of(0).await, [id(1), id(2)].into());
    assert_eq!(friends_of(1).await, [id(0)].into(), "the mirror row");
    assert_eq!(friends_of(2).await, [id(0)].into());
    assert_eq!(
        Friends::of(&people[1])
            .add(&pool, [id(0), id(2)])
            .await
            .unwrap(),
        1,
        "alice is bob's friend already"
    );
    assert_eq!(friends_of(2).await, [id(0), id(1)].into());

    // From the other side: the link (erin, dave) and its mirror (dave, erin).
    assert_eq!(
        Friends::of_target(&people[3])
            .add(&pool, [id(4)])
            .await
            .unwrap(),
        1
    );
    assert_eq!(friends_of(4).await, [id(3)].into());
    assert_eq!(friends_of(3).await, [id(4)].into());

    // Heard: post_add carries the keys, and both rows are written after it.
    let dave = people[3].name.clone();
    let mut tx = Tx::begin(&pool).await.unwrap();
    assert_eq!(
        LoudFriends::of(&people[3])
            .add(&mut tx, [id(0), id(4)])
            .await
            .unwrap(),
        1
    );
    tx.commit().await.unwrap();
    assert_eq!(sets(&dave, M2mAction::PostAdd), [BTreeSet::from([id(0)])]);
    assert_eq!(friends_of(3).await, [id(0), id(4)].into());
    assert_eq!(friends_of(0).await, [id(1), id(2), id(3)].into());
    assert_eq!(
        DB::scalar(
            &pool,
            "SELECT COUNT(*) FROM friends f WHERE NOT EXISTS \
             (SELECT 1 FROM friends m WHERE m.person_id = f.friend_id AND m.friend_id = f.person_id)",
        )
        .await,
        0,
        "every row has its mirror"
    );
}
