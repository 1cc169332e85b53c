//! Inputs the coverage-guided fuzzer found, kept as regression tests: opening the store on them
//! gives a typed error or a store, and recovery always gives a working store.

use bgsync_store::{RegistrationStore, SqliteStore, StoreOp, DB_FILE};

fn open_any(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(DB_FILE), bytes).unwrap();
    match SqliteStore::open(dir.path()) {
        Ok(mut store) => {
            let _ = store.load_all();
            let _ = store.commit(&[StoreOp::DeleteAll]);
        }
        Err(_) => {
            let (mut store, _) = SqliteStore::open_or_recover(dir.path()).unwrap();
            store.commit(&[StoreOp::DeleteAll]).unwrap();
        }
    }
}

#[test]
fn store_open_1() {
    open_any(include_bytes!("fuzz-regressions/store_open-1.sqlite"));
}

#[test]
fn store_open_2() {
    open_any(include_bytes!("fuzz-regressions/store_open-2.sqlite"));
}
