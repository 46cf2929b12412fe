//! Four validators, at most one Byzantine: every fault class, alone and together.

mod common;
use common::{all_pass, exercised, options};
use pharmalink_consensus::sim::faults::FaultClass::*;
use pharmalink_consensus::sim::{run_sweep, SimOptions};

#[test]
fn lossy_duplicating_reordering_partitioned_networks_stay_safe_and_recover() {
    let summary = all_pass(&options(4, 20, "drop,dup,reorder,partition"), 1000, 60);
    let seen = exercised(&summary, 0.3);
    for class in [Drop, Duplicate, Reorder, Partition] {
        assert!(
            seen.contains(&class),
            "{class} exercised in too few seeds: {:?}",
            summary.exercised
        );
    }
}

#[test]
fn validators_that_crash_and_restart_from_persisted_state_never_fork_and_catch_up() {
    let summary = all_pass(&options(4, 20, "crash,drop"), 2000, 50);
    assert!(
        exercised(&summary, 0.3).contains(&Crash),
        "{:?}",
        summary.exercised
    );
}

#[test]
fn an_equivocating_split_brain_proposer_cannot_fork_the_honest_validators() {
    let summary = all_pass(&options(4, 20, "equivocate"), 3000, 40);
    assert!(
        exercised(&summary, 0.3).contains(&Equivocate),
        "{:?}",
        summary.exercised
    );
}

#[test]
fn a_double_voter_is_caught_with_evidence_and_changes_no_decision() {
    let mut evidence = 0;
    let opts = options(4, 20, "double-vote,reorder");
    let summary = run_sweep(&opts, 4000, 30, |o| {
        assert!(o.passed(), "{}", o.failure_report());
        evidence += o.stats.evidence;
    });
    assert!(
        exercised(&summary, 0.3).contains(&DoubleVote),
        "{:?}",
        summary.exercised
    );
    assert!(
        evidence > 0,
        "no honest validator recorded evidence of double votes"
    );
}

#[test]
fn invalid_blocks_and_votes_for_them_are_never_decided() {
    let summary = all_pass(&options(4, 20, "invalid-block"), 5000, 30);
    assert!(
        exercised(&summary, 0.3).contains(&InvalidBlock),
        "{:?}",
        summary.exercised
    );
}

#[test]
fn bad_signatures_and_forged_votes_are_dropped() {
    let summary = all_pass(&options(4, 20, "bad-sig"), 6000, 30);
    assert!(
        exercised(&summary, 0.3).contains(&BadSignature),
        "{:?}",
        summary.exercised
    );
}

#[test]
fn a_silent_validator_costs_only_its_proposer_turns() {
    let summary = all_pass(&options(4, 20, "silent"), 7000, 30);
    assert!(
        exercised(&summary, 0.3).contains(&Silent),
        "{:?}",
        summary.exercised
    );
}

#[test]
fn every_fault_class_together_across_eighty_seeds() {
    let summary = all_pass(&options(4, 25, "all"), 8000, 80);
    assert_eq!(summary.safety_violations + summary.liveness_failures, 0);
    // Each class is drawn for about half the seeds (Byzantine ones share the single traitor).
    let seen = exercised(&summary, 0.05);
    assert_eq!(seen.len(), 10, "{:?}", summary.exercised);
}

#[test]
fn unequal_voting_power_under_faults() {
    let opts = SimOptions {
        weighted_power: true,
        ..options(4, 20, "all")
    };
    all_pass(&opts, 9000, 30);
}
