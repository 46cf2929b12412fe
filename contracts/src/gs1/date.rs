//! GS1 dates: YYMMDD with day 00 meaning the last day of the month.

use serde::Serialize;

pub fn is_leap_year(year: u32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

pub fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// A calendar date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Date {
    pub year: u32,
    pub month: u32,
    pub day: u32,
}

impl Date {
    /// `YYYY-MM-DD`.
    pub fn iso(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Resolves a two-digit year with the GS1 General Specifications sliding window (§7.12):
/// relative to `reference_year` (the current year, supplied by the caller because this crate
/// reads no clock), a difference of 51..=99 years ahead means the previous century and 50..=99
/// years behind means the next century.
pub fn resolve_two_digit_year(two_digit_year: u32, reference_year: u32) -> u32 {
    let century = reference_year / 100 * 100;
    let current = reference_year % 100;
    let difference = two_digit_year as i64 - current as i64;
    let candidate = century as i64 + two_digit_year as i64;
    let resolved = if difference >= 51 {
        candidate - 100
    } else if difference <= -50 {
        candidate + 100
    } else {
        candidate
    };
    resolved as u32
}

/// Parses YYMMDD (day 00 = last day of the month) into a full date.
pub fn parse_yymmdd(text: &str, reference_year: u32) -> Result<Date, String> {
    let bytes = text.as_bytes();
    if bytes.len() != 6 || !bytes.iter().all(u8::is_ascii_digit) {
        return Err("date must be 6 digits YYMMDD".to_string());
    }
    let number = |at: usize| u32::from(bytes[at] - b'0') * 10 + u32::from(bytes[at + 1] - b'0');
    let year = resolve_two_digit_year(number(0), reference_year);
    let month = number(2);
    let day = number(4);
    if !(1..=12).contains(&month) {
        return Err(format!("month {month:02} is not 01-12"));
    }
    let last = days_in_month(year, month);
    let day = if day == 0 { last } else { day };
    if day > last {
        return Err(format!("day {day:02} does not exist in {year:04}-{month:02}"));
    }
    Ok(Date { year, month, day })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_zero_is_last_day() {
        assert_eq!(parse_yymmdd("240200", 2026).map(|d| d.iso()), Ok("2024-02-29".to_string()));
        assert_eq!(parse_yymmdd("250200", 2026).map(|d| d.iso()), Ok("2025-02-28".to_string()));
        assert_eq!(parse_yymmdd("261100", 2026).map(|d| d.iso()), Ok("2026-11-30".to_string()));
        assert!(parse_yymmdd("250230", 2026).is_err());
        assert!(parse_yymmdd("251300", 2026).is_err());
    }

    #[test]
    fn century_window() {
        assert_eq!(resolve_two_digit_year(76, 2026), 2076);
        assert_eq!(resolve_two_digit_year(77, 2026), 1977);
        assert_eq!(resolve_two_digit_year(99, 2050), 2099);
        assert_eq!(resolve_two_digit_year(0, 2050), 2100);
        assert_eq!(resolve_two_digit_year(0, 2049), 2000);
        assert_eq!(resolve_two_digit_year(1, 2099), 2101);
    }
}
