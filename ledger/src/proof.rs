//! A self-contained proof that a transaction was committed: the transaction, its audit path in
//! the block's tx tree, the block header, the header's commit certificate, and the validator set
//! that signed it. Checking needs nothing else. Every byte is bound: the header names the chain
//! and the validator set's hash, the certificate signs the header, the header's tx root covers
//! the transaction. The trust anchor is (chain id, validator set hash), which a verifier
//! compares with the genesis it pinned. (The API's consumer proofs add the validator-set chain
//! from genesis once validator sets can change.)

use crate::codec::Canonical;
use crate::error::LedgerError;
use crate::hash::Hash;
use crate::limits::TX_BUNDLE_BYTES_MAX;
use crate::merkle::InclusionProof;
use crate::merkle::TxTree;
use crate::store::{LedgerRead, StoreError};
use crate::types::{BlockHeader, CommitCertificate, Transaction, ValidatorSet};
use borsh::{BorshDeserialize, BorshSerialize};

/// The first bytes of a proof file: format name and version.
pub const TX_BUNDLE_MAGIC: &[u8; 8] = b"PLTXPRF1";

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TxInclusionBundle {
    pub validators: ValidatorSet,
    pub header: BlockHeader,
    pub certificate: CommitCertificate,
    pub tx: Transaction,
    pub proof: InclusionProof,
}

/// What a verified bundle establishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedTx {
    pub validator_set_hash: Hash,
    pub chain_id: String,
    pub height: u64,
    pub block_hash: Hash,
    pub tx_hash: Hash,
    pub tx_index: u64,
}

impl TxInclusionBundle {
    /// Builds the bundle for a stored transaction.
    pub fn from_store<S: LedgerRead + ?Sized>(
        store: &S,
        tx_hash: &Hash,
    ) -> Result<Option<TxInclusionBundle>, StoreError> {
        let Some(location) = store.tx_location(tx_hash)? else {
            return Ok(None);
        };
        let height = location.height;
        let missing = |what: &str| StoreError::Corrupt {
            height,
            reason: format!("{what} is missing"),
        };
        let block = store.block(height)?.ok_or_else(|| missing("block"))?;
        let certificate = store
            .certificate(height)?
            .ok_or_else(|| missing("certificate"))?;
        let tree = TxTree::new(&block.tx_hashes());
        let proof = tree
            .proof(location.index as usize)
            .ok_or_else(|| missing("transaction"))?;
        let tx = block
            .txs
            .get(location.index as usize)
            .cloned()
            .ok_or_else(|| missing("transaction"))?;
        Ok(Some(TxInclusionBundle {
            validators: store.genesis().validators.clone(),
            header: block.header,
            certificate,
            tx,
            proof,
        }))
    }

    pub fn verify(&self) -> Result<VerifiedTx, LedgerError> {
        self.check()?;
        let bad =
            |field: &'static str, reason: String| LedgerError::invalid(Self::WHAT, field, reason);
        let header = &self.header;
        let validator_set_hash = self.validators.hash();
        if header.validator_set_hash != validator_set_hash {
            return Err(bad(
                "header",
                "validator_set_hash is not the hash of the bundled validator set".into(),
            ));
        }
        let block_hash = header.hash();
        let cert = &self.certificate;
        if cert.height != header.height
            || cert.round < header.round
            || cert.block_hash != block_hash
        {
            return Err(bad("certificate", "does not certify this header".into()));
        }
        cert.verify(&header.chain_id, &self.validators)?;
        if self.tx.chain_id != header.chain_id {
            return Err(bad("tx", "chain_id differs from the header's".into()));
        }
        self.tx.verify_signature()?;
        if self.proof.tree_size != u64::from(header.tx_count) {
            return Err(bad(
                "proof",
                format!(
                    "tree_size {} but the block holds {} transactions",
                    self.proof.tree_size, header.tx_count
                ),
            ));
        }
        let tx_hash = self.tx.hash();
        self.proof.verify(tx_hash.as_bytes(), &header.tx_root)?;
        Ok(VerifiedTx {
            validator_set_hash,
            chain_id: header.chain_id.clone(),
            height: header.height,
            block_hash,
            tx_hash,
            tx_index: self.proof.leaf_index,
        })
    }

    /// The proof file: magic, then the canonical bytes.
    pub fn to_file_bytes(&self) -> Result<Vec<u8>, LedgerError> {
        let mut bytes = TX_BUNDLE_MAGIC.to_vec();
        bytes.extend(self.to_canonical_bytes()?);
        Ok(bytes)
    }

    pub fn from_file_bytes(bytes: &[u8]) -> Result<TxInclusionBundle, LedgerError> {
        match bytes.strip_prefix(TX_BUNDLE_MAGIC.as_slice()) {
            Some(rest) => Self::from_canonical_bytes(rest),
            None => Err(LedgerError::Decode {
                what: Self::WHAT,
                reason: "missing the PLTXPRF1 header: not a proof file or another version".into(),
            }),
        }
    }
}

impl Canonical for TxInclusionBundle {
    const WHAT: &'static str = "transaction proof";
    const BYTES_MAX: usize = TX_BUNDLE_BYTES_MAX;

    fn check(&self) -> Result<(), LedgerError> {
        self.validators.check()?;
        self.header.check()?;
        self.certificate.check()?;
        self.tx.check()
    }
}
