//! EPC URNs (GS1 EPC Tag Data Standard pure identities): sgtin, sscc, sgln, pgln and the lgtin
//! class, converted to and from GS1 keys given the GS1 Company Prefix length, and to canonical
//! GS1 Digital Link URIs.

use super::check::{gs1_check_digit, validate_keyed_digits, Gtin};
use super::dl::{parse_dl_uri, uri_escape, DlOptions, CANONICAL_STEM};
use super::element::{validate_value, ElementString};
use super::table::lookup;
use super::{Gs1Error, Gs1Result};

/// A GS1-keyed EPC identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EpcId {
    Sgtin {
        gtin: String,
        serial: String,
        company_prefix_length: usize,
    },
    Sscc {
        sscc: String,
        company_prefix_length: usize,
    },
    Sgln {
        gln: String,
        extension: String,
        company_prefix_length: usize,
    },
    Pgln {
        gln: String,
        company_prefix_length: usize,
    },
    Lgtin {
        gtin: String,
        lot: String,
        company_prefix_length: usize,
    },
    /// GDTI: 13-digit document type key + optional serial (AI 253).
    Gdti {
        gdti: String,
        serial: String,
        company_prefix_length: usize,
    },
    /// GIAI: company prefix + individual asset reference (AI 8004).
    Giai {
        giai: String,
        company_prefix_length: usize,
    },
    /// GRAI: "0" + 13-digit asset type key + optional serial (AI 8003).
    Grai {
        grai: String,
        serial: String,
        company_prefix_length: usize,
    },
    /// GSRN recipient (AI 8018) or provider (AI 8017, `gsrnp`).
    Gsrn {
        gsrn: String,
        provider: bool,
        company_prefix_length: usize,
    },
}

fn epc_error(why: impl Into<String>) -> Gs1Error {
    Gs1Error::Epc(why.into())
}

fn check_prefix_length(company_prefix_length: usize) -> Gs1Result<()> {
    if (6..=12).contains(&company_prefix_length) {
        Ok(())
    } else {
        Err(epc_error(format!(
            "company prefix length {company_prefix_length} is outside 6..=12"
        )))
    }
}

/// EPC URN escaping of serials/lots (TDS: `"`, `%`, `&`, `/`, `<`, `>`, `?` percent-encoded).
pub fn epc_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_epc_escaped(&mut out, text);
    out
}

/// Appends `text` to `out`, escaped as [`epc_escape`] does.
fn push_epc_escaped(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    const ESCAPED: &[u8] = b"\"%&/<>?";
    // Runs without an escaped character are copied whole (serials rarely hold one); the
    // escaped characters are ASCII, so the cuts fall on character boundaries.
    let mut rest = text;
    while let Some(at) = rest.bytes().position(|byte| ESCAPED.contains(&byte)) {
        let byte = rest.as_bytes()[at];
        out.push_str(&rest[..at]);
        out.push('%');
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xF)]));
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

/// `urn:epc:id:sgtin:` URN of a valid GTIN-14 and serial (Tag Data Standard §6.3.1).
fn sgtin_urn_of(gtin14: &str, serial: &str, cpl: usize) -> String {
    let mut urn = String::with_capacity(32 + 3 * serial.len());
    urn.push_str("urn:epc:id:sgtin:");
    urn.push_str(&gtin14[1..1 + cpl]);
    urn.push('.');
    urn.push_str(&gtin14[..1]);
    urn.push_str(&gtin14[1 + cpl..13]);
    urn.push('.');
    push_epc_escaped(&mut urn, serial);
    urn
}

fn epc_unescape(text: &str) -> Gs1Result<String> {
    let decoded = super::dl::uri_unescape(text, false)?;
    Ok(decoded)
}

fn digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

fn validate_ai(ai: &str, value: &str) -> Gs1Result<()> {
    let entry = lookup(ai).ok_or_else(|| Gs1Error::UnknownAi { ai: ai.to_string() })?;
    validate_value(entry, value)
}

impl EpcId {
    /// Parses `urn:epc:id:sgtin:…`, `urn:epc:id:sscc:…`, `urn:epc:id:sgln:…`,
    /// `urn:epc:id:pgln:…` or `urn:epc:class:lgtin:…`.
    pub fn parse_urn(urn: &str) -> Gs1Result<EpcId> {
        let (scheme, body) = if let Some(body) = urn.strip_prefix("urn:epc:id:") {
            body.split_once(':')
                .ok_or_else(|| epc_error("missing scheme"))?
        } else if let Some(body) = urn.strip_prefix("urn:epc:class:lgtin:") {
            ("lgtin", body)
        } else {
            return Err(epc_error(format!(
                "{urn:?} is not an EPC URN this node handles"
            )));
        };
        let parts: Vec<&str> = body.splitn(3, '.').collect();
        let prefix = parts.first().copied().unwrap_or("");
        if !digits(prefix) {
            return Err(epc_error("company prefix must be digits"));
        }
        let company_prefix_length = prefix.len();
        check_prefix_length(company_prefix_length)?;
        match scheme {
            "sgtin" | "lgtin" => {
                let [_, reference, tail] = parts[..] else {
                    return Err(epc_error(format!(
                        "{scheme} needs prefix.itemref.{}",
                        if scheme == "sgtin" { "serial" } else { "lot" }
                    )));
                };
                if !digits(reference) || prefix.len() + reference.len() != 13 {
                    return Err(epc_error(
                        "company prefix + indicator/item reference must be 13 digits",
                    ));
                }
                let payload = format!("{}{}{}", &reference[..1], prefix, &reference[1..]);
                let gtin = format!("{payload}{}", gs1_check_digit(&payload).unwrap_or(0));
                let text = epc_unescape(tail)?;
                if scheme == "sgtin" {
                    validate_ai("21", &text)?;
                    Ok(EpcId::Sgtin {
                        gtin,
                        serial: text,
                        company_prefix_length,
                    })
                } else {
                    validate_ai("10", &text)?;
                    Ok(EpcId::Lgtin {
                        gtin,
                        lot: text,
                        company_prefix_length,
                    })
                }
            }
            "sscc" => {
                let [_, reference] = parts[..] else {
                    return Err(epc_error("sscc needs prefix.serialref"));
                };
                if !digits(reference) || prefix.len() + reference.len() != 17 {
                    return Err(epc_error(
                        "company prefix + extension/serial reference must be 17 digits",
                    ));
                }
                let payload = format!("{}{}{}", &reference[..1], prefix, &reference[1..]);
                let sscc = format!("{payload}{}", gs1_check_digit(&payload).unwrap_or(0));
                Ok(EpcId::Sscc {
                    sscc,
                    company_prefix_length,
                })
            }
            "sgln" | "pgln" => {
                let reference = parts.get(1).copied().unwrap_or("");
                if !(reference.is_empty() || digits(reference))
                    || prefix.len() + reference.len() != 12
                {
                    return Err(epc_error(
                        "company prefix + location reference must be 12 digits",
                    ));
                }
                let payload = format!("{prefix}{reference}");
                let gln = format!("{payload}{}", gs1_check_digit(&payload).unwrap_or(0));
                if scheme == "pgln" {
                    if parts.len() != 2 {
                        return Err(epc_error("pgln needs prefix.partyref"));
                    }
                    return Ok(EpcId::Pgln {
                        gln,
                        company_prefix_length,
                    });
                }
                let extension = epc_unescape(
                    parts
                        .get(2)
                        .copied()
                        .ok_or_else(|| epc_error("sgln needs an extension"))?,
                )?;
                if extension != "0" {
                    validate_ai("254", &extension)?;
                }
                Ok(EpcId::Sgln {
                    gln,
                    extension,
                    company_prefix_length,
                })
            }
            "gdti" | "grai" => {
                let [_, reference, tail] = parts[..] else {
                    return Err(epc_error(format!("{scheme} needs prefix.type.serial")));
                };
                if !(reference.is_empty() || digits(reference))
                    || prefix.len() + reference.len() != 12
                {
                    return Err(epc_error(
                        "company prefix + type reference must be 12 digits",
                    ));
                }
                let payload = format!("{prefix}{reference}");
                let key = format!("{payload}{}", gs1_check_digit(&payload).unwrap_or(0));
                let serial = epc_unescape(tail)?;
                if scheme == "gdti" {
                    validate_ai("253", &format!("{key}{serial}"))?;
                    Ok(EpcId::Gdti {
                        gdti: key,
                        serial,
                        company_prefix_length,
                    })
                } else {
                    validate_ai("8003", &format!("0{key}{serial}"))?;
                    Ok(EpcId::Grai {
                        grai: format!("0{key}"),
                        serial,
                        company_prefix_length,
                    })
                }
            }
            "giai" => {
                let [_, reference] = parts[..] else {
                    return Err(epc_error("giai needs prefix.assetref"));
                };
                let giai = format!("{prefix}{}", epc_unescape(reference)?);
                validate_ai("8004", &giai)?;
                Ok(EpcId::Giai {
                    giai,
                    company_prefix_length,
                })
            }
            "gsrn" | "gsrnp" => {
                let [_, reference] = parts[..] else {
                    return Err(epc_error(format!("{scheme} needs prefix.serviceref")));
                };
                if !digits(reference) || prefix.len() + reference.len() != 17 {
                    return Err(epc_error(
                        "company prefix + service reference must be 17 digits",
                    ));
                }
                let payload = format!("{prefix}{reference}");
                let gsrn = format!("{payload}{}", gs1_check_digit(&payload).unwrap_or(0));
                Ok(EpcId::Gsrn {
                    gsrn,
                    provider: scheme == "gsrnp",
                    company_prefix_length,
                })
            }
            other => Err(epc_error(format!("unsupported EPC scheme {other}"))),
        }
    }

    /// The EPC URN.
    pub fn to_urn(&self) -> String {
        match self {
            EpcId::Sgtin {
                gtin,
                serial,
                company_prefix_length: cpl,
            } => sgtin_urn_of(gtin, serial, *cpl),
            EpcId::Lgtin {
                gtin,
                lot,
                company_prefix_length: cpl,
            } => {
                format!(
                    "urn:epc:class:lgtin:{}.{}{}.{}",
                    &gtin[1..1 + cpl],
                    &gtin[..1],
                    &gtin[1 + cpl..13],
                    epc_escape(lot)
                )
            }
            EpcId::Sscc {
                sscc,
                company_prefix_length: cpl,
            } => {
                format!(
                    "urn:epc:id:sscc:{}.{}{}",
                    &sscc[1..1 + cpl],
                    &sscc[..1],
                    &sscc[1 + cpl..17]
                )
            }
            EpcId::Sgln {
                gln,
                extension,
                company_prefix_length: cpl,
            } => {
                format!(
                    "urn:epc:id:sgln:{}.{}.{}",
                    &gln[..*cpl],
                    &gln[*cpl..12],
                    epc_escape(extension)
                )
            }
            EpcId::Pgln {
                gln,
                company_prefix_length: cpl,
            } => format!("urn:epc:id:pgln:{}.{}", &gln[..*cpl], &gln[*cpl..12]),
            EpcId::Gdti {
                gdti,
                serial,
                company_prefix_length: cpl,
            } => {
                format!(
                    "urn:epc:id:gdti:{}.{}.{}",
                    &gdti[..*cpl],
                    &gdti[*cpl..12],
                    epc_escape(serial)
                )
            }
            EpcId::Grai {
                grai,
                serial,
                company_prefix_length: cpl,
            } => {
                format!(
                    "urn:epc:id:grai:{}.{}.{}",
                    &grai[1..1 + cpl],
                    &grai[1 + cpl..13],
                    epc_escape(serial)
                )
            }
            EpcId::Giai {
                giai,
                company_prefix_length: cpl,
            } => {
                format!(
                    "urn:epc:id:giai:{}.{}",
                    &giai[..*cpl],
                    epc_escape(&giai[*cpl..])
                )
            }
            EpcId::Gsrn {
                gsrn,
                provider,
                company_prefix_length: cpl,
            } => {
                let scheme = if *provider { "gsrnp" } else { "gsrn" };
                format!("urn:epc:id:{scheme}:{}.{}", &gsrn[..*cpl], &gsrn[*cpl..17])
            }
        }
    }

    /// Canonical GS1 Digital Link URI (id.gs1.org). An sgln extension "0" means none.
    pub fn to_digital_link(&self) -> String {
        match self {
            EpcId::Sgtin { gtin, serial, .. } => format!(
                "{CANONICAL_STEM}/01/{gtin}/21/{}",
                uri_escape(serial, false)
            ),
            EpcId::Lgtin { gtin, lot, .. } => {
                format!("{CANONICAL_STEM}/01/{gtin}/10/{}", uri_escape(lot, false))
            }
            EpcId::Sscc { sscc, .. } => format!("{CANONICAL_STEM}/00/{sscc}"),
            EpcId::Sgln { gln, extension, .. } if extension == "0" => {
                format!("{CANONICAL_STEM}/414/{gln}")
            }
            EpcId::Sgln { gln, extension, .. } => format!(
                "{CANONICAL_STEM}/414/{gln}/254/{}",
                uri_escape(extension, false)
            ),
            EpcId::Pgln { gln, .. } => format!("{CANONICAL_STEM}/417/{gln}"),
            EpcId::Gdti { gdti, serial, .. } => {
                format!("{CANONICAL_STEM}/253/{gdti}{}", uri_escape(serial, false))
            }
            EpcId::Grai { grai, serial, .. } => {
                format!("{CANONICAL_STEM}/8003/{grai}{}", uri_escape(serial, false))
            }
            EpcId::Giai { giai, .. } => {
                format!("{CANONICAL_STEM}/8004/{}", uri_escape(giai, false))
            }
            EpcId::Gsrn {
                gsrn,
                provider: true,
                ..
            } => format!("{CANONICAL_STEM}/8017/{gsrn}"),
            EpcId::Gsrn { gsrn, .. } => format!("{CANONICAL_STEM}/8018/{gsrn}"),
        }
    }

    /// From a Digital Link URI (any host) and the company prefix length.
    pub fn from_digital_link(uri: &str, company_prefix_length: usize) -> Gs1Result<EpcId> {
        check_prefix_length(company_prefix_length)?;
        let elements = parse_dl_uri(uri, &DlOptions::default())?;
        Self::from_elements(&elements, company_prefix_length)
    }

    /// From AI elements: (01)+(21) → sgtin, (01)+(10) → lgtin, (00) → sscc, (414)[+(254)] →
    /// sgln, (417) → pgln.
    pub fn from_elements(
        elements: &ElementString,
        company_prefix_length: usize,
    ) -> Gs1Result<EpcId> {
        check_prefix_length(company_prefix_length)?;
        let cpl = company_prefix_length;
        if let Some(gtin) = elements.get("01") {
            if let Some(serial) = elements.get("21") {
                return Ok(EpcId::Sgtin {
                    gtin: gtin.to_string(),
                    serial: serial.to_string(),
                    company_prefix_length: cpl,
                });
            }
            if let Some(lot) = elements.get("10") {
                return Ok(EpcId::Lgtin {
                    gtin: gtin.to_string(),
                    lot: lot.to_string(),
                    company_prefix_length: cpl,
                });
            }
            return Err(epc_error(
                "(01) needs (21) for an sgtin or (10) for an lgtin",
            ));
        }
        if let Some(sscc) = elements.get("00") {
            return Ok(EpcId::Sscc {
                sscc: sscc.to_string(),
                company_prefix_length: cpl,
            });
        }
        if let Some(gln) = elements.get("414") {
            let extension = elements.get("254").unwrap_or("0").to_string();
            return Ok(EpcId::Sgln {
                gln: gln.to_string(),
                extension,
                company_prefix_length: cpl,
            });
        }
        if let Some(gln) = elements.get("417") {
            return Ok(EpcId::Pgln {
                gln: gln.to_string(),
                company_prefix_length: cpl,
            });
        }
        Err(epc_error(
            "no (01), (00), (414) or (417) to build an EPC from",
        ))
    }

    /// Builds an SGTIN from a GTIN (8/12/13/14 digits) and serial.
    pub fn sgtin(gtin: &str, serial: &str, company_prefix_length: usize) -> Gs1Result<EpcId> {
        let gtin = Self::checked_sgtin(gtin, serial, company_prefix_length)?;
        Ok(EpcId::Sgtin {
            gtin: gtin.as_gtin14().to_string(),
            serial: serial.to_string(),
            company_prefix_length,
        })
    }

    /// `EpcId::sgtin(gtin, serial, cpl)?.to_urn()`, without building the identifier first
    /// (contract execution makes one per package).
    pub fn sgtin_urn(gtin: &str, serial: &str, company_prefix_length: usize) -> Gs1Result<String> {
        let gtin = Self::checked_sgtin(gtin, serial, company_prefix_length)?;
        Ok(sgtin_urn_of(
            gtin.as_gtin14(),
            serial,
            company_prefix_length,
        ))
    }

    /// [`EpcId::sgtin_urn`] for each of `serials` of one GTIN, which (with the prefix length)
    /// is checked once, not once per serial. On error, the serial it arose with: the first one
    /// for a bad GTIN or prefix length, as checking them one by one would report.
    pub fn sgtin_urns<'s>(
        gtin: &str,
        serials: &'s [String],
        company_prefix_length: usize,
    ) -> Result<Vec<String>, (&'s str, Gs1Error)> {
        let Some(first) = serials.first() else {
            return Ok(Vec::new());
        };
        let gtin =
            Self::checked_gtin(gtin, company_prefix_length).map_err(|e| (first.as_str(), e))?;
        serials
            .iter()
            .map(|serial| {
                validate_ai("21", serial).map_err(|e| (serial.as_str(), e))?;
                Ok(sgtin_urn_of(
                    gtin.as_gtin14(),
                    serial,
                    company_prefix_length,
                ))
            })
            .collect()
    }

    fn checked_sgtin(gtin: &str, serial: &str, company_prefix_length: usize) -> Gs1Result<Gtin> {
        let gtin = Self::checked_gtin(gtin, company_prefix_length)?;
        validate_ai("21", serial)?;
        Ok(gtin)
    }

    /// The prefix length and the GTIN of an SGTIN, checked in that order (before its serial).
    fn checked_gtin(gtin: &str, company_prefix_length: usize) -> Gs1Result<Gtin> {
        check_prefix_length(company_prefix_length)?;
        Gtin::parse(gtin).map_err(|reason| Gs1Error::Content {
            ai: "01".to_string(),
            rule: "check digit",
            reason,
        })
    }

    /// Builds an SSCC EPC from 18 digits.
    pub fn sscc(sscc: &str, company_prefix_length: usize) -> Gs1Result<EpcId> {
        check_prefix_length(company_prefix_length)?;
        validate_keyed_digits(sscc, 18, "SSCC").map_err(|reason| Gs1Error::Content {
            ai: "00".to_string(),
            rule: "check digit",
            reason,
        })?;
        Ok(EpcId::Sscc {
            sscc: sscc.to_string(),
            company_prefix_length,
        })
    }
}

/// Canonical GS1 Digital Link form of an identifier as the CBV 2.0 event hash wants it:
/// EPC URNs converted; Digital Link URIs on any host reduced to id.gs1.org with the primary key
/// and only its finest-grained qualifier (serial over lot), no query. Returns `None` for text
/// that is neither (other URIs are hashed as they are).
pub fn canonical_digital_link(identifier: &str) -> Option<String> {
    if let Some(fast) = fast_epc_digital_link(identifier) {
        return Some(fast);
    }
    if let Some(pattern) = identifier.strip_prefix("urn:epc:idpat:sgtin:") {
        // Class-level pattern prefix.itemref.* names the GTIN.
        let mut parts = pattern.split('.');
        let (prefix, reference, star) = (parts.next()?, parts.next()?, parts.next()?);
        if star != "*"
            || parts.next().is_some()
            || !digits(prefix)
            || !digits(reference)
            || prefix.len() + reference.len() != 13
        {
            return None;
        }
        let payload = format!("{}{}{}", &reference[..1], prefix, &reference[1..]);
        return Some(format!(
            "{CANONICAL_STEM}/01/{payload}{}",
            gs1_check_digit(&payload)?
        ));
    }
    if identifier.starts_with("urn:epc:") {
        return EpcId::parse_urn(identifier)
            .ok()
            .map(|id| id.to_digital_link());
    }
    if !super::dl::looks_like_dl_uri(identifier) {
        return None;
    }
    let elements = parse_dl_uri(
        identifier,
        &DlOptions {
            permit_zero_suppressed_gtin: true,
            ..DlOptions::default()
        },
    )
    .ok()?;
    let key = elements.elements.first()?;
    let mut out = format!(
        "{CANONICAL_STEM}/{}/{}",
        key.ai(),
        uri_escape(&key.value, false)
    );
    let qualifiers: Vec<&super::Element> = elements
        .elements
        .iter()
        .skip(1)
        .filter(|e| {
            key.entry
                .dl_primary_key
                .is_some_and(|s| s.iter().any(|q| q.contains(&e.ai())))
        })
        .collect();
    let finest = ["21", "10", "254", "8019", "8011", "7040", "235"]
        .iter()
        .find_map(|ai| qualifiers.iter().find(|e| e.ai() == *ai));
    if let Some(qualifier) = finest {
        out.push_str(&format!(
            "/{}/{}",
            qualifier.ai(),
            uri_escape(&qualifier.value, false)
        ));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_direct_sgtin_urn_is_the_identifier_s_urn_and_escapes_alike() {
        assert_eq!(epc_escape("a\"%&/<>?z"), "a%22%25%26%2F%3C%3E%3Fz");
        for (text, escaped) in [
            ("", ""),
            ("plain", "plain"),
            ("%%", "%25%25"),
            ("/a/", "%2Fa%2F"),
            ("é/ü?", "é%2Fü%3F"),
        ] {
            assert_eq!(epc_escape(text), escaped, "{text:?}");
        }
        // Company prefix, then indicator digit and item reference, then the escaped serial.
        assert_eq!(
            EpcId::sgtin_urn("10614141011114", "A/B%C&D<E>F?G\"H", 7).unwrap(),
            "urn:epc:id:sgtin:0614141.101111.A%2FB%25C%26D%3CE%3EF%3FG%22H"
        );
        for (gtin, serial, cpl) in [
            ("00399999000017", "L0001N00000000000100", 7),
            ("10614141011114", "A/B%C&D<E>F?G\"H", 7),
            ("00614141011117", "1", 6),
            ("00614141011117", "x", 12),
        ] {
            assert_eq!(
                EpcId::sgtin_urn(gtin, serial, cpl).unwrap(),
                EpcId::sgtin(gtin, serial, cpl).unwrap().to_urn(),
                "{gtin} {serial} {cpl}"
            );
        }
        // Same refusals: bad check digit, bad serial character, bad prefix length.
        for (gtin, serial, cpl) in [
            ("00399999000018", "1", 7),
            ("00399999000017", "bad serial", 7),
            ("00399999000017", "1", 5),
        ] {
            assert_eq!(
                EpcId::sgtin_urn(gtin, serial, cpl).unwrap_err().to_string(),
                EpcId::sgtin(gtin, serial, cpl).unwrap_err().to_string()
            );
        }
    }

    #[test]
    fn many_serials_of_one_gtin_make_the_urns_one_serial_at_a_time_makes() {
        let serials: Vec<String> = ["1", "A/B%C", "L0001N00000000000100"]
            .map(String::from)
            .to_vec();
        let one_by_one: Vec<String> = serials
            .iter()
            .map(|s| EpcId::sgtin_urn("00399999000017", s, 7).unwrap())
            .collect();
        assert_eq!(
            EpcId::sgtin_urns("00399999000017", &serials, 7).unwrap(),
            one_by_one
        );
        assert_eq!(EpcId::sgtin_urns("00399999000017", &[], 7), Ok(Vec::new()));
        // A bad serial is named; a bad GTIN or prefix length comes with the first serial.
        let bad = ["1", "bad serial", "2"].map(String::from).to_vec();
        let (serial, error) = EpcId::sgtin_urns("00399999000017", &bad, 7).unwrap_err();
        assert_eq!(serial, "bad serial");
        assert_eq!(
            error.to_string(),
            EpcId::sgtin_urn("00399999000017", "bad serial", 7)
                .unwrap_err()
                .to_string()
        );
        for (gtin, cpl) in [("00399999000018", 7), ("00399999000017", 5)] {
            let (serial, error) = EpcId::sgtin_urns(gtin, &serials, cpl).unwrap_err();
            assert_eq!(serial, "1");
            assert_eq!(
                error.to_string(),
                EpcId::sgtin_urn(gtin, "1", cpl).unwrap_err().to_string()
            );
        }
    }

    #[test]
    fn ndc_gtin_to_sgtin() {
        let epc = EpcId::sgtin("00300010123455", "SER/1", 6).unwrap();
        assert_eq!(epc.to_urn(), "urn:epc:id:sgtin:030001.0012345.SER%2F1");
        assert_eq!(EpcId::parse_urn(&epc.to_urn()).unwrap(), epc);
        assert_eq!(
            epc.to_digital_link(),
            "https://id.gs1.org/01/00300010123455/21/SER%2F1"
        );
    }

    #[test]
    fn sscc_sgln_lgtin() {
        let sscc = EpcId::parse_urn("urn:epc:id:sscc:4012345.0000000111").unwrap();
        assert_eq!(
            sscc.to_digital_link(),
            "https://id.gs1.org/00/040123450000001112"
        );
        assert_eq!(sscc.to_urn(), "urn:epc:id:sscc:4012345.0000000111");
        let sgln = EpcId::parse_urn("urn:epc:id:sgln:4012345.00011.987").unwrap();
        assert_eq!(
            sgln.to_digital_link(),
            "https://id.gs1.org/414/4012345000115/254/987"
        );
        let sgln0 = EpcId::parse_urn("urn:epc:id:sgln:4012345.00011.0").unwrap();
        assert_eq!(
            sgln0.to_digital_link(),
            "https://id.gs1.org/414/4012345000115"
        );
        let lgtin = EpcId::parse_urn("urn:epc:class:lgtin:4012345.012345.998877").unwrap();
        assert_eq!(lgtin.to_urn(), "urn:epc:class:lgtin:4012345.012345.998877");
        let back = EpcId::from_digital_link(&lgtin.to_digital_link(), 7).unwrap();
        assert_eq!(back, lgtin);
        assert!(EpcId::parse_urn("urn:epc:id:sgtin:4012345.01234.1").is_err());
        let gdti = EpcId::parse_urn("urn:epc:id:gdti:4012345.55555.1234").unwrap();
        assert_eq!(
            gdti.to_digital_link(),
            "https://id.gs1.org/253/40123455555541234"
        );
        assert_eq!(gdti.to_urn(), "urn:epc:id:gdti:4012345.55555.1234");
        let giai = EpcId::parse_urn("urn:epc:id:giai:4000001.111").unwrap();
        assert_eq!(giai.to_digital_link(), "https://id.gs1.org/8004/4000001111");
        assert_eq!(giai.to_urn(), "urn:epc:id:giai:4000001.111");
        let gsrn = EpcId::parse_urn("urn:epc:id:gsrn:0614141.0000010253").unwrap();
        assert_eq!(gsrn.to_urn(), "urn:epc:id:gsrn:0614141.0000010253");
    }
}

/// Whether a serial/lot/extension can be copied into both an EPC URN and a Digital Link path
/// without escaping, and is valid GS1 data (CSET 82 subset, at most `length_max`).
fn plain_value(value: &str, length_max: usize) -> bool {
    !value.is_empty()
        && value.len() <= length_max
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// Check digit of the digits `parts` joined, when they are all digits and total
/// `payload_length` (company prefix 6..=12 digits is `parts[1]`). No allocation.
fn key_check(parts: [&str; 3], payload_length: usize) -> Option<u8> {
    if !(6..=12).contains(&parts[1].len())
        || parts.iter().map(|p| p.len()).sum::<usize>() != payload_length
    {
        return None;
    }
    let mut sum: u32 = 0;
    let mut index_from_right = payload_length;
    for byte in parts.iter().flat_map(|p| p.bytes()) {
        if !byte.is_ascii_digit() {
            return None;
        }
        index_from_right -= 1;
        let weight = if index_from_right % 2 == 0 { 3 } else { 1 };
        sum += u32::from(byte - b'0') * weight;
    }
    Some(((10 - sum % 10) % 10) as u8)
}

/// The common, escape-free EPC URNs, borrowed from the input.
enum FastEpc<'a> {
    Keyed {
        ai: &'static str,
        key: [&'a str; 3],
        check: u8,
        qualifier: Option<(&'static str, &'a str)>,
    },
}

fn split_reference(reference: &str) -> Option<(&str, &str)> {
    Some((reference.get(..1)?, reference.get(1..)?))
}

fn parse_fast_epc(urn: &str) -> Option<FastEpc<'_>> {
    if let Some(body) = urn
        .strip_prefix("urn:epc:id:sgtin:")
        .or_else(|| urn.strip_prefix("urn:epc:class:lgtin:"))
    {
        let lot_class = urn.starts_with("urn:epc:class:");
        let mut parts = body.splitn(3, '.');
        let (prefix, reference, serial) = (parts.next()?, parts.next()?, parts.next()?);
        if !plain_value(serial, 20) {
            return None;
        }
        let (indicator, item) = split_reference(reference)?;
        let key = [indicator, prefix, item];
        let check = key_check(key, 13)?;
        let qualifier = if lot_class {
            ("10", serial)
        } else {
            ("21", serial)
        };
        return Some(FastEpc::Keyed {
            ai: "01",
            key,
            check,
            qualifier: Some(qualifier),
        });
    }
    if let Some(body) = urn.strip_prefix("urn:epc:id:sscc:") {
        let (prefix, reference) = body.split_once('.')?;
        let (extension, serial) = split_reference(reference)?;
        let key = [extension, prefix, serial];
        let check = key_check(key, 17)?;
        return Some(FastEpc::Keyed {
            ai: "00",
            key,
            check,
            qualifier: None,
        });
    }
    if let Some(body) = urn.strip_prefix("urn:epc:id:sgln:") {
        let mut parts = body.splitn(3, '.');
        let (prefix, reference, extension) = (parts.next()?, parts.next()?, parts.next()?);
        if !plain_value(extension, 20) {
            return None;
        }
        let key = ["", prefix, reference];
        let check = key_check(key, 12)?;
        let qualifier = if extension == "0" {
            None
        } else {
            Some(("254", extension))
        };
        return Some(FastEpc::Keyed {
            ai: "414",
            key,
            check,
            qualifier,
        });
    }
    if let Some(body) = urn.strip_prefix("urn:epc:id:pgln:") {
        let (prefix, reference) = body.split_once('.')?;
        let key = ["", prefix, reference];
        let check = key_check(key, 12)?;
        return Some(FastEpc::Keyed {
            ai: "417",
            key,
            check,
            qualifier: None,
        });
    }
    None
}

/// Whether `urn` is one of the common escape-free EPC URNs (sgtin, sscc, sgln, pgln, lgtin)
/// with consistent lengths and digits: such a URN is valid as it stands. No allocation.
pub fn is_plain_valid_epc(urn: &str) -> bool {
    parse_fast_epc(urn).is_some()
}

/// Allocation-light conversion of the common, escape-free EPC URNs (sgtin, sscc, sgln, pgln,
/// lgtin) to canonical Digital Link URIs; `None` sends the caller to the general path.
pub fn fast_epc_digital_link(urn: &str) -> Option<String> {
    let FastEpc::Keyed {
        ai,
        key,
        check,
        qualifier,
    } = parse_fast_epc(urn)?;
    let mut out = String::with_capacity(CANONICAL_STEM.len() + 48);
    out.push_str(CANONICAL_STEM);
    out.push('/');
    out.push_str(ai);
    out.push('/');
    for part in key {
        out.push_str(part);
    }
    out.push((b'0' + check) as char);
    if let Some((qualifier_ai, value)) = qualifier {
        out.push('/');
        out.push_str(qualifier_ai);
        out.push('/');
        out.push_str(value);
    }
    Some(out)
}

#[cfg(test)]
mod fast_path_tests {
    use super::*;

    #[test]
    fn fast_path_agrees_with_general_path() {
        for urn in [
            "urn:epc:id:sgtin:030001.0012345.11",
            "urn:epc:id:sgtin:0614141.107346.2018",
            "urn:epc:class:lgtin:4012345.012345.998877",
            "urn:epc:id:sscc:4012345.0000000111",
            "urn:epc:id:sgln:4012345.00011.987",
            "urn:epc:id:sgln:4012345.00011.0",
            "urn:epc:id:sgln:030001.111111.0",
            "urn:epc:id:pgln:5200001.00000",
        ] {
            let general = EpcId::parse_urn(urn).map(|id| id.to_digital_link()).ok();
            assert!(general.is_some(), "{urn}");
            assert_eq!(fast_epc_digital_link(urn), general, "{urn}");
        }
        // Escapes and odd characters take the general path.
        assert_eq!(
            fast_epc_digital_link("urn:epc:id:sgtin:030001.0012345.A%2FB"),
            None
        );
        assert_eq!(
            fast_epc_digital_link("urn:epc:id:sgtin:030001.0012345."),
            None
        );
        assert_eq!(
            fast_epc_digital_link("urn:epc:id:sgtin:03000A.0012345.1"),
            None
        );
    }
}
