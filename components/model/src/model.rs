//! The reference model: the one-shot algorithms of the spec and our parameters, written as
//! plainly as the spec reads. Lists and linear scans; no indexes, no batching, no storage.

use bgsync_scheduler::Parameters;
use bgsync_types::{DomExceptionName, Origin, SwRegistrationId, Tag, Timestamp};

/// A sync registration's state ([spec](https://wicg.github.io/background-sync/spec/#sync-registration-registration-state)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting to fire.
    Pending,
    /// Backing off after a failed attempt.
    Waiting,
    /// Its event is in flight.
    Firing,
    /// Registered again while its event was in flight.
    ReregisteredWhileFiring,
}

/// A sync registration.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Its service worker registration.
    pub sw: SwRegistrationId,
    /// Its tag.
    pub tag: Tag,
    /// Its state.
    pub state: State,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When its back-off ends (meaningful while waiting).
    pub retry_at: Timestamp,
    /// While firing: whether this attempt is the last chance, and when its time limit ends.
    pub event: Option<(bool, Timestamp)>,
}

/// A service worker registration the model knows of.
#[derive(Debug, Clone)]
pub struct ServiceWorker {
    /// Its id.
    pub sw: SwRegistrationId,
    /// Its origin.
    pub origin: Origin,
    /// False once unregistered.
    pub registered: bool,
}

/// A `sync` event the model fired.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fired {
    /// The registration's service worker registration.
    pub sw: SwRegistrationId,
    /// `SyncEvent.tag`.
    pub tag: Tag,
    /// `SyncEvent.lastChance` (false for a `periodicsync` event).
    pub last_chance: bool,
    /// A `periodicsync` event (of a periodic registration), not a `sync` event.
    pub periodic: bool,
}

/// The whole user agent, as the spec describes it.
#[derive(Debug, Clone)]
pub struct Model {
    /// The parameters (the same the engine gets).
    pub params: Parameters,
    /// The time.
    pub now: Timestamp,
    /// Whether the user agent is online.
    pub online: bool,
    /// Origins with the permission denied.
    pub denied: Vec<Origin>,
    /// Origins with a top-level window client.
    pub windows: Vec<Origin>,
    /// Service worker registrations.
    pub workers: Vec<ServiceWorker>,
    /// Sync registrations, in the order they were made.
    pub registrations: Vec<Registration>,
    /// Events fired since the caller last took them.
    pub fired: Vec<Fired>,
    /// Periodic sync registrations, in the order they were made (`periodic`).
    pub periodic: Vec<crate::periodic::PeriodicRegistration>,
    /// Origins granted "periodic-background-sync".
    pub periodic_granted: Vec<Origin>,
    /// Origins' engagement, where set (high otherwise).
    pub engagement: Vec<(Origin, bgsync_scheduler::Engagement)>,
    /// When each origin's last round of periodic events fired.
    pub last_fired: Vec<(Origin, Timestamp)>,
    /// When the last round of any origin fired.
    pub last_round: Option<Timestamp>,
}

/// How an event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// waitUntil fulfilled.
    Fulfilled,
    /// waitUntil rejected, the worker died, or the time limit passed (a handler that threw
    /// without a rejected waitUntil is not a failure: docs/chromium.md).
    Failed,
}

impl Model {
    /// A user agent at time 0, online, with these service worker registrations.
    pub fn new(params: Parameters, workers: Vec<(SwRegistrationId, Origin)>) -> Model {
        Model {
            params,
            now: Timestamp(0),
            online: true,
            denied: Vec::new(),
            windows: workers.iter().map(|(_, o)| o.clone()).collect(),
            workers: workers
                .into_iter()
                .map(|(sw, origin)| ServiceWorker {
                    sw,
                    origin,
                    registered: true,
                })
                .collect(),
            registrations: Vec::new(),
            fired: Vec::new(),
            periodic: Vec::new(),
            periodic_granted: Vec::new(),
            engagement: Vec::new(),
            last_fired: Vec::new(),
            last_round: None,
        }
    }

    pub(crate) fn worker(&self, sw: SwRegistrationId) -> Option<&ServiceWorker> {
        self.workers.iter().find(|w| w.sw == sw && w.registered)
    }

    pub(crate) fn origin_of(&self, sw: SwRegistrationId) -> Option<Origin> {
        self.workers
            .iter()
            .find(|w| w.sw == sw)
            .map(|w| w.origin.clone())
    }

    fn find(&self, sw: SwRegistrationId, tag: &Tag) -> Option<usize> {
        self.registrations
            .iter()
            .position(|r| r.sw == sw && r.tag == *tag)
    }

    /// Online, for this origin: a denied origin is offline (the spec lets "online" be stricter
    /// per origin; Chromium fires anyway: docs/chromium.md).
    fn may_fire(&self, sw: SwRegistrationId) -> bool {
        let origin = self.origin_of(sw);
        self.online && !origin.is_some_and(|o| self.denied.contains(&o))
    }

    /// Who may register on `sw`: a secure context ([SecureContext]) of the origin of `sw`,
    /// which must exist.
    pub(crate) fn check_registrant(
        &self,
        caller: &Origin,
        sw: SwRegistrationId,
    ) -> Result<(), DomExceptionName> {
        if !caller.is_potentially_trustworthy() {
            return Err(DomExceptionName::SecurityError);
        }
        match self.worker(sw) {
            None => Err(DomExceptionName::InvalidStateError),
            Some(w) if w.origin != *caller => Err(DomExceptionName::SecurityError),
            Some(_) => Ok(()),
        }
    }

    /// Who may read (or remove) `sw`'s registrations: a secure context, of `sw`'s origin if
    /// `sw` still exists (one that does not has nothing to read).
    pub(crate) fn check_reader(
        &self,
        caller: &Origin,
        sw: SwRegistrationId,
    ) -> Result<(), DomExceptionName> {
        if !caller.is_potentially_trustworthy() {
            return Err(DomExceptionName::SecurityError);
        }
        match self.worker(sw) {
            Some(w) if w.origin != *caller => Err(DomExceptionName::SecurityError),
            _ => Ok(()),
        }
    }

    /// `register(tag)` from a context of `caller` on `sw`.
    pub fn register(
        &mut self,
        caller: &Origin,
        sw: SwRegistrationId,
        tag: &Tag,
    ) -> Result<(), DomExceptionName> {
        self.check_registrant(caller, sw)?;
        // 2. No active worker: every registration here has one.
        // 3. The user disabled background sync (the spec checks it before the window; Chromium
        //    after: the spec decides, docs/chromium.md).
        if self.denied.contains(caller) {
            return Err(DomExceptionName::NotAllowedError);
        }
        // 4-6. In the background: no window client.
        if !self.windows.contains(caller) {
            return Err(DomExceptionName::InvalidAccessError);
        }
        if tag.utf8_len() > self.params.max_tag_bytes {
            return Err(DomExceptionName::InvalidAccessError);
        }
        // 7-8. An existing registration.
        if let Some(i) = self.find(sw, tag) {
            match self.registrations[i].state {
                // 8.1 waiting → pending, then 8.4 fire if online (the spec decides; Chromium
                // keeps the back-off: docs/chromium.md).
                State::Waiting => {
                    self.registrations[i].state = State::Pending;
                    self.fire_if_possible(i);
                }
                // 8.2 firing → reregisteredWhileFiring. Its attempts are reset when the event
                // completes (the spec has no attempt count; Chromium resets them then).
                State::Firing => self.registrations[i].state = State::ReregisteredWhileFiring,
                State::Pending => self.fire_if_possible(i),
                State::ReregisteredWhileFiring => {}
            }
            return Ok(());
        }
        // 9. A new one, within the origin's cap.
        let held = self
            .registrations
            .iter()
            .filter(|r| self.origin_of(r.sw).as_ref() == Some(caller))
            .count();
        if self
            .params
            .max_registrations_per_origin
            .is_some_and(|cap| held >= cap)
        {
            return Err(DomExceptionName::QuotaExceededError);
        }
        self.registrations.push(Registration {
            sw,
            tag: tag.clone(),
            state: State::Pending,
            attempts: 0,
            retry_at: self.now,
            event: None,
        });
        let i = self.registrations.len() - 1;
        self.fire_if_possible(i);
        Ok(())
    }

    /// `getTags()` from `caller` on `sw`.
    pub fn get_tags(
        &self,
        caller: &Origin,
        sw: SwRegistrationId,
    ) -> Result<Vec<Tag>, DomExceptionName> {
        self.check_reader(caller, sw)?;
        // The list's order: the order of registration (the spec's getTags(); Chromium sorts by
        // UTF-8 bytes: docs/chromium.md).
        Ok(self
            .registrations
            .iter()
            .filter(|r| r.sw == sw)
            .map(|r| r.tag.clone())
            .collect())
    }

    fn fire_if_possible(&mut self, i: usize) {
        if self.registrations[i].state == State::Pending && self.may_fire(self.registrations[i].sw)
        {
            self.fire(i);
        }
    }

    /// Fire a sync event, steps 1-2.
    fn fire(&mut self, i: usize) {
        let r = &mut self.registrations[i];
        r.state = State::Firing;
        let last_chance = r.attempts + 1 >= self.params.max_attempts;
        let deadline = self.now.saturating_add(self.params.max_sync_event_duration);
        r.event = Some((last_chance, deadline));
        self.fired.push(Fired {
            sw: r.sw,
            tag: r.tag.clone(),
            last_chance,
            periodic: false,
        });
    }

    /// The event of (`sw`, `tag`) settled: fire a sync event, steps 4-5.
    pub fn settle(&mut self, sw: SwRegistrationId, tag: &Tag, how: Settled) {
        let Some(i) = self.find(sw, tag) else { return };
        let Some((last_chance, _)) = self.registrations[i].event.take() else {
            return;
        };
        if self.registrations[i].state == State::ReregisteredWhileFiring {
            self.registrations[i].state = State::Pending;
            self.registrations[i].attempts = 0;
            self.fire_if_possible(i);
            return;
        }
        if how == Settled::Fulfilled || last_chance {
            self.registrations.remove(i);
            return;
        }
        let r = &mut self.registrations[i];
        r.attempts += 1;
        r.state = State::Waiting;
        r.retry_at = self.now.saturating_add(self.params.retry_delay(r.attempts));
    }

    /// Events in flight, by (service worker registration, tag).
    pub fn in_flight(&self) -> Vec<(SwRegistrationId, Tag)> {
        let mut v: Vec<(SwRegistrationId, Tag)> = self
            .registrations
            .iter()
            .filter(|r| r.event.is_some())
            .map(|r| (r.sw, r.tag.clone()))
            .collect();
        v.sort();
        v
    }

    /// Time passes to `target`, with every time limit and back-off on the way, in time order.
    pub fn advance_to(&mut self, target: Timestamp) {
        loop {
            let next_deadline = self
                .registrations
                .iter()
                .filter_map(|r| r.event.map(|(_, d)| d))
                .min();
            let next_retry = self
                .registrations
                .iter()
                .filter(|r| r.state == State::Waiting)
                .map(|r| r.retry_at)
                .min();
            let next = [next_deadline, next_retry, self.periodic_next()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= target => {
                    self.now = self.now.max(t);
                    self.periodic_time_outs(t);
                    let timed_out: Vec<(SwRegistrationId, Tag)> = self
                        .registrations
                        .iter()
                        .filter(|r| r.event.is_some_and(|(_, d)| d <= t))
                        .map(|r| (r.sw, r.tag.clone()))
                        .collect();
                    for (sw, tag) in timed_out {
                        self.settle(sw, &tag, Settled::Failed);
                    }
                    for i in 0..self.registrations.len() {
                        let r = &self.registrations[i];
                        if r.state == State::Waiting && r.retry_at <= t {
                            self.registrations[i].state = State::Pending;
                            self.fire_if_possible(i);
                        }
                    }
                    self.fire_due_periodic();
                }
                _ => break,
            }
        }
        self.now = self.now.max(target);
        self.fire_due_periodic();
    }

    /// The network went online or offline.
    pub fn set_online(&mut self, online: bool) {
        let was = self.online;
        self.online = online;
        if online && !was {
            for i in 0..self.registrations.len() {
                self.fire_if_possible(i);
            }
            self.fire_due_periodic();
        }
    }

    /// The permission of `origin` changed.
    pub fn set_permission(&mut self, origin: &Origin, granted: bool) {
        let was_denied = self.denied.contains(origin);
        self.denied.retain(|o| o != origin);
        if !granted {
            self.denied.push(origin.clone());
        } else if was_denied {
            for i in 0..self.registrations.len() {
                if self.origin_of(self.registrations[i].sw).as_ref() == Some(origin) {
                    self.fire_if_possible(i);
                }
            }
        }
    }

    /// Whether `origin` has a window client.
    pub fn set_window(&mut self, origin: &Origin, open: bool) {
        self.windows.retain(|o| o != origin);
        if open {
            self.windows.push(origin.clone());
        }
    }

    /// The worker of `sw` died: its events in flight failed.
    pub fn terminate_worker(&mut self, sw: SwRegistrationId) {
        for (s, tag) in self.in_flight() {
            if s == sw {
                self.settle(s, &tag, Settled::Failed);
            }
        }
        for (s, tag) in self.periodic_in_flight() {
            if s == sw {
                self.settle_periodic(s, &tag, Settled::Failed);
            }
        }
    }

    /// `sw` was unregistered: its registrations are gone, events in flight forgotten.
    pub fn unregister(&mut self, sw: SwRegistrationId) {
        for w in &mut self.workers {
            if w.sw == sw {
                w.registered = false;
            }
        }
        self.registrations.retain(|r| r.sw != sw);
        self.periodic.retain(|r| r.sw != sw);
    }

    /// A user-agent restart: events in flight are lost without counting; registrations are
    /// pending again (or still backing off) and fire when they can.
    pub fn restart(&mut self) {
        for r in &mut self.registrations {
            // A firing (or re-registered while firing) registration lost its event.
            if r.event.take().is_some() || r.state == State::ReregisteredWhileFiring {
                r.state = State::Pending;
            }
            if r.state == State::Waiting && r.retry_at <= self.now {
                r.state = State::Pending;
            }
        }
        for i in 0..self.registrations.len() {
            self.fire_if_possible(i);
        }
        self.periodic_restart();
    }

    /// The OS wake-up the user agent asks for: the soonest back-off end, and no later than the
    /// recovery time while events are in flight.
    pub fn wake_up(&self) -> Option<Timestamp> {
        let retry = self
            .registrations
            .iter()
            .filter(|r| r.state == State::Waiting)
            .map(|r| r.retry_at)
            .min();
        let recovery = self
            .registrations
            .iter()
            .any(|r| r.event.is_some())
            .then(|| self.now.saturating_add(self.params.min_sync_recovery_time));
        let recovery = recovery.or_else(|| {
            self.periodic
                .iter()
                .any(|r| r.deadline.is_some())
                .then(|| self.now.saturating_add(self.params.min_sync_recovery_time))
        });
        [retry, recovery, self.periodic_wake_up()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Takes the events fired since the last call, sorted (the spec leaves their order open).
    pub fn take_fired(&mut self) -> Vec<Fired> {
        let mut f = std::mem::take(&mut self.fired);
        f.sort();
        f
    }
}
