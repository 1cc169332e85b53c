//! What a browser engine already has — a service-worker registry, window clients keyed by
//! storage key, a thread that runs service workers — adapted to bgsync's embedder traits.
//!
//! The shapes follow engines that are not Chromium-shaped: the registry loads from disk on a
//! thread of its own after start-up and numbers registrations per session (Gecko, Servo);
//! storage is partitioned by top-level site; script runs on threads that talk to bgsync over
//! crossbeam channels, never by blocking on an async runtime.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bgsync::{
    BackgroundSync, DispatchOutcome, Origin, OutcomeReporter, RegistrationInfo, ServiceWorkerHost,
    StorageKey, SwRegistrationId, SyncEventDispatch, WindowClients,
};

/// One service worker registration as the engine's registry keeps it.
#[derive(Debug, Clone)]
pub struct SwEntry {
    /// The engine's own id: valid for this session only.
    pub session_id: u32,
    /// The storage key (origin, top-level site) it lives in.
    pub key: StorageKey,
    /// Its scope URL.
    pub scope: String,
}

/// The engine's service-worker registry, loaded asynchronously, plus the thread its workers run
/// on. Implements [`ServiceWorkerHost`]: bgsync asks it on the Background Sync thread, and it
/// answers from memory without blocking.
pub struct Registry {
    /// By the stable id bgsync gave each registration (`service_worker_id`), once loaded.
    loaded: Mutex<HashMap<SwRegistrationId, SwEntry>>,
    worker: crossbeam_channel::Sender<Job>,
    /// Events bgsync asked to stop (time limit, unregistration).
    terminated: Mutex<HashSet<u64>>,
}

/// A sync event posted to the worker thread.
struct Job {
    event: SyncEventDispatch,
    reply: OutcomeReporter,
}

/// What the worker thread did with each event, for the example's checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    /// The registration's tag.
    pub tag: String,
    /// Which storage key's worker ran it.
    pub key: StorageKey,
    /// `SyncEvent.lastChance`.
    pub last_chance: bool,
    /// How its `waitUntil` promise settled.
    pub outcome: DispatchOutcome,
}

impl Registry {
    /// An empty registry and its worker thread. The worker's script sends the outbox; the mail
    /// server refuses the first `server_failures` attempts.
    pub fn start(server_failures: u32) -> (Arc<Registry>, Worker) {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let registry = Arc::new(Registry {
            loaded: Mutex::new(HashMap::new()),
            worker: tx,
            terminated: Mutex::new(HashSet::new()),
        });
        let fired = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(AtomicU32::new(server_failures));
        // Weak: the registry owns the worker's queue, so a strong reference here would keep the
        // queue, and the thread, alive forever.
        let (log, thread_registry) = (fired.clone(), Arc::downgrade(&registry));
        let thread = std::thread::Builder::new()
            .name("service-workers".into())
            .spawn(move || {
                // The worker's event loop: one event at a time, as a worker's thread runs them.
                for Job { event, reply } in rx {
                    let key = thread_registry
                        .upgrade()
                        .and_then(|r| r.entry(event.sw))
                        .map(|e| e.key)
                        .unwrap_or_else(|| StorageKey::new(event.origin.clone()));
                    // The page's sync handler: waitUntil(fetch('/send')) — the server may be down.
                    let outcome = if failures
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        DispatchOutcome::Rejected
                    } else {
                        DispatchOutcome::Fulfilled
                    };
                    log.lock().unwrap().push(Fired {
                        tag: event.tag.to_string(),
                        key,
                        last_chance: event.last_chance,
                        outcome,
                    });
                    // Reported from this thread: the reporter is Send and may be used anywhere.
                    reply.report(outcome);
                }
            })
            .expect("spawn the service-worker thread");
        (
            registry,
            Worker {
                fired,
                thread: Some(thread),
            },
        )
    }

    /// Loads the registry from the engine's own storage, on a thread of its own, the way Gecko
    /// and Servo do after start-up: each registration is given its stable bgsync id (the
    /// engine's ids last one session), then bgsync is told the registry is complete.
    pub fn load_async(
        self: &Arc<Self>,
        sync: &BackgroundSync,
        on_disk: Vec<(StorageKey, String)>,
    ) -> JoinHandle<()> {
        let (registry, sync) = (self.clone(), sync.clone());
        std::thread::spawn(move || {
            for (session_id, (key, scope)) in (1..).zip(on_disk) {
                let id = sync
                    .service_worker_id_with_reply(&key, &scope)
                    .recv()
                    .expect("Background Sync answers")
                    .expect("a stable id is stored");
                registry.loaded.lock().unwrap().insert(
                    id,
                    SwEntry {
                        session_id,
                        key,
                        scope,
                    },
                );
            }
            // Until now bgsync kept the registrations of workers it could not find, and fired
            // nothing; from now on an unknown id means the registration is gone.
            sync.registry_loaded();
        })
    }

    /// The registration bgsync knows as `sw`, if loaded.
    pub fn entry(&self, sw: SwRegistrationId) -> Option<SwEntry> {
        self.loaded.lock().unwrap().get(&sw).cloned()
    }

    /// The stable id of the registration of `key` with `scope`, if loaded.
    pub fn id_of(&self, key: &StorageKey, scope: &str) -> Option<SwRegistrationId> {
        self.loaded
            .lock()
            .unwrap()
            .iter()
            .find(|(_, e)| e.key == *key && e.scope == scope)
            .map(|(id, _)| *id)
    }

    /// How many events bgsync asked the engine to stop.
    pub fn terminated(&self) -> usize {
        self.terminated.lock().unwrap().len()
    }

    /// The engine's own (per-session) id of the registration bgsync knows as `sw`.
    pub fn session_id(&self, sw: SwRegistrationId) -> Option<u32> {
        self.entry(sw).map(|e| e.session_id)
    }
}

impl ServiceWorkerHost for Registry {
    /// "Unknown yet" is `None` before the registry has loaded: with `Builder::registry_loading`
    /// bgsync keeps those rows until `registry_loaded()`.
    fn registration(&self, sw: SwRegistrationId) -> Option<RegistrationInfo> {
        self.entry(sw).map(|e| RegistrationInfo {
            origin: e.key.origin.clone(),
            partition: e.key.partition.clone(),
            has_active_worker: true,
        })
    }

    /// Posts the event to the worker's thread and returns: never blocks the Background Sync
    /// thread.
    fn fire_sync_event(&self, event: SyncEventDispatch, reply: OutcomeReporter) {
        // A worker thread that is gone drops the job, and with it the reporter: bgsync counts
        // that as a worker that failed to start.
        let _ = self.worker.send(Job { event, reply });
    }

    fn terminate(&self, id: bgsync::DispatchId, _sw: SwRegistrationId) {
        self.terminated.lock().unwrap().insert(id.0);
    }
}

/// The worker thread, and what it ran.
pub struct Worker {
    fired: Arc<Mutex<Vec<Fired>>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Every event run so far.
    pub fn fired(&self) -> Vec<Fired> {
        self.fired.lock().unwrap().clone()
    }

    /// Waits for the thread after the registry (its only sender) is dropped.
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Window clients by storage key: a tab of mail.example at top level is a client of
/// (mail.example, mail.example); the same origin in an iframe under news.example is a client of
/// (mail.example, news.example). bgsync asks with the caller's storage key.
#[derive(Default)]
pub struct Tabs(Mutex<HashSet<StorageKey>>);

impl Tabs {
    /// A window of `key` opened.
    pub fn open(&self, key: StorageKey) {
        self.0.lock().unwrap().insert(key);
    }
}

impl WindowClients for Tabs {
    fn has_window_client(&self, origin: &Origin) -> bool {
        self.0.lock().unwrap().iter().any(|k| k.origin == *origin)
    }

    fn has_window_client_in(&self, key: &StorageKey) -> bool {
        self.0.lock().unwrap().contains(key)
    }
}
