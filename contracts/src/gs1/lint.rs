//! Content checks ("linters") named by the GS1 Barcode Syntax Dictionary. Each takes one
//! component of an AI value and says why it is wrong.

use super::check::{gs1_check_digit_valid, gs1_check_pair_valid};
use super::date::days_in_month;
use super::iso_codes::{ISO3166_ALPHA2, ISO3166_NUMERIC, ISO4217_NUMERIC};

macro_rules! linters {
    ($($variant:ident => $name:literal),+ $(,)?) => {
        /// A named content check from the dictionary.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Linter { $($variant),+ }

        impl Linter {
            /// Dictionary name, e.g. `csum`.
            pub fn name(self) -> &'static str {
                match self { $(Linter::$variant => $name),+ }
            }
            /// Rust variant name, used by the table generator.
            pub fn variant_name(self) -> &'static str {
                match self { $(Linter::$variant => stringify!($variant)),+ }
            }
            pub fn from_name(name: &str) -> Option<Linter> {
                match name { $($name => Some(Linter::$variant),)+ _ => None }
            }
        }
    };
}

linters! {
    Csum => "csum",
    Csumalpha => "csumalpha",
    Gcppos1 => "gcppos1",
    Gcppos2 => "gcppos2",
    Yymmd0 => "yymmd0",
    Yymmdd => "yymmdd",
    Yyyymmdd => "yyyymmdd",
    Yyyymmd0 => "yyyymmd0",
    Hhmi => "hhmi",
    Hh => "hh",
    Mi => "mi",
    Ss => "ss",
    Iso3166 => "iso3166",
    Iso3166999 => "iso3166999",
    Iso3166alpha2 => "iso3166alpha2",
    Iso4217 => "iso4217",
    Iso5218 => "iso5218",
    Pcenc => "pcenc",
    Hyphen => "hyphen",
    Yesno => "yesno",
    Nonzero => "nonzero",
    Zero => "zero",
    Pieceoftotal => "pieceoftotal",
    Winding => "winding",
    Posinseqslash => "posinseqslash",
    Packagetype => "packagetype",
    Nozeroprefix => "nozeroprefix",
    Mediatype => "mediatype",
    Latitude => "latitude",
    Longitude => "longitude",
    Importeridx => "importeridx",
    Iban => "iban",
    Hasnondigit => "hasnondigit",
    Couponcode => "couponcode",
    Couponposoffer => "couponposoffer",
}

/// Shortest GS1 Company Prefix (GS1 General Specifications: 4 digits for GS1-8 prefixes).
const GCP_LENGTH_MIN: usize = 4;

fn two_digits(data: &[u8], at: usize) -> Option<u32> {
    let tens = data.get(at)?;
    let ones = data.get(at + 1)?;
    if tens.is_ascii_digit() && ones.is_ascii_digit() {
        Some(u32::from(tens - b'0') * 10 + u32::from(ones - b'0'))
    } else {
        None
    }
}

fn all_digits(data: &str) -> bool {
    !data.is_empty() && data.bytes().all(|b| b.is_ascii_digit())
}

fn check_date(data: &str, year_digits: usize, day_zero_allowed: bool) -> Result<(), String> {
    let bytes = data.as_bytes();
    if bytes.len() != year_digits + 4 || !all_digits(data) {
        return Err(format!("date must be {} digits", year_digits + 4));
    }
    let year = data[..year_digits]
        .parse::<u32>()
        .map_err(|_| "bad year".to_string())?;
    // Two-digit years: every year divisible by 4 is a leap year (2000 was), as the engine does.
    let full_year = if year_digits == 2 { 2000 + year } else { year };
    let month = two_digits(bytes, year_digits).unwrap_or(0);
    let day = two_digits(bytes, year_digits + 2).unwrap_or(0);
    if !(1..=12).contains(&month) {
        return Err(format!("month {month:02} is not 01-12"));
    }
    if day == 0 {
        return if day_zero_allowed {
            Ok(())
        } else {
            Err("day 00 is not allowed here".to_string())
        };
    }
    let last = days_in_month(full_year, month);
    if day > last {
        return Err(format!(
            "day {day:02} does not exist in month {month:02} (last day {last})"
        ));
    }
    Ok(())
}

fn check_range2(data: &str, max: u32, what: &str) -> Result<(), String> {
    match (data.len(), two_digits(data.as_bytes(), 0)) {
        (2, Some(value)) if value <= max => Ok(()),
        _ => Err(format!("{what} must be 00-{max:02}")),
    }
}

fn sorted_contains(list: &[&str], value: &str) -> bool {
    list.binary_search(&value).is_ok()
}

impl Linter {
    /// Applies the check. `Err` holds a sentence saying what is wrong.
    pub fn check(self, data: &str) -> Result<(), String> {
        let bytes = data.as_bytes();
        match self {
            Linter::Csum => {
                if !all_digits(data) {
                    return Err("check digit applies to digits only".to_string());
                }
                if gs1_check_digit_valid(data) {
                    Ok(())
                } else {
                    Err("incorrect check digit".to_string())
                }
            }
            Linter::Csumalpha => gs1_check_pair_valid(data),
            Linter::Gcppos1 | Linter::Gcppos2 => {
                let start = if self == Linter::Gcppos2 { 1 } else { 0 };
                let rest = bytes.get(start..).unwrap_or(&[]);
                if rest.len() < GCP_LENGTH_MIN {
                    return Err("too short to hold a GS1 Company Prefix".to_string());
                }
                if rest[..GCP_LENGTH_MIN].iter().all(u8::is_ascii_digit) {
                    Ok(())
                } else {
                    Err("GS1 Company Prefix must start with 4 digits".to_string())
                }
            }
            Linter::Yymmd0 => check_date(data, 2, true),
            Linter::Yymmdd => check_date(data, 2, false),
            Linter::Yyyymmdd => check_date(data, 4, false),
            Linter::Yyyymmd0 => check_date(data, 4, true),
            Linter::Hhmi => {
                if data.len() != 4 {
                    return Err("time must be HHMI".to_string());
                }
                check_range2(&data[..2], 23, "hour")?;
                check_range2(&data[2..], 59, "minute")
            }
            Linter::Hh => check_range2(data, 23, "hour"),
            Linter::Mi => check_range2(data, 59, "minute"),
            Linter::Ss => check_range2(data, 59, "second"),
            Linter::Iso3166 => {
                if sorted_contains(ISO3166_NUMERIC, data) {
                    Ok(())
                } else {
                    Err(format!("{data} is not an ISO 3166 numeric country code"))
                }
            }
            Linter::Iso3166999 => {
                if data == "999" || sorted_contains(ISO3166_NUMERIC, data) {
                    Ok(())
                } else {
                    Err(format!(
                        "{data} is not an ISO 3166 numeric country code or 999"
                    ))
                }
            }
            Linter::Iso3166alpha2 => {
                if sorted_contains(ISO3166_ALPHA2, data) {
                    Ok(())
                } else {
                    Err(format!("{data} is not an ISO 3166 alpha-2 country code"))
                }
            }
            Linter::Iso4217 => {
                if sorted_contains(ISO4217_NUMERIC, data) {
                    Ok(())
                } else {
                    Err(format!("{data} is not an ISO 4217 numeric currency code"))
                }
            }
            Linter::Iso5218 => match data {
                "0" | "1" | "2" | "9" => Ok(()),
                _ => Err("sex code must be 0, 1, 2 or 9 (ISO 5218)".to_string()),
            },
            Linter::Pcenc => {
                let mut index = 0;
                while index < bytes.len() {
                    if bytes[index] == b'%' {
                        let valid = bytes.get(index + 1).is_some_and(u8::is_ascii_hexdigit)
                            && bytes.get(index + 2).is_some_and(u8::is_ascii_hexdigit);
                        if !valid {
                            return Err(format!(
                                "invalid percent-encoding at position {}",
                                index + 1
                            ));
                        }
                        index += 3;
                    } else {
                        index += 1;
                    }
                }
                Ok(())
            }
            Linter::Hyphen => {
                if bytes.iter().all(|&b| b == b'-') {
                    Ok(())
                } else {
                    Err("must be a hyphen".to_string())
                }
            }
            Linter::Yesno => match data {
                "0" | "1" => Ok(()),
                _ => Err("must be 0 or 1".to_string()),
            },
            Linter::Nonzero => {
                if bytes.iter().all(|&b| b == b'0') {
                    Err("must not be zero".to_string())
                } else {
                    Ok(())
                }
            }
            Linter::Zero => {
                if bytes.iter().all(|&b| b == b'0') {
                    Ok(())
                } else {
                    Err("must be zero".to_string())
                }
            }
            Linter::Pieceoftotal => {
                let piece = two_digits(bytes, 0);
                let total = two_digits(bytes, 2);
                match (bytes.len(), piece, total) {
                    (4, Some(piece), Some(total)) if piece >= 1 && total >= 1 && piece <= total => {
                        Ok(())
                    }
                    _ => Err("piece must be 01..total and total must be non-zero".to_string()),
                }
            }
            Linter::Winding => match data {
                "0" | "1" | "9" => Ok(()),
                _ => Err("winding direction must be 0, 1 or 9".to_string()),
            },
            Linter::Posinseqslash => {
                let mut parts = data.splitn(2, '/');
                let position = parts.next().unwrap_or("");
                let sequence = parts.next().unwrap_or("");
                let valid = all_digits(position)
                    && all_digits(sequence)
                    && !position.starts_with('0')
                    && !sequence.starts_with('0')
                    && position.parse::<u32>().ok() <= sequence.parse::<u32>().ok();
                if valid {
                    Ok(())
                } else {
                    Err("must be position/sequence with 1 <= position <= sequence".to_string())
                }
            }
            Linter::Packagetype => {
                // Structural check only: UN/ECE Recommendation 21 codes are 1-3 upper-case
                // alphanumerics. The full code list is not embedded.
                if (1..=3).contains(&bytes.len())
                    && bytes
                        .iter()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                {
                    Ok(())
                } else {
                    Err("package type must be 1-3 upper-case letters or digits".to_string())
                }
            }
            Linter::Nozeroprefix => {
                if bytes.len() > 1 && bytes[0] == b'0' {
                    Err("must not start with 0".to_string())
                } else {
                    Ok(())
                }
            }
            Linter::Mediatype => match two_digits(bytes, 0) {
                Some(code)
                    if bytes.len() == 2
                        && ((1..=10).contains(&code) || (80..=99).contains(&code)) =>
                {
                    Ok(())
                }
                _ => Err("AIDC media type must be 01-10 or 80-99".to_string()),
            },
            Linter::Latitude | Linter::Longitude => {
                let max: u64 = if self == Linter::Latitude {
                    1_800_000_000
                } else {
                    3_600_000_000
                };
                match data.parse::<u64>() {
                    Ok(value) if all_digits(data) && value <= max => Ok(()),
                    _ => Err(format!("{} must be 0..{max}", self.name())),
                }
            }
            Linter::Importeridx => {
                if bytes.len() == 1
                    && (bytes[0].is_ascii_alphanumeric() || matches!(bytes[0], b'-' | b'_'))
                {
                    Ok(())
                } else {
                    Err("importer index must be one of 0-9 A-Z a-z - _".to_string())
                }
            }
            Linter::Iban => check_iban(data),
            Linter::Hasnondigit => {
                if bytes.iter().any(|b| !b.is_ascii_digit()) {
                    Ok(())
                } else {
                    Err("must contain a non-digit".to_string())
                }
            }
            Linter::Couponcode | Linter::Couponposoffer => {
                // Structural check only: North American coupon codes are digit strings. The
                // field-by-field VLI decoding of the coupon standard is not implemented.
                if all_digits(data) {
                    Ok(())
                } else {
                    Err("coupon data must be digits".to_string())
                }
            }
        }
    }
}

/// IBAN: two letters, two check digits, up to 30 alphanumerics, ISO 7064 mod 97-10 == 1.
/// Country-specific lengths are not checked.
fn check_iban(data: &str) -> Result<(), String> {
    let bytes = data.as_bytes();
    if bytes.len() < 5 || bytes.len() > 34 {
        return Err("IBAN length must be 5-34".to_string());
    }
    if !bytes[..2].iter().all(u8::is_ascii_uppercase) || !bytes[2..4].iter().all(u8::is_ascii_digit)
    {
        return Err("IBAN must start with a country code and two check digits".to_string());
    }
    if !sorted_contains(ISO3166_ALPHA2, &data[..2]) {
        return Err(format!(
            "{} is not an ISO 3166 alpha-2 country code",
            &data[..2]
        ));
    }
    let mut remainder: u32 = 0;
    for &byte in bytes[4..].iter().chain(bytes[..4].iter()) {
        let value = match byte {
            b'0'..=b'9' => u32::from(byte - b'0'),
            b'A'..=b'Z' => u32::from(byte - b'A') + 10,
            _ => return Err("IBAN may contain only digits and upper-case letters".to_string()),
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    if remainder == 1 {
        Ok(())
    } else {
        Err("incorrect IBAN check digits".to_string())
    }
}
