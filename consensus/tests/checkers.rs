//! Each property checker flags what it exists to flag (and nothing on a correct record).

use pharmalink_consensus::sim::app::{genesis, validator_key, SimChain};
use pharmalink_consensus::sim::check::{
    check_agreement, check_certificates, check_liveness, check_state_agreement, check_validity,
    Decision, Property, Record,
};
use pharmalink_ledger::{
    vote_signing_digest, Block, CommitCertificate, CommitSignature, Genesis, Hash, VoteKind,
};

fn certificate(genesis: &Genesis, block: &Block, signers: &[usize]) -> CommitCertificate {
    let digest = vote_signing_digest(
        &genesis.chain_id,
        VoteKind::Precommit,
        1,
        0,
        Some(block.hash()),
    );
    CommitCertificate {
        height: 1,
        round: 0,
        block_hash: block.hash(),
        signatures: signers
            .iter()
            .map(|i| CommitSignature {
                validator_index: *i as u16,
                signature: validator_key(*i).sign(digest.as_bytes()),
            })
            .collect(),
    }
}

fn decision(node: usize, block: &Block, certificate: CommitCertificate, root: Hash) -> Decision {
    Decision {
        node,
        height: 1,
        block_hash: block.hash(),
        time_ms: 100,
        state_root: Some(root),
        certificate,
        append_error: None,
    }
}

fn setup() -> (Genesis, Block, Block) {
    let genesis = genesis(&[1, 1, 1, 1]);
    let chain = SimChain::new(&genesis);
    let a = chain.build_block(&genesis, 0, &validator_key(1), genesis.genesis_time_ms, 0);
    let b = chain.build_block(&genesis, 0, &validator_key(1), genesis.genesis_time_ms, 1);
    (genesis, a, b)
}

fn record(decisions: Vec<Decision>, proposed: &[Hash]) -> Record {
    let mut record = Record {
        honest: vec![true; 4],
        decision_times_ms: vec![vec![]; 4],
        final_heights: vec![1; 4],
        ..Record::default()
    };
    record.decisions.insert(1, decisions);
    record.proposed = proposed.iter().copied().collect();
    record
}

#[test]
fn a_correct_record_passes_every_checker() {
    let (g, a, _) = setup();
    let r = record(
        vec![
            decision(0, &a, certificate(&g, &a, &[0, 1, 2]), Hash([1; 32])),
            decision(2, &a, certificate(&g, &a, &[1, 2, 3]), Hash([1; 32])),
        ],
        &[a.hash()],
    );
    assert!(check_agreement(&r).is_empty());
    assert!(check_validity(&r).is_empty());
    assert!(check_certificates(&r, &g).is_empty());
    assert!(check_state_agreement(&r).is_empty());
}

#[test]
fn two_blocks_at_one_height_break_agreement_and_different_roots_break_state_agreement() {
    let (g, a, b) = setup();
    let r = record(
        vec![
            decision(0, &a, certificate(&g, &a, &[0, 1, 2]), Hash([1; 32])),
            decision(1, &b, certificate(&g, &b, &[0, 1, 2]), Hash([2; 32])),
        ],
        &[a.hash(), b.hash()],
    );
    assert_eq!(check_agreement(&r)[0].property, Property::Agreement);
    assert_eq!(
        check_state_agreement(&r)[0].property,
        Property::StateAgreement
    );
}

#[test]
fn an_unproposed_or_unappendable_block_breaks_validity() {
    let (g, a, _) = setup();
    let mut d = decision(0, &a, certificate(&g, &a, &[0, 1, 2]), Hash([1; 32]));
    assert_eq!(check_validity(&record(vec![d.clone()], &[])).len(), 1);
    d.append_error = Some("state_root is not the application's".into());
    assert_eq!(check_validity(&record(vec![d], &[a.hash()])).len(), 1);
}

#[test]
fn a_certificate_without_quorum_or_with_a_bad_signature_is_flagged() {
    let (g, a, _) = setup();
    let short = record(
        vec![decision(0, &a, certificate(&g, &a, &[0, 1]), Hash([1; 32]))],
        &[a.hash()],
    );
    assert_eq!(
        check_certificates(&short, &g)[0].property,
        Property::Certificate
    );
    let mut forged = certificate(&g, &a, &[0, 1, 2]);
    forged.signatures[2].signature.0[9] ^= 1;
    let bad = record(vec![decision(3, &a, forged, Hash([1; 32]))], &[a.hash()]);
    let found = check_certificates(&bad, &g);
    assert_eq!(found.len(), 1);
    assert!(found[0].detail.contains("node 3"), "{}", found[0].detail);
}

#[test]
fn an_honest_node_that_stops_deciding_after_the_heal_breaks_liveness() {
    let mut r = Record {
        honest: vec![true, true, false],
        final_heights: vec![10, 3, 0],
        ..Record::default()
    };
    r.decision_times_ms = vec![
        (1..=10).map(|h| 1000 * h).collect(),
        vec![1000, 2000, 3000],
        vec![],
    ];
    // Node 1 stops at height 3; node 2 is Byzantine and not judged.
    let found = check_liveness(&r, 2500, 5000, 10_000, 10);
    assert_eq!(found.len(), 1);
    assert!(found[0].detail.contains("node 1"), "{}", found[0].detail);
    // A gap longer than the bound after the heal is a failure even if the target is reached later.
    r.final_heights = vec![10, 10, 0];
    r.decision_times_ms[1] = vec![1000, 2000, 3000, 9500, 9600, 9700, 9800, 9900, 9950, 9990];
    assert_eq!(check_liveness(&r, 2500, 5000, 10_000, 10).len(), 1);
    assert!(check_liveness(&r, 2500, 7000, 10_000, 10).is_empty());
}
