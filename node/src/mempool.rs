//! The mempool: admitted, signature-checked transactions waiting for a block.
//!
//! - De-duplicates by transaction hash.
//! - Per-signer nonces: a transaction's nonce must be at least the signer's next committed
//!   nonce (lower is a replay) and at most `NONCE_WINDOW` ahead; one transaction per nonce.
//! - Bounded in count and bytes overall, and per signer; when full it refuses with `Full`
//!   (the API turns that into 503 + Retry-After: backpressure, not a crash).
//! - Batches for proposals take each signer's contiguous run from its next nonce, round-robin
//!   across signers so one busy signer cannot starve the others.

use pharmalink_ledger::{Hash, PublicKey, Transaction};
use std::collections::{BTreeMap, HashSet, VecDeque};
use thiserror::Error;

/// Transactions held at once.
pub const MEMPOOL_TXS_MAX: usize = 200_000;
/// Canonical bytes held at once.
pub const MEMPOOL_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Pending transactions of one signer, and how far ahead of its next nonce it may submit.
pub const NONCE_WINDOW: u64 = 50_000;
/// Hashes of transactions checked in proposals (not pending here) remembered, the latest ones:
/// several blocks' worth, longer than gossip admission lags behind under load.
pub const CHECKED_IN_PROPOSALS_MAX: usize = 65_536;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MempoolError {
    #[error("mempool full ({txs} transactions, {bytes} bytes): retry later")]
    Full { txs: usize, bytes: usize },
    #[error("nonce {nonce} was already used (the signer's next nonce is {next})")]
    NonceUsed { nonce: u64, next: u64 },
    #[error("nonce {nonce} is more than {NONCE_WINDOW} ahead of the signer's next nonce {next}")]
    NonceTooFar { nonce: u64, next: u64 },
    #[error("another transaction with nonce {nonce} is already pending for this signer")]
    NonceTaken { nonce: u64 },
    #[error("transaction is for chain {found:?}, not {expected:?}")]
    WrongChain { found: String, expected: String },
}

impl MempoolError {
    /// Machine-readable code for clients.
    pub fn code(&self) -> &'static str {
        match self {
            MempoolError::Full { .. } => "mempool_full",
            MempoolError::NonceUsed { .. } => "nonce_used",
            MempoolError::NonceTooFar { .. } => "nonce_too_far",
            MempoolError::NonceTaken { .. } => "nonce_taken",
            MempoolError::WrongChain { .. } => "wrong_chain",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Added,
    /// The same transaction is already pending.
    AlreadyPending,
}

struct Pending {
    tx: Transaction,
    hash: Hash,
    bytes: usize,
}

#[derive(Default)]
struct SignerQueue {
    /// The next nonce the chain will accept from this signer.
    next: u64,
    pending: BTreeMap<u64, Pending>,
}

pub struct Mempool {
    chain_id: String,
    signers: BTreeMap<PublicKey, SignerQueue>,
    /// Pending hashes, for membership only (never iterated, so its order does not matter): a
    /// hash set, since an ordered set of tens of thousands of random 32-byte keys cost a dozen
    /// key comparisons per lookup, and every transaction is looked up three times. Hashed
    /// with seeded foldhash, not SipHash: several times cheaper for 32-byte keys.
    hashes: HashSet<Hash, foldhash::fast::RandomState>,
    bytes: usize,
    /// Round-robin start for the next batch.
    cursor: Option<PublicKey>,
    /// Transactions whose signatures a proposal's validation checked because they were not
    /// pending here (gossip had not brought them yet): when their gossip comes, they are not
    /// checked again. Bounded: the latest [`CHECKED_IN_PROPOSALS_MAX`], oldest forgotten first.
    checked_in_proposals: HashSet<Hash, foldhash::fast::RandomState>,
    checked_order: VecDeque<Hash>,
}

impl Mempool {
    pub fn new(chain_id: String) -> Mempool {
        Mempool {
            chain_id,
            signers: BTreeMap::new(),
            hashes: HashSet::default(),
            bytes: 0,
            cursor: None,
            checked_in_proposals: HashSet::default(),
            checked_order: VecDeque::new(),
        }
    }

    /// Remembers transactions whose signatures a proposal's validation checked.
    pub fn note_checked_in_proposal(&mut self, hashes: impl IntoIterator<Item = Hash>) {
        for hash in hashes {
            if self.checked_in_proposals.insert(hash) {
                self.checked_order.push_back(hash);
            }
            if self.checked_order.len() > CHECKED_IN_PROPOSALS_MAX {
                if let Some(oldest) = self.checked_order.pop_front() {
                    self.checked_in_proposals.remove(&oldest);
                }
            }
        }
    }

    /// Whether a transaction with this hash (of its signed canonical bytes) is pending.
    pub fn is_pending(&self, hash: &Hash) -> bool {
        self.hashes.contains(hash)
    }

    /// Whether a proposal's validation checked the signature of the transaction with this hash
    /// (one of the latest [`CHECKED_IN_PROPOSALS_MAX`]).
    pub fn checked_in_proposal(&self, hash: &Hash) -> bool {
        self.checked_in_proposals.contains(hash)
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn contains(&self, hash: &Hash) -> bool {
        self.hashes.contains(hash)
    }

    /// The hash of the pending transaction equal to `tx` (same signer, nonce, payload and
    /// signature): verified on admission, and hashed then. Found by signer and nonce, so a
    /// proposal's transactions need not be encoded and hashed again to be looked up.
    pub fn pending_hash(&self, tx: &Transaction) -> Option<Hash> {
        let pending = self.signers.get(&tx.signer)?.pending.get(&tx.nonce)?;
        (pending.tx == *tx).then_some(pending.hash)
    }

    /// Admits a transaction whose signature and signer (a member key, checked by the
    /// application) the caller has verified. `committed_next` is the
    /// signer's next nonce on the chain (used when the signer has no queue yet).
    pub fn insert(
        &mut self,
        tx: Transaction,
        hash: Hash,
        bytes: usize,
        committed_next: u64,
    ) -> Result<Admission, MempoolError> {
        if tx.chain_id != self.chain_id {
            return Err(MempoolError::WrongChain {
                found: tx.chain_id.clone(),
                expected: self.chain_id.clone(),
            });
        }
        if self.hashes.contains(&hash) {
            return Ok(Admission::AlreadyPending);
        }
        let queue = self
            .signers
            .entry(tx.signer)
            .or_insert_with(|| SignerQueue {
                next: committed_next,
                pending: BTreeMap::new(),
            });
        queue.next = queue.next.max(committed_next);
        let next = queue.next;
        if tx.nonce < next {
            return Err(MempoolError::NonceUsed {
                nonce: tx.nonce,
                next,
            });
        }
        if tx.nonce - next >= NONCE_WINDOW {
            return Err(MempoolError::NonceTooFar {
                nonce: tx.nonce,
                next,
            });
        }
        if queue.pending.contains_key(&tx.nonce) {
            return Err(MempoolError::NonceTaken { nonce: tx.nonce });
        }
        if self.hashes.len() >= MEMPOOL_TXS_MAX || self.bytes + bytes > MEMPOOL_BYTES_MAX {
            return Err(MempoolError::Full {
                txs: self.hashes.len(),
                bytes: self.bytes,
            });
        }
        queue.pending.insert(tx.nonce, Pending { tx, hash, bytes });
        self.hashes.insert(hash);
        self.bytes += bytes;
        Ok(Admission::Added)
    }

    /// The first nonce of `signer` neither committed (`committed_next` is the chain's next) nor
    /// pending here: where a signer that holds its key in this node continues.
    pub fn next_free_nonce(&self, signer: &PublicKey, committed_next: u64) -> u64 {
        let mut next = committed_next;
        if let Some(queue) = self.signers.get(signer) {
            next = next.max(queue.next);
            while queue.pending.contains_key(&next) {
                next += 1;
            }
        }
        next
    }

    /// Up to `txs_max` transactions and `bytes_max` bytes for a proposal, fair across signers.
    /// Does not remove them: they leave when committed.
    pub fn batch(&mut self, txs_max: usize, bytes_max: usize) -> Vec<(Transaction, Hash)> {
        let signers: Vec<PublicKey> = self.signers.keys().copied().collect();
        if signers.is_empty() {
            return Vec::new();
        }
        let start = self
            .cursor
            .and_then(|c| signers.iter().position(|s| *s > c))
            .unwrap_or(0);
        // Each signer's contiguous run from its next nonce.
        let mut runs: Vec<std::iter::Peekable<std::vec::IntoIter<&Pending>>> =
            Vec::with_capacity(signers.len());
        for i in 0..signers.len() {
            let queue = &self.signers[&signers[(start + i) % signers.len()]];
            let mut run = Vec::new();
            let mut expected = queue.next;
            for (nonce, pending) in queue.pending.range(queue.next..) {
                if *nonce != expected {
                    break;
                }
                run.push(pending);
                expected += 1;
            }
            runs.push(run.into_iter().peekable());
        }
        let (mut out, mut bytes) = (Vec::new(), 0usize);
        let mut last_signer = None;
        'fill: loop {
            let mut progressed = false;
            for (i, run) in runs.iter_mut().enumerate() {
                if out.len() >= txs_max {
                    break 'fill;
                }
                let Some(pending) = run.peek() else { continue };
                if bytes + pending.bytes > bytes_max {
                    break 'fill;
                }
                bytes += pending.bytes;
                out.push((pending.tx.clone(), pending.hash));
                last_signer = Some(signers[(start + i) % signers.len()]);
                run.next();
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        if last_signer.is_some() {
            self.cursor = last_signer;
        }
        out
    }

    /// Forgets committed transactions and advances the signers' next nonces. Pending
    /// transactions whose nonce is now used are dropped (they can never commit).
    pub fn remove_committed(&mut self, committed: &[(PublicKey, u64, Hash)]) -> Vec<Hash> {
        let mut dropped = Vec::new();
        for (signer, nonce, hash) in committed {
            // A signer with no queue here has nothing pending; its next nonce comes from the
            // chain when it next submits.
            let Some(queue) = self.signers.get_mut(signer) else {
                continue;
            };
            queue.next = queue.next.max(nonce + 1);
            // The queue is in nonce order: the used nonces are at its front.
            while let Some(entry) = queue.pending.first_entry() {
                if *entry.key() >= queue.next {
                    break;
                }
                let p = entry.remove();
                self.bytes -= p.bytes;
                self.hashes.remove(&p.hash);
                if p.hash != *hash {
                    dropped.push(p.hash);
                }
            }
            if queue.pending.is_empty() {
                self.signers.remove(signer);
            }
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pharmalink_ledger::SigningKey;

    fn key(i: u8) -> SigningKey {
        SigningKey::from_seed([i; 32])
    }

    fn tx(k: &SigningKey, nonce: u64) -> (Transaction, Hash) {
        let tx = Transaction::sign("mp", k, nonce, vec![nonce as u8 + 1; 8]).unwrap();
        let hash = tx.hash();
        (tx, hash)
    }

    fn pool() -> Mempool {
        Mempool::new("mp".into())
    }

    fn add(pool: &mut Mempool, k: &SigningKey, nonce: u64) -> Result<Admission, MempoolError> {
        let (t, h) = tx(k, nonce);
        pool.insert(t, h, 100, 0)
    }

    #[test]
    fn remembers_the_latest_transactions_checked_in_proposals() {
        let mut p = pool();
        let hash = |i: usize| Hash(*blake3::hash(&i.to_le_bytes()).as_bytes());
        p.note_checked_in_proposal((0..CHECKED_IN_PROPOSALS_MAX + 10).map(hash));
        // Noting one again does not make room twice.
        p.note_checked_in_proposal([hash(CHECKED_IN_PROPOSALS_MAX + 9)]);
        assert_eq!(p.checked_in_proposals.len(), CHECKED_IN_PROPOSALS_MAX);
        assert_eq!(p.checked_order.len(), CHECKED_IN_PROPOSALS_MAX);
        assert!((0..10).all(|i| !p.checked_in_proposal(&hash(i))));
        assert!((10..CHECKED_IN_PROPOSALS_MAX + 10).all(|i| p.checked_in_proposal(&hash(i))));
        assert!(!p.is_pending(&hash(10)));
    }

    #[test]
    fn pending_hash_finds_only_the_same_transaction() {
        let mut p = pool();
        let (t, h) = tx(&key(1), 0);
        p.insert(t.clone(), h, 100, 0).unwrap();
        assert_eq!(p.pending_hash(&t), Some(h));
        // Same signer and nonce, another payload: not the pending one.
        let (other, _) = tx(&key(1), 0);
        let other = Transaction {
            payload: vec![9; 3],
            ..other
        };
        assert_eq!(p.pending_hash(&other), None);
        // A tampered signature is not the pending transaction either.
        let mut forged = t.clone();
        forged.signature.0[0] ^= 1;
        assert_eq!(p.pending_hash(&forged), None);
        assert_eq!(p.pending_hash(&tx(&key(2), 0).0), None);
        assert_eq!(p.pending_hash(&tx(&key(1), 1).0), None);
    }

    #[test]
    fn admission_rules() {
        let mut p = pool();
        assert_eq!(add(&mut p, &key(1), 0), Ok(Admission::Added));
        assert_eq!(add(&mut p, &key(1), 0), Ok(Admission::AlreadyPending));
        let other = Transaction::sign("mp", &key(1), 0, vec![9; 3]).unwrap();
        let h = other.hash();
        assert_eq!(
            p.insert(other, h, 50, 0),
            Err(MempoolError::NonceTaken { nonce: 0 })
        );
        assert!(matches!(
            add(&mut p, &key(1), NONCE_WINDOW),
            Err(MempoolError::NonceTooFar { .. })
        ));
        let foreign = Transaction::sign("other", &key(1), 1, vec![1]).unwrap();
        let h = foreign.hash();
        assert!(matches!(
            p.insert(foreign, h, 10, 0),
            Err(MempoolError::WrongChain { .. })
        ));
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn batches_are_contiguous_and_fair() {
        let mut p = pool();
        for n in 0..10 {
            add(&mut p, &key(1), n).unwrap();
        }
        for n in [0, 1, 3] {
            add(&mut p, &key(2), n).unwrap(); // gap at 2: only 0 and 1 are proposable
        }
        add(&mut p, &key(3), 0).unwrap();
        let batch = p.batch(6, usize::MAX);
        assert_eq!(batch.len(), 6);
        let from = |i: u8| {
            batch
                .iter()
                .filter(|(t, _)| t.signer == key(i).public_key())
                .count()
        };
        assert_eq!(
            (from(1), from(2), from(3)),
            (3, 2, 1),
            "round-robin, not first come"
        );
        let all = p.batch(100, usize::MAX);
        assert_eq!(all.len(), 10 + 2 + 1);
        assert!(all.iter().all(|(t, hash)| t.hash() == *hash), "hashes");
        for signer in [1u8, 2] {
            let nonces: Vec<u64> = all
                .iter()
                .filter(|(t, _)| t.signer == key(signer).public_key())
                .map(|(t, _)| t.nonce)
                .collect();
            assert!(
                nonces.windows(2).all(|w| w[1] == w[0] + 1),
                "signer {signer}: {nonces:?}"
            );
        }
        assert_eq!(p.batch(100, 250).len(), 2, "byte bound");
    }

    #[test]
    fn commits_advance_nonces_and_free_space() {
        let mut p = pool();
        for n in 0..5 {
            add(&mut p, &key(1), n).unwrap();
        }
        let committed: Vec<_> = (0..3)
            .map(|n| {
                let (t, h) = tx(&key(1), n);
                (t.signer, n, h)
            })
            .collect();
        p.remove_committed(&committed);
        assert_eq!(p.len(), 2);
        assert_eq!(p.bytes(), 200);
        assert_eq!(
            add(&mut p, &key(1), 1),
            Err(MempoolError::NonceUsed { nonce: 1, next: 3 })
        );
        let batch = p.batch(10, usize::MAX);
        assert_eq!(
            batch.iter().map(|(t, _)| t.nonce).collect::<Vec<_>>(),
            vec![3, 4]
        );
    }

    #[test]
    fn full_is_backpressure() {
        let mut p = pool();
        let (t, h) = tx(&key(1), 0);
        assert!(matches!(
            p.insert(t, h, MEMPOOL_BYTES_MAX + 1, 0),
            Err(MempoolError::Full { .. })
        ));
    }
}
