//! OAuth 2.0 client credentials with a JWT client assertion (RFC 6749 §4.4, RFC 7523): a
//! service proves it holds an organization member key and gets a short-lived access token the
//! node signs; and the node's token key as a JWKS (RFC 7517, OKP Ed25519 per RFC 8037).

use crate::auth::{authenticate, now_s, Claims, ACCESS_TOKEN_LIFETIME_S};
use crate::http::NodeApi;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub fn routes<N: NodeApi>(node: N) -> Router {
    Router::new()
        .route("/v1/auth/token", post(token::<N>))
        .route("/.well-known/jwks.json", get(jwks::<N>))
        .with_state(node)
}

#[derive(Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
}

/// RFC 6749 §5.2 error answer.
fn oauth_error(status: StatusCode, error: &str, description: impl Into<String>) -> Response {
    let mut response = (
        status,
        Json(json!({"error": error, "error_description": description.into()})),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[utoipa::path(post, path = "/v1/auth/token", tag = "auth",
    request_body(content_type = "application/x-www-form-urlencoded", description = "grant_type=client_credentials, client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer, client_assertion=<EdDSA JWT signed by a member key: sub = key, aud = chain id, exp ≤ 1 h>"),
    responses((status = 200, description = "access_token (EdDSA JWT signed by the node: iss, sub, org, role, aud; 15 minutes), token_type Bearer, expires_in", content_type = "application/json"),
              (status = 400, description = "invalid_request / unsupported_grant_type (RFC 6749 error)"),
              (status = 401, description = "invalid_client: the assertion does not check")))]
pub(crate) async fn token<N: NodeApi>(State(node): State<N>, body: Bytes) -> Response {
    let request: TokenRequest = match serde_urlencoded::from_bytes(&body) {
        Ok(request) => request,
        Err(e) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("body: {e}"),
            )
        }
    };
    if request.grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type: only client_credentials",
        );
    }
    if request.client_assertion_type.as_deref() != Some(ASSERTION_TYPE) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("client_assertion_type: must be {ASSERTION_TYPE}"),
        );
    }
    let Some(assertion) = request.client_assertion else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_assertion: missing",
        );
    };
    let mut headers = HeaderMap::new();
    match HeaderValue::from_str(&format!("Bearer {assertion}")) {
        Ok(value) => headers.insert(header::AUTHORIZATION, value),
        Err(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "client_assertion: not a token",
            )
        }
    };
    let store = node.ledger();
    let signer = node.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        // Only a client's own assertion, not a node-issued token, buys a new token.
        let unverified_iss = crate::auth::unverified_payload(&assertion)
            .ok()
            .and_then(|claims| claims.get("iss").cloned());
        if unverified_iss.is_some() {
            return Err(oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client_assertion: an access token is not an assertion",
            ));
        }
        let caller = authenticate(&headers, &*store, now_s()).map_err(|e| {
            let reason = match e {
                crate::auth::AuthError::Unauthenticated(r)
                | crate::auth::AuthError::Forbidden(r)
                | crate::auth::AuthError::Unavailable(r) => r,
            };
            oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", reason)
        })?;
        let Some(key) = caller.key else {
            return Err(oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "the assertion must be signed by a member key",
            ));
        };
        let now = now_s();
        let claims = Claims {
            sub: key.to_hex(),
            aud: store.genesis().chain_id.clone(),
            iat: now,
            exp: now + ACCESS_TOKEN_LIFETIME_S,
            iss: None,
            org: Some(caller.organization.gln().to_string()),
            role: Some(caller.role().name().to_string()),
        };
        signer.issue_access_token(claims).map_err(|reason| {
            oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                reason,
            )
        })
    })
    .await;
    match outcome {
        Ok(Ok(token)) => {
            let mut response = Json(json!({
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": ACCESS_TOKEN_LIFETIME_S,
            }))
            .into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Ok(Err(response)) => response,
        Err(e) => oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            e.to_string(),
        ),
    }
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "The node's token-signing key (OKP, Ed25519)", content_type = "application/json")))]
pub(crate) async fn jwks<N: NodeApi>(State(node): State<N>) -> Response {
    let key = node.status().node_public_key;
    let x = hex::decode(&key)
        .map(|b| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
        .unwrap_or_default();
    Json(json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": key, "use": "sig", "alg": "EdDSA"}]}))
        .into_response()
}
