//! Reading the ledger's event log in order, from a position cursor.

use pharmalink_contracts::contract::EVENT_INDEX;
use pharmalink_ledger::LedgerRead;

/// Logged events (`event` index rows) from position key `start` (inclusive) on, whole blocks
/// at a time until at least `limit` rows, in log order.
pub fn events_from(
    store: &dyn LedgerRead,
    start: &[u8],
    limit: usize,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>, String> {
    let mut height = u64::from_be_bytes(
        start
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .unwrap_or([0; 8]),
    );
    let head = store
        .head()
        .map_err(|e| e.to_string())?
        .map_or(0, |h| h.height);
    let mut out = Vec::new();
    while height <= head && out.len() < limit {
        let rows = store
            .index_scan(EVENT_INDEX, &height.to_be_bytes(), usize::MAX)
            .map_err(|e| e.to_string())?;
        out.extend(rows.into_iter().filter(|(k, _)| k.as_slice() >= start));
        height += 1;
    }
    Ok(out)
}

/// The smallest key after `key` of the same length.
pub fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    for byte in next.iter_mut().rev() {
        if *byte == u8::MAX {
            *byte = 0;
        } else {
            *byte += 1;
            break;
        }
    }
    next
}
