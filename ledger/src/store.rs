//! What a ledger store holds and the rules for appending to it. The store traits are the
//! boundary between the pure core and a storage engine: `MemStore` here serves simulations and
//! tests; node/ implements the same traits on RocksDB.

use crate::codec::{encode_unchecked, Canonical};
use crate::error::LedgerError;
use crate::hash::{Domain, Hash};
use crate::merkle::HistoryAccumulator;
use crate::types::{Block, BlockHeader, CommitCertificate, Genesis, Transaction};
use borsh::{BorshDeserialize, BorshSerialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use thiserror::Error;

/// Longest application index name, in bytes.
pub const INDEX_NAME_BYTES_MAX: usize = 32;
/// Longest state or index key, in bytes.
pub const STATE_KEY_BYTES_MAX: usize = 1024;
/// Largest state or index value, in bytes.
pub const STATE_VALUE_BYTES_MAX: usize = 1024 * 1024;
/// State writes plus index entries in one block commit.
pub const COMMIT_WRITES_MAX: usize = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TxLocation {
    pub height: u64,
    pub index: u32,
}

/// The last committed block, and the history tree over all block hashes up to it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ChainHead {
    pub height: u64,
    pub block_hash: Hash,
    pub timestamp_ms: u64,
    pub history: HistoryAccumulator,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateWrite {
    pub key: Vec<u8>,
    /// `None` deletes the key.
    pub value: Option<Vec<u8>>,
}

/// An entry of an application-defined secondary index (by EPC, lot, party…).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// The index's name: borrowed when it is a constant (each entry of a block would otherwise
    /// allocate a copy of it).
    pub index: Cow<'static, str>,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// Deletes the key (the value is then empty): for projections such as on-hand
    /// inventory, whose entries come and go.
    pub remove: bool,
}

impl IndexEntry {
    pub fn put(index: impl Into<Cow<'static, str>>, key: Vec<u8>, value: Vec<u8>) -> IndexEntry {
        IndexEntry {
            index: index.into(),
            key,
            value,
            remove: false,
        }
    }

    pub fn removal(index: impl Into<Cow<'static, str>>, key: Vec<u8>) -> IndexEntry {
        IndexEntry {
            index: index.into(),
            key,
            value: Vec::new(),
            remove: true,
        }
    }
}

/// Answers `keys`, in their order, from a layer of writes over a base: `written(key)` is the
/// layer's answer for a key it holds (`Some(None)`: deleted in the layer); the other keys are
/// read from the base in one batch (`read`, skipped when there are none).
pub fn layered_reads<E>(
    keys: &[&[u8]],
    written: impl Fn(&[u8]) -> Option<Option<Vec<u8>>>,
    read: impl FnOnce(&[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, E>,
) -> Result<Vec<Option<Vec<u8>>>, E> {
    let layered: Vec<Option<Option<Vec<u8>>>> = keys.iter().map(|key| written(key)).collect();
    let unwritten: Vec<&[u8]> = keys
        .iter()
        .zip(&layered)
        .filter(|(_, value)| value.is_none())
        .map(|(key, _)| *key)
        .collect();
    let mut base = if unwritten.is_empty() {
        Vec::new()
    } else {
        read(&unwritten)?
    }
    .into_iter();
    Ok(layered
        .into_iter()
        .map(|value| value.unwrap_or_else(|| base.next().flatten()))
        .collect())
}

/// Everything one decided block changes; a store applies it atomically or not at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockCommit {
    pub block: Block,
    pub certificate: CommitCertificate,
    pub state_writes: Vec<StateWrite>,
    pub index_entries: Vec<IndexEntry>,
}

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("rejected: {0}")]
    Rejected(#[from] LedgerError),
    #[error("stored data is corrupt at height {height}: {reason}")]
    Corrupt { height: u64, reason: String },
    #[error("the store belongs to genesis {stored}, not {given}")]
    GenesisMismatch { stored: Hash, given: Hash },
    #[error("storage engine: {0}")]
    Backend(String),
}

pub trait LedgerRead {
    fn genesis(&self) -> &Genesis;
    fn head(&self) -> Result<Option<ChainHead>, StoreError>;
    fn header(&self, height: u64) -> Result<Option<BlockHeader>, StoreError>;
    fn block(&self, height: u64) -> Result<Option<Block>, StoreError>;
    fn certificate(&self, height: u64) -> Result<Option<CommitCertificate>, StoreError>;
    fn tx_location(&self, tx_hash: &Hash) -> Result<Option<TxLocation>, StoreError>;
    fn transaction(&self, location: TxLocation) -> Result<Option<Transaction>, StoreError>;
    fn state(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// [`LedgerRead::state`] of several keys, answered in their order (a store with a batched
    /// lookup overrides it).
    fn state_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        keys.iter().map(|key| self.state(key)).collect()
    }
    /// Entries of `index` whose key starts with `prefix`, in key order, at most `limit`.
    fn index_scan(
        &self,
        index: &str,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError>;
}

pub trait LedgerWrite: LedgerRead {
    /// Validates `commit` against the head (see `validate_commit`) and applies it atomically.
    fn append(&mut self, commit: &BlockCommit) -> Result<ChainHead, StoreError>;
}

/// The rules every store enforces before appending. Transaction signatures are not re-checked
/// here (the mempool and the proposal check did that, and it would cap throughput); the
/// certificate's signatures are. `verify_chain` re-checks everything.
pub fn validate_commit(
    genesis: &Genesis,
    head: Option<&ChainHead>,
    commit: &BlockCommit,
) -> Result<ChainHead, LedgerError> {
    Ok(validate_commit_detailed(genesis, head, commit, None)?.head)
}

/// What validation computed on the way, so a store need not encode or hash anything twice.
pub struct ValidatedCommit {
    /// The head after this block.
    pub head: ChainHead,
    /// Each transaction's canonical bytes, in block order.
    pub tx_bytes: Vec<Vec<u8>>,
    /// Each transaction's hash, in block order.
    pub tx_hashes: Vec<Hash>,
}

/// `validate_commit`, returning the transactions' canonical bytes and hashes too.
/// `tx_hashes`: the block's transaction hashes if the caller already computed them from these
/// very transactions (`Block::tx_hashes`); they are then only checked against the tx root.
pub fn validate_commit_detailed(
    genesis: &Genesis,
    head: Option<&ChainHead>,
    commit: &BlockCommit,
    tx_hashes: Option<Vec<Hash>>,
) -> Result<ValidatedCommit, LedgerError> {
    let validated = validate_link_hashed(genesis, head, &commit.block, tx_hashes)?;
    let header = &commit.block.header;
    let height = header.height;
    let link = |reason: String| LedgerError::ChainLink { height, reason };
    let cert = &commit.certificate;
    let block_hash = validated.head.block_hash;
    // A block re-proposed in a later round is decided unchanged: its header keeps the round it
    // was first proposed in, the certificate carries the deciding round (never earlier).
    if cert.height != height || cert.round < header.round || cert.block_hash != block_hash {
        return Err(link(format!(
            "certificate is for height {} round {} block {}, not this block (round {} hash {block_hash})",
            cert.height, cert.round, cert.block_hash, header.round
        )));
    }
    cert.verify(&genesis.chain_id, &genesis.validators)
        .map_err(|e| link(e.to_string()))?;
    if commit.state_writes.len() + commit.index_entries.len() > COMMIT_WRITES_MAX {
        return Err(link(format!(
            "more than {COMMIT_WRITES_MAX} state writes and index entries"
        )));
    }
    for w in &commit.state_writes {
        check_key_value(
            height,
            "state",
            &w.key,
            w.value.as_deref().unwrap_or_default(),
        )?;
    }
    for e in &commit.index_entries {
        if e.index.is_empty() || e.index.len() > INDEX_NAME_BYTES_MAX {
            return Err(link(format!(
                "index name {:?} must be 1 to {INDEX_NAME_BYTES_MAX} bytes",
                e.index
            )));
        }
        check_key_value(height, "index", &e.key, &e.value)?;
    }
    Ok(validated)
}

/// The rules on a block itself and on its link to `head` — limits, chain id, height, previous
/// hash, timestamp, history root, validator set, tx root — everything but the certificate.
/// Returns the head after the block, with the transactions' canonical bytes and hashes.
pub fn validate_link(
    genesis: &Genesis,
    head: Option<&ChainHead>,
    block: &Block,
) -> Result<ValidatedCommit, LedgerError> {
    validate_link_hashed(genesis, head, block, None)
}

/// [`validate_link`], with the transaction hashes as in [`validate_commit_detailed`].
pub fn validate_link_hashed(
    genesis: &Genesis,
    head: Option<&ChainHead>,
    block: &Block,
    tx_hashes: Option<Vec<Hash>>,
) -> Result<ValidatedCommit, LedgerError> {
    let header = &block.header;
    block.check()?;
    let height = header.height;
    let link = |reason: String| LedgerError::ChainLink { height, reason };
    if header.chain_id != genesis.chain_id {
        return Err(link(format!(
            "chain_id {:?} is not this chain's {:?}",
            header.chain_id, genesis.chain_id
        )));
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
        return Err(link(format!("expected height {expected_height}")));
    }
    if header.previous_block_hash != previous_hash {
        return Err(link(format!(
            "previous_block_hash {} is not the head's {previous_hash}",
            header.previous_block_hash
        )));
    }
    if header.timestamp_ms < previous_time {
        return Err(link(format!(
            "timestamp_ms {} is before the previous block's {previous_time}",
            header.timestamp_ms
        )));
    }
    if header.history_root != history.root() {
        return Err(link(format!(
            "history_root {} is not the root of the chain so far",
            header.history_root
        )));
    }
    if header.validator_set_hash != genesis.validators.hash() {
        return Err(link(
            "validator_set_hash is not the genesis validator set's".into(),
        ));
    }
    let tx_bytes: Vec<Vec<u8>> = block.txs.iter().map(encode_unchecked).collect();
    let tx_hashes: Vec<Hash> = match tx_hashes {
        Some(hashes) if hashes.len() == tx_bytes.len() => hashes,
        _ => tx_bytes
            .iter()
            .map(|b| Domain::Transaction.hash(b))
            .collect(),
    };
    let tx_root = crate::merkle::root(&tx_hashes);
    if tx_root != header.tx_root {
        return Err(link(format!(
            "tx_root {} does not match the transactions (root {tx_root})",
            header.tx_root
        )));
    }
    let block_hash = header.hash();
    let mut history = history;
    history.append(&block_hash);
    Ok(ValidatedCommit {
        head: ChainHead {
            height,
            block_hash,
            timestamp_ms: header.timestamp_ms,
            history,
        },
        tx_bytes,
        tx_hashes,
    })
}

fn check_key_value(height: u64, what: &str, key: &[u8], value: &[u8]) -> Result<(), LedgerError> {
    if key.is_empty() || key.len() > STATE_KEY_BYTES_MAX || value.len() > STATE_VALUE_BYTES_MAX {
        return Err(LedgerError::ChainLink {
            height,
            reason: format!(
                "{what} key of {} bytes or value of {} bytes is out of bounds",
                key.len(),
                value.len()
            ),
        });
    }
    Ok(())
}

/// Re-verifies a whole stored chain from genesis: every link, root, certificate and transaction
/// signature. Returns the head it reaches.
pub fn verify_chain<S: LedgerRead + ?Sized>(store: &S) -> Result<Option<ChainHead>, StoreError> {
    let Some(stored_head) = store.head()? else {
        return Ok(None);
    };
    let mut head: Option<ChainHead> = None;
    for height in 1..=stored_head.height {
        let block = store.block(height)?.ok_or(StoreError::Corrupt {
            height,
            reason: "block is missing".into(),
        })?;
        let certificate = store.certificate(height)?.ok_or(StoreError::Corrupt {
            height,
            reason: "certificate is missing".into(),
        })?;
        Transaction::verify_signatures(&block.txs).map_err(|e| StoreError::Corrupt {
            height,
            reason: e.to_string(),
        })?;
        let commit = BlockCommit {
            block,
            certificate,
            state_writes: vec![],
            index_entries: vec![],
        };
        head = Some(
            validate_commit(store.genesis(), head.as_ref(), &commit).map_err(|e| {
                StoreError::Corrupt {
                    height,
                    reason: e.to_string(),
                }
            })?,
        );
    }
    if head.as_ref() != Some(&stored_head) {
        return Err(StoreError::Corrupt {
            height: stored_head.height,
            reason: "stored head differs from the verified chain".into(),
        });
    }
    Ok(head)
}

/// An in-memory store for simulations and tests. Same rules as the RocksDB store.
#[derive(Debug)]
pub struct MemStore {
    genesis: Genesis,
    head: Option<ChainHead>,
    blocks: Vec<(Block, CommitCertificate)>,
    tx_locations: BTreeMap<Hash, TxLocation>,
    state: BTreeMap<Vec<u8>, Vec<u8>>,
    indexes: BTreeMap<(String, Vec<u8>), Vec<u8>>,
}

impl MemStore {
    pub fn new(genesis: Genesis) -> MemStore {
        MemStore {
            genesis,
            head: None,
            blocks: Vec::new(),
            tx_locations: BTreeMap::new(),
            state: BTreeMap::new(),
            indexes: BTreeMap::new(),
        }
    }

    fn at(&self, height: u64) -> Option<&(Block, CommitCertificate)> {
        let index = usize::try_from(height.checked_sub(1)?).ok()?;
        self.blocks.get(index)
    }
}

impl LedgerRead for MemStore {
    fn genesis(&self) -> &Genesis {
        &self.genesis
    }
    fn head(&self) -> Result<Option<ChainHead>, StoreError> {
        Ok(self.head.clone())
    }
    fn header(&self, height: u64) -> Result<Option<BlockHeader>, StoreError> {
        Ok(self.at(height).map(|(b, _)| b.header.clone()))
    }
    fn block(&self, height: u64) -> Result<Option<Block>, StoreError> {
        Ok(self.at(height).map(|(b, _)| b.clone()))
    }
    fn certificate(&self, height: u64) -> Result<Option<CommitCertificate>, StoreError> {
        Ok(self.at(height).map(|(_, c)| c.clone()))
    }
    fn tx_location(&self, tx_hash: &Hash) -> Result<Option<TxLocation>, StoreError> {
        Ok(self.tx_locations.get(tx_hash).copied())
    }
    fn transaction(&self, location: TxLocation) -> Result<Option<Transaction>, StoreError> {
        Ok(self
            .at(location.height)
            .and_then(|(b, _)| b.txs.get(location.index as usize).cloned()))
    }
    fn state(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.state.get(key).cloned())
    }
    fn index_scan(
        &self,
        index: &str,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        Ok(self
            .indexes
            .range((index.to_owned(), prefix.to_vec())..)
            .take_while(|((i, k), _)| i == index && k.starts_with(prefix))
            .take(limit)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }
}

impl LedgerWrite for MemStore {
    fn append(&mut self, commit: &BlockCommit) -> Result<ChainHead, StoreError> {
        let head = validate_commit(&self.genesis, self.head.as_ref(), commit)?;
        for (index, tx) in commit.block.txs.iter().enumerate() {
            self.tx_locations.insert(
                tx.hash(),
                TxLocation {
                    height: head.height,
                    index: index as u32,
                },
            );
        }
        for w in &commit.state_writes {
            match &w.value {
                Some(v) => self.state.insert(w.key.clone(), v.clone()),
                None => self.state.remove(&w.key),
            };
        }
        for e in &commit.index_entries {
            if e.remove {
                self.indexes.remove(&(e.index.to_string(), e.key.clone()));
            } else {
                self.indexes
                    .insert((e.index.to_string(), e.key.clone()), e.value.clone());
            }
        }
        self.blocks
            .push((commit.block.clone(), commit.certificate.clone()));
        self.head = Some(head.clone());
        Ok(head)
    }
}
