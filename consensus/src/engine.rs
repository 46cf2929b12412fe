//! The multi-height driver around `state_machine`: checks and stores messages, keeps the vote
//! tallies, evaluates the paper's "upon" guards, signs (guarded by the persisted last-signed step),
//! assembles commit certificates, catches up through block sync, and keeps double-sign evidence.
//!
//! The host drives it: `start()` once, then `handle(input)` for every input; both return effects
//! that the host must execute in order (see `Effect`).

use crate::crypto::{Signer, Verifier};
use crate::proposer::ProposerSchedule;
use crate::state_machine::{apply, RoundInput, RoundOutput, RoundState, RuleSwitches};
use crate::types::{
    Evidence, Height, Message, Proposal, Round, SignedProposal, SignedVote, Step, ValidatorIndex,
    Vote, MESSAGE_BYTES_MAX,
};
use crate::votes::{AddOutcome, VoteKeeper, ROUNDS_KEPT_MAX, VALUES_PER_VALIDATOR_MAX};
use borsh::{BorshDeserialize, BorshSerialize};
use pharmalink_ledger::limits::VALIDATORS_MAX;
use pharmalink_ledger::{
    Block, Canonical, CommitCertificate, CommitSignature, Hash, ValidatorSet, VoteKind,
};
use std::collections::{BTreeMap, BTreeSet};

/// Heights above the current one whose messages are buffered (others only hint that we are behind).
pub const FUTURE_HEIGHTS_MAX: u64 = 2;
/// Buffered messages for future heights, in all.
pub const FUTURE_MESSAGES_MAX: usize = 1024;
/// Buffered proposals (whole blocks) for future heights, in all: the byte bound of the buffer.
pub const FUTURE_PROPOSALS_MAX: usize = 2 * FUTURE_HEIGHTS_MAX as usize;
/// Buffered messages for future heights, per sender (a Byzantine validator cannot crowd out others).
pub const FUTURE_MESSAGES_PER_VALIDATOR_MAX: usize = 8;
/// Rounds above the current one whose votes and proposals are stored. Messages of higher rounds
/// only raise their sender's highest round, which is what the round skip (L55) needs.
pub const ROUND_AHEAD_WINDOW: Round = 4;
/// Proposals kept per round: the first, and one conflicting one (equivocation) so a node can
/// still decide whichever of the two gathers a quorum.
pub const PROPOSALS_PER_ROUND_MAX: usize = 2;
/// Verdicts on proposed blocks kept per height: one per stored proposal, plus the restored block.
pub const VERDICTS_MAX: usize = ROUNDS_KEPT_MAX * PROPOSALS_PER_ROUND_MAX + 1;
/// Own votes of the current height kept in the safety state (the latest ones): a restarted
/// validator resends them, so validators still in earlier rounds can complete those rounds.
pub const SIGNED_VOTES_KEPT_MAX: usize = 2 * ROUNDS_KEPT_MAX;
/// Pieces of evidence kept; later ones are still emitted to the host, but not kept here.
pub const EVIDENCE_MAX: usize = 256;
/// Rule evaluations per input: a bound on the inner loop (each rule changes the round state, so
/// a handful suffice; hitting the bound is an invariant violation that stops the loop).
pub const RULE_STEPS_MAX: usize = 256;

/// Timeouts grow linearly per round, `base + round * delta`, capped at `max_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeoutConfig {
    pub propose_base_ms: u64,
    pub propose_delta_ms: u64,
    pub prevote_base_ms: u64,
    pub prevote_delta_ms: u64,
    pub precommit_base_ms: u64,
    pub precommit_delta_ms: u64,
    /// Cap on any step timeout: after a long partition rounds are high, and uncapped timeouts
    /// would make recovery as slow as the partition was long.
    pub max_ms: u64,
    /// Period after which a validator stuck at one height resends its latest signed messages
    /// (the paper assumes gossip delivers every message eventually; dropped packets don't).
    pub rebroadcast_ms: u64,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        TimeoutConfig {
            propose_base_ms: 3000,
            propose_delta_ms: 500,
            prevote_base_ms: 1000,
            prevote_delta_ms: 500,
            precommit_base_ms: 1000,
            precommit_delta_ms: 500,
            max_ms: 30_000,
            rebroadcast_ms: 5000,
        }
    }
}

impl TimeoutConfig {
    pub fn duration_ms(&self, kind: TimeoutKind, round: Round) -> u64 {
        let (base, delta) = match kind {
            TimeoutKind::Propose => (self.propose_base_ms, self.propose_delta_ms),
            TimeoutKind::Prevote => (self.prevote_base_ms, self.prevote_delta_ms),
            TimeoutKind::Precommit => (self.precommit_base_ms, self.precommit_delta_ms),
            TimeoutKind::Rebroadcast => return self.rebroadcast_ms,
        };
        base.saturating_add(delta.saturating_mul(u64::from(round)))
            .min(self.max_ms)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub chain_id: String,
    pub validators: ValidatorSet,
    pub timeouts: TimeoutConfig,
    /// How far ahead of this node's clock a proposed block's timestamp may be.
    pub clock_drift_ms_max: u64,
    /// Idle chains make no blocks (CometBFT's `create_empty_blocks = false`): round 0's propose
    /// timeout starts only once there is something to decide at the height — the host reports
    /// it (`Input::TxsAvailable`: transactions, or a block due for another reason), or another
    /// validator's message of the height arrives. The proposer is asked for a value as usual;
    /// the host answers once `waiting_for_txs()` is false.
    pub wait_for_txs: bool,
    /// Test-only: breaks the lock rule (L23/L29) so the simulator can show that it notices.
    /// Only the simulator's options set it; a node never does.
    #[doc(hidden)]
    pub unsafe_disable_lock_rule: bool,
}

impl Config {
    pub fn new(chain_id: impl Into<String>, validators: ValidatorSet) -> Config {
        Config {
            chain_id: chain_id.into(),
            validators,
            timeouts: TimeoutConfig::default(),
            clock_drift_ms_max: 2000,
            wait_for_txs: false,
            unsafe_disable_lock_rule: false,
        }
    }
}

/// Where the chain stands when the engine starts: the next height to decide and its predecessor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainTip {
    pub next_height: Height,
    /// The hash of block `next_height − 1` (of the genesis document for height 1).
    pub previous_block_hash: Hash,
    pub previous_timestamp_ms: u64,
}

/// What a validator must persist before anything it signed leaves the process. A restarted
/// validator given this state never signs a second, different message for a step it signed.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SafetyState {
    /// The last (height, round, step) signed. Only strictly later steps may be signed.
    pub last_signed: Option<(Height, Round, Step)>,
    /// (lockedRound, lockedValue) at the last signed height.
    pub locked: Option<(Round, Hash)>,
    /// (validRound, validValue) at the last signed height.
    pub valid: Option<(Round, Hash)>,
    /// The votes signed at the last signed height (the latest `SIGNED_VOTES_KEPT_MAX`), so a
    /// restarted validator resends them instead of signing again, and validators still in earlier
    /// rounds of the height can complete them.
    pub signed_votes: Vec<SignedVote>,
    /// The valid value's block and the 2f+1 prevotes of validRound for it (its polka). Not needed
    /// for safety; without them a restarted locked validator could neither re-propose its value
    /// (L16) nor show others the polka (L28), and would prevote nil against everyone forever.
    /// Changes only when validValue does (L42), so a host may store it apart and dedupe.
    pub valid_block: Option<Block>,
    pub valid_polka: Vec<SignedVote>,
}

/// The persisted form is canonical Borsh with limits, like every ledger object.
impl Canonical for SafetyState {
    const WHAT: &'static str = "consensus safety state";
    const BYTES_MAX: usize = MESSAGE_BYTES_MAX + (SIGNED_VOTES_KEPT_MAX + 2 * VALIDATORS_MAX) * 256;

    fn check(&self) -> Result<(), pharmalink_ledger::LedgerError> {
        let invalid =
            |field: &'static str, reason: String| pharmalink_ledger::LedgerError::Invalid {
                what: Self::WHAT,
                field,
                reason,
            };
        if self.signed_votes.len() > SIGNED_VOTES_KEPT_MAX {
            return Err(invalid(
                "signed_votes",
                format!("more than {SIGNED_VOTES_KEPT_MAX}"),
            ));
        }
        if self.valid_polka.len() > VALUES_PER_VALIDATOR_MAX * VALIDATORS_MAX {
            return Err(invalid(
                "valid_polka",
                "more votes than validators can cast".into(),
            ));
        }
        if let Some(block) = &self.valid_block {
            block.check()?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub enum TimeoutKind {
    Propose,
    Prevote,
    Precommit,
    /// Resend the latest signed messages if still at this height.
    Rebroadcast,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timeout {
    pub height: Height,
    pub round: Round,
    pub kind: TimeoutKind,
}

/// What the host feeds the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// The host's clock, in milliseconds; only ever moves the core's clock forward. Used to check
    /// proposed timestamps. Feed it before the messages it should apply to.
    Tick { now_ms: u64 },
    /// A consensus message from a peer (unchecked: the core checks shape, sender, signature).
    Message(Message),
    /// A timeout scheduled by `Effect::ScheduleTimeout` fired.
    Timeout(Timeout),
    /// The answer to `Effect::RequestValue`: a block for (height, round) with this node as proposer.
    ProposeValue {
        height: Height,
        round: Round,
        block: Block,
    },
    /// The answer to `Effect::ValidateProposal`.
    ProposalVerdict {
        height: Height,
        block_hash: Hash,
        valid: bool,
    },
    /// A decided block from a peer, with its certificate (the answer to `Effect::RequestSync`).
    SyncedBlock {
        block: Block,
        certificate: CommitCertificate,
    },
    /// There is something to decide at `height` (transactions are pending, or a block is due
    /// anyway): with `Config::wait_for_txs`, starts round 0's propose timeout.
    TxsAvailable { height: Height },
}

/// What the core asks the host to do. Effects are returned in a Vec and must be executed in
/// order. `PersistSafetyState` must be durable before the host executes any later effect: the
/// `Broadcast` that follows it carries a message signed under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Durably store the safety state (replacing the previous one) BEFORE executing the next effect.
    PersistSafetyState(SafetyState),
    /// Send to every other validator (the core has already counted it for itself).
    Broadcast(Message),
    /// Feed `Input::Timeout(timeout)` after `duration_ms`.
    ScheduleTimeout { timeout: Timeout, duration_ms: u64 },
    /// This node proposes at (height, round): answer with `Input::ProposeValue`.
    RequestValue { height: Height, round: Round },
    /// Check the block against the chain and the application (previous hash, history root, tx
    /// root, state root, transactions); answer with `Input::ProposalVerdict`. The core has already
    /// checked height, chain id, validator set, proposer and timestamp.
    ValidateProposal {
        height: Height,
        round: Round,
        block: Block,
    },
    /// The block is decided, with a certificate of precommits carrying > 2/3 of the voting power,
    /// sorted by validator index. The host appends it (and executes it) before later effects.
    /// `certificate.round` is the decision round, which may be later than `block.header.round`
    /// when a valid value was re-proposed.
    Decide {
        block: Block,
        certificate: CommitCertificate,
    },
    /// We are behind: fetch decided blocks from `from_height` on and feed them as `SyncedBlock`s.
    RequestSync { from_height: Height },
    /// Two conflicting signed messages of one validator.
    RecordEvidence(Evidence),
}

/// Verdicts on proposed blocks, by block hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Pending,
    Valid,
    Invalid,
}

/// "for the first time" memories of rules L34, L36, L47 (all about round_p, so cleared per round).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fired {
    L34,
    L36,
    L47,
    /// Beyond Algorithm 1: 2f+1 precommits for nil (see `next_rule`).
    NilPrecommitQuorum,
}

pub struct Engine<S: Signer, V: Verifier> {
    config: Config,
    signer: S,
    verifier: V,
    my_index: Option<ValidatorIndex>,
    schedule: ProposerSchedule,
    quorum_power: u64,
    one_third_plus_power: u64,
    tip: ChainTip,
    now_ms: u64,
    state: RoundState,
    safety: SafetyState,
    votes: VoteKeeper,
    /// The valid value's block restored from the safety state after a restart.
    restored_block: Option<Block>,
    /// Proposals of the current height by round (from the right proposer, signature checked).
    /// With each proposal, its block's hash (computed once).
    proposals: BTreeMap<Round, Vec<(Hash, SignedProposal)>>,
    verdicts: BTreeMap<Hash, Verdict>,
    fired: BTreeSet<Fired>,
    /// Highest round each validator sent anything for at the current height (L55).
    highest_round: BTreeMap<ValidatorIndex, Round>,
    /// Highest height each validator sent a checked message for, above the current one.
    ahead: BTreeMap<ValidatorIndex, Height>,
    future: Vec<Message>,
    evidence: BTreeMap<(ValidatorIndex, Height, Round, Step), Evidence>,
    /// The height for which a sync was last requested (re-armed by the rebroadcast timeout).
    sync_requested: Option<Height>,
    /// (height, round) for which `RequestValue` is outstanding.
    awaiting_value: Option<(Height, Round)>,
    own_proposal: Option<SignedProposal>,
    /// Something is to be decided at the current height (see `Config::wait_for_txs`).
    txs_available: bool,
    /// Round 0's propose timeout, held back until `txs_available` (with `Config::wait_for_txs`).
    deferred_propose_timeout: bool,
    effects: Vec<Effect>,
}

impl<S: Signer, V: Verifier> Engine<S, V> {
    /// `persisted` is the last `SafetyState` the host stored (None on first start).
    pub fn new(
        config: Config,
        signer: S,
        verifier: V,
        tip: ChainTip,
        persisted: Option<SafetyState>,
    ) -> Engine<S, V> {
        let my_index = config
            .validators
            .index_of(&signer.public_key())
            .map(|i| i as ValidatorIndex);
        let schedule = ProposerSchedule::new(&config.validators);
        let mut state = RoundState::new(tip.next_height);
        let safety = persisted.unwrap_or_default();
        let mut restored_block = None;
        let mut votes = VoteKeeper::default();
        let mut verdicts = BTreeMap::new();
        if let Some((height, round, _)) = safety.last_signed {
            if height == tip.next_height {
                state.round = round;
                state.locked = safety.locked;
                state.valid = safety.valid;
                if let (Some((_, value)), Some(block)) = (safety.valid, &safety.valid_block) {
                    if block.hash() == value {
                        verdicts.insert(value, Verdict::Valid);
                        restored_block = Some(block.clone());
                        for vote in &safety.valid_polka {
                            let power = config
                                .validators
                                .validators
                                .get(vote.vote.validator_index as usize)
                                .map_or(0, |v| v.voting_power);
                            votes.add(vote.clone(), power, &[]);
                        }
                    }
                }
            }
        }
        Engine {
            quorum_power: config.validators.quorum_power(),
            one_third_plus_power: config.validators.one_third_plus_power(),
            config,
            signer,
            verifier,
            my_index,
            schedule,
            tip,
            now_ms: 0,
            state,
            safety,
            votes,
            restored_block,
            proposals: BTreeMap::new(),
            verdicts,
            fired: BTreeSet::new(),
            highest_round: BTreeMap::new(),
            ahead: BTreeMap::new(),
            future: Vec::new(),
            evidence: BTreeMap::new(),
            sync_requested: None,
            awaiting_value: None,
            own_proposal: None,
            txs_available: false,
            deferred_propose_timeout: false,
            effects: Vec::new(),
        }
    }

    pub fn height(&self) -> Height {
        self.state.height
    }
    pub fn round(&self) -> Round {
        self.state.round
    }
    pub fn step(&self) -> Step {
        self.state.step
    }
    pub fn round_state(&self) -> &RoundState {
        &self.state
    }
    pub fn safety_state(&self) -> &SafetyState {
        &self.safety
    }
    pub fn evidence(&self) -> impl Iterator<Item = &Evidence> + '_ {
        self.evidence.values()
    }
    pub fn validator_index(&self) -> Option<ValidatorIndex> {
        self.my_index
    }
    pub fn config(&self) -> &Config {
        &self.config
    }
    pub fn proposer(&self, height: Height, round: Round) -> ValidatorIndex {
        self.schedule.proposer(height, round)
    }
    /// With `Config::wait_for_txs`: nothing to decide at this height yet, so round 0's propose
    /// timeout has not started and a proposer should not answer `RequestValue` yet.
    pub fn waiting_for_txs(&self) -> bool {
        self.config.wait_for_txs && !self.txs_available
    }

    /// Enters the current round (round 0, or the round restored from the safety state) and
    /// resends any votes signed before a restart.
    pub fn start(&mut self) -> Vec<Effect> {
        let round = self.state.round;
        self.schedule_timeout(TimeoutKind::Rebroadcast, round);
        // Votes signed before a restart count for us as they do for everyone else.
        let height = self.state.height;
        for vote in self.safety.signed_votes.clone() {
            if vote.vote.height == height {
                self.accept_current(Message::Vote(vote));
            }
        }
        self.resend_signed_votes(true);
        self.start_round(round);
        self.run_rules();
        std::mem::take(&mut self.effects)
    }

    pub fn handle(&mut self, input: Input) -> Vec<Effect> {
        match input {
            Input::Tick { now_ms } => self.now_ms = self.now_ms.max(now_ms),
            Input::Message(message) => self.on_message(message),
            Input::Timeout(timeout) => self.on_timeout(timeout),
            Input::ProposeValue {
                height,
                round,
                block,
            } => self.on_propose_value(height, round, block),
            Input::ProposalVerdict {
                height,
                block_hash,
                valid,
            } => {
                if height == self.state.height
                    && self.verdicts.get(&block_hash) == Some(&Verdict::Pending)
                {
                    self.verdicts.insert(
                        block_hash,
                        if valid {
                            Verdict::Valid
                        } else {
                            Verdict::Invalid
                        },
                    );
                }
            }
            Input::SyncedBlock { block, certificate } => self.on_synced_block(block, certificate),
            Input::TxsAvailable { height } => {
                if height == self.state.height {
                    self.note_txs_available();
                }
            }
        }
        self.run_rules();
        std::mem::take(&mut self.effects)
    }

    // -----------------------------------------------------------------------------------------
    // Messages

    fn power_of(&self, index: ValidatorIndex) -> u64 {
        self.config
            .validators
            .validators
            .get(index as usize)
            .map_or(0, |v| v.voting_power)
    }

    /// Shape, sender and signature. Votes from non-validators, proposals from anyone but the
    /// round's proposer, and bad signatures are refused.
    fn authentic(&self, message: &Message) -> bool {
        if message.check().is_err() {
            return false;
        }
        let Some(validator) = self
            .config
            .validators
            .validators
            .get(message.sender() as usize)
        else {
            return false;
        };
        let (digest, signature) = match message {
            Message::Vote(v) => (v.vote.signing_digest(&self.config.chain_id), &v.signature),
            Message::Proposal(p) => {
                if p.proposal.proposer_index
                    != self.schedule.proposer(p.proposal.height, p.proposal.round)
                {
                    return false;
                }
                (
                    p.proposal.signing_digest(&self.config.chain_id),
                    &p.signature,
                )
            }
        };
        self.verifier
            .verify(&validator.public_key, &digest, signature)
    }

    fn is_known_vote(&self, vote: &SignedVote) -> bool {
        vote.vote.height == self.state.height
            && self
                .votes
                .round(vote.vote.round)
                .is_some_and(|r| r.tally(vote.vote.kind).contains(&vote.vote))
    }

    fn on_message(&mut self, message: Message) {
        let height = message.height();
        if height < self.state.height {
            return;
        }
        // A re-delivered vote changes nothing; skip the signature check.
        if let Message::Vote(v) = &message {
            if self.is_known_vote(v) {
                return;
            }
        }
        if !self.authentic(&message) {
            return;
        }
        let sender = message.sender();
        if height > self.state.height {
            let seen = self.ahead.entry(sender).or_insert(height);
            *seen = (*seen).max(height);
            let from_sender = self.future.iter().filter(|m| m.sender() == sender).count();
            let is_proposal = matches!(message, Message::Proposal(_));
            let proposals = self
                .future
                .iter()
                .filter(|m| matches!(m, Message::Proposal(_)))
                .count();
            if height <= self.state.height + FUTURE_HEIGHTS_MAX
                && self.future.len() < FUTURE_MESSAGES_MAX
                && from_sender < FUTURE_MESSAGES_PER_VALIDATOR_MAX
                && (!is_proposal || proposals < FUTURE_PROPOSALS_MAX)
                && !self.future.contains(&message)
            {
                self.future.push(message);
            }
            self.maybe_request_sync();
            return;
        }
        self.accept_current(message);
    }

    /// A checked message of the current height.
    fn accept_current(&mut self, message: Message) {
        // Someone is deciding this height: take part even if our mempool is empty (a validator
        // whose transactions did not reach us has started its timeout and will vote).
        self.note_txs_available();
        let sender = message.sender();
        let round = message.round();
        let highest = self.highest_round.entry(sender).or_insert(round);
        *highest = (*highest).max(round);
        if round > self.state.round.saturating_add(ROUND_AHEAD_WINDOW) {
            return;
        }
        match message {
            Message::Vote(vote) => {
                let power = self.power_of(sender);
                let protected: Vec<Round> = self
                    .state
                    .locked
                    .iter()
                    .chain(self.state.valid.iter())
                    .map(|(r, _)| *r)
                    .collect();
                if let AddOutcome::Conflict(evidence) = self.votes.add(vote, power, &protected) {
                    self.record_evidence(*evidence);
                }
            }
            Message::Proposal(proposal) => self.store_proposal(proposal),
        }
    }

    fn store_proposal(&mut self, signed: SignedProposal) {
        let round = signed.proposal.round;
        if !self.proposals.contains_key(&round) && self.proposals.len() >= ROUNDS_KEPT_MAX {
            match self.proposals.keys().next().copied() {
                Some(lowest) if lowest < round => {
                    self.proposals.remove(&lowest);
                }
                _ => return,
            }
        }
        let hash = signed.proposal.block_hash();
        let stored = self.proposals.entry(round).or_default();
        if stored.iter().any(|(_, p)| p == &signed) {
            return;
        }
        let conflict = stored.first().map(|(_, p)| p.clone());
        if stored.len() < PROPOSALS_PER_ROUND_MAX {
            stored.push((hash, signed.clone()));
        }
        if let Some(first) = conflict {
            self.record_evidence(Evidence::DoubleProposal {
                first: Box::new(first),
                second: Box::new(signed.clone()),
            });
        }
        if self.verdicts.contains_key(&hash) {
            return;
        }
        if self.verdicts.len() >= VERDICTS_MAX {
            // Forget verdicts on blocks no stored proposal carries any more (their rounds were evicted).
            let proposals = &self.proposals;
            let restored = self.restored_block.as_ref().map(Block::hash);
            self.verdicts.retain(|h, _| {
                Some(*h) == restored || proposals.values().flatten().any(|(p, _)| p == h)
            });
        }
        if self.precheck_block(&signed.proposal) {
            self.verdicts.insert(hash, Verdict::Pending);
            self.effects.push(Effect::ValidateProposal {
                height: signed.proposal.height,
                round,
                block: signed.proposal.block,
            });
        } else {
            self.verdicts.insert(hash, Verdict::Invalid);
        }
    }

    /// The checks the core can make itself; the host checks the chain links and the application.
    fn precheck_block(&self, proposal: &Proposal) -> bool {
        let header = &proposal.block.header;
        let header_round_ok = match proposal.pol_round {
            None => header.round == proposal.round,
            Some(pol_round) => header.round <= pol_round,
        };
        let original_proposer = self.schedule.proposer(header.height, header.round);
        header.height == proposal.height
            && header_round_ok
            && header.chain_id == self.config.chain_id
            && header.validator_set_hash == self.config.validators.hash()
            && header.previous_block_hash == self.tip.previous_block_hash
            && self
                .config
                .validators
                .validators
                .get(original_proposer as usize)
                .map(|v| v.public_key)
                == Some(header.proposer)
            && header.timestamp_ms >= self.tip.previous_timestamp_ms
            && header.timestamp_ms <= self.now_ms.saturating_add(self.config.clock_drift_ms_max)
    }

    fn record_evidence(&mut self, evidence: Evidence) {
        let key = evidence.key();
        if self.evidence.contains_key(&key) {
            return;
        }
        if self.evidence.len() < EVIDENCE_MAX {
            self.evidence.insert(key, evidence.clone());
        }
        self.effects.push(Effect::RecordEvidence(evidence));
    }

    /// Requests blocks at once when validators holding f+1 power are ahead (then a correct
    /// validator has decided this height). At most once per height per rebroadcast period (whose
    /// timeout asks regardless of who is ahead).
    fn maybe_request_sync(&mut self) {
        if self.sync_requested == Some(self.state.height) {
            return;
        }
        let height = self.state.height;
        let power: u64 = self
            .ahead
            .iter()
            .filter(|(_, h)| **h > height)
            .map(|(i, _)| self.power_of(*i))
            .sum();
        if power >= self.one_third_plus_power {
            self.request_sync();
        }
    }

    fn request_sync(&mut self) {
        if self.sync_requested != Some(self.state.height) {
            self.sync_requested = Some(self.state.height);
            self.effects.push(Effect::RequestSync {
                from_height: self.state.height,
            });
        }
    }

    fn on_timeout(&mut self, timeout: Timeout) {
        if timeout.height != self.state.height {
            return;
        }
        let round = timeout.round;
        let input = match timeout.kind {
            TimeoutKind::Propose => RoundInput::TimeoutPropose { round },
            TimeoutKind::Prevote => RoundInput::TimeoutPrevote { round },
            TimeoutKind::Precommit => RoundInput::TimeoutPrecommit { round },
            TimeoutKind::Rebroadcast => {
                // Stuck at this height for a whole period: ask peers for it whether or not we
                // know anyone is ahead. On an idle chain (`wait_for_txs`) nobody sends messages
                // of later heights, so a validator that missed a decision (or a partition's
                // worth of them) would otherwise not learn it until the next transaction.
                self.sync_requested = None;
                self.request_sync();
                if let Some(proposal) = self.own_proposal.clone() {
                    self.effects
                        .push(Effect::Broadcast(Message::Proposal(proposal)));
                }
                // Our valid value's polka: whoever re-proposes it needs the others to have seen it (L28).
                if let Some((valid_round, value)) = self.state.valid {
                    self.relay_polka(valid_round, value);
                }
                self.resend_signed_votes(false);
                self.schedule_timeout(TimeoutKind::Rebroadcast, self.state.round);
                return;
            }
        };
        self.apply_input(input);
    }

    /// Resends the prevotes of `round` for `value` (signed by their authors; any node may relay
    /// them). The paper's gossip delivers every message eventually; a validator that missed the
    /// polka of a re-proposed value (L28) would otherwise prevote nil forever against the locked.
    fn relay_polka(&mut self, round: Round, value: Hash) {
        let Some(votes) = self.votes.round(round) else {
            return;
        };
        let relayed: Vec<SignedVote> = votes.prevotes.votes_for(&Some(value)).cloned().collect();
        for vote in relayed {
            self.effects.push(Effect::Broadcast(Message::Vote(vote)));
        }
    }

    /// Resends what this validator signed at the current height that others may be missing:
    /// with `everything` (after a restart) every persisted vote of the height; otherwise its votes
    /// of the current round and of every round in which some validator was last heard from (a
    /// lagging validator needs them to reach its quorum; timeouts and L55 then bring it forward).
    fn resend_signed_votes(&mut self, everything: bool) {
        let height = self.state.height;
        let Some(me) = self.my_index else { return };
        let mut rounds: BTreeSet<Round> = self
            .highest_round
            .iter()
            .filter(|(v, r)| **v != me && **r < self.state.round)
            .map(|(_, r)| *r)
            .collect();
        rounds.insert(self.state.round);
        let mut resend: Vec<SignedVote> = self
            .safety
            .signed_votes
            .iter()
            .filter(|v| v.vote.height == height && (everything || rounds.contains(&v.vote.round)))
            .cloned()
            .collect();
        for round in rounds {
            for vote in self.votes.votes_of(me, round) {
                if !resend.contains(&vote) {
                    resend.push(vote);
                }
            }
        }
        for vote in resend {
            self.effects.push(Effect::Broadcast(Message::Vote(vote)));
        }
    }

    fn on_propose_value(&mut self, height: Height, round: Round, block: Block) {
        if self.awaiting_value != Some((height, round))
            || height != self.state.height
            || round != self.state.round
        {
            return;
        }
        let header = &block.header;
        if header.height != height
            || header.round != round
            || header.proposer != self.signer.public_key()
        {
            return;
        }
        self.awaiting_value = None;
        self.sign_proposal(round, block, None);
    }

    fn on_synced_block(&mut self, block: Block, certificate: CommitCertificate) {
        let height = self.state.height;
        if block.header.height != height
            || certificate.height != height
            || certificate.block_hash != block.hash()
            || block.header.previous_block_hash != self.tip.previous_block_hash
            || block.header.round > certificate.round
        {
            return;
        }
        if verify_certificate(
            &self.config.chain_id,
            &self.config.validators,
            &certificate,
            &self.verifier,
        )
        .is_err()
        {
            return;
        }
        // L49 for a block decided elsewhere: the certificate is 2f+1 precommits for it.
        self.state.decided = true;
        self.decide(block, certificate);
    }

    // -----------------------------------------------------------------------------------------
    // Rules

    fn run_rules(&mut self) {
        for _ in 0..RULE_STEPS_MAX {
            let Some(input) = self.next_rule() else {
                return;
            };
            self.apply_input(input);
        }
    }

    fn verdict(&self, hash: &Hash) -> Option<Verdict> {
        self.verdicts.get(hash).copied()
    }

    /// A block of this height known to be valid, from any proposal.
    fn valid_block(&self, hash: &Hash) -> Option<&Block> {
        if self.verdict(hash) != Some(Verdict::Valid) {
            return None;
        }
        self.proposals
            .values()
            .flatten()
            .find(|(h, _)| h == hash)
            .map(|(_, p)| &p.proposal.block)
            .or_else(|| self.restored_block.as_ref().filter(|b| &b.hash() == hash))
    }

    /// The first rule whose guard holds, in the order: decide, skip, then the current round's.
    fn next_rule(&mut self) -> Option<RoundInput> {
        if self.state.decided {
            return None;
        }
        let quorum = self.quorum_power;
        let round = self.state.round;
        let step = self.state.step;

        // L49: a proposal and 2f+1 precommits for it in any round r.
        let mut missing_block = false;
        for (r, votes) in self.votes.rounds() {
            for hash in votes.precommits.blocks_with(quorum) {
                if self.valid_block(&hash).is_some() {
                    return Some(RoundInput::ProposalAndCommit {
                        round: *r,
                        value: hash,
                    });
                }
                if self.verdict(&hash) != Some(Verdict::Pending) {
                    missing_block = true;
                }
            }
        }
        if missing_block {
            // Decided elsewhere, but we lack the block (or judged it invalid): fetch it with its certificate.
            self.request_sync();
        }

        // L55: f+1 power at rounds above round_p. Each validator counts at its highest round.
        let mut by_round: Vec<(Round, u64)> = self
            .highest_round
            .iter()
            .map(|(i, r)| (*r, self.power_of(*i)))
            .collect();
        by_round.sort_unstable_by_key(|(r, _)| std::cmp::Reverse(*r));
        let mut power = 0;
        for (r, p) in by_round {
            if r <= round {
                break;
            }
            power += p;
            if power >= self.one_third_plus_power {
                return Some(RoundInput::SkipRound { round: r });
            }
        }

        let current = self.votes.round(round);
        let prevotes = current.map(|v| &v.prevotes);

        // L22 / L28: the round's (first) proposal, once its validity is known.
        if step == Step::Propose {
            if let Some((value, first)) = self.proposals.get(&round).and_then(|ps| ps.first()) {
                let value = *value;
                let valid = match self.verdict(&value) {
                    Some(Verdict::Valid) => Some(true),
                    Some(Verdict::Invalid) => Some(false),
                    _ => None,
                };
                if let Some(valid) = valid {
                    match first.proposal.pol_round {
                        None => {
                            return Some(RoundInput::Proposal {
                                round,
                                value,
                                valid,
                            })
                        }
                        Some(pol_round) => {
                            let polka = self
                                .votes
                                .round(pol_round)
                                .map_or(0, |v| v.prevotes.power_for(&Some(value)));
                            if pol_round < round && polka >= quorum {
                                return Some(RoundInput::ProposalWithPolka {
                                    round,
                                    value,
                                    pol_round,
                                    valid,
                                });
                            }
                        }
                    }
                }
            }
        }

        if let Some(prevotes) = prevotes {
            // L36: a valid proposal and 2f+1 prevotes for it, step ≥ prevote, first time.
            if step >= Step::Prevote && !self.fired.contains(&Fired::L36) {
                let polka: Vec<Hash> = prevotes.blocks_with(quorum).collect();
                for hash in polka {
                    if self.valid_block(&hash).is_some() {
                        self.fired.insert(Fired::L36);
                        return Some(RoundInput::ProposalAndPolka { round, value: hash });
                    }
                }
            }
            // L34: 2f+1 prevotes of any kind, step = prevote, first time.
            if step == Step::Prevote
                && prevotes.total_power() >= quorum
                && !self.fired.contains(&Fired::L34)
            {
                self.fired.insert(Fired::L34);
                return Some(RoundInput::PolkaAny { round });
            }
            // L44: 2f+1 prevotes for nil, step = prevote.
            if step == Step::Prevote && prevotes.power_for(&None) >= quorum {
                return Some(RoundInput::PolkaNil { round });
            }
        }
        // L47: 2f+1 precommits of any kind, first time.
        if let Some(votes) = current {
            if votes.precommits.total_power() >= quorum && !self.fired.contains(&Fired::L47) {
                self.fired.insert(Fired::L47);
                return Some(RoundInput::PrecommitAny { round });
            }
            // Beyond Algorithm 1, for liveness only: with 2f+1 precommits for nil no value can
            // gather 2f+1 precommits in this round from correct validators, so waiting out
            // timeoutPrecommit (L47–L48, L65) only delays the next round — typically after a
            // dead proposer. Act as if it expired (L65–L67: StartRound(round + 1)). Safety is
            // untouched: locks and valid values carry over as with the timeout.
            if votes.precommits.power_for(&None) >= quorum
                && !self.fired.contains(&Fired::NilPrecommitQuorum)
            {
                self.fired.insert(Fired::NilPrecommitQuorum);
                return Some(RoundInput::TimeoutPrecommit { round });
            }
        }
        None
    }

    fn switches(&self) -> RuleSwitches {
        RuleSwitches {
            disable_lock_rule: self.config.unsafe_disable_lock_rule,
        }
    }

    fn apply_input(&mut self, input: RoundInput) {
        let switches = self.switches();
        let outputs = apply(&mut self.state, switches, input);
        for output in outputs {
            self.execute(output);
        }
    }

    fn start_round(&mut self, round: Round) {
        if round != self.state.round {
            self.own_proposal = None;
        }
        let is_proposer = self.my_index == Some(self.schedule.proposer(self.state.height, round));
        let previous_round = self.state.round;
        self.apply_input(RoundInput::StartRound { round, is_proposer });
        if self.state.round != previous_round {
            self.fired.clear();
        }
    }

    fn execute(&mut self, output: RoundOutput) {
        match output {
            RoundOutput::Propose { round, valid } => {
                let block = valid.and_then(|(_, hash)| self.valid_block(&hash).cloned());
                match (valid, block) {
                    (Some((valid_round, _)), Some(block)) => {
                        self.sign_proposal(round, block, Some(valid_round))
                    }
                    // No valid value, or we lost its block in a restart: ask the host for a new one.
                    _ => {
                        self.awaiting_value = Some((self.state.height, round));
                        self.effects.push(Effect::RequestValue {
                            height: self.state.height,
                            round,
                        });
                    }
                }
            }
            RoundOutput::Vote { kind, round, value } => self.sign_vote(kind, round, value),
            RoundOutput::ScheduleTimeout {
                step: Step::Propose,
                round: 0,
            } if self.waiting_for_txs() => self.deferred_propose_timeout = true,
            RoundOutput::ScheduleTimeout { step, round } => {
                let kind = match step {
                    Step::Propose => TimeoutKind::Propose,
                    Step::Prevote => TimeoutKind::Prevote,
                    Step::Precommit => TimeoutKind::Precommit,
                };
                self.schedule_timeout(kind, round);
            }
            RoundOutput::Decide { round, value } => {
                let Some(block) = self.valid_block(&value).cloned() else {
                    return;
                };
                let signatures: Vec<CommitSignature> = self
                    .votes
                    .round(round)
                    .map(|v| {
                        v.precommits
                            .votes_for(&Some(value))
                            .map(|s| CommitSignature {
                                validator_index: s.vote.validator_index,
                                signature: s.signature,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let certificate = CommitCertificate {
                    height: self.state.height,
                    round,
                    block_hash: value,
                    signatures,
                };
                self.decide(block, certificate);
            }
            RoundOutput::NewRound { round } => self.start_round(round),
        }
    }

    /// There is something to decide at this height: start round 0's propose timeout if it was
    /// held back.
    fn note_txs_available(&mut self) {
        self.txs_available = true;
        if std::mem::take(&mut self.deferred_propose_timeout) && self.state.round == 0 {
            self.schedule_timeout(TimeoutKind::Propose, 0);
        }
    }

    fn schedule_timeout(&mut self, kind: TimeoutKind, round: Round) {
        let duration_ms = self.config.timeouts.duration_ms(kind, round);
        self.effects.push(Effect::ScheduleTimeout {
            timeout: Timeout {
                height: self.state.height,
                round,
                kind,
            },
            duration_ms,
        });
    }

    // -----------------------------------------------------------------------------------------
    // Signing: only strictly after the persisted last-signed step, persisted before sending.

    fn may_sign(&self, height: Height, round: Round, step: Step) -> bool {
        self.my_index.is_some()
            && self
                .safety
                .last_signed
                .is_none_or(|last| (height, round, step) > last)
    }

    fn persist_signed(&mut self, height: Height, round: Round, step: Step) {
        let same_height = self.safety.last_signed.is_some_and(|(h, _, _)| h == height);
        if !same_height {
            self.safety.signed_votes.clear();
        }
        self.safety.last_signed = Some((height, round, step));
        self.safety.locked = self.state.locked;
        if self.safety.valid != self.state.valid
            || self.safety.valid_block.as_ref().map(|b| b.header.height) != Some(height)
        {
            self.safety.valid = self.state.valid;
            self.safety.valid_block = None;
            self.safety.valid_polka.clear();
            if let Some((valid_round, value)) = self.state.valid {
                self.safety.valid_block = self.valid_block(&value).cloned();
                self.safety.valid_polka = self
                    .votes
                    .round(valid_round)
                    .map(|v| v.prevotes.votes_for(&Some(value)).cloned().collect())
                    .unwrap_or_default();
            }
        }
    }

    fn sign_vote(&mut self, kind: VoteKind, round: Round, value: Option<Hash>) {
        let height = self.state.height;
        let step = Step::of_vote(kind);
        let Some(index) = self.my_index else { return };
        let signed = if self.may_sign(height, round, step) {
            let vote = Vote {
                kind,
                height,
                round,
                value,
                validator_index: index,
            };
            let signature = self
                .signer
                .sign(&vote.signing_digest(&self.config.chain_id));
            let signed = SignedVote { vote, signature };
            self.persist_signed(height, round, step);
            self.safety.signed_votes.push(signed.clone());
            if self.safety.signed_votes.len() > SIGNED_VOTES_KEPT_MAX {
                self.safety.signed_votes.remove(0);
            }
            self.effects
                .push(Effect::PersistSafetyState(self.safety.clone()));
            signed
        } else {
            // Signed this step before a restart: resend exactly that vote, never a second one.
            let Some(previous) = self
                .safety
                .signed_votes
                .iter()
                .find(|v| v.vote.height == height && v.vote.round == round && v.vote.kind == kind)
                .cloned()
            else {
                return;
            };
            previous
        };
        self.effects
            .push(Effect::Broadcast(Message::Vote(signed.clone())));
        self.accept_current(Message::Vote(signed));
    }

    fn sign_proposal(&mut self, round: Round, block: Block, pol_round: Option<Round>) {
        let height = self.state.height;
        let Some(index) = self.my_index else { return };
        if !self.may_sign(height, round, Step::Propose) {
            return;
        }
        let proposal = Proposal {
            height,
            round,
            block,
            pol_round,
            proposer_index: index,
        };
        let signature = self
            .signer
            .sign(&proposal.signing_digest(&self.config.chain_id));
        let signed = SignedProposal {
            proposal,
            signature,
        };
        self.persist_signed(height, round, Step::Propose);
        self.effects
            .push(Effect::PersistSafetyState(self.safety.clone()));
        self.effects
            .push(Effect::Broadcast(Message::Proposal(signed.clone())));
        if let Some(valid_round) = pol_round {
            self.relay_polka(valid_round, signed.proposal.block_hash());
        }
        // Our own value is valid by construction (the host built it).
        self.verdicts
            .insert(signed.proposal.block_hash(), Verdict::Valid);
        self.own_proposal = Some(signed.clone());
        self.store_proposal(signed);
    }

    // -----------------------------------------------------------------------------------------
    // Heights

    /// L49–L54: emit the decision, then move to the next height and start its round 0.
    fn decide(&mut self, block: Block, certificate: CommitCertificate) {
        let height = self.state.height;
        self.tip = ChainTip {
            next_height: height + 1,
            previous_block_hash: certificate.block_hash,
            previous_timestamp_ms: block.header.timestamp_ms,
        };
        self.txs_available = false;
        self.deferred_propose_timeout = false;
        self.effects.push(Effect::Decide { block, certificate });
        self.state = RoundState::new(height + 1);
        self.votes = VoteKeeper::default();
        self.restored_block = None;
        self.proposals.clear();
        self.verdicts.clear();
        self.fired.clear();
        self.highest_round.clear();
        self.awaiting_value = None;
        self.own_proposal = None;
        let next = height + 1;
        self.ahead.retain(|_, h| *h > next);
        let buffered = std::mem::take(&mut self.future);
        for message in buffered {
            match message.height() {
                h if h == next => self.accept_current(message),
                h if h > next => self.future.push(message),
                _ => {}
            }
        }
        self.schedule_timeout(TimeoutKind::Rebroadcast, 0);
        self.start_round(0);
        self.maybe_request_sync();
    }
}

/// Checks a commit certificate like `CommitCertificate::verify`, but through the host's
/// `Verifier` (so a host may cache) and one signature at a time.
pub fn verify_certificate<V: Verifier + ?Sized>(
    chain_id: &str,
    validators: &ValidatorSet,
    certificate: &CommitCertificate,
    verifier: &V,
) -> Result<(), String> {
    certificate.check().map_err(|e| e.to_string())?;
    if certificate.signatures.len() > VALIDATORS_MAX {
        return Err("too many signatures".into());
    }
    let digest = pharmalink_ledger::vote_signing_digest(
        chain_id,
        VoteKind::Precommit,
        certificate.height,
        certificate.round,
        Some(certificate.block_hash),
    );
    let mut power: u64 = 0;
    for signature in &certificate.signatures {
        let validator = validators
            .validators
            .get(signature.validator_index as usize)
            .ok_or_else(|| {
                format!(
                    "validator index {} is outside the set",
                    signature.validator_index
                )
            })?;
        if !verifier.verify(&validator.public_key, &digest, &signature.signature) {
            return Err(format!(
                "signature of validator {} does not verify",
                signature.validator_index
            ));
        }
        power += validator.voting_power;
    }
    if power < validators.quorum_power() {
        return Err(format!(
            "voting power {power} is below the quorum of {}",
            validators.quorum_power()
        ));
    }
    Ok(())
}
