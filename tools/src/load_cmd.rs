//! `pharmalink load`: a load generator for a dev node or a testnet.
//!
//! It signs custody commands — commissions of fresh serials, about 256 bytes per transaction —
//! with the publicly derivable load-test signers (members of the load-test manufacturer that
//! only dev and test genesis files admit; see `pharmalink_node::loadgen`), submits them in batches over HTTP to one or more nodes, and
//! measures each transaction's submit→durable-commit latency (the node answers a submission
//! only once its transactions are committed). Its last line is machine-readable:
//! `load: submitted=N acknowledged=N committed=N tx_per_s=X p50_ms=Y p99_ms=Z`.

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use pharmalink_api::http::{encode_batch, TxsBodyFormat};
use pharmalink_ledger::{SigningKey, Transaction};
use pharmalink_node::genesis::load_test_key;
use pharmalink_node::loadgen;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Node API addresses (host:port); batches go round-robin.
    #[arg(long, required = true, num_args = 1..)]
    target: Vec<String>,
    /// Offered load in transactions per second (with --duration).
    #[arg(long, requires = "duration", conflicts_with = "count")]
    rate: Option<u64>,
    /// Seconds to offer --rate.
    #[arg(long)]
    duration: Option<u64>,
    /// Submit this many transactions as fast as the nodes take them.
    #[arg(long)]
    count: Option<u64>,
    /// Transactions per HTTP request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Requests in flight at once (closed-loop mode: --count).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Load-test signers to use (the genesis must admit at least this many).
    #[arg(long, default_value_t = 16)]
    signers: u32,
    /// Smallest canonical size of each transaction in bytes (commissions grow by whole serials).
    #[arg(long, default_value_t = 256)]
    tx_bytes: usize,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Default)]
struct Tally {
    submitted: AtomicU64,
    acknowledged: AtomicU64,
    committed: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
    errors: Mutex<Vec<String>>,
}

async fn chain_info(client: &reqwest::Client, target: &str) -> Result<String> {
    let status: Value = client
        .get(format!("http://{target}/v1/status"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    status["chain_id"]
        .as_str()
        .map(String::from)
        .context("status has no chain_id")
}

async fn next_nonce(client: &reqwest::Client, target: &str, signer: &str) -> Result<u64> {
    let value: Value = client
        .get(format!("http://{target}/v1/signers/{signer}/nonce"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    value["next_nonce"]
        .as_u64()
        .context("no next_nonce in the answer")
}

/// Registers the load-test product (signer 0, nonce `nonce`) unless it already is; answers
/// once the registration is committed.
async fn ensure_product(
    client: &reqwest::Client,
    target: &str,
    chain_id: &str,
    nonce: u64,
) -> Result<()> {
    let tx = Transaction::sign(
        chain_id,
        &load_test_key(0),
        nonce,
        loadgen::product_command().encode(),
    )?;
    let value: Value = client
        .post(format!("http://{target}/v1/txs"))
        .header("content-type", TxsBodyFormat::Batch.content_type())
        .body(encode_batch(std::slice::from_ref(&tx)))
        .send()
        .await?
        .json()
        .await?;
    let result = &value["results"][0];
    match (result["status"].as_str(), result["code"].as_str()) {
        (Some("committed"), _) | (Some("rejected"), Some("custody.product.exists")) => Ok(()),
        _ => bail!("registering the load-test product: {value}"),
    }
}

/// Signs load-test commissions (`serials` each), round-robin over the signers whose next
/// nonces are `starts`: transaction `i` for `i` in `first..first + count` is signer
/// `i % starts.len()` at nonce `starts[signer] + i / starts.len()`. Spread over the cores;
/// sorted by nonce, so each batch carries consecutive nonces of every signer.
pub fn sign_commissions(
    chain_id: &str,
    first: u64,
    count: u64,
    starts: &[u64],
    serials: usize,
) -> Result<Vec<Transaction>> {
    let signers = starts.len() as u64;
    if signers == 0 {
        bail!("no signers");
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let chunk = count.div_ceil(threads);
    let keys: Vec<SigningKey> = (0..signers as u32).map(load_test_key).collect();
    let keys = &keys;
    let parts: Vec<Result<Vec<Transaction>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (first + t * chunk..first + ((t + 1) * chunk).min(count))
                        .map(|i| {
                            let signer = (i % signers) as u32;
                            let nonce = starts[signer as usize] + i / signers;
                            Ok(loadgen::commission_tx_with(
                                chain_id,
                                &keys[signer as usize],
                                signer,
                                nonce,
                                serials,
                            )?)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("signing thread panicked")))
            })
            .collect()
    });
    let mut txs = Vec::with_capacity(count as usize);
    for part in parts {
        txs.extend(part?);
    }
    txs.sort_by_key(|t| t.nonce);
    Ok(txs)
}

async fn send_batch(
    client: reqwest::Client,
    target: String,
    txs: Vec<Transaction>,
    tally: Arc<Tally>,
) {
    let started = Instant::now();
    let n = txs.len() as u64;
    tally.submitted.fetch_add(n, Ordering::Relaxed);
    let body = encode_batch(&txs);
    let response = client
        .post(format!("http://{target}/v1/txs"))
        .header("content-type", TxsBodyFormat::Batch.content_type())
        .body(body)
        .send()
        .await;
    let value: Result<Value> = match response {
        Ok(r) => r.json().await.map_err(Into::into),
        Err(e) => Err(e.into()),
    };
    let elapsed_us = started.elapsed().as_micros() as u64;
    match value {
        Ok(value) => {
            let results = value["results"].as_array().cloned().unwrap_or_default();
            let mut committed = 0;
            let mut acknowledged = 0;
            for r in &results {
                match r["status"].as_str() {
                    Some("committed") => {
                        committed += 1;
                        acknowledged += 1;
                    }
                    Some("rejected") => {
                        acknowledged += 1;
                        let mut errors = tally.errors.lock().unwrap_or_else(|e| e.into_inner());
                        if errors.len() < 5 {
                            errors.push(format!("{}: {}", r["code"], r["reason"]));
                        }
                    }
                    _ => {}
                }
            }
            tally
                .acknowledged
                .fetch_add(acknowledged, Ordering::Relaxed);
            tally.committed.fetch_add(committed, Ordering::Relaxed);
            tally
                .latencies_us
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(std::iter::repeat_n(elapsed_us, committed as usize));
            if results.is_empty() {
                let mut errors = tally.errors.lock().unwrap_or_else(|e| e.into_inner());
                if errors.len() < 5 {
                    errors.push(format!("answer without results: {value}"));
                }
            }
        }
        Err(e) => {
            let mut errors = tally.errors.lock().unwrap_or_else(|e| e.into_inner());
            if errors.len() < 5 {
                errors.push(e.to_string());
            }
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

pub fn run(args: LoadArgs) -> Result<()> {
    if args.batch == 0 || args.concurrency == 0 || args.signers == 0 {
        bail!("--batch, --concurrency and --signers must be at least 1");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: LoadArgs) -> Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let first = &args.target[0];
    let chain_id = chain_info(&client, first)
        .await
        .with_context(|| format!("asking {first} for its status"))?;
    let mut starts = Vec::with_capacity(args.signers as usize);
    for i in 0..args.signers {
        starts.push(next_nonce(&client, first, &load_test_key(i).public_key().to_hex()).await?);
    }
    ensure_product(&client, first, &chain_id, starts[0]).await?;
    starts[0] += 1;
    let count = match (args.count, args.rate, args.duration) {
        (Some(count), _, _) => count,
        (None, Some(rate), Some(duration)) => rate * duration,
        _ => bail!("give --count N, or --rate R with --duration S"),
    };
    let serials = loadgen::serials_for_size(&chain_id, args.tx_bytes)?;
    let txs = sign_commissions(&chain_id, 0, count, &starts, serials)?;
    let batches: Vec<Vec<Transaction>> = txs.chunks(args.batch).map(|c| c.to_vec()).collect();
    let tally = Arc::new(Tally::default());
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(count)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} committed ({per_sec})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let interval = args
        .rate
        .map(|rate| Duration::from_secs_f64(args.batch as f64 / rate as f64));
    for (i, batch) in batches.into_iter().enumerate() {
        let target = args.target[i % args.target.len()].clone();
        match interval {
            Some(interval) => {
                // Open loop: send on schedule whatever the answers.
                tokio::time::sleep_until(tokio::time::Instant::from_std(
                    started + interval * i as u32,
                ))
                .await;
            }
            None => {
                while tasks.len() >= args.concurrency {
                    tasks.join_next().await;
                    bar.set_position(tally.committed.load(Ordering::Relaxed));
                }
            }
        }
        tasks.spawn(send_batch(client.clone(), target, batch, tally.clone()));
        bar.set_position(tally.committed.load(Ordering::Relaxed));
    }
    while tasks.join_next().await.is_some() {
        bar.set_position(tally.committed.load(Ordering::Relaxed));
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies =
        std::mem::take(&mut *tally.latencies_us.lock().unwrap_or_else(|e| e.into_inner()));
    latencies.sort_unstable();
    for error in tally
        .errors
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        eprintln!("load: error: {error}");
    }
    let committed = tally.committed.load(Ordering::Relaxed);
    println!(
        "load: submitted={} acknowledged={} committed={} tx_per_s={:.0} p50_ms={:.1} p99_ms={:.1}",
        tally.submitted.load(Ordering::Relaxed),
        tally.acknowledged.load(Ordering::Relaxed),
        committed,
        committed as f64 / elapsed,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
    );
    Ok(())
}
