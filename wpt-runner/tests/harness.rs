//! The runner and our testharness implementation report what happened: passes, failures,
//! time-outs, errors, runaway scripts and skips, in the summary, the JSON and against
//! expectations.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod common;
use common::statuses;

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

struct Run {
    ok: bool,
    stdout: String,
    json: Value,
}

fn run(root: &Path, extra: &[&str]) -> Run {
    let json = root.join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_wpt-runner"))
        .arg(root.join("t"))
        .args(["--wpt-root"])
        .arg(root)
        .args(["--json"])
        .arg(&json)
        .args(["--timeout-multiplier", "0.1"])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = std::fs::read_to_string(&json)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(Value::Null);
    Run {
        ok: out.status.success(),
        stdout,
        json,
    }
}

fn result<'a>(r: &'a Run, id: &str) -> &'a Value {
    r.json["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["test"] == id)
        .unwrap_or_else(|| panic!("{id} missing:\n{}", r.stdout))
}

/// Our harness served as /resources/testharness.js inside a fake checkout.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "resources/testharness.js",
        include_str!("../js/harness.js"),
    );
    write(root, "t/pass.any.js", "test(() => assert_true(true), 'sync pass');\npromise_test(async () => { assert_equals(await Promise.resolve(1), 1); }, 'promise pass');\nasync_test(t => t.step_timeout(t.step_func_done(() => {}), 1), 'async pass');\n");
    write(root, "t/fail.window.js", "test(() => assert_equals(1, 2, 'one is two'), 'equals fails');\ntest(() => assert_throws_dom('InvalidStateError', () => { throw new DOMException('m', 'SyntaxError'); }), 'wrong exception');\npromise_test(t => promise_rejects_js(t, TypeError, Promise.resolve()), 'resolves instead');\ntest(() => assert_array_equals([1, 2], [1, 3]), 'arrays differ');\ntest(() => {}, 'passes');\n");
    write(root, "t/timeout.window.js", "async_test(() => {}, 'never done');\npromise_test(() => new Promise(() => {}), 'never settles');\npromise_test(async () => {}, 'queued behind');\n");
    write(
        root,
        "t/throws.window.js",
        "test(() => {}, 'before');\nthrow new Error('top-level failure');\n",
    );
    write(root, "t/loop.window.js", "for (;;) {}\n");
    write(
        root,
        "t/lone.window.js",
        "test(() => {}, 'name with \\uD800 lone');\n",
    );
    write(root, "t/page.html", "<!doctype html>");
    dir
}

#[test]
fn every_status_is_reported() {
    let dir = fixture();
    let r = run(dir.path(), &[]);
    assert!(
        !r.ok,
        "unexpected failures must fail the run:\n{}",
        r.stdout
    );

    let pass = result(&r, "/t/pass.any.html");
    assert_eq!(pass["status"], "OK");
    assert!(statuses(pass).iter().all(|(_, s)| s == "PASS"), "{pass}");
    assert_eq!(statuses(result(&r, "/t/pass.any.worker.html")).len(), 3);

    let fail = result(&r, "/t/fail.window.html");
    assert_eq!(fail["status"], "OK");
    assert_eq!(
        statuses(fail),
        [
            ("equals fails".into(), "FAIL".into()),
            ("wrong exception".into(), "FAIL".into()),
            ("resolves instead".into(), "FAIL".into()),
            ("arrays differ".into(), "FAIL".into()),
            ("passes".into(), "PASS".into()),
        ]
    );
    assert!(fail["subtests"][0]["message"]
        .as_str()
        .unwrap()
        .contains("one is two"));
    assert_eq!(fail["subtests"][0]["expected"], "PASS");

    let timeout = result(&r, "/t/timeout.window.html");
    assert_eq!(timeout["status"], "TIMEOUT");
    assert_eq!(
        statuses(timeout),
        [
            ("never done".into(), "TIMEOUT".into()),
            ("never settles".into(), "TIMEOUT".into()),
            ("queued behind".into(), "NOTRUN".into()),
        ]
    );

    let throws = result(&r, "/t/throws.window.html");
    assert_eq!(throws["status"], "ERROR");
    assert!(
        throws["message"]
            .as_str()
            .unwrap()
            .contains("top-level failure"),
        "{throws}"
    );

    let lp = result(&r, "/t/loop.window.html");
    assert_eq!(lp["status"], "ERROR");
    assert!(lp["message"].as_str().unwrap().contains("watchdog"), "{lp}");

    let lone = result(&r, "/t/lone.window.html");
    assert_eq!(lone["subtests"][0]["name"], "name with U+D800 lone");

    let page = result(&r, "/t/page.html");
    assert_eq!(page["status"], "SKIP");
    assert!(page["message"].as_str().unwrap().contains("DOM"));

    let last = r.stdout.lines().last().unwrap();
    assert!(last.ends_with("skipped"), "{last}");
    assert!(
        last.contains(" passed, ") && last.contains(" failed"),
        "{last}"
    );
    for k in [
        "product",
        "browser_version",
        "os",
        "processor",
        "bits",
        "debug",
        "revision",
    ] {
        assert!(r.json["run_info"].get(k).is_some(), "{k}");
    }
    assert!(r.json["time_end"].as_u64() >= r.json["time_start"].as_u64());
}

#[test]
fn expectations_make_known_failures_expected_and_catch_unexpected_passes() {
    let dir = fixture();
    let exp = dir.path().join("expectations.json");
    let r = run(
        dir.path(),
        &[
            "--expectations",
            exp.to_str().unwrap(),
            "--update-expectations",
        ],
    );
    assert!(exp.exists(), "{}", r.stdout);
    let text = std::fs::read_to_string(&exp).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["t"]["pass.any.html"], true);
    assert_eq!(v["t"]["timeout.window.html"], false);
    assert_eq!(v["t"]["fail.window.html"][0], "equals fails");

    let again = run(dir.path(), &["--expectations", exp.to_str().unwrap()]);
    assert!(again.ok, "everything is expected now:\n{}", again.stdout);
    assert!(again.json["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x.get("expected").is_none()));

    // Fix a failing subtest: an unexpected pass fails the run.
    write(
        dir.path(),
        "t/fail.window.js",
        "test(() => {}, 'equals fails');\n",
    );
    let fixed = run(
        dir.path(),
        &[
            "--expectations",
            exp.to_str().unwrap(),
            "--filter",
            "fail.window",
        ],
    );
    assert!(!fixed.ok, "{}", fixed.stdout);
    assert_eq!(
        result(&fixed, "/t/fail.window.html")["subtests"][0]["expected"],
        "FAIL"
    );
}

#[test]
fn a_checkouts_sub_files_name_wpts_hosts_and_their_origins_open() {
    // A helper of the checkout's own, written with wptserve's templates, as
    // /common/get-host-info.sub.js is; a test that opens a window of each origin it names.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "resources/testharness.js",
        include_str!("../js/harness.js"),
    );
    write(
        root,
        "common/names.sub.js",
        "const NAMES = { remote: 'https://{{domains[www1]}}:{{ports[https][0]}}', other: 'https://{{hosts[alt][]}}:{{ports[https][1]}}', idn: '{{domains[élève]}}', http: 'http://{{host}}:{{ports[http][0]}}' };\n",
    );
    write(root, "t/blank.html", "<!doctype html>");
    write(
        root,
        "t/hosts.window.js",
        "// META: script=/common/names.sub.js\n\
         test(() => { assert_equals(NAMES.remote, 'https://www1.web-platform.test:8443'); assert_equals(NAMES.other, 'https://not-web-platform.test:8444'); assert_equals(NAMES.idn, 'xn--lve-6lad.web-platform.test'); }, 'templates');\n\
         promise_test(async () => { for (const o of [NAMES.remote, NAMES.other, NAMES.http]) { const w = await bgsyncTest.openWindow(o + '/t/blank.html'); assert_equals(await w.executeScript(() => location.origin), o); await w.close(); } }, 'each origin opens');\n\
         promise_test(async (t) => { await promise_rejects_dom(t, 'NetworkError', bgsyncTest.openWindow('https://elsewhere.example/t/blank.html')); }, 'an origin WPT does not serve does not');\n",
    );
    let r = run(root, &[]);
    let subtests = statuses(result(&r, "/t/hosts.window.html"));
    assert_eq!(
        subtests,
        [
            ("templates".to_owned(), "PASS".to_owned()),
            ("each origin opens".to_owned(), "PASS".to_owned()),
            (
                "an origin WPT does not serve does not".to_owned(),
                "PASS".to_owned()
            ),
        ],
        "{}",
        r.stdout
    );
}

#[test]
fn the_command_line_speaks_wptrunner() {
    let bin = env!("CARGO_BIN_EXE_wpt-runner");
    let help = Command::new(bin).arg("--help").output().unwrap();
    assert!(help.status.success(), "--help exits 0");
    let text = String::from_utf8_lossy(&help.stdout);
    for option in [
        "--log-wptreport",
        "--include",
        "--exclude",
        "--include-file",
        "--total-chunks",
        "--this-chunk",
        "--timeout-multiplier",
        "--processes",
        "--repeat",
        "--rerun",
        "--verify",
        "[alias: --json]",
        "[alias: --filter]",
        "[alias: --jobs]",
    ] {
        assert!(text.contains(option), "--help describes {option}:\n{text}");
    }
    let version = Command::new(bin).arg("--version").output().unwrap();
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("wpt-runner "));
    let bad = Command::new(bin).arg("--no-such-option").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--no-such-option"));
    let chunk = Command::new(bin)
        .args(["--total-chunks", "2", "--this-chunk", "3"])
        .output()
        .unwrap();
    assert_eq!(
        chunk.status.code(),
        Some(2),
        "a chunk past the total is refused"
    );
}

#[test]
fn verify_runs_each_test_ten_times_and_a_steady_file_is_not_flaky() {
    let root = fixture();
    let r = run(root.path(), &["--verify", "--include", "/t/fail.window"]);
    assert!(
        r.stdout
            .contains("stability: 10 runs of each test; 0 flaky"),
        "{}",
        r.stdout
    );
    // fail.window.js fails, which is unexpected without expectations: not a pass, but stable.
    assert!(!r.ok);
}

#[test]
fn a_checkouts_testdriver_loads_in_every_global_and_unsupported_actions_reject_by_name() {
    // A testdriver.js of the checkout's, which (as WPT's does) reads `document` and sets
    // `window.test_driver` and `window.test_driver_internal`.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "resources/testharness.js",
        include_str!("../js/harness.js"),
    );
    write(
        root,
        "resources/testdriver.js",
        "(function () {\n\
         const src = document?.currentScript?.src ?? '';\n\
         window.test_driver = {\n\
           set_permission(descriptor, state) { return window.test_driver_internal.set_permission({ descriptor, state }); },\n\
           bless(intent) { return window.test_driver_internal.bless(intent); },\n\
           loaded_from: src,\n\
         };\n\
         window.test_driver_internal = { set_permission() { return Promise.reject(new Error('unimplemented')); }, bless() { return Promise.reject(new Error('unimplemented')); } };\n\
         })();\n",
    );
    write(
        root,
        "t/driver.https.any.js",
        "// META: global=window,dedicatedworker,serviceworker\n\
         // META: script=/resources/testdriver.js\n\
         // META: script=/resources/testdriver-vendor.js\n\
         promise_test(async () => { await test_driver.set_permission({ name: 'background-sync' }, 'denied'); assert_equals((await navigator.permissions.query({ name: 'background-sync' })).state, 'denied'); }, 'set_permission');\n\
         promise_test(async () => { let message = ''; try { await test_driver.bless('x'); } catch (e) { message = e.message; } assert_true(message.includes('test_driver.bless is not supported'), message); }, 'bless rejects by name');\n",
    );
    let r = run(root, &[]);
    for id in [
        "/t/driver.https.any.html",
        "/t/driver.https.any.worker.html",
        "/t/driver.https.any.serviceworker.html",
    ] {
        let test = result(&r, id);
        assert_eq!(test["status"], "OK", "{id}: {}", r.stdout);
        let got: Vec<String> = statuses(test).into_iter().map(|(_, st)| st).collect();
        assert_eq!(got, ["PASS", "PASS"], "{id}: {}", r.stdout);
    }
}

#[test]
fn an_optional_feature_missing_is_precondition_failed() {
    let root = fixture();
    write(
        root.path(),
        "t/optional.window.js",
        "test(() => assert_implements_optional(false, 'an optional feature'), 'optional');\ntest(() => {}, 'plain');\n",
    );
    let r = run(root.path(), &["--include", "/t/optional"]);
    let test = result(&r, "/t/optional.window.html");
    let got: Vec<String> = statuses(test).into_iter().map(|(_, st)| st).collect();
    assert_eq!(got, ["PRECONDITION_FAILED", "PASS"], "{}", r.stdout);
}

#[test]
fn wptrunner_metadata_is_read_and_written() {
    let root = fixture();
    let meta = root.path().join("meta");
    // Written from a run, the metadata makes the same results expected.
    let with_meta = |extra: &[&str]| {
        let mut args = vec!["--metadata", meta.to_str().unwrap()];
        args.extend(["--include", "/t/fail", "--include", "/t/timeout"]);
        args.extend(extra);
        run(root.path(), &args)
    };
    let first = with_meta(&["--update-metadata"]);
    assert!(!first.ok, "failures with no metadata yet are unexpected");
    let ini = std::fs::read_to_string(meta.join("t/fail.window.js.ini")).unwrap();
    assert!(
        ini.contains("[fail.window.html]") && ini.contains("  [equals fails]\n    expected: FAIL"),
        "{ini}"
    );
    let second = with_meta(&[]);
    assert!(
        second.ok,
        "the recorded results are expected:\n{}",
        second.stdout
    );
    // Conditions are evaluated against this run; `disabled` skips a test with its reason.
    write(
        &meta,
        "t/fail.window.js.ini",
        &format!(
            "[fail.window.html]\n  [equals fails]\n    expected:\n      if os == \"{}\": [PASS, FAIL]\n      PASS\n  [wrong exception]\n    expected: FAIL\n  [resolves instead]\n    expected: FAIL\n  [arrays differ]\n    expected: FAIL\n",
            std::env::consts::OS
        ),
    );
    write(
        &meta,
        "t/timeout.window.js.ini",
        "[timeout.window.html]\n  disabled: hangs on purpose\n",
    );
    let third = with_meta(&[]);
    assert!(third.ok, "{}", third.stdout);
    let skipped = result(&third, "/t/timeout.window.html");
    assert_eq!(skipped["status"], "SKIP");
    let fail = result(&third, "/t/fail.window.html");
    let equals = fail["subtests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "equals fails")
        .unwrap();
    assert_eq!(
        equals["known_intermittent"],
        serde_json::json!(["FAIL"]),
        "{equals}"
    );
}
