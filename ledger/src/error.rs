use thiserror::Error;

/// Why an object was refused. Every variant names the object kind and the field or rule.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LedgerError {
    #[error("{what}: {size} bytes exceeds the maximum of {max}")]
    TooLarge {
        what: &'static str,
        size: usize,
        max: usize,
    },
    #[error("{what}: cannot decode: {reason}")]
    Decode { what: &'static str, reason: String },
    #[error("{what}.{field}: {reason}")]
    Invalid {
        what: &'static str,
        field: &'static str,
        reason: String,
    },
    #[error("{what}: bad signature: {reason}")]
    BadSignature { what: &'static str, reason: String },
    #[error("merkle proof: {0}")]
    Proof(String),
    #[error("block {height}: {reason}")]
    ChainLink { height: u64, reason: String },
}

impl LedgerError {
    pub(crate) fn invalid(
        what: &'static str,
        field: &'static str,
        reason: impl Into<String>,
    ) -> Self {
        LedgerError::Invalid {
            what,
            field,
            reason: reason.into(),
        }
    }
}
