//! The model registry: `class_prepared` once per model at the registry's preparation, however
//! many tasks race the ORM's first use, and `signals_orm::check`, Django's system checks for the
//! schema, on every backend: a clean schema passes; a missing table, a missing column, a
//! wrong type and a nullability mismatch are each reported with the model and column named; a
//! model whose types only one backend stores is skipped on the other. Rules: `docs/orm.md`,
//! "Model registry and checks".
//!
//! The registry is process-wide: every model of this test binary (these, and `support`'s
//! `Log`) is checked by every `check`, so the schema has every table, and each scenario breaks
//! one thing and asserts the report names exactly that.

mod support;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use signals_orm::registry::{self, ClassPrepared};
use signals_orm::schema::{CheckReport, Problem};
use signals_orm::{ColumnMeta, Model, ModelExt, Sender, receiver};
use sqlx::Pool;
use support::TestBackend;

const SCHEMA: &str = "
CREATE TABLE log (id {serial}, entry TEXT NOT NULL);
CREATE TABLE widgets (id {serial}, name TEXT NOT NULL, note TEXT, weight BIGINT NOT NULL, colour_name TEXT NOT NULL, not_in_the_model TEXT);
CREATE TABLE gadgets (code TEXT PRIMARY KEY, price DOUBLE PRECISION NOT NULL, in_stock BOOLEAN NOT NULL, widget_id BIGINT);
";

every_backend!(
    a_clean_schema_passes,
    a_missing_table_is_reported,
    a_missing_column_is_reported,
    a_wrong_type_is_reported,
    a_nullability_mismatch_is_reported,
);

#[derive(Model, sqlx::FromRow, Debug)]
#[model(table = "widgets")]
struct Widget {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
    note: Option<String>,
    weight: i64,
    #[model(column = "colour_name")]
    colour: String,
    /// Not stored: no column to check.
    #[model(skip)]
    #[sqlx(skip)]
    #[allow(dead_code)]
    cached: String,
}

#[derive(Model, sqlx::FromRow, Debug)]
#[model(table = "gadgets")]
struct Gadget {
    #[model(primary_key)]
    code: String,
    price: f64,
    in_stock: bool,
    widget_id: Option<i64>,
}

/// Stored by PostgreSQL only (an array column): SQLite's check skips it.
#[derive(Model, sqlx::FromRow, Debug)]
#[model(table = "tagged")]
struct Tagged {
    #[model(primary_key)]
    id: Option<i64>,
    tags: Vec<String>,
}

/// Every `class_prepared` send: the model's name and the send's sender.
static PREPARED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
static WIDGET_ONLY: AtomicUsize = AtomicUsize::new(0);

#[receiver(class_prepared)]
fn every_model(ev: &ClassPrepared, sender: Sender) {
    PREPARED
        .lock()
        .unwrap()
        .push((ev.meta.name.to_owned(), sender.name().to_owned()));
}

/// Slow on purpose: the preparation takes long enough that the racing tasks of
/// `class_prepared_is_sent_once_per_model_when_many_tasks_race_the_first_use` arrive while it
/// is under way, and must wait for it.
#[receiver(class_prepared, sender = Widget)]
fn widget_only(ev: &ClassPrepared) -> Result<(), String> {
    if ev.meta.name != "Widget" {
        return Err(format!("sent for {}", ev.meta.name));
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    WIDGET_ONLY.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// Each model of the program was sent `class_prepared` exactly once, with itself as sender,
/// and `widget_only` heard Widget's send only.
fn assert_prepared_once() {
    let models = registry::models();
    let prepared = PREPARED.lock().unwrap().clone();
    assert_eq!(
        prepared.len(),
        models.len(),
        "one send per model: {prepared:?}"
    );
    for meta in models {
        let sends: Vec<&(String, String)> = prepared
            .iter()
            .filter(|(name, _)| name == meta.name)
            .collect();
        assert_eq!(sends.len(), 1, "{}: {prepared:?}", meta.name);
        assert!(
            sends[0].1.ends_with(&format!("::{}", meta.name)),
            "the sender is the model: {sends:?}"
        );
    }
    assert_eq!(WIDGET_ONLY.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn class_prepared_is_sent_once_per_model_when_many_tasks_race_the_first_use() {
    let pool = support::sqlite_memory(SCHEMA).await;
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (pool, start) = (pool.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                // Half use the ORM, half prepare explicitly: whichever comes first sends, the
                // others wait for it to finish.
                if i % 2 == 0 {
                    Widget::objects().count(&pool).await.unwrap();
                } else {
                    signals_orm::prepare();
                }
                // Past its first use, every model was prepared, whoever did it.
                assert_prepared_once();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    signals_orm::prepare();
    Widget::get(&pool, &1).await.unwrap();
    assert_prepared_once();
    let names: Vec<&str> = registry::models().iter().map(|m| m.name).collect();
    for model in ["Gadget", "Log", "Tagged", "Widget"] {
        assert!(names.contains(&model), "{names:?}");
    }
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "models() is sorted by name");
}

#[test]
fn the_registry_holds_each_column_as_the_struct_declares_it() {
    let column = |field, column, rust_type, nullable, primary_key| ColumnMeta {
        field,
        column,
        rust_type,
        nullable,
        primary_key,
    };
    assert_eq!(
        Widget::META.schema,
        [
            column("id", "id", "Option<i64>", false, true),
            column("name", "name", "String", false, false),
            column("note", "note", "Option<String>", true, false),
            column("weight", "weight", "i64", false, false),
            column("colour", "colour_name", "String", false, false),
        ]
    );
    assert_eq!(
        Gadget::META.schema[0],
        column("code", "code", "String", false, true)
    );
    let meta = registry::models()
        .iter()
        .find(|m| m.name == "Tagged")
        .unwrap();
    assert_eq!(meta.schema[1].rust_type, "Vec<String>");
}

/// The PostgreSQL-only model's table, where it is stored.
async fn create_tagged<DB: TestBackend>(pool: &Pool<DB>) {
    if <DB as signals_orm::Backend>::NAME == "postgres" {
        DB::run(
            pool,
            format!(
                "CREATE TABLE tagged (id {}, tags TEXT[] NOT NULL)",
                DB::SERIAL_KEY
            ),
        )
        .await;
    }
}

/// Replaces `widgets` by a table of `columns`.
async fn recreate_widgets<DB: TestBackend>(pool: &Pool<DB>, columns: &str) {
    DB::exec(pool, "DROP TABLE widgets").await;
    DB::run(
        pool,
        format!("CREATE TABLE widgets ({columns})").replace("{serial}", DB::SERIAL_KEY),
    )
    .await;
}

/// The report's problems as (model, problem).
fn problems(report: &CheckReport) -> Vec<(&'static str, Problem)> {
    report
        .problems()
        .map(|(meta, problem)| (meta.name, problem.clone()))
        .collect()
}

/// Checks `pool`, expecting problems: the report's text contains each of `lines`, and
/// `into_result` fails with the same text.
async fn failing_check<DB: TestBackend>(pool: &Pool<DB>, lines: &[&str]) -> CheckReport {
    let report = signals_orm::check(pool).await.unwrap();
    assert!(!report.is_ok(), "{report}");
    let text = report.to_string();
    for line in lines {
        assert!(text.contains(line), "{line:?} is not in:\n{text}");
    }
    let error = report.clone().into_result().unwrap_err();
    assert_eq!(error.to_string(), text);
    assert_prepared_once();
    report
}

fn column(meta: &'static signals_orm::ModelMeta, name: &str) -> &'static ColumnMeta {
    meta.schema.iter().find(|c| c.column == name).unwrap()
}

async fn a_clean_schema_passes<DB: TestBackend>(pool: Pool<DB>) {
    create_tagged(&pool).await;
    let report = signals_orm::check(&pool).await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.backend, <DB as signals_orm::Backend>::NAME);
    let checked: Vec<&str> = report.models.iter().map(|m| m.meta.name).collect();
    let skipped: Vec<&str> = report.skipped.iter().map(|m| m.name).collect();
    for model in ["Gadget", "Log", "Widget"] {
        assert!(checked.contains(&model), "{checked:?}");
    }
    if <DB as signals_orm::Backend>::NAME == "postgres" {
        assert!(
            checked.contains(&"Tagged") && skipped.is_empty(),
            "{report}"
        );
    } else {
        assert_eq!(skipped, ["Tagged"], "SQLite cannot store `Vec<String>`");
        assert!(!checked.contains(&"Tagged"));
    }
    let text = report.to_string();
    assert!(text.contains("no problems"), "{text}");
    report.into_result().unwrap();
    assert_prepared_once();
}

async fn a_missing_table_is_reported<DB: TestBackend>(pool: Pool<DB>) {
    create_tagged(&pool).await;
    DB::exec(&pool, "DROP TABLE gadgets").await;
    let report = failing_check(
        &pool,
        &[
            &format!(
                "schema check ({}): 1 problem in 1 of",
                <DB as signals_orm::Backend>::NAME
            ),
            "Gadget (table \"gadgets\"):\n    - table \"gadgets\" does not exist",
        ],
    )
    .await;
    assert_eq!(
        problems(&report),
        [("Gadget", Problem::MissingTable { table: "gadgets" })]
    );
}

async fn a_missing_column_is_reported<DB: TestBackend>(pool: Pool<DB>) {
    create_tagged(&pool).await;
    recreate_widgets(
        &pool,
        "id {serial}, name TEXT NOT NULL, note TEXT, weight BIGINT NOT NULL",
    )
    .await;
    let report = failing_check(
        &pool,
        &["Widget (table \"widgets\"):\n    - column \"colour_name\" (field `colour: String`) does not exist"],
    )
    .await;
    assert_eq!(
        problems(&report),
        [(
            "Widget",
            Problem::MissingColumn {
                column: column(Widget::META, "colour_name")
            }
        )]
    );
}

async fn a_wrong_type_is_reported<DB: TestBackend>(pool: Pool<DB>) {
    create_tagged(&pool).await;
    recreate_widgets(
        &pool,
        "id {serial}, name TEXT NOT NULL, note TEXT, weight TEXT NOT NULL, colour_name TEXT NOT NULL",
    )
    .await;
    // What sqlx calls an `i64`, and what it finds: SQLite's declared type, PostgreSQL's type.
    let expected = if <DB as signals_orm::Backend>::NAME == "postgres" {
        "INT8"
    } else {
        "INTEGER"
    };
    let report = failing_check(
        &pool,
        &[&format!(
            "Widget (table \"widgets\"):\n    - column \"weight\" (field `weight: i64`): type mismatch: expected {expected}, found TEXT"
        )],
    )
    .await;
    assert_eq!(
        problems(&report),
        [(
            "Widget",
            Problem::TypeMismatch {
                column: column(Widget::META, "weight"),
                expected: expected.to_owned(),
                found: "TEXT".to_owned(),
            }
        )]
    );
}

async fn a_nullability_mismatch_is_reported<DB: TestBackend>(pool: Pool<DB>) {
    create_tagged(&pool).await;
    // `name` (a `String`) may now be NULL, `note` (an `Option`) may not.
    recreate_widgets(
        &pool,
        "id {serial}, name TEXT, note TEXT NOT NULL, weight BIGINT NOT NULL, colour_name TEXT NOT NULL",
    )
    .await;
    let report = failing_check(
        &pool,
        &[
            "column \"name\" (field `name: String`) allows NULL, but the field is not an Option: reading a NULL fails",
            "column \"note\" (field `note: Option<String>`) is NOT NULL, but the field is an Option: saving None fails",
        ],
    )
    .await;
    assert_eq!(
        problems(&report),
        [
            (
                "Widget",
                Problem::Nullability {
                    column: column(Widget::META, "name"),
                    column_nullable: true,
                }
            ),
            (
                "Widget",
                Problem::Nullability {
                    column: column(Widget::META, "note"),
                    column_nullable: false,
                }
            ),
        ]
    );
}
