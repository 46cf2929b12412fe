//! A transaction proof verifies from its own bytes, and any changed byte makes it fail.

use pharmalink_ledger::builder::{genesis, ChainBuilder};
use pharmalink_ledger::*;

fn bundle() -> TxInclusionBundle {
    let keys: Vec<SigningKey> = (1..=4u8).map(|i| SigningKey::from_seed([i; 32])).collect();
    let g = genesis("proof-chain", 0, &keys, vec![]).unwrap();
    let mut store = MemStore::new(g.clone());
    let mut chain = ChainBuilder::new(g, keys).unwrap();
    let client = SigningKey::from_seed([77; 32]);
    let mut nonce = 0;
    for h in 0..3u64 {
        let txs = (0..7)
            .map(|_| {
                nonce += 1;
                Transaction::sign("proof-chain", &client, nonce, vec![nonce as u8; 16]).unwrap()
            })
            .collect();
        store
            .append(&chain.next_block(txs, h, Hash::ZERO).unwrap())
            .unwrap();
    }
    let tx = store.block(2).unwrap().unwrap().txs[5].clone();
    TxInclusionBundle::from_store(&store, &tx.hash())
        .unwrap()
        .unwrap()
}

#[test]
fn a_bundle_verifies_and_says_what_it_proves() {
    let b = bundle();
    let verified = b.verify().unwrap();
    assert_eq!((verified.height, verified.tx_index), (2, 5));
    assert_eq!(verified.validator_set_hash, b.validators.hash());
    assert_eq!(verified.chain_id, "proof-chain");
    let bytes = b.to_file_bytes().unwrap();
    assert_eq!(TxInclusionBundle::from_file_bytes(&bytes).unwrap(), b);
}

#[test]
fn every_changed_byte_is_rejected() {
    let bytes = bundle().to_file_bytes().unwrap();
    for i in 0..bytes.len() {
        for delta in [0x01u8, 0x80] {
            let mut tampered = bytes.clone();
            tampered[i] ^= delta;
            let outcome = TxInclusionBundle::from_file_bytes(&tampered).and_then(|b| b.verify());
            assert!(outcome.is_err(), "byte {i} ^ {delta:#x} was accepted");
        }
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(TxInclusionBundle::from_file_bytes(&longer).is_err());
    assert!(TxInclusionBundle::from_file_bytes(&bytes[..bytes.len() - 1]).is_err());
}
