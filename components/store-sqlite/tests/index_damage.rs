//! Damage in a secondary index, built by hand: the page is found through the index's root page
//! in `sqlite_master` and overwritten. Reading the table at start-up never touches an index,
//! so such damage used to pass the open and cost later: a version 1 or 2 profile (whose two
//! indexes the migration drops) lost every registration to a recovery that could read only
//! this version's columns, and an index this build never creates answered deletes with the
//! wrong rows, so a cleared origin came back at the next start. Now the rows are kept from the
//! table, and the store takes writes and keeps them.

use std::path::Path;

use bgsync_store::{RegistrationStore, StoreError, StoreOp, StoredRegistration};
use bgsync_store_sqlite::{SqliteStore, DB_FILE};
use bgsync_types::{Origin, SwRegistrationId, SyncKind, Tag, Timestamp};
use rusqlite::Connection;

fn record(origin: usize, i: usize) -> StoredRegistration {
    StoredRegistration {
        origin: Origin::parse(&format!("https://o{origin}.example")).unwrap(),
        partition: Default::default(),
        seq: 0,
        sw: SwRegistrationId(origin as u64 + 1),
        tag: Tag::from(format!("tag-{i}").as_str()),
        kind: SyncKind::OneShot,
        attempts: 1,
        max_attempts: 3,
        next_fire: Timestamp(1_000 + i as u64),
        periodic_interval: None,
    }
}

/// 60 registrations over three origins (20 each): small enough that an index on the origin
/// is one page.
fn registrations() -> Vec<StoredRegistration> {
    (0..60).map(|i| record(i % 3, i)).collect()
}

fn sorted(mut v: Vec<StoredRegistration>) -> Vec<StoredRegistration> {
    v.sort_by_key(|r| r.key());
    v
}

/// The byte range of the root page of the index `name`, as `sqlite_master` records it.
fn index_root_page(path: &Path, name: &str) -> std::ops::Range<usize> {
    let conn = Connection::open(path).unwrap();
    let (root, size): (i64, i64) = conn
        .query_row(
            "SELECT rootpage, (SELECT page_size FROM pragma_page_size) FROM sqlite_master
             WHERE type = 'index' AND name = ?1",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let (root, size) = (root as usize, size as usize);
    (root - 1) * size..root * size
}

fn integrity(path: &Path) -> String {
    let conn = Connection::open(path).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

/// Writes, a delete by origin and a restart on the store `open_or_recover` gives: every write
/// succeeds and the next open holds exactly what the store was told to hold.
fn takes_writes_and_keeps_them(dir: &Path, mut have: Vec<StoredRegistration>) {
    let (mut store, _) = SqliteStore::open_or_recover(dir).unwrap();
    assert_eq!(store.verify().unwrap().map(|r| r.cause), None);
    let new = record(0, 1_000);
    store.commit(&[StoreOp::Put(new.clone())]).unwrap();
    have.push(new);
    let cleared = record(1, 0).origin;
    store
        .commit(&[StoreOp::DeleteOrigin(cleared.clone())])
        .unwrap();
    have.retain(|r| r.origin != cleared);
    assert_eq!(store.take_recovery().map(|r| r.cause), None);
    drop(store);
    assert_eq!(integrity(&dir.join(DB_FILE)), "ok");
    let mut again = SqliteStore::open(dir).unwrap();
    assert_eq!(sorted(again.load_all().unwrap()), sorted(have));
}

#[test]
fn a_damaged_index_of_a_version_1_database_costs_no_registration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    {
        // Schema version 1 as an old build wrote it (see `a_version_1_database_written_by_hand_
        // still_loads`), with its two indexes; tags in UTF-16BE.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL);
             INSERT INTO schema_version VALUES (1);
             CREATE TABLE registrations (sw INTEGER NOT NULL, kind INTEGER NOT NULL,
               tag BLOB NOT NULL, origin TEXT NOT NULL, attempts INTEGER NOT NULL,
               max_attempts INTEGER NOT NULL, next_fire INTEGER NOT NULL,
               periodic_interval_ms INTEGER, PRIMARY KEY (sw, kind, tag)) WITHOUT ROWID;
             CREATE INDEX registrations_by_origin ON registrations (origin);
             CREATE INDEX registrations_by_next_fire ON registrations (next_fire);",
        )
        .unwrap();
        for r in registrations() {
            let utf16: Vec<u8> = r
                .tag
                .as_utf16()
                .iter()
                .flat_map(|u| u.to_be_bytes())
                .collect();
            conn.execute(
                "INSERT INTO registrations VALUES (?1, 0, ?2, ?3, ?4, ?5, ?6, NULL)",
                rusqlite::params![
                    r.sw.0 as i64,
                    utf16,
                    r.origin.serialize(),
                    r.attempts,
                    r.max_attempts,
                    r.next_fire.0 as i64
                ],
            )
            .unwrap();
        }
    }
    let page = index_root_page(&path, "registrations_by_origin");
    let mut bytes = std::fs::read(&path).unwrap();
    for (i, b) in bytes[page].iter_mut().enumerate() {
        *b = (i * 31 % 251) as u8;
    }
    std::fs::write(&path, &bytes).unwrap();

    // The migration meets the damage (dropping the old table frees the index's pages).
    let err = SqliteStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    let (mut store, recovery) = SqliteStore::open_or_recover(dir.path()).unwrap();
    let recovery = recovery.expect("the damage is reported");
    // The table itself is whole: every registration is read from it, in its version's format.
    assert_eq!(sorted(recovery.kept.clone()), sorted(registrations()));
    assert_eq!((recovery.dropped, recovery.truncated), (0, false));
    assert_eq!(sorted(store.load_all().unwrap()), sorted(registrations()));
    drop(store);
    takes_writes_and_keeps_them(dir.path(), registrations());
}

#[test]
fn an_index_or_trigger_this_build_never_creates_is_damage_recovered_from_the_table() {
    // Each is added to a healthy store of this version: a damaged index (one origin's entries
    // changed, so the page is well-formed but the index no longer matches the table), and a
    // trigger that silently ignores deletes.
    let damaged_index = |path: &Path| {
        Connection::open(path)
            .unwrap()
            .execute_batch("CREATE INDEX by_origin ON registrations (origin)")
            .unwrap();
        let page = index_root_page(path, "by_origin");
        let mut bytes = std::fs::read(path).unwrap();
        let mut changed = 0;
        for at in page.start..page.end - 10 {
            if &bytes[at..at + 10] == b"o1.example" {
                bytes[at + 4] = b'y';
                changed += 1;
            }
        }
        assert_eq!(
            changed, 20,
            "each of the origin's rows has its entry on the root page"
        );
        std::fs::write(path, &bytes).unwrap();
    };
    let ignoring_trigger = |path: &Path| {
        Connection::open(path)
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER keep BEFORE DELETE ON registrations
                 BEGIN SELECT RAISE(IGNORE); END",
            )
            .unwrap();
    };
    for (what, damage) in [
        ("a damaged index", &damaged_index as &dyn Fn(&Path)),
        ("a trigger", &ignoring_trigger),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        {
            let mut store = SqliteStore::open(dir.path()).unwrap();
            let puts: Vec<StoreOp> = registrations().into_iter().map(StoreOp::Put).collect();
            store.commit(&puts).unwrap();
        }
        damage(&path);
        {
            // Checkpointed, so that the damage is in the file the store opens.
            let conn = Connection::open(&path).unwrap();
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .unwrap();
        }

        let err = SqliteStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{what}: {err}");
        let (mut store, recovery) = SqliteStore::open_or_recover(dir.path()).unwrap();
        let recovery = recovery.unwrap_or_else(|| panic!("{what} is found at the open"));
        assert_eq!(
            sorted(recovery.kept.clone()),
            sorted(registrations()),
            "{what}"
        );
        assert_eq!(sorted(store.load_all().unwrap()), sorted(registrations()));
        drop(store);
        takes_writes_and_keeps_them(dir.path(), registrations());
        let objects: i64 = Connection::open(&path)
            .unwrap()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type != 'table'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            objects, 0,
            "{what}: the fresh file has only this build's tables"
        );
    }
}
