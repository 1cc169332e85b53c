//! The main job: every spec-test passes on the embedded defaults.

use std::process::Command;

#[test]
fn every_spec_test_passes() {
    let out = Command::new(env!("CARGO_BIN_EXE_wpt-runner"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or("");
    let words: Vec<&str> = last.split_whitespace().collect();
    assert_eq!(words.get(2..4), Some(&["0", "failed"][..]), "{last}");
    let passed: usize = words[0].parse().unwrap();
    assert!(passed >= 60, "only {passed} subtests: {last}");
}
