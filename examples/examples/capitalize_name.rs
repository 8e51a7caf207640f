//! Use case 2: capitalise a customer's name before it is saved: a `pre_save` receiver changes
//! the instance, and the changed values are what the INSERT writes.
//!
//! `cargo run -p examples --example capitalize_name`

use examples::run::Run;
use examples::usecases;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), examples::Error> {
    let run = Run::program("capitalize_name").await?;
    let stored = run
        .act("signup-form", usecases::capitalize_name(&run))
        .await?;
    println!(
        "\nsaved as {:?} <{}> (typed as \"  edsger   wybe DIJKSTRA \")",
        stored.name, stored.email
    );
    Ok(())
}
