//! The chain-link rules a decided block must satisfy before a store appends it: the same rules
//! as ledger's `store::validate_commit`, with one difference and one addition.
//!
//! Difference: ledger requires `certificate.round == header.round`. Tendermint decides a valid
//! value re-proposed in a later round (L16: proposal ← validValue) without changing it, so the
//! block's header keeps the round it was first proposed in while its certificate carries the
//! round of the deciding precommits. Here `certificate.round >= header.round` is required.
//! (Reported to the ledger owner: `validate_commit` needs the same relaxation, otherwise a node
//! cannot append a block decided after a re-proposal.)
//!
//! Addition: the certificate is checked through the host's `Verifier`, so the simulator can cache.

use crate::crypto::Verifier;
use crate::engine::verify_certificate;
use pharmalink_ledger::merkle::HistoryAccumulator;
use pharmalink_ledger::{Block, Canonical, ChainHead, CommitCertificate, Genesis};

/// All rules on the block itself and its link to `head` (the head before it); returns the new head.
pub fn check_link(
    genesis: &Genesis,
    head: Option<&ChainHead>,
    block: &Block,
) -> Result<ChainHead, String> {
    let header = &block.header;
    block.check().map_err(|e| e.to_string())?;
    let height = header.height;
    if header.chain_id != genesis.chain_id {
        return Err(format!(
            "block {height}: chain_id {:?} is not this chain's",
            header.chain_id
        ));
    }
    let (expected_height, previous_hash, previous_time, history) = match head {
        Some(head) => (
            head.height + 1,
            head.block_hash,
            head.timestamp_ms,
            head.history.clone(),
        ),
        None => (
            1,
            genesis.hash(),
            genesis.genesis_time_ms,
            HistoryAccumulator::default(),
        ),
    };
    if height != expected_height {
        return Err(format!("block {height}: expected height {expected_height}"));
    }
    if header.previous_block_hash != previous_hash {
        return Err(format!(
            "block {height}: previous_block_hash is not the head's"
        ));
    }
    if header.timestamp_ms < previous_time {
        return Err(format!(
            "block {height}: timestamp {} is before the previous block's {previous_time}",
            header.timestamp_ms
        ));
    }
    if header.history_root != history.root() {
        return Err(format!(
            "block {height}: history_root is not the root of the chain so far"
        ));
    }
    if header.validator_set_hash != genesis.validators.hash() {
        return Err(format!(
            "block {height}: validator_set_hash is not the genesis validator set's"
        ));
    }
    block.verify_tx_root().map_err(|e| e.to_string())?;
    let block_hash = header.hash();
    let mut history = history;
    history.append(&block_hash);
    Ok(ChainHead {
        height,
        block_hash,
        timestamp_ms: header.timestamp_ms,
        history,
    })
}

/// `check_link` plus the certificate: for this block, at its height, in a round no earlier than
/// the header's, with > 2/3 of the voting power of valid signatures.
pub fn check_decided<V: Verifier + ?Sized>(
    genesis: &Genesis,
    head: Option<&ChainHead>,
    block: &Block,
    certificate: &CommitCertificate,
    verifier: &V,
) -> Result<ChainHead, String> {
    let new_head = check_link(genesis, head, block)?;
    let height = block.header.height;
    if certificate.height != height
        || certificate.block_hash != new_head.block_hash
        || certificate.round < block.header.round
    {
        return Err(format!(
            "block {height}: certificate is for height {} round {} block {}, not this block (round {})",
            certificate.height, certificate.round, certificate.block_hash, block.header.round
        ));
    }
    verify_certificate(
        &genesis.chain_id,
        &genesis.validators,
        certificate,
        verifier,
    )
    .map_err(|e| format!("block {height}: certificate: {e}"))?;
    Ok(new_head)
}
