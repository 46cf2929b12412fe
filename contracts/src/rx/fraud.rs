//! Fraud signals on a prescription about to be filled, each a named rule with its reason
//! (issue 8, first part; pure). The pharmacist sees them before approving; none blocks on its
//! own.
//!
//! | rule | fires when |
//! |---|---|
//! | `fraud.duplicate_prescription` | the same patient token, NDC and prescriber already have a prescription written within [`DUPLICATE_WINDOW_DAYS`] days |
//! | `fraud.early_refill_controlled` | a controlled substance is filled again before [`EARLY_REFILL_PERCENT`] % of the previous fill's days' supply has elapsed |
//! | `fraud.quantity_anomaly` | the quantity lasts more than [`MAX_DAYS_SUPPLY`] days (30 for a controlled substance), or differs by more than half from the prescriber's stated supply duration |
//! | `fraud.prescriber_identifier` | the prescriber's NPI or DEA number fails its check digits, or a controlled substance has no DEA number |

use super::{check_dea, check_npi};
use crate::contract::Date;

pub const DUPLICATE_WINDOW_DAYS: i64 = 7;
pub const EARLY_REFILL_PERCENT: i64 = 75;
pub const MAX_DAYS_SUPPLY: u32 = 90;
pub const MAX_DAYS_SUPPLY_CONTROLLED: u32 = 30;

/// What the rules need of a prescription (no PHI: a patient token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RxFacts {
    pub patient_token: String,
    pub ndc: String,
    pub prescriber_npi: String,
    pub prescriber_dea: Option<String>,
    pub prescriber_family: Option<String>,
    pub written_on: Date,
    /// Schedule II–V.
    pub controlled: bool,
    pub days_supply: Option<u32>,
    /// The prescriber's stated supply duration in days, if any.
    pub stated_days: Option<u32>,
}

/// An earlier fill of the same patient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriorFill {
    pub rx: RxFacts,
    pub filled_on: Date,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FraudSignal {
    pub rule: &'static str,
    pub reason: String,
}

/// Days from the civil date `a` to `b`.
fn days_between(a: Date, b: Date) -> i64 {
    b.unix_days() - a.unix_days()
}

/// The signals for filling `rx` on `today`, given the patient's earlier fills.
pub fn signals(rx: &RxFacts, history: &[PriorFill], today: Date) -> Vec<FraudSignal> {
    let mut out = Vec::new();
    for prior in history
        .iter()
        .filter(|p| p.rx.patient_token == rx.patient_token)
    {
        let same_drug = prior.rx.ndc == rx.ndc;
        if same_drug
            && prior.rx.prescriber_npi == rx.prescriber_npi
            && days_between(prior.rx.written_on, rx.written_on).abs() <= DUPLICATE_WINDOW_DAYS
        {
            out.push(FraudSignal {
                rule: "fraud.duplicate_prescription",
                reason: format!(
                    "the same prescriber wrote NDC {} for this patient on {} (within {DUPLICATE_WINDOW_DAYS} days)",
                    rx.ndc,
                    prior.rx.written_on.iso()
                ),
            });
        }
        if same_drug && rx.controlled {
            if let Some(supply) = prior.rx.days_supply {
                let elapsed = days_between(prior.filled_on, today);
                let due = i64::from(supply) * EARLY_REFILL_PERCENT / 100;
                if elapsed < due {
                    out.push(FraudSignal {
                        rule: "fraud.early_refill_controlled",
                        reason: format!(
                            "controlled substance filled {} for {supply} days; {elapsed} days elapsed, refill due after {due}",
                            prior.filled_on.iso()
                        ),
                    });
                }
            }
        }
    }
    let limit = if rx.controlled {
        MAX_DAYS_SUPPLY_CONTROLLED
    } else {
        MAX_DAYS_SUPPLY
    };
    if let Some(days) = rx.days_supply {
        if days > limit {
            out.push(FraudSignal {
                rule: "fraud.quantity_anomaly",
                reason: format!("the quantity lasts {days} days (more than {limit})"),
            });
        }
        if let Some(stated) = rx.stated_days.filter(|s| *s > 0) {
            if days * 2 < stated || days > stated * 3 / 2 {
                out.push(FraudSignal {
                    rule: "fraud.quantity_anomaly",
                    reason: format!(
                        "the quantity lasts {days} days by the directions, the prescriber states {stated}"
                    ),
                });
            }
        }
    }
    if let Err(r) = check_npi(&rx.prescriber_npi) {
        out.push(FraudSignal {
            rule: "fraud.prescriber_identifier",
            reason: format!("{} ({})", r.message, r.code),
        });
    }
    match &rx.prescriber_dea {
        Some(dea) => {
            if let Err(r) = check_dea(dea, rx.prescriber_family.as_deref()) {
                out.push(FraudSignal {
                    rule: "fraud.prescriber_identifier",
                    reason: format!("{} ({})", r.message, r.code),
                });
            }
        }
        None if rx.controlled => out.push(FraudSignal {
            rule: "fraud.prescriber_identifier",
            reason: "a controlled substance prescribed without a DEA number".into(),
        }),
        None => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rx(written: Date) -> RxFacts {
        RxFacts {
            patient_token: "a".repeat(32),
            ndc: "0001-0123-45".into(),
            prescriber_npi: "1234567893".into(),
            prescriber_dea: Some("AB1234563".into()),
            prescriber_family: Some("Brown".into()),
            written_on: written,
            controlled: true,
            days_supply: Some(30),
            stated_days: Some(30),
        }
    }

    fn rules(signals: &[FraudSignal]) -> Vec<&'static str> {
        signals.iter().map(|s| s.rule).collect()
    }

    #[test]
    fn clean_prescription_has_no_signal() {
        let prior = PriorFill {
            rx: rx(Date::new(2026, 10, 1)),
            filled_on: Date::new(2026, 10, 2),
        };
        assert!(signals(
            &rx(Date::new(2026, 10, 28)),
            &[prior],
            Date::new(2026, 10, 30)
        )
        .is_empty());
    }

    #[test]
    fn each_rule_fires_with_its_reason() {
        let today = Date::new(2026, 11, 26);
        let prior = PriorFill {
            rx: rx(Date::new(2026, 11, 20)),
            filled_on: Date::new(2026, 11, 20),
        };
        let found = signals(
            &rx(Date::new(2026, 11, 24)),
            std::slice::from_ref(&prior),
            today,
        );
        assert_eq!(
            rules(&found),
            [
                "fraud.duplicate_prescription",
                "fraud.early_refill_controlled"
            ]
        );
        assert!(
            found[1].reason.contains("6 days elapsed"),
            "{}",
            found[1].reason
        );
        // Another patient's fills do not count.
        let mut other = prior.clone();
        other.rx.patient_token = "b".repeat(32);
        assert!(signals(&rx(Date::new(2026, 11, 24)), &[other], today).is_empty());
        // Quantity: 120 days of a controlled substance, and directions disagreeing with the
        // stated duration.
        let mut big = rx(today);
        big.days_supply = Some(120);
        assert_eq!(
            rules(&signals(&big, &[], today)),
            ["fraud.quantity_anomaly", "fraud.quantity_anomaly"]
        );
        // Identifiers.
        let mut bad = rx(today);
        bad.prescriber_npi = "1234567890".into();
        bad.prescriber_dea = None;
        assert_eq!(
            rules(&signals(&bad, &[], today)),
            ["fraud.prescriber_identifier", "fraud.prescriber_identifier"]
        );
        assert_eq!(
            days_between(Date::new(2024, 2, 28), Date::new(2024, 3, 1)),
            2
        );
    }
}
