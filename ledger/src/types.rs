//! Transactions, blocks, votes, commit certificates, validator sets and the genesis document.

use crate::codec::{encode_unchecked, Canonical};
use crate::crypto::{verify_batch, PublicKey, Signature, SigningKey};
use crate::error::LedgerError;
use crate::hash::{Domain, Hash};
use crate::limits::*;
use crate::merkle;
use borsh::{BorshDeserialize, BorshSerialize};

fn check_chain_id(what: &'static str, chain_id: &str) -> Result<(), LedgerError> {
    if chain_id.is_empty() || chain_id.len() > CHAIN_ID_BYTES_MAX {
        return Err(LedgerError::invalid(
            what,
            "chain_id",
            format!(
                "must be 1 to {CHAIN_ID_BYTES_MAX} bytes, got {}",
                chain_id.len()
            ),
        ));
    }
    if let Some(c) = chain_id
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "-._".contains(*c)))
    {
        return Err(LedgerError::invalid(
            what,
            "chain_id",
            format!("character {c:?} is not one of a-z 0-9 - . _"),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Transactions

/// A signed transaction. Its identity is `hash()`, over all of its canonical bytes.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Transaction {
    pub chain_id: String,
    pub signer: PublicKey,
    /// Per-signer sequence number; the node rejects replays and gaps.
    pub nonce: u64,
    /// A contract command in the application's own canonical encoding.
    pub payload: Vec<u8>,
    pub signature: Signature,
}

#[derive(BorshSerialize)]
struct UnsignedTransaction<'a> {
    chain_id: &'a str,
    signer: &'a PublicKey,
    nonce: u64,
    payload: &'a [u8],
}

impl Transaction {
    pub fn sign(
        chain_id: &str,
        key: &SigningKey,
        nonce: u64,
        payload: Vec<u8>,
    ) -> Result<Transaction, LedgerError> {
        let signer = key.public_key();
        let digest = Self::digest(chain_id, &signer, nonce, &payload);
        let tx = Transaction {
            chain_id: chain_id.to_owned(),
            signer,
            nonce,
            payload,
            signature: key.sign(digest.as_bytes()),
        };
        tx.check()?;
        Ok(tx)
    }

    fn digest(chain_id: &str, signer: &PublicKey, nonce: u64, payload: &[u8]) -> Hash {
        Domain::TransactionSigning.hash(&encode_unchecked(&UnsignedTransaction {
            chain_id,
            signer,
            nonce,
            payload,
        }))
    }

    /// The 32 bytes the signer signed.
    pub fn signing_digest(&self) -> Hash {
        Self::digest(&self.chain_id, &self.signer, self.nonce, &self.payload)
    }

    pub fn verify_signature(&self) -> Result<(), LedgerError> {
        self.signer.verify(
            Self::WHAT,
            self.signing_digest().as_bytes(),
            &self.signature,
        )
    }

    /// The transaction's identity and Merkle leaf data.
    pub fn hash(&self) -> Hash {
        Domain::Transaction.hash(&encode_unchecked(self))
    }

    /// Verifies all signatures of `txs` in one batch; the error names the failing index.
    pub fn verify_signatures<T: std::borrow::Borrow<Transaction>>(
        txs: &[T],
    ) -> Result<(), LedgerError> {
        let digests: Vec<Hash> = txs.iter().map(|tx| tx.borrow().signing_digest()).collect();
        let items: Vec<(&[u8], PublicKey, Signature)> = txs
            .iter()
            .zip(&digests)
            .map(|(tx, d)| {
                let tx = tx.borrow();
                (d.as_bytes().as_slice(), tx.signer, tx.signature)
            })
            .collect();
        verify_batch(Self::WHAT, &items)
    }
}

impl Canonical for Transaction {
    const WHAT: &'static str = "transaction";
    const BYTES_MAX: usize = TX_BYTES_MAX;

    fn check(&self) -> Result<(), LedgerError> {
        check_chain_id(Self::WHAT, &self.chain_id)?;
        if self.payload.is_empty() {
            return Err(LedgerError::invalid(
                Self::WHAT,
                "payload",
                "must not be empty",
            ));
        }
        if self.payload.len() > TX_PAYLOAD_BYTES_MAX {
            return Err(LedgerError::TooLarge {
                what: "transaction.payload",
                size: self.payload.len(),
                max: TX_PAYLOAD_BYTES_MAX,
            });
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Blocks

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BlockHeader {
    pub chain_id: String,
    /// 1 for the first block after genesis.
    pub height: u64,
    /// The consensus round in which the block was decided.
    pub round: u32,
    /// The proposer's clock, validated by voters; the only way time enters the ledger.
    pub timestamp_ms: u64,
    /// Hash of the header at `height - 1`, or of the genesis document at height 1.
    pub previous_block_hash: Hash,
    /// RFC 6962-shaped Merkle root (blake3) over the transactions' hashes.
    pub tx_root: Hash,
    pub tx_count: u32,
    /// Application state root after executing the block at `height - 1`.
    pub state_root: Hash,
    /// RFC 6962-shaped Merkle root over the hashes of all blocks at heights 1..height-1, so one
    /// recent certified header proves any older block.
    pub history_root: Hash,
    pub proposer: PublicKey,
    /// Hash of the validator set whose commit certificate decides this block.
    pub validator_set_hash: Hash,
}

impl BlockHeader {
    pub fn hash(&self) -> Hash {
        Domain::BlockHeader.hash(&encode_unchecked(self))
    }
}

impl Canonical for BlockHeader {
    const WHAT: &'static str = "block header";
    const BYTES_MAX: usize = HEADER_BYTES_MAX;

    fn check(&self) -> Result<(), LedgerError> {
        check_chain_id(Self::WHAT, &self.chain_id)?;
        if self.height == 0 {
            return Err(LedgerError::invalid(
                Self::WHAT,
                "height",
                "must be at least 1 (0 is the genesis)",
            ));
        }
        if self.tx_count as usize > BLOCK_TXS_MAX {
            return Err(LedgerError::invalid(
                Self::WHAT,
                "tx_count",
                format!("{} exceeds the maximum of {BLOCK_TXS_MAX}", self.tx_count),
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Block {
    pub header: BlockHeader,
    pub txs: Vec<Transaction>,
}

impl Block {
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    pub fn tx_hashes(&self) -> Vec<Hash> {
        self.txs.iter().map(Transaction::hash).collect()
    }

    /// Checks that the header commits to exactly these transactions.
    pub fn verify_tx_root(&self) -> Result<(), LedgerError> {
        self.verify_tx_root_of(&self.tx_hashes())
    }

    /// [`Block::verify_tx_root`] with the hashes already computed (`Block::tx_hashes`).
    pub fn verify_tx_root_of(&self, tx_hashes: &[Hash]) -> Result<(), LedgerError> {
        let root = merkle::root(tx_hashes);
        if tx_hashes.len() != self.txs.len() || root != self.header.tx_root {
            return Err(LedgerError::ChainLink {
                height: self.header.height,
                reason: format!(
                    "tx_root {} does not match the transactions (root {root})",
                    self.header.tx_root
                ),
            });
        }
        Ok(())
    }
}

impl Canonical for Block {
    const WHAT: &'static str = "block";
    const BYTES_MAX: usize = BLOCK_BYTES_MAX;

    fn check(&self) -> Result<(), LedgerError> {
        self.header.check()?;
        if self.txs.len() > BLOCK_TXS_MAX {
            return Err(LedgerError::invalid(
                Self::WHAT,
                "txs",
                format!(
                    "{} transactions exceed the maximum of {BLOCK_TXS_MAX}",
                    self.txs.len()
                ),
            ));
        }
        if self.txs.len() != self.header.tx_count as usize {
            return Err(LedgerError::invalid(
                Self::WHAT,
                "txs",
                format!(
                    "{} transactions but header.tx_count is {}",
                    self.txs.len(),
                    self.header.tx_count
                ),
            ));
        }
        for (index, tx) in self.txs.iter().enumerate() {
            tx.check().map_err(|e| {
                LedgerError::invalid(Self::WHAT, "txs", format!("transaction {index}: {e}"))
            })?;
            if tx.chain_id != self.header.chain_id {
                return Err(LedgerError::invalid(
                    Self::WHAT,
                    "txs",
                    format!("transaction {index} is for chain {:?}", tx.chain_id),
                ));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Votes and commit certificates

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize,
)]
pub enum VoteKind {
    Prevote,
    Precommit,
}

#[derive(BorshSerialize)]
struct VoteSigningFields<'a> {
    chain_id: &'a str,
    kind: VoteKind,
    height: u64,
    round: u32,
    block_hash: Option<Hash>,
}

/// The 32 bytes a validator signs for a vote. `None` is a vote for no block (nil).
pub fn vote_signing_digest(
    chain_id: &str,
    kind: VoteKind,
    height: u64,
    round: u32,
    block_hash: Option<Hash>,
) -> Hash {
    Domain::Vote.hash(&encode_unchecked(&VoteSigningFields {
        chain_id,
        kind,
        height,
        round,
        block_hash,
    }))
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct CommitSignature {
    /// Position of the signer in the validator set.
    pub validator_index: u16,
    /// Signature over `vote_signing_digest(chain, Precommit, height, round, Some(block_hash))`.
    pub signature: Signature,
}

/// Precommits of more than two thirds of the voting power for one block.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct CommitCertificate {
    pub height: u64,
    pub round: u32,
    pub block_hash: Hash,
    /// Strictly increasing by validator index.
    pub signatures: Vec<CommitSignature>,
}

impl CommitCertificate {
    /// Checks the signatures against `validators` and that they carry a quorum of voting power.
    pub fn verify(&self, chain_id: &str, validators: &ValidatorSet) -> Result<(), LedgerError> {
        const WHAT: &str = "commit certificate";
        self.check()?;
        let digest = vote_signing_digest(
            chain_id,
            VoteKind::Precommit,
            self.height,
            self.round,
            Some(self.block_hash),
        );
        let mut power: u64 = 0;
        let mut items = Vec::with_capacity(self.signatures.len());
        for sig in &self.signatures {
            let validator = validators
                .validators
                .get(sig.validator_index as usize)
                .ok_or_else(|| {
                    LedgerError::invalid(
                        WHAT,
                        "signatures",
                        format!(
                            "validator index {} is outside the set of {}",
                            sig.validator_index,
                            validators.len()
                        ),
                    )
                })?;
            power += validator.voting_power;
            items.push((
                digest.as_bytes().as_slice(),
                validator.public_key,
                sig.signature,
            ));
        }
        if power < validators.quorum_power() {
            return Err(LedgerError::invalid(
                WHAT,
                "signatures",
                format!(
                    "voting power {power} is below the quorum of {}",
                    validators.quorum_power()
                ),
            ));
        }
        verify_batch(WHAT, &items)
    }
}

impl Canonical for CommitCertificate {
    const WHAT: &'static str = "commit certificate";
    const BYTES_MAX: usize = CERTIFICATE_BYTES_MAX;

    fn check(&self) -> Result<(), LedgerError> {
        if self.signatures.is_empty() || self.signatures.len() > VALIDATORS_MAX {
            return Err(LedgerError::invalid(
                Self::WHAT,
                "signatures",
                format!(
                    "must hold 1 to {VALIDATORS_MAX} signatures, got {}",
                    self.signatures.len()
                ),
            ));
        }
        if self
            .signatures
            .windows(2)
            .any(|w| w[0].validator_index >= w[1].validator_index)
        {
            return Err(LedgerError::invalid(
                Self::WHAT,
                "signatures",
                "validator indexes must be strictly increasing",
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Validator sets

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Validator {
    pub public_key: PublicKey,
    pub voting_power: u64,
}

/// The validators in canonical order (as listed in genesis), each key once.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ValidatorSet {
    pub validators: Vec<Validator>,
}

impl ValidatorSet {
    pub fn new(validators: Vec<Validator>) -> Result<ValidatorSet, LedgerError> {
        let set = ValidatorSet { validators };
        set.check()?;
        Ok(set)
    }

    pub fn len(&self) -> usize {
        self.validators.len()
    }

    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    pub fn total_power(&self) -> u64 {
        self.validators.iter().map(|v| v.voting_power).sum()
    }

    /// The smallest power that is more than two thirds of the total.
    pub fn quorum_power(&self) -> u64 {
        self.total_power() * 2 / 3 + 1
    }

    /// The smallest power that is more than one third: any such set holds an honest validator.
    pub fn one_third_plus_power(&self) -> u64 {
        self.total_power() / 3 + 1
    }

    pub fn index_of(&self, key: &PublicKey) -> Option<usize> {
        self.validators.iter().position(|v| &v.public_key == key)
    }

    pub fn hash(&self) -> Hash {
        Domain::ValidatorSet.hash(&encode_unchecked(self))
    }
}

impl Canonical for ValidatorSet {
    const WHAT: &'static str = "validator set";
    const BYTES_MAX: usize = 4 + VALIDATORS_MAX * 40;

    fn check(&self) -> Result<(), LedgerError> {
        if self.validators.is_empty() || self.validators.len() > VALIDATORS_MAX {
            return Err(LedgerError::invalid(
                Self::WHAT,
                "validators",
                format!(
                    "must hold 1 to {VALIDATORS_MAX} validators, got {}",
                    self.validators.len()
                ),
            ));
        }
        let mut total: u64 = 0;
        for (index, v) in self.validators.iter().enumerate() {
            if v.voting_power == 0 {
                return Err(LedgerError::invalid(
                    Self::WHAT,
                    "voting_power",
                    format!("validator {index} has zero voting power"),
                ));
            }
            total = total.saturating_add(v.voting_power);
            if self.validators[..index]
                .iter()
                .any(|w| w.public_key == v.public_key)
            {
                return Err(LedgerError::invalid(
                    Self::WHAT,
                    "public_key",
                    format!("validator {index} repeats key {}", v.public_key),
                ));
            }
        }
        if total > VOTING_POWER_TOTAL_MAX {
            return Err(LedgerError::invalid(
                Self::WHAT,
                "voting_power",
                format!("total {total} exceeds {VOTING_POWER_TOTAL_MAX}"),
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Genesis

/// The chain's starting point. Its hash is the trust anchor of every proof.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Genesis {
    pub chain_id: String,
    pub genesis_time_ms: u64,
    pub validators: ValidatorSet,
    /// The application's initial state (organizations, roles…) in its own canonical encoding.
    pub app_state: Vec<u8>,
}

impl Genesis {
    pub fn hash(&self) -> Hash {
        Domain::Genesis.hash(&encode_unchecked(self))
    }
}

impl Canonical for Genesis {
    const WHAT: &'static str = "genesis";
    const BYTES_MAX: usize = GENESIS_APP_STATE_BYTES_MAX + 64 * 1024;

    fn check(&self) -> Result<(), LedgerError> {
        check_chain_id(Self::WHAT, &self.chain_id)?;
        self.validators.check()?;
        if self.app_state.len() > GENESIS_APP_STATE_BYTES_MAX {
            return Err(LedgerError::TooLarge {
                what: "genesis.app_state",
                size: self.app_state.len(),
                max: GENESIS_APP_STATE_BYTES_MAX,
            });
        }
        Ok(())
    }
}
