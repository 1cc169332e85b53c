//! The lifetime rules of `ExtendableEvent`
//! ([Service Workers](https://w3c.github.io/ServiceWorker/#extendableevent-interface)).

use bgsync_types::{DomException, DomExceptionName};

/// How an extendable event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// Every extend lifetime promise fulfilled (a listener that threw does not change that).
    Fulfilled,
    /// An extend lifetime promise rejected.
    Rejected,
}

/// The state an engine keeps for one dispatched `ExtendableEvent`: its dispatch flag, its
/// pending promises count, its timed out flag, and whether anything failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendableEventLifetime {
    trusted: bool,
    dispatching: bool,
    pending: usize,
    timed_out: bool,
    failed: bool,
    threw: bool,
}

impl ExtendableEventLifetime {
    /// An event whose dispatch has just begun. Untrusted events (constructed by script) may not
    /// be extended.
    pub fn new(is_trusted: bool) -> Self {
        ExtendableEventLifetime {
            trusted: is_trusted,
            dispatching: true,
            pending: 0,
            timed_out: false,
            failed: false,
            threw: false,
        }
    }

    /// [Active](https://w3c.github.io/ServiceWorker/#extendableevent-active): not timed out, and
    /// being dispatched or with promises pending.
    pub fn is_active(&self) -> bool {
        !self.timed_out && (self.dispatching || self.pending > 0)
    }

    /// [`waitUntil(f)`](https://w3c.github.io/ServiceWorker/#dom-extendableevent-waituntil):
    /// the checks and the count; the caller then watches `f` and calls
    /// [`promise_settled`](ExtendableEventLifetime::promise_settled) when it settles.
    pub fn wait_until(&mut self) -> Result<(), DomException> {
        // 1. If the isTrusted attribute is false, throw an "InvalidStateError".
        if !self.trusted {
            return Err(DomException::new(
                DomExceptionName::InvalidStateError,
                "waitUntil() may only be called on events the user agent dispatched.",
            ));
        }
        // 2. (add lifetime promise) 1. If event is not active, throw an "InvalidStateError".
        if !self.is_active() {
            return Err(DomException::new(
                DomExceptionName::InvalidStateError,
                "The event handler is already finished and no extend lifetime promises are outstanding.",
            ));
        }
        // 2.2 Add promise to the extend lifetime promises. 2.3 Increment the pending count.
        self.pending += 1;
        Ok(())
    }

    /// An extend lifetime promise settled (the spec's queued microtask): decrement the pending
    /// promises count; a rejection fails the event.
    pub fn promise_settled(&mut self, fulfilled: bool) {
        self.pending = self.pending.saturating_sub(1);
        if !fulfilled {
            self.failed = true;
        }
    }

    /// The dispatch is over: the dispatch flag is unset. A listener that threw is remembered
    /// ([`listener_threw`](ExtendableEventLifetime::listener_threw); the engine reports the
    /// exception) but does not fail the event: the outcome is that of its extend lifetime
    /// promises only ([fire a sync event](https://wicg.github.io/background-sync/spec/#fire-a-sync-event)
    /// waits for them; no `waitUntil` call means none to wait for). Chromium agrees
    /// (docs/chromium.md).
    pub fn dispatch_finished(&mut self, listener_threw: bool) {
        self.dispatching = false;
        self.threw |= listener_threw;
    }

    /// Whether a listener threw during the dispatch.
    pub fn listener_threw(&self) -> bool {
        self.threw
    }

    /// The listener's script was aborted (the worker terminated it, or a watchdog stopped a
    /// runaway script): the dispatch is over and the event failed, as fire a sync event reads
    /// ("if the script has been aborted by the termination of the service worker").
    pub fn script_aborted(&mut self) {
        self.dispatching = false;
        self.failed = true;
    }

    /// The user agent gave up on the event: set the timed out flag.
    pub fn time_out(&mut self) {
        self.timed_out = true;
    }

    /// How the event ended, once it has: the dispatch is over and nothing is pending.
    pub fn outcome(&self) -> Option<EventOutcome> {
        if self.dispatching || self.pending > 0 {
            return None;
        }
        Some(if self.failed {
            EventOutcome::Rejected
        } else {
            EventOutcome::Fulfilled
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_until_extends_only_while_active() {
        let mut l = ExtendableEventLifetime::new(true);
        assert!(l.wait_until().is_ok());
        l.dispatch_finished(false);
        assert!(l.is_active(), "a pending promise keeps the event active");
        assert!(l.wait_until().is_ok(), "so it may be extended again");
        l.promise_settled(true);
        l.promise_settled(true);
        assert!(!l.is_active());
        assert_eq!(
            l.wait_until().unwrap_err().name,
            DomExceptionName::InvalidStateError
        );
        assert_eq!(l.outcome(), Some(EventOutcome::Fulfilled));
    }

    #[test]
    fn the_outcome_waits_for_every_promise_and_a_rejection_wins() {
        let mut l = ExtendableEventLifetime::new(true);
        l.wait_until().unwrap();
        l.wait_until().unwrap();
        l.dispatch_finished(false);
        assert_eq!(l.outcome(), None);
        l.promise_settled(false);
        assert_eq!(l.outcome(), None);
        l.promise_settled(true);
        assert_eq!(l.outcome(), Some(EventOutcome::Rejected));
    }

    #[test]
    fn a_throwing_listener_does_not_fail_the_event_and_no_wait_until_succeeds() {
        let mut l = ExtendableEventLifetime::new(true);
        l.dispatch_finished(true);
        assert_eq!(l.outcome(), Some(EventOutcome::Fulfilled));
        assert!(l.listener_threw());
        let mut rejected = ExtendableEventLifetime::new(true);
        rejected.wait_until().unwrap();
        rejected.dispatch_finished(true);
        rejected.promise_settled(false);
        assert_eq!(rejected.outcome(), Some(EventOutcome::Rejected));
        let mut quiet = ExtendableEventLifetime::new(true);
        quiet.dispatch_finished(false);
        assert_eq!(quiet.outcome(), Some(EventOutcome::Fulfilled));
    }

    #[test]
    fn untrusted_and_timed_out_events_refuse() {
        let mut l = ExtendableEventLifetime::new(false);
        assert_eq!(
            l.wait_until().unwrap_err().name,
            DomExceptionName::InvalidStateError
        );
        let mut t = ExtendableEventLifetime::new(true);
        t.time_out();
        assert!(t.wait_until().is_err());
    }
}
