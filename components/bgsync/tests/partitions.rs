//! Storage partitions: a registration belongs to its service worker registration's storage key
//! (origin and partition). Two partitions of one origin never see, count against or clear each
//! other's registrations; a window in one partition does not count for another; the partition
//! survives restarts and start-up checks it; a private-browsing engine writes nothing.

use std::sync::Arc;

use bgsync::testing::{FixedNetwork, ScriptedHost};
use bgsync::{
    BackgroundSync, DomExceptionName, Origin, Parameters, StartError, StorageKey, SwRegistrationId,
    WindowClients,
};

fn a() -> Origin {
    Origin::parse("https://a.example").unwrap()
}

/// `a` embedded under two top-level sites, as a partitioning engine keys it.
fn under(top: &str) -> StorageKey {
    StorageKey::partitioned(a(), top)
}

const SW1: SwRegistrationId = SwRegistrationId(1);
const SW2: SwRegistrationId = SwRegistrationId(2);

/// Windows open per storage key.
struct PartitionedWindows(Vec<StorageKey>);

impl WindowClients for PartitionedWindows {
    fn has_window_client(&self, origin: &Origin) -> bool {
        self.0.iter().any(|k| k.origin == *origin)
    }
    fn has_window_client_in(&self, key: &StorageKey) -> bool {
        self.0.contains(key)
    }
}

fn host() -> Arc<ScriptedHost> {
    let host = Arc::new(ScriptedHost::new());
    host.add_registration_in(SW1, under("https://top1.example"));
    host.add_registration_in(SW2, under("https://top2.example"));
    host
}

fn both_windows() -> Arc<PartitionedWindows> {
    Arc::new(PartitionedWindows(vec![
        under("https://top1.example"),
        under("https://top2.example"),
    ]))
}

fn tags(sync: &BackgroundSync, key: &StorageKey, sw: SwRegistrationId) -> Vec<String> {
    sync.get_tags_with_reply(key, sw)
        .recv()
        .unwrap()
        .unwrap()
        .iter()
        .map(|t| t.to_string())
        .collect()
}

#[test]
fn two_partitions_of_one_origin_keep_their_registrations_and_quotas_apart() {
    let sync = BackgroundSync::builder(host(), both_windows())
        .network(Arc::new(FixedNetwork(false)))
        .params(Parameters {
            max_registrations_per_origin: Some(1),
            ..Parameters::default()
        })
        .start()
        .unwrap();
    let (p1, p2) = (under("https://top1.example"), under("https://top2.example"));
    for (key, sw) in [(&p1, SW1), (&p2, SW2)] {
        sync.register_with_reply(key, sw, "t")
            .recv()
            .unwrap()
            .unwrap();
    }
    assert_eq!(tags(&sync, &p1, SW1), ["t"]);
    assert_eq!(tags(&sync, &p2, SW2), ["t"]);
    // The quota counts per storage key: p1 is full, which does not stop p2's first.
    let full = sync.register_with_reply(&p1, SW1, "u").recv().unwrap();
    assert_eq!(full.unwrap_err().name, DomExceptionName::QuotaExceededError);
    // A context of one partition cannot use the other's registration, nor can the origin's
    // default partition.
    for (caller, sw) in [(p1.clone(), SW2), (StorageKey::new(a()), SW1)] {
        let err = sync
            .register_with_reply(&caller, sw, "x")
            .recv()
            .unwrap()
            .unwrap_err();
        assert_eq!(err.name, DomExceptionName::SecurityError, "{err}");
        let err = sync
            .get_tags_with_reply(&caller, sw)
            .recv()
            .unwrap()
            .unwrap_err();
        assert_eq!(err.name, DomExceptionName::SecurityError, "{err}");
    }
    sync.shutdown();
}

#[test]
fn a_window_in_one_partition_does_not_count_for_another() {
    let windows = Arc::new(PartitionedWindows(vec![under("https://top1.example")]));
    let sync = BackgroundSync::builder(host(), windows).start().unwrap();
    let err = sync
        .register_with_reply(under("https://top2.example"), SW2, "t")
        .recv()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.name, DomExceptionName::InvalidAccessError, "{err}");
    assert_eq!(
        sync.register_with_reply(under("https://top1.example"), SW1, "t")
            .recv()
            .unwrap(),
        Ok(())
    );
    sync.shutdown();
}

#[tokio::test]
async fn clearing_a_storage_key_leaves_the_origins_other_partitions() {
    let sync = BackgroundSync::builder(host(), both_windows())
        .network(Arc::new(FixedNetwork(false)))
        .start()
        .unwrap();
    let (p1, p2) = (under("https://top1.example"), under("https://top2.example"));
    sync.register(&p1, SW1, "t").await.unwrap();
    sync.register(&p2, SW2, "t").await.unwrap();
    sync.clear_storage_key(&p1).await.unwrap();
    assert!(tags(&sync, &p1, SW1).is_empty());
    assert_eq!(tags(&sync, &p2, SW2), ["t"]);
    // Clearing the origin clears every partition of it.
    sync.register(&p1, SW1, "t").await.unwrap();
    sync.clear_origin(&a()).await.unwrap();
    assert!(tags(&sync, &p1, SW1).is_empty());
    assert!(tags(&sync, &p2, SW2).is_empty());
    sync.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_partition_is_durable_and_checked_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let start = |host: Arc<ScriptedHost>| {
        BackgroundSync::builder(host, both_windows())
            .network(Arc::new(FixedNetwork(false)))
            .data_dir(dir.path())
            .start()
            .unwrap()
    };
    let (p1, p2) = (under("https://top1.example"), under("https://top2.example"));
    let sync = start(host());
    for (key, sw) in [(&p1, SW1), (&p2, SW2)] {
        sync.register_with_reply(key, sw, "t")
            .recv()
            .unwrap()
            .unwrap();
    }
    sync.shutdown();

    let sync = start(host());
    assert_eq!(sync.start_report().restored, 2);
    assert_eq!(tags(&sync, &p1, SW1), ["t"]);
    let inspected = sync.registrations().await.unwrap();
    let partitions: Vec<&str> = inspected.iter().map(|r| r.partition.as_str()).collect();
    assert_eq!(partitions, ["https://top1.example", "https://top2.example"]);
    sync.shutdown();

    // The engine now has SW1 in another partition (an id reused): its rows are not SW1's.
    let moved = Arc::new(ScriptedHost::new());
    moved.add_registration_in(SW1, under("https://elsewhere.example"));
    moved.add_registration_in(SW2, p2.clone());
    let sync = start(moved);
    sync.settle_blocking();
    assert!(tags(&sync, &under("https://elsewhere.example"), SW1).is_empty());
    assert_eq!(tags(&sync, &p2, SW2), ["t"]);
    sync.shutdown();
}

#[tokio::test]
async fn a_private_browsing_engine_keeps_everything_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let refused = BackgroundSync::builder(host(), both_windows())
        .data_dir(dir.path())
        .private_browsing()
        .start();
    assert!(matches!(refused, Err(StartError::Config(_))));
    let refused = BackgroundSync::builder(host(), both_windows())
        .store(Box::new(bgsync::MemoryStore::new()))
        .private_browsing()
        .start();
    assert!(matches!(refused, Err(StartError::Config(_))));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "a refused private engine wrote nothing"
    );

    let sync = BackgroundSync::builder(host(), both_windows())
        .network(Arc::new(FixedNetwork(false)))
        .private_browsing()
        .start()
        .unwrap();
    let p1 = under("https://top1.example");
    sync.register(&p1, SW1, "t").await.unwrap();
    let id = sync
        .service_worker_id(&p1, "https://a.example/")
        .await
        .unwrap();
    assert_eq!(
        sync.service_worker_id(&p1, "https://a.example/")
            .await
            .unwrap(),
        id
    );
    assert_eq!(tags(&sync, &p1, SW1), ["t"]);
    sync.shutdown();
}

#[test]
fn calls_from_origins_and_partitions_in_turn_each_keep_their_own_key() {
    // The engine keeps its own copy of the origin that called last: a call from another
    // origin, or from the same origin in another partition, must still land under its own key.
    let b = Origin::parse("https://b.example").unwrap();
    let host = host();
    const SW3: SwRegistrationId = SwRegistrationId(3);
    host.add_registration(SW3, b.clone());
    let (p1, p2, kb) = (
        under("https://top1.example"),
        under("https://top2.example"),
        StorageKey::new(b),
    );
    let windows = PartitionedWindows(vec![p1.clone(), p2.clone(), kb.clone()]);
    let sync = BackgroundSync::builder(host, Arc::new(windows))
        .network(Arc::new(FixedNetwork(false)))
        .start()
        .unwrap();
    let calls = [
        (&p1, SW1),
        (&kb, SW3),
        (&p1, SW1),
        (&p2, SW2),
        (&p1, SW1),
        (&kb, SW3),
    ];
    for (i, (key, sw)) in calls.into_iter().enumerate() {
        sync.register_with_reply(key, sw, format!("t{i}"))
            .recv()
            .unwrap()
            .unwrap();
    }
    assert_eq!(tags(&sync, &p1, SW1), ["t0", "t2", "t4"]);
    assert_eq!(tags(&sync, &p2, SW2), ["t3"]);
    assert_eq!(tags(&sync, &kb, SW3), ["t1", "t5"]);
    // Asked from the wrong key, a service worker registration shows nothing of the others'.
    let wrong = sync.get_tags_with_reply(&p2, SW1).recv().unwrap();
    assert!(wrong.as_ref().map_or(true, |t| t.is_empty()), "{wrong:?}");
}
