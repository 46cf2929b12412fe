//! Prescription checks (issue 8, first part; pure): prescriber identifiers and the sig parser.
//!
//! - [`check_npi`]: a National Provider Identifier is 10 digits whose last is the Luhn check
//!   digit of `80840` followed by the first nine (CMS NPI standard).
//! - [`check_dea`]: a DEA registration number is two letters and seven digits; the first letter
//!   is the registrant type, the second the initial of the registrant's last name (or `9` for
//!   some business registrants); the seventh digit is the last digit of
//!   `(d1 + d3 + d5) + 2 × (d2 + d4 + d6)`.
//! - [`sig::parse`]: directions ("1 tab po bid x 30 days", "2 puffs q4-6h prn") to dose, route,
//!   frequency and duration, and [`sig::days_supply`]. Quantities are in thousandths (no floats
//!   in the model).

pub mod fraud;
pub mod sig;

use crate::contract::types::{ensure, Rejection};

/// Rule `rx.npi`: 10 digits, Luhn check over the `80840` prefix.
pub fn check_npi(npi: &str) -> Result<(), Rejection> {
    ensure(
        npi.len() == 10 && npi.bytes().all(|b| b.is_ascii_digit()),
        "rx.npi.format",
        || format!("NPI {npi:?} is not 10 digits"),
    )?;
    let digits: Vec<u32> = format!("80840{}", &npi[..9])
        .bytes()
        .map(|b| u32::from(b - b'0'))
        .collect();
    // Luhn: double every second digit from the right of the payload (the check digit is
    // appended on the right).
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 0 {
                let doubled = d * 2;
                doubled / 10 + doubled % 10
            } else {
                *d
            }
        })
        .sum();
    let check = (10 - sum % 10) % 10;
    ensure(
        u32::from(npi.as_bytes()[9] - b'0') == check,
        "rx.npi.check_digit",
        || format!("NPI {npi}: check digit should be {check}"),
    )
}

/// DEA registrant types (first letter).
const DEA_TYPES: &[u8] = b"ABCDEFGHJKLMPRSTUX";

/// Rule `rx.dea`: format, registrant type, last-name initial (when given) and checksum.
pub fn check_dea(dea: &str, last_name: Option<&str>) -> Result<(), Rejection> {
    let bytes = dea.as_bytes();
    ensure(
        bytes.len() == 9
            && bytes[0].is_ascii_uppercase()
            && (bytes[1].is_ascii_uppercase() || bytes[1] == b'9')
            && bytes[2..].iter().all(u8::is_ascii_digit),
        "rx.dea.format",
        || format!("DEA number {dea:?} is not two letters and seven digits"),
    )?;
    ensure(
        DEA_TYPES.contains(&bytes[0]),
        "rx.dea.registrant_type",
        || {
            format!(
                "DEA number {dea}: {:?} is not a registrant type",
                bytes[0] as char
            )
        },
    )?;
    if let Some(name) = last_name.and_then(|n| n.trim().chars().next()) {
        ensure(
            bytes[1] == b'9' || bytes[1] == name.to_ascii_uppercase() as u8,
            "rx.dea.last_name",
            || format!("DEA number {dea} does not match the prescriber's last name {name}…"),
        )?;
    }
    let d: Vec<u32> = bytes[2..].iter().map(|b| u32::from(b - b'0')).collect();
    let check = (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10;
    ensure(d[6] == check, "rx.dea.checksum", || {
        format!("DEA number {dea}: check digit should be {check}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npi_luhn_with_the_80840_prefix() {
        // CMS's worked example: 123456789 → check digit 3.
        check_npi("1234567893").unwrap();
        assert_eq!(
            check_npi("1234567890").unwrap_err().code,
            "rx.npi.check_digit"
        );
        assert_eq!(check_npi("12345").unwrap_err().code, "rx.npi.format");
        assert_eq!(check_npi("12345678a3").unwrap_err().code, "rx.npi.format");
    }

    #[test]
    fn dea_checksum_type_and_name() {
        // (1 + 3 + 5) + 2 × (2 + 4 + 6) = 33 → check digit 3.
        check_dea("AB1234563", Some("Brown")).unwrap();
        check_dea("AB1234563", None).unwrap();
        assert_eq!(
            check_dea("AB1234564", None).unwrap_err().code,
            "rx.dea.checksum"
        );
        assert_eq!(
            check_dea("AB1234563", Some("Smith")).unwrap_err().code,
            "rx.dea.last_name"
        );
        assert_eq!(
            check_dea("IB1234563", None).unwrap_err().code,
            "rx.dea.registrant_type"
        );
        assert_eq!(
            check_dea("A1234563", None).unwrap_err().code,
            "rx.dea.format"
        );
        check_dea("F91234563", Some("Acme")).unwrap();
    }
}
