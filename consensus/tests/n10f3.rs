//! Ten validators, at most three Byzantine.

mod common;
use common::{all_pass, options};

#[test]
fn ten_validators_with_three_traitors_stay_safe_and_live() {
    all_pass(&options(10, 10, "all"), 30_000, 15);
}
