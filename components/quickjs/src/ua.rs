//! The user agent: one QuickJS runtime, one realm per global, one Background Sync engine, and
//! the event loop that ties them together. This is the public face — creating a user agent,
//! opening realms, evaluating script, running the event loop and its tasks, reading what
//! scripts reported — and the top of the crate's modules: it dispatches each task to the module
//! that handles it (`realm`, `service_worker`, `control`).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgsync::{LogEntry, VirtualClock};
use bgsync_store::MemoryStore;
use bgsync_types::Timestamp;
use rquickjs::{Runtime, Value};
use url::Url;

use crate::agent::{start_engine, LogRecord, Placement, State, Task};
use crate::config::UserAgentConfig;
use crate::host::Shared;
use crate::realm::UserAgent;
use crate::values::{GlobalKind, Out, RealmId};
use crate::UaError;

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
            periodic_permissions: HashMap::new(),
            remote_calls: HashMap::new(),
            next_remote: 1,
            dedicated: HashMap::new(),
            next_dedicated: 1,
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
        self.open_realm(
            kind,
            url,
            None,
            Placement {
                top_level: true,
                ..Placement::default()
            },
        )
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
            Task::StartWorker {
                parent,
                handle,
                url,
            } => self.start_dedicated(parent, handle, &url),
            Task::PostToDedicated { handle, json } => self.post_to_dedicated(handle, json),
            Task::TerminateDedicated(handle) => self.terminate_dedicated(handle),
        }
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
