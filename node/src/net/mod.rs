//! The node's peer-to-peer transport on libp2p: TCP + noise + yamux, payload-agnostic.
//!
//! The node hands this module bounded byte messages and gets bounded byte messages back; it
//! encodes and decodes them itself. Four channels:
//!
//! | channel   | libp2p protocol                           | bound                           |
//! |-----------|-------------------------------------------|---------------------------------|
//! | consensus | `/pharmalink/consensus/2`: one long-lived stream per peer and direction, length-prefixed frames (libp2p-stream) | [`CONSENSUS_MESSAGE_BYTES_MAX`] |
//! | tx        | gossipsub topic [`TX_TOPIC`] (unsigned envelopes, content-addressed ids; the node sends batches of signed transactions) | [`TX_MESSAGE_BYTES_MAX`] |
//! | sync      | request-response `/pharmalink/sync/1`     | [`SYNC_RESPONSE_BYTES_MAX`], [`SYNC_RESPONSE_BLOCKS_MAX`] |
//! | hello     | request-response `/pharmalink/hello/1`    | [`HELLO_BYTES_MAX`]             |
//!
//! # Identity and authentication
//! The libp2p identity is derived from the node's ed25519 seed ([`SigningKey::seed`]), so a
//! `PeerId` and a ledger [`PublicKey`] map one to one ([`peer_id_of`], [`public_key_of`]). After
//! the noise handshake the remote `PeerId` is authenticated; libp2p's `allow_block_list`
//! behaviour (first in the composed behaviour) denies the established connection in
//! `handle_established_{inbound,outbound}_connection` unless the key is in
//! [`NetConfig::allowed`]. A denied connection gets no connection handler, so no stream of an
//! unknown peer is ever read. A peer counts as connected ([`NetEvent::PeerConnected`],
//! [`NetHandle::connected_peers`]) only once our hello request has been answered, i.e. once
//! *both* sides have accepted the connection: a refused node never sees `PeerConnected`.
//!
//! # Bounds and backpressure
//! - Every frame is length-checked on write and on read before allocation; oversized inbound
//!   frames are rejected and counted ([`NetStats::oversized_inbound_rejected`]); oversized
//!   outbound messages are refused with [`NetError::MessageTooLarge`].
//! - Commands from [`NetHandle`] go through a queue of [`COMMAND_QUEUE_CAPACITY`]: when the
//!   transport is busy, `gossip_tx`/`send_consensus` wait (backpressure to the caller).
//! - Events to the node go through a queue of [`EVENT_QUEUE_CAPACITY`]. When it is full:
//!   gossiped transactions are dropped and counted ([`NetStats::tx_dropped_queue_full`]; they
//!   are still forwarded to other peers); inbound block requests are refused (the requester gets
//!   an error and retries); consensus messages and peer up/down events are **never dropped**:
//!   they wait in an ordered backlog of [`EVENT_BACKLOG_MAX`]; when that fills, the transport
//!   stops reading from the network until the node drains its queue, which stalls the senders'
//!   streams (TCP backpressure) and, past their timeout, shows up as their send failures.
//! - Outbound consensus to one peer is limited to [`CONSENSUS_INFLIGHT_PER_PEER_MAX`] messages
//!   queued for its stream; beyond that the send is dropped with a warning and counted
//!   ([`NetStats::consensus_dropped_peer_backlog`]). A write that fails on a stream kept from an
//!   earlier connection is retried once on a fresh stream; one that fails on a fresh stream, or
//!   is not done within [`CONSENSUS_ACK_TIMEOUT`], loses the messages it carried (counted as
//!   [`NetStats::consensus_send_failures`]) and the stream is reopened for the next. A peer may
//!   hold at most four inbound consensus streams at once (one is normal); more are refused and
//!   counted ([`NetStats::consensus_streams_refused`]). Tendermint's round
//!   timeouts recover lost messages; a peer that far behind is better served by block sync.
//!
//! # Ordering
//! Consensus messages to one peer arrive in the order sent while their stream lives; messages
//! on a stream that broke may be lost, and the core does not rely on any order across peers.
//! The consensus core must (and does, per the paper) tolerate loss and reordering.
//!
//! # Fault injection
//! [`NetHandle::set_blocked`] partitions this node from the given peers for tests and the
//! testnet when network namespaces are unavailable: their connections are closed, new ones in
//! either direction are denied, sends to them are dropped, and gossip they authored or
//! forwarded is ignored (not delivered, not forwarded). Both sides should block each other for
//! a symmetric partition (one side suffices to cut the link, since it refuses all connections).
//! Healing (`set_blocked` with a smaller set) lets the dialer reconnect immediately.

mod codec;
mod stats;
mod swarm;

pub use stats::NetStats;

use libp2p::identity;
use libp2p::PeerId;
use pharmalink_ledger::limits::{BLOCK_BYTES_MAX, TX_BYTES_MAX};
use pharmalink_ledger::{PublicKey, SigningKey};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// One consensus message: a proposal carries a whole block, plus room for the envelope.
pub const CONSENSUS_MESSAGE_BYTES_MAX: usize = BLOCK_BYTES_MAX + 1024;
/// One gossip message (the node gossips batches of transactions, see
/// `peering::encode_tx_batch`); holds at least one largest transaction.
pub const TX_MESSAGE_BYTES_MAX: usize = 1024 * 1024;
const _: () = assert!(TX_MESSAGE_BYTES_MAX >= TX_BYTES_MAX + 64);
/// Gossipsub framing around a message (author, sequence number, topic).
pub const GOSSIP_ENVELOPE_BYTES_MAX: usize = 1024;
/// Blocks in one sync response.
pub const SYNC_RESPONSE_BLOCKS_MAX: u32 = 256;
/// Encoded bytes of one sync response (count and length prefixes included). Holds at least
/// three maximum-size blocks with their certificates.
pub const SYNC_RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Bytes of a hello request or response.
pub const HELLO_BYTES_MAX: usize = 64;
/// Events queued from the transport to the node.
pub const EVENT_QUEUE_CAPACITY: usize = 1024;
/// Consensus and peer events held (in order) when the event queue is full, before the
/// transport stops reading from the network.
pub const EVENT_BACKLOG_MAX: usize = 256;
/// Commands queued from [`NetHandle`]s to the transport.
pub const COMMAND_QUEUE_CAPACITY: usize = 256;
/// Consensus messages queued for one peer's stream and not yet written.
pub const CONSENSUS_INFLIGHT_PER_PEER_MAX: usize = 128;
/// Outstanding `request_blocks` calls.
pub const SYNC_REQUESTS_INFLIGHT_MAX: usize = 16;
/// Inbound block requests handed to the node and not yet answered.
pub const SYNC_SERVING_MAX: usize = 8;
/// Established connections per peer (two covers simultaneous dials).
pub const CONNECTIONS_PER_PEER_MAX: u32 = 2;
/// Connections still in the handshake (before the key is known), to bound unauthenticated work.
pub const PENDING_INCOMING_CONNECTIONS_MAX: u32 = 64;
/// Time a consensus write (or the hello exchange) may take before it counts as failed.
pub const CONSENSUS_ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for a sync request to be answered (a 64 MiB response at ~10 MB/s fits).
pub const SYNC_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Time the node has to answer a [`NetEvent::BlockRequest`].
pub const SYNC_SERVE_TIMEOUT: Duration = Duration::from_secs(10);
/// First and last delay between redials of a configured peer (doubling in between).
pub const DIAL_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
pub const DIAL_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Liveness probe period; a failed probe closes the connection (dead-peer detection).
pub const PING_INTERVAL: Duration = Duration::from_secs(5);
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// The gossipsub topic carrying transactions.
pub const TX_TOPIC: &str = "/pharmalink/tx/2";

/// What the transport needs to start.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Address to listen on (port 0 picks a free port; see [`NetHandle::listen_addr`]).
    pub listen: SocketAddr,
    /// The node's key; the libp2p identity is derived from the same seed.
    pub identity: SigningKey,
    /// Peers to dial and keep dialing (with backoff) while not connected. Each must be allowed.
    pub peers: Vec<(PublicKey, SocketAddr)>,
    /// Keys allowed to connect: the genesis validators plus the observer allow-list.
    pub allowed: BTreeSet<PublicKey>,
    /// Keys that [`NetHandle::broadcast_consensus`] sends to (a subset of `allowed`; normally
    /// the validator set). Observers in `allowed` but not here still connect and get gossip.
    pub validators: BTreeSet<PublicKey>,
}

/// What the transport delivers to the node.
#[derive(Debug)]
pub enum NetEvent {
    /// A direct consensus message from an allowed peer.
    Consensus { from: PublicKey, bytes: Vec<u8> },
    /// A gossiped transaction; `from` is the node that first published it (gossipsub author,
    /// signature-checked), not the neighbour that forwarded it.
    Tx { from: PublicKey, bytes: Vec<u8> },
    /// A peer asks for up to `max` (≤ [`SYNC_RESPONSE_BLOCKS_MAX`]) encoded blocks (with their
    /// certificates) from `from_height` on. Answer through `respond` within
    /// [`SYNC_SERVE_TIMEOUT`]; answers beyond the byte or block bound are cut to a prefix.
    /// Dropping `respond` refuses the request.
    BlockRequest {
        from: PublicKey,
        from_height: u64,
        max: u32,
        respond: oneshot::Sender<Vec<Vec<u8>>>,
    },
    /// Both sides accepted a connection to this peer (first connection).
    PeerConnected(PublicKey),
    /// The last connection to a peer that was reported connected closed.
    PeerDisconnected(PublicKey),
}

/// Transport errors, each naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{channel} message of {bytes} bytes exceeds the maximum of {max}")]
    MessageTooLarge {
        channel: &'static str,
        bytes: usize,
        max: usize,
    },
    #[error("peer {0} is not in the allow-list")]
    NotAllowed(PublicKey),
    #[error("peer {0} is not connected")]
    NotConnected(PublicKey),
    #[error("peer {peer} already has {inflight} unacknowledged consensus messages")]
    PeerBacklogFull { peer: PublicKey, inflight: usize },
    #[error("peer {0} is blocked by fault injection (set_blocked)")]
    PeerBlocked(PublicKey),
    #[error("public key {key} is not a valid ed25519 key for libp2p: {reason}")]
    InvalidPublicKey { key: PublicKey, reason: String },
    #[error("invalid network configuration: {0}")]
    Config(String),
    #[error("cannot build the libp2p transport: {0}")]
    Transport(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
    #[error("the network task has stopped")]
    Stopped,
    #[error("block request asks for {requested} blocks, more than the {max} allowed")]
    TooManyBlocksRequested { requested: u32, max: u32 },
    #[error("{SYNC_REQUESTS_INFLIGHT_MAX} block requests are already outstanding")]
    SyncRequestsInflightFull,
    #[error("block request to {peer} failed: {reason}")]
    SyncFailed { peer: PublicKey, reason: String },
    #[error("invalid block response from {peer}: {reason}")]
    InvalidSyncResponse { peer: PublicKey, reason: String },
    #[error("cannot gossip the transaction: {0}")]
    Gossip(String),
}

/// The libp2p `PeerId` of a ledger public key (identity multihash of the protobuf-encoded
/// ed25519 key).
pub fn peer_id_of(key: &PublicKey) -> Result<PeerId, NetError> {
    let ed25519 = identity::ed25519::PublicKey::try_from_bytes(&key.0).map_err(|error| {
        NetError::InvalidPublicKey {
            key: *key,
            reason: error.to_string(),
        }
    })?;
    Ok(PeerId::from_public_key(&identity::PublicKey::from(ed25519)))
}

/// The ledger public key inside a `PeerId`, if it is an inlined ed25519 key.
pub fn public_key_of(peer: &PeerId) -> Option<PublicKey> {
    /// Multihash code of the identity "hash" libp2p uses for keys of up to 42 bytes.
    const IDENTITY_MULTIHASH_CODE: u64 = 0;
    let multihash = peer.as_ref();
    if multihash.code() != IDENTITY_MULTIHASH_CODE {
        return None;
    }
    let key = identity::PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    let ed25519 = key.try_into_ed25519().ok()?;
    Some(PublicKey(ed25519.to_bytes()))
}

/// The libp2p keypair of a node key: the same 32-byte ed25519 seed.
pub fn libp2p_keypair(key: &SigningKey) -> identity::Keypair {
    let mut seed = key.seed();
    // Only fails for a seed that is not 32 bytes, which `[u8; 32]` rules out.
    #[allow(clippy::expect_used)]
    identity::Keypair::ed25519_from_bytes(&mut seed).expect("a 32-byte seed is a valid ed25519 key")
}

pub(crate) enum Command {
    SendConsensus {
        to: PublicKey,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    BroadcastConsensus {
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<usize, NetError>>,
    },
    GossipTx {
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    RequestBlocks {
        from: PublicKey,
        from_height: u64,
        max: u32,
        reply: oneshot::Sender<Result<Vec<Vec<u8>>, NetError>>,
    },
    ConnectedPeers {
        reply: oneshot::Sender<Vec<PublicKey>>,
    },
    SetBlocked {
        peers: BTreeSet<PublicKey>,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    Stats {
        reply: oneshot::Sender<NetStats>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// A cheap, cloneable handle to the running transport.
#[derive(Clone, Debug)]
pub struct NetHandle {
    commands: mpsc::Sender<Command>,
    counters: std::sync::Arc<stats::Counters>,
    local: PublicKey,
    listen_addr: SocketAddr,
}

impl NetHandle {
    /// This node's public key.
    pub fn local_key(&self) -> PublicKey {
        self.local
    }

    /// The address actually listened on (the real port when the config asked for port 0).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    async fn call<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| NetError::Stopped)?;
        answer.await.map_err(|_| NetError::Stopped)
    }

    fn check_size(&self, channel: &'static str, bytes: &[u8], max: usize) -> Result<(), NetError> {
        if bytes.len() > max {
            self.counters
                .bump(&self.counters.oversized_outbound_rejected);
            return Err(NetError::MessageTooLarge {
                channel,
                bytes: bytes.len(),
                max,
            });
        }
        Ok(())
    }

    /// Sends one consensus message directly to `to`. Returns once the transport has queued it
    /// on the peer's connection; delivery failures are counted in
    /// [`NetStats::consensus_send_failures`]. Sends to a blocked peer are dropped (counted).
    pub async fn send_consensus(&self, to: PublicKey, bytes: Vec<u8>) -> Result<(), NetError> {
        self.check_size("consensus", &bytes, CONSENSUS_MESSAGE_BYTES_MAX)?;
        self.call(|reply| Command::SendConsensus { to, bytes, reply })
            .await?
    }

    /// Sends one consensus message directly to every connected peer in
    /// [`NetConfig::validators`] (not via gossip). Returns how many peers it was queued for.
    pub async fn broadcast_consensus(&self, bytes: Vec<u8>) -> Result<usize, NetError> {
        self.check_size("consensus", &bytes, CONSENSUS_MESSAGE_BYTES_MAX)?;
        self.call(|reply| Command::BroadcastConsensus { bytes, reply })
            .await?
    }

    /// Publishes a transaction on the gossip topic. Publishing the same bytes again within
    /// gossipsub's duplicate window is a no-op (message ids are content hashes).
    pub async fn gossip_tx(&self, bytes: Vec<u8>) -> Result<(), NetError> {
        self.check_size("tx", &bytes, TX_MESSAGE_BYTES_MAX)?;
        self.call(|reply| Command::GossipTx { bytes, reply })
            .await?
    }

    /// Asks `from` for up to `max` blocks from `from_height` on; returns what it answered (at
    /// most `max` blocks, possibly fewer: ask again from the next height).
    pub async fn request_blocks(
        &self,
        from: PublicKey,
        from_height: u64,
        max: u32,
    ) -> Result<Vec<Vec<u8>>, NetError> {
        if max > SYNC_RESPONSE_BLOCKS_MAX {
            return Err(NetError::TooManyBlocksRequested {
                requested: max,
                max: SYNC_RESPONSE_BLOCKS_MAX,
            });
        }
        self.call(|reply| Command::RequestBlocks {
            from,
            from_height,
            max,
            reply,
        })
        .await?
    }

    /// Peers whose connection both sides accepted, in key order.
    pub async fn connected_peers(&self) -> Result<Vec<PublicKey>, NetError> {
        self.call(|reply| Command::ConnectedPeers { reply }).await
    }

    /// Fault injection: partitions this node from exactly `peers` (replacing the previous set;
    /// an empty set heals). See the module documentation.
    pub async fn set_blocked(&self, peers: BTreeSet<PublicKey>) -> Result<(), NetError> {
        self.call(|reply| Command::SetBlocked { peers, reply })
            .await?
    }

    /// Counters and gauges.
    pub async fn stats(&self) -> Result<NetStats, NetError> {
        self.call(|reply| Command::Stats { reply }).await
    }

    /// Stops the transport: closes every connection and ends the task. Later calls on any
    /// clone return [`NetError::Stopped`]. The task also stops when every handle is dropped.
    pub async fn shutdown(&self) -> Result<(), NetError> {
        self.call(|reply| Command::Shutdown { reply }).await
    }
}

/// Starts the transport on the current tokio runtime: listens, begins dialing `peers`, and
/// returns the handle and the node's event queue.
pub async fn start(config: NetConfig) -> Result<(NetHandle, mpsc::Receiver<NetEvent>), NetError> {
    swarm::start(config).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_and_public_key_map_one_to_one() {
        for seed in 0..20u8 {
            let key = SigningKey::from_seed([seed; 32]);
            let public = key.public_key();
            let peer = peer_id_of(&public).unwrap();
            assert_eq!(public_key_of(&peer), Some(public));
            // The libp2p identity derived from the seed has the same PeerId.
            assert_eq!(libp2p_keypair(&key).public().to_peer_id(), peer);
        }
    }

    #[test]
    fn non_ed25519_peer_ids_have_no_public_key() {
        assert_eq!(public_key_of(&PeerId::random()), None);
    }

    #[test]
    fn consensus_bound_holds_a_maximum_block() {
        const { assert!(CONSENSUS_MESSAGE_BYTES_MAX > BLOCK_BYTES_MAX) };
        const { assert!(SYNC_RESPONSE_BYTES_MAX >= 3 * CONSENSUS_MESSAGE_BYTES_MAX) };
    }
}
