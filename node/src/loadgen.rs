//! What load generators and tests submit: real custody commands from a load-test manufacturer.
//!
//! A dev or test genesis with `load_test_signers = N` adds one organization, "PharmaLink Load
//! Test", a manufacturer (GLN [`LOAD_GLN`]) holding an FDA registration, whose member keys are
//! the first N load-test signers ([`crate::genesis::load_test_key`], seeds public). Its product
//! ([`LOAD_GTIN`]) is registered by the first [`product_command`] anyone submits; after that
//! every [`commission_tx`] commissions fresh serials (unique per signer and nonce), so load
//! exercises the whole contract path: signature, nonce, IAM, RBAC, ATP, custody state, indexes.

use crate::genesis::load_test_key;
use pharmalink_contracts::contract::command::{Command, Licence, LicenceKind, ProductMaster};
use pharmalink_contracts::contract::{Date, Gtin};
use pharmalink_contracts::iam;
use pharmalink_ledger::{Canonical, LedgerError, SigningKey, Transaction};

/// GLN of the load-test manufacturer (company prefix 0399999, check digit 0).
pub const LOAD_GLN: &str = "0399999000000";
/// GTIN of the load-test product (company prefix 0399999, item 00001).
pub const LOAD_GTIN: &str = "00399999000017";
/// Lot of every load-test package.
pub const LOAD_LOT: &str = "LOADTEST";
/// Most serials one load transaction commissions.
pub const SERIALS_PER_TX_MAX: usize = 16;

/// The load-test manufacturer of a dev/test genesis, with `signers` member keys.
pub fn organization(signers: u32) -> iam::GenesisOrganization {
    iam::GenesisOrganization {
        name: "PharmaLink Load Test (dev/test networks only)".into(),
        gln: LOAD_GLN.into(),
        role: "manufacturer".into(),
        keys: (0..signers)
            .map(|i| load_test_key(i).public_key())
            .collect(),
        address: String::new(),
        licences: vec![Licence {
            kind: LicenceKind::FdaRegistration,
            number: "LOAD-TEST".into(),
            expires: Date::new(2099, 12, 31),
            revoked: false,
        }],
        validator: None,
    }
}

pub fn gtin() -> Gtin {
    // A constant with a valid check digit (tested below).
    Gtin::parse(LOAD_GTIN).unwrap_or(Gtin([b'0'; 14]))
}

/// Registers the load-test product (rejected with `custody.product.exists` once done).
pub fn product_command() -> Command {
    Command::RegisterProduct {
        product: ProductMaster {
            gtin: gtin(),
            ndc: "99999-0001-01".into(),
            name: "Load test placebo".into(),
            strength: "0 mg".into(),
            dosage_form: "tablet".into(),
            container_size: "1 tablet".into(),
            company_prefix_length: 7,
        },
    }
}

/// Commissions `count` packages whose serials (20 characters, the GS1 maximum) are unique to
/// this signer and nonce.
pub fn commission_command(signer: u32, nonce: u64, count: usize) -> Command {
    let count = count.clamp(1, SERIALS_PER_TX_MAX);
    Command::Commission {
        gtin: gtin(),
        serials: (0..count)
            .map(|i| format!("L{signer:04}N{nonce:012x}{i:02x}"))
            .collect(),
        lot: LOAD_LOT.into(),
        expiry: Date::new(2099, 12, 31),
    }
}

/// Serials per transaction so that a signed commission is at least `tx_bytes` long (the
/// smallest count reaching it, capped at [`SERIALS_PER_TX_MAX`]).
pub fn serials_for_size(chain_id: &str, tx_bytes: usize) -> Result<usize, LedgerError> {
    for count in 1..=SERIALS_PER_TX_MAX {
        if commission_tx(chain_id, 0, 0, count)?
            .to_canonical_bytes()?
            .len()
            >= tx_bytes
        {
            return Ok(count);
        }
    }
    Ok(SERIALS_PER_TX_MAX)
}

/// A signed commission from load-test signer `signer`.
pub fn commission_tx(
    chain_id: &str,
    signer: u32,
    nonce: u64,
    count: usize,
) -> Result<Transaction, LedgerError> {
    commission_tx_with(chain_id, &load_test_key(signer), signer, nonce, count)
}

/// [`commission_tx`] with the signer's key already derived (deriving it costs as much as a
/// signature).
pub fn commission_tx_with(
    chain_id: &str,
    key: &SigningKey,
    signer: u32,
    nonce: u64,
    count: usize,
) -> Result<Transaction, LedgerError> {
    Transaction::sign(
        chain_id,
        key,
        nonce,
        commission_command(signer, nonce, count).encode(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use pharmalink_contracts::contract::Gln;

    #[test]
    fn identifiers_are_valid_and_serials_unique_and_bounded() {
        assert_eq!(Gtin::parse(LOAD_GTIN).unwrap(), gtin());
        Gln::parse(LOAD_GLN).unwrap();
        iam::genesis_events(&[organization(3)]).unwrap();
        let Command::Commission { serials, .. } = commission_command(4095, 1 << 47, 16) else {
            panic!("not a commission")
        };
        assert!(serials.iter().all(|s| s.len() <= 20), "{serials:?}");
        let distinct: std::collections::BTreeSet<_> = serials.iter().collect();
        assert_eq!(distinct.len(), 16);
        let size = |n| {
            commission_tx("pharmalink-dev", 1, 1, n)
                .unwrap()
                .to_canonical_bytes()
                .unwrap()
                .len()
        };
        let count = serials_for_size("pharmalink-dev", 256).unwrap();
        assert!(size(count) >= 256 && (count == 1 || size(count - 1) < 256));
    }
}
