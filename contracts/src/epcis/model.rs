//! The EPCIS 2.0 event model: the five event types with the fields pharma uses, extensions kept
//! as an order-preserving tree whose numbers are decimal text (never floating point).

use std::fmt;

/// Why an EPCIS document or event was rejected: which event, which field (JSON pointer), why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct EpcisError {
    /// Index of the event in document order, when the problem is inside an event.
    pub event_index: Option<usize>,
    /// JSON pointer (JSON-LD) or element path (XML) of the offending field.
    pub pointer: String,
    pub reason: String,
}

impl fmt::Display for EpcisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.event_index {
            Some(index) => write!(f, "event {index}: {}: {}", self.pointer, self.reason),
            None => write!(f, "{}: {}", self.pointer, self.reason),
        }
    }
}

impl EpcisError {
    pub fn new(
        event_index: Option<usize>,
        pointer: impl Into<String>,
        reason: impl Into<String>,
    ) -> EpcisError {
        EpcisError {
            event_index,
            pointer: pointer.into(),
            reason: reason.into(),
        }
    }
}

/// A decimal number kept as canonical text: no exponent, no leading `+`, no trailing
/// fractional zeros (`26.0` is `26`). Never converted to floating point in the model.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Decimal(String);

impl Decimal {
    /// Parses decimal text (optionally with an exponent) into canonical form.
    pub fn parse(text: &str) -> Option<Decimal> {
        let text = text.trim();
        let (negative, unsigned) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i32>().ok()?),
            None => (unsigned, 0),
        };
        let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if integer.is_empty() && fraction.is_empty() {
            return None;
        }
        if !integer
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
            || exponent.abs() > 400
        {
            return None;
        }
        let digits: String = format!("{integer}{fraction}");
        // Value = digits * 10^(exponent - fraction.len())
        let point = integer.len() as i64 + exponent as i64;
        let (mut whole, mut part) = if point <= 0 {
            (
                String::new(),
                format!("{}{digits}", "0".repeat((-point) as usize)),
            )
        } else if point as usize >= digits.len() {
            (
                format!("{digits}{}", "0".repeat(point as usize - digits.len())),
                String::new(),
            )
        } else {
            (
                digits[..point as usize].to_string(),
                digits[point as usize..].to_string(),
            )
        };
        let trimmed_whole = whole.trim_start_matches('0').to_string();
        whole = if trimmed_whole.is_empty() {
            "0".to_string()
        } else {
            trimmed_whole
        };
        part = part.trim_end_matches('0').to_string();
        let zero = whole == "0" && part.is_empty();
        let mut out = String::new();
        if negative && !zero {
            out.push('-');
        }
        out.push_str(&whole);
        if !part.is_empty() {
            out.push('.');
            out.push_str(&part);
        }
        Some(Decimal(out))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_negative(&self) -> bool {
        self.0.starts_with('-')
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Extension content (user extensions, ILMD, header extensions): a JSON-like tree whose keys
/// are compact IRIs (`prefix:local`) resolved through the document's namespaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ext {
    Null,
    Bool(bool),
    Number(Decimal),
    Text(String),
    List(Vec<Ext>),
    Object(Vec<(String, Ext)>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventType {
    ObjectEvent,
    AggregationEvent,
    TransactionEvent,
    TransformationEvent,
    AssociationEvent,
}

impl EventType {
    pub fn name(self) -> &'static str {
        match self {
            EventType::ObjectEvent => "ObjectEvent",
            EventType::AggregationEvent => "AggregationEvent",
            EventType::TransactionEvent => "TransactionEvent",
            EventType::TransformationEvent => "TransformationEvent",
            EventType::AssociationEvent => "AssociationEvent",
        }
    }

    pub fn from_name(name: &str) -> Option<EventType> {
        [
            EventType::ObjectEvent,
            EventType::AggregationEvent,
            EventType::TransactionEvent,
            EventType::TransformationEvent,
            EventType::AssociationEvent,
        ]
        .into_iter()
        .find(|t| t.name() == name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Add,
    Observe,
    Delete,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Add => "ADD",
            Action::Observe => "OBSERVE",
            Action::Delete => "DELETE",
        }
    }

    pub fn from_name(name: &str) -> Option<Action> {
        match name {
            "ADD" => Some(Action::Add),
            "OBSERVE" => Some(Action::Observe),
            "DELETE" => Some(Action::Delete),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantityElement {
    pub epc_class: String,
    pub quantity: Option<Decimal>,
    pub uom: Option<String>,
}

/// readPoint / bizLocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    pub id: String,
    pub extensions: Vec<(String, Ext)>,
}

/// bizTransaction, source or destination: an optional type and the identifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypedId {
    pub kind: Option<String>,
    pub id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PersistentDisposition {
    pub set: Vec<String>,
    pub unset: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorDeclaration {
    pub declaration_time: String,
    pub reason: Option<String>,
    pub corrective_event_ids: Vec<String>,
    pub extensions: Vec<(String, Ext)>,
}

/// sensorMetadata or sensorReport: standard attributes by name (value text as given, numbers
/// as [`Decimal`]) plus extensions.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SensorFields {
    pub fields: Vec<(String, Ext)>,
}

impl SensorFields {
    pub fn get(&self, name: &str) -> Option<&Ext> {
        self.fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SensorElement {
    pub metadata: Option<SensorFields>,
    pub reports: Vec<SensorFields>,
    pub extensions: Vec<(String, Ext)>,
}

/// One EPCIS event of any of the five types; fields that do not apply stay empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub event_type: EventType,
    pub event_time: String,
    pub event_time_zone_offset: String,
    pub record_time: Option<String>,
    pub event_id: Option<String>,
    pub certification_info: Vec<String>,
    pub error_declaration: Option<ErrorDeclaration>,
    pub epc_list: Vec<String>,
    pub parent_id: Option<String>,
    pub child_epcs: Vec<String>,
    pub input_epc_list: Vec<String>,
    pub output_epc_list: Vec<String>,
    pub quantity_list: Vec<QuantityElement>,
    pub child_quantity_list: Vec<QuantityElement>,
    pub input_quantity_list: Vec<QuantityElement>,
    pub output_quantity_list: Vec<QuantityElement>,
    pub action: Option<Action>,
    pub transformation_id: Option<String>,
    pub biz_step: Option<String>,
    pub disposition: Option<String>,
    pub persistent_disposition: Option<PersistentDisposition>,
    pub read_point: Option<Place>,
    pub biz_location: Option<Place>,
    pub biz_transaction_list: Vec<TypedId>,
    pub source_list: Vec<TypedId>,
    pub destination_list: Vec<TypedId>,
    pub sensor_element_list: Vec<SensorElement>,
    pub ilmd: Vec<(String, Ext)>,
    pub extensions: Vec<(String, Ext)>,
}

impl Event {
    pub fn new(event_type: EventType, event_time: &str, event_time_zone_offset: &str) -> Event {
        Event {
            event_type,
            event_time: event_time.to_string(),
            event_time_zone_offset: event_time_zone_offset.to_string(),
            record_time: None,
            event_id: None,
            certification_info: Vec::new(),
            error_declaration: None,
            epc_list: Vec::new(),
            parent_id: None,
            child_epcs: Vec::new(),
            input_epc_list: Vec::new(),
            output_epc_list: Vec::new(),
            quantity_list: Vec::new(),
            child_quantity_list: Vec::new(),
            input_quantity_list: Vec::new(),
            output_quantity_list: Vec::new(),
            action: None,
            transformation_id: None,
            biz_step: None,
            disposition: None,
            persistent_disposition: None,
            read_point: None,
            biz_location: None,
            biz_transaction_list: Vec::new(),
            source_list: Vec::new(),
            destination_list: Vec::new(),
            sensor_element_list: Vec::new(),
            ilmd: Vec::new(),
            extensions: Vec::new(),
        }
    }

    /// Lot number from ILMD (`cbvmda:lotNumber`), as DSCSA commissioning events carry it.
    pub fn ilmd_lot(&self) -> Option<&str> {
        ilmd_text(&self.ilmd, "lotNumber")
    }

    /// Expiry date from ILMD (`cbvmda:itemExpirationDate`, YYYY-MM-DD).
    pub fn ilmd_expiry(&self) -> Option<&str> {
        ilmd_text(&self.ilmd, "itemExpirationDate")
    }
}

fn ilmd_text<'a>(ilmd: &'a [(String, Ext)], local: &str) -> Option<&'a str> {
    ilmd.iter().find_map(|(key, value)| match value {
        Ext::Text(text) if key.rsplit(':').next() == Some(local) => Some(text.as_str()),
        _ => None,
    })
}

/// One entry of master data (EPCIS header vocabulary).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VocabularyElement {
    pub id: String,
    /// (attribute id, value) in document order.
    pub attributes: Vec<(String, Ext)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocabulary {
    pub vocabulary_type: String,
    pub elements: Vec<VocabularyElement>,
}

/// The GS1 US DSCSA transaction statement (`gs1ushc:dscsaTransactionStatement`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionStatement {
    pub affirm_transaction_statement: bool,
    pub legal_notice: Option<String>,
}

/// EPCIS header: master data, the DSCSA statement, and any other header content.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Header {
    pub master_data: Vec<Vocabulary>,
    pub transaction_statement: Option<TransactionStatement>,
    pub guideline_version: Option<String>,
    /// SBDH sender / receiver identifiers and instance identifier, when present.
    pub sender: Option<String>,
    pub receiver: Option<String>,
    pub instance_identifier: Option<String>,
    pub extensions: Vec<(String, Ext)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct EpcisDocument {
    /// `@context` entries that are URLs, in order.
    pub context_urls: Vec<String>,
    /// Namespace prefixes (`prefix` → IRI) from `@context` objects or XML declarations.
    pub namespaces: Vec<(String, String)>,
    pub id: Option<String>,
    pub schema_version: String,
    pub creation_date: String,
    pub header: Option<Header>,
    pub events: Vec<Event>,
    /// Other top-level fields (e.g. sender, receiver, instanceIdentifier in JSON-LD).
    pub extensions: Vec<(String, Ext)>,
}

impl EpcisDocument {
    /// IRI of a namespace prefix: the document's own, then the EPCIS 2.0 context's defaults.
    pub fn namespace(&self, prefix: &str) -> Option<&str> {
        self.namespaces
            .iter()
            .rev()
            .find(|(p, _)| p == prefix)
            .map(|(_, iri)| iri.as_str())
            .or_else(|| default_namespace(prefix))
    }

    /// Adds a namespace unless the prefix is already bound to the same IRI.
    pub fn bind_namespace(&mut self, prefix: &str, iri: &str) {
        if self.namespace(prefix) != Some(iri) {
            self.namespaces.push((prefix.to_string(), iri.to_string()));
        }
    }
}

/// Prefixes the EPCIS 2.0 JSON-LD context defines.
pub fn default_namespace(prefix: &str) -> Option<&'static str> {
    match prefix {
        "cbvmda" => Some("urn:epcglobal:cbv:mda:"),
        "gs1" => Some("https://gs1.org/voc/"),
        "epcis" => Some("https://ref.gs1.org/epcis/"),
        "cbv" => Some("https://ref.gs1.org/cbv/"),
        "xsd" => Some("http://www.w3.org/2001/XMLSchema#"),
        "rdfs" => Some("http://www.w3.org/2000/01/rdf-schema#"),
        "owl" => Some("http://www.w3.org/2002/07/owl#"),
        "dcterms" => Some("http://purl.org/dc/terms/"),
        "sh" => Some("http://www.w3.org/ns/shacl#"),
        "schema" => Some("http://schema.org/"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::Decimal;

    #[test]
    fn decimal_canonical() {
        let canon = |t: &str| Decimal::parse(t).map(|d| d.to_string());
        assert_eq!(canon("26.0").as_deref(), Some("26"));
        assert_eq!(canon("26.20").as_deref(), Some("26.2"));
        assert_eq!(canon("0.1").as_deref(), Some("0.1"));
        assert_eq!(canon("1e-7").as_deref(), Some("0.0000001"));
        assert_eq!(canon("1.5E3").as_deref(), Some("1500"));
        assert_eq!(canon("-0.0").as_deref(), Some("0"));
        assert_eq!(canon("007").as_deref(), Some("7"));
        assert_eq!(canon("abc"), None);
        assert_eq!(canon("."), None);
    }
}
