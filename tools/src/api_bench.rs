//! `pharmalink api-bench`: latency of `/verify` and of a DSCSA trace on a dev node holding
//! many events, measured over loopback, plus the size and offline verification time of a
//! package proof.
//!
//! 1. Creates a dev data directory (runs `pharmalink-node dev` once to make keys and genesis).
//! 2. Fills the ledger offline through the node's own store and application (RocksStore +
//!    ContractApp, blocks certified by the dev validator key): `--events` commissions by the
//!    load-test signers, and `--histories` packages with a 6-event history (commission, sale to
//!    the wholesaler, receipt, sale to the pharmacy, receipt, dispensing) by the dev
//!    organizations.
//! 3. Starts the node on it and times sequential requests from many loopback addresses
//!    (127.0.0.x, so the per-address rate limits do not throttle the measurement).

use anyhow::{bail, Context, Result};
use clap::Args;
use pharmalink_contracts::contract::command::Command;
use pharmalink_contracts::contract::fixtures::{
    commission, product_master, receive_all, sale, sgtin, DISPENSER, WHOLESALER,
};
use pharmalink_ledger::builder::ChainBuilder;
use pharmalink_ledger::{LedgerRead, SigningKey, Transaction};
use pharmalink_node::app::{Application, ContractApp};
use pharmalink_node::genesis::{GenesisAppState, GenesisFile};
use pharmalink_node::keys;
use pharmalink_node::loadgen;
use pharmalink_node::store::RocksStore;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct ApiBenchArgs {
    /// Data directory for the bench node (created; reused if it already holds the events).
    #[arg(long)]
    dir: PathBuf,
    /// Events to store (one commissioning per load-test transaction).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Packages with a 6-event history (the ones verified and traced).
    #[arg(long, default_value_t = 200)]
    histories: u64,
    /// Requests timed per endpoint.
    #[arg(long, default_value_t = 2_000)]
    samples: usize,
    /// API address of the bench node.
    #[arg(long, default_value = "127.0.0.1:18900")]
    api: String,
}

pub(crate) fn node_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name("pharmalink-node");
    if !path.exists() {
        bail!("{} is not built", path.display());
    }
    Ok(path)
}

pub(crate) struct Node(Child);

impl Node {
    pub(crate) fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn start_node(dir: &Path, api: &str) -> Result<Node> {
    let child = Process::new(node_binary()?)
        .args(["dev", "--data-dir"])
        .arg(dir)
        .args(["--api", api])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    let node = Node(child);
    let client = reqwest::blocking::Client::new();
    let started = Instant::now();
    while client
        .get(format!("http://{api}/v1/status"))
        .send()
        .is_err()
    {
        if started.elapsed() > Duration::from_secs(120) {
            bail!("the node did not come up on {api}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(node)
}

/// Appends blocks of `txs` through the application, as the node's commit pipeline does.
fn append(
    store: &RocksStore,
    app: &ContractApp,
    chain: &mut ChainBuilder,
    txs: Vec<Transaction>,
) -> Result<()> {
    let head_time = store.head()?.map_or(0, |h| h.timestamp_ms);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let (results, _, _) = crate::commit_bench::commit_next(
        store,
        app,
        chain,
        txs,
        now.max(head_time + 1),
        &mut crate::commit_bench::KeysWritten::default(),
    )?;
    if let Some(bad) = results
        .iter()
        .find(|r| !matches!(r, pharmalink_node::app::TxOutcome::Accepted))
    {
        bail!("a bench transaction was rejected: {bad:?}");
    }
    Ok(())
}

fn fill(args: &ApiBenchArgs) -> Result<()> {
    let genesis_file = GenesisFile::read(&args.dir.join("genesis.json"))?;
    let genesis = genesis_file.to_ledger()?;
    let organizations =
        GenesisAppState::from_genesis(&genesis)?.contract_organizations(&genesis)?;
    let app = ContractApp::new(&genesis, organizations);
    let mut store = RocksStore::open(&args.dir.join("ledger"), &genesis)?;
    // Speed of filling is not what is measured; the node syncs every block it commits.
    store.set_sync_writes(false);
    let validator = keys::read_key_file(&args.dir.join("validator.key"), None)?;
    let mut chain = ChainBuilder::new(genesis.clone(), vec![validator])?;
    chain.resume(store.head()?);
    let chain_id = genesis.chain_id.clone();
    let key = |name: &str| keys::read_key_file(&args.dir.join(format!("{name}.key")), None);
    let (maker, wholesaler, pharmacy) =
        (key("manufacturer")?, key("wholesaler")?, key("pharmacy")?);
    let next = |k: &SigningKey| app.next_nonce(&store, &k.public_key());

    // Products.
    let mut txs = Vec::new();
    let load_nonce = app.next_nonce(
        &store,
        &pharmalink_node::genesis::load_test_key(0).public_key(),
    )?;
    txs.push(Transaction::sign(
        &chain_id,
        &pharmalink_node::genesis::load_test_key(0),
        load_nonce,
        loadgen::product_command().encode(),
    )?);
    txs.push(Transaction::sign(
        &chain_id,
        &maker,
        next(&maker)?,
        Command::RegisterProduct {
            product: product_master(),
        }
        .encode(),
    )?);
    append(&store, &app, &mut chain, txs)?;

    // Bulk events: one commissioning per transaction, 256 signers, blocks of 5,000.
    let started = Instant::now();
    let signers = 256u32;
    let mut starts = Vec::new();
    for s in 0..signers {
        starts.push(app.next_nonce(
            &store,
            &pharmalink_node::genesis::load_test_key(s).public_key(),
        )?);
    }
    let mut done = 0u64;
    while done < args.events {
        let n = (args.events - done).min(20_000);
        let signed = crate::load_cmd::sign_commissions(&chain_id, done, n, &starts, 1)?;
        for block in signed.chunks(5_000) {
            append(&store, &app, &mut chain, block.to_vec())?;
        }
        done += n;
        eprint!("\r  filled {done}/{} events", args.events);
    }
    eprintln!(" in {:.1} s", started.elapsed().as_secs_f64());

    // Histories: each step for all packages in one block.
    let serials: Vec<String> = (0..args.histories).map(|i| format!("H{i}")).collect();
    let epcs: Vec<_> = serials.iter().map(|s| sgtin(s)).collect();
    let mut step = |signer: &SigningKey, commands: Vec<Command>| -> Result<()> {
        let mut nonce = app.next_nonce(&store, &signer.public_key())?;
        let txs = commands
            .into_iter()
            .map(|c| {
                let tx = Transaction::sign(&chain_id, signer, nonce, c.encode());
                nonce += 1;
                tx
            })
            .collect::<Result<Vec<_>, _>>()?;
        append(&store, &app, &mut chain, txs)
    };
    let refs: Vec<&str> = serials.iter().map(String::as_str).collect();
    step(&maker, refs.chunks(100).map(commission).collect())?;
    let first_shipment = 0u64;
    step(
        &maker,
        epcs.iter()
            .map(|e| sale(WHOLESALER.gln(), vec![e.clone()], "PO-B"))
            .collect(),
    )?;
    step(
        &wholesaler,
        epcs.iter()
            .enumerate()
            .map(|(i, e)| receive_all(first_shipment + i as u64, std::slice::from_ref(e)))
            .collect(),
    )?;
    step(
        &wholesaler,
        epcs.iter()
            .map(|e| sale(DISPENSER.gln(), vec![e.clone()], "PO-C"))
            .collect(),
    )?;
    let second = first_shipment + args.histories;
    step(
        &pharmacy,
        epcs.iter()
            .enumerate()
            .map(|(i, e)| receive_all(second + i as u64, std::slice::from_ref(e)))
            .collect(),
    )?;
    step(
        &pharmacy,
        vec![Command::Dispense {
            items: epcs.clone(),
        }],
    )?;
    store.flush()?;
    Ok(())
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Times `samples` GETs of `path(i)` spread over loopback source addresses.
fn time_gets(
    api: &str,
    samples: usize,
    token: Option<&str>,
    path: impl Fn(usize) -> String,
) -> Result<(Vec<f64>, serde_json::Value)> {
    let clients: Vec<reqwest::blocking::Client> = (10..250u8)
        .map(|last| {
            reqwest::blocking::Client::builder()
                .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
                .build()
        })
        .collect::<Result<_, _>>()?;
    let mut times = Vec::with_capacity(samples);
    let mut last = serde_json::Value::Null;
    for i in 0..samples + 50 {
        let client = &clients[i % clients.len()];
        let mut request = client.get(format!("http://{api}{}", path(i)));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let started = Instant::now();
        let response = request.send()?;
        let status = response.status();
        let body: serde_json::Value = response.json()?;
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        if !status.is_success() {
            bail!("{} answered {status}: {body}", path(i));
        }
        // The first 50 warm connections and caches.
        if i >= 50 {
            times.push(elapsed);
        }
        last = body;
    }
    times.sort_by(f64::total_cmp);
    Ok((times, last))
}

pub fn run(args: ApiBenchArgs) -> Result<()> {
    let marker = args.dir.join("api-bench-filled");
    if !marker.exists() {
        std::fs::create_dir_all(&args.dir)?;
        // Keys, genesis and the IAM bootstrap, made by the node itself.
        drop(start_node(&args.dir, &args.api).context("first start")?);
        std::thread::sleep(Duration::from_millis(500));
        fill(&args)?;
        std::fs::write(&marker, format!("{}\n", args.events))?;
    }
    let _node = start_node(&args.dir, &args.api)?;
    let chain_id = GenesisFile::read(&args.dir.join("genesis.json"))?.chain_id;
    let regulator = keys::read_key_file(&args.dir.join("regulator.key"), None)?;
    let token =
        pharmalink_api::auth::issue(&regulator, &chain_id, pharmalink_api::auth::now_s(), 3600)
            .map_err(anyhow::Error::msg)?;
    let histories = args.histories.max(1) as usize;
    let status: serde_json::Value =
        reqwest::blocking::get(format!("http://{}/v1/status", args.api))?.json()?;
    println!(
        "api-bench: node at height {} holding {} bulk events + {} six-event histories",
        status["height"], args.events, args.histories
    );

    let (verify, answer) = time_gets(&args.api, args.samples, None, |i| {
        format!(
            "/verify?code=%2801%2900300010123455%2821%29H{}",
            i % histories
        )
    })?;
    let proof_bytes = answer["proof"]["data"].as_str().map_or(0, |d| d.len() / 2);
    println!(
        "/verify (6-event history): p50 {:.2} ms, p99 {:.2} ms over {} requests; status {}; proof {} bytes",
        percentile(&verify, 0.5), percentile(&verify, 0.99), verify.len(), answer["status"], proof_bytes
    );
    let (trace, _) = time_gets(&args.api, args.samples, Some(&token), |i| {
        format!(
            "/v1/dscsa/trace?epc={}",
            sgtin(&format!("H{}", i % histories)).as_str()
        )
    })?;
    println!(
        "/v1/dscsa/trace (regulator, 6 events): p50 {:.2} ms, p99 {:.2} ms over {} requests",
        percentile(&trace, 0.5),
        percentile(&trace, 0.99),
        trace.len()
    );
    // Offline verification of the last proof.
    let genesis = GenesisFile::read(&args.dir.join("genesis.json"))?.to_ledger()?;
    let json: pharmalink_contracts::proof::ProofJson =
        serde_json::from_value(answer["proof"].clone())?;
    let proof = pharmalink_contracts::proof::PackageProof::from_json(&json)?;
    let runs = 1000;
    let started = Instant::now();
    for _ in 0..runs {
        pharmalink_contracts::proof::verify(&genesis, &proof)?;
    }
    let verify_us = started.elapsed().as_secs_f64() * 1e6 / runs as f64;
    println!(
        "offline proof verification: {verify_us:.0} µs ({} blocks, 1 validator)",
        proof.blocks.len()
    );
    println!(
        "api-bench: events={} verify_p50_ms={:.2} verify_p99_ms={:.2} trace_p50_ms={:.2} trace_p99_ms={:.2} proof_bytes={proof_bytes} offline_verify_us={verify_us:.0}",
        args.events,
        percentile(&verify, 0.5), percentile(&verify, 0.99), percentile(&trace, 0.5), percentile(&trace, 0.99)
    );
    Ok(())
}
