//! The contracts over a ledger store: [`LedgerState`] reads committed state and indexes through
//! `LedgerRead` and keeps the first store error, so [`ContractEngine::execute_ledger_block`]
//! fails the block on a storage error instead of deciding on a partial view.

use super::store::{IndexRead, StateRead};
use super::{BlockEffects, ContractEngine, TxInput};
use pharmalink_ledger::{Block, Hash, LedgerRead, StoreError};
use std::cell::RefCell;

/// Most index rows one scan through a ledger store returns.
pub const LEDGER_SCAN_ROWS_MAX: usize = 100_000;

pub struct LedgerState<'a> {
    store: &'a dyn LedgerRead,
    error: RefCell<Option<StoreError>>,
}

impl<'a> LedgerState<'a> {
    pub fn new(store: &'a dyn LedgerRead) -> LedgerState<'a> {
        LedgerState {
            store,
            error: RefCell::new(None),
        }
    }

    /// The first store error met, if any.
    pub fn take_error(&self) -> Option<StoreError> {
        self.error.borrow_mut().take()
    }

    fn keep(&self, error: StoreError) {
        let mut slot = self.error.borrow_mut();
        if slot.is_none() {
            *slot = Some(error);
        }
    }
}

impl StateRead for LedgerState<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.store.state(key) {
            Ok(value) => value,
            Err(error) => {
                self.keep(error);
                None
            }
        }
    }

    fn get_many(&self, keys: &[&[u8]]) -> Vec<Option<Vec<u8>>> {
        match self.store.state_many(keys) {
            Ok(values) => values,
            Err(error) => {
                self.keep(error);
                vec![None; keys.len()]
            }
        }
    }
}

impl IndexRead for LedgerState<'_> {
    fn scan(&self, index: &str, prefix: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        match self
            .store
            .index_scan(index, prefix, limit.min(LEDGER_SCAN_ROWS_MAX))
        {
            Ok(rows) => rows,
            Err(error) => {
                self.keep(error);
                Vec::new()
            }
        }
    }
}

impl ContractEngine {
    /// Executes a decided block against a ledger store: what the node's
    /// `Application::execute` returns (`BlockEffects` maps field for field onto
    /// `BlockOutcome`; `TxResult` has `TxOutcome`'s Borsh layout).
    pub fn execute_ledger_block(
        &self,
        store: &dyn LedgerRead,
        block: &Block,
    ) -> Result<BlockEffects, StoreError> {
        self.execute_ledger_block_hashed(store, block, &block.tx_hashes())
    }

    /// [`ContractEngine::execute_ledger_block`] given the transactions' hashes (`Block::tx_hashes`,
    /// which the caller has already computed: hashing every transaction again is not free).
    pub fn execute_ledger_block_hashed(
        &self,
        store: &dyn LedgerRead,
        block: &Block,
        hashes: &[Hash],
    ) -> Result<BlockEffects, StoreError> {
        if hashes.len() != block.txs.len() {
            return Err(StoreError::Backend(format!(
                "{} transaction hashes for a block of {}",
                hashes.len(),
                block.txs.len()
            )));
        }
        let state = LedgerState::new(store);
        let txs: Vec<TxInput<'_>> = block
            .txs
            .iter()
            .zip(hashes)
            .map(|(tx, hash)| TxInput {
                hash: *hash,
                signer: tx.signer,
                nonce: tx.nonce,
                payload: &tx.payload,
            })
            .collect();
        let effects =
            self.execute_block(&state, block.header.height, block.header.timestamp_ms, &txs);
        match state.take_error() {
            Some(error) => Err(error),
            None => Ok(effects),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::*;
    use super::*;
    use crate::custody;
    use pharmalink_ledger::builder::{genesis, ChainBuilder};
    use pharmalink_ledger::Transaction;
    use pharmalink_ledger::{LedgerWrite, MemStore, SigningKey};

    #[test]
    fn batched_reads_through_an_overlay_answer_as_single_reads() {
        let mut base = crate::contract::store::MemLedger::default();
        base.put(b"a".to_vec(), Some(b"base a".to_vec()));
        base.put(b"b".to_vec(), Some(b"base b".to_vec()));
        base.put(b"c".to_vec(), Some(b"base c".to_vec()));
        let mut overlay = Overlay::new(&base);
        overlay.put(b"b".to_vec(), None);
        overlay.put(b"d".to_vec(), Some(b"block d".to_vec()));
        let keys: [&[u8]; 6] = [b"d", b"a", b"b", b"x", b"c", b"a"];
        let single: Vec<Option<Vec<u8>>> = keys.iter().map(|k| overlay.get(k)).collect();
        assert_eq!(
            single,
            vec![
                Some(b"block d".to_vec()),
                Some(b"base a".to_vec()),
                None,
                None,
                Some(b"base c".to_vec()),
                Some(b"base a".to_vec()),
            ]
        );
        assert_eq!(overlay.get_many(&keys), single);
        assert_eq!(overlay.get_many(&[]), Vec::<Option<Vec<u8>>>::new());
    }

    #[test]
    fn executes_signed_blocks_on_a_ledger_store_with_the_genesis_bootstrap() {
        let validator = SigningKey::from_seed([9; 32]);
        let maker = SigningKey::from_seed([1; 32]);
        let genesis_doc = genesis(
            "pharmalink-test",
            DEMO_TIME_MS,
            std::slice::from_ref(&validator),
            Vec::new(),
        )
        .unwrap();
        let mut store = MemStore::new(genesis_doc.clone());
        let mut chain = ChainBuilder::new(genesis_doc, vec![validator]).unwrap();
        let engine = ContractEngine::new(demo_genesis_root());

        // Block 1 carries the IAM bootstrap (no transactions).
        let mut organizations = demo_organizations();
        organizations[0].keys = vec![maker.public_key()];
        let bootstrap_state = LedgerState::new(&store);
        let mut overlay = Overlay::new(&bootstrap_state);
        bootstrap(&mut overlay, &organizations, DEMO_TIME_MS).unwrap();
        let (writes, entries) = overlay.into_parts();
        let mut commit = chain
            .next_block(Vec::new(), DEMO_TIME_MS + 1000, demo_genesis_root())
            .unwrap();
        commit.state_writes = writes;
        commit.index_entries = entries;
        store.append(&commit).unwrap();

        // Block 2: signed commands.
        let txs = vec![
            Transaction::sign(
                "pharmalink-test",
                &maker,
                0,
                Command::RegisterProduct {
                    product: product_master(),
                }
                .encode(),
            )
            .unwrap(),
            Transaction::sign(
                "pharmalink-test",
                &maker,
                1,
                commission(&["S1", "S2"]).encode(),
            )
            .unwrap(),
            Transaction::sign("pharmalink-test", &maker, 1, commission(&["S3"]).encode()).unwrap(),
        ];
        let mut commit = chain
            .next_block(txs, DEMO_TIME_MS + 2000, demo_genesis_root())
            .unwrap();
        let effects = engine.execute_ledger_block(&store, &commit.block).unwrap();
        assert_eq!(
            effects.results[..2],
            [TxResult::Accepted, TxResult::Accepted]
        );
        assert!(
            matches!(&effects.results[2], TxResult::Rejected { code, .. } if code == "tx.bad_nonce")
        );
        commit.state_writes = effects.state_writes.clone();
        commit.index_entries = effects.index_entries.clone();
        store.append(&commit).unwrap();

        let state = LedgerState::new(&store);
        assert_eq!(state_root(&state, demo_genesis_root()), effects.state_root);
        assert_eq!(next_nonce(&state, &maker.public_key()), 2);
        let history = custody::query::history(&state, &sgtin("S2"), 10);
        assert_eq!(history.len(), 1);
        assert_eq!(
            history[0].logged.position,
            Position {
                height: 2,
                tx: 1,
                event: 0
            }
        );
        assert!(state.take_error().is_none());
    }
}
