//! Group commit with callers that each wait for their answer before the next call: the callers
//! one commit answers call again at once, and the next commit waits for them (briefly), so they
//! keep sharing one commit instead of splitting into groups that alternate.

use std::sync::Arc;
use std::time::Duration;

use bgsync::testing::{FixedNetwork, OpenWindows, ScriptedHost};
use bgsync::{BackgroundSync, MemoryStore, Origin, SwRegistrationId};

fn a() -> Origin {
    Origin::parse("https://a.example").unwrap()
}

/// A store whose every commit takes `delay`, as an fsync would.
struct SlowCommits {
    inner: MemoryStore,
    delay: Duration,
    /// Each commit's rows and the thread that made it.
    commits: Arc<std::sync::Mutex<Vec<(usize, String)>>>,
}

impl bgsync::RegistrationStore for SlowCommits {
    fn load_all(&mut self) -> Result<Vec<bgsync::StoredRegistration>, bgsync::StoreError> {
        self.inner.load_all()
    }
    fn commit(&mut self, batch: &[bgsync::StoreOp]) -> Result<(), bgsync::StoreError> {
        std::thread::sleep(self.delay);
        let thread = std::thread::current().name().unwrap_or("?").to_owned();
        self.commits.lock().unwrap().push((batch.len(), thread));
        self.inner.commit(batch)
    }
}

/// An offline engine whose store takes 3 ms a commit.
fn engine(store: &MemoryStore) -> BackgroundSync {
    engine_watched(store, Arc::default())
}

fn engine_watched(
    store: &MemoryStore,
    commits: Arc<std::sync::Mutex<Vec<(usize, String)>>>,
) -> BackgroundSync {
    let host = Arc::new(ScriptedHost::new());
    host.add_registration(SwRegistrationId(1), a());
    BackgroundSync::builder(host, Arc::new(OpenWindows::with([a()])))
        .network(Arc::new(FixedNetwork(false)))
        .store(Box::new(SlowCommits {
            inner: store.clone(),
            delay: Duration::from_millis(3),
            commits,
        }))
        .start()
        .unwrap()
}

#[test]
fn callers_answered_by_one_commit_share_the_next() {
    let store = MemoryStore::new();
    let sync = engine(&store);
    const CALLERS: usize = 8;
    const ROUNDS: usize = 20;
    // The callers start together, so the first commit holds one call and the second the rest.
    let start = Arc::new(std::sync::Barrier::new(CALLERS));
    std::thread::scope(|s| {
        for c in 0..CALLERS {
            let (sync, start) = (sync.clone(), start.clone());
            s.spawn(move || {
                start.wait();
                for i in 0..ROUNDS {
                    sync.register_with_reply(a(), SwRegistrationId(1), format!("c{c}-{i}"))
                        .recv()
                        .unwrap()
                        .unwrap();
                }
            });
        }
    });
    assert_eq!(store.snapshot().len(), CALLERS * ROUNDS);
    // Without the hold, each commit starts as soon as the last one ends, with whatever arrived
    // by then: the callers split into two groups whose commits alternate (about 2 × ROUNDS
    // commits). With it, about one commit per round.
    let commits = store.commit_count() as usize;
    assert!(
        commits <= ROUNDS + ROUNDS / 2,
        "{commits} commits for {ROUNDS} rounds of {CALLERS} callers"
    );
    sync.shutdown();
}

#[test]
fn a_held_commit_goes_when_the_expected_callers_do_not_come() {
    // Eight callers are answered by one commit, then only one of them calls again: its write
    // waits for the seven others at most as long as a commit took, then goes alone.
    let store = MemoryStore::new();
    let sync = engine(&store);
    let replies: Vec<_> = (0..8)
        .map(|i| sync.register_with_reply(a(), SwRegistrationId(1), format!("t{i}")))
        .collect();
    for r in replies {
        r.recv().unwrap().unwrap();
    }
    let before = store.commit_count();
    sync.register_with_reply(a(), SwRegistrationId(1), "alone")
        .recv_timeout(Duration::from_secs(10))
        .expect("a held write is committed when the hold ends")
        .unwrap();
    assert_eq!(store.commit_count(), before + 1);
    sync.settle_blocking();
    assert_eq!(store.snapshot().len(), 9);
    sync.shutdown();
}

#[test]
fn a_group_with_nothing_behind_it_is_committed_on_the_background_sync_thread() {
    // A group of callers answered by one commit calls again; once the whole group is in and no
    // other call waits, its commit is made on the Background Sync thread (no hand-off to the
    // store's thread and back). A group larger than that thread may take (128 rows) goes to
    // the store's thread, so that calls keep being answered meanwhile.
    let store = MemoryStore::new();
    let commits: Arc<std::sync::Mutex<Vec<(usize, String)>>> = Arc::default();
    let sync = engine_watched(&store, commits.clone());
    let rounds = [8, 8, 8, 8, 8, 200, 200];
    for (round, size) in rounds.into_iter().enumerate() {
        let replies: Vec<_> = (0..size)
            .map(|i| sync.register_with_reply(a(), SwRegistrationId(1), format!("r{round}-{i}")))
            .collect();
        for r in replies {
            r.recv().unwrap().unwrap();
        }
    }
    sync.settle_blocking();
    assert_eq!(store.snapshot().len(), rounds.iter().sum::<usize>());
    let commits = commits.lock().unwrap().clone();
    // Groups held for, with nothing behind them, went in one commit on this thread (before,
    // only a lone call's write did).
    assert!(
        commits
            .iter()
            .any(|(rows, thread)| *rows > 1 && thread == "background-sync"),
        "{commits:?}"
    );
    // Every commit over 128 rows was made by the store's thread.
    assert!(
        commits
            .iter()
            .all(|(rows, thread)| *rows <= 128 || thread == "background-sync-store"),
        "{commits:?}"
    );
    assert!(commits.iter().any(|(rows, _)| *rows > 128), "{commits:?}");
    sync.shutdown();
}
