//! One height's round state: Algorithm 1 of Buchman, Kwon, Milosevic, "The latest gossip on BFT
//! consensus" (arXiv:1807.04938), as a pure transition function.
//!
//! The driver (`engine`) evaluates the "upon" guards that need messages (proposals from the right
//! proposer, 2f+1 / f+1 vote tallies, "for the first time" memories) and feeds the enabled rule
//! here as a `RoundInput`; `apply` checks the guards on the round state (`round_p`, `step_p`,
//! `lockedRound_p`…) and returns what the paper's body does, as `RoundOutput`s. Every arm carries
//! the line number of the rule it implements.

use crate::types::{Height, Round, Step};
use pharmalink_ledger::{Hash, VoteKind};

/// The paper's per-process variables for one height (lines 2–8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundState {
    pub height: Height,
    /// round_p
    pub round: Round,
    /// step_p
    pub step: Step,
    /// (lockedRound_p, lockedValue_p); `None` is (−1, nil).
    pub locked: Option<(Round, Hash)>,
    /// (validRound_p, validValue_p); `None` is (−1, nil).
    pub valid: Option<(Round, Hash)>,
    /// decision_p[h_p] ≠ nil
    pub decided: bool,
}

impl RoundState {
    pub fn new(height: Height) -> RoundState {
        RoundState {
            height,
            round: 0,
            step: Step::Propose,
            locked: None,
            valid: None,
            decided: false,
        }
    }
}

/// Switches that exist only so the simulator can show it catches a broken protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleSwitches {
    /// Prevote for any valid proposal, ignoring lockedValue/lockedRound (lines 23 and 29).
    pub disable_lock_rule: bool,
}

/// An "upon" rule whose message guard the driver found true.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoundInput {
    /// L10/L11: StartRound(round); `is_proposer` is proposer(h_p, round) = p.
    StartRound { round: Round, is_proposer: bool },
    /// L22: ⟨PROPOSAL, h_p, round_p, v, −1⟩ from proposer(h_p, round_p); `valid` is valid(v).
    Proposal {
        round: Round,
        value: Hash,
        valid: bool,
    },
    /// L28: ⟨PROPOSAL, h_p, round_p, v, vr⟩ from the proposer AND 2f+1 ⟨PREVOTE, h_p, vr, id(v)⟩, vr < round_p.
    ProposalWithPolka {
        round: Round,
        value: Hash,
        pol_round: Round,
        valid: bool,
    },
    /// L34: 2f+1 ⟨PREVOTE, h_p, round_p, ∗⟩ for the first time.
    PolkaAny { round: Round },
    /// L36: ⟨PROPOSAL, h_p, round_p, v, ∗⟩ AND 2f+1 ⟨PREVOTE, h_p, round_p, id(v)⟩ while valid(v), for the first time.
    ProposalAndPolka { round: Round, value: Hash },
    /// L44: 2f+1 ⟨PREVOTE, h_p, round_p, nil⟩.
    PolkaNil { round: Round },
    /// L47: 2f+1 ⟨PRECOMMIT, h_p, round_p, ∗⟩ for the first time.
    PrecommitAny { round: Round },
    /// L49: ⟨PROPOSAL, h_p, r, v, ∗⟩ AND 2f+1 ⟨PRECOMMIT, h_p, r, id(v)⟩, valid(v), any round r.
    ProposalAndCommit { round: Round, value: Hash },
    /// L55: f+1 ⟨∗, h_p, round, ∗, ∗⟩ with round > round_p.
    SkipRound { round: Round },
    /// L57: OnTimeoutPropose(h_p, round).
    TimeoutPropose { round: Round },
    /// L61: OnTimeoutPrevote(h_p, round).
    TimeoutPrevote { round: Round },
    /// L65: OnTimeoutPrecommit(h_p, round).
    TimeoutPrecommit { round: Round },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoundOutput {
    /// L14–L19: broadcast ⟨PROPOSAL, h_p, round_p, proposal, validRound_p⟩; `valid` is
    /// (validRound_p, validValue_p) to re-propose, or `None`: ask the host for a value (getValue()).
    Propose {
        round: Round,
        valid: Option<(Round, Hash)>,
    },
    /// broadcast ⟨PREVOTE|PRECOMMIT, h_p, round_p, value⟩
    Vote {
        kind: VoteKind,
        round: Round,
        value: Option<Hash>,
    },
    /// schedule OnTimeout<step>(h_p, round_p)
    ScheduleTimeout { step: Step, round: Round },
    /// decision_p[h_p] = v
    Decide { round: Round, value: Hash },
    /// StartRound(round): the driver re-enters with `RoundInput::StartRound` (it knows the proposer).
    NewRound { round: Round },
}

/// Applies one rule. Returns nothing when the round state's part of the guard is false.
pub fn apply(
    state: &mut RoundState,
    switches: RuleSwitches,
    input: RoundInput,
) -> Vec<RoundOutput> {
    use RoundInput::*;
    use RoundOutput as Out;
    if state.decided {
        return Vec::new();
    }
    let current = state.round;
    match input {
        // L11: round_p ← round; step_p ← propose
        StartRound { round, is_proposer } if round >= current => {
            state.round = round;
            state.step = Step::Propose;
            let mut out = Vec::with_capacity(2);
            if is_proposer {
                // L14–L19: proposal ← validValue_p if validValue_p ≠ nil, else getValue()
                out.push(Out::Propose {
                    round,
                    valid: state.valid,
                });
            }
            // L21 schedules OnTimeoutPropose for non-proposers only; we schedule it for the proposer
            // as well, so a host that never answers getValue() cannot stall the round (L57 is a no-op
            // once the proposer has prevoted).
            out.push(Out::ScheduleTimeout {
                step: Step::Propose,
                round,
            });
            out
        }
        // L22: upon ⟨PROPOSAL, h_p, round_p, v, −1⟩ while step_p = propose
        Proposal {
            round,
            value,
            valid,
        } if round == current && state.step == Step::Propose => {
            // L23: if valid(v) ∧ (lockedRound_p = −1 ∨ lockedValue_p = v)
            let unlocked_or_same = match state.locked {
                None => true,
                Some((_, locked_value)) => locked_value == value,
            };
            let prevote = if valid && (unlocked_or_same || switches.disable_lock_rule) {
                Some(value)
            } else {
                None
            };
            // L24/L26: broadcast ⟨PREVOTE, h_p, round_p, id(v)|nil⟩; L27: step_p ← prevote
            state.step = Step::Prevote;
            vec![Out::Vote {
                kind: VoteKind::Prevote,
                round,
                value: prevote,
            }]
        }
        // L28: upon ⟨PROPOSAL, h_p, round_p, v, vr⟩ AND 2f+1 ⟨PREVOTE, h_p, vr, id(v)⟩
        //      while step_p = propose ∧ (vr ≥ 0 ∧ vr < round_p)
        ProposalWithPolka {
            round,
            value,
            pol_round,
            valid,
        } if round == current && state.step == Step::Propose && pol_round < current => {
            // L29: if valid(v) ∧ (lockedRound_p ≤ vr ∨ lockedValue_p = v)
            let lock_allows = match state.locked {
                None => true,
                Some((locked_round, locked_value)) => {
                    locked_round <= pol_round || locked_value == value
                }
            };
            let prevote = if valid && (lock_allows || switches.disable_lock_rule) {
                Some(value)
            } else {
                None
            };
            // L30/L32: broadcast ⟨PREVOTE, h_p, round_p, id(v)|nil⟩; L33: step_p ← prevote
            state.step = Step::Prevote;
            vec![Out::Vote {
                kind: VoteKind::Prevote,
                round,
                value: prevote,
            }]
        }
        // L34: upon 2f+1 ⟨PREVOTE, h_p, round_p, ∗⟩ while step_p = prevote for the first time
        PolkaAny { round } if round == current && state.step == Step::Prevote => {
            // L35: schedule OnTimeoutPrevote(h_p, round_p) after timeoutPrevote(round_p)
            vec![Out::ScheduleTimeout {
                step: Step::Prevote,
                round,
            }]
        }
        // L36: upon ⟨PROPOSAL, h_p, round_p, v, ∗⟩ AND 2f+1 ⟨PREVOTE, h_p, round_p, id(v)⟩
        //      while valid(v) ∧ step_p ≥ prevote for the first time
        ProposalAndPolka { round, value } if round == current && state.step >= Step::Prevote => {
            let mut out = Vec::with_capacity(1);
            // L37: if step_p = prevote
            if state.step == Step::Prevote {
                // L38/L39: lockedValue_p ← v; lockedRound_p ← round_p
                state.locked = Some((round, value));
                // L40: broadcast ⟨PRECOMMIT, h_p, round_p, id(v)⟩; L41: step_p ← precommit
                state.step = Step::Precommit;
                out.push(Out::Vote {
                    kind: VoteKind::Precommit,
                    round,
                    value: Some(value),
                });
            }
            // L42/L43: validValue_p ← v; validRound_p ← round_p
            state.valid = Some((round, value));
            out
        }
        // L44: upon 2f+1 ⟨PREVOTE, h_p, round_p, nil⟩ while step_p = prevote
        PolkaNil { round } if round == current && state.step == Step::Prevote => {
            // L45: broadcast ⟨PRECOMMIT, h_p, round_p, nil⟩; L46: step_p ← precommit
            state.step = Step::Precommit;
            vec![Out::Vote {
                kind: VoteKind::Precommit,
                round,
                value: None,
            }]
        }
        // L47: upon 2f+1 ⟨PRECOMMIT, h_p, round_p, ∗⟩ for the first time
        PrecommitAny { round } if round == current => {
            // L48: schedule OnTimeoutPrecommit(h_p, round_p) after timeoutPrecommit(round_p)
            vec![Out::ScheduleTimeout {
                step: Step::Precommit,
                round,
            }]
        }
        // L49: upon ⟨PROPOSAL, h_p, r, v, ∗⟩ AND 2f+1 ⟨PRECOMMIT, h_p, r, id(v)⟩ while decision_p[h_p] = nil
        ProposalAndCommit { round, value } => {
            // L50/L51: if valid(v): decision_p[h_p] = v (the driver only feeds valid values).
            // L52–L54 (h_p ← h_p + 1, reset, StartRound(0)) are the driver's: a new RoundState.
            state.decided = true;
            vec![Out::Decide { round, value }]
        }
        // L55: upon f+1 ⟨∗, h_p, round, ∗, ∗⟩ with round > round_p
        SkipRound { round } if round > current => {
            // L56: StartRound(round)
            vec![Out::NewRound { round }]
        }
        // L57: OnTimeoutPropose(h_p, round): if h = h_p ∧ round = round_p ∧ step_p = propose
        TimeoutPropose { round } if round == current && state.step == Step::Propose => {
            // L59: broadcast ⟨PREVOTE, h_p, round_p, nil⟩; L60: step_p ← prevote
            state.step = Step::Prevote;
            vec![Out::Vote {
                kind: VoteKind::Prevote,
                round,
                value: None,
            }]
        }
        // L61: OnTimeoutPrevote(h_p, round): if h = h_p ∧ round = round_p ∧ step_p = prevote
        TimeoutPrevote { round } if round == current && state.step == Step::Prevote => {
            // L63: broadcast ⟨PRECOMMIT, h_p, round_p, nil⟩; L64: step_p ← precommit
            state.step = Step::Precommit;
            vec![Out::Vote {
                kind: VoteKind::Precommit,
                round,
                value: None,
            }]
        }
        // L65: OnTimeoutPrecommit(h_p, round): if h = h_p ∧ round = round_p
        TimeoutPrecommit { round } if round == current => {
            // L67: StartRound(round_p + 1)
            vec![Out::NewRound {
                round: round.saturating_add(1),
            }]
        }
        // Any other combination: the rule's guard on the round state is false.
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RoundInput::*;

    const A: Hash = Hash([0xa; 32]);
    const B: Hash = Hash([0xb; 32]);
    const ON: RuleSwitches = RuleSwitches {
        disable_lock_rule: false,
    };

    fn vote(kind: VoteKind, round: Round, value: Option<Hash>) -> Vec<RoundOutput> {
        vec![RoundOutput::Vote { kind, round, value }]
    }

    #[test]
    fn a_locked_validator_prevotes_nil_for_another_value_without_a_newer_polka() {
        let mut s = RoundState::new(1);
        apply(
            &mut s,
            ON,
            StartRound {
                round: 0,
                is_proposer: false,
            },
        );
        assert_eq!(
            apply(
                &mut s,
                ON,
                Proposal {
                    round: 0,
                    value: A,
                    valid: true
                }
            ),
            vote(VoteKind::Prevote, 0, Some(A))
        );
        assert_eq!(
            apply(&mut s, ON, ProposalAndPolka { round: 0, value: A }),
            vote(VoteKind::Precommit, 0, Some(A))
        );
        assert_eq!(s.locked, Some((0, A)));
        assert_eq!(s.valid, Some((0, A)));
        assert_eq!(
            apply(&mut s, ON, TimeoutPrecommit { round: 0 }),
            vec![RoundOutput::NewRound { round: 1 }]
        );
        apply(
            &mut s,
            ON,
            StartRound {
                round: 1,
                is_proposer: false,
            },
        );
        // L23: locked on A, so B gets nil.
        assert_eq!(
            apply(
                &mut s,
                ON,
                Proposal {
                    round: 1,
                    value: B,
                    valid: true
                }
            ),
            vote(VoteKind::Prevote, 1, None)
        );
        // L29: a polka for B in a round older than the lock does not unlock.
        let mut t = s.clone();
        t.step = Step::Propose;
        t.locked = Some((1, A));
        t.round = 2;
        let mut u = t.clone();
        let mut w = t.clone();
        assert_eq!(
            apply(
                &mut t,
                ON,
                ProposalWithPolka {
                    round: 2,
                    value: B,
                    pol_round: 0,
                    valid: true
                }
            ),
            vote(VoteKind::Prevote, 2, None)
        );
        // A polka at or after the lock round does.
        assert_eq!(
            apply(
                &mut u,
                ON,
                ProposalWithPolka {
                    round: 2,
                    value: B,
                    pol_round: 1,
                    valid: true
                }
            ),
            vote(VoteKind::Prevote, 2, Some(B))
        );
        // With the lock rule switched off, the locked validator prevotes B at once.
        let off = RuleSwitches {
            disable_lock_rule: true,
        };
        assert_eq!(
            apply(
                &mut w,
                off,
                ProposalWithPolka {
                    round: 2,
                    value: B,
                    pol_round: 0,
                    valid: true
                }
            ),
            vote(VoteKind::Prevote, 2, Some(B))
        );
    }

    #[test]
    fn invalid_values_get_nil_and_timeouts_only_fire_in_their_step_and_round() {
        let mut s = RoundState::new(1);
        apply(
            &mut s,
            ON,
            StartRound {
                round: 0,
                is_proposer: false,
            },
        );
        assert_eq!(apply(&mut s, ON, TimeoutPrevote { round: 0 }), vec![]);
        assert_eq!(
            apply(
                &mut s,
                ON,
                Proposal {
                    round: 0,
                    value: A,
                    valid: false
                }
            ),
            vote(VoteKind::Prevote, 0, None)
        );
        assert_eq!(apply(&mut s, ON, TimeoutPropose { round: 0 }), vec![]);
        assert_eq!(
            apply(&mut s, ON, PolkaAny { round: 0 }),
            vec![RoundOutput::ScheduleTimeout {
                step: Step::Prevote,
                round: 0
            }]
        );
        assert_eq!(
            apply(&mut s, ON, TimeoutPrevote { round: 0 }),
            vote(VoteKind::Precommit, 0, None)
        );
        assert_eq!(apply(&mut s, ON, PolkaNil { round: 0 }), vec![]);
        assert_eq!(apply(&mut s, ON, TimeoutPrecommit { round: 1 }), vec![]);
        assert_eq!(s.locked, None);
    }

    #[test]
    fn the_proposer_re_proposes_its_valid_value_and_decides_once() {
        let mut s = RoundState::new(3);
        s.valid = Some((2, A));
        s.round = 2;
        let out = apply(
            &mut s,
            ON,
            StartRound {
                round: 4,
                is_proposer: true,
            },
        );
        assert_eq!(
            out[0],
            RoundOutput::Propose {
                round: 4,
                valid: Some((2, A))
            }
        );
        assert_eq!(apply(&mut s, ON, SkipRound { round: 3 }), vec![]);
        assert_eq!(
            apply(&mut s, ON, ProposalAndCommit { round: 1, value: B }),
            vec![RoundOutput::Decide { round: 1, value: B }]
        );
        assert_eq!(
            apply(&mut s, ON, ProposalAndCommit { round: 1, value: B }),
            vec![]
        );
    }
}
