//! The agent and its event loop (HTML § 8.1.2 agents, § 8.1.7 event loops): the state every
//! realm of the user agent shares — the task queue, timers, the realms table, service worker
//! registrations, extendable-event lifetimes, the control surface's waiters, console, uncaught
//! and host reports — and the Background Sync engine it talks to. Native functions post tasks
//! and read state through [`State`]; the user agent runs the tasks.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgsync::{
    BackgroundSync, DispatchOutcome, LogEntry, LogEvent, OutcomeReporter, SyncEventDispatch,
    VirtualClock,
};
use bgsync_idl::ExtendableEventLifetime;
use bgsync_store::MemoryStore;
use bgsync_types::{
    DispatchId, DomException, Origin, Partition, StorageKey, SwRegistrationId, Tag, Timestamp,
};
use crossbeam_channel::{Receiver, Sender};
use url::Url;

use crate::config::{Served, UserAgentConfig};
use crate::host::{Host, HostCall, Shared};
use crate::values::{ErrOut, GlobalKind, Out, RealmId};
use crate::UaError;

pub(crate) enum Task {
    Deliver {
        realm: RealmId,
        call: u64,
        result: Result<Out, ErrOut>,
    },
    Timer {
        realm: RealmId,
        id: u64,
    },
    FireSync(SyncEventDispatch, OutcomeReporter),
    /// Install (then activate) `sw`; `caller` is the `register()` call to resolve, if any.
    Install {
        sw: SwRegistrationId,
        caller: Option<(RealmId, u64)>,
    },
    Activate(SwRegistrationId),
    Hook {
        realm: RealmId,
        hook: &'static str,
        args: Vec<Out>,
    },
    Control {
        realm: RealmId,
        call: u64,
        op: String,
        arg: Out,
    },
    PostToWorker {
        sw: SwRegistrationId,
        json: String,
        source: Out,
    },
    /// `new Worker(url)` in `parent`: start the dedicated worker known to script as `handle`.
    StartWorker {
        parent: RealmId,
        handle: u64,
        url: Url,
    },
    /// `worker.postMessage(…)`: a `message` event at the dedicated worker `handle`.
    PostToDedicated {
        handle: u64,
        json: String,
    },
    /// `worker.terminate()`.
    TerminateDedicated(u64),
}

/// A dedicated worker as its `Worker` object knows it.
pub(crate) struct Dedicated {
    /// The realm that made it (its owner).
    pub(crate) parent: RealmId,
    /// Its own realm, once started; `None` before (or if its script could not be fetched).
    pub(crate) realm: Option<RealmId>,
}

/// What an extendable event's lifetime decides once it is over (see `extendable_event`).
pub(crate) enum Purpose {
    Sync(OutcomeReporter),
    Install(SwRegistrationId),
    Activate(SwRegistrationId),
}

#[derive(Clone, Copy)]
pub(crate) enum Waiting {
    Idle,
    Advance(Timestamp),
    Settled,
}

pub(crate) struct Waiter {
    pub(crate) realm: RealmId,
    pub(crate) call: u64,
    pub(crate) what: Waiting,
}

/// A service worker's state (what `registration` and `service_worker` move it through).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WorkerState {
    Parsed,
    Installing,
    Installed,
    Activating,
    Activated,
    Redundant,
}

impl WorkerState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            WorkerState::Parsed => "parsed",
            WorkerState::Installing => "installing",
            WorkerState::Installed => "installed",
            WorkerState::Activating => "activating",
            WorkerState::Activated => "activated",
            WorkerState::Redundant => "redundant",
        }
    }
}

/// A service worker registration as the agent records it (see `registration`).
pub(crate) struct SwReg {
    pub(crate) scope: Url,
    pub(crate) script: Url,
    pub(crate) origin: Origin,
    /// The storage partition it was registered in (its registrant's).
    pub(crate) partition: Partition,
    pub(crate) state: WorkerState,
    pub(crate) realm: Option<RealmId>,
}

pub(crate) struct RealmInfo {
    pub(crate) kind: GlobalKind,
    pub(crate) url: Url,
    pub(crate) origin: Origin,
    /// Its storage partition: the default one, except in a frame of another site than its
    /// top-level window's, whose storage is partitioned under that site (as Chromium does).
    pub(crate) partition: Partition,
    /// A top-level window (what counts as a window client); not a frame, not a worker.
    pub(crate) top_level: bool,
    /// The window a frame is nested in, the realm that started a dedicated worker.
    pub(crate) parent: Option<RealmId>,
    pub(crate) alive: bool,
}

/// How a new realm sits among the others.
#[derive(Debug, Clone, Default)]
pub(crate) struct Placement {
    pub(crate) parent: Option<RealmId>,
    pub(crate) top_level: bool,
    pub(crate) partition: Partition,
}

/// One line of the engine's log as `bgsyncTest.log()` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// `registered`, `reregistered`, `dispatched` or `completed`.
    pub kind: &'static str,
    /// The tag.
    pub tag: Tag,
    /// The engine's clock, in ms.
    pub time: u64,
    /// For `dispatched`.
    pub last_chance: bool,
    /// For `completed`: `fulfilled`, `rejected`, `timeout` or `terminated`.
    pub outcome: &'static str,
}

/// Where a DevTools dispatch's outcome arrives.
type DevToolsReply = crossbeam_channel::Receiver<Result<DispatchOutcome, DomException>>;

pub(crate) struct State {
    pub(crate) config: UserAgentConfig,
    pub(crate) engine: BackgroundSync,
    pub(crate) clock: VirtualClock,
    pub(crate) store: MemoryStore,
    pub(crate) shared: Arc<Shared>,
    pub(crate) host_tx: Sender<HostCall>,
    pub(crate) host_rx: Receiver<HostCall>,
    pub(crate) log_rx: Receiver<LogEntry>,
    pub(crate) tasks: VecDeque<Task>,
    pub(crate) waiters: Vec<Waiter>,
    /// `bgsyncTest.dispatchSyncEvent` calls waiting for their event's outcome.
    pub(crate) devtools: Vec<(RealmId, u64, DevToolsReply)>,
    /// Timers by when they are due on the monotonic clock ([`State::monotonic`]).
    pub(crate) timers: BTreeMap<(Duration, u64), (RealmId, u64, Option<Duration>)>,
    pub(crate) timer_index: HashMap<(RealmId, u64), (Duration, u64)>,
    /// When the user agent started (real time): the monotonic clock's zero.
    pub(crate) started: Instant,
    /// How far `bgsyncTest.advanceTime` has moved the controlled clock in all: the monotonic
    /// clock runs in real time and jumps with it.
    pub(crate) advanced: Duration,
    pub(crate) timer_seq: u64,
    pub(crate) lifetimes: HashMap<u64, (ExtendableEventLifetime, Purpose)>,
    pub(crate) next_lifetime: u64,
    pub(crate) realms: Vec<RealmInfo>,
    pub(crate) sws: BTreeMap<SwRegistrationId, SwReg>,
    pub(crate) next_sw: u64,
    pub(crate) online: bool,
    pub(crate) permissions: HashMap<Origin, &'static str>,
    /// "periodic-background-sync" as `test_driver.set_permission` set it (Chromium: denied
    /// until granted).
    pub(crate) periodic_permissions: HashMap<Origin, &'static str>,
    pub(crate) log: Vec<LogRecord>,
    /// The engine's log lines as it wrote them (for a timeline).
    pub(crate) entries: Vec<LogEntry>,
    pub(crate) console: Vec<String>,
    pub(crate) uncaught: Vec<String>,
    pub(crate) host_reports: Vec<String>,
    /// `executeScript` calls running in another realm: id → the caller's realm and call.
    pub(crate) remote_calls: HashMap<u64, (RealmId, u64)>,
    pub(crate) next_remote: u64,
    /// Dedicated workers by the handle their `Worker` object holds.
    pub(crate) dedicated: HashMap<u64, Dedicated>,
    pub(crate) next_dedicated: u64,
}

pub(crate) fn start_engine(
    config: &UserAgentConfig,
    clock: &VirtualClock,
    store: &MemoryStore,
    shared: &Arc<Shared>,
    tx: &Sender<HostCall>,
    online: bool,
) -> Result<(BackgroundSync, Receiver<LogEntry>), UaError> {
    let host = Arc::new(Host {
        shared: shared.clone(),
        tx: tx.clone(),
    });
    let (log_tx, log_rx) = crossbeam_channel::unbounded();
    let mut builder = BackgroundSync::builder(host.clone(), host.clone())
        .log_to(log_tx)
        .permissions(host.clone())
        .engagement(host)
        .network(Arc::new(bgsync::testing::FixedNetwork(online)))
        .clock(Arc::new(clock.clone()))
        .params(config.params.clone());
    builder = match &config.data_dir {
        Some(dir) => builder.data_dir(dir),
        None => builder.store(Box::new(store.clone())),
    };
    let engine = builder
        .start()
        .map_err(|e| UaError::Engine(e.to_string()))?;
    Ok((engine, log_rx))
}

impl State {
    /// The text served at `url`: a [`Served`] entry, else the file under the root.
    pub(crate) fn load(&self, url: &Url) -> Result<String, UaError> {
        let not_found = || UaError::NotFound(url.to_string());
        let origin = Origin::from_url(url).map_err(|_| not_found())?;
        let base = std::iter::once(&self.config.base_url)
            .chain(&self.config.origins)
            .find(|b| Origin::from_url(b).ok().as_ref() == Some(&origin))
            .ok_or_else(not_found)?;
        let path = url.path();
        let path = match self.config.served.get(path) {
            Some(Served::Text(t)) => return Ok(t.clone()),
            Some(Served::File(f)) => f.clone(),
            None => {
                let rel = path.strip_prefix(base.path()).ok_or_else(not_found)?;
                let rel = percent_decode(rel);
                if rel.split('/').any(|c| c == "..") {
                    return Err(not_found());
                }
                self.config.root.join(rel)
            }
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| UaError::NotFound(format!("{url} ({}: {e})", path.display())))?;
        if url.path().contains(".sub.") && !self.config.substitutions.is_empty() {
            let mut text = text;
            for (from, to) in &self.config.substitutions {
                text = text.replace(from.as_str(), to);
            }
            return Ok(text);
        }
        Ok(text)
    }

    /// The controlled wall clock: what the engine schedules by, and `Date.now()` in every realm.
    /// It moves only when a test advances it (as Chromium's under a frozen libfaketime clock).
    pub(crate) fn clock_now(&self) -> Timestamp {
        bgsync::Clock::now(&self.clock)
    }

    /// Moves the controlled wall clock to `t` (never back); the monotonic clock jumps with it.
    pub(crate) fn set_clock(&mut self, t: Timestamp) {
        let now = self.clock_now();
        if t > now {
            self.advanced += t.saturating_duration_since(now);
            self.clock.set(t);
        }
    }

    /// The monotonic clock of timers and `performance.now()`: real time since the user agent
    /// started plus every advance of the controlled clock, so that advancing the clock by an
    /// hour also runs the timers of that hour.
    pub(crate) fn monotonic(&self) -> Duration {
        self.started.elapsed() + self.advanced
    }

    pub(crate) fn pump_host(&mut self) {
        while let Ok(call) = self.host_rx.try_recv() {
            self.host_call(call);
        }
        self.pump_log();
    }

    pub(crate) fn host_call(&mut self, call: HostCall) {
        match call {
            HostCall::Fire(event, reporter) => {
                self.tasks.push_back(Task::FireSync(event, reporter))
            }
            HostCall::Terminate(id) => self.forget_dispatch(id),
            HostCall::Reply {
                realm,
                call,
                result,
            } => self.deliver(realm, call, result),
        }
    }

    /// Where the engine's answers to this user agent's calls come back: the queue the event
    /// loop waits on.
    pub(crate) fn replies(&self) -> crossbeam_channel::Sender<HostCall> {
        self.host_tx.clone()
    }

    /// The engine gave up on an event (time limit): its outcome no longer matters.
    fn forget_dispatch(&mut self, id: DispatchId) {
        self.lifetimes.retain(|_, (_, p)| match p {
            Purpose::Sync(r) => r.id() != id,
            _ => true,
        });
    }

    pub(crate) fn pump_log(&mut self) {
        while let Ok(entry) = self.log_rx.try_recv() {
            self.entries.push(entry.clone());
            let (kind, last_chance, outcome) = match entry.event {
                LogEvent::Registered => ("registered", false, ""),
                LogEvent::Reregistered { .. } => ("reregistered", false, ""),
                LogEvent::Dispatched { last_chance, .. } => ("dispatched", last_chance, ""),
                LogEvent::Completed { outcome, .. } => ("completed", false, outcome_name(outcome)),
                LogEvent::PeriodicRegistered { .. } => ("periodic-registered", false, ""),
                LogEvent::PeriodicUnregistered => ("periodic-unregistered", false, ""),
                LogEvent::PeriodicDispatched { .. } => ("periodic-dispatched", false, ""),
                LogEvent::PeriodicCompleted { outcome, .. } => {
                    ("periodic-completed", false, outcome_name(outcome))
                }
                _ => continue,
            };
            self.log.push(LogRecord {
                kind,
                tag: entry.tag,
                time: entry.time.0,
                last_chance,
                outcome,
            });
        }
    }

    pub(crate) fn add_timer(
        &mut self,
        realm: RealmId,
        id: u64,
        after: Duration,
        repeat: Option<Duration>,
    ) {
        self.timer_seq += 1;
        let key = (self.monotonic() + after, self.timer_seq);
        self.timers.insert(key, (realm, id, repeat));
        self.timer_index.insert((realm, id), key);
    }

    pub(crate) fn clear_timer(&mut self, realm: RealmId, id: u64) {
        if let Some(key) = self.timer_index.remove(&(realm, id)) {
            self.timers.remove(&key);
        }
    }

    pub(crate) fn hook(&mut self, realm: RealmId, hook: &'static str, args: Vec<Out>) {
        self.tasks.push_back(Task::Hook { realm, hook, args });
    }

    pub(crate) fn deliver(&mut self, realm: RealmId, call: u64, result: Result<Out, ErrOut>) {
        self.tasks.push_back(Task::Deliver {
            realm,
            call,
            result,
        });
    }

    pub(crate) fn engine(&self) -> &BackgroundSync {
        &self.engine
    }
    pub(crate) fn realm_origin(&self, realm: RealmId) -> Origin {
        self.realms[realm].origin.clone()
    }
    pub(crate) fn realm_url(&self, realm: RealmId) -> Url {
        self.realms[realm].url.clone()
    }
    /// The engine's cap on a tag, in bytes of UTF-8.
    pub(crate) fn max_tag_bytes(&self) -> usize {
        self.config.params.max_tag_bytes
    }
    pub(crate) fn online(&self) -> bool {
        self.online
    }
    pub(crate) fn permission(&self, realm: RealmId) -> &'static str {
        self.permissions
            .get(&self.realms[realm].origin)
            .copied()
            .unwrap_or("granted")
    }
    pub(crate) fn print(&mut self, level: &str, text: String) {
        tracing::debug!(target: "bgsync_quickjs::console", "{level}: {text}");
        self.console.push(format!("{level}: {text}"));
    }
    pub(crate) fn host_report(&mut self, text: String) {
        self.host_reports.push(text);
    }
    pub(crate) fn report_uncaught(&mut self, text: String) {
        self.uncaught.push(text);
    }
    pub(crate) fn push_task(&mut self, task: Task) {
        self.tasks.push_back(task);
    }
    /// The windows and frames of a storage key: `(realm, url, top-level)`.
    pub(crate) fn windows_of(&self, key: &StorageKey) -> Vec<(RealmId, Url, bool)> {
        self.realms
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.alive
                    && r.kind == GlobalKind::Window
                    && r.origin == key.origin
                    && r.partition == key.partition
            })
            .map(|(i, r)| (i, r.url.clone(), r.top_level))
            .collect()
    }

    /// The storage key of `realm`: its origin in its partition.
    pub(crate) fn realm_key(&self, realm: RealmId) -> StorageKey {
        let r = &self.realms[realm];
        StorageKey {
            origin: r.origin.clone(),
            partition: r.partition.clone(),
        }
    }

    /// The top-level window `realm` is in (itself if it is one).
    pub(crate) fn top_of(&self, mut realm: RealmId) -> RealmId {
        while let Some(p) = self.realms[realm]
            .parent
            .filter(|_| !self.realms[realm].top_level)
        {
            realm = p;
        }
        realm
    }

    /// Marks `realm` and the frames and dedicated workers nested in it closed; an origin left
    /// with no top-level window is no longer a window client. Returns the realms closed.
    pub(crate) fn close_realm(&mut self, realm: RealmId) -> Vec<RealmId> {
        let mut closed = vec![realm];
        let mut i = 0;
        while i < closed.len() {
            let r = closed[i];
            let children: Vec<RealmId> = (0..self.realms.len())
                .filter(|c| {
                    self.realms[*c].alive
                        && self.realms[*c].parent == Some(r)
                        && !closed.contains(c)
                })
                .collect();
            closed.extend(children);
            i += 1;
        }
        for r in &closed {
            self.realms[*r].alive = false;
        }
        let origins: Vec<Origin> = closed
            .iter()
            .filter(|r| self.realms[**r].top_level)
            .map(|r| self.realms[*r].origin.clone())
            .collect();
        for origin in origins {
            let open = self
                .realms
                .iter()
                .any(|r| r.alive && r.top_level && r.origin == origin);
            if !open {
                self.shared.windows().remove(&origin);
            }
        }
        self.dedicated.retain(|_, d| !closed.contains(&d.parent));
        closed
    }
}

/// The schemeful site of `origin` (scheme and registrable domain), what storage partitions
/// are keyed by. The registrable domain is taken as the last two labels of the host, which is
/// right for the test hosts (`web-platform.test`, `not-web-platform.test` and their
/// subdomains); an IP address is its own site.
pub(crate) fn site_of(origin: &Origin) -> String {
    let url = Url::parse(&origin.serialize()).ok();
    let scheme = url.as_ref().map_or("https", |u| u.scheme()).to_owned();
    let host = url
        .as_ref()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let site = if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        host
    } else {
        let labels: Vec<&str> = host.split('.').collect();
        labels[labels.len().saturating_sub(2)..].join(".")
    };
    format!("{scheme}://{site}")
}

/// The partition of a frame of `origin` nested under a top-level window of `top`: the top's
/// site when the two sites differ (third-party storage partitioning, as Chromium does since
/// version 115), the default partition otherwise.
pub(crate) fn frame_partition(origin: &Origin, top: &Origin) -> Partition {
    let site = site_of(top);
    if site_of(origin) == site {
        Partition::default()
    } else {
        Partition::new(&site)
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A dispatch outcome as `bgsyncTest` and the log name it.
pub(crate) fn outcome_name(o: DispatchOutcome) -> &'static str {
    match o {
        DispatchOutcome::Fulfilled => "fulfilled",
        DispatchOutcome::Rejected => "rejected",
        DispatchOutcome::TimedOut => "timeout",
        DispatchOutcome::WorkerTerminated | DispatchOutcome::WorkerFailedToStart => "terminated",
        _ => "other",
    }
}
