//! The lifetimes of extendable events (Service Workers § 4.4 `ExtendableEvent`): `waitUntil`
//! promises, and what an event's outcome does — reports a `sync` event's outcome to the engine,
//! or moves an installing or activating worker on. The rules themselves live in `bgsync-idl`.

use bgsync::DispatchOutcome;
use bgsync_idl::{EventOutcome, ExtendableEventLifetime};
use bgsync_types::DomException;

use crate::agent::{Purpose, State, Task, WorkerState};

impl State {
    pub(crate) fn new_lifetime(&mut self, purpose: Purpose) -> u64 {
        let id = self.next_lifetime;
        self.next_lifetime += 1;
        self.lifetimes
            .insert(id, (ExtendableEventLifetime::new(true), purpose));
        id
    }

    pub(crate) fn wait_until(&mut self, lifetime: u64) -> Result<(), DomException> {
        match self.lifetimes.get_mut(&lifetime) {
            Some((l, _)) => l.wait_until(),
            None => Err(DomException::new(
                bgsync_types::DomExceptionName::InvalidStateError,
                "The event handler is already finished and no extend lifetime promises are outstanding.",
            )),
        }
    }

    pub(crate) fn lifetime_settled(&mut self, lifetime: u64, fulfilled: bool) {
        if let Some((l, _)) = self.lifetimes.get_mut(&lifetime) {
            l.promise_settled(fulfilled);
        }
        self.check_lifetime(lifetime);
    }

    pub(crate) fn script_aborted(&mut self, lifetime: u64) {
        if let Some((l, _)) = self.lifetimes.get_mut(&lifetime) {
            l.script_aborted();
        }
    }

    pub(crate) fn dispatch_finished(&mut self, lifetime: u64, threw: bool) {
        if let Some((l, _)) = self.lifetimes.get_mut(&lifetime) {
            l.dispatch_finished(threw);
        }
    }

    pub(crate) fn check_lifetime(&mut self, lifetime: u64) {
        let Some(outcome) = self.lifetimes.get(&lifetime).and_then(|(l, _)| l.outcome()) else {
            return;
        };
        let Some((_, purpose)) = self.lifetimes.remove(&lifetime) else {
            return;
        };
        let ok = matches!(outcome, EventOutcome::Fulfilled);
        match purpose {
            Purpose::Sync(reporter) => reporter.report(if ok {
                DispatchOutcome::Fulfilled
            } else {
                DispatchOutcome::Rejected
            }),
            Purpose::Install(sw) => {
                if ok {
                    self.set_worker_state(sw, WorkerState::Installed);
                    self.tasks.push_back(Task::Activate(sw));
                } else {
                    self.set_worker_state(sw, WorkerState::Redundant);
                    self.sws.remove(&sw);
                }
            }
            Purpose::Activate(sw) => self.set_worker_state(sw, WorkerState::Activated),
        }
    }
}
