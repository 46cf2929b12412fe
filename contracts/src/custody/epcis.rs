//! EPCIS 2.0 ↔ custody. A capture document maps to custody commands (one event may give
//! several: a commissioning event with two GTINs gives two `Commission`s); every unmappable
//! event is reported with its index and the reason. Custody events export as EPCIS 2.0
//! events (JSON-LD through `epcis::json::write_json_ld`).
//!
//! | EPCIS | command |
//! | --- | --- |
//! | master data EPCClass `urn:epc:idpat:sgtin:…` | `RegisterProduct` (when the GTIN is new) |
//! | ObjectEvent ADD commissioning (SGTINs; lot/expiry from ILMD) | `Commission` per GTIN |
//! | ObjectEvent ADD commissioning (SSCC) | `Aggregate { children: [] }` (empty container) |
//! | AggregationEvent ADD (packing) / DELETE (unpacking) | `Aggregate` / `Disaggregate` |
//! | ObjectEvent shipping | `Ship` (destination owning_party → `to`; none → Transfer to the possessing party; disposition returned → Return) |
//! | ObjectEvent receiving | `Receive` (the open shipment the EPCs travel in) |
//! | ObjectEvent dispensing / decommissioning / destroying | `Dispense` / `Decommission` / `Destroy` |

use super::*;
use crate::contract::event::LoggedEvent;
use crate::epcis::cbv::{cbv_word, VocabKind};
use crate::epcis::model::{
    Action, EpcisDocument, Event as EpcisEvent, EventType, Ext, Header,
    TransactionStatement as EpcisStatement, TypedId,
};
use crate::gs1::epc::EpcId;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("event {event_index}: {reason}")]
pub struct MappingError {
    /// Index of the event in the document (`usize::MAX` for header / master data).
    pub event_index: usize,
    pub reason: String,
}

/// What the document does not carry but commands need.
#[derive(Clone, Debug, Default)]
pub struct MappingOptions {
    /// The sealed Transaction Information for shipping events (the API encrypts the TI it
    /// extracted from the request for the parties and regulators).
    pub transaction_information: Option<Sealed>,
}

fn error(event_index: usize, reason: impl Into<String>) -> MappingError {
    MappingError {
        event_index,
        reason: reason.into(),
    }
}

/// GLN of a party or location identifier: SGLN or PGLN URN, or Digital Link with AI 414/417.
pub fn gln_of(identifier: &str) -> Option<Gln> {
    match EpcId::parse_urn(identifier) {
        Ok(EpcId::Sgln { gln, .. }) | Ok(EpcId::Pgln { gln, .. }) => return Gln::parse(&gln).ok(),
        _ => {}
    }
    let path = identifier.split_once("://").map(|(_, rest)| rest)?;
    let mut segments = path.split('/').skip(1);
    while let Some(ai) = segments.next() {
        if ai == "414" || ai == "417" {
            let value = segments.next()?;
            return Gln::parse(value.split(['?', '#']).next().unwrap_or(value)).ok();
        }
    }
    None
}

fn word(kind: VocabKind, value: &Option<String>) -> Option<&str> {
    value.as_deref().and_then(|v| cbv_word(kind, v))
}

/// The GTIN and company-prefix length of an `urn:epc:idpat:sgtin:{prefix}.{itemref}.*`.
fn gtin_of_pattern(pattern: &str) -> Option<(Gtin, u8)> {
    let body = pattern.strip_prefix("urn:epc:idpat:sgtin:")?;
    let mut parts = body.split('.');
    let (prefix, item_reference) = (parts.next()?, parts.next()?);
    if prefix.len() + item_reference.len() != 13 || item_reference.is_empty() {
        return None;
    }
    let body13 = format!("{}{prefix}{}", &item_reference[..1], &item_reference[1..]);
    let check = crate::gs1::check::gs1_check_digit(&body13)?;
    Some((
        Gtin::parse(&format!("{body13}{check}")).ok()?,
        prefix.len() as u8,
    ))
}

fn attribute<'a>(attributes: &'a [(String, Ext)], local: &str) -> Option<&'a str> {
    attributes.iter().find_map(|(id, value)| match value {
        Ext::Text(text) if id.rsplit(['#', ':']).next() == Some(local) => Some(text.as_str()),
        _ => None,
    })
}

/// `RegisterProduct` for each EPCClass of the header's master data whose GTIN `state` does
/// not know yet.
pub fn products_from_master_data<S: StateRead + ?Sized>(
    state: &S,
    header: Option<&Header>,
) -> Vec<Command> {
    let mut out = Vec::new();
    let Some(header) = header else { return out };
    for vocabulary in &header.master_data {
        if !vocabulary.vocabulary_type.ends_with("EPCClass") {
            continue;
        }
        for element in &vocabulary.elements {
            let Some((gtin, prefix_length)) = gtin_of_pattern(&element.id) else {
                continue;
            };
            if product(state, &gtin).is_some() {
                continue;
            }
            let text = |local: &str| {
                attribute(&element.attributes, local)
                    .unwrap_or("")
                    .to_string()
            };
            out.push(Command::RegisterProduct {
                product: ProductMaster {
                    gtin,
                    ndc: text("additionalTradeItemIdentification"),
                    name: text("regulatedProductName"),
                    strength: text("strengthDescription"),
                    dosage_form: text("dosageFormType"),
                    container_size: text("netContentDescription"),
                    company_prefix_length: prefix_length,
                },
            });
        }
    }
    out
}

/// The ledger's form of an EPC URN: an SGTIN whose product is registered is rendered with the
/// product's company prefix length, so the same GTIN and serial are one package whatever
/// partition a partner's system wrote (`030001.0012345.11` and `0300010.012345.11` name the
/// same package). Anything else is kept as written.
pub fn canonical_epc<S: StateRead + ?Sized>(state: &S, urn: &str) -> Epc {
    if let Ok(EpcId::Sgtin { gtin, serial, .. }) = EpcId::parse_urn(urn) {
        if let Ok(gtin) = Gtin::parse(&gtin) {
            if let Some(registered) = product(state, &gtin) {
                if let Ok(epc) = Epc::sgtin(&gtin, &serial, registered.master.company_prefix_length)
                {
                    return epc;
                }
            }
        }
    }
    Epc::new(urn.to_string())
}

/// Maps the event at `event_index` of `document`. `state` is read for receiving (which open
/// shipment) and nothing else.
pub fn commands_from_event<S: StateRead + ?Sized>(
    state: &S,
    document: &EpcisDocument,
    event_index: usize,
    options: &MappingOptions,
) -> Result<Vec<Command>, MappingError> {
    let fail = |reason: String| error(event_index, reason);
    let event = document
        .events
        .get(event_index)
        .ok_or_else(|| fail("no such event".into()))?;
    if event.error_declaration.is_some() {
        return Err(fail(
            "error declarations (corrections) do not map to custody commands".into(),
        ));
    }
    let step = word(VocabKind::BizStep, &event.biz_step);
    let disposition = word(VocabKind::Disposition, &event.disposition);
    let epcs = || -> Result<Vec<Epc>, MappingError> {
        if event.epc_list.is_empty() {
            return Err(fail(
                "no epcList: class-level (quantityList) events are not serialized custody".into(),
            ));
        }
        Ok(event
            .epc_list
            .iter()
            .map(|e| canonical_epc(state, e))
            .collect())
    };
    match (event.event_type, event.action, step) {
        (EventType::ObjectEvent, Some(Action::Add), Some("commissioning")) => {
            let mut commissions: Vec<(Gtin, Vec<String>)> = Vec::new();
            let mut out = Vec::new();
            for epc in epcs()? {
                match EpcId::parse_urn(epc.as_str()) {
                    Ok(EpcId::Sgtin { gtin, serial, .. }) => {
                        let gtin = Gtin::parse(&gtin).map_err(|r| fail(r.message))?;
                        match commissions.iter_mut().find(|(g, _)| *g == gtin) {
                            Some((_, serials)) => serials.push(serial),
                            None => commissions.push((gtin, vec![serial])),
                        }
                    }
                    Ok(EpcId::Sscc { .. }) => out.push(Command::Aggregate {
                        parent: epc,
                        children: Vec::new(),
                    }),
                    _ => {
                        return Err(fail(format!(
                            "{epc}: only SGTINs and SSCCs are commissioned"
                        )))
                    }
                }
            }
            let mut commands = Vec::new();
            if !commissions.is_empty() {
                // Lot and expiry are required of serialized packages (DSCSA product identifier).
                let lot = event
                    .ilmd_lot()
                    .ok_or_else(|| fail("commissioning without cbvmda:lotNumber in ILMD".into()))?;
                let expiry_text = event.ilmd_expiry().ok_or_else(|| {
                    fail("commissioning without cbvmda:itemExpirationDate in ILMD".into())
                })?;
                let expiry = Date::parse_iso(expiry_text).map_err(|r| fail(r.message))?;
                commands = commissions
                    .into_iter()
                    .map(|(gtin, serials)| Command::Commission {
                        gtin,
                        serials,
                        lot: lot.to_string(),
                        expiry,
                    })
                    .collect();
            }
            commands.extend(out);
            Ok(commands)
        }
        (EventType::ObjectEvent, Some(Action::Add), Some(other)) => Err(fail(format!(
            "ObjectEvent ADD with bizStep {other}: only commissioning creates EPCs"
        ))),
        (EventType::AggregationEvent, Some(action), None | Some("packing") | Some("unpacking")) => {
            let parent = event
                .parent_id
                .clone()
                .ok_or_else(|| fail("AggregationEvent without parentID".into()))?;
            let children: Vec<Epc> = event
                .child_epcs
                .iter()
                .map(|e| canonical_epc(state, e))
                .collect();
            match action {
                Action::Add => Ok(vec![Command::Aggregate {
                    parent: canonical_epc(state, &parent),
                    children,
                }]),
                Action::Delete => Ok(vec![Command::Disaggregate {
                    parent: canonical_epc(state, &parent),
                    children,
                }]),
                Action::Observe => Err(fail(
                    "AggregationEvent OBSERVE changes nothing in custody".into(),
                )),
            }
        }
        (EventType::ObjectEvent, Some(Action::Observe), Some("shipping")) => {
            let party = |list: &[TypedId], kind: &str| {
                list.iter()
                    .find(|t| {
                        t.kind
                            .as_deref()
                            .and_then(|k| cbv_word(VocabKind::SourceDestinationType, k))
                            == Some(kind)
                    })
                    .map(|t| t.id.clone())
            };
            let (kind, to) = match (
                party(&event.destination_list, "owning_party"),
                party(&event.destination_list, "possessing_party"),
            ) {
                (Some(owner), _) => (
                    if disposition == Some("returned") {
                        ShipmentKind::Return
                    } else {
                        ShipmentKind::Sale
                    },
                    owner,
                ),
                (None, Some(holder)) => (ShipmentKind::Transfer, holder),
                (None, None) => {
                    return Err(fail(
                        "shipping without a destination owning_party or possessing_party".into(),
                    ))
                }
            };
            let to = gln_of(&to).ok_or_else(|| {
                fail(format!(
                    "destination {to} is not a GLN (SGLN, PGLN or Digital Link 414/417)"
                ))
            })?;
            let biz_transactions = event
                .biz_transaction_list
                .iter()
                .filter_map(|b| {
                    let kind = match b
                        .kind
                        .as_deref()
                        .and_then(|k| cbv_word(VocabKind::BizTransactionType, k))
                    {
                        Some("po") => BizTransactionKind::Po,
                        Some("inv") => BizTransactionKind::Inv,
                        Some("desadv") => BizTransactionKind::Desadv,
                        Some("bol") => BizTransactionKind::Bol,
                        Some("rma") => BizTransactionKind::Rma,
                        _ => return None,
                    };
                    Some(BizTransaction {
                        kind,
                        id: b.id.clone(),
                    })
                })
                .collect();
            let affirmed = document
                .header
                .as_ref()
                .and_then(|h| h.transaction_statement.as_ref())
                .is_some_and(|ts| ts.affirm_transaction_statement);
            Ok(vec![Command::Ship {
                kind,
                to,
                carrier: None,
                items: epcs()?,
                biz_transactions,
                statement: TransactionStatement { affirmed },
                transaction_information: options.transaction_information.clone(),
            }])
        }
        (EventType::ObjectEvent, Some(Action::Observe), Some("receiving")) => {
            let items = epcs()?;
            let mut shipment_id = None;
            for epc in &items {
                let id = item(state, epc)
                    .and_then(|i| i.shipment)
                    .ok_or_else(|| fail(format!("{epc} travels in no open shipment")))?;
                if *shipment_id.get_or_insert(id) != id {
                    return Err(fail(
                        "the received EPCs belong to several shipments: split the event".into(),
                    ));
                }
            }
            Ok(vec![Command::Receive {
                shipment_id: shipment_id.unwrap_or(0),
                items: items
                    .into_iter()
                    .map(|epc| ReceivedItem {
                        epc,
                        observed_lot: None,
                        observed_expiry: None,
                    })
                    .collect(),
                source: ObservationSource::Scan,
            }])
        }
        (EventType::ObjectEvent, Some(Action::Observe), Some("dispensing")) => {
            Ok(vec![Command::Dispense { items: epcs()? }])
        }
        (EventType::ObjectEvent, _, Some("decommissioning")) => Ok(vec![Command::Decommission {
            items: epcs()?,
            reason: "EPCIS decommissioning".into(),
        }]),
        (EventType::ObjectEvent, _, Some("destroying")) => {
            Ok(vec![Command::Destroy { items: epcs()? }])
        }
        (event_type, action, step) => Err(fail(format!(
            "{} {} with bizStep {} has no custody command",
            event_type.name(),
            action.map(Action::name).unwrap_or("(no action)"),
            step.unwrap_or("(none)")
        ))),
    }
}

/// Maps a whole document: product registrations from master data, then each event's
/// commands in order. Every unmappable event is reported.
pub fn commands_from_document<S: StateRead + ?Sized>(
    state: &S,
    document: &EpcisDocument,
    options: &MappingOptions,
) -> Result<Vec<Command>, Vec<MappingError>> {
    let mut commands = products_from_master_data(state, document.header.as_ref());
    let mut errors = Vec::new();
    for index in 0..document.events.len() {
        match commands_from_event(state, document, index, options) {
            Ok(mapped) => commands.extend(mapped),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(commands)
    } else {
        Err(errors)
    }
}

// ---- export

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` of a block timestamp.
pub fn event_time(timestamp_ms: u64) -> String {
    let date = Date::from_unix_days((timestamp_ms / 86_400_000) as i64);
    let ms_of_day = timestamp_ms % 86_400_000;
    format!(
        "{}T{:02}:{:02}:{:02}.{:03}Z",
        date.iso(),
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000
    )
}

fn party(kind: &str, gln: &Gln) -> TypedId {
    TypedId {
        kind: Some(kind.to_string()),
        id: gln.party_uri(),
    }
}

fn urns(epcs: &[Epc]) -> Vec<String> {
    epcs.iter().map(|e| e.0.clone()).collect()
}

/// The EPCIS 2.0 event of a custody event (`None` for IAM and bookkeeping events that have
/// no EPCIS counterpart: product registration, exceptions, recalls at class level, case
/// state of an investigation without EPCs).
pub fn export_event(logged: &LoggedEvent) -> Option<EpcisEvent> {
    let time = event_time(logged.timestamp_ms);
    let object = |action: Action, step: &str, disposition: &str, epcs: &[Epc]| {
        let mut e = EpcisEvent::new(EventType::ObjectEvent, &time, "+00:00");
        e.action = Some(action);
        e.biz_step = Some(step.to_string());
        e.disposition = Some(disposition.to_string());
        e.epc_list = urns(epcs);
        e
    };
    let event = match &logged.event {
        Event::PackagesCommissioned {
            lot, expiry, epcs, ..
        } => {
            let mut e = object(Action::Add, "commissioning", "active", epcs);
            e.ilmd = vec![
                ("cbvmda:lotNumber".into(), Ext::Text(lot.clone())),
                ("cbvmda:itemExpirationDate".into(), Ext::Text(expiry.iso())),
            ];
            e
        }
        Event::Aggregated {
            parent,
            children,
            created,
            ..
        } if children.is_empty() && *created => object(
            Action::Add,
            "commissioning",
            "active",
            std::slice::from_ref(parent),
        ),
        Event::Aggregated {
            parent, children, ..
        }
        | Event::Disaggregated {
            parent, children, ..
        } => {
            let packing = matches!(logged.event, Event::Aggregated { .. });
            let mut e = EpcisEvent::new(EventType::AggregationEvent, &time, "+00:00");
            e.action = Some(if packing { Action::Add } else { Action::Delete });
            e.biz_step = Some(if packing { "packing" } else { "unpacking" }.into());
            e.disposition = Some("in_progress".into());
            e.parent_id = Some(parent.0.clone());
            e.child_epcs = urns(children);
            e
        }
        Event::Shipped { shipment, .. } => {
            let disposition = if shipment.kind == ShipmentKind::Return {
                "returned"
            } else {
                "in_transit"
            };
            let mut e = object(Action::Observe, "shipping", disposition, &shipment.items);
            e.biz_transaction_list = shipment
                .biz_transactions
                .iter()
                .map(|b| TypedId {
                    kind: Some(b.kind.cbv().into()),
                    id: if b.id.contains(':') {
                        b.id.clone()
                    } else {
                        format!("urn:epcglobal:cbv:bt:{}:{}", shipment.seller, b.id)
                    },
                })
                .collect();
            let ownership = shipment.kind != ShipmentKind::Transfer;
            e.source_list
                .push(party("possessing_party", &shipment.shipper));
            e.destination_list
                .push(party("possessing_party", &shipment.recipient));
            if ownership {
                e.source_list.push(party("owning_party", &shipment.seller));
                e.destination_list
                    .push(party("owning_party", &shipment.recipient));
            }
            e
        }
        Event::Received {
            received,
            recipient,
            ..
        } => {
            let mut e = object(Action::Observe, "receiving", "active", received);
            e.destination_list
                .push(party("possessing_party", recipient));
            e
        }
        Event::Dispensed { epcs, .. } => object(Action::Observe, "dispensing", "dispensed", epcs),
        Event::Decommissioned { epcs, .. } => {
            object(Action::Observe, "decommissioning", "inactive", epcs)
        }
        Event::Destroyed { epcs, .. } => object(Action::Observe, "destroying", "destroyed", epcs),
        Event::Quarantined { epcs, .. } => {
            object(Action::Observe, "holding", "non_sellable_other", epcs)
        }
        Event::SuspectCleared { epcs, .. } => object(Action::Observe, "inspecting", "active", epcs),
        Event::IllegitimateDeclared { epcs, .. } => {
            object(Action::Observe, "inspecting", "non_sellable_other", epcs)
        }
        Event::ReturnVerified { epcs, verified, .. } => object(
            Action::Observe,
            "inspecting",
            if *verified {
                "sellable_accessible"
            } else {
                "non_sellable_other"
            },
            epcs,
        ),
        _ => return None,
    };
    Some(event)
}

/// An EPCIS 2.0 document of the exportable events among `events`, for JSON-LD writing.
pub fn export_document(events: &[LoggedEvent], statement_affirmed: bool) -> EpcisDocument {
    let mut document = EpcisDocument {
        schema_version: "2.0".into(),
        creation_date: events
            .last()
            .map(|e| event_time(e.timestamp_ms))
            .unwrap_or_else(|| event_time(0)),
        events: events.iter().filter_map(export_event).collect(),
        ..EpcisDocument::default()
    };
    document.bind_namespace("cbvmda", "urn:epcglobal:cbv:mda:");
    if statement_affirmed {
        document.bind_namespace("gs1ushc", "http://epcis.gs1us.org/hc/ns");
        document.header = Some(Header {
            transaction_statement: Some(EpcisStatement {
                affirm_transaction_statement: true,
                legal_notice: None,
            }),
            ..Header::default()
        });
    }
    document
}

/// JSON-LD text of [`export_document`].
pub fn export_json_ld(events: &[LoggedEvent], statement_affirmed: bool) -> String {
    crate::epcis::json::write_json_ld(&export_document(events, statement_affirmed)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::fixtures::{self, licence_for, MANUFACTURER, WHOLESALER};
    use crate::contract::gwt::{genesis, genesis_with, Scenario};
    use crate::contract::store::IndexRead;
    use crate::contract::{TxResult, EVENT_INDEX};
    use crate::iam::GenesisOrganization;
    use pharmalink_ledger::PublicKey;

    const EXAMPLE: &str = "../../shared/data/gs1/GS1_US_Pharma_Example_2_2_1_1.xml";

    fn example() -> EpcisDocument {
        let dir = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
        let path = std::path::Path::new(&dir).join(EXAMPLE);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        crate::epcis::capture(&text)
            .unwrap_or_else(|e| panic!("{e:?}"))
            .document
    }

    fn example_network() -> Scenario {
        let org =
            |name: &str, sgln: &str, role: Role, seed: u8, validator: bool| GenesisOrganization {
                name: name.into(),
                gln: gln_of(sgln).unwrap().to_string(),
                role: role.name().into(),
                keys: vec![PublicKey([seed; 32])],
                address: String::new(),
                licences: licence_for(role),
                validator: validator.then_some((PublicKey([seed + 100; 32]), 1)),
            };
        // 2023-04-01, the example's day.
        genesis_with(
            &[
                org(
                    "GS1 Pharma LLC",
                    "urn:epc:id:sgln:030001.111111.0",
                    Role::Manufacturer,
                    1,
                    true,
                ),
                org(
                    "Wholesaler 1",
                    "urn:epc:id:sgln:039999.999999.0",
                    Role::Wholesaler,
                    2,
                    false,
                ),
            ],
            19_448 * 86_400_000,
        )
    }

    fn events(scenario: &Scenario) -> Vec<LoggedEvent> {
        scenario
            .ledger
            .scan(EVENT_INDEX, &[], usize::MAX)
            .into_iter()
            .map(|(_, v)| crate::contract::decode_logged_event(&v).unwrap())
            .filter(|e: &LoggedEvent| e.position.height > 0)
            .collect()
    }

    #[test]
    fn the_gs1_us_dscsa_example_imports_as_commissioning_packing_shipping() {
        let document = example();
        let mut scenario = example_network();
        let options = MappingOptions {
            transaction_information: Some(fixtures::sealed_ti(9)),
        };
        let commands = commands_from_document(&scenario.ledger, &document, &options).unwrap();
        let kinds: Vec<CommandKind> = commands.iter().map(Command::kind).collect();
        use CommandKind::*;
        assert_eq!(
            kinds,
            [
                RegisterProduct,
                RegisterProduct,
                Commission,
                Commission,
                Aggregate,
                Aggregate,
                Aggregate,
                Aggregate,
                Aggregate,
                Ship
            ]
        );
        for command in &commands {
            assert_eq!(
                scenario.execute_key(PublicKey([1; 32]), command),
                TxResult::Accepted,
                "{command:?}"
            );
        }
        let wholesaler = gln_of("urn:epc:id:sgln:039999.999999.0").unwrap();
        let each = Epc::new("urn:epc:id:sgtin:030001.0012345.11");
        let history = query::history(&scenario.ledger, &each, 100);
        let names: Vec<_> = history.iter().map(|h| h.logged.event.name()).collect();
        assert_eq!(names, ["PackagesCommissioned", "Aggregated", "Shipped"]);
        assert_eq!(
            history[2].via,
            Some(Epc::new("urn:epc:id:sscc:030001.41234567890"))
        );
        let it = item(&scenario.ledger, &each).unwrap();
        assert_eq!((it.status, it.shipment), (Status::InTransit, Some(0)));
        let shipment = shipment(&scenario.ledger, 0).unwrap();
        assert_eq!(shipment.recipient, wholesaler);
        assert_eq!(shipment.biz_transactions.len(), 2);
        assert!(shipment.statement.affirmed);
        // The pallet holds 3 cases of 4 eaches: 16 EPCs move.
        let Event::Shipped { moved, .. } = &history[2].logged.event else {
            panic!()
        };
        assert_eq!(moved.len(), 16);

        // The wholesaler's receiving event maps to the open shipment.
        let mut receiving =
            EpcisEvent::new(EventType::ObjectEvent, "2023-04-02T10:00:00Z", "-05:00");
        receiving.action = Some(Action::Observe);
        receiving.biz_step = Some("receiving".into());
        receiving.epc_list = vec!["urn:epc:id:sscc:030001.41234567890".into()];
        let inbound = EpcisDocument {
            events: vec![receiving],
            ..EpcisDocument::default()
        };
        let receive =
            commands_from_event(&scenario.ledger, &inbound, 0, &MappingOptions::default()).unwrap();
        assert_eq!(
            scenario.execute_key(PublicKey([2; 32]), &receive[0]),
            TxResult::Accepted
        );
        assert_eq!(item(&scenario.ledger, &each).unwrap().owner, wholesaler);
    }

    #[test]
    fn custody_events_export_as_valid_epcis_json_ld_and_map_back() {
        let scenario = genesis()
            .after(
                MANUFACTURER,
                Command::RegisterProduct {
                    product: fixtures::product_master(),
                },
            )
            .after(MANUFACTURER, fixtures::commission(&["S1", "S2"]))
            .after(
                MANUFACTURER,
                Command::Aggregate {
                    parent: fixtures::sscc(1),
                    children: vec![fixtures::sgtin("S1"), fixtures::sgtin("S2")],
                },
            )
            .after(
                MANUFACTURER,
                fixtures::sale(WHOLESALER.gln(), vec![fixtures::sscc(1)], "PO-1"),
            )
            .after(WHOLESALER, fixtures::receive_all(0, &[fixtures::sscc(1)]))
            .after(
                WHOLESALER,
                Command::Disaggregate {
                    parent: fixtures::sscc(1),
                    children: vec![],
                },
            )
            .after(
                WHOLESALER,
                Command::Destroy {
                    items: vec![fixtures::sgtin("S2")],
                },
            );
        let logged = events(&scenario);
        let text = export_json_ld(&logged, true);
        let captured = crate::epcis::capture(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
        let names: Vec<_> = captured
            .document
            .events
            .iter()
            .map(|e| (e.event_type, e.biz_step.clone().unwrap()))
            .collect();
        assert_eq!(
            names,
            [
                (EventType::ObjectEvent, "commissioning".to_string()),
                (EventType::AggregationEvent, "packing".to_string()),
                (EventType::ObjectEvent, "shipping".to_string()),
                (EventType::ObjectEvent, "receiving".to_string()),
                (EventType::AggregationEvent, "unpacking".to_string()),
                (EventType::ObjectEvent, "destroying".to_string()),
            ]
        );
        // Map the exported commissioning, packing and shipping back: the same commands.
        let fresh = genesis().after(
            MANUFACTURER,
            Command::RegisterProduct {
                product: fixtures::product_master(),
            },
        );
        let options = MappingOptions {
            transaction_information: Some(fixtures::sealed_ti(1)),
        };
        let back: Vec<Command> = (0..3)
            .flat_map(|i| {
                commands_from_event(&fresh.ledger, &captured.document, i, &options).unwrap()
            })
            .collect();
        assert_eq!(back[0], fixtures::commission(&["S1", "S2"]));
        assert_eq!(
            back[1],
            Command::Aggregate {
                parent: fixtures::sscc(1),
                children: vec![fixtures::sgtin("S1"), fixtures::sgtin("S2")]
            }
        );
        let Command::Ship {
            kind,
            to,
            items,
            biz_transactions,
            ..
        } = &back[2]
        else {
            panic!()
        };
        assert_eq!(
            (kind, to, items),
            (
                &ShipmentKind::Sale,
                &WHOLESALER.gln(),
                &vec![fixtures::sscc(1)]
            )
        );
        assert_eq!(biz_transactions[0].kind, BizTransactionKind::Po);
    }

    #[test]
    fn unmappable_events_are_named() {
        let document = example();
        let mut broken = document.clone();
        broken.events[0].ilmd.clear();
        broken.events[1].event_type = EventType::TransformationEvent;
        broken.events[7].destination_list.clear();
        let errors = commands_from_document(&genesis().ledger, &broken, &MappingOptions::default())
            .unwrap_err();
        let reasons: Vec<(usize, &str)> = errors
            .iter()
            .map(|e| (e.event_index, e.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                (0, "commissioning without cbvmda:lotNumber in ILMD"),
                (
                    1,
                    "TransformationEvent ADD with bizStep commissioning has no custody command"
                ),
                (
                    7,
                    "shipping without a destination owning_party or possessing_party"
                ),
            ]
        );
        let mut receiving =
            EpcisEvent::new(EventType::ObjectEvent, "2023-04-02T10:00:00Z", "-05:00");
        receiving.action = Some(Action::Observe);
        receiving.biz_step = Some("receiving".into());
        receiving.epc_list = vec!["urn:epc:id:sgtin:030001.0012345.11".into()];
        let inbound = EpcisDocument {
            events: vec![receiving],
            ..EpcisDocument::default()
        };
        assert_eq!(
            commands_from_event(&genesis().ledger, &inbound, 0, &MappingOptions::default())
                .unwrap_err()
                .reason,
            "urn:epc:id:sgtin:030001.0012345.11 travels in no open shipment"
        );
    }

    #[test]
    fn event_times_and_party_glns() {
        assert_eq!(
            event_time(fixtures::DEMO_TIME_MS + 3_723_004),
            "2026-11-26T01:02:03.004Z"
        );
        assert_eq!(
            gln_of("https://id.gs1.org/417/0300010000008"),
            Some(MANUFACTURER.gln())
        );
        assert_eq!(
            gln_of("urn:epc:id:sgln:030001.000000.0"),
            Some(MANUFACTURER.gln())
        );
        assert_eq!(gln_of("urn:example:nobody"), None);
    }
}
