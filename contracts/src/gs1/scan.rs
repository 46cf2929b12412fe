//! Barcode scan data: symbology identifier (`]d2`, `]Q3`, `]C1`, …) followed by the message,
//! GS (0x1D) as FNC1 separator. Processing returns the engine's notation: `^` + AI data for GS1
//! messages, plain data otherwise (a leading `^` escaped as `\^`), `|` between a linear symbol
//! and its composite component. Generation is the inverse.

use super::check::gs1_check_digit;
use super::check::gs1_check_digit_valid;
use super::dl::{looks_like_dl_uri, parse_dl_uri, DlOptions};
use super::element::{parse_unbracketed, ElementString};
use super::{Gs1Error, Gs1Result};

const GS: char = '\u{1d}';

/// Barcode symbologies, named as the GS1 Barcode Syntax Engine names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Symbology {
    None,
    DataBarOmni,
    DataBarTruncated,
    DataBarStacked,
    DataBarStackedOmni,
    DataBarLimited,
    DataBarExpanded,
    Upca,
    Upce,
    Ean13,
    Ean8,
    Gs1128Cca,
    Gs1128Ccc,
    Qr,
    Dm,
    DotCode,
}

impl Symbology {
    pub fn name(self) -> &'static str {
        match self {
            Symbology::None => "NONE",
            Symbology::DataBarOmni => "DataBarOmni",
            Symbology::DataBarTruncated => "DataBarTruncated",
            Symbology::DataBarStacked => "DataBarStacked",
            Symbology::DataBarStackedOmni => "DataBarStackedOmni",
            Symbology::DataBarLimited => "DataBarLimited",
            Symbology::DataBarExpanded => "DataBarExpanded",
            Symbology::Upca => "UPCA",
            Symbology::Upce => "UPCE",
            Symbology::Ean13 => "EAN13",
            Symbology::Ean8 => "EAN8",
            Symbology::Gs1128Cca => "GS1_128_CCA",
            Symbology::Gs1128Ccc => "GS1_128_CCC",
            Symbology::Qr => "QR",
            Symbology::Dm => "DM",
            Symbology::DotCode => "DotCode",
        }
    }

    pub fn from_name(name: &str) -> Option<Symbology> {
        const ALL: [Symbology; 16] = [
            Symbology::None,
            Symbology::DataBarOmni,
            Symbology::DataBarTruncated,
            Symbology::DataBarStacked,
            Symbology::DataBarStackedOmni,
            Symbology::DataBarLimited,
            Symbology::DataBarExpanded,
            Symbology::Upca,
            Symbology::Upce,
            Symbology::Ean13,
            Symbology::Ean8,
            Symbology::Gs1128Cca,
            Symbology::Gs1128Ccc,
            Symbology::Qr,
            Symbology::Dm,
            Symbology::DotCode,
        ];
        ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Result of processing scan data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanData {
    pub symbology: Symbology,
    /// Engine notation (see module docs).
    pub data: String,
    /// The GS1 AI elements (linear then composite), when the message is GS1 AI data or a
    /// GS1 Digital Link URI.
    pub elements: Option<ElementString>,
}

fn escape_plain(data: &str) -> String {
    let backslashes = data.bytes().take_while(|&b| b == b'\\').count();
    if data.as_bytes().get(backslashes) == Some(&b'^') {
        format!("\\{data}")
    } else {
        data.to_string()
    }
}

fn unescape_plain(data: &str) -> String {
    let backslashes = data.bytes().take_while(|&b| b == b'\\').count();
    if backslashes > 0 && data.as_bytes().get(backslashes) == Some(&b'^') {
        data[1..].to_string()
    } else {
        data.to_string()
    }
}

fn gs1_ai_message(message: &str) -> Gs1Result<(String, ElementString)> {
    let elements = parse_unbracketed(message, 0x1d)?;
    Ok((format!("^{}", message.replace(GS, "^")), elements))
}

fn ean_digits(digits: &str, length: usize, what: &str) -> Gs1Result<()> {
    if digits.len() != length || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Gs1Error::ScanData(format!(
            "{what} must be {length} digits"
        )));
    }
    if !gs1_check_digit_valid(digits) {
        return Err(Gs1Error::ScanData(format!("{what}: incorrect check digit")));
    }
    Ok(())
}

/// Processes scan data: `]` + symbology identifier + message.
pub fn process_scan_data(scan: &str) -> Gs1Result<ScanData> {
    if scan.len() > super::element::INPUT_LENGTH_MAX {
        return Err(Gs1Error::ScanData("input too long".to_string()));
    }
    let identifier = scan
        .get(..3)
        .filter(|id| id.starts_with(']'))
        .ok_or_else(|| {
            Gs1Error::ScanData(
                "must start with a symbology identifier such as ]d2, ]Q3 or ]C1".to_string(),
            )
        })?;
    let message = &scan[3..];
    let plain = |symbology: Symbology| -> Gs1Result<ScanData> {
        if looks_like_dl_uri(message) {
            let elements = parse_dl_uri(message, &DlOptions::default())?;
            return Ok(ScanData {
                symbology,
                data: message.to_string(),
                elements: Some(elements),
            });
        }
        Ok(ScanData {
            symbology,
            data: escape_plain(message),
            elements: None,
        })
    };
    let gs1 = |symbology: Symbology| -> Gs1Result<ScanData> {
        let (data, elements) = gs1_ai_message(message)?;
        Ok(ScanData {
            symbology,
            data,
            elements: Some(elements),
        })
    };
    let ean = |symbology: Symbology, length: usize, what: &str| -> Gs1Result<ScanData> {
        let (linear, composite) = match message.split_once('|') {
            Some((linear, composite)) => (linear, Some(composite)),
            None => (message, None),
        };
        ean_digits(linear, length, what)?;
        let mut elements = ElementString::default();
        elements
            .elements
            .push(super::Element::new("01", &format!("{linear:0>14}"))?);
        let mut data = linear.to_string();
        if let Some(composite) = composite {
            let composite = composite.strip_prefix("]e0").ok_or_else(|| {
                Gs1Error::ScanData("composite component must start with ]e0".to_string())
            })?;
            let (composite_data, composite_elements) = gs1_ai_message(composite)?;
            data.push('|');
            data.push_str(&composite_data);
            elements.elements.extend(composite_elements.elements);
        }
        Ok(ScanData {
            symbology,
            data,
            elements: Some(elements),
        })
    };
    match identifier {
        "]Q1" => plain(Symbology::Qr),
        "]Q3" => gs1(Symbology::Qr),
        "]d1" => plain(Symbology::Dm),
        "]d2" => gs1(Symbology::Dm),
        "]J0" => plain(Symbology::DotCode),
        "]J1" => gs1(Symbology::DotCode),
        "]e0" => gs1(Symbology::DataBarExpanded),
        "]C1" => gs1(Symbology::Gs1128Cca),
        "]E0" => ean(Symbology::Ean13, 13, "EAN-13"),
        "]E4" => ean(Symbology::Ean8, 8, "EAN-8"),
        other => Err(Gs1Error::ScanData(format!(
            "unsupported symbology identifier {other}"
        ))),
    }
}

/// Options for [`generate_scan_data`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ScanOptions {
    /// Accept EAN/UPC data without its check digit and compute it.
    pub add_check_digit: bool,
}

fn to_gs(ai_data: &str) -> String {
    ai_data
        .strip_prefix('^')
        .unwrap_or(ai_data)
        .replace('^', &GS.to_string())
}

/// Joins a linear AI message and a composite AI message into one `]e0` transmission.
fn join_composite(linear: &str, composite: &str) -> Gs1Result<String> {
    let linear_elements = super::element::parse_fnc1_notation(linear.trim_end_matches('^'))?;
    super::element::parse_fnc1_notation(composite)?;
    let mut out = to_gs(linear);
    let needs_separator = linear_elements
        .elements
        .last()
        .is_some_and(|e| e.entry.fnc1_required);
    if needs_separator && !out.ends_with(GS) {
        out.push(GS);
    }
    out.push_str(&to_gs(composite));
    Ok(out)
}

/// Extracts a GTIN-`digits` from `^01…` (GTIN-14 with leading zeros) or plain digits.
fn linear_gtin(linear: &str, digits: usize, options: ScanOptions, what: &str) -> Gs1Result<String> {
    let candidate = match linear.strip_prefix("^01") {
        Some(gtin14) => {
            if gtin14.len() != 14
                || !gtin14.is_char_boundary(14 - digits)
                || !gtin14[..14 - digits].bytes().all(|b| b == b'0')
            {
                return Err(Gs1Error::ScanData(format!(
                    "(01) must be a GTIN-14 with {} leading zeros for {what}",
                    14 - digits
                )));
            }
            gtin14[14 - digits..].to_string()
        }
        None if options.add_check_digit
            && linear.len() + 1 == digits
            && linear.bytes().all(|b| b.is_ascii_digit()) =>
        {
            let check = gs1_check_digit(linear).unwrap_or(0);
            format!("{linear}{check}")
        }
        None => linear.to_string(),
    };
    ean_digits(&candidate, digits, what)?;
    Ok(candidate)
}

/// UPC-A data can be carried in UPC-E only when it is zero-suppressible.
fn upce_suppressible(upca: &str) -> bool {
    let b = upca.as_bytes();
    if b.len() != 12 || !(b[0] == b'0' || b[0] == b'1') {
        return false;
    }
    let manufacturer = &upca[1..6];
    let product = &upca[6..11];
    (matches!(&manufacturer[3..], "000" | "100" | "200") && product.starts_with("00"))
        || (manufacturer.ends_with("00") && product.starts_with("000"))
        || (manufacturer.ends_with('0') && product.starts_with("0000"))
        || (product.starts_with("0000") && matches!(b[10], b'5'..=b'9'))
}

/// Generates scan data for `symbology` from engine notation (see module docs).
pub fn generate_scan_data(
    symbology: Symbology,
    data: &str,
    options: ScanOptions,
) -> Gs1Result<String> {
    let (linear, composite) = match data.split_once('|') {
        Some((linear, composite)) => (linear, Some(composite)),
        None => (data, None),
    };
    let composite_suffix = |prefix_gs1: &str| -> Gs1Result<String> {
        match composite {
            None => Ok(String::new()),
            Some(composite) => {
                super::element::parse_fnc1_notation(composite)?;
                Ok(format!("{prefix_gs1}{}", to_gs(composite)))
            }
        }
    };
    match symbology {
        Symbology::None => Err(Gs1Error::ScanData("no symbology selected".to_string())),
        Symbology::Qr | Symbology::Dm | Symbology::DotCode => {
            let (plain_id, gs1_id) = match symbology {
                Symbology::Qr => ("]Q1", "]Q3"),
                Symbology::Dm => ("]d1", "]d2"),
                _ => ("]J0", "]J1"),
            };
            if data.starts_with('^') {
                super::element::parse_fnc1_notation(data.trim_end_matches('^'))?;
                Ok(format!("{gs1_id}{}", to_gs(data)))
            } else {
                Ok(format!("{plain_id}{}", unescape_plain(data)))
            }
        }
        Symbology::Gs1128Cca | Symbology::Gs1128Ccc | Symbology::DataBarExpanded => {
            if !linear.starts_with('^') {
                return Err(Gs1Error::ScanData(format!(
                    "{} carries GS1 AI data only",
                    symbology.name()
                )));
            }
            match composite {
                Some(composite) => Ok(format!("]e0{}", join_composite(linear, composite)?)),
                None => {
                    super::element::parse_fnc1_notation(linear.trim_end_matches('^'))?;
                    let id = if symbology == Symbology::DataBarExpanded {
                        "]e0"
                    } else {
                        "]C1"
                    };
                    Ok(format!("{id}{}", to_gs(linear)))
                }
            }
        }
        Symbology::DataBarOmni
        | Symbology::DataBarTruncated
        | Symbology::DataBarStacked
        | Symbology::DataBarStackedOmni
        | Symbology::DataBarLimited => {
            let gtin = linear_gtin(linear, 14, options, "GS1 DataBar")?;
            if symbology == Symbology::DataBarLimited
                && !(gtin.starts_with('0') || gtin.starts_with('1'))
            {
                return Err(Gs1Error::ScanData(
                    "GS1 DataBar Limited needs a GTIN with indicator 0 or 1".to_string(),
                ));
            }
            Ok(format!("]e001{gtin}{}", composite_suffix("")?))
        }
        Symbology::Upca | Symbology::Upce => {
            let upca = linear_gtin(linear, 12, options, symbology.name())?;
            if symbology == Symbology::Upce && !upce_suppressible(&upca) {
                return Err(Gs1Error::ScanData(
                    "GTIN cannot be zero-suppressed into UPC-E".to_string(),
                ));
            }
            Ok(format!("]E00{upca}{}", composite_suffix("|]e0")?))
        }
        Symbology::Ean13 => {
            let ean = linear_gtin(linear, 13, options, "EAN-13")?;
            Ok(format!("]E0{ean}{}", composite_suffix("|]e0")?))
        }
        Symbology::Ean8 => {
            let ean = linear_gtin(linear, 8, options, "EAN-8")?;
            Ok(format!("]E4{ean}{}", composite_suffix("|]e0")?))
        }
    }
}
