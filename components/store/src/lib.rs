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
//! use bgsync_types::{Origin, SwRegistrationId, SyncKind, Tag, Timestamp};
//!
//! let mut store = MemoryStore::new();
//! let record = StoredRegistration {
//!     origin: Origin::parse("https://mail.example").unwrap(),
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

use std::time::Duration;

use bgsync_types::{Origin, SwRegistrationId, SyncKind, Tag, Timestamp};

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
    /// Remove every registration of an origin (clear-site-data).
    DeleteOrigin(Origin),
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A write could not be made durable; nothing of the batch was applied.
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
}
