//! Validation rules beyond the JSON schema, one sentence each: given an event, when a field
//! is changed, then capture fails naming the event, the field and the rule (or succeeds).
#![allow(clippy::unwrap_used)]

use pharmalink_contracts::epcis::{capture, document_hash_ids, read_json_ld, EpcisError};
use serde_json::{json, Value};

fn document(events: Vec<Value>) -> String {
    json!({
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", {"cbvmda": "urn:epcglobal:cbv:mda:"}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-03-01T00:00:00Z",
        "epcisBody": {"eventList": events}
    })
    .to_string()
}

fn commissioning() -> Value {
    json!({
        "type": "ObjectEvent",
        "eventTime": "2026-03-01T06:45:16-05:00",
        "eventTimeZoneOffset": "-05:00",
        "epcList": ["urn:epc:id:sgtin:030001.0012345.11"],
        "action": "ADD",
        "bizStep": "commissioning",
        "disposition": "active",
        "readPoint": {"id": "urn:epc:id:sgln:030001.111111.0"},
        "ilmd": {"cbvmda:lotNumber": "A123", "cbvmda:itemExpirationDate": "2028-03-31"}
    })
}

fn packing() -> Value {
    json!({
        "type": "AggregationEvent",
        "eventTime": "2026-03-01T06:50:16-05:00",
        "eventTimeZoneOffset": "-05:00",
        "parentID": "urn:epc:id:sscc:030001.41234567890",
        "childEPCs": ["urn:epc:id:sgtin:030001.0012345.11"],
        "action": "ADD",
        "bizStep": "packing"
    })
}

fn errors_of(event: Value) -> Vec<EpcisError> {
    capture(&document(vec![commissioning(), event]))
        .err()
        .unwrap_or_default()
}

fn expect_error(event: Value, pointer_end: &str, reason_part: &str) {
    let errors = errors_of(event);
    assert!(
        errors.iter().any(|e| e.event_index == Some(1)
            && e.pointer.ends_with(pointer_end)
            && e.reason.contains(reason_part)),
        "expected event 1 {pointer_end} ~ {reason_part:?}, got {errors:?}"
    );
}

fn with(mut event: Value, key: &str, value: Value) -> Value {
    event[key] = value;
    event
}

fn without(mut event: Value, key: &str) -> Value {
    event.as_object_mut().unwrap().remove(key);
    event
}

#[test]
fn valid_dscsa_events_are_accepted() {
    let accepted = capture(&document(vec![commissioning(), packing()])).unwrap();
    assert_eq!(accepted.event_ids.len(), 2);
    assert_eq!(accepted.document.events[0].ilmd_lot(), Some("A123"));
}

#[test]
fn ilmd_only_with_add() {
    let event = with(
        with(commissioning(), "action", json!("OBSERVE")),
        "bizStep",
        json!("inspecting"),
    );
    expect_error(event, "/ilmd", "only allowed with action ADD");
}

#[test]
fn commissioning_means_add() {
    let event = without(with(commissioning(), "action", json!("DELETE")), "ilmd");
    expect_error(event, "/action", "commissioning requires action ADD");
}

#[test]
fn aggregation_add_needs_parent_and_children() {
    expect_error(
        without(packing(), "parentID"),
        "/parentID",
        "required with action ADD",
    );
    expect_error(
        without(packing(), "childEPCs"),
        "/childEPCs",
        "needs childEPCs",
    );
    expect_error(
        with(
            packing(),
            "epcList",
            json!(["urn:epc:id:sgtin:030001.0012345.12"]),
        ),
        "/epcList",
        "does not belong",
    );
}

#[test]
fn transaction_needs_a_business_transaction() {
    let event = json!({
        "type": "TransactionEvent", "eventTime": "2026-03-02T00:00:00Z", "eventTimeZoneOffset": "+00:00",
        "epcList": ["urn:epc:id:sscc:030001.41234567890"], "action": "ADD", "bizStep": "shipping"
    });
    expect_error(
        event.clone(),
        "/bizTransactionList",
        "at least one bizTransaction",
    );
    let fixed = with(
        event,
        "bizTransactionList",
        json!([{"type": "po", "bizTransaction": "urn:epcglobal:cbv:bt:0399999999991:PO1"}]),
    );
    assert!(errors_of(fixed).is_empty());
}

#[test]
fn transformation_has_no_action_and_needs_inputs_and_outputs() {
    let event = json!({
        "type": "TransformationEvent", "eventTime": "2026-03-02T00:00:00Z", "eventTimeZoneOffset": "+00:00",
        "inputEPCList": ["urn:epc:id:sgtin:030001.0012345.11"], "outputEPCList": ["urn:epc:id:sgtin:030001.0012345.12"]
    });
    assert!(errors_of(event.clone()).is_empty());
    expect_error(
        with(event.clone(), "action", json!("ADD")),
        "/action",
        "no action",
    );
    expect_error(
        without(event, "outputEPCList"),
        "/outputEPCList",
        "both inputs and outputs",
    );
}

#[test]
fn vocabularies_and_identifiers_are_checked() {
    expect_error(
        with(packing(), "disposition", json!("in_transport")),
        "/disposition",
        "not a CBV 2.0 disposition",
    );
    expect_error(
        with(
            packing(),
            "sourceList",
            json!([{"type": "owner", "source": "urn:epc:id:pgln:030001.111111"}]),
        ),
        "/sourceList/0/type",
        "owner",
    );
    expect_error(
        with(
            packing(),
            "parentID",
            json!("urn:epc:id:sscc:030001.4123456789"),
        ),
        "/parentID",
        "17 digits",
    );
    expect_error(
        with(
            packing(),
            "childEPCs",
            json!(["https://id.gs1.org/01/00300010123454/21/1"]),
        ),
        "/childEPCs/0",
        "check digit",
    );
    expect_error(
        with(packing(), "eventTimeZoneOffset", json!("-0500")),
        "/eventTimeZoneOffset",
        "±HH:MM",
    );
    expect_error(
        with(packing(), "eventTime", json!("2026-02-30T00:00:00Z")),
        "/eventTime",
        "not a date-time",
    );
}

#[test]
fn dscsa_expiry_must_be_a_date() {
    let mut event = commissioning();
    event["ilmd"]["cbvmda:itemExpirationDate"] = json!("2028-02-30");
    expect_error(event, "/ilmd/cbvmda:itemExpirationDate", "not a date");
}

#[test]
fn every_problem_is_listed_not_just_the_first() {
    let event = with(
        with(packing(), "disposition", json!("lost")),
        "bizStep",
        json!("wandering"),
    );
    let errors = errors_of(event);
    assert!(errors.len() >= 2, "{errors:?}");
}

#[test]
fn bare_words_urns_and_web_uris_are_one_value() {
    let forms = [
        "shipping",
        "urn:epcglobal:cbv:bizstep:shipping",
        "https://ref.gs1.org/cbv/BizStep-shipping",
    ];
    let hashes: Vec<String> = forms
        .iter()
        .map(|form| {
            let event = with(
                with(without(commissioning(), "ilmd"), "action", json!("OBSERVE")),
                "bizStep",
                json!(form),
            );
            let text = document(vec![event]);
            assert!(capture(&text).is_ok(), "{form}");
            document_hash_ids(&read_json_ld(&text).unwrap()).remove(0)
        })
        .collect();
    assert!(
        hashes.windows(2).all(|pair| pair[0] == pair[1]),
        "{hashes:?}"
    );
}

#[test]
fn record_time_and_event_id_do_not_change_identity() {
    let plain = document(vec![commissioning()]);
    let mut stamped_event = commissioning();
    stamped_event["recordTime"] = json!("2026-03-05T00:00:00Z");
    stamped_event["eventID"] = json!("urn:uuid:8d1c2f2a-0000-4000-8000-000000000001");
    let stamped = document(vec![stamped_event]);
    assert_eq!(
        capture(&plain).unwrap().event_ids,
        capture(&stamped).unwrap().event_ids
    );
}

#[test]
fn epc_urn_and_digital_link_name_the_same_item() {
    let urn = document(vec![commissioning()]);
    let mut dl_event = commissioning();
    dl_event["epcList"] = json!(["https://brand.example/01/00300010123455/21/11"]);
    let dl = document(vec![dl_event]);
    assert_eq!(
        capture(&urn).unwrap().event_ids,
        capture(&dl).unwrap().event_ids
    );
}

#[test]
fn dscsa_header_written_from_a_bare_model_binds_its_namespaces() {
    use pharmalink_contracts::epcis::json::write_json_ld;
    use pharmalink_contracts::epcis::model::{Header, TransactionStatement};
    let mut parsed = read_json_ld(&document(vec![commissioning()])).unwrap();
    parsed.header = Some(Header {
        transaction_statement: Some(TransactionStatement {
            affirm_transaction_statement: true,
            legal_notice: None,
        }),
        sender: Some("urn:epc:id:sgln:030001.111111.0".to_string()),
        ..Header::default()
    });
    let written = write_json_ld(&parsed);
    let context = written["@context"].to_string();
    assert!(
        context.contains("http://epcis.gs1us.org/hc/ns")
            && context.contains("StandardBusinessDocumentHeader"),
        "{context}"
    );
    let again = read_json_ld(&written.to_string()).unwrap();
    assert_eq!(again.header, parsed.header);
}

/// Found by the epcis_json fuzz target: a number with more digits than f64 holds must write
/// back to the same number (serde_json float_roundtrip + correctly rounded output).
#[test]
fn long_numbers_round_trip_through_json_ld() {
    use pharmalink_contracts::epcis::json::write_json_ld;
    let mut event = without(with(commissioning(), "action", json!("OBSERVE")), "ilmd");
    event["bizStep"] = json!("sensor_reporting");
    let text = document(vec![event]).replace(
        "\"bizStep\"",
        "\"sensorElementList\":[{\"sensorReport\":[{\"type\":\"Speed\",\"uom\":\"KMH\",\"value\":16077777777777777777777777777777777777.0}]}],\"bizStep\"",
    );
    let first = read_json_ld(&text).unwrap();
    let second = read_json_ld(&write_json_ld(&first).to_string()).unwrap();
    assert_eq!(second.events, first.events);
    assert_eq!(document_hash_ids(&second), document_hash_ids(&first));
}
