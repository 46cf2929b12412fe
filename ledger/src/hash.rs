//! blake3 hashes with one domain-separation context per object kind.
//!
//! Objects are hashed with blake3's `derive_key` mode, whose context string is the domain tag:
//! a transaction's bytes can never hash to the same value as a header's. Merkle trees use plain
//! blake3 with the RFC 6962 one-byte leaf/node prefixes instead (see `merkle`).

use borsh::{BorshDeserialize, BorshSerialize};
use std::fmt;
use std::sync::OnceLock;

#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize,
)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    pub const ZERO: Hash = Hash([0; 32]);
    pub const LEN: usize = 32;

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Result<Hash, String> {
        let bytes = hex::decode(text).map_err(|e| format!("not hex: {e}"))?;
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("expected 32 bytes, got {}", b.len()))?;
        Ok(Hash(array))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The kinds of hashed objects. The context strings are part of the format: never change one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// A signed transaction's canonical bytes: the transaction's identity.
    Transaction,
    /// What a transaction's signer signs (the transaction without its signature).
    TransactionSigning,
    /// A block header: the block's identity.
    BlockHeader,
    /// What a validator signs when it votes.
    Vote,
    /// A validator set.
    ValidatorSet,
    /// A genesis document.
    Genesis,
    /// Application state entries (used by the state root).
    State,
    /// Anything the application layer hashes; the application adds its own sub-tags.
    Application,
}

impl Domain {
    pub const fn context(self) -> &'static str {
        match self {
            Domain::Transaction => "pharmalink 2026-11 transaction v1",
            Domain::TransactionSigning => "pharmalink 2026-11 transaction signing v1",
            Domain::BlockHeader => "pharmalink 2026-11 block header v1",
            Domain::Vote => "pharmalink 2026-11 consensus vote v1",
            Domain::ValidatorSet => "pharmalink 2026-11 validator set v1",
            Domain::Genesis => "pharmalink 2026-11 genesis v1",
            Domain::State => "pharmalink 2026-11 application state v1",
            Domain::Application => "pharmalink 2026-11 application v1",
        }
    }

    /// `blake3::derive_key(self.context(), bytes)`.
    pub fn hash(self, bytes: &[u8]) -> Hash {
        let mut hasher = self.hasher();
        hasher.update(bytes);
        Hash(*hasher.finalize().as_bytes())
    }

    /// An incremental hasher in this domain, for objects hashed in pieces.
    pub fn hasher(self) -> blake3::Hasher {
        use blake3::hazmat::HasherExt;
        blake3::Hasher::new_from_context_key(self.context_key())
    }

    /// The context string hashed once (`derive_key` hashes it on every call: for a
    /// transaction's ~250 bytes, one compression in six).
    fn context_key(self) -> &'static blake3::hazmat::ContextKey {
        static KEYS: [OnceLock<blake3::hazmat::ContextKey>; Domain::COUNT] =
            [const { OnceLock::new() }; Domain::COUNT];
        KEYS[self as usize].get_or_init(|| blake3::hazmat::hash_derive_key_context(self.context()))
    }

    const COUNT: usize = 8;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_separate_equal_bytes() {
        let bytes = b"same bytes";
        let all = [
            Domain::Transaction,
            Domain::TransactionSigning,
            Domain::BlockHeader,
            Domain::Vote,
            Domain::ValidatorSet,
            Domain::Genesis,
            Domain::State,
            Domain::Application,
        ];
        assert_eq!(all.len(), Domain::COUNT);
        for domain in all {
            // The definition, with the context hashed on the spot.
            assert_eq!(
                domain.hash(bytes),
                Hash(blake3::derive_key(domain.context(), bytes))
            );
        }
        let mut hashes: Vec<Hash> = all.iter().map(|d| d.hash(bytes)).collect();
        hashes.sort();
        hashes.dedup();
        assert_eq!(hashes.len(), all.len());
        let mut incremental = Domain::Vote.hasher();
        incremental.update(b"same ");
        incremental.update(b"bytes");
        assert_eq!(
            Hash(*incremental.finalize().as_bytes()),
            Domain::Vote.hash(bytes)
        );
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let h = Domain::Genesis.hash(b"x");
        assert_eq!(Hash::from_hex(&h.to_hex()), Ok(h));
        assert!(Hash::from_hex("zz").unwrap_err().contains("not hex"));
        assert!(Hash::from_hex("abcd")
            .unwrap_err()
            .contains("expected 32 bytes, got 2"));
    }
}
