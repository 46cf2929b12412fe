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
        /// Events in the benchmark.
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        /// Events per capture document.
        #[arg(long, default_value_t = 100)]
        per_document: usize,
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
        EpcisCommand::Bench {
            events,
            per_document,
        } => {
            let events = events.max(1);
            let documents = workload::json_documents(events, per_document);
            workload::process(&workload::json_document(100)); // warm up
            let cpu_start = pharmalink_node::metrics::own_cpu_seconds();
            let started = Instant::now();
            let processed = workload::process_all(&documents);
            let wall = started.elapsed().as_secs_f64();
            let cpu = pharmalink_node::metrics::own_cpu_seconds() - cpu_start;
            if processed != events {
                return Err(anyhow!("benchmark documents did not validate"));
            }
            let n = events as f64;
            println!(
                "{{\"events\":{events},\"documents\":{},\"bytes\":{},\"wall_seconds\":{wall:.3},\"per_wall_second\":{:.0},\"cpu_seconds\":{cpu:.2},\"per_cpu_second\":{:.0}}}",
                documents.len(),
                documents.iter().map(String::len).sum::<usize>(),
                n / wall,
                if cpu > 0.0 { n / cpu } else { 0.0 }
            );
            Ok(())
        }
    }
}
