//! The Background Sync thread: runs the core, the dispatcher and the store on a tokio runtime.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bgsync_dispatcher::{contain, Dispatcher, EmbedderPanic, ServiceWorkerHost};
use bgsync_scheduler::{
    DispatchOutcome, Effect, LogEntry, LogEvent, RegisterCall, RegisterContext, Response,
    Scheduler, StoreOps,
};
use bgsync_store::{Recovery, RegistrationStore, StoreOp, StoredRegistration};
use bgsync_types::PersistId;
use bgsync_types::{
    DispatchId, DomException, DomExceptionName, Origin, PermissionState, RequestId, StorageKey,
    SwRegistrationId, Tag, Timestamp,
};
use tokio::sync::{mpsc, oneshot};

use crate::{Clock, Permissions, WindowClients};

/// Where an answer goes: an async caller's oneshot, or an engine thread's crossbeam channel.
pub(crate) enum Reply<T> {
    Async(oneshot::Sender<T>),
    Channel(crossbeam_channel::Sender<T>),
    /// An engine's callback, run on the Background Sync thread.
    Callback(Callback<T>),
    /// A thread parked until the answer is in its slot.
    Parked(ParkedReply<T>),
}

impl<T> Reply<T> {
    fn send(self, value: T) {
        // A caller that went away no longer wants the answer.
        match self {
            Reply::Async(tx) => {
                let _ = tx.send(value);
            }
            Reply::Channel(tx) => {
                let _ = tx.send(value);
            }
            Reply::Callback(mut c) => {
                if let Some(f) = c.0.take() {
                    let _ = contain("a reply callback", || f(Some(value)));
                }
            }
            Reply::Parked(mut p) => {
                if let Some(slot) = p.0.take() {
                    slot.put(Some(value));
                }
            }
        }
    }
}

/// Where a thread that waits for its answer finds it: the answer (or `None`, the call dropped
/// unanswered when the engine shut down), and the thread to unpark.
///
/// A crossbeam receiver's `recv` spins, then yields, before it sleeps: with many threads
/// waiting on two cores, that takes CPU from the Background Sync thread when it has their
/// answers to give (docs/performance.md, row 3). A parked thread sleeps at once, and one
/// slot per thread is reused from call to call, so the answer costs no allocation.
pub(crate) struct Parked<T> {
    answer: parking_lot::Mutex<Option<Option<T>>>,
    thread: std::thread::Thread,
}

impl<T> Parked<T> {
    fn put(&self, answer: Option<T>) {
        *self.answer.lock() = Some(answer);
        self.thread.unpark();
    }

    /// A slot for the calling thread: `reuse` if no answer can still arrive in it.
    pub(crate) fn for_this_thread(reuse: Option<Arc<Parked<T>>>) -> Arc<Parked<T>> {
        match reuse {
            Some(slot) if Arc::strong_count(&slot) == 1 => {
                *slot.answer.lock() = None;
                slot
            }
            _ => Arc::new(Parked {
                answer: parking_lot::Mutex::new(None),
                thread: std::thread::current(),
            }),
        }
    }

    /// Parks the calling thread (the one the slot was made for) until the answer is in.
    pub(crate) fn wait(&self) -> Option<T> {
        loop {
            if let Some(answer) = self.answer.lock().take() {
                return answer;
            }
            // An unpark meant for an earlier slot of this thread only costs a look.
            std::thread::park();
        }
    }
}

/// The Background Sync thread's end of a [`Parked`] slot: answers it once, with `None` if
/// dropped unanswered, so that the waiting thread always wakes.
pub(crate) struct ParkedReply<T>(pub(crate) Option<Arc<Parked<T>>>);

impl<T> Drop for ParkedReply<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            slot.put(None);
        }
    }
}

/// A callback that is called once: with the answer, or with `None` if the call is dropped
/// unanswered (the engine shut down), so that a promise waiting on it always settles.
pub(crate) struct Callback<T>(Option<Box<dyn FnOnce(Option<T>) + Send>>);

impl<T: 'static> Reply<Result<T, DomException>> {
    /// An engine's callback: called once with the answer, or with the shut-down error if the
    /// call is dropped unanswered.
    pub(crate) fn then(done: impl FnOnce(Result<T, DomException>) + Send + 'static) -> Self {
        Reply::Callback(Callback(Some(Box::new(move |answer: Option<_>| {
            done(answer.unwrap_or_else(|| Err(crate::shut_down())))
        }))))
    }
}

impl<T> Drop for Callback<T> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            let _ = contain("a reply callback", || f(None));
        }
    }
}

pub(crate) enum Msg {
    Register {
        caller: StorageKey,
        sw: SwRegistrationId,
        tag: Tag,
        reply: Reply<Result<(), DomException>>,
    },
    GetTags {
        caller: StorageKey,
        sw: SwRegistrationId,
        reply: Reply<Result<Vec<Tag>, DomException>>,
    },
    PeriodicRegister {
        caller: StorageKey,
        sw: SwRegistrationId,
        tag: Tag,
        min_interval: std::time::Duration,
        reply: Reply<Result<(), DomException>>,
    },
    PeriodicUnregister {
        caller: StorageKey,
        sw: SwRegistrationId,
        tag: Tag,
        reply: Reply<Result<(), DomException>>,
    },
    PeriodicGetTags {
        caller: StorageKey,
        sw: SwRegistrationId,
        reply: Reply<Result<Vec<Tag>, DomException>>,
    },
    Outcome(DispatchId, DispatchOutcome),
    Network(bool),
    Permission(Origin, PermissionState),
    PeriodicPermission(Origin, PermissionState),
    EngagementChanged(Origin, bgsync_scheduler::Engagement),
    SwUnregistered(SwRegistrationId),
    RegistryLoaded,
    /// DevTools' `ServiceWorker.dispatchSyncEvent`: fire now, whatever the network.
    DispatchNow {
        origin: Origin,
        sw: SwRegistrationId,
        tag: Tag,
        last_chance: bool,
        reply: Reply<Result<DispatchOutcome, DomException>>,
    },
    ClearOrigin(Origin, Reply<Result<(), DomException>>),
    ClearStorageKey(StorageKey, Reply<Result<(), DomException>>),
    ClearAll(Reply<Result<(), DomException>>),
    Settle(Reply<()>),
    Log(Reply<Vec<LogEntry>>),
    SubscribeLog(crossbeam_channel::Sender<LogEntry>),
    WakeUp(Reply<Option<Timestamp>>),
    /// A commit finished (on the store's thread, or inline on this one).
    Committed(Vec<PersistId>, Result<(), String>, Vec<SwRegistrationId>),
    /// A stable id for a service worker registration, by storage key and scope.
    ServiceWorkerId {
        key: String,
        scope: String,
        reply: Reply<Result<SwRegistrationId, DomException>>,
    },
    /// The store found damage (its check after start-up, or a commit) and rebuilt itself.
    StoreRecovered(Recovery),
    Recoveries(Reply<Vec<Recovery>>),
    Inspect(Reply<Vec<bgsync_scheduler::RegistrationSnapshot>>),
    Status(Reply<crate::EngineStatus>),
    Shutdown,
}

enum Pending {
    Register(Reply<Result<(), DomException>>),
    Clear(Reply<Result<(), DomException>>),
    Tags(Reply<Result<Vec<Tag>, DomException>>),
}

pub(crate) struct Embedder {
    pub host: Arc<dyn ServiceWorkerHost>,
    pub clients: Arc<dyn WindowClients>,
    pub permissions: Arc<dyn Permissions>,
    pub engagement: Arc<dyn crate::SiteEngagement>,
    pub clock: Arc<dyn Clock>,
}

/// The writes of one commit.
struct Batch {
    ids: Vec<PersistId>,
    ops: Vec<StoreOp>,
    /// Stable service worker ids this commit makes durable.
    allocated: Vec<SwRegistrationId>,
}

/// Sends a repair the store made to the driver.
fn report_recovery(done: &mpsc::WeakUnboundedSender<Msg>, recovery: Option<Recovery>) {
    if let (Some(r), Some(tx)) = (recovery, done.upgrade()) {
        let _ = tx.send(Msg::StoreRecovered(r));
    }
}

/// The store and what the engine knows of it, shared by the store's thread and the driver's
/// inline commits (never both at once: one commit at a time).
struct SharedStore {
    store: Box<dyn RegistrationStore>,
    /// After a panic the store's state is unknown: nothing more is written.
    panicked: Option<String>,
}

impl SharedStore {
    /// Commits `ops`; the repair the commit made, if any, comes with the result.
    fn commit(&mut self, ops: &[StoreOp]) -> (Result<(), String>, Option<Recovery>) {
        let _entered = tracing::debug_span!("commit", ops = ops.len()).entered();
        let result = match &self.panicked {
            Some(fault) => Err(format!(
                "{fault}; no change has been written since (restart Background Sync)"
            )),
            None => match contain("RegistrationStore::commit", || self.store.commit(ops)) {
                Ok(r) => r.map_err(|e| {
                    tracing::error!(error = %e, "store commit failed");
                    e.to_string()
                }),
                Err(fault) => {
                    let fault = fault.to_string();
                    self.panicked = Some(fault.clone());
                    Err(fault)
                }
            },
        };
        // A repair the commit made is told first, so that whoever hears of the commit can
        // already see it.
        let recovery = match self.panicked {
            Some(_) => None,
            None => contain("RegistrationStore::take_recovery", || {
                self.store.take_recovery()
            })
            .ok()
            .flatten(),
        };
        (result, recovery)
    }
}

/// A batch committed on the driver's thread, with its result and the repair it made.
type InlineCommit = (Batch, Result<(), String>, Option<Recovery>);

/// The store's own thread: commits one batch at a time and reports back. While a commit is in
/// flight (an fsync), the driver keeps taking calls and gathers their writes into the next batch:
/// that is what makes concurrent callers share fsyncs. A write with nobody else waiting is
/// committed by the driver itself ([`StoreThread::try_inline`]): two thread hand-offs fewer.
struct StoreThread {
    shared: Arc<parking_lot::Mutex<SharedStore>>,
    tx: Option<crossbeam_channel::Sender<Batch>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StoreThread {
    fn start(
        store: Box<dyn RegistrationStore>,
        done: mpsc::WeakUnboundedSender<Msg>,
    ) -> StoreThread {
        let shared = Arc::new(parking_lot::Mutex::new(SharedStore {
            store,
            panicked: None,
        }));
        let (tx, rx) = crossbeam_channel::unbounded::<Batch>();
        let mine = shared.clone();
        let thread = std::thread::Builder::new()
            .name("bgsync-store".into())
            .spawn(move || {
                // The full check of the whole store, before the first commit: start-up does not
                // wait for it, only writes do (the driver's inline commits skip while it runs).
                {
                    let mut s = mine.lock();
                    match contain("RegistrationStore::verify", || s.store.verify()) {
                        Ok(Ok(recovery)) => report_recovery(&done, recovery),
                        Ok(Err(e)) => tracing::error!(error = %e, "the store's check failed"),
                        Err(fault) => s.panicked = Some(fault.to_string()),
                    }
                }
                for batch in rx {
                    let (result, recovery) = mine.lock().commit(&batch.ops);
                    report_recovery(&done, recovery);
                    match done.upgrade() {
                        Some(tx) => {
                            let _ = tx.send(Msg::Committed(batch.ids, result, batch.allocated));
                        }
                        None => break,
                    }
                }
            })
            .ok();
        StoreThread {
            shared,
            tx: Some(tx),
            thread,
        }
    }

    fn send(&self, batch: Batch) -> Result<(), Batch> {
        match &self.tx {
            Some(tx) => tx.send(batch).map_err(|e| e.0),
            None => Err(batch),
        }
    }

    /// Commits `batch` on the calling thread if the store is free (not checking itself after
    /// start-up, not closed); `Err` gives it back otherwise.
    fn try_inline(&self, batch: Batch) -> Result<InlineCommit, Batch> {
        if self.tx.is_none() {
            return Err(batch);
        }
        match self.shared.try_lock() {
            Some(mut s) => {
                let (result, recovery) = s.commit(&batch.ops);
                Ok((batch, result, recovery))
            }
            None => Err(batch),
        }
    }

    /// Lets the last commit finish and closes the store.
    fn stop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) struct Driver {
    pub core: Scheduler,
    pub dispatcher: Dispatcher,
    store: StoreThread,
    /// Writes waiting for the next commit.
    queued: Vec<(PersistId, StoreOps)>,
    /// After the store rebuilt itself: rewrite it from what the engine holds (plus these
    /// records the engine does not own) before the next queued writes.
    repair: Option<Vec<StoredRegistration>>,
    /// Every repair the store made since start-up, the one at start-up first.
    recoveries: Vec<Recovery>,
    /// The clock's reading at the last tick, to notice it going back.
    last_tick: Timestamp,
    /// Whether a commit is in flight.
    committing: bool,
    /// Group commit's hold: after a commit answered several callers, the next commit waits a
    /// little for them to call again, so that they share it (see [`Hold`]).
    hold: Option<Hold>,
    /// When the commit in flight was sent.
    commit_sent: std::time::Instant,
    /// How long the last commit took, from send to answer.
    last_commit: std::time::Duration,
    pub embedder: Embedder,
    /// Notifications and the engine's own messages.
    events: mpsc::UnboundedReceiver<Msg>,
    /// A notification taken while looking for outcomes in the middle of a fan-out
    /// ([`take_outcomes`](Driver::take_outcomes)): it is handled before any other.
    stashed: Option<Msg>,
    /// Calls, bounded.
    calls: mpsc::Receiver<Msg>,
    /// Log lines a subscriber's full channel could not take.
    log_dropped: u64,
    /// The call queue's capacity: also the most writes gathered for one commit.
    pub call_capacity: usize,
    /// The embedder's service-worker registry is still loading: keep what it does not know,
    /// fire nothing.
    pub registry_pending: bool,
    /// The network as the embedder last reported it (held back while the registry loads).
    real_online: bool,
    /// The network at start-up.
    pub network_source: Arc<dyn crate::NetworkState>,
    /// Events DevTools asked for, not the core's: their outcomes go to the caller.
    manual: HashMap<DispatchId, (Reply<Result<DispatchOutcome, DomException>>, LogEntry)>,
    next_manual: u64,
    /// Stable service worker ids by (storage key, scope), and whether each is durable yet.
    pub sw_ids: HashMap<(String, String), (SwRegistrationId, bool)>,
    /// The next stable id to give.
    pub next_sw_id: u64,
    /// Id writes waiting for the next commit.
    queued_ids: Vec<(StoreOp, SwRegistrationId)>,
    /// Callers waiting for their id's write.
    id_waiters: HashMap<SwRegistrationId, Vec<Reply<Result<SwRegistrationId, DomException>>>>,
    /// What the browser's wake-up scheduler is told, whenever it changes.
    pub wake_ups: tokio::sync::watch::Sender<crate::WakeUp>,
    pub log_capacity: usize,
    /// Calls waiting for their answer, by request: an insertion and a removal a call, hashed
    /// as the core's maps are (foldhash: the ids are the engine's own, not a page's).
    pending: std::collections::HashMap<RequestId, Pending, foldhash::fast::RandomState>,
    next_request: u64,
    log: VecDeque<LogEntry>,
    /// The core's new log lines, between taking them and keeping them (reused, not regrown).
    log_buffer: Vec<LogEntry>,
    log_subscribers: Vec<crossbeam_channel::Sender<LogEntry>>,
    settle_waiters: Vec<Reply<()>>,
    shutting_down: bool,
    /// The engine's own copies of the origins that call it (see [`OwnOrigins`]).
    own_origins: OwnOrigins,
}

impl Driver {
    pub fn new(
        core: Scheduler,
        dispatcher: Dispatcher,
        store: Box<dyn RegistrationStore>,
        embedder: Embedder,
        (tx, events, calls): (
            mpsc::WeakUnboundedSender<Msg>,
            mpsc::UnboundedReceiver<Msg>,
            mpsc::Receiver<Msg>,
        ),
        log_capacity: usize,
        log_subscribers: Vec<crossbeam_channel::Sender<LogEntry>>,
    ) -> Self {
        Driver {
            core,
            dispatcher,
            store: StoreThread::start(store, tx),
            queued: Vec::new(),
            repair: None,
            recoveries: Vec::new(),
            last_tick: Timestamp(0),
            committing: false,
            hold: None,
            commit_sent: std::time::Instant::now(),
            last_commit: std::time::Duration::ZERO,
            embedder,
            events,
            stashed: None,
            calls,
            log_dropped: 0,
            call_capacity: 10_000,
            registry_pending: false,
            real_online: false,
            network_source: Arc::new(crate::AssumeOnline),
            wake_ups: tokio::sync::watch::channel(crate::WakeUp::default()).0,
            manual: HashMap::new(),
            sw_ids: HashMap::new(),
            next_sw_id: FIRST_STABLE_ID,
            queued_ids: Vec::new(),
            id_waiters: HashMap::new(),
            // Far from the core's ids, which count up from 1.
            next_manual: u64::MAX / 2,
            log_capacity,
            pending: Default::default(),
            next_request: 1,
            log: VecDeque::new(),
            log_buffer: Vec::new(),
            own_origins: OwnOrigins::default(),
            log_subscribers,
            settle_waiters: Vec::new(),
            shutting_down: false,
        }
    }

    /// Start-up rebuilt the store: log it and keep it with the later ones.
    pub fn start_recovered(&mut self, r: Recovery) {
        self.log_recovery(&r);
        self.recoveries.push(r);
    }

    /// A DevTools log line per origin that had registrations in a rebuilt store.
    fn log_recovery(&mut self, r: &Recovery) {
        let now = self.now();
        let mut per_origin: Vec<(Origin, SwRegistrationId, Tag, u64)> = Vec::new();
        // A repair that kept everything in place names the engine's registrations instead.
        let held;
        let records = if r.kept.is_empty() && r.complete {
            held = self.core.stored_registrations();
            &held
        } else {
            &r.kept
        };
        for rec in records {
            match per_origin.iter_mut().find(|(o, ..)| *o == rec.origin) {
                Some(entry) => entry.3 += 1,
                None => per_origin.push((rec.origin.clone(), rec.sw, rec.tag.clone(), 1)),
            }
        }
        let cause = r.to_string();
        for (origin, sw, tag, kept) in per_origin {
            self.push_log(LogEntry {
                time: now,
                origin,
                sw,
                tag,
                event: LogEvent::StoreRecovered {
                    cause: cause.clone(),
                    kept,
                },
            });
        }
    }

    fn now(&self) -> Timestamp {
        self.embedder.clock.now()
    }

    /// Runs until every handle is dropped or shutdown is asked for.
    pub async fn run(mut self) {
        self.start_up();
        self.tick();
        self.flush();
        while !self.shutting_down {
            let wake = match (self.core.poll_timeout(), self.dispatcher.poll_timeout()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let sleep = match wake {
                Some(t) => self.embedder.clock.sleep_until(t),
                None => Box::pin(std::future::pending()),
            };
            // The hold is measured on the real clock: it is about the disk, not the engine's time.
            let hold_until = self.hold.map(|h| tokio::time::Instant::from_std(h.until));
            // Notifications first: a call is handled after every notification sent before it.
            // (Nothing is set aside here: the passes below end only when no notification,
            // set aside or not, is waiting.)
            tokio::select! {
                biased;
                msg = self.events.recv() => match msg {
                    Some(msg) => self.handle(msg),
                    None => break,
                },
                msg = self.calls.recv(), if self.taking_calls() => match msg {
                    Some(msg) => self.handle(msg),
                    None => break,
                },
                () = sleep => {}
                () = async { tokio::time::sleep_until(hold_until.unwrap()).await }, if hold_until.is_some() => {
                    self.hold = None;
                }
            }
            // Take what else is queued before writing, so concurrent calls share one commit,
            // but no more than a pass's worth at a time: each pass answers what it can and
            // queues its writes. While the writes waiting for the next commit fill a batch, no
            // call is taken: callers wait in the bounded queue (or are told the engine is
            // busy), so memory stays bounded however fast they call.
            loop {
                self.drain_events();
                let mut taken = 0;
                while taken < CALLS_PER_PASS && self.taking_calls() {
                    let Ok(msg) = self.calls.try_recv() else {
                        break;
                    };
                    self.handle(msg);
                    self.drain_events();
                    taken += 1;
                }
                self.tick();
                self.flush();
                if !self.events_waiting() && (self.calls.is_empty() || !self.taking_calls()) {
                    break;
                }
            }
            self.publish_wake_up();
            // Settled means written too: wait for the commit in flight and the writes held.
            if !self.committing && self.queued.is_empty() {
                for waiter in self.settle_waiters.drain(..) {
                    waiter.send(());
                }
            }
        }
        // The commit in flight, if any, completes before the store closes, and its callers are
        // told it is durable; writes not yet sent are not carried out (the store is closed), and
        // their callers are told so.
        self.store.stop();
        while let Some(msg) = self.next_event() {
            if matches!(msg, Msg::Committed(..) | Msg::StoreRecovered(_)) {
                self.handle(msg);
            }
        }
        self.flush();
        for (_, pending) in self.pending.drain() {
            let gone = DomException::new(
                DomExceptionName::UnknownError,
                "Background Sync shut down before the call completed",
            );
            match pending {
                Pending::Register(r) | Pending::Clear(r) => r.send(Err(gone)),
                Pending::Tags(r) => r.send(Err(gone)),
            }
        }
    }

    /// Whether the engine takes calls now: not while the writes waiting for the next commit
    /// already fill a batch as large as the call queue.
    fn taking_calls(&self) -> bool {
        self.queued.len() < self.call_capacity
    }

    /// Tells the embedder's wake-up scheduler when to wake the browser and whether to keep it
    /// alive, when either changed.
    fn publish_wake_up(&self) {
        let now = crate::WakeUp {
            at: self
                .core
                .wake_up_time()
                .map(|t| std::time::UNIX_EPOCH + std::time::Duration::from_millis(t.0)),
            // Until the outcome of an event is durable, its retry (or its removal) is not
            // either: a browser that slept now could lose the wake-up of the back-off.
            keep_alive: self.dispatcher.in_flight() > 0
                || self.committing
                || !self.queued.is_empty(),
        };
        self.wake_ups.send_if_modified(|w| {
            let changed = *w != now;
            *w = now;
            changed
        });
    }

    fn drain_events(&mut self) {
        while let Some(msg) = self.next_event() {
            self.handle(msg);
        }
    }

    /// The next notification: the one set aside by [`take_outcomes`](Driver::take_outcomes),
    /// then the channel's.
    fn next_event(&mut self) -> Option<Msg> {
        self.stashed.take().or_else(|| self.events.try_recv().ok())
    }

    /// Whether a notification is waiting, set aside or in the channel.
    fn events_waiting(&self) -> bool {
        self.stashed.is_some() || !self.events.is_empty()
    }

    /// In the middle of a fan-out, every [`DISPATCH_ROUND`](crate::DISPATCH_ROUND) dispatches:
    /// handles the outcomes and the store's acknowledgements that arrived meanwhile, up to the
    /// first other notification, which waits (with everything after it) for the pass to end.
    /// An outcome is about an event already sent, an acknowledgement about writes already
    /// made, and neither changes another registration; so taking them early changes nothing
    /// but how many events and writes are outstanding at once, and how much a fan-out touches
    /// between the dispatch of an event and its end.
    fn take_outcomes(&mut self) {
        if self.stashed.is_some() || self.shutting_down {
            return;
        }
        while let Ok(msg) = self.events.try_recv() {
            if matches!(msg, Msg::Outcome(..) | Msg::Committed(..)) {
                self.handle(msg);
            } else {
                self.stashed = Some(msg);
                return;
            }
        }
    }

    fn request_id(&mut self) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        id
    }

    /// `caller` with the engine's own copy of its origin ([`OwnOrigins`]).
    fn own_key(&mut self, caller: StorageKey) -> StorageKey {
        StorageKey {
            origin: self.own_origins.own(&caller.origin),
            partition: caller.partition,
        }
    }

    fn handle(&mut self, msg: Msg) {
        let now = self.now();
        match msg {
            Msg::Register {
                caller,
                sw,
                tag,
                reply,
            } => {
                let caller = self.own_key(caller);
                let span = tracing::info_span!("register", origin = %caller, %sw, %tag);
                let _entered = span.enter();
                let context = match self.register_context(&caller, sw) {
                    Ok(context) => context,
                    Err(fault) => return reply.send(Err(embedder_fault(&fault))),
                };
                let request = self.request_id();
                self.pending.insert(request, Pending::Register(reply));
                self.core.register(
                    now,
                    request,
                    RegisterCall {
                        caller,
                        sw,
                        tag,
                        context,
                    },
                );
            }
            Msg::GetTags { caller, sw, reply } => {
                let span = tracing::info_span!("get_tags", origin = %caller, %sw);
                let _entered = span.enter();
                let owner = match self.owner_of(sw) {
                    Ok(o) => o,
                    Err(fault) => return reply.send(Err(embedder_fault(&fault))),
                };
                let request = self.request_id();
                self.pending.insert(request, Pending::Tags(reply));
                self.core
                    .get_tags(now, request, &caller, sw, owner.as_ref());
            }
            Msg::Outcome(id, outcome) => {
                let span = tracing::info_span!("sync_event_settled", id = id.0, ?outcome);
                let _entered = span.enter();
                if let Some(outcome) = self.dispatcher.outcome_reported(id, outcome) {
                    self.completed(now, id, outcome);
                } else {
                    tracing::debug!("outcome of an event that timed out or was abandoned; ignored");
                }
            }
            Msg::Network(online) => {
                let _entered = tracing::info_span!("network_changed", online).entered();
                self.real_online = online;
                if !self.registry_pending {
                    self.core.set_online(now, online);
                }
            }
            Msg::DispatchNow {
                origin,
                sw,
                tag,
                last_chance,
                reply,
            } => {
                let _entered =
                    tracing::info_span!("devtools_dispatch", %origin, %sw, %tag, last_chance)
                        .entered();
                self.dispatch_now(now, origin, sw, tag, last_chance, reply);
            }
            Msg::RegistryLoaded => {
                let _entered = tracing::info_span!("registry_loaded").entered();
                if self.registry_pending {
                    self.registry_pending = false;
                    self.sweep_registry(now);
                    self.core.set_online(now, self.real_online);
                }
            }
            Msg::Permission(origin, state) => {
                let _entered = tracing::info_span!("permission_changed", %origin, ?state).entered();
                self.core.set_permission(now, &origin, state);
            }
            Msg::PeriodicPermission(origin, state) => {
                self.core.set_periodic_permission(now, &origin, state);
            }
            Msg::EngagementChanged(origin, level) => {
                self.core.set_engagement(now, &origin, level);
            }
            Msg::PeriodicRegister {
                caller,
                sw,
                tag,
                min_interval,
                reply,
            } => {
                let caller = self.own_key(caller);
                let _entered =
                    tracing::info_span!("periodic_register", origin = %caller, %sw, %tag).entered();
                let context = self.register_context(&caller, sw);
                let e = &self.embedder;
                let context = context.and_then(|mut c| {
                    c.permission = contain("Permissions::periodic_background_sync", || {
                        e.permissions.periodic_background_sync(&caller.origin)
                    })?;
                    Ok(c)
                });
                let engagement = context.and_then(|c| {
                    let level = contain("SiteEngagement::engagement", || {
                        e.engagement.engagement(&caller.origin)
                    })?;
                    Ok((c, level))
                });
                let (context, engagement) = match engagement {
                    Ok(v) => v,
                    Err(fault) => return reply.send(Err(embedder_fault(&fault))),
                };
                let request = self.request_id();
                self.pending.insert(request, Pending::Register(reply));
                self.core.periodic_register(
                    now,
                    request,
                    bgsync_scheduler::PeriodicRegisterCall {
                        caller,
                        sw,
                        tag,
                        min_interval,
                        context,
                        engagement,
                    },
                );
            }
            Msg::PeriodicUnregister {
                caller,
                sw,
                tag,
                reply,
            } => {
                let owner = match self.owner_of(sw) {
                    Ok(o) => o,
                    Err(fault) => return reply.send(Err(embedder_fault(&fault))),
                };
                let request = self.request_id();
                self.pending.insert(request, Pending::Register(reply));
                self.core
                    .periodic_unregister(now, request, &caller, sw, tag, owner.as_ref());
            }
            Msg::PeriodicGetTags { caller, sw, reply } => {
                let owner = match self.owner_of(sw) {
                    Ok(o) => o,
                    Err(fault) => return reply.send(Err(embedder_fault(&fault))),
                };
                let request = self.request_id();
                self.pending.insert(request, Pending::Tags(reply));
                self.core
                    .periodic_get_tags(now, request, &caller, sw, owner.as_ref());
            }
            Msg::SwUnregistered(sw) => {
                let _entered = tracing::info_span!("service_worker_unregistered", %sw).entered();
                self.core.service_worker_unregistered(now, sw);
            }
            Msg::ClearOrigin(origin, reply) => {
                let _entered = tracing::info_span!("clear_origin", %origin).entered();
                let request = self.request_id();
                self.pending.insert(request, Pending::Clear(reply));
                self.core.clear_origin(now, request, &origin);
            }
            Msg::ClearStorageKey(key, reply) => {
                let _entered = tracing::info_span!("clear_storage_key", %key).entered();
                let request = self.request_id();
                self.pending.insert(request, Pending::Clear(reply));
                self.core.clear_storage_key(now, request, &key);
            }
            Msg::ClearAll(reply) => {
                let _entered = tracing::info_span!("clear_all").entered();
                let request = self.request_id();
                self.pending.insert(request, Pending::Clear(reply));
                self.core.clear_all(now, request);
            }
            Msg::Committed(ids, result, allocated) => {
                self.committing = false;
                self.last_commit = self.commit_sent.elapsed();
                // The callers this commit answers are likely to call again at once (a caller
                // waits for each answer before its next call): hold the next commit until they
                // have, or for at most as long as the last commit took, so that concurrent callers
                // keep sharing one commit instead of splitting into groups that alternate. The
                // calls that came during a commit made on this thread are still in the queue
                // (during one on the store's thread they would have been taken, their writes
                // queued): they are expected too, or a group that split would stay split.
                self.hold = (ids.len() > 1).then(|| Hold {
                    expected: self.queued.len() + self.calls.len() + ids.len(),
                    until: std::time::Instant::now() + self.last_commit.min(MAX_HOLD),
                });
                for id in ids {
                    self.core.persist_completed(now, id, result.clone());
                    // Each caller is answered as soon as its write is acknowledged, not after
                    // the whole commit's: the first answer wakes the callers' thread, which
                    // then makes its next calls while the rest are acknowledged here. Only
                    // answers at the front are taken; any other effect, and what follows it,
                    // waits for `flush`, in order.
                    while let Some((request, result)) = self.core.poll_settlement() {
                        self.settle(request, result);
                    }
                }
                for sw in allocated {
                    self.id_committed(sw, &result);
                }
            }
            Msg::ServiceWorkerId { key, scope, reply } => self.service_worker_id(key, scope, reply),
            Msg::StoreRecovered(r) => {
                tracing::warn!(recovery = %r, "background sync: the store was rebuilt");
                self.log_recovery(&r);
                // What the store kept was read from the damaged file; the engine's own state is
                // what callers were told, so the store is rewritten from it (keeping the records
                // the engine does not own, such as periodic ones).
                let foreign = r
                    .kept
                    .iter()
                    .filter(|x| x.kind != bgsync_types::SyncKind::OneShot)
                    .cloned()
                    .collect();
                if !r.complete {
                    self.repair = Some(foreign);
                }
                self.recoveries.push(r);
            }
            Msg::Recoveries(reply) => reply.send(self.recoveries.clone()),
            Msg::Inspect(reply) => reply.send(self.core.inspect()),
            Msg::Settle(reply) => self.settle_waiters.push(reply),
            Msg::Log(reply) => reply.send(self.log.iter().cloned().collect()),
            Msg::SubscribeLog(tx) => self.log_subscribers.push(tx),
            Msg::WakeUp(reply) => reply.send(self.core.wake_up_time()),
            Msg::Status(reply) => reply.send(crate::EngineStatus {
                next_timer: match (self.core.poll_timeout(), self.dispatcher.poll_timeout()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                },
                in_flight: self.dispatcher.in_flight(),
                registrations: self.core.len(),
                log_lines_dropped: self.log_dropped,
            }),
            Msg::Shutdown => self.shutting_down = true,
        }
    }

    /// Start-up's questions to the embedder, on this thread: which service worker
    /// registrations it still has (unless its registry is still loading), each origin's
    /// permission, the network. A panicking embedder is contained: an unanswered registry keeps
    /// the rows, an unanswered permission holds them (as denied) until the embedder reports a
    /// change, an unanswered network counts as offline until it reports one.
    fn start_up(&mut self) {
        let now = self.now();
        if !self.registry_pending {
            self.sweep_registry(now);
        }
        for origin in self.core.origins() {
            let permissions = &self.embedder.permissions;
            let state = contain("Permissions::background_sync", || {
                permissions.background_sync(&origin)
            })
            .unwrap_or(PermissionState::Denied);
            self.core.set_permission(now, &origin, state);
        }
        // Periodic registrations: their origins' engagement and permission now (a revoked
        // permission removes them, as a revocation while running does).
        for origin in self.core.periodic_origins() {
            let e = &self.embedder;
            let level = contain("SiteEngagement::engagement", || {
                e.engagement.engagement(&origin)
            })
            .unwrap_or(bgsync_scheduler::Engagement::High);
            self.core.set_engagement(now, &origin, level);
            let state = contain("Permissions::periodic_background_sync", || {
                e.permissions.periodic_background_sync(&origin)
            })
            .unwrap_or(PermissionState::Denied);
            if state != PermissionState::Granted {
                self.core.set_periodic_permission(now, &origin, state);
            }
        }
        let network = &self.network_source;
        self.real_online =
            contain("NetworkState::is_online", || network.is_online()).unwrap_or(false);
        self.core
            .set_online(now, self.real_online && !self.registry_pending);
    }

    /// Registrations of service worker registrations the host no longer has (unregistered
    /// while the engine was down, or a removal that failed to commit), or has as another
    /// origin's (an id reused), go, durably.
    fn sweep_registry(&mut self, now: Timestamp) {
        for sw in self.core.service_worker_registrations() {
            let host = &self.embedder.host;
            let stored = self.core.service_worker_key(sw);
            match contain("ServiceWorkerHost::registration", || host.registration(sw)) {
                Ok(Some(info))
                    if stored.as_ref().is_some_and(|k| {
                        k.origin == info.origin && k.partition == info.partition
                    }) => {}
                Ok(_) => self.core.service_worker_unregistered(now, sw),
                Err(_) => {}
            }
        }
    }

    /// The stable id of the service worker registration with this storage key and scope:
    /// the one given before (across restarts), or a new one, answered once it is durable.
    fn service_worker_id(
        &mut self,
        key: String,
        scope: String,
        reply: Reply<Result<SwRegistrationId, DomException>>,
    ) {
        match self.sw_ids.get(&(key.clone(), scope.clone())) {
            Some((id, true)) => reply.send(Ok(*id)),
            Some((id, false)) => self.id_waiters.entry(*id).or_default().push(reply),
            None => {
                let id = SwRegistrationId(self.next_sw_id);
                self.next_sw_id += 1;
                self.sw_ids
                    .insert((key.clone(), scope.clone()), (id, false));
                self.id_waiters.entry(id).or_default().push(reply);
                self.queued_ids.push((
                    StoreOp::PutServiceWorkerId(bgsync_store::ServiceWorkerIdRecord {
                        key,
                        scope,
                        id,
                    }),
                    id,
                ));
            }
        }
    }

    /// An id's write was committed (or failed: the id is given up and its callers told).
    fn id_committed(&mut self, id: SwRegistrationId, result: &Result<(), String>) {
        let waiters = self.id_waiters.remove(&id).unwrap_or_default();
        match result {
            Ok(()) => {
                if let Some(entry) = self.sw_ids.values_mut().find(|(i, _)| *i == id) {
                    entry.1 = true;
                }
                for w in waiters {
                    w.send(Ok(id));
                }
            }
            Err(cause) => {
                self.sw_ids.retain(|_, (i, _)| *i != id);
                for w in waiters {
                    w.send(Err(DomException::new(
                        DomExceptionName::UnknownError,
                        format!(
                            "the service worker registration's id could not be stored: {cause}"
                        ),
                    )));
                }
            }
        }
    }

    /// DevTools' `ServiceWorker.dispatchSyncEvent(origin, registrationId, tag, lastChance)`:
    /// a `sync` event with this tag and lastChance, now, whatever the network and whether or
    /// not a registration has the tag; its outcome goes to the caller and changes no
    /// registration. Logged as `DevToolsDispatched` and `DevToolsCompleted`.
    fn dispatch_now(
        &mut self,
        now: Timestamp,
        origin: Origin,
        sw: SwRegistrationId,
        tag: Tag,
        last_chance: bool,
        reply: Reply<Result<DispatchOutcome, DomException>>,
    ) {
        let host = &self.embedder.host;
        let active = contain("ServiceWorkerHost::registration", || host.registration(sw));
        match active {
            Err(fault) => return reply.send(Err(embedder_fault(&fault))),
            Ok(Some(info)) if info.origin == origin && info.has_active_worker => {}
            Ok(_) => {
                return reply.send(Err(DomException::new(
                    DomExceptionName::InvalidStateError,
                    format!("{sw} has no active service worker of {origin} to dispatch to"),
                )))
            }
        }
        let id = DispatchId(self.next_manual);
        self.next_manual += 1;
        let entry = |event| LogEntry {
            time: now,
            origin: origin.clone(),
            sw,
            tag: tag.clone(),
            event,
        };
        self.push_log(entry(LogEvent::DevToolsDispatched { last_chance }));
        let done = entry(LogEvent::DevToolsCompleted {
            outcome: DispatchOutcome::Fulfilled,
        });
        let request = bgsync_scheduler::DispatchRequest {
            id,
            sw,
            origin: origin.clone(),
            tag: tag.clone(),
            last_chance,
            time_limit: self.core.params().max_sync_event_duration,
            kind: bgsync_types::SyncKind::OneShot,
        };
        self.manual.insert(id, (reply, done));
        if let Some((id, outcome)) = self.dispatcher.dispatch(now, request) {
            self.completed(now, id, outcome);
        }
    }

    /// An event ended: DevTools' go to their caller, the others to the core.
    fn completed(&mut self, now: Timestamp, id: DispatchId, outcome: DispatchOutcome) {
        match self.manual.remove(&id) {
            Some((reply, mut entry)) => {
                entry.time = now;
                entry.event = LogEvent::DevToolsCompleted { outcome };
                self.push_log(entry);
                reply.send(Ok(outcome));
            }
            None => self.core.dispatch_completed(now, id, outcome),
        }
    }

    /// What `register()` needs to know from the embedder; a panic in any of it fails the call.
    /// The storage key owning `sw` as the embedder knows it (`None`: no such registration).
    fn owner_of(&self, sw: SwRegistrationId) -> Result<Option<StorageKey>, EmbedderPanic> {
        let host = &self.embedder.host;
        let info = contain("ServiceWorkerHost::registration", || host.registration(sw))?;
        Ok(info.map(|i| StorageKey {
            origin: i.origin,
            partition: i.partition,
        }))
    }

    fn register_context(
        &mut self,
        caller: &StorageKey,
        sw: SwRegistrationId,
    ) -> Result<RegisterContext, EmbedderPanic> {
        let e = &self.embedder;
        let info = contain("ServiceWorkerHost::registration", || {
            e.host.registration(sw)
        })?;
        let own_origins = &mut self.own_origins;
        Ok(RegisterContext {
            // The host's origin as the engine's own copy too: the core compares it with the
            // caller's, which is then one allocation compared with itself.
            registration_key: info.as_ref().map(|i| StorageKey {
                origin: own_origins.own(&i.origin),
                partition: i.partition.clone(),
            }),
            has_active_worker: info.is_some_and(|i| i.has_active_worker),
            has_window_client: contain("WindowClients::has_window_client", || {
                e.clients.has_window_client_in(caller)
            })?,
            permission: contain("Permissions::background_sync", || {
                e.permissions.background_sync(&caller.origin)
            })?,
        })
    }

    /// Gives the core and the dispatcher the time: time limits that ran out fail their attempts,
    /// back-offs that ended fire.
    fn tick(&mut self) {
        let now = self.now();
        if now < self.last_tick {
            tracing::warn!(
                from = self.last_tick.0,
                to = now.0,
                "the wall clock went back"
            );
            self.dispatcher.clock_went_back(self.last_tick, now);
        }
        self.last_tick = now;
        for (id, outcome) in self.dispatcher.handle_timeout(now) {
            self.completed(now, id, outcome);
        }
        self.core.handle_timeout(now);
    }

    /// Carries out the core's effects until it has none left. Their writes are queued and go to
    /// the store thread as one commit as soon as no other commit is in flight (group commit).
    fn flush(&mut self) {
        loop {
            let now = self.now();
            let mut persists = Vec::new();
            let (mut sent, mut wrote) = (0, false);
            while let Some(effect) = self.core.poll_effect() {
                match effect {
                    Effect::Persist { id, ops } => persists.push((id, ops)),
                    Effect::Settle { request, result } => self.settle(request, result),
                    Effect::Dispatch(request) => {
                        let _entered = tracing::info_span!(
                            "dispatch_sync_event",
                            id = request.id.0,
                            sw = %request.sw,
                            tag = %request.tag,
                            last_chance = request.last_chance
                        )
                        .entered();
                        if self.shutting_down {
                            // Going away: the registration fires after the next start.
                            continue;
                        }
                        if let Some((id, outcome)) = self.dispatcher.dispatch(now, request) {
                            self.completed(now, id, outcome);
                        }
                        sent += 1;
                        if sent % crate::DISPATCH_ROUND == 0 {
                            // A round of a fan-out: the outcomes that came back, and the
                            // writes so far to the store (with the next commit if one is in
                            // flight), so that neither piles up for the whole fan-out.
                            self.take_outcomes();
                            self.drain_log();
                            wrote |= !persists.is_empty();
                            self.queued.append(&mut persists);
                            self.commit_queued();
                        }
                    }
                    Effect::AbandonDispatch { id } => self.dispatcher.abandon(id),
                }
            }
            self.drain_log();
            wrote |= !persists.is_empty();
            self.queued.extend(persists);
            let answered = self.commit_queued();
            // A commit made here, or one that could not even be sent, is answered at once,
            // which may have queued more effects; otherwise everything left waits for the store.
            if (!wrote && !answered) || self.committing {
                return;
            }
        }
    }

    /// Sends the queued writes as one commit, unless one is already in flight (then they go
    /// with the next); true if the commit was made and answered here.
    fn commit_queued(&mut self) -> bool {
        if self.committing
            || (self.queued.is_empty() && self.repair.is_none() && self.queued_ids.is_empty())
        {
            return false;
        }
        if let Some(hold) = self.hold {
            let waiting = self.repair.is_none()
                && self.queued_ids.is_empty()
                && !self.shutting_down
                && self.queued.len() < hold.expected
                && self.taking_calls()
                && std::time::Instant::now() < hold.until;
            if waiting {
                return false;
            }
        }
        self.hold = None;
        let queued = std::mem::take(&mut self.queued);
        // Sized once: grown write by write, a batch of 64 registrations was copied seven times.
        let ops = self.queued_ids.len() + queued.iter().map(|(_, ops)| ops.len()).sum::<usize>();
        let mut batch = Batch {
            ids: Vec::with_capacity(queued.len()),
            ops: Vec::with_capacity(ops),
            allocated: Vec::new(),
        };
        for (op, sw) in self.queued_ids.drain(..) {
            batch.ops.push(op);
            batch.allocated.push(sw);
        }
        if let Some(foreign) = self.repair.take() {
            // Taken now, with no commit in flight: everything acknowledged is in it.
            batch.ops.push(StoreOp::DeleteAll);
            batch.ops.extend(
                self.core
                    .stored_registrations()
                    .into_iter()
                    .chain(foreign)
                    .map(StoreOp::Put),
            );
        }
        for (id, ops) in queued {
            batch.ids.push(id);
            match ops {
                StoreOps::One(op) => batch.ops.push(op),
                StoreOps::Many(ops) => batch.ops.extend(ops),
            }
        }
        self.commit_sent = std::time::Instant::now();
        // A batch with no call or notification waiting behind it (a lone caller's write, or the
        // whole group a held commit waited for) is committed here: handing it to the store's
        // thread and back costs two thread wake-ups, and there is nothing to gather meanwhile.
        // A call that arrives during the commit waits for it (at most INLINE_MAX_OPS rows);
        // with others already waiting, or a larger batch, the store's thread commits, so that
        // calls keep being answered and gathered.
        let alone = batch.ops.len() <= INLINE_MAX_OPS
            && batch.allocated.is_empty()
            && self.calls.is_empty()
            && !self.events_waiting()
            && !self.shutting_down;
        // A commit is in flight from here, wherever it is made: the browser is kept awake.
        self.committing = true;
        let batch = if alone {
            self.publish_wake_up();
            match self.store.try_inline(batch) {
                Ok((batch, result, recovery)) => {
                    if let Some(r) = recovery {
                        self.handle(Msg::StoreRecovered(r));
                    }
                    self.handle(Msg::Committed(batch.ids, result, batch.allocated));
                    return true;
                }
                Err(batch) => batch,
            }
        } else {
            batch
        };
        match self.store.send(batch) {
            Ok(()) => false,
            Err(batch) => {
                self.committing = false;
                let now = self.now();
                let gone: Result<(), String> = Err("the store thread is gone".into());
                for id in batch.ids {
                    self.core.persist_completed(now, id, gone.clone());
                }
                for sw in batch.allocated {
                    self.id_committed(sw, &gone);
                }
                true
            }
        }
    }

    fn settle(&mut self, request: RequestId, result: Result<Response, DomException>) {
        match (self.pending.remove(&request), result) {
            (Some(Pending::Register(reply) | Pending::Clear(reply)), Ok(_)) => reply.send(Ok(())),
            (Some(Pending::Register(reply) | Pending::Clear(reply)), Err(e)) => reply.send(Err(e)),
            (Some(Pending::Tags(reply)), Ok(Response::Tags(tags))) => reply.send(Ok(tags)),
            (Some(Pending::Tags(reply)), Ok(_)) => reply.send(Ok(Vec::new())),
            (Some(Pending::Tags(reply)), Err(e)) => reply.send(Err(e)),
            (None, _) => {}
        }
    }

    fn drain_log(&mut self) {
        let mut lines = std::mem::take(&mut self.log_buffer);
        self.core.append_log_to(&mut lines);
        // Each line is told as it comes only to whoever listens: tracing and subscribers.
        if !self.log_subscribers.is_empty() || tracing::enabled!(tracing::Level::WARN) {
            for entry in &lines {
                trace_log_line(entry);
                self.tell_subscribers(entry);
            }
        }
        self.keep_lines(&mut lines);
        self.log_buffer = lines;
    }

    fn push_log(&mut self, entry: LogEntry) {
        self.tell_subscribers(&entry);
        self.keep_lines(&mut vec![entry]);
    }

    /// Sends `entry` to each log subscriber. The engine never waits for a reader: what a full
    /// channel cannot take is dropped and counted; subscribers that went away are forgotten.
    fn tell_subscribers(&mut self, entry: &LogEntry) {
        let mut dropped = 0;
        self.log_subscribers
            .retain(|tx| match tx.try_send(entry.clone()) {
                Ok(()) => true,
                Err(crossbeam_channel::TrySendError::Full(_)) => {
                    dropped += 1;
                    true
                }
                Err(crossbeam_channel::TrySendError::Disconnected(_)) => false,
            });
        self.log_dropped += dropped;
    }

    /// Moves `lines` to the end of the log, in one move, the oldest beyond its capacity
    /// dropped together.
    fn keep_lines(&mut self, lines: &mut Vec<LogEntry>) {
        let keep = lines.len().min(self.log_capacity);
        let over = (self.log.len() + keep).saturating_sub(self.log_capacity);
        self.log.drain(..over.min(self.log.len()));
        self.log.extend(lines.drain(lines.len() - keep..));
        lines.clear();
    }
}

/// A log line as a tracing event: a failed write as a warning, the rest as information.
fn trace_log_line(entry: &LogEntry) {
    match &entry.event {
        LogEvent::StoreFailed { cause } => tracing::warn!(
            origin = %entry.origin, sw = %entry.sw, tag = %entry.tag, %cause,
            "background sync: store failed"
        ),
        LogEvent::Rejected { name, message } => tracing::info!(
            origin = %entry.origin, sw = %entry.sw, tag = %entry.tag,
            exception = name.as_str(), %message, "background sync: register() refused"
        ),
        LogEvent::Dispatched {
            last_chance,
            previous_attempts,
        } => tracing::info!(
            origin = %entry.origin, sw = %entry.sw, tag = %entry.tag,
            last_chance, previous_attempts, "background sync: sync event dispatched"
        ),
        LogEvent::Completed { outcome, next } => tracing::info!(
            origin = %entry.origin, sw = %entry.sw, tag = %entry.tag,
            ?outcome, ?next, "background sync: sync event completed"
        ),
        event => tracing::info!(
            origin = %entry.origin, sw = %entry.sw, tag = %entry.tag, ?event,
            "background sync"
        ),
    }
}

/// The engine's own copies of the origins its callers and host hand it, in allocations only
/// the Background Sync thread touches. What the engine keeps of a registration (its record,
/// its log lines) clones its origin; a caller's copy is also cloned and dropped by the caller's
/// thread as it makes its next calls, and every count the two threads change on one allocation
/// moves its cache line from one CPU to the other. And comparing two copies of one allocation
/// is one comparison of addresses, where two allocations are compared field by field.
///
/// A caller's allocation is looked up by its address in a small cache that keeps a clone of
/// it (so that the address cannot be reused while it is a key); one not there is compared with
/// the origin that called last, and given its copy if equal, a new one if not.
struct OwnOrigins {
    /// The copy made or used last.
    last: Option<Origin>,
    /// Foreign allocations seen, each with the engine's copy, by address.
    seen: Vec<Option<(Origin, Origin)>>,
}

impl Default for OwnOrigins {
    fn default() -> Self {
        OwnOrigins {
            last: None,
            seen: vec![None; Self::SLOTS],
        }
    }
}

impl OwnOrigins {
    /// How many foreign allocations are remembered (a page's realm, or each of many callers'
    /// tasks, keeps one and passes clones of it).
    const SLOTS: usize = 256;

    fn own(&mut self, theirs: &Origin) -> Origin {
        // Fibonacci hashing: allocations made one after another (one a task) are a fixed
        // stride apart, which the address's low bits alone would fold onto a few slots.
        let hash = (theirs.allocation_address() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // Its top bits, the best mixed (SLOTS is a power of two).
        let slot = (hash >> (64 - Self::SLOTS.trailing_zeros())) as usize;
        if let Some((seen, own)) = &self.seen[slot] {
            if seen.same_allocation(theirs) {
                return own.clone();
            }
        }
        let own = match &self.last {
            Some(last) if last == theirs => last.clone(),
            _ => theirs.unshared(),
        };
        self.seen[slot] = Some((theirs.clone(), own.clone()));
        self.last = Some(own.clone());
        own
    }
}

/// The exception a call gets when an embedder's trait method panicked while serving it.
fn embedder_fault(fault: &EmbedderPanic) -> DomException {
    DomException::new(
        DomExceptionName::UnknownError,
        format!("{fault}; the call was not carried out"),
    )
}

/// The first stable id the keyed form gives: above the ids an engine of its own is likely to
/// use, so that the two forms do not meet.
pub(crate) const FIRST_STABLE_ID: u64 = 1 << 32;

/// Calls taken off the queue between two flushes (answers, commits).
const CALLS_PER_PASS: usize = 1_024;

/// The longest a commit is held for callers expected to call again.
const MAX_HOLD: std::time::Duration = std::time::Duration::from_millis(2);

/// The most rows a commit made on the Background Sync thread may write: the group of 64
/// callers of docs/performance.md (row 3) fits, a large clear goes to the store's thread.
const INLINE_MAX_OPS: usize = 128;

/// A commit held for the callers the last commit answered.
#[derive(Clone, Copy)]
struct Hold {
    /// Writes to wait for: those queued when the last commit ended, plus one per caller it
    /// answered.
    expected: usize,
    /// The latest the held commit is sent.
    until: std::time::Instant,
}

/// Answers a call made after shutdown: it was not carried out.
pub(crate) fn refuse_shut_down(msg: Msg) {
    let gone = crate::shut_down;
    match msg {
        Msg::Register { reply, .. }
        | Msg::PeriodicRegister { reply, .. }
        | Msg::PeriodicUnregister { reply, .. }
        | Msg::ClearOrigin(_, reply)
        | Msg::ClearStorageKey(_, reply)
        | Msg::ClearAll(reply) => reply.send(Err(gone())),
        Msg::GetTags { reply, .. } | Msg::PeriodicGetTags { reply, .. } => reply.send(Err(gone())),
        Msg::ServiceWorkerId { reply, .. } => reply.send(Err(gone())),
        // The other calls' callers see their reply channel closed, which they report as this.
        _ => {}
    }
}

/// Answers a call that found the call queue full: it was not carried out.
pub(crate) fn refuse_busy(msg: Msg, capacity: usize) {
    let busy = || {
        DomException::new(
            DomExceptionName::UnknownError,
            format!(
                "Background Sync is busy: {capacity} calls are already waiting; the call was not carried out, try again"
            ),
        )
    };
    match msg {
        Msg::Register { reply, .. }
        | Msg::PeriodicRegister { reply, .. }
        | Msg::PeriodicUnregister { reply, .. }
        | Msg::ClearOrigin(_, reply)
        | Msg::ClearStorageKey(_, reply)
        | Msg::ClearAll(reply) => reply.send(Err(busy())),
        Msg::GetTags { reply, .. } | Msg::PeriodicGetTags { reply, .. } => reply.send(Err(busy())),
        Msg::ServiceWorkerId { reply, .. } => reply.send(Err(busy())),
        // Other calls wait for room rather than being refused; dropping one answers its caller
        // as after a shutdown.
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_origins_are_equal_to_the_callers_and_share_no_allocation_with_them() {
        let mut own = OwnOrigins::default();
        let a = Origin::parse("https://a.example").unwrap();
        let a_again = Origin::parse("https://a.example").unwrap();
        let b = Origin::parse("https://b.example:8443").unwrap();
        let first = own.own(&a);
        assert_eq!(first, a);
        assert!(!first.same_allocation(&a), "a copy of the engine's own");
        // The same allocation again, or an equal one, gets the same copy.
        assert!(own.own(&a.clone()).same_allocation(&first));
        assert!(own.own(&a_again).same_allocation(&first));
        // Another origin gets its own copy, equal to it; then the first still gets its copy.
        let second = own.own(&b);
        assert_eq!(second, b);
        assert_ne!(second, first);
        assert!(own.own(&a).same_allocation(&first));
        // Many callers' allocations, more than the cache has slots: each answer is right.
        let many: Vec<Origin> = (0..3 * OwnOrigins::SLOTS)
            .map(|i| Origin::parse(&format!("https://h{}.example", i % 7)).unwrap())
            .collect();
        for (i, theirs) in many.iter().enumerate().cycle().take(4 * many.len()) {
            let mine = own.own(theirs);
            assert_eq!(mine, *theirs, "{i}");
            assert!(!mine.same_allocation(theirs), "{i}");
        }
    }
}
