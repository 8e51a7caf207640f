//! Two linked durable receivers given one name are refused (a job names its receiver, so a
//! worker could run either function for the other's jobs), even when they take the same
//! payload; one function declared for several signals is one receiver. The refusal is a panic
//! at the first lookup of linked receivers, so this file is a test binary of its own: its
//! receivers would make every lookup in another binary panic. Rules: `docs/durable.md`.

use signals_orm::durable::{self, Job};
use signals_orm::{Model, receiver};

#[derive(Model, sqlx::FromRow, serde::Serialize, serde::Deserialize, Clone, Debug)]
#[model(table = "orders")]
struct Order {
    #[model(primary_key)]
    id: Option<i64>,
    key: String,
}

/// One of the two functions named `shop.notify`, on the mail queue.
#[receiver(post_save, sender = Order, durable, queue = "mail", name = "shop.notify")]
fn mail_customer(job: Job<Order>) {
    let _ = job.instance.key;
}

/// The other, the same payload on another signal and queue.
#[receiver(post_delete, sender = Order, durable, queue = "sms", name = "shop.notify")]
fn text_customer(job: Job<Order>) {
    let _ = job.instance.key;
}

#[test]
fn two_functions_of_one_name_are_refused_at_the_first_lookup() {
    let panic = std::panic::catch_unwind(durable::receivers).expect_err("refused");
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    assert!(
        message.contains("two durable receivers are named `shop.notify`")
            && message.contains("mail_customer")
            && message.contains("text_customer")
            && message.contains("name = \""),
        "{message}"
    );
}
