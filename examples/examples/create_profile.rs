//! Use case 4: create a profile when a customer is created, in the same transaction
//! (`post_save` taking the transaction), and show that a failure rolls both rows back. The use
//! case is `examples/src/usecases/create_profile.rs`.
//!
//! Receivers of other use cases run too, and the program names them at the end: every receiver
//! of the crate is linked into every program, and registering a customer sends its `pre_save`
//! (heard by `capitalize_name`) and its `post_save`, which `create_profile` listens to as
//! `audit_log` and `welcome_email` do, so it cannot be muted: nothing is muted. The refused
//! registration's welcome email job, enqueued in its transaction, is rolled back with it: the
//! shop's worker, running in this program, writes the accepted customer's email only.
//!
//! `cargo run -p examples --example create_profile`

use examples::run::Run;
use examples::usecases::create_profile;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), examples::Error> {
    let run = Run::program("create_profile").await?;
    let (registered, _) = run
        .with_worker(run.act("signup-form", create_profile::run(&run)))
        .await?;
    let (customer, refused) = registered?;
    println!(
        "\nregistered {} with a profile; refused: {refused:#}",
        customer.name
    );
    let (customers, profiles) = (
        run.db.scalar("SELECT COUNT(*) FROM customers").await?,
        run.db.scalar("SELECT COUNT(*) FROM profiles").await?,
    );
    println!("customers: {customers}, profiles: {profiles} (the refused one left neither)");
    println!("emails to {:?} (none for the refused one)", run.emails()?);
    run.print_others(
        "create_profile",
        "they hear the customer's pre_save, or its post_save as create_profile does \
         (muting that would mute the profile too)",
    );
    Ok(())
}
