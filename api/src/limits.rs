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

/// The client's address (unspecified when the server was not given connection info).
pub fn client_ip(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// A token bucket per client address; over it, 429 with Retry-After.
pub struct AddressLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    checks: AtomicU64,
    per_second: u32,
    burst: u32,
    title: &'static str,
}

impl AddressLimit {
    /// `title` names what is limited in the 429 answer.
    pub fn new(per_second: u32, burst: u32, title: &'static str) -> AddressLimit {
        let quota = Quota::per_second(NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        AddressLimit {
            limiter: RateLimiter::keyed(quota),
            checks: AtomicU64::new(0),
            per_second,
            burst,
            title,
        }
    }

    pub fn check(&self, ip: IpAddr) -> Result<(), Response> {
        // Forget idle addresses now and then, so the table stays bounded.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 0 {
            self.limiter.retain_recent();
        }
        if self.limiter.check_key(&ip).is_ok() {
            return Ok(());
        }
        let mut response = problem(
            StatusCode::TOO_MANY_REQUESTS,
            self.title,
            format!(
                "at most {} per second (bursts of {}) per address",
                self.per_second, self.burst
            ),
            None,
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        Err(response)
    }
}

pub async fn flood_guard(request: Request, next: Next) -> Response {
    static LIMIT: OnceLock<AddressLimit> = OnceLock::new();
    let ip = client_ip(request.extensions());
    if ip == IpAddr::V4(Ipv4Addr::LOCALHOST) {
        return next.run(request).await;
    }
    let limit = LIMIT.get_or_init(|| {
        AddressLimit::new(REQUESTS_PER_SECOND, REQUESTS_BURST, "Too many requests")
    });
    match limit.check(ip) {
        Ok(()) => next.run(request).await,
        Err(response) => response,
    }
}
