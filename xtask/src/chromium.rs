//! `cargo xtask chromium`: the spec-tests' window files on real Chromium and on our user agent,
//! side by side (docs/chromium.md).
//!
//! Chromium (Debian's `chromium`, headless; not `chromium-headless-shell`, which has Background
//! Sync disabled) is driven over the DevTools protocol. Each fixture runs unchanged: the page
//! loads our testharness implementation and a `bgsyncTest` / `test_driver` shim whose calls come
//! back to this driver over HTTP, which carries them out with DevTools commands and a frozen
//! libfaketime clock. Nothing is installed here; missing tools are named with the command that
//! installs them.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Where the fixtures' clocks start on Chromium (2030-01-01T00:00:00Z): our user agent's clock
/// starts at 0, and the log's times are reported relative to this.
const EPOCH_MS: u64 = 1_893_456_000_000;
/// How long one file may take on Chromium.
const FILE_TIMEOUT: Duration = Duration::from_secs(90);
/// libfaketime, as Debian's `faketime` package installs it.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// What the page asks of the driver, and where the answer goes.
struct Request {
    path: String,
    body: Value,
    reply: crossbeam_channel::Sender<Result<Value, String>>,
}

/// One subtest's result on one side.
#[derive(Debug, Clone, PartialEq)]
struct Subtest {
    status: String,
    message: Option<String>,
}

/// A file's results on one side: its status and its subtests by name.
#[derive(Debug, Clone, Default)]
struct FileResult {
    status: String,
    subtests: BTreeMap<String, Subtest>,
    /// Why a subtest has no result, when it was run alone and that failed.
    errors: BTreeMap<String, String>,
}

pub fn main(args: &[String]) -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("xtask has no parent directory")?
        .to_path_buf();
    let chromium = prerequisites()?;
    let dir = root.join("spec-tests").join("background-sync");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".window.js"))
        .filter(|p| {
            args.is_empty()
                || args
                    .iter()
                    .any(|a| p.to_string_lossy().contains(a.as_str()))
        })
        .collect();
    files.sort();
    let out = root.join("target").join("chromium");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;

    eprintln!("chromium: our user agent ...");
    let ours_json = out.join("ours.json");
    let mut ours_cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    ours_cmd
        .current_dir(&root)
        .args(["run", "--release", "--quiet", "-p", "wpt-runner", "--"])
        .arg("--json")
        .arg(&ours_json)
        .args(&files)
        .stdout(Stdio::null());
    let status = ours_cmd.status().map_err(|e| e.to_string())?;
    if !status.success() {
        eprintln!("chromium: (our user agent reported unexpected results: {status})");
    }
    let ours = read_report(&ours_json)?;

    let started = Instant::now();
    let mut theirs: BTreeMap<String, FileResult> = BTreeMap::new();
    for file in &files {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        let test = format!(
            "/background-sync/{}",
            name.replace(".window.js", ".window.html")
        );
        eprintln!("chromium: {test} ...");
        let names: Vec<String> = ours
            .get(&test)
            .map(|f| f.subtests.keys().cloned().collect())
            .unwrap_or_default();
        let result = run_file(&chromium, &root, file, &names).unwrap_or_else(|e| {
            eprintln!("chromium:   {e}");
            FileResult {
                status: format!("ERROR ({e})"),
                ..FileResult::default()
            }
        });
        theirs.insert(test, result);
    }
    let elapsed = started.elapsed();
    write_report(&out.join("chromium.json"), &theirs)?;

    let known = known_differences();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    println!("{:<10} {:<9} {:<9} subtest", "verdict", "chromium", "ours");
    for (test, mine) in &ours {
        let source = std::fs::read_to_string(
            dir.join(
                test.trim_start_matches("/background-sync/")
                    .replace(".window.html", ".window.js"),
            ),
        )
        .unwrap_or_default();
        let uses = controls_by_subtest(&source);
        let other = theirs.get(test);
        println!("{test}");
        for (name, sub) in &mine.subtests {
            let chromium = other.and_then(|f| f.subtests.get(name));
            let (verdict, why) = match chromium {
                _ if uses
                    .get(name)
                    .is_some_and(|u| u.iter().any(|c| NOT_COMPARABLE.contains(&c.as_str()))) =>
                {
                    let u = &uses[name];
                    let c = u
                        .iter()
                        .find(|c| NOT_COMPARABLE.contains(&c.as_str()))
                        .cloned()
                        .unwrap_or_default();
                    ("n/c", format!("{c}: {}", reason(&c)))
                }
                None => (
                    "n/c",
                    format!(
                        "no result on Chromium ({})",
                        other.map_or("not run".to_owned(), |f| f
                            .errors
                            .get(name)
                            .unwrap_or(&f.status)
                            .clone())
                    ),
                ),
                Some(c) if c.status == sub.status => ("agree", String::new()),
                Some(c) => (
                    "DIFFER",
                    known
                        .iter()
                        .find(|(k, _)| name.contains(k))
                        .map(|(_, why)| format!("known: {why}"))
                        .unwrap_or_else(|| c.message.clone().unwrap_or_default()),
                ),
            };
            *counts.entry(verdict).or_default() += 1;
            println!(
                "{:<10} {:<9} {:<9} {name}{}",
                verdict,
                chromium.map_or("-", |c| c.status.as_str()),
                sub.status,
                if why.is_empty() {
                    String::new()
                } else {
                    format!("  [{why}]")
                }
            );
        }
    }
    let total: usize = counts.values().sum();
    println!(
        "\n{} subtests: {} agree, {} differ, {} not comparable; Chromium ran {} files in {:.0} s",
        total,
        counts.get("agree").unwrap_or(&0),
        counts.get("DIFFER").unwrap_or(&0),
        counts.get("n/c").unwrap_or(&0),
        theirs.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "wptreport JSON: {} and {}",
        ours_json.display(),
        out.join("chromium.json").display()
    );
    Ok(())
}

/// Controls a page test cannot have carried out on Chromium.
const NOT_COMPARABLE: &[&str] = &[
    "restart",
    "setWindowClient",
    "timeLimit",
    "restartOffline",
    "openWindow",
    "addIframe",
    "clearSiteData",
];

fn reason(control: &str) -> &'static str {
    match control {
        "restart" => "a restart relaunches Chromium, which ends the page; it needs a driver-side before/after form",
        "setWindowClient" => "a page is always its own window client in Chromium",
        "restartOffline" => "Chromium, relaunched, is online until the driver can emulate offline on its worker, which starts only to fire the event",
        "timeLimit" => "the 3-minute event time limit runs on Chromium's monotonic clock, which the frozen wall clock does not move",
        "openWindow" | "addIframe" => "windows and frames of other origins: the driver serves the fixtures from one origin and has no remote-context executor",
        "clearSiteData" => "Clear-Site-Data needs a response header from a server of that origin; the driver's server serves one origin",
        _ => "",
    }
}

/// The differences reviewed in docs/chromium.md, by a piece of the subtest's name.
fn known_differences() -> Vec<(&'static str, &'static str)> {
    vec![
        ("each registration has its own tags", "getTags() order: Chromium sorts by UTF-8 bytes; the spec's list is in registration order"),
        ("permission denied holds", "Chromium fires while denied; we treat a denying origin as offline (spec: online may be per origin)"),
        ("while waiting sets it pending", "Chromium keeps the back-off; the spec's step 8.1 sets it pending"),
        ("permission is checked first", "Chromium checks the window first; the spec the permission (step 3)"),
        ("order they were registered", "Chromium sorts by UTF-8 bytes; the spec's list is in registration order"),
        ("lone surrogate", "a lone surrogate crashes Chromium's renderer"),
    ]
}

/// Which `bgsyncTest` controls each subtest of a fixture calls, by subtest name.
fn controls_by_subtest(source: &str) -> HashMap<String, Vec<String>> {
    let mut out = HashMap::new();
    // The time-limit file's subtests all wait for a hanging event's time limit.
    let all_time_limit = source.contains("META: title=The sync event's time limit");
    for block in source
        .split("promise_test(")
        .flat_map(|b| b.split("restartTest("))
        .flat_map(|b| b.split("\ntest("))
        .skip(1)
    {
        // The name is the string literal after the body's closing "}, " (its escapes undone).
        let Some(end) = block.rfind("}, ") else {
            continue;
        };
        let rest = &block[end + 3..];
        let Some(quote) = rest.chars().next() else {
            continue;
        };
        let mut name = String::new();
        let mut chars = rest[1..].chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => name.extend(chars.next()),
                c if c == quote => break,
                c => name.push(c),
            }
        }
        let mut controls = Vec::new();
        for part in block.split("bgsyncTest.").skip(1) {
            let c: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            controls.push(c);
        }
        // A restart while offline (restartTest's first half sets it).
        let before = block.split("}, async").next().unwrap_or("");
        if before.contains("setOnline(false)") && block.contains("}, async (t") {
            controls.push("restartOffline".to_owned());
        }
        // An event that never settles ('hang-') ends by the time limit, which advanceTime
        // cannot reach on Chromium.
        if (all_time_limit || block.contains("'hang-'"))
            && controls.iter().any(|c| c == "advanceTime")
        {
            controls.push("timeLimit".to_owned());
        }
        out.insert(name, controls);
    }
    out
}

/// Chromium (not the headless shell) and libfaketime, or what to install.
pub(crate) fn prerequisites() -> Result<PathBuf, String> {
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if chromium.to_string_lossy().contains("headless-shell") {
        return Err(format!(
            "{} is chromium-headless-shell, which has Background Sync disabled: install Debian's full browser (apt-get install -y chromium) and point CHROMIUM at it",
            chromium.display()
        ));
    }
    let mut missing = Vec::new();
    if !chromium.exists() {
        missing.push("chromium (Debian's full browser: chromium-headless-shell has Background Sync disabled)");
    }
    if !Path::new(LIBFAKETIME).exists() {
        missing.push("faketime (libfaketime, for the frozen wall clock advanceTime moves)");
    }
    if missing.is_empty() {
        return Ok(chromium);
    }
    Err(format!(
        "cargo xtask chromium needs {}.\nInstall with: apt-get install -y chromium faketime\n(or set CHROMIUM to another Chromium binary)",
        missing.join(" and ")
    ))
}

fn read_report(path: &Path) -> Result<BTreeMap<String, FileResult>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for r in v["results"].as_array().cloned().unwrap_or_default() {
        let mut f = FileResult {
            status: r["status"].as_str().unwrap_or("").to_owned(),
            ..FileResult::default()
        };
        for s in r["subtests"].as_array().cloned().unwrap_or_default() {
            f.subtests.insert(
                s["name"].as_str().unwrap_or("").to_owned(),
                Subtest {
                    status: s["status"].as_str().unwrap_or("").to_owned(),
                    message: s["message"].as_str().map(str::to_owned),
                },
            );
        }
        out.insert(r["test"].as_str().unwrap_or("").to_owned(), f);
    }
    Ok(out)
}

fn write_report(path: &Path, results: &BTreeMap<String, FileResult>) -> Result<(), String> {
    let results: Vec<Value> = results
        .iter()
        .map(|(test, f)| {
            json!({
                "test": test,
                "status": f.status,
                "subtests": f.subtests.iter().map(|(name, s)| json!({
                    "name": name, "status": s.status, "message": s.message,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let report = json!({
        "run_info": { "product": "chromium", "os": "linux" },
        "results": results,
    });
    std::fs::write(
        path,
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())
}

/// A DevTools protocol connection (one WebSocket, flat sessions).
struct Cdp {
    ws: tungstenite::WebSocket<TcpStream>,
    next_id: u64,
    events: VecDeque<Value>,
}

impl Cdp {
    fn connect(port: u16, path: &str) -> Result<Cdp, String> {
        let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        let url = format!("ws://127.0.0.1:{port}{path}");
        let (ws, _) = tungstenite::client(url.as_str(), stream).map_err(|e| e.to_string())?;
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(20)))
            .map_err(|e| e.to_string())?;
        Ok(Cdp {
            ws,
            next_id: 1,
            events: VecDeque::new(),
        })
    }

    /// One message, or `None` when nothing arrived within the read timeout.
    fn read(&mut self) -> Result<Option<Value>, String> {
        match self.ws.read() {
            Ok(tungstenite::Message::Text(t)) => serde_json::from_str(t.as_str())
                .or_else(|_| serde_json::from_str(&without_lone_surrogates(t.as_str())))
                .map(Some)
                .map_err(|e| e.to_string()),
            Ok(tungstenite::Message::Binary(b)) => {
                // Text with lone surrogates (invalid UTF-8) is read as bytes, lossily.
                serde_json::from_str(&String::from_utf8_lossy(&b))
                    .map(Some)
                    .map_err(|e| e.to_string())
            }
            Ok(_) => Ok(None),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(format!("DevTools connection: {e}")),
        }
    }

    fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(tungstenite::Message::text(msg.to_string()))
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        // A session of a target that went away never answers: give up soon.
        let deadline = started + Duration::from_secs(if session.is_some() { 2 } else { 10 });
        while Instant::now() < deadline {
            let Some(v) = self.read()? else { continue };
            if v["id"] == json!(id) {
                if std::env::var_os("BGSYNC_CHROMIUM_DEBUG").is_some()
                    && started.elapsed() > Duration::from_millis(500)
                {
                    eprintln!(
                        "chromium:   slow {method}: {} ms",
                        started.elapsed().as_millis()
                    );
                }
                if let Some(err) = v.get("error") {
                    return Err(format!("{method}: {err}"));
                }
                return Ok(v["result"].clone());
            }
            self.events.push_back(v);
        }
        if std::env::var_os("BGSYNC_CHROMIUM_DEBUG").is_some() {
            eprintln!("chromium:   {method} {session:?}: no answer");
        }
        Err(format!("{method}: no answer"))
    }

    /// Reads what arrives for `wait`, keeping the events.
    fn pump(&mut self, wait: Duration) -> Result<(), String> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(v) = self.read()? {
                self.events.push_back(v);
            }
            if Instant::now() >= deadline {
                return Ok(());
            }
        }
    }
}

/// JSON text with every `\uXXXX` escape of a lone surrogate replaced by U+FFFD's: DevTools
/// escapes a tag's lone surrogates so, and serde_json (rightly) refuses them.
fn without_lone_surrogates(text: &str) -> String {
    let escape = |i: usize| -> Option<u16> {
        if text.get(i..i + 2)? != "\\u" {
            return None;
        }
        u16::from_str_radix(text.get(i + 2..i + 6)?, 16).ok()
    };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text.as_bytes()[i] == b'\\' {
            if let Some(u) = escape(i) {
                let high = (0xD800..0xDC00).contains(&u);
                let low = (0xDC00..0xE000).contains(&u);
                let paired = high && escape(i + 6).is_some_and(|n| (0xDC00..0xE000).contains(&n));
                if paired {
                    out.push_str(&text[i..i + 12]);
                    i += 12;
                    continue;
                }
                if high || low {
                    out.push_str("\\ufffd");
                    i += 6;
                    continue;
                }
            }
            // Any other escape: copied whole, so that an escaped backslash is not read again.
            let len = if escape(i).is_some() { 6 } else { 2 };
            out.push_str(text.get(i..i + len).unwrap_or(&text[i..]));
            i += len;
            continue;
        }
        let c = text[i..].chars().next().unwrap_or('\0');
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// One log line, as `bgsyncTest.log()` gives it.
fn log_entry(event: &Value) -> Option<Value> {
    let e = &event["params"]["backgroundServiceEvent"];
    let meta: HashMap<String, String> = e["eventMetadata"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|kv| {
                    (
                        kv["key"].as_str().unwrap_or("").to_owned(),
                        kv["value"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let time = (e["timestamp"].as_f64()? * 1000.0).round() as i64 - EPOCH_MS as i64;
    let tag = e["instanceId"].as_str()?.to_owned();
    let entry = match e["eventName"].as_str()? {
        "Registered sync" => json!({ "type": "registered", "tag": tag, "time": time }),
        "Sync event reregistered" => json!({ "type": "reregistered", "tag": tag, "time": time }),
        "Dispatched sync event" => json!({
            "type": "dispatched", "tag": tag, "time": time,
            "lastChance": meta.get("Last Chance").is_some_and(|v| v == "Yes" || v == "true"),
        }),
        "Sync completed" => json!({ "type": "completed", "tag": tag, "time": time,
            "outcome": if meta.get("Status").is_some_and(|s| s == "succeeded") { "fulfilled" } else { "rejected" } }),
        "sync event failed" => json!({ "type": "completed", "tag": tag, "time": time,
            "outcome": failure(meta.get("Failure Reason")),
            "nextDelay": meta.get("Next Attempt Delay (ms)").and_then(|d| d.parse::<u64>().ok()) }),
        _ => return None,
    };
    Some(entry)
}

/// Our log's outcome for Chromium's failure reason.
fn failure(reason: Option<&String>) -> &'static str {
    let reason = reason.map(|r| r.to_ascii_lowercase()).unwrap_or_default();
    // Chromium's panel says "waitUntil rejected" for a rejection and "failed" when the worker
    // was stopped mid-event.
    if reason.contains("waituntil") {
        "rejected"
    } else if reason.contains("timeout") || reason.contains("timed out") {
        "timeout"
    } else {
        "terminated"
    }
}

/// A Chromium under a frozen clock, with a page and its service workers attached.
struct Browser {
    child: Child,
    cdp: Cdp,
    page: String,
    /// Service worker targets attached: (target id, session id).
    workers: Vec<(String, String)>,
    clock_file: PathBuf,
    now: u64,
    log: Vec<Value>,
    origin: String,
    scope: Option<String>,
    /// The workers were stopped: the next nudge starts one and attaches afresh.
    stopped: bool,
    /// The page's target, and whether its renderer crashed.
    page_target: String,
    crashed: bool,
    /// Whether the page set the network online, and the permission it set.
    online: bool,
    permission: String,
    /// The subtests across a restart the page named, and the state a first half handed over.
    restart_tests: Vec<String>,
    saved: Value,
    /// The profile, kept across a relaunch.
    profile: Option<tempfile::TempDir>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    /// Launches Chromium on `profile` (a fresh one if none) with its clock at `now`.
    fn launch(
        chromium: &Path,
        origin: &str,
        profile: Option<tempfile::TempDir>,
        now: u64,
    ) -> Result<Browser, String> {
        let profile = match profile {
            Some(p) => p,
            None => tempfile::tempdir().map_err(|e| e.to_string())?,
        };
        let clock_file = profile.path().join("faketime");
        write_clock(&clock_file, EPOCH_MS + now)?;
        // A relaunch finds the last run's port file: wait for the new one.
        let _ = std::fs::remove_file(profile.path().join("DevToolsActivePort"));
        let child = Command::new(chromium)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .env("LD_PRELOAD", LIBFAKETIME)
            .env("FAKETIME_TIMESTAMP_FILE", &clock_file)
            .env("FAKETIME_NO_CACHE", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .env("FAKETIME_FORCE_MONOTONIC_FIX", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", chromium.display()))?;
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(20);
        let (port, path) = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                let mut lines = text.lines();
                if let (Some(p), Some(path)) = (lines.next(), lines.next()) {
                    if let Ok(p) = p.parse::<u16>() {
                        break (p, path.to_owned());
                    }
                }
            }
            if Instant::now() > deadline {
                return Err("Chromium did not open its DevTools port in 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut cdp = Cdp::connect(port, &path)?;
        cdp.call(
            None,
            "Target.setDiscoverTargets",
            json!({ "discover": true }),
        )?;
        let target = cdp.call(None, "Target.createTarget", json!({ "url": "about:blank" }))?;
        let session = cdp.call(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        )?;
        let page = session["sessionId"].as_str().unwrap_or("").to_owned();
        cdp.call(Some(&page), "Inspector.enable", json!({}))?;
        // The log: Chromium's Background Services recording of Background Sync.
        cdp.call(
            Some(&page),
            "BackgroundService.startObserving",
            json!({ "service": "backgroundSync" }),
        )?;
        cdp.call(
            Some(&page),
            "BackgroundService.setRecording",
            json!({ "shouldRecord": true, "service": "backgroundSync" }),
        )?;
        cdp.call(
            None,
            "Browser.setPermission",
            json!({ "permission": { "name": "background-sync" }, "setting": "granted", "origin": origin }),
        )?;
        Ok(Browser {
            child,
            cdp,
            page,
            workers: Vec::new(),
            clock_file,
            now,
            log: Vec::new(),
            origin: origin.to_owned(),
            scope: None,
            stopped: false,
            page_target: target["targetId"].as_str().unwrap_or("").to_owned(),
            crashed: false,
            online: true,
            permission: "granted".to_owned(),
            restart_tests: Vec::new(),
            saved: Value::Null,
            profile: Some(profile),
        })
    }

    /// A restart: Chromium closes as a user closes it and is launched again on the same
    /// profile and clock, with the page's network and permission settings and the log kept.
    fn relaunch(mut self, chromium: &Path) -> Result<Browser, String> {
        // Chromium waits for an event in flight before it closes; after 5 s it is stopped as
        // the system stops it (SIGTERM), then killed.
        // What Chromium recorded is in the log already: cleared, so that the next launch does
        // not replay it.
        self.cdp.call(
            Some(&self.page),
            "BackgroundService.clearEvents",
            json!({ "service": "backgroundSync" }),
        )?;
        let _ = self.cdp.call(None, "Browser.close", json!({}));
        let mut waited = Instant::now();
        let mut signal = "-TERM";
        while self.child.try_wait().ok().flatten().is_none() {
            if waited.elapsed() > Duration::from_secs(5) {
                if signal == "-KILL" {
                    let _ = self.child.kill();
                } else {
                    let _ = Command::new("kill")
                        .args([signal, &self.child.id().to_string()])
                        .status();
                }
                signal = "-KILL";
                waited = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut next = Browser::launch(chromium, &self.origin, self.profile.take(), self.now)?;
        next.log = std::mem::take(&mut self.log);
        next.scope = self.scope.take();
        next.saved = std::mem::take(&mut self.saved);
        next.online = self.online;
        // No worker runs after a relaunch: the next nudge starts one.
        next.stopped = true;
        next.permission = std::mem::take(&mut self.permission);
        if next.permission != "granted" {
            next.cdp.call(
                None,
                "Browser.setPermission",
                json!({ "permission": { "name": "background-sync" }, "setting": next.permission, "origin": next.origin }),
            )?;
        }
        Ok(next)
    }

    /// Takes the events read so far: attaches service workers, records log lines.
    fn drain(&mut self) -> Result<(), String> {
        while let Some(v) = self.cdp.events.pop_front() {
            match v["method"].as_str().unwrap_or("") {
                "Target.targetCreated" | "Target.targetInfoChanged"
                    if v["params"]["targetInfo"]["type"] == "service_worker"
                        && v["params"]["targetInfo"]["attached"] == json!(false) =>
                {
                    let id = v["params"]["targetInfo"]["targetId"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned();
                    if !self.workers.iter().any(|(t, _)| *t == id) {
                        self.attach_worker(id);
                    }
                }
                "Target.detachedFromTarget" => {
                    let s = v["params"]["sessionId"].as_str().unwrap_or("");
                    self.workers.retain(|(_, w)| w != s);
                }
                "Inspector.targetCrashed" if v["sessionId"] == json!(self.page) => {
                    self.crashed = true
                }
                "Target.targetCrashed" if v["params"]["targetId"] == json!(self.page_target) => {
                    self.crashed = true
                }
                "Target.targetDestroyed" => {
                    let t = v["params"]["targetId"].as_str().unwrap_or("");
                    self.workers.retain(|(w, _)| w != t);
                }
                "BackgroundService.backgroundServiceEventReceived" => {
                    if std::env::var_os("BGSYNC_CHROMIUM_DEBUG").is_some() {
                        eprintln!(
                            "chromium:   event {}",
                            v["params"]["backgroundServiceEvent"]
                        );
                    }
                    if let Some(e) = log_entry(&v) {
                        self.log.push(e);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn pump(&mut self, wait: Duration) -> Result<(), String> {
        self.cdp.pump(wait)?;
        self.drain()
    }

    fn set_offline(&mut self, offline: bool) -> Result<(), String> {
        self.drain()?;
        for (target, w) in self.workers.clone() {
            if self.emulate_offline(&w, offline).is_err() {
                // A worker that stopped: its session answers nothing any more.
                self.workers.retain(|(t, _)| *t != target);
                self.stopped = true;
            }
        }
        Ok(())
    }

    fn emulate_offline(&mut self, session: &str, offline: bool) -> Result<Value, String> {
        self.cdp.call(Some(session), "Network.enable", json!({}))?;
        self.cdp.call(
            Some(session),
            "Network.emulateNetworkConditions",
            json!({ "offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1 }),
        )
    }

    /// Attaches to the service worker target `id` (a flat session of its own), offline if
    /// the page set the network offline.
    fn attach_worker(&mut self, id: String) {
        if let Ok(s) = self.cdp.call(
            None,
            "Target.attachToTarget",
            json!({ "targetId": id, "flatten": true }),
        ) {
            if let Some(s) = s["sessionId"].as_str() {
                if !self.online {
                    let _ = self.emulate_offline(s, true);
                }
                self.workers.push((id, s.to_owned()));
            }
        }
    }

    /// Attaches afresh to every service worker target: a session of a worker that was stopped
    /// answers nothing, even once the worker runs again.
    fn reattach_workers(&mut self) -> Result<(), String> {
        for (_, session) in std::mem::take(&mut self.workers) {
            let _ = self.cdp.call(
                None,
                "Target.detachFromTarget",
                json!({ "sessionId": session }),
            );
        }
        let targets = self.cdp.call(None, "Target.getTargets", json!({}))?;
        for t in targets["targetInfos"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            if t["type"] != "service_worker" {
                continue;
            }
            self.attach_worker(t["targetId"].as_str().unwrap_or("").to_owned());
        }
        Ok(())
    }

    /// Makes Chromium look again at what is due: the worker goes offline and back.
    fn nudge(&mut self, online: bool) -> Result<(), String> {
        if self.stopped {
            self.stopped = false;
            if let Some(scope) = self.scope.clone() {
                self.cdp
                    .call(Some(&self.page), "ServiceWorker.enable", json!({}))?;
                let started = self.cdp.call(
                    Some(&self.page),
                    "ServiceWorker.startWorker",
                    json!({ "scopeURL": scope }),
                );
                if std::env::var_os("BGSYNC_CHROMIUM_DEBUG").is_some() {
                    eprintln!("chromium:   startWorker {scope}: {started:?}");
                }
                self.pump(Duration::from_millis(200))?;
            }
            self.reattach_workers()?;
        }
        if std::env::var_os("BGSYNC_CHROMIUM_DEBUG").is_some() {
            eprintln!("chromium:   nudge through {} worker(s)", self.workers.len());
        }
        self.set_offline(true)?;
        self.pump(Duration::from_millis(100))?;
        if online {
            self.set_offline(false)?;
        }
        self.pump(Duration::from_millis(100))
    }

    /// Events dispatched and not completed.
    fn in_flight(&self) -> i64 {
        let count = |t: &str| self.log.iter().filter(|e| e["type"] == t).count() as i64;
        count("dispatched") - count("completed")
    }

    /// The end of each back-off the log announces, after `after`.
    fn due_times(&self, after: u64) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .log
            .iter()
            .filter_map(|e| {
                let t = u64::try_from(e["time"].as_i64()?).ok()?;
                Some(t + e["nextDelay"].as_u64()?)
            })
            .filter(|d| *d > after)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    fn control(&mut self, body: &Value) -> Result<Value, String> {
        let op = body["op"].as_str().unwrap_or("");
        self.drain()?;
        match op {
            "setOnline" => {
                self.online = body["arg"].as_bool().unwrap_or(true);
                self.set_offline(!self.online)?;
                self.pump(Duration::from_millis(300))?;
            }
            "setPermission" => {
                let state = body["arg"].as_str().unwrap_or("granted");
                self.permission = state.to_owned();
                self.cdp.call(
                    None,
                    "Browser.setPermission",
                    json!({ "permission": { "name": "background-sync" }, "setting": state, "origin": self.origin }),
                )?;
                self.pump(Duration::from_millis(300))?;
            }
            "terminateWorker" => {
                self.cdp
                    .call(Some(&self.page), "ServiceWorker.enable", json!({}))?;
                self.cdp
                    .call(Some(&self.page), "ServiceWorker.stopAllWorkers", json!({}))?;
                self.stopped = true;
                self.pump(Duration::from_millis(300))?;
            }
            "advanceTime" => {
                let target = self.now + body["arg"].as_u64().unwrap_or(0);
                // Stop just before each back-off ending on the way, so that Chromium arms its
                // timer, then at it.
                loop {
                    self.pump(Duration::from_millis(100))?;
                    let Some(due) = self.due_times(self.now).into_iter().find(|d| *d <= target)
                    else {
                        break;
                    };
                    self.now = due.saturating_sub(1).max(self.now);
                    write_clock(&self.clock_file, EPOCH_MS + self.now)?;
                    self.nudge(self.online)?;
                    self.now = due;
                    write_clock(&self.clock_file, EPOCH_MS + self.now)?;
                    let before = self.log.len();
                    let deadline = Instant::now() + Duration::from_secs(3);
                    while self.log.len() == before && Instant::now() < deadline {
                        self.pump(Duration::from_millis(50))?;
                    }
                    self.pump(Duration::from_millis(200))?;
                }
                self.now = target;
                write_clock(&self.clock_file, EPOCH_MS + self.now)?;
                self.nudge(self.online)?;
                self.pump(Duration::from_millis(200))?;
            }
            "idle" => {
                let deadline = Instant::now() + Duration::from_secs(10);
                self.pump(Duration::from_millis(300))?;
                while self.in_flight() > 0 && Instant::now() < deadline {
                    self.pump(Duration::from_millis(100))?;
                }
            }
            "log" => {
                self.pump(Duration::from_millis(200))?;
                let log: Vec<Value> = self
                    .log
                    .iter()
                    .map(|e| {
                        let mut e = e.clone();
                        if let Some(o) = e.as_object_mut() {
                            o.remove("nextDelay");
                        }
                        e
                    })
                    .collect();
                return Ok(Value::Array(log));
            }
            "scope" => {
                self.scope = body["arg"].as_str().map(str::to_owned);
            }
            "restartTest" => {
                self.restart_tests
                    .push(body["arg"].as_str().unwrap_or("").to_owned());
            }
            "saveState" => self.saved = body["arg"].clone(),
            "loadState" => return Ok(self.saved.clone()),
            other => {
                return Err(format!(
                    "bgsyncTest.{other} cannot be carried out on Chromium"
                ))
            }
        }
        Ok(Value::Null)
    }
}

fn write_clock(file: &Path, ms: u64) -> Result<(), String> {
    // Atomically: libfaketime re-reads the file at every clock call.
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let text = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}\n",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    );
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, file).map_err(|e| e.to_string())
}

/// Days since 1970-01-01 to a (year, month, day) date (the proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Runs one fixture file on Chromium.
///
/// When the page's renderer crashes, each of `names` (the subtests our user agent ran) is run
/// alone in a Chromium of its own, so that one crashing subtest does not hide the others.
fn run_file(
    chromium: &Path,
    root: &Path,
    file: &Path,
    names: &[String],
) -> Result<FileResult, String> {
    let name = file
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let page = name.replace(".window.js", ".window.html");
    let (origin, rx) = start_server(root, name, Extra::new())?;
    let url = format!("{origin}/background-sync/{page}");
    let mut browser = Browser::launch(chromium, &origin, None, 0)?;
    let mut result = match run_page(&mut browser, &rx, &url) {
        Ok(body) => results_of(&body),
        Err(e) if browser.crashed => {
            eprintln!("chromium:   {e}: each subtest alone");
            let _ = browser.child.kill();
            let mut result = FileResult {
                status: format!("CRASH ({e})"),
                ..FileResult::default()
            };
            for name in names {
                let page = format!("{url}?only={}", percent_encoded(name));
                let mut browser = Browser::launch(chromium, &origin, None, 0)?;
                match run_page(&mut browser, &rx, &page) {
                    Ok(body) => result.subtests.extend(results_of(&body).subtests),
                    Err(e) => {
                        result.errors.insert(name.clone(), e);
                    }
                }
            }
            result
        }
        Err(e) => return Err(e),
    };
    let halves = std::mem::take(&mut browser.restart_tests);
    drop(browser);
    for name in halves {
        match run_restart_test(chromium, &origin, &rx, &url, &name) {
            Ok(sub) => {
                result.subtests.insert(name, sub);
            }
            Err(e) => eprintln!("chromium:   {name}: {e}"),
        }
    }
    Ok(result)
}

/// Serves the fixture `name` (and `extra`) on a port of its own, a thread per connection; the
/// page's requests to the driver arrive on the receiver. Gives the origin.
fn start_server(
    root: &Path,
    name: String,
    extra: Extra,
) -> Result<(String, crossbeam_channel::Receiver<Request>), String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let (tx, rx) = crossbeam_channel::unbounded::<Request>();
    let root = root.to_path_buf();
    let extra = std::sync::Arc::new(extra);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (tx, root, name, extra) = (tx.clone(), root.clone(), name.clone(), extra.clone());
            std::thread::spawn(move || {
                let _ = serve(stream, &root, &name, &tx, &extra);
            });
        }
    });
    Ok((format!("http://localhost:{port}"), rx))
}

/// Runs `script` (an async expression) in a page of a fresh Chromium with the `bgsyncTest`
/// shim, `sw` served at /bench/sw.js; gives what the expression resolved to.
pub(crate) fn run_bench_page(chromium: &Path, script: &str, sw: &str) -> Result<Value, String> {
    let mut extra = Extra::new();
    extra.insert(
        "/bench/index.html".into(),
        (
            "text/html",
            format!(
                "<!doctype html>\n<meta charset=utf-8>\n<script src=\"/__shim.js\"></script>\n<script>\n{script}.then((r) => fetch('/__results', {{ method: 'POST', body: JSON.stringify({{ ok: r }}) }}), (e) => fetch('/__results', {{ method: 'POST', body: JSON.stringify({{ error: String(e) }}) }}));\n</script>\n"
            )
            .into_bytes(),
        ),
    );
    extra.insert(
        "/bench/sw.js".into(),
        ("text/javascript", sw.as_bytes().to_vec()),
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let (origin, rx) = start_server(&root, String::new(), extra)?;
    let mut browser = Browser::launch(chromium, &origin, None, 0)?;
    let body = run_page(&mut browser, &rx, &format!("{origin}/bench/index.html"))?;
    match body.get("ok") {
        Some(v) => Ok(v.clone()),
        None => Err(format!("the page failed: {}", body["error"])),
    }
}

/// `chromium --version`'s line.
pub(crate) fn version(chromium: &Path) -> String {
    Command::new(chromium)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "Chromium".into())
}

/// Runs a subtest across a restart (helpers.js's `restartTest`) in a Chromium of its own: the
/// first half, a relaunch on the same profile, the second half.
fn run_restart_test(
    chromium: &Path,
    origin: &str,
    rx: &crossbeam_channel::Receiver<Request>,
    url: &str,
    name: &str,
) -> Result<Subtest, String> {
    let page = format!("{url}?only={}&half=", percent_encoded(name));
    let mut browser = Browser::launch(chromium, origin, None, 0)?;
    let first = results_of(&run_page(&mut browser, rx, &format!("{page}before"))?);
    let sub = first
        .subtests
        .get(name)
        .cloned()
        .ok_or("the first half did not run")?;
    if sub.status != "PASS" {
        return Ok(sub);
    }
    let mut browser = browser.relaunch(chromium)?;
    let second = results_of(&run_page(&mut browser, rx, &format!("{page}after"))?);
    second
        .subtests
        .get(name)
        .cloned()
        .ok_or_else(|| "the second half did not run".to_owned())
}

/// `text` as a URL query value.
fn percent_encoded(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Loads `url` in the browser's page and carries out its controls until it reports results.
fn run_page(
    browser: &mut Browser,
    rx: &crossbeam_channel::Receiver<Request>,
    url: &str,
) -> Result<Value, String> {
    let page = browser.page.clone();
    browser
        .cdp
        .call(Some(&page), "Page.navigate", json!({ "url": url }))?;
    let deadline = Instant::now() + FILE_TIMEOUT;
    while Instant::now() < deadline {
        browser.pump(Duration::from_millis(20))?;
        while let Ok(req) = rx.try_recv() {
            if req.path == "/__results" {
                let _ = req.reply.send(Ok(Value::Null));
                return Ok(req.body);
            }
            let t = Instant::now();
            let answer = browser.control(&req.body);
            if std::env::var_os("BGSYNC_CHROMIUM_DEBUG").is_some() {
                eprintln!(
                    "chromium:   {} -> {answer:?} ({} ms)",
                    req.body,
                    t.elapsed().as_millis()
                );
            }
            let _ = req.reply.send(answer);
        }
        if browser.child.try_wait().ok().flatten().is_some() {
            return Err("Chromium exited".into());
        }
        if browser.crashed {
            return Err("the page's renderer crashed".into());
        }
    }
    Err(format!("no results in {} s", FILE_TIMEOUT.as_secs()))
}

fn results_of(body: &Value) -> FileResult {
    const TEST: [&str; 5] = ["PASS", "FAIL", "TIMEOUT", "NOTRUN", "PRECONDITION_FAILED"];
    const HARNESS: [&str; 4] = ["OK", "ERROR", "TIMEOUT", "PRECONDITION_FAILED"];
    let mut f = FileResult {
        status: HARNESS
            .get(body["status"]["status"].as_u64().unwrap_or(1) as usize)
            .unwrap_or(&"ERROR")
            .to_string(),
        ..FileResult::default()
    };
    for t in body["tests"].as_array().cloned().unwrap_or_default() {
        f.subtests.insert(
            t["name"].as_str().unwrap_or("").to_owned(),
            Subtest {
                status: TEST
                    .get(t["status"].as_u64().unwrap_or(1) as usize)
                    .unwrap_or(&"FAIL")
                    .to_string(),
                message: t["message"].as_str().map(str::to_owned),
            },
        );
    }
    f
}

/// The page's side of the driver: the shim every fixture page loads.
const SHIM: &str = r#"
'use strict';
(function (G) {
  async function control(op, arg) {
    const r = await fetch('/__control', { method: 'POST', body: JSON.stringify({ op, arg }) });
    const v = await r.json();
    if (v.error) throw new Error(v.error);
    return v.ok;
  }
  // Lone surrogates become U+FFFD, as the runner's own report has them (JSON text must be
  // well-formed for the driver to read it).
  const wellFormed = (k, v) => (typeof v === 'string' ? v.toWellFormed() : v);
  G.__bgsyncHostReport = (o) => fetch('/__results', { method: 'POST', body: JSON.stringify(o, wellFormed) });
  G.bgsyncTest = {
    setOnline: (b) => control('setOnline', !!b),
    advanceTime: (ms) => control('advanceTime', Number(ms)),
    idle: () => control('idle'),
    log: () => control('log'),
    terminateWorker: () => control('terminateWorker'),
    restart: () => control('restart'),
    setWindowClient: (b) => control('setWindowClient', !!b),
    splitRestart,
  };
  // `?only=NAME` runs one subtest of the file (the driver runs each alone when the page's
  // renderer crashed). A restart relaunches Chromium, which ends the page, so a subtest across a
  // restart runs in halves (helpers.js's restartTest): a page without `half` only names it to
  // the driver; `?only=NAME&half=before` runs its first half and hands its state to the driver,
  // which relaunches Chromium on the same profile for `&half=after`.
  const query = new URLSearchParams(location.search);
  const only = query.get('only');
  const half = query.get('half');
  let registering = false;
  if (only !== null) {
    for (const f of ['test', 'async_test', 'promise_test']) {
      const original = G[f];
      G[f] = (...args) => (registering || args[1] === only ? original(...args) : undefined);
    }
  }
  function splitRestart(before, after, name) {
    if (half === null) {
      if (only === null || only === name) control('restartTest', name);
      return;
    }
    if (name !== only) return;
    registering = true;
    try {
      if (half === 'before') {
        // The browser is relaunched after this half: cleanups wait for the second.
        promise_test(async (t) => {
          const quiet = Object.create(t, { add_cleanup: { value: () => {} } });
          await control('saveState', await before(quiet));
        }, name);
      } else {
        promise_test(async (t) => after(t, await control('loadState')), name);
      }
    } finally {
      registering = false;
    }
  }
  G.test_driver = {
    set_permission: (descriptor, state) => control('setPermission', state),
  };
  // The driver restarts the worker by its scope when it must poke it.
  const register = navigator.serviceWorker.register.bind(navigator.serviceWorker);
  navigator.serviceWorker.register = (url, options) => {
    const scope = new URL((options && options.scope) || './', new URL(url, location.href)).href;
    control('scope', scope);
    return register(url, options);
  };
})(self);
"#;

/// The HTML page of a `.window.js` fixture, as wptserve builds it.
fn window_page(name: &str, source: &str) -> String {
    let mut scripts = String::new();
    for line in source.lines() {
        let Some(meta) = line.strip_prefix("// META:") else {
            if !line.starts_with("//") {
                break;
            }
            continue;
        };
        if let Some(src) = meta.trim().strip_prefix("script=") {
            scripts.push_str(&format!("<script src=\"{src}\"></script>\n"));
        }
    }
    format!(
        "<!doctype html>\n<meta charset=utf-8>\n<script src=\"/resources/testharness.js\"></script>\n<script src=\"/__shim.js\"></script>\n<script src=\"/resources/testharnessreport.js\"></script>\n{scripts}<div id=log></div>\n<script src=\"/background-sync/{name}\"></script>\n"
    )
}

/// Pages served besides the fixtures: path → (content type, body).
type Extra = HashMap<String, (&'static str, Vec<u8>)>;

fn serve(
    stream: TcpStream,
    root: &Path,
    name: &str,
    tx: &crossbeam_channel::Sender<Request>,
    extra: &Extra,
) -> Result<(), String> {
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).map_err(|e| e.to_string())? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    let path = path.split('?').next().unwrap_or("/").to_owned();
    let (status, kind, content): (&str, &str, Vec<u8>) =
        if path == "/__control" || path == "/__results" {
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let (reply, answer) = crossbeam_channel::bounded(1);
            tx.send(Request {
                path: path.clone(),
                body,
                reply,
            })
            .map_err(|e| e.to_string())?;
            let v = match answer.recv_timeout(FILE_TIMEOUT) {
                Ok(Ok(v)) => json!({ "ok": v }),
                Ok(Err(e)) => json!({ "error": e }),
                Err(_) => json!({ "error": "the driver did not answer" }),
            };
            ("200 OK", "application/json", v.to_string().into_bytes())
        } else if let Some((kind, body)) = extra.get(&path) {
            ("200 OK", *kind, body.clone())
        } else if path == "/__shim.js" {
            ("200 OK", "text/javascript", SHIM.as_bytes().to_vec())
        } else if path == "/resources/testharness.js" {
            file(&root.join("wpt-runner/js/harness.js"))
        } else if path == "/resources/testharnessreport.js" {
            file(&root.join("wpt-runner/js/report.js"))
        } else if path == "/resources/testdriver.js" || path == "/resources/testdriver-vendor.js" {
            (
                "200 OK",
                "text/javascript",
                b"// test_driver is the shim's\n".to_vec(),
            )
        } else if path.ends_with(".window.html") {
            let js = name.to_owned();
            let source = std::fs::read_to_string(root.join("spec-tests/background-sync").join(&js))
                .unwrap_or_default();
            (
                "200 OK",
                "text/html",
                window_page(&js, &source).into_bytes(),
            )
        } else {
            let rel = path.trim_start_matches('/');
            if rel.contains("..") {
                ("404 Not Found", "text/plain", Vec::new())
            } else {
                let (status, kind, body) = file(&root.join("spec-tests").join(rel));
                if rel.contains(".sub.") {
                    let text = String::from_utf8_lossy(&body).into_owned();
                    (status, kind, substitute(&text).into_bytes())
                } else {
                    (status, kind, body)
                }
            }
        };
    let mut stream = stream;
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        content.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(&content))
        .map_err(|e| e.to_string())
}

/// wptserve's templates in a `.sub.` file, for this driver's one server: the page's own host is
/// `localhost`; the other hosts are WPT's names, which Chromium never reaches here (subtests
/// that open them are not comparable), but which make well-formed URLs of other origins.
fn substitute(text: &str) -> String {
    let mut out = text
        .replace("{{host}}", "localhost")
        .replace("{{hosts[alt][]}}", "not-web-platform.test")
        .replace("{{ports[https][0]}}", "8443")
        .replace("{{ports[https][1]}}", "8444")
        .replace("{{ports[http][0]}}", "8000")
        .replace("{{ports[http][1]}}", "8001");
    for sub in ["www", "www1", "www2"] {
        out = out
            .replace(
                &format!("{{{{domains[{sub}]}}}}"),
                &format!("{sub}.localhost"),
            )
            .replace(
                &format!("{{{{hosts[alt][{sub}]}}}}"),
                &format!("{sub}.not-web-platform.test"),
            );
    }
    out
}

fn file(path: &Path) -> (&'static str, &'static str, Vec<u8>) {
    let kind = match path.extension().and_then(|e| e.to_str()) {
        Some("js") => "text/javascript",
        Some("html") => "text/html",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    match std::fs::read(path) {
        Ok(b) => ("200 OK", kind, b),
        Err(_) => ("404 Not Found", "text/plain", Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_file_names_the_date() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(EPOCH_MS as i64 / 86_400_000), (2030, 1, 1));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t");
        write_clock(&f, EPOCH_MS + 5 * 60_000 + 7).unwrap();
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            "2030-01-01 00:05:00.007\n"
        );
    }

    #[test]
    fn lone_surrogate_escapes_become_replacement_characters() {
        let text = r#"{"a":"x\ud800y","b":"\ud83d\udce7","c":"\\ud800","d":"\udc00"}"#;
        let fixed = without_lone_surrogates(text);
        let v: Value = serde_json::from_str(&fixed).unwrap();
        assert_eq!(v["a"], "x\u{fffd}y");
        assert_eq!(v["b"], "\u{1F4E7}");
        assert_eq!(v["c"], "\\ud800", "an escaped backslash is not an escape");
        assert_eq!(v["d"], "\u{fffd}");
    }

    #[test]
    fn subtests_are_mapped_to_the_controls_they_use() {
        let src = "promise_test(async () => {\n await bgsyncTest.restart();\n}, 'a restart');\npromise_test(async (t) => {\n await bgsyncTest.setOnline(false);\n}, \"offline\");\n";
        let m = controls_by_subtest(src);
        assert_eq!(m["a restart"], ["restart"]);
        assert_eq!(m["offline"], ["setOnline"]);
    }

    #[test]
    fn subtest_names_with_escapes_and_plain_tests_get_their_own_controls() {
        let source = "promise_test(async () => {\n  await bgsyncTest.openWindow(u);\n}, 'the page\\'s origin');\n\ntest(() => {\n  new Worker(u);\n}, 'a plain test');\n";
        let c = controls_by_subtest(source);
        assert_eq!(c["the page's origin"], ["openWindow"]);
        assert!(c["a plain test"].is_empty(), "{c:?}");
    }

    #[test]
    fn restart_tests_are_comparable_unless_they_restart_offline() {
        let src = "restartTest(async (t) => {\n await bgsyncTest.setOnline(false);\n return 1;\n}, async (t, s) => {\n await bgsyncTest.setOnline(true);\n}, 'offline restart');\nrestartTest(async () => {\n return 1;\n}, async (t, s) => {\n await bgsyncTest.setOnline(false);\n}, 'online restart');\n";
        let m = controls_by_subtest(src);
        assert_eq!(
            m["offline restart"],
            ["setOnline", "setOnline", "restartOffline"]
        );
        assert_eq!(m["online restart"], ["setOnline"]);
        assert_eq!(percent_encoded("a b/é"), "a%20b%2F%C3%A9");
    }
}
