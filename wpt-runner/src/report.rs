//! Summaries, wptreport JSON and expectation files.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::run::{FileStatus, Outcome};

/// What a file is expected to do (Deno's expectation-file shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expectation {
    /// Every subtest passes (`true`).
    Pass,
    /// The file fails (`false`): any result but a full pass is expected.
    Fail,
    /// These subtests fail, the rest pass.
    Failing(Vec<String>),
    /// wptrunner metadata: the statuses allowed for the test and each subtest.
    Metadata(crate::metadata::TestMeta),
}

/// Expectations by test id.
#[derive(Debug, Default, Clone)]
pub struct Expectations(BTreeMap<String, Expectation>);

impl Expectations {
    /// Reads a file: nested objects by path segment, leaves `true`, `false` or a list of names.
    pub fn load(path: &Path) -> Result<Expectations, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut out = BTreeMap::new();
        walk(&value, String::new(), &mut out).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Expectations(out))
    }

    /// Sets the expectation of `id`.
    pub fn insert(&mut self, id: String, e: Expectation) {
        self.0.insert(id, e);
    }

    /// The expectation of `id` (a pass when the file does not mention it).
    pub fn get(&self, id: &str) -> Expectation {
        self.0.get(id).cloned().unwrap_or(Expectation::Pass)
    }

    /// The expectations that would make `outcomes` all expected.
    pub fn from_outcomes(outcomes: &[Outcome]) -> Expectations {
        let mut out = BTreeMap::new();
        for o in outcomes {
            if o.status == FileStatus::Skip {
                continue;
            }
            let failing: Vec<String> = o
                .subtests
                .iter()
                .filter(|s| s.status != "PASS")
                .map(|s| s.name.clone())
                .collect();
            let e = if o.status != FileStatus::Ok {
                Expectation::Fail
            } else if failing.is_empty() {
                Expectation::Pass
            } else {
                Expectation::Failing(failing)
            };
            out.insert(o.id.clone(), e);
        }
        Expectations(out)
    }

    /// Writes the nested JSON shape.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let mut root = Map::new();
        for (id, e) in &self.0 {
            let segments: Vec<&str> = id.trim_start_matches('/').split('/').collect();
            let mut node = &mut root;
            for seg in &segments[..segments.len() - 1] {
                node = node
                    .entry(seg.to_string())
                    .or_insert_with(|| Value::Object(Map::new()))
                    .as_object_mut()
                    .ok_or_else(|| format!("{id}: a path segment is also a test"))?;
            }
            let leaf = match e {
                Expectation::Pass => Value::Bool(true),
                Expectation::Fail => Value::Bool(false),
                Expectation::Failing(names) => json!(names),
                // Metadata is written as .ini files (`--update-metadata`), not here.
                Expectation::Metadata(_) => continue,
            };
            node.insert(segments[segments.len() - 1].to_owned(), leaf);
        }
        let text = serde_json::to_string_pretty(&Value::Object(root)).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
    }
}

fn walk(v: &Value, prefix: String, out: &mut BTreeMap<String, Expectation>) -> Result<(), String> {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                walk(child, format!("{prefix}/{k}"), out)?;
            }
            Ok(())
        }
        Value::Bool(true) => {
            out.insert(prefix, Expectation::Pass);
            Ok(())
        }
        Value::Bool(false) => {
            out.insert(prefix, Expectation::Fail);
            Ok(())
        }
        Value::Array(names) => {
            let names = names
                .iter()
                .map(|n| {
                    n.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| format!("{prefix}: subtest names must be strings"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.insert(prefix, Expectation::Failing(names));
            Ok(())
        }
        _ => Err(format!(
            "{prefix}: expected true, false, a list of subtest names, or an object"
        )),
    }
}

/// How a result compares with its expectation.
#[derive(Debug, Default, Clone, Copy)]
pub struct Verdict {
    /// Subtests (or files without subtests) that passed.
    pub passed: usize,
    /// That did not pass.
    pub failed: usize,
    /// Results that differ from the expectation (failures not expected, or passes expected to fail).
    pub unexpected: usize,
}

/// The expected status of a subtest and of the file, given `e`.
pub fn expected_subtest(e: &Expectation, name: &str) -> String {
    match e {
        Expectation::Pass => "PASS".into(),
        Expectation::Fail => "FAIL".into(),
        Expectation::Failing(names) if names.iter().any(|n| n == name) => "FAIL".into(),
        Expectation::Failing(_) => "PASS".into(),
        Expectation::Metadata(m) => m.allowed_subtest(name)[0].clone(),
    }
}

fn subtest_unexpected(e: &Expectation, name: &str, status: &str) -> bool {
    if let Expectation::Metadata(m) = e {
        return !m.allowed_subtest(name).iter().any(|s| s == status);
    }
    match (e, expected_subtest(e, name).as_str()) {
        (Expectation::Fail, _) => false,
        (_, "PASS") => status != "PASS",
        _ => status == "PASS",
    }
}

fn file_unexpected(e: &Expectation, o: &Outcome) -> bool {
    match e {
        Expectation::Fail => {
            o.status == FileStatus::Ok && o.subtests.iter().all(|s| s.status == "PASS")
        }
        Expectation::Metadata(m) => !m.allowed().iter().any(|s| s == o.status.as_str()),
        _ => o.status != FileStatus::Ok,
    }
}

/// Counts passes, failures and unexpected results of one file.
pub fn verdict(e: &Expectation, o: &Outcome) -> Verdict {
    let mut v = Verdict::default();
    if o.status == FileStatus::Skip {
        return v;
    }
    for s in &o.subtests {
        if s.status == "PASS" {
            v.passed += 1;
        } else {
            v.failed += 1;
        }
        if subtest_unexpected(e, &s.name, s.status) {
            v.unexpected += 1;
        }
    }
    if o.status != FileStatus::Ok && o.subtests.is_empty() {
        v.failed += 1;
    }
    if file_unexpected(e, o) {
        v.unexpected += 1;
    }
    v
}

/// Lone surrogates cannot reach here (the harness report writes them as `U+XXXX`); this keeps
/// any other text as it is.
fn text(s: &Option<String>) -> Value {
    s.as_ref().map_or(Value::Null, |s| Value::String(s.clone()))
}

/// A wptreport (the JSON wpt.fyi's tooling reads).
pub fn wptreport(
    outcomes: &[Outcome],
    expectations: &Expectations,
    time_start: u128,
    time_end: u128,
) -> Value {
    let results: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let e = expectations.get(&o.id);
            let subtests: Vec<Value> = o
                .subtests
                .iter()
                .map(|s| {
                    let mut v =
                        json!({"name": s.name, "status": s.status, "message": text(&s.message)});
                    if subtest_unexpected(&e, &s.name, s.status) {
                        v["expected"] = json!(expected_subtest(&e, &s.name));
                    }
                    if let Expectation::Metadata(m) = &e {
                        let allowed = m.allowed_subtest(&s.name);
                        if allowed.len() > 1 {
                            v["known_intermittent"] = json!(allowed[1..]);
                        }
                    }
                    v
                })
                .collect();
            let mut v = json!({
                "test": o.id,
                "status": o.status.as_str(),
                "message": text(&o.message),
                "duration": o.duration.as_millis() as u64,
                "subtests": subtests,
            });
            if file_unexpected(&e, o) && o.status != FileStatus::Skip {
                v["expected"] = match &e {
                    Expectation::Fail => json!("ERROR"),
                    Expectation::Metadata(m) => json!(m.allowed()[0]),
                    _ => json!("OK"),
                };
            }
            v
        })
        .collect();
    json!({
        "run_info": run_info(),
        "time_start": time_start as u64,
        "time_end": time_end as u64,
        "results": results,
    })
}

/// What a report says of this run, and what metadata conditions are evaluated against.
pub fn run_info() -> Value {
    json!({
        "product": "bgsync",
        "browser_version": env!("CARGO_PKG_VERSION"),
        "os": std::env::consts::OS,
        "processor": std::env::consts::ARCH,
        "bits": usize::BITS,
        "debug": cfg!(debug_assertions),
        "revision": revision(),
    })
}

fn revision() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::run::Subtest;
    use std::time::Duration;

    pub(crate) fn outcome(id: &str, status: FileStatus, subs: &[(&str, &'static str)]) -> Outcome {
        Outcome {
            id: id.into(),
            status,
            message: None,
            subtests: subs
                .iter()
                .map(|(n, s)| Subtest {
                    name: (*n).into(),
                    status: s,
                    message: None,
                })
                .collect(),
            duration: Duration::from_millis(5),
            log: Vec::new(),
        }
    }

    #[test]
    fn expectations_round_trip_in_the_nested_shape() {
        let outs = [
            outcome("/a/x.any.html", FileStatus::Ok, &[("t1", "PASS")]),
            outcome(
                "/a/x.any.worker.html",
                FileStatus::Ok,
                &[("t1", "PASS"), ("t2", "FAIL")],
            ),
            outcome("/b/y.window.html", FileStatus::Timeout, &[]),
        ];
        let e = Expectations::from_outcomes(&outs);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("exp.json");
        e.save(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["a"]["x.any.html"], json!(true));
        assert_eq!(v["a"]["x.any.worker.html"], json!(["t2"]));
        assert_eq!(v["b"]["y.window.html"], json!(false));
        let back = Expectations::load(&p).unwrap();
        for o in &outs {
            assert_eq!(verdict(&back.get(&o.id), o).unexpected, 0, "{}", o.id);
        }
    }

    #[test]
    fn unexpected_failures_and_passes_are_counted() {
        let o = outcome("/a.html", FileStatus::Ok, &[("t1", "PASS"), ("t2", "FAIL")]);
        assert_eq!(verdict(&Expectation::Pass, &o).unexpected, 1);
        assert_eq!(
            verdict(&Expectation::Failing(vec!["t2".into()]), &o).unexpected,
            0
        );
        assert_eq!(
            verdict(&Expectation::Failing(vec!["t1".into(), "t2".into()]), &o).unexpected,
            1
        );
        let all = outcome("/a.html", FileStatus::Ok, &[("t1", "PASS")]);
        assert_eq!(
            verdict(&Expectation::Fail, &all).unexpected,
            1,
            "an unexpected pass"
        );
    }

    #[test]
    fn the_report_has_wptreport_shape() {
        let outs = [outcome("/a.html", FileStatus::Ok, &[("t1", "FAIL")])];
        let r = wptreport(&outs, &Expectations::default(), 1, 2);
        assert_eq!(r["results"][0]["test"], "/a.html");
        assert_eq!(r["results"][0]["subtests"][0]["expected"], "PASS");
        assert!(r["results"][0].get("expected").is_none());
        for k in [
            "product",
            "browser_version",
            "os",
            "processor",
            "bits",
            "debug",
            "revision",
        ] {
            assert!(r["run_info"].get(k).is_some(), "{k}");
        }
    }
}
