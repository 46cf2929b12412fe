//! The deterministic application the node executes committed blocks with: the contracts
//! (IAM and the DSCSA custody lifecycle, `pharmalink_contracts::contract::ContractEngine`), or,
//! to measure the node layer apart from them, [`NonceApp`] (config `application = "nonce"`).
//!
//! The node owns IO; this adapter only maps between the node's store (`LedgerRead`) and the
//! engine's `StateRead`/`IndexRead`, and turns a storage error into a failed block (never into
//! "absent", which would let a node decide on a partial view).

use borsh::{BorshDeserialize, BorshSerialize};
use pharmalink_contracts::contract::{
    self, Command, ContractEngine, LedgerState, LoggedEvent, MemLedger, Overlay, TxResult,
};
use pharmalink_contracts::iam;
use pharmalink_ledger::{
    Block, Domain, Genesis, Hash, IndexEntry, LedgerRead, PublicKey, StateWrite, StoreError,
    TxLocation,
};

/// Index holding each committed transaction's outcome, by transaction hash.
pub const TX_RESULT_INDEX: &str = contract::TX_RESULT_INDEX;

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum TxOutcome {
    Accepted,
    Rejected { code: String, reason: String },
}

impl From<TxResult> for TxOutcome {
    fn from(result: TxResult) -> TxOutcome {
        match result {
            TxResult::Accepted => TxOutcome::Accepted,
            TxResult::Rejected { code, reason } => TxOutcome::Rejected { code, reason },
        }
    }
}

pub struct BlockOutcome {
    pub state_writes: Vec<StateWrite>,
    pub index_entries: Vec<IndexEntry>,
    pub results: Vec<TxOutcome>,
    /// Accepted events in log order, for subscribers.
    pub events: Vec<LoggedEvent>,
    /// The state root after this block: the next block's header carries it.
    pub state_root: Hash,
}

/// Why a transaction is refused before it reaches the mempool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: String,
    pub reason: String,
}

pub trait Application: Send {
    /// State and index entries of a fresh chain, written with the genesis.
    fn genesis_effects(&self) -> Result<(Vec<StateWrite>, Vec<IndexEntry>), StoreError>;
    /// The state root after the last executed block.
    fn state_root(&self, store: &dyn LedgerRead) -> Result<Hash, StoreError>;
    /// The nonce the chain accepts next from `signer`.
    fn next_nonce(&self, store: &dyn LedgerRead, signer: &PublicKey) -> Result<u64, StoreError>;
    /// Cheap checks at admission (the signer is a member key; the payload decodes), so a
    /// client learns at once, with the reason, what a block would only reject later.
    fn admission(
        &self,
        store: &dyn LedgerRead,
        signer: &PublicKey,
        payload: &[u8],
    ) -> Result<Result<(), Refusal>, StoreError>;
    /// Executes a decided block against the committed state. Deterministic. `tx_hashes` are its
    /// transactions' hashes (`Block::tx_hashes`), already computed by the caller.
    fn execute(
        &self,
        store: &dyn LedgerRead,
        block: &Block,
        tx_hashes: &[Hash],
    ) -> Result<BlockOutcome, StoreError>;
}

/// The state root of a fresh chain: it commits to the genesis (whose `app_state` the
/// contracts' genesis state is derived from).
pub fn genesis_state_root(genesis: &Genesis) -> Hash {
    Domain::State.hash(&genesis.hash().0)
}

pub struct ContractApp {
    engine: ContractEngine,
    organizations: Vec<iam::GenesisOrganization>,
    genesis_time_ms: u64,
}

impl ContractApp {
    /// `organizations`: the IAM bootstrap (`GenesisAppState::contract_organizations`).
    pub fn new(genesis: &Genesis, organizations: Vec<iam::GenesisOrganization>) -> ContractApp {
        ContractApp {
            engine: ContractEngine::new(genesis_state_root(genesis)),
            organizations,
            genesis_time_ms: genesis.genesis_time_ms,
        }
    }
}

fn checked<T>(state: &LedgerState<'_>, value: T) -> Result<T, StoreError> {
    match state.take_error() {
        Some(error) => Err(error),
        None => Ok(value),
    }
}

impl Application for ContractApp {
    fn genesis_effects(&self) -> Result<(Vec<StateWrite>, Vec<IndexEntry>), StoreError> {
        let empty = MemLedger::new();
        let mut overlay = Overlay::new(&empty);
        contract::bootstrap(&mut overlay, &self.organizations, self.genesis_time_ms).map_err(
            |r| StoreError::Backend(format!("genesis organizations: {} ({})", r.message, r.code)),
        )?;
        Ok(overlay.into_parts())
    }

    fn state_root(&self, store: &dyn LedgerRead) -> Result<Hash, StoreError> {
        let state = LedgerState::new(store);
        let root = contract::state_root(&state, self.engine.genesis_root);
        checked(&state, root)
    }

    fn next_nonce(&self, store: &dyn LedgerRead, signer: &PublicKey) -> Result<u64, StoreError> {
        let state = LedgerState::new(store);
        let nonce = contract::next_nonce(&state, signer);
        checked(&state, nonce)
    }

    fn admission(
        &self,
        store: &dyn LedgerRead,
        signer: &PublicKey,
        payload: &[u8],
    ) -> Result<Result<(), Refusal>, StoreError> {
        let state = LedgerState::new(store);
        let verdict = iam::signer_gln(&state, signer)
            .and_then(|_| Command::decode(payload).map(|_| ()))
            .map_err(|r| Refusal {
                code: r.code.to_string(),
                reason: r.message,
            });
        checked(&state, verdict)
    }

    fn execute(
        &self,
        store: &dyn LedgerRead,
        block: &Block,
        tx_hashes: &[Hash],
    ) -> Result<BlockOutcome, StoreError> {
        let effects = self
            .engine
            .execute_ledger_block_hashed(store, block, tx_hashes)?;
        Ok(BlockOutcome {
            state_writes: effects.state_writes,
            index_entries: effects.index_entries,
            results: effects.results.into_iter().map(TxOutcome::from).collect(),
            events: effects.events,
            state_root: effects.state_root,
        })
    }
}

/// The node layer alone, for measuring it apart from the contracts (`application = "nonce"`;
/// `pharmalink-testnet bench --application nonce`): a transaction is admitted when its signer is
/// a member key of a genesis organization (as with the contracts), accepted when its nonce is
/// the signer's next one; its payload is not read. What it writes per transaction is what the
/// node itself needs (the signer's nonce, once per signer and block; a rejection's outcome;
/// the transaction and its location, written by the store): no contract state or index.
/// Deterministic, with a state root chained over the blocks' outcomes, so validators that
/// disagree stop, as with the contracts. Not a product mode: the API's custody, inventory and
/// provenance endpoints find nothing on such a chain.
pub struct NonceApp {
    genesis_root: Hash,
    members: std::collections::BTreeSet<PublicKey>,
}

const NONCE_APP_PREFIX: &[u8] = b"nonce-app/nonce/";
const NONCE_APP_ROOT: &[u8] = b"nonce-app/root";

impl NonceApp {
    pub fn new(genesis: &Genesis, organizations: &[iam::GenesisOrganization]) -> NonceApp {
        NonceApp {
            genesis_root: genesis_state_root(genesis),
            members: organizations
                .iter()
                .flat_map(|o| o.keys.iter().copied())
                .collect(),
        }
    }

    fn nonce_key(signer: &PublicKey) -> Vec<u8> {
        [NONCE_APP_PREFIX, &signer.0].concat()
    }

    fn stored<const N: usize>(
        store: &dyn LedgerRead,
        key: &[u8],
    ) -> Result<Option<[u8; N]>, StoreError> {
        store
            .state(key)?
            .map(|bytes| {
                bytes.try_into().map_err(|_| StoreError::Corrupt {
                    height: 0,
                    reason: format!("{}: not {N} bytes", String::from_utf8_lossy(key)),
                })
            })
            .transpose()
    }

    fn not_a_member(signer: &PublicKey) -> Refusal {
        Refusal {
            code: "iam.signer_unknown".into(),
            reason: format!("key {signer} is not a member key of any organization"),
        }
    }
}

impl Application for NonceApp {
    fn genesis_effects(&self) -> Result<(Vec<StateWrite>, Vec<IndexEntry>), StoreError> {
        Ok((Vec::new(), Vec::new()))
    }

    fn state_root(&self, store: &dyn LedgerRead) -> Result<Hash, StoreError> {
        Ok(Self::stored(store, NONCE_APP_ROOT)?.map_or(self.genesis_root, Hash))
    }

    fn next_nonce(&self, store: &dyn LedgerRead, signer: &PublicKey) -> Result<u64, StoreError> {
        Ok(Self::stored(store, &Self::nonce_key(signer))?.map_or(0, u64::from_le_bytes))
    }

    fn admission(
        &self,
        _store: &dyn LedgerRead,
        signer: &PublicKey,
        _payload: &[u8],
    ) -> Result<Result<(), Refusal>, StoreError> {
        Ok(if self.members.contains(signer) {
            Ok(())
        } else {
            Err(Self::not_a_member(signer))
        })
    }

    fn execute(
        &self,
        store: &dyn LedgerRead,
        block: &Block,
        tx_hashes: &[Hash],
    ) -> Result<BlockOutcome, StoreError> {
        let mut next: std::collections::BTreeMap<PublicKey, u64> = Default::default();
        let mut results = Vec::with_capacity(block.txs.len());
        let mut index_entries = Vec::new();
        let mut root = Domain::State.hasher();
        root.update(&self.state_root(store)?.0);
        root.update(&block.header.tx_root.0);
        for (tx, hash) in block.txs.iter().zip(tx_hashes) {
            let outcome = if !self.members.contains(&tx.signer) {
                let refusal = Self::not_a_member(&tx.signer);
                TxOutcome::Rejected {
                    code: refusal.code,
                    reason: refusal.reason,
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
                        code: "tx.bad_nonce".into(),
                        reason: format!(
                            "nonce {} but the signer's next nonce is {expected}",
                            tx.nonce
                        ),
                    }
                }
            };
            if let TxOutcome::Rejected { .. } = &outcome {
                let encoded =
                    borsh::to_vec(&outcome).map_err(|e| StoreError::Backend(e.to_string()))?;
                root.update(&hash.0);
                root.update(&encoded);
                index_entries.push(IndexEntry {
                    index: TX_RESULT_INDEX.into(),
                    key: hash.0.to_vec(),
                    value: encoded,
                    remove: false,
                });
            }
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
            key: NONCE_APP_ROOT.to_vec(),
            value: Some(state_root.0.to_vec()),
        });
        Ok(BlockOutcome {
            state_writes,
            index_entries,
            results,
            events: Vec::new(),
            state_root,
        })
    }
}

/// Where a committed transaction is and its outcome (`None`: not committed). Only rejections
/// are recorded (`TX_RESULT_INDEX`); a committed transaction without one was accepted.
pub fn tx_outcome(
    store: &dyn LedgerRead,
    tx_hash: &Hash,
) -> Result<Option<(TxLocation, TxOutcome)>, StoreError> {
    let Some(location) = store.tx_location(tx_hash)? else {
        return Ok(None);
    };
    let found = store.index_scan(TX_RESULT_INDEX, &tx_hash.0, 1)?;
    let outcome = match found.into_iter().next() {
        Some((key, value)) if key == tx_hash.0 => {
            borsh::from_slice(&value).map_err(|e| StoreError::Corrupt {
                height: location.height,
                reason: format!("tx outcome: {e}"),
            })?
        }
        _ => TxOutcome::Accepted,
    };
    Ok(Some((location, outcome)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pharmalink_ledger::builder::{self, ChainBuilder};
    use pharmalink_ledger::{LedgerWrite, MemStore, SigningKey, Transaction};

    fn organization(keys: Vec<PublicKey>) -> iam::GenesisOrganization {
        iam::GenesisOrganization {
            name: "Nonce Test".into(),
            gln: "0614141000005".into(),
            role: "manufacturer".into(),
            keys,
            address: "1 Test Way".into(),
            licences: vec![],
            validator: None,
        }
    }

    /// Executes `txs` as the next block and appends it, as the node's commit does.
    fn commit(
        app: &NonceApp,
        chain: &mut ChainBuilder,
        store: &mut MemStore,
        txs: Vec<Transaction>,
    ) -> Vec<TxOutcome> {
        let root = app.state_root(store).unwrap();
        let mut next = chain.next_block(txs, 1_000, root).unwrap();
        let hashes = next.block.tx_hashes();
        let outcome = app.execute(store, &next.block, &hashes).unwrap();
        next.state_writes = outcome.state_writes;
        next.index_entries = outcome.index_entries;
        store.append(&next).unwrap();
        assert_eq!(app.state_root(store).unwrap(), outcome.state_root);
        outcome.results
    }

    #[test]
    fn nonce_app_checks_members_and_nonces_and_chains_its_root() {
        let validator = SigningKey::from_seed([1; 32]);
        let member = SigningKey::from_seed([2; 32]);
        let stranger = SigningKey::from_seed([3; 32]);
        let genesis = builder::genesis("nonce-test", 0, &[validator.clone()], vec![]).unwrap();
        let app = NonceApp::new(&genesis, &[organization(vec![member.public_key()])]);
        let mut chain = ChainBuilder::new(genesis.clone(), vec![validator]).unwrap();
        let mut store = MemStore::new(genesis.clone());
        assert_eq!(
            app.state_root(&store).unwrap(),
            genesis_state_root(&genesis)
        );
        // Admission: member keys only; the payload is not read.
        assert_eq!(
            app.admission(&store, &member.public_key(), b"anything")
                .unwrap(),
            Ok(())
        );
        let refused = app
            .admission(&store, &stranger.public_key(), b"")
            .unwrap()
            .unwrap_err();
        assert_eq!(refused.code, "iam.signer_unknown");
        let tx = |key: &SigningKey, nonce: u64| {
            Transaction::sign("nonce-test", key, nonce, vec![0; 200]).unwrap()
        };
        let results = commit(
            &app,
            &mut chain,
            &mut store,
            vec![
                tx(&member, 0),
                tx(&member, 1),
                tx(&member, 3),
                tx(&stranger, 0),
            ],
        );
        assert_eq!(results[..2], [TxOutcome::Accepted, TxOutcome::Accepted]);
        assert!(
            matches!(&results[2], TxOutcome::Rejected { code, reason } if code == "tx.bad_nonce" && reason.contains("next nonce is 2")),
            "{results:?}"
        );
        assert!(
            matches!(&results[3], TxOutcome::Rejected { code, .. } if code == "iam.signer_unknown"),
            "{results:?}"
        );
        assert_eq!(app.next_nonce(&store, &member.public_key()).unwrap(), 2);
        assert_eq!(app.next_nonce(&store, &stranger.public_key()).unwrap(), 0);
        // Rejections are recorded where the node's acknowledgement reads them; acceptances are not.
        let rejected = tx(&member, 3).hash();
        let (_, outcome) = tx_outcome(&store, &rejected).unwrap().unwrap();
        assert!(matches!(outcome, TxOutcome::Rejected { .. }));
        let (_, outcome) = tx_outcome(&store, &tx(&member, 0).hash()).unwrap().unwrap();
        assert_eq!(outcome, TxOutcome::Accepted);
        // The root moves with every block, and the next block continues from the stored nonce.
        let first_root = app.state_root(&store).unwrap();
        assert_ne!(first_root, genesis_state_root(&genesis));
        let results = commit(&app, &mut chain, &mut store, vec![tx(&member, 2)]);
        assert_eq!(results, [TxOutcome::Accepted]);
        assert_ne!(app.state_root(&store).unwrap(), first_root);
        assert_eq!(app.next_nonce(&store, &member.public_key()).unwrap(), 3);
    }
}
