//! Given/when/then tests of the custody lifecycle.

use super::*;
use crate::contract::fixtures::*;
use crate::contract::gwt::{genesis, given, Scenario};
use crate::contract::IndexRead;
use crate::contract::TxResult;

fn produced() -> Scenario {
    genesis()
        .after(
            MANUFACTURER,
            Command::RegisterProduct {
                product: product_master(),
            },
        )
        .after(MANUFACTURER, commission(&["S1", "S2", "S3"]))
}

fn packed() -> Scenario {
    produced().after(
        MANUFACTURER,
        Command::Aggregate {
            parent: sscc(1),
            children: vec![sgtin("S1"), sgtin("S2")],
        },
    )
}

fn at_wholesaler() -> Scenario {
    produced()
        .after(
            MANUFACTURER,
            sale(WHOLESALER.gln(), vec![sgtin("S1")], "PO-1"),
        )
        .after(WHOLESALER, receive_all(0, &[sgtin("S1")]))
}

#[test]
fn commission_creates_packages_owned_and_held_by_the_manufacturer() {
    let scenario = genesis().after(
        MANUFACTURER,
        Command::RegisterProduct {
            product: product_master(),
        },
    );
    scenario
        .when(MANUFACTURER, commission(&["S1", "S2"]))
        .then_expect(vec![Event::PackagesCommissioned {
            owner: MANUFACTURER.gln(),
            gtin: gtin(),
            lot: "LOT1".into(),
            expiry: Date::new(2028, 6, 30),
            epcs: vec![
                Epc::new("urn:epc:id:sgtin:0300010.012345.S1"),
                Epc::new("urn:epc:id:sgtin:0300010.012345.S2"),
            ],
        }]);
}

#[test]
fn only_manufacturers_commission() {
    let scenario = genesis().after(
        MANUFACTURER,
        Command::RegisterProduct {
            product: product_master(),
        },
    );
    scenario
        .when(WHOLESALER, commission(&["S1"]))
        .then_reject("rbac.role_forbidden");
}

#[test]
fn commission_needs_a_registered_product_of_ones_own() {
    genesis()
        .when(MANUFACTURER, commission(&["S1"]))
        .then_reject("custody.product.unknown");
}

#[test]
fn a_serial_is_commissioned_once() {
    produced()
        .when(MANUFACTURER, commission(&["S9", "S2"]))
        .then_reject("custody.epc_exists");
    produced()
        .when(MANUFACTURER, commission(&["S9", "S9"]))
        .then_reject("custody.duplicate_epc");
}

#[test]
fn commission_rejects_an_expired_lot() {
    let mut command = commission(&["S1"]);
    if let Command::Commission { expiry, .. } = &mut command {
        *expiry = Date::new(2026, 11, 25);
    }
    genesis()
        .after(
            MANUFACTURER,
            Command::RegisterProduct {
                product: product_master(),
            },
        )
        .when(MANUFACTURER, command)
        .then_reject("custody.commission.expired");
}

#[test]
fn unknown_signer_is_rejected() {
    produced()
        .when_key(pharmalink_ledger::PublicKey([99; 32]), commission(&["S9"]))
        .then_reject("iam.signer_unknown");
}

#[test]
fn nobody_ships_what_they_do_not_hold() {
    produced()
        .when(WHOLESALER, sale(DISPENSER.gln(), vec![sgtin("S1")], "PO-1"))
        .then_reject("custody.not_holder");
}

#[test]
fn a_sale_needs_ts_ti_and_a_purchase_order_or_invoice() {
    let scenario = produced();
    let mut no_ts = sale(WHOLESALER.gln(), vec![sgtin("S1")], "PO-1");
    if let Command::Ship { statement, .. } = &mut no_ts {
        statement.affirmed = false;
    }
    scenario
        .when(MANUFACTURER, no_ts)
        .then_reject("dscsa.ts_required");
    let mut no_ti = sale(WHOLESALER.gln(), vec![sgtin("S1")], "PO-1");
    if let Command::Ship {
        transaction_information,
        ..
    } = &mut no_ti
    {
        *transaction_information = None;
    }
    scenario
        .when(MANUFACTURER, no_ti)
        .then_reject("dscsa.ti_required");
    let mut no_po = sale(WHOLESALER.gln(), vec![sgtin("S1")], "PO-1");
    if let Command::Ship {
        biz_transactions, ..
    } = &mut no_po
    {
        biz_transactions[0].kind = BizTransactionKind::Desadv;
    }
    scenario
        .when(MANUFACTURER, no_po)
        .then_reject("dscsa.biz_transaction_required");
}

#[test]
fn ship_records_commitments_not_plaintext() {
    let events = produced()
        .when(
            MANUFACTURER,
            sale(WHOLESALER.gln(), vec![sgtin("S1")], "PO-1"),
        )
        .accepted();
    let Event::Shipped { shipment, moved } = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(moved, &vec![sgtin("S1")]);
    let ti = shipment.transaction_information.unwrap();
    assert_eq!(ti.commitment, sealed_ti(1).commitment);
    assert_eq!(ti.blob_hash, blob_hash(&sealed_ti(1).ciphertext));
    // The stored shipment holds no ciphertext.
    let bytes = borsh::to_vec(shipment).unwrap();
    assert!(!bytes
        .windows(64)
        .any(|w| w == sealed_ti(1).ciphertext.as_slice()));
}

#[test]
fn recipient_must_be_an_authorized_trading_partner() {
    let scenario = produced().after(
        REGULATOR,
        Command::RecordLicence {
            gln: WHOLESALER.gln(),
            licence: Licence {
                kind: LicenceKind::StateLicence(*b"NJ"),
                number: "LIC-0001".into(),
                expires: Date::new(2026, 11, 25),
                revoked: false,
            },
        },
    );
    scenario
        .when(
            MANUFACTURER,
            sale(WHOLESALER.gln(), vec![sgtin("S1")], "PO-1"),
        )
        .then_reject("iam.atp.licence_invalid");
    scenario
        .when(
            MANUFACTURER,
            sale(REGULATOR.gln(), vec![sgtin("S1")], "PO-1"),
        )
        .then_reject("iam.atp.not_trading_partner");
}

#[test]
fn nobody_receives_what_was_not_shipped_to_them() {
    let scenario = produced().after(
        MANUFACTURER,
        sale(WHOLESALER.gln(), vec![sgtin("S1")], "PO-1"),
    );
    scenario
        .when(WHOLESALER_2, receive_all(0, &[sgtin("S1")]))
        .then_reject("custody.receive.not_recipient");
    scenario
        .when(WHOLESALER, receive_all(7, &[sgtin("S1")]))
        .then_reject("custody.receive.no_shipment");
}

#[test]
fn receipt_transfers_ownership_and_custody() {
    let scenario = at_wholesaler();
    let it = item(&scenario.ledger, &sgtin("S1")).unwrap();
    assert_eq!(
        (it.owner, it.custodian, it.status),
        (WHOLESALER.gln(), WHOLESALER.gln(), Status::Active)
    );
    assert_eq!(it.received_from, Some(MANUFACTURER.gln()));
    scenario
        .when(WHOLESALER, receive_all(0, &[sgtin("S1")]))
        .then_reject("custody.receive.shipment_closed");
}

#[test]
fn overage_underage_and_misalignment_become_exceptions() {
    let scenario = produced().after(
        MANUFACTURER,
        sale(WHOLESALER.gln(), vec![sgtin("S1"), sgtin("S2")], "PO-1"),
    );
    let command = Command::Receive {
        shipment_id: 0,
        items: vec![
            ReceivedItem {
                epc: sgtin("S1"),
                observed_lot: Some("LOTX".into()),
                observed_expiry: None,
            },
            ReceivedItem {
                epc: sgtin("S3"),
                observed_lot: None,
                observed_expiry: None,
            },
            ReceivedItem {
                epc: sgtin("NEVER"),
                observed_lot: None,
                observed_expiry: None,
            },
        ],
        source: ObservationSource::Scan,
    };
    let exception = |id, category, epcs: Vec<Epc>, detail: &str| Event::ExceptionRaised {
        exception: ExceptionRecord {
            id,
            party: WHOLESALER.gln(),
            shipment_id: 0,
            category,
            source: ObservationSource::Scan,
            epcs,
            detail: detail.into(),
            resolution: None,
        },
    };
    scenario.when(WHOLESALER, command).then_expect(vec![
        Event::Received {
            shipment_id: 0,
            recipient: WHOLESALER.gln(),
            received: vec![sgtin("S1")],
            moved: vec![sgtin("S1")],
            closed: false,
        },
        exception(
            0,
            ExceptionCategory::Overage,
            vec![sgtin("S3")],
            "received but not in the shipment",
        ),
        exception(
            1,
            ExceptionCategory::ProductNoEpcis,
            vec![sgtin("NEVER")],
            "received but never commissioned",
        ),
        exception(
            2,
            ExceptionCategory::DataMisalignment,
            vec![sgtin("S1")],
            "urn:epc:id:sgtin:0300010.012345.S1: data lot LOT1 expiry 2028-06-30",
        ),
        exception(
            3,
            ExceptionCategory::Underage,
            vec![sgtin("S2")],
            "shipped but not received",
        ),
    ]);
}

#[test]
fn a_partial_receipt_keeps_the_shipment_open_for_the_rest() {
    let mut scenario = produced()
        .after(
            MANUFACTURER,
            sale(WHOLESALER.gln(), vec![sgtin("S1"), sgtin("S2")], "PO-1"),
        )
        .after(WHOLESALER, receive_all(0, &[sgtin("S1")]));
    assert_eq!(
        item(&scenario.ledger, &sgtin("S2")).unwrap().status,
        Status::InTransit
    );
    assert_eq!(
        scenario.execute(WHOLESALER, &receive_all(0, &[sgtin("S2")])),
        TxResult::Accepted
    );
    assert!(shipment(&scenario.ledger, 0)
        .unwrap()
        .outstanding
        .is_empty());
}

#[test]
fn shipping_and_receiving_a_container_moves_its_contents() {
    let scenario = packed()
        .after(MANUFACTURER, sale(WHOLESALER.gln(), vec![sscc(1)], "PO-1"))
        .after(WHOLESALER, receive_all(0, &[sscc(1)]));
    for epc in [sscc(1), sgtin("S1"), sgtin("S2")] {
        let it = item(&scenario.ledger, &epc).unwrap();
        assert_eq!(
            (it.owner, it.custodian, it.status),
            (WHOLESALER.gln(), WHOLESALER.gln(), Status::Active),
            "{epc}"
        );
    }
    assert_eq!(
        item(&scenario.ledger, &sgtin("S3")).unwrap().owner,
        MANUFACTURER.gln()
    );
}

#[test]
fn a_packed_item_moves_only_with_its_container() {
    packed()
        .when(
            MANUFACTURER,
            sale(WHOLESALER.gln(), vec![sgtin("S1")], "PO-1"),
        )
        .then_reject("custody.inside_container");
    packed()
        .after(
            MANUFACTURER,
            Command::Disaggregate {
                parent: sscc(1),
                children: vec![sgtin("S1")],
            },
        )
        .when(
            MANUFACTURER,
            sale(WHOLESALER.gln(), vec![sgtin("S1")], "PO-1"),
        )
        .accepted();
}

#[test]
fn aggregation_rules() {
    // A case SGTIN can be a parent (homogeneous case).
    produced()
        .when(
            MANUFACTURER,
            Command::Aggregate {
                parent: sgtin("S3"),
                children: vec![sgtin("S1")],
            },
        )
        .accepted();
    produced()
        .when(
            MANUFACTURER,
            Command::Aggregate {
                parent: sgtin("S3"),
                children: vec![],
            },
        )
        .then_reject("custody.no_items");
    packed()
        .when(
            MANUFACTURER,
            Command::Aggregate {
                parent: sscc(2),
                children: vec![sgtin("S1")],
            },
        )
        .then_reject("custody.inside_container");
    packed()
        .when(
            MANUFACTURER,
            Command::Disaggregate {
                parent: sscc(1),
                children: vec![sgtin("S3")],
            },
        )
        .then_reject("custody.disaggregate.not_child");
    produced()
        .when(
            MANUFACTURER,
            Command::Aggregate {
                parent: Epc::new("urn:epc:id:sscc:0300010.00000001"),
                children: vec![sgtin("S1")],
            },
        )
        .then_reject("epc.malformed");
}

#[test]
fn a_3pl_holds_without_owning_and_ships_for_the_owner() {
    let transfer = Command::Ship {
        kind: ShipmentKind::Transfer,
        to: LOGISTICS.gln(),
        carrier: None,
        items: vec![sgtin("S1")],
        biz_transactions: vec![],
        statement: TransactionStatement { affirmed: false },
        transaction_information: None,
    };
    let scenario = produced()
        .after(MANUFACTURER, transfer)
        .after(LOGISTICS, receive_all(0, &[sgtin("S1")]));
    let it = item(&scenario.ledger, &sgtin("S1")).unwrap();
    assert_eq!(
        (it.owner, it.custodian),
        (MANUFACTURER.gln(), LOGISTICS.gln())
    );
    // The owner no longer holds it.
    scenario
        .when(
            MANUFACTURER,
            sale(WHOLESALER.gln(), vec![sgtin("S1")], "PO-2"),
        )
        .then_reject("custody.not_holder");
    // The 3PL ships the owner's sale; the seller is the owner.
    let events = scenario
        .when(LOGISTICS, sale(WHOLESALER.gln(), vec![sgtin("S1")], "PO-2"))
        .accepted();
    let Event::Shipped { shipment, .. } = &events[0] else {
        panic!()
    };
    assert_eq!(
        (shipment.seller, shipment.shipper),
        (MANUFACTURER.gln(), LOGISTICS.gln())
    );
    // A 3PL cannot buy.
    produced()
        .when(
            MANUFACTURER,
            sale(LOGISTICS.gln(), vec![sgtin("S2")], "PO-3"),
        )
        .then_reject("custody.ship.sale_to_logistics");
}

#[test]
fn a_courier_carries_in_transit() {
    let mut command = sale(WHOLESALER.gln(), vec![sgtin("S1")], "PO-1");
    if let Command::Ship { carrier, .. } = &mut command {
        *carrier = Some(LOGISTICS.gln());
    }
    let scenario = produced().after(MANUFACTURER, command);
    let it = item(&scenario.ledger, &sgtin("S1")).unwrap();
    assert_eq!(
        (it.owner, it.custodian, it.status),
        (MANUFACTURER.gln(), LOGISTICS.gln(), Status::InTransit)
    );
    let mut wrong = sale(WHOLESALER.gln(), vec![sgtin("S2")], "PO-1");
    if let Command::Ship { carrier, .. } = &mut wrong {
        *carrier = Some(DISPENSER.gln());
    }
    scenario
        .when(MANUFACTURER, wrong)
        .then_reject("custody.ship.carrier_role");
}

#[test]
fn dispense_by_dispensers_only_and_final() {
    let scenario = at_wholesaler()
        .after(WHOLESALER, sale(DISPENSER.gln(), vec![sgtin("S1")], "PO-9"))
        .after(DISPENSER, receive_all(1, &[sgtin("S1")]));
    scenario
        .when(
            WHOLESALER,
            Command::Dispense {
                items: vec![sgtin("S1")],
            },
        )
        .then_reject("rbac.role_forbidden");
    let scenario = scenario.after(
        DISPENSER,
        Command::Dispense {
            items: vec![sgtin("S1")],
        },
    );
    assert_eq!(
        item(&scenario.ledger, &sgtin("S1")).unwrap().status,
        Status::Dispensed
    );
    scenario
        .when(
            DISPENSER,
            Command::Dispense {
                items: vec![sgtin("S1")],
            },
        )
        .then_reject("custody.transition_forbidden");
    scenario
        .when(DISPENSER, sale(WHOLESALER.gln(), vec![sgtin("S1")], "PO-9"))
        .then_reject("custody.transition_forbidden");
}

#[test]
fn recalled_lots_do_not_sell_but_return() {
    let recall = Command::RecallLot {
        gtin: gtin(),
        lot: "LOT1".into(),
        class: RecallClass::II,
        reason: "label".into(),
    };
    let scenario = at_wholesaler();
    scenario
        .when(WHOLESALER, recall.clone())
        .then_reject("rbac.role_forbidden");
    let scenario = scenario.after(MANUFACTURER, recall.clone());
    scenario
        .when(MANUFACTURER, recall)
        .then_reject("custody.recall.exists");
    scenario
        .when(WHOLESALER, sale(DISPENSER.gln(), vec![sgtin("S1")], "PO-9"))
        .then_reject("custody.recalled");
    let back = Command::Ship {
        kind: ShipmentKind::Return,
        to: MANUFACTURER.gln(),
        carrier: None,
        items: vec![sgtin("S1")],
        biz_transactions: vec![BizTransaction {
            kind: BizTransactionKind::Rma,
            id: "RMA-1".into(),
        }],
        statement: TransactionStatement { affirmed: true },
        transaction_information: Some(sealed_ti(2)),
    };
    let scenario = scenario
        .after(WHOLESALER, back)
        .after(MANUFACTURER, receive_all(1, &[sgtin("S1")]));
    assert_eq!(
        item(&scenario.ledger, &sgtin("S1")).unwrap().status,
        Status::Returned
    );
    scenario.after(
        MANUFACTURER,
        Command::Destroy {
            items: vec![sgtin("S1")],
        },
    );
}

#[test]
fn expired_packages_do_not_ship() {
    produced()
        .at_ms(fixtures_date_ms(2028, 7, 1))
        .when(
            MANUFACTURER,
            sale(WHOLESALER.gln(), vec![sgtin("S1")], "PO-1"),
        )
        .then_reject("custody.expired");
}

fn fixtures_date_ms(year: i64, month: i64, day: i64) -> u64 {
    // Days from civil (inverse of Date::from_unix_days), for tests.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    assert_eq!(
        Date::from_unix_days(days),
        Date::new(year as u32, month as u32, day as u32)
    );
    days as u64 * 86_400_000
}

#[test]
fn saleable_return_needs_a_verification() {
    let scenario = at_wholesaler()
        .after(WHOLESALER, sale(DISPENSER.gln(), vec![sgtin("S1")], "PO-9"))
        .after(DISPENSER, receive_all(1, &[sgtin("S1")]))
        .after(
            DISPENSER,
            Command::Ship {
                kind: ShipmentKind::Return,
                to: WHOLESALER.gln(),
                carrier: None,
                items: vec![sgtin("S1")],
                biz_transactions: vec![BizTransaction {
                    kind: BizTransactionKind::Rma,
                    id: "RMA-7".into(),
                }],
                statement: TransactionStatement { affirmed: true },
                transaction_information: Some(sealed_ti(3)),
            },
        )
        .after(WHOLESALER, receive_all(2, &[sgtin("S1")]));
    scenario
        .when(
            WHOLESALER,
            sale(WHOLESALER_2.gln(), vec![sgtin("S1")], "PO-10"),
        )
        .then_reject("custody.transition_forbidden");
    let verified = scenario.clone().after(
        WHOLESALER,
        Command::VerifyReturn {
            items: vec![sgtin("S1")],
            correlation_id: "vrs-1".into(),
            verified: true,
        },
    );
    verified
        .when(
            WHOLESALER,
            sale(WHOLESALER_2.gln(), vec![sgtin("S1")], "PO-10"),
        )
        .accepted();
    let failed = scenario.after(
        WHOLESALER,
        Command::VerifyReturn {
            items: vec![sgtin("S1")],
            correlation_id: "vrs-2".into(),
            verified: false,
        },
    );
    assert_eq!(
        item(&failed.ledger, &sgtin("S1")).unwrap().status,
        Status::Quarantined
    );
}

#[test]
fn suspect_product_lifecycle() {
    let scenario = at_wholesaler().after(
        WHOLESALER,
        Command::Quarantine {
            items: vec![sgtin("S1")],
            reason: "torn seal".into(),
        },
    );
    scenario
        .when(WHOLESALER, sale(DISPENSER.gln(), vec![sgtin("S1")], "PO-9"))
        .then_reject("custody.transition_forbidden");
    scenario
        .when(WHOLESALER, Command::ClearSuspect { case_id: 0 })
        .then_reject("suspect.not_investigated");
    scenario
        .when(MANUFACTURER, Command::BeginInvestigation { case_id: 0 })
        .then_reject("suspect.not_case_holder");
    let investigating = scenario.after(WHOLESALER, Command::BeginInvestigation { case_id: 0 });
    assert_eq!(
        item(&investigating.ledger, &sgtin("S1")).unwrap().status,
        Status::UnderInvestigation
    );
    let form = Form3911 {
        kind: Form3911Kind::Initial,
        incident_number: "FDA-2026-0042".into(),
        filed: Date::new(2026, 11, 26),
    };
    investigating
        .when(
            WHOLESALER,
            Command::DeclareIllegitimate {
                case_id: 0,
                form: form.clone(),
                notified: vec![],
            },
        )
        .then_reject("dscsa.illegitimate.partner_not_notified");
    let mut follow_up = form.clone();
    follow_up.kind = Form3911Kind::FollowUp;
    investigating
        .when(
            WHOLESALER,
            Command::DeclareIllegitimate {
                case_id: 0,
                form: follow_up,
                notified: vec![MANUFACTURER.gln()],
            },
        )
        .then_reject("dscsa.form3911.initial_required");
    let illegitimate = investigating.clone().after(
        WHOLESALER,
        Command::DeclareIllegitimate {
            case_id: 0,
            form,
            notified: vec![MANUFACTURER.gln()],
        },
    );
    let record = case(&illegitimate.ledger, 0).unwrap();
    assert_eq!(record.state, CaseState::Illegitimate);
    assert_eq!(
        record.form.as_ref().unwrap().incident_number,
        "FDA-2026-0042"
    );
    illegitimate
        .when(
            WHOLESALER,
            Command::Dispense {
                items: vec![sgtin("S1")],
            },
        )
        .then_reject("rbac.role_forbidden");
    illegitimate.after(
        WHOLESALER,
        Command::Destroy {
            items: vec![sgtin("S1")],
        },
    );
    // Cleared instead: back to active.
    let cleared = investigating.after(WHOLESALER, Command::ClearSuspect { case_id: 0 });
    assert_eq!(
        item(&cleared.ledger, &sgtin("S1")).unwrap().status,
        Status::Active
    );
}

#[test]
fn given_events_then_expected_rejection() {
    // Pure given(events) form: the package's state comes from events only.
    let scenario = given(vec![
        Event::ProductRegistered {
            owner: MANUFACTURER.gln(),
            product: product_master(),
        },
        Event::PackagesCommissioned {
            owner: MANUFACTURER.gln(),
            gtin: gtin(),
            lot: "LOT1".into(),
            expiry: Date::new(2028, 6, 30),
            epcs: vec![sgtin("S1")],
        },
        Event::Destroyed {
            holder: MANUFACTURER.gln(),
            epcs: vec![sgtin("S1")],
        },
    ]);
    scenario
        .when(
            MANUFACTURER,
            sale(WHOLESALER.gln(), vec![sgtin("S1")], "PO-1"),
        )
        .then_reject("custody.transition_forbidden");
    scenario
        .when(
            MANUFACTURER,
            Command::Destroy {
                items: vec![sgtin("S1")],
            },
        )
        .then_reject("custody.transition_forbidden");
}

#[test]
fn package_state_is_small() {
    let scenario = at_wholesaler();
    let bytes = scenario.ledger.get(&item_key(&sgtin("S1"))).unwrap();
    assert!(
        bytes.len() + item_key(&sgtin("S1")).len() <= 512,
        "{} bytes",
        bytes.len()
    );
}

#[test]
fn one_shipment_one_seller_and_containers_hold_one_owners_goods() {
    // S1 sold to the wholesaler; S2 still the manufacturer's.
    let scenario = at_wholesaler();
    scenario
        .when(
            MANUFACTURER,
            Command::Aggregate {
                parent: sscc(5),
                children: vec![sgtin("S2"), sgtin("S3")],
            },
        )
        .accepted();
    // The 3PL holds goods of two owners: it cannot mix them in one sale or one container.
    let transfer = |items: Vec<Epc>| Command::Ship {
        kind: ShipmentKind::Transfer,
        to: LOGISTICS.gln(),
        carrier: None,
        items,
        biz_transactions: vec![],
        statement: TransactionStatement { affirmed: false },
        transaction_information: None,
    };
    let at_3pl = scenario
        .after(MANUFACTURER, transfer(vec![sgtin("S2")]))
        .after(LOGISTICS, receive_all(1, &[sgtin("S2")]))
        .after(WHOLESALER, transfer(vec![sgtin("S1")]))
        .after(LOGISTICS, receive_all(2, &[sgtin("S1")]));
    at_3pl
        .when(
            LOGISTICS,
            sale(DISPENSER.gln(), vec![sgtin("S1"), sgtin("S2")], "PO-5"),
        )
        .then_reject("custody.ship.mixed_owners");
    at_3pl
        .when(
            LOGISTICS,
            Command::Aggregate {
                parent: sscc(6),
                children: vec![sgtin("S1"), sgtin("S2")],
            },
        )
        .then_reject("custody.aggregate.mixed_owners");
}

#[test]
fn form_3911_cannot_be_filed_in_the_future() {
    let investigating = at_wholesaler()
        .after(
            WHOLESALER,
            Command::Quarantine {
                items: vec![sgtin("S1")],
                reason: "odd label".into(),
            },
        )
        .after(WHOLESALER, Command::BeginInvestigation { case_id: 0 });
    let form = Form3911 {
        kind: Form3911Kind::Initial,
        incident_number: "FDA-2026-0043".into(),
        filed: Date::new(2026, 11, 27),
    };
    investigating
        .when(
            WHOLESALER,
            Command::DeclareIllegitimate {
                case_id: 0,
                form,
                notified: vec![MANUFACTURER.gln()],
            },
        )
        .then_reject("dscsa.form3911.filed_in_future");
}

#[test]
fn only_returned_packages_are_verified_and_decommission_is_final() {
    let scenario = at_wholesaler();
    scenario
        .when(
            WHOLESALER,
            Command::VerifyReturn {
                items: vec![sgtin("S1")],
                correlation_id: "vrs-9".into(),
                verified: true,
            },
        )
        .then_reject("custody.transition_forbidden");
    let gone = scenario.after(
        WHOLESALER,
        Command::Decommission {
            items: vec![sgtin("S1")],
            reason: "sample".into(),
        },
    );
    assert_eq!(
        item(&gone.ledger, &sgtin("S1")).unwrap().status,
        Status::Decommissioned
    );
    gone.when(
        WHOLESALER,
        Command::Quarantine {
            items: vec![sgtin("S1")],
            reason: "x".into(),
        },
    )
    .then_reject("custody.transition_forbidden");
}

#[test]
fn status_index_holds_only_entries_into_suspect_statuses_and_lists_them() {
    // Commissioning, packing, shipping and receiving write no status entries: only the suspect
    // statuses are indexed (what a regulator lists across holders).
    let routine = packed()
        .after(
            MANUFACTURER,
            sale(WHOLESALER.gln(), vec![sgtin("S3")], "PO-1"),
        )
        .after(WHOLESALER, receive_all(0, &[sgtin("S3")]));
    assert!(routine.ledger.scan(STATUS_INDEX, &[], 100).is_empty());
    assert!(query::suspect_packages(&routine.ledger, None).is_empty());

    let quarantined = routine.after(
        WHOLESALER,
        Command::Quarantine {
            items: vec![sgtin("S3")],
            reason: "torn seal".into(),
        },
    );
    let entries = quarantined.ledger.scan(STATUS_INDEX, &[], 100);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].0[0], Status::Quarantined.byte());
    let listed = query::suspect_packages(&quarantined.ledger, Some(&WHOLESALER.gln()));
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].epc.clone(), listed[0].status),
        (sgtin("S3"), Status::Quarantined)
    );
    assert!(query::suspect_packages(&quarantined.ledger, Some(&MANUFACTURER.gln())).is_empty());

    // Under investigation: the package is listed once, in its current status.
    let investigating = quarantined.after(WHOLESALER, Command::BeginInvestigation { case_id: 0 });
    assert_eq!(investigating.ledger.scan(STATUS_INDEX, &[], 100).len(), 2);
    let listed = query::suspect_packages(&investigating.ledger, None);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, Status::UnderInvestigation);
}
