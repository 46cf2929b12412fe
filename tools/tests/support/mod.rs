//! What the integration tests that drive a real `pharmalink-node dev` process share: the
//! binaries, a free loopback port, the node process, and HTTP helpers.
#![allow(dead_code)]

use pharmalink_api::http::{encode_batch, TxsBodyFormat};
use pharmalink_ledger::Transaction;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn bin(name: &str) -> PathBuf {
    // Integration tests live in target/<profile>/deps; the workspace's binaries one level up.
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join(name)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct DevNode {
    pub child: Child,
    pub api: String,
}

impl DevNode {
    pub fn start(data_dir: &Path, port: u16) -> DevNode {
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

    pub fn kill9(&mut self) {
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

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn get(api: &str, path: &str) -> Result<(u16, Value), String> {
    runtime().block_on(async {
        let r = reqwest::get(format!("http://{api}{path}"))
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.map_err(|e| e.to_string())?))
    })
}

pub fn post(api: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
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

pub fn chain_id(api: &str) -> String {
    get(api, "/v1/status").unwrap().1["chain_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub fn submit(api: &str, txs: &[Transaction]) -> Vec<Value> {
    let (status, body) = post(api, TxsBodyFormat::BATCH, encode_batch(txs));
    assert_eq!(status, 200, "{body}");
    body["results"].as_array().unwrap().clone()
}

pub fn verify_raw(api: &str, code: &str) -> (u16, Value) {
    let url =
        reqwest::Url::parse_with_params(&format!("http://{api}/verify"), [("code", code)]).unwrap();
    runtime().block_on(async {
        let r = reqwest::get(url).await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    })
}

/// `/verify` once every fact about the package is provable (the block after its last event
/// is certified; an idle dev chain adds one within about a second).
pub fn verify_settled(api: &str, code: &str) -> Value {
    let started = Instant::now();
    loop {
        let (status, answer) = verify_raw(api, code);
        assert_eq!(status, 200, "{answer}");
        if answer["pending_events"] == 0 {
            return answer;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still pending: {answer}"
        );
        std::thread::sleep(Duration::from_millis(400));
    }
}

/// Runs `command`; panics with `what`, its stdout and stderr unless it succeeds; returns stdout.
pub fn stdout_of_success(command: &mut Command, what: &str) -> String {
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{what} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
