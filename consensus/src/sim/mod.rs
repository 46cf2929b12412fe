//! The deterministic simulator: N validators (consensus engine + store + trivial application) on
//! one thread, a simulated clock, a network with delay, loss, duplication, reordering and
//! partitions, crashes with restart from persisted state, and up to f Byzantine validators.
//! Every random choice comes from one ChaCha8 stream seeded by the seed; events are ordered by
//! (time, sequence number); no hash-map iteration. The same seed gives the same trace.

pub mod app;
pub mod check;
pub mod faults;

use crate::engine::{
    ChainTip, Config, Effect, Engine, Input, SafetyState, Timeout, TimeoutConfig, TimeoutKind,
};
use crate::types::{Message, SignedProposal, SignedVote, ValidatorIndex};
use app::{CachedVerifier, SimChain, SIM_GENESIS_TIME_MS};
use check::{Decision, Property, Record, Violation};
use faults::{below, between, FaultClass, FaultPlan};
use pharmalink_ledger::{Block, CommitCertificate, Genesis, Hash, SigningKey};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::rc::Rc;

/// Validators in one simulation.
pub const SIM_VALIDATORS_MAX: usize = 64;
/// Heights one seed may be asked to decide.
pub const SIM_HEIGHTS_MAX: u64 = 100_000;
/// After the faults heal, an honest node below the target must decide at least this often.
pub const LIVENESS_GAP_MS_MAX: u64 = 30_000;
/// Events processed per seed (a bound on the main loop).
pub const EVENTS_PER_SEED_MAX: u64 = 20_000_000;
/// Inputs one node processes in reaction to one event (its answers to its own effects).
pub const INPUTS_PER_EVENT_MAX: usize = 64;
/// Blocks in one sync response.
pub const SYNC_BATCH_MAX: u64 = 8;
/// Trace events kept per seed (the earliest ones; later ones are counted, not kept).
pub const TRACE_EVENTS_MAX: usize = 200_000;
/// Lines of trace printed for a failing seed.
pub const TRACE_PRINT_LINES_MAX: usize = 120;
/// One-way network delay before faults add to it.
pub const NETWORK_DELAY_MS_MIN: u64 = 5;
pub const NETWORK_DELAY_MS_MAX: u64 = 40;

/// Timeouts used in simulation: short, since the simulated network is fast.
pub fn sim_timeouts() -> TimeoutConfig {
    TimeoutConfig {
        propose_base_ms: 300,
        propose_delta_ms: 100,
        prevote_base_ms: 150,
        prevote_delta_ms: 50,
        precommit_base_ms: 150,
        precommit_delta_ms: 50,
        max_ms: 3000,
        rebroadcast_ms: 600,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimOptions {
    pub validators: usize,
    /// Heights every honest node must decide for the seed to pass.
    pub heights: u64,
    /// Fault classes each seed may draw from (each is on with probability 1/2).
    pub faults: BTreeSet<FaultClass>,
    /// Unequal voting powers (1, 2, 3, 1, 2, 3 …) instead of 1 each.
    pub weighted_power: bool,
    /// Record every delivery and effect in the trace (for debugging one seed; slow).
    pub verbose: bool,
    /// Test-only: validators ignore their lock (L23/L29). The simulator must then find violations.
    #[doc(hidden)]
    pub unsafe_disable_lock_rule: bool,
    /// Test-only: crashed validators restart without their persisted safety state.
    #[doc(hidden)]
    pub unsafe_forget_safety_state: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            validators: 4,
            heights: 50,
            faults: FaultClass::ALL.into_iter().collect(),
            weighted_power: false,
            verbose: false,
            unsafe_disable_lock_rule: false,
            unsafe_forget_safety_state: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceEvent {
    Plan(String),
    Decide {
        t: u64,
        node: usize,
        height: u64,
        round: u32,
        hash: Hash,
        block_round: u32,
    },
    Round {
        t: u64,
        node: usize,
        height: u64,
        round: u32,
    },
    Crash {
        t: u64,
        node: usize,
        mid_step: bool,
    },
    Restart {
        t: u64,
        node: usize,
        height: u64,
    },
    PartitionStart {
        t: u64,
        side: Vec<bool>,
    },
    PartitionEnd {
        t: u64,
    },
    Heal {
        t: u64,
    },
    Byzantine {
        t: u64,
        node: usize,
        action: &'static str,
        height: u64,
        round: u32,
    },
    Evidence {
        t: u64,
        node: usize,
        offender: ValidatorIndex,
        height: u64,
        round: u32,
    },
    Violation(String),
    /// A delivery or an effect (verbose runs only).
    Detail {
        t: u64,
        node: usize,
        text: String,
    },
    /// A node's state when the run ended.
    Final {
        node: usize,
        state: String,
    },
}

impl TraceEvent {
    fn height(&self) -> Option<u64> {
        match self {
            TraceEvent::Decide { height, .. }
            | TraceEvent::Round { height, .. }
            | TraceEvent::Byzantine { height, .. }
            | TraceEvent::Evidence { height, .. } => Some(*height),
            _ => None,
        }
    }
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceEvent::Plan(text) => write!(f, "plan {text}"),
            TraceEvent::Decide {
                t,
                node,
                height,
                round,
                hash,
                block_round,
            } => {
                write!(
                    f,
                    "t={t} n{node} decide h{height} r{round} {} (proposed r{block_round})",
                    check::short(hash)
                )
            }
            TraceEvent::Round {
                t,
                node,
                height,
                round,
            } => write!(f, "t={t} n{node} round h{height} r{round}"),
            TraceEvent::Crash { t, node, mid_step } => {
                let how = if *mid_step {
                    " in the middle of a step"
                } else {
                    ""
                };
                write!(f, "t={t} n{node} crash{how}")
            }
            TraceEvent::Restart { t, node, height } => {
                write!(f, "t={t} n{node} restart at h{height}")
            }
            TraceEvent::PartitionStart { t, side } => {
                let a: Vec<String> = side
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| !**s)
                    .map(|(i, _)| i.to_string())
                    .collect();
                let b: Vec<String> = side
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| **s)
                    .map(|(i, _)| i.to_string())
                    .collect();
                write!(
                    f,
                    "t={t} partition {{{}}} | {{{}}}",
                    a.join(","),
                    b.join(",")
                )
            }
            TraceEvent::PartitionEnd { t } => write!(f, "t={t} partition healed"),
            TraceEvent::Heal { t } => write!(f, "t={t} all network faults healed"),
            TraceEvent::Byzantine {
                t,
                node,
                action,
                height,
                round,
            } => write!(f, "t={t} n{node} byzantine {action} h{height} r{round}"),
            TraceEvent::Evidence {
                t,
                node,
                offender,
                height,
                round,
            } => {
                write!(
                    f,
                    "t={t} n{node} evidence against v{offender} h{height} r{round}"
                )
            }
            TraceEvent::Violation(text) => write!(f, "VIOLATION {text}"),
            TraceEvent::Final { node, state } => write!(f, "end n{node} {state}"),
            TraceEvent::Detail { t, node, text } => write!(f, "t={t} n{node} {text}"),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeedStats {
    /// Point-to-point messages sent (consensus and sync), counting each receiver.
    pub messages: u64,
    /// Decisions by honest nodes (a height decided by 4 nodes counts 4).
    pub node_decisions: u64,
    /// The lowest chain height among honest nodes at the end.
    pub heights: u64,
    pub evidence: u64,
    pub events: u64,
    pub simulated_ms: u64,
    /// Fault classes drawn for this seed.
    pub planned: BTreeSet<FaultClass>,
    /// Fault classes that actually did something (a message lost, a node crashed, …).
    pub exercised: BTreeSet<FaultClass>,
}

#[derive(Clone, Debug)]
pub struct SeedOutcome {
    pub seed: u64,
    pub stats: SeedStats,
    pub violations: Vec<Violation>,
    pub trace: Vec<TraceEvent>,
}

impl SeedOutcome {
    pub fn safety_violations(&self) -> usize {
        self.violations
            .iter()
            .filter(|v| v.property.is_safety())
            .count()
    }
    pub fn liveness_failures(&self) -> usize {
        self.violations
            .iter()
            .filter(|v| !v.property.is_safety())
            .count()
    }
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The whole trace, one event per line.
    pub fn full_trace(&self) -> String {
        let mut out = String::new();
        for event in &self.trace {
            out.push_str(&event.to_string());
            out.push('\n');
        }
        out
    }

    /// The seed, the violations, and the trace cut to what explains them: the plan, the faults,
    /// and the events of the violated heights.
    pub fn failure_report(&self) -> String {
        let heights: BTreeSet<u64> = self.violations.iter().map(|v| v.height).collect();
        let relevant: Vec<String> = self
            .trace
            .iter()
            .filter(|e| match e.height() {
                Some(h) => heights.contains(&h),
                None => true,
            })
            .map(ToString::to_string)
            .collect();
        let skip = relevant.len().saturating_sub(TRACE_PRINT_LINES_MAX);
        let mut out = format!("sim: seed {} FAILED\n", self.seed);
        for v in &self.violations {
            out.push_str(&format!("  {v}\n"));
        }
        out.push_str(&format!(
            "trace (plan, faults and heights {heights:?}; {skip} earlier lines omitted):\n"
        ));
        for line in &relevant[skip..] {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

/// Packets travel behind an `Rc`; the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum Packet {
    Consensus(Message),
    SyncRequest {
        from_height: u64,
    },
    SyncResponse {
        blocks: Vec<(Block, CommitCertificate)>,
    },
}

#[derive(Clone, Debug)]
enum Event {
    Deliver {
        from: usize,
        to: usize,
        packet: Rc<Packet>,
    },
    Timer {
        node: usize,
        incarnation: u64,
        timeout: Timeout,
    },
    Crash(usize),
    Restart(usize),
    PartitionStart(usize),
    PartitionEnd(usize),
    Heal,
}

struct Node {
    key: SigningKey,
    engine: Option<Engine<SigningKey, CachedVerifier>>,
    incarnation: u64,
    chain: SimChain,
    disk: Option<SafetyState>,
    behaviour: Option<FaultClass>,
    /// For an invalid-block traitor: the invalid block it proposed at a height.
    invalid_block: Option<(u64, Hash)>,
    /// For an equivocating proposer: the (height, round) it proposed at, the peers that got the
    /// real proposal, and the hash of the other block the rest got.
    split: Option<(u64, u32, Vec<usize>, Hash)>,
    /// A crash armed to strike in the middle of the node's next step, after this many effects
    /// (the rest of the step's effects are lost, as in a real process killed mid-write).
    crash_after_effects: Option<usize>,
}

struct World<'a> {
    options: &'a SimOptions,
    rng: ChaCha8Rng,
    plan: FaultPlan,
    genesis: Genesis,
    config: Config,
    verifier: CachedVerifier,
    now_ms: u64,
    sequence: u64,
    queue: BTreeMap<(u64, u64), Event>,
    nodes: Vec<Node>,
    partition: Option<usize>,
    network_faults_on: bool,
    record: Record,
    trace: Vec<TraceEvent>,
    stats: SeedStats,
    violations: Vec<Violation>,
}

/// Voting powers for `validators` nodes.
pub fn powers(validators: usize, weighted: bool) -> Vec<u64> {
    (0..validators)
        .map(|i| if weighted { (i % 3) as u64 + 1 } else { 1 })
        .collect()
}

/// Runs one seed to the end: every honest node at `heights`, or a violation, or the liveness bound.
pub fn run_seed(seed: u64, options: &SimOptions) -> SeedOutcome {
    let validators = options.validators.clamp(1, SIM_VALIDATORS_MAX);
    let heights = options.heights.clamp(1, SIM_HEIGHTS_MAX);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let voting_powers = powers(validators, options.weighted_power);
    let plan = FaultPlan::draw(&mut rng, &options.faults, &voting_powers);
    let genesis = app::genesis(&voting_powers);
    let mut config = Config::new(genesis.chain_id.clone(), genesis.validators.clone());
    config.timeouts = sim_timeouts();
    config.clock_drift_ms_max = 1000;
    config.unsafe_disable_lock_rule = options.unsafe_disable_lock_rule;
    let nodes = (0..validators)
        .map(|i| Node {
            key: app::validator_key(i),
            engine: None,
            incarnation: 0,
            chain: SimChain::new(&genesis),
            disk: None,
            behaviour: plan.byzantine_behaviour(i),
            invalid_block: None,
            split: None,
            crash_after_effects: None,
        })
        .collect();
    let honest: Vec<bool> = (0..validators)
        .map(|i| plan.byzantine_behaviour(i).is_none())
        .collect();
    let mut world = World {
        options,
        rng,
        genesis,
        config,
        verifier: CachedVerifier::default(),
        now_ms: 0,
        sequence: 0,
        queue: BTreeMap::new(),
        nodes,
        partition: None,
        network_faults_on: true,
        record: Record {
            honest,
            decision_times_ms: vec![Vec::new(); validators],
            final_heights: vec![0; validators],
            ..Record::default()
        },
        trace: Vec::new(),
        stats: SeedStats {
            planned: plan.active.clone(),
            ..SeedStats::default()
        },
        violations: Vec::new(),
        plan,
    };
    world.trace(TraceEvent::Plan(describe_plan(
        &world.plan,
        validators,
        heights,
    )));
    world.run(heights);
    world.finish(seed, heights)
}

fn describe_plan(plan: &FaultPlan, validators: usize, heights: u64) -> String {
    let active: Vec<&str> = plan.active.iter().map(|c| c.name()).collect();
    let byzantine: Vec<String> = plan
        .byzantine
        .iter()
        .map(|(n, b)| format!("n{n}:{b}"))
        .collect();
    let crashes: Vec<String> = plan
        .crashes
        .iter()
        .map(|c| format!("n{}@{}-{}", c.node, c.crash_ms, c.restart_ms))
        .collect();
    format!(
        "validators={validators} heights={heights} faults=[{}] heal={}ms drop={}‰ dup={}‰ jitter≤{}ms partitions={} crashes=[{}] byzantine=[{}]",
        active.join(","),
        plan.heal_ms,
        plan.drop_per_mille,
        plan.duplicate_per_mille,
        plan.reorder_jitter_ms_max,
        plan.partitions.len(),
        crashes.join(" "),
        byzantine.join(" ")
    )
}

impl World<'_> {
    fn trace(&mut self, event: TraceEvent) {
        if self.trace.len() < TRACE_EVENTS_MAX {
            self.trace.push(event);
        }
    }

    fn push(&mut self, at_ms: u64, event: Event) {
        self.sequence += 1;
        self.queue.insert((at_ms, self.sequence), event);
    }

    fn is_honest(&self, node: usize) -> bool {
        self.nodes[node].behaviour.is_none()
    }

    fn run(&mut self, heights: u64) {
        for (i, p) in self.plan.partitions.clone().iter().enumerate() {
            self.push(p.start_ms, Event::PartitionStart(i));
            self.push(p.end_ms, Event::PartitionEnd(i));
        }
        for c in self.plan.crashes.clone() {
            self.push(c.crash_ms, Event::Crash(c.node));
            self.push(c.restart_ms, Event::Restart(c.node));
        }
        self.push(self.plan.heal_ms, Event::Heal);
        for node in 0..self.nodes.len() {
            self.boot(node);
        }
        let deadline_ms = self.plan.heal_ms + LIVENESS_GAP_MS_MAX * (heights + 1);
        while let Some(((at_ms, _), event)) = self.queue.pop_first() {
            if at_ms > deadline_ms || self.stats.events >= EVENTS_PER_SEED_MAX {
                break;
            }
            self.now_ms = at_ms;
            self.stats.events += 1;
            self.handle(event);
            if !self.violations.is_empty() {
                return;
            }
            if self.all_honest_reached(heights) || self.liveness_gap_exceeded(heights) {
                return;
            }
        }
    }

    fn all_honest_reached(&self, heights: u64) -> bool {
        self.nodes
            .iter()
            .filter(|n| n.behaviour.is_none())
            .all(|n| n.chain.height() >= heights)
    }

    fn liveness_gap_exceeded(&self, heights: u64) -> bool {
        if self.now_ms <= self.plan.heal_ms {
            return false;
        }
        (0..self.nodes.len()).any(|i| {
            self.is_honest(i) && self.nodes[i].chain.height() < heights && {
                let last = self.record.decision_times_ms[i]
                    .last()
                    .copied()
                    .unwrap_or(0)
                    .max(self.plan.heal_ms);
                self.now_ms - last > LIVENESS_GAP_MS_MAX
            }
        })
    }

    fn finish(mut self, seed: u64, heights: u64) -> SeedOutcome {
        for (i, node) in self.nodes.iter().enumerate() {
            self.record.final_heights[i] = node.chain.height();
        }
        let mut violations = std::mem::take(&mut self.violations);
        let mut found = check::check_agreement(&self.record);
        found.extend(check::check_validity(&self.record));
        found.extend(check::check_certificates(&self.record, &self.genesis));
        found.extend(check::check_state_agreement(&self.record));
        for v in found {
            if !violations.contains(&v) {
                violations.push(v);
            }
        }
        if violations.is_empty() {
            violations.extend(check::check_liveness(
                &self.record,
                self.plan.heal_ms,
                LIVENESS_GAP_MS_MAX,
                self.now_ms,
                heights,
            ));
        }
        for node in 0..self.nodes.len() {
            let n = &self.nodes[node];
            let state =
                match &n.engine {
                    None => format!("crashed, chain at h{}", n.chain.height()),
                    Some(e) => {
                        let s = e.round_state();
                        format!(
                        "chain h{} engine h{} r{} {:?} locked={:?} valid={:?} last_signed={:?}{}",
                        n.chain.height(),
                        s.height,
                        s.round,
                        s.step,
                        s.locked.map(|(r, h)| (r, check::short(&h))),
                        s.valid.map(|(r, h)| (r, check::short(&h))),
                        e.safety_state().last_signed,
                        n.behaviour.map(|b| format!(" byzantine:{b}")).unwrap_or_default()
                    )
                    }
                };
            self.trace(TraceEvent::Final { node, state });
        }
        for v in &violations {
            let text = v.to_string();
            self.trace(TraceEvent::Violation(text));
        }
        self.stats.heights = (0..self.nodes.len())
            .filter(|i| self.is_honest(*i))
            .map(|i| self.nodes[i].chain.height())
            .min()
            .unwrap_or(0);
        self.stats.simulated_ms = self.now_ms;
        SeedOutcome {
            seed,
            stats: self.stats,
            violations,
            trace: self.trace,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Nodes

    fn boot(&mut self, node: usize) {
        let n = &self.nodes[node];
        let tip = ChainTip {
            next_height: n.chain.height() + 1,
            previous_block_hash: n.chain.previous_hash(&self.genesis),
            previous_timestamp_ms: n.chain.previous_timestamp_ms(&self.genesis),
        };
        let persisted = if self.options.unsafe_forget_safety_state {
            None
        } else {
            n.disk.clone()
        };
        let mut engine = Engine::new(
            self.config.clone(),
            n.key.clone(),
            self.verifier.clone(),
            tip,
            persisted,
        );
        engine.handle(Input::Tick {
            now_ms: SIM_GENESIS_TIME_MS + self.now_ms,
        });
        let effects = engine.start();
        self.nodes[node].engine = Some(engine);
        self.nodes[node].incarnation += 1;
        let mut inputs = VecDeque::new();
        self.execute(node, effects, &mut inputs);
        self.feed_all(node, inputs);
    }

    fn feed(&mut self, node: usize, input: Input) {
        let mut inputs = VecDeque::with_capacity(4);
        inputs.push_back(Input::Tick {
            now_ms: SIM_GENESIS_TIME_MS + self.now_ms,
        });
        inputs.push_back(input);
        self.feed_all(node, inputs);
    }

    fn feed_all(&mut self, node: usize, mut inputs: VecDeque<Input>) {
        for _ in 0..INPUTS_PER_EVENT_MAX {
            let Some(input) = inputs.pop_front() else {
                return;
            };
            let Some(engine) = self.nodes[node].engine.as_mut() else {
                return;
            };
            let effects = engine.handle(input);
            self.execute(node, effects, &mut inputs);
        }
    }

    fn execute(&mut self, node: usize, effects: Vec<Effect>, inputs: &mut VecDeque<Input>) {
        for effect in effects {
            match self.nodes[node].crash_after_effects {
                Some(0) => {
                    self.crash_now(node);
                    inputs.clear();
                    return;
                }
                Some(k) => self.nodes[node].crash_after_effects = Some(k - 1),
                None => {}
            }
            if self.options.verbose {
                let text = describe_effect(&effect);
                self.trace(TraceEvent::Detail {
                    t: self.now_ms,
                    node,
                    text,
                });
            }
            match effect {
                // The simulated disk is synchronous: durable before the next effect runs.
                Effect::PersistSafetyState(state) => self.nodes[node].disk = Some(state),
                Effect::Broadcast(message) => self.broadcast(node, message),
                Effect::ScheduleTimeout {
                    timeout,
                    duration_ms,
                } => {
                    if timeout.kind == TimeoutKind::Propose && timeout.round > 0 {
                        self.trace(TraceEvent::Round {
                            t: self.now_ms,
                            node,
                            height: timeout.height,
                            round: timeout.round,
                        });
                    }
                    let incarnation = self.nodes[node].incarnation;
                    self.push(
                        self.now_ms + duration_ms,
                        Event::Timer {
                            node,
                            incarnation,
                            timeout,
                        },
                    );
                }
                Effect::RequestValue { height, round } => {
                    let n = &self.nodes[node];
                    if n.chain.height() + 1 == height {
                        let block = n.chain.build_block(
                            &self.genesis,
                            round,
                            &n.key,
                            SIM_GENESIS_TIME_MS + self.now_ms,
                            0,
                        );
                        inputs.push_back(Input::ProposeValue {
                            height,
                            round,
                            block,
                        });
                    }
                }
                Effect::ValidateProposal { height, block, .. } => {
                    let chain = &self.nodes[node].chain;
                    let verdict = if chain.height() + 1 == height {
                        chain.validate(&self.genesis, &block, &self.verifier)
                    } else {
                        Err(format!("chain is at height {}", chain.height()))
                    };
                    let valid = verdict.is_ok();
                    if self.options.verbose {
                        let text = format!("verdict {}: {verdict:?}", check::short(&block.hash()));
                        self.trace(TraceEvent::Detail {
                            t: self.now_ms,
                            node,
                            text,
                        });
                    }
                    inputs.push_back(Input::ProposalVerdict {
                        height,
                        block_hash: block.hash(),
                        valid,
                    });
                }
                Effect::Decide { block, certificate } => self.on_decide(node, block, certificate),
                Effect::RequestSync { from_height } => {
                    if self.nodes[node].behaviour != Some(FaultClass::Silent) {
                        let packet = Rc::new(Packet::SyncRequest { from_height });
                        for peer in 0..self.nodes.len() {
                            if peer != node {
                                self.send(node, peer, packet.clone());
                            }
                        }
                    }
                }
                Effect::RecordEvidence(evidence) => {
                    if self.is_honest(node) {
                        self.stats.evidence += 1;
                        let (offender, height, round, _) = evidence.key();
                        self.trace(TraceEvent::Evidence {
                            t: self.now_ms,
                            node,
                            offender,
                            height,
                            round,
                        });
                    }
                }
            }
        }
    }

    fn on_decide(&mut self, node: usize, block: Block, certificate: CommitCertificate) {
        let height = block.header.height;
        let hash = block.hash();
        let block_round = block.header.round;
        let round = certificate.round;
        let appended = self.nodes[node].chain.append(
            &self.genesis,
            block,
            certificate.clone(),
            &self.verifier,
        );
        self.trace(TraceEvent::Decide {
            t: self.now_ms,
            node,
            height,
            round,
            hash,
            block_round,
        });
        if !self.is_honest(node) {
            return;
        }
        self.stats.node_decisions += 1;
        self.record.decision_times_ms[node].push(self.now_ms);
        let (state_root, append_error) = match appended {
            Ok(root) => (Some(root), None),
            Err(e) => (None, Some(e)),
        };
        let decision = Decision {
            node,
            height,
            block_hash: hash,
            time_ms: self.now_ms,
            state_root,
            certificate,
            append_error,
        };
        let at_height = self.record.decisions.entry(height).or_default();
        at_height.push(decision);
        // Stop at the first safety violation: later events would only bury it.
        let mut found = check::check_agreement_at(at_height, height);
        if let Some(d) = at_height.last() {
            if let Some(e) = &d.append_error {
                found.push(Violation {
                    property: Property::Validity,
                    height,
                    detail: format!(
                        "node {node} decided an invalid block {}: {e}",
                        check::short(&hash)
                    ),
                });
            }
        }
        self.violations.extend(found);
    }

    /// Half the crashes strike at once, between steps; the other half in the middle of the node's
    /// next step, after 0 to 3 of its effects (a persisted state without its broadcast, a
    /// proposal without its votes…).
    fn on_crash(&mut self, node: usize) {
        if self.nodes[node].engine.is_none() {
            return;
        }
        if below(&mut self.rng, 2) == 0 {
            self.crash_now(node);
        } else {
            self.nodes[node].crash_after_effects = Some(below(&mut self.rng, 4) as usize);
        }
    }

    fn crash_now(&mut self, node: usize) {
        let after = self.nodes[node].crash_after_effects.take();
        if self.nodes[node].engine.take().is_some() {
            self.stats.exercised.insert(FaultClass::Crash);
            self.trace(TraceEvent::Crash {
                t: self.now_ms,
                node,
                mid_step: after.is_some(),
            });
        }
    }

    fn on_restart(&mut self, node: usize) {
        if self.nodes[node].crash_after_effects.is_some() {
            // The armed crash found no step to interrupt: it strikes now.
            self.crash_now(node);
        }
        if self.nodes[node].engine.is_none() {
            let height = self.nodes[node].chain.height() + 1;
            self.trace(TraceEvent::Restart {
                t: self.now_ms,
                node,
                height,
            });
            self.boot(node);
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Deliver { from, to, packet } => self.deliver(from, to, &packet),
            Event::Timer {
                node,
                incarnation,
                timeout,
            } => {
                if self.nodes[node].incarnation == incarnation && self.nodes[node].engine.is_some()
                {
                    self.feed(node, Input::Timeout(timeout));
                }
            }
            Event::Crash(node) => self.on_crash(node),
            Event::Restart(node) => self.on_restart(node),
            Event::PartitionStart(i) => {
                self.partition = Some(i);
                let side = self.plan.partitions[i].side.clone();
                self.trace(TraceEvent::PartitionStart {
                    t: self.now_ms,
                    side,
                });
            }
            Event::PartitionEnd(i) => {
                if self.partition == Some(i) {
                    self.partition = None;
                    self.trace(TraceEvent::PartitionEnd { t: self.now_ms });
                }
            }
            Event::Heal => {
                self.network_faults_on = false;
                self.partition = None;
                self.trace(TraceEvent::Heal { t: self.now_ms });
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Network

    fn send(&mut self, from: usize, to: usize, packet: Rc<Packet>) {
        self.stats.messages += 1;
        if self.network_faults_on
            && self.plan.drop_per_mille > 0
            && below(&mut self.rng, 1000) < self.plan.drop_per_mille
        {
            self.stats.exercised.insert(FaultClass::Drop);
            return;
        }
        let copies = if self.network_faults_on
            && self.plan.duplicate_per_mille > 0
            && below(&mut self.rng, 1000) < self.plan.duplicate_per_mille
        {
            self.stats.exercised.insert(FaultClass::Duplicate);
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut delay = between(&mut self.rng, NETWORK_DELAY_MS_MIN, NETWORK_DELAY_MS_MAX);
            if self.network_faults_on && self.plan.reorder_jitter_ms_max > 0 {
                let jitter = below(&mut self.rng, self.plan.reorder_jitter_ms_max + 1);
                if jitter > NETWORK_DELAY_MS_MAX - NETWORK_DELAY_MS_MIN {
                    self.stats.exercised.insert(FaultClass::Reorder);
                }
                delay += jitter;
            }
            self.push(
                self.now_ms + delay,
                Event::Deliver {
                    from,
                    to,
                    packet: packet.clone(),
                },
            );
        }
    }

    fn deliver(&mut self, from: usize, to: usize, packet: &Packet) {
        if self.options.verbose {
            let text = format!("<- n{from} {}", describe_packet(packet));
            self.trace(TraceEvent::Detail {
                t: self.now_ms,
                node: to,
                text,
            });
        }
        if let Some(i) = self.partition {
            let side = &self.plan.partitions[i].side;
            if side[from] != side[to] {
                self.stats.exercised.insert(FaultClass::Partition);
                return;
            }
        }
        if self.nodes[to].engine.is_none() {
            return;
        }
        match packet {
            Packet::Consensus(message) => {
                // An equivocating proposer does not listen to precommits: it must not decide and
                // leave the height, it stays to vote for whichever value the others move to.
                if self.nodes[to].behaviour == Some(FaultClass::Equivocate)
                    && matches!(message, Message::Vote(v) if v.vote.kind == pharmalink_ledger::VoteKind::Precommit)
                {
                    return;
                }
                self.feed(to, Input::Message(message.clone()))
            }
            Packet::SyncRequest { from_height } => {
                if self.nodes[to].behaviour == Some(FaultClass::Silent) {
                    return;
                }
                let chain = &self.nodes[to].chain;
                let start = from_height.saturating_sub(1) as usize;
                let end = (start + SYNC_BATCH_MAX as usize).min(chain.blocks.len());
                if start < end {
                    let blocks = chain.blocks[start..end].to_vec();
                    self.send(to, from, Rc::new(Packet::SyncResponse { blocks }));
                }
            }
            Packet::SyncResponse { blocks } => {
                let mut inputs = VecDeque::with_capacity(blocks.len() + 1);
                inputs.push_back(Input::Tick {
                    now_ms: SIM_GENESIS_TIME_MS + self.now_ms,
                });
                for (block, certificate) in blocks {
                    inputs.push_back(Input::SyncedBlock {
                        block: block.clone(),
                        certificate: certificate.clone(),
                    });
                }
                self.feed_all(to, inputs);
            }
        }
    }

    fn send_to_all(&mut self, from: usize, message: Message) {
        let packet = Rc::new(Packet::Consensus(message));
        for peer in 0..self.nodes.len() {
            if peer != from {
                self.send(from, peer, packet.clone());
            }
        }
    }

    /// A random half of the peers (at least one, not all when there are two or more).
    fn split_peers(&mut self, from: usize) -> (Vec<usize>, Vec<usize>) {
        let peers: Vec<usize> = (0..self.nodes.len()).filter(|p| *p != from).collect();
        let mut first = Vec::new();
        let mut second = Vec::new();
        for p in peers {
            if below(&mut self.rng, 2) == 0 {
                first.push(p)
            } else {
                second.push(p)
            }
        }
        (first, second)
    }

    fn sign_proposal_as(
        &self,
        node: usize,
        mut signed: SignedProposal,
        block: Block,
    ) -> SignedProposal {
        signed.proposal.block = block;
        signed.signature = self.nodes[node].key.sign(
            signed
                .proposal
                .signing_digest(&self.genesis.chain_id)
                .as_bytes(),
        );
        signed
    }

    fn sign_vote_as(&self, node: usize, mut signed: SignedVote, value: Option<Hash>) -> SignedVote {
        signed.vote.value = value;
        signed.signature = self.nodes[node].key.sign(
            signed
                .vote
                .signing_digest(&self.genesis.chain_id)
                .as_bytes(),
        );
        signed
    }

    /// Sends `message` from `node` to every peer, as the node's behaviour dictates.
    fn broadcast(&mut self, node: usize, message: Message) {
        if let Message::Proposal(p) = &message {
            self.record.proposed.insert(p.proposal.block_hash());
        }
        let Some(behaviour) = self.nodes[node].behaviour else {
            self.send_to_all(node, message);
            return;
        };
        let (height, round) = (message.height(), message.round());
        let t = self.now_ms;
        match (behaviour, message) {
            (FaultClass::Silent, _) => {
                self.stats.exercised.insert(FaultClass::Silent);
            }
            (FaultClass::BadSignature, message) => {
                self.stats.exercised.insert(FaultClass::BadSignature);
                self.trace(TraceEvent::Byzantine {
                    t,
                    node,
                    action: "bad-sig",
                    height,
                    round,
                });
                let mut corrupted = message.clone();
                match &mut corrupted {
                    Message::Proposal(p) => p.signature.0[7] ^= 0x40,
                    Message::Vote(v) => v.signature.0[7] ^= 0x40,
                }
                let (first, second) = self.split_peers(node);
                let good = Rc::new(Packet::Consensus(message.clone()));
                let bad = Rc::new(Packet::Consensus(corrupted));
                for p in first {
                    self.send(node, p, bad.clone());
                }
                for p in second {
                    self.send(node, p, good.clone());
                }
                // A vote forged in the name of another validator, for a value nobody proposed.
                if let Message::Vote(v) = message {
                    let mut forged = self.sign_vote_as(node, v, Some(Hash([0xF0; 32])));
                    forged.vote.validator_index = ((node + 1) % self.nodes.len()) as ValidatorIndex;
                    self.send_to_all(node, Message::Vote(forged));
                }
            }
            (FaultClass::DoubleVote, Message::Vote(v)) => {
                self.stats.exercised.insert(FaultClass::DoubleVote);
                self.trace(TraceEvent::Byzantine {
                    t,
                    node,
                    action: "double-vote",
                    height,
                    round,
                });
                let other = match v.vote.value {
                    Some(_) => None,
                    None => self
                        .record
                        .proposed
                        .iter()
                        .next()
                        .copied()
                        .or(Some(Hash([0xD0; 32]))),
                };
                let conflicting = self.sign_vote_as(node, v.clone(), other);
                let (first, second) = self.split_peers(node);
                let a = Rc::new(Packet::Consensus(Message::Vote(v)));
                let b = Rc::new(Packet::Consensus(Message::Vote(conflicting)));
                for p in first {
                    self.send(node, p, a.clone());
                }
                for p in second {
                    self.send(node, p, b.clone());
                }
            }
            // A split-brain proposer: a majority of the peers (the real side) gets the real
            // proposal, the others a fresh block of the same round — even when the real one
            // re-proposes a valid value. It prevotes each side's block to that side, sends its
            // precommit to one peer of the real side only, and ignores precommits (see `deliver`):
            // exactly the schedule in which only the lock rule (L23/L29) keeps the validators that
            // did not decide from deciding the other block in a later round.
            (FaultClass::Equivocate, Message::Proposal(p)) => {
                self.stats.exercised.insert(FaultClass::Equivocate);
                self.trace(TraceEvent::Byzantine {
                    t,
                    node,
                    action: "equivocate",
                    height,
                    round,
                });
                let n = &self.nodes[node];
                let other_block = n.chain.build_block(
                    &self.genesis,
                    round,
                    &n.key,
                    SIM_GENESIS_TIME_MS + self.now_ms,
                    1,
                );
                let mut fresh = p.clone();
                fresh.proposal.pol_round = None;
                let other = self.sign_proposal_as(node, fresh, other_block);
                let other_hash = other.proposal.block_hash();
                self.record.proposed.insert(other_hash);
                let mut peers: Vec<usize> = (0..self.nodes.len()).filter(|q| *q != node).collect();
                for i in 0..peers.len() {
                    let pick = i + below(&mut self.rng, (peers.len() - i) as u64) as usize;
                    peers.swap(i, pick);
                }
                let real_side: Vec<usize> = peers[..peers.len().div_ceil(2)].to_vec();
                let other_side: Vec<usize> = peers[peers.len().div_ceil(2)..].to_vec();
                self.nodes[node].split = Some((height, round, real_side.clone(), other_hash));
                let a = Rc::new(Packet::Consensus(Message::Proposal(p)));
                let b = Rc::new(Packet::Consensus(Message::Proposal(other)));
                for peer in real_side {
                    self.send(node, peer, a.clone());
                }
                for peer in other_side {
                    self.send(node, peer, b.clone());
                }
            }
            (FaultClass::Equivocate, Message::Vote(v)) => {
                let split = self.nodes[node].split.clone();
                match split {
                    Some((h, r, real_side, other_hash))
                        if h == height && r == round && v.vote.value.is_some() =>
                    {
                        let peers: Vec<usize> =
                            (0..self.nodes.len()).filter(|q| *q != node).collect();
                        match v.vote.kind {
                            pharmalink_ledger::VoteKind::Prevote => {
                                let other = self.sign_vote_as(node, v.clone(), Some(other_hash));
                                let a = Rc::new(Packet::Consensus(Message::Vote(v)));
                                let b = Rc::new(Packet::Consensus(Message::Vote(other)));
                                for peer in peers {
                                    let packet = if real_side.contains(&peer) {
                                        a.clone()
                                    } else {
                                        b.clone()
                                    };
                                    self.send(node, peer, packet);
                                }
                            }
                            pharmalink_ledger::VoteKind::Precommit => {
                                let lucky = real_side
                                    [below(&mut self.rng, real_side.len() as u64) as usize];
                                let nil = self.sign_vote_as(node, v.clone(), None);
                                let a = Rc::new(Packet::Consensus(Message::Vote(v)));
                                let b = Rc::new(Packet::Consensus(Message::Vote(nil)));
                                for peer in peers {
                                    let packet = if peer == lucky { a.clone() } else { b.clone() };
                                    self.send(node, peer, packet);
                                }
                            }
                        }
                    }
                    _ => self.send_to_all(node, Message::Vote(v)),
                }
            }
            (FaultClass::InvalidBlock, Message::Proposal(p)) => {
                self.stats.exercised.insert(FaultClass::InvalidBlock);
                self.trace(TraceEvent::Byzantine {
                    t,
                    node,
                    action: "invalid-block",
                    height,
                    round,
                });
                let mut block = p.proposal.block.clone();
                // A state root the application never computed: every honest validator must refuse it.
                block.header.state_root = Hash([0xEE; 32]);
                let invalid = self.sign_proposal_as(node, p, block);
                let hash = invalid.proposal.block_hash();
                self.nodes[node].invalid_block = Some((height, hash));
                self.record.proposed.insert(hash);
                self.send_to_all(node, Message::Proposal(invalid));
            }
            (FaultClass::InvalidBlock, Message::Vote(v)) => match self.nodes[node].invalid_block {
                Some((h, hash)) if h == height && v.vote.value.is_some() => {
                    let forged = self.sign_vote_as(node, v, Some(hash));
                    self.send_to_all(node, Message::Vote(forged));
                }
                _ => self.send_to_all(node, Message::Vote(v)),
            },
            (_, message) => self.send_to_all(node, message),
        }
    }
}

fn describe_message(message: &Message) -> String {
    match message {
        Message::Proposal(p) => format!(
            "proposal h{} r{} {} pol={:?} by v{}",
            p.proposal.height,
            p.proposal.round,
            check::short(&p.proposal.block_hash()),
            p.proposal.pol_round,
            p.proposal.proposer_index
        ),
        Message::Vote(v) => format!(
            "{:?} h{} r{} {} by v{}",
            v.vote.kind,
            v.vote.height,
            v.vote.round,
            v.vote.value.map_or("nil".to_string(), |h| check::short(&h)),
            v.vote.validator_index
        ),
    }
}

fn describe_packet(packet: &Packet) -> String {
    match packet {
        Packet::Consensus(m) => describe_message(m),
        Packet::SyncRequest { from_height } => format!("sync request from h{from_height}"),
        Packet::SyncResponse { blocks } => format!("sync response of {} blocks", blocks.len()),
    }
}

fn describe_effect(effect: &Effect) -> String {
    match effect {
        Effect::PersistSafetyState(s) => format!("persist last_signed={:?}", s.last_signed),
        Effect::Broadcast(m) => format!("broadcast {}", describe_message(m)),
        Effect::ScheduleTimeout {
            timeout,
            duration_ms,
        } => {
            format!(
                "schedule {:?} h{} r{} in {duration_ms}ms",
                timeout.kind, timeout.height, timeout.round
            )
        }
        Effect::RequestValue { height, round } => format!("request value h{height} r{round}"),
        Effect::ValidateProposal {
            height,
            round,
            block,
        } => {
            format!(
                "validate h{height} r{round} {}",
                check::short(&block.hash())
            )
        }
        Effect::Decide { block, certificate } => {
            format!(
                "decide h{} r{} {}",
                block.header.height,
                certificate.round,
                check::short(&block.hash())
            )
        }
        Effect::RequestSync { from_height } => format!("request sync from h{from_height}"),
        Effect::RecordEvidence(e) => format!("evidence {:?}", e.key()),
    }
}

/// Totals over many seeds.
#[derive(Clone, Debug, Default)]
pub struct SweepSummary {
    pub seeds: u64,
    pub heights: u64,
    pub node_decisions: u64,
    pub messages: u64,
    pub events: u64,
    pub safety_violations: u64,
    pub liveness_failures: u64,
    /// Seeds that drew each fault class, and seeds in which it actually did something.
    pub planned: BTreeMap<FaultClass, u64>,
    pub exercised: BTreeMap<FaultClass, u64>,
    pub failed_seeds: Vec<u64>,
}

impl SweepSummary {
    pub fn add(&mut self, outcome: &SeedOutcome) {
        self.seeds += 1;
        self.heights += outcome.stats.heights;
        self.node_decisions += outcome.stats.node_decisions;
        self.messages += outcome.stats.messages;
        self.events += outcome.stats.events;
        self.safety_violations += outcome.safety_violations() as u64;
        self.liveness_failures += outcome.liveness_failures() as u64;
        for c in &outcome.stats.planned {
            *self.planned.entry(*c).or_insert(0) += 1;
        }
        for c in &outcome.stats.exercised {
            *self.exercised.entry(*c).or_insert(0) += 1;
        }
        if !outcome.passed() {
            self.failed_seeds.push(outcome.seed);
        }
    }

    /// The line the CLI ends with.
    pub fn summary_line(&self) -> String {
        format!(
            "sim: seeds={} heights={} safety_violations={} liveness_failures={}",
            self.seeds, self.heights, self.safety_violations, self.liveness_failures
        )
    }

    /// Network messages per decided height (heights counted once, not per node).
    pub fn messages_per_height(&self) -> f64 {
        if self.heights == 0 {
            0.0
        } else {
            self.messages as f64 / self.heights as f64
        }
    }

    /// One line per fault class: share of seeds that exercised it.
    pub fn coverage_lines(&self) -> Vec<String> {
        FaultClass::ALL
            .iter()
            .map(|c| {
                let exercised = self.exercised.get(c).copied().unwrap_or(0);
                let planned = self.planned.get(c).copied().unwrap_or(0);
                let share = if self.seeds == 0 { 0.0 } else { 100.0 * exercised as f64 / self.seeds as f64 };
                format!("  {:<14} exercised in {exercised:>7} of {} seeds ({share:5.1}%), drawn in {planned}", c.name(), self.seeds)
            })
            .collect()
    }
}

/// Runs seeds `start .. start + count`, calling `each` with every outcome (failing or not).
pub fn run_sweep(
    options: &SimOptions,
    start: u64,
    count: u64,
    mut each: impl FnMut(&SeedOutcome),
) -> SweepSummary {
    let mut summary = SweepSummary::default();
    for seed in start..start.saturating_add(count) {
        let outcome = run_seed(seed, options);
        summary.add(&outcome);
        each(&outcome);
    }
    summary
}
