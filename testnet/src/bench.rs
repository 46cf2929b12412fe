//! `pharmalink-testnet bench`: the network figures of issue 4 on this machine, in one run.
//!
//! 1. This machine's ed25519 batch-verification rate (one core) and the ceiling it implies:
//!    every validator verifies every transaction once, so n validators on c cores verify at
//!    most c × rate ÷ n transactions per second.
//! 2. A four-validator network on 127.0.0.2–5: sustained committed tx/s under closed-loop load,
//!    after a warm-up that is not counted, in one or more rounds (`--saturation-rounds`), with
//!    the nodes' CPU and page faults per transaction and their resident memory.
//! 3. Commit latency p50/p99 at 50 % and 90 % of the sustained rate (open loop).
//! 4. Catch-up: a validator killed while the others commit, then restarted: blocks/s and txs/s
//!    it replays, against the network's own commit rate.
//! 5. Proposer loss: each validator in turn is killed under load; the longest gap between
//!    commits that follows is the cost of losing the proposer (worst case over the four).

use crate::{Manifest, Testnet};
use anyhow::{bail, Context, Result};
use pharmalink_ledger::{verify_batch, PublicKey, Signature, SigningKey};
use pharmalink_node::config::ApplicationKind;
use serde_json::Value;
use std::path::Path;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// `pharmalink-testnet bench`'s options (its command line).
#[derive(clap::Args, Debug)]
pub struct BenchOptions {
    #[arg(long, default_value_t = 19000)]
    pub api_port: u16,
    /// Transactions for the saturation run.
    #[arg(long, default_value_t = 60000)]
    pub saturation_count: u64,
    /// Saturation runs in a row (each of --saturation-count): more than one shows whether
    /// the rate holds as the chain grows (flushes, then compactions) and where the nodes'
    /// memory levels off; the sustained rate is their overall rate.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub saturation_rounds: u32,
    /// Seconds of each latency run.
    #[arg(long, default_value_t = 10)]
    pub latency_seconds: u64,
    /// Seconds the others commit while a validator is down.
    #[arg(long, default_value_t = 15)]
    pub catch_up_seconds: u64,
    /// Base propose timeout of the nodes, in ms.
    #[arg(long, default_value_t = 1000)]
    pub timeout_propose_ms: u64,
    /// The nodes' `block_gather_ms` (their default, off, when absent).
    #[arg(long)]
    pub block_gather_ms: Option<u64>,
    /// The nodes' application: `contracts` (the product) or `nonce` (the node layer alone,
    /// to see what the contracts cost).
    #[arg(long, default_value = "contracts")]
    pub application: ApplicationKind,
}

fn batch_verify_rate() -> Result<f64> {
    let key = SigningKey::from_seed([5; 32]);
    let messages: Vec<[u8; 32]> = (0..4096u32)
        .map(|i| *blake3::hash(&i.to_le_bytes()).as_bytes())
        .collect();
    let signatures: Vec<Signature> = messages.iter().map(|m| key.sign(m)).collect();
    let items: Vec<(&[u8], PublicKey, Signature)> = messages
        .iter()
        .zip(&signatures)
        .map(|(m, s)| (m.as_slice(), key.public_key(), *s))
        .collect();
    let started = Instant::now();
    let mut verified = 0;
    while started.elapsed() < Duration::from_secs(2) {
        for chunk in items.chunks(1024) {
            verify_batch("bench", chunk)?;
            verified += chunk.len();
        }
    }
    Ok(verified as f64 / started.elapsed().as_secs_f64())
}

/// The bench's four validators on 127.0.0.2–5, API on `api_port`, peer-to-peer on the next port.
fn manifest(
    api_port: u16,
    timeout_propose_ms: u64,
    block_gather_ms: Option<u64>,
    application: ApplicationKind,
) -> Result<Manifest> {
    let text = format!(
        "chain_id = \"pharmalink-bench\"\napi_port = {}\np2p_port = {}\ntimeout_propose_ms = {}\n{}{}load_test_signers = 256\n{}",
        api_port,
        api_port + 1,
        timeout_propose_ms,
        // Only when not the default: a node built before the option refuses the key (`ab`).
        match application {
            ApplicationKind::Contracts => String::new(),
            other => format!("application = \"{}\"\n", other.as_str()),
        },
        block_gather_ms
            .map(|ms| format!("block_gather_ms = {ms}\n"))
            .unwrap_or_default(),
        ["manufacturer", "wholesaler", "pharmacy", "courier"]
            .iter()
            .enumerate()
            .map(|(i, name)| format!("[[node]]\nname = \"{name}\"\nrole = \"manufacturer\"\nip = \"127.0.0.{}\"\nvalidator = true\n", i + 2))
            .collect::<String>()
    );
    let manifest: Manifest = toml::from_str(&text)?;
    manifest.check()?;
    Ok(manifest)
}

/// CPU seconds (user + system, exited threads included) the running nodes of `testnet` have
/// used so far; `None` when a node is not running or `/proc` is missing.
fn nodes_cpu_seconds(testnet: &Testnet) -> Option<f64> {
    let mut seconds = 0.0;
    for node in &testnet.nodes {
        let (user, system) = pharmalink_node::metrics::process_cpu_time(node.pid()?)?;
        seconds += (user + system).as_secs_f64();
    }
    Some(seconds)
}

/// The nodes' CPU time since `before`, in µs per committed transaction (all nodes summed): the
/// cost that bounds throughput when they share the machine's cores.
fn cpu_per_committed_tx(testnet: &Testnet, before: Option<f64>, committed: u64) -> Option<f64> {
    let used = nodes_cpu_seconds(testnet)? - before?;
    (committed > 0).then(|| used * 1e6 / committed as f64)
}

/// Minor page faults of the running nodes so far, summed; `None` as for [`nodes_cpu_seconds`].
fn nodes_minor_faults(testnet: &Testnet) -> Option<u64> {
    testnet
        .nodes
        .iter()
        .map(|node| pharmalink_node::metrics::process_minor_faults(node.pid()?))
        .sum()
}

/// Resident memory of the running nodes, summed, in MiB.
fn nodes_resident_mib(testnet: &Testnet) -> Option<f64> {
    let bytes: Option<u64> = testnet
        .nodes
        .iter()
        .map(|node| pharmalink_node::metrics::process_resident_bytes(node.pid()?))
        .sum();
    bytes.map(|b| b as f64 / (1 << 20) as f64)
}

fn cpu_text(per_tx: Option<f64>) -> String {
    per_tx.map_or_else(|| "unknown".to_string(), |us| format!("{us:.0} µs"))
}

fn faults_text(per_tx: Option<f64>) -> String {
    per_tx.map_or_else(|| "unknown".to_string(), |f| format!("{f:.2}"))
}

fn memory_text(testnet: &Testnet) -> String {
    nodes_resident_mib(testnet).map_or_else(|| "unknown".to_string(), |m| format!("{m:.0} MiB"))
}

/// The smallest and the largest of `values` (`(inf, 0)` when there are none).
fn range(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    values
        .into_iter()
        .fold((f64::INFINITY, 0.0), |(low, high), v| {
            (low.min(v), high.max(v))
        })
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// The stage histograms' running sums and counts (`_sum`, `_count`) over the running nodes'
/// `/metrics`, by histogram name without the `pharmalink_` prefix.
type StageTotals = std::collections::BTreeMap<String, (f64, f64)>;

/// The histograms [`stage_totals`] reads: where a height's time and the admission CPU go.
const STAGE_HISTOGRAMS: [&str; 7] = [
    "proposal_wait_seconds",
    "votes_seconds",
    "block_commit_seconds",
    "safety_persist_seconds",
    "client_admission_seconds",
    "gossip_admission_seconds",
    "admission_batch_txs",
];

fn stage_totals(testnet: &Testnet) -> StageTotals {
    let http = reqwest::blocking::Client::new();
    let mut totals = StageTotals::new();
    for node in &testnet.nodes {
        let Ok(text) = http
            .get(format!("http://{}/metrics", node.api))
            .send()
            .and_then(|r| r.text())
        else {
            continue;
        };
        for line in text.lines() {
            let Some((name, value)) = line.split_once(' ') else {
                continue;
            };
            let Some(name) = name.strip_prefix("pharmalink_") else {
                continue;
            };
            let (histogram, is_sum) = match (name.strip_suffix("_sum"), name.strip_suffix("_count"))
            {
                (Some(histogram), _) => (histogram, true),
                (_, Some(histogram)) => (histogram, false),
                _ => continue,
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            if STAGE_HISTOGRAMS.contains(&histogram) {
                let total: &mut (f64, f64) = totals.entry(histogram.to_string()).or_default();
                if is_sum {
                    total.0 += value;
                } else {
                    total.1 += value;
                }
            }
        }
    }
    totals
}

/// What the stage histograms gathered between `before` and `after`, as a line: the mean of
/// each stage of a height and of an admitted batch, over all nodes.
fn stages_text(before: &StageTotals, after: &StageTotals) -> String {
    let mean = |name: &str, scale: f64| -> String {
        let (sum, count) = after.get(name).copied().unwrap_or_default();
        let (sum0, count0) = before.get(name).copied().unwrap_or_default();
        if count - count0 <= 0.0 {
            return "-".into();
        }
        format!("{:.1}", scale * (sum - sum0) / (count - count0))
    };
    format!(
        "a height: proposal wait {} ms + votes {} ms + execute and write {} ms (means); safety-state write {} ms; admission of a client batch {} ms, of a gossiped one {} ms; {} transactions per admitted batch",
        mean("proposal_wait_seconds", 1000.0),
        mean("votes_seconds", 1000.0),
        mean("block_commit_seconds", 1000.0),
        mean("safety_persist_seconds", 1000.0),
        mean("client_admission_seconds", 1000.0),
        mean("gossip_admission_seconds", 1000.0),
        mean("admission_batch_txs", 1.0),
    )
}

/// One run of the load generator on a warmed-up network, with what it cost the nodes.
struct LoadRun {
    rate: f64,
    p50: f64,
    p99: f64,
    committed: u64,
    /// The nodes' CPU µs and minor page faults per committed transaction, summed over them.
    cpu_us: Option<f64>,
    faults: Option<f64>,
    /// Where the heights' time went meanwhile ([`stages_text`]).
    stages: String,
}

/// Runs `pharmalink load` with `args` and measures the nodes meanwhile.
fn measure(
    testnet: &Testnet,
    pharmalink: &Path,
    targets: &[String],
    args: &[String],
) -> Result<LoadRun> {
    // The scrapes of `/metrics` stay outside the CPU and page-fault windows.
    let stages_before = stage_totals(testnet);
    let cpu_before = nodes_cpu_seconds(testnet);
    let faults_before = nodes_minor_faults(testnet);
    let (rate, p50, p99, committed) = load(pharmalink, targets, args)?;
    let cpu_us = cpu_per_committed_tx(testnet, cpu_before, committed);
    let faults = nodes_minor_faults(testnet)
        .zip(faults_before)
        .filter(|_| committed > 0)
        .map(|(after, before)| after.saturating_sub(before) as f64 / committed as f64);
    let stages = stages_text(&stages_before, &stage_totals(testnet));
    Ok(LoadRun {
        rate,
        p50,
        p99,
        committed,
        cpu_us,
        faults,
        stages,
    })
}

/// One closed-loop run of `count` transactions (64 batches of 500 in flight).
fn saturate(
    testnet: &Testnet,
    pharmalink: &Path,
    targets: &[String],
    count: u64,
) -> Result<LoadRun> {
    measure(testnet, pharmalink, targets, &closed_loop(count, 64))
}

/// `pharmalink load` arguments offering `rate` tx/s for `seconds` in requests of `batch`,
/// whatever the answers (open loop: clients that do not wait for each other).
fn open_loop(rate: u64, seconds: u64, batch: u32) -> Vec<String> {
    [
        "--rate".to_string(),
        rate.to_string(),
        "--duration".into(),
        seconds.to_string(),
        "--batch".into(),
        batch.to_string(),
    ]
    .into()
}

/// Requests of this many transactions at a given share of the sustained rate (as pharmacies
/// and wholesalers submit: small batches, each client on its own).
const OPEN_LOOP_BATCH: u32 = 50;

/// Runs `pharmalink load` and returns its final line's fields.
fn load(pharmalink: &Path, targets: &[String], args: &[String]) -> Result<(f64, f64, f64, u64)> {
    let out = Command::new(pharmalink)
        .args(["load", "--quiet", "--signers", "256", "--target"])
        .args(targets)
        .args(args)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default().to_owned();
    if !out.status.success() || !line.starts_with("load:") {
        bail!(
            "load failed: {line} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let field = |name: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    Ok((
        field("tx_per_s"),
        field("p50_ms"),
        field("p99_ms"),
        field("committed") as u64,
    ))
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn head_timestamps(testnet: &Testnet, name: &str, from: u64, to: u64) -> Vec<u64> {
    let http = reqwest::blocking::Client::new();
    let api = testnet.node(name).map(|n| n.api).ok();
    (from..=to)
        .filter_map(|h| {
            let v: Value = http
                .get(format!("http://{}/v1/blocks/{h}", api?))
                .send()
                .ok()?
                .json()
                .ok()?;
            v["timestamp_ms"].as_u64()
        })
        .collect()
}

/// One fault at a time: before the next kill, the restarted `node` replays past `reached` up to
/// `observer`'s head (which moved on while it replayed) and has a second to take part in
/// consensus again. Killing while it still replays is a second fault: a round it should propose
/// is then lost too (gaps of 2.4-2.6 s in 5 of 13 runs).
fn settle(testnet: &Testnet, node: &str, observer: &str, reached: u64) -> Result<()> {
    testnet.wait_height(node, reached, Duration::from_secs(120))?;
    let head = testnet.height(observer).unwrap_or(reached);
    testnet.wait_height(node, head, Duration::from_secs(120))?;
    std::thread::sleep(Duration::from_secs(1));
    Ok(())
}

/// `pharmalink load` arguments for `count` transactions in batches of 500, `concurrency`
/// batches in flight (closed loop).
fn closed_loop(count: u64, concurrency: u32) -> Vec<String> {
    [
        "--count".to_string(),
        count.to_string(),
        "--batch".into(),
        "500".into(),
        "--concurrency".into(),
        concurrency.to_string(),
    ]
    .into()
}

/// Transactions committed before the saturation run, and not counted in it.
const WARM_UP_TXS: u64 = 10_000;

/// The figures are a fresh network's: a directory holding an earlier run's network (its chain,
/// or a store of an older format) would be reused by `Testnet::create`.
fn refuse_used_directory(dir: &Path) -> Result<()> {
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        bail!(
            "--dir {}: not empty (an earlier run's network?); the bench starts a fresh network in an empty or new directory",
            dir.display()
        );
    }
    Ok(())
}

pub fn run(options: BenchOptions, dir: &Path, node_binary: &Path) -> Result<()> {
    refuse_used_directory(dir)?;
    let pharmalink = node_binary.with_file_name("pharmalink");
    let rate = batch_verify_rate()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let ceiling = cores * rate / 4.0;
    println!(
        "machine: {}",
        pharmalink_node::metrics::machine_description()
    );
    println!("ed25519 batch verification: {rate:.0}/s per core; ceiling for 4 validators on {cores} cores: {ceiling:.0} tx/s");
    println!(
        "application: {}",
        match options.application {
            ApplicationKind::Contracts =>
                "contracts (every transaction a commissioning: IAM, custody state, indexes)",
            ApplicationKind::Nonce =>
                "nonce (the node layer alone: signature, signer, nonce, the transaction stored; payloads not executed)",
        }
    );

    let mut testnet = Testnet::create(
        manifest(
            options.api_port,
            options.timeout_propose_ms,
            options.block_gather_ms,
            options.application,
        )?,
        dir,
        node_binary,
    )?;
    testnet.start_all()?;
    testnet.wait_ready(Duration::from_secs(60))?;
    let targets = testnet.api_addresses(true);

    // Warm-up, not counted: the first transactions of a fresh network also register the
    // load-test product and pay for first use (new connections). The nodes' memory still grows
    // for several hundred thousand transactions after it (memtables, caches: the page faults
    // per transaction printed below), and compactions start after a few hundred thousand:
    // `--saturation-rounds` shows both.
    load(&pharmalink, &targets, &closed_loop(WARM_UP_TXS, 16))?;
    // Closed-loop saturation, `saturation_rounds` times in a row on the same network; the
    // sustained rate is the rounds' overall rate (all their transactions over all their time).
    let mut total_committed = 0;
    let mut total_seconds = 0.0;
    let mut rounds = Vec::new();
    let cpu_before_rounds = nodes_cpu_seconds(&testnet);
    for round in 1..=options.saturation_rounds {
        let run = saturate(&testnet, &pharmalink, &targets, options.saturation_count)?;
        if options.saturation_rounds > 1 {
            println!(
                "saturation round {round}/{}: {:.0} committed tx/s ({} txs); node CPU {} per committed tx; {} page faults per tx; nodes' resident memory {}",
                options.saturation_rounds,
                run.rate,
                run.committed,
                cpu_text(run.cpu_us),
                faults_text(run.faults),
                memory_text(&testnet),
            );
        }
        if run.rate > 0.0 {
            total_committed += run.committed;
            total_seconds += run.committed as f64 / run.rate;
        }
        rounds.push(run);
    }
    let sustained = if total_seconds > 0.0 {
        total_committed as f64 / total_seconds
    } else {
        0.0
    };
    let cpu_per_tx = cpu_per_committed_tx(&testnet, cpu_before_rounds, total_committed);
    let memory = memory_text(&testnet);
    if let [only] = rounds.as_slice() {
        println!(
            "sustained: {sustained:.0} committed tx/s ({total_committed} txs, closed loop; {:.0} % of the ceiling); latency at saturation p50 {:.1} ms p99 {:.1} ms; node CPU {} per committed tx; {} page faults per tx; nodes' resident memory {memory}",
            100.0 * sustained / ceiling,
            only.p50,
            only.p99,
            cpu_text(cpu_per_tx),
            faults_text(only.faults),
        );
        println!("  {}", only.stages);
    } else {
        let (slowest, fastest) = range(rounds.iter().map(|r| r.rate));
        println!(
            "sustained: {sustained:.0} committed tx/s over {} rounds ({total_committed} txs, closed loop; {:.0} % of the ceiling; rounds {slowest:.0}-{fastest:.0} tx/s); node CPU {} per committed tx; nodes' resident memory {memory}",
            options.saturation_rounds,
            100.0 * sustained / ceiling,
            cpu_text(cpu_per_tx),
        );
    }
    let mut at_rates = Vec::new();
    for share in [0.5, 0.9] {
        let offered = (sustained * share).max(1.0) as u64;
        let run = measure(
            &testnet,
            &pharmalink,
            &targets,
            &open_loop(offered, options.latency_seconds, OPEN_LOOP_BATCH),
        )?;
        println!(
            "at {:.0} % ({offered} tx/s offered, {:.0} committed/s): commit latency p50 {:.1} ms p99 {:.1} ms; node CPU {} per committed tx",
            share * 100.0,
            run.rate,
            run.p50,
            run.p99,
            cpu_text(run.cpu_us)
        );
        println!("  {}", run.stages);
        at_rates.push((share, run.p50, run.p99));
    }

    // Catch-up of a killed validator.
    testnet.kill("courier")?;
    let before = testnet.height("manufacturer").unwrap_or(0);
    let offered = (sustained * 0.5).max(1.0) as u64;
    let network_started = Instant::now();
    load(
        &pharmalink,
        &targets[..3],
        &[
            "--rate".into(),
            offered.to_string(),
            "--duration".into(),
            options.catch_up_seconds.to_string(),
            "--batch".into(),
            "100".into(),
        ],
    )?;
    let network_seconds = network_started.elapsed().as_secs_f64();
    let target = testnet
        .height("manufacturer")
        .context("manufacturer status")?;
    let courier_at = before;
    let behind_blocks = target - courier_at;
    let behind_txs: u64 = {
        let http = reqwest::blocking::Client::new();
        let api = testnet.node("manufacturer")?.api;
        (courier_at + 1..=target)
            .filter_map(|h| {
                http.get(format!("http://{api}/v1/blocks/{h}"))
                    .send()
                    .ok()?
                    .json::<Value>()
                    .ok()
            })
            .map(|v| v["tx_hashes"].as_array().map_or(0, |a| a.len() as u64))
            .sum()
    };
    let restart = Instant::now();
    testnet.start("courier")?;
    // Start-up (store opened, API and transport up) is timed apart from the sync itself.
    let mut api_up = None;
    while api_up.is_none() && restart.elapsed() < Duration::from_secs(60) {
        match testnet.height("courier") {
            Some(_) => api_up = Some(restart.elapsed().as_secs_f64()),
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    testnet.wait_height("courier", target, Duration::from_secs(300))?;
    let catch_up = restart.elapsed().as_secs_f64();
    let start_up = api_up.unwrap_or(0.0);
    let syncing = (catch_up - start_up).max(1e-3);
    let network_tx_rate = behind_txs as f64 / network_seconds;
    println!(
        "catch-up: {behind_blocks} blocks / {behind_txs} txs in {catch_up:.2} s = {:.0} blocks/s, {:.0} txs/s, {:.1}x the network's {network_tx_rate:.0} txs/s; of which process start to API up {start_up:.2} s, then syncing {syncing:.2} s = {:.0} txs/s ({:.1}x)",
        behind_blocks as f64 / catch_up,
        behind_txs as f64 / catch_up,
        (behind_txs as f64 / catch_up) / network_tx_rate.max(1.0),
        behind_txs as f64 / syncing,
        (behind_txs as f64 / syncing) / network_tx_rate.max(1.0)
    );

    settle(&testnet, "courier", "manufacturer", target)?;

    // Proposer loss: kill each validator in turn under load; longest commit gap after it.
    let mut worst_gap_ms = 0u64;
    for victim in ["manufacturer", "wholesaler", "pharmacy", "courier"] {
        let observer = if victim == "manufacturer" {
            "wholesaler"
        } else {
            "manufacturer"
        };
        let others: Vec<String> = testnet
            .nodes
            .iter()
            .filter(|n| n.spec.name != victim)
            .map(|n| n.api.to_string())
            .collect();
        // The kill comes while the load runs (an idle network makes no blocks, so a gap
        // measured from a kill before the load would be the load generator's start-up).
        let from = testnet.height(observer).unwrap_or(0);
        let args = [
            "--rate".to_string(),
            offered.to_string(),
            "--duration".into(),
            "8".into(),
            "--batch".into(),
            "50".into(),
        ];
        let (killed_ms, load_end_ms) = std::thread::scope(|scope| -> Result<(u64, u64)> {
            let running = scope.spawn(|| {
                let result = load(&pharmalink, &others, &args);
                (result, unix_ms())
            });
            // Committing under the load for a second before the kill.
            let started = Instant::now();
            while testnet.height(observer).unwrap_or(0) <= from + 1 {
                if started.elapsed() > Duration::from_secs(60) || running.is_finished() {
                    bail!("the load before killing {victim} committed nothing");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(Duration::from_secs(1));
            testnet.kill(victim)?;
            let killed_ms = unix_ms();
            let (result, load_end_ms) = running
                .join()
                .map_err(|_| anyhow::anyhow!("the load thread panicked"))?;
            result?;
            Ok((killed_ms, load_end_ms))
        })?;
        let to = testnet.height(observer).unwrap_or(from);
        let stamps = head_timestamps(&testnet, observer, from, to);
        // Commits between the kill and the load's end (after it, the block that certifies the
        // last transactions' state comes a second later by design).
        let after: Vec<u64> = std::iter::once(killed_ms)
            .chain(
                stamps
                    .into_iter()
                    .filter(|t| *t >= killed_ms && *t <= load_end_ms),
            )
            .collect();
        let gap = after
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or(u64::MAX);
        println!("kill {victim}: longest gap between commits afterwards {gap} ms");
        worst_gap_ms = worst_gap_ms.max(gap);
        testnet.start(victim)?;
        testnet.wait_ready(Duration::from_secs(60))?;
        settle(&testnet, victim, observer, to)?;
    }
    println!(
        "bench: application={} batch_verify_per_core={rate:.0} ceiling_tx_per_s={ceiling:.0} sustained_tx_per_s={sustained:.0} node_cpu_us_per_tx={:.0} p50_ms_at_50={:.1} p99_ms_at_50={:.1} p50_ms_at_90={:.1} p99_ms_at_90={:.1} catch_up_tx_per_s={:.0} proposer_kill_gap_ms={worst_gap_ms}",
        options.application.as_str(), cpu_per_tx.unwrap_or(f64::NAN), at_rates[0].1, at_rates[0].2, at_rates[1].1, at_rates[1].2, behind_txs as f64 / catch_up
    );
    testnet.stop_all()
}

/// `pharmalink-testnet ab`: two builds of the node compared on this machine, whose run-to-run
/// noise (±25 % between runs of one build) is larger than most changes, and where the second
/// of two back-to-back runs tends to be the faster. Each pair runs both builds, each on a fresh
/// 4-validator network (the warm-up of [`run`], then `count` transactions closed loop, with the
/// same load generator); the first pair's order is drawn at random and the pairs alternate it
/// (AB BA AB … or BA AB BA …), so each build runs first in half the pairs. The summary shows
/// the order effect too.
#[derive(clap::Args, Debug)]
pub struct AbOptions {
    /// Directory holding build A's pharmalink-node (e.g. a copy of target/release).
    #[arg(long)]
    pub a: PathBuf,
    /// Directory holding build B's pharmalink-node.
    #[arg(long)]
    pub b: PathBuf,
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub pairs: u32,
    /// Transactions per run (after a warm-up of 10,000 not counted).
    #[arg(long, default_value_t = 60000)]
    pub count: u64,
    /// Instead of --count closed loop: offer this many tx/s (open loop, requests of 50, as
    /// the bench's latency runs) and compare commit latency as well as CPU.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub rate: Option<u64>,
    /// Seconds each --rate run lasts.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub seconds: u64,
    #[arg(long, default_value = "contracts")]
    pub application: ApplicationKind,
    #[arg(long, default_value_t = 19100)]
    pub api_port: u16,
}

/// One run of a build on a fresh network in `dir`: the warm-up, then `options.count`
/// transactions closed loop, or `options.rate` tx/s for `options.seconds`.
fn ab_run(
    options: &AbOptions,
    node_binary: &Path,
    pharmalink: &Path,
    dir: &Path,
) -> Result<LoadRun> {
    let manifest = manifest(options.api_port, 1000, None, options.application)?;
    let mut testnet = Testnet::create(manifest, dir, node_binary)?;
    testnet.start_all()?;
    let measured = (|| {
        testnet.wait_ready(Duration::from_secs(60))?;
        let targets = testnet.api_addresses(true);
        load(pharmalink, &targets, &closed_loop(WARM_UP_TXS, 16))?;
        match options.rate {
            Some(rate) => measure(
                &testnet,
                pharmalink,
                &targets,
                &open_loop(rate, options.seconds, OPEN_LOOP_BATCH),
            ),
            None => saturate(&testnet, pharmalink, &targets, options.count),
        }
    })();
    testnet.stop_all()?;
    measured
}

pub fn ab(options: AbOptions, dir: &Path, this_node_binary: &Path) -> Result<()> {
    refuse_used_directory(dir)?;
    let builds = [("A", &options.a), ("B", &options.b)];
    let mut binaries = Vec::new();
    for (name, build) in builds {
        let binary = build.join("pharmalink-node");
        if !binary.is_file() {
            bail!(
                "--{}: no pharmalink-node in {}",
                name.to_lowercase(),
                build.display()
            );
        }
        binaries.push(binary);
    }
    // The same load generator for both: the one beside this binary.
    let pharmalink = this_node_binary.with_file_name("pharmalink");
    println!(
        "machine: {}",
        pharmalink_node::metrics::machine_description()
    );
    let each = match options.rate {
        Some(rate) => format!(
            "{rate} tx/s offered for {} s in requests of {OPEN_LOOP_BATCH}",
            options.seconds
        ),
        None => format!("{} transactions closed loop", options.count),
    };
    println!(
        "A = {}, B = {}; {} pairs of {each} (after {WARM_UP_TXS} not counted), application {}",
        options.a.display(),
        options.b.display(),
        options.pairs,
        options.application.as_str()
    );
    let mut runs: [Vec<LoadRun>; 2] = [Vec::new(), Vec::new()];
    let mut run_number = 0;
    let b_starts = rand_core::RngCore::next_u32(&mut rand_core::OsRng) % 2 == 1;
    // CPU per transaction of the first and of the second run of each pair.
    let mut by_position: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for pair in 1..=options.pairs {
        let b_first = b_starts == (pair % 2 == 1);
        let order = if b_first { [1, 0] } else { [0, 1] };
        for (position, which) in order.into_iter().enumerate() {
            run_number += 1;
            let run_dir = dir.join(format!("run-{run_number:02}"));
            let run = ab_run(&options, &binaries[which], &pharmalink, &run_dir)?;
            // Each network's store is a few hundred MB: only the figures are kept.
            std::fs::remove_dir_all(&run_dir)
                .with_context(|| format!("removing {}", run_dir.display()))?;
            println!(
                "pair {pair}, {}: {:.0} committed tx/s; commit latency p50 {:.1} ms p99 {:.1} ms; node CPU {} per committed tx; {} page faults per tx",
                builds[which].0,
                run.rate,
                run.p50,
                run.p99,
                cpu_text(run.cpu_us),
                faults_text(run.faults),
            );
            println!("  {}", run.stages);
            by_position[position].extend(run.cpu_us);
            runs[which].push(run);
        }
    }
    let cpu_wins = runs[0]
        .iter()
        .zip(&runs[1])
        .filter(|(a, b)| matches!((a.cpu_us, b.cpu_us), (Some(a), Some(b)) if b < a))
        .count();
    let p50_wins = runs[0]
        .iter()
        .zip(&runs[1])
        .filter(|(a, b)| b.p50 < a.p50)
        .count();
    let mut cpu_means = [0.0; 2];
    let mut p50_means = [0.0; 2];
    let mut p99_means = [0.0; 2];
    for (which, (name, _)) in builds.iter().enumerate() {
        let rates: Vec<f64> = runs[which].iter().map(|r| r.rate).collect();
        let cpus: Vec<f64> = runs[which].iter().filter_map(|r| r.cpu_us).collect();
        let p50s: Vec<f64> = runs[which].iter().map(|r| r.p50).collect();
        let p99s: Vec<f64> = runs[which].iter().map(|r| r.p99).collect();
        let (slowest, fastest) = range(rates.iter().copied());
        let (low, high) = range(cpus.iter().copied());
        cpu_means[which] = mean(&cpus);
        p50_means[which] = mean(&p50s);
        p99_means[which] = mean(&p99s);
        println!(
            "{name}: {:.0} tx/s mean ({slowest:.0}-{fastest:.0}); node CPU {:.0} µs per tx mean ({low:.0}-{high:.0}); commit latency p50 {:.1} ms, p99 {:.1} ms mean",
            mean(&rates),
            cpu_means[which],
            p50_means[which],
            p99_means[which],
        );
    }
    println!(
        "order: the first run of a pair {:.0} µs per tx mean, the second {:.0}",
        mean(&by_position[0]),
        mean(&by_position[1])
    );
    let [a_cpu, b_cpu] = cpu_means;
    println!(
        "ab: pairs={} b_cpu_lower_in={cpu_wins} a_cpu_us={a_cpu:.0} b_cpu_us={b_cpu:.0} b_vs_a_cpu_percent={:+.1} b_p50_lower_in={p50_wins} a_p50_ms={:.1} b_p50_ms={:.1} a_p99_ms={:.1} b_p99_ms={:.1}",
        options.pairs,
        100.0 * (b_cpu - a_cpu) / a_cpu,
        p50_means[0],
        p50_means[1],
        p99_means[0],
        p99_means[1],
    );
    Ok(())
}
