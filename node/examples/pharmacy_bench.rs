//! Issue 8 figures: FHIR intakes validated per second, PHI vault encrypt+decrypt per second
//! (1 KB records), key rotation time for 100,000 patients, telemetry readings ingested per
//! second. Single-threaded (per core) unless noted.
//!
//! `cargo run --release -p pharmalink-node --example pharmacy_bench [-- --patients N]`

use pharmalink_api::pharmacy::{read_intake, TelemetryRequest};
use pharmalink_contracts::coldchain::{self, Reading};
use pharmalink_contracts::contract::command::StorageRequirement;
use pharmalink_contracts::contract::{Date, Epc};
use pharmalink_contracts::rx::fraud::{self, PriorFill, RxFacts};
use pharmalink_node::vault::{self, Accessor, KeyManager, LocalKeyManager, Vault};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

fn bundle(i: usize) -> Vec<u8> {
    json!({
        "resourceType": "Bundle", "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "p1",
                "name": [{"family": format!("Family{i}"), "given": ["Jane"]}], "birthDate": "1970-01-01",
                "address": [{"text": "12 Elm St, Newark, NJ"}]}},
            {"resource": {"resourceType": "Practitioner", "id": "dr1",
                "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"},
                               {"system": "urn:oid:2.16.840.1.113883.4.814", "value": "AB1234563"}],
                "name": [{"family": "Brown"}]}},
            {"resource": {"resourceType": "MedicationRequest", "id": "rx1", "status": "active", "intent": "order",
                "medicationCodeableConcept": {"coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": "0001-0123-45"}]},
                "subject": {"reference": "Patient/p1"}, "requester": {"reference": "Practitioner/dr1"},
                "authoredOn": "2026-11-20",
                "dosageInstruction": [{"text": "1 tab po bid x 30 days"}],
                "dispenseRequest": {"quantity": {"value": 60, "unit": "tablet"}, "numberOfRepeatsAllowed": 2}}}
        ]
    })
    .to_string()
    .into_bytes()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let patients: usize = args
        .iter()
        .position(|a| a == "--patients")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);

    // 1. FHIR intake validation: parse + structure/required fields + NPI/DEA + sig + days'
    //    supply + fraud signals against a 5-fill history.
    let bodies: Vec<Vec<u8>> = (0..2_000).map(bundle).collect();
    let history: Vec<PriorFill> = (0..5)
        .map(|k| PriorFill {
            rx: RxFacts {
                patient_token: "t".into(),
                ndc: format!("0001-0123-4{k}"),
                prescriber_npi: "1234567893".into(),
                prescriber_dea: None,
                prescriber_family: None,
                written_on: Date::new(2026, 10, 1 + k),
                controlled: false,
                days_supply: Some(30),
                stated_days: None,
            },
            filled_on: Date::new(2026, 10, 2 + k),
        })
        .collect();
    let rounds = 10;
    let started = Instant::now();
    let mut signals = 0;
    for _ in 0..rounds {
        for body in &bodies {
            let (rx, _) = read_intake(body).map_err(|p| anyhow::anyhow!("{p:?}"))?;
            let facts = RxFacts {
                patient_token: "t".into(),
                ndc: rx.ndc.clone(),
                prescriber_npi: rx.prescriber.npi.clone(),
                prescriber_dea: rx.prescriber.dea.clone(),
                prescriber_family: Some(rx.prescriber.family.clone()),
                written_on: rx.authored_on,
                controlled: false,
                days_supply: rx.days_supply,
                stated_days: None,
            };
            signals += fraud::signals(&facts, &history, Date::new(2026, 11, 26)).len();
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let n = rounds * bodies.len();
    println!(
        "FHIR intakes validated: {:.0}/s ({n} bundles of {} bytes, {signals} signals, 1 thread)",
        n as f64 / elapsed,
        bodies[0].len()
    );

    // 2. Vault envelope encryption of 1 KB records: unwrap the patient's data key (KEK,
    //    AES-256-GCM), seal; unwrap, open. One core.
    let dir = tempfile::tempdir()?;
    let kms1 = LocalKeyManager::generate();
    let kek_path = dir.path().join("kek.json");
    kms1.write(&kek_path)?;
    let vault = Vault::open(
        &dir.path().join("vault"),
        Arc::new(LocalKeyManager::read(&kek_path)?),
    )?;
    let token = vault.new_patient()?;
    let record = vec![0x5au8; 1024];
    let count = 200_000;
    let started = Instant::now();
    for i in 0..count {
        let aad = format!("{token}/r{}", i % 16);
        let key = vault.data_key(&token)?;
        let sealed = vault::seal(&key, &record, aad.as_bytes())?;
        let key = vault.data_key(&token)?;
        let opened = vault::open(&key, &sealed, aad.as_bytes())?;
        if opened.len() != record.len() {
            anyhow::bail!("round trip failed");
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "vault encrypt+decrypt, 1 KB records (data key unwrapped from RocksDB each time): {:.0}/s (1 core)",
        count as f64 / elapsed
    );
    // Through the store: put (synced) and an audited get (synced audit entry, then decrypt).
    let accessor = Accessor {
        who: "bench".into(),
        purpose: "benchmark".into(),
    };
    let stored = 2_000;
    let started = Instant::now();
    for i in 0..stored {
        let id = format!("r{i}");
        vault.put(&token, &id, &record)?;
        let back = vault.get(&token, &id, &accessor)?;
        if back.len() != record.len() {
            anyhow::bail!("round trip failed");
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "vault put+audited get through RocksDB (two fsyncs each): {:.0}/s",
        stored as f64 / elapsed
    );
    drop(vault);

    // 3. Rotation: `patients` data keys re-wrapped under a new KEK version.
    let rotation_dir = tempfile::tempdir()?;
    let kek_path = rotation_dir.path().join("kek.json");
    let mut kms = LocalKeyManager::generate();
    kms.write(&kek_path)?;
    let path = rotation_dir.path().join("vault");
    {
        let vault = Vault::open(&path, Arc::new(LocalKeyManager::read(&kek_path)?))?;
        let started = Instant::now();
        let mut made = 0;
        while made < patients {
            let batch = (patients - made).min(10_000);
            vault.new_patients(batch)?;
            made += batch;
        }
        println!(
            "created {patients} patients in {:.2} s",
            started.elapsed().as_secs_f64()
        );
    }
    let new_version = kms.add_version();
    kms.write(&kek_path)?;
    let kms = Arc::new(LocalKeyManager::read(&kek_path)?);
    let vault = Vault::open(&path, kms.clone())?;
    let started = Instant::now();
    let rewrapped = vault.rotate()?;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "key rotation: {rewrapped} data keys re-wrapped to KEK v{new_version} in {elapsed:.2} s (records untouched; one synced batch)"
    );
    if kms.current_version() != new_version {
        anyhow::bail!("rotation did not take the new version");
    }

    // 4. Telemetry ingestion (CPU part of POST /v1/telemetry): JSON parse, checks, excursion
    //    rules, batch hash — batches of 10,000 readings.
    let now_ms = 1_795_000_000_000u64;
    let body = serde_json::to_vec(&json!({
        "sensor": "fridge-1",
        "subjects": ["urn:epc:id:sgtin:0300010.012345.1"],
        "readings": (0..10_000).map(|i| json!({"at_ms": now_ms + i * 60_000, "celsius": if i % 500 < 20 { 9.5 } else { 5.0 }})).collect::<Vec<_>>(),
    }))?;
    let requirement = StorageRequirement {
        min_centi_c: 200,
        max_centi_c: 800,
        max_excursion_minutes: 30,
        max_cumulative_minutes: 600,
    };
    let batches = 100;
    let started = Instant::now();
    let mut excursions = 0;
    for _ in 0..batches {
        let request: TelemetryRequest = serde_json::from_slice(&body)?;
        let readings: Vec<Reading> = request
            .readings
            .iter()
            .map(|r| Reading {
                at_ms: r.at_ms,
                centi_c: (r.celsius * 100.0).round() as i32,
            })
            .collect();
        if !coldchain::check_readings(&readings).is_empty() {
            anyhow::bail!("bad readings");
        }
        let eval = coldchain::evaluate(&requirement, &readings, 0);
        excursions += eval.excursions.len();
        let subjects: Vec<Epc> = request
            .subjects
            .iter()
            .map(|s| Epc::new(s.clone()))
            .collect();
        let _ = coldchain::batch_hash(&request.sensor, &subjects, &readings);
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "telemetry readings ingested (parse + check + rules + hash): {:.0}/s ({batches} batches of 10,000, {} KB each, {excursions} excursions, 1 thread)",
        (batches * 10_000) as f64 / elapsed,
        body.len() / 1024
    );
    Ok(())
}
