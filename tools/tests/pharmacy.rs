//! The pharmacy on a real dev node (issue 8): a FHIR prescription comes in → PHI to the vault,
//! fraud signals → the pharmacist approves → a package is picked first-expiry-first-out →
//! dispensed → the package's consumer verification says dispensed. Cold chain: an excursion in
//! posted telemetry quarantines a package and blocks its dispensing; the consumer verification
//! shows the cold-chain verdict. A canary PHI string is written through every path and must
//! appear in no file of the node's data directory and in no log line.

mod support;

use pharmalink_contracts::contract::Date;
use pharmalink_ledger::SigningKey;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process};
use std::time::{Duration, Instant};
use support::{bin, call, free_port, stock_pharmacy, verify_settled, Signer};

/// Unique strings that must never leave the vault in clear.
const CANARY_FAMILY: &str = "Qzxcanaryfamily";
const CANARY_GIVEN: &str = "Wvucanarygiven";
const CANARY_ADDRESS: &str = "77 Canarystreet Lane";

struct Node {
    child: Child,
    api: String,
}

impl Node {
    fn start(data_dir: &Path, log: &Path) -> Node {
        let api = format!("127.0.0.1:{}", free_port());
        let log_file = std::fs::File::create(log).unwrap();
        let child = Process::new(bin("pharmalink-node"))
            .args(["dev", "--data-dir"])
            .arg(data_dir)
            .args(["--api", &api])
            // Everything the node logs, so the canary check covers the most.
            .env("RUST_LOG", "debug,hyper=info,h2=info,tower=info")
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap();
        let started = Instant::now();
        while call(&api, "GET", "/v1/status", None, None, &[]).0 != 200 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "node did not come up"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Node { child, api }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn epc(serial: &str) -> String {
    format!("urn:epc:id:sgtin:0300010.012345.{serial}")
}

fn fhir_bundle(family: &str, given: &str, quantity: u32) -> Value {
    json!({
        "resourceType": "Bundle", "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "p1",
                "name": [{"family": family, "given": [given]}], "birthDate": "1961-07-14",
                "address": [{"text": CANARY_ADDRESS}]}},
            {"resource": {"resourceType": "Practitioner", "id": "dr1",
                "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}],
                "name": [{"family": "Brown"}]}},
            {"resource": {"resourceType": "MedicationRequest", "id": "rx1", "status": "active", "intent": "order",
                "medicationCodeableConcept": {"coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": "0001-0123-45"}]},
                "subject": {"reference": "Patient/p1"}, "requester": {"reference": "Practitioner/dr1"},
                "authoredOn": "2026-11-25",
                "dosageInstruction": [{"text": "1 tab po bid x 30 days"}],
                "dispenseRequest": {"quantity": {"value": quantity, "unit": "tablet"}}}}
        ]
    })
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn fhir_prescription_to_dispensed_package_with_cold_chain_and_no_phi_leak() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("node.log");
    let node = Node::start(&data, &log);
    let api = node.api.clone();
    let (_, status) = call(&api, "GET", "/v1/status", None, None, &[]);
    let chain = status["chain_id"].as_str().unwrap().to_string();
    let key = |name: &str| {
        pharmalink_node::keys::read_key_file(&data.join(format!("{name}.key")), None).unwrap()
    };
    let (maker, pharmacy) = (key("manufacturer"), key("pharmacy"));
    let token_of = |k: &SigningKey| {
        pharmalink_api::auth::issue(k, &chain, pharmalink_api::auth::now_s(), 900).unwrap()
    };
    let (maker_token, rx_token) = (token_of(&maker), token_of(&pharmacy));
    let maker_t = Some(maker_token.as_str());
    let ph_t = Some(rx_token.as_str());

    // Supply: the manufacturer registers the product, commissions lot LOT0 (expiring
    // 2027-12-31: RX5, RX6) and LOT1 (2028-06-30: RX1, RX2), sells all to the pharmacy.
    let mut signer = Signer::new(&api);
    stock_pharmacy(
        &mut signer,
        &data,
        &[
            ("LOT0", Date::new(2027, 12, 31), &["RX5", "RX6"]),
            ("LOT1", Date::new(2028, 6, 30), &["RX1", "RX2"]),
        ],
    );

    // The product needs 2–8 °C: its maker may say so, a pharmacy may not.
    let storage = json!({"min_celsius": 2.0, "max_celsius": 8.0, "max_excursion_minutes": 30, "max_cumulative_minutes": 60});
    for (who, expected) in [(maker_t, 200), (ph_t, 403)] {
        let (code, body) = call(
            &api,
            "PUT",
            "/v1/products/00300010123455/storage",
            who,
            Some(storage.clone()),
            &[],
        );
        assert_eq!(code, expected, "{body}");
    }

    // On hand: four packages, first-expiry first.
    let (code, stock) = call(
        &api,
        "GET",
        "/v1/inventory?ndc=0001-0123-45",
        ph_t,
        None,
        &[],
    );
    assert_eq!(code, 200, "{stock}");
    let order: Vec<&str> = stock["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["epc"].as_str().unwrap())
        .collect();
    assert_eq!(order, [epc("RX5"), epc("RX6"), epc("RX1"), epc("RX2")]);
    assert!(stock["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["dispensable"] == true));

    // Cold chain: 40 minutes at 12 °C for RX5 (one reading a minute) → excursion → quarantine;
    // RX1 stayed cold.
    let now_ms = pharmalink_api::auth::now_s() * 1000;
    let readings = |warm: usize| -> Vec<Value> {
        (0..60)
            .map(|i| {
                let celsius = if (10..10 + warm).contains(&i) {
                    12.0
                } else {
                    5.0
                };
                json!({"at_ms": now_ms - 3_600_000 + i as u64 * 60_000, "celsius": celsius})
            })
            .collect()
    };
    let (code, body) = call(
        &api,
        "POST",
        "/v1/telemetry",
        ph_t,
        Some(json!({"sensor": "fridge-1", "subjects": [epc("RX5")], "readings": readings(40)})),
        &[],
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["excursions"][0]["rule"], "cold_chain.continuous",
        "{body}"
    );
    assert_eq!(body["quarantined"], json!([epc("RX5")]), "{body}");
    let batch = body["batch_hash"].as_str().unwrap().to_string();
    let (code, body) = call(
        &api,
        "POST",
        "/v1/telemetry",
        ph_t,
        Some(json!({"sensor": "fridge-1", "subjects": [epc("RX1")], "readings": readings(0)})),
        &[],
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["excursions"], json!([]), "{body}");
    // Bad readings are named one by one; nothing is anchored.
    let (code, body) = call(
        &api,
        "POST",
        "/v1/telemetry",
        ph_t,
        Some(
            json!({"sensor": "fridge-1", "subjects": [epc("RX2")], "readings": [
            {"at_ms": now_ms, "celsius": 5.0}, {"at_ms": now_ms, "celsius": 5.0}, {"at_ms": now_ms + 1, "celsius": 500.0}]}),
        ),
        &[],
    );
    assert_eq!(code, 400, "{body}");
    let pointers: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(
        pointers,
        ["/readings/1/at_ms", "/readings/2/celsius"],
        "{body}"
    );
    // The raw readings stay on the node, retrievable by the sender.
    let (code, body) = call(
        &api,
        "GET",
        &format!("/v1/telemetry/{batch}"),
        ph_t,
        None,
        &[],
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["readings"].as_array().unwrap().len(), 60);

    // Intake: a FHIR bundle whose patient is the canary.
    let (code, bad) = call(
        &api,
        "POST",
        "/v1/rx/intakes",
        ph_t,
        Some(json!({"resourceType": "MedicationRequest", "status": "stopped"})),
        &[],
    );
    assert_eq!(code, 400, "{bad}");
    assert!(bad["errors"].as_array().unwrap().len() >= 3, "{bad}");
    let (code, intake) = call(
        &api,
        "POST",
        "/v1/rx/intakes",
        ph_t,
        Some(fhir_bundle(CANARY_FAMILY, CANARY_GIVEN, 60)),
        &[],
    );
    assert_eq!(code, 201, "{intake}");
    assert_eq!(intake["status"], "pending_review");
    assert_eq!(intake["days_supply"], 30);
    assert_eq!(intake["signals"], json!([]), "{intake}");
    let rx = intake["rx_token"].as_str().unwrap().to_string();
    let patient = intake["patient_token"].as_str().unwrap().to_string();
    assert!(!intake.to_string().contains(CANARY_FAMILY));
    // A wholesaler takes no prescriptions.
    let wholesaler_token = token_of(&key("wholesaler"));
    let (code, _) = call(
        &api,
        "POST",
        "/v1/rx/intakes",
        Some(&wholesaler_token),
        Some(fhir_bundle("A", "B", 60)),
        &[],
    );
    assert_eq!(code, 403);

    // The pharmacist reads the PHI: only with a purpose, and the read is audited.
    let (code, body) = call(
        &api,
        "GET",
        &format!("/v1/rx/intakes/{rx}"),
        ph_t,
        None,
        &[],
    );
    assert_eq!(code, 400, "no purpose: {body}");
    let (code, body) = call(
        &api,
        "GET",
        &format!("/v1/rx/intakes/{rx}"),
        ph_t,
        None,
        &[("X-PHI-Purpose", "dispensing review")],
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["phi"]["patient"]["family"], CANARY_FAMILY);
    let (code, log_entries) = call(&api, "GET", "/v1/phi/audit", ph_t, None, &[]);
    assert_eq!(code, 200);
    assert!(
        log_entries
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["purpose"] == "dispensing review" && e["patient_token"] == patient.as_str()),
        "{log_entries}"
    );

    // Not yet approved: nothing is dispensed.
    let (code, body) = call(
        &api,
        "POST",
        &format!("/v1/rx/intakes/{rx}/dispense"),
        ph_t,
        None,
        &[],
    );
    assert_eq!(code, 409, "{body}");
    let (code, decided) = call(
        &api,
        "POST",
        &format!("/v1/rx/intakes/{rx}/decision"),
        ph_t,
        Some(json!({"approve": true, "pharmacist": "RPh Ellis"})),
        &[],
    );
    assert_eq!(code, 200, "{decided}");
    assert_eq!(decided["status"], "approved");

    // Dispense: RX5 (earliest expiry) is quarantined by the excursion, so RX6 is picked.
    let (code, dispensed) = call(
        &api,
        "POST",
        &format!("/v1/rx/intakes/{rx}/dispense"),
        ph_t,
        None,
        &[],
    );
    assert_eq!(code, 200, "{dispensed}");
    assert_eq!(dispensed["epc"], epc("RX6"), "{dispensed}");
    assert_eq!(dispensed["lot"], "LOT0");

    // A second prescription for the same patient, drug and prescriber: a duplicate signal.
    let (code, second) = call(
        &api,
        "POST",
        "/v1/rx/intakes",
        ph_t,
        Some(fhir_bundle(CANARY_FAMILY, CANARY_GIVEN, 60)),
        &[],
    );
    assert_eq!(code, 201, "{second}");
    assert_eq!(
        second["patient_token"],
        patient.as_str(),
        "same patient, same token"
    );
    assert_eq!(
        second["signals"][0]["rule"], "fraud.duplicate_prescription",
        "{second}"
    );
    let rx2 = second["rx_token"].as_str().unwrap().to_string();
    let (code, _) = call(
        &api,
        "POST",
        &format!("/v1/rx/intakes/{rx2}/decision"),
        ph_t,
        Some(json!({"approve": true, "pharmacist": "RPh Ellis"})),
        &[],
    );
    assert_eq!(code, 200);
    // The quarantined package is refused by the ledger with the rule's code.
    let (code, body) = call(
        &api,
        "POST",
        &format!("/v1/rx/intakes/{rx2}/dispense"),
        ph_t,
        Some(json!({"epc": epc("RX5")})),
        &[],
    );
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["code"], "custody.transition_forbidden", "{body}");
    // A reservation holds RX1 for another order; the Rx then gets RX2.
    let (code, reserved) = call(
        &api,
        "POST",
        "/v1/inventory/reservations",
        ph_t,
        Some(json!({"ndc": "0001-0123-45", "count": 1, "ttl_seconds": 600})),
        &[],
    );
    assert_eq!(code, 200, "{reserved}");
    assert_eq!(reserved["items"], json!([epc("RX1")]));
    let (code, body) = call(
        &api,
        "POST",
        &format!("/v1/rx/intakes/{rx2}/dispense"),
        ph_t,
        Some(json!({"epc": epc("RX1")})),
        &[],
    );
    assert_eq!(
        (code, body["code"].as_str()),
        (409, Some("inventory.reserved")),
        "{body}"
    );
    let (code, dispensed2) = call(
        &api,
        "POST",
        &format!("/v1/rx/intakes/{rx2}/dispense"),
        ph_t,
        None,
        &[],
    );
    assert_eq!(code, 200, "{dispensed2}");
    assert_eq!(dispensed2["epc"], epc("RX2"));
    let order = reserved["order"].as_str().unwrap();
    let (code, body) = call(
        &api,
        "DELETE",
        &format!("/v1/inventory/reservations/{order}"),
        ph_t,
        None,
        &[],
    );
    assert_eq!(code, 200, "{body}");

    // What the patient sees.
    let answer = verify_settled(&api, "(01)00300010123455(21)RX6(10)LOT0(17)271231");
    assert_eq!(answer["status"], "genuine_dispensed", "{answer}");
    assert_eq!(answer["cold_chain"]["status"], "not_monitored", "{answer}");
    let answer = verify_settled(&api, "(01)00300010123455(21)RX5(10)LOT0(17)271231");
    assert_eq!(answer["status"], "suspect", "{answer}");
    assert_eq!(answer["cold_chain"]["status"], "excursion", "{answer}");
    assert!(
        answer["reasons"]
            .to_string()
            .contains("cold-chain excursion"),
        "{answer}"
    );
    let answer = verify_settled(&api, "(01)00300010123455(21)RX1(10)LOT1(17)280630");
    assert_eq!(answer["status"], "genuine_in_supply_chain", "{answer}");
    assert_eq!(answer["cold_chain"]["status"], "in_range", "{answer}");
    assert_eq!(answer["cold_chain"]["readings"], 60, "{answer}");
    let text = answer.to_string();
    assert!(
        !text.contains(&patient) && !text.contains(&rx),
        "tokens reach no consumer"
    );

    // Crypto-shredding: the PHI is gone for good; the chain is untouched.
    let (code, body) = call(
        &api,
        "POST",
        &format!("/v1/patients/{patient}/shred"),
        ph_t,
        Some(json!({"reason": "patient request"})),
        &[],
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = call(
        &api,
        "GET",
        &format!("/v1/rx/intakes/{rx}"),
        ph_t,
        None,
        &[("X-PHI-Purpose", "audit")],
    );
    assert_eq!(code, 410, "{body}");
    let answer = verify_settled(&api, "(01)00300010123455(21)RX6(10)LOT0(17)271231");
    assert_eq!(answer["status"], "genuine_dispensed", "{answer}");

    // The canary: in no file of the data directory (ledger, vault, local records) and in no
    // log line; a new intake with the canary after the shred is written too, so the vault
    // files hold live encrypted canary data while we look.
    let (code, _) = call(
        &api,
        "POST",
        "/v1/rx/intakes",
        ph_t,
        Some(fhir_bundle(CANARY_FAMILY, CANARY_GIVEN, 30)),
        &[],
    );
    assert_eq!(code, 201);
    drop(node);
    let mut files = Vec::new();
    files_under(&data, &mut files);
    files.push(log.clone());
    assert!(files.len() > 10, "{files:?}");
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.lines().count() > 5, "the node logged: {log_text}");
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        for canary in [CANARY_FAMILY, CANARY_GIVEN, CANARY_ADDRESS] {
            let found = bytes.windows(canary.len()).any(|w| w == canary.as_bytes());
            assert!(!found, "PHI canary {canary:?} found in {}", path.display());
        }
    }
}
