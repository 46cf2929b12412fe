//! CBV 2.0 vocabularies: bare words, CBV URNs (`urn:epcglobal:cbv:bizstep:shipping`) and web
//! URIs (`https://ref.gs1.org/cbv/BizStep-shipping`) all name the same value.

use super::cbv_lists::{
    BIZ_STEPS, BIZ_TRANSACTION_TYPES, DISPOSITIONS, ERROR_REASONS, SOURCE_DESTINATION_TYPES,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VocabKind {
    BizStep,
    Disposition,
    BizTransactionType,
    SourceDestinationType,
    ErrorReason,
}

impl VocabKind {
    fn web_prefix(self) -> &'static str {
        match self {
            VocabKind::BizStep => "https://ref.gs1.org/cbv/BizStep-",
            VocabKind::Disposition => "https://ref.gs1.org/cbv/Disp-",
            VocabKind::BizTransactionType => "https://ref.gs1.org/cbv/BTT-",
            VocabKind::SourceDestinationType => "https://ref.gs1.org/cbv/SDT-",
            VocabKind::ErrorReason => "https://ref.gs1.org/cbv/ER-",
        }
    }

    fn urn_prefix(self) -> &'static str {
        match self {
            VocabKind::BizStep => "urn:epcglobal:cbv:bizstep:",
            VocabKind::Disposition => "urn:epcglobal:cbv:disp:",
            VocabKind::BizTransactionType => "urn:epcglobal:cbv:btt:",
            VocabKind::SourceDestinationType => "urn:epcglobal:cbv:sdt:",
            VocabKind::ErrorReason => "urn:epcglobal:cbv:er:",
        }
    }

    pub fn words(self) -> &'static [&'static str] {
        match self {
            VocabKind::BizStep => BIZ_STEPS,
            VocabKind::Disposition => DISPOSITIONS,
            VocabKind::BizTransactionType => BIZ_TRANSACTION_TYPES,
            VocabKind::SourceDestinationType => SOURCE_DESTINATION_TYPES,
            VocabKind::ErrorReason => ERROR_REASONS,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            VocabKind::BizStep => "bizStep",
            VocabKind::Disposition => "disposition",
            VocabKind::BizTransactionType => "bizTransaction type",
            VocabKind::SourceDestinationType => "source/destination type",
            VocabKind::ErrorReason => "error reason",
        }
    }
}

/// The CBV word of a value in any of its three forms, or `None` for other URIs.
pub fn cbv_word(kind: VocabKind, value: &str) -> Option<&str> {
    if !value.contains(':') {
        return Some(value);
    }
    value
        .strip_prefix(kind.web_prefix())
        .or_else(|| value.strip_prefix(kind.urn_prefix()))
}

/// The web-URI form used by the CBV 2.0 event hash; user vocabulary URIs stay as they are.
pub fn canonical_vocab(kind: VocabKind, value: &str) -> String {
    match cbv_word(kind, value) {
        Some(word) => format!("{}{word}", kind.web_prefix()),
        None => value.to_string(),
    }
}

/// The bare CBV word when the value is a CBV value, else the value (JSON-LD writing form).
pub fn compact_vocab(kind: VocabKind, value: &str) -> String {
    cbv_word(kind, value).unwrap_or(value).to_string()
}

/// Whether a string is an absolute URI (scheme ":" rest).
pub fn is_absolute_uri(value: &str) -> bool {
    match value.split_once(':') {
        Some((scheme, rest)) => {
            !rest.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
                && !value.chars().any(|c| c.is_whitespace())
        }
        None => false,
    }
}

/// CBV words must be in the standard list; other values must be absolute URIs (user
/// vocabulary). Error: the sentence saying why.
pub fn check_vocab(kind: VocabKind, value: &str) -> Result<(), String> {
    match cbv_word(kind, value) {
        Some(word) if kind.words().contains(&word) => Ok(()),
        Some(word) => Err(format!(
            "{word:?} is not a CBV 2.0 {} (use a standard word or a URI of your own vocabulary)",
            kind.name()
        )),
        None if is_absolute_uri(value) => Ok(()),
        None => Err(format!(
            "{value:?} is neither a CBV {} nor an absolute URI",
            kind.name()
        )),
    }
}

/// Sensor measurement type in hash form: bare word or `gs1:` prefix → `https://gs1.org/voc/…`.
pub fn canonical_sensor_type(value: &str) -> String {
    if let Some(word) = value.strip_prefix("gs1:") {
        return format!("https://gs1.org/voc/{word}");
    }
    if !value.contains(':') {
        return format!("https://gs1.org/voc/{value}");
    }
    value.to_string()
}

/// The CBV URN form (`urn:epcglobal:cbv:bizstep:shipping`) of a bare CBV word, as the XML
/// binding writes it; URIs stay as they are.
pub fn urn_vocab(kind: VocabKind, value: &str) -> String {
    if value.contains(':') {
        value.to_string()
    } else {
        format!("{}{value}", kind.urn_prefix())
    }
}
