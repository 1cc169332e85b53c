//! Service workers (Service Workers § 3.1 `ServiceWorker`, § 4.1 `ServiceWorkerGlobalScope`):
//! their realms and lifecycle — registering one from the host, starting its worker when it is
//! needed, install and activate, firing `sync`, a message posted to it, and dispatching an
//! extendable event. The registrations themselves are in `registration`, the lifetimes of
//! their events in `extendable_event`.

use bgsync::{DispatchOutcome, OutcomeReporter, SyncEventDispatch};
use bgsync_types::{Origin, Partition, SwRegistrationId};
use url::Url;

use crate::agent::{Placement, Purpose, Task, WorkerState};
use crate::realm::UserAgent;
use crate::values::{type_error, GlobalKind, Out, RealmId};
use crate::UaError;

impl UserAgent {
    /// Registers a service worker for `script` with scope `scope` and creates its realm without
    /// running anything: the worker is `parsed` (not yet installing, no active worker), as while
    /// a browser evaluates a new worker's script. Run its script with
    /// [`run_main_script`](Self::run_main_script), then
    /// [`install_service_worker`](Self::install_service_worker) fires `install` and `activate`.
    pub fn open_service_worker(&mut self, script: &Url, scope: &Url) -> Result<RealmId, UaError> {
        let origin = Origin::from_url(script).map_err(|e| UaError::Script(e.to_string()))?;
        let sw = self.state.borrow_mut().new_sw(
            scope.clone(),
            script.clone(),
            origin,
            Partition::default(),
        );
        let realm = self.open_realm(
            GlobalKind::ServiceWorker,
            script,
            Some(sw),
            Placement::default(),
        )?;
        if let Some(reg) = self.state.borrow_mut().sws.get_mut(&sw) {
            reg.realm = Some(realm);
        }
        Ok(realm)
    }

    /// Queues the installation of the service worker whose realm is `realm` (opened with
    /// [`open_service_worker`](Self::open_service_worker)): `install`, then, once its
    /// `waitUntil` promises settle, `activate`, as the service worker's lifecycle runs.
    pub fn install_service_worker(&mut self, realm: RealmId) -> Result<(), UaError> {
        let sw = self.sw_of(realm)?;
        self.state
            .borrow_mut()
            .tasks
            .push_back(Task::Install { sw, caller: None });
        Ok(())
    }

    /// Queues a `message` event at the service worker of `realm` whose data is `json` and whose
    /// source is a client that belongs to the host: what that client is sent goes to
    /// [`take_host_reports`](Self::take_host_reports). This is how a page's
    /// `fetch_tests_from_worker` connects to a service worker's harness (`{"type":"connect"}`).
    pub fn post_to_service_worker_from_host(
        &mut self,
        realm: RealmId,
        json: &str,
    ) -> Result<(), UaError> {
        let sw = self.sw_of(realm)?;
        let url = self.state.borrow().realms[realm].url.clone();
        self.state.borrow_mut().tasks.push_back(Task::PostToWorker {
            sw,
            json: json.to_owned(),
            source: Out::Obj(vec![
                ("url", Out::Str(url.to_string())),
                ("id", Out::Str("client-host".into())),
                ("realm", Out::Num(-1.0)),
            ]),
        });
        Ok(())
    }

    fn sw_of(&self, realm: RealmId) -> Result<SwRegistrationId, UaError> {
        let st = self.state.borrow();
        st.sws
            .iter()
            .find(|(_, r)| r.realm == Some(realm))
            .map(|(id, _)| *id)
            .ok_or_else(|| UaError::Script(format!("realm {realm} is not a service worker")))
    }

    /// Calls the hook that dispatches the extendable event of `lifetime`, then settles the
    /// event if it is over. A hook that did not return (the watchdog stopped a runaway
    /// listener, whose exception no script can catch) is a script aborted: the event fails at
    /// once, rather than being left to its time limit. (A listener that merely threw returns
    /// through the hook, which reports it; that does not fail the event.)
    fn dispatch_extendable(&mut self, realm: RealmId, hook: &str, args: Vec<Out>, lifetime: u64) {
        let returned = self.hooks_call(realm, hook, args);
        let mut st = self.state.borrow_mut();
        if !returned {
            st.script_aborted(lifetime);
        }
        st.check_lifetime(lifetime);
    }

    /// Starts the worker of `sw` in a fresh realm if it is not running. Returns its realm.
    pub(crate) fn ensure_worker(&mut self, sw: SwRegistrationId) -> Option<RealmId> {
        let (script, running, partition) = {
            let st = self.state.borrow();
            let reg = st.sws.get(&sw)?;
            (
                reg.script.clone(),
                reg.realm.filter(|r| st.realms[*r].alive),
                reg.partition.clone(),
            )
        };
        if running.is_some() {
            return running;
        }
        let placement = Placement {
            partition,
            ..Placement::default()
        };
        let realm = match self.open_realm(GlobalKind::ServiceWorker, &script, Some(sw), placement) {
            Ok(r) => r,
            Err(e) => {
                self.state.borrow_mut().console.push(format!("error: {e}"));
                return None;
            }
        };
        if let Some(reg) = self.state.borrow_mut().sws.get_mut(&sw) {
            reg.realm = Some(realm);
        }
        if let Err(e) = self.run_script(realm, &script) {
            let mut st = self.state.borrow_mut();
            st.console.push(format!("error: worker script failed: {e}"));
            st.uncaught.push(e.to_string());
        }
        Some(realm)
    }

    pub(crate) fn fire_sync(&mut self, event: SyncEventDispatch, reporter: OutcomeReporter) {
        let Some(realm) = self.ensure_worker(event.sw) else {
            reporter.report(DispatchOutcome::WorkerFailedToStart);
            return;
        };
        let lifetime = self
            .state
            .borrow_mut()
            .new_lifetime(Purpose::Sync(reporter));
        let units = event.tag.as_utf16().to_vec();
        if event.kind == bgsync_types::SyncKind::Periodic {
            return self.dispatch_extendable(
                realm,
                "periodicsync",
                vec![Out::Num(lifetime as f64), Out::Units(units)],
                lifetime,
            );
        }
        self.dispatch_extendable(
            realm,
            "sync",
            vec![
                Out::Num(lifetime as f64),
                Out::Units(units),
                Out::Bool(event.last_chance),
            ],
            lifetime,
        );
    }

    pub(crate) fn install(&mut self, sw: SwRegistrationId, caller: Option<(RealmId, u64)>) {
        let Some(realm) = self.ensure_worker(sw) else {
            self.state.borrow_mut().sws.remove(&sw);
            if let Some((caller, call)) = caller {
                self.state.borrow_mut().tasks.push_back(Task::Deliver {
                    realm: caller,
                    call,
                    result: Err(type_error(
                        "Failed to register a ServiceWorker: the script could not be loaded",
                    )),
                });
            }
            return;
        };
        self.set_worker_state(sw, WorkerState::Installing);
        if let Some((caller, call)) = caller {
            let reg = self.state.borrow().registration_out(sw);
            self.state.borrow_mut().tasks.push_back(Task::Deliver {
                realm: caller,
                call,
                result: Ok(reg),
            });
        }
        let lifetime = self.state.borrow_mut().new_lifetime(Purpose::Install(sw));
        self.dispatch_extendable(
            realm,
            "lifecycle",
            vec![Out::Str("install".into()), Out::Num(lifetime as f64)],
            lifetime,
        );
    }

    pub(crate) fn activate(&mut self, sw: SwRegistrationId) {
        let Some(realm) = self.ensure_worker(sw) else {
            return;
        };
        self.set_worker_state(sw, WorkerState::Activating);
        let lifetime = self.state.borrow_mut().new_lifetime(Purpose::Activate(sw));
        self.dispatch_extendable(
            realm,
            "lifecycle",
            vec![Out::Str("activate".into()), Out::Num(lifetime as f64)],
            lifetime,
        );
    }

    fn set_worker_state(&mut self, sw: SwRegistrationId, state: WorkerState) {
        self.state.borrow_mut().set_worker_state(sw, state);
    }
}
