//! `cargo xtask fuzz --coverage`: which lines of the scheduler the differential test reaches.
//!
//! The test is built with rustc's `-C instrument-coverage` into target/coverage (so the normal
//! builds keep their fingerprints), optimised as `--cases` runs it (20,000 scenarios take 46 s
//! instead of 162 s unoptimised, for the same lines reached), run with `BGSYNC_FUZZ_CASES`
//! random scenarios, and its profile read with the llvm-tools of the toolchain
//! (`llvm-profdata`, `llvm-cov export -format=lcov`). Every file of components/scheduler/src is
//! counted, functions no scenario calls included.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Scenarios run when `--cases` is not given.
pub const DEFAULT_CASES: u64 = 20_000;

/// The crate measured, relative to the workspace root.
const MEASURED: &str = "components/scheduler/src/";

/// What the issue asks of the differential test.
const GOAL_PERCENT: f64 = 95.0;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_path_buf()
}

/// The directory of the toolchain's llvm-tools, added with rustup if they are missing.
fn llvm_tools() -> Result<PathBuf, String> {
    let rustc = |arg: &str| -> Result<String, String> {
        let out = Command::new("rustc")
            .arg(arg)
            .output()
            .map_err(|e| format!("rustc {arg}: {e}"))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let sysroot = rustc("--print=sysroot")?.trim().to_owned();
    let host = rustc("-vV")?
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .ok_or("rustc -vV names no host")?
        .to_owned();
    let bin = Path::new(&sysroot)
        .join("lib/rustlib")
        .join(host)
        .join("bin");
    if !bin.join("llvm-cov").exists() {
        eprintln!("xtask: adding llvm-tools-preview (for llvm-profdata and llvm-cov)");
        let status = Command::new("rustup")
            .args(["component", "add", "llvm-tools-preview"])
            .status()
            .map_err(|e| format!("rustup: {e}"))?;
        if !status.success() || !bin.join("llvm-cov").exists() {
            return Err(format!(
                "no llvm-cov in {}: rustup component add llvm-tools-preview",
                bin.display()
            ));
        }
    }
    Ok(bin)
}

fn run(c: &mut Command, what: &str) -> Result<std::process::Output, String> {
    let out = c.output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{what} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `cargo xtask fuzz --coverage [--cases N]`
pub fn main(cases: u64) -> Result<(), String> {
    let root = root();
    let tools = llvm_tools()?;
    let out_dir = root.join("target").join("coverage");
    let profraw = out_dir.join("profraw");
    let _ = std::fs::remove_dir_all(&profraw);
    std::fs::create_dir_all(&profraw).map_err(|e| format!("{}: {e}", profraw.display()))?;

    // Build: build scripts and proc macros are instrumented too, and write profiles where they
    // run, so their profiles go to a directory of their own.
    let started = Instant::now();
    eprintln!(
        "xtask: building the differential test with -C instrument-coverage in target/coverage"
    );
    let build = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args([
            "test",
            "--release",
            "-p",
            "bgsync-model",
            "--test",
            "differential",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .env("CARGO_TARGET_DIR", &out_dir)
        .env("RUSTFLAGS", "-C instrument-coverage")
        .env(
            "LLVM_PROFILE_FILE",
            out_dir.join("build-profraw").join("%p-%m.profraw"),
        )
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cargo test --no-run: {e}"))?;
    if !build.status.success() {
        return Err("building the differential test for coverage failed".into());
    }
    let test_binary = String::from_utf8_lossy(&build.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "differential")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .ok_or("cargo built no differential test executable")?;
    let built = started.elapsed().as_secs_f64();

    // Run: the proptest only, as `cargo test` would (from the package's directory).
    let started = Instant::now();
    let status = Command::new(&test_binary)
        .current_dir(root.join("components/model"))
        .args(["the_engine_agrees_with_the_model", "--quiet"])
        .env("BGSYNC_FUZZ_CASES", cases.to_string())
        .env(
            "LLVM_PROFILE_FILE",
            profraw.join("differential-%p-%m.profraw"),
        )
        .status()
        .map_err(|e| format!("{}: {e}", test_binary.display()))?;
    let ran = started.elapsed().as_secs_f64();

    let profdata = out_dir.join("differential.profdata");
    let raws: Vec<PathBuf> = std::fs::read_dir(&profraw)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .collect();
    if raws.is_empty() {
        return Err("the test wrote no profile".into());
    }
    run(
        Command::new(tools.join("llvm-profdata"))
            .args(["merge", "-sparse", "-o"])
            .arg(&profdata)
            .args(&raws),
        "llvm-profdata merge",
    )?;
    let lcov = run(
        Command::new(tools.join("llvm-cov"))
            .args(["export", "-format=lcov"])
            .arg(format!("-instr-profile={}", profdata.display()))
            .arg(&test_binary),
        "llvm-cov export",
    )?;
    let files = parse_lcov(&String::from_utf8_lossy(&lcov.stdout), &root.join(MEASURED));
    if files.is_empty() {
        return Err(format!("the profile covers no file of {MEASURED}"));
    }

    let mut summary = format!(
        "Line coverage of {MEASURED} by the differential test \
         (the_engine_agrees_with_the_model, BGSYNC_FUZZ_CASES={cases}; built in {built:.0} s, \
         ran in {ran:.0} s{})\n\n",
        if status.success() {
            ""
        } else {
            ", and it FAILED"
        }
    );
    let (mut lines, mut covered) = (0, 0);
    let mut uncovered = String::new();
    for (file, hits) in &files {
        let n = hits.len();
        let c = hits.values().filter(|h| **h > 0).count();
        lines += n;
        covered += c;
        summary.push_str(&format!(
            "{:<44} {c:>5} / {n:>5} lines  {:>5.1}%\n",
            format!("{MEASURED}{file}"),
            percent(c, n)
        ));
        let missed: Vec<usize> = hits
            .iter()
            .filter(|(_, h)| **h == 0)
            .map(|(l, _)| *l)
            .collect();
        if missed.is_empty() {
            continue;
        }
        uncovered.push_str(&format!(
            "{MEASURED}{file}: {} lines not reached: {}\n",
            missed.len(),
            ranges(&missed)
        ));
        let source = std::fs::read_to_string(root.join(MEASURED).join(file)).unwrap_or_default();
        let source: Vec<&str> = source.lines().collect();
        for l in missed {
            uncovered.push_str(&format!(
                "  {l:>5} | {}\n",
                source.get(l - 1).copied().unwrap_or("")
            ));
        }
        uncovered.push('\n');
    }
    let total = percent(covered, lines);
    summary.push_str(&format!(
        "{:<44} {covered:>5} / {lines:>5} lines  {total:>5.1}%  (goal {GOAL_PERCENT}%: {})\n",
        "total",
        if total >= GOAL_PERCENT {
            "met"
        } else {
            "NOT met"
        }
    ));
    let summary_path = out_dir.join("summary.txt");
    let uncovered_path = out_dir.join("uncovered.txt");
    std::fs::write(&summary_path, &summary).map_err(|e| e.to_string())?;
    std::fs::write(&uncovered_path, &uncovered).map_err(|e| e.to_string())?;
    print!("{summary}");
    println!(
        "\nwritten: target/coverage/summary.txt, target/coverage/uncovered.txt (each line not \
         reached, with its source)"
    );
    if status.success() {
        Ok(())
    } else {
        Err("the engine diverged from the model (the scenario is above)".into())
    }
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        100.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// Per file under `dir` (by its path relative to `dir`), each instrumented line's count, from
/// an lcov trace (`SF:<path>`, `DA:<line>,<count>`, `end_of_record`).
fn parse_lcov(lcov: &str, dir: &Path) -> BTreeMap<String, BTreeMap<usize, u64>> {
    let mut files = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in lcov.lines() {
        if let Some(path) = line.strip_prefix("SF:") {
            current = Path::new(path)
                .strip_prefix(dir)
                .ok()
                .map(|p| p.display().to_string());
        } else if let (Some(file), Some(da)) = (&current, line.strip_prefix("DA:")) {
            let mut fields = da.split(',');
            let line_no = fields.next().and_then(|n| n.parse::<usize>().ok());
            let count = fields.next().and_then(|n| n.parse::<u64>().ok());
            if let (Some(l), Some(c)) = (line_no, count) {
                *files
                    .entry(file.clone())
                    .or_insert_with(BTreeMap::new)
                    .entry(l)
                    .or_insert(0) += c;
            }
        } else if line == "end_of_record" {
            current = None;
        }
    }
    files
}

/// `[3, 4, 5, 9]` as `3-5, 9`.
fn ranges(lines: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let start = lines[i];
        let mut end = start;
        while i + 1 < lines.len() && lines[i + 1] == end + 1 {
            i += 1;
            end = lines[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcov_lines_of_the_measured_crate_only() {
        let lcov = "\
SF:/w/components/scheduler/src/lib.rs
FN:3,f
DA:3,5
DA:4,0
LF:2
LH:1
end_of_record
SF:/w/components/model/src/model.rs
DA:1,1
end_of_record
SF:/w/components/scheduler/src/periodic.rs
DA:10,0
DA:11,0
DA:12,2
end_of_record
";
        let files = parse_lcov(lcov, Path::new("/w/components/scheduler/src"));
        assert_eq!(files.len(), 2);
        assert_eq!(files["lib.rs"], BTreeMap::from([(3, 5), (4, 0)]));
        assert_eq!(files["periodic.rs"][&12], 2);
    }

    #[test]
    fn ranges_join_consecutive_lines() {
        assert_eq!(ranges(&[3, 4, 5, 9, 11, 12]), "3-5, 9, 11-12");
        assert_eq!(ranges(&[]), "");
    }
}
