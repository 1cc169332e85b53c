//! Every subtest a file registers is reported, in every global, as a browser running WPT's
//! wrapper for that global would report it: the regression test of issue 10, where a window
//! test with WPT's own testharness.js lost every subtest after a synchronous one.
//!
//! Each fixture runs twice: with WPT's real `testharness.js` (from `WPT_ROOT`, else the minimal
//! tree at `../shared/wpt` beside this repository; skipped with a message when neither exists),
//! and with this runner's own harness. The expected results are what WPT's harness does in a
//! browser, so both harnesses are held to the same table.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod common;
use common::statuses;

/// `(file, [(global's test id suffix, file status, [(subtest, status)])])`.
type Case = (
    &'static str,
    &'static str,
    &'static [(
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
    )],
);

const ALL: &str = "// META: global=window,dedicatedworker,serviceworker\n";

const PASS_FAIL: &[(&str, &str)] = &[("first", "PASS"), ("second", "FAIL")];

/// The lifecycle cases of issue 10, each a file and its results per global.
const CASES: &[Case] = &[
    (
        "two-sync.window.js",
        "test(() => {}, 'first');\ntest(() => assert_true(false), 'second');\n",
        &[(".window.html", "OK", PASS_FAIL)],
    ),
    (
        "two-promise.window.js",
        "promise_test(async () => {}, 'first');\npromise_test(async () => assert_true(false), 'second');\n",
        &[(".window.html", "OK", PASS_FAIL)],
    ),
    (
        "sync-sync.any.js",
        "test(() => {}, 'first');\ntest(() => assert_true(false), 'second');\n",
        &[
            (".any.html", "OK", PASS_FAIL),
            (".any.worker.html", "OK", PASS_FAIL),
            (".any.serviceworker.html", "OK", PASS_FAIL),
        ],
    ),
    (
        "sync-promise.any.js",
        "test(() => {}, 'first');\npromise_test(async () => assert_true(false), 'second');\n",
        &[
            (".any.html", "OK", PASS_FAIL),
            (".any.worker.html", "OK", PASS_FAIL),
            (".any.serviceworker.html", "OK", PASS_FAIL),
        ],
    ),
    (
        "async-later.any.js",
        "test(() => {}, 'first');\nasync_test(t => { t.step_timeout(() => { t.step(() => assert_true(false)); t.done(); }, 20); }, 'second');\n",
        &[
            (".any.html", "OK", PASS_FAIL),
            (".any.worker.html", "OK", PASS_FAIL),
            (".any.serviceworker.html", "OK", PASS_FAIL),
        ],
    ),
    // explicit_done: a page waits for done(); a worker's wrapper calls done() itself right after
    // the file, so there a test registered later is never part of the run (as in a browser).
    (
        "explicit-done.any.js",
        "setup({ explicit_done: true });\ntest(() => {}, 'first');\nstep_timeout(() => { test(() => assert_true(false), 'second'); done(); }, 20);\n",
        &[
            (".any.html", "OK", PASS_FAIL),
            (".any.worker.html", "OK", &[("first", "PASS")]),
            (".any.serviceworker.html", "OK", &[("first", "PASS")]),
        ],
    ),
    (
        "single-test.any.js",
        "// META: title=the file is the test\nsetup({ single_test: true });\nstep_timeout(() => { assert_true(true); done(); }, 10);\n",
        &[
            (".any.html", "OK", &[("the file is the test", "PASS")]),
            (".any.worker.html", "OK", &[("the file is the test", "PASS")]),
            (".any.serviceworker.html", "OK", &[("the file is the test", "PASS")]),
        ],
    ),
    // single_test: the page's test ends with the file's own done() or an uncaught exception; in
    // a worker the wrapper's done() right after the file ends it, so a later failure is not part
    // of it (as in a browser).
    (
        "single-test-fails.any.js",
        "// META: title=the file fails\nsetup({ single_test: true });\nstep_timeout(() => { assert_equals(1, 2); }, 10);\n",
        &[
            (".any.html", "OK", &[("the file fails", "FAIL")]),
            (".any.worker.html", "OK", &[("the file fails", "PASS")]),
            (".any.serviceworker.html", "OK", &[("the file fails", "PASS")]),
        ],
    ),
    // An exception outside any test while the file is still running makes the file an ERROR.
    (
        "uncaught.any.js",
        "test(() => {}, 'first');\nasync_test(t => { setTimeout(() => { throw new Error('boom'); }, 10); setTimeout(t.step_func_done(), 40); }, 'second');\n",
        &[
            (".any.html", "ERROR", &[("first", "PASS"), ("second", "PASS")]),
            (".any.worker.html", "ERROR", &[("first", "PASS"), ("second", "PASS")]),
            (".any.serviceworker.html", "ERROR", &[("first", "PASS"), ("second", "PASS")]),
        ],
    ),
    // A `.worker.js` file is its own worker script: it imports the harness and calls done().
    (
        "own.worker.js",
        "importScripts('/resources/testharness.js');\ntest(() => {}, 'first');\npromise_test(async () => assert_true(false), 'second');\ndone();\n",
        &[(".worker.html", "OK", PASS_FAIL)],
    ),
];

fn wpt_root() -> Option<PathBuf> {
    if let Some(r) = std::env::var_os("WPT_ROOT") {
        return Some(PathBuf::from(r));
    }
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/wpt");
    shared
        .join("resources/testharness.js")
        .exists()
        .then_some(shared)
}

/// A test root holding the fixtures, with `resources/` from `resources` (a link to a WPT
/// checkout's, or our harness written as testharness.js).
fn root_with(resources: Option<&Path>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    match resources {
        Some(r) => std::os::unix::fs::symlink(r.join("resources"), root.join("resources")).unwrap(),
        None => {
            std::fs::create_dir_all(root.join("resources")).unwrap();
            std::fs::write(
                root.join("resources/testharness.js"),
                include_str!("../js/harness.js"),
            )
            .unwrap();
        }
    }
    std::fs::create_dir_all(root.join("t")).unwrap();
    for (file, body, _) in CASES {
        let meta = if file.ends_with(".any.js") { ALL } else { "" };
        std::fs::write(root.join("t").join(file), format!("{meta}{body}")).unwrap();
    }
    dir
}

fn run(root: &Path) -> Value {
    let json = root.join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_wpt-runner"))
        .arg(root.join("t"))
        .arg("--wpt-root")
        .arg(root)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "no report ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(&text).unwrap()
}

/// Every case's every global, with the exact subtests; returns the mismatches.
fn check(report: &Value) -> Vec<String> {
    let results = report["results"].as_array().unwrap();
    let mut wrong = Vec::new();
    let mut expected_ids = Vec::new();
    for (file, _, globals) in CASES {
        let stem = file
            .strip_suffix(".any.js")
            .or_else(|| file.strip_suffix(".window.js"))
            .or_else(|| file.strip_suffix(".worker.js"))
            .unwrap();
        for (suffix, status, subtests) in *globals {
            let id = format!("/t/{stem}{suffix}");
            expected_ids.push(id.clone());
            let Some(r) = results.iter().find(|r| r["test"] == id.as_str()) else {
                wrong.push(format!("{id}: not reported"));
                continue;
            };
            let got = statuses(r);
            let want: Vec<(String, String)> = subtests
                .iter()
                .map(|(n, s)| ((*n).to_owned(), (*s).to_owned()))
                .collect();
            if r["status"] != *status || got != want {
                wrong.push(format!(
                    "{id}: got {} {got:?} ({}), expected {status} {want:?}",
                    r["status"], r["message"]
                ));
            }
        }
    }
    for r in results {
        let id = r["test"].as_str().unwrap();
        if !expected_ids.iter().any(|e| e == id) {
            wrong.push(format!("{id}: reported but not expected"));
        }
    }
    wrong
}

#[test]
fn wpt_testharness_reports_every_subtest_in_every_global() {
    let Some(wpt) = wpt_root() else {
        eprintln!(
            "skipped: no WPT checkout (set WPT_ROOT, or place the minimal tree at ../shared/wpt)"
        );
        return;
    };
    let root = root_with(Some(&wpt));
    let wrong = check(&run(root.path()));
    assert!(
        wrong.is_empty(),
        "with {}:\n{}",
        wpt.display(),
        wrong.join("\n")
    );
}

#[test]
fn our_testharness_reports_every_subtest_in_every_global() {
    let root = root_with(None);
    let wrong = check(&run(root.path()));
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// WPT's own testdriver.js loads (it reads `document.currentScript`), and our
/// testdriver-vendor.js plugs the user agent's `set_permission` into it.
#[test]
fn wpt_testdriver_loads_and_sets_permissions() {
    let Some(wpt) = wpt_root() else {
        eprintln!(
            "skipped: no WPT checkout (set WPT_ROOT, or place the minimal tree at ../shared/wpt)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::os::unix::fs::symlink(wpt.join("resources"), root.join("resources")).unwrap();
    std::fs::create_dir_all(root.join("t")).unwrap();
    std::fs::write(
        root.join("t/driver.https.window.js"),
        "// META: script=/resources/testdriver.js\n// META: script=/resources/testdriver-vendor.js\n\
         promise_test(async () => {\n\
           await test_driver.set_permission({ name: 'background-sync' }, 'denied');\n\
           assert_equals((await navigator.permissions.query({ name: 'background-sync' })).state, 'denied');\n\
         }, 'set_permission');\n",
    )
    .unwrap();
    let report = run(root);
    let r = &report["results"][0];
    assert_eq!(r["status"], "OK", "{r}");
    assert_eq!(
        statuses(r),
        [("set_permission".to_owned(), "PASS".to_owned())],
        "{r}"
    );
}
