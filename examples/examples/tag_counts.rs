//! Use case 9: tags on posts; an `m2m_changed` receiver keeps each tag's post count right
//! through add, remove (of a tag never linked, too), reverse add and clear. The use case is
//! `examples/src/usecases/tag_counts.rs`.
//!
//! Only this use case's receiver runs. Every receiver of the crate is linked into every
//! program, and creating the tags and posts sends their `post_save`, heard by `audit_log`;
//! this program mutes those (a task-local `Mute`, [`tag_counts::mute_others`]), and says at the
//! end that nothing else ran.
//!
//! `cargo run -p examples --example tag_counts`

use examples::run::Run;
use examples::usecases::tag_counts;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), examples::Error> {
    let run = Run::program("tag_counts").await?;
    let muted = tag_counts::mute_others();
    let counts = run
        .act("editor", muted.scope(tag_counts::run(&run)))
        .await?;
    println!("\nposts per tag: {counts:?}");
    run.print_others(
        "tag_counts",
        "the post_save of Tag and Post (audit_log) is muted",
    );
    Ok(())
}
