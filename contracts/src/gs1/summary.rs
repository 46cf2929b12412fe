//! One entry point for any GS1 text a scanner or a person gives us: bracketed element string,
//! FNC1 notation, raw scan data with symbology identifier, GS-separated data, or a Digital
//! Link URI. Used by `pharmalink gs1 parse`.

use serde::Serialize;

use super::date::parse_yymmdd;
use super::dl::{generate_dl_uri, looks_like_dl_uri, parse_dl_uri, DlOptions};
use super::element::{parse_bracketed, parse_fnc1_notation, parse_unbracketed, ElementString};
use super::scan::process_scan_data;
use super::{Gs1Error, Gs1Result};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ElementView {
    pub ai: String,
    pub value: String,
}

/// The parsed form printed by `pharmalink gs1 parse`; absent fields are omitted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Gs1Summary {
    pub elements: Vec<ElementView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gtin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lot: Option<String>,
    /// YYYY-MM-DD; YYMMDD day 00 is the month's last day.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sscc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digital_link: Option<String>,
}

/// Parses any supported GS1 text into AI elements (syntax, check digits, linters).
pub fn parse_elements(text: &str) -> Gs1Result<ElementString> {
    if text.is_empty() {
        return Err(Gs1Error::Syntax("empty input".to_string()));
    }
    if text.starts_with(']') {
        let scan = process_scan_data(text)?;
        return scan.elements.ok_or_else(|| {
            Gs1Error::ScanData(format!(
                "{} message is not GS1 AI data nor a Digital Link URI",
                scan.symbology.name()
            ))
        });
    }
    if text.starts_with('(') {
        return parse_bracketed(text);
    }
    if text.starts_with('^') {
        return parse_fnc1_notation(text);
    }
    if looks_like_dl_uri(text) {
        return parse_dl_uri(text, &DlOptions::default());
    }
    if text.starts_with(|c: char| c.is_ascii_digit() || c == '\u{1d}') {
        return parse_unbracketed(text.trim_start_matches('\u{1d}'), 0x1d);
    }
    Err(Gs1Error::Syntax(
        "input is not a bracketed element string, scan data (]d2…), FNC1 data (^…) nor a Digital Link URI".to_string(),
    ))
}

/// Parses, checks the pairing rules, and summarises. `reference_year` resolves YY of dates
/// (the caller passes the current year; this crate reads no clock).
pub fn parse_any(text: &str, reference_year: u32) -> Gs1Result<Gs1Summary> {
    let elements = parse_elements(text)?;
    elements.validate_pairings()?;
    let expiry = match elements.get("17") {
        Some(value) => Some(
            parse_yymmdd(value, reference_year)
                .map_err(|reason| Gs1Error::Content {
                    ai: "17".to_string(),
                    rule: "yymmd0",
                    reason,
                })?
                .iso(),
        ),
        None => None,
    };
    let digital_link = if elements
        .elements
        .iter()
        .any(|e| e.entry.dl_primary_key.is_some())
    {
        generate_dl_uri(&elements, None).ok()
    } else {
        None
    };
    Ok(Gs1Summary {
        elements: elements
            .elements
            .iter()
            .map(|e| ElementView {
                ai: e.ai().to_string(),
                value: e.value.clone(),
            })
            .collect(),
        gtin: elements.get("01").map(str::to_string),
        serial: elements.get("21").map(str::to_string),
        lot: elements.get("10").map(str::to_string),
        expiry,
        sscc: elements.get("00").map(str::to_string),
        digital_link,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_matrix_summary() {
        let summary = parse_any("]d2010030001012345517240200" /* GTIN + expiry */, 2026).unwrap();
        assert_eq!(summary.gtin.as_deref(), Some("00300010123455"));
        assert_eq!(summary.expiry.as_deref(), Some("2024-02-29"));
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["elements"][1]["ai"], "17");
        assert!(json.get("serial").is_none());
        assert_eq!(
            json["digital_link"],
            "https://id.gs1.org/01/00300010123455?17=240200"
        );
    }

    #[test]
    fn all_forms_agree() {
        let forms = [
            "(01)00300010123455(17)261100(10)LOT1(21)S1",
            "^01003000101234551726110010LOT1^21S1",
            "]d201003000101234551726110010LOT1\u{1d}21S1",
            "01003000101234551726110010LOT1\u{1d}21S1",
        ];
        let first = parse_any(forms[0], 2026).unwrap();
        for form in forms {
            assert_eq!(parse_any(form, 2026).unwrap(), first, "{form}");
        }
        assert_eq!(first.expiry.as_deref(), Some("2026-11-30"));
    }

    #[test]
    fn pairing_is_enforced() {
        let err = parse_any("(10)LOT1", 2026).unwrap_err();
        assert!(err.to_string().contains("pairing"), "{err}");
    }
}
