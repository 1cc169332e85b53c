//! `bench-one instructions [N]`: the instructions the Background Sync thread runs per
//! registration for benchmark 3's 64 async callers, counted by valgrind's callgrind
//! (docs/performance.md, "The engine's own work, counted").
//!
//! Timing the engine's share of a registration on this machine moves by a quarter from run to
//! run; an instruction count does not move at all, so it tells whether a change to the engine's
//! path made it shorter. It does not see cache misses or waits: a shorter path is a
//! necessary part of a faster one, not proof of it. The run's store discards what it is given
//! ([`Discard`]), so every instruction counted is the engine's (its start and shutdown
//! included, spread over `N`).

use std::path::Path;
use std::process::Command;

use bgsync_store::{RegistrationStore, StoreOp, StoredRegistration};

/// A store that keeps nothing: what it costs is not the engine's.
pub(super) struct Discard;

impl RegistrationStore for Discard {
    fn load_all(&mut self) -> Result<Vec<StoredRegistration>, bgsync::StoreError> {
        Ok(Vec::new())
    }
    fn commit(&mut self, _batch: &[StoreOp]) -> Result<(), bgsync::StoreError> {
        Ok(())
    }
}

/// Runs `bench-one tasks-discard n` under callgrind, one output file per thread in `dir`,
/// and prints the Background Sync thread's instructions per registration. Skipped, with the
/// reason, when valgrind is not installed.
pub(super) fn run(dir: &Path, n: usize) -> Result<(), String> {
    if Command::new("valgrind").arg("--version").output().is_err() {
        println!("skipped: valgrind is not installed (apt-get install -y valgrind)");
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg("--separate-threads=yes")
        .arg(format!(
            "--callgrind-out-file={}/callgrind.out",
            dir.display()
        ))
        .arg(exe)
        .args(["bench-one", "tasks-discard", &n.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("valgrind failed: {status}"));
    }
    let mut found = None;
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let text = std::fs::read_to_string(entry.map_err(|e| e.to_string())?.path())
            .map_err(|e| e.to_string())?;
        if let Some(total) = engine_thread_total(&text) {
            found = Some(total);
        }
    }
    let total = found.ok_or("no thread of the run ran the Background Sync thread's loop")?;
    println!(
        "Background Sync thread: {} instructions a registration ({total} for {n}, the store discarding; callgrind)",
        total / n as u64
    );
    Ok(())
}

/// The instruction total in one thread's callgrind output, if that thread is the Background
/// Sync thread (the one that ran the driver's message handler).
fn engine_thread_total(callgrind_out: &str) -> Option<u64> {
    if !callgrind_out.contains("bgsync::driver::Driver::handle") {
        return None;
    }
    callgrind_out.lines().find_map(|line| {
        let rest = line
            .strip_prefix("summary:")
            .or_else(|| line.strip_prefix("totals:"))?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_thread_is_the_one_that_ran_the_handler() {
        let engine = "events: Ir\nfn=(1) bgsync::driver::Driver::handle\n0 5\nsummary: 4736000\n";
        let callers = "events: Ir\nfn=(1) xtask::bench::tasks_on\n0 5\nsummary: 99\n";
        assert_eq!(engine_thread_total(engine), Some(4_736_000));
        assert_eq!(engine_thread_total(callers), None);
        assert_eq!(
            engine_thread_total("bgsync::driver::Driver::handle\n"),
            None
        );
    }

    #[test]
    fn the_discarding_store_takes_every_commit_and_keeps_nothing() {
        let mut store = Discard;
        assert!(store.commit(&[StoreOp::DeleteAll]).is_ok());
        assert!(store.load_all().unwrap().is_empty());
    }
}
