//! The ledger's vocabulary and its verification rules: hashes, keys and signatures, the canonical
//! encoding, transactions, blocks, commit certificates, validator sets, Merkle trees and proofs,
//! and the store traits. Pure: no IO, no clock, no randomness.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic))]

pub mod builder;
pub mod codec;
pub mod crypto;
pub mod error;
pub mod hash;
pub mod limits;
pub mod merkle;
pub mod proof;
pub mod store;
pub mod types;

pub use codec::Canonical;
pub use crypto::{verify_batch, PublicKey, Signature, SigningKey};
pub use error::LedgerError;
pub use hash::{Domain, Hash};
pub use merkle::{ConsistencyProof, HistoryAccumulator, InclusionProof};
pub use proof::TxInclusionBundle;
pub use store::{
    BlockCommit, ChainHead, IndexEntry, LedgerRead, LedgerWrite, MemStore, StateWrite, StoreError,
    TxLocation,
};
pub use types::{
    vote_signing_digest, Block, BlockHeader, CommitCertificate, CommitSignature, Genesis,
    Transaction, Validator, ValidatorSet, VoteKind,
};
