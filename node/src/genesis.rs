//! The genesis file (JSON, what operators write and share) and its canonical ledger form.
//!
//! The organizations and their keys travel in the ledger genesis's `app_state`, Borsh-encoded.
//! Until the IAM contract (issue 6) owns them, the node admits transactions from: the keys of
//! listed organizations, and — on dev and test networks only, where the genesis says so — the
//! load-test signers that `pharmalink load` derives from public seeds.

use anyhow::{bail, Context, Result};
use borsh::{BorshDeserialize, BorshSerialize};
use pharmalink_ledger::{Canonical, Genesis, PublicKey, SigningKey, Validator, ValidatorSet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

/// Most load-test signers a genesis may admit.
pub const LOAD_TEST_SIGNERS_MAX: u32 = 4096;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GenesisFile {
    pub chain_id: String,
    pub genesis_time_ms: u64,
    pub validators: Vec<GenesisValidator>,
    #[serde(default)]
    pub organizations: Vec<GenesisOrganization>,
    /// How many publicly derivable load-test signers are admitted (0 on a production network).
    #[serde(default)]
    pub load_test_signers: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GenesisValidator {
    pub name: String,
    pub public_key: String,
    #[serde(default = "one")]
    pub voting_power: u64,
}

fn one() -> u64 {
    1
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisOrganization {
    pub name: String,
    /// GS1 Global Location Number (13 digits).
    pub gln: String,
    /// manufacturer | repackager | wholesaler | dispenser | logistics | regulator
    pub role: String,
    /// Hex ed25519 public keys allowed to sign for this organization.
    pub keys: Vec<String>,
}

pub const ROLES: [&str; 6] = [
    "manufacturer",
    "repackager",
    "wholesaler",
    "dispenser",
    "logistics",
    "regulator",
];

/// The application part of the genesis, as stored in `Genesis::app_state`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct GenesisAppState {
    pub organizations: Vec<GenesisOrganization>,
    pub load_test_signers: u32,
}

/// The `index`th load-test signer. Its seed is public: only dev/test genesis files admit it.
pub fn load_test_key(index: u32) -> SigningKey {
    SigningKey::from_seed(blake3::derive_key(
        "pharmalink 2026-11 load-test signer v1",
        &index.to_le_bytes(),
    ))
}

fn gln_is_valid(gln: &str) -> bool {
    if gln.len() != 13 || !gln.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let digits: Vec<u32> = gln.bytes().map(|b| u32::from(b - b'0')).collect();
    let sum: u32 = digits[..12]
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| if i % 2 == 0 { d * 3 } else { *d })
        .sum();
    (10 - sum % 10) % 10 == digits[12]
}

impl GenesisFile {
    pub fn read(path: &Path) -> Result<GenesisFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading genesis {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("genesis {}", path.display()))
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        std::fs::write(path, serde_json::to_string_pretty(self)? + "\n")
            .with_context(|| format!("writing {}", path.display()))
    }

    /// The canonical ledger genesis, after checking every field.
    pub fn to_ledger(&self) -> Result<Genesis> {
        let mut validators = Vec::with_capacity(self.validators.len());
        for (i, v) in self.validators.iter().enumerate() {
            let public_key = PublicKey::from_hex(&v.public_key)
                .map_err(|e| anyhow::anyhow!("validators[{i}].public_key: {e}"))?;
            validators.push(Validator {
                public_key,
                voting_power: v.voting_power,
            });
        }
        for (i, org) in self.organizations.iter().enumerate() {
            if !gln_is_valid(&org.gln) {
                bail!(
                    "organizations[{i}].gln: {:?} is not a 13-digit GLN with a valid check digit",
                    org.gln
                );
            }
            if !ROLES.contains(&org.role.as_str()) {
                bail!(
                    "organizations[{i}].role: {:?} is not one of {}",
                    org.role,
                    ROLES.join(", ")
                );
            }
            for (k, key) in org.keys.iter().enumerate() {
                PublicKey::from_hex(key)
                    .map_err(|e| anyhow::anyhow!("organizations[{i}].keys[{k}]: {e}"))?;
            }
        }
        if self.load_test_signers > LOAD_TEST_SIGNERS_MAX {
            bail!(
                "load_test_signers: {} exceeds {LOAD_TEST_SIGNERS_MAX}",
                self.load_test_signers
            );
        }
        let app_state = GenesisAppState {
            organizations: self.organizations.clone(),
            load_test_signers: self.load_test_signers,
        };
        let genesis = Genesis {
            chain_id: self.chain_id.clone(),
            genesis_time_ms: self.genesis_time_ms,
            validators: ValidatorSet { validators },
            app_state: borsh::to_vec(&app_state)?,
        };
        genesis.check().context("genesis")?;
        Ok(genesis)
    }
}

impl GenesisAppState {
    pub fn from_genesis(genesis: &Genesis) -> Result<GenesisAppState> {
        borsh::from_slice(&genesis.app_state).context("genesis app_state")
    }

    /// Keys whose transactions the node admits.
    pub fn admitted_signers(&self) -> BTreeSet<PublicKey> {
        let mut keys: BTreeSet<PublicKey> = self
            .organizations
            .iter()
            .flat_map(|o| o.keys.iter())
            .filter_map(|k| PublicKey::from_hex(k).ok())
            .collect();
        keys.extend((0..self.load_test_signers).map(|i| load_test_key(i).public_key()));
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> GenesisFile {
        GenesisFile {
            chain_id: "pharmalink-test".into(),
            genesis_time_ms: 1,
            validators: vec![GenesisValidator {
                name: "v1".into(),
                public_key: load_test_key(900).public_key().to_hex(),
                voting_power: 1,
            }],
            organizations: vec![GenesisOrganization {
                name: "Acme Pharma".into(),
                gln: "0300010000008".into(),
                role: "manufacturer".into(),
                keys: vec![load_test_key(901).public_key().to_hex()],
            }],
            load_test_signers: 3,
        }
    }

    #[test]
    fn converts_and_admits_org_and_load_test_keys() {
        let genesis = sample().to_ledger().unwrap();
        let app = GenesisAppState::from_genesis(&genesis).unwrap();
        let admitted = app.admitted_signers();
        assert!(admitted.contains(&load_test_key(901).public_key()));
        assert!(admitted.contains(&load_test_key(2).public_key()));
        assert!(!admitted.contains(&load_test_key(3).public_key()));
        assert_eq!(admitted.len(), 4);
    }

    #[test]
    fn bad_fields_are_named() {
        let mut g = sample();
        g.organizations[0].gln = "0300010000007".into();
        assert!(g
            .to_ledger()
            .unwrap_err()
            .to_string()
            .contains("organizations[0].gln"));
        let mut g = sample();
        g.organizations[0].role = "pirate".into();
        assert!(g
            .to_ledger()
            .unwrap_err()
            .to_string()
            .contains("organizations[0].role"));
        let mut g = sample();
        g.validators[0].public_key = "abc".into();
        assert!(g
            .to_ledger()
            .unwrap_err()
            .to_string()
            .contains("validators[0].public_key"));
        let mut g = sample();
        g.chain_id = "UPPER".into();
        assert!(format!("{:#}", g.to_ledger().unwrap_err()).contains("chain_id"));
    }
}
