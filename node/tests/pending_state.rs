//! Block sync executes block N + 1 while block N is still being written, on the store with
//! N's state writes laid over it (`PendingState`). That must give exactly what executing N + 1
//! after N's write gives: same outcomes, same writes, same state root.

use pharmalink_ledger::builder::{genesis, ChainBuilder};
use pharmalink_ledger::{BlockCommit, LedgerRead, SigningKey, Transaction};
use pharmalink_node::app::{Application, BlockOutcome, ContractApp, TxOutcome};
use pharmalink_node::genesis::load_test_key;
use pharmalink_node::loadgen;
use pharmalink_node::store::{PendingState, RocksStore};

const CHAIN: &str = "pending-state-test";
const T0: u64 = 1_790_000_000_000;

fn commission(signer: u32, nonce: u64) -> Transaction {
    loadgen::commission_tx(CHAIN, signer, nonce, 3).unwrap()
}

fn with_outcome(mut commit: BlockCommit, outcome: &BlockOutcome) -> BlockCommit {
    commit.state_writes = outcome.state_writes.clone();
    commit.index_entries = outcome.index_entries.clone();
    commit
}

fn assert_same(a: &BlockOutcome, b: &BlockOutcome) {
    assert_eq!(a.results, b.results);
    assert_eq!(a.state_writes, b.state_writes);
    assert_eq!(a.index_entries, b.index_entries);
    assert_eq!(a.state_root, b.state_root);
}

#[test]
fn executing_over_the_block_in_flight_equals_executing_after_its_write() {
    let validator = SigningKey::from_seed([7; 32]);
    let doc = genesis(CHAIN, T0, std::slice::from_ref(&validator), Vec::new()).unwrap();
    let app = ContractApp::new(&doc, vec![loadgen::organization(2)]);
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let open = |dir: &tempfile::TempDir| {
        RocksStore::open_with_genesis_state(&dir.path().join("ledger"), &doc, || {
            app.genesis_effects()
        })
        .unwrap()
    };
    let (sequential, pipelined) = (open(&dirs[0]), open(&dirs[1]));
    let mut chain = ChainBuilder::new(doc.clone(), vec![validator]).unwrap();

    // Block 1: the product. Both stores append it the ordinary way.
    let product = Transaction::sign(
        CHAIN,
        &load_test_key(0),
        0,
        loadgen::product_command().encode(),
    )
    .unwrap();
    let c1 = chain
        .next_block(
            vec![product],
            T0 + 1000,
            app.state_root(&sequential).unwrap(),
        )
        .unwrap();
    let o1 = app
        .execute(&sequential, &c1.block, &c1.block.tx_hashes())
        .unwrap();
    assert_eq!(o1.results, vec![TxOutcome::Accepted]);
    let c1 = with_outcome(c1, &o1);
    sequential.append_shared(&c1).unwrap();
    pipelined.append_shared(&c1).unwrap();

    // Block 2 commissions; block 3 depends on it: the signers' next nonces, and a
    // re-commissioning of block 2's serials (signer 0's nonce-1 command, signed at nonce 2),
    // which only block 2's state makes a rejection.
    let c2 = chain
        .next_block(
            vec![commission(0, 1), commission(1, 0)],
            T0 + 2000,
            o1.state_root,
        )
        .unwrap();
    let o2 = app
        .execute(&sequential, &c2.block, &c2.block.tx_hashes())
        .unwrap();
    let replay = Transaction::sign(
        CHAIN,
        &load_test_key(0),
        2,
        loadgen::commission_command(0, 1, 3).encode(),
    )
    .unwrap();
    let c3 = chain
        .next_block(
            vec![replay, commission(1, 1), commission(0, 3)],
            T0 + 3000,
            o2.state_root,
        )
        .unwrap();
    let c2 = with_outcome(c2, &o2);
    sequential.append_shared(&c2).unwrap();
    let o3 = app
        .execute(&sequential, &c3.block, &c3.block.tx_hashes())
        .unwrap();
    assert!(
        matches!(&o3.results[0], TxOutcome::Rejected { code, .. } if code.contains("exists")),
        "{:?}",
        o3.results
    );
    assert_eq!(o3.results[1..], [TxOutcome::Accepted, TxOutcome::Accepted]);
    sequential
        .append_shared(&with_outcome(c3.clone(), &o3))
        .unwrap();

    // The pipelined store executes block 3 before block 2 is written.
    let p2 = app
        .execute(&pipelined, &c2.block, &c2.block.tx_hashes())
        .unwrap();
    assert_same(&p2, &o2);
    let over = PendingState::new(&pipelined, &p2.state_writes);
    let p3 = app
        .execute(&over, &c3.block, &c3.block.tx_hashes())
        .unwrap();
    assert_same(&p3, &o3);
    // Execution reads state only; anything else would see the store without block 2.
    let refused = over.head().unwrap_err().to_string();
    assert!(refused.contains("in flight"), "{refused}");
    pipelined.append_shared(&c2).unwrap();
    pipelined.append_shared(&with_outcome(c3, &p3)).unwrap();
    assert_eq!(pipelined.head().unwrap(), sequential.head().unwrap());

    // Batched state reads answer what single reads answer, in the keys' order: keys written,
    // absent, repeated, read before (in the state cache) and not, over the store and over a
    // block in flight (whose writes, deletions included, come first).
    let mut keys: Vec<Vec<u8>> = o2.state_writes.iter().map(|w| w.key.clone()).collect();
    keys.push(b"c/i/urn:epc:id:sgtin:0399999.000001.absent".to_vec());
    keys.push(keys[0].clone());
    keys.push(Vec::new());
    let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let _ = sequential.state(keys[1]).unwrap();
    let single: Vec<Option<Vec<u8>>> = keys.iter().map(|k| sequential.state(k).unwrap()).collect();
    assert!(single.iter().any(Option::is_some) && single.iter().any(Option::is_none));
    assert_eq!(sequential.state_many(&keys).unwrap(), single);
    let mut in_flight = vec![
        pharmalink_ledger::StateWrite {
            key: keys[0].to_vec(),
            value: None,
        },
        pharmalink_ledger::StateWrite {
            key: keys[keys.len() - 3].to_vec(),
            value: Some(b"new".to_vec()),
        },
    ];
    in_flight.sort_by(|a, b| a.key.cmp(&b.key));
    let over = PendingState::new(&sequential, &in_flight);
    let single: Vec<Option<Vec<u8>>> = keys.iter().map(|k| over.state(k).unwrap()).collect();
    assert_eq!(single[0], None);
    assert_eq!(single[keys.len() - 3].as_deref(), Some(&b"new"[..]));
    assert_eq!(over.state_many(&keys).unwrap(), single);
}
