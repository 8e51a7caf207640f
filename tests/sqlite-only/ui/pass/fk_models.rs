// Foreign keys of every kind on SQLite alone: non-null and `Option` keys, a self-reference
// through `Self`, a parent named by path, a key that is also the primary key, and each
// `on_delete` that changes the children; the accessors, `Model::of`, and what deleting a
// parent does.
#![deny(unused_qualifications)]

use signals_orm::{Model, ModelExt};

#[derive(Model, sqlx::FromRow, Debug)]
#[model(table = "customers")]
struct Customer {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
    #[model(foreign_key = Self, on_delete = set_null)]
    referred_by: Option<i64>,
}

#[derive(Model, sqlx::FromRow, Debug)]
#[model(table = "products")]
struct Product {
    #[model(primary_key)]
    code: String,
}

#[derive(Model, sqlx::FromRow, Debug)]
#[model(table = "orders")]
struct Order {
    #[model(primary_key)]
    id: Option<i64>,
    #[model(foreign_key = Customer, on_delete = cascade)]
    customer_id: i64,
    #[model(foreign_key = crate::Product, on_delete = set_default, default = String::from("none"))]
    product: String,
    #[model(foreign_key = Customer, on_delete = do_nothing, column = "seller")]
    seller_id: Option<i64>,
    #[model(skip)]
    #[sqlx(skip)]
    note: String,
}

// One-to-one: the key is the customer's.
#[derive(Model, sqlx::FromRow, Debug)]
#[model(table = "profiles")]
struct Profile {
    #[model(primary_key, foreign_key = Customer, on_delete = cascade)]
    customer: i64,
    bio: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await?;
    sqlx::raw_sql(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, referred_by INTEGER);
         CREATE TABLE products (code TEXT PRIMARY KEY);
         CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL,
                              product TEXT NOT NULL, seller INTEGER);
         CREATE TABLE profiles (customer INTEGER PRIMARY KEY, bio TEXT NOT NULL)",
    )
    .execute(&pool)
    .await?;

    let mut ada = Customer {
        id: None,
        name: "ada".into(),
        referred_by: None,
    };
    ada.save(&pool).await?;
    let mut bob = Customer {
        id: None,
        name: "bob".into(),
        referred_by: ada.id,
    };
    bob.save(&pool).await?;
    for code in ["tea", "none"] {
        Product { code: code.into() }.save(&pool).await?;
    }
    let mut order = Order {
        id: None,
        customer_id: bob.id.unwrap(),
        product: "tea".into(),
        seller_id: None,
        note: String::new(),
    };
    order.save(&pool).await?;
    let mut profile = Profile {
        customer: bob.id.unwrap(),
        bio: String::new(),
    };
    profile.save(&pool).await?;

    // The accessors.
    assert_eq!(
        bob.referred_by(&pool).await?.map(|c| c.name),
        Some("ada".to_owned())
    );
    assert!(ada.referred_by(&pool).await?.is_none());
    assert_eq!(order.customer(&pool).await?.name, "bob");
    assert_eq!(order.product(&pool).await?.code, "tea");
    assert!(order.seller(&pool).await?.is_none());
    assert_eq!(profile.customer(&pool).await?.name, "bob");
    assert!(order.note.is_empty() && profile.bio.is_empty());
    // The rows pointing at a parent, for a parent one key points at.
    assert_eq!(Customer::of(&ada).all(&pool).await?.len(), 1);
    assert_eq!(Profile::of(&bob).all(&pool).await?.len(), 1);

    // set_default, set_null, cascade.
    Product { code: "tea".into() }.delete(&pool).await?;
    let product: String = sqlx::query_scalar("SELECT product FROM orders")
        .fetch_one(&pool)
        .await?;
    assert_eq!(product, "none");
    ada.delete(&pool).await?;
    let referred: Option<i64> = sqlx::query_scalar("SELECT referred_by FROM customers")
        .fetch_one(&pool)
        .await?;
    assert_eq!(referred, None);
    bob.delete(&pool).await?;
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM orders) + (SELECT COUNT(*) FROM profiles)",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(left, 0);
    Ok(())
}
