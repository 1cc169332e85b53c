//! How a user agent is set up: what it serves (its "server", the origin its pages and worker
//! scripts come from), its engine's parameters and its limits.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bgsync::Parameters;
use url::Url;

/// How a [`UserAgent`](crate::UserAgent) is set up.
#[derive(Debug, Clone)]
pub struct UserAgentConfig {
    /// The directory URLs under `base_url` are served from (pages, worker scripts).
    pub root: PathBuf,
    /// The URL `root` is served at, e.g. `https://web-platform.test:8443/`.
    pub base_url: Url,
    /// The engine's parameters.
    pub params: Parameters,
    /// Keep registrations durably here; in memory when `None`.
    pub data_dir: Option<PathBuf>,
    /// How long one script run (a task, a callback) may take before the watchdog stops it.
    pub watchdog: Duration,
    /// URL paths (`/resources/testharness.js`) served from somewhere other than `root`:
    /// fixed text, or another file. Checked before `root`.
    pub served: HashMap<String, Served>,
    /// Other origins the same tree is served from (as WPT's server serves it under every host
    /// name it knows: `https://www.web-platform.test:8443/`, …), each as the URL of its `/`.
    /// Windows, frames and workers of these origins can be opened.
    pub origins: Vec<Url>,
    /// What a server substitutes in files with `.sub.` in their name (WPT's `{{host}}` and
    /// the like): each `(from, to)` pair is replaced in order.
    pub substitutions: Vec<(String, String)>,
    /// How much stack QuickJS may use, in bytes, counted from where [`UserAgent::new`] runs:
    /// deeper recursion throws a `RangeError` ("Maximum call stack size exceeded"). Keep it well
    /// below the thread's stack, or the thread overflows first and the process aborts. 0: no
    /// limit of QuickJS's own.
    ///
    /// [`UserAgent::new`]: crate::UserAgent::new
    pub stack_limit: usize,
    /// The most memory QuickJS may allocate for all realms together, in bytes; an allocation
    /// beyond it throws an `InternalError` ("out of memory") in the script that asked. `None`:
    /// no limit.
    pub memory_limit: Option<usize>,
}

/// What a URL path in [`UserAgentConfig::served`] serves.
#[derive(Debug, Clone)]
pub enum Served {
    /// This text.
    Text(String),
    /// This file.
    File(PathBuf),
}

impl UserAgentConfig {
    /// Serves `root` at `https://web-platform.test:8443/`, with Chromium's parameters, an
    /// in-memory store, a 10 s watchdog, a 1 MiB stack limit (QuickJS's own default: half the
    /// 2 MiB of a thread Rust spawns) and a 512 MiB memory limit.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        UserAgentConfig {
            root: root.into(),
            base_url: Url::parse("https://web-platform.test:8443/").expect("static URL"),
            params: Parameters::default(),
            data_dir: None,
            watchdog: Duration::from_secs(10),
            served: HashMap::new(),
            origins: Vec::new(),
            substitutions: Vec::new(),
            stack_limit: 1024 * 1024,
            memory_limit: Some(512 * 1024 * 1024),
        }
    }
}
