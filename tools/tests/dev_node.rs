//! `pharmalink-node dev` as a user runs it: a real process, a real RocksDB store, HTTP on
//! 127.0.0.1, the load generator, bad input, and kill -9 with no acknowledged transaction lost.

use pharmalink_api::http::{encode_batch, TxsBodyFormat};
use pharmalink_ledger::{Canonical, SigningKey, Transaction};
use pharmalink_node::genesis::load_test_key;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn bin(name: &str) -> PathBuf {
    // Integration tests live in target/<profile>/deps; the workspace's binaries one level up.
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join(name)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct DevNode {
    child: Child,
    api: String,
}

impl DevNode {
    fn start(data_dir: &Path, port: u16) -> DevNode {
        let api = format!("127.0.0.1:{port}");
        let node = bin("pharmalink-node");
        assert!(
            node.exists(),
            "{} is not built (cargo test --workspace builds it)",
            node.display()
        );
        let child = Command::new(node)
            .args(["dev", "--data-dir"])
            .arg(data_dir)
            .args(["--api", &api])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let started = Instant::now();
        loop {
            if get(&api, "/v1/status").is_ok() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "node did not come up on {api}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        DevNode { child, api }
    }

    fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for DevNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn get(api: &str, path: &str) -> Result<(u16, Value), String> {
    runtime().block_on(async {
        let r = reqwest::get(format!("http://{api}{path}"))
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.map_err(|e| e.to_string())?))
    })
}

fn post(api: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    runtime().block_on(async {
        let r = reqwest::Client::new()
            .post(format!("http://{api}/v1/txs"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    })
}

fn chain_id(api: &str) -> String {
    get(api, "/v1/status").unwrap().1["chain_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn submit(api: &str, txs: &[Transaction]) -> Vec<Value> {
    let (status, body) = post(api, TxsBodyFormat::BATCH, encode_batch(txs));
    assert_eq!(status, 200, "{body}");
    body["results"].as_array().unwrap().clone()
}

#[test]
fn dev_node_commits_load_and_rejects_bad_input_precisely() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(dir.path(), free_port());
    let api = node.api.clone();

    let out = Command::new(bin("pharmalink"))
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

    // A valid transaction, then its replay, then a forged signature, then an outsider.
    let signer = load_test_key(40);
    let (_, nonce) = get(&api, &format!("/v1/signers/{}/nonce", signer.public_key())).unwrap();
    let nonce = nonce["next_nonce"].as_u64().unwrap();
    let good = Transaction::sign(&chain, &signer, nonce, b"commission".to_vec()).unwrap();
    let results = submit(&api, std::slice::from_ref(&good));
    assert_eq!(results[0]["status"], "committed", "{results:?}");
    let (code, found) = get(&api, &format!("/v1/txs/{}", good.hash())).unwrap();
    assert_eq!((code, found["status"].as_str()), (200, Some("committed")));

    let replay = Transaction::sign(&chain, &signer, nonce, b"commission again".to_vec()).unwrap();
    let results = submit(&api, &[replay]);
    assert_eq!(results[0]["code"], "nonce_used", "{results:?}");

    let mut forged = Transaction::sign(&chain, &signer, nonce + 1, b"x".to_vec()).unwrap();
    forged.payload = b"y".to_vec();
    let results = submit(&api, &[forged]);
    assert_eq!(results[0]["code"], "bad_signature", "{results:?}");

    let outsider =
        Transaction::sign(&chain, &SigningKey::from_seed([7; 32]), 0, b"x".to_vec()).unwrap();
    let results = submit(&api, &[outsider]);
    assert_eq!(results[0]["code"], "signer_not_admitted", "{results:?}");

    let (code, body) = post(&api, TxsBodyFormat::ONE, vec![1, 2, 3]);
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["field"], "body");
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
}

#[test]
fn kill_9_loses_no_acknowledged_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut node = DevNode::start(dir.path(), port);
    let chain = chain_id(&node.api);
    let mut acknowledged: Vec<Transaction> = Vec::new();
    let signers: Vec<SigningKey> = (100..108).map(load_test_key).collect();
    let mut nonces = vec![0u64; signers.len()];
    for round in 0..3u64 {
        // Keep submitting from a thread; kill the node while requests are in flight.
        let api = node.api.clone();
        let chain = chain.clone();
        let signers_for_worker = signers.clone();
        let mut worker_nonces = nonces.clone();
        let acked_batches = Arc::new(AtomicUsize::new(0));
        let worker_acked_batches = acked_batches.clone();
        let worker = std::thread::spawn(move || {
            let mut acked = Vec::new();
            loop {
                let txs: Vec<Transaction> = signers_for_worker
                    .iter()
                    .zip(&worker_nonces)
                    .map(|(s, n)| {
                        Transaction::sign(&chain, s, *n, format!("event {n}").into_bytes()).unwrap()
                    })
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
