//! `cargo xtask bench`: performance as ratios against limits measured in the same run.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bgsync::{
    BackgroundSync, OutcomeReporter, RegistrationInfo, ServiceWorkerHost, SyncEventDispatch,
    WindowClients,
};
use bgsync_dispatcher::Dispatcher;
use bgsync_scheduler::{
    DispatchOutcome, Effect, Parameters, RegisterCall, RegisterContext, Scheduler,
};
use bgsync_store::{MemoryStore, RegistrationStore, StoreOp, StoredRegistration};
use bgsync_store_sqlite::SqliteStore;
use bgsync_types::{Origin, RequestId, SwRegistrationId, SyncKind, Tag, Timestamp};
use serde_json::json;

mod floor;
mod instructions;
mod placement;

struct Sizes {
    fsyncs: usize,
    latency_registers: usize,
    per_caller: usize,
    /// Rounds of benchmark 3 (the limit, threads, tasks, one after the other).
    rounds: usize,
    naive: usize,
    fanout: usize,
    cold: usize,
}

/// Benchmark 3's goal for the 64 async callers: this much of SQLite's limit (issue 14). The
/// table's row and `bench-one floor`'s count of rounds both judge by it.
const ASYNC_GOAL: f64 = 0.8;

/// One row of the table.
struct Row {
    name: &'static str,
    value: f64,
    unit: &'static str,
    ratio: Option<(f64, &'static str)>,
    goal: Option<&'static str>,
    met: Option<bool>,
    includes: &'static str,
}

fn origin(i: usize) -> Origin {
    Origin::parse(&format!("https://o{i}.example")).expect("generated origin")
}

/// A host whose one registration (sw 1) belongs to `https://o0.example` and whose workers
/// succeed at once.
struct Host;
impl ServiceWorkerHost for Host {
    /// Service worker registration n belongs to origin n - 1, as the cold-start store is laid
    /// out (start-up checks the owner origin).
    fn registration(&self, sw: SwRegistrationId) -> Option<RegistrationInfo> {
        let origins = host_origins();
        Some(RegistrationInfo {
            origin: origins[(sw.0.saturating_sub(1) % 10_000) as usize].clone(),
            partition: Default::default(),
            has_active_worker: true,
        })
    }
    fn fire_sync_event(&self, _event: SyncEventDispatch, reply: OutcomeReporter) {
        reply.report(DispatchOutcome::Fulfilled);
    }
}

/// The host's origins. An engine keeps its registrations' origins; it does not parse one per
/// lookup. Made once per process, by [`bench_engine`], before anything is timed.
fn host_origins() -> &'static [Origin] {
    static ORIGINS: std::sync::OnceLock<Vec<Origin>> = std::sync::OnceLock::new();
    ORIGINS.get_or_init(|| (0..10_000).map(origin).collect())
}

struct Windows;
impl WindowClients for Windows {
    fn has_window_client(&self, _origin: &Origin) -> bool {
        true
    }
}

/// The engine the durable benchmarks measure: offline (register() is measured alone, without
/// the events it would fire), with no quotas.
fn bench_engine() -> bgsync::Builder {
    host_origins();
    BackgroundSync::builder(Arc::new(Host), Arc::new(Windows))
        .network(Arc::new(bgsync::testing::FixedNetwork(false)))
        .params(Parameters {
            max_registrations_per_origin: None,
            max_bytes_per_origin: None,
            max_bytes_total: None,
            ..Parameters::default()
        })
}

fn durable_engine(dir: &Path) -> Result<BackgroundSync, String> {
    bench_engine()
        .data_dir(dir)
        .start()
        .map_err(|e| e.to_string())
}

/// Benchmark 1: fdatasync per 100-byte record, and per 64 records, in `dir`.
fn fsync_limits(dir: &Path, n: usize) -> Result<(f64, f64), String> {
    let path = dir.join("fsync-probe");
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| e.to_string())?;
    let record = [b'x'; 100];
    let t = Instant::now();
    for _ in 0..n {
        f.write_all(&record).map_err(|e| e.to_string())?;
        f.sync_data().map_err(|e| e.to_string())?;
    }
    let per_record = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 0..n {
        for _ in 0..64 {
            f.write_all(&record).map_err(|e| e.to_string())?;
        }
        f.sync_data().map_err(|e| e.to_string())?;
    }
    let grouped = (n * 64) as f64 / t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(path);
    Ok((per_record, grouped))
}

/// Why the SQLite store's file check asks `statx` for the inode number alone
/// (components/store-sqlite/src/lib.rs, `file_id`): the mean time of a 4 KB `pwrite` + `fsync`
/// of a file, alone, after a `stat` of the file that returns its change time, and after a
/// `statx` asking for the inode number alone; in 5 rounds alternating the three, medians, µs.
fn stat_fsync(dir: &Path, n: usize) -> Result<[f64; 3], String> {
    use std::os::unix::fs::FileExt;
    let path = dir.join("stat-fsync-probe");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| e.to_string())?;
    let page = [b'y'; 4096];
    // The file is written to its full size first, so the loops below overwrite (no growth).
    for i in 0..200u64 {
        f.write_at(&page, i * 4096).map_err(|e| e.to_string())?;
    }
    f.sync_all().map_err(|e| e.to_string())?;
    let mut rounds: [Vec<f64>; 3] = Default::default();
    for _ in 0..5 {
        for (how, times) in rounds.iter_mut().enumerate() {
            let mut spent = Duration::ZERO;
            for i in 0..n {
                match how {
                    1 => drop(std::fs::metadata(&path)),
                    2 => {
                        #[cfg(target_os = "linux")]
                        let _ = rustix::fs::statx(
                            rustix::fs::CWD,
                            &path,
                            rustix::fs::AtFlags::empty(),
                            rustix::fs::StatxFlags::INO,
                        );
                    }
                    _ => {}
                }
                let t = Instant::now();
                f.write_at(&page, (i as u64 % 200) * 4096)
                    .map_err(|e| e.to_string())?;
                f.sync_all().map_err(|e| e.to_string())?;
                spent += t.elapsed();
            }
            times.push(spent.as_secs_f64() * 1e6 / n as f64);
        }
    }
    Ok(rounds.map(median))
}

/// `bench-one log-growth`: what a commit pays while SQLite's write-ahead log grows, against the
/// same commit inside a log that already has the room (docs/storage.md, "The log's room").
/// One row a transaction, `n` commits on a fresh database each way, with the store's settings
/// (WAL, `synchronous=FULL`, exclusive locking): (0) plain SQLite, whose log grows with each
/// commit until its first checkpoint (about a thousand frames after each open); (1) plain
/// SQLite whose log SQLite itself grew and started again first (one transaction of 1,200
/// pages, then a checkpoint), so that the commits write inside the file; (2) `SqliteStore`,
/// which gives its log the room at open. Five rounds, the three ways alternating; the median
/// commit of each way over the rounds' medians, µs.
fn log_growth(dir: &Path, n: usize) -> Result<[f64; 3], String> {
    let e = |e: rusqlite::Error| e.to_string();
    let mut rounds: [Vec<f64>; 3] = Default::default();
    for _ in 0..5 {
        for (how, times) in rounds.iter_mut().enumerate() {
            let _ = std::fs::remove_dir_all(dir);
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            let mut each = Vec::with_capacity(n);
            let (before, after);
            if how == 2 {
                let mut store = SqliteStore::open(dir).map_err(|e| e.to_string())?;
                let wal = dir.join(format!("{}-wal", bgsync_store_sqlite::DB_FILE));
                before = file_len(&wal);
                let o = origin(0);
                for i in 0..n {
                    let op = put(o.clone(), 1, format!("grow-{i}"), i as u64 + 1, wall_now());
                    let t = Instant::now();
                    store.commit(&[op]).map_err(|e| e.to_string())?;
                    each.push(t.elapsed().as_secs_f64() * 1e6);
                }
                after = file_len(&wal);
            } else {
                let mut conn = rusqlite::Connection::open(dir.join("plain.sqlite")).map_err(e)?;
                let _: String = conn
                    .query_row("PRAGMA locking_mode = EXCLUSIVE", [], |r| r.get(0))
                    .map_err(e)?;
                let _: String = conn
                    .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                    .map_err(e)?;
                conn.pragma_update(None, "synchronous", "FULL").map_err(e)?;
                conn.execute_batch(
                    "CREATE TABLE r (tag BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID",
                )
                .map_err(e)?;
                if how == 1 {
                    conn.execute_batch(
                        "INSERT INTO r VALUES (x'00', zeroblob(1200 * 4096));
                         DELETE FROM r;
                         PRAGMA wal_checkpoint(RESTART);",
                    )
                    .map_err(e)?;
                }
                let wal = dir.join("plain.sqlite-wal");
                before = file_len(&wal);
                for i in 0..n {
                    let t = Instant::now();
                    let tx = conn.transaction().map_err(e)?;
                    tx.execute(
                        "INSERT INTO r VALUES (?1, ?2)",
                        rusqlite::params![format!("grow-{i}").into_bytes(), [7u8; 40].as_slice()],
                    )
                    .map_err(e)?;
                    tx.commit().map_err(e)?;
                    each.push(t.elapsed().as_secs_f64() * 1e6);
                }
                // Before the connection closes (a plain close checkpoints and deletes the log).
                after = file_len(&wal);
            }
            // The premise of each way, checked: only the first grows its log.
            if (how == 0) != (after > before) {
                return Err(format!(
                    "log-growth, way {how}: the log went from {before} to {after} bytes over {n} commits"
                ));
            }
            times.push(median(each));
        }
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(rounds.map(median))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// What a lone caller's register pays for its two thread hand-offs (caller → Background Sync
/// thread → caller) beyond the commit, with no engine and no disk: a round trip over two
/// crossbeam channels to a thread that echoes, `n` times. Alternately with no pause between
/// round trips (both threads stay awake) and after a 100 µs sleep (both threads go idle
/// first, as they do while a commit syncs). Medians, ns.
fn handoff(n: usize) -> (u64, u64) {
    let (to, from_caller) = crossbeam_channel::bounded::<usize>(1);
    let (back, from_echo) = crossbeam_channel::bounded::<usize>(1);
    let echo = std::thread::spawn(move || {
        for v in from_caller {
            if back.send(v).is_err() {
                break;
            }
        }
    });
    let mut awake = Vec::with_capacity(n);
    let mut idle = Vec::with_capacity(n);
    for i in 0..2 * n {
        let after_idle = i % 2 == 1;
        if after_idle {
            std::thread::sleep(Duration::from_micros(100));
        }
        let t = Instant::now();
        if to.send(i).is_err() || from_echo.recv().is_err() {
            break;
        }
        let spent = t.elapsed().as_nanos() as u64;
        if after_idle {
            idle.push(spent);
        } else {
            awake.push(spent);
        }
    }
    drop(to);
    let _ = echo.join();
    let median = |mut v: Vec<u64>| {
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    };
    (median(awake), median(idle))
}

/// Benchmark 2: durable register latency, one caller.
fn register_latency(dir: &Path, n: usize) -> Result<(Duration, Duration), String> {
    let sync = durable_engine(dir)?;
    let o = origin(0);
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        sync.register_with_reply(&o, SwRegistrationId(1), format!("lat-{i}"))
            .recv()
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        lat.push(t.elapsed());
    }
    sync.shutdown();
    lat.sort();
    Ok((lat[n / 2], lat[(n * 99 / 100).min(n - 1)]))
}

/// What the store did during a throughput run: how many commits, of how many rows, and the
/// time spent inside them (the rest of the run is the engine between commits).
#[derive(Default)]
struct CommitStats {
    commits: AtomicU64,
    rows: AtomicU64,
    busy_ns: AtomicU64,
}

/// The per-commit figures of one run.
#[derive(Clone, Copy, Default)]
struct PerCommit {
    rows: f64,
    commit_us: f64,
    between_us: f64,
    /// The CPU the Background Sync thread was seen on most during the run, and the share of
    /// the samples it was seen there (docs/performance.md, "Why the same commit is slower").
    engine_cpu: Option<(usize, f64)>,
    /// The Background Sync thread's CPU time per registration over the run, in ns, and the
    /// callers' thread's (async callers only: one thread calls).
    cpu_ns: Option<(f64, f64)>,
    /// How many times a commit the Background Sync thread and the callers' thread (or
    /// threads, summed) went to sleep.
    sleeps: Option<(f64, f64)>,
    /// How many times a commit another thread took the Background Sync thread's CPU.
    preempted: Option<f64>,
}

impl CommitStats {
    fn per_commit(&self, wall: Duration) -> PerCommit {
        let n = self.commits.load(Ordering::Relaxed).max(1) as f64;
        let busy = self.busy_ns.load(Ordering::Relaxed) as f64 / 1e3;
        PerCommit {
            rows: self.rows.load(Ordering::Relaxed) as f64 / n,
            commit_us: busy / n,
            between_us: (wall.as_secs_f64() * 1e6 - busy).max(0.0) / n,
            engine_cpu: None,
            cpu_ns: None,
            sleeps: None,
            preempted: None,
        }
    }
}

/// A store (SQLite, or in memory for `bench-one tasks-memory`), counting its commits.
struct Counted<S> {
    inner: S,
    stats: Arc<CommitStats>,
}

impl<S: RegistrationStore> RegistrationStore for Counted<S> {
    fn load_all(&mut self) -> Result<Vec<StoredRegistration>, bgsync::StoreError> {
        self.inner.load_all()
    }
    fn commit(&mut self, batch: &[StoreOp]) -> Result<(), bgsync::StoreError> {
        let t = Instant::now();
        let r = self.inner.commit(batch);
        self.stats
            .busy_ns
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        self.stats
            .rows
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        r
    }
    fn load_service_worker_ids(
        &mut self,
    ) -> Result<Vec<bgsync_store::ServiceWorkerIdRecord>, bgsync::StoreError> {
        self.inner.load_service_worker_ids()
    }
    fn verify(&mut self) -> Result<Option<bgsync::Recovery>, bgsync::StoreError> {
        self.inner.verify()
    }
    fn take_recovery(&mut self) -> Option<bgsync::Recovery> {
        self.inner.take_recovery()
    }
}

/// The benchmarks' engine over `store`, counting its commits.
fn counted_engine(
    store: impl RegistrationStore + 'static,
) -> Result<(BackgroundSync, Arc<CommitStats>), String> {
    let stats = Arc::new(CommitStats::default());
    let sync = bench_engine()
        .store(Box::new(Counted {
            inner: store,
            stats: stats.clone(),
        }))
        .start()
        .map_err(|e| e.to_string())?;
    Ok((sync, stats))
}

/// Benchmark 3: durable register throughput, 64 concurrent callers, each an OS thread that
/// waits for its answer in `register_blocking` (parked), or, with `channel`, on the crossbeam
/// receiver `register_with_reply` returns (which spins and yields before it sleeps).
fn register_throughput(
    dir: &Path,
    per_caller: usize,
    channel: bool,
) -> Result<(f64, PerCommit), String> {
    let (sync, stats) = counted_engine(SqliteStore::open(dir).map_err(|e| e.to_string())?)?;
    let engine = placement::engine_thread();
    let engine_ran = engine.and_then(placement::run_ns);
    let engine_switched = engine.and_then(placement::switches);
    // The callers' CPU time and sleeps, summed over their threads (None once one cannot tell).
    let callers_ran = std::sync::Mutex::new(Some(0u64));
    let callers_slept = std::sync::Mutex::new(Some(0u64));
    let t = Instant::now();
    std::thread::scope(|s| {
        for c in 0..64 {
            let sync = sync.clone();
            let (callers_ran, callers_slept) = (&callers_ran, &callers_slept);
            s.spawn(move || {
                let ran = placement::run_ns(0);
                let switched = placement::switches(0);
                let o = origin(0);
                for i in 0..per_caller {
                    if channel {
                        let _ = sync
                            .register_with_reply(&o, SwRegistrationId(1), caller_tag(c, i))
                            .recv();
                    } else {
                        let _ = sync.register_blocking(&o, SwRegistrationId(1), caller_tag(c, i));
                    }
                }
                for (sum, mine) in [
                    (callers_ran, placement::run_ns_since(0, ran)),
                    (
                        callers_slept,
                        placement::switches_since(0, switched).map(|[slept, _]| slept),
                    ),
                ] {
                    let mut sum = sum.lock().unwrap_or_else(|e| e.into_inner());
                    *sum = sum.zip(mine).map(|(a, b)| a + b);
                }
            });
        }
    });
    let wall = t.elapsed();
    let engine_ran = engine.and_then(|tid| placement::run_ns_since(tid, engine_ran));
    let engine_switched = engine.and_then(|tid| placement::switches_since(tid, engine_switched));
    let callers_ran = callers_ran.into_inner().unwrap_or_else(|e| e.into_inner());
    let callers_slept = callers_slept
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    let (sleeps, preempted) = switches_per_commit(
        engine_switched,
        callers_slept,
        stats.commits.load(Ordering::Relaxed),
    );
    let n = 64 * per_caller;
    let rate = n as f64 / wall.as_secs_f64();
    sync.shutdown();
    Ok((
        rate,
        PerCommit {
            cpu_ns: per_registration(engine_ran, callers_ran, n),
            sleeps,
            preempted,
            ..stats.per_commit(wall)
        },
    ))
}

/// Benchmark 3, async variant: 64 concurrent callers as tasks on one current-thread runtime (how
/// an engine's event loop would call), each awaiting its answer before its next call.
/// Where the Background Sync thread ran is read every 10 ms meanwhile.
fn register_throughput_async(dir: &Path, per_caller: usize) -> Result<(f64, PerCommit), String> {
    let (sync, stats) = counted_engine(SqliteStore::open(dir).map_err(|e| e.to_string())?)?;
    let engine_where = placement::EngineWhere::start();
    let (rate, per_commit) = tasks_on(sync, stats, per_caller)?;
    Ok((
        rate,
        PerCommit {
            engine_cpu: engine_where.and_then(placement::EngineWhere::finish),
            ..per_commit
        },
    ))
}

/// 64 tasks on one current-thread runtime registering `per_caller` tags each on `sync`.
fn tasks_on(
    sync: BackgroundSync,
    stats: Arc<CommitStats>,
    per_caller: usize,
) -> Result<(f64, PerCommit), String> {
    let engine = placement::engine_thread();
    let engine_ran = engine.and_then(placement::run_ns);
    let engine_switched = engine.and_then(placement::switches);
    let callers = run_async_callers(|c| {
        let sync = sync.clone();
        async move {
            let o = origin(0);
            for i in 0..per_caller {
                let _ = sync
                    .register(&o, SwRegistrationId(1), caller_tag(c, i))
                    .await;
            }
        }
    })?;
    let wall = callers.wall;
    let engine_ran = engine.and_then(|tid| placement::run_ns_since(tid, engine_ran));
    let engine_switched = engine.and_then(|tid| placement::switches_since(tid, engine_switched));
    let (sleeps, preempted) = switches_per_commit(
        engine_switched,
        callers.sleeps,
        stats.commits.load(Ordering::Relaxed),
    );
    let n = 64 * per_caller;
    sync.shutdown();
    Ok((
        n as f64 / wall.as_secs_f64(),
        PerCommit {
            cpu_ns: per_registration(engine_ran, callers.ran_ns, n),
            sleeps,
            preempted,
            ..stats.per_commit(wall)
        },
    ))
}

/// What the callers' thread of [`run_async_callers`] used over the run.
pub(super) struct CallersRan {
    pub(super) wall: Duration,
    /// Its CPU time, in ns (where the system gives it).
    pub(super) ran_ns: Option<u64>,
    /// How many times it went to sleep (where the system gives it).
    pub(super) sleeps: Option<u64>,
}

/// Benchmark 3's 64 async callers: `caller(c)` for each `c` in 0..64, as tasks on one
/// current-thread runtime on this thread, run until all end. Returns the wall time, and this
/// thread's CPU time and sleeps over it.
fn run_async_callers<F, Fut>(caller: F) -> Result<CallersRan, String>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())?;
    let ran = placement::run_ns(0);
    let switched = placement::switches(0);
    let t = Instant::now();
    rt.block_on(async {
        let local = tokio::task::LocalSet::new();
        let tasks: Vec<_> = (0..64).map(|c| local.spawn_local(caller(c))).collect();
        // What `caller` holds (a channel's sender) goes before the tasks end, not after.
        drop(caller);
        local
            .run_until(async {
                for t in tasks {
                    let _ = t.await;
                }
            })
            .await;
    });
    Ok(CallersRan {
        wall: t.elapsed(),
        ran_ns: placement::run_ns_since(0, ran),
        sleeps: placement::switches_since(0, switched).map(|[slept, _]| slept),
    })
}

/// Two threads' CPU times over a run of `n` registrations, per registration.
fn per_registration(a: Option<u64>, b: Option<u64>, n: usize) -> Option<(f64, f64)> {
    let (a, b) = a.zip(b)?;
    Some((a as f64 / n as f64, b as f64 / n as f64))
}

/// Over a run of `commits` commits, per commit: the serving thread's sleeps and the callers',
/// and the serving thread's preemptions.
fn switches_per_commit(
    serving: Option<[u64; 2]>,
    callers_slept: Option<u64>,
    commits: u64,
) -> (Option<(f64, f64)>, Option<f64>) {
    let n = commits.max(1) as f64;
    (
        serving
            .zip(callers_slept)
            .map(|([slept, _], callers)| (slept as f64 / n, callers as f64 / n)),
        serving.map(|[_, preempted]| preempted as f64 / n),
    )
}

/// How many times a commit the serving thread slept and was preempted and the callers' slept,
/// for the `bench-one` commands that print it.
fn switches_line(
    sleeps: Option<(f64, f64)>,
    preempted: Option<f64>,
    serving: &str,
    callers: &str,
) -> String {
    match (sleeps, preempted) {
        (Some((server, slept)), Some(preempted)) => format!(
            "; a commit: {serving} slept {server:.2} times and was preempted {preempted:.2}, {callers} slept {slept:.2}"
        ),
        _ => String::new(),
    }
}

/// The two threads' CPU time per registration, for the `bench-one` commands that print it:
/// the thread that serves the calls (`serving`, e.g. the Background Sync thread), and the
/// callers'.
fn cpu_line(cpu_ns: Option<(f64, f64)>, serving: &str) -> String {
    cpu_ns.map_or_else(String::new, |(server, callers)| {
        format!("; CPU a register: {server:.0} ns on {serving}, {callers:.0} ns on the callers'")
    })
}

/// A round of the async callers: its ratio to its limit, and the CPU the Background Sync thread
/// was seen on most, with the share of the samples it was seen there.
type TasksRound = (f64, Option<(usize, f64)>);

/// Benchmark 3's figures: the median of each over the rounds.
struct Throughput {
    limit: f64,
    threads: f64,
    tasks: f64,
    /// The median over the rounds of each round's ratio to that round's limit.
    threads_ratio: f64,
    /// 64 threads waiting on `register_with_reply`'s crossbeam receiver.
    channel: f64,
    channel_ratio: f64,
    tasks_ratio: f64,
    /// The same 64 tasks through a server with no engine in it ([`floor`]).
    floor: f64,
    floor_ratio: f64,
    /// The median over the rounds of each round's tasks against its floor.
    tasks_to_floor: f64,
    /// Per commit, in the median round by rate.
    threads_commits: PerCommit,
    tasks_commits: PerCommit,
    tasks_rounds: Vec<TasksRound>,
}

/// Benchmark 3 in `rounds` rounds, each measuring SQLite's limit, then 64 threads, then 64
/// tasks, then the tasks' floor ([`floor`]), then the channel's threads, each in a fresh
/// directory: a ratio compares measurements taken a second apart, and the median of the
/// rounds' ratios is reported, so a burst of noise on the shared disk moves one round, not the
/// figure.
fn throughput_rounds(dir: &Path, per_caller: usize, rounds: usize) -> Result<Throughput, String> {
    let (mut limit, mut threads, mut tasks, mut channel, mut floor) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in 0..rounds {
        let l = sqlite_group_limit(&dir.join(format!("limit-{r}")), per_caller)?;
        let t = register_throughput(&dir.join(format!("threads-{r}")), per_caller, false)?;
        let a = register_throughput_async(&dir.join(format!("tasks-{r}")), per_caller)?;
        let f = floor::floor_run(&dir.join(format!("floor-{r}")), per_caller)?.rate;
        let c = register_throughput(&dir.join(format!("channel-{r}")), per_caller, true)?;
        floor.push(f);
        limit.push(l);
        threads.push(t);
        tasks.push(a);
        channel.push(c);
    }
    let ratio =
        |v: &[(f64, PerCommit)]| median(v.iter().zip(&limit).map(|((x, _), l)| x / l).collect());
    // The per-commit figures of the round whose rate is the median.
    let median_round = |v: &[(f64, PerCommit)]| {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v[v.len() / 2]
    };
    let tasks_rounds = tasks
        .iter()
        .zip(&limit)
        .map(|((x, c), l)| (x / l, c.engine_cpu))
        .collect();
    let (threads_rate, threads_commits) = median_round(&threads);
    let (tasks_rate, tasks_commits) = median_round(&tasks);
    Ok(Throughput {
        threads_ratio: ratio(&threads),
        channel_ratio: ratio(&channel),
        channel: median_round(&channel).0,
        tasks_ratio: ratio(&tasks),
        floor: median(floor.clone()),
        floor_ratio: median(floor.iter().zip(&limit).map(|(f, l)| f / l).collect()),
        tasks_to_floor: median(tasks.iter().zip(&floor).map(|((t, _), f)| t / f).collect()),
        limit: median(limit.clone()),
        threads: threads_rate,
        tasks: tasks_rate,
        threads_commits,
        tasks_commits,
        tasks_rounds,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Benchmark 4: the naive baseline: one SQLite transaction per register, same schema, same durability.
fn naive_baseline(dir: &Path, n: usize) -> Result<f64, String> {
    let conn = rusqlite::Connection::open(dir.join("naive.sqlite")).map_err(|e| e.to_string())?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .map_err(|e| e.to_string())?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| e.to_string())?;
    conn.execute_batch(
        "CREATE TABLE r (sw INTEGER, kind INTEGER, tag BLOB, origin TEXT, attempts INTEGER,
         max_attempts INTEGER, next_fire INTEGER, periodic_interval_ms INTEGER,
         PRIMARY KEY (sw, kind, tag)) WITHOUT ROWID",
    )
    .map_err(|e| e.to_string())?;
    let t = Instant::now();
    for i in 0..n {
        let tx = conn.unchecked_transaction().map_err(|e| e.to_string())?;
        tx.execute(
            "INSERT INTO r VALUES (1, 0, ?1, 'https://o0.example', 0, 3, 0, NULL)",
            [format!("naive-{i}").into_bytes()],
        )
        .map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())?;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// The tag caller `c` of benchmark 3 registers in its call `i`.
fn caller_tag(c: usize, i: usize) -> String {
    format!("c{c}-{i}")
}

/// What SQLite itself sustains for the rows of benchmark 3: 64 inserts per transaction, one
/// thread, the store's schema and durability settings, no engine. Transaction `b` holds the
/// 64 callers' `b`-th registrations, as a group commit of those callers would: the same rows,
/// so the same B-tree pages touched per commit (64 callers' tags spread over the key order; 64
/// consecutive tags of one caller would share a few pages and commit about twice as fast). The
/// ceiling any SQLite-backed group commit of these callers can reach.
fn sqlite_group_limit(dir: &Path, batches: usize) -> Result<f64, String> {
    sqlite_group_limit_timed(dir, batches, None)
}

/// [`sqlite_group_limit`], its commits timed into `phases` if given.
fn sqlite_group_limit_timed(
    dir: &Path,
    batches: usize,
    phases: Option<Arc<bgsync_store_sqlite::CommitPhases>>,
) -> Result<f64, String> {
    let _ = std::fs::remove_dir_all(dir);
    let mut store = SqliteStore::open(dir).map_err(|e| e.to_string())?;
    if let Some(phases) = phases {
        store.time_commits(phases);
    }
    let o = origin(0);
    let t = Instant::now();
    for b in 0..batches {
        let now = wall_now();
        let ops: Vec<StoreOp> = (0..64)
            .map(|c| put(o.clone(), 1, caller_tag(c, b), (b * 64 + c) as u64 + 1, now))
            .collect();
        store.commit(&ops).map_err(|e| e.to_string())?;
    }
    Ok((batches * 64) as f64 / t.elapsed().as_secs_f64())
}

/// A pending one-shot registration's row, as the engine writes it: a sequence number of its
/// own (the engine numbers registrations from 1; 0 means "not numbered" to start-up) and the
/// registration's time as its `next_fire`. Both matter to a limit: SQLite stores 0 in no
/// bytes, while a sequence number and a time in milliseconds take 3 and 6, about a fifth of
/// the row.
fn put(origin: Origin, sw: u64, tag: String, seq: u64, next_fire: Timestamp) -> StoreOp {
    StoreOp::Put(StoredRegistration {
        origin,
        partition: Default::default(),
        seq,
        sw: SwRegistrationId(sw),
        tag: Tag::from(tag),
        kind: SyncKind::OneShot,
        attempts: 0,
        max_attempts: 3,
        next_fire,
        periodic_interval: None,
    })
}

/// The time a registration made now records: the benchmarks' engines run on the
/// [`bgsync::SystemClock`] (the builder's default).
fn wall_now() -> Timestamp {
    bgsync::Clock::now(&bgsync::SystemClock)
}

/// Bytes on disk per registration with tags of `tag_bytes` bytes: `n` registrations committed
/// 1,000 at a time into a fresh data directory, the store closed (SQLite checkpoints its log
/// into the database), every file of the directory counted.
fn storage_cost(dir: &Path, tag_bytes: usize, n: usize) -> Result<f64, String> {
    let _ = std::fs::remove_dir_all(dir);
    {
        let mut store = SqliteStore::open(dir).map_err(|e| e.to_string())?;
        let mut ops = Vec::with_capacity(1_000);
        let now = wall_now();
        for i in 0..n {
            ops.push(put(
                origin(0),
                1,
                format!("{i:0tag_bytes$}"),
                i as u64 + 1,
                now,
            ));
            if ops.len() == 1_000 {
                store.commit(&ops).map_err(|e| e.to_string())?;
                ops.clear();
            }
        }
        store.commit(&ops).map_err(|e| e.to_string())?;
    }
    let mut bytes = 0u64;
    for e in std::fs::read_dir(dir).map_err(|e| e.to_string())?.flatten() {
        bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(bytes as f64 / n as f64)
}

/// Runs every effect at once, acknowledging writes in memory; counts dispatches.
fn drain(core: &mut Scheduler, store: &mut MemoryStore, now: Timestamp) {
    drop(core.take_log());
    while let Some(e) = core.poll_effect() {
        if let Effect::Persist { id, ops } = e {
            let r = store.commit(&ops).map_err(|e| e.to_string());
            core.persist_completed(now, id, r);
        }
    }
}

fn register_core(
    core: &mut Scheduler,
    store: &mut MemoryStore,
    req: u64,
    sw: u64,
    o: &Origin,
    tag: Tag,
) {
    core.register(
        Timestamp(0),
        RequestId(req),
        RegisterCall {
            caller: o.clone().into(),
            sw: SwRegistrationId(sw),
            tag,
            context: RegisterContext::ready(o.clone()),
        },
    );
    drain(core, store, Timestamp(0));
}

/// Benchmark 5: register and getTags with n registrations in one service worker registration
/// (core, in-memory store). Returns (ns per register, ns per getTags, ns per tag returned).
fn per_op(n: usize, samples: usize) -> (f64, f64, f64) {
    let params = Parameters {
        max_registrations_per_origin: None,
        ..Parameters::default()
    };
    let mut core = Scheduler::new(params);
    core.set_online(Timestamp(0), false);
    let mut store = MemoryStore::new();
    let o = origin(0);
    for i in 0..n {
        register_core(
            &mut core,
            &mut store,
            i as u64,
            1,
            &o,
            Tag::from(format!("base-{i:07}")),
        );
    }
    let t = Instant::now();
    for i in 0..samples {
        register_core(
            &mut core,
            &mut store,
            (n + i) as u64,
            1,
            &o,
            Tag::from(format!("new-{i:07}")),
        );
    }
    let reg = t.elapsed().as_nanos() as f64 / samples as f64;
    let reps = (samples / 10).max(3);
    let t = Instant::now();
    let key = bgsync_types::StorageKey::new(o.clone());
    for i in 0..reps {
        core.get_tags(
            Timestamp(0),
            RequestId(u64::MAX - i as u64),
            &key,
            SwRegistrationId(1),
            Some(&key),
        );
        while core.poll_effect().is_some() {}
    }
    let tags = t.elapsed().as_nanos() as f64 / reps as f64;
    (reg, tags, tags / (n + samples) as f64)
}

/// Benchmark 6, online fan-out: `n` pending registrations over n/10 origins, offline → online,
/// a host that settles at once. Returns ns per registration (core + dispatcher, in-memory store).
fn fanout(n: usize) -> f64 {
    fanout_of(n, false)
}

/// Benchmark 6 for periodic registrations: `n` of them over `n / 10` origins, registered at 0
/// with `minInterval` 0, all due at 12 h; from the clock reaching 12 h (each origin's round,
/// coalesced) to every completion written.
fn periodic_fanout(n: usize) -> f64 {
    fanout_of(n, true)
}

fn fanout_of(n: usize, periodic: bool) -> f64 {
    let params = Parameters {
        max_registrations_per_origin: None,
        ..Parameters::default()
    };
    let mut core = Scheduler::new(params);
    core.set_online(Timestamp(0), periodic);
    let mut store = MemoryStore::new();
    let origins: Vec<Origin> = (0..(n / 10).max(1)).map(origin).collect();
    for i in 0..n {
        let o = &origins[i % origins.len()];
        let sw = (i % origins.len()) as u64 + 1;
        let tag = Tag::from(format!("t{i}"));
        if periodic {
            core.periodic_register(
                Timestamp(0),
                RequestId(i as u64),
                bgsync_scheduler::PeriodicRegisterCall {
                    caller: o.clone().into(),
                    sw: SwRegistrationId(sw),
                    tag,
                    min_interval: Duration::ZERO,
                    context: RegisterContext::ready(o.clone()),
                    engagement: bgsync_scheduler::Engagement::High,
                },
            );
            drain(&mut core, &mut store, Timestamp(0));
        } else {
            register_core(&mut core, &mut store, i as u64, sw, o, tag);
        }
    }
    let reported: Arc<Mutex<Vec<(bgsync_types::DispatchId, DispatchOutcome)>>> = Arc::default();
    let sink = reported.clone();
    struct AnyHost(Vec<Origin>);
    impl ServiceWorkerHost for AnyHost {
        fn registration(&self, sw: SwRegistrationId) -> Option<RegistrationInfo> {
            Some(RegistrationInfo {
                origin: self.0[(sw.0 - 1) as usize].clone(),
                partition: Default::default(),
                has_active_worker: true,
            })
        }
        fn fire_sync_event(&self, _e: SyncEventDispatch, reply: OutcomeReporter) {
            reply.report(DispatchOutcome::Fulfilled);
        }
    }
    let mut dispatcher = Dispatcher::new(
        Arc::new(AnyHost(origins.clone())),
        Arc::new(move |id, o| sink.lock().unwrap_or_else(|e| e.into_inner()).push((id, o))),
    );
    let t = Instant::now();
    fanout_run(&mut core, &mut dispatcher, &reported, periodic);
    let per = t.elapsed().as_nanos() as f64 / n as f64;
    if periodic {
        // Every registration fired once (and stays registered).
        assert_eq!(
            dispatcher.in_flight(),
            0,
            "periodic fan-out left events in flight"
        );
    } else {
        assert!(core.is_empty(), "fan-out left registrations behind");
    }
    per
}

/// The measured part of benchmark 6 (a function of its own, so a profiler can select it:
/// `valgrind --tool=callgrind --toggle-collect='*fanout_run*' target/release/xtask bench-one fanout N`).
#[inline(never)]
fn fanout_run(
    core: &mut Scheduler,
    dispatcher: &mut Dispatcher,
    reported: &Mutex<Vec<(bgsync_types::DispatchId, DispatchOutcome)>>,
    periodic: bool,
) {
    let (mut log, mut outcomes) = (Vec::new(), Vec::new());
    let now = if periodic {
        // Every periodic registration is due 12 h after registration.
        let now = Timestamp(12 * 60 * 60 * 1000);
        core.handle_timeout(now);
        now
    } else {
        let now = Timestamp(1);
        core.set_online(now, true);
        now
    };
    // The outcomes reported so far, each settled; true if there were any. The facade's driver
    // also takes the log whenever it takes outcomes; so does this loop.
    let mut settle = |core: &mut Scheduler, dispatcher: &mut Dispatcher| {
        core.append_log_to(&mut log);
        log.clear();
        std::mem::swap(
            &mut *reported.lock().unwrap_or_else(|e| e.into_inner()),
            &mut outcomes,
        );
        let any = !outcomes.is_empty();
        for (id, o) in outcomes.drain(..) {
            if let Some(o) = dispatcher.outcome_reported(id, o) {
                core.dispatch_completed(now, id, o);
            }
        }
        any
    };
    loop {
        let mut progressed = false;
        let mut sent = 0;
        while let Some(e) = core.poll_effect() {
            progressed = true;
            match e {
                // Writes are acknowledged without being stored: this measures the core and the
                // dispatcher, not a store (the durable store's cost is rows 2-4).
                Effect::Persist { id, .. } => core.persist_completed(now, id, Ok(())),
                Effect::Dispatch(d) => {
                    if let Some((id, o)) = dispatcher.dispatch(now, d) {
                        core.dispatch_completed(now, id, o);
                    }
                    // As the driver does: the outcomes that arrived, every DISPATCH_ROUND events.
                    sent += 1;
                    if sent % bgsync::DISPATCH_ROUND == 0 {
                        settle(core, dispatcher);
                    }
                }
                _ => {}
            }
        }
        progressed |= settle(core, dispatcher);
        if !progressed {
            break;
        }
    }
}

/// Peak resident memory of this process, in bytes (also the flood drill's measure).
pub(crate) fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The child of the cold-start measurement: opens the engine on `dir` and prints
/// `millis peak_rss_bytes` once it is ready to fire.
pub fn cold_child(dir: &Path) -> Result<(), String> {
    let t = Instant::now();
    let sync = BackgroundSync::builder(Arc::new(Host), Arc::new(Windows))
        .data_dir(dir)
        .network(Arc::new(bgsync::testing::FixedNetwork(false)))
        .params(Parameters {
            max_registrations_per_origin: None,
            max_bytes_per_origin: None,
            max_bytes_total: None,
            ..Parameters::default()
        })
        .start()
        .map_err(|e| e.to_string())?;
    let status = sync.status_blocking().map_err(|e| e.to_string())?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    println!("{ms:.1} {} {}", peak_rss(), status.registrations);
    sync.shutdown();
    Ok(())
}

/// Benchmark 7: cold start with `n` stored registrations: (seconds, bytes of peak RSS per registration).
fn cold_start(dir: &Path, n: usize) -> Result<(f64, f64), String> {
    let full = dir.join("cold");
    let empty = dir.join("cold-empty");
    write_cold_store(&full, n)?;
    let run = |d: &Path| -> Result<(f64, u64, usize), String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let out = Command::new(exe)
            .arg("bench-cold-child")
            .arg(d)
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut w = text.split_whitespace();
        let ms = w.next().and_then(|v| v.parse().ok()).ok_or(format!(
            "cold child: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        ))?;
        let rss = w
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or("cold child: no rss")?;
        let regs = w
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or("cold child: no count")?;
        Ok((ms, rss, regs))
    };
    // Three starts of each, alternating, and the medians: one start is one sample of a
    // noisy machine, where the other rows are medians of rounds too.
    let mut times = Vec::with_capacity(COLD_STARTS);
    let mut bytes = Vec::with_capacity(COLD_STARTS);
    for _ in 0..COLD_STARTS {
        let (_, base_rss, _) = run(&empty)?;
        let (ms, rss, regs) = run(&full)?;
        if regs != n {
            return Err(format!(
                "cold start loaded {regs} registrations, expected {n}"
            ));
        }
        times.push(ms / 1000.0);
        bytes.push(rss.saturating_sub(base_rss) as f64 / n as f64);
    }
    Ok((median(times), median(bytes)))
}

/// The cold start's store: `n` registrations over 10,000 service worker registrations of
/// 10,000 origins, committed 10,000 at a time into the data directory `dir`, the store closed.
fn write_cold_store(dir: &Path, n: usize) -> Result<(), String> {
    let mut store = SqliteStore::open(dir).map_err(|e| e.to_string())?;
    let mut ops = Vec::with_capacity(10_000);
    let now = wall_now();
    for i in 0..n {
        ops.push(put(
            origin(i % 10_000),
            (i % 10_000) as u64 + 1,
            format!("tag-{i}"),
            i as u64 + 1,
            now,
        ));
        if ops.len() == 10_000 {
            store.commit(&ops).map_err(|e| e.to_string())?;
            ops.clear();
        }
    }
    store.commit(&ops).map_err(|e| e.to_string())
}

/// The cold start's row layouts side by side (docs/performance.md, § 8): how long SQLite and
/// rusqlite take to hand over every column of the cold start's `n` rows as the store writes
/// them (schema 7: six columns, the six integers outside the key in one `fields` blob,
/// unpacked with the store's own `unpack_fields`) against the same rows copied into schema 6's
/// layout (each integer a column of its own: 11 columns, read with `Row::get` as schema 6 was
/// read). Nothing is decoded or checked beyond that: the difference is what the packing saves
/// the loading thread. Returns the medians of five alternating full reads, in seconds: (the
/// 11 columns, the store's 6).
fn read_columns(dir: &Path, n: usize) -> Result<(f64, f64), String> {
    let e = |e: rusqlite::Error| e.to_string();
    write_cold_store(dir, n)?;
    let mut conn = rusqlite::Connection::open(dir.join(bgsync_store_sqlite::DB_FILE)).map_err(e)?;
    wide_copy(&mut conn)?;
    let read_wide = |conn: &rusqlite::Connection| -> rusqlite::Result<i64> {
        let mut stmt = conn.prepare(
            "SELECT sw, kind, tag, origin, attempts, max_attempts, next_fire, \
             periodic_interval_ms, checksum, partition, seq FROM wide",
        )?;
        let mut rows = stmt.query([])?;
        let mut sum = 0i64;
        while let Some(r) = rows.next()? {
            let tag = r.get_ref(2)?.as_blob()?.len() as i64;
            let origin = r.get_ref(3)?.as_str()?.len() as i64;
            let partition = r.get_ref(9)?.as_str()?.len() as i64;
            let interval: Option<i64> = r.get(7)?;
            sum = sum
                .wrapping_add(r.get::<_, i64>(0)?)
                .wrapping_add(r.get::<_, i64>(1)?)
                .wrapping_add(tag + origin + partition)
                .wrapping_add(r.get::<_, i64>(4)?)
                .wrapping_add(r.get::<_, i64>(5)?)
                .wrapping_add(r.get::<_, i64>(6)?)
                .wrapping_add(interval.unwrap_or(-1))
                .wrapping_add(r.get::<_, i64>(8)?)
                .wrapping_add(r.get::<_, i64>(10)?);
        }
        Ok(sum)
    };
    let read_packed = |conn: &rusqlite::Connection| -> Result<i64, String> {
        let mut stmt = conn
            .prepare("SELECT sw, kind, tag, origin, partition, fields FROM registrations")
            .map_err(e)?;
        let mut rows = stmt.query([]).map_err(e)?;
        let mut sum = 0i64;
        let cell = |err: rusqlite::types::FromSqlError| err.to_string();
        while let Some(r) = rows.next().map_err(e)? {
            let tag = r.get_ref(2).map_err(e)?.as_blob().map_err(cell)?.len() as i64;
            let origin = r.get_ref(3).map_err(e)?.as_str().map_err(cell)?.len() as i64;
            let partition = r.get_ref(4).map_err(e)?.as_str().map_err(cell)?.len() as i64;
            let f = bgsync_store_sqlite::unpack_fields(
                r.get_ref(5).map_err(e)?.as_blob().map_err(cell)?,
            )?;
            sum = sum
                .wrapping_add(r.get::<_, i64>(0).map_err(e)?)
                .wrapping_add(r.get::<_, i64>(1).map_err(e)?)
                .wrapping_add(tag + origin + partition)
                .wrapping_add(f.attempts)
                .wrapping_add(f.max_attempts)
                .wrapping_add(f.next_fire)
                .wrapping_add(f.periodic_interval_ms.unwrap_or(-1))
                .wrapping_add(f.checksum)
                .wrapping_add(f.seq);
        }
        Ok(sum)
    };
    let (mut wide, mut packed) = (Vec::new(), Vec::new());
    let mut sums = (0, 0);
    for _ in 0..5 {
        let t = Instant::now();
        sums.0 = read_wide(&conn).map_err(e)?;
        wide.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        sums.1 = read_packed(&conn)?;
        packed.push(t.elapsed().as_secs_f64());
    }
    if sums.0 != sums.1 {
        return Err(format!(
            "the two layouts read different values ({} and {})",
            sums.0, sums.1
        ));
    }
    Ok((median(wide), median(packed)))
}

/// Copies the store's `registrations` table (schema 7) into a table `wide` laid out as schema 6
/// kept it, each integer a column of its own, the values (checksums too) unchanged.
fn wide_copy(conn: &mut rusqlite::Connection) -> Result<(), String> {
    let e = |e: rusqlite::Error| e.to_string();
    conn.execute_batch(
        "CREATE TABLE wide (sw INTEGER NOT NULL, kind INTEGER NOT NULL, tag BLOB NOT NULL,
             origin TEXT NOT NULL, attempts INTEGER NOT NULL, max_attempts INTEGER NOT NULL,
             next_fire INTEGER NOT NULL, periodic_interval_ms INTEGER,
             checksum INTEGER NOT NULL, partition TEXT NOT NULL, seq INTEGER NOT NULL,
             PRIMARY KEY (sw, kind, tag)) WITHOUT ROWID;",
    )
    .map_err(e)?;
    let tx = conn.transaction().map_err(e)?;
    {
        let mut read = tx
            .prepare("SELECT sw, kind, tag, origin, partition, fields FROM registrations")
            .map_err(e)?;
        let mut write = tx
            .prepare("INSERT INTO wide VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)")
            .map_err(e)?;
        let mut rows = read.query([]).map_err(e)?;
        while let Some(r) = rows.next().map_err(e)? {
            let f = bgsync_store_sqlite::unpack_fields(
                r.get_ref(5)
                    .map_err(e)?
                    .as_blob()
                    .map_err(|err| err.to_string())?,
            )?;
            write
                .execute(rusqlite::params![
                    r.get::<_, rusqlite::types::Value>(0).map_err(e)?,
                    r.get::<_, rusqlite::types::Value>(1).map_err(e)?,
                    r.get::<_, rusqlite::types::Value>(2).map_err(e)?,
                    r.get::<_, rusqlite::types::Value>(3).map_err(e)?,
                    f.attempts,
                    f.max_attempts,
                    f.next_fire,
                    f.periodic_interval_ms,
                    f.checksum,
                    r.get::<_, rusqlite::types::Value>(4).map_err(e)?,
                    f.seq,
                ])
                .map_err(e)?;
        }
    }
    tx.commit().map_err(e)?;
    Ok(())
}

/// The one-time cost of migration 6 → 7 (docs/storage.md): the cold start's `n` rows written
/// by the store, put back into schema 6's layout (the table rewritten with each integer a column
/// of its own, the version set to 6), then opened by the store, which migrates them. Returns
/// (seconds for the open that migrates, seconds for the open after it), after checking that
/// both opens load the `n` rows and the same ones.
fn migrate_6_to_7(dir: &Path, n: usize) -> Result<(f64, f64), String> {
    let e = |e: rusqlite::Error| e.to_string();
    write_cold_store(dir, n)?;
    // One open: its seconds (the open alone, which reads and decodes every row) and the rows.
    let open = || -> Result<(f64, Vec<StoredRegistration>), String> {
        let t = Instant::now();
        let mut store = SqliteStore::open(dir).map_err(|e| e.to_string())?;
        let s = t.elapsed().as_secs_f64();
        Ok((s, store.load_all().map_err(|e| e.to_string())?))
    };
    let (_, before) = open()?;
    {
        let mut conn =
            rusqlite::Connection::open(dir.join(bgsync_store_sqlite::DB_FILE)).map_err(e)?;
        wide_copy(&mut conn)?;
        conn.execute_batch(
            "DROP TABLE registrations;
             ALTER TABLE wide RENAME TO registrations;
             UPDATE schema_version SET version = 6;",
        )
        .map_err(e)?;
    }
    let (migrating, migrated) = open()?;
    let (after, again) = open()?;
    if before.len() != n || migrated != before || again != before {
        return Err(format!(
            "the rows loaded differ from the {} written: {} loaded by the open that migrated, {} by the next",
            before.len(),
            migrated.len(),
            again.len()
        ));
    }
    Ok((migrating, after))
}

/// How many times the cold start is measured (the row is their median).
const COLD_STARTS: usize = 3;

/// The full check the engine runs after start-up, on the cold-start store: seconds.
fn full_check(dir: &Path) -> Result<f64, String> {
    let mut store = SqliteStore::open(dir).map_err(|e| e.to_string())?;
    let t = Instant::now();
    let recovery = store.verify().map_err(|e| e.to_string())?;
    let s = t.elapsed().as_secs_f64();
    match recovery {
        None => Ok(s),
        Some(r) => Err(format!("the benchmark's own store was found damaged: {r}")),
    }
}

/// One benchmark alone, for a profiler: `xtask bench-one fanout|register N`.
pub fn one(args: &[String]) -> Result<(), String> {
    let n: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(10_000);
    match args.first().map(String::as_str) {
        Some("periodic-fanout") => {
            let runs: Vec<f64> = (0..5).map(|_| periodic_fanout(n)).collect();
            println!(
                "periodic fan-out: {:.1} ns/registration (median of 5)",
                median(runs)
            );
        }
        Some("fanout") => {
            let runs: Vec<f64> = (0..5).map(|_| fanout(n)).collect();
            println!(
                "fan-out: {:.1} ns/registration (median of 5: {})",
                median(runs.clone()),
                runs.iter()
                    .map(|r| format!("{r:.0}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Some("register") => println!("register: {:.1} ns/op", per_op(n, 2_000).0),
        Some("stat-fsync") => {
            let base =
                std::env::temp_dir().join(format!("bgsync-statfsync-{}", std::process::id()));
            std::fs::create_dir_all(&base).map_err(|e| e.to_string())?;
            let r = stat_fsync(&base, n.min(100_000));
            let _ = std::fs::remove_dir_all(&base);
            let [none, stat, ino] = r?;
            println!(
                "4 KB pwrite + fsync: {none:.0} µs alone, {stat:.0} µs after a stat (std::fs::metadata), {ino:.0} µs after a statx of the inode number alone (medians of 5 rounds of {n})"
            );
        }
        Some("log-growth") => {
            let base = std::env::temp_dir().join(format!("bgsync-grow-{}", std::process::id()));
            let [grows, room, store] = log_growth(&base, n.min(900))?;
            std::fs::create_dir_all(&base).map_err(|e| e.to_string())?;
            let (fsync, _) = fsync_limits(&base, 1_000)?;
            let _ = std::fs::remove_dir_all(&base);
            let one = 1e6 / fsync;
            println!(
                "a one-row commit, {} on a fresh database: {grows:.0} µs while SQLite's log grows, {room:.0} µs inside a log SQLite grew first, {store:.0} µs in SqliteStore (its log given the room at open); one fdatasync of a 100-byte append {one:.0} µs (medians of 5 rounds, alternating)",
                n.min(900)
            );
        }
        Some("handoff") => {
            let (awake, idle) = handoff(n);
            println!(
                "round trip to another thread over crossbeam channels: {awake} ns with both awake, {idle} ns after both went idle (medians of {n})"
            );
        }
        Some("latency") => {
            let base = std::env::temp_dir().join(format!("bgsync-lat-{}", std::process::id()));
            std::fs::create_dir_all(&base).map_err(|e| e.to_string())?;
            let (fsync, _) = fsync_limits(&base, 1_000)?;
            let (median, p99) = register_latency(&base.join("e"), n.min(10_000))?;
            let one = 1e6 / fsync;
            println!(
                "register latency: median {:.0} µs = {:.2} × one fdatasync ({one:.0} µs), p99 {:.0} µs",
                median.as_secs_f64() * 1e6,
                median.as_secs_f64() * 1e6 / one,
                p99.as_secs_f64() * 1e6
            );
            let _ = std::fs::remove_dir_all(&base);
        }
        // One side of benchmark 3 alone, for a profiler: the 64 async tasks on the engine, or
        // SQLite's limit for their rows (`valgrind --tool=callgrind --toggle-collect=
        // '*SqliteStore*RegistrationStore*commit*' target/release/xtask bench-one tasks 2560`
        // against `bench-one limit 2560` compares what a commit of each runs).
        // The 64 async tasks on an engine whose store is in memory: the engine's own cost per
        // register, without the disk's (what the async tasks' goal leaves to the engine).
        Some("tasks-memory") => {
            let (sync, stats) = counted_engine(MemoryStore::new())?;
            let (rate, c) = tasks_on(sync, stats, n.div_ceil(64))?;
            println!(
                "64 tasks, store in memory: {rate:.0} registers/s = {:.0} ns a register; {:.1} rows a commit, {:.0} µs between commits{}",
                1e9 / rate,
                c.rows,
                c.between_us,
                cpu_line(c.cpu_ns, "the Background Sync thread")
            );
        }
        // The 64 async tasks on an engine whose store discards its writes: what
        // `instructions` counts.
        Some("tasks-discard") => {
            let (sync, stats) = counted_engine(instructions::Discard)?;
            let (rate, c) = tasks_on(sync, stats, n.div_ceil(64))?;
            println!(
                "64 tasks, store discarding: {rate:.0} registers/s; {:.1} rows a commit{}",
                c.rows,
                cpu_line(c.cpu_ns, "the Background Sync thread")
            );
        }
        // The Background Sync thread's instructions per registration (callgrind).
        Some("instructions") => {
            let base = std::env::temp_dir().join(format!("bgsync-instr-{}", std::process::id()));
            let n = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(6_400);
            let r = instructions::run(&base, n);
            let _ = std::fs::remove_dir_all(&base);
            r?;
        }
        // Benchmark 3's 64 threads alone, with the CPU time a registration of the Background
        // Sync thread and of the callers' threads (summed).
        Some("threads") => {
            let base = std::env::temp_dir().join(format!("bgsync-threads-{}", std::process::id()));
            let r = register_throughput(&base, n.div_ceil(64), false);
            let _ = std::fs::remove_dir_all(&base);
            let (rate, c) = r?;
            println!(
                "64 threads: {rate:.0} registers/s; {:.1} rows a commit, {:.0} µs in the commit, {:.0} µs between commits{}{}",
                c.rows,
                c.commit_us,
                c.between_us,
                cpu_line(c.cpu_ns, "the Background Sync thread"),
                switches_line(c.sleeps, c.preempted, "the Background Sync thread", "the callers' threads (summed)")
            );
        }
        Some(side @ ("tasks" | "limit")) => {
            let base = std::env::temp_dir().join(format!("bgsync-{side}-{}", std::process::id()));
            let per_caller = n.div_ceil(64);
            if side == "tasks" {
                let (rate, c) = register_throughput_async(&base, per_caller)?;
                println!(
                    "64 tasks: {rate:.0} registers/s; {:.1} rows a commit, {:.0} µs in the commit, {:.0} µs between commits{}{}",
                    c.rows,
                    c.commit_us,
                    c.between_us,
                    cpu_line(c.cpu_ns, "the Background Sync thread"),
                    switches_line(c.sleeps, c.preempted, "the Background Sync thread", "the callers' thread")
                );
            } else {
                let rate = sqlite_group_limit(&base, per_caller)?;
                println!("SQLite's limit for the 64 callers' rows: {rate:.0} rows/s");
            }
            let _ = std::fs::remove_dir_all(&base);
        }
        // Benchmark 3's async tasks against the same calls through a server with no engine.
        Some("floor") => {
            let base = std::env::temp_dir().join(format!("bgsync-floor-{}", std::process::id()));
            let rounds = match args.iter().position(|a| a == "--rounds") {
                Some(i) => args
                    .get(i + 1)
                    .and_then(|v| v.parse().ok())
                    .filter(|&r: &usize| r > 0)
                    .ok_or("bench-one floor: --rounds takes a count of at least 1")?,
                None => 5,
            };
            let has = |flag: &str| args.iter().any(|a| a == flag);
            let wait = if has("--spin") {
                floor::Wait::Spin
            } else {
                floor::Wait::Sleep
            };
            let r = floor::run(&base, n, rounds, has("--after-threads"), wait);
            let _ = std::fs::remove_dir_all(&base);
            r?;
        }
        // Where benchmark 3's threads run against the CPU that takes the disk's interrupts, and
        // what a commit costs with the committing thread there, elsewhere, or free.
        Some("placement") => {
            let base = std::env::temp_dir().join(format!("bgsync-place-{}", std::process::id()));
            let r = placement::run(&base, n, 5);
            let _ = std::fs::remove_dir_all(&base);
            r?;
        }
        Some("throughput") => {
            let base = std::env::temp_dir().join(format!("bgsync-tp-{}", std::process::id()));
            let tp = throughput_rounds(&base, n.div_ceil(64), 3)?;
            println!(
                "SQLite's limit {:.0} rows/s; 64 threads {:.0} registers/s = {:.2} ×; 64 tasks {:.0} registers/s = {:.2} × (medians of 3 rounds)",
                tp.limit, tp.threads, tp.threads_ratio, tp.tasks, tp.tasks_ratio
            );
            println!(
                "  64 threads on register_with_reply(..).recv(): {:.0} registers/s = {:.2} ×",
                tp.channel, tp.channel_ratio
            );
            println!(
                "  the tasks' floor, no engine: {:.0} registers/s = {:.2} ×; the tasks {:.2} × their floor",
                tp.floor, tp.floor_ratio, tp.tasks_to_floor
            );
            for (who, c) in [("threads", tp.threads_commits), ("tasks", tp.tasks_commits)] {
                println!(
                    "  {who}: {:.1} rows a commit, {:.0} µs in the commit, {:.0} µs between commits",
                    c.rows, c.commit_us, c.between_us
                );
            }
            let _ = std::fs::remove_dir_all(&base);
        }
        Some("read-columns") => {
            let base = std::env::temp_dir().join(format!("bgsync-cols-{}", std::process::id()));
            let r = read_columns(&base, n);
            let _ = std::fs::remove_dir_all(&base);
            let (wide, packed) = r?;
            println!(
                "a full read of {n} rows, every column: {:.3} s in schema 6's 11 columns, {:.3} s in the store's 6 of schema 7, the 6 integers outside the key in one blob: {:.2} × (medians of 5, alternating)",
                wide,
                packed,
                packed / wide
            );
        }
        Some("migrate") => {
            let base = std::env::temp_dir().join(format!("bgsync-mig-{}", std::process::id()));
            let r = migrate_6_to_7(&base, n);
            let _ = std::fs::remove_dir_all(&base);
            let (migrating, after) = r?;
            println!(
                "migration 6 → 7 of {n} rows: the open that migrates {migrating:.3} s, the next open {after:.3} s (each reads and decodes every row)"
            );
        }
        Some("cold") => {
            let base = std::env::temp_dir().join(format!("bgsync-cold-{}", std::process::id()));
            let (s, b) = cold_start(&base, n)?;
            let dir = base.join("cold");
            let t = Instant::now();
            let mut store = SqliteStore::open(&dir).map_err(|e| e.to_string())?;
            let open = t.elapsed();
            let rows = store.load_all().map_err(|e| e.to_string())?.len();
            println!("cold start: {s:.2} s, {b:.0} B/registration; SqliteStore::open alone (reads and decodes all {rows} rows): {:.2} s", open.as_secs_f64());
            drop(store);
            // `--keep`: the store stays, for `xtask bench-cold-child DIR` (one start, in ms) to
            // start again, by this build and another alternating.
            if args.iter().any(|a| a == "--keep") {
                println!("kept: {}", dir.display());
            } else {
                let _ = std::fs::remove_dir_all(&base);
            }
        }
        _ => {
            return Err(
                "bench-one WHAT [N] [FLAGS], N right after WHAT; WHAT: fanout|periodic-fanout|register|cold|read-columns|migrate|throughput|placement|floor|threads|tasks|tasks-memory|tasks-discard|instructions|limit|latency|log-growth|stat-fsync|handoff; FLAGS: cold --keep; floor --after-threads --spin --rounds R"
                    .into(),
            )
        }
    }
    Ok(())
}

pub fn main(args: &[String]) -> Result<(), String> {
    if let Some(i) = args.iter().position(|a| a == "--peer") {
        return match args.get(i + 1).map(String::as_str) {
            Some("chromium") => crate::peer::main(),
            other => Err(format!(
                "bench --peer: unknown peer {other:?}; the one known is `chromium`"
            )),
        };
    }
    let quick = args.iter().any(|a| a == "--quick");
    let sizes = if quick {
        Sizes {
            fsyncs: 100,
            latency_registers: 100,
            per_caller: 20,
            rounds: 1,
            naive: 200,
            fanout: 10_000,
            cold: 50_000,
        }
    } else {
        Sizes {
            fsyncs: 1_000,
            latency_registers: 1_000,
            per_caller: 200,
            rounds: 5,
            naive: 2_000,
            fanout: 100_000,
            cold: 1_000_000,
        }
    };
    // Benchmarks run where the store would: on the same file system as the data directory.
    let base = std::env::temp_dir().join(format!("bgsync-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base).map_err(|e| e.to_string())?;
    let sub = |name: &str| -> PathBuf { base.join(name) };
    let started = Instant::now();

    eprintln!("bench: fsync limits");
    // The CPU that takes the disk's interrupts: the interrupt line that rises with these syncs.
    let irq_before = placement::interrupts();
    let (fsync_ops, group_records) = fsync_limits(&base, sizes.fsyncs)?;
    let disk_cpu = irq_before.and_then(|before| {
        placement::disk_cpu_between(&before, &placement::interrupts()?, 2 * sizes.fsyncs)
    });
    eprintln!("bench: register latency");
    let (lat_median, p99) = register_latency(&sub("latency"), sizes.latency_registers)?;
    eprintln!("bench: register throughput, 64 callers, against SQLite's limit");
    let tp = throughput_rounds(&sub("throughput"), sizes.per_caller, sizes.rounds)?;
    let (sqlite_limit, throughput, throughput_async) = (tp.limit, tp.threads, tp.tasks);
    eprintln!("bench: naive baseline");
    let naive = naive_baseline(&base, sizes.naive)?;
    eprintln!("bench: per-operation cost against n");
    let samples = if quick { 200 } else { 2_000 };
    let small = per_op(10, samples);
    let mid = per_op(1_000, samples);
    let large = per_op(100_000, samples);
    eprintln!("bench: online fan-out");
    // Each size five times, alternating, and the medians: one run is a tenth of a second, and a
    // neighbour's burst on the shared machine moves a run by half.
    let (mut fans, mut fans_small) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        fans.push(fanout(sizes.fanout));
        fans_small.push(fanout(sizes.fanout / 10));
    }
    let (fan, fan_small) = (median(fans), median(fans_small));
    eprintln!("bench: periodic fan-out");
    let periodic_fan = median((0..3).map(|_| periodic_fanout(sizes.fanout)).collect());
    eprintln!("bench: storage cost per registration");
    let disk_small = storage_cost(&sub("storage-10"), 10, sizes.fanout / 10)?;
    let disk_large = storage_cost(&sub("storage-10240"), 10_240, sizes.fanout / 100)?;
    eprintln!("bench: cold start");
    let (cold_s, cold_bytes) = cold_start(&base, sizes.cold)?;
    eprintln!("bench: full check of the store");
    let check_s = full_check(&base.join("cold"))?;
    let _ = std::fs::remove_dir_all(&base);

    let one_fsync_us = 1e6 / fsync_ops;
    let mut rows = vec![
        Row { name: "fsync limit (100 B + fdatasync)", value: fsync_ops, unit: "ops/s", ratio: None, goal: None, met: None, includes: "write(2) + fdatasync(2) per record, in the data directory's file system" },
        Row { name: "group-commit limit (64 per fdatasync)", value: group_records, unit: "records/s", ratio: None, goal: None, met: None, includes: "64 writes + one fdatasync" },
        Row { name: "register latency, median", value: lat_median.as_secs_f64() * 1e6, unit: "µs", ratio: Some((lat_median.as_secs_f64() * 1e6 / one_fsync_us, "× one fdatasync")), goal: Some("≤ 1.5×"), met: Some(lat_median.as_secs_f64() * 1e6 / one_fsync_us <= 1.5), includes: "register_with_reply → resolved: channel, checks, SQLite transaction with WAL fsync, reply" },
        Row { name: "register latency, p99", value: p99.as_secs_f64() * 1e6, unit: "µs", ratio: Some((p99.as_secs_f64() * 1e6 / one_fsync_us, "× one fdatasync")), goal: None, met: None, includes: "as above" },
        Row { name: "SQLite limit (64 rows per transaction)", value: sqlite_limit, unit: "records/s", ratio: Some((sqlite_limit / group_records, "× group-commit limit")), goal: None, met: None, includes: "SqliteStore::commit of the 64 callers' rows, one transaction per round of calls, one thread: what SQLite itself sustains with our schema and synchronous=FULL" },
        Row { name: "register throughput, 64 callers", value: throughput, unit: "registers/s", ratio: Some((tp.threads_ratio, "× SQLite limit")), goal: Some("≥ 0.5×"), met: Some(tp.threads_ratio >= 0.5), includes: "64 threads, each waiting for its answer (register_blocking: parked) before the next call; medians of the rounds" },
        Row { name: "register throughput, 64 callers on crossbeam receivers", value: tp.channel, unit: "registers/s", ratio: Some((tp.channel_ratio, "× SQLite limit")), goal: None, met: None, includes: "as above, each waiting in register_with_reply(..).recv() (spins and yields before it sleeps)" },
        Row { name: "register throughput, 64 async callers", value: throughput_async, unit: "registers/s", ratio: Some((tp.tasks_ratio, "× SQLite limit")), goal: Some("≥ 0.8×"), met: Some(tp.tasks_ratio >= ASYNC_GOAL), includes: "64 tasks on one current-thread tokio runtime, each awaiting its answer before the next call; medians of the rounds" },
        Row { name: "rows a commit, threads / tasks", value: tp.threads_commits.rows, unit: "rows", ratio: Some((tp.tasks_commits.rows, "rows (tasks)")), goal: None, met: None, includes: "commits counted at the store, median round; 64 means every caller shares every commit" },
        Row { name: "between commits, threads / tasks", value: tp.threads_commits.between_us, unit: "µs", ratio: Some((tp.tasks_commits.between_us, "µs (tasks)")), goal: None, met: None, includes: "wall time not spent inside a commit, per commit: the engine answering and taking the callers' next calls" },
        Row { name: "inside a commit, threads / tasks", value: tp.threads_commits.commit_us, unit: "µs", ratio: Some((tp.tasks_commits.commit_us, "µs (tasks)")), goal: None, met: None, includes: "RegistrationStore::commit, per commit" },
        Row { name: "naive: one transaction per register", value: naive, unit: "registers/s", ratio: Some((throughput / naive, "× gain of group commit")), goal: None, met: None, includes: "rusqlite INSERT + COMMIT per register, WAL, synchronous=FULL, one thread" },
        Row { name: "core register, n = 10", value: small.0, unit: "ns/op", ratio: None, goal: None, met: None, includes: "scheduler + in-memory store, one service worker registration" },
        Row { name: "core register, n = 1,000", value: mid.0, unit: "ns/op", ratio: None, goal: None, met: None, includes: "as above" },
        Row { name: "core register, n = 100,000", value: large.0, unit: "ns/op", ratio: Some((large.0 / small.0, "× n = 10")), goal: Some("≤ 1.3×"), met: Some(large.0 / small.0 <= 1.3), includes: "as above" },
        Row { name: "core getTags per tag, n = 10", value: small.2, unit: "ns/tag", ratio: None, goal: None, met: None, includes: "getTags returns all n tags: its cost per call is O(n) by definition" },
        Row { name: "core getTags per tag, n = 100,000", value: large.2, unit: "ns/tag", ratio: Some((large.2 / small.2, "× n = 10")), goal: Some("≤ 1.3×"), met: Some(large.2 / small.2 <= 1.3), includes: "as above (per call at n = 100,000: see JSON)" },
        Row { name: "online fan-out, n / 10", value: fan_small, unit: "ns/registration", ratio: None, goal: None, met: None, includes: "as below, a tenth of the registrations and origins" },
        Row { name: "online fan-out", value: fan, unit: "ns/registration", ratio: Some((fan / fan_small, "× at n / 10")), goal: Some("≤ 1,000 ns, ≤ 1.2×"), met: Some(fan <= 1_000.0 && fan / fan_small <= 1.2), includes: "set_online → dispatch → host settles → completion → removal written (in memory)" },
        Row { name: "periodic fan-out", value: periodic_fan, unit: "ns/registration", ratio: Some((periodic_fan / fan, "× one-shot fan-out")), goal: None, met: None, includes: "n periodic registrations over n / 10 origins all due at 12 h: each origin's round (coalesced) → dispatch → host settles → completion → record rewritten (in memory); medians of 3" },
        Row { name: "storage, 10-byte tags", value: disk_small, unit: "B/registration", ratio: Some((disk_small / 10.0, "× the tag's bytes")), goal: None, met: None, includes: "every file of the data directory after n / 10 registrations, the store closed, over n / 10" },
        Row { name: "storage, 10,240-byte tags", value: disk_large, unit: "B/registration", ratio: Some((disk_large / 10_240.0, "× the tag's bytes")), goal: Some("tag once"), met: Some(disk_large / 10_240.0 < 2.0), includes: "as above, n / 100 registrations: under 2× the tag's bytes means the tag is stored once" },
        Row { name: "cold start", value: cold_s, unit: "s", ratio: None, goal: Some("≤ 1 s"), met: Some(cold_s <= 1.0), includes: "process: open SQLite, read and validate every row, restore into the scheduler, ready to fire; median of 3 starts" },
        Row { name: "store full check (after start-up)", value: check_s, unit: "s", ratio: None, goal: None, met: None, includes: "RegistrationStore::verify: SQLite's integrity_check of every page, table against indexes; run on the store's thread after start-up, before the first commit" },
        Row { name: "cold start memory", value: cold_bytes, unit: "B/registration", ratio: None, goal: Some("≤ 200 B"), met: Some(cold_bytes <= 200.0), includes: "peak RSS minus the peak RSS of the same start on an empty store, over n; median of 3 starts" },
    ];
    rows.push(Row {
        name: "64 async callers, no engine (the floor)",
        value: tp.floor,
        unit: "registers/s",
        ratio: Some((tp.floor_ratio, "× SQLite limit")),
        goal: None,
        met: None,
        includes: "the same 64 tasks, channel and oneshot answers, through a thread that only gathers 64 calls, commits their rows and answers (bench-one floor): what the hand-offs alone leave of SQLite's limit; medians of the rounds",
    });
    // How the median round's threads waited: a callers' thread that sleeps once a commit
    // slept only through it, and the time between commits is its wake-up and calls, not
    // answers that came apart (docs/performance.md, "The third machine, seventh session").
    if let Some((engine, callers)) = tp.tasks_commits.sleeps {
        rows.push(Row {
            name: "sleeps a commit, async callers: Background Sync thread / callers'",
            value: engine,
            unit: "sleeps",
            ratio: Some((callers, "sleeps (callers' thread)")),
            goal: None,
            met: None,
            includes: "voluntary context switches of each thread over the median round, per commit: waits for a call, an answer or the disk (the committing thread's include its commits')",
        });
    }
    // Another thread taking the Background Sync thread's CPU delays the answers and calls it
    // was handling: with 64 threads, those it has just answered.
    if let (Some(threads), Some(tasks)) = (tp.threads_commits.preempted, tp.tasks_commits.preempted)
    {
        rows.push(Row {
            name: "Background Sync thread preempted a commit, threads / tasks",
            value: threads,
            unit: "times",
            ratio: Some((tasks, "times (tasks)")),
            goal: None,
            met: None,
            includes: "involuntary context switches of the Background Sync thread over the median round of 64 threads and of 64 async callers, per commit",
        });
    }
    rows.push(Row {
        name: "64 async callers, engine against the floor",
        value: tp.tasks_to_floor,
        unit: "× the floor",
        ratio: None,
        goal: None,
        met: None,
        includes: "each round's async callers on the engine against that round's floor; their median: what the engine's own work costs the async callers",
    });
    // Where the Background Sync thread ran in each round of the async callers: a thread that
    // waits for the disk on a CPU other than the one its interrupts go to pays a cross-CPU
    // wake-up a commit (docs/performance.md, "Why the same commit is slower").
    if let Ok((disk, _)) = &disk_cpu {
        let (on, off): (Vec<&TasksRound>, Vec<_>) = tp
            .tasks_rounds
            .iter()
            .partition(|(_, cpu)| cpu.is_some_and(|(c, _)| c == *disk));
        for (name, rounds) in [
            ("async rounds, engine on the disk's CPU", on),
            ("async rounds, engine on another CPU", off),
        ] {
            rows.push(Row {
                name,
                value: rounds.len() as f64,
                unit: "rounds",
                ratio: (!rounds.is_empty())
                    .then(|| (median(rounds.iter().map(|r| r.0).collect()), "× SQLite limit")),
                goal: None,
                met: None,
                includes: "the rounds of the row above by the CPU the Background Sync thread was on, against the CPU that took the disk's interrupts during the fsync limit; their median ratio",
            });
        }
    }
    println!(
        "\n{:<40} {:>14} {:<16} {:>22} {:>9} {:>5}",
        "benchmark", "value", "unit", "ratio", "goal", "met"
    );
    for r in &rows {
        let ratio = r
            .ratio
            .map(|(v, what)| format!("{v:.2} {what}"))
            .unwrap_or_default();
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        // Seconds to the millisecond: a cold start of 1.036 s printed as "1.0 s" beside "NO"
        // read as a contradiction.
        let digits = match r.unit {
            "s" => 3,
            "rounds" => 0,
            "× the floor" => 2,
            _ => 1,
        };
        println!(
            "{:<40} {:>14.digits$} {:<16} {:>22} {:>9} {:>5}",
            r.name,
            r.value,
            r.unit,
            ratio,
            r.goal.unwrap_or(""),
            met
        );
    }
    match &disk_cpu {
        Ok((disk, line)) => println!(
            "\nthe disk's interrupts ({line}) went to CPU{disk}; the async callers' rounds: {}",
            tp.tasks_rounds
                .iter()
                .map(|(ratio, cpu)| match cpu {
                    Some((c, share)) => {
                        format!("{ratio:.2} × (engine on CPU{c} {:.0} %)", share * 100.0)
                    }
                    None => format!("{ratio:.2} × (engine's CPU unknown)"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(why) => println!("\nthe disk's CPU is not known: {why}"),
    }
    println!(
        "\n{} mode, n for cold start = {}, fan-out = {}; {:.1} s",
        if quick { "quick" } else { "full" },
        sizes.cold,
        sizes.fanout,
        started.elapsed().as_secs_f64()
    );
    let json = json!({
        "mode": if quick { "quick" } else { "full" },
        "rows": rows.iter().map(|r| json!({
            "name": r.name, "value": r.value, "unit": r.unit,
            "ratio": r.ratio.map(|(v, _)| v), "ratio_of": r.ratio.map(|(_, w)| w),
            "goal": r.goal, "met": r.met, "includes": r.includes,
        })).collect::<Vec<_>>(),
        "getTags_ns_per_call": {"n10": small.1, "n1000": mid.1, "n100000": large.1},
        "disk_interrupts_cpu": disk_cpu.as_ref().ok().map(|(cpu, line)| json!({"cpu": cpu, "line": line})),
        "async_callers_rounds": tp.tasks_rounds.iter().map(|(ratio, cpu)| json!({"ratio": ratio, "engine_cpu": cpu.map(|c| c.0), "engine_cpu_share": cpu.map(|c| c.1)})).collect::<Vec<_>>(),
    });
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let file = out.join(if quick {
        "bench-quick.json"
    } else {
        "bench.json"
    });
    std::fs::write(
        &file,
        serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    println!("wrote {}", file.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite's limit, the storage cost and the cold start write the rows the engine writes: a
    /// row the core stages for a new registration is the benchmarks' `put` of the same tag, its
    /// place and its time (until 640c3a0 `put` wrote 0 for both, rows a fifth smaller).
    #[test]
    fn the_benchmarks_rows_are_the_engines() {
        let mut core = Scheduler::new(Parameters::default());
        let now = Timestamp(1_796_000_000_123);
        core.set_online(now, false);
        let o = origin(0);
        core.register(
            now,
            RequestId(1),
            RegisterCall {
                caller: o.clone().into(),
                sw: SwRegistrationId(1),
                tag: Tag::from(caller_tag(3, 7)),
                context: RegisterContext::ready(o.clone()),
            },
        );
        let written = std::iter::from_fn(|| core.poll_effect())
            .find_map(|e| match e {
                Effect::Persist { ops, .. } => Some(ops),
                _ => None,
            })
            .expect("a new registration is written");
        let [StoreOp::Put(row)] = &written[..] else {
            panic!("one row written, got {written:?}");
        };
        assert_ne!(row.seq, 0, "the engine numbers its registrations");
        assert_eq!(written[0], put(o, 1, caller_tag(3, 7), row.seq, now));
    }
}
