//! Random input never panics any parser (the fuzz targets in tests/fuzz go further).
#![allow(clippy::unwrap_used)]

use pharmalink_contracts::gs1::dl::{parse_dl_uri, DlOptions};
use pharmalink_contracts::gs1::element::{parse_bracketed, parse_fnc1_notation};
use pharmalink_contracts::gs1::epc::{canonical_digital_link, EpcId};
use pharmalink_contracts::gs1::parse_any;
use pharmalink_contracts::gs1::scan::process_scan_data;
use proptest::prelude::*;

fn gs1ish() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("(".to_string()),
            Just(")".to_string()),
            Just("^".to_string()),
            Just("\u{1d}".to_string()),
            Just("]d2".to_string()),
            Just("]Q1".to_string()),
            Just("]E0".to_string()),
            Just("|]e0".to_string()),
            Just("https://a/".to_string()),
            Just("/01/".to_string()),
            Just("?17=".to_string()),
            Just("&".to_string()),
            Just("%".to_string()),
            Just("urn:epc:id:sgtin:".to_string()),
            "[0-9]{1,18}",
            "[A-Za-z%/.+\\\\]{1,5}",
            any::<char>().prop_map(|c| c.to_string()),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

fn exercise(text: &str) {
    let _ = parse_bracketed(text);
    let _ = parse_fnc1_notation(text);
    let _ = process_scan_data(text);
    let _ = parse_dl_uri(text, &DlOptions::default());
    let _ = parse_dl_uri(
        text,
        &DlOptions {
            permit_zero_suppressed_gtin: true,
            permit_convenience_alphas: true,
        },
    );
    let _ = parse_any(text, 2026);
    let _ = EpcId::parse_urn(text);
    let _ = canonical_digital_link(text);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn gs1_parsers_never_panic_on_structured_noise(text in gs1ish()) {
        exercise(&text);
    }

    #[test]
    fn gs1_parsers_never_panic_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        exercise(&String::from_utf8_lossy(&bytes));
    }
}

fn epcis_noise() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("{".to_string()),
            Just("}".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just(",".to_string()),
            Just(":".to_string()),
            Just("\"type\"".to_string()),
            Just("\"EPCISDocument\"".to_string()),
            Just("\"epcisBody\"".to_string()),
            Just("\"eventList\"".to_string()),
            Just("\"ObjectEvent\"".to_string()),
            Just("\"epcList\"".to_string()),
            Just("\"action\"".to_string()),
            Just("\"ADD\"".to_string()),
            Just("\"eventTime\"".to_string()),
            Just("\"2026-01-01T00:00:00Z\"".to_string()),
            Just("\"urn:epc:id:sgtin:030001.0012345.1\"".to_string()),
            Just("\"quantityList\"".to_string()),
            Just("1.5e3".to_string()),
            Just("<EventList>".to_string()),
            Just("</EventList>".to_string()),
            Just("<epcis:EPCISDocument xmlns:epcis=\"urn:epcglobal:epcis:xsd:2\">".to_string()),
            Just("<ObjectEvent>".to_string()),
            Just("<EPCISBody>".to_string()),
            "[a-z:\"]{1,6}",
            any::<char>().prop_map(|c| c.to_string()),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

fn exercise_epcis(text: &str) {
    use pharmalink_contracts::epcis;
    let _ = epcis::capture(text);
    let _ = epcis::hash_ids(text);
    let _ = epcis::convert(text, epcis::Binding::Xml);
    let _ = epcis::convert(text, epcis::Binding::JsonLd);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn epcis_readers_never_panic_on_structured_noise(text in epcis_noise()) {
        exercise_epcis(&text);
    }

    #[test]
    fn epcis_readers_never_panic_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        exercise_epcis(&String::from_utf8_lossy(&bytes));
    }

    /// Mutating one character of a valid document never panics, and whatever is accepted
    /// still converts and hashes.
    #[test]
    fn epcis_mutated_documents_never_panic(position in 0usize..4000, replacement in any::<char>()) {
        let text = pharmalink_contracts::epcis::workload::json_document(3);
        let mut chars: Vec<char> = text.chars().collect();
        let index = position % chars.len();
        chars[index] = replacement;
        let mutated: String = chars.into_iter().collect();
        exercise_epcis(&mutated);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// The same for the XML binding.
    #[test]
    fn epcis_mutated_xml_never_panics(position in 0usize..4000, replacement in any::<char>()) {
        use pharmalink_contracts::epcis;
        let json = epcis::workload::json_document(2);
        let xml = epcis::convert(&json, epcis::Binding::Xml).expect("workload converts");
        let mut chars: Vec<char> = xml.chars().collect();
        let index = position % chars.len();
        chars[index] = replacement;
        let mutated: String = chars.into_iter().collect();
        exercise_epcis(&mutated);
    }
}
