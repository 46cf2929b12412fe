//! Generator of the AI table from the GS1 Barcode Syntax Dictionary text
//! (`shared/data/gs1/gs1-syntax-dictionary.txt`).
//!
//! [`parse_dictionary`] reads the text, [`render_table`] writes `ai_table_generated.rs`. Run
//! `cargo run -p pharmalink-contracts --example gen_ai_table` to regenerate the checked-in file;
//! the test `ai_table_matches_dictionary` fails when the two differ.

use super::lint::Linter;

/// One component as written in the dictionary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentSpec {
    pub cset: char,
    pub length_min: u8,
    pub length_max: u8,
    pub optional: bool,
    pub linters: Vec<Linter>,
}

/// One dictionary entry, expanded to a single AI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AiSpec {
    pub ai: String,
    pub fnc1_required: bool,
    pub dl_data_attribute: bool,
    pub components: Vec<ComponentSpec>,
    pub requires: Vec<Vec<Vec<String>>>,
    pub excludes: Vec<String>,
    pub dl_primary_key: Option<Vec<Vec<String>>>,
    pub title: String,
}

fn parse_component(token: &str, line_number: usize) -> Result<ComponentSpec, String> {
    let fail = |why: &str| format!("dictionary line {line_number}: component {token:?}: {why}");
    let mut parts = token.split(',');
    let head = parts.next().unwrap_or("");
    let (optional, body) = match head.strip_prefix('[') {
        Some(rest) => (
            true,
            rest.strip_suffix(']').ok_or_else(|| fail("unclosed ["))?,
        ),
        None => (false, head),
    };
    let mut chars = body.chars();
    let cset = chars.next().ok_or_else(|| fail("empty"))?;
    if !matches!(cset, 'N' | 'X' | 'Y' | 'Z') {
        return Err(fail("unknown character set"));
    }
    let length = chars.as_str();
    let (length_min, length_max) = match length.strip_prefix("..") {
        Some(max) => (1, max.parse::<u8>().map_err(|_| fail("bad length"))?),
        None => {
            let fixed = length.parse::<u8>().map_err(|_| fail("bad length"))?;
            (fixed, fixed)
        }
    };
    let mut linters = Vec::new();
    for name in parts {
        linters
            .push(Linter::from_name(name).ok_or_else(|| fail(&format!("unknown linter {name}")))?);
    }
    Ok(ComponentSpec {
        cset,
        length_min,
        length_max,
        optional,
        linters,
    })
}

fn expand_range(ais: &str, line_number: usize) -> Result<Vec<String>, String> {
    match ais.split_once('-') {
        None => Ok(vec![ais.to_string()]),
        Some((first, last)) => {
            if first.len() != last.len() {
                return Err(format!("dictionary line {line_number}: bad range {ais}"));
            }
            let start: u32 = first
                .parse()
                .map_err(|_| format!("dictionary line {line_number}: bad range {ais}"))?;
            let end: u32 = last
                .parse()
                .map_err(|_| format!("dictionary line {line_number}: bad range {ais}"))?;
            Ok((start..=end)
                .map(|n| format!("{n:0width$}", width = first.len()))
                .collect())
        }
    }
}

/// Parses the dictionary text into one spec per AI, sorted by AI.
pub fn parse_dictionary(text: &str) -> Result<Vec<AiSpec>, String> {
    let mut specs = Vec::new();
    for (index, raw_line) in text.lines().enumerate() {
        let line_number = index + 1;
        let (body, title) = match raw_line.split_once('#') {
            Some((body, title)) => (body, title.trim()),
            None => (raw_line, ""),
        };
        let mut tokens = body.split_whitespace().peekable();
        let Some(ais) = tokens.next() else { continue };
        let mut fnc1_required = true;
        let mut dl_data_attribute = false;
        if let Some(flags) = tokens.peek() {
            let is_flags = flags
                .chars()
                .all(|c| "*!?\"$%&'()+,-./:;<=>@[\\]^_`{|}~".contains(c))
                && !flags.starts_with('[');
            if is_flags {
                fnc1_required = !flags.contains('*');
                dl_data_attribute = flags.contains('?');
                tokens.next();
            }
        }
        let mut components = Vec::new();
        let mut requires = Vec::new();
        let mut excludes = Vec::new();
        let mut dl_primary_key = None;
        for token in tokens {
            if let Some(list) = token.strip_prefix("req=") {
                requires.push(
                    list.split(',')
                        .map(|alt| alt.split('+').map(str::to_string).collect())
                        .collect::<Vec<Vec<String>>>(),
                );
            } else if let Some(list) = token.strip_prefix("ex=") {
                excludes.extend(list.split(',').map(str::to_string));
            } else if token == "dlpkey" {
                dl_primary_key = Some(vec![Vec::new()]);
            } else if let Some(list) = token.strip_prefix("dlpkey=") {
                dl_primary_key = Some(
                    list.split('|')
                        .map(|seq| seq.split(',').map(str::to_string).collect())
                        .collect(),
                );
            } else if token.starts_with(['N', 'X', 'Y', 'Z', '[']) {
                if !requires.is_empty() || !excludes.is_empty() || dl_primary_key.is_some() {
                    return Err(format!(
                        "dictionary line {line_number}: component after attributes"
                    ));
                }
                components.push(parse_component(token, line_number)?);
            } else {
                return Err(format!(
                    "dictionary line {line_number}: unknown token {token:?}"
                ));
            }
        }
        if components.is_empty() {
            return Err(format!("dictionary line {line_number}: no specification"));
        }
        for ai in expand_range(ais, line_number)? {
            if !(2..=4).contains(&ai.len()) || !ai.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("dictionary line {line_number}: bad AI {ai}"));
            }
            specs.push(AiSpec {
                ai,
                fnc1_required,
                dl_data_attribute,
                components: components.clone(),
                requires: requires.clone(),
                excludes: excludes.clone(),
                dl_primary_key: dl_primary_key.clone(),
                title: title.to_string(),
            });
        }
    }
    specs.sort_by(|a, b| a.ai.cmp(&b.ai));
    for pair in specs.windows(2) {
        if pair[0].ai == pair[1].ai {
            return Err(format!("duplicate AI {}", pair[0].ai));
        }
    }
    Ok(specs)
}

fn render_str_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("&[{}]", quoted.join(", "))
}

/// Renders the Rust source of `ai_table_generated.rs`.
pub fn render_table(specs: &[AiSpec]) -> String {
    let mut out = String::new();
    out.push_str(
        "// @generated by contracts/src/gs1/dictionary.rs from gs1-syntax-dictionary.txt.\n",
    );
    out.push_str("// Regenerate: cargo run -p pharmalink-contracts --example gen_ai_table\n");
    out.push_str("// Do not edit by hand.\n\n");
    out.push_str("use super::lint::Linter;\nuse super::table::{AiEntry, Component, Cset};\n\n");
    out.push_str(&format!(
        "pub static AI_TABLE: &[AiEntry] = &[ // {} AIs\n",
        specs.len()
    ));
    for spec in specs {
        let components: Vec<String> = spec
            .components
            .iter()
            .map(|c| {
                let cset = match c.cset {
                    'N' => "Cset::Numeric",
                    'X' => "Cset::Cset82",
                    'Y' => "Cset::Cset39",
                    _ => "Cset::Cset64",
                };
                let linters: Vec<String> = c.linters.iter().map(|l| format!("Linter::{}", l.variant_name())).collect();
                format!(
                    "Component {{ cset: {cset}, length_min: {}, length_max: {}, optional: {}, linters: &[{}] }}",
                    c.length_min,
                    c.length_max,
                    c.optional,
                    linters.join(", ")
                )
            })
            .collect();
        let requires: Vec<String> = spec
            .requires
            .iter()
            .map(|alternatives| {
                let alts: Vec<String> = alternatives
                    .iter()
                    .map(|group| render_str_list(group))
                    .collect();
                format!("&[{}]", alts.join(", "))
            })
            .collect();
        let dl_primary_key = match &spec.dl_primary_key {
            None => "None".to_string(),
            Some(sequences) => {
                let seqs: Vec<String> = sequences.iter().map(|seq| render_str_list(seq)).collect();
                format!("Some(&[{}])", seqs.join(", "))
            }
        };
        out.push_str(&format!(
            "    AiEntry {{\n        ai: {:?},\n        fnc1_required: {},\n        dl_data_attribute: {},\n        components: &[\n{}        ],\n        requires: &[{}],\n        excludes: {},\n        dl_primary_key: {},\n        title: {:?},\n    }},\n",
            spec.ai,
            spec.fnc1_required,
            spec.dl_data_attribute,
            components.iter().map(|c| format!("            {c},\n")).collect::<String>(),
            requires.join(", "),
            render_str_list(&spec.excludes),
            dl_primary_key,
            spec.title,
        ));
    }
    out.push_str("];\n");
    out
}
