//! `wpt-runner`: runs web-platform-tests-style fixtures on bgsync's QuickJS user agent.
//!
//! ```text
//! cargo run --release -p wpt-runner -- [PATH...] [--wpt-root DIR] [--json FILE] [--timeline FILE]
//!     [--expectations FILE] [--update-expectations] [--filter SUBSTR] [--jobs N]
//! ```
//! With no PATH it runs this repository's `spec-tests/`.

mod discover;
mod hosts;
mod report;
mod run;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use report::{verdict, Expectations};
use run::{FileStatus, Outcome, Setup};

const USAGE: &str = "usage: wpt-runner [PATH...] [--wpt-root DIR] [--json FILE] [--timeline FILE] [--expectations FILE] [--update-expectations] [--filter SUBSTR] [--jobs N] [--timeout-multiplier F]";

struct Args {
    paths: Vec<PathBuf>,
    wpt_root: Option<PathBuf>,
    json: Option<PathBuf>,
    timeline: Option<PathBuf>,
    expectations: Option<PathBuf>,
    update: bool,
    filter: Option<String>,
    jobs: usize,
    timeout_multiplier: f64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        paths: Vec::new(),
        wpt_root: None,
        json: None,
        timeline: None,
        expectations: None,
        update: false,
        filter: None,
        jobs: std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .min(4),
        timeout_multiplier: 1.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--wpt-root" => a.wpt_root = Some(value("--wpt-root")?.into()),
            "--json" => a.json = Some(value("--json")?.into()),
            "--timeline" => a.timeline = Some(value("--timeline")?.into()),
            "--expectations" => a.expectations = Some(value("--expectations")?.into()),
            "--update-expectations" => a.update = true,
            "--filter" => a.filter = Some(value("--filter")?),
            "--jobs" => {
                a.jobs = value("--jobs")?
                    .parse()
                    .map_err(|_| format!("--jobs takes a number\n{USAGE}"))?
            }
            "--timeout-multiplier" => {
                a.timeout_multiplier = value("--timeout-multiplier")?
                    .parse()
                    .ok()
                    .filter(|m: &f64| *m > 0.0 && m.is_finite())
                    .ok_or_else(|| {
                        format!("--timeout-multiplier takes a positive number\n{USAGE}")
                    })?
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{USAGE}")),
            _ => a.paths.push(arg.into()),
        }
    }
    if a.update && a.expectations.is_none() {
        return Err(format!(
            "--update-expectations needs --expectations FILE\n{USAGE}"
        ));
    }
    Ok(a)
}

fn main() -> ExitCode {
    match real_main() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("wpt-runner: {e}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> Result<bool, String> {
    let args = parse_args()?;
    let (root, wpt_checkout) = match &args.wpt_root {
        Some(r) => (r.clone(), true),
        None => (run::default_tests_dir(), false),
    };
    let paths = if args.paths.is_empty() {
        vec![root.clone()]
    } else {
        args.paths
            .iter()
            .map(|p| {
                if p.exists() || wpt_checkout && !root.join(p).exists() {
                    p.clone()
                } else {
                    root.join(p)
                }
            })
            .collect()
    };
    let mut variants = discover::discover(&root, &paths)?;
    if let Some(f) = &args.filter {
        variants.retain(|v| v.id.contains(f.as_str()));
    }
    if variants.is_empty() {
        return Err("no tests found".into());
    }
    let expectations = match &args.expectations {
        Some(p) if p.exists() => Expectations::load(p)?,
        Some(p) if !args.update => {
            return Err(format!("{}: no such expectations file", p.display()))
        }
        _ => Expectations::default(),
    };
    let setup = Setup {
        root: root.clone(),
        wpt_checkout,
        timeout_multiplier: args.timeout_multiplier,
    };
    let started = Instant::now();
    let time_start = now_ms();
    let terminal = std::io::stderr().is_terminal();
    let total = variants.len();
    let next = AtomicUsize::new(0);
    let finished = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Outcome)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(v) = variants.get(i) else { break };
                let outcome = run::run(&setup, v);
                let n = finished.fetch_add(1, Ordering::SeqCst) + 1;
                progress(terminal, n, total, &outcome);
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((i, outcome));
            });
        }
    });
    if terminal {
        eprintln!();
    }
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(i, _)| *i);
    let outcomes: Vec<Outcome> = results.into_iter().map(|(_, o)| o).collect();
    let time_end = now_ms();

    let (mut passed, mut failed, mut skipped, mut unexpected) = (0, 0, 0, 0);
    println!("\n{:<20} {:>9}  test", "status", "passed");
    for o in &outcomes {
        let e = expectations.get(&o.id);
        let v = verdict(&e, o);
        passed += v.passed;
        failed += v.failed;
        unexpected += v.unexpected;
        if o.status == FileStatus::Skip {
            skipped += 1;
        }
        let count = if o.status == FileStatus::Skip {
            "-".to_owned()
        } else {
            format!("{}/{}", v.passed, o.subtests.len())
        };
        let mark = if v.unexpected > 0 {
            " (unexpected)"
        } else {
            ""
        };
        println!("{:<20} {:>9}  {}{mark}", o.status.as_str(), count, o.id);
        if let Some(m) = &o.message {
            if o.status != FileStatus::Ok {
                println!("{:<31}{}", "", first_line(m));
            }
        }
        for s in o.subtests.iter().filter(|s| s.status != "PASS") {
            println!(
                "{:<22}{:<9}{} — {}",
                "",
                s.status,
                s.name,
                first_line(s.message.as_deref().unwrap_or(""))
            );
        }
    }
    if let Some(p) = &args.json {
        let r = report::wptreport(&outcomes, &expectations, time_start, time_end);
        let text = serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?;
        std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(p) = &args.timeline {
        // One picture per test that made the engine write anything.
        let sections: Vec<(String, &[bgsync::LogEntry])> = outcomes
            .iter()
            .filter(|o| !o.log.is_empty())
            .map(|o| (o.id.clone(), o.log.as_slice()))
            .collect();
        let page = bgsync::timeline::render_html_sections(
            "wpt-runner: Background Sync timeline",
            &sections,
        );
        std::fs::write(p, page).map_err(|e| format!("{}: {e}", p.display()))?;
        println!(
            "timeline of {} tests written to {}",
            sections.len(),
            p.display()
        );
    }
    if args.update {
        if let Some(p) = &args.expectations {
            Expectations::from_outcomes(&outcomes).save(p)?;
            println!("updated {}", p.display());
        }
    }
    println!(
        "\n{} files in {:.1} s; {unexpected} unexpected",
        outcomes.len(),
        started.elapsed().as_secs_f64()
    );
    if skipped > 0 {
        println!("{passed} passed, {failed} failed, {skipped} skipped");
    } else {
        println!("{passed} passed, {failed} failed");
    }
    Ok(unexpected == 0)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn progress(terminal: bool, n: usize, total: usize, o: &Outcome) {
    let mut err = std::io::stderr().lock();
    if terminal {
        let width = 30;
        let filled = n * width / total.max(1);
        let _ = write!(
            err,
            "\r[{}{}] {n}/{total} {:<60.60}",
            "#".repeat(filled),
            " ".repeat(width - filled),
            o.id
        );
    } else {
        let _ = writeln!(err, "[{n}/{total}] {} {}", o.status.as_str(), o.id);
    }
    let _ = err.flush();
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}
