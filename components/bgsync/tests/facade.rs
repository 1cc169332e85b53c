//! The facade end to end: embedder traits in, events out, on virtual time. Nothing sleeps.

use std::sync::Arc;
use std::time::Duration;

use bgsync::testing::{Behaviour, FixedNetwork, OpenWindows, PermissionTable, ScriptedHost};
use bgsync::{BackgroundSync, DispatchOutcome, LogEvent, NextStep, Parameters, VirtualClock};
use bgsync_store::MemoryStore;
use bgsync_types::{DomExceptionName, Origin, PermissionState, SwRegistrationId, Tag, Timestamp};

const MIN: Duration = Duration::from_secs(60);
const SW: SwRegistrationId = SwRegistrationId(1);

fn origin(s: &str) -> Origin {
    Origin::parse(s).unwrap()
}

struct Fixture {
    sync: BackgroundSync,
    host: Arc<ScriptedHost>,
    windows: Arc<OpenWindows>,
    permissions: Arc<PermissionTable>,
    clock: VirtualClock,
    store: MemoryStore,
    origin: Origin,
}

impl Fixture {
    fn new() -> Self {
        Fixture::with(MemoryStore::new(), true)
    }

    fn with(store: MemoryStore, online: bool) -> Self {
        let origin = origin("https://mail.example");
        let host = Arc::new(ScriptedHost::new());
        host.add_registration(SW, origin.clone());
        let windows = Arc::new(OpenWindows::with([origin.clone()]));
        let permissions = Arc::new(PermissionTable::default());
        let clock = VirtualClock::new(Timestamp(1_000_000));
        let sync = BackgroundSync::builder(host.clone(), windows.clone())
            .permissions(permissions.clone())
            .network(Arc::new(FixedNetwork(online)))
            .clock(Arc::new(clock.clone()))
            .store(Box::new(store.clone()))
            .start()
            .unwrap();
        Fixture {
            sync,
            host,
            windows,
            permissions,
            clock,
            store,
            origin,
        }
    }

    async fn advance(&self, d: Duration) {
        self.clock.advance(d);
        self.sync.settle().await;
    }

    fn last_chances(&self) -> Vec<bool> {
        self.host.fired().iter().map(|e| e.last_chance).collect()
    }
}

#[tokio::test]
async fn register_fires_sync_with_the_tag_and_success_removes_it() {
    let f = Fixture::new();
    f.sync.register(&f.origin, SW, "send-mail").await.unwrap();
    f.sync.settle().await;
    let fired = f.host.fired();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].tag, Tag::from("send-mail"));
    assert!(!fired[0].last_chance);
    assert_eq!(
        f.sync.get_tags(&f.origin, SW).await.unwrap(),
        Vec::<Tag>::new()
    );
    assert!(f.store.snapshot().is_empty());
}

#[tokio::test]
async fn the_promise_resolves_before_the_event_is_dispatched() {
    let f = Fixture::new();
    let reply = f.sync.register_with_reply(&f.origin, SW, "t");
    let seen_at_fire = Arc::new(parking_lot::Mutex::new(None));
    let (probe, seen) = (reply.clone(), seen_at_fire.clone());
    f.host
        .on_fire(move |_| *seen.lock() = Some(probe.try_recv()));
    f.sync.settle().await;
    assert_eq!(*seen_at_fire.lock(), Some(Ok(Ok(()))));
}

#[tokio::test]
async fn offline_registrations_fire_when_the_network_returns() {
    let f = Fixture::with(MemoryStore::new(), false);
    let other = origin("https://news.example");
    f.host.add_registration(SwRegistrationId(2), other.clone());
    f.windows.open(other.clone());
    f.sync.register(&f.origin, SW, "send-mail").await.unwrap();
    f.sync
        .register(&other, SwRegistrationId(2), "fetch-news")
        .await
        .unwrap();
    f.sync.settle().await;
    assert!(f.host.fired().is_empty());
    f.sync.network_changed(true);
    f.sync.settle().await;
    let mut tags: Vec<String> = f.host.fired().iter().map(|e| e.tag.to_string()).collect();
    tags.sort();
    assert_eq!(tags, ["fetch-news", "send-mail"]);
}

#[tokio::test]
async fn failures_back_off_5_then_15_minutes_with_last_chance_on_the_third() {
    let f = Fixture::new();
    f.host
        .set_default(Behaviour::Settle(DispatchOutcome::Rejected));
    f.sync.register(&f.origin, SW, "t").await.unwrap();
    f.sync.settle().await;
    assert_eq!(f.host.fired().len(), 1);
    assert_eq!(
        f.sync.next_wake_up().await.unwrap(),
        Some(Timestamp(1_000_000 + 5 * 60_000))
    );
    f.advance(5 * MIN - Duration::from_millis(1)).await;
    assert_eq!(f.host.fired().len(), 1);
    f.advance(Duration::from_millis(1)).await;
    assert_eq!(f.host.fired().len(), 2);
    f.advance(15 * MIN - Duration::from_millis(1)).await;
    assert_eq!(f.host.fired().len(), 2);
    f.advance(Duration::from_millis(1)).await;
    assert_eq!(f.last_chances(), [false, false, true]);
    f.advance(24 * 60 * MIN).await;
    assert_eq!(f.host.fired().len(), 3, "no fourth attempt");
    assert_eq!(
        f.sync.get_tags(&f.origin, SW).await.unwrap(),
        Vec::<Tag>::new()
    );
}

#[tokio::test]
async fn an_event_past_the_time_limit_fails_and_the_worker_is_terminated() {
    let f = Fixture::new();
    f.host.script([Behaviour::Hold]);
    f.sync.register(&f.origin, SW, "t").await.unwrap();
    f.sync.settle().await;
    let held = f.host.held();
    assert_eq!(held.len(), 1);
    // While it runs, the OS wake-up asked for is the 6 minute recovery time.
    assert_eq!(
        f.sync.next_wake_up().await.unwrap(),
        Some(Timestamp(1_000_000 + 6 * 60_000))
    );
    f.advance(3 * MIN).await;
    assert_eq!(f.host.terminated(), [held[0].id]);
    let log = f.sync.log().await.unwrap();
    assert!(log.iter().any(|e| e.event
        == LogEvent::Completed {
            outcome: DispatchOutcome::TimedOut,
            next: NextStep::RetryAfter(5 * MIN),
        }));
    // The back-off runs from the end of the failed attempt: 3 + 5 minutes after dispatch.
    f.advance(5 * MIN).await;
    assert_eq!(f.host.fired().len(), 2);
}

#[tokio::test]
async fn a_worker_that_crashes_mid_event_counts_a_failed_attempt() {
    let f = Fixture::new();
    f.host.script([Behaviour::Crash]);
    f.sync.register(&f.origin, SW, "t").await.unwrap();
    f.sync.settle().await;
    let log = f.sync.log().await.unwrap();
    assert!(log.iter().any(|e| matches!(
        e.event,
        LogEvent::Completed {
            outcome: DispatchOutcome::WorkerTerminated,
            next: NextStep::RetryAfter(_)
        }
    )));
    f.advance(5 * MIN).await;
    assert_eq!(f.host.fired().len(), 2);
}

#[tokio::test]
async fn a_registration_without_an_active_worker_at_fire_time_fails_the_attempt() {
    let f = Fixture::with(MemoryStore::new(), false);
    f.sync.register(&f.origin, SW, "t").await.unwrap();
    f.host.set_active(SW, false);
    f.sync.network_changed(true);
    f.sync.settle().await;
    assert!(f.host.fired().is_empty());
    let log = f.sync.log().await.unwrap();
    assert!(log.iter().any(|e| matches!(
        e.event,
        LogEvent::Completed {
            outcome: DispatchOutcome::WorkerFailedToStart,
            ..
        }
    )));
}

#[tokio::test]
async fn unregistering_mid_event_drops_everything_and_ignores_the_outcome() {
    let f = Fixture::new();
    f.host.script([Behaviour::Hold]);
    f.sync.register(&f.origin, SW, "t").await.unwrap();
    f.sync.settle().await;
    let event = f.host.held()[0].clone();
    f.host.remove_registration(SW);
    f.sync.service_worker_unregistered(SW);
    f.sync.settle().await;
    assert_eq!(f.host.terminated(), [event.id]);
    assert!(f.store.snapshot().is_empty());
    assert_eq!(
        f.sync.get_tags(&f.origin, SW).await.unwrap(),
        Vec::<Tag>::new()
    );
    f.advance(60 * MIN).await;
    assert_eq!(f.host.fired().len(), 1);
}

#[tokio::test]
async fn permission_denied_holds_events_until_granted() {
    let f = Fixture::with(MemoryStore::new(), false);
    f.sync.register(&f.origin, SW, "t").await.unwrap();
    f.permissions.set(&f.origin, PermissionState::Denied);
    f.sync
        .permission_changed(&f.origin, PermissionState::Denied);
    f.sync.network_changed(true);
    f.sync.settle().await;
    assert!(f.host.fired().is_empty());
    let err = f.sync.register(&f.origin, SW, "u").await.unwrap_err();
    assert_eq!(err.name, DomExceptionName::NotAllowedError);
    f.permissions.set(&f.origin, PermissionState::Granted);
    f.sync
        .permission_changed(&f.origin, PermissionState::Granted);
    f.sync.settle().await;
    assert_eq!(f.host.fired().len(), 1);
}

#[tokio::test]
async fn refusals_reach_the_caller_with_their_names() {
    let f = Fixture::new();
    let cases = [
        (
            origin("http://mail.example"),
            SW,
            "t".to_string(),
            DomExceptionName::SecurityError,
        ),
        (
            origin("https://evil.example"),
            SW,
            "t".to_string(),
            DomExceptionName::SecurityError,
        ),
        (
            f.origin.clone(),
            SwRegistrationId(99),
            "t".to_string(),
            DomExceptionName::InvalidStateError,
        ),
        (
            f.origin.clone(),
            SW,
            "x".repeat(10_241),
            DomExceptionName::InvalidAccessError,
        ),
    ];
    for (caller, sw, tag, name) in cases {
        let err = f
            .sync
            .register(&caller, sw, tag.as_str())
            .await
            .unwrap_err();
        assert_eq!(err.name, name, "{caller} {sw}: {}", err.message);
    }
    f.windows.close(&f.origin);
    let err = f.sync.register(&f.origin, SW, "t").await.unwrap_err();
    assert_eq!(err.name, DomExceptionName::InvalidAccessError);
    assert!(f.store.snapshot().is_empty());
}

#[tokio::test]
async fn a_store_failure_rejects_with_unknown_error_and_keeps_what_was_acknowledged() {
    let f = Fixture::with(MemoryStore::new(), false);
    f.sync.register(&f.origin, SW, "kept").await.unwrap();
    f.store.faults().fail_next_commits(1);
    let err = f.sync.register(&f.origin, SW, "lost").await.unwrap_err();
    assert_eq!(err.name, DomExceptionName::UnknownError);
    assert_eq!(
        f.sync.get_tags(&f.origin, SW).await.unwrap(),
        [Tag::from("kept")]
    );
    assert_eq!(f.store.snapshot().len(), 1);
}

#[tokio::test]
async fn registrations_survive_a_restart_and_fire_when_due() {
    let store = MemoryStore::new();
    let f = Fixture::with(store.clone(), true);
    f.host
        .set_default(Behaviour::Settle(DispatchOutcome::Rejected));
    f.sync.register(&f.origin, SW, "t").await.unwrap();
    f.sync.settle().await;
    f.sync.shutdown();
    assert_eq!(store.snapshot()[0].attempts, 1);

    // A new engine on the same store, at the same virtual time.
    let g = Fixture::with(store.clone(), true);
    g.host
        .set_default(Behaviour::Settle(DispatchOutcome::Rejected));
    g.sync.settle().await;
    assert!(g.host.fired().is_empty(), "fired inside its back-off");
    g.advance(5 * MIN).await;
    assert_eq!(
        g.last_chances(),
        [false],
        "the count was kept: second attempt"
    );
    g.advance(15 * MIN).await;
    assert_eq!(g.last_chances(), [false, true]);
}

#[tokio::test]
async fn rows_of_service_workers_gone_while_down_are_removed_at_start_up() {
    let store = MemoryStore::new();
    let f = Fixture::with(store.clone(), false);
    f.sync.register(&f.origin, SW, "t").await.unwrap();
    f.sync.shutdown();
    assert_eq!(store.snapshot().len(), 1);

    let origin = f.origin.clone();
    let host = Arc::new(ScriptedHost::new()); // SW is not registered any more
    let sync = BackgroundSync::builder(host.clone(), Arc::new(OpenWindows::with([origin.clone()])))
        .clock(Arc::new(VirtualClock::default()))
        .store(Box::new(store.clone()))
        .start()
        .unwrap();
    sync.settle().await;
    assert!(store.snapshot().is_empty());
    assert!(host.fired().is_empty());
    assert_eq!(sync.get_tags(&origin, SW).await.unwrap(), Vec::<Tag>::new());
}

#[tokio::test]
async fn many_concurrent_registers_share_commits() {
    let f = Fixture::with(MemoryStore::new(), false);
    let calls: Vec<_> = (0..64)
        .map(|i| f.sync.register_with_reply(&f.origin, SW, format!("t{i}")))
        .collect();
    for reply in calls {
        assert_eq!(reply.recv().unwrap(), Ok(()));
    }
    assert_eq!(f.store.snapshot().len(), 64);
    assert!(
        f.store.commit_count() < 64,
        "{} commits for 64 registrations",
        f.store.commit_count()
    );
}

#[test]
fn engine_threads_use_crossbeam_channels_without_a_runtime() {
    let f = Fixture::with(MemoryStore::new(), false);
    let sync = f.sync.clone();
    let origin = f.origin.clone();
    let tags = std::thread::spawn(move || {
        sync.register_with_reply(&origin, SW, "b")
            .recv()
            .unwrap()
            .unwrap();
        sync.register_with_reply(&origin, SW, "a")
            .recv()
            .unwrap()
            .unwrap();
        sync.get_tags_with_reply(&origin, SW).recv().unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(
        tags.unwrap(),
        [Tag::from("b"), Tag::from("a")],
        "registration order"
    );
    f.sync.shutdown();
    // After shutdown a call is answered with the same error as the async API's, never left
    // hanging.
    let late = f.sync.register_with_reply(&f.origin, SW, "late").recv();
    assert!(
        matches!(&late, Ok(Err(e)) if e.name == bgsync_types::DomExceptionName::UnknownError),
        "{late:?}"
    );
}

#[tokio::test]
async fn parameters_reach_the_core() {
    let origin = origin("https://mail.example");
    let host = Arc::new(ScriptedHost::new());
    host.add_registration(SW, origin.clone());
    host.set_default(Behaviour::Settle(DispatchOutcome::Rejected));
    let clock = VirtualClock::default();
    let sync = BackgroundSync::builder(host.clone(), Arc::new(OpenWindows::with([origin.clone()])))
        .clock(Arc::new(clock.clone()))
        .params(Parameters {
            max_attempts: 1,
            ..Parameters::default()
        })
        .start()
        .unwrap();
    sync.register(&origin, SW, "t").await.unwrap();
    sync.settle().await;
    let fired = host.fired();
    assert_eq!(fired.len(), 1);
    assert!(fired[0].last_chance);
}
