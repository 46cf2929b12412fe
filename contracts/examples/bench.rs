//! The benchmark figures of issue 5, without the CLI (which pulls the whole node):
//! `cargo run --release -p pharmalink-contracts --example bench`
//! Same workloads as `pharmalink gs1 bench` and `pharmalink epcis bench`.

use std::time::Instant;

use pharmalink_contracts::{epcis, gs1};

fn main() {
    let inputs = gs1::workload::element_strings(300_000);
    gs1::workload::parse_all(&inputs[..1000]);
    let started = Instant::now();
    let elements = gs1::workload::parse_all(&inputs);
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(
        elements,
        inputs.len() * 4,
        "GS1 workload must parse cleanly"
    );
    println!(
        "gs1: {} element strings in {seconds:.3} s = {:.0} element strings/s (1 core)",
        inputs.len(),
        inputs.len() as f64 / seconds
    );

    let events = 30_000;
    let document = epcis::workload::json_document(events);
    epcis::workload::process(&epcis::workload::json_document(100));
    let started = Instant::now();
    let processed = epcis::workload::process(&document);
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(processed, events, "EPCIS workload must validate");
    // Breakdown of the same work.
    let started = Instant::now();
    let parsed = epcis::read_json_ld(&document).expect("parses");
    let read_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    assert!(epcis::validate::validate_document(&parsed).is_empty());
    let validate_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let ids = epcis::document_hash_ids(&parsed);
    let hash_seconds = started.elapsed().as_secs_f64();
    assert_eq!(ids.len(), events);
    println!("epcis breakdown: read {read_seconds:.3} s, validate {validate_seconds:.3} s, hash {hash_seconds:.3} s");
    println!(
        "epcis: {processed} events ({} bytes JSON-LD) parsed + validated + hashed in {seconds:.3} s = {:.0} events/s (1 core)",
        document.len(),
        processed as f64 / seconds
    );
}
