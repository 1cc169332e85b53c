//! Inputs the coverage-guided fuzzer found, kept as regression tests: every file in
//! `tests/fuzz-regressions/` (a crash from `fuzz/artifacts/store_open/` is copied there as
//! it is) goes through the store_open fuzz target's sequence: opening the store on it gives a
//! typed error or a store, recovery always gives a working store (or, for a file of a newer
//! schema, the documented refusal, the file left in place), and every write after it
//! succeeds and is there on the next open.

use std::path::{Path, PathBuf};

use bgsync_store::{RegistrationStore, StoreError, StoreOp, StoredRegistration};
use bgsync_store_sqlite::{SqliteStore, DB_FILE};
use bgsync_types::{Origin, SwRegistrationId, SyncKind, Tag, Timestamp};

/// What fuzz/fuzz_targets/store_open.rs checks: the engine's open path (open, recover, verify),
/// then every write succeeds and is there on the next open.
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
        let (mut store, _) = match SqliteStore::open_or_recover(dir.path()) {
            Ok(opened) => opened,
            // The documented refusal: a newer schema's file is left in place, unopened, and
            // refused again on the next open (docs/storage.md).
            Err(StoreError::NewerSchema {
                found, supported, ..
            }) if found > supported => {
                assert!(dir.path().join(DB_FILE).exists());
                assert!(matches!(
                    SqliteStore::open_or_recover(dir.path()),
                    Err(StoreError::NewerSchema { .. })
                ));
                return;
            }
            Err(e) => panic!("recovery always opens a store: {e:?}"),
        };
        store.verify().unwrap();
        store.commit(&[StoreOp::DeleteAll]).unwrap();
        store.commit(&[StoreOp::Put(record.clone())]).unwrap();
    }
    assert_eq!(
        SqliteStore::open(dir.path()).unwrap().load_all().unwrap(),
        vec![record]
    );
}

fn regressions() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_store_open_regression_opens_to_a_working_store() {
    let files = regressions();
    assert!(!files.is_empty(), "tests/fuzz-regressions/ holds no input");
    let failed: Vec<String> = files
        .iter()
        .filter(|f| {
            let bytes = std::fs::read(f).unwrap();
            std::panic::catch_unwind(|| open_any(&bytes)).is_err()
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} inputs failed (each one's panic is above):\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}
