//! Proposer rotation weighted by voting power.
//!
//! A smooth weighted round robin (the priority rotation of CometBFT and nginx): each validator's
//! priority grows by its power every slot, the highest priority proposes and pays back the total.
//! Over `total power` slots every validator proposes exactly `power` times, interleaved rather than
//! in runs. The schedule is computed once per validator set; powers are scaled down so that a
//! schedule never exceeds `PROPOSER_SCHEDULE_LEN_MAX` slots (every validator keeps at least one).
//! proposer(h, r) = schedule[(h + r) mod len]: a new round moves to the next slot, like a new height.

use crate::types::{Height, Round, ValidatorIndex};
use pharmalink_ledger::ValidatorSet;

/// Slots in one proposer schedule period.
pub const PROPOSER_SCHEDULE_LEN_MAX: u64 = 4096;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposerSchedule {
    slots: Vec<ValidatorIndex>,
}

impl ProposerSchedule {
    pub fn new(validators: &ValidatorSet) -> ProposerSchedule {
        let total: u128 = validators
            .validators
            .iter()
            .map(|v| u128::from(v.voting_power))
            .sum();
        let count = validators.len() as u128;
        let budget = u128::from(PROPOSER_SCHEDULE_LEN_MAX).max(count);
        let weights: Vec<i128> = validators
            .validators
            .iter()
            .map(|v| {
                let power = u128::from(v.voting_power);
                let scaled = if total <= budget {
                    power
                } else {
                    (power * budget / total.max(1)).max(1)
                };
                scaled as i128
            })
            .collect();
        let period: i128 = weights.iter().sum();
        let mut priority = vec![0i128; weights.len()];
        let mut slots = Vec::with_capacity(period.max(0) as usize);
        for _ in 0..period {
            for (p, w) in priority.iter_mut().zip(&weights) {
                *p += w;
            }
            // Highest priority wins; ties go to the lowest index (deterministic).
            let mut best = 0;
            for index in 1..priority.len() {
                if priority[index] > priority[best] {
                    best = index;
                }
            }
            priority[best] -= period;
            slots.push(best as ValidatorIndex);
        }
        ProposerSchedule { slots }
    }

    pub fn proposer(&self, height: Height, round: Round) -> ValidatorIndex {
        if self.slots.is_empty() {
            return 0;
        }
        let slot = (u128::from(height) + u128::from(round)) % self.slots.len() as u128;
        self.slots[slot as usize]
    }

    pub fn period(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pharmalink_ledger::{SigningKey, Validator};

    fn set(powers: &[u64]) -> ValidatorSet {
        ValidatorSet::new(
            powers
                .iter()
                .enumerate()
                .map(|(i, p)| Validator {
                    public_key: SigningKey::from_seed([i as u8 + 1; 32]).public_key(),
                    voting_power: *p,
                })
                .collect(),
        )
        .expect("a valid validator set")
    }

    #[test]
    fn each_validator_proposes_in_proportion_to_its_power_and_runs_are_interleaved() {
        let schedule = ProposerSchedule::new(&set(&[1, 2, 5]));
        assert_eq!(schedule.period(), 8);
        let mut counts = [0usize; 3];
        for slot in 0..8 {
            counts[schedule.proposer(slot, 0) as usize] += 1;
        }
        assert_eq!(counts, [1, 2, 5]);
        // The heavy validator never proposes more than twice in a row.
        let seq: Vec<u16> = (0..16).map(|s| schedule.proposer(s, 0)).collect();
        assert!(
            seq.windows(3)
                .all(|w| !(w[0] == 2 && w[1] == 2 && w[2] == 2)),
            "{seq:?}"
        );
    }

    #[test]
    fn equal_powers_rotate_and_a_new_round_moves_to_the_next_proposer() {
        let schedule = ProposerSchedule::new(&set(&[10, 10, 10, 10]));
        let first: Vec<u16> = (0..4).map(|r| schedule.proposer(1, r)).collect();
        let mut sorted = first.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1, 2, 3]);
        assert_eq!(schedule.proposer(1, 1), schedule.proposer(2, 0));
    }

    #[test]
    fn huge_powers_are_scaled_to_a_bounded_schedule() {
        let schedule = ProposerSchedule::new(&set(&[1 << 50, 1 << 40, 1]));
        assert!(schedule.period() as u64 <= PROPOSER_SCHEDULE_LEN_MAX + 3);
        let smallest = (0..schedule.period() as u64)
            .filter(|s| schedule.proposer(*s, 0) == 2)
            .count();
        assert_eq!(smallest, 1);
    }
}
