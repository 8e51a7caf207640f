//! Choosing rows with typed columns (`docs/orm.md`, "Choosing rows"): conditions, ordering,
//! limits and counts on every backend, values always bound.

mod support;

use signals_orm::{Model, ModelExt};
use sqlx::Pool;
use support::TestBackend;

const SCHEMA: &str = r"
CREATE TABLE people (
    id {serial},
    name TEXT NOT NULL,
    age BIGINT NOT NULL,
    nickname TEXT
);
";

every_backend!(
    conditions_select_exactly_the_matching_rows,
    order_limit_offset_first_count_and_exists,
    values_are_bound_never_spliced,
    queries_run_inside_a_callers_transaction,
);

#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "people")]
struct Person {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
    age: i64,
    #[model(column = "nickname")]
    nick: Option<String>,
}

async fn people<DB: TestBackend>(pool: &Pool<DB>) -> Vec<Person>
where
    Person: signals_orm::Persist<DB>,
{
    let mut saved = Vec::new();
    for (name, age, nick) in [
        ("Ada", 36, Some("countess")),
        ("Alan", 41, None),
        ("Grace", 85, Some("amazing")),
        ("Edsger", 72, None),
        ("Barbara", 0, Some("o'brien \"quoted\"")),
    ] {
        let mut person = Person {
            id: None,
            name: name.into(),
            age,
            nick: nick.map(Into::into),
        };
        person.save(pool).await.unwrap();
        saved.push(person);
    }
    saved
}

fn names(people: &[Person]) -> Vec<&str> {
    people.iter().map(|p| p.name.as_str()).collect()
}

async fn conditions_select_exactly_the_matching_rows<DB: TestBackend>(pool: Pool<DB>)
where
    Person: signals_orm::Persist<DB>,
{
    let everyone = people(&pool).await;
    let c = Person::columns();
    let by_name = |q: signals_orm::query::Query<Person>| {
        let pool = pool.clone();
        async move {
            let mut rows = q.all(&pool).await.unwrap();
            rows.sort_by(|a, b| a.name.cmp(&b.name));
            rows.into_iter().map(|p| p.name).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        by_name(Person::filter(c.age.gt(40))).await,
        ["Alan", "Edsger", "Grace"]
    );
    assert_eq!(
        by_name(Person::filter(c.age.ge(41) & c.age.le(72))).await,
        ["Alan", "Edsger"]
    );
    assert_eq!(
        by_name(Person::filter(c.age.lt(1) | c.name.eq("Ada"))).await,
        ["Ada", "Barbara"]
    );
    assert_eq!(by_name(Person::filter(!c.age.ne(36))).await, ["Ada"]);
    assert_eq!(
        by_name(Person::filter(c.nick.is_null())).await,
        ["Alan", "Edsger"]
    );
    assert_eq!(
        by_name(Person::filter(c.nick.is_not_null()).exclude(c.name.like("B%"))).await,
        ["Ada", "Grace"]
    );
    assert_eq!(
        by_name(Person::filter(c.nick.eq(Some("amazing".to_owned())))).await,
        ["Grace"]
    );
    assert_eq!(
        by_name(Person::filter(
            c.id.is_in([everyone[1].id.unwrap(), everyone[3].id.unwrap()])
        ))
        .await,
        ["Alan", "Edsger"]
    );
    assert!(
        by_name(Person::filter(c.id.is_in(Vec::<i64>::new())))
            .await
            .is_empty(),
        "an empty IN selects nothing"
    );
    assert_eq!(by_name(Person::objects()).await.len(), 5);
    // Rows come back whole: every field, the renamed column too.
    let grace = Person::filter(c.name.eq("Grace"))
        .first(&pool)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grace, everyone[2]);
}

async fn order_limit_offset_first_count_and_exists<DB: TestBackend>(pool: Pool<DB>)
where
    Person: signals_orm::Persist<DB>,
{
    people(&pool).await;
    let c = Person::columns();
    let by_age = Person::objects().order_by(c.age.desc());
    assert_eq!(
        names(&by_age.all(&pool).await.unwrap()),
        ["Grace", "Edsger", "Alan", "Ada", "Barbara"]
    );
    let page = Person::objects().order_by(c.age.desc()).limit(2).offset(1);
    assert_eq!(names(&page.all(&pool).await.unwrap()), ["Edsger", "Alan"]);
    assert_eq!(page.count(&pool).await.unwrap(), 2);
    let skip = Person::objects().order_by(c.age.asc()).offset(3);
    assert_eq!(names(&skip.all(&pool).await.unwrap()), ["Edsger", "Grace"]);
    assert_eq!(skip.count(&pool).await.unwrap(), 2);
    // `first` orders by key without an order of its own: the first saved.
    assert_eq!(
        Person::objects().first(&pool).await.unwrap().unwrap().name,
        "Ada"
    );
    assert_eq!(
        Person::objects()
            .order_by(c.name.desc())
            .first(&pool)
            .await
            .unwrap()
            .unwrap()
            .name,
        "Grace"
    );
    assert!(
        Person::filter(c.age.gt(100))
            .first(&pool)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(Person::filter(c.age.gt(40)).count(&pool).await.unwrap(), 3);
    assert_eq!(Person::objects().count(&pool).await.unwrap(), 5);
    assert!(Person::filter(c.age.eq(85)).exists(&pool).await.unwrap());
    assert!(!Person::filter(c.age.eq(86)).exists(&pool).await.unwrap());
}

async fn values_are_bound_never_spliced<DB: TestBackend>(pool: Pool<DB>)
where
    Person: signals_orm::Persist<DB>,
{
    people(&pool).await;
    let c = Person::columns();
    let hostile = "x' OR '1'='1";
    assert!(
        Person::filter(c.name.eq(hostile))
            .all(&pool)
            .await
            .unwrap()
            .is_empty()
    );
    let quoted = "o'brien \"quoted\"";
    let found = Person::filter(c.nick.eq(Some(quoted.to_owned())))
        .all(&pool)
        .await
        .unwrap();
    assert_eq!(names(&found), ["Barbara"]);
    assert_eq!(
        format!(
            "{:?}",
            Person::filter(c.name.eq(hostile) | c.age.is_in([1_i64, 2]))
        ),
        "Person WHERE (name = ? OR age IN (2 values))",
        "Debug shows the shape, never the values"
    );
}

async fn queries_run_inside_a_callers_transaction<DB: TestBackend>(pool: Pool<DB>)
where
    Person: signals_orm::Persist<DB>,
{
    people(&pool).await;
    let c = Person::columns();
    let mut tx = signals_orm::Tx::begin(&pool).await.unwrap();
    let mut newcomer = Person {
        id: None,
        name: "Niklaus".into(),
        age: 89,
        nick: None,
    };
    newcomer.save(&mut tx).await.unwrap();
    assert_eq!(
        Person::filter(c.age.gt(80)).count(&mut tx).await.unwrap(),
        2,
        "sees its own write"
    );
    tx.rollback().await.unwrap();
    assert_eq!(Person::filter(c.age.gt(80)).count(&pool).await.unwrap(), 1);
}

// ---- filtered delete, nobody listening (`docs/orm.md`, "Set-based writes") ----------------

every_backend!(a_delete_nobody_hears_removes_exactly_the_matching_rows);

async fn a_delete_nobody_hears_removes_exactly_the_matching_rows<DB: TestBackend>(pool: Pool<DB>)
where
    Person: signals_orm::Persist<DB>,
{
    people(&pool).await;
    let c = Person::columns();
    let deleted = Person::filter(c.age.gt(40)).delete(&pool).await.unwrap();
    assert_eq!((deleted.total(), deleted.of::<Person>()), (3, 3));
    assert_eq!(
        names(
            &Person::objects()
                .order_by(c.id.asc())
                .all(&pool)
                .await
                .unwrap()
        ),
        ["Ada", "Barbara"]
    );
    let sliced = Person::objects().limit(1).delete(&pool).await.unwrap_err();
    assert!(
        matches!(
            sliced,
            signals_orm::OrmError::Sliced {
                write: "delete",
                ..
            }
        ),
        "{sliced}"
    );
    assert_eq!(Person::objects().delete(&pool).await.unwrap().total(), 2);
    assert_eq!(Person::objects().count(&pool).await.unwrap(), 0);
}

// ---- filtered update and get_or_create, nobody listening --------------------------------

every_backend!(
    an_update_nobody_hears_sets_exactly_the_matching_rows,
    get_or_create_gets_one_row_or_creates_it
);

async fn an_update_nobody_hears_sets_exactly_the_matching_rows<DB: TestBackend>(pool: Pool<DB>)
where
    Person: signals_orm::Persist<DB>,
{
    people(&pool).await;
    let c = Person::columns();
    let changed = Person::filter(c.age.gt(40))
        .update(
            &pool,
            [c.nick.set(Some("senior".to_owned())), c.age.set(99)],
        )
        .await
        .unwrap();
    assert_eq!(changed, 3);
    let seniors = Person::filter(c.nick.eq(Some("senior".to_owned())) & c.age.eq(99))
        .order_by(c.id.asc())
        .all(&pool)
        .await
        .unwrap();
    assert_eq!(names(&seniors), ["Alan", "Grace", "Edsger"]);
    assert_eq!(Person::filter(c.age.eq(99)).count(&pool).await.unwrap(), 3);
    assert_eq!(
        Person::objects().update(&pool, []).await.unwrap(),
        0,
        "no assignment changes nothing"
    );
    let key = Person::objects()
        .update(&pool, [c.id.set(1)])
        .await
        .unwrap_err();
    assert!(
        matches!(key, signals_orm::OrmError::UnknownField { .. }),
        "{key}"
    );
}

async fn get_or_create_gets_one_row_or_creates_it<DB: TestBackend>(pool: Pool<DB>)
where
    Person: signals_orm::Persist<DB>,
{
    people(&pool).await;
    let c = Person::columns();
    let newcomer = || Person {
        id: None,
        name: "Niklaus".into(),
        age: 89,
        nick: None,
    };
    let (found, created) = Person::filter(c.name.eq("Ada"))
        .get_or_create(&pool, newcomer)
        .await
        .unwrap();
    assert_eq!((found.name.as_str(), created), ("Ada", false));
    let (made, created) = Person::filter(c.name.eq("Niklaus"))
        .get_or_create(&pool, newcomer)
        .await
        .unwrap();
    assert!(created && made.id.is_some());
    let (again, created) = Person::filter(c.name.eq("Niklaus"))
        .get_or_create(&pool, newcomer)
        .await
        .unwrap();
    assert_eq!((again.id, created), (made.id, false));
    let several = Person::filter(c.age.gt(40))
        .get_or_create(&pool, newcomer)
        .await
        .unwrap_err();
    assert!(
        matches!(several, signals_orm::OrmError::MultipleRows { .. }),
        "{several}"
    );
    let (updated, created) = Person::filter(c.name.eq("Niklaus"))
        .update_or_create(&pool, |p| p.age = 90, newcomer)
        .await
        .unwrap();
    assert_eq!((updated.age, created), (90, false));
    assert_eq!(Person::filter(c.age.eq(90)).count(&pool).await.unwrap(), 1);
}
