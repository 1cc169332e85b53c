//! The reference model: the one-shot algorithms of the
//! [spec](https://wicg.github.io/background-sync/spec/), written from the spec's text alone, as
//! plainly as it reads. Lists and linear scans; no indexes, no batching, no storage.
//!
//! It is an independent oracle: it imports nothing from the engine (no parameters type, no tag
//! type, no origin type, no back-off or byte-count function; `tests/independent.rs` checks the
//! imports). Where the spec leaves a choice to the user agent, the rule says so at the place it
//! is made: `Chromium:` for Chromium's choice (measured or read in its source, docs/chromium.md),
//! `Ours:` for a limit or a rule of ours that Chromium does not have.

/// A tag: a DOMString, that is UTF-16 code units, lone surrogates included.
pub type Tag = Vec<u16>;

/// A service worker registration's id.
pub type SwId = u64;

/// The name of the DOMException a promise rejects with.
pub type Exception = &'static str;

/// The user agent's constants the spec leaves to it. Times in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// Chromium: attempts a one-shot registration gets; the last is dispatched with
    /// `lastChance` true. 3.
    pub max_attempts: u32,
    /// Chromium: the back-off after the first failed attempt. 5 minutes.
    pub initial_retry_delay: u64,
    /// Chromium: each further failure multiplies the back-off by this. 3.
    pub retry_delay_factor: u32,
    /// Chromium: the time limit of one event. 3 minutes.
    pub max_event_duration: u64,
    /// Chromium: while events are in flight, the wake-up asked of the OS is at most this far
    /// away. 6 minutes.
    pub recovery_time: u64,
    /// Chromium: the longest tag, in bytes of its UTF-8 encoding. 10,240.
    pub max_tag_bytes: usize,
    /// Ours: the most one-shot (and, separately, periodic) registrations of one origin.
    pub max_registrations_per_origin: Option<usize>,
    /// Ours: the most bytes one origin's one-shot registrations may take: two bytes a code unit
    /// of the tag plus 64 a registration.
    pub max_bytes_per_origin: Option<u64>,
    /// Ours: the most bytes the one-shot registrations of all origins may take, counted the
    /// same way.
    pub max_bytes_total: Option<u64>,
    /// Chromium: the least time between two rounds of one origin's periodic events, and the unit
    /// periodic intervals are rounded up to. 12 hours.
    pub min_periodic_interval: u64,
}

impl Params {
    /// Chromium's constants, with no caps of ours.
    pub fn chromium() -> Params {
        Params {
            max_attempts: 3,
            initial_retry_delay: 5 * 60 * 1000,
            retry_delay_factor: 3,
            max_event_duration: 3 * 60 * 1000,
            recovery_time: 6 * 60 * 1000,
            max_tag_bytes: 10_240,
            max_registrations_per_origin: None,
            max_bytes_per_origin: None,
            max_bytes_total: None,
            min_periodic_interval: 12 * 60 * 60 * 1000,
        }
    }

    /// Chromium: the back-off after failed attempt `n` (1-based) is the initial delay times the
    /// factor to the power `n - 1` (5 min, 15 min, 45 min, …), and never overflows.
    pub fn retry_delay(&self, n: u32) -> u64 {
        let mut delay = self.initial_retry_delay;
        for _ in 1..n {
            delay = delay.saturating_mul(u64::from(self.retry_delay_factor));
        }
        delay
    }
}

/// The number of bytes of `tag`'s UTF-8 encoding. Converting a DOMString to UTF-8 (the Encoding
/// standard's "UTF-8 encode", after the scalar-value conversion) makes each lone surrogate
/// U+FFFD, three bytes; a surrogate pair is one code point of four bytes.
pub fn utf8_bytes(tag: &[u16]) -> usize {
    let mut bytes = 0;
    let mut i = 0;
    while i < tag.len() {
        let u = tag[i];
        let pair = (0xD800..0xDC00).contains(&u)
            && tag.get(i + 1).is_some_and(|v| (0xDC00..0xE000).contains(v));
        bytes += match u {
            _ if pair => 4,
            0..0x80 => 1,
            0x80..0x800 => 2,
            _ => 3,
        };
        i += if pair { 2 } else { 1 };
    }
    bytes
}

/// [Potentially trustworthy](https://w3c.github.io/webappsec-secure-contexts/#is-origin-trustworthy)
/// for the serialized origins scenarios use: `https`/`wss`, or a loopback host.
pub fn is_secure(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
    matches!(scheme, "https" | "wss") || matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

/// A permission's state ([Permissions](https://w3c.github.io/permissions/#dom-permissionstate)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// granted
    Granted,
    /// denied: the user disabled the feature.
    Denied,
    /// prompt: the user has not decided.
    Prompt,
}

/// What kind of environment calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallerKind {
    /// A top-level window: a client whose frame type is top-level.
    Window,
    /// A dedicated worker owned by a top-level window of its origin.
    DedicatedWorker,
    /// The service worker itself (no window of its own).
    ServiceWorker,
    /// A nested frame inside a top-level window of another origin: its frame type is nested.
    NestedFrame,
}

impl CallerKind {
    /// Whether the caller is, or is owned by, a client whose frame type is top-level (or
    /// auxiliary): its origin is then not "in the background".
    fn is_top_level(self) -> bool {
        matches!(self, CallerKind::Window | CallerKind::DedicatedWorker)
    }
}

/// Who calls: an environment of `origin`, of `kind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The environment's origin, serialized.
    pub origin: String,
    /// Its kind.
    pub kind: CallerKind,
}

/// A sync registration's state ([spec](https://wicg.github.io/background-sync/spec/#sync-registration-registration-state)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    pub sw: SwId,
    /// Its tag.
    pub tag: Tag,
    /// Its state.
    pub state: State,
    /// Chromium: failed attempts so far (the spec counts none; Chromium counts them to decide
    /// `lastChance`).
    pub attempts: u32,
    /// When its back-off ends (meaningful while waiting).
    pub retry_at: u64,
    /// While firing: whether this attempt is the last chance, and when its time limit ends.
    pub event: Option<(bool, u64)>,
}

/// A service worker registration the model knows of.
#[derive(Debug, Clone)]
pub struct ServiceWorker {
    /// Its id.
    pub sw: SwId,
    /// Its origin, serialized.
    pub origin: String,
    /// Whether it has an active worker.
    pub active: bool,
    /// False once unregistered.
    pub registered: bool,
}

/// An event the model fired.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fired {
    /// The registration's service worker registration.
    pub sw: SwId,
    /// The event's `tag`.
    pub tag: Tag,
    /// `SyncEvent.lastChance` (false for a `periodicsync` event).
    pub last_chance: bool,
    /// A `periodicsync` event, not a `sync` event.
    pub periodic: bool,
}

/// How the service worker met an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listener {
    /// The listener called `waitUntil(p)`, or not (`None`), then returned or threw; `p`
    /// fulfilled (`Some(true)`) or rejected (`Some(false)`).
    Ran {
        /// How the promise given to `waitUntil` settled, if one was.
        wait_until: Option<bool>,
        /// Whether the listener threw.
        threw: bool,
    },
    /// The worker died while the event ran.
    WorkerDied,
    /// No worker could be started to run the event.
    WorkerFailedToStart,
}

/// How an event ended, as the spec's "fire a sync event" sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Every extend lifetime promise fulfilled.
    Fulfilled,
    /// A promise rejected, the worker died or never started, or the time limit passed.
    Failed,
}

impl Listener {
    /// Fire a sync event, step 3-5: the outcome is decided by the extend lifetime promises
    /// ("waiting for all of promises"): a rejection fails; a listener that threw adds no
    /// promise and fails nothing (Chromium 156 agrees, measured: docs/chromium.md). A worker
    /// that died or could not start is a failure (the spec's "terminated"; Chromium counts a
    /// start failure as a failed attempt).
    pub fn settled(self) -> Settled {
        match self {
            Listener::Ran {
                wait_until: Some(false),
                ..
            }
            | Listener::WorkerDied
            | Listener::WorkerFailedToStart => Settled::Failed,
            Listener::Ran { .. } => Settled::Fulfilled,
        }
    }
}

/// The engagement of an origin (Chromium's site engagement levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engagement {
    /// None: no periodic events.
    None,
    /// Minimal.
    Minimal,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
}

/// The whole user agent, as the spec describes it.
#[derive(Debug, Clone)]
pub struct Model {
    /// The constants.
    pub params: Params,
    /// The time, in ms.
    pub now: u64,
    /// Whether the user agent is online.
    pub online: bool,
    /// The "background-sync" permission of origins where it is not granted.
    pub permissions: Vec<(String, Permission)>,
    /// Origins with a top-level window client.
    pub windows: Vec<String>,
    /// Service worker registrations.
    pub workers: Vec<ServiceWorker>,
    /// Sync registrations, in the order they were made.
    pub registrations: Vec<Registration>,
    /// Events fired since the caller last took them.
    pub fired: Vec<Fired>,
    /// Periodic sync registrations, in the order they were made (`periodic`).
    pub periodic: Vec<crate::periodic::PeriodicRegistration>,
    /// The "periodic-background-sync" permission of origins where it is set (prompt elsewhere).
    pub periodic_permissions: Vec<(String, Permission)>,
    /// Origins' engagement, where set (high otherwise).
    pub engagement: Vec<(String, Engagement)>,
    /// When each origin's last round of periodic events fired.
    pub last_fired: Vec<(String, u64)>,
    /// When the last round of any origin fired.
    pub last_round: Option<u64>,
}

impl Model {
    /// A user agent at time 0, online, with these service worker registrations (active) and a
    /// top-level window of each of their origins.
    pub fn new(params: Params, workers: Vec<(SwId, String)>) -> Model {
        Model {
            params,
            now: 0,
            online: true,
            permissions: Vec::new(),
            windows: workers.iter().map(|(_, o)| o.clone()).collect(),
            workers: workers
                .into_iter()
                .map(|(sw, origin)| ServiceWorker {
                    sw,
                    origin,
                    active: true,
                    registered: true,
                })
                .collect(),
            registrations: Vec::new(),
            fired: Vec::new(),
            periodic: Vec::new(),
            periodic_permissions: Vec::new(),
            engagement: Vec::new(),
            last_fired: Vec::new(),
            last_round: None,
        }
    }

    pub(crate) fn worker(&self, sw: SwId) -> Option<&ServiceWorker> {
        self.workers.iter().find(|w| w.sw == sw && w.registered)
    }

    pub(crate) fn origin_of(&self, sw: SwId) -> Option<&str> {
        self.workers
            .iter()
            .find(|w| w.sw == sw)
            .map(|w| w.origin.as_str())
    }

    fn find(&self, sw: SwId, tag: &[u16]) -> Option<usize> {
        self.registrations
            .iter()
            .position(|r| r.sw == sw && r.tag == tag)
    }

    /// The "background-sync" permission of `origin` (granted by default: a default powerful
    /// feature).
    pub fn permission(&self, origin: &str) -> Permission {
        self.permissions
            .iter()
            .find(|(o, _)| o == origin)
            .map_or(Permission::Granted, |(_, p)| *p)
    }

    /// "Online", for registrations of `sw`: the spec lets a user agent define it per origin;
    /// ours holds an origin whose permission is denied (Chromium fires anyway:
    /// docs/chromium.md).
    fn may_fire(&self, sw: SwId) -> bool {
        self.online
            && self
                .origin_of(sw)
                .is_none_or(|o| self.permission(o) != Permission::Denied)
    }

    /// "In the background": no client of `origin` whose frame type is top-level or auxiliary,
    /// the caller included.
    pub(crate) fn in_background(&self, caller: &Caller) -> bool {
        !caller.kind.is_top_level() && !self.windows.contains(&caller.origin)
    }

    /// Who may register on `sw`: a secure context (the IDL's [SecureContext]) of the origin of
    /// `sw` (a registration of another origin is not reachable: SecurityError), which must
    /// exist (InvalidStateError), with an active worker (step 2).
    pub(crate) fn check_registrant(&self, caller: &Caller, sw: SwId) -> Result<(), Exception> {
        if !is_secure(&caller.origin) {
            return Err("SecurityError");
        }
        match self.worker(sw) {
            None => Err("InvalidStateError"),
            Some(w) if w.origin != caller.origin => Err("SecurityError"),
            // 2. If the registration's active worker is null, reject with InvalidStateError.
            Some(w) if !w.active => Err("InvalidStateError"),
            Some(_) => Ok(()),
        }
    }

    /// Who may read (or remove) `sw`'s registrations: a secure context, of `sw`'s origin if
    /// `sw` still exists (one that does not has nothing to read).
    pub(crate) fn check_reader(&self, caller: &Caller, sw: SwId) -> Result<(), Exception> {
        if !is_secure(&caller.origin) {
            return Err("SecurityError");
        }
        match self.worker(sw) {
            Some(w) if w.origin != caller.origin => Err("SecurityError"),
            _ => Ok(()),
        }
    }

    /// [`register(tag)`](https://wicg.github.io/background-sync/spec/#dom-syncmanager-register)
    /// from `caller` on `sw`.
    pub fn register(&mut self, caller: &Caller, sw: SwId, tag: &[u16]) -> Result<(), Exception> {
        // 1-2. The registration, with an active worker.
        self.check_registrant(caller, sw)?;
        // 3. The user disabled background sync: denied, not prompt (the spec checks it before
        //    the window; Chromium after: the spec decides, docs/chromium.md).
        if self.permission(&caller.origin) == Permission::Denied {
            return Err("NotAllowedError");
        }
        // 4-6. In the background.
        if self.in_background(caller) {
            return Err("InvalidAccessError");
        }
        // Chromium: a tag longer than 10,240 bytes of UTF-8 is refused with InvalidAccessError.
        if utf8_bytes(tag) > self.params.max_tag_bytes {
            return Err("InvalidAccessError");
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
                // 8.2 firing → reregisteredWhileFiring. Chromium: its attempts are reset when
                // the event completes.
                State::Firing => self.registrations[i].state = State::ReregisteredWhileFiring,
                State::Pending => self.fire_if_possible(i),
                State::ReregisteredWhileFiring => {}
            }
            return Ok(());
        }
        // 9. A new one. Ours: within the origin's caps (QuotaExceededError).
        let mine: Vec<&Registration> = self
            .registrations
            .iter()
            .filter(|r| self.origin_of(r.sw) == Some(caller.origin.as_str()))
            .collect();
        if self
            .params
            .max_registrations_per_origin
            .is_some_and(|cap| mine.len() >= cap)
        {
            return Err("QuotaExceededError");
        }
        let footprint = |t: &[u16]| t.len() as u64 * 2 + 64;
        let bytes: u64 = mine.iter().map(|r| footprint(&r.tag)).sum();
        if self
            .params
            .max_bytes_per_origin
            .is_some_and(|cap| bytes + footprint(tag) > cap)
        {
            return Err("QuotaExceededError");
        }
        let all: u64 = self.registrations.iter().map(|r| footprint(&r.tag)).sum();
        if self
            .params
            .max_bytes_total
            .is_some_and(|cap| all + footprint(tag) > cap)
        {
            return Err("QuotaExceededError");
        }
        self.registrations.push(Registration {
            sw,
            tag: tag.to_vec(),
            state: State::Pending,
            attempts: 0,
            retry_at: self.now,
            event: None,
        });
        let i = self.registrations.len() - 1;
        self.fire_if_possible(i);
        Ok(())
    }

    /// [`register`](Model::register) when the store fails the call's write. Ours: the calls
    /// that write (a new registration; a waiting one made pending, whose end of back-off is
    /// written) reject with UnknownError and change nothing; the others write nothing and go
    /// as usual. (Chromium disables the whole manager until restart on a write error.)
    pub fn register_failing_write(
        &mut self,
        caller: &Caller,
        sw: SwId,
        tag: &[u16],
    ) -> Result<(), Exception> {
        let mut trial = self.clone();
        let before = self.find(sw, tag).map(|i| self.registrations[i].state);
        let result = trial.register(caller, sw, tag);
        if result.is_ok() && matches!(before, None | Some(State::Waiting)) {
            return Err("UnknownError");
        }
        *self = trial;
        result
    }

    /// [`getTags()`](https://wicg.github.io/background-sync/spec/#dom-syncmanager-gettags)
    /// from `caller` on `sw`: the tags of the list, in its order (the order of registration;
    /// Chromium sorts them by their UTF-8 bytes: docs/chromium.md).
    pub fn get_tags(&self, caller: &Caller, sw: SwId) -> Result<Vec<Tag>, Exception> {
        self.check_reader(caller, sw)?;
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

    /// [Fire a sync event](https://wicg.github.io/background-sync/spec/#fire-a-sync-event),
    /// steps 1-2.
    fn fire(&mut self, i: usize) {
        let now = self.now;
        let (max_attempts, limit) = (self.params.max_attempts, self.params.max_event_duration);
        let r = &mut self.registrations[i];
        // 1. Set the state to firing.
        r.state = State::Firing;
        // 2. lastChance: the user agent will not retry after this attempt (Chromium: this is
        //    the max_attempts-th attempt).
        let last_chance = r.attempts + 1 >= max_attempts;
        r.event = Some((last_chance, now.saturating_add(limit)));
        self.fired.push(Fired {
            sw: r.sw,
            tag: r.tag.clone(),
            last_chance,
            periodic: false,
        });
    }

    /// The event of (`sw`, `tag`) settled: fire a sync event, steps 4-5.
    pub fn settle(&mut self, sw: SwId, tag: &[u16], how: Settled) {
        let Some(i) = self.find(sw, tag) else { return };
        let Some((last_chance, _)) = self.registrations[i].event.take() else {
            return;
        };
        // 4.1 / 5.1 Registered again while firing: pending, and fire again if online.
        if self.registrations[i].state == State::ReregisteredWhileFiring {
            self.registrations[i].state = State::Pending;
            self.registrations[i].attempts = 0;
            self.fire_if_possible(i);
            return;
        }
        // 4.2 Fulfilled, or 5.3 the last chance: remove it.
        if how == Settled::Fulfilled || last_chance {
            self.registrations.remove(i);
            return;
        }
        // 5.2 Waiting, and pending again after the back-off.
        let now = self.now;
        let r = &mut self.registrations[i];
        r.attempts += 1;
        r.state = State::Waiting;
        r.retry_at = now.saturating_add(self.params.retry_delay(r.attempts));
    }

    /// Events in flight, by (service worker registration, tag), sorted.
    pub fn in_flight(&self) -> Vec<(SwId, Tag)> {
        let mut v: Vec<(SwId, Tag)> = self
            .registrations
            .iter()
            .filter(|r| r.event.is_some())
            .map(|r| (r.sw, r.tag.clone()))
            .collect();
        v.sort();
        v
    }

    /// Time passes to `target`, with every time limit and back-off on the way, in time order.
    pub fn advance_to(&mut self, target: u64) {
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
                    let timed_out: Vec<(SwId, Tag)> = self
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

    /// The wall clock was set back `back` ms (by the user, or by time sync). The spec counts
    /// back-offs in "a user agent defined delay" and says nothing of the clock; Chromium keeps
    /// wall-clock times, so its waits stretch by the jump. Ours: every wait keeps the time it
    /// had left — back-offs, events' time limits, and the periodic schedule: anchors (times
    /// before 0 are 0), retries, each origin's last round and the last round of all. All move
    /// together, so nothing becomes due and nothing fires.
    pub fn clock_went_back(&mut self, back: u64) {
        let back = back.min(self.now);
        let shift = |t: u64| t.saturating_sub(back);
        self.now -= back;
        for r in &mut self.registrations {
            if r.state == State::Waiting {
                r.retry_at = shift(r.retry_at);
            }
            if let Some((last_chance, deadline)) = r.event {
                r.event = Some((last_chance, shift(deadline)));
            }
        }
        for p in &mut self.periodic {
            p.anchor = shift(p.anchor);
            p.retry_at = p.retry_at.map(shift);
            p.deadline = p.deadline.map(shift);
        }
        for (_, t) in &mut self.last_fired {
            *t = shift(*t);
        }
        self.last_round = self.last_round.map(shift);
    }

    /// The network went online or offline: on going online, fire every pending registration.
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

    /// The "background-sync" permission of `origin` changed. Leaving denied, its pending
    /// registrations are "online" again and fire.
    pub fn set_permission(&mut self, origin: &str, state: Permission) {
        let was = self.permission(origin);
        self.permissions.retain(|(o, _)| o != origin);
        self.permissions.push((origin.to_owned(), state));
        if was == Permission::Denied && state != Permission::Denied {
            for i in 0..self.registrations.len() {
                if self.origin_of(self.registrations[i].sw) == Some(origin) {
                    self.fire_if_possible(i);
                }
            }
        }
    }

    /// Whether `origin` has a top-level window client.
    pub fn set_window(&mut self, origin: &str, open: bool) {
        self.windows.retain(|o| o != origin);
        if open {
            self.windows.push(origin.to_owned());
        }
    }

    /// A new service worker registration, without an active worker yet.
    pub fn add_worker(&mut self, sw: SwId, origin: &str) {
        self.workers.push(ServiceWorker {
            sw,
            origin: origin.to_owned(),
            active: false,
            registered: true,
        });
    }

    /// `sw`'s worker activated.
    pub fn activate(&mut self, sw: SwId) {
        for w in &mut self.workers {
            if w.sw == sw && w.registered {
                w.active = true;
            }
        }
    }

    /// The worker of `sw` died: its events in flight failed.
    pub fn terminate_worker(&mut self, sw: SwId) {
        let how = Listener::WorkerDied.settled();
        for (s, tag) in self.in_flight() {
            if s == sw {
                self.settle(s, &tag, how);
            }
        }
        for (s, tag) in self.periodic_in_flight() {
            if s == sw {
                self.settle_periodic(s, &tag, how);
            }
        }
    }

    /// `sw` was unregistered: its registrations are gone, events in flight forgotten.
    pub fn unregister(&mut self, sw: SwId) {
        for w in &mut self.workers {
            if w.sw == sw {
                w.registered = false;
            }
        }
        self.registrations.retain(|r| r.sw != sw);
        self.periodic.retain(|r| r.sw != sw);
    }

    /// [Clear Site Data](https://w3c.github.io/webappsec-clear-site-data/) for `origin`
    /// ("storage"): its service worker registrations stay, but every sync registration of the
    /// origin, one-shot and periodic, is gone and its events in flight are forgotten.
    pub fn clear_site_data(&mut self, origin: &str) {
        let sws: Vec<SwId> = self
            .workers
            .iter()
            .filter(|w| w.origin == origin)
            .map(|w| w.sw)
            .collect();
        self.registrations.retain(|r| !sws.contains(&r.sw));
        self.periodic.retain(|r| !sws.contains(&r.sw));
    }

    /// A user-agent restart: events in flight are lost without counting (Chromium: the attempt
    /// is not counted); registrations are pending again (or still backing off) and fire when
    /// they can.
    pub fn restart(&mut self) {
        let now = self.now;
        for r in &mut self.registrations {
            if r.event.take().is_some() || r.state == State::ReregisteredWhileFiring {
                r.state = State::Pending;
            }
            if r.state == State::Waiting && r.retry_at <= now {
                r.state = State::Pending;
            }
        }
        for i in 0..self.registrations.len() {
            self.fire_if_possible(i);
        }
        self.periodic_restart();
    }

    /// Chromium: the OS wake-up the user agent asks for: the soonest back-off end, and no later
    /// than the recovery time while events are in flight.
    pub fn wake_up(&self) -> Option<u64> {
        let retry = self
            .registrations
            .iter()
            .filter(|r| r.state == State::Waiting)
            .map(|r| r.retry_at)
            .min();
        let in_flight = self.registrations.iter().any(|r| r.event.is_some())
            || self.periodic.iter().any(|r| r.deadline.is_some());
        let recovery = in_flight.then(|| self.now.saturating_add(self.params.recovery_time));
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
