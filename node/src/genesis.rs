//! The genesis file (JSON, what operators write and share) and its canonical ledger form.
//!
//! The organizations (profile, member keys, licences, validator link) travel in the ledger
//! genesis's `app_state`, Borsh-encoded. The IAM contract bootstraps its state from them
//! ([`GenesisAppState::contract_organizations`]); from then on the contracts own membership.
//! On dev and test networks only, where the genesis says so, one more organization — a
//! manufacturer whose member keys are the load-test signers `pharmalink load` derives from
//! public seeds — is added (see [`crate::loadgen`]).

use anyhow::{anyhow, bail, Context, Result};
use borsh::{BorshDeserialize, BorshSerialize};
use pharmalink_contracts::contract::command::{Licence, LicenceKind};
use pharmalink_contracts::contract::Date;
use pharmalink_contracts::iam;
use pharmalink_ledger::{Canonical, Genesis, PublicKey, SigningKey, Validator, ValidatorSet};
use serde::{Deserialize, Serialize};
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

#[derive(
    Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq, BorshSerialize, BorshDeserialize,
)]
#[serde(deny_unknown_fields)]
pub struct GenesisOrganization {
    pub name: String,
    /// GS1 Global Location Number (13 digits).
    pub gln: String,
    /// manufacturer | repackager | wholesaler | dispenser | logistics | regulator
    pub role: String,
    /// Hex ed25519 public keys allowed to sign for this organization.
    pub keys: Vec<String>,
    /// Registered business address (public).
    #[serde(default)]
    pub address: String,
    /// Licences that make it an authorized trading partner (ATP) until they expire.
    #[serde(default)]
    pub licences: Vec<GenesisLicence>,
    /// Hex consensus key of the validator this organization runs (one of `validators`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator_key: Option<String>,
}

/// A licence in the genesis file: `kind` is `fda_registration`, `state_licence` (with `state`,
/// a USPS code such as `NJ`) or `dea_registration`; `expires` is the last valid day.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisLicence {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    pub number: String,
    /// `YYYY-MM-DD`.
    pub expires: String,
    #[serde(default)]
    pub revoked: bool,
}

impl GenesisLicence {
    /// The command-line form `fda:NUMBER:YYYY-MM-DD`, `dea:NUMBER:YYYY-MM-DD` or
    /// `state-NJ:NUMBER:YYYY-MM-DD`.
    pub fn parse_spec(spec: &str) -> Result<GenesisLicence> {
        let parts: Vec<&str> = spec.split(':').collect();
        let [kind, number, expires] = parts[..] else {
            bail!("licence {spec:?}: expected KIND:NUMBER:YYYY-MM-DD (KIND fda, dea or state-XX)");
        };
        let (kind, state) = match kind {
            "fda" => ("fda_registration", None),
            "dea" => ("dea_registration", None),
            _ => match kind.strip_prefix("state-") {
                Some(state) => ("state_licence", Some(state.to_string())),
                None => bail!("licence {spec:?}: kind {kind:?} is not fda, dea or state-XX"),
            },
        };
        let licence = GenesisLicence {
            kind: kind.into(),
            state,
            number: number.into(),
            expires: expires.into(),
            revoked: false,
        };
        licence
            .to_contract()
            .map_err(|e| anyhow!("licence {spec:?}: {e}"))?;
        Ok(licence)
    }

    /// The contracts' form; the error names the field.
    pub fn to_contract(&self) -> Result<Licence, String> {
        let kind = match (self.kind.as_str(), &self.state) {
            ("fda_registration", None) => LicenceKind::FdaRegistration,
            ("dea_registration", None) => LicenceKind::DeaRegistration,
            ("state_licence", Some(state))
                if state.len() == 2 && state.bytes().all(|b| b.is_ascii_uppercase()) =>
            {
                LicenceKind::StateLicence([state.as_bytes()[0], state.as_bytes()[1]])
            }
            ("state_licence", _) => {
                return Err("state: a state licence needs a two-letter USPS code".into())
            }
            (_, Some(_)) => return Err("state: only a state_licence has a state".into()),
            (other, None) => {
                return Err(format!(
                    "kind: {other:?} is not fda_registration, state_licence or dea_registration"
                ))
            }
        };
        if self.number.is_empty() || self.number.len() > 64 {
            return Err("number: 1 to 64 characters".into());
        }
        let expires =
            Date::parse_iso(&self.expires).map_err(|e| format!("expires: {}", e.message))?;
        Ok(Licence {
            kind,
            number: self.number.clone(),
            expires,
            revoked: self.revoked,
        })
    }
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
            for (l, licence) in org.licences.iter().enumerate() {
                licence
                    .to_contract()
                    .map_err(|e| anyhow!("organizations[{i}].licences[{l}].{e}"))?;
            }
            if let Some(key) = &org.validator_key {
                let key = PublicKey::from_hex(key)
                    .map_err(|e| anyhow!("organizations[{i}].validator_key: {e}"))?;
                if !validators.iter().any(|v| v.public_key == key) {
                    bail!("organizations[{i}].validator_key: {key} is not one of the validators");
                }
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
        // The IAM contract's own checks (duplicate GLNs or keys, text bounds).
        GenesisAppState::from_genesis(&genesis)?.contract_organizations(&genesis)?;
        Ok(genesis)
    }
}

impl GenesisAppState {
    pub fn from_genesis(genesis: &Genesis) -> Result<GenesisAppState> {
        borsh::from_slice(&genesis.app_state).context("genesis app_state")
    }

    /// The organizations the IAM contract bootstraps from, in genesis order, followed by the
    /// load-test manufacturer when the genesis admits load-test signers. Checked by the
    /// contract's own genesis rules; errors name the organization.
    pub fn contract_organizations(
        &self,
        genesis: &Genesis,
    ) -> Result<Vec<iam::GenesisOrganization>> {
        let mut out = Vec::with_capacity(self.organizations.len() + 1);
        for (i, org) in self.organizations.iter().enumerate() {
            let keys = org
                .keys
                .iter()
                .enumerate()
                .map(|(k, key)| {
                    PublicKey::from_hex(key)
                        .map_err(|e| anyhow!("organizations[{i}].keys[{k}]: {e}"))
                })
                .collect::<Result<Vec<_>>>()?;
            let licences = org
                .licences
                .iter()
                .enumerate()
                .map(|(l, licence)| {
                    licence
                        .to_contract()
                        .map_err(|e| anyhow!("organizations[{i}].licences[{l}].{e}"))
                })
                .collect::<Result<Vec<_>>>()?;
            let validator = match &org.validator_key {
                None => None,
                Some(hex) => {
                    let key = PublicKey::from_hex(hex)
                        .map_err(|e| anyhow!("organizations[{i}].validator_key: {e}"))?;
                    let power = genesis
                        .validators
                        .validators
                        .iter()
                        .find(|v| v.public_key == key)
                        .map(|v| v.voting_power)
                        .ok_or_else(|| {
                            anyhow!("organizations[{i}].validator_key: {key} is not a validator")
                        })?;
                    Some((key, power))
                }
            };
            out.push(iam::GenesisOrganization {
                name: org.name.clone(),
                gln: org.gln.clone(),
                role: org.role.clone(),
                keys,
                address: org.address.clone(),
                licences,
                validator,
            });
        }
        if self.load_test_signers > 0 {
            out.push(crate::loadgen::organization(self.load_test_signers));
        }
        iam::genesis_events(&out)
            .map_err(|r| anyhow!("organizations: {} ({})", r.message, r.code))?;
        Ok(out)
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
                address: "1 Main St".into(),
                licences: vec![GenesisLicence::parse_spec("fda:FEI-1:2030-12-31").unwrap()],
                validator_key: Some(load_test_key(900).public_key().to_hex()),
            }],
            load_test_signers: 3,
        }
    }

    #[test]
    fn converts_to_the_iam_bootstrap_with_the_load_test_manufacturer() {
        let file = sample();
        let genesis = file.to_ledger().unwrap();
        let app = GenesisAppState::from_genesis(&genesis).unwrap();
        let orgs = app.contract_organizations(&genesis).unwrap();
        assert_eq!(orgs.len(), 2);
        assert_eq!(orgs[0].keys, vec![load_test_key(901).public_key()]);
        assert_eq!(
            orgs[0].validator,
            Some((load_test_key(900).public_key(), 1))
        );
        assert_eq!(orgs[0].licences[0].expires, Date::new(2030, 12, 31));
        assert_eq!(orgs[1].gln, crate::loadgen::LOAD_GLN);
        assert_eq!(
            orgs[1].keys,
            (0..3)
                .map(|i| load_test_key(i).public_key())
                .collect::<Vec<_>>()
        );
        // The JSON form round-trips and keeps the new fields.
        let text = serde_json::to_string(&file).unwrap();
        let back: GenesisFile = serde_json::from_str(&text).unwrap();
        assert_eq!(back, file);
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
        g.organizations[0].licences[0].expires = "2030-02-30".into();
        assert!(g
            .to_ledger()
            .unwrap_err()
            .to_string()
            .contains("organizations[0].licences[0].expires"));
        let mut g = sample();
        g.organizations[0].validator_key = Some(load_test_key(5).public_key().to_hex());
        assert!(g
            .to_ledger()
            .unwrap_err()
            .to_string()
            .contains("organizations[0].validator_key"));
        let mut g = sample();
        g.organizations.push(g.organizations[0].clone());
        g.organizations[1].gln = "0300020000005".into();
        g.organizations[1].validator_key = None;
        assert!(g
            .to_ledger()
            .unwrap_err()
            .to_string()
            .contains("genesis.duplicate_key"));
        assert!(GenesisLicence::parse_spec("state-nj:1:2030-01-01").is_err());
        assert!(GenesisLicence::parse_spec("ema:1:2030-01-01").is_err());
        let mut g = sample();
        g.chain_id = "UPPER".into();
        assert!(format!("{:#}", g.to_ledger().unwrap_err()).contains("chain_id"));
    }
}
