//! Files changed behind the store's back: the lock file deleted, the database or its
//! write-ahead log deleted or replaced while running, the log deleted after a crash, another
//! profile's log dropped in. Nothing acknowledged is lost where the store still holds it, what
//! is lost is reported, and nothing foreign is taken in.

use std::path::Path;

use bgsync_store::{RegistrationStore, StoreError, StoreOp, StoredRegistration};
use bgsync_store_sqlite::{SqliteStore, DB_FILE, LOCK_FILE};
use bgsync_types::{Origin, SwRegistrationId, SyncKind, Tag, Timestamp};
use rusqlite::Connection;

fn record(origin: &str, i: usize) -> StoredRegistration {
    StoredRegistration {
        origin: Origin::parse(origin).unwrap(),
        partition: Default::default(),
        seq: 0,
        sw: SwRegistrationId(1),
        tag: Tag::from(format!("tag-{i}").as_str()),
        kind: SyncKind::OneShot,
        attempts: 0,
        max_attempts: 3,
        next_fire: Timestamp(0),
        periodic_interval: None,
    }
}

fn put(store: &mut SqliteStore, r: &StoredRegistration) {
    store.commit(&[StoreOp::Put(r.clone())]).unwrap();
}

fn wal(dir: &Path) -> std::path::PathBuf {
    dir.join(format!("{DB_FILE}-wal"))
}

fn tags(dir: &Path) -> Vec<Tag> {
    let mut t: Vec<Tag> = SqliteStore::open(dir)
        .unwrap()
        .load_all()
        .unwrap()
        .into_iter()
        .map(|r| r.tag)
        .collect();
    t.sort();
    t
}

fn tag(i: usize) -> Tag {
    Tag::from(format!("tag-{i}").as_str())
}

#[test]
fn with_the_lock_file_deleted_a_second_store_still_cannot_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = SqliteStore::open(dir.path()).unwrap();
    put(&mut first, &record("https://a.example", 1));
    std::fs::remove_file(dir.path().join(LOCK_FILE)).unwrap();
    match SqliteStore::open(dir.path()) {
        Err(StoreError::InUse { .. }) => {}
        other => panic!("a second store opened the same database: {other:?}"),
    }
    put(&mut first, &record("https://a.example", 2));
}

#[test]
fn the_database_deleted_while_running_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = SqliteStore::open(dir.path()).unwrap();
        put(&mut store, &record("https://a.example", 1));
        std::fs::remove_file(dir.path().join(DB_FILE)).unwrap();
        put(&mut store, &record("https://a.example", 2));
        let r = store.take_recovery().expect("the deletion is reported");
        assert!(r.cause.contains("deleted"), "{}", r.cause);
        put(&mut store, &record("https://a.example", 3));
    }
    assert_eq!(tags(dir.path()), [tag(1), tag(2), tag(3)]);
}

#[test]
fn the_database_replaced_while_running_loses_nothing_and_takes_nothing_in() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    {
        let mut foreign = SqliteStore::open(other.path()).unwrap();
        for i in 100..150 {
            put(&mut foreign, &record("https://foreign.example", i));
        }
    }
    {
        let mut store = SqliteStore::open(dir.path()).unwrap();
        put(&mut store, &record("https://a.example", 1));
        std::fs::rename(other.path().join(DB_FILE), dir.path().join(DB_FILE)).unwrap();
        put(&mut store, &record("https://a.example", 2));
        let r = store.take_recovery().expect("the swap is reported");
        assert!(r.cause.contains("replaced"), "{}", r.cause);
        assert!(
            r.moved_to.as_ref().is_some_and(|p| p.exists()),
            "the foreign file is kept aside"
        );
    }
    assert_eq!(tags(dir.path()), [tag(1), tag(2)]);
}

#[test]
fn the_log_deleted_while_running_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = SqliteStore::open(dir.path()).unwrap();
        put(&mut store, &record("https://a.example", 1));
        assert!(wal(dir.path()).exists());
        std::fs::remove_file(wal(dir.path())).unwrap();
        put(&mut store, &record("https://a.example", 2));
        assert!(store.take_recovery().is_some(), "the deletion is reported");
        put(&mut store, &record("https://a.example", 3));
        // Closing writes nothing back: what is acknowledged must already be in the files.
    }
    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM registrations", [], |r| r.get(0))
        .unwrap_or(-1);
    assert_eq!(n, 3, "every acknowledged row is in the files on disk");
}

#[test]
fn the_log_deleted_after_a_crash_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    {
        let mut store = SqliteStore::open(dir.path()).unwrap();
        put(&mut store, &record("https://a.example", 1));
        put(&mut store, &record("https://a.example", 2));
        put(&mut store, &record("https://a.example", 3));
        // The files as a crash now would leave them: the commits are in the log only.
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), crashed.path().join(e.file_name())).unwrap();
        }
    }
    assert!(wal(crashed.path()).exists(), "the log holds the commits");
    std::fs::remove_file(wal(crashed.path())).unwrap();
    let (mut store, recovery) = SqliteStore::open_or_recover(crashed.path()).unwrap();
    let r = recovery.expect("missing acknowledged commits are reported");
    assert!(r.cause.contains("acknowledged"), "{}", r.cause);
    let _ = store.load_all().unwrap();
}

#[test]
fn another_profiles_log_is_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    {
        let mut store = SqliteStore::open(dir.path()).unwrap();
        for i in 0..7 {
            put(&mut store, &record("https://a.example", i));
        }
    }
    Connection::open(dir.path().join(DB_FILE))
        .unwrap()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    {
        let mut foreign = SqliteStore::open(other.path()).unwrap();
        for i in 100..150 {
            put(&mut foreign, &record("https://foreign.example", i));
        }
        // A crash: the log keeps the 50 rows.
        std::mem::forget(foreign);
    }
    std::fs::copy(wal(other.path()), wal(dir.path())).unwrap();
    let (mut store, recovery) = SqliteStore::open_or_recover(dir.path()).unwrap();
    let rows = store.load_all().unwrap();
    assert!(
        rows.iter()
            .all(|r| r.origin == Origin::parse("https://a.example").unwrap()),
        "{} foreign rows taken in",
        rows.iter()
            .filter(|r| r.origin != Origin::parse("https://a.example").unwrap())
            .count()
    );
    assert_eq!(rows.len(), 7);
    let r = recovery.expect("the foreign log is reported");
    assert!(r.cause.contains("another"), "{}", r.cause);
}
