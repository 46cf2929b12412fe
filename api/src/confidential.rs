//! Sealing Transaction Information for the parties of a transaction and the regulators.
//!
//! Every validator replicates the ledger, competitors included, so the TI of a sale (seller
//! and buyer names and addresses, quantities, prices, invoice lines) goes on the ledger only
//! as an AES-256-GCM ciphertext plus a salted commitment
//! (`pharmalink_contracts::contract::commit_confidential`).
//!
//! Envelope (Borsh, the `Sealed::ciphertext` bytes): a random data key encrypts
//! `salt ‖ plaintext`; the data key is wrapped for each recipient's ed25519 member key
//! converted to X25519 (RFC 7748; the birational map libsodium uses), with a fresh ephemeral
//! X25519 key per recipient and a key-encryption key derived with blake3. A recipient opens
//! it with its own member key; the salt it recovers lets it disclose the TI to anyone and prove
//! it against the on-ledger commitment.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use borsh::{BorshDeserialize, BorshSerialize};
use curve25519_dalek::montgomery::MontgomeryPoint;
use pharmalink_contracts::contract::types::{commit_confidential, Sealed, SEALED_BYTES_MAX};
use pharmalink_ledger::{PublicKey, SigningKey};
use rand_core::{OsRng, RngCore};

pub const ENVELOPE_VERSION: u8 = 1;
const KEY_WRAP_CONTEXT: &str = "pharmalink 2026-11 confidential key wrap v1";
const BODY_AAD: &[u8] = b"pharmalink confidential body v1";
const WRAP_AAD: &[u8] = b"pharmalink confidential key v1";

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct WrappedKey {
    /// The recipient's ed25519 member key.
    pub recipient: PublicKey,
    /// Ephemeral X25519 public key.
    pub ephemeral: [u8; 32],
    pub nonce: [u8; 12],
    /// AES-256-GCM of the 32-byte data key (48 bytes with the tag).
    pub wrapped: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Envelope {
    pub version: u8,
    pub recipients: Vec<WrappedKey>,
    pub nonce: [u8; 12],
    /// AES-256-GCM of `salt (32) ‖ plaintext`.
    pub body: Vec<u8>,
}

fn x25519_public(key: &PublicKey) -> Result<MontgomeryPoint, String> {
    let verifying = ed25519_dalek::VerifyingKey::from_bytes(&key.0)
        .map_err(|e| format!("recipient {key}: {e}"))?;
    Ok(verifying.to_montgomery())
}

fn x25519_secret(key: &SigningKey) -> [u8; 32] {
    ed25519_dalek::SigningKey::from_bytes(&key.seed()).to_scalar_bytes()
}

fn key_encryption_key(
    shared: &MontgomeryPoint,
    ephemeral: &[u8; 32],
    recipient: &PublicKey,
) -> [u8; 32] {
    let mut material = Vec::with_capacity(96);
    material.extend_from_slice(shared.as_bytes());
    material.extend_from_slice(ephemeral);
    material.extend_from_slice(&recipient.0);
    blake3::derive_key(KEY_WRAP_CONTEXT, &material)
}

/// The body's associated data binds the whole recipient list: altering anyone's entry makes
/// the body fail to decrypt for everyone.
fn body_aad(recipients: &[WrappedKey]) -> Result<Vec<u8>, String> {
    let list = borsh::to_vec(recipients).map_err(|e| e.to_string())?;
    Ok([BODY_AAD, blake3::hash(&list).as_bytes()].concat())
}

/// Seals `plaintext` for `recipients` (deduplicated); returns the on-ledger form.
pub fn seal(plaintext: &[u8], recipients: &[PublicKey]) -> Result<Sealed, String> {
    let mut rng = OsRng;
    let mut data_key = [0u8; 32];
    rng.fill_bytes(&mut data_key);
    let mut salt = [0u8; 32];
    rng.fill_bytes(&mut salt);
    let mut recipients: Vec<PublicKey> = recipients.to_vec();
    recipients.sort();
    recipients.dedup();
    if recipients.is_empty() {
        return Err("no recipient".into());
    }
    let mut wrapped = Vec::with_capacity(recipients.len());
    for recipient in &recipients {
        let point = x25519_public(recipient)?;
        let mut ephemeral_secret = [0u8; 32];
        rng.fill_bytes(&mut ephemeral_secret);
        let ephemeral = MontgomeryPoint::mul_base_clamped(ephemeral_secret).to_bytes();
        let shared = point.mul_clamped(ephemeral_secret);
        let kek = key_encryption_key(&shared, &ephemeral, recipient);
        let mut nonce = [0u8; 12];
        rng.fill_bytes(&mut nonce);
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&kek));
        let sealed_key = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &data_key,
                    aad: WRAP_AAD,
                },
            )
            .map_err(|_| "wrapping the data key failed".to_string())?;
        wrapped.push(WrappedKey {
            recipient: *recipient,
            ephemeral,
            nonce,
            wrapped: sealed_key,
        });
    }
    let mut nonce = [0u8; 12];
    rng.fill_bytes(&mut nonce);
    let body_plain = [&salt[..], plaintext].concat();
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&data_key));
    let aad = body_aad(&wrapped)?;
    let body = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &body_plain,
                aad: &aad,
            },
        )
        .map_err(|_| "encrypting the body failed".to_string())?;
    let envelope = Envelope {
        version: ENVELOPE_VERSION,
        recipients: wrapped,
        nonce,
        body,
    };
    let ciphertext = borsh::to_vec(&envelope).map_err(|e| e.to_string())?;
    if ciphertext.len() > SEALED_BYTES_MAX {
        return Err(format!(
            "sealed TI is {} bytes (max {SEALED_BYTES_MAX}): too many recipients or too long",
            ciphertext.len()
        ));
    }
    Ok(Sealed {
        ciphertext,
        commitment: commit_confidential(&salt, plaintext),
    })
}

/// Opens a sealed blob with a recipient's member key: returns `(salt, plaintext)`, after
/// checking the plaintext against `commitment`.
pub fn open(
    ciphertext: &[u8],
    commitment: &pharmalink_ledger::Hash,
    key: &SigningKey,
) -> Result<([u8; 32], Vec<u8>), String> {
    let envelope: Envelope =
        borsh::from_slice(ciphertext).map_err(|e| format!("not a sealed envelope: {e}"))?;
    if envelope.version != ENVELOPE_VERSION {
        return Err(format!("envelope version {}", envelope.version));
    }
    let me = key.public_key();
    let entry = envelope
        .recipients
        .iter()
        .find(|w| w.recipient == me)
        .ok_or_else(|| format!("{me} is not a recipient of this TI"))?;
    let shared = MontgomeryPoint(entry.ephemeral).mul_clamped(x25519_secret(key));
    let kek = key_encryption_key(&shared, &entry.ephemeral, &me);
    let data_key = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&kek))
        .decrypt(
            Nonce::from_slice(&entry.nonce),
            Payload {
                msg: &entry.wrapped,
                aad: WRAP_AAD,
            },
        )
        .map_err(|_| "the wrapped key does not open with this key".to_string())?;
    if data_key.len() != 32 {
        return Err("the data key is not 32 bytes".into());
    }
    let aad = body_aad(&envelope.recipients)?;
    let body = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&data_key))
        .decrypt(
            Nonce::from_slice(&envelope.nonce),
            Payload {
                msg: &envelope.body,
                aad: &aad,
            },
        )
        .map_err(|_| "the body does not decrypt".to_string())?;
    if body.len() < 32 {
        return Err("the body is shorter than its salt".into());
    }
    let mut salt = [0u8; 32];
    salt.copy_from_slice(&body[..32]);
    let plaintext = body[32..].to_vec();
    if commit_confidential(&salt, &plaintext) != *commitment {
        return Err("the plaintext does not match the on-ledger commitment".into());
    }
    Ok((salt, plaintext))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_open_others_cannot_and_tampering_fails() {
        let seller = SigningKey::from_seed([1; 32]);
        let buyer = SigningKey::from_seed([2; 32]);
        let regulator = SigningKey::from_seed([3; 32]);
        let competitor = SigningKey::from_seed([4; 32]);
        let ti = br#"{"quantity":12,"unit_price":"41.50 USD"}"#;
        let sealed = seal(
            ti,
            &[
                seller.public_key(),
                buyer.public_key(),
                regulator.public_key(),
            ],
        )
        .unwrap();
        sealed.check("ti").unwrap();
        for key in [&seller, &buyer, &regulator] {
            let (_, plain) = open(&sealed.ciphertext, &sealed.commitment, key).unwrap();
            assert_eq!(plain, ti);
        }
        let err = open(&sealed.ciphertext, &sealed.commitment, &competitor).unwrap_err();
        assert!(err.contains("not a recipient"), "{err}");
        // The plaintext appears nowhere in the blob.
        assert!(!sealed
            .ciphertext
            .windows(ti.len())
            .any(|w| w == ti.as_slice()));
        // Any flipped byte fails to open (or to match the commitment).
        for i in 0..sealed.ciphertext.len() {
            let mut altered = sealed.ciphertext.clone();
            altered[i] ^= 0x40;
            assert!(
                open(&altered, &sealed.commitment, &buyer).is_err(),
                "byte {i} altered and opened"
            );
        }
    }
}
