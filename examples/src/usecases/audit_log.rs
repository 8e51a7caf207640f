//! Use case 6: one audit log for every model (receivers without a sender, getting
//! `dyn AnyModel`): who did what, when, written in the same transaction as the change.

use signals_orm::{AnyModel, AnyTx, ModelExt as _, PostDelete, PostSave, receiver};

use crate::models::{Post, now};
use crate::run::Run;
use crate::usecases::register;
use crate::{Error, on_db, on_tx};

tokio::task_local! {
    static ACTOR: String;
}

/// Runs `fut` with `actor` as the "who" of its audit rows (`"system"` outside).
pub async fn acting_as<F: Future>(actor: &str, fut: F) -> F::Output {
    ACTOR.scope(actor.to_owned(), fut).await
}

fn actor() -> String {
    ACTOR
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "system".to_owned())
}

const INSERT: &str = "INSERT INTO audit_log (actor, action, model, object_pk, data, at) VALUES ($1, $2, $3, $4, $5, $6)";

async fn record(action: &str, instance: &dyn AnyModel, tx: AnyTx<'_>) -> Result<(), sqlx::Error> {
    let meta = instance.meta();
    let data = serde_json::Value::Object(
        instance
            .field_values()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    );
    // A plain INSERT: audit rows are not domain changes and send no signals of their own.
    let (pk, data, actor) = (instance.pk_value().to_string(), data.to_string(), actor());
    on_tx!(tx, |t| {
        sqlx::query(INSERT)
            .bind(&actor)
            .bind(action)
            .bind(meta.name)
            .bind(&pk)
            .bind(&data)
            .bind(now())
            .execute(t.conn())
            .await
            .map(drop)
    })?;
    Ok(())
}

#[receiver(post_save)]
async fn audit_save(ev: PostSave<'_, dyn AnyModel>, tx: AnyTx<'_>) -> Result<(), sqlx::Error> {
    record(
        if ev.created { "created" } else { "updated" },
        ev.instance,
        tx,
    )
    .await
}

#[receiver(post_delete)]
async fn audit_delete(ev: PostDelete<'_, dyn AnyModel>, tx: AnyTx<'_>) -> Result<(), sqlx::Error> {
    record("deleted", ev.instance, tx).await
}

/// Registers a customer and changes their email, writes a post and deletes it; returns the
/// audit log as `actor action model` rows.
///
/// # Errors
///
/// A failed write.
pub async fn run(run: &Run) -> Result<Vec<String>, Error> {
    let mut customer = register(&run.db, "niklaus wirth", "nw@example.com").await?;
    customer.email = "wirth@example.com".into();
    on_db!(&run.db, |pool| customer.save(pool).await)?;
    let mut post = Post {
        id: None,
        title: "Algorithms + Data Structures".into(),
    };
    on_db!(&run.db, |pool| post.save(pool).await)?;
    on_db!(&run.db, |pool| post.delete(pool).await)?;
    Ok(run
        .db
        .texts("SELECT actor || ' ' || action || ' ' || model FROM audit_log ORDER BY id")
        .await?)
}
