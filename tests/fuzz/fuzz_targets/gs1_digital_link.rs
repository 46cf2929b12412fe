//! Digital Link parsing must never panic; a parsed URI must regenerate to a URI that parses to
//! the same elements (modulo order: key, qualifiers, then attributes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pharmalink_contracts::gs1::dl::{generate_dl_uri, parse_dl_uri, DlOptions};
use pharmalink_contracts::gs1::epc::canonical_digital_link;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let options = DlOptions::default();
    if let Ok(parsed) = parse_dl_uri(&text, &options) {
        if let Ok(uri) = generate_dl_uri(&parsed, None) {
            let again = parse_dl_uri(&uri, &options).expect("generated URI parses");
            let mut left: Vec<_> = parsed.elements.iter().map(|e| (e.ai(), e.value.clone())).collect();
            let mut right: Vec<_> = again.elements.iter().map(|e| (e.ai(), e.value.clone())).collect();
            left.sort();
            right.sort();
            assert_eq!(left, right);
        }
    }
    let _ = canonical_digital_link(&text);
});
