//! `cargo run --release -p pharmalink-consensus --example trace -- SEED [VALIDATORS] [FAULTS] [HEIGHTS] [FLAGS: no-lock,forget,weighted]`
//! Prints the verbose trace of one seed (every delivery and effect).

use pharmalink_consensus::sim::faults::FaultClass;
use pharmalink_consensus::sim::{run_seed, SimOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_string());
    let seed: u64 = arg(0, "0").parse().expect("SEED is a number");
    let validators: usize = arg(1, "4").parse().expect("VALIDATORS is a number");
    let faults = FaultClass::parse_list(&arg(2, "all")).expect("FAULTS");
    let heights: u64 = arg(3, "50").parse().expect("HEIGHTS is a number");
    let options = SimOptions {
        validators,
        heights,
        faults,
        verbose: true,
        unsafe_disable_lock_rule: arg(4, "").contains("no-lock"),
        weighted_power: arg(4, "").contains("weighted"),
        unsafe_forget_safety_state: arg(4, "").contains("forget"),
    };
    let outcome = run_seed(seed, &options);
    print!("{}", outcome.full_trace());
}
