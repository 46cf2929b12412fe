//! Random input never panics any parser (the fuzz targets in tests/fuzz go further).

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
