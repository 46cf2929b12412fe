//! A fixed, deterministic workload for the `pharmalink gs1 bench` figure: DSCSA product
//! identifiers in the forms scanners deliver (bracketed, GS1 DataMatrix scan data, FNC1).

use super::check::gs1_check_digit;

/// `count` distinct element strings: GTIN + expiry + lot + serial, rotating through forms.
pub fn element_strings(count: usize) -> Vec<String> {
    (0..count)
        .map(|index| {
            let payload = format!("0030001{:06}", index % 1_000_000);
            let gtin = format!("{payload}{}", gs1_check_digit(&payload).unwrap_or(0));
            let expiry = format!("{:02}{:02}00", 26 + index % 5, 1 + index % 12);
            let lot = format!("L{:05}", index % 9973);
            let serial = format!("S{:012}", index);
            match index % 3 {
                0 => format!("(01){gtin}(17){expiry}(10){lot}(21){serial}"),
                1 => format!("]d201{gtin}17{expiry}10{lot}\u{1d}21{serial}"),
                _ => format!("^01{gtin}17{expiry}10{lot}^21{serial}"),
            }
        })
        .collect()
}

/// Parses every string fully (syntax, check digits, linters, pairing rules); returns how many
/// elements were read, so the work cannot be optimised away.
pub fn parse_all(inputs: &[String]) -> usize {
    inputs
        .iter()
        .map(|input| {
            super::summary::parse_elements(input)
                .and_then(|elements| {
                    elements
                        .validate_pairings()
                        .map(|()| elements.elements.len())
                })
                .unwrap_or(0)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn workload_is_valid() {
        let inputs = super::element_strings(30);
        assert_eq!(super::parse_all(&inputs), 120);
    }
}
