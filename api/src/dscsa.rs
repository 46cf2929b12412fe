//! DSCSA endpoints for authorized trading partners and regulators (bearer JWT, see
//! [`crate::auth`]):
//!
//! - `GET /v1/dscsa/trace?epc=…` (an EPC URN, a GS1 Digital Link or scanned text): current
//!   status, owner and holder; the custody history back to commissioning as an EPCIS 2.0
//!   document (aggregation inferred: events on a case apply to its contents); and the TI/TS of
//!   each transaction (parties, bizTransactions, TS affirmation, TI commitment). Regulators
//!   may trace any package; a trading partner only one it owned, held, sold or bought, and
//!   sees only the transactions it was party to.
//! - `POST /v1/dscsa/verify`: product identifier verification in the VRS shape
//!   (`gtin`, `serialNumber`, `lotNumber`, `expirationDate` YYMMDD, `correlationUUID` →
//!   `verified`, `verificationFailureReasonCode`, `responderGLN`). Authorized trading partners
//!   and regulators only.
//! - `GET /v1/dscsa/recalls/{gtin}/{lot}`: every package of the lot, its holder and status
//!   (regulators and the product's manufacturer).
//! - `GET /v1/dscsa/exceptions` and `GET /v1/dscsa/shipments/open`: the caller's open
//!   exceptions (PDG categories) and shipments; a regulator passes `?gln=`.

use crate::auth::{authenticate, now_s, today, AuthError, Caller};
use crate::consumer::{parse_code, scanned_epc};
use crate::http::{bad_request, internal_error, problem, NodeApi};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pharmalink_contracts::contract::event::{Event, ExceptionRecord, ShipmentRecord};
use pharmalink_contracts::contract::{Date, Epc, Gln, Gtin, LedgerState, LoggedEvent, Role};
use pharmalink_contracts::custody::{self, query, Status};
use pharmalink_contracts::gs1::date::parse_yymmdd;
use pharmalink_ledger::LedgerRead;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Most history events a trace returns.
pub const TRACE_EVENTS_MAX: usize = 2_000;

pub fn routes<N: NodeApi>(node: N) -> Router {
    Router::new()
        .route("/v1/dscsa/trace", get(trace::<N>))
        .route("/v1/dscsa/verify", post(verify::<N>))
        .route("/v1/dscsa/recalls/{gtin}/{lot}", get(recall::<N>))
        .route("/v1/dscsa/exceptions", get(exceptions::<N>))
        .route("/v1/dscsa/shipments/open", get(open_shipments::<N>))
        .route("/v1/dscsa/suspect", get(suspect::<N>))
        .with_state(node)
}

type Store = Arc<dyn LedgerRead + Send + Sync>;

/// Runs `f` with the ledger and the authenticated caller on a blocking thread.
async fn with_caller<N: NodeApi>(
    node: &N,
    headers: HeaderMap,
    f: impl FnOnce(&dyn LedgerRead, Caller) -> Response + Send + 'static,
) -> Response {
    let store: Store = node.ledger();
    tokio::task::spawn_blocking(move || match authenticate(&headers, &*store, now_s()) {
        Ok(caller) => f(&*store, caller),
        Err(error) => error.into_response(),
    })
    .await
    .unwrap_or_else(|e| internal_error(e))
}

/// Records the answer in the access audit (every trace, every regulator query) and returns it;
/// if the record cannot be written, the caller gets 503 instead of an unrecorded answer.
fn audited<N: NodeApi>(
    node: &N,
    caller: &Caller,
    action: &str,
    subject: &str,
    response: Response,
) -> Response {
    match crate::audit::record(node, caller, action, subject, response.status().as_u16()) {
        Ok(()) => response,
        Err(refused) => refused,
    }
}

fn forbidden(reason: impl Into<String>) -> Response {
    AuthError::Forbidden(reason.into()).into_response()
}

/// An EPC from a URN, a Digital Link or scanned text; the error names the rule.
pub fn resolve_epc(store: &dyn LedgerRead, text: &str) -> Result<Epc, String> {
    let text = text.trim();
    if text.starts_with("urn:epc:id:") {
        pharmalink_contracts::gs1::epc::EpcId::parse_urn(text).map_err(|e| e.to_string())?;
        return Ok(Epc::new(text));
    }
    if let Ok(scanned) = parse_code(text, today().year()) {
        return scanned_epc(store, &scanned);
    }
    // An SSCC (container) in any GS1 syntax.
    let summary =
        pharmalink_contracts::gs1::parse_any(text, today().year()).map_err(|e| e.to_string())?;
    match summary.sscc {
        Some(sscc) => {
            let state = LedgerState::new(store);
            // The company prefix length of an SSCC is not in the code: try each.
            for length in 6..=12u8 {
                if let Ok(epc) = Epc::sscc(&sscc, length) {
                    if custody::item(&state, &epc).is_some() {
                        return Ok(epc);
                    }
                }
            }
            Err(format!("SSCC {sscc} is not known here"))
        }
        None => Err("names neither a serialized GTIN (01 + 21) nor an SSCC (00)".into()),
    }
}

fn gln_json(gln: &Gln) -> Value {
    json!(gln.to_string())
}

fn shipment_json(s: &ShipmentRecord) -> Value {
    json!({
        "shipment_id": s.id,
        "kind": format!("{:?}", s.kind).to_lowercase(),
        "seller_gln": gln_json(&s.seller),
        "shipper_gln": gln_json(&s.shipper),
        "buyer_gln": gln_json(&s.recipient),
        "carrier_gln": s.carrier.as_ref().map(gln_json),
        "items": s.items.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
        "outstanding": s.outstanding.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
        "biz_transactions": s.biz_transactions.iter().map(|b| json!({"type": b.kind.cbv(), "id": b.id})).collect::<Vec<_>>(),
        "transaction_statement_affirmed": s.statement.affirmed,
        "transaction_information": s.transaction_information.as_ref().map(|t| json!({
            "commitment": t.commitment.to_hex(),
            "blob_hash": t.blob_hash.to_hex(),
        })),
        "shipped_at_height": s.shipped_height,
        "shipped_at": crate::consumer::iso_time(s.shipped_timestamp_ms),
    })
}

fn exception_json(x: &ExceptionRecord) -> Value {
    json!({
        "exception_id": x.id,
        "party_gln": gln_json(&x.party),
        "shipment_id": x.shipment_id,
        "category": x.category.name(),
        "source": format!("{:?}", x.source).to_lowercase(),
        "epcs": x.epcs.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
        "detail": x.detail,
        "resolved": x.resolution.is_some(),
    })
}

#[derive(Deserialize)]
pub(crate) struct TraceParams {
    epc: Option<String>,
}

#[utoipa::path(get, path = "/v1/dscsa/trace", tag = "dscsa", security(("bearer" = [])),
    params(("epc" = String, Query, description = "EPC URN, GS1 Digital Link or scanned text")),
    responses((status = 200, description = "status, history (EPCIS 2.0 JSON-LD), inferred_through, transactions (TI/TS commitments)", content_type = "application/json"),
              (status = 401, description = "No or bad bearer token"), (status = 403, description = "Not a trading partner of this package"), (status = 404, description = "Never commissioned")))]
pub(crate) async fn trace<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Query(params): Query<TraceParams>,
) -> Response {
    let Some(text) = params.epc.filter(|t| !t.trim().is_empty()) else {
        return bad_request(
            "epc",
            "give ?epc= an EPC URN, a GS1 Digital Link or the scanned code",
        );
    };
    let auditor = node.clone();
    with_caller(&node, headers, move |store, caller| {
        let response = trace_answer(store, &caller, &text);
        audited(&auditor, &caller, "trace", &text, response)
    })
    .await
}

fn trace_answer(store: &dyn LedgerRead, caller: &Caller, text: &str) -> Response {
    {
        let epc = match resolve_epc(store, text) {
            Ok(epc) => epc,
            Err(reason) => return bad_request("epc", reason),
        };
        let state = LedgerState::new(store);
        let Some(status) = query::status(&state, &epc, today()) else {
            return problem(
                StatusCode::NOT_FOUND,
                "Unknown package",
                format!("{epc} was never commissioned on this network"),
                Some("epc"),
            );
        };
        let history = query::history(&state, &epc, TRACE_EVENTS_MAX);
        let logged: Vec<LoggedEvent> = history.iter().map(|h| h.logged.clone()).collect();
        let mut shipments: Vec<ShipmentRecord> = Vec::new();
        let mut parties: BTreeSet<Gln> = [status.item.owner, status.item.custodian].into();
        for entry in &logged {
            match &entry.event {
                Event::Shipped { shipment, .. } => {
                    parties.extend([shipment.seller, shipment.shipper, shipment.recipient]);
                    parties.extend(shipment.carrier);
                    // The current record (outstanding items up to date).
                    shipments.push(
                        custody::shipment(&state, shipment.id).unwrap_or_else(|| shipment.clone()),
                    );
                }
                Event::PackagesCommissioned { owner, .. } => {
                    parties.insert(*owner);
                }
                _ => {}
            }
        }
        if let Some(error) = state.take_error() {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Store error",
                error.to_string(),
                None,
            );
        }
        let me = caller.organization.gln();
        if !caller.is_regulator() && !parties.contains(&me) {
            return forbidden(format!(
                "{me} never owned, held, sold or bought {epc}: only its trading partners and regulators may trace it"
            ));
        }
        let visible: Vec<Value> = shipments
            .iter()
            .filter(|s| {
                caller.is_regulator() || s.seller == me || s.recipient == me || s.shipper == me
            })
            .map(shipment_json)
            .collect();
        let document = pharmalink_contracts::custody::epcis::export_document(&logged, true);
        Json(json!({
            "epc": epc.as_str(),
            "status": {
                "status": status.item.status.name(),
                "owner_gln": gln_json(&status.item.owner),
                "custodian_gln": gln_json(&status.item.custodian),
                "outermost_parent": status.outermost_parent.as_ref().map(|e| e.as_str()),
                "recalled": status.recall.as_ref().map(|r| json!({
                    "by_gln": gln_json(&r.by), "class": format!("{:?}", r.class), "reason": r.reason, "height": r.height,
                })),
                "expired": status.expired,
                "suspect_case_id": status.item.case_id,
            },
            "history": pharmalink_contracts::epcis::json::write_json_ld(&document),
            "inferred_through": history.iter().filter_map(|h| h.via.as_ref().map(|v| json!({
                "height": h.logged.position.height, "event": h.logged.event.name(), "via": v.as_str(),
            }))).collect::<Vec<_>>(),
            "transactions": visible,
            "requested_by_gln": gln_json(&me),
        }))
        .into_response()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct VerifyRequest {
    gtin: String,
    serial_number: String,
    lot_number: Option<String>,
    /// YYMMDD, as on the label (day 00 = last day of the month).
    expiration_date: Option<String>,
    #[serde(rename = "correlationUUID")]
    correlation_uuid: Option<String>,
}

#[utoipa::path(post, path = "/v1/dscsa/verify", tag = "dscsa", security(("bearer" = [])),
    request_body(content_type = "application/json", description = "VRS request: gtin, serialNumber, lotNumber, expirationDate (YYMMDD), correlationUUID"),
    responses((status = 200, description = "VRS response: verificationTimestamp, responderGLN, requestorGLN, correlationUUID, data {verified, verificationFailureReasonCode, additionalInfo}", content_type = "application/json"),
              (status = 400, description = "Invalid field"), (status = 403, description = "Not an authorized trading partner")))]
pub(crate) async fn verify<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    body: Result<Json<VerifyRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => return bad_request("body", rejection.body_text()),
    };
    let auditor = node.clone();
    let subject = format!("{} {}", request.gtin, request.serial_number);
    with_caller(&node, headers, move |store, caller| {
        let response = pi_answer(store, &caller, request);
        audited(&auditor, &caller, "pi_verification", &subject, response)
    })
    .await
}

fn pi_answer(store: &dyn LedgerRead, caller: &Caller, request: VerifyRequest) -> Response {
    {
        if caller.role() != Role::Regulator {
            if let Err(r) = caller.organization.check_atp(today()) {
                return forbidden(format!(
                    "only authorized trading partners get answers: {}",
                    r.message
                ));
            }
        }
        let gtin = match Gtin::parse(&request.gtin) {
            Ok(gtin) => gtin,
            Err(r) => return bad_request("gtin", r.message),
        };
        let expiry = match &request.expiration_date {
            Some(text) => match parse_yymmdd(text, today().year()) {
                Ok(date) => match Date::parse_iso(&date.iso()) {
                    Ok(date) => Some(date),
                    Err(r) => return bad_request("expirationDate", r.message),
                },
                Err(reason) => return bad_request("expirationDate", reason),
            },
            None => None,
        };
        let state = LedgerState::new(store);
        let product = custody::product(&state, &gtin);
        let correlation = request.correlation_uuid.clone().unwrap_or_default();
        let answer =
            |verified: bool, reason: Option<&str>, responder: Option<Gln>, info: Option<String>| {
                Json(json!({
                    "verificationTimestamp": crate::consumer::iso_time(now_s() * 1000),
                    "responderGLN": responder.as_ref().map(gln_json),
                    "requestorGLN": gln_json(&caller.organization.gln()),
                    "correlationUUID": correlation,
                    "data": {
                        "verified": verified,
                        "verificationFailureReasonCode": reason,
                        "additionalInfo": info,
                    },
                }))
                .into_response()
            };
        let Some(product) = product else {
            return answer(
                false,
                Some("No_Match_GTIN"),
                None,
                Some("the GTIN is not registered on this network".into()),
            );
        };
        let responder = Some(product.owner);
        let epc = match Epc::sgtin(
            &gtin,
            &request.serial_number,
            product.master.company_prefix_length,
        ) {
            Ok(epc) => epc,
            Err(r) => return bad_request("serialNumber", r.message),
        };
        let Some(status) = query::status(&state, &epc, today()) else {
            return answer(false, Some("No_Match_GTIN_Serial"), responder, None);
        };
        let custody::ItemKind::Package {
            lot,
            expiry: committed_expiry,
            ..
        } = &status.item.kind
        else {
            return answer(
                false,
                Some("No_Match_GTIN_Serial"),
                responder,
                Some("the identifier names a container".into()),
            );
        };
        let lot_ok = request.lot_number.as_ref().is_none_or(|l| l == lot);
        let expiry_ok = expiry.is_none_or(|e| e == *committed_expiry);
        let mismatch = match (lot_ok, expiry_ok) {
            (true, true) => None,
            (false, true) => Some("No_Match_GTIN_Serial_Lot"),
            (true, false) => Some("No_Match_GTIN_Serial_Expiry"),
            (false, false) => Some("No_Match_GTIN_Serial_Lot_Expiry"),
        };
        if let Some(code) = mismatch {
            return answer(false, Some(code), responder, None);
        }
        if status.recall.is_some() {
            return answer(
                false,
                Some("Recalled"),
                responder,
                status.recall.map(|r| r.reason),
            );
        }
        match status.item.status {
            Status::Quarantined | Status::UnderInvestigation | Status::Illegitimate => answer(
                false,
                Some("Suspect_Product"),
                responder,
                Some(status.item.status.name().into()),
            ),
            Status::Dispensed | Status::Decommissioned | Status::Destroyed => answer(
                false,
                Some("Not_In_Supply_Chain"),
                responder,
                Some(status.item.status.name().into()),
            ),
            _ if status.expired => answer(false, Some("Expired"), responder, None),
            _ => answer(true, None, responder, None),
        }
    }
}

#[utoipa::path(get, path = "/v1/dscsa/recalls/{gtin}/{lot}", tag = "dscsa", security(("bearer" = [])),
    params(("gtin" = String, Path), ("lot" = String, Path)),
    responses((status = 200, description = "recall, packages (epc, owner, holder, status), holders", content_type = "application/json"), (status = 403, description = "Regulators and the product's manufacturer only")))]
pub(crate) async fn recall<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Path((gtin, lot)): Path<(String, String)>,
) -> Response {
    let auditor = node.clone();
    with_caller(&node, headers, move |store, caller| {
        let subject = format!("{gtin}/{lot}");
        let response = recall_answer(store, &caller, &gtin, &lot);
        audited(&auditor, &caller, "recall_reach", &subject, response)
    })
    .await
}

fn recall_answer(store: &dyn LedgerRead, caller: &Caller, gtin: &str, lot: &str) -> Response {
    {
        let gtin = match Gtin::parse(gtin) {
            Ok(gtin) => gtin,
            Err(r) => return bad_request("gtin", r.message),
        };
        let state = LedgerState::new(store);
        let manufacturer = custody::product(&state, &gtin).map(|p| p.owner);
        if !caller.is_regulator() && manufacturer != Some(caller.organization.gln()) {
            return forbidden("lot recall reach is for regulators and the product's manufacturer");
        }
        let reach = query::lot_recall_reach(&state, &gtin, lot);
        Json(json!({
            "gtin": gtin.to_string(),
            "lot": lot,
            "recall": reach.recall.as_ref().map(|r| json!({
                "by_gln": gln_json(&r.by), "class": format!("{:?}", r.class), "reason": r.reason, "height": r.height,
            })),
            "packages": reach.packages.iter().map(|(epc, owner, holder, status)| json!({
                "epc": epc.as_str(), "owner_gln": gln_json(owner), "holder_gln": gln_json(holder), "status": status.name(),
            })).collect::<Vec<_>>(),
            "holders": reach.holders.iter().map(gln_json).collect::<Vec<_>>(),
        }))
        .into_response()
    }
}

#[derive(Deserialize)]
pub(crate) struct PartyParams {
    gln: Option<String>,
}

fn party_of(caller: &Caller, requested: Option<String>) -> Result<Gln, Response> {
    match requested {
        None => Ok(caller.organization.gln()),
        Some(text) => {
            let gln = Gln::parse(&text).map_err(|r| bad_request("gln", r.message))?;
            if gln != caller.organization.gln() && !caller.is_regulator() {
                return Err(forbidden(
                    "only regulators may ask about another organization",
                ));
            }
            Ok(gln)
        }
    }
}

/// A per-organization listing (`key`: the rows of `list` for the GLN): the caller's own, or
/// another organization's for a regulator; audited as `action`.
async fn party_listing<N: NodeApi>(
    node: N,
    headers: HeaderMap,
    requested: Option<String>,
    (action, key): (&'static str, &'static str),
    list: fn(&LedgerState<'_>, &Gln) -> Vec<Value>,
) -> Response {
    let auditor = node.clone();
    with_caller(&node, headers, move |store, caller| {
        let gln = match party_of(&caller, requested) {
            Ok(gln) => gln,
            Err(response) => {
                return audited(&auditor, &caller, action, "(malformed gln)", response)
            }
        };
        let rows = list(&LedgerState::new(store), &gln);
        let response = Json(json!({"gln": gln_json(&gln), key: rows})).into_response();
        audited(&auditor, &caller, action, &gln.to_string(), response)
    })
    .await
}

#[utoipa::path(get, path = "/v1/dscsa/exceptions", tag = "dscsa", security(("bearer" = [])),
    params(("gln" = Option<String>, Query, description = "Regulators: another organization")),
    responses((status = 200, description = "Open exceptions with PDG categories", content_type = "application/json")))]
pub(crate) async fn exceptions<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Query(params): Query<PartyParams>,
) -> Response {
    party_listing(
        node,
        headers,
        params.gln,
        ("exceptions", "exceptions"),
        |state, gln| {
            query::exceptions(state, gln)
                .iter()
                .map(exception_json)
                .collect()
        },
    )
    .await
}

#[utoipa::path(get, path = "/v1/dscsa/shipments/open", tag = "dscsa", security(("bearer" = [])),
    params(("gln" = Option<String>, Query, description = "Regulators: another organization")),
    responses((status = 200, description = "Shipments to or from the organization not yet fully received", content_type = "application/json")))]
pub(crate) async fn open_shipments<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Query(params): Query<PartyParams>,
) -> Response {
    party_listing(
        node,
        headers,
        params.gln,
        ("open_shipments", "shipments"),
        |state, gln| {
            query::open_shipments(state, gln)
                .iter()
                .map(shipment_json)
                .collect()
        },
    )
    .await
}

#[utoipa::path(get, path = "/v1/dscsa/suspect", tag = "dscsa", security(("bearer" = [])),
    params(("gln" = Option<String>, Query, description = "Regulators: one holder (default: every holder)")),
    responses((status = 200, description = "Packages now quarantined, under investigation or illegitimate: epc, case_id, status, holder, owner, since (height)", content_type = "application/json")))]
pub(crate) async fn suspect<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Query(params): Query<PartyParams>,
) -> Response {
    let auditor = node.clone();
    with_caller(&node, headers, move |store, caller| {
        // A trading partner sees its own cases; a regulator every case (or one holder's).
        let holder = if caller.is_regulator() && params.gln.is_none() {
            None
        } else {
            match party_of(&caller, params.gln) {
                Ok(gln) => Some(gln),
                Err(response) => {
                    return audited(
                        &auditor,
                        &caller,
                        "suspect_cases",
                        "(malformed gln)",
                        response,
                    )
                }
            }
        };
        let state = LedgerState::new(store);
        let found = query::suspect_packages(&state, holder.as_ref());
        let response = Json(json!({
            "holder_gln": holder.as_ref().map(gln_json),
            "packages": found.iter().map(|p| json!({
                "epc": p.epc.as_str(),
                "case_id": p.case_id,
                "status": p.status.name(),
                "holder_gln": gln_json(&p.holder),
                "owner_gln": gln_json(&p.owner),
                "since_height": p.since.height,
            })).collect::<Vec<_>>(),
        }))
        .into_response();
        let subject = holder.map_or_else(|| "(all)".to_string(), |g| g.to_string());
        audited(&auditor, &caller, "suspect_cases", &subject, response)
    })
    .await
}
