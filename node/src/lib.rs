//! The PharmaLink node: the only crate that performs IO (storage, network, clock).
#![forbid(unsafe_code)]

pub mod app;
pub mod capture;
pub mod config;
pub mod genesis;
pub mod keys;
pub mod loadgen;
pub mod mempool;
pub mod metrics;
pub mod net;
pub mod peering;
pub mod runtime;
pub mod server;
pub mod store;
pub mod vault;
