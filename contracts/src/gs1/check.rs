//! GS1 check digits (mod 10, weights 3,1,3,… from the right) and the alphanumeric check pair.

/// Check digit for the digits of `payload` (everything except the check digit).
/// Returns `None` if `payload` holds a non-digit.
pub fn gs1_check_digit(payload: &str) -> Option<u8> {
    let mut sum: u32 = 0;
    for (index_from_right, byte) in payload.bytes().rev().enumerate() {
        if !byte.is_ascii_digit() {
            return None;
        }
        let weight = if index_from_right % 2 == 0 { 3 } else { 1 };
        sum += u32::from(byte - b'0') * weight;
    }
    Some(((10 - sum % 10) % 10) as u8)
}

/// Whether the last digit of `digits` is the GS1 check digit of the others.
pub fn gs1_check_digit_valid(digits: &str) -> bool {
    let Some(last) = digits.as_bytes().last() else {
        return false;
    };
    if !last.is_ascii_digit() {
        return false;
    }
    gs1_check_digit(&digits[..digits.len() - 1]) == Some(last - b'0')
}

const CSET82_ORDERED: &[u8] =
    b"!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";
const CSET32_ORDERED: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

fn nth_prime(n: usize) -> u32 {
    let mut found = 0;
    let mut candidate = 1u32;
    loop {
        candidate += 1;
        if (2..candidate)
            .take_while(|d| d * d <= candidate)
            .all(|d| candidate % d != 0)
        {
            if found == n {
                return candidate;
            }
            found += 1;
        }
    }
}

/// GS1 alphanumeric check character pair (GMN, AI 8013): the data characters' CSET 82 positions
/// weighted by increasing primes from right to left, mod 1021, split into two CSET 32 characters.
pub fn gs1_check_pair_valid(data: &str) -> Result<(), String> {
    let bytes = data.as_bytes();
    if bytes.len() < 2 {
        return Err("too short for a check character pair".to_string());
    }
    let (payload, pair) = bytes.split_at(bytes.len() - 2);
    let mut sum: u32 = 0;
    for (index_from_right, byte) in payload.iter().rev().enumerate() {
        let Some(value) = CSET82_ORDERED.iter().position(|c| c == byte) else {
            return Err(format!("character {:?} is not in CSET 82", *byte as char));
        };
        sum += value as u32 * nth_prime(index_from_right);
    }
    sum %= 1021;
    if !pair.iter().all(|b| CSET32_ORDERED.contains(b)) {
        return Err("check characters must be in CSET 32".to_string());
    }
    let expected = [
        CSET32_ORDERED[(sum >> 5) as usize],
        CSET32_ORDERED[(sum & 31) as usize],
    ];
    if pair == expected {
        Ok(())
    } else {
        Err("incorrect check character pair".to_string())
    }
}

/// A GTIN-8/12/13/14 with a valid check digit, stored as 14 digits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gtin(String);

impl Gtin {
    /// Accepts 8, 12, 13 or 14 digits with a valid check digit; pads to GTIN-14.
    pub fn parse(digits: &str) -> Result<Gtin, String> {
        if !matches!(digits.len(), 8 | 12 | 13 | 14) {
            return Err(format!(
                "GTIN must have 8, 12, 13 or 14 digits, got {}",
                digits.len()
            ));
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("GTIN must be digits only".to_string());
        }
        if !gs1_check_digit_valid(digits) {
            return Err("incorrect GTIN check digit".to_string());
        }
        Ok(Gtin(format!("{digits:0>14}")))
    }

    pub fn as_gtin14(&self) -> &str {
        &self.0
    }
}

/// Validates an N-digit key with a trailing GS1 check digit (SSCC = 18, GLN = 13).
pub fn validate_keyed_digits(digits: &str, length: usize, what: &str) -> Result<(), String> {
    if digits.len() != length || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} must be {length} digits"));
    }
    if !gs1_check_digit_valid(digits) {
        return Err(format!("incorrect {what} check digit"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digits() {
        assert_eq!(gs1_check_digit("0030001012345"), Some(5));
        assert!(gs1_check_digit_valid("00300010123455"));
        assert!(!gs1_check_digit_valid("00300010123454"));
        assert!(gs1_check_digit_valid("106141411234567897"));
        assert!(Gtin::parse("02345673").is_ok());
        assert_eq!(
            Gtin::parse("416000336108").map(|g| g.as_gtin14().to_string()),
            Ok("00416000336108".to_string())
        );
        assert!(validate_keyed_digits("4012345000115", 13, "GLN").is_ok());
    }

    #[test]
    fn check_pair() {
        assert!(gs1_check_pair_valid("1987654Ad4X4bL5ttr2310c2K").is_ok());
        assert!(gs1_check_pair_valid("1987654Ad4X4bL5ttr2310cXK").is_err());
        assert!(gs1_check_pair_valid("22").is_ok());
        assert!(gs1_check_pair_valid("33").is_err());
    }
}
