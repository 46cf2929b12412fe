//! `GET /scan`: the consumer's scan page, which checks `/verify`'s proof in the browser.
//!
//! The page pins this network's genesis (chain id, validators' keys and voting power, genesis
//! hash) in the HTML itself; its script verifies every proof against that, never against
//! anything fetched with the answer. The assets are built from `api/web/` by esbuild (`npm run
//! build`, run by tools/env.sh before cargo) and embedded here at compile time; `build.rs`
//! stops with instructions if they are missing. Strict Content-Security-Policy: same-origin
//! scripts, styles and requests only, no inline script, no third party; no cookies, no
//! analytics.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use pharmalink_ledger::Genesis;
use serde_json::json;
use std::sync::Arc;

const PAGE_TEMPLATE: &str = include_str!("../web/src/scan.html");
const GENESIS_SLOT: &str = "{{PINNED_GENESIS}}";

/// The built assets: path under `/scan/`, content type, bytes.
const ASSETS: [(&str, &str, &[u8]); 3] = [
    (
        "scan.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/dist/scan.js"),
    ),
    (
        "decoder.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/dist/decoder.js"),
    ),
    (
        "scan.css",
        "text/css; charset=utf-8",
        include_bytes!("../web/dist/scan.css"),
    ),
];

/// Same origin only; `mediastream:`/`blob:` for the camera view and photos.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; \
     connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

struct Page {
    html: String,
    html_etag: String,
    asset_etags: Vec<String>,
}

/// The genesis as the page pins it: what the in-browser verifier checks proofs against.
pub fn pinned_genesis(genesis: &Genesis) -> serde_json::Value {
    json!({
        "chain_id": genesis.chain_id,
        "genesis_hash": genesis.hash().to_hex(),
        "validators": genesis.validators.validators.iter().map(|v| json!({
            "public_key": v.public_key.to_hex(),
            // A string: JSON numbers lose precision above 2^53 in JavaScript.
            "voting_power": v.voting_power.to_string(),
        })).collect::<Vec<_>>(),
    })
}

/// The page with `genesis` pinned (as JSON inside a non-executed `application/json` script
/// element; `<`, `>` and `&` escaped so no text can close it).
pub fn page_html(genesis: &Genesis) -> String {
    let pinned = pinned_genesis(genesis)
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    PAGE_TEMPLATE.replace(GENESIS_SLOT, &pinned)
}

fn etag(bytes: &[u8]) -> String {
    format!("\"{}\"", &blake3::hash(bytes).to_hex()[..32])
}

pub fn routes(genesis: &Genesis) -> Router {
    let html = page_html(genesis);
    let page = Arc::new(Page {
        html_etag: etag(html.as_bytes()),
        html,
        asset_etags: ASSETS.iter().map(|(_, _, bytes)| etag(bytes)).collect(),
    });
    let mut router = Router::new().route("/scan", get(serve_page));
    for (index, (name, _, _)) in ASSETS.iter().enumerate() {
        router = router.route(
            &format!("/scan/{name}"),
            get(move |state: State<Arc<Page>>, headers: HeaderMap| {
                serve_asset(state, headers, index)
            }),
        );
    }
    router.with_state(page)
}

async fn serve_page(State(page): State<Arc<Page>>, headers: HeaderMap) -> Response {
    respond(
        &headers,
        "text/html; charset=utf-8",
        &page.html_etag,
        page.html.clone().into_bytes(),
    )
}

async fn serve_asset(State(page): State<Arc<Page>>, headers: HeaderMap, index: usize) -> Response {
    let (_, content_type, bytes) = ASSETS[index];
    respond(
        &headers,
        content_type,
        &page.asset_etags[index],
        bytes.to_vec(),
    )
}

/// Revalidated on every load (`no-cache` + ETag → 304), so a node upgrade is seen at once.
fn respond(request: &HeaderMap, content_type: &str, etag: &str, body: Vec<u8>) -> Response {
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        body.into_response()
    };
    let headers = response.headers_mut();
    let mut set = |name: header::HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set(header::CONTENT_TYPE, content_type);
    set(header::CACHE_CONTROL, "no-cache");
    set(header::ETAG, etag);
    set(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "no-referrer");
    set(
        header::HeaderName::from_static("permissions-policy"),
        "camera=(self), microphone=(), geolocation=()",
    );
    set(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use pharmalink_ledger::builder::genesis;
    use pharmalink_ledger::SigningKey;

    #[test]
    fn the_page_pins_the_genesis_and_nothing_can_close_its_script_element() {
        let keys = [SigningKey::from_seed([7; 32])];
        let genesis = genesis("scan-test", 1, &keys, b"</script><script>".to_vec()).unwrap();
        let html = page_html(&genesis);
        assert!(html.contains(&genesis.hash().to_hex()));
        assert!(html.contains(&keys[0].public_key().to_hex()));
        assert!(!html.contains(GENESIS_SLOT));
        assert_eq!(html.matches("</script>").count(), 2, "{html}");
        // No third-party origin anywhere in the page or the policy.
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!CONTENT_SECURITY_POLICY.contains("http"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    }

    #[test]
    fn assets_are_embedded_and_revalidated() {
        for (name, _, bytes) in ASSETS {
            assert!(!bytes.is_empty(), "{name} is empty");
        }
        let mut request = HeaderMap::new();
        let response = respond(&request, "text/css", "\"abc\"", b"x".to_vec());
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::ETAG], "\"abc\"");
        request.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"abc\""));
        let response = respond(&request, "text/css", "\"abc\"", b"x".to_vec());
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    }
}
