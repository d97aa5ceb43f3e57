//! The crash-safe block store: a redb database file. Every accepted block is written and
//! committed (fsync) before `Chain::submit` returns, so a block acknowledged as accepted survives
//! a kill at any instant. Keys are `height ‖ sequence` so reading back in key order replays the
//! blocks parents-first and in arrival order (which decides ties of equal work, as in Core).

use bitcoin::consensus::encode::{deserialize, serialize};
use bitcoin::Block;
use redb::{Database, ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};

/// `height (u32 BE) ‖ sequence (u64 BE)` → the block, consensus-encoded.
const BLOCKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blocks");
/// Settings the chain was created with, so a reopen with other rules is refused.
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store file (first field) could not be opened or created; the second field is why.
    #[error("cannot open the block store {0}: {1}")]
    Open(PathBuf, String),
    /// Another process (another `miner mine` or `miner node` with the same rules and data
    /// directory) holds the store's lock.
    #[error("cannot open the block store {0}: it is in use by another miner process (a `miner node` or `miner mine` with the same --datadir and chain rules); stop that process, mine through it with `miner mine --node URL`, or use another --datadir or --memory")]
    Locked(PathBuf),
    /// The store was created with other chain rules than this run's.
    #[error("the block store {path} was made for another chain ({stored}); this run asks for {wanted}. Use the same settings, or another --datadir")]
    Mismatch {
        /// The store file.
        path: PathBuf,
        /// The rules recorded in the store.
        stored: String,
        /// The rules this run asked for.
        wanted: String,
    },
    /// A read, write or commit of the database failed.
    #[error("block store I/O failed: {0}")]
    Io(String),
    /// A stored block does not decode (the file was damaged or written by something else).
    #[error("the block store holds an undecodable block: {0}")]
    Corrupt(String),
}

/// The file beside each `chain.redb` that records the command-line flags selecting its rules,
/// so `miner node` and `miner mine` can tell a user how to reach the other chains of a data
/// directory.
pub const FLAGS_FILE: &str = "flags.txt";

/// One chain store found under a data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreSummary {
    /// The `chain.redb` file.
    pub path: PathBuf,
    /// The flags that select it (from [`FLAGS_FILE`]), if recorded.
    pub flags: Option<String>,
    /// The rules it was created with, as `Chain::rules` describes them; `None` if unreadable.
    pub rules: Option<String>,
    /// Height of the highest block stored (0: genesis only); `None` if unreadable.
    pub height: Option<u32>,
    /// Another process holds it open.
    pub in_use: bool,
}

/// Every `*/chain.redb` directly under `root`, sorted by path. Each is opened briefly to read
/// its rules and highest block; one held by another process is listed as in use.
pub fn list_stores(root: &Path) -> Vec<StoreSummary> {
    let Ok(dirs) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut found: Vec<StoreSummary> = dirs
        .filter_map(|d| d.ok())
        .map(|d| d.path().join("chain.redb"))
        .filter(|p| p.is_file())
        .map(|path| {
            let flags = path
                .parent()
                .and_then(|d| std::fs::read_to_string(d.join(FLAGS_FILE)).ok())
                .map(|f| f.trim().to_string())
                .filter(|f| !f.is_empty());
            let (rules, height, in_use) = match Database::open(&path) {
                Ok(db) => {
                    let (rules, height) = summarize(&db).unwrap_or((None, None));
                    (rules, height, false)
                }
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => (None, None, true),
                Err(_) => (None, None, false),
            };
            StoreSummary {
                path,
                flags,
                rules,
                height,
                in_use,
            }
        })
        .collect();
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

/// The rules and the highest stored height of an open store.
fn summarize(db: &Database) -> Result<(Option<String>, Option<u32>), StoreError> {
    let read = db.begin_read().map_err(io)?;
    let rules = match read.open_table(META) {
        Ok(meta) => meta
            .get("rules")
            .map_err(io)?
            .map(|v| v.value().to_string()),
        Err(_) => None,
    };
    let height = match read.open_table(BLOCKS) {
        Ok(table) => Some(table.last().map_err(io)?.map_or(0, |(key, _)| {
            let k = key.value();
            if k.len() >= 4 {
                u32::from_be_bytes([k[0], k[1], k[2], k[3]])
            } else {
                0
            }
        })),
        Err(_) => Some(0),
    };
    Ok((rules, height))
}

/// Records `flags` beside the store at `path` (see [`FLAGS_FILE`]) unless already there.
pub fn record_flags(path: &Path, flags: &str) -> Result<(), StoreError> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    let file = dir.join(FLAGS_FILE);
    if std::fs::read_to_string(&file).is_ok_and(|f| f.trim() == flags) {
        return Ok(());
    }
    std::fs::write(&file, format!("{flags}\n")).map_err(io)
}

/// Test hook (for the node's fault tests, never for use): `MINER_TEST_HOOK_FAIL_COMMITS=N`
/// makes the next N block commits of this process fail as a full disk does, and
/// `MINER_TEST_HOOK_COMMIT_DELAY_MS=MS` holds every block commit MS milliseconds longer (a slow
/// fsync). Read once, at the first commit.
mod test_hook {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    struct Hook {
        fail: AtomicU64,
        delay_ms: u64,
    }

    fn hook() -> &'static Hook {
        static HOOK: OnceLock<Hook> = OnceLock::new();
        HOOK.get_or_init(|| {
            let read = |name: &str| {
                std::env::var(name)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            Hook {
                fail: AtomicU64::new(read("MINER_TEST_HOOK_FAIL_COMMITS")),
                delay_ms: read("MINER_TEST_HOOK_COMMIT_DELAY_MS"),
            }
        })
    }

    /// Sleeps the delay, then whether this commit is to fail.
    pub(super) fn before_commit() -> bool {
        let hook = hook();
        if hook.delay_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(hook.delay_ms));
        }
        hook.fail
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }
}

fn io<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Io(e.to_string())
}

/// The open database.
pub struct Store {
    /// `None` after a failed write closed it (redb refuses every later write with "Previous I/O
    /// error occurred" until the database is reopened); the next write reopens it.
    db: Option<Database>,
    path: std::path::PathBuf,
    next_sequence: u64,
}

impl Store {
    /// Opens (or creates) the store at `path` for a chain described by `rules`, and returns it
    /// with every stored block in height, then arrival, order.
    pub fn open(path: &Path, rules: &str) -> Result<(Store, Vec<(u32, Block)>), StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Open(path.into(), e.to_string()))?;
        }
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked(path.into()),
            e => StoreError::Open(path.into(), e.to_string()),
        })?;
        let txn = db.begin_write().map_err(io)?;
        {
            let mut meta = txn.open_table(META).map_err(io)?;
            let stored = meta
                .get("rules")
                .map_err(io)?
                .map(|v| v.value().to_string());
            match stored {
                Some(stored) if stored != rules => {
                    return Err(StoreError::Mismatch {
                        path: path.into(),
                        stored,
                        wanted: rules.to_string(),
                    })
                }
                Some(_) => {}
                None => {
                    meta.insert("rules", rules).map_err(io)?;
                }
            }
            txn.open_table(BLOCKS).map_err(io)?;
        }
        txn.commit().map_err(io)?;
        let mut blocks = Vec::new();
        let mut next_sequence = 0;
        {
            let read = db.begin_read().map_err(io)?;
            let table = read.open_table(BLOCKS).map_err(io)?;
            for row in table.iter().map_err(io)? {
                let (key, value) = row.map_err(io)?;
                let key = key.value();
                if key.len() != 12 {
                    return Err(StoreError::Corrupt(format!("key of {} bytes", key.len())));
                }
                let height = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
                let mut seq = [0u8; 8];
                seq.copy_from_slice(&key[4..12]);
                next_sequence = next_sequence.max(u64::from_be_bytes(seq) + 1);
                let block: Block =
                    deserialize(value.value()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                blocks.push((height, block));
            }
        }
        Ok((
            Store {
                db: Some(db),
                path: path.into(),
                next_sequence,
            },
            blocks,
        ))
    }

    /// Writes blocks in one transaction and commits them durably: all or none.
    pub fn put_many(&mut self, blocks: &[(u32, &Block)]) -> Result<(), StoreError> {
        let first = self.next_sequence;
        if test_hook::before_commit() {
            return Err(StoreError::Io(
                "No space left on device (test hook MINER_TEST_HOOK_FAIL_COMMITS)".into(),
            ));
        }
        let written = (|| {
            let txn = self.db()?.begin_write().map_err(io)?;
            {
                let mut table = txn.open_table(BLOCKS).map_err(io)?;
                for (i, (height, block)) in blocks.iter().enumerate() {
                    let mut key = [0u8; 12];
                    key[..4].copy_from_slice(&height.to_be_bytes());
                    key[4..].copy_from_slice(&(first + i as u64).to_be_bytes());
                    table.insert(&key[..], &serialize(block)[..]).map_err(io)?;
                }
            }
            txn.commit().map_err(io)
        })();
        if written.is_err() {
            // Close it: the next write reopens the file (redb repairs it) once writes can
            // succeed again (disk space freed), instead of failing until a restart.
            self.db = None;
        }
        written?;
        self.next_sequence += blocks.len() as u64;
        Ok(())
    }

    /// Writes one block and commits it durably.
    pub fn put(&mut self, height: u32, block: &Block) -> Result<(), StoreError> {
        self.put_many(&[(height, block)])
    }

    /// The database, reopened first if a failed write closed it.
    fn db(&mut self) -> Result<&Database, StoreError> {
        if self.db.is_none() {
            let db = Database::create(&self.path)
                .map_err(|e| StoreError::Io(format!("reopening {}: {e}", self.path.display())))?;
            self.db = Some(db);
        }
        Ok(self.db.as_ref().expect("just opened"))
    }
}
