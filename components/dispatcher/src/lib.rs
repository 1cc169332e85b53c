//! Turns the core's dispatch effects into calls on the embedder's [`ServiceWorkerHost`], enforces
//! each event's time limit, and hands outcomes back.
//!
//! Like the core, the [`Dispatcher`] reads no clock: the driver gives it the time, asks it when
//! the next time limit runs out ([`Dispatcher::poll_timeout`]) and feeds the outcomes it returns to
//! [`Scheduler::dispatch_completed`](bgsync_scheduler::Scheduler::dispatch_completed). Outcomes
//! come back from the host through an [`OutcomeReporter`], from any thread, at any time; the
//! first report of an event wins and later ones (after a time-out, say) are dropped.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use bgsync_dispatcher::{Dispatcher, OutcomeReporter, RegistrationInfo, ServiceWorkerHost, SyncEventDispatch};
//! use bgsync_scheduler::{DispatchOutcome, DispatchRequest};
//! use bgsync_types::{DispatchId, Origin, SwRegistrationId, Tag, Timestamp};
//!
//! /// A host whose worker always succeeds at once.
//! struct Host;
//! impl ServiceWorkerHost for Host {
//!     fn registration(&self, _sw: SwRegistrationId) -> Option<RegistrationInfo> {
//!         Some(RegistrationInfo { origin: Origin::parse("https://a.example").unwrap(), partition: Default::default(), has_active_worker: true })
//!     }
//!     fn fire_sync_event(&self, _event: SyncEventDispatch, reply: OutcomeReporter) {
//!         reply.report(DispatchOutcome::Fulfilled);
//!     }
//! }
//!
//! let reported = Arc::new(Mutex::new(Vec::new()));
//! let sink = reported.clone();
//! let mut dispatcher = Dispatcher::new(Arc::new(Host), Arc::new(move |id, outcome| sink.lock().unwrap().push((id, outcome))));
//! dispatcher.dispatch(Timestamp(0), DispatchRequest {
//!     id: DispatchId(1),
//!     sw: SwRegistrationId(1),
//!     origin: Origin::parse("https://a.example").unwrap(),
//!     tag: Tag::from("send-mail"),
//!     last_chance: false,
//!     time_limit: std::time::Duration::from_secs(180),
//!     kind: bgsync_types::SyncKind::OneShot,
//! });
//! let (id, outcome) = reported.lock().unwrap()[0];
//! assert_eq!(dispatcher.outcome_reported(id, outcome), Some(DispatchOutcome::Fulfilled));
//! ```

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

use bgsync_scheduler::{DispatchOutcome, DispatchRequest};
use bgsync_types::{DispatchId, Origin, Partition, SwRegistrationId, SyncKind, Tag, Timestamp};

/// An embedder's trait method panicked. The call it happened in fails with this; the engine
/// goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedderPanic {
    /// The method, as `Trait::method`.
    pub method: &'static str,
    /// The panic's message.
    pub message: String,
}

impl std::fmt::Display for EmbedderPanic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the embedder's {} panicked ({}); this is a fault of the embedder",
            self.method, self.message
        )
    }
}

/// Runs `f`, an embedder's trait method `method`, turning a panic into an [`EmbedderPanic`]
/// (logged as an error) so that a faulty embedder fails one call, not the engine.
pub fn contain<T>(method: &'static str, f: impl FnOnce() -> T) -> Result<T, EmbedderPanic> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a non-text panic payload".into());
        let fault = EmbedderPanic { method, message };
        tracing::error!(%fault, "embedder fault contained");
        fault
    })
}

/// What the host knows about a service worker registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationInfo {
    /// The origin that owns it.
    pub origin: Origin,
    /// The storage partition it is in (with the origin, its storage key); the default
    /// partition for an engine that keys storage by origin alone.
    pub partition: Partition,
    /// Whether it has an active worker.
    pub has_active_worker: bool,
}

/// A `sync` event for the host to fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncEventDispatch {
    /// Identifies the event in [`ServiceWorkerHost::terminate`].
    pub id: DispatchId,
    /// The service worker registration whose active worker receives the event.
    pub sw: SwRegistrationId,
    /// Its origin.
    pub origin: Origin,
    /// `SyncEvent.tag`.
    pub tag: Tag,
    /// `SyncEvent.lastChance` (always false for a `periodicsync` event).
    pub last_chance: bool,
    /// Which event to fire: `sync` (one-shot) or `periodicsync` (periodic, a
    /// `PeriodicSyncEvent` with the tag).
    pub kind: SyncKind,
}

/// The embedder's service-worker host: the part of the engine that owns service workers.
///
/// Methods are called from the Background Sync thread and must not block on it; long work
/// (starting a worker, running script) happens on the engine's own threads, which report back
/// through the [`OutcomeReporter`].
///
/// ```
/// use bgsync_dispatcher::{OutcomeReporter, RegistrationInfo, ServiceWorkerHost, SyncEventDispatch};
/// use bgsync_scheduler::DispatchOutcome;
/// use bgsync_types::{Origin, SwRegistrationId};
///
/// struct MyEngine { /* handles to the engine's service-worker threads */ }
///
/// impl ServiceWorkerHost for MyEngine {
///     fn registration(&self, sw: SwRegistrationId) -> Option<RegistrationInfo> {
///         // Look the registration up in the engine's service-worker registry.
///         Some(RegistrationInfo { origin: Origin::parse("https://a.example").unwrap(), partition: Default::default(), has_active_worker: true })
///     }
///     fn fire_sync_event(&self, event: SyncEventDispatch, reply: OutcomeReporter) {
///         // Post a task to the worker's thread: create a SyncEvent with event.tag and
///         // event.last_chance, dispatch it, wait for its extend-lifetime promises, then:
///         std::thread::spawn(move || reply.report(DispatchOutcome::Fulfilled));
///     }
/// }
/// ```
pub trait ServiceWorkerHost: Send + Sync + 'static {
    /// The registration `sw`, or `None` if there is no such registration.
    fn registration(&self, sw: SwRegistrationId) -> Option<RegistrationInfo>;

    /// Fires the functional event `sync` at the registration's active worker (starting it if
    /// need be) and reports, exactly once, how the event's `waitUntil` promises settled.
    /// Dropping `reply` without reporting counts as [`DispatchOutcome::WorkerTerminated`].
    fn fire_sync_event(&self, event: SyncEventDispatch, reply: OutcomeReporter);

    /// The event ran out of time or its registration is gone: stop it if you can (terminating
    /// the worker, as Chromium does). Its outcome will be ignored. The default does nothing.
    fn terminate(&self, event: DispatchId, sw: SwRegistrationId) {
        let _ = (event, sw);
    }
}

/// Where reported outcomes go: the driver's queue.
pub type OutcomeSink = Arc<dyn Fn(DispatchId, DispatchOutcome) + Send + Sync>;

/// Reports the outcome of one `sync` event, once, from any thread.
#[must_use = "an unreported event counts as a terminated worker"]
pub struct OutcomeReporter {
    id: DispatchId,
    sink: Option<OutcomeSink>,
}

impl OutcomeReporter {
    /// The event this reporter answers for.
    pub fn id(&self) -> DispatchId {
        self.id
    }

    /// Reports how the event ended.
    pub fn report(mut self, outcome: DispatchOutcome) {
        if let Some(sink) = self.sink.take() {
            sink(self.id, outcome);
        }
    }
}

impl Drop for OutcomeReporter {
    fn drop(&mut self) {
        if let Some(sink) = self.sink.take() {
            sink(self.id, DispatchOutcome::WorkerTerminated);
        }
    }
}

impl std::fmt::Debug for OutcomeReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutcomeReporter")
            .field("id", &self.id)
            .finish()
    }
}

/// The events in flight and their time limits.
///
/// Events get the same time limit, and the core numbers its dispatches in increasing order, so
/// a new event almost always has both the latest deadline and the largest id, and events mostly
/// end in the order they started. So the events sit in a queue in dispatch order (then both
/// deadline and id order), an ended one is marked and dropped when it reaches the front, and an
/// event is found by its id: at the front (the usual case) or by binary search, never through a
/// map that grows with the events in flight (at 100,000 events a hash map's probes miss the
/// cache: docs/performance.md, row 6). An event out of that order (a shorter limit asked for,
/// or an id below the last one) goes to a small ordered set instead.
#[derive(Default)]
struct InFlightEvents {
    /// In dispatch order, deadlines non-decreasing and ids increasing; the front is never an
    /// ended event.
    queue: VecDeque<QueuedEvent>,
    /// Events of `queue` not yet ended.
    queued: usize,
    /// Events out of that order, by deadline, and their deadlines by id.
    others: std::collections::BTreeMap<(Timestamp, DispatchId), SwRegistrationId>,
    other_deadlines: HashMap<DispatchId, Timestamp>,
}

struct QueuedEvent {
    deadline: Timestamp,
    id: DispatchId,
    sw: SwRegistrationId,
    ended: bool,
}

impl InFlightEvents {
    fn len(&self) -> usize {
        self.queued + self.others.len()
    }

    fn insert(&mut self, id: DispatchId, deadline: Timestamp, sw: SwRegistrationId) {
        if self
            .queue
            .back()
            .is_none_or(|e| e.deadline <= deadline && e.id < id)
        {
            self.queue.push_back(QueuedEvent {
                deadline,
                id,
                sw,
                ended: false,
            });
            self.queued += 1;
        } else if self.other_deadlines.insert(id, deadline).is_none() {
            self.others.insert((deadline, id), sw);
        }
    }

    /// Takes `id` out; returns its service worker registration if it was in flight.
    fn remove(&mut self, id: DispatchId) -> Option<SwRegistrationId> {
        if let Some(deadline) = self.other_deadlines.remove(&id) {
            return self.others.remove(&(deadline, id));
        }
        let place = match self.queue.front() {
            Some(front) if front.id == id => 0,
            _ => self.queue.binary_search_by_key(&id, |e| e.id).ok()?,
        };
        let event = &mut self.queue[place];
        if event.ended {
            return None;
        }
        event.ended = true;
        let sw = event.sw;
        self.queued -= 1;
        while self.queue.front().is_some_and(|e| e.ended) {
            self.queue.pop_front();
        }
        Some(sw)
    }

    /// The soonest deadline of an event in flight, and its id.
    fn first(&self) -> Option<(Timestamp, DispatchId)> {
        let queued = self.queue.front().map(|e| (e.deadline, e.id));
        let other = self.others.first_key_value().map(|(k, _)| *k);
        match (queued, other) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Every deadline moves back by `back` ms: the order holds.
    fn shift_back(&mut self, back: u64) {
        for e in &mut self.queue {
            e.deadline = Timestamp(e.deadline.0.saturating_sub(back));
        }
        for ((t, id), sw) in std::mem::take(&mut self.others) {
            let t = Timestamp(t.0.saturating_sub(back));
            self.others.insert((t, id), sw);
            self.other_deadlines.insert(id, t);
        }
    }
}

/// Fires events through a [`ServiceWorkerHost`] and enforces their time limits.
pub struct Dispatcher {
    host: Arc<dyn ServiceWorkerHost>,
    sink: OutcomeSink,
    in_flight: InFlightEvents,
}

impl Dispatcher {
    /// A dispatcher that fires through `host` and sends reported outcomes to `sink`.
    pub fn new(host: Arc<dyn ServiceWorkerHost>, sink: OutcomeSink) -> Self {
        Dispatcher {
            host,
            sink,
            in_flight: InFlightEvents::default(),
        }
    }

    /// The host events are fired through.
    pub fn host(&self) -> &Arc<dyn ServiceWorkerHost> {
        &self.host
    }

    /// How many events are in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Fires `request` at time `now`. If the registration has no active worker the attempt fails
    /// at once and the outcome is returned instead of being reported later.
    pub fn dispatch(
        &mut self,
        now: Timestamp,
        request: DispatchRequest,
    ) -> Option<(DispatchId, DispatchOutcome)> {
        let host = &self.host;
        let active = contain("ServiceWorkerHost::registration", || {
            host.registration(request.sw)
        })
        .ok()
        .flatten()
        .is_some_and(|r| r.has_active_worker && r.origin == request.origin);
        if !active {
            tracing::debug!(id = request.id.0, sw = %request.sw, "no active worker to receive sync");
            return Some((request.id, DispatchOutcome::WorkerFailedToStart));
        }
        let deadline = now.saturating_add(request.time_limit);
        self.in_flight.insert(request.id, deadline, request.sw);
        let reply = OutcomeReporter {
            id: request.id,
            sink: Some(self.sink.clone()),
        };
        let event = SyncEventDispatch {
            id: request.id,
            sw: request.sw,
            origin: request.origin,
            tag: request.tag,
            last_chance: request.last_chance,
            kind: request.kind,
        };
        let host = &self.host;
        if contain("ServiceWorkerHost::fire_sync_event", || {
            host.fire_sync_event(event, reply)
        })
        .is_err()
        {
            // The worker never got the event: a failed start. The reporter the panic dropped
            // reports a termination, which finds nothing in flight and is ignored.
            self.in_flight.remove(request.id);
            return Some((request.id, DispatchOutcome::WorkerFailedToStart));
        }
        None
    }

    fn terminate(&self, id: DispatchId, sw: SwRegistrationId) {
        let host = &self.host;
        let _ = contain("ServiceWorkerHost::terminate", || host.terminate(id, sw));
    }

    /// An outcome arrived from the host. Returns it if the event was still in flight; `None` if
    /// it had already timed out or been abandoned (the outcome is then ignored).
    pub fn outcome_reported(
        &mut self,
        id: DispatchId,
        outcome: DispatchOutcome,
    ) -> Option<DispatchOutcome> {
        self.in_flight.remove(id)?;
        Some(outcome)
    }

    /// Forgets an event (its registration is gone) and asks the host to stop it.
    pub fn abandon(&mut self, id: DispatchId) {
        if let Some(sw) = self.in_flight.remove(id) {
            self.terminate(id, sw);
        }
    }

    /// The wall clock went back from `from` to `to`: every time limit keeps the time it had
    /// left, so a hung event is still stopped on time.
    pub fn clock_went_back(&mut self, from: Timestamp, to: Timestamp) {
        let back = from.0.saturating_sub(to.0);
        self.in_flight.shift_back(back);
    }

    /// When the soonest time limit runs out.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.in_flight.first().map(|(t, _)| t)
    }

    /// Ends every event whose time limit ran out by `now`: the host is asked to terminate it and
    /// it is returned as [`DispatchOutcome::TimedOut`].
    pub fn handle_timeout(&mut self, now: Timestamp) -> Vec<(DispatchId, DispatchOutcome)> {
        let mut expired = Vec::new();
        while let Some((deadline, id)) = self.in_flight.first() {
            if deadline > now {
                break;
            }
            if let Some(sw) = self.in_flight.remove(id) {
                tracing::info!(id = id.0, %sw, "sync event ran past its time limit");
                self.terminate(id, sw);
                expired.push((id, DispatchOutcome::TimedOut));
            }
        }
        expired
    }
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("in_flight", &self.in_flight.len())
            .finish()
    }
}
