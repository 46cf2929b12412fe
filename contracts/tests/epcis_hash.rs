//! CBV 2.0 event hash vectors (shared/data/gs1/ReferenceEventHashAlgorithm.*,
//! epcisDocWithVariousEventTypes.*): pre-hash strings and hash IDs, event by event.
#![allow(clippy::unwrap_used)]

use pharmalink_contracts::epcis::{document_hash_ids, pre_hash_string, read_json_ld};

/// The shared test material, found from the crate directory at run time (a test binary reused
/// from a relocated checkout would otherwise keep the compile-time path).
fn data_dir() -> String {
    let manifest = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    format!("{manifest}/../../shared/data/gs1")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{}/{name}", data_dir()))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn check(stem: &str) {
    let document =
        read_json_ld(&read(&format!("{stem}.jsonld"))).unwrap_or_else(|e| panic!("{stem}: {e:?}"));
    let expected_prehashes: Vec<String> = read(&format!("{stem}.prehashes"))
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let expected_hashes: Vec<String> = read(&format!("{stem}.hashes"))
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    assert_eq!(
        document.events.len(),
        expected_hashes.len(),
        "{stem}: event count"
    );
    for (index, event) in document.events.iter().enumerate() {
        assert_eq!(
            pre_hash_string(&document, event),
            expected_prehashes[index],
            "{stem}: pre-hash of event {index}"
        );
    }
    assert_eq!(
        document_hash_ids(&document),
        expected_hashes,
        "{stem}: hashes"
    );
}

#[test]
fn reference_event_hash_algorithm_vector() {
    check("ReferenceEventHashAlgorithm");
}

#[test]
fn various_event_types_vectors() {
    check("epcisDocWithVariousEventTypes");
}
