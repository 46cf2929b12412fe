//! `pharmalink keygen` and `pharmalink genesis`: keys and genesis files for a network.

use anyhow::{bail, Context, Result};
use clap::Args;
use pharmalink_node::genesis::{
    GenesisFile, GenesisLicence, GenesisOrganization, GenesisValidator,
};
use pharmalink_node::keys;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Where to write the key file (created with mode 0600; never overwritten).
    #[arg(long)]
    out: PathBuf,
    /// Seal the key with the passphrase in the PHARMALINK_KEY_PASSPHRASE environment variable.
    #[arg(long)]
    seal: bool,
}

pub fn keygen(args: KeygenArgs) -> Result<()> {
    let passphrase =
        if args.seal {
            Some(std::env::var(keys::PASSPHRASE_ENV).with_context(|| {
                format!("--seal needs the passphrase in {}", keys::PASSPHRASE_ENV)
            })?)
        } else {
            None
        };
    let key = keys::generate();
    keys::write_key_file(&args.out, &key, passphrase.as_deref())?;
    println!("{}", key.public_key());
    Ok(())
}

#[derive(Args, Debug)]
pub struct GenesisArgs {
    /// Chain id (lowercase letters, digits, - . _).
    #[arg(long)]
    chain_id: String,
    /// A validator: NAME=PUBLIC_KEY_HEX[:VOTING_POWER]. Repeat for each.
    #[arg(long = "validator", required = true)]
    validators: Vec<String>,
    /// An organization: NAME|GLN|ROLE|KEY_HEX[,KEY_HEX…][|LICENCE[,LICENCE…][|VALIDATOR_KEY_HEX]].
    /// LICENCE is fda:NUMBER:YYYY-MM-DD, dea:NUMBER:YYYY-MM-DD or state-NJ:NUMBER:YYYY-MM-DD;
    /// without a valid licence an organization is not an authorized trading partner. Repeat
    /// for each.
    #[arg(long = "organization")]
    organizations: Vec<String>,
    /// Admit this many publicly derivable load-test signers (dev and test networks only).
    #[arg(long, default_value_t = 0)]
    load_test_signers: u32,
    /// Genesis time in ms since the epoch (now by default).
    #[arg(long)]
    genesis_time_ms: Option<u64>,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
}

pub fn genesis(args: GenesisArgs) -> Result<()> {
    let mut validators = Vec::new();
    for (i, spec) in args.validators.iter().enumerate() {
        let (name, rest) = spec.split_once('=').with_context(|| {
            format!(
                "--validator #{}: expected NAME=KEY[:POWER], got {spec:?}",
                i + 1
            )
        })?;
        let (key, power) = match rest.split_once(':') {
            Some((key, power)) => (
                key,
                power
                    .parse()
                    .with_context(|| format!("--validator {name}: voting power {power:?}"))?,
            ),
            None => (rest, 1),
        };
        validators.push(GenesisValidator {
            name: name.into(),
            public_key: key.into(),
            voting_power: power,
        });
    }
    let mut organizations = Vec::new();
    for (i, spec) in args.organizations.iter().enumerate() {
        let parts: Vec<&str> = spec.split('|').collect();
        let (name, gln, role, keys, licences, validator) = match parts[..] {
            [name, gln, role, keys] => (name, gln, role, keys, "", ""),
            [name, gln, role, keys, licences] => (name, gln, role, keys, licences, ""),
            [name, gln, role, keys, licences, validator] => {
                (name, gln, role, keys, licences, validator)
            }
            _ => bail!(
                "--organization #{}: expected NAME|GLN|ROLE|KEYS[|LICENCES[|VALIDATOR_KEY]], got {spec:?}",
                i + 1
            ),
        };
        let licences = licences
            .split(',')
            .filter(|l| !l.is_empty())
            .map(GenesisLicence::parse_spec)
            .collect::<Result<Vec<_>>>()
            .with_context(|| format!("--organization {name}"))?;
        organizations.push(GenesisOrganization {
            name: name.into(),
            gln: gln.into(),
            role: role.into(),
            keys: keys
                .split(',')
                .filter(|k| !k.is_empty())
                .map(String::from)
                .collect(),
            address: String::new(),
            licences,
            validator_key: (!validator.is_empty()).then(|| validator.to_string()),
        });
    }
    let file = GenesisFile {
        chain_id: args.chain_id,
        genesis_time_ms: match args.genesis_time_ms {
            Some(ms) => ms,
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as u64,
        },
        validators,
        organizations,
        load_test_signers: args.load_test_signers,
    };
    let ledger = file.to_ledger()?;
    file.write(&args.out)?;
    println!(
        "genesis {} written to {}",
        ledger.hash(),
        args.out.display()
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct TokenArgs {
    /// The organization member key file that signs the token.
    #[arg(long)]
    key: PathBuf,
    /// The chain the token is for (the `aud` claim): `chain_id` of GET /v1/status.
    #[arg(long)]
    chain_id: String,
    /// Lifetime in seconds (at most 3600).
    #[arg(long, default_value_t = 600)]
    ttl: u64,
}

/// Prints a bearer token (EdDSA JWT) for the DSCSA and EPCIS endpoints.
pub fn token(args: TokenArgs) -> Result<()> {
    if args.ttl == 0 || args.ttl > pharmalink_api::auth::TOKEN_LIFETIME_MAX_S {
        bail!(
            "--ttl: {} is outside 1..={}",
            args.ttl,
            pharmalink_api::auth::TOKEN_LIFETIME_MAX_S
        );
    }
    let passphrase = std::env::var("PHARMALINK_KEY_PASSPHRASE").ok();
    let key = keys::read_key_file(&args.key, passphrase.as_deref())?;
    let token = pharmalink_api::auth::issue(
        &key,
        &args.chain_id,
        pharmalink_api::auth::now_s(),
        args.ttl,
    )
    .map_err(|e| anyhow::anyhow!("signing the token: {e}"))?;
    println!("{token}");
    Ok(())
}
