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
//!
//! It also counts the thread's calls into the C allocator (`malloc`, `calloc`, `realloc`, and
//! `free`), start-up included: issue 14 asks for no allocation a call on the engine's path.

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
            found = Some((total, heap_calls(&text)));
        }
    }
    let (total, heap) =
        found.ok_or("no thread of the run ran the Background Sync thread's loop")?;
    let per = |x: u64| x as f64 / n as f64;
    println!(
        "Background Sync thread: {} instructions a registration ({total} for {n}, the store discarding; callgrind); {:.2} allocations (malloc, calloc, realloc) and {:.2} frees a registration ({} and {}, start-up and shutdown included)",
        total / n as u64,
        per(heap.allocations),
        per(heap.frees),
        heap.allocations,
        heap.frees
    );
    Ok(())
}

/// A thread's calls into the C allocator.
#[derive(Debug, Default, PartialEq)]
struct HeapCalls {
    /// `malloc`, `calloc` and `realloc`.
    allocations: u64,
    frees: u64,
}

/// The calls to the C allocator's functions in one thread's callgrind output: each call site
/// names its callee (`cfn=`, by name the first time and by number after) and then its count
/// (`calls=`).
fn heap_calls(callgrind_out: &str) -> HeapCalls {
    let mut names: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    let mut callee: Option<&str> = None;
    let mut heap = HeapCalls::default();
    for line in callgrind_out.lines() {
        let (is_call, rest) = match (line.strip_prefix("cfn="), line.strip_prefix("fn=")) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            (None, None) => {
                if let (Some(count), Some(name)) = (line.strip_prefix("calls="), callee.take()) {
                    let count: u64 = count
                        .split_whitespace()
                        .next()
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(0);
                    match name {
                        "malloc" | "calloc" | "realloc" => heap.allocations += count,
                        "free" => heap.frees += count,
                        _ => {}
                    }
                }
                continue;
            }
        };
        // "(12) name" names function 12; "(12)" refers to it; a bare name is not compressed.
        let name = match rest.strip_prefix('(').and_then(|r| r.split_once(')')) {
            Some((id, "")) => names.get(id).copied(),
            Some((id, name)) => {
                let name = name.trim_start();
                names.insert(id, name);
                Some(name)
            }
            None => Some(rest),
        };
        callee = if is_call { name } else { None };
    }
    heap
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
    fn heap_calls_are_counted_by_callee_named_or_numbered() {
        let out = "fn=(1) bgsync::driver::Driver::handle\n\
                   cfn=(2) malloc\ncalls=3 0x10\n5 9\n\
                   cfn=(3) free\ncalls=2 0x20\n5 9\n\
                   fn=(4) other\n\
                   cfn=(2)\ncalls=4 0x10\n5 9\n\
                   cfn=(5) realloc\ncalls=1 0x30\n5 9\n\
                   cfn=(6) mallocish\ncalls=100 0x40\n5 9\n\
                   cfn=free\ncalls=7 0x20\n5 9\n\
                   fn=(2)\n1 50\ncalls=9 0x50\n";
        assert_eq!(
            heap_calls(out),
            HeapCalls {
                allocations: 8,
                frees: 9
            }
        );
    }

    #[test]
    fn the_discarding_store_takes_every_commit_and_keeps_nothing() {
        let mut store = Discard;
        assert!(store.commit(&[StoreOp::DeleteAll]).is_ok());
        assert!(store.load_all().unwrap().is_empty());
    }
}
