//! Connects the consensus loop and the mempool to the libp2p transport (`net`): consensus
//! messages and gossiped transactions in, broadcasts and gossip out, block sync both ways.

use crate::net::{NetEvent, NetHandle, SYNC_RESPONSE_BLOCKS_MAX};
use crate::runtime::{lock, LoopInput, NodeHandle, Transport};
use borsh::{BorshDeserialize, BorshSerialize};
use pharmalink_consensus::Message;
use pharmalink_ledger::{Block, Canonical, CommitCertificate, LedgerRead, PublicKey, Transaction};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;

/// Blocks asked of a peer per sync request.
pub const SYNC_BATCH_BLOCKS: u32 = 64;
/// Block sync asks for the next blocks once fewer than this many are still queued for the
/// consensus loop (so the transfer overlaps their execution).
pub const SYNC_PREFETCH_BELOW: u64 = SYNC_BATCH_BLOCKS as u64 / 2;
/// How long blocks handed to the loop may stay unapplied before the loop, asking again at the
/// same height, gets them afresh (they were invalid, or the loop decided otherwise).
pub const SYNC_STALL: std::time::Duration = std::time::Duration::from_secs(2);
/// Gossiped transactions admitted together (one signature batch).
pub const GOSSIP_ADMIT_BATCH_MAX: usize = 512;
/// Transactions in one gossip message.
pub const GOSSIP_BATCH_TXS_MAX: usize = 512;
/// Transactions waiting to be gossiped; beyond that new ones are not gossiped (they stay in
/// this node's mempool and reach the others in this node's proposals).
pub const GOSSIP_QUEUE_MAX: usize = 16_384;

/// A gossip message: the canonical bytes of up to [`GOSSIP_BATCH_TXS_MAX`] transactions. One
/// message per batch instead of per transaction: the per-message costs of gossipsub, yamux and
/// noise (framing, ids, duplicate checks, syscalls) are paid once per batch.
pub fn encode_tx_batch(txs: &[Vec<u8>]) -> Vec<u8> {
    borsh::to_vec(txs).unwrap_or_default()
}

/// Decodes a gossip message into transactions; malformed ones are skipped, a malformed batch
/// is an error.
pub fn decode_tx_batch(bytes: &[u8]) -> Result<Vec<Transaction>, String> {
    let items: Vec<Vec<u8>> = borsh::from_slice(bytes).map_err(|e| format!("tx batch: {e}"))?;
    if items.len() > GOSSIP_BATCH_TXS_MAX {
        return Err(format!(
            "tx batch of {} transactions: at most {GOSSIP_BATCH_TXS_MAX}",
            items.len()
        ));
    }
    Ok(items
        .iter()
        .filter_map(|item| Transaction::from_canonical_bytes(item).ok())
        .collect())
}

/// Collects the transactions to gossip and publishes them in batches: it takes whatever is
/// queued when the transport is ready, so batches grow with the load and a lone transaction
/// goes out at once.
async fn gossip_batches(net: NetHandle, mut queue: mpsc::Receiver<Vec<u8>>) {
    while let Some(first) = queue.recv().await {
        let mut size = first.len() + 4;
        let mut batch = vec![first];
        while batch.len() < GOSSIP_BATCH_TXS_MAX {
            match queue.try_recv() {
                Ok(next) if size + next.len() + 4 + 4 <= crate::net::TX_MESSAGE_BYTES_MAX => {
                    size += next.len() + 4;
                    batch.push(next);
                }
                Ok(next) => {
                    publish(&net, &batch).await;
                    size = next.len() + 4;
                    batch = vec![next];
                }
                Err(_) => break,
            }
        }
        publish(&net, &batch).await;
    }
}

async fn publish(net: &NetHandle, batch: &[Vec<u8>]) {
    if let Err(error) = net.gossip_tx(encode_tx_batch(batch)).await {
        tracing::debug!(%error, txs = batch.len(), "transaction gossip failed");
    }
}

/// One decided block as block sync carries it.
#[derive(BorshSerialize, BorshDeserialize)]
pub struct SyncItem {
    pub block: Block,
    pub certificate: CommitCertificate,
}

impl SyncItem {
    pub fn decode(bytes: &[u8]) -> Result<SyncItem, String> {
        let item: SyncItem = borsh::from_slice(bytes).map_err(|e| format!("sync item: {e}"))?;
        item.block.check().map_err(|e| e.to_string())?;
        item.certificate.check().map_err(|e| e.to_string())?;
        Ok(item)
    }
}

/// What block sync has handed to the consensus loop, so that a request made while earlier
/// blocks are still queued asks for the blocks after them instead of the same ones again.
/// (The loop asks at every height while it is behind: without this, each request re-fetched
/// most of the previous response, and catching up moved several times the blocks it needed.)
#[derive(Debug)]
pub struct SyncProgress {
    /// The highest height handed to the loop.
    delivered_to: u64,
    /// The height the loop last asked from, and when it first asked from it.
    asked_from: u64,
    asked_at: Instant,
}

impl Default for SyncProgress {
    fn default() -> SyncProgress {
        SyncProgress {
            delivered_to: 0,
            asked_from: 0,
            asked_at: Instant::now(),
        }
    }
}

impl SyncProgress {
    /// Where to fetch from when the loop, about to decide `from_height`, asks for blocks at
    /// `now`; `None` while enough delivered blocks are still queued ahead of it.
    pub fn plan(&mut self, from_height: u64, now: Instant) -> Option<u64> {
        if from_height != self.asked_from {
            self.asked_from = from_height;
            self.asked_at = now;
        }
        if from_height > self.delivered_to {
            return Some(from_height);
        }
        let queued = self.delivered_to - from_height + 1;
        if now.duration_since(self.asked_at) >= SYNC_STALL {
            // Queued long ago and still not applied: they will not be; fetch them again.
            self.delivered_to = from_height.saturating_sub(1);
            self.asked_at = now;
            return Some(from_height);
        }
        (queued < SYNC_PREFETCH_BELOW).then_some(self.delivered_to + 1)
    }

    /// `height` was handed to the loop.
    pub fn delivered(&mut self, height: u64) {
        self.delivered_to = self.delivered_to.max(height);
    }
}

pub struct NetTransport {
    net: NetHandle,
    peers: Arc<Mutex<BTreeSet<PublicKey>>>,
    syncing: Arc<AtomicBool>,
    progress: Arc<Mutex<SyncProgress>>,
    gossip: mpsc::Sender<Vec<u8>>,
    /// The node's runtime: the consensus loop calls in from a thread of its own.
    runtime: tokio::runtime::Handle,
}

impl NetTransport {
    /// Starts the gossip batcher: call within the node's runtime.
    pub fn new(net: NetHandle) -> NetTransport {
        let (gossip, queue) = mpsc::channel(GOSSIP_QUEUE_MAX);
        tokio::spawn(gossip_batches(net.clone(), queue));
        NetTransport {
            net,
            peers: Arc::default(),
            syncing: Arc::default(),
            progress: Arc::default(),
            gossip,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    pub fn peer_set(&self) -> Arc<Mutex<BTreeSet<PublicKey>>> {
        self.peers.clone()
    }
}

impl Transport for NetTransport {
    fn broadcast_consensus(&self, bytes: Vec<u8>) {
        let net = self.net.clone();
        self.runtime.spawn(async move {
            if let Err(error) = net.broadcast_consensus(bytes).await {
                tracing::warn!(%error, "consensus broadcast failed");
            }
        });
    }

    fn gossip_tx(&self, bytes: Vec<u8>) {
        if self.gossip.try_send(bytes).is_err() {
            tracing::debug!("gossip queue full: a transaction stays with this node's proposals");
        }
    }

    fn peers(&self) -> Vec<PublicKey> {
        lock(&self.peers).iter().copied().collect()
    }

    fn set_blocked(
        &self,
        blocked: Vec<PublicKey>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            self.net
                .set_blocked(blocked.into_iter().collect())
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn request_sync(&self, from_height: u64, deliver: mpsc::Sender<LoopInput>) {
        if self.syncing.swap(true, Ordering::SeqCst) {
            return; // one sync at a time; the engine asks again if still behind
        }
        let Some(from_height) = lock(&self.progress).plan(from_height, Instant::now()) else {
            self.syncing.store(false, Ordering::SeqCst);
            return; // enough blocks queued; the loop asks again at its next height
        };
        let net = self.net.clone();
        let peers = self.peers();
        let syncing = self.syncing.clone();
        let progress = self.progress.clone();
        self.runtime.spawn(async move {
            for peer in peers {
                match net
                    .request_blocks(
                        peer,
                        from_height,
                        SYNC_BATCH_BLOCKS.min(SYNC_RESPONSE_BLOCKS_MAX),
                    )
                    .await
                {
                    Ok(items) if !items.is_empty() => {
                        let count = items.len();
                        for bytes in items {
                            match SyncItem::decode(&bytes) {
                                Ok(item) => {
                                    let height = item.block.header.height;
                                    if deliver
                                        .send(LoopInput::Synced(Box::new((
                                            item.block,
                                            item.certificate,
                                        ))))
                                        .await
                                        .is_err()
                                    {
                                        break;
                                    }
                                    lock(&progress).delivered(height);
                                }
                                Err(reason) => {
                                    tracing::warn!(%peer, reason, "peer sent a malformed block");
                                    break;
                                }
                            }
                        }
                        tracing::info!(%peer, from_height, count, "synced blocks");
                        break;
                    }
                    Ok(_) => continue,
                    Err(error) => tracing::debug!(%peer, %error, "block request failed"),
                }
            }
            syncing.store(false, Ordering::SeqCst);
        });
    }
}

/// Gossiped transaction batches (as received, up to [`GOSSIP_BATCH_TXS_MAX`] each) waiting
/// for admission; beyond that new ones are dropped, as the transport drops them when the node's
/// event queue is full (a validator missing a transaction verifies it when a proposal carries
/// it).
pub const GOSSIP_ADMIT_QUEUE_MAX: usize = 64;

/// Feeds transport events to the node until the transport stops. Nothing slow runs on this
/// path: gossiped transactions go to their own task ([`admit_gossip`]) through a bounded queue
/// (their signature checks take milliseconds per batch, and a consensus message queued behind a
/// burst of them waited for all of them: at the start of a burst of load that held up a round
/// for over a second), and block requests are served by tasks of their own (reading up to
/// [`SYNC_RESPONSE_BLOCKS_MAX`] blocks from the store).
pub async fn pump_events(
    mut events: mpsc::Receiver<NetEvent>,
    node: NodeHandle,
    loop_inputs: mpsc::Sender<LoopInput>,
    peers: Arc<Mutex<BTreeSet<PublicKey>>>,
) {
    let (gossip, gossip_queue) = mpsc::channel(GOSSIP_ADMIT_QUEUE_MAX);
    let admitting = tokio::spawn(admit_gossip(gossip_queue, node.clone()));
    while let Some(event) = events.recv().await {
        handle_event(event, &node, &loop_inputs, &peers, &gossip).await;
    }
    drop(gossip);
    let _ = admitting.await;
}

/// Admits gossiped transactions in the order received, up to [`GOSSIP_ADMIT_BATCH_MAX`] per
/// signature batch (whatever else is queued joins the batch).
async fn admit_gossip(mut queue: mpsc::Receiver<Vec<Transaction>>, node: NodeHandle) {
    while let Some(mut txs) = queue.recv().await {
        while txs.len() < GOSSIP_ADMIT_BATCH_MAX {
            match queue.try_recv() {
                Ok(more) => txs.extend(more),
                Err(_) => break,
            }
        }
        let node = node.clone();
        let _ = tokio::task::spawn_blocking(move || node.admit_gossiped(txs)).await;
    }
}

async fn handle_event(
    event: NetEvent,
    node: &NodeHandle,
    loop_inputs: &mpsc::Sender<LoopInput>,
    peers: &Mutex<BTreeSet<PublicKey>>,
    gossip: &mpsc::Sender<Vec<Transaction>>,
) {
    match event {
        NetEvent::Consensus { from, bytes } => match Message::from_canonical_bytes(&bytes) {
            Ok(message) => {
                let _ = loop_inputs.send(LoopInput::Consensus(message)).await;
            }
            Err(error) => tracing::warn!(%from, %error, "malformed consensus message"),
        },
        NetEvent::Tx { from, bytes } => match decode_tx_batch(&bytes) {
            Ok(txs) => {
                if let Err(mpsc::error::TrySendError::Full(txs)) = gossip.try_send(txs) {
                    node.shared
                        .metrics
                        .gossip_txs_dropped
                        .inc_by(txs.len() as u64);
                }
            }
            Err(error) => tracing::debug!(%from, %error, "malformed gossiped transactions"),
        },
        NetEvent::BlockRequest {
            from,
            from_height,
            max,
            respond,
        } => {
            let store = node.shared.store.clone();
            // Not awaited: the blocking pool answers on `respond`.
            tokio::task::spawn_blocking(move || {
                let mut items = Vec::new();
                for height in from_height
                    ..from_height.saturating_add(u64::from(max.min(SYNC_RESPONSE_BLOCKS_MAX)))
                {
                    let (Ok(Some(block)), Ok(Some(certificate))) =
                        (store.block(height), store.certificate(height))
                    else {
                        break;
                    };
                    match borsh::to_vec(&SyncItem { block, certificate }) {
                        Ok(bytes) => items.push(bytes),
                        Err(_) => break,
                    }
                }
                tracing::debug!(%from, from_height, served = items.len(), "served block sync");
                let _ = respond.send(items);
            });
        }
        NetEvent::PeerConnected(key) => {
            lock(peers).insert(key);
            node.shared.metrics.peers.set(lock(peers).len() as i64);
            tracing::info!(peer = %key, "peer connected");
            // A peer back from a partition may have decided heights we missed; on an idle chain
            // no consensus message would say so (the loop's rebroadcast period would, within
            // seconds): ask at once. A peer with nothing newer answers with no blocks.
            if let (Some(transport), Ok(head)) = (&node.shared.transport, node.shared.store.head())
            {
                transport.request_sync(head.map_or(1, |h| h.height + 1), loop_inputs.clone());
            }
        }
        NetEvent::PeerDisconnected(key) => {
            lock(peers).remove(&key);
            node.shared.metrics.peers.set(lock(peers).len() as i64);
            tracing::info!(peer = %key, "peer disconnected");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pharmalink_ledger::SigningKey;

    #[test]
    fn sync_asks_past_the_queued_blocks_and_again_for_blocks_that_did_not_apply() {
        let start = Instant::now();
        let mut progress = SyncProgress::default();
        // Nothing delivered: from where the loop stands.
        assert_eq!(progress.plan(10, start), Some(10));
        for height in 10..=73 {
            progress.delivered(height);
        }
        // 64 blocks queued: no request while more than half of a batch is left.
        assert_eq!(progress.plan(11, start), None);
        assert_eq!(progress.plan(42, start), None);
        // Fewer than half a batch left: the next blocks, not the queued ones again.
        assert_eq!(progress.plan(43, start), Some(74));
        for height in 74..=90 {
            progress.delivered(height);
        }
        // Asked again at the same height soon after: still queued.
        assert_eq!(progress.plan(43, start + SYNC_STALL / 2), None);
        // Still there after SYNC_STALL: the queued blocks did not apply; fetch them again.
        assert_eq!(progress.plan(43, start + SYNC_STALL), Some(43));
        // Past everything delivered: from where the loop stands.
        assert_eq!(progress.plan(95, start + SYNC_STALL), Some(95));
    }

    #[test]
    fn tx_batches_round_trip_skip_malformed_items_and_are_bounded() {
        let key = SigningKey::from_seed([7; 32]);
        let txs: Vec<Transaction> = (0..3)
            .map(|nonce| Transaction::sign("chain", &key, nonce, vec![nonce as u8; 40]).unwrap())
            .collect();
        let mut items: Vec<Vec<u8>> = txs
            .iter()
            .map(|t| t.to_canonical_bytes().unwrap())
            .collect();
        items.insert(1, b"not a transaction".to_vec());
        let decoded = decode_tx_batch(&encode_tx_batch(&items)).unwrap();
        assert_eq!(decoded, txs);
        assert!(decode_tx_batch(b"\xff\xff\xff\xff").is_err());
        let too_many = vec![Vec::new(); GOSSIP_BATCH_TXS_MAX + 1];
        assert!(decode_tx_batch(&encode_tx_batch(&too_many))
            .unwrap_err()
            .contains("at most"));
    }

    /// A burst of gossip (20,000 signatures to check) queued ahead of a peer event: the event is
    /// handled at once, not after the burst's admission (which then completes).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn peer_and_consensus_events_do_not_wait_behind_gossip_admission() {
        let (node, members, _dir) = crate::runtime::nonce_node_for_tests("pump-test", 20);
        let (events_in, events) = mpsc::channel(1024);
        for batch in 0..40usize {
            let txs: Vec<Vec<u8>> = (0..500)
                .map(|i| {
                    let n = batch * 500 + i;
                    Transaction::sign("pump-test", &members[n % 20], (n / 20) as u64, vec![1; 200])
                        .unwrap()
                        .to_canonical_bytes()
                        .unwrap()
                })
                .collect();
            let bytes = encode_tx_batch(&txs);
            events_in
                .send(NetEvent::Tx {
                    from: node.shared.node_key,
                    bytes,
                })
                .await
                .unwrap();
        }
        let peer = SigningKey::from_seed([99; 32]).public_key();
        events_in.send(NetEvent::PeerConnected(peer)).await.unwrap();
        let (loop_inputs, _loop_rx) = mpsc::channel(16);
        let peers = Arc::new(Mutex::new(BTreeSet::new()));
        tokio::spawn(pump_events(
            events,
            node.clone(),
            loop_inputs,
            peers.clone(),
        ));
        let started = Instant::now();
        let pending = || lock(&node.shared.mempool).len();
        while !lock(&peers).contains(&peer) {
            assert!(started.elapsed() < std::time::Duration::from_secs(30));
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let admitted = pending();
        assert!(
            admitted < 10_000,
            "the peer event waited for {admitted} of 20,000 transactions to be admitted"
        );
        while pending() < 20_000 {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "only {} of 20,000 gossiped transactions admitted",
                pending()
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(node.shared.metrics.gossip_txs_dropped.get(), 0);
    }
}
