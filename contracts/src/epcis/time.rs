//! xsd:dateTime handling: validation and normalisation to UTC with millisecond precision, as
//! the CBV 2.0 event hash requires.

use crate::gs1::date::{civil_from_days, days_from_civil, days_in_month};

fn number(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Parses `±HH:MM` into minutes east of UTC.
pub fn parse_offset(text: &str) -> Result<i64, String> {
    let bytes = text.as_bytes();
    let valid_shape =
        text.is_ascii() && bytes.len() == 6 && matches!(bytes[0], b'+' | b'-') && bytes[3] == b':';
    let hours = if valid_shape {
        number(&text[1..3])
    } else {
        None
    };
    let minutes = if valid_shape {
        number(&text[4..6])
    } else {
        None
    };
    match (hours, minutes) {
        (Some(h), Some(m)) if h <= 14 && m < 60 => Ok(if bytes[0] == b'-' {
            -(h * 60 + m)
        } else {
            h * 60 + m
        }),
        _ => Err(format!("{text:?} is not a time zone offset ±HH:MM")),
    }
}

/// Parses an xsd:dateTime with a mandatory zone (`Z` or `±HH:MM`) into milliseconds since the
/// Unix epoch.
pub fn parse_date_time(text: &str) -> Result<i64, String> {
    let fail = || format!("{text:?} is not a date-time YYYY-MM-DDThh:mm:ss[.sss](Z|±hh:mm)");
    let bytes = text.as_bytes();
    if !text.is_ascii()
        || bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || bytes[10] != b'T'
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return Err(fail());
    }
    let year = number(&text[0..4]).ok_or_else(fail)?;
    let month = number(&text[5..7]).ok_or_else(fail)? as u32;
    let day = number(&text[8..10]).ok_or_else(fail)? as u32;
    let hour = number(&text[11..13]).ok_or_else(fail)?;
    let minute = number(&text[14..16]).ok_or_else(fail)?;
    let second = number(&text[17..19]).ok_or_else(fail)?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year as u32, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(fail());
    }
    let mut rest = &text[19..];
    let mut millis = 0i64;
    if let Some(fraction_and_zone) = rest.strip_prefix('.') {
        let digits = fraction_and_zone
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        if digits == 0 {
            return Err(fail());
        }
        let fraction = &fraction_and_zone[..digits];
        // Truncate to milliseconds.
        let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = number(&padded).ok_or_else(fail)?;
        rest = &fraction_and_zone[digits..];
    }
    let offset_minutes = if rest == "Z" {
        0
    } else {
        parse_offset(rest).map_err(|_| fail())?
    };
    let days = days_from_civil(year, month, day);
    Ok(
        ((days * 86_400 + hour * 3600 + minute * 60 + second) - offset_minutes * 60) * 1000
            + millis,
    )
}

/// `YYYY-MM-DDThh:mm:ss.sssZ` of milliseconds since the epoch.
pub fn format_utc_millis(millis: i64) -> String {
    let days = millis.div_euclid(86_400_000);
    let in_day = millis.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

/// Normalises a date-time to UTC with milliseconds.
pub fn normalize_date_time(text: &str) -> Result<String, String> {
    parse_date_time(text).map(format_utc_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise() {
        assert_eq!(
            normalize_date_time("2020-03-04T11:00:30.000+01:00").unwrap(),
            "2020-03-04T10:00:30.000Z"
        );
        assert_eq!(
            normalize_date_time("2022-02-17T11:30:47.0Z").unwrap(),
            "2022-02-17T11:30:47.000Z"
        );
        assert_eq!(
            normalize_date_time("2019-10-21T06:05:00-06:00").unwrap(),
            "2019-10-21T12:05:00.000Z"
        );
        assert_eq!(
            normalize_date_time("2005-04-04T20:33:31.116789-06:00").unwrap(),
            "2005-04-05T02:33:31.116Z"
        );
        assert!(normalize_date_time("2005-04-04T20:33:31").is_err());
        assert!(normalize_date_time("2005-02-30T20:33:31Z").is_err());
        assert_eq!(parse_offset("-05:00"), Ok(-300));
        assert!(parse_offset("0500").is_err());
    }
}
