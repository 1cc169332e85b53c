//! The durable registration store of the Background Sync engine: SQLite (bundled) in WAL mode,
//! one row per registration, every commit fsynced; damage found and repaired, files changed
//! behind its back caught. The schema, the durability contract and the recovery are in
//! `docs/storage.md`.
//!
//! A crate of its own so that an engine that links its own SQLite (or stores elsewhere) can
//! take the core and `bgsync-store`'s trait without a second SQLite: the facade depends on it
//! behind its default `sqlite` feature.
//!
//! ```
//! use bgsync_store::{RegistrationStore, StoreOp, StoredRegistration};
//! use bgsync_store_sqlite::SqliteStore;
//! use bgsync_types::{Origin, SwRegistrationId, SyncKind, Tag, Timestamp};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let record = StoredRegistration {
//!     origin: Origin::parse("https://mail.example").unwrap(),
//!     partition: Default::default(),
//!     seq: 0,
//!     sw: SwRegistrationId(1),
//!     tag: Tag::from("send-mail"),
//!     kind: SyncKind::OneShot,
//!     attempts: 0,
//!     max_attempts: 3,
//!     next_fire: Timestamp(0),
//!     periodic_interval: None,
//! };
//! {
//!     let mut store = SqliteStore::open(dir.path()).unwrap();
//!     store.commit(&[StoreOp::Put(record.clone())]).unwrap();
//! }
//! assert_eq!(SqliteStore::open(dir.path()).unwrap().load_all().unwrap(), vec![record]);
//! ```

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bgsync_types::{Origin, Partition, SwRegistrationId, SyncKind, Tag, Timestamp};
use rusqlite::types::{FromSqlError, FromSqlResult, ValueRef};
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};

use bgsync_store::{
    Recovery, RegistrationStore, ServiceWorkerIdRecord, StoreError, StoreOp, StoredRegistration,
};

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "background-sync.sqlite";
/// The lock file's name inside the data directory; held for as long as the store is open.
pub const LOCK_FILE: &str = "background-sync.lock";
/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 7;

/// Schema migrations: entry `i` takes a database from version `i` to version `i + 1`. A new
/// version appends an entry; existing entries never change.
const MIGRATIONS: &[&str] = &[
    // 0 → 1: the first schema. The primary key serves per-service-worker lookups and single-row
    // writes; the two indexes serve clearing an origin and finding the soonest due. Tags are
    // UTF-16BE blobs, so lone surrogates survive and blob order is code-unit order.
    "CREATE TABLE registrations (
        sw INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        tag BLOB NOT NULL,
        origin TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        max_attempts INTEGER NOT NULL,
        next_fire INTEGER NOT NULL,
        periodic_interval_ms INTEGER,
        PRIMARY KEY (sw, kind, tag)
     ) WITHOUT ROWID;
     CREATE INDEX registrations_by_origin ON registrations (origin);
     CREATE INDEX registrations_by_next_fire ON registrations (next_fire);",
    // 1 → 2: the profile's identity and its count of commits, which the lock file records too,
    // so that another profile's write-ahead log, or a log lost after a crash, is recognised.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;",
    // 2 → 3: each tag stored once, in WTF-8 (UTF-8 that also carries lone surrogates), and a
    // checksum per row. The table is keyed by (sw, kind, tag) as before, but has no secondary
    // index: in a WITHOUT ROWID table every index carries the key, so each index stored the tag
    // again (three copies in UTF-16 in version 2). The next-fire index was never queried (the
    // engine keeps its timers in memory), and clearing an origin, which is rare, scans the
    // table. Rows stay in key order: start-up reads them grouped as the scheduler keeps them,
    // and a commit of neighbouring tags writes neighbouring pages. The rows are copied by
    // `tags_once` after this creates the table.
    "CREATE TABLE registrations_v3 (
        sw INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        tag BLOB NOT NULL,
        origin TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        max_attempts INTEGER NOT NULL,
        next_fire INTEGER NOT NULL,
        periodic_interval_ms INTEGER,
        checksum INTEGER NOT NULL,
        PRIMARY KEY (sw, kind, tag)
     ) WITHOUT ROWID;",
    // 3 → 4: stable service worker registration ids under the engine's key for them (storage
    // key, scope URL), for engines whose own ids last one session.
    "CREATE TABLE service_worker_ids (
        key TEXT NOT NULL,
        scope TEXT NOT NULL,
        id INTEGER NOT NULL,
        PRIMARY KEY (key, scope)
     ) WITHOUT ROWID;",
    // 4 → 5: the storage partition of each registration's service worker registration (with
    // the origin, its storage key); '' is the default partition, which every older row is in.
    // A row in the default partition keeps its checksum (`row_checksum` hashes a partition only
    // when there is one), so no row is rewritten.
    "ALTER TABLE registrations ADD COLUMN partition TEXT NOT NULL DEFAULT '';",
    // 5 → 6: each registration's place in its service worker registration's list, so that
    // getTags() answers in the order of registration (the spec's list order) after a restart
    // too. Older rows are 0, ordered among themselves by key; as with the partition, the
    // checksum hashes it only when it is not 0, so no row is rewritten.
    "ALTER TABLE registrations ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;",
    // 6 → 7: the six integers outside the key and the storage key (attempts, max_attempts,
    // next_fire, periodic_interval_ms, checksum, seq) in one blob, `fields` (see
    // [`pack_fields`]): start-up reads six columns a row instead of eleven, and the column
    // calls through rusqlite and SQLite's record decoding were most of its reading time
    // (docs/performance.md, § 8). The values, and so the checksums, are unchanged. The rows
    // are copied by `fields_packed` after this creates the table.
    "CREATE TABLE registrations_v7 (
        sw INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        tag BLOB NOT NULL,
        origin TEXT NOT NULL,
        partition TEXT NOT NULL,
        fields BLOB NOT NULL,
        PRIMARY KEY (sw, kind, tag)
     ) WITHOUT ROWID;",
];

/// Migration 2 → 3, after its SQL: copies every row with its tag re-encoded and hashed, then
/// puts the new table in place of the old.
fn tags_once(conn: &Connection) -> rusqlite::Result<()> {
    {
        let mut read = conn.prepare(&format!("SELECT {SCHEMA_2_COLUMNS} FROM registrations"))?;
        let mut write = conn.prepare(
            "INSERT INTO registrations_v3 (sw, kind, tag, origin, attempts, max_attempts,
             next_fire, periodic_interval_ms, checksum)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        let mut rows = read.query([])?;
        while let Some(r) = rows.next()? {
            let row = row_of_schema_2(RawRow::read_wide(r)?).map_err(|cause| {
                rusqlite::Error::FromSqlConversionFailure(
                    2,
                    rusqlite::types::Type::Blob,
                    cause.into(),
                )
            })?;
            write.execute(params![
                row.sw,
                row.kind,
                row.tag,
                row.origin,
                row.attempts,
                row.max_attempts,
                row.next_fire,
                row.periodic_interval_ms,
                row.checksum,
            ])?;
        }
    }
    conn.execute_batch(
        "DROP TABLE registrations;
         ALTER TABLE registrations_v3 RENAME TO registrations;",
    )
}

/// Migration 6 → 7, after its SQL: copies every row with its six integers packed into
/// `fields`, then puts the new table in place of the old.
fn fields_packed(conn: &Connection) -> rusqlite::Result<()> {
    {
        let mut read = conn.prepare(&format!("SELECT {WIDE_COLUMNS} FROM registrations"))?;
        let mut write = conn.prepare(
            "INSERT INTO registrations_v7 (sw, kind, tag, origin, partition, fields)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut rows = read.query([])?;
        while let Some(r) = rows.next()? {
            let row = RowRef::read_wide(r)?;
            write.execute(params![
                row.sw,
                row.kind,
                row.tag,
                row.origin,
                row.partition,
                pack_fields(&row.fields()),
            ])?;
        }
    }
    conn.execute_batch(
        "DROP TABLE registrations;
         ALTER TABLE registrations_v7 RENAME TO registrations;",
    )
}

/// [`WIDE_COLUMNS`] of a schema 1 or 2 table, which has no checksum, partition or list place.
const SCHEMA_2_COLUMNS: &str = "sw, kind, tag, origin, attempts, max_attempts, next_fire, \
     periodic_interval_ms, 0, '', 0";

/// A row of schema 1 or 2 (its tag in UTF-16BE, no checksum) as schema 3 stores it: the tag in
/// WTF-8, and hashed.
fn row_of_schema_2(mut row: RawRow) -> Result<RawRow, String> {
    if !row.tag.len().is_multiple_of(2) {
        return Err(format!(
            "a version 2 tag of {} bytes is not UTF-16",
            row.tag.len()
        ));
    }
    let units: Vec<u16> = row
        .tag
        .chunks_exact(2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .collect();
    row.tag = tag_to_sql(&Tag::from_utf16(units));
    row.checksum = row_checksum(&row);
    Ok(row)
}

/// A registration store on SQLite: durable, one row per registration, every commit one
/// transaction fsynced before it returns.
///
/// The database lives in `DIR/background-sync.sqlite`, in WAL mode with `synchronous=FULL`, so a
/// commit that returned survives a process crash and a power cut. Two locks keep it to one
/// user: `DIR/background-sync.lock` is held (an advisory `flock`) for as long as the store is
/// open, and the connection holds SQLite's exclusive lock on the database itself, so a second
/// opener gets [`StoreError::InUse`] even if the lock file was deleted.
///
/// Files changed behind the store's back are caught: each commit checks that the database and
/// its write-ahead log are still the files it opened (a deleted or replaced one is rewritten
/// from the open connection, with nothing lost, and reported through
/// [`take_recovery`](RegistrationStore::take_recovery)); and the lock file records the
/// profile's identity and its last acknowledged commit, so that at the next start another
/// profile's log is not replayed and a log deleted after a crash is reported as lost commits.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// Held for the store's lifetime (the OS releases the lock when it closes); records the
    /// profile and its last acknowledged commit.
    lock: File,
    /// The rows read (and so validated) when the store was opened, handed out once.
    loaded: Option<Vec<StoredRegistration>>,
    /// A repair made by a commit, until the engine takes it.
    recovered: Option<Recovery>,
    /// The database file and its log as opened (device, inode).
    db_file: Option<FileId>,
    wal_file: Option<FileId>,
    /// This profile's identity and the number of commits acknowledged, as in the database.
    profile: i64,
    seq: i64,
    /// Where the commits' time goes, when a benchmark asked ([`SqliteStore::time_commits`]).
    phases: Option<std::sync::Arc<CommitPhases>>,
}

/// Where the store's commits spend their time, summed over the commits since
/// [`SqliteStore::time_commits`]: SQLite's statements (each write encoded and applied to the
/// transaction's pages in memory) and its `COMMIT` (the pages written to the write-ahead log,
/// and the log synced). For benchmarks and profiling: two clock readings a commit.
#[derive(Debug, Default)]
pub struct CommitPhases {
    statements_ns: std::sync::atomic::AtomicU64,
    commit_ns: std::sync::atomic::AtomicU64,
    commits: std::sync::atomic::AtomicU64,
}

impl CommitPhases {
    /// The commits timed, and the mean time of a commit's statements and of its `COMMIT`.
    pub fn means(&self) -> (u64, Duration, Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let n = self.commits.load(Relaxed);
        let mean = |ns: &std::sync::atomic::AtomicU64| {
            Duration::from_nanos(ns.load(Relaxed).checked_div(n).unwrap_or(0))
        };
        (n, mean(&self.statements_ns), mean(&self.commit_ns))
    }

    fn add(&self, statements: Duration, commit: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.statements_ns.fetch_add(ns(statements), Relaxed);
        self.commit_ns.fetch_add(ns(commit), Relaxed);
        self.commits.fetch_add(1, Relaxed);
    }
}

impl Drop for SqliteStore {
    /// A clean close moves the log's pages into the database and empties the log, so that the
    /// next start reads one file; only if the files are still the ones this store opened (a
    /// connection never writes into a file that replaced its own). A crash leaves the log,
    /// which the next start replays.
    fn drop(&mut self) {
        let ours = file_id(&self.path) == self.db_file
            && (self.wal_file.is_none() || file_id(&wal_path(&self.path)) == self.wal_file);
        if ours {
            if let Err(e) = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            {
                tracing::warn!(error = %e, "closing the sync registration database: no checkpoint");
            }
        }
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A file's identity on its file system.
type FileId = (u64, u64);

/// The identity of the file now at `path`, if there is one.
///
/// On Linux this asks `statx` for the inode number alone. A `stat` that returns the file's
/// change time marks it as read, and since Linux 6.13 (multigrain timestamps) the next write
/// must then give the file a new fine-grained change time: its inode is dirtied and the next
/// `fsync` commits the file system's journal as well. Asked before every commit, that made
/// each commit about 40 µs slower on ext4 (docs/performance.md, row 2; `cargo xtask bench-one
/// stat-fsync` shows it on a bare file).
#[cfg(target_os = "linux")]
fn file_id(path: &Path) -> Option<FileId> {
    use rustix::fs::{AtFlags, StatxFlags, CWD};
    let s = rustix::fs::statx(CWD, path, AtFlags::empty(), StatxFlags::INO).ok()?;
    let dev = (u64::from(s.stx_dev_major) << 32) | u64::from(s.stx_dev_minor);
    Some((dev, s.stx_ino))
}

/// The identity of the file now at `path`, if there is one.
#[cfg(not(target_os = "linux"))]
fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn wal_path(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}-wal", path.display()))
}

/// The size of a write-ahead log header, and of a frame's header (SQLite's file format, § 4.1).
const WAL_HEADER: u64 = 32;
const WAL_FRAME_HEADER: u64 = 24;
/// Frames reserved beyond the automatic checkpoint's threshold: the log reaches the threshold
/// plus the last transaction's frames before it is checkpointed and restarted (a group commit
/// of 64 registrations is a few dozen frames).
const WAL_RESERVE_SLACK_FRAMES: u64 = 256;

/// Gives the write-ahead log at `path` the room it takes before SQLite checkpoints it and
/// starts again from its beginning: zeros, written and synced once, so that a commit writes
/// inside the file instead of growing it. A commit that grows the log makes its `fdatasync`
/// allocate blocks and write the file's metadata (its size and block map; on a journalled file
/// system, a journal commit); inside the file it writes the data alone. On the ext4 of
/// docs/performance.md, 139–176 µs a one-row commit against 76–83 µs (`cargo xtask bench-one
/// log-growth`; docs/storage.md, "The log's room"). SQLite leaves the log at its size when it
/// starts it again, so without the room the log grows only for the first thousand or so frames
/// after each open — but those are most of the commits of a session that registers a few
/// times.
///
/// Zeros are never a valid log: SQLite reads frames from the header until one's salt or
/// checksum does not match, and a log whose header is zeros is empty. The reserve is written
/// past the log's current end, so a log with frames to replay keeps them. It is best-effort: a
/// file system that cannot take it (full, say) has what was written given back, is logged,
/// and the store works as before.
fn reserve_log(conn: &Connection, path: &Path) {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::FileExt;
    let pragma = |name: &str| -> Option<u64> {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
            .ok()
            .and_then(|v| u64::try_from(v).ok())
    };
    let (Some(page), Some(threshold)) = (pragma("page_size"), pragma("wal_autocheckpoint")) else {
        return;
    };
    let want = WAL_HEADER + (threshold + WAL_RESERVE_SLACK_FRAMES) * (page + WAL_FRAME_HEADER);
    let wal = wal_path(path);
    // The log is SQLite's; with no log yet there is nothing to reserve.
    let Ok(mut file) = OpenOptions::new().write(true).open(&wal) else {
        return;
    };
    // The length by seeking, not `fstat`: reading the change time would make the next write
    // set a fine-grained one and dirty the inode (see `file_id`).
    let Ok(len) = file.seek(SeekFrom::End(0)) else {
        return;
    };
    if len >= want {
        return;
    }
    const CHUNK: u64 = 1 << 16;
    let zeros = vec![0u8; CHUNK as usize];
    let mut at = len;
    let written = loop {
        if at >= want {
            break file.sync_data();
        }
        let n = CHUNK.min(want - at) as usize;
        if let Err(e) = file.write_all_at(&zeros[..n], at) {
            break Err(e);
        }
        at += n as u64;
    };
    if let Err(e) = written {
        let _ = file.set_len(len);
        tracing::warn!(error = %e, log = %wal.display(), "could not reserve the write-ahead log's room; commits grow it instead");
    }
}

/// A store whose directory is locked and whose database is open, but whose rows are not read
/// yet: [`SqliteStore::begin_open`]'s result.
#[derive(Debug)]
pub struct OpeningStore {
    lock: File,
    record: Option<(i64, i64)>,
    path: PathBuf,
    /// The open database and its identity, or why it could not be opened (damage).
    opened: Result<(Connection, i64, i64), String>,
}

impl OpeningStore {
    /// Reads every stored registration, handing each to `f` as it is read, and finishes the
    /// open: the second half of [`SqliteStore::open_or_recover_each`], with its contract (when
    /// the returned recovery is `Some`, what `f` received must be discarded).
    pub fn load_each(
        self,
        f: &mut dyn FnMut(StoredRegistration),
    ) -> Result<(SqliteStore, Option<Recovery>), StoreError> {
        let decoder = self.decoder();
        self.load_batches(&mut |batch| match batch {
            Some(batch) => decoder.decode(batch, f),
            None => Ok(()),
        })
    }

    /// The decoder of the rows [`load_batches`](OpeningStore::load_batches) hands over.
    pub fn decoder(&self) -> RowDecoder {
        RowDecoder::new(self.path.clone())
    }

    /// [`load_each`](OpeningStore::load_each) with the rows' decoding (but for their checks and
    /// origins, which the read does) left to the caller, so that it can run on another thread
    /// than the read: `sink` gets each [`RowBatch`] as it is read, in the table's order, and `None` once every row is read. It
    /// returns the damage a [`RowDecoder`] found in what it was given so far (then the reading
    /// stops, and the database is repaired as `load_each` repairs it), and given `None`, its
    /// verdict on all of them: the open is finished only after it. The contract of `load_each`
    /// holds for what the decoder handed on.
    pub fn load_batches(
        self,
        sink: &mut dyn FnMut(Option<RowBatch>) -> Result<(), StoreError>,
    ) -> Result<(SqliteStore, Option<Recovery>), StoreError> {
        let OpeningStore {
            lock,
            record,
            path,
            opened,
        } = self;
        let (conn, recovery) = match opened {
            Ok((conn, profile, seq)) => match record {
                Some((ours, _)) if ours != profile => {
                    let (conn, r) = reject_foreign(conn, &path, ours, profile, record)?;
                    (conn, Some(r))
                }
                Some((_, acked)) if acked > seq => match load(&conn, &path) {
                    Ok(kept) => (
                        conn,
                        Some(Recovery {
                            moved_to: None,
                            cause: format!(
                                "the database is behind its last acknowledged commit (commit {acked} was acknowledged, the database holds {seq}): its write-ahead log was deleted or rolled back while Background Sync was not running, so the changes acknowledged after commit {seq} are lost"
                            ),
                            kept,
                            dropped: 0,
                            truncated: false,
                            complete: true,
                        }),
                    ),
                    Err(StoreError::Corrupt { cause, .. }) => {
                        drop(conn);
                        let (conn, r) = salvage(&path, cause, record)?;
                        (conn, Some(r))
                    }
                    Err(e) => return Err(e),
                },
                _ => match read_batches(&conn, &path, &mut |batch| sink(Some(batch)))
                    .and_then(|()| sink(None))
                {
                    Ok(()) => (conn, None),
                    Err(StoreError::Corrupt { cause, .. }) => {
                        drop(conn);
                        let (conn, r) = salvage(&path, cause, record)?;
                        (conn, Some(r))
                    }
                    Err(e) => return Err(e),
                },
            },
            Err(cause) => {
                let (conn, r) = salvage(&path, cause, record)?;
                (conn, Some(r))
            }
        };
        let store = SqliteStore::with(conn, path, lock)?;
        store.write_record();
        Ok((store, recovery))
    }
}

/// The identity and commit count the lock file recorded at the last acknowledged commit.
fn read_record(lock: &File) -> Option<(i64, i64)> {
    use std::io::Read;
    let mut text = String::new();
    (&*lock).read_to_string(&mut text).ok()?;
    let mut words = text.split_whitespace();
    if words.next()? != "bgsync-store" {
        return None;
    }
    let profile = words.next()?.parse().ok()?;
    let seq = words.next()?.parse().ok()?;
    Some((profile, seq))
}

/// How the database found at open relates to what the lock file recorded.
enum Identity {
    Consistent,
    /// Another profile's database or log (its identity is not ours).
    Foreign {
        found: i64,
    },
    /// Commits acknowledged before are missing: a log deleted or rolled back.
    Behind,
}

impl SqliteStore {
    /// Opens (creating if need be) the store in `dir`, migrating an older schema, and reads every
    /// row. A damaged file is refused with [`StoreError::Corrupt`]; see
    /// [`open_or_recover`](SqliteStore::open_or_recover).
    pub fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        let lock = lock_dir(dir)?;
        let record = read_record(&lock);
        let path = dir.join(DB_FILE);
        let (conn, rows) = open_db(&path, record)?;
        let mut store = SqliteStore::with(conn, path, lock)?;
        match store.identity(record) {
            Identity::Consistent => {}
            Identity::Foreign { found } => {
                return Err(StoreError::Corrupt {
                    path: store.path.clone(),
                    cause: format!(
                        "the database or its write-ahead log belongs to another profile ({found}, not {})",
                        record.map_or(0, |r| r.0)
                    ),
                })
            }
            Identity::Behind => {}
        }
        store.loaded = Some(rows);
        store.write_record();
        Ok(store)
    }

    fn with(conn: Connection, path: PathBuf, lock: File) -> Result<SqliteStore, StoreError> {
        let (profile, seq) = read_meta(&conn, &path)?;
        reserve_log(&conn, &path);
        Ok(SqliteStore {
            conn,
            db_file: file_id(&path),
            wal_file: file_id(&wal_path(&path)),
            path,
            lock,
            loaded: None,
            recovered: None,
            profile,
            seq,
            phases: None,
        })
    }

    /// Times every commit from now on into `phases` (statements, then `COMMIT`).
    pub fn time_commits(&mut self, phases: std::sync::Arc<CommitPhases>) {
        self.phases = Some(phases);
    }

    /// Compares the opened database with the lock file's record.
    fn identity(&self, record: Option<(i64, i64)>) -> Identity {
        match record {
            Some((profile, _)) if profile != self.profile => Identity::Foreign {
                found: self.profile,
            },
            Some((_, seq)) if seq > self.seq => Identity::Behind,
            _ => Identity::Consistent,
        }
    }

    /// Records the profile and its acknowledged commits in the lock file (no flush: it must
    /// outlive a process crash, which the page cache does).
    fn write_record(&self) {
        use std::os::unix::fs::FileExt;
        let text = format!("bgsync-store {:>20} {:>20}\n", self.profile, self.seq);
        if let Err(e) = self.lock.write_at(text.as_bytes(), 0) {
            tracing::warn!(error = %e, "could not record the last commit in the lock file");
        }
    }

    /// Opens the store in `dir`; if the database is damaged, moves it aside as
    /// `background-sync.sqlite.corrupt-<unix millis>` (with its `-wal` and `-shm` files), logs
    /// it, and starts a fresh database holding every registration that could still be read and
    /// decoded from the damaged one ([`Recovery::kept`]). The damaged file is kept for
    /// inspection. The damaged file may be of an older schema version (a migration that met
    /// damage leaves the file as it was): its rows are read in that version's format. A schema
    /// object this build never creates (an index, a trigger, a view) is damage too. Damage
    /// this read cannot see (an interior page, free space) is found by
    /// [`verify`](RegistrationStore::verify). Another profile's write-ahead log is
    /// moved aside unreplayed; commits found missing are reported.
    pub fn open_or_recover(dir: &Path) -> Result<(SqliteStore, Option<Recovery>), StoreError> {
        let mut rows = Vec::new();
        let (mut store, recovery) = SqliteStore::open_or_recover_each(dir, &mut |r| rows.push(r))?;
        if let Some(r) = &recovery {
            // What was read before the damage was found belongs to the file moved aside; the
            // fresh file holds what the recovery kept.
            rows = r.kept.clone();
        }
        store.loaded = Some(rows);
        Ok((store, recovery))
    }

    /// [`open_or_recover`](SqliteStore::open_or_recover), handing each stored registration to
    /// `f` as it is read instead of keeping them all: a start-up of a million registrations
    /// never holds them twice. When the returned recovery is `Some`, what `f` received (if
    /// anything) must be discarded: the store holds [`Recovery::kept`] instead.
    pub fn open_or_recover_each(
        dir: &Path,
        f: &mut dyn FnMut(StoredRegistration),
    ) -> Result<(SqliteStore, Option<Recovery>), StoreError> {
        SqliteStore::begin_open(dir)?.load_each(f)
    }

    /// The first half of [`open_or_recover_each`](SqliteStore::open_or_recover_each), the part
    /// that takes constant time: takes the directory's lock, opens the database and brings its
    /// schema up to date (constant but for the first open after an upgrade whose migration
    /// rewrites the rows, 2 → 3 and 6 → 7: 2.5–4.4 s for a million rows, once; `cargo xtask
    /// bench-one migrate`). What can fail at once fails here ("already in use", a schema newer
    /// than this build, an unreadable directory); a damaged file is not an error yet but is
    /// repaired by [`OpeningStore::load_each`], which reads the rows. The two halves may run on
    /// different threads, so that an engine's start-up need not wait for a large read.
    pub fn begin_open(dir: &Path) -> Result<OpeningStore, StoreError> {
        let lock = lock_dir(dir)?;
        let record = read_record(&lock);
        let path = dir.join(DB_FILE);
        let opened = match open_conn(&path, record).and_then(|conn| {
            let (profile, seq) = read_meta(&conn, &path)?;
            Ok((conn, profile, seq))
        }) {
            Ok(opened) => Ok(opened),
            Err(StoreError::Corrupt { cause, .. }) => Err(cause),
            Err(e) => return Err(e),
        };
        Ok(OpeningStore {
            lock,
            record,
            path,
            opened,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Caps the database at its current size, as a full disk would: every write that needs a
    /// new page fails with SQLite's own "database or disk is full" error. `false` lifts the cap.
    /// For failure tests and drills.
    pub fn simulate_disk_full(&self, full: bool) -> Result<(), StoreError> {
        let pages: i64 = if full {
            self.conn
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .map_err(|e| self.read_error(e))?
        } else {
            i64::from(u32::MAX - 1)
        };
        self.conn
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
            .map_err(|e| self.read_error(e))
    }

    /// Makes the connection refuse writes with SQLite's "attempt to write a readonly database"
    /// error, as a file system remounted read-only would; `false` undoes it. For failure tests
    /// and drills.
    pub fn simulate_read_only(&self, read_only: bool) -> Result<(), StoreError> {
        self.conn
            .pragma_update(None, "query_only", read_only)
            .map_err(|e| self.read_error(e))
    }

    /// How many registrations the database holds.
    pub fn count(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM registrations", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n.max(0).unsigned_abs())
            .map_err(|e| self.read_error(e))
    }

    fn read_error(&self, e: rusqlite::Error) -> StoreError {
        classify(&self.path, e, |cause| StoreError::ReadFailed { cause })
    }

    /// Moves the damaged file aside and continues on a fresh one with what could be read.
    fn recover(&mut self, cause: String) -> Result<Recovery, StoreError> {
        // The connection to the damaged file must be closed before it is moved.
        let placeholder = Connection::open_in_memory().map_err(|e| StoreError::Open {
            path: self.path.clone(),
            cause: e.to_string(),
        })?;
        drop(std::mem::replace(&mut self.conn, placeholder));
        let (conn, recovery) = salvage(&self.path, cause, Some((self.profile, self.seq)))?;
        reserve_log(&conn, &self.path);
        self.conn = conn;
        self.db_file = file_id(&self.path);
        self.wal_file = file_id(&wal_path(&self.path));
        Ok(recovery)
    }

    /// Closes the connection (it must not touch a new file's log), then opens the file now at
    /// the store's path.
    fn reopen(&mut self) -> Result<(), StoreError> {
        let placeholder = Connection::open_in_memory().map_err(|e| StoreError::Open {
            path: self.path.clone(),
            cause: e.to_string(),
        })?;
        drop(std::mem::replace(&mut self.conn, placeholder));
        self.conn = open_conn(&self.path, Some((self.profile, self.seq)))?;
        reserve_log(&self.conn, &self.path);
        self.db_file = file_id(&self.path);
        self.wal_file = file_id(&wal_path(&self.path));
        Ok(())
    }

    /// Checks that the database and its log are still the files this store opened; if one was
    /// deleted or replaced, rewrites it from the open connection (which still holds everything
    /// committed through its own file handles), so that nothing acknowledged is lost and
    /// nothing foreign is taken in, and records the repair.
    fn check_files(&mut self) -> Result<(), StoreError> {
        let write_failed = |path: &Path, what: &str, e: rusqlite::Error| StoreError::WriteFailed {
            ops: 0,
            cause: format!("{what} (database {}): {e}", path.display()),
        };
        let db_now = file_id(&self.path);
        if db_now != self.db_file {
            let replaced = db_now.is_some();
            let tmp = PathBuf::from(format!("{}.rescue-{}", self.path.display(), now_millis()));
            self.conn
                .execute("VACUUM INTO ?1", [tmp.to_string_lossy()])
                .map_err(|e| write_failed(&self.path, "rewriting the database", e))?;
            let moved = move_aside(&self.path, if replaced { "replaced" } else { "deleted" })?;
            std::fs::rename(&tmp, &self.path).map_err(|e| StoreError::Open {
                path: self.path.clone(),
                cause: format!("could not put the rewritten database in place: {e}"),
            })?;
            self.reopen()?;
            self.recovered = Some(Recovery {
                moved_to: moved,
                cause: if replaced {
                    "the database file was replaced by another file while Background Sync was running; the database was rewritten from the open connection, nothing acknowledged was lost, and the other file was not taken in".into()
                } else {
                    "the database file was deleted while Background Sync was running; it was rewritten from the open connection and nothing acknowledged was lost".into()
                },
                kept: Vec::new(),
                dropped: 0,
                truncated: false,
                complete: true,
            });
            return Ok(());
        }
        let wal_now = file_id(&wal_path(&self.path));
        if self.wal_file.is_some() && wal_now != self.wal_file {
            // The log's frames are still readable through the connection: write them into the
            // database, then start a new log.
            self.conn
                .query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(()))
                .map_err(|e| write_failed(&self.path, "saving a deleted write-ahead log", e))?;
            let placeholder = Connection::open_in_memory().map_err(|e| StoreError::Open {
                path: self.path.clone(),
                cause: e.to_string(),
            })?;
            drop(std::mem::replace(&mut self.conn, placeholder));
            let foreign = match wal_now {
                Some(_) => Some(move_file_aside(&wal_path(&self.path), "foreign")?),
                None => None,
            };
            self.reopen()?;
            self.recovered = Some(Recovery {
                cause: if foreign.is_some() {
                    "the write-ahead log was replaced by another file while Background Sync was running; the open log was written into the database, nothing acknowledged was lost, and the other file was not replayed".into()
                } else {
                    "the write-ahead log was deleted while Background Sync was running; its contents were written into the database and nothing acknowledged was lost".into()
                },
                moved_to: foreign,
                kept: Vec::new(),
                dropped: 0,
                truncated: false,
                complete: true,
            });
        }
        Ok(())
    }

    fn try_commit(&mut self, batch: &[StoreOp]) -> Result<(), rusqlite::Error> {
        write_batch(&mut self.conn, batch, self.phases.as_deref())
    }

    /// A commit went through: count it, record it, and note the log it created.
    fn acknowledged(&mut self) {
        self.seq += 1;
        self.write_record();
        if self.wal_file.is_none() {
            self.wal_file = file_id(&wal_path(&self.path));
        }
    }
}

/// Applies `batch` in one immediate transaction; on error nothing of it is applied. A commit
/// that went through is timed into `phases`, if given.
fn write_batch(
    conn: &mut Connection,
    batch: &[StoreOp],
    phases: Option<&CommitPhases>,
) -> Result<(), rusqlite::Error> {
    let started = phases.map(|_| std::time::Instant::now());
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for op in batch {
        match op {
            StoreOp::Put(r) => {
                let row = RawRow {
                    sw: sw_to_sql(r.sw),
                    kind: kind_to_sql(r.kind),
                    tag: tag_to_sql(&r.tag),
                    origin: r.origin.serialize(),
                    attempts: i64::from(r.attempts),
                    max_attempts: i64::from(r.max_attempts),
                    next_fire: time_to_sql(r.next_fire),
                    periodic_interval_ms: r.periodic_interval.map(duration_to_sql),
                    checksum: 0,
                    partition: r.partition.as_str().to_owned(),
                    seq: seq_to_sql(r.seq),
                };
                let row = RawRow {
                    checksum: row_checksum(&row),
                    ..row
                };
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO registrations (sw, kind, tag, origin, partition,
                     fields) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    row.sw,
                    row.kind,
                    row.tag,
                    row.origin,
                    row.partition,
                    pack_fields(&row.fields()),
                ])
            }
            StoreOp::Delete(k) => tx
                .prepare_cached(
                    "DELETE FROM registrations WHERE sw = ?1 AND kind = ?2 AND tag = ?3",
                )?
                .execute(params![
                    sw_to_sql(k.sw),
                    kind_to_sql(k.kind),
                    tag_to_sql(&k.tag)
                ]),
            StoreOp::DeleteServiceWorker(sw) => tx
                .prepare_cached("DELETE FROM registrations WHERE sw = ?1")
                .and_then(|mut s| s.execute(params![sw_to_sql(*sw)])),
            StoreOp::DeleteOrigin(origin) => tx
                .prepare_cached("DELETE FROM registrations WHERE origin = ?1")
                .and_then(|mut s| s.execute(params![origin.serialize()])),
            StoreOp::DeleteStorageKey(key) => tx
                .prepare_cached("DELETE FROM registrations WHERE origin = ?1 AND partition = ?2")
                .and_then(|mut s| {
                    s.execute(params![key.origin.serialize(), key.partition.as_str()])
                }),
            StoreOp::DeleteAll => tx.execute("DELETE FROM registrations", []),
            StoreOp::PutServiceWorkerId(r) => tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO service_worker_ids (key, scope, id) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![r.key, r.scope, sw_to_sql(r.id)]),
        }?;
        // Dropping `tx` on error rolls the whole batch back.
    }
    tx.prepare_cached("UPDATE meta SET value = value + 1 WHERE key = 'commit_seq'")?
        .execute([])?;
    let written = phases.map(|_| std::time::Instant::now());
    tx.commit()?;
    if let (Some(phases), Some(started), Some(written)) = (phases, started, written) {
        phases.add(written - started, written.elapsed());
    }
    Ok(())
}

impl RegistrationStore for SqliteStore {
    fn load_all(&mut self) -> Result<Vec<StoredRegistration>, StoreError> {
        match self.loaded.take() {
            Some(rows) => Ok(rows),
            None => load(&self.conn, &self.path),
        }
    }

    fn commit(&mut self, batch: &[StoreOp]) -> Result<(), StoreError> {
        let failed = |path: &Path, e: rusqlite::Error| StoreError::WriteFailed {
            ops: batch.len(),
            cause: format!("{e} (database {})", path.display()),
        };
        self.check_files()?;
        let e = match self.try_commit(batch) {
            Ok(()) => {
                self.acknowledged();
                return Ok(());
            }
            Err(e) => e,
        };
        match classify(&self.path, e, |cause| StoreError::ReadFailed { cause }) {
            // Damage found by a write: recover as start-up does, then write on the fresh file.
            StoreError::Corrupt { cause, .. } => {
                let recovery = self.recover(cause)?;
                self.recovered = Some(recovery);
                self.try_commit(batch).map_err(|e| failed(&self.path, e))?;
                self.acknowledged();
                Ok(())
            }
            StoreError::ReadFailed { cause } => Err(StoreError::WriteFailed {
                ops: batch.len(),
                cause: format!("{cause} (database {})", self.path.display()),
            }),
            other => Err(other),
        }
    }

    /// SQLite's full `integrity_check`: every page, every b-tree's order, free space (the
    /// schema has no index to check the table against: an index in the file is damage found
    /// at the open). About 2 s for a million registrations, so the engine runs it on the store's
    /// thread after start-up. Damage is recovered as at start-up.
    fn verify(&mut self) -> Result<Option<Recovery>, StoreError> {
        let check = (|| -> Result<Vec<String>, rusqlite::Error> {
            let mut stmt = self.conn.prepare("PRAGMA integrity_check")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect()
        })();
        let cause = match check {
            Ok(lines) if lines.len() == 1 && lines[0] == "ok" => return Ok(None),
            Ok(lines) => format!("integrity check: {}", lines.join("; ")),
            Err(e) => match self.read_error(e) {
                StoreError::Corrupt { cause, .. } => cause,
                other => return Err(other),
            },
        };
        self.recover(cause).map(Some)
    }

    fn load_service_worker_ids(&mut self) -> Result<Vec<ServiceWorkerIdRecord>, StoreError> {
        read_service_worker_ids(&self.conn).map_err(|e| self.read_error(e))
    }

    fn take_recovery(&mut self) -> Option<Recovery> {
        self.recovered.take()
    }
}

/// Takes the data directory's lock, creating the directory if need be.
fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let open_error = |path: &Path, e: std::io::Error| StoreError::Open {
        path: path.to_owned(),
        cause: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| open_error(dir, e))?;
    let lock_path = dir.join(LOCK_FILE);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .map_err(|e| open_error(&lock_path, e))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::InUse { path: lock_path }),
        Err(std::fs::TryLockError::Error(e)) => Err(open_error(&lock_path, e)),
    }
}

/// Opens the database, sets it up, migrates it and reads every row (which validates it).
fn open_db(
    path: &Path,
    record: Option<(i64, i64)>,
) -> Result<(Connection, Vec<StoredRegistration>), StoreError> {
    let conn = open_conn(path, record)?;
    let rows = load(&conn, path)?;
    Ok((conn, rows))
}

/// Opens the database, sets it up and migrates it; reads no row.
fn open_conn(path: &Path, record: Option<(i64, i64)>) -> Result<Connection, StoreError> {
    let open_failed = |e: rusqlite::Error| {
        if matches!(
            e.sqlite_error_code(),
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
        ) {
            return StoreError::InUse {
                path: path.to_owned(),
            };
        }
        classify(path, e, |cause| StoreError::Open {
            path: path.to_owned(),
            cause,
        })
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(open_failed)?;
    // Another user of the database is refused at once, not after a wait.
    conn.busy_timeout(Duration::ZERO).map_err(open_failed)?;
    // Closing a connection never checkpoints by itself: a connection closed after its file was
    // replaced must not write into the new one. A store's clean close checkpoints explicitly
    // (`Drop for SqliteStore`) when its files are still its own.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )
    .map_err(open_failed)?;
    // The database itself is locked for as long as the connection lives, whatever happens to
    // the lock file; the log's index lives in memory.
    let _: String = conn
        .query_row("PRAGMA locking_mode = EXCLUSIVE", [], |r| r.get(0))
        .map_err(open_failed)?;
    // The first statement reads the header: a file that is not a database fails here.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(open_failed)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Open {
            path: path.to_owned(),
            cause: format!("the file system does not support WAL (journal mode {mode})"),
        });
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(open_failed)?;
    migrate(&conn, path)?;
    only_our_schema(&conn, path)?;
    // A new database takes the identity the lock file recorded (its commits are then missing,
    // which the open reports), or a new one.
    let (profile, seq) = record.map_or_else(|| (new_profile(), 0), |(p, _)| (p, 0));
    conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('profile', ?1), ('commit_seq', ?2)",
        params![profile, seq],
    )
    .map_err(open_failed)?;
    Ok(conn)
}

/// A new profile identity: random enough that two profiles never share one.
fn new_profile() -> i64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(now_millis());
    h.write_u32(std::process::id());
    (h.finish() >> 1) as i64
}

fn now_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// The profile identity and commit count the database holds.
fn read_meta(conn: &Connection, path: &Path) -> Result<(i64, i64), StoreError> {
    let get = |key: &str| -> Result<i64, StoreError> {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| classify(path, e, |cause| StoreError::ReadFailed { cause }))?
            .ok_or_else(|| StoreError::Corrupt {
                path: path.to_owned(),
                cause: format!("the {key} row of the identity table is missing"),
            })
    };
    Ok((get("profile")?, get("commit_seq")?))
}

/// At open, the database's identity is not the one the lock file recorded: the write-ahead log
/// is moved aside unreplayed; if the database itself is another profile's, it is moved aside
/// too and the store starts empty. Nothing foreign is taken in.
fn reject_foreign(
    conn: Connection,
    path: &Path,
    ours: i64,
    found: i64,
    record: Option<(i64, i64)>,
) -> Result<(Connection, Recovery), StoreError> {
    drop(conn);
    let wal = wal_path(path);
    let moved_wal = if wal.exists() {
        Some(move_file_aside(&wal, "foreign")?)
    } else {
        None
    };
    let conn = open_conn(path, record)?;
    let (profile, _) = read_meta(&conn, path)?;
    if profile == ours {
        let kept = load(&conn, path)?;
        return Ok((
            conn,
            Recovery {
                moved_to: moved_wal,
                cause: format!(
                    "the write-ahead log belonged to another profile ({found}, not {ours}); it was moved aside and not replayed, so this profile's changes since its last checkpoint, if any, are lost"
                ),
                kept,
                dropped: 0,
                truncated: false,
                complete: true,
            },
        ));
    }
    drop(conn);
    let moved = move_aside(path, "foreign")?;
    let conn = open_conn(path, record)?;
    Ok((
        conn,
        Recovery {
            moved_to: moved.or(moved_wal),
            cause: format!(
                "the database belonged to another profile ({profile}, not {ours}); it was moved aside and this profile starts with no registrations"
            ),
            kept: Vec::new(),
            dropped: 0,
            truncated: false,
            complete: true,
        },
    ))
}

/// Brings the schema to [`SCHEMA_VERSION`], one migration at a time, in one transaction.
fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let failed = |e| {
        classify(path, e, |cause| StoreError::Open {
            path: path.to_owned(),
            cause: format!("schema migration failed: {cause}"),
        })
    };
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .map_err(failed)?;
    let found: Option<i64> = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .optional()
        .map_err(failed)?;
    let from = found.unwrap_or(0);
    if from > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found: from,
            supported: SCHEMA_VERSION,
        });
    }
    if from < 0 {
        return Err(StoreError::Corrupt {
            path: path.to_owned(),
            cause: format!("schema version {from} is negative"),
        });
    }
    if from == SCHEMA_VERSION {
        return Ok(());
    }
    let first = usize::try_from(from).unwrap_or(usize::MAX);
    // Every step in one transaction: a failed migration leaves the file as it was.
    let run = || -> rusqlite::Result<()> {
        conn.execute_batch("BEGIN IMMEDIATE;")?;
        for (version, step) in MIGRATIONS.iter().enumerate().skip(first) {
            conn.execute_batch(step)?;
            if version == 2 {
                tags_once(conn)?;
            }
            if version == 6 {
                fields_packed(conn)?;
            }
        }
        conn.execute_batch(&format!(
            "DELETE FROM schema_version; INSERT INTO schema_version (version) VALUES ({SCHEMA_VERSION}); COMMIT;"
        ))
    };
    if let Err(e) = run() {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(failed(e));
    }
    Ok(())
}

/// The tables a database of [`SCHEMA_VERSION`] holds, and nothing else: it has no index,
/// trigger or view (the table is its key; see migration 2 → 3).
const SCHEMA_TABLES: &[&str] = &[
    "schema_version",
    "meta",
    "registrations",
    "service_worker_ids",
];

/// Refuses, as damage, a file whose schema holds an object this build never creates: an
/// index (the query planner would answer through it, so a damaged one deletes the wrong rows
/// or fails every write, while reading the table at start-up never touches it), a trigger
/// (which acts on every write) or a view. Recovery then keeps every row the table holds. One
/// read of the schema, which SQLite has parsed already: nothing here grows with the rows.
/// SQLite's statistics tables are let be (`ANALYZE` from a shell is not damage); the tables'
/// own columns are checked by our statements compiling.
fn only_our_schema(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let failed = |e| {
        classify(path, e, |cause| StoreError::Open {
            path: path.to_owned(),
            cause: format!("reading the schema: {cause}"),
        })
    };
    let mut stmt = conn
        .prepare("SELECT type, name FROM sqlite_master ORDER BY type, name")
        .map_err(failed)?;
    let objects = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(failed)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(failed)?;
    let foreign: Vec<String> = objects
        .into_iter()
        .filter(|(kind, name)| {
            kind != "table"
                || !(SCHEMA_TABLES.contains(&name.as_str()) || name.starts_with("sqlite_stat"))
        })
        .map(|(kind, name)| format!("{kind} {name}"))
        .collect();
    if foreign.is_empty() {
        return Ok(());
    }
    Err(StoreError::Corrupt {
        path: path.to_owned(),
        cause: format!(
            "the schema holds what this build never creates: {}",
            foreign.join(", ")
        ),
    })
}

/// The columns [`RowRef::read`] reads, in its order: a row of schema 7.
const ROW_COLUMNS: &str = "sw, kind, tag, origin, partition, fields";

/// The columns [`RowRef::read_wide`] reads, in its order: a row of schema 3 to 6, each integer
/// a column of its own.
const WIDE_COLUMNS: &str = "sw, kind, tag, origin, attempts, max_attempts, next_fire, \
     periodic_interval_ms, checksum, partition, seq";

/// One row as SQLite hands it over, before decoding.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRow {
    /// `sw`
    pub sw: i64,
    /// `kind`
    pub kind: i64,
    /// `tag` (WTF-8)
    pub tag: Vec<u8>,
    /// `origin`
    pub origin: String,
    /// `attempts`
    pub attempts: i64,
    /// `max_attempts`
    pub max_attempts: i64,
    /// `next_fire`
    pub next_fire: i64,
    /// `periodic_interval_ms`
    pub periodic_interval_ms: Option<i64>,
    /// `checksum`: [`row_checksum`] of the other fields, as written.
    pub checksum: i64,
    /// `partition` ('' for the default partition)
    pub partition: String,
    /// `seq` (the place in the list; 0 for rows of schema 5 and older)
    pub seq: i64,
}

impl RawRow {
    /// The integers schema 7 keeps in the row's `fields` blob.
    pub fn fields(&self) -> Fields {
        self.as_ref().fields()
    }

    /// Reads a row selected with [`WIDE_COLUMNS`] (or a schema 2 table's [`SCHEMA_2_COLUMNS`]).
    fn read_wide(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
        RowRef::read_wide(r).map(RowRef::to_owned)
    }

    /// The row's fields, borrowed.
    fn as_ref(&self) -> RowRef<'_> {
        RowRef {
            sw: self.sw,
            kind: self.kind,
            tag: &self.tag,
            origin: &self.origin,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            next_fire: self.next_fire,
            periodic_interval_ms: self.periodic_interval_ms,
            checksum: self.checksum,
            partition: &self.partition,
            seq: self.seq,
        }
    }
}

/// A [`RawRow`] whose tag, origin and partition are borrowed from SQLite's row: the start-up
/// read decodes a million rows without copying their text first.
#[derive(Debug, Clone, Copy)]
struct RowRef<'a> {
    sw: i64,
    kind: i64,
    tag: &'a [u8],
    origin: &'a str,
    attempts: i64,
    max_attempts: i64,
    next_fire: i64,
    periodic_interval_ms: Option<i64>,
    checksum: i64,
    partition: &'a str,
    seq: i64,
}

impl<'a> RowRef<'a> {
    /// Reads a row selected with [`ROW_COLUMNS`], with the column types `Row::get` would ask
    /// for (a tag that is not a blob, an origin that is not text, are errors as there); a
    /// `fields` blob [`unpack_fields`] refuses is an error naming the column.
    fn read(r: &'a rusqlite::Row<'_>) -> rusqlite::Result<RowRef<'a>> {
        let fields = borrowed(r, 5, |v| v.as_blob())?;
        let f = unpack_fields(fields).map_err(|cause| {
            rusqlite::Error::FromSqlConversionFailure(
                5,
                rusqlite::types::Type::Blob,
                format!("column fields: {cause}").into(),
            )
        })?;
        Ok(RowRef {
            sw: r.get(0)?,
            kind: r.get(1)?,
            tag: borrowed(r, 2, |v| v.as_blob())?,
            origin: borrowed(r, 3, |v| v.as_str())?,
            attempts: f.attempts,
            max_attempts: f.max_attempts,
            next_fire: f.next_fire,
            periodic_interval_ms: f.periodic_interval_ms,
            checksum: f.checksum,
            partition: borrowed(r, 4, |v| v.as_str())?,
            seq: f.seq,
        })
    }

    /// Reads a row selected with [`WIDE_COLUMNS`], as [`read`](RowRef::read) does.
    fn read_wide(r: &'a rusqlite::Row<'_>) -> rusqlite::Result<RowRef<'a>> {
        Ok(RowRef {
            sw: r.get(0)?,
            kind: r.get(1)?,
            tag: borrowed(r, 2, |v| v.as_blob())?,
            origin: borrowed(r, 3, |v| v.as_str())?,
            attempts: r.get(4)?,
            max_attempts: r.get(5)?,
            next_fire: r.get(6)?,
            periodic_interval_ms: r.get(7)?,
            checksum: r.get(8)?,
            partition: borrowed(r, 9, |v| v.as_str())?,
            seq: r.get(10)?,
        })
    }

    /// The integers schema 7 keeps in the row's `fields` blob.
    fn fields(&self) -> Fields {
        Fields {
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            next_fire: self.next_fire,
            periodic_interval_ms: self.periodic_interval_ms,
            checksum: self.checksum,
            seq: self.seq,
        }
    }

    fn to_owned(self) -> RawRow {
        RawRow {
            sw: self.sw,
            kind: self.kind,
            tag: self.tag.to_vec(),
            origin: self.origin.to_owned(),
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            next_fire: self.next_fire,
            periodic_interval_ms: self.periodic_interval_ms,
            checksum: self.checksum,
            partition: self.partition.to_owned(),
            seq: self.seq,
        }
    }
}

/// Column `idx` of `r` as `as_` borrows it, its failure the error `Row::get` gives for it.
fn borrowed<'a, T>(
    r: &'a rusqlite::Row<'_>,
    idx: usize,
    as_: impl FnOnce(ValueRef<'a>) -> FromSqlResult<T>,
) -> rusqlite::Result<T> {
    let value = r.get_ref(idx)?;
    as_(value).map_err(|e| match e {
        FromSqlError::InvalidType => rusqlite::Error::InvalidColumnType(
            idx,
            r.as_ref()
                .column_name(idx)
                .map_or_else(|_| String::new(), str::to_owned),
            value.data_type(),
        ),
        FromSqlError::Utf8Error(e) => rusqlite::Error::Utf8Error(idx, e),
        e => rusqlite::Error::FromSqlConversionFailure(idx, value.data_type(), Box::new(e)),
    })
}

/// The checksum a row is written with: a 64-bit hash of every field, so that a bit flipped in any
/// of them (which SQLite, having no checksums of its own, cannot see) is found when the row
/// is read.
pub fn row_checksum(row: &RawRow) -> i64 {
    row.as_ref().checksum_of_fields()
}

impl RowRef<'_> {
    /// [`row_checksum`] of these fields.
    fn checksum_of_fields(&self) -> i64 {
        let row = self;
        let mut h = Fnv::new();
        h.i64(row.sw);
        h.i64(row.kind);
        h.bytes(row.tag);
        h.bytes(row.origin.as_bytes());
        h.i64(row.attempts);
        h.i64(row.max_attempts);
        h.i64(row.next_fire);
        match row.periodic_interval_ms {
            None => h.i64(-1),
            Some(ms) => {
                h.i64(1);
                h.i64(ms);
            }
        }
        // Only a partition other than the default is hashed, so that rows written before
        // partitions existed (schema 4) keep their checksums.
        if !row.partition.is_empty() {
            h.bytes(row.partition.as_bytes());
        }
        // Likewise the list position, which rows of schema 5 and older do not have.
        if row.seq != 0 {
            h.i64(row.seq);
        }
        h.finish()
    }
}

/// A 64-bit hash that takes eight bytes a step (a multiply and a shift per word): every bit
/// of the input moves the result, which is what finding a flipped bit needs; it is not meant
/// to resist anyone choosing inputs.
struct Fnv(u64);

impl Fnv {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w).wrapping_mul(Self::K);
        self.0 ^= self.0 >> 29;
    }
    fn i64(&mut self, v: i64) {
        self.word(v as u64);
    }
    /// Length first, so that fields cannot run into each other.
    fn bytes(&mut self, bs: &[u8]) {
        self.i64(bs.len() as i64);
        let mut chunks = bs.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(last));
        }
    }
    fn finish(&self) -> i64 {
        self.0 as i64
    }
}

/// The integers of a row that schema 7 keeps in its `fields` blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields {
    /// `attempts`
    pub attempts: i64,
    /// `max_attempts`
    pub max_attempts: i64,
    /// `next_fire`
    pub next_fire: i64,
    /// `periodic_interval_ms`
    pub periodic_interval_ms: Option<i64>,
    /// `checksum`
    pub checksum: i64,
    /// `seq`
    pub seq: i64,
}

/// A row's `fields` blob (schema 7): its checksum in 8 bytes, little-endian, then `attempts`,
/// `max_attempts`, `next_fire` and `seq`, then `periodic_interval_ms` for a row that has one,
/// each a zigzag LEB128 varint (the shortest: 1 byte for a count, 6 for a time in
/// milliseconds since the epoch). About the bytes the six integer columns took, in one column.
pub fn pack_fields(f: &Fields) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 5 * 10);
    out.extend_from_slice(&f.checksum.to_le_bytes());
    let values = [f.attempts, f.max_attempts, f.next_fire, f.seq];
    for v in values.into_iter().chain(f.periodic_interval_ms) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8 & 0x7F) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }
    out
}

/// Reads a `fields` blob, refusing any bytes [`pack_fields`] never writes: a short or long
/// blob, a varint longer than it needs or than 64 bits.
pub fn unpack_fields(bytes: &[u8]) -> Result<Fields, String> {
    let (checksum, mut rest) = bytes
        .split_first_chunk::<8>()
        .ok_or_else(|| format!("{} bytes, shorter than the checksum's 8", bytes.len()))?;
    let next = |rest: &mut &[u8], name: &str| -> Result<i64, String> {
        let mut z: u64 = 0;
        for i in 0..10 {
            let (&b, tail) = rest
                .split_first()
                .ok_or_else(|| format!("the blob ends inside {name}"))?;
            *rest = tail;
            if i == 9 && b > 1 {
                return Err(format!("{name} does not fit in 64 bits"));
            }
            z |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(format!("{name} is written in more bytes than it needs"));
                }
                return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
            }
        }
        Err(format!("{name} does not fit in 64 bits"))
    };
    let attempts = next(&mut rest, "attempts")?;
    let max_attempts = next(&mut rest, "max_attempts")?;
    let next_fire = next(&mut rest, "next_fire")?;
    let seq = next(&mut rest, "seq")?;
    let periodic_interval_ms = if rest.is_empty() {
        None
    } else {
        let ms = next(&mut rest, "periodic_interval_ms")?;
        if !rest.is_empty() {
            return Err(format!("{} bytes after the last field", rest.len()));
        }
        Some(ms)
    };
    Ok(Fields {
        attempts,
        max_attempts,
        next_fire,
        periodic_interval_ms,
        checksum: i64::from_le_bytes(*checksum),
        seq,
    })
}

/// Decodes a stored row, refusing anything this build would not have written.
pub fn decode_row(row: RawRow) -> Result<StoredRegistration, String> {
    let origin = decode_origin(&row.origin)?;
    decode_with_origin(row.as_ref(), origin)
}

fn decode_origin(text: &str) -> Result<Origin, String> {
    let origin = Origin::parse(text).map_err(|e| format!("origin: {e}"))?;
    if origin.serialize() != text {
        return Err(format!("origin {text:?} is not serialized"));
    }
    Ok(origin)
}

/// Decodes a row whose origin column was already decoded as `origin`.
fn check_row(row: &RowRef<'_>) -> Result<(), String> {
    if row.checksum != row.checksum_of_fields() {
        return Err("its checksum does not match: the row changed after it was written".into());
    }
    Ok(())
}

fn decode_with_origin(row: RowRef<'_>, origin: Origin) -> Result<StoredRegistration, String> {
    check_row(&row)?;
    decode_checked(
        row.sw,
        row.kind,
        row.tag,
        row.partition,
        &row.fields(),
        origin,
    )
}

/// Decodes a row whose checksum was checked and whose origin column was decoded as `origin`.
fn decode_checked(
    sw: i64,
    kind: i64,
    tag: &[u8],
    partition: &str,
    row: &Fields,
    origin: Origin,
) -> Result<StoredRegistration, String> {
    let kind = match kind {
        0 => SyncKind::OneShot,
        1 => SyncKind::Periodic,
        k => return Err(format!("unknown kind {k}")),
    };
    let tag = tag_from_sql_shared(tag)?;
    let attempts = u32::try_from(row.attempts).map_err(|_| format!("attempts {}", row.attempts))?;
    let max_attempts = u32::try_from(row.max_attempts)
        .ok()
        .filter(|m| *m > 0)
        .ok_or_else(|| format!("max_attempts {}", row.max_attempts))?;
    let next_fire =
        u64::try_from(row.next_fire).map_err(|_| format!("next_fire {}", row.next_fire))?;
    let periodic_interval = match (kind, row.periodic_interval_ms) {
        (SyncKind::OneShot, None) => None,
        (SyncKind::Periodic, Some(ms)) => Some(Duration::from_millis(
            u64::try_from(ms).map_err(|_| format!("periodic interval {ms}"))?,
        )),
        (kind, ms) => return Err(format!("{kind:?} registration with interval {ms:?}")),
    };
    Ok(StoredRegistration {
        origin,
        partition: Partition::new(partition),
        seq: u64::try_from(row.seq).map_err(|_| format!("seq {}", row.seq))?,
        sw: SwRegistrationId(sw as u64),
        tag,
        kind,
        attempts,
        max_attempts,
        next_fire: Timestamp(next_fire),
        periodic_interval,
    })
}

fn load(conn: &Connection, path: &Path) -> Result<Vec<StoredRegistration>, StoreError> {
    let failed = |e| classify(path, e, |cause| StoreError::ReadFailed { cause });
    // Sized up front: a million rows must not pay for Vec's doubling at start-up.
    let count: i64 = conn
        .query_row("SELECT count(*) FROM registrations", [], |r| r.get(0))
        .map_err(failed)?;
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    load_each(conn, path, &mut |r| out.push(r))?;
    Ok(out)
}

/// Reads and decodes every row, handing each to `f` as it goes (nothing is kept here).
fn load_each(
    conn: &Connection,
    path: &Path,
    f: &mut dyn FnMut(StoredRegistration),
) -> Result<(), StoreError> {
    let decoder = RowDecoder::new(path.to_owned());
    read_batches(conn, path, &mut |batch| decoder.decode(batch, f))
}

/// Rows in a [`RowBatch`] at most.
pub const BATCH_ROWS: usize = 1_024;

/// Bytes of a [`RowBatch`]'s columns past which it is handed over with fewer rows (rows of long
/// tags).
const BATCH_BYTES: usize = 1 << 20;

/// Reads every row of the table in key order and checks it (its columns' types, its `fields`,
/// its checksum, its key after the last row's), handing the rows to `sink` in batches of at most
/// [`BATCH_ROWS`]; stops at the first error, `sink`'s included.
fn read_batches(
    conn: &Connection,
    path: &Path,
    sink: &mut dyn FnMut(RowBatch) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let failed = |e| classify(path, e, |cause| StoreError::ReadFailed { cause });
    let mut stmt = conn
        .prepare(&format!("SELECT {ROW_COLUMNS} FROM registrations"))
        .map_err(failed)?;
    let mut rows = stmt.query([]).map_err(failed)?;
    let mut order = KeyOrder::default();
    // Many rows share an origin: each origin is decoded once and shared. The rows come in key
    // order, a service worker registration's together, so most rows have the origin of the
    // row before them, which is checked first.
    let mut origins: HashMap<String, Origin> = HashMap::new();
    let mut last: Option<(String, Origin)> = None;
    let mut batch = RowBatch::with_capacity(BATCH_ROWS);
    while let Some(r) = rows.next().map_err(failed)? {
        // Borrowed from SQLite's row: nothing of it is copied but what the decoder needs.
        let row = RowRef::read(r).map_err(failed)?;
        let sw = row.sw;
        let corrupt = |cause: String| StoreError::Corrupt {
            path: path.to_owned(),
            cause: format!("row of service worker registration {sw}: {cause}"),
        };
        if !order.follows(&row) {
            return Err(corrupt(
                "it is not after the row before it in key order (a damaged page can point twice at one row, and at none for another)".into(),
            ));
        }
        check_row(&row).map_err(corrupt)?;
        // The origin's shared value is cloned here, not on the decoding thread, whose stores
        // (the restore's tables) an atomic increment would wait for.
        let origin = match &last {
            Some((text, o)) if text == row.origin => o.clone(),
            _ => {
                let o = match origins.get(row.origin) {
                    Some(o) => o.clone(),
                    None => {
                        let o = decode_origin(row.origin).map_err(corrupt)?;
                        origins.insert(row.origin.to_owned(), o.clone());
                        o
                    }
                };
                last = Some((row.origin.to_owned(), o.clone()));
                o
            }
        };
        batch.push(&row, origin);
        if batch.rows.len() == BATCH_ROWS || batch.bytes.len() >= BATCH_BYTES {
            sink(std::mem::replace(
                &mut batch,
                RowBatch::with_capacity(BATCH_ROWS),
            ))?;
        }
    }
    if !batch.rows.is_empty() {
        sink(batch)?;
    }
    Ok(())
}

/// Rows as the start-up read hands them over: read from the table in key order, checked
/// (column types, `fields`, checksum, key order) and their origins decoded, the rest not yet
/// decoded. A [`RowDecoder`] decodes them, on whichever thread the embedder likes: the cold
/// start reads on one thread and decodes and restores on another (docs/performance.md, § 8). A
/// row's tag and partition are copied back to back into one buffer, so a batch is three
/// allocations whatever its rows.
#[derive(Debug, Default)]
pub struct RowBatch {
    bytes: Vec<u8>,
    rows: Vec<BatchRow>,
}

/// A row of a [`RowBatch`]: its integers and origin, and where its tag and partition end in
/// the batch's bytes (the tag starts where the row before ends).
#[derive(Debug)]
struct BatchRow {
    sw: i64,
    kind: i64,
    fields: Fields,
    origin: Origin,
    /// The ends of the tag and the partition.
    ends: [usize; 2],
}

impl RowBatch {
    fn with_capacity(rows: usize) -> RowBatch {
        RowBatch {
            bytes: Vec::with_capacity(rows * 16),
            rows: Vec::with_capacity(rows),
        }
    }

    /// How many rows the batch holds.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the batch holds no row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn push(&mut self, row: &RowRef<'_>, origin: Origin) {
        self.bytes.extend_from_slice(row.tag);
        let tag_end = self.bytes.len();
        self.bytes.extend_from_slice(row.partition.as_bytes());
        self.rows.push(BatchRow {
            sw: row.sw,
            kind: row.kind,
            fields: row.fields(),
            origin,
            ends: [tag_end, self.bytes.len()],
        });
    }
}

/// Decodes the rows of [`RowBatch`]es: each row's tag, partition and integers. What it refuses
/// is [`StoreError::Corrupt`], as when the rows are read and decoded in one go
/// ([`OpeningStore::load_each`]).
#[derive(Debug)]
pub struct RowDecoder {
    path: PathBuf,
}

impl RowDecoder {
    fn new(path: PathBuf) -> RowDecoder {
        RowDecoder { path }
    }

    /// Decodes `batch`'s rows, handing each registration to `f`; stops at the first damage.
    pub fn decode(
        &self,
        batch: RowBatch,
        f: &mut dyn FnMut(StoredRegistration),
    ) -> Result<(), StoreError> {
        let RowBatch { bytes, rows } = batch;
        let mut start = 0;
        for row in rows {
            let [tag_end, partition_end] = row.ends;
            let column = |from: usize, to: usize| bytes.get(from..to).unwrap_or_default();
            let sw = row.sw;
            let corrupt = |cause: String| StoreError::Corrupt {
                path: self.path.clone(),
                cause: format!("row of service worker registration {sw}: {cause}"),
            };
            // Read as text, so UTF-8 (checked again: no `unsafe` here).
            let partition = std::str::from_utf8(column(tag_end, partition_end))
                .map_err(|e| corrupt(format!("partition: {e}")))?;
            let tag = column(start, tag_end);
            start = partition_end;
            f(
                decode_checked(sw, row.kind, tag, partition, &row.fields, row.origin)
                    .map_err(corrupt)?,
            );
        }
        Ok(())
    }
}

/// The key of the last row read, to check that the table's rows come in strictly increasing
/// key order, as SQLite keeps a `WITHOUT ROWID` table: a row read twice, or out of order, is
/// damage that neither its checksum nor SQLite's read sees (one bit of a cell pointer can
/// point it at another whole row).
#[derive(Debug, Default)]
struct KeyOrder {
    last: Option<(i64, i64, Vec<u8>)>,
}

impl KeyOrder {
    /// Whether `row`'s key is after the last one's (and remembers it if so).
    fn follows(&mut self, row: &RowRef<'_>) -> bool {
        match &mut self.last {
            None => {
                self.last = Some((row.sw, row.kind, row.tag.to_vec()));
                true
            }
            Some((sw, kind, tag)) => {
                let after = (row.sw, row.kind, row.tag) > (*sw, *kind, tag.as_slice());
                if after {
                    (*sw, *kind) = (row.sw, row.kind);
                    tag.clear();
                    tag.extend_from_slice(row.tag);
                }
                after
            }
        }
    }
}

/// Damage becomes [`StoreError::Corrupt`]; anything else is built by `other`. Damage is what a
/// healthy file of ours can never produce: corrupt pages, a file that is not a database, a
/// column of the wrong type, or a schema that does not match its version (a missing table or
/// column). Trouble of the environment — I/O errors, a full disk, permissions, locks, memory —
/// is not damage: the file is left where it is.
fn classify(
    path: &Path,
    e: rusqlite::Error,
    other: impl FnOnce(String) -> StoreError,
) -> StoreError {
    let damaged = match &e {
        rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnIndex(..)
        | rusqlite::Error::InvalidColumnName(..)
        | rusqlite::Error::Utf8Error(..)
        | rusqlite::Error::NulError(..)
        // Our own statements failing to compile means the schema is not ours.
        | rusqlite::Error::SqlInputError { .. } => true,
        _ => matches!(
            e.sqlite_error_code(),
            Some(
                ErrorCode::DatabaseCorrupt
                    | ErrorCode::NotADatabase
                    | ErrorCode::Unknown
                    | ErrorCode::SchemaChanged
                    | ErrorCode::ConstraintViolation
                    | ErrorCode::TypeMismatch
                    | ErrorCode::TooBig
                    | ErrorCode::ParameterOutOfRange
            )
        ),
    };
    if damaged {
        StoreError::Corrupt {
            path: path.to_owned(),
            cause: e.to_string(),
        }
    } else {
        other(e.to_string())
    }
}

/// Moves the damaged database at `path` aside and opens a fresh one holding every row that
/// can still be read and decoded from it: a bad row costs that row, damage in the table stops
/// the reading there, and nothing readable is deleted.
fn salvage(
    path: &Path,
    cause: String,
    record: Option<(i64, i64)>,
) -> Result<(Connection, Recovery), StoreError> {
    let moved_to = move_aside(path, "corrupt")?.unwrap_or_else(|| path.to_owned());
    let mut kept = Vec::new();
    let mut dropped = 0;
    let mut truncated = false;
    let read = (|| -> Result<(), rusqlite::Error> {
        let old = Connection::open_with_flags(
            &moved_to,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // The rows as the damaged file's own schema version stores them: a migration that
        // met the damage left the file as it was, so it may be of an older version (whose
        // secondary indexes are where the damage often is).
        let table = OldTable::of(&old)?;
        salvage_in_key_order(&old, &table, &mut kept, &mut dropped, &mut truncated)
    })();
    if let Err(e) = read {
        tracing::warn!(error = %e, "reading the damaged sync registration database stopped early");
        truncated = true;
    }
    let mut conn = open_conn(path, record)?;
    if let Some((_, seq)) = record {
        // The fresh file continues the profile's count of commits.
        conn.execute("UPDATE meta SET value = ?1 WHERE key = 'commit_seq'", [seq])
            .map_err(|e| StoreError::WriteFailed {
                ops: 0,
                cause: format!("rebuilding the database after damage: {e}"),
            })?;
    }
    // The stable ids too, as far as they read: registrations are kept under them.
    let ids = Connection::open_with_flags(
        &moved_to,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .and_then(|old| read_service_worker_ids(&old))
    .unwrap_or_default();
    let id_ops: Vec<StoreOp> = ids.into_iter().map(StoreOp::PutServiceWorkerId).collect();
    write_batch(&mut conn, &id_ops, None).map_err(|e| StoreError::WriteFailed {
        ops: id_ops.len(),
        cause: format!("rebuilding the database after damage: {e}"),
    })?;
    for chunk in kept.chunks(10_000) {
        let ops: Vec<StoreOp> = chunk.iter().cloned().map(StoreOp::Put).collect();
        write_batch(&mut conn, &ops, None).map_err(|e| StoreError::WriteFailed {
            ops: ops.len(),
            cause: format!("rebuilding the database after damage: {e}"),
        })?;
    }
    let recovery = Recovery {
        moved_to: Some(moved_to),
        cause: format!("the sync registration database was damaged ({cause})"),
        kept,
        dropped,
        truncated,
        complete: false,
    };
    tracing::warn!(file = %path.display(), %recovery, "sync registration database recovered");
    Ok((conn, recovery))
}

/// The `registrations` table of a damaged file, of whichever schema version it is.
struct OldTable {
    /// What to select for the row's reader: a column this version does not have is its
    /// default.
    columns: String,
    /// How its rows are laid out.
    layout: Layout,
}

/// The layouts of the `registrations` table.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Schema 1 and 2: tags in UTF-16BE and no checksum, converted as the migration does.
    Schema2,
    /// Schema 3 to 6: each integer a column ([`WIDE_COLUMNS`]).
    Wide,
    /// Schema 7: the integers in `fields` ([`ROW_COLUMNS`]).
    Packed,
}

impl OldTable {
    /// Reads the table's columns from the file's schema (not from its version row, which may
    /// be the damage).
    fn of(old: &Connection) -> rusqlite::Result<OldTable> {
        let mut stmt = old.prepare("SELECT name FROM pragma_table_info('registrations')")?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        let has = |column: &str| names.iter().any(|n| n == column);
        if has("fields") {
            return Ok(OldTable {
                columns: ROW_COLUMNS.into(),
                layout: Layout::Packed,
            });
        }
        if !has("checksum") {
            return Ok(OldTable {
                columns: SCHEMA_2_COLUMNS.into(),
                layout: Layout::Schema2,
            });
        }
        // Schema 3 to 4 have no partition, 3 to 5 no list place.
        let partition = if has("partition") { "partition" } else { "''" };
        let seq = if has("seq") { "seq" } else { "0" };
        Ok(OldTable {
            columns: format!(
                "sw, kind, tag, origin, attempts, max_attempts, next_fire, \
                 periodic_interval_ms, checksum, {partition}, {seq}"
            ),
            layout: Layout::Wide,
        })
    }

    /// Reads and decodes one row.
    fn decode(&self, r: &rusqlite::Row<'_>) -> Result<StoredRegistration, String> {
        let raw = match self.layout {
            Layout::Packed => RowRef::read(r).map(RowRef::to_owned),
            Layout::Wide | Layout::Schema2 => RawRow::read_wide(r),
        }
        .map_err(|e| e.to_string())?;
        decode_row(if self.layout == Layout::Schema2 {
            row_of_schema_2(raw)?
        } else {
            raw
        })
    }
}

/// Reads the rows of a damaged table in key order; where a page is damaged, goes on after it
/// (from the next service worker registration, skipping further while the seek meets the
/// damage), so that damage costs the rows near it, not the rest of the table. Every schema
/// version is keyed by (sw, kind, tag). An error when the table cannot be read at all.
fn salvage_in_key_order(
    old: &Connection,
    table: &OldTable,
    kept: &mut Vec<StoredRegistration>,
    dropped: &mut u64,
    truncated: &mut bool,
) -> rusqlite::Result<()> {
    let columns = &table.columns;
    let mut from_start = old.prepare(&format!(
        "SELECT {columns} FROM registrations ORDER BY sw, kind, tag"
    ))?;
    let mut after_sw = old.prepare(&format!(
        "SELECT {columns} FROM registrations WHERE sw > ?1 ORDER BY sw, kind, tag"
    ))?;
    let mut resume: Option<i64> = None;
    let mut skip: i64 = 0;
    let mut seen = std::collections::HashSet::new();
    // Bounded: each damaged stretch costs at most 64 seeks.
    for _ in 0..10_000 {
        let rows = match resume {
            None => from_start.query([]),
            Some(sw) => after_sw.query([sw]),
        };
        let Ok(mut rows) = rows else {
            *truncated = true;
            return Ok(());
        };
        let mut last_sw = None;
        let failed = loop {
            match rows.next() {
                Ok(Some(r)) => {
                    if let Ok(sw) = r.get::<_, i64>(0) {
                        last_sw = Some(sw);
                    }
                    match table.decode(r) {
                        // A row read twice (a damaged page pointing at it twice) is kept once.
                        Ok(reg) => {
                            if seen.insert(reg.key()) {
                                kept.push(reg);
                            }
                        }
                        Err(_) => *dropped += 1,
                    }
                }
                Ok(None) => break false,
                Err(_) => break true,
            }
        };
        if !failed {
            return Ok(());
        }
        *truncated = true;
        // Past the damage: after the last service worker registration read, further each time
        // the seek lands in the damage again.
        match last_sw {
            Some(sw) => {
                resume = Some(sw);
                skip = 0;
            }
            None => {
                skip = if skip == 0 { 1 } else { skip.saturating_mul(2) };
                if skip > i64::MAX / 4 {
                    return Ok(());
                }
                resume = Some(resume.unwrap_or(i64::MIN).saturating_add(skip));
            }
        }
    }
    Ok(())
}

fn read_service_worker_ids(conn: &Connection) -> rusqlite::Result<Vec<ServiceWorkerIdRecord>> {
    let mut stmt = conn.prepare("SELECT key, scope, id FROM service_worker_ids")?;
    let rows = stmt.query_map([], |r| {
        Ok(ServiceWorkerIdRecord {
            key: r.get(0)?,
            scope: r.get(1)?,
            id: SwRegistrationId(r.get::<_, i64>(2)? as u64),
        })
    })?;
    rows.collect()
}

/// Renames the database and its companions to `<name>.<label>-<unix millis>`; returns the
/// database's new name (`None` if only companions were there to move).
fn move_aside(path: &Path, label: &str) -> Result<Option<PathBuf>, StoreError> {
    let moved_to = PathBuf::from(format!("{}.{label}-{}", path.display(), now_millis()));
    let main = if path.exists() {
        rename(path, &moved_to)?;
        Some(moved_to.clone())
    } else {
        None
    };
    for suffix in ["-wal", "-shm"] {
        let companion = PathBuf::from(format!("{}{suffix}", path.display()));
        if companion.exists() {
            rename(
                &companion,
                &PathBuf::from(format!("{}{suffix}", moved_to.display())),
            )?;
        }
    }
    Ok(main)
}

/// Renames one file to `<name>.<label>-<unix millis>`.
fn move_file_aside(path: &Path, label: &str) -> Result<PathBuf, StoreError> {
    let moved_to = PathBuf::from(format!("{}.{label}-{}", path.display(), now_millis()));
    rename(path, &moved_to)?;
    Ok(moved_to)
}

fn rename(from: &Path, to: &Path) -> Result<(), StoreError> {
    std::fs::rename(from, to).map_err(|e| StoreError::Open {
        path: from.to_owned(),
        cause: format!("could not move the file aside: {e}"),
    })
}

fn sw_to_sql(sw: SwRegistrationId) -> i64 {
    // Ids use all 64 bits; SQLite integers are signed. The cast is a bijection.
    sw.0 as i64
}

/// A list position (never near 2^63: one per registration ever made).
fn seq_to_sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn kind_to_sql(kind: SyncKind) -> i64 {
    match kind {
        SyncKind::OneShot => 0,
        SyncKind::Periodic => 1,
        // A kind added to the types crate but not yet here: stored as a value decoding
        // refuses, so it can never be read back as another kind.
        _ => i64::MAX,
    }
}

/// A tag as stored: WTF-8, that is UTF-8 in which a lone surrogate is written as the three
/// bytes its code point would take, so every DOMString round-trips (and one that is valid
/// Unicode is plain UTF-8).
fn tag_to_sql(tag: &Tag) -> Vec<u8> {
    let units = tag.as_utf16();
    let mut out = Vec::with_capacity(units.len());
    for c in char::decode_utf16(units.iter().copied()) {
        let cp = match c {
            Ok(c) => u32::from(c),
            Err(e) => u32::from(e.unpaired_surrogate()),
        };
        match cp {
            0..=0x7F => out.push(cp as u8),
            0x80..=0x7FF => out.extend([0xC0 | (cp >> 6) as u8, 0x80 | (cp & 0x3F) as u8]),
            0x800..=0xFFFF => out.extend([
                0xE0 | (cp >> 12) as u8,
                0x80 | ((cp >> 6) & 0x3F) as u8,
                0x80 | (cp & 0x3F) as u8,
            ]),
            _ => out.extend([
                0xF0 | (cp >> 18) as u8,
                0x80 | ((cp >> 12) & 0x3F) as u8,
                0x80 | ((cp >> 6) & 0x3F) as u8,
                0x80 | (cp & 0x3F) as u8,
            ]),
        }
    }
    out
}

/// The UTF-16 code units of a stored tag; refuses bytes [`tag_to_sql`] never writes (invalid
/// or overlong sequences, a surrogate pair written as two lone surrogates).
/// [`tag_from_sql`], as the tag the registration keeps: an ASCII tag (the usual kind) goes
/// into its shared units in one allocation, without a vector first.
fn tag_from_sql_shared(bytes: &[u8]) -> Result<Tag, String> {
    if bytes.is_ascii() {
        let units: std::sync::Arc<[u16]> = bytes.iter().map(|&b| u16::from(b)).collect();
        return Ok(Tag::from_utf16(units));
    }
    tag_from_sql(bytes).map(Tag::from_utf16)
}

fn tag_from_sql(bytes: &[u8]) -> Result<Vec<u16>, String> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Ok(s.encode_utf16().collect());
    }
    let bad = |at: usize| format!("the tag's bytes are not WTF-8 at byte {at}");
    let mut units: Vec<u16> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let (len, min, init) = match b {
            0x00..=0x7F => (1, 0, u32::from(b)),
            0xC2..=0xDF => (2, 0x80, u32::from(b & 0x1F)),
            0xE0..=0xEF => (3, 0x800, u32::from(b & 0x0F)),
            0xF0..=0xF4 => (4, 0x10000, u32::from(b & 0x07)),
            _ => return Err(bad(i)),
        };
        let tail = bytes.get(i + 1..i + len).ok_or_else(|| bad(i))?;
        let mut cp = init;
        for &t in tail {
            if t & 0xC0 != 0x80 {
                return Err(bad(i));
            }
            cp = (cp << 6) | u32::from(t & 0x3F);
        }
        if cp < min || cp > 0x10FFFF {
            return Err(bad(i));
        }
        let trail = (0xDC00..=0xDFFF).contains(&cp);
        let after_lone_lead = units.last().is_some_and(|u| (0xD800..=0xDBFF).contains(u))
            && bytes.get(i.wrapping_sub(3)) == Some(&0xED);
        if trail && after_lone_lead {
            // A pair is written as one four-byte character, never as two halves.
            return Err(bad(i));
        }
        match char::from_u32(cp) {
            Some(c) => {
                let mut buf = [0u16; 2];
                units.extend_from_slice(c.encode_utf16(&mut buf));
            }
            None => units.push(cp as u16),
        }
        i += len;
    }
    Ok(units)
}

fn time_to_sql(t: Timestamp) -> i64 {
    i64::try_from(t.0).unwrap_or(i64::MAX)
}

fn duration_to_sql(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
