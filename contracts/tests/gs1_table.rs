//! The checked-in AI table must be exactly what the generator makes of the GS1 Barcode Syntax
//! Dictionary. Regenerate with `cargo run -p pharmalink-contracts --example gen_ai_table`.
#![allow(clippy::unwrap_used)]

use pharmalink_contracts::gs1::dictionary::{parse_dictionary, render_table};
use pharmalink_contracts::gs1::table::lookup;

/// Found from the crate directory at run time (a binary reused from a relocated checkout would
/// otherwise keep the compile-time path).
fn dictionary() -> String {
    let manifest = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    format!("{manifest}/../../shared/data/gs1/gs1-syntax-dictionary.txt")
}

#[test]
fn ai_table_matches_dictionary() {
    let text = std::fs::read_to_string(dictionary()).expect("read dictionary");
    let specs = parse_dictionary(&text).expect("dictionary parses");
    let generated = render_table(&specs);
    let checked_in = include_str!("../src/gs1/ai_table_generated.rs");
    assert!(
        generated == checked_in,
        "ai_table_generated.rs is stale: run the gen_ai_table example"
    );
}

#[test]
fn table_has_the_pharma_ais() {
    let gtin = lookup("01").expect("01");
    assert!(!gtin.fnc1_required && gtin.dl_data_attribute);
    assert_eq!(gtin.fixed_length(), Some(14));
    assert_eq!(
        gtin.dl_primary_key,
        Some(&[&["22", "10", "21"][..], &["235"][..]][..])
    );
    let serial = lookup("21").expect("21");
    assert!(serial.fnc1_required && !serial.dl_data_attribute);
    assert_eq!(serial.length_max(), 20);
    assert_eq!(
        serial.requires,
        &[&[&["01"][..], &["03"][..], &["8006"][..]][..]]
    );
    assert!(lookup("17").is_some_and(|e| e.fixed_length() == Some(6)));
    assert!(lookup("3103").is_some() && lookup("3106").is_none());
    assert!(lookup("91").is_some() && lookup("99").is_some() && lookup("89").is_none());
}
