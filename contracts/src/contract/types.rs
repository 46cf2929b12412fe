//! Vocabulary shared by the IAM and custody contracts: identifiers, dates, block context,
//! rejections. Every type here has one Borsh encoding.

use borsh::{BorshDeserialize, BorshSerialize};
use pharmalink_ledger::{Hash, PublicKey};
use std::fmt;

/// Longest EPC URN accepted (an SGTIN URN with a 20-character serial escaped in full is 89).
pub const EPC_BYTES_MAX: usize = 96;
/// Longest free text (names, reasons, lot numbers are shorter: see their own limits).
pub const TEXT_BYTES_MAX: usize = 256;
/// Longest lot number (GS1 AI 10: x..20).
pub const LOT_BYTES_MAX: usize = 20;
/// Longest serial number (GS1 AI 21: x..20).
pub const SERIAL_BYTES_MAX: usize = 20;

/// Where a transaction executes: the injected block height and proposer timestamp (the state
/// machine never reads a clock) and the transaction's signer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockContext {
    pub height: u64,
    pub timestamp_ms: u64,
    pub signer: PublicKey,
}

impl BlockContext {
    /// The UTC calendar day of the block timestamp, as `Date`.
    pub fn date(&self) -> Date {
        Date::from_unix_days((self.timestamp_ms / 86_400_000) as i64)
    }
}

/// A contract's refusal: a machine-readable `code` naming the rule, and a message for people.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    pub code: &'static str,
    pub message: String,
}

impl Rejection {
    pub fn new(code: &'static str, message: impl Into<String>) -> Rejection {
        Rejection {
            code,
            message: message.into(),
        }
    }
}

/// Shorthand for `Err(Rejection::new(code, message))`.
pub fn reject<T>(code: &'static str, message: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection::new(code, message))
}

/// Checks a rule; on failure rejects with its code.
pub fn ensure(
    condition: bool,
    code: &'static str,
    message: impl FnOnce() -> String,
) -> Result<(), Rejection> {
    if condition {
        Ok(())
    } else {
        Err(Rejection::new(code, message()))
    }
}

/// Where an event sits in the log: block height, transaction index, event index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub struct Position {
    pub height: u64,
    pub tx: u32,
    pub event: u32,
}

impl Position {
    /// Big-endian bytes: sorts like the position.
    pub fn key(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.height.to_be_bytes());
        out[8..12].copy_from_slice(&self.tx.to_be_bytes());
        out[12..].copy_from_slice(&self.event.to_be_bytes());
        out
    }

    pub fn from_key(bytes: &[u8]) -> Option<Position> {
        if bytes.len() != 16 {
            return None;
        }
        let mut height = [0u8; 8];
        height.copy_from_slice(&bytes[..8]);
        let mut tx = [0u8; 4];
        tx.copy_from_slice(&bytes[8..12]);
        let mut event = [0u8; 4];
        event.copy_from_slice(&bytes[12..]);
        Some(Position {
            height: u64::from_be_bytes(height),
            tx: u32::from_be_bytes(tx),
            event: u32::from_be_bytes(event),
        })
    }
}

fn gs1_mod10_valid(digits: &[u8]) -> bool {
    let Some((last, body)) = digits.split_last() else {
        return false;
    };
    if !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 0 {
                d * 3
            } else {
                d
            }
        })
        .sum();
    (10 - sum % 10) % 10 == u32::from(last - b'0')
}

/// GS1 Global Location Number: 13 digits with a valid check digit.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct Gln(pub [u8; 13]);

impl Gln {
    pub fn parse(text: &str) -> Result<Gln, Rejection> {
        let bytes = text.as_bytes();
        let array: [u8; 13] = bytes.try_into().map_err(|_| {
            Rejection::new("gln.malformed", format!("GLN {text:?} is not 13 digits"))
        })?;
        let gln = Gln(array);
        gln.check()?;
        Ok(gln)
    }

    /// Rule `gln.malformed`: 13 digits, GS1 mod-10 check digit.
    pub fn check(&self) -> Result<(), Rejection> {
        ensure(gs1_mod10_valid(&self.0), "gln.malformed", || {
            format!("GLN {self} has a wrong check digit or a non-digit")
        })
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("?")
    }

    /// `urn:epc:id:pgln:` form is prefix-length dependent; EPCIS export uses the SGLN-free
    /// Digital Link form `https://id.gs1.org/417/{gln}` (party GLN).
    pub fn party_uri(&self) -> String {
        format!("https://id.gs1.org/417/{}", self.as_str())
    }
}

impl fmt::Display for Gln {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Gln {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Gln({})", self.as_str())
    }
}

/// GTIN-14: 14 digits with a valid check digit.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct Gtin(pub [u8; 14]);

impl Gtin {
    pub fn parse(text: &str) -> Result<Gtin, Rejection> {
        let array: [u8; 14] = text.as_bytes().try_into().map_err(|_| {
            Rejection::new("gtin.malformed", format!("GTIN {text:?} is not 14 digits"))
        })?;
        let gtin = Gtin(array);
        gtin.check()?;
        Ok(gtin)
    }

    pub fn check(&self) -> Result<(), Rejection> {
        ensure(gs1_mod10_valid(&self.0), "gtin.malformed", || {
            format!("GTIN {self} has a wrong check digit or a non-digit")
        })
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("?")
    }
}

impl fmt::Display for Gtin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Gtin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Gtin({})", self.as_str())
    }
}

/// Scheme prefixes [`Epc::key_bytes`] writes as one byte.
const EPC_KEY_SCHEMES: [(&[u8], &str); 2] =
    [(&[1], "urn:epc:id:sgtin:"), (&[2], "urn:epc:id:sscc:")];

/// An EPC in its canonical URN form (`urn:epc:id:sgtin:…` for a package, `urn:epc:id:sscc:…`
/// for a container). Validity is checked where an EPC is first created (commissioning,
/// packing); afterwards it is only looked up.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct Epc(pub String);

impl Epc {
    pub fn new(text: impl Into<String>) -> Epc {
        Epc(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_sscc(&self) -> bool {
        self.0.starts_with("urn:epc:id:sscc:")
    }

    pub fn is_sgtin(&self) -> bool {
        self.0.starts_with("urn:epc:id:sgtin:")
    }

    /// The EPC as state and index keys spell it: its URN with the scheme prefix
    /// (`urn:epc:id:sgtin:`, `urn:epc:id:sscc:`) as one byte, any other text as it is (a URN
    /// starts with `u`, never with those bytes, and no URN holds a 0 byte, so keys that
    /// follow an EPC with a 0 stay prefix-free). A package's EPC is in its record's key, its
    /// `on_hand` entry and its history's index entries: the 17-byte prefix was an eighth of
    /// the bytes a commissioning wrote, compared again in every key comparison.
    pub fn key_bytes(&self) -> Vec<u8> {
        let (tag, rest) = self.key_parts();
        [tag, rest].concat()
    }

    /// [`Epc::key_bytes`] in two parts (the scheme's byte, or nothing, and the rest), for key
    /// builders to concatenate with their own parts in one allocation.
    pub fn key_parts(&self) -> (&'static [u8], &[u8]) {
        for (tag, scheme) in EPC_KEY_SCHEMES {
            if let Some(rest) = self.0.strip_prefix(scheme) {
                return (tag, rest.as_bytes());
            }
        }
        (&[], self.0.as_bytes())
    }

    /// The EPC from [`Epc::key_bytes`].
    pub fn from_key_bytes(bytes: &[u8]) -> Option<Epc> {
        let (first, rest) = bytes.split_first()?;
        for (tag, scheme) in EPC_KEY_SCHEMES {
            if tag == [*first] {
                return Some(Epc(format!("{scheme}{}", std::str::from_utf8(rest).ok()?)));
            }
        }
        std::str::from_utf8(bytes).ok().map(Epc::new)
    }

    /// Rule `epc.malformed`: bounded, an SGTIN or SSCC URN that `gs1::epc` parses.
    pub fn check_container(&self) -> Result<(), Rejection> {
        self.check_bounded()?;
        ensure(self.is_sscc(), "epc.not_sscc", || {
            format!("{self} is not an SSCC URN: only SSCCs are containers")
        })?;
        crate::gs1::epc::EpcId::parse_urn(&self.0)
            .map(|_| ())
            .map_err(|e| Rejection::new("epc.malformed", format!("{self}: {e}")))
    }

    pub fn check_bounded(&self) -> Result<(), Rejection> {
        ensure(
            !self.0.is_empty() && self.0.len() <= EPC_BYTES_MAX,
            "epc.malformed",
            || format!("EPC of {} bytes (1..={EPC_BYTES_MAX})", self.0.len()),
        )
    }

    /// The SSCC URN for 18 digits with the company prefix length.
    pub fn sscc(sscc: &str, company_prefix_length: u8) -> Result<Epc, Rejection> {
        let id = crate::gs1::epc::EpcId::sscc(sscc, usize::from(company_prefix_length))
            .map_err(|e| Rejection::new("epc.malformed", format!("SSCC {sscc:?}: {e}")))?;
        Ok(Epc(id.to_urn()))
    }

    /// The SGTIN URN for `gtin` + `serial` with the company prefix length of the product.
    pub fn sgtin(gtin: &Gtin, serial: &str, company_prefix_length: u8) -> Result<Epc, Rejection> {
        let urn = crate::gs1::epc::EpcId::sgtin_urn(
            gtin.as_str(),
            serial,
            usize::from(company_prefix_length),
        )
        .map_err(|e| malformed_sgtin(gtin, serial, e))?;
        Ok(Epc(urn))
    }

    /// [`Epc::sgtin`] for each serial (in order), the GTIN checked once.
    pub fn sgtins(
        gtin: &Gtin,
        serials: &[String],
        company_prefix_length: u8,
    ) -> Result<Vec<Epc>, Rejection> {
        crate::gs1::epc::EpcId::sgtin_urns(
            gtin.as_str(),
            serials,
            usize::from(company_prefix_length),
        )
        .map(|urns| urns.into_iter().map(Epc).collect())
        .map_err(|(serial, e)| malformed_sgtin(gtin, serial, e))
    }
}

fn malformed_sgtin(gtin: &Gtin, serial: &str, error: crate::gs1::Gs1Error) -> Rejection {
    Rejection::new(
        "epc.malformed",
        format!("GTIN {gtin} serial {serial:?}: {error}"),
    )
}

impl fmt::Display for Epc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Epc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Epc({})", self.0)
    }
}

/// A calendar day as `yyyymmdd` (e.g. 20271231): orders like the date, no time zone.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize,
)]
pub struct Date(pub u32);

impl Date {
    pub fn new(year: u32, month: u32, day: u32) -> Date {
        Date(year * 10_000 + month * 100 + day)
    }

    pub fn year(&self) -> u32 {
        self.0 / 10_000
    }
    pub fn month(&self) -> u32 {
        self.0 / 100 % 100
    }
    pub fn day(&self) -> u32 {
        self.0 % 100
    }

    /// Rule `date.invalid`: a real calendar day in years 2000..=2099.
    pub fn check(&self) -> Result<(), Rejection> {
        let (y, m, d) = (self.year(), self.month(), self.day());
        let days_in_month = match m {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
            2 => 28,
            _ => 0,
        };
        ensure(
            (2000..=2099).contains(&y) && d >= 1 && d <= days_in_month,
            "date.invalid",
            || format!("{} is not a calendar day in 2000..=2099", self.0),
        )
    }

    /// Days since 1970-01-01 → civil date (Howard Hinnant's algorithm, integers only).
    pub fn from_unix_days(days: i64) -> Date {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let y = yoe + era * 400;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = if m <= 2 { y + 1 } else { y };
        Date::new(y.clamp(0, 9999) as u32, m as u32, d as u32)
    }

    /// Days since 1970-01-01 (Howard Hinnant's days-from-civil).
    pub fn unix_days(&self) -> i64 {
        let (y, m, day) = (
            i64::from(self.year()),
            i64::from(self.month()),
            i64::from(self.day()),
        );
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// `YYYY-MM-DD`.
    pub fn iso(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year(), self.month(), self.day())
    }

    /// Parses `YYYY-MM-DD`.
    pub fn parse_iso(text: &str) -> Result<Date, Rejection> {
        let bad = || Rejection::new("date.invalid", format!("{text:?} is not YYYY-MM-DD"));
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let num = |s: &str| s.parse::<u32>().map_err(|_| bad());
        let date = Date::new(num(&text[..4])?, num(&text[5..7])?, num(&text[8..])?);
        date.check()?;
        Ok(date)
    }
}

/// Rule `text.bounds`: non-empty (when required), at most `max` bytes, no control characters.
pub fn check_text(
    field: &'static str,
    text: &str,
    max: usize,
    required: bool,
) -> Result<(), Rejection> {
    ensure(!(required && text.is_empty()), "text.bounds", || {
        format!("{field} is empty")
    })?;
    ensure(text.len() <= max, "text.bounds", || {
        format!("{field} is {} bytes (max {max})", text.len())
    })?;
    ensure(!text.chars().any(char::is_control), "text.bounds", || {
        format!("{field} contains a control character")
    })
}

/// Commercial detail that must not be in clear on the ledger (TI addresses, prices,
/// quantities, invoice lines): an AES-256-GCM ciphertext for the parties and regulators,
/// opaque here, and the client's salted blake3 commitment to the plaintext
/// ([`commit_confidential`]). The contract keeps only the commitment and the blob's hash.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub commitment: Hash,
}

/// Largest sealed blob accepted in a command.
pub const SEALED_BYTES_MAX: usize = 16 * 1024;
/// Smallest: a 12-byte nonce and a 16-byte tag around at least one byte.
pub const SEALED_BYTES_MIN: usize = 12 + 16 + 1;

impl Sealed {
    pub fn check(&self, field: &'static str) -> Result<(), Rejection> {
        ensure(
            (SEALED_BYTES_MIN..=SEALED_BYTES_MAX).contains(&self.ciphertext.len()),
            "confidential.blob_size",
            || {
                format!(
                    "{field}: encrypted blob of {} bytes ({SEALED_BYTES_MIN}..={SEALED_BYTES_MAX}: nonce + ciphertext + tag)",
                    self.ciphertext.len()
                )
            },
        )?;
        ensure(
            self.commitment != Hash::ZERO,
            "confidential.commitment_missing",
            || format!("{field}: the commitment is all zero"),
        )
    }

    /// What the ledger keeps: the commitment and the hash of the ciphertext.
    pub fn reference(&self) -> SealedRef {
        SealedRef {
            commitment: self.commitment,
            blob_hash: blob_hash(&self.ciphertext),
        }
    }
}

/// Commitment and ciphertext hash of a [`Sealed`] blob, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SealedRef {
    pub commitment: Hash,
    pub blob_hash: Hash,
}

const COMMITMENT_CONTEXT: &str = "pharmalink 2026-11 confidential commitment v1";
const BLOB_CONTEXT: &str = "pharmalink 2026-11 confidential blob v1";

/// The salted commitment a client computes over the plaintext before encrypting it:
/// blake3 derive-key mode, `salt (32 bytes) ‖ plaintext`. Disclosing salt + plaintext proves
/// the content; without the salt, the commitment reveals nothing guessable.
pub fn commit_confidential(salt: &[u8; 32], plaintext: &[u8]) -> Hash {
    let mut hasher = blake3::Hasher::new_derive_key(COMMITMENT_CONTEXT);
    hasher.update(salt);
    hasher.update(plaintext);
    Hash(*hasher.finalize().as_bytes())
}

pub fn blob_hash(ciphertext: &[u8]) -> Hash {
    Hash(blake3::derive_key(BLOB_CONTEXT, ciphertext))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epc_keys_spell_the_scheme_as_one_byte_and_round_trip() {
        let package = Epc::new("urn:epc:id:sgtin:0300010.012345.S1");
        let case = Epc::new("urn:epc:id:sscc:0300010.0000000001");
        let other = Epc::new("urn:epc:id:sgln:0300010.00001.0");
        assert_eq!(package.key_bytes(), b"\x010300010.012345.S1");
        assert_eq!(case.key_bytes(), b"\x020300010.0000000001");
        assert_eq!(other.key_bytes(), other.0.as_bytes());
        for epc in [&package, &case, &other] {
            assert_eq!(Epc::from_key_bytes(&epc.key_bytes()).as_ref(), Some(epc));
            // Followed by a 0 byte (the `epc` index), no EPC's key is a prefix of another's.
            assert!(!epc.key_bytes().contains(&0));
        }
        assert_eq!(Epc::from_key_bytes(b""), None);
        assert_eq!(Epc::from_key_bytes(b"\x01\xff"), None);
    }

    #[test]
    fn civil_dates_from_unix_days() {
        assert_eq!(Date::from_unix_days(0), Date::new(1970, 1, 1));
        assert_eq!(Date::from_unix_days(19_723), Date::new(2024, 1, 1));
        assert_eq!(Date::from_unix_days(19_782), Date::new(2024, 2, 29));
        assert_eq!(Date::from_unix_days(20_818), Date::new(2026, 12, 31));
    }

    #[test]
    fn gln_and_gtin_check_digits() {
        assert!(Gln::parse("0300010000008").is_ok());
        assert_eq!(
            Gln::parse("0300010000009").unwrap_err().code,
            "gln.malformed"
        );
        assert!(Gtin::parse("00300010123455").is_ok());
        assert_eq!(
            Gtin::parse("00300010123456").unwrap_err().code,
            "gtin.malformed"
        );
    }

    #[test]
    fn dates_are_checked() {
        assert!(Date::parse_iso("2028-02-29").is_ok());
        assert_eq!(
            Date::parse_iso("2027-02-29").unwrap_err().code,
            "date.invalid"
        );
        assert_eq!(Date::new(2027, 3, 1).iso(), "2027-03-01");
    }

    #[test]
    fn commitment_depends_on_salt_and_content() {
        let a = commit_confidential(&[1; 32], b"price 10");
        assert_ne!(a, commit_confidential(&[2; 32], b"price 10"));
        assert_ne!(a, commit_confidential(&[1; 32], b"price 11"));
    }
}
