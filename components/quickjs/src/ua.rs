//! The user agent: one QuickJS runtime, one realm per global, one Background Sync engine, and
//! the event loop that ties them together.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgsync::{
    BackgroundSync, DispatchOutcome, LogEntry, LogEvent, OutcomeReporter, Parameters,
    RegistrationInfo, SyncEventDispatch, VirtualClock,
};
use bgsync_idl::{EventOutcome, ExtendableEventLifetime};
use bgsync_store::MemoryStore;
use bgsync_types::{
    DispatchId, DomException, Origin, PermissionState, SwRegistrationId, Tag, Timestamp,
};
use crossbeam_channel::{Receiver, Sender};
use rquickjs::function::Rest;
use rquickjs::{
    Array, CatchResultExt, CaughtError, Context, Ctx, Function, Object, Persistent, Runtime, Value,
};
use url::Url;

use crate::host::{Host, HostCall, Shared};
use crate::UaError;

const PRELUDE: &str = include_str!("prelude.js");

/// Identifies a realm (one global) of a [`UserAgent`].
pub type RealmId = usize;

/// The kind of global a realm has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobalKind {
    /// A `Window` (a page; no DOM).
    Window,
    /// A `DedicatedWorkerGlobalScope`.
    DedicatedWorker,
    /// A `ServiceWorkerGlobalScope`.
    ServiceWorker,
}

impl GlobalKind {
    fn as_str(self) -> &'static str {
        match self {
            GlobalKind::Window => "window",
            GlobalKind::DedicatedWorker => "worker",
            GlobalKind::ServiceWorker => "serviceworker",
        }
    }
}

/// How a [`UserAgent`] is set up.
#[derive(Debug, Clone)]
pub struct UserAgentConfig {
    /// The directory URLs under `base_url` are served from (pages, worker scripts).
    pub root: PathBuf,
    /// The URL `root` is served at, e.g. `https://web-platform.test:8443/`.
    pub base_url: Url,
    /// The engine's parameters.
    pub params: Parameters,
    /// Keep registrations durably here; in memory when `None`.
    pub data_dir: Option<PathBuf>,
    /// How long one script run (a task, a callback) may take before the watchdog stops it.
    pub watchdog: Duration,
    /// URL paths (`/resources/testharness.js`) served from somewhere other than `root`:
    /// fixed text, or another file. Checked before `root`.
    pub served: HashMap<String, Served>,
    /// What a server substitutes in files with `.sub.` in their name (WPT's `{{host}}` and
    /// the like): each `(from, to)` pair is replaced in order.
    pub substitutions: Vec<(String, String)>,
    /// How much stack QuickJS may use, in bytes, counted from where [`UserAgent::new`] runs:
    /// deeper recursion throws a `RangeError` ("Maximum call stack size exceeded"). Keep it well
    /// below the thread's stack, or the thread overflows first and the process aborts. 0: no
    /// limit of QuickJS's own.
    pub stack_limit: usize,
    /// The most memory QuickJS may allocate for all realms together, in bytes; an allocation
    /// beyond it throws an `InternalError` ("out of memory") in the script that asked. `None`:
    /// no limit.
    pub memory_limit: Option<usize>,
}

/// One element of a page's markup, in markup order, as [`UserAgent::load_page`] loads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageElement {
    /// `<meta>` with these attributes (`charset`, or `name` and `content`).
    Meta(Vec<(String, String)>),
    /// `<title>` with this text.
    Title(String),
    /// `<div>` with these attributes (`id=log`).
    Div(Vec<(String, String)>),
    /// `<script src=URL>`: a classic script fetched from the URL.
    Script(Url),
    /// `<script>` with this text.
    InlineScript(String),
}

/// What a URL path in [`UserAgentConfig::served`] serves.
#[derive(Debug, Clone)]
pub enum Served {
    /// This text.
    Text(String),
    /// This file.
    File(PathBuf),
}

impl UserAgentConfig {
    /// Serves `root` at `https://web-platform.test:8443/`, with Chromium's parameters, an
    /// in-memory store, a 10 s watchdog, a 1 MiB stack limit (QuickJS's own default: half the
    /// 2 MiB of a thread Rust spawns) and a 512 MiB memory limit.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        UserAgentConfig {
            root: root.into(),
            base_url: Url::parse("https://web-platform.test:8443/").expect("static URL"),
            params: Parameters::default(),
            data_dir: None,
            watchdog: Duration::from_secs(10),
            served: HashMap::new(),
            substitutions: Vec::new(),
            stack_limit: 1024 * 1024,
            memory_limit: Some(512 * 1024 * 1024),
        }
    }
}

/// A value handed to script.
#[derive(Debug, Clone)]
pub(crate) enum Out {
    Undefined,
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Units(Vec<u16>),
    List(Vec<Out>),
    Obj(Vec<(&'static str, Out)>),
    Map(Vec<(String, Out)>),
}

#[derive(Debug, Clone)]
pub(crate) struct ErrOut {
    name: String,
    message: String,
}

impl From<DomException> for ErrOut {
    fn from(e: DomException) -> Self {
        ErrOut {
            name: e.name.as_str().to_owned(),
            message: e.message,
        }
    }
}

impl ErrOut {
    pub(crate) fn new(name: &str, message: impl Into<String>) -> Self {
        ErrOut {
            name: name.to_owned(),
            message: message.into(),
        }
    }
}

fn type_error(message: impl Into<String>) -> ErrOut {
    ErrOut {
        name: "TypeError".into(),
        message: message.into(),
    }
}

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
}

pub(crate) enum Purpose {
    Sync(OutcomeReporter),
    Install(SwRegistrationId),
    Activate(SwRegistrationId),
}

#[derive(Clone, Copy)]
enum Waiting {
    Idle,
    Advance(Timestamp),
    Settled,
}

struct Waiter {
    realm: RealmId,
    call: u64,
    what: Waiting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WorkerState {
    Parsed,
    Installing,
    Installed,
    Activating,
    Activated,
    Redundant,
}

impl WorkerState {
    fn as_str(self) -> &'static str {
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

struct SwReg {
    scope: Url,
    script: Url,
    origin: Origin,
    state: WorkerState,
    realm: Option<RealmId>,
}

struct RealmInfo {
    kind: GlobalKind,
    url: Url,
    origin: Origin,
    alive: bool,
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
    config: UserAgentConfig,
    engine: BackgroundSync,
    clock: VirtualClock,
    store: MemoryStore,
    shared: Arc<Shared>,
    host_tx: Sender<HostCall>,
    host_rx: Receiver<HostCall>,
    log_rx: Receiver<LogEntry>,
    tasks: VecDeque<Task>,
    waiters: Vec<Waiter>,
    /// `bgsyncTest.dispatchSyncEvent` calls waiting for their event's outcome.
    devtools: Vec<(RealmId, u64, DevToolsReply)>,
    /// Timers by when they are due on the monotonic clock ([`State::monotonic`]).
    timers: BTreeMap<(Duration, u64), (RealmId, u64, Option<Duration>)>,
    timer_index: HashMap<(RealmId, u64), (Duration, u64)>,
    /// When the user agent started (real time): the monotonic clock's zero.
    started: Instant,
    /// How far `bgsyncTest.advanceTime` has moved the controlled clock in all: the monotonic
    /// clock runs in real time and jumps with it.
    advanced: Duration,
    timer_seq: u64,
    lifetimes: HashMap<u64, (ExtendableEventLifetime, Purpose)>,
    next_lifetime: u64,
    realms: Vec<RealmInfo>,
    sws: BTreeMap<SwRegistrationId, SwReg>,
    next_sw: u64,
    online: bool,
    permissions: HashMap<Origin, &'static str>,
    log: Vec<LogRecord>,
    /// The engine's log lines as it wrote them (for a timeline).
    entries: Vec<LogEntry>,
    console: Vec<String>,
    uncaught: Vec<String>,
    host_reports: Vec<String>,
}

/// A user agent: pages, dedicated workers and service workers on one QuickJS runtime, and one
/// Background Sync engine on a virtual clock.
pub struct UserAgent {
    rt: Runtime,
    contexts: Vec<Option<(Context, Persistent<Object<'static>>)>>,
    state: Rc<RefCell<State>>,
    watchdog: Arc<AtomicU64>,
    started: Instant,
}

fn start_engine(
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
        .permissions(host)
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

impl UserAgent {
    /// A fresh user agent: online, "background-sync" granted, no realms yet.
    ///
    /// Scripts may use [`stack_limit`](UserAgentConfig::stack_limit) bytes of stack below the
    /// point where this is called, and a little more for the Rust in between: run the user
    /// agent on a thread with room for that (with the default limit, 2 MiB, what Rust gives a
    /// spawned thread), and create it no deeper than where it is used.
    pub fn new(config: UserAgentConfig) -> Result<UserAgent, UaError> {
        let rt = Runtime::new().map_err(|e| UaError::Script(e.to_string()))?;
        // QuickJS measures its stack from where the runtime was created: deeper recursion is a
        // RangeError rather than an overflow of the thread's own stack, which aborts the process.
        rt.set_max_stack_size(config.stack_limit);
        rt.set_memory_limit(config.memory_limit.unwrap_or(0));
        let watchdog = Arc::new(AtomicU64::new(u64::MAX));
        let started = Instant::now();
        let deadline = watchdog.clone();
        rt.set_interrupt_handler(Some(Box::new(move || {
            let now = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            now > deadline.load(Ordering::Relaxed)
        })));
        let clock = VirtualClock::new(Timestamp(0));
        let store = MemoryStore::new();
        let shared = Arc::new(Shared::default());
        let (host_tx, host_rx) = crossbeam_channel::unbounded();
        let (engine, log_rx) = start_engine(&config, &clock, &store, &shared, &host_tx, true)?;
        let state = State {
            config,
            engine,
            clock,
            store,
            shared,
            host_tx,
            host_rx,
            log_rx,
            tasks: VecDeque::new(),
            waiters: Vec::new(),
            devtools: Vec::new(),
            timers: BTreeMap::new(),
            timer_index: HashMap::new(),
            timer_seq: 0,
            lifetimes: HashMap::new(),
            next_lifetime: 1,
            realms: Vec::new(),
            sws: BTreeMap::new(),
            next_sw: 1,
            online: true,
            permissions: HashMap::new(),
            log: Vec::new(),
            entries: Vec::new(),
            console: Vec::new(),
            uncaught: Vec::new(),
            host_reports: Vec::new(),
            started,
            advanced: Duration::ZERO,
        };
        Ok(UserAgent {
            rt,
            contexts: Vec::new(),
            state: Rc::new(RefCell::new(state)),
            watchdog,
            started,
        })
    }

    /// Resolves `path` (relative to the root) to its URL.
    pub fn url_for(&self, path: &str) -> Result<Url, UaError> {
        self.state
            .borrow()
            .config
            .base_url
            .join(path.trim_start_matches('/'))
            .map_err(|e| UaError::NotFound(format!("{path}: {e}")))
    }

    /// Creates a realm of `kind` for the document or worker at `url` (nothing runs yet).
    pub fn open(&mut self, kind: GlobalKind, url: &Url) -> Result<RealmId, UaError> {
        self.open_realm(kind, url, None)
    }

    /// Registers a service worker for `script` with scope `scope` and creates its realm without
    /// running anything: the worker is `parsed` (not yet installing, no active worker), as while
    /// a browser evaluates a new worker's script. Run its script with
    /// [`run_main_script`](Self::run_main_script), then
    /// [`install_service_worker`](Self::install_service_worker) fires `install` and `activate`.
    pub fn open_service_worker(&mut self, script: &Url, scope: &Url) -> Result<RealmId, UaError> {
        let origin = Origin::from_url(script).map_err(|e| UaError::Script(e.to_string()))?;
        let sw = self
            .state
            .borrow_mut()
            .new_sw(scope.clone(), script.clone(), origin);
        let realm = self.open_realm(GlobalKind::ServiceWorker, script, Some(sw))?;
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

    fn open_realm(
        &mut self,
        kind: GlobalKind,
        url: &Url,
        sw: Option<SwRegistrationId>,
    ) -> Result<RealmId, UaError> {
        let origin = Origin::from_url(url).map_err(|e| UaError::Script(e.to_string()))?;
        let id = self.contexts.len();
        {
            let mut st = self.state.borrow_mut();
            st.realms.push(RealmInfo {
                kind,
                url: url.clone(),
                origin: origin.clone(),
                alive: true,
            });
            if kind == GlobalKind::Window {
                st.shared.windows().insert(origin.clone());
            }
        }
        let ctx = Context::full(&self.rt).map_err(|e| UaError::Script(e.to_string()))?;
        let registration = sw.map(|sw| self.state.borrow().registration_out(sw));
        let max_tag_bytes = self.state.borrow().max_tag_bytes() as f64;
        let state = self.state.clone();
        let hooks = ctx.with(|ctx| -> Result<Persistent<Object<'static>>, UaError> {
            let native = crate::native::make(&ctx, id, state).map_err(|e| js_error(&ctx, e))?;
            let info = (|| -> rquickjs::Result<Object> {
                let info = Object::new(ctx.clone())?;
                info.set("href", url.as_str())?;
                info.set("origin", origin.serialize())?;
                info.set("isSecureContext", origin.is_potentially_trustworthy())?;
                info.set("maxTagBytes", max_tag_bytes)?;
                if let Some(r) = registration {
                    info.set("registration", to_js(&ctx, r)?)?;
                }
                Ok(info)
            })()
            .map_err(|e| js_error(&ctx, e))?;
            let prelude: Function = ctx
                .eval_with_options(PRELUDE, options("bgsync-prelude.js"))
                .catch(&ctx)
                .map_err(|e| UaError::Script(e.to_string()))?;
            let hooks: Object = prelude
                .call((native, kind.as_str(), info))
                .catch(&ctx)
                .map_err(|e| UaError::Script(e.to_string()))?;
            Ok(Persistent::save(&ctx, hooks))
        })?;
        self.contexts.push(Some((ctx, hooks)));
        Ok(id)
    }

    /// Runs a classic script in `realm`. An exception is returned as text (`Name: message`).
    pub fn eval(&mut self, realm: RealmId, source: &str, name: &str) -> Result<(), UaError> {
        let Some((ctx, _)) = self.contexts.get(realm).and_then(Option::as_ref) else {
            return Err(UaError::Script(format!("realm {realm} is gone")));
        };
        self.arm_watchdog();
        let result = ctx.with(|ctx| {
            ctx.eval_with_options::<(), _>(source, options(name))
                .catch(&ctx)
                .map_err(|e| UaError::Script(describe(&e)))
        });
        self.disarm_watchdog();
        self.run_microtasks();
        result
    }

    /// Loads `url` from disk and runs it in `realm`.
    pub fn run_script(&mut self, realm: RealmId, url: &Url) -> Result<(), UaError> {
        let source = self.state.borrow().load(url)?;
        self.eval(realm, &source, url.as_str())
    }

    /// Runs a worker's main script from `url` in `realm` as a browser does: an exception it
    /// throws is reported at the global (an `error` event, then `onerror`) and returned.
    pub fn run_main_script(&mut self, realm: RealmId, url: &Url) -> Result<(), UaError> {
        let source = self.state.borrow().load(url)?;
        self.eval_reporting(realm, &source, url.as_str())
    }

    /// Loads a page into the window `realm` as a browser loads its markup: each element is
    /// added to the document in order; each script runs when it is reached, as
    /// `document.currentScript`, with a microtask checkpoint after it; a script that cannot be
    /// fetched gets an `error` event (the page goes on), and one that throws is reported at the
    /// window. Then the document is `interactive`, and two queued tasks fire `DOMContentLoaded`
    /// and then, with the document `complete`, `load` at the window. Returns what went wrong,
    /// one line per failed script.
    pub fn load_page(&mut self, realm: RealmId, elements: &[PageElement]) -> Vec<String> {
        let mut failures = Vec::new();
        let page = self.state.borrow().realms.get(realm).map(|r| r.url.clone());
        let Some(page) = page.filter(|_| self.kind(realm) == Some(GlobalKind::Window)) else {
            return vec![format!("realm {realm} is not a window")];
        };
        let attrs = |list: &[(String, String)]| {
            Out::Map(
                list.iter()
                    .map(|(k, v)| (k.clone(), Out::Str(v.clone())))
                    .collect(),
            )
        };
        for element in elements {
            let (tag, attributes, text) = match element {
                PageElement::Meta(a) => ("meta", attrs(a), Out::Null),
                PageElement::Title(t) => ("title", attrs(&[]), Out::Str(t.clone())),
                PageElement::Div(a) => ("div", attrs(a), Out::Null),
                PageElement::Script(url) => (
                    "script",
                    attrs(&[("src".to_owned(), url.to_string())]),
                    Out::Null,
                ),
                PageElement::InlineScript(t) => ("script", attrs(&[]), Out::Str(t.clone())),
            };
            let index = self.hooks_call_value(
                realm,
                "insertElement",
                vec![Out::Str(tag.into()), attributes, text],
            );
            let (source, name) = match element {
                PageElement::Script(url) => match self.state.borrow().load(url) {
                    Ok(source) => (Some(source), url.to_string()),
                    Err(e) => {
                        failures.push(format!("{url}: {e}"));
                        (None, url.to_string())
                    }
                },
                PageElement::InlineScript(t) => (Some(t.clone()), page.to_string()),
                _ => continue,
            };
            let Some(source) = source else {
                self.hooks_call(realm, "scriptFailed", vec![Out::Num(index)]);
                continue;
            };
            self.hooks_call(realm, "setCurrentScript", vec![Out::Num(index)]);
            if let Err(e) = self.eval_reporting(realm, &source, &name) {
                failures.push(format!("{name}: {e}"));
            }
            self.hooks_call(realm, "setCurrentScript", vec![Out::Num(-1.0)]);
        }
        self.hooks_call(realm, "documentParsed", Vec::new());
        let mut st = self.state.borrow_mut();
        st.hook(realm, "domContentLoaded", Vec::new());
        st.hook(realm, "windowLoaded", Vec::new());
        failures
    }

    /// Runs `source` in `realm`, reporting an exception at the global (HTML's "report an
    /// exception") as well as returning it.
    fn eval_reporting(&mut self, realm: RealmId, source: &str, name: &str) -> Result<(), UaError> {
        let Some((ctx, hooks)) = self.contexts.get(realm).and_then(Option::as_ref) else {
            return Err(UaError::Script(format!("realm {realm} is gone")));
        };
        self.arm_watchdog();
        let (watchdog, started) = (self.watchdog.clone(), self.started);
        let limit = self.state.borrow().config.watchdog;
        let result = ctx.with(|ctx| {
            let caught = match ctx
                .eval_with_options::<(), _>(source, options(name))
                .catch(&ctx)
            {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let text = describe(&caught);
            let value = match caught {
                CaughtError::Exception(ex) => Some(ex.into_value()),
                CaughtError::Value(v) => Some(v),
                CaughtError::Error(_) => None,
            };
            // The handlers get a watchdog period of their own (an interrupted script used its up).
            let at = started.elapsed() + limit;
            watchdog.store(
                u64::try_from(at.as_millis()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            if let Some(v) = value {
                let report = hooks
                    .clone()
                    .restore(&ctx)
                    .and_then(|h| h.get::<_, Function>("reportException"))
                    .and_then(|f| f.call::<_, ()>((v,)));
                if let Err(e) = report {
                    tracing::warn!("reporting an exception failed: {e}");
                }
            }
            Err(UaError::Script(text))
        });
        self.disarm_watchdog();
        self.run_microtasks();
        result
    }

    /// Evaluates `expression` in `realm`, runs the event loop until the promise it gives
    /// settles (or `timeout` passes), and returns the settled value as JSON, or the rejection
    /// as `Name: message`.
    pub fn eval_async(
        &mut self,
        realm: RealmId,
        expression: &str,
        timeout: Duration,
    ) -> Result<String, String> {
        let source = format!(
            "globalThis.__bgsyncResult = undefined; Promise.resolve((async () => ({expression}))()).then(\
             v => {{ globalThis.__bgsyncResult = {{ ok: true, v: JSON.stringify(v === undefined ? null : v) }}; }},\
             e => {{ globalThis.__bgsyncResult = {{ ok: false, v: (e && e.name ? e.name + ': ' + e.message : String(e)) }}; }});"
        );
        self.eval(realm, &source, "eval_async")
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + timeout;
        let mut result = None;
        self.run_until(deadline, |ua| {
            result = ua.read_result(realm);
            result.is_some()
        });
        match result {
            Some((true, v)) => Ok(v),
            Some((false, e)) => Err(e),
            None => Err("Timeout: the promise did not settle".into()),
        }
    }

    fn read_result(&self, realm: RealmId) -> Option<(bool, String)> {
        let (ctx, _) = self.contexts.get(realm)?.as_ref()?;
        ctx.with(|ctx| {
            let r: Value = ctx.globals().get("__bgsyncResult").ok()?;
            let o = r.as_object()?;
            Some((o.get("ok").ok()?, o.get("v").ok()?))
        })
    }

    /// Console lines written so far (`level: text`).
    pub fn console(&self) -> Vec<String> {
        self.state.borrow().console.clone()
    }

    /// Whether a script sent something with `__bgsyncHostReport` not yet taken.
    pub fn has_host_reports(&self) -> bool {
        !self.state.borrow().host_reports.is_empty()
    }

    /// What scripts sent the host so far, as JSON texts, not taken: `__bgsyncHostReport(value)`,
    /// a dedicated worker's `postMessage`, and what a service worker posts to the host's client
    /// (see [`post_to_service_worker_from_host`](Self::post_to_service_worker_from_host)).
    pub fn host_reports(&self) -> std::cell::Ref<'_, [String]> {
        std::cell::Ref::map(self.state.borrow(), |s| s.host_reports.as_slice())
    }

    /// Takes what scripts sent the host (see [`host_reports`](Self::host_reports)).
    pub fn take_host_reports(&mut self) -> Vec<String> {
        std::mem::take(&mut self.state.borrow_mut().host_reports)
    }

    /// Uncaught exceptions reported so far.
    pub fn uncaught(&self) -> Vec<String> {
        self.state.borrow().uncaught.clone()
    }

    /// The engine's log since this user agent started.
    pub fn log(&self) -> Vec<LogRecord> {
        self.state.borrow_mut().pump_log();
        self.state.borrow().log.clone()
    }

    /// The engine's log lines since this user agent started, as the engine wrote them (what
    /// `bgsync::timeline` draws).
    pub fn log_entries(&self) -> Vec<LogEntry> {
        self.state.borrow_mut().pump_log();
        self.state.borrow().entries.clone()
    }

    /// The kind of `realm`'s global.
    pub fn kind(&self, realm: RealmId) -> Option<GlobalKind> {
        self.state.borrow().realms.get(realm).map(|r| r.kind)
    }

    fn arm_watchdog(&self) {
        let limit = self.state.borrow().config.watchdog;
        let at = self.started.elapsed() + limit;
        self.watchdog.store(
            u64::try_from(at.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn disarm_watchdog(&self) {
        self.watchdog.store(u64::MAX, Ordering::Relaxed);
    }

    fn run_microtasks(&mut self) {
        self.arm_watchdog();
        loop {
            match self.rt.execute_pending_job() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    let msg = e.0.with(|ctx| {
                        describe(&CaughtError::from_error(&ctx, rquickjs::Error::Exception))
                    });
                    let mut st = self.state.borrow_mut();
                    st.console
                        .push(format!("error: Uncaught (in promise job) {msg}"));
                    st.uncaught.push(msg);
                }
            }
        }
        self.disarm_watchdog();
    }

    /// Runs the event loop until `done` says so or `deadline` passes. Returns whether `done`.
    pub fn run_until(&mut self, deadline: Instant, mut done: impl FnMut(&Self) -> bool) -> bool {
        loop {
            self.run_microtasks();
            self.state.borrow_mut().pump_host();
            let task = self.state.borrow_mut().tasks.pop_front();
            if let Some(task) = task {
                self.run_task(task);
                continue;
            }
            if self.fire_due_timer() {
                continue;
            }
            if self.step_devtools() {
                continue;
            }
            if self.step_waiters() {
                continue;
            }
            if done(self) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let next_timer = {
                let st = self.state.borrow();
                let monotonic = st.monotonic();
                st.timers
                    .keys()
                    .next()
                    .map(|k| k.0.saturating_sub(monotonic))
            };
            let mut wait = deadline - now;
            if let Some(t) = next_timer {
                wait = wait.min(t);
            }
            if !self.state.borrow().waiters.is_empty() || !self.state.borrow().devtools.is_empty() {
                // Waiters poll the engine; do not sleep long while they wait.
                wait = wait.min(Duration::from_millis(1));
            }
            let rx = self.state.borrow().host_rx.clone();
            if let Ok(call) = rx.recv_timeout(wait) {
                self.state.borrow_mut().host_call(call);
            }
        }
    }

    fn fire_due_timer(&mut self) -> bool {
        let due = {
            let mut st = self.state.borrow_mut();
            let Some((&key, _)) = st.timers.iter().next() else {
                return false;
            };
            if key.0 > st.monotonic() {
                return false;
            }
            let Some((realm, id, repeat)) = st.timers.remove(&key) else {
                return false;
            };
            st.timer_index.remove(&(realm, id));
            if let Some(every) = repeat {
                st.add_timer(realm, id, every, Some(every));
            }
            (realm, id)
        };
        self.run_task(Task::Timer {
            realm: due.0,
            id: due.1,
        });
        true
    }

    /// Delivers the outcomes of DevTools dispatches that ended; true if one did.
    fn step_devtools(&mut self) -> bool {
        let mut st = self.state.borrow_mut();
        if st.devtools.is_empty() {
            return false;
        }
        let mut progressed = false;
        let pending = std::mem::take(&mut st.devtools);
        for (realm, call, rx) in pending {
            match rx.try_recv() {
                Ok(result) => {
                    let result = result
                        .map(|o| Out::Str(outcome_name(o).into()))
                        .map_err(ErrOut::from);
                    st.tasks.push_back(Task::Deliver {
                        realm,
                        call,
                        result,
                    });
                    progressed = true;
                }
                Err(crossbeam_channel::TryRecvError::Empty) => st.devtools.push((realm, call, rx)),
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    st.tasks.push_back(Task::Deliver {
                        realm,
                        call,
                        result: Err(ErrOut::new("UnknownError", "Background Sync has shut down")),
                    });
                    progressed = true;
                }
            }
        }
        progressed
    }

    /// Steps the waiters of the control surface; true if one made progress.
    fn step_waiters(&mut self) -> bool {
        let waiters = std::mem::take(&mut self.state.borrow_mut().waiters);
        if waiters.is_empty() {
            return false;
        }
        let mut progressed = false;
        let mut keep = Vec::new();
        for w in waiters {
            let engine = self.state.borrow().engine.clone();
            let status = engine.status_blocking().unwrap_or_default();
            self.state.borrow_mut().pump_host();
            if !self.state.borrow().tasks.is_empty() {
                keep.push(w);
                progressed = true;
                continue;
            }
            let now = self.state.borrow().clock_now();
            let lifetimes_busy = self
                .state
                .borrow()
                .lifetimes
                .values()
                .any(|(_, p)| matches!(p, Purpose::Sync(_)));
            let finished = match w.what {
                Waiting::Settled => true,
                Waiting::Idle => {
                    status.in_flight == 0
                        && !lifetimes_busy
                        && status.next_timer.is_none_or(|t| t > now)
                }
                Waiting::Advance(target) => {
                    if now >= target {
                        true
                    } else {
                        let next = status
                            .next_timer
                            .filter(|t| *t > now)
                            .map_or(target, |t| t.min(target));
                        self.state.borrow_mut().set_clock(next);
                        engine.settle_blocking();
                        self.state.borrow_mut().pump_host();
                        progressed = true;
                        false
                    }
                }
            };
            if finished {
                self.state.borrow_mut().tasks.push_back(Task::Deliver {
                    realm: w.realm,
                    call: w.call,
                    result: Ok(Out::Undefined),
                });
                progressed = true;
            } else {
                keep.push(w);
            }
        }
        self.state.borrow_mut().waiters.extend(keep);
        progressed
    }

    /// Calls a hook that returns a number (an index); NaN when it fails.
    fn hooks_call_value(&mut self, realm: RealmId, hook: &str, args: Vec<Out>) -> f64 {
        let Some((ctx, hooks)) = self.contexts.get(realm).and_then(Option::as_ref) else {
            return f64::NAN;
        };
        self.arm_watchdog();
        let result = ctx.with(|ctx| -> Result<f64, String> {
            let hooks = hooks.clone().restore(&ctx).map_err(|e| e.to_string())?;
            let f: Function = hooks.get(hook).map_err(|e| e.to_string())?;
            let mut values = Vec::new();
            for a in args {
                values.push(to_js(&ctx, a).map_err(|e| e.to_string())?);
            }
            f.call::<_, f64>((Rest(values),))
                .catch(&ctx)
                .map_err(|e| describe(&e))
        });
        self.disarm_watchdog();
        result.unwrap_or_else(|e| {
            self.state.borrow_mut().console.push(format!("error: {e}"));
            f64::NAN
        })
    }

    /// Calls a hook; false if it threw (reported as uncaught) or the realm is gone.
    fn hooks_call(&mut self, realm: RealmId, hook: &str, args: Vec<Out>) -> bool {
        let Some((ctx, hooks)) = self.contexts.get(realm).and_then(Option::as_ref) else {
            return false;
        };
        self.arm_watchdog();
        let result = ctx.with(|ctx| -> Result<(), String> {
            let hooks = hooks.clone().restore(&ctx).map_err(|e| e.to_string())?;
            let f: Function = hooks.get(hook).map_err(|e| e.to_string())?;
            let mut values = Vec::new();
            for a in args {
                values.push(to_js(&ctx, a).map_err(|e| e.to_string())?);
            }
            f.call::<_, ()>((Rest(values),))
                .catch(&ctx)
                .map_err(|e| describe(&e))
        });
        self.disarm_watchdog();
        if let Err(e) = result {
            let mut st = self.state.borrow_mut();
            st.console.push(format!("error: Uncaught {e}"));
            st.uncaught.push(e);
            return false;
        }
        true
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

    fn run_task(&mut self, task: Task) {
        match task {
            Task::Deliver {
                realm,
                call,
                result,
            } => {
                let (ok, value) = match result {
                    Ok(v) => (true, v),
                    Err(e) => (
                        false,
                        Out::Obj(vec![
                            ("name", Out::Str(e.name)),
                            ("message", Out::Str(e.message)),
                        ]),
                    ),
                };
                self.hooks_call(
                    realm,
                    "deliver",
                    vec![Out::Num(call as f64), Out::Bool(ok), value],
                );
            }
            Task::Timer { realm, id } => {
                self.hooks_call(realm, "timer", vec![Out::Num(id as f64)]);
            }
            Task::Hook { realm, hook, args } => {
                self.hooks_call(realm, hook, args);
            }
            Task::Control {
                realm,
                call,
                op,
                arg,
            } => self.control(realm, call, &op, arg),
            Task::FireSync(event, reporter) => self.fire_sync(event, reporter),
            Task::PostToWorker { sw, json, source } => {
                if let Some(realm) = self.ensure_worker(sw) {
                    self.hooks_call(realm, "message", vec![Out::Str(json), source]);
                }
            }
            Task::Install { sw, caller } => self.install(sw, caller),
            Task::Activate(sw) => self.activate(sw),
        }
    }

    /// Starts the worker of `sw` in a fresh realm if it is not running. Returns its realm.
    fn ensure_worker(&mut self, sw: SwRegistrationId) -> Option<RealmId> {
        let (script, running) = {
            let st = self.state.borrow();
            let reg = st.sws.get(&sw)?;
            (
                reg.script.clone(),
                reg.realm.filter(|r| st.realms[*r].alive),
            )
        };
        if running.is_some() {
            return running;
        }
        let realm = match self.open_realm(GlobalKind::ServiceWorker, &script, Some(sw)) {
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

    fn fire_sync(&mut self, event: SyncEventDispatch, reporter: OutcomeReporter) {
        let Some(realm) = self.ensure_worker(event.sw) else {
            reporter.report(DispatchOutcome::WorkerFailedToStart);
            return;
        };
        let lifetime = self
            .state
            .borrow_mut()
            .new_lifetime(Purpose::Sync(reporter));
        let units = event.tag.as_utf16().to_vec();
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

    fn install(&mut self, sw: SwRegistrationId, caller: Option<(RealmId, u64)>) {
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

    fn activate(&mut self, sw: SwRegistrationId) {
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

impl std::fmt::Debug for UserAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAgent")
            .field("realms", &self.contexts.len())
            .finish_non_exhaustive()
    }
}

impl Drop for UserAgent {
    fn drop(&mut self) {
        // Contexts must go before the runtime.
        self.contexts.clear();
        self.state.borrow().engine.shutdown();
    }
}

impl State {
    /// The text served at `url`: a [`Served`] entry, else the file under the root.
    pub(crate) fn load(&self, url: &Url) -> Result<String, UaError> {
        let not_found = || UaError::NotFound(url.to_string());
        let base = &self.config.base_url;
        if Origin::from_url(url).ok() != Origin::from_url(base).ok() {
            return Err(not_found());
        }
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

    fn pump_host(&mut self) {
        while let Ok(call) = self.host_rx.try_recv() {
            self.host_call(call);
        }
        self.pump_log();
    }

    fn host_call(&mut self, call: HostCall) {
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

    fn pump_log(&mut self) {
        while let Ok(entry) = self.log_rx.try_recv() {
            self.entries.push(entry.clone());
            let (kind, last_chance, outcome) = match entry.event {
                LogEvent::Registered => ("registered", false, ""),
                LogEvent::Reregistered { .. } => ("reregistered", false, ""),
                LogEvent::Dispatched { last_chance, .. } => ("dispatched", last_chance, ""),
                LogEvent::Completed { outcome, .. } => ("completed", false, outcome_name(outcome)),
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

    fn new_lifetime(&mut self, purpose: Purpose) -> u64 {
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

    fn script_aborted(&mut self, lifetime: u64) {
        if let Some((l, _)) = self.lifetimes.get_mut(&lifetime) {
            l.script_aborted();
        }
    }

    pub(crate) fn dispatch_finished(&mut self, lifetime: u64, threw: bool) {
        if let Some((l, _)) = self.lifetimes.get_mut(&lifetime) {
            l.dispatch_finished(threw);
        }
    }

    fn check_lifetime(&mut self, lifetime: u64) {
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

    /// Whether the service worker registration `sw` has an active worker now.
    pub(crate) fn has_active_worker(&self, sw: SwRegistrationId) -> bool {
        self.sws
            .get(&sw)
            .is_some_and(|r| r.state == WorkerState::Activated)
    }

    fn set_worker_state(&mut self, sw: SwRegistrationId, state: WorkerState) {
        let Some(reg) = self.sws.get_mut(&sw) else {
            return;
        };
        reg.state = state;
        let info = RegistrationInfo {
            origin: reg.origin.clone(),
            partition: Default::default(),
            has_active_worker: state == WorkerState::Activated,
        };
        let scope = reg.scope.as_str().to_owned();
        self.shared.registrations().insert(sw, info);
        let out = self.registration_out(sw);
        let realms: Vec<(RealmId, bool)> = (0..self.realms.len())
            .filter(|r| self.realms[*r].alive)
            .map(|r| (r, self.realms[r].url.as_str().starts_with(&scope)))
            .collect();
        for (realm, in_scope) in realms {
            self.hook(realm, "workerState", vec![out.clone()]);
            if state == WorkerState::Activated && in_scope {
                self.hook(realm, "ready", vec![out.clone()]);
            }
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
}

impl UserAgent {
    /// The conformance-test control surface (`bgsyncTest.*`, `test_driver.set_permission`).
    fn control(&mut self, realm: RealmId, call: u64, op: &str, arg: Out) {
        let wait = |ua: &mut Self, what: Waiting| {
            ua.state
                .borrow_mut()
                .waiters
                .push(Waiter { realm, call, what });
        };
        match (op, arg) {
            ("setOnline", Out::Bool(online)) => {
                let mut st = self.state.borrow_mut();
                st.engine.network_changed(online);
                if st.online != online {
                    st.online = online;
                    let realms: Vec<RealmId> = (0..st.realms.len())
                        .filter(|r| st.realms[*r].alive)
                        .collect();
                    for r in realms {
                        st.hook(r, "network", vec![Out::Bool(online)]);
                    }
                }
                drop(st);
                wait(self, Waiting::Settled);
            }
            ("advanceTime", Out::Num(ms)) => {
                let st = self.state.borrow();
                let target = Timestamp(st.clock_now().0.saturating_add(ms as u64));
                drop(st);
                wait(self, Waiting::Advance(target));
            }
            ("setWindowClient", Out::Bool(present)) => {
                let st = self.state.borrow();
                let origin = st.realms[realm].origin.clone();
                if present {
                    st.shared.windows().insert(origin);
                } else {
                    st.shared.windows().remove(&origin);
                }
                drop(st);
                wait(self, Waiting::Settled);
            }
            ("setPermission", Out::List(v)) => {
                let (Some(Out::Str(name)), Some(Out::Str(value))) = (v.first(), v.get(1)) else {
                    return;
                };
                let mut st = self.state.borrow_mut();
                let origin = st.realms[realm].origin.clone();
                let value: &'static str = match value.as_str() {
                    "granted" => "granted",
                    "denied" => "denied",
                    _ => "prompt",
                };
                if name == "background-sync" {
                    st.permissions.insert(origin.clone(), value);
                    // 'prompt' is not disabled: register() is not refused (the spec's step 3,
                    // and Chromium; docs/chromium.md).
                    let state = match value {
                        "granted" => PermissionState::Granted,
                        "denied" => PermissionState::Denied,
                        _ => PermissionState::Prompt,
                    };
                    if state == PermissionState::Denied {
                        st.shared.denied().insert(origin.clone());
                    } else {
                        st.shared.denied().remove(&origin);
                    }
                    st.engine.permission_changed(&origin, state);
                }
                drop(st);
                wait(self, Waiting::Settled);
            }
            ("terminateWorker", _) => {
                self.terminate_workers();
                wait(self, Waiting::Settled);
            }
            ("dispatchSyncEvent", Out::List(v)) => {
                // [service worker registration id, the tag's code units, "1" for lastChance]
                let parsed = (|| {
                    let sw: u64 = match v.first()? {
                        Out::Str(s) => s.parse().ok()?,
                        _ => return None,
                    };
                    let units: Vec<u16> = match v.get(1)? {
                        Out::Str(s) if s.is_empty() => Vec::new(),
                        Out::Str(s) => s
                            .split(',')
                            .map(|u| u.parse().ok())
                            .collect::<Option<_>>()?,
                        _ => return None,
                    };
                    let last_chance = matches!(v.get(2)?, Out::Str(s) if s == "1");
                    Some((SwRegistrationId(sw), Tag::from_utf16(units), last_chance))
                })();
                let mut st = self.state.borrow_mut();
                match parsed {
                    Some((sw, tag, last_chance)) => {
                        let origin = st.realms[realm].origin.clone();
                        let rx =
                            st.engine
                                .dispatch_sync_event_with_reply(&origin, sw, tag, last_chance);
                        st.devtools.push((realm, call, rx));
                    }
                    None => st.deliver(
                        realm,
                        call,
                        Err(type_error(
                            "dispatchSyncEvent(registration, tag, lastChance)",
                        )),
                    ),
                }
            }
            ("restart", _) => {
                if let Err(e) = self.restart() {
                    self.state.borrow_mut().deliver(
                        realm,
                        call,
                        Err(ErrOut {
                            name: "UnknownError".into(),
                            message: e.to_string(),
                        }),
                    );
                    return;
                }
                wait(self, Waiting::Settled);
            }
            ("idle", _) => wait(self, Waiting::Idle),
            ("log", _) => {
                let mut st = self.state.borrow_mut();
                st.pump_log();
                let list = st
                    .log
                    .iter()
                    .map(|r| {
                        Out::Obj(vec![
                            ("type", Out::Str(r.kind.into())),
                            ("tag", Out::Units(r.tag.as_utf16().to_vec())),
                            ("time", Out::Num(r.time as f64)),
                            ("lastChance", Out::Bool(r.last_chance)),
                            ("outcome", Out::Str(r.outcome.into())),
                        ])
                    })
                    .collect();
                st.deliver(realm, call, Ok(Out::List(list)));
            }
            (op, _) => self.state.borrow_mut().deliver(
                realm,
                call,
                Err(type_error(format!("bgsyncTest: bad call {op}"))),
            ),
        }
    }

    /// Kills every running service worker; events in flight count as failed.
    fn terminate_workers(&mut self) {
        let realms: Vec<RealmId> = {
            let st = self.state.borrow();
            st.sws.values().filter_map(|r| r.realm).collect()
        };
        {
            let mut st = self.state.borrow_mut();
            // Dropping the reporters reports the events as terminated.
            st.lifetimes
                .retain(|_, (_, p)| !matches!(p, Purpose::Sync(_)));
            for reg in st.sws.values_mut() {
                reg.realm = None;
            }
            for &r in &realms {
                st.realms[r].alive = false;
                let timers: Vec<(RealmId, u64)> = st
                    .timer_index
                    .keys()
                    .filter(|k| k.0 == r)
                    .copied()
                    .collect();
                for (realm, id) in timers {
                    st.clear_timer(realm, id);
                }
            }
        }
        for r in realms {
            self.contexts[r] = None;
        }
    }

    /// A user-agent restart: the engine is rebuilt from its store; events in flight are lost
    /// (not counted) and workers start afresh when next needed.
    fn restart(&mut self) -> Result<(), UaError> {
        {
            let mut st = self.state.borrow_mut();
            st.engine.settle_blocking();
            st.pump_log();
            st.engine.shutdown();
            // The old engine is gone: its events' reporters lead nowhere.
            while st.host_rx.try_recv().is_ok() {}
            st.lifetimes
                .retain(|_, (_, p)| !matches!(p, Purpose::Sync(_)));
            st.tasks.retain(|t| !matches!(t, Task::FireSync(..)));
        }
        self.terminate_workers();
        let mut st = self.state.borrow_mut();
        let (engine, log_rx) = start_engine(
            &st.config,
            &st.clock,
            &st.store,
            &st.shared,
            &st.host_tx,
            st.online,
        )?;
        st.engine = engine;
        st.log_rx = log_rx;
        Ok(())
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

pub(crate) fn options(name: &str) -> rquickjs::context::EvalOptions {
    let mut o = rquickjs::context::EvalOptions::default();
    o.strict = false;
    o.filename = Some(name.to_owned());
    o
}

/// `Name: message` (and the stack, when there is one) of a caught exception.
pub(crate) fn describe(e: &CaughtError<'_>) -> String {
    match e {
        CaughtError::Exception(ex) => {
            let name: String = ex
                .as_object()
                .get::<_, Option<String>>("name")
                .ok()
                .flatten()
                .unwrap_or_else(|| "Error".into());
            let msg = ex.message().unwrap_or_default();
            match ex.stack() {
                Some(stack) if !stack.is_empty() => format!("{name}: {msg}\n{stack}"),
                _ => format!("{name}: {msg}"),
            }
        }
        CaughtError::Value(v) => format!("{v:?}"),
        CaughtError::Error(e) => e.to_string(),
    }
}

fn js_error(ctx: &Ctx<'_>, e: rquickjs::Error) -> UaError {
    UaError::Script(describe(&CaughtError::from_error(ctx, e)))
}

pub(crate) fn to_js<'js>(ctx: &Ctx<'js>, out: Out) -> rquickjs::Result<Value<'js>> {
    Ok(match out {
        Out::Undefined => Value::new_undefined(ctx.clone()),
        Out::Null => Value::new_null(ctx.clone()),
        Out::Bool(b) => Value::new_bool(ctx.clone(), b),
        Out::Num(n) => Value::new_float(ctx.clone(), n),
        Out::Str(s) => rquickjs::String::from_str(ctx.clone(), &s)?.into_value(),
        Out::Units(u) => {
            let a = Array::new(ctx.clone())?;
            for (i, unit) in u.into_iter().enumerate() {
                a.set(i, i32::from(unit))?;
            }
            a.into_value()
        }
        Out::List(items) => {
            let a = Array::new(ctx.clone())?;
            for (i, item) in items.into_iter().enumerate() {
                a.set(i, to_js(ctx, item)?)?;
            }
            a.into_value()
        }
        Out::Obj(fields) => {
            let o = Object::new(ctx.clone())?;
            for (k, v) in fields {
                o.set(k, to_js(ctx, v)?)?;
            }
            o.into_value()
        }
        Out::Map(fields) => {
            let o = Object::new(ctx.clone())?;
            for (k, v) in fields {
                o.set(k, to_js(ctx, v)?)?;
            }
            o.into_value()
        }
    })
}

pub(crate) use self::State as UaState;
pub(crate) use self::Task as UaTask;

impl State {
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
    pub(crate) fn new_sw(&mut self, scope: Url, script: Url, origin: Origin) -> SwRegistrationId {
        let id = SwRegistrationId(self.next_sw);
        self.next_sw += 1;
        self.sws.insert(
            id,
            SwReg {
                scope,
                script,
                origin,
                state: WorkerState::Parsed,
                realm: None,
            },
        );
        id
    }
    /// The registration whose scope is the longest prefix of `url`.
    pub(crate) fn match_scope(&self, url: &str) -> Option<SwRegistrationId> {
        self.sws
            .iter()
            .filter(|(_, r)| r.state != WorkerState::Redundant && url.starts_with(r.scope.as_str()))
            .max_by_key(|(_, r)| r.scope.as_str().len())
            .map(|(id, _)| *id)
    }
    pub(crate) fn scope_registration(&self, scope: &Url) -> Option<SwRegistrationId> {
        self.sws
            .iter()
            .find(|(_, r)| r.scope == *scope && r.state != WorkerState::Redundant)
            .map(|(id, _)| *id)
    }
    pub(crate) fn registrations_of(&self, origin: &Origin) -> Vec<SwRegistrationId> {
        self.sws
            .iter()
            .filter(|(_, r)| r.origin == *origin && r.state != WorkerState::Redundant)
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
    pub(crate) fn windows_of(&self, origin: &Origin) -> Vec<(RealmId, Url)> {
        self.realms
            .iter()
            .enumerate()
            .filter(|(_, r)| r.alive && r.kind == GlobalKind::Window && r.origin == *origin)
            .map(|(i, r)| (i, r.url.clone()))
            .collect()
    }
}

/// A dispatch outcome as `bgsyncTest` and the log name it.
fn outcome_name(o: DispatchOutcome) -> &'static str {
    match o {
        DispatchOutcome::Fulfilled => "fulfilled",
        DispatchOutcome::Rejected => "rejected",
        DispatchOutcome::TimedOut => "timeout",
        DispatchOutcome::WorkerTerminated | DispatchOutcome::WorkerFailedToStart => "terminated",
        _ => "other",
    }
}
