//! The write-ahead log's room: the store gives its log, at open, the size SQLite lets it reach
//! before a checkpoint starts it again, so that commits write inside the file instead of
//! growing it (docs/storage.md, "The log's room"). The room is zeros, which SQLite never takes
//! for a frame: a crash with the room reserved loses nothing and replays nothing foreign.
//! What it saves in time is measured by `cargo xtask bench-one log-growth`, not here.

use std::path::{Path, PathBuf};

use bgsync_store::{RegistrationStore, StoreOp, StoredRegistration};
use bgsync_store_sqlite::{SqliteStore, DB_FILE};
use bgsync_types::{Origin, SwRegistrationId, SyncKind, Tag, Timestamp};

/// SQLite's automatic checkpoint threshold (frames) and the size of a frame of a 4 KiB page
/// with its 24-byte header: the log reaches this many bytes before it is started again.
const THRESHOLD_BYTES: u64 = 32 + 1000 * (4096 + 24);

fn record(i: usize) -> StoredRegistration {
    StoredRegistration {
        origin: Origin::parse("https://mail.example").unwrap(),
        partition: Default::default(),
        seq: i as u64 + 1,
        sw: SwRegistrationId(1),
        tag: Tag::from(format!("send-{i}").as_str()),
        kind: SyncKind::OneShot,
        attempts: 0,
        max_attempts: 3,
        next_fire: Timestamp(1_000 + i as u64),
        periodic_interval: None,
    }
}

fn wal(dir: &Path) -> PathBuf {
    dir.join(format!("{DB_FILE}-wal"))
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The files as a crash now would leave them, copied into `to`.
fn crash_image(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn the_log_has_its_room_from_the_open_and_commits_never_grow_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let room = len(&wal(dir.path()));
    assert!(
        room >= THRESHOLD_BYTES,
        "the log has {room} bytes at open, less than the {THRESHOLD_BYTES} it reaches"
    );
    let db_at_open = len(&dir.path().join(DB_FILE));
    // Each commit is a few frames (the row's page, the commit count's page): 1,200 commits
    // pass the threshold, so SQLite checkpoints and starts the log again from its beginning.
    for i in 0..1_200 {
        store.commit(&[StoreOp::Put(record(i))]).unwrap();
        assert_eq!(
            len(&wal(dir.path())),
            room,
            "commit {i} changed the log's size"
        );
    }
    assert!(
        len(&dir.path().join(DB_FILE)) > db_at_open,
        "no checkpoint ran: the test did not pass the threshold"
    );
    drop(store);
    // A clean close still empties the log: the closed store is its database alone.
    assert_eq!(len(&wal(dir.path())), 0);
    let rows = SqliteStore::open(dir.path()).unwrap().load_all().unwrap();
    assert_eq!(rows.len(), 1_200);
}

#[test]
fn a_crash_with_the_room_reserved_loses_nothing_before_or_after_the_log_restarts() {
    for commits in [3, 1_100] {
        let dir = tempfile::tempdir().unwrap();
        let crashed = tempfile::tempdir().unwrap();
        let written: Vec<StoredRegistration> = (0..commits).map(record).collect();
        {
            let mut store = SqliteStore::open(dir.path()).unwrap();
            for r in &written {
                store.commit(&[StoreOp::Put(r.clone())]).unwrap();
            }
            crash_image(dir.path(), crashed.path());
        }
        assert!(
            len(&wal(crashed.path())) >= THRESHOLD_BYTES,
            "the crash image's log keeps its room"
        );
        let (mut store, recovery) = SqliteStore::open_or_recover(crashed.path()).unwrap();
        assert!(
            recovery.is_none(),
            "after {commits} commits: {:?}",
            recovery.map(|r| r.cause)
        );
        // Rows come back in key order (tags as bytes), not in the order written.
        let mut rows = store.load_all().unwrap();
        rows.sort_by_key(|r| r.seq);
        assert!(
            rows == written,
            "after {commits} commits: {} rows of {commits} came back as written",
            rows.len()
        );
    }
}

#[test]
fn a_log_left_longer_than_its_room_is_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    {
        let mut store = SqliteStore::open(dir.path()).unwrap();
        // One transaction of more frames than the room: the log grows past it, as SQLite lets
        // a large transaction do.
        let batch: Vec<StoreOp> = (0..1_500)
            .map(|i| {
                let mut r = record(i);
                r.tag = Tag::from(format!("{i:04}-{}", "x".repeat(3_000)).as_str());
                StoreOp::Put(r)
            })
            .collect();
        store.commit(&batch).unwrap();
        crash_image(dir.path(), crashed.path());
    }
    let grown = len(&wal(crashed.path()));
    let rows = {
        let mut store = SqliteStore::open(crashed.path()).unwrap();
        assert!(
            len(&wal(crashed.path())) >= grown,
            "the open shortened a log it had to replay"
        );
        store.load_all().unwrap()
    };
    assert_eq!(rows.len(), 1_500);
}
