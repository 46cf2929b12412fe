//! Seven validators, at most two Byzantine.

mod common;
use common::{all_pass, exercised, options};

#[test]
fn seven_validators_with_two_traitors_and_every_network_fault_stay_safe_and_live() {
    let summary = all_pass(&options(7, 15, "all"), 20_000, 40);
    assert!(
        exercised(&summary, 0.1).len() >= 8,
        "{:?}",
        summary.exercised
    );
}

#[test]
fn seven_validators_with_two_split_brain_proposers() {
    all_pass(&options(7, 15, "equivocate,drop"), 21_000, 20);
}
