//! EPCIS 2.0: the event model, the JSON-LD and XML bindings (XML: EPCIS 2.0, and EPCIS 1.2 as
//! the GS1 US DSCSA guideline uses it, with master data and the transaction statement),
//! validation beyond the JSON schema, and the CBV 2.0 event hash ID. Pure: no IO.

pub mod cbv;
pub mod cbv_lists;
pub mod hash;
pub mod json;
pub mod model;
pub mod time;
pub mod xml;

pub use cbv_lists::{
    BIZ_STEPS, BIZ_TRANSACTION_TYPES, DISPOSITIONS, ERROR_REASONS, SOURCE_DESTINATION_TYPES,
};
pub use hash::{document_hash_ids, event_hash_id, pre_hash_string};
pub use json::{read_json_ld, write_json_ld};
pub use model::{EpcisDocument, EpcisError, Event};
pub mod validate;
pub mod workload;

/// A capture request, read, validated and identified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capture {
    pub document: EpcisDocument,
    /// CBV 2.0 hash ID of each event, in document order: the event's identity, so capturing
    /// the same event twice is idempotent.
    pub event_ids: Vec<String>,
}

/// Whether the text is the XML binding (first non-blank character is `<`).
pub fn is_xml(text: &str) -> bool {
    text.trim_start_matches('\u{feff}')
        .trim_start()
        .starts_with('<')
}

/// Reads what can be read of a document in either binding, with every structural problem;
/// the document is `Some` when every event was read.
pub fn read_document_partial(text: &str) -> (Option<EpcisDocument>, Vec<EpcisError>) {
    if is_xml(text) {
        return xml::read_xml_partial(text);
    }
    if text.len() > json::DOCUMENT_BYTES_MAX {
        return (None, vec![EpcisError::new(None, "", "document too large")]);
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => json::read_json_value_partial(value),
        Err(e) => (
            None,
            vec![EpcisError::new(None, "", format!("invalid JSON: {e}"))],
        ),
    }
}

/// Reads a document in either binding (JSON-LD or XML, by content).
pub fn read_document(text: &str) -> Result<EpcisDocument, Vec<EpcisError>> {
    if is_xml(text) {
        xml::read_xml(text)
    } else {
        read_json_ld(text)
    }
}

/// Read + validate + hash: the whole capture path. Returns every problem found.
pub fn capture(text: &str) -> Result<Capture, Vec<EpcisError>> {
    let (document, mut errors) = read_document_partial(text);
    let Some(document) = document else {
        return Err(errors);
    };
    // Semantic rules run even when the reader found problems, so one pass lists everything;
    // a rule that repeats a reader's finding for the same field is dropped.
    for problem in validate::validate_document(&document) {
        if !errors.iter().any(|e| e.pointer == problem.pointer) {
            errors.push(problem);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let event_ids = document_hash_ids(&document);
    Ok(Capture {
        document,
        event_ids,
    })
}

/// Hash IDs of every event of a document in either binding, in document order.
pub fn hash_ids(text: &str) -> Result<Vec<String>, Vec<EpcisError>> {
    read_document(text).map(|document| document_hash_ids(&document))
}

/// Output binding of [`convert`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    JsonLd,
    Xml,
}

/// Converts a document (either binding) to the requested binding.
pub fn convert(text: &str, to: Binding) -> Result<String, Vec<EpcisError>> {
    let document = read_document(text)?;
    Ok(match to {
        Binding::JsonLd => {
            let value = write_json_ld(&document);
            serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string())
        }
        Binding::Xml => xml::write_xml(&document),
    })
}

/// One problem per line, for command-line reports.
pub fn render_errors(errors: &[EpcisError]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}
