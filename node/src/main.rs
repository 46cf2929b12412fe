//! `pharmalink-node`: runs a PharmaLink node.
//!
//! - `pharmalink-node dev [--data-dir DIR] [--api ADDR]`: a one-validator network with a generated
//!   genesis, ready to use at once (the embedded default).
//! - `pharmalink-node run --config FILE`: a node of a configured network.

/// mimalloc instead of glibc's allocator: the commit path allocates many small keys and values
/// per transaction, and glibc's free-list consolidation showed up as ~10 % of a validator's CPU.
/// With the crate's `override` feature it also serves the C and C++ allocations (RocksDB's
/// write batches and memtables), so freed memory is reused across blocks (see
/// `pharmalink_node::tune_memory`) instead of being mapped and faulted in afresh.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use pharmalink_node::config::NodeConfig;
use pharmalink_node::genesis::{
    GenesisFile, GenesisLicence, GenesisOrganization, GenesisValidator,
};
use pharmalink_node::keys;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Parser, Debug)]
#[command(
    name = "pharmalink-node",
    version,
    about = "PharmaLink DSCSA traceability node"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a one-validator development network (generated key and genesis, kept in the data dir).
    Dev {
        #[arg(long, default_value = "./data/dev")]
        data_dir: PathBuf,
        /// Where the HTTP API listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        api: SocketAddr,
    },
    /// Run a node from a TOML configuration file.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
}

fn main() -> Result<()> {
    pharmalink_node::tune_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let config = match cli.command {
        Command::Dev { data_dir, api } => dev_config(&data_dir, api)?,
        Command::Run { config } => NodeConfig::read(&config)?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(pharmalink_node::server::serve(config))
}

/// The dev network's organizations: one per role, each with a key file `<file>.key` in the
/// data directory (GLNs as in the contracts' demo fixtures; licences valid until 2036).
const DEV_ORGANIZATIONS: [(&str, &str, &str, &str, &str); 5] = [
    (
        "manufacturer",
        "Acme Pharma (dev)",
        "0300010000008",
        "manufacturer",
        "fda:FEI-3000100:2036-12-31",
    ),
    (
        "wholesaler",
        "Big Wholesale (dev)",
        "0300020000005",
        "wholesaler",
        "state-NJ:WD-0002:2036-12-31",
    ),
    (
        "pharmacy",
        "Corner Pharmacy (dev)",
        "0300030000002",
        "dispenser",
        "state-NJ:RX-0003:2036-12-31",
    ),
    (
        "courier",
        "Swift Courier (dev)",
        "0300040000009",
        "logistics",
        "state-NJ:3PL-0004:2036-12-31",
    ),
    (
        "regulator",
        "State Board of Pharmacy (dev)",
        "0300050000006",
        "regulator",
        "",
    ),
];

/// Creates (once) the dev validator key, one key per dev organization and the dev genesis.
fn dev_config(data_dir: &Path, api: SocketAddr) -> Result<NodeConfig> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let key_file = data_dir.join("validator.key");
    let genesis_file = data_dir.join("genesis.json");
    for file in std::iter::once("validator").chain(DEV_ORGANIZATIONS.iter().map(|o| o.0)) {
        let path = data_dir.join(format!("{file}.key"));
        if !path.exists() {
            keys::write_key_file(&path, &keys::generate(), None)?;
        }
    }
    if !genesis_file.exists() {
        let validator = keys::read_key_file(&key_file, None)?;
        let mut organizations = Vec::new();
        for (file, name, gln, role, licence) in DEV_ORGANIZATIONS {
            let key = keys::read_key_file(&data_dir.join(format!("{file}.key")), None)?;
            organizations.push(GenesisOrganization {
                name: name.into(),
                gln: gln.into(),
                role: role.into(),
                keys: vec![key.public_key().to_hex()],
                address: "1 Main St, Newark, NJ 07102".into(),
                licences: match licence {
                    "" => Vec::new(),
                    spec => vec![GenesisLicence::parse_spec(spec)?],
                },
                // The manufacturer runs the dev validator.
                validator_key: (file == "manufacturer").then(|| validator.public_key().to_hex()),
            });
        }
        let genesis = GenesisFile {
            chain_id: "pharmalink-dev".into(),
            genesis_time_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as u64,
            validators: vec![GenesisValidator {
                name: "dev-validator".into(),
                public_key: validator.public_key().to_hex(),
                voting_power: 1,
            }],
            organizations,
            load_test_signers: 256,
        };
        genesis.to_ledger()?;
        genesis.write(&genesis_file)?;
    }
    let genesis = GenesisFile::read(&genesis_file)?;
    if genesis.validators.len() != 1 {
        bail!(
            "{} is not a one-validator dev genesis",
            genesis_file.display()
        );
    }
    // A ready-to-use bearer token for the demo manufacturer (like Vault's dev root token):
    // rewritten at each start, valid for the longest lifetime the API accepts.
    let chain_id = GenesisFile::read(&genesis_file)?.chain_id;
    let maker = keys::read_key_file(&data_dir.join("manufacturer.key"), None)?;
    let token = pharmalink_api::auth::issue(
        &maker,
        &chain_id,
        pharmalink_api::auth::now_s(),
        pharmalink_api::auth::TOKEN_LIFETIME_MAX_S,
    )
    .map_err(|e| anyhow::anyhow!("dev token: {e}"))?;
    let token_file = data_dir.join("dev-token");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&token_file)
            .with_context(|| format!("writing {}", token_file.display()))?;
        writeln!(file, "{token}")?;
    }
    println!(
        "pharmalink-node dev: bearer token of the demo manufacturer (Acme Pharma, valid 1 h) in {}:\n{token}",
        token_file.display()
    );
    let mut config = NodeConfig::single(data_dir.to_owned(), key_file, genesis_file, api);
    // The dev node signs EPCIS captures for every dev organization.
    config.org_key_files = DEV_ORGANIZATIONS
        .iter()
        .map(|o| data_dir.join(format!("{}.key", o.0)))
        .collect();
    Ok(config)
}
