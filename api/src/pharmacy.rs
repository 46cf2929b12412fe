//! The pharmacy API (issue 8): prescription intake (HL7 FHIR R4 or structured JSON) with
//! validation and fraud signals, the pharmacist's decision, on-hand inventory, first-expiry
//! first-out dispensing against an approved prescription, reservations, storage requirements
//! and cold-chain telemetry.
//!
//! PHI — the patient, the prescriber of a patient's prescription, the directions — goes to the
//! node's encrypted vault ([`PhiVault`]) and nowhere else: not to the ledger (which gets random
//! tokens, the NDC and the decision), not to the node-local intake list, not to logs. Reading
//! it back needs an `X-PHI-Purpose` header and is audited before anything is decrypted.
//!
//! Every command goes through the node's durable capture jobs (signed with the caller's
//! organization key the node holds); the handlers wait for the commit (up to
//! [`COMMIT_WAIT`]) and answer with the outcome, or 202 with the job to poll.

use crate::auth::{now_s, Caller};
use crate::epcis_api::{caller_of, node_signer, CaptureItem, CaptureJobView, CaptureSpec};
use crate::fhir::{self, FhirProblem, PatientPhi, Prescriber, Prescription};
use crate::http::{bad_request, internal_error, parse_json, problem, problem_with_errors, NodeApi};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use pharmalink_contracts::coldchain::{self, Reading};
use pharmalink_contracts::contract::command::{
    ExcursionReport, RxDecision, StorageRequirement, TelemetryAnchor,
};
use pharmalink_contracts::contract::types::commit_confidential;
use pharmalink_contracts::contract::{Command, Date, Epc, Gln, Gtin, LedgerState, Role};
use pharmalink_contracts::custody::{self, pharmacy as ph, ItemKind, Status, ON_HAND_INDEX};
use pharmalink_contracts::rx::fraud::{self, PriorFill, RxFacts};
use pharmalink_contracts::rx::{check_dea, check_npi, sig};
use pharmalink_ledger::{Hash, LedgerRead};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How long a handler waits for its commands to commit before answering 202.
pub const COMMIT_WAIT: Duration = Duration::from_secs(20);
/// Largest intake or telemetry body.
pub const PHARMACY_BODY_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Most inventory rows one answer lists.
pub const INVENTORY_ROWS_MAX: usize = 10_000;
const INTAKE_PREFIX: &str = "rx/intake/";
const TELEMETRY_PREFIX: &str = "telemetry/";
const PURPOSE_HEADER: &str = "x-phi-purpose";

/// Who reads PHI, and why (recorded before the read).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PhiAccessor {
    pub who: String,
    pub purpose: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PhiAccess {
    pub time_ms: u64,
    pub who: String,
    pub purpose: String,
    /// read | shred
    pub action: String,
    pub patient_token: String,
    pub record_id: Option<String>,
}

/// The node's PHI vault as the API uses it (node/src/vault.rs implements it).
pub trait PhiVault: Send + Sync {
    /// The patient's random token, found through a keyed blind index of `identity`, or a new
    /// patient with a fresh data key.
    fn patient_for_identity(&self, identity: &str) -> Result<String, String>;
    fn put(&self, token: &str, record_id: &str, plaintext: &[u8]) -> Result<(), String>;
    /// Audited (synced) before decrypting; `None` if the patient has no such record.
    fn get(
        &self,
        token: &str,
        record_id: &str,
        accessor: &PhiAccessor,
    ) -> Result<Option<Vec<u8>>, String>;
    /// Crypto-shredding: the data key and records go; audited.
    fn shred(&self, token: &str, accessor: &PhiAccessor) -> Result<(), String>;
    fn access_log(&self, limit: usize) -> Result<Vec<PhiAccess>, String>;
}

pub fn routes<N: NodeApi>(node: N) -> Router {
    Router::new()
        .route("/v1/rx/intakes", post(intake::<N>).get(intakes::<N>))
        .route("/v1/rx/intakes/{rx}", get(intake_record::<N>))
        .route("/v1/rx/intakes/{rx}/decision", post(decide::<N>))
        .route("/v1/rx/intakes/{rx}/dispense", post(dispense::<N>))
        .route("/v1/inventory", get(inventory::<N>))
        .route("/v1/inventory/reservations", post(reserve::<N>))
        .route("/v1/inventory/reservations/{order}", delete(release::<N>))
        .route("/v1/products/{gtin}/storage", put(storage::<N>))
        .route("/v1/telemetry", post(telemetry::<N>))
        .route("/v1/telemetry/{batch}", get(telemetry_batch::<N>))
        .route("/v1/patients/{token}/shred", post(shred::<N>))
        .route("/v1/phi/audit", get(phi_audit::<N>))
        .layer(axum::extract::DefaultBodyLimit::max(
            PHARMACY_BODY_BYTES_MAX,
        ))
        .with_state(node)
}

// ---- shared

pub(crate) fn random_hash() -> Hash {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    Hash(bytes)
}

/// The token the ledger sees for a vault patient token: a one-way pseudonym of a random value
/// (unlinkable to the vault token without the vault).
pub fn ledger_patient_token(vault_token: &str) -> Hash {
    Hash(blake3::derive_key(
        "pharmalink 2026-11 ledger patient token v1",
        vault_token.as_bytes(),
    ))
}

pub(crate) fn parse_hash(field: &str, text: &str) -> Result<Hash, Response> {
    Hash::from_hex(text).map_err(|_| bad_request(field, format!("{text:?} is not 64 hex digits")))
}

fn today() -> Date {
    Date::from_unix_days((now_s() / 86_400) as i64)
}

fn require_role(caller: &Caller, roles: &[Role], what: &str) -> Result<(), Response> {
    if roles.contains(&caller.role()) {
        return Ok(());
    }
    Err(problem(
        StatusCode::FORBIDDEN,
        "Not allowed",
        format!(
            "{what} is for {}; {} is a {}",
            roles
                .iter()
                .map(|r| r.name())
                .collect::<Vec<_>>()
                .join(" or "),
            caller.organization.gln(),
            caller.role().name()
        ),
        None,
    ))
}

fn vault_of<N: NodeApi>(node: &N) -> Result<Arc<dyn PhiVault>, Response> {
    node.vault().ok_or_else(|| {
        problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "No PHI vault",
            "this node runs without a PHI vault (see the node's vault settings)",
            None,
        )
    })
}

fn accessor(caller: &Caller, headers: &HeaderMap) -> Result<PhiAccessor, Response> {
    let purpose = headers
        .get(PURPOSE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    if purpose.is_empty() || purpose.len() > 128 {
        return Err(bad_request(
            "X-PHI-Purpose",
            "reading PHI needs the purpose (treatment, dispensing, payment, audit…), 1 to 128 characters",
        ));
    }
    let who = match caller.key {
        Some(key) => format!("{} key {key}", caller.organization.gln()),
        None => format!("{} (external identity)", caller.organization.gln()),
    };
    Ok(PhiAccessor {
        who,
        purpose: purpose.to_string(),
    })
}

/// Why commands did not (yet) commit.
#[derive(Debug)]
pub(crate) enum CommitError {
    /// The node refused the job (mempool full, no key…).
    NotAccepted(String),
    /// Still pending after the wait: the job id.
    Pending(String),
    Internal(String),
}

/// Signs `commands` with `signer` (an organization key the node holds), persists them as a
/// capture job, and waits up to `wait` until each is committed or rejected.
pub(crate) async fn commit_commands<N: NodeApi>(
    node: &N,
    signer: pharmalink_ledger::PublicKey,
    commands: Vec<Command>,
    wait: Duration,
) -> Result<CaptureJobView, CommitError> {
    let items = commands
        .iter()
        .enumerate()
        .map(|(i, c)| CaptureItem {
            event_index: Some(i),
            payload: Some(c.encode()),
            error: None,
        })
        .collect();
    let mut heights = node.committed_heights();
    let id = node
        .start_capture(CaptureSpec {
            signer,
            proceed: true,
            items,
        })
        .await
        .map_err(CommitError::NotAccepted)?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let lookup = node.clone();
        let job_id = id.clone();
        let job = tokio::task::spawn_blocking(move || lookup.capture_job(&job_id))
            .await
            .map_err(|e| CommitError::Internal(e.to_string()))?
            .map_err(CommitError::Internal)?
            .ok_or_else(|| CommitError::Internal("the job vanished".into()))?;
        if job.items.iter().all(|i| i.status != "pending") {
            return Ok(job);
        }
        if tokio::time::timeout_at(deadline, heights.changed())
            .await
            .is_err()
        {
            return Err(CommitError::Pending(id));
        }
    }
}

/// [`commit_commands`] for a handler: waits [`COMMIT_WAIT`]; a job still pending is a 202
/// naming it.
pub(crate) async fn commit<N: NodeApi>(
    node: &N,
    signer: pharmalink_ledger::PublicKey,
    commands: Vec<Command>,
) -> Result<CaptureJobView, Response> {
    commit_commands(node, signer, commands, COMMIT_WAIT)
        .await
        .map_err(|e| match e {
            CommitError::NotAccepted(reason) => problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not accepted",
                reason,
                None,
            ),
            CommitError::Pending(id) => {
                let location = format!("/epcis/capture/{id}");
                (
                    StatusCode::ACCEPTED,
                    Json(json!({"status": "pending", "job": id, "location": location})),
                )
                    .into_response()
            }
            CommitError::Internal(e) => internal_error(e),
        })
}

/// The first rejected item as a 409 problem naming the contract rule.
pub(crate) fn rejected(job: &CaptureJobView) -> Option<Response> {
    let item = job.items.iter().find(|i| i.status != "committed")?;
    let code = item.code.clone().unwrap_or_else(|| item.status.clone());
    Some(
        (
            StatusCode::CONFLICT,
            [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
            Json(json!({
                "type": "about:blank",
                "title": "Refused by the ledger",
                "status": 409,
                "code": code,
                "detail": item.reason.clone().unwrap_or_default(),
                "tx_hash": item.tx_hash,
            })),
        )
            .into_response(),
    )
}

pub(crate) fn tx_hashes(job: &CaptureJobView) -> Vec<String> {
    job.items.iter().filter_map(|i| i.tx_hash.clone()).collect()
}

/// Caller, store and the key the node signs for the caller with.
pub(crate) async fn signing_caller<N: NodeApi>(
    node: &N,
    headers: &HeaderMap,
    roles: &[Role],
    what: &str,
) -> Result<
    (
        Caller,
        Arc<dyn LedgerRead + Send + Sync>,
        pharmalink_ledger::PublicKey,
    ),
    Response,
> {
    let (caller, store) = caller_of(node, headers).await?;
    require_role(&caller, roles, what)?;
    let signer = node_signer(node, &caller)?;
    Ok((caller, store, signer))
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Response> + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(internal_error)?
}

// ---- intake

/// The node-local intake record: no PHI (tokens, product, quantities, signals, decision).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct IntakeView {
    pub rx_token: String,
    /// The vault's patient token (random; the ledger sees a pseudonym of it).
    pub patient_token: String,
    /// pending_review | approved | rejected | dispensed
    pub status: String,
    pub ndc: String,
    pub gtin: String,
    pub product: String,
    pub quantity: f64,
    pub days_supply: Option<u32>,
    pub refills: u32,
    pub controlled: bool,
    pub directions_understood: bool,
    pub signals: Vec<SignalView>,
    pub created_ms: u64,
    pub decided_by: Option<String>,
    pub decision_reason: Option<String>,
    pub dispensed: Vec<String>,
    pub tx_hashes: Vec<String>,
    /// Salted blake3 commitment to the vault record, as on the ledger.
    pub intake_commitment: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SignalView {
    pub rule: String,
    pub reason: String,
}

/// What the vault keeps per prescription (PHI).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct IntakePhi {
    salt: String,
    source: String,
    patient: PatientJson,
    prescriber: PrescriberJson,
    written_on: String,
    directions: String,
    sig: Option<Value>,
    sig_problem: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct PatientJson {
    family: String,
    given: Vec<String>,
    birth_date: String,
    address: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct PrescriberJson {
    npi: String,
    dea: Option<String>,
    family: String,
}

/// A patient's prescriptions seen by this pharmacy (in the vault: which prescriber treats whom
/// is PHI), for the fraud rules.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct History {
    entries: Vec<HistoryEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct HistoryEntry {
    rx_token: String,
    ndc: String,
    prescriber_npi: String,
    written_on: String,
    days_supply: Option<u32>,
    filled_on: Option<String>,
}

/// Structured intake (the non-FHIR form).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StructuredRx {
    patient: StructuredPatient,
    prescriber: StructuredPrescriber,
    ndc: String,
    quantity: f64,
    directions: String,
    written_on: String,
    #[serde(default)]
    refills: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StructuredPatient {
    family: String,
    given: Vec<String>,
    birth_date: String,
    #[serde(default)]
    address: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StructuredPrescriber {
    npi: String,
    #[serde(default)]
    dea: Option<String>,
    family: String,
}

fn read_structured(value: Value) -> Result<Prescription, Vec<FhirProblem>> {
    let problem = |pointer: &str, reason: String| FhirProblem {
        pointer: pointer.into(),
        reason,
    };
    let rx: StructuredRx = serde_json::from_value(value)
        .map_err(|e| vec![problem("", format!("not a structured prescription: {e}"))])?;
    let mut problems = Vec::new();
    if rx.patient.family.trim().is_empty() {
        problems.push(problem("/patient/family", "required".into()));
    }
    if rx.patient.given.iter().all(|g| g.trim().is_empty()) {
        problems.push(problem("/patient/given", "at least one given name".into()));
    }
    if let Err(reason) = fhir::birth_date(&rx.patient.birth_date) {
        problems.push(problem("/patient/birth_date", reason));
    }
    if let Err(r) = check_npi(&rx.prescriber.npi) {
        problems.push(problem("/prescriber/npi", r.message));
    }
    if let Some(dea) = &rx.prescriber.dea {
        if let Err(r) = check_dea(dea, Some(&rx.prescriber.family)) {
            problems.push(problem("/prescriber/dea", r.message));
        }
    }
    if ph::ndc_forms(&rx.ndc).is_empty() {
        problems.push(problem(
            "/ndc",
            format!(
                "{:?} is not an NDC (4-4-2, 5-3-2, 5-4-1, 5-4-2, 10 or 11 digits)",
                rx.ndc
            ),
        ));
    }
    if !(rx.quantity > 0.0 && rx.quantity <= 100_000.0) {
        problems.push(problem(
            "/quantity",
            format!("{} is not a positive quantity", rx.quantity),
        ));
    }
    if rx.refills > 11 {
        problems.push(problem("/refills", "0 to 11 refills".into()));
    }
    if rx.directions.trim().is_empty() || rx.directions.len() > 512 {
        problems.push(problem("/directions", "1 to 512 characters".into()));
    }
    let written_on = Date::parse_iso(&rx.written_on);
    if written_on.is_err() {
        problems.push(problem(
            "/written_on",
            format!("{:?} is not YYYY-MM-DD", rx.written_on),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let quantity_milli = (rx.quantity * 1000.0).round() as u64;
    let parsed = sig::parse(&rx.directions);
    let days_supply = parsed
        .as_ref()
        .ok()
        .and_then(|s| sig::days_supply(s, quantity_milli));
    Ok(Prescription {
        ndc: rx.ndc,
        status: "active".into(),
        authored_on: written_on.unwrap_or(Date(0)),
        quantity_milli,
        refills: rx.refills,
        sig_text: rx.directions,
        sig: parsed,
        days_supply,
        prescriber: Prescriber {
            npi: rx.prescriber.npi,
            dea: rx.prescriber.dea,
            family: rx.prescriber.family,
        },
        patient: PatientPhi {
            family: rx.patient.family,
            given: rx.patient.given,
            birth_date: rx.patient.birth_date,
            address: rx.patient.address,
        },
    })
}

/// A body as a prescription: FHIR when it has a `resourceType`, else structured.
pub fn read_intake(body: &[u8]) -> Result<(Prescription, &'static str), Vec<FhirProblem>> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        vec![FhirProblem {
            pointer: String::new(),
            reason: format!("not JSON: {e}"),
        }]
    })?;
    if value.get("resourceType").is_some() {
        let text = String::from_utf8_lossy(body);
        fhir::read_prescription(&text).map(|p| (p, "fhir"))
    } else {
        read_structured(value).map(|p| (p, "structured"))
    }
}

fn identity_of(patient: &PatientPhi) -> String {
    let norm = |s: &str| s.trim().to_lowercase();
    let given: Vec<String> = patient.given.iter().map(|g| norm(g)).collect();
    format!(
        "{}|{}|{}",
        norm(&patient.family),
        given.join(" "),
        patient.birth_date.trim()
    )
}

fn sig_json(parsed: &sig::Sig) -> Value {
    json!({
        "dose": f64::from(parsed.dose_milli) / 1000.0,
        "unit": parsed.unit,
        "route": parsed.route,
        "doses_per_day": f64::from(parsed.doses_per_day_milli) / 1000.0,
        "as_needed": parsed.as_needed,
        "duration_days": parsed.duration_days,
    })
}

fn load_intake<N: NodeApi>(node: &N, rx: &str) -> Result<IntakeView, Response> {
    let bytes = node
        .local_get(&format!("{INTAKE_PREFIX}{rx}"))
        .map_err(internal_error)?
        .ok_or_else(|| {
            problem(
                StatusCode::NOT_FOUND,
                "No such prescription",
                format!("no intake {rx} on this node"),
                Some("rx"),
            )
        })?;
    serde_json::from_slice(&bytes).map_err(internal_error)
}

fn save_intake<N: NodeApi>(node: &N, view: &IntakeView) -> Result<(), Response> {
    let bytes = serde_json::to_vec(view).map_err(internal_error)?;
    node.local_put(&format!("{INTAKE_PREFIX}{}", view.rx_token), &bytes)
        .map_err(internal_error)
}

#[derive(Deserialize)]
pub(crate) struct IntakeParams {
    /// DEA schedule of the drug (II–V) when controlled.
    schedule: Option<String>,
}

/// `POST /v1/rx/intakes`: a prescription in (FHIR R4 MedicationRequest or Bundle, or
/// structured JSON) → validated, PHI to the vault, fraud signals → pending review.
#[utoipa::path(post, path = "/v1/rx/intakes", tag = "pharmacy", security(("bearer" = [])),
    params(("schedule" = Option<String>, Query, description = "DEA schedule II–V when the drug is controlled")),
    request_body(content = String, description = "FHIR R4 MedicationRequest or Bundle (with Patient and Practitioner), or structured JSON {patient, prescriber, ndc, quantity, directions, written_on, refills}", content_type = "application/json"),
    responses((status = 201, body = IntakeView), (status = 400, description = "Every problem with its JSON pointer"), (status = 403, description = "Not a dispenser, or the node holds no key of the caller's organization")))]
pub(crate) async fn intake<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Query(params): Query<IntakeParams>,
    body: Bytes,
) -> Response {
    let (caller, store, _) =
        match signing_caller(&node, &headers, &[Role::Dispenser], "prescription intake").await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let controlled = match params.schedule.as_deref() {
        None => false,
        Some("II" | "III" | "IV" | "V" | "2" | "3" | "4" | "5") => true,
        Some(other) => {
            return bad_request("schedule", format!("{other:?} is not a DEA schedule II–V"))
        }
    };
    let vault = match vault_of(&node) {
        Ok(vault) => vault,
        Err(response) => return response,
    };
    let worker = node.clone();
    let result = blocking(move || {
        let (rx, source) = read_intake(&body).map_err(|problems| {
            let list: Vec<Value> = problems
                .iter()
                .map(|p| json!({"pointer": p.pointer, "reason": p.reason}))
                .collect();
            problem_with_errors(
                StatusCode::BAD_REQUEST,
                "Invalid prescription",
                format!("{} problem(s) in the prescription", list.len()),
                Some("body"),
                list,
            )
        })?;
        let state = LedgerState::new(&*store);
        let gtin = ph::product_by_ndc(&state, &rx.ndc).ok_or_else(|| {
            bad_request(
                "ndc",
                format!(
                    "NDC {} is not in the product master data of this network",
                    rx.ndc
                ),
            )
        })?;
        let product = custody::product(&state, &gtin)
            .map(|p| format!("{} {}", p.master.name, p.master.strength))
            .unwrap_or_default();
        let token = vault
            .patient_for_identity(&identity_of(&rx.patient))
            .map_err(internal_error)?;
        let screening = PhiAccessor {
            who: format!("{} intake service", caller.organization.gln()),
            purpose: "fraud screening".into(),
        };
        let mut history: History = match vault
            .get(&token, "history", &screening)
            .map_err(internal_error)?
        {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(internal_error)?,
            None => History::default(),
        };
        let facts_of = |ndc: &str, npi: &str, written: Date, days: Option<u32>| RxFacts {
            patient_token: token.clone(),
            ndc: ph::ndc_forms(ndc)
                .first()
                .cloned()
                .unwrap_or_else(|| ndc.to_string()),
            prescriber_npi: npi.to_string(),
            prescriber_dea: None,
            prescriber_family: None,
            written_on: written,
            controlled,
            days_supply: days,
            stated_days: None,
        };
        let prior: Vec<PriorFill> = history
            .entries
            .iter()
            .filter_map(|e| {
                let written = Date::parse_iso(&e.written_on).ok()?;
                let filled = e
                    .filled_on
                    .as_deref()
                    .and_then(|d| Date::parse_iso(d).ok())
                    .unwrap_or(written);
                Some(PriorFill {
                    rx: facts_of(&e.ndc, &e.prescriber_npi, written, e.days_supply),
                    filled_on: filled,
                })
            })
            .collect();
        let mut facts = facts_of(&rx.ndc, &rx.prescriber.npi, rx.authored_on, rx.days_supply);
        facts.prescriber_dea = rx.prescriber.dea.clone();
        facts.prescriber_family = Some(rx.prescriber.family.clone());
        let signals: Vec<SignalView> = fraud::signals(&facts, &prior, today())
            .into_iter()
            .map(|s| SignalView {
                rule: s.rule.to_string(),
                reason: s.reason,
            })
            .collect();
        let rx_token = hex::encode(random_hash().0);
        let salt = random_hash();
        let phi = IntakePhi {
            salt: hex::encode(salt.0),
            source: source.into(),
            patient: PatientJson {
                family: rx.patient.family.clone(),
                given: rx.patient.given.clone(),
                birth_date: rx.patient.birth_date.clone(),
                address: rx.patient.address.clone(),
            },
            prescriber: PrescriberJson {
                npi: rx.prescriber.npi.clone(),
                dea: rx.prescriber.dea.clone(),
                family: rx.prescriber.family.clone(),
            },
            written_on: rx.authored_on.iso(),
            directions: rx.sig_text.clone(),
            sig: rx.sig.as_ref().ok().map(sig_json),
            sig_problem: rx.sig.as_ref().err().map(|e| e.reason.clone()),
        };
        let phi_bytes = serde_json::to_vec(&phi).map_err(internal_error)?;
        let commitment = commit_confidential(&salt.0, &phi_bytes);
        vault
            .put(&token, &format!("rx-{rx_token}"), &phi_bytes)
            .map_err(internal_error)?;
        history.entries.push(HistoryEntry {
            rx_token: rx_token.clone(),
            ndc: rx.ndc.clone(),
            prescriber_npi: rx.prescriber.npi.clone(),
            written_on: rx.authored_on.iso(),
            days_supply: rx.days_supply,
            filled_on: None,
        });
        let history_bytes = serde_json::to_vec(&history).map_err(internal_error)?;
        vault
            .put(&token, "history", &history_bytes)
            .map_err(internal_error)?;
        let view = IntakeView {
            rx_token,
            patient_token: token,
            status: "pending_review".into(),
            ndc: rx.ndc.clone(),
            gtin: gtin.to_string(),
            product,
            quantity: rx.quantity_milli as f64 / 1000.0,
            days_supply: rx.days_supply,
            refills: rx.refills,
            controlled,
            directions_understood: rx.sig.is_ok(),
            signals,
            created_ms: now_s() * 1000,
            decided_by: None,
            decision_reason: None,
            dispensed: Vec::new(),
            tx_hashes: Vec::new(),
            intake_commitment: commitment.to_string(),
        };
        save_intake(&worker, &view)?;
        Ok(view)
    })
    .await;
    match result {
        Ok(view) => (StatusCode::CREATED, Json(view)).into_response(),
        Err(response) => response,
    }
}

#[derive(Deserialize)]
pub(crate) struct ListParams {
    status: Option<String>,
}

/// `GET /v1/rx/intakes`: this node's intakes (no PHI), newest first.
#[utoipa::path(get, path = "/v1/rx/intakes", tag = "pharmacy", security(("bearer" = [])),
    params(("status" = Option<String>, Query, description = "pending_review | approved | rejected | dispensed")),
    responses((status = 200, body = [IntakeView])))]
pub(crate) async fn intakes<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Query(params): Query<ListParams>,
) -> Response {
    if let Err(response) =
        signing_caller(&node, &headers, &[Role::Dispenser], "the intake list").await
    {
        return response;
    }
    let rows = match node.local_scan(INTAKE_PREFIX) {
        Ok(rows) => rows,
        Err(e) => return internal_error(e),
    };
    let mut list: Vec<IntakeView> = rows
        .iter()
        .filter_map(|(_, v)| serde_json::from_slice(v).ok())
        .filter(|v: &IntakeView| params.status.as_ref().is_none_or(|s| &v.status == s))
        .collect();
    list.sort_by(|a, b| b.created_ms.cmp(&a.created_ms));
    Json(list).into_response()
}

/// `GET /v1/rx/intakes/{rx}`: the full prescription with its PHI, for the pharmacist. Needs
/// `X-PHI-Purpose`; the read is audited before decryption.
#[utoipa::path(get, path = "/v1/rx/intakes/{rx}", tag = "pharmacy", security(("bearer" = [])),
    params(("rx" = String, Path, description = "Rx token"), ("X-PHI-Purpose" = String, Header, description = "Why PHI is read (audited)")),
    responses((status = 200, description = "The intake and its PHI"), (status = 400, description = "No purpose"), (status = 404, description = "Unknown prescription")))]
pub(crate) async fn intake_record<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Path(rx): Path<String>,
) -> Response {
    let (caller, _, _) = match signing_caller(
        &node,
        &headers,
        &[Role::Dispenser],
        "reading a prescription",
    )
    .await
    {
        Ok(found) => found,
        Err(response) => return response,
    };
    let who = match accessor(&caller, &headers) {
        Ok(who) => who,
        Err(response) => return response,
    };
    let vault = match vault_of(&node) {
        Ok(vault) => vault,
        Err(response) => return response,
    };
    let worker = node.clone();
    let result = blocking(move || {
        let view = load_intake(&worker, &rx)?;
        let phi = vault
            .get(&view.patient_token, &format!("rx-{rx}"), &who)
            .map_err(internal_error)?
            .ok_or_else(|| {
                problem(
                    StatusCode::GONE,
                    "PHI shredded",
                    "the patient's data was crypto-shredded",
                    None,
                )
            })?;
        let phi: Value = serde_json::from_slice(&phi).map_err(internal_error)?;
        Ok(json!({"intake": view, "phi": phi}))
    })
    .await;
    match result {
        Ok(body) => Json(body).into_response(),
        Err(response) => response,
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    pub approve: bool,
    /// Why it was rejected (required then; never PHI: it goes on the ledger).
    #[serde(default)]
    pub reason: Option<String>,
    /// The pharmacist (recorded with the node's intake, not on the ledger).
    pub pharmacist: String,
}

/// `POST /v1/rx/intakes/{rx}/decision`: the pharmacist approves or rejects; the ledger records
/// tokens, NDC, quantities, signals and the decision.
#[utoipa::path(post, path = "/v1/rx/intakes/{rx}/decision", tag = "pharmacy", security(("bearer" = [])),
    params(("rx" = String, Path, description = "Rx token")), request_body = DecisionRequest,
    responses((status = 200, body = IntakeView), (status = 409, description = "Already decided, or refused by the ledger (code names the rule)")))]
pub(crate) async fn decide<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Path(rx): Path<String>,
    body: Bytes,
) -> Response {
    let (_, _, signer) = match signing_caller(
        &node,
        &headers,
        &[Role::Dispenser],
        "a prescription decision",
    )
    .await
    {
        Ok(found) => found,
        Err(response) => return response,
    };
    let request: DecisionRequest = match parse_json(&body, "a decision") {
        Ok(r) => r,
        Err(response) => return response,
    };
    if request.pharmacist.trim().is_empty() {
        return bad_request("pharmacist", "who decides is required");
    }
    let reason = request.reason.clone().unwrap_or_default();
    if !request.approve && reason.trim().is_empty() {
        return bad_request("reason", "a rejection needs a reason");
    }
    let mut view = match load_intake(&node, &rx) {
        Ok(view) => view,
        Err(response) => return response,
    };
    if view.status != "pending_review" {
        return problem(
            StatusCode::CONFLICT,
            "Already decided",
            format!("prescription {rx} is {}", view.status),
            Some("rx"),
        );
    }
    let (Ok(rx_hash), Ok(commitment)) = (
        parse_hash("rx", &view.rx_token),
        parse_hash("intake_commitment", &view.intake_commitment),
    ) else {
        return internal_error("a stored intake has a malformed token");
    };
    let decision = RxDecision {
        rx_token: rx_hash,
        patient_token: ledger_patient_token(&view.patient_token),
        ndc: view.ndc.clone(),
        quantity_milli: (view.quantity * 1000.0).round() as u64,
        days_supply: view.days_supply,
        refills: view.refills,
        controlled: view.controlled,
        approved: request.approve,
        signals: view.signals.iter().map(|s| s.rule.clone()).collect(),
        reason: reason.clone(),
        intake_commitment: commitment,
    };
    let job = match commit(
        &node,
        signer,
        vec![Command::DecidePrescription { decision }],
    )
    .await
    {
        Ok(job) => job,
        Err(response) => return response,
    };
    if let Some(response) = rejected(&job) {
        return response;
    }
    view.status = if request.approve {
        "approved"
    } else {
        "rejected"
    }
    .into();
    view.decided_by = Some(request.pharmacist);
    view.decision_reason = request.reason;
    view.tx_hashes.extend(tx_hashes(&job));
    match save_intake(&node, &view) {
        Ok(()) => Json(view).into_response(),
        Err(response) => response,
    }
}

// ---- inventory

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct OnHandView {
    pub epc: String,
    pub gtin: String,
    pub ndc: String,
    pub product: String,
    pub lot: String,
    pub expiry: String,
    pub status: String,
    pub recalled: bool,
    pub expired: bool,
    pub reserved_for: Option<String>,
    pub reserved_until_ms: Option<u64>,
    /// Active, not recalled, not expired, not reserved.
    pub dispensable: bool,
}

/// The caller's on-hand packages (of one product when `gtin` is given), first-expiry first
/// within a product.
pub(crate) fn on_hand(
    store: &dyn LedgerRead,
    gln: &Gln,
    gtin: Option<&Gtin>,
    now_ms: u64,
    limit: usize,
) -> Result<Vec<OnHandView>, Response> {
    let prefix = match gtin {
        Some(g) => [&gln.0[..], &g.0[..]].concat(),
        None => gln.0.to_vec(),
    };
    let rows = store
        .index_scan(ON_HAND_INDEX, &prefix, limit)
        .map_err(internal_error)?;
    let state = LedgerState::new(store);
    let today = Date::from_unix_days((now_ms / 86_400_000) as i64);
    let mut products: BTreeMap<Gtin, (String, String)> = BTreeMap::new();
    let mut recalls: BTreeMap<(Gtin, String), bool> = BTreeMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for (key, _) in rows {
        let Some(epc) = key.get(31..).and_then(Epc::from_key_bytes) else {
            continue;
        };
        let Some(item) = custody::item(&state, &epc) else {
            continue;
        };
        let ItemKind::Package { gtin, lot, expiry } = &item.kind else {
            continue;
        };
        let (ndc, name) = products
            .entry(*gtin)
            .or_insert_with(|| {
                custody::product(&state, gtin)
                    .map(|p| {
                        (
                            p.master.ndc,
                            format!("{} {}", p.master.name, p.master.strength),
                        )
                    })
                    .unwrap_or_default()
            })
            .clone();
        let recalled = *recalls
            .entry((*gtin, lot.clone()))
            .or_insert_with(|| custody::recall(&state, gtin, lot).is_some());
        let reservation = ph::reservation(&state, &epc).filter(|r| r.expires_ms > now_ms);
        let expired = *expiry < today;
        out.push(OnHandView {
            epc: epc.to_string(),
            gtin: gtin.to_string(),
            ndc,
            product: name,
            lot: lot.clone(),
            expiry: expiry.iso(),
            status: item.status.name().into(),
            recalled,
            expired,
            reserved_for: reservation.as_ref().map(|r| r.order.to_string()),
            reserved_until_ms: reservation.as_ref().map(|r| r.expires_ms),
            dispensable: item.status == Status::Active
                && item.parent.is_none()
                && !recalled
                && !expired
                && reservation.is_none(),
        });
    }
    if let Some(e) = state.take_error() {
        return Err(internal_error(e));
    }
    Ok(out)
}

/// First-expiry-first-out picks of `count` dispensable packages (or reserved for `order`).
pub(crate) fn fefo_pick(rows: &[OnHandView], count: usize, order: Option<&str>) -> Vec<String> {
    rows.iter()
        .filter(|r| {
            r.dispensable
                || (r.status == "active"
                    && !r.recalled
                    && !r.expired
                    && order.is_some()
                    && r.reserved_for.as_deref() == order)
        })
        .take(count)
        .map(|r| r.epc.clone())
        .collect()
}

#[derive(Deserialize)]
pub(crate) struct InventoryParams {
    gtin: Option<String>,
    ndc: Option<String>,
}

/// `GET /v1/inventory`: the caller's on-hand packages by product, lot, SGTIN and expiry.
#[utoipa::path(get, path = "/v1/inventory", tag = "pharmacy", security(("bearer" = [])),
    params(("gtin" = Option<String>, Query, description = "One product"), ("ndc" = Option<String>, Query, description = "One product, by NDC")),
    responses((status = 200, description = "{items: [...], by_lot: [...]}")))]
pub(crate) async fn inventory<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Query(params): Query<InventoryParams>,
) -> Response {
    let (caller, store) = match caller_of(&node, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let result = blocking(move || {
        let state = LedgerState::new(&*store);
        let gtin = match (&params.gtin, &params.ndc) {
            (Some(g), _) => Some(Gtin::parse(g).map_err(|r| bad_request("gtin", r.message))?),
            (None, Some(ndc)) => Some(ph::product_by_ndc(&state, ndc).ok_or_else(|| {
                bad_request("ndc", format!("NDC {ndc} is not in the product master data"))
            })?),
            (None, None) => None,
        };
        let rows = on_hand(
            &*store,
            &caller.organization.gln(),
            gtin.as_ref(),
            now_s() * 1000,
            INVENTORY_ROWS_MAX,
        )?;
        let mut by_lot: BTreeMap<(String, String, String), (usize, usize)> = BTreeMap::new();
        for r in &rows {
            let entry = by_lot
                .entry((r.ndc.clone(), r.lot.clone(), r.expiry.clone()))
                .or_default();
            entry.0 += 1;
            entry.1 += usize::from(r.dispensable);
        }
        let lots: Vec<Value> = by_lot
            .into_iter()
            .map(|((ndc, lot, expiry), (on_hand, dispensable))| {
                json!({"ndc": ndc, "lot": lot, "expiry": expiry, "on_hand": on_hand, "dispensable": dispensable})
            })
            .collect();
        Ok(json!({"holder": caller.organization.gln().to_string(), "items": rows, "by_lot": lots}))
    })
    .await;
    match result {
        Ok(body) => Json(body).into_response(),
        Err(response) => response,
    }
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DispenseRequest {
    /// A specific package; by default the first-expiry dispensable one.
    #[serde(default)]
    pub epc: Option<String>,
}

/// `POST /v1/rx/intakes/{rx}/dispense`: picks a package first-expiry-first-out (refusing
/// recalled, quarantined, expired and reserved ones) and records the dispense against the Rx.
#[utoipa::path(post, path = "/v1/rx/intakes/{rx}/dispense", tag = "pharmacy", security(("bearer" = [])),
    params(("rx" = String, Path, description = "Rx token")), request_body = DispenseRequest,
    responses((status = 200, description = "The package dispensed"), (status = 409, description = "Not approved, nothing dispensable, or refused by the ledger (code names the rule)")))]
pub(crate) async fn dispense<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Path(rx): Path<String>,
    body: Bytes,
) -> Response {
    let (caller, store, signer) =
        match signing_caller(&node, &headers, &[Role::Dispenser], "dispensing").await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let request: DispenseRequest = if body.is_empty() {
        DispenseRequest::default()
    } else {
        match parse_json(&body, "a dispense request") {
            Ok(r) => r,
            Err(response) => return response,
        }
    };
    let mut view = match load_intake(&node, &rx) {
        Ok(view) => view,
        Err(response) => return response,
    };
    if view.status != "approved" {
        return problem(
            StatusCode::CONFLICT,
            "Not dispensable",
            format!(
                "prescription {rx} is {}: only an approved one is dispensed",
                view.status
            ),
            Some("rx"),
        );
    }
    let Ok(rx_hash) = parse_hash("rx", &view.rx_token) else {
        return internal_error("a stored intake has a malformed token");
    };
    let gln = caller.organization.gln();
    let gtin_text = view.gtin.clone();
    let rx_text = view.rx_token.clone();
    let picked = blocking(move || {
        let gtin = Gtin::parse(&gtin_text).map_err(|r| internal_error(r.message))?;
        let rows = on_hand(&*store, &gln, Some(&gtin), now_s() * 1000, INVENTORY_ROWS_MAX)?;
        match request.epc {
            Some(epc) => {
                let row = rows.iter().find(|r| r.epc == epc).ok_or_else(|| {
                    bad_request("epc", format!("{epc} is not on hand here for this product"))
                })?;
                Ok(row.clone())
            }
            None => {
                let pick = fefo_pick(&rows, 1, Some(&rx_text));
                rows.iter()
                    .find(|r| pick.first() == Some(&r.epc))
                    .cloned()
                    .ok_or_else(|| {
                        problem(
                            StatusCode::CONFLICT,
                            "Nothing dispensable",
                            format!(
                                "no package of {gtin_text} on hand is active, unexpired, not recalled and not reserved ({} on hand)",
                                rows.len()
                            ),
                            None,
                        )
                    })
            }
        }
    })
    .await;
    let row = match picked {
        Ok(row) => row,
        Err(response) => return response,
    };
    let command = Command::DispensePrescription {
        rx_token: rx_hash,
        items: vec![Epc::new(row.epc.clone())],
    };
    let job = match commit(&node, signer, vec![command]).await {
        Ok(job) => job,
        Err(response) => return response,
    };
    if let Some(response) = rejected(&job) {
        return response;
    }
    view.status = "dispensed".into();
    view.dispensed.push(row.epc.clone());
    view.tx_hashes.extend(tx_hashes(&job));
    if let Err(response) = save_intake(&node, &view) {
        return response;
    }
    // The fill goes into the patient's history (in the vault) for the early-refill rule.
    if let Some(vault) = node.vault() {
        let token = view.patient_token.clone();
        let rx_token = view.rx_token.clone();
        let by = PhiAccessor {
            who: format!("{} dispensing service", caller.organization.gln()),
            purpose: "dispensing record".into(),
        };
        let _ = tokio::task::spawn_blocking(move || -> Result<(), String> {
            let mut history: History = match vault.get(&token, "history", &by)? {
                Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| e.to_string())?,
                None => History::default(),
            };
            for entry in history
                .entries
                .iter_mut()
                .filter(|e| e.rx_token == rx_token)
            {
                entry.filled_on = Some(today().iso());
            }
            let bytes = serde_json::to_vec(&history).map_err(|e| e.to_string())?;
            vault.put(&token, "history", &bytes)
        })
        .await;
    }
    Json(json!({
        "rx_token": view.rx_token,
        "epc": row.epc,
        "gtin": row.gtin,
        "lot": row.lot,
        "expiry": row.expiry,
        "tx_hashes": tx_hashes(&job),
    }))
    .into_response()
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    /// 64 hex digits; a random one by default. An Rx token reserves for that prescription.
    #[serde(default)]
    pub order: Option<String>,
    /// The packages; or `gtin`/`ndc` and `count` for first-expiry picks.
    #[serde(default)]
    pub items: Vec<String>,
    #[serde(default)]
    pub gtin: Option<String>,
    #[serde(default)]
    pub ndc: Option<String>,
    #[serde(default)]
    pub count: Option<usize>,
    /// Seconds until the reservation lapses (default 900, at most 86,400).
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

/// `POST /v1/inventory/reservations`: holds packages for a pending order until a timeout.
#[utoipa::path(post, path = "/v1/inventory/reservations", tag = "pharmacy", security(("bearer" = [])),
    request_body = ReserveRequest,
    responses((status = 200, description = "{order, items, expires_ms}"), (status = 409, description = "Refused by the ledger (code names the rule)")))]
pub(crate) async fn reserve<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (caller, store, signer) = match signing_caller(
        &node,
        &headers,
        &[
            Role::Dispenser,
            Role::Wholesaler,
            Role::Manufacturer,
            Role::Repackager,
        ],
        "reservations",
    )
    .await
    {
        Ok(found) => found,
        Err(response) => return response,
    };
    let request: ReserveRequest = match parse_json(&body, "a reservation") {
        Ok(r) => r,
        Err(response) => return response,
    };
    let ttl = request.ttl_seconds.unwrap_or(900);
    if ttl == 0 || ttl > 86_400 {
        return bad_request("ttl_seconds", "1 to 86,400 seconds");
    }
    let order = match &request.order {
        Some(text) => match parse_hash("order", text) {
            Ok(h) => h,
            Err(response) => return response,
        },
        None => random_hash(),
    };
    let gln = caller.organization.gln();
    let items = if !request.items.is_empty() {
        request.items.clone()
    } else {
        let count = request.count.unwrap_or(1);
        if count == 0 || count > 1_000 {
            return bad_request("count", "1 to 1,000 packages");
        }
        let (gtin, ndc) = (request.gtin.clone(), request.ndc.clone());
        let picked = blocking(move || {
            let state = LedgerState::new(&*store);
            let gtin = match (gtin, ndc) {
                (Some(g), _) => Gtin::parse(&g).map_err(|r| bad_request("gtin", r.message))?,
                (None, Some(ndc)) => ph::product_by_ndc(&state, &ndc).ok_or_else(|| {
                    bad_request(
                        "ndc",
                        format!("NDC {ndc} is not in the product master data"),
                    )
                })?,
                (None, None) => {
                    return Err(bad_request(
                        "items",
                        "name the items, or a gtin or ndc and a count",
                    ))
                }
            };
            let rows = on_hand(
                &*store,
                &gln,
                Some(&gtin),
                now_s() * 1000,
                INVENTORY_ROWS_MAX,
            )?;
            let pick = fefo_pick(&rows, count, None);
            if pick.len() < count {
                return Err(problem(
                    StatusCode::CONFLICT,
                    "Not enough on hand",
                    format!(
                        "{} of {count} dispensable packages of {gtin} on hand",
                        pick.len()
                    ),
                    Some("count"),
                ));
            }
            Ok(pick)
        })
        .await;
        match picked {
            Ok(items) => items,
            Err(response) => return response,
        }
    };
    let expires_ms = now_s() * 1000 + ttl * 1000;
    let command = Command::Reserve {
        order,
        items: items.iter().map(|e| Epc::new(e.clone())).collect(),
        expires_ms,
    };
    let job = match commit(&node, signer, vec![command]).await {
        Ok(job) => job,
        Err(response) => return response,
    };
    if let Some(response) = rejected(&job) {
        return response;
    }
    Json(json!({"order": order.to_string(), "items": items, "expires_ms": expires_ms, "tx_hashes": tx_hashes(&job)}))
        .into_response()
}

/// `DELETE /v1/inventory/reservations/{order}`.
#[utoipa::path(delete, path = "/v1/inventory/reservations/{order}", tag = "pharmacy", security(("bearer" = [])),
    params(("order" = String, Path, description = "Order id (64 hex digits)")),
    responses((status = 200, description = "Released"), (status = 409, description = "Refused by the ledger (code names the rule)")))]
pub(crate) async fn release<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Path(order): Path<String>,
) -> Response {
    let (_, _, signer) = match signing_caller(
        &node,
        &headers,
        &[
            Role::Dispenser,
            Role::Wholesaler,
            Role::Manufacturer,
            Role::Repackager,
        ],
        "reservations",
    )
    .await
    {
        Ok(found) => found,
        Err(response) => return response,
    };
    let order = match parse_hash("order", &order) {
        Ok(h) => h,
        Err(response) => return response,
    };
    let job = match commit(&node, signer, vec![Command::ReleaseReservation { order }]).await {
        Ok(job) => job,
        Err(response) => return response,
    };
    if let Some(response) = rejected(&job) {
        return response;
    }
    Json(json!({"order": order.to_string(), "released": true, "tx_hashes": tx_hashes(&job)}))
        .into_response()
}

// ---- cold chain

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StorageRequest {
    pub min_celsius: f64,
    pub max_celsius: f64,
    pub max_excursion_minutes: u32,
    pub max_cumulative_minutes: u32,
}

fn centi(field: &str, celsius: f64) -> Result<i32, Response> {
    if !celsius.is_finite() || !(-100.0..=100.0).contains(&celsius) {
        return Err(bad_request(
            field,
            format!("{celsius} is not a temperature in -100..100 °C"),
        ));
    }
    Ok((celsius * 100.0).round() as i32)
}

/// `PUT /v1/products/{gtin}/storage`: the product owner's storage requirement (e.g. 2–8 °C).
#[utoipa::path(put, path = "/v1/products/{gtin}/storage", tag = "pharmacy", security(("bearer" = [])),
    params(("gtin" = String, Path, description = "GTIN-14")), request_body = StorageRequest,
    responses((status = 200, description = "Recorded"), (status = 409, description = "Refused by the ledger (code names the rule)")))]
pub(crate) async fn storage<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Path(gtin): Path<String>,
    body: Bytes,
) -> Response {
    let (_, _, signer) = match signing_caller(
        &node,
        &headers,
        &[Role::Manufacturer, Role::Repackager],
        "storage requirements",
    )
    .await
    {
        Ok(found) => found,
        Err(response) => return response,
    };
    let gtin = match Gtin::parse(&gtin) {
        Ok(g) => g,
        Err(r) => return bad_request("gtin", r.message),
    };
    let request: StorageRequest = match parse_json(&body, "a storage requirement") {
        Ok(r) => r,
        Err(response) => return response,
    };
    let requirement = match (
        centi("min_celsius", request.min_celsius),
        centi("max_celsius", request.max_celsius),
    ) {
        (Ok(min_centi_c), Ok(max_centi_c)) => StorageRequirement {
            min_centi_c,
            max_centi_c,
            max_excursion_minutes: request.max_excursion_minutes,
            max_cumulative_minutes: request.max_cumulative_minutes,
        },
        (Err(response), _) | (_, Err(response)) => return response,
    };
    let job = match commit(
        &node,
        signer,
        vec![Command::SetStorageRequirement { gtin, requirement }],
    )
    .await
    {
        Ok(job) => job,
        Err(response) => return response,
    };
    if let Some(response) = rejected(&job) {
        return response;
    }
    Json(json!({"gtin": gtin.to_string(), "tx_hashes": tx_hashes(&job)})).into_response()
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetryRequest {
    /// The data logger or sensor id.
    pub sensor: String,
    /// Packages or containers (EPC URNs) the readings cover.
    pub subjects: Vec<String>,
    pub readings: Vec<ReadingJson>,
}

#[derive(Clone, Copy, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadingJson {
    /// Unix milliseconds.
    pub at_ms: u64,
    pub celsius: f64,
}

/// What the node keeps of a batch (the readings stay off the ledger).
#[derive(Serialize, Deserialize)]
struct StoredBatch {
    sensor: String,
    subjects: Vec<String>,
    by: String,
    received_ms: u64,
    readings: Vec<(u64, i32)>,
}

/// `POST /v1/telemetry`: a batch of temperature readings for packages or containers the caller
/// holds. The readings are stored by this node, their hash anchored on the ledger; excursions
/// against the products' storage requirements quarantine the packages at once.
#[utoipa::path(post, path = "/v1/telemetry", tag = "pharmacy", security(("bearer" = [])),
    request_body = TelemetryRequest,
    responses((status = 200, description = "{batch_hash, readings, minutes_out, excursions, quarantined}"), (status = 400, description = "Every bad reading with its index")))]
pub(crate) async fn telemetry<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (caller, store, signer) = match signing_caller(
        &node,
        &headers,
        &[
            Role::Manufacturer,
            Role::Repackager,
            Role::Wholesaler,
            Role::Dispenser,
            Role::Logistics,
        ],
        "telemetry",
    )
    .await
    {
        Ok(found) => found,
        Err(response) => return response,
    };
    let worker = node.clone();
    let planned = blocking(move || {
        let request: TelemetryRequest = parse_json(&body, "a telemetry batch")?;
        if request.sensor.trim().is_empty() || request.sensor.len() > 128 {
            return Err(bad_request("sensor", "1 to 128 characters"));
        }
        if request.subjects.is_empty() || request.subjects.len() > 1_000 {
            return Err(bad_request("subjects", "1 to 1,000 EPCs"));
        }
        let mut readings = Vec::with_capacity(request.readings.len());
        let mut errors = Vec::new();
        for (i, r) in request.readings.iter().enumerate() {
            if !r.celsius.is_finite() {
                errors.push(json!({"pointer": format!("/readings/{i}/celsius"), "reason": "not a number"}));
                continue;
            }
            readings.push(Reading {
                at_ms: r.at_ms,
                centi_c: (r.celsius * 100.0).round().clamp(-1e6, 1e6) as i32,
            });
        }
        for e in coldchain::check_readings(&readings) {
            let pointer = match e.index {
                Some(i) => format!("/readings/{i}/{}", if e.field == "at" { "at_ms" } else { "celsius" }),
                None => "/readings".to_string(),
            };
            errors.push(json!({"pointer": pointer, "reason": e.reason}));
        }
        if !errors.is_empty() {
            return Err(problem_with_errors(
                StatusCode::BAD_REQUEST,
                "Invalid readings",
                format!("{} problem(s) in the batch", errors.len()),
                Some("readings"),
                errors,
            ));
        }
        let subjects: Vec<Epc> = request.subjects.iter().map(|s| Epc::new(s.clone())).collect();
        let state = LedgerState::new(&*store);
        let expanded = custody::expand(&state, &subjects)
            .map_err(|r| bad_request("subjects", r.message))?;
        // Evaluate per subject (a container's contents share its readings).
        let mut excursion_items = Vec::new();
        let mut excursions: Vec<coldchain::Excursion> = Vec::new();
        let mut minutes_out = 0;
        let mut quarantined = Vec::new();
        for top in &subjects {
            for (epc, it, via) in &expanded {
                if via.as_ref().unwrap_or(epc) != top {
                    continue;
                }
                let ItemKind::Package { gtin, .. } = &it.kind else {
                    continue;
                };
                let Some(requirement) = ph::requirement(&state, gtin) else {
                    continue;
                };
                let prior = ph::cold_chain(&state, epc).map(|r| r.minutes_out).unwrap_or(0);
                let eval = coldchain::evaluate(&requirement, &readings, prior);
                minutes_out = minutes_out.max(eval.minutes_out());
                if !eval.excursions.is_empty() {
                    if !excursion_items.contains(top) {
                        excursion_items.push(top.clone());
                    }
                    quarantined.push(epc.to_string());
                    for e in eval.excursions {
                        if !excursions.iter().any(|x| x.rule == e.rule) {
                            excursions.push(e);
                        }
                    }
                }
            }
        }
        let batch_hash = coldchain::batch_hash(&request.sensor, &subjects, &readings);
        let stored = StoredBatch {
            sensor: request.sensor.clone(),
            subjects: request.subjects.clone(),
            by: caller.organization.gln().to_string(),
            received_ms: now_s() * 1000,
            readings: readings.iter().map(|r| (r.at_ms, r.centi_c)).collect(),
        };
        // Durable before the anchor is submitted: an acknowledged batch is never lost.
        worker
            .local_put(
                &format!("{TELEMETRY_PREFIX}{batch_hash}"),
                &serde_json::to_vec(&stored).map_err(internal_error)?,
            )
            .map_err(internal_error)?;
        let first = readings.first().map(|r| r.at_ms).unwrap_or(0);
        let last = readings.last().map(|r| r.at_ms).unwrap_or(0);
        let mut commands = vec![Command::AnchorTelemetry {
            anchor: TelemetryAnchor {
                batch_hash,
                subjects: subjects.clone(),
                sensor: request.sensor.clone(),
                readings: readings.len() as u32,
                first_ms: first,
                last_ms: last,
                min_centi_c: readings.iter().map(|r| r.centi_c).min().unwrap_or(0),
                max_centi_c: readings.iter().map(|r| r.centi_c).max().unwrap_or(0),
                minutes_out,
            },
        }];
        if let Some(worst) = excursions.iter().max_by_key(|e| e.minutes_out) {
            commands.push(Command::RecordExcursion {
                excursion: ExcursionReport {
                    batch_hash,
                    items: excursion_items,
                    rule: worst.rule.to_string(),
                    started_ms: worst.started_ms,
                    minutes_out: worst.minutes_out,
                    detail: worst.detail.chars().take(200).collect(),
                },
            });
        }
        let summary = json!({
            "batch_hash": batch_hash.to_string(),
            "readings": readings.len(),
            "minutes_out": minutes_out,
            "excursions": excursions.iter().map(|e| json!({"rule": e.rule, "started_ms": e.started_ms, "minutes_out": e.minutes_out, "detail": e.detail})).collect::<Vec<_>>(),
            "quarantined": quarantined,
        });
        Ok((commands, summary))
    })
    .await;
    let (commands, mut summary) = match planned {
        Ok(planned) => planned,
        Err(response) => return response,
    };
    let job = match commit(&node, signer, commands).await {
        Ok(job) => job,
        Err(response) => return response,
    };
    if let Some(response) = rejected(&job) {
        return response;
    }
    summary["tx_hashes"] = json!(tx_hashes(&job));
    Json(summary).into_response()
}

/// `GET /v1/telemetry/{batch}`: the raw readings of a batch this node received (for the
/// organization that sent them and regulators), to check against the anchored hash.
#[utoipa::path(get, path = "/v1/telemetry/{batch}", tag = "pharmacy", security(("bearer" = [])),
    params(("batch" = String, Path, description = "Batch hash (64 hex digits)")),
    responses((status = 200, description = "The batch"), (status = 404, description = "Not on this node")))]
pub(crate) async fn telemetry_batch<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Path(batch): Path<String>,
) -> Response {
    let (caller, _) = match caller_of(&node, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if let Err(response) = parse_hash("batch", &batch) {
        return response;
    }
    let bytes = match node.local_get(&format!("{TELEMETRY_PREFIX}{batch}")) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            return problem(
                StatusCode::NOT_FOUND,
                "No such batch",
                format!("batch {batch} is not on this node"),
                Some("batch"),
            )
        }
        Err(e) => return internal_error(e),
    };
    let stored: StoredBatch = match serde_json::from_slice(&bytes) {
        Ok(s) => s,
        Err(e) => return internal_error(e),
    };
    if stored.by != caller.organization.gln().to_string() && !caller.is_regulator() {
        return problem(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "only the sender and regulators read a batch",
            None,
        );
    }
    let readings: Vec<ReadingJson> = stored
        .readings
        .iter()
        .map(|(at_ms, c)| ReadingJson {
            at_ms: *at_ms,
            celsius: f64::from(*c) / 100.0,
        })
        .collect();
    Json(json!({"batch_hash": batch, "sensor": stored.sensor, "subjects": stored.subjects, "by": stored.by, "received_ms": stored.received_ms, "readings": readings})).into_response()
}

// ---- vault administration

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShredRequest {
    pub reason: String,
}

/// `POST /v1/patients/{token}/shred`: crypto-shredding of a patient's data (the ledger keeps
/// only the pseudonymous token, untouched).
#[utoipa::path(post, path = "/v1/patients/{token}/shred", tag = "pharmacy", security(("bearer" = [])),
    params(("token" = String, Path, description = "Vault patient token")), request_body = ShredRequest,
    responses((status = 200, description = "Shredded")))]
pub(crate) async fn shred<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    let (caller, _, _) =
        match signing_caller(&node, &headers, &[Role::Dispenser], "crypto-shredding").await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let request: ShredRequest = match parse_json(&body, "a shred request") {
        Ok(r) => r,
        Err(response) => return response,
    };
    if request.reason.trim().is_empty() {
        return bad_request("reason", "why the data is destroyed is required");
    }
    let vault = match vault_of(&node) {
        Ok(vault) => vault,
        Err(response) => return response,
    };
    let who = PhiAccessor {
        who: format!("{} key {:?}", caller.organization.gln(), caller.key),
        purpose: format!("shred: {}", request.reason.trim()),
    };
    match tokio::task::spawn_blocking(move || vault.shred(&token, &who)).await {
        Ok(Ok(())) => Json(json!({"shredded": true})).into_response(),
        Ok(Err(e)) => bad_request("token", e),
        Err(e) => internal_error(e),
    }
}

#[derive(Deserialize)]
pub(crate) struct AuditParams {
    limit: Option<usize>,
}

/// `GET /v1/phi/audit`: every PHI access (who, when, purpose), newest first.
#[utoipa::path(get, path = "/v1/phi/audit", tag = "pharmacy", security(("bearer" = [])),
    params(("limit" = Option<usize>, Query, description = "At most 10,000")),
    responses((status = 200, body = [PhiAccess])))]
pub(crate) async fn phi_audit<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Query(params): Query<AuditParams>,
) -> Response {
    if let Err(response) =
        signing_caller(&node, &headers, &[Role::Dispenser], "the PHI access log").await
    {
        return response;
    }
    let vault = match vault_of(&node) {
        Ok(vault) => vault,
        Err(response) => return response,
    };
    let limit = params.limit.unwrap_or(1_000).min(10_000);
    match tokio::task::spawn_blocking(move || vault.access_log(limit)).await {
        Ok(Ok(entries)) => Json(entries).into_response(),
        Ok(Err(e)) => internal_error(e),
        Err(e) => internal_error(e),
    }
}
