//! The node's commit pipeline: one consensus loop drives the sans-IO engine and executes its
//! effects in the order it demands (persist before send); the API submits transactions into the
//! mempool and waits for their outcome.
//!
//! decided block → execute the application → one atomic synced write (block, certificate, txs,
//! state, indexes) → acknowledge the submitters → publish (status, metrics).

use crate::app::{tx_outcome, Application, TxOutcome};
use crate::mempool::{Admission, Mempool, MempoolError};
use crate::metrics::Metrics;
use crate::store::{PendingState, RocksStore};
use anyhow::{anyhow, bail, Context, Result};
use pharmalink_api::{NodeApi, StatusView, SubmitOutcome};
use pharmalink_consensus::{
    ChainTip, Config, Ed25519Verifier, Effect, Engine, Input, Message, SafetyState, Timeout,
};
use pharmalink_ledger::limits::{BLOCK_BYTES_MAX, BLOCK_TXS_MAX};
use pharmalink_ledger::{
    merkle, Block, BlockCommit, BlockHeader, Canonical, ChainHead, Genesis, Hash, LedgerRead,
    PublicKey, SigningKey, StoreError, Transaction,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Notify};

/// Inputs queued for the consensus loop from the network and sync tasks.
pub const LOOP_INPUTS_MAX: usize = 4096;
/// How long a submitter waits for its transactions to commit before hearing `pending`.
pub const SUBMIT_WAIT_MS_MAX: u64 = 30_000;
/// Waiting submissions at once (each holds a connection).
pub const WAITERS_MAX: usize = 500_000;
const SAFETY_STATE_KEY: &str = "consensus/safety";
/// The safety state's `valid_block`, stored apart: it changes once a height at most, while the
/// rest of the state is written at every signed step (a block of a thousand transactions is
/// about 300 kB; writing it with every step was most of the cost of persisting).
const SAFETY_VALID_BLOCK_KEY: &str = "consensus/safety/valid_block";
/// How often an observer asks peers for new blocks.
pub const OBSERVER_SYNC_INTERVAL_MS: u64 = 500;
/// For this long after it starts, a validator also asks its peers for blocks past its head
/// every [`STARTUP_SYNC_INTERVAL_MS`]: a restarted validator then starts catching up as soon
/// as a peer is connected, instead of when consensus messages show it is behind (which can
/// take seconds on an idle network). A peer with nothing newer answers with no blocks.
pub const STARTUP_SYNC_WINDOW_MS: u64 = 3_000;
pub const STARTUP_SYNC_INTERVAL_MS: u64 = 100;

/// An idle network makes a block this often ([`RuntimeOptions::empty_block_interval_ms`]).
pub const EMPTY_BLOCK_INTERVAL_MS_DEFAULT: u64 = 60_000;
/// A block with transactions is followed within this long by one whose header certifies the
/// state they produced (a header carries the state root after its predecessor) — by the next
/// block with transactions if one comes sooner, else by an empty one.
pub const CERTIFY_STATE_AFTER_MS: u64 = 1_000;

/// Node tunables with safe defaults.
#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    /// Transactions per proposed block.
    pub block_txs_max: usize,
    /// An idle chain makes no blocks: a height starts (its proposer proposes, the others' propose
    /// timeout runs) once this node holds transactions, another validator's message of the
    /// height arrives, [`CERTIFY_STATE_AFTER_MS`] after a block that carried transactions (its
    /// successor's header certifies the state they produced), and, so that an idle network
    /// still shows it is alive, once this long has passed since the previous block. 0: never
    /// for idleness alone.
    pub empty_block_interval_ms: u64,
    /// Under sustained load (the previous block held at least [`GATHER_AFTER_TXS`]
    /// transactions), a proposer whose block would not be full waits until this long after the
    /// previous block's timestamp, so blocks come at most this often and carry more: a block's
    /// fixed costs (votes, the synced write, the memtable searches of a small sorted batch)
    /// are then shared by more transactions. Light load (sequential clients, a quiet network)
    /// never waits. 0 turns it off.
    pub block_gather_ms: u64,
    pub timeouts: pharmalink_consensus::TimeoutConfig,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            block_txs_max: 5000,
            empty_block_interval_ms: EMPTY_BLOCK_INTERVAL_MS_DEFAULT,
            block_gather_ms: 0,
            timeouts: Default::default(),
        }
    }
}

/// How the consensus loop reaches other validators. A one-validator network has none.
pub trait Transport: Send + Sync + 'static {
    fn broadcast_consensus(&self, bytes: Vec<u8>);
    fn gossip_tx(&self, bytes: Vec<u8>);
    fn peers(&self) -> Vec<PublicKey>;
    /// Fetches decided blocks from `from_height` on from peers and feeds them to `deliver`.
    fn request_sync(&self, from_height: u64, deliver: mpsc::Sender<LoopInput>);
    /// Fault injection for test networks: drop all traffic with `blocked` (empty heals).
    fn set_blocked(
        &self,
        blocked: Vec<PublicKey>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>>;
}

/// What feeds the loop besides timers.
pub enum LoopInput {
    Consensus(Message),
    Synced(Box<(Block, pharmalink_ledger::CommitCertificate)>),
}

struct Status {
    height: u64,
    head_hash: Hash,
    head_timestamp_ms: u64,
    /// Transactions in the head block (0 at start).
    head_txs: usize,
    round: u32,
}

type Waiter = (Instant, oneshot::Sender<SubmitOutcome>);

/// State shared by the API handlers and the consensus loop.
pub struct Shared {
    pub genesis: Genesis,
    pub genesis_json: serde_json::Value,
    pub store: Arc<RocksStore>,
    pub app: Arc<dyn Application + Sync>,
    pub mempool: Mutex<Mempool>,
    pub node_key: PublicKey,
    status: Mutex<Status>,
    /// By transaction hash; looked up, never iterated in order.
    waiters: Mutex<HashMap<Hash, Vec<Waiter>, foldhash::fast::RandomState>>,
    tx_arrived: Notify,
    pub metrics: Metrics,
    pub(crate) transport: Option<Arc<dyn Transport>>,
    fault_injection: bool,
    /// Organization member keys this node signs captured EPCIS with.
    pub org_keys: BTreeMap<PublicKey, SigningKey>,
    /// Serializes nonce assignment for the keys above.
    pub sign_lock: tokio::sync::Mutex<()>,
    /// The head height, published after each durable commit (subscribers wake on it).
    pub committed: tokio::sync::watch::Sender<u64>,
    /// The node's own key, for the access tokens it issues (`None`: it issues none).
    pub token_key: Option<SigningKey>,
    /// The PHI vault (`None`: the pharmacy API answers 503).
    pub vault: Option<Arc<dyn pharmalink_api::pharmacy::PhiVault>>,
    /// Live delivery tracking (in memory: positions never reach the store).
    pub tracker: Arc<pharmalink_api::tracking::Tracker>,
}

#[derive(Clone)]
pub struct NodeHandle {
    pub shared: Arc<Shared>,
}

/// Runs `f`, which blocks (store writes, fsyncs, signature checks), from the consensus loop: on
/// a multi-thread runtime through `block_in_place` (the worker hands its other tasks to another
/// thread first); on the consensus loop's own thread ([`spawn_consensus_thread`]) directly, as
/// nothing else runs there.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Runs the consensus loop on a thread of its own, with a single-threaded runtime: its store
/// writes and fsyncs then block only that thread instead of handing a worker's tasks to another
/// thread each time (`block_in_place`, several times per block), and its messages do not wait
/// behind the API's and the network's tasks. The returned future ends with the loop.
pub fn spawn_consensus_thread(
    consensus: ConsensusLoop,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<oneshot::Receiver<Result<()>>> {
    let (done, finished) = oneshot::channel();
    std::thread::Builder::new()
        .name("consensus".into())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|runtime| runtime.block_on(consensus.run(shutdown)));
            let _ = done.send(result);
        })?;
    Ok(finished)
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere already failed the node; keep serving reads.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl NodeHandle {
    pub fn new(
        genesis: Genesis,
        genesis_json: serde_json::Value,
        store: Arc<RocksStore>,
        app: Arc<dyn Application + Sync>,
        mempool: Mempool,
        node_key: PublicKey,
        transport: Option<Arc<dyn Transport>>,
        fault_injection: bool,
    ) -> Result<NodeHandle> {
        let head = store.head()?;
        let status = Status {
            height: head.as_ref().map_or(0, |h| h.height),
            head_hash: head
                .as_ref()
                .map_or_else(|| genesis.hash(), |h| h.block_hash),
            head_timestamp_ms: head
                .as_ref()
                .map_or(genesis.genesis_time_ms, |h| h.timestamp_ms),
            head_txs: match &head {
                Some(h) => store.header(h.height)?.map_or(0, |b| b.tx_count as usize),
                None => 0,
            },
            round: 0,
        };
        let metrics = Metrics::new();
        metrics.height.set(status.height as i64);
        let initial_height = status.height;
        Ok(NodeHandle {
            shared: Arc::new(Shared {
                genesis,
                genesis_json,
                store,
                app,
                mempool: Mutex::new(mempool),
                node_key,
                status: Mutex::new(status),
                waiters: Mutex::new(HashMap::default()),
                tx_arrived: Notify::new(),
                metrics,
                transport,
                fault_injection,
                org_keys: BTreeMap::new(),
                sign_lock: tokio::sync::Mutex::new(()),
                committed: tokio::sync::watch::channel(initial_height).0,
                token_key: None,
                vault: None,
                tracker: Arc::new(pharmalink_api::tracking::Tracker::new()),
            }),
        })
    }

    /// Gives the node organization keys to sign captures with (before it is shared).
    pub fn with_org_keys(mut self, keys: Vec<SigningKey>) -> Result<NodeHandle> {
        let shared = Arc::get_mut(&mut self.shared)
            .ok_or_else(|| anyhow!("organization keys must be set before the node starts"))?;
        shared.org_keys = keys.into_iter().map(|k| (k.public_key(), k)).collect();
        Ok(self)
    }

    /// Lets the node issue access tokens signed with `key` (its own key).
    pub fn with_token_key(mut self, key: SigningKey) -> Result<NodeHandle> {
        let shared = Arc::get_mut(&mut self.shared)
            .ok_or_else(|| anyhow!("the token key must be set before the node starts"))?;
        shared.token_key = Some(key);
        Ok(self)
    }

    /// Gives the node its PHI vault (before it is shared).
    pub fn with_vault(
        mut self,
        vault: Arc<dyn pharmalink_api::pharmacy::PhiVault>,
    ) -> Result<NodeHandle> {
        let shared = Arc::get_mut(&mut self.shared)
            .ok_or_else(|| anyhow!("the vault must be set before the node starts"))?;
        shared.vault = Some(vault);
        Ok(self)
    }

    /// Admits transactions signed for a capture job; returns the refused ones' codes.
    pub fn admit_for_capture(
        &self,
        txs: Vec<Transaction>,
    ) -> Vec<(Hash, Option<(String, String)>)> {
        self.admit(txs, false)
            .into_iter()
            .map(|(hash, result)| match result {
                Err(SubmitOutcome::Rejected { code, reason, .. }) => (hash, Some((code, reason))),
                Err(SubmitOutcome::Busy { reason, .. }) => (hash, Some(("busy".into(), reason))),
                _ => (hash, None),
            })
            .collect()
    }

    /// A transaction's recorded outcome, if it is in a block.
    pub fn committed(&self, hash: &Hash) -> Result<Option<SubmitOutcome>> {
        self.committed_outcome(hash)
    }

    /// Admits transactions received from a peer's gossip (signatures checked here too). They
    /// are not gossiped again: gossipsub forwards the message they came in.
    pub fn admit_gossiped(&self, txs: Vec<Transaction>) {
        let _ = self.admit_from(txs, false, false);
    }

    /// Checks signatures and admission; returns per-transaction outcomes for those refused and
    /// the hashes of those now pending.
    fn admit(
        &self,
        txs: Vec<Transaction>,
        register: bool,
    ) -> Vec<(
        Hash,
        Result<Option<oneshot::Receiver<SubmitOutcome>>, SubmitOutcome>,
    )> {
        self.admit_from(txs, register, true)
    }

    /// [`NodeHandle::admit`]; `gossip_new`: publish the newly pending ones to the peers (a
    /// client's batch; a peer's is not gossiped again). Observes the batch's admission time
    /// under the client or the gossip histogram accordingly, and its size.
    fn admit_from(
        &self,
        txs: Vec<Transaction>,
        register: bool,
        gossip_new: bool,
    ) -> Vec<(
        Hash,
        Result<Option<oneshot::Receiver<SubmitOutcome>>, SubmitOutcome>,
    )> {
        let started = Instant::now();
        let shared = &self.shared;
        shared.metrics.admission_batch_txs.observe(txs.len() as f64);
        let mut encoded: Vec<(Transaction, Vec<u8>, Hash)> = txs
            .into_iter()
            .filter_map(|tx| {
                let bytes = tx.to_canonical_bytes().ok()?;
                let hash = pharmalink_ledger::Domain::Transaction.hash(&bytes);
                Some((tx, bytes, hash))
            })
            .collect();
        // Gossip often brings transactions whose signatures were checked here already: a
        // proposal carried them before their gossip came, or they are pending. The hash is that
        // of the signed bytes, so their signatures are not checked again (the pending ones are
        // dropped; the others still go through admission).
        let mut checked = vec![false; encoded.len()];
        if !register {
            let before = encoded.len();
            {
                let mempool = lock(&shared.mempool);
                encoded.retain(|(_, _, hash)| !mempool.is_pending(hash));
                checked = encoded
                    .iter()
                    .map(|(_, _, hash)| mempool.checked_in_proposal(hash))
                    .collect();
            }
            let skipped = before - encoded.len() + checked.iter().filter(|c| **c).count();
            shared.metrics.gossip_txs_known.inc_by(skipped as u64);
        }
        let unchecked: Vec<&Transaction> = encoded
            .iter()
            .zip(&checked)
            .filter(|(_, checked)| !**checked)
            .map(|((tx, _, _), _)| tx)
            .collect();
        let verified: Vec<bool> = match Transaction::verify_signatures(&unchecked) {
            Ok(()) => vec![true; encoded.len()],
            Err(_) => encoded
                .iter()
                .zip(&checked)
                .map(|((tx, _, _), checked)| *checked || tx.verify_signature().is_ok())
                .collect(),
        };
        let mut out = Vec::with_capacity(encoded.len());
        let mut gossip = Vec::new();
        let mut added = 0usize;
        for ((tx, bytes, hash), ok) in encoded.into_iter().zip(verified) {
            // Spelled out only for the outcomes that carry it.
            let tx_hash = || hash.to_hex();
            if !ok {
                out.push((
                    hash,
                    Err(SubmitOutcome::Rejected {
                        tx_hash: tx_hash(),
                        code: "bad_signature".into(),
                        reason: format!("signature does not verify under signer {}", tx.signer),
                    }),
                ));
                continue;
            }
            // Register first, then look in the store: a commit in between is then seen by one or
            // the other (the loop appends before it takes the waiters).
            let receiver = if register {
                let (sender, receiver) = oneshot::channel();
                let mut waiters = lock(&shared.waiters);
                if waiters.len() >= WAITERS_MAX {
                    out.push((
                        hash,
                        Err(SubmitOutcome::Busy {
                            tx_hash: tx_hash(),
                            reason: "too many waiting submissions".into(),
                        }),
                    ));
                    continue;
                }
                waiters
                    .entry(hash)
                    .or_default()
                    .push((Instant::now(), sender));
                Some(receiver)
            } else {
                None
            };
            let next = match self.admission_checks(&tx, &hash) {
                Ok(next) => next,
                Err(outcome) => {
                    self.take_waiters(&hash);
                    out.push((hash, Err(outcome)));
                    continue;
                }
            };
            let admitted = lock(&shared.mempool).insert(tx, hash, bytes.len(), next);
            match admitted {
                Ok(Admission::Added) => {
                    added += 1;
                    if gossip_new {
                        gossip.push(bytes);
                    }
                    out.push((hash, Ok(receiver)));
                }
                Ok(Admission::AlreadyPending) => out.push((hash, Ok(receiver))),
                Err(error) => {
                    self.take_waiters(&hash);
                    let outcome = match &error {
                        MempoolError::Full { .. } => SubmitOutcome::Busy {
                            tx_hash: tx_hash(),
                            reason: error.to_string(),
                        },
                        _ => SubmitOutcome::Rejected {
                            tx_hash: tx_hash(),
                            code: error.code().into(),
                            reason: error.to_string(),
                        },
                    };
                    out.push((hash, Err(outcome)));
                }
            }
        }
        shared
            .metrics
            .mempool_txs
            .set(lock(&shared.mempool).len() as i64);
        if added > 0 {
            shared.tx_arrived.notify_one();
        }
        if !gossip.is_empty() {
            if let Some(transport) = &shared.transport {
                for bytes in gossip {
                    transport.gossip_tx(bytes);
                }
            }
        }
        let admission_seconds = if gossip_new {
            &shared.metrics.client_admission_seconds
        } else {
            &shared.metrics.gossip_admission_seconds
        };
        admission_seconds.observe(started.elapsed().as_secs_f64());
        out
    }

    /// What a signature-checked transaction must pass before the mempool: not already in a
    /// block (its recorded outcome is the answer), admitted by the application (member key,
    /// decodable command); returns the signer's next committed nonce.
    fn admission_checks(&self, tx: &Transaction, hash: &Hash) -> Result<u64, SubmitOutcome> {
        let shared = &self.shared;
        let rejected = |code: String, reason: String| SubmitOutcome::Rejected {
            tx_hash: hash.to_hex(),
            code,
            reason,
        };
        let store_error = |e: &dyn std::fmt::Display| rejected("store_error".into(), e.to_string());
        if let Some(outcome) = self.committed_outcome(hash).map_err(|e| store_error(&e))? {
            return Err(outcome);
        }
        match shared
            .app
            .admission(&*shared.store, &tx.signer, &tx.payload)
        {
            Ok(Ok(())) => {}
            Ok(Err(refusal)) => return Err(rejected(refusal.code, refusal.reason)),
            Err(e) => return Err(store_error(&e)),
        }
        shared
            .app
            .next_nonce(&*shared.store, &tx.signer)
            .map_err(|e| store_error(&e))
    }

    fn take_waiters(&self, hash: &Hash) -> Vec<Waiter> {
        lock(&self.shared.waiters).remove(hash).unwrap_or_default()
    }

    fn committed_outcome(&self, hash: &Hash) -> Result<Option<SubmitOutcome>> {
        Ok(
            tx_outcome(&*self.shared.store, hash)?.map(|(location, outcome)| {
                to_submit_outcome(hash, location.height, location.index, &outcome)
            }),
        )
    }
}

fn to_submit_outcome(hash: &Hash, height: u64, index: u32, outcome: &TxOutcome) -> SubmitOutcome {
    match outcome {
        TxOutcome::Accepted => SubmitOutcome::Committed {
            tx_hash: hash.to_hex(),
            height,
            index,
        },
        TxOutcome::Rejected { code, reason } => SubmitOutcome::Rejected {
            tx_hash: hash.to_hex(),
            code: code.clone(),
            reason: format!("{reason} (recorded in block {height})"),
        },
    }
}

impl NodeApi for NodeHandle {
    fn status(&self) -> StatusView {
        let shared = &self.shared;
        let status = lock(&shared.status);
        StatusView {
            chain_id: shared.genesis.chain_id.clone(),
            genesis_hash: shared.genesis.hash().to_hex(),
            height: status.height,
            head_hash: status.head_hash.to_hex(),
            head_timestamp_ms: status.head_timestamp_ms,
            round: status.round,
            validators: shared
                .genesis
                .validators
                .validators
                .iter()
                .map(|v| pharmalink_api::http::ValidatorView {
                    public_key: v.public_key.to_hex(),
                    voting_power: v.voting_power,
                })
                .collect(),
            peers: shared
                .transport
                .as_ref()
                .map(|t| t.peers().iter().map(|p| p.to_hex()).collect())
                .unwrap_or_default(),
            mempool_txs: lock(&shared.mempool).len(),
            node_public_key: shared.node_key.to_hex(),
        }
    }

    fn genesis_json(&self) -> serde_json::Value {
        self.shared.genesis_json.clone()
    }

    fn metrics_text(&self) -> String {
        self.shared.metrics.encode()
    }

    fn tx_status(&self, tx_hash: &Hash) -> Result<Option<SubmitOutcome>, String> {
        if let Some(outcome) = self.committed_outcome(tx_hash).map_err(|e| e.to_string())? {
            return Ok(Some(outcome));
        }
        Ok(lock(&self.shared.mempool)
            .contains(tx_hash)
            .then(|| SubmitOutcome::Pending {
                tx_hash: tx_hash.to_hex(),
            }))
    }

    fn vault(&self) -> Option<Arc<dyn pharmalink_api::pharmacy::PhiVault>> {
        self.shared.vault.clone()
    }

    fn tracker(&self) -> Arc<pharmalink_api::tracking::Tracker> {
        self.shared.tracker.clone()
    }

    fn local_put(&self, key: &str, value: &[u8]) -> Result<(), String> {
        self.shared
            .store
            .put_meta(&format!("local/{key}"), value)
            .map_err(|e| e.to_string())
    }

    fn local_get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.shared
            .store
            .get_meta(&format!("local/{key}"))
            .map_err(|e| e.to_string())
    }

    fn local_delete(&self, key: &str) -> Result<(), String> {
        self.shared
            .store
            .delete_meta(&format!("local/{key}"))
            .map_err(|e| e.to_string())
    }

    fn local_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
        self.shared
            .store
            .scan_meta(&format!("local/{prefix}"))
            .map_err(|e| e.to_string())
    }

    async fn set_partition(&self, blocked: Vec<PublicKey>) -> Result<(), String> {
        if !self.shared.fault_injection {
            return Err("fault injection is disabled on this node (set fault_injection = true in a test network's config)".into());
        }
        match &self.shared.transport {
            Some(transport) => transport.set_blocked(blocked).await,
            None => Err("this node has no peer-to-peer transport".into()),
        }
    }

    fn block(&self, height: u64) -> Result<Option<pharmalink_api::BlockView>, String> {
        let store = &*self.shared.store;
        let (Some(block), Some(certificate)) = (
            store.block(height).map_err(|e| e.to_string())?,
            store.certificate(height).map_err(|e| e.to_string())?,
        ) else {
            return Ok(None);
        };
        Ok(Some(pharmalink_api::BlockView::new(&block, &certificate)))
    }

    fn ledger(&self) -> Arc<dyn pharmalink_ledger::LedgerRead + Send + Sync> {
        self.shared.store.clone()
    }

    fn issue_access_token(
        &self,
        mut claims: pharmalink_api::auth::Claims,
    ) -> Result<String, String> {
        let key = self
            .shared
            .token_key
            .as_ref()
            .ok_or("this node issues no access tokens")?;
        claims.iss = Some(key.public_key().to_hex());
        pharmalink_api::auth::sign_claims(key, &claims)
    }

    fn record_audit(&self, entry: &pharmalink_api::audit::AuditEntry) -> Result<(), String> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        let key = format!(
            "audit/{:020}{:010}",
            entry.time_ms,
            SEQUENCE.fetch_add(1, Ordering::Relaxed) % 10_000_000_000
        );
        let value = serde_json::to_vec(entry).map_err(|e| e.to_string())?;
        self.shared
            .store
            .put_meta(&key, &value)
            .map_err(|e| e.to_string())
    }

    fn audit_entries(
        &self,
        limit: usize,
    ) -> Result<Vec<pharmalink_api::audit::AuditEntry>, String> {
        let rows = self
            .shared
            .store
            .scan_meta_newest("audit/", limit)
            .map_err(|e| e.to_string())?;
        Ok(rows
            .iter()
            .filter_map(|(_, value)| serde_json::from_slice(value).ok())
            .collect())
    }

    fn committed_heights(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.committed.subscribe()
    }

    fn organization_keys(&self) -> Vec<PublicKey> {
        self.shared.org_keys.keys().copied().collect()
    }

    async fn start_capture(
        &self,
        spec: pharmalink_api::epcis_api::CaptureSpec,
    ) -> Result<String, String> {
        crate::capture::start(self, spec)
            .await
            .map_err(|e| format!("{e:#}"))
    }

    fn capture_job(
        &self,
        id: &str,
    ) -> Result<Option<pharmalink_api::epcis_api::CaptureJobView>, String> {
        crate::capture::view(self, id).map_err(|e| format!("{e:#}"))
    }

    fn next_nonce(&self, signer: &PublicKey) -> Result<u64, String> {
        self.shared
            .app
            .next_nonce(&*self.shared.store, signer)
            .map_err(|e| e.to_string())
    }

    async fn submit(&self, txs: Vec<Transaction>) -> Vec<SubmitOutcome> {
        let handle = self.clone();
        let admitted = match tokio::task::spawn_blocking(move || handle.admit(txs, true)).await {
            Ok(admitted) => admitted,
            Err(e) => {
                return vec![SubmitOutcome::Busy {
                    tx_hash: String::new(),
                    reason: format!("admission failed: {e}"),
                }]
            }
        };
        let deadline = tokio::time::Instant::now() + Duration::from_millis(SUBMIT_WAIT_MS_MAX);
        let mut outcomes = Vec::with_capacity(admitted.len());
        for (hash, result) in admitted {
            let outcome = match result {
                Err(outcome) => outcome,
                Ok(None) => SubmitOutcome::Pending {
                    tx_hash: hash.to_hex(),
                },
                Ok(Some(receiver)) => match tokio::time::timeout_at(deadline, receiver).await {
                    Ok(Ok(outcome)) => outcome,
                    _ => SubmitOutcome::Pending {
                        tx_hash: hash.to_hex(),
                    },
                },
            };
            outcomes.push(outcome);
        }
        outcomes
    }
}

// ---------------------------------------------------------------------------------------------
// The consensus loop

pub struct ConsensusLoop {
    handle: NodeHandle,
    engine: Engine<SigningKey, Ed25519Verifier>,
    options: RuntimeOptions,
    timers: BTreeMap<(tokio::time::Instant, u64), Timeout>,
    timer_sequence: u64,
    /// (height, round) we owe a proposal for.
    pending_request: Option<(u64, u32)>,
    inputs: mpsc::Receiver<LoopInput>,
    /// Our own input queue, for block sync to deliver into.
    inputs_sender: mpsc::Sender<LoopInput>,
    last_follow: tokio::time::Instant,
    started: tokio::time::Instant,
    /// Hash of the valid block stored under [`SAFETY_VALID_BLOCK_KEY`].
    persisted_valid_block: Option<Hash>,
    /// The last block validated or proposed here, by hash, with its transactions' hashes:
    /// when it is decided, the commit does not hash them again.
    tx_hashes_of: Option<(Hash, Vec<Hash>)>,
    /// Whether the input being handled is a block from sync (its decision may be pipelined).
    synced_input: bool,
    /// A synced block's write running on its own thread (see [`ConsensusLoop::commit_synced`]).
    in_flight: Option<InFlight>,
    /// When the current height started here (its predecessor committed), or, after it waited
    /// with nothing to decide, when this node had something to decide (for the stage metrics).
    height_started: Instant,
    /// Whether this height is waiting with nothing to decide (an idle network). A proposal that
    /// ends such a wait (another node had something to decide) is not observed as a wait: how
    /// long it took since the work arrived elsewhere is not known here.
    height_idle: bool,
    /// When a proposal of the current height was first in hand (validated, or built here).
    proposal_in_hand: Option<Instant>,
    /// The engine's (height, round) when last looked at, for counting failed rounds (a round
    /// reached before a restart is not counted again).
    last_round: (u64, u32),
}

/// A decided block executed, on its way to the store.
struct Executed {
    commit: Arc<BlockCommit>,
    hashes: Vec<Hash>,
    results: Vec<TxOutcome>,
    started: Instant,
}

/// A synced block being written on a thread of its own; it is acknowledged once joined.
struct InFlight {
    executed: Executed,
    write: std::thread::JoinHandle<Result<ChainHead, StoreError>>,
}

/// Transactions in the previous block from which load counts as sustained, for
/// [`RuntimeOptions::block_gather_ms`].
pub const GATHER_AFTER_TXS: usize = 64;

/// [`ConsensusLoop::propose_wait_left`] with transactions pending: of `gather`, what is left
/// since the previous block's timestamp, when that block showed sustained load.
fn gather_wait_left(gather: Duration, head_txs: usize, head_age: Duration) -> Duration {
    if head_txs < GATHER_AFTER_TXS {
        return Duration::ZERO;
    }
    gather.saturating_sub(head_age)
}

/// [`ConsensusLoop::block_due_in`], for a head block of `head_txs` transactions and
/// `head_age`; an `empty_interval` of zero makes no block for idleness alone.
fn block_due_in(head_txs: usize, head_age: Duration, empty_interval: Duration) -> Option<Duration> {
    let certify = (head_txs > 0).then_some(Duration::from_millis(CERTIFY_STATE_AFTER_MS));
    let idle = (!empty_interval.is_zero()).then_some(empty_interval);
    [certify, idle]
        .into_iter()
        .flatten()
        .min()
        .map(|due| due.saturating_sub(head_age))
}

/// The persisted safety state, with its valid block put back from where it is stored apart
/// (when it is the block the state names), and the hash of that stored block.
fn load_safety_state(store: &RocksStore) -> Result<(Option<SafetyState>, Option<Hash>)> {
    let Some(bytes) = store.get_meta(SAFETY_STATE_KEY)? else {
        return Ok((None, None));
    };
    let mut state: SafetyState =
        borsh::from_slice(&bytes).context("stored consensus safety state")?;
    let stored_block = match store.get_meta(SAFETY_VALID_BLOCK_KEY)? {
        Some(bytes) => {
            Some(Block::from_canonical_bytes(&bytes).context("stored consensus valid block")?)
        }
        None => None,
    };
    let stored_hash = stored_block.as_ref().map(Block::hash);
    if state.valid_block.is_none()
        && stored_hash.is_some()
        && state.valid.map(|v| v.1) == stored_hash
    {
        state.valid_block = stored_block;
    }
    Ok((Some(state), stored_hash))
}

/// Durably writes `state`; its valid block only when it is not the one stored already
/// (`persisted_valid_block`), in the same atomic write.
fn persist_safety_state(
    store: &RocksStore,
    persisted_valid_block: &mut Option<Hash>,
    mut state: SafetyState,
) -> Result<()> {
    let block = state.valid_block.take();
    let bytes = borsh::to_vec(&state)?;
    let hash = block.as_ref().map(Block::hash);
    match block {
        Some(block) if hash != *persisted_valid_block => {
            store.put_metas(&[
                (SAFETY_STATE_KEY, &bytes),
                (SAFETY_VALID_BLOCK_KEY, &block.to_canonical_bytes()?),
            ])?;
            *persisted_valid_block = hash;
        }
        _ => store.put_meta(SAFETY_STATE_KEY, &bytes)?,
    }
    Ok(())
}

impl ConsensusLoop {
    pub fn new(
        handle: NodeHandle,
        key: SigningKey,
        options: RuntimeOptions,
        inputs: mpsc::Receiver<LoopInput>,
        inputs_sender: mpsc::Sender<LoopInput>,
    ) -> Result<ConsensusLoop> {
        let shared = &handle.shared;
        let head = shared.store.head()?;
        let tip = ChainTip {
            next_height: head.as_ref().map_or(1, |h| h.height + 1),
            previous_block_hash: head
                .as_ref()
                .map_or_else(|| shared.genesis.hash(), |h| h.block_hash),
            previous_timestamp_ms: head
                .as_ref()
                .map_or(shared.genesis.genesis_time_ms, |h| h.timestamp_ms),
        };
        let (persisted, persisted_valid_block) = load_safety_state(&*shared.store)?;
        let mut config = Config::new(
            shared.genesis.chain_id.clone(),
            shared.genesis.validators.clone(),
        );
        config.timeouts = options.timeouts;
        config.wait_for_txs = true;
        let engine = Engine::new(config, key, Ed25519Verifier, tip, persisted);
        let last_round = (engine.height(), engine.round());
        Ok(ConsensusLoop {
            handle,
            engine,
            options,
            timers: BTreeMap::new(),
            timer_sequence: 0,
            pending_request: None,
            inputs,
            inputs_sender,
            last_follow: tokio::time::Instant::now(),
            started: tokio::time::Instant::now(),
            persisted_valid_block,
            tx_hashes_of: None,
            synced_input: false,
            in_flight: None,
            height_started: Instant::now(),
            height_idle: false,
            proposal_in_hand: None,
            last_round,
        })
    }

    /// Runs until the node stops or fails; a failure to persist or append is fatal.
    pub async fn run(mut self, mut shutdown: tokio::sync::watch::Receiver<bool>) -> Result<()> {
        let mut effects: VecDeque<Effect> = VecDeque::new();
        effects.extend(self.engine.handle(Input::Tick { now_ms: now_ms() }));
        effects.extend(self.engine.start());
        loop {
            while let Some(effect) = effects.pop_front() {
                let more = self.execute(effect)?;
                effects.extend(more);
            }
            if self.engine.waiting_for_txs() && self.something_to_decide() {
                if self.height_idle {
                    // The wait for a proposal counts from when there is something to decide.
                    self.height_started = Instant::now();
                    self.height_idle = false;
                }
                let height = self.engine.height();
                effects.extend(self.engine.handle(Input::TxsAvailable { height }));
                continue;
            }
            if let Some(input) = self.try_propose()? {
                self.synced_input = false;
                self.note_proposal_in_hand();
                effects.extend(self.engine.handle(input));
                continue;
            }
            if self.engine.waiting_for_txs() {
                // Nothing to decide (checked above): this height is idle until something comes.
                self.height_idle = true;
            }
            let next_timer = self.timers.keys().next().map(|(at, _)| *at);
            let propose_wait = self
                .pending_request
                .and_then(|_| self.propose_wait_left())
                .map(|left| tokio::time::Instant::now() + left);
            let block_due = self
                .engine
                .waiting_for_txs()
                .then(|| self.block_due_in())
                .flatten()
                .map(|left| tokio::time::Instant::now() + left);
            // An observer gets no consensus messages: it follows the chain by block sync. So
            // does a validator just started, until consensus carries it.
            let follow_at = if self.engine.validator_index().is_none() {
                Some(self.last_follow + Duration::from_millis(OBSERVER_SYNC_INTERVAL_MS))
            } else if self.started.elapsed() < Duration::from_millis(STARTUP_SYNC_WINDOW_MS) {
                Some(self.last_follow + Duration::from_millis(STARTUP_SYNC_INTERVAL_MS))
            } else {
                None
            };
            let wake = [next_timer, propose_wait, block_due, follow_at]
                .into_iter()
                .flatten()
                .min();
            // Nothing queued: finish the write in flight (its submitters are waiting) first.
            if self.inputs.is_empty() {
                blocking(|| self.drain())?;
            }
            let sleep = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = shutdown.changed() => {
                    blocking(|| self.drain())?;
                    return Ok(());
                }
                input = self.inputs.recv() => {
                    let Some(input) = input else {
                        blocking(|| self.drain())?;
                        return Ok(());
                    };
                    effects.extend(self.engine.handle(Input::Tick { now_ms: now_ms() }));
                    self.synced_input = matches!(input, LoopInput::Synced(_));
                    let input = match input {
                        LoopInput::Consensus(message) => Input::Message(message),
                        LoopInput::Synced(synced) => Input::SyncedBlock { block: synced.0, certificate: synced.1 },
                    };
                    effects.extend(self.engine.handle(input));
                }
                _ = self.handle.shared.tx_arrived.notified(),
                    if self.pending_request.is_some() || self.engine.waiting_for_txs() => {}
                _ = sleep => {
                    self.synced_input = false;
                    blocking(|| self.drain())?;
                    let now = tokio::time::Instant::now();
                    if follow_at.is_some_and(|at| at <= now) {
                        self.last_follow = now;
                        if let Some(transport) = &self.handle.shared.transport {
                            let next = self.handle.shared.store.head()?.map_or(1, |h| h.height + 1);
                            transport.request_sync(next, self.inputs_sender.clone());
                        }
                    }
                    effects.extend(self.engine.handle(Input::Tick { now_ms: now_ms() }));
                    while let Some(entry) = self.timers.first_entry() {
                        if entry.key().0 > now {
                            break;
                        }
                        let timeout = entry.remove();
                        effects.extend(self.engine.handle(Input::Timeout(timeout)));
                    }
                }
            }
            let (height, round) = (self.engine.height(), self.engine.round());
            let (last_height, last_round) = self.last_round;
            let since = if height == last_height { last_round } else { 0 };
            if round > since {
                // Failed rounds (rare in a healthy network): the operator sees which height
                // and how often.
                tracing::info!(height, round, "consensus moved to a new round");
                self.handle
                    .shared
                    .metrics
                    .round_changes
                    .inc_by(u64::from(round - since));
            }
            self.last_round = (height, round);
            lock(&self.handle.shared.status).round = round;
            self.handle.shared.metrics.round.set(i64::from(round));
        }
    }

    /// Answers an outstanding value request once the height has something to decide (see
    /// [`RuntimeOptions::empty_block_interval_ms`]) and, under sustained load, the block has
    /// gathered ([`RuntimeOptions::block_gather_ms`]) — at once in a round after the first: an
    /// earlier round at this height already failed (often a dead proposer), and waiting would
    /// only lengthen the gap.
    fn try_propose(&mut self) -> Result<Option<Input>> {
        let Some((height, round)) = self.pending_request else {
            return Ok(None);
        };
        if round == 0 && self.propose_wait_left() != Some(Duration::ZERO) {
            return Ok(None);
        }
        self.pending_request = None;
        blocking(|| self.drain())?;
        let (block, hashes) = self.build_block(height, round)?;
        self.tx_hashes_of = Some((block.hash(), hashes));
        Ok(Some(Input::ProposeValue {
            height,
            round,
            block,
        }))
    }

    /// How much longer a proposer (in round 0) waits before proposing: until the height has
    /// something to decide (None: until a transaction, a message or the empty-block interval
    /// wakes the loop); then, with a block that would not be full, under sustained load, for
    /// more ([`RuntimeOptions::block_gather_ms`]).
    fn propose_wait_left(&self) -> Option<Duration> {
        if self.engine.waiting_for_txs() {
            return None;
        }
        let pending = lock(&self.handle.shared.mempool).len();
        if pending == 0
            || pending >= self.options.block_txs_max
            || self.options.block_gather_ms == 0
        {
            return Some(Duration::ZERO);
        }
        let (head_txs, head_age) = self.head_block();
        Some(gather_wait_left(
            Duration::from_millis(self.options.block_gather_ms),
            head_txs,
            head_age,
        ))
    }

    /// The head block's transaction count and the time since its timestamp.
    fn head_block(&self) -> (usize, Duration) {
        let status = lock(&self.handle.shared.status);
        (
            status.head_txs,
            Duration::from_millis(now_ms().saturating_sub(status.head_timestamp_ms)),
        )
    }

    /// Whether this node has something for the current height to decide: transactions, or a
    /// block due without them ([`ConsensusLoop::block_due_in`]).
    fn something_to_decide(&self) -> bool {
        !lock(&self.handle.shared.mempool).is_empty() || self.block_due_in() == Some(Duration::ZERO)
    }

    /// Time until a block is due without transactions: [`CERTIFY_STATE_AFTER_MS`] after a
    /// block with transactions, [`RuntimeOptions::empty_block_interval_ms`] after any. Counted
    /// from the previous block's timestamp, so all validators agree on it to within their
    /// clocks' skew. None: not before a transaction comes.
    fn block_due_in(&self) -> Option<Duration> {
        let (head_txs, head_age) = self.head_block();
        block_due_in(
            head_txs,
            head_age,
            Duration::from_millis(self.options.empty_block_interval_ms),
        )
    }

    /// A proposal from the mempool, and its transactions' hashes.
    fn build_block(&self, height: u64, round: u32) -> Result<(Block, Vec<Hash>)> {
        let shared = &self.handle.shared;
        let store = &*shared.store;
        let head = store.head()?;
        let (txs, tx_hashes): (Vec<Transaction>, Vec<Hash>) = lock(&shared.mempool)
            .batch(
                self.options.block_txs_max.min(BLOCK_TXS_MAX),
                BLOCK_BYTES_MAX - 64 * 1024,
            )
            .into_iter()
            .unzip();
        let previous_timestamp = head
            .as_ref()
            .map_or(shared.genesis.genesis_time_ms, |h| h.timestamp_ms);
        let header = BlockHeader {
            chain_id: shared.genesis.chain_id.clone(),
            height,
            round,
            timestamp_ms: now_ms().max(previous_timestamp),
            previous_block_hash: head
                .as_ref()
                .map_or_else(|| shared.genesis.hash(), |h| h.block_hash),
            tx_root: merkle::root(&tx_hashes),
            tx_count: txs.len() as u32,
            state_root: shared.app.state_root(store)?,
            history_root: head
                .as_ref()
                .map(|h| h.history.root())
                .unwrap_or_else(merkle::empty_root),
            proposer: shared.node_key,
            validator_set_hash: shared.genesis.validators.hash(),
        };
        Ok((Block { header, txs }, tx_hashes))
    }

    /// Whether a proposed block may be decided: it extends our head, carries our state root,
    /// and its transactions are well-formed and signed.
    fn validate(&self, block: &Block) -> Result<Vec<Hash>, String> {
        let shared = &self.handle.shared;
        let store = &*shared.store;
        let head = store.head().map_err(|e| e.to_string())?;
        let header = &block.header;
        block.check().map_err(|e| e.to_string())?;
        let expected_previous = head
            .as_ref()
            .map_or_else(|| shared.genesis.hash(), |h| h.block_hash);
        if header.previous_block_hash != expected_previous {
            return Err("previous_block_hash is not our head".into());
        }
        let history_root = head
            .as_ref()
            .map(|h| h.history.root())
            .unwrap_or_else(merkle::empty_root);
        if header.history_root != history_root {
            return Err("history_root differs".into());
        }
        if header.state_root != shared.app.state_root(store).map_err(|e| e.to_string())? {
            return Err("state_root differs from ours".into());
        }
        if header.validator_set_hash != shared.genesis.validators.hash() {
            return Err("validator_set_hash differs".into());
        }
        // Every validator verifies every transaction once: those in our mempool were verified
        // (and hashed) on admission, and are found by signer and nonce without hashing them
        // again. The rest are hashed after the lock is released (admission waits on it).
        let pending: Vec<Option<Hash>> = {
            let mempool = lock(&shared.mempool);
            block
                .txs
                .iter()
                .map(|tx| mempool.pending_hash(tx))
                .collect()
        };
        let mut unverified = Vec::new();
        let mut unverified_hashes = Vec::new();
        let hashes: Vec<Hash> = block
            .txs
            .iter()
            .zip(pending)
            .map(|(tx, pending)| {
                pending.unwrap_or_else(|| {
                    let hash = tx.hash();
                    unverified.push(tx.clone());
                    unverified_hashes.push(hash);
                    hash
                })
            })
            .collect();
        block
            .verify_tx_root_of(&hashes)
            .map_err(|e| e.to_string())?;
        Transaction::verify_signatures(&unverified).map_err(|e| e.to_string())?;
        if !unverified_hashes.is_empty() {
            lock(&shared.mempool).note_checked_in_proposal(unverified_hashes);
        }
        Ok(hashes)
    }

    fn execute(&mut self, effect: Effect) -> Result<Vec<Effect>> {
        let shared = self.handle.shared.clone();
        // Only a synced decision overlaps the write in flight; the rest read or write the store
        // after it (timers and broadcasts touch neither).
        let overlaps = match &effect {
            Effect::Decide { .. } => self.synced_input,
            Effect::ScheduleTimeout { .. }
            | Effect::Broadcast(_)
            | Effect::RequestValue { .. }
            | Effect::RequestSync { .. } => true,
            _ => false,
        };
        if !overlaps {
            blocking(|| self.drain())?;
        }
        Ok(match effect {
            Effect::PersistSafetyState(state) => {
                let started = Instant::now();
                blocking(|| {
                    persist_safety_state(&shared.store, &mut self.persisted_valid_block, state)
                })?;
                shared
                    .metrics
                    .safety_persist_seconds
                    .observe(started.elapsed().as_secs_f64());
                vec![]
            }
            Effect::Broadcast(message) => {
                if let Some(transport) = &shared.transport {
                    transport.broadcast_consensus(message.to_canonical_bytes()?);
                }
                vec![]
            }
            Effect::ScheduleTimeout {
                timeout,
                duration_ms,
            } => {
                self.timer_sequence += 1;
                self.timers.insert(
                    (
                        tokio::time::Instant::now() + Duration::from_millis(duration_ms),
                        self.timer_sequence,
                    ),
                    timeout,
                );
                vec![]
            }
            Effect::RequestValue { height, round } => {
                self.pending_request = Some((height, round));
                vec![]
            }
            Effect::ValidateProposal {
                height,
                round: _,
                block,
            } => {
                let block_hash = block.hash();
                let valid = match blocking(|| self.validate(&block)) {
                    Ok(hashes) => {
                        self.tx_hashes_of = Some((block_hash, hashes));
                        if height == self.engine.height() {
                            self.note_proposal_in_hand();
                        }
                        true
                    }
                    Err(reason) => {
                        tracing::warn!(height, %block_hash, reason, "proposal rejected");
                        false
                    }
                };
                self.engine.handle(Input::ProposalVerdict {
                    height,
                    block_hash,
                    valid,
                })
            }
            Effect::Decide { block, certificate } if self.synced_input => {
                blocking(|| self.commit_synced(block, certificate))?;
                self.pending_request = None;
                vec![]
            }
            Effect::Decide { block, certificate } => {
                if let Some(in_hand) = self.proposal_in_hand {
                    shared
                        .metrics
                        .votes_seconds
                        .observe(in_hand.elapsed().as_secs_f64());
                }
                blocking(|| self.commit(block, certificate))?;
                self.pending_request = None;
                vec![]
            }
            Effect::RequestSync { from_height } => {
                match &shared.transport {
                    Some(transport) => {
                        transport.request_sync(from_height, self.inputs_sender.clone())
                    }
                    None => tracing::warn!(from_height, "behind, but no transport to sync over"),
                }
                vec![]
            }
            Effect::RecordEvidence(evidence) => {
                let (validator, height, round, step) = evidence.key();
                tracing::warn!(
                    validator,
                    height,
                    round,
                    ?step,
                    "double signing evidence recorded"
                );
                let bytes = borsh::to_vec(&evidence)?;
                shared.store.put_meta(
                    &format!("evidence/{height}/{round}/{validator}/{step:?}"),
                    &bytes,
                )?;
                vec![]
            }
        })
    }

    /// Executes a decided block on `state` (the store, or the store with the block in flight).
    fn execute_decided(
        &mut self,
        state: &dyn LedgerRead,
        block: Block,
        certificate: pharmalink_ledger::CommitCertificate,
    ) -> Result<Executed> {
        let started = Instant::now();
        let hashes = match self.tx_hashes_of.take() {
            Some((hash, hashes)) if hash == block.hash() => hashes,
            _ => block.tx_hashes(),
        };
        let outcome = self.handle.shared.app.execute(state, &block, &hashes)?;
        Ok(Executed {
            commit: Arc::new(BlockCommit {
                block,
                certificate,
                state_writes: outcome.state_writes,
                index_entries: outcome.index_entries,
            }),
            hashes,
            results: outcome.results,
            started,
        })
    }

    /// Decide → execute → one atomic synced write → acknowledge, in this thread.
    fn commit(
        &mut self,
        block: Block,
        certificate: pharmalink_ledger::CommitCertificate,
    ) -> Result<()> {
        self.drain()?;
        let store = self.handle.shared.store.clone();
        let executed = self.execute_decided(&*store, block, certificate)?;
        let head = store.append_shared_hashed(&executed.commit, Some(executed.hashes.clone()));
        self.acknowledge(executed, head)
    }

    /// A block from sync: executed on the store plus the previous synced block's writes while
    /// that block is still being written, then written on a thread of its own. Catching up
    /// thus runs execution and RocksDB's write on two cores. Nothing is acknowledged, nor the
    /// head reported, before its write returns ([`ConsensusLoop::drain`]).
    fn commit_synced(
        &mut self,
        block: Block,
        certificate: pharmalink_ledger::CommitCertificate,
    ) -> Result<()> {
        let store = self.handle.shared.store.clone();
        let in_flight = self.in_flight.take();
        let executed = match &in_flight {
            Some(f) => {
                let pending = PendingState::new(&store, &f.executed.commit.state_writes);
                self.execute_decided(&pending, block, certificate)
            }
            None => self.execute_decided(&*store, block, certificate),
        };
        self.in_flight = in_flight;
        let executed = executed?;
        self.drain()?;
        let commit = executed.commit.clone();
        let hashes = executed.hashes.clone();
        let write = std::thread::Builder::new()
            .name("block-write".into())
            .spawn(move || store.append_shared_hashed(&commit, Some(hashes)))
            .context("starting the block writer")?;
        self.in_flight = Some(InFlight { executed, write });
        Ok(())
    }

    /// Waits for the write in flight, if any, and acknowledges its block.
    fn drain(&mut self) -> Result<()> {
        let Some(in_flight) = self.in_flight.take() else {
            return Ok(());
        };
        let head = in_flight
            .write
            .join()
            .map_err(|_| anyhow!("the block writer panicked"))?;
        self.acknowledge(in_flight.executed, head)
    }

    /// After the block's write: acknowledge its submitters, update status and metrics.
    fn acknowledge(
        &mut self,
        executed: Executed,
        head: Result<ChainHead, StoreError>,
    ) -> Result<()> {
        let shared = &self.handle.shared;
        let Executed {
            commit,
            hashes,
            results,
            started,
        } = executed;
        let head = match head {
            Ok(head) => head,
            Err(e) => bail!(
                "cannot append decided block {}: {e}",
                commit.block.header.height
            ),
        };
        // Durable: now acknowledge and publish.
        let height = head.height;
        let committed: Vec<(PublicKey, u64, Hash)> = commit
            .block
            .txs
            .iter()
            .zip(hashes)
            .map(|(t, hash)| (t.signer, t.nonce, hash))
            .collect();
        let dropped = lock(&shared.mempool).remove_committed(&committed);
        let now = Instant::now();
        {
            let mut waiters = lock(&shared.waiters);
            for (index, ((_, _, hash), result)) in committed.iter().zip(&results).enumerate() {
                for (since, sender) in waiters.remove(hash).unwrap_or_default() {
                    shared
                        .metrics
                        .commit_latency
                        .observe(now.duration_since(since).as_secs_f64());
                    let _ = sender.send(to_submit_outcome(hash, height, index as u32, result));
                }
            }
            for hash in dropped {
                for (_, sender) in waiters.remove(&hash).unwrap_or_default() {
                    let _ = sender.send(SubmitOutcome::Rejected {
                        tx_hash: hash.to_hex(),
                        code: "nonce_used".into(),
                        reason: "another transaction with the same signer and nonce was committed"
                            .into(),
                    });
                }
            }
        }
        {
            let mut status = lock(&shared.status);
            status.height = height;
            status.head_hash = head.block_hash;
            status.head_timestamp_ms = head.timestamp_ms;
            status.head_txs = committed.len();
        }
        shared.committed.send_replace(height);
        shared.metrics.height.set(height as i64);
        shared.metrics.txs_committed.inc_by(committed.len() as u64);
        shared
            .metrics
            .mempool_txs
            .set(lock(&shared.mempool).len() as i64);
        shared
            .metrics
            .block_commit_seconds
            .observe(started.elapsed().as_secs_f64());
        tracing::debug!(height, txs = committed.len(), hash = %head.block_hash, "committed");
        self.height_started = Instant::now();
        self.height_idle = false;
        self.proposal_in_hand = None;
        Ok(())
    }

    /// A proposal of the current height is in hand (validated, or built here): the first one
    /// ends the height's wait for a proposal.
    fn note_proposal_in_hand(&mut self) {
        if self.proposal_in_hand.is_some() {
            return;
        }
        let now = Instant::now();
        self.proposal_in_hand = Some(now);
        if !self.height_idle {
            self.handle
                .shared
                .metrics
                .proposal_wait_seconds
                .observe(now.duration_since(self.height_started).as_secs_f64());
        }
    }
}

/// A one-validator node over a fresh RocksDB store with the nonce application, whose genesis
/// admits the first `signers` load-test keys (returned); the directory lives as long as the
/// returned guard.
#[cfg(test)]
pub(crate) fn nonce_node_for_tests(
    chain_id: &str,
    signers: u32,
) -> (NodeHandle, Vec<SigningKey>, tempfile::TempDir) {
    let validator = SigningKey::from_seed([1; 32]);
    let members: Vec<SigningKey> = (0..signers).map(crate::genesis::load_test_key).collect();
    let genesis =
        pharmalink_ledger::builder::genesis(chain_id, 0, &[validator.clone()], vec![]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RocksStore::open(&dir.path().join("ledger"), &genesis).unwrap());
    let node = NodeHandle::new(
        genesis.clone(),
        serde_json::Value::Null,
        store,
        Arc::new(crate::app::NonceApp::new(
            &genesis,
            &[crate::loadgen::organization(signers)],
        )),
        Mempool::new(chain_id.into()),
        validator.public_key(),
        None,
        false,
    )
    .unwrap();
    (node, members, dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pharmalink_consensus::Step;
    use pharmalink_ledger::builder::{genesis, ChainBuilder};
    use pharmalink_ledger::SigningKey;

    #[test]
    fn blocks_without_transactions_and_gathering_wait_from_the_previous_block() {
        let ms = Duration::from_millis;
        // Without transactions a block is due a fixed time after the previous block's timestamp
        // (the same instant for every validator, whenever each decided that block): soon after
        // one with transactions (to certify their state), else after the idle interval; never
        // for idleness if the interval is 0.
        let certify = ms(CERTIFY_STATE_AFTER_MS);
        assert_eq!(block_due_in(0, ms(30), ms(60_000)), Some(ms(59_970)));
        assert_eq!(
            block_due_in(0, ms(61_000), ms(60_000)),
            Some(Duration::ZERO)
        );
        assert_eq!(block_due_in(0, ms(30), Duration::ZERO), None);
        assert_eq!(block_due_in(3, ms(30), ms(60_000)), Some(certify - ms(30)));
        assert_eq!(
            block_due_in(3, ms(30), Duration::ZERO),
            Some(certify - ms(30))
        );
        assert_eq!(block_due_in(3, certify, ms(60_000)), Some(Duration::ZERO));
        assert_eq!(block_due_in(3, ms(30), ms(20)), Some(Duration::ZERO));
        // Gathering: only after a block that showed load, and only until `gather` has passed
        // since it; off at 0.
        assert_eq!(
            gather_wait_left(ms(40), GATHER_AFTER_TXS - 1, ms(5)),
            Duration::ZERO
        );
        assert_eq!(gather_wait_left(ms(40), GATHER_AFTER_TXS, ms(5)), ms(35));
        assert_eq!(gather_wait_left(ms(40), 4000, ms(40)), Duration::ZERO);
        assert_eq!(gather_wait_left(ms(0), 4000, ms(1)), Duration::ZERO);
    }

    /// Gossip that brings a transaction this node already checked (pending, or carried by a
    /// proposal before its gossip came) does not pay for a second signature check.
    #[test]
    fn gossip_does_not_check_again_what_was_checked_here() {
        let (node, members, _dir) = nonce_node_for_tests("gossip-test", 3);
        let sign = |member: usize, nonce: u64| {
            Transaction::sign("gossip-test", &members[member], nonce, vec![1; 100]).unwrap()
        };
        let pending = || lock(&node.shared.mempool).len();
        let known = || node.shared.metrics.gossip_txs_known.get();
        let good = sign(0, 0);
        node.admit_gossiped(vec![good.clone()]);
        assert_eq!((pending(), known()), (1, 0));
        // Already pending: dropped before any signature check.
        node.admit_gossiped(vec![good]);
        assert_eq!((pending(), known()), (1, 1));
        // A forged signature is refused...
        let mut forged = sign(1, 0);
        forged.signature.0[0] ^= 1;
        node.admit_gossiped(vec![forged.clone()]);
        assert_eq!((pending(), known()), (1, 1));
        // ...and its signature is what is checked: had a proposal's validation checked the
        // transaction with this hash (the hash covers the signature), it would not be checked
        // again, only admitted.
        lock(&node.shared.mempool).note_checked_in_proposal([forged.hash()]);
        node.admit_gossiped(vec![forged, sign(2, 0)]);
        assert_eq!((pending(), known()), (3, 2));
    }

    #[test]
    fn the_valid_block_is_stored_once_and_put_back_only_for_the_state_naming_it() {
        let validator = SigningKey::from_seed([3; 32]);
        let doc = genesis(
            "safety-test",
            1_000,
            std::slice::from_ref(&validator),
            vec![],
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(&dir.path().join("ledger"), &doc).unwrap();
        let mut chain = ChainBuilder::new(doc, vec![validator.clone()]).unwrap();
        let tx = Transaction::sign("safety-test", &validator, 0, vec![7; 40]).unwrap();
        let block = chain
            .next_block(vec![tx], 2_000, Hash([0; 32]))
            .unwrap()
            .block;
        let other = chain
            .next_block(vec![], 3_000, Hash([1; 32]))
            .unwrap()
            .block;
        assert!(load_safety_state(&store).unwrap().0.is_none());

        let mut persisted = None;
        let mut state = SafetyState {
            last_signed: Some((1, 0, Step::Prevote)),
            valid: Some((0, block.hash())),
            valid_block: Some(block.clone()),
            ..SafetyState::default()
        };
        persist_safety_state(&store, &mut persisted, state.clone()).unwrap();
        assert_eq!(persisted, Some(block.hash()));
        assert_eq!(
            load_safety_state(&store).unwrap(),
            (Some(state.clone()), Some(block.hash()))
        );

        // A later step with the same valid block: the state changes, the block is not written
        // again (a marker put in its place stays there).
        store
            .put_meta(SAFETY_VALID_BLOCK_KEY, &other.to_canonical_bytes().unwrap())
            .unwrap();
        state.last_signed = Some((1, 0, Step::Precommit));
        persist_safety_state(&store, &mut persisted, state.clone()).unwrap();
        let (loaded, stored) = load_safety_state(&store).unwrap();
        assert_eq!(
            stored,
            Some(other.hash()),
            "the valid block was written again"
        );
        assert_eq!(loaded.unwrap().last_signed, state.last_signed);
        store
            .put_meta(SAFETY_VALID_BLOCK_KEY, &block.to_canonical_bytes().unwrap())
            .unwrap();
        assert_eq!(load_safety_state(&store).unwrap().0, Some(state.clone()));

        // A new height with no valid value: nothing is put back.
        let next = SafetyState {
            last_signed: Some((2, 0, Step::Prevote)),
            ..SafetyState::default()
        };
        persist_safety_state(&store, &mut persisted, next.clone()).unwrap();
        assert_eq!(load_safety_state(&store).unwrap().0, Some(next));

        // A valid value whose block is not the stored one is not given the stored block.
        let mismatched = SafetyState {
            last_signed: Some((2, 1, Step::Precommit)),
            valid: Some((1, other.hash())),
            valid_block: None,
            ..SafetyState::default()
        };
        persist_safety_state(&store, &mut persisted, mismatched.clone()).unwrap();
        assert_eq!(load_safety_state(&store).unwrap().0, Some(mismatched));

        // A new valid block replaces the stored one.
        let replaced = SafetyState {
            last_signed: Some((2, 1, Step::Precommit)),
            valid: Some((1, other.hash())),
            valid_block: Some(other.clone()),
            ..SafetyState::default()
        };
        persist_safety_state(&store, &mut persisted, replaced.clone()).unwrap();
        assert_eq!(
            load_safety_state(&store).unwrap(),
            (Some(replaced), Some(other.hash()))
        );
    }
}
