//! Core types of the Background Sync engine, shared by every other crate.
//!
//! ```
//! use bgsync_types::{Origin, Tag};
//!
//! let origin = Origin::parse("https://mail.example").unwrap();
//! assert!(origin.is_potentially_trustworthy());
//!
//! // A tag is a DOMString: UTF-16 code units, lone surrogates included.
//! let a = Tag::from_utf16(vec![0xD800]);
//! let b = Tag::from_utf16(vec![0xDC00]);
//! assert_ne!(a, b);
//! assert_eq!(a.utf8_len(), 3);
//! ```

mod exception;
mod ids;
mod origin;
mod storage_key;
mod tag;
mod time;

pub use exception::{DomException, DomExceptionName};
pub use ids::{DispatchId, PersistId, RequestId, SwRegistrationId};
pub use origin::{Origin, OriginError};
pub use storage_key::{Partition, StorageKey};
pub use tag::Tag;
pub use time::Timestamp;

/// Which of the two specs a registration belongs to. One-shot and periodic registrations live in
/// separate namespaces: the same tag may exist in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum SyncKind {
    /// [Web Background Synchronization](https://wicg.github.io/background-sync/spec/).
    OneShot,
    /// [Web Periodic Background Synchronization](https://wicg.github.io/background-sync/spec/PeriodicBackgroundSync-index.html).
    Periodic,
}

/// The state of the "background-sync" permission for an origin.
///
/// The spec makes it a default powerful feature: granted unless the user disabled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum PermissionState {
    /// Sync events may be registered and fired.
    #[default]
    Granted,
    /// The user disabled background sync for the origin.
    Denied,
    /// The user has not decided. Background sync is not disabled, so `register()` is not
    /// refused and events fire, as the spec's register step 3 reads and as Chromium does
    /// (docs/chromium.md).
    Prompt,
}
