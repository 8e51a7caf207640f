// `Tx::on_commit` takes a closure of no arguments returning `()` / `Result<(), E>` or a
// future of one: a callback that wants an argument, or returns something else, is reported at
// the callback with the shapes it accepts.
use signals_orm::Tx;

async fn queue(tx: &mut Tx<sqlx::Sqlite>) {
    tx.on_commit(|id: i64| println!("{id}"));
    tx.on_commit(|| 42);
    tx.on_commit(|| async { 42 });
    // Accepted: sync, async, and a `Result`.
    tx.on_commit(|| println!("sent"));
    tx.on_commit(|| async { println!("sent") });
    tx.on_commit(|| Err::<(), _>("failed"));
}

fn main() {
    let _ = queue;
}
