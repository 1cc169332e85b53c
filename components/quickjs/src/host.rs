//! The embedder side the user agent gives the engine: its service workers, windows and
//! permissions, shared with the engine's thread.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use bgsync::{
    OutcomeReporter, Permissions, RegistrationInfo, ServiceWorkerHost, SyncEventDispatch,
    WindowClients,
};
use bgsync_types::{DispatchId, Origin, PermissionState, SwRegistrationId};
use crossbeam_channel::Sender;

/// What the engine's thread asks of the JS thread.
pub(crate) enum HostCall {
    Fire(SyncEventDispatch, OutcomeReporter),
    Terminate(DispatchId),
    /// The engine's answer to a realm's call (`register()`, `getTags()`), queued as a task.
    Reply {
        realm: crate::values::RealmId,
        call: u64,
        result: Result<crate::values::Out, crate::values::ErrOut>,
    },
}

/// State the engine's thread reads; the JS thread writes it.
#[derive(Default)]
pub(crate) struct Shared {
    pub registrations: Mutex<HashMap<SwRegistrationId, RegistrationInfo>>,
    pub windows: Mutex<HashSet<Origin>>,
    pub denied: Mutex<HashSet<Origin>>,
    /// Origins granted "periodic-background-sync" (denied until granted).
    pub periodic_granted: Mutex<HashSet<Origin>>,
    /// `bgsyncTest.setEngagement` levels.
    pub engagement: Mutex<HashMap<Origin, bgsync::Engagement>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere cannot leave these maps half-written; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn registrations(&self) -> MutexGuard<'_, HashMap<SwRegistrationId, RegistrationInfo>> {
        lock(&self.registrations)
    }
    pub fn windows(&self) -> MutexGuard<'_, HashSet<Origin>> {
        lock(&self.windows)
    }
    pub fn denied(&self) -> MutexGuard<'_, HashSet<Origin>> {
        lock(&self.denied)
    }
    pub fn periodic_granted(&self) -> MutexGuard<'_, HashSet<Origin>> {
        lock(&self.periodic_granted)
    }
    pub fn engagement(&self) -> MutexGuard<'_, HashMap<Origin, bgsync::Engagement>> {
        lock(&self.engagement)
    }
}

/// The engine's view of the user agent.
pub(crate) struct Host {
    pub shared: Arc<Shared>,
    pub tx: Sender<HostCall>,
}

impl ServiceWorkerHost for Host {
    fn registration(&self, sw: SwRegistrationId) -> Option<RegistrationInfo> {
        self.shared.registrations().get(&sw).cloned()
    }

    fn fire_sync_event(&self, event: SyncEventDispatch, reply: OutcomeReporter) {
        // If the JS thread is gone, the reporter is dropped: a terminated worker.
        let _ = self.tx.send(HostCall::Fire(event, reply));
    }

    fn terminate(&self, event: DispatchId, _sw: SwRegistrationId) {
        let _ = self.tx.send(HostCall::Terminate(event));
    }
}

impl WindowClients for Host {
    fn has_window_client(&self, origin: &Origin) -> bool {
        self.shared.windows().contains(origin)
    }

    /// Chromium: only a top-level window of the storage key counts; top-level windows are
    /// first-party, so a partitioned key (a frame's of another site) never has one.
    fn has_window_client_in(&self, key: &bgsync_types::StorageKey) -> bool {
        key.partition.is_default() && self.has_window_client(&key.origin)
    }
}

impl bgsync::SiteEngagement for Host {
    /// `bgsyncTest.setEngagement`'s level; `high` for a site it was never given for.
    fn engagement(&self, origin: &Origin) -> bgsync::Engagement {
        self.shared
            .engagement()
            .get(origin)
            .copied()
            .unwrap_or(bgsync::Engagement::High)
    }
}

impl Permissions for Host {
    /// Chromium: denied until granted (`test_driver.set_permission`).
    fn periodic_background_sync(&self, origin: &Origin) -> PermissionState {
        if self.shared.periodic_granted().contains(origin) {
            PermissionState::Granted
        } else {
            PermissionState::Denied
        }
    }

    fn background_sync(&self, origin: &Origin) -> PermissionState {
        if self.shared.denied().contains(origin) {
            PermissionState::Denied
        } else {
            PermissionState::Granted
        }
    }
}
