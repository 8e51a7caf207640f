//! The shop over HTTP (`examples/src/web.rs`): register customers, add products, place and list
//! orders with a browser or curl, on a loopback port, until Ctrl-C (a graceful shutdown:
//! requests in flight are answered first). The request signals time every request: the
//! program logs each one (method, URI, status, duration) and each handler panic, and prints the
//! trace of every signal and receiver, the shop's (profiles, emails, stock, audit...) included.
//!
//! The database is the other programs' (a fresh SQLite file in the temporary folder
//! `signals-shop/web`, or PostgreSQL with `DATABASE_URL`), with a chair and a desk in stock.
//! `PORT` chooses the port (any free one by default).
//!
//! `cargo run -p examples --example web`

use examples::run::Run;
use examples::trace::Trace;
use examples::web::{self, App};
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), examples::Error> {
    // The signal trace, and on stdout `tracing`'s events: this crate's from INFO (the request
    // log), everyone's warnings and errors (receivers that failed after COMMIT, among others).
    let trace = Trace::printing();
    let shown = Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target("examples", LevelFilter::INFO);
    let subscriber = tracing_subscriber::registry()
        .with(trace.clone())
        .with(tracing_subscriber::fmt::layer().with_filter(shown));
    tracing::subscriber::set_global_default(subscriber)?;
    let run = Run::new(
        &std::env::temp_dir().join("signals-shop").join("web"),
        trace,
    )
    .await?;
    println!(
        "database: {} | folder: {}\n",
        run.db.backend(),
        run.dir.display()
    );
    let app = App::new(run.db.clone(), &run.outbox);
    let catalogue = web::add_catalogue(&app).await?;

    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port.parse().map_err(|e| format!("PORT={port}: {e}"))?,
        Err(_) => 0,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let chair = catalogue[0].id.unwrap_or_default();
    println!(
        "\nthe Signals Shop is at {base}/ (Ctrl-C stops it)\n\
         \n  curl -d name='ada lovelace' -d email=ada@example.com {base}/customers\
         \n  curl -H 'content-type: application/json' \
         -d '{{\"customer_id\": 1, \"product_id\": {chair}, \"quantity\": 2}}' {base}/orders\
         \n  curl {base}/orders\
         \n\nemails go to {}\n",
        run.outbox.display()
    );
    web::serve(listener, app, async {
        let _ = tokio::signal::ctrl_c().await;
        println!("\nCtrl-C: answering the requests in flight, then stopping");
    })
    .await?;
    println!("stopped; emails written: {:?}", run.emails()?);
    Ok(())
}
