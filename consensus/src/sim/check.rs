//! One checker per property, each a plain function over what the simulation recorded.

use pharmalink_ledger::{
    verify_batch, vote_signing_digest, Canonical, CommitCertificate, Genesis, Hash, PublicKey,
    Signature, VoteKind,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Property {
    /// No two honest nodes decide different blocks at one height.
    Agreement,
    /// Every block an honest node decides was proposed and is valid.
    Validity,
    /// Every certificate an honest node decides with has > 2/3 of the power of valid signatures.
    Certificate,
    /// Honest nodes that executed a height have the same state root.
    StateAgreement,
    /// After the last fault heals, every honest node keeps deciding within a bounded time.
    Liveness,
}

impl Property {
    pub fn is_safety(self) -> bool {
        self != Property::Liveness
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub property: Property,
    pub height: u64,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} violated at height {}: {}",
            self.property, self.height, self.detail
        )
    }
}

#[derive(Clone, Debug)]
pub struct Decision {
    pub node: usize,
    pub height: u64,
    pub block_hash: Hash,
    pub time_ms: u64,
    /// The state root after executing the block; None when the node could not append it.
    pub state_root: Option<Hash>,
    pub certificate: CommitCertificate,
    /// Why appending failed (chain or application rules), if it did.
    pub append_error: Option<String>,
}

/// What honest nodes did.
#[derive(Clone, Debug, Default)]
pub struct Record {
    /// Decisions of honest nodes, by height.
    pub decisions: BTreeMap<u64, Vec<Decision>>,
    /// Every block hash that appeared in a signed proposal anyone sent.
    pub proposed: BTreeSet<Hash>,
    /// Decision times of each honest node (empty vectors for Byzantine nodes).
    pub decision_times_ms: Vec<Vec<u64>>,
    pub honest: Vec<bool>,
    /// Final chain height of each node.
    pub final_heights: Vec<u64>,
}

pub fn check_agreement(record: &Record) -> Vec<Violation> {
    record
        .decisions
        .iter()
        .flat_map(|(height, decisions)| check_agreement_at(decisions, *height))
        .collect()
}

/// Agreement among the decisions recorded at one height.
pub fn check_agreement_at(decisions: &[Decision], height: u64) -> Vec<Violation> {
    let Some(first) = decisions.first() else {
        return Vec::new();
    };
    match decisions.iter().find(|d| d.block_hash != first.block_hash) {
        Some(other) => vec![Violation {
            property: Property::Agreement,
            height,
            detail: format!(
                "node {} decided {} but node {} decided {}",
                first.node,
                short(&first.block_hash),
                other.node,
                short(&other.block_hash)
            ),
        }],
        None => Vec::new(),
    }
}

pub fn check_validity(record: &Record) -> Vec<Violation> {
    let mut out = Vec::new();
    for (height, decisions) in &record.decisions {
        for d in decisions {
            if !record.proposed.contains(&d.block_hash) {
                out.push(Violation {
                    property: Property::Validity,
                    height: *height,
                    detail: format!(
                        "node {} decided {} which nobody proposed",
                        d.node,
                        short(&d.block_hash)
                    ),
                });
            }
            if let Some(error) = &d.append_error {
                out.push(Violation {
                    property: Property::Validity,
                    height: *height,
                    detail: format!(
                        "node {} decided an invalid block {}: {error}",
                        d.node,
                        short(&d.block_hash)
                    ),
                });
            }
        }
    }
    out
}

/// Verifies with ledger's own code, independent of the engines' verification path and cache:
/// the certificates' shape and quorum with `CommitCertificate::check` and the validator set's
/// powers, and all distinct signatures of one height in one `ledger::verify_batch` (ed25519
/// batch verification); if a batch fails, each certificate is verified with
/// `CommitCertificate::verify` to name the culprit.
pub fn check_certificates(record: &Record, genesis: &Genesis) -> Vec<Violation> {
    let mut out = Vec::new();
    let validators = &genesis.validators;
    for (height, decisions) in &record.decisions {
        let mut wrong = |node: usize, detail: String| {
            out.push(Violation {
                property: Property::Certificate,
                height: *height,
                detail: format!("node {node}: {detail}"),
            })
        };
        // (validator, digest, signature) triples to verify, each once.
        let mut distinct: BTreeSet<(u16, [u8; 32], [u8; 64])> = BTreeSet::new();
        let mut well_formed = Vec::new();
        for d in decisions {
            let c = &d.certificate;
            if c.height != *height || c.block_hash != d.block_hash {
                wrong(
                    d.node,
                    format!(
                        "certificate is for height {} block {}",
                        c.height,
                        short(&c.block_hash)
                    ),
                );
                continue;
            }
            if let Err(e) = c.check() {
                wrong(d.node, e.to_string());
                continue;
            }
            let mut power: u64 = 0;
            let mut in_set = true;
            for signature in &c.signatures {
                match validators
                    .validators
                    .get(signature.validator_index as usize)
                {
                    Some(v) => power += v.voting_power,
                    None => in_set = false,
                }
            }
            if !in_set || power < validators.quorum_power() {
                wrong(
                    d.node,
                    format!("signers outside the set or power {power} below the quorum"),
                );
                continue;
            }
            let digest = vote_signing_digest(
                &genesis.chain_id,
                VoteKind::Precommit,
                c.height,
                c.round,
                Some(c.block_hash),
            );
            for signature in &c.signatures {
                distinct.insert((signature.validator_index, digest.0, signature.signature.0));
            }
            well_formed.push(d);
        }
        let items: Vec<(&[u8], PublicKey, Signature)> = distinct
            .iter()
            .map(|(index, digest, signature)| {
                (
                    digest.as_slice(),
                    validators.validators[*index as usize].public_key,
                    Signature(*signature),
                )
            })
            .collect();
        if verify_batch("commit certificate", &items).is_err() {
            for d in well_formed {
                if let Err(e) = d.certificate.verify(&genesis.chain_id, validators) {
                    wrong(d.node, e.to_string());
                }
            }
        }
    }
    out
}

pub fn check_state_agreement(record: &Record) -> Vec<Violation> {
    let mut out = Vec::new();
    for (height, decisions) in &record.decisions {
        let roots: BTreeSet<Hash> = decisions.iter().filter_map(|d| d.state_root).collect();
        if roots.len() > 1 {
            out.push(Violation {
                property: Property::StateAgreement,
                height: *height,
                detail: format!("{} different state roots among honest nodes", roots.len()),
            });
        }
    }
    out
}

/// After `heal_ms` every honest node decides at least once per `gap_ms_max` until it reaches
/// `target_height`, and it reaches it by `end_ms`.
pub fn check_liveness(
    record: &Record,
    heal_ms: u64,
    gap_ms_max: u64,
    end_ms: u64,
    target_height: u64,
) -> Vec<Violation> {
    let mut out = Vec::new();
    for (node, times) in record.decision_times_ms.iter().enumerate() {
        if !record.honest.get(node).copied().unwrap_or(false) {
            continue;
        }
        let height = record.final_heights.get(node).copied().unwrap_or(0);
        let mut last = heal_ms;
        for t in times.iter().filter(|t| **t > heal_ms) {
            if t - last > gap_ms_max {
                out.push(Violation {
                    property: Property::Liveness,
                    height,
                    detail: format!("node {node} went {} ms without deciding after the faults healed at {heal_ms} ms", t - last),
                });
                return out;
            }
            last = *t;
        }
        if height < target_height {
            out.push(Violation {
                property: Property::Liveness,
                height,
                detail: format!(
                    "node {node} reached height {height} of {target_height}; its last decision was at {last} ms, the run ended at {end_ms} ms (faults healed at {heal_ms} ms)"
                ),
            });
        }
    }
    out
}

pub fn short(hash: &Hash) -> String {
    hash.to_hex()[..8].to_string()
}
