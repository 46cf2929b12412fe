//! `pharmalink`: the command-line tool for operators, developers and auditors.

/// The node's allocator (see `pharmalink-node`): `commit-bench` runs the node's commit path.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod api_bench;
mod barcode_cmd;
mod commit_bench;
mod dispatch_bench;
mod epcis_cmd;
mod gs1_cmd;
mod keys_cmd;
mod ledger_bench;
mod ledger_cmd;
mod load_cmd;
mod sim_cmd;
mod tracking_bench;
mod verify_cmd;

#[derive(Parser, Debug)]
#[command(
    name = "pharmalink",
    version,
    about = "PharmaLink: DSCSA traceability ledger tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Ledger demo, chain verification, proof verification, benchmarks.
    Ledger(ledger_cmd::LedgerArgs),
    /// GS1 identifiers: parse element strings, scan data and Digital Link URIs.
    Gs1(gs1_cmd::Gs1Args),
    /// EPCIS 2.0 documents: event hash IDs, validation, JSON-LD/XML conversion, benchmark.
    Epcis(epcis_cmd::EpcisArgs),
    /// Generate an ed25519 key file (mode 0600, optionally sealed with a passphrase).
    Keygen(keys_cmd::KeygenArgs),
    /// Write a genesis file: chain id, validators, organizations.
    Genesis(keys_cmd::GenesisArgs),
    /// Print a bearer token (EdDSA JWT signed with an organization member key) for the API.
    Token(keys_cmd::TokenArgs),
    /// Generate load against one or more nodes and report throughput and latency.
    Load(load_cmd::LoadArgs),
    /// Deterministic consensus simulation over many seeds, with faults and property checkers.
    Sim(sim_cmd::SimArgs),
    /// Check a package proof (from GET /verify) offline against the genesis; print the verdict.
    Verify(verify_cmd::VerifyArgs),
    /// Latency of /verify and DSCSA traces on a dev node holding many events; proof size.
    ApiBench(api_bench::ApiBenchArgs),
    /// Render a package's GS1 DataMatrix (or GS1 QR Code) to PNG.
    Barcode(barcode_cmd::BarcodeArgs),
    /// Read a GS1 DataMatrix or QR Code from a PNG/JPEG; with --node, verify its proof offline.
    Scan(barcode_cmd::ScanArgs),
    /// Fulfilment sagas completed per second on a dev node (orders, courier, delivery).
    DispatchBench(dispatch_bench::DispatchBenchArgs),
    /// Live-tracking fan-out: WebSocket watchers, courier updates, delivery latency.
    TrackingBench(tracking_bench::TrackingBenchArgs),
    /// One validator's commit path per transaction (verify, execute, RocksDB write), no network.
    CommitBench(commit_bench::CommitBenchArgs),
}

fn main() -> ExitCode {
    pharmalink_node::tune_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ledger(args) => ledger_cmd::run(args),
        Command::Gs1(args) => gs1_cmd::run(args),
        Command::Epcis(args) => epcis_cmd::run(args),
        Command::Keygen(args) => keys_cmd::keygen(args),
        Command::Genesis(args) => keys_cmd::genesis(args),
        Command::Token(args) => keys_cmd::token(args),
        Command::Load(args) => load_cmd::run(args),
        Command::Sim(args) => sim_cmd::run(args),
        Command::Verify(args) => verify_cmd::run(args),
        Command::ApiBench(args) => api_bench::run(args),
        Command::Barcode(args) => barcode_cmd::barcode(args),
        Command::Scan(args) => barcode_cmd::scan(args),
        Command::DispatchBench(args) => dispatch_bench::run(args),
        Command::TrackingBench(args) => tracking_bench::run(args),
        Command::CommitBench(args) => commit_bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
