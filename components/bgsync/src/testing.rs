//! Scriptable stand-ins for the embedder's traits, for tests, examples and simulations.
//!
//! They are deterministic and record what they saw, so a test can drive the engine on a
//! [`VirtualClock`](crate::VirtualClock) and check every event it fired.

use std::collections::{HashMap, HashSet, VecDeque};

use bgsync_scheduler::DispatchOutcome;
use bgsync_types::{DispatchId, Origin, PermissionState, StorageKey, SwRegistrationId};
use parking_lot::Mutex;

use crate::{
    NetworkState, OutcomeReporter, Permissions, RegistrationInfo, ServiceWorkerHost,
    SyncEventDispatch, WindowClients,
};

/// What a [`ScriptedHost`]'s worker does with a `sync` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Report this outcome at once.
    Settle(DispatchOutcome),
    /// Keep the event running until the test settles it with [`ScriptedHost::settle_held`]
    /// (or the time limit ends it).
    Hold,
    /// Drop the reporter without reporting, as a crashed worker would.
    Crash,
}

type FireHook = Box<dyn Fn(&SyncEventDispatch) + Send + Sync>;

#[derive(Default)]
struct HostState {
    registrations: HashMap<SwRegistrationId, RegistrationInfo>,
    script: VecDeque<Behaviour>,
    default: Option<Behaviour>,
    fired: Vec<SyncEventDispatch>,
    held: Vec<(SyncEventDispatch, OutcomeReporter)>,
    terminated: Vec<DispatchId>,
}

/// A service-worker host whose workers follow a script: each `sync` event takes the next
/// [`Behaviour`] from the script, or the default (succeed) when the script is empty.
#[derive(Default)]
pub struct ScriptedHost {
    state: Mutex<HostState>,
    on_fire: Mutex<Option<FireHook>>,
}

impl ScriptedHost {
    /// A host with no registrations whose workers succeed.
    pub fn new() -> Self {
        ScriptedHost::default()
    }

    /// Adds a registration of `origin` (in its default partition) with an active worker.
    pub fn add_registration(&self, sw: SwRegistrationId, origin: Origin) {
        self.add_registration_in(sw, StorageKey::new(origin));
    }

    /// Adds a registration of the storage key `key` with an active worker.
    pub fn add_registration_in(&self, sw: SwRegistrationId, key: StorageKey) {
        self.state.lock().registrations.insert(
            sw,
            RegistrationInfo {
                origin: key.origin,
                partition: key.partition,
                has_active_worker: true,
            },
        );
    }

    /// Removes a registration (the engine should also call
    /// [`BackgroundSync::service_worker_unregistered`](crate::BackgroundSync::service_worker_unregistered)).
    pub fn remove_registration(&self, sw: SwRegistrationId) {
        self.state.lock().registrations.remove(&sw);
    }

    /// Gives the registration an active worker, or takes it away.
    pub fn set_active(&self, sw: SwRegistrationId, active: bool) {
        if let Some(r) = self.state.lock().registrations.get_mut(&sw) {
            r.has_active_worker = active;
        }
    }

    /// Appends behaviours for the next events, in order.
    pub fn script(&self, behaviours: impl IntoIterator<Item = Behaviour>) {
        self.state.lock().script.extend(behaviours);
    }

    /// What workers do once the script is used up.
    pub fn set_default(&self, behaviour: Behaviour) {
        self.state.lock().default = Some(behaviour);
    }

    /// Calls `hook` as each event is fired, before the worker acts on it.
    pub fn on_fire(&self, hook: impl Fn(&SyncEventDispatch) + Send + Sync + 'static) {
        *self.on_fire.lock() = Some(Box::new(hook));
    }

    /// Every event fired so far, in order.
    pub fn fired(&self) -> Vec<SyncEventDispatch> {
        self.state.lock().fired.clone()
    }

    /// The events being held, in order.
    pub fn held(&self) -> Vec<SyncEventDispatch> {
        self.state
            .lock()
            .held
            .iter()
            .map(|(e, _)| e.clone())
            .collect()
    }

    /// Settles the held event `id`; false if no such event is held.
    pub fn settle_held(&self, id: DispatchId, outcome: DispatchOutcome) -> bool {
        let reporter = {
            let mut state = self.state.lock();
            let Some(i) = state.held.iter().position(|(e, _)| e.id == id) else {
                return false;
            };
            state.held.remove(i).1
        };
        reporter.report(outcome);
        true
    }

    /// Events the engine asked to terminate (time limit, unregistration), in order.
    pub fn terminated(&self) -> Vec<DispatchId> {
        self.state.lock().terminated.clone()
    }
}

impl std::fmt::Debug for ScriptedHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedHost")
            .field("fired", &self.fired().len())
            .finish_non_exhaustive()
    }
}

impl ServiceWorkerHost for ScriptedHost {
    fn registration(&self, sw: SwRegistrationId) -> Option<RegistrationInfo> {
        self.state.lock().registrations.get(&sw).cloned()
    }

    fn fire_sync_event(&self, event: SyncEventDispatch, reply: OutcomeReporter) {
        if let Some(hook) = self.on_fire.lock().as_ref() {
            hook(&event);
        }
        let behaviour = {
            let mut state = self.state.lock();
            state.fired.push(event.clone());
            let default = state
                .default
                .unwrap_or(Behaviour::Settle(DispatchOutcome::Fulfilled));
            state.script.pop_front().unwrap_or(default)
        };
        match behaviour {
            Behaviour::Settle(outcome) => reply.report(outcome),
            Behaviour::Hold => self.state.lock().held.push((event, reply)),
            Behaviour::Crash => drop(reply),
        }
    }

    fn terminate(&self, event: DispatchId, _sw: SwRegistrationId) {
        let mut state = self.state.lock();
        state.terminated.push(event);
        // A terminated worker's reporter goes away with it; the engine ignores its report.
        state.held.retain(|(e, _)| e.id != event);
    }
}

/// Window clients as a set of origins with an open window.
#[derive(Default, Debug)]
pub struct OpenWindows(Mutex<HashSet<Origin>>);

impl OpenWindows {
    /// Windows open for these origins.
    pub fn with(origins: impl IntoIterator<Item = Origin>) -> Self {
        OpenWindows(Mutex::new(origins.into_iter().collect()))
    }

    /// Opens a window of `origin`.
    pub fn open(&self, origin: Origin) {
        self.0.lock().insert(origin);
    }

    /// Closes every window of `origin`.
    pub fn close(&self, origin: &Origin) {
        self.0.lock().remove(origin);
    }
}

impl WindowClients for OpenWindows {
    fn has_window_client(&self, origin: &Origin) -> bool {
        self.0.lock().contains(origin)
    }
}

/// Permissions as a table: "background-sync" granted to every origin not in it,
/// "periodic-background-sync" denied to every origin not granted it (as Chromium).
#[derive(Default, Debug)]
pub struct PermissionTable {
    background_sync: Mutex<HashMap<Origin, PermissionState>>,
    periodic: Mutex<HashMap<Origin, PermissionState>>,
}

impl PermissionTable {
    /// Sets the "background-sync" state of `origin`. The engine must also be told, with
    /// [`BackgroundSync::permission_changed`](crate::BackgroundSync::permission_changed).
    pub fn set(&self, origin: &Origin, state: PermissionState) {
        self.background_sync.lock().insert(origin.clone(), state);
    }

    /// Sets the "periodic-background-sync" state of `origin`; tell the engine with
    /// [`BackgroundSync::periodic_permission_changed`](crate::BackgroundSync::periodic_permission_changed).
    pub fn set_periodic(&self, origin: &Origin, state: PermissionState) {
        self.periodic.lock().insert(origin.clone(), state);
    }
}

impl Permissions for PermissionTable {
    fn background_sync(&self, origin: &Origin) -> PermissionState {
        self.background_sync
            .lock()
            .get(origin)
            .copied()
            .unwrap_or(PermissionState::Granted)
    }

    fn periodic_background_sync(&self, origin: &Origin) -> PermissionState {
        self.periodic
            .lock()
            .get(origin)
            .copied()
            .unwrap_or(PermissionState::Denied)
    }
}

/// Engagement as a table (every origin not in it highly engaged).
#[derive(Default, Debug)]
pub struct EngagementTable(Mutex<HashMap<Origin, crate::Engagement>>);

impl EngagementTable {
    /// Sets the engagement of `origin`; tell the engine with
    /// [`BackgroundSync::engagement_changed`](crate::BackgroundSync::engagement_changed).
    pub fn set(&self, origin: &Origin, level: crate::Engagement) {
        self.0.lock().insert(origin.clone(), level);
    }
}

impl crate::SiteEngagement for EngagementTable {
    fn engagement(&self, origin: &Origin) -> crate::Engagement {
        self.0
            .lock()
            .get(origin)
            .copied()
            .unwrap_or(crate::Engagement::High)
    }
}

/// A network that is online or not at start-up, as given.
#[derive(Debug, Clone, Copy)]
pub struct FixedNetwork(pub bool);

impl NetworkState for FixedNetwork {
    fn is_online(&self) -> bool {
        self.0
    }
}
