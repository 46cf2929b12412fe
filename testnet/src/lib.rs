//! Local test networks of real `pharmalink-node` processes on 127.0.0.x loopback addresses,
//! declared in a TOML manifest (in the spirit of CometBFT's e2e testnets): nodes with roles,
//! validators and observers, and perturbations (kill -9, stop, restart, disconnect, heal).
//!
//! Partitions use the nodes' fault-injection endpoint (`POST /v1/admin/partition`, enabled only
//! in test configs): each side drops the other's traffic in its transport. Network namespaces
//! would cut the link below the process, but need privileges CI may not have.

pub mod bench;

use anyhow::{anyhow, bail, Context, Result};
use pharmalink_ledger::PublicKey;
use pharmalink_node::genesis::{
    GenesisFile, GenesisLicence, GenesisOrganization, GenesisValidator,
};
use pharmalink_node::keys;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub chain_id: String,
    pub api_port: u16,
    pub p2p_port: u16,
    #[serde(default = "default_load_test_signers")]
    pub load_test_signers: u32,
    /// Base propose timeout (ms) for the nodes; small values speed up tests.
    #[serde(default)]
    pub timeout_propose_ms: Option<u64>,
    /// The nodes' `block_gather_ms` (their default when absent).
    #[serde(default)]
    pub block_gather_ms: Option<u64>,
    /// The nodes' `empty_block_interval_ms`: how often an idle network makes a block (their
    /// default when absent).
    #[serde(default)]
    pub empty_block_interval_ms: Option<u64>,
    /// The nodes' application (`contracts` when absent; `nonce` measures the node layer alone).
    #[serde(default)]
    pub application: Option<pharmalink_node::config::ApplicationKind>,
    #[serde(rename = "node")]
    pub nodes: Vec<NodeSpec>,
    #[serde(rename = "perturbation", default)]
    pub perturbations: Vec<Perturbation>,
}

fn default_load_test_signers() -> u32 {
    64
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub name: String,
    /// manufacturer | repackager | wholesaler | dispenser | logistics | regulator
    pub role: String,
    pub ip: Ipv4Addr,
    pub validator: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Perturbation {
    pub at_s: u64,
    pub node: String,
    pub action: Action,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// SIGKILL.
    Kill,
    /// SIGTERM (graceful).
    Stop,
    /// Start again (after kill or stop).
    Restart,
    /// Cut the node off from every other node.
    Disconnect,
    /// Undo every disconnect.
    Heal,
}

impl Manifest {
    pub fn read(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading manifest {}", path.display()))?;
        let manifest: Manifest =
            toml::from_str(&text).with_context(|| format!("manifest {}", path.display()))?;
        manifest.check()?;
        Ok(manifest)
    }

    pub fn check(&self) -> Result<()> {
        if !self.nodes.iter().any(|n| n.validator) {
            bail!("the manifest has no validator");
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if !node.ip.is_loopback() {
                bail!("node[{i}] {}: ip {} is not a loopback address (test networks stay on 127.0.0.0/8)", node.name, node.ip);
            }
            if self.nodes[..i]
                .iter()
                .any(|n| n.name == node.name || n.ip == node.ip)
            {
                bail!("node[{i}] {}: name and ip must be unique", node.name);
            }
        }
        for (i, p) in self.perturbations.iter().enumerate() {
            if !self.nodes.iter().any(|n| n.name == p.node) {
                bail!("perturbation[{i}]: no node named {:?}", p.node);
            }
        }
        Ok(())
    }
}

/// A licence that makes a testnet organization an authorized trading partner (none for a
/// regulator).
fn licence_for_role(role: &str, index: usize) -> Vec<GenesisLicence> {
    let kind = match role {
        "regulator" => return Vec::new(),
        "manufacturer" | "repackager" => "fda_registration",
        _ => "state_licence",
    };
    vec![GenesisLicence {
        kind: kind.into(),
        state: (kind == "state_licence").then(|| "NJ".into()),
        number: format!("TESTNET-{index:04}"),
        expires: "2036-12-31".into(),
        revoked: false,
    }]
}

/// A GLN for the `index`th organization: GS1 US prefix 030001, then the index, then the check digit.
pub fn gln_for(index: usize) -> String {
    let body = format!("030001{:06}", index + 1);
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

pub struct TestnetNode {
    pub spec: NodeSpec,
    pub public_key: PublicKey,
    pub api: SocketAddr,
    pub p2p: SocketAddr,
    pub dir: PathBuf,
    child: Option<Child>,
}

impl TestnetNode {
    /// The process id of the node this `Testnet` started, if any.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => child
                .try_wait()
                .map(|status| status.is_none())
                .unwrap_or(false),
            None => false,
        }
    }
}

pub struct Testnet {
    pub manifest: Manifest,
    pub dir: PathBuf,
    node_binary: PathBuf,
    pub nodes: Vec<TestnetNode>,
    http: reqwest::blocking::Client,
}

impl Testnet {
    /// Generates keys, genesis and configs under `dir` (reusing any that exist).
    pub fn create(manifest: Manifest, dir: &Path, node_binary: &Path) -> Result<Testnet> {
        manifest.check()?;
        std::fs::create_dir_all(dir)?;
        let mut nodes = Vec::new();
        for spec in &manifest.nodes {
            let node_dir = dir.join(&spec.name);
            std::fs::create_dir_all(&node_dir)?;
            let key_file = node_dir.join("node.key");
            if !key_file.exists() {
                keys::write_key_file(&key_file, &keys::generate(), None)?;
            }
            let public_key = keys::read_key_file(&key_file, None)?.public_key();
            nodes.push(TestnetNode {
                spec: spec.clone(),
                public_key,
                api: SocketAddr::new(spec.ip.into(), manifest.api_port),
                p2p: SocketAddr::new(spec.ip.into(), manifest.p2p_port),
                dir: node_dir,
                child: None,
            });
        }
        let genesis_file = dir.join("genesis.json");
        if !genesis_file.exists() {
            let genesis = GenesisFile {
                chain_id: manifest.chain_id.clone(),
                genesis_time_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)?
                    .as_millis() as u64,
                validators: nodes
                    .iter()
                    .filter(|n| n.spec.validator)
                    .map(|n| GenesisValidator {
                        name: n.spec.name.clone(),
                        public_key: n.public_key.to_hex(),
                        voting_power: 1,
                    })
                    .collect(),
                organizations: nodes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| GenesisOrganization {
                        name: n.spec.name.clone(),
                        gln: gln_for(i),
                        role: n.spec.role.clone(),
                        keys: vec![n.public_key.to_hex()],
                        address: format!("{} Testnet Way, Trenton, NJ 08608", i + 1),
                        licences: licence_for_role(&n.spec.role, i),
                        validator_key: n.spec.validator.then(|| n.public_key.to_hex()),
                    })
                    .collect(),
                load_test_signers: manifest.load_test_signers,
            };
            genesis.to_ledger()?;
            genesis.write(&genesis_file)?;
        }
        let observers: Vec<String> = nodes
            .iter()
            .filter(|n| !n.spec.validator)
            .map(|n| format!("{:?}", n.public_key.to_hex()))
            .collect();
        for node in &nodes {
            let peers: String = nodes
                .iter()
                .filter(|p| {
                    p.spec.name != node.spec.name && (p.spec.validator || !node.spec.validator)
                })
                .map(|p| {
                    format!(
                        "[[peers]]\npublic_key = {:?}\naddress = \"{}\"\n\n",
                        p.public_key.to_hex(),
                        p.p2p
                    )
                })
                .collect();
            let tunables = [
                ("timeout_propose_ms", manifest.timeout_propose_ms),
                ("block_gather_ms", manifest.block_gather_ms),
                ("empty_block_interval_ms", manifest.empty_block_interval_ms),
            ]
            .iter()
            .filter_map(|(name, ms)| ms.map(|ms| format!("{name} = {ms}\n")))
            .chain(
                manifest
                    .application
                    .map(|app| format!("application = \"{}\"\n", app.as_str())),
            )
            .collect::<String>();
            let config = format!(
                "# Generated by pharmalink-testnet for node {name}.\ndata_dir = \"data\"\nkey_file = \"node.key\"\n# The organization's member key is the node key: the node signs API actions with it.\norg_keys = [\"node.key\"]\ngenesis_file = \"../genesis.json\"\napi = \"{api}\"\nlisten = \"{p2p}\"\nobservers = [{observers}]\nfault_injection = true\n{tunables}\n{peers}",
                name = node.spec.name,
                api = node.api,
                p2p = node.p2p,
                observers = observers.join(", "),
            );
            std::fs::write(node.dir.join("config.toml"), config)?;
        }
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Testnet {
            manifest,
            dir: dir.to_owned(),
            node_binary: node_binary.to_owned(),
            nodes,
            http,
        })
    }

    fn index(&self, name: &str) -> Result<usize> {
        self.nodes
            .iter()
            .position(|n| n.spec.name == name)
            .ok_or_else(|| anyhow!("no node named {name:?}"))
    }

    pub fn node(&self, name: &str) -> Result<&TestnetNode> {
        Ok(&self.nodes[self.index(name)?])
    }

    pub fn start(&mut self, name: &str) -> Result<()> {
        let i = self.index(name)?;
        if self.nodes[i].is_running() {
            return Ok(());
        }
        let node = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.dir.join("node.log"))?;
        let child = Command::new(&self.node_binary)
            .args(["run", "--config"])
            .arg(node.dir.join("config.toml"))
            .env(
                "RUST_LOG",
                std::env::var("PHARMALINK_TESTNET_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", self.node_binary.display()))?;
        std::fs::write(node.dir.join("node.pid"), child.id().to_string())?;
        node.child = Some(child);
        Ok(())
    }

    /// Lets a started node outlive this `Testnet` (for the CLI's one-shot commands).
    pub fn detach(&mut self, name: &str) {
        if let Ok(i) = self.index(name) {
            self.nodes[i].child = None;
        }
    }

    pub fn start_all(&mut self) -> Result<()> {
        let names: Vec<String> = self.nodes.iter().map(|n| n.spec.name.clone()).collect();
        for name in names {
            self.start(&name)?;
        }
        Ok(())
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self, name: &str) -> Result<()> {
        let i = self.index(name)?;
        if let Some(mut child) = self.nodes[i].child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM, then wait for the process to finish its graceful shutdown.
    pub fn stop(&mut self, name: &str) -> Result<()> {
        let i = self.index(name)?;
        if let Some(mut child) = self.nodes[i].child.take() {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()?;
            let started = Instant::now();
            while child.try_wait()?.is_none() {
                if started.elapsed() > Duration::from_secs(20) {
                    child.kill()?;
                    bail!("{name} did not stop within 20 s of SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    pub fn stop_all(&mut self) -> Result<()> {
        let names: Vec<String> = self.nodes.iter().map(|n| n.spec.name.clone()).collect();
        for name in names {
            self.stop(&name)?;
        }
        Ok(())
    }

    fn partition_request(&self, node: &TestnetNode, blocked: &[PublicKey]) -> Result<()> {
        let body =
            serde_json::json!({"blocked": blocked.iter().map(|k| k.to_hex()).collect::<Vec<_>>()});
        let response = self
            .http
            .post(format!("http://{}/v1/admin/partition", node.api))
            .json(&body)
            .send()?;
        if !response.status().is_success() {
            bail!(
                "{}: partition refused: {}",
                node.spec.name,
                response.text().unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Cuts `name` off from every other node (both directions).
    pub fn disconnect(&self, name: &str) -> Result<()> {
        let target = self.node(name)?;
        let others: Vec<PublicKey> = self
            .nodes
            .iter()
            .filter(|n| n.spec.name != name)
            .map(|n| n.public_key)
            .collect();
        self.partition_request(target, &others)?;
        for node in self.nodes.iter().filter(|n| n.spec.name != name) {
            // A node that is down cannot be told; it reconnects to nobody blocked anyway.
            let _ = self.partition_request(node, &[target.public_key]);
        }
        Ok(())
    }

    pub fn heal(&self) -> Result<()> {
        for node in &self.nodes {
            let _ = self.partition_request(node, &[]);
        }
        Ok(())
    }

    pub fn apply(&mut self, perturbation: &Perturbation) -> Result<()> {
        match perturbation.action {
            Action::Kill => self.kill(&perturbation.node),
            Action::Stop => self.stop(&perturbation.node),
            Action::Restart => self.start(&perturbation.node),
            Action::Disconnect => self.disconnect(&perturbation.node),
            Action::Heal => self.heal(),
        }
    }

    pub fn status(&self, name: &str) -> Result<Value> {
        let node = self.node(name)?;
        Ok(self
            .http
            .get(format!("http://{}/v1/status", node.api))
            .send()?
            .error_for_status()?
            .json()?)
    }

    pub fn height(&self, name: &str) -> Option<u64> {
        self.status(name).ok()?.get("height")?.as_u64()
    }

    /// Waits until every started node answers its status, or fails after `timeout` (or when a
    /// started node exits). Nodes killed or stopped on purpose are not waited for.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        let names: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.spec.name.clone())
            .collect();
        for name in names {
            while self.status(&name).is_err() {
                let i = self.index(&name)?;
                if !self.nodes[i].is_running() {
                    bail!(
                        "{name} exited; see {}",
                        self.nodes[i].dir.join("node.log").display()
                    );
                }
                if started.elapsed() > timeout {
                    bail!("{name} did not answer within {timeout:?}");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    /// Waits until `name` reaches `height`.
    pub fn wait_height(&self, name: &str, height: u64, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            if self.height(name).is_some_and(|h| h >= height) {
                return Ok(());
            }
            if started.elapsed() > timeout {
                bail!(
                    "{name} is at height {:?}, not {height}, after {timeout:?}",
                    self.height(name)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The hash of the block at `height` as each running node has it.
    pub fn block_hashes_at(&self, height: u64) -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for node in &self.nodes {
            let url = format!("http://{}/v1/blocks/{height}", node.api);
            if let Ok(response) = self.http.get(url).send() {
                if response.status().is_success() {
                    let value: Value = response.json()?;
                    if let Some(hash) = value["hash"].as_str() {
                        out.insert(node.spec.name.clone(), hash.to_owned());
                    }
                }
            }
        }
        Ok(out)
    }

    pub fn api_addresses(&self, validators_only: bool) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.spec.validator || !validators_only)
            .map(|n| n.api.to_string())
            .collect()
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
