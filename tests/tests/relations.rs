//! Foreign keys and the delete collector on every backend: a three-level cascade in Django's
//! exact signal order, `protect`, `restrict` (with Django's rule that a restricted row also
//! reached through a cascade is deleted), `set_null`, `set_default`, `do_nothing` against the
//! database's own constraint, a failing receiver in the middle of a cascade, self-referencing
//! trees, and 10,000 dependents collected with one query per relation and level.
//!
//! Relations are linked at build time and every model's relations apply to every delete of its
//! parent, so each scenario family has models (and tables) of its own. Receivers write what
//! they hear into the `log` table through the delete's own transaction, so a test reads exactly
//! what was committed, and a rolled-back delete leaves no log.

mod support;

use std::fmt::Write as _;

use signals_orm::model_signals::{PostDeleteSignal, PreDeleteSignal};
use signals_orm::{
    AnyTx, BoxError, Model, ModelExt, Mute, OrmError, PostDelete, PreDelete, receiver,
};
use sqlx::Pool;
use support::{TestBackend, log, logged, statements};

const SCHEMA: &str = "
CREATE TABLE log (id {serial}, entry TEXT NOT NULL);
CREATE TABLE a_customers (id {serial}, name TEXT NOT NULL);
CREATE TABLE a_orders (id {serial}, customer_id BIGINT NOT NULL REFERENCES a_customers (id), label TEXT NOT NULL);
CREATE TABLE a_lines (id {serial}, order_id BIGINT NOT NULL REFERENCES a_orders (id), label TEXT NOT NULL);
CREATE TABLE p_customers (id {serial}, name TEXT NOT NULL);
CREATE TABLE p_invoices (id {serial}, customer_id BIGINT NOT NULL REFERENCES p_customers (id));
CREATE TABLE p_orders (id {serial}, customer_id BIGINT NOT NULL REFERENCES p_customers (id));
CREATE TABLE r_authors (id {serial}, name TEXT NOT NULL);
CREATE TABLE r_books (id {serial}, author_id BIGINT NOT NULL REFERENCES r_authors (id));
CREATE TABLE r_reviews (id {serial}, book_id BIGINT NOT NULL REFERENCES r_books (id), author_id BIGINT NOT NULL REFERENCES r_authors (id));
CREATE TABLE n_people (id {serial}, name TEXT NOT NULL, referred_by BIGINT REFERENCES n_people (id));
CREATE TABLE n_tickets (id {serial}, owner_id BIGINT NOT NULL DEFAULT 1 REFERENCES n_people (id));
CREATE TABLE d_parents (id {serial});
CREATE TABLE d_children (id {serial}, parent_id BIGINT NOT NULL REFERENCES d_parents (id));
CREATE TABLE t_categories (id {serial}, name TEXT NOT NULL, parent_id BIGINT REFERENCES t_categories (id));
CREATE TABLE b_parents (id {serial}, name TEXT NOT NULL);
CREATE TABLE b_children (id {serial}, parent_id BIGINT NOT NULL REFERENCES b_parents (id));
CREATE TABLE b_grandchildren (id {serial}, child_id BIGINT NOT NULL REFERENCES b_children (id));
";

every_backend!(
    a_three_level_cascade_sends_djangos_order,
    a_filtered_delete_cascades_with_the_query_as_origin,
    forward_and_reverse_access,
    a_protected_row_refuses_the_delete_before_any_signal,
    a_restricted_row_refuses_unless_a_cascade_also_reaches_it,
    set_null_and_set_default_update_without_save_signals,
    do_nothing_leaves_the_database_constraint_to_refuse,
    a_failing_receiver_in_the_middle_undoes_the_whole_cascade,
    a_self_referencing_tree_is_collected_without_looping,
    ten_thousand_dependents_take_one_query_per_relation_and_level,
);

// ---- family A: customer <- order <- line, every signal heard --------------------------------

#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "a_customers")]
struct ACustomer {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "a_orders")]
struct AOrder {
    #[model(primary_key)]
    id: Option<i64>,
    #[model(foreign_key = ACustomer, on_delete = cascade)]
    customer_id: i64,
    label: String,
}

#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "a_lines")]
struct ALine {
    #[model(primary_key)]
    id: Option<i64>,
    #[model(foreign_key = AOrder, on_delete = cascade)]
    order_id: i64,
    label: String,
}

/// Logs `signal model key origin`, and fails on a row labelled `boom` (a receiver that refuses
/// in the middle of a cascade).
async fn hear(
    signal: &str,
    model: &str,
    key: Option<i64>,
    label: &str,
    origin: &signals_orm::Origin<'_>,
    tx: AnyTx<'_>,
) -> Result<(), BoxError> {
    let origin = match origin.instance() {
        Some(instance) => format!("{}#{}", instance.meta().name, instance.pk_value()),
        None => format!("query of {}", origin.meta().name),
    };
    log(
        tx,
        format!("{signal} {model} {} from {origin}", key.unwrap_or(-1)),
    )
    .await?;
    if label == "boom" && signal == "post_delete" {
        return Err(format!("{model} {} refuses", key.unwrap_or(-1)).into());
    }
    Ok(())
}

#[receiver(pre_delete, sender = ACustomer)]
async fn a_customer_pre(ev: PreDelete<'_, ACustomer>, tx: AnyTx<'_>) -> Result<(), BoxError> {
    hear(
        "pre_delete",
        "ACustomer",
        ev.instance.id,
        &ev.instance.name,
        &ev.origin,
        tx,
    )
    .await
}
#[receiver(post_delete, sender = ACustomer)]
async fn a_customer_post(ev: PostDelete<'_, ACustomer>, tx: AnyTx<'_>) -> Result<(), BoxError> {
    hear(
        "post_delete",
        "ACustomer",
        ev.instance.id,
        &ev.instance.name,
        &ev.origin,
        tx,
    )
    .await
}
#[receiver(pre_delete, sender = AOrder)]
async fn a_order_pre(ev: PreDelete<'_, AOrder>, tx: AnyTx<'_>) -> Result<(), BoxError> {
    hear(
        "pre_delete",
        "AOrder",
        ev.instance.id,
        &ev.instance.label,
        &ev.origin,
        tx,
    )
    .await
}
#[receiver(post_delete, sender = AOrder)]
async fn a_order_post(ev: PostDelete<'_, AOrder>, tx: AnyTx<'_>) -> Result<(), BoxError> {
    hear(
        "post_delete",
        "AOrder",
        ev.instance.id,
        &ev.instance.label,
        &ev.origin,
        tx,
    )
    .await
}
#[receiver(pre_delete, sender = ALine)]
async fn a_line_pre(ev: PreDelete<'_, ALine>, tx: AnyTx<'_>) -> Result<(), BoxError> {
    hear(
        "pre_delete",
        "ALine",
        ev.instance.id,
        &ev.instance.label,
        &ev.origin,
        tx,
    )
    .await
}
#[receiver(post_delete, sender = ALine)]
async fn a_line_post(ev: PostDelete<'_, ALine>, tx: AnyTx<'_>) -> Result<(), BoxError> {
    hear(
        "post_delete",
        "ALine",
        ev.instance.id,
        &ev.instance.label,
        &ev.origin,
        tx,
    )
    .await
}

/// Two customers; the first has orders 1 and 2 with lines 1, 2 (order 1) and 3 (order 2),
/// the second has order 3 with line 4.
async fn family_a<DB: TestBackend>(pool: &Pool<DB>) -> (ACustomer, ACustomer)
where
    ACustomer: signals_orm::Persist<DB>,
    AOrder: signals_orm::Persist<DB>,
    ALine: signals_orm::Persist<DB>,
{
    let mut ada = ACustomer {
        id: None,
        name: "Ada".into(),
    };
    let mut bob = ACustomer {
        id: None,
        name: "Bob".into(),
    };
    ada.save(pool).await.unwrap();
    bob.save(pool).await.unwrap();
    for (customer, label) in [(ada.id, "o1"), (ada.id, "o2"), (bob.id, "o3")] {
        let mut order = AOrder {
            id: None,
            customer_id: customer.unwrap(),
            label: label.into(),
        };
        order.save(pool).await.unwrap();
    }
    for (order, label) in [(1, "l1"), (1, "l2"), (2, "l3"), (3, "l4")] {
        let mut line = ALine {
            id: None,
            order_id: order,
            label: label.into(),
        };
        line.save(pool).await.unwrap();
    }
    (ada, bob)
}

async fn a_three_level_cascade_sends_djangos_order<DB: TestBackend>(pool: Pool<DB>)
where
    ACustomer: signals_orm::Persist<DB>,
    AOrder: signals_orm::Persist<DB>,
    ALine: signals_orm::Persist<DB>,
{
    let (mut ada, _bob) = family_a(&pool).await;
    let deleted = ada.delete(&pool).await.unwrap();
    let from = "from ACustomer#1";
    // Django: pre_delete for every row, children's models first, ascending key; then per model
    // its DELETE and post_delete by descending key.
    assert_eq!(
        logged(&pool).await,
        [
            format!("pre_delete ALine 1 {from}"),
            format!("pre_delete ALine 2 {from}"),
            format!("pre_delete ALine 3 {from}"),
            format!("pre_delete AOrder 1 {from}"),
            format!("pre_delete AOrder 2 {from}"),
            format!("pre_delete ACustomer 1 {from}"),
            format!("post_delete ALine 3 {from}"),
            format!("post_delete ALine 2 {from}"),
            format!("post_delete ALine 1 {from}"),
            format!("post_delete AOrder 2 {from}"),
            format!("post_delete AOrder 1 {from}"),
            format!("post_delete ACustomer 1 {from}"),
        ]
    );
    assert_eq!(deleted.total(), 6);
    assert_eq!(
        (
            deleted.of::<ACustomer>(),
            deleted.of::<AOrder>(),
            deleted.of::<ALine>()
        ),
        (1, 2, 3)
    );
    assert_eq!(
        ada.id, None,
        "a generated key is unset, as Django sets pk = None"
    );
    // Bob's rows are untouched.
    assert_eq!(
        DB::scalar(&pool, "SELECT COUNT(*) FROM a_customers").await,
        1
    );
    assert_eq!(
        DB::integers(&pool, "SELECT id FROM a_orders".into()).await,
        [3]
    );
    assert_eq!(
        DB::integers(&pool, "SELECT id FROM a_lines".into()).await,
        [4]
    );
}

async fn a_filtered_delete_cascades_with_the_query_as_origin<DB: TestBackend>(pool: Pool<DB>)
where
    ACustomer: signals_orm::Persist<DB>,
    AOrder: signals_orm::Persist<DB>,
    ALine: signals_orm::Persist<DB>,
{
    family_a(&pool).await;
    let c = AOrder::columns();
    let deleted = AOrder::filter(c.label.ne("o2"))
        .delete(&pool)
        .await
        .unwrap();
    let from = "from query of AOrder";
    assert_eq!(
        logged(&pool).await,
        [
            format!("pre_delete ALine 1 {from}"),
            format!("pre_delete ALine 2 {from}"),
            format!("pre_delete ALine 4 {from}"),
            format!("pre_delete AOrder 1 {from}"),
            format!("pre_delete AOrder 3 {from}"),
            format!("post_delete ALine 4 {from}"),
            format!("post_delete ALine 2 {from}"),
            format!("post_delete ALine 1 {from}"),
            format!("post_delete AOrder 3 {from}"),
            format!("post_delete AOrder 1 {from}"),
        ]
    );
    assert_eq!((deleted.of::<AOrder>(), deleted.of::<ALine>()), (2, 3));
    assert_eq!(
        DB::integers(&pool, "SELECT id FROM a_lines".into()).await,
        [3]
    );
    // An empty selection deletes and sends nothing (Django's `(0, {})`).
    let none = AOrder::filter(c.label.eq("none"))
        .delete(&pool)
        .await
        .unwrap();
    assert_eq!(none.total(), 0);
    assert_eq!(none.iter().count(), 0);
}

async fn forward_and_reverse_access<DB: TestBackend>(pool: Pool<DB>)
where
    ACustomer: signals_orm::Persist<DB>,
    AOrder: signals_orm::Persist<DB>,
    ALine: signals_orm::Persist<DB>,
{
    let (ada, bob) = family_a(&pool).await;
    let order = AOrder::get(&pool, &3).await.unwrap().unwrap();
    assert_eq!(order.customer(&pool).await.unwrap(), bob);
    let labels: Vec<String> = AOrder::of(&ada)
        .order_by(AOrder::columns().label.desc())
        .all(&pool)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.label)
        .collect();
    assert_eq!(labels, ["o2", "o1"]);
    assert_eq!(AOrder::of(&bob).count(&pool).await.unwrap(), 1);
    assert_eq!(ALine::of(&order).count(&pool).await.unwrap(), 1);
    // The filtered operations work on the children.
    let changed = AOrder::of(&ada)
        .update(&pool, [AOrder::columns().label.set("changed")])
        .await
        .unwrap();
    assert_eq!(changed, 2);
    // A parent without a key has no children; a key pointing nowhere is an error.
    let unsaved = ACustomer {
        id: None,
        name: "new".into(),
    };
    assert_eq!(AOrder::of(&unsaved).count(&pool).await.unwrap(), 0);
    let dangling = AOrder {
        id: None,
        customer_id: 999,
        label: "x".into(),
    };
    let error = dangling.customer(&pool).await.unwrap_err();
    assert!(
        matches!(
            error,
            OrmError::DoesNotExist {
                model: "ACustomer",
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(error.to_string(), "no `ACustomer` row has the key 999");
}

// ---- family P: protect -----------------------------------------------------------------------

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "p_customers")]
struct PCustomer {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "p_invoices")]
struct PInvoice {
    #[model(primary_key)]
    id: Option<i64>,
    #[model(foreign_key = PCustomer, on_delete = protect)]
    customer_id: i64,
}

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "p_orders")]
struct POrder {
    #[model(primary_key)]
    id: Option<i64>,
    #[model(foreign_key = PCustomer, on_delete = cascade)]
    customer_id: i64,
}

#[receiver(pre_delete, sender = POrder)]
async fn p_order_pre(ev: PreDelete<'_, POrder>, tx: AnyTx<'_>) -> Result<(), BoxError> {
    log(tx, format!("pre_delete POrder {:?}", ev.instance.id)).await?;
    Ok(())
}

async fn a_protected_row_refuses_the_delete_before_any_signal<DB: TestBackend>(pool: Pool<DB>)
where
    PCustomer: signals_orm::Persist<DB>,
    PInvoice: signals_orm::Persist<DB>,
    POrder: signals_orm::Persist<DB>,
{
    let mut ada = PCustomer {
        id: None,
        name: "Ada".into(),
    };
    ada.save(&pool).await.unwrap();
    let mut bob = PCustomer {
        id: None,
        name: "Bob".into(),
    };
    bob.save(&pool).await.unwrap();
    for customer in [ada.id, ada.id, bob.id] {
        POrder {
            id: None,
            customer_id: customer.unwrap(),
        }
        .save(&pool)
        .await
        .unwrap();
    }
    for _ in 0..7 {
        PInvoice {
            id: None,
            customer_id: ada.id.unwrap(),
        }
        .save(&pool)
        .await
        .unwrap();
    }
    let error = ada.delete(&pool).await.unwrap_err();
    let OrmError::Protected { blocking } = &error else {
        panic!("expected Protected, got {error}");
    };
    assert_eq!(blocking.len(), 1);
    assert_eq!(
        (blocking[0].parent, blocking[0].child, blocking[0].field),
        ("PCustomer", "PInvoice", "customer_id")
    );
    assert_eq!(blocking[0].keys.len(), 7);
    assert_eq!(
        error.to_string(),
        "cannot delete: `PCustomer` rows are referred to by 7 `PInvoice` rows through `PInvoice.customer_id` (1, 2, 3, 4, 5 and 2 more), whose foreign keys are `on_delete = protect`; delete or re-point those rows first"
    );
    assert_eq!(ada.id, Some(1), "a refused delete keeps the key");
    assert!(
        logged(&pool).await.is_empty(),
        "no signal before the refusal"
    );
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM p_orders").await, 3);
    // The filtered delete refuses the same way; a customer without invoices goes.
    let c = PCustomer::columns();
    let error = PCustomer::objects().delete(&pool).await.unwrap_err();
    assert!(matches!(error, OrmError::Protected { .. }), "{error}");
    let deleted = PCustomer::filter(c.name.eq("Bob"))
        .delete(&pool)
        .await
        .unwrap();
    assert_eq!((deleted.of::<PCustomer>(), deleted.of::<POrder>()), (1, 1));
    assert_eq!(logged(&pool).await, ["pre_delete POrder Some(3)"]);
}

// ---- family R: restrict -----------------------------------------------------------------------

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "r_authors")]
struct RAuthor {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "r_books")]
struct RBook {
    #[model(primary_key)]
    id: Option<i64>,
    #[model(foreign_key = RAuthor, on_delete = cascade)]
    author_id: i64,
}

/// A review of a book (restricted: a book with reviews cannot simply go) by an author (whose
/// delete cascades to their reviews).
#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "r_reviews")]
struct RReview {
    #[model(primary_key)]
    id: Option<i64>,
    #[model(foreign_key = RBook, on_delete = restrict)]
    book_id: i64,
    #[model(foreign_key = RAuthor, on_delete = cascade)]
    author_id: i64,
}

async fn a_restricted_row_refuses_unless_a_cascade_also_reaches_it<DB: TestBackend>(pool: Pool<DB>)
where
    RAuthor: signals_orm::Persist<DB>,
    RBook: signals_orm::Persist<DB>,
    RReview: signals_orm::Persist<DB>,
{
    let mut ada = RAuthor {
        id: None,
        name: "Ada".into(),
    };
    let mut bob = RAuthor {
        id: None,
        name: "Bob".into(),
    };
    ada.save(&pool).await.unwrap();
    bob.save(&pool).await.unwrap();
    let mut ada_book = RBook {
        id: None,
        author_id: 1,
    };
    ada_book.save(&pool).await.unwrap();
    let mut bob_book = RBook {
        id: None,
        author_id: 2,
    };
    bob_book.save(&pool).await.unwrap();
    // Ada reviews her own book: the review is restricted through the book but also cascades
    // from Ada, so deleting Ada deletes it (Django's rule).
    RReview {
        id: None,
        book_id: 1,
        author_id: 1,
    }
    .save(&pool)
    .await
    .unwrap();
    // Deleting the book alone is refused: the review is not reached by a cascade.
    let error = ada_book.delete(&pool).await.unwrap_err();
    let OrmError::Restricted { blocking } = &error else {
        panic!("expected Restricted, got {error}");
    };
    assert_eq!(
        (blocking[0].child, blocking[0].field, blocking[0].keys.len()),
        ("RReview", "book_id", 1)
    );
    assert!(
        error.to_string().contains("`on_delete = restrict`"),
        "{error}"
    );
    let deleted = ada.delete(&pool).await.unwrap();
    assert_eq!(
        (
            deleted.of::<RAuthor>(),
            deleted.of::<RBook>(),
            deleted.of::<RReview>()
        ),
        (1, 1, 1)
    );
    // Bob reviews... Bob's book is reviewed by someone else who stays: refused.
    let mut carol = RAuthor {
        id: None,
        name: "Carol".into(),
    };
    carol.save(&pool).await.unwrap();
    RReview {
        id: None,
        book_id: bob_book.id.unwrap(),
        author_id: carol.id.unwrap(),
    }
    .save(&pool)
    .await
    .unwrap();
    let error = bob.delete(&pool).await.unwrap_err();
    assert!(matches!(error, OrmError::Restricted { .. }), "{error}");
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM r_books").await, 1);
    // Carol's delete removes her review, and then Bob's goes.
    carol.delete(&pool).await.unwrap();
    assert_eq!(bob.delete(&pool).await.unwrap().of::<RBook>(), 1);
}

// ---- family N: set_null (self-reference) and set_default -----------------------------------

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "n_people")]
struct NPerson {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
    #[model(foreign_key = Self, on_delete = set_null)]
    referred_by: Option<i64>,
}

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "n_tickets")]
struct NTicket {
    #[model(primary_key)]
    id: Option<i64>,
    #[model(foreign_key = NPerson, on_delete = set_default, default = 1)]
    owner_id: i64,
}

#[receiver(post_save, sender = NPerson)]
async fn n_person_saved(
    ev: signals_orm::PostSave<'_, NPerson>,
    tx: AnyTx<'_>,
) -> Result<(), BoxError> {
    log(tx, format!("post_save NPerson {:?}", ev.instance.id)).await?;
    Ok(())
}

#[receiver(post_save, sender = NTicket)]
async fn n_ticket_saved(
    ev: signals_orm::PostSave<'_, NTicket>,
    tx: AnyTx<'_>,
) -> Result<(), BoxError> {
    log(tx, format!("post_save NTicket {:?}", ev.instance.id)).await?;
    Ok(())
}

async fn set_null_and_set_default_update_without_save_signals<DB: TestBackend>(pool: Pool<DB>)
where
    NPerson: signals_orm::Persist<DB>,
    NTicket: signals_orm::Persist<DB>,
{
    let mut nobody = NPerson {
        id: None,
        name: "nobody".into(),
        referred_by: None,
    };
    nobody.save(&pool).await.unwrap();
    let mut ada = NPerson {
        id: None,
        name: "Ada".into(),
        referred_by: None,
    };
    ada.save(&pool).await.unwrap();
    for name in ["Bob", "Carol"] {
        NPerson {
            id: None,
            name: name.into(),
            referred_by: ada.id,
        }
        .save(&pool)
        .await
        .unwrap();
    }
    for _ in 0..2 {
        NTicket {
            id: None,
            owner_id: ada.id.unwrap(),
        }
        .save(&pool)
        .await
        .unwrap();
    }
    let referrer = NPerson::get(&pool, &3).await.unwrap().unwrap();
    assert_eq!(
        referrer.referred_by(&pool).await.unwrap().map(|p| p.name),
        Some("Ada".into())
    );
    assert_eq!(NPerson::of(&ada).count(&pool).await.unwrap(), 2);
    let saves_before = logged(&pool).await.len();
    let deleted = ada.delete(&pool).await.unwrap();
    assert_eq!(deleted.total(), 1, "only Ada is deleted: {deleted:?}");
    assert_eq!(
        logged(&pool).await.len(),
        saves_before,
        "no save signals, as in Django"
    );
    assert_eq!(
        DB::scalar(
            &pool,
            "SELECT COUNT(*) FROM n_people WHERE referred_by IS NULL"
        )
        .await,
        3
    );
    assert_eq!(
        DB::integers(&pool, "SELECT owner_id FROM n_tickets".into()).await,
        [1, 1]
    );
    let referrer = NPerson::get(&pool, &3).await.unwrap().unwrap();
    assert_eq!(
        referrer.referred_by(&pool).await.unwrap().map(|p| p.id),
        None
    );
}

// ---- family D: do_nothing --------------------------------------------------------------------

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "d_parents")]
struct DParent {
    #[model(primary_key)]
    id: Option<i64>,
}

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "d_children")]
struct DChild {
    #[model(primary_key)]
    id: Option<i64>,
    #[model(foreign_key = DParent, on_delete = do_nothing)]
    parent_id: i64,
}

#[receiver(pre_delete, sender = DParent)]
async fn d_parent_pre(ev: PreDelete<'_, DParent>, tx: AnyTx<'_>) -> Result<(), BoxError> {
    log(tx, format!("pre_delete DParent {:?}", ev.instance.id)).await?;
    Ok(())
}

async fn do_nothing_leaves_the_database_constraint_to_refuse<DB: TestBackend>(pool: Pool<DB>)
where
    DParent: signals_orm::Persist<DB>,
    DChild: signals_orm::Persist<DB>,
{
    let mut parent = DParent { id: None };
    parent.save(&pool).await.unwrap();
    DChild {
        id: None,
        parent_id: 1,
    }
    .save(&pool)
    .await
    .unwrap();
    let error = parent.delete(&pool).await.unwrap_err();
    let OrmError::Database {
        source: sqlx::Error::Database(db_error),
        ..
    } = &error
    else {
        panic!("expected the database's error, got {error}");
    };
    assert!(db_error.is_foreign_key_violation(), "{db_error}");
    assert!(
        logged(&pool).await.is_empty(),
        "the pre_delete's log was rolled back"
    );
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM d_parents").await, 1);
    assert_eq!(parent.id, Some(1));
}

// ---- a failing receiver in the middle of a cascade --------------------------------------------

async fn a_failing_receiver_in_the_middle_undoes_the_whole_cascade<DB: TestBackend>(pool: Pool<DB>)
where
    ACustomer: signals_orm::Persist<DB>,
    AOrder: signals_orm::Persist<DB>,
    ALine: signals_orm::Persist<DB>,
{
    let (mut ada, _) = family_a(&pool).await;
    // Line 2's post_delete fails: lines are deleted by then, orders and Ada not yet.
    DB::exec(&pool, "UPDATE a_lines SET label = 'boom' WHERE id = 2").await;
    let error = ada.delete(&pool).await.unwrap_err();
    assert!(
        format!("{error:#}").contains("ALine 2 refuses"),
        "{error:#}"
    );
    assert_eq!(ada.id, Some(1));
    assert!(logged(&pool).await.is_empty());
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM a_lines").await, 4);
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM a_orders").await, 3);
    // In a caller's transaction, the failure makes it rollback-only.
    let mut tx = signals_orm::Tx::begin(&pool).await.unwrap();
    assert!(ada.delete(&mut tx).await.is_err());
    assert!(
        tx.commit().await.is_err(),
        "a failed cascade cannot be committed"
    );
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM a_lines").await, 4);
    // Muted, the receivers are skipped and the cascade goes through.
    let deleted = Mute::new()
        .signal::<PreDeleteSignal>()
        .signal::<PostDeleteSignal>()
        .scope(ada.delete(&pool))
        .await
        .unwrap();
    assert_eq!(deleted.total(), 6);
    assert!(logged(&pool).await.is_empty());
}

// ---- family T: a self-referencing tree ----------------------------------------------------------

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "t_categories")]
struct TCategory {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
    #[model(foreign_key = Self, on_delete = cascade)]
    parent_id: Option<i64>,
}

#[receiver(post_delete, sender = TCategory)]
async fn t_category_post(ev: PostDelete<'_, TCategory>, tx: AnyTx<'_>) -> Result<(), BoxError> {
    log(tx, format!("post_delete {}", ev.instance.name)).await?;
    Ok(())
}

async fn a_self_referencing_tree_is_collected_without_looping<DB: TestBackend>(pool: Pool<DB>)
where
    TCategory: signals_orm::Persist<DB>,
{
    // root(1) -> a(2) -> a1(4), a2(5) -> a2x(6); root -> b(3); other(7) stays.
    for (name, parent) in [
        ("root", None),
        ("a", Some(1)),
        ("b", Some(1)),
        ("a1", Some(2)),
        ("a2", Some(2)),
        ("a2x", Some(5)),
        ("other", None),
    ] {
        TCategory {
            id: None,
            name: name.into(),
            parent_id: parent,
        }
        .save(&pool)
        .await
        .unwrap();
    }
    let mut root = TCategory::get(&pool, &1).await.unwrap().unwrap();
    let deleted = root.delete(&pool).await.unwrap();
    assert_eq!(deleted.of::<TCategory>(), 6);
    assert_eq!(
        logged(&pool).await,
        [
            "post_delete a2x",
            "post_delete a2",
            "post_delete a1",
            "post_delete b",
            "post_delete a",
            "post_delete root"
        ]
    );
    assert_eq!(
        DB::strings(&pool, "SELECT name FROM t_categories").await,
        ["other"]
    );
    // A cycle (7 -> 8 -> 7) ends too.
    TCategory {
        id: None,
        name: "c8".into(),
        parent_id: Some(7),
    }
    .save(&pool)
    .await
    .unwrap();
    DB::exec(&pool, "UPDATE t_categories SET parent_id = 8 WHERE id = 7").await;
    let c = TCategory::columns();
    let deleted = TCategory::filter(c.name.eq("other"))
        .delete(&pool)
        .await
        .unwrap();
    assert_eq!(deleted.of::<TCategory>(), 2);
    assert_eq!(
        DB::scalar(&pool, "SELECT COUNT(*) FROM t_categories").await,
        0
    );
}

// ---- family B: many dependents -------------------------------------------------------------

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "b_parents")]
struct BParent {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "b_children")]
struct BChild {
    #[model(primary_key)]
    id: Option<i64>,
    #[model(foreign_key = BParent, on_delete = cascade)]
    parent_id: i64,
}

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "b_grandchildren")]
struct BGrandchild {
    #[model(primary_key)]
    id: Option<i64>,
    #[model(foreign_key = BChild, on_delete = cascade)]
    child_id: i64,
}

#[receiver(post_delete, sender = BGrandchild)]
fn b_grandchild_post(_: PostDelete<'_, BGrandchild>) {}

#[receiver(pre_delete, sender = BChild)]
fn b_child_pre(_: PreDelete<'_, BChild>) {}

async fn ten_thousand_dependents_take_one_query_per_relation_and_level<DB: TestBackend>(
    pool: Pool<DB>,
) where
    BParent: signals_orm::Persist<DB>,
    BChild: signals_orm::Persist<DB>,
    BGrandchild: signals_orm::Persist<DB>,
{
    DB::exec(&pool, "INSERT INTO b_parents (name) VALUES ('p')").await;
    let mut values = String::from("INSERT INTO b_children (parent_id) VALUES (1)");
    for _ in 1..10_000 {
        values.push_str(", (1)");
    }
    DB::run(&pool, values).await;
    let mut values = String::from("INSERT INTO b_grandchildren (child_id) VALUES (1)");
    for child in 2..=10_000 {
        let _ = write!(values, ", ({child})");
    }
    DB::run(&pool, values).await;
    let mut parent = BParent::get(&pool, &1).await.unwrap().unwrap();
    let (deleted, ran) = statements::of(parent.delete(&pool)).await;
    let deleted = deleted.unwrap();
    assert_eq!(
        (
            deleted.of::<BParent>(),
            deleted.of::<BChild>(),
            deleted.of::<BGrandchild>()
        ),
        (1, 10_000, 10_000)
    );
    // One SELECT of the children (pre_delete needs them whole), none of the grandchildren
    // (deleted by their key, RETURNING the rows post_delete gets), one DELETE per model.
    let kinds: Vec<String> = ran
        .iter()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .filter(|s| !s.starts_with("COMMIT") && !s.starts_with("BEGIN"))
        .collect();
    assert_eq!(
        kinds,
        [
            "SELECT \"id\", \"parent_id\"",
            "DELETE FROM \"b_grandchildren\"",
            "DELETE FROM \"b_children\"",
            "DELETE FROM \"b_parents\"",
        ],
        "{ran:#?}"
    );
}
