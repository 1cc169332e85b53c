//! `xtask bench-one migrate` (docs/storage.md, the migration's one-time cost) keeps working: the
//! store's rows are put back into schema 6's layout, the store's next open migrates them to
//! schema 7, and both that open and the one after it load the rows written (the command fails
//! otherwise). Its times are not judged here.

use std::process::Command;

#[test]
fn a_schema_6_table_migrates_and_loads_the_same_rows() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench-one", "migrate", "3000"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("migration 6 → 7 of 3000 rows: the open that migrates "),
        "{stdout}\n{stderr}"
    );
}
