//! The pharmacy's contract (issue 8): prescription decisions, reservations, dispensing against
//! a prescription, and the cold chain (storage requirements, telemetry anchors, excursions).
//! Part of custody: it reads and changes the same package records.
//!
//! | rule | fires when |
//! |---|---|
//! | `rx.token_reused` | a decision names an Rx token already decided |
//! | `rx.ndc_unknown` | an approval names an NDC no registered product has |
//! | `rx.quantity` | an approval has a zero quantity |
//! | `rx.reason_missing` | a rejection gives no reason |
//! | `rx.unknown` | a dispense names an Rx token never decided |
//! | `rx.other_pharmacy` | the prescription was decided by another pharmacy |
//! | `rx.not_approved` | the prescription was rejected |
//! | `rx.fills_exhausted` | every fill (1 + refills) was dispensed |
//! | `rx.ndc_mismatch` | a package's product is not the prescribed NDC |
//! | `inventory.reserved` | a package is reserved for another order that has not expired |
//! | `inventory.reservation_window` | a reservation ends in the past or more than 24 h ahead |
//! | `inventory.order_exists` / `inventory.order_unknown` | reserving an order twice / releasing an unknown one |
//! | `inventory.not_reserver` | releasing another organization's reservation |
//! | `cold_chain.range` | a storage requirement's range is empty or outside −80..+60 °C |
//! | `cold_chain.not_owner` | the requirement is set by someone else than the product's owner |
//! | `cold_chain.anchor_reused` | a batch hash is anchored twice |
//! | `cold_chain.batch_unknown` | an excursion cites a batch never anchored |
//! | `cold_chain.not_required` | an excursion for a product with no storage requirement |
//!
//! Also checked with the custody rules: the holder (`custody.not_holder`), status
//! (`custody.transition_forbidden`), recall (`custody.recalled`) and expiry (`custody.expired`).
//!
//! State keys (under `p/`): `p/rx/{token}` → [`RxRecord`]; `p/res/{epc}` → [`Reservation`];
//! `p/ord/{order}` → [`Order`]; `p/cold/{gtin}` → `StorageRequirement`; `p/tel/{batch}` →
//! [`AnchorRecord`]; `p/out/{epc}` → [`ColdChainRecord`] (minutes out of range so far, last
//! excursion case); `p/ndc/{11-digit NDC}` → GTIN.

use super::*;
use pharmalink_ledger::Hash;

/// Longest reservation.
pub const RESERVATION_MS_MAX: u64 = 24 * 3_600_000;

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct RxRecord {
    pub pharmacy: Gln,
    pub decision: RxDecision,
    pub decided_height: u64,
    /// One entry per fill: the packages dispensed.
    pub fills: Vec<Vec<Epc>>,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Reservation {
    pub order: Hash,
    pub holder: Gln,
    pub expires_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Order {
    pub holder: Gln,
    pub epcs: Vec<Epc>,
    pub expires_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct AnchorRecord {
    pub by: Gln,
    pub height: u64,
    pub readings: u32,
    pub minutes_out: u32,
}

/// A package's cold-chain record.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ColdChainRecord {
    pub batches: u32,
    pub readings: u64,
    pub minutes_out: u32,
    pub last_reading_ms: u64,
    pub excursion_case: Option<u64>,
}

pub fn rx_key(token: &Hash) -> Vec<u8> {
    [b"p/rx/".as_slice(), &token.0].concat()
}
pub fn reservation_key(epc: &Epc) -> Vec<u8> {
    let (tag, rest) = epc.key_parts();
    [b"p/res/".as_slice(), tag, rest].concat()
}
pub fn order_key(order: &Hash) -> Vec<u8> {
    [b"p/ord/".as_slice(), &order.0].concat()
}
pub fn requirement_key(gtin: &Gtin) -> Vec<u8> {
    [b"p/cold/".as_slice(), &gtin.0].concat()
}
pub fn anchor_key(batch: &Hash) -> Vec<u8> {
    [b"p/tel/".as_slice(), &batch.0].concat()
}
pub fn cold_chain_key(epc: &Epc) -> Vec<u8> {
    let (tag, rest) = epc.key_parts();
    [b"p/out/".as_slice(), tag, rest].concat()
}
fn ndc_key(form: &str) -> Vec<u8> {
    [b"p/ndc/".as_slice(), form.as_bytes()].concat()
}

pub fn rx<S: StateRead + ?Sized>(state: &S, token: &Hash) -> Option<RxRecord> {
    read_record(state, &rx_key(token))
}
pub fn reservation<S: StateRead + ?Sized>(state: &S, epc: &Epc) -> Option<Reservation> {
    read_record(state, &reservation_key(epc))
}
pub fn order<S: StateRead + ?Sized>(state: &S, order: &Hash) -> Option<Order> {
    read_record(state, &order_key(order))
}
pub fn requirement<S: StateRead + ?Sized>(state: &S, gtin: &Gtin) -> Option<StorageRequirement> {
    read_record(state, &requirement_key(gtin))
}
pub fn cold_chain<S: StateRead + ?Sized>(state: &S, epc: &Epc) -> Option<ColdChainRecord> {
    read_record(state, &cold_chain_key(epc))
}

/// The 11-digit (5-4-2) forms an NDC as written may stand for: one for a hyphenated NDC
/// (4-4-2, 5-3-2, 5-4-1 or 5-4-2) or 11 digits, three for 10 bare digits (which segment the
/// leading zero pads is not written). Empty when it is no NDC.
pub fn ndc_forms(ndc: &str) -> Vec<String> {
    let ndc = ndc.trim();
    if ndc.contains('-') {
        let parts: Vec<&str> = ndc.split('-').collect();
        let ok = parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return Vec::new();
        }
        let (a, b, c) = (parts[0], parts[1], parts[2]);
        let shape = (a.len(), b.len(), c.len());
        if !matches!(shape, (4, 4, 2) | (5, 3, 2) | (5, 4, 1) | (5, 4, 2)) {
            return Vec::new();
        }
        return vec![format!("{a:0>5}{b:0>4}{c:0>2}")];
    }
    if !ndc.bytes().all(|b| b.is_ascii_digit()) {
        return Vec::new();
    }
    match ndc.len() {
        11 => vec![ndc.to_string()],
        10 => vec![
            format!("0{ndc}"),
            format!("{}0{}", &ndc[..5], &ndc[5..]),
            format!("{}0{}", &ndc[..9], &ndc[9..]),
        ],
        _ => Vec::new(),
    }
}

/// Whether two NDCs as written can be the same product code.
pub fn ndc_matches(a: &str, b: &str) -> bool {
    let b_forms = ndc_forms(b);
    ndc_forms(a).iter().any(|f| b_forms.contains(f))
}

/// The registered product with this NDC.
pub fn product_by_ndc<S: StateRead + ?Sized>(state: &S, ndc: &str) -> Option<Gtin> {
    ndc_forms(ndc)
        .iter()
        .find_map(|form| read_record::<Gtin, _>(state, &ndc_key(form)))
}

/// Written with the product record (custody's `ProductRegistered`).
pub(super) fn index_ndc<W: StateWriter + ?Sized>(state: &mut W, product: &ProductMaster) {
    for form in ndc_forms(&product.ndc) {
        write_record(state, ndc_key(&form), &product.gtin);
    }
}

/// Rule `inventory.reserved`: no unexpired reservation of another order.
pub(super) fn check_not_reserved<S: StateRead + ?Sized>(
    state: &S,
    epc: &Epc,
    allowed_order: Option<&Hash>,
    now_ms: u64,
) -> Result<(), Rejection> {
    match reservation(state, epc) {
        Some(r) if r.expires_ms > now_ms && Some(&r.order) != allowed_order => reject(
            "inventory.reserved",
            format!(
                "{epc} is reserved for order {} until {} ms",
                r.order, r.expires_ms
            ),
        ),
        _ => Ok(()),
    }
}

/// A package the actor may hand out or hold for an order: held, active, top level, not
/// recalled or expired, not reserved for another order (`Dispense` checks its packages with
/// it too).
pub(super) fn available<S: StateRead + ?Sized>(
    state: &S,
    memo: &mut RecallMemo,
    epc: &Epc,
    actor: &Organization,
    order: Option<&Hash>,
    ctx: &BlockContext,
    action: &str,
) -> Result<Item, Rejection> {
    let it = load(state, epc)?;
    ensure(
        matches!(it.kind, ItemKind::Package { .. }),
        "custody.dispense.container",
        || format!("{epc} is a container, not a package ({action})"),
    )?;
    holder(epc, &it, actor)?;
    owner(epc, &it, actor)?;
    top_level(epc, &it)?;
    status_in(epc, &it, &[Status::Active], action)?;
    saleable_package(state, memo, epc, &it, ctx.date())?;
    check_not_reserved(state, epc, order, ctx.timestamp_ms)?;
    Ok(it)
}

/// Packages reached from `tops` (containers expanded), each checked to be held by the actor
/// at the top level.
fn held_packages<S: StateRead + ?Sized>(
    state: &S,
    tops: &[Epc],
    actor: &Organization,
) -> Result<Vec<(Epc, Item)>, Rejection> {
    non_empty(tops, "monitor")?;
    distinct(tops)?;
    let mut out = Vec::new();
    for (epc, it, via) in expand(state, tops)? {
        if via.is_none() {
            holder(&epc, &it, actor)?;
        }
        if matches!(it.kind, ItemKind::Package { .. }) {
            out.push((epc, it));
        }
    }
    Ok(out)
}

/// The prescription is this pharmacy's, approved, with a fill left, and every package may be
/// handed out for it (see [`available`]) and is the prescribed NDC.
pub(super) fn check_dispensable<S: StateRead + ?Sized>(
    state: &S,
    actor: &Organization,
    rx_token: &Hash,
    items: &[Epc],
    ctx: &BlockContext,
) -> Result<(), Rejection> {
    let mut memo = RecallMemo::default();
    let record = rx(state, rx_token).ok_or_else(|| {
        Rejection::new(
            "rx.unknown",
            format!("prescription {rx_token} was never decided"),
        )
    })?;
    ensure(record.pharmacy == actor.gln(), "rx.other_pharmacy", || {
        format!("prescription {rx_token} was decided by {}", record.pharmacy)
    })?;
    ensure(record.decision.approved, "rx.not_approved", || {
        format!("prescription {rx_token} was rejected")
    })?;
    let fills_allowed = 1 + record.decision.refills as usize;
    ensure(
        record.fills.len() < fills_allowed,
        "rx.fills_exhausted",
        || format!("prescription {rx_token}: all {fills_allowed} fills were dispensed"),
    )?;
    for epc in items {
        let it = available(
            state,
            &mut memo,
            epc,
            actor,
            Some(rx_token),
            ctx,
            "dispensing",
        )?;
        if let ItemKind::Package { gtin, .. } = &it.kind {
            let ndc = product(state, gtin)
                .map(|p| p.master.ndc)
                .unwrap_or_default();
            ensure(
                ndc_matches(&ndc, &record.decision.ndc),
                "rx.ndc_mismatch",
                || {
                    format!(
                        "{epc} is NDC {ndc}, the prescription is for {}",
                        record.decision.ndc
                    )
                },
            )?;
        }
    }
    Ok(())
}

/// Records a fill of the prescription.
pub(super) fn record_fill<W: StateWriter + ?Sized>(state: &mut W, rx_token: &Hash, epcs: &[Epc]) {
    if let Some(mut record) = rx(state, rx_token) {
        record.fills.push(epcs.to_vec());
        write_record(state, rx_key(rx_token), &record);
    }
}

/// Drops the order's reservation, if any.
pub(super) fn release_order<W: StateWriter + ?Sized>(state: &mut W, order_id: &Hash) {
    if let Some(held) = order(state, order_id) {
        release(state, order_id, &held.epcs);
    }
}

pub fn decide<S: StateRead + ?Sized>(
    state: &S,
    actor: &Organization,
    command: &Command,
    ctx: &BlockContext,
) -> Result<Vec<Event>, Rejection> {
    let mut memo = RecallMemo::default();
    match command {
        Command::DecidePrescription { decision } => {
            ensure(
                rx(state, &decision.rx_token).is_none(),
                "rx.token_reused",
                || format!("prescription {} was already decided", decision.rx_token),
            )?;
            if decision.approved {
                ensure(
                    product_by_ndc(state, &decision.ndc).is_some(),
                    "rx.ndc_unknown",
                    || format!("no registered product has NDC {}", decision.ndc),
                )?;
                ensure(decision.quantity_milli > 0, "rx.quantity", || {
                    "an approved prescription needs a quantity".to_string()
                })?;
            } else {
                ensure(
                    !decision.reason.trim().is_empty(),
                    "rx.reason_missing",
                    || "a rejection needs a reason".to_string(),
                )?;
            }
            Ok(vec![Event::PrescriptionDecided {
                pharmacy: actor.gln(),
                decision: decision.clone(),
            }])
        }
        Command::Reserve {
            order: order_id,
            items,
            expires_ms,
        } => {
            non_empty(items, "reserve")?;
            distinct(items)?;
            ensure(
                order(state, order_id).is_none(),
                "inventory.order_exists",
                || format!("order {order_id} already has a reservation"),
            )?;
            ensure(
                *expires_ms > ctx.timestamp_ms
                    && *expires_ms - ctx.timestamp_ms <= RESERVATION_MS_MAX,
                "inventory.reservation_window",
                || {
                    format!(
                        "expires_ms {expires_ms} must be after the block time {} and at most 24 h later",
                        ctx.timestamp_ms
                    )
                },
            )?;
            for epc in items {
                available(state, &mut memo, epc, actor, None, ctx, "reserving")?;
            }
            Ok(vec![Event::Reserved {
                holder: actor.gln(),
                order: *order_id,
                epcs: items.clone(),
                expires_ms: *expires_ms,
            }])
        }
        Command::ReleaseReservation { order: order_id } => {
            let record = order(state, order_id).ok_or_else(|| {
                Rejection::new(
                    "inventory.order_unknown",
                    format!("order {order_id} has no reservation"),
                )
            })?;
            ensure(
                record.holder == actor.gln(),
                "inventory.not_reserver",
                || format!("order {order_id} was reserved by {}", record.holder),
            )?;
            Ok(vec![Event::ReservationReleased {
                holder: actor.gln(),
                order: *order_id,
                epcs: record.epcs,
            }])
        }
        Command::DispensePrescription { rx_token, items } => {
            non_empty(items, "dispense")?;
            distinct(items)?;
            check_dispensable(state, actor, rx_token, items, ctx)?;
            Ok(vec![Event::PrescriptionDispensed {
                holder: actor.gln(),
                rx_token: *rx_token,
                epcs: items.clone(),
            }])
        }
        Command::SetStorageRequirement {
            gtin,
            requirement: r,
        } => {
            let found = product(state, gtin).ok_or_else(|| {
                Rejection::new(
                    "custody.product.unknown",
                    format!("product {gtin} is not registered"),
                )
            })?;
            ensure(found.owner == actor.gln(), "cold_chain.not_owner", || {
                format!("product {gtin} is owned by {}", found.owner)
            })?;
            ensure(
                r.min_centi_c < r.max_centi_c && r.min_centi_c >= -8_000 && r.max_centi_c <= 6_000,
                "cold_chain.range",
                || {
                    format!(
                        "range {}..{} hundredths of °C: min must be below max, within -80..60 °C",
                        r.min_centi_c, r.max_centi_c
                    )
                },
            )?;
            Ok(vec![Event::StorageRequirementSet {
                owner: actor.gln(),
                gtin: *gtin,
                requirement: *r,
            }])
        }
        Command::AnchorTelemetry { anchor } => {
            ensure(
                state.get(&anchor_key(&anchor.batch_hash)).is_none(),
                "cold_chain.anchor_reused",
                || format!("batch {} is already anchored", anchor.batch_hash),
            )?;
            ensure(
                anchor.readings > 0 && anchor.first_ms <= anchor.last_ms,
                "cold_chain.batch_empty",
                || "a batch needs readings in time order".to_string(),
            )?;
            let packages = held_packages(state, &anchor.subjects, actor)?;
            Ok(vec![Event::TelemetryAnchored {
                by: actor.gln(),
                anchor: anchor.clone(),
                packages: packages.into_iter().map(|(e, _)| e).collect(),
            }])
        }
        Command::RecordExcursion { excursion } => {
            ensure(
                state.get(&anchor_key(&excursion.batch_hash)).is_some(),
                "cold_chain.batch_unknown",
                || format!("batch {} was never anchored", excursion.batch_hash),
            )?;
            let packages = held_packages(state, &excursion.items, actor)?;
            for (epc, it) in &packages {
                if let ItemKind::Package { gtin, .. } = &it.kind {
                    ensure(
                        requirement(state, gtin).is_some(),
                        "cold_chain.not_required",
                        || format!("{epc}: product {gtin} has no storage requirement"),
                    )?;
                }
                status_in(epc, it, &[Status::Active, Status::Returned], "quarantine")?;
            }
            let case_id = counter(state, NEXT_CASE);
            let epcs: Vec<Epc> = packages.into_iter().map(|(e, _)| e).collect();
            Ok(vec![
                Event::ExcursionRecorded {
                    by: actor.gln(),
                    case_id,
                    excursion: excursion.clone(),
                    packages: epcs.clone(),
                },
                Event::Quarantined {
                    case_id,
                    holder: actor.gln(),
                    epcs,
                    reason: format!(
                        "{}: {} min out of range from {} ms",
                        excursion.rule, excursion.minutes_out, excursion.started_ms
                    ),
                },
            ])
        }
        _ => reject(
            "contract.not_pharmacy",
            format!("{:?} is not a pharmacy command", command.kind()),
        ),
    }
}

fn release<W: StateWriter + ?Sized>(state: &mut W, order_id: &Hash, epcs: &[Epc]) {
    for epc in epcs {
        if reservation(state, epc).is_some_and(|r| &r.order == order_id) {
            state.put(reservation_key(epc), None);
        }
    }
    state.put(order_key(order_id), None);
}

pub fn evolve<W: StateWriter + ?Sized>(state: &mut W, position: Position, event: &Event) {
    match event {
        Event::PrescriptionDecided { pharmacy, decision } => write_record(
            state,
            rx_key(&decision.rx_token),
            &RxRecord {
                pharmacy: *pharmacy,
                decision: decision.clone(),
                decided_height: position.height,
                fills: Vec::new(),
            },
        ),
        Event::Reserved {
            holder,
            order: order_id,
            epcs,
            expires_ms,
        } => {
            // An expired reservation of another order on the same package is replaced.
            for epc in epcs {
                write_record(
                    state,
                    reservation_key(epc),
                    &Reservation {
                        order: *order_id,
                        holder: *holder,
                        expires_ms: *expires_ms,
                    },
                );
            }
            write_record(
                state,
                order_key(order_id),
                &Order {
                    holder: *holder,
                    epcs: epcs.clone(),
                    expires_ms: *expires_ms,
                },
            );
        }
        Event::ReservationReleased {
            order: order_id,
            epcs,
            ..
        } => release(state, order_id, epcs),
        Event::PrescriptionDispensed { rx_token, epcs, .. } => {
            touch(state, position, epcs, false, |it| {
                it.status = Status::Dispensed
            });
            record_fill(state, rx_token, epcs);
            release_order(state, rx_token);
            for epc in epcs {
                state.put(reservation_key(epc), None);
            }
        }
        Event::StorageRequirementSet {
            gtin, requirement, ..
        } => write_record(state, requirement_key(gtin), requirement),
        Event::TelemetryAnchored {
            by,
            anchor,
            packages,
        } => {
            write_record(
                state,
                anchor_key(&anchor.batch_hash),
                &AnchorRecord {
                    by: *by,
                    height: position.height,
                    readings: anchor.readings,
                    minutes_out: anchor.minutes_out,
                },
            );
            for epc in packages {
                let mut record = cold_chain(state, epc).unwrap_or_default();
                record.batches = record.batches.saturating_add(1);
                record.readings = record.readings.saturating_add(u64::from(anchor.readings));
                record.minutes_out = record.minutes_out.saturating_add(anchor.minutes_out);
                record.last_reading_ms = record.last_reading_ms.max(anchor.last_ms);
                write_record(state, cold_chain_key(epc), &record);
                epc_index(state, epc, position, None);
            }
        }
        Event::ExcursionRecorded {
            case_id, packages, ..
        } => {
            for epc in packages {
                let mut record = cold_chain(state, epc).unwrap_or_default();
                record.excursion_case = Some(*case_id);
                write_record(state, cold_chain_key(epc), &record);
                epc_index(state, epc, position, None);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::contract::fixtures::*;
    use crate::contract::gwt::{genesis, Scenario};
    use crate::contract::{IndexRead, TxResult};

    pub(in crate::custody) fn token(n: u8) -> Hash {
        Hash([n; 32])
    }

    /// Three packages S1..S3 received by the pharmacy (lot LOT1, expiry 2028-06-30).
    pub(in crate::custody) fn at_pharmacy() -> Scenario {
        let items = [sgtin("S1"), sgtin("S2"), sgtin("S3")];
        genesis()
            .after(
                MANUFACTURER,
                Command::RegisterProduct {
                    product: product_master(),
                },
            )
            .after(MANUFACTURER, commission(&["S1", "S2", "S3"]))
            .after(MANUFACTURER, sale(DISPENSER.gln(), items.to_vec(), "PO-1"))
            .after(DISPENSER, receive_all(0, &items))
    }

    fn decision(n: u8, approved: bool) -> RxDecision {
        RxDecision {
            rx_token: token(n),
            patient_token: token(100 + n),
            ndc: "00001-0123-45".into(),
            quantity_milli: 30_000,
            days_supply: Some(30),
            refills: 0,
            controlled: false,
            approved,
            signals: vec![],
            reason: if approved {
                String::new()
            } else {
                "rx.prescriber_unverified".into()
            },
            intake_commitment: token(200 + n),
        }
    }

    /// Prescription `n` approved (tokens `n`, `100 + n`, `200 + n`).
    pub(in crate::custody) fn approved(scenario: Scenario, n: u8) -> Scenario {
        scenario.after(
            DISPENSER,
            Command::DecidePrescription {
                decision: decision(n, true),
            },
        )
    }

    fn dispense(n: u8, serial: &str) -> Command {
        Command::DispensePrescription {
            rx_token: token(n),
            items: vec![sgtin(serial)],
        }
    }

    #[test]
    fn ndc_forms_cover_the_three_ten_digit_layouts() {
        assert_eq!(ndc_forms("0001-0123-45"), vec!["00001012345"]);
        assert_eq!(ndc_forms("12345-678-90"), vec!["12345067890"]);
        assert_eq!(ndc_forms("12345-6789-0"), vec!["12345678900"]);
        assert_eq!(ndc_forms("0001012345").len(), 3);
        assert!(ndc_matches("0001-0123-45", "00001012345"));
        assert!(ndc_matches("0001012345", "0001-0123-45"));
        assert!(!ndc_matches("0001-0123-46", "00001012345"));
        assert!(ndc_forms("12-34-56").is_empty());
        assert!(ndc_forms("abc").is_empty());
    }

    #[test]
    fn given_a_registered_ndc_when_the_pharmacist_approves_then_the_decision_is_recorded() {
        let scenario = at_pharmacy();
        scenario
            .when(
                DISPENSER,
                Command::DecidePrescription {
                    decision: decision(1, true),
                },
            )
            .then_expect(vec![Event::PrescriptionDecided {
                pharmacy: DISPENSER.gln(),
                decision: decision(1, true),
            }]);
    }

    #[test]
    fn given_an_unknown_ndc_when_approved_then_rx_ndc_unknown() {
        let mut d = decision(1, true);
        d.ndc = "99999-9999-99".into();
        at_pharmacy()
            .when(DISPENSER, Command::DecidePrescription { decision: d })
            .then_reject("rx.ndc_unknown");
    }

    #[test]
    fn given_a_rejection_without_reason_then_rx_reason_missing() {
        let mut d = decision(1, false);
        d.reason = " ".into();
        at_pharmacy()
            .when(DISPENSER, Command::DecidePrescription { decision: d })
            .then_reject("rx.reason_missing");
    }

    #[test]
    fn given_a_decided_token_when_decided_again_then_rx_token_reused() {
        approved(at_pharmacy(), 1)
            .when(
                DISPENSER,
                Command::DecidePrescription {
                    decision: decision(1, false),
                },
            )
            .then_reject("rx.token_reused");
    }

    #[test]
    fn given_a_wholesaler_when_it_decides_a_prescription_then_rbac_forbids() {
        at_pharmacy()
            .when(
                WHOLESALER,
                Command::DecidePrescription {
                    decision: decision(1, true),
                },
            )
            .then_reject("rbac.role_forbidden");
    }

    #[test]
    fn given_an_approved_rx_when_a_package_is_dispensed_then_it_is_dispensed_and_off_hand() {
        let mut scenario = approved(at_pharmacy(), 1);
        let before = scenario
            .ledger
            .scan(ON_HAND_INDEX, &DISPENSER.gln().0, 100)
            .len();
        assert_eq!(before, 3);
        assert_eq!(
            scenario.execute(DISPENSER, &dispense(1, "S2")),
            TxResult::Accepted
        );
        let item = item(&scenario.ledger, &sgtin("S2")).unwrap();
        assert_eq!(item.status, Status::Dispensed);
        assert_eq!(rx(&scenario.ledger, &token(1)).unwrap().fills.len(), 1);
        let on_hand = scenario.ledger.scan(ON_HAND_INDEX, &DISPENSER.gln().0, 100);
        assert_eq!(on_hand.len(), 2);
        assert!(on_hand.iter().all(|(k, _)| !k.ends_with(b".S2")));
        // A second fill of a prescription without refills is refused.
        scenario
            .when(DISPENSER, dispense(1, "S3"))
            .then_reject("rx.fills_exhausted");
    }

    #[test]
    fn given_the_manufacturer_holds_packages_then_they_are_on_its_hand_not_the_pharmacys() {
        let scenario = genesis()
            .after(
                MANUFACTURER,
                Command::RegisterProduct {
                    product: product_master(),
                },
            )
            .after(MANUFACTURER, commission(&["S1"]));
        assert_eq!(
            scenario
                .ledger
                .scan(ON_HAND_INDEX, &MANUFACTURER.gln().0, 10)
                .len(),
            1
        );
        let scenario = scenario.after(
            MANUFACTURER,
            sale(DISPENSER.gln(), vec![sgtin("S1")], "PO-1"),
        );
        // In transit: on nobody's hand.
        assert!(scenario
            .ledger
            .scan(ON_HAND_INDEX, &MANUFACTURER.gln().0, 10)
            .is_empty());
        assert!(scenario
            .ledger
            .scan(ON_HAND_INDEX, &DISPENSER.gln().0, 10)
            .is_empty());
        let scenario = scenario.after(DISPENSER, receive_all(0, &[sgtin("S1")]));
        assert_eq!(
            scenario
                .ledger
                .scan(ON_HAND_INDEX, &DISPENSER.gln().0, 10)
                .len(),
            1
        );
    }

    #[test]
    fn given_a_rejected_rx_when_dispensed_then_rx_not_approved() {
        at_pharmacy()
            .after(
                DISPENSER,
                Command::DecidePrescription {
                    decision: decision(1, false),
                },
            )
            .when(DISPENSER, dispense(1, "S1"))
            .then_reject("rx.not_approved");
    }

    #[test]
    fn given_no_decision_when_dispensed_then_rx_unknown() {
        at_pharmacy()
            .when(DISPENSER, dispense(9, "S1"))
            .then_reject("rx.unknown");
    }

    #[test]
    fn given_another_ndc_when_dispensed_then_rx_ndc_mismatch() {
        let mut other = product_master();
        other.gtin = Gtin::parse("00300010123462").unwrap();
        other.ndc = "0001-0123-46".into();
        let mut d = decision(1, true);
        d.ndc = "0001-0123-46".into();
        at_pharmacy()
            .after(MANUFACTURER, Command::RegisterProduct { product: other })
            .after(DISPENSER, Command::DecidePrescription { decision: d })
            .when(DISPENSER, dispense(1, "S1"))
            .then_reject("rx.ndc_mismatch");
    }

    #[test]
    fn given_a_recalled_lot_when_dispensed_then_custody_recalled() {
        approved(at_pharmacy(), 1)
            .after(
                MANUFACTURER,
                Command::RecallLot {
                    gtin: gtin(),
                    lot: "LOT1".into(),
                    class: RecallClass::I,
                    reason: "contamination".into(),
                },
            )
            .when(DISPENSER, dispense(1, "S1"))
            .then_reject("custody.recalled");
    }

    #[test]
    fn given_an_expired_package_when_dispensed_then_custody_expired() {
        // 2028-07-01: the day after the lot's expiry.
        approved(at_pharmacy(), 1)
            .at_ms(Date::new(2028, 7, 1).unix_days() as u64 * 86_400_000)
            .when(DISPENSER, dispense(1, "S1"))
            .then_reject("custody.expired");
    }

    #[test]
    fn given_a_quarantined_package_when_dispensed_then_transition_forbidden() {
        approved(at_pharmacy(), 1)
            .after(
                DISPENSER,
                Command::Quarantine {
                    items: vec![sgtin("S1")],
                    reason: "damaged seal".into(),
                },
            )
            .when(DISPENSER, dispense(1, "S1"))
            .then_reject("custody.transition_forbidden");
    }

    fn reserve(order: u8, serial: &str, expires_ms: u64) -> Command {
        Command::Reserve {
            order: token(order),
            items: vec![sgtin(serial)],
            expires_ms,
        }
    }

    #[test]
    fn given_a_reservation_for_another_order_when_dispensed_then_inventory_reserved_until_it_expires(
    ) {
        let t = DEMO_TIME_MS;
        let reserved = approved(at_pharmacy(), 1).after(DISPENSER, reserve(7, "S1", t + 60_000));
        reserved
            .when(DISPENSER, dispense(1, "S1"))
            .then_reject("inventory.reserved");
        reserved
            .when(
                DISPENSER,
                Command::Dispense {
                    items: vec![sgtin("S1")],
                },
            )
            .then_reject("inventory.reserved");
        reserved
            .when(DISPENSER, reserve(8, "S1", t + 60_000))
            .then_reject("inventory.reserved");
        // After the timeout the package is free again.
        reserved
            .clone()
            .at_ms(t + 60_001)
            .when(DISPENSER, dispense(1, "S1"))
            .accepted();
        // Released: free at once.
        let released = reserved.after(DISPENSER, Command::ReleaseReservation { order: token(7) });
        assert!(reservation(&released.ledger, &sgtin("S1")).is_none());
        released.when(DISPENSER, dispense(1, "S1")).accepted();
    }

    #[test]
    fn given_a_reservation_for_the_rx_itself_when_dispensed_then_accepted_and_released() {
        let t = DEMO_TIME_MS;
        let mut scenario =
            approved(at_pharmacy(), 1).after(DISPENSER, reserve(1, "S1", t + 60_000));
        assert_eq!(
            scenario.execute(DISPENSER, &dispense(1, "S1")),
            TxResult::Accepted
        );
        assert!(order(&scenario.ledger, &token(1)).is_none());
        assert!(reservation(&scenario.ledger, &sgtin("S1")).is_none());
    }

    #[test]
    fn reservation_rules() {
        let t = DEMO_TIME_MS;
        let scenario = at_pharmacy();
        scenario
            .when(DISPENSER, reserve(1, "S1", t))
            .then_reject("inventory.reservation_window");
        scenario
            .when(DISPENSER, reserve(1, "S1", t + RESERVATION_MS_MAX + 1))
            .then_reject("inventory.reservation_window");
        scenario
            .when(DISPENSER, Command::ReleaseReservation { order: token(1) })
            .then_reject("inventory.order_unknown");
        let reserved = scenario.after(DISPENSER, reserve(1, "S1", t + 1_000));
        reserved
            .when(DISPENSER, reserve(1, "S2", t + 1_000))
            .then_reject("inventory.order_exists");
        reserved
            .when(MANUFACTURER, reserve(2, "S1", t + 1_000))
            .then_reject("custody.not_holder");
    }

    const FRIDGE: StorageRequirement = StorageRequirement {
        min_centi_c: 200,
        max_centi_c: 800,
        max_excursion_minutes: 30,
        max_cumulative_minutes: 60,
    };

    fn anchor(batch: u8, serials: &[&str], minutes_out: u32) -> Command {
        Command::AnchorTelemetry {
            anchor: TelemetryAnchor {
                batch_hash: token(batch),
                subjects: serials.iter().map(|s| sgtin(s)).collect(),
                sensor: "logger-1".into(),
                readings: 60,
                first_ms: DEMO_TIME_MS - 3_600_000,
                last_ms: DEMO_TIME_MS,
                min_centi_c: 400,
                max_centi_c: 1_200,
                minutes_out,
            },
        }
    }

    fn excursion(batch: u8, serials: &[&str]) -> Command {
        Command::RecordExcursion {
            excursion: ExcursionReport {
                batch_hash: token(batch),
                items: serials.iter().map(|s| sgtin(s)).collect(),
                rule: "cold_chain.continuous".into(),
                started_ms: DEMO_TIME_MS - 2_000_000,
                minutes_out: 35,
                detail: "35 min out of 2.0..8.0 °C".into(),
            },
        }
    }

    fn refrigerated() -> Scenario {
        at_pharmacy().after(
            MANUFACTURER,
            Command::SetStorageRequirement {
                gtin: gtin(),
                requirement: FRIDGE,
            },
        )
    }

    #[test]
    fn storage_requirement_rules() {
        let scenario = at_pharmacy();
        scenario
            .when(
                DISPENSER,
                Command::SetStorageRequirement {
                    gtin: gtin(),
                    requirement: FRIDGE,
                },
            )
            .then_reject("rbac.role_forbidden");
        let mut empty = FRIDGE;
        empty.max_centi_c = empty.min_centi_c;
        scenario
            .when(
                MANUFACTURER,
                Command::SetStorageRequirement {
                    gtin: gtin(),
                    requirement: empty,
                },
            )
            .then_reject("cold_chain.range");
    }

    #[test]
    fn given_an_excursion_in_an_anchored_batch_then_packages_are_quarantined_and_not_dispensable() {
        let scenario = approved(refrigerated(), 1).after(DISPENSER, anchor(1, &["S1", "S2"], 35));
        let record = cold_chain(&scenario.ledger, &sgtin("S1")).unwrap();
        assert_eq!((record.batches, record.minutes_out), (1, 35));
        scenario
            .when(DISPENSER, anchor(1, &["S3"], 0))
            .then_reject("cold_chain.anchor_reused");
        scenario
            .when(DISPENSER, excursion(2, &["S1"]))
            .then_reject("cold_chain.batch_unknown");
        let events = scenario
            .when(DISPENSER, excursion(1, &["S1", "S2"]))
            .accepted();
        assert!(matches!(
            events[0],
            Event::ExcursionRecorded { case_id: 0, .. }
        ));
        assert!(
            matches!(&events[1], Event::Quarantined { case_id: 0, epcs, .. } if epcs.len() == 2)
        );
        let quarantined = scenario.after(DISPENSER, excursion(1, &["S1", "S2"]));
        assert_eq!(
            item(&quarantined.ledger, &sgtin("S1")).unwrap().status,
            Status::Quarantined
        );
        assert_eq!(
            cold_chain(&quarantined.ledger, &sgtin("S1"))
                .unwrap()
                .excursion_case,
            Some(0)
        );
        quarantined
            .when(DISPENSER, dispense(1, "S1"))
            .then_reject("custody.transition_forbidden");
        quarantined.when(DISPENSER, dispense(1, "S3")).accepted();
    }

    #[test]
    fn cold_chain_events_take_their_place_in_a_packages_history() {
        // Custody events are listed in the item's record, cold-chain events in the `epc`
        // index: the history interleaves them by position.
        let scenario = refrigerated()
            .after(DISPENSER, anchor(1, &["S1"], 35))
            .after(DISPENSER, excursion(1, &["S1"]));
        let names: Vec<_> = crate::custody::query::history(&scenario.ledger, &sgtin("S1"), 100)
            .iter()
            .map(|e| e.logged.event.name())
            .collect();
        assert_eq!(
            names,
            [
                "PackagesCommissioned",
                "Shipped",
                "Received",
                "TelemetryAnchored",
                "ExcursionRecorded",
                "Quarantined"
            ]
        );
    }

    #[test]
    fn given_no_storage_requirement_when_an_excursion_is_recorded_then_cold_chain_not_required() {
        at_pharmacy()
            .after(DISPENSER, anchor(1, &["S1"], 35))
            .when(DISPENSER, excursion(1, &["S1"]))
            .then_reject("cold_chain.not_required");
    }

    #[test]
    fn given_packages_held_elsewhere_when_anchoring_then_custody_not_holder() {
        refrigerated()
            .when(WHOLESALER, anchor(1, &["S1"], 0))
            .then_reject("custody.not_holder");
    }
}
