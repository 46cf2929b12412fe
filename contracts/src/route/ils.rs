//! The distance-only core: a symmetric TSP cycle over `n` nodes, improved by 2-opt and Or-opt
//! with neighbour lists and don't-look bits (a work queue), inside an iterated local search
//! whose kicks are local double bridges (two adjacent random segments within a window of
//! [`KICK_WINDOW`] positions swap places), accepted when not worse; after a stall the search
//! restarts from the best tour and keeps one kick whatever it costs.
//!
//! The tour is an array with a position index; every move is a composition of 2-opt moves,
//! each of which reverses the shorter side of the cycle. A rejected kick is undone by copying
//! back only the range of positions it (and the local search after it) wrote.

use super::rng::SplitMix64;
use std::collections::VecDeque;

/// Improvements smaller than `max(EPS_MIN, EPS_REL × largest entry × n)` are ignored: far
/// above the rounding error of a move's gain (a few ulps of the largest entry), so rounding can
/// never make the search cycle, and far below a millimetre on courier-sized runs.
const EPS_MIN: f64 = 1e-7;
const EPS_REL: f64 = 1e-13;
/// Or-opt moves segments of up to this many nodes.
const OR_MAX: usize = 3;
/// Kicks swap two adjacent segments lying within this many tour positions.
const KICK_WINDOW: usize = 100;
/// Kicks without improvement, per node, before a restart from the best tour.
const STALL_PER_NODE: u64 = 2;
/// ... and at least this many.
const STALL_MIN: u64 = 500;

pub(crate) struct Cycle<'a> {
    n: usize,
    d: &'a [f64],
    k: usize,
    neigh: Vec<u32>,
    tour: Vec<u32>,
    pos: Vec<u32>,
    queue: VecDeque<u32>,
    queued: Vec<bool>,
    dirty_lo: usize,
    dirty_hi: usize,
    cost: f64,
    buf: Vec<u32>,
    eps: f64,
}

/// Statistics of one run (deterministic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct IlsStats {
    pub kicks: u64,
    pub accepted: u64,
}

impl<'a> Cycle<'a> {
    /// `d` is `n × n` row-major; `k` the neighbour-list length.
    pub(crate) fn new(n: usize, d: &'a [f64], k: usize) -> Self {
        let k = k.min(n.saturating_sub(1));
        let mut neigh = Vec::with_capacity(n * k);
        let mut row: Vec<u32> = Vec::with_capacity(n);
        for i in 0..n {
            row.clear();
            row.extend((0..n as u32).filter(|&j| j as usize != i));
            let key = |&j: &u32| (d[i * n + j as usize], j);
            let cmp = |a: &u32, b: &u32| {
                let (da, ja) = key(a);
                let (db, jb) = key(b);
                da.total_cmp(&db).then(ja.cmp(&jb))
            };
            if k > 0 && k < row.len() {
                row.select_nth_unstable_by(k - 1, cmp);
                row.truncate(k);
            }
            row.sort_unstable_by(cmp);
            neigh.extend_from_slice(&row[..k]);
        }
        Cycle {
            n,
            d,
            k,
            neigh,
            tour: (0..n as u32).collect(),
            pos: (0..n as u32).collect(),
            queue: VecDeque::with_capacity(n),
            queued: vec![false; n],
            dirty_lo: 0,
            dirty_hi: 0,
            cost: 0.0,
            buf: Vec::new(),
            eps: (EPS_REL * d.iter().copied().fold(0.0, f64::max) * n as f64).max(EPS_MIN),
        }
    }

    #[inline]
    fn dist(&self, a: u32, b: u32) -> f64 {
        self.d[a as usize * self.n + b as usize]
    }

    #[inline]
    fn neighbours(&self, a: u32) -> &[u32] {
        let s = a as usize * self.k;
        &self.neigh[s..s + self.k]
    }

    #[inline]
    fn succ(&self, a: u32) -> u32 {
        let p = self.pos[a as usize] as usize + 1;
        self.tour[if p == self.n { 0 } else { p }]
    }

    #[inline]
    fn pred(&self, a: u32) -> u32 {
        let p = self.pos[a as usize] as usize;
        self.tour[if p == 0 { self.n - 1 } else { p - 1 }]
    }

    #[inline]
    fn next(&self, a: u32, forward: bool) -> u32 {
        if forward {
            self.succ(a)
        } else {
            self.pred(a)
        }
    }

    pub(crate) fn tour_cost(&self, tour: &[u32]) -> f64 {
        let n = tour.len();
        (0..n).map(|i| self.dist(tour[i], tour[(i + 1) % n])).sum()
    }

    /// Start from `tour` (a permutation of `0..n`).
    pub(crate) fn set_tour(&mut self, tour: &[u32]) {
        self.tour.copy_from_slice(tour);
        for (i, &c) in self.tour.iter().enumerate() {
            self.pos[c as usize] = i as u32;
        }
        self.cost = self.tour_cost(tour);
    }

    pub(crate) fn tour(&self) -> &[u32] {
        &self.tour
    }

    /// Nearest-neighbour construction from node 0 (ties to the lower index).
    pub(crate) fn nearest_neighbour(&self) -> Vec<u32> {
        let n = self.n;
        let mut used = vec![false; n];
        let mut tour = Vec::with_capacity(n);
        if n == 0 {
            return tour;
        }
        let mut cur = 0u32;
        used[0] = true;
        tour.push(0);
        for _ in 1..n {
            // Prefer the neighbour list; fall back to a scan when all listed are used.
            let mut next = self
                .neighbours(cur)
                .iter()
                .copied()
                .find(|&c| !used[c as usize]);
            if next.is_none() {
                let mut best = f64::INFINITY;
                for c in 0..n as u32 {
                    if !used[c as usize] && self.dist(cur, c) < best {
                        best = self.dist(cur, c);
                        next = Some(c);
                    }
                }
            }
            let Some(c) = next else { break };
            used[c as usize] = true;
            tour.push(c);
            cur = c;
        }
        tour
    }

    fn mark_dirty(&mut self, lo: usize, hi: usize) {
        self.dirty_lo = self.dirty_lo.min(lo);
        self.dirty_hi = self.dirty_hi.max(hi);
    }

    /// Reverse the tour between positions `i` and `j` going forward (inclusive, wrapping), or
    /// equivalently — as a cycle — the complement, whichever is shorter.
    fn reverse_fwd(&mut self, i: usize, j: usize) {
        let n = self.n;
        let mut len = (j + n - i) % n + 1;
        let (mut i, mut j) = (i, j);
        if 2 * len > n {
            let (i2, j2) = ((j + 1) % n, (i + n - 1) % n);
            len = n - len;
            i = i2;
            j = j2;
        }
        if len < 2 {
            return;
        }
        if i <= j {
            self.mark_dirty(i, j);
        } else {
            self.mark_dirty(0, n - 1);
        }
        for _ in 0..len / 2 {
            let (a, b) = (self.tour[i], self.tour[j]);
            self.tour[i] = b;
            self.pos[b as usize] = i as u32;
            self.tour[j] = a;
            self.pos[a as usize] = j as u32;
            i = if i + 1 == n { 0 } else { i + 1 };
            j = if j == 0 { n - 1 } else { j - 1 };
        }
    }

    /// The 2-opt move removing edges (a,b) and (c,d) and adding (a,c) and (b,d), where either
    /// b = succ(a) and d = succ(c), or b = pred(a) and d = pred(c).
    fn move2(&mut self, a: u32, b: u32, c: u32, d: u32) {
        if self.succ(a) == b {
            self.reverse_fwd(self.pos[b as usize] as usize, self.pos[c as usize] as usize);
        } else {
            self.reverse_fwd(self.pos[a as usize] as usize, self.pos[d as usize] as usize);
        }
    }

    fn push(&mut self, a: u32) {
        if !self.queued[a as usize] {
            self.queued[a as usize] = true;
            self.queue.push_back(a);
        }
    }

    fn try_two_opt(&mut self, a: u32) -> bool {
        for forward in [true, false] {
            let b = self.next(a, forward);
            let dab = self.dist(a, b);
            for idx in 0..self.k {
                let c = self.neigh[a as usize * self.k + idx];
                let dac = self.dist(a, c);
                if dac >= dab - self.eps {
                    break;
                }
                let d = self.next(c, forward);
                if c == b || d == a {
                    continue;
                }
                let delta = dac + self.dist(b, d) - dab - self.dist(c, d);
                if delta < -self.eps {
                    self.move2(a, b, c, d);
                    self.cost += delta;
                    for x in [a, b, c, d] {
                        self.push(x);
                    }
                    return true;
                }
            }
        }
        false
    }

    fn try_or_opt(&mut self, a: u32) -> bool {
        if self.n < OR_MAX + 5 {
            return self.try_or_opt_len(a, self.n.saturating_sub(5));
        }
        self.try_or_opt_len(a, OR_MAX)
    }

    fn try_or_opt_len(&mut self, a: u32, max_len: usize) -> bool {
        let mut seg = [0u32; OR_MAX];
        for forward in [true, false] {
            let p = self.next(a, !forward);
            let mut sk = a;
            for len in 1..=max_len {
                if len > 1 {
                    sk = self.next(sk, forward);
                }
                seg[len - 1] = sk;
                let s1 = a;
                let nx = self.next(sk, forward);
                if nx == p {
                    break;
                }
                let g1 = self.dist(p, s1) + self.dist(sk, nx) - self.dist(p, nx);
                if g1 <= self.eps {
                    continue;
                }
                let in_seg = |x: u32| seg[..len].contains(&x);
                for end in [s1, sk] {
                    for idx in 0..self.k {
                        let c = self.neigh[end as usize * self.k + idx];
                        if self.dist(end, c) >= g1 - self.eps {
                            break;
                        }
                        if in_seg(c) {
                            continue;
                        }
                        for (x, y) in [(c, self.next(c, forward)), (self.next(c, !forward), c)] {
                            if in_seg(x) || in_seg(y) {
                                continue;
                            }
                            let dxy = self.dist(x, y);
                            let add_keep = self.dist(x, s1) + self.dist(sk, y) - dxy;
                            let add_rev = self.dist(x, sk) + self.dist(s1, y) - dxy;
                            let (add, keep) = if add_keep <= add_rev {
                                (add_keep, true)
                            } else {
                                (add_rev, false)
                            };
                            let delta = add - g1;
                            if delta < -self.eps {
                                // p s1..sk nx .. x y  →  p nx .. x sk..s1 y  (→ x s1..sk y)
                                self.move2(p, s1, x, y);
                                self.move2(p, x, nx, sk);
                                if keep && len > 1 {
                                    self.move2(x, sk, s1, y);
                                }
                                self.cost += delta;
                                for v in [p, nx, s1, sk, x, y] {
                                    self.push(v);
                                }
                                return true;
                            }
                        }
                    }
                    if len == 1 {
                        break;
                    }
                }
            }
        }
        false
    }

    /// Local search to a 2-opt + Or-opt local optimum over the queued nodes.
    fn local_search(&mut self) {
        while let Some(a) = self.queue.pop_front() {
            self.queued[a as usize] = false;
            if self.try_two_opt(a) || self.try_or_opt(a) {
                self.push(a);
            }
        }
    }

    /// Queue every node (tour order) and descend.
    pub(crate) fn descend_all(&mut self) {
        for i in 0..self.n {
            let c = self.tour[i];
            self.push(c);
        }
        self.local_search();
    }

    /// A local double bridge: two adjacent random segments B, C inside a window of at most
    /// [`KICK_WINDOW`] positions from a random position swap places (A B C D → A C B D).
    fn kick(&mut self, rng: &mut SplitMix64) {
        let n = self.n;
        let window = KICK_WINDOW.min(n - 2);
        let q1 = rng.below(n - window);
        let mut a = 1 + rng.below(window);
        let mut b = 1 + rng.below(window);
        while a == b {
            b = 1 + rng.below(window);
        }
        if a > b {
            std::mem::swap(&mut a, &mut b);
        }
        self.apply_kick(q1, q1 + a, q1 + b);
    }

    /// Segment swap: tour[q1+1 ..= q3] = C ++ B, B = q1+1..=q2, C = q2+1..=q3.
    fn apply_kick(&mut self, q1: usize, q2: usize, q3: usize) {
        let n = self.n;
        let t = |i: usize| self.tour[i % n];
        let (a1, b1) = (t(q1), t(q1 + 1));
        let (a2, b2) = (t(q2), t(q2 + 1));
        let (a3, b3) = (t(q3), t(q3 + 1));
        let delta = self.dist(a1, b2) + self.dist(a3, b1) + self.dist(a2, b3)
            - self.dist(a1, b1)
            - self.dist(a2, b2)
            - self.dist(a3, b3);
        // tour[q1+1 ..= q3] = C ++ B where B = q1+1..=q2, C = q2+1..=q3.
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.extend_from_slice(&self.tour[q2 + 1..=q3]);
        buf.extend_from_slice(&self.tour[q1 + 1..=q2]);
        for (off, &c) in buf.iter().enumerate() {
            let i = q1 + 1 + off;
            self.tour[i] = c;
            self.pos[c as usize] = i as u32;
        }
        self.buf = buf;
        self.mark_dirty(q1 + 1, q3);
        self.cost += delta;
        for x in [a1, b1, a2, b2, a3, b3] {
            self.push(x);
        }
    }

    /// Iterated local search: `kicks` kicks, each followed by local search, kept when the tour
    /// is not longer (or forced after a stall); the tour is left at the best seen.
    pub(crate) fn iterate(&mut self, kicks: u64, rng: &mut SplitMix64) -> IlsStats {
        let n = self.n;
        let mut stats = IlsStats::default();
        if n < 5 {
            return stats;
        }
        // `cur` mirrors the tour outside a kick (restored over the dirty range on rejection);
        // `best` is the best tour seen. After `stall_limit` kicks without improving `cur`, the
        // search restarts from `best` and keeps its next kick whatever it costs.
        let stall_limit = (STALL_PER_NODE * n as u64).max(STALL_MIN);
        let mut cur = self.tour.clone();
        let mut cur_cost = self.cost;
        let mut best = cur.clone();
        let mut best_cost = cur_cost;
        let mut stall = 0u64;
        for _ in 0..kicks {
            let force = stall >= stall_limit;
            if force && cur_cost > best_cost + self.eps {
                // Back to the best tour before forcing a step away from it.
                cur.copy_from_slice(&best);
                self.set_tour(&best);
                cur_cost = self.cost;
            }
            self.dirty_lo = n;
            self.dirty_hi = 0;
            self.kick(rng);
            stats.kicks += 1;
            self.local_search();
            let (lo, hi) = (self.dirty_lo, self.dirty_hi);
            if lo > hi {
                continue;
            }
            if force || self.cost <= cur_cost + self.eps {
                if self.cost < cur_cost - self.eps {
                    stats.accepted += 1;
                    stall = 0;
                } else {
                    stall += 1;
                }
                if force {
                    stall = 0;
                }
                cur_cost = self.cost;
                cur[lo..=hi].copy_from_slice(&self.tour[lo..=hi]);
                if cur_cost < best_cost - self.eps {
                    best_cost = cur_cost;
                    best.copy_from_slice(&cur);
                }
            } else {
                stall += 1;
                self.tour[lo..=hi].copy_from_slice(&cur[lo..=hi]);
                for i in lo..=hi {
                    self.pos[self.tour[i] as usize] = i as u32;
                }
                self.cost = cur_cost;
            }
        }
        if best_cost < cur_cost - self.eps {
            self.set_tour(&best);
        }
        // Drop accumulated rounding.
        self.cost = self.tour_cost(&self.tour);
        stats
    }

    #[cfg(test)]
    pub(crate) fn cost(&self) -> f64 {
        self.cost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_matrix(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = SplitMix64::new(seed);
        let pts: Vec<(f64, f64)> = (0..n)
            .map(|_| (rng.below(1000) as f64, rng.below(1000) as f64))
            .collect();
        let mut d = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                d[i * n + j] = (pts[i].0 - pts[j].0).hypot(pts[i].1 - pts[j].1);
            }
        }
        d
    }

    /// Every applied move's incremental cost equals the recomputed cost, and the tour stays a
    /// permutation with a consistent position index.
    #[test]
    fn incremental_cost_matches_recomputed() {
        for (n, seed) in [(6, 1), (7, 2), (9, 3), (12, 4), (40, 5), (200, 6)] {
            let d = random_matrix(n, seed);
            let mut c = Cycle::new(n, &d, 10);
            let start = c.nearest_neighbour();
            c.set_tour(&start);
            c.descend_all();
            assert!((c.cost() - c.tour_cost(&c.tour.clone())).abs() < 1e-6);
            let mut rng = SplitMix64::new(seed);
            for _ in 0..300 {
                c.dirty_lo = n;
                c.dirty_hi = 0;
                c.kick(&mut rng);
                c.local_search();
                let real = c.tour_cost(&c.tour.clone());
                assert!(
                    (c.cost() - real).abs() < 1e-6,
                    "n={n}: {} vs {real}",
                    c.cost()
                );
                for (i, &x) in c.tour.iter().enumerate() {
                    assert_eq!(c.pos[x as usize] as usize, i);
                }
            }
        }
    }
}
