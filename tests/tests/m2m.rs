//! Many-to-many relations and `m2m_changed`, against Django's rules (`docs/django.md`,
//! Many-to-many), on every backend.
//! Receivers log through the operation's own transaction: `{action} {side} {instance} {pk_set}`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use signals_orm::m2m::{AnyM2mChanged, M2mAction, M2mChanged, M2mSide};
use signals_orm::{
    AnyTx, Model, ModelExt, OrmError, Persist, PostDelete, PostSave, PreDelete, receiver,
};
use sqlx::Pool;
use support::{Log, TestBackend, log, logged};

const SCHEMA: &str = r#"
CREATE TABLE log (id {serial}, entry TEXT NOT NULL);
CREATE TABLE posts (id {serial}, title TEXT NOT NULL);
CREATE TABLE tags (id {serial}, name TEXT NOT NULL);
CREATE TABLE post_tags (
    post_id BIGINT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    tag_id BIGINT NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (post_id, tag_id));
CREATE TABLE people (id {serial}, name TEXT NOT NULL);
CREATE TABLE friends (
    person_id BIGINT NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    friend_id BIGINT NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    PRIMARY KEY (person_id, friend_id));
CREATE TABLE clubs (id {serial}, name TEXT NOT NULL);
CREATE TABLE memberships (
    id {serial},
    person_id BIGINT NOT NULL REFERENCES people (id),
    club_id BIGINT NOT NULL REFERENCES clubs (id),
    role TEXT NOT NULL DEFAULT 'member',
    UNIQUE (person_id, club_id));
CREATE TABLE "odd""notes" (id {serial}, "bo""dy" TEXT NOT NULL);
CREATE TABLE "odd""links" (
    "no""te" BIGINT NOT NULL REFERENCES "odd""notes" (id),
    tag_id BIGINT NOT NULL REFERENCES tags (id),
    PRIMARY KEY ("no""te", tag_id));
"#;

every_backend!(
    add_reports_only_new_keys_and_fires_even_when_none_are,
    remove_reports_the_keys_it_deleted_and_clear_always_fires,
    set_changes_only_the_difference,
    the_reverse_side_gets_typed_instances_and_keys,
    receivers_may_change_pk_set_and_so_what_is_written,
    a_failing_receiver_or_a_missing_key_undoes_the_operation,
    symmetrical_relations_signal_once_and_link_both_ways,
    deleting_an_object_sends_no_m2m_changed,
    a_custom_through_model_is_the_sender_and_keeps_its_columns,
    quotes_in_table_and_column_names_are_escaped,
    concurrent_adds_and_removes_report_exactly_the_rows_written,
    concurrent_sets_report_exactly_the_rows_written,
    concurrent_symmetrical_adds_and_removes_keep_both_directions,
);

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

/// `{1, 2}` as the log writes it.
fn show(keys: Option<&BTreeSet<i64>>) -> String {
    keys.map_or_else(|| "None".to_owned(), |k| format!("{k:?}"))
}

#[receiver(m2m_changed, sender = PostTags)]
async fn post_tags_changed(
    ev: M2mChanged<'_, PostTags>,
    tx: AnyTx<'_>,
) -> Result<(), signals_orm::BoxError> {
    let (reverse, model) = (ev.reverse(), ev.model().name);
    let entry = match ev.side {
        M2mSide::Forward { instance, pk_set } => {
            if let Some(set) = pk_set {
                // Receivers may change what is written: "restricted" posts take one tag per add,
                // and "sticky" posts keep their tags.
                if ev.action == M2mAction::PreAdd && instance.title == "restricted" && set.len() > 1
                {
                    set.pop_last();
                }
                if ev.action == M2mAction::PreRemove && instance.title == "sticky" {
                    set.clear();
                }
                if ev.action == M2mAction::PostAdd && instance.title == "boom" {
                    return Err("post_add refused".into());
                }
                format!(
                    "{} post {} {} model={model}",
                    ev.action,
                    instance.title,
                    show(Some(set))
                )
            } else {
                format!("{} post {} None model={model}", ev.action, instance.title)
            }
        }
        M2mSide::Reverse { instance, pk_set } => {
            format!(
                "{} tag {} {} reverse={reverse} model={model}",
                ev.action,
                instance.name,
                show(pk_set.as_deref())
            )
        }
    };
    log(tx, entry).await?;
    Ok(())
}

async fn post_and_tags<DB: TestBackend>(
    pool: &Pool<DB>,
    title: &str,
    names: &[&str],
) -> (Post, Vec<i64>)
where
    Post: Persist<DB>,
    Tag: Persist<DB>,
{
    let mut post = Post {
        id: None,
        title: title.into(),
    };
    post.save(pool).await.unwrap();
    let mut ids = Vec::new();
    for name in names {
        let mut tag = Tag {
            id: None,
            name: (*name).into(),
        };
        tag.save(pool).await.unwrap();
        ids.push(tag.id.unwrap());
    }
    (post, ids)
}

async fn add_reports_only_new_keys_and_fires_even_when_none_are<DB: TestBackend>(pool: Pool<DB>)
where
    Post: Persist<DB>,
    Tag: Persist<DB>,
    Log: Persist<DB>,
{
    let (post, t) = post_and_tags(&pool, "p", &["a", "b", "c"]).await;
    let tags = PostTags::of(&post);
    assert_eq!(
        tags.add(&pool, [t[0], t[1], t[1]]).await.unwrap(),
        2,
        "duplicates in one call count once"
    );
    assert_eq!(tags.add(&pool, [t[1], t[0]]).await.unwrap(), 0);
    assert_eq!(tags.add(&pool, []).await.unwrap(), 0);
    tags.add(&pool, [t[1], t[2]]).await.unwrap();
    let ab = format!("{:?}", BTreeSet::from([t[0], t[1]]));
    let c = format!("{:?}", BTreeSet::from([t[2]]));
    assert_eq!(
        logged(&pool).await,
        [
            format!("pre_add post p {ab} model=Tag"),
            format!("post_add post p {ab} model=Tag"),
            "pre_add post p {} model=Tag".to_owned(),
            "post_add post p {} model=Tag".to_owned(),
            format!("pre_add post p {c} model=Tag"),
            format!("post_add post p {c} model=Tag"),
        ],
        "add reports only new keys, fires on none new, and nothing for no keys at all"
    );
    assert_eq!(
        tags.keys(&pool).await.unwrap(),
        BTreeSet::from([t[0], t[1], t[2]])
    );
    let names: Vec<String> = tags
        .all(&pool)
        .await
        .unwrap()
        .into_iter()
        .map(|tag| tag.name)
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
}

async fn remove_reports_the_keys_it_deleted_and_clear_always_fires<DB: TestBackend>(pool: Pool<DB>)
where
    Post: Persist<DB>,
    Tag: Persist<DB>,
    Log: Persist<DB>,
{
    let (post, t) = post_and_tags(&pool, "p", &["a", "b"]).await;
    let tags = PostTags::of(&post);
    tags.add(&pool, [t[0], t[1]]).await.unwrap();
    let before = logged(&pool).await.len();
    assert_eq!(tags.remove(&pool, [t[0], 999]).await.unwrap(), 1);
    assert_eq!(tags.remove(&pool, []).await.unwrap(), 0);
    assert_eq!(tags.clear(&pool).await.unwrap(), 1);
    assert_eq!(
        tags.clear(&pool).await.unwrap(),
        0,
        "clear on an empty relation still signals"
    );
    let passed = format!("{:?}", BTreeSet::from([t[0], 999]));
    let removed = format!("{:?}", BTreeSet::from([t[0]]));
    assert_eq!(
        logged(&pool).await[before..],
        [
            // pre_remove gets every key passed, as in Django; post_remove only the links this
            // call deleted (Django repeats every key).
            format!("pre_remove post p {passed} model=Tag"),
            format!("post_remove post p {removed} model=Tag"),
            "pre_clear post p None model=Tag".to_owned(),
            "post_clear post p None model=Tag".to_owned(),
            "pre_clear post p None model=Tag".to_owned(),
            "post_clear post p None model=Tag".to_owned(),
        ]
    );
}

async fn set_changes_only_the_difference<DB: TestBackend>(pool: Pool<DB>)
where
    Post: Persist<DB>,
    Tag: Persist<DB>,
    Log: Persist<DB>,
{
    let (post, t) = post_and_tags(&pool, "p", &["a", "b", "c"]).await;
    let tags = PostTags::of(&post);
    tags.add(&pool, [t[0]]).await.unwrap();
    let before = logged(&pool).await.len();
    tags.set(&pool, [t[0], t[1]]).await.unwrap();
    tags.set(&pool, [t[1], t[0]]).await.unwrap();
    tags.set(&pool, [t[2]]).await.unwrap();
    tags.set_clear(&pool, [t[0]]).await.unwrap();
    let set = |keys: &[i64]| format!("{:?}", keys.iter().copied().collect::<BTreeSet<_>>());
    assert_eq!(
        logged(&pool).await[before..],
        [
            format!("pre_add post p {} model=Tag", set(&[t[1]])),
            format!("post_add post p {} model=Tag", set(&[t[1]])),
            // the unchanged set sent nothing
            format!("pre_remove post p {} model=Tag", set(&[t[0], t[1]])),
            format!("post_remove post p {} model=Tag", set(&[t[0], t[1]])),
            format!("pre_add post p {} model=Tag", set(&[t[2]])),
            format!("post_add post p {} model=Tag", set(&[t[2]])),
            "pre_clear post p None model=Tag".to_owned(),
            "post_clear post p None model=Tag".to_owned(),
            format!("pre_add post p {} model=Tag", set(&[t[0]])),
            format!("post_add post p {} model=Tag", set(&[t[0]])),
        ]
    );
    assert_eq!(tags.keys(&pool).await.unwrap(), BTreeSet::from([t[0]]));
}

async fn the_reverse_side_gets_typed_instances_and_keys<DB: TestBackend>(pool: Pool<DB>)
where
    Post: Persist<DB>,
    Tag: Persist<DB>,
    Log: Persist<DB>,
{
    let (post, t) = post_and_tags(&pool, "p", &["rust"]).await;
    let mut other = Post {
        id: None,
        title: "q".into(),
    };
    other.save(&pool).await.unwrap();
    let tag = Tag::get(&pool, &t[0]).await.unwrap().unwrap();
    let posts = PostTags::of_target(&tag);
    posts
        .add(&pool, [post.id.unwrap(), other.id.unwrap()])
        .await
        .unwrap();
    let both = format!(
        "{:?}",
        BTreeSet::from([post.id.unwrap(), other.id.unwrap()])
    );
    assert_eq!(
        logged(&pool).await,
        [
            format!("pre_add tag rust {both} reverse=true model=Post"),
            format!("post_add tag rust {both} reverse=true model=Post")
        ]
    );
    let titles: Vec<String> = posts
        .all(&pool)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.title)
        .collect();
    assert_eq!(titles, ["p", "q"]);
    assert_eq!(PostTags::of(&other).all(&pool).await.unwrap(), [tag]);
}

async fn receivers_may_change_pk_set_and_so_what_is_written<DB: TestBackend>(pool: Pool<DB>)
where
    Post: Persist<DB>,
    Tag: Persist<DB>,
    Log: Persist<DB>,
{
    let (restricted, t) = post_and_tags(&pool, "restricted", &["a", "b"]).await;
    assert_eq!(
        PostTags::of(&restricted)
            .add(&pool, [t[0], t[1]])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        PostTags::of(&restricted).keys(&pool).await.unwrap(),
        BTreeSet::from([t[0]])
    );
    let entries = logged(&pool).await;
    assert_eq!(
        entries[1],
        format!(
            "post_add post restricted {:?} model=Tag",
            BTreeSet::from([t[0]])
        ),
        "post_add sees the changed set"
    );

    let mut sticky = Post {
        id: None,
        title: "sticky".into(),
    };
    sticky.save(&pool).await.unwrap();
    PostTags::of(&sticky)
        .add(&pool, [t[0], t[1]])
        .await
        .unwrap();
    assert_eq!(
        PostTags::of(&sticky).remove(&pool, [t[0]]).await.unwrap(),
        0
    );
    assert_eq!(
        PostTags::of(&sticky).keys(&pool).await.unwrap(),
        BTreeSet::from([t[0], t[1]])
    );
    assert_eq!(
        logged(&pool).await.last().unwrap(),
        "post_remove post sticky {} model=Tag"
    );
}

async fn a_failing_receiver_or_a_missing_key_undoes_the_operation<DB: TestBackend>(pool: Pool<DB>)
where
    Post: Persist<DB>,
    Tag: Persist<DB>,
    Log: Persist<DB>,
{
    let (boom, t) = post_and_tags(&pool, "boom", &["a"]).await;
    let error = PostTags::of(&boom).add(&pool, [t[0]]).await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("m2m_changed")
            && text.contains("post_tags_changed")
            && text.contains("PostTags"),
        "{text}"
    );
    assert!(
        PostTags::of(&boom).keys(&pool).await.unwrap().is_empty(),
        "the insert was undone"
    );
    assert!(
        logged(&pool).await.is_empty(),
        "and so was pre_add's log row"
    );

    let (post, _) = post_and_tags(&pool, "p", &[]).await;
    let error = PostTags::of(&post).add(&pool, [123_456]).await.unwrap_err();
    assert!(
        matches!(error, OrmError::Database { .. }),
        "a key that does not exist: {error}"
    );
    assert!(logged(&pool).await.is_empty());
    let unsaved = Post {
        id: None,
        title: "new".into(),
    };
    assert!(matches!(
        PostTags::of(&unsaved).add(&pool, [1]).await,
        Err(OrmError::NoPrimaryKey { .. })
    ));
}

// ---- symmetrical self-relation ------------------------------------------------------------

#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "people")]
struct Person {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

signals_orm::many_to_many! {
    /// Friendship goes both ways.
    struct Friends(Person => "person_id", Person => "friend_id") in "friends", symmetrical;
}

#[receiver(m2m_changed, sender = Friends)]
async fn friends_changed(ev: M2mChanged<'_, Friends>, tx: AnyTx<'_>) -> Result<(), OrmError> {
    let M2mSide::Forward { instance, pk_set } = ev.side else {
        return log(tx, "reverse friends?".into()).await;
    };
    log(
        tx,
        format!(
            "{} {} {}",
            ev.action,
            instance.name,
            show(pk_set.as_deref())
        ),
    )
    .await
}

async fn symmetrical_relations_signal_once_and_link_both_ways<DB: TestBackend>(pool: Pool<DB>)
where
    Person: Persist<DB>,
    Log: Persist<DB>,
{
    let mut people = Vec::new();
    for name in ["alice", "bob", "chuck"] {
        let mut p = Person {
            id: None,
            name: name.into(),
        };
        p.save(&pool).await.unwrap();
        people.push(p);
    }
    let [alice, bob, chuck] = [&people[0], &people[1], &people[2]];
    let ids = |ps: &[&Person]| ps.iter().map(|p| p.id.unwrap()).collect::<BTreeSet<_>>();
    Friends::of(alice)
        .add(&pool, ids(&[bob, chuck]))
        .await
        .unwrap();
    assert_eq!(
        Friends::of(bob).keys(&pool).await.unwrap(),
        ids(&[alice]),
        "the mirror row exists"
    );
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM friends").await, 4);
    assert_eq!(
        Friends::of(bob).remove(&pool, ids(&[alice])).await.unwrap(),
        1,
        "one link removed, though as two rows"
    );
    assert_eq!(
        DB::scalar(&pool, "SELECT COUNT(*) FROM friends").await,
        2,
        "both directions removed"
    );
    Friends::of(chuck).clear(&pool).await.unwrap();
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM friends").await, 0);
    let pair = format!("{:?}", ids(&[bob, chuck]));
    let one = format!("{:?}", ids(&[alice]));
    assert_eq!(
        logged(&pool).await,
        [
            format!("pre_add alice {pair}"),
            format!("post_add alice {pair}"),
            format!("pre_remove bob {one}"),
            format!("post_remove bob {one}"),
            "pre_clear chuck None".to_owned(),
            "post_clear chuck None".to_owned(),
        ],
        "signals once per operation, never for the mirror rows"
    );
}

async fn deleting_an_object_sends_no_m2m_changed<DB: TestBackend>(pool: Pool<DB>)
where
    Post: Persist<DB>,
    Tag: Persist<DB>,
    Log: Persist<DB>,
{
    let (mut post, t) = post_and_tags(&pool, "p", &["a"]).await;
    PostTags::of(&post).add(&pool, [t[0]]).await.unwrap();
    let before = logged(&pool).await.len();
    post.delete(&pool).await.unwrap();
    assert_eq!(
        DB::scalar(&pool, "SELECT COUNT(*) FROM post_tags").await,
        0,
        "the database cascaded"
    );
    assert_eq!(
        logged(&pool).await.len(),
        before,
        "no m2m_changed, as in Django"
    );
}

// ---- a custom through model ---------------------------------------------------------------

#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "clubs")]
struct Club {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

/// The link row itself is a model with an extra column (filled by the database's default).
#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "memberships")]
struct Membership {
    #[model(primary_key)]
    id: Option<i64>,
    person_id: i64,
    club_id: i64,
    role: String,
}

signals_orm::many_to_many! { impl Membership => (Person => person_id, Club => club_id); }

#[receiver(pre_delete, sender = Membership)]
async fn membership_leaving(ev: PreDelete<'_, Membership>, tx: AnyTx<'_>) -> Result<(), OrmError> {
    let origin = match ev.origin {
        signals_orm::Origin::Query(query) => format!("{query:?}"),
        _ => "not a query".to_owned(),
    };
    log(
        tx,
        format!("membership pre_delete {} ({origin})", ev.instance.role),
    )
    .await
}

#[receiver(post_delete, sender = Membership)]
async fn membership_left(ev: PostDelete<'_, Membership>, tx: AnyTx<'_>) -> Result<(), OrmError> {
    log(
        tx,
        format!(
            "membership post_delete person={} club={}",
            ev.instance.person_id, ev.instance.club_id
        ),
    )
    .await
}

#[receiver(m2m_changed, sender = Membership)]
async fn membership_changed(ev: M2mChanged<'_, Membership>, tx: AnyTx<'_>) -> Result<(), OrmError> {
    log(
        tx,
        format!("membership {} reverse={}", ev.action, ev.reverse()),
    )
    .await
}

#[receiver(post_save, sender = Membership)]
async fn membership_saved(ev: PostSave<'_, Membership>, tx: AnyTx<'_>) -> Result<(), OrmError> {
    log(tx, format!("membership saved as {}", ev.instance.role)).await
}

#[receiver(m2m_changed)]
async fn every_relation(ev: AnyM2mChanged<'_>, tx: AnyTx<'_>) -> Result<(), OrmError> {
    if ev.through == "Membership" {
        let keys = ev.pk_set.map(|k| serde_json::Value::Array(k).to_string());
        log(
            tx,
            format!(
                "any {} {} {} {keys:?}",
                ev.through,
                ev.action,
                ev.instance.meta().name
            ),
        )
        .await?;
    }
    Ok(())
}

async fn a_custom_through_model_is_the_sender_and_keeps_its_columns<DB: TestBackend>(pool: Pool<DB>)
where
    Person: Persist<DB>,
    Club: Persist<DB>,
    Membership: Persist<DB>,
    Log: Persist<DB>,
{
    let mut ann = Person {
        id: None,
        name: "ann".into(),
    };
    ann.save(&pool).await.unwrap();
    let mut chess = Club {
        id: None,
        name: "chess".into(),
    };
    chess.save(&pool).await.unwrap();
    let club = chess.id.unwrap();
    Membership::of(&ann).add(&pool, [club]).await.unwrap();
    assert_eq!(
        DB::strings(&pool, "SELECT role FROM memberships").await,
        ["member"]
    );
    assert_eq!(
        logged(&pool).await,
        [
            "membership pre_add reverse=false".to_owned(),
            format!("any Membership pre_add Person Some(\"[{club}]\")"),
            "membership post_add reverse=false".to_owned(),
            format!("any Membership post_add Person Some(\"[{club}]\")"),
        ],
        "link rows get no save signals, as Django's bulk_create"
    );
    // Saving the link model directly sends its save signals, and no m2m_changed, as in Django.
    let mut direct = Membership {
        id: None,
        person_id: ann.id.unwrap(),
        club_id: club,
        role: "captain".into(),
    };
    DB::exec(&pool, "DELETE FROM memberships").await;
    direct.save(&pool).await.unwrap();
    assert_eq!(
        logged(&pool).await.last().unwrap(),
        "membership saved as captain"
    );
    assert_eq!(
        Membership::of_target(&chess).all(&pool).await.unwrap(),
        [ann.clone()]
    );

    // `remove` and `clear` delete link rows through the link model's filtered delete, so its
    // pre_delete and post_delete receivers hear each row, as Django's do for a custom through.
    let mut go = Club {
        id: None,
        name: "go".into(),
    };
    go.save(&pool).await.unwrap();
    let (ann_id, go_id) = (ann.id.unwrap(), go.id.unwrap());
    Membership::of(&ann).add(&pool, [go_id]).await.unwrap();
    let before = logged(&pool).await.len();
    assert_eq!(
        Membership::of(&ann)
            .remove(&pool, [club, 999])
            .await
            .unwrap(),
        1,
        "one link removed, the unknown key ignored"
    );
    assert_eq!(
        logged(&pool).await[before..],
        [
            "membership pre_remove reverse=false".to_owned(),
            format!("any Membership pre_remove Person Some(\"[{club},999]\")"),
            "membership pre_delete captain (Membership WHERE (person_id = ? AND club_id = ?))"
                .to_owned(),
            format!("membership post_delete person={ann_id} club={club}"),
            "membership post_remove reverse=false".to_owned(),
            format!("any Membership post_remove Person Some(\"[{club}]\")"),
        ]
    );
    let before = logged(&pool).await.len();
    assert_eq!(Membership::of_target(&go).clear(&pool).await.unwrap(), 1);
    assert_eq!(
        logged(&pool).await[before..],
        [
            "membership pre_clear reverse=true".to_owned(),
            "any Membership pre_clear Club None".to_owned(),
            "membership pre_delete member (Membership WHERE club_id = ?)".to_owned(),
            format!("membership post_delete person={ann_id} club={go_id}"),
            "membership post_clear reverse=true".to_owned(),
            "any Membership post_clear Club None".to_owned(),
        ]
    );
    assert_eq!(
        DB::scalar(&pool, "SELECT COUNT(*) FROM memberships").await,
        0
    );
}

// ---- identifiers with quotes ---------------------------------------------------------------

/// A model whose table and column names contain `"`: every statement quotes them correctly.
#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "odd\"notes")]
struct OddNote {
    #[model(primary_key)]
    id: Option<i64>,
    #[model(column = "bo\"dy")]
    body: String,
}

signals_orm::many_to_many! {
    /// A link table and a column with `"` in their names.
    struct OddLinks(OddNote => "no\"te", Tag => "tag_id") in "odd\"links";
}

async fn quotes_in_table_and_column_names_are_escaped<DB: TestBackend>(pool: Pool<DB>)
where
    OddNote: Persist<DB>,
    Post: Persist<DB>,
    Tag: Persist<DB>,
{
    let mut note = OddNote {
        id: None,
        body: "first".into(),
    };
    note.save(&pool).await.unwrap();
    note.body = "second".into();
    note.save(&pool).await.unwrap();
    note.save_fields(&["body"], &pool).await.unwrap();
    let id = note.id.unwrap();
    assert_eq!(OddNote::get(&pool, &id).await.unwrap(), Some(note.clone()));
    let (_, tags) = post_and_tags(&pool, "p", &["a", "b"]).await;
    let related = OddLinks::of(&note);
    assert_eq!(related.add(&pool, tags.clone()).await.unwrap(), 2);
    assert_eq!(
        related.keys(&pool).await.unwrap(),
        tags.iter().copied().collect()
    );
    assert_eq!(related.all(&pool).await.unwrap().len(), 2);
    assert_eq!(related.remove(&pool, [tags[0]]).await.unwrap(), 1);
    assert_eq!(related.clear(&pool).await.unwrap(), 1);
    assert_eq!(note.delete(&pool).await.unwrap().total(), 1);
    assert_eq!(
        DB::scalar(&pool, r#"SELECT COUNT(*) FROM "odd""notes""#).await,
        0
    );
}

// ---- concurrency ---------------------------------------------------------------------------

/// Tasks racing on one object in each round, and rounds per scenario (issue 10, item 3).
const TASKS: usize = 8;
const ROUNDS: usize = 20;

/// What `m2m_changed` receivers heard for one instance of a race.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Heard {
    /// Keys in `pre_add` (the candidates; may exceed what is inserted).
    candidates: usize,
    /// Keys in `post_add`.
    added: usize,
    /// Keys in `post_remove`.
    removed: usize,
}

/// Keyed by instance name, not key: scenarios run in parallel on databases whose keys overlap,
/// and each race names its instance uniquely.
static HEARD: Mutex<BTreeMap<String, Heard>> = Mutex::new(BTreeMap::new());
static RACES: AtomicUsize = AtomicUsize::new(0);

fn race_name(what: &str) -> String {
    format!("race {what} {}", RACES.fetch_add(1, Ordering::SeqCst))
}

fn hear(name: &str, action: M2mAction, keys: usize) {
    if !name.starts_with("race ") {
        return;
    }
    let mut heard = HEARD.lock().unwrap();
    let heard = heard.entry(name.to_owned()).or_default();
    match action {
        M2mAction::PreAdd => heard.candidates += keys,
        M2mAction::PostAdd => heard.added += keys,
        M2mAction::PostRemove => heard.removed += keys,
        _ => {}
    }
}

fn heard(name: &str) -> Heard {
    HEARD.lock().unwrap().get(name).copied().unwrap_or_default()
}

/// Counts keys as a tag-count receiver would (`examples/src/usecases/tag_counts.rs`).
#[receiver(m2m_changed, sender = PostTags)]
fn count_post_tags(ev: M2mChanged<'_, PostTags>) {
    if let M2mSide::Forward {
        instance,
        pk_set: Some(keys),
    } = ev.side
    {
        hear(&instance.title, ev.action, keys.len());
    }
}

#[receiver(m2m_changed, sender = Friends)]
fn count_friends(ev: M2mChanged<'_, Friends>) {
    if let M2mSide::Forward {
        instance,
        pk_set: Some(keys),
    } = ev.side
    {
        hear(&instance.name, ev.action, keys.len());
    }
}

/// Runs `op` in `TASKS` tasks at once (each takes its own pooled connection) and collects what
/// each returned.
async fn race<R, Fut>(op: impl Fn() -> Fut) -> Vec<R>
where
    R: Send + 'static,
    Fut: Future<Output = R> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        tasks.spawn(op());
    }
    tasks.join_all().await
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap()
}

async fn ten_tags<DB: TestBackend>(pool: &Pool<DB>, title: &str) -> (Post, Vec<i64>)
where
    Post: Persist<DB>,
    Tag: Persist<DB>,
{
    let names: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    post_and_tags(pool, title, &names).await
}

/// `TASKS` tasks add the same ten keys to one post, then remove them, `ROUNDS` times: every
/// link is reported by exactly one `add` and one `post_add`, and by one `remove` and one
/// `post_remove`, however the tasks interleave.
async fn concurrent_adds_and_removes_report_exactly_the_rows_written<DB: TestBackend>(
    pool: Pool<DB>,
) where
    Post: Persist<DB>,
    Tag: Persist<DB>,
    Log: Persist<DB>,
{
    let title = race_name("add");
    let (post, keys) = ten_tags(&pool, &title).await;
    let (mut added, mut inserted, mut removed) = (0, 0, 0);
    for _ in 0..ROUNDS {
        let add_counts = race(|| {
            let (pool, post, keys) = (pool.clone(), post.clone(), keys.clone());
            async move { PostTags::of(&post).add(&pool, keys).await.unwrap() }
        })
        .await;
        added += count(add_counts.iter().sum());
        let rows = DB::scalar(&pool, "SELECT COUNT(*) FROM post_tags").await;
        inserted += rows;
        let remove_counts = race(|| {
            let (pool, post, keys) = (pool.clone(), post.clone(), keys.clone());
            async move { PostTags::of(&post).remove(&pool, keys).await.unwrap() }
        })
        .await;
        removed += i64::try_from(remove_counts.iter().sum::<u64>()).unwrap();
        assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM post_tags").await, 0);
    }
    let heard = heard(&title);
    assert_eq!(
        inserted,
        count(ROUNDS * keys.len()),
        "every round links all keys"
    );
    assert_eq!(
        [added, count(heard.added), removed, count(heard.removed)],
        [inserted; 4],
        "add's results, post_add's keys, remove's results and post_remove's keys each equal the \
         {inserted} link rows written (pre_add heard {} candidates)",
        heard.candidates
    );
}

/// `TASKS` tasks set the same ten keys on one post, then set none, `ROUNDS` times:
/// `post_add` and `post_remove` report each link once.
async fn concurrent_sets_report_exactly_the_rows_written<DB: TestBackend>(pool: Pool<DB>)
where
    Post: Persist<DB>,
    Tag: Persist<DB>,
    Log: Persist<DB>,
{
    let title = race_name("set");
    let (post, keys) = ten_tags(&pool, &title).await;
    let mut inserted = 0;
    for _ in 0..ROUNDS {
        race(|| {
            let (pool, post, keys) = (pool.clone(), post.clone(), keys.clone());
            async move { PostTags::of(&post).set(&pool, keys).await.unwrap() }
        })
        .await;
        inserted += DB::scalar(&pool, "SELECT COUNT(*) FROM post_tags").await;
        race(|| {
            let (pool, post) = (pool.clone(), post.clone());
            async move { PostTags::of(&post).set(&pool, []).await.unwrap() }
        })
        .await;
        assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM post_tags").await, 0);
    }
    let heard = heard(&title);
    assert_eq!(inserted, count(ROUNDS * keys.len()));
    assert_eq!(
        [count(heard.added), count(heard.removed)],
        [inserted; 2],
        "post_add's and post_remove's keys each equal the {inserted} link rows written (pre_add \
         heard {} candidates)",
        heard.candidates
    );
}

/// The same race on a symmetrical relation: each link reported once, both of its rows written
/// and removed together.
async fn concurrent_symmetrical_adds_and_removes_keep_both_directions<DB: TestBackend>(
    pool: Pool<DB>,
) where
    Person: Persist<DB>,
    Log: Persist<DB>,
{
    let name = race_name("friends");
    let mut people = Vec::new();
    for n in 0..11 {
        let mut person = Person {
            id: None,
            name: if n == 0 {
                name.clone()
            } else {
                format!("f{n}")
            },
        };
        person.save(&pool).await.unwrap();
        people.push(person);
    }
    let me = people[0].clone();
    let friends: Vec<i64> = people[1..].iter().map(|p| p.id.unwrap()).collect();
    let (mut added, mut pairs, mut removed) = (0, 0, 0);
    for _ in 0..ROUNDS {
        let add_counts = race(|| {
            let (pool, me, friends) = (pool.clone(), me.clone(), friends.clone());
            async move { Friends::of(&me).add(&pool, friends).await.unwrap() }
        })
        .await;
        added += count(add_counts.iter().sum());
        let rows = DB::scalar(&pool, "SELECT COUNT(*) FROM friends").await;
        let mirrored = DB::scalar(
            &pool,
            "SELECT COUNT(*) FROM friends f WHERE EXISTS \
             (SELECT 1 FROM friends m WHERE m.person_id = f.friend_id AND m.friend_id = f.person_id)",
        )
        .await;
        assert_eq!(mirrored, rows, "every link has its mirror");
        pairs += rows / 2;
        let remove_counts = race(|| {
            let (pool, me, friends) = (pool.clone(), me.clone(), friends.clone());
            async move { Friends::of(&me).remove(&pool, friends).await.unwrap() }
        })
        .await;
        removed += i64::try_from(remove_counts.iter().sum::<u64>()).unwrap();
        assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM friends").await, 0);
    }
    let heard = heard(&name);
    assert_eq!(pairs, count(ROUNDS * friends.len()));
    assert_eq!(
        [added, count(heard.added), removed, count(heard.removed)],
        [pairs; 4],
        "add's results, post_add's keys, remove's results and post_remove's keys each equal the \
         {pairs} links written (pre_add heard {} candidates)",
        heard.candidates
    );
}
