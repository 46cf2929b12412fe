//! The package proof: what a consumer's phone, a pharmacist or a regulator checks offline,
//! with nothing but the network's genesis, to learn a package's history and status.
//!
//! A [`PackageProof`] holds, for one EPC, its package facts (and those of its product and lot;
//! see [`crate::contract::facts`]), each with its audit path in its block's facts root; the
//! block's [`BlockRoots`] (whose hash is the state root after that block); the next block's
//! header, which carries that state root, with the header's commit certificate (> 2/3 of the
//! genesis validators' voting power); and an anchor: the newest certified header when the
//! proof was made, which says how fresh it is.
//!
//! [`verify`] checks every byte of that against the genesis and returns the facts; [`verdict`]
//! turns them into what a patient is told. What a proof cannot show: that no fact is missing.
//! A serving node could withhold a later recall; the anchor bounds when the proof was made,
//! and any other node can be asked for the same package. (A sparse Merkle tree over current
//! state would close this; see the crate's known limits.)
//!
//! Wire forms: binary = [`PACKAGE_PROOF_MAGIC`] ‖ Borsh, and JSON
//! `{"format": "pharmalink.package-proof.v1", "data": "<hex of the binary form>"}`.

use crate::contract::facts::{
    fact_leaf, facts_of_stored, BlockRoots, Fact, PackageFact, Subject, BLOCK_ROOTS_INDEX,
    FACT_INDEX,
};
use crate::contract::{Date, Epc, Gln, Gtin, Position, EVENT_INDEX};
use borsh::{BorshDeserialize, BorshSerialize};
use pharmalink_ledger::merkle::{inclusion_proof, InclusionProof};
use pharmalink_ledger::{BlockHeader, CommitCertificate, Genesis, Hash, LedgerRead, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fmt;

pub const PACKAGE_PROOF_MAGIC: &[u8; 8] = b"PLPKPRF1";
pub const PACKAGE_PROOF_FORMAT: &str = "pharmalink.package-proof.v1";
/// Largest proof accepted (binary form).
pub const PACKAGE_PROOF_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Most blocks and facts one proof may hold.
pub const PROOF_BLOCKS_MAX: usize = 1024;
pub const PROOF_FACTS_MAX: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct CertifiedHeader {
    pub header: BlockHeader,
    pub certificate: CommitCertificate,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ProvenFact {
    pub fact: PackageFact,
    /// Audit path of `fact_leaf(fact)` in the block's facts root.
    pub path: InclusionProof,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BlockFacts {
    pub roots: BlockRoots,
    /// The header at `roots.height + 1` (its `state_root` is `roots.state_root()`), certified.
    pub next: CertifiedHeader,
    pub facts: Vec<ProvenFact>,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct PackageProof {
    pub chain_id: String,
    pub epc: Epc,
    /// The newest certified header when the proof was made.
    pub anchor: CertifiedHeader,
    /// In ascending height.
    pub blocks: Vec<BlockFacts>,
}

/// Why a proof is refused: the field (a path into the proof) and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofError {
    pub field: String,
    pub reason: String,
}

impl fmt::Display for ProofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ProofError {}

fn fail<T>(field: impl Into<String>, reason: impl Into<String>) -> Result<T, ProofError> {
    Err(ProofError {
        field: field.into(),
        reason: reason.into(),
    })
}

/// The JSON form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofJson {
    pub format: String,
    /// Hex of the binary form.
    pub data: String,
}

impl PackageProof {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = PACKAGE_PROOF_MAGIC.to_vec();
        // Writing Borsh into a Vec does not fail.
        let _ = borsh::to_writer(&mut out, self);
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<PackageProof, ProofError> {
        if bytes.len() > PACKAGE_PROOF_BYTES_MAX {
            return fail(
                "proof",
                format!(
                    "{} bytes exceeds the maximum of {PACKAGE_PROOF_BYTES_MAX}",
                    bytes.len()
                ),
            );
        }
        let Some(body) = bytes.strip_prefix(PACKAGE_PROOF_MAGIC.as_slice()) else {
            return fail("proof", "does not start with PLPKPRF1");
        };
        borsh::from_slice(body).or_else(|e| fail("proof", format!("cannot decode: {e}")))
    }

    pub fn to_json(&self) -> ProofJson {
        ProofJson {
            format: PACKAGE_PROOF_FORMAT.into(),
            data: hex::encode(self.to_bytes()),
        }
    }

    pub fn from_json(json: &ProofJson) -> Result<PackageProof, ProofError> {
        if json.format != PACKAGE_PROOF_FORMAT {
            return fail(
                "format",
                format!("{:?} is not {PACKAGE_PROOF_FORMAT:?}", json.format),
            );
        }
        let bytes = hex::decode(&json.data).or_else(|e| fail("data", format!("not hex: {e}")))?;
        PackageProof::from_bytes(&bytes)
    }
}

/// What a verified proof establishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedHistory {
    pub chain_id: String,
    pub epc: Epc,
    /// Height and time of the anchor: the proof shows the history as of this block.
    pub as_of_height: u64,
    pub as_of_ms: u64,
    /// In log order.
    pub facts: Vec<PackageFact>,
}

fn verify_certified(
    field: &str,
    certified: &CertifiedHeader,
    genesis: &Genesis,
) -> Result<(), ProofError> {
    let header = &certified.header;
    if header.chain_id != genesis.chain_id {
        return fail(
            format!("{field}.header.chain_id"),
            format!("{:?} is not the genesis chain", header.chain_id),
        );
    }
    if header.validator_set_hash != genesis.validators.hash() {
        return fail(
            format!("{field}.header.validator_set_hash"),
            "is not the genesis validator set",
        );
    }
    let cert = &certified.certificate;
    if cert.height != header.height || cert.round < header.round || cert.block_hash != header.hash()
    {
        return fail(
            format!("{field}.certificate"),
            "does not certify this header",
        );
    }
    cert.verify(&genesis.chain_id, &genesis.validators)
        .or_else(|e| fail(format!("{field}.certificate"), e.to_string()))
}

/// Checks the proof against the genesis: every certificate, state root and audit path, the
/// order of facts, and that every fact is about the package, its product or its lot.
pub fn verify(genesis: &Genesis, proof: &PackageProof) -> Result<VerifiedHistory, ProofError> {
    if proof.chain_id != genesis.chain_id {
        return fail(
            "chain_id",
            format!(
                "{:?} but the genesis is for {:?}",
                proof.chain_id, genesis.chain_id
            ),
        );
    }
    if proof.blocks.len() > PROOF_BLOCKS_MAX {
        return fail("blocks", format!("more than {PROOF_BLOCKS_MAX}"));
    }
    verify_certified("anchor", &proof.anchor, genesis)?;
    let anchor_height = proof.anchor.header.height;
    let mut facts: Vec<PackageFact> = Vec::new();
    let mut last_height = 0u64;
    for (b, block) in proof.blocks.iter().enumerate() {
        let field = format!("blocks[{b}]");
        let height = block.roots.height;
        if height == 0 || (b > 0 && height <= last_height) {
            return fail(
                format!("{field}.roots.height"),
                "blocks must be in strictly ascending height, from 1",
            );
        }
        last_height = height;
        if block.next.header.height != height + 1 || height + 1 > anchor_height {
            return fail(
                format!("{field}.next.header.height"),
                format!(
                    "{} is not the block after {height}, at or below the anchor {anchor_height}",
                    block.next.header.height
                ),
            );
        }
        verify_certified(&format!("{field}.next"), &block.next, genesis)?;
        if block.next.header.state_root != block.roots.state_root() {
            return fail(
                format!("{field}.roots"),
                format!(
                    "hash to a state root that block {} does not carry",
                    height + 1
                ),
            );
        }
        if block.facts.is_empty() {
            return fail(format!("{field}.facts"), "a block without facts");
        }
        for (f, proven) in block.facts.iter().enumerate() {
            let field = format!("{field}.facts[{f}]");
            if proven.fact.position.height != height {
                return fail(
                    format!("{field}.position.height"),
                    format!("{} is not block {height}", proven.fact.position.height),
                );
            }
            if proven.path.tree_size != block.roots.facts_count {
                return fail(
                    format!("{field}.path.tree_size"),
                    format!(
                        "{} but the block has {} facts",
                        proven.path.tree_size, block.roots.facts_count
                    ),
                );
            }
            proven
                .path
                .verify(fact_leaf(&proven.fact).as_bytes(), &block.roots.facts_root)
                .or_else(|e| fail(format!("{field}.path"), e.to_string()))?;
            if let Some(previous) = facts.last() {
                if (previous.position, previous.index) >= (proven.fact.position, proven.fact.index)
                {
                    return fail(field, "facts must be in strictly ascending log order");
                }
            }
            if facts.len() >= PROOF_FACTS_MAX {
                return fail("blocks", format!("more than {PROOF_FACTS_MAX} facts"));
            }
            facts.push(proven.fact.clone());
        }
    }
    // Every fact must be about this package, or its product and lot as commissioned.
    let commissioned = facts.iter().find_map(|f| match (&f.subject, &f.fact) {
        (Subject::Epc(epc), Fact::Commissioned { gtin, lot, .. }) if *epc == proof.epc => {
            Some((*gtin, lot.clone()))
        }
        _ => None,
    });
    for fact in &facts {
        let related = match (&fact.subject, &commissioned) {
            (Subject::Epc(epc), _) => *epc == proof.epc,
            (Subject::Product(gtin), Some((g, _))) => gtin == g,
            (Subject::Lot { gtin, lot }, Some((g, l))) => gtin == g && lot == l,
            // Without a commissioning, only the product the EPC names may appear.
            (Subject::Product(gtin), None) => epc_gtin(&proof.epc) == Some(*gtin),
            (Subject::Lot { .. }, None) => false,
        };
        if !related {
            return fail(
                format!(
                    "facts at height {} (event {})",
                    fact.position.height, fact.position.event
                ),
                format!("{:?} is not about {}", fact.subject, proof.epc),
            );
        }
    }
    Ok(VerifiedHistory {
        chain_id: proof.chain_id.clone(),
        epc: proof.epc.clone(),
        as_of_height: anchor_height,
        as_of_ms: proof.anchor.header.timestamp_ms,
        facts,
    })
}

/// The GTIN an SGTIN URN names.
pub fn epc_gtin(epc: &Epc) -> Option<Gtin> {
    match crate::gs1::epc::EpcId::parse_urn(epc.as_str()).ok()? {
        crate::gs1::epc::EpcId::Sgtin { gtin, .. } => Gtin::parse(&gtin).ok(),
        _ => None,
    }
}

/// A proof as built by a node, and how many of the package's facts are too recent to prove
/// (in the newest block, whose state root the next block will carry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltProof {
    pub proof: PackageProof,
    pub pending_facts: usize,
}

fn corrupt(height: u64, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        height,
        reason: reason.into(),
    }
}

/// The package facts of block `height`, in log order (recomputed from its logged events).
pub fn block_facts(store: &dyn LedgerRead, height: u64) -> Result<Vec<PackageFact>, StoreError> {
    let rows = store.index_scan(EVENT_INDEX, &height.to_be_bytes(), usize::MAX)?;
    let mut out = Vec::new();
    for (_, value) in rows {
        let (_, facts) = facts_of_stored(&value)
            .ok_or_else(|| corrupt(height, "a logged event does not decode"))?;
        out.extend(facts);
    }
    Ok(out)
}

fn certified(store: &dyn LedgerRead, height: u64) -> Result<CertifiedHeader, StoreError> {
    Ok(CertifiedHeader {
        header: store
            .header(height)?
            .ok_or_else(|| corrupt(height, "header is missing"))?,
        certificate: store
            .certificate(height)?
            .ok_or_else(|| corrupt(height, "certificate is missing"))?,
    })
}

/// Positions (and fact indexes) of the facts about `subject`.
fn fact_positions(
    store: &dyn LedgerRead,
    subject: &Subject,
) -> Result<Vec<(Position, u32)>, StoreError> {
    let prefix = subject.key();
    let rows = store.index_scan(FACT_INDEX, &prefix, PROOF_FACTS_MAX + 1)?;
    if rows.len() > PROOF_FACTS_MAX {
        return Err(StoreError::Backend(format!(
            "{subject:?} has more than {PROOF_FACTS_MAX} facts"
        )));
    }
    rows.iter()
        .map(|(key, _)| {
            let rest = &key[prefix.len()..];
            match (rest.get(..16).and_then(Position::from_key), rest.get(16..)) {
                (Some(position), Some(index)) if index.len() == 4 => Ok((
                    position,
                    u32::from_be_bytes([index[0], index[1], index[2], index[3]]),
                )),
                _ => Err(corrupt(0, "fact index key")),
            }
        })
        .collect()
}

/// The facts of block `height`, computed once per proof.
fn facts_in<'c>(
    cache: &'c mut BTreeMap<u64, Vec<PackageFact>>,
    store: &dyn LedgerRead,
    height: u64,
) -> Result<&'c [PackageFact], StoreError> {
    Ok(match cache.entry(height) {
        Entry::Vacant(slot) => slot.insert(block_facts(store, height)?),
        Entry::Occupied(slot) => slot.into_mut(),
    })
}

/// Builds the proof for `epc` from a node's store, anchored at its head. `None` before the
/// first block.
pub fn build(store: &dyn LedgerRead, epc: &Epc) -> Result<Option<BuiltProof>, StoreError> {
    let Some(head) = store.head()? else {
        return Ok(None);
    };
    let anchor = certified(store, head.height)?;
    // Each block's facts, recomputed once from its logged events (their order is leaf order).
    let mut cache: BTreeMap<u64, Vec<PackageFact>> = BTreeMap::new();
    let mut wanted: BTreeMap<(Position, u32), PackageFact> = BTreeMap::new();
    // The package's facts: at each position of its history, those about it.
    let history = {
        let state = crate::contract::LedgerState::new(store);
        let history = crate::custody::history_links(&state, epc, PROOF_FACTS_MAX + 1);
        if let Some(error) = state.take_error() {
            return Err(error);
        }
        if history.undecodable > 0 {
            return Err(corrupt(
                0,
                format!("{epc}: an epc index entry does not decode"),
            ));
        }
        history.links
    };
    if history.len() > PROOF_FACTS_MAX {
        return Err(StoreError::Backend(format!(
            "{epc} has more than {PROOF_FACTS_MAX} events"
        )));
    }
    let subject = Subject::Epc(epc.clone());
    for link in history {
        let position = link.position;
        for fact in facts_in(&mut cache, store, position.height)? {
            if fact.position == position && fact.subject == subject {
                wanted.insert((fact.position, fact.index), fact.clone());
            }
        }
    }
    // The product and the lot, as commissioned (or as the EPC names the product).
    let commissioned = wanted.values().find_map(|f| match &f.fact {
        Fact::Commissioned { gtin, lot, .. } => Some((*gtin, lot.clone())),
        _ => None,
    });
    let mut related = Vec::new();
    if let Some(gtin) = commissioned.as_ref().map(|c| c.0).or_else(|| epc_gtin(epc)) {
        related.push(Subject::Product(gtin));
    }
    if let Some((gtin, lot)) = commissioned {
        related.push(Subject::Lot { gtin, lot });
    }
    for subject in &related {
        for (position, index) in fact_positions(store, subject)? {
            let fact = facts_in(&mut cache, store, position.height)?
                .iter()
                .find(|f| f.position == position && f.index == index)
                .cloned()
                .ok_or_else(|| {
                    corrupt(
                        position.height,
                        "an indexed fact is not among the block's facts",
                    )
                })?;
            wanted.insert((position, index), fact);
        }
    }
    let mut blocks: Vec<BlockFacts> = Vec::new();
    let mut leaves: Vec<Hash> = Vec::new();
    let mut pending_facts = 0;
    for ((position, index), fact) in wanted {
        let height = position.height;
        if height >= head.height {
            pending_facts += 1;
            continue;
        }
        let facts = facts_in(&mut cache, store, height)?;
        if blocks.last().map(|b| b.roots.height) != Some(height) {
            let roots_row = store.index_scan(BLOCK_ROOTS_INDEX, &height.to_be_bytes(), 1)?;
            let roots: BlockRoots = match roots_row.first() {
                Some((k, v)) if k.as_slice() == height.to_be_bytes() => borsh::from_slice(v)
                    .map_err(|e| corrupt(height, format!("block roots: {e}")))?,
                _ => return Err(corrupt(height, "block roots are missing")),
            };
            blocks.push(BlockFacts {
                roots,
                next: certified(store, height + 1)?,
                facts: Vec::new(),
            });
            leaves = facts.iter().map(fact_leaf).collect();
        }
        let leaf_index = facts
            .iter()
            .position(|f| f.position == position && f.index == index)
            .ok_or_else(|| corrupt(height, "fact not found in its block"))?;
        let path = inclusion_proof(&leaves, leaf_index)
            .ok_or_else(|| corrupt(height, "no audit path for the fact"))?;
        if let Some(block) = blocks.last_mut() {
            block.facts.push(ProvenFact { fact, path });
        }
    }
    Ok(Some(BuiltProof {
        proof: PackageProof {
            chain_id: store.genesis().chain_id.clone(),
            epc: epc.clone(),
            anchor,
            blocks,
        },
        pending_facts,
    }))
}

/// What a patient is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Commissioned by its manufacturer and dispensed to a patient.
    GenuineDispensed,
    /// Commissioned by its manufacturer, still in the supply chain.
    GenuineInSupplyChain,
    /// Its lot is recalled.
    Recalled,
    /// Quarantined or declared illegitimate.
    Suspect,
    /// The product is not on this network.
    Unknown,
    /// The serial was never commissioned, was destroyed, or the label does not match.
    CounterfeitSuspected,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::GenuineDispensed => "genuine_dispensed",
            Status::GenuineInSupplyChain => "genuine_in_supply_chain",
            Status::Recalled => "recalled",
            Status::Suspect => "suspect",
            Status::Unknown => "unknown",
            Status::CounterfeitSuspected => "counterfeit_suspected",
        }
    }
}

/// The cold-chain part of the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColdChain {
    /// The product has no storage requirement on the ledger.
    NotRequired,
    /// Required, and every anchored batch of readings stayed within the excursion limits.
    InRange,
    /// Required, and an excursion was recorded.
    Excursion,
    /// Required, but no readings were anchored for this package.
    NotMonitored,
}

impl ColdChain {
    pub fn name(self) -> &'static str {
        match self {
            ColdChain::NotRequired => "not_required",
            ColdChain::InRange => "in_range",
            ColdChain::Excursion => "excursion",
            ColdChain::NotMonitored => "not_monitored",
        }
    }
}

/// What the label says (from the scanned code), compared with the commissioning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Label {
    pub lot: Option<String>,
    pub expiry: Option<Date>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductView {
    pub manufacturer: Gln,
    pub ndc: String,
    pub name: String,
    pub strength: String,
    pub dosage_form: String,
    pub container_size: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub status: Status,
    /// Why, in plain words, one line per reason.
    pub reasons: Vec<String>,
    pub product: Option<ProductView>,
    pub manufacturer: Option<Gln>,
    pub lot: Option<String>,
    pub expiry: Option<Date>,
    pub expired: bool,
    pub dispensed_by: Option<Gln>,
    pub cold_chain: ColdChain,
    /// Readings anchored for the package, and minutes out of range among them.
    pub cold_chain_readings: u64,
    pub cold_chain_minutes_out: u64,
}

/// The verdict for a verified history, the label as scanned, and today's date.
pub fn verdict(history: &VerifiedHistory, label: &Label, today: Date) -> Verdict {
    let mut out = Verdict {
        status: Status::GenuineInSupplyChain,
        reasons: Vec::new(),
        product: None,
        manufacturer: None,
        lot: None,
        expiry: None,
        expired: false,
        dispensed_by: None,
        cold_chain: ColdChain::NotRequired,
        cold_chain_readings: 0,
        cold_chain_minutes_out: 0,
    };
    let mut cold_required = false;
    let mut excursion: Option<String> = None;
    #[derive(PartialEq)]
    enum State {
        Active,
        Dispensed,
        Gone(&'static str),
        Quarantined,
        Illegitimate,
    }
    let mut state = State::Active;
    let mut commissioned = false;
    let mut recall: Option<String> = None;
    for fact in &history.facts {
        match &fact.fact {
            Fact::ProductRegistered {
                manufacturer,
                ndc,
                name,
                strength,
                dosage_form,
                container_size,
                ..
            } => {
                out.product = Some(ProductView {
                    manufacturer: *manufacturer,
                    ndc: ndc.clone(),
                    name: name.clone(),
                    strength: strength.clone(),
                    dosage_form: dosage_form.clone(),
                    container_size: container_size.clone(),
                })
            }
            Fact::Commissioned {
                manufacturer,
                lot,
                expiry,
                ..
            } => {
                commissioned = true;
                out.manufacturer = Some(*manufacturer);
                out.lot = Some(lot.clone());
                out.expiry = Some(*expiry);
            }
            Fact::Dispensed { dispenser } => {
                state = State::Dispensed;
                out.dispensed_by = Some(*dispenser);
            }
            Fact::Delivered { dispenser } => {
                state = State::Dispensed;
                out.dispensed_by = Some(*dispenser);
                out.reasons
                    .push("delivered to the patient by courier".into());
            }
            Fact::ReturnVerified { verified: true } => state = State::Active,
            Fact::Decommissioned => state = State::Gone("decommissioned"),
            Fact::Destroyed => state = State::Gone("destroyed"),
            Fact::Quarantined { .. } => state = State::Quarantined,
            Fact::SuspectCleared { .. } => state = State::Active,
            Fact::Illegitimate { .. } => state = State::Illegitimate,
            Fact::Recalled { class, reason, .. } => {
                recall = Some(format!("lot recalled ({class:?}): {reason}"))
            }
            Fact::StorageRequirement { .. } => cold_required = true,
            Fact::TemperatureMonitored {
                readings,
                minutes_out,
                ..
            } => {
                out.cold_chain_readings += u64::from(*readings);
                out.cold_chain_minutes_out += u64::from(*minutes_out);
            }
            Fact::ColdChainExcursion {
                rule, minutes_out, ..
            } => {
                excursion = Some(format!(
                    "cold-chain excursion ({rule}): {minutes_out} minutes out of the storage range"
                ))
            }
            Fact::Packed { .. }
            | Fact::Unpacked { .. }
            | Fact::Shipped
            | Fact::Received
            | Fact::ReturnVerified { verified: false } => {}
        }
    }
    out.cold_chain = match (cold_required, &excursion) {
        (_, Some(_)) => ColdChain::Excursion,
        (false, None) => ColdChain::NotRequired,
        (true, None) if out.cold_chain_readings > 0 => ColdChain::InRange,
        (true, None) => ColdChain::NotMonitored,
    };
    out.reasons.extend(excursion);
    if !commissioned {
        if out.product.is_some() {
            out.status = Status::CounterfeitSuspected;
            out.reasons
                .push("the manufacturer never commissioned this serial number".into());
        } else {
            out.status = Status::Unknown;
            out.reasons
                .push("this product is not traced on this network".into());
        }
        return out;
    }
    if let (Some(scanned), Some(lot)) = (&label.lot, &out.lot) {
        if scanned != lot {
            out.status = Status::CounterfeitSuspected;
            out.reasons.push(format!(
                "the label's lot {scanned} is not the lot {lot} this serial was commissioned in"
            ));
        }
    }
    if let (Some(scanned), Some(expiry)) = (label.expiry, out.expiry) {
        if scanned != expiry {
            out.status = Status::CounterfeitSuspected;
            out.reasons.push(format!(
                "the label's expiry {} is not the commissioned expiry {}",
                scanned.iso(),
                expiry.iso()
            ));
        }
    }
    out.expired = out.expiry.is_some_and(|e| e < today);
    if out.expired {
        out.reasons.push(format!(
            "expired on {}",
            out.expiry.map(|e| e.iso()).unwrap_or_default()
        ));
    }
    if out.status == Status::CounterfeitSuspected {
        return out;
    }
    out.status = match state {
        State::Gone(how) => {
            out.reasons.push(format!(
                "this serial number was {how}: no package bearing it should be in use"
            ));
            Status::CounterfeitSuspected
        }
        State::Illegitimate => {
            out.reasons
                .push("declared illegitimate (FDA Form 3911 filed)".into());
            Status::Suspect
        }
        _ if recall.is_some() => {
            out.reasons.extend(recall);
            Status::Recalled
        }
        State::Quarantined => {
            out.reasons
                .push("quarantined as suspect product under investigation".into());
            Status::Suspect
        }
        State::Dispensed => Status::GenuineDispensed,
        State::Active => Status::GenuineInSupplyChain,
    };
    out
}
