//! REST endpoints of the node: health, status, genesis, transaction submission, metrics.
//!
//! `POST /v1/txs` accepts signed transactions in their canonical bytes:
//! - `Content-Type: application/vnd.pharmalink.tx` — one transaction;
//! - `Content-Type: application/vnd.pharmalink.txs` — a batch: u32 little-endian count, then the
//!   transactions (the Borsh encoding of a `Vec<Transaction>`);
//! - `Content-Type: application/json` — `{"txs": ["<hex of canonical bytes>", …]}`.
//!
//! It answers when every transaction is durably committed or rejected (or after the wait limit,
//! marking the rest `pending`), one result per transaction in request order. A full mempool
//! answers 503 with `Retry-After`: backpressure, not a crash. Errors are RFC 9457
//! problem+json naming the field and the rule.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use pharmalink_ledger::limits::{BLOCK_TXS_MAX, TX_BYTES_MAX};
use pharmalink_ledger::{Canonical, Hash, PublicKey, Transaction};
use serde::Serialize;
use serde_json::{json, Value};
use std::future::Future;

/// Largest request body of `POST /v1/txs`.
pub const SUBMIT_BODY_BYTES_MAX: usize = 32 * 1024 * 1024;
/// Most transactions in one submission.
pub const SUBMIT_TXS_MAX: usize = BLOCK_TXS_MAX;

#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct StatusView {
    pub chain_id: String,
    pub genesis_hash: String,
    pub height: u64,
    pub head_hash: String,
    pub head_timestamp_ms: u64,
    pub round: u32,
    pub validators: Vec<ValidatorView>,
    pub peers: Vec<String>,
    pub mempool_txs: usize,
    pub node_public_key: String,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ValidatorView {
    pub public_key: String,
    pub voting_power: u64,
}

/// A committed block, as `GET /v1/blocks/{height}` shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct BlockView {
    pub height: u64,
    pub hash: String,
    pub round: u32,
    pub timestamp_ms: u64,
    pub previous_block_hash: String,
    pub tx_root: String,
    pub state_root: String,
    pub history_root: String,
    pub proposer: String,
    pub tx_hashes: Vec<String>,
    /// Validator indexes whose precommits certify the block.
    pub certified_by: Vec<u16>,
}

impl BlockView {
    pub fn new(
        block: &pharmalink_ledger::Block,
        certificate: &pharmalink_ledger::CommitCertificate,
    ) -> BlockView {
        let h = &block.header;
        BlockView {
            height: h.height,
            hash: block.hash().to_hex(),
            round: h.round,
            timestamp_ms: h.timestamp_ms,
            previous_block_hash: h.previous_block_hash.to_hex(),
            tx_root: h.tx_root.to_hex(),
            state_root: h.state_root.to_hex(),
            history_root: h.history_root.to_hex(),
            proposer: h.proposer.to_hex(),
            tx_hashes: block.txs.iter().map(|t| t.hash().to_hex()).collect(),
            certified_by: certificate
                .signatures
                .iter()
                .map(|s| s.validator_index)
                .collect(),
        }
    }
}

/// What became of one submitted transaction.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SubmitOutcome {
    Committed {
        tx_hash: String,
        height: u64,
        index: u32,
    },
    Rejected {
        tx_hash: String,
        code: String,
        reason: String,
    },
    /// Accepted into the mempool but not committed within the wait limit.
    Pending { tx_hash: String },
    /// The mempool is full: retry later.
    Busy { tx_hash: String, reason: String },
}

/// What the node offers the API.
pub trait NodeApi: Clone + Send + Sync + 'static {
    fn status(&self) -> StatusView;
    fn genesis_json(&self) -> Value;
    /// Admits the transactions and resolves when each is committed or rejected.
    fn submit(&self, txs: Vec<Transaction>) -> impl Future<Output = Vec<SubmitOutcome>> + Send;
    /// Prometheus text exposition.
    fn metrics_text(&self) -> String;
    /// A transaction's outcome if it is committed (or recorded as rejected in a block), else
    /// whether it is pending in the mempool; `None` if unknown.
    fn tx_status(&self, tx_hash: &Hash) -> Result<Option<SubmitOutcome>, String>;
    /// A committed block.
    fn block(&self, height: u64) -> Result<Option<BlockView>, String>;
    /// The nonce the chain accepts next from `signer`.
    fn next_nonce(&self, signer: &PublicKey) -> Result<u64, String>;
    /// Read access to the committed ledger (blocks, certificates, state, indexes), for
    /// queries and proofs. Reads block: call from `spawn_blocking`.
    fn ledger(&self) -> std::sync::Arc<dyn pharmalink_ledger::LedgerRead + Send + Sync>;
    /// Follows the head height: changes after each durable commit (the committed-event feed
    /// wakes on it).
    fn committed_heights(&self) -> tokio::sync::watch::Receiver<u64>;
    /// Signs an access token (`claims` with `iss` set to the node's key) with the node's key.
    fn issue_access_token(&self, claims: crate::auth::Claims) -> Result<String, String>;
    /// Appends an access-audit entry (durably) to the node's audit log.
    fn record_audit(&self, entry: &crate::audit::AuditEntry) -> Result<(), String>;
    /// The newest audit entries first, at most `limit`.
    fn audit_entries(&self, limit: usize) -> Result<Vec<crate::audit::AuditEntry>, String>;
    /// Organization member keys this node holds and signs EPCIS captures with.
    fn organization_keys(&self) -> Vec<PublicKey>;
    /// Signs a capture's commands with `spec.signer`, persists the job, admits the
    /// transactions; resolves with the job id once the job is durable.
    fn start_capture(
        &self,
        spec: crate::epcis_api::CaptureSpec,
    ) -> impl Future<Output = Result<String, String>> + Send;
    /// A capture job, its items' outcomes read from the chain.
    fn capture_job(&self, id: &str) -> Result<Option<crate::epcis_api::CaptureJobView>, String>;
    /// The PHI vault, if this node keeps one.
    fn vault(&self) -> Option<std::sync::Arc<dyn crate::pharmacy::PhiVault>>;
    /// Node-local (not replicated) records: intakes awaiting review, telemetry readings. A
    /// put is durable when it returns.
    fn local_put(&self, key: &str, value: &[u8]) -> Result<(), String>;
    fn local_get(&self, key: &str) -> Result<Option<Vec<u8>>, String>;
    /// Entries under `prefix`, keys without the prefix, in key order.
    fn local_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, String>;
    fn local_delete(&self, key: &str) -> Result<(), String>;
    /// The node's live-tracking registry (in memory, node-local: positions stay off-ledger).
    fn tracker(&self) -> std::sync::Arc<crate::tracking::Tracker>;
    /// Test networks only: cut this node off from `blocked` peers (empty heals). Nodes refuse
    /// unless started with fault injection enabled.
    fn set_partition(
        &self,
        blocked: Vec<PublicKey>,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

pub fn router<N: NodeApi>(node: N) -> Router {
    if let Ok(key) = PublicKey::from_hex(&node.status().node_public_key) {
        crate::auth::set_token_issuer(key);
    }
    let scan_page = crate::scan_page::routes(node.ledger().genesis());
    Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/v1/status", get(status::<N>))
        .route("/v1/genesis", get(genesis::<N>))
        .route("/v1/txs", post(submit::<N>))
        .route("/v1/txs/{hash}", get(tx_status::<N>))
        .route("/v1/blocks/{height}", get(block::<N>))
        .route("/v1/signers/{signer}/nonce", get(next_nonce::<N>))
        .route("/v1/admin/partition", post(partition::<N>))
        .route("/metrics", get(metrics::<N>))
        .layer(DefaultBodyLimit::max(SUBMIT_BODY_BYTES_MAX))
        .with_state(node.clone())
        .merge(crate::consumer::routes(node.clone()))
        .merge(crate::courier_run::routes(node.clone()))
        .merge(crate::dscsa::routes(node.clone()))
        .merge(crate::epcis_api::routes(node.clone()))
        .merge(crate::audit::routes(node.clone()))
        .merge(crate::token::routes(node.clone()))
        .merge(crate::pharmacy::routes(node.clone()))
        .merge(crate::dispatch::routes(node.clone()))
        .merge(crate::tracking::routes(node.clone()))
        .merge(crate::grpc::axum_routes(node))
        .merge(crate::openapi::routes())
        .merge(scan_page)
        .layer(axum::middleware::from_fn(crate::limits::flood_guard))
}

/// An RFC 9457 problem response.
pub fn problem(
    status: StatusCode,
    title: &str,
    detail: impl Into<String>,
    field: Option<&str>,
) -> Response {
    problem_with_errors(status, title, detail, field, Vec::new())
}

/// A problem response listing every error found (`errors`, omitted when empty).
pub fn problem_with_errors(
    status: StatusCode,
    title: &str,
    detail: impl Into<String>,
    field: Option<&str>,
    errors: Vec<Value>,
) -> Response {
    let mut body = json!({"type": "about:blank", "title": title, "status": status.as_u16(), "detail": detail.into()});
    if let Some(field) = field {
        body["field"] = json!(field);
    }
    if !errors.is_empty() {
        body["errors"] = Value::Array(errors);
    }
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// A JSON request body as `T`, or a 400 naming the body: "not {what}: {the parser's reason}".
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| bad_request("body", format!("not {what}: {e}")))
}

/// 400 naming the field and the rule.
pub fn bad_request(field: &str, reason: impl Into<String>) -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        "Invalid request",
        reason,
        Some(field),
    )
}

/// 500 for a failure inside the node (a blocking task that did not finish).
pub fn internal_error(error: impl std::fmt::Display) -> Response {
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal error",
        error.to_string(),
        None,
    )
}

#[utoipa::path(get, path = "/v1/status", tag = "node",
    responses((status = 200, description = "Chain id, genesis hash, height, head hash, round, validators, peers, mempool", body = StatusView)))]
pub(crate) async fn status<N: NodeApi>(State(node): State<N>) -> impl IntoResponse {
    axum::Json(node.status())
}

#[utoipa::path(get, path = "/v1/genesis", tag = "node",
    responses((status = 200, description = "The genesis document (validators, organizations, chain id)", content_type = "application/json")))]
pub(crate) async fn genesis<N: NodeApi>(State(node): State<N>) -> impl IntoResponse {
    axum::Json(node.genesis_json())
}

#[utoipa::path(get, path = "/v1/blocks/{height}", tag = "node",
    params(("height" = u64, Path, description = "Block height, from 1")),
    responses((status = 200, body = BlockView), (status = 400, description = "Malformed height (problem+json)"), (status = 404, description = "No block at that height")))]
pub(crate) async fn block<N: NodeApi>(
    State(node): State<N>,
    Path(height): Path<String>,
) -> Response {
    let height: u64 = match height.parse() {
        Ok(h) => h,
        Err(_) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Malformed height",
                format!("{height:?} is not a block height"),
                Some("height"),
            )
        }
    };
    match node.block(height) {
        Ok(Some(view)) => axum::Json(view).into_response(),
        Ok(None) => problem(
            StatusCode::NOT_FOUND,
            "Unknown block",
            format!("no block at height {height} here"),
            Some("height"),
        ),
        Err(reason) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Store error",
            reason,
            None,
        ),
    }
}

#[utoipa::path(get, path = "/v1/txs/{hash}", tag = "node",
    params(("hash" = String, Path, description = "Transaction hash, 64 hex digits")),
    responses((status = 200, body = SubmitOutcome), (status = 404, description = "Neither committed nor pending here")))]
pub(crate) async fn tx_status<N: NodeApi>(
    State(node): State<N>,
    Path(hash): Path<String>,
) -> Response {
    let hash = match Hash::from_hex(&hash) {
        Ok(hash) => hash,
        Err(reason) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Malformed transaction hash",
                reason,
                Some("hash"),
            )
        }
    };
    match node.tx_status(&hash) {
        Ok(Some(outcome)) => axum::Json(outcome).into_response(),
        Ok(None) => problem(
            StatusCode::NOT_FOUND,
            "Unknown transaction",
            format!("no transaction {hash} is committed or pending here"),
            Some("hash"),
        ),
        Err(reason) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Store error",
            reason,
            None,
        ),
    }
}

#[utoipa::path(post, path = "/v1/admin/partition", tag = "test networks",
    request_body(content_type = "application/json", description = r#"{"blocked": ["<peer public key hex>", …]} (empty heals)"#),
    responses((status = 204, description = "Applied"), (status = 403, description = "The node was not started with fault injection")))]
pub(crate) async fn partition<N: NodeApi>(State(node): State<N>, body: Bytes) -> Response {
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Malformed request",
                format!("not JSON: {e}"),
                Some("body"),
            )
        }
    };
    let Some(list) = value.get("blocked").and_then(Value::as_array) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Malformed request",
            "must be an array of hex public keys",
            Some("blocked"),
        );
    };
    let mut blocked = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        match item.as_str().map(PublicKey::from_hex) {
            Some(Ok(key)) => blocked.push(key),
            Some(Err(reason)) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "Malformed public key",
                    reason,
                    Some(&format!("blocked[{i}]")),
                )
            }
            None => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "Malformed public key",
                    "must be a hex string",
                    Some(&format!("blocked[{i}]")),
                )
            }
        }
    }
    match node.set_partition(blocked).await {
        Ok(()) => axum::Json(json!({"status": "ok"})).into_response(),
        Err(reason) => problem(
            StatusCode::FORBIDDEN,
            "Fault injection refused",
            reason,
            None,
        ),
    }
}

#[utoipa::path(get, path = "/v1/signers/{signer}/nonce", tag = "node",
    params(("signer" = String, Path, description = "ed25519 public key, 64 hex digits")),
    responses((status = 200, description = r#"{"next_nonce": n}"#, content_type = "application/json")))]
pub(crate) async fn next_nonce<N: NodeApi>(
    State(node): State<N>,
    Path(signer): Path<String>,
) -> Response {
    let signer = match PublicKey::from_hex(&signer) {
        Ok(key) => key,
        Err(reason) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Malformed public key",
                reason,
                Some("signer"),
            )
        }
    };
    match node.next_nonce(&signer) {
        Ok(next_nonce) => {
            axum::Json(json!({"signer": signer.to_hex(), "next_nonce": next_nonce})).into_response()
        }
        Err(reason) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Store error",
            reason,
            None,
        ),
    }
}

#[utoipa::path(get, path = "/metrics", tag = "node",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub(crate) async fn metrics<N: NodeApi>(State(node): State<N>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        node.metrics_text(),
    )
}

/// How a submission body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxsBodyFormat {
    One,
    Batch,
    Json,
}

impl TxsBodyFormat {
    pub const ONE: &'static str = "application/vnd.pharmalink.tx";
    pub const BATCH: &'static str = "application/vnd.pharmalink.txs";

    pub fn content_type(self) -> &'static str {
        match self {
            TxsBodyFormat::One => Self::ONE,
            TxsBodyFormat::Batch => Self::BATCH,
            TxsBodyFormat::Json => "application/json",
        }
    }
}

/// Encodes a batch body (`application/vnd.pharmalink.txs`).
pub fn encode_batch(txs: &[Transaction]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + txs.len() * 300);
    out.extend_from_slice(&(txs.len() as u32).to_le_bytes());
    for tx in txs {
        if let Ok(bytes) = tx.to_canonical_bytes() {
            out.extend_from_slice(&bytes);
        }
    }
    out
}

/// Decodes a submission body; the error names the transaction and the rule.
pub fn decode_txs(
    format: TxsBodyFormat,
    body: &[u8],
) -> Result<Vec<Transaction>, (String, String)> {
    let too_many = |n: usize| {
        (
            "txs".to_string(),
            format!("{n} transactions exceed the maximum of {SUBMIT_TXS_MAX} per request"),
        )
    };
    match format {
        TxsBodyFormat::One => Transaction::from_canonical_bytes(body)
            .map(|tx| vec![tx])
            .map_err(|e| ("body".into(), e.to_string())),
        TxsBodyFormat::Batch => {
            let (count, mut rest) = match body.split_first_chunk::<4>() {
                Some((count, rest)) => (u32::from_le_bytes(*count) as usize, rest),
                None => {
                    return Err((
                        "body".into(),
                        "a batch starts with a 4-byte little-endian count".into(),
                    ))
                }
            };
            if count > SUBMIT_TXS_MAX {
                return Err(too_many(count));
            }
            let mut txs = Vec::with_capacity(count);
            for index in 0..count {
                let mut reader = rest;
                let tx = <Transaction as borsh::BorshDeserialize>::deserialize(&mut reader)
                    .map_err(|e| (format!("txs[{index}]"), format!("cannot decode: {e}")))?;
                let used = rest.len() - reader.len();
                if used > TX_BYTES_MAX {
                    return Err((
                        format!("txs[{index}]"),
                        format!("{used} bytes exceed the maximum of {TX_BYTES_MAX}"),
                    ));
                }
                tx.check()
                    .map_err(|e| (format!("txs[{index}]"), e.to_string()))?;
                rest = reader;
                txs.push(tx);
            }
            if !rest.is_empty() {
                return Err((
                    "body".into(),
                    format!(
                        "{} bytes after the last of {count} transactions",
                        rest.len()
                    ),
                ));
            }
            Ok(txs)
        }
        TxsBodyFormat::Json => {
            let value: Value = serde_json::from_slice(body)
                .map_err(|e| ("body".to_string(), format!("not JSON: {e}")))?;
            let list = value.get("txs").and_then(Value::as_array).ok_or((
                "txs".to_string(),
                "must be an array of hex strings".to_string(),
            ))?;
            if list.len() > SUBMIT_TXS_MAX {
                return Err(too_many(list.len()));
            }
            list.iter()
                .enumerate()
                .map(|(index, item)| {
                    let field = format!("txs[{index}]");
                    let text = item
                        .as_str()
                        .ok_or((field.clone(), "must be a hex string".to_string()))?;
                    let bytes =
                        hex::decode(text).map_err(|e| (field.clone(), format!("not hex: {e}")))?;
                    Transaction::from_canonical_bytes(&bytes).map_err(|e| (field, e.to_string()))
                })
                .collect()
        }
    }
}

#[utoipa::path(post, path = "/v1/txs", tag = "node",
    request_body(description = "Signed transactions: one as application/vnd.pharmalink.tx, a batch as application/vnd.pharmalink.txs (u32 LE count then each), or JSON {\"txs\": [\"hex\", …]}", content_type = "application/vnd.pharmalink.txs"),
    responses((status = 200, description = "One result per transaction, in order: committed, rejected (code, reason), pending or busy", content_type = "application/json"),
              (status = 400, description = "Malformed body, naming the field (problem+json)"),
              (status = 503, description = "Mempool full: retry after Retry-After")))]
pub(crate) async fn submit<N: NodeApi>(
    State(node): State<N>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = match content_type.split(';').next().map(str::trim) {
        Some(TxsBodyFormat::ONE) => TxsBodyFormat::One,
        Some(TxsBodyFormat::BATCH) => TxsBodyFormat::Batch,
        Some("application/json") => TxsBodyFormat::Json,
        _ => {
            return problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported content type",
                format!(
                    "Content-Type {content_type:?} is not {}, {} or application/json",
                    TxsBodyFormat::ONE,
                    TxsBodyFormat::BATCH
                ),
                Some("Content-Type"),
            )
        }
    };
    let txs = match decode_txs(format, &body) {
        Ok(txs) if txs.is_empty() => {
            return problem(
                StatusCode::BAD_REQUEST,
                "No transactions",
                "the request holds no transaction",
                Some("txs"),
            )
        }
        Ok(txs) => txs,
        Err((field, reason)) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Malformed transaction",
                reason,
                Some(&field),
            )
        }
    };
    let outcomes = node.submit(txs).await;
    let busy = outcomes
        .iter()
        .all(|o| matches!(o, SubmitOutcome::Busy { .. }));
    let body = axum::Json(json!({ "results": outcomes }));
    if busy {
        let mut response = (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    }
    (StatusCode::OK, body).into_response()
}
