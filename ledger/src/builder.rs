//! Builds valid signed chains from keys the caller holds: used by the ledger demo, benchmarks,
//! store tests and simulations. Deterministic: the same keys and inputs give the same chain.

use crate::crypto::SigningKey;
use crate::error::LedgerError;
use crate::hash::Hash;
use crate::merkle::{self, HistoryAccumulator};
use crate::store::{BlockCommit, ChainHead};
use crate::types::{
    vote_signing_digest, Block, BlockHeader, CommitCertificate, CommitSignature, Genesis,
    Transaction, Validator, ValidatorSet, VoteKind,
};

/// A genesis for `validator_keys` with equal voting power.
pub fn genesis(
    chain_id: &str,
    genesis_time_ms: u64,
    validator_keys: &[SigningKey],
    app_state: Vec<u8>,
) -> Result<Genesis, LedgerError> {
    let validators = ValidatorSet::new(
        validator_keys
            .iter()
            .map(|k| Validator {
                public_key: k.public_key(),
                voting_power: 1,
            })
            .collect(),
    )?;
    Ok(Genesis {
        chain_id: chain_id.to_owned(),
        genesis_time_ms,
        validators,
        app_state,
    })
}

/// Extends a chain with blocks certified by the validators whose keys it holds.
pub struct ChainBuilder {
    pub genesis: Genesis,
    validator_keys: Vec<SigningKey>,
    head: Option<ChainHead>,
}

impl ChainBuilder {
    /// `validator_keys` must be the keys of `genesis.validators`, in the same order.
    pub fn new(
        genesis: Genesis,
        validator_keys: Vec<SigningKey>,
    ) -> Result<ChainBuilder, LedgerError> {
        let same = validator_keys.len() == genesis.validators.len()
            && validator_keys
                .iter()
                .zip(&genesis.validators.validators)
                .all(|(k, v)| k.public_key() == v.public_key);
        if !same {
            return Err(LedgerError::invalid(
                "chain builder",
                "validator_keys",
                "do not match the genesis validator set",
            ));
        }
        Ok(ChainBuilder {
            genesis,
            validator_keys,
            head: None,
        })
    }

    /// Continues after an existing head (e.g. a reopened store).
    pub fn resume(&mut self, head: Option<ChainHead>) {
        self.head = head;
    }

    pub fn head(&self) -> Option<&ChainHead> {
        self.head.as_ref()
    }

    /// The next block over `txs`, certified by the smallest prefix of validators holding a quorum.
    pub fn next_block(
        &mut self,
        txs: Vec<Transaction>,
        timestamp_ms: u64,
        state_root: Hash,
    ) -> Result<BlockCommit, LedgerError> {
        let (height, previous_block_hash, history) = match &self.head {
            Some(h) => (h.height + 1, h.block_hash, h.history.clone()),
            None => (1, self.genesis.hash(), HistoryAccumulator::default()),
        };
        let tx_hashes: Vec<Hash> = txs.iter().map(Transaction::hash).collect();
        let proposer_index = (height % self.validator_keys.len() as u64) as usize;
        let header = BlockHeader {
            chain_id: self.genesis.chain_id.clone(),
            height,
            round: 0,
            timestamp_ms,
            previous_block_hash,
            tx_root: merkle::root(&tx_hashes),
            tx_count: txs.len() as u32,
            state_root,
            history_root: history.root(),
            proposer: self.validator_keys[proposer_index].public_key(),
            validator_set_hash: self.genesis.validators.hash(),
        };
        let block = Block { header, txs };
        let certificate = self.certify(&block.header);
        let mut history = history;
        let block_hash = block.hash();
        history.append(&block_hash);
        self.head = Some(ChainHead {
            height,
            block_hash,
            timestamp_ms,
            history,
        });
        Ok(BlockCommit {
            block,
            certificate,
            state_writes: vec![],
            index_entries: vec![],
        })
    }

    /// A certificate for `header` signed by the first validators that reach a quorum.
    pub fn certify(&self, header: &BlockHeader) -> CommitCertificate {
        let block_hash = header.hash();
        let digest = vote_signing_digest(
            &header.chain_id,
            VoteKind::Precommit,
            header.height,
            header.round,
            Some(block_hash),
        );
        let quorum = self.genesis.validators.quorum_power();
        let mut power = 0;
        let mut signatures = Vec::new();
        for (index, key) in self.validator_keys.iter().enumerate() {
            if power >= quorum {
                break;
            }
            power += self.genesis.validators.validators[index].voting_power;
            signatures.push(CommitSignature {
                validator_index: index as u16,
                signature: key.sign(digest.as_bytes()),
            });
        }
        CommitCertificate {
            height: header.height,
            round: header.round,
            block_hash,
            signatures,
        }
    }
}
