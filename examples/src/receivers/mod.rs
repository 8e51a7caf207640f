//! The shop's receivers, one module per use case. Registered at link time: there is no list of
//! them anywhere, and every program linking this crate gets all of them.

pub mod audit;
pub mod images;
pub mod naming;
pub mod orders;
pub mod payments;
pub mod profiles;
pub mod sessions;
pub mod tags;
pub mod welcome;
