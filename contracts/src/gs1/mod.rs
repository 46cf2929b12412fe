//! GS1 identifiers and syntaxes: the AI table (generated from the GS1 Barcode Syntax Dictionary),
//! element strings (bracketed and FNC1), barcode scan data, GS1 Digital Link URIs, EPC URNs,
//! check digits and dates. Pure functions: no IO, no clock.

pub mod check;
pub mod date;
pub mod dictionary;
pub mod dl;
pub mod element;
pub mod epc;
mod iso_codes;
pub mod lint;
pub mod scan;
pub mod summary;
pub mod table;
pub mod workload;

#[rustfmt::skip]
mod ai_table_generated;

pub use ai_table_generated::AI_TABLE;
pub use element::{Element, ElementString};
pub use summary::{parse_any, Gs1Summary};

/// Why GS1 input was rejected. Every variant names the AI (when there is one) and the rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Gs1Error {
    #[error("({ai}): unknown AI")]
    UnknownAi { ai: String },
    #[error("({ai}): length: value has {length} characters, allowed {min}..={max}")]
    Length {
        ai: String,
        length: usize,
        min: usize,
        max: usize,
    },
    #[error("({ai}): charset: character {character:?} at position {position} is not {cset}")]
    Charset {
        ai: String,
        position: usize,
        character: char,
        cset: &'static str,
    },
    #[error("({ai}): {rule}: {reason}")]
    Content {
        ai: String,
        rule: &'static str,
        reason: String,
    },
    #[error("({ai}): pairing: {reason}")]
    Pairing { ai: String, reason: String },
    #[error("({ai}): repeated AI with different values")]
    Repeated { ai: String },
    #[error("element string: {0}")]
    Syntax(String),
    #[error("scan data: {0}")]
    ScanData(String),
    #[error("digital link: {0}")]
    DigitalLink(String),
    #[error("EPC URN: {0}")]
    Epc(String),
}

pub type Gs1Result<T> = Result<T, Gs1Error>;
