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
        Self::start_with(data_dir, port, |_| {})
    }

    /// [`DevNode::start`], with `configure` applied to the command first (e.g. its environment).
    pub fn start_with(data_dir: &Path, port: u16, configure: impl FnOnce(&mut Command)) -> DevNode {
        let api = format!("127.0.0.1:{port}");
        let node = bin("pharmalink-node");
        assert!(
            node.exists(),
            "{} is not built (cargo test --workspace builds it)",
            node.display()
        );
        let mut command = Command::new(node);
        command
            .args(["dev", "--data-dir"])
            .arg(data_dir)
            .args(["--api", &api])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        configure(&mut command);
        let child = command.spawn().unwrap();
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

/// Any HTTP call with an optional bearer token, JSON body and extra headers; `(0, Null)` when
/// the node does not answer.
pub fn call(
    api: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    runtime().block_on(async {
        let client = reqwest::Client::new();
        let url = format!("http://{api}{path}");
        let mut request = match method {
            "POST" => client.post(url),
            "PUT" => client.put(url),
            "DELETE" => client.delete(url),
            _ => client.get(url),
        };
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        match request.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    })
}

/// Signs and submits commands as the dev organizations (the node signs API actions with the
/// same keys, so the next nonce is asked each time); panics unless each commits.
pub struct Signer {
    pub api: String,
    pub chain: String,
}

impl Signer {
    pub fn new(api: &str) -> Signer {
        Signer {
            api: api.to_string(),
            chain: chain_id(api),
        }
    }

    pub fn run(
        &mut self,
        key: &pharmalink_ledger::SigningKey,
        command: pharmalink_contracts::contract::command::Command,
    ) {
        let path = format!("/v1/signers/{}/nonce", key.public_key().to_hex());
        let (_, body) = get(&self.api, &path).unwrap();
        let nonce = body["next_nonce"].as_u64().unwrap();
        let tx = Transaction::sign(&self.chain, key, nonce, command.encode()).unwrap();
        let outcome = submit(&self.api, &[tx]).remove(0);
        assert_eq!(outcome["status"], "committed", "{outcome}");
    }
}

/// A dev organization's key (written by `pharmalink-node dev` into its data dir).
pub fn dev_key(data_dir: &Path, name: &str) -> pharmalink_ledger::SigningKey {
    pharmalink_node::keys::read_key_file(&data_dir.join(format!("{name}.key")), None).unwrap()
}

/// A bearer token for a key (15 minutes).
pub fn token_for(api: &str, key: &pharmalink_ledger::SigningKey) -> String {
    pharmalink_api::auth::issue(key, &chain_id(api), pharmalink_api::auth::now_s(), 900).unwrap()
}

/// `URN` of the fixture product's serial.
pub fn sgtin_urn(serial: &str) -> String {
    format!("urn:epc:id:sgtin:0300010.012345.{serial}")
}

/// The fixture product registered, lots commissioned (`(lot, expiry, serials)`), all sold to
/// and received by the dev pharmacy.
pub fn stock_pharmacy(
    signer: &mut Signer,
    data_dir: &Path,
    lots: &[(&str, pharmalink_contracts::contract::Date, &[&str])],
) {
    use pharmalink_contracts::contract::command::Command;
    use pharmalink_contracts::contract::fixtures::{product_master, receive_all, sale, DISPENSER};
    use pharmalink_contracts::contract::{Epc, Gtin};
    let maker = dev_key(data_dir, "manufacturer");
    let pharmacy = dev_key(data_dir, "pharmacy");
    let gtin = Gtin::parse("00300010123455").unwrap();
    signer.run(
        &maker,
        Command::RegisterProduct {
            product: product_master(),
        },
    );
    let mut all = Vec::new();
    for (lot, expiry, serials) in lots {
        signer.run(
            &maker,
            Command::Commission {
                gtin,
                serials: serials.iter().map(|s| s.to_string()).collect(),
                lot: lot.to_string(),
                expiry: *expiry,
            },
        );
        all.extend(serials.iter().map(|s| Epc::new(sgtin_urn(s))));
    }
    signer.run(&maker, sale(DISPENSER.gln(), all.clone(), "PO-9"));
    signer.run(&pharmacy, receive_all(0, &all));
}
