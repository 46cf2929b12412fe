//! Property tests: random command sequences by random parties, executed through the block
//! engine; after every step the custody invariants are checked against the state before and
//! after, with a transition specification written independently of `decide`.

use super::*;
use crate::contract::fixtures::*;
use crate::contract::gwt::{genesis, Scenario};
use crate::contract::store::IndexRead;
use crate::contract::{TxResult, EVENT_INDEX};
use proptest::prelude::*;

const SERIALS: [&str; 6] = ["P0", "P1", "P2", "P3", "P4", "P5"];
const ACTORS: [Party; 5] = [MANUFACTURER, WHOLESALER, WHOLESALER_2, DISPENSER, LOGISTICS];

#[derive(Clone, Debug)]
enum Step {
    Commission(u8),
    Aggregate(u8, u8, u8),
    Disaggregate(u8, u8),
    Ship(u8, u8, u8, u8, u8),
    Receive(u8, u8, u8),
    Dispense(u8, u8),
    Quarantine(u8, u8),
    Investigate(u8, u8),
    Resolve(u8, u8, bool),
    Verify(u8, u8, bool),
    Destroy(u8, u8),
    Decommission(u8, u8),
    Recall,
    AdvanceDays(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => any::<u8>().prop_map(Step::Commission),
        2 => (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(a, p, c)| Step::Aggregate(a, p, c)),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(a, p)| Step::Disaggregate(a, p)),
        5 => (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(a, t, i, k, c)| Step::Ship(a, t, i, k, c)),
        5 => (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(a, s, i)| Step::Receive(a, s, i)),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(a, i)| Step::Dispense(a, i)),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(a, i)| Step::Quarantine(a, i)),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(a, c)| Step::Investigate(a, c)),
        1 => (any::<u8>(), any::<u8>(), any::<bool>()).prop_map(|(a, c, ok)| Step::Resolve(a, c, ok)),
        1 => (any::<u8>(), any::<u8>(), any::<bool>()).prop_map(|(a, i, ok)| Step::Verify(a, i, ok)),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(a, i)| Step::Destroy(a, i)),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(a, i)| Step::Decommission(a, i)),
        1 => Just(Step::Recall),
        1 => (0u8..8).prop_map(Step::AdvanceDays),
    ]
}

fn universe() -> Vec<Epc> {
    let mut all: Vec<Epc> = SERIALS.iter().map(|s| sgtin(s)).collect();
    all.extend([sscc(1), sscc(2)]);
    all
}

/// A subset of the universe chosen by the bits of `mask` (never empty).
fn subset(mask: u8) -> Vec<Epc> {
    let all = universe();
    let chosen: Vec<Epc> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, e)| e.clone())
        .collect();
    if chosen.is_empty() {
        vec![all[usize::from(mask) % all.len()].clone()]
    } else {
        chosen
    }
}

fn actor(index: u8) -> Party {
    ACTORS[usize::from(index) % ACTORS.len()]
}

/// Mostly (3 in 4) the holder of some existing item and a subset of what it holds at top
/// level; otherwise any actor and any EPCs (which exercises the rejections).
fn holder_and_items(scenario: &Scenario, a: u8, mask: u8) -> (Party, Vec<Epc>) {
    let existing = items(scenario);
    if mask % 16 == 0 || existing.is_empty() {
        return (actor(a), subset(mask));
    }
    let (_, pick) = &existing[usize::from(a / 4) % existing.len()];
    // 3 in 4: the holder acts; otherwise someone else tries the holder's goods.
    let party = if a % 4 == 0 {
        actor(a / 4)
    } else {
        ACTORS
            .iter()
            .copied()
            .find(|p| p.gln() == pick.custodian)
            .unwrap_or(actor(a))
    };
    let held: Vec<Epc> = existing
        .iter()
        .filter(|(_, it)| {
            it.custodian == pick.custodian
                && it.parent.is_none()
                && !it.status.is_terminal()
                && it.status != Status::InTransit
        })
        .map(|(e, _)| e.clone())
        .collect();
    if held.is_empty() {
        return (party, subset(mask));
    }
    let chosen: Vec<Epc> = held
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << (i % 8)) != 0)
        .map(|(_, e)| e.clone())
        .collect();
    (
        party,
        if chosen.is_empty() {
            held[..1].to_vec()
        } else {
            chosen
        },
    )
}

fn command_of(step: &Step, scenario: &Scenario) -> Option<(Party, Command)> {
    let next_shipment: u64 =
        crate::contract::store::read_record(&scenario.ledger, b"c/sn").unwrap_or(0);
    let next_case: u64 =
        crate::contract::store::read_record(&scenario.ledger, b"c/qn").unwrap_or(0);
    Some(match step {
        Step::Commission(mask) => {
            let serials: Vec<&str> = SERIALS
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, s)| *s)
                .collect();
            let mut command = commission(if serials.is_empty() {
                &SERIALS[..1]
            } else {
                &serials
            });
            if let Command::Commission { expiry, .. } = &mut command {
                // Expires within the run, so expiry rules are exercised.
                *expiry = Date::new(2027, 1, 15);
            }
            (MANUFACTURER, command)
        }
        Step::Aggregate(a, parent, children) => {
            let (party, mut list) = holder_and_items(scenario, *a, *children);
            let parent = if parent % 2 == 0 { sscc(1) } else { sscc(2) };
            list.retain(|e| *e != parent);
            if list.is_empty() {
                list = subset(*children & 0x3f);
            }
            (
                party,
                Command::Aggregate {
                    parent,
                    children: list,
                },
            )
        }
        Step::Disaggregate(a, parent) => (
            actor(*a),
            Command::Disaggregate {
                parent: if parent % 2 == 0 { sscc(1) } else { sscc(2) },
                children: vec![],
            },
        ),
        Step::Ship(a, to, items, kind, carrier) => {
            let kind = match kind % 4 {
                0 | 1 => ShipmentKind::Sale,
                2 => ShipmentKind::Transfer,
                _ => ShipmentKind::Return,
            };
            let (party, list) = holder_and_items(scenario, *a, *items);
            let mut command = sale(actor(*to).gln(), list, "PO-P");
            if let Command::Ship {
                kind: k,
                carrier: c,
                biz_transactions,
                ..
            } = &mut command
            {
                *k = kind;
                if kind == ShipmentKind::Return {
                    biz_transactions[0].kind = BizTransactionKind::Rma;
                }
                if carrier % 3 == 0 {
                    *c = Some(LOGISTICS.gln());
                }
            }
            (party, command)
        }
        Step::Receive(a, shipment, items) => {
            let id = if next_shipment == 0 {
                0
            } else {
                u64::from(*shipment) % next_shipment
            };
            // Mostly the shipment's own outstanding items, sometimes a random set.
            let listed = match super::shipment(&scenario.ledger, id) {
                Some(s) if items % 4 != 0 && !s.outstanding.is_empty() => s.outstanding.clone(),
                _ => subset(*items),
            };
            let recipient = match super::shipment(&scenario.ledger, id) {
                Some(s) if a % 5 != 0 => ACTORS
                    .iter()
                    .copied()
                    .find(|p| p.gln() == s.recipient)
                    .unwrap_or(actor(*a)),
                _ => actor(*a),
            };
            (recipient, receive_all(id, &listed))
        }
        Step::Dispense(a, items) => {
            let (party, list) = holder_and_items(scenario, *a, *items);
            (party, Command::Dispense { items: list })
        }
        Step::Quarantine(a, items) => {
            let (party, list) = holder_and_items(scenario, *a, *items);
            (
                party,
                Command::Quarantine {
                    items: list,
                    reason: "suspect".into(),
                },
            )
        }
        Step::Investigate(a, case) => {
            let case_id = u64::from(*case) % next_case.max(1);
            (
                case_holder(scenario, case_id, *a),
                Command::BeginInvestigation { case_id },
            )
        }
        Step::Resolve(a, case, clear) => {
            let case_id = u64::from(*case) % next_case.max(1);
            let party = case_holder(scenario, case_id, *a);
            if *clear {
                (party, Command::ClearSuspect { case_id })
            } else {
                let notified = ACTORS
                    .iter()
                    .map(|p| p.gln())
                    .filter(|g| a % 2 == 0 || *g != MANUFACTURER.gln())
                    .collect();
                (
                    party,
                    Command::DeclareIllegitimate {
                        case_id,
                        form: Form3911 {
                            kind: Form3911Kind::Initial,
                            incident_number: "FDA-1".into(),
                            filed: Date::new(2026, 11, 26),
                        },
                        notified,
                    },
                )
            }
        }
        Step::Verify(a, items, ok) => {
            let (party, list) = holder_and_items(scenario, *a, *items);
            (
                party,
                Command::VerifyReturn {
                    items: list,
                    correlation_id: "c".into(),
                    verified: *ok,
                },
            )
        }
        Step::Destroy(a, items) => {
            let (party, list) = holder_and_items(scenario, *a, *items);
            (party, Command::Destroy { items: list })
        }
        Step::Decommission(a, items) => {
            let (party, list) = holder_and_items(scenario, *a, *items);
            (
                party,
                Command::Decommission {
                    items: list,
                    reason: "r".into(),
                },
            )
        }
        Step::Recall => (
            MANUFACTURER,
            Command::RecallLot {
                gtin: gtin(),
                lot: "LOT1".into(),
                class: RecallClass::II,
                reason: "r".into(),
            },
        ),
        Step::AdvanceDays(_) => return None,
    })
}

fn case_holder(scenario: &Scenario, case_id: u64, a: u8) -> Party {
    match super::case(&scenario.ledger, case_id) {
        Some(c) if a % 4 != 0 => ACTORS
            .iter()
            .copied()
            .find(|p| p.gln() == c.holder)
            .unwrap_or(actor(a)),
        _ => actor(a),
    }
}

/// The transition specification (independent of `decide`).
fn allowed(before: Status, after: Status) -> bool {
    use Status::*;
    before == after
        || matches!(
            (before, after),
            (
                Active,
                InTransit | Dispensed | Decommissioned | Destroyed | Quarantined
            ) | (InTransit, Active | Returned)
                | (Returned, Active | Quarantined | Decommissioned | Destroyed)
                | (Quarantined, UnderInvestigation)
                | (UnderInvestigation, Active | Illegitimate)
                | (Illegitimate, Destroyed)
        )
}

fn items(scenario: &Scenario) -> Vec<(Epc, Item)> {
    universe()
        .into_iter()
        .filter_map(|e| item(&scenario.ledger, &e).map(|i| (e, i)))
        .collect()
}

fn check_step(
    before: &Scenario,
    after: &Scenario,
    party: Party,
    command: &Command,
    result: &TxResult,
) {
    let today = before.ctx(party.key()).date();
    let old = items(before);
    let new = items(after);
    if !matches!(result, TxResult::Accepted) {
        assert_eq!(old, new, "a rejected command changed custody");
        return;
    }
    for (epc, now) in &new {
        // One owner, one custodian, both known organizations; owners are never 3PLs.
        let owner =
            crate::iam::organization(&after.ledger, &now.owner).expect("owner organization");
        assert!(crate::iam::organization(&after.ledger, &now.custodian).is_some());
        assert_ne!(owner.role(), Role::Logistics, "{epc}: a 3PL became owner");
        // In transit ⇔ in an open shipment that lists it or its outermost container.
        match (now.status, now.shipment) {
            (Status::InTransit, Some(id)) => {
                let s = shipment(&after.ledger, id).expect("open shipment");
                let top = query::status(&after.ledger, epc, today)
                    .unwrap()
                    .outermost_parent
                    .unwrap_or(epc.clone());
                assert!(
                    s.outstanding.contains(&top),
                    "{epc} in transit outside shipment {id}'s outstanding items"
                );
            }
            (Status::InTransit, None) => panic!("{epc} in transit without a shipment"),
            (_, Some(id)) => panic!("{epc} is {:?} but still in shipment {id}", now.status),
            (_, None) => {}
        }
        let Some((_, was)) = old.iter().find(|(e, _)| e == epc) else {
            continue;
        };
        assert!(
            allowed(was.status, now.status),
            "{epc}: {:?} → {:?} by {command:?}",
            was.status,
            now.status
        );
        if was.status.is_terminal() {
            assert_eq!(was, now, "{epc}: a terminal package changed");
        }
        let moved = was.custodian != now.custodian || was.owner != now.owner;
        if moved {
            match command {
                // Nobody ships what they do not hold.
                Command::Ship { kind, .. } => {
                    assert_eq!(
                        was.custodian,
                        party.gln(),
                        "{epc} shipped by {} who did not hold it",
                        party.name
                    );
                    if let ItemKind::Package { gtin, lot, expiry } = &was.kind {
                        let restricted =
                            recall(&before.ledger, gtin, lot).is_some() || *expiry < today;
                        assert!(
                            !restricted || *kind == ShipmentKind::Return,
                            "{epc}: recalled/expired shipped as {kind:?}"
                        );
                    }
                }
                // Nobody receives what was not shipped to them.
                Command::Receive { shipment_id, .. } => {
                    let s = shipment(&before.ledger, *shipment_id).unwrap();
                    assert_eq!(s.recipient, party.gln());
                    assert_eq!(
                        (was.status, was.shipment),
                        (Status::InTransit, Some(*shipment_id))
                    );
                }
                // An empty container takes the owner of the content packed into it (`decide`,
                // Aggregate); its custodian, the packer, stays.
                Command::Aggregate { parent, children }
                    if parent == epc && was.children.is_empty() =>
                {
                    assert_eq!(was.custodian, now.custodian, "{epc}: packing moved custody");
                    assert_eq!(was.custodian, party.gln(), "{epc} packed by a non-holder");
                    let content = item(&after.ledger, &children[0]).unwrap();
                    assert_eq!(
                        now.owner, content.owner,
                        "{epc}: owner is not its content's"
                    );
                }
                other => panic!("{epc} changed hands by {other:?}"),
            }
        }
        if now.status == Status::Dispensed && was.status != Status::Dispensed {
            if let ItemKind::Package { gtin, lot, expiry } = &was.kind {
                assert!(
                    recall(&before.ledger, gtin, lot).is_none() && *expiry >= today,
                    "{epc}: recalled/expired dispensed"
                );
            }
            assert_eq!(party.role, Role::Dispenser);
        }
    }
}

/// The `on_hand` index lists exactly the packages each party holds on hand, with their status
/// (as `on_hand_entry` defines it for one package): entries come and go with every move and
/// status change, and none is left behind.
fn check_on_hand(scenario: &Scenario) {
    let items = items(scenario);
    for party in ACTORS {
        let gln = party.gln();
        let listed: Vec<(Vec<u8>, Vec<u8>)> =
            scenario.ledger.scan(ON_HAND_INDEX, &gln.0, usize::MAX);
        let mut expected: Vec<(Vec<u8>, Vec<u8>)> = items
            .iter()
            .filter(|(_, it)| it.custodian == gln)
            .filter_map(|(epc, it)| on_hand_entry(epc, it).map(|(key, status)| (key, vec![status])))
            .collect();
        expected.sort();
        assert_eq!(listed, expected, "on hand at {gln:?}");
    }
}

/// Every package's history is a connected chain back to its commissioning.
fn check_chains(scenario: &Scenario) {
    for (epc, it) in items(scenario) {
        let history = query::history(&scenario.ledger, &epc, 1000);
        assert!(!history.is_empty());
        let first = &history[0].logged.event;
        assert!(
            matches!(first, Event::PackagesCommissioned { epcs, .. } if epcs.contains(&epc))
                || matches!(first, Event::Aggregated { parent, created: true, .. } if *parent == epc),
            "{epc}: history starts with {first:?}"
        );
        assert_eq!(
            history.last().unwrap().logged.position,
            it.last_event,
            "{epc}: chain tip"
        );
        assert!(history
            .windows(2)
            .all(|w| w[0].logged.position < w[1].logged.position));
        let mut custodian = match first {
            Event::PackagesCommissioned { owner, .. } => *owner,
            Event::Aggregated { holder, .. } => *holder,
            _ => unreachable!(),
        };
        let mut in_flight: Option<(u64, Gln)> = None;
        for entry in &history[1..] {
            match &entry.logged.event {
                Event::Shipped { shipment, .. } => {
                    assert!(
                        in_flight.is_none(),
                        "{epc}: shipped twice without a receipt"
                    );
                    assert_eq!(
                        shipment.shipper, custodian,
                        "{epc}: shipped by a non-holder"
                    );
                    custodian = shipment.carrier.unwrap_or(shipment.shipper);
                    in_flight = Some((shipment.id, shipment.recipient));
                }
                Event::Received {
                    shipment_id,
                    recipient,
                    ..
                } => {
                    assert_eq!(
                        in_flight.take(),
                        Some((*shipment_id, *recipient)),
                        "{epc}: receipt without its shipment"
                    );
                    custodian = *recipient;
                }
                _ => {}
            }
        }
        assert_eq!(
            custodian, it.custodian,
            "{epc}: history and state disagree on the holder"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn custody_invariants_hold_over_random_command_sequences(steps in prop::collection::vec(step(), 1..60)) {
        let mut scenario = genesis().after(MANUFACTURER, Command::RegisterProduct { product: product_master() });
        let mut accepted = 0;
        for step in &steps {
            if let Step::AdvanceDays(days) = step {
                scenario.timestamp_ms += u64::from(*days) * 86_400_000;
                continue;
            }
            let Some((party, command)) = command_of(step, &scenario) else { continue };
            let before = scenario.clone();
            let result = scenario.execute(party, &command);
            if result == TxResult::Accepted {
                accepted += 1;
            }
            check_step(&before, &scenario, party, &command, &result);
            check_on_hand(&scenario);
        }
        check_chains(&scenario);
        // The projection rebuilt from the event log equals the live state.
        let log: Vec<crate::contract::LoggedEvent> = scenario
            .ledger
            .scan(EVENT_INDEX, &[], usize::MAX)
            .into_iter()
            .map(|(_, v)| crate::contract::decode_logged_event(&v).unwrap())
            .collect();
        let mut rebuilt = crate::contract::MemLedger::new();
        crate::contract::replay(&mut rebuilt, &log);
        let mut live = scenario.ledger.state.clone();
        live.retain(|k, _| !k.starts_with(crate::contract::NONCE_PREFIX) && k.as_slice() != crate::contract::STATE_ROOT_KEY);
        prop_assert_eq!(rebuilt.state, live);
        prop_assert!(accepted <= steps.len());
    }
}

/// The generator reaches the interesting transitions (guards against a vacuous property).
#[test]
fn random_sequences_reach_every_lifecycle_stage() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let mut seen: Vec<Status> = Vec::new();
    let mut ships = 0;
    let mut receipts = 0;
    for _ in 0..200 {
        let steps = prop::collection::vec(step(), 40..60)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let mut scenario = genesis().after(
            MANUFACTURER,
            Command::RegisterProduct {
                product: product_master(),
            },
        );
        for step in &steps {
            if let Step::AdvanceDays(days) = step {
                scenario.timestamp_ms += u64::from(*days) * 86_400_000;
                continue;
            }
            let Some((party, command)) = command_of(step, &scenario) else {
                continue;
            };
            if scenario.execute(party, &command) == TxResult::Accepted {
                match command {
                    Command::Ship { .. } => ships += 1,
                    Command::Receive { .. } => receipts += 1,
                    _ => {}
                }
            }
            for (_, it) in items(&scenario) {
                if !seen.contains(&it.status) {
                    seen.push(it.status);
                }
            }
        }
    }
    assert!(
        ships > 150 && receipts > 100,
        "ships {ships} receipts {receipts} statuses {seen:?}"
    );
    for status in [
        Status::Active,
        Status::InTransit,
        Status::Returned,
        Status::Quarantined,
        Status::UnderInvestigation,
        Status::Illegitimate,
        Status::Dispensed,
        Status::Decommissioned,
        Status::Destroyed,
    ] {
        assert!(seen.contains(&status), "never reached {status:?}: {seen:?}");
    }
}
