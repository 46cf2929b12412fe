//! The deterministic application the node executes committed blocks with.
//!
//! Until the contracts (issue 6) plug in behind the same `Application` trait, the node runs
//! `NonceApp`: it admits a transaction when its signer is admitted by the genesis and its nonce
//! is the signer's next one, records the outcome of every transaction (a rejection is a result,
//! not a consensus failure), and chains a state root over those outcomes.

use borsh::{BorshDeserialize, BorshSerialize};
use pharmalink_ledger::{
    Block, Domain, Hash, IndexEntry, LedgerRead, PublicKey, StateWrite, StoreError,
};
use std::collections::{BTreeMap, BTreeSet};

/// Index holding each committed transaction's outcome, by transaction hash.
pub const TX_RESULT_INDEX: &str = "tx_result";
const NONCE_PREFIX: &[u8] = b"nonce/";
const STATE_ROOT_KEY: &[u8] = b"app/state_root";

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum TxOutcome {
    Accepted,
    Rejected { code: String, reason: String },
}

pub struct BlockOutcome {
    pub state_writes: Vec<StateWrite>,
    pub index_entries: Vec<IndexEntry>,
    pub results: Vec<TxOutcome>,
    /// The state root after this block: the next block's header carries it.
    pub state_root: Hash,
}

pub trait Application: Send {
    /// The state root after the last executed block.
    fn state_root(&self, store: &dyn LedgerRead) -> Result<Hash, StoreError>;
    /// The nonce the chain accepts next from `signer`.
    fn next_nonce(&self, store: &dyn LedgerRead, signer: &PublicKey) -> Result<u64, StoreError>;
    /// Executes a decided block against the committed state. Deterministic.
    fn execute(&self, store: &dyn LedgerRead, block: &Block) -> Result<BlockOutcome, StoreError>;
}

pub struct NonceApp {
    admitted: BTreeSet<PublicKey>,
}

impl NonceApp {
    pub fn new(admitted: BTreeSet<PublicKey>) -> NonceApp {
        NonceApp { admitted }
    }

    fn nonce_key(signer: &PublicKey) -> Vec<u8> {
        [NONCE_PREFIX, &signer.0].concat()
    }
}

/// The state root of a fresh chain.
pub fn genesis_state_root(store: &dyn LedgerRead) -> Hash {
    Domain::State.hash(&store.genesis().hash().0)
}

impl Application for NonceApp {
    fn state_root(&self, store: &dyn LedgerRead) -> Result<Hash, StoreError> {
        match store.state(STATE_ROOT_KEY)? {
            Some(bytes) => {
                let array: [u8; 32] = bytes.try_into().map_err(|_| StoreError::Corrupt {
                    height: 0,
                    reason: "app state root is not 32 bytes".into(),
                })?;
                Ok(Hash(array))
            }
            None => Ok(genesis_state_root(store)),
        }
    }

    fn next_nonce(&self, store: &dyn LedgerRead, signer: &PublicKey) -> Result<u64, StoreError> {
        Ok(match store.state(&Self::nonce_key(signer))? {
            Some(bytes) => {
                u64::from_le_bytes(bytes.try_into().map_err(|_| StoreError::Corrupt {
                    height: 0,
                    reason: "nonce is not 8 bytes".into(),
                })?)
            }
            None => 0,
        })
    }

    fn execute(&self, store: &dyn LedgerRead, block: &Block) -> Result<BlockOutcome, StoreError> {
        let mut next: BTreeMap<PublicKey, u64> = BTreeMap::new();
        let mut results = Vec::with_capacity(block.txs.len());
        let mut index_entries = Vec::with_capacity(block.txs.len());
        let mut root = Domain::State.hasher();
        root.update(&self.state_root(store)?.0);
        root.update(&block.hash().0);
        for tx in &block.txs {
            let outcome = if !self.admitted.contains(&tx.signer) {
                TxOutcome::Rejected {
                    code: "signer_not_admitted".into(),
                    reason: format!("signer {} is not admitted", tx.signer),
                }
            } else {
                let expected = match next.get(&tx.signer) {
                    Some(n) => *n,
                    None => self.next_nonce(store, &tx.signer)?,
                };
                if tx.nonce == expected {
                    next.insert(tx.signer, expected + 1);
                    TxOutcome::Accepted
                } else {
                    TxOutcome::Rejected {
                        code: "bad_nonce".into(),
                        reason: format!(
                            "nonce {} but the signer's next nonce is {expected}",
                            tx.nonce
                        ),
                    }
                }
            };
            let encoded =
                borsh::to_vec(&outcome).map_err(|e| StoreError::Backend(e.to_string()))?;
            root.update(&encoded);
            index_entries.push(IndexEntry {
                index: TX_RESULT_INDEX.into(),
                key: tx.hash().0.to_vec(),
                value: encoded,
            });
            results.push(outcome);
        }
        let state_root = Hash(*root.finalize().as_bytes());
        let mut state_writes: Vec<StateWrite> = next
            .iter()
            .map(|(signer, n)| StateWrite {
                key: Self::nonce_key(signer),
                value: Some(n.to_le_bytes().to_vec()),
            })
            .collect();
        state_writes.push(StateWrite {
            key: STATE_ROOT_KEY.to_vec(),
            value: Some(state_root.0.to_vec()),
        });
        Ok(BlockOutcome {
            state_writes,
            index_entries,
            results,
            state_root,
        })
    }
}

/// The recorded outcome of a committed transaction.
pub fn tx_outcome(store: &dyn LedgerRead, tx_hash: &Hash) -> Result<Option<TxOutcome>, StoreError> {
    let found = store.index_scan(TX_RESULT_INDEX, &tx_hash.0, 1)?;
    match found.into_iter().next() {
        Some((key, value)) if key == tx_hash.0 => {
            Ok(Some(borsh::from_slice(&value).map_err(|e| {
                StoreError::Corrupt {
                    height: 0,
                    reason: format!("tx outcome: {e}"),
                }
            })?))
        }
        _ => Ok(None),
    }
}
