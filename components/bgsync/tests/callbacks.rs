//! `register_then` / `get_tags_then`: the answer comes to a callback on the Background Sync
//! thread, so an engine's event loop never waits for the disk, and a burst of calls made
//! while a commit is on its way shares the next commit.

use std::sync::Arc;

use bgsync::testing::{FixedNetwork, OpenWindows, ScriptedHost};
use bgsync::{BackgroundSync, DomExceptionName, MemoryStore, Origin, SwRegistrationId};

fn a() -> Origin {
    Origin::parse("https://a.example").unwrap()
}

/// A store whose commits each wait until the test lets one go.
struct GatedCommits {
    inner: MemoryStore,
    gate: crossbeam_channel::Receiver<()>,
}

impl bgsync::RegistrationStore for GatedCommits {
    fn load_all(&mut self) -> Result<Vec<bgsync::StoredRegistration>, bgsync::StoreError> {
        self.inner.load_all()
    }
    fn commit(&mut self, batch: &[bgsync::StoreOp]) -> Result<(), bgsync::StoreError> {
        let _ = self.gate.recv();
        self.inner.commit(batch)
    }
}

fn engine(store: MemoryStore, gate: crossbeam_channel::Receiver<()>) -> BackgroundSync {
    let host = Arc::new(ScriptedHost::new());
    host.add_registration(SwRegistrationId(1), a());
    BackgroundSync::builder(host, Arc::new(OpenWindows::with([a()])))
        .network(Arc::new(FixedNetwork(false)))
        .store(Box::new(GatedCommits { inner: store, gate }))
        .start()
        .unwrap()
}

#[test]
fn a_burst_of_calls_returns_at_once_and_shares_commits() {
    let store = MemoryStore::new();
    let (open, gate) = crossbeam_channel::unbounded();
    let sync = engine(store.clone(), gate);
    let (tx, answers) = crossbeam_channel::unbounded();
    // The first call's commit waits at the gate: every call returns without waiting for it.
    for i in 0..64 {
        let tx = tx.clone();
        sync.register_then(a(), SwRegistrationId(1), format!("t{i}"), move |r| {
            let thread = std::thread::current().name().map(str::to_owned);
            let _ = tx.send((i, r, thread));
        });
    }
    assert!(
        answers.try_recv().is_err(),
        "nothing is answered before a commit"
    );
    // Let commits through until every call is answered.
    let mut got = Vec::new();
    while got.len() < 64 {
        open.send(()).unwrap();
        while let Ok(a) = answers.recv_timeout(std::time::Duration::from_millis(200)) {
            got.push(a);
        }
    }
    assert!(got.iter().all(|(_, r, _)| r.is_ok()), "{got:?}");
    assert!(
        got.iter().all(|(_, _, t)| t.as_deref() != Some("main")),
        "answered on the Background Sync thread"
    );
    assert_eq!(store.snapshot().len(), 64);
    // The calls made while the first commit waited went into one or two more.
    assert!(
        store.commit_count() <= 3,
        "{} commits for a burst of 64",
        store.commit_count()
    );
    let (tx, tags) = crossbeam_channel::bounded(1);
    sync.get_tags_then(a(), SwRegistrationId(1), move |r| {
        let _ = tx.send(r);
    });
    let tags = tags.recv().unwrap().unwrap();
    assert_eq!(tags.len(), 64);
    assert_eq!(tags[0].to_string(), "t0", "registration order");
    drop(open);
    sync.shutdown();
}

#[test]
fn a_call_the_engine_cannot_answer_any_more_gets_the_shut_down_error() {
    let (open, gate) = crossbeam_channel::unbounded::<()>();
    let sync = engine(MemoryStore::new(), gate);
    sync.shutdown();
    drop(open);
    let (tx, answer) = crossbeam_channel::bounded(1);
    sync.register_then(a(), SwRegistrationId(1), "late", move |r| {
        let _ = tx.send(r);
    });
    let e = answer.recv().unwrap().unwrap_err();
    assert_eq!(e.name, DomExceptionName::UnknownError);
}

#[test]
fn a_callback_that_panics_is_contained() {
    let (open, gate) = crossbeam_channel::unbounded::<()>();
    let sync = engine(MemoryStore::new(), gate);
    open.send(()).unwrap();
    open.send(()).unwrap();
    sync.register_then(a(), SwRegistrationId(1), "x", |_| {
        panic!("the embedder's bug")
    });
    // The engine goes on answering.
    let (tx, answer) = crossbeam_channel::bounded(1);
    sync.register_then(a(), SwRegistrationId(1), "y", move |r| {
        let _ = tx.send(r);
    });
    assert_eq!(answer.recv().unwrap(), Ok(()));
    let (tx, answer) = crossbeam_channel::bounded(1);
    sync.get_tags_then(a(), SwRegistrationId(1), move |r| {
        let _ = tx.send(r);
    });
    let tags = answer.recv().unwrap().unwrap();
    assert_eq!(tags.len(), 2);
    sync.shutdown();
}
