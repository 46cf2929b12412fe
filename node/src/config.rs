//! The node's TOML configuration.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Which deterministic application a node runs ([`NodeConfig::application`]).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ApplicationKind {
    /// IAM and the DSCSA custody lifecycle (`pharmalink_contracts`): the product.
    #[default]
    Contracts,
    /// Signer, nonce and outcome only ([`crate::app::NonceApp`]): a benchmark of the node layer.
    Nonce,
}

impl ApplicationKind {
    pub const ALL: [ApplicationKind; 2] = [ApplicationKind::Contracts, ApplicationKind::Nonce];

    /// The name in a config file or on a command line (as serde reads it).
    pub fn as_str(self) -> &'static str {
        match self {
            ApplicationKind::Contracts => "contracts",
            ApplicationKind::Nonce => "nonce",
        }
    }
}

impl std::str::FromStr for ApplicationKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|kind| kind.as_str()).collect();
                format!("application {text:?}: expected one of {}", names.join(", "))
            })
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Where the ledger store and node state live.
    pub data_dir: PathBuf,
    /// The node's ed25519 key file (see `pharmalink keygen`).
    pub key_file: PathBuf,
    /// The network's genesis file (see `pharmalink genesis`).
    pub genesis_file: PathBuf,
    /// HTTP API address.
    pub api: SocketAddr,
    /// Peer-to-peer listen address, e.g. 127.0.0.2:26656 (needed with more than one validator).
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Validators and observers to connect to.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// Public keys of observer nodes allowed to connect besides the validators.
    #[serde(default)]
    pub observers: Vec<String>,
    /// Transactions per proposed block.
    #[serde(default)]
    pub block_txs_max: Option<usize>,
    /// Base of the propose timeout in milliseconds.
    #[serde(default)]
    pub timeout_propose_ms: Option<u64>,
    /// Under sustained load, a proposer waits until this many milliseconds have passed since
    /// the previous block before proposing a block that is not full (see
    /// `RuntimeOptions::block_gather_ms`).
    #[serde(default)]
    pub block_gather_ms: Option<u64>,
    /// An idle network makes a block this often, in milliseconds, so that it shows it is alive
    /// (default 60,000; 0: none). Blocks otherwise come only with transactions, plus one after
    /// each block with transactions that certifies the state they produced.
    #[serde(default)]
    pub empty_block_interval_ms: Option<u64>,
    /// The application the node executes blocks with: `contracts` (the default: IAM and the
    /// DSCSA custody lifecycle) or `nonce` (the node layer alone, for measuring it apart from
    /// the contracts: see `app::NonceApp`). Every validator of a network must run the same one.
    #[serde(default)]
    pub application: ApplicationKind,
    /// Test networks only: accept POST /v1/admin/partition.
    #[serde(default)]
    pub fault_injection: bool,
    /// Member key files of the organization(s) this node signs for (EPCIS capture: the node
    /// maps a captured document to commands and signs them with the caller's organization key).
    #[serde(default, rename = "org_keys")]
    pub org_key_files: Vec<PathBuf>,
    /// External OpenID Connect issuers trusted to vouch for users of listed organizations.
    #[serde(default)]
    pub oidc: Vec<OidcConfig>,
    /// The PHI vault's key-encryption keys (JSON `{"current": N, "keys": {"1": "<64 hex>"}}`,
    /// mode 0600). Default: `PHARMALINK_VAULT_KEK`, else `<data_dir>/vault.kek`, generated.
    #[serde(default)]
    pub vault_kek_file: Option<PathBuf>,
}

/// `[[oidc]]`: an external issuer, its JWKS (a file; fetch it with your deployment tooling),
/// the audience its tokens must name, the claim carrying the user's organization GLN, and the
/// organizations it may vouch for.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    pub issuer: String,
    pub audience: String,
    pub jwks_file: PathBuf,
    #[serde(default = "default_gln_claim")]
    pub gln_claim: String,
    pub organizations: Vec<String>,
}

fn default_gln_claim() -> String {
    "gln".into()
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub public_key: String,
    pub address: SocketAddr,
}

impl NodeConfig {
    pub fn read(path: &Path) -> Result<NodeConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let mut config: NodeConfig =
            toml::from_str(&text).with_context(|| format!("config {}", path.display()))?;
        // Relative paths are relative to the config file.
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut config.data_dir,
            &mut config.key_file,
            &mut config.genesis_file,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        for p in config
            .org_key_files
            .iter_mut()
            .chain(config.oidc.iter_mut().map(|o| &mut o.jwks_file))
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }

    /// A lone validator with no peers.
    pub fn single(
        data_dir: PathBuf,
        key_file: PathBuf,
        genesis_file: PathBuf,
        api: SocketAddr,
    ) -> NodeConfig {
        NodeConfig {
            data_dir,
            key_file,
            genesis_file,
            api,
            listen: None,
            peers: vec![],
            observers: vec![],
            block_txs_max: None,
            timeout_propose_ms: None,
            block_gather_ms: None,
            empty_block_interval_ms: None,
            application: ApplicationKind::Contracts,
            fault_injection: false,
            vault_kek_file: None,
            org_key_files: vec![],
            oidc: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command line (`FromStr`), the config file (serde) and `as_str` use the same names.
    #[test]
    fn application_names_agree_between_command_line_and_config() {
        #[derive(Deserialize)]
        struct Wrapper {
            application: ApplicationKind,
        }
        for kind in ApplicationKind::ALL {
            assert_eq!(kind.as_str().parse::<ApplicationKind>(), Ok(kind));
            let parsed: Wrapper =
                toml::from_str(&format!("application = {:?}", kind.as_str())).unwrap();
            assert_eq!(parsed.application, kind);
        }
        let error = "trivial".parse::<ApplicationKind>().unwrap_err();
        assert!(
            error.contains("trivial") && error.contains("contracts, nonce"),
            "{error}"
        );
    }
}
