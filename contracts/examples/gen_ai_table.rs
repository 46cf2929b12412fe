//! Regenerates contracts/src/gs1/ai_table_generated.rs from the GS1 Barcode Syntax Dictionary.
//! Usage: cargo run -p pharmalink-contracts --example gen_ai_table [DICTIONARY] [OUTPUT]

use pharmalink_contracts::gs1::dictionary::{parse_dictionary, render_table};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = env!("CARGO_MANIFEST_DIR");
    let mut args = std::env::args().skip(1);
    let input = args
        .next()
        .unwrap_or_else(|| format!("{manifest}/../../shared/data/gs1/gs1-syntax-dictionary.txt"));
    let output = args
        .next()
        .unwrap_or_else(|| format!("{manifest}/src/gs1/ai_table_generated.rs"));
    let text = std::fs::read_to_string(&input)?;
    let specs = parse_dictionary(&text)?;
    std::fs::write(&output, render_table(&specs))?;
    println!("wrote {} AIs to {output}", specs.len());
    Ok(())
}
