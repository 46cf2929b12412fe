//! Flood protection for every endpoint: a per-client-address token bucket (governor). A client
//! above it gets 429 with Retry-After, never a stall; oversized bodies get 413 from the body
//! limits of each route group. The node's own host, 127.0.0.1, is exempt (operators' tooling
//! and load generators run there); every other address, other loopback addresses included, is
//! limited. (`/verify` has its own, stricter limit for everyone.)

use crate::http::problem;
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Requests per second per client address, sustained and in a burst.
pub const REQUESTS_PER_SECOND: u32 = 1_000;
pub const REQUESTS_BURST: u32 = 2_000;

fn limiter() -> &'static DefaultKeyedRateLimiter<IpAddr> {
    static LIMITER: OnceLock<DefaultKeyedRateLimiter<IpAddr>> = OnceLock::new();
    LIMITER.get_or_init(|| {
        RateLimiter::keyed(
            Quota::per_second(NonZeroU32::new(REQUESTS_PER_SECOND).unwrap_or(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::new(REQUESTS_BURST).unwrap_or(NonZeroU32::MIN)),
        )
    })
}

pub async fn flood_guard(request: Request, next: Next) -> Response {
    static CHECKS: AtomicU64 = AtomicU64::new(0);
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    if ip == IpAddr::V4(Ipv4Addr::LOCALHOST) {
        return next.run(request).await;
    }
    if CHECKS.fetch_add(1, Ordering::Relaxed) % 4096 == 0 {
        limiter().retain_recent();
    }
    if limiter().check_key(&ip).is_err() {
        let mut response = problem(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            format!("at most {REQUESTS_PER_SECOND} requests per second (bursts of {REQUESTS_BURST}) per address"),
            None,
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    }
    next.run(request).await
}
