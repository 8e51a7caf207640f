//! Use case 8: login and logout as custom signals (`user_logged_in`, `user_logged_out`)
//! whose receivers update the customer's `last_login` and `online` fields. The use case is
//! `examples/src/usecases/login_logout.rs`.
//!
//! Only this use case's receivers run. Every receiver of the crate is linked into every
//! program, and registering the customer (and the receivers' updates of it) sends the
//! customer's `pre_save` and `post_save`, heard by `capitalize_name`, `create_profile`,
//! `audit_log` and `welcome_email`; this program mutes those (a task-local `Mute`,
//! [`login_logout::mute_others`]), and says at the end that nothing else ran.
//!
//! `cargo run -p examples --example login_logout`

use examples::run::Run;
use examples::usecases::{login_logout, register};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), examples::Error> {
    let run = Run::program("login_logout").await?;
    let muted = login_logout::mute_others();
    let customer = muted
        .clone()
        .scope(register(&run.db, "grace hopper", "grace@example.com"))
        .await?;
    let (logged_in, logged_out) = run
        .act("grace", muted.scope(login_logout::run(&run, &customer)))
        .await?;
    println!(
        "\nafter login: online={} last_login={:?}",
        logged_in.online, logged_in.last_login
    );
    println!(
        "after logout: online={} last_login={:?}",
        logged_out.online, logged_out.last_login
    );
    run.print_others(
        "login_logout",
        "the customer's pre_save and post_save (capitalize_name, create_profile, audit_log, \
         welcome_email) are muted",
    );
    Ok(())
}
