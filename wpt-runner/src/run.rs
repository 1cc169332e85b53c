//! Running one test variant in a fresh user agent.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bgsync_quickjs::{GlobalKind, PageElement, Served, UserAgent, UserAgentConfig};
use serde::Deserialize;
use url::Url;

use crate::discover::{Kind, Variant};

const HARNESS: &str = include_str!("../js/harness.js");
const REPORT: &str = include_str!("../js/report.js");
const VENDOR: &str = include_str!("../js/vendor.js");

/// Where the harness comes from.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The directory test URLs are served from.
    pub root: PathBuf,
    /// True when `root` is a WPT checkout: its own testharness.js, idlharness.js and
    /// testdriver.js are used.
    pub wpt_checkout: bool,
    /// Scales the harness timeouts (10 s, 60 s long) and the script watchdog (5 s).
    pub timeout_multiplier: f64,
}

/// A file's status, as wptreport names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    /// The harness completed.
    Ok,
    /// The harness reported an error, or a script failed to load or threw.
    Error,
    /// The harness timed out.
    Timeout,
    /// A precondition failed.
    PreconditionFailed,
    /// The runner itself failed on the test.
    Crash,
    /// Not run; see the message.
    Skip,
}

impl FileStatus {
    /// The wptreport name.
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Ok => "OK",
            FileStatus::Error => "ERROR",
            FileStatus::Timeout => "TIMEOUT",
            FileStatus::PreconditionFailed => "PRECONDITION_FAILED",
            FileStatus::Crash => "CRASH",
            FileStatus::Skip => "SKIP",
        }
    }
}

/// A subtest's status name (`PASS`, `FAIL`, `TIMEOUT`, `NOTRUN`, `PRECONDITION_FAILED`).
pub fn subtest_status(code: u32) -> &'static str {
    match code {
        0 => "PASS",
        1 => "FAIL",
        2 => "TIMEOUT",
        3 => "NOTRUN",
        _ => "PRECONDITION_FAILED",
    }
}

/// One subtest's result.
#[derive(Debug, Clone)]
pub struct Subtest {
    /// Its name.
    pub name: String,
    /// `PASS`, `FAIL`, …
    pub status: &'static str,
    /// The failure message.
    pub message: Option<String>,
}

/// One variant's result.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The test id.
    pub id: String,
    /// The file status.
    pub status: FileStatus,
    /// Why, when not OK.
    pub message: Option<String>,
    /// The subtests.
    pub subtests: Vec<Subtest>,
    /// How long it took.
    pub duration: Duration,
    /// The engine's log while the test ran (for `--timeline`).
    pub log: Vec<bgsync::LogEntry>,
}

/// The harness's `complete` message (testharness.js's worker message shape).
#[derive(Deserialize)]
struct Report {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    status: ReportStatus,
    #[serde(default)]
    tests: Vec<ReportTest>,
}

#[derive(Deserialize, Default)]
struct ReportStatus {
    status: u32,
    message: Option<String>,
}

#[derive(Deserialize)]
struct ReportTest {
    name: String,
    status: u32,
    message: Option<String>,
}

/// Runs `v` in a fresh user agent (engine, durable store in a temporary directory, clock,
/// workers).
pub fn run(setup: &Setup, v: &Variant) -> Outcome {
    let started = Instant::now();
    if let Some(reason) = &v.skip {
        return Outcome {
            id: v.id.clone(),
            status: FileStatus::Skip,
            message: Some(reason.clone()),
            subtests: Vec::new(),
            duration: Duration::ZERO,
            log: Vec::new(),
        };
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_inner(setup, v)));
    let mut outcome = match result {
        Ok(Ok(o)) => o,
        Ok(Err((status, message))) => Outcome {
            id: v.id.clone(),
            status,
            message: Some(message),
            subtests: Vec::new(),
            duration: Duration::ZERO,
            log: Vec::new(),
        },
        Err(panic) => Outcome {
            id: v.id.clone(),
            status: FileStatus::Crash,
            message: Some(
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "the runner panicked".into()),
            ),
            subtests: Vec::new(),
            duration: Duration::ZERO,
            log: Vec::new(),
        },
    };
    outcome.duration = started.elapsed();
    outcome
}

fn served(setup: &Setup) -> HashMap<String, Served> {
    let mut s = HashMap::new();
    s.insert(
        "/resources/testharnessreport.js".to_owned(),
        Served::Text(REPORT.to_owned()),
    );
    s.insert(
        "/resources/testdriver-vendor.js".to_owned(),
        Served::Text(VENDOR.to_owned()),
    );
    if setup.wpt_checkout {
        s.insert(
            "/resources/WebIDLParser.js".to_owned(),
            Served::File(setup.root.join("resources/webidl2/lib/webidl2.js")),
        );
        // WPT's testdriver.js reads `window` and `document`, which a worker does not have: it is
        // served wrapped in a function whose `window` is the global and whose `document` is the
        // global's (undefined in a worker), so that it loads in every global.
        if let Ok(text) = std::fs::read_to_string(setup.root.join("resources/testdriver.js")) {
            s.insert(
                "/resources/testdriver.js".to_owned(),
                Served::Text(format!(
                    "(function (window, document) {{\n{text}\n}}).call(self, self, self.document);\n"
                )),
            );
        }
    } else {
        s.insert(
            "/resources/testharness.js".to_owned(),
            Served::Text(HARNESS.to_owned()),
        );
        // test_driver is built into every global of this user agent.
        s.insert(
            "/resources/testdriver.js".to_owned(),
            Served::Text(String::new()),
        );
    }
    s
}

type Failure = (FileStatus, String);

fn crash(e: impl std::fmt::Display) -> Failure {
    (FileStatus::Crash, e.to_string())
}

/// A JavaScript string literal of `s`.
fn js_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The wrapper page of a window test, element for element as wptserve writes it for
/// `.window.html` and `.any.html`: the title and timeout `<meta>`, for `.any.js` the inline
/// script that defines `GLOBAL`, the harness and its report script, each `META: script`, the
/// log `<div>`, and the test file last.
fn window_page(v: &Variant, harness: &[Url], scripts: &[Url], test: &Url) -> Vec<PageElement> {
    let mut page = vec![PageElement::Meta(vec![("charset".into(), "utf-8".into())])];
    if let Some(t) = &v.meta.title {
        page.push(PageElement::Title(t.clone()));
    }
    if v.meta.long {
        page.push(PageElement::Meta(vec![
            ("name".into(), "timeout".into()),
            ("content".into(), "long".into()),
        ]));
    }
    if v.url_path.ends_with(".any.js") {
        page.push(PageElement::InlineScript(
            "self.GLOBAL = { isWindow: function() { return true; }, isWorker: function() { return false; }, isShadowRealm: function() { return false; } };"
                .into(),
        ));
    }
    page.extend(harness.iter().cloned().map(PageElement::Script));
    page.extend(scripts.iter().cloned().map(PageElement::Script));
    page.push(PageElement::Div(vec![("id".into(), "log".into())]));
    page.push(PageElement::Script(test.clone()));
    page
}

/// The worker script wptserve generates for `.any.worker.js` (a dedicated worker's, and a
/// service worker's, main script): the title, `GLOBAL`, the harness, each `META: script`, the
/// test file, and `done()`.
fn worker_wrapper(v: &Variant, harness: &Url, scripts: &[Url], test: &Url) -> String {
    let mut w = String::new();
    if let Some(t) = &v.meta.title {
        w += &format!("self.META_TITLE = {};\n", js_string(t));
    }
    w += "self.GLOBAL = { isWindow: function() { return false; }, isWorker: function() { return true; }, isShadowRealm: function() { return false; } };\n";
    w += &format!("importScripts({});\n", js_string(harness.as_str()));
    for s in scripts {
        w += &format!("importScripts({});\n", js_string(s.as_str()));
    }
    w += &format!("importScripts({});\ndone();\n", js_string(test.as_str()));
    w
}

fn run_inner(setup: &Setup, v: &Variant) -> Result<Outcome, Failure> {
    let data = tempfile::tempdir()
        .map_err(|e| (FileStatus::Crash, format!("temporary directory: {e}")))?;
    let mut config = UserAgentConfig::new(&setup.root);
    config.data_dir = Some(data.path().to_owned());
    config.served = served(setup);
    let hosts = crate::hosts::wpt_hosts(&config.base_url);
    config.substitutions = hosts.substitutions;
    config.origins = hosts.origins;
    config.watchdog = Duration::from_secs(5).mul_f64(setup.timeout_multiplier);

    let base = config.base_url.clone();
    let at = |path: &str| base.join(path.trim_start_matches('/')).map_err(crash);
    let test_url = at(&v.url_path)?;
    let mut scripts = Vec::new();
    for s in &v.meta.scripts {
        scripts.push(
            test_url
                .join(s)
                .map_err(|e| (FileStatus::Error, format!("META: script={s}: {e}")))?,
        );
    }
    let harness = at("/resources/testharness.js")?;
    let report = at("/resources/testharnessreport.js")?;
    let stem = v.url_path.strip_suffix(".js").unwrap_or(&v.url_path);
    // A worker's main script: a `.worker.js` file is its own; an `.any.js` file is wrapped.
    let worker_script = if stem.ends_with(".worker") {
        format!("{stem}.js{}", v.query)
    } else {
        format!("{stem}.worker.js{}", v.query)
    };
    if v.kind != Kind::Window && !stem.ends_with(".worker") {
        config.served.insert(
            format!("{stem}.worker.js"),
            Served::Text(worker_wrapper(v, &harness, &scripts, &test_url)),
        );
    }
    let mut ua = UserAgent::new(config).map_err(crash)?;

    // Load the test as a browser loads WPT's wrapper for its global; `error` keeps the first
    // script that failed to load or threw.
    let mut error = None;
    let realm = match v.kind {
        Kind::Window => {
            let page = format!(
                "{}{}",
                v.id.split(['?', '#']).next().unwrap_or(&v.id),
                v.query
            );
            let realm = ua.open(GlobalKind::Window, &at(&page)?).map_err(crash)?;
            let elements = window_page(v, &[harness, report], &scripts, &test_url);
            error = ua.load_page(realm, &elements).into_iter().next();
            realm
        }
        Kind::DedicatedWorker => {
            let url = at(&worker_script)?;
            let realm = ua.open(GlobalKind::DedicatedWorker, &url).map_err(crash)?;
            if let Err(e) = ua.run_main_script(realm, &url) {
                error = Some(format!("{url}: {e}"));
            }
            realm
        }
        Kind::ServiceWorker => {
            // As `.any.serviceworker.html` does: register the wrapper as a service worker
            // (its script runs), and connect to its harness while it installs.
            let url = at(&worker_script)?;
            let scope = url.join("./").map_err(crash)?;
            let realm = ua.open_service_worker(&url, &scope).map_err(crash)?;
            if let Err(e) = ua.run_main_script(realm, &url) {
                error = Some(format!("{url}: {e}"));
            }
            ua.install_service_worker(realm).map_err(crash)?;
            ua.post_to_service_worker_from_host(realm, r#"{"type":"connect"}"#)
                .map_err(crash)?;
            realm
        }
    };
    let error = error.map(watchdog_words);

    let limit = if v.meta.long {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(10)
    }
    .mul_f64(setup.timeout_multiplier);
    let deadline = Instant::now() + limit;
    let mut reader = Completion::default();
    if !ua.run_until(deadline, |ua| reader.scan(ua)) {
        // Time is up: ask the harness to time out and report what it has.
        let _ = ua.eval(
            realm,
            "typeof timeout === 'function' && timeout();",
            "runner-timeout.js",
        );
        if !ua.run_until(Instant::now() + Duration::from_millis(500), |ua| {
            reader.scan(ua)
        }) {
            return Err((
                FileStatus::Timeout,
                format!("no result within {:.1} s", limit.as_secs_f64()),
            ));
        }
    }
    let report = reader
        .report
        .take()
        .ok_or_else(|| crash("no harness report"))?;
    let mut status = match report.status.status {
        0 => FileStatus::Ok,
        1 => FileStatus::Error,
        2 => FileStatus::Timeout,
        _ => FileStatus::PreconditionFailed,
    };
    let mut message = report.status.message;
    // A script that failed to load or threw makes the file an ERROR, named by the script.
    if let Some(e) = error {
        if matches!(status, FileStatus::Ok | FileStatus::Error) {
            status = FileStatus::Error;
            message = Some(e);
        }
    }
    Ok(Outcome {
        id: v.id.clone(),
        status,
        message,
        subtests: report
            .tests
            .into_iter()
            .map(|t| Subtest {
                name: t.name,
                status: subtest_status(t.status),
                message: t.message,
            })
            .collect(),
        duration: Duration::ZERO,
        log: ua.log_entries(),
    })
}

/// Reads what the harness sent the host — the page's report script, or a worker's harness
/// posting its messages — until the `complete` message. Each message is read once.
#[derive(Default)]
struct Completion {
    seen: usize,
    report: Option<Report>,
}

impl Completion {
    fn scan(&mut self, ua: &UserAgent) -> bool {
        let messages = ua.host_reports();
        for m in &messages[self.seen.min(messages.len())..] {
            if let Ok(r) = serde_json::from_str::<Report>(m) {
                if r.kind == "complete" && self.report.is_none() {
                    self.report = Some(r);
                }
            }
        }
        self.seen = messages.len();
        self.report.is_some()
    }
}

fn watchdog_words(e: String) -> String {
    if e.contains("interrupted") {
        format!("the script ran too long and was stopped by the watchdog: {e}")
    } else {
        e
    }
}

/// The spec-tests directory of this repository.
pub fn default_tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec-tests")
}
