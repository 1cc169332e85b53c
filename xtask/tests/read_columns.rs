//! The store's `xtask bench-one` experiments keep working; their times are not judged here.
//! `read-columns` (docs/performance.md, § 8): both layouts (the store's schema 7 and schema
//! 6's) are built, read whole, and found to hold the same values. `migrate` (docs/storage.md):
//! the store's rows are put back into schema 6's layout, the store's next open migrates them to
//! schema 7, and both that open and the one after it load the rows written. `log-growth`
//! (docs/storage.md, "The log's room"): plain SQLite's log grows with its first commits, and
//! neither a log SQLite grew first nor the store's log changes size. Each command fails
//! otherwise.

use std::process::Command;

/// `xtask bench-one ARGS`'s output, which must start with `starts`.
fn bench_one(args: &[&str], starts: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("bench-one")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.starts_with(starts), "{stdout}\n{stderr}");
    stdout
}

#[test]
fn both_row_layouts_are_read_whole_and_agree() {
    let stdout = bench_one(
        &["read-columns", "2000"],
        "a full read of 2000 rows, every column: ",
    );
    let ratio = stdout
        .split(" × ")
        .next()
        .and_then(|r| r.rsplit(' ').next())
        .and_then(|r| r.parse::<f64>().ok());
    assert!(
        ratio.is_some_and(|r| r.is_finite() && r > 0.0),
        "no ratio in: {stdout}"
    );
}

#[test]
fn a_schema_6_table_migrates_and_loads_the_same_rows() {
    bench_one(
        &["migrate", "3000"],
        "migration 6 → 7 of 3000 rows: the open that migrates ",
    );
}

#[test]
fn only_plain_sqlites_fresh_log_grows_with_its_commits() {
    bench_one(
        &["log-growth", "40"],
        "a one-row commit, 40 on a fresh database: ",
    );
}
