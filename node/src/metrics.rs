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
    /// Rounds started after round 0 of a height (each one a failed round: a proposer missing
    /// or late, or votes that did not agree in time).
    pub round_changes: Counter,
    pub mempool_txs: Gauge,
    pub peers: Gauge,
    pub txs_committed: Counter,
    /// Gossiped transactions dropped because admission was behind (they are verified if a
    /// proposal carries them).
    pub gossip_txs_dropped: Counter,
    /// Gossiped transactions not checked again: already pending, or checked in a proposal.
    pub gossip_txs_known: Counter,
    /// Submission to durable commit, per transaction.
    pub commit_latency: Histogram,
    /// Executing and writing one decided block.
    pub block_commit_seconds: Histogram,
    /// From the start of a height (the previous block committed here) to a proposal in hand:
    /// received and validated, or built here.
    pub proposal_wait_seconds: Histogram,
    /// From the proposal in hand to the decision: the prevote and precommit rounds.
    pub votes_seconds: Histogram,
    /// The synced write of the consensus safety state before a message is signed.
    pub safety_persist_seconds: Histogram,
    /// Checking the signatures of one batch of transactions from a client and admitting them.
    pub client_admission_seconds: Histogram,
    /// The same for one batch gossiped by a peer.
    pub gossip_admission_seconds: Histogram,
    /// Transactions per admitted batch, clients' and gossiped (signatures are checked a batch
    /// at a time: a small batch costs more per signature).
    pub admission_batch_txs: Histogram,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut metrics = Metrics {
            height: Gauge::default(),
            round: Gauge::default(),
            round_changes: Counter::default(),
            mempool_txs: Gauge::default(),
            peers: Gauge::default(),
            txs_committed: Counter::default(),
            gossip_txs_dropped: Counter::default(),
            gossip_txs_known: Counter::default(),
            commit_latency: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            block_commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            proposal_wait_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            votes_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            safety_persist_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 14)),
            client_admission_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 14)),
            gossip_admission_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 14)),
            admission_batch_txs: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
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
            "round_changes",
            "Rounds started after round 0 of a height (failed rounds)",
            metrics.round_changes.clone(),
        );
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
            "gossip_txs_dropped",
            "Gossiped transactions dropped because admission was behind",
            metrics.gossip_txs_dropped.clone(),
        );
        metrics.registry.register(
            "gossip_txs_known",
            "Gossiped transactions whose signatures were not checked again (already pending, or checked in a proposal)",
            metrics.gossip_txs_known.clone(),
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
        let histograms = [
            (
                "proposal_wait_seconds",
                "Start of a height (previous block committed here) to a proposal in hand: received and validated, or built here",
                &metrics.proposal_wait_seconds,
            ),
            (
                "votes_seconds",
                "Proposal in hand to decision: the prevote and precommit rounds",
                &metrics.votes_seconds,
            ),
            (
                "safety_persist_seconds",
                "Synced write of the consensus safety state before signing",
                &metrics.safety_persist_seconds,
            ),
            (
                "client_admission_seconds",
                "Signature checks and admission of one batch of transactions from a client",
                &metrics.client_admission_seconds,
            ),
            (
                "gossip_admission_seconds",
                "Signature checks and admission of one batch of transactions gossiped by a peer",
                &metrics.gossip_admission_seconds,
            ),
            (
                "admission_batch_txs",
                "Transactions per admitted batch (clients' and gossiped)",
                &metrics.admission_batch_txs,
            ),
        ];
        for (name, help, histogram) in histograms {
            metrics.registry.register(name, help, histogram.clone());
        }
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

/// CPU time (user, system) process `pid` has used so far, exited threads included, from
/// `/proc/PID/stat` (Linux; `None` elsewhere or for a process that is gone). The benchmarks
/// measure with it: CPU per operation is the figure that holds when processes share the cores.
pub fn process_cpu_time(pid: u32) -> Option<(std::time::Duration, std::time::Duration)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (user, system) = stat_cpu_ticks(&stat)?;
    // USER_HZ, the unit of these fields, is 100 on every architecture Linux runs on.
    let tick = std::time::Duration::from_millis(10);
    Some((tick * user, tick * system))
}

/// Minor page faults of process `pid` so far (`minflt`, field 10 of `/proc/PID/stat`): each is a
/// page the process touched for the first time since the kernel gave it. On a VM whose host
/// reclaims the guest's free memory (virtio-balloon free page reporting, as on the bench
/// machine) such a first touch costs microseconds, so the benchmarks print faults per
/// transaction beside CPU per transaction.
pub fn process_minor_faults(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_field(&stat, 10)
}

/// Resident memory of process `pid` in bytes (`VmRSS` of `/proc/PID/status`).
pub fn process_resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_resident_bytes(&status)
}

fn status_resident_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    (words.next()? == "kB").then_some(value * 1024)
}

/// [`process_cpu_time`] summed, in seconds, for this process; 0 where `/proc` is unavailable.
pub fn own_cpu_seconds() -> f64 {
    process_cpu_time(std::process::id()).map_or(0.0, |(user, system)| (user + system).as_secs_f64())
}

/// What a benchmark's figures depend on, in one line: the CPU model (from `/proc/cpuinfo`), the
/// cores this process may use, and the ed25519 vector backend curve25519-dalek picks at run time
/// on this CPU (AVX-512 IFMA verifies about 2.5-3x faster than AVX2). Figures from machines that
/// differ here are not comparable.
pub fn machine_description() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| cpu_model(&info))
        .unwrap_or_else(|| "unknown CPU".to_string());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!(
        "{model}, {cores} cores, ed25519 backend {}",
        ed25519_backend()
    )
}

/// The `model name` of the first processor in a `/proc/cpuinfo` text.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_string())
    })
}

/// The backend curve25519-dalek selects at run time (its own rule: AVX-512 IFMA with AVX-512 VL
/// when present, else AVX2, else the portable 64-bit code). The AVX-512 backend is there only
/// when compiled in, which `.cargo/config.toml` does for every build of this workspace.
fn ed25519_backend() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512ifma")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            return "avx512ifma";
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
    }
    "serial"
}

/// utime and stime (fields 14 and 15) of a `/proc/PID/stat` line, counted after the command
/// name, which is in parentheses and may hold spaces and parentheses itself.
fn stat_cpu_ticks(stat: &str) -> Option<(u32, u32)> {
    Some((stat_field(stat, 14)?, stat_field(stat, 15)?))
}

/// Field `number` (counted from 1, as in proc(5)) of a `/proc/PID/stat` line, from field 3 on.
fn stat_field<T: std::str::FromStr>(stat: &str, number: usize) -> Option<T> {
    // After the command name, the first field is field 3 (the state).
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    fields.nth(number.checked_sub(3)?)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_model_is_the_first_processors() {
        let info = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2\n\nprocessor\t: 1\nmodel name\t: other\n";
        assert_eq!(cpu_model(info).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(cpu_model("processor\t: 0\nflags\t: fpu\n"), None);
        // This machine's line: its cores, and one of the backends curve25519-dalek has.
        let description = machine_description();
        let cores = std::thread::available_parallelism().unwrap().get();
        assert!(
            description.contains(&format!(", {cores} cores, ")),
            "{description}"
        );
        let backend = description.rsplit(' ').next().unwrap();
        assert!(
            ["avx512ifma", "avx2", "serial"].contains(&backend),
            "{description}"
        );
    }

    #[test]
    fn cpu_ticks_are_read_after_the_command_name() {
        let line =
            "4242 (tokio (rt) worker) S 1 4242 4242 0 -1 4194560 9 0 0 0 1234 56 0 0 20 0 7 0 99 1 2";
        assert_eq!(stat_cpu_ticks(line), Some((1234, 56)));
        assert_eq!(stat_cpu_ticks("4242 (short) S 1"), None);
        assert_eq!(stat_cpu_ticks("no parenthesis"), None);
        assert_eq!(stat_field::<u64>(line, 10), Some(9));
        assert_eq!(stat_field::<String>(line, 3).as_deref(), Some("S"));
        assert_eq!(stat_field::<u64>(line, 2), None);
        // This process has used some CPU, and its own line parses and grows.
        let pid = std::process::id();
        let total = || process_cpu_time(pid).map(|(u, s)| u + s).unwrap();
        let spent = total();
        let started = std::time::Instant::now();
        while total() == spent {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "no CPU time counted"
            );
        }
        assert!(own_cpu_seconds() > 0.0);
    }

    #[test]
    fn resident_memory_and_page_faults_are_read() {
        let status =
            "Name:\tpharmalink-node\nVmPeak:\t  900 kB\nVmRSS:\t  812344 kB\nThreads:\t9\n";
        assert_eq!(status_resident_bytes(status), Some(812344 * 1024));
        assert_eq!(status_resident_bytes("VmRSS:\t12 MB\n"), None);
        assert_eq!(status_resident_bytes("Name:\tx\n"), None);
        // This process: touching fresh pages counts faults, and it has resident memory.
        let pid = std::process::id();
        let before = process_minor_faults(pid).unwrap();
        let pages: Vec<u8> = vec![1; 64 << 20];
        assert!(pages.iter().step_by(4096).all(|&b| b == 1));
        assert!(process_minor_faults(pid).unwrap() > before);
        assert!(process_resident_bytes(pid).unwrap() > 0);
    }
}
