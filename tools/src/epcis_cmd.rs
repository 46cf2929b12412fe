//! `pharmalink epcis`: event hash IDs, validation, JSON-LD/XML conversion, benchmark.

use std::time::Instant;

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand, ValueEnum};
use pharmalink_contracts::epcis::{self, workload, Binding};

#[derive(Args, Debug)]
pub struct EpcisArgs {
    #[command(subcommand)]
    pub command: EpcisCommand,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OutputBinding {
    Json,
    Xml,
}

#[derive(Subcommand, Debug)]
pub enum EpcisCommand {
    /// Print the CBV 2.0 event hash ID (ni:///sha-256;…?ver=CBV2.0) of each event, in document order.
    Hash {
        /// EPCIS document, JSON-LD or XML.
        file: String,
    },
    /// Validate a document; exit non-zero listing every problem (event index, field, reason).
    Validate {
        /// EPCIS document, JSON-LD or XML.
        file: String,
    },
    /// Convert a document to the JSON-LD or XML binding (EPCIS 2.0).
    Convert {
        /// Output binding.
        #[arg(long, value_enum)]
        to: OutputBinding,
        /// EPCIS document, JSON-LD or XML.
        file: String,
    },
    /// Measure EPCIS events parsed + validated + hashed per second on one core (use a release build).
    Bench {
        /// Events in the benchmark document.
        #[arg(long, default_value_t = 30_000)]
        events: usize,
    },
}

fn read(file: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("reading {file}"))
}

pub fn run(args: EpcisArgs) -> anyhow::Result<()> {
    match args.command {
        EpcisCommand::Hash { file } => {
            let ids = epcis::hash_ids(&read(&file)?)
                .map_err(|errors| anyhow!("{file}:\n{}", epcis::render_errors(&errors)))?;
            for id in ids {
                println!("{id}");
            }
            Ok(())
        }
        EpcisCommand::Validate { file } => {
            let capture = epcis::capture(&read(&file)?).map_err(|errors| {
                anyhow!(
                    "{file}: {} problem(s)\n{}",
                    errors.len(),
                    epcis::render_errors(&errors)
                )
            })?;
            println!("{file}: valid, {} event(s)", capture.event_ids.len());
            Ok(())
        }
        EpcisCommand::Convert { to, file } => {
            let binding = match to {
                OutputBinding::Json => Binding::JsonLd,
                OutputBinding::Xml => Binding::Xml,
            };
            let output = epcis::convert(&read(&file)?, binding)
                .map_err(|errors| anyhow!("{file}:\n{}", epcis::render_errors(&errors)))?;
            println!("{output}");
            Ok(())
        }
        EpcisCommand::Bench { events } => {
            let document = workload::json_document(events.max(1));
            workload::process(&workload::json_document(100)); // warm up
            let started = Instant::now();
            let processed = workload::process(&document);
            let seconds = started.elapsed().as_secs_f64();
            if processed != events.max(1) {
                return Err(anyhow!("benchmark document did not validate"));
            }
            println!(
                "{{\"events\":{processed},\"bytes\":{},\"seconds\":{seconds:.3},\"events_per_second\":{:.0}}}",
                document.len(),
                processed as f64 / seconds
            );
            Ok(())
        }
    }
}
