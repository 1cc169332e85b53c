//! Background Sync for browser engines: the facade an engine embeds.
//!
//! [`BackgroundSync`] wires the sans-IO core ([`bgsync_scheduler`]), the dispatcher
//! ([`bgsync_dispatcher`]) and a registration store ([`bgsync_store`]) together on a thread of
//! its own, running a tokio runtime. The engine implements a few small traits
//! ([`embedder`]) and calls in with either the async API ([`BackgroundSync::register`]) or, from
//! threads of its own, the channel API ([`BackgroundSync::register_with_reply`], answering on a
//! crossbeam channel).
//!
//! ```
//! use std::sync::Arc;
//! use bgsync::testing::{OpenWindows, ScriptedHost};
//! use bgsync::{BackgroundSync, VirtualClock};
//! use bgsync_types::{Origin, SwRegistrationId, Tag};
//!
//! let origin = Origin::parse("https://mail.example").unwrap();
//! let host = Arc::new(ScriptedHost::new());
//! host.add_registration(SwRegistrationId(1), origin.clone());
//! let clock = VirtualClock::default();
//! let sync = BackgroundSync::builder(host.clone(), Arc::new(OpenWindows::with([origin.clone()])))
//!     .clock(Arc::new(clock.clone()))
//!     .start()
//!     .unwrap();
//!
//! // An engine thread registers and waits on a crossbeam channel.
//! let reply = sync.register_with_reply(&origin, SwRegistrationId(1), Tag::from("send-mail"));
//! assert_eq!(reply.recv().unwrap(), Ok(()));
//! sync.settle_blocking();
//! assert_eq!(host.fired()[0].tag, Tag::from("send-mail"));
//! sync.shutdown();
//! ```

/// The README's code, compiled as a doctest with nothing but `bgsync` in scope.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

mod clock;
pub mod devtools;
mod driver;
pub mod embedder;
pub mod testing;
pub mod timeline;

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

pub use bgsync_dispatcher::EmbedderPanic;
use bgsync_dispatcher::{Dispatcher, OutcomeSink};
use bgsync_scheduler::Scheduler;
pub use bgsync_store::Recovery;
pub use bgsync_store::{MemoryStore, RegistrationStore, StoreError, StoreOp, StoredRegistration};
#[cfg(feature = "sqlite")]
use bgsync_store_sqlite::SqliteStore;
/// The types every embedder needs, so that `bgsync` alone is enough to embed the engine.
pub use bgsync_types::{
    DispatchId, DomException, DomExceptionName, Origin, Partition, PermissionState, StorageKey,
    SwRegistrationId, SyncKind, Tag, Timestamp,
};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

pub use bgsync_scheduler::{
    DispatchOutcome, Engagement, LogEntry, LogEvent, NextStep, Parameters, RegistrationSnapshot,
    RegistrationState, WaitingFor,
};
pub use clock::{Clock, Sleep, SystemClock, VirtualClock};
pub use embedder::{
    AlwaysGranted, AssumeOnline, FullEngagement, NetworkState, OutcomeReporter, Permissions,
    RegistrationInfo, ServiceWorkerHost, SiteEngagement, SyncEventDispatch, WindowClients,
};

use driver::{Driver, Embedder, Msg, Reply};

/// What the engine is waiting for, for drivers that step a [`VirtualClock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineStatus {
    /// The soonest internal deadline: the end of a back-off or an event's time limit.
    pub next_timer: Option<Timestamp>,
    /// Events dispatched whose outcome has not been reported.
    pub in_flight: usize,
    /// Registrations held.
    pub registrations: usize,
    /// DevTools log lines dropped because a subscriber's channel was full.
    pub log_lines_dropped: u64,
}

/// What the browser's wake-up scheduler needs (Chromium's controller schedules and cancels a
/// wake-up and keeps the browser alive while events run): published by
/// [`BackgroundSync::wake_ups`] whenever it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct WakeUp {
    /// When to wake the browser if it is not running (wall clock): the end of the soonest
    /// back-off, and no later than the recovery time while events are in flight. `None`:
    /// cancel any wake-up.
    pub at: Option<std::time::SystemTime>,
    /// Events are in flight, or the writes of their outcomes are not durable yet: keep the
    /// browser alive. Its turning false after a wake-up is the idle signal: the work the
    /// wake-up was for is done, and `at` holds the next one.
    pub keep_alive: bool,
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The stored registrations could not be loaded.
    #[error("could not load the stored sync registrations: {0}")]
    Store(#[from] StoreError),
    /// The Background Sync thread or its runtime could not be created.
    #[error("could not start the Background Sync thread: {0}")]
    Thread(#[from] std::io::Error),
    /// The builder's settings contradict each other.
    #[error("Background Sync was configured inconsistently: {0}")]
    Config(String),
}

/// Configures and starts a [`BackgroundSync`].
pub struct Builder {
    host: Arc<dyn ServiceWorkerHost>,
    clients: Arc<dyn WindowClients>,
    permissions: Arc<dyn Permissions>,
    engagement: Arc<dyn SiteEngagement>,
    network: Arc<dyn NetworkState>,
    clock: Arc<dyn Clock>,
    params: Parameters,
    store: Box<dyn RegistrationStore>,
    data_dir: Option<PathBuf>,
    log_capacity: usize,
    log_subscribers: Vec<crossbeam_channel::Sender<LogEntry>>,
    call_capacity: usize,
    registry_loading: bool,
    private_browsing: bool,
    custom_store: bool,
}

/// How many sync events the engine sends before it takes the outcomes that have arrived
/// meanwhile. Going online fires every pending registration; taking their outcomes every this
/// many dispatches settles a large fan-out in rounds, so what each round touches stays in the
/// processor's cache and the events in flight stay few when service workers answer quickly.
pub const DISPATCH_ROUND: usize = 256;

/// Lines a [`BackgroundSync::subscribe_log`] channel holds for a slow reader before the engine
/// drops (and counts) what does not fit.
pub const LOG_SUBSCRIPTION_CAPACITY: usize = 10_000;

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("params", &self.params)
            .field("data_dir", &self.data_dir)
            .field("log_capacity", &self.log_capacity)
            .field("call_capacity", &self.call_capacity)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// How many calls (register, getTags, clear, …) may wait for the engine at once (default
    /// 10,000). Beyond it, the async API waits for room and the channel API answers at once
    /// with an `UnknownError` saying the engine is busy: a flood of calls nobody waits for
    /// cannot grow memory without bound.
    pub fn call_capacity(mut self, calls: usize) -> Self {
        self.call_capacity = calls.max(1);
        self
    }

    /// Streams every DevTools log line, from start-up on (unlike
    /// [`BackgroundSync::subscribe_log`], which misses what start-up itself logs, such as the
    /// dispatch of registrations that were due). The engine never waits for the reader: a line
    /// that does not fit a bounded channel is dropped and counted
    /// ([`EngineStatus::log_lines_dropped`]).
    pub fn log_to(mut self, subscriber: crossbeam_channel::Sender<LogEntry>) -> Self {
        self.log_subscribers.push(subscriber);
        self
    }

    /// The permission source (default: [`AlwaysGranted`]).
    pub fn permissions(mut self, permissions: Arc<dyn Permissions>) -> Self {
        self.permissions = permissions;
        self
    }

    /// The sites' engagement, which sets how often periodic syncs fire (default:
    /// [`FullEngagement`]).
    pub fn engagement(mut self, engagement: Arc<dyn SiteEngagement>) -> Self {
        self.engagement = engagement;
        self
    }

    /// The network state at start-up (default: [`AssumeOnline`]).
    pub fn network(mut self, network: Arc<dyn NetworkState>) -> Self {
        self.network = network;
        self
    }

    /// The clock (default: [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The user agent's parameters (default: Chromium's).
    pub fn params(mut self, params: Parameters) -> Self {
        self.params = params;
        self
    }

    /// The registration store (default: an in-memory [`MemoryStore`]; see also
    /// [`data_dir`](Builder::data_dir)).
    pub fn store(mut self, store: Box<dyn RegistrationStore>) -> Self {
        self.store = store;
        self.data_dir = None;
        self.custom_store = true;
        self
    }

    /// Keep registrations durably in `dir` (a `bgsync_store_sqlite::SqliteStore` in
    /// `dir/background-sync.sqlite`), so they survive restarts and crashes. Without it they are
    /// kept in memory. A damaged database is repaired, keeping what can be read
    /// ([`start_report`](BackgroundSync::start_report)); another process using `dir` makes
    /// [`start`](Builder::start) fail with "already in use". Needs the `sqlite` feature (on
    /// by default).
    #[cfg(feature = "sqlite")]
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// The engine's service-worker registry is still loading when Background Sync starts
    /// (Gecko and Servo load it asynchronously): registrations of service workers the host does
    /// not know yet are kept, and nothing fires, until
    /// [`registry_loaded`](BackgroundSync::registry_loaded). Without it, start-up removes the
    /// registrations of service worker registrations the host does not know, or knows as
    /// another origin's.
    pub fn registry_loading(mut self) -> Self {
        self.registry_loading = true;
        self
    }

    /// An engine for a private-browsing session: registrations are kept in memory only and
    /// nothing is written anywhere; they go when the engine does. [`start`](Builder::start)
    /// refuses a data directory or a store with it. Run one such engine beside the profile's
    /// durable one, so that private and normal registrations never meet.
    pub fn private_browsing(mut self) -> Self {
        self.private_browsing = true;
        self
    }

    /// How many DevTools log lines to keep (default 1,000; the oldest go first).
    pub fn log_capacity(mut self, lines: usize) -> Self {
        self.log_capacity = lines;
        self
    }

    /// Starts the Background Sync thread, which loads the stored registrations. Registrations
    /// that are due fire as soon as the engine is online.
    ///
    /// The caller waits only for what takes constant time and can fail at once: the profile's
    /// lock ("already in use"), opening the database and its schema. The rows are read on the
    /// Background Sync thread; calls made meanwhile wait in the engine's queue and are answered,
    /// in order, once the registrations are loaded. [`start_report`](BackgroundSync::start_report)
    /// waits for the load.
    pub fn start(self) -> Result<BackgroundSync, StartError> {
        if self.private_browsing && (self.data_dir.is_some() || self.custom_store) {
            return Err(StartError::Config(
                "a private-browsing engine keeps its registrations in memory only; it cannot \
                 be given a data directory or a store"
                    .into(),
            ));
        }
        let source = match &self.data_dir {
            #[cfg(feature = "sqlite")]
            Some(dir) => Source::Sqlite(SqliteStore::begin_open(dir)?),
            #[cfg(not(feature = "sqlite"))]
            Some(_) => unreachable!("data_dir needs the sqlite feature"),
            None => Source::Store(self.store),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        // Calls wait in a bounded queue; the embedder's notifications and the engine's own
        // messages (outcomes, commits), whose number the engine bounds, in an unbounded one.
        let (calls, calls_rx) = mpsc::channel(self.call_capacity);
        let (events, events_rx) = mpsc::unbounded_channel();
        let (wake_tx, wake_rx) = tokio::sync::watch::channel(WakeUp::default());
        let report = Arc::new(ReportCell::default());
        let loading = Loading {
            params: self.params,
            embedder: Embedder {
                host: self.host,
                clients: self.clients,
                permissions: self.permissions,
                engagement: self.engagement,
                clock: self.clock,
            },
            network: self.network,
            events: events.downgrade(),
            events_rx,
            calls_rx,
            log_capacity: self.log_capacity,
            log_subscribers: self.log_subscribers,
            call_capacity: self.call_capacity,
            registry_loading: self.registry_loading,
            wake_ups: wake_tx,
            report: report.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("background-sync".into())
            .spawn(move || {
                let report = loading.report.clone();
                // A store that panics while loading must not leave start_report() waiting.
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    loading.load(source)
                })) {
                    Ok(Ok(driver)) => runtime.block_on(driver.run()),
                    Ok(Err(e)) => tracing::error!(
                        error = %e,
                        "Background Sync could not load its registrations and has stopped"
                    ),
                    Err(_) => {
                        tracing::error!("the registration store panicked while loading");
                        report.set(StartReport {
                            failure: Some("the registration store panicked while loading".into()),
                            ..StartReport::default()
                        });
                    }
                }
            })?;
        Ok(BackgroundSync {
            calls,
            capacity: self.call_capacity,
            thread: Arc::new(Running {
                thread: Mutex::new(Some(thread)),
                events: events.clone(),
            }),
            events,
            report,
            wake_ups: wake_rx,
        })
    }
}

/// Where start-up reads the registrations from.
enum Source {
    #[cfg(feature = "sqlite")]
    Sqlite(bgsync_store_sqlite::OpeningStore),
    Store(Box<dyn RegistrationStore>),
}

/// Everything the Background Sync thread needs to load the registrations and build its driver.
struct Loading {
    params: Parameters,
    embedder: Embedder,
    network: Arc<dyn NetworkState>,
    events: mpsc::WeakUnboundedSender<Msg>,
    events_rx: mpsc::UnboundedReceiver<Msg>,
    calls_rx: mpsc::Receiver<Msg>,
    log_capacity: usize,
    log_subscribers: Vec<crossbeam_channel::Sender<LogEntry>>,
    call_capacity: usize,
    registry_loading: bool,
    wake_ups: tokio::sync::watch::Sender<WakeUp>,
    report: Arc<ReportCell>,
}

impl Loading {
    /// Reads the stored registrations into a new core and builds the driver, on the Background
    /// Sync thread. If the read fails, the calls queued meanwhile are refused as after shutdown.
    fn load(mut self, source: Source) -> Result<Driver, StoreError> {
        let now = self.embedder.clock.now();
        let (core, store, start_recovery, sw_ids) = match read_store(source, &self.params, now) {
            Ok(read) => read,
            Err(e) => {
                // Recorded before the queue is closed, so that whoever finds it closed can
                // read why.
                self.report.set(StartReport {
                    failure: Some(e.to_string()),
                    ..StartReport::default()
                });
                self.calls_rx.close();
                while let Ok(msg) = self.calls_rx.try_recv() {
                    driver::refuse_shut_down(msg);
                }
                return Err(e);
            }
        };
        self.report.set(StartReport {
            restored: core.len(),
            recovery: start_recovery.clone(),
            failure: None,
        });
        // The host, the permissions and the network are asked on the Background Sync thread
        // (Driver::start_up), as every later call to the embedder is.
        let weak = self.events.clone();
        let sink: OutcomeSink = Arc::new(move |id, outcome| {
            if let Some(tx) = weak.upgrade() {
                let _ = tx.send(Msg::Outcome(id, outcome));
            }
        });
        let dispatcher = Dispatcher::new(self.embedder.host.clone(), sink);
        let mut driver = Driver::new(
            core,
            dispatcher,
            store,
            self.embedder,
            (self.events, self.events_rx, self.calls_rx),
            self.log_capacity,
            self.log_subscribers,
        );
        driver.call_capacity = self.call_capacity;
        driver.next_sw_id = sw_ids
            .iter()
            .map(|r| r.id.0 + 1)
            .max()
            .unwrap_or(0)
            .max(driver::FIRST_STABLE_ID);
        driver.sw_ids = sw_ids
            .into_iter()
            .map(|r| ((r.key, r.scope), (r.id, true)))
            .collect();
        driver.wake_ups = self.wake_ups;
        driver.registry_pending = self.registry_loading;
        driver.network_source = self.network;
        if let Some(r) = start_recovery {
            driver.start_recovered(r);
        }
        Ok(driver)
    }
}

type Read = (
    Scheduler,
    Box<dyn RegistrationStore>,
    Option<Recovery>,
    Vec<bgsync_store::ServiceWorkerIdRecord>,
);

/// Streams the stored registrations into a new core, repairing a damaged database.
fn read_store(source: Source, params: &Parameters, now: Timestamp) -> Result<Read, StoreError> {
    // Registrations are restored offline, so nothing fires before the permissions and the
    // network are known; they fire in Driver::start_up, once both are.
    let fresh = || {
        let mut core = Scheduler::new(params.clone());
        core.set_online(now, false);
        core
    };
    let mut core = fresh();
    // Assigned only when a database is read (the `sqlite` feature).
    #[allow(unused_mut)]
    let mut start_recovery = None;
    let mut store: Box<dyn RegistrationStore> = match source {
        #[cfg(feature = "sqlite")]
        Source::Sqlite(opening) => {
            let (store, recovery) = load_alongside(opening, &mut |r| core.restore_one(now, r))?;
            if let Some(r) = recovery {
                tracing::warn!(
                    recovery = %r,
                    "the sync registration database was damaged; Background Sync starts \
                     with what could be read"
                );
                core = fresh();
                core.restore(now, r.kept.iter().cloned());
                start_recovery = Some(r);
            }
            Box::new(store)
        }
        Source::Store(mut store) => {
            core.restore(now, store.load_all()?);
            store
        }
    };
    let sw_ids = store.load_service_worker_ids()?;
    Ok((core, store, start_recovery, sw_ids))
}

/// Batches of rows read ahead of the restore at most: what the two threads hold between them
/// stays a few thousand rows, whatever the store's size.
#[cfg(feature = "sqlite")]
const LOAD_BATCHES_AHEAD: usize = 4;

/// Streams the stored registrations into `restore`, reading and checking them (and decoding
/// their origins) on a thread of their own while this one decodes the rest and restores them
/// (SQLite's read and the decoding took about two thirds of a cold start of 1,000,000
/// registrations, the restore the rest, one after the other; docs/performance.md, § 8). The rows go over in batches of
/// [`BATCH_ROWS`](bgsync_store_sqlite::BATCH_ROWS), at most [`LOAD_BATCHES_AHEAD`] ahead, so
/// they are never all held at once; `restore` gets them in the store's order. Damage found in
/// decoding stops the read, and the store repairs the database as it would have had it found
/// the damage itself. If no thread can be started, this thread reads them itself. The contract
/// of [`OpeningStore::load_each`](bgsync_store_sqlite::OpeningStore::load_each) holds: with a
/// recovery, what `restore` received must be discarded.
#[cfg(feature = "sqlite")]
fn load_alongside(
    opening: bgsync_store_sqlite::OpeningStore,
    restore: &mut dyn FnMut(StoredRegistration),
) -> Result<(bgsync_store_sqlite::SqliteStore, Option<Recovery>), StoreError> {
    use bgsync_store_sqlite::RowBatch;
    let decoder = opening.decoder();
    let opening = Mutex::new(Some(opening));
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<RowBatch>(LOAD_BATCHES_AHEAD);
        // The decoding side's one verdict: the damage it found, or that every row was sound.
        let (verdict_tx, verdict_rx) = std::sync::mpsc::sync_channel::<Result<(), StoreError>>(1);
        let shared = &opening;
        let reader = std::thread::Builder::new()
            .name("bgsync-load".into())
            .spawn_scoped(scope, move || {
                let opening = shared.lock().take()?;
                let mut tx = Some(tx);
                let verdict = move || {
                    verdict_rx.recv().unwrap_or_else(|_| {
                        Err(StoreError::ReadFailed {
                            cause: "the registrations' decoding stopped without a verdict".into(),
                        })
                    })
                };
                Some(opening.load_batches(&mut |batch| match batch {
                    Some(batch) => {
                        if tx.as_ref().is_some_and(|s| s.send(batch).is_ok()) {
                            return Ok(());
                        }
                        // The decoding side stopped: it found damage (or panicked).
                        Err(verdict().err().unwrap_or(StoreError::ReadFailed {
                            cause: "the registrations' decoding stopped early without saying why"
                                .into(),
                        }))
                    }
                    None => {
                        // Every row is sent: the verdict comes once the last is decoded.
                        tx = None;
                        verdict()
                    }
                }))
            });
        match reader {
            Ok(handle) => {
                let mut found = Ok(());
                for batch in rx.iter() {
                    if let Err(e) = decoder.decode(batch, &mut *restore) {
                        found = Err(e);
                        break;
                    }
                }
                // Sent before the channel is dropped, so that a read waiting to send finds it.
                let _ = verdict_tx.send(found);
                drop(verdict_tx);
                drop(rx);
                match handle.join() {
                    Ok(Some(result)) => result,
                    // The thread found the store taken: cannot happen, it is the only taker.
                    Ok(None) => Err(StoreError::ReadFailed {
                        cause: "the store was already being read".into(),
                    }),
                    // A store that panicked while loading panics here, as it did when read on
                    // this thread (start() reports it).
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            Err(e) => {
                // The closure, and the senders in it, went with the failed spawn.
                tracing::warn!(error = %e, "no thread to read the store on; reading it here");
                match opening.lock().take() {
                    Some(opening) => opening.load_each(restore),
                    None => Err(StoreError::ReadFailed {
                        cause: "the store was already being read".into(),
                    }),
                }
            }
        }
    })
}

/// The start report, set by the Background Sync thread once the registrations are loaded.
#[derive(Default)]
struct ReportCell {
    report: Mutex<Option<StartReport>>,
    ready: parking_lot::Condvar,
}

impl ReportCell {
    fn set(&self, report: StartReport) {
        *self.report.lock() = Some(report);
        self.ready.notify_all();
    }

    fn wait(&self) -> StartReport {
        let mut report = self.report.lock();
        loop {
            if let Some(r) = &*report {
                return r.clone();
            }
            self.ready.wait(&mut report);
        }
    }
}

/// A running Background Sync engine. Cheap to clone; every clone talks to the same thread,
/// which stops when the last clone is dropped or [`shutdown`](BackgroundSync::shutdown) is
/// called; either returns once the thread has stopped and the store is closed.
///
/// The contract of every call: a call is queued when it is made (an async call too, before its
/// future is polled), and answered in the order calls were made. Once the engine has shut
/// down, every call that answers fails alike, with an `UnknownError` saying so (`settle`
/// returns at once; notifications are dropped).
#[derive(Clone)]
pub struct BackgroundSync {
    calls: mpsc::Sender<Msg>,
    capacity: usize,
    events: mpsc::UnboundedSender<Msg>,
    thread: Arc<Running>,
    report: Arc<ReportCell>,
    wake_ups: tokio::sync::watch::Receiver<WakeUp>,
}

/// The Background Sync thread, shared by every handle: when the last handle goes, the thread
/// is stopped and waited for, so that the profile's files are closed (and its lock released)
/// by the time the drop returns, as after [`BackgroundSync::shutdown`].
struct Running {
    thread: Mutex<Option<JoinHandle<()>>>,
    events: mpsc::UnboundedSender<Msg>,
}

impl Running {
    fn stop(&self) {
        let _ = self.events.send(Msg::Shutdown);
        if let Some(thread) = self.thread.lock().take() {
            // A handle dropped on the Background Sync thread itself (by an embedder's callback)
            // cannot wait for that thread; it stops on its own.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What start-up found: how many registrations were restored, and whether the database had to
/// be rebuilt (the damaged file is kept; see [`Recovery`]). Damage found later, by the full
/// check the store runs after start-up or by a commit, is in
/// [`BackgroundSync::recoveries`] and the DevTools log ([`LogEvent::StoreRecovered`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StartReport {
    /// Registrations restored from the store.
    pub restored: usize,
    /// The repair start-up made, if the database was damaged.
    pub recovery: Option<Recovery>,
    /// Why the registrations could not be loaded (a read error other than damage, which is
    /// repaired): the engine then stopped at once, and every call fails as after shutdown.
    /// Nothing was removed from the store.
    pub failure: Option<String>,
}

/// How a storage key is kept in the stable-id table: the origin, then the partition after a
/// space (which no serialized origin holds), so that the default partition's keys are the bare
/// origins.
fn id_key(key: StorageKey) -> String {
    if key.partition.is_default() {
        key.origin.serialize()
    } else {
        format!("{} {}", key.origin.serialize(), key.partition.as_str())
    }
}

fn shut_down() -> DomException {
    DomException::new(
        DomExceptionName::UnknownError,
        "Background Sync has shut down (or could not load its registrations: see \
         start_report()); the call was not carried out",
    )
}

impl BackgroundSync {
    /// Starts configuring an engine around the embedder's service-worker host and window
    /// clients, the two things no default can stand in for.
    pub fn builder(host: Arc<dyn ServiceWorkerHost>, clients: Arc<dyn WindowClients>) -> Builder {
        Builder {
            host,
            clients,
            permissions: Arc::new(AlwaysGranted),
            engagement: Arc::new(FullEngagement),
            network: Arc::new(AssumeOnline),
            clock: Arc::new(SystemClock),
            params: Parameters::default(),
            store: Box::new(MemoryStore::new()),
            data_dir: None,
            log_capacity: 1_000,
            log_subscribers: Vec::new(),
            call_capacity: 10_000,
            registry_loading: false,
            private_browsing: false,
            custom_store: false,
        }
    }

    /// A notification or control message: never refused, never waits.
    fn send(&self, msg: Msg) {
        // A send fails only after shutdown; the reply channel then reports it.
        let _ = self.events.send(msg);
    }

    /// A call from the async API: queued at once, when the call is made (not when its future
    /// is first polled), as the channel API does; the returned future waits for room only if
    /// the queue was full. A send fails only after shutdown; the reply channel then reports it.
    fn call(&self, msg: Msg) -> impl std::future::Future<Output = ()> + Send + 'static {
        let waiting = match self.calls.try_send(msg) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => None,
            Err(mpsc::error::TrySendError::Full(msg)) => Some((self.calls.clone(), msg)),
        };
        async move {
            if let Some((calls, msg)) = waiting {
                let _ = calls.send(msg).await;
            }
        }
    }

    /// A call from an engine thread: refused at once, with its reply, when the queue is full.
    fn call_now(&self, msg: Msg) {
        match self.calls.try_send(msg) {
            Ok(()) => {}
            // After shutdown: the same error the async API gives.
            Err(mpsc::error::TrySendError::Closed(msg)) => driver::refuse_shut_down(msg),
            Err(mpsc::error::TrySendError::Full(msg)) => driver::refuse_busy(msg, self.capacity),
        }
    }

    /// A call from a thread that must not be refused (settling, status): waits for room.
    fn call_blocking(&self, mut msg: Msg) {
        loop {
            match self.calls.try_send(msg) {
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => return,
                Err(mpsc::error::TrySendError::Full(m)) => {
                    msg = m;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        }
    }

    /// `SyncManager.register(tag)` called from a context of storage key `caller` (an origin,
    /// for an engine that does not partition storage) on the service worker registration `sw`.
    /// Resolves once the registration is durable.
    pub fn register(
        &self,
        caller: impl Into<StorageKey>,
        sw: SwRegistrationId,
        tag: impl Into<Tag>,
    ) -> impl std::future::Future<Output = Result<(), DomException>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let queued = self.call(Msg::Register {
            caller: caller.into(),
            sw,
            tag: tag.into(),
            reply: Reply::Async(tx),
        });
        async move {
            queued.await;
            rx.await.unwrap_or_else(|_| Err(shut_down()))
        }
    }

    /// [`register`](BackgroundSync::register) for engine threads: the answer arrives on the
    /// returned crossbeam channel, which can be waited on or selected over with the engine's own.
    pub fn register_with_reply(
        &self,
        caller: impl Into<StorageKey>,
        sw: SwRegistrationId,
        tag: impl Into<Tag>,
    ) -> crossbeam_channel::Receiver<Result<(), DomException>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.call_now(Msg::Register {
            caller: caller.into(),
            sw,
            tag: tag.into(),
            reply: Reply::Channel(tx),
        });
        rx
    }

    /// [`register`](BackgroundSync::register) for an engine thread that waits for the answer:
    /// blocks the calling thread until the registration is durable (or refused). The thread
    /// sleeps at once (a crossbeam receiver spins and yields first, which with many waiting
    /// threads takes CPU from the Background Sync thread: docs/performance.md, row 3), and the
    /// answer reuses one slot per thread, so the wait allocates nothing. Never call it on the
    /// Background Sync thread (from a host or reply callback): it would wait for itself.
    pub fn register_blocking(
        &self,
        caller: impl Into<StorageKey>,
        sw: SwRegistrationId,
        tag: impl Into<Tag>,
    ) -> Result<(), DomException> {
        type Slot = Arc<driver::Parked<Result<(), DomException>>>;
        thread_local! {
            static SLOT: std::cell::Cell<Option<Slot>> = const { std::cell::Cell::new(None) };
        }
        let slot = driver::Parked::for_this_thread(SLOT.take());
        self.call_now(Msg::Register {
            caller: caller.into(),
            sw,
            tag: tag.into(),
            reply: Reply::Parked(driver::ParkedReply(Some(slot.clone()))),
        });
        let answer = slot.wait();
        SLOT.set(Some(slot));
        answer.unwrap_or_else(|| Err(shut_down()))
    }

    /// [`register`](BackgroundSync::register) for an engine's event loop: `done` is called once,
    /// on the Background Sync thread, with the answer once the registration is durable (or the
    /// refusal). A binding posts it to the calling agent's task queue there and settles the
    /// promise from that task, so the agent's thread never waits for the disk and a burst of
    /// calls shares commits. If the engine shuts down first, `done` gets the shut-down error. A
    /// `done` that panics is contained and logged.
    pub fn register_then(
        &self,
        caller: impl Into<StorageKey>,
        sw: SwRegistrationId,
        tag: impl Into<Tag>,
        done: impl FnOnce(Result<(), DomException>) + Send + 'static,
    ) {
        self.call_now(Msg::Register {
            caller: caller.into(),
            sw,
            tag: tag.into(),
            reply: Reply::then(done),
        });
    }

    /// `SyncManager.getTags()`: the tags of every registration of `sw`, in the order they were
    /// registered.
    pub fn get_tags(
        &self,
        caller: impl Into<StorageKey>,
        sw: SwRegistrationId,
    ) -> impl std::future::Future<Output = Result<Vec<Tag>, DomException>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let queued = self.call(Msg::GetTags {
            caller: caller.into(),
            sw,
            reply: Reply::Async(tx),
        });
        async move {
            queued.await;
            rx.await.unwrap_or_else(|_| Err(shut_down()))
        }
    }

    /// [`get_tags`](BackgroundSync::get_tags) for engine threads, answering on a crossbeam
    /// channel.
    pub fn get_tags_with_reply(
        &self,
        caller: impl Into<StorageKey>,
        sw: SwRegistrationId,
    ) -> crossbeam_channel::Receiver<Result<Vec<Tag>, DomException>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.call_now(Msg::GetTags {
            caller: caller.into(),
            sw,
            reply: Reply::Channel(tx),
        });
        rx
    }

    /// [`get_tags`](BackgroundSync::get_tags) for an engine's event loop: `done` is called
    /// once, on the Background Sync thread, as [`register_then`](BackgroundSync::register_then)
    /// says.
    pub fn get_tags_then(
        &self,
        caller: impl Into<StorageKey>,
        sw: SwRegistrationId,
        done: impl FnOnce(Result<Vec<Tag>, DomException>) + Send + 'static,
    ) {
        self.call_now(Msg::GetTags {
            caller: caller.into(),
            sw,
            reply: Reply::then(done),
        });
    }

    /// A stable id for the service worker registration with this storage key and scope URL,
    /// for engines whose own ids last one session: the same id for the same pair across
    /// restarts, a new one for a new pair, answered once it is durable. Ids given this way start
    /// at 2^32; an engine that also uses ids of its own keeps them below. In a
    /// [private-browsing](Builder::private_browsing) engine the ids last as long as it does.
    pub fn service_worker_id(
        &self,
        storage_key: impl Into<StorageKey>,
        scope: &str,
    ) -> impl std::future::Future<Output = Result<SwRegistrationId, DomException>> + Send + 'static
    {
        let (tx, rx) = oneshot::channel();
        let queued = self.call(Msg::ServiceWorkerId {
            key: id_key(storage_key.into()),
            scope: scope.to_owned(),
            reply: Reply::Async(tx),
        });
        async move {
            queued.await;
            rx.await.unwrap_or_else(|_| Err(shut_down()))
        }
    }

    /// [`service_worker_id`](BackgroundSync::service_worker_id) for engine threads, answering on
    /// a crossbeam channel (a service-worker registry loading on a thread of its own).
    pub fn service_worker_id_with_reply(
        &self,
        storage_key: impl Into<StorageKey>,
        scope: &str,
    ) -> crossbeam_channel::Receiver<Result<SwRegistrationId, DomException>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.call_now(Msg::ServiceWorkerId {
            key: id_key(storage_key.into()),
            scope: scope.to_owned(),
            reply: Reply::Channel(tx),
        });
        rx
    }

    /// DevTools' "Sync" button (`ServiceWorker.dispatchSyncEvent(origin, registrationId, tag,
    /// lastChance)`): fires a `sync` event with `tag` and `last_chance` at the active worker of
    /// `sw` now, whatever the network and whether or not a registration has the tag, and
    /// resolves with how it ended. No registration changes; the log records it
    /// (`DevToolsDispatched`, `DevToolsCompleted`). `InvalidStateError` if `sw` has no active
    /// worker of `origin`.
    pub fn dispatch_sync_event(
        &self,
        origin: &Origin,
        sw: SwRegistrationId,
        tag: impl Into<Tag>,
        last_chance: bool,
    ) -> impl std::future::Future<Output = Result<DispatchOutcome, DomException>> + Send + 'static
    {
        let (tx, rx) = oneshot::channel();
        let queued = self.call(Msg::DispatchNow {
            origin: origin.clone(),
            sw,
            tag: tag.into(),
            last_chance,
            reply: Reply::Async(tx),
        });
        async move {
            queued.await;
            rx.await.unwrap_or_else(|_| Err(shut_down()))
        }
    }

    /// [`dispatch_sync_event`](BackgroundSync::dispatch_sync_event) for engine threads.
    pub fn dispatch_sync_event_with_reply(
        &self,
        origin: &Origin,
        sw: SwRegistrationId,
        tag: impl Into<Tag>,
        last_chance: bool,
    ) -> crossbeam_channel::Receiver<Result<DispatchOutcome, DomException>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.call_blocking(Msg::DispatchNow {
            origin: origin.clone(),
            sw,
            tag: tag.into(),
            last_chance,
            reply: Reply::Channel(tx),
        });
        rx
    }

    /// The service-worker registry has loaded (after [`Builder::registry_loading`]): the
    /// registrations of service workers it does not know, or knows as another origin's, are
    /// removed (durably), and what is due fires.
    pub fn registry_loaded(&self) {
        self.send(Msg::RegistryLoaded);
    }

    /// The network went online or offline. Going online fires every pending registration.
    pub fn network_changed(&self, online: bool) {
        self.send(Msg::Network(online));
    }

    /// The "background-sync" permission of `origin` changed.
    pub fn permission_changed(&self, origin: &Origin, state: PermissionState) {
        self.send(Msg::Permission(origin.clone(), state));
    }

    /// The "periodic-background-sync" permission of `origin` changed. Chromium: revoked, the
    /// origin's periodic registrations are removed.
    pub fn periodic_permission_changed(&self, origin: &Origin, state: PermissionState) {
        self.send(Msg::PeriodicPermission(origin.clone(), state));
    }

    /// The engagement of `origin` changed: its periodic registrations' intervals follow (none
    /// suspends them; engagement coming back revives them).
    pub fn engagement_changed(&self, origin: &Origin, engagement: Engagement) {
        self.send(Msg::EngagementChanged(origin.clone(), engagement));
    }

    /// [`PeriodicSyncManager.register(tag, {minInterval})`](https://wicg.github.io/periodic-background-sync/#dom-periodicsyncmanager-register)
    /// for an engine's event loop: `done` is called once, on the Background Sync thread, when
    /// the registration is durable (or refused), as [`register_then`](BackgroundSync::register_then)
    /// says. `min_interval` is the WebIDL-converted `minInterval` in milliseconds.
    pub fn periodic_register_then(
        &self,
        caller: impl Into<StorageKey>,
        sw: SwRegistrationId,
        tag: impl Into<Tag>,
        min_interval: std::time::Duration,
        done: impl FnOnce(Result<(), DomException>) + Send + 'static,
    ) {
        self.call_now(Msg::PeriodicRegister {
            caller: caller.into(),
            sw,
            tag: tag.into(),
            min_interval,
            reply: Reply::then(done),
        });
    }

    /// `PeriodicSyncManager.unregister(tag)`: resolves whether or not there was one.
    pub fn periodic_unregister_then(
        &self,
        caller: impl Into<StorageKey>,
        sw: SwRegistrationId,
        tag: impl Into<Tag>,
        done: impl FnOnce(Result<(), DomException>) + Send + 'static,
    ) {
        self.call_now(Msg::PeriodicUnregister {
            caller: caller.into(),
            sw,
            tag: tag.into(),
            reply: Reply::then(done),
        });
    }

    /// `PeriodicSyncManager.getTags()`: the tags of `sw`'s periodic registrations, in the order
    /// they were registered.
    pub fn periodic_get_tags_then(
        &self,
        caller: impl Into<StorageKey>,
        sw: SwRegistrationId,
        done: impl FnOnce(Result<Vec<Tag>, DomException>) + Send + 'static,
    ) {
        self.call_now(Msg::PeriodicGetTags {
            caller: caller.into(),
            sw,
            reply: Reply::then(done),
        });
    }

    /// [`periodic_register_then`](BackgroundSync::periodic_register_then) for an engine thread.
    pub fn periodic_register_with_reply(
        &self,
        caller: impl Into<StorageKey>,
        sw: SwRegistrationId,
        tag: impl Into<Tag>,
        min_interval: std::time::Duration,
    ) -> crossbeam_channel::Receiver<Result<(), DomException>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.call_now(Msg::PeriodicRegister {
            caller: caller.into(),
            sw,
            tag: tag.into(),
            min_interval,
            reply: Reply::Channel(tx),
        });
        rx
    }

    /// The service worker registration `sw` was unregistered: its sync registrations go, and an
    /// event in flight is terminated and its outcome ignored.
    pub fn service_worker_unregistered(&self, sw: SwRegistrationId) {
        self.send(Msg::SwUnregistered(sw));
    }

    /// Clearing a site's data: removes every sync registration of `origin`, in every storage
    /// partition (events in flight are terminated and their outcomes ignored). Returns once the
    /// removal is committed; an `UnknownError` means the store failed and the rows are still on
    /// disk (call again). [`clear_storage_key`](BackgroundSync::clear_storage_key) clears one
    /// partition.
    pub fn clear_origin(
        &self,
        origin: &Origin,
    ) -> impl std::future::Future<Output = Result<(), DomException>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let queued = self.call(Msg::ClearOrigin(origin.clone(), Reply::Async(tx)));
        async move {
            queued.await;
            rx.await.unwrap_or_else(|_| Err(shut_down()))
        }
    }

    /// [`clear_origin`](BackgroundSync::clear_origin) for an engine's event loop: `done` is
    /// called once, on the Background Sync thread, once the removal is committed (or failed),
    /// as [`register_then`](BackgroundSync::register_then) says.
    pub fn clear_origin_then(
        &self,
        origin: &Origin,
        done: impl FnOnce(Result<(), DomException>) + Send + 'static,
    ) {
        self.call_now(Msg::ClearOrigin(origin.clone(), Reply::then(done)));
    }

    /// Clear-site-data in an engine that partitions storage: removes the sync registrations of
    /// one storage key (the origin in one partition; a container's, a top-level site's), and
    /// no other partition's. Returns as [`clear_origin`](BackgroundSync::clear_origin) does.
    pub fn clear_storage_key(
        &self,
        key: impl Into<StorageKey>,
    ) -> impl std::future::Future<Output = Result<(), DomException>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let queued = self.call(Msg::ClearStorageKey(key.into(), Reply::Async(tx)));
        async move {
            queued.await;
            rx.await.unwrap_or_else(|_| Err(shut_down()))
        }
    }

    /// Removes every sync registration of every origin; returns as
    /// [`clear_origin`](BackgroundSync::clear_origin) does.
    pub fn clear_all(
        &self,
    ) -> impl std::future::Future<Output = Result<(), DomException>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let queued = self.call(Msg::ClearAll(Reply::Async(tx)));
        async move {
            queued.await;
            rx.await.unwrap_or_else(|_| Err(shut_down()))
        }
    }

    /// Waits until the engine has handled every call made before, done everything that is due
    /// at the clock's current time, and carried out what that led to (including outcomes hosts
    /// reported at once). With a [`VirtualClock`], call it after moving the clock.
    /// After shutdown it returns at once: there is nothing left to wait for.
    pub fn settle(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let queued = self.call(Msg::Settle(Reply::Async(tx)));
        async move {
            queued.await;
            let _ = rx.await;
        }
    }

    /// [`settle`](BackgroundSync::settle) for threads that are not async.
    pub fn settle_blocking(&self) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.call_blocking(Msg::Settle(Reply::Channel(tx)));
        let _ = rx.recv();
    }

    /// The DevTools-style log: registered, dispatched (with lastChance), completed (with outcome
    /// and next delay), re-registered; oldest first.
    pub fn log(
        &self,
    ) -> impl std::future::Future<Output = Result<Vec<LogEntry>, DomException>> + Send + 'static
    {
        let (tx, rx) = oneshot::channel();
        let queued = self.call(Msg::Log(Reply::Async(tx)));
        async move {
            queued.await;
            rx.await.map_err(|_| shut_down())
        }
    }

    /// A DevTools recording of Background Sync events (the protocol's `BackgroundService`
    /// domain), following the log from now on; it starts not recording. See [`devtools`].
    pub fn background_service_recorder(&self) -> devtools::BackgroundServiceRecorder {
        devtools::BackgroundServiceRecorder::new(self.subscribe_log())
    }

    /// Streams the DevTools log from now on: each line arrives on the returned channel as it is
    /// written (lines about committed changes are written after the commit). Dropping the
    /// receiver ends the subscription.
    pub fn subscribe_log(&self) -> crossbeam_channel::Receiver<LogEntry> {
        let (tx, rx) = crossbeam_channel::bounded(LOG_SUBSCRIPTION_CAPACITY);
        self.send(Msg::SubscribeLog(tx));
        rx
    }

    /// The soonest time the user agent must be woken, for an OS wake-up: the end of the soonest
    /// back-off, and no later than the recovery time while events are in flight.
    pub fn next_wake_up(
        &self,
    ) -> impl std::future::Future<Output = Result<Option<Timestamp>, DomException>> + Send + 'static
    {
        let (tx, rx) = oneshot::channel();
        let queued = self.call(Msg::WakeUp(Reply::Async(tx)));
        async move {
            queued.await;
            rx.await.map_err(|_| shut_down())
        }
    }

    /// The wake-up the browser should schedule and whether to keep it alive, as a watch
    /// channel that changes when they do: `changed().await` in async code, or `borrow()` and
    /// `has_changed()` from an engine thread. (`next_wake_up` asks once; this is told.)
    pub fn wake_ups(&self) -> tokio::sync::watch::Receiver<WakeUp> {
        self.wake_ups.clone()
    }

    /// The engine's timers and work in flight, once everything queued before has been handled
    /// (it settles first). For engine threads that drive a [`VirtualClock`] step by step.
    pub fn status_blocking(&self) -> Result<EngineStatus, DomException> {
        self.settle_blocking();
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.call_blocking(Msg::Status(Reply::Channel(tx)));
        rx.recv().map_err(|_| shut_down())
    }

    /// What start-up found (restored registrations, a repaired database, a failed load).
    /// Waits until the Background Sync thread has loaded the stored registrations.
    pub fn start_report(&self) -> StartReport {
        self.report.wait()
    }

    /// Every repair of a damaged database since start-up, start-up's first: the damaged file's
    /// new name, the cause, and what was kept.
    pub fn recoveries(
        &self,
    ) -> impl std::future::Future<Output = Result<Vec<Recovery>, DomException>> + Send + 'static
    {
        let (tx, rx) = oneshot::channel();
        let queued = self.call(Msg::Recoveries(Reply::Async(tx)));
        async move {
            queued.await;
            rx.await.map_err(|_| shut_down())
        }
    }

    /// Every registration the engine holds, with its state, attempts, next fire time and what
    /// it waits for before it can fire (the network, the permission, a back-off, its event in
    /// flight): the answer to "why didn't my sync fire?", for DevTools and diagnostics.
    pub fn registrations(
        &self,
    ) -> impl std::future::Future<Output = Result<Vec<RegistrationSnapshot>, DomException>>
           + Send
           + 'static {
        let (tx, rx) = oneshot::channel();
        let queued = self.call(Msg::Inspect(Reply::Async(tx)));
        async move {
            queued.await;
            rx.await.map_err(|_| shut_down())
        }
    }

    /// Stops the Background Sync thread and waits for it. Calls still in progress are rejected
    /// with an `UnknownError`; everything acknowledged is in the store.
    pub fn shutdown(&self) {
        self.thread.stop();
    }
}

impl std::fmt::Debug for BackgroundSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundSync").finish_non_exhaustive()
    }
}
