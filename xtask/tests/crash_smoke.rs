//! A short crash test (10 runs) in the test suite; `cargo xtask crash-test --runs 200` is the
//! long one.

use std::process::Command;

#[test]
fn ten_crashes_lose_nothing_acknowledged() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["crash-test", "--runs", "10"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("crash-test: "))
        .unwrap_or_else(|| panic!("no closing line: {stdout}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    // crash-test: 10 runs, A acknowledged, 0 lost
    assert_eq!(words[1], "10", "{line}");
    let acknowledged: u64 = words[3].parse().unwrap();
    assert!(
        acknowledged > 0,
        "the child acknowledged nothing: {line}\n{stderr}"
    );
    assert_eq!(words[5], "0", "{line}\n{stderr}");
}
