//! Opening the durable store on arbitrary bytes: a typed error or a usable store, never a panic,
//! and recovery always leaves a working, empty store.
#![no_main]

use bgsync_store::{RegistrationStore, SqliteStore, StoreOp, DB_FILE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join(DB_FILE), data).expect("write the database file");
    match SqliteStore::open(dir.path()) {
        Ok(mut store) => {
            let _ = store.load_all();
            let _ = store.commit(&[StoreOp::DeleteAll]);
        }
        Err(_) => {
            let (mut store, _) = SqliteStore::open_or_recover(dir.path()).expect("recovery always opens a store");
            store.commit(&[StoreOp::DeleteAll]).expect("the recovered store takes writes");
        }
    }
});
