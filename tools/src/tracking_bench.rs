//! `pharmalink tracking-bench`: WebSocket fan-out of live tracking (issue 9 target: ≥ 10,000
//! concurrent watchers, update latency p99 ≤ 100 ms on loopback).
//!
//! Starts a dev node in a temporary directory (or uses `--api` with `--dir`, the node's data
//! directory, for the organization keys), registers `--orders` orders as the dev pharmacy,
//! opens `--watchers` WebSocket watchers spread evenly over the orders (from `--sources`
//! loopback addresses 127.0.0.1.., if one address runs out of ports), then posts `--updates`
//! positions as the dev courier at `--rate` per second, round-robin over the orders.
//!
//! Latency of a message = when a watcher read it − when the courier's POST for that position
//! started (both on this process's monotonic clock; the position's `at_ms` identifies the
//! update). Both processes share the machine's cores: the client's own work is in the figure.
//!
//! Each watcher holds one file descriptor here and one in the node: raise the limit with
//! `ulimit -n` (the bench checks it first).

use crate::api_bench::{node_binary, start_node};
use anyhow::{bail, Context, Result};
use clap::Args;
use futures::StreamExt;
use pharmalink_node::metrics::process_cpu_time;
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

#[derive(Args, Debug)]
pub struct TrackingBenchArgs {
    /// Concurrent WebSocket watchers.
    #[arg(long, default_value_t = 10_000)]
    watchers: usize,
    /// Position updates posted by the courier (in all).
    #[arg(long, default_value_t = 200)]
    updates: usize,
    /// Updates per second.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Orders the watchers are spread over (1: all watch the same delivery).
    #[arg(long, default_value_t = 1)]
    orders: usize,
    /// Source addresses 127.0.0.1 ..= 127.0.0.N the watchers connect from (only 127.0.0.1 is
    /// exempt from the node's per-address flood guard).
    #[arg(long, default_value_t = 1)]
    sources: u8,
    /// A running node's API address (default: start a dev node on a free port).
    #[arg(long, requires = "dir")]
    api: Option<String>,
    /// The data directory of the node at `--api` (for the dev organization keys).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// WebSocket handshakes in flight at once.
    #[arg(long, default_value_t = 256)]
    connect_parallelism: usize,
}

fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `at_ms` of a watcher message, and whether it ends the delivery, without a full JSON parse.
fn at_ms_of(text: &str) -> Option<(u64, bool)> {
    let start = text.find("\"at_ms\":")? + 8;
    let digits: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    Some((
        digits.parse().ok()?,
        text.contains("\"status\":\"delivered\""),
    ))
}

struct Received {
    /// (update index, when read)
    messages: Vec<(usize, Instant)>,
}

pub fn run(args: TrackingBenchArgs) -> Result<()> {
    if args.watchers == 0 || args.updates == 0 || args.orders == 0 || args.sources == 0 {
        bail!("--watchers, --updates, --orders and --sources must be positive");
    }
    if args.orders > args.watchers {
        bail!(
            "--orders ({}) exceeds --watchers ({})",
            args.orders,
            args.watchers
        );
    }
    let needed = args.watchers as u64 + 256;
    if let Some(limit) = open_files_limit() {
        if limit < needed {
            bail!("the open-files limit is {limit}; {} watchers need about {needed} here and in the node: run `ulimit -n {}` first", args.watchers, needed.next_power_of_two());
        }
    }
    let temp = tempfile::tempdir()?;
    let (api, dir, node) = match (&args.api, &args.dir) {
        (Some(api), Some(dir)) => (api.clone(), dir.clone(), None),
        _ => {
            node_binary()?;
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let api = format!("127.0.0.1:{port}");
            let dir = temp.path().join("node");
            let node = start_node(&dir, &api)?;
            (api, dir, Some(node))
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let node_pid = node.as_ref().map(|n| n.pid());
    runtime.block_on(bench(args, api, dir, node_pid))
}

async fn bench(
    args: TrackingBenchArgs,
    api: String,
    dir: PathBuf,
    node_pid: Option<u32>,
) -> Result<()> {
    let client = reqwest::Client::new();
    let status: Value = client
        .get(format!("http://{api}/v1/status"))
        .send()
        .await?
        .json()
        .await?;
    let chain = status["chain_id"]
        .as_str()
        .context("no chain_id")?
        .to_owned();
    let token = |organization: &str| -> Result<String> {
        let key =
            pharmalink_node::keys::read_key_file(&dir.join(format!("{organization}.key")), None)?;
        pharmalink_api::auth::issue(&key, &chain, pharmalink_api::auth::now_s(), 3_600)
            .map_err(anyhow::Error::msg)
    };
    let (pharmacy, courier) = (token("pharmacy")?, token("courier")?);

    // Orders.
    let mut orders = Vec::with_capacity(args.orders);
    for _ in 0..args.orders {
        let order = hex::encode(blake3::hash(&rand_bytes()).as_bytes());
        let response = client
            .post(format!("http://{api}/v1/tracking/orders"))
            .bearer_auth(&pharmacy)
            .json(&json!({"order": order, "courier_gln": "0300040000009",
                "package": "urn:epc:id:sgtin:0300010.012345.BENCH",
                "destination": {"lat": 40.7357, "lon": -74.1724}}))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if status.as_u16() != 201 {
            bail!("registering an order: {status} {body}");
        }
        let url = body["watch_url"]
            .as_str()
            .context("no watch_url")?
            .to_owned();
        orders.push((order, url));
    }

    // Watchers.
    let sent: Arc<Vec<OnceLock<Instant>>> =
        Arc::new((0..args.updates).map(|_| OnceLock::new()).collect());
    let base_at_ms = now_ms();
    let connected = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(args.connect_parallelism));
    let server: SocketAddr = api.parse()?;
    let connect_started = Instant::now();
    let mut tasks = Vec::with_capacity(args.watchers);
    for i in 0..args.watchers {
        let url = format!("ws://{api}{}", orders[i % args.orders].1);
        let source = IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            0,
            1 + (i % args.sources as usize) as u8,
        ));
        let (gate, connected) = (gate.clone(), connected.clone());
        let updates = args.updates;
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await?;
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(source, 0))?;
            let stream = socket.connect(server).await?;
            // A small read buffer: tungstenite zero-fills it before every read (the default,
            // 128 KiB, would make the client's memset the bench's main cost).
            let config = WebSocketConfig::default().read_buffer_size(4 * 1_024);
            let (mut ws, _) =
                tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
            // The registration snapshot comes first.
            match ws.next().await {
                Some(Ok(Message::Text(_))) => {}
                other => bail!("first message: {other:?}"),
            }
            drop(permit);
            connected.fetch_add(1, Ordering::Relaxed);
            let mut received = Received {
                messages: Vec::with_capacity(updates),
            };
            while let Some(message) = ws.next().await {
                let Message::Text(text) = message? else {
                    continue;
                };
                let at = Instant::now();
                match at_ms_of(&text) {
                    Some((_, true)) => break,
                    Some((at_ms, false)) => {
                        received.messages.push(((at_ms - base_at_ms) as usize, at))
                    }
                    None => {}
                }
            }
            Ok::<Received, anyhow::Error>(received)
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while connected.load(Ordering::Relaxed) < args.watchers {
        if Instant::now() > deadline || tasks.iter().all(|t| t.is_finished()) {
            break;
        }
        if let Some(failed) = tasks.iter().position(|t| t.is_finished()) {
            let error = tasks.swap_remove(failed).await?;
            bail!("a watcher failed to connect: {:?}", error.err());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connected_now = connected.load(Ordering::Relaxed);
    let connect_s = connect_started.elapsed().as_secs_f64();
    println!("watchers connected: {connected_now} of {} in {connect_s:.1} s ({} orders, {} source addresses)", args.watchers, args.orders, args.sources);
    if connected_now < args.watchers {
        bail!("not every watcher connected");
    }
    // Let the last handshakes settle before timing.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Updates at a steady rate; the post time of each is what latency is measured from.
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut post_ms = Vec::with_capacity(args.updates);
    let node_cpu_before = node_pid.and_then(process_cpu_time);
    let own_cpu_before = process_cpu_time(std::process::id());
    let posting_started = Instant::now();
    for index in 0..args.updates {
        ticker.tick().await;
        let order = &orders[index % args.orders].0;
        let lat = 40.80 - 0.0002 * index as f64;
        let started = Instant::now();
        let _ = sent[index].set(started);
        let response = client
            .post(format!("http://{api}/v1/tracking/{order}/positions"))
            .bearer_auth(&courier)
            .json(&json!({"lat": lat, "lon": -74.1724, "at_ms": base_at_ms + index as u64, "speed_mps": 9.0}))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(
                "posting a position: {} {}",
                response.status(),
                response.text().await?
            );
        }
        post_ms.push(started.elapsed());
    }
    // Let the last fan-out finish before reading the CPU time.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let posting_s = posting_started.elapsed().as_secs_f64();
    let node_cpu = node_pid
        .and_then(process_cpu_time)
        .zip(node_cpu_before)
        .map(|(after, before)| {
            (
                after.0.saturating_sub(before.0),
                after.1.saturating_sub(before.1),
            )
        });
    let own_cpu = process_cpu_time(std::process::id())
        .zip(own_cpu_before)
        .map(|(after, before)| {
            (
                after.0.saturating_sub(before.0),
                after.1.saturating_sub(before.1),
            )
        });
    for (order, _) in &orders {
        client
            .post(format!("http://{api}/v1/tracking/{order}/status"))
            .bearer_auth(&courier)
            .json(&json!({"status": "delivered"}))
            .send()
            .await?;
    }

    // Collect.
    let mut latencies = Vec::with_capacity(args.watchers * args.updates / args.orders);
    let mut failed = 0;
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(60), task).await {
            Ok(Ok(Ok(received))) => {
                for (index, at) in received.messages {
                    if let Some(sent) = sent.get(index).and_then(|s| s.get()) {
                        latencies.push(at.saturating_duration_since(*sent));
                    }
                }
            }
            _ => failed += 1,
        }
    }
    latencies.sort_unstable();
    post_ms.sort_unstable();
    let expected: usize = (0..args.updates)
        .map(|i| {
            let order = i % args.orders;
            // Watchers of `order`: those with index ≡ order (mod orders).
            (args.watchers - order).div_ceil(args.orders)
        })
        .sum();
    let ms = |d: Duration| d.as_secs_f64() * 1_000.0;
    println!(
        "updates: {} at {:.1}/s over {posting_s:.1} s; POST latency p50 {:.2} ms, p99 {:.2} ms",
        args.updates,
        args.rate,
        ms(percentile(&post_ms, 50.0)),
        ms(percentile(&post_ms, 99.0)),
    );
    println!(
        "messages delivered: {} of {expected} ({} skipped by lagging watchers), watchers failed: {failed}",
        latencies.len(),
        expected.saturating_sub(latencies.len()),
    );
    if let (Some(node_cpu), Some(own_cpu)) = (node_cpu, own_cpu) {
        let per_message_us =
            |cpu: Duration| cpu.as_secs_f64() * 1e6 / latencies.len().max(1) as f64;
        println!(
            "CPU per message delivered: node {:.1} µs (user {:.1}, kernel {:.1}), bench client {:.1} µs (user {:.1}, kernel {:.1}); wall {posting_s:.1} s",
            per_message_us(node_cpu.0 + node_cpu.1),
            per_message_us(node_cpu.0),
            per_message_us(node_cpu.1),
            per_message_us(own_cpu.0 + own_cpu.1),
            per_message_us(own_cpu.0),
            per_message_us(own_cpu.1),
        );
    }
    println!(
        "update latency (courier POST → watcher read): p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(percentile(&latencies, 99.9)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
    Ok(())
}

fn rand_bytes() -> [u8; 32] {
    use rand_core::RngCore;
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    bytes
}
