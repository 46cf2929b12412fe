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
        return Err(format!(
            "day {day:02} does not exist in {year:04}-{month:02}"
        ));
    }
    Ok(Date { year, month, day })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_zero_is_last_day() {
        assert_eq!(
            parse_yymmdd("240200", 2026).map(|d| d.iso()),
            Ok("2024-02-29".to_string())
        );
        assert_eq!(
            parse_yymmdd("250200", 2026).map(|d| d.iso()),
            Ok("2025-02-28".to_string())
        );
        assert_eq!(
            parse_yymmdd("261100", 2026).map(|d| d.iso()),
            Ok("2026-11-30".to_string())
        );
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

/// The calendar year of a Unix time (seconds), for callers that hold a clock and need the
/// reference year of [`parse_yymmdd`].
pub fn year_of_unix_seconds(seconds: u64) -> u32 {
    let days = (seconds / 86_400) as i64;
    civil_from_days(days).0 as u32
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month, day) to days since 1970-01-01.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod civil_tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(year_of_unix_seconds(1_795_000_000), 2026);
        for days in [-1000, 0, 11_016, 20_000, 60_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
