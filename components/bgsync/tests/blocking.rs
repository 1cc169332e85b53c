//! `register_blocking`: an engine thread that waits for its answer, parked rather than spinning,
//! with one reused answer slot per thread. Every call is answered (durable, refused, or told the
//! engine shut down), and answered Ok exactly when its registration is stored.

use std::sync::Arc;

use bgsync::testing::{FixedNetwork, OpenWindows, ScriptedHost};
use bgsync::{BackgroundSync, DomExceptionName, MemoryStore, Origin, SwRegistrationId};
use bgsync_store::RegistrationStore;
use bgsync_store_sqlite::SqliteStore;

fn a() -> Origin {
    Origin::parse("https://a.example").unwrap()
}

fn builder() -> bgsync::Builder {
    let host = Arc::new(ScriptedHost::new());
    host.add_registration(SwRegistrationId(1), a());
    BackgroundSync::builder(host, Arc::new(OpenWindows::with([a()])))
        .network(Arc::new(FixedNetwork(false)))
}

#[test]
fn many_waiting_threads_are_each_answered_and_every_registration_is_stored() {
    let store = MemoryStore::new();
    let sync = builder().store(Box::new(store.clone())).start().unwrap();
    std::thread::scope(|s| {
        for c in 0..16 {
            let sync = sync.clone();
            s.spawn(move || {
                for i in 0..25 {
                    // The same thread's slot is reused from call to call.
                    sync.register_blocking(a(), SwRegistrationId(1), format!("c{c}-{i}"))
                        .unwrap();
                }
            });
        }
    });
    assert_eq!(store.snapshot().len(), 400);
    sync.shutdown();
}

#[test]
fn a_refusal_comes_back_as_its_exception() {
    let sync = builder()
        .store(Box::new(MemoryStore::new()))
        .start()
        .unwrap();
    let insecure = Origin::parse("http://a.example").unwrap();
    let e = sync
        .register_blocking(insecure, SwRegistrationId(1), "t")
        .unwrap_err();
    assert_eq!(e.name, DomExceptionName::SecurityError, "{e}");
    // The thread's slot is fine for the next call.
    sync.register_blocking(a(), SwRegistrationId(1), "t")
        .unwrap();
    sync.shutdown();
    let e = sync
        .register_blocking(a(), SwRegistrationId(1), "after")
        .unwrap_err();
    assert_eq!(e.name, DomExceptionName::UnknownError, "{e}");
}

#[test]
fn shutting_down_under_waiting_threads_answers_each_with_what_happened() {
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let sync = builder().data_dir(dir.path()).start().unwrap();
        let answered_ok = std::thread::scope(|s| {
            let threads: Vec<_> = (0..32)
                .map(|c| {
                    let sync = sync.clone();
                    s.spawn(move || {
                        let mut ok = Vec::new();
                        for i in 0.. {
                            let tag = format!("r{round}-c{c}-{i}");
                            match sync.register_blocking(a(), SwRegistrationId(1), tag.as_str()) {
                                Ok(()) => ok.push(tag),
                                Err(e) if e.name == DomExceptionName::UnknownError => break,
                                Err(e) => panic!("{e}"),
                            }
                        }
                        ok
                    })
                })
                .collect();
            std::thread::sleep(std::time::Duration::from_millis(20));
            sync.shutdown();
            let mut ok: Vec<String> = threads
                .into_iter()
                .flat_map(|t| t.join().unwrap())
                .collect();
            ok.sort();
            ok
        });
        let mut stored: Vec<String> = SqliteStore::open(dir.path())
            .unwrap()
            .load_all()
            .unwrap()
            .into_iter()
            .map(|r| r.tag.to_string_lossy())
            .collect();
        stored.sort();
        assert!(!stored.is_empty(), "round {round}: nothing was committed");
        assert_eq!(answered_ok, stored, "round {round}");
    }
}
