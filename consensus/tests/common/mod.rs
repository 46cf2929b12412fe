//! Shared helpers for the fault-model tests: run seeds, fail with the first failing seed's trace.

#![allow(dead_code)]

use pharmalink_consensus::sim::faults::FaultClass;
use pharmalink_consensus::sim::{run_sweep, SimOptions, SweepSummary};
use std::collections::BTreeSet;

pub fn options(validators: usize, heights: u64, faults: &str) -> SimOptions {
    SimOptions {
        validators,
        heights,
        faults: FaultClass::parse_list(faults).expect("fault list"),
        ..SimOptions::default()
    }
}

/// Runs `count` seeds from `start` and panics with the first failing seed's report.
pub fn all_pass(options: &SimOptions, start: u64, count: u64) -> SweepSummary {
    let mut first_failure: Option<String> = None;
    let summary = run_sweep(options, start, count, |outcome| {
        if !outcome.passed() && first_failure.is_none() {
            first_failure = Some(outcome.failure_report());
        }
    });
    if let Some(report) = first_failure {
        panic!("{}\n{}", report, summary.summary_line());
    }
    assert_eq!(summary.seeds, count);
    assert!(
        summary.heights >= count * options.heights,
        "{}",
        summary.summary_line()
    );
    summary
}

/// The fault classes that did something in at least `share_min` of the seeds.
pub fn exercised(summary: &SweepSummary, share_min: f64) -> BTreeSet<FaultClass> {
    summary
        .exercised
        .iter()
        .filter(|(_, n)| **n as f64 >= share_min * summary.seeds as f64)
        .map(|(c, _)| *c)
        .collect()
}
