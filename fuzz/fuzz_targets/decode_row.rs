//! Decoding stored rows: any field values must decode or be refused, never panic; and any
//! bytes as a row's packed `fields` blob (schema 7) unpack or are refused, and what unpacks
//! packs back to the same bytes (only canonical bytes are accepted).
#![no_main]

use bgsync_store_sqlite::{decode_row, pack_fields, row_checksum, unpack_fields, RawRow};
use libfuzzer_sys::fuzz_target;

fn i64_at(data: &[u8], i: usize) -> i64 {
    let mut b = [0u8; 8];
    for (k, byte) in b.iter_mut().enumerate() {
        *byte = data.get(i + k).copied().unwrap_or(0);
    }
    i64::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = unpack_fields(data) {
        assert_eq!(pack_fields(&f), data, "unpacked {f:?}");
    }
    if data.len() < 48 {
        return;
    }
    let (fixed, rest) = data.split_at(48);
    let split = rest.len() / 2;
    let row = RawRow {
        sw: i64_at(fixed, 0),
        kind: i64_at(fixed, 8) % 4,
        tag: rest[..split].to_vec(),
        origin: String::from_utf8_lossy(&rest[split..]).into_owned(),
        attempts: i64_at(fixed, 16),
        max_attempts: i64_at(fixed, 24),
        next_fire: i64_at(fixed, 32),
        periodic_interval_ms: if fixed[40] % 2 == 0 { None } else { Some(i64_at(fixed, 40)) },
        checksum: 0,
        seq: if fixed[42] % 2 == 0 { 0 } else { i64_at(fixed, 16) },
        partition: if fixed[41] % 4 == 0 { String::new() } else { String::from_utf8_lossy(&rest[..split.min(16)]).into_owned() },
    };
    // Mostly rows whose checksum matches, so decoding gets past it; sometimes not.
    let row = if fixed[47] % 8 == 0 { RawRow { checksum: i64_at(fixed, 40), ..row } } else { RawRow { checksum: row_checksum(&row), ..row } };
    if let Ok(r) = decode_row(row) {
        // What decodes re-encodes to a valid origin and an even-length tag.
        assert!(r.max_attempts > 0);
        let _ = r.origin.serialize();
    }
});
