//! The PHI vault: patient data kept by the pharmacy's node, never on the ledger, in gossip or
//! in logs. (Issue 8, first part: storage, keys, shredding, access audit.)
//!
//! - Envelope encryption: each patient has a random 256-bit data key; each record is sealed with
//!   AES-256-GCM under it (associated data: patient token and record id, so a ciphertext cannot
//!   be moved to another patient or record). Data keys are stored only wrapped by a
//!   key-encryption key (KEK) held by a [`KeyManager`] — a key file or the environment here, a
//!   KMS or HSM behind the same trait in production.
//! - Rotation: [`Vault::rotate`] re-wraps every data key under the KEK's new version; records
//!   are not re-encrypted.
//! - Crypto-shredding: [`Vault::shred`] deletes the patient's wrapped data key and records and
//!   compacts them out of the store files; the ciphertexts anywhere else (backups) can no longer
//!   be opened. The ledger, which only ever held the random patient token, is untouched.
//! - Every read of PHI is first written (synced) to the access audit log — who, when, purpose,
//!   which patient token and record — and only then decrypted; no audit, no read.
//!
//! Patient tokens are random (not derived from identity); the ledger and contracts see only
//! tokens and commitments.

use crate::runtime::now_ms;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use anyhow::{anyhow, bail, Context, Result};
use borsh::{BorshDeserialize, BorshSerialize};
use rand_core::{OsRng, RngCore};
use rocksdb::{ColumnFamilyDescriptor, IteratorMode, Options, WriteBatch, WriteOptions, DB};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const CF_KEYS: &str = "data_keys";
const CF_RECORDS: &str = "records";
const CF_AUDIT: &str = "access_audit";
/// Blind index from a patient's identity to their token: `i/{keyed hash}` → token and
/// `t/{token}` → keyed hash (so shredding removes it). The key is a random 32-byte value kept
/// wrapped by the KEK like a data key (under [`BLIND_INDEX_KEY_ID`]).
const CF_IDENTITY: &str = "identity_index";
const BLIND_INDEX_KEY_ID: &str = "~blind-index-key";
/// Largest record accepted.
pub const RECORD_BYTES_MAX: usize = 1024 * 1024;
/// Environment variable holding a hex KEK (version 1) when no key file is given.
pub const KEK_ENV: &str = "PHARMALINK_VAULT_KEK";

/// Holds key-encryption keys by version and wraps/unwraps data keys with them.
pub trait KeyManager: Send + Sync {
    /// The version new and re-wrapped data keys use.
    fn current_version(&self) -> u32;
    /// `nonce ‖ AES-256-GCM(data_key)` under KEK `version`, bound to `aad`.
    fn wrap(&self, version: u32, data_key: &[u8; 32], aad: &[u8]) -> Result<Vec<u8>>;
    fn unwrap(&self, version: u32, wrapped: &[u8], aad: &[u8]) -> Result<[u8; 32]>;
}

/// KEKs from a key file (JSON `{"current": N, "keys": {"1": "<64 hex>", …}}`, mode 0600) or
/// from [`KEK_ENV`].
pub struct LocalKeyManager {
    current: u32,
    keys: BTreeMap<u32, [u8; 32]>,
}

#[derive(Serialize, Deserialize)]
struct KekFile {
    current: u32,
    keys: BTreeMap<String, String>,
}

fn random_32() -> [u8; 32] {
    let mut out = [0u8; 32];
    OsRng.fill_bytes(&mut out);
    out
}

/// `nonce ‖ AES-256-GCM(plaintext)` under `key`, bound to `aad`.
pub fn seal(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let sealed = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| anyhow!("encryption failed"))?;
    Ok([&nonce[..], &sealed].concat())
}

pub fn open(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < 12 + 16 {
        bail!("sealed value too short");
    }
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
        .decrypt(
            Nonce::from_slice(&sealed[..12]),
            Payload {
                msg: &sealed[12..],
                aad,
            },
        )
        .map_err(|_| anyhow!("does not decrypt (wrong key, or altered)"))
}

impl LocalKeyManager {
    /// A fresh key manager with one random KEK (version 1).
    pub fn generate() -> LocalKeyManager {
        LocalKeyManager {
            current: 1,
            keys: BTreeMap::from([(1, random_32())]),
        }
    }

    pub fn from_env() -> Result<LocalKeyManager> {
        let text = std::env::var(KEK_ENV).with_context(|| format!("{KEK_ENV} is not set"))?;
        let bytes: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| anyhow!("{KEK_ENV}: 64 hex digits"))?;
        Ok(LocalKeyManager {
            current: 1,
            keys: BTreeMap::from([(1, bytes)]),
        })
    }

    pub fn read(path: &Path) -> Result<LocalKeyManager> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: KekFile =
            serde_json::from_str(&text).with_context(|| format!("KEK file {}", path.display()))?;
        let mut keys = BTreeMap::new();
        for (version, hex_key) in &file.keys {
            let version: u32 = version
                .parse()
                .with_context(|| format!("keys.{version}: not a version number"))?;
            let key: [u8; 32] = hex::decode(hex_key)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| anyhow!("keys.{version}: 64 hex digits"))?;
            keys.insert(version, key);
        }
        if !keys.contains_key(&file.current) {
            bail!("current: version {} has no key", file.current);
        }
        Ok(LocalKeyManager {
            current: file.current,
            keys,
        })
    }

    /// Writes the file with mode 0600.
    pub fn write(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let file = KekFile {
            current: self.current,
            keys: self
                .keys
                .iter()
                .map(|(v, k)| (v.to_string(), hex::encode(k)))
                .collect(),
        };
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("writing {}", path.display()))?;
        out.write_all(serde_json::to_string_pretty(&file)?.as_bytes())?;
        out.sync_all()?;
        Ok(())
    }

    /// Adds a new KEK version and makes it current (old versions stay to unwrap until every
    /// data key is re-wrapped).
    pub fn add_version(&mut self) -> u32 {
        let version = self.keys.keys().max().copied().unwrap_or(0) + 1;
        self.keys.insert(version, random_32());
        self.current = version;
        version
    }

    /// Drops a retired version (after [`Vault::rotate`] re-wrapped everything).
    pub fn retire(&mut self, version: u32) -> Result<()> {
        if version == self.current {
            bail!("version {version} is current");
        }
        self.keys.remove(&version);
        Ok(())
    }
}

impl KeyManager for LocalKeyManager {
    fn current_version(&self) -> u32 {
        self.current
    }

    fn wrap(&self, version: u32, data_key: &[u8; 32], aad: &[u8]) -> Result<Vec<u8>> {
        let kek = self
            .keys
            .get(&version)
            .ok_or_else(|| anyhow!("no KEK version {version}"))?;
        seal(kek, data_key, aad)
    }

    fn unwrap(&self, version: u32, wrapped: &[u8], aad: &[u8]) -> Result<[u8; 32]> {
        let kek = self
            .keys
            .get(&version)
            .ok_or_else(|| anyhow!("no KEK version {version} (retired?)"))?;
        open(kek, wrapped, aad)?
            .try_into()
            .map_err(|_| anyhow!("a data key is not 32 bytes"))
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WrappedDataKey {
    kek_version: u32,
    wrapped: Vec<u8>,
}

/// Who reads PHI, and why; and an access log entry (the API's types: the same JSON).
pub use pharmalink_api::pharmacy::{PhiAccess as AccessEntry, PhiAccessor as Accessor};

pub struct Vault {
    db: DB,
    kms: Arc<dyn KeyManager>,
    sequence: AtomicU64,
    identity_lock: std::sync::Mutex<()>,
}

/// A patient token: 16 random bytes, hex. Says nothing about the patient.
pub fn new_patient_token() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn check_token(token: &str) -> Result<()> {
    if token.len() != 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("patient token: 32 hex digits");
    }
    Ok(())
}

fn synced() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}

impl Vault {
    pub fn open(path: &Path, kms: Arc<dyn KeyManager>) -> Result<Vault> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let cfs = [CF_KEYS, CF_RECORDS, CF_AUDIT, CF_IDENTITY]
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&options, path, cfs)
            .with_context(|| format!("opening the PHI vault {}", path.display()))?;
        // Audit keys are time ‖ sequence: continue the sequence after the newest entry, so
        // entries written in the same millisecond by different runs keep their order.
        let next = match db.cf_handle(CF_AUDIT) {
            Some(cf) => db
                .iterator_cf(cf, IteratorMode::End)
                .next()
                .and_then(|item| item.ok())
                .and_then(|(key, _)| std::str::from_utf8(&key[20..]).ok()?.parse::<u64>().ok())
                .map_or(0, |last| last + 1),
            None => 0,
        };
        Ok(Vault {
            db,
            kms,
            sequence: AtomicU64::new(next),
            identity_lock: std::sync::Mutex::new(()),
        })
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| anyhow!("vault column family {name} missing"))
    }

    /// A new patient: a random token and a fresh data key (stored wrapped).
    pub fn new_patient(&self) -> Result<String> {
        let token = new_patient_token();
        let data_key = random_32();
        let version = self.kms.current_version();
        let wrapped = self.kms.wrap(version, &data_key, token.as_bytes())?;
        let record = WrappedDataKey {
            kek_version: version,
            wrapped,
        };
        self.db.put_cf_opt(
            self.cf(CF_KEYS)?,
            token.as_bytes(),
            borsh::to_vec(&record)?,
            &synced(),
        )?;
        Ok(token)
    }

    /// The blind-index key, created (wrapped) on first use.
    fn blind_index_key(&self) -> Result<[u8; 32]> {
        let cf = self.cf(CF_KEYS)?;
        if let Some(bytes) = self.db.get_cf(cf, BLIND_INDEX_KEY_ID.as_bytes())? {
            let record: WrappedDataKey = borsh::from_slice(&bytes)?;
            return self.kms.unwrap(
                record.kek_version,
                &record.wrapped,
                BLIND_INDEX_KEY_ID.as_bytes(),
            );
        }
        let key = random_32();
        let version = self.kms.current_version();
        let record = WrappedDataKey {
            kek_version: version,
            wrapped: self
                .kms
                .wrap(version, &key, BLIND_INDEX_KEY_ID.as_bytes())?,
        };
        self.db.put_cf_opt(
            cf,
            BLIND_INDEX_KEY_ID.as_bytes(),
            borsh::to_vec(&record)?,
            &synced(),
        )?;
        Ok(key)
    }

    /// The patient with this identity (normalized name and birth date), found through the
    /// keyed blind index, or a new patient. The identity itself is not stored.
    pub fn patient_for_identity(&self, identity: &str) -> Result<String> {
        let _guard = self.identity_lock.lock().unwrap_or_else(|e| e.into_inner());
        let blind = blake3::keyed_hash(&self.blind_index_key()?, identity.as_bytes());
        let cf = self.cf(CF_IDENTITY)?;
        let index_key = [b"i/".as_slice(), blind.as_bytes()].concat();
        if let Some(token) = self.db.get_cf(cf, &index_key)? {
            let token = String::from_utf8(token).map_err(|_| anyhow!("corrupt identity index"))?;
            if self
                .db
                .get_cf(self.cf(CF_KEYS)?, token.as_bytes())?
                .is_some()
            {
                return Ok(token);
            }
        }
        let token = self.new_patient()?;
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, &index_key, token.as_bytes());
        batch.put_cf(cf, [b"t/", token.as_bytes()].concat(), blind.as_bytes());
        self.db.write_opt(batch, &synced())?;
        Ok(token)
    }

    /// Whether the patient has this record (no decryption, no audit).
    pub fn has_record(&self, token: &str, record_id: &str) -> Result<bool> {
        check_token(token)?;
        Ok(self
            .db
            .get_cf(self.cf(CF_RECORDS)?, Self::record_key(token, record_id))?
            .is_some())
    }

    /// `count` new patients written in one synced batch (imports, migrations, benchmarks).
    pub fn new_patients(&self, count: usize) -> Result<Vec<String>> {
        let version = self.kms.current_version();
        let cf = self.cf(CF_KEYS)?;
        let mut batch = WriteBatch::default();
        let mut tokens = Vec::with_capacity(count);
        for _ in 0..count {
            let token = new_patient_token();
            let record = WrappedDataKey {
                kek_version: version,
                wrapped: self.kms.wrap(version, &random_32(), token.as_bytes())?,
            };
            batch.put_cf(cf, token.as_bytes(), borsh::to_vec(&record)?);
            tokens.push(token);
        }
        self.db.write_opt(batch, &synced())?;
        Ok(tokens)
    }

    /// The patient's data key (unwrapped by the key manager).
    pub fn data_key(&self, token: &str) -> Result<[u8; 32]> {
        check_token(token)?;
        let bytes = self
            .db
            .get_cf(self.cf(CF_KEYS)?, token.as_bytes())?
            .ok_or_else(|| anyhow!("patient {token}: no data key (unknown or shredded)"))?;
        let record: WrappedDataKey = borsh::from_slice(&bytes)?;
        self.kms
            .unwrap(record.kek_version, &record.wrapped, token.as_bytes())
    }

    fn record_key(token: &str, record_id: &str) -> Vec<u8> {
        [token.as_bytes(), b"/", record_id.as_bytes()].concat()
    }

    /// Stores (or replaces) a record of the patient, sealed under their data key.
    pub fn put(&self, token: &str, record_id: &str, plaintext: &[u8]) -> Result<()> {
        if record_id.is_empty() || record_id.len() > 128 || record_id.contains('/') {
            bail!("record id: 1 to 128 characters without '/'");
        }
        if plaintext.len() > RECORD_BYTES_MAX {
            bail!(
                "record: {} bytes exceeds {RECORD_BYTES_MAX}",
                plaintext.len()
            );
        }
        let key = self.data_key(token)?;
        let aad = Self::record_key(token, record_id);
        let sealed = seal(&key, plaintext, &aad)?;
        self.db
            .put_cf_opt(self.cf(CF_RECORDS)?, aad, sealed, &synced())?;
        Ok(())
    }

    fn audit(&self, entry: &AccessEntry) -> Result<()> {
        let key = format!(
            "{:020}{:010}",
            entry.time_ms,
            self.sequence.fetch_add(1, Ordering::Relaxed) % 10_000_000_000
        );
        self.db.put_cf_opt(
            self.cf(CF_AUDIT)?,
            key.as_bytes(),
            serde_json::to_vec(entry)?,
            &synced(),
        )?;
        Ok(())
    }

    /// Reads a record: the access is audited (synced) before anything is decrypted.
    pub fn get(&self, token: &str, record_id: &str, accessor: &Accessor) -> Result<Vec<u8>> {
        check_token(token)?;
        if accessor.who.trim().is_empty() || accessor.purpose.trim().is_empty() {
            bail!("accessor: who and purpose are required to read PHI");
        }
        self.audit(&AccessEntry {
            time_ms: now_ms(),
            who: accessor.who.clone(),
            purpose: accessor.purpose.clone(),
            action: "read".into(),
            patient_token: token.to_string(),
            record_id: Some(record_id.to_string()),
        })?;
        let key = self.data_key(token)?;
        let aad = Self::record_key(token, record_id);
        let sealed = self
            .db
            .get_cf(self.cf(CF_RECORDS)?, &aad)?
            .ok_or_else(|| anyhow!("patient {token}: no record {record_id:?}"))?;
        open(&key, &sealed, &aad)
    }

    /// Re-wraps every data key under the KEK's current version; records are untouched.
    /// Returns how many data keys were re-wrapped.
    pub fn rotate(&self) -> Result<usize> {
        let version = self.kms.current_version();
        let cf = self.cf(CF_KEYS)?;
        let mut batch = WriteBatch::default();
        let mut count = 0;
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (token, bytes) = item?;
            let record: WrappedDataKey = borsh::from_slice(&bytes)?;
            if record.kek_version == version {
                continue;
            }
            let key = self
                .kms
                .unwrap(record.kek_version, &record.wrapped, &token)?;
            let rewrapped = WrappedDataKey {
                kek_version: version,
                wrapped: self.kms.wrap(version, &key, &token)?,
            };
            batch.put_cf(cf, &token, borsh::to_vec(&rewrapped)?);
            count += 1;
        }
        self.db.write_opt(batch, &synced())?;
        Ok(count)
    }

    /// Crypto-shredding: deletes the patient's data key and records, then flushes and compacts
    /// them out of the store files. Audited.
    pub fn shred(&self, token: &str, accessor: &Accessor) -> Result<()> {
        check_token(token)?;
        self.audit(&AccessEntry {
            time_ms: now_ms(),
            who: accessor.who.clone(),
            purpose: accessor.purpose.clone(),
            action: "shred".into(),
            patient_token: token.to_string(),
            record_id: None,
        })?;
        let keys = self.cf(CF_KEYS)?;
        let records = self.cf(CF_RECORDS)?;
        let mut batch = WriteBatch::default();
        batch.delete_cf(keys, token.as_bytes());
        let start = [token.as_bytes(), b"/"].concat();
        let end = [token.as_bytes(), b"0"].concat(); // '0' follows '/' in ASCII
        batch.delete_range_cf(records, &start, &end);
        let identity = self.cf(CF_IDENTITY)?;
        let reverse = [b"t/", token.as_bytes()].concat();
        if let Some(blind) = self.db.get_cf(identity, &reverse)? {
            batch.delete_cf(identity, [b"i/".as_slice(), &blind].concat());
            batch.delete_cf(identity, &reverse);
        }
        self.db.write_opt(batch, &synced())?;
        // Push the deletions through: flush every column family (so the write-ahead log that
        // held the key is retired) and compact so no SST keeps the old values.
        for name in [CF_KEYS, CF_RECORDS, CF_AUDIT, CF_IDENTITY] {
            self.db.flush_cf(self.cf(name)?)?;
        }
        for cf in [keys, records, identity] {
            self.db.compact_range_cf(cf, None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }

    /// The newest access entries first, at most `limit`.
    pub fn access_log(&self, limit: usize) -> Result<Vec<AccessEntry>> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_AUDIT)?, IteratorMode::End) {
            let (_, value) = item?;
            out.push(serde_json::from_slice(&value)?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "CANARY-PHI Jane Q. Doe, DOB 1970-01-01, 12 Elm St";

    fn files_contain(dir: &Path, needle: &[u8]) -> Vec<String> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(path.display().to_string());
                }
            }
        }
        found
    }

    #[test]
    fn records_are_sealed_audited_rotated_and_shredded() {
        let dir = tempfile::tempdir().unwrap();
        let mut kms = LocalKeyManager::generate();
        let kek_file = dir.path().join("vault.kek");
        kms.write(&kek_file).unwrap();
        let vault_dir = dir.path().join("vault");
        let pharmacist = Accessor {
            who: "pharmacist:alice".into(),
            purpose: "dispensing".into(),
        };
        let (token, other) = {
            let vault = Vault::open(
                &vault_dir,
                Arc::new(LocalKeyManager::read(&kek_file).unwrap()),
            )
            .unwrap();
            let token = vault.new_patient().unwrap();
            let other = vault.new_patient().unwrap();
            assert_ne!(token, other);
            vault.put(&token, "rx-1", CANARY.as_bytes()).unwrap();
            vault.put(&other, "rx-1", b"someone else").unwrap();
            assert_eq!(
                vault.get(&token, "rx-1", &pharmacist).unwrap(),
                CANARY.as_bytes()
            );
            // A read without who/purpose is refused; bad ids are named.
            let anonymous = Accessor {
                who: "".into(),
                purpose: "curiosity".into(),
            };
            assert!(vault
                .get(&token, "rx-1", &anonymous)
                .unwrap_err()
                .to_string()
                .contains("who and purpose"));
            assert!(vault
                .put("not-a-token", "rx", b"x")
                .unwrap_err()
                .to_string()
                .contains("patient token"));
            (token, other)
        };
        // The plaintext is in no file of the vault (WAL and SSTs included) after a reopen.
        {
            let vault = Vault::open(
                &vault_dir,
                Arc::new(LocalKeyManager::read(&kek_file).unwrap()),
            )
            .unwrap();
            vault.db.flush().unwrap();
        }
        assert!(files_contain(&vault_dir, CANARY.as_bytes()).is_empty());
        assert!(files_contain(&vault_dir, b"Jane Q. Doe").is_empty());

        // Rotation: a new KEK version; data keys re-wrapped; the old version retired; records
        // still open (they were not re-encrypted).
        kms = LocalKeyManager::read(&kek_file).unwrap();
        kms.add_version();
        let kms = Arc::new(kms);
        let vault = Vault::open(&vault_dir, kms.clone()).unwrap();
        let sealed_before = vault
            .db
            .get_cf(
                vault.cf(CF_RECORDS).unwrap(),
                Vault::record_key(&token, "rx-1"),
            )
            .unwrap();
        assert_eq!(vault.rotate().unwrap(), 2);
        assert_eq!(vault.rotate().unwrap(), 0, "already current");
        let sealed_after = vault
            .db
            .get_cf(
                vault.cf(CF_RECORDS).unwrap(),
                Vault::record_key(&token, "rx-1"),
            )
            .unwrap();
        assert_eq!(sealed_before, sealed_after, "records are not re-encrypted");
        drop(vault);
        let mut current = LocalKeyManager {
            current: kms.current,
            keys: kms.keys.clone(),
        };
        current.retire(1).unwrap();
        let vault = Vault::open(&vault_dir, Arc::new(current)).unwrap();
        assert_eq!(
            vault.get(&token, "rx-1", &pharmacist).unwrap(),
            CANARY.as_bytes()
        );

        // Crypto-shredding: the patient's data is gone for good; the other patient is intact.
        let wrapped_key = vault
            .db
            .get_cf(vault.cf(CF_KEYS).unwrap(), token.as_bytes())
            .unwrap()
            .unwrap();
        vault
            .shred(
                &token,
                &Accessor {
                    who: "pharmacist:alice".into(),
                    purpose: "patient request".into(),
                },
            )
            .unwrap();
        let err = vault
            .get(&token, "rx-1", &pharmacist)
            .unwrap_err()
            .to_string();
        assert!(err.contains("shredded"), "{err}");
        assert_eq!(
            vault.get(&other, "rx-1", &pharmacist).unwrap(),
            b"someone else"
        );
        drop(vault);
        assert!(
            files_contain(&vault_dir, &wrapped_key).is_empty(),
            "the wrapped data key is still in a store file"
        );

        // Every read and the shred are in the access log, newest first.
        let vault = Vault::open(&vault_dir, kms).unwrap();
        let log = vault.access_log(100).unwrap();
        let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
        // Newest first: the two reads after the shred (one refused, one of the other patient).
        assert_eq!(actions[..3], ["read", "read", "shred"], "{actions:?}");
        assert!(log.iter().filter(|e| e.action == "read").count() >= 4);
        assert!(log.iter().all(|e| e.patient_token.len() == 32));
    }
}

/// The vault as the API sees it.
impl pharmalink_api::pharmacy::PhiVault for Vault {
    fn patient_for_identity(&self, identity: &str) -> std::result::Result<String, String> {
        Vault::patient_for_identity(self, identity).map_err(|e| format!("{e:#}"))
    }

    fn put(
        &self,
        token: &str,
        record_id: &str,
        plaintext: &[u8],
    ) -> std::result::Result<(), String> {
        Vault::put(self, token, record_id, plaintext).map_err(|e| format!("{e:#}"))
    }

    fn get(
        &self,
        token: &str,
        record_id: &str,
        accessor: &pharmalink_api::pharmacy::PhiAccessor,
    ) -> std::result::Result<Option<Vec<u8>>, String> {
        let exists = self
            .has_record(token, record_id)
            .map_err(|e| format!("{e:#}"))?;
        if !exists {
            return Ok(None);
        }
        Vault::get(self, token, record_id, accessor)
            .map(Some)
            .map_err(|e| format!("{e:#}"))
    }

    fn shred(
        &self,
        token: &str,
        accessor: &pharmalink_api::pharmacy::PhiAccessor,
    ) -> std::result::Result<(), String> {
        Vault::shred(self, token, accessor).map_err(|e| format!("{e:#}"))
    }

    fn access_log(
        &self,
        limit: usize,
    ) -> std::result::Result<Vec<pharmalink_api::pharmacy::PhiAccess>, String> {
        Vault::access_log(self, limit).map_err(|e| format!("{e:#}"))
    }
}

/// Opens the node's vault in `data_dir/vault`: the KEK from `kek_file` when given, else from
/// [`KEK_ENV`], else from `data_dir/vault.kek` (generated, mode 0600, on first start).
pub fn open_node_vault(data_dir: &Path, kek_file: Option<&Path>) -> Result<Vault> {
    let kms = match kek_file {
        Some(path) => LocalKeyManager::read(path)?,
        None if std::env::var(KEK_ENV).is_ok() => LocalKeyManager::from_env()?,
        None => {
            let path = data_dir.join("vault.kek");
            if path.exists() {
                LocalKeyManager::read(&path)?
            } else {
                let kms = LocalKeyManager::generate();
                kms.write(&path)?;
                kms
            }
        }
    };
    Vault::open(&data_dir.join("vault"), Arc::new(kms))
}
