//! Receivers without a sender get every model through `dyn AnyModel`: one audit log for all
//! models, an `on_commit` receiver with a `ModelSnapshot`, and muting of model signals.

mod support;

use std::sync::Mutex;

use signals_orm::dispatch::Phase;
use signals_orm::model_signals::PostSaveSignal;
use signals_orm::{
    AnyModel, AnyTx, Committed, Model, ModelExt, ModelSnapshot, Mute, OrmError, Persist,
    PostDelete, PostSave, receiver,
};
use sqlx::Pool;
use support::TestBackend;

const SCHEMA: &str = "
CREATE TABLE audit (id {serial}, action TEXT NOT NULL, model TEXT NOT NULL, tbl TEXT NOT NULL, pk TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE books (id {serial}, title TEXT NOT NULL, pages BIGINT NOT NULL);
CREATE TABLE authors (name TEXT PRIMARY KEY, born BIGINT);
";

every_backend!(
    one_receiver_audits_every_model,
    muted_saves_send_nothing,
    a_failed_callback_of_every_model_names_the_model
);

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "audit")]
struct Audit {
    #[model(primary_key)]
    id: Option<i64>,
    action: String,
    model: String,
    tbl: String,
    pk: String,
    data: String,
}

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "books")]
struct Book {
    #[model(primary_key)]
    id: Option<i64>,
    title: String,
    pages: i64,
}

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "authors")]
struct Author {
    #[model(primary_key)]
    name: String,
    born: Option<i64>,
}

async fn record(action: &str, instance: &dyn AnyModel, tx: AnyTx<'_>) -> Result<(), OrmError> {
    let meta = instance.meta();
    if meta.table == "audit" {
        return Ok(()); // the audit rows themselves are models too
    }
    let data = serde_json::Value::Object(
        instance
            .field_values()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    );
    let mut row = Audit {
        id: None,
        action: action.to_owned(),
        model: meta.name.to_owned(),
        tbl: meta.table.to_owned(),
        pk: instance.pk_value().to_string(),
        data: data.to_string(),
    };
    match tx {
        AnyTx::Sqlite(tx) => row.save(tx).await?,
        AnyTx::Postgres(tx) => row.save(tx).await?,
    };
    Ok(())
}

#[receiver(post_save)]
async fn audit_saves(ev: PostSave<'_, dyn AnyModel>, tx: AnyTx<'_>) -> Result<(), OrmError> {
    record(
        if ev.created { "created" } else { "updated" },
        ev.instance,
        tx,
    )
    .await
}

#[receiver(post_delete)]
async fn audit_deletes(ev: PostDelete<'_, dyn AnyModel>, tx: AnyTx<'_>) -> Result<(), OrmError> {
    record("deleted", ev.instance, tx).await
}

static COMMITTED: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[receiver(post_save, on_commit)]
fn after_commit(ev: Committed<ModelSnapshot>) -> Result<(), String> {
    if ev.instance.values.iter().any(|(_, v)| v == "explode") {
        return Err(format!("{} refused after commit", ev.model));
    }
    if ev.instance.table != "audit" {
        COMMITTED.lock().unwrap().push(format!(
            "{} {} {}",
            ev.instance.model, ev.instance.pk, ev.using
        ));
    }
    Ok(())
}

async fn one_receiver_audits_every_model<DB: TestBackend>(pool: Pool<DB>)
where
    Book: Persist<DB>,
    Author: Persist<DB>,
    Audit: Persist<DB>,
{
    let mut book = Book {
        id: None,
        title: "Dune".into(),
        pages: 412,
    };
    book.save(&pool).await.unwrap();
    let id = book.id.unwrap();
    let mut author = Author {
        name: "Herbert".into(),
        born: Some(1920),
    };
    author.save(&pool).await.unwrap();
    author.born = None;
    author.save(&pool).await.unwrap();
    book.delete(&pool).await.unwrap();
    let rows = DB::strings(&pool, "SELECT action || ' ' || model || ' ' || tbl || ' ' || pk || ' ' || data FROM audit ORDER BY id").await;
    assert_eq!(
        rows,
        [
            format!(r#"created Book books {id} {{"id":{id},"pages":412,"title":"Dune"}}"#),
            r#"created Author authors "Herbert" {"born":1920,"name":"Herbert"}"#.to_owned(),
            r#"updated Author authors "Herbert" {"born":null,"name":"Herbert"}"#.to_owned(),
            format!(r#"deleted Book books {id} {{"id":{id},"pages":412,"title":"Dune"}}"#),
        ]
    );
    let using = <DB as signals_orm::Backend>::NAME;
    let committed = COMMITTED.lock().unwrap().clone();
    assert!(
        committed.contains(&format!("Book {id} {using}")),
        "{committed:?}"
    );
}

async fn muted_saves_send_nothing<DB: TestBackend>(pool: Pool<DB>)
where
    Book: Persist<DB>,
    Audit: Persist<DB>,
{
    Mute::new()
        .signal::<PostSaveSignal>()
        .scope(async {
            Book {
                id: None,
                title: "Quiet".into(),
                pages: 1,
            }
            .save(&pool)
            .await
            .unwrap();
        })
        .await;
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM books").await, 1);
    assert_eq!(
        DB::scalar(&pool, "SELECT COUNT(*) FROM audit").await,
        0,
        "muted: no audit row"
    );
    Book {
        id: None,
        title: "Loud".into(),
        pages: 2,
    }
    .save(&pool)
    .await
    .unwrap();
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM audit").await, 1);
}

async fn a_failed_callback_of_every_model_names_the_model<DB: TestBackend>(pool: Pool<DB>)
where
    Book: Persist<DB>,
    Audit: Persist<DB>,
{
    let mut tx = signals_orm::Tx::begin(&pool).await.unwrap();
    Book {
        id: None,
        title: "explode".into(),
        pages: 1,
    }
    .save(&mut tx)
    .await
    .unwrap();
    let report = tx.commit().await.unwrap();
    let failure = report
        .failures
        .iter()
        .map(|f| format!("{f:#}"))
        .find(|f| f.contains("refused after commit"))
        .unwrap();
    assert!(
        failure.contains("orm_audit::after_commit") && failure.contains("(sender `Book`)"),
        "{failure}"
    );
    assert_eq!(
        DB::scalar(&pool, "SELECT COUNT(*) FROM books").await,
        1,
        "the commit stands"
    );
}

#[test]
fn introspection_shows_model_signals_and_phases() {
    let table = signals_orm::receivers();
    let after = table
        .iter()
        .find(|r| r.name == "orm_audit::after_commit")
        .unwrap();
    assert_eq!(
        (after.signal, after.sender, after.phase),
        ("post_save", None, Phase::OnCommit)
    );
    let audit = table
        .iter()
        .find(|r| r.name == "orm_audit::audit_saves")
        .unwrap();
    assert_eq!((audit.phase, audit.is_async), (Phase::Immediate, true));
    assert!(
        table
            .to_string()
            .lines()
            .any(|l| l.contains("after_commit") && l.contains("on_commit"))
    );
}
