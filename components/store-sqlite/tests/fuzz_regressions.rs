//! Inputs the coverage-guided fuzzer found, kept as regression tests: opening the store on them
//! gives a typed error or a store, and recovery always gives a working store.

use bgsync_store::{RegistrationStore, StoreOp, StoredRegistration};
use bgsync_store_sqlite::{SqliteStore, DB_FILE};
use bgsync_types::{Origin, SwRegistrationId, SyncKind, Tag, Timestamp};

/// What the store_open fuzz target checks: the engine's open path (open, recover, verify), then
/// every write succeeds and is there on the next open.
fn open_any(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(DB_FILE), bytes).unwrap();
    if let Ok(mut store) = SqliteStore::open(dir.path()) {
        let _ = store.load_all();
        store.commit(&[StoreOp::DeleteAll]).unwrap();
    }
    let record = StoredRegistration {
        origin: Origin::parse("https://fuzz.example").unwrap(),
        partition: Default::default(),
        seq: 0,
        sw: SwRegistrationId(1),
        tag: Tag::from("after"),
        kind: SyncKind::OneShot,
        attempts: 0,
        max_attempts: 3,
        next_fire: Timestamp(0),
        periodic_interval: None,
    };
    {
        let (mut store, _) = SqliteStore::open_or_recover(dir.path()).unwrap();
        store.verify().unwrap();
        store.commit(&[StoreOp::DeleteAll]).unwrap();
        store.commit(&[StoreOp::Put(record.clone())]).unwrap();
    }
    assert_eq!(
        SqliteStore::open(dir.path()).unwrap().load_all().unwrap(),
        vec![record]
    );
}

#[test]
fn store_open_1() {
    open_any(include_bytes!("fuzz-regressions/store_open-1.sqlite"));
}

#[test]
fn store_open_2() {
    open_any(include_bytes!("fuzz-regressions/store_open-2.sqlite"));
}
