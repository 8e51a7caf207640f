//! Use case 6: an audit log that watches every model (receivers without a sender, getting
//! `dyn AnyModel`) and writes who/what/when rows in the same transaction as the change. The use
//! case is `examples/src/usecases/audit_log.rs`.
//!
//! Receivers of other use cases run too, and the program names them at the end: every receiver
//! of the crate is linked into every program, and the customer's `pre_save` and `post_save`
//! are heard by `capitalize_name`, `create_profile` and `welcome_email`. The audit log hears
//! every `post_save`, so it cannot be muted: nothing is muted, and the profile created by
//! `create_profile` is audited too.
//!
//! `cargo run -p examples --example audit_log`

use examples::run::Run;
use examples::usecases::audit_log;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), examples::Error> {
    let run = Run::program("audit_log").await?;
    let rows = run.act("auditor", audit_log::run(&run)).await?;
    println!("\naudit log (who what which):");
    for row in rows {
        println!("  {row}");
    }
    run.print_others(
        "audit_log",
        "they hear the customer's pre_save and post_save, as the audit log does \
         (muting that would mute the audit too); the Profile row is create_profile's",
    );
    Ok(())
}
