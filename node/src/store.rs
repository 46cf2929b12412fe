//! The ledger on RocksDB. One decided block — header, certificate, transactions, transaction
//! locations, application state writes, secondary index entries and the new head — goes into
//! one `WriteBatch`, written with the WAL synced: after a crash at any moment the store reopens
//! at exactly the last fully written block.
//!
//! Layout (big-endian integers so keys sort by height):
//! | column family  | key                              | value                        |
//! |----------------|----------------------------------|------------------------------|
//! | `headers`      | height u64                       | canonical header             |
//! | `certificates` | height u64                       | canonical commit certificate |
//! | `txs`          | height u64 ‖ index u32           | canonical transaction        |
//! | `tx_locations` | tx hash (32)                     | height u64 ‖ index u32       |
//! | `state`        | application key                  | application value            |
//! | `indexes`      | name length u8 ‖ name ‖ key      | value                        |
//! | `meta`         | `genesis`, `head`, `format`      | canonical genesis, head      |
//!
//! Everything read back is checked before use: a header must hash to the block hash its
//! certificate signs, a block's transactions must hash to its tx root; a mismatch is a
//! `StoreError::Corrupt` naming the height.

use pharmalink_ledger::store::{validate_commit_detailed, INDEX_NAME_BYTES_MAX};
use pharmalink_ledger::{
    Block, BlockCommit, BlockHeader, Canonical, ChainHead, CommitCertificate, Genesis, Hash,
    IndexEntry, LedgerRead, LedgerWrite, StateWrite, StoreError, Transaction, TxLocation,
};
use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode, Options,
    WriteBatch, WriteOptions, DB,
};
use std::path::{Path, PathBuf};

pub const CF_HEADERS: &str = "headers";
pub const CF_CERTIFICATES: &str = "certificates";
pub const CF_TXS: &str = "txs";
pub const CF_TX_LOCATIONS: &str = "tx_locations";
pub const CF_STATE: &str = "state";
pub const CF_INDEXES: &str = "indexes";
pub const CF_META: &str = "meta";
pub const COLUMN_FAMILIES: [&str; 7] = [
    CF_HEADERS,
    CF_CERTIFICATES,
    CF_TXS,
    CF_TX_LOCATIONS,
    CF_STATE,
    CF_INDEXES,
    CF_META,
];

const META_GENESIS: &[u8] = b"genesis";
const META_HEAD: &[u8] = b"head";
const META_FORMAT: &[u8] = b"format";
/// Bumped whenever the layout above changes.
/// v2: the application's genesis state (the IAM bootstrap) is written with the genesis.
/// v3: the `lot` index has one entry per commissioning, and the state root hashes the block's
/// state writes as one digest (a v2 store's lot entries would not be found).
/// v4: an item's record lists its first events (the `epc` index only the rest): a v3 store's
/// item records would not decode.
/// v5: EPCs in state and index keys spell their URN scheme as one byte (`Epc::key_bytes`): a v4
/// store's items would not be found.
const FORMAT_VERSION: &[u8] = b"pharmalink-store-v5";

pub struct RocksStore {
    db: DB,
    path: PathBuf,
    genesis: Genesis,
    /// The head after the last append; appends are serialized by the caller (one writer).
    head: std::sync::RwLock<Option<ChainHead>>,
    sync_writes: bool,
    /// Small state values read before (nonces, member keys, product master data: read for
    /// every transaction, on admission and again on execution). Filled by `state` under the
    /// head's read lock and updated by `append_shared` under its write lock, after the write:
    /// no append can land between a miss's read and its fill, so the cache never holds a
    /// value older than the store's.
    /// Hashed with foldhash: SipHash over every key read and written was 3 % of a block's write.
    state_cache: std::sync::Mutex<StateCache>,
}

type StateCache = std::collections::HashMap<Vec<u8>, Vec<u8>, foldhash::fast::RandomState>;

/// Bytes per second RocksDB's flushes and compactions may write.
pub const BACKGROUND_WRITE_BYTES_PER_S: i64 = 48 << 20;

/// Entries of the state cache; when full it is emptied (the hot set refills it at once).
pub const STATE_CACHE_ENTRIES_MAX: usize = 65_536;
/// Largest value the state cache keeps.
pub const STATE_CACHE_VALUE_BYTES_MAX: usize = 256;

fn backend(e: rocksdb::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn at_height(height: u64) -> impl Fn(rocksdb::Error) -> StoreError {
    move |e| StoreError::Corrupt {
        height,
        reason: format!("storage engine: {e}"),
    }
}

pub fn tx_key(location: TxLocation) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&location.height.to_be_bytes());
    key[8..].copy_from_slice(&location.index.to_be_bytes());
    key
}

fn index_key(index: &str, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + index.len() + key.len());
    push_index_key(&mut out, index, key);
    out
}

fn push_index_key(out: &mut Vec<u8>, index: &str, key: &[u8]) {
    out.push(index.len() as u8);
    out.extend_from_slice(index.as_bytes());
    out.extend_from_slice(key);
}

/// Space the store takes on disk.
#[derive(Debug, Clone, Copy)]
pub struct DiskUsage {
    /// Live SST files (the data once flushed).
    pub sst_bytes: u64,
    /// Write-ahead log files not yet obsolete.
    pub wal_bytes: u64,
}

/// Bytes of write-ahead log files in the store at `path` (none if it does not exist yet): what
/// opening it after a crash replays.
pub fn wal_bytes_at(path: &Path) -> Result<u64, StoreError> {
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(StoreError::Backend(error.to_string())),
    };
    let mut bytes = 0;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::Backend(e.to_string()))?;
        if entry.file_name().to_string_lossy().ends_with(".log") {
            bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    Ok(bytes)
}

impl RocksStore {
    fn cache(&self) -> std::sync::MutexGuard<'_, StateCache> {
        self.state_cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Caches state values just read from RocksDB: the small ones, and only if no append ran
    /// during the read (`quiet`: the caller held the head's read lock, see `state_cache`). A
    /// full cache starts over.
    fn remember<'a>(&self, quiet: bool, read: impl Iterator<Item = (&'a [u8], &'a Vec<u8>)>) {
        if !quiet {
            return;
        }
        let fill: Vec<(Vec<u8>, Vec<u8>)> = read
            .filter(|(_, value)| value.len() <= STATE_CACHE_VALUE_BYTES_MAX)
            .map(|(key, value)| (key.to_vec(), value.clone()))
            .collect();
        if fill.is_empty() {
            return;
        }
        let mut cache = self.cache();
        if cache.len() + fill.len() > STATE_CACHE_ENTRIES_MAX {
            cache.clear();
        }
        cache.extend(fill);
    }

    fn options() -> Options {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        // Transactions are signatures and hashes: compression gains little and costs CPU.
        options.set_compression_type(DBCompressionType::None);
        options.set_max_background_jobs(2);
        // Bloom filters: only in the families that need them ([`RocksStore::cf_options`]).
        //
        // After a crash the unflushed memtables are replayed from the write-ahead log before the
        // node can serve: smaller memtables bound that replay (a restarted validator's start-up).
        options.set_write_buffer_size(32 << 20);
        // Up to three full memtables may wait for their flush (rate-limited, see
        // `open_db_with`) before writes stall: at half load with two, the p99 commit latency was
        // 199–349 ms; with four (and flushes then at low CPU priority), 135–173 ms.
        options.set_max_write_buffer_number(4);
        // The meta column family (safety state, a few bytes per step) flushes rarely and would
        // keep every log file alive: past this size RocksDB flushes the families holding the
        // oldest log, which bounds the replay too.
        options.set_max_total_wal_size(64 << 20);
        options
    }

    /// [`RocksStore::options`], plus memtable and SST bloom filters in the two families whose
    /// point lookups mostly ask for absent keys: `state` (a commission looks up every new serial;
    /// without the filter each lookup walked the memtables' skip lists, `pharmalink
    /// commit-bench`: execute 16.4–17.3 -> 13.2–13.5 µs/tx) and `tx_locations` (admission asks
    /// whether each new transaction is already in a block). The other families are read by
    /// height, by scans or for keys that exist: a memtable filter there cost a random cache line
    /// per insert for nothing (on every family: write 12.9 -> 18.5 µs/tx, execution unchanged),
    /// and an SST filter a hash per key in every flush.
    fn cf_options(name: &str) -> Options {
        let mut options = Self::options();
        if name == CF_STATE || name == CF_TX_LOCATIONS {
            options.set_memtable_prefix_bloom_ratio(0.05);
            options.set_memtable_whole_key_filtering(true);
            // SST bloom filters answer the same absent keys without reading SST blocks.
            let mut table = BlockBasedOptions::default();
            table.set_bloom_filter(10.0, false);
            table.set_whole_key_filtering(true);
            options.set_block_based_table_factory(&table);
        }
        options
    }

    fn open_db(path: &Path) -> Result<DB, StoreError> {
        if path.join("CURRENT").exists() {
            // An existing store first opens without the background write limit: after a crash,
            // opening replays the write-ahead log and flushes it, and throttled that flush made
            // a restarted validator's start-up several times longer. Closed again, the store
            // then reopens at once (nothing left to replay).
            drop(Self::open_db_with(path, false)?);
        }
        Self::open_db_with(path, true)
    }

    fn open_db_with(path: &Path, throttled: bool) -> Result<DB, StoreError> {
        let mut options = Self::options();
        // Compactions run at the lowest CPU priority (a setting of the process's low-priority
        // RocksDB thread pool): on a busy machine the consensus loop and the commits clients
        // wait on go first, and compactions take the idle time (they catch up when writes stall
        // on them, which frees the CPU for them). Flushes (the high-priority pool) keep the
        // normal priority: starved at saturation, they left 115-159 MB of write-ahead log
        // unflushed, which a validator killed then replayed for 0.43-0.76 s before it could
        // serve (`pharmalink-testnet bench` catch-up 4.7-5.9x the network's rate over seven
        // runs); at normal priority 69-86 MB, 0.22-0.38 s (5.7-6.8x over five), with the same
        // throughput and half-load latency.
        if let Ok(mut env) = rocksdb::Env::new() {
            env.lower_thread_pool_cpu_priority();
            options.set_env(&env);
        }
        if throttled {
            // Flushes and compactions write at most this much: unthrottled, they came in bursts
            // (all validators of a machine at once) that delayed the synced WAL writes commits
            // wait on. With it, commit latency p99 at half the sustained load went from 130–596
            // ms to 77–216 ms over six runs (4 validators on 2 cores); the WAL is not limited.
            options.set_ratelimiter(BACKGROUND_WRITE_BYTES_PER_S, 100_000, 10);
        }
        let descriptors = COLUMN_FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, Self::cf_options(name)));
        DB::open_cf_descriptors(&options, path, descriptors).map_err(backend)
    }

    /// Opens the store at `path` for `genesis`, creating it if new. A store created for another
    /// genesis is refused.
    pub fn open(path: &Path, genesis: &Genesis) -> Result<RocksStore, StoreError> {
        Self::open_with_genesis_state(path, genesis, || Ok((Vec::new(), Vec::new())))
    }

    /// [`RocksStore::open`], and when the store is new, writes the application's genesis
    /// state and index entries (from `genesis_effects`) in the same atomic batch as the genesis.
    pub fn open_with_genesis_state(
        path: &Path,
        genesis: &Genesis,
        genesis_effects: impl FnOnce() -> Result<(Vec<StateWrite>, Vec<IndexEntry>), StoreError>,
    ) -> Result<RocksStore, StoreError> {
        genesis.check()?;
        let db = Self::open_db(path)?;
        let meta = db
            .cf_handle(CF_META)
            .ok_or_else(|| StoreError::Backend("missing column family meta".into()))?;
        match db.get_cf(meta, META_GENESIS).map_err(backend)? {
            Some(stored) => {
                let stored =
                    Genesis::from_canonical_bytes(&stored).map_err(|e| StoreError::Corrupt {
                        height: 0,
                        reason: format!("stored genesis: {e}"),
                    })?;
                if stored.hash() != genesis.hash() {
                    return Err(StoreError::GenesisMismatch {
                        stored: stored.hash(),
                        given: genesis.hash(),
                    });
                }
            }
            None => {
                let mut batch = WriteBatch::default();
                batch.put_cf(meta, META_FORMAT, FORMAT_VERSION);
                batch.put_cf(meta, META_GENESIS, genesis.to_canonical_bytes()?);
                let (writes, entries) = genesis_effects()?;
                let state_cf = db
                    .cf_handle(CF_STATE)
                    .ok_or_else(|| StoreError::Backend("missing column family state".into()))?;
                for write in &writes {
                    if let Some(value) = &write.value {
                        batch.put_cf(state_cf, &write.key, value);
                    }
                }
                let indexes_cf = db
                    .cf_handle(CF_INDEXES)
                    .ok_or_else(|| StoreError::Backend("missing column family indexes".into()))?;
                for entry in &entries {
                    let key = index_key(&entry.index, &entry.key);
                    if entry.remove {
                        batch.delete_cf(indexes_cf, key);
                    } else {
                        batch.put_cf(indexes_cf, key, &entry.value);
                    }
                }
                let mut write = WriteOptions::default();
                write.set_sync(true);
                db.write_opt(batch, &write).map_err(backend)?;
            }
        }
        Self::finish_open(db, path, genesis.clone())
    }

    /// Opens an existing store, taking its genesis from the store itself.
    pub fn open_existing(path: &Path) -> Result<RocksStore, StoreError> {
        if !path.join("CURRENT").exists() {
            return Err(StoreError::Backend(format!(
                "no store at {}",
                path.display()
            )));
        }
        let db = Self::open_db(path)?;
        let meta = db
            .cf_handle(CF_META)
            .ok_or_else(|| StoreError::Backend("missing column family meta".into()))?;
        let bytes = db
            .get_cf(meta, META_GENESIS)
            .map_err(backend)?
            .ok_or_else(|| StoreError::Corrupt {
                height: 0,
                reason: "the store has no genesis".into(),
            })?;
        let genesis = Genesis::from_canonical_bytes(&bytes).map_err(|e| StoreError::Corrupt {
            height: 0,
            reason: format!("stored genesis: {e}"),
        })?;
        Self::finish_open(db, path, genesis)
    }

    fn finish_open(db: DB, path: &Path, genesis: Genesis) -> Result<RocksStore, StoreError> {
        let store = RocksStore {
            db,
            path: path.to_owned(),
            genesis,
            head: std::sync::RwLock::new(None),
            sync_writes: true,
            state_cache: std::sync::Mutex::default(),
        };
        let format = store
            .db
            .get_cf(store.cf(CF_META)?, META_FORMAT)
            .map_err(backend)?;
        if format.as_deref() != Some(FORMAT_VERSION) {
            return Err(StoreError::Backend(format!(
                "store format {:?} is not {:?}",
                format.map(|f| String::from_utf8_lossy(&f).into_owned()),
                String::from_utf8_lossy(FORMAT_VERSION)
            )));
        }
        if let Some(bytes) = store
            .db
            .get_cf(store.cf(CF_META)?, META_HEAD)
            .map_err(backend)?
        {
            let head: ChainHead = borsh::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                height: 0,
                reason: format!("stored head: {e}"),
            })?;
            // The head must agree with the block it names.
            let header = store.header(head.height)?.ok_or(StoreError::Corrupt {
                height: head.height,
                reason: "head block is missing".into(),
            })?;
            if header.hash() != head.block_hash {
                return Err(StoreError::Corrupt {
                    height: head.height,
                    reason: "head hash differs from the stored header".into(),
                });
            }
            *store
                .head
                .write()
                .map_err(|_| StoreError::Backend("head lock poisoned".into()))? = Some(head);
        }
        Ok(store)
    }

    /// For benchmarks only: turn off the WAL sync (acknowledged data could then be lost on a
    /// power failure; a process kill still loses nothing, the WAL is written).
    pub fn set_sync_writes(&mut self, sync: bool) {
        self.sync_writes = sync;
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError::Backend(format!("missing column family {name}")))
    }

    /// Flushes memtables to SST files (for measurements and clean shutdowns).
    pub fn flush(&self) -> Result<(), StoreError> {
        for name in COLUMN_FAMILIES {
            self.db.flush_cf(self.cf(name)?).map_err(backend)?;
        }
        Ok(())
    }

    pub fn disk_usage(&self) -> Result<DiskUsage, StoreError> {
        let mut sst_bytes = 0;
        for file in self.db.live_files().map_err(backend)? {
            sst_bytes += file.size as u64;
        }
        Ok(DiskUsage {
            sst_bytes,
            wal_bytes: wal_bytes_at(&self.path)?,
        })
    }

    fn read_header_unchecked(&self, height: u64) -> Result<Option<BlockHeader>, StoreError> {
        let Some(bytes) = self
            .db
            .get_pinned_cf(self.cf(CF_HEADERS)?, height.to_be_bytes())
            .map_err(at_height(height))?
        else {
            return Ok(None);
        };
        let header =
            BlockHeader::from_canonical_bytes(&bytes).map_err(|e| StoreError::Corrupt {
                height,
                reason: format!("header: {e}"),
            })?;
        if header.height != height {
            return Err(StoreError::Corrupt {
                height,
                reason: format!("header stored at this height says height {}", header.height),
            });
        }
        Ok(Some(header))
    }
}

impl LedgerRead for RocksStore {
    fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    fn head(&self) -> Result<Option<ChainHead>, StoreError> {
        Ok(self
            .head
            .read()
            .map_err(|_| StoreError::Backend("head lock poisoned".into()))?
            .clone())
    }

    /// The header, checked against the block hash its certificate signs.
    fn header(&self, height: u64) -> Result<Option<BlockHeader>, StoreError> {
        let Some(header) = self.read_header_unchecked(height)? else {
            return Ok(None);
        };
        let certificate = self.certificate(height)?.ok_or(StoreError::Corrupt {
            height,
            reason: "the header has no certificate".into(),
        })?;
        let hash = header.hash();
        if hash != certificate.block_hash {
            return Err(StoreError::Corrupt {
                height,
                reason: format!(
                    "header hashes to {hash} but the certificate signs {}",
                    certificate.block_hash
                ),
            });
        }
        Ok(Some(header))
    }

    fn block(&self, height: u64) -> Result<Option<Block>, StoreError> {
        let Some(header) = self.header(height)? else {
            return Ok(None);
        };
        let mut txs = Vec::with_capacity(header.tx_count as usize);
        let start = tx_key(TxLocation { height, index: 0 });
        for item in self.db.iterator_cf(
            self.cf(CF_TXS)?,
            IteratorMode::From(&start, Direction::Forward),
        ) {
            let (key, value) = item.map_err(at_height(height))?;
            if key.len() != 12 || key[..8] != height.to_be_bytes() {
                break;
            }
            let tx =
                Transaction::from_canonical_bytes(&value).map_err(|e| StoreError::Corrupt {
                    height,
                    reason: format!("transaction {}: {e}", txs.len()),
                })?;
            txs.push(tx);
            if txs.len() > header.tx_count as usize {
                break;
            }
        }
        let block = Block { header, txs };
        block.check().map_err(|e| StoreError::Corrupt {
            height,
            reason: e.to_string(),
        })?;
        block.verify_tx_root().map_err(|e| StoreError::Corrupt {
            height,
            reason: e.to_string(),
        })?;
        Ok(Some(block))
    }

    fn certificate(&self, height: u64) -> Result<Option<CommitCertificate>, StoreError> {
        let Some(bytes) = self
            .db
            .get_pinned_cf(self.cf(CF_CERTIFICATES)?, height.to_be_bytes())
            .map_err(at_height(height))?
        else {
            return Ok(None);
        };
        let certificate =
            CommitCertificate::from_canonical_bytes(&bytes).map_err(|e| StoreError::Corrupt {
                height,
                reason: format!("certificate: {e}"),
            })?;
        if certificate.height != height {
            return Err(StoreError::Corrupt {
                height,
                reason: format!(
                    "certificate stored at this height is for {}",
                    certificate.height
                ),
            });
        }
        Ok(Some(certificate))
    }

    fn tx_location(&self, tx_hash: &Hash) -> Result<Option<TxLocation>, StoreError> {
        let Some(bytes) = self
            .db
            .get_pinned_cf(self.cf(CF_TX_LOCATIONS)?, tx_hash.as_bytes())
            .map_err(backend)?
        else {
            return Ok(None);
        };
        let (height, index) = match (bytes.get(..8), bytes.get(8..12)) {
            (Some(h), Some(i)) if bytes.len() == 12 => (
                u64::from_be_bytes(h.try_into().unwrap_or_default()),
                u32::from_be_bytes(i.try_into().unwrap_or_default()),
            ),
            _ => {
                return Err(StoreError::Corrupt {
                    height: 0,
                    reason: format!("location of transaction {tx_hash} is malformed"),
                })
            }
        };
        Ok(Some(TxLocation { height, index }))
    }

    /// The transaction at `location`, checked against the block's tx root.
    fn transaction(&self, location: TxLocation) -> Result<Option<Transaction>, StoreError> {
        let height = location.height;
        let Some(bytes) = self
            .db
            .get_pinned_cf(self.cf(CF_TXS)?, tx_key(location))
            .map_err(at_height(height))?
        else {
            return Ok(None);
        };
        let tx = Transaction::from_canonical_bytes(&bytes).map_err(|e| StoreError::Corrupt {
            height,
            reason: format!("transaction {}: {e}", location.index),
        })?;
        Ok(Some(tx))
    }

    fn state(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(value) = self.cache().get(key) {
            return Ok(Some(value.clone()));
        }
        // No append may land between this read and the fill. While one is running (its write
        // can take a sync), read without filling rather than wait for it.
        let no_append = self.head.try_read();
        let value = self.db.get_cf(self.cf(CF_STATE)?, key).map_err(backend)?;
        self.remember(no_append.is_ok(), value.iter().map(|value| (key, value)));
        Ok(value)
    }

    /// One RocksDB `MultiGet` for the keys the cache does not hold: its memtable bloom probes
    /// (a cache miss each, for the new serials a commission looks up) are issued together.
    fn state_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let mut values = vec![None; keys.len()];
        let mut uncached = Vec::new();
        {
            let cache = self.cache();
            for (index, key) in keys.iter().enumerate() {
                match cache.get(*key) {
                    Some(value) => values[index] = Some(value.clone()),
                    None => uncached.push(index),
                }
            }
        }
        if uncached.is_empty() {
            return Ok(values);
        }
        // As in `state`: fill the cache only if no append is running.
        let no_append = self.head.try_read();
        let read = self.db.batched_multi_get_cf(
            self.cf(CF_STATE)?,
            uncached.iter().map(|&index| keys[index]),
            false,
        );
        for (&index, value) in uncached.iter().zip(read) {
            values[index] = value.map_err(backend)?.map(|slice| slice.to_vec());
        }
        self.remember(
            no_append.is_ok(),
            uncached
                .iter()
                .filter_map(|&index| Some((keys[index], values[index].as_ref()?))),
        );
        Ok(values)
    }

    fn index_scan(
        &self,
        index: &str,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        if index.is_empty() || index.len() > INDEX_NAME_BYTES_MAX {
            return Err(StoreError::Backend(format!(
                "index name {index:?} must be 1 to {INDEX_NAME_BYTES_MAX} bytes"
            )));
        }
        let start = index_key(index, prefix);
        let name_len = 1 + index.len();
        let mut out = Vec::new();
        for item in self.db.iterator_cf(
            self.cf(CF_INDEXES)?,
            IteratorMode::From(&start, Direction::Forward),
        ) {
            let (key, value) = item.map_err(backend)?;
            if out.len() >= limit || !key.starts_with(&start) {
                break;
            }
            out.push((key[name_len..].to_vec(), value.to_vec()));
        }
        Ok(out)
    }
}

impl LedgerWrite for RocksStore {
    fn append(&mut self, commit: &BlockCommit) -> Result<ChainHead, StoreError> {
        self.append_shared(commit)
    }
}

impl RocksStore {
    /// Reads a node-local metadata value (not part of the chain: safety state, evidence…).
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.db
            .get_cf(self.cf(CF_META)?, [b"node/", key.as_bytes()].concat())
            .map_err(backend)
    }

    /// Durably writes a node-local metadata value (synced before returning).
    pub fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.put_metas(&[(key, value)])
    }

    /// Durably writes several node-local metadata values in one atomic, synced write.
    pub fn put_metas(&self, entries: &[(&str, &[u8])]) -> Result<(), StoreError> {
        let cf = self.cf(CF_META)?;
        let mut batch = WriteBatch::default();
        for (key, value) in entries {
            batch.put_cf(cf, [b"node/", key.as_bytes()].concat(), value);
        }
        let mut write = WriteOptions::default();
        write.set_sync(self.sync_writes);
        self.db.write_opt(batch, &write).map_err(backend)
    }

    /// Durably deletes a node-local metadata value.
    pub fn delete_meta(&self, key: &str) -> Result<(), StoreError> {
        let mut write = WriteOptions::default();
        write.set_sync(self.sync_writes);
        self.db
            .delete_cf_opt(
                self.cf(CF_META)?,
                [b"node/", key.as_bytes()].concat(),
                &write,
            )
            .map_err(backend)
    }

    /// Node-local metadata entries whose key starts with `prefix` (keys without the prefix).
    pub fn scan_meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.scan_meta_in(prefix, Direction::Forward, usize::MAX)
    }

    /// The last `limit` node-local metadata entries under `prefix`, greatest key first.
    pub fn scan_meta_newest(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.scan_meta_in(prefix, Direction::Reverse, limit)
    }

    fn scan_meta_in(
        &self,
        prefix: &str,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let start = [b"node/", prefix.as_bytes()].concat();
        // Reverse scans start after the prefix's last possible key.
        let from = match direction {
            Direction::Forward => start.clone(),
            Direction::Reverse => [start.as_slice(), &[0xFF; 8]].concat(),
        };
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_META)?, IteratorMode::From(&from, direction))
        {
            let (key, value) = item.map_err(backend)?;
            if !key.starts_with(&start) || out.len() >= limit {
                break;
            }
            out.push((
                String::from_utf8_lossy(&key[start.len()..]).into_owned(),
                value.to_vec(),
            ));
        }
        Ok(out)
    }

    /// `append` through a shared reference, so readers can share the store with the single
    /// writer. Callers must not append concurrently (the node's consensus loop is the only one).
    pub fn append_shared(&self, commit: &BlockCommit) -> Result<ChainHead, StoreError> {
        self.append_shared_hashed(commit, None)
    }

    /// [`RocksStore::append_shared`]; `tx_hashes`: the block's `Block::tx_hashes`, when the
    /// caller has them (checked against the tx root, not recomputed).
    pub fn append_shared_hashed(
        &self,
        commit: &BlockCommit,
        tx_hashes: Option<Vec<Hash>>,
    ) -> Result<ChainHead, StoreError> {
        let mut head_slot = self
            .head
            .write()
            .map_err(|_| StoreError::Backend("head lock poisoned".into()))?;
        let validated =
            validate_commit_detailed(&self.genesis, head_slot.as_ref(), commit, tx_hashes)?;
        let height = validated.head.height;
        // Sized up front: grown by doubling, the batch's buffer (a C++ string, on glibc's
        // allocator) was copied and its fresh pages zeroed several times per block.
        let estimate = 1024
            + validated
                .tx_bytes
                .iter()
                .map(|b| b.len() + 64)
                .sum::<usize>()
            + commit
                .state_writes
                .iter()
                .map(|w| w.key.len() + w.value.as_ref().map_or(0, Vec::len) + 16)
                .sum::<usize>()
            + commit
                .index_entries
                .iter()
                .map(|e| e.index.len() + e.key.len() + e.value.len() + 17)
                .sum::<usize>();
        let mut batch = WriteBatch::with_capacity_bytes(estimate);
        let header_bytes = commit.block.header.to_canonical_bytes()?;
        batch.put_cf(self.cf(CF_HEADERS)?, height.to_be_bytes(), &header_bytes);
        batch.put_cf(
            self.cf(CF_CERTIFICATES)?,
            height.to_be_bytes(),
            commit.certificate.to_canonical_bytes()?,
        );
        // Each column family's keys go in ascending order: the memtable's skip list then reuses
        // its insert position instead of searching from the top for every random key.
        let txs_cf = self.cf(CF_TXS)?;
        let locations_cf = self.cf(CF_TX_LOCATIONS)?;
        let mut locations = Vec::with_capacity(validated.tx_hashes.len());
        for (index, (bytes, hash)) in validated
            .tx_bytes
            .iter()
            .zip(&validated.tx_hashes)
            .enumerate()
        {
            let key = tx_key(TxLocation {
                height,
                index: index as u32,
            });
            batch.put_cf(txs_cf, key, bytes);
            locations.push((hash.as_bytes(), key));
        }
        locations.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (hash, key) in locations {
            batch.put_cf(locations_cf, hash, key);
        }
        let state_cf = self.cf(CF_STATE)?;
        for write in &commit.state_writes {
            match &write.value {
                Some(value) => batch.put_cf(state_cf, &write.key, value),
                None => batch.delete_cf(state_cf, &write.key),
            }
        }
        let indexes_cf = self.cf(CF_INDEXES)?;
        // All keys in one buffer (one allocation per block, not one per entry).
        let mut keys = Vec::with_capacity(
            commit
                .index_entries
                .iter()
                .map(|e| 1 + e.index.len() + e.key.len())
                .sum(),
        );
        let mut entries: Vec<(std::ops::Range<usize>, &IndexEntry)> = commit
            .index_entries
            .iter()
            .map(|entry| {
                let start = keys.len();
                push_index_key(&mut keys, &entry.index, &entry.key);
                (start..keys.len(), entry)
            })
            .collect();
        // Stable: a key put then removed in one block keeps that order.
        entries.sort_by(|a, b| keys[a.0.clone()].cmp(&keys[b.0.clone()]));
        for (range, entry) in entries {
            let key = &keys[range];
            if entry.remove {
                batch.delete_cf(indexes_cf, key);
            } else {
                batch.put_cf(indexes_cf, key, &entry.value);
            }
        }
        let head_bytes =
            borsh::to_vec(&validated.head).map_err(|e| StoreError::Backend(e.to_string()))?;
        batch.put_cf(self.cf(CF_META)?, META_HEAD, head_bytes);
        let mut write = WriteOptions::default();
        write.set_sync(self.sync_writes);
        self.db.write_opt(batch, &write).map_err(backend)?;
        {
            // Still under the head's write lock: see `state_cache`.
            let mut cache = self.cache();
            for write in &commit.state_writes {
                if let Some(cached) = cache.get_mut(&write.key) {
                    match &write.value {
                        Some(value) if value.len() <= STATE_CACHE_VALUE_BYTES_MAX => {
                            cached.clone_from(value)
                        }
                        _ => {
                            cache.remove(&write.key);
                        }
                    }
                }
            }
        }
        *head_slot = Some(validated.head.clone());
        Ok(validated.head)
    }
}

/// The state a block executes on while the previous block's write is still in flight: the
/// store, with that block's state writes laid over it. Block sync executes block N + 1 on it
/// while block N is written (`ConsensusLoop`), so the two overlap on two cores.
///
/// Execution reads state only; every other read would see the store without the block in
/// flight, so it fails loudly instead of answering from a stale head.
pub struct PendingState<'a> {
    store: &'a RocksStore,
    /// The block's state writes by key (the last write of a key wins).
    writes: std::collections::HashMap<&'a [u8], &'a Option<Vec<u8>>, foldhash::fast::RandomState>,
}

impl<'a> PendingState<'a> {
    pub fn new(store: &'a RocksStore, writes: &'a [StateWrite]) -> PendingState<'a> {
        let mut by_key = std::collections::HashMap::with_capacity_and_hasher(
            writes.len(),
            foldhash::fast::RandomState::default(),
        );
        for write in writes {
            by_key.insert(write.key.as_slice(), &write.value);
        }
        PendingState {
            store,
            writes: by_key,
        }
    }

    fn in_flight(what: &str) -> StoreError {
        StoreError::Backend(format!(
            "{what} is not readable while a block's write is in flight (execution reads state only)"
        ))
    }
}

impl LedgerRead for PendingState<'_> {
    fn genesis(&self) -> &Genesis {
        self.store.genesis()
    }

    fn head(&self) -> Result<Option<ChainHead>, StoreError> {
        Err(Self::in_flight("the head"))
    }

    fn header(&self, _height: u64) -> Result<Option<BlockHeader>, StoreError> {
        Err(Self::in_flight("a header"))
    }

    fn block(&self, _height: u64) -> Result<Option<Block>, StoreError> {
        Err(Self::in_flight("a block"))
    }

    fn certificate(&self, _height: u64) -> Result<Option<CommitCertificate>, StoreError> {
        Err(Self::in_flight("a certificate"))
    }

    fn tx_location(&self, _tx_hash: &Hash) -> Result<Option<TxLocation>, StoreError> {
        Err(Self::in_flight("a transaction location"))
    }

    fn transaction(&self, _location: TxLocation) -> Result<Option<Transaction>, StoreError> {
        Err(Self::in_flight("a transaction"))
    }

    fn state(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.writes.get(key) {
            Some(value) => Ok((*value).clone()),
            None => self.store.state(key),
        }
    }

    fn state_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        pharmalink_ledger::store::layered_reads(
            keys,
            |key| self.writes.get(key).map(|value| (*value).clone()),
            |unwritten| self.store.state_many(unwritten),
        )
    }

    fn index_scan(
        &self,
        _index: &str,
        _prefix: &[u8],
        _limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        Err(Self::in_flight("an index"))
    }
}
