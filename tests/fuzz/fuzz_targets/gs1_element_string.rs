//! Element strings in every form (bracketed, FNC1, scan data) must never panic, and whatever
//! parses must survive a bracketed round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pharmalink_contracts::gs1::element::{parse_bracketed, parse_fnc1_notation};
use pharmalink_contracts::gs1::{parse_any, scan::process_scan_data};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(parsed) = parse_bracketed(&text) {
        let again = parse_bracketed(&parsed.to_bracketed()).expect("bracketed output re-parses");
        assert_eq!(again, parsed);
        let fnc1 = parse_fnc1_notation(&parsed.to_fnc1_notation()).expect("FNC1 output re-parses");
        assert_eq!(fnc1, parsed);
    }
    let _ = parse_fnc1_notation(&text);
    let _ = process_scan_data(&text);
    let _ = parse_any(&text, 2026);
});
