//! Custody engine benchmark: commands/s for a realistic mix, state bytes per package, and the
//! projection rebuild time with and without a snapshot.
//!
//! `cargo run --release -p pharmalink-contracts --example custody_bench [cases]`
//!
//! The mix, per case of 10 packages: commission 10 serials (1 command), pack them into an SSCC,
//! ship the case manufacturer → wholesaler, receive it, unpack, 5 orders of 2 packages
//! wholesaler → pharmacy (ship + receive each), and 10 dispenses: 25 commands, 25 events.
//! Payloads are encoded beforehand (the client's work); blocks hold 1,000 transactions and are
//! executed by `ContractEngine::execute_block` against an in-memory store, then applied.

use pharmalink_contracts::contract::command::Command;
use pharmalink_contracts::contract::fixtures::*;
use pharmalink_contracts::contract::{
    bootstrap, next_nonce, replay, ContractEngine, LoggedEvent, MemLedger, StateRead, TxInput,
    TxResult,
};
use pharmalink_contracts::custody;
use pharmalink_ledger::{Domain, Hash, PublicKey};
use std::time::Instant;

const BLOCK_TXS: usize = 1_000;

/// CPU seconds of this process (Linux /proc/self/stat utime + stime, USER_HZ = 100): on a
/// shared machine, what one core does.
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
    (ticks(11) + ticks(12)) / 100.0
}
const PACKAGES_PER_CASE: usize = 10;

struct Tx {
    signer: PublicKey,
    payload: Vec<u8>,
}

fn serial(case: usize, index: usize) -> String {
    format!("{case}x{index}")
}

/// The commands of one case, in an order that is valid when executed in sequence. Shipment
/// ids are predictable: 6 per case, in order.
fn case_commands(case: usize) -> Vec<(PublicKey, Command)> {
    let serials: Vec<String> = (0..PACKAGES_PER_CASE).map(|i| serial(case, i)).collect();
    let packages: Vec<_> = serials.iter().map(|s| sgtin(s)).collect();
    let container = sscc(case as u64 + 1);
    let first_shipment = case as u64 * 6;
    let mut out = vec![
        (
            MANUFACTURER.key(),
            Command::Commission {
                gtin: gtin(),
                serials: serials.clone(),
                lot: format!("L{}", case / 1000),
                expiry: pharmalink_contracts::contract::Date::new(2028, 6, 30),
            },
        ),
        (
            MANUFACTURER.key(),
            Command::Aggregate {
                parent: container.clone(),
                children: packages.clone(),
            },
        ),
        (
            MANUFACTURER.key(),
            sale(WHOLESALER.gln(), vec![container.clone()], "PO-1"),
        ),
        (
            WHOLESALER.key(),
            receive_all(first_shipment, std::slice::from_ref(&container)),
        ),
        (
            WHOLESALER.key(),
            Command::Disaggregate {
                parent: container,
                children: vec![],
            },
        ),
    ];
    for order in 0..5u64 {
        let pair = packages[order as usize * 2..order as usize * 2 + 2].to_vec();
        out.push((
            WHOLESALER.key(),
            sale(DISPENSER.gln(), pair.clone(), "PO-2"),
        ));
        out.push((
            DISPENSER.key(),
            receive_all(first_shipment + 1 + order, &pair),
        ));
    }
    for package in packages {
        out.push((
            DISPENSER.key(),
            Command::Dispense {
                items: vec![package],
            },
        ));
    }
    out
}

fn main() {
    let cases: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(40_000);
    let engine = ContractEngine::new(demo_genesis_root());
    let mut ledger = MemLedger::new();
    let genesis_log = bootstrap(&mut ledger, &demo_organizations(), DEMO_TIME_MS).expect("genesis");
    let setup = Command::RegisterProduct {
        product: product_master(),
    };
    let effects = engine.execute_block(
        &ledger,
        1,
        DEMO_TIME_MS,
        &[TxInput {
            hash: Hash::ZERO,
            signer: MANUFACTURER.key(),
            nonce: 0,
            payload: &setup.encode(),
        }],
    );
    assert_eq!(effects.results, vec![TxResult::Accepted]);
    ledger.apply(1, &effects.state_writes, &effects.index_entries);
    let mut log: Vec<LoggedEvent> = genesis_log;
    log.extend(effects.events);

    // Client side: encode every payload.
    let encode_start = Instant::now();
    let mut txs: Vec<Tx> = Vec::with_capacity(cases * 25);
    for case in 0..cases {
        for (signer, command) in case_commands(case) {
            txs.push(Tx {
                signer,
                payload: command.encode(),
            });
        }
    }
    let encode_s = encode_start.elapsed().as_secs_f64();

    // Engine.
    let mut nonces: Vec<(PublicKey, u64)> = PARTIES
        .iter()
        .map(|p| (p.key(), next_nonce(&ledger, &p.key())))
        .collect();
    let mut execute_s = 0.0;
    let mut execute_cpu_s = 0.0;
    let mut apply_s = 0.0;
    let mut rejected = 0usize;
    let mut height: u64 = 1;
    for block in txs.chunks(BLOCK_TXS) {
        height += 1;
        let hashes: Vec<Hash> = block
            .iter()
            .enumerate()
            .map(|(i, tx)| {
                Domain::Transaction.hash(
                    &[
                        &height.to_le_bytes()[..],
                        &(i as u32).to_le_bytes(),
                        &tx.payload,
                    ]
                    .concat(),
                )
            })
            .collect();
        let inputs: Vec<TxInput<'_>> = block
            .iter()
            .zip(&hashes)
            .map(|(tx, hash)| {
                let slot = nonces
                    .iter_mut()
                    .find(|(k, _)| *k == tx.signer)
                    .expect("known signer");
                slot.1 += 1;
                TxInput {
                    hash: *hash,
                    signer: tx.signer,
                    nonce: slot.1 - 1,
                    payload: &tx.payload,
                }
            })
            .collect();
        let start = Instant::now();
        let cpu_start = cpu_seconds();
        let effects = engine.execute_block(&ledger, height, DEMO_TIME_MS + height * 1000, &inputs);
        execute_cpu_s += cpu_seconds() - cpu_start;
        execute_s += start.elapsed().as_secs_f64();
        for (index, result) in effects.results.iter().enumerate() {
            if let TxResult::Rejected { code, reason } = result {
                if rejected < 5 {
                    eprintln!("rejected at block {height} tx {index}: {code}: {reason}");
                }
                rejected += 1;
            }
        }
        let start = Instant::now();
        ledger.apply(height, &effects.state_writes, &effects.index_entries);
        apply_s += start.elapsed().as_secs_f64();
        log.extend(effects.events);
    }
    let commands = txs.len();
    println!("custody engine, {cases} cases of {PACKAGES_PER_CASE} packages: {commands} commands in blocks of {BLOCK_TXS}");
    println!("  rejected: {rejected}");
    println!(
        "  client encoding: {:.0} commands/s",
        commands as f64 / encode_s
    );
    println!(
        "  execute_block (decode, decide, evolve, writes, root): {:.3} s = {:.0} commands/s, {:.0} packages/s end to end",
        execute_s,
        commands as f64 / execute_s,
        (cases * PACKAGES_PER_CASE) as f64 / execute_s
    );
    println!(
        "  execute_block per CPU second (one core of a shared machine): {:.0} commands/s ({execute_cpu_s:.2} CPU s)",
        commands as f64 / execute_cpu_s
    );
    println!(
        "  execute + apply to the in-memory store: {:.0} commands/s",
        commands as f64 / (execute_s + apply_s)
    );

    // State bytes per package.
    let packages = cases * PACKAGES_PER_CASE;
    let mut package_bytes = 0usize;
    let mut package_max = 0usize;
    for case in 0..cases {
        for index in 0..PACKAGES_PER_CASE {
            let key = custody::item_key(&sgtin(&serial(case, index)));
            let size = key.len() + ledger.get(&key).map(|v| v.len()).unwrap_or(0);
            package_bytes += size;
            package_max = package_max.max(size);
        }
    }
    let (_, all_state) = ledger.state_bytes(b"");
    let index_bytes: usize = ledger
        .indexes
        .values()
        .map(|m| m.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>())
        .sum();
    println!(
        "  state per package: {} bytes record (key + value; max {package_max}); all state / packages: {} bytes; indexes incl. event log / packages: {} bytes",
        package_bytes / packages,
        all_state / packages,
        index_bytes / packages
    );

    if std::env::args().nth(2).as_deref() == Some("engine-only") {
        return;
    }
    // Projection rebuild.
    let events = log.len();
    let start = Instant::now();
    let cpu_start = cpu_seconds();
    let mut rebuilt = MemLedger::new();
    replay(&mut rebuilt, &log);
    let full_s = start.elapsed().as_secs_f64();
    let full_cpu_s = cpu_seconds() - cpu_start;
    let mut live = ledger.clone();
    live.state
        .retain(|k, _| !k.starts_with(b"nonce/") && k.as_slice() != b"app/state_root");
    live.indexes.remove("tx_result");
    live.indexes
        .remove(pharmalink_contracts::contract::facts::BLOCK_ROOTS_INDEX);
    assert!(
        rebuilt.state == live.state && rebuilt.indexes == live.indexes,
        "rebuild differs from live state"
    );
    drop(rebuilt);
    println!(
        "  rebuild from the log, {events} events: wall {full_s:.2} s ({:.0} events/s), cpu {full_cpu_s:.2} s",
        events as f64 / full_s
    );

    let snapshot_at = events * 9 / 10;
    let mut base = MemLedger::new();
    replay(&mut base, &log[..snapshot_at]);
    base.height = log[snapshot_at - 1].position.height;
    let snapshot = base.snapshot();
    drop(base);
    let start = Instant::now();
    let cpu_start = cpu_seconds();
    let mut resumed = MemLedger::from_snapshot(&snapshot).expect("snapshot decodes");
    let load_s = start.elapsed().as_secs_f64();
    let tail: Vec<&LoggedEvent> = log[snapshot_at..].iter().collect();
    let start = Instant::now();
    replay(&mut resumed, tail.iter().copied());
    let tail_s = start.elapsed().as_secs_f64();
    let snapshot_cpu_s = cpu_seconds() - cpu_start;
    assert!(
        resumed.state == live.state && resumed.indexes == live.indexes,
        "resumed rebuild differs"
    );
    println!(
        "  rebuild from a snapshot at event {snapshot_at} ({} MB): load {load_s:.2} s + replay {} events {tail_s:.2} s = wall {:.2} s, cpu {snapshot_cpu_s:.2} s",
        snapshot.len() / 1_000_000,
        events - snapshot_at,
        load_s + tail_s
    );
}
