//! The DSCSA custody lifecycle of serialized packages (SGTIN) and containers (SSCC).
//!
//! Ownership and custody are distinct: `owner` changes on a sale's receipt, `custodian` is
//! whoever physically holds (a 3PL or courier holds without owning). Containers imply their
//! contents: shipping, receiving, quarantining or destroying a container applies to every
//! descendant, and each descendant's history records the event with the container it came
//! through (aggregation inference).
//!
//! State keys (all under `c/`; `{epc}` in a key is [`Epc::key_bytes`]: the URN with its
//! `urn:epc:id:sgtin:` / `urn:epc:id:sscc:` prefix as one byte, as in every index key):
//! - `c/i/{epc}` → [`Item`]; `c/g/{gtin}` → [`Product`]
//! - `c/s/{id}` → shipment ([`ShipmentRecord`]); `c/x/{id}` → [`ExceptionRecord`];
//!   `c/q/{id}` → suspect-product [`Case`]; `c/r/{gtin}{lot}` → [`Recall`]
//! - `c/sn`, `c/xn`, `c/qn`: next shipment, exception, case id.

pub mod dispatch;
pub mod epcis;
pub mod pharmacy;
pub mod query;

use crate::contract::command::*;
use crate::contract::event::*;
use crate::contract::store::{read_record, write_record, IndexRead, StateRead, StateWriter};
use crate::contract::types::*;
use crate::iam::{self, Organization};
use borsh::{BorshDeserialize, BorshSerialize};

/// Most EPCs one command may affect once containers are expanded.
pub const EXPANDED_ITEMS_MAX: usize = 20_000;
/// Most children of one container.
pub const CHILDREN_PER_CONTAINER_MAX: usize = 1_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Status {
    /// In the supply chain at its custodian, saleable.
    Active,
    /// Shipped, not yet received.
    InTransit,
    /// Received back on a return: not saleable until a verification.
    Returned,
    /// Suspect product, quarantined.
    Quarantined,
    UnderInvestigation,
    /// Declared illegitimate (FDA Form 3911 filed): may only be destroyed.
    Illegitimate,
    Dispensed,
    Decommissioned,
    Destroyed,
}

impl Status {
    pub fn byte(self) -> u8 {
        self as u8
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::InTransit => "in_transit",
            Status::Returned => "returned",
            Status::Quarantined => "quarantined",
            Status::UnderInvestigation => "under_investigation",
            Status::Illegitimate => "illegitimate",
            Status::Dispensed => "dispensed",
            Status::Decommissioned => "decommissioned",
            Status::Destroyed => "destroyed",
        }
    }

    /// Quarantined, under investigation or declared illegitimate: the statuses a regulator
    /// lists across holders (the `status` index).
    pub const SUSPECT: [Status; 3] = [
        Status::Quarantined,
        Status::UnderInvestigation,
        Status::Illegitimate,
    ];

    /// One of [`Status::SUSPECT`].
    pub fn is_suspect(self) -> bool {
        Status::SUSPECT.contains(&self)
    }

    /// Dispensed, decommissioned and destroyed items never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Dispensed | Status::Decommissioned | Status::Destroyed
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ItemKind {
    Package {
        gtin: Gtin,
        lot: String,
        expiry: Date,
    },
    /// A logistic unit (SSCC).
    Container,
}

/// One event in an item's history: where it is logged, and the container through which it
/// applied to the item (aggregation inference), `None` when the event named the item itself.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct HistoryLink {
    pub position: Position,
    pub via: Option<Epc>,
}

/// Events an item's record lists itself ([`Item::history`]); any later ones go to the `epc`
/// index. Every event rewrites the record anyway (its `last_event`), so listing the event
/// there costs no key of its own: a separate index entry per package per event was a quarter
/// of the keys a commissioning wrote. The bound keeps a long-lived container's record (read
/// and rewritten by each of its events) small.
pub const ITEM_HISTORY_INLINE_MAX: usize = 32;

/// A package or container. A package's record is about 150 bytes plus 21 per event it lists
/// (and the container's EPC for an event that reached it through one): at most
/// [`ITEM_HISTORY_INLINE_MAX`] events, so a few KiB at worst.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Item {
    pub kind: ItemKind,
    /// Packed content. A package can be a parent too: a homogeneous case is an SGTIN (as in
    /// the GS1 US example, cases `030001.1012345.*` hold each-level packages).
    pub children: Vec<Epc>,
    pub owner: Gln,
    pub custodian: Gln,
    pub status: Status,
    pub parent: Option<Epc>,
    /// The open shipment the item travels in.
    pub shipment: Option<u64>,
    /// The seller of the last sale received: the immediate trading partner to notify.
    pub received_from: Option<Gln>,
    /// The suspect-product case while quarantined / investigated / illegitimate.
    pub case_id: Option<u64>,
    /// Position of the last event that touched this item (the chain's tip).
    pub last_event: Position,
    /// The item's first events, oldest first (at most [`ITEM_HISTORY_INLINE_MAX`]; the rest
    /// are in the `epc` index). [`history_links`] lists them all.
    pub history: Vec<HistoryLink>,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Product {
    pub owner: Gln,
    pub master: ProductMaster,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum CaseState {
    Quarantined,
    UnderInvestigation,
    Cleared,
    Illegitimate,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Case {
    pub id: u64,
    pub holder: Gln,
    pub epcs: Vec<Epc>,
    pub reason: String,
    pub state: CaseState,
    pub form: Option<Form3911>,
    pub notified: Vec<Gln>,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Recall {
    pub by: Gln,
    pub class: RecallClass,
    pub reason: String,
    pub height: u64,
}

// ---- keys

pub fn item_key(epc: &Epc) -> Vec<u8> {
    let (tag, rest) = epc.key_parts();
    [b"c/i/".as_slice(), tag, rest].concat()
}
pub fn product_key(gtin: &Gtin) -> Vec<u8> {
    [b"c/g/".as_slice(), &gtin.0].concat()
}
pub fn shipment_key(id: u64) -> Vec<u8> {
    [b"c/s/".as_slice(), &id.to_be_bytes()].concat()
}
pub fn exception_key(id: u64) -> Vec<u8> {
    [b"c/x/".as_slice(), &id.to_be_bytes()].concat()
}
pub fn case_key(id: u64) -> Vec<u8> {
    [b"c/q/".as_slice(), &id.to_be_bytes()].concat()
}
pub fn recall_key(gtin: &Gtin, lot: &str) -> Vec<u8> {
    [b"c/r/".as_slice(), &gtin.0, lot.as_bytes()].concat()
}
const NEXT_SHIPMENT: &[u8] = b"c/sn";
const NEXT_EXCEPTION: &[u8] = b"c/xn";
const NEXT_CASE: &[u8] = b"c/qn";

pub const EPC_INDEX: &str = "epc";
pub const LOT_INDEX: &str = "lot";
pub const PARTY_INDEX: &str = "party";
/// Entries into the suspect statuses ([`Status::is_suspect`]): status byte ‖ position key ‖
/// EPC → empty, history (a package's current status is its item's). Only these statuses are
/// indexed: they are what [`query::suspect_packages`] lists, and an entry for every package
/// commissioned, shipped or received would cost a write each that no query reads.
pub const STATUS_INDEX: &str = "status";
/// On-hand inventory (a projection whose entries come and go): custodian GLN ‖ GTIN ‖ expiry
/// (u32 BE) ‖ EPC → status byte, for every package held and not in transit, dispensed,
/// decommissioned or destroyed. A scan by GLN ‖ GTIN lists a holder's packages of a product
/// first-expiry first.
pub const ON_HAND_INDEX: &str = "on_hand";

pub fn on_hand_key(custodian: &Gln, gtin: &Gtin, expiry: Date, epc: &Epc) -> Vec<u8> {
    let (tag, rest) = epc.key_parts();
    [
        &custodian.0[..],
        &gtin.0[..],
        &expiry.0.to_be_bytes(),
        tag,
        rest,
    ]
    .concat()
}

/// The item's `on_hand` entry, if it counts as on hand.
fn on_hand_entry(epc: &Epc, item: &Item) -> Option<(Vec<u8>, u8)> {
    match &item.kind {
        ItemKind::Package { gtin, expiry, .. }
            if !item.status.is_terminal() && item.status != Status::InTransit =>
        {
            Some((
                on_hand_key(&item.custodian, gtin, *expiry, epc),
                item.status.byte(),
            ))
        }
        _ => None,
    }
}

/// Keeps `on_hand` in step with a package's change from `before` to `after`.
fn on_hand_index<W: StateWriter + ?Sized>(
    state: &mut W,
    epc: &Epc,
    before: Option<(Vec<u8>, u8)>,
    after: &Item,
) {
    let after = on_hand_entry(epc, after);
    if before == after {
        return;
    }
    if let Some((key, _)) = &before {
        if after.as_ref().map(|(k, _)| k) != Some(key) {
            state.unindex(ON_HAND_INDEX, key.clone());
        }
    }
    if let Some((key, status)) = after {
        state.index(ON_HAND_INDEX, key, vec![status]);
    }
}

pub fn item<S: StateRead + ?Sized>(state: &S, epc: &Epc) -> Option<Item> {
    read_record(state, &item_key(epc))
}
pub fn product<S: StateRead + ?Sized>(state: &S, gtin: &Gtin) -> Option<Product> {
    read_record(state, &product_key(gtin))
}
pub fn shipment<S: StateRead + ?Sized>(state: &S, id: u64) -> Option<ShipmentRecord> {
    read_record(state, &shipment_key(id))
}
pub fn exception<S: StateRead + ?Sized>(state: &S, id: u64) -> Option<ExceptionRecord> {
    read_record(state, &exception_key(id))
}
pub fn case<S: StateRead + ?Sized>(state: &S, id: u64) -> Option<Case> {
    read_record(state, &case_key(id))
}
pub fn recall<S: StateRead + ?Sized>(state: &S, gtin: &Gtin, lot: &str) -> Option<Recall> {
    read_record(state, &recall_key(gtin, lot))
}
fn counter<S: StateRead + ?Sized>(state: &S, key: &[u8]) -> u64 {
    read_record(state, key).unwrap_or(0)
}

fn load<S: StateRead + ?Sized>(state: &S, epc: &Epc) -> Result<Item, Rejection> {
    item(state, epc).ok_or_else(|| {
        Rejection::new(
            "custody.unknown_epc",
            format!("{epc} was never commissioned"),
        )
    })
}

/// `tops` and all their descendants, each with the top-level EPC it is reached through
/// (`None` for a top itself). Depth-first, in container order: deterministic.
pub fn expand<S: StateRead + ?Sized>(
    state: &S,
    tops: &[Epc],
) -> Result<Vec<(Epc, Item, Option<Epc>)>, Rejection> {
    let mut out = Vec::with_capacity(tops.len());
    for top in tops {
        let top_item = load(state, top)?;
        let mut stack: Vec<Epc> = top_item.children.iter().rev().cloned().collect();
        out.push((top.clone(), top_item, None));
        while let Some(epc) = stack.pop() {
            ensure(
                out.len() < EXPANDED_ITEMS_MAX,
                "custody.too_many_items",
                || format!("more than {EXPANDED_ITEMS_MAX} items once containers are expanded"),
            )?;
            let child = load(state, &epc)?;
            stack.extend(child.children.iter().rev().cloned());
            out.push((epc, child, Some(top.clone())));
        }
    }
    Ok(out)
}

fn distinct(list: &[Epc]) -> Result<(), Rejection> {
    let mut sorted: Vec<&Epc> = list.iter().collect();
    sorted.sort();
    match sorted.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => reject("custody.duplicate_epc", format!("{} listed twice", w[0])),
        None => Ok(()),
    }
}

fn non_empty<T>(list: &[T], what: &str) -> Result<(), Rejection> {
    ensure(!list.is_empty(), "custody.no_items", || {
        format!("{what}: no items")
    })
}

/// Rules `custody.recalled` / `custody.expired` for a package (containers carry none).
/// The last lot looked up for a recall, within one decision (packages of a shipment mostly
/// share a lot).
#[derive(Default)]
struct RecallMemo(Option<(Gtin, String, bool)>);

impl RecallMemo {
    fn recalled<S: StateRead + ?Sized>(&mut self, state: &S, gtin: &Gtin, lot: &str) -> bool {
        if let Some((g, l, recalled)) = &self.0 {
            if g == gtin && l == lot {
                return *recalled;
            }
        }
        let recalled = recall(state, gtin, lot).is_some();
        self.0 = Some((*gtin, lot.to_string(), recalled));
        recalled
    }
}

fn saleable_package<S: StateRead + ?Sized>(
    state: &S,
    memo: &mut RecallMemo,
    epc: &Epc,
    item: &Item,
    today: Date,
) -> Result<(), Rejection> {
    if let ItemKind::Package { gtin, lot, expiry } = &item.kind {
        ensure(!memo.recalled(state, gtin, lot), "custody.recalled", || {
            format!("{epc}: lot {lot} of {gtin} is recalled")
        })?;
        ensure(*expiry >= today, "custody.expired", || {
            format!("{epc} expired on {}", expiry.iso())
        })?;
    }
    Ok(())
}

fn holder(epc: &Epc, item: &Item, actor: &Organization) -> Result<(), Rejection> {
    ensure(item.custodian == actor.gln(), "custody.not_holder", || {
        format!(
            "{epc} is held by {}, not by {}",
            item.custodian,
            actor.gln()
        )
    })
}

fn owner(epc: &Epc, item: &Item, actor: &Organization) -> Result<(), Rejection> {
    ensure(item.owner == actor.gln(), "custody.not_owner", || {
        format!("{epc} is owned by {}, not by {}", item.owner, actor.gln())
    })
}

fn top_level(epc: &Epc, item: &Item) -> Result<(), Rejection> {
    match &item.parent {
        Some(parent) => reject(
            "custody.inside_container",
            format!("{epc} is packed in {parent}: unpack it first"),
        ),
        None => Ok(()),
    }
}

fn status_in(epc: &Epc, item: &Item, allowed: &[Status], action: &str) -> Result<(), Rejection> {
    ensure(
        allowed.contains(&item.status),
        "custody.transition_forbidden",
        || {
            format!(
                "{epc} is {}: {action} is not allowed from that status",
                item.status.name()
            )
        },
    )
}

fn trading_partner<S: StateRead + ?Sized>(
    state: &S,
    gln: &Gln,
    date: Date,
) -> Result<Organization, Rejection> {
    let org = iam::organization(state, gln)
        .ok_or_else(|| Rejection::new("iam.org_unknown", format!("no organization {gln}")))?;
    org.check_atp(date)?;
    Ok(org)
}

pub fn decide<S: StateRead + ?Sized>(
    state: &S,
    actor: &Organization,
    command: &Command,
    ctx: &BlockContext,
) -> Result<Vec<Event>, Rejection> {
    let today = ctx.date();
    let mut memo = RecallMemo::default();
    match command {
        Command::RegisterProduct { product: master } => {
            master.gtin.check()?;
            ensure(
                (6..=12).contains(&master.company_prefix_length),
                "custody.product.prefix_length",
                || {
                    format!(
                        "company prefix length {} (6..=12)",
                        master.company_prefix_length
                    )
                },
            )?;
            let ndc_digits = master.ndc.bytes().filter(u8::is_ascii_digit).count();
            ensure(
                master.ndc.bytes().all(|b| b.is_ascii_digit() || b == b'-')
                    && (10..=12).contains(&ndc_digits),
                "custody.product.ndc",
                || {
                    format!(
                        "NDC {:?} is not 10–12 digits with optional hyphens",
                        master.ndc
                    )
                },
            )?;
            ensure(
                product(state, &master.gtin).is_none(),
                "custody.product.exists",
                || format!("GTIN {} is already registered", master.gtin),
            )?;
            Ok(vec![Event::ProductRegistered {
                owner: actor.gln(),
                product: master.clone(),
            }])
        }
        Command::Commission {
            gtin,
            serials,
            lot,
            expiry,
        } => {
            actor.check_atp(today)?;
            let registered = product(state, gtin).ok_or_else(|| {
                Rejection::new(
                    "custody.product.unknown",
                    format!("GTIN {gtin} is not registered"),
                )
            })?;
            ensure(
                registered.owner == actor.gln(),
                "custody.product.not_owner",
                || {
                    format!(
                        "GTIN {gtin} belongs to {}, not {}",
                        registered.owner,
                        actor.gln()
                    )
                },
            )?;
            expiry.check()?;
            ensure(*expiry >= today, "custody.commission.expired", || {
                format!(
                    "expiry {} is before the block date {}",
                    expiry.iso(),
                    today.iso()
                )
            })?;
            non_empty(serials, "commission")?;
            let epcs = Epc::sgtins(gtin, serials, registered.master.company_prefix_length)?;
            // Looked up together: the store answers a batch of absent keys at once.
            let keys: Vec<Vec<u8>> = epcs.iter().map(item_key).collect();
            let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            for (epc, existing) in epcs.iter().zip(state.get_many(&keys)) {
                ensure(existing.is_none(), "custody.epc_exists", || {
                    format!("{epc} is already commissioned")
                })?;
            }
            distinct(&epcs)?;
            Ok(vec![Event::PackagesCommissioned {
                owner: actor.gln(),
                gtin: *gtin,
                lot: lot.clone(),
                expiry: *expiry,
                epcs,
            }])
        }
        Command::Aggregate { parent, children } => {
            distinct(children)?;
            let existing = item(state, parent);
            let mut owner_of_content = None;
            if let Some(p) = &existing {
                non_empty(children, "aggregate")?;
                holder(parent, p, actor)?;
                status_in(parent, p, &[Status::Active], "packing")?;
                top_level(parent, p)?;
                ensure(
                    p.children.len() + children.len() <= CHILDREN_PER_CONTAINER_MAX,
                    "custody.aggregate.full",
                    || {
                        format!(
                            "{parent} would hold more than {CHILDREN_PER_CONTAINER_MAX} children"
                        )
                    },
                )?;
                // A package parent (a case SGTIN) is its owner's; an empty container takes
                // any one owner's content.
                if !p.children.is_empty() || matches!(p.kind, ItemKind::Package { .. }) {
                    owner_of_content = Some(p.owner);
                }
            } else {
                // A new SSCC: created by this packing (with no children: an empty container
                // commissioned, as an EPCIS SSCC commissioning event says).
                parent.check_container()?;
                ensure(
                    children.len() <= CHILDREN_PER_CONTAINER_MAX,
                    "custody.aggregate.full",
                    || format!("more than {CHILDREN_PER_CONTAINER_MAX} children"),
                )?;
            }
            for child in children {
                ensure(child != parent, "custody.aggregate.cycle", || {
                    format!("{parent} cannot contain itself")
                })?;
                let c = load(state, child)?;
                holder(child, &c, actor)?;
                top_level(child, &c)?;
                status_in(child, &c, &[Status::Active], "packing")?;
                let expected = *owner_of_content.get_or_insert(c.owner);
                ensure(
                    c.owner == expected,
                    "custody.aggregate.mixed_owners",
                    || {
                        format!(
                            "{child} is owned by {}, the container's content by {expected}",
                            c.owner
                        )
                    },
                )?;
            }
            Ok(vec![Event::Aggregated {
                holder: actor.gln(),
                parent: parent.clone(),
                children: children.clone(),
                created: existing.is_none(),
            }])
        }
        Command::Disaggregate { parent, children } => {
            let p = load(state, parent)?;
            holder(parent, &p, actor)?;
            status_in(
                parent,
                &p,
                &[Status::Active, Status::Returned, Status::Quarantined],
                "unpacking",
            )?;
            let present = &p.children;
            let removed = if children.is_empty() {
                present.clone()
            } else {
                children.clone()
            };
            distinct(&removed)?;
            non_empty(&removed, "disaggregate")?;
            for child in &removed {
                ensure(
                    present.contains(child),
                    "custody.disaggregate.not_child",
                    || format!("{child} is not in {parent}"),
                )?;
            }
            Ok(vec![Event::Disaggregated {
                holder: actor.gln(),
                parent: parent.clone(),
                children: removed,
            }])
        }
        Command::Ship {
            kind,
            to,
            carrier,
            items,
            biz_transactions,
            statement,
            transaction_information,
        } => {
            non_empty(items, "ship")?;
            distinct(items)?;
            actor.check_atp(today)?;
            ensure(*to != actor.gln(), "custody.ship.to_self", || {
                format!("{to} ships to itself")
            })?;
            let recipient = trading_partner(state, to, today)?;
            if let Some(carrier) = carrier {
                let c = trading_partner(state, carrier, today)?;
                ensure(
                    c.role() == Role::Logistics,
                    "custody.ship.carrier_role",
                    || {
                        format!(
                            "carrier {carrier} is a {}, not a logistics provider",
                            c.role().name()
                        )
                    },
                )?;
            }
            let expanded = expand(state, items)?;
            let mut seller: Option<Gln> = None;
            for (epc, it, via) in &expanded {
                if via.is_none() {
                    top_level(epc, it)?;
                    holder(epc, it, actor)?;
                }
                status_in(epc, it, &[Status::Active], "shipping")?;
                if *kind != ShipmentKind::Return {
                    saleable_package(state, &mut memo, epc, it, today)?;
                }
                let expected = *seller.get_or_insert(it.owner);
                ensure(it.owner == expected, "custody.ship.mixed_owners", || {
                    format!("{epc} is owned by {}, other items by {expected}", it.owner)
                })?;
            }
            let seller = seller.unwrap_or(actor.gln());
            if *kind != ShipmentKind::Transfer {
                // A 3PL may ship its client's goods (holding without owning); others sell only
                // what they own.
                ensure(
                    seller == actor.gln() || actor.role() == Role::Logistics,
                    "custody.not_owner",
                    || format!("{} sells goods owned by {seller}", actor.gln()),
                )?;
                ensure(to != &seller, "custody.ship.to_self", || {
                    format!("{to} would sell to itself")
                })?;
                ensure(statement.affirmed, "dscsa.ts_required", || {
                    "a change of ownership needs the affirmed Transaction Statement".into()
                })?;
                ensure(
                    transaction_information.is_some(),
                    "dscsa.ti_required",
                    || "a change of ownership needs the (sealed) Transaction Information".into(),
                )?;
                let needed: &[BizTransactionKind] = match kind {
                    ShipmentKind::Return => &[
                        BizTransactionKind::Rma,
                        BizTransactionKind::Po,
                        BizTransactionKind::Inv,
                    ],
                    _ => &[BizTransactionKind::Po, BizTransactionKind::Inv],
                };
                ensure(
                    biz_transactions.iter().any(|b| needed.contains(&b.kind)),
                    "dscsa.biz_transaction_required",
                    || format!("a {kind:?} needs a bizTransaction of type {needed:?}"),
                )?;
                if recipient.role() == Role::Logistics {
                    return reject(
                        "custody.ship.sale_to_logistics",
                        format!("{to} is a logistics provider: it can hold (Transfer) but not buy"),
                    );
                }
            }
            let id = counter(state, NEXT_SHIPMENT);
            let record = ShipmentRecord {
                id,
                kind: *kind,
                seller,
                shipper: actor.gln(),
                recipient: *to,
                carrier: *carrier,
                items: items.clone(),
                outstanding: items.clone(),
                biz_transactions: biz_transactions.clone(),
                statement: *statement,
                transaction_information: transaction_information.as_ref().map(Sealed::reference),
                shipped_height: ctx.height,
                shipped_timestamp_ms: ctx.timestamp_ms,
            };
            Ok(vec![Event::Shipped {
                shipment: record,
                moved: expanded.into_iter().map(|(epc, _, _)| epc).collect(),
            }])
        }
        Command::Receive {
            shipment_id,
            items,
            source,
        } => {
            let record = shipment(state, *shipment_id).ok_or_else(|| {
                Rejection::new(
                    "custody.receive.no_shipment",
                    format!("no shipment {shipment_id}"),
                )
            })?;
            ensure(
                record.recipient == actor.gln(),
                "custody.receive.not_recipient",
                || {
                    format!(
                        "shipment {shipment_id} goes to {}, not {}",
                        record.recipient,
                        actor.gln()
                    )
                },
            )?;
            ensure(
                !record.outstanding.is_empty(),
                "custody.receive.shipment_closed",
                || format!("shipment {shipment_id} is fully received"),
            )?;
            non_empty(items, "receive")?;
            distinct(&items.iter().map(|i| i.epc.clone()).collect::<Vec<_>>())?;
            actor.check_atp(today)?;
            let mut received = Vec::new();
            let (mut overage, mut unknown, mut misaligned) = (Vec::new(), Vec::new(), Vec::new());
            let mut detail = String::new();
            for r in items {
                if record.outstanding.contains(&r.epc) {
                    received.push(r.epc.clone());
                    if let Some(ItemKind::Package { lot, expiry, .. }) =
                        item(state, &r.epc).map(|i| i.kind)
                    {
                        let lot_differs = r.observed_lot.as_ref().is_some_and(|o| *o != lot);
                        let expiry_differs = r.observed_expiry.is_some_and(|o| o != expiry);
                        if lot_differs || expiry_differs {
                            if detail.len() < TEXT_BYTES_MAX / 2 {
                                detail =
                                    format!("{}: data lot {lot} expiry {}", r.epc, expiry.iso());
                            }
                            misaligned.push(r.epc.clone());
                        }
                    }
                } else if item(state, &r.epc).is_none() {
                    unknown.push(r.epc.clone());
                } else {
                    overage.push(r.epc.clone());
                }
            }
            let underage: Vec<Epc> = record
                .outstanding
                .iter()
                .filter(|e| !received.contains(e))
                .cloned()
                .collect();
            let mut events = Vec::new();
            if !received.is_empty() {
                let moved = expand(state, &received)?
                    .into_iter()
                    .map(|(epc, _, _)| epc)
                    .collect();
                events.push(Event::Received {
                    shipment_id: *shipment_id,
                    recipient: actor.gln(),
                    received,
                    moved,
                    closed: underage.is_empty(),
                });
            }
            let mut next_exception = counter(state, NEXT_EXCEPTION);
            for (category, epcs, text) in [
                (
                    ExceptionCategory::Overage,
                    overage,
                    "received but not in the shipment".to_string(),
                ),
                (
                    ExceptionCategory::ProductNoEpcis,
                    unknown,
                    "received but never commissioned".to_string(),
                ),
                (ExceptionCategory::DataMisalignment, misaligned, detail),
                (
                    ExceptionCategory::Underage,
                    underage,
                    "shipped but not received".to_string(),
                ),
            ] {
                if epcs.is_empty() {
                    continue;
                }
                events.push(Event::ExceptionRaised {
                    exception: ExceptionRecord {
                        id: next_exception,
                        party: actor.gln(),
                        shipment_id: *shipment_id,
                        category,
                        source: *source,
                        epcs,
                        detail: text,
                        resolution: None,
                    },
                });
                next_exception += 1;
            }
            Ok(events)
        }
        Command::Dispense { items } => {
            non_empty(items, "dispense")?;
            distinct(items)?;
            for epc in items {
                pharmacy::available(state, &mut memo, epc, actor, None, ctx, "dispensing")?;
            }
            Ok(vec![Event::Dispensed {
                holder: actor.gln(),
                epcs: items.clone(),
            }])
        }
        Command::VerifyReturn {
            items,
            correlation_id,
            verified,
        } => {
            non_empty(items, "verify return")?;
            distinct(items)?;
            for epc in items {
                let it = load(state, epc)?;
                holder(epc, &it, actor)?;
                status_in(epc, &it, &[Status::Returned], "verifying a return")?;
            }
            let mut events = vec![Event::ReturnVerified {
                holder: actor.gln(),
                epcs: items.clone(),
                correlation_id: correlation_id.clone(),
                verified: *verified,
            }];
            if !verified {
                events.push(Event::Quarantined {
                    case_id: counter(state, NEXT_CASE),
                    holder: actor.gln(),
                    epcs: items.clone(),
                    reason: format!("return verification {correlation_id} failed"),
                });
            }
            Ok(events)
        }
        Command::Decommission { items, reason } => {
            non_empty(items, "decommission")?;
            distinct(items)?;
            let expanded = expand(state, items)?;
            for (epc, it, via) in &expanded {
                if via.is_none() {
                    top_level(epc, it)?;
                    holder(epc, it, actor)?;
                    owner(epc, it, actor)?;
                }
                status_in(
                    epc,
                    it,
                    &[Status::Active, Status::Returned],
                    "decommissioning",
                )?;
            }
            Ok(vec![Event::Decommissioned {
                holder: actor.gln(),
                epcs: expanded.into_iter().map(|(e, _, _)| e).collect(),
                reason: reason.clone(),
            }])
        }
        Command::Destroy { items } => {
            non_empty(items, "destroy")?;
            distinct(items)?;
            let expanded = expand(state, items)?;
            for (epc, it, via) in &expanded {
                if via.is_none() {
                    top_level(epc, it)?;
                    holder(epc, it, actor)?;
                }
                status_in(
                    epc,
                    it,
                    &[Status::Active, Status::Returned, Status::Illegitimate],
                    "destruction",
                )?;
            }
            Ok(vec![Event::Destroyed {
                holder: actor.gln(),
                epcs: expanded.into_iter().map(|(e, _, _)| e).collect(),
            }])
        }
        Command::Quarantine { items, reason } => {
            non_empty(items, "quarantine")?;
            distinct(items)?;
            let expanded = expand(state, items)?;
            for (epc, it, via) in &expanded {
                if via.is_none() {
                    top_level(epc, it)?;
                    holder(epc, it, actor)?;
                }
                status_in(epc, it, &[Status::Active, Status::Returned], "quarantine")?;
            }
            Ok(vec![Event::Quarantined {
                case_id: counter(state, NEXT_CASE),
                holder: actor.gln(),
                epcs: expanded.into_iter().map(|(e, _, _)| e).collect(),
                reason: reason.clone(),
            }])
        }
        Command::BeginInvestigation { case_id } => {
            let c = load_case(state, *case_id, actor)?;
            ensure(
                c.state == CaseState::Quarantined,
                "suspect.transition_forbidden",
                || {
                    format!(
                        "case {case_id} is {:?}: an investigation starts from quarantine",
                        c.state
                    )
                },
            )?;
            Ok(vec![Event::InvestigationStarted {
                case_id: *case_id,
                holder: actor.gln(),
            }])
        }
        Command::ClearSuspect { case_id } => {
            let c = load_case(state, *case_id, actor)?;
            ensure(
                c.state == CaseState::UnderInvestigation,
                "suspect.not_investigated",
                || {
                    format!(
                        "case {case_id} is {:?}: only an investigated case can be cleared",
                        c.state
                    )
                },
            )?;
            Ok(vec![Event::SuspectCleared {
                case_id: *case_id,
                holder: actor.gln(),
                epcs: c.epcs,
            }])
        }
        Command::DeclareIllegitimate {
            case_id,
            form,
            notified,
        } => {
            let c = load_case(state, *case_id, actor)?;
            ensure(
                c.state == CaseState::UnderInvestigation,
                "suspect.not_investigated",
                || {
                    format!("case {case_id} is {:?}: only an investigated case can be declared illegitimate", c.state)
                },
            )?;
            ensure(
                form.kind == Form3911Kind::Initial,
                "dscsa.form3911.initial_required",
                || "the declaration carries the initial FDA Form 3911 notification".into(),
            )?;
            form.filed.check()?;
            ensure(
                form.filed <= today,
                "dscsa.form3911.filed_in_future",
                || {
                    format!(
                        "Form 3911 filed {} after the block date {}",
                        form.filed.iso(),
                        today.iso()
                    )
                },
            )?;
            for gln in notified {
                ensure(
                    iam::organization(state, gln).is_some(),
                    "iam.org_unknown",
                    || format!("no organization {gln}"),
                )?;
            }
            // Immediate trading partners: whoever sold us these packages.
            for epc in &c.epcs {
                if let Some(partner) = item(state, epc).and_then(|i| i.received_from) {
                    ensure(
                        notified.contains(&partner),
                        "dscsa.illegitimate.partner_not_notified",
                        || format!("{epc} came from {partner}, who must be notified"),
                    )?;
                }
            }
            Ok(vec![Event::IllegitimateDeclared {
                case_id: *case_id,
                holder: actor.gln(),
                epcs: c.epcs,
                form: form.clone(),
                notified: notified.clone(),
            }])
        }
        Command::RecallLot {
            gtin,
            lot,
            class,
            reason,
        } => {
            let p = product(state, gtin).ok_or_else(|| {
                Rejection::new(
                    "custody.product.unknown",
                    format!("GTIN {gtin} is not registered"),
                )
            })?;
            ensure(
                p.owner == actor.gln() || actor.role() == Role::Regulator,
                "custody.recall.not_manufacturer",
                || {
                    format!(
                        "only {} (the GTIN's manufacturer) or a regulator may recall it",
                        p.owner
                    )
                },
            )?;
            ensure(
                recall(state, gtin, lot).is_none(),
                "custody.recall.exists",
                || format!("lot {lot} of {gtin} is already recalled"),
            )?;
            Ok(vec![Event::LotRecalled {
                by: actor.gln(),
                gtin: *gtin,
                lot: lot.clone(),
                class: *class,
                reason: reason.clone(),
            }])
        }
        Command::ResolveException {
            exception_id,
            resolution,
        } => {
            let record = exception(state, *exception_id).ok_or_else(|| {
                Rejection::new("exception.unknown", format!("no exception {exception_id}"))
            })?;
            let shipper = shipment(state, record.shipment_id).map(|s| s.shipper);
            ensure(
                record.party == actor.gln() || shipper == Some(actor.gln()),
                "exception.not_party",
                || {
                    format!(
                        "exception {exception_id} concerns {} and the shipper, not {}",
                        record.party,
                        actor.gln()
                    )
                },
            )?;
            ensure(record.resolution.is_none(), "exception.resolved", || {
                format!("exception {exception_id} is already resolved")
            })?;
            Ok(vec![Event::ExceptionResolved {
                exception_id: *exception_id,
                by: actor.gln(),
                resolution: *resolution,
            }])
        }
        Command::DecidePrescription { .. }
        | Command::Reserve { .. }
        | Command::ReleaseReservation { .. }
        | Command::DispensePrescription { .. }
        | Command::SetStorageRequirement { .. }
        | Command::AnchorTelemetry { .. }
        | Command::RecordExcursion { .. } => pharmacy::decide(state, actor, command, ctx),
        Command::RegisterVehicle { .. }
        | Command::OpenDelivery { .. }
        | Command::AssignCourier { .. }
        | Command::PickUp { .. }
        | Command::DeliverToPatient { .. }
        | Command::FailDelivery { .. }
        | Command::CloseDelivery { .. }
        | Command::RecordSagaStep { .. } => dispatch::decide(state, actor, command, ctx),
        _ => reject(
            "contract.not_custody",
            format!("{:?} is not a custody command", command.kind()),
        ),
    }
}

fn load_case<S: StateRead + ?Sized>(
    state: &S,
    id: u64,
    actor: &Organization,
) -> Result<Case, Rejection> {
    let c = case(state, id)
        .ok_or_else(|| Rejection::new("suspect.case_unknown", format!("no case {id}")))?;
    ensure(c.holder == actor.gln(), "suspect.not_case_holder", || {
        format!("case {id} belongs to {}, not {}", c.holder, actor.gln())
    })?;
    Ok(c)
}

// ---- evolve

/// Records the event at `position` in `it`'s history (its record, which the caller writes,
/// or once that lists [`ITEM_HISTORY_INLINE_MAX`] events the `epc` index).
fn record_event<W: StateWriter + ?Sized>(
    state: &mut W,
    epc: &Epc,
    it: &mut Item,
    position: Position,
    via: Option<&Epc>,
) {
    it.last_event = position;
    let full = it.history.len() >= ITEM_HISTORY_INLINE_MAX;
    match it.history.last_mut() {
        // The same event again (as an index entry would be overwritten): the later `via`.
        Some(last) if last.position == position => last.via = via.cloned(),
        _ if full => epc_index(state, epc, position, via),
        _ => it.history.push(HistoryLink {
            position,
            via: via.cloned(),
        }),
    }
}

/// An item's history as [`history_links`] reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryLinks {
    /// Oldest first.
    pub links: Vec<HistoryLink>,
    /// `epc` index entries that did not decode (a damaged store), left out of `links`: a
    /// query lists what it can, a proof refuses.
    pub undecodable: usize,
}

/// Every event of `epc`'s history ([`Item::history`] and then the `epc` index), oldest
/// first, at most `limit`.
pub fn history_links<R: StateRead + IndexRead + ?Sized>(
    read: &R,
    epc: &Epc,
    limit: usize,
) -> HistoryLinks {
    let mut links = item(read, epc).map(|it| it.history).unwrap_or_default();
    let (tag, rest) = epc.key_parts();
    let prefix = [tag, rest, &[0]].concat();
    let mut undecodable = 0;
    for (key, via) in read.scan(EPC_INDEX, &prefix, limit) {
        let position = Position::from_key(&key[prefix.len()..]);
        let via = if via.is_empty() {
            Some(None)
        } else {
            Epc::from_key_bytes(&via).map(Some)
        };
        match (position, via) {
            (Some(position), Some(via)) => links.push(HistoryLink { position, via }),
            _ => undecodable += 1,
        }
    }
    // An event is in one of the two (`record_event`), but cold-chain events, always in the
    // index, fall between the record's.
    links.sort_by_key(|link| link.position);
    links.truncate(limit);
    HistoryLinks { links, undecodable }
}

fn epc_index<W: StateWriter + ?Sized>(
    state: &mut W,
    epc: &Epc,
    position: Position,
    via: Option<&Epc>,
) {
    let (tag, rest) = epc.key_parts();
    let key = [tag, rest, &[0], &position.key()].concat();
    state.index(EPC_INDEX, key, via.map(Epc::key_bytes).unwrap_or_default());
}

fn status_index<W: StateWriter + ?Sized>(
    state: &mut W,
    status: Status,
    epc: &Epc,
    position: Position,
) {
    if !status.is_suspect() {
        return;
    }
    let (tag, rest) = epc.key_parts();
    let key = [&[status.byte()][..], &position.key(), tag, rest].concat();
    state.index(STATUS_INDEX, key, Vec::new());
}

fn party_index<W: StateWriter + ?Sized>(state: &mut W, gln: &Gln, tag: u8, id: u64, open: bool) {
    let key = [&gln.0[..], &[tag], &id.to_be_bytes()].concat();
    state.index(PARTY_INDEX, key, vec![u8::from(open)]);
}

/// Applies `change` to each EPC (and, through containers, each descendant), recording the
/// event in each one's history and each status change.
fn touch<W: StateWriter + ?Sized>(
    state: &mut W,
    position: Position,
    tops: &[Epc],
    expand_containers: bool,
    mut change: impl FnMut(&mut Item),
) {
    let targets: Vec<(Epc, Item, Option<Epc>)> = if expand_containers {
        expand(state, tops).unwrap_or_default()
    } else {
        tops.iter()
            .filter_map(|e| item(state, e).map(|i| (e.clone(), i, None)))
            .collect()
    };
    for (epc, mut it, via) in targets {
        let before = it.status;
        let on_hand_before = on_hand_entry(&epc, &it);
        change(&mut it);
        on_hand_index(state, &epc, on_hand_before, &it);
        if it.status != before {
            status_index(state, it.status, &epc, position);
        }
        record_event(state, &epc, &mut it, position, via.as_ref());
        write_record(state, item_key(&epc), &it);
    }
}

/// `touch` for an event that carries its expanded list (`moved`: each top followed by its
/// descendants, as [`expand`] lists them), so the containers need not be walked again.
fn touch_moved<W: StateWriter + ?Sized>(
    state: &mut W,
    position: Position,
    tops: &[Epc],
    moved: &[Epc],
    mut change: impl FnMut(&mut Item),
) {
    let mut current_top: Option<&Epc> = None;
    for epc in moved {
        let via = if tops.contains(epc) {
            current_top = Some(epc);
            None
        } else {
            current_top
        };
        let Some(mut it) = item(state, epc) else {
            continue;
        };
        let before = it.status;
        let on_hand_before = on_hand_entry(epc, &it);
        change(&mut it);
        on_hand_index(state, epc, on_hand_before, &it);
        if it.status != before {
            status_index(state, it.status, epc, position);
        }
        record_event(state, epc, &mut it, position, via);
        write_record(state, item_key(epc), &it);
    }
}

pub fn evolve<W: StateWriter + ?Sized>(
    state: &mut W,
    position: Position,
    _timestamp_ms: u64,
    event: &Event,
) {
    match event {
        Event::ProductRegistered { owner, product } => {
            write_record(
                state,
                product_key(&product.gtin),
                &Product {
                    owner: *owner,
                    master: product.clone(),
                },
            );
            pharmacy::index_ndc(state, product);
        }
        Event::PackagesCommissioned {
            owner,
            gtin,
            lot,
            expiry,
            epcs,
        } => {
            // One `lot` entry per commissioning, not per package: the logged event at that
            // position lists the serials.
            let lot_key = [&gtin.0[..], lot.as_bytes(), &[0], &position.key()].concat();
            state.index(LOT_INDEX, lot_key, Vec::new());
            for epc in epcs {
                let it = Item {
                    kind: ItemKind::Package {
                        gtin: *gtin,
                        lot: lot.clone(),
                        expiry: *expiry,
                    },
                    children: Vec::new(),
                    owner: *owner,
                    custodian: *owner,
                    status: Status::Active,
                    parent: None,
                    shipment: None,
                    received_from: None,
                    case_id: None,
                    last_event: position,
                    history: vec![HistoryLink {
                        position,
                        via: None,
                    }],
                };
                on_hand_index(state, epc, None, &it);
                write_record(state, item_key(epc), &it);
            }
        }
        Event::Aggregated {
            holder,
            parent,
            children,
            created: _,
        } => {
            let mut container = match item(state, parent) {
                Some(existing) => existing,
                None => {
                    let owner = children
                        .first()
                        .and_then(|c| item(state, c))
                        .map(|c| c.owner)
                        .unwrap_or(*holder);
                    Item {
                        kind: ItemKind::Container,
                        children: Vec::new(),
                        owner,
                        custodian: *holder,
                        status: Status::Active,
                        parent: None,
                        shipment: None,
                        received_from: None,
                        case_id: None,
                        last_event: position,
                        history: Vec::new(),
                    }
                }
            };
            if container.children.is_empty() && container.kind == ItemKind::Container {
                if let Some(owner) = children
                    .first()
                    .and_then(|c| item(state, c))
                    .map(|c| c.owner)
                {
                    container.owner = owner;
                }
            }
            container.children.extend(children.iter().cloned());
            record_event(state, parent, &mut container, position, None);
            write_record(state, item_key(parent), &container);
            touch(state, position, children, false, |c| {
                c.parent = Some(parent.clone())
            });
        }
        Event::Disaggregated {
            parent, children, ..
        } => {
            if let Some(mut container) = item(state, parent) {
                container.children.retain(|c| !children.contains(c));
                record_event(state, parent, &mut container, position, None);
                write_record(state, item_key(parent), &container);
            }
            touch(state, position, children, false, |c| c.parent = None);
        }
        Event::Shipped { shipment, moved } => {
            write_record(state, shipment_key(shipment.id), shipment);
            write_record(state, NEXT_SHIPMENT.to_vec(), &(shipment.id + 1));
            party_index(state, &shipment.recipient, b'S', shipment.id, true);
            party_index(state, &shipment.shipper, b'S', shipment.id, true);
            let custodian = shipment.carrier.unwrap_or(shipment.shipper);
            touch_moved(state, position, &shipment.items, moved, |it| {
                it.status = Status::InTransit;
                it.shipment = Some(shipment.id);
                it.custodian = custodian;
            });
        }
        Event::Received {
            shipment_id,
            recipient,
            received,
            closed,
            moved,
        } => {
            let Some(mut record) = shipment(state, *shipment_id) else {
                return;
            };
            record.outstanding.retain(|e| !received.contains(e));
            write_record(state, shipment_key(*shipment_id), &record);
            if *closed {
                party_index(state, &record.recipient, b'S', *shipment_id, false);
                party_index(state, &record.shipper, b'S', *shipment_id, false);
            }
            let (kind, seller) = (record.kind, record.seller);
            touch_moved(state, position, received, moved, |it| {
                it.custodian = *recipient;
                it.shipment = None;
                it.status = if kind == ShipmentKind::Return {
                    Status::Returned
                } else {
                    Status::Active
                };
                if kind != ShipmentKind::Transfer {
                    it.owner = *recipient;
                    it.received_from = Some(seller);
                }
            });
        }
        Event::ExceptionRaised { exception } => {
            write_record(state, exception_key(exception.id), exception);
            write_record(state, NEXT_EXCEPTION.to_vec(), &(exception.id + 1));
            party_index(state, &exception.party, b'X', exception.id, true);
            if let Some(record) = shipment(state, exception.shipment_id) {
                if record.shipper != exception.party {
                    party_index(state, &record.shipper, b'X', exception.id, true);
                }
            }
        }
        Event::Dispensed { epcs, .. } => touch(state, position, epcs, false, |it| {
            it.status = Status::Dispensed
        }),
        Event::ReturnVerified { epcs, verified, .. } => {
            if *verified {
                touch(state, position, epcs, false, |it| {
                    it.status = Status::Active
                });
            } else {
                touch(state, position, epcs, false, |_| {});
            }
        }
        Event::Decommissioned { epcs, .. } => touch(state, position, epcs, false, |it| {
            it.status = Status::Decommissioned
        }),
        Event::Destroyed { epcs, .. } => touch(state, position, epcs, false, |it| {
            it.status = Status::Destroyed
        }),
        Event::Quarantined {
            case_id,
            holder,
            epcs,
            reason,
        } => {
            let record = Case {
                id: *case_id,
                holder: *holder,
                epcs: epcs.clone(),
                reason: reason.clone(),
                state: CaseState::Quarantined,
                form: None,
                notified: Vec::new(),
            };
            write_record(state, case_key(*case_id), &record);
            write_record(state, NEXT_CASE.to_vec(), &(case_id + 1));
            touch(state, position, epcs, false, |it| {
                it.status = Status::Quarantined;
                it.case_id = Some(*case_id);
            });
        }
        Event::InvestigationStarted { case_id, .. } => {
            if let Some(mut record) = case(state, *case_id) {
                record.state = CaseState::UnderInvestigation;
                let epcs = record.epcs.clone();
                write_record(state, case_key(*case_id), &record);
                touch(state, position, &epcs, false, |it| {
                    it.status = Status::UnderInvestigation
                });
            }
        }
        Event::SuspectCleared { case_id, epcs, .. } => {
            if let Some(mut record) = case(state, *case_id) {
                record.state = CaseState::Cleared;
                write_record(state, case_key(*case_id), &record);
            }
            touch(state, position, epcs, false, |it| {
                it.status = Status::Active;
                it.case_id = None;
            });
        }
        Event::IllegitimateDeclared {
            case_id,
            epcs,
            form,
            notified,
            ..
        } => {
            if let Some(mut record) = case(state, *case_id) {
                record.state = CaseState::Illegitimate;
                record.form = Some(form.clone());
                record.notified = notified.clone();
                write_record(state, case_key(*case_id), &record);
            }
            touch(state, position, epcs, false, |it| {
                it.status = Status::Illegitimate
            });
        }
        Event::ExceptionResolved {
            exception_id,
            resolution,
            ..
        } => {
            if let Some(mut record) = exception(state, *exception_id) {
                record.resolution = Some(*resolution);
                write_record(state, exception_key(*exception_id), &record);
                party_index(state, &record.party, b'X', *exception_id, false);
                if let Some(s) = shipment(state, record.shipment_id) {
                    if s.shipper != record.party {
                        party_index(state, &s.shipper, b'X', *exception_id, false);
                    }
                }
            }
        }
        Event::LotRecalled {
            by,
            gtin,
            lot,
            class,
            reason,
        } => {
            let record = Recall {
                by: *by,
                class: *class,
                reason: reason.clone(),
                height: position.height,
            };
            write_record(state, recall_key(gtin, lot), &record);
        }
        _ => {
            pharmacy::evolve(state, position, event);
            dispatch::evolve(state, position, event);
        }
    }
}

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;
