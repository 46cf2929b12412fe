//! ed25519 keys and signatures (ed25519-dalek), as plain byte arrays in the canonical encoding.
//!
//! Single signatures are checked with `verify_strict` (no weak keys, no small-order R). Batches
//! go through `ed25519_dalek::verify_batch`, which is deterministic (its random coefficients
//! come from a transcript of the inputs, not from the OS) and about twice as fast per signature;
//! when a batch fails, each signature is checked alone so the error names the culprit. Decoded
//! public keys are kept (see `DECODED_KEYS_MAX`): decoding is a point decompression.
//! Known gap: the batch equation is cofactored and `verify_strict` is not, so a deliberately
//! crafted signature with a torsion component could pass a batch and fail alone. Every node
//! verifies the same batches, so they agree; a later hardening can pre-check R for small order.

use crate::error::LedgerError;
use borsh::{BorshDeserialize, BorshSerialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, OnceLock};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct PublicKey(pub [u8; 32]);

/// Public keys already decoded (point decompression), by their bytes. Decoding costs about a
/// quarter of a batch verification per signature, and the signers of a network are the member
/// keys of its organizations, so almost every verification finds its key here. When full it is
/// emptied (the keys in use come back at once). Only valid points are kept; a key's validity
/// does not change, so a cached key verifies exactly as a freshly decoded one.
type DecodedKeys = BTreeMap<[u8; 32], ed25519_dalek::VerifyingKey>;
pub const DECODED_KEYS_MAX: usize = 4096;
static DECODED_KEYS: OnceLock<Mutex<DecodedKeys>> = OnceLock::new();

fn decoded_keys() -> MutexGuard<'static, DecodedKeys> {
    DECODED_KEYS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

#[derive(Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Signature(pub [u8; 64]);

impl PublicKey {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Result<PublicKey, String> {
        let bytes = hex::decode(text).map_err(|e| format!("not hex: {e}"))?;
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("expected 32 bytes, got {}", b.len()))?;
        Ok(PublicKey(array))
    }

    fn dalek(&self, what: &'static str) -> Result<ed25519_dalek::VerifyingKey, LedgerError> {
        self.dalek_cached(&mut decoded_keys(), what)
    }

    /// The decoded key, from `cache` when this key was decoded before.
    fn dalek_cached(
        &self,
        cache: &mut DecodedKeys,
        what: &'static str,
    ) -> Result<ed25519_dalek::VerifyingKey, LedgerError> {
        if let Some(key) = cache.get(&self.0) {
            return Ok(*key);
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(&self.0).map_err(|_| {
            LedgerError::BadSignature {
                what,
                reason: format!("public key {} is not a valid ed25519 point", self.to_hex()),
            }
        })?;
        if cache.len() >= DECODED_KEYS_MAX {
            cache.clear();
        }
        cache.insert(self.0, key);
        Ok(key)
    }

    /// Strict single verification of `signature` over `message`.
    pub fn verify(
        &self,
        what: &'static str,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), LedgerError> {
        let key = self.dalek(what)?;
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        key.verify_strict(message, &sig)
            .map_err(|_| LedgerError::BadSignature {
                what,
                reason: format!("signature does not verify under key {}", self.to_hex()),
            })
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Signature {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", &self.to_hex()[..16])
    }
}

/// A private signing key. Debug never prints the secret.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// The key whose secret is `seed` (RFC 8032 private key bytes).
    pub fn from_seed(seed: [u8; 32]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        use ed25519_dalek::Signer;
        Signature(self.0.sign(message).to_bytes())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(public {})", self.public_key().to_hex())
    }
}

/// Verifies many `(message, key, signature)` triples at once. On failure the error names the
/// first triple that fails on its own.
pub fn verify_batch(
    what: &'static str,
    items: &[(&[u8], PublicKey, Signature)],
) -> Result<(), LedgerError> {
    if items.is_empty() {
        return Ok(());
    }
    let mut keys = Vec::with_capacity(items.len());
    {
        let mut cache = decoded_keys();
        for (_, key, _) in items {
            keys.push(key.dalek_cached(&mut cache, what)?);
        }
    }
    let messages: Vec<&[u8]> = items.iter().map(|(m, _, _)| *m).collect();
    let signatures: Vec<ed25519_dalek::Signature> = items
        .iter()
        .map(|(_, _, s)| ed25519_dalek::Signature::from_bytes(&s.0))
        .collect();
    if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
        return Ok(());
    }
    for (index, (message, key, signature)) in items.iter().enumerate() {
        if let Err(LedgerError::BadSignature { reason, .. }) = key.verify(what, message, signature)
        {
            return Err(LedgerError::BadSignature {
                what,
                reason: format!("item {index}: {reason}"),
            });
        }
    }
    Err(LedgerError::BadSignature {
        what,
        reason: "batch equation fails".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_reject_tampering() {
        let key = SigningKey::from_seed([7; 32]);
        let sig = key.sign(b"hello");
        key.public_key().verify("test", b"hello", &sig).unwrap();
        let err = key.public_key().verify("test", b"hellO", &sig).unwrap_err();
        assert!(err.to_string().contains("does not verify"), "{err}");
        let other = SigningKey::from_seed([8; 32]).public_key();
        assert!(other.verify("test", b"hello", &sig).is_err());
    }

    /// Batches of 5 and of 300: past ~190 signatures the multiscalar multiplication takes its
    /// other algorithm (Pippenger, not Straus), and a commit verifies batches of hundreds.
    #[test]
    fn batch_names_the_bad_item() {
        for size in [5u32, 300] {
            let keys: Vec<SigningKey> = (0..size)
                .map(|i| {
                    let mut seed = [1u8; 32];
                    seed[..4].copy_from_slice(&i.to_le_bytes());
                    SigningKey::from_seed(seed)
                })
                .collect();
            let msgs: Vec<Vec<u8>> = (0..size).map(|i| i.to_be_bytes().repeat(3)).collect();
            let mut items: Vec<(&[u8], PublicKey, Signature)> = keys
                .iter()
                .zip(&msgs)
                .map(|(k, m)| (m.as_slice(), k.public_key(), k.sign(m)))
                .collect();
            verify_batch("test", &items).unwrap();
            let bad = (size * 5 / 6) as usize;
            items[bad].2 .0[5] ^= 1;
            let err = verify_batch("test", &items).unwrap_err().to_string();
            assert!(err.contains(&format!("item {bad}")), "{err}");
            // Another message under a valid signature fails as well.
            items[bad].2 = keys[bad].sign(&msgs[bad]);
            verify_batch("test", &items).unwrap();
            items[bad].0 = &msgs[bad - 1];
            let err = verify_batch("test", &items).unwrap_err().to_string();
            assert!(err.contains(&format!("item {bad}")), "{err}");
        }
    }

    /// RFC 8032 §7.1 TEST 1–3 (seed, public key, message, signature): whichever backend
    /// curve25519-dalek picks at run time (AVX-512 IFMA, AVX2, portable; see
    /// `.cargo/config.toml`), keys, signatures and both verification paths match the RFC.
    #[test]
    fn rfc8032_vectors_sign_and_verify_singly_and_in_a_batch() {
        let vectors = [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
                 5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
                 085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
            (
                "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
                "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
                "af82",
                "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac\
                 18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
            ),
        ];
        let decode = |s: &str| hex::decode(s).unwrap();
        let mut items = Vec::new();
        let messages: Vec<Vec<u8>> = vectors.iter().map(|v| decode(v.2)).collect();
        for ((seed, public, _, signature), message) in vectors.iter().zip(&messages) {
            let key = SigningKey::from_seed(decode(seed).try_into().unwrap());
            assert_eq!(key.public_key().to_hex(), *public);
            let signed = key.sign(message);
            assert_eq!(hex::encode(signed.0), *signature);
            key.public_key().verify("test", message, &signed).unwrap();
            items.push((message.as_slice(), key.public_key(), signed));
        }
        verify_batch("test", &items).unwrap();
        items[1].2 .0[0] ^= 1;
        let err = verify_batch("test", &items).unwrap_err().to_string();
        assert!(err.contains("item 1"), "{err}");
    }

    #[test]
    fn decoded_keys_verify_as_fresh_ones_and_bad_points_are_refused_every_time() {
        let key = SigningKey::from_seed([9; 32]);
        let sig = key.sign(b"twice");
        // The second check finds the key decoded; both agree, and tampering still fails.
        key.public_key().verify("test", b"twice", &sig).unwrap();
        key.public_key().verify("test", b"twice", &sig).unwrap();
        assert!(decoded_keys().contains_key(&key.public_key().0));
        assert!(key.public_key().verify("test", b"twicE", &sig).is_err());
        // Not a point (y = 2 has no x on the curve): refused, and never cached.
        let mut bad = [0u8; 32];
        bad[0] = 2;
        for _ in 0..2 {
            let err = PublicKey(bad).verify("test", b"x", &sig).unwrap_err();
            assert!(
                err.to_string().contains("not a valid ed25519 point"),
                "{err}"
            );
        }
        assert!(!decoded_keys().contains_key(&bad));
    }

    #[test]
    fn debug_does_not_leak_secret() {
        let key = SigningKey::from_seed([42; 32]);
        let text = format!("{key:?}");
        assert!(!text.contains(&hex::encode([42u8; 32])));
    }
}
