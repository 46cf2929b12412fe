//! The swarm task: owns the libp2p `Swarm`, turns handle commands into protocol actions and
//! protocol events into `NetEvent`s, redials configured peers, and enforces the queue policy
//! described in the module documentation.

use super::codec::{
    decode_sync_request, decode_sync_response, encode_sync_request, encode_sync_response,
    FrameCodec,
};
use super::stats::{Counters, NetStats};
use super::{
    libp2p_keypair, peer_id_of, public_key_of, Command, NetConfig, NetError, NetEvent, NetHandle,
    COMMAND_QUEUE_CAPACITY, CONNECTIONS_PER_PEER_MAX, CONSENSUS_ACK_TIMEOUT,
    CONSENSUS_INFLIGHT_PER_PEER_MAX, CONSENSUS_MESSAGE_BYTES_MAX, DIAL_BACKOFF_INITIAL,
    DIAL_BACKOFF_MAX, EVENT_BACKLOG_MAX, EVENT_QUEUE_CAPACITY, GOSSIP_ENVELOPE_BYTES_MAX,
    HELLO_BYTES_MAX, PENDING_INCOMING_CONNECTIONS_MAX, PING_INTERVAL, PING_TIMEOUT,
    SYNC_REQUESTS_INFLIGHT_MAX, SYNC_REQUEST_TIMEOUT, SYNC_RESPONSE_BLOCKS_MAX,
    SYNC_RESPONSE_BYTES_MAX, SYNC_SERVE_TIMEOUT, SYNC_SERVING_MAX, TX_MESSAGE_BYTES_MAX, TX_TOPIC,
};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use libp2p::allow_block_list::{self, AllowedPeers, BlockedPeers};
use libp2p::connection_limits::{self, ConnectionLimits};
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity, ValidationMode};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionDenied, DialError, ListenError, NetworkBehaviour, SwarmEvent};
use libp2p::{identity, noise, ping, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use pharmalink_ledger::PublicKey;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

const HELLO_PROTOCOL: StreamProtocol = StreamProtocol::new("/pharmalink/hello/1");
const CONSENSUS_PROTOCOL: StreamProtocol = StreamProtocol::new("/pharmalink/consensus/2");
/// Consensus messages read from inbound streams and not yet taken by the swarm task; past this,
/// the readers stop reading (yamux then stalls the senders' streams).
const CONSENSUS_INBOUND_CAPACITY: usize = 256;
/// Inbound consensus streams one peer may have open at once. A peer keeps one (a second one
/// overlaps briefly after a reconnect); each open stream is a reader task holding up to one
/// frame, so an authenticated peer opening streams without end is refused past this.
const CONSENSUS_INBOUND_STREAMS_PER_PEER_MAX: usize = 4;
/// A consensus writer gathers what is queued for its peer into one write of at most this many
/// bytes (one yamux frame and one TCP send for a round's votes instead of one each).
const CONSENSUS_WRITE_GATHER_BYTES: usize = 64 * 1024;
const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/pharmalink/sync/1");
/// The hello request and its answer.
const HELLO: &[u8] = b"pharmalink-hello/1";
/// Hello requests per connection-up before the connection is dropped and redialed.
const HELLO_ATTEMPTS_MAX: u32 = 3;
/// A connection without streams stays open this long; validators talk continuously and the
/// ping keeps a live connection busy, so this only reaps connections nobody uses.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(3600);
/// Time `start` waits for the listener to report its address.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(NetworkBehaviour)]
struct Behaviour {
    // The allow-list comes first: it denies an unknown peer's established connection before
    // any other behaviour creates a handler (and so reads a stream) for it.
    allowed: allow_block_list::Behaviour<AllowedPeers>,
    blocked: allow_block_list::Behaviour<BlockedPeers>,
    limits: connection_limits::Behaviour,
    ping: ping::Behaviour,
    hello: request_response::Behaviour<FrameCodec>,
    /// Consensus messages: one long-lived stream per peer and direction (see
    /// [`write_consensus`]), not a request-response exchange per message.
    consensus: libp2p_stream::Behaviour,
    sync: request_response::Behaviour<FrameCodec>,
    gossip: gossipsub::Behaviour,
}

fn multiaddr_of(addr: SocketAddr) -> Multiaddr {
    Multiaddr::empty()
        .with(Protocol::from(addr.ip()))
        .with(Protocol::Tcp(addr.port()))
}

fn socket_addr_of(addr: &Multiaddr) -> Option<SocketAddr> {
    let mut ip = None;
    let mut port = None;
    for part in addr.iter() {
        match part {
            Protocol::Ip4(v4) => ip = Some(std::net::IpAddr::V4(v4)),
            Protocol::Ip6(v6) => ip = Some(std::net::IpAddr::V6(v6)),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    Some(SocketAddr::new(ip?, port?))
}

fn build_behaviour(
    key: &identity::Keypair,
    counters: &Arc<Counters>,
) -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
    let codec = |channel, request_bytes_max, response_bytes_max| FrameCodec {
        channel,
        request_bytes_max,
        response_bytes_max,
        counters: Arc::clone(counters),
    };
    let request_response_config = |timeout| {
        request_response::Config::default()
            .with_request_timeout(timeout)
            .with_max_concurrent_streams(CONSENSUS_INFLIGHT_PER_PEER_MAX + 16)
    };
    let gossip_config = gossipsub::ConfigBuilder::default()
        .max_transmit_size(TX_MESSAGE_BYTES_MAX + GOSSIP_ENVELOPE_BYTES_MAX)
        // Envelopes are not signed: every transaction carries its own ed25519 signature (checked
        // in one batch at admission), and every connection is noise-authenticated against the
        // genesis; signing each envelope cost one more sign and one more single verification
        // per transaction per node.
        .validation_mode(ValidationMode::Permissive)
        .validate_messages()
        // A node's own transactions go to every subscribed peer, not only its mesh: with every
        // validator connected to every validator, each has them from the author (see
        // `judge_gossip`: validators' transactions are not relayed).
        .flood_publish(true)
        // Content-addressed ids: the same transaction gossiped by two nodes is one message.
        .message_id_fn(|message: &gossipsub::Message| {
            gossipsub::MessageId::from(blake3::hash(&message.data).as_bytes().to_vec())
        })
        .build()
        .map_err(|error| format!("gossipsub configuration: {error}"))?;
    Ok(Behaviour {
        allowed: allow_block_list::Behaviour::default(),
        blocked: allow_block_list::Behaviour::default(),
        limits: connection_limits::Behaviour::new(
            ConnectionLimits::default()
                .with_max_established_per_peer(Some(CONNECTIONS_PER_PEER_MAX))
                .with_max_pending_incoming(Some(PENDING_INCOMING_CONNECTIONS_MAX)),
        ),
        ping: ping::Behaviour::new(
            ping::Config::new()
                .with_interval(PING_INTERVAL)
                .with_timeout(PING_TIMEOUT),
        ),
        hello: request_response::Behaviour::with_codec(
            codec("hello", HELLO_BYTES_MAX, HELLO_BYTES_MAX),
            [(HELLO_PROTOCOL, ProtocolSupport::Full)],
            request_response_config(CONSENSUS_ACK_TIMEOUT),
        ),
        consensus: libp2p_stream::Behaviour::new(),
        sync: request_response::Behaviour::with_codec(
            codec(
                "sync",
                super::codec::SYNC_REQUEST_BYTES,
                SYNC_RESPONSE_BYTES_MAX,
            ),
            [(SYNC_PROTOCOL, ProtocolSupport::Full)],
            request_response_config(SYNC_REQUEST_TIMEOUT),
        ),
        gossip: gossipsub::Behaviour::new(
            MessageAuthenticity::Author(key.public().to_peer_id()),
            gossip_config,
        )
        .map_err(|error| format!("gossipsub: {error}"))?,
    })
}

pub(super) async fn start(
    config: NetConfig,
) -> Result<(NetHandle, mpsc::Receiver<NetEvent>), NetError> {
    let local = config.identity.public_key();
    let local_peer = peer_id_of(&local)?;
    let keypair = libp2p_keypair(&config.identity);
    assert_eq!(
        keypair.public().to_peer_id(),
        local_peer,
        "the libp2p identity must be derived from the node key"
    );

    let mut peer_keys = BTreeMap::new();
    for key in &config.allowed {
        peer_keys.insert(peer_id_of(key)?, *key);
    }
    if let Some(outsider) = config.validators.difference(&config.allowed).next() {
        return Err(NetError::Config(format!(
            "validator {outsider} is not in the allow-list"
        )));
    }
    let mut dial_targets = BTreeMap::new();
    for (key, addr) in &config.peers {
        if *key == local {
            continue;
        }
        if !config.allowed.contains(key) {
            return Err(NetError::NotAllowed(*key));
        }
        let target = DialTarget {
            addr: multiaddr_of(*addr),
            backoff: DIAL_BACKOFF_INITIAL,
            next_attempt: Instant::now(),
        };
        if dial_targets.insert(peer_id_of(key)?, target).is_some() {
            return Err(NetError::Config(format!("peer {key} is listed twice")));
        }
    }

    let counters = Arc::new(Counters::default());
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|error| NetError::Transport(format!("tcp/noise/yamux: {error}")))?
        .with_behaviour(|key| build_behaviour(key, &counters))
        .map_err(|error| NetError::Transport(format!("behaviour: {error}")))?
        .with_swarm_config(|swarm_config| {
            swarm_config.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT)
        })
        .build();

    for peer in peer_keys.keys() {
        if *peer != local_peer {
            swarm.behaviour_mut().allowed.allow_peer(*peer);
        }
    }
    let topic = IdentTopic::new(TX_TOPIC);
    swarm
        .behaviour_mut()
        .gossip
        .subscribe(&topic)
        .map_err(|error| NetError::Transport(format!("subscribe to {TX_TOPIC}: {error}")))?;

    swarm
        .listen_on(multiaddr_of(config.listen))
        .map_err(|error| NetError::Listen {
            addr: config.listen,
            reason: error.to_string(),
        })?;
    let listen_addr = wait_for_listen_addr(&mut swarm, config.listen).await?;
    tracing::info!(%local, %listen_addr, peers = dial_targets.len(), "network listening");

    let mut consensus_control = swarm.behaviour().consensus.new_control();
    let incoming = consensus_control
        .accept(CONSENSUS_PROTOCOL)
        .map_err(|error| NetError::Transport(format!("consensus protocol: {error}")))?;
    let (consensus_sender, consensus_in) = mpsc::channel(CONSENSUS_INBOUND_CAPACITY);
    tokio::spawn(accept_consensus(
        incoming,
        consensus_sender,
        consensus_codec(&counters),
    ));

    let (command_sender, commands) = mpsc::channel(COMMAND_QUEUE_CAPACITY);
    let (event_sender, events) = mpsc::channel(EVENT_QUEUE_CAPACITY);
    let peer_ids = peer_keys.iter().map(|(peer, key)| (*key, *peer)).collect();
    let driver = Driver {
        swarm,
        local,
        peer_keys,
        peer_ids,
        validators: config.validators,
        dial_targets,
        ready: BTreeSet::new(),
        hello_inflight: BTreeMap::new(),
        blocked: BTreeSet::new(),
        events: event_sender,
        events_closed: false,
        backlog: VecDeque::new(),
        consensus_control,
        consensus_out: BTreeMap::new(),
        consensus_in,
        sync_requests: BTreeMap::new(),
        sync_serving: FuturesUnordered::new(),
        counters: Arc::clone(&counters),
        topic,
        commands,
    };
    tokio::spawn(driver.run());
    Ok((
        NetHandle {
            commands: command_sender,
            counters: Arc::clone(&counters),
            local,
            listen_addr,
        },
        events,
    ))
}

async fn wait_for_listen_addr(
    swarm: &mut Swarm<Behaviour>,
    requested: SocketAddr,
) -> Result<SocketAddr, NetError> {
    let wait = async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::NewListenAddr { address, .. } => {
                    return socket_addr_of(&address).ok_or_else(|| NetError::Listen {
                        addr: requested,
                        reason: format!("listener reported a non-TCP address {address}"),
                    });
                }
                SwarmEvent::ListenerClosed { reason, .. } => {
                    return Err(NetError::Listen {
                        addr: requested,
                        reason: format!("listener closed: {reason:?}"),
                    });
                }
                SwarmEvent::ListenerError { error, .. } => {
                    return Err(NetError::Listen {
                        addr: requested,
                        reason: error.to_string(),
                    });
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(LISTEN_TIMEOUT, wait)
        .await
        .map_err(|_| NetError::Listen {
            addr: requested,
            reason: format!("no listen address within {LISTEN_TIMEOUT:?}"),
        })?
}

struct DialTarget {
    addr: Multiaddr,
    backoff: Duration,
    next_attempt: Instant,
}

type ServeResult = (
    PeerId,
    ResponseChannel<Vec<u8>>,
    u32,
    Result<Result<Vec<Vec<u8>>, oneshot::error::RecvError>, tokio::time::error::Elapsed>,
);

struct Driver {
    swarm: Swarm<Behaviour>,
    local: PublicKey,
    /// Allowed peers (validators and observers) by PeerId, and the reverse: converting between
    /// the two decompresses an ed25519 point (tens of µs), and every consensus message and
    /// gossiped batch needs one.
    peer_keys: BTreeMap<PeerId, PublicKey>,
    peer_ids: BTreeMap<PublicKey, PeerId>,
    validators: BTreeSet<PublicKey>,
    dial_targets: BTreeMap<PeerId, DialTarget>,
    /// Peers whose connection both sides accepted (our hello was answered).
    ready: BTreeSet<PeerId>,
    hello_inflight: BTreeMap<OutboundRequestId, (PeerId, u32)>,
    blocked: BTreeSet<PeerId>,
    events: mpsc::Sender<NetEvent>,
    events_closed: bool,
    /// Ordered, never-dropped events waiting for room in `events` (≤ EVENT_BACKLOG_MAX).
    backlog: VecDeque<NetEvent>,
    /// Opens the outbound consensus streams (one per peer, by its writer task).
    consensus_control: libp2p_stream::Control,
    /// Each peer's queue to its consensus writer task ([`write_consensus`]).
    consensus_out: BTreeMap<PeerId, mpsc::Sender<Vec<u8>>>,
    /// Consensus messages read from inbound streams ([`read_consensus`]), in each stream's order.
    consensus_in: mpsc::Receiver<(PeerId, Vec<u8>)>,
    sync_requests: BTreeMap<OutboundRequestId, SyncRequest>,
    sync_serving: FuturesUnordered<BoxFuture<'static, ServeResult>>,
    counters: Arc<Counters>,
    topic: IdentTopic,
    commands: mpsc::Receiver<Command>,
}

struct SyncRequest {
    peer: PublicKey,
    max: u32,
    reply: oneshot::Sender<Result<Vec<Vec<u8>>, NetError>>,
}

impl Driver {
    async fn run(mut self) {
        let mut shutdown_reply = None;
        // A second sender so a reserved slot does not borrow `self` across the handlers.
        let events = self.events.clone();
        loop {
            assert!(
                self.backlog.len() <= EVENT_BACKLOG_MAX,
                "event backlog over its bound"
            );
            let reading = self.backlog.len() < EVENT_BACKLOG_MAX;
            // Woken only when a redial is due (connections and blocks change in the handlers
            // below, each followed by a new turn of the loop): an idle node does not tick.
            let next_dial = self.next_dial_at();
            let dial_due = async {
                match next_dial {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                permit = events.reserve(), if !self.backlog.is_empty() => match permit {
                    Ok(permit) => {
                        if let Some(event) = self.backlog.pop_front() {
                            permit.send(event);
                        }
                    }
                    Err(_) => self.close_events(),
                },
                command = self.commands.recv() => match command {
                    None => break,
                    Some(Command::Shutdown { reply }) => {
                        shutdown_reply = Some(reply);
                        break;
                    }
                    Some(command) => self.on_command(command),
                },
                Some(served) = self.sync_serving.next(), if !self.sync_serving.is_empty() => {
                    self.on_served(served);
                }
                event = self.swarm.select_next_some(), if reading => self.on_swarm_event(event),
                Some((peer, bytes)) = self.consensus_in.recv(), if reading => {
                    self.on_consensus(peer, bytes);
                }
                _ = dial_due => self.dial_due_peers(),
            }
        }
        tracing::info!(local = %self.local, "network stopping");
        drop(self);
        if let Some(reply) = shutdown_reply {
            let _ = reply.send(());
        }
    }

    fn key_of(&self, peer: &PeerId) -> Option<PublicKey> {
        self.peer_keys.get(peer).copied()
    }

    fn close_events(&mut self) {
        if !self.events_closed {
            tracing::warn!("the node dropped its network event receiver; events are discarded");
        }
        self.events_closed = true;
        self.backlog.clear();
    }

    /// Consensus and peer events: never dropped; held in order while the queue is full.
    fn deliver_ordered(&mut self, event: NetEvent) {
        if self.events_closed {
            return;
        }
        if self.backlog.is_empty() {
            match self.events.try_send(event) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.close_events();
                    return;
                }
                Err(mpsc::error::TrySendError::Full(event)) => self.backlog.push_back(event),
            }
        } else {
            self.backlog.push_back(event);
        }
        if self.backlog.len() == EVENT_BACKLOG_MAX {
            self.counters.bump(&self.counters.event_queue_pauses);
            tracing::warn!(
                backlog = EVENT_BACKLOG_MAX,
                "node is not draining network events; pausing network reads"
            );
        }
    }

    /// Droppable events (transactions, block requests): delivered only if there is room now.
    fn deliver_droppable(&mut self, event: NetEvent) -> bool {
        if self.events_closed || !self.backlog.is_empty() {
            return false;
        }
        match self.events.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => false,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.close_events();
                false
            }
        }
    }

    fn allowed_peer(&self, key: &PublicKey) -> Result<PeerId, NetError> {
        if let Some(peer) = self.peer_ids.get(key) {
            return Ok(*peer);
        }
        // Not allowed; a key that is no ed25519 point at all is reported as such.
        peer_id_of(key)?;
        Err(NetError::NotAllowed(*key))
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::SendConsensus { to, bytes, reply } => {
                let _ = reply.send(self.send_consensus(to, bytes));
            }
            Command::BroadcastConsensus { bytes, reply } => {
                let targets: Vec<PublicKey> = self
                    .validators
                    .iter()
                    .filter(|key| **key != self.local)
                    .copied()
                    .collect();
                let mut queued = 0;
                for key in targets {
                    let Some(&peer) = self.peer_ids.get(&key) else {
                        continue;
                    };
                    if !self.ready.contains(&peer) || self.blocked.contains(&peer) {
                        continue;
                    }
                    match self.send_consensus(key, bytes.clone()) {
                        Ok(()) => queued += 1,
                        Err(error) => tracing::warn!(%key, %error, "broadcast skipped a peer"),
                    }
                }
                let _ = reply.send(Ok(queued));
            }
            Command::GossipTx { bytes, reply } => {
                let result = match self
                    .swarm
                    .behaviour_mut()
                    .gossip
                    .publish(self.topic.clone(), bytes)
                {
                    Ok(_) | Err(gossipsub::PublishError::Duplicate) => Ok(()),
                    Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                        Err(NetError::Gossip(
                            "no connected peer is subscribed to the transaction topic".to_string(),
                        ))
                    }
                    Err(gossipsub::PublishError::MessageTooLarge) => {
                        self.counters
                            .bump(&self.counters.oversized_outbound_rejected);
                        Err(NetError::Gossip("gossip frame too large".to_string()))
                    }
                    Err(error) => Err(NetError::Gossip(error.to_string())),
                };
                let _ = reply.send(result);
            }
            Command::RequestBlocks {
                from,
                from_height,
                max,
                reply,
            } => self.request_blocks(from, from_height, max, reply),
            Command::ConnectedPeers { reply } => {
                let peers = self
                    .ready
                    .iter()
                    .filter_map(|peer| self.key_of(peer))
                    .collect();
                let _ = reply.send(peers);
            }
            Command::SetBlocked { peers, reply } => {
                let _ = reply.send(self.set_blocked(peers));
            }
            Command::Stats { reply } => {
                let mut stats: NetStats = self.counters.snapshot();
                stats.connected_peers = self.ready.len();
                let topic = self.topic.hash();
                stats.tx_topic_peers = self
                    .swarm
                    .behaviour()
                    .gossip
                    .all_peers()
                    .filter(|(_, topics)| topics.contains(&&topic))
                    .count();
                stats.event_backlog_len = self.backlog.len();
                let _ = reply.send(stats);
            }
            Command::Shutdown { .. } => unreachable!("handled in the loop"),
        }
    }

    fn send_consensus(&mut self, to: PublicKey, bytes: Vec<u8>) -> Result<(), NetError> {
        assert!(
            bytes.len() <= CONSENSUS_MESSAGE_BYTES_MAX,
            "checked by the handle"
        );
        if to == self.local {
            return Err(NetError::Config(
                "cannot send a consensus message to self".into(),
            ));
        }
        let peer = self.allowed_peer(&to)?;
        if self.blocked.contains(&peer) {
            self.counters.bump(&self.counters.blocked_traffic_dropped);
            return Ok(());
        }
        if !self.swarm.is_connected(&peer) {
            return Err(NetError::NotConnected(to));
        }
        let queue = match self.consensus_out.get(&peer) {
            Some(queue) if !queue.is_closed() => queue,
            _ => {
                let (queue, messages) = mpsc::channel(CONSENSUS_INFLIGHT_PER_PEER_MAX);
                tokio::spawn(write_consensus(
                    self.consensus_control.clone(),
                    peer,
                    messages,
                    Arc::clone(&self.counters),
                ));
                self.consensus_out
                    .entry(peer)
                    .insert_entry(queue)
                    .into_mut()
            }
        };
        match queue.try_send(bytes) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.counters
                    .bump(&self.counters.consensus_dropped_peer_backlog);
                tracing::warn!(peer = %to, inflight = CONSENSUS_INFLIGHT_PER_PEER_MAX, "consensus message dropped: peer backlog full");
                Err(NetError::PeerBacklogFull {
                    peer: to,
                    inflight: CONSENSUS_INFLIGHT_PER_PEER_MAX,
                })
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                // Only if the writer task died (it ends only when this sender is dropped): the
                // message is lost like a failed write, and the next send starts a new writer.
                self.counters.bump(&self.counters.consensus_send_failures);
                tracing::error!(peer = %to, "consensus writer task ended; message dropped");
                self.consensus_out.remove(&peer);
                Ok(())
            }
        }
    }

    fn sync_target(&self, from: &PublicKey) -> Result<PeerId, NetError> {
        let peer = self.allowed_peer(from)?;
        if self.blocked.contains(&peer) {
            return Err(NetError::PeerBlocked(*from));
        }
        if !self.swarm.is_connected(&peer) {
            return Err(NetError::NotConnected(*from));
        }
        if self.sync_requests.len() >= SYNC_REQUESTS_INFLIGHT_MAX {
            return Err(NetError::SyncRequestsInflightFull);
        }
        Ok(peer)
    }

    fn request_blocks(
        &mut self,
        from: PublicKey,
        from_height: u64,
        max: u32,
        reply: oneshot::Sender<Result<Vec<Vec<u8>>, NetError>>,
    ) {
        let peer = match self.sync_target(&from) {
            Ok(peer) => peer,
            Err(error) => {
                let _ = reply.send(Err(error));
                return;
            }
        };
        let id = self
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, encode_sync_request(from_height, max));
        self.sync_requests.insert(
            id,
            SyncRequest {
                peer: from,
                max,
                reply,
            },
        );
    }

    fn set_blocked(&mut self, keys: BTreeSet<PublicKey>) -> Result<(), NetError> {
        let mut peers = BTreeSet::new();
        for key in &keys {
            peers.insert(peer_id_of(key)?);
        }
        let now = Instant::now();
        for healed in self.blocked.difference(&peers) {
            self.swarm.behaviour_mut().blocked.unblock_peer(*healed);
            if let Some(target) = self.dial_targets.get_mut(healed) {
                target.backoff = DIAL_BACKOFF_INITIAL;
                target.next_attempt = now;
            }
        }
        for cut in peers.difference(&self.blocked) {
            // Closes every connection to the peer and denies new ones in both directions.
            self.swarm.behaviour_mut().blocked.block_peer(*cut);
        }
        tracing::info!(
            blocked = keys.len(),
            "fault injection: blocked peer set replaced"
        );
        self.blocked = peers;
        Ok(())
    }

    /// When the next configured peer that is neither connected nor blocked is due a dial.
    fn next_dial_at(&self) -> Option<Instant> {
        self.dial_targets
            .iter()
            .filter(|(peer, _)| !self.blocked.contains(*peer) && !self.swarm.is_connected(peer))
            .map(|(_, target)| target.next_attempt)
            .min()
    }

    fn dial_due_peers(&mut self) {
        let now = Instant::now();
        for (peer, target) in self.dial_targets.iter_mut() {
            if self.blocked.contains(peer)
                || now < target.next_attempt
                || self.swarm.is_connected(peer)
            {
                continue;
            }
            let options = DialOpts::peer_id(*peer)
                .addresses(vec![target.addr.clone()])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            match self.swarm.dial(options) {
                Ok(()) | Err(DialError::DialPeerConditionFalse(_)) => {}
                Err(error) => tracing::debug!(%peer, %error, "dial not started"),
            }
            target.next_attempt = now + target.backoff;
            target.backoff = (target.backoff * 2).min(DIAL_BACKOFF_MAX);
        }
    }

    fn send_hello(&mut self, peer: PeerId, attempt: u32) {
        let id = self
            .swarm
            .behaviour_mut()
            .hello
            .send_request(&peer, HELLO.to_vec());
        self.hello_inflight.insert(id, (peer, attempt));
    }

    fn note_denied(&mut self, cause: &ConnectionDenied, peer: Option<PeerId>, inbound: bool) {
        if cause
            .downcast_ref::<allow_block_list::NotAllowed>()
            .is_some()
        {
            self.counters
                .bump(&self.counters.unknown_peer_connections_denied);
            tracing::warn!(
                ?peer,
                inbound,
                "refused a connection from a key not in the allow-list"
            );
        } else if cause.downcast_ref::<allow_block_list::Blocked>().is_some() {
            self.counters.bump(&self.counters.blocked_traffic_dropped);
            tracing::debug!(?peer, inbound, "refused a connection to a blocked peer");
        } else {
            tracing::warn!(?peer, inbound, %cause, "connection denied");
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                tracing::debug!(peer = %peer_id, ?endpoint, "connection established");
                if let Some(target) = self.dial_targets.get_mut(&peer_id) {
                    target.backoff = DIAL_BACKOFF_INITIAL;
                }
                let hello_pending = self.hello_inflight.values().any(|(p, _)| *p == peer_id);
                if !self.ready.contains(&peer_id) && !hello_pending {
                    self.send_hello(peer_id, 1);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                cause,
                ..
            } => {
                tracing::debug!(peer = %peer_id, num_established, ?cause, "connection closed");
                if num_established == 0 {
                    if let Some(target) = self.dial_targets.get_mut(&peer_id) {
                        target.next_attempt = Instant::now() + target.backoff;
                    }
                    if self.ready.remove(&peer_id) {
                        if let Some(key) = self.key_of(&peer_id) {
                            tracing::info!(peer = %key, "peer disconnected");
                            self.deliver_ordered(NetEvent::PeerDisconnected(key));
                        }
                    }
                }
            }
            SwarmEvent::IncomingConnectionError { error, peer_id, .. } => match error {
                ListenError::Denied { cause } => self.note_denied(&cause, peer_id, true),
                other => tracing::debug!(?peer_id, error = %other, "incoming connection failed"),
            },
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => match error {
                DialError::Denied { cause } => self.note_denied(&cause, peer_id, false),
                other => tracing::debug!(?peer_id, error = %other, "outgoing connection failed"),
            },
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Hello(event) => self.on_hello(event),
            BehaviourEvent::Consensus(()) => {}
            BehaviourEvent::Sync(event) => self.on_sync(event),
            BehaviourEvent::Gossip(event) => self.on_gossip(event),
            BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(failure),
            }) => {
                tracing::warn!(%peer, %failure, "ping failed; closing the connection");
                self.swarm.close_connection(connection);
            }
            BehaviourEvent::Ping(_) => {}
            BehaviourEvent::Allowed(never) | BehaviourEvent::Blocked(never) => match never {},
            BehaviourEvent::Limits(never) => match never {},
        }
    }

    fn on_hello(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        use request_response::{Event, Message};
        match event {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                if request == HELLO {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .hello
                        .send_response(channel, HELLO.to_vec());
                } else {
                    self.counters
                        .bump(&self.counters.malformed_inbound_rejected);
                    tracing::warn!(%peer, "malformed hello");
                }
            }
            Event::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                self.hello_inflight.remove(&request_id);
                if response != HELLO {
                    self.counters
                        .bump(&self.counters.malformed_inbound_rejected);
                    tracing::warn!(%peer, "malformed hello answer; disconnecting");
                    let _ = self.swarm.disconnect_peer_id(peer);
                    return;
                }
                if self.blocked.contains(&peer) || !self.swarm.is_connected(&peer) {
                    return;
                }
                if self.ready.insert(peer) {
                    if let Some(key) = self.key_of(&peer) {
                        tracing::info!(peer = %key, "peer connected");
                        self.deliver_ordered(NetEvent::PeerConnected(key));
                    }
                }
            }
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                let attempt = self
                    .hello_inflight
                    .remove(&request_id)
                    .map_or(1, |(_, a)| a);
                tracing::debug!(%peer, %error, attempt, "hello failed");
                if self.swarm.is_connected(&peer) && !self.ready.contains(&peer) {
                    if attempt < HELLO_ATTEMPTS_MAX {
                        self.send_hello(peer, attempt + 1);
                    } else {
                        tracing::warn!(%peer, "no hello answer; disconnecting to redial");
                        let _ = self.swarm.disconnect_peer_id(peer);
                    }
                }
            }
            Event::InboundFailure { .. } | Event::ResponseSent { .. } => {}
        }
    }

    fn on_consensus(&mut self, peer: PeerId, bytes: Vec<u8>) {
        if self.blocked.contains(&peer) {
            self.counters.bump(&self.counters.blocked_traffic_dropped);
            return;
        }
        let Some(from) = self.key_of(&peer) else {
            tracing::error!(%peer, "consensus message on a connection the allow-list should have refused");
            return;
        };
        self.counters.bump(&self.counters.consensus_received);
        self.deliver_ordered(NetEvent::Consensus { from, bytes });
    }

    fn on_sync(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        use request_response::{Event, Message};
        match event {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                if self.blocked.contains(&peer) {
                    self.counters.bump(&self.counters.blocked_traffic_dropped);
                    return;
                }
                let (from_height, max) = match decode_sync_request(&request) {
                    Ok(decoded) => decoded,
                    Err(reason) => {
                        self.counters
                            .bump(&self.counters.malformed_inbound_rejected);
                        tracing::warn!(%peer, reason, "malformed block request");
                        return;
                    }
                };
                let max = max.min(SYNC_RESPONSE_BLOCKS_MAX);
                let Some(from) = self.key_of(&peer) else {
                    return;
                };
                if self.sync_serving.len() >= SYNC_SERVING_MAX {
                    self.counters.bump(&self.counters.block_requests_dropped);
                    tracing::warn!(peer = %from, "block request refused: too many being served");
                    return;
                }
                let (respond, answer) = oneshot::channel();
                let event = NetEvent::BlockRequest {
                    from,
                    from_height,
                    max,
                    respond,
                };
                if !self.deliver_droppable(event) {
                    self.counters.bump(&self.counters.block_requests_dropped);
                    tracing::warn!(peer = %from, "block request refused: node event queue full");
                    return;
                }
                self.sync_serving.push(Box::pin(async move {
                    let answer = tokio::time::timeout(SYNC_SERVE_TIMEOUT, answer).await;
                    (peer, channel, max, answer)
                }));
            }
            Event::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let Some(request) = self.sync_requests.remove(&request_id) else {
                    tracing::error!(%peer, "block response to an unknown request");
                    return;
                };
                let result =
                    decode_sync_response(&response, request.max as usize).map_err(|reason| {
                        self.counters
                            .bump(&self.counters.malformed_inbound_rejected);
                        NetError::InvalidSyncResponse {
                            peer: request.peer,
                            reason,
                        }
                    });
                let _ = request.reply.send(result);
            }
            Event::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some(request) = self.sync_requests.remove(&request_id) {
                    let _ = request.reply.send(Err(NetError::SyncFailed {
                        peer: request.peer,
                        reason: error.to_string(),
                    }));
                }
            }
            Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound block request failed");
            }
            Event::ResponseSent { .. } => {}
        }
    }

    fn on_served(&mut self, (peer, channel, max, answer): ServeResult) {
        match answer {
            Ok(Ok(blocks)) => {
                let (bytes, count) =
                    encode_sync_response(&blocks, max as usize, SYNC_RESPONSE_BYTES_MAX);
                if count < blocks.len() {
                    self.counters.bump(&self.counters.sync_responses_truncated);
                    tracing::debug!(%peer, answered = blocks.len(), sent = count, "sync response cut to its bounds");
                }
                if self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, bytes)
                    .is_err()
                {
                    tracing::debug!(%peer, "requester left before the block response");
                }
            }
            Ok(Err(_)) => {
                self.counters.bump(&self.counters.block_requests_dropped);
                tracing::debug!(%peer, "node declined a block request");
            }
            Err(_) => {
                self.counters.bump(&self.counters.block_requests_dropped);
                tracing::warn!(%peer, timeout = ?SYNC_SERVE_TIMEOUT, "node did not answer a block request in time");
            }
        }
    }

    fn on_gossip(&mut self, event: gossipsub::Event) {
        let gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        } = event
        else {
            if let gossipsub::Event::SlowPeer { peer_id, .. } = event {
                tracing::warn!(peer = %peer_id, "gossip peer is slow; messages to it were dropped");
            }
            return;
        };
        let acceptance = self.judge_gossip(propagation_source, message);
        self.swarm
            .behaviour_mut()
            .gossip
            .report_message_validation_result(&message_id, &propagation_source, acceptance);
    }

    fn judge_gossip(
        &mut self,
        forwarder: PeerId,
        message: gossipsub::Message,
    ) -> MessageAcceptance {
        let Some(author) = message.source else {
            self.counters
                .bump(&self.counters.malformed_inbound_rejected);
            return MessageAcceptance::Reject;
        };
        if self.blocked.contains(&author) || self.blocked.contains(&forwarder) {
            self.counters.bump(&self.counters.blocked_traffic_dropped);
            return MessageAcceptance::Ignore;
        }
        if message.data.len() > TX_MESSAGE_BYTES_MAX {
            self.counters
                .bump(&self.counters.oversized_inbound_rejected);
            tracing::warn!(%forwarder, bytes = message.data.len(), "oversized gossiped transaction");
            return MessageAcceptance::Reject;
        }
        let Some(from) = self.key_of(&author).or_else(|| public_key_of(&author)) else {
            self.counters
                .bump(&self.counters.malformed_inbound_rejected);
            return MessageAcceptance::Reject;
        };
        self.counters.bump(&self.counters.tx_received);
        if !self.deliver_droppable(NetEvent::Tx {
            from,
            bytes: message.data,
        }) {
            self.counters.bump(&self.counters.tx_dropped_queue_full);
        }
        if self.validators.contains(&from) {
            // Not relayed: validators dial every validator in the genesis and publish to every
            // subscribed peer, so every validator connected to the author has it from the
            // author. Relayed, each validator got it twice more from the others (4 validators
            // at saturation: 3.3 -> 2.0 kB on the wire and 162-171 -> 152-153 µs of CPU per
            // committed transaction). A validator cut off from the author gets the transaction
            // in the block that commits it.
            MessageAcceptance::Ignore
        } else {
            // Forward even when dropped locally: other nodes may have room.
            MessageAcceptance::Accept
        }
    }
}

/// The framing of consensus streams: the request-response frames (`u32` BE length ‖ bytes),
/// back to back on one stream.
fn consensus_codec(counters: &Arc<Counters>) -> FrameCodec {
    FrameCodec {
        channel: "consensus",
        request_bytes_max: CONSENSUS_MESSAGE_BYTES_MAX,
        response_bytes_max: 0,
        counters: Arc::clone(counters),
    }
}

/// Writes the consensus messages queued for `peer` on one long-lived stream, opened on the
/// first message and again after a failure. A request-response exchange per message (a yamux
/// stream opened, protocol negotiation, request, empty acknowledgement, two closes) cost about
/// six TCP sends per message: at half load, 60 blocks/s of votes and proposals, most of the
/// nodes' 13,000 sends a second and 15 % of their CPU in connection handling.
///
/// A write that fails on a stream kept from before is tried once more on a fresh stream (the
/// old one may belong to a connection that closed). The messages of a write that fails on a
/// fresh stream are lost and counted as send failures, as an unacknowledged request was:
/// Tendermint's round timeouts recover lost messages, and block sync serves a peer that fell
/// behind. A write not done within [`CONSENSUS_ACK_TIMEOUT`] (a peer that stopped reading, a
/// dead connection; the same bound a request had) fails the same way and the stream is
/// reopened for the next messages.
async fn write_consensus(
    mut control: libp2p_stream::Control,
    peer: PeerId,
    mut queue: mpsc::Receiver<Vec<u8>>,
    counters: Arc<Counters>,
) {
    use futures::AsyncWriteExt;
    let mut stream: Option<libp2p::Stream> = None;
    let mut gathered = Vec::new();
    while let Some(first) = queue.recv().await {
        gathered.clear();
        let mut messages = 0u64;
        let mut next = Some(first);
        while let Some(message) = next {
            // Sizes were checked against CONSENSUS_MESSAGE_BYTES_MAX (< 4 GiB) by the handle.
            gathered.extend_from_slice(&(message.len() as u32).to_be_bytes());
            gathered.extend_from_slice(&message);
            messages += 1;
            next = if gathered.len() < CONSENSUS_WRITE_GATHER_BYTES {
                queue.try_recv().ok()
            } else {
                None
            };
        }
        let written = tokio::time::timeout(CONSENSUS_ACK_TIMEOUT, async {
            // A stream kept from before may belong to a connection that has since closed (the
            // peer restarted, a partition healed): its write fails at once, and the messages
            // go again on a fresh stream instead of being lost.
            let mut fresh = false;
            loop {
                if stream.is_none() {
                    let opened = control
                        .open_stream(peer, CONSENSUS_PROTOCOL)
                        .await
                        .map_err(std::io::Error::other)?;
                    stream = Some(opened);
                    fresh = true;
                }
                let open = stream.as_mut().expect("opened above");
                let result = match open.write_all(&gathered).await {
                    Ok(()) => open.flush().await,
                    Err(error) => Err(error),
                };
                match result {
                    Err(_) if !fresh => stream = None,
                    result => return result,
                }
            }
        })
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("not written within {CONSENSUS_ACK_TIMEOUT:?}"),
            ))
        });
        match written {
            Ok(()) => {
                counters
                    .consensus_sent
                    .fetch_add(messages, std::sync::atomic::Ordering::Relaxed);
            }
            Err(error) => {
                counters
                    .consensus_send_failures
                    .fetch_add(messages, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(%peer, %error, messages, "consensus messages not sent");
                stream = None;
            }
        }
    }
}

/// Open inbound consensus streams per peer, at most `max` each: a slot is held by the reader
/// task of a stream ([`StreamSlot`]) and freed when it ends.
struct InboundStreams {
    max: usize,
    open: BTreeMap<PeerId, Arc<()>>,
}

/// One open inbound stream of a peer (counted by the strong references to the peer's entry).
struct StreamSlot(#[allow(dead_code)] Arc<()>);

impl InboundStreams {
    fn new(max: usize) -> InboundStreams {
        InboundStreams {
            max,
            open: BTreeMap::new(),
        }
    }

    fn admit(&mut self, peer: PeerId) -> Option<StreamSlot> {
        // Forget peers whose streams all ended.
        self.open.retain(|_, count| Arc::strong_count(count) > 1);
        let count = self.open.entry(peer).or_default();
        (Arc::strong_count(count) <= self.max).then(|| StreamSlot(Arc::clone(count)))
    }
}

/// Takes each inbound consensus stream and reads it in its own task.
async fn accept_consensus(
    mut incoming: libp2p_stream::IncomingStreams,
    inbound: mpsc::Sender<(PeerId, Vec<u8>)>,
    codec: FrameCodec,
) {
    let mut open = InboundStreams::new(CONSENSUS_INBOUND_STREAMS_PER_PEER_MAX);
    while let Some((peer, stream)) = incoming.next().await {
        let Some(slot) = open.admit(peer) else {
            codec
                .counters
                .bump(&codec.counters.consensus_streams_refused);
            tracing::warn!(%peer, max = CONSENSUS_INBOUND_STREAMS_PER_PEER_MAX, "inbound consensus stream refused: too many open");
            continue;
        };
        tokio::spawn(read_consensus(
            peer,
            stream,
            inbound.clone(),
            codec.clone(),
            slot,
        ));
    }
}

/// Reads one peer's consensus stream until it ends or breaks a bound (an oversized frame is
/// counted and ends the stream, as it failed the request before).
async fn read_consensus(
    peer: PeerId,
    mut stream: libp2p::Stream,
    inbound: mpsc::Sender<(PeerId, Vec<u8>)>,
    codec: FrameCodec,
    _slot: StreamSlot,
) {
    loop {
        match codec
            .read_frame(&mut stream, CONSENSUS_MESSAGE_BYTES_MAX)
            .await
        {
            Ok(bytes) => {
                if inbound.send((peer, bytes)).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                tracing::debug!(%peer, %error, "inbound consensus stream ended");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_holds_at_most_the_maximum_of_inbound_consensus_streams() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut open = InboundStreams::new(2);
        let first = open.admit(a).expect("first stream of a");
        let second = open.admit(a).expect("second stream of a");
        assert!(open.admit(a).is_none(), "a third stream of a is refused");
        // Another peer's streams are counted apart.
        let other = open.admit(b).expect("first stream of b");
        // A stream that ends frees its slot.
        drop(first);
        let third = open.admit(a).expect("a slot freed by an ended stream");
        assert!(open.admit(a).is_none());
        drop((second, third, other));
        assert!(open.admit(a).is_some() && open.admit(b).is_some());
        // Peers whose streams all ended are forgotten.
        let _ = open.admit(b);
        assert_eq!(open.open.len(), 1);
    }
}
