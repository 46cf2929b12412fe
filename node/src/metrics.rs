//! Prometheus metrics served on /metrics.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub struct Metrics {
    registry: Registry,
    pub height: Gauge,
    pub round: Gauge,
    pub mempool_txs: Gauge,
    pub peers: Gauge,
    pub txs_committed: Counter,
    /// Submission to durable commit, per transaction.
    pub commit_latency: Histogram,
    /// Executing and writing one decided block.
    pub block_commit_seconds: Histogram,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut metrics = Metrics {
            height: Gauge::default(),
            round: Gauge::default(),
            mempool_txs: Gauge::default(),
            peers: Gauge::default(),
            txs_committed: Counter::default(),
            commit_latency: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            block_commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            registry: Registry::with_prefix("pharmalink"),
        };
        metrics.registry.register(
            "height",
            "Height of the last committed block",
            metrics.height.clone(),
        );
        metrics
            .registry
            .register("round", "Current consensus round", metrics.round.clone());
        metrics.registry.register(
            "mempool_txs",
            "Transactions waiting in the mempool",
            metrics.mempool_txs.clone(),
        );
        metrics
            .registry
            .register("peers", "Connected peers", metrics.peers.clone());
        metrics.registry.register(
            "txs_committed",
            "Transactions committed",
            metrics.txs_committed.clone(),
        );
        metrics.registry.register(
            "commit_latency_seconds",
            "Submission to durable commit, per transaction",
            metrics.commit_latency.clone(),
        );
        metrics.registry.register(
            "block_commit_seconds",
            "Executing and writing one decided block",
            metrics.block_commit_seconds.clone(),
        );
        metrics
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
