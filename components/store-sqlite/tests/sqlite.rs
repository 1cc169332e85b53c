//! The durable backend: round trips, atomic batches, and every failure the storage issue names.

use std::path::Path;
use std::time::Duration;

use bgsync_store::{RegistrationStore, StoreError, StoreOp, StoredRegistration};
use bgsync_store_sqlite::{
    decode_row, pack_fields, row_checksum, unpack_fields, Fields, RawRow, SqliteStore, DB_FILE,
    SCHEMA_VERSION,
};
use bgsync_types::{Origin, SwRegistrationId, SyncKind, Tag, Timestamp};

fn record(origin: &str, sw: u64, tag: Tag) -> StoredRegistration {
    StoredRegistration {
        origin: Origin::parse(origin).unwrap(),
        partition: Default::default(),
        seq: 0,
        sw: SwRegistrationId(sw),
        tag,
        kind: SyncKind::OneShot,
        attempts: 0,
        max_attempts: 3,
        next_fire: Timestamp(1_700_000_000_000),
        periodic_interval: None,
    }
}

fn sorted(mut v: Vec<StoredRegistration>) -> Vec<StoredRegistration> {
    v.sort_by_key(|r| r.key());
    v
}

fn reopen(dir: &Path) -> Vec<StoredRegistration> {
    sorted(SqliteStore::open(dir).unwrap().load_all().unwrap())
}

#[test]
fn rows_round_trip_across_reopen_with_every_field_intact() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = vec![
        record("https://a.example", 1, Tag::from("send-mail")),
        record("https://a.example", 1, Tag::from_utf16(vec![0xD800])),
        record("https://a.example", 1, Tag::from_utf16(vec![0xDC00])),
        record("http://localhost:8080", u64::MAX, Tag::from("📧\0x")),
        record("file:///", 2, Tag::from("")),
    ];
    rows[1].attempts = 2;
    rows[1].next_fire = Timestamp(123);
    let mut periodic = record("https://a.example", 1, Tag::from("send-mail"));
    periodic.kind = SyncKind::Periodic;
    periodic.periodic_interval = Some(Duration::from_secs(12 * 3600));
    rows.push(periodic);
    {
        let mut store = SqliteStore::open(dir.path()).unwrap();
        assert!(store.load_all().unwrap().is_empty());
        let ops: Vec<StoreOp> = rows.iter().cloned().map(StoreOp::Put).collect();
        store.commit(&ops).unwrap();
    }
    assert_eq!(reopen(dir.path()), sorted(rows));
}

#[test]
fn deletes_by_key_service_worker_origin_and_all() {
    let dir = tempfile::tempdir().unwrap();
    let a1 = record("https://a.example", 1, Tag::from("x"));
    let a2 = record("https://a.example", 2, Tag::from("y"));
    let b3 = record("https://b.example", 3, Tag::from("x"));
    let b4 = record("https://b.example", 4, Tag::from("z"));
    let mut store = SqliteStore::open(dir.path()).unwrap();
    store
        .commit(&[a1.clone(), a2.clone(), b3.clone(), b4.clone()].map(StoreOp::Put))
        .unwrap();
    store.commit(&[StoreOp::Delete(b4.key())]).unwrap();
    store
        .commit(&[StoreOp::DeleteServiceWorker(SwRegistrationId(1))])
        .unwrap();
    assert_eq!(store.count().unwrap(), 2);
    store
        .commit(&[StoreOp::DeleteOrigin(b3.origin.clone())])
        .unwrap();
    drop(store);
    assert_eq!(reopen(dir.path()), vec![a2]);
    let mut store = SqliteStore::open(dir.path()).unwrap();
    store.commit(&[StoreOp::DeleteAll]).unwrap();
    drop(store);
    assert!(reopen(dir.path()).is_empty());
}

#[test]
fn a_second_opener_is_told_the_store_is_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let first = SqliteStore::open(dir.path()).unwrap();
    let err = SqliteStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::InUse { .. }), "{err}");
    assert!(err.to_string().contains("already in use"), "{err}");
    let err = SqliteStore::open_or_recover(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::InUse { .. }), "{err}");
    drop(first);
    SqliteStore::open(dir.path()).unwrap();
}

fn filled(dir: &Path, n: u64) -> Vec<StoredRegistration> {
    let rows: Vec<StoredRegistration> = (0..n)
        .map(|i| {
            record(
                "https://a.example",
                i,
                Tag::from(format!("tag-{i:06}-{}", "p".repeat(64))),
            )
        })
        .collect();
    {
        let mut store = SqliteStore::open(dir).unwrap();
        store
            .commit(&rows.iter().cloned().map(StoreOp::Put).collect::<Vec<_>>())
            .unwrap();
    }
    // Closing leaves the log in place; move its pages into the main file.
    rusqlite::Connection::open(dir.join(DB_FILE))
        .unwrap()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    rows
}

#[test]
fn a_file_that_is_not_a_database_is_a_typed_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(DB_FILE),
        b"this is not an SQLite database, just text. ".repeat(200),
    )
    .unwrap();
    let err = SqliteStore::open(dir.path()).unwrap_err();
    let StoreError::Corrupt { path, cause } = &err else {
        panic!("{err}")
    };
    assert_eq!(path, &dir.path().join(DB_FILE));
    assert!(!cause.is_empty());
    assert!(err.to_string().contains(DB_FILE), "{err}");
}

#[test]
fn a_truncated_database_is_corrupt_and_recovery_moves_it_aside() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 2_000);
    let db = dir.path().join(DB_FILE);
    let len = std::fs::metadata(&db).unwrap().len();
    assert!(
        len > 100_000,
        "the rows must be in the main file, not only the WAL ({len} bytes)"
    );
    let file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    let damaged = std::fs::read(&db).unwrap();

    let err = SqliteStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    // Refusing changed nothing on disk.
    assert_eq!(std::fs::read(&db).unwrap(), damaged);

    let (mut store, recovery) = SqliteStore::open_or_recover(dir.path()).unwrap();
    let recovery = recovery.expect("recovered");
    let moved_to = recovery.moved_to.clone().expect("moved aside");
    assert!(moved_to
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("background-sync.sqlite.corrupt-"));
    assert_eq!(
        std::fs::read(&moved_to).unwrap(),
        damaged,
        "the damaged file is kept"
    );
    assert!(store.load_all().unwrap().is_empty());
    let r = record("https://a.example", 1, Tag::from("after"));
    store.commit(&[StoreOp::Put(r.clone())]).unwrap();
    drop(store);
    assert_eq!(reopen(dir.path()), vec![r]);
}

#[test]
fn a_row_that_does_not_decode_is_corruption_naming_the_row() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 3);
    {
        let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.execute(
            "UPDATE registrations SET origin = 'data:,x' WHERE sw = 1",
            [],
        )
        .unwrap();
    }
    let err = SqliteStore::open(dir.path()).unwrap_err();
    let StoreError::Corrupt { cause, .. } = &err else {
        panic!("{err}")
    };
    assert!(cause.contains("service worker registration 1"), "{cause}");
}

#[test]
fn a_column_of_the_wrong_type_is_corruption_naming_the_column() {
    // The start-up read borrows the tag, origin and partition from SQLite's row; a column of
    // another type than the one written is damage, as it was when they were copied.
    for (set, column) in [
        ("tag = CAST(tag AS TEXT)", "tag"),
        ("origin = CAST(origin AS BLOB)", "origin"),
        ("partition = x'07'", "partition"),
        ("fields = 7", "fields"),
        // Bytes that are not a packed row: too short, and a number longer than it needs.
        ("fields = x'0102'", "fields"),
        ("fields = x'00000000000000008000060000'", "fields"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path(), 3);
        {
            let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
            conn.execute(&format!("UPDATE registrations SET {set} WHERE sw = 2"), [])
                .unwrap();
        }
        let err = SqliteStore::open(dir.path()).unwrap_err();
        let StoreError::Corrupt { cause, .. } = &err else {
            panic!("{set}: {err}")
        };
        assert!(cause.contains(column), "{set}: {cause}");
    }
}

#[test]
fn rows_whose_origins_alternate_are_read_back_each_with_its_own_origin() {
    // Rows come back in key order; each takes the origin of the row before it when the text
    // is the same, and an origin seen earlier otherwise.
    let dir = tempfile::tempdir().unwrap();
    let origins = [
        "https://a.example",
        "https://b.example",
        "http://localhost:8080",
    ];
    let rows: Vec<StoredRegistration> = (1..=12u64)
        .flat_map(|sw| {
            let origin = origins[(sw as usize * 7) % 3];
            (0..3).map(move |t| record(origin, sw, Tag::from(format!("t{t}").as_str())))
        })
        .collect();
    {
        let mut store = SqliteStore::open(dir.path()).unwrap();
        let ops: Vec<StoreOp> = rows.iter().cloned().map(StoreOp::Put).collect();
        store.commit(&ops).unwrap();
    }
    assert_eq!(reopen(dir.path()), sorted(rows));
}

#[test]
fn a_full_disk_fails_the_batch_keeps_earlier_rows_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let kept = filled(dir.path(), 10);
    let mut store = SqliteStore::open(dir.path()).unwrap();
    store.simulate_disk_full(true).unwrap();
    let big: Vec<StoreOp> = (100..2_100)
        .map(|i| StoreOp::Put(record("https://b.example", i, Tag::from("x".repeat(200)))))
        .collect();
    let err = store.commit(&big).unwrap_err();
    let StoreError::WriteFailed { ops, cause } = &err else {
        panic!("{err}")
    };
    assert_eq!(*ops, 2_000);
    assert!(cause.contains("full"), "{cause}");
    // Nothing of the batch landed, everything before is there, and reads still work.
    assert_eq!(store.count().unwrap(), 10);
    assert_eq!(sorted(store.load_all().unwrap()), sorted(kept.clone()));
    store.simulate_disk_full(false).unwrap();
    store.commit(&big).unwrap();
    assert_eq!(store.count().unwrap(), 2_010);
}

#[test]
fn a_read_only_file_system_fails_writes_and_keeps_serving_reads() {
    let dir = tempfile::tempdir().unwrap();
    let kept = filled(dir.path(), 5);
    let mut store = SqliteStore::open(dir.path()).unwrap();
    store.simulate_read_only(true).unwrap();
    let err = store
        .commit(&[
            StoreOp::Delete(kept[0].key()),
            StoreOp::Put(record("https://a.example", 9, Tag::from("n"))),
        ])
        .unwrap_err();
    assert!(
        matches!(err, StoreError::WriteFailed { ops: 2, .. }),
        "{err}"
    );
    assert_eq!(store.count().unwrap(), 5);
    store.simulate_read_only(false).unwrap();
    drop(store);
    assert_eq!(reopen(dir.path()), sorted(kept));
}

#[test]
fn a_newer_schema_is_refused_not_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 1);
    {
        let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.execute("UPDATE schema_version SET version = 99", [])
            .unwrap();
    }
    let err = SqliteStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NewerSchema {
                found: 99,
                supported: SCHEMA_VERSION,
                ..
            }
        ),
        "{err}"
    );
    // Not corruption: recovery must not move a newer build's data aside.
    assert!(SqliteStore::open_or_recover(dir.path()).is_err());
    assert!(dir.path().join(DB_FILE).exists());
}

#[test]
fn a_version_1_database_written_by_hand_still_loads() {
    // The on-disk format of schema version 1, spelled out independently of the migration code,
    // so that a change to the first migration cannot silently orphan existing profiles.
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL);
             INSERT INTO schema_version VALUES (1);
             CREATE TABLE registrations (sw INTEGER NOT NULL, kind INTEGER NOT NULL,
               tag BLOB NOT NULL, origin TEXT NOT NULL, attempts INTEGER NOT NULL,
               max_attempts INTEGER NOT NULL, next_fire INTEGER NOT NULL,
               periodic_interval_ms INTEGER, PRIMARY KEY (sw, kind, tag)) WITHOUT ROWID;
             INSERT INTO registrations VALUES (7, 0, X'D800', 'https://a.example', 1, 3, 42, NULL);",
        )
        .unwrap();
    }
    let rows = reopen(dir.path());
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].tag, Tag::from_utf16(vec![0xD800]));
    assert_eq!(rows[0].attempts, 1);
    assert_eq!(rows[0].next_fire, Timestamp(42));
}

#[test]
fn a_version_6_database_written_by_hand_loads_with_its_integers_packed() {
    // Schema 6 kept each integer in a column of its own; migration 6 → 7 packs them into
    // `fields`, keeping every value and checksum.
    let rows = [
        RawRow {
            sw: 7,
            kind: 0,
            tag: b"send-mail".to_vec(),
            origin: "https://a.example".into(),
            attempts: 2,
            max_attempts: 3,
            next_fire: 1_764_000_000_000,
            periodic_interval_ms: None,
            checksum: 0,
            partition: String::new(),
            seq: 12,
        },
        RawRow {
            sw: 8,
            kind: 1,
            tag: vec![0xED, 0xA0, 0x80],
            origin: "http://localhost:8080".into(),
            attempts: 0,
            max_attempts: 1,
            next_fire: 5,
            periodic_interval_ms: Some(43_200_000),
            checksum: 0,
            partition: "https://top.example".into(),
            seq: 0,
        },
    ]
    .map(|r| RawRow {
        checksum: row_checksum(&r),
        ..r
    });
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL);
             INSERT INTO schema_version VALUES (6);
             CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE registrations (sw INTEGER NOT NULL, kind INTEGER NOT NULL,
               tag BLOB NOT NULL, origin TEXT NOT NULL, attempts INTEGER NOT NULL,
               max_attempts INTEGER NOT NULL, next_fire INTEGER NOT NULL,
               periodic_interval_ms INTEGER, checksum INTEGER NOT NULL,
               partition TEXT NOT NULL DEFAULT '', seq INTEGER NOT NULL DEFAULT 0,
               PRIMARY KEY (sw, kind, tag)) WITHOUT ROWID;
             CREATE TABLE service_worker_ids (key TEXT NOT NULL, scope TEXT NOT NULL,
               id INTEGER NOT NULL, PRIMARY KEY (key, scope)) WITHOUT ROWID;",
        )
        .unwrap();
        for r in &rows {
            conn.execute(
                "INSERT INTO registrations VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                rusqlite::params![
                    r.sw,
                    r.kind,
                    r.tag,
                    r.origin,
                    r.attempts,
                    r.max_attempts,
                    r.next_fire,
                    r.periodic_interval_ms,
                    r.checksum,
                    r.partition,
                    r.seq
                ],
            )
            .unwrap();
        }
    }
    let mut loaded = reopen(dir.path());
    loaded.sort_by_key(|r| r.sw);
    let want: Vec<StoredRegistration> = rows
        .iter()
        .map(|r| decode_row(r.clone()).unwrap())
        .collect();
    assert_eq!(loaded, want);
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('registrations')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        columns,
        ["sw", "kind", "tag", "origin", "partition", "fields"]
    );
    let version: i64 = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let stored: Vec<u8> = conn
        .query_row("SELECT fields FROM registrations WHERE sw = 7", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(stored, pack_fields(&rows[0].fields()));
}

#[test]
fn packed_fields_round_trip_and_nothing_else_unpacks() {
    let base = RawRow {
        checksum: -1,
        ..one_shot_row()
    };
    let edges = [
        0,
        1,
        -1,
        63,
        64,
        -64,
        -65,
        127,
        128,
        i64::MAX,
        i64::MIN,
        1 << 40,
    ];
    for v in edges {
        for interval in [None, Some(v)] {
            let f = Fields {
                attempts: v,
                max_attempts: v.wrapping_add(1),
                next_fire: v,
                periodic_interval_ms: interval,
                checksum: v.wrapping_mul(31),
                seq: v.wrapping_sub(1),
            };
            assert_eq!(unpack_fields(&pack_fields(&f)), Ok(f));
        }
    }
    // A row of small numbers takes the checksum's 8 bytes and one byte a number.
    let small = pack_fields(&base.fields());
    assert_eq!(small.len(), 12);
    assert!(unpack_fields(&small[..7]).unwrap_err().contains("checksum"));
    assert!(unpack_fields(&small[..11]).unwrap_err().contains("seq"));
    let mut overlong = small.clone();
    *overlong.last_mut().unwrap() |= 0x80;
    overlong.push(0);
    assert!(unpack_fields(&overlong)
        .unwrap_err()
        .contains("more bytes than it needs"));
    let mut wide = small[..8].to_vec();
    wide.extend([0xFF; 9]);
    wide.push(0x02);
    assert!(unpack_fields(&wide)
        .unwrap_err()
        .contains("does not fit in 64 bits"));
    let mut trailing = pack_fields(&Fields {
        periodic_interval_ms: Some(5),
        ..base.fields()
    });
    trailing.push(1);
    assert!(unpack_fields(&trailing)
        .unwrap_err()
        .contains("after the last field"));
}

#[test]
fn the_lookups_use_indexes() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 1);
    drop(SqliteStore::open(dir.path()).unwrap());
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    let plan = |sql: &str| -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    };
    // By key and by service worker registration: the primary key. Clearing an origin, which
    // is rare, scans the table: an index on the origin would carry the key, tag and all.
    for (sql, how) in [
        (
            "SELECT * FROM registrations WHERE sw = 1",
            "USING PRIMARY KEY",
        ),
        (
            "DELETE FROM registrations WHERE sw = 1 AND kind = 0 AND tag = x'61'",
            "USING PRIMARY KEY",
        ),
        (
            "DELETE FROM registrations WHERE origin = 'https://a.example'",
            "SCAN registrations",
        ),
    ] {
        let p = plan(sql);
        assert!(p.contains(how), "{sql}: {p}");
    }
    let indexes: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'registrations'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexes, 0, "no secondary index: the table is its key");
}

/// A one-shot row of a default partition, its checksum 0 (not sealed).
fn one_shot_row() -> RawRow {
    RawRow {
        sw: 1,
        kind: 0,
        tag: b"a".to_vec(),
        origin: "https://a.example".into(),
        attempts: 0,
        max_attempts: 3,
        next_fire: 0,
        periodic_interval_ms: None,
        checksum: 0,
        partition: String::new(),
        seq: 0,
    }
}

#[test]
fn decode_row_refuses_what_this_build_never_writes() {
    // Each row carries the checksum of its fields, so that each refusal below is for the
    // field, not the checksum.
    let sealed = |r: RawRow| RawRow {
        checksum: row_checksum(&r),
        ..r
    };
    let good = sealed(one_shot_row());
    assert_eq!(decode_row(good.clone()).unwrap().tag, Tag::from("a"));
    let partitioned = sealed(RawRow {
        partition: "https://top.example".into(),
        ..good.clone()
    });
    assert_eq!(
        decode_row(partitioned).unwrap().partition.as_str(),
        "https://top.example"
    );
    let lone = sealed(RawRow {
        tag: vec![0xED, 0xA0, 0x80],
        ..good.clone()
    });
    assert_eq!(
        decode_row(lone).unwrap().tag,
        Tag::from_utf16(vec![0xD800]),
        "a lone surrogate is stored as WTF-8"
    );
    let bad = [
        RawRow {
            checksum: good.checksum ^ 1,
            ..good.clone()
        },
        RawRow {
            attempts: 1,
            ..good.clone()
        },
        // A partition changed after the row was written.
        RawRow {
            partition: "https://top.example".into(),
            ..good.clone()
        },
        // So is a list place.
        RawRow {
            seq: 7,
            ..good.clone()
        },
        sealed(RawRow {
            seq: -1,
            ..good.clone()
        }),
        sealed(RawRow {
            kind: 2,
            ..good.clone()
        }),
        sealed(RawRow {
            tag: vec![0xFF],
            ..good.clone()
        }),
        // A surrogate pair written as two halves, which WTF-8 never does.
        sealed(RawRow {
            tag: vec![0xED, 0xA0, 0xBD, 0xED, 0xB3, 0xA7],
            ..good.clone()
        }),
        sealed(RawRow {
            origin: "data:,x".into(),
            ..good.clone()
        }),
        sealed(RawRow {
            origin: "https://A.example/".into(),
            ..good.clone()
        }),
        sealed(RawRow {
            attempts: -1,
            ..good.clone()
        }),
        sealed(RawRow {
            max_attempts: 0,
            ..good.clone()
        }),
        sealed(RawRow {
            next_fire: -5,
            ..good.clone()
        }),
        sealed(RawRow {
            periodic_interval_ms: Some(5),
            ..good.clone()
        }),
        sealed(RawRow {
            kind: 1,
            ..good.clone()
        }),
    ];
    for row in bad {
        assert!(decode_row(row.clone()).is_err(), "{row:?}");
    }
}

#[test]
fn a_schema_that_does_not_match_its_version_is_corruption() {
    for damage in [
        "DROP TABLE schema_version; CREATE TABLE schema_version (version); INSERT INTO schema_version VALUES (NULL);",
        "DROP TABLE registrations",
        "ALTER TABLE registrations DROP COLUMN fields",
    ] {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path(), 2);
        {
            let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
            conn.execute_batch(damage).unwrap();
        }
        let err = SqliteStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{damage}: {err}");
        let (mut store, recovery) = SqliteStore::open_or_recover(dir.path()).unwrap();
        assert!(recovery.is_some(), "{damage}");
        store.commit(&[StoreOp::DeleteAll]).unwrap();
    }
}

/// A tag is stored once, in UTF-8 where it is UTF-16 without lone surrogates: 200 tags of
/// 10,240 bytes take about 2 MB on disk, not three copies of twice that.
#[test]
fn a_long_tag_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let n = 200;
    {
        let mut store = SqliteStore::open(dir.path()).unwrap();
        let ops: Vec<StoreOp> = (0..n)
            .map(|i| {
                StoreOp::Put(record(
                    "https://a.example",
                    1,
                    Tag::from(format!("{i:05}{}", "x".repeat(10_235))),
                ))
            })
            .collect();
        store.commit(&ops).unwrap();
    }
    rusqlite::Connection::open(dir.path().join(DB_FILE))
        .unwrap()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let bytes = std::fs::metadata(dir.path().join(DB_FILE)).unwrap().len();
    let per_registration = bytes / n;
    assert!(
        per_registration < 10_240 * 13 / 10,
        "{per_registration} bytes per registration for a 10,240-byte tag"
    );
    assert_eq!(reopen(dir.path()).len(), n as usize);
}

/// The workspace builds SQLite to sync with `fdatasync` (`.cargo/config.toml`, docs/storage.md,
/// "Syncing"): the flag libsqlite3-sys's build script reads was in the build's environment.
/// (`strace -f -c -e trace=fsync,fdatasync target/release/xtask bench-one latency 300` shows
/// the calls themselves: 2,311 `fdatasync`, no `fsync`.)
#[test]
fn sqlite_is_built_to_sync_with_fdatasync() {
    let flags = option_env!("LIBSQLITE3_FLAGS");
    assert!(
        flags.is_some_and(|f| f.split_whitespace().any(|f| f == "-DHAVE_FDATASYNC=1")),
        "LIBSQLITE3_FLAGS at build time: {flags:?}"
    );
}

#[test]
fn commits_are_timed_when_asked_and_a_failed_one_is_not_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let before = [StoreOp::Put(record(
        "https://a.example",
        1,
        Tag::from("before"),
    ))];
    store.commit(&before).unwrap();
    let phases = std::sync::Arc::new(bgsync_store_sqlite::CommitPhases::default());
    assert_eq!(phases.means(), (0, Duration::ZERO, Duration::ZERO));
    store.time_commits(phases.clone());
    for i in 0..3 {
        let ops: Vec<StoreOp> = (0..64)
            .map(|c| {
                StoreOp::Put(record(
                    "https://a.example",
                    1,
                    Tag::from(format!("{i}-{c}")),
                ))
            })
            .collect();
        store.commit(&ops).unwrap();
    }
    let (commits, statements, commit) = phases.means();
    assert_eq!(commits, 3);
    // 64 rows take SQLite some time to apply, and a commit to the log some more.
    assert!(statements > Duration::ZERO && commit > Duration::ZERO);
    store.simulate_read_only(true).unwrap();
    assert!(store.commit(&before).is_err());
    assert_eq!(phases.means().0, 3);
}
