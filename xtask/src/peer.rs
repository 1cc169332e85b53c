//! `cargo xtask bench --peer chromium`: the same JavaScript on real Chromium and on our user
//! agent (durable, SQLite in a data directory), side by side: `register()` one at a time and
//! in a burst of 64 from one task, and `getTags()`, at N registrations on one service worker,
//! offline, timed with `performance.now()` in the page. Reported as ratios ours / Chromium per
//! N (docs/performance.md).

use std::time::Duration;

use bgsync_quickjs::{GlobalKind, UserAgent, UserAgentConfig};
use serde_json::Value;

/// The service worker: keeps nothing, settles nothing (everything stays offline).
pub const SW: &str = "self.onsync = () => {};\n";

/// The measurement, an async expression giving `{N: {...}}`. `bgsyncTest.setOnline` is the
/// user agent's own control on ours and the driver's shim on Chromium.
pub const BENCH: &str = r#"(async () => {
  const active = async (scope) => {
    const reg = await navigator.serviceWorker.register('/bench/sw.js', { scope });
    const w = reg.installing || reg.waiting || reg.active;
    if (w.state !== 'activated') {
      await new Promise((resolve) => w.addEventListener('statechange', () => { if (w.state === 'activated') resolve(); }));
    }
    return reg;
  };
  await active('/bench/warm/');
  await bgsyncTest.setOnline(false);
  const out = {};
  for (const n of [10, 100, 1000]) {
    const reg = await active('/bench/n' + n + '/');
    const times = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await reg.sync.register('tag-' + String(i).padStart(6, '0'));
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    const reps = 20;
    let tags = [];
    const g0 = performance.now();
    for (let r = 0; r < reps; r++) tags = await reg.sync.getTags();
    const getTags = (performance.now() - g0) / reps;
    const b0 = performance.now();
    await Promise.all(Array.from({ length: 64 }, (_, i) => reg.sync.register('burst-' + i)));
    const burst = (performance.now() - b0) / 64;
    out[n] = {
      registerMean: times.reduce((a, b) => a + b, 0) / n,
      registerP99: times[Math.min(n - 1, Math.floor(n * 0.99))],
      getTags, tags: tags.length, burstPerCall: burst,
    };
  }
  return out;
})()"#;

/// Runs [`BENCH`] on our user agent, durable in a temporary data directory.
fn ours() -> Result<Value, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir.path().join("bench")).map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("bench/sw.js"), SW).map_err(|e| e.to_string())?;
    let mut config = UserAgentConfig::new(dir.path());
    config.data_dir = Some(dir.path().join("profile"));
    config.watchdog = Duration::from_secs(120);
    // Chromium has no cap on registrations per origin; ours (1,000 by default) is not what is
    // measured here, and the page makes about 1,300.
    config.params.max_registrations_per_origin = None;
    let mut ua = UserAgent::new(config).map_err(|e| e.to_string())?;
    let url = ua.url_for("bench/index.html").map_err(|e| e.to_string())?;
    let page = ua
        .open(GlobalKind::Window, &url)
        .map_err(|e| e.to_string())?;
    let json = ua.eval_async(page, BENCH, Duration::from_secs(300))?;
    serde_json::from_str(&json).map_err(|e| e.to_string())
}

pub fn main() -> Result<(), String> {
    let chromium = match crate::chromium::prerequisites() {
        Ok(c) => c,
        Err(why) => {
            println!("bench --peer chromium: skipped: {why}");
            return Ok(());
        }
    };
    eprintln!("bench: peer: our user agent ...");
    let mine = ours()?;
    eprintln!("bench: peer: Chromium ...");
    let theirs = crate::chromium::run_bench_page(&chromium, BENCH, SW)?;
    let version = crate::chromium::version(&chromium);
    println!("\nSide by side with {version} (same JavaScript, offline, one service worker; ours durable in SQLite):");
    println!(
        "{:>6}  {:>22}  {:>22}  {:>22}  {:>24}",
        "N", "register mean (ms)", "register p99 (ms)", "getTags() (ms)", "burst of 64, per call"
    );
    let mut rows = Vec::new();
    for n in ["10", "100", "1000"] {
        let (a, b) = (&mine[n], &theirs[n]);
        let cell = |k: &str| -> (f64, f64, String) {
            let (x, y) = (
                a[k].as_f64().unwrap_or(f64::NAN),
                b[k].as_f64().unwrap_or(f64::NAN),
            );
            (x, y, format!("{x:.3} / {y:.3} = {:.2}×", x / y))
        };
        let (rm, rp, gt, bu) = (
            cell("registerMean"),
            cell("registerP99"),
            cell("getTags"),
            cell("burstPerCall"),
        );
        println!(
            "{n:>6}  {:>22}  {:>22}  {:>22}  {:>24}",
            rm.2, rp.2, gt.2, bu.2
        );
        rows.push(serde_json::json!({
            "n": n, "ours": a, "chromium": b,
            "ratios": {
                "registerMean": rm.0 / rm.1, "registerP99": rp.0 / rp.1,
                "getTags": gt.0 / gt.1, "burstPerCall": bu.0 / bu.1,
            },
        }));
    }
    println!("(ours / Chromium; goals: burst per call ≤ 0.5×, getTags() at N = 1,000 ≤ 1×)");
    let out =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench/peer-chromium.json");
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&serde_json::json!({ "chromium": version, "rows": rows }))
            .map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    println!("written: {}", out.display());
    Ok(())
}
