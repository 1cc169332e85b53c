//! Running one test variant in a fresh user agent.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bgsync_quickjs::{GlobalKind, Served, UserAgent, UserAgentConfig};
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
}

#[derive(Deserialize)]
struct Report {
    status: u32,
    message: Option<String>,
    tests: Vec<ReportTest>,
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

/// `.sub.` substitution of the values a server would fill in.
fn substitute(source: &str, base: &Url) -> String {
    let host = base.host_str().unwrap_or("web-platform.test");
    let port = base.port_or_known_default().unwrap_or(443).to_string();
    source
        .replace("{{host}}", host)
        .replace("{{domains[]}}", host)
        .replace("{{ports[https][0]}}", &port)
        .replace("{{ports[http][0]}}", "8000")
        .replace("{{location[host]}}", &format!("{host}:{port}"))
}

type Failure = (FileStatus, String);

fn run_inner(setup: &Setup, v: &Variant) -> Result<Outcome, Failure> {
    let data = tempfile::tempdir()
        .map_err(|e| (FileStatus::Crash, format!("temporary directory: {e}")))?;
    let mut config = UserAgentConfig::new(&setup.root);
    config.data_dir = Some(data.path().to_owned());
    config.served = served(setup);
    config.watchdog = Duration::from_secs(5).mul_f64(setup.timeout_multiplier);
    let mut ua = UserAgent::new(config).map_err(|e| (FileStatus::Crash, e.to_string()))?;
    let base = ua
        .url_for("")
        .map_err(|e| (FileStatus::Crash, e.to_string()))?;
    let stem = v.url_path.strip_suffix(".js").unwrap_or(&v.url_path);
    let (kind, location) = match v.kind {
        Kind::Window => (
            GlobalKind::Window,
            format!(
                "{}{}",
                v.id.split(['?', '#']).next().unwrap_or(&v.id),
                v.query
            ),
        ),
        Kind::DedicatedWorker if stem.ends_with(".worker") => {
            (GlobalKind::DedicatedWorker, format!("{stem}.js{}", v.query))
        }
        Kind::DedicatedWorker => (
            GlobalKind::DedicatedWorker,
            format!("{stem}.worker.js{}", v.query),
        ),
        Kind::ServiceWorker => (
            GlobalKind::ServiceWorker,
            format!("{}.serviceworker.js{}", stem, v.query),
        ),
    };
    let url = ua
        .url_for(&location)
        .map_err(|e| (FileStatus::Crash, e.to_string()))?;
    let realm = match kind {
        GlobalKind::ServiceWorker => {
            let scope = url
                .join("./")
                .map_err(|e| (FileStatus::Crash, e.to_string()))?;
            ua.open_service_worker(&url, &scope)
        }
        k => ua.open(k, &url),
    }
    .map_err(|e| (FileStatus::Crash, e.to_string()))?;
    let is_window = kind == GlobalKind::Window;
    let title = v
        .meta
        .title
        .clone()
        .map(|t| {
            format!(
                "self.META_TITLE = {};",
                serde_json::to_string(&t).unwrap_or_default()
            )
        })
        .unwrap_or_default();
    let prefix = format!(
        "self.GLOBAL = {{ isWindow: () => {is_window}, isWorker: () => {}, isShadowRealm: () => false }}; {title}",
        !is_window
    );
    ua.eval(realm, &prefix, "runner-prefix.js")
        .map_err(|e| (FileStatus::Crash, e.to_string()))?;

    let mut scripts: Vec<Url> = vec![
        url_of(&ua, "/resources/testharness.js")?,
        url_of(&ua, "/resources/testharnessreport.js")?,
    ];
    let test_url = ua
        .url_for(&v.url_path)
        .map_err(|e| (FileStatus::Crash, e.to_string()))?;
    for s in &v.meta.scripts {
        scripts.push(
            test_url
                .join(s)
                .map_err(|e| (FileStatus::Error, format!("META: script={s}: {e}")))?,
        );
    }
    let mut error = None;
    for s in &scripts {
        if let Err(e) = ua.run_script(realm, s) {
            error.get_or_insert(format!("{s}: {e}"));
        }
    }
    let source = std::fs::read_to_string(&v.file)
        .map_err(|e| (FileStatus::Error, format!("{}: {e}", v.file.display())))?;
    let source = if v.url_path.contains(".sub.") {
        substitute(&source, &base)
    } else {
        source
    };
    if let Err(e) = ua.eval(realm, &source, test_url.as_str()) {
        error.get_or_insert(watchdog_words(e.to_string()));
    }
    // The file has loaded: our harness is told directly; with WPT's, a worker wrapper calls
    // done() (a window-less page completes when its tests do).
    let finish = if is_window {
        "if (typeof __bgsyncHarnessLoaded === 'function') __bgsyncHarnessLoaded();"
    } else {
        "if (typeof __bgsyncHarnessLoaded === 'function') __bgsyncHarnessLoaded(); else done();"
    };
    if let Err(e) = ua.eval(realm, finish, "runner-loaded.js") {
        error.get_or_insert(e.to_string());
    }

    let limit = if v.meta.long {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(10)
    }
    .mul_f64(setup.timeout_multiplier);
    let deadline = Instant::now() + limit;
    if !ua.run_until(deadline, UserAgent::has_host_reports) {
        // Time is up: ask the harness to time out and report what it has.
        let _ = ua.eval(
            realm,
            "typeof timeout === 'function' && timeout();",
            "runner-timeout.js",
        );
        if !ua.run_until(
            Instant::now() + Duration::from_millis(500),
            UserAgent::has_host_reports,
        ) {
            return Err((
                FileStatus::Timeout,
                format!("no result within {:.1} s", limit.as_secs_f64()),
            ));
        }
    }
    let reports = ua.take_host_reports();
    let report: Report = serde_json::from_str(&reports[0])
        .map_err(|e| (FileStatus::Crash, format!("unreadable harness report: {e}")))?;
    let mut status = match report.status {
        0 => FileStatus::Ok,
        1 => FileStatus::Error,
        2 => FileStatus::Timeout,
        _ => FileStatus::PreconditionFailed,
    };
    let mut message = report.message;
    if let Some(e) = error {
        if status == FileStatus::Ok {
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
    })
}

fn watchdog_words(e: String) -> String {
    if e.contains("interrupted") {
        format!("the script ran too long and was stopped by the watchdog: {e}")
    } else {
        e
    }
}

fn url_of(ua: &UserAgent, path: &str) -> Result<Url, Failure> {
    ua.url_for(path)
        .map_err(|e| (FileStatus::Crash, e.to_string()))
}

/// The spec-tests directory of this repository.
pub fn default_tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec-tests")
}
