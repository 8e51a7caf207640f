//! Use case 4: create a profile when a customer is created, in the same transaction
//! (`post_save` taking the transaction), and show that a failure rolls both rows back.
//!
//! `cargo run -p examples --example create_profile`

use examples::run::Run;
use examples::usecases;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), examples::Error> {
    let run = Run::program("create_profile").await?;
    let (customer, refused) = run
        .act("signup-form", usecases::profile_in_same_transaction(&run))
        .await?;
    println!(
        "\nregistered {} with a profile; refused: {refused}",
        customer.name
    );
    let (customers, profiles) = (
        run.db.scalar("SELECT COUNT(*) FROM customers").await?,
        run.db.scalar("SELECT COUNT(*) FROM profiles").await?,
    );
    println!("customers: {customers}, profiles: {profiles} (the refused one left neither)");
    Ok(())
}
