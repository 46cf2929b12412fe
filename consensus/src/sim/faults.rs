//! Fault classes and the per-seed fault plan drawn from the seed.

use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;
use std::collections::BTreeSet;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultClass {
    /// Messages are lost.
    Drop,
    /// Messages are delivered twice.
    Duplicate,
    /// Messages get extra random delay, so later ones overtake earlier ones.
    Reorder,
    /// The validators are split into two groups that cannot talk, then healed.
    Partition,
    /// Honest validators crash and restart from their persisted state.
    Crash,
    /// A Byzantine proposer sends different blocks to different peers.
    Equivocate,
    /// A Byzantine validator signs conflicting votes and sends each to half the peers.
    DoubleVote,
    /// A Byzantine proposer proposes invalid blocks and votes for them.
    InvalidBlock,
    /// A Byzantine validator sends corrupted signatures and votes forged in others' names.
    BadSignature,
    /// A Byzantine validator sends nothing at all.
    Silent,
}

impl FaultClass {
    pub const ALL: [FaultClass; 10] = [
        FaultClass::Drop,
        FaultClass::Duplicate,
        FaultClass::Reorder,
        FaultClass::Partition,
        FaultClass::Crash,
        FaultClass::Equivocate,
        FaultClass::DoubleVote,
        FaultClass::InvalidBlock,
        FaultClass::BadSignature,
        FaultClass::Silent,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultClass::Drop => "drop",
            FaultClass::Duplicate => "dup",
            FaultClass::Reorder => "reorder",
            FaultClass::Partition => "partition",
            FaultClass::Crash => "crash",
            FaultClass::Equivocate => "equivocate",
            FaultClass::DoubleVote => "double-vote",
            FaultClass::InvalidBlock => "invalid-block",
            FaultClass::BadSignature => "bad-sig",
            FaultClass::Silent => "silent",
        }
    }

    pub fn is_byzantine(self) -> bool {
        matches!(
            self,
            FaultClass::Equivocate
                | FaultClass::DoubleVote
                | FaultClass::InvalidBlock
                | FaultClass::BadSignature
                | FaultClass::Silent
        )
    }

    /// Parses "all", "none" or a comma-separated list of names.
    pub fn parse_list(text: &str) -> Result<BTreeSet<FaultClass>, String> {
        let text = text.trim();
        if text.is_empty() || text == "none" {
            return Ok(BTreeSet::new());
        }
        if text == "all" {
            return Ok(FaultClass::ALL.into_iter().collect());
        }
        let mut set = BTreeSet::new();
        for name in text.split(',').map(str::trim) {
            let class = FaultClass::ALL
                .into_iter()
                .find(|c| c.name() == name)
                .ok_or_else(|| {
                    let names: Vec<&str> = FaultClass::ALL.iter().map(|c| c.name()).collect();
                    format!(
                        "unknown fault class {name:?}; known: all, none, {}",
                        names.join(",")
                    )
                })?;
            set.insert(class);
        }
        Ok(set)
    }
}

impl fmt::Display for FaultClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Partitions per seed.
pub const PARTITIONS_PER_SEED_MAX: u64 = 8;
/// Longest single partition.
pub const PARTITION_MS_MAX: u64 = 1500;
/// Crashes per seed.
pub const CRASHES_PER_SEED_MAX: u64 = 3;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionPlan {
    pub start_ms: u64,
    pub end_ms: u64,
    /// Side (false/true) of each node.
    pub side: Vec<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashPlan {
    pub node: usize,
    pub crash_ms: u64,
    pub restart_ms: u64,
}

/// Everything that goes wrong in one seed. All network faults and crashes end by `heal_ms`;
/// Byzantine validators stay Byzantine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultPlan {
    pub active: BTreeSet<FaultClass>,
    pub heal_ms: u64,
    pub drop_per_mille: u64,
    pub duplicate_per_mille: u64,
    pub reorder_jitter_ms_max: u64,
    pub partitions: Vec<PartitionPlan>,
    pub crashes: Vec<CrashPlan>,
    /// (node, behaviour) for each Byzantine validator (at most f of them).
    pub byzantine: Vec<(usize, FaultClass)>,
}

pub fn below(rng: &mut ChaCha8Rng, bound: u64) -> u64 {
    if bound == 0 {
        0
    } else {
        rng.next_u64() % bound
    }
}

pub fn between(rng: &mut ChaCha8Rng, low: u64, high: u64) -> u64 {
    low + below(rng, high.saturating_sub(low) + 1)
}

impl FaultPlan {
    /// `powers[i]` is validator i's voting power. Byzantine validators hold less than a third of
    /// the total power (the protocol's assumption), and at most f = (n − 1) / 3 of them.
    pub fn draw(rng: &mut ChaCha8Rng, enabled: &BTreeSet<FaultClass>, powers: &[u64]) -> FaultPlan {
        let validators = powers.len();
        let f = (validators.saturating_sub(1)) / 3;
        let mut active = BTreeSet::new();
        for class in enabled {
            if class.is_byzantine() && f == 0 {
                continue;
            }
            if below(rng, 2) == 1 {
                active.insert(*class);
            }
        }
        let heal_ms = between(rng, 1500, 6000);
        let mut plan = FaultPlan {
            active: active.clone(),
            heal_ms,
            drop_per_mille: 0,
            duplicate_per_mille: 0,
            reorder_jitter_ms_max: 0,
            partitions: Vec::new(),
            crashes: Vec::new(),
            byzantine: Vec::new(),
        };
        if active.contains(&FaultClass::Drop) {
            plan.drop_per_mille = between(rng, 20, 300);
        }
        if active.contains(&FaultClass::Duplicate) {
            plan.duplicate_per_mille = between(rng, 20, 200);
        }
        if active.contains(&FaultClass::Reorder) {
            plan.reorder_jitter_ms_max = between(rng, 20, 400);
        }
        if active.contains(&FaultClass::Partition) {
            for _ in 0..between(rng, 1, PARTITIONS_PER_SEED_MAX) {
                let start_ms = below(rng, heal_ms);
                let end_ms = between(rng, start_ms + 50, start_ms + PARTITION_MS_MAX).min(heal_ms);
                let mut side: Vec<bool> = (0..validators).map(|_| below(rng, 2) == 1).collect();
                // Both sides non-empty.
                if side.iter().all(|s| *s) || side.iter().all(|s| !*s) {
                    let flip = below(rng, validators as u64) as usize;
                    side[flip] = !side[flip];
                }
                plan.partitions.push(PartitionPlan {
                    start_ms,
                    end_ms,
                    side,
                });
            }
        }
        let byzantine_classes: Vec<FaultClass> = active
            .iter()
            .copied()
            .filter(|c| c.is_byzantine())
            .collect();
        if !byzantine_classes.is_empty() {
            let wanted = between(rng, 1, f as u64) as usize;
            let total: u64 = powers.iter().sum();
            let mut byzantine_power = 0;
            let mut nodes: Vec<usize> = (0..validators).collect();
            for i in 0..validators {
                let pick = i + below(rng, (validators - i) as u64) as usize;
                nodes.swap(i, pick);
            }
            for node in nodes {
                if plan.byzantine.len() == wanted {
                    break;
                }
                if (byzantine_power + powers[node]) * 3 < total {
                    byzantine_power += powers[node];
                    let class = byzantine_classes[plan.byzantine.len() % byzantine_classes.len()];
                    plan.byzantine.push((node, class));
                }
            }
            let count = plan.byzantine.len();
            // Every active Byzantine class is played by someone when there are enough traitors;
            // otherwise pick which classes play at random.
            if byzantine_classes.len() > count {
                for (i, entry) in plan.byzantine.iter_mut().enumerate() {
                    let choice = below(rng, byzantine_classes.len() as u64) as usize;
                    entry.1 = byzantine_classes[(choice + i) % byzantine_classes.len()];
                }
            }
            plan.active
                .retain(|c| !c.is_byzantine() || plan.byzantine.iter().any(|(_, b)| b == c));
        }
        if active.contains(&FaultClass::Crash) {
            let honest: Vec<usize> = (0..validators)
                .filter(|n| !plan.byzantine.iter().any(|(b, _)| b == n))
                .collect();
            for _ in 0..between(rng, 1, CRASHES_PER_SEED_MAX) {
                let node = honest[below(rng, honest.len() as u64) as usize];
                let crash_ms = below(rng, heal_ms.saturating_sub(200));
                let restart_ms = between(rng, crash_ms + 50, heal_ms);
                // One crash at a time per node.
                if plan
                    .crashes
                    .iter()
                    .any(|c| c.node == node && c.crash_ms <= restart_ms && crash_ms <= c.restart_ms)
                {
                    continue;
                }
                plan.crashes.push(CrashPlan {
                    node,
                    crash_ms,
                    restart_ms,
                });
            }
        }
        plan
    }

    pub fn byzantine_behaviour(&self, node: usize) -> Option<FaultClass> {
        self.byzantine
            .iter()
            .find(|(n, _)| *n == node)
            .map(|(_, b)| *b)
    }
}
