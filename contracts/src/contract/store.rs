//! How the contracts see state: a read trait the node implements over its committed store, a
//! per-block write overlay, and `MemLedger`, an in-memory store for tests, benchmarks and
//! projection rebuilds (it is also the snapshot format).

use borsh::{BorshDeserialize, BorshSerialize};
use pharmalink_ledger::{IndexEntry, StateWrite};
use std::collections::BTreeMap;

/// Committed application state, by key.
pub trait StateRead {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;

    /// [`StateRead::get`] of several keys, answered in their order (stores with a batched
    /// lookup override it).
    fn get_many(&self, keys: &[&[u8]]) -> Vec<Option<Vec<u8>>> {
        keys.iter().map(|key| self.get(key)).collect()
    }
}

/// Secondary indexes (append or overwrite; no deletion), scanned by key prefix in key order.
pub trait IndexRead {
    fn scan(&self, index: &str, prefix: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)>;
}

/// Where `evolve` writes: state puts/deletes and index entries.
pub trait StateWriter: StateRead {
    fn put(&mut self, key: Vec<u8>, value: Option<Vec<u8>>);
    fn index(&mut self, index: &'static str, key: Vec<u8>, value: Vec<u8>);
    /// Deletes an index entry (projections whose entries come and go).
    fn unindex(&mut self, index: &'static str, key: Vec<u8>);
}

/// One block's writes over a committed state: reads see earlier writes of the same block.
pub struct Overlay<'a, S: StateRead + ?Sized> {
    base: &'a S,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    index: Vec<IndexEntry>,
}

impl<'a, S: StateRead + ?Sized> Overlay<'a, S> {
    pub fn new(base: &'a S) -> Overlay<'a, S> {
        Overlay {
            base,
            writes: BTreeMap::new(),
            index: Vec::new(),
        }
    }

    /// The block's state writes in key order (deterministic), and its index entries in the
    /// order they were made.
    pub fn into_parts(self) -> (Vec<StateWrite>, Vec<IndexEntry>) {
        let writes = self
            .writes
            .into_iter()
            .map(|(key, value)| StateWrite { key, value })
            .collect();
        (writes, self.index)
    }
}

impl<S: StateRead + ?Sized> StateRead for Overlay<'_, S> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.writes.get(key) {
            Some(value) => value.clone(),
            None => self.base.get(key),
        }
    }

    fn get_many(&self, keys: &[&[u8]]) -> Vec<Option<Vec<u8>>> {
        let Ok(values) = pharmalink_ledger::store::layered_reads(
            keys,
            |key| self.writes.get(key).cloned(),
            |unwritten| Ok::<_, std::convert::Infallible>(self.base.get_many(unwritten)),
        );
        values
    }
}

impl<S: StateRead + ?Sized> StateWriter for Overlay<'_, S> {
    fn put(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.writes.insert(key, value);
    }

    fn index(&mut self, index: &'static str, key: Vec<u8>, value: Vec<u8>) {
        self.index.push(IndexEntry::put(index, key, value));
    }

    fn unindex(&mut self, index: &'static str, key: Vec<u8>) {
        self.index.push(IndexEntry::removal(index, key));
    }
}

/// An in-memory state + indexes. Borsh-serialized, it is a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct MemLedger {
    /// Height of the last block applied (0: genesis only).
    pub height: u64,
    pub state: BTreeMap<Vec<u8>, Vec<u8>>,
    pub indexes: BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemLedger {
    pub fn new() -> MemLedger {
        MemLedger::default()
    }

    /// Applies a block's writes and index entries.
    pub fn apply(&mut self, height: u64, writes: &[StateWrite], entries: &[IndexEntry]) {
        for write in writes {
            match &write.value {
                Some(value) => {
                    self.state.insert(write.key.clone(), value.clone());
                }
                None => {
                    self.state.remove(&write.key);
                }
            }
        }
        for entry in entries {
            if entry.remove {
                self.index_remove(&entry.index, &entry.key);
            } else {
                self.index_put(&entry.index, entry.key.clone(), entry.value.clone());
            }
        }
        self.height = height;
    }

    fn index_remove(&mut self, index: &str, key: &[u8]) {
        if let Some(map) = self.indexes.get_mut(index) {
            map.remove(key);
        }
    }

    fn index_put(&mut self, index: &str, key: Vec<u8>, value: Vec<u8>) {
        match self.indexes.get_mut(index) {
            Some(map) => {
                map.insert(key, value);
            }
            None => {
                let mut map = BTreeMap::new();
                map.insert(key, value);
                self.indexes.insert(index.to_string(), map);
            }
        }
    }

    /// Bytes of state (keys + values) whose key starts with `prefix`.
    pub fn state_bytes(&self, prefix: &[u8]) -> (usize, usize) {
        let mut count = 0;
        let mut bytes = 0;
        for (key, value) in self.state.range(prefix.to_vec()..) {
            if !key.starts_with(prefix) {
                break;
            }
            count += 1;
            bytes += key.len() + value.len();
        }
        (count, bytes)
    }

    /// Serialized snapshot.
    pub fn snapshot(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }

    pub fn from_snapshot(bytes: &[u8]) -> Result<MemLedger, std::io::Error> {
        borsh::from_slice(bytes)
    }
}

impl StateRead for MemLedger {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.state.get(key).cloned()
    }
}

impl StateWriter for MemLedger {
    fn put(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        match value {
            Some(value) => {
                self.state.insert(key, value);
            }
            None => {
                self.state.remove(&key);
            }
        }
    }

    fn index(&mut self, index: &'static str, key: Vec<u8>, value: Vec<u8>) {
        self.index_put(index, key, value);
    }

    fn unindex(&mut self, index: &'static str, key: Vec<u8>) {
        self.index_remove(index, &key);
    }
}

impl IndexRead for MemLedger {
    fn scan(&self, index: &str, prefix: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        let Some(map) = self.indexes.get(index) else {
            return Vec::new();
        };
        map.range(prefix.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Reads a Borsh record; a record that does not decode is treated as corrupt state and
/// reported as such by the caller.
pub fn read_record<T: BorshDeserialize, S: StateRead + ?Sized>(state: &S, key: &[u8]) -> Option<T> {
    state
        .get(key)
        .and_then(|bytes| borsh::from_slice(&bytes).ok())
}

pub fn write_record<T: BorshSerialize, W: StateWriter + ?Sized>(
    state: &mut W,
    key: Vec<u8>,
    value: &T,
) {
    // Borsh serialization into a Vec cannot fail for our types (no maps with fallible keys,
    // no IO); an empty value would be caught by the decoding side as corrupt.
    state.put(key, Some(borsh::to_vec(value).unwrap_or_default()));
}
