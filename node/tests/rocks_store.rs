//! The RocksDB ledger store: atomic appends, the same rules as the in-memory store, reopening,
//! and corruption detected on read with the height named.

use pharmalink_ledger::builder::{genesis, ChainBuilder};
use pharmalink_ledger::store::verify_chain;
use pharmalink_ledger::*;
use pharmalink_node::store::{tx_key, RocksStore, CF_HEADERS, CF_META, CF_TXS, COLUMN_FAMILIES};
use std::path::Path;

fn validator_keys() -> Vec<SigningKey> {
    (1..=4u8).map(|i| SigningKey::from_seed([i; 32])).collect()
}

fn chain() -> ChainBuilder {
    ChainBuilder::new(
        genesis("store-test", 0, &validator_keys(), vec![]).unwrap(),
        validator_keys(),
    )
    .unwrap()
}

fn block_txs(height: u64, n: u64) -> Vec<Transaction> {
    let client = SigningKey::from_seed([60; 32]);
    (0..n)
        .map(|i| {
            Transaction::sign(
                "store-test",
                &client,
                height * 1000 + i,
                format!("event {height}/{i}").into_bytes(),
            )
            .unwrap()
        })
        .collect()
}

fn fill(store: &mut RocksStore, chain: &mut ChainBuilder, blocks: u64) {
    for _ in 0..blocks {
        let height = chain.head().map_or(1, |h| h.height + 1);
        let mut commit = chain
            .next_block(block_txs(height, 5), height, Hash([height as u8; 32]))
            .unwrap();
        commit.state_writes.push(StateWrite {
            key: format!("package/{height}").into_bytes(),
            value: Some(vec![height as u8]),
        });
        commit.index_entries.push(IndexEntry::put(
            "lot",
            format!("LOT{}/{height}", height % 2).into_bytes(),
            vec![1],
        ));
        store.append(&commit).unwrap();
    }
}

/// A fresh store in a temporary directory with `blocks` blocks appended.
fn filled(blocks: u64) -> (tempfile::TempDir, ChainBuilder, RocksStore) {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = chain();
    let mut store = RocksStore::open(dir.path(), &chain.genesis).unwrap();
    fill(&mut store, &mut chain, blocks);
    (dir, chain, store)
}

/// Rewrites one stored value, as a disk or a bug would, bypassing the store.
fn overwrite_raw(path: &Path, cf: &str, key: &[u8], change: impl FnOnce(&mut Vec<u8>)) {
    let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), path, COLUMN_FAMILIES).unwrap();
    let handle = db.cf_handle(cf).unwrap();
    let mut value = db.get_cf(handle, key).unwrap().unwrap();
    change(&mut value);
    db.put_cf(handle, key, value).unwrap();
}

#[test]
fn appends_read_back_and_survive_reopening() {
    let (dir, mut chain, mut store) = filled(0);
    assert_eq!(store.head().unwrap(), None);
    fill(&mut store, &mut chain, 6);
    let head = store.head().unwrap().unwrap();
    assert_eq!(head.height, 6);
    let block = store.block(4).unwrap().unwrap();
    assert_eq!(block.txs, block_txs(4, 5));
    let location = store.tx_location(&block.txs[3].hash()).unwrap().unwrap();
    assert_eq!(
        location,
        TxLocation {
            height: 4,
            index: 3
        }
    );
    assert_eq!(store.transaction(location).unwrap().unwrap(), block.txs[3]);
    assert_eq!(store.state(b"package/5").unwrap(), Some(vec![5]));
    let lot0: Vec<Vec<u8>> = store
        .index_scan("lot", b"LOT0/", 10)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        lot0,
        vec![b"LOT0/2".to_vec(), b"LOT0/4".to_vec(), b"LOT0/6".to_vec()]
    );
    assert_eq!(store.index_scan("lot", b"LOT", 2).unwrap().len(), 2);
    assert!(
        store.index_scan("lo", b"", 10).unwrap().is_empty(),
        "index names do not bleed into each other"
    );
    drop(store);

    let store = RocksStore::open_existing(dir.path()).unwrap();
    assert_eq!(store.head().unwrap(), Some(head.clone()));
    assert_eq!(verify_chain(&store).unwrap(), Some(head));
    // Same data as the in-memory store would hold.
    let proof = TxInclusionBundle::from_store(&store, &block.txs[3].hash())
        .unwrap()
        .unwrap();
    assert_eq!(proof.verify().unwrap().height, 4);
}

#[test]
fn a_rejected_block_changes_nothing() {
    let (dir, mut chain, mut store) = filled(2);
    let mut bad = chain.next_block(block_txs(3, 5), 3, Hash::ZERO).unwrap();
    bad.certificate.signatures.truncate(1);
    bad.state_writes.push(StateWrite {
        key: b"package/1".to_vec(),
        value: None,
    });
    let err = store.append(&bad).unwrap_err().to_string();
    assert!(
        err.contains("block 3") && err.contains("below the quorum"),
        "{err}"
    );
    drop(store);
    let store = RocksStore::open_existing(dir.path()).unwrap();
    assert_eq!(store.head().unwrap().unwrap().height, 2);
    assert_eq!(store.state(b"package/1").unwrap(), Some(vec![1]));
    assert!(store.block(3).unwrap().is_none());
}

#[test]
fn known_tx_hashes_are_checked_against_the_tx_root_and_stored() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = chain();
    let store = RocksStore::open(dir.path(), &chain.genesis).unwrap();
    let commit = chain.next_block(block_txs(1, 5), 1, Hash::ZERO).unwrap();
    let hashes = commit.block.tx_hashes();
    // Hashes that are not the block's (here in another order, or one short) are refused or
    // recomputed, never stored.
    let mut swapped = hashes.clone();
    swapped.swap(0, 1);
    let err = store
        .append_shared_hashed(&commit, Some(swapped))
        .unwrap_err()
        .to_string();
    assert!(err.contains("tx_root"), "{err}");
    assert!(store.head().unwrap().is_none());
    let short = hashes[..4].to_vec();
    store.append_shared_hashed(&commit, Some(short)).unwrap();
    for (index, hash) in hashes.iter().enumerate() {
        let location = store.tx_location(hash).unwrap().unwrap();
        assert_eq!((location.height, location.index), (1, index as u32));
    }
    let next = chain.next_block(block_txs(2, 3), 2, Hash::ZERO).unwrap();
    let next_hashes = next.block.tx_hashes();
    store
        .append_shared_hashed(&next, Some(next_hashes.clone()))
        .unwrap();
    assert_eq!(
        store.tx_location(&next_hashes[2]).unwrap().unwrap().index,
        2
    );
    assert_eq!(verify_chain(&store).unwrap().unwrap().height, 2);
}

#[test]
fn a_store_of_an_older_format_is_refused_by_name() {
    let (dir, chain, store) = filled(1);
    drop(store);
    overwrite_raw(dir.path(), CF_META, b"format", |v| {
        *v = b"pharmalink-store-v2".to_vec()
    });
    let err = RocksStore::open(dir.path(), &chain.genesis)
        .err()
        .expect("an older format is refused")
        .to_string();
    assert!(
        err.contains("pharmalink-store-v2") && err.contains("pharmalink-store-v5"),
        "{err}"
    );
}

#[test]
fn another_genesis_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let chain = chain();
    drop(RocksStore::open(dir.path(), &chain.genesis).unwrap());
    let other = genesis("other-chain", 0, &validator_keys(), vec![]).unwrap();
    let err = RocksStore::open(dir.path(), &other)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("belongs to genesis"), "{err}");
}

#[test]
fn a_flipped_byte_in_a_transaction_is_caught_by_the_tx_root() {
    let (dir, _chain, store) = filled(5);
    drop(store);
    // Flip a byte inside the payload of transaction 2 of block 3 (the payload stays valid UTF-8
    // and the encoding stays well-formed: only the hash can tell).
    overwrite_raw(
        dir.path(),
        CF_TXS,
        &tx_key(TxLocation {
            height: 3,
            index: 2,
        }),
        |v| {
            let at = v.len() - 64 - 2;
            v[at] ^= 0x01;
        },
    );
    let store = RocksStore::open_existing(dir.path()).unwrap();
    let err = store.block(3).unwrap_err().to_string();
    assert!(err.contains("height 3") && err.contains("tx_root"), "{err}");
    assert!(store.block(2).unwrap().is_some(), "other blocks still read");
    let err = verify_chain(&store).unwrap_err().to_string();
    assert!(err.contains("height 3"), "{err}");
}

#[test]
fn a_flipped_byte_in_a_header_is_caught_by_its_hash() {
    let (dir, _chain, store) = filled(5);
    drop(store);
    overwrite_raw(dir.path(), CF_HEADERS, &2u64.to_be_bytes(), |v| {
        let last = v.len() - 1; // a byte of validator_set_hash
        v[last] ^= 0x80;
    });
    let store = RocksStore::open_existing(dir.path()).unwrap();
    let err = store.header(2).unwrap_err().to_string();
    assert!(
        err.contains("height 2") && err.contains("certificate signs"),
        "{err}"
    );
}

#[test]
fn a_flipped_byte_in_the_files_is_reported_with_the_height() {
    let (dir, _chain, store) = filled(3);
    store.flush().unwrap();
    drop(store);
    // Find the transaction's payload in the SST files and flip a byte there.
    let needle = b"event 2/1";
    let mut flipped = false;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sst") {
            let mut bytes = std::fs::read(&path).unwrap();
            if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
                bytes[at + 6] ^= 0x01;
                std::fs::write(&path, bytes).unwrap();
                flipped = true;
            }
        }
    }
    assert!(flipped, "payload not found in any SST file");
    let store = RocksStore::open_existing(dir.path()).unwrap();
    let err = store.block(2).unwrap_err().to_string();
    assert!(err.contains("height 2"), "{err}");
}

/// Appends one block whose state writes are `writes`.
fn append_writes(store: &RocksStore, chain: &mut ChainBuilder, writes: Vec<StateWrite>) {
    let height = chain.head().map_or(1, |h| h.height + 1);
    let mut commit = chain
        .next_block(block_txs(height, 1), height, Hash([height as u8; 32]))
        .unwrap();
    commit.state_writes = writes;
    store.append_shared(&commit).unwrap();
}

#[test]
fn state_reads_follow_appends_through_the_cache() {
    let (_dir, mut chain, store) = filled(2);
    let put = |key: &[u8], value: Option<Vec<u8>>| StateWrite {
        key: key.to_vec(),
        value,
    };
    // Cached by these reads, then overwritten, deleted, grown past the cache's value limit.
    assert_eq!(store.state(b"package/1").unwrap(), Some(vec![1]));
    assert_eq!(store.state(b"package/2").unwrap(), Some(vec![2]));
    append_writes(&store, &mut chain, vec![put(b"package/1", Some(vec![9]))]);
    assert_eq!(store.state(b"package/1").unwrap(), Some(vec![9]));
    append_writes(&store, &mut chain, vec![put(b"package/2", None)]);
    assert_eq!(store.state(b"package/2").unwrap(), None);
    let big = vec![7; pharmalink_node::store::STATE_CACHE_VALUE_BYTES_MAX + 1];
    append_writes(
        &store,
        &mut chain,
        vec![put(b"package/1", Some(big.clone()))],
    );
    assert_eq!(store.state(b"package/1").unwrap(), Some(big));
    // A rejected block leaves the cached value alone.
    let height = chain.head().map_or(1, |h| h.height + 1);
    let mut bad = chain
        .next_block(block_txs(height, 1), height, Hash::ZERO)
        .unwrap();
    bad.certificate.signatures.truncate(1);
    bad.state_writes.push(put(b"package/1", Some(vec![0])));
    assert!(store.append_shared(&bad).is_err());
    chain.resume(store.head().unwrap());
    assert_eq!(
        store.state(b"package/1").unwrap().map(|v| v.len()),
        Some(257)
    );

    // Readers racing the writer never see a counter go back, and see its last value.
    let store = std::sync::Arc::new(store);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut last = 0u64;
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let value = store
                        .state(b"counter")
                        .unwrap()
                        .map_or(0, |v| u64::from_le_bytes(v.try_into().unwrap()));
                    assert!(value >= last, "counter went back from {last} to {value}");
                    last = value;
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for n in 1..=60u64 {
        append_writes(
            &store,
            &mut chain,
            vec![put(b"counter", Some(n.to_le_bytes().to_vec()))],
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        assert!(reader.join().unwrap() > 0);
    }
    assert_eq!(
        store.state(b"counter").unwrap(),
        Some(60u64.to_le_bytes().to_vec())
    );
}
