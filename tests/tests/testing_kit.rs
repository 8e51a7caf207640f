//! What testing an application's receivers needs: payload constructors to call one receiver
//! directly, `PreSave::adding` as real writes set it (every backend), muting model signals
//! around a write, and relation managers reachable without importing `Through` (this file
//! does not import it).

mod support;

use std::collections::BTreeSet;
use std::sync::Mutex;

use signals_orm::m2m::{M2mAction, M2mChanged, M2mSide};
use signals_orm::model_signals::PostSaveSignal;
use signals_orm::testing::{Fake, assert_lines};
use signals_orm::{
    AnyModel, AnyTx, Committed, Model, ModelExt, ModelSnapshot, Mute, OrmError, Persist,
    PostDelete, PostSave, PreDelete, PreSave, Saved, Sender, Tx, receiver,
};
use sqlx::Pool;
use support::{Log, TestBackend, log, logged};

const SCHEMA: &str = "
CREATE TABLE log (id {serial}, entry TEXT NOT NULL);
CREATE TABLE drafts (id {serial}, body TEXT NOT NULL);
CREATE TABLE codes (code TEXT PRIMARY KEY, label TEXT NOT NULL);
CREATE TABLE quiet (id {serial}, body TEXT NOT NULL);
CREATE TABLE posts (id {serial}, title TEXT NOT NULL);
CREATE TABLE tags (id {serial}, name TEXT NOT NULL);
CREATE TABLE post_tags (
    post_id BIGINT NOT NULL REFERENCES posts (id),
    tag_id BIGINT NOT NULL REFERENCES tags (id),
    PRIMARY KEY (post_id, tag_id));
";

every_backend!(
    pre_save_adding_says_whether_the_save_will_insert,
    a_muted_post_save_runs_no_receiver_and_queues_no_on_commit,
    relation_managers_need_no_trait_import,
);

// ---- adding: what real writes send ----------------------------------------------------------

/// A model whose key the database generates.
#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "drafts")]
struct Draft {
    #[model(primary_key)]
    id: Option<i64>,
    body: String,
}

/// A model whose key the application gives.
#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "codes")]
struct Code {
    #[model(primary_key)]
    code: String,
    label: String,
}

#[receiver(pre_save, sender = Draft)]
async fn draft_adding(ev: PreSave<'_, Draft>, tx: AnyTx<'_>) -> Result<(), OrmError> {
    log(
        tx,
        format!("draft {} adding={}", ev.instance.body, ev.adding),
    )
    .await
}

#[receiver(pre_save, sender = Code)]
async fn code_adding(ev: PreSave<'_, Code>, tx: AnyTx<'_>) -> Result<(), OrmError> {
    log(
        tx,
        format!("code {} adding={}", ev.instance.code, ev.adding),
    )
    .await
}

async fn pre_save_adding_says_whether_the_save_will_insert<DB: TestBackend>(pool: Pool<DB>)
where
    Draft: Persist<DB>,
    Code: Persist<DB>,
    Log: Persist<DB>,
{
    let mut draft = Draft {
        id: None,
        body: "new".into(),
    };
    assert_eq!(draft.save(&pool).await.unwrap(), Saved::Created);
    draft.body = "saved".into();
    assert_eq!(draft.save(&pool).await.unwrap(), Saved::Updated);
    draft.body = "fields".into();
    draft.save_fields(&["body"], &pool).await.unwrap();
    let mut raw = Draft {
        id: None,
        body: "raw".into(),
    };
    raw.save_raw(&pool).await.unwrap();

    let mut code = Code {
        code: "A".into(),
        label: "first".into(),
    };
    // An application key: `save` tries an UPDATE first, so an INSERT is not certain.
    assert_eq!(code.save(&pool).await.unwrap(), Saved::Created);
    assert_eq!(code.save(&pool).await.unwrap(), Saved::Updated);
    let mut forced = Code {
        code: "B".into(),
        label: "second".into(),
    };
    forced.insert(&pool).await.unwrap();

    assert_eq!(
        logged(&pool).await,
        [
            "draft new adding=true",
            "draft saved adding=false",
            "draft fields adding=false",
            "draft raw adding=true",
            "code A adding=false",
            "code A adding=false",
            "code B adding=true",
        ]
    );
}

// ---- muting model signals around a write -----------------------------------------------------

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "quiet")]
struct Quiet {
    #[model(primary_key)]
    id: Option<i64>,
    body: String,
}

/// What the `Quiet` receivers heard, as `"<receiver> <body>"`; tests use bodies of their own.
static QUIET_HEARD: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn heard(body: &str) -> Vec<String> {
    let suffix = format!(" {body}");
    QUIET_HEARD
        .lock()
        .unwrap()
        .iter()
        .filter(|h| h.ends_with(&suffix))
        .cloned()
        .collect()
}

#[receiver(post_save, sender = Quiet)]
fn quiet_saved(ev: PostSave<'_, Quiet>) {
    let entry = format!("saved {}", ev.instance.body);
    QUIET_HEARD.lock().unwrap().push(entry);
}

#[receiver(post_save, sender = Quiet, on_commit)]
async fn quiet_committed(ev: Committed<Quiet>) {
    let entry = format!("committed {}", ev.instance.body);
    QUIET_HEARD.lock().unwrap().push(entry);
}

async fn a_muted_post_save_runs_no_receiver_and_queues_no_on_commit<DB: TestBackend>(pool: Pool<DB>)
where
    Quiet: Persist<DB>,
{
    // The fake stands in for `quiet_saved` in this task only, so its calls are this test's.
    let saved = Fake::<PostSaveSignal>::receiver(quiet_saved, Sender::of::<Quiet>());
    let mut tx = Tx::begin(&pool).await.unwrap();
    let mut row = Quiet {
        id: None,
        body: "muted".into(),
    };
    // The scope mutes this task only: other tests' saves meanwhile are heard.
    let muted = Mute::new()
        .signal::<PostSaveSignal>()
        .scope(row.save(&mut tx));
    saved.scope(muted).await.unwrap();
    assert!(row.id.is_some(), "the row is written all the same");
    assert!(saved.calls().is_empty());
    assert_lines(&tx.on_commit_queue(), &[]);

    saved.scope(row.save(&mut tx)).await.unwrap();
    assert_eq!(saved.calls().len(), 1);
    assert_lines(
        &tx.on_commit_queue(),
        &["post_save[Quiet] testing_kit::quiet_committed"],
    );
}

// ---- relation managers without `Through` in scope ------------------------------------------

#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "posts")]
struct Post {
    #[model(primary_key)]
    id: Option<i64>,
    title: String,
}

#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "tags")]
struct Tag {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

signals_orm::many_to_many! {
    /// Tags of posts.
    struct PostTags(Post => "post_id", Tag => "tag_id") in "post_tags";
}

async fn relation_managers_need_no_trait_import<DB: TestBackend>(pool: Pool<DB>)
where
    Post: Persist<DB>,
    Tag: Persist<DB>,
{
    let mut post = Post {
        id: None,
        title: "hello".into(),
    };
    post.save(&pool).await.unwrap();
    let mut tag = Tag {
        id: None,
        name: "rust".into(),
    };
    tag.save(&pool).await.unwrap();
    assert_eq!(
        PostTags::of(&post)
            .add(&pool, [tag.id.unwrap()])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        PostTags::of_target(&tag).all(&pool).await.unwrap(),
        [post.clone()]
    );
}

// ---- calling one receiver directly -----------------------------------------------------------

#[receiver(pre_save, sender = Draft)]
fn trim_body(ev: PreSave<'_, Draft>) {
    if ev.adding && !ev.raw {
        let trimmed = ev.instance.body.trim().to_owned();
        ev.instance.body = trimmed;
    }
}

std::thread_local! {
    /// What `describe_any` saw last on this thread (real writes run on other threads).
    static DESCRIBED: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

#[receiver(post_save)]
fn describe_any(ev: PostSave<'_, dyn AnyModel>) {
    let text = format!(
        "{} {} created={} on {}",
        ev.instance.meta().name,
        ev.instance.pk_value(),
        ev.created,
        ev.using
    );
    DESCRIBED.with(|d| *d.borrow_mut() = text);
}

fn described() -> String {
    DESCRIBED.with(|d| d.borrow().clone())
}

#[test]
fn pre_save_new_has_the_defaults_of_a_save_on_sqlite() {
    let mut draft = Draft {
        id: None,
        body: "  padded  ".into(),
    };
    let ev = PreSave::new(&mut draft);
    assert!(ev.adding, "the generated key is unset");
    assert!(!ev.raw);
    assert_eq!(ev.update_fields, None);
    assert_eq!(ev.using, "sqlite");
    trim_body(ev);
    assert_eq!(draft.body, "padded");

    let mut loaded = Draft {
        id: Some(3),
        body: "  kept  ".into(),
    };
    trim_body(PreSave::new(&mut loaded));
    assert_eq!(loaded.body, "  kept  ", "a saved draft is not adding");
    trim_body(PreSave::new(&mut draft).with_adding(true).with_raw(true));
    let ev = PreSave::new(&mut loaded)
        .with_update_fields(&["body"])
        .with_using("postgres");
    assert_eq!(
        (ev.update_fields, ev.using),
        (Some(&["body"][..]), "postgres")
    );

    let mut code = Code {
        code: "K".into(),
        label: String::new(),
    };
    assert!(
        !PreSave::new(&mut code).adding,
        "an application key: as `save` sends it"
    );
    assert!(PreSave::new(&mut code).with_adding(true).adding);
    let any: &mut dyn AnyModel = &mut Draft {
        id: None,
        body: String::new(),
    };
    assert!(PreSave::new(any).adding, "the same rule for `dyn AnyModel`");
}

#[test]
fn post_save_and_delete_payloads_reach_receivers_of_every_model() {
    let draft = Draft {
        id: Some(5),
        body: "b".into(),
    };
    let any: &dyn AnyModel = &draft;
    describe_any(PostSave::new(any, true).with_using("postgres"));
    assert_eq!(described(), "Draft 5 created=true on postgres");
    describe_any(PostSave::new(any, false));
    assert_eq!(described(), "Draft 5 created=false on sqlite");
    let ev = PostSave::new(&draft, false)
        .with_raw(true)
        .with_update_fields(&["body"]);
    assert!(ev.raw && !ev.created && ev.update_fields == Some(&["body"][..]));

    let pre = PreDelete::new(&draft);
    assert_eq!(
        (
            pre.origin.meta().name,
            pre.origin.instance().map(AnyModel::pk_value),
            pre.using
        ),
        ("Draft", Some(serde_json::json!(5)), "sqlite"),
        "origin is the instance, as `delete` sends it"
    );
    let post = Post {
        id: Some(9),
        title: "t".into(),
    };
    let post_delete = PostDelete::new(any)
        .with_origin(&post)
        .with_using("postgres");
    assert_eq!(
        (post_delete.origin.meta().name, post_delete.using),
        ("Post", "postgres")
    );
}

#[tokio::test]
async fn committed_new_copies_the_instance_for_on_commit_receivers() {
    let draft = Draft {
        id: Some(1),
        body: "b".into(),
    };
    let ev = Committed::new(draft.clone(), true);
    assert_eq!(
        (ev.signal, ev.model, ev.created, ev.raw, ev.using),
        ("post_save", "Draft", true, false, "sqlite")
    );
    assert_eq!(ev.instance, draft);
    let ev = Committed::new(draft.clone(), false)
        .with_signal("post_delete")
        .with_raw(true)
        .with_update_fields(&["body"])
        .with_using("postgres");
    assert_eq!(
        (ev.signal, ev.raw, ev.update_fields, ev.using),
        ("post_delete", true, Some(vec!["body"]), "postgres")
    );
    let snapshot = Committed::new(ModelSnapshot::of(&draft), true);
    assert_eq!(
        (snapshot.model, snapshot.instance.table),
        ("Draft", "drafts")
    );
    assert_eq!(snapshot.instance.pk, serde_json::json!(1));

    let quiet = Quiet {
        id: Some(1),
        body: "direct".into(),
    };
    quiet_committed(Committed::new(quiet, true)).await;
    assert_eq!(heard("direct"), ["committed direct"]);
}

/// Drops the keys of tags above 100 before they are linked.
#[receiver(m2m_changed, sender = PostTags)]
fn drop_big_tag_keys(ev: M2mChanged<'_, PostTags>) {
    if let (
        M2mAction::PreAdd,
        M2mSide::Forward {
            pk_set: Some(keys), ..
        },
    ) = (ev.action, ev.side)
    {
        keys.retain(|k| *k <= 100);
    }
}

#[test]
fn m2m_changed_new_builds_either_side() {
    let post = Post {
        id: Some(1),
        title: "t".into(),
    };
    let mut keys = BTreeSet::from([1, 200]);
    let side = M2mSide::Forward {
        instance: &post,
        pk_set: Some(&mut keys),
    };
    let ev = M2mChanged::<PostTags>::new(M2mAction::PreAdd, side);
    assert!(!ev.reverse());
    assert_eq!((ev.model().name, ev.using), ("Tag", "sqlite"));
    drop_big_tag_keys(ev);
    assert_eq!(keys, BTreeSet::from([1]));

    let tag = Tag {
        id: Some(2),
        name: "n".into(),
    };
    let ev = M2mChanged::<PostTags>::new(
        M2mAction::PostClear,
        M2mSide::Reverse {
            instance: &tag,
            pk_set: None,
        },
    )
    .with_using("postgres");
    assert!(ev.reverse());
    assert_eq!((ev.model().name, ev.using), ("Post", "postgres"));
}
