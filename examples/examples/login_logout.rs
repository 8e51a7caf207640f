//! Use case 8: login and logout as custom signals (`user_logged_in`, `user_logged_out`)
//! whose receivers update the customer's `last_login` and `online` fields.
//!
//! `cargo run -p examples --example login_logout`

use examples::run::Run;
use examples::usecases;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), examples::Error> {
    let run = Run::program("login_logout").await?;
    let customer = usecases::register(&run.db, "grace hopper", "grace@example.com").await?;
    let (logged_in, logged_out) = run
        .act("grace", usecases::login_logout(&run, &customer))
        .await?;
    println!(
        "\nafter login: online={} last_login={:?}",
        logged_in.online, logged_in.last_login
    );
    println!(
        "after logout: online={} last_login={:?}",
        logged_out.online, logged_out.last_login
    );
    Ok(())
}
