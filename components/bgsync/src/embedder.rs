//! What an engine implements to embed Background Sync.
//!
//! - [`ServiceWorkerHost`]: is there an active worker for a registration; fire `sync` and report
//!   the `waitUntil` outcome; terminate.
//! - [`WindowClients`]: does an origin have a top-level or auxiliary window client now.
//! - [`Permissions`]: the state of "background-sync" for an origin. Changes are pushed with
//!   [`BackgroundSync::permission_changed`](crate::BackgroundSync::permission_changed).
//! - [`NetworkState`]: online or not at start-up. Changes are pushed with
//!   [`BackgroundSync::network_changed`](crate::BackgroundSync::network_changed).
//! - [`Clock`](crate::Clock): wall-clock time and sleeping, real or virtual.
//!
//! Every method is called on the Background Sync thread and must answer without blocking on it.

use bgsync_scheduler::Engagement;
use bgsync_types::{Origin, PermissionState, StorageKey};

pub use bgsync_dispatcher::{
    OutcomeReporter, RegistrationInfo, ServiceWorkerHost, SyncEventDispatch,
};

/// Whether an origin has a window client, which `register()` requires (an origin with none is
/// "in the background").
///
/// ```
/// use bgsync::WindowClients;
/// use bgsync_types::Origin;
///
/// /// Asks the engine's client registry.
/// struct Tabs(std::sync::Mutex<Vec<Origin>>);
/// impl WindowClients for Tabs {
///     fn has_window_client(&self, origin: &Origin) -> bool {
///         self.0.lock().unwrap().contains(origin)
///     }
/// }
/// ```
pub trait WindowClients: Send + Sync + 'static {
    /// Whether `origin` has a service worker client whose frame type is top-level or auxiliary.
    fn has_window_client(&self, origin: &Origin) -> bool;

    /// Whether the storage key `key` has such a client. An engine that partitions storage
    /// overrides it, so that a window of the origin in another partition does not count; the
    /// default asks [`has_window_client`](WindowClients::has_window_client) for the origin.
    fn has_window_client_in(&self, key: &StorageKey) -> bool {
        self.has_window_client(&key.origin)
    }
}

/// The "background-sync" permission.
///
/// ```
/// use bgsync::Permissions;
/// use bgsync_types::{Origin, PermissionState};
///
/// /// The user turned background sync off for one site.
/// struct SiteSettings { blocked: Origin }
/// impl Permissions for SiteSettings {
///     fn background_sync(&self, origin: &Origin) -> PermissionState {
///         if *origin == self.blocked { PermissionState::Denied } else { PermissionState::Granted }
///     }
/// }
/// ```
pub trait Permissions: Send + Sync + 'static {
    /// The permission state of `origin`.
    fn background_sync(&self, origin: &Origin) -> PermissionState;

    /// The "periodic-background-sync" permission of `origin`; only `Granted` lets it register
    /// a periodic sync. Chromium: denied until granted (it grants it to installed web apps), so
    /// the default is `Denied`. Changes are pushed with
    /// [`BackgroundSync::periodic_permission_changed`](crate::BackgroundSync::periodic_permission_changed).
    fn periodic_background_sync(&self, origin: &Origin) -> PermissionState {
        let _ = origin;
        PermissionState::Denied
    }
}

/// Chromium: how much the user engages with a site (its site-engagement score, as a level),
/// which sets how often the site's periodic syncs may fire: intervals snap to multiples of
/// 12 h × 1 (high), × 2 (medium, low), × 3 (minimal), and none suspends them. Changes are
/// pushed with [`BackgroundSync::engagement_changed`](crate::BackgroundSync::engagement_changed).
///
/// ```
/// use bgsync::{Engagement, SiteEngagement};
/// use bgsync_types::Origin;
///
/// /// Every site counts as much used.
/// struct AllHigh;
/// impl SiteEngagement for AllHigh {
///     fn engagement(&self, _origin: &Origin) -> Engagement { Engagement::High }
/// }
/// ```
pub trait SiteEngagement: Send + Sync + 'static {
    /// The engagement of `origin` now.
    fn engagement(&self, origin: &Origin) -> Engagement;
}

/// An embedder without engagement scores: every site counts as highly engaged (periodic
/// intervals snap to multiples of 12 h).
#[derive(Debug, Clone, Copy, Default)]
pub struct FullEngagement;

impl SiteEngagement for FullEngagement {
    fn engagement(&self, _origin: &Origin) -> Engagement {
        Engagement::High
    }
}

/// The network, as far as sync is concerned: any connection but none counts as online.
///
/// ```
/// use bgsync::NetworkState;
///
/// struct Wifi;
/// impl NetworkState for Wifi {
///     fn is_online(&self) -> bool { true }
/// }
/// ```
pub trait NetworkState: Send + Sync + 'static {
    /// Whether the user agent is online now.
    fn is_online(&self) -> bool;
}

/// Grants "background-sync" to every origin: the spec's default for this powerful feature.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysGranted;

impl Permissions for AlwaysGranted {
    fn background_sync(&self, _origin: &Origin) -> PermissionState {
        PermissionState::Granted
    }
}

/// Reports the network as online (an unknown connection counts as online).
#[derive(Debug, Clone, Copy, Default)]
pub struct AssumeOnline;

impl NetworkState for AssumeOnline {
    fn is_online(&self) -> bool {
        true
    }
}
