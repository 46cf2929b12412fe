//! The simulator has teeth: with the lock rule (L23/L29) switched off it finds a fork quickly,
//! and the same seeds pass with the rule on.

use pharmalink_consensus::sim::check::Property;
use pharmalink_consensus::sim::faults::FaultClass;
use pharmalink_consensus::sim::{run_seed, SimOptions};

const SEEDS_MAX: u64 = 100;

fn equivocation(lock_rule: bool) -> SimOptions {
    SimOptions {
        validators: 4,
        heights: 10,
        faults: FaultClass::parse_list("equivocate").expect("known class"),
        unsafe_disable_lock_rule: !lock_rule,
        ..SimOptions::default()
    }
}

#[test]
fn without_the_lock_rule_the_simulator_finds_a_fork_within_a_hundred_seeds() {
    let broken = equivocation(false);
    let found = (0..SEEDS_MAX)
        .map(|seed| run_seed(seed, &broken))
        .find(|o| o.safety_violations() > 0);
    let outcome = found.expect("no agreement violation found with the lock rule disabled");
    assert!(
        outcome
            .violations
            .iter()
            .any(|v| v.property == Property::Agreement),
        "{}",
        outcome.failure_report()
    );
    let report = outcome.failure_report();
    assert!(report.contains(&format!("seed {} FAILED", outcome.seed)));
    assert!(report.contains("VIOLATION Agreement"), "{report}");
    // The failing seed replays to the same trace, and passes with the rule on.
    assert_eq!(
        run_seed(outcome.seed, &broken).full_trace(),
        outcome.full_trace()
    );
    let fixed = run_seed(outcome.seed, &equivocation(true));
    assert!(fixed.passed(), "{}", fixed.failure_report());
}

#[test]
fn with_the_lock_rule_the_same_hundred_seeds_pass() {
    let correct = equivocation(true);
    for seed in 0..SEEDS_MAX {
        let outcome = run_seed(seed, &correct);
        assert!(outcome.passed(), "{}", outcome.failure_report());
    }
}
