//! Read-side queries (pure functions over committed state and indexes) for the API: history of
//! an EPC with aggregation inference, current status and holder, lot recall reach, open
//! shipments and exceptions per party, the TI/TS commitments of a transaction.

use super::*;
use crate::contract::event::LoggedEvent;
use crate::contract::store::IndexRead;
use crate::contract::EVENT_INDEX;

/// Most rows any query returns.
pub const QUERY_ROWS_MAX: usize = 10_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    pub logged: LoggedEvent,
    /// The container through which the event applied to this EPC (aggregation inference),
    /// `None` when the event named the EPC itself.
    pub via: Option<Epc>,
}

/// The event logged at `position` (the `event` index).
fn logged_event_at<R: IndexRead + ?Sized>(read: &R, position: Position) -> Option<LoggedEvent> {
    let (_, bytes) = read
        .scan(EVENT_INDEX, &position.key(), 1)
        .into_iter()
        .next()?;
    crate::contract::decode_logged_event(&bytes)
}

/// Every event that touched `epc`, oldest first (at most `limit`, capped at
/// [`QUERY_ROWS_MAX`]).
pub fn history<R: StateRead + IndexRead + ?Sized>(
    read: &R,
    epc: &Epc,
    limit: usize,
) -> Vec<HistoryEntry> {
    history_links(read, epc, limit.min(QUERY_ROWS_MAX))
        .links
        .into_iter()
        .filter_map(|link| {
            Some(HistoryEntry {
                logged: logged_event_at(read, link.position)?,
                via: link.via,
            })
        })
        .collect()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemStatus {
    pub epc: Epc,
    pub item: Item,
    pub recall: Option<Recall>,
    pub expired: bool,
    /// The outermost container the item is packed in, if any.
    pub outermost_parent: Option<Epc>,
}

/// Current status, owner and holder of `epc`, with recall and expiry on `today`.
pub fn status<S: StateRead + ?Sized>(state: &S, epc: &Epc, today: Date) -> Option<ItemStatus> {
    let found = item(state, epc)?;
    let (recall, expired) = match &found.kind {
        ItemKind::Package { gtin, lot, expiry } => (recall(state, gtin, lot), *expiry < today),
        ItemKind::Container => (None, false),
    };
    let mut outermost = None;
    let mut cursor = found.parent.clone();
    let mut depth = 0;
    while let Some(parent) = cursor {
        depth += 1;
        if depth > 16 {
            break;
        }
        cursor = item(state, &parent).and_then(|p| p.parent);
        outermost = Some(parent);
    }
    Some(ItemStatus {
        epc: epc.clone(),
        item: found,
        recall,
        expired,
        outermost_parent: outermost,
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecallReach {
    pub recall: Option<Recall>,
    /// Every package of the lot with its current owner, holder and status.
    pub packages: Vec<(Epc, Gln, Gln, Status)>,
    /// Distinct current holders of packages not yet out of the supply chain.
    pub holders: Vec<Gln>,
}

/// Every package of lot `lot` of `gtin`, and who holds it now.
pub fn lot_recall_reach<R: StateRead + IndexRead + ?Sized>(
    read: &R,
    gtin: &Gtin,
    lot: &str,
) -> RecallReach {
    let prefix = [&gtin.0[..], lot.as_bytes(), &[0]].concat();
    // Each entry is a commissioning of the lot; its logged event lists the serials.
    let mut epcs = Vec::new();
    for (key, _) in read.scan(LOT_INDEX, &prefix, QUERY_ROWS_MAX) {
        if let Some(LoggedEvent {
            event: Event::PackagesCommissioned { epcs: listed, .. },
            ..
        }) = Position::from_key(&key[prefix.len()..]).and_then(|p| logged_event_at(read, p))
        {
            epcs.extend(listed);
        }
        if epcs.len() >= QUERY_ROWS_MAX {
            break;
        }
    }
    epcs.sort();
    epcs.dedup();
    epcs.truncate(QUERY_ROWS_MAX);
    let mut packages = Vec::new();
    let mut holders: Vec<Gln> = Vec::new();
    for epc in epcs {
        if let Some(it) = item(read, &epc) {
            if !it.status.is_terminal() {
                if let Err(at) = holders.binary_search(&it.custodian) {
                    holders.insert(at, it.custodian);
                }
            }
            packages.push((epc, it.owner, it.custodian, it.status));
        }
    }
    RecallReach {
        recall: recall(read, gtin, lot),
        packages,
        holders,
    }
}

fn party_open_ids<R: IndexRead + ?Sized>(read: &R, gln: &Gln, tag: u8) -> Vec<u64> {
    let prefix = [&gln.0[..], &[tag]].concat();
    read.scan(PARTY_INDEX, &prefix, QUERY_ROWS_MAX)
        .into_iter()
        .filter(|(_, open)| open.as_slice() == [1])
        .filter_map(|(key, _)| {
            <[u8; 8]>::try_from(&key[prefix.len()..])
                .ok()
                .map(u64::from_be_bytes)
        })
        .collect()
}

/// Shipments to or from `gln` not yet fully received.
pub fn open_shipments<R: StateRead + IndexRead + ?Sized>(
    read: &R,
    gln: &Gln,
) -> Vec<ShipmentRecord> {
    party_open_ids(read, gln, b'S')
        .into_iter()
        .filter_map(|id| shipment(read, id))
        .collect()
}

/// Open (unresolved) exceptions raised by or about shipments of `gln`.
pub fn exceptions<R: StateRead + IndexRead + ?Sized>(read: &R, gln: &Gln) -> Vec<ExceptionRecord> {
    party_open_ids(read, gln, b'X')
        .into_iter()
        .filter_map(|id| exception(read, id))
        .collect()
}

/// A package under a suspect-product case now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuspectPackage {
    pub epc: Epc,
    pub case_id: Option<u64>,
    pub status: Status,
    pub holder: Gln,
    pub owner: Gln,
    /// When it entered this status (log position).
    pub since: Position,
}

/// Packages currently quarantined, under investigation or declared illegitimate — held by
/// `holder`, or by anyone when `None` — from the `status` index (entries are history, so each
/// is checked against the package's current state).
pub fn suspect_packages<R: StateRead + IndexRead + ?Sized>(
    read: &R,
    holder: Option<&Gln>,
) -> Vec<SuspectPackage> {
    let mut out: Vec<SuspectPackage> = Vec::new();
    for status in Status::SUSPECT {
        for (key, _) in read.scan(STATUS_INDEX, &[status.byte()], QUERY_ROWS_MAX) {
            let Some(since) = key.get(1..17).and_then(Position::from_key) else {
                continue;
            };
            let Some(epc) = Epc::from_key_bytes(&key[17..]) else {
                continue;
            };
            let Some(it) = item(read, &epc) else { continue };
            if it.status != status || holder.is_some_and(|h| *h != it.custodian) {
                continue;
            }
            // The latest entry for this status wins (a package can re-enter it).
            out.retain(|p| p.epc != epc);
            out.push(SuspectPackage {
                epc,
                case_id: it.case_id,
                status,
                holder: it.custodian,
                owner: it.owner,
                since,
            });
        }
    }
    out.sort_by(|a, b| (a.case_id, &a.epc).cmp(&(b.case_id, &b.epc)));
    out
}

/// What the ledger holds of a transaction's TI/TS: parties, references, the TS affirmation,
/// and the commitment and ciphertext hash of the sealed TI (never the plaintext).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionCommitments {
    pub shipment_id: u64,
    pub kind: ShipmentKind,
    pub seller: Gln,
    pub buyer: Gln,
    pub biz_transactions: Vec<BizTransaction>,
    pub statement: TransactionStatement,
    pub transaction_information: Option<SealedRef>,
    pub shipped_timestamp_ms: u64,
}

pub fn transaction_commitments<S: StateRead + ?Sized>(
    state: &S,
    shipment_id: u64,
) -> Option<TransactionCommitments> {
    let s = shipment(state, shipment_id)?;
    Some(TransactionCommitments {
        shipment_id,
        kind: s.kind,
        seller: s.seller,
        buyer: s.recipient,
        biz_transactions: s.biz_transactions,
        statement: s.statement,
        transaction_information: s.transaction_information,
        shipped_timestamp_ms: s.shipped_timestamp_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::fixtures::*;
    use crate::contract::gwt::genesis;

    #[test]
    fn history_infers_through_containers_and_chains_to_commissioning() {
        let scenario = genesis()
            .after(
                MANUFACTURER,
                Command::RegisterProduct {
                    product: product_master(),
                },
            )
            .after(MANUFACTURER, commission(&["S1", "S2"]))
            .after(
                MANUFACTURER,
                Command::Aggregate {
                    parent: sscc(1),
                    children: vec![sgtin("S1"), sgtin("S2")],
                },
            )
            .after(MANUFACTURER, sale(WHOLESALER.gln(), vec![sscc(1)], "PO-1"))
            .after(WHOLESALER, receive_all(0, &[sscc(1)]));
        let entries = history(&scenario.ledger, &sgtin("S1"), 100);
        let names: Vec<_> = entries.iter().map(|e| e.logged.event.name()).collect();
        assert_eq!(
            names,
            ["PackagesCommissioned", "Aggregated", "Shipped", "Received"]
        );
        assert_eq!(entries[2].via, Some(sscc(1)));
        assert_eq!(entries[0].via, None);
        let st = status(&scenario.ledger, &sgtin("S1"), Date::new(2026, 11, 26)).unwrap();
        assert_eq!(
            (st.item.custodian, st.outermost_parent, st.expired),
            (WHOLESALER.gln(), Some(sscc(1)), false)
        );
        assert!(
            status(&scenario.ledger, &sgtin("S1"), Date::new(2028, 7, 1))
                .unwrap()
                .expired
        );
        assert!(status(&scenario.ledger, &sgtin("NONE"), Date::new(2026, 11, 26)).is_none());
    }

    #[test]
    fn a_long_history_continues_in_the_epc_index_in_order() {
        let mut scenario = genesis()
            .after(
                MANUFACTURER,
                Command::RegisterProduct {
                    product: product_master(),
                },
            )
            .after(MANUFACTURER, commission(&["S1", "S2"]));
        let cycles = ITEM_HISTORY_INLINE_MAX; // 2 events each: well past the record's share
        for _ in 0..cycles {
            scenario = scenario
                .after(
                    MANUFACTURER,
                    Command::Aggregate {
                        parent: sscc(1),
                        children: vec![sgtin("S1")],
                    },
                )
                .after(
                    MANUFACTURER,
                    Command::Disaggregate {
                        parent: sscc(1),
                        children: vec![sgtin("S1")],
                    },
                );
        }
        let scenario = scenario
            .after(
                MANUFACTURER,
                Command::Aggregate {
                    parent: sscc(1),
                    children: vec![sgtin("S1")],
                },
            )
            .after(MANUFACTURER, sale(WHOLESALER.gln(), vec![sscc(1)], "PO-1"));
        let events = 1 + 2 * cycles + 2;

        // The record lists the first events, the index the rest; nothing is in both.
        let record = item(&scenario.ledger, &sgtin("S1")).unwrap();
        assert_eq!(record.history.len(), ITEM_HISTORY_INLINE_MAX);
        let bytes = scenario.ledger.get(&item_key(&sgtin("S1"))).unwrap().len();
        assert!(bytes <= 150 + 21 * ITEM_HISTORY_INLINE_MAX, "{bytes} bytes");
        let prefix = [&sgtin("S1").key_bytes()[..], &[0]].concat();
        let overflow = scenario.ledger.scan(EPC_INDEX, &prefix, 1000);
        assert_eq!(overflow.len(), events - ITEM_HISTORY_INLINE_MAX);
        // A package with a short history has no index entry.
        let short = [&sgtin("S2").key_bytes()[..], &[0]].concat();
        assert!(scenario.ledger.scan(EPC_INDEX, &short, 10).is_empty());

        let entries = history(&scenario.ledger, &sgtin("S1"), 1000);
        assert_eq!(entries.len(), events);
        let names: Vec<_> = entries.iter().map(|e| e.logged.event.name()).collect();
        assert_eq!(names[0], "PackagesCommissioned");
        for (i, name) in names[1..1 + 2 * cycles].iter().enumerate() {
            let expected = if i % 2 == 0 {
                "Aggregated"
            } else {
                "Disaggregated"
            };
            assert_eq!(*name, expected, "event {}", i + 1);
        }
        assert_eq!(names[events - 2..], ["Aggregated", "Shipped"]);
        // Through the container, from the index's part.
        assert_eq!(entries[events - 1].via, Some(sscc(1)));
        assert!(entries[..events - 1].iter().all(|e| e.via.is_none()));
        assert!(entries
            .windows(2)
            .all(|w| w[0].logged.position < w[1].logged.position));
        // A limit keeps the oldest.
        let first = history(&scenario.ledger, &sgtin("S1"), 40);
        assert_eq!(first[..], entries[..40]);
        // An index entry that does not decode (a damaged store) is counted, not listed.
        let mut damaged = scenario.ledger.clone();
        let mut bad_key = prefix.clone();
        bad_key.extend_from_slice(b"short");
        damaged
            .indexes
            .get_mut(EPC_INDEX)
            .unwrap()
            .insert(bad_key, Vec::new());
        let read = history_links(&damaged, &sgtin("S1"), 1000);
        assert_eq!((read.links.len(), read.undecodable), (events, 1));
        assert_eq!(
            history_links(&scenario.ledger, &sgtin("S1"), 1000).undecodable,
            0
        );
        // The container's own history went the same way.
        assert_eq!(
            history(&scenario.ledger, &sscc(1), 1000).len(),
            2 * cycles + 2
        );
    }

    #[test]
    fn recall_reach_names_every_package_and_holder() {
        let scenario = genesis()
            .after(
                MANUFACTURER,
                Command::RegisterProduct {
                    product: product_master(),
                },
            )
            .after(MANUFACTURER, commission(&["S1", "S2", "S3"]))
            // A second commissioning of the same lot, and one of another lot.
            .after(MANUFACTURER, commission(&["S0", "S4"]))
            .after(
                MANUFACTURER,
                Command::Commission {
                    gtin: gtin(),
                    serials: vec!["T1".into()],
                    lot: "LOT3".into(),
                    expiry: Date::new(2028, 6, 30),
                },
            )
            .after(
                MANUFACTURER,
                sale(WHOLESALER.gln(), vec![sgtin("S1")], "PO-1"),
            )
            .after(WHOLESALER, receive_all(0, &[sgtin("S1")]))
            .after(
                MANUFACTURER,
                sale(WHOLESALER_2.gln(), vec![sgtin("S2")], "PO-2"),
            )
            .after(
                MANUFACTURER,
                Command::RecallLot {
                    gtin: gtin(),
                    lot: "LOT1".into(),
                    class: RecallClass::I,
                    reason: "contamination".into(),
                },
            );
        let reach = lot_recall_reach(&scenario.ledger, &gtin(), "LOT1");
        // Every package of both commissionings, in EPC order; none of the other lot.
        let epcs: Vec<Epc> = reach.packages.iter().map(|p| p.0.clone()).collect();
        assert_eq!(
            epcs,
            ["S0", "S1", "S2", "S3", "S4"].map(sgtin).to_vec(),
            "{epcs:?}"
        );
        // The lot index holds one entry per commissioning, not one per package.
        let prefix = [&gtin().0[..], b"LOT1", &[0]].concat();
        assert_eq!(scenario.ledger.scan(LOT_INDEX, &prefix, 100).len(), 2);
        assert_eq!(reach.recall.as_ref().unwrap().class, RecallClass::I);
        assert_eq!(reach.holders, vec![MANUFACTURER.gln(), WHOLESALER.gln()]);
        let in_transit = reach.packages.iter().find(|p| p.0 == sgtin("S2")).unwrap();
        assert_eq!(in_transit.3, Status::InTransit);
        assert!(lot_recall_reach(&scenario.ledger, &gtin(), "LOT2")
            .packages
            .is_empty());
        // Open shipments: shipment 1 is open for both parties, shipment 0 closed.
        let open: Vec<u64> = open_shipments(&scenario.ledger, &MANUFACTURER.gln())
            .iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(open, vec![1]);
        assert_eq!(
            open_shipments(&scenario.ledger, &WHOLESALER_2.gln()).len(),
            1
        );
        assert!(open_shipments(&scenario.ledger, &WHOLESALER.gln()).is_empty());
        let ti = transaction_commitments(&scenario.ledger, 0).unwrap();
        assert_eq!(
            (ti.seller, ti.buyer),
            (MANUFACTURER.gln(), WHOLESALER.gln())
        );
        assert_eq!(
            ti.transaction_information.unwrap().commitment,
            sealed_ti(1).commitment
        );
    }

    #[test]
    fn exceptions_are_listed_for_both_parties() {
        let scenario = genesis()
            .after(
                MANUFACTURER,
                Command::RegisterProduct {
                    product: product_master(),
                },
            )
            .after(MANUFACTURER, commission(&["S1", "S2"]))
            .after(
                MANUFACTURER,
                sale(WHOLESALER.gln(), vec![sgtin("S1"), sgtin("S2")], "PO-1"),
            )
            .after(WHOLESALER, receive_all(0, &[sgtin("S1")]));
        let mine = exceptions(&scenario.ledger, &WHOLESALER.gln());
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].category, ExceptionCategory::Underage);
        assert_eq!(exceptions(&scenario.ledger, &MANUFACTURER.gln()), mine);
        assert!(exceptions(&scenario.ledger, &DISPENSER.gln()).is_empty());
        // Resolving closes it for both parties.
        let resolve = Command::ResolveException {
            exception_id: 0,
            resolution: Resolution::SendProduct,
        };
        scenario
            .when(DISPENSER, resolve.clone())
            .then_reject("exception.not_party");
        let resolved = scenario.after(MANUFACTURER, resolve.clone());
        assert!(exceptions(&resolved.ledger, &WHOLESALER.gln()).is_empty());
        assert!(exceptions(&resolved.ledger, &MANUFACTURER.gln()).is_empty());
        assert_eq!(
            exception(&resolved.ledger, 0).unwrap().resolution,
            Some(Resolution::SendProduct)
        );
        resolved
            .when(WHOLESALER, resolve)
            .then_reject("exception.resolved");
    }
}
