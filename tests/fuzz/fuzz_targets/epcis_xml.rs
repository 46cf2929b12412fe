//! The EPCIS XML reader (2.0 and 1.2) must never panic; an accepted document must write as XML
//! and re-read to the same event hash IDs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pharmalink_contracts::epcis::xml::{read_xml, write_xml};
use pharmalink_contracts::epcis::{capture, document_hash_ids};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(document) = read_xml(&text) {
        let again = read_xml(&write_xml(&document)).expect("written XML re-reads");
        assert_eq!(document_hash_ids(&again), document_hash_ids(&document));
    }
    let _ = capture(&text);
});
