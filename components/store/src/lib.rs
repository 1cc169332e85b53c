//! The per-origin registration store of the Background Sync engine.
//!
//! The scheduler never writes to a store itself: it emits *persist* effects, each a list of
//! [`StoreOp`]s, and waits for their acknowledgement before it lets their consequences be seen
//! (a `register()` promise resolving, a back-off starting). The driver around it gathers the
//! persist effects that are ready at one moment into one [`RegistrationStore::commit`] call — one
//! transaction, one flush — and acknowledges each of them with that call's result. That is group
//! commit: 64 concurrent `register()` calls cost one flush, not 64.
//!
//! ```
//! use bgsync_store::{MemoryStore, RegistrationStore, StoreOp, StoredRegistration};
//! use bgsync_types::{Origin, Partition, StorageKey, SwRegistrationId, SyncKind, Tag, Timestamp};
//!
//! let mut store = MemoryStore::new();
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
//! store.commit(&[StoreOp::Put(record.clone())]).unwrap();
//! assert_eq!(store.load_all().unwrap(), vec![record]);
//! ```

mod memory;

use std::path::PathBuf;
use std::time::Duration;

use bgsync_types::{Origin, Partition, StorageKey, SwRegistrationId, SyncKind, Tag, Timestamp};

pub use memory::{FaultSwitch, MemoryStore};

/// What identifies a registration in the store: one-shot and periodic registrations may share a
/// tag, so the kind is part of the key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegistrationKey {
    /// The owning service worker registration.
    pub sw: SwRegistrationId,
    /// The kind of sync.
    pub kind: SyncKind,
    /// The tag.
    pub tag: Tag,
}

/// One registration as it is persisted.
///
/// Only what matters after a restart is stored: never the firing or resolved flags. A
/// registration loaded at start-up is pending, keeps its attempt count, and fires when due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRegistration {
    /// The origin that owns the service worker registration.
    pub origin: Origin,
    /// The storage partition of the service worker registration (with `origin`, its storage
    /// key); the default partition when storage is keyed by the origin alone.
    pub partition: Partition,
    /// Its place in its service worker registration's list: registrations made later have
    /// larger numbers, so `getTags()` lists them in the order they were made, across restarts.
    /// 0 for rows written before it was kept (schema 5 and older).
    pub seq: u64,
    /// The owning service worker registration.
    pub sw: SwRegistrationId,
    /// The tag.
    pub tag: Tag,
    /// One-shot or periodic.
    pub kind: SyncKind,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Attempts allowed before the registration is dropped.
    pub max_attempts: u32,
    /// The earliest wall-clock time the registration may fire (the end of its back-off).
    pub next_fire: Timestamp,
    /// For periodic registrations, the requested minimum interval.
    pub periodic_interval: Option<Duration>,
}

impl StoredRegistration {
    /// The storage key of the owning service worker registration.
    pub fn storage_key(&self) -> StorageKey {
        StorageKey {
            origin: self.origin.clone(),
            partition: self.partition.clone(),
        }
    }

    /// The record's key.
    pub fn key(&self) -> RegistrationKey {
        RegistrationKey {
            sw: self.sw,
            kind: self.kind,
            tag: self.tag.clone(),
        }
    }
}

/// One write. A batch of them is applied atomically by [`RegistrationStore::commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// Insert or replace a registration.
    Put(StoredRegistration),
    /// Remove a registration if present.
    Delete(RegistrationKey),
    /// Remove every registration of a service worker registration (it was unregistered).
    DeleteServiceWorker(SwRegistrationId),
    /// Remove every registration of an origin, in every partition (clearing a site's data).
    DeleteOrigin(Origin),
    /// Remove every registration of one storage key: an origin in one partition
    /// (clear-site-data in a partitioned engine, closing a container).
    DeleteStorageKey(StorageKey),
    /// Remove every registration.
    DeleteAll,
    /// Keep a service worker registration's stable id under the engine's key for it.
    PutServiceWorkerId(ServiceWorkerIdRecord),
}

/// A service worker registration's stable id, kept under the engine's own key for it: its
/// storage key (the origin, or the engine's partition key, serialized) and its scope URL. For
/// engines whose ids last one session (`BackgroundSync::service_worker_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceWorkerIdRecord {
    /// The storage key.
    pub key: String,
    /// The scope URL.
    pub scope: String,
    /// The id given to it.
    pub id: SwRegistrationId,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A write could not be made durable; nothing of the batch was applied and everything
    /// committed before is still there.
    #[error("could not commit {ops} registration change(s): {cause}")]
    WriteFailed {
        /// How many operations the failed batch held.
        ops: usize,
        /// What the backend reported.
        cause: String,
    },
    /// The stored registrations could not be read.
    #[error("could not read the stored registrations: {cause}")]
    ReadFailed {
        /// What the backend reported.
        cause: String,
    },
    /// The database file is damaged (truncated, overwritten, not a database, or a row that does
    /// not decode). `bgsync_store_sqlite::SqliteStore::open_or_recover` repairs it, keeping what
    /// can be read.
    #[error("the sync registration database {} is corrupt ({cause}); move it aside or open the store with recovery to start afresh", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What was found wrong.
        cause: String,
    },
    /// Another process (or another store in this one) has the database open.
    #[error("the sync registration database {} is already in use by another process; only one user agent may open a profile's data directory at a time", path.display())]
    InUse {
        /// The database's lock file.
        path: PathBuf,
    },
    /// The database was written by a newer version of this component.
    #[error("the sync registration database {} has schema version {found}, newer than the {supported} this build understands; upgrade, or open it with a newer build", path.display())]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The version found in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// The database could not be opened for another reason (permissions, missing directory…).
    #[error("could not open the sync registration database {}: {cause}", path.display())]
    Open {
        /// The file or directory.
        path: PathBuf,
        /// What the system reported.
        cause: String,
    },
}

/// What a store did with a damaged database: the file is kept for inspection, and the store
/// goes on with a fresh one holding what could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Where the damaged (or foreign) file now is, its `-wal` and `-shm` companions beside it;
    /// `None` when nothing had to be moved (the file was kept in place, or was gone).
    pub moved_to: Option<PathBuf>,
    /// What was wrong with it.
    pub cause: String,
    /// Registrations read from the damaged file and kept in the fresh one.
    pub kept: Vec<StoredRegistration>,
    /// Rows that could not be decoded, and were dropped.
    pub dropped: u64,
    /// Whether reading stopped early at damage in the table itself (rows after it, if any,
    /// are lost).
    pub truncated: bool,
    /// Whether the store still holds everything it held before (a file rewritten from the open
    /// connection, a foreign file set aside): when `false`, the engine rewrites the store from
    /// its own state.
    pub complete: bool,
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.cause)?;
        if let Some(p) = &self.moved_to {
            write!(f, "; the file was moved to {}", p.display())?;
        }
        write!(f, "; {} registration(s) kept", self.kept.len())?;
        if self.dropped > 0 {
            write!(f, "; {} undecodable row(s) were dropped", self.dropped)?;
        }
        if self.truncated {
            write!(
                f,
                "; reading stopped at damage in the table, so later rows may be lost"
            )?;
        }
        Ok(())
    }
}

/// A registration store: durable (or not) storage for sync registrations.
///
/// Implementations must make [`commit`](RegistrationStore::commit) atomic — all of the batch or
/// none of it — and, for durable backends, durable before it returns `Ok`: the scheduler resolves
/// `register()` promises on that acknowledgement.
pub trait RegistrationStore: Send {
    /// Every stored registration, in key order. Called once at start-up.
    fn load_all(&mut self) -> Result<Vec<StoredRegistration>, StoreError>;

    /// Applies `batch` atomically and durably. On error nothing of the batch is applied and
    /// everything committed before stays.
    fn commit(&mut self, batch: &[StoreOp]) -> Result<(), StoreError>;

    /// The stable service worker registration ids kept with
    /// [`StoreOp::PutServiceWorkerId`]. Called once at start-up. The default keeps none (a
    /// store that does not implement it cannot serve the keyed ids across restarts).
    fn load_service_worker_ids(&mut self) -> Result<Vec<ServiceWorkerIdRecord>, StoreError> {
        Ok(Vec::new())
    }

    /// Checks the whole store for damage, repairing what it can, and reports a repair. The
    /// engine calls it once after start-up, on the store's own thread, before its first commit
    /// (a full check of a large store takes seconds; start-up does not wait for it). The
    /// default has nothing to check.
    fn verify(&mut self) -> Result<Option<Recovery>, StoreError> {
        Ok(None)
    }

    /// A repair the store made on its own since it was last asked (a commit that found damage
    /// recovers as start-up does, then retries). The default never repairs.
    fn take_recovery(&mut self) -> Option<Recovery> {
        None
    }
}
