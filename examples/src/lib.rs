//! The Signals Shop: the models and the use cases behind the programs in `examples/`.
//!
//! Each use case is one module of [`usecases`] holding its receivers (registered at link time),
//! its custom signals if any, and the function that drives it. Each program in `examples/` runs
//! one use case; `shop` runs them all as one session ([`shop`]). The tests in `examples/tests/`
//! run the same functions and check their effects. The rest is shared: [`models`], [`db`],
//! [`mail`], [`jobs`] (the durable receivers' queues and the worker running them in-process),
//! [`trace`], [`run`] (what every program sets up) and [`seed`] (the default rows a
//! `post_migrate` receiver seeds).

pub mod db;
pub mod jobs;
pub mod mail;
pub mod models;
pub mod run;
pub mod seed;
pub mod shop;
pub mod trace;
pub mod usecases;
pub mod web;

/// The error of a use case.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
