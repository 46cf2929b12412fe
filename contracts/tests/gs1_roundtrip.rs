//! Round trips over generated valid data: bracketed ↔ FNC1 ↔ scan data ↔ Digital Link ↔ EPC URN.
#![allow(clippy::unwrap_used)]

use pharmalink_contracts::gs1::check::gs1_check_digit;
use pharmalink_contracts::gs1::dl::{generate_dl_uri, parse_dl_uri, DlOptions};
use pharmalink_contracts::gs1::element::{parse_bracketed, parse_fnc1_notation, parse_unbracketed};
use pharmalink_contracts::gs1::epc::EpcId;
use pharmalink_contracts::gs1::scan::{
    generate_scan_data, process_scan_data, ScanOptions, Symbology,
};
use proptest::prelude::*;

/// CSET 82 characters, including ones that need escaping in URIs and EPC URNs.
const CSET82: &str =
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

fn cset82_text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        proptest::sample::select(CSET82.chars().collect::<Vec<_>>()),
        1..=max,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn gtin() -> impl Strategy<Value = String> {
    "[0-9]{13}".prop_map(|payload| format!("{payload}{}", gs1_check_digit(&payload).unwrap()))
}

fn expiry() -> impl Strategy<Value = String> {
    (0u32..100, 1u32..=12, 0u32..=28).prop_map(|(y, m, d)| format!("{y:02}{m:02}{d:02}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn element_string_forms_agree(gtin in gtin(), expiry in expiry(), lot in cset82_text(20), serial in cset82_text(20)) {
        let bracketed = format!("(01){gtin}(17){expiry}(10){}(21){}", lot.replace('(', "\\("), serial.replace('(', "\\("));
        let parsed = parse_bracketed(&bracketed).unwrap();
        prop_assert!(parsed.validate_pairings().is_ok());
        prop_assert_eq!(parsed.get("10"), Some(lot.as_str()));
        prop_assert_eq!(parsed.get("21"), Some(serial.as_str()));
        prop_assert_eq!(&parse_bracketed(&parsed.to_bracketed()).unwrap(), &parsed);
        prop_assert_eq!(&parse_fnc1_notation(&parsed.to_fnc1_notation()).unwrap(), &parsed);
        prop_assert_eq!(&parse_unbracketed(&parsed.to_gs_separated(), 0x1d).unwrap(), &parsed);
        let scan = generate_scan_data(Symbology::Dm, &parsed.to_fnc1_notation(), ScanOptions::default()).unwrap();
        prop_assert!(scan.starts_with("]d2"));
        let processed = process_scan_data(&scan).unwrap();
        prop_assert_eq!(processed.elements.as_ref(), Some(&parsed));
        prop_assert_eq!(processed.data, parsed.to_fnc1_notation());
    }

    #[test]
    fn digital_link_round_trip(gtin in gtin(), expiry in expiry(), lot in cset82_text(20), serial in cset82_text(20), host in "[a-z]{1,10}\\.example") {
        let parsed = parse_bracketed(&format!("(01){gtin}(17){expiry}(10){}(21){}", lot.replace('(', "\\("), serial.replace('(', "\\("))).unwrap();
        let stem = format!("https://{host}");
        let uri = generate_dl_uri(&parsed, Some(&stem)).unwrap();
        prop_assert!(uri.starts_with(&format!("{stem}/01/{gtin}/10/")), "{}", uri);
        let again = parse_dl_uri(&uri, &DlOptions::default()).unwrap();
        // The URI puts key qualifiers (10, 21) in the path before the attribute (17).
        prop_assert_eq!(again.get("01"), Some(gtin.as_str()));
        prop_assert_eq!(again.get("10"), Some(lot.as_str()));
        prop_assert_eq!(again.get("21"), Some(serial.as_str()));
        prop_assert_eq!(again.get("17"), Some(expiry.as_str()));
        prop_assert_eq!(again.elements.len(), 4);
    }

    #[test]
    fn sgtin_urn_round_trip(gtin in gtin(), serial in cset82_text(20), prefix_length in 6usize..=12) {
        let epc = EpcId::sgtin(&gtin, &serial, prefix_length).unwrap();
        let urn = epc.to_urn();
        prop_assert_eq!(&EpcId::parse_urn(&urn).unwrap(), &epc);
        let dl = epc.to_digital_link();
        prop_assert_eq!(&EpcId::from_digital_link(&dl, prefix_length).unwrap(), &epc);
        prop_assert_eq!(pharmalink_contracts::gs1::epc::canonical_digital_link(&urn), Some(dl));
    }
}
