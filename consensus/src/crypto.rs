//! Keys stay with the host: the core asks a `Signer` for signatures and a `Verifier` to check them.

use pharmalink_ledger::{Hash, PublicKey, Signature, SigningKey};

/// The host's signing key. The core signs only digests (`Vote::signing_digest`,
/// `Proposal::signing_digest`), after the persisted last-signed step allows it.
pub trait Signer {
    fn public_key(&self) -> PublicKey;
    fn sign(&self, digest: &Hash) -> Signature;
}

/// Signature verification. Pure, so a host may cache results (the simulator does); it must
/// answer exactly as `PublicKey::verify` would.
pub trait Verifier {
    fn verify(&self, key: &PublicKey, digest: &Hash, signature: &Signature) -> bool;
}

/// `Signer` for a key held in memory (tests, the simulator, a node with a file keystore).
impl Signer for SigningKey {
    fn public_key(&self) -> PublicKey {
        SigningKey::public_key(self)
    }
    fn sign(&self, digest: &Hash) -> Signature {
        SigningKey::sign(self, digest.as_bytes())
    }
}

/// Plain ed25519 strict verification through ledger.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ed25519Verifier;

impl Verifier for Ed25519Verifier {
    fn verify(&self, key: &PublicKey, digest: &Hash, signature: &Signature) -> bool {
        key.verify("consensus message", digest.as_bytes(), signature)
            .is_ok()
    }
}

/// A boxed signer (for hosts that choose the key backend at run time).
impl<T: Signer + ?Sized> Signer for Box<T> {
    fn public_key(&self) -> PublicKey {
        (**self).public_key()
    }
    fn sign(&self, digest: &Hash) -> Signature {
        (**self).sign(digest)
    }
}

impl<T: Verifier + ?Sized> Verifier for Box<T> {
    fn verify(&self, key: &PublicKey, digest: &Hash, signature: &Signature) -> bool {
        (**self).verify(key, digest, signature)
    }
}
