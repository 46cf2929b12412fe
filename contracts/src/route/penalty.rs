//! The penalty phase: with time windows or cold-chain stops the objective depends on arrival
//! times, so moves are evaluated in full (O(stops) each). First-improvement descent over
//! segment moves (1–3 stops, either orientation) and reversals, from four starts (the
//! distance tour, its reverse, the urgency order — cold chain first, then by deadline — and the
//! constrained stops in that order with the others inserted where they add least distance), then
//! perturbations of the best (segment swaps), kept when better, until the evaluation budget
//! is spent.

use super::rng::SplitMix64;
use super::{
    DistanceMatrix, Evaluator, RouteOptions, Score, StopConstraints, TourEnd,
    DEFAULT_PENALTY_EVALS, NEIGHBOURS,
};

/// Below this many stops every position is a candidate; above, only those next to a stop's
/// nearest neighbours.
const EXHAUSTIVE: usize = 60;
/// Up to this many stops every start is improved; above, only the best.
const MULTI_START: usize = 200;

struct Search<'a, 'e> {
    eval: &'e Evaluator<'a>,
    neigh: Vec<Vec<u32>>,
    evals: u64,
    budget: u64,
    scratch: Vec<u32>,
    rest: Vec<u32>,
    prefix: Vec<Score>,
    /// `constrained[p]` = constrained stops (window or cold chain) in `order[..p]`.
    constrained: Vec<u32>,
}

impl Search<'_, '_> {
    fn spent(&self) -> bool {
        self.evals >= self.budget
    }

    /// Try `candidate` (in `scratch`); on improvement copy it into `order`.
    /// `scratch` agrees with `order` before position `from`.
    fn accept(&mut self, order: &mut Vec<u32>, obj: &mut f64, from: usize) -> bool {
        self.evals += 1;
        let o = self.eval.objective_from(&self.scratch, from, &self.prefix);
        if o < *obj - 1e-9 * obj.abs().max(1.0) {
            *obj = o;
            order.clear();
            order.extend_from_slice(&self.scratch);
            self.refresh(order);
            true
        } else {
            false
        }
    }

    fn refresh(&mut self, order: &[u32]) {
        self.eval.prefix(order, &mut self.prefix);
        self.constrained.clear();
        self.constrained.push(0);
        let mut count = 0;
        for &s in order {
            let c = self.eval.constraint(s);
            if c.earliest_s.is_some() || c.latest_s.is_some() || c.cold_chain {
                count += 1;
            }
            self.constrained.push(count);
        }
    }

    /// Whether `order[a..b]` holds a constrained stop.
    fn any_constrained(&self, a: usize, b: usize) -> bool {
        self.constrained[b] > self.constrained[a]
    }

    /// Whether some stop of `order[a..b]` is late or cold chain (could gain by being earlier).
    fn any_gain_earlier(&self, a: usize, b: usize) -> bool {
        self.prefix[b].late > self.prefix[a].late || self.prefix[b].cold > self.prefix[a].cold
    }

    fn d(&self, a: u32, b: Option<u32>) -> f64 {
        b.map_or(0.0, |b| self.eval.m.get(a as usize, b as usize))
    }

    /// The node after position `idx - 1` of `seq`: `seq[idx]`, else the depot (closed) or
    /// nothing (open).
    fn after(&self, seq: &[u32], idx: usize) -> Option<u32> {
        match seq.get(idx) {
            Some(&x) => Some(x),
            None if self.eval.opts.end == TourEnd::ReturnToDepot => Some(0),
            None => None,
        }
    }

    fn positions(order: &[u32], nodes: usize) -> Vec<usize> {
        let mut pos = vec![0; nodes + 1];
        for (i, &c) in order.iter().enumerate() {
            pos[c as usize] = i;
        }
        pos
    }

    /// One improving move, if any (first improvement), scanning segment starts from `cursor`
    /// round; returns where it was found.
    fn step(&mut self, order: &mut Vec<u32>, obj: &mut f64, cursor: usize) -> Option<usize> {
        let m = order.len();
        let pos = Self::positions(order, m);
        for i in (cursor..m).chain(0..cursor.min(m)) {
            // Segment moves.
            for len in 1..=3usize.min(m - 1) {
                if i + len > m {
                    break;
                }
                self.rest.clear();
                self.rest.extend_from_slice(&order[..i]);
                self.rest.extend_from_slice(&order[i + len..]);
                let mut targets: Vec<usize> = if m <= EXHAUSTIVE {
                    (0..=self.rest.len()).collect()
                } else {
                    let mut t = Vec::with_capacity(4 * NEIGHBOURS);
                    for end in [order[i], order[i + len - 1]] {
                        for &c in &self.neigh[end as usize] {
                            let p = pos[c as usize];
                            if p >= i && p < i + len {
                                continue;
                            }
                            let q = if p > i { p - len } else { p };
                            t.push(q);
                            t.push(q + 1);
                        }
                    }
                    t.sort_unstable();
                    t.dedup();
                    t
                };
                targets.retain(|&q| q != i);
                // Exact filter: a segment without constrained stops that adds distance can only
                // help by moving later past a late or cold-chain stop (everything else is
                // served at the same time or later).
                let (s1, sk) = (order[i], order[i + len - 1]);
                let free = !self.any_constrained(i, i + len);
                let before = if i == 0 { 0 } else { order[i - 1] };
                let removed = self.d(before, Some(s1)) + self.d(sk, self.after(order, i + len))
                    - self.d(before, self.after(order, i + len));
                for q in targets {
                    for reversed in [false, true] {
                        if reversed && len == 1 {
                            continue;
                        }
                        if self.spent() {
                            return None;
                        }
                        if free {
                            let (first, last) = if reversed { (sk, s1) } else { (s1, sk) };
                            let prev = if q == 0 { 0 } else { self.rest[q - 1] };
                            let next = self.after(&self.rest, q);
                            let added =
                                self.d(prev, Some(first)) + self.d(last, next) - self.d(prev, next);
                            if added - removed >= 0.0
                                && (q < i || !self.any_gain_earlier(i + len, q + len))
                            {
                                continue;
                            }
                        }
                        self.scratch.clear();
                        self.scratch.extend_from_slice(&self.rest[..q]);
                        if reversed {
                            self.scratch.extend(order[i..i + len].iter().rev());
                        } else {
                            self.scratch.extend_from_slice(&order[i..i + len]);
                        }
                        self.scratch.extend_from_slice(&self.rest[q..]);
                        if self.accept(order, obj, i.min(q)) {
                            return Some(i);
                        }
                    }
                }
            }
            // Reversals order[i..=j].
            let js: Vec<usize> = if m <= EXHAUSTIVE {
                (i + 2..m).collect()
            } else {
                let mut js: Vec<usize> = self.neigh[order[i] as usize]
                    .iter()
                    .flat_map(|&c| {
                        let p = pos[c as usize];
                        [p.saturating_sub(1), p]
                    })
                    .filter(|&j| j > i + 1)
                    .collect();
                js.sort_unstable();
                js.dedup();
                js
            };
            for j in js {
                if self.spent() {
                    return None;
                }
                // Exact filter: reversing unconstrained stops to a longer route only delays.
                if !self.any_constrained(i, j + 1) {
                    let before = if i == 0 { 0 } else { order[i - 1] };
                    let next = self.after(order, j + 1);
                    let delta = self.d(before, Some(order[j])) + self.d(order[i], next)
                        - self.d(before, Some(order[i]))
                        - self.d(order[j], next);
                    if delta >= 0.0 {
                        continue;
                    }
                }
                self.scratch.clear();
                self.scratch.extend_from_slice(order);
                self.scratch[i..=j].reverse();
                if self.accept(order, obj, i) {
                    return Some(i);
                }
            }
        }
        None
    }

    fn descend(&mut self, order: &mut Vec<u32>, obj: &mut f64) {
        self.refresh(order);
        let mut cursor = 0;
        while !self.spent() {
            match self.step(order, obj, cursor) {
                Some(i) => cursor = i,
                None => break,
            }
        }
    }
}

fn neighbour_lists(matrix: &DistanceMatrix) -> Vec<Vec<u32>> {
    let n = matrix.nodes();
    let mut lists = vec![Vec::new()];
    for i in 1..n {
        let mut row: Vec<u32> = (1..n as u32).filter(|&j| j as usize != i).collect();
        row.sort_by(|&a, &b| {
            matrix
                .get(i, a as usize)
                .total_cmp(&matrix.get(i, b as usize))
                .then(a.cmp(&b))
        });
        row.truncate(NEIGHBOURS);
        lists.push(row);
    }
    lists
}

/// Improve the distance tour `order` (stop nodes) under the full objective.
pub(super) fn improve(
    eval: &Evaluator<'_>,
    matrix: &DistanceMatrix,
    order: Vec<u32>,
    opts: &RouteOptions,
) -> Vec<u32> {
    let budget = opts.budget.penalty_evals.unwrap_or(DEFAULT_PENALTY_EVALS);
    let mut search = Search {
        eval,
        neigh: neighbour_lists(matrix),
        evals: 0,
        budget,
        scratch: Vec::with_capacity(order.len()),
        rest: Vec::with_capacity(order.len()),
        prefix: Vec::with_capacity(order.len() + 1),
        constrained: Vec::with_capacity(order.len() + 1),
    };
    let reversed: Vec<u32> = order.iter().rev().copied().collect();
    let mut urgency = order.clone();
    urgency.sort_by(|&a, &b| {
        let (ca, cb) = (eval.constraint(a), eval.constraint(b));
        cb.cold_chain
            .cmp(&ca.cold_chain)
            .then(
                ca.latest_s
                    .unwrap_or(f64::INFINITY)
                    .total_cmp(&cb.latest_s.unwrap_or(f64::INFINITY)),
            )
            .then(
                ca.earliest_s
                    .unwrap_or(0.0)
                    .total_cmp(&cb.earliest_s.unwrap_or(0.0)),
            )
            .then(a.cmp(&b))
    });
    let mut best = order.clone();
    let mut best_obj = eval.objective(&best);
    let skeleton = skeleton_insertion(eval, matrix, &order);
    // Descend from the starts, best first: all four on small runs, the best one alone on
    // large runs (where one descent pass costs more than a share of the budget).
    let mut starts: Vec<(f64, Vec<u32>)> = [order, reversed, urgency, skeleton]
        .into_iter()
        .map(|o| (eval.objective(&o), o))
        .collect();
    starts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let m = starts[0].1.len();
    let (count, share) = if m <= MULTI_START {
        (starts.len(), budget / 5)
    } else {
        (1, budget / 2)
    };
    for (k, (mut obj, mut cand)) in starts.into_iter().take(count).enumerate() {
        search.budget = (share * (k as u64 + 1)).min(budget);
        search.descend(&mut cand, &mut obj);
        if obj < best_obj - 1e-9 * best_obj.abs().max(1.0) {
            best_obj = obj;
            best = cand;
        }
    }
    // Perturbations: segment swaps between random positions, kept when better.
    search.budget = budget;
    let mut rng = SplitMix64::new(opts.seed ^ 0xA5A5_5A5A_A5A5_5A5A);
    while m >= 4 && !search.spent() {
        let mut cuts = [rng.below(m), rng.below(m), rng.below(m)];
        cuts.sort_unstable();
        let [a, b, c] = cuts;
        if a == b || b == c {
            search.evals += 1;
            continue;
        }
        let mut cand: Vec<u32> = Vec::with_capacity(m);
        cand.extend_from_slice(&best[..a]);
        cand.extend_from_slice(&best[b..c]);
        cand.extend_from_slice(&best[a..b]);
        cand.extend_from_slice(&best[c..]);
        search.evals += 1;
        let mut obj = eval.objective(&cand);
        search.descend(&mut cand, &mut obj);
        if obj < best_obj - 1e-9 * best_obj.abs().max(1.0) {
            best_obj = obj;
            best = cand;
        }
    }
    best
}

/// The constrained stops in time order (cold chain first, then windowed stops by deadline, ties
/// in distance-tour order), with every other stop inserted, in distance-tour order, where it adds the least distance.
fn skeleton_insertion(eval: &Evaluator<'_>, matrix: &DistanceMatrix, order: &[u32]) -> Vec<u32> {
    let key = |c: StopConstraints| {
        if c.cold_chain && c.latest_s.is_none() {
            Some(0.0)
        } else {
            c.latest_s.or(c.earliest_s)
        }
    };
    // Equal deadlines (slots) keep their distance-tour order.
    let mut route: Vec<(f64, usize, u32)> = order
        .iter()
        .enumerate()
        .filter_map(|(i, &s)| key(eval.constraint(s)).map(|k| (k, i, s)))
        .collect();
    route.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut route: Vec<u32> = route.into_iter().map(|(_, _, s)| s).collect();
    let closed = eval.opts.end == TourEnd::ReturnToDepot;
    for &s in order {
        if key(eval.constraint(s)).is_some() {
            continue;
        }
        let d = |a: u32, b: u32| matrix.get(a as usize, b as usize);
        // Position q: between route[q-1] (or the depot) and route[q] (or the depot / nothing).
        let mut best = (f64::INFINITY, route.len());
        for q in 0..=route.len() {
            let prev = if q == 0 { 0 } else { route[q - 1] };
            let add = match route.get(q) {
                Some(&next) => d(prev, s) + d(s, next) - d(prev, next),
                None if closed => d(prev, s) + d(s, 0) - d(prev, 0),
                None => d(prev, s),
            };
            if add < best.0 {
                best = (add, q);
            }
        }
        route.insert(best.1, s);
    }
    route
}
