//! `cargo xtask crash-test`: kill a process that registers through the durable store at random
//! moments, and check that nothing it acknowledged was lost.
//!
//! The child (`xtask crash-child`) runs the facade with `data_dir` and a host whose workers
//! reject every `keep-*` tag and fulfil every `done-*` tag, with a 5 ms back-off so that
//! completions are committed all the time. It prints one line per acknowledgement:
//!
//! - `registered TAG` when a `register()` promise resolved (the row is committed);
//! - `attempts TAG N` when the N-th failed attempt of a `keep-*` tag was committed;
//! - `removed TAG` when the removal of a fulfilled `done-*` tag was committed.
//!
//! The parent kills it with SIGKILL after a random delay, reopens the store without recovery
//! and checks: every acknowledged `keep-*` row is present with at least its acknowledged
//! attempts; every acknowledged removal is absent; every acknowledged `done-*` registration is
//! present unless its removal may have been committed (it then may be either).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgsync::{
    BackgroundSync, DispatchOutcome, LogEvent, NextStep, OutcomeReporter, Parameters,
    RegistrationInfo, ServiceWorkerHost, SyncEventDispatch, WindowClients,
};
use bgsync_store::RegistrationStore;
use bgsync_store_sqlite::SqliteStore;
use bgsync_types::{Origin, SwRegistrationId, Tag};

const SW: SwRegistrationId = SwRegistrationId(1);
const ORIGIN: &str = "https://crash.example";

/// SplitMix64: a small, well-mixed generator; the crash test needs spread, not cryptography.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What one run saw.
#[derive(Debug, Default)]
struct RunResult {
    acknowledged: u64,
    lost: Vec<String>,
}

pub fn crash_test(runs: u32, seed: Option<u64>) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    eprintln!("crash-test: seed {seed}");
    let mut rng = Rng(seed);
    let base = std::env::temp_dir().join(format!("bgsync-crash-{}", std::process::id()));
    let (mut acknowledged, mut lost, mut failed_opens) = (0u64, 0u64, 0u32);
    for run in 0..runs {
        let dir = base.join(format!("run-{run}"));
        let kill_after = Duration::from_millis(20 + rng.below(600));
        match one_run(&exe, &dir, rng.next(), kill_after) {
            Ok(result) => {
                acknowledged += result.acknowledged;
                lost += result.lost.len() as u64;
                for l in &result.lost {
                    eprintln!("crash-test: run {run}: LOST {l}");
                }
            }
            Err(e) => {
                failed_opens += 1;
                eprintln!("crash-test: run {run}: {e}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::remove_dir_all(&base);
    println!("crash-test: {runs} runs, {acknowledged} acknowledged, {lost} lost");
    if lost > 0 || failed_opens > 0 {
        return Err(format!(
            "{lost} acknowledged change(s) lost, {failed_opens} reopen(s) failed"
        ));
    }
    Ok(())
}

fn one_run(exe: &Path, dir: &Path, seed: u64, kill_after: Duration) -> Result<RunResult, String> {
    let mut child = Command::new(exe)
        .args(["crash-child", "--dir"])
        .arg(dir)
        .args(["--seed", &seed.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("could not start the child: {e}"))?;
    let stdout = child.stdout.take().ok_or("child has no stdout")?;
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    std::thread::sleep(kill_after);
    child
        .kill()
        .map_err(|e| format!("could not kill the child: {e}"))?;
    let _ = child.wait();
    let lines = reader.join().map_err(|_| "reader thread panicked")?;

    let mut store = SqliteStore::open(dir).map_err(|e| format!("reopen failed: {e}"))?;
    let rows = store
        .load_all()
        .map_err(|e| format!("reading after reopen failed: {e}"))?;
    let stored: HashMap<String, u32> = rows
        .iter()
        .map(|r| (r.tag.to_string(), r.attempts))
        .collect();
    Ok(check(&lines, &stored))
}

/// Compares the acknowledgements with what the store holds.
fn check(lines: &[String], stored: &HashMap<String, u32>) -> RunResult {
    #[derive(Default)]
    struct Acked {
        registered: bool,
        attempts: u32,
        removed: bool,
    }
    let mut acked: HashMap<&str, Acked> = HashMap::new();
    let mut result = RunResult::default();
    for line in lines {
        let mut words = line.split(' ');
        let (Some(kind), Some(tag)) = (words.next(), words.next()) else {
            continue;
        };
        let entry = acked.entry(tag).or_default();
        result.acknowledged += 1;
        match kind {
            "registered" => entry.registered = true,
            "attempts" => {
                let n = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
                entry.attempts = entry.attempts.max(n);
            }
            "removed" => entry.removed = true,
            _ => result.acknowledged -= 1,
        }
    }
    for (tag, a) in &acked {
        let row = stored.get(*tag);
        if a.removed {
            if row.is_some() {
                result
                    .lost
                    .push(format!("{tag}: removal acknowledged, row still present"));
            }
        } else if tag.starts_with("keep-") && (a.registered || a.attempts > 0) {
            match row {
                None => result
                    .lost
                    .push(format!("{tag}: acknowledged, row missing")),
                Some(n) if *n < a.attempts => result.lost.push(format!(
                    "{tag}: {} attempts acknowledged, {n} stored",
                    a.attempts
                )),
                Some(_) => {}
            }
        }
        // An acknowledged `done-*` registration may be absent: its removal may have been
        // committed after its registration without the acknowledgement reaching us.
    }
    result
}

/// A host whose workers reject `keep-*` tags and fulfil the rest, at once.
struct CrashHost(Origin);

impl ServiceWorkerHost for CrashHost {
    fn registration(&self, sw: SwRegistrationId) -> Option<RegistrationInfo> {
        (sw == SW).then(|| RegistrationInfo {
            origin: self.0.clone(),
            partition: Default::default(),
            has_active_worker: true,
        })
    }
    fn fire_sync_event(&self, event: SyncEventDispatch, reply: OutcomeReporter) {
        let keep = event.tag.to_string().starts_with("keep-");
        reply.report(if keep {
            DispatchOutcome::Rejected
        } else {
            DispatchOutcome::Fulfilled
        });
    }
}

struct Window;

impl WindowClients for Window {
    fn has_window_client(&self, _origin: &Origin) -> bool {
        true
    }
}

/// The child: registers until killed, printing acknowledgements.
pub fn crash_child(dir: &Path, seed: u64) -> Result<(), String> {
    let origin = Origin::parse(ORIGIN).map_err(|e| e.to_string())?;
    let sync = BackgroundSync::builder(Arc::new(CrashHost(origin.clone())), Arc::new(Window))
        .data_dir(dir)
        .params(Parameters {
            max_attempts: 1_000_000,
            initial_retry_delay: Duration::from_millis(5),
            retry_delay_factor: 1,
            max_registrations_per_origin: None,
            ..Parameters::default()
        })
        .start()
        .map_err(|e| e.to_string())?;

    // Completions, acknowledged from the log (written after their commit).
    let log = sync.subscribe_log();
    std::thread::spawn(move || {
        let mut attempts: HashMap<Tag, u32> = HashMap::new();
        for entry in log {
            match entry.event {
                LogEvent::Completed {
                    next: NextStep::RetryAfter(_),
                    ..
                } => {
                    let n = attempts.entry(entry.tag.clone()).or_default();
                    *n += 1;
                    println!("attempts {} {n}", entry.tag);
                }
                LogEvent::Completed {
                    next: NextStep::Removed,
                    ..
                } => println!("removed {}", entry.tag),
                _ => {}
            }
        }
    });

    // Four callers register concurrently, so group commit is exercised too.
    let started = Instant::now();
    let workers: Vec<_> = (0..4u64)
        .map(|w| {
            let sync = sync.clone();
            let origin = origin.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(seed ^ (w + 1).wrapping_mul(0x9E37_79B9));
                let mut i = 0u64;
                while started.elapsed() < Duration::from_secs(30) {
                    let kind = if rng.below(2) == 0 { "keep" } else { "done" };
                    let tag = format!("{kind}-{w}-{i}");
                    i += 1;
                    if let Ok(Ok(())) = sync.register_with_reply(&origin, SW, tag.as_str()).recv() {
                        println!("registered {tag}");
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    sync.shutdown();
    Ok(())
}

pub fn crash_child_args(args: &[String]) -> Result<(PathBuf, u64), String> {
    let mut dir = None;
    let mut seed = 0;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dir" => dir = it.next().map(PathBuf::from),
            "--seed" => seed = it.next().and_then(|s| s.parse().ok()).unwrap_or(0),
            other => return Err(format!("crash-child: unknown argument {other}")),
        }
    }
    Ok((dir.ok_or("crash-child: --dir is required")?, seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_checker_finds_every_kind_of_loss() {
        let stored: HashMap<String, u32> =
            [("keep-0-0".to_string(), 2), ("done-0-1".to_string(), 0)].into();
        let ok = check(
            &lines(&[
                "registered keep-0-0",
                "attempts keep-0-0 2",
                "registered done-0-1",
            ]),
            &stored,
        );
        assert_eq!(ok.acknowledged, 3);
        assert!(ok.lost.is_empty(), "{:?}", ok.lost);
        let missing = check(&lines(&["registered keep-0-9"]), &stored);
        assert_eq!(missing.lost.len(), 1);
        let behind = check(&lines(&["attempts keep-0-0 3"]), &stored);
        assert_eq!(behind.lost.len(), 1);
        let resurrected = check(&lines(&["removed done-0-1"]), &stored);
        assert_eq!(resurrected.lost.len(), 1);
        // A done tag that is gone without an acknowledged removal is fine.
        assert!(check(&lines(&["registered done-0-7"]), &stored)
            .lost
            .is_empty());
    }
}
