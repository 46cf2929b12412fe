//! Types of the application-identifier table. The table itself (`AI_TABLE`) is generated from the
//! GS1 Barcode Syntax Dictionary by [`super::dictionary`]; see `ai_table_generated.rs`.

use super::lint::Linter;

/// Character set of one component of an AI's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cset {
    /// "N": digits.
    Numeric,
    /// "X": GS1 AI encodable character set 82.
    Cset82,
    /// "Y": GS1 AI encodable character set 39.
    Cset39,
    /// "Z": base64url (file-safe base64) with optional `=` padding.
    Cset64,
}

impl Cset {
    pub fn name(self) -> &'static str {
        match self {
            Cset::Numeric => "numeric",
            Cset::Cset82 => "CSET 82",
            Cset::Cset39 => "CSET 39",
            Cset::Cset64 => "CSET 64 (base64url)",
        }
    }

    pub fn contains(self, byte: u8) -> bool {
        match self {
            Cset::Numeric => byte.is_ascii_digit(),
            Cset::Cset82 => is_cset82(byte),
            Cset::Cset39 => {
                byte.is_ascii_uppercase()
                    || byte.is_ascii_digit()
                    || matches!(byte, b'#' | b'-' | b'/')
            }
            Cset::Cset64 => byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'='),
        }
    }
}

/// GS1 AI encodable character set 82.
pub fn is_cset82(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'!' | b'"'
                | b'%'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b'-'
                | b'.'
                | b'/'
                | b':'
                | b';'
                | b'<'
                | b'='
                | b'>'
                | b'?'
                | b'_'
        )
}

/// One component of an AI's value, e.g. `N13,csum,gcppos1` or `[X..17]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Component {
    pub cset: Cset,
    pub length_min: u8,
    pub length_max: u8,
    pub optional: bool,
    pub linters: &'static [Linter],
}

/// One application identifier as the dictionary describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AiEntry {
    pub ai: &'static str,
    /// Flag "*" absent: the value has no predefined length and needs an FNC1 separator unless last.
    pub fnc1_required: bool,
    /// Flag "?": permitted as a GS1 Digital Link data attribute (query parameter).
    pub dl_data_attribute: bool,
    pub components: &'static [Component],
    /// Each `req=` attribute: a list of alternatives, each alternative a list of AI patterns that
    /// must all be present (`01+21`). Every `req=` attribute must be satisfied.
    pub requires: &'static [&'static [&'static [&'static str]]],
    /// `ex=` patterns: AIs this one must not appear with.
    pub excludes: &'static [&'static str],
    /// `dlpkey`: this AI is a Digital Link primary key; each entry is one ordered qualifier
    /// sequence alternative (may be empty). `None` when not a primary key.
    pub dl_primary_key: Option<&'static [&'static [&'static str]]>,
    pub title: &'static str,
}

impl AiEntry {
    /// Total length when every component is fixed length and mandatory.
    pub fn fixed_length(&self) -> Option<usize> {
        let mut total = 0usize;
        for component in self.components {
            if component.optional || component.length_min != component.length_max {
                return None;
            }
            total += component.length_max as usize;
        }
        Some(total)
    }

    pub fn length_max(&self) -> usize {
        self.components.iter().map(|c| c.length_max as usize).sum()
    }
}

/// For each two-digit start "00".."99", the range of table entries beginning with it (the table
/// is sorted by AI, so each range is contiguous). Built once, on first use.
fn prefix_ranges() -> &'static [(u16, u16); 100] {
    static RANGES: std::sync::OnceLock<[(u16, u16); 100]> = std::sync::OnceLock::new();
    RANGES.get_or_init(|| {
        let table = super::ai_table_generated::AI_TABLE;
        let mut ranges = [(0u16, 0u16); 100];
        for (index, entry) in table.iter().enumerate() {
            let bytes = entry.ai.as_bytes();
            let bucket = usize::from(bytes[0] - b'0') * 10 + usize::from(bytes[1] - b'0');
            if ranges[bucket].1 == 0 {
                ranges[bucket].0 = index as u16;
            }
            ranges[bucket].1 = index as u16 + 1;
        }
        ranges
    })
}

/// Looks up an AI in the generated table: a two-digit bucket, then a short search within it.
pub fn lookup(ai: &str) -> Option<&'static AiEntry> {
    let bytes = ai.as_bytes();
    if bytes.len() < 2 || bytes.len() > 4 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let bucket = usize::from(bytes[0] - b'0') * 10 + usize::from(bytes[1] - b'0');
    let (start, end) = prefix_ranges()[bucket];
    let table = super::ai_table_generated::AI_TABLE;
    table[usize::from(start)..usize::from(end)]
        .iter()
        .find(|entry| entry.ai.as_bytes() == bytes)
}

/// Finds the AI at the start of `data` (AIs are prefix-free: try 2, 3 then 4 digits).
pub fn lookup_prefix(data: &str) -> Option<&'static AiEntry> {
    let bytes = data.as_bytes();
    for length in 2..=4 {
        if bytes.len() < length {
            return None;
        }
        if !bytes[..length].iter().all(u8::is_ascii_digit) {
            return None;
        }
        if let Some(entry) = lookup(&data[..length]) {
            return Some(entry);
        }
    }
    None
}

/// Whether `ai` matches a dictionary pattern such as `31nn`, `394n` or `01`.
pub fn ai_matches_pattern(ai: &str, pattern: &str) -> bool {
    ai.len() == pattern.len()
        && ai
            .bytes()
            .zip(pattern.bytes())
            .all(|(a, p)| p == b'n' || a == p)
}
