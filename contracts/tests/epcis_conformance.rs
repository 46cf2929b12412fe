//! Conformance over every EPCIS example in shared/data/gs1: each positive example parses,
//! validates, and round-trips JSON-LD → model → JSON-LD (and → XML → model) without loss of
//! meaning (same model, same event hash IDs); each negative example is rejected for the right
//! reason at the right event and field.
#![allow(clippy::unwrap_used)]

use pharmalink_contracts::epcis::json::write_json_ld;
use pharmalink_contracts::epcis::validate::validate_document;
use pharmalink_contracts::epcis::xml::write_xml;
use pharmalink_contracts::epcis::{
    capture, document_hash_ids, read_document, read_json_ld, EpcisDocument, EpcisError,
};

/// The shared test material, found from the crate directory at run time (a test binary reused
/// from a relocated checkout would otherwise keep the compile-time path).
fn data_dir() -> String {
    let manifest = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    format!("{manifest}/../../shared/data/gs1")
}

const POSITIVE: &[&str] = &[
    "Example_9.6.1-ObjectEvent.jsonld",
    "Example_9.6.2-ObjectEvent.jsonld",
    "Example_9.6.3-AggregationEvent.jsonld",
    "Example_9.6.4-TransformationEvent.jsonld",
    "AssociationEvent-a.jsonld",
    "Example_9.6.1-ObjectEventWithDigitalLink.jsonld",
    "ErrorDeclarationAndCorrectiveEvent.jsonld",
    "SensorDataExample1.jsonld",
    "PersistentDisposition-example.jsonld",
    "EPCISQueryDocument.jsonld",
    "object_event_all_possible_fields.jsonld",
    "ObjectEvent_all_possible_fields.json",
    "Combination_of_different_event.json",
    "ReferenceEventHashAlgorithm.jsonld",
    "epcisDocWithVariousEventTypes.jsonld",
    "object_event_all_possible_fields.xml",
    "GS1_US_Pharma_Example_2_2_1_1.xml",
];

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{}/{name}", data_dir()))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn parse(name: &str) -> EpcisDocument {
    read_document(&read(name)).unwrap_or_else(|errors| panic!("{name}: {}", render(&errors)))
}

fn render(errors: &[EpcisError]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Problems PharmaLink finds in the published "valid" examples. Each is a real defect of the
/// example, kept here so the test fails if validation stops finding it or finds anything else.
const KNOWN_DEFECTS: &[(&str, &str)] = &[
    // GRAI 0 3001345000771 8765: the check digit of 300134500077 is 0, not 1.
    ("Combination_of_different_event.json", "event 0: /epcisBody/eventList/0/epcList/0: invalid GS1 Digital Link URI: (8003): check digit: incorrect check digit"),
];

#[test]
fn every_example_parses_and_validates() {
    let mut found = Vec::new();
    for name in POSITIVE {
        let document = parse(name);
        assert!(!document.events.is_empty(), "{name}: no events");
        for error in validate_document(&document) {
            found.push((name.to_string(), error.to_string()));
        }
    }
    let expected: Vec<(String, String)> = KNOWN_DEFECTS
        .iter()
        .map(|(n, e)| (n.to_string(), e.to_string()))
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn json_ld_round_trip_keeps_meaning() {
    for name in POSITIVE {
        let document = parse(name);
        let written = write_json_ld(&document).to_string();
        let again = read_json_ld(&written)
            .unwrap_or_else(|errors| panic!("{name} re-read: {}", render(&errors)));
        assert_eq!(
            again.events, document.events,
            "{name}: events changed in JSON-LD round trip"
        );
        assert_eq!(
            document_hash_ids(&again),
            document_hash_ids(&document),
            "{name}: hashes changed"
        );
        assert_eq!(again.header, document.header, "{name}: header changed");
        // Writing is stable: model → JSON-LD → model → JSON-LD gives the same JSON.
        assert_eq!(
            write_json_ld(&again).to_string(),
            written,
            "{name}: JSON-LD writing not stable"
        );
    }
}

#[test]
fn xml_round_trip_keeps_meaning() {
    for name in POSITIVE {
        let document = parse(name);
        let xml = write_xml(&document);
        let again = read_document(&xml)
            .unwrap_or_else(|errors| panic!("{name} XML re-read: {}\n{xml}", render(&errors)));
        assert_eq!(
            document_hash_ids(&again),
            document_hash_ids(&document),
            "{name}: hashes changed through XML"
        );
        assert_eq!(again.events.len(), document.events.len());
        assert_eq!(
            again.header, document.header,
            "{name}: header changed through XML"
        );
    }
}

#[test]
fn dscsa_example_reads_with_master_data_and_statement() {
    let document = parse("GS1_US_Pharma_Example_2_2_1_1.xml");
    assert_eq!(document.schema_version, "1.2");
    let first = &document.events[0];
    assert_eq!(first.epc_list.len(), 12);
    assert_eq!(first.ilmd_lot(), Some("A123"));
    assert_eq!(first.ilmd_expiry(), Some("2025-03-27"));
    let header = document.header.as_ref().expect("header");
    let statement = header
        .transaction_statement
        .as_ref()
        .expect("transaction statement");
    assert!(statement.affirm_transaction_statement);
    assert!(statement
        .legal_notice
        .as_deref()
        .is_some_and(|n| n.contains("581(27)")));
    assert_eq!(
        header.sender.as_deref(),
        Some("urn:epc:id:sgln:030001.111111.0")
    );
    let classes = header
        .master_data
        .iter()
        .find(|v| v.vocabulary_type.ends_with("EPCClass"))
        .expect("EPCClass master data");
    let ndc = classes.elements[0]
        .attributes
        .iter()
        .find(|(id, _)| id.ends_with("#additionalTradeItemIdentification"));
    assert!(ndc.is_some(), "NDC attribute");
    let shipping = document
        .events
        .iter()
        .find(|e| {
            e.biz_step
                .as_deref()
                .is_some_and(|s| s.ends_with("shipping"))
        })
        .expect("shipping event");
    assert!(shipping
        .biz_transaction_list
        .iter()
        .any(|t| t.kind.as_deref().is_some_and(|k| k.ends_with("po"))));
    let ids = capture(&read("GS1_US_Pharma_Example_2_2_1_1.xml"))
        .expect("capture")
        .event_ids;
    assert_eq!(ids.len(), document.events.len());
}

fn rejected(name: &str) -> Vec<EpcisError> {
    match capture(&read(name)) {
        Ok(_) => panic!("{name} was accepted"),
        Err(errors) => errors,
    }
}

fn has(errors: &[EpcisError], event: usize, pointer_end: &str, reason_part: &str) -> bool {
    errors.iter().any(|e| {
        e.event_index == Some(event)
            && e.pointer.ends_with(pointer_end)
            && e.reason.contains(reason_part)
    })
}

#[test]
fn invalid_action_is_rejected() {
    let errors = rejected("ObjectEvent_with_invalid_action.json");
    assert!(has(&errors, 0, "/action", "CREATE"), "{}", render(&errors));
}

#[test]
fn missing_action_and_event_time_are_rejected() {
    // One pass lists every problem: the reader's missing fields and the action rule.
    let errors = rejected("ObjectEvent_without_action_and_eventTime.json");
    assert!(
        has(&errors, 0, "/eventTime", "required"),
        "{}",
        render(&errors)
    );
    assert!(
        has(&errors, 0, "/eventTimeZoneOffset", "required"),
        "{}",
        render(&errors)
    );
    assert!(
        has(&errors, 0, "/action", "required"),
        "{}",
        render(&errors)
    );
    assert_eq!(errors.len(), 3, "{}", render(&errors));
}

#[test]
fn non_standard_vocabulary_is_rejected() {
    let errors = rejected("Combination_of_non_standard_bizStep_and_disposition.json");
    assert!(
        has(&errors, 0, "/bizStep", "transforming"),
        "{}",
        render(&errors)
    );
    assert!(
        has(&errors, 1, "/disposition", "in_transport"),
        "{}",
        render(&errors)
    );
}

#[test]
fn hash_is_identity_and_capture_is_idempotent() {
    let text = read("Example_9.6.1-ObjectEvent.jsonld");
    let first = capture(&text).expect("capture").event_ids;
    assert_eq!(capture(&text).expect("capture").event_ids, first);
    let mut document = parse("Example_9.6.1-ObjectEvent.jsonld");
    document.events[0].epc_list.reverse();
    assert_eq!(
        document_hash_ids(&document)[0],
        first[0],
        "order of epcList is not meaning"
    );
    document.events[0].epc_list[0].push('9');
    assert_ne!(
        document_hash_ids(&document)[0],
        first[0],
        "a different EPC is a different event"
    );
}

#[test]
fn bad_identifiers_are_rejected_with_field() {
    let mut value: serde_json::Value =
        serde_json::from_str(&read("Example_9.6.1-ObjectEvent.jsonld")).unwrap();
    value["epcisBody"]["eventList"][1]["epcList"][0] =
        "https://id.gs1.org/01/00300010123454/21/1".into();
    let errors = capture(&value.to_string()).expect_err("bad check digit");
    assert!(
        has(&errors, 1, "/epcList/0", "check digit"),
        "{}",
        render(&errors)
    );
}
