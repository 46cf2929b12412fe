//! Live tracking of last-mile deliveries (issue 9): couriers post positions, patients and
//! pharmacy staff follow the delivery over a WebSocket.
//!
//! The [`Tracker`] is node-local and in memory: positions are **off-ledger** and never written
//! to disk (the last [`POSITIONS_KEPT`] fixes per order stay in memory, then go; a restart
//! forgets every tracked order). Only pickup, handoff and delivery belong on the ledger, and
//! the dispatch saga records those as custody events: the tracker never touches the ledger.
//!
//! Authorization is per order. The dispatching organization registers the order and gets a
//! random watch token, which it hands to the patient and its staff; the tracker keeps only the
//! token's blake3 hash. Only members of the courier organization named at registration may
//! post positions; the courier or the dispatcher may post the status.
//!
//! Watchers receive a full snapshot per message — `{"order", "package", "seq", "lat", "lon",
//! "eta_s", "at_ms", "status"}` — and nothing else: no PHI, no patient address (the destination
//! only feeds the ETA). A late joiner gets the last snapshot first. Each order has a
//! `tokio::sync::watch` channel holding only its newest snapshot (serialized once for every
//! watcher): a watcher that falls behind skips to the newest (every message is a whole state,
//! so nothing is lost but intermediate positions), and a slow watcher never blocks the courier
//! or the other watchers.
//!
//! - `POST /v1/tracking/orders` (bearer JWT of the dispatching organization)
//! - `POST /v1/tracking/{order}/positions` (bearer JWT of a courier organization member)
//! - `POST /v1/tracking/{order}/status` (courier or dispatcher)
//! - `GET /v1/tracking/{order}/ws?token=` (WebSocket; a wrong or missing token is 403 before the
//!   upgrade)

use crate::epcis_api::caller_of;
use crate::http::{bad_request, internal_error, problem, NodeApi};
use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pharmalink_contracts::contract::{Gln, LedgerState, Role};
use pharmalink_contracts::iam;
use pharmalink_contracts::route::{haversine_m, GeoPoint};
use pharmalink_ledger::Hash;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::watch;

/// Orders tracked at once (registration answers 503 beyond).
pub const ORDERS_MAX: usize = 100_000;
/// Watchers of one order, and of all orders.
pub const WATCHERS_PER_ORDER_MAX: usize = 20_000;
pub const WATCHERS_MAX: usize = 100_000;
/// Recent positions kept in memory per order (off-ledger, never persisted).
pub const POSITIONS_KEPT: usize = 32;
/// Speed used for the ETA when the courier reports none (or is nearly stopped), m/s.
pub const DEFAULT_SPEED_MPS: f64 = 8.0;
/// Reported speeds below this are treated as "stopped" and the default speed is used.
pub const SPEED_MIN_FOR_ETA_MPS: f64 = 0.5;
/// Highest plausible speed of a courier, m/s (≈ 360 km/h).
pub const SPEED_MAX_MPS: f64 = 100.0;
/// How far in the future a position's `at_ms` may be (clock skew), ms.
pub const FUTURE_SKEW_MS: u64 = 60_000;
/// A delivered or failed order is forgotten this long after it ended; any order this long
/// after its last change.
pub const ENDED_RETENTION_MS: u64 = 60 * 60 * 1_000;
pub const IDLE_RETENTION_MS: u64 = 24 * 60 * 60 * 1_000;
/// Longest package display text.
pub const PACKAGE_CHARS_MAX: usize = 128;
/// A watcher that does not take a message within this time is dropped.
pub const WATCHER_SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Pings keep idle connections alive through proxies and find dead watchers.
pub const WATCHER_PING_INTERVAL: Duration = Duration::from_secs(30);
/// Largest message a watcher may send us (they have nothing to say but close and pong).
pub const WATCHER_MESSAGE_BYTES_MAX: usize = 1_024;
/// The WebSocket read buffer of a watcher. tungstenite zero-fills up to this much before each
/// read attempt, and the watcher loop polls for incoming frames on every update: its default
/// (128 KiB) made that memset a quarter of the node's CPU at 10,000 watchers.
pub const WATCHER_READ_BUFFER_BYTES: usize = 4 * 1_024;
const TRACKING_BODY_BYTES_MAX: usize = 16 * 1024;

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrackingStatus {
    Registered,
    PickedUp,
    OutForDelivery,
    Delivered,
    Failed,
}

impl TrackingStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, TrackingStatus::Delivered | TrackingStatus::Failed)
    }

    pub fn parse(text: &str) -> Option<TrackingStatus> {
        match text {
            "picked_up" => Some(TrackingStatus::PickedUp),
            "out_for_delivery" => Some(TrackingStatus::OutForDelivery),
            "delivered" => Some(TrackingStatus::Delivered),
            "failed" => Some(TrackingStatus::Failed),
            _ => None,
        }
    }
}

/// What the dispatcher registers. `destination` feeds the ETA and is never sent to watchers.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderSpec {
    pub order: Hash,
    pub dispatcher: Gln,
    pub courier: Gln,
    /// EPC URN or GTIN + serial display text (no PHI).
    pub package: String,
    pub destination: GeoPoint,
}

/// The bearer secret of an order's watchers (the tracker keeps only its blake3 hash).
#[derive(Clone, PartialEq, Eq)]
pub struct WatchToken(pub [u8; 32]);

impl WatchToken {
    /// The token of a watch link (64 hex digits).
    pub fn from_hex(text: &str) -> Option<WatchToken> {
        Hash::from_hex(text).ok().map(|h| WatchToken(h.0))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Where watchers connect.
    pub fn watch_url(&self, order: &Hash) -> String {
        format!("/v1/tracking/{}/ws?token={}", order.to_hex(), self.to_hex())
    }
}

impl std::fmt::Debug for WatchToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WatchToken(…)")
    }
}

/// One courier position.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PositionFix {
    pub point: GeoPoint,
    /// When the courier's device took the fix, ms since the Unix epoch.
    pub at_ms: u64,
    pub speed_mps: Option<f64>,
}

/// What every watcher message holds: public delivery state only.
#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct TrackingUpdate {
    pub order: String,
    pub package: String,
    /// Increases by one per snapshot of the order (a gap means the watcher skipped ahead).
    pub seq: u64,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// Seconds to the destination at the reported (or default) speed; 0 once delivered.
    pub eta_s: Option<u64>,
    /// Time of the position, ms since the Unix epoch.
    pub at_ms: Option<u64>,
    pub status: TrackingStatus,
}

/// Why the tracker refused.
#[derive(Clone, Debug, PartialEq)]
pub enum TrackError {
    UnknownOrder,
    AlreadyRegistered,
    /// A limit is reached (what is full).
    Full(&'static str),
    Invalid {
        field: &'static str,
        reason: String,
    },
    /// The position is older than the last one.
    Stale {
        last_at_ms: u64,
    },
    /// The order is delivered or failed.
    Ended(TrackingStatus),
    /// Unknown order or wrong watch token (indistinguishable on purpose).
    NotAllowed,
}

impl std::fmt::Display for TrackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrackError::UnknownOrder => f.write_str("no such order is tracked here"),
            TrackError::AlreadyRegistered => f.write_str("the order is already tracked"),
            TrackError::Full(what) => write!(f, "too many {what}"),
            TrackError::Invalid { field, reason } => write!(f, "{field}: {reason}"),
            TrackError::Stale { last_at_ms } => {
                write!(f, "older than the last position (at_ms {last_at_ms})")
            }
            TrackError::Ended(status) => write!(f, "the delivery has ended ({status:?})"),
            TrackError::NotAllowed => f.write_str("no such order, or a wrong watch token"),
        }
    }
}

impl TrackError {
    fn invalid(field: &'static str, reason: impl Into<String>) -> TrackError {
        TrackError::Invalid {
            field,
            reason: reason.into(),
        }
    }

    pub fn into_response(self) -> Response {
        let detail = self.to_string();
        match self {
            TrackError::UnknownOrder => problem(
                StatusCode::NOT_FOUND,
                "Unknown order",
                detail,
                Some("order"),
            ),
            TrackError::AlreadyRegistered => problem(
                StatusCode::CONFLICT,
                "Already tracked",
                detail,
                Some("order"),
            ),
            TrackError::Full(_) => problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Tracking full",
                detail,
                None,
            ),
            TrackError::Invalid { field, reason } => bad_request(field, reason),
            TrackError::Stale { .. } => problem(
                StatusCode::CONFLICT,
                "Stale position",
                detail,
                Some("at_ms"),
            ),
            TrackError::Ended(_) => problem(
                StatusCode::CONFLICT,
                "Delivery ended",
                detail,
                Some("status"),
            ),
            TrackError::NotAllowed => {
                problem(StatusCode::FORBIDDEN, "Not allowed", detail, Some("token"))
            }
        }
    }
}

/// One broadcast snapshot, serialized once for every watcher.
#[derive(Clone, Debug)]
pub struct Published {
    pub text: Utf8Bytes,
    pub terminal: bool,
}

struct OrderState {
    seq: u64,
    status: TrackingStatus,
    last_fix: Option<PositionFix>,
    eta_s: Option<u64>,
    recent: VecDeque<PositionFix>,
    changed_ms: u64,
    ended_ms: Option<u64>,
}

struct Order {
    spec: OrderSpec,
    token_hash: blake3::Hash,
    /// The newest snapshot (`None` only before the first publish).
    sender: watch::Sender<Option<Published>>,
    watchers: Arc<AtomicUsize>,
    state: Mutex<OrderState>,
    /// The stops the courier makes before this one ([`Tracker::set_route`]).
    route: Mutex<RouteAhead>,
}

/// The stops ahead of an order in its courier's planned run: the ETA drives through those
/// still being delivered, with `service_s` at each.
#[derive(Clone, Default)]
struct RouteAhead {
    stops: Vec<(Hash, GeoPoint)>,
    service_s: f64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Order {
    /// Builds the next snapshot and publishes it (watchers and late joiners read the newest).
    /// Under the state lock, so snapshots go out in `seq` order.
    fn publish(&self, state: &mut OrderState, now_ms: u64) -> TrackingUpdate {
        state.seq += 1;
        state.changed_ms = now_ms;
        let update = TrackingUpdate {
            order: self.spec.order.to_hex(),
            package: self.spec.package.clone(),
            seq: state.seq,
            lat: state.last_fix.map(|f| f.point.lat),
            lon: state.last_fix.map(|f| f.point.lon),
            eta_s: state.eta_s,
            at_ms: state.last_fix.map(|f| f.at_ms),
            status: state.status,
        };
        let text = serde_json::to_string(&update).unwrap_or_default();
        let published = Published {
            text: Utf8Bytes::from(text),
            terminal: state.status.is_terminal(),
        };
        // Replaces the value even when nobody watches yet.
        self.sender.send_replace(Some(published));
        update
    }
}

/// Counts a watcher for as long as it lives.
struct WatcherSlot {
    order: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
}

impl Drop for WatcherSlot {
    fn drop(&mut self) {
        self.order.fetch_sub(1, Ordering::Relaxed);
        self.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A watcher's subscription: the last snapshot (for a late joiner), then the newest one each
/// time it changes (`updates.changed()`, then `updates.borrow_and_update()`).
pub struct Watch {
    pub first: Option<Published>,
    pub updates: watch::Receiver<Option<Published>>,
    _slot: WatcherSlot,
}

/// The node's registry of tracked orders (in memory, node-local, bounded).
pub struct Tracker {
    orders: RwLock<HashMap<Hash, Arc<Order>>>,
    watchers: Arc<AtomicUsize>,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker::new()
    }
}

fn eta_s(from: GeoPoint, to: GeoPoint, speed_mps: Option<f64>) -> u64 {
    let speed = speed_mps
        .filter(|s| *s >= SPEED_MIN_FOR_ETA_MPS)
        .unwrap_or(DEFAULT_SPEED_MPS);
    (haversine_m(from, to) / speed).ceil() as u64
}

/// [`eta_s`] through the stops ahead (each with its service time) to the destination.
fn eta_via(
    from: GeoPoint,
    (ahead, service_s): &(Vec<GeoPoint>, f64),
    to: GeoPoint,
    speed_mps: Option<f64>,
) -> u64 {
    let mut at = from;
    let mut total = 0u64;
    for &stop in ahead {
        total += eta_s(at, stop, speed_mps) + service_s.ceil() as u64;
        at = stop;
    }
    total + eta_s(at, to, speed_mps)
}

fn check_point(point: GeoPoint, prefix: &'static str) -> Result<(), TrackError> {
    match point.invalid_coordinate() {
        None => Ok(()),
        Some((field, value)) => {
            let field = match (prefix, field) {
                ("destination", "lat") => "destination.lat",
                ("destination", _) => "destination.lon",
                (_, "lat") => "lat",
                _ => "lon",
            };
            Err(TrackError::invalid(
                field,
                format!("{value} is out of range (latitude −90..90, longitude −180..180)"),
            ))
        }
    }
}

impl Tracker {
    pub fn new() -> Tracker {
        Tracker {
            orders: RwLock::new(HashMap::new()),
            watchers: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn order(&self, order: &Hash) -> Option<Arc<Order>> {
        self.orders
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(order)
            .cloned()
    }

    /// Starts tracking an order; returns the watch token to hand to the patient and staff.
    pub fn register(&self, spec: OrderSpec, now_ms: u64) -> Result<WatchToken, TrackError> {
        let mut token = [0u8; 32];
        OsRng.fill_bytes(&mut token);
        self.register_with_token(spec, WatchToken(token), now_ms)
    }

    /// [`Tracker::register`] with a token issued before (the dispatcher re-registers an order
    /// after a restart, so the links it handed out keep working).
    pub fn register_with_token(
        &self,
        spec: OrderSpec,
        token: WatchToken,
        now_ms: u64,
    ) -> Result<WatchToken, TrackError> {
        let token = token.0;
        check_point(spec.destination, "destination")?;
        if spec.package.is_empty() || spec.package.chars().count() > PACKAGE_CHARS_MAX {
            return Err(TrackError::invalid(
                "package",
                format!("must be 1 to {PACKAGE_CHARS_MAX} characters"),
            ));
        }
        if !spec
            .package
            .chars()
            .all(|c| c.is_ascii_graphic() || c == ' ')
        {
            return Err(TrackError::invalid(
                "package",
                "must be printable ASCII (an EPC URN or GTIN + serial)",
            ));
        }
        let mut orders = self.orders.write().unwrap_or_else(|e| e.into_inner());
        sweep(&mut orders, now_ms);
        if orders.contains_key(&spec.order) {
            return Err(TrackError::AlreadyRegistered);
        }
        if orders.len() >= ORDERS_MAX {
            return Err(TrackError::Full("tracked orders"));
        }
        let (sender, _) = watch::channel(None);
        let order = Order {
            token_hash: blake3::hash(&token),
            sender,
            watchers: Arc::new(AtomicUsize::new(0)),
            state: Mutex::new(OrderState {
                seq: 0,
                status: TrackingStatus::Registered,
                last_fix: None,
                eta_s: None,
                recent: VecDeque::with_capacity(POSITIONS_KEPT),
                changed_ms: now_ms,
                ended_ms: None,
            }),
            route: Mutex::new(RouteAhead::default()),
            spec,
        };
        {
            let mut state = lock(&order.state);
            order.publish(&mut state, now_ms);
        }
        orders.insert(order.spec.order, Arc::new(order));
        Ok(WatchToken(token))
    }

    /// The dispatcher and the courier of an order, for authorization.
    pub fn parties(&self, order: &Hash) -> Option<(Gln, Gln)> {
        self.order(order)
            .map(|o| (o.spec.dispatcher, o.spec.courier))
    }

    /// Validates a courier position, computes the ETA and broadcasts the snapshot.
    pub fn post_position(
        &self,
        order: &Hash,
        fix: PositionFix,
        now_ms: u64,
    ) -> Result<TrackingUpdate, TrackError> {
        check_point(fix.point, "")?;
        if let Some(speed) = fix.speed_mps {
            if !speed.is_finite() || !(0.0..=SPEED_MAX_MPS).contains(&speed) {
                return Err(TrackError::invalid(
                    "speed_mps",
                    format!("{speed} is not a speed in 0..={SPEED_MAX_MPS} m/s"),
                ));
            }
        }
        if fix.at_ms > now_ms.saturating_add(FUTURE_SKEW_MS) {
            return Err(TrackError::invalid(
                "at_ms",
                format!(
                    "{} is more than {} s in the future",
                    fix.at_ms,
                    FUTURE_SKEW_MS / 1_000
                ),
            ));
        }
        let order = self.order(order).ok_or(TrackError::UnknownOrder)?;
        // The stops still ahead, read before this order's lock (one order lock at a time).
        let ahead = self.stops_ahead(&order);
        let mut state = lock(&order.state);
        if state.status.is_terminal() {
            return Err(TrackError::Ended(state.status));
        }
        if let Some(last) = state.last_fix {
            if fix.at_ms < last.at_ms {
                return Err(TrackError::Stale {
                    last_at_ms: last.at_ms,
                });
            }
        }
        state.eta_s = Some(eta_via(
            fix.point,
            &ahead,
            order.spec.destination,
            fix.speed_mps,
        ));
        state.last_fix = Some(fix);
        if state.recent.len() == POSITIONS_KEPT {
            state.recent.pop_front();
        }
        state.recent.push_back(fix);
        Ok(order.publish(&mut state, now_ms))
    }

    /// Sets the stops the courier makes before this order (the planned run), so its ETA drives
    /// through those still open, `service_s` at each. Unknown orders are ignored.
    pub fn set_route(&self, order: &Hash, ahead: Vec<(Hash, GeoPoint)>, service_s: f64) {
        if let Some(order) = self.order(order) {
            *lock(&order.route) = RouteAhead {
                stops: ahead,
                service_s: if service_s.is_finite() {
                    service_s.max(0.0)
                } else {
                    0.0
                },
            };
        }
    }

    /// The planned stops ahead of `order` whose delivery is still open, and the service time.
    fn stops_ahead(&self, order: &Order) -> (Vec<GeoPoint>, f64) {
        let route = lock(&order.route).clone();
        let open = route
            .stops
            .iter()
            .filter(|(other, _)| {
                self.order(other)
                    .is_some_and(|o| !lock(&o.state).status.is_terminal())
            })
            .map(|(_, point)| *point)
            .collect();
        (open, route.service_s)
    }

    /// The newest position of any of `orders` (a courier posts to each order of its run).
    pub fn last_position(&self, orders: &[Hash]) -> Option<PositionFix> {
        orders
            .iter()
            .filter_map(|o| self.order(o).and_then(|o| lock(&o.state).last_fix))
            .max_by_key(|fix| fix.at_ms)
    }

    /// Sets the delivery status and broadcasts it; `delivered` and `failed` end the tracking
    /// (watchers get the final snapshot, then the connection closes).
    pub fn set_status(
        &self,
        order: &Hash,
        status: TrackingStatus,
        now_ms: u64,
    ) -> Result<TrackingUpdate, TrackError> {
        let order = self.order(order).ok_or(TrackError::UnknownOrder)?;
        let mut state = lock(&order.state);
        if state.status.is_terminal() {
            return Err(TrackError::Ended(state.status));
        }
        state.status = status;
        if status == TrackingStatus::Delivered {
            state.eta_s = Some(0);
        }
        if status.is_terminal() {
            state.ended_ms = Some(now_ms);
        }
        Ok(order.publish(&mut state, now_ms))
    }

    /// Subscribes a watcher holding `token` (hex): the last snapshot, then every new one.
    pub fn watch(&self, order: &Hash, token: &str) -> Result<Watch, TrackError> {
        let token = WatchToken::from_hex(token).ok_or(TrackError::NotAllowed)?;
        let order = self.order(order).ok_or(TrackError::NotAllowed)?;
        // blake3::Hash compares in constant time.
        if blake3::hash(&token.0) != order.token_hash {
            return Err(TrackError::NotAllowed);
        }
        if order.watchers.fetch_add(1, Ordering::Relaxed) >= WATCHERS_PER_ORDER_MAX {
            order.watchers.fetch_sub(1, Ordering::Relaxed);
            return Err(TrackError::Full("watchers of this order"));
        }
        if self.watchers.fetch_add(1, Ordering::Relaxed) >= WATCHERS_MAX {
            self.watchers.fetch_sub(1, Ordering::Relaxed);
            order.watchers.fetch_sub(1, Ordering::Relaxed);
            return Err(TrackError::Full("watchers"));
        }
        let slot = WatcherSlot {
            order: order.watchers.clone(),
            total: self.watchers.clone(),
        };
        let mut updates = order.sender.subscribe();
        let first = updates.borrow_and_update().clone();
        Ok(Watch {
            first,
            updates,
            _slot: slot,
        })
    }

    /// The positions kept in memory for an order, oldest first (at most [`POSITIONS_KEPT`]).
    pub fn recent_positions(&self, order: &Hash) -> Vec<PositionFix> {
        self.order(order)
            .map(|o| lock(&o.state).recent.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Stops tracking an order now; its watchers' connections close.
    pub fn remove(&self, order: &Hash) -> bool {
        self.orders
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(order)
            .is_some()
    }

    pub fn orders(&self) -> usize {
        self.orders.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn watchers(&self) -> usize {
        self.watchers.load(Ordering::Relaxed)
    }
}

/// Forgets ended orders after [`ENDED_RETENTION_MS`] and idle ones after
/// [`IDLE_RETENTION_MS`].
fn sweep(orders: &mut HashMap<Hash, Arc<Order>>, now_ms: u64) {
    orders.retain(|_, order| {
        let state = lock(&order.state);
        let ended_long_ago = state
            .ended_ms
            .is_some_and(|ended| now_ms.saturating_sub(ended) > ENDED_RETENTION_MS);
        let idle = now_ms.saturating_sub(state.changed_ms) > IDLE_RETENTION_MS;
        !(ended_long_ago || idle)
    });
}

// ---- HTTP

pub fn routes<N: NodeApi>(node: N) -> Router {
    Router::new()
        .route("/v1/tracking/orders", post(register::<N>))
        .route("/v1/tracking/{order}/positions", post(position::<N>))
        .route("/v1/tracking/{order}/status", post(status::<N>))
        .route("/v1/tracking/{order}/ws", get(watch::<N>))
        .layer(axum::extract::DefaultBodyLimit::max(
            TRACKING_BODY_BYTES_MAX,
        ))
        .with_state(node)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn parse_order(text: &str) -> Result<Hash, Response> {
    Hash::from_hex(text).map_err(|reason| bad_request("order", reason))
}

fn json_body(body: &[u8]) -> Result<Value, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) if value.is_object() => Ok(value),
        Ok(_) => Err(bad_request("body", "must be a JSON object")),
        Err(e) => Err(bad_request("body", format!("not JSON: {e}"))),
    }
}

fn number(value: &Value, field: &'static str) -> Result<f64, Response> {
    value
        .as_f64()
        .ok_or_else(|| bad_request(field, "must be a number"))
}

fn forbidden(detail: String) -> Response {
    problem(StatusCode::FORBIDDEN, "Not allowed", detail, None)
}

/// Body of `POST /v1/tracking/orders`.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub(crate) struct RegisterRequest {
    /// The order's 32-byte hash, 64 hex digits.
    order: String,
    /// GLN of the courier organization (role logistics) whose members post positions.
    courier_gln: String,
    /// EPC URN or GTIN + serial display text shown to watchers (no PHI).
    package: String,
    /// Used for the ETA only, never sent to watchers.
    destination: GeoJson,
}

#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub(crate) struct GeoJson {
    lat: f64,
    lon: f64,
}

#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub(crate) struct RegisterResponse {
    order: String,
    /// Random 32 bytes, hex: what the dispatcher hands to the patient and staff.
    watch_token: String,
    watch_url: String,
}

#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub(crate) struct PositionRequest {
    lat: f64,
    lon: f64,
    /// When the fix was taken, ms since the Unix epoch (at most 60 s ahead of the node's clock,
    /// not older than the last position).
    at_ms: u64,
    /// Optional; the ETA uses 8 m/s when absent or below 0.5 m/s.
    speed_mps: Option<f64>,
}

#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub(crate) struct StatusRequest {
    /// picked_up | out_for_delivery | delivered | failed
    status: String,
}

#[utoipa::path(post, path = "/v1/tracking/orders", tag = "tracking", security(("bearer" = [])),
    request_body = RegisterRequest,
    responses((status = 201, body = RegisterResponse),
              (status = 400, description = "Invalid field, named (problem+json)"),
              (status = 409, description = "The order is already tracked"),
              (status = 503, description = "Too many tracked orders")))]
pub(crate) async fn register<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (caller, store) = match caller_of(&node, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let value = match json_body(&body) {
        Ok(value) => value,
        Err(response) => return response,
    };
    let order = match value["order"].as_str().map(parse_order) {
        Some(Ok(order)) => order,
        Some(Err(response)) => return response,
        None => return bad_request("order", "must be 64 hex digits"),
    };
    let courier = match value["courier_gln"].as_str().map(Gln::parse) {
        Some(Ok(gln)) => gln,
        Some(Err(rejection)) => return bad_request("courier_gln", rejection.message),
        None => return bad_request("courier_gln", "must be a GLN (13 digits)"),
    };
    let Some(package) = value["package"].as_str() else {
        return bad_request("package", "must be a string (EPC URN or GTIN + serial)");
    };
    let destination = &value["destination"];
    let lat = match number(&destination["lat"], "destination.lat") {
        Ok(v) => v,
        Err(response) => return response,
    };
    let lon = match number(&destination["lon"], "destination.lon") {
        Ok(v) => v,
        Err(response) => return response,
    };
    // The courier must be a logistics organization on this network.
    let courier_role = tokio::task::spawn_blocking(move || {
        let state = LedgerState::new(&*store);
        let organization = iam::organization(&state, &courier);
        match state.take_error() {
            Some(error) => Err(error.to_string()),
            None => Ok(organization.map(|o| o.role())),
        }
    })
    .await;
    match courier_role {
        Ok(Ok(Some(Role::Logistics))) => {}
        Ok(Ok(Some(role))) => {
            return bad_request(
                "courier_gln",
                format!("{courier} is a {} organization, not logistics", role.name()),
            )
        }
        Ok(Ok(None)) => {
            return bad_request(
                "courier_gln",
                format!("{courier} is not an organization on this network"),
            )
        }
        Ok(Err(reason)) => return internal_error(reason),
        Err(e) => return internal_error(e),
    }
    let spec = OrderSpec {
        order,
        dispatcher: caller.organization.gln(),
        courier,
        package: package.to_owned(),
        destination: GeoPoint::new(lat, lon),
    };
    let tracker = node.tracker();
    let token = match tracker.register(spec.clone(), now_ms()) {
        Ok(token) => token,
        Err(error) => return error.into_response(),
    };
    // Durable before the answer: a restart registers it again with the same watch link.
    let record = Registration {
        dispatcher: spec.dispatcher.to_string(),
        courier: spec.courier.to_string(),
        package: spec.package.clone(),
        destination: [lat, lon],
        token: token.to_hex(),
        registered_ms: now_ms(),
    };
    let saved = serde_json::to_vec(&record)
        .map_err(|e| e.to_string())
        .and_then(|bytes| node.local_put(&registration_key(&order), &bytes));
    if let Err(reason) = saved {
        tracker.remove(&order);
        return internal_error(reason);
    }
    (
        StatusCode::CREATED,
        Json(json!({
            "order": order.to_hex(),
            "watch_token": token.to_hex(),
            "watch_url": token.watch_url(&order),
        })),
    )
        .into_response()
}

/// The caller's organization must be the order's courier (or, unless `courier_only`, its
/// dispatcher).
async fn party_caller<N: NodeApi>(
    node: &N,
    headers: &HeaderMap,
    order: &Hash,
    courier_only: bool,
) -> Result<(), Response> {
    let (caller, _) = caller_of(node, headers).await?;
    let (dispatcher, courier) = node
        .tracker()
        .parties(order)
        .ok_or_else(|| TrackError::UnknownOrder.into_response())?;
    let gln = caller.organization.gln();
    if gln == courier || (!courier_only && gln == dispatcher) {
        return Ok(());
    }
    Err(forbidden(if courier_only {
        format!("only members of the courier organization {courier} post positions")
    } else {
        format!("only the courier {courier} or the dispatcher {dispatcher} set the status")
    }))
}

#[utoipa::path(post, path = "/v1/tracking/{order}/positions", tag = "tracking", security(("bearer" = [])),
    params(("order" = String, Path, description = "Order hash, 64 hex digits")),
    request_body = PositionRequest,
    responses((status = 200, body = TrackingUpdate, description = "The snapshot broadcast to watchers"),
              (status = 400, description = "Invalid field, named (problem+json)"),
              (status = 403, description = "Not a member of the order's courier organization"),
              (status = 404, description = "Unknown order"),
              (status = 409, description = "Older than the last position, or the delivery ended")))]
pub(crate) async fn position<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Path(order): Path<String>,
    body: Bytes,
) -> Response {
    order_update(
        node,
        headers,
        order,
        body,
        true,
        position_of,
        Tracker::post_position,
    )
    .await
}

/// Checks the order and that the caller is its courier (or, unless `courier_only`, its
/// dispatcher), reads the body with `parse`, applies it and answers the snapshot.
async fn order_update<N: NodeApi, T>(
    node: N,
    headers: HeaderMap,
    order: String,
    body: Bytes,
    courier_only: bool,
    parse: fn(&[u8]) -> Result<T, Response>,
    apply: fn(&Tracker, &Hash, T, u64) -> Result<TrackingUpdate, TrackError>,
) -> Response {
    let order = match parse_order(&order) {
        Ok(order) => order,
        Err(response) => return response,
    };
    if let Err(response) = party_caller(&node, &headers, &order, courier_only).await {
        return response;
    }
    let input = match parse(&body) {
        Ok(input) => input,
        Err(response) => return response,
    };
    match apply(&node.tracker(), &order, input, now_ms()) {
        Ok(update) => {
            if update.status.is_terminal() {
                if let Err(reason) = node.local_delete(&registration_key(&order)) {
                    tracing::warn!(%order, reason, "could not forget an ended tracking registration");
                }
            }
            Json(update).into_response()
        }
        Err(error) => error.into_response(),
    }
}

/// Orders registered over `POST /v1/tracking/orders`, kept in the node's local store until
/// they end (the saga's own orders are re-registered by the saga).
const REGISTRATION_PREFIX: &str = "tracking-orders/";

fn registration_key(order: &Hash) -> String {
    format!("{REGISTRATION_PREFIX}{}", order.to_hex())
}

/// What a restart needs to register an order again with the link handed out.
#[derive(Serialize, Deserialize)]
struct Registration {
    dispatcher: String,
    courier: String,
    package: String,
    destination: [f64; 2],
    token: String,
    registered_ms: u64,
}

/// Registers again, after a restart, the orders registered over the API that have not ended
/// (positions and statuses were in memory: watchers see `registered` until the courier posts
/// again). Registrations older than [`IDLE_RETENTION_MS`] are dropped, as the tracker would
/// have. Returns how many were restored.
pub fn restore<N: NodeApi>(node: &N) -> usize {
    let records = match node.local_scan(REGISTRATION_PREFIX) {
        Ok(records) => records,
        Err(reason) => {
            tracing::error!(reason, "cannot read the tracking registrations");
            return 0;
        }
    };
    let tracker = node.tracker();
    let now = now_ms();
    let mut restored = 0;
    for (order_hex, bytes) in records {
        let key = format!("{REGISTRATION_PREFIX}{order_hex}");
        let parsed = serde_json::from_slice::<Registration>(&bytes)
            .ok()
            .and_then(|r| {
                let order = parse_order(&order_hex).ok()?;
                let token = WatchToken::from_hex(&r.token)?;
                let spec = OrderSpec {
                    order,
                    dispatcher: Gln::parse(&r.dispatcher).ok()?,
                    courier: Gln::parse(&r.courier).ok()?,
                    package: r.package,
                    destination: GeoPoint::new(r.destination[0], r.destination[1]),
                };
                Some((spec, token, r.registered_ms))
            });
        match parsed {
            Some((spec, token, registered_ms))
                if now.saturating_sub(registered_ms) <= IDLE_RETENTION_MS =>
            {
                match tracker.register_with_token(spec, token, now) {
                    Ok(_) | Err(TrackError::AlreadyRegistered) => restored += 1,
                    Err(error) => {
                        tracing::warn!(order = order_hex, %error, "tracking registration not restored")
                    }
                }
            }
            _ => {
                let _ = node.local_delete(&key);
            }
        }
    }
    restored
}

fn position_of(body: &[u8]) -> Result<PositionFix, Response> {
    let value = json_body(body)?;
    let lat = number(&value["lat"], "lat")?;
    let lon = number(&value["lon"], "lon")?;
    let at_ms = value["at_ms"]
        .as_u64()
        .ok_or_else(|| bad_request("at_ms", "must be ms since the Unix epoch (an integer)"))?;
    let speed_mps = match &value["speed_mps"] {
        Value::Null => None,
        speed => Some(number(speed, "speed_mps")?),
    };
    Ok(PositionFix {
        point: GeoPoint::new(lat, lon),
        at_ms,
        speed_mps,
    })
}

#[utoipa::path(post, path = "/v1/tracking/{order}/status", tag = "tracking", security(("bearer" = [])),
    params(("order" = String, Path, description = "Order hash, 64 hex digits")),
    request_body = StatusRequest,
    responses((status = 200, body = TrackingUpdate, description = "The snapshot broadcast to watchers"),
              (status = 400, description = "Unknown status"),
              (status = 403, description = "Neither the courier nor the dispatcher"),
              (status = 404, description = "Unknown order"),
              (status = 409, description = "The delivery already ended")))]
pub(crate) async fn status<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Path(order): Path<String>,
    body: Bytes,
) -> Response {
    order_update(
        node,
        headers,
        order,
        body,
        false,
        status_of,
        Tracker::set_status,
    )
    .await
}

fn status_of(body: &[u8]) -> Result<TrackingStatus, Response> {
    json_body(body)?["status"]
        .as_str()
        .and_then(TrackingStatus::parse)
        .ok_or_else(|| {
            bad_request(
                "status",
                "must be picked_up, out_for_delivery, delivered or failed",
            )
        })
}

#[derive(Deserialize)]
pub(crate) struct WatchParams {
    token: Option<String>,
}

#[utoipa::path(get, path = "/v1/tracking/{order}/ws", tag = "tracking",
    params(("order" = String, Path, description = "Order hash, 64 hex digits"),
           ("token" = String, Query, description = "The order's watch token")),
    responses((status = 101, description = "WebSocket: JSON TrackingUpdate messages, the last one first; closes after delivered or failed", body = TrackingUpdate),
              (status = 400, description = "Not a WebSocket upgrade"),
              (status = 403, description = "Unknown order, or a missing or wrong token"),
              (status = 503, description = "Too many watchers")))]
pub(crate) async fn watch<N: NodeApi>(
    State(node): State<N>,
    Path(order): Path<String>,
    Query(params): Query<WatchParams>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let order = match parse_order(&order) {
        Ok(order) => order,
        Err(response) => return response,
    };
    let Some(token) = params.token else {
        return TrackError::NotAllowed.into_response();
    };
    let watch = match node.tracker().watch(&order, &token) {
        Ok(watch) => watch,
        Err(error) => return error.into_response(),
    };
    match upgrade {
        Ok(upgrade) => upgrade
            .max_message_size(WATCHER_MESSAGE_BYTES_MAX)
            .read_buffer_size(WATCHER_READ_BUFFER_BYTES)
            .on_upgrade(move |socket| forward(socket, watch)),
        Err(rejection) => rejection.into_response(),
    }
}

/// Sends a watcher the last snapshot, then the newest each time it changes (a watcher that
/// lags skips the snapshots it missed).
///
/// The fan-out of one order to thousands of watchers is CPU-bound, so the common path is lean:
/// a separate task reads the watcher's side (it only closes, or answers pings) and is not
/// polled on every update; the send timer exists only when a send does not complete at once;
/// the update branch is polled first and alone when ready.
async fn forward(socket: WebSocket, mut watch: Watch) {
    use futures::{SinkExt, StreamExt};
    use std::future::Future;
    async fn send(
        sink: &mut futures::stream::SplitSink<WebSocket, Message>,
        message: Message,
    ) -> bool {
        let mut sending = std::pin::pin!(sink.send(message));
        let first =
            std::future::poll_fn(|cx| std::task::Poll::Ready(sending.as_mut().poll(cx))).await;
        match first {
            std::task::Poll::Ready(result) => result.is_ok(),
            std::task::Poll::Pending => matches!(
                tokio::time::timeout(WATCHER_SEND_TIMEOUT, sending).await,
                Ok(Ok(()))
            ),
        }
    }
    let (mut sink, mut stream) = socket.split();
    let (closed_tx, mut closed) = tokio::sync::oneshot::channel::<()>();
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
        drop(closed_tx);
    });
    if let Some(first) = watch.first.take() {
        if !send(&mut sink, Message::Text(first.text)).await || first.terminal {
            let _ = sink.send(Message::Close(None)).await;
            reader.abort();
            return;
        }
    }
    let mut ping = tokio::time::interval(WATCHER_PING_INTERVAL);
    ping.tick().await;
    loop {
        tokio::select! {
            biased;
            changed = watch.updates.changed() => {
                if changed.is_err() {
                    break; // The order is no longer tracked.
                }
                let Some(published) = watch.updates.borrow_and_update().clone() else {
                    continue;
                };
                if !send(&mut sink, Message::Text(published.text)).await {
                    reader.abort();
                    return;
                }
                if published.terminal {
                    break;
                }
            }
            _ = &mut closed => {
                reader.abort();
                return;
            }
            _ = ping.tick() => {
                if !send(&mut sink, Message::Ping(Bytes::new())).await {
                    reader.abort();
                    return;
                }
            }
        }
    }
    let _ = sink.send(Message::Close(None)).await;
    reader.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(order: u8) -> OrderSpec {
        OrderSpec {
            order: Hash([order; 32]),
            dispatcher: Gln::parse("0300030000002").unwrap(),
            courier: Gln::parse("0300040000009").unwrap(),
            package: "urn:epc:id:sgtin:0300010.012345.1001".into(),
            destination: GeoPoint::new(40.7357, -74.1724),
        }
    }

    fn fix(lat: f64, lon: f64, at_ms: u64) -> PositionFix {
        PositionFix {
            point: GeoPoint::new(lat, lon),
            at_ms,
            speed_mps: Some(10.0),
        }
    }

    #[test]
    fn eta_drives_through_the_open_stops_ahead_in_the_run() {
        let tracker = Tracker::new();
        tracker.register(spec(1), 1_000).unwrap();
        let mut second = spec(2);
        // 0.01° north of the first stop.
        second.destination = GeoPoint::new(40.7457, -74.1724);
        tracker.register(second, 1_000).unwrap();
        let (first, later) = (Hash([1; 32]), Hash([2; 32]));
        tracker.set_route(&later, vec![(first, spec(1).destination)], 60.0);
        // From 0.01° south of the first stop: 112 s to it, 60 s there, 112 s on.
        let update = tracker
            .post_position(&later, fix(40.7257, -74.1724, 1_500), 2_000)
            .unwrap();
        assert_eq!(update.eta_s, Some(112 + 60 + 112));
        assert_eq!(
            tracker.last_position(&[first, later]).map(|f| f.at_ms),
            Some(1_500)
        );
        // Once the first stop is delivered, the ETA goes straight there.
        tracker
            .set_status(&first, TrackingStatus::Delivered, 2_100)
            .unwrap();
        let update = tracker
            .post_position(&later, fix(40.7257, -74.1724, 2_500), 3_000)
            .unwrap();
        assert_eq!(update.eta_s, Some(223));
    }

    #[test]
    fn positions_reach_watchers_with_eta_and_no_destination() {
        let tracker = Tracker::new();
        let token = tracker.register(spec(1), 1_000).unwrap();
        let order = Hash([1; 32]);
        let mut watch = tracker.watch(&order, &token.to_hex()).unwrap();
        assert!(watch.first.is_some(), "the registration snapshot");
        // 0.01° of latitude ≈ 1,112 m at 10 m/s → 112 s.
        let update = tracker
            .post_position(&order, fix(40.7457, -74.1724, 1_500), 2_000)
            .unwrap();
        assert_eq!(update.eta_s, Some(112));
        assert!(watch.updates.has_changed().unwrap());
        let text = watch.updates.borrow_and_update().clone().unwrap().text;
        let value: Value = serde_json::from_str(text.as_str()).unwrap();
        assert_eq!(value["eta_s"], 112);
        assert_eq!(value["seq"], 2);
        assert!(
            !text.as_str().contains("40.7357"),
            "destination leaked: {text}"
        );
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys,
            ["at_ms", "eta_s", "lat", "lon", "order", "package", "seq", "status"]
        );
    }

    #[test]
    fn refusals_name_the_rule() {
        let tracker = Tracker::new();
        let token = tracker.register(spec(2), 1_000).unwrap();
        let order = Hash([2; 32]);
        let check = |result: Result<TrackingUpdate, TrackError>, field: &str| match result {
            Err(TrackError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected an invalid {field}, got {other:?}"),
        };
        check(
            tracker.post_position(&order, fix(91.0, 0.0, 1), 1_000),
            "lat",
        );
        check(
            tracker.post_position(&order, fix(0.0, -181.0, 1), 1_000),
            "lon",
        );
        check(
            tracker.post_position(&order, fix(0.0, 0.0, 1_000 + FUTURE_SKEW_MS + 1), 1_000),
            "at_ms",
        );
        let mut fast = fix(0.0, 0.0, 1);
        fast.speed_mps = Some(f64::NAN);
        check(tracker.post_position(&order, fast, 1_000), "speed_mps");
        let mut bad = spec(3);
        bad.destination.lat = f64::INFINITY;
        assert!(matches!(
            tracker.register(bad, 1_000),
            Err(TrackError::Invalid {
                field: "destination.lat",
                ..
            })
        ));
        assert_eq!(
            tracker.register(spec(2), 1_000).unwrap_err(),
            TrackError::AlreadyRegistered
        );
        tracker
            .post_position(&order, fix(0.0, 0.0, 500), 1_000)
            .unwrap();
        assert_eq!(
            tracker
                .post_position(&order, fix(0.0, 0.0, 400), 1_000)
                .unwrap_err(),
            TrackError::Stale { last_at_ms: 500 }
        );
        assert_eq!(
            tracker.watch(&order, &"00".repeat(32)).err().unwrap(),
            TrackError::NotAllowed
        );
        assert_eq!(
            tracker
                .watch(&Hash([9; 32]), &token.to_hex())
                .err()
                .unwrap(),
            TrackError::NotAllowed
        );
        tracker
            .set_status(&order, TrackingStatus::Delivered, 2_000)
            .unwrap();
        assert_eq!(
            tracker
                .post_position(&order, fix(0.0, 0.0, 600), 2_000)
                .unwrap_err(),
            TrackError::Ended(TrackingStatus::Delivered)
        );
    }

    #[test]
    fn late_joiner_gets_the_last_snapshot_and_slow_watcher_skips_ahead() {
        let tracker = Tracker::new();
        let token = tracker.register(spec(4), 0).unwrap();
        let order = Hash([4; 32]);
        let mut slow = tracker.watch(&order, &token.to_hex()).unwrap();
        for i in 0..48 {
            tracker
                .post_position(&order, fix(40.0, -74.0, 1 + i), 1_000)
                .unwrap();
        }
        let late = tracker.watch(&order, &token.to_hex()).unwrap();
        let last: Value = serde_json::from_str(late.first.unwrap().text.as_str()).unwrap();
        assert_eq!(last["at_ms"], 48);
        // The slow one skips to the newest snapshot.
        assert!(slow.updates.has_changed().unwrap());
        let newest = slow.updates.borrow_and_update().clone().unwrap();
        let newest: Value = serde_json::from_str(newest.text.as_str()).unwrap();
        assert_eq!((&newest["at_ms"], &newest["seq"]), (&json!(48), &json!(49)));
        assert!(!slow.updates.has_changed().unwrap());
        assert_eq!(tracker.recent_positions(&order).len(), POSITIONS_KEPT);
        assert_eq!(tracker.watchers(), 2);
        drop(slow);
        assert_eq!(tracker.watchers(), 1);
    }

    #[test]
    fn ended_orders_are_forgotten_after_retention() {
        let tracker = Tracker::new();
        tracker.register(spec(5), 0).unwrap();
        tracker
            .set_status(&Hash([5; 32]), TrackingStatus::Failed, 10)
            .unwrap();
        tracker.register(spec(6), 20).unwrap();
        assert_eq!(tracker.orders(), 2);
        tracker
            .register(spec(7), 10 + ENDED_RETENTION_MS + 1)
            .unwrap();
        assert_eq!(tracker.orders(), 2, "order 5 ended long ago");
        assert!(tracker.parties(&Hash([5; 32])).is_none());
    }
}
