//! Use case 9: tags on posts; an `m2m_changed` receiver keeps each tag's post count right
//! through add, remove (of a tag never linked, too), reverse add and clear.
//!
//! `cargo run -p examples --example tag_counts`

use examples::run::Run;
use examples::usecases;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), examples::Error> {
    let run = Run::program("tag_counts").await?;
    let counts = run.act("editor", usecases::tag_counts(&run)).await?;
    println!("\nposts per tag: {counts:?}");
    Ok(())
}
