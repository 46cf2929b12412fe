//! Commands: what a transaction payload asks for. Payload = `PAYLOAD_VERSION` byte ‖ Borsh
//! (`Command`); the payload is bounded, lists are bounded, texts are bounded, trailing bytes
//! are rejected.

use super::types::*;
use borsh::{BorshDeserialize, BorshSerialize};
use pharmalink_ledger::{Hash, PublicKey};

/// The first byte of every command payload.
pub const PAYLOAD_VERSION: u8 = 1;
/// Largest command payload.
pub const PAYLOAD_BYTES_MAX: usize = 64 * 1024;
/// Most EPCs one command names (commission, ship, receive, dispense, …).
pub const ITEMS_PER_COMMAND_MAX: usize = 1_000;
/// Most business transactions, notified parties, member keys in one command.
pub const SMALL_LIST_MAX: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub enum Role {
    Manufacturer,
    Repackager,
    Wholesaler,
    Dispenser,
    /// Third-party logistics provider or courier: may hold without owning.
    Logistics,
    Regulator,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Manufacturer,
        Role::Repackager,
        Role::Wholesaler,
        Role::Dispenser,
        Role::Logistics,
        Role::Regulator,
    ];

    /// The names node/src/genesis.rs uses.
    pub fn name(self) -> &'static str {
        match self {
            Role::Manufacturer => "manufacturer",
            Role::Repackager => "repackager",
            Role::Wholesaler => "wholesaler",
            Role::Dispenser => "dispenser",
            Role::Logistics => "logistics",
            Role::Regulator => "regulator",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum LicenceKind {
    /// FDA establishment registration (manufacturer, repackager).
    FdaRegistration,
    /// State wholesale / pharmacy / 3PL licence; `[u8; 2]` is the USPS state code.
    StateLicence([u8; 2]),
    /// DEA registration (controlled substances).
    DeaRegistration,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Licence {
    pub kind: LicenceKind,
    pub number: String,
    /// Last valid day.
    pub expires: Date,
    /// A revoked licence is invalid whatever its expiry.
    pub revoked: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct OrganizationProfile {
    pub gln: Gln,
    pub legal_name: String,
    /// Business address (public: it is the organization's registered address, not TI).
    pub address: String,
    pub role: Role,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ProposalKind {
    AdmitOrganization {
        profile: OrganizationProfile,
        keys: Vec<PublicKey>,
        licences: Vec<Licence>,
    },
    /// Makes an admitted organization a validator organization with a consensus key.
    AdmitValidator {
        gln: Gln,
        consensus_key: PublicKey,
        voting_power: u64,
    },
}

/// Product master data (from the manufacturer's commissioning).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ProductMaster {
    pub gtin: Gtin,
    /// NDC as printed (10 or, from 2033, 12 digits; hyphens allowed).
    pub ndc: String,
    pub name: String,
    pub strength: String,
    pub dosage_form: String,
    pub container_size: String,
    /// GS1 company prefix length (6..=12), needed to write SGTIN URNs.
    pub company_prefix_length: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ShipmentKind {
    /// Sale: ownership passes to the recipient on receipt; TI + TS required.
    Sale,
    /// Custody only (to a 3PL warehouse, between own sites): owner unchanged.
    Transfer,
    /// Return to a trading partner (saleable or for destruction); ownership passes; TI + TS.
    Return,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum BizTransactionKind {
    Po,
    Inv,
    Desadv,
    Bol,
    Rma,
}

impl BizTransactionKind {
    pub fn cbv(self) -> &'static str {
        match self {
            BizTransactionKind::Po => "po",
            BizTransactionKind::Inv => "inv",
            BizTransactionKind::Desadv => "desadv",
            BizTransactionKind::Bol => "bol",
            BizTransactionKind::Rma => "rma",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BizTransaction {
    pub kind: BizTransactionKind,
    pub id: String,
}

/// The DSCSA Transaction Statement: the seller's affirmation (in clear: it is no commercial
/// detail) and the legal notice text's hash being out of scope, only the affirmation counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TransactionStatement {
    pub affirmed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ObservationSource {
    Scan,
    PackingSlip,
    Asn,
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ReceivedItem {
    pub epc: Epc,
    /// Lot and expiry as read from the package, when the receiver scanned them: a difference
    /// from the commissioned data is a data-misalignment exception.
    pub observed_lot: Option<String>,
    pub observed_expiry: Option<Date>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Form3911Kind {
    Initial,
    FollowUp,
    RequestForTermination,
}

/// The FDA Form 3911 notification record (the form itself is filed with FDA; the ledger
/// keeps the kind, the FDA incident number and the filing date).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Form3911 {
    pub kind: Form3911Kind,
    pub incident_number: String,
    pub filed: Date,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum RecallClass {
    I,
    II,
    III,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Command {
    // ---- IAM
    /// Opens a governance proposal (validator organizations only); the proposer's vote counts.
    Propose {
        proposal: ProposalKind,
    },
    Vote {
        proposal_id: u64,
        approve: bool,
    },
    AddMemberKey {
        key: PublicKey,
    },
    RotateMemberKey {
        old: PublicKey,
        new: PublicKey,
    },
    RevokeMemberKey {
        key: PublicKey,
    },
    /// Records or replaces a licence of an organization (regulators and validator
    /// organizations attest ATP credentials).
    RecordLicence {
        gln: Gln,
        licence: Licence,
    },

    // ---- custody
    RegisterProduct {
        product: ProductMaster,
    },
    Commission {
        gtin: Gtin,
        serials: Vec<String>,
        lot: String,
        expiry: Date,
    },
    /// Packs children into a container; an SSCC not yet known is created by this command.
    Aggregate {
        parent: Epc,
        children: Vec<Epc>,
    },
    /// Unpacks the named children (all when empty).
    Disaggregate {
        parent: Epc,
        children: Vec<Epc>,
    },
    Ship {
        kind: ShipmentKind,
        to: Gln,
        /// A 3PL or courier that holds the goods in transit without owning them.
        carrier: Option<Gln>,
        items: Vec<Epc>,
        biz_transactions: Vec<BizTransaction>,
        statement: TransactionStatement,
        /// Transaction Information (TI) incl. addresses, quantities, prices: sealed.
        transaction_information: Option<Sealed>,
    },
    Receive {
        shipment_id: u64,
        items: Vec<ReceivedItem>,
        source: ObservationSource,
    },
    Dispense {
        items: Vec<Epc>,
    },
    /// A returned package's verification (VRS answer) before it may be resold.
    VerifyReturn {
        items: Vec<Epc>,
        correlation_id: String,
        verified: bool,
    },
    Decommission {
        items: Vec<Epc>,
        reason: String,
    },
    Destroy {
        items: Vec<Epc>,
    },
    Quarantine {
        items: Vec<Epc>,
        reason: String,
    },
    BeginInvestigation {
        case_id: u64,
    },
    ClearSuspect {
        case_id: u64,
    },
    DeclareIllegitimate {
        case_id: u64,
        form: Form3911,
        notified: Vec<Gln>,
    },
    RecallLot {
        gtin: Gtin,
        lot: String,
        class: RecallClass,
        reason: String,
    },
    /// Closes a receiving exception with its PDG resolution.
    ResolveException {
        exception_id: u64,
        resolution: Resolution,
    },

    // ---- pharmacy: prescriptions, reservations, cold chain
    /// A pharmacist's decision on a prescription intake: tokens, NDC, quantities, no PHI.
    DecidePrescription {
        decision: RxDecision,
    },
    /// Holds packages for a pending order until `expires_ms` (block time) or a release.
    Reserve {
        order: Hash,
        items: Vec<Epc>,
        expires_ms: u64,
    },
    ReleaseReservation {
        order: Hash,
    },
    /// Dispenses packages against an approved prescription of this pharmacy.
    DispensePrescription {
        rx_token: Hash,
        items: Vec<Epc>,
    },
    /// The product owner's storage conditions: packages then need cold-chain monitoring.
    SetStorageRequirement {
        gtin: Gtin,
        requirement: StorageRequirement,
    },
    /// The hash of a batch of raw temperature readings kept off the ledger.
    AnchorTelemetry {
        anchor: TelemetryAnchor,
    },
    /// An excursion found in an anchored batch: quarantines the packages.
    RecordExcursion {
        excursion: ExcursionReport,
    },

    // ---- last-mile dispatch
    /// A courier organization's vehicle (or drone, or autonomous vehicle) and what it can do.
    RegisterVehicle {
        vehicle: VehicleProfile,
    },
    /// The pharmacy opens a delivery of packages it holds for an approved prescription.
    OpenDelivery {
        delivery: DeliveryOrder,
    },
    /// The pharmacy assigns a courier's vehicle (again after a failure).
    AssignCourier {
        order: Hash,
        courier: Gln,
        vehicle: String,
    },
    /// The assigned courier takes custody of the packages (signed by the courier's device key).
    PickUp {
        order: Hash,
    },
    /// Handoff to the patient: the one-time code the recipient shows (its hash was committed
    /// when the delivery opened). Custody ends; the packages are dispensed against the Rx.
    DeliverToPatient {
        order: Hash,
        code: String,
    },
    /// The courier could not deliver; packages picked up go back to the pharmacy's custody.
    FailDelivery {
        order: Hash,
        reason: String,
    },
    /// The pharmacy closes an undelivered order (compensated or cancelled).
    CloseDelivery {
        order: Hash,
        reason: String,
    },
    /// A step of the pharmacy's fulfilment saga (reserve, payment, assign, …): its outcome on
    /// the ledger, so every decision is auditable.
    RecordSagaStep {
        order: Hash,
        step: String,
        outcome: String,
        detail: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum VehicleKind {
    Bicycle,
    Car,
    Van,
    Drone,
    Autonomous,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct VehicleProfile {
    pub id: String,
    pub kind: VehicleKind,
    pub payload_grams: u32,
    pub range_m: u32,
    pub cold_chain: bool,
    /// A human can take a signature (needed for controlled substances).
    pub human: bool,
    /// Where it starts from (micro-degrees).
    pub base_lat_e6: i32,
    pub base_lon_e6: i32,
    pub available: bool,
    pub cost_per_km_cents: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct DeliveryOrder {
    pub order: Hash,
    pub rx_token: Hash,
    pub items: Vec<Epc>,
    pub cold_chain: bool,
    pub controlled: bool,
    /// blake3 of the recipient's one-time code (see `dispatch::code_hash`).
    pub code_hash: Hash,
}

/// A prescription decision as the ledger keeps it. The tokens are random (not derived from
/// identity); the intake itself (patient, prescriber, directions) stays in the pharmacy's
/// vault, bound by `intake_commitment` (salted blake3 over the vault record).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct RxDecision {
    pub rx_token: Hash,
    pub patient_token: Hash,
    /// NDC as prescribed.
    pub ndc: String,
    /// Thousandths of the dispense unit.
    pub quantity_milli: u64,
    pub days_supply: Option<u32>,
    pub refills: u32,
    pub controlled: bool,
    pub approved: bool,
    /// Rule names of the fraud signals the pharmacist saw.
    pub signals: Vec<String>,
    /// Why it was rejected (a short code-like text, never PHI); empty when approved.
    pub reason: String,
    pub intake_commitment: Hash,
}

/// Storage conditions of a product (e.g. 2–8 °C), and when time out of range is an excursion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct StorageRequirement {
    /// Hundredths of a degree Celsius.
    pub min_centi_c: i32,
    pub max_centi_c: i32,
    /// One continuous stretch out of range longer than this is an excursion.
    pub max_excursion_minutes: u32,
    /// Total time out of range (over all anchored readings) beyond this is an excursion.
    pub max_cumulative_minutes: u32,
}

/// A batch of readings: its hash (over the canonical readings, see `coldchain::batch_hash`),
/// what it covers and a summary. The readings stay with the node that took them.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TelemetryAnchor {
    pub batch_hash: Hash,
    /// Packages or containers monitored (containers stand for their contents).
    pub subjects: Vec<Epc>,
    pub sensor: String,
    pub readings: u32,
    pub first_ms: u64,
    pub last_ms: u64,
    pub min_centi_c: i32,
    pub max_centi_c: i32,
    /// Minutes out of range in this batch.
    pub minutes_out: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ExcursionReport {
    /// The anchored batch that shows it.
    pub batch_hash: Hash,
    pub items: Vec<Epc>,
    /// `cold_chain.continuous` or `cold_chain.cumulative`.
    pub rule: String,
    pub started_ms: u64,
    pub minutes_out: u32,
    pub detail: String,
}

/// PDG exception resolutions (data/gs1/pdg_exception_report_schema.json `Resolution`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Resolution {
    SendNewData,
    SendProduct,
    ReturnProduct,
    SendBackProduct,
    CreditAccount,
    DebitAccount,
}

/// The name of each command kind (RBAC table keys, metrics, messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CommandKind {
    Propose,
    Vote,
    AddMemberKey,
    RotateMemberKey,
    RevokeMemberKey,
    RecordLicence,
    RegisterProduct,
    Commission,
    Aggregate,
    Disaggregate,
    Ship,
    Receive,
    Dispense,
    VerifyReturn,
    Decommission,
    Destroy,
    Quarantine,
    BeginInvestigation,
    ClearSuspect,
    DeclareIllegitimate,
    RecallLot,
    ResolveException,
    DecidePrescription,
    Reserve,
    ReleaseReservation,
    DispensePrescription,
    SetStorageRequirement,
    AnchorTelemetry,
    RecordExcursion,
    RegisterVehicle,
    OpenDelivery,
    AssignCourier,
    PickUp,
    DeliverToPatient,
    FailDelivery,
    CloseDelivery,
    RecordSagaStep,
}

impl Command {
    pub fn kind(&self) -> CommandKind {
        match self {
            Command::Propose { .. } => CommandKind::Propose,
            Command::Vote { .. } => CommandKind::Vote,
            Command::AddMemberKey { .. } => CommandKind::AddMemberKey,
            Command::RotateMemberKey { .. } => CommandKind::RotateMemberKey,
            Command::RevokeMemberKey { .. } => CommandKind::RevokeMemberKey,
            Command::RecordLicence { .. } => CommandKind::RecordLicence,
            Command::RegisterProduct { .. } => CommandKind::RegisterProduct,
            Command::Commission { .. } => CommandKind::Commission,
            Command::Aggregate { .. } => CommandKind::Aggregate,
            Command::Disaggregate { .. } => CommandKind::Disaggregate,
            Command::Ship { .. } => CommandKind::Ship,
            Command::Receive { .. } => CommandKind::Receive,
            Command::Dispense { .. } => CommandKind::Dispense,
            Command::VerifyReturn { .. } => CommandKind::VerifyReturn,
            Command::Decommission { .. } => CommandKind::Decommission,
            Command::Destroy { .. } => CommandKind::Destroy,
            Command::Quarantine { .. } => CommandKind::Quarantine,
            Command::BeginInvestigation { .. } => CommandKind::BeginInvestigation,
            Command::ClearSuspect { .. } => CommandKind::ClearSuspect,
            Command::DeclareIllegitimate { .. } => CommandKind::DeclareIllegitimate,
            Command::RecallLot { .. } => CommandKind::RecallLot,
            Command::ResolveException { .. } => CommandKind::ResolveException,
            Command::DecidePrescription { .. } => CommandKind::DecidePrescription,
            Command::Reserve { .. } => CommandKind::Reserve,
            Command::ReleaseReservation { .. } => CommandKind::ReleaseReservation,
            Command::DispensePrescription { .. } => CommandKind::DispensePrescription,
            Command::SetStorageRequirement { .. } => CommandKind::SetStorageRequirement,
            Command::AnchorTelemetry { .. } => CommandKind::AnchorTelemetry,
            Command::RecordExcursion { .. } => CommandKind::RecordExcursion,
            Command::RegisterVehicle { .. } => CommandKind::RegisterVehicle,
            Command::OpenDelivery { .. } => CommandKind::OpenDelivery,
            Command::AssignCourier { .. } => CommandKind::AssignCourier,
            Command::PickUp { .. } => CommandKind::PickUp,
            Command::DeliverToPatient { .. } => CommandKind::DeliverToPatient,
            Command::FailDelivery { .. } => CommandKind::FailDelivery,
            Command::CloseDelivery { .. } => CommandKind::CloseDelivery,
            Command::RecordSagaStep { .. } => CommandKind::RecordSagaStep,
        }
    }

    /// The payload bytes: version byte ‖ Borsh.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![PAYLOAD_VERSION];
        // Writing Borsh into a Vec does not fail.
        let _ = borsh::to_writer(&mut out, self);
        out
    }

    /// Decodes and bounds-checks a payload. Never panics on untrusted bytes.
    pub fn decode(payload: &[u8]) -> Result<Command, Rejection> {
        ensure(
            payload.len() <= PAYLOAD_BYTES_MAX,
            "payload.too_large",
            || {
                format!(
                    "payload of {} bytes (max {PAYLOAD_BYTES_MAX})",
                    payload.len()
                )
            },
        )?;
        let Some((&version, body)) = payload.split_first() else {
            return reject("payload.empty", "empty payload");
        };
        ensure(version == PAYLOAD_VERSION, "payload.version", || {
            format!("payload version {version}, this node reads {PAYLOAD_VERSION}")
        })?;
        let command: Command = borsh::from_slice(body).map_err(|e| {
            Rejection::new("payload.malformed", format!("not a canonical command: {e}"))
        })?;
        command.check_bounds()?;
        Ok(command)
    }

    /// Rule `payload.bounds`: list and text limits.
    pub fn check_bounds(&self) -> Result<(), Rejection> {
        let items = |list_len: usize| {
            ensure(list_len <= ITEMS_PER_COMMAND_MAX, "payload.bounds", || {
                format!("{list_len} items (max {ITEMS_PER_COMMAND_MAX})")
            })
        };
        let small = |list_len: usize| {
            ensure(list_len <= SMALL_LIST_MAX, "payload.bounds", || {
                format!("list of {list_len} (max {SMALL_LIST_MAX})")
            })
        };
        let epcs = |list: &[Epc]| -> Result<(), Rejection> {
            items(list.len())?;
            list.iter().try_for_each(Epc::check_bounded)
        };
        match self {
            Command::Propose { proposal } => match proposal {
                ProposalKind::AdmitOrganization {
                    profile,
                    keys,
                    licences,
                } => {
                    check_text("legal_name", &profile.legal_name, TEXT_BYTES_MAX, true)?;
                    check_text("address", &profile.address, TEXT_BYTES_MAX, false)?;
                    small(keys.len())?;
                    small(licences.len())?;
                    licences.iter().try_for_each(check_licence)
                }
                ProposalKind::AdmitValidator { .. } => Ok(()),
            },
            Command::Vote { .. }
            | Command::AddMemberKey { .. }
            | Command::RotateMemberKey { .. }
            | Command::RevokeMemberKey { .. }
            | Command::BeginInvestigation { .. }
            | Command::ClearSuspect { .. } => Ok(()),
            Command::RecordLicence { licence, .. } => check_licence(licence),
            Command::RegisterProduct { product } => {
                check_text("ndc", &product.ndc, 16, true)?;
                check_text("name", &product.name, TEXT_BYTES_MAX, true)?;
                check_text("strength", &product.strength, 64, false)?;
                check_text("dosage_form", &product.dosage_form, 64, false)?;
                check_text("container_size", &product.container_size, 64, false)
            }
            Command::Commission { serials, lot, .. } => {
                items(serials.len())?;
                check_text("lot", lot, LOT_BYTES_MAX, true)?;
                serials
                    .iter()
                    .try_for_each(|s| check_text("serial", s, SERIAL_BYTES_MAX, true))
            }
            Command::Aggregate { children, .. } | Command::Disaggregate { children, .. } => {
                epcs(children)
            }
            Command::Ship {
                items: list,
                biz_transactions,
                transaction_information,
                ..
            } => {
                epcs(list)?;
                small(biz_transactions.len())?;
                biz_transactions
                    .iter()
                    .try_for_each(|b| check_text("bizTransaction id", &b.id, 128, true))?;
                match transaction_information {
                    Some(sealed) => sealed.check("transaction_information"),
                    None => Ok(()),
                }
            }
            Command::Receive { items: list, .. } => {
                items(list.len())?;
                list.iter().try_for_each(|i| {
                    i.epc.check_bounded()?;
                    match &i.observed_lot {
                        Some(lot) => check_text("observed_lot", lot, LOT_BYTES_MAX, true),
                        None => Ok(()),
                    }
                })
            }
            Command::Dispense { items: list } | Command::Destroy { items: list } => epcs(list),
            Command::VerifyReturn {
                items: list,
                correlation_id,
                ..
            } => {
                epcs(list)?;
                check_text("correlation_id", correlation_id, 128, true)
            }
            Command::Decommission {
                items: list,
                reason,
            }
            | Command::Quarantine {
                items: list,
                reason,
            } => {
                epcs(list)?;
                check_text("reason", reason, TEXT_BYTES_MAX, true)
            }
            Command::DeclareIllegitimate { form, notified, .. } => {
                small(notified.len())?;
                check_text("incident_number", &form.incident_number, 64, true)
            }
            Command::RecallLot { lot, reason, .. } => {
                check_text("lot", lot, LOT_BYTES_MAX, true)?;
                check_text("reason", reason, TEXT_BYTES_MAX, true)
            }
            Command::ResolveException { .. } | Command::ReleaseReservation { .. } => Ok(()),
            Command::DecidePrescription { decision } => {
                check_text("ndc", &decision.ndc, 16, true)?;
                small(decision.signals.len())?;
                decision
                    .signals
                    .iter()
                    .try_for_each(|s| check_text("signal", s, 64, true))?;
                check_text("reason", &decision.reason, TEXT_BYTES_MAX, false)
            }
            Command::Reserve { items: list, .. }
            | Command::DispensePrescription { items: list, .. } => epcs(list),
            Command::SetStorageRequirement { .. } => Ok(()),
            Command::AnchorTelemetry { anchor } => {
                epcs(&anchor.subjects)?;
                check_text("sensor", &anchor.sensor, 128, true)
            }
            Command::RegisterVehicle { vehicle } => check_text("vehicle id", &vehicle.id, 64, true),
            Command::OpenDelivery { delivery } => epcs(&delivery.items),
            Command::AssignCourier { vehicle, .. } => check_text("vehicle", vehicle, 64, true),
            Command::PickUp { .. } => Ok(()),
            Command::DeliverToPatient { code, .. } => check_text("code", code, 64, true),
            Command::FailDelivery { reason, .. } | Command::CloseDelivery { reason, .. } => {
                check_text("reason", reason, TEXT_BYTES_MAX, true)
            }
            Command::RecordSagaStep {
                step,
                outcome,
                detail,
                ..
            } => {
                check_text("step", step, 32, true)?;
                check_text("outcome", outcome, 32, true)?;
                check_text("detail", detail, TEXT_BYTES_MAX, false)
            }
            Command::RecordExcursion { excursion } => {
                epcs(&excursion.items)?;
                check_text("rule", &excursion.rule, 64, true)?;
                check_text("detail", &excursion.detail, TEXT_BYTES_MAX, false)
            }
        }
    }
}

fn check_licence(licence: &Licence) -> Result<(), Rejection> {
    check_text("licence number", &licence.number, 64, true)?;
    licence.expires.check()
}
