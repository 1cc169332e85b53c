//! Start-up with an engine whose service-worker registry loads late: registrations of workers
//! the host does not know yet are kept (and nothing fires) until the registry is loaded; then
//! those of workers it does not know, or knows as another origin's, go. The embedder is asked
//! on the Background Sync thread.

use std::sync::{Arc, Mutex};

use bgsync::testing::{FixedNetwork, OpenWindows, ScriptedHost};
use bgsync::{
    BackgroundSync, Origin, OutcomeReporter, RegistrationInfo, ServiceWorkerHost, SwRegistrationId,
    SyncEventDispatch,
};

fn a() -> Origin {
    Origin::parse("https://a.example").unwrap()
}
fn b() -> Origin {
    Origin::parse("https://b.example").unwrap()
}

/// Remembers which threads asked it.
struct Watching {
    inner: ScriptedHost,
    threads: Mutex<Vec<String>>,
}

impl ServiceWorkerHost for Watching {
    fn registration(&self, sw: SwRegistrationId) -> Option<RegistrationInfo> {
        self.threads
            .lock()
            .unwrap()
            .push(std::thread::current().name().unwrap_or("?").to_owned());
        self.inner.registration(sw)
    }
    fn fire_sync_event(&self, event: SyncEventDispatch, reply: OutcomeReporter) {
        self.inner.fire_sync_event(event, reply)
    }
}

fn seed(dir: &std::path::Path) {
    let host = Arc::new(ScriptedHost::new());
    host.add_registration(SwRegistrationId(1), a());
    host.add_registration(SwRegistrationId(2), b());
    let sync = BackgroundSync::builder(host, Arc::new(OpenWindows::with([a(), b()])))
        .network(Arc::new(FixedNetwork(false)))
        .data_dir(dir)
        .start()
        .unwrap();
    for (o, sw) in [(a(), 1), (b(), 2)] {
        sync.register_with_reply(&o, SwRegistrationId(sw), "t")
            .recv()
            .unwrap()
            .unwrap();
    }
}

#[test]
fn a_registry_that_loads_late_loses_nothing_and_a_reused_id_is_not_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path());
    // The registry is empty at start-up; the network is up.
    let host = Arc::new(Watching {
        inner: ScriptedHost::new(),
        threads: Mutex::new(Vec::new()),
    });
    let sync = BackgroundSync::builder(host.clone(), Arc::new(OpenWindows::with([a(), b()])))
        .network(Arc::new(FixedNetwork(true)))
        .data_dir(dir.path())
        .registry_loading()
        .start()
        .unwrap();
    let status = sync.status_blocking().unwrap();
    assert_eq!(status.registrations, 2, "kept while the registry loads");
    assert!(
        host.inner.fired().is_empty(),
        "nothing fires before the registry is loaded"
    );
    // The registry arrives: sw 1 is a's as stored; sw 2 is now another origin's.
    host.inner.add_registration(SwRegistrationId(1), a());
    host.inner.add_registration(
        SwRegistrationId(2),
        Origin::parse("https://c.example").unwrap(),
    );
    sync.registry_loaded();
    let status = sync.status_blocking().unwrap();
    let fired: Vec<_> = host.inner.fired().into_iter().map(|e| e.sw).collect();
    assert_eq!(
        fired,
        [SwRegistrationId(1)],
        "a's fires; b's went with its id"
    );
    assert_eq!(status.registrations, 0);
    assert!(
        host.threads
            .lock()
            .unwrap()
            .iter()
            .all(|t| t == "background-sync"),
        "the host is asked on the Background Sync thread: {:?}",
        host.threads.lock().unwrap()
    );
}

#[test]
fn without_a_late_registry_start_up_checks_the_owner_origin() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path());
    let host = Arc::new(ScriptedHost::new());
    host.add_registration(SwRegistrationId(1), a());
    // sw 2's id now belongs to another origin.
    host.add_registration(
        SwRegistrationId(2),
        Origin::parse("https://c.example").unwrap(),
    );
    let sync = BackgroundSync::builder(host, Arc::new(OpenWindows::with([a(), b()])))
        .network(Arc::new(FixedNetwork(false)))
        .data_dir(dir.path())
        .start()
        .unwrap();
    assert_eq!(sync.status_blocking().unwrap().registrations, 1);
}
