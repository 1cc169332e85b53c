//! `cargo xtask fuzz`: the differential test at scale, the coverage-guided targets (each from
//! its seeds, with a report of what it ran and what it found), and the scheduler's line
//! coverage under the differential test.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

mod coverage;
mod libfuzzer;
mod targets;

/// The coverage-guided targets (fuzz/fuzz_targets/*.rs).
pub const TARGETS: [&str; 4] = [
    "store_open",
    "decode_row",
    "idl_conversions",
    "differential",
];

/// How long `--smoke` runs each target.
const SMOKE_SECONDS: u64 = 30;

/// libFuzzer's limit for one input: a target that takes longer is a finding (a hang).
const INPUT_TIMEOUT_SECONDS: u64 = 30;

const USAGE: &str = "usage: cargo xtask fuzz --cases N
       cargo xtask fuzz --target NAME [--seconds S]
       cargo xtask fuzz --all [--seconds S]
       cargo xtask fuzz --smoke            (every target for 30 s; what CI runs)
       cargo xtask fuzz --coverage [--cases N]
       cargo xtask fuzz --write-seeds      (fuzz/seeds/<target>/, without running)";

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .join("fuzz")
}

/// Runs the proptest differential test with `cases` cases, in release mode.
pub fn cases(cases: u64) -> Result<(), String> {
    // The test writes what its scenarios reached here (components/model/tests/differential.rs).
    let reached = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/differential-reached.txt");
    let _ = std::fs::remove_file(&reached);
    // `cargo test --release` of the differential test, with `last` as its last argument.
    let differential = |last: &str| {
        let mut c = Command::new(env!("CARGO"));
        c.args([
            "test",
            "--release",
            "-p",
            "bgsync-model",
            "--test",
            "differential",
            last,
        ]);
        c
    };
    let build = differential("--no-run")
        .status()
        .map_err(|e| format!("cargo test: {e}"))?;
    if !build.success() {
        return Err("the differential test did not build".into());
    }
    let started = Instant::now();
    let status = differential("the_engine_agrees_with_the_model")
        .env("BGSYNC_FUZZ_CASES", cases.to_string())
        .status()
        .map_err(|e| format!("cargo test: {e}"))?;
    if let Ok(report) = std::fs::read_to_string(&reached) {
        println!(
            "What the scenarios reached ({}):\n{report}",
            reached.display()
        );
    }
    println!(
        "fuzz: differential, {cases} scenarios in {:.1} s, {}",
        started.elapsed().as_secs_f64(),
        if status.success() {
            "clean"
        } else {
            "DIVERGED (see the scenario above)"
        }
    );
    if status.success() {
        Ok(())
    } else {
        Err("the engine diverged from the model".into())
    }
}

fn ensure_cargo_fuzz() -> Result<(), String> {
    let ok = Command::new(env!("CARGO"))
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz");
    let status = Command::new(env!("CARGO"))
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err("could not install cargo-fuzz".into())
    }
}

/// `cargo fuzz` on the stable toolchain: RUSTC_BOOTSTRAP=1 lets it pass the sanitizer flags.
fn cargo_fuzz(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO"));
    c.current_dir(dir).env("RUSTC_BOOTSTRAP", "1").arg("fuzz");
    c
}

/// Builds `names` (all targets in one cargo build when there are several, so they share it).
fn build(names: &[&str]) -> Result<(), String> {
    let started = Instant::now();
    let mut c = cargo_fuzz(&fuzz_dir());
    c.args(["build", "-O"]);
    if let [one] = names {
        c.arg(one);
    }
    let status = c.status().map_err(|e| format!("cargo fuzz build: {e}"))?;
    if !status.success() {
        return Err(format!("cargo fuzz build failed ({status})"));
    }
    println!(
        "fuzz: built {} in {:.0} s",
        names.join(", "),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One input that made a target fail.
pub struct Finding {
    /// The panic message, or the sanitizer's report, as libFuzzer's output gave it.
    pub message: String,
    /// The input, relative to fuzz/ (`artifacts/<target>/crash-...`).
    pub artifact: Option<String>,
}

/// What one target run did.
pub struct TargetRun {
    pub name: String,
    /// libFuzzer's own run, measured: from its first line to its final statistics (or its exit).
    pub seconds: f64,
    pub executions: u64,
    /// libFuzzer's coverage counter (`cov:`) at the end.
    pub coverage: String,
    /// Inputs in the working corpus at the end.
    pub corpus: String,
    pub findings: Vec<Finding>,
    pub log: PathBuf,
}

/// Runs one coverage-guided target (built already) for `seconds`, from its seeds and the
/// working corpus of earlier runs, with its `-max_len` (and dictionary, if it has one);
/// libFuzzer's whole output goes to fuzz/logs/<target>.log.
pub fn target(name: &str, seconds: u64) -> Result<TargetRun, String> {
    let dir = fuzz_dir();
    let seed_dir = dir.join("seeds").join(name);
    let (seed_count, max_len) = targets::write(name, &seed_dir)?;
    let corpus = dir.join("corpus").join(name);
    let artifacts = dir.join("artifacts").join(name);
    let logs = dir.join("logs");
    for d in [&corpus, &artifacts, &logs] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let log_path = logs.join(format!("{name}.log"));
    let before = files(&artifacts);
    let mut args = vec![
        format!("-max_total_time={seconds}"),
        format!("-max_len={max_len}"),
        format!("-timeout={INPUT_TIMEOUT_SECONDS}"),
        "-rss_limit_mb=4096".to_owned(),
        "-print_final_stats=1".to_owned(),
    ];
    args.extend(targets::flags(name).iter().map(|f| f.to_string()));
    let dict = dir.join("dictionaries").join(format!("{name}.dict"));
    if dict.exists() {
        args.push(format!("-dict={}", dict.display()));
    }
    println!(
        "fuzz: {name}: {seconds} s from {seed_count} seeds (fuzz/seeds/{name}) and the corpus \
         (fuzz/corpus/{name}), {}; log: {}",
        args[1..].join(" "),
        relative(&log_path)
    );
    let mut child = cargo_fuzz(&dir)
        .args(["run", "-O", name])
        .arg(format!("corpus/{name}"))
        .arg(format!("seeds/{name}"))
        .arg("--")
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cargo fuzz run: {e}"))?;
    // Both streams, line by line, with the time each line arrived: libFuzzer's run is timed
    // from its first line to its final statistics, without cargo's start or cargo-fuzz's
    // epilogue.
    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|stream| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).split(b'\n').map_while(Result::ok) {
                let line = String::from_utf8_lossy(&line).into_owned();
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        })
    })
    .collect();
    drop(tx);
    let mut log_file =
        File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut log = String::new();
    let (mut first, mut last_stat) = (None, None);
    for (at, line) in rx {
        if first.is_none() && line.starts_with("INFO: ") {
            first = Some(at);
        }
        if line.starts_with("stat::") {
            last_stat = Some(at);
        }
        writeln!(log_file, "{line}").map_err(|e| format!("{}: {e}", log_path.display()))?;
        log.push_str(&line);
        log.push('\n');
    }
    let status = child.wait().map_err(|e| format!("cargo fuzz run: {e}"))?;
    let exited = Instant::now();
    for r in readers {
        let _ = r.join();
    }
    let seconds_run = first.map_or(0.0, |f| {
        last_stat.unwrap_or(exited).duration_since(f).as_secs_f64()
    });

    let written: Vec<String> = files(&artifacts)
        .into_iter()
        .filter(|f| !before.contains(f))
        .map(|f| format!("artifacts/{name}/{f}"))
        .collect();
    let mut crashes = libfuzzer::crashes(&log);
    let mut findings: Vec<Finding> = written
        .iter()
        .map(|artifact| {
            let i = crashes.iter().position(|c| {
                c.artifact
                    .as_deref()
                    .is_some_and(|a| a.ends_with(artifact.as_str()))
            });
            Finding {
                message: i.map_or_else(
                    || "(no report for it in the log)".to_owned(),
                    |i| crashes.remove(i).message,
                ),
                artifact: Some(artifact.clone()),
            }
        })
        .collect();
    // A crash whose input was not written (the process died first) is a finding too.
    findings.extend(
        crashes
            .into_iter()
            .filter(|c| c.artifact.is_none())
            .map(|c| Finding {
                message: c.message,
                artifact: None,
            }),
    );
    if !status.success() && findings.is_empty() {
        return Err(format!(
            "cargo fuzz run {name} failed ({status}) without a finding; the end of {}:\n{}",
            relative(&log_path),
            tail(&log, 30)
        ));
    }
    Ok(TargetRun {
        name: name.to_owned(),
        seconds: seconds_run,
        executions: libfuzzer::executions(&log),
        coverage: libfuzzer::status_field(&log, "cov")
            .unwrap_or("-")
            .to_owned(),
        corpus: libfuzzer::status_field(&log, "corp")
            .and_then(|c| c.split('/').next())
            .unwrap_or("-")
            .to_owned(),
        findings,
        log: log_path,
    })
}

/// The names of the files in `dir`, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `path` relative to the workspace root, for printing.
fn relative(path: &Path) -> String {
    let root = fuzz_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    path.strip_prefix(&root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The one-line result of a run.
fn summary(run: &TargetRun) -> String {
    let rate = if run.seconds > 0.0 {
        run.executions as f64 / run.seconds
    } else {
        0.0
    };
    format!(
        "fuzz: {:<16} {:>10} executions in {:>6.1} s ({:>7.0}/s), cov {:>5}, corpus {:>5}, {} finding{}",
        run.name,
        run.executions,
        run.seconds,
        rate,
        run.coverage,
        run.corpus,
        run.findings.len(),
        if run.findings.len() == 1 { "" } else { "s" }
    )
}

/// What to print about each finding: its message, its input, how to reproduce it.
fn report_findings(run: &TargetRun) -> String {
    let mut out = String::new();
    for (i, f) in run.findings.iter().enumerate() {
        out.push_str(&format!("  finding {} of {}:\n", i + 1, run.name));
        for l in f.message.lines() {
            out.push_str(&format!("    | {l}\n"));
        }
        match &f.artifact {
            Some(a) => {
                out.push_str(&format!("    input:     fuzz/{a}\n"));
                out.push_str(&format!(
                    "    reproduce: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -O {} {a}\n",
                    run.name
                ));
                out.push_str(&format!(
                    "    minimize:  cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz tmin -O {} {a}\n",
                    run.name
                ));
            }
            None => out.push_str("    input:     not written (the process died first)\n"),
        }
    }
    if !run.findings.is_empty() {
        out.push_str(&format!("    log:       {}\n", relative(&run.log)));
    }
    out
}

/// For idl_conversions: how many inputs of the seeds, and of the corpus that libFuzzer found
/// itself (not copies of a seed), sit at the tag cap and just over it: whether the run reached
/// the edge, and whether its mutations keep inputs near it.
fn tag_edge(name: &str) -> Option<String> {
    if name != "idl_conversions" {
        return None;
    }
    let dir = fuzz_dir();
    let read = |d: &Path| -> Vec<Vec<u8>> {
        files(d)
            .into_iter()
            .filter_map(|f| std::fs::read(d.join(f)).ok())
            .collect()
    };
    let seeds = read(&dir.join("seeds").join(name));
    let found: Vec<Vec<u8>> = read(&dir.join("corpus").join(name))
        .into_iter()
        .filter(|b| !seeds.contains(b))
        .collect();
    let count = |inputs: &[Vec<u8>]| {
        let (mut at, mut over, mut near) = (0, 0, 0);
        for bytes in inputs {
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            let len = bgsync_types::Tag::from_utf16(units).utf8_len();
            at += usize::from(len == targets::TAG_CAP);
            over += usize::from(len == targets::TAG_CAP + 1);
            near += usize::from(len.abs_diff(targets::TAG_CAP) <= 64);
        }
        format!(
            "{} inputs: {at} at 10,240 bytes of UTF-8, {over} at 10,241, {near} within 64 bytes of the cap",
            inputs.len()
        )
    };
    Some(format!(
        "fuzz: idl_conversions tags: seeds {}; found by libFuzzer (the corpus of all runs so far, seeds left out) {}",
        count(&seeds),
        count(&found)
    ))
}

/// `cargo xtask fuzz ...`
pub fn main(args: &[String]) -> Result<(), String> {
    let mut cases_n = None;
    let mut target_name = None;
    let mut all = false;
    let mut coverage_run = false;
    let mut seconds = None;
    let mut write_seeds = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--cases" => {
                cases_n = Some(
                    it.next()
                        .and_then(|v| v.parse().ok())
                        .ok_or("--cases takes a number")?,
                )
            }
            "--target" => target_name = Some(it.next().ok_or("--target takes a name")?.clone()),
            "--seconds" => {
                seconds = Some(
                    it.next()
                        .and_then(|v| v.parse().ok())
                        .ok_or("--seconds takes a number")?,
                )
            }
            "--all" => all = true,
            "--smoke" => {
                all = true;
                seconds = seconds.or(Some(SMOKE_SECONDS));
            }
            "--coverage" => coverage_run = true,
            "--write-seeds" => write_seeds = true,
            other => return Err(format!("fuzz: unknown argument {other}\n{USAGE}")),
        }
    }
    if coverage_run {
        return coverage::main(cases_n.unwrap_or(coverage::DEFAULT_CASES));
    }
    if let Some(n) = cases_n {
        return cases(n);
    }
    if write_seeds {
        for name in TARGETS {
            let dir = fuzz_dir().join("seeds").join(name);
            let (n, max_len) = targets::write(name, &dir)?;
            println!("fuzz: {n} seeds in {} (-max_len={max_len})", relative(&dir));
        }
        return Ok(());
    }
    let names: Vec<&str> = if all {
        TARGETS.to_vec()
    } else if let Some(t) = &target_name {
        let t = TARGETS
            .iter()
            .find(|n| **n == t.as_str())
            .ok_or_else(|| format!("unknown fuzz target {t}; targets: {}", TARGETS.join(", ")))?;
        vec![*t]
    } else {
        return Err(format!("{USAGE}\ntargets: {}", TARGETS.join(", ")));
    };
    let seconds = seconds.unwrap_or(60);
    ensure_cargo_fuzz()?;
    build(&names)?;
    let mut runs = Vec::new();
    for name in &names {
        let run = target(name, seconds)?;
        println!("{}", summary(&run));
        print!("{}", report_findings(&run));
        if let Some(edge) = tag_edge(name) {
            println!("{edge}");
        }
        runs.push(run);
    }
    if runs.len() > 1 {
        println!();
        for run in &runs {
            println!("{}", summary(run));
        }
    }
    let found: Vec<&TargetRun> = runs.iter().filter(|r| !r.findings.is_empty()).collect();
    if found.is_empty() {
        return Ok(());
    }
    let mut message = String::from("fuzzing found:\n");
    for run in found {
        message.push_str(&report_findings(run));
    }
    message.push_str("turn each into a regression test (docs/fuzzing.md)");
    Err(message)
}
