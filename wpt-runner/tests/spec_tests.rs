//! The main job: every spec-test passes on the embedded defaults; `--timeline` draws what the
//! engine did in them.

use std::process::Command;

#[test]
fn every_spec_test_passes() {
    let dir = tempfile::tempdir().unwrap();
    let timeline = dir.path().join("timeline.html");
    let out = Command::new(env!("CARGO_BIN_EXE_wpt-runner"))
        .arg("--timeline")
        .arg(&timeline)
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

    // The spec-tests retry, back off and give up on a last chance: the timeline shows each, in a
    // section per test.
    let page = std::fs::read_to_string(&timeline).unwrap();
    assert!(page.matches("<section>").count() >= 5, "{page}");
    for mark in [
        "class=\"dispatch",
        "class=\"back-off\"",
        "class=\"dispatch last-chance",
        "class=\"gave-up\"",
    ] {
        assert!(page.contains(mark), "no {mark} in the timeline");
    }
}
