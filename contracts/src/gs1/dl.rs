//! GS1 Digital Link URIs: parse (any host, optional path stem, primary key with its key
//! qualifiers in their fixed order, data attributes in the query, percent-encoding) and generate.

use super::element::{validate_value, Element, ElementString, INPUT_LENGTH_MAX};
use super::table::{lookup, AiEntry};
use super::AI_TABLE as AI_TABLE_REF;
use super::{Gs1Error, Gs1Result};

/// The canonical stem of GS1 Digital Link URIs.
pub const CANONICAL_STEM: &str = "https://id.gs1.org";

/// Parsing options. Defaults are strict.
#[derive(Clone, Copy, Debug, Default)]
pub struct DlOptions {
    /// Accept GTIN-8/12/13 in (01) and pad them to GTIN-14 (legacy URIs).
    pub permit_zero_suppressed_gtin: bool,
    /// Accept the convenience alphas of DL 1.0 (`gtin`, `ser`, `sscc`, …) as path AIs.
    pub permit_convenience_alphas: bool,
}

/// Convenience alphas of GS1 Digital Link 1.x for path AIs.
const CONVENIENCE_ALPHAS: &[(&str, &str)] = &[
    ("cpv", "22"),
    ("gdti", "253"),
    ("gcn", "255"),
    ("ginc", "401"),
    ("gln", "414"),
    ("glnx", "254"),
    ("grai", "8003"),
    ("giai", "8004"),
    ("gsin", "402"),
    ("gsrn", "8018"),
    ("gsrnp", "8017"),
    ("gtin", "01"),
    ("itip", "8006"),
    ("lot", "10"),
    ("party", "417"),
    ("ser", "21"),
    ("srin", "8019"),
    ("sscc", "00"),
    ("tpx", "235"),
    ("cpid", "8010"),
    ("cpsn", "8011"),
    ("gmn", "8013"),
];

/// Whether text starts like a Digital Link URI (scheme all lower or all upper case).
pub fn looks_like_dl_uri(text: &str) -> bool {
    ["https://", "http://", "HTTPS://", "HTTP://"]
        .iter()
        .any(|scheme| text.starts_with(scheme))
}

fn is_uri_character(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b':'
                | b'/'
                | b'?'
                | b'#'
                | b'['
                | b']'
                | b'@'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b'%'
        )
}

fn is_host_character(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b':' | b'[' | b']')
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes a path segment or query value. In the query `+` is a space; in the path it
/// is a plus. A `%` not followed by two hex digits stays literal. `%00` is refused.
pub fn uri_unescape(text: &str, query: bool) -> Gs1Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if byte == b'%' {
            if let (Some(high), Some(low)) = (
                bytes.get(index + 1).and_then(|b| hex_value(*b)),
                bytes.get(index + 2).and_then(|b| hex_value(*b)),
            ) {
                let decoded = high * 16 + low;
                if decoded == 0 {
                    return Err(Gs1Error::DigitalLink(
                        "percent-encoded NUL (%00) is not allowed".to_string(),
                    ));
                }
                out.push(decoded);
                index += 3;
                continue;
            }
        }
        out.push(if query && byte == b'+' { b' ' } else { byte });
        index += 1;
    }
    String::from_utf8(out)
        .map_err(|_| Gs1Error::DigitalLink("percent-encoding does not decode to UTF-8".to_string()))
}

/// Percent-encodes everything but unreserved characters; in the query a space becomes `+`.
pub fn uri_escape(text: &str, query: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else if query && byte == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn is_any_key_qualifier(ai: &str) -> bool {
    AI_TABLE_REF
        .iter()
        .filter_map(|entry| entry.dl_primary_key)
        .any(|sequences| sequences.iter().any(|sequence| sequence.contains(&ai)))
}

/// Whether `qualifiers` appear in order within `sequence`.
fn is_ordered_subsequence(qualifiers: &[&str], sequence: &[&str]) -> bool {
    let mut rest = sequence.iter();
    qualifiers.iter().all(|q| rest.any(|s| s == q))
}

fn path_ai(segment: &str, options: &DlOptions) -> Option<&'static AiEntry> {
    if segment.bytes().all(|b| b.is_ascii_digit()) {
        return lookup(segment);
    }
    if options.permit_convenience_alphas {
        let (_, ai) = CONVENIENCE_ALPHAS
            .iter()
            .find(|(alpha, _)| *alpha == segment)?;
        return lookup(ai);
    }
    None
}

fn make_element(
    entry: &'static AiEntry,
    raw_value: &str,
    options: &DlOptions,
) -> Gs1Result<Element> {
    let mut value = raw_value.to_string();
    if entry.ai == "01" && options.permit_zero_suppressed_gtin && matches!(value.len(), 8 | 12 | 13)
    {
        value = format!("{value:0>14}");
    }
    validate_value(entry, &value)?;
    Ok(Element { entry, value })
}

/// Parses a GS1 Digital Link URI into its AI elements: primary key, key qualifiers (path order),
/// then data attributes (query order). Unknown non-numeric query parameters are ignored.
pub fn parse_dl_uri(uri: &str, options: &DlOptions) -> Gs1Result<ElementString> {
    let fail = |why: String| Gs1Error::DigitalLink(why);
    if uri.len() > INPUT_LENGTH_MAX {
        return Err(fail("URI too long".to_string()));
    }
    let scheme_length = ["https://", "http://", "HTTPS://", "HTTP://"]
        .iter()
        .find(|scheme| uri.starts_with(**scheme))
        .map(|scheme| scheme.len())
        .ok_or_else(|| fail("URI must start with http:// or https://".to_string()))?;
    if let Some(position) = uri.bytes().position(|b| !is_uri_character(b)) {
        return Err(fail(format!(
            "character at position {} is not allowed in a URI",
            position + 1
        )));
    }
    let without_fragment = uri.split('#').next().unwrap_or("");
    let (before_query, query) = match without_fragment.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (without_fragment, None),
    };
    let rest = &before_query[scheme_length..];
    let path_start = rest
        .find('/')
        .ok_or_else(|| fail("no path after the host".to_string()))?;
    let host = &rest[..path_start];
    if host.is_empty() || !host.bytes().all(is_host_character) {
        return Err(fail(format!("invalid host {host:?}")));
    }
    let path = &rest[path_start + 1..];
    if path.is_empty() || path.ends_with('/') {
        return Err(fail("path must not be empty or end with '/'".to_string()));
    }
    let segments: Vec<&str> = path.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(fail("empty path segment".to_string()));
    }
    // Walk back over (qualifier, value) pairs to the rightmost primary key.
    let mut end = segments.len();
    let mut qualifier_pairs: Vec<(&'static AiEntry, &str)> = Vec::new();
    let key = loop {
        if end < 2 {
            return Err(fail("no GS1 primary key in the path".to_string()));
        }
        let candidate = segments[end - 2];
        match path_ai(candidate, options) {
            Some(entry) if entry.dl_primary_key.is_some() => break (entry, segments[end - 1]),
            Some(entry) if is_any_key_qualifier(entry.ai) => {
                qualifier_pairs.push((entry, segments[end - 1]));
                end -= 2;
            }
            Some(entry) => {
                return Err(fail(format!(
                    "({}) is neither a primary key nor a key qualifier",
                    entry.ai
                )))
            }
            None => {
                return Err(fail(format!(
                    "path segment {candidate:?} is not a known AI"
                )))
            }
        }
    };
    qualifier_pairs.reverse();
    let (key_entry, key_value) = key;
    let sequences = key_entry.dl_primary_key.unwrap_or(&[]);
    let qualifier_ais: Vec<&str> = qualifier_pairs.iter().map(|(entry, _)| entry.ai).collect();
    let consistent: Vec<&[&str]> = sequences
        .iter()
        .copied()
        .filter(|sequence| is_ordered_subsequence(&qualifier_ais, sequence))
        .collect();
    if consistent.is_empty() {
        return Err(fail(format!(
            "key qualifiers {} are not valid for ({}) or out of order",
            qualifier_ais
                .iter()
                .map(|ai| format!("({ai})"))
                .collect::<String>(),
            key_entry.ai
        )));
    }
    let mut elements = Vec::new();
    elements.push(make_element(
        key_entry,
        &uri_unescape(key_value, false)?,
        options,
    )?);
    for (entry, value) in &qualifier_pairs {
        elements.push(make_element(entry, &uri_unescape(value, false)?, options)?);
    }
    for parameter in query.unwrap_or("").split('&') {
        let Some((name, raw_value)) = parameter.split_once('=') else {
            continue;
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let entry = lookup(name).ok_or_else(|| Gs1Error::UnknownAi {
            ai: name.to_string(),
        })?;
        if raw_value.is_empty() {
            return Err(fail(format!("({name}) has an empty value")));
        }
        if !entry.dl_data_attribute {
            return Err(fail(format!(
                "({name}) is not permitted as a data attribute"
            )));
        }
        if consistent
            .iter()
            .any(|sequence| sequence.contains(&entry.ai))
        {
            return Err(fail(format!(
                "({name}) is a key qualifier of ({}) and belongs in the path",
                key_entry.ai
            )));
        }
        elements.push(make_element(
            entry,
            &uri_unescape(raw_value, true)?,
            options,
        )?);
    }
    for (index, element) in elements.iter().enumerate() {
        if elements[..index].iter().any(|e| e.ai() == element.ai()) {
            return Err(fail(format!("({}) appears more than once", element.ai())));
        }
    }
    Ok(ElementString { elements })
}

/// Generates a Digital Link URI. The primary key is the first element that is one; key
/// qualifiers go in the path in their fixed order; other AIs become query attributes,
/// predefined-length AIs first, each group in input order. `stem` defaults to id.gs1.org.
pub fn generate_dl_uri(elements: &ElementString, stem: Option<&str>) -> Gs1Result<String> {
    let fail = |why: String| Gs1Error::DigitalLink(why);
    let mut unique: Vec<&Element> = Vec::new();
    for element in &elements.elements {
        match unique.iter().find(|e| e.ai() == element.ai()) {
            Some(existing) if existing.value != element.value => {
                return Err(Gs1Error::Repeated {
                    ai: element.ai().to_string(),
                })
            }
            Some(_) => {}
            None => unique.push(element),
        }
    }
    let key = unique
        .iter()
        .copied()
        .find(|e| e.entry.dl_primary_key.is_some())
        .ok_or_else(|| fail("no AI is a Digital Link primary key".to_string()))?;
    let sequences = key.entry.dl_primary_key.unwrap_or(&[]);
    let present = |ai: &str| unique.iter().any(|e| e.ai() == ai);
    let mut best: &[&str] = &[];
    let mut best_count = 0;
    for sequence in sequences {
        let count = sequence.iter().filter(|ai| present(ai)).count();
        if count > best_count {
            best = sequence;
            best_count = count;
        }
    }
    let mut uri = stem
        .unwrap_or(CANONICAL_STEM)
        .trim_end_matches('/')
        .to_string();
    uri.push('/');
    uri.push_str(key.ai());
    uri.push('/');
    uri.push_str(&uri_escape(&key.value, false));
    for qualifier in best {
        if let Some(element) = unique.iter().find(|e| e.ai() == *qualifier) {
            uri.push('/');
            uri.push_str(qualifier);
            uri.push('/');
            uri.push_str(&uri_escape(&element.value, false));
        }
    }
    let attributes: Vec<&Element> = unique
        .iter()
        .copied()
        .filter(|e| e.ai() != key.ai() && !best.contains(&e.ai()))
        .collect();
    for attribute in &attributes {
        if sequences
            .iter()
            .any(|sequence| sequence.contains(&attribute.ai()))
        {
            return Err(fail(format!(
                "({}) is a key qualifier of ({}) that cannot be combined with the qualifiers used",
                attribute.ai(),
                key.ai()
            )));
        }
        if !attribute.entry.dl_data_attribute {
            return Err(fail(format!(
                "({}) is not permitted as a data attribute",
                attribute.ai()
            )));
        }
    }
    let ordered = attributes
        .iter()
        .filter(|e| !e.entry.fnc1_required)
        .chain(attributes.iter().filter(|e| e.entry.fnc1_required));
    for (index, attribute) in ordered.enumerate() {
        uri.push(if index == 0 { '?' } else { '&' });
        uri.push_str(attribute.ai());
        uri.push('=');
        uri.push_str(&uri_escape(&attribute.value, true));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_pharma() {
        let parsed = parse_dl_uri(
            "https://brand.example/01/00300010123455/10/LOT%2F1/21/S1?17=261100",
            &DlOptions::default(),
        )
        .unwrap();
        assert_eq!(
            parsed.to_bracketed(),
            "(01)00300010123455(10)LOT/1(21)S1(17)261100"
        );
        assert_eq!(
            generate_dl_uri(&parsed, None).unwrap(),
            "https://id.gs1.org/01/00300010123455/10/LOT%2F1/21/S1?17=261100"
        );
    }

    #[test]
    fn serial_is_not_a_query_attribute() {
        assert!(parse_dl_uri(
            "https://id.gs1.org/01/00300010123455?21=S1",
            &DlOptions::default()
        )
        .is_err());
        assert!(parse_dl_uri(
            "https://id.gs1.org/01/00300010123455/21/S1/10/L1",
            &DlOptions::default()
        )
        .is_err());
    }
}
