//! `bench-one floor [N] [--after-threads] [--spin] [--rounds R]` (N right after `floor`):
//! what benchmark 3's async callers reach through a server with no engine in it
//! (docs/performance.md, "The third machine, third session"), round by round against SQLite's
//! limit, with the engine's tasks measured in the same rounds, and how many rounds of each
//! reach the goal.
//!
//! The floor has the engine's shape and nothing else: the same 64 tasks on one current-thread
//! runtime, each sending its tag over a bounded tokio channel with a oneshot for the answer,
//! to one thread that gathers exactly 64 calls (it knows the group's size: no hold to guess
//! it), commits their rows with [`SqliteStore::commit`], and answers each. No core, no
//! checks, no log, no dispatcher. What it loses against SQLite's limit is what any engine
//! with one thread that commits, callers on another and an answer per call pays on this
//! machine for the hand-offs alone; what the engine loses against the floor is its own.

use std::path::Path;
use std::time::{Duration, Instant};

use bgsync_store::RegistrationStore;
use bgsync_store_sqlite::SqliteStore;
use tokio::sync::{mpsc, oneshot};

use super::{caller_tag, median, origin, put, wall_now};

/// A call to the floor's server: the tag, and where its answer goes.
type Call = (String, oneshot::Sender<()>);

/// The server's time in its commits, its commits, and its CPU time and switches over the run.
type ServerRan = (Duration, u32, Option<u64>, Option<[u64; 2]>);

/// One run of the floor.
pub(super) struct FloorRun {
    /// Registrations a second.
    pub(super) rate: f64,
    /// The mean time between commits: the run's wall time not spent in a commit, per commit,
    /// as benchmark 3 counts the engine's.
    pub(super) between: Duration,
    /// The mean time in a commit.
    pub(super) commit: Duration,
    /// CPU time per registration of the server's thread and of the callers', in ns (where
    /// the system gives it).
    pub(super) cpu_ns: Option<(f64, f64)>,
    /// How many times a commit the server's thread and the callers' went to sleep.
    pub(super) sleeps: Option<(f64, f64)>,
    /// How many times a commit another thread took the server's CPU.
    pub(super) preempted: Option<f64>,
}

/// How the floor's server waits for the next call.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    /// Asleep in its runtime until a call wakes it, as the engine's thread waits.
    Sleep,
    /// Never asleep: it polls the queue in a loop and keeps its CPU. No engine may do this (it
    /// takes a CPU from the browser for as long as it runs); it is here to show what is left
    /// of SQLite's limit with the server's wake-ups taken out of the hand-offs.
    Spin,
}

pub(super) fn floor_run(dir: &Path, per_caller: usize) -> Result<FloorRun, String> {
    floor_run_waiting(dir, per_caller, Wait::Sleep)
}

/// [`floor_run`], its server waiting for calls as `wait` says.
pub(super) fn floor_run_waiting(
    dir: &Path,
    per_caller: usize,
    wait: Wait,
) -> Result<FloorRun, String> {
    let _ = std::fs::remove_dir_all(dir);
    let mut store = SqliteStore::open(dir).map_err(|e| e.to_string())?;
    let (tx, mut rx) = mpsc::channel::<Call>(10_000);
    let server = std::thread::Builder::new()
        .name("floor-server".into())
        .spawn(move || -> Result<ServerRan, String> {
            let ran = super::placement::run_ns(0);
            let switched = super::placement::switches(0);
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let o = origin(0);
                let (mut seq, mut busy, mut commits) = (0u64, Duration::ZERO, 0u32);
                let mut calls: Vec<Call> = Vec::with_capacity(64);
                loop {
                    while calls.len() < 64 {
                        let call = match rx.try_recv() {
                            Ok(call) => call,
                            Err(mpsc::error::TryRecvError::Empty) if wait == Wait::Spin => {
                                std::hint::spin_loop();
                                continue;
                            }
                            Err(_) => match rx.recv().await {
                                Some(call) => call,
                                None => break,
                            },
                        };
                        calls.push(call);
                    }
                    if calls.is_empty() {
                        break;
                    }
                    let now = wall_now();
                    let ops: Vec<_> = calls
                        .iter_mut()
                        .map(|(tag, _)| {
                            seq += 1;
                            put(o.clone(), 1, std::mem::take(tag), seq, now)
                        })
                        .collect();
                    let started = Instant::now();
                    store.commit(&ops).map_err(|e| e.to_string())?;
                    busy += started.elapsed();
                    commits += 1;
                    for (_, answer) in calls.drain(..) {
                        let _ = answer.send(());
                    }
                }
                Ok((
                    busy,
                    commits,
                    super::placement::run_ns_since(0, ran),
                    super::placement::switches_since(0, switched),
                ))
            })
        })
        .map_err(|e| e.to_string())?;
    let callers = super::run_async_callers(move |c| {
        let tx = tx.clone();
        async move {
            for i in 0..per_caller {
                let (answer, answered) = oneshot::channel();
                if tx.send((caller_tag(c, i), answer)).await.is_err() {
                    return;
                }
                let _ = answered.await;
            }
        }
    })?;
    let (busy, commits, server_ran, server_switched) = server
        .join()
        .map_err(|_| "the floor's server panicked".to_string())??;
    let (wall, n) = (callers.wall, 64 * per_caller);
    let (sleeps, preempted) =
        super::switches_per_commit(server_switched, callers.sleeps, u64::from(commits));
    Ok(FloorRun {
        rate: n as f64 / wall.as_secs_f64(),
        between: wall.saturating_sub(busy) / commits.max(1),
        commit: busy / commits.max(1),
        cpu_ns: super::per_registration(server_ran, callers.ran_ns, n),
        sleeps,
        preempted,
    })
}

/// `rounds` rounds of SQLite's limit, (with `after_threads`, 64 threads on the engine, as
/// benchmark 3 runs before its tasks,) the floor and the engine's 64 async tasks, each in a
/// fresh directory, one after the other; prints each round and the medians of the rounds'
/// ratios to their limit and of the engine's to its floor.
pub(super) fn run(
    dir: &Path,
    n: usize,
    rounds: usize,
    after_threads: bool,
    wait: Wait,
) -> Result<(), String> {
    let per_caller = n.div_ceil(64);
    let (mut floor, mut tasks, mut to_floor) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..rounds {
        let limit = super::sqlite_group_limit(&dir.join(format!("limit-{r}")), per_caller)?;
        if after_threads {
            // As in the full benchmark's rounds, where the tasks follow 64 threads.
            super::register_throughput(&dir.join(format!("threads-{r}")), per_caller, false)?;
        }
        let fl = floor_run_waiting(&dir.join(format!("floor-{r}")), per_caller, wait)?;
        let (f, f_between) = (fl.rate, fl.between);
        let (t, t_commits) =
            super::register_throughput_async(&dir.join(format!("tasks-{r}")), per_caller)?;
        println!(
            "limit {limit:.0} rows/s; floor {f:.0} a second = {:.2} ×, {:.0} µs in a commit, \
             {:.0} µs between commits{}{}; engine {t:.0} a second = {:.2} ×, {:.0} µs in a \
             commit, {:.0} µs between commits{}{}",
            f / limit,
            fl.commit.as_secs_f64() * 1e6,
            f_between.as_secs_f64() * 1e6,
            super::cpu_line(fl.cpu_ns, "the server"),
            super::switches_line(fl.sleeps, fl.preempted, "the server", "the callers' thread"),
            t / limit,
            t_commits.commit_us,
            t_commits.between_us,
            super::cpu_line(t_commits.cpu_ns, "the Background Sync thread"),
            super::switches_line(
                t_commits.sleeps,
                t_commits.preempted,
                "the Background Sync thread",
                "the callers' thread"
            ),
        );
        floor.push((f / limit, f_between.as_secs_f64() * 1e6));
        tasks.push((t / limit, t_commits.between_us));
        to_floor.push(t / f);
    }
    let medians = |v: &[(f64, f64)]| {
        (
            median(v.iter().map(|x| x.0).collect()),
            median(v.iter().map(|x| x.1).collect()),
        )
    };
    let ((fr, fb), (tr, tb)) = (medians(&floor), medians(&tasks));
    println!("medians over {rounds} rounds:");
    println!("  floor : {fr:.2} × SQLite's limit, {fb:.0} µs between commits");
    println!(
        "  engine: {tr:.2} × SQLite's limit, {tb:.0} µs between commits ({:.2} × the floor)",
        median(to_floor)
    );
    let at_goal = |v: &[(f64, f64)]| v.iter().filter(|x| x.0 >= super::ASYNC_GOAL).count();
    println!(
        "rounds at or above benchmark 3's goal ({} ×): floor {} of {rounds}, engine {} of {rounds}",
        super::ASYNC_GOAL,
        at_goal(&floor),
        at_goal(&tasks)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_commits_every_callers_rows_and_answers_every_call() {
        for wait in [Wait::Sleep, Wait::Spin] {
            every_row_committed_and_answered(wait);
        }
    }

    /// A floor whose server waits as `wait` says ends (every caller had its answers) with
    /// every caller's rows on disk.
    fn every_row_committed_and_answered(wait: Wait) {
        let dir = tempfile::tempdir().unwrap();
        let run = floor_run_waiting(&dir.path().join("floor"), 3, wait).unwrap();
        assert!(run.rate > 0.0, "{}", run.rate);
        // Both threads' sleeps are counted wherever the system counts them.
        assert_eq!(
            run.sleeps.is_some(),
            super::super::placement::switches(0).is_some()
        );
        // The run returned, so every caller had its three answers; and every row is on disk.
        let mut tags: Vec<String> = SqliteStore::open(&dir.path().join("floor"))
            .unwrap()
            .load_all()
            .unwrap()
            .into_iter()
            .map(|r| r.tag.to_string_lossy())
            .collect();
        tags.sort();
        let mut expected: Vec<String> = (0..64)
            .flat_map(|c| (0..3).map(move |i| caller_tag(c, i)))
            .collect();
        expected.sort();
        assert_eq!(tags, expected);
    }
}
