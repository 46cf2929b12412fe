#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![cfg_attr(test, allow(clippy::unwrap_used))]
//! PharmaLink contracts: pure (no IO) business modules.
//!
//! - [`gs1`]: GS1 identifiers, the application-identifier table generated from the GS1 Barcode
//!   Syntax Dictionary, element strings, scan data, GS1 Digital Link URIs, EPC URNs and dates.
//! - [`epcis`]: the EPCIS 2.0 event model, JSON-LD and XML bindings, validation and the CBV 2.0
//!   event hash.
//! - [`route`]: last-mile route optimisation (a courier's multi-stop run: haversine or given
//!   distances, 2-opt/Or-opt iterated local search, time windows and cold-chain priority as
//!   penalties; deterministic work budget).

pub mod coldchain;
pub mod contract;
pub mod custody;
pub mod epcis;
pub mod gs1;
pub mod iam;
pub mod proof;
pub mod route;
pub mod rx;
