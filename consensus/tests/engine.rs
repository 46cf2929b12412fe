//! The engine driven by hand, one input at a time: ordering of effects, the signing guard across
//! restarts, what is dropped, evidence, and catching up from a certificate.

use pharmalink_consensus::engine::FUTURE_HEIGHTS_MAX;
use pharmalink_consensus::sim::app::{genesis, validator_key, CachedVerifier, SimChain};
use pharmalink_consensus::{
    ChainTip, Config, Ed25519Verifier, Effect, Engine, Input, Message, Proposal, SafetyState,
    SignedProposal, SignedVote, Step, TimeoutConfig, TimeoutKind, Vote,
};
use pharmalink_ledger::{
    Block, CommitCertificate, CommitSignature, Genesis, Hash, SigningKey, VoteKind,
};

const NOW_MS: u64 = pharmalink_consensus::sim::app::SIM_GENESIS_TIME_MS + 1000;

struct Net {
    genesis: Genesis,
    config: Config,
    chain: SimChain,
}

impl Net {
    fn new() -> Net {
        let genesis = genesis(&[1, 1, 1, 1]);
        let config = Config::new(genesis.chain_id.clone(), genesis.validators.clone());
        let chain = SimChain::new(&genesis);
        Net {
            genesis,
            config,
            chain,
        }
    }

    fn tip(&self) -> ChainTip {
        ChainTip {
            next_height: self.chain.height() + 1,
            previous_block_hash: self.chain.previous_hash(&self.genesis),
            previous_timestamp_ms: self.chain.previous_timestamp_ms(&self.genesis),
        }
    }

    fn engine(
        &self,
        index: usize,
        persisted: Option<SafetyState>,
    ) -> Engine<SigningKey, Ed25519Verifier> {
        let mut engine = Engine::new(
            self.config.clone(),
            validator_key(index),
            Ed25519Verifier,
            self.tip(),
            persisted,
        );
        assert!(engine.handle(Input::Tick { now_ms: NOW_MS }).is_empty());
        engine
    }

    fn block(&self, round: u32, proposer: usize, variant: u32) -> Block {
        self.chain.build_block(
            &self.genesis,
            round,
            &validator_key(proposer),
            NOW_MS,
            variant,
        )
    }

    fn proposal(&self, round: u32, proposer: usize, block: Block) -> Message {
        let proposal = Proposal {
            height: block.header.height,
            round,
            block,
            pol_round: None,
            proposer_index: proposer as u16,
        };
        let signature = validator_key(proposer)
            .sign(proposal.signing_digest(&self.genesis.chain_id).as_bytes());
        Message::Proposal(SignedProposal {
            proposal,
            signature,
        })
    }

    fn vote(
        &self,
        kind: VoteKind,
        height: u64,
        round: u32,
        value: Option<Hash>,
        validator: usize,
    ) -> SignedVote {
        self.vote_signed_by(
            kind,
            height,
            round,
            value,
            validator,
            &validator_key(validator),
        )
    }

    fn vote_signed_by(
        &self,
        kind: VoteKind,
        height: u64,
        round: u32,
        value: Option<Hash>,
        validator: usize,
        key: &SigningKey,
    ) -> SignedVote {
        let vote = Vote {
            kind,
            height,
            round,
            value,
            validator_index: validator as u16,
        };
        let signature = key.sign(vote.signing_digest(&self.genesis.chain_id).as_bytes());
        SignedVote { vote, signature }
    }
}

fn broadcast_votes(effects: &[Effect]) -> Vec<SignedVote> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Broadcast(Message::Vote(v)) => Some(v.clone()),
            _ => None,
        })
        .collect()
}

/// Answers every ValidateProposal with `valid` until no more come.
fn answer_validations(
    engine: &mut Engine<SigningKey, Ed25519Verifier>,
    mut effects: Vec<Effect>,
    valid: bool,
) -> Vec<Effect> {
    let mut all = Vec::new();
    loop {
        let requests: Vec<(u64, Hash)> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::ValidateProposal { height, block, .. } => Some((*height, block.hash())),
                _ => None,
            })
            .collect();
        all.extend(effects);
        let Some((height, block_hash)) = requests.first().copied() else {
            return all;
        };
        effects = engine.handle(Input::ProposalVerdict {
            height,
            block_hash,
            valid,
        });
    }
}

/// A non-proposer of (1, 0) and the proposer.
fn voter_and_proposer(net: &Net) -> (usize, usize) {
    let probe = net.engine(0, None);
    let proposer = probe.proposer(1, 0) as usize;
    ((proposer + 1) % 4, proposer)
}

#[test]
fn a_vote_is_persisted_before_it_is_broadcast() {
    let net = Net::new();
    let (me, proposer) = voter_and_proposer(&net);
    let mut engine = net.engine(me, None);
    let start = engine.start();
    assert!(start.iter().any(|e| matches!(e, Effect::ScheduleTimeout { timeout, .. } if timeout.kind == TimeoutKind::Propose)));
    assert!(broadcast_votes(&start).is_empty());
    let block = net.block(0, proposer, 0);
    let effects = engine.handle(Input::Message(net.proposal(0, proposer, block.clone())));
    let effects = answer_validations(&mut engine, effects, true);
    let persist = effects
        .iter()
        .position(|e| matches!(e, Effect::PersistSafetyState(_)))
        .expect("persisted");
    let send = effects
        .iter()
        .position(|e| matches!(e, Effect::Broadcast(Message::Vote(_))))
        .expect("prevoted");
    assert!(persist < send, "{effects:?}");
    let Effect::PersistSafetyState(state) = &effects[persist] else {
        unreachable!()
    };
    assert_eq!(state.last_signed, Some((1, 0, Step::Prevote)));
    let votes = broadcast_votes(&effects);
    assert_eq!(votes.len(), 1);
    assert_eq!(votes[0].vote.value, Some(block.hash()));
    assert_eq!(state.signed_votes, votes);
}

#[test]
fn a_restarted_validator_resends_its_vote_and_never_signs_a_different_one_for_that_step() {
    let net = Net::new();
    let (me, proposer) = voter_and_proposer(&net);
    let mut engine = net.engine(me, None);
    engine.start();
    let first = net.block(0, proposer, 0);
    let effects = engine.handle(Input::Message(net.proposal(0, proposer, first.clone())));
    let effects = answer_validations(&mut engine, effects, true);
    let state = effects
        .iter()
        .rev()
        .find_map(|e| match e {
            Effect::PersistSafetyState(s) => Some(s.clone()),
            _ => None,
        })
        .expect("persisted");
    let original = broadcast_votes(&effects);

    // Restart from the persisted state; the (equivocating) proposer now shows a different block.
    let mut restarted = net.engine(me, Some(state));
    let mut effects = restarted.start();
    let second = net.block(0, proposer, 1);
    assert_ne!(first.hash(), second.hash());
    let more = restarted.handle(Input::Message(net.proposal(0, proposer, second)));
    effects.extend(answer_validations(&mut restarted, more, true));
    effects.extend(
        restarted.handle(Input::Timeout(pharmalink_consensus::Timeout {
            height: 1,
            round: 0,
            kind: TimeoutKind::Propose,
        })),
    );
    let prevotes: Vec<SignedVote> = broadcast_votes(&effects)
        .into_iter()
        .filter(|v| v.vote.kind == VoteKind::Prevote && v.vote.round == 0)
        .collect();
    assert!(
        !prevotes.is_empty(),
        "the signed prevote is resent after a restart"
    );
    assert!(
        prevotes.iter().all(|v| v == &original[0]),
        "signed a second prevote: {prevotes:?}"
    );
    assert!(!effects.iter().any(|e| matches!(e, Effect::PersistSafetyState(s) if s.last_signed == Some((1, 0, Step::Prevote)) && s.signed_votes != original)));
}

#[test]
fn votes_with_bad_signatures_from_outside_the_set_or_far_ahead_do_not_count() {
    let net = Net::new();
    let (me, _) = voter_and_proposer(&net);
    let mut engine = net.engine(me, None);
    engine.start();
    // Time out the proposal: prevote nil, then wait for 2f+1 prevotes.
    let effects = engine.handle(Input::Timeout(pharmalink_consensus::Timeout {
        height: 1,
        round: 0,
        kind: TimeoutKind::Propose,
    }));
    assert_eq!(broadcast_votes(&effects).len(), 1);
    let others: Vec<usize> = (0..4).filter(|i| *i != me).collect();
    let outsider = SigningKey::from_seed([99; 32]);
    let mut bad = Vec::new();
    for &v in &others {
        // Signed by a key that is not the validator's.
        bad.push(net.vote_signed_by(VoteKind::Prevote, 1, 0, None, v, &outsider));
        // A signature with one bit flipped.
        let mut flipped = net.vote(VoteKind::Prevote, 1, 0, None, v);
        flipped.signature.0[3] ^= 1;
        bad.push(flipped);
    }
    // An index outside the validator set.
    bad.push(net.vote_signed_by(VoteKind::Prevote, 1, 0, None, 7, &outsider));
    for vote in bad {
        let effects = engine.handle(Input::Message(Message::Vote(vote)));
        assert!(effects.is_empty(), "{effects:?}");
    }
    // Votes for a height beyond the window are not counted (they only hint that we are behind).
    let far = 1 + FUTURE_HEIGHTS_MAX + 3;
    for &v in &others[..1] {
        let effects = engine.handle(Input::Message(Message::Vote(net.vote(
            VoteKind::Prevote,
            far,
            0,
            None,
            v,
        ))));
        assert!(broadcast_votes(&effects).is_empty());
    }
    // Two genuine nil prevotes make 2f+1 with ours: L34 schedules the prevote timeout, L44 precommits nil.
    let mut effects = Vec::new();
    for &v in &others[..2] {
        effects.extend(engine.handle(Input::Message(Message::Vote(net.vote(
            VoteKind::Prevote,
            1,
            0,
            None,
            v,
        )))));
    }
    let precommits: Vec<SignedVote> = broadcast_votes(&effects)
        .into_iter()
        .filter(|v| v.vote.kind == VoteKind::Precommit)
        .collect();
    assert_eq!(precommits.len(), 1);
    assert_eq!(precommits[0].vote.value, None);
}

#[test]
fn two_conflicting_signed_votes_are_kept_as_evidence() {
    let net = Net::new();
    let (me, _) = voter_and_proposer(&net);
    let mut engine = net.engine(me, None);
    engine.start();
    let other = (me + 1) % 4;
    let a = net.vote(VoteKind::Prevote, 1, 0, Some(Hash([1; 32])), other);
    let b = net.vote(VoteKind::Prevote, 1, 0, None, other);
    assert!(engine
        .handle(Input::Message(Message::Vote(a.clone())))
        .is_empty());
    assert!(
        engine
            .handle(Input::Message(Message::Vote(a.clone())))
            .is_empty(),
        "a duplicate is not evidence"
    );
    let effects = engine.handle(Input::Message(Message::Vote(b.clone())));
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::RecordEvidence(_))),
        "{effects:?}"
    );
    let kept: Vec<_> = engine.evidence().collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].key(), (other as u16, 1, 0, Step::Prevote));
}

fn certificate(net: &Net, block: &Block, round: u32, signers: &[usize]) -> CommitCertificate {
    let signatures = signers
        .iter()
        .map(|i| CommitSignature {
            validator_index: *i as u16,
            signature: net
                .vote(
                    VoteKind::Precommit,
                    block.header.height,
                    round,
                    Some(block.hash()),
                    *i,
                )
                .signature,
        })
        .collect();
    CommitCertificate {
        height: block.header.height,
        round,
        block_hash: block.hash(),
        signatures,
    }
}

#[test]
fn a_validator_that_is_behind_requests_sync_and_decides_from_a_valid_certificate_only() {
    let net = Net::new();
    let (me, proposer) = voter_and_proposer(&net);
    let mut engine = net.engine(me, None);
    engine.start();
    let others: Vec<usize> = (0..4).filter(|i| *i != me).collect();
    // One validator ahead is not enough to ask at once; f+1 is.
    let e1 = engine.handle(Input::Message(Message::Vote(net.vote(
        VoteKind::Prevote,
        2,
        0,
        None,
        others[0],
    ))));
    assert!(!e1.iter().any(|e| matches!(e, Effect::RequestSync { .. })));
    let e2 = engine.handle(Input::Message(Message::Vote(net.vote(
        VoteKind::Prevote,
        2,
        0,
        None,
        others[1],
    ))));
    assert!(
        e2.iter()
            .any(|e| matches!(e, Effect::RequestSync { from_height: 1 })),
        "{e2:?}"
    );

    let block = net.block(0, proposer, 0);
    // Two signatures are not a quorum of four.
    let weak = certificate(&net, &block, 0, &others[..2]);
    assert!(engine
        .handle(Input::SyncedBlock {
            block: block.clone(),
            certificate: weak
        })
        .is_empty());
    // A forged signature fails.
    let mut forged = certificate(&net, &block, 0, &others);
    forged.signatures[1].signature.0[0] ^= 1;
    assert!(engine
        .handle(Input::SyncedBlock {
            block: block.clone(),
            certificate: forged
        })
        .is_empty());
    // A real one decides, and the engine moves on to height 2 where the buffered votes wait.
    let good = certificate(&net, &block, 0, &others);
    let effects = engine.handle(Input::SyncedBlock {
        block: block.clone(),
        certificate: good.clone(),
    });
    let decided = effects.iter().find_map(|e| match e {
        Effect::Decide { block, certificate } => Some((block.hash(), certificate.clone())),
        _ => None,
    });
    assert_eq!(decided, Some((block.hash(), good)));
    assert_eq!(engine.height(), 2);
    let mut chain = SimChain::new(&net.genesis);
    let (block, certificate) = (
        block,
        certificate(&net, &net.block(0, proposer, 0), 0, &others),
    );
    chain
        .append(&net.genesis, block, certificate, &CachedVerifier::default())
        .expect("the decided block obeys the chain rules");
}

#[test]
fn four_engines_wired_by_hand_decide_one_block_with_a_sorted_quorum_certificate() {
    let net = Net::new();
    let mut engines: Vec<_> = (0..4).map(|i| net.engine(i, None)).collect();
    let mut queue: Vec<(usize, Effect)> = Vec::new();
    for (i, e) in engines.iter_mut().enumerate() {
        queue.extend(e.start().into_iter().map(|x| (i, x)));
    }
    let mut decisions: Vec<(usize, Block, CommitCertificate)> = Vec::new();
    for _ in 0..10_000 {
        let Some((from, effect)) = queue.pop() else {
            break;
        };
        let mut produced = Vec::new();
        match effect {
            Effect::Broadcast(message) => {
                for (to, e) in engines.iter_mut().enumerate() {
                    if to != from {
                        produced.extend(
                            e.handle(Input::Message(message.clone()))
                                .into_iter()
                                .map(|x| (to, x)),
                        );
                    }
                }
            }
            Effect::RequestValue { height, round } => {
                let block =
                    net.chain
                        .build_block(&net.genesis, round, &validator_key(from), NOW_MS, 0);
                produced.extend(
                    engines[from]
                        .handle(Input::ProposeValue {
                            height,
                            round,
                            block,
                        })
                        .into_iter()
                        .map(|x| (from, x)),
                );
            }
            Effect::ValidateProposal { height, block, .. } => {
                let valid = net
                    .chain
                    .validate(&net.genesis, &block, &CachedVerifier::default())
                    .is_ok();
                let input = Input::ProposalVerdict {
                    height,
                    block_hash: block.hash(),
                    valid,
                };
                produced.extend(engines[from].handle(input).into_iter().map(|x| (from, x)));
            }
            Effect::Decide { block, certificate } => decisions.push((from, block, certificate)),
            _ => {}
        }
        queue.extend(produced);
        if decisions.len() == 4 {
            break;
        }
    }
    assert_eq!(decisions.len(), 4);
    for (_, block, certificate) in &decisions {
        assert_eq!(block.hash(), decisions[0].1.hash());
        assert!(certificate
            .signatures
            .windows(2)
            .all(|w| w[0].validator_index < w[1].validator_index));
        certificate
            .verify(&net.genesis.chain_id, &net.genesis.validators)
            .expect("a valid certificate");
    }
}

#[test]
fn timeouts_grow_with_the_round_up_to_their_cap() {
    let t = TimeoutConfig::default();
    let propose: Vec<u64> = (0..4)
        .map(|r| t.duration_ms(TimeoutKind::Propose, r))
        .collect();
    assert!(propose.windows(2).all(|w| w[0] < w[1]), "{propose:?}");
    assert_eq!(t.duration_ms(TimeoutKind::Prevote, 0), t.prevote_base_ms);
    assert_eq!(
        t.duration_ms(TimeoutKind::Precommit, 2),
        t.precommit_base_ms + 2 * t.precommit_delta_ms
    );
    assert_eq!(t.duration_ms(TimeoutKind::Propose, u32::MAX), t.max_ms);
}

#[test]
fn a_restarted_validator_resends_the_votes_of_earlier_rounds_of_its_height() {
    // Regression (sweep seeds 1008151, 1009859): a validator that had moved to round 1 restarted
    // knowing only its round-1 votes; the others, still in round 0, could never complete it.
    let net = Net::new();
    let (me, _) = voter_and_proposer(&net);
    let others: Vec<usize> = (0..4).filter(|i| *i != me).collect();
    let mut engine = net.engine(me, None);
    let mut effects = engine.start();
    let timeout = |round, kind| {
        Input::Timeout(pharmalink_consensus::Timeout {
            height: 1,
            round,
            kind,
        })
    };
    effects.extend(engine.handle(timeout(0, TimeoutKind::Propose)));
    for &v in &others[..2] {
        effects.extend(engine.handle(Input::Message(Message::Vote(net.vote(
            VoteKind::Prevote,
            1,
            0,
            None,
            v,
        )))));
    }
    for &v in &others[..2] {
        effects.extend(engine.handle(Input::Message(Message::Vote(net.vote(
            VoteKind::Precommit,
            1,
            0,
            None,
            v,
        )))));
    }
    effects.extend(engine.handle(timeout(0, TimeoutKind::Precommit)));
    assert_eq!(engine.round(), 1);
    effects.extend(engine.handle(timeout(1, TimeoutKind::Propose)));
    let state = effects
        .iter()
        .rev()
        .find_map(|e| match e {
            Effect::PersistSafetyState(s) => Some(s.clone()),
            _ => None,
        })
        .expect("persisted");
    assert_eq!(state.last_signed, Some((1, 1, Step::Prevote)));
    let signed = broadcast_votes(&effects);
    assert_eq!(signed.len(), 3, "{signed:?}");

    let mut restarted = net.engine(me, Some(state));
    let resent = broadcast_votes(&restarted.start());
    for vote in &signed {
        assert!(resent.contains(vote), "not resent after restart: {vote:?}");
    }
    assert_eq!(restarted.round(), 1);
}

#[test]
fn the_safety_state_round_trips_through_its_canonical_bytes() {
    use pharmalink_ledger::Canonical;
    let net = Net::new();
    let (me, proposer) = voter_and_proposer(&net);
    let mut engine = net.engine(me, None);
    engine.start();
    let effects = engine.handle(Input::Message(net.proposal(
        0,
        proposer,
        net.block(0, proposer, 0),
    )));
    answer_validations(&mut engine, effects, true);
    let state = engine.safety_state().clone();
    assert!(state.last_signed.is_some());
    let bytes = state.to_canonical_bytes().expect("encodes");
    assert_eq!(
        SafetyState::from_canonical_bytes(&bytes).expect("decodes"),
        state
    );
    let mut too_many = state.clone();
    too_many.signed_votes = vec![
        state.signed_votes[0].clone();
        pharmalink_consensus::engine::SIGNED_VOTES_KEPT_MAX + 1
    ];
    assert!(too_many.to_canonical_bytes().is_err());
}

#[test]
fn messages_round_trip_through_their_canonical_bytes_and_malformed_ones_are_refused() {
    use pharmalink_ledger::Canonical;
    let net = Net::new();
    let proposal = net.proposal(0, 1, net.block(0, 1, 0));
    let vote = Message::Vote(net.vote(VoteKind::Precommit, 1, 0, None, 2));
    for message in [proposal.clone(), vote] {
        let bytes = message.to_canonical_bytes().expect("encodes");
        assert_eq!(
            Message::from_canonical_bytes(&bytes).expect("decodes"),
            message
        );
    }
    let Message::Proposal(mut bad) = proposal else {
        unreachable!()
    };
    bad.proposal.pol_round = Some(0);
    assert!(
        Message::Proposal(bad).to_canonical_bytes().is_err(),
        "pol_round must be before the round"
    );
}

/// `Config::wait_for_txs` (an idle chain makes no blocks): round 0's propose timeout starts only
/// once there is something to decide at the height.
#[test]
fn waiting_for_transactions_round_0_starts_once_there_is_something_to_decide() {
    let mut net = Net::new();
    net.config.wait_for_txs = true;
    let (me, proposer) = voter_and_proposer(&net);
    let third = (0..4)
        .find(|i| *i != me && *i != proposer)
        .expect("four validators");
    let propose_timeout = |height: u64| {
        move |e: &Effect| {
            matches!(e, Effect::ScheduleTimeout { timeout, .. }
                if timeout.kind == TimeoutKind::Propose && timeout.round == 0 && timeout.height == height)
        }
    };
    // Nothing to decide: no propose timeout for a voter, nor for the proposer, which is asked
    // for a value as usual (its host answers once there is one).
    let mut voter = net.engine(me, None);
    assert!(!voter.start().iter().any(propose_timeout(1)));
    assert!(voter.waiting_for_txs());
    let mut leader = net.engine(proposer, None);
    let start = leader.start();
    assert!(!start.iter().any(propose_timeout(1)), "{start:?}");
    assert!(start.iter().any(|e| matches!(
        e,
        Effect::RequestValue {
            height: 1,
            round: 0
        }
    )));
    assert!(leader.waiting_for_txs());
    // Transactions reported for another height change nothing; for this one the timeout
    // starts, once.
    assert!(voter.handle(Input::TxsAvailable { height: 2 }).is_empty());
    let effects = voter.handle(Input::TxsAvailable { height: 1 });
    assert_eq!(
        effects.iter().filter(|e| propose_timeout(1)(e)).count(),
        1,
        "{effects:?}"
    );
    assert!(!voter.waiting_for_txs());
    assert!(voter.handle(Input::TxsAvailable { height: 1 }).is_empty());
    // Another validator's message of the height starts it as well: its sender has something to
    // decide (transactions that did not reach us, say) and will vote.
    let mut bystander = net.engine(third, None);
    bystander.start();
    let effects = bystander.handle(Input::Message(Message::Vote(net.vote(
        VoteKind::Prevote,
        1,
        0,
        None,
        me,
    ))));
    assert!(effects.iter().any(propose_timeout(1)), "{effects:?}");
    assert!(!bystander.waiting_for_txs());
    // Stuck at a height for a rebroadcast period: ask peers for it, ahead or not (on an idle
    // chain nobody sends messages of later heights).
    let mut lagging = net.engine(third, None);
    lagging.start();
    let effects = lagging.handle(Input::Timeout(pharmalink_consensus::Timeout {
        height: 1,
        round: 0,
        kind: TimeoutKind::Rebroadcast,
    }));
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::RequestSync { from_height: 1 })),
        "{effects:?}"
    );
    // Each height waits anew: after a decision (here from sync) the next one waits too.
    let others: Vec<usize> = (0..4).filter(|i| *i != me).collect();
    let block = net.block(0, proposer, 0);
    let effects = voter.handle(Input::SyncedBlock {
        certificate: certificate(&net, &block, 0, &others),
        block,
    });
    assert!(effects.iter().any(|e| matches!(e, Effect::Decide { .. })));
    assert_eq!(voter.height(), 2);
    assert!(voter.waiting_for_txs());
    assert!(!effects.iter().any(propose_timeout(2)), "{effects:?}");
    let effects = voter.handle(Input::TxsAvailable { height: 2 });
    assert!(effects.iter().any(propose_timeout(2)), "{effects:?}");
}
