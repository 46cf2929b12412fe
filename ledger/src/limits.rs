//! Every size the ledger accepts has a named maximum, checked when encoding and when decoding.

/// Canonical bytes of one signed transaction.
pub const TX_BYTES_MAX: usize = 64 * 1024;
/// Application payload inside a transaction.
pub const TX_PAYLOAD_BYTES_MAX: usize = TX_BYTES_MAX - 256;
/// Transactions in one block.
pub const BLOCK_TXS_MAX: usize = 10_000;
/// Canonical bytes of one block (header and transactions).
pub const BLOCK_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Validators in a validator set (and so signatures in a commit certificate).
pub const VALIDATORS_MAX: usize = 128;
/// Sum of all voting power, kept small enough that 3 × total never overflows a u64.
pub const VOTING_POWER_TOTAL_MAX: u64 = 1 << 60;
/// Length of a chain id in bytes.
pub const CHAIN_ID_BYTES_MAX: usize = 64;
/// Application state carried in a genesis document.
pub const GENESIS_APP_STATE_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Canonical bytes of a header (fixed fields plus the chain id).
pub const HEADER_BYTES_MAX: usize = 512;
/// Canonical bytes of a commit certificate.
pub const CERTIFICATE_BYTES_MAX: usize = 64 + VALIDATORS_MAX * 70;
/// Hashes in a Merkle audit path or consistency proof (trees of up to 2^64 leaves).
pub const MERKLE_PROOF_HASHES_MAX: usize = 128;
/// Canonical bytes of a transaction inclusion bundle (proof file).
pub const TX_BUNDLE_BYTES_MAX: usize =
    TX_BYTES_MAX + HEADER_BYTES_MAX + CERTIFICATE_BYTES_MAX + 64 * 1024 + 4096;
