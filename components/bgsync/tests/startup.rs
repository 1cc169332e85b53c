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

/// A store whose read waits until the test lets it go, or fails.
struct GatedStore {
    inner: bgsync::MemoryStore,
    gate: crossbeam_channel::Receiver<bool>,
}

impl bgsync::RegistrationStore for GatedStore {
    fn load_all(&mut self) -> Result<Vec<bgsync::StoredRegistration>, bgsync::StoreError> {
        if self.gate.recv().unwrap_or(false) {
            self.inner.load_all()
        } else {
            Err(bgsync::StoreError::ReadFailed {
                cause: "the disk went away".into(),
            })
        }
    }
    fn commit(&mut self, batch: &[bgsync::StoreOp]) -> Result<(), bgsync::StoreError> {
        self.inner.commit(batch)
    }
}

#[test]
fn start_does_not_wait_for_the_read_and_calls_made_meanwhile_are_answered_after_it() {
    let host = Arc::new(ScriptedHost::new());
    host.add_registration(SwRegistrationId(1), a());
    let (open_gate, gate) = crossbeam_channel::bounded(1);
    // start() returns although the read has not even begun: the gate is still shut.
    let sync = BackgroundSync::builder(host, Arc::new(OpenWindows::with([a()])))
        .network(Arc::new(FixedNetwork(false)))
        .store(Box::new(GatedStore {
            inner: bgsync::MemoryStore::new(),
            gate,
        }))
        .start()
        .unwrap();
    let reply = sync.register_with_reply(a(), SwRegistrationId(1), "early");
    assert!(
        reply.try_recv().is_err(),
        "a call made during the load is answered only after it"
    );
    open_gate.send(true).unwrap();
    assert_eq!(reply.recv().unwrap(), Ok(()));
    assert_eq!(sync.start_report().restored, 0);
    assert_eq!(sync.start_report().failure, None);
    sync.shutdown();
}

#[test]
fn a_load_that_fails_stops_the_engine_and_says_why() {
    let host = Arc::new(ScriptedHost::new());
    host.add_registration(SwRegistrationId(1), a());
    let (open_gate, gate) = crossbeam_channel::bounded(1);
    let sync = BackgroundSync::builder(host, Arc::new(OpenWindows::with([a()])))
        .store(Box::new(GatedStore {
            inner: bgsync::MemoryStore::new(),
            gate,
        }))
        .start()
        .unwrap();
    open_gate.send(false).unwrap();
    let failure = sync
        .start_report()
        .failure
        .expect("the failure is reported");
    assert!(failure.contains("the disk went away"), "{failure}");
    let err = sync
        .register_with_reply(a(), SwRegistrationId(1), "t")
        .recv()
        .unwrap()
        .unwrap_err();
    assert!(err.message.contains("start_report"), "{err}");
}

#[test]
fn the_profile_lock_still_fails_start_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let first = BackgroundSync::builder(
        Arc::new(ScriptedHost::new()),
        Arc::new(OpenWindows::with([a()])),
    )
    .data_dir(dir.path())
    .start()
    .unwrap();
    let second = BackgroundSync::builder(
        Arc::new(ScriptedHost::new()),
        Arc::new(OpenWindows::with([a()])),
    )
    .data_dir(dir.path())
    .start();
    let err = second.expect_err("the second engine must not start");
    assert!(err.to_string().contains("already in use"), "{err}");
    first.shutdown();
}
