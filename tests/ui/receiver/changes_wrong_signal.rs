// `Changes` is a payload of the save signals: a receiver of a delete taking it is told which
// signals give it, and what a delete's receivers take instead; also with the transaction, and
// when connected at runtime.
use signals_orm::model_signals::post_delete;
use signals_orm::{Changes, Model, Tx, receiver};

#[derive(Model, sqlx::FromRow)]
#[model(table = "orders")]
struct Order {
    #[model(primary_key)]
    id: Option<i64>,
    status: String,
}

#[receiver(post_delete, sender = Order)]
fn after_delete(_ev: Changes<'_, Order>) {}

#[receiver(pre_delete, sender = Order)]
fn before_delete(_ev: Changes<'_, Order>, _tx: &mut Tx<sqlx::Sqlite>) {}

fn main() {
    post_delete.connect(|_ev: Changes<'_, Order>| {}).forever();
}
