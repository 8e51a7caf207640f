//! The main job: a whole session of the shop, with every use case, a signal trace and a
//! summary. Nothing is muted: every receiver hears every signal it listens to, as in a real
//! application.

use std::fmt;

use crate::Error;
use crate::on_db;
use crate::run::Run;
use crate::usecases::{
    audit_log, capitalize_name, create_profile, custom_signal, delete_customer, login_logout,
    order_creation, product_image_cleanup, tag_counts, welcome_email,
};

/// What a shop session left behind.
#[derive(Debug)]
pub struct Summary {
    /// Rows per table.
    pub rows: Vec<(&'static str, i64)>,
    /// Recipients of the emails written, sorted.
    pub emails: Vec<String>,
    /// Image files removed after their product was deleted.
    pub files_removed: usize,
    /// Lines of the signal trace.
    pub trace_lines: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "rows per table:")?;
        for (table, n) in &self.rows {
            writeln!(f, "  {table:<10} {n}")?;
        }
        writeln!(
            f,
            "emails written: {} ({})",
            self.emails.len(),
            self.emails.join(", ")
        )?;
        writeln!(f, "image files removed: {}", self.files_removed)?;
        write!(f, "signal trace: {} lines", self.trace_lines)
    }
}

/// Runs the session: registrations, products, orders, a customer's delete refused then
/// cascading, payments, logins, tags, audit.
///
/// # Errors
///
/// When a step that should succeed fails (the refused ones are part of the session).
pub async fn run(run: &Run) -> Result<Summary, Error> {
    let t = &run.trace;
    t.note(
        "== customers register (names normalised, profiles created, welcome emails after COMMIT)",
    );
    let customers = run.act("signup-form", welcome_email::run(run)).await?;
    let _ = run.act("signup-form", capitalize_name::run(run)).await?;
    t.note("\n== a registration whose profile is refused: nothing is kept, no email");
    let (_, refused) = run.act("signup-form", create_profile::run(run)).await?;
    t.note(&format!("   refused: {refused:#}"));
    t.note("\n== a product with an image is added, then removed (file deleted after COMMIT)");
    let image = run.act("admin", product_image_cleanup::run(run)).await?;
    let files_removed = usize::from(!image.exists_after_delete);
    t.note("\n== orders: one placed, one beyond the stock refused");
    let orders = run
        .act(&customers[0].name, order_creation::run(run))
        .await?;
    t.note(&format!("   refused: {:#}", orders.refused));
    t.note(
        "\n== the buyer cannot be deleted while the order is unpaid (its invoice protects them)",
    );
    let mut buyer = on_db!(&run.db, |pool| orders.placed.customer(pool).await)?;
    let refused = run
        .act("admin", delete_customer::refused(run, &mut buyer))
        .await?;
    t.note(&format!("   refused: {refused}"));
    t.note("\n== payment succeeds (custom signal), which closes the invoice");
    let (receipts, paid) = run
        .act("payment-gateway", custom_signal::run(run, &orders.placed))
        .await?;
    t.note(&format!(
        "   receipts printed: {receipts}, order paid: {paid}"
    ));
    t.note(
        "\n== the buyer is deleted: their profile and order go too (cascade), with their signals",
    );
    let deleted = run
        .act("admin", delete_customer::delete(run, &mut buyer))
        .await?;
    let per_model: Vec<String> = deleted
        .iter()
        .map(|(model, rows)| format!("{model} {rows}"))
        .collect();
    let product = on_db!(&run.db, |pool| orders.placed.product(pool).await)?;
    t.note(&format!(
        "   deleted {} rows: {}; {} in stock again: {}",
        deleted.total(),
        per_model.join(", "),
        product.name,
        product.stock
    ));
    t.note("\n== login and logout (custom signals)");
    run.act(&customers[1].name, login_logout::run(run, &customers[1]))
        .await?;
    t.note("\n== tags change on posts (m2m_changed keeps counts)");
    let counts = run.act("editor", tag_counts::run(run)).await?;
    t.note(&format!("   post counts: {counts:?}"));
    t.note("\n== audit log");
    let audit = run.act("auditor", audit_log::run(run)).await?;
    t.note(&format!(
        "   {} audit rows, e.g. {:?}",
        run.db.scalar("SELECT COUNT(*) FROM audit_log").await?,
        audit.last()
    ));
    Ok(Summary {
        rows: run.db.row_counts().await?,
        emails: run.emails()?,
        files_removed,
        trace_lines: t.lines().len(),
    })
}
