//! `chain::check_decided` applies ledger's chain rules (it is what the simulator's stores use);
//! it agrees with ledger's `validate_commit` except on the one rule ledger must relax.

use pharmalink_consensus::chain::check_decided;
use pharmalink_consensus::sim::app::{genesis, validator_key, CachedVerifier, SimChain};
use pharmalink_consensus::Ed25519Verifier;
use pharmalink_ledger::store::validate_commit;
use pharmalink_ledger::{
    vote_signing_digest, Block, BlockCommit, CommitCertificate, CommitSignature, Genesis, VoteKind,
};

fn certificate(genesis: &Genesis, block: &Block, round: u32) -> CommitCertificate {
    let digest = vote_signing_digest(
        &genesis.chain_id,
        VoteKind::Precommit,
        block.header.height,
        round,
        Some(block.hash()),
    );
    CommitCertificate {
        height: block.header.height,
        round,
        block_hash: block.hash(),
        signatures: (0..3)
            .map(|i| CommitSignature {
                validator_index: i as u16,
                signature: validator_key(i).sign(digest.as_bytes()),
            })
            .collect(),
    }
}

fn commit(block: &Block, certificate: &CommitCertificate) -> BlockCommit {
    BlockCommit {
        block: block.clone(),
        certificate: certificate.clone(),
        state_writes: vec![],
        index_entries: vec![],
    }
}

#[test]
fn on_ordinary_blocks_the_check_and_ledger_agree_block_by_block() {
    let g = genesis(&[1, 1, 1, 1]);
    let mut chain = SimChain::new(&g);
    for height in 1..=6u64 {
        let block = chain.build_block(
            &g,
            0,
            &validator_key((height % 4) as usize),
            g.genesis_time_ms + height * 1000,
            0,
        );
        let cert = certificate(&g, &block, 0);
        let ours =
            check_decided(&g, chain.head.as_ref(), &block, &cert, &Ed25519Verifier).expect("valid");
        let ledgers = validate_commit(&g, chain.head.as_ref(), &commit(&block, &cert))
            .expect("valid for ledger");
        assert_eq!(ours, ledgers);
        // The same tampering is refused by both.
        let mut wrong_parent = block.clone();
        wrong_parent.header.previous_block_hash.0[0] ^= 1;
        let wrong_cert = certificate(&g, &wrong_parent, 0);
        assert!(check_decided(
            &g,
            chain.head.as_ref(),
            &wrong_parent,
            &wrong_cert,
            &Ed25519Verifier
        )
        .is_err());
        assert!(
            validate_commit(&g, chain.head.as_ref(), &commit(&wrong_parent, &wrong_cert)).is_err()
        );
        let mut short = cert.clone();
        short.signatures.truncate(2);
        assert!(check_decided(&g, chain.head.as_ref(), &block, &short, &Ed25519Verifier).is_err());
        assert!(validate_commit(&g, chain.head.as_ref(), &commit(&block, &short)).is_err());
        chain
            .append(&g, block, cert, &CachedVerifier::default())
            .expect("appended");
    }
}

#[test]
fn a_value_re_proposed_and_decided_in_a_later_round_needs_ledger_to_accept_a_later_certificate_round(
) {
    let g = genesis(&[1, 1, 1, 1]);
    let chain = SimChain::new(&g);
    // First proposed in round 0, decided in round 2 (L16: the proposer re-proposes validValue).
    let block = chain.build_block(&g, 0, &validator_key(1), g.genesis_time_ms, 0);
    let cert = certificate(&g, &block, 2);
    assert!(check_decided(&g, None, &block, &cert, &Ed25519Verifier).is_ok());
    // ledger's validate_commit refuses this today (it requires certificate.round == header.round);
    // once it accepts certificate.round >= header.round the simulator's stores can be MemStores.
    let same_round = certificate(&g, &block, 0);
    assert!(validate_commit(&g, None, &commit(&block, &same_round)).is_ok());
    // A certificate from before the block's round is refused by both.
    let mut later = chain.build_block(&g, 3, &validator_key(0), g.genesis_time_ms, 0);
    later.header.round = 3;
    let early = certificate(&g, &later, 1);
    assert!(check_decided(&g, None, &later, &early, &Ed25519Verifier).is_err());
}
