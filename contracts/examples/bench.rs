//! The benchmark figures of issue 5, without the CLI (which pulls the whole node):
//! `cargo run --release -p pharmalink-contracts --example bench`
//! Same workloads as `pharmalink gs1 bench` and `pharmalink epcis bench`. Rates are given per
//! wall-clock second and per CPU second of this process (the latter is what one core does when
//! the machine is shared; Linux /proc/self/stat, USER_HZ = 100).

use std::time::Instant;

use pharmalink_contracts::{epcis, gs1};

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the stat line, i.e. 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn measure<T>(work: impl FnOnce() -> T) -> (T, f64, f64) {
    let cpu_start = cpu_seconds();
    let started = Instant::now();
    let result = work();
    (
        result,
        started.elapsed().as_secs_f64(),
        cpu_seconds() - cpu_start,
    )
}

fn main() {
    let inputs = gs1::workload::element_strings(1_000_000);
    gs1::workload::parse_all(&inputs[..1000]);
    let (elements, wall, cpu) = measure(|| gs1::workload::parse_all(&inputs));
    assert_eq!(
        elements,
        inputs.len() * 4,
        "GS1 workload must parse cleanly"
    );
    let n = inputs.len() as f64;
    println!(
        "gs1: {} element strings: wall {wall:.3} s = {:.0}/s; cpu {cpu:.2} s = {:.0}/s",
        inputs.len(),
        n / wall,
        n / cpu
    );

    let events = 100_000;
    let documents = epcis::workload::json_documents(events, 100);
    epcis::workload::process(&epcis::workload::json_document(100));
    let (processed, wall, cpu) = measure(|| epcis::workload::process_all(&documents));
    assert_eq!(processed, events, "EPCIS workload must validate");
    let n = events as f64;
    println!(
        "epcis: {events} events in {} capture documents of 100 (JSON-LD) parsed + validated + hashed: wall {wall:.3} s = {:.0}/s; cpu {cpu:.2} s = {:.0}/s",
        documents.len(),
        n / wall,
        n / cpu
    );
    let document = epcis::workload::json_document(events);
    let (processed, wall, cpu) = measure(|| epcis::workload::process(&document));
    assert_eq!(processed, events, "EPCIS workload must validate");
    println!(
        "epcis: {events} events in one document ({} bytes): wall {wall:.3} s = {:.0}/s; cpu {cpu:.2} s = {:.0}/s",
        document.len(),
        n / wall,
        n / cpu
    );
    let (parsed, read_wall, _) = measure(|| epcis::read_json_ld(&document).expect("parses"));
    let (errors, validate_wall, _) = measure(|| epcis::validate::validate_document(&parsed));
    assert!(errors.is_empty());
    let (ids, hash_wall, _) = measure(|| epcis::document_hash_ids(&parsed));
    assert_eq!(ids.len(), events);
    println!("epcis breakdown (wall): read {read_wall:.3} s, validate {validate_wall:.3} s, hash {hash_wall:.3} s");
}
