//! Cold-chain rules (issue 8; pure): checking a batch of temperature readings, its hash (the
//! ledger anchors the hash, the readings stay with the node that took them) and the excursion
//! rules against a product's [`StorageRequirement`].
//!
//! Time out of range is measured sample-and-hold: a reading counts until the next one, so a
//! batch of readings at 1-minute intervals with three consecutive readings out of range is
//! three minutes out (the last reading of a batch counts for nothing).
//!
//! | rule | fires when |
//! |---|---|
//! | `cold_chain.continuous` | one stretch out of range lasts longer than `max_excursion_minutes` |
//! | `cold_chain.cumulative` | the package's time out of range so far plus this batch's exceeds `max_cumulative_minutes` |

use crate::contract::command::StorageRequirement;
use crate::contract::Epc;
use pharmalink_ledger::Hash;

/// Most readings in one batch.
pub const READINGS_PER_BATCH_MAX: usize = 100_000;
/// Plausible sensor range, in hundredths of °C.
pub const CENTI_C_MIN: i32 = -10_000;
pub const CENTI_C_MAX: i32 = 10_000;

const BATCH_CONTEXT: &str = "pharmalink 2026-11 telemetry batch v1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    /// Unix milliseconds.
    pub at_ms: u64,
    /// Hundredths of a degree Celsius.
    pub centi_c: i32,
}

/// A problem with one reading of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadingError {
    /// Index in the batch (`None`: the batch as a whole).
    pub index: Option<usize>,
    pub field: &'static str,
    pub reason: String,
}

/// Checks a batch: 1..=[`READINGS_PER_BATCH_MAX`] readings, strictly increasing times,
/// plausible temperatures. Every problem is listed.
pub fn check_readings(readings: &[Reading]) -> Vec<ReadingError> {
    let mut out = Vec::new();
    if readings.is_empty() || readings.len() > READINGS_PER_BATCH_MAX {
        out.push(ReadingError {
            index: None,
            field: "readings",
            reason: format!(
                "{} readings (1..={READINGS_PER_BATCH_MAX} per batch)",
                readings.len()
            ),
        });
        return out;
    }
    for (i, r) in readings.iter().enumerate() {
        if !(CENTI_C_MIN..=CENTI_C_MAX).contains(&r.centi_c) {
            out.push(ReadingError {
                index: Some(i),
                field: "celsius",
                reason: format!(
                    "{:.2} °C is outside a sensor's plausible -100..100 °C",
                    f64::from(r.centi_c) / 100.0
                ),
            });
        }
        if i > 0 && r.at_ms <= readings[i - 1].at_ms {
            out.push(ReadingError {
                index: Some(i),
                field: "at",
                reason: "readings must be in strictly increasing time order".into(),
            });
        }
        if out.len() >= 20 {
            break;
        }
    }
    out
}

/// The batch's hash: keyed blake3 over the sensor id, the subjects and every reading
/// (`at_ms` u64 LE ‖ `centi_c` i32 LE), length-prefixed. Anyone holding the readings can
/// recompute it and compare with the anchor.
pub fn batch_hash(sensor: &str, subjects: &[Epc], readings: &[Reading]) -> Hash {
    let mut bytes = Vec::with_capacity(64 + subjects.len() * 48 + readings.len() * 12);
    bytes.extend_from_slice(&(sensor.len() as u32).to_le_bytes());
    bytes.extend_from_slice(sensor.as_bytes());
    bytes.extend_from_slice(&(subjects.len() as u32).to_le_bytes());
    for epc in subjects {
        bytes.extend_from_slice(&(epc.0.len() as u32).to_le_bytes());
        bytes.extend_from_slice(epc.0.as_bytes());
    }
    bytes.extend_from_slice(&(readings.len() as u64).to_le_bytes());
    for r in readings {
        bytes.extend_from_slice(&r.at_ms.to_le_bytes());
        bytes.extend_from_slice(&r.centi_c.to_le_bytes());
    }
    let mut hasher = blake3::Hasher::new_derive_key(BATCH_CONTEXT);
    hasher.update(&bytes);
    Hash(*hasher.finalize().as_bytes())
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Excursion {
    pub rule: &'static str,
    pub started_ms: u64,
    pub minutes_out: u32,
    pub detail: String,
}

/// What a batch shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation {
    pub min_centi_c: i32,
    pub max_centi_c: i32,
    /// Milliseconds out of range in this batch.
    pub out_ms: u64,
    /// The longest stretch out of range: start and length.
    pub longest_start_ms: u64,
    pub longest_ms: u64,
    pub excursions: Vec<Excursion>,
}

impl Evaluation {
    pub fn minutes_out(&self) -> u32 {
        minutes(self.out_ms)
    }
}

fn minutes(ms: u64) -> u32 {
    (ms / 60_000).min(u64::from(u32::MAX)) as u32
}

/// Evaluates a checked batch against the requirement; `prior_minutes_out` is the time the
/// package already spent out of range in earlier batches.
pub fn evaluate(
    requirement: &StorageRequirement,
    readings: &[Reading],
    prior_minutes_out: u32,
) -> Evaluation {
    let in_range =
        |r: &Reading| r.centi_c >= requirement.min_centi_c && r.centi_c <= requirement.max_centi_c;
    let mut eval = Evaluation {
        min_centi_c: readings.iter().map(|r| r.centi_c).min().unwrap_or(0),
        max_centi_c: readings.iter().map(|r| r.centi_c).max().unwrap_or(0),
        out_ms: 0,
        longest_start_ms: 0,
        longest_ms: 0,
        excursions: Vec::new(),
    };
    let mut stretch: Option<(u64, u64)> = None; // start, length
    for pair in readings.windows(2) {
        let (r, next) = (&pair[0], &pair[1]);
        let held = next.at_ms.saturating_sub(r.at_ms);
        if in_range(r) {
            stretch = None;
            continue;
        }
        eval.out_ms += held;
        let (start, length) = match stretch {
            Some((start, length)) => (start, length + held),
            None => (r.at_ms, held),
        };
        stretch = Some((start, length));
        if length > eval.longest_ms {
            eval.longest_ms = length;
            eval.longest_start_ms = start;
        }
    }
    let describe = |ms: u64| {
        format!(
            "{} min out of {:.1}..{:.1} °C (readings {:.2}..{:.2} °C)",
            minutes(ms),
            f64::from(requirement.min_centi_c) / 100.0,
            f64::from(requirement.max_centi_c) / 100.0,
            f64::from(eval.min_centi_c) / 100.0,
            f64::from(eval.max_centi_c) / 100.0,
        )
    };
    if eval.longest_ms > u64::from(requirement.max_excursion_minutes) * 60_000 {
        eval.excursions.push(Excursion {
            rule: "cold_chain.continuous",
            started_ms: eval.longest_start_ms,
            minutes_out: minutes(eval.longest_ms),
            detail: format!(
                "{} in one stretch (limit {} min)",
                describe(eval.longest_ms),
                requirement.max_excursion_minutes
            ),
        });
    }
    let total = u64::from(prior_minutes_out) * 60_000 + eval.out_ms;
    if eval.out_ms > 0 && total > u64::from(requirement.max_cumulative_minutes) * 60_000 {
        eval.excursions.push(Excursion {
            rule: "cold_chain.cumulative",
            started_ms: readings.first().map(|r| r.at_ms).unwrap_or(0),
            minutes_out: minutes(total),
            detail: format!(
                "{} in all (limit {} min)",
                describe(total),
                requirement.max_cumulative_minutes
            ),
        });
    }
    eval
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRIDGE: StorageRequirement = StorageRequirement {
        min_centi_c: 200,
        max_centi_c: 800,
        max_excursion_minutes: 30,
        max_cumulative_minutes: 60,
    };

    /// One reading a minute from t = 0, at the given temperatures (°C).
    fn minutely(temps: &[f64]) -> Vec<Reading> {
        temps
            .iter()
            .enumerate()
            .map(|(i, t)| Reading {
                at_ms: i as u64 * 60_000,
                centi_c: (t * 100.0).round() as i32,
            })
            .collect()
    }

    fn with_stretch(before: usize, out: usize, after: usize, temp: f64) -> Vec<Reading> {
        let mut temps = vec![5.0; before];
        temps.extend(std::iter::repeat_n(temp, out));
        temps.extend(std::iter::repeat_n(5.0, after));
        minutely(&temps)
    }

    #[test]
    fn given_readings_in_range_when_evaluated_then_no_excursion() {
        let eval = evaluate(&FRIDGE, &minutely(&[4.0, 5.5, 7.9, 2.0, 8.0]), 0);
        assert_eq!(eval.out_ms, 0);
        assert!(eval.excursions.is_empty());
        assert_eq!((eval.min_centi_c, eval.max_centi_c), (200, 800));
    }

    #[test]
    fn given_a_short_warm_stretch_when_evaluated_then_minutes_count_but_no_excursion() {
        let eval = evaluate(&FRIDGE, &with_stretch(10, 20, 10, 12.0), 0);
        assert_eq!(eval.minutes_out(), 20);
        assert!(eval.excursions.is_empty(), "{:?}", eval.excursions);
    }

    #[test]
    fn given_a_stretch_longer_than_the_limit_when_evaluated_then_continuous_excursion() {
        let eval = evaluate(&FRIDGE, &with_stretch(10, 31, 5, 12.0), 0);
        assert_eq!(eval.excursions.len(), 1);
        let e = &eval.excursions[0];
        assert_eq!(e.rule, "cold_chain.continuous");
        assert_eq!(e.started_ms, 10 * 60_000);
        assert_eq!(e.minutes_out, 31);
        assert!(e.detail.contains("limit 30 min"), "{}", e.detail);
    }

    #[test]
    fn given_a_freeze_when_evaluated_then_below_range_counts_too() {
        let eval = evaluate(&FRIDGE, &with_stretch(0, 40, 1, -1.0), 0);
        assert_eq!(eval.excursions[0].rule, "cold_chain.continuous");
    }

    #[test]
    fn given_earlier_time_out_when_a_batch_adds_more_then_cumulative_excursion() {
        // 25 minutes now (under the 30-minute stretch limit), 40 before: 65 > 60.
        let eval = evaluate(&FRIDGE, &with_stretch(5, 25, 5, 9.0), 40);
        assert_eq!(eval.excursions.len(), 1);
        assert_eq!(eval.excursions[0].rule, "cold_chain.cumulative");
        assert_eq!(eval.excursions[0].minutes_out, 65);
        // Without the earlier time, no excursion.
        assert!(evaluate(&FRIDGE, &with_stretch(5, 25, 5, 9.0), 0)
            .excursions
            .is_empty());
    }

    #[test]
    fn given_an_in_range_batch_when_earlier_time_was_over_then_no_new_excursion() {
        assert!(evaluate(&FRIDGE, &minutely(&[5.0, 5.0]), 500)
            .excursions
            .is_empty());
    }

    #[test]
    fn given_bad_readings_when_checked_then_each_is_named() {
        let mut readings = minutely(&[5.0, 150.0, 5.0]);
        readings[2].at_ms = readings[1].at_ms;
        let errors = check_readings(&readings);
        assert_eq!(errors.len(), 2);
        assert_eq!((errors[0].index, errors[0].field), (Some(1), "celsius"));
        assert_eq!((errors[1].index, errors[1].field), (Some(2), "at"));
        assert_eq!(check_readings(&[])[0].field, "readings");
    }

    #[test]
    fn batch_hash_commits_to_every_reading_and_subject() {
        let readings = minutely(&[5.0, 6.0]);
        let subjects = [Epc::new("urn:epc:id:sgtin:0300010.012345.1")];
        let h = batch_hash("logger-1", &subjects, &readings);
        let mut changed = readings.clone();
        changed[1].centi_c += 1;
        assert_ne!(h, batch_hash("logger-1", &subjects, &changed));
        assert_ne!(h, batch_hash("logger-2", &subjects, &readings));
        assert_ne!(h, batch_hash("logger-1", &[], &readings));
        assert_eq!(h, batch_hash("logger-1", &subjects, &readings));
    }
}
