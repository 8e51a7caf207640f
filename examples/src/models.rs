//! The shop's models.

use signals_orm::Model;

/// A registered customer. Serializable: the welcome email's durable job holds a copy.
#[derive(Model, sqlx::FromRow, serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
#[model(table = "customers")]
pub struct Customer {
    /// Generated key.
    #[model(primary_key)]
    pub id: Option<i64>,
    /// Display name, normalised by a `pre_save` receiver.
    pub name: String,
    /// Email address.
    pub email: String,
    /// Logged in now.
    pub online: bool,
    /// Last login, Unix seconds.
    pub last_login: Option<i64>,
}

impl Customer {
    /// A customer not saved yet.
    #[must_use]
    pub fn new(name: &str, email: &str) -> Self {
        Customer {
            id: None,
            name: name.into(),
            email: email.into(),
            online: false,
            last_login: None,
        }
    }
}

/// Created for every new customer, in the same transaction.
#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "profiles")]
pub struct Profile {
    /// Generated key.
    #[model(primary_key)]
    pub id: Option<i64>,
    /// Whose profile: it goes when its customer is deleted.
    #[model(foreign_key = Customer, on_delete = cascade)]
    pub customer_id: i64,
    /// Free text.
    pub bio: String,
}

/// A product with an image file on disk.
#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "products")]
pub struct Product {
    /// Generated key.
    #[model(primary_key)]
    pub id: Option<i64>,
    /// Name.
    pub name: String,
    /// Units in stock; orders decrement it in their transaction.
    pub stock: i64,
    /// Price of one unit, in cents.
    pub price_cents: i64,
    /// The image file, deleted after the product's delete commits.
    pub image_path: String,
}

/// An order of one product. Serializable: the confirmation's and the sales analytics' durable
/// jobs hold a copy.
#[derive(Model, sqlx::FromRow, serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
#[model(table = "orders")]
pub struct Order {
    /// Generated key.
    #[model(primary_key)]
    pub id: Option<i64>,
    /// Who ordered: the order goes when its customer is deleted.
    #[model(foreign_key = Customer, on_delete = cascade)]
    pub customer_id: i64,
    /// Where the confirmation goes.
    pub email: String,
    /// What: a product with orders cannot be deleted.
    #[model(foreign_key = Product, on_delete = protect)]
    pub product_id: i64,
    /// How many.
    pub quantity: i64,
    /// Price of the order, in cents.
    pub total_cents: i64,
    /// Set when the payment signal arrives.
    pub paid: bool,
}

/// The open invoice of an unpaid order, kept by a `post_save` receiver of `Order`: opened when
/// the order is placed, deleted when it is paid. While it exists its customer cannot be deleted.
#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "invoices")]
pub struct Invoice {
    /// Generated key.
    #[model(primary_key)]
    pub id: Option<i64>,
    /// Who owes: a customer with an open invoice cannot be deleted.
    #[model(foreign_key = Customer, on_delete = protect)]
    pub customer_id: i64,
    /// For which order: the invoice goes when its order is deleted.
    #[model(foreign_key = Order, on_delete = cascade)]
    pub order_id: i64,
}

/// One row of the audit log: who did what, when.
#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "audit_log")]
pub struct AuditEntry {
    /// Generated key.
    #[model(primary_key)]
    pub id: Option<i64>,
    /// Who (the acting user of the task).
    pub actor: String,
    /// `created`, `updated` or `deleted`.
    pub action: String,
    /// The model's name.
    pub model: String,
    /// The object's key, as JSON.
    pub object_pk: String,
    /// The object's fields, as JSON.
    pub data: String,
    /// When, Unix seconds.
    pub at: i64,
}

/// A blog post.
#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "posts")]
pub struct Post {
    /// Generated key.
    #[model(primary_key)]
    pub id: Option<i64>,
    /// Title.
    pub title: String,
}

/// A tag, with the number of posts carrying it kept by an `m2m_changed` receiver.
#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "tags")]
pub struct Tag {
    /// Generated key.
    #[model(primary_key)]
    pub id: Option<i64>,
    /// Name.
    pub name: String,
    /// Posts tagged with it.
    pub post_count: i64,
}

signals_orm::many_to_many! {
    /// Tags of posts: the `m2m_changed` sender.
    pub struct PostTags(Post => "post_id", Tag => "tag_id") in "post_tags";
}

/// Now, in Unix seconds.
#[must_use]
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `12000` cents as `"120.00"`.
#[must_use]
pub fn euros(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, (cents % 100).abs())
}
