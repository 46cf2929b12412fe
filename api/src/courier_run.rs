//! A courier's multi-stop run (issue 9, route optimisation): `POST
//! /v1/dispatch/vehicles/{courier}/{vehicle}/run` on the pharmacy's node plans the order in
//! which one vehicle visits the open deliveries assigned to it.
//!
//! | | |
//! |---|---|
//! | Stops | this node's running sagas whose delivery the ledger shows assigned to, or picked up by, the vehicle; their destinations and windows are off-ledger, in the sagas |
//! | Start | `from` in the request, else the newest position the courier posted for any of the stops, else the vehicle's base |
//! | Solver | [`pharmalink_contracts::route`]: iterated local search over great-circle distances; each order's delivery window becomes a soft time window, cold-chain stops are served early |
//! | Effect | every stop's live-tracking ETA then drives through the stops planned before it (still open ones only) |
//! | Who | the courier named in the path, or the pharmacy whose orders they are (only its own stops) |
//!
//! The plan is advice, not a ledger event: couriers re-plan after each stop (or when an order
//! is added); custody still moves only through pickup and handoff.

use crate::auth::now_s;
use crate::dispatch::{active_sagas, geo_point, Saga, SagaStatus, Step};
use crate::epcis_api::caller_of;
use crate::http::{bad_request, internal_error, parse_json, problem, NodeApi};
use crate::pharmacy::blocking;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use pharmalink_contracts::contract::{Gln, LedgerState, Role};
use pharmalink_contracts::custody::dispatch::{self as dp, DeliveryState};
use pharmalink_contracts::route::{
    solve_geo, GeoPoint, RouteOptions, StopConstraints, TourEnd, MAX_STOPS,
};
use pharmalink_ledger::Hash;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Minutes spent at a stop when the request does not say.
pub const DEFAULT_SERVICE_S: f64 = 120.0;
/// Speed assumed when the request does not say: 30 km/h.
pub const DEFAULT_SPEED_KMH: f64 = 30.0;

pub fn routes<N: NodeApi>(node: N) -> Router {
    Router::new()
        .route(
            "/v1/dispatch/vehicles/{courier}/{vehicle}/run",
            post(plan::<N>),
        )
        .with_state(node)
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// Where the vehicle is now, [lat, lon] (default: its last posted position, else its base).
    #[serde(default)]
    pub from: Option<[f64; 2]>,
    /// `return` to the start (default) or end at the `last_stop`.
    #[serde(default)]
    pub end: Option<String>,
    /// Average speed, km/h (default 30).
    #[serde(default)]
    pub speed_kmh: Option<f64>,
    /// Seconds spent at each stop (default 120).
    #[serde(default)]
    pub service_s: Option<f64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RunStop {
    pub order: String,
    pub items: Vec<String>,
    /// [lat, lon] of the recipient (for the courier; never on the ledger or to watchers).
    pub destination: [f64; 2],
    pub cold_chain: bool,
    pub picked_up: bool,
    /// [earliest, latest] Unix seconds, when the order has one.
    pub window: Option<[u64; 2]>,
    /// Planned arrival and departure, Unix seconds.
    pub arrival_unix_s: u64,
    pub departure_unix_s: u64,
    /// Seconds after the window closes (0 when on time).
    pub late_s: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RunPlan {
    pub courier: String,
    pub vehicle: String,
    pub from: [f64; 2],
    /// `request`, `last_position` or `vehicle_base`.
    pub from_source: &'static str,
    pub end: &'static str,
    pub stops: Vec<RunStop>,
    pub distance_m: f64,
    /// Back at the start (or leaving the last stop), Unix seconds.
    pub finish_unix_s: u64,
    /// Stops that miss their window even in the best order found.
    pub windows_missed: usize,
    /// The vehicle's range covers the run's distance.
    pub within_range: bool,
    pub solve_ms: f64,
}

/// One open delivery of the vehicle.
struct Candidate {
    order: Hash,
    saga: Saga,
    picked_up: bool,
}

fn positive(
    field: &'static str,
    value: Option<f64>,
    default: f64,
    max: f64,
) -> Result<f64, Response> {
    match value {
        None => Ok(default),
        Some(v) if v.is_finite() && v > 0.0 && v <= max => Ok(v),
        Some(v) => Err(bad_request(field, format!("{v} is not in (0, {max}]"))),
    }
}

/// `POST /v1/dispatch/vehicles/{courier}/{vehicle}/run`: the best order to visit the vehicle's
/// open deliveries from where it is, with ETAs; the tracking ETAs follow the plan.
#[utoipa::path(post, path = "/v1/dispatch/vehicles/{courier}/{vehicle}/run", tag = "dispatch", security(("bearer" = [])),
    params(("courier" = String, Path, description = "Courier GLN"), ("vehicle" = String, Path, description = "Vehicle id")),
    request_body = RunRequest,
    responses((status = 200, body = RunPlan), (status = 400, description = "A bad field, named"),
              (status = 403, description = "Neither that courier nor a pharmacy"), (status = 404, description = "No such vehicle")))]
pub(crate) async fn plan<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Path((courier, vehicle)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (caller, store) = match caller_of(&node, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Ok(courier) = Gln::parse(&courier) else {
        return bad_request(
            "courier",
            format!("{courier:?} is not a GLN (13 digits, check digit)"),
        );
    };
    let request: RunRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RunRequest::default()
    } else {
        match parse_json(&body, "a run request") {
            Ok(r) => r,
            Err(response) => return response,
        }
    };
    let end = match request.end.as_deref() {
        None | Some("return") => TourEnd::ReturnToDepot,
        Some("last_stop") => TourEnd::EndAtLastStop,
        Some(other) => return bad_request("end", format!("{other:?}: `return` or `last_stop`")),
    };
    let speed_kmh = match positive("speed_kmh", request.speed_kmh, DEFAULT_SPEED_KMH, 300.0) {
        Ok(v) => v,
        Err(response) => return response,
    };
    let service_s = match request.service_s {
        None => DEFAULT_SERVICE_S,
        Some(v) if v.is_finite() && (0.0..=7_200.0).contains(&v) => v,
        Some(v) => return bad_request("service_s", format!("{v} is not in [0, 7200] seconds")),
    };
    let from = match request.from.map(|p| geo_point("from", p)).transpose() {
        Ok(from) => from,
        Err(response) => return response,
    };
    let gln = caller.organization.gln();
    // Whose stops: all of them for the courier, a pharmacy's own for the pharmacy.
    let pharmacy = if gln == courier {
        None
    } else if caller.role() == Role::Dispenser {
        Some(gln.to_string())
    } else {
        return problem(
            StatusCode::FORBIDDEN,
            "Not allowed",
            format!(
                "only courier {courier} or a pharmacy with orders on this vehicle plans its run"
            ),
            Some("courier"),
        );
    };
    let sagas = match active_sagas(&node) {
        Ok(sagas) => sagas,
        Err(e) => return internal_error(e),
    };
    let vehicle_id = vehicle.clone();
    let found = blocking(move || {
        let state = LedgerState::new(&*store);
        let profile = dp::vehicle(&state, &courier, &vehicle_id).ok_or_else(|| {
            problem(
                StatusCode::NOT_FOUND,
                "No such vehicle",
                format!("courier {courier} registered no vehicle {vehicle_id:?}"),
                Some("vehicle"),
            )
        })?;
        let mut open = Vec::new();
        for saga in sagas {
            if saga.status != SagaStatus::Running
                || saga.step != Step::Deliver
                || pharmacy
                    .as_ref()
                    .is_some_and(|p| saga.pharmacy_gln.as_ref() != Some(p))
            {
                continue;
            }
            let Ok(order) = Hash::from_hex(&saga.order) else {
                continue;
            };
            let picked_up = match dp::delivery(&state, &order).map(|r| r.state) {
                Some(DeliveryState::Assigned {
                    courier: c,
                    vehicle: v,
                }) if c == courier && v == vehicle_id => false,
                Some(DeliveryState::PickedUp {
                    courier: c,
                    vehicle: v,
                }) if c == courier && v == vehicle_id => true,
                _ => continue,
            };
            open.push(Candidate {
                order,
                saga,
                picked_up,
            });
        }
        Ok((profile, open))
    })
    .await;
    let (profile, mut open) = match found {
        Ok(found) => found,
        Err(response) => return response,
    };
    if open.len() > MAX_STOPS {
        return problem(
            StatusCode::CONFLICT,
            "Run too large",
            format!(
                "{} open deliveries: at most {MAX_STOPS} in one run",
                open.len()
            ),
            Some("vehicle"),
        );
    }
    // The same stops in the same order every time (the solver is deterministic per input).
    open.sort_by(|a, b| a.saga.order.cmp(&b.saga.order));
    let orders: Vec<Hash> = open.iter().map(|c| c.order).collect();
    let tracker = node.tracker();
    let (start, from_source) = match (from, tracker.last_position(&orders)) {
        (Some(point), _) => (point, "request"),
        (None, Some(fix)) => (fix.point, "last_position"),
        (None, None) => (
            GeoPoint {
                lat: f64::from(profile.base_lat_e6) / 1e6,
                lon: f64::from(profile.base_lon_e6) / 1e6,
            },
            "vehicle_base",
        ),
    };
    let now = now_s();
    let points: Vec<GeoPoint> = open
        .iter()
        .map(|c| GeoPoint {
            lat: c.saga.destination[0],
            lon: c.saga.destination[1],
        })
        .collect();
    let constraints: Vec<StopConstraints> = open
        .iter()
        .map(|c| StopConstraints {
            earliest_s: c.saga.window.map(|[e, _]| e.saturating_sub(now) as f64),
            latest_s: c.saga.window.map(|[_, l]| l.saturating_sub(now) as f64),
            service_s,
            cold_chain: c.saga.cold_chain,
        })
        .collect();
    let options = RouteOptions {
        end,
        speed_mps: speed_kmh / 3.6,
        stops: constraints,
        ..RouteOptions::default()
    };
    let solved = blocking(move || {
        let started = Instant::now();
        solve_geo(start, &points, &options)
            .map(|route| (route, points, started.elapsed().as_secs_f64() * 1e3))
            .map_err(|e| {
                problem(
                    StatusCode::CONFLICT,
                    "Run cannot be planned",
                    e.to_string(),
                    None,
                )
            })
    })
    .await;
    let (route, points, solve_ms) = match solved {
        Ok(solved) => solved,
        Err(response) => return response,
    };
    // Each stop's tracking ETA drives through the stops planned before it.
    for (k, visit) in route.visits.iter().enumerate() {
        let ahead = route.visits[..k]
            .iter()
            .map(|v| (open[v.stop].order, points[v.stop]))
            .collect();
        tracker.set_route(&open[visit.stop].order, ahead, service_s);
    }
    let at = |s: f64| now + s.max(0.0).round() as u64;
    let stops = route
        .visits
        .iter()
        .map(|v| {
            let c = &open[v.stop];
            RunStop {
                order: c.saga.order.clone(),
                items: c.saga.items.clone(),
                destination: c.saga.destination,
                cold_chain: c.saga.cold_chain,
                picked_up: c.picked_up,
                window: c.saga.window,
                arrival_unix_s: at(v.arrival_s),
                departure_unix_s: at(v.departure_s),
                late_s: v.late_s.round() as u64,
            }
        })
        .collect();
    Json(RunPlan {
        courier: courier.to_string(),
        vehicle,
        from: [start.lat, start.lon],
        from_source,
        end: match end {
            TourEnd::ReturnToDepot => "return",
            TourEnd::EndAtLastStop => "last_stop",
        },
        stops,
        distance_m: route.distance_m.round(),
        finish_unix_s: at(route.end_s),
        windows_missed: route.windows_violated.len(),
        within_range: route.distance_m <= f64::from(profile.range_m),
        solve_ms,
    })
    .into_response()
}
