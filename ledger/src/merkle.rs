//! RFC 6962 / RFC 9162 shaped Merkle trees over blake3: leaf = H(0x00 ‖ data),
//! node = H(0x01 ‖ left ‖ right), an odd node is promoted (not duplicated), the empty tree is
//! H(""). The domain prefixes make the tree second-preimage safe.
//!
//! - Per block, the tx tree is built with rs_merkle (layers kept, O(n) per build) with its
//!   `concat_and_hash` overridden to the RFC node hash; the brute-force tests below pin that
//!   rs_merkle's roots and audit paths are exactly RFC 6962's.
//! - Audit-path verification, consistency proofs (RFC 9162 §2.1.4) and the append-only history
//!   accumulator over block hashes are written here: rs_merkle has no consistency proofs.

use crate::error::LedgerError;
use crate::hash::Hash;
use crate::limits::MERKLE_PROOF_HASHES_MAX;
use borsh::{BorshDeserialize, BorshSerialize};

pub fn leaf_hash(data: &[u8]) -> Hash {
    // Leaves are mostly 32-byte hashes: those are hashed from one stack buffer in a single call
    // (an incremental `Hasher`'s set-up and finalization cost about as much as the one
    // compression such a leaf needs). Same digest either way (tested below).
    if let Ok(data) = <&[u8; 32]>::try_from(data) {
        let mut buffer = [0u8; 1 + 32];
        buffer[1..].copy_from_slice(data);
        return Hash(*blake3::hash(&buffer).as_bytes());
    }
    let mut h = blake3::Hasher::new();
    h.update(&[0x00]);
    h.update(data);
    Hash(*h.finalize().as_bytes())
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buffer = [0u8; 1 + 32 + 32];
    buffer[0] = 0x01;
    buffer[1..33].copy_from_slice(&left.0);
    buffer[33..].copy_from_slice(&right.0);
    Hash(*blake3::hash(&buffer).as_bytes())
}

pub fn empty_root() -> Hash {
    Hash(*blake3::hash(b"").as_bytes())
}

#[derive(Clone)]
struct Rfc6962Blake3;

impl rs_merkle::Hasher for Rfc6962Blake3 {
    type Hash = [u8; 32];

    fn hash(data: &[u8]) -> [u8; 32] {
        *blake3::hash(data).as_bytes()
    }

    fn concat_and_hash(left: &[u8; 32], right: Option<&[u8; 32]>) -> [u8; 32] {
        match right {
            Some(right) => node_hash(&Hash(*left), &Hash(*right)).0,
            None => *left,
        }
    }
}

/// A block's transaction tree: leaves are the transactions' hashes.
pub struct TxTree {
    tree: rs_merkle::MerkleTree<Rfc6962Blake3>,
    size: usize,
}

impl TxTree {
    pub fn new(leaf_data: &[Hash]) -> TxTree {
        let leaves: Vec<[u8; 32]> = leaf_data.iter().map(|d| leaf_hash(&d.0).0).collect();
        TxTree {
            tree: rs_merkle::MerkleTree::from_leaves(&leaves),
            size: leaf_data.len(),
        }
    }

    pub fn root(&self) -> Hash {
        self.tree.root().map(Hash).unwrap_or_else(empty_root)
    }

    pub fn proof(&self, index: usize) -> Option<InclusionProof> {
        if index >= self.size {
            return None;
        }
        let path = self
            .tree
            .proof(&[index])
            .proof_hashes()
            .iter()
            .map(|h| Hash(*h))
            .collect();
        Some(InclusionProof {
            leaf_index: index as u64,
            tree_size: self.size as u64,
            path,
        })
    }
}

/// Merkle root over `leaf_data` (each is hashed as a leaf): the root of [`TxTree`], computed
/// level by level in one buffer (no layers kept: a block computes several roots, one per
/// transaction, state write and package fact, and building rs_merkle's tree for each was most
/// of their cost after the hashing itself).
pub fn root(leaf_data: &[Hash]) -> Hash {
    if leaf_data.is_empty() {
        return empty_root();
    }
    let mut level: Vec<Hash> = leaf_data.iter().map(|d| leaf_hash(&d.0)).collect();
    while level.len() > 1 {
        let mut next = 0;
        for i in (0..level.len()).step_by(2) {
            level[next] = match level.get(i + 1) {
                Some(right) => node_hash(&level[i], right),
                // An odd node is promoted.
                None => level[i],
            };
            next += 1;
        }
        level.truncate(next);
    }
    level[0]
}

/// An RFC 9162 audit path for the leaf at `leaf_index` in a tree of `tree_size` leaves.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct InclusionProof {
    pub leaf_index: u64,
    pub tree_size: u64,
    /// Sibling hashes from the leaf up.
    pub path: Vec<Hash>,
}

impl InclusionProof {
    /// RFC 9162 §2.1.3.2: recomputes the root from the leaf's data and the path.
    pub fn verify(&self, leaf_data: &[u8], root: &Hash) -> Result<(), LedgerError> {
        if self.leaf_index >= self.tree_size {
            return Err(LedgerError::Proof(format!(
                "leaf index {} is outside a tree of {} leaves",
                self.leaf_index, self.tree_size
            )));
        }
        if self.path.len() > MERKLE_PROOF_HASHES_MAX {
            return Err(LedgerError::Proof(format!(
                "audit path of {} hashes exceeds {MERKLE_PROOF_HASHES_MAX}",
                self.path.len()
            )));
        }
        let mut f = self.leaf_index;
        let mut s = self.tree_size - 1;
        let mut r = leaf_hash(leaf_data);
        for p in &self.path {
            if s == 0 {
                return Err(LedgerError::Proof(
                    "audit path is longer than the tree is deep".into(),
                ));
            }
            if f & 1 == 1 || f == s {
                r = node_hash(p, &r);
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            } else {
                r = node_hash(&r, p);
            }
            f >>= 1;
            s >>= 1;
        }
        if s != 0 {
            return Err(LedgerError::Proof(
                "audit path is shorter than the tree is deep".into(),
            ));
        }
        if &r != root {
            return Err(LedgerError::Proof(format!(
                "computed root {r} differs from the expected root {root}"
            )));
        }
        Ok(())
    }
}

fn largest_power_of_two_below(n: usize) -> usize {
    debug_assert!(n > 1);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// MTH over already leaf-hashed nodes, by the RFC's recursion (O(n)).
fn subtree_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = largest_power_of_two_below(n);
            node_hash(&subtree_root(&leaves[..k]), &subtree_root(&leaves[k..]))
        }
    }
}

/// RFC 9162 consistency proof: the tree of `old_size` leaves is a prefix of the one of `new_size`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ConsistencyProof {
    pub old_size: u64,
    pub new_size: u64,
    pub path: Vec<Hash>,
}

impl ConsistencyProof {
    /// PROOF(m, D[n]) over the leaf data `all` (length n), for `old_size` = m, 0 < m <= n.
    pub fn generate(all_leaf_data: &[Hash], old_size: usize) -> Option<ConsistencyProof> {
        if old_size == 0 || old_size > all_leaf_data.len() {
            return None;
        }
        let leaves: Vec<Hash> = all_leaf_data.iter().map(|d| leaf_hash(&d.0)).collect();
        let mut path = Vec::new();
        subproof(old_size, &leaves, true, &mut path);
        Some(ConsistencyProof {
            old_size: old_size as u64,
            new_size: leaves.len() as u64,
            path,
        })
    }

    /// RFC 9162 §2.1.4.2.
    pub fn verify(&self, old_root: &Hash, new_root: &Hash) -> Result<(), LedgerError> {
        let fail = |why: &str| {
            Err(LedgerError::Proof(format!(
                "consistency {}→{}: {why}",
                self.old_size, self.new_size
            )))
        };
        if self.old_size == 0 || self.old_size > self.new_size {
            return fail("sizes must satisfy 0 < old <= new");
        }
        if self.path.len() > MERKLE_PROOF_HASHES_MAX {
            return fail("proof too long");
        }
        if self.old_size == self.new_size {
            if !self.path.is_empty() {
                return fail("equal sizes need an empty proof");
            }
            return if old_root == new_root {
                Ok(())
            } else {
                fail("equal sizes but different roots")
            };
        }
        if self.path.is_empty() {
            return fail("empty proof");
        }
        let mut path: Vec<Hash> = Vec::with_capacity(self.path.len() + 1);
        if self.old_size.is_power_of_two() {
            path.push(*old_root);
        }
        path.extend_from_slice(&self.path);
        let mut f = self.old_size - 1;
        let mut s = self.new_size - 1;
        while f & 1 == 1 {
            f >>= 1;
            s >>= 1;
        }
        let mut fr = path[0];
        let mut sr = path[0];
        for c in &path[1..] {
            if s == 0 {
                return fail("proof longer than needed");
            }
            if f & 1 == 1 || f == s {
                fr = node_hash(c, &fr);
                sr = node_hash(c, &sr);
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            } else {
                sr = node_hash(&sr, c);
            }
            f >>= 1;
            s >>= 1;
        }
        if s != 0 {
            return fail("proof shorter than needed");
        }
        if &fr != old_root {
            return fail("old root does not match");
        }
        if &sr != new_root {
            return fail("new root does not match");
        }
        Ok(())
    }
}

fn subproof(m: usize, leaves: &[Hash], complete: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            out.push(subtree_root(leaves));
        }
        return;
    }
    let k = largest_power_of_two_below(n);
    if m <= k {
        subproof(m, &leaves[..k], complete, out);
        out.push(subtree_root(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, out);
        out.push(subtree_root(&leaves[..k]));
    }
}

/// Audit path for leaf `index` among `all_leaf_data`, by the RFC recursion (O(n)); used for the
/// history tree, whose leaves the store keeps.
pub fn inclusion_proof(all_leaf_data: &[Hash], index: usize) -> Option<InclusionProof> {
    if index >= all_leaf_data.len() {
        return None;
    }
    let leaves: Vec<Hash> = all_leaf_data.iter().map(|d| leaf_hash(&d.0)).collect();
    let mut path = Vec::new();
    let (mut lo, mut hi, mut m) = (0usize, leaves.len(), index);
    let mut stack = Vec::new();
    while hi - lo > 1 {
        let k = largest_power_of_two_below(hi - lo);
        if m < k {
            stack.push(subtree_root(&leaves[lo + k..hi]));
            hi = lo + k;
        } else {
            stack.push(subtree_root(&leaves[lo..lo + k]));
            lo += k;
            m -= k;
        }
    }
    while let Some(h) = stack.pop() {
        path.push(h);
    }
    Some(InclusionProof {
        leaf_index: index as u64,
        tree_size: leaves.len() as u64,
        path,
    })
}

/// The append-only tree over block hashes, kept as its perfect-subtree peaks (O(log n) state).
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct HistoryAccumulator {
    pub size: u64,
    /// (height of the perfect subtree, its root), largest first.
    pub peaks: Vec<(u8, Hash)>,
}

impl HistoryAccumulator {
    pub fn append(&mut self, leaf_data: &Hash) {
        let mut node = (0u8, leaf_hash(&leaf_data.0));
        while let Some(&(height, left)) = self.peaks.last() {
            if height != node.0 {
                break;
            }
            self.peaks.pop();
            node = (height + 1, node_hash(&left, &node.1));
        }
        self.peaks.push(node);
        self.size += 1;
    }

    /// RFC 6962 root: MTH splits off the largest perfect left subtree first, so the root is the
    /// peaks folded from the right.
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        let Some(&(_, mut acc)) = peaks.next() else {
            return empty_root();
        };
        for (_, peak) in peaks {
            acc = node_hash(peak, &acc);
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Domain;
    use proptest::prelude::*;

    #[test]
    fn leaf_and_node_hashes_are_the_prefixed_blake3_of_their_input() {
        let incremental = |parts: &[&[u8]]| {
            let mut h = blake3::Hasher::new();
            for part in parts {
                h.update(part);
            }
            Hash(*h.finalize().as_bytes())
        };
        for len in [0usize, 1, 31, 32, 33, 64, 100] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            assert_eq!(
                leaf_hash(&data),
                incremental(&[&[0x00], &data]),
                "{len} bytes"
            );
        }
        let (left, right) = (Hash([0x11; 32]), Hash([0xEE; 32]));
        assert_eq!(
            node_hash(&left, &right),
            incremental(&[&[0x01], &left.0, &right.0])
        );
        assert_ne!(node_hash(&left, &right), node_hash(&right, &left));
    }

    /// The RFC 6962 definition, written as plainly as possible.
    fn reference_root(data: &[Hash]) -> Hash {
        match data.len() {
            0 => empty_root(),
            1 => leaf_hash(&data[0].0),
            n => {
                let mut k = 1;
                while k * 2 < n {
                    k *= 2;
                }
                node_hash(&reference_root(&data[..k]), &reference_root(&data[k..]))
            }
        }
    }

    fn reference_path(m: usize, data: &[Hash]) -> Vec<Hash> {
        let n = data.len();
        if n <= 1 {
            return vec![];
        }
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        if m < k {
            let mut p = reference_path(m, &data[..k]);
            p.push(reference_root(&data[k..]));
            p
        } else {
            let mut p = reference_path(m - k, &data[k..]);
            p.push(reference_root(&data[..k]));
            p
        }
    }

    fn data(n: usize) -> Vec<Hash> {
        (0..n as u64)
            .map(|i| Domain::Application.hash(&i.to_le_bytes()))
            .collect()
    }

    #[test]
    fn rs_merkle_matches_rfc6962_roots_and_paths() {
        for n in 0..=130 {
            let d = data(n);
            let tree = TxTree::new(&d);
            assert_eq!(tree.root(), reference_root(&d), "root n={n}");
            assert_eq!(root(&d), reference_root(&d), "level-by-level root n={n}");
            let mut acc = HistoryAccumulator::default();
            for x in &d {
                acc.append(x);
            }
            assert_eq!(acc.root(), reference_root(&d), "accumulator n={n}");
            for i in 0..n {
                let proof = tree.proof(i).unwrap();
                assert_eq!(proof.path, reference_path(i, &d), "path n={n} i={i}");
                assert_eq!(
                    inclusion_proof(&d, i).unwrap(),
                    proof,
                    "recursive path n={n} i={i}"
                );
                proof.verify(&d[i].0, &tree.root()).unwrap();
            }
            assert!(tree.proof(n).is_none());
        }
    }

    #[test]
    fn inclusion_rejects_wrong_leaf_index_and_root() {
        let d = data(11);
        let tree = TxTree::new(&d);
        let proof = tree.proof(5).unwrap();
        assert!(proof.verify(&d[4].0, &tree.root()).is_err());
        let mut moved = proof.clone();
        moved.leaf_index = 4;
        assert!(moved.verify(&d[5].0, &tree.root()).is_err());
        // A size with another shape fails. (A size with the same shape, e.g. 12, verifies: the
        // root does not commit to the size, which is why bundles pin it to header.tx_count.)
        let mut resized = proof.clone();
        resized.tree_size = 6;
        assert!(resized.verify(&d[5].0, &tree.root()).is_err());
        let mut short = proof.clone();
        short.path.pop();
        assert!(short
            .verify(&d[5].0, &tree.root())
            .unwrap_err()
            .to_string()
            .contains("shorter"));
        let mut long = proof;
        long.path.push(Hash::ZERO);
        assert!(long.verify(&d[5].0, &tree.root()).is_err());
    }

    #[test]
    fn consistency_proofs_all_pairs_up_to_40() {
        for n in 1..=40 {
            let d = data(n);
            let new_root = reference_root(&d);
            for m in 1..=n {
                let old_root = reference_root(&d[..m]);
                let proof = ConsistencyProof::generate(&d, m).unwrap();
                proof
                    .verify(&old_root, &new_root)
                    .unwrap_or_else(|e| panic!("m={m} n={n}: {e}"));
                if m < n {
                    assert!(
                        proof.verify(&new_root, &new_root).is_err(),
                        "m={m} n={n} wrong old root"
                    );
                    let mut bad = proof.clone();
                    bad.path[0].0[0] ^= 1;
                    assert!(bad.verify(&old_root, &new_root).is_err());
                    // A tree that differs from the old one in a leaf is not an extension.
                    let mut forked = d.clone();
                    forked[m - 1] = Hash::ZERO;
                    assert!(proof.verify(&old_root, &reference_root(&forked)).is_err());
                }
            }
        }
    }

    proptest! {
        #[test]
        fn random_trees_prove_every_leaf(n in 1usize..600, pick in any::<prop::sample::Index>()) {
            let d = data(n);
            let tree = TxTree::new(&d);
            let i = pick.index(n);
            let proof = tree.proof(i).unwrap();
            prop_assert!(proof.verify(&d[i].0, &tree.root()).is_ok());
            prop_assert_eq!(tree.root(), reference_root(&d));
        }

        #[test]
        fn random_consistency(n in 1usize..300, m_pick in any::<prop::sample::Index>()) {
            let d = data(n);
            let m = m_pick.index(n) + 1;
            let proof = ConsistencyProof::generate(&d, m).unwrap();
            prop_assert!(proof.verify(&reference_root(&d[..m]), &reference_root(&d)).is_ok());
        }
    }
}
