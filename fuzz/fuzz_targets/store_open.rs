//! Opening the durable store on arbitrary bytes, as the engine does (open, recover, the
//! background check): a typed error or a usable store, never a panic, and every write after it
//! succeeds and is there on the next open. The one documented refusal: a file whose schema is
//! newer than this build's stays where it is, unopened.
#![no_main]

use bgsync_store::{RegistrationStore, StoreError, StoreOp, StoredRegistration};
use bgsync_store_sqlite::{SqliteStore, DB_FILE};
use bgsync_types::{Origin, SwRegistrationId, SyncKind, Tag, Timestamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join(DB_FILE), data).expect("write the database file");
    if let Ok(mut store) = SqliteStore::open(dir.path()) {
        let _ = store.load_all();
        // A plain open may miss damage; a commit that meets it recovers and still succeeds.
        store
            .commit(&[StoreOp::DeleteAll])
            .expect("a commit on an opened store succeeds");
    }
    let record = StoredRegistration {
        origin: Origin::parse("https://fuzz.example").expect("origin"),
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
        let (mut store, _) = match SqliteStore::open_or_recover(dir.path()) {
            Ok(opened) => opened,
            // A file whose schema version is newer than this build's is refused and left where
            // it is (docs/storage.md): it may be a newer version's profile, which this build
            // must not rewrite. It is refused again on the next open.
            Err(StoreError::NewerSchema {
                found, supported, ..
            }) if found > supported => {
                assert!(
                    dir.path().join(DB_FILE).exists(),
                    "a newer schema's file is left in place"
                );
                assert!(
                    matches!(
                        SqliteStore::open_or_recover(dir.path()),
                        Err(StoreError::NewerSchema { .. })
                    ),
                    "and refused again"
                );
                return;
            }
            Err(e) => panic!("recovery always opens a store: {e:?}"),
        };
        store.verify().expect("the check recovers what it finds");
        store
            .commit(&[StoreOp::DeleteAll])
            .expect("the recovered store takes writes");
        store
            .commit(&[StoreOp::Put(record.clone())])
            .expect("the recovered store takes writes");
    }
    let mut again = SqliteStore::open(dir.path()).expect("the repaired store opens");
    assert_eq!(
        again.load_all().expect("and reads"),
        vec![record],
        "the write is there"
    );
});
