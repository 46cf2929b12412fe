//! Last-mile delivery (issue 9): vehicles, delivery orders, courier assignment, pickup,
//! handoff to the patient with a one-time code, failures, and the pharmacy's saga steps — all
//! ledger events, so every decision is auditable. Part of custody: pickup moves custody to the
//! courier, delivery ends it (the packages are dispensed against the prescription).
//!
//! | rule | fires when |
//! |---|---|
//! | `dispatch.order_exists` / `dispatch.order_unknown` | opening an order twice / naming an unknown one |
//! | `dispatch.not_pharmacy` | a step on another pharmacy's order |
//! | `dispatch.not_assigned` | a courier acts on an order not assigned to it |
//! | `dispatch.state` | the step does not follow from the order's state |
//! | `dispatch.courier_unknown` | the courier is not an admitted logistics organization |
//! | `dispatch.vehicle_unknown` / `dispatch.vehicle_unavailable` | no such vehicle / not available |
//! | `dispatch.vehicle_unfit` | cold chain without a cold-chain vehicle; a controlled substance without a human to sign |
//! | `dispatch.code_mismatch` | the recipient's code is not the one committed |
//!
//! Opening an order checks the prescription (`rx.*`) and each package as dispensing does
//! (holder, status, recall, expiry, reservation for another order).
//!
//! State keys (under `d/`): `d/veh/{courier gln}{vehicle id}` → `VehicleProfile`;
//! `d/ord/{order}` → [`DeliveryRecord`]. Index `vehicle`: courier GLN ‖ vehicle id → empty.

use super::pharmacy;
use super::*;
use pharmalink_ledger::Hash;

pub const VEHICLE_INDEX: &str = "vehicle";
const CODE_CONTEXT: &str = "pharmalink 2026-11 delivery code v1";

/// The commitment to a recipient's one-time code.
pub fn code_hash(code: &str) -> Hash {
    Hash(blake3::derive_key(CODE_CONTEXT, code.trim().as_bytes()))
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum DeliveryState {
    Open,
    Assigned { courier: Gln, vehicle: String },
    PickedUp { courier: Gln, vehicle: String },
    Delivered { courier: Gln },
    Closed { reason: String },
}

impl DeliveryState {
    pub fn name(&self) -> &'static str {
        match self {
            DeliveryState::Open => "open",
            DeliveryState::Assigned { .. } => "assigned",
            DeliveryState::PickedUp { .. } => "picked_up",
            DeliveryState::Delivered { .. } => "delivered",
            DeliveryState::Closed { .. } => "closed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct DeliveryRecord {
    pub pharmacy: Gln,
    pub delivery: DeliveryOrder,
    pub state: DeliveryState,
    pub attempts: u32,
    pub failed_couriers: Vec<Gln>,
    pub last_step: Option<(String, String)>,
}

pub fn vehicle_key(courier: &Gln, id: &str) -> Vec<u8> {
    [b"d/veh/".as_slice(), &courier.0, id.as_bytes()].concat()
}
pub fn delivery_key(order: &Hash) -> Vec<u8> {
    [b"d/ord/".as_slice(), &order.0].concat()
}

pub fn vehicle<S: StateRead + ?Sized>(
    state: &S,
    courier: &Gln,
    id: &str,
) -> Option<VehicleProfile> {
    read_record(state, &vehicle_key(courier, id))
}
pub fn delivery<S: StateRead + ?Sized>(state: &S, order: &Hash) -> Option<DeliveryRecord> {
    read_record(state, &delivery_key(order))
}

fn load_delivery<S: StateRead + ?Sized>(
    state: &S,
    order: &Hash,
) -> Result<DeliveryRecord, Rejection> {
    delivery(state, order).ok_or_else(|| {
        Rejection::new(
            "dispatch.order_unknown",
            format!("no delivery order {order}"),
        )
    })
}

fn own(record: &DeliveryRecord, actor: &Organization, order: &Hash) -> Result<(), Rejection> {
    ensure(
        record.pharmacy == actor.gln(),
        "dispatch.not_pharmacy",
        || format!("order {order} belongs to {}", record.pharmacy),
    )
}

fn wrong_state<T>(order: &Hash, record: &DeliveryRecord, action: &str) -> Result<T, Rejection> {
    reject(
        "dispatch.state",
        format!(
            "order {order} is {}: {action} does not follow",
            record.state.name()
        ),
    )
}

/// The vehicle meets an order's needs (rule `dispatch.vehicle_unfit`).
pub fn check_fit(
    vehicle: &VehicleProfile,
    cold_chain: bool,
    controlled: bool,
) -> Result<(), Rejection> {
    ensure(
        !cold_chain || vehicle.cold_chain,
        "dispatch.vehicle_unfit",
        || format!("vehicle {} has no cold chain", vehicle.id),
    )?;
    ensure(
        !controlled || vehicle.human,
        "dispatch.vehicle_unfit",
        || {
            format!(
                "vehicle {} has no human to take the signature a controlled substance needs",
                vehicle.id
            )
        },
    )
}

pub fn decide<S: StateRead + ?Sized>(
    state: &S,
    actor: &Organization,
    command: &Command,
    ctx: &BlockContext,
) -> Result<Vec<Event>, Rejection> {
    match command {
        Command::RegisterVehicle { vehicle } => Ok(vec![Event::VehicleRegistered {
            courier: actor.gln(),
            vehicle: vehicle.clone(),
        }]),
        Command::OpenDelivery { delivery: order } => {
            ensure(
                delivery(state, &order.order).is_none(),
                "dispatch.order_exists",
                || format!("delivery order {} exists", order.order),
            )?;
            non_empty(&order.items, "deliver")?;
            distinct(&order.items)?;
            pharmacy::check_dispensable(state, actor, &order.rx_token, &order.items, ctx)?;
            Ok(vec![Event::DeliveryOpened {
                pharmacy: actor.gln(),
                delivery: order.clone(),
            }])
        }
        Command::AssignCourier {
            order,
            courier,
            vehicle: id,
        } => {
            let record = load_delivery(state, order)?;
            own(&record, actor, order)?;
            if !matches!(
                record.state,
                DeliveryState::Open | DeliveryState::Assigned { .. }
            ) {
                return wrong_state(order, &record, "assigning a courier");
            }
            let org = iam::organization(state, courier)
                .filter(|o| o.role() == crate::contract::Role::Logistics)
                .ok_or_else(|| {
                    Rejection::new(
                        "dispatch.courier_unknown",
                        format!("{courier} is not an admitted courier"),
                    )
                })?;
            org.check_atp(ctx.date())?;
            let found = vehicle(state, courier, id).ok_or_else(|| {
                Rejection::new(
                    "dispatch.vehicle_unknown",
                    format!("{courier} registered no vehicle {id:?}"),
                )
            })?;
            ensure(found.available, "dispatch.vehicle_unavailable", || {
                format!("vehicle {id:?} of {courier} is not available")
            })?;
            check_fit(
                &found,
                record.delivery.cold_chain,
                record.delivery.controlled,
            )?;
            Ok(vec![Event::CourierAssigned {
                order: *order,
                courier: *courier,
                vehicle: id.clone(),
            }])
        }
        Command::PickUp { order } => {
            let record = load_delivery(state, order)?;
            let DeliveryState::Assigned { courier, .. } = &record.state else {
                return wrong_state(order, &record, "pickup");
            };
            ensure(*courier == actor.gln(), "dispatch.not_assigned", || {
                format!("order {order} is assigned to {courier}")
            })?;
            for epc in &record.delivery.items {
                let it = load(state, epc)?;
                ensure(
                    it.custodian == record.pharmacy,
                    "custody.not_holder",
                    || format!("{epc} is held by {}, not the pharmacy", it.custodian),
                )?;
                status_in(epc, &it, &[Status::Active], "pickup")?;
            }
            Ok(vec![Event::PickedUp {
                order: *order,
                courier: actor.gln(),
                epcs: record.delivery.items.clone(),
            }])
        }
        Command::DeliverToPatient { order, code } => {
            let record = load_delivery(state, order)?;
            let DeliveryState::PickedUp { courier, .. } = &record.state else {
                return wrong_state(order, &record, "delivery");
            };
            ensure(*courier == actor.gln(), "dispatch.not_assigned", || {
                format!("order {order} is with {courier}")
            })?;
            ensure(
                code_hash(code) == record.delivery.code_hash,
                "dispatch.code_mismatch",
                || "the recipient's code is not the one issued for this order".to_string(),
            )?;
            Ok(vec![Event::DeliveredToPatient {
                order: *order,
                courier: actor.gln(),
                pharmacy: record.pharmacy,
                rx_token: record.delivery.rx_token,
                epcs: record.delivery.items.clone(),
            }])
        }
        Command::FailDelivery { order, reason } => {
            let record = load_delivery(state, order)?;
            let (courier, returned) = match &record.state {
                DeliveryState::Assigned { courier, .. } => (*courier, Vec::new()),
                DeliveryState::PickedUp { courier, .. } => {
                    (*courier, record.delivery.items.clone())
                }
                _ => return wrong_state(order, &record, "a failure report"),
            };
            ensure(courier == actor.gln(), "dispatch.not_assigned", || {
                format!("order {order} is assigned to {courier}")
            })?;
            Ok(vec![Event::DeliveryFailed {
                order: *order,
                courier,
                reason: reason.clone(),
                returned,
            }])
        }
        Command::CloseDelivery { order, reason } => {
            let record = load_delivery(state, order)?;
            own(&record, actor, order)?;
            if !matches!(
                record.state,
                DeliveryState::Open | DeliveryState::Assigned { .. }
            ) {
                return wrong_state(order, &record, "closing");
            }
            Ok(vec![Event::DeliveryClosed {
                order: *order,
                reason: reason.clone(),
            }])
        }
        Command::RecordSagaStep {
            order,
            step,
            outcome,
            detail,
        } => {
            let record = load_delivery(state, order)?;
            own(&record, actor, order)?;
            Ok(vec![Event::SagaStepRecorded {
                pharmacy: actor.gln(),
                order: *order,
                step: step.clone(),
                outcome: outcome.clone(),
                detail: detail.clone(),
            }])
        }
        _ => reject(
            "contract.not_dispatch",
            format!("{:?} is not a dispatch command", command.kind()),
        ),
    }
}

fn update<W: StateWriter + ?Sized>(
    state: &mut W,
    order: &Hash,
    change: impl FnOnce(&mut DeliveryRecord),
) {
    if let Some(mut record) = delivery(state, order) {
        change(&mut record);
        write_record(state, delivery_key(order), &record);
    }
}

pub fn evolve<W: StateWriter + ?Sized>(state: &mut W, position: Position, event: &Event) {
    match event {
        Event::VehicleRegistered { courier, vehicle } => {
            write_record(state, vehicle_key(courier, &vehicle.id), vehicle);
            state.index(
                VEHICLE_INDEX,
                [&courier.0[..], vehicle.id.as_bytes()].concat(),
                Vec::new(),
            );
        }
        Event::DeliveryOpened { pharmacy, delivery } => write_record(
            state,
            delivery_key(&delivery.order),
            &DeliveryRecord {
                pharmacy: *pharmacy,
                delivery: delivery.clone(),
                state: DeliveryState::Open,
                attempts: 0,
                failed_couriers: Vec::new(),
                last_step: None,
            },
        ),
        Event::CourierAssigned {
            order,
            courier,
            vehicle,
        } => update(state, order, |r| {
            r.state = DeliveryState::Assigned {
                courier: *courier,
                vehicle: vehicle.clone(),
            }
        }),
        Event::PickedUp {
            order,
            courier,
            epcs,
        } => {
            touch(state, position, epcs, false, |it| it.custodian = *courier);
            update(state, order, |r| {
                let vehicle = match &r.state {
                    DeliveryState::Assigned { vehicle, .. } => vehicle.clone(),
                    _ => String::new(),
                };
                r.state = DeliveryState::PickedUp {
                    courier: *courier,
                    vehicle,
                }
            });
        }
        Event::DeliveredToPatient {
            order,
            courier,
            pharmacy: _,
            rx_token,
            epcs,
        } => {
            touch(state, position, epcs, false, |it| {
                it.status = Status::Dispensed
            });
            pharmacy::record_fill(state, rx_token, epcs);
            pharmacy::release_order(state, order);
            update(state, order, |r| {
                r.state = DeliveryState::Delivered { courier: *courier }
            });
        }
        Event::DeliveryFailed {
            order,
            courier,
            returned,
            ..
        } => {
            let home = delivery(state, order).map(|r| r.pharmacy);
            if let Some(home) = home {
                touch(state, position, returned, false, |it| it.custodian = home);
            }
            update(state, order, |r| {
                r.state = DeliveryState::Open;
                r.attempts += 1;
                r.failed_couriers.push(*courier);
            });
        }
        Event::DeliveryClosed { order, reason } => {
            pharmacy::release_order(state, order);
            update(state, order, |r| {
                r.state = DeliveryState::Closed {
                    reason: reason.clone(),
                }
            });
        }
        Event::SagaStepRecorded {
            order,
            step,
            outcome,
            ..
        } => update(state, order, |r| {
            r.last_step = Some((step.clone(), outcome.clone()))
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::pharmacy::rx;
    use super::pharmacy::tests::{approved, at_pharmacy, token};
    use super::*;
    use crate::contract::fixtures::*;
    use crate::contract::gwt::Scenario;
    use crate::contract::TxResult;

    fn van(id: &str, cold: bool, human: bool) -> VehicleProfile {
        VehicleProfile {
            id: id.into(),
            kind: VehicleKind::Van,
            payload_grams: 50_000,
            range_m: 100_000,
            cold_chain: cold,
            human,
            base_lat_e6: 40_700_000,
            base_lon_e6: -74_000_000,
            available: true,
            cost_per_km_cents: 80,
        }
    }

    fn order(cold: bool, controlled: bool) -> DeliveryOrder {
        DeliveryOrder {
            order: token(50),
            rx_token: token(1),
            items: vec![sgtin("S1")],
            cold_chain: cold,
            controlled,
            code_hash: code_hash("4711"),
        }
    }

    /// The pharmacy holds S1..S3, prescription 1 approved, a courier with two vehicles.
    fn ready() -> Scenario {
        approved(at_pharmacy(), 1)
            .after(
                LOGISTICS,
                Command::RegisterVehicle {
                    vehicle: van("van-1", false, true),
                },
            )
            .after(
                LOGISTICS,
                Command::RegisterVehicle {
                    vehicle: van("drone-1", true, false),
                },
            )
    }

    fn opened(cold: bool, controlled: bool) -> Scenario {
        ready().after(
            DISPENSER,
            Command::OpenDelivery {
                delivery: order(cold, controlled),
            },
        )
    }

    fn assign(vehicle: &str) -> Command {
        Command::AssignCourier {
            order: token(50),
            courier: LOGISTICS.gln(),
            vehicle: vehicle.into(),
        }
    }

    #[test]
    fn given_an_order_when_picked_up_and_delivered_with_the_code_then_dispensed_to_the_patient() {
        let mut scenario = opened(false, false)
            .after(DISPENSER, assign("van-1"))
            .after(LOGISTICS, Command::PickUp { order: token(50) });
        assert_eq!(
            item(&scenario.ledger, &sgtin("S1")).unwrap().custodian,
            LOGISTICS.gln()
        );
        scenario
            .when(
                LOGISTICS,
                Command::DeliverToPatient {
                    order: token(50),
                    code: "0000".into(),
                },
            )
            .then_reject("dispatch.code_mismatch");
        let delivered = scenario.execute(
            LOGISTICS,
            &Command::DeliverToPatient {
                order: token(50),
                code: "4711".into(),
            },
        );
        assert_eq!(delivered, TxResult::Accepted);
        let it = item(&scenario.ledger, &sgtin("S1")).unwrap();
        assert_eq!(it.status, Status::Dispensed);
        assert_eq!(rx(&scenario.ledger, &token(1)).unwrap().fills.len(), 1);
        assert_eq!(
            delivery(&scenario.ledger, &token(50)).unwrap().state,
            DeliveryState::Delivered {
                courier: LOGISTICS.gln()
            }
        );
    }

    #[test]
    fn vehicle_constraints() {
        opened(true, false)
            .when(DISPENSER, assign("van-1"))
            .then_reject("dispatch.vehicle_unfit");
        opened(false, true)
            .when(DISPENSER, assign("drone-1"))
            .then_reject("dispatch.vehicle_unfit");
        opened(false, false)
            .when(DISPENSER, assign("bike-9"))
            .then_reject("dispatch.vehicle_unknown");
        let mut parked = van("van-1", false, true);
        parked.available = false;
        opened(false, false)
            .after(LOGISTICS, Command::RegisterVehicle { vehicle: parked })
            .when(DISPENSER, assign("van-1"))
            .then_reject("dispatch.vehicle_unavailable");
        opened(false, false)
            .when(
                DISPENSER,
                Command::AssignCourier {
                    order: token(50),
                    courier: WHOLESALER.gln(),
                    vehicle: "van-1".into(),
                },
            )
            .then_reject("dispatch.courier_unknown");
    }

    #[test]
    fn given_a_failure_after_pickup_then_packages_return_and_the_order_can_be_reassigned() {
        let scenario = opened(false, false)
            .after(DISPENSER, assign("van-1"))
            .after(LOGISTICS, Command::PickUp { order: token(50) })
            .after(
                LOGISTICS,
                Command::FailDelivery {
                    order: token(50),
                    reason: "flat tyre".into(),
                },
            );
        assert_eq!(
            item(&scenario.ledger, &sgtin("S1")).unwrap().custodian,
            DISPENSER.gln()
        );
        let record = delivery(&scenario.ledger, &token(50)).unwrap();
        assert_eq!((record.attempts, record.state), (1, DeliveryState::Open));
        scenario.when(DISPENSER, assign("van-1")).accepted();
        scenario
            .when(LOGISTICS, Command::PickUp { order: token(50) })
            .then_reject("dispatch.state");
    }

    #[test]
    fn order_rules() {
        let scenario = opened(false, false);
        scenario
            .when(
                DISPENSER,
                Command::OpenDelivery {
                    delivery: order(false, false),
                },
            )
            .then_reject("dispatch.order_exists");
        scenario
            .when(LOGISTICS, Command::PickUp { order: token(50) })
            .then_reject("dispatch.state");
        let assigned = scenario.after(DISPENSER, assign("van-1"));
        assigned
            .when(
                DISPENSER,
                Command::RecordSagaStep {
                    order: token(9),
                    step: "payment".into(),
                    outcome: "succeeded".into(),
                    detail: String::new(),
                },
            )
            .then_reject("dispatch.order_unknown");
        let closed = assigned.after(
            DISPENSER,
            Command::CloseDelivery {
                order: token(50),
                reason: "payment failed".into(),
            },
        );
        closed
            .when(LOGISTICS, Command::PickUp { order: token(50) })
            .then_reject("dispatch.state");
        // A rejected or unknown prescription opens no delivery.
        let mut other = order(false, false);
        other.order = token(51);
        other.rx_token = token(9);
        ready()
            .when(DISPENSER, Command::OpenDelivery { delivery: other })
            .then_reject("rx.unknown");
    }
}
