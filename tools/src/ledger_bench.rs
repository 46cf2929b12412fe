//! `pharmalink ledger bench`: the ledger core's figures on this machine (run a release build).

use anyhow::{Context, Result};
use clap::Args;
use pharmalink_ledger::builder::{genesis, ChainBuilder};
use pharmalink_ledger::merkle::TxTree;
use pharmalink_ledger::{
    verify_batch, Canonical, Hash, LedgerWrite, PublicKey, Signature, SigningKey, Transaction,
};
use pharmalink_node::store::RocksStore;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Blocks appended in the store benchmark.
    #[arg(long, default_value_t = 200)]
    blocks: usize,
    /// Transactions per block in the store benchmark.
    #[arg(long, default_value_t = 1000)]
    txs_per_block: usize,
    /// Canonical size of each transaction in the store benchmark, in bytes.
    #[arg(long, default_value_t = 256)]
    tx_bytes: usize,
    /// Directory for the benchmark store (a fresh temporary one by default).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

const CHAIN: &str = "bench";

fn per_second(count: usize, started: Instant) -> f64 {
    count as f64 / started.elapsed().as_secs_f64()
}

/// Signs `count` transactions of exactly `tx_bytes` canonical bytes, on all cores.
fn signed_txs(count: usize, tx_bytes: usize) -> Result<Vec<Transaction>> {
    let overhead = Transaction::sign(CHAIN, &SigningKey::from_seed([1; 32]), 0, vec![0])?
        .to_canonical_bytes()?
        .len()
        - 1;
    let payload_len = tx_bytes
        .checked_sub(overhead)
        .filter(|n| *n > 0)
        .context("--tx-bytes is below the fixed overhead")?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = count.div_ceil(threads);
    let parts: Vec<Result<Vec<Transaction>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let key = SigningKey::from_seed([t as u8 + 10; 32]);
                    (t * chunk..((t + 1) * chunk).min(count))
                        .map(|i| {
                            let mut payload = vec![b'x'; payload_len];
                            payload[..8].copy_from_slice(&(i as u64).to_le_bytes());
                            Ok(Transaction::sign(CHAIN, &key, i as u64, payload)?)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("signing thread panicked"))?
            })
            .collect()
    });
    let mut txs = Vec::with_capacity(count);
    for part in parts {
        txs.extend(part?);
    }
    Ok(txs)
}

pub fn run(args: BenchArgs) -> Result<()> {
    println!(
        "machine: {}",
        pharmalink_node::metrics::machine_description()
    );
    // ed25519
    let key = SigningKey::from_seed([3; 32]);
    let messages: Vec<[u8; 32]> = (0..4096u32)
        .map(|i| *blake3::hash(&i.to_le_bytes()).as_bytes())
        .collect();
    let sigs: Vec<(PublicKey, Signature)> = messages
        .iter()
        .map(|m| (key.public_key(), key.sign(m)))
        .collect();
    let started = Instant::now();
    for (m, (k, s)) in messages.iter().zip(&sigs) {
        k.verify("bench", m, s)?;
    }
    let single = per_second(messages.len(), started);
    let mut batch_rates = Vec::new();
    for batch in [64usize, 1024] {
        let items: Vec<(&[u8], PublicKey, Signature)> = messages
            .iter()
            .zip(&sigs)
            .map(|(m, (k, s))| (m.as_slice(), *k, *s))
            .collect();
        let started = Instant::now();
        for chunk in items.chunks(batch) {
            verify_batch("bench", chunk)?;
        }
        batch_rates.push((batch, per_second(items.len(), started)));
    }
    println!(
        "ed25519 verify (one core): single {single:.0}/s; batch of {} {:.0}/s; batch of {} {:.0}/s",
        batch_rates[0].0, batch_rates[0].1, batch_rates[1].0, batch_rates[1].1
    );

    // blake3
    let buffer = vec![0x5Au8; 16 << 20];
    let started = Instant::now();
    let mut rounds = 0;
    while started.elapsed().as_millis() < 500 {
        std::hint::black_box(blake3::hash(&buffer));
        rounds += 1;
    }
    let mb_per_s = (rounds * buffer.len()) as f64 / 1e6 / started.elapsed().as_secs_f64();
    println!("blake3 (one thread, 16 MiB inputs): {mb_per_s:.0} MB/s");

    // Merkle
    let leaves: Vec<Hash> = (0..10_000u32)
        .map(|i| Hash(*blake3::hash(&i.to_le_bytes()).as_bytes()))
        .collect();
    let mut best_ms = f64::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        let tree = TxTree::new(&leaves);
        let root = tree.root();
        let proofs: Vec<_> = (0..leaves.len()).filter_map(|i| tree.proof(i)).collect();
        std::hint::black_box((root, &proofs));
        best_ms = best_ms.min(started.elapsed().as_secs_f64() * 1e3);
        assert_eq!(proofs.len(), leaves.len());
    }
    println!(
        "merkle: root plus all {} inclusion proofs in {best_ms:.2} ms (best of 5)",
        leaves.len()
    );

    // Store appends
    let total = args.blocks * args.txs_per_block;
    eprintln!(
        "signing {total} transactions of {} bytes for the store benchmark…",
        args.tx_bytes
    );
    let mut txs = signed_txs(total, args.tx_bytes)?;
    let canonical_bytes: usize = txs
        .iter()
        .map(|t| t.to_canonical_bytes().map(|b| b.len()).unwrap_or(0))
        .sum();
    let temp;
    let dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_owned()
        }
    };
    let validators: Vec<SigningKey> = (1..=4u8).map(|i| SigningKey::from_seed([i; 32])).collect();
    let g = genesis(CHAIN, 0, &validators, vec![])?;
    let mut chain = ChainBuilder::new(g.clone(), validators)?;
    // Build (and certify) all blocks first: the figure is the store's, not the builder's.
    let mut commits = Vec::with_capacity(args.blocks);
    for height in 0..args.blocks {
        let rest = txs.split_off(args.txs_per_block.min(txs.len()));
        commits.push(chain.next_block(
            std::mem::replace(&mut txs, rest),
            height as u64,
            Hash::ZERO,
        )?);
    }
    let mut store = RocksStore::open(&dir.join("bench-ledger"), &g)?;
    let started = Instant::now();
    for commit in &commits {
        store.append(commit)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rate = total as f64 / elapsed;
    store.flush()?;
    let usage = store.disk_usage()?;
    let per_tx = usage.sst_bytes as f64 / total as f64;
    let canonical_per_tx = canonical_bytes as f64 / total as f64;
    println!(
        "store: appended {total} txs in {} blocks of {} with WAL sync in {elapsed:.2} s = {rate:.0} txs/s ({:.1} blocks/s)",
        args.blocks, args.txs_per_block, args.blocks as f64 / elapsed
    );
    println!(
        "store: {per_tx:.1} bytes on disk per tx after flush (SST files; canonical tx {canonical_per_tx:.0} bytes = {:.2}x); WAL still on disk {} bytes",
        per_tx / canonical_per_tx, usage.wal_bytes
    );
    println!(
        "bench: ed25519_single_per_s={single:.0} ed25519_batch_per_s={:.0} blake3_mb_per_s={mb_per_s:.0} merkle_10k_ms={best_ms:.2} store_txs_per_s={rate:.0} disk_bytes_per_tx={per_tx:.1} disk_ratio={:.2}",
        batch_rates[1].1, per_tx / canonical_per_tx
    );
    Ok(())
}
