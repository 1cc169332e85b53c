//! Damage anywhere in the database file is found and repaired before it can do harm: one bit
//! flipped at offsets spread over every page of a small store (table, interior
//! pages, the schema), then the start-up path (open, recover, the background check). After it,
//! the file passes SQLite's full integrity check, the store holds exactly what it reported,
//! writes and deletes by origin work, and a recovery says what it kept.

use std::path::Path;

use bgsync_store::{RegistrationStore, StoreOp, StoredRegistration};
use bgsync_store_sqlite::{SqliteStore, DB_FILE};
use bgsync_types::{Origin, SwRegistrationId, SyncKind, Tag, Timestamp};
use rusqlite::Connection;

fn record(origin: usize, sw: u64, i: usize) -> StoredRegistration {
    StoredRegistration {
        origin: Origin::parse(&format!("https://o{origin}.example")).unwrap(),
        partition: Default::default(),
        seq: 0,
        sw: SwRegistrationId(sw),
        // Tags of varied lengths spread the rows over several table pages.
        tag: Tag::from(format!("tag-{i}-{}", "x".repeat(i * 7 % 300)).as_str()),
        kind: SyncKind::OneShot,
        attempts: (i % 3) as u32,
        max_attempts: 3,
        next_fire: Timestamp(1_700_000_000_000 + i as u64),
        periodic_interval: None,
    }
}

/// A store of 120 rows over three origins, checkpointed into the main file, closed.
fn template(dir: &Path) -> Vec<StoredRegistration> {
    let rows: Vec<StoredRegistration> = (0..120)
        .map(|i| record(i % 3, (i % 3) as u64 + 1, i))
        .collect();
    {
        let mut store = SqliteStore::open(dir).unwrap();
        store
            .commit(&rows.iter().cloned().map(StoreOp::Put).collect::<Vec<_>>())
            .unwrap();
    }
    let conn = Connection::open(dir.join(DB_FILE)).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    rows
}

fn integrity(path: &Path) -> String {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn.prepare("PRAGMA integrity_check").unwrap();
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    rows.join("; ")
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn a_flipped_bit_anywhere_is_found_and_repaired_at_start_up() {
    let base = tempfile::tempdir().unwrap();
    let rows = template(base.path());
    let bytes = std::fs::read(base.path().join(DB_FILE)).unwrap();
    let page = 4096;
    let pages = bytes.len() / page;
    assert!(
        pages >= 6,
        "the template must span several pages, has {pages}"
    );
    let (mut repaired, mut harmless, mut wrong) = (0, 0, Vec::new());
    for p in 0..pages {
        for offset in [40, 700, 1500, 2300, 3100, 3900] {
            let at = p * page + offset;
            let dir = tempfile::tempdir().unwrap();
            copy_dir(base.path(), dir.path());
            let mut damaged = bytes.clone();
            damaged[at] ^= 1 << (at % 8);
            std::fs::write(dir.path().join(DB_FILE), &damaged).unwrap();

            let outcome = std::panic::catch_unwind(|| {
                let (mut store, recovery) = SqliteStore::open_or_recover(dir.path()).unwrap();
                let loaded = store.load_all().unwrap();
                let later = store.verify().unwrap();
                let recovered = recovery.is_some() || later.is_some();
                // Writes and deletes by origin work on what is left.
                let extra = record(0, 1, 10_000);
                store.commit(&[StoreOp::Put(extra.clone())]).unwrap();
                store
                    .commit(&[StoreOp::DeleteOrigin(extra.origin.clone())])
                    .unwrap();
                drop(store);
                let path = dir.path().join(DB_FILE);
                let check = integrity(&path);
                let reopened = SqliteStore::open(dir.path()).unwrap().load_all().unwrap();
                (recovered, loaded, check, reopened)
            });
            let Ok((recovered, loaded, check, reopened)) = outcome else {
                wrong.push(format!("page {p} offset {offset}: panicked"));
                continue;
            };
            if check != "ok" {
                wrong.push(format!(
                    "page {p} offset {offset}: damage left in the file: {check}"
                ));
                continue;
            }
            let survivors: Vec<_> = loaded
                .iter()
                .filter(|r| r.origin != record(0, 1, 0).origin)
                .cloned()
                .collect();
            let mut reopened = reopened;
            reopened.sort_by_key(|r| r.key());
            let mut survivors = survivors;
            survivors.sort_by_key(|r| r.key());
            if reopened != survivors {
                wrong.push(format!(
                    "page {p} offset {offset}: the store holds {} rows, not the {} it reported",
                    reopened.len(),
                    survivors.len()
                ));
                continue;
            }
            if recovered {
                repaired += 1;
            } else {
                let mut all = loaded.clone();
                all.sort_by_key(|r| r.key());
                let mut want = rows.clone();
                want.sort_by_key(|r| r.key());
                if all != want {
                    wrong.push(format!(
                        "page {p} offset {offset}: not detected, and the rows changed ({} loaded)",
                        all.len()
                    ));
                    continue;
                }
                harmless += 1;
            }
        }
    }
    eprintln!(
        "{} flips: {repaired} repaired, {harmless} harmless",
        repaired + harmless + wrong.len()
    );
    assert!(
        wrong.is_empty(),
        "{} of {} flips:\n{}",
        wrong.len(),
        pages * 6,
        wrong.join("\n")
    );
    assert!(repaired > 0, "no flip was damage: the matrix tests nothing");
}

/// One cell pointer of the table's page changed to point at the cell before it: SQLite reads
/// that row twice and the row the pointer held not at all, and every row it reads passes its
/// checksum. The start-up read finds the second copy out of key order (damage), and the
/// recovery keeps each row it can read once: the store holds exactly what it reports.
#[test]
fn a_cell_pointer_aimed_at_another_row_is_damage_and_the_row_is_kept_once() {
    let dir = tempfile::tempdir().unwrap();
    // Few and short: the table is one leaf page, its root.
    let rows: Vec<StoredRegistration> = (0..8)
        .map(|i| StoredRegistration {
            tag: Tag::from(format!("t{i}").as_str()),
            ..record(0, 1, 0)
        })
        .collect();
    {
        let mut store = SqliteStore::open(dir.path()).unwrap();
        store
            .commit(&rows.iter().cloned().map(StoreOp::Put).collect::<Vec<_>>())
            .unwrap();
    }
    let path = dir.path().join(DB_FILE);
    let (root, page_size): (i64, i64) = {
        let conn = Connection::open(&path).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let root = conn
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'registrations'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let size = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        (root, size)
    };
    let mut bytes = std::fs::read(&path).unwrap();
    let page = (root as usize - 1) * page_size as usize;
    // A leaf page of a WITHOUT ROWID table (an index b-tree): type 10, an 8-byte header, then
    // the cells' 2-byte offsets.
    assert_eq!(bytes[page], 10, "the table's root is one leaf page");
    let cells = u16::from_be_bytes([bytes[page + 3], bytes[page + 4]]);
    assert_eq!(usize::from(cells), rows.len());
    let pointers = page + 8;
    let (first, second) = (pointers + 2 * 2, pointers + 3 * 2);
    let aimed = [bytes[first], bytes[first + 1]];
    bytes[second..second + 2].copy_from_slice(&aimed);
    std::fs::write(&path, &bytes).unwrap();

    let err = SqliteStore::open(dir.path()).unwrap_err();
    let bgsync_store::StoreError::Corrupt { cause, .. } = &err else {
        panic!("{err}")
    };
    assert!(cause.contains("key order"), "{cause}");
    let (mut store, recovery) = SqliteStore::open_or_recover(dir.path()).unwrap();
    let recovery = recovery.expect("a recovery");
    let mut kept = recovery.kept.clone();
    kept.sort_by_key(|r| r.key());
    let mut unique = kept.clone();
    unique.dedup_by_key(|r| r.key());
    assert_eq!(kept, unique, "a row read twice is kept once");
    assert!(kept.len() >= rows.len() - 1, "{} kept", kept.len());
    let mut loaded = store.load_all().unwrap();
    loaded.sort_by_key(|r| r.key());
    assert_eq!(loaded, kept);
    drop(store);
    let mut reopened = SqliteStore::open(dir.path()).unwrap().load_all().unwrap();
    reopened.sort_by_key(|r| r.key());
    assert_eq!(reopened, kept, "the store holds what the recovery reported");
}
