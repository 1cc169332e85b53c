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
}

impl bgsync::RegistrationStore for SlowCommits {
    fn load_all(&mut self) -> Result<Vec<bgsync::StoredRegistration>, bgsync::StoreError> {
        self.inner.load_all()
    }
    fn commit(&mut self, batch: &[bgsync::StoreOp]) -> Result<(), bgsync::StoreError> {
        std::thread::sleep(self.delay);
        self.inner.commit(batch)
    }
}

/// An offline engine whose store takes 3 ms a commit.
fn engine(store: &MemoryStore) -> BackgroundSync {
    let host = Arc::new(ScriptedHost::new());
    host.add_registration(SwRegistrationId(1), a());
    BackgroundSync::builder(host, Arc::new(OpenWindows::with([a()])))
        .network(Arc::new(FixedNetwork(false)))
        .store(Box::new(SlowCommits {
            inner: store.clone(),
            delay: Duration::from_millis(3),
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

/// A store whose commits can be held at a gate, which says when a commit reaches it and which
/// thread made each commit.
#[derive(Clone, Default)]
struct Gated {
    inner: MemoryStore,
    /// Closed while true; commits wait at it.
    closed: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    entered: Arc<std::sync::Mutex<Option<std::sync::mpsc::Sender<()>>>>,
    /// Each commit's rows and the thread that made it.
    commits: Arc<std::sync::Mutex<Vec<(usize, String)>>>,
}

impl Gated {
    /// Closes the gate; the returned receiver hears when a commit reaches it.
    fn close(&self) -> std::sync::mpsc::Receiver<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        *self.entered.lock().unwrap() = Some(tx);
        *self.closed.0.lock().unwrap() = true;
        rx
    }

    fn open(&self) {
        *self.closed.0.lock().unwrap() = false;
        self.closed.1.notify_all();
    }
}

impl bgsync::RegistrationStore for Gated {
    fn load_all(&mut self) -> Result<Vec<bgsync::StoredRegistration>, bgsync::StoreError> {
        self.inner.load_all()
    }
    fn commit(&mut self, batch: &[bgsync::StoreOp]) -> Result<(), bgsync::StoreError> {
        if let Some(tx) = self.entered.lock().unwrap().take() {
            let _ = tx.send(());
        }
        let mut closed = self.closed.0.lock().unwrap();
        while *closed {
            closed = self.closed.1.wait(closed).unwrap();
        }
        drop(closed);
        let thread = std::thread::current().name().unwrap_or("?").to_owned();
        self.commits.lock().unwrap().push((batch.len(), thread));
        self.inner.commit(batch)
    }
}

#[test]
fn a_group_with_nothing_behind_it_is_committed_on_the_background_sync_thread() {
    // One call's commit is held at the gate while a group of calls arrives behind it; once the
    // gate opens, the group is one commit with nothing behind it. A group of 7 is committed on
    // the Background Sync thread (no hand-off to the store's thread and back; before, only a
    // lone call's write was); a group of 199 is more than that thread may take (128 rows) and
    // goes to the store's thread, so that calls keep being answered meanwhile.
    let store = Gated::default();
    let host = Arc::new(ScriptedHost::new());
    host.add_registration(SwRegistrationId(1), a());
    let sync = BackgroundSync::builder(host, Arc::new(OpenWindows::with([a()])))
        .network(Arc::new(FixedNetwork(false)))
        .store(Box::new(store.clone()))
        .start()
        .unwrap();
    // Groups of 7 several times: the store's thread takes the store for its check after
    // start-up, and a commit made meanwhile goes to that thread (on a starved machine the check
    // may start late), so one round proves nothing either way.
    let groups = [7, 7, 7, 7, 7, 199];
    for (round, group) in groups.into_iter().enumerate() {
        let entered = store.close();
        let first = sync.register_with_reply(a(), SwRegistrationId(1), format!("r{round}-first"));
        entered
            .recv_timeout(Duration::from_secs(10))
            .expect("the first call's commit reaches the gate");
        let rest: Vec<_> = (0..group)
            .map(|i| sync.register_with_reply(a(), SwRegistrationId(1), format!("r{round}-{i}")))
            .collect();
        store.open();
        first.recv().unwrap().unwrap();
        for r in rest {
            r.recv().unwrap().unwrap();
        }
    }
    sync.settle_blocking();
    assert_eq!(
        store.inner.snapshot().len(),
        groups.iter().map(|g| g + 1).sum::<usize>()
    );
    let commits = store.commits.lock().unwrap().clone();
    assert!(
        commits.contains(&(7, "background-sync".to_owned())),
        "{commits:?}"
    );
    assert!(
        commits.contains(&(199, "bgsync-store".to_owned())),
        "{commits:?}"
    );
    sync.shutdown();
}
