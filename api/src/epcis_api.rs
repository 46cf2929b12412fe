//! EPCIS 2.0 REST: capture and query (bearer JWT, see [`crate::auth`]).
//!
//! - `POST /epcis/capture` (JSON-LD or XML; header `GS1-Capture-Error-Behaviour: rollback`
//!   (default) or `proceed`): the document is validated (400 listing every problem, with the
//!   event index and JSON pointer), mapped to custody commands and dry-run against the current
//!   state one event after another; the node then signs them with the caller's organization
//!   key (which it must hold), persists the job and admits the transactions. 202 with
//!   `Location: /epcis/capture/{id}`. Under `rollback` nothing is submitted if any event fails;
//!   under `proceed` the valid events go ahead. Shipping events that change ownership carry the
//!   Transaction Information sealed for the seller, the buyer and the regulators
//!   ([`crate::confidential`]).
//! - `GET /epcis/capture/{id}`: the job's state and each event's outcome, read from the chain.
//! - `GET /epcis/events` with `eventType`, `GE_eventTime`, `LT_eventTime`, `EQ_bizStep`,
//!   `EQ_disposition`, `MATCH_epc`, `MATCH_parentID`, `MATCH_anyEPC`, `EQ_bizLocation`,
//!   `perPage`, `nextPageToken`; and `GET /epcis/epcs/{epc}/events`: EPCIS query documents.
//!   Regulators see every event; an organization only those it is a party to.

use crate::auth::{authenticate, now_s, Caller};
use crate::http::{bad_request, internal_error, problem, problem_with_errors, NodeApi};
use crate::log::{events_from, successor};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pharmalink_contracts::contract::command::{Command, ShipmentKind};
use pharmalink_contracts::contract::event::Event;
use pharmalink_contracts::contract::{
    self, decode_logged_event, BlockContext, Gln, LedgerState, LoggedEvent, Overlay, Position, Role,
};
use pharmalink_contracts::custody::epcis::{
    commands_from_event, export_event, products_from_master_data, MappingOptions,
};
use pharmalink_contracts::epcis::{self, model::EpcisDocument, time::parse_date_time};
use pharmalink_contracts::iam;
use pharmalink_ledger::{LedgerRead, PublicKey};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Largest capture document.
pub const CAPTURE_BODY_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Most events per query page, and rows scanned per query.
pub const PER_PAGE_MAX: usize = 1_000;
pub const SCAN_ROWS_MAX: usize = 20_000;

/// What the API asks the node to sign and submit for a capture.
#[derive(Clone, Debug)]
pub struct CaptureSpec {
    pub signer: PublicKey,
    pub proceed: bool,
    pub items: Vec<CaptureItem>,
}

/// One command of a capture: its event (`None` for master-data product registrations), and
/// either its payload or why it cannot go ahead.
#[derive(Clone, Debug)]
pub struct CaptureItem {
    pub event_index: Option<usize>,
    pub payload: Option<Vec<u8>>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CaptureJobView {
    pub id: String,
    /// running | succeeded | failed | partial
    pub state: String,
    pub error_behaviour: String,
    pub created_ms: u64,
    pub signer: String,
    pub items: Vec<CaptureItemView>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CaptureItemView {
    pub event_index: Option<usize>,
    /// committed | rejected | pending | not_submitted
    pub status: String,
    pub tx_hash: Option<String>,
    pub code: Option<String>,
    pub reason: Option<String>,
}

pub fn routes<N: NodeApi>(node: N) -> Router {
    Router::new()
        .route("/epcis/capture", post(capture::<N>))
        .route("/epcis/capture/{id}", get(capture_job::<N>))
        .route("/epcis/events", get(events::<N>))
        .route("/epcis/epcs/{epc}/events", get(epc_events::<N>))
        .layer(axum::extract::DefaultBodyLimit::max(CAPTURE_BODY_BYTES_MAX))
        .with_state(node)
}

pub(crate) async fn caller_of<N: NodeApi>(
    node: &N,
    headers: &HeaderMap,
) -> Result<(Caller, Arc<dyn LedgerRead + Send + Sync>), Response> {
    let store = node.ledger();
    let headers = headers.clone();
    let reader = store.clone();
    let caller = tokio::task::spawn_blocking(move || authenticate(&headers, &*reader, now_s()))
        .await
        .map_err(|e| internal_error(e))?
        .map_err(|e| e.into_response())?;
    Ok((caller, store))
}

/// A member key of the caller's organization that this node holds and signs with (403 if
/// none).
pub(crate) fn node_signer<N: NodeApi>(node: &N, caller: &Caller) -> Result<PublicKey, Response> {
    let held = node.organization_keys();
    caller
        .organization
        .keys
        .iter()
        .find(|k| held.contains(k))
        .copied()
        .ok_or_else(|| {
            problem(
                StatusCode::FORBIDDEN,
                "Not allowed",
                format!(
                    "this node holds no key of {}: sign the commands yourself and POST them to /v1/txs",
                    caller.organization.gln()
                ),
                None,
            )
        })
}

/// The parties an event names (owners, holders, senders, recipients).
pub fn event_parties(event: &Event) -> Vec<Gln> {
    match event {
        Event::PackagesCommissioned { owner, .. } => vec![*owner],
        Event::Aggregated { holder, .. }
        | Event::Disaggregated { holder, .. }
        | Event::Dispensed { holder, .. }
        | Event::ReturnVerified { holder, .. }
        | Event::Decommissioned { holder, .. }
        | Event::Destroyed { holder, .. }
        | Event::Quarantined { holder, .. }
        | Event::InvestigationStarted { holder, .. }
        | Event::SuspectCleared { holder, .. }
        | Event::IllegitimateDeclared { holder, .. } => vec![*holder],
        Event::Shipped { shipment, .. } => {
            let mut out = vec![shipment.seller, shipment.shipper, shipment.recipient];
            out.extend(shipment.carrier);
            out
        }
        Event::Received { recipient, .. } => vec![*recipient],
        Event::ExceptionRaised { exception } => vec![exception.party],
        Event::LotRecalled { by, .. } => vec![*by],
        Event::ProductRegistered { owner, .. } => vec![*owner],
        Event::ExceptionResolved { by, .. } => vec![*by],
        _ => Vec::new(),
    }
}

/// Keys to seal a sale's TI for: the seller, the buyer and every regulator.
fn ti_recipients(
    state: &LedgerState<'_>,
    seller: &iam::Organization,
    buyer: &Gln,
) -> Vec<PublicKey> {
    let mut keys = seller.keys.clone();
    if let Some(org) = iam::organization(state, buyer) {
        keys.extend(org.keys);
    }
    for regulator in iam::organizations_with_role(state, Role::Regulator) {
        keys.extend(regulator.keys);
    }
    keys
}

/// Maps and dry-runs a document event by event (the state each event sees includes the
/// earlier events' effects). Sale and return shipments get their TI sealed.
pub fn plan_capture(
    store: &dyn LedgerRead,
    caller: &Caller,
    signer: PublicKey,
    document: &EpcisDocument,
    timestamp_ms: u64,
) -> Vec<CaptureItem> {
    let state = LedgerState::new(store);
    let height = store.head().ok().flatten().map_or(1, |h| h.height + 1);
    let ctx = BlockContext {
        height,
        timestamp_ms,
        signer,
    };
    let mut overlay = Overlay::new(&state);
    let mut items = Vec::new();
    let mut tx = 0u32;
    let mut run =
        |overlay: &mut Overlay<'_, LedgerState<'_>>, command: Command| -> Result<Vec<u8>, String> {
            let events = contract::decide_as(&*overlay, &caller.organization, &command, &ctx)
                .map_err(|r| format!("{} ({})", r.message, r.code))?;
            for (index, event) in events.iter().enumerate() {
                let position = Position {
                    height,
                    tx,
                    event: index as u32,
                };
                contract::evolve(overlay, position, timestamp_ms, event);
            }
            tx += 1;
            Ok(command.encode())
        };
    for command in products_from_master_data(&overlay, document.header.as_ref()) {
        let outcome = run(&mut overlay, command);
        items.push(CaptureItem {
            event_index: None,
            payload: outcome.as_ref().ok().cloned(),
            error: outcome.err().map(|e| format!("master data: {e}")),
        });
    }
    for index in 0..document.events.len() {
        let mapped = commands_from_event(&overlay, document, index, &MappingOptions::default());
        let commands = match mapped {
            Ok(commands) => commands,
            Err(error) => {
                items.push(CaptureItem {
                    event_index: Some(index),
                    payload: None,
                    error: Some(error.reason),
                });
                continue;
            }
        };
        for mut command in commands {
            if let Command::Ship {
                kind,
                to,
                transaction_information,
                ..
            } = &mut command
            {
                if *kind != ShipmentKind::Transfer && transaction_information.is_none() {
                    let ti = json!({
                        "seller_gln": caller.organization.gln().to_string(),
                        "buyer_gln": to.to_string(),
                        "epcis_event": epcis::json::write_json_ld(&EpcisDocument {
                            events: vec![document.events[index].clone()],
                            ..document.clone()
                        })["epcisBody"]["eventList"][0],
                    });
                    match crate::confidential::seal(
                        ti.to_string().as_bytes(),
                        &ti_recipients(&state, &caller.organization, to),
                    ) {
                        Ok(sealed) => *transaction_information = Some(sealed),
                        Err(reason) => {
                            items.push(CaptureItem {
                                event_index: Some(index),
                                payload: None,
                                error: Some(format!("sealing the TI: {reason}")),
                            });
                            continue;
                        }
                    }
                }
            }
            let outcome = run(&mut overlay, command);
            items.push(CaptureItem {
                event_index: Some(index),
                payload: outcome.as_ref().ok().cloned(),
                error: outcome.err(),
            });
        }
    }
    items
}

#[utoipa::path(post, path = "/epcis/capture", tag = "epcis", security(("bearer" = [])),
    params(("GS1-Capture-Error-Behaviour" = Option<String>, Header, description = "rollback (default) or proceed")),
    request_body(content_type = "application/ld+json", description = "EPCIS 2.0 document (JSON-LD or XML)"),
    responses((status = 202, description = "Accepted: captureID and Location of the job", content_type = "application/json"),
              (status = 400, description = "Invalid document: every problem with event index and JSON pointer"),
              (status = 403, description = "This node holds no key of the caller's organization")))]
pub(crate) async fn capture<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let proceed = match headers
        .get("GS1-Capture-Error-Behaviour")
        .map(|v| v.to_str().unwrap_or("").to_ascii_lowercase())
        .as_deref()
    {
        None | Some("rollback") => false,
        Some("proceed") => true,
        Some(other) => {
            return bad_request(
                "GS1-Capture-Error-Behaviour",
                format!("{other:?} is not rollback or proceed"),
            )
        }
    };
    let (caller, store) = match caller_of(&node, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let signer = match node_signer(&node, &caller) {
        Ok(signer) => signer,
        Err(response) => return response,
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return bad_request("body", "the document is not UTF-8");
    };
    let captured = match epcis::capture(text) {
        Ok(captured) => captured,
        Err(errors) => {
            let list: Vec<Value> = errors
                .iter()
                .map(|e| json!({"event_index": e.event_index, "pointer": e.pointer, "reason": e.reason}))
                .collect();
            return problem_with_errors(
                StatusCode::BAD_REQUEST,
                "Invalid EPCIS document",
                format!("{} problem(s) in the EPCIS document", list.len()),
                Some("body"),
                list,
            );
        }
    };
    let timestamp_ms = now_s() * 1000;
    let planner = caller.clone();
    let items = match tokio::task::spawn_blocking(move || {
        plan_capture(&*store, &planner, signer, &captured.document, timestamp_ms)
    })
    .await
    {
        Ok(items) => items,
        Err(e) => return internal_error(e),
    };
    if items.is_empty() {
        return bad_request("body", "the document holds no event to capture");
    }
    match node
        .start_capture(CaptureSpec {
            signer,
            proceed,
            items,
        })
        .await
    {
        Ok(id) => {
            let location = format!("/epcis/capture/{id}");
            let mut response = (
                StatusCode::ACCEPTED,
                Json(json!({"captureID": id, "location": location})),
            )
                .into_response();
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        Err(reason) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Capture not accepted",
            reason,
            None,
        ),
    }
}

#[utoipa::path(get, path = "/epcis/capture/{id}", tag = "epcis", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = CaptureJobView), (status = 404, description = "No such job of yours")))]
pub(crate) async fn capture_job<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (caller, _) = match caller_of(&node, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let lookup = node.clone();
    let found = tokio::task::spawn_blocking(move || lookup.capture_job(&id)).await;
    match found {
        Ok(Ok(Some(job))) => {
            let mine = caller
                .organization
                .keys
                .iter()
                .any(|k| k.to_hex() == job.signer);
            if !mine && !caller.is_regulator() {
                return problem(
                    StatusCode::NOT_FOUND,
                    "Unknown capture",
                    "no such capture job of yours",
                    Some("id"),
                );
            }
            Json(job).into_response()
        }
        Ok(Ok(None)) => problem(
            StatusCode::NOT_FOUND,
            "Unknown capture",
            "no such capture job",
            Some("id"),
        ),
        Ok(Err(reason)) => problem(StatusCode::SERVICE_UNAVAILABLE, "Store error", reason, None),
        Err(e) => internal_error(e),
    }
}

/// The last segment of a CBV value (`urn:epcglobal:cbv:bizstep:shipping`,
/// `https://ref.gs1.org/cbv/BizStep-shipping` and `shipping` all give `shipping`).
fn cbv_name(value: &str) -> &str {
    value.rsplit([':', '/', '-']).next().unwrap_or(value)
}

struct Filter {
    event_type: Option<String>,
    ge_time: Option<i64>,
    lt_time: Option<i64>,
    biz_step: Option<String>,
    disposition: Option<String>,
    match_epc: Option<String>,
    match_parent: Option<String>,
    match_any: Option<String>,
    biz_location: Option<String>,
}

impl Filter {
    fn parse(
        params: &HashMap<String, String>,
    ) -> Result<(Filter, usize, Option<Vec<u8>>), Response> {
        const KNOWN: [&str; 11] = [
            "eventType",
            "GE_eventTime",
            "LT_eventTime",
            "EQ_bizStep",
            "EQ_disposition",
            "MATCH_epc",
            "MATCH_parentID",
            "MATCH_anyEPC",
            "EQ_bizLocation",
            "perPage",
            "nextPageToken",
        ];
        if let Some(unknown) = params.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(bad_request(
                unknown,
                format!(
                    "query parameter {unknown:?} is not supported (supported: {})",
                    KNOWN.join(", ")
                ),
            ));
        }
        let time = |name: &str| -> Result<Option<i64>, Response> {
            params
                .get(name)
                .map(|t| parse_date_time(t).map_err(|e| bad_request(name, e)))
                .transpose()
        };
        let per_page = match params.get("perPage") {
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=PER_PAGE_MAX).contains(&n) => n,
                _ => {
                    return Err(bad_request(
                        "perPage",
                        format!("{text:?} is not 1..={PER_PAGE_MAX}"),
                    ))
                }
            },
            None => 100,
        };
        let token = match params.get("nextPageToken") {
            Some(text) => Some(
                hex::decode(text)
                    .ok()
                    .filter(|b| b.len() == 16)
                    .ok_or_else(|| bad_request("nextPageToken", "not a token this node issued"))?,
            ),
            None => None,
        };
        if let Some(kind) = params.get("eventType") {
            if epcis::model::EventType::from_name(kind).is_none() {
                return Err(bad_request(
                    "eventType",
                    format!("{kind:?} is not an EPCIS event type"),
                ));
            }
        }
        Ok((
            Filter {
                event_type: params.get("eventType").cloned(),
                ge_time: time("GE_eventTime")?,
                lt_time: time("LT_eventTime")?,
                biz_step: params.get("EQ_bizStep").map(|s| cbv_name(s).to_string()),
                disposition: params
                    .get("EQ_disposition")
                    .map(|s| cbv_name(s).to_string()),
                match_epc: params.get("MATCH_epc").cloned(),
                match_parent: params.get("MATCH_parentID").cloned(),
                match_any: params.get("MATCH_anyEPC").cloned(),
                biz_location: params.get("EQ_bizLocation").cloned(),
            },
            per_page,
            token,
        ))
    }

    fn accepts(&self, event: &epcis::model::Event) -> bool {
        let time = parse_date_time(&event.event_time).ok();
        let all_epcs = || {
            event
                .epc_list
                .iter()
                .chain(&event.child_epcs)
                .chain(&event.input_epc_list)
                .chain(&event.output_epc_list)
                .chain(event.parent_id.iter())
        };
        self.event_type
            .as_deref()
            .is_none_or(|t| event.event_type.name() == t)
            && self.ge_time.is_none_or(|g| time.is_some_and(|t| t >= g))
            && self.lt_time.is_none_or(|l| time.is_some_and(|t| t < l))
            && self
                .biz_step
                .as_deref()
                .is_none_or(|b| event.biz_step.as_deref().map(cbv_name) == Some(b))
            && self
                .disposition
                .as_deref()
                .is_none_or(|d| event.disposition.as_deref().map(cbv_name) == Some(d))
            && self.match_epc.as_deref().is_none_or(|e| {
                event
                    .epc_list
                    .iter()
                    .chain(&event.child_epcs)
                    .any(|x| x == e)
            })
            && self
                .match_parent
                .as_deref()
                .is_none_or(|p| event.parent_id.as_deref() == Some(p))
            && self
                .match_any
                .as_deref()
                .is_none_or(|e| all_epcs().any(|x| x == e))
            && self
                .biz_location
                .as_deref()
                .is_none_or(|l| event.biz_location.as_ref().map(|p| p.id.as_str()) == Some(l))
    }
}

fn query_document(events: Vec<LoggedEvent>, next: Option<Vec<u8>>) -> Value {
    let document = pharmalink_contracts::custody::epcis::export_document(&events, false);
    let mut written = epcis::json::write_json_ld(&document);
    let list = written["epcisBody"]["eventList"].take();
    let mut out = json!({
        "@context": written["@context"].take(),
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": crate::consumer::iso_time(now_s() * 1000),
        "epcisBody": {"queryResults": {"queryName": "SimpleEventQuery", "resultsBody": {"eventList": list}}},
    });
    if let Some(token) = next {
        out["nextPageToken"] = json!(hex::encode(token));
    }
    out
}

/// Scans the log from `token`, keeping the caller's matching events.
fn run_query(
    store: &dyn LedgerRead,
    caller: &Caller,
    filter: &Filter,
    per_page: usize,
    token: Option<Vec<u8>>,
) -> Result<Value, String> {
    let me = caller.organization.gln();
    let visible =
        |logged: &LoggedEvent| caller.is_regulator() || event_parties(&logged.event).contains(&me);
    let mut found = Vec::new();
    let mut scanned = 0usize;
    let mut cursor = token.unwrap_or_else(|| vec![0; 16]);
    let mut next = None;
    // Candidates: the EPC index when an EPC is named, else the whole log in order.
    if let Some(epc) = filter
        .match_epc
        .as_ref()
        .or(filter.match_any.as_ref())
        .or(filter.match_parent.as_ref())
    {
        let state = LedgerState::new(store);
        let history = pharmalink_contracts::custody::query::history(
            &state,
            &contract::Epc::new(epc.clone()),
            SCAN_ROWS_MAX,
        );
        for entry in history {
            if entry.logged.position.key().to_vec() < cursor || !visible(&entry.logged) {
                continue;
            }
            if export_event(&entry.logged).is_some_and(|e| filter.accepts(&e)) {
                if found.len() == per_page {
                    next = Some(entry.logged.position.key().to_vec());
                    break;
                }
                found.push(entry.logged);
            }
        }
        return Ok(query_document(found, next));
    }
    'scan: while scanned < SCAN_ROWS_MAX {
        let rows = events_from(store, &cursor, 1000)?;
        if rows.is_empty() {
            break;
        }
        for (key, value) in &rows {
            scanned += 1;
            let Some(logged) = decode_logged_event(value) else {
                continue;
            };
            if visible(&logged) && export_event(&logged).is_some_and(|e| filter.accepts(&e)) {
                if found.len() == per_page {
                    next = Some(key.clone());
                    break 'scan;
                }
                found.push(logged);
            }
        }
        let last = rows.last().map(|(k, _)| k.clone()).unwrap_or_default();
        cursor = successor(&last);
        if scanned >= SCAN_ROWS_MAX {
            next = Some(cursor.clone());
        }
    }
    Ok(query_document(found, next))
}

#[utoipa::path(get, path = "/epcis/events", tag = "epcis", security(("bearer" = [])),
    params(("eventType" = Option<String>, Query), ("GE_eventTime" = Option<String>, Query), ("LT_eventTime" = Option<String>, Query),
           ("EQ_bizStep" = Option<String>, Query), ("EQ_disposition" = Option<String>, Query), ("MATCH_epc" = Option<String>, Query),
           ("MATCH_parentID" = Option<String>, Query), ("MATCH_anyEPC" = Option<String>, Query), ("EQ_bizLocation" = Option<String>, Query),
           ("perPage" = Option<u32>, Query), ("nextPageToken" = Option<String>, Query)),
    responses((status = 200, description = "EPCIS query document; nextPageToken when more", content_type = "application/ld+json"), (status = 400, description = "Unknown or malformed parameter")))]
pub(crate) async fn events<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let (filter, per_page, token) = match Filter::parse(&params) {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let (caller, store) = match caller_of(&node, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let mut subject: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    subject.sort();
    let asker = caller.clone();
    let answered =
        tokio::task::spawn_blocking(move || run_query(&*store, &asker, &filter, per_page, token))
            .await;
    let response = match answered {
        Ok(Ok(document)) => Json(document).into_response(),
        Ok(Err(reason)) => problem(StatusCode::SERVICE_UNAVAILABLE, "Store error", reason, None),
        Err(e) => internal_error(e),
    };
    let auditor = node.clone();
    let status = response.status().as_u16();
    let recorded = tokio::task::spawn_blocking(move || {
        crate::audit::record(&auditor, &caller, "epcis_query", &subject.join("&"), status)
    })
    .await;
    match recorded {
        Ok(Ok(())) => response,
        Ok(Err(refused)) => refused,
        Err(e) => internal_error(e),
    }
}

#[utoipa::path(get, path = "/epcis/epcs/{epc}/events", tag = "epcis", security(("bearer" = [])),
    params(("epc" = String, Path, description = "EPC URN")),
    responses((status = 200, description = "EPCIS query document of the events naming the EPC", content_type = "application/ld+json")))]
pub(crate) async fn epc_events<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Path(epc): Path<String>,
    Query(mut params): Query<HashMap<String, String>>,
) -> Response {
    params.insert("MATCH_anyEPC".into(), epc);
    events(State(node), headers, Query(params)).await
}
