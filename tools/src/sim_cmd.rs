//! `pharmalink sim`: the deterministic consensus simulator over many seeds.
//!
//! All logic lives in `pharmalink_consensus::sim`; this file parses arguments, measures wall time
//! and prints. The last line of output is always
//! `sim: seeds=N heights=H safety_violations=S liveness_failures=L`.

use anyhow::{anyhow, bail, Result};
use pharmalink_consensus::sim::faults::FaultClass;
use pharmalink_consensus::sim::{run_seed, run_sweep, SimOptions};
use std::time::Instant;

/// Failing seeds whose full report (violations and minimal trace) is printed; the rest are listed.
const FAILURE_REPORTS_PRINTED_MAX: usize = 3;

#[derive(clap::Args, Debug)]
pub struct SimArgs {
    /// How many seeds to run.
    #[arg(long, default_value_t = 100)]
    pub seeds: u64,
    /// The first seed; seeds run from here upward.
    #[arg(long, default_value_t = 0)]
    pub seed_start: u64,
    /// Validators in each simulated network (f = (n - 1) / 3 of them may be Byzantine).
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Heights every honest validator must decide per seed.
    #[arg(long, default_value_t = 50)]
    pub heights: u64,
    /// Fault classes each seed draws from: "all", "none", or a comma-separated list of
    /// drop,dup,reorder,partition,crash,equivocate,double-vote,invalid-block,bad-sig,silent.
    #[arg(long, default_value = "all")]
    pub faults: String,
    /// Unequal voting powers (1, 2, 3, 1, 2, 3, ...) instead of 1 each.
    #[arg(long)]
    pub weighted: bool,
    /// Also print seeds per minute, decisions per second, messages per decided block and the share
    /// of seeds that exercised each fault class.
    #[arg(long)]
    pub stats: bool,
    /// Print every seed's full trace (every delivery and effect): for replaying one seed.
    #[arg(long)]
    pub trace: bool,
    /// Test only: validators ignore their lock (the simulator must then report violations).
    #[arg(long, hide = true)]
    pub unsafe_disable_lock_rule: bool,
}

pub fn run(args: SimArgs) -> Result<()> {
    let faults = FaultClass::parse_list(&args.faults).map_err(|e| anyhow!(e))?;
    if args.validators == 0 || args.validators > pharmalink_consensus::sim::SIM_VALIDATORS_MAX {
        bail!(
            "--validators must be 1 to {}",
            pharmalink_consensus::sim::SIM_VALIDATORS_MAX
        );
    }
    if args.heights == 0 || args.heights > pharmalink_consensus::sim::SIM_HEIGHTS_MAX {
        bail!(
            "--heights must be 1 to {}",
            pharmalink_consensus::sim::SIM_HEIGHTS_MAX
        );
    }
    let options = SimOptions {
        validators: args.validators,
        heights: args.heights,
        faults,
        weighted_power: args.weighted,
        verbose: args.trace,
        unsafe_disable_lock_rule: args.unsafe_disable_lock_rule,
        ..SimOptions::default()
    };
    if args.trace {
        for seed in args.seed_start..args.seed_start.saturating_add(args.seeds) {
            let outcome = run_seed(seed, &options);
            print!("{}", outcome.full_trace());
        }
    }
    let started = Instant::now();
    let mut reports_printed = 0;
    let summary = run_sweep(&options, args.seed_start, args.seeds, |outcome| {
        if !outcome.passed() && reports_printed < FAILURE_REPORTS_PRINTED_MAX {
            reports_printed += 1;
            println!("{}", outcome.failure_report());
        }
    });
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    if summary.failed_seeds.len() > reports_printed {
        println!("failing seeds: {:?}", summary.failed_seeds);
    }
    if args.stats {
        println!(
            "stats: {:.0} seeds/min, {:.0} decided heights/s ({:.0} validator decisions/s), {:.1} messages per decided block, {} events, {:.1} s wall",
            summary.seeds as f64 * 60.0 / seconds,
            summary.heights as f64 / seconds,
            summary.node_decisions as f64 / seconds,
            summary.messages_per_height(),
            summary.events,
            seconds
        );
        println!("fault coverage (seeds in which the class actually did something):");
        for line in summary.coverage_lines() {
            println!("{line}");
        }
    }
    if let Some(first) = summary.failed_seeds.first() {
        let weighted = if args.weighted { " --weighted" } else { "" };
        let broken = if args.unsafe_disable_lock_rule {
            " --unsafe-disable-lock-rule"
        } else {
            ""
        };
        println!(
            "{} of {} seeds failed; replay one with: pharmalink sim --seeds 1 --seed-start {first} --validators {} --heights {} --faults {}{weighted}{broken} --trace",
            summary.failed_seeds.len(),
            summary.seeds,
            args.validators,
            args.heights,
            args.faults
        );
    }
    println!("{}", summary.summary_line());
    if summary.failed_seeds.is_empty() {
        Ok(())
    } else {
        // The error (printed by main on stderr) repeats the summary, so it stays the last line.
        Err(anyhow!(summary.summary_line()))
    }
}
