//! The simulator's application and store: a trivial deterministic state machine whose state root
//! hashes the previous root with the block's transaction hashes, over a chain checked with the
//! real ledger rules (`chain::check_link` / `check_decided`).

use crate::chain::{check_decided, check_link};
use crate::crypto::Verifier;
use pharmalink_ledger::merkle::{self, HistoryAccumulator};
use pharmalink_ledger::{
    Block, BlockHeader, ChainHead, CommitCertificate, Domain, Genesis, Hash, SigningKey,
    Transaction, Validator, ValidatorSet,
};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

pub const SIM_CHAIN_ID: &str = "pharmalink-sim";
pub const SIM_GENESIS_TIME_MS: u64 = 1_800_000_000_000;
/// Verification results cached per seed; the cache is cleared when full.
pub const VERIFY_CACHE_ENTRIES_MAX: usize = 1 << 16;

pub fn validator_key(index: usize) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(index as u64 + 1).to_le_bytes());
    seed[8..16].copy_from_slice(b"sim-val ");
    SigningKey::from_seed(seed)
}

/// The one client that signs the simulator's transactions (derived once: deriving a key costs a
/// scalar multiplication).
pub fn client_key() -> &'static SigningKey {
    static CLIENT: std::sync::OnceLock<SigningKey> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| SigningKey::from_seed(*b"pharmalink simulator client key!"))
}

/// Validator `i` has voting power `powers[i]`.
pub fn genesis(powers: &[u64]) -> Genesis {
    let validators = ValidatorSet {
        validators: powers
            .iter()
            .enumerate()
            .map(|(i, p)| Validator {
                public_key: validator_key(i).public_key(),
                voting_power: *p,
            })
            .collect(),
    };
    Genesis {
        chain_id: SIM_CHAIN_ID.into(),
        genesis_time_ms: SIM_GENESIS_TIME_MS,
        validators,
        app_state: b"sim".to_vec(),
    }
}

/// (public key, digest, signature) bytes.
type VerifyKey = ([u8; 32], [u8; 32], [u8; 64]);

/// Real ed25519 verification with a cache of identical (key, digest, signature) triples, shared by
/// all nodes of one seed: the same vote is verified once, not once per receiver. A bad signature
/// is verified (and refused) like any other.
#[derive(Clone, Default)]
pub struct CachedVerifier {
    cache: Rc<RefCell<BTreeMap<VerifyKey, bool>>>,
}

impl Verifier for CachedVerifier {
    fn verify(
        &self,
        key: &pharmalink_ledger::PublicKey,
        digest: &Hash,
        signature: &pharmalink_ledger::Signature,
    ) -> bool {
        let entry = (key.0, digest.0, signature.0);
        if let Some(result) = self.cache.borrow().get(&entry) {
            return *result;
        }
        let result = key.verify("sim", digest.as_bytes(), signature).is_ok();
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= VERIFY_CACHE_ENTRIES_MAX {
            cache.clear();
        }
        cache.insert(entry, result);
        result
    }
}

/// One node's durable store: decided blocks with certificates, the chain head, and the
/// application's state root after each height. Survives crashes.
#[derive(Clone, Debug)]
pub struct SimChain {
    pub blocks: Vec<(Block, CommitCertificate)>,
    pub head: Option<ChainHead>,
    /// state_roots[h] is the state root after executing heights 1..=h (index 0: genesis).
    pub state_roots: Vec<Hash>,
}

pub fn genesis_state_root(genesis: &Genesis) -> Hash {
    Domain::State.hash(&genesis.app_state)
}

/// The application: the new root commits to the old one and to every transaction, in order.
pub fn execute(previous_root: &Hash, block: &Block) -> Hash {
    let mut hasher = Domain::State.hasher();
    hasher.update(previous_root.as_bytes());
    for tx in &block.txs {
        hasher.update(tx.hash().as_bytes());
    }
    Hash(*hasher.finalize().as_bytes())
}

impl SimChain {
    pub fn new(genesis: &Genesis) -> SimChain {
        SimChain {
            blocks: Vec::new(),
            head: None,
            state_roots: vec![genesis_state_root(genesis)],
        }
    }

    pub fn height(&self) -> u64 {
        self.head.as_ref().map_or(0, |h| h.height)
    }

    pub fn app_root(&self) -> Hash {
        self.state_roots.last().copied().unwrap_or_default()
    }

    pub fn previous_hash(&self, genesis: &Genesis) -> Hash {
        self.head
            .as_ref()
            .map_or_else(|| genesis.hash(), |h| h.block_hash)
    }

    pub fn previous_timestamp_ms(&self, genesis: &Genesis) -> u64 {
        self.head
            .as_ref()
            .map_or(genesis.genesis_time_ms, |h| h.timestamp_ms)
    }

    /// A block for the next height proposed by `proposer` at `round`; `variant` makes the content
    /// differ (an equivocating proposer builds two).
    pub fn build_block(
        &self,
        genesis: &Genesis,
        round: u32,
        proposer: &SigningKey,
        now_ms: u64,
        variant: u32,
    ) -> Block {
        let height = self.height() + 1;
        let payload = format!(
            "sim tx h{height} r{round} by {} v{variant}",
            &proposer.public_key().to_hex()[..8]
        )
        .into_bytes();
        let txs: Vec<Transaction> =
            Transaction::sign(&genesis.chain_id, client_key(), height, payload)
                .into_iter()
                .collect();
        let tx_hashes: Vec<Hash> = txs.iter().map(Transaction::hash).collect();
        let history = self
            .head
            .as_ref()
            .map_or_else(HistoryAccumulator::default, |h| h.history.clone());
        let header = BlockHeader {
            chain_id: genesis.chain_id.clone(),
            height,
            round,
            timestamp_ms: now_ms.max(self.previous_timestamp_ms(genesis)),
            previous_block_hash: self.previous_hash(genesis),
            tx_root: merkle::root(&tx_hashes),
            tx_count: txs.len() as u32,
            state_root: self.app_root(),
            history_root: history.root(),
            proposer: proposer.public_key(),
            validator_set_hash: genesis.validators.hash(),
        };
        Block { header, txs }
    }

    /// The host's half of valid(v): chain links, application state root, transaction signatures.
    pub fn validate(
        &self,
        genesis: &Genesis,
        block: &Block,
        verifier: &CachedVerifier,
    ) -> Result<(), String> {
        check_link(genesis, self.head.as_ref(), block)?;
        if block.header.state_root != self.app_root() {
            return Err(format!(
                "block {}: state_root is not the application's",
                block.header.height
            ));
        }
        for tx in &block.txs {
            if !verifier.verify(&tx.signer, &tx.signing_digest(), &tx.signature) {
                return Err(format!(
                    "block {}: a transaction signature does not verify",
                    block.header.height
                ));
            }
        }
        Ok(())
    }

    /// Appends a decided block after the full check, executes it, returns the new state root.
    pub fn append(
        &mut self,
        genesis: &Genesis,
        block: Block,
        certificate: CommitCertificate,
        verifier: &CachedVerifier,
    ) -> Result<Hash, String> {
        self.validate(genesis, &block, verifier)?;
        let head = check_decided(genesis, self.head.as_ref(), &block, &certificate, verifier)?;
        let root = execute(&self.app_root(), &block);
        self.state_roots.push(root);
        self.blocks.push((block, certificate));
        self.head = Some(head);
        Ok(root)
    }
}
