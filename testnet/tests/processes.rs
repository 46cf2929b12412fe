//! Real `pharmalink-node` processes on 127.0.0.x: four validators (manufacturer, wholesaler,
//! pharmacy, courier) and a regulator observer. Black-box checks over the HTTP API only.

use pharmalink_api::http::{encode_batch, TxsBodyFormat};
use pharmalink_ledger::Transaction;
use pharmalink_node::genesis::load_test_key;
use pharmalink_node::loadgen;
use pharmalink_testnet::{Manifest, Testnet};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
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
    network_with(api_port, with_observer, "")
}

/// [`network`] with more manifest settings (`tunables`: top-level TOML lines).
fn network_with(
    api_port: u16,
    with_observer: bool,
    tunables: &str,
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
{tunables}
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

/// The value of `pharmalink_{name}` on `node`'s `/metrics` (0 when absent).
fn metric(testnet: &Testnet, node: &str, name: &str) -> f64 {
    let text = http()
        .get(format!(
            "http://{}/metrics",
            testnet.node(node).unwrap().api
        ))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("pharmalink_{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
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
    // Every validator's metrics show where its heights' time went: waits for proposals, vote
    // rounds, safety-state writes, and the admission of its clients' and its peers' batches.
    for name in ["manufacturer", "wholesaler", "pharmacy", "courier"] {
        for histogram in [
            "proposal_wait_seconds",
            "votes_seconds",
            "safety_persist_seconds",
            "client_admission_seconds",
            "gossip_admission_seconds",
        ] {
            let count = metric(&testnet, name, &format!("{histogram}_count"));
            assert!(count >= 1.0, "{name}: {histogram} not observed");
        }
    }
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

/// Heights of the four validators once they agree (waiting up to 30 s for them to), and the
/// number of transactions in each block.
fn settled_blocks(testnet: &Testnet) -> Vec<usize> {
    let names = ["manufacturer", "wholesaler", "pharmacy", "courier"];
    let height = assert_same_chain(testnet, &names);
    let api = testnet.node("wholesaler").unwrap().api.to_string();
    (1..=height)
        .map(|h| {
            let block: Value = http()
                .get(format!("http://{api}/v1/blocks/{h}"))
                .send()
                .unwrap()
                .json()
                .unwrap();
            block["tx_hashes"].as_array().unwrap().len()
        })
        .collect()
}

/// Waits until the validators' highest height is `height`, up to `timeout`.
fn wait_any_height(testnet: &Testnet, height: u64, timeout: Duration) {
    let started = Instant::now();
    let highest = || {
        ["manufacturer", "wholesaler", "pharmacy", "courier"]
            .iter()
            .filter_map(|n| testnet.height(n))
            .max()
            .unwrap_or(0)
    };
    while highest() < height {
        assert!(
            started.elapsed() < timeout,
            "height {} after {timeout:?}, not {height}",
            highest()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An idle network makes no blocks, except one that certifies the state of the last block
/// with transactions (a header holds its predecessor's state root) and one per empty-block
/// interval (here 6 s) to show it is alive.
#[test]
fn n4_an_idle_network_makes_blocks_only_for_transactions_their_state_and_its_pulse() {
    let (_guard, _dir, testnet) = network_with(18500, false, "empty_block_interval_ms = 6000");
    let chain = chain_id(&testnet);
    // The set-up's product registration, then the block that certifies its state (1 s later).
    wait_any_height(&testnet, 2, Duration::from_secs(30));
    assert_eq!(settled_blocks(&testnet), [1, 0]);
    let certified = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(settled_blocks(&testnet), [1, 0], "idle: no block");
    // One transaction, through a validator that is not necessarily the proposer.
    let api = testnet.node("pharmacy").unwrap().api.to_string();
    assert_eq!(submit_rounds(&api, &chain, 0..1, 0, 1).len(), 1);
    wait_any_height(&testnet, 4, Duration::from_secs(30));
    assert_eq!(settled_blocks(&testnet), [1, 0, 1, 0]);
    let certified_again = Instant::now();
    assert!(
        certified_again.duration_since(certified) < Duration::from_secs(6),
        "this test needs the transaction's blocks before the pulse"
    );
    // Idle for the empty-block interval since the last block: one empty block.
    wait_any_height(&testnet, 5, Duration::from_secs(30));
    let pulse = certified_again.elapsed();
    assert!(
        pulse > Duration::from_secs(4),
        "the idle block came {pulse:?} after the previous one"
    );
    assert_eq!(settled_blocks(&testnet), [1, 0, 1, 0, 0]);
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
    // The heights the partitioned validator was to propose took a second round, and the
    // others count them.
    let failed_rounds = metric(&testnet, "wholesaler", "round_changes_total");
    assert!(
        failed_rounds >= 1.0,
        "no failed round counted while a proposer was cut off"
    );
    testnet.heal().unwrap();
    assert_same_chain(
        &testnet,
        &["manufacturer", "wholesaler", "pharmacy", "courier"],
    );
}

/// Issue 8's canary: the family name of every patient of the order-flow test.
const CANARY: &str = "Zqxnetworkcanary";

/// The organizations of the order-flow test: each calls its own node (of the same name) with a
/// token of its own key. The addresses stay valid across a restart of a node.
struct Orgs {
    client: reqwest::blocking::Client,
    chain: String,
    api: BTreeMap<&'static str, String>,
    keys: BTreeMap<&'static str, pharmalink_ledger::SigningKey>,
    tokens: BTreeMap<&'static str, String>,
}

impl Orgs {
    fn new(testnet: &Testnet, names: &[&'static str]) -> Orgs {
        let chain = chain_id(testnet);
        let (mut api, mut keys, mut tokens) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        for &name in names {
            let node = testnet.node(name).unwrap();
            let key =
                pharmalink_node::keys::read_key_file(&node.dir.join("node.key"), None).unwrap();
            let token =
                pharmalink_api::auth::issue(&key, &chain, pharmalink_api::auth::now_s(), 900)
                    .unwrap();
            api.insert(name, node.api.to_string());
            keys.insert(name, key);
            tokens.insert(name, token);
        }
        Orgs {
            client: http(),
            chain,
            api,
            keys,
            tokens,
        }
    }

    /// `method path` on `org`'s node as `org`; `(0, Null)` when the node does not answer.
    fn call(&self, org: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("http://{}{path}", self.api[org]);
        let mut request = if method == "POST" {
            self.client.post(url)
        } else {
            self.client.get(url)
        };
        request = request.bearer_auth(&self.tokens[org]);
        if let Some(body) = body {
            request = request.json(&body);
        }
        match request.send() {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.json().unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    /// [`Orgs::call`], which must answer `expected`.
    fn expect(
        &self,
        org: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
        expected: u16,
    ) -> Value {
        let (code, answer) = self.call(org, method, path, body);
        assert_eq!(code, expected, "{method} {path} on {org}'s node: {answer}");
        answer
    }

    /// Signs `command` with `org`'s key and commits it through `org`'s node.
    fn submit(&self, org: &str, command: pharmalink_contracts::contract::Command) {
        let key = &self.keys[org];
        let path = format!("/v1/signers/{}/nonce", key.public_key().to_hex());
        let nonce = self.expect(org, "GET", &path, None, 200)["next_nonce"]
            .as_u64()
            .unwrap();
        let tx = Transaction::sign(&self.chain, key, nonce, command.encode()).unwrap();
        let answer: Value = self
            .client
            .post(format!("http://{}/v1/txs", self.api[org]))
            .header("content-type", TxsBodyFormat::BATCH)
            .body(encode_batch(&[tx]))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(answer["results"][0]["status"], "committed", "{answer}");
    }

    /// An approved prescription (intake and decision on the pharmacy's node) for a patient of
    /// the canary family.
    fn approved_rx(&self, given: &str) -> String {
        let intake = json!({"patient": {"family": CANARY, "given": [given], "birth_date": "1970-01-01"},
            "prescriber": {"npi": "1234567893", "family": "Brown"}, "ndc": "0001-0123-45", "quantity": 30,
            "directions": "1 tab po qd x 30 days", "written_on": "2026-11-25"});
        let body = self.expect("pharmacy", "POST", "/v1/rx/intakes", Some(intake), 201);
        let rx = body["rx_token"].as_str().unwrap().to_string();
        self.expect(
            "pharmacy",
            "POST",
            &format!("/v1/rx/intakes/{rx}/decision"),
            Some(json!({"approve": true, "pharmacist": "RPh Net"})),
            200,
        );
        rx
    }

    /// Starts an order's saga on the pharmacy's node (for `item`, or the node's
    /// first-expiry-first-out pick): (order, the recipient's code, the package).
    fn place_order(&self, rx: &str, copay_cents: u64, item: Option<&str>) -> [String; 3] {
        let mut request =
            json!({"rx_token": rx, "destination": [40.74, -73.99], "copay_cents": copay_cents});
        if let Some(item) = item {
            request["items"] = json!([item]);
        }
        let order = self.expect(
            "pharmacy",
            "POST",
            "/v1/dispatch/orders",
            Some(request),
            202,
        );
        [
            &order["order"],
            &order["recipient_code"],
            &order["items"][0],
        ]
        .map(|v| v.as_str().unwrap().to_string())
    }

    /// Polls `org`'s view of `order` until `done(saga, delivery)` holds.
    fn wait_order(
        &self,
        org: &str,
        order: &str,
        what: &str,
        done: impl Fn(&Value, &Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let (code, view) = self.call(org, "GET", &format!("/v1/dispatch/orders/{order}"), None);
            if code == 200 && done(&view["saga"], &view["delivery"]) {
                return view;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{org}'s node, waiting for {what}: {code} {view}"
            );
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// The courier's node learns from the chain that `order` is assigned (after `failures`
    /// failed deliveries); the saga stays on the pharmacy's node.
    fn courier_sees_assigned(&self, order: &str, failures: u64) {
        let view = self.wait_order("courier", order, "the assignment", |_, d| {
            d["state"] == "assigned" && d["attempts"] == failures
        });
        assert!(
            view["saga"].is_null(),
            "the courier's node has no saga: {view}"
        );
    }

    /// The courier's `action` (pickup, deliver, fail) on `order`, through the courier's node.
    fn courier(&self, order: &str, action: &str, body: Option<Value>) {
        let path = format!("/v1/dispatch/orders/{order}/{action}");
        self.expect("courier", "POST", &path, body, 200);
    }

    /// The regulator's observer: `serial` dispensed by the pharmacy, last delivered by courier.
    fn verify_delivered(&self, serial: &str) {
        let code = format!("(01)00300010123455(21){serial}(10)LOT1(17)280630");
        let started = Instant::now();
        loop {
            let url = reqwest::Url::parse_with_params(
                &format!("http://{}/verify", self.api["regulator"]),
                [("code", code.as_str())],
            )
            .unwrap();
            let answer: Value = self.client.get(url).send().unwrap().json().unwrap();
            if answer["status"] == "genuine_dispensed" && answer["pending_events"] == 0 {
                let events: Vec<&str> = answer["timeline"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["event"].as_str().unwrap())
                    .collect();
                assert_eq!(events.last(), Some(&"delivered"), "{answer}");
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "{answer}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// The saga's log as `step:outcome`.
fn saga_steps(saga: &Value) -> Vec<String> {
    saga["log"]
        .as_array()
        .map(|log| {
            log.iter()
                .map(|l| {
                    format!(
                        "{}:{}",
                        l["step"].as_str().unwrap(),
                        l["outcome"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn count(steps: &[String], step: &str) -> usize {
    steps.iter().filter(|s| *s == step).count()
}

/// Issue 9's end-to-end across nodes: the pharmacy's node runs the sagas, the courier's node
/// signs pickups, failures and handoffs, the regulator's observer sees the packages delivered.
/// On the same network: an order delivered at the first try; a declined copay compensated (its
/// package dispensable again); a courier failing twice (the saga retries the vehicle, then
/// re-assigns to the other one); and the pharmacy's node killed (-9) twice mid-saga — while a
/// payment is being retried, then after assignment, the courier delivering while it is down —
/// the saga resuming after each restart. Issue 8's canary: the patients' family name, written
/// through the pharmacy's intakes, appears in no file of any node (ledger, vault, local records,
/// logs) — so in nothing gossiped or synced either.
#[test]
fn order_flows_from_the_pharmacy_node_to_the_courier_node_and_phi_stays_home() {
    use pharmalink_contracts::contract::command::Command;
    use pharmalink_contracts::contract::fixtures::{
        commission, product_master, receive_all, sale, sgtin,
    };
    use pharmalink_contracts::contract::Gln;
    let started = Instant::now();
    let lap = |what: &str| {
        println!(
            "order flows: {what} at {:.1} s",
            started.elapsed().as_secs_f64()
        )
    };
    let (_guard, dir, mut testnet) = network(19180, true);
    lap("network up");
    let orgs = Orgs::new(
        &testnet,
        &["manufacturer", "pharmacy", "courier", "regulator"],
    );
    // The courier's fleet: two vans, one dearer. They reach the pharmacy's node through
    // consensus before its first decision commits, so before any saga looks for a vehicle.
    for (id, cost) in [("van-n", 100), ("van-m", 300)] {
        let van = json!({"id": id, "kind": "van", "payload_grams": 20000, "range_m": 50000,
            "cold_chain": true, "human": true, "base": [40.7, -74.0], "available": true,
            "cost_per_km_cents": cost});
        orgs.expect("courier", "POST", "/v1/dispatch/vehicles", Some(van), 200);
    }
    // Each organization signs on its own node: three packages commissioned, sold and received.
    let serials = ["NET1", "NET2", "NET3"];
    let epcs: Vec<_> = serials.iter().map(|s| sgtin(s)).collect();
    let urn = |i: usize| epcs[i].to_string();
    let pharmacy_gln = Gln::parse(&pharmalink_testnet::gln_for(2)).unwrap();
    orgs.submit(
        "manufacturer",
        Command::RegisterProduct {
            product: product_master(),
        },
    );
    orgs.submit("manufacturer", commission(&serials));
    orgs.submit("manufacturer", sale(pharmacy_gln, epcs.clone(), "PO-NET"));
    orgs.submit("pharmacy", receive_all(0, &epcs));
    let rx = ["Net", "Decline", "Retry", "Restart"].map(|given| orgs.approved_rx(given));
    lap("stocked, four prescriptions approved");

    // Three sagas at once: delivered first time, declined copay (sandbox 402.00), courier failures.
    let [happy, happy_code, item] = orgs.place_order(&rx[0], 1_200, None);
    assert_eq!(item, urn(0), "first-expiry-first-out pick");
    let [declined, ..] = orgs.place_order(&rx[1], 40_200, Some(&urn(1)));
    let [retried, retried_code, _] = orgs.place_order(&rx[2], 1_300, Some(&urn(2)));

    // 1. Delivered at the first try, by the cheaper van.
    orgs.courier_sees_assigned(&happy, 0);
    orgs.courier(&happy, "pickup", None);
    orgs.courier(&happy, "deliver", Some(json!({"code": happy_code})));
    let view = orgs.wait_order("pharmacy", &happy, "completion", |s, _| {
        s["status"] == "completed"
    });
    assert_eq!(
        view["saga"]["assigned"][1], "van-n",
        "the cheapest fitting vehicle: {view}"
    );
    orgs.verify_delivered("NET1");
    lap("order 1 delivered");

    // 2. The declined copay: compensated in reverse; the package is dispensable again.
    let view = orgs.wait_order("pharmacy", &declined, "compensation", |s, _| {
        s["status"] == "compensated"
    });
    assert_eq!(view["delivery"]["state"], "closed", "{view}");
    let steps = saga_steps(&view["saga"]);
    let position = |s: &str| {
        steps
            .iter()
            .position(|x| x == s)
            .unwrap_or_else(|| panic!("{s} missing from {steps:?}"))
    };
    assert!(
        position("payment:failed") < position("reserve:compensated"),
        "{steps:?}"
    );
    assert!(
        position("reserve:compensated") < position("open:compensated"),
        "{steps:?}"
    );
    let stock = orgs.expect(
        "pharmacy",
        "GET",
        "/v1/inventory?ndc=0001-0123-45",
        None,
        200,
    );
    let released = stock["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["epc"] == urn(1).as_str())
        .unwrap_or_else(|| panic!("NET2 not on hand: {stock}"));
    assert!(
        released["dispensable"] == true && released["reserved_for"].is_null(),
        "reservation released: {released}"
    );
    let (code, _) = orgs.call(
        "courier",
        "GET",
        &format!("/v1/dispatch/orders/{declined}"),
        None,
    );
    assert_eq!(code, 404, "the declined order is no courier's to see");
    assert!(
        !steps.iter().any(|s| s.starts_with("assign")),
        "never assigned: {steps:?}"
    );
    lap("order 2 compensated");

    // 3. The courier fails twice after pickup (the package goes back to the pharmacy each time):
    //    the saga retries the same van, then re-assigns to the other; that one delivers.
    for (failures, reason, next) in [(0, "nobody home", "van-n"), (1, "flat tyre", "van-m")] {
        orgs.courier_sees_assigned(&retried, failures);
        orgs.courier(&retried, "pickup", None);
        orgs.courier(&retried, "fail", Some(json!({"reason": reason})));
        let view = orgs.wait_order("pharmacy", &retried, "the next assignment", |s, d| {
            d["state"] == "assigned" && d["attempts"] == failures + 1 && s["step"] == "deliver"
        });
        assert_eq!(
            view["saga"]["assigned"][1],
            next,
            "after {} failure(s): {view}",
            failures + 1
        );
    }
    orgs.courier_sees_assigned(&retried, 2);
    orgs.courier(&retried, "pickup", None);
    orgs.courier(&retried, "deliver", Some(json!({"code": retried_code})));
    let view = orgs.wait_order("pharmacy", &retried, "completion", |s, _| {
        s["status"] == "completed"
    });
    let courier_gln = view["delivery"]["courier_gln"].as_str().unwrap();
    assert_eq!(
        view["saga"]["excluded"],
        json!([format!("{courier_gln}/van-n")]),
        "{view}"
    );
    let steps = saga_steps(&view["saga"]);
    assert_eq!(
        (
            count(&steps, "assign:succeeded"),
            count(&steps, "deliver:failed")
        ),
        (3, 2),
        "{steps:?}"
    );
    orgs.verify_delivered("NET3");
    lap("order 3 delivered after two courier failures");

    // 4. The orchestrator killed mid-saga: a copay failing transiently twice (sandbox 503.00) is
    //    being retried when the pharmacy's node dies. The order takes the released package.
    let [resumed, resumed_code, item] = orgs.place_order(&rx[3], 50_300, None);
    assert_eq!(item, urn(1), "the package the declined order released");
    let before = orgs.wait_order("pharmacy", &resumed, "a failed payment attempt", |s, _| {
        saga_steps(s).iter().any(|s| s == "payment:failed")
    });
    testnet.kill("pharmacy").unwrap();
    lap(&format!(
        "pharmacy's node killed (-9) at saga step {}",
        before["saga"]["step"]
    ));
    testnet.start("pharmacy").unwrap();
    testnet.wait_ready(Duration::from_secs(60)).unwrap();
    lap("pharmacy's node restarted");
    // What the node acknowledged before the kill is still there: the sagas' outcomes and this
    // saga's log, which goes on from where it was.
    for (order, status) in [
        (&happy, "completed"),
        (&declined, "compensated"),
        (&retried, "completed"),
    ] {
        let view = orgs.expect(
            "pharmacy",
            "GET",
            &format!("/v1/dispatch/orders/{order}"),
            None,
            200,
        );
        assert_eq!(view["saga"]["status"], status, "{view}");
    }
    let view = orgs.wait_order(
        "pharmacy",
        &resumed,
        "assignment after the restart",
        |s, d| d["state"] == "assigned" && s["step"] == "deliver",
    );
    let log = |v: &Value| v["saga"]["log"].as_array().unwrap().clone();
    assert!(
        log(&view).starts_with(&log(&before)),
        "the log before the kill: {before}\nafter: {view}"
    );
    assert_eq!(view["saga"]["assigned"][1], "van-n", "{view}");
    // Killed again after the assignment: the courier picks up and delivers through its node
    // while the pharmacy's is down (three validators of four commit); the saga sees the
    // delivery once its node is back and has caught up.
    testnet.kill("pharmacy").unwrap();
    lap("pharmacy's node killed (-9) after the assignment");
    orgs.courier_sees_assigned(&resumed, 0);
    orgs.courier(&resumed, "pickup", None);
    orgs.courier(&resumed, "deliver", Some(json!({"code": resumed_code})));
    lap("order 4 delivered while the pharmacy's node is down");
    testnet.start("pharmacy").unwrap();
    testnet.wait_ready(Duration::from_secs(60)).unwrap();
    let view = orgs.wait_order(
        "pharmacy",
        &resumed,
        "completion after the restart",
        |s, _| s["status"] == "completed",
    );
    let steps = saga_steps(&view["saga"]);
    // The sandbox counts its attempts durably: it fails twice in all, whatever the kills cut
    // (a kill during the second attempt's ledger record loses that attempt's note, not the
    // count), and the copay is charged once.
    let failed = count(&steps, "payment:failed");
    assert!(
        (1..=2).contains(&failed) && count(&steps, "payment:succeeded") == 1,
        "{steps:?}"
    );
    assert_eq!(
        view["saga"]["payment_id"],
        format!("sbx_{resumed}"),
        "{view}"
    );
    assert!(
        steps.contains(&"dispense:succeeded".to_string()),
        "{steps:?}"
    );
    orgs.verify_delivered("NET2");
    lap(&format!(
        "order 4 completed after two restarts ({failed} payment failure(s) in its log)"
    ));

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
    lap("canary checked");
}
