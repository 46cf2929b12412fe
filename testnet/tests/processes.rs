//! Real `pharmalink-node` processes on 127.0.0.x: four validators (manufacturer, wholesaler,
//! pharmacy, courier) and a regulator observer. Black-box checks over the HTTP API only.

use pharmalink_api::http::{encode_batch, TxsBodyFormat};
use pharmalink_ledger::Transaction;
use pharmalink_node::genesis::load_test_key;
use pharmalink_node::loadgen;
use pharmalink_testnet::{Manifest, Testnet};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn target_dir_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(
        path.exists(),
        "{} is not built: run the workspace tests (cargo test --workspace)",
        path.display()
    );
    path
}

/// One network at a time: five node processes per test already fill two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A four-validator network plus an observer, on its own ports.
fn network(
    api_port: u16,
    with_observer: bool,
) -> (
    std::sync::MutexGuard<'static, ()>,
    tempfile::TempDir,
    Testnet,
) {
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let observer = if with_observer {
        "[[node]]\nname = \"regulator\"\nrole = \"regulator\"\nip = \"127.0.0.6\"\nvalidator = false\n"
    } else {
        ""
    };
    let text = format!(
        r#"
chain_id = "pharmalink-it"
api_port = {api_port}
p2p_port = {p2p}
timeout_propose_ms = 1000
[[node]]
name = "manufacturer"
role = "manufacturer"
ip = "127.0.0.2"
validator = true
[[node]]
name = "wholesaler"
role = "wholesaler"
ip = "127.0.0.3"
validator = true
[[node]]
name = "pharmacy"
role = "dispenser"
ip = "127.0.0.4"
validator = true
[[node]]
name = "courier"
role = "logistics"
ip = "127.0.0.5"
validator = true
{observer}"#,
        p2p = api_port + 1
    );
    let manifest: Manifest = toml::from_str(&text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut testnet =
        Testnet::create(manifest, dir.path(), &target_dir_binary("pharmalink-node")).unwrap();
    testnet.start_all().unwrap();
    testnet.wait_ready(Duration::from_secs(60)).unwrap();
    // The load-test product, registered once by a signer the tests use for nothing else.
    let register = Transaction::sign(
        &chain_id(&testnet),
        &load_test_key(63),
        0,
        loadgen::product_command().encode(),
    )
    .unwrap();
    let answer: Value = http()
        .post(format!(
            "http://{}/v1/txs",
            testnet.node("manufacturer").unwrap().api
        ))
        .header("content-type", TxsBodyFormat::BATCH)
        .body(encode_batch(&[register]))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(answer["results"][0]["status"], "committed", "{answer}");
    (guard, dir, testnet)
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn chain_id(testnet: &Testnet) -> String {
    testnet.status("manufacturer").unwrap()["chain_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Submits `rounds` batches (one tx per signer each) to `api`; returns the acknowledged ones.
fn submit_rounds(
    api: &str,
    chain: &str,
    signers: std::ops::Range<u32>,
    first_nonce: u64,
    rounds: u64,
) -> Vec<Transaction> {
    let client = http();
    let mut acked = Vec::new();
    for round in 0..rounds {
        let txs: Vec<Transaction> = signers
            .clone()
            .map(|i| loadgen::commission_tx(chain, i, first_nonce + round, 1).unwrap())
            .collect();
        let Ok(response) = client
            .post(format!("http://{api}/v1/txs"))
            .header("content-type", TxsBodyFormat::BATCH)
            .body(encode_batch(&txs))
            .send()
        else {
            break;
        };
        let Ok(value) = response.json::<Value>() else {
            break;
        };
        for (tx, r) in txs.iter().zip(value["results"].as_array().unwrap()) {
            if r["status"] == "committed" {
                acked.push(tx.clone());
            }
        }
    }
    acked
}

fn assert_same_chain(testnet: &Testnet, names: &[&str]) -> u64 {
    let target = names
        .iter()
        .filter_map(|n| testnet.height(n))
        .max()
        .unwrap();
    for name in names {
        testnet
            .wait_height(name, target, Duration::from_secs(60))
            .unwrap();
    }
    for height in 1..=target {
        let hashes = testnet.block_hashes_at(height).unwrap();
        let distinct: BTreeSet<_> = names.iter().map(|n| hashes.get(*n).cloned()).collect();
        assert_eq!(distinct.len(), 1, "height {height}: {hashes:?}");
        assert!(
            !distinct.contains(&None),
            "height {height} missing somewhere: {hashes:?}"
        );
    }
    target
}

#[test]
fn n4f0_four_validators_commit_10000_transactions_and_agree() {
    let (_guard, _dir, testnet) = network(18100, true);
    let out = Command::new(target_dir_binary("pharmalink"))
        .args([
            "load", "--quiet", "--count", "10000", "--batch", "200", "--target",
        ])
        .args(testnet.api_addresses(true))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap();
    assert!(
        last.starts_with("load: submitted=10000 acknowledged=10000 committed=10000 "),
        "{last}"
    );
    let height = assert_same_chain(
        &testnet,
        &[
            "manufacturer",
            "wholesaler",
            "pharmacy",
            "courier",
            "regulator",
        ],
    );
    let mut committed = 0;
    for h in 1..=height {
        let block: Value = http()
            .get(format!(
                "http://{}/v1/blocks/{h}",
                testnet.node("regulator").unwrap().api
            ))
            .send()
            .unwrap()
            .json()
            .unwrap();
        committed += block["tx_hashes"].as_array().unwrap().len();
    }
    assert_eq!(
        committed, 10002,
        "the observer holds every committed transaction (10,000 commissions and the product \
         registrations by the test set-up and by the load generator, the latter rejected as a \
         duplicate)"
    );
}

#[test]
fn n4f1_a_killed_validator_does_not_stop_the_others_and_catches_up() {
    let (_guard, _dir, mut testnet) = network(18200, false);
    let chain = chain_id(&testnet);
    let api = testnet.node("manufacturer").unwrap().api.to_string();
    let before = submit_rounds(&api, &chain, 0..8, 0, 5);
    assert_eq!(before.len(), 40);
    testnet.kill("courier").unwrap();
    let during = submit_rounds(&api, &chain, 0..8, 5, 10);
    assert_eq!(during.len(), 80, "three of four validators keep committing");
    let killed_at = Instant::now();
    testnet.start("courier").unwrap();
    testnet.wait_ready(Duration::from_secs(60)).unwrap();
    let height = assert_same_chain(
        &testnet,
        &["manufacturer", "wholesaler", "pharmacy", "courier"],
    );
    println!(
        "courier caught up to height {height} in {:?}",
        killed_at.elapsed()
    );
    // Every acknowledged transaction is on the restarted node too.
    let courier = testnet.node("courier").unwrap().api.to_string();
    for tx in before.iter().chain(&during) {
        let found: Value = http()
            .get(format!("http://{courier}/v1/txs/{}", tx.hash()))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(found["status"], "committed", "{}", tx.hash());
    }
}

#[test]
fn n4f2_two_killed_validators_stop_progress_without_divergence_until_one_returns() {
    let (_guard, _dir, mut testnet) = network(18300, false);
    let chain = chain_id(&testnet);
    let api = testnet.node("manufacturer").unwrap().api.to_string();
    let acked = submit_rounds(&api, &chain, 0..4, 0, 3);
    assert_eq!(acked.len(), 12);
    testnet.kill("pharmacy").unwrap();
    testnet.kill("courier").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let stuck_at = testnet.height("manufacturer").unwrap();
    // Submit while only two of four are up: nothing can commit (2 < 3 = quorum).
    let client = http();
    let tx = loadgen::commission_tx(&chain, 10, 0, 1).unwrap();
    let submitter = {
        let api = api.clone();
        let body = encode_batch(std::slice::from_ref(&tx));
        std::thread::spawn(move || {
            client
                .post(format!("http://{api}/v1/txs"))
                .header("content-type", TxsBodyFormat::BATCH)
                .body(body)
                .send()
                .map_err(|e| format!("send: {e}"))
                .and_then(|r| r.json::<Value>().map_err(|e| format!("json: {e}")))
        })
    };
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        testnet.height("manufacturer").unwrap(),
        stuck_at,
        "no commits without a quorum"
    );
    assert_eq!(testnet.height("wholesaler").unwrap(), stuck_at);
    testnet.start("pharmacy").unwrap();
    testnet.wait_ready(Duration::from_secs(60)).unwrap();
    let answer = submitter
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("the submission is answered once a quorum is back: {e}"));
    assert_eq!(answer["results"][0]["status"], "committed", "{answer}");
    let height = assert_same_chain(&testnet, &["manufacturer", "wholesaler", "pharmacy"]);
    assert!(height > stuck_at);
    testnet.start("courier").unwrap();
    testnet.wait_ready(Duration::from_secs(60)).unwrap();
    assert_same_chain(
        &testnet,
        &["manufacturer", "wholesaler", "pharmacy", "courier"],
    );
}

#[test]
fn n4p1_a_partitioned_validator_rejoins_after_healing() {
    let (_guard, _dir, testnet) = network(18400, false);
    let chain = chain_id(&testnet);
    let api = testnet.node("wholesaler").unwrap().api.to_string();
    testnet.disconnect("pharmacy").unwrap();
    let acked = submit_rounds(&api, &chain, 0..4, 0, 5);
    assert_eq!(acked.len(), 20, "three connected validators commit");
    let behind = testnet.height("pharmacy").unwrap();
    let ahead = testnet.height("wholesaler").unwrap();
    assert!(
        behind < ahead,
        "the partitioned node did not follow ({behind} vs {ahead})"
    );
    testnet.heal().unwrap();
    assert_same_chain(
        &testnet,
        &["manufacturer", "wholesaler", "pharmacy", "courier"],
    );
}

/// Issue 9's end-to-end across nodes: the pharmacy's node runs the saga, the courier's node
/// signs pickup and handoff, the regulator's observer sees the package delivered. Issue 8's
/// canary: the patient's name, written through the pharmacy's intake, appears in no file of any
/// node (ledger, vault, local records, logs) — so in nothing gossiped or synced either.
#[test]
fn order_flows_from_the_pharmacy_node_to_the_courier_node_and_phi_stays_home() {
    use pharmalink_contracts::contract::command::Command;
    use pharmalink_contracts::contract::fixtures::{product_master, receive_all, sale};
    use pharmalink_contracts::contract::{Date, Epc, Gln, Gtin};
    use serde_json::json;
    const CANARY: &str = "Zqxnetworkcanary";
    let (_guard, dir, testnet) = network(19180, true);
    let chain = chain_id(&testnet);
    let api = |name: &str| testnet.node(name).unwrap().api.to_string();
    let key = |name: &str| {
        pharmalink_node::keys::read_key_file(
            &testnet.node(name).unwrap().dir.join("node.key"),
            None,
        )
        .unwrap()
    };
    let token = |name: &str| {
        pharmalink_api::auth::issue(&key(name), &chain, pharmalink_api::auth::now_s(), 900).unwrap()
    };
    let client = http();
    let call =
        |node: &str, method: &str, path: &str, token: &str, body: Option<Value>| -> (u16, Value) {
            let url = format!("http://{}{path}", api(node));
            let mut request = if method == "POST" {
                client.post(url)
            } else {
                client.get(url)
            };
            request = request.bearer_auth(token);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().unwrap();
            let status = response.status().as_u16();
            (status, response.json().unwrap_or(Value::Null))
        };
    let submit = |node: &str, signer: &str, command: Command| {
        let signing = key(signer);
        let (_, nonce) = call(
            node,
            "GET",
            &format!("/v1/signers/{}/nonce", signing.public_key().to_hex()),
            "",
            None,
        );
        let tx = Transaction::sign(
            &chain,
            &signing,
            nonce["next_nonce"].as_u64().unwrap(),
            command.encode(),
        )
        .unwrap();
        let answer: Value = client
            .post(format!("http://{}/v1/txs", api(node)))
            .header("content-type", TxsBodyFormat::BATCH)
            .body(encode_batch(&[tx]))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(answer["results"][0]["status"], "committed", "{answer}");
    };
    // Each organization signs on its own node.
    let pharmacy_gln = Gln::parse(&pharmalink_testnet::gln_for(2)).unwrap();
    let epc = Epc::new("urn:epc:id:sgtin:0300010.012345.NET1");
    submit(
        "manufacturer",
        "manufacturer",
        Command::RegisterProduct {
            product: product_master(),
        },
    );
    submit(
        "manufacturer",
        "manufacturer",
        Command::Commission {
            gtin: Gtin::parse("00300010123455").unwrap(),
            serials: vec!["NET1".into()],
            lot: "LOT1".into(),
            expiry: Date::new(2028, 6, 30),
        },
    );
    submit(
        "manufacturer",
        "manufacturer",
        sale(pharmacy_gln, vec![epc.clone()], "PO-NET"),
    );
    submit("pharmacy", "pharmacy", receive_all(0, &[epc.clone()]));
    let (pharmacy, courier) = (token("pharmacy"), token("courier"));

    let intake = json!({"patient": {"family": CANARY, "given": ["Net"], "birth_date": "1970-01-01"},
        "prescriber": {"npi": "1234567893", "family": "Brown"}, "ndc": "0001-0123-45", "quantity": 30,
        "directions": "1 tab po qd x 30 days", "written_on": "2026-11-25"});
    let (code, body) = call(
        "pharmacy",
        "POST",
        "/v1/rx/intakes",
        &pharmacy,
        Some(intake),
    );
    assert_eq!(code, 201, "{body}");
    let rx = body["rx_token"].as_str().unwrap().to_string();
    let (code, body) = call(
        "pharmacy",
        "POST",
        &format!("/v1/rx/intakes/{rx}/decision"),
        &pharmacy,
        Some(json!({"approve": true, "pharmacist": "RPh Net"})),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = call(
        "courier",
        "POST",
        "/v1/dispatch/vehicles",
        &courier,
        Some(json!({"id": "van-n", "kind": "van",
        "payload_grams": 20000, "range_m": 50000, "cold_chain": true, "human": true, "base": [40.7, -74.0],
        "available": true, "cost_per_km_cents": 100})),
    );
    assert_eq!(code, 200, "{body}");
    // The vehicle reached the pharmacy's node through consensus before the order is placed.
    let (code, order) = call(
        "pharmacy",
        "POST",
        "/v1/dispatch/orders",
        &pharmacy,
        Some(json!({"rx_token": rx, "destination": [40.74, -73.99], "copay_cents": 1200})),
    );
    assert_eq!(code, 202, "{order}");
    let (id, recipient_code) = (
        order["order"].as_str().unwrap().to_string(),
        order["recipient_code"].as_str().unwrap().to_string(),
    );
    // The courier's node learns of the assignment from the chain.
    let started = Instant::now();
    loop {
        let (code, view) = call(
            "courier",
            "GET",
            &format!("/v1/dispatch/orders/{id}"),
            &courier,
            None,
        );
        if code == 200 && view["delivery"]["state"] == "assigned" {
            assert!(
                view["saga"].is_null(),
                "the courier's node has no saga: {view}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not assigned: {code} {view}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, body) = call(
        "courier",
        "POST",
        &format!("/v1/dispatch/orders/{id}/pickup"),
        &courier,
        None,
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = call(
        "courier",
        "POST",
        &format!("/v1/dispatch/orders/{id}/deliver"),
        &courier,
        Some(json!({"code": recipient_code})),
    );
    assert_eq!(code, 200, "{body}");
    let started = Instant::now();
    loop {
        let (_, view) = call(
            "pharmacy",
            "GET",
            &format!("/v1/dispatch/orders/{id}"),
            &pharmacy,
            None,
        );
        if view["saga"]["status"] == "completed" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "saga: {view}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The regulator's observer: dispensed by the pharmacy, delivered by courier.
    let started = Instant::now();
    loop {
        let url = reqwest::Url::parse_with_params(
            &format!("http://{}/verify", api("regulator")),
            [("code", "(01)00300010123455(21)NET1(10)LOT1(17)280630")],
        )
        .unwrap();
        let answer: Value = client.get(url).send().unwrap().json().unwrap();
        if answer["status"] == "genuine_dispensed" && answer["pending_events"] == 0 {
            let events: Vec<&str> = answer["timeline"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["event"].as_str().unwrap())
                .collect();
            assert_eq!(events.last(), Some(&"delivered"), "{answer}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{answer}");
        std::thread::sleep(Duration::from_millis(300));
    }
    // The canary: nowhere on any node.
    drop(testnet);
    fn files_under(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files_under(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    files_under(dir.path(), &mut files);
    assert!(
        files.iter().filter(|f| f.ends_with("node.log")).count() == 5,
        "{files:?}"
    );
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        assert!(
            !bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()),
            "PHI canary in {}",
            path.display()
        );
    }
}
