//! Service worker registrations as the agent keeps them (Service Workers § 2.2 service worker
//! registration, § 3.2 `ServiceWorkerRegistration`): creating one, matching a scope, a
//! worker's state and what each realm is told when it changes, unregistering. Native functions
//! (`navigator.serviceWorker.*`) and the service worker lifecycle both use these.

use bgsync::RegistrationInfo;
use bgsync_types::{Origin, Partition, StorageKey, SwRegistrationId};
use url::Url;

use crate::agent::{State, SwReg, WorkerState};
use crate::values::{Out, RealmId};

impl State {
    /// Whether the service worker registration `sw` has an active worker now.
    pub(crate) fn has_active_worker(&self, sw: SwRegistrationId) -> bool {
        self.sws
            .get(&sw)
            .is_some_and(|r| r.state == WorkerState::Activated)
    }

    pub(crate) fn set_worker_state(&mut self, sw: SwRegistrationId, state: WorkerState) {
        let Some(reg) = self.sws.get_mut(&sw) else {
            return;
        };
        reg.state = state;
        let info = RegistrationInfo {
            origin: reg.origin.clone(),
            partition: reg.partition.clone(),
            has_active_worker: state == WorkerState::Activated,
        };
        let scope = reg.scope.as_str().to_owned();
        let partition = reg.partition.clone();
        self.shared.registrations().insert(sw, info);
        let out = self.registration_out(sw);
        let realms: Vec<(RealmId, bool)> = (0..self.realms.len())
            .filter(|r| self.realms[*r].alive)
            .map(|r| {
                let realm = &self.realms[r];
                let in_scope =
                    realm.partition == partition && realm.url.as_str().starts_with(&scope);
                (r, in_scope)
            })
            .collect();
        for (realm, in_scope) in realms {
            self.hook(realm, "workerState", vec![out.clone()]);
            if state == WorkerState::Activated && in_scope {
                self.hook(realm, "ready", vec![out.clone()]);
            }
        }
    }

    pub(crate) fn registration_out(&self, sw: SwRegistrationId) -> Out {
        match self.sws.get(&sw) {
            Some(reg) => Out::Obj(vec![
                ("id", Out::Num(sw.0 as f64)),
                ("scope", Out::Str(reg.scope.to_string())),
                ("scriptURL", Out::Str(reg.script.to_string())),
                ("state", Out::Str(reg.state.as_str().into())),
            ]),
            None => Out::Null,
        }
    }

    pub(crate) fn new_sw(
        &mut self,
        scope: Url,
        script: Url,
        origin: Origin,
        partition: Partition,
    ) -> SwRegistrationId {
        let id = SwRegistrationId(self.next_sw);
        self.next_sw += 1;
        self.sws.insert(
            id,
            SwReg {
                scope,
                script,
                origin,
                partition,
                state: WorkerState::Parsed,
                realm: None,
            },
        );
        id
    }
    /// The registration of storage key `key` whose scope is the longest prefix of `url`.
    pub(crate) fn match_scope(&self, url: &str, key: &StorageKey) -> Option<SwRegistrationId> {
        self.sws
            .iter()
            .filter(|(_, r)| {
                r.state != WorkerState::Redundant
                    && r.partition == key.partition
                    && url.starts_with(r.scope.as_str())
            })
            .max_by_key(|(_, r)| r.scope.as_str().len())
            .map(|(id, _)| *id)
    }
    pub(crate) fn scope_registration(
        &self,
        scope: &Url,
        partition: &Partition,
    ) -> Option<SwRegistrationId> {
        self.sws
            .iter()
            .find(|(_, r)| {
                r.scope == *scope && r.partition == *partition && r.state != WorkerState::Redundant
            })
            .map(|(id, _)| *id)
    }
    pub(crate) fn registrations_of(&self, key: &StorageKey) -> Vec<SwRegistrationId> {
        self.sws
            .iter()
            .filter(|(_, r)| {
                r.origin == key.origin
                    && r.partition == key.partition
                    && r.state != WorkerState::Redundant
            })
            .map(|(id, _)| *id)
            .collect()
    }
    pub(crate) fn sw_realm(&self, sw: SwRegistrationId) -> Option<RealmId> {
        self.sws
            .get(&sw)
            .and_then(|r| r.realm)
            .filter(|r| self.realms[*r].alive)
    }
    pub(crate) fn is_active(&self, sw: SwRegistrationId) -> bool {
        self.sws
            .get(&sw)
            .is_some_and(|r| r.state == WorkerState::Activated)
    }
    pub(crate) fn unregister_sw(&mut self, sw: SwRegistrationId) -> bool {
        if self
            .sws
            .get(&sw)
            .is_none_or(|r| r.state == WorkerState::Redundant)
        {
            return false;
        }
        self.set_worker_state(sw, WorkerState::Redundant);
        self.shared.registrations().remove(&sw);
        self.engine.service_worker_unregistered(sw);
        true
    }
}
