//! The deterministic application the node executes committed blocks with: the contracts
//! (IAM and the DSCSA custody lifecycle, `pharmalink_contracts::contract::ContractEngine`).
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
