//! The access audit log: every regulator query and every trace, with who asked, what, when and
//! the answer's status. Kept by the node (not on the ledger); `GET /v1/audit` shows the node's
//! own organization and regulators every entry, and any other caller its own queries.

use crate::auth::{authenticate, now_s, Caller};
use crate::http::{internal_error, problem, NodeApi};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

/// Most entries one read returns.
pub const AUDIT_READ_MAX: usize = 10_000;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AuditEntry {
    pub time_ms: u64,
    pub requester_gln: String,
    pub requester_role: String,
    /// trace | pi_verification | recall_reach | exceptions | open_shipments | epcis_query
    pub action: String,
    /// What was asked about (EPC, GTIN/lot, GLN or the query string).
    pub subject: String,
    /// HTTP status of the answer.
    pub status: u16,
}

/// Whether `action` by `caller` is audited: every trace, and everything a regulator asks.
pub fn audited(caller: &Caller, action: &str) -> bool {
    action == "trace" || caller.is_regulator()
}

/// Records the entry if audited. A failure to record is logged by the node, never silently
/// turned into an answer without a record: the caller gets 503 instead.
pub fn record<N: NodeApi>(
    node: &N,
    caller: &Caller,
    action: &str,
    subject: &str,
    status: u16,
) -> Result<(), Response> {
    if !audited(caller, action) {
        return Ok(());
    }
    let entry = AuditEntry {
        time_ms: now_s() * 1000,
        requester_gln: caller.organization.gln().to_string(),
        requester_role: caller.role().name().to_string(),
        action: action.to_string(),
        subject: subject.chars().take(512).collect(),
        status,
    };
    node.record_audit(&entry).map_err(|reason| {
        problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Cannot record the access audit",
            reason,
            None,
        )
    })
}

pub fn routes<N: NodeApi>(node: N) -> Router {
    Router::new()
        .route("/v1/audit", get(read::<N>))
        .with_state(node)
}

#[derive(Deserialize)]
pub(crate) struct AuditParams {
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/audit", tag = "dscsa", security(("bearer" = [])),
    params(("limit" = Option<usize>, Query, description = "Newest entries first, at most 10,000")),
    responses((status = 200, body = [AuditEntry]), (status = 401, description = "No or bad bearer token")))]
pub(crate) async fn read<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    Query(params): Query<AuditParams>,
) -> Response {
    let limit = params.limit.unwrap_or(1000).min(AUDIT_READ_MAX);
    let store = node.ledger();
    let reader = node.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let caller = authenticate(&headers, &*store, now_s()).map_err(|e| e.into_response())?;
        let held = reader.organization_keys();
        let operator = caller.organization.keys.iter().any(|k| held.contains(k));
        let me = caller.organization.gln().to_string();
        let entries = reader.audit_entries(AUDIT_READ_MAX).map_err(|reason| {
            problem(StatusCode::SERVICE_UNAVAILABLE, "Store error", reason, None)
        })?;
        let visible: Vec<AuditEntry> = entries
            .into_iter()
            .filter(|e| operator || caller.is_regulator() || e.requester_gln == me)
            .take(limit)
            .collect();
        Ok::<_, Response>(Json(visible).into_response())
    })
    .await;
    match outcome {
        Ok(Ok(response)) | Ok(Err(response)) => response,
        Err(e) => internal_error(e),
    }
}
