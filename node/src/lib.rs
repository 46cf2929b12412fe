//! The PharmaLink node: the only crate that performs IO (storage, network, clock).
#![forbid(unsafe_code)]

pub mod store;
