//! The append rules every store enforces, checked on the in-memory store (the RocksDB store in
//! node/ runs the same `validate_commit` and has its own tests).

use pharmalink_ledger::builder::{genesis, ChainBuilder};
use pharmalink_ledger::store::verify_chain;
use pharmalink_ledger::*;

fn keys(n: u8) -> Vec<SigningKey> {
    (1..=n).map(|i| SigningKey::from_seed([i; 32])).collect()
}

fn setup() -> (MemStore, ChainBuilder, SigningKey) {
    let g = genesis("test-chain", 1000, &keys(4), vec![]).unwrap();
    (
        MemStore::new(g.clone()),
        ChainBuilder::new(g, keys(4)).unwrap(),
        SigningKey::from_seed([99; 32]),
    )
}

fn txs(client: &SigningKey, start: u64, n: u64) -> Vec<Transaction> {
    (start..start + n)
        .map(|i| {
            Transaction::sign("test-chain", client, i, format!("payload {i}").into_bytes()).unwrap()
        })
        .collect()
}

fn rejected_with(store: &mut MemStore, commit: &BlockCommit, needle: &str) {
    let before = store.head().unwrap();
    let err = store.append(commit).unwrap_err().to_string();
    assert!(err.contains(needle), "expected {needle:?} in {err:?}");
    assert_eq!(
        store.head().unwrap(),
        before,
        "a rejected append must not change the store"
    );
}

#[test]
fn a_valid_chain_appends_and_verifies() {
    let (mut store, mut chain, client) = setup();
    for h in 0..5u64 {
        let commit = chain
            .next_block(txs(&client, h * 10, 10), 2000 + h, Hash::ZERO)
            .unwrap();
        store.append(&commit).unwrap();
    }
    let head = verify_chain(&store).unwrap().unwrap();
    assert_eq!(head.height, 5);
    assert_eq!(head.history.size, 5);
    let tx = &store.block(3).unwrap().unwrap().txs[4];
    let location = store.tx_location(&tx.hash()).unwrap().unwrap();
    assert_eq!(
        location,
        TxLocation {
            height: 3,
            index: 4
        }
    );
    assert_eq!(store.transaction(location).unwrap().as_ref(), Some(tx));
}

#[test]
fn broken_links_are_rejected_with_the_reason() {
    let (mut store, mut chain, client) = setup();
    let first = chain
        .next_block(txs(&client, 0, 3), 2000, Hash::ZERO)
        .unwrap();
    store.append(&first).unwrap();
    let good = chain
        .next_block(txs(&client, 3, 3), 2001, Hash::ZERO)
        .unwrap();

    rejected_with(&mut store, &first, "expected height 2");

    let mut wrong_prev = good.clone();
    wrong_prev.block.header.previous_block_hash = Hash([1; 32]);
    wrong_prev.certificate = chain.certify(&wrong_prev.block.header);
    rejected_with(&mut store, &wrong_prev, "previous_block_hash");

    let mut extra_tx = good.clone();
    extra_tx.block.txs.push(txs(&client, 50, 1).remove(0));
    extra_tx.block.header.tx_count += 1;
    extra_tx.certificate = chain.certify(&extra_tx.block.header);
    rejected_with(&mut store, &extra_tx, "tx_root");

    let mut swapped_tx = good.clone();
    swapped_tx.block.txs[0] = txs(&client, 77, 1).remove(0);
    rejected_with(&mut store, &swapped_tx, "tx_root");

    let mut early = good.clone();
    early.block.header.timestamp_ms = 1999;
    early.certificate = chain.certify(&early.block.header);
    rejected_with(&mut store, &early, "timestamp_ms");

    let mut bad_history = good.clone();
    bad_history.block.header.history_root = Hash::ZERO;
    bad_history.certificate = chain.certify(&bad_history.block.header);
    rejected_with(&mut store, &bad_history, "history_root");

    let mut weak_cert = good.clone();
    weak_cert.certificate.signatures.truncate(2);
    rejected_with(&mut store, &weak_cert, "below the quorum");

    let mut forged_cert = good.clone();
    forged_cert.certificate.signatures[1].signature.0[10] ^= 0x40;
    rejected_with(&mut store, &forged_cert, "item 1");

    let mut other_block_cert = good.clone();
    other_block_cert.certificate = first.certificate.clone();
    rejected_with(&mut store, &other_block_cert, "certificate is for height 1");

    let mut foreign = good.clone();
    foreign.block.header.chain_id = "other-chain".into();
    rejected_with(&mut store, &foreign, "is for chain \"test-chain\"");

    store.append(&good).unwrap();
    assert_eq!(verify_chain(&store).unwrap().unwrap().height, 2);
}

#[test]
fn certificates_from_outsiders_do_not_count() {
    let (mut store, mut chain, client) = setup();
    let mut commit = chain
        .next_block(txs(&client, 0, 1), 2000, Hash::ZERO)
        .unwrap();
    // Re-sign validator 2's slot with an outsider's key.
    let outsider = SigningKey::from_seed([200; 32]);
    let h = &commit.block.header;
    let digest = vote_signing_digest(
        &h.chain_id,
        VoteKind::Precommit,
        h.height,
        h.round,
        Some(h.hash()),
    );
    commit.certificate.signatures[2].signature = outsider.sign(digest.as_bytes());
    rejected_with(&mut store, &commit, "item 2");
    // A prevote signature is not a precommit.
    let (_, mut fresh_chain, _) = setup();
    let mut prevote = fresh_chain.next_block(vec![], 2000, Hash::ZERO).unwrap();
    let h = &prevote.block.header;
    let digest = vote_signing_digest(
        &h.chain_id,
        VoteKind::Prevote,
        h.height,
        h.round,
        Some(h.hash()),
    );
    prevote.certificate.signatures[0].signature = keys(4)[0].sign(digest.as_bytes());
    let mut fresh = MemStore::new(store.genesis().clone());
    rejected_with(&mut fresh, &prevote, "item 0");
}

#[test]
fn verify_chain_catches_a_bad_transaction_signature() {
    let (mut store, mut chain, client) = setup();
    let mut t = txs(&client, 0, 3);
    t[1].signature.0[3] ^= 1;
    // The store does not re-verify tx signatures on append (the mempool did); verify_chain does.
    let commit = chain.next_block(t, 2000, Hash::ZERO).unwrap();
    store.append(&commit).unwrap();
    let err = verify_chain(&store).unwrap_err().to_string();
    assert!(err.contains("height 1") && err.contains("item 1"), "{err}");
}

#[test]
fn a_certificate_from_a_later_round_decides_a_re_proposed_block() {
    let (mut store, mut chain, client) = setup();
    let mut commit = chain
        .next_block(txs(&client, 0, 2), 2000, Hash::ZERO)
        .unwrap();
    // Decided in round 3 although first proposed (header) in round 0.
    let h = commit.block.header.clone();
    let digest = vote_signing_digest(
        &h.chain_id,
        VoteKind::Precommit,
        h.height,
        3,
        Some(h.hash()),
    );
    commit.certificate.round = 3;
    for (sig, key) in commit.certificate.signatures.iter_mut().zip(keys(4)) {
        sig.signature = key.sign(digest.as_bytes());
    }
    store.append(&commit).unwrap();
    // A certificate from a round before the header's is not.
    let (mut store2, mut chain2, _) = setup();
    let mut early = chain2
        .next_block(txs(&client, 0, 2), 2000, Hash::ZERO)
        .unwrap();
    early.block.header.round = 2;
    early.certificate = chain2.certify(&early.block.header);
    early.certificate.round = 1;
    rejected_with(&mut store2, &early, "certificate is for height 1 round 1");
}
