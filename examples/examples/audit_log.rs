//! Use case 6: an audit log that watches every model (receivers without a sender, getting
//! `dyn AnyModel`) and writes who/what/when rows in the same transaction as the change.
//!
//! `cargo run -p examples --example audit_log`

use examples::run::Run;
use examples::usecases;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), examples::Error> {
    let run = Run::program("audit_log").await?;
    let rows = run.act("auditor", usecases::audit_log(&run)).await?;
    println!("\naudit log (who what which):");
    for row in rows {
        println!("  {row}");
    }
    Ok(())
}
