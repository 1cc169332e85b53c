//! Faulty embedders: a panic in any embedder trait fails the call it happened in, with an error
//! that names the fault, and the engine goes on serving every other origin; a store that panics
//! fails its callers instead of hanging them.

use std::sync::Arc;
use std::time::Duration;

use bgsync::testing::{OpenWindows, ScriptedHost};
use bgsync::{
    BackgroundSync, DispatchOutcome, LogEvent, NetworkState, OutcomeReporter, Permissions,
    RegistrationInfo, ServiceWorkerHost, SyncEventDispatch, VirtualClock, WindowClients,
};
use bgsync_store::{MemoryStore, RegistrationStore, StoreError, StoreOp, StoredRegistration};
use bgsync_types::{
    DispatchId, DomExceptionName, Origin, PermissionState, SwRegistrationId, Tag, Timestamp,
};

fn origin(s: &str) -> Origin {
    Origin::parse(s).unwrap()
}

fn good() -> Origin {
    origin("https://good.example")
}

fn bad() -> Origin {
    origin("https://bad.example")
}

/// Panics for the bad origin's registration (sw 2) in `registration`, and for tag "boom" in
/// `fire_sync_event`; otherwise a host whose workers succeed at once.
struct PanickyHost {
    inner: ScriptedHost,
    panic_registration: bool,
}

impl ServiceWorkerHost for PanickyHost {
    fn registration(&self, sw: SwRegistrationId) -> Option<RegistrationInfo> {
        if self.panic_registration && sw == SwRegistrationId(2) {
            panic!("registry lookup blew up");
        }
        self.inner.registration(sw)
    }
    fn fire_sync_event(&self, event: SyncEventDispatch, reply: OutcomeReporter) {
        if event.tag == Tag::from("boom") {
            panic!("the worker host blew up");
        }
        self.inner.fire_sync_event(event, reply);
    }
    fn terminate(&self, _event: DispatchId, _sw: SwRegistrationId) {
        panic!("terminate blew up");
    }
}

struct PanickyClients;
impl WindowClients for PanickyClients {
    fn has_window_client(&self, o: &Origin) -> bool {
        if *o == bad() {
            panic!("the client registry blew up");
        }
        true
    }
}

struct PanickyPermissions;
impl Permissions for PanickyPermissions {
    fn background_sync(&self, o: &Origin) -> PermissionState {
        if *o == bad() {
            panic!("the permission store blew up");
        }
        PermissionState::Granted
    }
}

struct PanickyNetwork;
impl NetworkState for PanickyNetwork {
    fn is_online(&self) -> bool {
        panic!("the network service blew up");
    }
}

fn host(panic_registration: bool) -> Arc<PanickyHost> {
    let inner = ScriptedHost::new();
    inner.add_registration(SwRegistrationId(1), good());
    inner.add_registration(SwRegistrationId(2), bad());
    Arc::new(PanickyHost {
        inner,
        panic_registration,
    })
}

/// Registering for the bad origin fails naming `fault`; the good origin is served before and
/// after.
async fn bad_origin_fails_and_good_origin_is_served(sync: &BackgroundSync, fault: &str) {
    let limit = Duration::from_secs(10);
    tokio::time::timeout(limit, sync.register(&good(), SwRegistrationId(1), "before"))
        .await
        .expect("answered")
        .unwrap();
    let e = tokio::time::timeout(limit, sync.register(&bad(), SwRegistrationId(2), "x"))
        .await
        .expect("answered")
        .unwrap_err();
    assert_eq!(e.name, DomExceptionName::UnknownError, "{e:?}");
    assert!(
        e.message.contains(fault) && e.message.contains("panicked"),
        "{}",
        e.message
    );
    tokio::time::timeout(limit, sync.register(&good(), SwRegistrationId(1), "after"))
        .await
        .expect("answered")
        .unwrap();
    let tags = tokio::time::timeout(limit, sync.get_tags(&good(), SwRegistrationId(1)))
        .await
        .expect("answered");
    assert!(tags.is_ok(), "{tags:?}");
}

fn builder(host: Arc<PanickyHost>, clients: Arc<dyn WindowClients>) -> bgsync::Builder {
    BackgroundSync::builder(host, clients)
        .clock(Arc::new(VirtualClock::new(Timestamp(0))))
        .network(Arc::new(bgsync::testing::FixedNetwork(false)))
}

#[tokio::test]
async fn a_panicking_service_worker_host_fails_only_its_call() {
    let sync = builder(host(true), Arc::new(OpenWindows::with([good(), bad()])))
        .start()
        .unwrap();
    bad_origin_fails_and_good_origin_is_served(&sync, "ServiceWorkerHost::registration").await;
    let e = sync
        .get_tags(&bad(), SwRegistrationId(2))
        .await
        .unwrap_err();
    assert_eq!(e.name, DomExceptionName::UnknownError);
}

#[tokio::test]
async fn panicking_window_clients_fail_only_their_call() {
    let sync = builder(host(false), Arc::new(PanickyClients))
        .start()
        .unwrap();
    bad_origin_fails_and_good_origin_is_served(&sync, "WindowClients::has_window_client").await;
}

#[tokio::test]
async fn panicking_permissions_fail_only_their_call() {
    let sync = builder(host(false), Arc::new(OpenWindows::with([good(), bad()])))
        .permissions(Arc::new(PanickyPermissions))
        .start()
        .unwrap();
    bad_origin_fails_and_good_origin_is_served(&sync, "Permissions::background_sync").await;
}

#[tokio::test]
async fn a_panicking_network_at_start_up_counts_as_offline() {
    let sync = BackgroundSync::builder(host(false), Arc::new(OpenWindows::with([good()])))
        .clock(Arc::new(VirtualClock::new(Timestamp(0))))
        .network(Arc::new(PanickyNetwork))
        .start()
        .unwrap();
    sync.register(&good(), SwRegistrationId(1), "x")
        .await
        .unwrap();
    sync.settle().await;
    // Offline: nothing fired.
    assert!(sync
        .log()
        .await
        .unwrap()
        .iter()
        .all(|e| !matches!(e.event, LogEvent::Dispatched { .. })));
}

#[tokio::test]
async fn a_panic_while_firing_counts_as_a_failed_attempt_and_others_still_fire() {
    let h = host(false);
    let sync = builder(h.clone(), Arc::new(OpenWindows::with([good()])))
        .start()
        .unwrap();
    sync.register(&good(), SwRegistrationId(1), "boom")
        .await
        .unwrap();
    sync.register(&good(), SwRegistrationId(1), "fine")
        .await
        .unwrap();
    sync.network_changed(true);
    sync.settle().await;
    let log = sync.log().await.unwrap();
    let completed = |tag: &str| {
        log.iter()
            .find_map(|e| match &e.event {
                LogEvent::Completed { outcome, .. } if e.tag == Tag::from(tag) => Some(*outcome),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{tag} not completed: {log:#?}"))
    };
    assert_eq!(completed("fine"), DispatchOutcome::Fulfilled);
    assert_eq!(completed("boom"), DispatchOutcome::WorkerFailedToStart);
    // The engine is still there for everyone.
    sync.register(&good(), SwRegistrationId(1), "later")
        .await
        .unwrap();
}

/// A store that panics on any batch that writes tag "boom".
struct PanickyStore(MemoryStore);
impl RegistrationStore for PanickyStore {
    fn load_all(&mut self) -> Result<Vec<StoredRegistration>, StoreError> {
        self.0.load_all()
    }
    fn commit(&mut self, batch: &[StoreOp]) -> Result<(), StoreError> {
        if batch
            .iter()
            .any(|op| matches!(op, StoreOp::Put(r) if r.tag == Tag::from("boom")))
        {
            panic!("the custom store blew up");
        }
        self.0.commit(batch)
    }
}

#[tokio::test]
async fn a_panicking_store_fails_calls_instead_of_hanging_them() {
    let sync = builder(host(false), Arc::new(OpenWindows::with([good()])))
        .store(Box::new(PanickyStore(MemoryStore::new())))
        .start()
        .unwrap();
    let limit = Duration::from_secs(10);
    sync.register(&good(), SwRegistrationId(1), "before")
        .await
        .unwrap();
    let e = tokio::time::timeout(limit, sync.register(&good(), SwRegistrationId(1), "boom"))
        .await
        .expect("a panicking store must not hang the call")
        .unwrap_err();
    assert_eq!(e.name, DomExceptionName::UnknownError);
    // After a panic the store's state is unknown: later writes fail at once, naming why.
    let e = tokio::time::timeout(limit, sync.register(&good(), SwRegistrationId(1), "next"))
        .await
        .expect("later calls must not hang either")
        .unwrap_err();
    assert_eq!(e.name, DomExceptionName::UnknownError);
    // Reads still work.
    let tags = tokio::time::timeout(limit, sync.get_tags(&good(), SwRegistrationId(1)))
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(tags, vec![Tag::from("before")]);
}
