//! Use case 2: capitalise a customer's name before it is saved: a `pre_save` receiver changes
//! the instance, and the changed values are what the INSERT writes. The use case is
//! `examples/src/usecases/capitalize_name.rs`.
//!
//! Only this use case's receiver runs. Every receiver of the crate is linked into every
//! program, and registering a customer also sends its `post_save`, heard by `create_profile`,
//! `audit_log` and `welcome_email`; this program mutes that signal (a task-local `Mute`,
//! [`capitalize_name::mute_others`]), and says at the end that nothing else ran.
//!
//! `cargo run -p examples --example capitalize_name`

use examples::run::Run;
use examples::usecases::capitalize_name;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), examples::Error> {
    let run = Run::program("capitalize_name").await?;
    let muted = capitalize_name::mute_others();
    let stored = run
        .act("signup-form", muted.scope(capitalize_name::run(&run)))
        .await?;
    println!(
        "\nsaved as {:?} <{}> (typed as \"  edsger   wybe DIJKSTRA \")",
        stored.name, stored.email
    );
    run.print_others(
        "capitalize_name",
        "the customer's post_save (create_profile, audit_log, welcome_email) is muted",
    );
    Ok(())
}
