//! Events: what happened (past tense). `evolve` applies them; the log of events is the source
//! every projection is rebuilt from. Each event carries what `evolve` needs, so replay never
//! re-runs business rules.

use super::command::*;
use super::types::*;
use borsh::{BorshDeserialize, BorshSerialize};
use pharmalink_ledger::{Hash, PublicKey};

/// PDG exception categories (data/gs1/pdg_exception_report_schema.json).
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ExceptionCategory {
    /// More product than the shipment's data: a received EPC that was not shipped to us.
    Overage,
    /// Less product than the data: a shipped EPC not received (yet).
    Underage,
    /// Serial/lot/expiry observed differs from the commissioned data.
    DataMisalignment,
    /// Product without EPCIS data: an EPC that nobody commissioned.
    ProductNoEpcis,
}

impl ExceptionCategory {
    pub fn name(self) -> &'static str {
        match self {
            ExceptionCategory::Overage => "overage",
            ExceptionCategory::Underage => "underage",
            ExceptionCategory::DataMisalignment => "data_misalignment",
            ExceptionCategory::ProductNoEpcis => "product_no_epcis",
        }
    }
}

/// One shipment as shipped: the clear part (who, what, references) and the sealed TI.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ShipmentRecord {
    pub id: u64,
    pub kind: ShipmentKind,
    pub seller: Gln,
    pub shipper: Gln,
    pub recipient: Gln,
    pub carrier: Option<Gln>,
    /// The top-level EPCs shipped (containers imply their contents).
    pub items: Vec<Epc>,
    /// Top-level EPCs not yet received.
    pub outstanding: Vec<Epc>,
    pub biz_transactions: Vec<BizTransaction>,
    pub statement: TransactionStatement,
    pub transaction_information: Option<SealedRef>,
    pub shipped_height: u64,
    pub shipped_timestamp_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ExceptionRecord {
    pub id: u64,
    pub party: Gln,
    pub shipment_id: u64,
    pub category: ExceptionCategory,
    pub source: ObservationSource,
    pub epcs: Vec<Epc>,
    pub detail: String,
    /// Set once the trading partners settled it.
    pub resolution: Option<Resolution>,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Event {
    // ---- IAM
    OrganizationAdmitted {
        profile: OrganizationProfile,
        keys: Vec<PublicKey>,
        licences: Vec<Licence>,
    },
    ValidatorAdmitted {
        gln: Gln,
        consensus_key: PublicKey,
        voting_power: u64,
    },
    ProposalOpened {
        id: u64,
        proposer: Gln,
        proposal: ProposalKind,
        expires_height: u64,
    },
    VoteCast {
        id: u64,
        voter: Gln,
        approve: bool,
    },
    ProposalClosed {
        id: u64,
        approved: bool,
    },
    MemberKeyAdded {
        gln: Gln,
        key: PublicKey,
    },
    MemberKeyRevoked {
        gln: Gln,
        key: PublicKey,
    },
    LicenceRecorded {
        gln: Gln,
        licence: Licence,
    },

    // ---- custody
    ProductRegistered {
        owner: Gln,
        product: ProductMaster,
    },
    PackagesCommissioned {
        owner: Gln,
        gtin: Gtin,
        lot: String,
        expiry: Date,
        epcs: Vec<Epc>,
    },
    /// `created`: the parent container came into existence with this packing.
    Aggregated {
        holder: Gln,
        parent: Epc,
        children: Vec<Epc>,
        created: bool,
    },
    Disaggregated {
        holder: Gln,
        parent: Epc,
        children: Vec<Epc>,
    },
    /// `moved`: every EPC that changes hands, containers' contents included.
    Shipped {
        shipment: ShipmentRecord,
        moved: Vec<Epc>,
    },
    /// `moved`: every EPC received, containers' contents included; `closed`: nothing
    /// remains outstanding.
    Received {
        shipment_id: u64,
        recipient: Gln,
        received: Vec<Epc>,
        moved: Vec<Epc>,
        closed: bool,
    },
    ExceptionRaised {
        exception: ExceptionRecord,
    },
    Dispensed {
        holder: Gln,
        epcs: Vec<Epc>,
    },
    ReturnVerified {
        holder: Gln,
        epcs: Vec<Epc>,
        correlation_id: String,
        verified: bool,
    },
    Decommissioned {
        holder: Gln,
        epcs: Vec<Epc>,
        reason: String,
    },
    Destroyed {
        holder: Gln,
        epcs: Vec<Epc>,
    },
    Quarantined {
        case_id: u64,
        holder: Gln,
        epcs: Vec<Epc>,
        reason: String,
    },
    InvestigationStarted {
        case_id: u64,
        holder: Gln,
    },
    SuspectCleared {
        case_id: u64,
        holder: Gln,
        epcs: Vec<Epc>,
    },
    IllegitimateDeclared {
        case_id: u64,
        holder: Gln,
        epcs: Vec<Epc>,
        form: Form3911,
        notified: Vec<Gln>,
    },
    LotRecalled {
        by: Gln,
        gtin: Gtin,
        lot: String,
        class: RecallClass,
        reason: String,
    },
    ExceptionResolved {
        exception_id: u64,
        by: Gln,
        resolution: Resolution,
    },

    // ---- pharmacy
    PrescriptionDecided {
        pharmacy: Gln,
        decision: RxDecision,
    },
    Reserved {
        holder: Gln,
        order: Hash,
        epcs: Vec<Epc>,
        expires_ms: u64,
    },
    /// `epcs`: the packages the reservation still held.
    ReservationReleased {
        holder: Gln,
        order: Hash,
        epcs: Vec<Epc>,
    },
    PrescriptionDispensed {
        holder: Gln,
        rx_token: Hash,
        epcs: Vec<Epc>,
    },
    StorageRequirementSet {
        owner: Gln,
        gtin: Gtin,
        requirement: StorageRequirement,
    },
    /// `packages`: the packages covered (containers' contents included).
    TelemetryAnchored {
        by: Gln,
        anchor: TelemetryAnchor,
        packages: Vec<Epc>,
    },
    /// Followed by the `Quarantined` event of its case.
    ExcursionRecorded {
        by: Gln,
        case_id: u64,
        excursion: ExcursionReport,
        packages: Vec<Epc>,
    },

    // ---- dispatch
    VehicleRegistered {
        courier: Gln,
        vehicle: VehicleProfile,
    },
    DeliveryOpened {
        pharmacy: Gln,
        delivery: DeliveryOrder,
    },
    CourierAssigned {
        order: Hash,
        courier: Gln,
        vehicle: String,
    },
    PickedUp {
        order: Hash,
        courier: Gln,
        epcs: Vec<Epc>,
    },
    /// Custody ends: the packages are dispensed to the patient against the Rx.
    DeliveredToPatient {
        order: Hash,
        courier: Gln,
        pharmacy: Gln,
        rx_token: Hash,
        epcs: Vec<Epc>,
    },
    /// `returned`: the packages the courier had picked up, back in the pharmacy's custody.
    DeliveryFailed {
        order: Hash,
        courier: Gln,
        reason: String,
        returned: Vec<Epc>,
    },
    DeliveryClosed {
        order: Hash,
        reason: String,
    },
    SagaStepRecorded {
        pharmacy: Gln,
        order: Hash,
        step: String,
        outcome: String,
        detail: String,
    },
}

impl Event {
    pub fn name(&self) -> &'static str {
        match self {
            Event::OrganizationAdmitted { .. } => "OrganizationAdmitted",
            Event::ValidatorAdmitted { .. } => "ValidatorAdmitted",
            Event::ProposalOpened { .. } => "ProposalOpened",
            Event::VoteCast { .. } => "VoteCast",
            Event::ProposalClosed { .. } => "ProposalClosed",
            Event::MemberKeyAdded { .. } => "MemberKeyAdded",
            Event::MemberKeyRevoked { .. } => "MemberKeyRevoked",
            Event::LicenceRecorded { .. } => "LicenceRecorded",
            Event::ProductRegistered { .. } => "ProductRegistered",
            Event::PackagesCommissioned { .. } => "PackagesCommissioned",
            Event::Aggregated { .. } => "Aggregated",
            Event::Disaggregated { .. } => "Disaggregated",
            Event::Shipped { .. } => "Shipped",
            Event::Received { .. } => "Received",
            Event::ExceptionRaised { .. } => "ExceptionRaised",
            Event::Dispensed { .. } => "Dispensed",
            Event::ReturnVerified { .. } => "ReturnVerified",
            Event::Decommissioned { .. } => "Decommissioned",
            Event::Destroyed { .. } => "Destroyed",
            Event::Quarantined { .. } => "Quarantined",
            Event::InvestigationStarted { .. } => "InvestigationStarted",
            Event::SuspectCleared { .. } => "SuspectCleared",
            Event::IllegitimateDeclared { .. } => "IllegitimateDeclared",
            Event::LotRecalled { .. } => "LotRecalled",
            Event::ExceptionResolved { .. } => "ExceptionResolved",
            Event::PrescriptionDecided { .. } => "PrescriptionDecided",
            Event::Reserved { .. } => "Reserved",
            Event::ReservationReleased { .. } => "ReservationReleased",
            Event::PrescriptionDispensed { .. } => "PrescriptionDispensed",
            Event::StorageRequirementSet { .. } => "StorageRequirementSet",
            Event::TelemetryAnchored { .. } => "TelemetryAnchored",
            Event::ExcursionRecorded { .. } => "ExcursionRecorded",
            Event::VehicleRegistered { .. } => "VehicleRegistered",
            Event::DeliveryOpened { .. } => "DeliveryOpened",
            Event::CourierAssigned { .. } => "CourierAssigned",
            Event::PickedUp { .. } => "PickedUp",
            Event::DeliveredToPatient { .. } => "DeliveredToPatient",
            Event::DeliveryFailed { .. } => "DeliveryFailed",
            Event::DeliveryClosed { .. } => "DeliveryClosed",
            Event::SagaStepRecorded { .. } => "SagaStepRecorded",
        }
    }
}

/// An event as logged: where and when it happened.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct LoggedEvent {
    pub position: Position,
    pub timestamp_ms: u64,
    pub event: Event,
}
