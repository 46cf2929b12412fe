//! GS1 element strings: bracketed `(01)…(21)…` and FNC1 form (`^01…21…^10…`, where `^` is FNC1
//! or, in scan data, the GS character 0x1D). Value validation against the AI table, and the
//! pairing rules (`req=`, `ex=`) of the dictionary.

use super::lint::Linter;
use super::table::{ai_matches_pattern, lookup, lookup_prefix, AiEntry, Cset};
use super::{Gs1Error, Gs1Result};

/// Longest input this parser accepts (bytes). A GS1 DataMatrix holds at most 3116 digits.
pub const INPUT_LENGTH_MAX: usize = 4096;

/// One AI and its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    pub entry: &'static AiEntry,
    pub value: String,
}

impl Element {
    pub fn ai(&self) -> &'static str {
        self.entry.ai
    }

    /// Builds an element after validating `value` against the AI's format and linters.
    pub fn new(ai: &str, value: &str) -> Gs1Result<Element> {
        let entry = lookup(ai).ok_or_else(|| Gs1Error::UnknownAi { ai: ai.to_string() })?;
        validate_value(entry, value)?;
        Ok(Element {
            entry,
            value: value.to_string(),
        })
    }
}

/// Elements in input order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ElementString {
    pub elements: Vec<Element>,
}

fn rule_name(linter: Linter) -> &'static str {
    match linter {
        Linter::Csum => "check digit",
        Linter::Csumalpha => "check character pair",
        other => other.name(),
    }
}

/// Validates a value against the AI's components: lengths, character sets and linters.
pub fn validate_value(entry: &'static AiEntry, value: &str) -> Gs1Result<()> {
    let ai = entry.ai;
    let bytes = value.as_bytes();
    let length_min: usize = entry
        .components
        .iter()
        .filter(|c| !c.optional)
        .map(|c| c.length_min as usize)
        .sum();
    let length_max = entry.length_max();
    let length_error = || Gs1Error::Length {
        ai: ai.to_string(),
        length: value.chars().count(),
        min: length_min,
        max: length_max,
    };
    if bytes.is_empty() || bytes.len() > length_max {
        return Err(length_error());
    }
    let mut position = 0usize;
    for component in entry.components {
        let remaining = bytes.len() - position;
        if component.optional && remaining == 0 {
            break;
        }
        if remaining < component.length_min as usize {
            return Err(length_error());
        }
        let take = remaining.min(component.length_max as usize);
        let part = &bytes[position..position + take];
        if let Some(offset) = part.iter().position(|&b| !component.cset.contains(b)) {
            let character = value[position + offset..].chars().next().unwrap_or('?');
            return Err(Gs1Error::Charset {
                ai: ai.to_string(),
                position: position + offset + 1,
                character,
                cset: component.cset.name(),
            });
        }
        if component.cset == Cset::Cset64 {
            // Padding '=' only at the end.
            if let Some(first_pad) = part.iter().position(|&b| b == b'=') {
                if part[first_pad..].iter().any(|&b| b != b'=') {
                    return Err(Gs1Error::Content {
                        ai: ai.to_string(),
                        rule: "cset64",
                        reason: "padding '=' inside data".to_string(),
                    });
                }
            }
        }
        // The part is ASCII (every character set is ASCII), so this slice is on char boundaries.
        let text = &value[position..position + take];
        for linter in component.linters {
            linter.check(text).map_err(|reason| Gs1Error::Content {
                ai: ai.to_string(),
                rule: rule_name(*linter),
                reason,
            })?;
        }
        position += take;
    }
    if position < bytes.len() {
        return Err(length_error());
    }
    Ok(())
}

/// Parses `(AI)value(AI)value…`; `\(` in a value is a literal `(`.
pub fn parse_bracketed(input: &str) -> Gs1Result<ElementString> {
    if input.len() > INPUT_LENGTH_MAX {
        return Err(Gs1Error::Syntax(format!(
            "input longer than {INPUT_LENGTH_MAX} bytes"
        )));
    }
    let bytes = input.as_bytes();
    if bytes.is_empty() {
        return Err(Gs1Error::Syntax("empty input".to_string()));
    }
    let mut elements = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] != b'(' {
            return Err(Gs1Error::Syntax(format!(
                "expected '(' at position {}",
                index + 1
            )));
        }
        let close = input[index..]
            .find(')')
            .map(|offset| index + offset)
            .ok_or_else(|| Gs1Error::Syntax("unterminated '(' AI".to_string()))?;
        let ai = &input[index + 1..close];
        if ai.len() < 2 || ai.len() > 4 || !ai.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Gs1Error::UnknownAi { ai: ai.to_string() });
        }
        let entry = lookup(ai).ok_or_else(|| Gs1Error::UnknownAi { ai: ai.to_string() })?;
        let mut value = String::new();
        let mut cursor = close + 1;
        let mut literal_start = cursor;
        while cursor < bytes.len() {
            match bytes[cursor] {
                b'\\' if bytes.get(cursor + 1) == Some(&b'(') => {
                    value.push_str(&input[literal_start..cursor]);
                    value.push('(');
                    cursor += 2;
                    literal_start = cursor;
                }
                b'(' => break,
                _ => cursor += 1,
            }
        }
        value.push_str(&input[literal_start..cursor]);
        validate_value(entry, &value)?;
        elements.push(Element { entry, value });
        index = cursor;
    }
    Ok(ElementString { elements })
}

/// Parses unbracketed AI data that follows a leading FNC1, with `separator` as FNC1
/// (`b'^'` in the engine's notation, 0x1D in scan data).
pub fn parse_unbracketed(data: &str, separator: u8) -> Gs1Result<ElementString> {
    if data.len() > INPUT_LENGTH_MAX {
        return Err(Gs1Error::Syntax(format!(
            "input longer than {INPUT_LENGTH_MAX} bytes"
        )));
    }
    let bytes = data.as_bytes();
    if bytes.is_empty() {
        return Err(Gs1Error::Syntax("no AI data after FNC1".to_string()));
    }
    let mut elements = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == separator {
            return Err(Gs1Error::Syntax(format!(
                "unexpected FNC1 at position {}",
                index + 1
            )));
        }
        let rest = &data[index..];
        let entry = lookup_prefix(rest).ok_or_else(|| {
            let digits: String = rest.chars().take(4).collect();
            Gs1Error::UnknownAi { ai: digits }
        })?;
        index += entry.ai.len();
        let end = match (entry.fnc1_required, entry.fixed_length()) {
            (false, Some(length)) => (index + length).min(bytes.len()),
            _ => bytes[index..]
                .iter()
                .position(|&b| b == separator)
                .map_or(bytes.len(), |offset| index + offset),
        };
        let value = data
            .get(index..end)
            .ok_or_else(|| Gs1Error::Syntax(format!("({}): value is not valid text", entry.ai)))?;
        validate_value(entry, value)?;
        elements.push(Element {
            entry,
            value: value.to_string(),
        });
        index = end;
        if index < bytes.len() && bytes[index] == separator {
            index += 1;
        }
    }
    Ok(ElementString { elements })
}

/// Parses the engine's FNC1 notation: `^` followed by unbracketed AI data.
pub fn parse_fnc1_notation(input: &str) -> Gs1Result<ElementString> {
    let data = input
        .strip_prefix('^')
        .ok_or_else(|| Gs1Error::Syntax("AI data must start with FNC1 ('^')".to_string()))?;
    parse_unbracketed(data, b'^')
}

impl ElementString {
    /// FNC1 notation: `^` first, and `^` after each variable-length value that is not last.
    pub fn to_fnc1_notation(&self) -> String {
        self.to_unbracketed_with("^", '^')
    }

    /// Raw data with 0x1D group separators (no symbology identifier, no leading FNC1).
    pub fn to_gs_separated(&self) -> String {
        self.to_unbracketed_with("", '\u{1d}')
    }

    fn to_unbracketed_with(&self, prefix: &str, separator: char) -> String {
        let mut out = String::from(prefix);
        for (index, element) in self.elements.iter().enumerate() {
            out.push_str(element.ai());
            out.push_str(&element.value);
            if element.entry.fnc1_required && index + 1 < self.elements.len() {
                out.push(separator);
            }
        }
        out
    }

    /// `(AI)value…` with `(` in values escaped as `\(`.
    pub fn to_bracketed(&self) -> String {
        let mut out = String::new();
        for element in &self.elements {
            out.push('(');
            out.push_str(element.ai());
            out.push(')');
            out.push_str(&element.value.replace('(', "\\("));
        }
        out
    }

    pub fn get(&self, ai: &str) -> Option<&str> {
        self.elements
            .iter()
            .find(|e| e.ai() == ai)
            .map(|e| e.value.as_str())
    }

    /// Pairing rules: a repeated AI must repeat its value; every `req=` must be met by the
    /// other AIs present; no AI may appear with one its `ex=` excludes.
    pub fn validate_pairings(&self) -> Gs1Result<()> {
        for (index, element) in self.elements.iter().enumerate() {
            if self.elements[..index]
                .iter()
                .any(|e| e.ai() == element.ai() && e.value != element.value)
            {
                return Err(Gs1Error::Repeated {
                    ai: element.ai().to_string(),
                });
            }
        }
        for element in &self.elements {
            let ai = element.ai();
            for requirement in element.entry.requires {
                let satisfied = requirement.iter().any(|group| {
                    group.iter().all(|pattern| {
                        self.elements
                            .iter()
                            .any(|e| e.ai() != ai && ai_matches_pattern(e.ai(), pattern))
                    })
                });
                if !satisfied {
                    let alternatives: Vec<String> = requirement
                        .iter()
                        .map(|group| {
                            group
                                .iter()
                                .map(|p| format!("({p})"))
                                .collect::<Vec<_>>()
                                .join("+")
                        })
                        .collect();
                    return Err(Gs1Error::Pairing {
                        ai: ai.to_string(),
                        reason: format!("requires {}", alternatives.join(" or ")),
                    });
                }
            }
            for pattern in element.entry.excludes {
                if let Some(other) = self
                    .elements
                    .iter()
                    .find(|e| e.ai() != ai && ai_matches_pattern(e.ai(), pattern))
                {
                    return Err(Gs1Error::Pairing {
                        ai: ai.to_string(),
                        reason: format!("must not appear with ({})", other.ai()),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pharma_data_matrix() {
        let parsed = parse_bracketed("(01)00300010123455(17)261100(10)LOT42(21)SER1").unwrap();
        assert_eq!(
            parsed.to_fnc1_notation(),
            "^01003000101234551726110010LOT42^21SER1"
        );
        assert_eq!(
            parsed.to_bracketed(),
            "(01)00300010123455(17)261100(10)LOT42(21)SER1"
        );
        assert!(parsed.validate_pairings().is_ok());
    }

    #[test]
    fn errors_name_ai_and_rule() {
        let err = parse_bracketed("(01)00300010123454").unwrap_err();
        assert_eq!(err.to_string(), "(01): check digit: incorrect check digit");
        let err = parse_bracketed("(21)ABC")
            .unwrap()
            .validate_pairings()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "(21): pairing: requires (01) or (03) or (8006)"
        );
        let err = parse_bracketed("(01)00300010123455(37)1")
            .unwrap()
            .validate_pairings()
            .unwrap_err();
        assert_eq!(err.to_string(), "(01): pairing: must not appear with (37)");
        assert!(matches!(
            parse_bracketed("(10)ABC DEF"),
            Err(Gs1Error::Charset { position: 4, .. })
        ));
        assert!(matches!(
            parse_bracketed("(10)123456789012345678901"),
            Err(Gs1Error::Length {
                length: 21,
                max: 20,
                ..
            })
        ));
        assert!(matches!(
            parse_bracketed("(89)1"),
            Err(Gs1Error::UnknownAi { .. })
        ));
        assert!(matches!(
            parse_bracketed("(17)261332"),
            Err(Gs1Error::Content { rule: "yymmd0", .. })
        ));
        let err = parse_bracketed("(01)00300010123455(10)A(10)B")
            .unwrap()
            .validate_pairings()
            .unwrap_err();
        assert_eq!(
            err,
            Gs1Error::Repeated {
                ai: "10".to_string()
            }
        );
    }
}
