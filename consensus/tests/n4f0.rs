//! Four honest validators, no faults other than what the network draws for each seed.

use pharmalink_consensus::sim::{run_seed, run_sweep, SimOptions};
use std::collections::BTreeSet;

fn fault_free(validators: usize, heights: u64) -> SimOptions {
    SimOptions {
        validators,
        heights,
        faults: BTreeSet::new(),
        ..SimOptions::default()
    }
}

#[test]
fn four_honest_validators_decide_fifty_heights_in_round_zero() {
    let outcome = run_seed(1, &fault_free(4, 50));
    assert!(outcome.passed(), "{}", outcome.failure_report());
    assert_eq!(outcome.stats.heights, 50);
    assert_eq!(outcome.stats.node_decisions, 200);
    let late_rounds = outcome
        .full_trace()
        .lines()
        .filter(|l| l.contains(" round h"))
        .count();
    assert_eq!(late_rounds, 0, "{}", outcome.full_trace());
}

#[test]
fn the_same_seed_gives_the_same_trace_byte_for_byte() {
    let options = SimOptions {
        heights: 10,
        ..SimOptions::default()
    };
    for seed in [3, 17, 99] {
        let a = run_seed(seed, &options).full_trace();
        let b = run_seed(seed, &options).full_trace();
        assert_eq!(a, b);
        assert!(a.lines().count() > 10);
    }
    assert_ne!(
        run_seed(3, &options).full_trace(),
        run_seed(4, &options).full_trace()
    );
}

#[test]
fn thirty_fault_free_seeds_pass() {
    let summary = run_sweep(&fault_free(4, 20), 0, 30, |o| {
        assert!(o.passed(), "{}", o.failure_report())
    });
    assert_eq!(summary.heights, 30 * 20);
    assert_eq!(
        summary.summary_line(),
        "sim: seeds=30 heights=600 safety_violations=0 liveness_failures=0"
    );
}
