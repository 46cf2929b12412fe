//! `cargo run --release -p pharmalink-consensus --example sim -- SEEDS [SEED_START] [VALIDATORS] [FAULTS] [HEIGHTS] [FLAGS: no-lock,forget,weighted]`
//! The same sweep as `pharmalink sim`, without the CLI crate (which pulls RocksDB). Prints the
//! failing seeds' reports, the fault coverage and the summary line; exits 1 on any failure.

use pharmalink_consensus::sim::faults::FaultClass;
use pharmalink_consensus::sim::{run_sweep, SimOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_string());
    let seeds: u64 = arg(0, "100").parse().expect("SEEDS is a number");
    let start: u64 = arg(1, "0").parse().expect("SEED_START is a number");
    let validators: usize = arg(2, "4").parse().expect("VALIDATORS is a number");
    let faults = FaultClass::parse_list(&arg(3, "all")).expect("FAULTS");
    let heights: u64 = arg(4, "50").parse().expect("HEIGHTS is a number");
    // Sixth argument, test-only: "no-lock" disables the lock rule, "forget" restarts without safety state.
    let broken = arg(5, "");
    let options = SimOptions {
        validators,
        heights,
        faults,
        unsafe_disable_lock_rule: broken.contains("no-lock"),
        weighted_power: broken.contains("weighted"),
        unsafe_forget_safety_state: broken.contains("forget"),
        ..SimOptions::default()
    };
    let mut printed = 0;
    let summary = run_sweep(&options, start, seeds, |o| {
        if !o.passed() && printed < 3 {
            printed += 1;
            println!("{}", o.failure_report());
        }
    });
    for line in summary.coverage_lines() {
        println!("{line}");
    }
    println!(
        "messages={} node_decisions={} events={} messages_per_height={:.1}",
        summary.messages,
        summary.node_decisions,
        summary.events,
        summary.messages_per_height()
    );
    println!("{}", summary.summary_line());
    if !summary.failed_seeds.is_empty() {
        println!(
            "failed seeds: {:?}",
            &summary.failed_seeds[..summary.failed_seeds.len().min(20)]
        );
        std::process::exit(1);
    }
}
