//! Last-mile dispatch (issue 9): the fulfilment saga and the courier's side.
//!
//! The saga, orchestrated by the pharmacy's node and persisted in its local store after every
//! change (so a node killed mid-saga resumes where it was):
//!
//! | step | action | compensation |
//! |---|---|---|
//! | `open` | `OpenDelivery` on the ledger (the packages, the Rx, the hash of the recipient's one-time code) | `CloseDelivery` |
//! | `reserve` | `Reserve` the packages for the order | `ReleaseReservation` |
//! | `payment` | charge the copay through a [`PaymentProvider`] (idempotent by order) | refund |
//! | `assign` | pick the cheapest available vehicle that fits (cold chain, a human for controlled substances, not excluded) → `AssignCourier` | — |
//! | `deliver` | wait for the courier's `PickUp` and `DeliverToPatient` (the contract checks the code); a `FailDelivery` retries with the same vehicle once, then re-assigns to another | — |
//! | `dispense` | the delivery already dispensed the packages against the Rx; recorded as the last step | — |
//!
//! Every step's outcome is also a `RecordSagaStep` ledger event. A failing step is retried with
//! exponential backoff and full jitter ([`backoff_ms`]); after [`STEP_ATTEMPTS_MAX`] attempts
//! (or at once for a permanent failure such as a declined card; also when no vehicle fits) the
//! compensations of the steps done run in reverse order. A compensation that keeps failing or
//! a delivery that times out moves the saga to the manual-intervention queue
//! (`GET /v1/dispatch/manual`) — nothing is dropped.

use crate::auth::now_s;
use crate::epcis_api::caller_of;
use crate::http::{bad_request, internal_error, parse_json, problem, NodeApi};
use crate::pharmacy::{
    blocking, commit, commit_commands, fefo_pick, on_hand, parse_hash, random_hash, rejected,
    signing_caller, tx_hashes, CommitError, INVENTORY_ROWS_MAX,
};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pharmalink_contracts::contract::command::{DeliveryOrder, VehicleKind, VehicleProfile};
use pharmalink_contracts::contract::{Command, Epc, Gln, LedgerState, Role};
use pharmalink_contracts::custody::dispatch::{
    self as dp, code_hash, DeliveryState, VEHICLE_INDEX,
};
use pharmalink_contracts::custody::pharmacy as ph;
use pharmalink_contracts::route::{haversine_m, GeoPoint};
use pharmalink_ledger::{Hash, LedgerRead, PublicKey};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const SAGA_PREFIX: &str = "saga/";
/// Orders whose saga the runner still has to move (running or compensating): the runner reads
/// these, not every saga the node ever ran. Put when a saga starts or a person sends it back to
/// work; removed by the runner once the saga completes, is compensated or waits for a person.
const ACTIVE_PREFIX: &str = "saga-active/";
const PAYMENT_PREFIX: &str = "payments/";
/// Attempts of one step (or one compensation) before giving up on it.
pub const STEP_ATTEMPTS_MAX: u32 = 4;
/// First retry delay; doubles per attempt up to [`BACKOFF_CAP_MS`].
pub const BACKOFF_BASE_MS: u64 = 250;
pub const BACKOFF_CAP_MS: u64 = 30_000;
/// How long a courier has from assignment to delivery before the order goes to a person.
pub const DELIVERY_TIMEOUT_MS: u64 = 4 * 3_600_000;
/// How long the saga waits for its commands to commit before trying again later.
const SAGA_COMMIT_WAIT: Duration = Duration::from_secs(10);
const RESERVATION_MS: u64 = 23 * 3_600_000;
/// Held while an order picks its packages and is saved (see `create`).
static PLACING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Delay before retry `attempt` (1-based): exponential, capped, with full jitter in its upper
/// half (`random` is any 64-bit value).
pub fn backoff_ms(attempt: u32, random: u64) -> u64 {
    let exp = BACKOFF_BASE_MS.saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(BACKOFF_CAP_MS);
    capped / 2 + random % (capped / 2 + 1)
}

// ---- payments

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentError {
    /// Worth retrying (a timeout, a 503) rather than final (declined).
    pub transient: bool,
    pub reason: String,
}

/// Where copays are collected. Both calls are idempotent: `charge` by `key` (the order),
/// `refund` by payment id.
pub trait PaymentProvider: Send + Sync {
    fn charge(&self, key: &str, cents: u64) -> Result<String, PaymentError>;
    fn refund(&self, payment_id: &str) -> Result<(), PaymentError>;
}

/// A sandbox provider, persisted in the node's local store, with failures chosen by amount
/// (as card networks' test numbers): a copay of **402.00** is declined; **503.00** fails
/// transiently on its first two attempts; **504.00** is charged but its refund always fails.
/// Every other amount succeeds.
pub struct SandboxPayments<N: NodeApi> {
    node: N,
    lock: std::sync::Mutex<()>,
}

#[derive(Serialize, Deserialize, Default)]
struct SandboxRecord {
    cents: u64,
    attempts: u32,
    payment_id: Option<String>,
    refunded: bool,
}

impl<N: NodeApi> SandboxPayments<N> {
    pub fn new(node: N) -> SandboxPayments<N> {
        SandboxPayments {
            node,
            lock: std::sync::Mutex::new(()),
        }
    }

    fn load(&self, key: &str) -> Result<SandboxRecord, PaymentError> {
        let transient = |e: String| PaymentError {
            transient: true,
            reason: e,
        };
        match self
            .node
            .local_get(&format!("{PAYMENT_PREFIX}{key}"))
            .map_err(transient)?
        {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| transient(e.to_string())),
            None => Ok(SandboxRecord::default()),
        }
    }

    fn save(&self, key: &str, record: &SandboxRecord) -> Result<(), PaymentError> {
        let bytes = serde_json::to_vec(record).map_err(|e| PaymentError {
            transient: true,
            reason: e.to_string(),
        })?;
        self.node
            .local_put(&format!("{PAYMENT_PREFIX}{key}"), &bytes)
            .map_err(|e| PaymentError {
                transient: true,
                reason: e,
            })
    }
}

impl<N: NodeApi> PaymentProvider for SandboxPayments<N> {
    fn charge(&self, key: &str, cents: u64) -> Result<String, PaymentError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut record = self.load(key)?;
        if let Some(id) = &record.payment_id {
            return Ok(id.clone());
        }
        record.cents = cents;
        record.attempts += 1;
        let outcome = match cents {
            40_200 => Err(PaymentError {
                transient: false,
                reason: "card declined (sandbox amount 402.00)".into(),
            }),
            50_300 if record.attempts <= 2 => Err(PaymentError {
                transient: true,
                reason: format!(
                    "provider unavailable (sandbox amount 503.00, attempt {})",
                    record.attempts
                ),
            }),
            _ => {
                let id = format!("sbx_{key}");
                record.payment_id = Some(id.clone());
                Ok(id)
            }
        };
        self.save(key, &record)?;
        outcome
    }

    fn refund(&self, payment_id: &str) -> Result<(), PaymentError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let key = payment_id.trim_start_matches("sbx_");
        let mut record = self.load(key)?;
        if record.cents == 50_400 {
            return Err(PaymentError {
                transient: true,
                reason: "refund failed (sandbox amount 504.00)".into(),
            });
        }
        record.refunded = true;
        self.save(key, &record)
    }
}

// ---- the saga

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Open,
    Reserve,
    Payment,
    Assign,
    Deliver,
    Dispense,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Open => "open",
            Step::Reserve => "reserve",
            Step::Payment => "payment",
            Step::Assign => "assign",
            Step::Deliver => "deliver",
            Step::Dispense => "dispense",
        }
    }

    fn next(self) -> Option<Step> {
        match self {
            Step::Open => Some(Step::Reserve),
            Step::Reserve => Some(Step::Payment),
            Step::Payment => Some(Step::Assign),
            Step::Assign => Some(Step::Deliver),
            Step::Deliver => Some(Step::Dispense),
            Step::Dispense => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SagaStatus {
    Running,
    Compensating,
    Completed,
    Compensated,
    /// Waiting for a person (`POST /v1/dispatch/manual/{order}`).
    Manual,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SagaLog {
    pub time_ms: u64,
    pub step: String,
    pub outcome: String,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Saga {
    pub order: String,
    pub rx_token: String,
    pub signer: String,
    pub items: Vec<String>,
    pub cold_chain: bool,
    pub controlled: bool,
    pub destination: [f64; 2],
    pub copay_cents: u64,
    pub code_hash: String,
    pub step: Step,
    pub status: SagaStatus,
    /// Failed attempts of the current step or compensation.
    pub attempts: u32,
    pub next_attempt_ms: u64,
    /// Steps done, in order (their compensations run in reverse).
    pub done: Vec<Step>,
    pub payment_id: Option<String>,
    /// Courier GLN and vehicle id.
    pub assigned: Option<(String, String)>,
    /// Vehicles not to assign again ("courier GLN/vehicle id").
    pub excluded: Vec<String>,
    /// Delivery failures seen on the ledger, and of the current vehicle.
    pub failures_seen: u32,
    pub vehicle_failures: u32,
    pub deliver_by_ms: u64,
    pub manual_reason: Option<String>,
    pub log: Vec<SagaLog>,
    pub created_ms: u64,
    /// The pharmacy's GLN.
    #[serde(default)]
    pub pharmacy_gln: Option<String>,
    /// The live-tracking link for the patient and staff (set at assignment).
    #[serde(default)]
    pub watch_url: Option<String>,
    /// When the recipient can receive it: [earliest, latest], Unix seconds (route planning).
    #[serde(default)]
    pub window: Option<[u64; 2]>,
}

impl Saga {
    fn note(&mut self, step: Step, outcome: &str, detail: impl Into<String>) {
        self.log.push(SagaLog {
            time_ms: now_ms(),
            step: step.name().into(),
            outcome: outcome.into(),
            detail: detail.into(),
        });
    }

    /// A step failed: retry later, or (permanent / out of attempts) compensate.
    fn failed(&mut self, step: Step, reason: &str, permanent: bool) {
        self.attempts += 1;
        self.note(step, "failed", reason);
        if permanent || self.attempts >= STEP_ATTEMPTS_MAX {
            self.start_compensation(reason);
        } else {
            self.next_attempt_ms = now_ms() + backoff_ms(self.attempts, OsRng.next_u64());
        }
    }

    fn start_compensation(&mut self, reason: &str) {
        self.status = SagaStatus::Compensating;
        self.attempts = 0;
        self.next_attempt_ms = 0;
        self.manual_reason = Some(reason.to_string());
    }

    fn to_manual(&mut self, reason: impl Into<String>) {
        let reason = reason.into();
        self.note(self.step, "manual", &reason);
        self.status = SagaStatus::Manual;
        self.manual_reason = Some(reason);
    }

    fn advance(&mut self) {
        self.done.push(self.step);
        self.attempts = 0;
        self.next_attempt_ms = 0;
        match self.step.next() {
            Some(next) => self.step = next,
            None => self.status = SagaStatus::Completed,
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn save<N: NodeApi>(node: &N, saga: &Saga) -> Result<(), String> {
    let bytes = serde_json::to_vec(saga).map_err(|e| e.to_string())?;
    node.local_put(&format!("{SAGA_PREFIX}{}", saga.order), &bytes)
}

fn load<N: NodeApi>(node: &N, order: &str) -> Result<Option<Saga>, String> {
    match node.local_get(&format!("{SAGA_PREFIX}{order}"))? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| e.to_string()),
        None => Ok(None),
    }
}

/// Marks the saga for the runner.
fn activate<N: NodeApi>(node: &N, saga: &Saga) -> Result<(), String> {
    node.local_put(&format!("{ACTIVE_PREFIX}{}", saga.order), b"")
}

fn is_active(saga: &Saga) -> bool {
    matches!(saga.status, SagaStatus::Running | SagaStatus::Compensating)
}

/// The sagas marked active; markers of sagas that are no longer active are dropped.
pub(crate) fn active_sagas<N: NodeApi>(node: &N) -> Result<Vec<Saga>, String> {
    let mut out = Vec::new();
    for (order, _) in node.local_scan(ACTIVE_PREFIX)? {
        match load(node, &order)? {
            Some(saga) if is_active(&saga) => out.push(saga),
            _ => node.local_delete(&format!("{ACTIVE_PREFIX}{order}"))?,
        }
    }
    Ok(out)
}

fn all_sagas<N: NodeApi>(node: &N) -> Result<Vec<Saga>, String> {
    Ok(node
        .local_scan(SAGA_PREFIX)?
        .iter()
        .filter_map(|(_, v)| serde_json::from_slice(v).ok())
        .collect())
}

/// What a commit came to: committed, refused with a rule code, or not yet known.
enum Outcome {
    Committed,
    Refused(String, String),
    Unknown(String),
}

async fn run<N: NodeApi>(node: &N, signer: PublicKey, commands: Vec<Command>) -> Outcome {
    match commit_commands(node, signer, commands, SAGA_COMMIT_WAIT).await {
        Ok(job) => match job.items.iter().find(|i| i.status != "committed") {
            None => Outcome::Committed,
            Some(item) => Outcome::Refused(
                item.code.clone().unwrap_or_else(|| item.status.clone()),
                item.reason.clone().unwrap_or_default(),
            ),
        },
        Err(CommitError::Pending(id)) => Outcome::Unknown(format!("job {id} still pending")),
        Err(CommitError::NotAccepted(e)) | Err(CommitError::Internal(e)) => Outcome::Unknown(e),
    }
}

fn step_record(order: Hash, step: Step, outcome: &str, detail: &str) -> Command {
    Command::RecordSagaStep {
        order,
        step: step.name().into(),
        outcome: outcome.into(),
        detail: detail.chars().take(200).collect(),
    }
}

/// The cheapest available vehicle that fits and is not excluded: (courier, vehicle, cost).
fn choose_vehicle(
    store: &dyn LedgerRead,
    saga: &Saga,
) -> Result<Option<(Gln, VehicleProfile, u64)>, String> {
    let rows = store
        .index_scan(VEHICLE_INDEX, &[], 10_000)
        .map_err(|e| e.to_string())?;
    let state = LedgerState::new(store);
    let destination = GeoPoint {
        lat: saga.destination[0],
        lon: saga.destination[1],
    };
    let mut best: Option<(Gln, VehicleProfile, u64)> = None;
    for (key, _) in rows {
        let (Some(gln), Some(id)) = (
            key.get(..13)
                .and_then(|g| std::str::from_utf8(g).ok())
                .and_then(|g| Gln::parse(g).ok()),
            key.get(13..).and_then(|i| std::str::from_utf8(i).ok()),
        ) else {
            continue;
        };
        let Some(vehicle) = dp::vehicle(&state, &gln, id) else {
            continue;
        };
        if !vehicle.available
            || dp::check_fit(&vehicle, saga.cold_chain, saga.controlled).is_err()
            || saga.excluded.contains(&format!("{gln}/{id}"))
        {
            continue;
        }
        let base = GeoPoint {
            lat: f64::from(vehicle.base_lat_e6) / 1e6,
            lon: f64::from(vehicle.base_lon_e6) / 1e6,
        };
        let km = haversine_m(base, destination) / 1000.0;
        let cost = (km * f64::from(vehicle.cost_per_km_cents)).round() as u64;
        if best.as_ref().is_none_or(|(_, _, c)| cost < *c) {
            best = Some((gln, vehicle, cost));
        }
    }
    Ok(best)
}

/// One move of a saga: a step, a wait, or a compensation.
async fn step_once<N: NodeApi>(node: &N, payments: &dyn PaymentProvider, saga: &mut Saga) {
    let (Ok(order), Ok(rx_token), Ok(code)) = (
        Hash::from_hex(&saga.order),
        Hash::from_hex(&saga.rx_token),
        Hash::from_hex(&saga.code_hash),
    ) else {
        saga.to_manual("the saga record is malformed");
        return;
    };
    let Ok(signer) = PublicKey::from_hex(&saga.signer) else {
        saga.to_manual("the saga's signer key is malformed");
        return;
    };
    let items: Vec<Epc> = saga.items.iter().map(|e| Epc::new(e.clone())).collect();
    if saga.status == SagaStatus::Compensating {
        return compensate(node, payments, saga, order, signer).await;
    }
    let step = saga.step;
    match step {
        Step::Open => {
            let command = Command::OpenDelivery {
                delivery: DeliveryOrder {
                    order,
                    rx_token,
                    items: items.clone(),
                    cold_chain: saga.cold_chain,
                    controlled: saga.controlled,
                    code_hash: code,
                },
            };
            match run(
                node,
                signer,
                vec![command, step_record(order, step, "succeeded", "")],
            )
            .await
            {
                Outcome::Committed => {
                    saga.note(step, "succeeded", "");
                    saga.advance();
                }
                Outcome::Refused(c, _) if c == "dispatch.order_exists" => saga.advance(),
                Outcome::Refused(c, r) => {
                    // Nothing was done: nothing to compensate.
                    saga.note(step, "failed", format!("{c}: {r}"));
                    saga.status = SagaStatus::Compensated;
                    saga.manual_reason = Some(format!("{c}: {r}"));
                }
                Outcome::Unknown(e) => saga.failed(step, &e, false),
            }
        }
        Step::Reserve => {
            let command = Command::Reserve {
                order,
                items: items.clone(),
                expires_ms: now_ms() + RESERVATION_MS,
            };
            match run(
                node,
                signer,
                vec![command, step_record(order, step, "succeeded", "")],
            )
            .await
            {
                Outcome::Committed => {
                    saga.note(step, "succeeded", "");
                    saga.advance();
                }
                Outcome::Refused(c, _) if c == "inventory.order_exists" => saga.advance(),
                Outcome::Refused(c, r) => saga.failed(step, &format!("{c}: {r}"), true),
                Outcome::Unknown(e) => saga.failed(step, &e, false),
            }
        }
        Step::Payment => match payments.charge(&saga.order, saga.copay_cents) {
            Ok(id) => {
                let _ = run(
                    node,
                    signer,
                    vec![step_record(order, step, "succeeded", &id)],
                )
                .await;
                saga.payment_id = Some(id.clone());
                saga.note(step, "succeeded", id);
                saga.advance();
            }
            Err(e) => {
                let _ = run(
                    node,
                    signer,
                    vec![step_record(order, step, "failed", &e.reason)],
                )
                .await;
                saga.failed(step, &e.reason, !e.transient);
            }
        },
        Step::Assign => {
            let store = node.ledger();
            let snapshot = saga.clone();
            let chosen = tokio::task::spawn_blocking(move || {
                // Assigned already (the node died between the commit and saving the saga, and
                // the courier may have moved on since): adopt what the ledger says.
                let state = LedgerState::new(&*store);
                let on_ledger = dp::delivery(&state, &order).and_then(|r| match r.state {
                    DeliveryState::Assigned { courier, vehicle }
                    | DeliveryState::PickedUp { courier, vehicle } => Some((courier, vehicle)),
                    _ => None,
                });
                match on_ledger {
                    Some(assigned) => Ok(Err(assigned)),
                    None => choose_vehicle(&*store, &snapshot).map(Ok),
                }
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
            match chosen {
                Ok(Err((courier, vehicle))) => {
                    let detail = format!("{courier}/{vehicle} (found on the ledger)");
                    saga.note(step, "succeeded", detail);
                    saga.watch_url = saga
                        .watch_url
                        .take()
                        .or_else(|| track(node, saga, order, courier));
                    saga.assigned = Some((courier.to_string(), vehicle));
                    saga.deliver_by_ms = now_ms() + DELIVERY_TIMEOUT_MS;
                    saga.advance();
                }
                Ok(Ok(Some((courier, vehicle, cost)))) => {
                    let detail = format!("{courier}/{} (cost {cost})", vehicle.id);
                    let commands = vec![
                        Command::AssignCourier {
                            order,
                            courier,
                            vehicle: vehicle.id.clone(),
                        },
                        step_record(order, step, "succeeded", &detail),
                    ];
                    match run(node, signer, commands).await {
                        Outcome::Committed => {
                            saga.note(step, "succeeded", detail);
                            saga.watch_url = track(node, saga, order, courier);
                            saga.assigned = Some((courier.to_string(), vehicle.id));
                            saga.deliver_by_ms = now_ms() + DELIVERY_TIMEOUT_MS;
                            saga.advance();
                        }
                        Outcome::Refused(c, r) => saga.failed(step, &format!("{c}: {r}"), false),
                        Outcome::Unknown(e) => saga.failed(step, &e, false),
                    }
                }
                // Retried (a vehicle may become available), then compensated.
                Ok(Ok(None)) => saga.failed(step, "no available vehicle fits the order", false),
                Err(e) => saga.failed(step, &e, false),
            }
        }
        Step::Deliver => {
            // Tracking lives in memory: after a restart, register again with the same link.
            rearm_tracking(node, saga, order);
            let store = node.ledger();
            let record = tokio::task::spawn_blocking(move || {
                let state = LedgerState::new(&*store);
                dp::delivery(&state, &order)
            })
            .await
            .ok()
            .flatten();
            let Some(record) = record else {
                saga.next_attempt_ms = now_ms() + 500;
                return;
            };
            match record.state {
                DeliveryState::Delivered { courier } => {
                    let _ = node.tracker().set_status(
                        &order,
                        crate::tracking::TrackingStatus::Delivered,
                        now_ms(),
                    );
                    saga.note(step, "succeeded", format!("delivered by {courier}"));
                    saga.advance();
                }
                DeliveryState::Open if record.attempts > saga.failures_seen => {
                    saga.failures_seen = record.attempts;
                    saga.vehicle_failures += 1;
                    let who = saga
                        .assigned
                        .as_ref()
                        .map(|(c, v)| format!("{c}/{v}"))
                        .unwrap_or_default();
                    let _ = run(
                        node,
                        signer,
                        vec![step_record(
                            order,
                            step,
                            "failed",
                            &format!("courier {who} failed"),
                        )],
                    )
                    .await;
                    saga.note(step, "failed", format!("courier {who} failed"));
                    if saga.vehicle_failures >= 2 {
                        // Retried once with the same vehicle: re-assign to another.
                        saga.excluded.push(who);
                        saga.vehicle_failures = 0;
                    }
                    saga.step = Step::Assign;
                    saga.done.retain(|s| *s != Step::Assign);
                    saga.attempts = 0;
                    saga.next_attempt_ms = now_ms() + backoff_ms(1, OsRng.next_u64());
                }
                DeliveryState::Closed { reason } => {
                    saga.to_manual(format!("the delivery was closed: {reason}"))
                }
                _ if now_ms() > saga.deliver_by_ms => {
                    saga.to_manual("the courier did not deliver in time")
                }
                _ => saga.next_attempt_ms = now_ms() + 500,
            }
        }
        Step::Dispense => {
            // The handoff dispensed the packages against the Rx; record the saga's end.
            match run(
                node,
                signer,
                vec![step_record(
                    order,
                    step,
                    "succeeded",
                    "dispensed at the handoff",
                )],
            )
            .await
            {
                Outcome::Committed | Outcome::Refused(..) => {
                    saga.note(step, "succeeded", "");
                    saga.advance();
                }
                Outcome::Unknown(e) => saga.failed(step, &e, false),
            }
        }
    }
}

/// The token of the watch link the saga handed out, if any.
fn watch_token(saga: &Saga) -> Option<crate::tracking::WatchToken> {
    saga.watch_url
        .as_deref()
        .and_then(|url| url.split("token=").nth(1))
        .and_then(crate::tracking::WatchToken::from_hex)
}

fn tracking_spec(saga: &Saga, order: Hash, courier: Gln) -> Option<crate::tracking::OrderSpec> {
    Some(crate::tracking::OrderSpec {
        order,
        dispatcher: Gln::parse(saga.pharmacy_gln.as_deref()?).ok()?,
        courier,
        package: saga.items.first()?.clone(),
        destination: GeoPoint {
            lat: saga.destination[0],
            lon: saga.destination[1],
        },
    })
}

/// Registers the order for tracking with its (new) courier; the link handed out at the first
/// assignment keeps working across re-assignments (watchers reconnect with it).
fn track<N: NodeApi>(node: &N, saga: &Saga, order: Hash, courier: Gln) -> Option<String> {
    let tracker = node.tracker();
    tracker.remove(&order);
    let spec = tracking_spec(saga, order, courier)?;
    let registered = match watch_token(saga) {
        Some(token) => tracker.register_with_token(spec, token, now_ms()),
        None => tracker.register(spec, now_ms()),
    };
    registered.ok().map(|token| token.watch_url(&order))
}

/// Registers the order for tracking again with the token of its watch link, if the node lost it
/// (a restart).
fn rearm_tracking<N: NodeApi>(node: &N, saga: &Saga, order: Hash) {
    let tracker = node.tracker();
    if tracker.parties(&order).is_some() {
        return;
    }
    let courier = saga
        .assigned
        .as_ref()
        .and_then(|(courier, _)| Gln::parse(courier).ok());
    if let (Some(token), Some(spec)) = (
        watch_token(saga),
        courier.and_then(|c| tracking_spec(saga, order, c)),
    ) {
        let _ = tracker.register_with_token(spec, token, now_ms());
    }
}

/// Runs the next compensation (reverse order of `done`).
async fn compensate<N: NodeApi>(
    node: &N,
    payments: &dyn PaymentProvider,
    saga: &mut Saga,
    order: Hash,
    signer: PublicKey,
) {
    let Some(&last) = saga.done.last() else {
        saga.status = SagaStatus::Compensated;
        return;
    };
    let result: Result<(), String> = match last {
        Step::Payment => match &saga.payment_id {
            Some(id) => payments.refund(id).map_err(|e| e.reason),
            None => Ok(()),
        },
        Step::Reserve => match run(node, signer, vec![Command::ReleaseReservation { order }]).await
        {
            Outcome::Committed => Ok(()),
            Outcome::Refused(c, _) if c == "inventory.order_unknown" => Ok(()),
            Outcome::Refused(c, r) => Err(format!("{c}: {r}")),
            Outcome::Unknown(e) => Err(e),
        },
        Step::Open => {
            let reason = saga
                .manual_reason
                .clone()
                .unwrap_or_else(|| "compensated".into());
            match run(
                node,
                signer,
                vec![Command::CloseDelivery {
                    order,
                    reason: reason.chars().take(200).collect(),
                }],
            )
            .await
            {
                Outcome::Committed => Ok(()),
                Outcome::Refused(c, _) if c == "dispatch.state" => Ok(()),
                Outcome::Refused(c, r) => Err(format!("{c}: {r}")),
                Outcome::Unknown(e) => Err(e),
            }
        }
        Step::Assign | Step::Deliver | Step::Dispense => Ok(()),
    };
    match result {
        Ok(()) => {
            saga.done.pop();
            saga.attempts = 0;
            saga.note(last, "compensated", "");
            let _ = run(
                node,
                signer,
                vec![step_record(order, last, "compensated", "")],
            )
            .await;
            if saga.done.is_empty() {
                saga.status = SagaStatus::Compensated;
            }
        }
        Err(reason) => {
            saga.attempts += 1;
            saga.note(last, "compensation_failed", &reason);
            if saga.attempts >= STEP_ATTEMPTS_MAX {
                saga.to_manual(format!("compensating {}: {reason}", last.name()));
            } else {
                saga.next_attempt_ms = now_ms() + backoff_ms(saga.attempts, OsRng.next_u64());
            }
        }
    }
}

/// Starts the saga runner: every running or compensating saga (after a restart too) moves on
/// when its next attempt is due; woken by each commit and every 200 ms.
pub fn spawn_runner<N: NodeApi>(node: N, payments: Arc<dyn PaymentProvider>) {
    tokio::spawn(async move {
        let mut heights = node.committed_heights();
        loop {
            let lister = node.clone();
            let sagas = tokio::task::spawn_blocking(move || active_sagas(&lister))
                .await
                .unwrap_or_else(|e| Err(e.to_string()))
                .unwrap_or_default();
            let now = now_ms();
            for mut saga in sagas {
                if saga.next_attempt_ms > now {
                    continue;
                }
                step_once(&node, &*payments, &mut saga).await;
                let saver = node.clone();
                // The saga record first: a marker left behind is dropped on the next pass.
                let _ = tokio::task::spawn_blocking(move || {
                    save(&saver, &saga)?;
                    if is_active(&saga) {
                        Ok(())
                    } else {
                        saver.local_delete(&format!("{ACTIVE_PREFIX}{}", saga.order))
                    }
                })
                .await;
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), heights.changed()).await;
        }
    });
}

// ---- HTTP

pub fn routes<N: NodeApi>(node: N) -> Router {
    Router::new()
        .route("/v1/dispatch/orders", post(create::<N>))
        .route("/v1/dispatch/orders/{order}", get(order_view::<N>))
        .route("/v1/dispatch/orders/{order}/pickup", post(pickup::<N>))
        .route("/v1/dispatch/orders/{order}/deliver", post(deliver::<N>))
        .route("/v1/dispatch/orders/{order}/fail", post(fail::<N>))
        .route("/v1/dispatch/manual", get(manual::<N>))
        .route("/v1/dispatch/manual/{order}", post(resolve::<N>))
        .route("/v1/dispatch/vehicles", post(vehicle::<N>))
        .with_state(node)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    /// An approved prescription of the caller (64 hex digits).
    pub rx_token: String,
    /// Where to deliver (for the courier's route and ETA; not on the ledger).
    pub destination: [f64; 2],
    pub copay_cents: u64,
    /// Packages to deliver; by default one, first-expiry-first-out.
    #[serde(default)]
    pub items: Vec<String>,
    /// When the recipient can receive it: [earliest, latest], Unix seconds. The courier's run
    /// ([`crate::courier_run`]) plans around it; off-ledger like the destination.
    #[serde(default)]
    pub window: Option<[u64; 2]>,
}

/// `[lat, lon]` in degrees, or a 400 naming `field` and the coordinate out of range.
pub(crate) fn geo_point(field: &str, [lat, lon]: [f64; 2]) -> Result<GeoPoint, Response> {
    let point = GeoPoint { lat, lon };
    match point.invalid_coordinate() {
        None => Ok(point),
        Some((which, value)) => Err(bad_request(
            field,
            format!(
                "{which} = {value}: [lat, lon] in degrees (latitude −90..90, longitude −180..180)"
            ),
        )),
    }
}

/// Longest a delivery window may reach into the future.
pub const WINDOW_AHEAD_S_MAX: u64 = 14 * 24 * 3_600;

fn check_window(window: Option<[u64; 2]>, now_s: u64) -> Result<(), Response> {
    let Some([earliest, latest]) = window else {
        return Ok(());
    };
    if earliest >= latest {
        return Err(bad_request(
            "window",
            format!("[earliest, latest] in Unix seconds: {earliest} is not before {latest}"),
        ));
    }
    if latest <= now_s {
        return Err(bad_request(
            "window",
            format!("the window closed at {latest}, before now ({now_s})"),
        ));
    }
    if latest > now_s + WINDOW_AHEAD_S_MAX {
        return Err(bad_request(
            "window",
            format!(
                "closes more than {} days ahead",
                WINDOW_AHEAD_S_MAX / 86_400
            ),
        ));
    }
    Ok(())
}

/// `POST /v1/dispatch/orders`: starts the fulfilment saga for an approved prescription and
/// returns the recipient's one-time code (shown once; the ledger keeps only its hash).
#[utoipa::path(post, path = "/v1/dispatch/orders", tag = "dispatch", security(("bearer" = [])),
    request_body = OrderRequest,
    responses((status = 202, description = "{order, recipient_code, status_url}"), (status = 409, description = "Nothing dispensable for the prescription")))]
pub(crate) async fn create<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (caller, store, signer) =
        match signing_caller(&node, &headers, &[Role::Dispenser], "dispatch orders").await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let request: OrderRequest = match parse_json(&body, "an order") {
        Ok(r) => r,
        Err(response) => return response,
    };
    if let Err(response) = geo_point("destination", request.destination) {
        return response;
    }
    if let Err(response) = check_window(request.window, now_s()) {
        return response;
    }
    let rx_hash = match parse_hash("rx_token", &request.rx_token) {
        Ok(h) => h,
        Err(response) => return response,
    };
    let gln = caller.organization.gln();
    let requested = request.items.clone();
    // Orders placed together must not pick the same package: the pick excludes packages an
    // active saga holds (its reservation may not be committed yet), and pick + save are one
    // critical section.
    let _placing = PLACING.lock().await;
    let claimed: std::collections::HashSet<String> = match active_sagas(&node) {
        Ok(sagas) => sagas.into_iter().flat_map(|s| s.items).collect(),
        Err(e) => return internal_error(e),
    };
    if let Some(taken) = requested.iter().find(|item| claimed.contains(*item)) {
        return problem(
            StatusCode::CONFLICT,
            "Package taken",
            format!("{taken} belongs to another open order"),
            Some("items"),
        );
    }
    let planned = blocking(move || {
        let state = LedgerState::new(&*store);
        let rx = ph::rx(&state, &rx_hash).ok_or_else(|| {
            problem(
                StatusCode::NOT_FOUND,
                "No such prescription",
                "the prescription was never decided",
                Some("rx_token"),
            )
        })?;
        if !rx.decision.approved || rx.pharmacy != gln {
            return Err(problem(
                StatusCode::CONFLICT,
                "Not deliverable",
                "the prescription is not approved by this pharmacy",
                Some("rx_token"),
            ));
        }
        let gtin = ph::product_by_ndc(&state, &rx.decision.ndc)
            .ok_or_else(|| internal_error("the prescription's NDC has no product"))?;
        let cold = ph::requirement(&state, &gtin).is_some();
        let items = if requested.is_empty() {
            let rows = on_hand(
                &*store,
                &gln,
                Some(&gtin),
                now_s() * 1000,
                INVENTORY_ROWS_MAX,
            )?;
            let free: Vec<_> = rows
                .into_iter()
                .filter(|r| !claimed.contains(&r.epc))
                .collect();
            let pick = fefo_pick(&free, 1, None);
            if pick.is_empty() {
                return Err(problem(
                    StatusCode::CONFLICT,
                    "Nothing dispensable",
                    format!("no dispensable package of {gtin} on hand"),
                    None,
                ));
            }
            pick
        } else {
            requested
        };
        Ok((items, cold, rx.decision.controlled))
    })
    .await;
    let (items, cold_chain, controlled) = match planned {
        Ok(p) => p,
        Err(response) => return response,
    };
    let order = random_hash();
    let code = format!("{:08}", OsRng.next_u64() % 100_000_000);
    let saga = Saga {
        order: order.to_string(),
        rx_token: request.rx_token.to_lowercase(),
        signer: signer.to_hex(),
        items,
        cold_chain,
        controlled,
        destination: request.destination,
        copay_cents: request.copay_cents,
        code_hash: code_hash(&code).to_string(),
        step: Step::Open,
        status: SagaStatus::Running,
        attempts: 0,
        next_attempt_ms: 0,
        done: Vec::new(),
        payment_id: None,
        assigned: None,
        excluded: Vec::new(),
        failures_seen: 0,
        vehicle_failures: 0,
        deliver_by_ms: 0,
        manual_reason: None,
        log: Vec::new(),
        created_ms: now_ms(),
        pharmacy_gln: Some(caller.organization.gln().to_string()),
        watch_url: None,
        window: request.window,
    };
    // Durable before the answer: a kill after the 202 resumes this saga.
    if let Err(e) = save(&node, &saga).and_then(|()| activate(&node, &saga)) {
        return internal_error(e);
    }
    (
        StatusCode::ACCEPTED,
        Json(json!({
            "order": saga.order,
            "recipient_code": code,
            "items": saga.items,
            "status_url": format!("/v1/dispatch/orders/{}", saga.order),
        })),
    )
        .into_response()
}

/// `GET /v1/dispatch/orders/{order}`: the saga (steps, attempts, log) and the ledger's
/// delivery state.
#[utoipa::path(get, path = "/v1/dispatch/orders/{order}", tag = "dispatch", security(("bearer" = [])),
    params(("order" = String, Path, description = "Order id")),
    responses((status = 200, description = "{saga, delivery}"), (status = 404, description = "Unknown order")))]
pub(crate) async fn order_view<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Path(order): Path<String>,
) -> Response {
    let (caller, store) = match caller_of(&node, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let order_hash = match parse_hash("order", &order) {
        Ok(h) => h,
        Err(response) => return response,
    };
    let saga = match load(&node, &order.to_lowercase()) {
        Ok(saga) => saga,
        Err(e) => return internal_error(e),
    };
    let record = {
        let state = LedgerState::new(&*store);
        dp::delivery(&state, &order_hash)
    };
    let gln = caller.organization.gln();
    let allowed = record.as_ref().is_some_and(|r| {
        r.pharmacy == gln
            || matches!(&r.state, DeliveryState::Assigned { courier, .. } | DeliveryState::PickedUp { courier, .. } | DeliveryState::Delivered { courier } if *courier == gln)
    }) || caller.is_regulator()
        || (record.is_none() && saga.is_some() && caller.role() == Role::Dispenser);
    if !allowed || (saga.is_none() && record.is_none()) {
        return problem(
            StatusCode::NOT_FOUND,
            "No such order",
            format!("no order {order} of yours"),
            Some("order"),
        );
    }
    let delivery = record.map(|r| {
        json!({
            "state": r.state.name(),
            "pharmacy_gln": r.pharmacy.to_string(),
            "attempts": r.attempts,
            "items": r.delivery.items.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            "courier_gln": match &r.state {
                DeliveryState::Assigned { courier, .. } | DeliveryState::PickedUp { courier, .. } | DeliveryState::Delivered { courier } => Some(courier.to_string()),
                _ => None,
            },
        })
    });
    // The courier sees the delivery, not the pharmacy's saga (payment, copay).
    let saga = saga.filter(|_| caller.role() == Role::Dispenser || caller.is_regulator());
    Json(json!({"saga": saga, "delivery": delivery})).into_response()
}

/// `GET /v1/dispatch/manual`: orders waiting for a person.
#[utoipa::path(get, path = "/v1/dispatch/manual", tag = "dispatch", security(("bearer" = [])),
    responses((status = 200, body = [Saga])))]
pub(crate) async fn manual<N: NodeApi>(State(node): State<N>, headers: HeaderMap) -> Response {
    if let Err(response) =
        signing_caller(&node, &headers, &[Role::Dispenser], "the manual queue").await
    {
        return response;
    }
    match all_sagas(&node) {
        Ok(sagas) => Json(
            sagas
                .into_iter()
                .filter(|s| s.status == SagaStatus::Manual)
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => internal_error(e),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// `retry` (the step or compensation again, attempts reset), `compensate` (undo what was
    /// done), or `resolved` (a person settled it outside; the saga ends as compensated).
    pub action: String,
    pub note: String,
}

/// `POST /v1/dispatch/manual/{order}`: a person's decision on a saga in the manual queue.
#[utoipa::path(post, path = "/v1/dispatch/manual/{order}", tag = "dispatch", security(("bearer" = [])),
    params(("order" = String, Path, description = "Order id")), request_body = ResolveRequest,
    responses((status = 200, body = Saga), (status = 409, description = "Not in the manual queue")))]
pub(crate) async fn resolve<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Path(order): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(response) =
        signing_caller(&node, &headers, &[Role::Dispenser], "the manual queue").await
    {
        return response;
    }
    let request: ResolveRequest = match parse_json(&body, "a resolution") {
        Ok(r) => r,
        Err(response) => return response,
    };
    let mut saga = match load(&node, &order.to_lowercase()) {
        Ok(Some(saga)) => saga,
        Ok(None) => {
            return problem(
                StatusCode::NOT_FOUND,
                "No such order",
                format!("no saga {order}"),
                Some("order"),
            )
        }
        Err(e) => return internal_error(e),
    };
    if saga.status != SagaStatus::Manual {
        return problem(
            StatusCode::CONFLICT,
            "Not waiting for a person",
            format!("the saga is {:?}", saga.status),
            None,
        );
    }
    let compensating = saga.log.last().is_some_and(|l| {
        l.outcome == "manual"
            && saga
                .manual_reason
                .as_deref()
                .is_some_and(|r| r.starts_with("compensating"))
    });
    match request.action.as_str() {
        "retry" => {
            saga.status = if compensating {
                SagaStatus::Compensating
            } else {
                SagaStatus::Running
            };
            if saga.step == Step::Deliver {
                saga.deliver_by_ms = now_ms() + DELIVERY_TIMEOUT_MS;
            }
        }
        "compensate" => saga.start_compensation(&request.note),
        "resolved" => saga.status = SagaStatus::Compensated,
        other => {
            return bad_request(
                "action",
                format!("{other:?} is not retry, compensate or resolved"),
            )
        }
    }
    saga.attempts = 0;
    saga.next_attempt_ms = 0;
    let step = saga.step;
    saga.note(
        step,
        &format!("manual_{}", request.action),
        request.note.chars().take(200).collect::<String>(),
    );
    let saved = save(&node, &saga).and_then(|()| {
        if is_active(&saga) {
            activate(&node, &saga)
        } else {
            Ok(())
        }
    });
    match saved {
        Ok(()) => Json(saga).into_response(),
        Err(e) => internal_error(e),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VehicleRequest {
    pub id: String,
    /// bicycle | car | van | drone | autonomous
    pub kind: String,
    pub payload_grams: u32,
    pub range_m: u32,
    pub cold_chain: bool,
    pub human: bool,
    pub base: [f64; 2],
    pub available: bool,
    pub cost_per_km_cents: u32,
}

/// `POST /v1/dispatch/vehicles`: a courier registers (or updates) a vehicle's capability
/// profile and availability.
#[utoipa::path(post, path = "/v1/dispatch/vehicles", tag = "dispatch", security(("bearer" = [])),
    request_body = VehicleRequest, responses((status = 200, description = "Registered")))]
pub(crate) async fn vehicle<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (_, _, signer) = match signing_caller(&node, &headers, &[Role::Logistics], "vehicles").await
    {
        Ok(found) => found,
        Err(response) => return response,
    };
    let request: VehicleRequest = match parse_json(&body, "a vehicle") {
        Ok(r) => r,
        Err(response) => return response,
    };
    let kind = match request.kind.as_str() {
        "bicycle" => VehicleKind::Bicycle,
        "car" => VehicleKind::Car,
        "van" => VehicleKind::Van,
        "drone" => VehicleKind::Drone,
        "autonomous" => VehicleKind::Autonomous,
        other => {
            return bad_request(
                "kind",
                format!("{other:?} is not bicycle, car, van, drone or autonomous"),
            )
        }
    };
    let [lat, lon] = request.base;
    if !(lat.is_finite()
        && lon.is_finite()
        && (-90.0..=90.0).contains(&lat)
        && (-180.0..=180.0).contains(&lon))
    {
        return bad_request("base", "[lat, lon] in degrees");
    }
    let profile = VehicleProfile {
        id: request.id.clone(),
        kind,
        payload_grams: request.payload_grams,
        range_m: request.range_m,
        cold_chain: request.cold_chain,
        human: request.human,
        base_lat_e6: (lat * 1e6).round() as i32,
        base_lon_e6: (lon * 1e6).round() as i32,
        available: request.available,
        cost_per_km_cents: request.cost_per_km_cents,
    };
    courier_commit(&node, signer, Command::RegisterVehicle { vehicle: profile }).await
}

async fn courier_commit<N: NodeApi>(node: &N, signer: PublicKey, command: Command) -> Response {
    let job = match commit(node, signer, vec![command]).await {
        Ok(job) => job,
        Err(response) => return response,
    };
    if let Some(response) = rejected(&job) {
        return response;
    }
    Json(json!({"committed": true, "tx_hashes": tx_hashes(&job)})).into_response()
}

async fn courier_action<N: NodeApi>(
    node: &N,
    headers: &HeaderMap,
    order: &str,
    make: impl FnOnce(Hash) -> Result<Command, Response>,
) -> Response {
    let (_, _, signer) =
        match signing_caller(node, headers, &[Role::Logistics], "courier actions").await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let order = match parse_hash("order", order) {
        Ok(h) => h,
        Err(response) => return response,
    };
    match make(order) {
        Ok(command) => courier_commit(node, signer, command).await,
        Err(response) => response,
    }
}

/// `POST /v1/dispatch/orders/{order}/pickup`: the assigned courier takes custody.
#[utoipa::path(post, path = "/v1/dispatch/orders/{order}/pickup", tag = "dispatch", security(("bearer" = [])),
    params(("order" = String, Path, description = "Order id")), responses((status = 200, description = "Picked up"), (status = 409, description = "Refused by the ledger")))]
pub(crate) async fn pickup<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Path(order): Path<String>,
) -> Response {
    courier_action(&node, &headers, &order, |order| {
        Ok(Command::PickUp { order })
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliverRequest {
    /// The one-time code the recipient shows.
    pub code: String,
}

/// `POST /v1/dispatch/orders/{order}/deliver`: handoff to the patient with their one-time
/// code; custody ends and the packages are dispensed against the prescription.
#[utoipa::path(post, path = "/v1/dispatch/orders/{order}/deliver", tag = "dispatch", security(("bearer" = [])),
    params(("order" = String, Path, description = "Order id")), request_body = DeliverRequest,
    responses((status = 200, description = "Delivered"), (status = 409, description = "Refused by the ledger (e.g. dispatch.code_mismatch)")))]
pub(crate) async fn deliver<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Path(order): Path<String>,
    body: Bytes,
) -> Response {
    courier_action(&node, &headers, &order, |order| {
        let request: DeliverRequest = parse_json(&body, "a delivery")?;
        Ok(Command::DeliverToPatient {
            order,
            code: request.code,
        })
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailRequest {
    pub reason: String,
}

/// `POST /v1/dispatch/orders/{order}/fail`: the courier could not deliver.
#[utoipa::path(post, path = "/v1/dispatch/orders/{order}/fail", tag = "dispatch", security(("bearer" = [])),
    params(("order" = String, Path, description = "Order id")), request_body = FailRequest,
    responses((status = 200, description = "Recorded"), (status = 409, description = "Refused by the ledger")))]
pub(crate) async fn fail<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Path(order): Path<String>,
    body: Bytes,
) -> Response {
    courier_action(&node, &headers, &order, |order| {
        let request: FailRequest = parse_json(&body, "a failure report")?;
        Ok(Command::FailDelivery {
            order,
            reason: request.reason,
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        for attempt in 1..=12 {
            let full = (BACKOFF_BASE_MS << (attempt - 1)).min(BACKOFF_CAP_MS);
            for random in [0, 1, 7_777, u64::MAX] {
                let d = backoff_ms(attempt, random);
                assert!(
                    d >= full / 2 && d <= full,
                    "attempt {attempt}: {d} of {full}"
                );
            }
        }
        assert_eq!(backoff_ms(1, 0), BACKOFF_BASE_MS / 2);
        assert!(backoff_ms(40, u64::MAX) <= BACKOFF_CAP_MS);
    }

    fn saga() -> Saga {
        Saga {
            order: "00".repeat(32),
            rx_token: "11".repeat(32),
            signer: String::new(),
            items: vec![],
            cold_chain: false,
            controlled: false,
            destination: [0.0, 0.0],
            copay_cents: 0,
            code_hash: String::new(),
            step: Step::Open,
            status: SagaStatus::Running,
            attempts: 0,
            next_attempt_ms: 0,
            done: vec![],
            payment_id: None,
            assigned: None,
            excluded: vec![],
            failures_seen: 0,
            vehicle_failures: 0,
            deliver_by_ms: 0,
            manual_reason: None,
            log: vec![],
            created_ms: 0,
            pharmacy_gln: None,
            watch_url: None,
            window: None,
        }
    }

    #[test]
    fn given_transient_failures_then_retries_until_the_limit_then_compensates_in_reverse() {
        let mut s = saga();
        s.advance(); // open
        s.advance(); // reserve
        assert_eq!(
            (s.step, s.done.clone()),
            (Step::Payment, vec![Step::Open, Step::Reserve])
        );
        for attempt in 1..STEP_ATTEMPTS_MAX {
            s.failed(Step::Payment, "provider unavailable", false);
            assert_eq!(s.status, SagaStatus::Running, "attempt {attempt}");
            assert!(s.next_attempt_ms > 0);
        }
        s.failed(Step::Payment, "provider unavailable", false);
        assert_eq!(s.status, SagaStatus::Compensating);
        // Compensations pop `done` from the end: reserve, then open.
        assert_eq!(s.done.last(), Some(&Step::Reserve));
    }

    #[test]
    fn given_a_permanent_failure_then_compensation_starts_at_once() {
        let mut s = saga();
        s.advance();
        s.failed(Step::Reserve, "declined", true);
        assert_eq!(s.status, SagaStatus::Compensating);
        assert_eq!(s.attempts, 0);
    }

    #[test]
    fn the_last_step_completes_the_saga() {
        let mut s = saga();
        for _ in 0..6 {
            s.advance();
        }
        assert_eq!(s.status, SagaStatus::Completed);
        assert_eq!(s.done.len(), 6);
    }
}
