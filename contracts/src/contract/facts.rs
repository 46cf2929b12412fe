//! Package facts: what a consumer or a regulator may be shown of an event, one fact per
//! package (or lot, or product) it touches, each committed by the block's state root.
//!
//! An event such as `Shipped` names trading partners, shipment ids and purchase orders; a
//! patient checking a package must see that it moved, not to whom or in what quantity. So
//! every accepted event also yields [`PackageFact`]s: one per subject (an EPC, a lot, a
//! product), carrying only the public fields for that subject and `event_hash`, the hash of the
//! whole logged event (a commitment to everything withheld, which the parties or a regulator
//! can open by showing the event). A commissioning of 1,000 serials yields 1,000 facts, so the
//! proof of one package reveals neither its siblings' serials nor the batch size.
//!
//! The facts of a block, in log order, are the leaves (data = [`fact_leaf`]) of an RFC 6962
//! tree whose root `F` enters the state root (see [`BlockRoots`]), so a fact is proven by its
//! audit path, the block's [`BlockRoots`] and the next block's certified header.

use super::command::RecallClass;
use super::event::{Event, LoggedEvent};
use super::types::{Date, Epc, Gln, Gtin, Position};
use borsh::{BorshDeserialize, BorshSerialize};
use pharmalink_ledger::{Domain, Hash};
use std::sync::OnceLock;

/// Index of product and lot facts by subject: `subject key ‖ position key ‖ fact index (u32
/// BE)` → empty. (Package facts are found through the custody `epc` index.)
pub const FACT_INDEX: &str = "fact";
/// Index of each block's root parts: `height (u64 BE)` → Borsh [`BlockRoots`]. Written after
/// the index digest is taken, so it is the one index entry `I` does not cover.
pub const BLOCK_ROOTS_INDEX: &str = "block_roots";

const FACT_LEAF_CONTEXT: &str = "pharmalink 2026-11 package fact leaf v1";
const EVENT_HASH_CONTEXT: &str = "pharmalink 2026-11 logged event v1";

/// What a fact is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub enum Subject {
    Epc(Epc),
    Lot { gtin: Gtin, lot: String },
    Product(Gtin),
}

impl Subject {
    /// Prefix-free index key: a tag byte, then length-prefixed fields.
    pub fn key(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |bytes: &[u8]| {
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(bytes);
        };
        match self {
            Subject::Epc(epc) => {
                put(b"E");
                put(epc.0.as_bytes());
            }
            Subject::Lot { gtin, lot } => {
                put(b"L");
                put(&gtin.0);
                put(lot.as_bytes());
            }
            Subject::Product(gtin) => {
                put(b"P");
                put(&gtin.0);
            }
        }
        out
    }
}

/// The public part of an event, for one subject.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Fact {
    /// The product's master data (subject: the product).
    ProductRegistered {
        manufacturer: Gln,
        ndc: String,
        name: String,
        strength: String,
        dosage_form: String,
        container_size: String,
        company_prefix_length: u8,
    },
    Commissioned {
        manufacturer: Gln,
        gtin: Gtin,
        lot: String,
        expiry: Date,
    },
    Packed {
        parent: Epc,
    },
    Unpacked {
        parent: Epc,
    },
    /// Left a holder (partners withheld).
    Shipped,
    /// Arrived at the next holder (partners withheld).
    Received,
    /// Dispensed to a patient by this pharmacy (the dispenser is public on the label anyway).
    Dispensed {
        dispenser: Gln,
    },
    ReturnVerified {
        verified: bool,
    },
    Decommissioned,
    Destroyed,
    Quarantined {
        case_id: u64,
    },
    SuspectCleared {
        case_id: u64,
    },
    Illegitimate {
        case_id: u64,
    },
    /// A recall of the lot (subject: the lot).
    Recalled {
        by: Gln,
        class: RecallClass,
        reason: String,
    },
    /// Storage conditions (subject: the product), in hundredths of °C.
    StorageRequirement {
        min_centi_c: i32,
        max_centi_c: i32,
        max_excursion_minutes: u32,
        max_cumulative_minutes: u32,
    },
    /// Temperature readings anchored for the package (the readings stay with the node that
    /// took them; `batch_hash` commits to them).
    TemperatureMonitored {
        batch_hash: Hash,
        readings: u32,
        first_ms: u64,
        last_ms: u64,
        minutes_out: u32,
    },
    /// A cold-chain excursion (the package is quarantined by the same transaction).
    ColdChainExcursion {
        case_id: u64,
        rule: String,
        minutes_out: u32,
    },
    /// Delivered to the patient by a courier (custody ends; dispensed by this pharmacy).
    Delivered {
        dispenser: Gln,
    },
}

impl Fact {
    pub fn name(&self) -> &'static str {
        match self {
            Fact::ProductRegistered { .. } => "product_registered",
            Fact::Commissioned { .. } => "commissioned",
            Fact::Packed { .. } => "packed",
            Fact::Unpacked { .. } => "unpacked",
            Fact::Shipped => "shipped",
            Fact::Received => "received",
            Fact::Dispensed { .. } => "dispensed",
            Fact::ReturnVerified { .. } => "return_verified",
            Fact::Decommissioned => "decommissioned",
            Fact::Destroyed => "destroyed",
            Fact::Quarantined { .. } => "quarantined",
            Fact::SuspectCleared { .. } => "suspect_cleared",
            Fact::Illegitimate { .. } => "illegitimate",
            Fact::Recalled { .. } => "recalled",
            Fact::StorageRequirement { .. } => "storage_requirement",
            Fact::TemperatureMonitored { .. } => "temperature_monitored",
            Fact::ColdChainExcursion { .. } => "cold_chain_excursion",
            Fact::Delivered { .. } => "delivered",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct PackageFact {
    /// The event's position; `index` orders the event's facts.
    pub position: Position,
    pub index: u32,
    pub timestamp_ms: u64,
    pub subject: Subject,
    pub fact: Fact,
    /// Hash of the whole logged event ([`event_hash`]): commits to the withheld fields.
    pub event_hash: Hash,
}

impl PackageFact {
    /// Key in [`FACT_INDEX`].
    pub fn index_key(&self) -> Vec<u8> {
        let mut key = self.subject.key();
        key.extend_from_slice(&self.position.key());
        key.extend_from_slice(&self.index.to_be_bytes());
        key
    }
}

/// Keyed-blake3 keys derived once from the contexts (deriving per call hashes the context
/// string every time).
fn context_key(slot: &'static OnceLock<[u8; 32]>, context: &str) -> &'static [u8; 32] {
    slot.get_or_init(|| blake3::derive_key(context, b""))
}
static EVENT_HASH_KEY: OnceLock<[u8; 32]> = OnceLock::new();
static FACT_LEAF_KEY: OnceLock<[u8; 32]> = OnceLock::new();

/// Hash of a logged event's stored bytes (the `event` index value: version ‖ Borsh): keyed
/// blake3 under a key derived from the context.
pub fn event_hash(stored: &[u8]) -> Hash {
    Hash(*blake3::keyed_hash(context_key(&EVENT_HASH_KEY, EVENT_HASH_CONTEXT), stored).as_bytes())
}

/// Leaf data of a fact in the block's facts tree.
pub fn fact_leaf(fact: &PackageFact) -> Hash {
    // One buffer, one hash call (Borsh writes many small pieces).
    let mut bytes = Vec::with_capacity(192);
    // Writing Borsh into a Vec does not fail.
    let _ = borsh::to_writer(&mut bytes, fact);
    Hash(*blake3::keyed_hash(context_key(&FACT_LEAF_KEY, FACT_LEAF_CONTEXT), &bytes).as_bytes())
}

/// The facts of one event, in a fixed order.
pub fn facts_of(
    position: Position,
    timestamp_ms: u64,
    event: &Event,
    event_hash: Hash,
) -> Vec<PackageFact> {
    let mut out: Vec<(Subject, Fact)> = Vec::new();
    let per_epc = |out: &mut Vec<(Subject, Fact)>, epcs: &[Epc], fact: Fact| {
        out.extend(
            epcs.iter()
                .map(|epc| (Subject::Epc(epc.clone()), fact.clone())),
        );
    };
    match event {
        Event::ProductRegistered { owner, product } => out.push((
            Subject::Product(product.gtin),
            Fact::ProductRegistered {
                manufacturer: *owner,
                ndc: product.ndc.clone(),
                name: product.name.clone(),
                strength: product.strength.clone(),
                dosage_form: product.dosage_form.clone(),
                container_size: product.container_size.clone(),
                company_prefix_length: product.company_prefix_length,
            },
        )),
        Event::PackagesCommissioned {
            owner,
            gtin,
            lot,
            expiry,
            epcs,
        } => per_epc(
            &mut out,
            epcs,
            Fact::Commissioned {
                manufacturer: *owner,
                gtin: *gtin,
                lot: lot.clone(),
                expiry: *expiry,
            },
        ),
        Event::Aggregated {
            parent, children, ..
        } => per_epc(
            &mut out,
            children,
            Fact::Packed {
                parent: parent.clone(),
            },
        ),
        Event::Disaggregated {
            parent, children, ..
        } => per_epc(
            &mut out,
            children,
            Fact::Unpacked {
                parent: parent.clone(),
            },
        ),
        Event::Shipped { moved, .. } => per_epc(&mut out, moved, Fact::Shipped),
        Event::Received { moved, .. } => per_epc(&mut out, moved, Fact::Received),
        Event::Dispensed { holder, epcs } | Event::PrescriptionDispensed { holder, epcs, .. } => {
            per_epc(&mut out, epcs, Fact::Dispensed { dispenser: *holder })
        }
        Event::StorageRequirementSet {
            gtin, requirement, ..
        } => out.push((
            Subject::Product(*gtin),
            Fact::StorageRequirement {
                min_centi_c: requirement.min_centi_c,
                max_centi_c: requirement.max_centi_c,
                max_excursion_minutes: requirement.max_excursion_minutes,
                max_cumulative_minutes: requirement.max_cumulative_minutes,
            },
        )),
        Event::TelemetryAnchored {
            anchor, packages, ..
        } => per_epc(
            &mut out,
            packages,
            Fact::TemperatureMonitored {
                batch_hash: anchor.batch_hash,
                readings: anchor.readings,
                first_ms: anchor.first_ms,
                last_ms: anchor.last_ms,
                minutes_out: anchor.minutes_out,
            },
        ),
        Event::ExcursionRecorded {
            case_id,
            excursion,
            packages,
            ..
        } => per_epc(
            &mut out,
            packages,
            Fact::ColdChainExcursion {
                case_id: *case_id,
                rule: excursion.rule.clone(),
                minutes_out: excursion.minutes_out,
            },
        ),
        Event::ReturnVerified { epcs, verified, .. } => per_epc(
            &mut out,
            epcs,
            Fact::ReturnVerified {
                verified: *verified,
            },
        ),
        Event::Decommissioned { epcs, .. } => per_epc(&mut out, epcs, Fact::Decommissioned),
        Event::Destroyed { epcs, .. } => per_epc(&mut out, epcs, Fact::Destroyed),
        Event::Quarantined { case_id, epcs, .. } => {
            per_epc(&mut out, epcs, Fact::Quarantined { case_id: *case_id })
        }
        Event::SuspectCleared { case_id, epcs, .. } => {
            per_epc(&mut out, epcs, Fact::SuspectCleared { case_id: *case_id })
        }
        Event::IllegitimateDeclared { case_id, epcs, .. } => {
            per_epc(&mut out, epcs, Fact::Illegitimate { case_id: *case_id })
        }
        Event::LotRecalled {
            by,
            gtin,
            lot,
            class,
            reason,
        } => out.push((
            Subject::Lot {
                gtin: *gtin,
                lot: lot.clone(),
            },
            Fact::Recalled {
                by: *by,
                class: *class,
                reason: reason.clone(),
            },
        )),
        // IAM, exceptions and their resolutions: nothing a package's holder or a patient is
        // shown (regulators query the full events).
        Event::OrganizationAdmitted { .. }
        | Event::ValidatorAdmitted { .. }
        | Event::ProposalOpened { .. }
        | Event::VoteCast { .. }
        | Event::ProposalClosed { .. }
        | Event::MemberKeyAdded { .. }
        | Event::MemberKeyRevoked { .. }
        | Event::LicenceRecorded { .. }
        | Event::ExceptionRaised { .. }
        | Event::InvestigationStarted { .. }
        | Event::ExceptionResolved { .. }
        // Prescription decisions and reservations are the pharmacy's business.
        | Event::PrescriptionDecided { .. }
        | Event::Reserved { .. }
        | Event::ReservationReleased { .. }
        // Who delivers, and the saga's steps, are the pharmacy's and courier's business.
        | Event::VehicleRegistered { .. }
        | Event::DeliveryOpened { .. }
        | Event::CourierAssigned { .. }
        | Event::PickedUp { .. }
        | Event::DeliveryFailed { .. }
        | Event::DeliveryClosed { .. }
        | Event::SagaStepRecorded { .. } => {}
        Event::DeliveredToPatient { pharmacy, epcs, .. } => {
            per_epc(&mut out, epcs, Fact::Delivered { dispenser: *pharmacy })
        }
    }
    out.into_iter()
        .enumerate()
        .map(|(index, (subject, fact))| PackageFact {
            position,
            index: index as u32,
            timestamp_ms,
            subject,
            fact,
            event_hash,
        })
        .collect()
}

/// The facts of a stored event (`event` index value), as the engine derived them.
pub fn facts_of_stored(stored: &[u8]) -> Option<(LoggedEvent, Vec<PackageFact>)> {
    let logged = super::decode_logged_event(stored)?;
    let facts = facts_of(
        logged.position,
        logged.timestamp_ms,
        &logged.event,
        event_hash(stored),
    );
    Some((logged, facts))
}

/// The parts a block's state root is computed from.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BlockRoots {
    pub height: u64,
    /// The state root after the previous block (the genesis root before the first).
    pub previous_root: Hash,
    /// Sequential digest of the block's key-sorted state writes.
    pub writes_digest: Hash,
    /// Sequential digest of the block's index entries (all but the `block_roots` entry).
    pub index_digest: Hash,
    /// RFC 6962 root over the block's package facts, in log order.
    pub facts_root: Hash,
    pub facts_count: u64,
}

impl BlockRoots {
    /// `blake3_derive_key(Domain::State, previous ‖ height ‖ W ‖ I ‖ F ‖ facts count)`.
    pub fn state_root(&self) -> Hash {
        let mut hasher = Domain::State.hasher();
        hasher.update(&self.previous_root.0);
        hasher.update(&self.height.to_le_bytes());
        hasher.update(&self.writes_digest.0);
        hasher.update(&self.index_digest.0);
        hasher.update(&self.facts_root.0);
        hasher.update(&self.facts_count.to_le_bytes());
        Hash(*hasher.finalize().as_bytes())
    }
}
