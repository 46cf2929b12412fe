//! `pharmalink gs1`: parse GS1 barcode data and Digital Link URIs; benchmark the parser.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use pharmalink_contracts::gs1::{self, date::year_of_unix_seconds, workload};

#[derive(Args, Debug)]
pub struct Gs1Args {
    #[command(subcommand)]
    pub command: Gs1Command,
}

#[derive(Subcommand, Debug)]
pub enum Gs1Command {
    /// Parse a bracketed element string "(01)…(21)…", scan data "]d2…" (GS = 0x1D), FNC1 data
    /// "^01…", or a GS1 Digital Link URI; print one JSON object.
    Parse {
        /// The text to parse.
        text: String,
    },
    /// Measure element strings parsed and validated per second on one core (use a release build).
    Bench {
        /// Number of element strings in the workload.
        #[arg(long, default_value_t = 1_000_000)]
        count: usize,
    },
}

pub fn run(args: Gs1Args) -> anyhow::Result<()> {
    match args.command {
        Gs1Command::Parse { text } => {
            let seconds = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .context("system clock before 1970")?
                .as_secs();
            let summary =
                gs1::parse_any(&text, year_of_unix_seconds(seconds)).map_err(|e| anyhow!("{e}"))?;
            println!("{}", serde_json::to_string(&summary)?);
            Ok(())
        }
        Gs1Command::Bench { count } => {
            let inputs = workload::element_strings(count.max(1));
            workload::parse_all(&inputs[..inputs.len().min(1000)]); // warm up
            let cpu_start = pharmalink_node::metrics::own_cpu_seconds();
            let started = Instant::now();
            let elements = workload::parse_all(&inputs);
            let wall = started.elapsed().as_secs_f64();
            let cpu = pharmalink_node::metrics::own_cpu_seconds() - cpu_start;
            if elements != inputs.len() * 4 {
                return Err(anyhow!("benchmark workload did not parse cleanly"));
            }
            let n = inputs.len() as f64;
            println!(
                "{{\"element_strings\":{},\"wall_seconds\":{wall:.3},\"per_wall_second\":{:.0},\"cpu_seconds\":{cpu:.2},\"per_cpu_second\":{:.0}}}",
                inputs.len(),
                n / wall,
                if cpu > 0.0 { n / cpu } else { 0.0 }
            );
            Ok(())
        }
    }
}
