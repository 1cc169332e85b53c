//! The durable backend: SQLite in WAL mode, one row per registration.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bgsync_types::{Origin, SwRegistrationId, SyncKind, Tag, Timestamp};
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};

use crate::{Recovery, RegistrationStore, StoreError, StoreOp, StoredRegistration};

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "background-sync.sqlite";
/// The lock file's name inside the data directory; held for as long as the store is open.
pub const LOCK_FILE: &str = "background-sync.lock";
/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 1;

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
];

/// A registration store on SQLite: durable, one row per registration, every commit one
/// transaction fsynced before it returns.
///
/// The database lives in `DIR/background-sync.sqlite`, in WAL mode with `synchronous=FULL`, so a
/// commit that returned survives a process crash and a power cut. `DIR/background-sync.lock` is
/// held (an advisory `flock`) for as long as the store is open: a second opener gets
/// [`StoreError::InUse`] instead of a shared, corruptible file.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// Held for the store's lifetime; the OS releases it when the file closes.
    _lock: File,
    /// The rows read (and so validated) when the store was opened, handed out once.
    loaded: Option<Vec<StoredRegistration>>,
    /// A repair made by a commit that found damage, until the engine takes it.
    recovered: Option<Recovery>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if need be) the store in `dir`, migrating an older schema, and reads every
    /// row. A damaged file is refused with [`StoreError::Corrupt`]; see
    /// [`open_or_recover`](SqliteStore::open_or_recover).
    pub fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        let lock = lock_dir(dir)?;
        let path = dir.join(DB_FILE);
        let (conn, rows) = open_db(&path)?;
        Ok(SqliteStore {
            conn,
            path,
            _lock: lock,
            loaded: Some(rows),
            recovered: None,
        })
    }

    /// Opens the store in `dir`; if the database is damaged, moves it aside as
    /// `background-sync.sqlite.corrupt-<unix millis>` (with its `-wal` and `-shm` files), logs
    /// it, and starts a fresh database holding every registration that could still be read and
    /// decoded from the damaged one ([`Recovery::kept`]). The damaged file is kept for
    /// inspection. Damage this read cannot see (an index, an interior page, free space) is
    /// found by [`verify`](RegistrationStore::verify).
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
    /// never holds them twice. When the returned recovery is `Some`, the file was damaged and
    /// moved aside, and what `f` received before the damage was found must be discarded: the
    /// store holds [`Recovery::kept`] instead.
    pub fn open_or_recover_each(
        dir: &Path,
        f: &mut dyn FnMut(StoredRegistration),
    ) -> Result<(SqliteStore, Option<Recovery>), StoreError> {
        let lock = lock_dir(dir)?;
        let path = dir.join(DB_FILE);
        let attempt = open_conn(&path).and_then(|conn| load_each(&conn, &path, f).map(|()| conn));
        let (conn, recovery) = match attempt {
            Ok(conn) => (conn, None),
            Err(StoreError::Corrupt { cause, .. }) => {
                let (conn, recovery) = salvage(&path, cause)?;
                (conn, Some(recovery))
            }
            Err(e) => return Err(e),
        };
        Ok((
            SqliteStore {
                conn,
                path,
                _lock: lock,
                loaded: None,
                recovered: None,
            },
            recovery,
        ))
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
        let (conn, recovery) = salvage(&self.path, cause)?;
        self.conn = conn;
        Ok(recovery)
    }

    fn try_commit(&mut self, batch: &[StoreOp]) -> Result<(), rusqlite::Error> {
        write_batch(&mut self.conn, batch)
    }
}

/// Applies `batch` in one immediate transaction; on error nothing of it is applied.
fn write_batch(conn: &mut Connection, batch: &[StoreOp]) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for op in batch {
        match op {
            StoreOp::Put(r) => tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO registrations
                         (sw, kind, tag, origin, attempts, max_attempts, next_fire,
                          periodic_interval_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        sw_to_sql(r.sw),
                        kind_to_sql(r.kind),
                        tag_to_sql(&r.tag),
                        r.origin.serialize(),
                        r.attempts,
                        r.max_attempts,
                        time_to_sql(r.next_fire),
                        r.periodic_interval.map(duration_to_sql),
                    ])
                }),
            StoreOp::Delete(k) => tx
                .prepare_cached(
                    "DELETE FROM registrations WHERE sw = ?1 AND kind = ?2 AND tag = ?3",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        sw_to_sql(k.sw),
                        kind_to_sql(k.kind),
                        tag_to_sql(&k.tag)
                    ])
                }),
            StoreOp::DeleteServiceWorker(sw) => tx
                .prepare_cached("DELETE FROM registrations WHERE sw = ?1")
                .and_then(|mut s| s.execute(params![sw_to_sql(*sw)])),
            StoreOp::DeleteOrigin(origin) => tx
                .prepare_cached("DELETE FROM registrations WHERE origin = ?1")
                .and_then(|mut s| s.execute(params![origin.serialize()])),
            StoreOp::DeleteAll => tx.execute("DELETE FROM registrations", []),
        }?;
        // Dropping `tx` on error rolls the whole batch back.
    }
    tx.commit()
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
        let e = match self.try_commit(batch) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        match classify(&self.path, e, |cause| StoreError::ReadFailed { cause }) {
            // Damage found by a write: recover as start-up does, then write on the fresh file.
            StoreError::Corrupt { cause, .. } => {
                let recovery = self.recover(cause)?;
                self.recovered = Some(recovery);
                self.try_commit(batch).map_err(|e| failed(&self.path, e))
            }
            StoreError::ReadFailed { cause } => Err(StoreError::WriteFailed {
                ops: batch.len(),
                cause: format!("{cause} (database {})", self.path.display()),
            }),
            other => Err(other),
        }
    }

    /// SQLite's full `integrity_check`: every page, the table against both indexes, free
    /// space. About 2 s for a million registrations, so the engine runs it on the store's
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
fn open_db(path: &Path) -> Result<(Connection, Vec<StoredRegistration>), StoreError> {
    let conn = open_conn(path)?;
    let rows = load(&conn, path)?;
    Ok((conn, rows))
}

/// Opens the database, sets it up and migrates it; reads no row.
fn open_conn(path: &Path) -> Result<Connection, StoreError> {
    let open_failed = |e| {
        classify(path, e, |cause| StoreError::Open {
            path: path.to_owned(),
            cause,
        })
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(open_failed)?;
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
    Ok(conn)
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
    let steps = MIGRATIONS
        .get(usize::try_from(from).unwrap_or(usize::MAX)..)
        .unwrap_or(&[]);
    let mut batch = String::from("BEGIN IMMEDIATE;\n");
    for step in steps {
        batch.push_str(step);
        batch.push('\n');
    }
    batch.push_str(&format!(
        "DELETE FROM schema_version; INSERT INTO schema_version (version) VALUES ({SCHEMA_VERSION});\nCOMMIT;"
    ));
    if let Err(e) = conn.execute_batch(&batch) {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(failed(e));
    }
    Ok(())
}

/// One row as SQLite hands it over, before decoding.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRow {
    /// `sw`
    pub sw: i64,
    /// `kind`
    pub kind: i64,
    /// `tag` (UTF-16BE)
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
}

/// Decodes a stored row, refusing anything this build would not have written.
pub fn decode_row(row: RawRow) -> Result<StoredRegistration, String> {
    let origin = decode_origin(&row.origin)?;
    decode_with_origin(row, origin)
}

fn decode_origin(text: &str) -> Result<Origin, String> {
    let origin = Origin::parse(text).map_err(|e| format!("origin: {e}"))?;
    if origin.serialize() != text {
        return Err(format!("origin {text:?} is not serialized"));
    }
    Ok(origin)
}

/// Decodes a row whose origin column was already decoded as `origin`.
fn decode_with_origin(row: RawRow, origin: Origin) -> Result<StoredRegistration, String> {
    let kind = match row.kind {
        0 => SyncKind::OneShot,
        1 => SyncKind::Periodic,
        k => return Err(format!("unknown kind {k}")),
    };
    if !row.tag.len().is_multiple_of(2) {
        return Err(format!("tag of {} bytes is not UTF-16", row.tag.len()));
    }
    let units: Vec<u16> = row
        .tag
        .chunks_exact(2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .collect();
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
        sw: SwRegistrationId(row.sw as u64),
        tag: Tag::from_utf16(units),
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
    let failed = |e| classify(path, e, |cause| StoreError::ReadFailed { cause });
    let mut stmt = conn
        .prepare(
            "SELECT sw, kind, tag, origin, attempts, max_attempts, next_fire, periodic_interval_ms
             FROM registrations",
        )
        .map_err(failed)?;
    let rows = stmt
        .query_map([], |r| {
            Ok(RawRow {
                sw: r.get(0)?,
                kind: r.get(1)?,
                tag: r.get(2)?,
                origin: r.get(3)?,
                attempts: r.get(4)?,
                max_attempts: r.get(5)?,
                next_fire: r.get(6)?,
                periodic_interval_ms: r.get(7)?,
            })
        })
        .map_err(failed)?;
    // Many rows share an origin: decode each origin once and share it.
    let mut origins: HashMap<String, Origin> = HashMap::new();
    for row in rows {
        let row = row.map_err(failed)?;
        let sw = row.sw;
        let corrupt = |cause: String| StoreError::Corrupt {
            path: path.to_owned(),
            cause: format!("row of service worker registration {sw}: {cause}"),
        };
        let origin = match origins.get(&row.origin) {
            Some(o) => o.clone(),
            None => {
                let o = decode_origin(&row.origin).map_err(corrupt)?;
                origins.insert(row.origin.clone(), o.clone());
                o
            }
        };
        f(decode_with_origin(row, origin).map_err(corrupt)?);
    }
    Ok(())
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
fn salvage(path: &Path, cause: String) -> Result<(Connection, Recovery), StoreError> {
    let moved_to = move_aside(path)?;
    let mut kept = Vec::new();
    let mut dropped = 0;
    let mut truncated = false;
    let read = (|| -> Result<(), rusqlite::Error> {
        let old = Connection::open_with_flags(
            &moved_to,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let mut stmt = old.prepare(
            "SELECT sw, kind, tag, origin, attempts, max_attempts, next_fire, periodic_interval_ms
             FROM registrations",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(RawRow {
                sw: r.get(0)?,
                kind: r.get(1)?,
                tag: r.get(2)?,
                origin: r.get(3)?,
                attempts: r.get(4)?,
                max_attempts: r.get(5)?,
                next_fire: r.get(6)?,
                periodic_interval_ms: r.get(7)?,
            })
        })?;
        for row in rows {
            match row {
                Ok(raw) => match decode_row(raw) {
                    Ok(r) => kept.push(r),
                    Err(_) => dropped += 1,
                },
                // A value of the wrong type is one bad row; anything else is the table's end.
                Err(
                    rusqlite::Error::InvalidColumnType(..)
                    | rusqlite::Error::FromSqlConversionFailure(..)
                    | rusqlite::Error::IntegralValueOutOfRange(..)
                    | rusqlite::Error::Utf8Error(..),
                ) => dropped += 1,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })();
    if let Err(e) = read {
        tracing::warn!(error = %e, "reading the damaged sync registration database stopped early");
        truncated = true;
    }
    let mut conn = open_conn(path)?;
    for chunk in kept.chunks(10_000) {
        let ops: Vec<StoreOp> = chunk.iter().cloned().map(StoreOp::Put).collect();
        write_batch(&mut conn, &ops).map_err(|e| StoreError::WriteFailed {
            ops: ops.len(),
            cause: format!("rebuilding the database after damage: {e}"),
        })?;
    }
    let recovery = Recovery {
        moved_to,
        cause,
        kept,
        dropped,
        truncated,
    };
    tracing::warn!(file = %path.display(), %recovery, "sync registration database recovered");
    Ok((conn, recovery))
}

/// Renames the database and its companions to `<name>.corrupt-<unix millis>`.
fn move_aside(path: &Path) -> Result<PathBuf, StoreError> {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let moved_to = PathBuf::from(format!("{}.corrupt-{millis}", path.display()));
    let rename = |from: &Path, to: &Path| {
        std::fs::rename(from, to).map_err(|e| StoreError::Open {
            path: from.to_owned(),
            cause: format!("could not move the corrupt file aside: {e}"),
        })
    };
    rename(path, &moved_to)?;
    for suffix in ["-wal", "-shm"] {
        let companion = PathBuf::from(format!("{}{suffix}", path.display()));
        if companion.exists() {
            rename(
                &companion,
                &PathBuf::from(format!("{}{suffix}", moved_to.display())),
            )?;
        }
    }
    Ok(moved_to)
}

fn sw_to_sql(sw: SwRegistrationId) -> i64 {
    // Ids use all 64 bits; SQLite integers are signed. The cast is a bijection.
    sw.0 as i64
}

fn kind_to_sql(kind: SyncKind) -> i64 {
    match kind {
        SyncKind::OneShot => 0,
        SyncKind::Periodic => 1,
    }
}

fn tag_to_sql(tag: &Tag) -> Vec<u8> {
    tag.as_utf16()
        .iter()
        .flat_map(|u| u.to_be_bytes())
        .collect()
}

fn time_to_sql(t: Timestamp) -> i64 {
    i64::try_from(t.0).unwrap_or(i64::MAX)
}

fn duration_to_sql(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
