//! The facade on the durable store (`data_dir`): what was acknowledged survives a restart.

use std::sync::Arc;
use std::time::Duration;

use bgsync::testing::{Behaviour, FixedNetwork, OpenWindows, ScriptedHost};
use bgsync::{BackgroundSync, DispatchOutcome, StartError, VirtualClock};
use bgsync_store::{RegistrationStore, StoreError};
use bgsync_store_sqlite::{SqliteStore, DB_FILE};
use bgsync_types::{Origin, SwRegistrationId, Tag, Timestamp};

const SW: SwRegistrationId = SwRegistrationId(1);

fn origin() -> Origin {
    Origin::parse("https://mail.example").unwrap()
}

fn start(
    dir: &std::path::Path,
    online: bool,
    clock: &VirtualClock,
) -> (BackgroundSync, Arc<ScriptedHost>) {
    let host = Arc::new(ScriptedHost::new());
    host.add_registration(SW, origin());
    let sync = BackgroundSync::builder(host.clone(), Arc::new(OpenWindows::with([origin()])))
        .network(Arc::new(FixedNetwork(online)))
        .clock(Arc::new(clock.clone()))
        .data_dir(dir)
        .start()
        .unwrap();
    (sync, host)
}

#[tokio::test]
async fn acknowledged_registrations_survive_a_restart_and_fire() {
    let dir = tempfile::tempdir().unwrap();
    let clock = VirtualClock::new(Timestamp(1_000_000));
    let (sync, _) = start(dir.path(), false, &clock);
    sync.register(&origin(), SW, "send-mail").await.unwrap();
    sync.register(&origin(), SW, Tag::from_utf16(vec![0xD800]))
        .await
        .unwrap();
    sync.shutdown();

    let (sync, host) = start(dir.path(), true, &clock);
    sync.settle().await;
    let mut fired: Vec<Tag> = host.fired().into_iter().map(|e| e.tag).collect();
    fired.sort();
    assert_eq!(
        fired,
        [Tag::from("send-mail"), Tag::from_utf16(vec![0xD800])]
    );
    sync.shutdown();
    // Both succeeded, so the removals were committed too.
    let mut store = SqliteStore::open(dir.path()).unwrap();
    assert!(store.load_all().unwrap().is_empty());
}

#[tokio::test]
async fn attempts_and_back_off_are_committed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = VirtualClock::new(Timestamp(1_000_000));
    let (sync, host) = start(dir.path(), true, &clock);
    host.set_default(Behaviour::Settle(DispatchOutcome::Rejected));
    sync.register(&origin(), SW, "t").await.unwrap();
    sync.settle().await;
    sync.shutdown();
    let rows = SqliteStore::open(dir.path()).unwrap().load_all().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].attempts, 1);
    assert_eq!(rows[0].next_fire, Timestamp(1_000_000 + 300_000));

    // A restart before the back-off ends waits for it, then fires the second attempt.
    let (sync, host) = start(dir.path(), true, &clock);
    sync.settle().await;
    assert!(host.fired().is_empty());
    clock.advance(Duration::from_secs(300));
    sync.settle().await;
    assert_eq!(host.fired().len(), 1);
    assert!(!host.fired()[0].last_chance);
}

#[tokio::test]
async fn a_second_engine_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = VirtualClock::default();
    let (sync, _) = start(dir.path(), true, &clock);
    let host = Arc::new(ScriptedHost::new());
    let err = BackgroundSync::builder(host, Arc::new(OpenWindows::default()))
        .data_dir(dir.path())
        .start()
        .unwrap_err();
    assert!(
        matches!(err, StartError::Store(StoreError::InUse { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("already in use"), "{err}");
    sync.shutdown();
}

#[tokio::test]
async fn a_corrupt_database_is_moved_aside_and_the_engine_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(DB_FILE), vec![0xAB; 8192]).unwrap();
    let clock = VirtualClock::default();
    let (sync, _) = start(dir.path(), true, &clock);
    assert_eq!(
        sync.get_tags(&origin(), SW).await.unwrap(),
        Vec::<Tag>::new()
    );
    sync.register(&origin(), SW, "t").await.unwrap();
    sync.shutdown();
    let moved: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("background-sync.sqlite.corrupt-"))
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(
        std::fs::read(dir.path().join(&moved[0])).unwrap(),
        vec![0xAB; 8192]
    );
}

#[tokio::test]
async fn clear_site_data_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let clock = VirtualClock::default();
    let (sync, _) = start(dir.path(), false, &clock);
    sync.register(&origin(), SW, "t").await.unwrap();
    sync.clear_origin(&origin()).await.unwrap();
    sync.shutdown();
    assert!(SqliteStore::open(dir.path())
        .unwrap()
        .load_all()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_failing_disk_rejects_with_unknown_error_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let clock = VirtualClock::default();
    let host = Arc::new(ScriptedHost::new());
    host.add_registration(SW, origin());
    let store = SqliteStore::open(dir.path()).unwrap();
    // Hand the engine a store we can make fail: a read-only file system after the first write.
    let store = FailAfter {
        inner: store,
        ok_commits: 1,
    };
    let sync = BackgroundSync::builder(host, Arc::new(OpenWindows::with([origin()])))
        .network(Arc::new(FixedNetwork(false)))
        .clock(Arc::new(clock))
        .store(Box::new(store))
        .start()
        .unwrap();
    sync.register(&origin(), SW, "kept").await.unwrap();
    let err = sync.register(&origin(), SW, "lost").await.unwrap_err();
    assert_eq!(err.name, bgsync_types::DomExceptionName::UnknownError);
    assert!(err.message.contains("readonly"), "{}", err.message);
    assert_eq!(
        sync.get_tags(&origin(), SW).await.unwrap(),
        [Tag::from("kept")]
    );
    sync.shutdown();
    let rows = SqliteStore::open(dir.path()).unwrap().load_all().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].tag, Tag::from("kept"));
}

/// Turns the SQLite store read-only after `ok_commits` commits, through SQLite's own error path.
struct FailAfter {
    inner: SqliteStore,
    ok_commits: u32,
}

impl RegistrationStore for FailAfter {
    fn load_all(&mut self) -> Result<Vec<bgsync_store::StoredRegistration>, StoreError> {
        self.inner.load_all()
    }
    fn commit(&mut self, batch: &[bgsync_store::StoreOp]) -> Result<(), StoreError> {
        if self.ok_commits == 0 {
            self.inner.simulate_read_only(true)?;
        } else {
            self.ok_commits -= 1;
        }
        self.inner.commit(batch)
    }
}

#[tokio::test]
async fn get_tags_keeps_the_order_of_registration_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = VirtualClock::new(Timestamp(1_000_000));
    let order = ["zz-b", "\u{ff5e}", "zz-a", "\u{1F4E7}"];
    let (sync, _) = start(dir.path(), false, &clock);
    for tag in order {
        sync.register(&origin(), SW, tag).await.unwrap();
    }
    sync.shutdown();
    let (sync, _) = start(dir.path(), false, &clock);
    // Registered after the restart: after the restored ones.
    sync.register(&origin(), SW, "0-later").await.unwrap();
    let tags: Vec<String> = sync
        .get_tags(&origin(), SW)
        .await
        .unwrap()
        .iter()
        .map(|t| t.to_string())
        .collect();
    assert_eq!(tags, ["zz-b", "\u{ff5e}", "zz-a", "\u{1F4E7}", "0-later"]);
    sync.shutdown();
}
