//! `pharmalink commit-bench`: what one validator spends per transaction on the commit path,
//! without consensus or network: batch signature verification, contract execution of the
//! block, and the block's atomic RocksDB write (synced). The transactions are the load
//! generator's (a commission of the packages that make a ~256-byte signed transaction, from 256
//! member keys), so the figures are those behind `pharmalink-testnet bench`.

use anyhow::{bail, Context, Result};
use clap::Args;
use pharmalink_ledger::builder::{genesis, ChainBuilder};
use pharmalink_ledger::{LedgerRead, SigningKey, Transaction};
use pharmalink_node::app::{Application, ContractApp, TxOutcome};
use pharmalink_node::genesis::load_test_key;
use pharmalink_node::loadgen;
use pharmalink_node::store::RocksStore;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct CommitBenchArgs {
    /// Blocks committed (after the one registering the load-test product).
    #[arg(long, default_value_t = 60)]
    blocks: usize,
    /// Transactions per block.
    #[arg(long, default_value_t = 1000)]
    txs_per_block: usize,
    /// Canonical size of each transaction, in bytes (sets the serials per commission).
    #[arg(long, default_value_t = 256)]
    tx_bytes: usize,
    /// Load-test signers (member keys of the load-test manufacturer), round-robin.
    #[arg(long, default_value_t = 256)]
    signers: u32,
    /// Directory for the store (a fresh temporary one by default; must not exist).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

const CHAIN: &str = "pharmalink-commit-bench";
const GENESIS_TIME_MS: u64 = 1_790_000_000_000;

fn micros_per(total: Duration, count: usize) -> f64 {
    total.as_secs_f64() * 1e6 / count.max(1) as f64
}

pub fn run(args: CommitBenchArgs) -> Result<()> {
    if args.blocks == 0 || args.txs_per_block == 0 || args.signers == 0 {
        bail!("--blocks, --txs-per-block and --signers must be at least 1");
    }
    let temp = tempfile::tempdir()?;
    let path = args
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().join("ledger"));
    if path.exists() {
        bail!("--data-dir {} already exists", path.display());
    }
    let validator = SigningKey::from_seed([7; 32]);
    let genesis_doc = genesis(
        CHAIN,
        GENESIS_TIME_MS,
        std::slice::from_ref(&validator),
        Vec::new(),
    )?;
    let app = ContractApp::new(&genesis_doc, vec![loadgen::organization(args.signers)]);
    let store = RocksStore::open_with_genesis_state(&path, &genesis_doc, || app.genesis_effects())?;
    let mut chain = ChainBuilder::new(genesis_doc, vec![validator])?;

    let serials = loadgen::serials_for_size(CHAIN, args.tx_bytes)?;
    let count = args.blocks * args.txs_per_block;
    eprintln!("signing {count} commissions of {serials} packages…");
    let product = Transaction::sign(
        CHAIN,
        &load_test_key(0),
        0,
        loadgen::product_command().encode(),
    )?;
    // Signer 0 registered the product at nonce 0: its commissions start at 1.
    let mut starts = vec![0u64; args.signers as usize];
    starts[0] = 1;
    let txs = crate::load_cmd::sign_commissions(CHAIN, 0, count as u64, &starts, serials)?;
    let tx_bytes = txs
        .first()
        .map(|t| pharmalink_ledger::Canonical::to_canonical_bytes(t).map(|b| b.len()))
        .transpose()?
        .unwrap_or(0);

    let mut timestamp_ms = GENESIS_TIME_MS;
    let mut next_time = || {
        timestamp_ms += 1000;
        timestamp_ms
    };
    let registered = commit_next(
        &store,
        &app,
        &mut chain,
        vec![product],
        next_time(),
        &mut KeysWritten::default(),
    )?
    .0;
    if !matches!(registered[..], [TxOutcome::Accepted]) {
        bail!("the load-test product was not registered: {registered:?}");
    }

    let (mut verify, mut execute, mut write) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut written = KeysWritten::default();
    let started = Instant::now();
    let mut accepted = 0;
    for (i, block) in txs.chunks(args.txs_per_block).enumerate() {
        let verifying = Instant::now();
        Transaction::verify_signatures(block).map_err(|e| anyhow::anyhow!("{e}"))?;
        verify += verifying.elapsed();
        let (results, executing, writing) = commit_next(
            &store,
            &app,
            &mut chain,
            block.to_vec(),
            next_time(),
            &mut written,
        )?;
        execute += executing;
        write += writing;
        accepted += results
            .iter()
            .filter(|r| matches!(r, TxOutcome::Accepted))
            .count();
        if (i + 1) % 10 == 0 {
            eprintln!("{} blocks committed", i + 1);
        }
    }
    let elapsed = started.elapsed();
    if accepted != count {
        bail!("{accepted} of {count} commissions were accepted");
    }
    let head = store.head()?.context("no head after the run")?;
    let usage = store.disk_usage()?;
    let (verify_us, execute_us, write_us, total_us) = (
        micros_per(verify, count),
        micros_per(execute, count),
        micros_per(write, count),
        micros_per(elapsed, count),
    );
    let tx_per_s = count as f64 / elapsed.as_secs_f64();
    println!(
        "machine: {}",
        pharmalink_node::metrics::machine_description()
    );
    println!(
        "commit path, one validator, {} blocks of {} transactions of {tx_bytes} bytes ({serials} packages each), head {}:",
        args.blocks, args.txs_per_block, head.height
    );
    println!(
        "  verify {verify_us:.1} µs/tx, execute {execute_us:.1} µs/tx, write {write_us:.1} µs/tx; total {total_us:.1} µs/tx = {tx_per_s:.0} tx/s on one core"
    );
    println!(
        "  store: {:.0} bytes/tx in SST files, {:.1} MB of write-ahead log",
        usage.sst_bytes as f64 / count as f64,
        usage.wal_bytes as f64 / 1e6
    );
    println!("  keys written per tx: {}", written.keys_per_tx(count));
    println!(
        "  bytes written per tx (keys and values as the store receives them): {}",
        written.bytes_per_tx(count)
    );
    println!(
        "commit-bench: verify_us={verify_us:.1} execute_us={execute_us:.1} write_us={write_us:.1} total_us={total_us:.1} tx_per_s={tx_per_s:.0}"
    );
    Ok(())
}

/// Keys and bytes (key + value) of one kind.
#[derive(Default, Clone, Copy)]
pub(crate) struct Written {
    keys: usize,
    bytes: usize,
}

impl Written {
    fn add(&mut self, key: usize, value: usize) {
        self.keys += 1;
        self.bytes += key + value;
    }
}

/// What the commits wrote, key by key: the store's own keys per transaction (the transaction,
/// its location), the application's state keys and each index's entries — how many, and their
/// bytes as the store receives them (a deterministic measure of a layout change, where the
/// store's own figures depend on when it flushed).
#[derive(Default)]
pub(crate) struct KeysWritten {
    txs: Written,
    state: Written,
    /// Index names are constants: counted without copying them.
    indexes: std::collections::BTreeMap<std::borrow::Cow<'static, str>, Written>,
}

impl KeysWritten {
    fn line(&self, count: usize, measure: impl Fn(&Written) -> usize, decimals: usize) -> String {
        let per = |w: &Written| measure(w) as f64 / count.max(1) as f64;
        let total = per(&self.txs) + per(&self.state) + self.indexes.values().map(per).sum::<f64>();
        let mut line = format!(
            "{total:.decimals$} = tx + location {:.decimals$}, state {:.decimals$}",
            per(&self.txs),
            per(&self.state)
        );
        for (name, written) in &self.indexes {
            line.push_str(&format!(", {name} {:.decimals$}", per(written)));
        }
        line
    }

    fn keys_per_tx(&self, count: usize) -> String {
        self.line(count, |w| w.keys, 2)
    }

    fn bytes_per_tx(&self, count: usize) -> String {
        self.line(count, |w| w.bytes, 0)
    }
}

/// Executes `txs` as the next block at `timestamp_ms` and appends it, as the node's commit
/// pipeline does: the transactions' outcomes, and how long execution and the write took. The
/// keys it wrote are added to `written`.
pub(crate) fn commit_next(
    store: &RocksStore,
    app: &ContractApp,
    chain: &mut ChainBuilder,
    txs: Vec<Transaction>,
    timestamp_ms: u64,
    written: &mut KeysWritten,
) -> Result<(Vec<TxOutcome>, Duration, Duration)> {
    let state_root = app.state_root(store)?;
    let mut commit = chain.next_block(txs, timestamp_ms, state_root)?;
    // The node hashes a block's transactions once, when it validates (or proposes) it.
    let hashes = commit.block.tx_hashes();
    let executing = Instant::now();
    let outcome = app.execute(store, &commit.block, &hashes)?;
    let executed = executing.elapsed();
    commit.state_writes = outcome.state_writes;
    commit.index_entries = outcome.index_entries;
    for tx in &commit.block.txs {
        // `txs`: height ‖ index → the transaction; `tx_locations`: hash → height ‖ index.
        written
            .txs
            .add(12, borsh::object_length(tx).unwrap_or_default());
        written.txs.add(32, 12);
    }
    for write in &commit.state_writes {
        written
            .state
            .add(write.key.len(), write.value.as_ref().map_or(0, Vec::len));
    }
    for entry in &commit.index_entries {
        // The store's key: name length ‖ name ‖ key.
        written
            .indexes
            .entry(entry.index.clone())
            .or_default()
            .add(1 + entry.index.len() + entry.key.len(), entry.value.len());
    }
    let writing = Instant::now();
    store.append_shared_hashed(&commit, Some(hashes))?;
    Ok((outcome.results, executed, writing.elapsed()))
}
