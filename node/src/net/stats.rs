//! Transport counters: every message the transport drops or rejects is counted here.

use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters shared by the swarm task and the codecs (which run on connection tasks).
#[derive(Default, Debug)]
pub(crate) struct Counters {
    pub(crate) consensus_received: AtomicU64,
    pub(crate) consensus_sent: AtomicU64,
    pub(crate) consensus_send_failures: AtomicU64,
    pub(crate) consensus_dropped_peer_backlog: AtomicU64,
    pub(crate) tx_received: AtomicU64,
    pub(crate) tx_dropped_queue_full: AtomicU64,
    pub(crate) block_requests_dropped: AtomicU64,
    pub(crate) oversized_inbound_rejected: AtomicU64,
    pub(crate) oversized_outbound_rejected: AtomicU64,
    pub(crate) malformed_inbound_rejected: AtomicU64,
    pub(crate) blocked_traffic_dropped: AtomicU64,
    pub(crate) unknown_peer_connections_denied: AtomicU64,
    pub(crate) sync_responses_truncated: AtomicU64,
    pub(crate) event_queue_pauses: AtomicU64,
    pub(crate) consensus_streams_refused: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A snapshot of the transport's counters and gauges (`NetHandle::stats`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Peers whose connection both sides accepted (the `connected_peers` set).
    pub connected_peers: usize,
    /// Peers subscribed to the transaction gossip topic.
    pub tx_topic_peers: usize,
    /// Non-transaction events held in the transport because the event queue was full.
    pub event_backlog_len: usize,
    /// Consensus messages received from allowed, unblocked peers (all of them delivered).
    pub consensus_received: u64,
    /// Consensus messages acknowledged by the receiving peer's transport.
    pub consensus_sent: u64,
    /// Consensus sends that failed after leaving the queue (timeout, closed connection, dial
    /// failure). Whether the peer received the message is unknown.
    pub consensus_send_failures: u64,
    /// Consensus sends refused because the peer already had
    /// `CONSENSUS_INFLIGHT_PER_PEER_MAX` unacknowledged messages.
    pub consensus_dropped_peer_backlog: u64,
    /// Gossiped transactions accepted (including those then dropped for a full queue).
    pub tx_received: u64,
    /// Gossiped transactions dropped because the node's event queue was full.
    pub tx_dropped_queue_full: u64,
    /// Inbound block requests refused (queue full, too many being served, or not answered).
    pub block_requests_dropped: u64,
    /// Inbound frames or gossip over their channel's byte maximum (the stream is failed).
    pub oversized_inbound_rejected: u64,
    /// Outbound messages refused for size (by the handle, or by gossipsub for its frame).
    pub oversized_outbound_rejected: u64,
    /// Inbound messages that do not decode (hello, sync request/response, unsigned gossip).
    pub malformed_inbound_rejected: u64,
    /// Messages to or from peers blocked by `set_blocked` that were dropped.
    pub blocked_traffic_dropped: u64,
    /// Connections refused because the remote key is not in the allow-list.
    pub unknown_peer_connections_denied: u64,
    /// Sync responses cut short to fit `SYNC_RESPONSE_BYTES_MAX`/`SYNC_RESPONSE_BLOCKS_MAX`.
    pub sync_responses_truncated: u64,
    /// Times the transport stopped reading from the network because the backlog was full.
    pub event_queue_pauses: u64,
    /// Inbound consensus streams refused because their peer already had
    /// `CONSENSUS_INBOUND_STREAMS_PER_PEER_MAX` open.
    pub consensus_streams_refused: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> NetStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        NetStats {
            connected_peers: 0,
            tx_topic_peers: 0,
            event_backlog_len: 0,
            consensus_received: get(&self.consensus_received),
            consensus_sent: get(&self.consensus_sent),
            consensus_send_failures: get(&self.consensus_send_failures),
            consensus_dropped_peer_backlog: get(&self.consensus_dropped_peer_backlog),
            tx_received: get(&self.tx_received),
            tx_dropped_queue_full: get(&self.tx_dropped_queue_full),
            block_requests_dropped: get(&self.block_requests_dropped),
            oversized_inbound_rejected: get(&self.oversized_inbound_rejected),
            oversized_outbound_rejected: get(&self.oversized_outbound_rejected),
            malformed_inbound_rejected: get(&self.malformed_inbound_rejected),
            blocked_traffic_dropped: get(&self.blocked_traffic_dropped),
            unknown_peer_connections_denied: get(&self.unknown_peer_connections_denied),
            sync_responses_truncated: get(&self.sync_responses_truncated),
            event_queue_pauses: get(&self.event_queue_pauses),
            consensus_streams_refused: get(&self.consensus_streams_refused),
        }
    }
}
