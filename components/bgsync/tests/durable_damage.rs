//! A damaged database through the facade: start-up keeps what can be read and says so (a start
//! report, DevTools log lines, the recoveries list), and damage that only the full check sees
//! is repaired in the background, so that clearing an origin really clears it.

use std::path::Path;
use std::sync::Arc;

use bgsync::testing::{FixedNetwork, OpenWindows, ScriptedHost};
use bgsync::{BackgroundSync, LogEvent, VirtualClock};
use bgsync_store::{RegistrationStore, StoreOp, StoredRegistration};
use bgsync_store_sqlite::{
    pack_fields, row_checksum, unpack_fields, Fields, RawRow, SqliteStore, DB_FILE,
};
use bgsync_types::{Origin, SwRegistrationId, SyncKind, Tag, Timestamp};
use rusqlite::Connection;

fn a() -> Origin {
    Origin::parse("https://a.example").unwrap()
}

fn b() -> Origin {
    Origin::parse("https://b.example").unwrap()
}

fn start(dir: &Path) -> BackgroundSync {
    let host = Arc::new(ScriptedHost::new());
    host.add_registration(SwRegistrationId(1), a());
    host.add_registration(SwRegistrationId(2), b());
    BackgroundSync::builder(host, Arc::new(OpenWindows::with([a(), b()])))
        .network(Arc::new(FixedNetwork(false)))
        .clock(Arc::new(VirtualClock::new(Timestamp(1_000))))
        .data_dir(dir)
        .start()
        .unwrap()
}

async fn tags(sync: &BackgroundSync, origin: &Origin, sw: u64) -> Vec<Tag> {
    let mut t = sync.get_tags(origin, SwRegistrationId(sw)).await.unwrap();
    t.sort();
    t
}

#[tokio::test]
async fn one_undecodable_row_costs_that_row_and_start_up_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let sync = start(dir.path());
    for t in ["a1", "a2"] {
        sync.register(&a(), SwRegistrationId(1), t).await.unwrap();
    }
    for t in ["b1", "b2", "b3"] {
        sync.register(&b(), SwRegistrationId(2), t).await.unwrap();
    }
    sync.shutdown();
    // One row's origin becomes something this build never writes.
    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    let changed = conn
        .execute(
            "UPDATE registrations SET origin = 'not an origin' WHERE tag = ?1",
            [b"b3".to_vec()],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);

    let sync = start(dir.path());
    let report = sync.start_report().clone();
    let recovery = report.recovery.expect("the damage is reported at start-up");
    assert_eq!(recovery.kept.len(), 4);
    assert_eq!(recovery.dropped, 1);
    assert!(
        recovery.moved_to.as_ref().unwrap().exists(),
        "the damaged file is kept"
    );
    assert_eq!(report.restored, 4);
    assert_eq!(
        tags(&sync, &a(), 1).await,
        [Tag::from("a1"), Tag::from("a2")]
    );
    assert_eq!(
        tags(&sync, &b(), 2).await,
        [Tag::from("b1"), Tag::from("b2")]
    );
    let log = sync.log().await.unwrap();
    let recovered: Vec<(Origin, u64)> = log
        .iter()
        .filter_map(|e| match &e.event {
            LogEvent::StoreRecovered { kept, .. } => Some((e.origin.clone(), *kept)),
            _ => None,
        })
        .collect();
    assert_eq!(recovered, [(a(), 2), (b(), 2)]);
    assert_eq!(sync.recoveries().await.unwrap().len(), 1);
    sync.shutdown();
    // The rebuilt file is whole and holds the four.
    assert_eq!(
        SqliteStore::open(dir.path())
            .unwrap()
            .load_all()
            .unwrap()
            .len(),
        4
    );
}

fn record(origin: &Origin, sw: u64, i: usize) -> StoredRegistration {
    StoredRegistration {
        origin: origin.clone(),
        partition: Default::default(),
        seq: 0,
        sw: SwRegistrationId(sw),
        tag: Tag::from(format!("tag-{i}-{}", "y".repeat(i % 200)).as_str()),
        kind: SyncKind::OneShot,
        attempts: 0,
        max_attempts: 3,
        next_fire: Timestamp(0),
        periodic_interval: None,
    }
}

/// A store of both origins with one bit flipped where only the full check finds it (a page
/// start-up's read of the rows does not check).
fn store_with_index_damage(dir: &Path) {
    let base = tempfile::tempdir().unwrap();
    {
        let mut store = SqliteStore::open(base.path()).unwrap();
        let mut ops = Vec::new();
        for i in 0..60 {
            ops.push(StoreOp::Put(record(&a(), 1, i)));
            ops.push(StoreOp::Put(record(&b(), 2, i)));
        }
        store.commit(&ops).unwrap();
    }
    Connection::open(base.path().join(DB_FILE))
        .unwrap()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let bytes = std::fs::read(base.path().join(DB_FILE)).unwrap();
    for (at, bit) in (4096..bytes.len())
        .step_by(53)
        .flat_map(|at| [(at, 0x10u8), (at, 0x01)])
    {
        let mut damaged = bytes.clone();
        damaged[at] ^= bit;
        // Each probe starts from the damaged file alone (a probe leaves files behind).
        for e in std::fs::read_dir(dir).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
        std::fs::write(dir.join(DB_FILE), &damaged).unwrap();
        let quiet = {
            let Ok((mut store, None)) = SqliteStore::open_or_recover(dir) else {
                continue;
            };
            let rows = store.load_all().unwrap();
            rows.len() == 120 && store.verify().unwrap().is_some()
        };
        // Put the damaged file back: the probe above repaired it.
        for e in std::fs::read_dir(dir).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
        if quiet {
            std::fs::write(dir.join(DB_FILE), &damaged).unwrap();
            return;
        }
    }
    panic!("no flip found that only the full check sees");
}

#[tokio::test]
async fn damage_only_the_full_check_sees_is_repaired_after_start_up() {
    let dir = tempfile::tempdir().unwrap();
    store_with_index_damage(dir.path());
    let sync = start(dir.path());
    assert!(
        sync.start_report().recovery.is_none(),
        "start-up reads rows fine"
    );
    assert_eq!(sync.start_report().restored, 120);
    // The background check finds it; the store is rewritten from what the engine holds.
    sync.clear_origin(&a()).await.unwrap();
    sync.settle().await;
    assert_eq!(
        sync.recoveries().await.unwrap().len(),
        1,
        "repaired in the background"
    );
    assert!(tags(&sync, &a(), 1).await.is_empty());
    assert_eq!(tags(&sync, &b(), 2).await.len(), 60);
    sync.shutdown();
    let rows = SqliteStore::open(dir.path()).unwrap().load_all().unwrap();
    assert!(
        rows.iter().all(|r| r.origin == b()),
        "the cleared origin stays cleared"
    );
    assert_eq!(rows.len(), 60);
}

#[tokio::test]
async fn the_database_deleted_while_running_is_rewritten_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let sync = start(dir.path());
    sync.register(&a(), SwRegistrationId(1), "before")
        .await
        .unwrap();
    std::fs::remove_file(dir.path().join(DB_FILE)).unwrap();
    sync.register(&a(), SwRegistrationId(1), "after")
        .await
        .unwrap();
    sync.settle().await;
    let recoveries = sync.recoveries().await.unwrap();
    assert_eq!(recoveries.len(), 1);
    assert!(
        recoveries[0].cause.contains("deleted"),
        "{}",
        recoveries[0].cause
    );
    assert!(sync
        .log()
        .await
        .unwrap()
        .iter()
        .any(|e| matches!(e.event, LogEvent::StoreRecovered { .. }) && e.origin == a()));
    sync.shutdown();
    let sync = start(dir.path());
    assert_eq!(
        tags(&sync, &a(), 1).await,
        [Tag::from("after"), Tag::from("before")]
    );
    sync.shutdown();
}

#[tokio::test]
async fn a_large_store_is_restored_whole_and_in_order_while_it_is_read() {
    // Start-up reads the rows on a thread of its own and hands them over in chunks of 1,024,
    // a few ahead at most: 10,000 rows (not a multiple of a chunk, and more than the chunks
    // held ahead) must all arrive, in the store's order, the last partial chunk included.
    let dir = tempfile::tempdir().unwrap();
    let n = 10_000;
    {
        let mut store = SqliteStore::open(dir.path()).unwrap();
        let ops: Vec<StoreOp> = (0..n)
            .map(|i| {
                let mut r = record(&a(), 1, i);
                // Places in the list against the key order: the restore keeps them.
                r.seq = (n - i) as u64;
                StoreOp::Put(r)
            })
            .collect();
        store.commit(&ops).unwrap();
    }
    let sync = start(dir.path());
    assert_eq!(sync.start_report().restored, n);
    assert_eq!(sync.start_report().recovery, None);
    let listed = sync.get_tags(&a(), SwRegistrationId(1)).await.unwrap();
    let expected: Vec<Tag> = (0..n).rev().map(|i| record(&a(), 1, i).tag).collect();
    assert_eq!(listed.len(), n);
    assert!(
        listed == expected,
        "getTags() lists the stored places' order"
    );
    sync.shutdown();
}

/// Gives the row at `at` (in key order) what `change` sets, then, when `resign`, a checksum that
/// matches: damage only the decoding of the row finds, as a row this build never wrote would be.
fn change_row(dir: &Path, at: i64, change: &str, resign: bool) {
    let conn = Connection::open(dir.join(DB_FILE)).unwrap();
    let key = "(sw, kind, tag) = (SELECT sw, kind, tag FROM registrations \
               ORDER BY sw, kind, tag LIMIT 1 OFFSET ?1)";
    let (sw, kind, tag): (i64, i64, Vec<u8>) = conn
        .query_row(
            &format!("SELECT sw, kind, tag FROM registrations WHERE {key}"),
            [at],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let changed = conn
        .execute(
            &format!("UPDATE registrations SET {change} WHERE (sw, kind, tag) = (?1, ?2, ?3)"),
            rusqlite::params![sw, kind, tag],
        )
        .unwrap();
    assert_eq!(changed, 1, "{change}");
    if resign {
        // By (sw, tag): the change may have been to the kind.
        let (kind, origin, partition, fields): (i64, String, String, Vec<u8>) = conn
            .query_row(
                "SELECT kind, origin, partition, fields FROM registrations \
                 WHERE (sw, tag) = (?1, ?2)",
                rusqlite::params![sw, tag],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        let f = unpack_fields(&fields).unwrap();
        let row = RawRow {
            sw,
            kind,
            tag: tag.clone(),
            origin,
            attempts: f.attempts,
            max_attempts: f.max_attempts,
            next_fire: f.next_fire,
            periodic_interval_ms: f.periodic_interval_ms,
            checksum: 0,
            partition,
            seq: f.seq,
        };
        let fields = pack_fields(&Fields {
            checksum: row_checksum(&row),
            ..f
        });
        conn.execute(
            "UPDATE registrations SET fields = ?3 WHERE (sw, tag) = (?1, ?2)",
            rusqlite::params![sw, tag, fields],
        )
        .unwrap();
    }
}

#[tokio::test]
async fn damage_found_on_either_side_of_the_read_stops_it_and_costs_only_its_row() {
    // Start-up's loading thread reads and checks the rows (column types, checksum, key order);
    // this thread decodes them as it restores them. Damage either finds must stop the read and
    // repair the file alike: found by the decoding in an early batch (the loading thread then
    // waits to send more, with batches queued) or in the last, partial batch (after the last
    // row is read), and found by the read while batches are still queued for the decoding.
    let n = 10_000;
    let cases = [
        (1_500, "origin = 'not an origin'", true),
        // A kind this build never writes: the row moves to the end of the table.
        (500, "kind = 7", true),
        (4_000, "origin = 'https://c.example'", false),
        (2_000, "origin = CAST(x'ff' AS TEXT)", false),
        (6_000, "fields = substr(fields, 1, 4)", false),
    ];
    for (at, change, resign) in cases {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = SqliteStore::open(dir.path()).unwrap();
            let ops: Vec<StoreOp> = (0..n).map(|i| StoreOp::Put(record(&a(), 1, i))).collect();
            store.commit(&ops).unwrap();
        }
        change_row(dir.path(), at, change, resign);
        let sync = start(dir.path());
        let report = sync.start_report().clone();
        let recovery = report
            .recovery
            .unwrap_or_else(|| panic!("{change} at row {at} is reported at start-up"));
        assert_eq!(
            (recovery.kept.len(), recovery.dropped, report.restored),
            (n - 1, 1, n - 1),
            "{change} at row {at}: {recovery}"
        );
        assert_eq!(
            sync.get_tags(&a(), SwRegistrationId(1))
                .await
                .unwrap()
                .len(),
            n - 1
        );
        sync.shutdown();
    }
}
