//! `cargo xtask fuzz`: the differential test at scale, and the coverage-guided targets.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use bgsync_store::{RegistrationStore, StoreOp, StoredRegistration};
use bgsync_store_sqlite::{SqliteStore, DB_FILE};
use bgsync_types::{Origin, SwRegistrationId, SyncKind, Tag, Timestamp};

/// The coverage-guided targets (fuzz/fuzz_targets/*.rs).
pub const TARGETS: [&str; 4] = [
    "store_open",
    "decode_row",
    "idl_conversions",
    "differential",
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Runs the proptest differential test with `cases` cases, in release mode.
pub fn cases(cases: u64) -> Result<(), String> {
    let started = Instant::now();
    let status = Command::new(env!("CARGO"))
        .args([
            "test",
            "--release",
            "-p",
            "bgsync-model",
            "--test",
            "differential",
            "the_engine_agrees_with_the_model",
        ])
        .env("BGSYNC_FUZZ_CASES", cases.to_string())
        .status()
        .map_err(|e| format!("cargo test: {e}"))?;
    println!(
        "fuzz: differential, {cases} cases, {:.1} s, {}",
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
        .args(["install", "cargo-fuzz"])
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err("could not install cargo-fuzz".into())
    }
}

/// A seed for store_open: a real database with a few rows, so mutations start from valid pages.
fn seed_store(corpus: &Path) -> Result<(), String> {
    std::fs::create_dir_all(corpus).map_err(|e| e.to_string())?;
    let dir = tempfile_dir()?;
    {
        let mut store = SqliteStore::open(&dir).map_err(|e| e.to_string())?;
        let ops: Vec<StoreOp> = (0..8u64)
            .map(|i| {
                StoreOp::Put(StoredRegistration {
                    origin: Origin::parse("https://a.example").expect("static"),
                    partition: Default::default(),
                    seq: 0,
                    sw: SwRegistrationId(i),
                    tag: Tag::from_utf16(vec![0xD800, i as u16]),
                    kind: SyncKind::OneShot,
                    attempts: i as u32 % 3,
                    max_attempts: 3,
                    next_fire: Timestamp(i * 1000),
                    periodic_interval: None,
                })
            })
            .collect();
        store.commit(&ops).map_err(|e| e.to_string())?;
    }
    let bytes = std::fs::read(dir.join(DB_FILE)).map_err(|e| e.to_string())?;
    std::fs::write(corpus.join("seed-valid-db"), bytes).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("bgsync-fuzz-seed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// What one target run found.
pub struct TargetRun {
    pub executions: u64,
    pub seconds: u64,
    pub findings: usize,
}

/// Runs one coverage-guided target for `seconds` (libFuzzer through cargo-fuzz, on the stable
/// toolchain with RUSTC_BOOTSTRAP=1 for the sanitizer flags cargo-fuzz passes).
pub fn target(name: &str, seconds: u64) -> Result<TargetRun, String> {
    if !TARGETS.contains(&name) {
        return Err(format!(
            "unknown fuzz target {name}; targets: {}",
            TARGETS.join(", ")
        ));
    }
    ensure_cargo_fuzz()?;
    let dir = fuzz_dir();
    let corpus = dir.join("corpus").join(name);
    std::fs::create_dir_all(&corpus).map_err(|e| e.to_string())?;
    if name == "store_open" {
        seed_store(&corpus)?;
    }
    let artifacts = dir.join("artifacts").join(name);
    let before = count(&artifacts);
    let output = Command::new(env!("CARGO"))
        .current_dir(&dir)
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["fuzz", "run", "-O", name])
        .arg(&corpus)
        .args([
            "--",
            &format!("-max_total_time={seconds}"),
            "-rss_limit_mb=4096",
        ])
        .output()
        .map_err(|e| format!("cargo fuzz: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    // libFuzzer's status lines start with "#<executions>"; the last one is the total (the
    // closing "Done" line is missing when a crash stops the run).
    let executions = stderr
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter_map(|r| {
            r.split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
        })
        .next_back()
        .unwrap_or(0);
    let findings = count(&artifacts).saturating_sub(before);
    if !output.status.success() && findings == 0 {
        return Err(format!(
            "cargo fuzz run {name} failed:\n{}",
            tail(&stderr, 30)
        ));
    }
    if findings > 0 {
        eprintln!("{}", tail(&stderr, 40));
    }
    Ok(TargetRun {
        executions,
        seconds,
        findings,
    })
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| {
            if l.len() > 300 {
                format!(
                    "{}… ({} bytes)",
                    l.chars().take(300).collect::<String>(),
                    l.len()
                )
            } else {
                (*l).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `cargo xtask fuzz ...`
pub fn main(args: &[String]) -> Result<(), String> {
    let mut cases_n = None;
    let mut target_name = None;
    let mut all = false;
    let mut seconds = 60;
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
                seconds = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--seconds takes a number")?
            }
            "--all" => all = true,
            other => return Err(format!("fuzz: unknown argument {other}")),
        }
    }
    if let Some(n) = cases_n {
        return cases(n);
    }
    let names: Vec<String> = if all {
        TARGETS.iter().map(|s| s.to_string()).collect()
    } else if let Some(t) = target_name {
        vec![t]
    } else {
        return Err(format!("usage: cargo xtask fuzz --cases N | --target NAME --seconds S | --all --seconds S\ntargets: {}", TARGETS.join(", ")));
    };
    let mut total_findings = 0;
    let mut rows = Vec::new();
    for name in &names {
        let run = target(name, seconds)?;
        total_findings += run.findings;
        let line = format!(
            "fuzz: {name:<16} {:>12} executions in {:>5} s, {} findings",
            run.executions, run.seconds, run.findings
        );
        println!("{line}");
        rows.push(line);
    }
    if names.len() > 1 {
        println!("\n{}", rows.join("\n"));
    }
    if total_findings > 0 {
        return Err(format!(
            "{total_findings} finding(s): see fuzz/artifacts/ and turn each into a regression test"
        ));
    }
    Ok(())
}
