//! What each coverage-guided target starts from and how it runs: its seed inputs, made by our
//! own code each run (so they follow the store's schema and the targets' input layouts as they
//! are today), the longest input it is given (`-max_len`), and its other libFuzzer flags.

use std::path::Path;

use bgsync_store::{RegistrationStore, StoreOp, StoredRegistration};
use bgsync_store_sqlite::{SqliteStore, DB_FILE};
use bgsync_types::{Origin, Partition, SwRegistrationId, SyncKind, Tag, Timestamp};

/// The tag cap, in bytes of UTF-8 (lone surrogates counted as 3).
pub const TAG_CAP: usize = 10_240;

/// One seed: a file name and its bytes.
pub type Seed = (String, Vec<u8>);

/// The seeds of `target`.
pub fn seeds(target: &str) -> Result<Vec<Seed>, String> {
    match target {
        "store_open" => store_open(),
        "decode_row" => Ok(decode_row()),
        "idl_conversions" => Ok(idl_conversions()),
        "differential" => Ok(differential()),
        other => Err(format!("no seeds for {other}")),
    }
}

/// The longest input `target` is given, from what it needs (`seeds` are its seeds).
pub fn max_len(target: &str, seeds: &[Seed]) -> usize {
    let longest_seed = seeds.iter().map(|(_, b)| b.len()).max().unwrap_or(0);
    match target {
        // The seed databases and two more pages (4,096 bytes each), so a mutation can add one;
        // from the seeds, so that a schema with more pages never truncates them.
        "store_open" => longest_seed + 2 * 4096,
        // 48 fixed bytes, then the tag and the origin columns of up to ~490 bytes each: the
        // decoder treats no length differently, longer inputs only run slower.
        "decode_row" => 1024,
        // UTF-16 code units, two bytes each: 12,288 units, so the 10,240-byte edge is reachable
        // with code units of every UTF-8 width (10,241 one-byte units are 20,482 bytes).
        "idl_conversions" => 24_576,
        // 2 bytes of setup, then 4 bytes an operation: 128 operations, more than the proptest's
        // longest scenario, since coverage guidance builds on the prefixes it keeps.
        "differential" => 2 + 4 * 128,
        _ => longest_seed.max(4096),
    }
}

/// libFuzzer flags of `target` beyond the common ones.
pub fn flags(target: &str) -> &'static [&'static str] {
    match target {
        // The target keeps one user agent across inputs (making one per input would cost more
        // than the input), so every input leaves more allocations than it frees; libFuzzer
        // then runs each input twice and scans the whole heap for leaks, three quarters of the
        // time under perf, until it gives up by itself after 1,000 inputs ("the target
        // accumulates memory in a global state"). LeakSanitizer's check when the process
        // exits still runs.
        "idl_conversions" => &["-detect_leaks=0"],
        _ => &[],
    }
}

/// Writes `target`'s seeds into `dir` (emptied first) and returns the longest input to use.
pub fn write(target: &str, dir: &Path) -> Result<(usize, usize), String> {
    let seeds = seeds(target)?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, bytes) in &seeds {
        std::fs::write(dir.join(name), bytes).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok((seeds.len(), max_len(target, &seeds)))
}

/// Real database files, so mutations start from valid pages: one-shot rows with lone
/// surrogates, periodic rows in a partition with astral tags, and a store with no rows.
fn store_open() -> Result<Vec<Seed>, String> {
    let origin = |s: &str| Origin::parse(s).map_err(|e| format!("{s}: {e:?}"));
    let a = origin("https://a.example")?;
    let b = origin("http://localhost:8080")?;
    let one_shot: Vec<StoreOp> = (0..8u64)
        .map(|i| {
            StoreOp::Put(StoredRegistration {
                origin: a.clone(),
                partition: Default::default(),
                seq: 0,
                sw: SwRegistrationId(i),
                tag: Tag::from_utf16(vec![0xD800, i as u16]),
                kind: SyncKind::OneShot,
                attempts: i as u32 % 3,
                max_attempts: 3,
                next_fire: Timestamp(i * 1000),
                periodic_interval: None,
            })
        })
        .collect();
    let periodic: Vec<StoreOp> = (0..6u64)
        .map(|i| {
            StoreOp::Put(StoredRegistration {
                origin: if i % 2 == 0 { a.clone() } else { b.clone() },
                partition: Partition::new(if i % 3 == 0 {
                    ""
                } else {
                    "https://top.example"
                }),
                seq: i,
                sw: SwRegistrationId(100 + i),
                tag: Tag::from(format!("periodic-😀-{i}").as_str()),
                kind: SyncKind::Periodic,
                attempts: 0,
                max_attempts: 3,
                next_fire: Timestamp(43_200_000 * i),
                periodic_interval: Some(std::time::Duration::from_secs(3600 * (i + 1))),
            })
        })
        .collect();
    Ok(vec![
        ("seed-one-shot-db".into(), database(&one_shot)?),
        ("seed-periodic-db".into(), database(&periodic)?),
        ("seed-empty-db".into(), database(&[])?),
    ])
}

/// The database file of a store that committed `ops`.
fn database(ops: &[StoreOp]) -> Result<Vec<u8>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    {
        let mut store = SqliteStore::open(dir.path()).map_err(|e| e.to_string())?;
        if !ops.is_empty() {
            store.commit(ops).map_err(|e| e.to_string())?;
        }
    }
    std::fs::read(dir.path().join(DB_FILE)).map_err(|e| e.to_string())
}

/// Rows in decode_row's layout (fuzz/fuzz_targets/decode_row.rs): 48 fixed bytes (sw, kind,
/// attempts, max_attempts, next_fire as little-endian i64s at 0, 8, 16, 24, 32; bytes 40..48
/// choose the interval, partition, seq and checksum), then the tag (WTF-8) and the origin,
/// half each. And `fields` blobs as the store packs them (schema 7), which the target also
/// unpacks: a one-shot row's and a periodic row's.
fn decode_row() -> Vec<Seed> {
    let fields = |interval: Option<i64>| {
        bgsync_store_sqlite::pack_fields(&bgsync_store_sqlite::Fields {
            attempts: 2,
            max_attempts: 3,
            next_fire: 1_764_000_000_000,
            periodic_interval_ms: interval,
            checksum: 0x1234_5678_9ABC_DEF0,
            seq: 300,
        })
    };
    let row = |sw: i64, kind: i64, tail: [u8; 8], tag: &[u8], origin: &str| {
        let mut b = Vec::new();
        for v in [sw, kind, 1, 3, 1000] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&tail);
        assert_eq!(
            tag.len(),
            origin.len(),
            "the target splits the rest in half"
        );
        b.extend_from_slice(tag);
        b.extend_from_slice(origin.as_bytes());
        b
    };
    vec![
        // A one-shot row: no interval (byte 40 even), default partition, seq 0, its checksum.
        (
            "seed-one-shot".into(),
            row(
                1,
                0,
                [0, 0, 0, 0, 0, 0, 0, 1],
                b"outbox-\xED\xA0\x80-flush!",
                "https://a.example",
            ),
        ),
        // A periodic row: an interval (byte 40 odd, the i64 at 40 positive), a partition, a seq.
        (
            "seed-periodic".into(),
            row(
                7,
                1,
                [1, 1, 1, 0, 0, 0, 0, 1],
                "news-😀-hourly-feed".as_bytes(),
                "http://localhost:8080",
            ),
        ),
        // A row whose checksum does not match (byte 47 a multiple of 8).
        (
            "seed-bad-checksum".into(),
            row(
                2,
                0,
                [0, 0, 0, 0, 0, 0, 0, 8],
                b"outbox-flush-now!",
                "https://a.example",
            ),
        ),
        ("seed-fields-one-shot".into(), fields(None)),
        ("seed-fields-periodic".into(), fields(Some(43_200_000))),
    ]
}

/// UTF-16 code units as the target reads them: little-endian, two bytes each.
fn utf16le(units: &[u16]) -> Vec<u8> {
    units.iter().flat_map(|u| u.to_le_bytes()).collect()
}

/// Code units of every UTF-8 width (a lone surrogate counts 3 bytes, as a U+FFFD would), with
/// the bytes each takes. Repeated, none of them pairs with its neighbour.
const UNIT_KINDS: [(&str, &[u16], usize); 9] = [
    ("1-byte", &[0x0061], 1),
    ("2-byte", &[0x00E9], 2),
    ("3-byte", &[0x4E2D], 3),
    ("surrogate-pair", &[0xD83D, 0xDE00], 4),
    ("lone-high-surrogate", &[0xD800], 3),
    ("u-fffd", &[0xFFFD], 3),
    ("lone-low-surrogate", &[0xDFFF], 3),
    ("u-e000", &[0xE000], 3),
    ("u-ffff", &[0xFFFF], 3),
];

/// Code units taking exactly `bytes` bytes of UTF-8: `unit` repeated, then 'a's for the rest.
fn fill(unit: &[u16], unit_bytes: usize, bytes: usize) -> Vec<u16> {
    let mut units: Vec<u16> = unit.repeat(bytes / unit_bytes);
    units.resize(units.len() + bytes % unit_bytes, u16::from(b'a'));
    units
}

/// Strings at the tag cap and one byte over it in each kind of code unit, all of them mixed,
/// and short strings of each kind (NUL, a reversed pair, an odd byte count).
fn idl_conversions() -> Vec<Seed> {
    let mut seeds = Vec::new();
    for (name, unit, unit_bytes) in UNIT_KINDS {
        for bytes in [TAG_CAP, TAG_CAP + 1] {
            seeds.push((
                format!("seed-{bytes}-bytes-{name}"),
                utf16le(&fill(unit, unit_bytes, bytes)),
            ));
        }
        seeds.push((format!("seed-short-{name}"), utf16le(unit)));
    }
    // Every kind in turn; the lone high surrogate is followed by U+FFFD and the lone low one
    // preceded by it, so neither pairs.
    let cycle: Vec<u16> = UNIT_KINDS
        .iter()
        .flat_map(|(_, u, _)| u.iter().copied())
        .collect();
    let cycle_bytes: usize = UNIT_KINDS.iter().map(|(_, _, b)| b).sum();
    for bytes in [TAG_CAP, TAG_CAP + 1] {
        let mut units = cycle.repeat(bytes / cycle_bytes);
        units.extend(fill(&[0x4E2D], 3, bytes % cycle_bytes));
        seeds.push((format!("seed-{bytes}-bytes-mixed"), utf16le(&units)));
    }
    seeds.push(("seed-short-mixed".into(), utf16le(&cycle)));
    seeds.push(("seed-empty".into(), Vec::new()));
    seeds.push(("seed-nul".into(), utf16le(&[0x61, 0, 0x62])));
    seeds.push(("seed-reversed-pair".into(), utf16le(&[0xDE00, 0xD83D])));
    seeds.push(("seed-odd-byte".into(), vec![0x3D]));
    seeds
}

/// The differential's hand-written scenarios (`bgsync_model::regression_scenarios`: every
/// divergence found so far, and one for each feature), in the byte encoding of
/// `bgsync_model::Op::decode`, so that they stay in step with it.
fn differential() -> Vec<Seed> {
    bgsync_model::regression_scenarios()
        .iter()
        .enumerate()
        .map(|(i, ops)| {
            let bytes = bgsync_model::encode_scenario(&bgsync_model::Setup::default(), ops);
            (format!("seed-scenario-{i:02}"), bytes)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(bytes: &[u8]) -> Vec<u16> {
        // As fuzz/fuzz_targets/idl_conversions.rs reads its input.
        bytes
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]))
            .collect()
    }

    #[test]
    fn idl_seeds_sit_on_both_sides_of_the_tag_cap() {
        let seeds = idl_conversions();
        let max_len = max_len("idl_conversions", &seeds);
        let mut at_cap = 0;
        let mut over = 0;
        for (name, bytes) in &seeds {
            assert!(bytes.len() <= max_len, "{name} is longer than -max_len");
            let len = Tag::from_utf16(units(bytes)).utf8_len();
            if name.starts_with("seed-10240-") {
                assert_eq!(len, TAG_CAP, "{name}");
                at_cap += 1;
            } else if name.starts_with("seed-10241-") {
                assert_eq!(len, TAG_CAP + 1, "{name}");
                over += 1;
            }
        }
        assert_eq!((at_cap, over), (UNIT_KINDS.len() + 1, UNIT_KINDS.len() + 1));
    }

    #[test]
    fn lone_surrogate_seeds_stay_lone() {
        for (name, bytes) in idl_conversions() {
            let u = units(&bytes);
            let lone = char::decode_utf16(u.iter().copied())
                .filter(Result::is_err)
                .count();
            if name.contains("lone") {
                assert!(lone > 0, "{name}");
            }
            if name.contains("pair") && !name.contains("reversed") {
                assert_eq!(lone, 0, "{name}");
            }
        }
    }

    #[test]
    fn differential_seeds_are_whole_operations() {
        let seeds = differential();
        assert!(seeds.len() >= 10);
        for (name, bytes) in seeds {
            assert_eq!((bytes.len() - 2) % 4, 0, "{name}");
            assert!(bytes.len() <= max_len("differential", &[]), "{name}");
            let (_, ops) = bgsync_model::Op::decode(&bytes);
            assert_eq!(ops.len(), (bytes.len() - 2) / 4, "{name}");
        }
    }

    #[test]
    fn decode_row_seeds_fit() {
        for (name, bytes) in decode_row() {
            if name.starts_with("seed-fields") {
                assert!(bgsync_store_sqlite::unpack_fields(&bytes).is_ok(), "{name}");
                continue;
            }
            assert!(bytes.len() >= 48 && bytes.len() <= 1024, "{name}");
        }
    }
}
