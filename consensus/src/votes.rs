//! Vote bookkeeping for one height: per round and kind, each validator's first vote and the
//! voting power behind every value. Conflicting second votes become evidence, never count.

use crate::types::{Evidence, Round, SignedVote, ValidatorIndex};
use pharmalink_ledger::{Hash, VoteKind};
use std::collections::BTreeMap;

/// Rounds of one height whose votes are kept. When a new round would exceed it, the lowest round
/// is forgotten: forgetting votes is always safe (it can only delay a rule, never enable one).
pub const ROUNDS_KEPT_MAX: usize = 32;
/// Distinct values one validator's votes are counted for in one round and kind. A correct
/// validator votes once; an equivocating one is counted for each value it signed, as the paper's
/// message counting does (its signature for v is a vote for v), up to this bound.
pub const VALUES_PER_VALIDATOR_MAX: usize = 2;

/// The votes of one kind in one round.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Indexed by validator: its votes, the first received first (more than one only if it equivocated).
    by_validator: BTreeMap<ValidatorIndex, Vec<SignedVote>>,
    /// Voting power per value (`None` = nil).
    power_by_value: BTreeMap<Option<Hash>, u64>,
    total_power: u64,
}

impl Tally {
    pub fn power_for(&self, value: &Option<Hash>) -> u64 {
        self.power_by_value.get(value).copied().unwrap_or(0)
    }

    pub fn total_power(&self) -> u64 {
        self.total_power
    }

    /// The value (possibly nil) backed by at least `quorum` power, if any.
    pub fn value_with(&self, quorum: u64) -> Option<Option<Hash>> {
        self.power_by_value
            .iter()
            .find(|(_, p)| **p >= quorum)
            .map(|(v, _)| *v)
    }

    /// Non-nil values backed by at least `quorum` power.
    pub fn blocks_with(&self, quorum: u64) -> impl Iterator<Item = Hash> + '_ {
        self.power_by_value
            .iter()
            .filter(move |(_, p)| **p >= quorum)
            .filter_map(|(v, _)| *v)
    }

    pub fn votes_for(&self, value: &Option<Hash>) -> impl Iterator<Item = &SignedVote> + '_ {
        let value = *value;
        self.by_validator
            .values()
            .flatten()
            .filter(move |v| v.vote.value == value)
    }

    /// The first vote received from `validator`.
    pub fn vote_of(&self, validator: ValidatorIndex) -> Option<&SignedVote> {
        self.by_validator
            .get(&validator)
            .and_then(|votes| votes.first())
    }

    /// Whether this exact vote (same fields; the signature is not compared) is already counted.
    pub fn contains(&self, vote: &crate::types::Vote) -> bool {
        self.by_validator
            .get(&vote.validator_index)
            .is_some_and(|votes| votes.iter().any(|v| &v.vote == vote))
    }
}

#[derive(Clone, Debug, Default)]
pub struct RoundVotes {
    pub prevotes: Tally,
    pub precommits: Tally,
}

impl RoundVotes {
    pub fn tally(&self, kind: VoteKind) -> &Tally {
        match kind {
            VoteKind::Prevote => &self.prevotes,
            VoteKind::Precommit => &self.precommits,
        }
    }

    /// Power of the distinct validators that sent any vote in this round (for L55).
    pub fn senders_power(&self, power_of: impl Fn(ValidatorIndex) -> u64) -> u64 {
        let mut senders: Vec<ValidatorIndex> = self
            .prevotes
            .by_validator
            .keys()
            .chain(self.precommits.by_validator.keys())
            .copied()
            .collect();
        senders.sort_unstable();
        senders.dedup();
        senders.into_iter().map(power_of).sum()
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum AddOutcome {
    Added,
    /// The same vote again (a duplicate delivery or a rebroadcast).
    Duplicate,
    /// A different vote of the same validator for the same (round, kind): evidence.
    Conflict(Box<Evidence>),
    /// The round is older than every round kept.
    TooOld,
}

/// All rounds' votes for the current height.
#[derive(Clone, Debug, Default)]
pub struct VoteKeeper {
    rounds: BTreeMap<Round, RoundVotes>,
}

impl VoteKeeper {
    pub fn round(&self, round: Round) -> Option<&RoundVotes> {
        self.rounds.get(&round)
    }

    pub fn rounds(&self) -> impl Iterator<Item = (&Round, &RoundVotes)> + '_ {
        self.rounds.iter()
    }

    /// The votes (prevote, precommit) of `validator` in `round`.
    pub fn votes_of(&self, validator: ValidatorIndex, round: Round) -> Vec<SignedVote> {
        let Some(votes) = self.rounds.get(&round) else {
            return Vec::new();
        };
        [&votes.prevotes, &votes.precommits]
            .into_iter()
            .filter_map(|t| t.vote_of(validator).cloned())
            .collect()
    }

    /// Adds a vote whose signature and sender the caller has checked; `power` is the sender's.
    /// When a new round must displace one, the lowest round not in `protected` goes (the engine
    /// protects its locked and valid rounds: their polkas justify re-proposals, L28).
    pub fn add(&mut self, vote: SignedVote, power: u64, protected: &[Round]) -> AddOutcome {
        let round = vote.vote.round;
        if !self.rounds.contains_key(&round) && self.rounds.len() >= ROUNDS_KEPT_MAX {
            match self.rounds.keys().copied().find(|r| !protected.contains(r)) {
                Some(lowest) if lowest < round => {
                    self.rounds.remove(&lowest);
                }
                _ => return AddOutcome::TooOld,
            }
        }
        let votes = self.rounds.entry(round).or_default();
        let tally = match vote.vote.kind {
            VoteKind::Prevote => &mut votes.prevotes,
            VoteKind::Precommit => &mut votes.precommits,
        };
        let votes = tally
            .by_validator
            .entry(vote.vote.validator_index)
            .or_default();
        if votes.iter().any(|v| v.vote == vote.vote) {
            return AddOutcome::Duplicate;
        }
        let outcome = match votes.first() {
            Some(first) => AddOutcome::Conflict(Box::new(Evidence::DoubleVote {
                first: first.clone(),
                second: vote.clone(),
            })),
            None => AddOutcome::Added,
        };
        if votes.len() >= VALUES_PER_VALIDATOR_MAX {
            return outcome;
        }
        if votes.is_empty() {
            tally.total_power += power;
        }
        *tally.power_by_value.entry(vote.vote.value).or_insert(0) += power;
        votes.push(vote);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Vote;
    use pharmalink_ledger::Signature;

    fn vote(
        kind: VoteKind,
        round: Round,
        value: Option<Hash>,
        validator: ValidatorIndex,
    ) -> SignedVote {
        SignedVote {
            vote: Vote {
                kind,
                height: 1,
                round,
                value,
                validator_index: validator,
            },
            signature: Signature([0; 64]),
        }
    }

    #[test]
    fn tallies_power_per_value_and_keeps_conflicts_as_evidence() {
        let mut keeper = VoteKeeper::default();
        let a = Some(Hash([1; 32]));
        assert_eq!(
            keeper.add(vote(VoteKind::Prevote, 0, a, 0), 2, &[]),
            AddOutcome::Added
        );
        assert_eq!(
            keeper.add(vote(VoteKind::Prevote, 0, a, 1), 3, &[]),
            AddOutcome::Added
        );
        assert_eq!(
            keeper.add(vote(VoteKind::Prevote, 0, a, 1), 3, &[]),
            AddOutcome::Duplicate
        );
        assert!(matches!(
            keeper.add(vote(VoteKind::Prevote, 0, None, 1), 3, &[]),
            AddOutcome::Conflict(_)
        ));
        // A third value from the equivocator is evidence too, but no longer counted.
        let b = Some(Hash([2; 32]));
        assert!(matches!(
            keeper.add(vote(VoteKind::Prevote, 0, b, 1), 3, &[]),
            AddOutcome::Conflict(_)
        ));
        let tally = keeper.round(0).expect("round 0").tally(VoteKind::Prevote);
        assert_eq!(tally.power_for(&a), 5);
        // The equivocator's nil counts for nil (it signed it), but only once in the total.
        assert_eq!(tally.power_for(&None), 3);
        assert_eq!(tally.power_for(&b), 0);
        assert_eq!(tally.total_power(), 5);
        assert_eq!(tally.votes_for(&None).count(), 1);
        assert_eq!(tally.value_with(5), Some(a));
        assert_eq!(tally.value_with(6), None);
        assert_eq!(
            keeper
                .round(0)
                .expect("round 0")
                .tally(VoteKind::Precommit)
                .total_power(),
            0
        );
    }

    #[test]
    fn keeps_a_bounded_number_of_rounds_dropping_the_oldest_unprotected() {
        let mut keeper = VoteKeeper::default();
        for round in 0..(ROUNDS_KEPT_MAX as u32 + 5) {
            let outcome = keeper.add(vote(VoteKind::Prevote, round, None, 0), 1, &[2]);
            assert_eq!(outcome, AddOutcome::Added);
        }
        assert_eq!(keeper.rounds().count(), ROUNDS_KEPT_MAX);
        assert!(keeper.round(0).is_none());
        assert!(keeper.round(2).is_some(), "a protected round is kept");
        assert!(keeper.round(3).is_none());
        let outcome = keeper.add(vote(VoteKind::Prevote, 0, None, 1), 1, &[2]);
        assert_eq!(outcome, AddOutcome::TooOld);
    }
}
