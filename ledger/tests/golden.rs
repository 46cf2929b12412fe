//! Golden vectors: the canonical bytes and hashes of a sample transaction, header and commit
//! certificate are pinned here. If one of these fails, the on-disk and on-wire format changed:
//! that needs a new format version, not a new expected value.

use pharmalink_ledger::builder::{genesis, ChainBuilder};
use pharmalink_ledger::{Canonical, Hash, SigningKey, Transaction};

fn keys() -> Vec<SigningKey> {
    (1..=4u8).map(|i| SigningKey::from_seed([i; 32])).collect()
}

fn sample() -> (Transaction, pharmalink_ledger::BlockCommit) {
    let client = SigningKey::from_seed([9; 32]);
    let tx = Transaction::sign(
        "pharmalink-golden",
        &client,
        7,
        b"commission 00300010123455 serial A1".to_vec(),
    )
    .unwrap();
    let g = genesis(
        "pharmalink-golden",
        1_764_000_000_000,
        &keys(),
        b"app".to_vec(),
    )
    .unwrap();
    let mut chain = ChainBuilder::new(g, keys()).unwrap();
    let commit = chain
        .next_block(vec![tx.clone()], 1_764_000_001_000, Hash([0xAB; 32]))
        .unwrap();
    (tx, commit)
}

fn check(
    what: &str,
    actual_bytes: &[u8],
    actual_hash: Hash,
    expected_bytes_blake3: &str,
    expected_hash: &str,
) {
    let bytes_digest = blake3::hash(actual_bytes).to_hex().to_string();
    assert_eq!(
        (bytes_digest.as_str(), actual_hash.to_hex().as_str()),
        (expected_bytes_blake3, expected_hash),
        "{what}: canonical bytes are {}",
        hex::encode(actual_bytes)
    );
}

#[test]
fn transaction_bytes_and_hash_are_pinned() {
    let (tx, _) = sample();
    let bytes = tx.to_canonical_bytes().unwrap();
    assert_eq!(bytes.len(), 4 + 17 + 32 + 8 + 4 + 35 + 64);
    check(
        "transaction",
        &bytes,
        tx.hash(),
        "dd676b2e2aba30a60d5459ba6acee0abb1e4911d16575359e282e4666ea59556",
        "ea691f7b5c7a8791e0265e4bc6420eea310e8982285920b5f3f387d4f672d9de",
    );
    assert_eq!(
        tx.signing_digest().to_hex(),
        "2d04a3c4b5d9ed701e2a92a4dc30f193adaffa0f9fc4e00775939d76b5b49c58"
    );
}

#[test]
fn header_bytes_and_hash_are_pinned() {
    let (_, commit) = sample();
    let bytes = commit.block.header.to_canonical_bytes().unwrap();
    assert_eq!(
        bytes.len(),
        4 + 17 + 8 + 4 + 8 + 32 + 32 + 4 + 32 + 32 + 32 + 32
    );
    check(
        "header",
        &bytes,
        commit.block.hash(),
        "4aa43a4af4bfee1acaa4f4d3ffbcd51b40f50ebe38a427cb6e3db18c1fae5bae",
        "469307c24f4de24f2a644e0db5d8494f994c783ec964947989e9264168b2c414",
    );
}

#[test]
fn certificate_bytes_are_pinned() {
    let (_, commit) = sample();
    let bytes = commit.certificate.to_canonical_bytes().unwrap();
    // height, round, block hash, 3 of 4 signatures (index + 64 bytes).
    assert_eq!(bytes.len(), 8 + 4 + 32 + 4 + 3 * (2 + 64));
    check(
        "certificate",
        &bytes,
        Hash(*blake3::hash(&bytes).as_bytes()),
        "fbbf99dc4e34791c915271c062811864776c62335e5d3d7042e9c0d9b85c92ea",
        "fbbf99dc4e34791c915271c062811864776c62335e5d3d7042e9c0d9b85c92ea",
    );
}
