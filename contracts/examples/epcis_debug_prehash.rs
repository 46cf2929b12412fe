//! Prints the pre-hash strings of an EPCIS document (JSON-LD or XML), and of its XML
//! conversion: a debugging aid for the CBV 2.0 event hash.
//! Usage: cargo run -p pharmalink-contracts --example epcis_debug_prehash FILE

use pharmalink_contracts::epcis::{pre_hash_string, read_document, xml::write_xml};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: epcis_debug_prehash FILE")?;
    let text = std::fs::read_to_string(path)?;
    let document = read_document(&text).map_err(|e| format!("{e:?}"))?;
    for event in &document.events {
        println!("{}", pre_hash_string(&document, event));
    }
    let again = read_document(&write_xml(&document)).map_err(|e| format!("{e:?}"))?;
    println!("--- via XML");
    for event in &again.events {
        println!("{}", pre_hash_string(&again, event));
    }
    Ok(())
}
