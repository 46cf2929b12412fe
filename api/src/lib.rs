//! The API boundary: HTTP wire shapes (and later gRPC) over what a node offers. Only this crate
//! knows JSON and HTTP; it converts to and from ledger and domain types explicitly. The node
//! implements `NodeApi`; the router never touches storage or consensus directly.
#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod confidential;
pub mod consumer;
pub mod courier_run;
pub mod dispatch;
pub mod dscsa;
pub mod epcis_api;
pub mod fhir;
pub mod grpc;
pub mod http;
pub mod limits;
pub mod log;
pub mod openapi;
pub mod pharmacy;
pub mod scan_page;
pub mod token;
pub mod tracking;

pub use http::{
    router, BlockView, NodeApi, StatusView, SubmitOutcome, TxsBodyFormat, SUBMIT_BODY_BYTES_MAX,
};
