//! Decoding untrusted bytes never panics, never accepts more than the limits, and what it
//! accepts re-encodes to the same bytes (the encoding is canonical).

use pharmalink_ledger::builder::{genesis, ChainBuilder};
use pharmalink_ledger::limits::*;
use pharmalink_ledger::*;
use proptest::prelude::*;

fn sample_block_bytes() -> Vec<u8> {
    let keys: Vec<SigningKey> = (1..=4u8).map(|i| SigningKey::from_seed([i; 32])).collect();
    let g = genesis("fuzz", 0, &keys, vec![]).unwrap();
    let mut chain = ChainBuilder::new(g, keys).unwrap();
    let client = SigningKey::from_seed([50; 32]);
    let txs = (0..3)
        .map(|i| Transaction::sign("fuzz", &client, i, vec![i as u8; 20]).unwrap())
        .collect();
    chain
        .next_block(txs, 5, Hash::ZERO)
        .unwrap()
        .block
        .to_canonical_bytes()
        .unwrap()
}

fn round_trips<T: Canonical>(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(value) = T::from_canonical_bytes(bytes) {
        prop_assert_eq!(value.to_canonical_bytes().unwrap(), bytes.to_vec());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        round_trips::<Transaction>(&bytes)?;
        round_trips::<BlockHeader>(&bytes)?;
        round_trips::<Block>(&bytes)?;
        round_trips::<CommitCertificate>(&bytes)?;
        round_trips::<ValidatorSet>(&bytes)?;
        round_trips::<Genesis>(&bytes)?;
        let _ = TxInclusionBundle::from_file_bytes(&bytes);
    }

    #[test]
    fn mutated_blocks_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut bytes = sample_block_bytes();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        round_trips::<Block>(&bytes)?;
        if let Ok(block) = Block::from_canonical_bytes(&bytes) {
            let _ = block.verify_tx_root();
            let _ = Transaction::verify_signatures(&block.txs);
        }
    }
}

#[test]
fn oversized_input_is_refused_before_decoding() {
    let huge = vec![0u8; TX_BYTES_MAX + 1];
    let err = Transaction::from_canonical_bytes(&huge)
        .unwrap_err()
        .to_string();
    assert!(err.contains("exceeds the maximum"), "{err}");
    // A length prefix claiming 4 GiB of payload fails cleanly.
    let mut lying = sample_block_bytes();
    lying.truncate(200);
    assert!(Block::from_canonical_bytes(&lying).is_err());
}

#[test]
fn field_rules_name_the_field() {
    let key = SigningKey::from_seed([1; 32]);
    let err = Transaction::sign("Bad Chain", &key, 0, vec![1])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("transaction.chain_id") && err.contains("'B'"),
        "{err}"
    );
    let err = Transaction::sign("ok", &key, 0, vec![])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("transaction.payload: must not be empty"),
        "{err}"
    );
    let err = Transaction::sign("ok", &key, 0, vec![0; TX_PAYLOAD_BYTES_MAX + 1])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("transaction.payload") && err.contains("exceeds"),
        "{err}"
    );
    let v = Validator {
        public_key: key.public_key(),
        voting_power: 1,
    };
    let err = ValidatorSet::new(vec![v.clone(), v])
        .unwrap_err()
        .to_string();
    assert!(err.contains("repeats key"), "{err}");
    let err = ValidatorSet::new(vec![]).unwrap_err().to_string();
    assert!(err.contains("validator set.validators"), "{err}");
}

#[test]
fn quorum_arithmetic() {
    let set = |powers: &[u64]| {
        ValidatorSet::new(
            powers
                .iter()
                .enumerate()
                .map(|(i, p)| Validator {
                    public_key: SigningKey::from_seed([i as u8 + 1; 32]).public_key(),
                    voting_power: *p,
                })
                .collect(),
        )
        .unwrap()
    };
    assert_eq!(set(&[1, 1, 1, 1]).quorum_power(), 3);
    assert_eq!(set(&[1, 1, 1, 1]).one_third_plus_power(), 2);
    assert_eq!(set(&[1; 7]).quorum_power(), 5);
    assert_eq!(set(&[1; 10]).quorum_power(), 7);
    assert_eq!(set(&[10, 1, 1, 1]).quorum_power(), 9);
    assert_eq!(set(&[3]).quorum_power(), 3);
}
