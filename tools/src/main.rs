//! `pharmalink`: the command-line tool for operators, developers and auditors.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod gs1_cmd;
mod ledger_bench;
mod ledger_cmd;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ledger(args) => ledger_cmd::run(args),
        Command::Gs1(args) => gs1_cmd::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
