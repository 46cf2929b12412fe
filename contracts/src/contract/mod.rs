//! The contract framework: commands decoded from transaction payloads, `decide` (all business
//! rules; pure) → events or a [`Rejection`], `evolve` (applies an event; no rules), and the
//! block engine the node's `Application` adapter calls.
//!
//! ## Block execution ([`ContractEngine::execute_block`])
//! For each transaction in block order: the nonce must be the signer's next one (else
//! `tx.bad_nonce`, and nothing changes); the nonce is then consumed whatever the command's
//! outcome. The payload is decoded ([`Command::decode`]), the signer resolved to its
//! organization (`iam.signer_unknown`), the RBAC table consulted (`rbac.role_forbidden`), and
//! the command decided against the state as left by the earlier transactions of the block
//! (an [`Overlay`]). Accepted events are evolved into the overlay and logged.
//!
//! Output: state writes in key order, index entries in execution order, one result per
//! transaction, and the state root.
//!
//! ## State root
//! `root(h) = blake3_derive_key(Domain::State, root(h-1) ‖ height ‖ W ‖ I ‖ F ‖ |F|)`
//! ([`facts::BlockRoots::state_root`]) where `W` is the sequential blake3 digest of the block's
//! state writes sorted by key ([`writes_digest`]), `I` the sequential digest of the block's
//! index entries in order ([`index_digest`]), and `F` the RFC 6962 Merkle root
//! (ledger::merkle) over the block's package facts ([`facts`]: the public, per-package part of
//! each accepted event). It commits to the whole history of state changes (two nodes with the
//! same root executed the same writes and index entries); a package fact can be proven part of
//! its block's `F` with an audit path (what a consumer's proof carries), and the parts are kept
//! in the `block_roots` index so a proof can show them. Writes and index entries are hashed as
//! one buffer each, not as trees: nothing proves them one by one, and per-entry leaves with
//! their inner nodes cost more than the rest of execution. It is not a sparse Merkle tree over
//! the full state, so it does not prove a key's current value (nor that no later fact exists)
//! by itself.
//!
//! ## Indexes written (`IndexEntry`; entries are overwritten, never deleted)
//! An EPC in a key (or in the `epc` index's value) is [`types::Epc::key_bytes`]: its URN with
//! the scheme prefix as one byte.
//! - `event`: position (height, tx, event; big-endian) → version byte ‖ Borsh [`LoggedEvent`] — the log
//!   projections are rebuilt from.
//! - `epc`: EPC ‖ 0 ‖ position → parent EPC through which the event applied ("" if direct), for
//!   an item's events past the first [`custody::ITEM_HISTORY_INLINE_MAX`] (those are listed in
//!   its record, which each event rewrites anyway) and for cold-chain events; a package's
//!   history is both ([`custody::history_links`]).
//! - `lot`: GTIN ‖ lot ‖ 0 ‖ position → empty, one per commissioning (its logged event lists
//!   the serials: one entry per package cost a write each).
//! - `party`: GLN ‖ `S` shipment id / `X` exception id → 1 open, 0 closed.
//! - `status`: status byte ‖ position ‖ EPC → empty: status transitions.
//! - `tx_result`: transaction hash → Borsh [`TxResult`] (same shape as the node's `TxOutcome`),
//!   for rejected transactions only: a committed transaction without an entry was accepted.
//! - `fact`: subject key ‖ position ‖ fact index → empty ([`facts::PackageFact::index_key`]),
//!   for product and lot facts (package facts are found through the package's history).
//! - `block_roots`: height → Borsh [`facts::BlockRoots`] (appended after `I` is taken).

pub mod command;
pub mod event;
pub mod facts;
pub mod fixtures;
pub mod ledger_state;
pub mod store;
pub mod types;

pub use command::{Command, CommandKind, Role};
pub use event::{Event, LoggedEvent};
pub use ledger_state::LedgerState;
pub use store::{IndexRead, MemLedger, Overlay, StateRead, StateWriter};
pub use types::{BlockContext, Date, Epc, Gln, Gtin, Position, Rejection};

use crate::{custody, iam};
use borsh::{BorshDeserialize, BorshSerialize};
use pharmalink_ledger::{Hash, IndexEntry, PublicKey, StateWrite};
use std::collections::BTreeMap;

pub const NONCE_PREFIX: &[u8] = b"nonce/";
pub const STATE_ROOT_KEY: &[u8] = b"app/state_root";
/// The outcome of each *rejected* transaction, by transaction hash (`TxResult`'s Borsh
/// encoding). A committed transaction without an entry was accepted: most are, and an entry
/// each was one random-keyed index write per transaction on every validator.
pub const TX_RESULT_INDEX: &str = "tx_result";
pub const EVENT_INDEX: &str = "event";
/// First byte of every logged event in the `event` index (the event schema's version).
pub const EVENT_VERSION: u8 = 1;

/// Decodes a value of the `event` index (version byte ‖ Borsh [`LoggedEvent`]).
pub fn decode_logged_event(bytes: &[u8]) -> Option<LoggedEvent> {
    match bytes.split_first() {
        Some((&EVENT_VERSION, body)) => borsh::from_slice(body).ok(),
        _ => None,
    }
}
/// Most transactions per block the engine executes (the ledger bounds blocks tighter).
pub const BLOCK_TXS_MAX: usize = 100_000;
/// Most events one command may produce.
pub const EVENTS_PER_COMMAND_MAX: usize = 64;

const WRITES_DIGEST_CONTEXT: &str = "pharmalink 2026-11 state writes digest v1";
const INDEX_DIGEST_CONTEXT: &str = "pharmalink 2026-11 index entries digest v1";

/// blake3 fed through a fixed 16 KiB buffer: small pieces are gathered so each update spans
/// 16 chunks (blake3's wide SIMD path), without first copying a whole block's entries into one
/// allocation (fresh pages, zeroed by the kernel, for every block). The digest is the same as
/// hashing the concatenation at once.
struct ChunkedHasher {
    hasher: blake3::Hasher,
    buffer: Vec<u8>,
}

impl ChunkedHasher {
    const BUFFER_BYTES: usize = 16 * 1024;

    fn new(context: &str) -> ChunkedHasher {
        ChunkedHasher {
            hasher: blake3::Hasher::new_derive_key(context),
            buffer: Vec::with_capacity(Self::BUFFER_BYTES),
        }
    }

    fn put(&mut self, bytes: &[u8]) {
        if self.buffer.len() + bytes.len() > Self::BUFFER_BYTES {
            self.hasher.update(&self.buffer);
            self.buffer.clear();
        }
        if bytes.len() >= Self::BUFFER_BYTES {
            self.hasher.update(bytes);
        } else {
            self.buffer.extend_from_slice(bytes);
        }
    }

    /// Length (u32 LE) ‖ bytes.
    fn put_field(&mut self, bytes: &[u8]) {
        self.put(&(bytes.len() as u32).to_le_bytes());
        self.put(bytes);
    }

    fn finish(mut self) -> Hash {
        self.hasher.update(&self.buffer);
        Hash(*self.hasher.finalize().as_bytes())
    }
}

/// Sequential digest of a block's state writes in key order (`count ‖ (len ‖ key ‖ (0 | 1 ‖
/// len ‖ value))*`, count u64 LE, lengths u32 LE). It was an RFC 6962 tree over per-write
/// leaves, which no proof used: its leaves and inner nodes were about a tenth of a validator's
/// CPU at saturation.
pub fn writes_digest(writes: &[StateWrite]) -> Hash {
    let mut hasher = ChunkedHasher::new(WRITES_DIGEST_CONTEXT);
    hasher.put(&(writes.len() as u64).to_le_bytes());
    for write in writes {
        hasher.put_field(&write.key);
        match &write.value {
            None => hasher.put(&[0]),
            Some(value) => {
                hasher.put(&[1]);
                hasher.put_field(value);
            }
        }
    }
    hasher.finish()
}

/// Sequential digest of a block's index entries in order (`count ‖ (len ‖ name ‖ len ‖ key ‖
/// len ‖ value ‖ [u32::MAX if a removal])*`).
pub fn index_digest(entries: &[IndexEntry]) -> Hash {
    let mut hasher = ChunkedHasher::new(INDEX_DIGEST_CONTEXT);
    hasher.put(&(entries.len() as u64).to_le_bytes());
    for entry in entries {
        for field in [entry.index.as_bytes(), &entry.key, &entry.value] {
            hasher.put_field(field);
        }
        if entry.remove {
            // A removal is marked with a length no field can have.
            hasher.put(&u32::MAX.to_le_bytes());
        }
    }
    hasher.finish()
}

/// A transaction's outcome. Borsh layout identical to node/src/app.rs `TxOutcome`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum TxResult {
    Accepted,
    Rejected { code: String, reason: String },
}

/// What the engine needs of a transaction (signature already verified by the node).
#[derive(Clone, Copy, Debug)]
pub struct TxInput<'a> {
    pub hash: Hash,
    pub signer: PublicKey,
    pub nonce: u64,
    pub payload: &'a [u8],
}

/// Everything a block changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockEffects {
    pub state_writes: Vec<StateWrite>,
    pub index_entries: Vec<IndexEntry>,
    pub results: Vec<TxResult>,
    /// Accepted events in log order (for the outbox / subscribers).
    pub events: Vec<LoggedEvent>,
    pub state_root: Hash,
}

/// `decide`: every business rule. Resolves the signer, checks RBAC, dispatches.
pub fn decide<S: StateRead + ?Sized>(
    state: &S,
    command: &Command,
    ctx: &BlockContext,
) -> Result<Vec<Event>, Rejection> {
    let actor = iam::signer_organization(state, &ctx.signer)?;
    decide_as(state, &actor, command, ctx)
}

/// `decide` with the signer's organization already resolved (the engine caches it per block).
pub fn decide_as<S: StateRead + ?Sized>(
    state: &S,
    actor: &iam::Organization,
    command: &Command,
    ctx: &BlockContext,
) -> Result<Vec<Event>, Rejection> {
    iam::check_rbac(actor.role(), command.kind())?;
    let events = match command.kind() {
        CommandKind::Propose
        | CommandKind::Vote
        | CommandKind::AddMemberKey
        | CommandKind::RotateMemberKey
        | CommandKind::RevokeMemberKey
        | CommandKind::RecordLicence => iam::decide(state, actor, command, ctx)?,
        _ => custody::decide(state, actor, command, ctx)?,
    };
    types::ensure(
        events.len() <= EVENTS_PER_COMMAND_MAX,
        "contract.too_many_events",
        || format!("{} events (max {EVENTS_PER_COMMAND_MAX})", events.len()),
    )?;
    Ok(events)
}

/// `evolve`: applies one event (no rules) and writes its index entries.
pub fn evolve<W: StateWriter + ?Sized>(
    state: &mut W,
    position: Position,
    timestamp_ms: u64,
    event: &Event,
) {
    evolve_with_facts(state, position, timestamp_ms, event);
}

/// [`evolve`], returning the event's package facts (indexed under [`facts::FACT_INDEX`]).
pub fn evolve_with_facts<W: StateWriter + ?Sized>(
    state: &mut W,
    position: Position,
    timestamp_ms: u64,
    event: &Event,
) -> Vec<facts::PackageFact> {
    // Same bytes as `LoggedEvent { position, timestamp_ms, event }` (Borsh writes struct
    // fields in order), without cloning the event.
    let mut value = vec![EVENT_VERSION];
    // Writing Borsh into a Vec does not fail.
    let _ = borsh::to_writer(&mut value, &(position, timestamp_ms, event));
    let package_facts = facts::facts_of(position, timestamp_ms, event, facts::event_hash(&value));
    state.index(EVENT_INDEX, position.key().to_vec(), value);
    // Facts about packages are found through each package's history (custody records every
    // event that touches an EPC); only product and lot facts need their own entries.
    for fact in &package_facts {
        if !matches!(fact.subject, facts::Subject::Epc(_)) {
            state.index(facts::FACT_INDEX, fact.index_key(), Vec::new());
        }
    }
    iam::evolve(state, event);
    custody::evolve(state, position, timestamp_ms, event);
    package_facts
}

/// Replays logged events (a projection rebuild: from genesis into an empty store, or from a
/// snapshot's height on).
pub fn replay<'a, W: StateWriter + ?Sized>(
    state: &mut W,
    events: impl IntoIterator<Item = &'a LoggedEvent>,
) {
    for logged in events {
        evolve(state, logged.position, logged.timestamp_ms, &logged.event);
    }
}

/// The genesis: IAM bootstrap events logged at height 0, evolved into `state`.
pub fn bootstrap<W: StateWriter + ?Sized>(
    state: &mut W,
    organizations: &[iam::GenesisOrganization],
    genesis_time_ms: u64,
) -> Result<Vec<LoggedEvent>, Rejection> {
    let events = iam::genesis_events(organizations)?;
    let mut logged = Vec::with_capacity(events.len());
    for (index, event) in events.into_iter().enumerate() {
        let position = Position {
            height: 0,
            tx: 0,
            event: index as u32,
        };
        evolve(state, position, genesis_time_ms, &event);
        logged.push(LoggedEvent {
            position,
            timestamp_ms: genesis_time_ms,
            event,
        });
    }
    Ok(logged)
}

pub fn nonce_key(signer: &PublicKey) -> Vec<u8> {
    [NONCE_PREFIX, &signer.0].concat()
}

/// The nonce the chain accepts next from `signer`.
pub fn next_nonce<S: StateRead + ?Sized>(state: &S, signer: &PublicKey) -> u64 {
    state
        .get(&nonce_key(signer))
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

/// The state root after the last executed block; `genesis_root` before any.
pub fn state_root<S: StateRead + ?Sized>(state: &S, genesis_root: Hash) -> Hash {
    state
        .get(STATE_ROOT_KEY)
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .map(Hash)
        .unwrap_or(genesis_root)
}

/// The deterministic engine behind the node's `Application`.
#[derive(Clone, Copy, Debug)]
pub struct ContractEngine {
    /// The root before the first block (the node derives it from the genesis hash).
    pub genesis_root: Hash,
}

impl ContractEngine {
    pub fn new(genesis_root: Hash) -> ContractEngine {
        ContractEngine { genesis_root }
    }

    pub fn execute_block<S: StateRead + ?Sized>(
        &self,
        state: &S,
        height: u64,
        timestamp_ms: u64,
        txs: &[TxInput<'_>],
    ) -> BlockEffects {
        let previous_root = state_root(state, self.genesis_root);
        let mut overlay = Overlay::new(state);
        let mut results = Vec::with_capacity(txs.len());
        let mut actors = Actors::default();
        let mut logged_events = Vec::new();
        let mut tx_result_entries = Vec::with_capacity(txs.len());
        let mut fact_leaves = Vec::new();
        for (tx_index, tx) in txs.iter().take(BLOCK_TXS_MAX).enumerate() {
            let result = self.execute_tx(
                &mut overlay,
                (height, timestamp_ms),
                tx_index as u32,
                tx,
                (&mut logged_events, &mut fact_leaves),
                &mut actors,
            );
            if matches!(result, TxResult::Rejected { .. }) {
                tx_result_entries.push(IndexEntry::put(
                    TX_RESULT_INDEX,
                    tx.hash.0.to_vec(),
                    borsh::to_vec(&result).unwrap_or_default(),
                ));
            }
            results.push(result);
        }
        let (mut state_writes, mut index_entries) = overlay.into_parts();
        index_entries.extend(tx_result_entries);
        let roots = facts::BlockRoots {
            height,
            previous_root,
            writes_digest: writes_digest(&state_writes),
            index_digest: index_digest(&index_entries),
            facts_root: pharmalink_ledger::merkle::root(&fact_leaves),
            facts_count: fact_leaves.len() as u64,
        };
        let state_root = roots.state_root();
        // After the digest: the one entry `I` does not cover (it holds `I`).
        index_entries.push(IndexEntry::put(
            facts::BLOCK_ROOTS_INDEX,
            height.to_be_bytes().to_vec(),
            borsh::to_vec(&roots).unwrap_or_default(),
        ));
        // Keys sort: "app/" < "c/" < "i/" < "nonce/", so inserting keeps key order.
        let at = state_writes.partition_point(|w| w.key.as_slice() < STATE_ROOT_KEY);
        state_writes.insert(
            at,
            StateWrite {
                key: STATE_ROOT_KEY.to_vec(),
                value: Some(state_root.0.to_vec()),
            },
        );
        BlockEffects {
            state_writes,
            index_entries,
            results,
            events: logged_events,
            state_root,
        }
    }

    fn execute_tx<S: StateRead + ?Sized>(
        &self,
        overlay: &mut Overlay<'_, S>,
        (height, timestamp_ms): (u64, u64),
        tx_index: u32,
        tx: &TxInput<'_>,
        (logged_events, fact_leaves): (&mut Vec<LoggedEvent>, &mut Vec<Hash>),
        actors: &mut Actors,
    ) -> TxResult {
        let expected = next_nonce(overlay, &tx.signer);
        if tx.nonce != expected {
            return TxResult::Rejected {
                code: "tx.bad_nonce".into(),
                reason: format!(
                    "nonce {} but the signer's next nonce is {expected}",
                    tx.nonce
                ),
            };
        }
        overlay.put(
            nonce_key(&tx.signer),
            Some((expected + 1).to_le_bytes().to_vec()),
        );
        let ctx = BlockContext {
            height,
            timestamp_ms,
            signer: tx.signer,
        };
        let outcome = Command::decode(tx.payload).and_then(|command| {
            let actor = actors.of(&*overlay, &tx.signer)?;
            decide_as(&*overlay, &actor, &command, &ctx)
        });
        match outcome {
            Ok(events) => {
                // IAM changes (keys, licences, organizations) invalidate the block's cache.
                if events.iter().any(|e| {
                    matches!(
                        e,
                        Event::OrganizationAdmitted { .. }
                            | Event::ValidatorAdmitted { .. }
                            | Event::MemberKeyAdded { .. }
                            | Event::MemberKeyRevoked { .. }
                            | Event::LicenceRecorded { .. }
                    )
                }) {
                    actors.clear();
                }
                for (event_index, event) in events.into_iter().enumerate() {
                    let position = Position {
                        height,
                        tx: tx_index,
                        event: event_index as u32,
                    };
                    let package_facts = evolve_with_facts(overlay, position, timestamp_ms, &event);
                    fact_leaves.extend(package_facts.iter().map(facts::fact_leaf));
                    logged_events.push(LoggedEvent {
                        position,
                        timestamp_ms,
                        event,
                    });
                }
                TxResult::Accepted
            }
            Err(rejection) => TxResult::Rejected {
                code: rejection.code.to_string(),
                reason: rejection.message,
            },
        }
    }
}

/// The organizations signing in one block, read once each and shared, not cloned per
/// transaction: an organization may hold hundreds of member keys, and each of them signing
/// must not read (and decode) the organization again.
#[derive(Default)]
struct Actors {
    by_key: BTreeMap<PublicKey, std::rc::Rc<iam::Organization>>,
    by_gln: BTreeMap<Gln, std::rc::Rc<iam::Organization>>,
}

impl Actors {
    fn of<S: StateRead + ?Sized>(
        &mut self,
        state: &S,
        signer: &PublicKey,
    ) -> Result<std::rc::Rc<iam::Organization>, Rejection> {
        if let Some(actor) = self.by_key.get(signer) {
            return Ok(actor.clone());
        }
        let gln = iam::signer_gln(state, signer)?;
        let actor = match self.by_gln.get(&gln) {
            Some(actor) => actor.clone(),
            None => {
                let actor = std::rc::Rc::new(iam::signer_organization_at(state, signer, &gln)?);
                self.by_gln.insert(gln, actor.clone());
                actor
            }
        };
        self.by_key.insert(*signer, actor.clone());
        Ok(actor)
    }

    /// After an IAM change (keys, licences, organizations) in the block.
    fn clear(&mut self) {
        self.by_key.clear();
        self.by_gln.clear();
    }
}

#[cfg(test)]
pub mod gwt;

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::gwt::genesis;
    use super::*;
    use pharmalink_ledger::Domain;

    #[test]
    fn chunked_hashing_equals_hashing_the_concatenation() {
        // Pieces of every size around the buffer's: small ones crossing its boundary, one as
        // large as it, one larger.
        let sizes = [
            0, 1, 7, 1000, 16_383, 16_384, 16_385, 5, 40_000, 3, 16_380, 9,
        ];
        let pieces: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|j| (i * 31 + j * 7) as u8).collect())
            .collect();
        let mut chunked = ChunkedHasher::new(INDEX_DIGEST_CONTEXT);
        for piece in &pieces {
            chunked.put(piece);
        }
        let mut whole = blake3::Hasher::new_derive_key(INDEX_DIGEST_CONTEXT);
        whole.update(&pieces.concat());
        assert_eq!(chunked.finish().0, *whole.finalize().as_bytes());
    }

    #[test]
    fn digests_tell_writes_and_entries_apart() {
        let put = |k: &[u8], v: &[u8]| StateWrite {
            key: k.to_vec(),
            value: Some(v.to_vec()),
        };
        let base = writes_digest(&[put(b"a", b"bc")]);
        // Moving a byte between key and value, deleting, or adding a write changes the digest.
        assert_ne!(base, writes_digest(&[put(b"ab", b"c")]));
        assert_ne!(
            base,
            writes_digest(&[StateWrite {
                key: b"a".to_vec(),
                value: None
            }])
        );
        assert_ne!(base, writes_digest(&[put(b"a", b"bc"), put(b"b", b"")]));
        let entry = IndexEntry::put("lot", b"k".to_vec(), b"v".to_vec());
        let mut removal = entry.clone();
        removal.remove = true;
        let digest = index_digest(std::slice::from_ref(&entry));
        assert_ne!(digest, index_digest(&[removal]));
        assert_ne!(
            digest,
            index_digest(&[IndexEntry::put("lo", b"tk".to_vec(), b"v".to_vec())])
        );
    }

    fn block_of(commands: &[(PublicKey, u64, Command)]) -> Vec<(Hash, PublicKey, u64, Vec<u8>)> {
        commands
            .iter()
            .enumerate()
            .map(|(i, (signer, nonce, c))| {
                (
                    Domain::Transaction.hash(&[i as u8]),
                    *signer,
                    *nonce,
                    c.encode(),
                )
            })
            .collect()
    }

    fn run(ledger: &MemLedger, txs: &[(Hash, PublicKey, u64, Vec<u8>)]) -> BlockEffects {
        let inputs: Vec<TxInput<'_>> = txs
            .iter()
            .map(|(hash, signer, nonce, payload)| TxInput {
                hash: *hash,
                signer: *signer,
                nonce: *nonce,
                payload,
            })
            .collect();
        ContractEngine::new(demo_genesis_root()).execute_block(
            ledger,
            ledger.height + 1,
            DEMO_TIME_MS,
            &inputs,
        )
    }

    #[test]
    fn payload_encoding_is_versioned_bounded_and_strict() {
        let command = commission(&["S1"]);
        let bytes = command.encode();
        assert_eq!(bytes[0], command::PAYLOAD_VERSION);
        assert_eq!(Command::decode(&bytes).unwrap(), command);
        assert_eq!(Command::decode(&[]).unwrap_err().code, "payload.empty");
        assert_eq!(
            Command::decode(&[2, 0]).unwrap_err().code,
            "payload.version"
        );
        assert_eq!(
            Command::decode(&bytes[..bytes.len() - 1]).unwrap_err().code,
            "payload.malformed"
        );
        assert_eq!(
            Command::decode(&[bytes.clone(), vec![0]].concat())
                .unwrap_err()
                .code,
            "payload.malformed"
        );
        assert_eq!(
            Command::decode(&vec![1; command::PAYLOAD_BYTES_MAX + 1])
                .unwrap_err()
                .code,
            "payload.too_large"
        );
        let too_many = Command::Dispense {
            items: vec![sgtin("S1"); command::ITEMS_PER_COMMAND_MAX + 1],
        };
        assert_eq!(
            Command::decode(&too_many.encode()).unwrap_err().code,
            "payload.bounds"
        );
        // Arbitrary bytes never panic.
        for seed in 0u32..2000 {
            let noise: Vec<u8> = (0..(seed % 97))
                .map(|i| (seed.wrapping_mul(2_654_435_761).wrapping_add(i * 40_503) >> 13) as u8)
                .collect();
            let _ = Command::decode(&[&[1u8][..], &noise].concat());
        }
    }

    #[test]
    fn nonces_are_consumed_by_rejected_commands_but_not_by_bad_nonces() {
        let ledger = genesis().ledger;
        let txs = block_of(&[
            (
                MANUFACTURER.key(),
                0,
                Command::RegisterProduct {
                    product: product_master(),
                },
            ),
            (MANUFACTURER.key(), 5, commission(&["S1"])),
            (
                MANUFACTURER.key(),
                1,
                Command::Dispense {
                    items: vec![sgtin("S1")],
                },
            ),
            (MANUFACTURER.key(), 2, commission(&["S1"])),
        ]);
        let effects = run(&ledger, &txs);
        assert_eq!(effects.results[0], TxResult::Accepted);
        assert!(
            matches!(&effects.results[1], TxResult::Rejected { code, .. } if code == "tx.bad_nonce")
        );
        assert!(
            matches!(&effects.results[2], TxResult::Rejected { code, .. } if code == "rbac.role_forbidden")
        );
        assert_eq!(effects.results[3], TxResult::Accepted);
        let mut after = ledger.clone();
        after.apply(1, &effects.state_writes, &effects.index_entries);
        assert_eq!(next_nonce(&after, &MANUFACTURER.key()), 3);
        let tx_results: Vec<_> = effects
            .index_entries
            .iter()
            .filter(|e| e.index == TX_RESULT_INDEX)
            .collect();
        // Rejections only: the accepted ones are those committed without an entry.
        assert_eq!(tx_results.len(), 2);
    }

    #[test]
    fn execution_is_deterministic_and_the_root_chains() {
        let ledger = genesis().ledger;
        let txs = block_of(&[
            (
                MANUFACTURER.key(),
                0,
                Command::RegisterProduct {
                    product: product_master(),
                },
            ),
            (MANUFACTURER.key(), 1, commission(&["S1", "S2"])),
            (
                MANUFACTURER.key(),
                2,
                sale(WHOLESALER.gln(), vec![sgtin("S1")], "PO-1"),
            ),
        ]);
        let a = run(&ledger, &txs);
        let b = run(&ledger, &txs);
        assert_eq!(a, b);
        assert!(
            a.state_writes.windows(2).all(|w| w[0].key < w[1].key),
            "writes sorted by key"
        );
        assert_ne!(a.state_root, demo_genesis_root());
        let mut after = ledger.clone();
        after.apply(1, &a.state_writes, &a.index_entries);
        assert_eq!(state_root(&after, demo_genesis_root()), a.state_root);
        // A different block gives a different root; an empty block still advances the root.
        let c = run(&ledger, &txs[..2]);
        assert_ne!(c.state_root, a.state_root);
        let empty = run(&after, &[]);
        assert_ne!(empty.state_root, a.state_root);
    }

    #[test]
    fn member_keys_added_or_revoked_in_a_block_count_for_its_later_transactions() {
        // The block reads each signing organization once; a key change in the block must be
        // seen by the transactions after it in the same block.
        let ledger = genesis().ledger;
        let second = PublicKey([0xA1; 32]);
        let results = |txs: &[(PublicKey, u64, Command)]| -> Vec<String> {
            run(&ledger, &block_of(txs))
                .results
                .iter()
                .map(|r| match r {
                    TxResult::Accepted => "ok".to_string(),
                    TxResult::Rejected { code, .. } => code.clone(),
                })
                .collect()
        };
        let register = Command::RegisterProduct {
            product: product_master(),
        };
        assert_eq!(
            results(&[
                (MANUFACTURER.key(), 0, register.clone()),
                (second, 0, commission(&["S0"])),
                (MANUFACTURER.key(), 1, Command::AddMemberKey { key: second }),
                // The refused transaction above used the key's nonce 0.
                (second, 1, commission(&["S1"])),
                (MANUFACTURER.key(), 2, commission(&["S2"])),
                (
                    second,
                    2,
                    Command::RevokeMemberKey {
                        key: MANUFACTURER.key()
                    }
                ),
                (MANUFACTURER.key(), 3, commission(&["S3"])),
                (second, 3, commission(&["S4"])),
            ]),
            [
                "ok",
                "iam.signer_unknown",
                "ok",
                "ok",
                "ok",
                "ok",
                "iam.signer_unknown",
                "ok"
            ]
        );
    }

    #[test]
    fn replaying_the_log_rebuilds_the_state_and_snapshots_resume() {
        let mut scenario = genesis()
            .after(
                MANUFACTURER,
                Command::RegisterProduct {
                    product: product_master(),
                },
            )
            .after(MANUFACTURER, commission(&["S1", "S2", "S3"]))
            .after(
                MANUFACTURER,
                Command::Aggregate {
                    parent: sscc(1),
                    children: vec![sgtin("S1"), sgtin("S2")],
                },
            );
        let snapshot_height = scenario.ledger.height;
        let snapshot = {
            let mut projection = MemLedger::new();
            let log = events_in(&scenario.ledger);
            replay(&mut projection, &log);
            projection.height = snapshot_height;
            projection.snapshot()
        };
        scenario = scenario
            .after(MANUFACTURER, sale(WHOLESALER.gln(), vec![sscc(1)], "PO-1"))
            .after(WHOLESALER, receive_all(0, &[sscc(1)]));
        let log = events_in(&scenario.ledger);
        let mut full = MemLedger::new();
        replay(&mut full, &log);
        let mut resumed = MemLedger::from_snapshot(&snapshot).unwrap();
        replay(
            &mut resumed,
            log.iter().filter(|e| e.position.height > snapshot_height),
        );
        // Projection = live state minus the engine's own keys (nonces, root) and tx results.
        let mut live = scenario.ledger.clone();
        live.state
            .retain(|k, _| !k.starts_with(NONCE_PREFIX) && k.as_slice() != STATE_ROOT_KEY);
        live.indexes.remove(TX_RESULT_INDEX);
        live.indexes.remove(facts::BLOCK_ROOTS_INDEX);
        assert_eq!(full.state, live.state);
        assert_eq!(full.indexes, live.indexes);
        assert_eq!(resumed.state, live.state);
        assert_eq!(resumed.indexes, live.indexes);
    }

    pub(crate) fn events_in(ledger: &MemLedger) -> Vec<LoggedEvent> {
        ledger
            .scan(EVENT_INDEX, &[], usize::MAX)
            .into_iter()
            .map(|(_, v)| decode_logged_event(&v).unwrap())
            .collect()
    }
}

#[cfg(test)]
mod golden {
    use super::fixtures::*;
    use super::*;

    /// Pins the payload encoding: clients and every node must produce these exact bytes.
    #[test]
    fn command_encoding_golden_vector() {
        let command = Command::Dispense {
            items: vec![sgtin("S1")],
        };
        let hex: String = command
            .encode()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let urn = b"urn:epc:id:sgtin:0300010.012345.S1";
        let mut expected = vec![1u8, 12]; // version, variant index of Dispense
        expected.extend_from_slice(&1u32.to_le_bytes()); // one item
        expected.extend_from_slice(&(urn.len() as u32).to_le_bytes());
        expected.extend_from_slice(urn);
        let expected_hex: String = expected.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected_hex);
        assert_eq!(hex, "010c010000002200000075726e3a6570633a69643a736774696e3a303330303031302e3031323334352e5331");
    }
}
