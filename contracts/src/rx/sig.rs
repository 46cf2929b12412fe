//! The sig parser: prescription directions to dose, route, frequency and duration.
//!
//! Supported forms (case-insensitive; words in any order after the dose):
//!
//! | part | accepted |
//! |---|---|
//! | verb (optional) | take, inhale, apply, instill, use, give, chew, place, insert, spray |
//! | dose | `1`, `2`, `0.5`, `1/2`, `½`, `1-2` (the upper bound counts for supply), `one`…`four`, `half` |
//! | unit | tab(s)/tablet(s), cap(s)/capsule(s), puff(s)/inhalation(s), ml/mL, drop(s)/gtt(s), patch(es), unit(s), spray(s), g/gram(s), mg, supp(s)/suppository(ies), lozenge(s), sachet(s) |
//! | route | po, by mouth, orally, sl, sublingually, inh, inhaled, by inhalation, top, topically, pr, rectally, pv, vaginally, im, sc/subq, in each nostril, in each eye, in the affected eye(s), ou, os, ad, as, au |
//! | frequency | qd, daily, once daily, once a day, every day, bid, twice daily/a day, tid, three times daily/a day, qid, four times daily/a day, qhs, at bedtime, qam, every morning, qpm, every evening, q4h, q6h, q8h, q12h, q24h, `q4-6h`, `every 4 hours`, `every 4 to 6 hours`, qod, every other day, weekly, once a week, once weekly |
//! | as needed | prn, as needed, when required |
//! | duration | `x 30 days`, `for 10 days`, `x 7d`, `x 2 weeks`, `for 1 month` (30 days) |
//!
//! Anything else is an explicit "could not interpret" ([`SigError`]) naming the word: the
//! pharmacist then reads the directions themselves. Quantities are in thousandths.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sig {
    /// Units per dose, in thousandths (the upper bound of a range).
    pub dose_milli: u32,
    pub unit: Option<String>,
    pub route: Option<String>,
    /// Doses per day, in thousandths (`bid` = 2000; `q4-6h` = 6000, the most frequent;
    /// `qod` = 500; weekly = 143).
    pub doses_per_day_milli: u32,
    pub as_needed: bool,
    pub duration_days: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigError {
    pub reason: String,
}

impl fmt::Display for SigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not interpret the directions: {}", self.reason)
    }
}

fn fail<T>(reason: impl Into<String>) -> Result<T, SigError> {
    Err(SigError {
        reason: reason.into(),
    })
}

const VERBS: &[&str] = &[
    "take", "inhale", "apply", "instill", "use", "give", "chew", "place", "insert", "spray",
];
const UNITS: &[(&[&str], &str)] = &[
    (&["tab", "tabs", "tablet", "tablets"], "tablet"),
    (&["cap", "caps", "capsule", "capsules"], "capsule"),
    (&["puff", "puffs", "inhalation", "inhalations"], "puff"),
    (&["ml", "mls"], "mL"),
    (&["drop", "drops", "gtt", "gtts"], "drop"),
    (&["patch", "patches"], "patch"),
    (&["unit", "units"], "unit"),
    (&["spray", "sprays"], "spray"),
    (&["g", "gram", "grams"], "g"),
    (&["mg"], "mg"),
    (
        &["supp", "supps", "suppository", "suppositories"],
        "suppository",
    ),
    (&["lozenge", "lozenges"], "lozenge"),
    (&["sachet", "sachets"], "sachet"),
];
/// Routes as word sequences (longest first).
const ROUTES: &[(&[&str], &str)] = &[
    (&["in", "the", "affected", "eyes"], "ophthalmic"),
    (&["in", "the", "affected", "eye"], "ophthalmic"),
    (&["in", "each", "nostril"], "nasal"),
    (&["in", "each", "eye"], "ophthalmic"),
    (&["by", "inhalation"], "inhalation"),
    (&["by", "mouth"], "oral"),
    (&["po"], "oral"),
    (&["orally"], "oral"),
    (&["sl"], "sublingual"),
    (&["sublingually"], "sublingual"),
    (&["inh"], "inhalation"),
    (&["inhaled"], "inhalation"),
    (&["top"], "topical"),
    (&["topically"], "topical"),
    (&["pr"], "rectal"),
    (&["rectally"], "rectal"),
    (&["pv"], "vaginal"),
    (&["vaginally"], "vaginal"),
    (&["im"], "intramuscular"),
    (&["sc"], "subcutaneous"),
    (&["subq"], "subcutaneous"),
    (&["ou"], "ophthalmic"),
    (&["os"], "ophthalmic"),
    (&["ad"], "otic"),
    (&["as"], "otic"),
    (&["au"], "otic"),
];
/// Fixed frequencies: word sequences → doses per day in thousandths (longest first).
const FREQUENCIES: &[(&[&str], u32)] = &[
    (&["three", "times", "a", "day"], 3000),
    (&["four", "times", "a", "day"], 4000),
    (&["three", "times", "daily"], 3000),
    (&["four", "times", "daily"], 4000),
    (&["every", "other", "day"], 500),
    (&["twice", "a", "day"], 2000),
    (&["once", "a", "day"], 1000),
    (&["once", "a", "week"], 143),
    (&["twice", "daily"], 2000),
    (&["once", "daily"], 1000),
    (&["once", "weekly"], 143),
    (&["every", "day"], 1000),
    (&["every", "morning"], 1000),
    (&["every", "evening"], 1000),
    (&["at", "bedtime"], 1000),
    (&["qd"], 1000),
    (&["daily"], 1000),
    (&["bid"], 2000),
    (&["tid"], 3000),
    (&["qid"], 4000),
    (&["qhs"], 1000),
    (&["hs"], 1000),
    (&["qam"], 1000),
    (&["qpm"], 1000),
    (&["qod"], 500),
    (&["weekly"], 143),
];

fn starts_with(words: &[String], pattern: &[&str]) -> bool {
    words.len() >= pattern.len() && words.iter().zip(pattern).all(|(w, p)| w == p)
}

/// A decimal or fraction in thousandths.
fn quantity(word: &str) -> Option<u32> {
    match word {
        "one" => return Some(1000),
        "two" => return Some(2000),
        "three" => return Some(3000),
        "four" => return Some(4000),
        "half" | "½" => return Some(500),
        _ => {}
    }
    if let Some((n, d)) = word.split_once('/') {
        let (n, d): (u32, u32) = (n.parse().ok()?, d.parse().ok()?);
        return (d > 0).then(|| n * 1000 / d);
    }
    let (whole, fraction) = word.split_once('.').unwrap_or((word, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.len() > 3 {
        return None;
    }
    let whole: u32 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let fraction: u32 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<3}").parse().ok()?
    };
    whole.checked_mul(1000)?.checked_add(fraction)
}

/// Splits "q4-6h", "q4h", "x30", "7d" and "1-2" style tokens apart from their letters.
fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace(['(', ')', ',', ';'], " ")
        .split_whitespace()
        .map(|w| w.trim_end_matches('.').to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Interval tokens: `q4h`, `q4-6h`, `q12hr` → hours (the shortest interval).
fn interval_hours(word: &str) -> Option<u32> {
    let body = word.strip_prefix('q')?;
    let body = body
        .strip_suffix("hrs")
        .or_else(|| body.strip_suffix("hr"))
        .or_else(|| body.strip_suffix('h'))?;
    let low = body.split('-').next()?;
    let hours: u32 = low.parse().ok()?;
    (1..=72).contains(&hours).then_some(hours)
}

pub fn parse(text: &str) -> Result<Sig, SigError> {
    let mut w = words(text);
    if w.is_empty() {
        return fail("no directions");
    }
    if VERBS.contains(&w[0].as_str()) {
        w.remove(0);
    }
    // Dose: a quantity or a range.
    let Some(first) = w.first().cloned() else {
        return fail("no dose");
    };
    let dose_milli = match first.split_once('-') {
        Some((low, high)) if quantity(low).is_some() => quantity(high),
        _ => quantity(&first),
    }
    .ok_or_else(|| SigError {
        reason: format!("{first:?} is not a dose (a number such as 1, 0.5, 1/2 or 1-2)"),
    })?;
    if dose_milli == 0 {
        return fail("a dose of zero");
    }
    let mut rest: &[String] = &w[1..];
    let mut sig = Sig {
        dose_milli,
        unit: None,
        route: None,
        doses_per_day_milli: 0,
        as_needed: false,
        duration_days: None,
    };
    while let Some(word) = rest.first() {
        // Before routes: "as" alone is the left ear.
        if word == "prn" {
            sig.as_needed = true;
            rest = &rest[1..];
            continue;
        }
        if starts_with(rest, &["as", "needed"]) || starts_with(rest, &["when", "required"]) {
            sig.as_needed = true;
            rest = &rest[2..];
            continue;
        }
        if let Some((_, unit)) = UNITS
            .iter()
            .find(|(names, _)| names.contains(&word.as_str()))
        {
            if sig.unit.is_some() {
                return fail(format!("a second unit {word:?}"));
            }
            sig.unit = Some(unit.to_string());
            rest = &rest[1..];
            continue;
        }
        if let Some((pattern, route)) = ROUTES.iter().find(|(p, _)| starts_with(rest, p)) {
            sig.route = Some(route.to_string());
            rest = &rest[pattern.len()..];
            continue;
        }
        if let Some((pattern, per_day)) = FREQUENCIES.iter().find(|(p, _)| starts_with(rest, p)) {
            if sig.doses_per_day_milli != 0 {
                return fail(format!("a second frequency at {word:?}"));
            }
            sig.doses_per_day_milli = *per_day;
            rest = &rest[pattern.len()..];
            continue;
        }
        if let Some(hours) = interval_hours(word) {
            sig.doses_per_day_milli = 24_000 / hours;
            rest = &rest[1..];
            continue;
        }
        // "every 4 hours", "every 4 to 6 hours"
        if word == "every" {
            let hours = rest
                .get(1)
                .and_then(|h| h.split('-').next()?.parse::<u32>().ok());
            let unit_at = if rest.get(2).map(String::as_str) == Some("to") {
                4
            } else {
                2
            };
            if let (Some(hours), Some("hours" | "hour" | "hrs" | "h")) =
                (hours, rest.get(unit_at).map(String::as_str))
            {
                if (1..=72).contains(&hours) {
                    sig.doses_per_day_milli = 24_000 / hours;
                    rest = &rest[unit_at + 1..];
                    continue;
                }
            }
        }
        // Duration: "x 30 days", "x30d", "for 10 days", "x 2 weeks", "for 1 month".
        if word == "x" || word == "for" || word.starts_with('x') {
            let (number, unit, used) = if word == "x" || word == "for" {
                let next = rest.get(1).cloned().unwrap_or_default();
                match next.find(|c: char| c.is_ascii_alphabetic()) {
                    Some(at) => (next[..at].to_string(), next[at..].to_string(), 2),
                    None => (next, rest.get(2).cloned().unwrap_or_default(), 3),
                }
            } else {
                let body = &word[1..];
                match body.find(|c: char| c.is_ascii_alphabetic()) {
                    Some(at) => (body[..at].to_string(), body[at..].to_string(), 1),
                    None => (
                        body.to_string(),
                        rest.get(1).cloned().unwrap_or_default(),
                        2,
                    ),
                }
            };
            let factor = match unit.as_str() {
                "d" | "day" | "days" => Some(1),
                "w" | "wk" | "wks" | "week" | "weeks" => Some(7),
                "month" | "months" | "mo" => Some(30),
                _ => None,
            };
            if let (Ok(n), Some(factor)) = (number.parse::<u32>(), factor) {
                if n > 0 && n <= 366 {
                    sig.duration_days = Some(n * factor);
                    rest = &rest[used.min(rest.len())..];
                    continue;
                }
            }
        }
        return fail(format!(
            "{word:?} is not a unit, route, frequency or duration this parser knows"
        ));
    }
    if sig.doses_per_day_milli == 0 {
        return fail("no frequency (e.g. bid, q6h, once daily)");
    }
    Ok(sig)
}

/// Days a dispensed quantity (in thousandths of the sig's unit) lasts at the sig's highest
/// use; `None` when it is less than a day.
pub fn days_supply(sig: &Sig, quantity_milli: u64) -> Option<u32> {
    let per_day_milli = u64::from(sig.dose_milli) * u64::from(sig.doses_per_day_milli) / 1000;
    if per_day_milli == 0 {
        return None;
    }
    let days = quantity_milli / per_day_milli;
    (days > 0).then(|| days.min(u64::from(u32::MAX)) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(text: &str) -> Sig {
        parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn common_directions() {
        let s = sig("1 tab po bid x 30 days");
        assert_eq!(
            s,
            Sig {
                dose_milli: 1000,
                unit: Some("tablet".into()),
                route: Some("oral".into()),
                doses_per_day_milli: 2000,
                as_needed: false,
                duration_days: Some(30)
            }
        );
        assert_eq!(days_supply(&s, 60_000), Some(30));
        let s = sig("2 puffs q4-6h prn");
        assert_eq!(
            (s.dose_milli, s.doses_per_day_milli, s.as_needed),
            (2000, 6000, true)
        );
        assert_eq!(s.unit.as_deref(), Some("puff"));
        assert_eq!(
            days_supply(&s, 200_000),
            Some(16),
            "200 puffs at up to 12 a day"
        );
        let s = sig("Take 1 tablet by mouth twice daily for 10 days");
        assert_eq!(
            (s.route.as_deref(), s.doses_per_day_milli, s.duration_days),
            (Some("oral"), 2000, Some(10))
        );
        let s = sig("1/2 tab po qhs");
        assert_eq!((s.dose_milli, s.doses_per_day_milli), (500, 1000));
        assert_eq!(days_supply(&s, 15_000), Some(30));
        let s = sig("10 mL po tid x7d");
        assert_eq!(
            (s.dose_milli, s.unit.as_deref(), s.duration_days),
            (10_000, Some("mL"), Some(7))
        );
        let s = sig("instill 1 drop in each eye every 6 hours");
        assert_eq!(
            (s.route.as_deref(), s.doses_per_day_milli),
            (Some("ophthalmic"), 4000)
        );
        let s = sig("1-2 caps po every 4 to 6 hours as needed");
        assert_eq!(
            (s.dose_milli, s.doses_per_day_milli, s.as_needed),
            (2000, 6000, true)
        );
        let s = sig("apply 1 patch weekly x 4 weeks");
        assert_eq!((s.doses_per_day_milli, s.duration_days), (143, Some(28)));
        let s = sig("0.5 tab po qod");
        assert_eq!((s.dose_milli, s.doses_per_day_milli), (500, 500));
    }

    #[test]
    fn what_it_cannot_read_it_says() {
        for (text, needle) in [
            ("", "no directions"),
            ("take as directed", "is not a dose"),
            ("1 tab po", "no frequency"),
            ("1 tab po bid with food", "\"with\""),
            ("1 tab po bid tid", "second frequency"),
            ("0 tab po bid", "zero"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.starts_with("could not interpret"), "{text}: {err}");
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
