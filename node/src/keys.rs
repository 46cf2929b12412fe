//! Key files: an organization's or validator's ed25519 key on disk, readable by its owner only
//! (mode 0600, checked on load), optionally sealed with a passphrase: the 32-byte seed is
//! encrypted with AES-256-GCM under a key derived from the passphrase by Argon2id, with the
//! public key as associated data.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::{anyhow, bail, Context, Result};
use pharmalink_ledger::{PublicKey, SigningKey};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Environment variable holding the passphrase of a sealed key file.
pub const PASSPHRASE_ENV: &str = "PHARMALINK_KEY_PASSPHRASE";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    format: String,
    public_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sealed: Option<Sealed>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sealed {
    kdf: String,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: String,
    nonce: String,
    ciphertext: String,
}

const FORMAT: &str = "pharmalink-key-v1";
// OWASP's Argon2id baseline: 19 MiB, 2 iterations, 1 lane.
const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
const ARGON2_ITERATIONS: u32 = 2;
const ARGON2_PARALLELISM: u32 = 1;

fn derive_key(
    passphrase: &str,
    salt: &[u8],
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
) -> Result<[u8; 32]> {
    let params = argon2::Params::new(memory_kib, iterations, parallelism, Some(32))
        .map_err(|e| anyhow!("argon2 parameters: {e}"))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = [0u8; 32];
    argon
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .map_err(|e| anyhow!("argon2: {e}"))?;
    Ok(key)
}

/// A new random key.
pub fn generate() -> SigningKey {
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    SigningKey::from_seed(seed)
}

/// Writes `key` to `path` (mode 0600, refusing to overwrite), sealed if a passphrase is given.
pub fn write_key_file(path: &Path, key: &SigningKey, passphrase: Option<&str>) -> Result<()> {
    let public_key = key.public_key().to_hex();
    let file = match passphrase {
        None => KeyFile {
            format: FORMAT.into(),
            public_key,
            seed: Some(hex::encode(key.seed())),
            sealed: None,
        },
        Some(passphrase) => {
            if passphrase.len() < 8 {
                bail!("the passphrase must be at least 8 characters");
            }
            let mut salt = [0u8; 16];
            let mut nonce = [0u8; 12];
            OsRng.fill_bytes(&mut salt);
            OsRng.fill_bytes(&mut nonce);
            let kek = derive_key(
                passphrase,
                &salt,
                ARGON2_MEMORY_KIB,
                ARGON2_ITERATIONS,
                ARGON2_PARALLELISM,
            )?;
            let cipher = Aes256Gcm::new_from_slice(&kek).map_err(|e| anyhow!("aes key: {e}"))?;
            let seed = key.seed();
            let aad = key.public_key().0;
            let ciphertext = cipher
                .encrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: &seed,
                        aad: &aad,
                    },
                )
                .map_err(|_| anyhow!("sealing the key failed"))?;
            KeyFile {
                format: FORMAT.into(),
                public_key,
                seed: None,
                sealed: Some(Sealed {
                    kdf: "argon2id".into(),
                    memory_kib: ARGON2_MEMORY_KIB,
                    iterations: ARGON2_ITERATIONS,
                    parallelism: ARGON2_PARALLELISM,
                    salt: hex::encode(salt),
                    nonce: hex::encode(nonce),
                    ciphertext: hex::encode(ciphertext),
                }),
            }
        }
    };
    let text = serde_json::to_string_pretty(&file)? + "\n";
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating key file {}", path.display()))?;
    out.write_all(text.as_bytes())?;
    out.sync_all()?;
    Ok(())
}

/// Reads a key file. A sealed file needs `passphrase`. Files readable by group or others are
/// refused, as ssh refuses such private keys.
pub fn read_key_file(path: &Path, passphrase: Option<&str>) -> Result<SigningKey> {
    let context = || format!("key file {}", path.display());
    let mode = std::fs::metadata(path)
        .with_context(context)?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "{}: permissions {:o} are too open; it must be readable by its owner only (chmod 600)",
            context(),
            mode & 0o777
        );
    }
    let text = std::fs::read_to_string(path).with_context(context)?;
    let file: KeyFile = serde_json::from_str(&text).with_context(context)?;
    if file.format != FORMAT {
        bail!("{}: format {:?} is not {FORMAT:?}", context(), file.format);
    }
    let public_key = PublicKey::from_hex(&file.public_key)
        .map_err(|e| anyhow!("{}: public_key: {e}", context()))?;
    let seed: Vec<u8> = match (&file.seed, &file.sealed) {
        (Some(seed), None) => {
            hex::decode(seed).with_context(|| format!("{}: seed is not hex", context()))?
        }
        (None, Some(sealed)) => {
            let passphrase = passphrase
                .ok_or_else(|| anyhow!("{}: the key is sealed: set {PASSPHRASE_ENV}", context()))?;
            if sealed.kdf != "argon2id" {
                bail!("{}: unknown kdf {:?}", context(), sealed.kdf);
            }
            let salt = hex::decode(&sealed.salt).with_context(|| format!("{}: salt", context()))?;
            let nonce =
                hex::decode(&sealed.nonce).with_context(|| format!("{}: nonce", context()))?;
            if nonce.len() != 12 {
                bail!("{}: nonce must be 12 bytes", context());
            }
            let ciphertext = hex::decode(&sealed.ciphertext)
                .with_context(|| format!("{}: ciphertext", context()))?;
            let kek = derive_key(
                passphrase,
                &salt,
                sealed.memory_kib,
                sealed.iterations,
                sealed.parallelism,
            )?;
            let cipher = Aes256Gcm::new_from_slice(&kek).map_err(|e| anyhow!("aes key: {e}"))?;
            cipher
                .decrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: &ciphertext,
                        aad: &public_key.0,
                    },
                )
                .map_err(|_| anyhow!("{}: wrong passphrase, or the file was altered", context()))?
        }
        _ => bail!(
            "{}: exactly one of seed and sealed must be present",
            context()
        ),
    };
    let seed: [u8; 32] = seed
        .try_into()
        .map_err(|_| anyhow!("{}: the seed must be 32 bytes", context()))?;
    let key = SigningKey::from_seed(seed);
    if key.public_key() != public_key {
        bail!(
            "{}: the seed does not belong to public_key {}",
            context(),
            public_key
        );
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_sealed_round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate();
        let plain = dir.path().join("plain.key");
        write_key_file(&plain, &key, None).unwrap();
        assert_eq!(
            std::fs::metadata(&plain).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            read_key_file(&plain, None).unwrap().public_key(),
            key.public_key()
        );
        assert!(
            write_key_file(&plain, &key, None).is_err(),
            "never overwrites a key"
        );

        let sealed = dir.path().join("sealed.key");
        write_key_file(&sealed, &key, Some("correct horse battery")).unwrap();
        let text = std::fs::read_to_string(&sealed).unwrap();
        assert!(
            !text.contains(&hex::encode(key.seed())),
            "the seed must not appear in a sealed file"
        );
        assert_eq!(
            read_key_file(&sealed, Some("correct horse battery"))
                .unwrap()
                .public_key(),
            key.public_key()
        );
        let err = read_key_file(&sealed, Some("wrong passphrase"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("wrong passphrase"), "{err}");
        let err = read_key_file(&sealed, None).unwrap_err().to_string();
        assert!(err.contains(PASSPHRASE_ENV), "{err}");

        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_key_file(&plain, None).unwrap_err().to_string();
        assert!(err.contains("too open"), "{err}");
    }
}
