//! PharmaLink consensus: a Tendermint-style BFT protocol (Buchman, Kwon, Milosevic, "The latest
//! gossip on BFT consensus", arXiv:1807.04938, Algorithm 1) as a sans-IO state machine, and a
//! deterministic simulator that drives whole validator sets through faults from one seed.
//!
//! No IO, no clock, no randomness outside the seeded simulator, no threads. See README.md for the
//! protocol, the line-by-line mapping to the paper and the safety argument.
//!
//! - `state_machine`: one height's round state, the paper's rules as a pure `apply`.
//! - `engine`: the driver the host talks to: `Input`s in, `Effect`s out.
//! - `votes`, `proposer`, `types`, `crypto`: tallies, weighted proposer rotation, messages, the
//!   host's `Signer`/`Verifier`.
//! - `chain`: the chain-link check the simulator's stores apply to decided blocks.
//! - `sim`: the deterministic simulator and its property checkers.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic))]

pub mod chain;
pub mod crypto;
pub mod engine;
pub mod proposer;
pub mod sim;
pub mod state_machine;
pub mod types;
pub mod votes;

pub use crypto::{Ed25519Verifier, Signer, Verifier};
pub use engine::{
    verify_certificate, ChainTip, Config, Effect, Engine, Input, SafetyState, Timeout,
    TimeoutConfig, TimeoutKind,
};
pub use types::{
    Evidence, Height, Message, Proposal, Round, SignedProposal, SignedVote, Step, ValidatorIndex,
    Vote,
};
