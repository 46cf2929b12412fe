//! The OpenAPI 3 document, generated from the handlers' annotations (utoipa), served at
//! `/openapi.json`, and a human-readable page at `/docs` rendered from the same document.

use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct BearerJwt;

impl Modify for BearerJwt {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format(
                        "JWT (EdDSA, signed by an organization member key; see `pharmalink token`)",
                    )
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "PharmaLink node API",
        description = "DSCSA traceability node: ledger, EPCIS 2.0 capture and query, DSCSA tracing and verification, consumer verification with offline proofs. gRPC (pharmalink.v1.Ledger, with reflection) is served on the same port. Errors are RFC 9457 problem+json naming the field."
    ),
    paths(
        crate::http::status,
        crate::http::genesis,
        crate::http::submit,
        crate::http::tx_status,
        crate::http::block,
        crate::http::next_nonce,
        crate::http::metrics,
        crate::http::partition,
        crate::consumer::verify,
        crate::dscsa::trace,
        crate::dscsa::verify,
        crate::dscsa::recall,
        crate::dscsa::exceptions,
        crate::dscsa::open_shipments,
        crate::dscsa::suspect,
        crate::epcis_api::capture,
        crate::epcis_api::capture_job,
        crate::epcis_api::events,
        crate::epcis_api::epc_events,
        crate::audit::read,
        crate::token::token,
        crate::token::jwks,
        crate::pharmacy::intake,
        crate::pharmacy::intakes,
        crate::pharmacy::intake_record,
        crate::pharmacy::decide,
        crate::pharmacy::dispense,
        crate::pharmacy::inventory,
        crate::pharmacy::reserve,
        crate::pharmacy::release,
        crate::pharmacy::storage,
        crate::pharmacy::telemetry,
        crate::pharmacy::telemetry_batch,
        crate::pharmacy::shred,
        crate::pharmacy::phi_audit,
        crate::dispatch::create,
        crate::dispatch::order_view,
        crate::dispatch::manual,
        crate::dispatch::resolve,
        crate::dispatch::vehicle,
        crate::dispatch::pickup,
        crate::dispatch::deliver,
        crate::dispatch::fail,
        crate::courier_run::plan,
        crate::tracking::register,
        crate::tracking::position,
        crate::tracking::status,
        crate::tracking::watch,
    ),
    components(schemas(
        crate::http::StatusView,
        crate::http::ValidatorView,
        crate::http::BlockView,
        crate::http::SubmitOutcome,
        crate::epcis_api::CaptureJobView,
        crate::epcis_api::CaptureItemView,
        crate::audit::AuditEntry,
        crate::pharmacy::IntakeView,
        crate::pharmacy::SignalView,
        crate::pharmacy::DecisionRequest,
        crate::pharmacy::DispenseRequest,
        crate::pharmacy::ReserveRequest,
        crate::pharmacy::StorageRequest,
        crate::pharmacy::TelemetryRequest,
        crate::pharmacy::ReadingJson,
        crate::pharmacy::ShredRequest,
        crate::pharmacy::PhiAccess,
        crate::dispatch::OrderRequest,
        crate::dispatch::ResolveRequest,
        crate::dispatch::VehicleRequest,
        crate::dispatch::DeliverRequest,
        crate::dispatch::FailRequest,
        crate::courier_run::RunRequest,
        crate::courier_run::RunStop,
        crate::courier_run::RunPlan,
        crate::dispatch::Saga,
        crate::dispatch::SagaLog,
        crate::dispatch::Step,
        crate::dispatch::SagaStatus,
        crate::tracking::RegisterRequest,
        crate::tracking::RegisterResponse,
        crate::tracking::GeoJson,
        crate::tracking::PositionRequest,
        crate::tracking::StatusRequest,
        crate::tracking::TrackingUpdate,
        crate::tracking::TrackingStatus,
    )),
    modifiers(&BearerJwt),
    tags(
        (name = "node", description = "Status, genesis, blocks, transactions"),
        (name = "consumer", description = "Patients: no login, no PHI, no commercial data"),
        (name = "dscsa", description = "Trading partners and regulators (bearer JWT)"),
        (name = "epcis", description = "EPCIS 2.0 capture and query (bearer JWT)"),
        (name = "pharmacy", description = "Rx intake, PHI vault, inventory, dispensing, cold chain (bearer JWT; PHI reads need X-PHI-Purpose and are audited)"),
        (name = "dispatch", description = "Fulfilment saga, couriers, vehicles, handoff with a one-time code (bearer JWT)"),
        (name = "tracking", description = "Live delivery tracking: couriers post positions, watchers follow an order over a WebSocket with its watch token (no PHI; positions stay off-ledger)"),
        (name = "auth", description = "Client credentials (RFC 7523 assertions) and the node's JWKS"),
        (name = "test networks", description = "Fault injection, refused unless enabled"),
    )
)]
pub struct ApiDoc;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A plain HTML page listing every operation, its parameters and responses.
pub fn docs_html() -> String {
    let doc = ApiDoc::openapi();
    let value = serde_json::to_value(&doc).unwrap_or_default();
    let mut out = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>PharmaLink node API</title><style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:auto;padding:1rem;line-height:1.4}code{background:#f2f2f2;padding:0 .2rem}h3{margin-bottom:.2rem}.m{font-weight:bold;text-transform:uppercase}</style></head><body>",
    );
    out.push_str(&format!(
        "<h1>{}</h1><p>{}</p><p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI 3).</p>",
        escape(value["info"]["title"].as_str().unwrap_or("")),
        escape(value["info"]["description"].as_str().unwrap_or(""))
    ));
    if let Some(paths) = value["paths"].as_object() {
        for (path, operations) in paths {
            for (method, operation) in operations.as_object().into_iter().flatten() {
                out.push_str(&format!(
                    "<h3><span class=\"m\">{}</span> <code>{}</code></h3>",
                    escape(method),
                    escape(path)
                ));
                if operation.get("security").is_some() {
                    out.push_str("<p>Needs <code>Authorization: Bearer &lt;JWT&gt;</code>.</p>");
                }
                let params: Vec<String> = operation["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        format!(
                            "<code>{}</code> ({}){}",
                            escape(p["name"].as_str().unwrap_or("")),
                            escape(p["in"].as_str().unwrap_or("")),
                            p["description"]
                                .as_str()
                                .map(|d| format!(": {}", escape(d)))
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                if !params.is_empty() {
                    out.push_str(&format!("<p>Parameters: {}</p>", params.join("; ")));
                }
                if let Some(body) = operation["requestBody"]["description"].as_str() {
                    out.push_str(&format!("<p>Body: {}</p>", escape(body)));
                }
                out.push_str("<ul>");
                for (status, response) in operation["responses"].as_object().into_iter().flatten() {
                    out.push_str(&format!(
                        "<li><b>{}</b> {}</li>",
                        escape(status),
                        escape(response["description"].as_str().unwrap_or(""))
                    ));
                }
                out.push_str("</ul>");
            }
        }
    }
    out.push_str("</body></html>");
    out
}

pub fn routes() -> Router {
    Router::new()
        .route(
            "/openapi.json",
            get(|| async { axum::Json(ApiDoc::openapi()).into_response() }),
        )
        .route("/docs", get(|| async { Html(docs_html()) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_and_the_page_lists_them() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for path in [
            "/v1/status",
            "/v1/txs",
            "/v1/blocks/{height}",
            "/verify",
            "/v1/dscsa/trace",
            "/v1/dscsa/verify",
            "/epcis/capture",
            "/epcis/events",
            "/v1/tracking/orders",
            "/v1/tracking/{order}/positions",
            "/v1/tracking/{order}/status",
            "/v1/tracking/{order}/ws",
        ] {
            assert!(paths.contains_key(path), "{path} missing");
        }
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
        let html = docs_html();
        assert!(html.contains("/epcis/capture") && html.contains("Bearer"));
    }
}
