//! The canonical binary encoding of everything that is signed or hashed.
//!
//! Choice: Borsh ("Binary Object Representation Serializer for Hashing"), which is built for
//! exactly this: one encoding per value, fields in declaration order, integers little-endian at
//! fixed width, byte strings and vectors prefixed by a u32 length, enums by a one-byte tag,
//! `Option` by a 0/1 byte, no maps, no floats. Decoding rejects trailing bytes and out-of-range
//! tags, so encode(decode(b)) == b for every accepted b (a property test checks it).
//!
//! On top of Borsh, every type states a byte maximum and a `check` of its own limits and field
//! rules; both run on encode and on decode, so no oversized or malformed object enters or leaves.

use crate::error::LedgerError;
use borsh::{BorshDeserialize, BorshSerialize};

pub trait Canonical: BorshSerialize + BorshDeserialize + Sized {
    /// Name used in errors.
    const WHAT: &'static str;
    /// Largest canonical encoding accepted.
    const BYTES_MAX: usize;

    /// Field rules and limits (not signatures: those are checked by `verify_*` methods).
    fn check(&self) -> Result<(), LedgerError>;

    fn to_canonical_bytes(&self) -> Result<Vec<u8>, LedgerError> {
        self.check()?;
        let bytes = borsh::to_vec(self).map_err(|e| LedgerError::Decode {
            what: Self::WHAT,
            reason: format!("encode: {e}"),
        })?;
        if bytes.len() > Self::BYTES_MAX {
            return Err(LedgerError::TooLarge {
                what: Self::WHAT,
                size: bytes.len(),
                max: Self::BYTES_MAX,
            });
        }
        Ok(bytes)
    }

    fn from_canonical_bytes(bytes: &[u8]) -> Result<Self, LedgerError> {
        if bytes.len() > Self::BYTES_MAX {
            return Err(LedgerError::TooLarge {
                what: Self::WHAT,
                size: bytes.len(),
                max: Self::BYTES_MAX,
            });
        }
        let value: Self = borsh::from_slice(bytes).map_err(|e| LedgerError::Decode {
            what: Self::WHAT,
            reason: e.to_string(),
        })?;
        value.check()?;
        Ok(value)
    }
}

/// Borsh bytes of a value whose size is already bounded by its type's checks.
pub(crate) fn encode_unchecked<T: BorshSerialize>(value: &T) -> Vec<u8> {
    let mut bytes = Vec::new();
    // Writing into a Vec cannot fail: io::Write for Vec<u8> is infallible.
    if value.serialize(&mut bytes).is_err() {
        bytes.clear();
    }
    bytes
}
