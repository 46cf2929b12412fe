//! Prescriptions as HL7 FHIR R4 (issue 8, first part): a `MedicationRequest` — alone with
//! `contained` resources, or in a `Bundle` with its `Patient` and `Practitioner` — checked for
//! structure and required fields and turned into an intake record. Every problem is listed with
//! the JSON pointer of the field and the rule. The patient part is PHI: it goes to the vault,
//! never to the ledger (the ledger sees a random patient token, the NDC and the decision).

use pharmalink_contracts::contract::Date;
use pharmalink_contracts::rx::{check_dea, check_npi, sig};
use serde_json::Value;

pub const NDC_SYSTEM: &str = "http://hl7.org/fhir/sid/ndc";
pub const NPI_SYSTEM: &str = "http://hl7.org/fhir/sid/us-npi";
/// DEA numbers as identifiers (the US Core convention).
pub const DEA_SYSTEM: &str = "urn:oid:2.16.840.1.113883.4.814";

const STATUSES: [&str; 8] = [
    "active",
    "on-hold",
    "cancelled",
    "completed",
    "entered-in-error",
    "stopped",
    "draft",
    "unknown",
];
const INTENTS: [&str; 8] = [
    "proposal",
    "plan",
    "order",
    "original-order",
    "reflex-order",
    "filler-order",
    "instance-order",
    "option",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FhirProblem {
    /// JSON pointer into the submitted document.
    pub pointer: String,
    pub reason: String,
}

/// The patient as prescribed: PHI, for the vault only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatientPhi {
    pub family: String,
    pub given: Vec<String>,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    pub address: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prescriber {
    pub npi: String,
    pub dea: Option<String>,
    pub family: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prescription {
    pub ndc: String,
    pub status: String,
    pub authored_on: Date,
    /// Thousandths of the dispense unit.
    pub quantity_milli: u64,
    pub refills: u32,
    pub sig_text: String,
    /// The parsed directions, or why they could not be read (the pharmacist reads them then).
    pub sig: Result<sig::Sig, sig::SigError>,
    pub days_supply: Option<u32>,
    pub prescriber: Prescriber,
    pub patient: PatientPhi,
}

struct Check {
    problems: Vec<FhirProblem>,
}

impl Check {
    fn problem(&mut self, pointer: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(FhirProblem {
            pointer: pointer.into(),
            reason: reason.into(),
        });
    }

    /// Required text at `path` of `value`, which sits at `base` in the document (problems
    /// name the full pointer).
    fn text<'a>(&mut self, value: &'a Value, base: &str, path: &str) -> Option<&'a str> {
        match value.pointer(path).and_then(Value::as_str) {
            Some(text) if !text.trim().is_empty() => Some(text),
            Some(_) => {
                self.problem(format!("{base}{path}"), "required, empty");
                None
            }
            None => {
                self.problem(format!("{base}{path}"), "required text missing");
                None
            }
        }
    }
}

/// The resource a reference field of the request (`field`, e.g. `/subject/reference`) names,
/// which must be a `kind`, with its pointer in the document; a missing, dangling or
/// mistyped reference is a problem.
fn referenced<'a>(
    check: &mut Check,
    (document, request, base): (&'a Value, &'a Value, &str),
    field: &str,
    kind: &str,
) -> Option<(&'a Value, String)> {
    let at = format!("{base}{field}");
    let Some(reference) = request.pointer(field).and_then(Value::as_str) else {
        check.problem(at, format!("required reference to the {kind} missing"));
        return None;
    };
    let Some((resource, pointer)) = resolve(document, request, reference) else {
        check.problem(at, format!("{reference:?} is not in the document"));
        return None;
    };
    // Contained resources sit inside the request.
    let pointer = if pointer.starts_with("/contained") {
        format!("{base}{pointer}")
    } else {
        pointer
    };
    if resource["resourceType"].as_str() != Some(kind) {
        check.problem(&at, format!("{reference:?} is not a {kind}"));
        return None;
    }
    Some((resource, pointer))
}

fn read_patient(check: &mut Check, resource: &Value, pointer: &str) -> Option<PatientPhi> {
    let family = check
        .text(resource, pointer, "/name/0/family")
        .map(str::to_string);
    let given: Vec<String> = resource
        .pointer("/name/0/given")
        .and_then(Value::as_array)
        .map(|g| {
            g.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let birth = match check.text(resource, pointer, "/birthDate").map(birth_date) {
        Some(Ok(date)) => Some(date),
        Some(Err(reason)) => {
            check.problem(format!("{pointer}/birthDate"), reason);
            None
        }
        None => None,
    };
    let address = resource
        .pointer("/address/0/text")
        .and_then(Value::as_str)
        .map(String::from);
    Some(PatientPhi {
        family: family?,
        given,
        birth_date: birth?,
        address,
    })
}

fn read_prescriber(check: &mut Check, resource: &Value, pointer: &str) -> Option<Prescriber> {
    let family = check
        .text(resource, pointer, "/name/0/family")
        .map(str::to_string);
    let npi = identifier(resource, NPI_SYSTEM).map(str::to_string);
    match &npi {
        Some(n) => {
            if let Err(r) = check_npi(n) {
                check.problem(
                    format!("{pointer}/identifier"),
                    format!("{} ({})", r.message, r.code),
                );
            }
        }
        None => check.problem(
            format!("{pointer}/identifier"),
            format!("no NPI ({NPI_SYSTEM})"),
        ),
    }
    let dea = identifier(resource, DEA_SYSTEM).map(str::to_string);
    if let Some(d) = &dea {
        if let Err(r) = check_dea(d, family.as_deref()) {
            check.problem(
                format!("{pointer}/identifier"),
                format!("{} ({})", r.message, r.code),
            );
        }
    }
    Some(Prescriber {
        npi: npi?,
        dea,
        family: family?,
    })
}

/// Resolves a `Patient/…`, `Practitioner/…` or `#contained` reference inside the document.
fn resolve<'a>(
    document: &'a Value,
    request: &'a Value,
    reference: &str,
) -> Option<(&'a Value, String)> {
    if let Some(id) = reference.strip_prefix('#') {
        let contained = request.get("contained")?.as_array()?;
        let (i, found) = contained
            .iter()
            .enumerate()
            .find(|(_, r)| r["id"].as_str() == Some(id))?;
        return Some((found, format!("/contained/{i}")));
    }
    let (kind, id) = reference.rsplit_once('/')?;
    let kind = kind.rsplit('/').next()?;
    let entries = document.get("entry")?.as_array()?;
    let (i, found) = entries.iter().enumerate().find(|(_, e)| {
        e["resource"]["resourceType"].as_str() == Some(kind)
            && e["resource"]["id"].as_str() == Some(id)
    })?;
    Some((&found["resource"], format!("/entry/{i}/resource")))
}

fn identifier<'a>(resource: &'a Value, system: &str) -> Option<&'a str> {
    resource["identifier"]
        .as_array()?
        .iter()
        .find(|i| i["system"].as_str() == Some(system))?
        .get("value")?
        .as_str()
}

/// A full FHIR date of birth, a real calendar day from 1900 on.
pub(crate) fn birth_date(text: &str) -> Result<String, String> {
    let parts: Vec<&str> = text.split('-').collect();
    let [y, m, d] = parts[..] else {
        return Err(format!("{text:?}: a full date YYYY-MM-DD is required"));
    };
    let (Ok(year), Ok(month), Ok(day)) = (y.parse::<u32>(), m.parse::<u32>(), d.parse::<u32>())
    else {
        return Err(format!("{text:?} is not YYYY-MM-DD"));
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 || year < 1900 || day == 0 || day > days {
        return Err(format!("{text:?} is not a calendar day from 1900 on"));
    }
    Ok(text.to_string())
}

/// Reads and checks a prescription; every problem is listed.
pub fn read_prescription(text: &str) -> Result<Prescription, Vec<FhirProblem>> {
    let document: Value = serde_json::from_str(text).map_err(|e| {
        vec![FhirProblem {
            pointer: String::new(),
            reason: format!("not JSON: {e}"),
        }]
    })?;
    let mut check = Check {
        problems: Vec::new(),
    };
    // The MedicationRequest: the document itself, or the first in a Bundle.
    let (request, base) = match document["resourceType"].as_str() {
        Some("MedicationRequest") => (&document, String::new()),
        Some("Bundle") => {
            let found = document["entry"].as_array().and_then(|entries| {
                entries.iter().enumerate().find(|(_, e)| {
                    e["resource"]["resourceType"].as_str() == Some("MedicationRequest")
                })
            });
            match found {
                Some((i, entry)) => (&entry["resource"], format!("/entry/{i}/resource")),
                None => {
                    return Err(vec![FhirProblem {
                        pointer: "/entry".into(),
                        reason: "the Bundle holds no MedicationRequest".into(),
                    }])
                }
            }
        }
        other => {
            return Err(vec![FhirProblem {
                pointer: "/resourceType".into(),
                reason: format!("{other:?}: expected MedicationRequest or Bundle"),
            }])
        }
    };
    let at = |path: &str| format!("{base}{path}");
    let status = check.text(request, &base, "/status").map(str::to_string);
    if let Some(s) = &status {
        if !STATUSES.contains(&s.as_str()) {
            check.problem(
                at("/status"),
                format!("{s:?} is not a MedicationRequest status"),
            );
        } else if s != "active" {
            check.problem(
                at("/status"),
                format!("{s:?}: only an active prescription can be filled"),
            );
        }
    }
    if let Some(intent) = check.text(request, &base, "/intent") {
        if !INTENTS.contains(&intent) {
            check.problem(
                at("/intent"),
                format!("{intent:?} is not a MedicationRequest intent"),
            );
        }
    }
    let ndc = request["medicationCodeableConcept"]["coding"]
        .as_array()
        .and_then(|codings| {
            codings
                .iter()
                .find(|c| c["system"].as_str() == Some(NDC_SYSTEM))
        })
        .and_then(|c| c["code"].as_str())
        .map(str::to_string);
    match &ndc {
        Some(code)
            if code.bytes().all(|b| b.is_ascii_digit() || b == b'-')
                && (10..=12).contains(&code.bytes().filter(u8::is_ascii_digit).count()) => {}
        Some(code) => check.problem(
            at("/medicationCodeableConcept/coding"),
            format!("NDC {code:?} is not 10–12 digits"),
        ),
        None => check.problem(
            at("/medicationCodeableConcept/coding"),
            format!("no coding with system {NDC_SYSTEM}"),
        ),
    }
    let authored_on = check
        .text(request, &base, "/authoredOn")
        .map(|t| (t.get(..10).unwrap_or(t), t));
    let authored_on = match authored_on {
        Some((day, _)) => match Date::parse_iso(day) {
            Ok(date) => Some(date),
            Err(r) => {
                check.problem(at("/authoredOn"), r.message);
                None
            }
        },
        None => None,
    };
    let sig_text = check
        .text(request, &base, "/dosageInstruction/0/text")
        .map(str::to_string);
    let quantity = request
        .pointer("/dispenseRequest/quantity/value")
        .and_then(Value::as_f64);
    let quantity_milli = match quantity {
        Some(q) if q > 0.0 && q <= 100_000.0 => Some((q * 1000.0).round() as u64),
        Some(q) => {
            check.problem(
                at("/dispenseRequest/quantity/value"),
                format!("{q} is not a positive quantity"),
            );
            None
        }
        None => {
            check.problem(
                at("/dispenseRequest/quantity/value"),
                "required number missing",
            );
            None
        }
    };
    let refills = match request.pointer("/dispenseRequest/numberOfRepeatsAllowed") {
        None => 0,
        Some(v) => match v.as_u64() {
            Some(n) if n <= 11 => n as u32,
            _ => {
                check.problem(
                    at("/dispenseRequest/numberOfRepeatsAllowed"),
                    "0 to 11 refills",
                );
                0
            }
        },
    };
    // Patient and prescriber.
    let within = (&document, request, base.as_str());
    let patient = referenced(&mut check, within, "/subject/reference", "Patient")
        .and_then(|(resource, pointer)| read_patient(&mut check, resource, &pointer));
    let prescriber = referenced(&mut check, within, "/requester/reference", "Practitioner")
        .and_then(|(resource, pointer)| read_prescriber(&mut check, resource, &pointer));
    if !check.problems.is_empty() {
        return Err(check.problems);
    }
    match (
        ndc,
        status,
        authored_on,
        quantity_milli,
        sig_text,
        prescriber,
        patient,
    ) {
        (
            Some(ndc),
            Some(status),
            Some(authored_on),
            Some(quantity_milli),
            Some(sig_text),
            Some(prescriber),
            Some(patient),
        ) => {
            let parsed = sig::parse(&sig_text);
            let days_supply = parsed
                .as_ref()
                .ok()
                .and_then(|s| sig::days_supply(s, quantity_milli));
            Ok(Prescription {
                ndc,
                status,
                authored_on,
                quantity_milli,
                refills,
                sig_text,
                sig: parsed,
                days_supply,
                prescriber,
                patient,
            })
        }
        _ => Err(vec![FhirProblem {
            pointer: String::new(),
            reason: "incomplete prescription".into(),
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bundle() -> Value {
        json!({
            "resourceType": "Bundle", "type": "collection",
            "entry": [
                {"resource": {"resourceType": "Patient", "id": "p1",
                    "name": [{"family": "Doe", "given": ["Jane", "Q."]}], "birthDate": "1970-01-01",
                    "address": [{"text": "12 Elm St, Newark, NJ"}]}},
                {"resource": {"resourceType": "Practitioner", "id": "dr1",
                    "identifier": [{"system": NPI_SYSTEM, "value": "1234567893"},
                                   {"system": DEA_SYSTEM, "value": "AB1234563"}],
                    "name": [{"family": "Brown"}]}},
                {"resource": {"resourceType": "MedicationRequest", "id": "rx1", "status": "active", "intent": "order",
                    "medicationCodeableConcept": {"coding": [{"system": NDC_SYSTEM, "code": "0001-0123-45", "display": "Examplamab 10 mg"}]},
                    "subject": {"reference": "Patient/p1"}, "requester": {"reference": "Practitioner/dr1"},
                    "authoredOn": "2026-11-20",
                    "dosageInstruction": [{"text": "1 tab po bid x 30 days"}],
                    "dispenseRequest": {"quantity": {"value": 60, "unit": "tablet"}, "numberOfRepeatsAllowed": 2}}}
            ]
        })
    }

    #[test]
    fn a_bundle_reads_into_a_prescription() {
        let rx = read_prescription(&bundle().to_string()).unwrap();
        assert_eq!(rx.ndc, "0001-0123-45");
        assert_eq!(rx.days_supply, Some(30));
        assert_eq!(rx.refills, 2);
        assert_eq!(rx.prescriber.npi, "1234567893");
        assert_eq!(rx.patient.family, "Doe");
        assert_eq!(rx.patient.birth_date, "1970-01-01");
    }

    #[test]
    fn every_problem_is_named_with_its_pointer() {
        let mut doc = bundle();
        doc["entry"][2]["resource"]["status"] = json!("draft");
        doc["entry"][2]["resource"]["dispenseRequest"]["quantity"]["value"] = json!(-3);
        doc["entry"][1]["resource"]["identifier"][0]["value"] = json!("1234567890");
        doc["entry"][1]["resource"]["identifier"][1]["value"] = json!("AB1234564");
        doc["entry"][0]["resource"]["birthDate"] = json!("1970-02-30");
        let problems = read_prescription(&doc.to_string()).unwrap_err();
        let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert!(
            pointers.contains(&"/entry/2/resource/status"),
            "{problems:?}"
        );
        assert!(
            pointers.contains(&"/entry/2/resource/dispenseRequest/quantity/value"),
            "{problems:?}"
        );
        assert!(
            pointers.contains(&"/entry/0/resource/birthDate"),
            "{problems:?}"
        );
        let reasons: Vec<&str> = problems.iter().map(|p| p.reason.as_str()).collect();
        assert!(
            reasons.iter().any(|r| r.contains("rx.npi.check_digit")),
            "{problems:?}"
        );
        assert!(
            reasons.iter().any(|r| r.contains("rx.dea.checksum")),
            "{problems:?}"
        );
        // Missing fields are named by their full pointer in the document.
        let mut doc = bundle();
        doc["entry"][0]["resource"]["name"][0]
            .as_object_mut()
            .unwrap()
            .remove("family");
        doc["entry"][2]["resource"]
            .as_object_mut()
            .unwrap()
            .remove("intent");
        doc["entry"][2]["resource"]["requester"]["reference"] = json!("Patient/p1");
        let problems = read_prescription(&doc.to_string()).unwrap_err();
        let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert!(
            pointers.contains(&"/entry/0/resource/name/0/family"),
            "{problems:?}"
        );
        assert!(
            pointers.contains(&"/entry/2/resource/intent"),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.pointer == "/entry/2/resource/requester/reference"
                    && p.reason.contains("not a Practitioner")),
            "{problems:?}"
        );
        // Unreadable directions are not an error: the pharmacist reads them.
        let mut doc = bundle();
        doc["entry"][2]["resource"]["dosageInstruction"][0]["text"] =
            json!("as directed by physician");
        let rx = read_prescription(&doc.to_string()).unwrap();
        assert!(rx.sig.is_err() && rx.days_supply.is_none());
        // Not FHIR at all.
        assert_eq!(
            read_prescription("{}").unwrap_err()[0].pointer,
            "/resourceType"
        );
    }

    #[test]
    fn contained_resources_resolve() {
        let doc = json!({
            "resourceType": "MedicationRequest", "status": "active", "intent": "order",
            "contained": [
                {"resourceType": "Patient", "id": "pt", "name": [{"family": "Roe"}], "birthDate": "1980-05-05"},
                {"resourceType": "Practitioner", "id": "pr", "identifier": [{"system": NPI_SYSTEM, "value": "1234567893"}], "name": [{"family": "Lee"}]}
            ],
            "medicationCodeableConcept": {"coding": [{"system": NDC_SYSTEM, "code": "00010012345"}]},
            "subject": {"reference": "#pt"}, "requester": {"reference": "#pr"},
            "authoredOn": "2026-11-25T10:00:00Z",
            "dosageInstruction": [{"text": "2 puffs q4-6h prn"}],
            "dispenseRequest": {"quantity": {"value": 200}}
        });
        let rx = read_prescription(&doc.to_string()).unwrap();
        assert_eq!(rx.patient.family, "Roe");
        assert_eq!(rx.days_supply, Some(16));
    }
}
