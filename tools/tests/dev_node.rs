//! `pharmalink-node dev` as a user runs it: a real process, a real RocksDB store, HTTP on
//! 127.0.0.1, the load generator, bad input, and kill -9 with no acknowledged transaction lost.

mod support;

use pharmalink_api::http::{encode_batch, TxsBodyFormat};
use pharmalink_ledger::{Canonical, SigningKey, Transaction};
use pharmalink_node::genesis::load_test_key;
use pharmalink_node::loadgen;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

#[test]
fn dev_node_commits_load_and_rejects_bad_input_precisely() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(dir.path(), free_port());
    let api = node.api.clone();

    let out = std::process::Command::new(bin("pharmalink"))
        .args(["load", "--quiet", "--count", "2000", "--target", &api])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "load failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap();
    assert!(
        last.starts_with("load: submitted=2000 acknowledged=2000 committed=2000 "),
        "{last}"
    );

    let (_, status) = get(&api, "/v1/status").unwrap();
    assert!(status["height"].as_u64().unwrap() >= 1, "{status}");
    assert_eq!(status["head_hash"].as_str().unwrap().len(), 64);
    let chain = chain_id(&api);

    // A valid commission (the load run registered the product), then its replay, a forged
    // signature, an outsider, a payload that is not a command, and a command the contracts
    // reject (the same serial again: recorded in a block with the rule's code).
    let signer = load_test_key(40);
    let (_, nonce) = get(&api, &format!("/v1/signers/{}/nonce", signer.public_key())).unwrap();
    let nonce = nonce["next_nonce"].as_u64().unwrap();
    let good = loadgen::commission_tx(&chain, 40, nonce, 1).unwrap();
    let results = submit(&api, std::slice::from_ref(&good));
    assert_eq!(results[0]["status"], "committed", "{results:?}");
    let (code, found) = get(&api, &format!("/v1/txs/{}", good.hash())).unwrap();
    assert_eq!((code, found["status"].as_str()), (200, Some("committed")));

    let replay = loadgen::commission_tx(&chain, 40, nonce, 2).unwrap();
    let results = submit(&api, &[replay]);
    assert_eq!(results[0]["code"], "nonce_used", "{results:?}");

    let mut forged = loadgen::commission_tx(&chain, 40, nonce + 1, 1).unwrap();
    forged.payload[3] ^= 1;
    let results = submit(&api, &[forged]);
    assert_eq!(results[0]["code"], "bad_signature", "{results:?}");

    let outsider = Transaction::sign(
        &chain,
        &SigningKey::from_seed([7; 32]),
        0,
        loadgen::product_command().encode(),
    )
    .unwrap();
    let results = submit(&api, &[outsider]);
    assert_eq!(results[0]["code"], "iam.signer_unknown", "{results:?}");

    let not_a_command = Transaction::sign(&chain, &signer, nonce + 1, vec![1, 0xEE, 0xEE]).unwrap();
    let results = submit(&api, &[not_a_command]);
    assert_eq!(results[0]["code"], "payload.malformed", "{results:?}");

    let again = Transaction::sign(
        &chain,
        &signer,
        nonce + 1,
        loadgen::commission_command(40, nonce, 1).encode(),
    )
    .unwrap();
    let results = submit(&api, &[again]);
    assert_eq!(results[0]["status"], "rejected", "{results:?}");
    assert_eq!(results[0]["code"], "custody.epc_exists", "{results:?}");
    assert!(
        results[0]["reason"]
            .as_str()
            .unwrap()
            .contains("recorded in block"),
        "{results:?}"
    );
    let (_, next) = get(&api, &format!("/v1/signers/{}/nonce", signer.public_key())).unwrap();
    assert_eq!(
        next["next_nonce"].as_u64(),
        Some(nonce + 2),
        "a recorded rejection uses its nonce"
    );

    let (code, body) = post(&api, TxsBodyFormat::ONE, vec![1, 2, 3]);
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["field"], "body");

    // A flood from one address (here 127.0.0.2) gets 429 + Retry-After, not a stall; an
    // oversized body gets 413.
    let (limited, retry_after, oversized) = runtime().block_on(async {
        let client = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
            .build()
            .unwrap();
        let mut limited = 0;
        let mut retry_after = None;
        for _ in 0..5000 {
            let r = client
                .get(format!("http://{api}/health"))
                .send()
                .await
                .unwrap();
            if r.status() == 429 {
                limited += 1;
                retry_after = r
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string());
            }
        }
        // One byte over the limit: the server reads the whole body before it answers, so the
        // answer is not lost to a reset of unread data.
        let oversized = reqwest::Client::new()
            .post(format!("http://{api}/v1/txs"))
            .header("content-type", TxsBodyFormat::ONE)
            .body(vec![0u8; pharmalink_api::SUBMIT_BODY_BYTES_MAX + 1])
            .send()
            .await
            .map(|r| r.status().as_u16());
        (limited, retry_after, oversized)
    });
    assert!(
        limited > 0,
        "5,000 requests from one address were all served"
    );
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(oversized.ok(), Some(413));
    let (code, body) = post(&api, "text/plain", b"hello".to_vec());
    assert_eq!(code, 415, "{body}");
    let mut batch = encode_batch(&[good.clone(), good.clone()]);
    batch.truncate(batch.len() - 10);
    let (code, body) = post(&api, TxsBodyFormat::BATCH, batch);
    assert_eq!(
        (code, body["field"].as_str()),
        (400, Some("txs[1]")),
        "{body}"
    );
    let (code, body) = post(&api, "application/json", br#"{"txs": ["zz"]}"#.to_vec());
    assert_eq!(
        (code, body["field"].as_str()),
        (400, Some("txs[0]")),
        "{body}"
    );
    let json = serde_json::json!({"txs": [hex::encode(good.to_canonical_bytes().unwrap())]});
    let (code, body) = post(&api, "application/json", serde_json::to_vec(&json).unwrap());
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["results"][0]["status"], "committed",
        "resubmitting a committed tx reports its outcome"
    );

    let (code, metrics) = runtime().block_on(async {
        let r = reqwest::get(format!("http://{api}/metrics")).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    });
    assert_eq!(code, 200);
    assert!(
        metrics.contains("pharmalink_height")
            && metrics.contains("pharmalink_commit_latency_seconds"),
        "{metrics}"
    );
    // Where a height's time goes: every stage the committed transactions went through was
    // observed (a single validator builds its proposals, so it has no gossiped batches).
    let count = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&format!("pharmalink_{name}_count ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    for stage in [
        "proposal_wait_seconds",
        "votes_seconds",
        "block_commit_seconds",
        "safety_persist_seconds",
        "client_admission_seconds",
        "admission_batch_txs",
    ] {
        assert!(count(stage) >= 1.0, "{stage} not observed:\n{metrics}");
    }
    assert_eq!(count("gossip_admission_seconds"), 0.0, "{metrics}");
}

/// The node re-executes itself (same PID, same arguments) so that mimalloc starts with freed
/// memory kept for the next block (`pharmalink_node::tune_memory`); an operator's own setting
/// is kept, and both nodes serve.
#[test]
fn the_node_starts_with_its_allocator_tuned_and_keeps_an_operators_setting() {
    let environ_of = |node: &DevNode| {
        let raw = std::fs::read(format!("/proc/{}/environ", node.child.id())).unwrap();
        raw.split(|b| *b == 0)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .filter(|v| v.starts_with("MIMALLOC_PURGE_DELAY="))
            .collect::<Vec<_>>()
    };
    let dir = tempfile::tempdir().unwrap();
    let tuned = DevNode::start_with(&dir.path().join("a"), free_port(), |c| {
        c.env_remove(pharmalink_node::PURGE_DELAY_ENV);
    });
    assert_eq!(environ_of(&tuned), ["MIMALLOC_PURGE_DELAY=-1"]);
    let name = std::fs::read_to_string(format!("/proc/{}/comm", tuned.child.id())).unwrap();
    assert_eq!(name.trim(), "pharmalink-node", "the process keeps its name");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", tuned.child.id())).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("--data-dir"),
        "arguments kept across the re-execution"
    );
    let own = DevNode::start_with(&dir.path().join("b"), free_port(), |c| {
        c.env(pharmalink_node::PURGE_DELAY_ENV, "250");
    });
    assert_eq!(environ_of(&own), ["MIMALLOC_PURGE_DELAY=250"]);
    for node in [&tuned, &own] {
        let (code, status) = get(&node.api, "/v1/status").unwrap();
        assert_eq!((code, &status["chain_id"]), (200, &json!("pharmalink-dev")));
    }
}

#[test]
fn kill_9_loses_no_acknowledged_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut node = DevNode::start(dir.path(), port);
    let chain = chain_id(&node.api);
    let mut acknowledged: Vec<Transaction> = Vec::new();
    let indexes: Vec<u32> = (100..108).collect();
    let signers: Vec<SigningKey> = indexes.iter().map(|i| load_test_key(*i)).collect();
    let mut nonces = vec![0u64; signers.len()];
    let register =
        Transaction::sign(&chain, &signers[0], 0, loadgen::product_command().encode()).unwrap();
    assert_eq!(submit(&node.api, &[register])[0]["status"], "committed");
    nonces[0] = 1;
    for round in 0..3u64 {
        // Keep submitting from a thread; kill the node while requests are in flight.
        let api = node.api.clone();
        let chain = chain.clone();
        let indexes_for_worker = indexes.clone();
        let mut worker_nonces = nonces.clone();
        let acked_batches = Arc::new(AtomicUsize::new(0));
        let worker_acked_batches = acked_batches.clone();
        let worker = std::thread::spawn(move || {
            let mut acked = Vec::new();
            loop {
                let txs: Vec<Transaction> = indexes_for_worker
                    .iter()
                    .zip(&worker_nonces)
                    .map(|(i, n)| loadgen::commission_tx(&chain, *i, *n, 1).unwrap())
                    .collect();
                let body = encode_batch(&txs);
                let result = runtime().block_on(async {
                    let r = reqwest::Client::new()
                        .post(format!("http://{api}/v1/txs"))
                        .header("content-type", TxsBodyFormat::BATCH)
                        .body(body)
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    r.json::<Value>().await.map_err(|e| e.to_string())
                });
                let Ok(value) = result else { return acked };
                for (tx, r) in txs.iter().zip(value["results"].as_array().unwrap()) {
                    assert_eq!(r["status"], "committed", "{r}");
                    acked.push(tx.clone());
                }
                worker_nonces.iter_mut().for_each(|n| *n += 1);
                worker_acked_batches.fetch_add(1, Ordering::SeqCst);
            }
        });
        // Kill once something was acknowledged (a restarted node may first need a round timeout
        // to move past what it signed before the previous kill), with requests still in flight.
        let waited = Instant::now();
        while acked_batches.load(Ordering::SeqCst) == 0 {
            assert!(
                waited.elapsed() < Duration::from_secs(60),
                "round {round}: nothing committed within 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100 + 300 * round));
        node.kill9();
        let acked = worker.join().unwrap();
        assert!(
            !acked.is_empty(),
            "round {round}: nothing was acknowledged before the kill"
        );
        acknowledged.extend(acked);
        node = DevNode::start(dir.path(), port);
        for tx in &acknowledged {
            let (code, found) = get(&node.api, &format!("/v1/txs/{}", tx.hash())).unwrap();
            assert_eq!(
                (code, found["status"].as_str()),
                (200, Some("committed")),
                "round {round}: acknowledged {} lost",
                tx.hash()
            );
        }
        // The batch in flight at the kill may or may not have committed: go on from the chain.
        for (signer, nonce) in signers.iter().zip(nonces.iter_mut()) {
            let (_, n) = get(
                &node.api,
                &format!("/v1/signers/{}/nonce", signer.public_key()),
            )
            .unwrap();
            *nonce = n["next_nonce"].as_u64().unwrap();
        }
    }
    assert!(acknowledged.len() >= 3 * signers.len());
}

/// The dev genesis's organizations drive a real custody history through the contracts:
/// register, commission, sell to the wholesaler, receive, sell on to the pharmacy, receive,
/// dispense — and the rules refuse what the holder may not do, naming the rule.
#[test]
fn custody_flow_between_dev_organizations() {
    use pharmalink_contracts::contract::command::Command;
    use pharmalink_contracts::contract::fixtures::{
        commission, product_master, receive_all, sale, sgtin, DISPENSER, MANUFACTURER, WHOLESALER,
    };
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(dir.path(), free_port());
    let api = node.api.clone();
    let chain = chain_id(&api);
    let key = |name: &str| {
        pharmalink_node::keys::read_key_file(&dir.path().join(format!("{name}.key")), None).unwrap()
    };
    let (maker, wholesaler, pharmacy) = (key("manufacturer"), key("wholesaler"), key("pharmacy"));
    let mut nonces = std::collections::BTreeMap::<String, u64>::new();
    let mut run = |signer: &SigningKey, command: Command| -> Value {
        let nonce = nonces.entry(signer.public_key().to_hex()).or_default();
        let tx = Transaction::sign(&chain, signer, *nonce, command.encode()).unwrap();
        *nonce += 1;
        submit(&api, &[tx]).remove(0)
    };
    let (one, two) = (sgtin("DEV1"), sgtin("DEV2"));
    let steps = [
        (
            &maker,
            Command::RegisterProduct {
                product: product_master(),
            },
        ),
        (&maker, commission(&["DEV1", "DEV2"])),
        (
            &maker,
            sale(WHOLESALER.gln(), vec![one.clone(), two.clone()], "PO-1"),
        ),
        (&wholesaler, receive_all(0, &[one.clone(), two.clone()])),
        (
            &wholesaler,
            sale(DISPENSER.gln(), vec![one.clone()], "PO-2"),
        ),
        (&pharmacy, receive_all(1, &[one.clone()])),
        (
            &pharmacy,
            Command::Dispense {
                items: vec![one.clone()],
            },
        ),
    ];
    for (i, (signer, command)) in steps.into_iter().enumerate() {
        let result = run(signer, command);
        assert_eq!(result["status"], "committed", "step {i}: {result}");
    }
    // The pharmacy does not hold DEV2; DEV1 is already dispensed; a wholesaler may not
    // commission (RBAC).
    let result = run(&pharmacy, Command::Dispense { items: vec![two] });
    assert_eq!(result["code"], "custody.not_holder", "{result}");
    let result = run(&pharmacy, Command::Dispense { items: vec![one] });
    assert_eq!(result["status"], "rejected", "{result}");
    let result = run(&wholesaler, commission(&["DEV3"]));
    assert_eq!(result["code"], "rbac.role_forbidden", "{result}");

    // The patient's side: GET /verify with what a scanner reads, then the proof offline.
    let dev1 = "(01)00300010123455(21)DEV1(10)LOT1(17)280630";
    let answer = verify_settled(&api, dev1);
    assert_eq!(answer["status"], "genuine_dispensed", "{answer}");
    assert_eq!(answer["product"]["name"], "Examplamab", "{answer}");
    let events: Vec<&str> = answer["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "commissioned",
            "shipped",
            "received",
            "shipped",
            "received",
            "dispensed"
        ]
    );
    // No trading partner, purchase order or shipment detail reaches the patient.
    let text = answer.to_string();
    for secret in [WHOLESALER.gln, "PO-1", "PO-2", "shipment"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let answer = verify_settled(&api, "]d2010030001012345521DEV2\u{1d}10LOT1\u{1d}17280630");
    assert_eq!(answer["status"], "genuine_in_supply_chain", "{answer}");
    let answer = verify_settled(&api, "https://id.gs1.org/01/00300010123455/21/DEV9");
    assert_eq!(answer["status"], "counterfeit_suspected", "{answer}");
    let answer = verify_settled(&api, "(01)00300010123455(21)DEV2(10)LOT7");
    assert_eq!(
        answer["status"], "counterfeit_suspected",
        "label lot differs: {answer}"
    );
    let answer = verify_settled(&api, "(01)09506000134352(21)X1");
    assert_eq!(answer["status"], "unknown", "{answer}");
    let (code, problem) = verify_raw(&api, "(01)00300010123455");
    assert_eq!(
        (code, problem["field"].as_str()),
        (400, Some("code")),
        "{problem}"
    );
    assert!(
        problem["detail"].as_str().unwrap().contains("AI 21"),
        "{problem}"
    );
    let (code, problem) = verify_raw(&api, "(01)00300010123456(21)X");
    assert_eq!(code, 400, "bad check digit: {problem}");

    // Offline: the saved proof object verifies with the genesis file alone.
    let answer = verify_settled(&api, dev1);
    let proof_file = dir.path().join("dev1-proof.json");
    std::fs::write(&proof_file, answer["proof"].to_string()).unwrap();
    let genesis_file = dir.path().join("genesis.json");
    let out = std::process::Command::new(bin("pharmalink"))
        .args(["verify", "--genesis"])
        .arg(&genesis_file)
        .arg("--proof")
        .arg(&proof_file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("verdict: genuine_dispensed"), "{stdout}");
    // One altered hex digit of the data: exit 1 with the reason.
    let data = answer["proof"]["data"].as_str().unwrap();
    for position in [40, data.len() / 2, data.len() - 3] {
        let mut altered: Vec<u8> = data.as_bytes().to_vec();
        altered[position] = if altered[position] == b'0' {
            b'1'
        } else {
            b'0'
        };
        let mut proof = answer["proof"].clone();
        proof["data"] = Value::String(String::from_utf8(altered).unwrap());
        std::fs::write(&proof_file, proof.to_string()).unwrap();
        let out = std::process::Command::new(bin("pharmalink"))
            .args(["verify", "--genesis"])
            .arg(&genesis_file)
            .arg("--proof")
            .arg(&proof_file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "hex digit {position}: {stderr}");
        assert!(stderr.contains("proof"), "{stderr}");
    }

    // DSCSA, with bearer tokens signed by member keys.
    let regulator = key("regulator");
    let token = |k: &SigningKey| {
        pharmalink_api::auth::issue(k, &chain, pharmalink_api::auth::now_s(), 300).unwrap()
    };
    let verify_pi = |key: &SigningKey, body: Value| {
        call(
            &api,
            "POST",
            "/v1/dscsa/verify",
            Some(&token(key)),
            Some(body),
        )
    };
    let get_as = |key: &SigningKey, path: &str| call(&api, "GET", path, Some(&token(key)), None);
    let dev1_urn = sgtin("DEV1").as_str().to_string();
    let (code, body) = call(
        &api,
        "GET",
        &format!("/v1/dscsa/trace?epc={dev1_urn}"),
        None,
        None,
    );
    assert_eq!(code, 401, "no token: {body}");
    assert_eq!(body["field"], "authorization", "{body}");
    let expired = pharmalink_api::auth::issue(&regulator, &chain, 1_000_000, 300).unwrap();
    let (code, body) = call(
        &api,
        "GET",
        &format!("/v1/dscsa/trace?epc={dev1_urn}"),
        Some(&expired),
        None,
    );
    assert_eq!(code, 401, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    let outsider = pharmalink_api::auth::issue(
        &SigningKey::from_seed([9; 32]),
        &chain,
        pharmalink_api::auth::now_s(),
        300,
    )
    .unwrap();
    let (code, body) = call(
        &api,
        "GET",
        &format!("/v1/dscsa/trace?epc={dev1_urn}"),
        Some(&outsider),
        None,
    );
    assert_eq!(code, 401, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("iam.signer_unknown"),
        "{body}"
    );
    // The regulator traces DEV1 back to commissioning, with every TI/TS.
    let (code, trace) = get_as(&regulator, &format!("/v1/dscsa/trace?epc={dev1_urn}"));
    assert_eq!(code, 200, "{trace}");
    assert_eq!(trace["status"]["status"], "dispensed", "{trace}");
    let events = trace["history"]["epcisBody"]["eventList"]
        .as_array()
        .unwrap();
    assert!(events.len() >= 5, "{trace}");
    assert_eq!(
        trace["transactions"].as_array().unwrap().len(),
        2,
        "{trace}"
    );
    assert_eq!(
        trace["transactions"][0]["biz_transactions"][0]["id"], "PO-1",
        "{trace}"
    );
    // The pharmacy never handled DEV2: refused. The wholesaler sees only its own transactions
    // of DEV1 (both: it bought PO-1 and sold PO-2); the pharmacy only PO-2.
    let dev2_dl = "https://id.gs1.org/01/00300010123455/21/DEV2";
    let (code, body) = get_as(&pharmacy, &format!("/v1/dscsa/trace?epc={dev2_dl}"));
    assert_eq!(code, 403, "{body}");
    let (code, trace) = get_as(&pharmacy, &format!("/v1/dscsa/trace?epc={dev1_urn}"));
    assert_eq!(code, 200, "{trace}");
    let seen: Vec<&str> = trace["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["biz_transactions"][0]["id"].as_str().unwrap())
        .collect();
    assert_eq!(seen, ["PO-2"], "{trace}");
    // PI verification (VRS shape) by the wholesaler.
    let request = |serial: &str, lot: &str, expiry: &str| json!({"gtin": "00300010123455", "serialNumber": serial, "lotNumber": lot, "expirationDate": expiry, "correlationUUID": "c0ffee"});
    let (code, answer) = verify_pi(&wholesaler, request("DEV2", "LOT1", "280630"));
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["data"]["verified"], true, "{answer}");
    assert_eq!(answer["responderGLN"], MANUFACTURER.gln, "{answer}");
    assert_eq!(answer["correlationUUID"], "c0ffee", "{answer}");
    let (_, answer) = verify_pi(&wholesaler, request("DEV2", "LOT2", "280630"));
    assert_eq!(
        answer["data"]["verificationFailureReasonCode"], "No_Match_GTIN_Serial_Lot",
        "{answer}"
    );
    let (_, answer) = verify_pi(&wholesaler, request("NOPE", "LOT1", "280630"));
    assert_eq!(
        answer["data"]["verificationFailureReasonCode"], "No_Match_GTIN_Serial",
        "{answer}"
    );
    let (_, answer) = verify_pi(&wholesaler, request("DEV1", "LOT1", "280630"));
    assert_eq!(
        answer["data"]["verificationFailureReasonCode"], "Not_In_Supply_Chain",
        "{answer}"
    );
    let (code, answer) = verify_pi(&regulator, json!({"gtin": "123"}));
    assert_eq!(
        (code, answer["field"].as_str()),
        (400, Some("body")),
        "{answer}"
    );
    let (code, answer) = verify_pi(&regulator, request("DEV2", "LOT1", "281399"));
    assert_eq!(
        (code, answer["field"].as_str()),
        (400, Some("expirationDate")),
        "{answer}"
    );

    // Client credentials: a member key's assertion buys a node-signed access token.
    let form = |assertion: &str, grant: &str| {
        format!(
            "grant_type={grant}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
        )
    };
    let post_form = |body: String| {
        runtime().block_on(async {
            let r = reqwest::Client::new()
                .post(format!("http://{api}/v1/auth/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        })
    };
    let (code, granted) = post_form(form(&token(&wholesaler), "client_credentials"));
    assert_eq!(code, 200, "{granted}");
    assert_eq!(granted["token_type"], "Bearer");
    let access = granted["access_token"].as_str().unwrap().to_string();
    let (code, answer) = call(
        &api,
        "POST",
        "/v1/dscsa/verify",
        Some(&access),
        Some(request("DEV2", "LOT1", "280630")),
    );
    assert_eq!(code, 200, "node-issued token accepted: {answer}");
    let (code, refused) = post_form(form(&access, "client_credentials"));
    assert_eq!(
        (code, refused["error"].as_str()),
        (401, Some("invalid_client")),
        "{refused}"
    );
    let (code, refused) = post_form(form(&token(&wholesaler), "password"));
    assert_eq!(
        (code, refused["error"].as_str()),
        (400, Some("unsupported_grant_type")),
        "{refused}"
    );
    let (code, jwks) = call(&api, "GET", "/.well-known/jwks.json", None, None);
    assert_eq!(code, 200);
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519", "{jwks}");
    // A forged token claiming the node as issuer, signed by someone else: refused.
    let forged = pharmalink_api::auth::sign_claims(
        &wholesaler,
        &pharmalink_api::auth::Claims {
            sub: wholesaler.public_key().to_hex(),
            aud: chain.clone(),
            iat: pharmalink_api::auth::now_s(),
            exp: pharmalink_api::auth::now_s() + 60,
            iss: jwks["keys"][0]["kid"].as_str().map(String::from),
            org: None,
            role: None,
        },
    )
    .unwrap();
    let (code, _) = call(&api, "GET", "/v1/dscsa/shipments/open", Some(&forged), None);
    assert_eq!(code, 401);

    // Every trace, and every regulator query (malformed ones too), is in the access audit.
    let (code, audit) = get_as(&regulator, "/v1/audit");
    assert_eq!(code, 200, "{audit}");
    let entries = audit.as_array().unwrap();
    let has = |action: &str, gln: &str, status: u64| {
        entries
            .iter()
            .any(|e| e["action"] == action && e["requester_gln"] == gln && e["status"] == status)
    };
    assert!(
        has("trace", "0300050000006", 200),
        "regulator trace: {audit}"
    );
    assert!(
        has("trace", DISPENSER.gln, 403),
        "refused pharmacy trace: {audit}"
    );
    assert!(
        has("pi_verification", "0300050000006", 400),
        "regulator's bad request: {audit}"
    );
    assert!(
        !entries
            .iter()
            .any(|e| e["action"] == "pi_verification" && e["requester_gln"] == WHOLESALER.gln),
        "partners' verifications are not audited"
    );
    let (code, _) = call(&api, "GET", "/v1/audit", None, None);
    assert_eq!(code, 401);

    // Suspect product: the wholesaler quarantines DEV2; its case is listed for it and for the
    // regulator, not for the pharmacy; a patient scanning it is told "suspect".
    let result = run(
        &wholesaler,
        Command::Quarantine {
            items: vec![sgtin("DEV2")],
            reason: "damaged seal".into(),
        },
    );
    assert_eq!(result["status"], "committed", "{result}");
    let (code, cases) = get_as(&wholesaler, "/v1/dscsa/suspect");
    assert_eq!(code, 200, "{cases}");
    assert_eq!(cases["packages"].as_array().unwrap().len(), 1, "{cases}");
    assert_eq!(cases["packages"][0]["status"], "quarantined", "{cases}");
    let (_, cases) = get_as(&regulator, "/v1/dscsa/suspect");
    assert_eq!(cases["packages"].as_array().unwrap().len(), 1, "{cases}");
    let (_, cases) = get_as(&pharmacy, "/v1/dscsa/suspect");
    assert!(cases["packages"].as_array().unwrap().is_empty(), "{cases}");
    let answer = verify_settled(&api, "(01)00300010123455(21)DEV2");
    assert_eq!(answer["status"], "suspect", "{answer}");

    // The manufacturer recalls the lot: the wholesaler's DEV2 now reads recalled.
    let result = run(
        &maker,
        Command::RecallLot {
            gtin: pharmalink_contracts::contract::fixtures::gtin(),
            lot: "LOT1".into(),
            class: pharmalink_contracts::contract::command::RecallClass::II,
            reason: "label misprint".into(),
        },
    );
    assert_eq!(result["status"], "committed", "{result}");
    let answer = verify_settled(&api, "(01)00300010123455(21)DEV2");
    assert_eq!(answer["status"], "recalled", "{answer}");
    let (_, answer) = verify_pi(&wholesaler, request("DEV2", "LOT1", "280630"));
    assert_eq!(
        answer["data"]["verificationFailureReasonCode"], "Recalled",
        "{answer}"
    );
    // Recall reach: every package of the lot and who holds it (regulator or manufacturer).
    let (code, reach) = get_as(&maker, "/v1/dscsa/recalls/00300010123455/LOT1");
    assert_eq!(code, 200, "{reach}");
    assert_eq!(reach["packages"].as_array().unwrap().len(), 2, "{reach}");
    assert_eq!(reach["holders"], json!([WHOLESALER.gln]), "{reach}");
    let (code, _) = get_as(&pharmacy, "/v1/dscsa/recalls/00300010123455/LOT1");
    assert_eq!(code, 403);
    let (code, open) = get_as(&wholesaler, "/v1/dscsa/shipments/open");
    assert_eq!(
        (code, open["shipments"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{open}"
    );
    let (code, _) = get_as(
        &wholesaler,
        &format!("/v1/dscsa/exceptions?gln={}", MANUFACTURER.gln),
    );
    assert_eq!(code, 403);
    let (code, _) = get_as(
        &regulator,
        &format!("/v1/dscsa/exceptions?gln={}", MANUFACTURER.gln),
    );
    assert_eq!(code, 200);

    // Rate limit per client address: a burst beyond the allowance gets 429 + Retry-After.
    let limited = (0..60)
        .filter(|_| verify_raw(&api, "(01)00300010123455(21)DEV2").0 == 429)
        .count();
    assert!(limited > 0, "60 verifications at once were all answered");
}

fn call(
    api: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    runtime().block_on(async {
        let client = reqwest::Client::new();
        let url = reqwest::Url::parse(&format!("http://{api}{path}")).unwrap();
        let mut request = match method {
            "POST" => client.post(url),
            _ => client.get(url),
        };
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    })
}

fn capture_doc(events: Value) -> String {
    json!({
        "@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld",
                     {"gs1ushc": "http://epcis.gs1us.org/hc/ns", "cbvmda": "urn:epcglobal:cbv:mda:"}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-11-26T10:00:00Z",
        "epcisHeader": {"gs1ushc:dscsaTransactionStatement": {"gs1ushc:affirmTransactionStatement": true}},
        "epcisBody": {"eventList": events},
    })
    .to_string()
}

fn commissioning(serials: &[&str]) -> Value {
    json!({
        "type": "ObjectEvent", "eventTime": "2026-11-26T09:00:00Z", "eventTimeZoneOffset": "+00:00",
        "epcList": serials.iter().map(|s| format!("urn:epc:id:sgtin:0300010.012345.{s}")).collect::<Vec<_>>(),
        "action": "ADD", "bizStep": "commissioning", "disposition": "active",
        "ilmd": {"cbvmda:lotNumber": "LOTC", "cbvmda:itemExpirationDate": "2028-06-30"},
    })
}

fn shipping(serials: &[&str], to_gln: &str, po: &str) -> Value {
    json!({
        "type": "ObjectEvent", "eventTime": "2026-11-26T09:30:00Z", "eventTimeZoneOffset": "+00:00",
        "epcList": serials.iter().map(|s| format!("urn:epc:id:sgtin:0300010.012345.{s}")).collect::<Vec<_>>(),
        "action": "OBSERVE", "bizStep": "shipping", "disposition": "in_transit",
        "bizTransactionList": [{"type": "po", "bizTransaction": format!("urn:epcglobal:cbv:bt:{to_gln}:{po}")}],
        "sourceList": [{"type": "owning_party", "source": "https://id.gs1.org/417/0300010000008"}],
        "destinationList": [{"type": "owning_party", "destination": format!("https://id.gs1.org/417/{to_gln}")}],
    })
}

fn receiving(serials: &[&str]) -> Value {
    json!({
        "type": "ObjectEvent", "eventTime": "2026-11-26T11:00:00Z", "eventTimeZoneOffset": "+00:00",
        "epcList": serials.iter().map(|s| format!("urn:epc:id:sgtin:0300010.012345.{s}")).collect::<Vec<_>>(),
        "action": "OBSERVE", "bizStep": "receiving", "disposition": "in_progress",
    })
}

fn post_capture(api: &str, token: &str, document: String, behaviour: Option<&str>) -> (u16, Value) {
    runtime().block_on(async {
        let mut request = reqwest::Client::new()
            .post(format!("http://{api}/epcis/capture"))
            .bearer_auth(token)
            .header("content-type", "application/ld+json")
            .body(document);
        if let Some(b) = behaviour {
            request = request.header("GS1-Capture-Error-Behaviour", b);
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    })
}

fn job_done(api: &str, token: &str, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let (code, job) = call(
            api,
            "GET",
            &format!("/epcis/capture/{id}"),
            Some(token),
            None,
        );
        assert_eq!(code, 200, "{job}");
        if job["state"] != "running" {
            return job;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still running: {job}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// EPCIS 2.0 capture and query against a dev node: the node maps, dry-runs, signs with the
/// caller's organization key and commits; rollback and proceed; a kill -9 right after the 202
/// loses nothing; queries return only what the caller may see.
#[test]
fn epcis_capture_and_query() {
    use pharmalink_contracts::contract::command::Command;
    use pharmalink_contracts::contract::fixtures::product_master;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut node = DevNode::start(dir.path(), port);
    let api = node.api.clone();
    let chain = chain_id(&api);
    let key = |name: &str| {
        pharmalink_node::keys::read_key_file(&dir.path().join(format!("{name}.key")), None).unwrap()
    };
    let (maker, wholesaler, pharmacy) = (key("manufacturer"), key("wholesaler"), key("pharmacy"));
    let token = |k: &SigningKey| {
        pharmalink_api::auth::issue(k, &chain, pharmalink_api::auth::now_s(), 600).unwrap()
    };
    let register = Transaction::sign(
        &chain,
        &maker,
        0,
        Command::RegisterProduct {
            product: product_master(),
        }
        .encode(),
    )
    .unwrap();
    assert_eq!(submit(&api, &[register])[0]["status"], "committed");

    // Commission two packages and sell them to the wholesaler in one document.
    let doc = capture_doc(json!([
        commissioning(&["CAP1", "CAP2"]),
        shipping(&["CAP1", "CAP2"], "0300020000005", "PO-77")
    ]));
    // The dev node wrote a ready-to-use token for the demo manufacturer.
    let dev_token = std::fs::read_to_string(dir.path().join("dev-token")).unwrap();
    let (code, accepted) = post_capture(&api, dev_token.trim(), doc, None);
    assert_eq!(code, 202, "{accepted}");
    let id = accepted["captureID"].as_str().unwrap().to_string();
    // Kill -9 right after the 202; the job and its transactions survive the restart.
    node.kill9();
    let _node = DevNode::start(dir.path(), port);
    let job = job_done(&api, &token(&maker), &id);
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["items"].as_array().unwrap().len(), 2, "{job}");

    // Rollback: the second event names a package never commissioned → nothing submitted.
    let doc = capture_doc(json!([
        commissioning(&["CAP3"]),
        shipping(&["CAP9"], "0300020000005", "PO-78")
    ]));
    let (code, accepted) = post_capture(&api, &token(&maker), doc.clone(), None);
    assert_eq!(code, 202, "{accepted}");
    let job = job_done(
        &api,
        &token(&maker),
        accepted["captureID"].as_str().unwrap(),
    );
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["items"][0]["status"], "not_submitted", "{job}");
    assert!(
        job["items"][1]["reason"].as_str().unwrap().contains("CAP9"),
        "{job}"
    );
    // Proceed: the valid event goes ahead.
    let (_, accepted) = post_capture(&api, &token(&maker), doc, Some("proceed"));
    let job = job_done(
        &api,
        &token(&maker),
        accepted["captureID"].as_str().unwrap(),
    );
    assert_eq!(job["state"], "partial", "{job}");
    assert_eq!(job["items"][0]["status"], "committed", "{job}");
    // A malformed document: 400 listing the problems; a bad behaviour header: 400.
    let (code, problem) = post_capture(
        &api,
        &token(&maker),
        capture_doc(json!([{"type": "ObjectEvent", "action": "ADD"}])),
        None,
    );
    assert_eq!(code, 400, "{problem}");
    assert!(
        !problem["errors"].as_array().unwrap().is_empty(),
        "{problem}"
    );
    let (code, _) = post_capture(&api, &token(&maker), capture_doc(json!([])), Some("maybe"));
    assert_eq!(code, 400);
    let (code, _) = post_capture(&api, "not-a-token", capture_doc(json!([])), None);
    assert_eq!(code, 401);

    // The GS1 US DSCSA example (EPCIS 1.2 XML, 2023) captured by the dev manufacturer, with
    // its expiry moved to 2029 (a live node rightly refuses to commission expired product):
    // master data registers the products, commissioning and packing commit; the sale to the
    // example's wholesaler (not a member of this network) is refused, naming the rule.
    let manifest =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let example = std::fs::read_to_string(format!(
        "{manifest}/../../shared/data/gs1/GS1_US_Pharma_Example_2_2_1_1.xml"
    ))
    .unwrap()
    .replace("2025-03-27", "2029-03-27");
    let (code, accepted) = runtime().block_on(async {
        let r = reqwest::Client::new()
            .post(format!("http://{api}/epcis/capture"))
            .bearer_auth(token(&maker))
            .header("content-type", "application/xml")
            .header("GS1-Capture-Error-Behaviour", "proceed")
            .body(example)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    });
    assert_eq!(code, 202, "{accepted}");
    let job = job_done(
        &api,
        &token(&maker),
        accepted["captureID"].as_str().unwrap(),
    );
    assert_eq!(job["state"], "partial", "{job}");
    let statuses: Vec<&str> = job["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "committed").count(),
        statuses.len() - 1,
        "{job}"
    );
    let refused = job["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["status"] != "committed")
        .unwrap();
    assert_eq!(refused["event_index"], 7, "the shipping event: {job}");
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .contains("iam.org_unknown"),
        "{job}"
    );

    // The wholesaler receives by EPCIS too.
    let (code, accepted) = post_capture(
        &api,
        &token(&wholesaler),
        capture_doc(json!([receiving(&["CAP1", "CAP2"])])),
        None,
    );
    assert_eq!(code, 202, "{accepted}");
    let job = job_done(
        &api,
        &token(&wholesaler),
        accepted["captureID"].as_str().unwrap(),
    );
    assert_eq!(job["state"], "succeeded", "{job}");

    // Queries.
    let epc = "urn:epc:id:sgtin:0300010.012345.CAP1";
    let list = |token: &str, query: &str| {
        let (code, doc) = call(
            &api,
            "GET",
            &format!("/epcis/events?{query}"),
            Some(token),
            None,
        );
        assert_eq!(code, 200, "{doc}");
        assert_eq!(doc["type"], "EPCISQueryDocument");
        doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
            .as_array()
            .unwrap()
            .clone()
    };
    let all = list(&token(&maker), &format!("MATCH_epc={epc}"));
    assert_eq!(
        all.len(),
        2,
        "the maker sees commissioning and shipping: {all:?}"
    );
    let shipped = list(
        &token(&wholesaler),
        &format!("MATCH_epc={epc}&EQ_bizStep=shipping"),
    );
    assert_eq!(shipped.len(), 1, "{shipped:?}");
    let received = list(&token(&wholesaler), "EQ_bizStep=receiving&perPage=10");
    assert_eq!(received.len(), 1, "{received:?}");
    assert!(
        list(&token(&pharmacy), &format!("MATCH_epc={epc}")).is_empty(),
        "not a party"
    );
    let (code, events) = call(
        &api,
        "GET",
        &format!("/epcis/epcs/{epc}/events"),
        Some(&token(&wholesaler)),
        None,
    );
    assert_eq!(code, 200, "{events}");
    let (code, problem) = call(
        &api,
        "GET",
        "/epcis/events?EQ_colour=red",
        Some(&token(&maker)),
        None,
    );
    assert_eq!(
        (code, problem["field"].as_str()),
        (400, Some("EQ_colour")),
        "{problem}"
    );
    let (code, _) = call(
        &api,
        "GET",
        "/epcis/events?GE_eventTime=yesterday",
        Some(&token(&maker)),
        None,
    );
    assert_eq!(code, 400);
    // Paging: one event per page, following nextPageToken.
    let mut token_param = String::new();
    let mut pages = 0;
    loop {
        let (_, doc) = call(
            &api,
            "GET",
            &format!("/epcis/events?perPage=1{token_param}"),
            Some(&token(&maker)),
            None,
        );
        pages += 1;
        match doc["nextPageToken"].as_str() {
            Some(next) => token_param = format!("&nextPageToken={next}"),
            None => break,
        }
        assert!(pages < 50);
    }
    assert_eq!(
        pages, 10,
        "the maker's events, one per page: CAP commissioning, shipping, CAP3 commissioning, and the 7 committed events of the GS1 US example"
    );
}

/// The gRPC API on the same port: submit, blocks, transactions, proofs, and the committed-event
/// feed (authenticated, resumable from a cursor, following new blocks).
#[test]
fn grpc_submit_read_prove_and_follow_the_feed() {
    use pharmalink_api::grpc::pb;
    use pharmalink_contracts::contract::command::Command;
    use pharmalink_contracts::contract::fixtures::{commission, product_master};
    use pharmalink_ledger::{BlockHeader, CommitCertificate};
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(dir.path(), free_port());
    let api = node.api.clone();
    let chain = chain_id(&api);
    let key = |name: &str| {
        pharmalink_node::keys::read_key_file(&dir.path().join(format!("{name}.key")), None).unwrap()
    };
    let (maker, regulator) = (key("manufacturer"), key("regulator"));
    let genesis = pharmalink_node::genesis::GenesisFile::read(&dir.path().join("genesis.json"))
        .unwrap()
        .to_ledger()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut client = pb::ledger_client::LedgerClient::connect(format!("http://{api}"))
            .await
            .unwrap();
        let txs: Vec<Vec<u8>> = [
            Command::RegisterProduct {
                product: product_master(),
            },
            commission(&["G1", "G2"]),
        ]
        .into_iter()
        .enumerate()
        .map(|(n, c)| {
            Transaction::sign(&chain, &maker, n as u64, c.encode())
                .unwrap()
                .to_canonical_bytes()
                .unwrap()
        })
        .collect();
        let answer = client
            .submit_transaction(pb::SubmitTransactionRequest {
                transactions: txs.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.outcomes.len(), 2);
        assert!(
            answer.outcomes.iter().all(|o| o.status == "committed"),
            "{answer:?}"
        );
        // Malformed bytes: INVALID_ARGUMENT naming the item.
        let err = client
            .submit_transaction(pb::SubmitTransactionRequest {
                transactions: vec![vec![1, 2, 3]],
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("transactions[0]"), "{err}");

        // The block holding the commission, checked against the genesis validators.
        let height = answer.outcomes[1].height;
        let block = client
            .get_block(pb::GetBlockRequest { height })
            .await
            .unwrap()
            .into_inner();
        let header = BlockHeader::from_canonical_bytes(&block.header).unwrap();
        let certificate = CommitCertificate::from_canonical_bytes(&block.certificate).unwrap();
        certificate.verify(&chain, &genesis.validators).unwrap();
        assert_eq!(certificate.block_hash, header.hash());
        let tx = client
            .get_transaction(pb::GetTransactionRequest {
                tx_hash: answer.outcomes[1].tx_hash.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(tx.transaction, txs[1]);
        let missing = client
            .get_block(pb::GetBlockRequest { height: 1_000_000 })
            .await
            .unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound);

        // A package proof, verified offline.
        let proof = loop {
            let proof = client
                .get_proof(pb::GetProofRequest {
                    code: "(01)00300010123455(21)G1".into(),
                })
                .await
                .unwrap()
                .into_inner();
            if proof.pending_events == 0 {
                break proof;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        assert_eq!(proof.status, "genuine_in_supply_chain");
        let decoded = pharmalink_contracts::proof::PackageProof::from_bytes(&proof.proof).unwrap();
        pharmalink_contracts::proof::verify(&genesis, &decoded).unwrap();

        // The feed: refused without a token; with the regulator's, from the start.
        let refused = client
            .stream_committed(pb::StreamCommittedRequest {
                cursor: String::new(),
            })
            .await;
        assert_eq!(refused.unwrap_err().code(), tonic::Code::Unauthenticated);
        let bearer = format!(
            "Bearer {}",
            pharmalink_api::auth::issue(&regulator, &chain, pharmalink_api::auth::now_s(), 600)
                .unwrap()
        );
        let feed = |cursor: String| {
            let mut request = tonic::Request::new(pb::StreamCommittedRequest { cursor });
            request
                .metadata_mut()
                .insert("authorization", bearer.parse().unwrap());
            request
        };
        let mut stream = client
            .stream_committed(feed(String::new()))
            .await
            .unwrap()
            .into_inner();
        let mut seen = Vec::new();
        while !seen
            .iter()
            .any(|e: &pb::CommittedEvent| e.kind == "PackagesCommissioned")
        {
            let event = stream.message().await.unwrap().unwrap();
            seen.push(event);
            assert!(seen.len() < 50, "no commissioning in the feed");
        }
        // Genesis IAM events (heights 0), then ProductRegistered and PackagesCommissioned.
        assert_eq!(seen[0].kind, "OrganizationAdmitted");
        assert!(
            seen.windows(2).all(|w| w[0].cursor < w[1].cursor),
            "in log order"
        );
        let kinds: Vec<&str> = seen.iter().map(|e| e.kind.as_str()).collect();
        assert!(kinds.contains(&"ProductRegistered"), "{kinds:?}");
        assert!(kinds.contains(&"PackagesCommissioned"), "{kinds:?}");
        let commissioned = seen
            .iter()
            .find(|e| e.kind == "PackagesCommissioned")
            .unwrap();
        assert!(
            commissioned.epcis_json.contains("commissioning"),
            "{}",
            commissioned.epcis_json
        );
        // Live: a new event arrives on the open stream.
        let dispense_free = Transaction::sign(&chain, &maker, 2, commission(&["G3"]).encode())
            .unwrap()
            .to_canonical_bytes()
            .unwrap();
        client
            .submit_transaction(pb::SubmitTransactionRequest {
                transactions: vec![dispense_free],
            })
            .await
            .unwrap();
        let live = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let event = stream.message().await.unwrap().unwrap();
                if event.kind == "PackagesCommissioned" && event.height > commissioned.height {
                    break event;
                }
            }
        })
        .await
        .unwrap();
        // Resume after the first commissioning: the next event delivered is the live one or
        // something between, never one before the cursor.
        let mut resumed = client
            .stream_committed(feed(commissioned.cursor.clone()))
            .await
            .unwrap()
            .into_inner();
        let next = resumed.message().await.unwrap().unwrap();
        assert!(
            next.cursor > commissioned.cursor,
            "{} after {}",
            next.cursor,
            commissioned.cursor
        );
        assert!(next.cursor <= live.cursor);
    });
}
