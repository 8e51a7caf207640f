//! The main job: a realistic session of a small shop, end to end, on an SQLite file it creates
//! (or PostgreSQL with `DATABASE_URL`): customers register, profiles appear, names are
//! normalised, products with images are added and removed, orders are placed (one fails for
//! lack of stock), a customer with an unpaid order cannot be deleted, payments succeed, then
//! deleting that customer takes their profile and order with it (cascade), users log in and
//! out, tags change, a product cache is invalidated after each COMMIT, sales are counted. The
//! emails and the sales counts are durable jobs, run by the shop's worker inside this program
//! (on the same database: SQLite, or PostgreSQL with `DATABASE_URL`) as the session goes; the
//! session waits until they all ran. Prints the ordered trace of every signal and receiver,
//! then a summary with the jobs enqueued, run, retried and failed. Each run starts from a fresh
//! database.
//!
//! `cargo run -p examples --example shop`

use examples::run::Run;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), examples::Error> {
    let run = Run::program("shop").await?;
    let summary = examples::shop::run(&run).await?;
    println!("\nemails are in {}", run.outbox.display());
    // Last, for CI's `tail -n 14`: the summary's header and its 13 lines, the same on every
    // run (the jobs all ran before the summary is taken).
    println!("\n== summary ({})\n{summary}", run.db.backend());
    Ok(())
}
