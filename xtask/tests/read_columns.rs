//! `xtask bench-one read-columns` (docs/performance.md, § 8) keeps working: both layouts (the store's
//! schema 7 and schema 6's) are built, read whole, and found to hold the same values (the command fails otherwise). Its
//! times are not judged here.

use std::process::Command;

#[test]
fn both_row_layouts_are_read_whole_and_agree() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench-one", "read-columns", "2000"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("a full read of 2000 rows, every column: "),
        "{stdout}\n{stderr}"
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
