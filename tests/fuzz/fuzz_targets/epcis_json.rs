//! The EPCIS JSON-LD reader must never panic; an accepted document must write, re-read to the
//! same events and hash to the same IDs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pharmalink_contracts::epcis::{capture, document_hash_ids, read_json_ld, write_json_ld};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(document) = read_json_ld(&text) {
        let written = write_json_ld(&document).to_string();
        let again = read_json_ld(&written).expect("written JSON-LD re-reads");
        assert_eq!(again.events, document.events);
        assert_eq!(document_hash_ids(&again), document_hash_ids(&document));
    }
    let _ = capture(&text);
});
