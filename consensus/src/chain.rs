//! The chain-link rules a decided block must satisfy before a store appends it: ledger's own
//! (`store::validate_link`: limits, chain id, height, previous hash, timestamp, history root,
//! validator set, tx root), and the certificate checked through the host's `Verifier` (so the
//! simulator can cache verifications) in a round no earlier than the header's — Tendermint
//! decides a valid value re-proposed in a later round unchanged (L16), so the certificate may
//! carry a later round than the header; ledger's `validate_commit` accepts the same.

use crate::crypto::Verifier;
use crate::engine::verify_certificate;
use pharmalink_ledger::store::validate_link;
use pharmalink_ledger::{Block, ChainHead, CommitCertificate, Genesis};

/// All rules on the block itself and its link to `head` (the head before it); returns the new head.
pub fn check_link(
    genesis: &Genesis,
    head: Option<&ChainHead>,
    block: &Block,
) -> Result<ChainHead, String> {
    validate_link(genesis, head, block)
        .map(|validated| validated.head)
        .map_err(|e| e.to_string())
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
