//! `wpt-runner`: runs web-platform-tests-style fixtures on bgsync's QuickJS user agent.
//!
//! ```text
//! cargo run --release -p wpt-runner -- [PATH...] [--wpt-root DIR] [--log-wptreport FILE] [--timeline FILE]
//!     [--expectations FILE] [--update-expectations] [--filter SUBSTR] [--jobs N]
//! ```
//! With no PATH it runs this repository's `spec-tests/`.

mod discover;
mod hosts;
mod metadata;
mod report;
mod run;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use report::{verdict, Expectations};
use run::{FileStatus, Outcome, Setup};

/// Runs web-platform-tests-style fixtures on bgsync's QuickJS user agent and reports as
/// wpt.fyi does. With no PATH it runs this repository's spec-tests/. Option names are
/// wptrunner's (`wpt run`), with this runner's earlier names kept as aliases.
#[derive(Debug, clap::Parser)]
#[command(name = "wpt-runner", version, about, long_about = None)]
struct Args {
    /// Test files or directories (under the test root), as `wpt run` takes them.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// A WPT checkout: its tree is the test root, and its resources (testharness.js,
    /// testdriver.js, /common, the .idl files) are served.
    #[arg(long, value_name = "DIR")]
    wpt_root: Option<PathBuf>,
    /// Write a wptreport JSON (what wpt.fyi ingests) to FILE.
    #[arg(long, visible_alias = "json", value_name = "FILE")]
    log_wptreport: Option<PathBuf>,
    /// Write an HTML page with one picture per test of what the engine did.
    #[arg(long, value_name = "FILE")]
    timeline: Option<PathBuf>,
    /// Expected results in Deno's JSON shape (per file: true, false, or the failing subtests).
    #[arg(long, value_name = "FILE")]
    expectations: Option<PathBuf>,
    /// Rewrite the --expectations file from this run.
    #[arg(long, requires = "expectations")]
    update_expectations: bool,
    /// Expectations as wptrunner's metadata: a `.ini` file beside each test path under DIR
    /// (`DIR/background-sync/retry.https.window.js.ini`), conditions evaluated against this
    /// run's run_info.
    #[arg(long, value_name = "DIR", conflicts_with = "expectations")]
    metadata: Option<PathBuf>,
    /// Write the --metadata files from this run (a file per test path with anything but
    /// OK and PASS; a file whose tests now all pass is removed).
    #[arg(long, requires = "metadata")]
    update_metadata: bool,
    /// Run only tests whose id starts with PATH (or contains it); repeatable.
    #[arg(long, visible_alias = "filter", value_name = "PATH")]
    include: Vec<String>,
    /// Skip tests whose id starts with PATH (or contains it); repeatable.
    #[arg(long, value_name = "PATH")]
    exclude: Vec<String>,
    /// Read --include paths from FILE, one a line (`#` starts a comment).
    #[arg(long, value_name = "FILE")]
    include_file: Option<PathBuf>,
    /// Split the tests into N chunks (by a hash of each test's id) and run one of them.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    total_chunks: u32,
    /// The chunk to run, 1 to --total-chunks.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    this_chunk: u32,
    /// Multiply every timeout (a test's, a script's watchdog) by F.
    #[arg(long, value_name = "F", default_value_t = 1.0, value_parser = positive)]
    timeout_multiplier: f64,
    /// Test files run at once (default: the cores, up to 4).
    #[arg(long, visible_alias = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    processes: Option<u32>,
    /// Run the whole set of tests N times, each in fresh user agents.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Run each test N times in a row, each in a fresh user agent.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    rerun: u32,
    /// Check stability as `wpt run --verify` does: each test 10 times; any subtest whose
    /// status changes between runs is reported flaky (and fails the run).
    #[arg(long)]
    verify: bool,
}

/// Reads the `.ini` of every test path, evaluated for this run; a disabled test is skipped
/// with its reason.
fn load_metadata(
    dir: &std::path::Path,
    variants: &mut [discover::Variant],
) -> Result<Expectations, String> {
    let run_info = report::run_info();
    let mut files: std::collections::HashMap<
        String,
        std::collections::BTreeMap<String, metadata::TestMeta>,
    > = std::collections::HashMap::new();
    let mut out = Expectations::default();
    for v in variants.iter_mut() {
        if !files.contains_key(&v.url_path) {
            let path = metadata::ini_path(dir, &v.url_path);
            let tests = match std::fs::read_to_string(&path) {
                Ok(text) => metadata::parse(&text, &run_info)
                    .map_err(|e| format!("{}: {e}", path.display()))?,
                Err(_) => Default::default(),
            };
            files.insert(v.url_path.clone(), tests);
        }
        let meta = files[&v.url_path]
            .get(metadata::section_name(&v.id))
            .cloned()
            .unwrap_or_default();
        if let Some(reason) = &meta.disabled {
            v.skip = Some(format!("disabled in the metadata: {reason}"));
        }
        out.insert(v.id.clone(), report::Expectation::Metadata(meta));
    }
    Ok(out)
}

/// Writes each test path's `.ini` from this run: a section for each test that was not OK with
/// every subtest passing (disabled tests keep their entry).
fn update_metadata(
    dir: &std::path::Path,
    variants: &[discover::Variant],
    outcomes: &[Outcome],
) -> Result<usize, String> {
    let run_info = report::run_info();
    let mut by_file: std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<String, metadata::TestMeta>,
    > = std::collections::BTreeMap::new();
    for (v, o) in variants.iter().zip(outcomes) {
        let tests = by_file.entry(v.url_path.clone()).or_default();
        let section = metadata::section_name(&o.id).to_owned();
        if o.status == FileStatus::Skip {
            // A disabled test keeps what its file said.
            let path = metadata::ini_path(dir, &v.url_path);
            if let Ok(text) = std::fs::read_to_string(&path) {
                if let Ok(old) = metadata::parse(&text, &run_info) {
                    if let Some(m) = old.get(&section).filter(|m| m.disabled.is_some()) {
                        tests.insert(section, m.clone());
                    }
                }
            }
            continue;
        }
        let meta = metadata::TestMeta {
            expected: if o.status == FileStatus::Ok {
                Vec::new()
            } else {
                vec![o.status.as_str().to_owned()]
            },
            subtests: o
                .subtests
                .iter()
                .filter(|s| s.status != "PASS")
                .map(|s| (s.name.clone(), vec![s.status.to_owned()]))
                .collect(),
            disabled: None,
        };
        if meta != metadata::TestMeta::default() {
            tests.insert(section, meta);
        }
    }
    let mut written = 0;
    for (url_path, tests) in by_file {
        let path = metadata::ini_path(dir, &url_path);
        if tests.is_empty() {
            if path.exists() {
                std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&path, metadata::render(&tests))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        written += 1;
    }
    Ok(written)
}

fn positive(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|m| *m > 0.0 && m.is_finite())
        .ok_or_else(|| format!("{s:?} is not a positive number"))
}

/// Whether `id` is selected by a wptrunner path: a prefix of the id (a leading `/` optional),
/// or, as `--filter` was, a piece of it.
fn matches(id: &str, path: &str) -> bool {
    let prefix = format!("/{}", path.trim_start_matches('/'));
    id.starts_with(&prefix) || id.contains(path)
}

/// wptrunner's hash chunking, with a hash that does not depend on the platform (FNV-1a).
fn chunk_of(id: &str, total: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % u64::from(total)) as u32 + 1
}

fn main() -> ExitCode {
    // clap prints --help and --version (exit 0) and names a bad option (exit 2) itself.
    let args = <Args as clap::Parser>::parse();
    match real_main(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("wpt-runner: {e}");
            ExitCode::from(2)
        }
    }
}

fn real_main(args: Args) -> Result<bool, String> {
    if args.this_chunk > args.total_chunks {
        return Err(format!(
            "--this-chunk {} is past --total-chunks {}",
            args.this_chunk, args.total_chunks
        ));
    }
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
    let mut include = args.include.clone();
    if let Some(f) = &args.include_file {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        include.extend(
            text.lines()
                .map(|l| l.split('#').next().unwrap_or("").trim())
                .filter(|l| !l.is_empty())
                .map(str::to_owned),
        );
    }
    if !include.is_empty() {
        variants.retain(|v| include.iter().any(|p| matches(&v.id, p)));
    }
    variants.retain(|v| !args.exclude.iter().any(|p| matches(&v.id, p)));
    if args.total_chunks > 1 {
        variants.retain(|v| chunk_of(&v.id, args.total_chunks) == args.this_chunk);
    }
    if variants.is_empty() {
        return Err("no tests found".into());
    }
    let metadata_expectations = match &args.metadata {
        Some(dir) => Some(load_metadata(dir, &mut variants)?),
        None => None,
    };
    let expectations = match &args.expectations {
        Some(p) if p.exists() => Expectations::load(p)?,
        Some(p) if !args.update_expectations => {
            return Err(format!("{}: no such expectations file", p.display()))
        }
        _ => metadata_expectations.unwrap_or_default(),
    };
    let setup = Setup {
        root: root.clone(),
        wpt_checkout,
        timeout_multiplier: args.timeout_multiplier,
    };
    let started = Instant::now();
    let time_start = now_ms();
    let terminal = std::io::stderr().is_terminal();
    // Each (repeat, test, rerun) is one run in a fresh user agent; `--verify` is ten in a row.
    let reruns = if args.verify { 10 } else { args.rerun } as usize;
    let runs: Vec<(usize, usize)> = (0..args.repeat as usize)
        .flat_map(|_| (0..variants.len()).flat_map(|i| (0..reruns).map(move |k| (i, k))))
        .collect();
    let total = runs.len();
    let processes = args.processes.map_or_else(
        || {
            std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .min(4)
        },
        |p| p as usize,
    );
    let bar = if terminal {
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("[{bar:30}] {pos}/{len} {elapsed} {wide_msg}")
                .map_err(|e| e.to_string())?
                .progress_chars("#>-"),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let next = AtomicUsize::new(0);
    let finished = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Outcome)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..processes.max(1) {
            scope.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                let Some(&(i, _)) = runs.get(n) else { break };
                let outcome = run::run(&setup, &variants[i]);
                let done = finished.fetch_add(1, Ordering::SeqCst) + 1;
                if terminal {
                    bar.set_message(outcome.id.clone());
                    bar.inc(1);
                } else {
                    eprintln!(
                        "[{done}/{total}] {} {}",
                        outcome.status.as_str(),
                        outcome.id
                    );
                }
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((i, outcome));
            });
        }
    });
    bar.finish_and_clear();
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    // The first run of each test is what the summary, the report and expectations use; every
    // run counts for stability.
    results.sort_by_key(|(i, _)| *i);
    let mut all_runs: Vec<Vec<Outcome>> = (0..variants.len()).map(|_| Vec::new()).collect();
    for (i, o) in results {
        all_runs[i].push(o);
    }
    let outcomes: Vec<Outcome> = all_runs
        .iter_mut()
        .filter_map(|runs| (!runs.is_empty()).then(|| runs.remove(0)))
        .collect();
    let flaky = stability(&outcomes, &all_runs);
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
    if let Some(p) = &args.log_wptreport {
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
    if args.update_metadata {
        if let Some(dir) = &args.metadata {
            let written = update_metadata(dir, &variants, &outcomes)?;
            println!("updated {written} metadata files under {}", dir.display());
        }
    }
    if args.update_expectations {
        if let Some(p) = &args.expectations {
            Expectations::from_outcomes(&outcomes).save(p)?;
            println!("updated {}", p.display());
        }
    }
    if reruns > 1 || args.repeat > 1 {
        println!(
            "\nstability: {} runs of each test; {} flaky",
            reruns * args.repeat as usize,
            flaky.len()
        );
        for line in &flaky {
            println!("FLAKY  {line}");
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
    Ok(unexpected == 0 && (!args.verify || flaky.is_empty()))
}

/// What changed between runs of the same test: a file status, or a subtest's, with the count
/// of each status seen (`wpt run --verify`'s stability report).
fn stability(first: &[Outcome], others: &[Vec<Outcome>]) -> Vec<String> {
    let mut flaky = Vec::new();
    for (o, rest) in first.iter().zip(others) {
        let runs: Vec<&Outcome> = std::iter::once(o).chain(rest).collect();
        let count = |statuses: Vec<&str>| {
            let mut seen: Vec<(String, usize)> = Vec::new();
            for st in statuses {
                match seen.iter_mut().find(|(x, _)| x == st) {
                    Some(e) => e.1 += 1,
                    None => seen.push((st.to_owned(), 1)),
                }
            }
            seen
        };
        let file = count(runs.iter().map(|r| r.status.as_str()).collect());
        if file.len() > 1 {
            flaky.push(format!("{}: {}", o.id, counts(&file)));
        }
        for s in &o.subtests {
            let statuses: Vec<&str> = runs
                .iter()
                .map(|r| {
                    r.subtests
                        .iter()
                        .find(|x| x.name == s.name)
                        .map_or("MISSING", |x| x.status)
                })
                .collect();
            let seen = count(statuses);
            if seen.len() > 1 {
                flaky.push(format!("{} | {}: {}", o.id, s.name, counts(&seen)));
            }
        }
    }
    flaky
}

fn counts(seen: &[(String, usize)]) -> String {
    seen.iter()
        .map(|(s, n)| format!("{s} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: FileStatus, subtests: &[(&str, &'static str)]) -> Outcome {
        report::tests::outcome("/t/x.window.html", status, subtests)
    }

    #[test]
    fn a_status_that_changes_between_runs_is_reported_flaky_with_its_counts() {
        let first = vec![outcome(
            FileStatus::Ok,
            &[("steady", "PASS"), ("wobbly", "PASS")],
        )];
        let rest = vec![vec![
            outcome(FileStatus::Ok, &[("steady", "PASS"), ("wobbly", "FAIL")]),
            outcome(FileStatus::Ok, &[("steady", "PASS"), ("wobbly", "PASS")]),
            outcome(FileStatus::Timeout, &[("steady", "PASS")]),
        ]];
        let flaky = stability(&first, &rest);
        assert_eq!(
            flaky,
            [
                "/t/x.window.html: OK ×3, TIMEOUT ×1",
                "/t/x.window.html | wobbly: PASS ×2, FAIL ×1, MISSING ×1",
            ]
        );
        let steady = vec![vec![outcome(
            FileStatus::Ok,
            &[("steady", "PASS"), ("wobbly", "PASS")],
        )]];
        assert!(stability(&first, &steady).is_empty());
    }

    #[test]
    fn wptrunner_paths_select_by_prefix_and_chunks_partition_the_tests() {
        assert!(matches(
            "/background-sync/retry.https.window.html",
            "background-sync/"
        ));
        assert!(matches(
            "/background-sync/retry.https.window.html",
            "/background-sync/retry"
        ));
        assert!(
            matches("/background-sync/retry.https.window.html", "retry"),
            "--filter's substring"
        );
        assert!(!matches(
            "/background-sync/retry.https.window.html",
            "/periodic-background-sync/"
        ));
        let ids: Vec<String> = (0..100).map(|i| format!("/t/{i}.window.html")).collect();
        let mut seen = 0;
        for k in 1..=3 {
            let chunk = ids.iter().filter(|id| chunk_of(id, 3) == k).count();
            assert!(chunk > 10, "chunk {k} holds {chunk} of 100");
            seen += chunk;
        }
        assert_eq!(seen, 100, "every test in exactly one chunk");
    }
}
