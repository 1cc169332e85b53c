//! Project automation: `cargo xtask <command>` (the alias lives in `.cargo/config.toml`).

use std::path::Path;
use std::process::{Command, ExitCode};

mod bench;
mod chromium;
mod crash;
mod faults;
mod fuzz;
mod peer;

const HELP: &str = "\
usage: cargo xtask <command>

commands:
  ci        what CI runs: cargo fmt --check, clippy with warnings denied, the test suite,
            every fuzz target for 30 s (fuzz --smoke)
  wpt [ARGS...]
            the conformance runner over spec-tests/ (ARGS go to wpt-runner, e.g.
            --wpt-root DIR, --json FILE)
  example   runs the e-mail outbox example (the timeline on virtual time)
  embedder  runs the out-of-tree embedder example (examples/embedder; docs/embedding.md)
  chromium [FILTER...]
            the spec-tests' window files on real Chromium and on our user agent, side by side
            (needs chromium and faketime; docs/chromium.md)
  bench [--quick]
            benchmarks as ratios against limits measured in the same run
            (--quick: a smoke run of under a minute)
  fuzz --cases N | --target NAME [--seconds S] | --all [--seconds S] | --smoke
       | --coverage [--cases N] | --write-seeds
            the differential test with N random scenarios; or libFuzzer targets
            (store_open, decode_row, idl_conversions, differential) via cargo-fuzz, each
            from its seeds, reporting executions and each finding with its message and
            reproduction (--smoke: every target for 30 s, as CI does); or the scheduler's
            line coverage under the differential test (target/coverage/summary.txt)
  crash-test [--runs N] [--seed S]
            SIGKILLs a process registering through the durable store at random
            moments (N times, default 50) and checks nothing acknowledged was lost
  faults [FILTER]
            fault drills against the real engine (disk full, read-only file system, bit
            flips, files deleted or replaced, panicking and blocking embedders, a flood of
            calls, the clock set back, shutdown under load): one PASS/FAIL/SKIP line each
            (FILTER: only the drills whose name contains it)
  timeline  writes target/timeline.html (wpt-runner --timeline over spec-tests/), loads it
            in headless Chromium (`chromium`, or $CHROMIUM) and checks the browser built
            every mark of the picture from it; target/timeline.png is its screenshot
  package   cargo package of every published crate, each built from its package as
            crates.io would (the workspace's crates resolved from the packages made)
  help      this text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("wpt") => {
            let mut a = vec!["run", "--release", "-p", "wpt-runner", "--"];
            a.extend(args[1..].iter().map(String::as_str));
            cargo(&a)
        }
        Some("timeline") => timeline(),
        Some("example") => cargo(&["run", "-p", "bgsync", "--example", "outbox"]),
        Some("embedder") => embedder(),
        Some("chromium") => chromium::main(&args[1..]),
        Some("package") => package(),
        Some("fuzz") => fuzz::main(&args[1..]),
        // Benchmarks measure optimised code: a debug xtask hands over to a release build.
        Some("bench") if cfg!(debug_assertions) => {
            let mut a = vec!["run", "--release", "--quiet", "-p", "xtask", "--", "bench"];
            a.extend(args[1..].iter().map(String::as_str));
            cargo(&a)
        }
        Some("bench") => bench::main(&args[1..]),
        Some("bench-one") => bench::one(&args[1..]),
        Some("bench-cold-child") => match args.get(1) {
            Some(dir) => bench::cold_child(std::path::Path::new(dir)),
            None => Err("bench-cold-child DIR".into()),
        },
        // Like bench: the drills' time limits and the flood's million calls assume optimised code.
        Some("faults") if cfg!(debug_assertions) => {
            let mut a = vec!["run", "--release", "--quiet", "-p", "xtask", "--", "faults"];
            a.extend(args[1..].iter().map(String::as_str));
            cargo(&a)
        }
        Some("faults") => faults::main(&args[1..]),
        Some("faults-child") => faults::child(&args[1..]),
        Some("crash-test") => {
            crash_test_args(&args[1..]).and_then(|(runs, seed)| crash::crash_test(runs, seed))
        }
        Some("crash-child") => crash::crash_child_args(&args[1..])
            .and_then(|(dir, seed)| crash::crash_child(&dir, seed)),
        None | Some("help" | "-h" | "--help") => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n\n{HELP}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn crash_test_args(args: &[String]) -> Result<(u32, Option<u64>), String> {
    let mut runs = 50;
    let mut seed = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = it.next().ok_or_else(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--runs" => {
                runs = value
                    .parse()
                    .map_err(|_| format!("--runs {value}: not a number"))?
            }
            "--seed" => {
                seed = Some(
                    value
                        .parse()
                        .map_err(|_| format!("--seed {value}: not a number"))?,
                )
            }
            other => return Err(format!("crash-test: unknown argument {other}")),
        }
    }
    Ok((runs, seed))
}

/// The checks CI runs, in the order that fails fastest.
fn ci() -> Result<(), String> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo(&["test", "--workspace"])?;
    // Any finding fails CI, with its message and the command that reproduces it.
    fuzz::main(&["--smoke".to_owned()])
}

/// The out-of-tree embedder (examples/embedder, not a workspace member): its two-session run,
/// built in the workspace's target directory so that it shares the workspace's builds.
fn embedder() -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("xtask has no parent directory")?;
    std::env::set_var("CARGO_TARGET_DIR", root.join("target"));
    let manifest = root.join("examples").join("embedder").join("Cargo.toml");
    let manifest = manifest.to_str().ok_or("the path is not UTF-8")?;
    cargo(&["run", "--locked", "--manifest-path", manifest])
}

/// The timeline page checked in a real browser: Chromium's DOM after loading the page must hold
/// as many marks of each kind as the file, so the browser parsed the SVG as we wrote it.
fn timeline() -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("xtask has no parent directory")?;
    let page = root.join("target").join("timeline.html");
    let shot = root.join("target").join("timeline.png");
    let page_arg = page.to_string_lossy().into_owned();
    // The runner's exit status says whether tests passed; the page is what matters here.
    let _ = cargo(&[
        "run",
        "--release",
        "--quiet",
        "-p",
        "wpt-runner",
        "--",
        "--timeline",
        &page_arg,
    ]);
    let written = std::fs::read_to_string(&page)
        .map_err(|e| format!("{}: {e} (did wpt-runner write it?)", page.display()))?;
    let browser = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
    let url = format!("file://{}", page.display());
    let headless = ["--headless", "--no-sandbox", "--disable-gpu"];
    let out = Command::new(&browser)
        .args(headless)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .map_err(|e| {
            format!("could not run {browser}: {e} (apt-get install chromium, or set CHROMIUM)")
        })?;
    if !out.status.success() {
        return Err(format!("{browser} --dump-dom failed ({})", out.status));
    }
    let dom = String::from_utf8_lossy(&out.stdout);
    let mut failed = false;
    for mark in [
        "class=\"row\"",
        "class=\"registered\"",
        "class=\"dispatch",
        "class=\"back-off\"",
        "class=\"done\"",
        "class=\"gave-up\"",
        "class=\"last-chance-mark\"",
        "<tr>",
    ] {
        let (in_file, in_dom) = (written.matches(mark).count(), dom.matches(mark).count());
        println!("{mark:<28} file {in_file:>5}   browser DOM {in_dom:>5}");
        failed |= in_file != in_dom || in_file == 0;
    }
    let _ = Command::new(&browser)
        .args(headless)
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1300,2000")
        .arg(&url)
        .output();
    println!("page {}; screenshot {}", page.display(), shot.display());
    if failed {
        Err("the browser's DOM differs from the page (or a mark never appears)".into())
    } else {
        Ok(())
    }
}

/// `cargo package` of every published crate. Cargo unpacks the packages it verifies against
/// into `target/package` and into the registry's source cache, keyed by name and version only;
/// while the version stays 0.1.0 an older unpacked copy would be built instead of the new one,
/// and cargo treats a registry crate of a given version as unchanging, so the fingerprints of
/// an earlier verification build would be reused too. All three are cleared first.
fn package() -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("xtask has no parent directory")?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    remove_dir(&target.join("package"))?;
    let fingerprints = target.join("debug").join(".fingerprint");
    for entry in std::fs::read_dir(&fingerprints)
        .into_iter()
        .flatten()
        .flatten()
    {
        if is_ours(&entry.file_name().to_string_lossy()) {
            remove_dir(&entry.path())?;
        }
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    if let Some(src) = cargo_home.map(|h| h.join("registry").join("src")) {
        for registry in std::fs::read_dir(&src).into_iter().flatten().flatten() {
            for unpacked in std::fs::read_dir(registry.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if is_ours(&unpacked.file_name().to_string_lossy()) {
                    remove_dir(&unpacked.path())?;
                }
            }
        }
    }
    cargo(&[
        "package",
        "--workspace",
        "--exclude",
        "xtask",
        "--allow-dirty",
    ])
}

/// Whether a cache entry (`name-version` or `name-hash`) belongs to one of the workspace's crates.
fn is_ours(entry: &str) -> bool {
    entry.starts_with("bgsync-") || entry.starts_with("bgsync_") || entry.starts_with("wpt-runner-")
}

fn remove_dir(dir: &Path) -> Result<(), String> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("could not remove {}: {e}", dir.display())),
    }
}

fn cargo(args: &[&str]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .status()
        .map_err(|e| format!("could not run {cargo}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo {} failed ({status})", args.join(" ")))
    }
}
