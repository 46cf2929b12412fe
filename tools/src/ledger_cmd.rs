//! `pharmalink ledger …`: the ledger demo, chain and proof verification, and the ledger benchmark.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use pharmalink_ledger::builder::{genesis, ChainBuilder};
use pharmalink_ledger::store::verify_chain;
use pharmalink_ledger::{
    Hash, LedgerRead, LedgerWrite, SigningKey, Transaction, TxInclusionBundle,
};
use pharmalink_node::store::RocksStore;
use rand_core::{OsRng, RngCore};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct LedgerArgs {
    #[command(subcommand)]
    command: LedgerCommand,
}

#[derive(Subcommand, Debug)]
enum LedgerCommand {
    /// Generate validator keys, write N signed and certified blocks to a RocksDB store, reopen
    /// it, verify the whole chain, print the head, and write one transaction's inclusion proof.
    /// Run again on the same directory to extend the chain.
    Demo {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 10)]
        blocks: u64,
        #[arg(long, default_value_t = 100)]
        txs_per_block: u32,
        /// Where to write the inclusion proof of the last block's first transaction.
        #[arg(long)]
        proof_out: Option<PathBuf>,
        /// Print a line `committed height=H hash=X` as soon as each block is durable.
        #[arg(long)]
        report_each: bool,
    },
    /// Re-verify every block, certificate and signature of a store; print the head.
    Verify {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Check a transaction inclusion proof file offline. Exit 0 if it holds, 1 with the reason.
    VerifyProof {
        file: PathBuf,
        /// Also require this validator-set hash (from the genesis you trust).
        #[arg(long)]
        validator_set_hash: Option<String>,
    },
    /// Measure signatures, hashing, Merkle proofs and store appends on this machine.
    Bench(crate::ledger_bench::BenchArgs),
}

pub fn run(args: LedgerArgs) -> Result<()> {
    match args.command {
        LedgerCommand::Demo {
            data_dir,
            blocks,
            txs_per_block,
            proof_out,
            report_each,
        } => demo(
            &data_dir,
            blocks,
            txs_per_block,
            proof_out.as_deref(),
            report_each,
        ),
        LedgerCommand::Verify { data_dir } => {
            let store = RocksStore::open_existing(&data_dir)?;
            report_verified(&store)
        }
        LedgerCommand::VerifyProof {
            file,
            validator_set_hash,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let bundle = TxInclusionBundle::from_file_bytes(&bytes).context("proof rejected")?;
            let verified = bundle.verify().context("proof rejected")?;
            if let Some(expected) = validator_set_hash {
                let expected = Hash::from_hex(&expected)
                    .map_err(anyhow::Error::msg)
                    .context("--validator-set-hash")?;
                if expected != verified.validator_set_hash {
                    bail!(
                        "proof rejected: signed by validator set {}, not the pinned {expected}",
                        verified.validator_set_hash
                    );
                }
            }
            println!(
                "proof ok: transaction {} is at index {} of block {} (hash {}) on chain {}, certified by validator set {}",
                verified.tx_hash, verified.tx_index, verified.height, verified.block_hash, verified.chain_id, verified.validator_set_hash
            );
            Ok(())
        }
        LedgerCommand::Bench(args) => crate::ledger_bench::run(args),
    }
}

fn report_verified(store: &RocksStore) -> Result<()> {
    match verify_chain(store)? {
        Some(head) => println!(
            "chain verified: head height={} hash={}",
            head.height, head.block_hash
        ),
        None => println!("chain verified: empty (genesis {})", store.genesis().hash()),
    }
    Ok(())
}

const DEMO_CHAIN: &str = "pharmalink-demo";
const DEMO_KEYS_FILE: &str = "demo-keys";

/// The demo's keys: four validators and one client, kept beside the store so a rerun extends
/// the same chain.
fn demo_keys(data_dir: &Path) -> Result<Vec<SigningKey>> {
    let path = data_dir.join(DEMO_KEYS_FILE);
    if path.exists() {
        let text = std::fs::read_to_string(&path)?;
        return text
            .lines()
            .map(|line| {
                let seed: [u8; 32] = hex::decode(line.trim())?
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("bad key length"))?;
                Ok(SigningKey::from_seed(seed))
            })
            .collect::<Result<Vec<_>>>()
            .with_context(|| format!("reading {}", path.display()));
    }
    std::fs::create_dir_all(data_dir)?;
    let keys: Vec<SigningKey> = (0..5)
        .map(|_| {
            let mut seed = [0u8; 32];
            OsRng.fill_bytes(&mut seed);
            SigningKey::from_seed(seed)
        })
        .collect();
    let text: String = keys.iter().map(|k| hex::encode(k.seed()) + "\n").collect();
    write_private(&path, text.as_bytes())?;
    Ok(keys)
}

/// Writes a file only its owner can read.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn demo(
    data_dir: &Path,
    blocks: u64,
    txs_per_block: u32,
    proof_out: Option<&Path>,
    report_each: bool,
) -> Result<()> {
    if txs_per_block == 0 || txs_per_block as usize > pharmalink_ledger::limits::BLOCK_TXS_MAX {
        bail!(
            "--txs-per-block must be 1 to {}",
            pharmalink_ledger::limits::BLOCK_TXS_MAX
        );
    }
    let keys = demo_keys(data_dir)?;
    let (validator_keys, client) = (keys[..4].to_vec(), keys[4].clone());
    let store_dir = data_dir.join("ledger");
    let g = match RocksStore::open_existing(&store_dir) {
        Ok(store) => store.genesis().clone(),
        Err(_) => genesis(DEMO_CHAIN, now_ms(), &validator_keys, vec![])?,
    };
    let mut store = RocksStore::open(&store_dir, &g)?;
    let mut chain = ChainBuilder::new(g, validator_keys)?;
    chain.resume(store.head()?);
    let first_height = store.head()?.map_or(1, |h| h.height + 1);
    let mut nonce = (first_height - 1) * u64::from(txs_per_block);
    let stdout = std::io::stdout();
    for _ in 0..blocks {
        let txs = (0..txs_per_block)
            .map(|_| {
                nonce += 1;
                let payload = format!(
                    "demo event {nonce}: commission urn:epc:id:sgtin:030001.0012345.{nonce}"
                );
                Transaction::sign(DEMO_CHAIN, &client, nonce, payload.into_bytes())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let previous_time = chain.head().map_or(0, |h| h.timestamp_ms);
        let commit = chain.next_block(txs, now_ms().max(previous_time), Hash::ZERO)?;
        let head = store.append(&commit)?;
        if report_each {
            let mut out = stdout.lock();
            writeln!(
                out,
                "committed height={} hash={}",
                head.height, head.block_hash
            )?;
            out.flush()?;
        }
    }
    let head = store.head()?.context("no blocks were written")?;
    drop(store);
    let store = RocksStore::open_existing(&store_dir)?;
    if store.head()?.as_ref() != Some(&head) {
        bail!(
            "reopened store has head {:?}, expected {:?}",
            store.head()?,
            head
        );
    }
    report_verified(&store)?;
    println!("head height={} hash={}", head.height, head.block_hash);
    if let Some(proof_out) = proof_out {
        let block = store.block(head.height)?.context("head block missing")?;
        let tx_hash = block.txs.first().context("head block is empty")?.hash();
        let bundle =
            TxInclusionBundle::from_store(&store, &tx_hash)?.context("transaction not found")?;
        std::fs::write(proof_out, bundle.to_file_bytes()?)?;
        println!(
            "proof of transaction {tx_hash} written to {} ({} bytes)",
            proof_out.display(),
            bundle.to_file_bytes()?.len()
        );
    }
    Ok(())
}
