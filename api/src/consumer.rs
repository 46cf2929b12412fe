//! `GET /verify?code=…`: the patient's question — is the package in my hand genuine? — with
//! an answer their phone can check offline.
//!
//! No login; rate-limited per client address; the answer holds no PHI and no commercial data:
//! only package facts (see `pharmalink_contracts::contract::facts`), which withhold trading
//! partners, quantities, prices and shipment details. The verdict is computed from the proof
//! as verified against this node's genesis, with the proof's anchor date as "today", so
//! `pharmalink verify` reaches the same verdict from the `proof` object alone.

use crate::http::{problem, NodeApi};
use crate::limits::{client_ip, AddressLimit};
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use pharmalink_contracts::contract::LedgerState;
use pharmalink_contracts::contract::{Date, Epc, Gtin};
use pharmalink_contracts::custody;
use pharmalink_contracts::gs1;
use pharmalink_contracts::proof::{self, BuiltProof, Label, Verdict, VerifiedHistory};
use pharmalink_ledger::LedgerRead;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Longest scanned text accepted.
pub const CODE_BYTES_MAX: usize = 512;
/// Per client address: sustained requests per second, and burst.
pub const VERIFY_PER_SECOND: u32 = 10;
pub const VERIFY_BURST: u32 = 30;

#[derive(Clone)]
pub(crate) struct ConsumerState<N> {
    node: N,
    limit: Arc<AddressLimit>,
}

#[derive(Deserialize)]
pub(crate) struct VerifyParams {
    code: Option<String>,
}

pub fn routes<N: NodeApi>(node: N) -> Router {
    Router::new()
        .route("/verify", get(verify::<N>))
        .with_state(ConsumerState {
            node,
            limit: Arc::new(AddressLimit::new(
                VERIFY_PER_SECOND,
                VERIFY_BURST,
                "Too many verifications",
            )),
        })
}

/// What a scanned code names: a serialized GTIN and what the label says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scanned {
    pub gtin: Gtin,
    pub serial: String,
    pub label: Label,
    pub summary: gs1::Gs1Summary,
}

/// Parses scanned text (element string, `]d2`/`]Q3` scan data, or a Digital Link URI).
/// Errors name the field of the request and the rule.
pub fn parse_code(code: &str, reference_year: u32) -> Result<Scanned, String> {
    if code.len() > CODE_BYTES_MAX {
        return Err(format!("{} bytes exceeds {CODE_BYTES_MAX}", code.len()));
    }
    let summary = gs1::parse_any(code.trim(), reference_year).map_err(|e| e.to_string())?;
    let gtin = summary
        .gtin
        .as_deref()
        .ok_or("names no GTIN (AI 01): scan the 2D code on the package")?;
    let gtin = Gtin::parse(gtin).map_err(|r| r.message)?;
    let serial = summary
        .serial
        .clone()
        .ok_or("names no serial number (AI 21): scan the 2D code on the package")?;
    let expiry = match &summary.expiry {
        Some(iso) => Some(Date::parse_iso(iso).map_err(|r| r.message)?),
        None => None,
    };
    Ok(Scanned {
        gtin,
        serial,
        label: Label {
            lot: summary.lot.clone(),
            expiry,
        },
        summary,
    })
}

/// The EPC of a scanned package: the company prefix length comes from the registered product;
/// for a product this network does not know, 7 (the proof then shows no facts).
pub fn scanned_epc(store: &dyn LedgerRead, scanned: &Scanned) -> Result<Epc, String> {
    let state = LedgerState::new(store);
    let prefix_length = custody::product(&state, &scanned.gtin)
        .map(|p| p.master.company_prefix_length)
        .unwrap_or(7);
    if let Some(error) = state.take_error() {
        return Err(error.to_string());
    }
    Epc::sgtin(&scanned.gtin, &scanned.serial, prefix_length).map_err(|r| r.message)
}

fn date_of_ms(ms: u64) -> Date {
    Date::from_unix_days((ms / 86_400_000) as i64)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` of a Unix time in milliseconds.
pub fn iso_time(ms: u64) -> String {
    pharmalink_contracts::epcis::time::format_utc_millis(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// The verdict of a verified history, with the proof's anchor date as today.
pub fn verdict_of(history: &VerifiedHistory, label: &Label) -> Verdict {
    proof::verdict(history, label, date_of_ms(history.as_of_ms))
}

/// The JSON answer: verdict, product, custody timeline (no partners), freshness, proof.
pub fn answer_json(
    history: &VerifiedHistory,
    verdict: &Verdict,
    built: Option<&BuiltProof>,
) -> Value {
    let timeline: Vec<Value> = history
        .facts
        .iter()
        .filter(|f| !matches!(f.fact, proof_facts::Fact::ProductRegistered { .. }))
        .map(|f| {
            let mut entry = json!({
                "time": iso_time(f.timestamp_ms),
                "event": f.fact.name(),
                "height": f.position.height,
            });
            match &f.fact {
                proof_facts::Fact::Dispensed { dispenser } => {
                    entry["dispenser_gln"] = json!(dispenser.to_string())
                }
                proof_facts::Fact::Commissioned { manufacturer, .. } => {
                    entry["manufacturer_gln"] = json!(manufacturer.to_string())
                }
                proof_facts::Fact::Recalled { class, reason, .. } => {
                    entry["recall_class"] = json!(format!("{class:?}"));
                    entry["reason"] = json!(reason);
                }
                proof_facts::Fact::TemperatureMonitored {
                    readings,
                    minutes_out,
                    ..
                } => {
                    entry["readings"] = json!(readings);
                    entry["minutes_out_of_range"] = json!(minutes_out);
                }
                proof_facts::Fact::ColdChainExcursion {
                    rule, minutes_out, ..
                } => {
                    entry["rule"] = json!(rule);
                    entry["minutes_out_of_range"] = json!(minutes_out);
                }
                _ => {}
            }
            entry
        })
        .collect();
    let mut out = json!({
        "status": verdict.status.name(),
        "reasons": verdict.reasons,
        "epc": history.epc.as_str(),
        "lot": verdict.lot,
        "expiry": verdict.expiry.map(|d| d.iso()),
        "expired": verdict.expired,
        "timeline": timeline,
        "cold_chain": {
            "status": verdict.cold_chain.name(),
            "readings": verdict.cold_chain_readings,
            "minutes_out_of_range": verdict.cold_chain_minutes_out,
        },
        "as_of": {"height": history.as_of_height, "time": iso_time(history.as_of_ms)},
    });
    if let Some(product) = &verdict.product {
        out["product"] = json!({
            "name": product.name,
            "ndc": product.ndc,
            "strength": product.strength,
            "dosage_form": product.dosage_form,
            "container_size": product.container_size,
            "manufacturer_gln": product.manufacturer.to_string(),
        });
    }
    if let Some(gln) = verdict.dispensed_by {
        out["dispensed_by_gln"] = json!(gln.to_string());
    }
    if let Some(built) = built {
        out["pending_events"] = json!(built.pending_facts);
        out["proof"] = serde_json::to_value(built.proof.to_json()).unwrap_or(Value::Null);
    }
    out
}

use pharmalink_contracts::contract::facts as proof_facts;

/// This year (for two-digit years in scanned dates).
pub fn current_year() -> u32 {
    crate::auth::today().year()
}

#[utoipa::path(get, path = "/verify", tag = "consumer",
    params(("code" = String, Query, description = "What the scanner read: element string, ]d2 scan data or a GS1 Digital Link URI")),
    responses((status = 200, description = "status (genuine_dispensed | genuine_in_supply_chain | recalled | suspect | unknown | counterfeit_suspected), reasons, product, lot, expiry, timeline, as_of, pending_events, proof {format, data}", content_type = "application/json"),
              (status = 400, description = "Unreadable code, naming the rule (problem+json)"),
              (status = 429, description = "Rate limit per client address")))]
pub(crate) async fn verify<N: NodeApi>(
    State(state): State<ConsumerState<N>>,
    extensions: axum::http::Extensions,
    Query(params): Query<VerifyParams>,
) -> Response {
    if let Err(response) = state.limit.check(client_ip(&extensions)) {
        return response;
    }
    let Some(code) = params.code.filter(|c| !c.trim().is_empty()) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Missing code",
            "give the scanned text as ?code=… (element string, ]d2 scan data or a GS1 Digital Link URI)",
            Some("code"),
        );
    };
    let scanned = match parse_code(&code, current_year()) {
        Ok(scanned) => scanned,
        Err(reason) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Unreadable code",
                reason,
                Some("code"),
            )
        }
    };
    let store = state.node.ledger();
    let genesis = store.genesis().clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let epc = scanned_epc(&*store, &scanned)?;
        let built = proof::build(&*store, &epc)
            .map_err(|e| e.to_string())?
            .ok_or("the chain has no block yet")?;
        Ok::<_, String>((scanned, built))
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    let (scanned, built) = match outcome {
        Ok(found) => found,
        Err(reason) => {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Cannot answer now",
                reason,
                None,
            )
        }
    };
    // Verify what we serve, exactly as the client will.
    let history = match proof::verify(&genesis, &built.proof) {
        Ok(history) => history,
        Err(error) => {
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Proof does not verify",
                error.to_string(),
                None,
            )
        }
    };
    let verdict = verdict_of(&history, &scanned.label);
    let mut body = answer_json(&history, &verdict, Some(&built));
    body["scanned"] = json!({
        "gtin": scanned.summary.gtin,
        "serial": scanned.summary.serial,
        "lot": scanned.summary.lot,
        "expiry": scanned.summary.expiry,
    });
    let mut response = axum::Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
