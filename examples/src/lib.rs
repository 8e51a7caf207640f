//! The Signals Shop: the models, receivers and use cases behind the programs in `examples/`.
//!
//! Every receiver lives in [`receivers`], one module per use case, registered at link time.
//! Each program in `examples/` runs one use case from [`usecases`]; `shop` runs them all as one
//! session. The tests in `examples/tests/` run the same functions and check their effects.

pub mod db;
pub mod mail;
pub mod models;
pub mod receivers;
pub mod run;
pub mod shop;
pub mod trace;
pub mod usecases;

/// The error of a use case.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
