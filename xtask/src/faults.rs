//! `cargo xtask faults`: fault drills run for real against the real engine, one line each.
//!
//! Each drill breaks something the engine depends on — the disk, the file system, the database
//! files, an embedder trait, the clock, the call queue — and checks the promise the engine makes
//! about it: nothing acknowledged is lost, nothing foreign is taken in, damage is reported
//! rather than silent, and every call is answered. A line says what was expected and what
//! happened, then PASS, FAIL or SKIP (with the reason).
//!
//! Drills that need root (a 1 MiB tmpfs that fills up; an ext4 image the kernel turns read-only
//! after an error) are skipped without it, or when the container forbids mounting; each has a
//! simulated twin that needs nothing (SQLite's own "disk full" and "read-only" errors through a
//! custom store). Mounts are always undone, also when a drill fails.
//!
//! The flood drill runs in a child process (`xtask faults-child flood N`), so that its peak
//! resident memory is its own.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bgsync::testing::{Behaviour, FixedNetwork, OpenWindows, ScriptedHost};
use bgsync::{
    BackgroundSync, Builder, Clock, DispatchOutcome, LogEvent, NextStep, OutcomeReporter,
    Parameters, Permissions, RegistrationInfo, ServiceWorkerHost, Sleep, StartError,
    SyncEventDispatch, VirtualClock, WindowClients,
};
use bgsync_store::{
    MemoryStore, Recovery, RegistrationStore, StoreError, StoreOp, StoredRegistration,
};
use bgsync_store_sqlite::{SqliteStore, DB_FILE, LOCK_FILE};
use bgsync_types::{
    DispatchId, DomException, DomExceptionName, Origin, PermissionState, SwRegistrationId, Tag,
    Timestamp,
};
use rusqlite::Connection;

/// How long any one answer may take before the drill calls it a hang.
const ANSWER: Duration = Duration::from_secs(30);
/// How long a whole drill may take before it is reported as hung.
const DRILL: Duration = Duration::from_secs(150);
/// Calls in the flood drill.
const FLOOD_CALLS: usize = 1_000_000;
/// Distinct tags in the flood: the registrations held stay few, so what could grow is the queue.
const FLOOD_TAGS: usize = 10_000;
/// Peak memory growth the flood may cause.
const FLOOD_LIMIT: u64 = 300 << 20;
/// The engine's call queue in the flood (the default).
const CALL_CAPACITY: usize = 10_000;
/// Calls the engine may hold unanswered at once in the flood: its queue, a commit in flight and
/// the next one gathering, each no bigger than the queue.
const FLOOD_UNANSWERED: u64 = 3 * CALL_CAPACITY as u64;
/// Marks the drills' own deliberate panics, which the panic hook keeps quiet.
const DRILL_PANIC: &str = "fault drill:";

const SW_A: SwRegistrationId = SwRegistrationId(1);
const SW_B: SwRegistrationId = SwRegistrationId(2);
const SW_FOREIGN: SwRegistrationId = SwRegistrationId(9);
const MINUTE: u64 = 60_000;
const YEAR: u64 = 365 * 24 * 60 * MINUTE;
/// The virtual clock's reading in the drills.
const NOW: Timestamp = Timestamp(2 * YEAR);

/// A drill that did not fail.
enum Got {
    Pass(String),
    Skip(String),
}

/// What a drill returns: `Err` is a FAIL, with what happened.
type Outcome = Result<Got, String>;

struct Fault {
    name: &'static str,
    expected: &'static str,
    run: fn() -> Outcome,
}

const FAULTS: &[Fault] = &[
    Fault {
        name: "disk full (tmpfs of 1 MiB)",
        expected: "register rejects with UnknownError once full, the engine keeps answering, writes resume after the tmpfs grows, every acknowledged tag is there after a restart",
        run: disk_full_tmpfs,
    },
    Fault {
        name: "disk full (simulated, SQLite's own error)",
        expected: "register rejects with UnknownError, getTags answers, writes resume once there is room, every acknowledged tag is there after reopening, no rejected one",
        run: disk_full_simulated,
    },
    Fault {
        name: "read-only file system (ext4 error)",
        expected: "register rejects with UnknownError, getTags answers, after fsck and a rw mount every acknowledged tag is there, no rejected one",
        run: read_only_ext4,
    },
    Fault {
        name: "read-only (simulated, SQLite's own error)",
        expected: "register rejects with UnknownError, getTags answers, writes resume once writable, every acknowledged tag is there after reopening, no rejected one",
        run: read_only_simulated,
    },
    Fault {
        name: "bit flips (every page, 6 offsets each)",
        expected: "each flip repaired (a recovery reported) or harmless (rows identical); after a put and a delete-origin (with the engine's rewrite after a repair) the file passes integrity_check and holds exactly what was loaded, less the cleared origin",
        run: bit_flips,
    },
    Fault {
        name: "database deleted while running",
        expected: "registers before and after answer Ok, a recovery is reported, every tag is there after a restart",
        run: database_deleted,
    },
    Fault {
        name: "database replaced while running",
        expected: "registers answer Ok, a recovery is reported, after a restart every tag is there and no foreign row",
        run: database_replaced,
    },
    Fault {
        name: "WAL deleted while running",
        expected: "registers answer Ok, the files on disk hold every acknowledged row, every tag is there after a restart",
        run: wal_deleted_running,
    },
    Fault {
        name: "WAL deleted after a crash",
        expected: "the restart reports acknowledged commits missing (not silent) and keeps what the database holds",
        run: wal_deleted_after_crash,
    },
    Fault {
        name: "another profile's WAL before start",
        expected: "start-up reports it, no foreign row is taken in, this profile's rows are kept",
        run: foreign_wal,
    },
    Fault {
        name: "lock file deleted while running",
        expected: "a second engine and a second store on the directory are refused (in use), the first keeps working, its rows are intact",
        run: lock_deleted,
    },
    Fault {
        name: "panicking ServiceWorkerHost::registration",
        expected: "that origin's register fails with UnknownError naming the method, another origin is served",
        run: panicking_registration,
    },
    Fault {
        name: "panicking WindowClients::has_window_client",
        expected: "that origin's register fails with UnknownError naming the method, another origin is served",
        run: panicking_clients,
    },
    Fault {
        name: "panicking Permissions::background_sync",
        expected: "that origin's register fails with UnknownError naming the method, another origin is served",
        run: panicking_permissions,
    },
    Fault {
        name: "panicking ServiceWorkerHost::fire_sync_event",
        expected: "the event counts as a failed attempt (retried after a back-off), other registrations still fire, the engine answers",
        run: panicking_fire,
    },
    Fault {
        name: "panicking RegistrationStore::commit",
        expected: "the register that panicked and later ones fail with UnknownError instead of hanging, getTags answers",
        run: panicking_store,
    },
    Fault {
        name: "blocking WindowClients (2 s per call)",
        expected: "calls are answered, slowly (the engine waits for the embedder); nothing lost",
        run: blocking_clients,
    },
    Fault {
        name: "blocking fire_sync_event (2 s per event)",
        expected: "calls made meanwhile are answered once it returns; every event fires and completes; nothing lost",
        run: blocking_fire,
    },
    Fault {
        name: "flood of 1,000,000 unawaited registers",
        expected: "every call answered (Ok or UnknownError \"busy\"); at most 30,000 unanswered at once (the call queue of 10,000, a commit in flight and the next gathering); peak memory growth under 300 MB",
        run: flood,
    },
    Fault {
        name: "log subscriber that never reads",
        expected: "registers are still answered; EngineStatus::log_lines_dropped > 0",
        run: unread_log,
    },
    Fault {
        name: "clock set back a year during a back-off",
        expected: "the retry still comes 5 minutes after the failure",
        run: clock_back,
    },
    Fault {
        name: "shutdown under load (64 calls, 10 rounds)",
        expected: "every call answered Ok is in the store after reopening, every other call is not",
        run: shutdown_under_load,
    },
];

/// Runs every drill and prints one line each, then the totals.
pub fn main(args: &[String]) -> Result<(), String> {
    // An argument picks the drills whose name contains it.
    let only = match args {
        [] => None,
        [filter] => Some(filter.as_str()),
        _ => return Err("faults [FILTER]".into()),
    };
    quiet_drill_panics();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for fault in FAULTS
        .iter()
        .filter(|f| only.is_none_or(|o| f.name.contains(o)))
    {
        let t = Instant::now();
        let (verdict, got) = match run_drill(fault.run) {
            Ok(Got::Pass(got)) => {
                passed += 1;
                ("PASS", got)
            }
            Ok(Got::Skip(why)) => {
                skipped += 1;
                ("SKIP", why)
            }
            Err(got) => {
                failed += 1;
                ("FAIL", got)
            }
        };
        println!(
            "{verdict}  {}  expected: {}  got: {got}  ({:.1} s)",
            fault.name,
            fault.expected,
            t.elapsed().as_secs_f64()
        );
        let _ = std::io::stdout().flush();
    }
    unmount_leftovers();
    let skipped_text = if skipped > 0 {
        format!(", {skipped} skipped")
    } else {
        String::new()
    };
    println!("{passed} passed, {failed} failed{skipped_text}");
    if failed > 0 {
        Err(format!("{failed} fault drill(s) failed"))
    } else {
        Ok(())
    }
}

/// The hidden `faults-child` command: drills that need a process of their own.
pub fn child(args: &[String]) -> Result<(), String> {
    match args {
        [what, n] if what == "flood" => {
            let n = n.parse().map_err(|_| format!("flood {n}: not a number"))?;
            flood_child(n)
        }
        _ => Err("faults-child flood N".into()),
    }
}

/// Runs a drill on a thread of its own: a panic in the drill is a FAIL, and so is a drill that
/// hangs (its thread is left behind).
fn run_drill(drill: fn() -> Outcome) -> Outcome {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let spawned = std::thread::Builder::new()
        .name("fault-drill".into())
        .spawn(move || {
            let outcome = std::panic::catch_unwind(drill)
                .unwrap_or_else(|payload| Err(format!("the drill panicked: {}", text(&*payload))));
            let _ = tx.send(outcome);
        });
    if let Err(e) = spawned {
        return Err(format!("could not start the drill's thread: {e}"));
    }
    rx.recv_timeout(DRILL)
        .unwrap_or_else(|_| Err(format!("no result within {} s: hung", DRILL.as_secs())))
}

fn text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic payload".into())
}

/// The panics the drills cause on purpose are contained by the engine; printing each would
/// bury the report. Any other panic is printed as usual.
fn quiet_drill_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !text(info.payload()).starts_with(DRILL_PANIC) {
            default(info);
        }
    }));
}

// ---- The engine, its embedder and its store, as the drills use them ----

fn origin(s: &str) -> Origin {
    Origin::parse(s).expect("a valid origin")
}

fn a() -> Origin {
    origin("https://a.example")
}

fn b() -> Origin {
    origin("https://b.example")
}

fn foreign() -> Origin {
    origin("https://foreign.example")
}

/// A host that knows the drills' three service worker registrations; workers succeed.
fn host() -> Arc<ScriptedHost> {
    let host = ScriptedHost::new();
    host.add_registration(SW_A, a());
    host.add_registration(SW_B, b());
    host.add_registration(SW_FOREIGN, foreign());
    Arc::new(host)
}

fn windows() -> Arc<OpenWindows> {
    Arc::new(OpenWindows::with([a(), b(), foreign()]))
}

/// No per-origin or total caps: the drills fill disks and queues, not quotas.
fn uncapped() -> Parameters {
    Parameters {
        max_registrations_per_origin: None,
        max_bytes_per_origin: None,
        max_bytes_total: None,
        ..Parameters::default()
    }
}

/// Offline, on a virtual clock that stands still: nothing fires, so every registration stays
/// where the drill can count it.
fn builder(host: Arc<dyn ServiceWorkerHost>, clients: Arc<dyn WindowClients>) -> Builder {
    BackgroundSync::builder(host, clients)
        .network(Arc::new(FixedNetwork(false)))
        .clock(Arc::new(VirtualClock::new(NOW)))
        .params(uncapped())
}

/// A running engine that is shut down (and its thread joined, its files closed) when dropped,
/// also when a drill returns early: a mount can then be undone.
struct Engine(BackgroundSync);

impl Deref for Engine {
    type Target = BackgroundSync;
    fn deref(&self) -> &BackgroundSync {
        &self.0
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

fn start(b: Builder) -> Result<Engine, String> {
    b.start()
        .map(Engine)
        .map_err(|e| format!("the engine did not start: {e}"))
}

fn start_in(dir: &Path) -> Result<Engine, String> {
    start(builder(host(), windows()).data_dir(dir))
}

/// Registers through the channel API; `Err` if no answer came.
fn register(
    sync: &BackgroundSync,
    o: &Origin,
    sw: SwRegistrationId,
    tag: &str,
) -> Result<Result<(), DomException>, String> {
    sync.register_with_reply(o, sw, tag)
        .recv_timeout(ANSWER)
        .map_err(|_| format!("register({tag}) not answered within {} s", ANSWER.as_secs()))
}

/// Registers and requires Ok.
fn register_ok(
    sync: &BackgroundSync,
    o: &Origin,
    sw: SwRegistrationId,
    tag: &str,
) -> Result<(), String> {
    register(sync, o, sw, tag)?
        .map_err(|e| format!("register({tag}) rejected: {}: {}", e.name, e.message))
}

/// Registers and requires an UnknownError.
fn register_unknown_error(
    sync: &BackgroundSync,
    o: &Origin,
    sw: SwRegistrationId,
    tag: &str,
) -> Result<DomException, String> {
    match register(sync, o, sw, tag)? {
        Ok(()) => Err(format!("register({tag}) answered Ok")),
        Err(e) if e.name == DomExceptionName::UnknownError => Ok(e),
        Err(e) => Err(format!(
            "register({tag}) rejected with {}, not UnknownError: {}",
            e.name, e.message
        )),
    }
}

fn tags(sync: &BackgroundSync, o: &Origin, sw: SwRegistrationId) -> Result<Vec<String>, String> {
    let tags = sync
        .get_tags_with_reply(o, sw)
        .recv_timeout(ANSWER)
        .map_err(|_| format!("getTags not answered within {} s", ANSWER.as_secs()))?
        .map_err(|e| format!("getTags rejected: {}: {}", e.name, e.message))?;
    Ok(tags.iter().map(Tag::to_string_lossy).collect())
}

/// Waits for an async call on a runtime of its own (the engine runs on its own thread).
fn block<T>(f: impl std::future::Future<Output = T>) -> Result<T, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(async { tokio::time::timeout(ANSWER, f).await })
        .map_err(|_| format!("not answered within {} s", ANSWER.as_secs()))
}

fn recoveries(sync: &BackgroundSync) -> Result<Vec<Recovery>, String> {
    block(sync.recoveries())?.map_err(|e| e.to_string())
}

/// The rows in `dir`, read by a store opened afresh (the engine must be shut down).
fn stored(dir: &Path) -> Result<Vec<StoredRegistration>, String> {
    SqliteStore::open(dir)
        .and_then(|mut s| s.load_all())
        .map_err(|e| format!("reopening the store failed: {e}"))
}

fn stored_tags(dir: &Path) -> Result<BTreeSet<String>, String> {
    Ok(stored(dir)?
        .iter()
        .map(|r| r.tag.to_string_lossy())
        .collect())
}

/// Checks that every acknowledged tag is in `now` and no rejected one is.
fn none_lost(acked: &[String], rejected: &[String], now: &BTreeSet<String>) -> Result<(), String> {
    let lost: Vec<&String> = acked.iter().filter(|t| !now.contains(*t)).collect();
    if !lost.is_empty() {
        return Err(format!(
            "{} of {} acknowledged tag(s) lost, e.g. {}",
            lost.len(),
            acked.len(),
            short(lost[0], 40)
        ));
    }
    let kept: Vec<&String> = rejected.iter().filter(|t| now.contains(*t)).collect();
    if !kept.is_empty() {
        return Err(format!(
            "{} rejected tag(s) stored anyway, e.g. {}",
            kept.len(),
            short(kept[0], 40)
        ));
    }
    Ok(())
}

/// What the store said in a rejection ("database or disk is full"), without the sentence
/// around it; the whole message if it is not a store failure.
fn store_cause(message: &str) -> String {
    let cause = message
        .split_once("change(s): ")
        .map(|(_, rest)| rest)
        .or_else(|| message.strip_prefix("Background Sync could not store the registration ("))
        .unwrap_or(message);
    let cause = cause.split(" (database /").next().unwrap_or(cause);
    short(cause.trim_end_matches("); try again later"), 90)
}

/// At most `n` characters of `s`.
fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

fn temp_dir() -> Result<tempfile::TempDir, String> {
    tempfile::tempdir().map_err(|e| format!("no temporary directory: {e}"))
}

fn wal(dir: &Path) -> PathBuf {
    dir.join(format!("{DB_FILE}-wal"))
}

fn checkpoint(dir: &Path) -> Result<(), String> {
    Connection::open(dir.join(DB_FILE))
        .and_then(|c| c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())))
        .map_err(|e| format!("checkpoint: {e}"))
}

/// A SqliteStore the drill keeps a handle on while the engine owns it, to switch its simulated
/// faults on and off.
#[derive(Clone)]
struct Shared(Arc<Mutex<SqliteStore>>);

impl Shared {
    fn with<T>(&self, f: impl FnOnce(&mut SqliteStore) -> T) -> T {
        let mut store = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut store)
    }
}

impl RegistrationStore for Shared {
    fn load_all(&mut self) -> Result<Vec<StoredRegistration>, StoreError> {
        self.with(|s| s.load_all())
    }
    fn commit(&mut self, batch: &[StoreOp]) -> Result<(), StoreError> {
        self.with(|s| s.commit(batch))
    }
    fn verify(&mut self) -> Result<Option<Recovery>, StoreError> {
        self.with(|s| s.verify())
    }
    fn take_recovery(&mut self) -> Option<Recovery> {
        self.with(|s| s.take_recovery())
    }
}

// ---- Root, mounts ----

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// Runs a system command; `Err` carries what it printed.
fn system(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("could not run {program}: {e}"))?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(said)
    } else {
        Err(format!(
            "{program} {}: {} ({})",
            args.join(" "),
            said.trim().lines().next().unwrap_or(""),
            out.status
        ))
    }
}

fn path_str(p: &Path) -> Result<&str, String> {
    p.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", p.display()))
}

/// Mount points not yet undone, for a last sweep if a drill hung.
static MOUNTS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A mount, undone when dropped.
struct Mount(PathBuf);

impl Mount {
    /// `mount OPTIONS... DIR`.
    fn new(options: &[&str], dir: &Path) -> Result<Mount, String> {
        let mut args = options.to_vec();
        args.push(path_str(dir)?);
        system("mount", &args)?;
        MOUNTS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(dir.to_owned());
        Ok(Mount(dir.to_owned()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        unmount(&self.0);
    }
}

fn unmount(dir: &Path) {
    let Some(d) = dir.to_str() else { return };
    if system("umount", &[d]).is_err() {
        // Still busy (an engine thread left behind): detach it now, freed when closed.
        let _ = system("umount", &["-l", d]);
    }
    MOUNTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|m| m != dir);
}

fn unmount_leftovers() {
    let left: Vec<PathBuf> = MOUNTS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for dir in left {
        unmount(&dir);
    }
}

// ---- 1. Disk full ----

fn disk_full_tmpfs() -> Outcome {
    if !is_root() {
        return Ok(Got::Skip("needs root to mount a tmpfs".into()));
    }
    let work = temp_dir()?;
    let mnt = work.path().join("mnt");
    std::fs::create_dir(&mnt).map_err(|e| e.to_string())?;
    let mount = match Mount::new(&["-t", "tmpfs", "-o", "size=1m", "tmpfs"], &mnt) {
        Ok(m) => m,
        Err(e) => return Ok(Got::Skip(format!("mounting a tmpfs failed: {e}"))),
    };
    let dir = mnt.join("profile");
    let (mut acked, mut rejected) = (Vec::new(), Vec::new());
    let sync = start_in(&dir)?;
    let mut first_error = None;
    for i in 0..20_000 {
        let tag = format!("fill-{i:05}-{}", "x".repeat(200));
        match register(&sync, &a(), SW_A, &tag)? {
            Ok(()) => acked.push(tag),
            Err(e) if e.name == DomExceptionName::UnknownError => {
                first_error = Some(e.message);
                rejected.push(tag);
                break;
            }
            Err(e) => {
                return Err(format!(
                    "register {i} rejected with {}, not UnknownError: {}",
                    e.name, e.message
                ))
            }
        }
    }
    let Some(first_error) = first_error else {
        return Err(format!("{} registers never filled 1 MiB", acked.len()));
    };
    let fills = acked.len();
    // Full: still answering, writes (whatever still fits is taken) and reads alike.
    let (mut later_ok, mut later_rejected) = (0, 0);
    for i in 0..5 {
        let tag = format!("while-full-{i}-{}", "z".repeat(i * 60));
        match register(&sync, &b(), SW_B, &tag)? {
            Ok(()) => {
                later_ok += 1;
                acked.push(tag);
            }
            Err(e) if e.name == DomExceptionName::UnknownError => {
                later_rejected += 1;
                rejected.push(tag);
            }
            Err(e) => return Err(format!("{tag} rejected with {}: {}", e.name, e.message)),
        }
    }
    let held = tags(&sync, &a(), SW_A)?.len() + tags(&sync, &b(), SW_B)?.len();
    if held != acked.len() {
        return Err(format!(
            "getTags lists {held} tags while full, {} were acknowledged",
            acked.len()
        ));
    }
    system("mount", &["-o", "remount,size=16m", path_str(&mnt)?])?;
    let resumed = register(&sync, &b(), SW_B, "after-room")?;
    drop(sync);
    if let Err(e) = &resumed {
        return Err(format!(
            "full after {} registers ({}); after growing the tmpfs to 16 MiB register still fails: {}",
            acked.len(),
            store_cause(&first_error),
            e.message
        ));
    }
    let sync = start_in(&dir)?;
    let mut now: BTreeSet<String> = tags(&sync, &a(), SW_A)?.into_iter().collect();
    now.extend(tags(&sync, &b(), SW_B)?);
    drop(sync);
    acked.push("after-room".into());
    none_lost(&acked, &rejected, &now)?;
    drop(mount);
    Ok(Got::Pass(format!(
        "full after {fills} registers: UnknownError ({}); 5 more answered ({later_ok} Ok as they fit, {later_rejected} UnknownError), getTags answered; after growing to 16 MiB register Ok; after a restart all {} acknowledged there, none of the {} rejected",
        store_cause(&first_error),
        acked.len(),
        rejected.len()
    )))
}

fn disk_full_simulated() -> Outcome {
    simulated(
        "disk full",
        |s, on| s.simulate_disk_full(on),
        // The cap is the file's current size: the first write that needs a new page fails.
        40,
    )
}

fn read_only_simulated() -> Outcome {
    simulated("read-only", |s, on| s.simulate_read_only(on), 0)
}

/// The simulated twin of a drill: `switch` turns the store's simulated fault on and off;
/// up to `tries` registers are made while it is on until one fails (0: the first must fail).
fn simulated(
    what: &str,
    switch: fn(&SqliteStore, bool) -> Result<(), StoreError>,
    tries: usize,
) -> Outcome {
    let dir = temp_dir()?;
    let store = Shared(Arc::new(Mutex::new(
        SqliteStore::open(dir.path()).map_err(|e| e.to_string())?,
    )));
    let sync = start(builder(host(), windows()).store(Box::new(store.clone())))?;
    let mut acked = Vec::new();
    for i in 0..5 {
        let tag = format!("before-{i}");
        register_ok(&sync, &a(), SW_A, &tag)?;
        acked.push(tag);
    }
    sync.settle_blocking();
    store
        .with(|s| switch(s, true))
        .map_err(|e| format!("switching {what} on: {e}"))?;
    let mut rejected = Vec::new();
    let mut error = None;
    for i in 0..=tries {
        let tag = format!("during-{i}-{}", "y".repeat(300));
        match register(&sync, &a(), SW_A, &tag)? {
            Ok(()) => acked.push(tag),
            Err(e) if e.name == DomExceptionName::UnknownError => {
                error = Some(e.message);
                rejected.push(tag);
                break;
            }
            Err(e) => {
                return Err(format!(
                    "rejected with {}, not UnknownError: {}",
                    e.name, e.message
                ))
            }
        }
    }
    let Some(error) = error else {
        return Err(format!(
            "{} registers were all accepted while {what}",
            tries + 1
        ));
    };
    let held = tags(&sync, &a(), SW_A)?;
    if held.len() != acked.len() {
        return Err(format!(
            "getTags lists {} tags while {what}, {} were acknowledged",
            held.len(),
            acked.len()
        ));
    }
    store
        .with(|s| switch(s, false))
        .map_err(|e| format!("switching {what} off: {e}"))?;
    register_ok(&sync, &b(), SW_B, "after")
        .map_err(|e| format!("rejected with ({}); once lifted: {e}", store_cause(&error)))?;
    acked.push("after".into());
    drop(sync);
    drop(store);
    let now = stored_tags(dir.path())?;
    none_lost(&acked, &rejected, &now)?;
    Ok(Got::Pass(format!(
        "UnknownError ({}) after {} accepted; getTags answered; Ok once lifted; reopened: all {} acknowledged, none rejected",
        store_cause(&error),
        acked.len() - 1,
        acked.len()
    )))
}

// ---- 2. Read-only file system ----

/// Linux refuses `mount -o remount,ro` while files are open for writing (the engine's are), so
/// the drill takes the way a file system really goes read-only under a running program: ext4
/// with `errors=remount-ro`, and an error raised through its `trigger_fs_error` knob.
fn read_only_ext4() -> Outcome {
    if !is_root() {
        return Ok(Got::Skip("needs root to mount an ext4 image".into()));
    }
    let work = temp_dir()?;
    let image = work.path().join("ro.img");
    let mnt = work.path().join("mnt");
    std::fs::create_dir(&mnt).map_err(|e| e.to_string())?;
    std::fs::File::create(&image)
        .and_then(|f| f.set_len(16 << 20))
        .map_err(|e| format!("image: {e}"))?;
    let img = path_str(&image)?;
    if let Err(e) = system("mkfs.ext4", &["-q", "-F", img]) {
        return Ok(Got::Skip(format!("no ext4 image: {e}")));
    }
    let ext4 = ["-t", "ext4", "-o", "loop,errors=remount-ro", img];
    let mount = match Mount::new(&ext4, &mnt) {
        Ok(m) => m,
        Err(e) => return Ok(Got::Skip(format!("mounting an ext4 image failed: {e}"))),
    };
    let Some(trigger) = mount_source(&mnt)
        .map(|dev| PathBuf::from(format!("/sys/fs/ext4/{dev}/trigger_fs_error")))
        .filter(|p| p.exists())
    else {
        return Ok(Got::Skip(
            "no ext4 trigger_fs_error for the image's device".into(),
        ));
    };
    let dir = mnt.join("profile");
    let sync = start_in(&dir)?;
    let mut acked = Vec::new();
    for i in 0..5 {
        let tag = format!("before-{i}");
        register_ok(&sync, &a(), SW_A, &tag)?;
        acked.push(tag);
    }
    std::fs::write(&trigger, "fault drill: read-only\n")
        .map_err(|e| format!("trigger_fs_error: {e}"))?;
    match std::fs::write(mnt.join("probe"), "x") {
        Err(e) if e.raw_os_error() == Some(30) => {}
        other => {
            return Ok(Got::Skip(format!(
                "the file system did not go read-only ({other:?})"
            )))
        }
    }
    let e = register_unknown_error(&sync, &a(), SW_A, "while-ro")?;
    let held = tags(&sync, &a(), SW_A)?;
    if held.len() != acked.len() {
        return Err(format!(
            "getTags lists {} tags while read-only, {} were acknowledged",
            held.len(),
            acked.len()
        ));
    }
    drop(sync);
    drop(mount);
    let fsck = match system("e2fsck", &["-fy", img]) {
        Ok(_) => "clean".to_owned(),
        // 1: errors corrected.
        Err(e) if e.contains("exit status: 1") => "repaired".to_owned(),
        Err(e) => return Ok(Got::Skip(format!("e2fsck failed: {e}"))),
    };
    let mount = match Mount::new(&ext4, &mnt) {
        Ok(m) => m,
        Err(e) => return Ok(Got::Skip(format!("mounting the image again failed: {e}"))),
    };
    let sync = start_in(&dir)?;
    let now: BTreeSet<String> = tags(&sync, &a(), SW_A)?.into_iter().collect();
    let recovered = sync.start_report().recovery.clone();
    drop(sync);
    drop(mount);
    none_lost(&acked, &["while-ro".into()], &now)?;
    Ok(Got::Pass(format!(
        "read-only after an ext4 error: register UnknownError ({}), getTags answered; e2fsck {fsck}, mounted rw: all {} acknowledged there, not the rejected one{}",
        store_cause(&e.message),
        acked.len(),
        recovered.map_or(String::new(), |r| format!(
            " (start-up reported: {})",
            short(&r.cause, 60)
        ))
    )))
}

/// The device name (`loop3`) mounted at `dir`, from /proc/self/mountinfo.
fn mount_source(dir: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let dir = dir.to_str()?;
    info.lines().rev().find_map(|line| {
        let mut fields = line.split(' ');
        let point = fields.nth(4)?;
        if point != dir {
            return None;
        }
        let rest: Vec<&str> = fields.collect();
        let dash = rest.iter().position(|f| *f == "-")?;
        let source = rest.get(dash + 2)?;
        source.strip_prefix("/dev/").map(str::to_owned)
    })
}

// ---- 3. Bit flips ----

fn flip_record(i: usize) -> StoredRegistration {
    StoredRegistration {
        origin: origin(&format!("https://o{}.example", i % 5)),
        partition: Default::default(),
        seq: 0,
        sw: SwRegistrationId((i % 5) as u64 + 1),
        // Tags of varied lengths spread the rows over many table and index pages.
        tag: Tag::from(format!("tag-{i}-{}", "x".repeat(i * 7 % 300)).as_str()),
        kind: bgsync_types::SyncKind::OneShot,
        attempts: (i % 3) as u32,
        max_attempts: 3,
        next_fire: Timestamp(1_700_000_000_000 + i as u64),
        periodic_interval: None,
    }
}

fn sorted(mut rows: Vec<StoredRegistration>) -> Vec<StoredRegistration> {
    rows.sort_by_key(|r| r.key());
    rows
}

/// What one flipped bit led to.
enum Flip {
    /// A recovery was reported; how many rows came through it altered, and how many are gone.
    Repaired { altered: usize, lost: usize },
    /// Nothing reported, and the rows are those written.
    Harmless,
    /// Anything else: damage left, rows changed unreported, an error.
    Wrong(String),
}

fn bit_flips() -> Outcome {
    let base = temp_dir()?;
    let rows: Vec<StoredRegistration> = (0..300).map(flip_record).collect();
    {
        let mut store = SqliteStore::open(base.path()).map_err(|e| e.to_string())?;
        store
            .commit(&rows.iter().cloned().map(StoreOp::Put).collect::<Vec<_>>())
            .map_err(|e| e.to_string())?;
    }
    checkpoint(base.path())?;
    let rows = sorted(rows);
    let bytes = std::fs::read(base.path().join(DB_FILE)).map_err(|e| e.to_string())?;
    let page = match u16::from_be_bytes([bytes[16], bytes[17]]) {
        1 => 65_536,
        n => usize::from(n),
    };
    let pages = bytes.len() / page;
    let (mut flips, mut harmless, mut wrong) = (0, 0, Vec::new());
    // Repairs that kept every row intact, kept one altered, lost some (and the rows lost).
    let (mut intact, mut altered, mut lossy, mut rows_lost) = (0, 0, 0, 0);
    for p in 0..pages {
        for offset in [40, 700, 1500, 2300, 3100, 3900] {
            let at = p * page + offset;
            flips += 1;
            let mut damaged = bytes.clone();
            damaged[at] ^= 1 << (at % 8);
            let outcome = std::panic::catch_unwind(|| flip_once(base.path(), &damaged, &rows))
                .unwrap_or_else(|payload| Flip::Wrong(format!("panicked: {}", text(&*payload))));
            match outcome {
                Flip::Repaired {
                    altered: 0,
                    lost: 0,
                } => intact += 1,
                Flip::Repaired { lost: 0, .. } => altered += 1,
                Flip::Repaired { lost, .. } => {
                    lossy += 1;
                    rows_lost += lost;
                }
                Flip::Harmless => harmless += 1,
                Flip::Wrong(why) => wrong.push(format!("page {p} offset {offset}: {why}")),
            }
        }
    }
    let repaired = intact + altered + lossy;
    let summary = format!(
        "{flips} flips over {pages} pages: {repaired} repaired ({intact} with every row intact, {altered} keeping a row whose value the flip changed, {lossy} losing {rows_lost} row(s) in all), {harmless} harmless, {} left damaged",
        wrong.len()
    );
    if !wrong.is_empty() {
        return Err(format!(
            "{summary}; first: {}",
            wrong[..wrong.len().min(3)].join("; ")
        ));
    }
    if repaired == 0 {
        return Err(format!(
            "{summary}: no flip was damage, the matrix tests nothing"
        ));
    }
    Ok(Got::Pass(summary))
}

/// The engine's path on one damaged copy: open with recovery, the full check, a put and a
/// delete-origin; then SQLite's integrity check and a fresh reopen, which must hold what was
/// loaded, less the cleared origin.
fn flip_once(template: &Path, damaged: &[u8], rows: &[StoredRegistration]) -> Flip {
    let run = || -> Result<Flip, String> {
        let dir = temp_dir()?;
        std::fs::copy(template.join(LOCK_FILE), dir.path().join(LOCK_FILE))
            .map_err(|e| e.to_string())?;
        std::fs::write(dir.path().join(DB_FILE), damaged).map_err(|e| e.to_string())?;
        let (mut store, at_open) =
            SqliteStore::open_or_recover(dir.path()).map_err(|e| format!("open: {e}"))?;
        let loaded = store.load_all().map_err(|e| format!("load: {e}"))?;
        let later = store.verify().map_err(|e| format!("verify: {e}"))?;
        let extra = flip_record(10_000);
        let cleared = extra.origin.clone();
        // As the engine does: a repair by the check that did not keep everything is followed,
        // in the next commit, by a rewrite from the rows the engine loaded.
        let mut first = Vec::new();
        if later.as_ref().is_some_and(|r| !r.complete) {
            first.push(StoreOp::DeleteAll);
            first.extend(loaded.iter().cloned().map(StoreOp::Put));
        }
        first.push(StoreOp::Put(extra));
        store.commit(&first).map_err(|e| format!("put: {e}"))?;
        store
            .commit(&[StoreOp::DeleteOrigin(cleared.clone())])
            .map_err(|e| format!("delete origin: {e}"))?;
        // What the engine reported holding: what it loaded.
        let reported = loaded.clone();
        drop(store);
        let check = integrity(&dir.path().join(DB_FILE))?;
        if check != "ok" {
            return Ok(Flip::Wrong(format!("damage left: {}", short(&check, 100))));
        }
        let reopened = sorted(stored(dir.path())?);
        let expected = sorted(
            reported
                .iter()
                .filter(|r| r.origin != cleared)
                .cloned()
                .collect(),
        );
        if reopened != expected {
            return Ok(Flip::Wrong(format!(
                "the store holds {} rows, not the {} it reported",
                reopened.len(),
                expected.len()
            )));
        }
        if at_open.is_some() || later.is_some() {
            let missing = rows.iter().filter(|r| !reported.contains(r)).count();
            let added = reported.iter().filter(|r| !rows.contains(r)).count();
            let altered = missing.min(added);
            return Ok(Flip::Repaired {
                altered,
                lost: missing - altered,
            });
        }
        if sorted(loaded) != rows {
            return Ok(Flip::Wrong("rows changed and nothing was reported".into()));
        }
        Ok(Flip::Harmless)
    };
    run().unwrap_or_else(Flip::Wrong)
}

fn integrity(path: &Path) -> Result<String, String> {
    let lines = Connection::open(path).and_then(|conn| {
        let mut stmt = conn.prepare("PRAGMA integrity_check")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect::<Result<Vec<String>, _>>()
    });
    match lines {
        Ok(lines) => Ok(lines.join("; ")),
        Err(e) => Ok(format!("integrity_check failed: {e}")),
    }
}

// ---- 4.–9. Files behind the engine's back ----

/// Registers `tags` for origin a, requiring Ok.
fn register_all(sync: &BackgroundSync, tags: &[String]) -> Result<(), String> {
    tags.iter()
        .try_for_each(|t| register_ok(sync, &a(), SW_A, t))
}

fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

fn database_deleted() -> Outcome {
    let dir = temp_dir()?;
    let before = numbered("before", 5);
    let after = numbered("after", 5);
    let sync = start_in(dir.path())?;
    register_all(&sync, &before)?;
    std::fs::remove_file(dir.path().join(DB_FILE)).map_err(|e| e.to_string())?;
    register_all(&sync, &after)?;
    sync.settle_blocking();
    let rec = recoveries(&sync)?;
    drop(sync);
    let sync = start_in(dir.path())?;
    let now: BTreeSet<String> = tags(&sync, &a(), SW_A)?.into_iter().collect();
    drop(sync);
    let acked: Vec<String> = before.into_iter().chain(after).collect();
    none_lost(&acked, &[], &now)?;
    let Some(r) = rec.first() else {
        return Err("nothing lost, but no recovery was reported".into());
    };
    Ok(Got::Pass(format!(
        "10 registers Ok; recovery: \"{}\"; after a restart all 10 there",
        short(&r.cause, 70)
    )))
}

fn database_replaced() -> Outcome {
    let dir = temp_dir()?;
    let other = temp_dir()?;
    {
        let mut store = SqliteStore::open(other.path()).map_err(|e| e.to_string())?;
        let ops: Vec<StoreOp> = (0..50)
            .map(|i| {
                StoreOp::Put(StoredRegistration {
                    origin: foreign(),
                    partition: Default::default(),
                    seq: 0,
                    sw: SW_FOREIGN,
                    tag: Tag::from(format!("foreign-{i}").as_str()),
                    kind: bgsync_types::SyncKind::OneShot,
                    attempts: 0,
                    max_attempts: 3,
                    next_fire: NOW,
                    periodic_interval: None,
                })
            })
            .collect();
        store.commit(&ops).map_err(|e| e.to_string())?;
    }
    // The foreign rows go into the file itself, not only its log.
    checkpoint(other.path())?;
    let before = numbered("before", 5);
    let after = numbered("after", 5);
    let sync = start_in(dir.path())?;
    register_all(&sync, &before)?;
    std::fs::rename(other.path().join(DB_FILE), dir.path().join(DB_FILE))
        .map_err(|e| e.to_string())?;
    register_all(&sync, &after)?;
    sync.settle_blocking();
    let rec = recoveries(&sync)?;
    drop(sync);
    let rows = stored(dir.path())?;
    let foreign_rows = rows.iter().filter(|r| r.origin == foreign()).count();
    // The engine too (its host knows the foreign service worker registration, so would keep it).
    let sync = start_in(dir.path())?;
    let now: BTreeSet<String> = tags(&sync, &a(), SW_A)?.into_iter().collect();
    let foreign_tags = tags(&sync, &foreign(), SW_FOREIGN)?.len();
    drop(sync);
    if foreign_rows + foreign_tags > 0 {
        return Err(format!(
            "{foreign_rows} foreign row(s) in the store, {foreign_tags} foreign tag(s) in the engine"
        ));
    }
    let acked: Vec<String> = before.into_iter().chain(after).collect();
    none_lost(&acked, &[], &now)?;
    let Some(r) = rec.first() else {
        return Err("nothing lost, nothing taken in, but no recovery was reported".into());
    };
    Ok(Got::Pass(format!(
        "10 registers Ok; recovery: \"{}\"; after a restart all 10 there, 0 of 50 foreign rows",
        short(&r.cause, 70)
    )))
}

fn wal_deleted_running() -> Outcome {
    let dir = temp_dir()?;
    let before = numbered("before", 5);
    let after = numbered("after", 5);
    let sync = start_in(dir.path())?;
    register_all(&sync, &before)?;
    if !wal(dir.path()).exists() {
        return Err("no write-ahead log after 5 commits".into());
    }
    std::fs::remove_file(wal(dir.path())).map_err(|e| e.to_string())?;
    register_all(&sync, &after)?;
    sync.settle_blocking();
    let rec = recoveries(&sync)?;
    drop(sync);
    // What is on disk, without the store's recovery: every acknowledged row must be in the files.
    let on_disk: i64 = Connection::open(dir.path().join(DB_FILE))
        .and_then(|c| c.query_row("SELECT count(*) FROM registrations", [], |r| r.get(0)))
        .map_err(|e| format!("reading the files: {e}"))?;
    let sync = start_in(dir.path())?;
    let now: BTreeSet<String> = tags(&sync, &a(), SW_A)?.into_iter().collect();
    drop(sync);
    let acked: Vec<String> = before.into_iter().chain(after).collect();
    none_lost(&acked, &[], &now)?;
    if on_disk != 10 {
        return Err(format!(
            "the files on disk hold {on_disk} rows, 10 were acknowledged"
        ));
    }
    Ok(Got::Pass(format!(
        "10 registers Ok; files on disk hold 10 rows; after a restart all 10 there; {}",
        rec.first()
            .map_or("no recovery reported".into(), |r| format!(
                "recovery: \"{}\"",
                short(&r.cause, 60)
            ))
    )))
}

/// The engine closes the store without checkpointing, so its log stays on disk exactly as after
/// a crash; the drill deletes it before the restart.
fn wal_deleted_after_crash() -> Outcome {
    let dir = temp_dir()?;
    let early = numbered("checkpointed", 3);
    let late = numbered("in-the-log", 3);
    let sync = start_in(dir.path())?;
    register_all(&sync, &early)?;
    drop(sync);
    // A checkpoint, as SQLite makes one every 1,000 pages: these rows are in the file itself.
    checkpoint(dir.path())?;
    let sync = start_in(dir.path())?;
    register_all(&sync, &late)?;
    // The files as a crash now would leave them (a clean close checkpoints the log away).
    let crashed = temp_dir()?;
    copy_files(dir.path(), crashed.path())?;
    drop(sync);
    let dir = crashed;
    if !wal(dir.path()).exists() {
        return Err("no write-ahead log in the files a crash would leave".into());
    }
    std::fs::remove_file(wal(dir.path())).map_err(|e| e.to_string())?;
    let sync = start_in(dir.path())?;
    let report = sync.start_report().clone();
    let now: BTreeSet<String> = tags(&sync, &a(), SW_A)?.into_iter().collect();
    drop(sync);
    let Some(r) = report.recovery else {
        return Err(format!(
            "the restart reported nothing; it holds {} of the 6 acknowledged tags",
            now.len()
        ));
    };
    if !r.cause.contains("acknowledged") {
        return Err(format!(
            "a recovery, but not about missing commits: {}",
            short(&r.cause, 100)
        ));
    }
    none_lost(&early, &[], &now)?;
    Ok(Got::Pass(format!(
        "start-up reported \"{}\"; kept {} ({} checkpointed before)",
        short(&r.cause, 110),
        now.len(),
        early.len()
    )))
}

fn foreign_wal() -> Outcome {
    let dir = temp_dir()?;
    let other = temp_dir()?;
    let ours = numbered("ours", 7);
    let sync = start_in(dir.path())?;
    register_all(&sync, &ours)?;
    drop(sync);
    checkpoint(dir.path())?;
    {
        let sync = start_in(other.path())?;
        for i in 0..50 {
            register_ok(&sync, &foreign(), SW_FOREIGN, &format!("foreign-{i}"))?;
        }
        // The other profile's log as a crash would leave it (a clean close empties it).
        std::fs::copy(wal(other.path()), wal(dir.path())).map_err(|e| e.to_string())?;
    }
    let sync = start_in(dir.path())?;
    let report = sync.start_report().clone();
    let now: BTreeSet<String> = tags(&sync, &a(), SW_A)?.into_iter().collect();
    let foreign_tags = tags(&sync, &foreign(), SW_FOREIGN)?.len();
    drop(sync);
    let foreign_rows = stored(dir.path())?
        .iter()
        .filter(|r| r.origin == foreign())
        .count();
    if foreign_rows + foreign_tags > 0 {
        return Err(format!(
            "{foreign_tags} foreign tag(s) in the engine, {foreign_rows} foreign row(s) in the store"
        ));
    }
    none_lost(&ours, &[], &now)?;
    let Some(r) = report.recovery else {
        return Err("nothing taken in, nothing lost, but start-up reported nothing".into());
    };
    Ok(Got::Pass(format!(
        "start-up reported \"{}\"; 0 of 50 foreign rows taken in; all 7 of ours there",
        short(&r.cause, 70)
    )))
}

fn lock_deleted() -> Outcome {
    let dir = temp_dir()?;
    let before = numbered("before", 3);
    let after = numbered("after", 3);
    let sync = start_in(dir.path())?;
    register_all(&sync, &before)?;
    std::fs::remove_file(dir.path().join(LOCK_FILE)).map_err(|e| e.to_string())?;
    let second_engine = match builder(host(), windows()).data_dir(dir.path()).start() {
        Err(e @ StartError::Store(StoreError::InUse { .. })) => e.to_string(),
        Err(e) => return Err(format!("the second engine failed, but not as in use: {e}")),
        Ok(second) => {
            second.shutdown();
            return Err("a second engine started on the same directory".into());
        }
    };
    match SqliteStore::open(dir.path()) {
        Err(StoreError::InUse { .. }) => {}
        Err(e) => return Err(format!("a second store failed, but not as in use: {e}")),
        Ok(_) => return Err("a second store opened the same database".into()),
    }
    register_all(&sync, &after)?;
    drop(sync);
    let now = stored_tags(dir.path())?;
    let acked: Vec<String> = before.into_iter().chain(after).collect();
    none_lost(&acked, &[], &now)?;
    Ok(Got::Pass(format!(
        "second engine refused (\"{}\"), second store InUse; the first registered 3 more, all 6 there",
        short(&second_engine, 70)
    )))
}

// ---- 10. Panicking embedders ----

/// A host that panics in `registration` for service worker registration 2 (origin b) when
/// asked to, and in `fire_sync_event` for tag "boom".
struct PanickyHost {
    inner: Arc<ScriptedHost>,
    panic_registration: bool,
}

impl ServiceWorkerHost for PanickyHost {
    fn registration(&self, sw: SwRegistrationId) -> Option<RegistrationInfo> {
        if self.panic_registration && sw == SW_B {
            panic!("{DRILL_PANIC} registry lookup");
        }
        self.inner.registration(sw)
    }
    fn fire_sync_event(&self, event: SyncEventDispatch, reply: OutcomeReporter) {
        if event.tag == Tag::from("boom") {
            panic!("{DRILL_PANIC} fire_sync_event");
        }
        self.inner.fire_sync_event(event, reply);
    }
    fn terminate(&self, event: DispatchId, sw: SwRegistrationId) {
        self.inner.terminate(event, sw);
    }
}

/// Window clients that panic for origin b.
struct PanickyClients;

impl WindowClients for PanickyClients {
    fn has_window_client(&self, o: &Origin) -> bool {
        if *o == b() {
            panic!("{DRILL_PANIC} has_window_client");
        }
        true
    }
}

/// Permissions that panic for origin b.
struct PanickyPermissions;

impl Permissions for PanickyPermissions {
    fn background_sync(&self, o: &Origin) -> PermissionState {
        if *o == b() {
            panic!("{DRILL_PANIC} background_sync");
        }
        PermissionState::Granted
    }
}

fn panicky_host(panic_registration: bool) -> Arc<PanickyHost> {
    Arc::new(PanickyHost {
        inner: host(),
        panic_registration,
    })
}

fn panicking_registration() -> Outcome {
    let sync = start(builder(panicky_host(true), windows()))?;
    bad_origin_fails(&sync, "ServiceWorkerHost::registration")
}

fn panicking_clients() -> Outcome {
    let sync = start(builder(panicky_host(false), Arc::new(PanickyClients)))?;
    bad_origin_fails(&sync, "WindowClients::has_window_client")
}

fn panicking_permissions() -> Outcome {
    let sync =
        start(builder(panicky_host(false), windows()).permissions(Arc::new(PanickyPermissions)))?;
    bad_origin_fails(&sync, "Permissions::background_sync")
}

/// Origin b's register fails naming `method`; origin a is served before and after.
fn bad_origin_fails(sync: &BackgroundSync, method: &str) -> Outcome {
    register_ok(sync, &a(), SW_A, "before")?;
    let e = register_unknown_error(sync, &b(), SW_B, "x")?;
    if !(e.message.contains(method) && e.message.contains("panicked")) {
        return Err(format!("the error does not name the fault: {}", e.message));
    }
    register_ok(sync, &a(), SW_A, "after")?;
    let held = tags(sync, &a(), SW_A)?;
    // getTags() lists them in the order they were registered.
    if held != ["before", "after"] {
        return Err(format!("origin a holds {held:?}"));
    }
    Ok(Got::Pass(format!(
        "b: UnknownError \"{}\"; a: 2 registers Ok, getTags Ok",
        short(&e.message, 70)
    )))
}

fn panicking_fire() -> Outcome {
    let sync = start(builder(panicky_host(false), windows()))?;
    register_ok(&sync, &a(), SW_A, "boom")?;
    register_ok(&sync, &a(), SW_A, "fine")?;
    sync.network_changed(true);
    sync.settle_blocking();
    let log = block(sync.log())?.map_err(|e| e.to_string())?;
    let completed = |tag: &str| {
        log.iter().find_map(|e| match &e.event {
            LogEvent::Completed { outcome, next } if e.tag == Tag::from(tag) => {
                Some((*outcome, *next))
            }
            _ => None,
        })
    };
    let fine = completed("fine");
    let boom = completed("boom");
    if fine.map(|c| c.0) != Some(DispatchOutcome::Fulfilled) {
        return Err(format!("\"fine\" did not fire and succeed: {fine:?}"));
    }
    let Some((outcome, NextStep::RetryAfter(delay))) = boom else {
        return Err(format!(
            "\"boom\" is not a failed attempt retried later: {boom:?}"
        ));
    };
    register_ok(&sync, &a(), SW_A, "later")?;
    Ok(Got::Pass(format!(
        "\"boom\" completed {outcome:?}, retry after {} min; \"fine\" fired and succeeded; a later register Ok",
        delay.as_secs() / 60
    )))
}

/// A store that panics on any batch writing tag "boom".
struct PanickyStore(MemoryStore);

impl RegistrationStore for PanickyStore {
    fn load_all(&mut self) -> Result<Vec<StoredRegistration>, StoreError> {
        self.0.load_all()
    }
    fn commit(&mut self, batch: &[StoreOp]) -> Result<(), StoreError> {
        if batch
            .iter()
            .any(|op| matches!(op, StoreOp::Put(r) if r.tag == Tag::from("boom")))
        {
            panic!("{DRILL_PANIC} commit");
        }
        self.0.commit(batch)
    }
}

fn panicking_store() -> Outcome {
    let store = PanickyStore(MemoryStore::new());
    let sync = start(builder(host(), windows()).store(Box::new(store)))?;
    register_ok(&sync, &a(), SW_A, "before")?;
    let t = Instant::now();
    let boom = register_unknown_error(&sync, &a(), SW_A, "boom")?;
    let next = register_unknown_error(&sync, &a(), SW_A, "next")?;
    let held = tags(&sync, &a(), SW_A)?;
    if held != ["before"] {
        return Err(format!("getTags lists {held:?}, not [\"before\"]"));
    }
    Ok(Got::Pass(format!(
        "\"boom\": UnknownError ({}); \"next\": UnknownError ({}) (both in {} ms); getTags [before]",
        store_cause(&boom.message),
        store_cause(&next.message),
        t.elapsed().as_millis()
    )))
}

// ---- 11. Blocking embedders ----

/// Window clients that take 2 s to answer.
struct SlowClients;

impl WindowClients for SlowClients {
    fn has_window_client(&self, _o: &Origin) -> bool {
        std::thread::sleep(Duration::from_secs(2));
        true
    }
}

fn blocking_clients() -> Outcome {
    let sync = start(builder(host(), Arc::new(SlowClients)))?;
    let t = Instant::now();
    let calls: Vec<_> = (0..3)
        .map(|i| sync.register_with_reply(a(), SW_A, format!("slow-{i}").as_str()))
        .collect();
    let reads = sync.get_tags_with_reply(b(), SW_B);
    let mut times = Vec::new();
    for (i, rx) in calls.into_iter().enumerate() {
        match rx.recv_timeout(ANSWER) {
            Ok(Ok(())) => times.push(format!("{:.1}", t.elapsed().as_secs_f64())),
            Ok(Err(e)) => return Err(format!("slow-{i} rejected: {}", e.message)),
            Err(_) => {
                return Err(format!(
                    "slow-{i} not answered within {} s",
                    ANSWER.as_secs()
                ))
            }
        }
    }
    reads
        .recv_timeout(ANSWER)
        .map_err(|_| "getTags not answered".to_owned())?
        .map_err(|e| format!("getTags rejected: {}", e.message))?;
    let read_after = t.elapsed().as_secs_f64();
    let held = tags(&sync, &a(), SW_A)?;
    if held.len() != 3 {
        return Err(format!("origin a holds {held:?}"));
    }
    Ok(Got::Pass(format!(
        "3 registers answered Ok after {} s (the engine thread waits for each call in turn); a getTags queued behind them answered after {read_after:.1} s; all 3 held",
        times.join("/")
    )))
}

/// A host whose workers take 2 s to be handed an event.
struct SlowHost(Arc<ScriptedHost>);

impl ServiceWorkerHost for SlowHost {
    fn registration(&self, sw: SwRegistrationId) -> Option<RegistrationInfo> {
        self.0.registration(sw)
    }
    fn fire_sync_event(&self, event: SyncEventDispatch, reply: OutcomeReporter) {
        std::thread::sleep(Duration::from_secs(2));
        self.0.fire_sync_event(event, reply);
    }
    fn terminate(&self, event: DispatchId, sw: SwRegistrationId) {
        self.0.terminate(event, sw);
    }
}

fn blocking_fire() -> Outcome {
    let inner = host();
    let sync = start(builder(Arc::new(SlowHost(inner.clone())), windows()))?;
    register_ok(&sync, &a(), SW_A, "one")?;
    register_ok(&sync, &a(), SW_A, "two")?;
    let t = Instant::now();
    sync.network_changed(true);
    // Made while the events are being handed over.
    let call = sync.register_with_reply(b(), SW_B, "meanwhile");
    let answered = match call.recv_timeout(ANSWER) {
        Ok(Ok(())) => t.elapsed().as_secs_f64(),
        Ok(Err(e)) => {
            return Err(format!(
                "the register made meanwhile was rejected: {}",
                e.message
            ))
        }
        Err(_) => return Err("the register made meanwhile was not answered".into()),
    };
    sync.settle_blocking();
    let fired: BTreeSet<String> = inner
        .fired()
        .iter()
        .map(|e| e.tag.to_string_lossy())
        .collect();
    let log = block(sync.log())?.map_err(|e| e.to_string())?;
    let succeeded = log
        .iter()
        .filter(|e| {
            matches!(
                e.event,
                LogEvent::Completed {
                    outcome: DispatchOutcome::Fulfilled,
                    ..
                }
            )
        })
        .count();
    let status = sync.status_blocking().map_err(|e| e.to_string())?;
    if fired.len() != 3 || succeeded != 3 || status.registrations != 0 {
        return Err(format!(
            "fired {fired:?}, {succeeded} succeeded, {} still held",
            status.registrations
        ));
    }
    Ok(Got::Pass(format!(
        "a register made meanwhile answered Ok after {answered:.1} s; all 3 events fired and succeeded after {:.1} s",
        t.elapsed().as_secs_f64()
    )))
}

// ---- 12. Flood ----

fn flood() -> Outcome {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    let out = Command::new(exe)
        .args(["faults-child", "flood", &FLOOD_CALLS.to_string()])
        .output()
        .map_err(|e| format!("could not start the flood child: {e}"))?;
    let said = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "the flood child failed ({}): {}{}",
            out.status,
            said.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let n: Vec<u64> = said
        .split_whitespace()
        .map(|w| w.parse().unwrap_or(u64::MAX))
        .collect();
    let [before, after, ok, busy, other, unanswered, ms, held, waiting, sent, first_ok] = n[..]
    else {
        return Err(format!("the flood child said {said:?}"));
    };
    let growth = after.saturating_sub(before);
    let got = format!(
        "{FLOOD_CALLS} calls over {FLOOD_TAGS} tags sent in {:.1} s, all answered by {:.1} s: {ok} Ok, {busy} busy, {other} other, {unanswered} unanswered; first Ok after {:.1} s, at most {waiting} unanswered at once; {held} registrations held; peak RSS {} → {} MB (+{} MB)",
        sent as f64 / 1000.0,
        ms as f64 / 1000.0,
        first_ok as f64 / 1000.0,
        before >> 20,
        after >> 20,
        growth >> 20
    );
    if unanswered > 0
        || other > 0
        || ok + busy != FLOOD_CALLS as u64
        || waiting > FLOOD_UNANSWERED
        || growth >= FLOOD_LIMIT
    {
        return Err(got);
    }
    Ok(Got::Pass(got))
}

/// The flood's child: `n` register_with_reply calls from one thread that never waits. Each
/// answer is picked up with `try_recv` as soon as it is there (only calls with no answer yet
/// are kept, in order), so the drill holds no more than the engine leaves unanswered. Prints
/// `hwm_before hwm_after ok busy other unanswered millis registrations_held most_unanswered
/// millis_sending millis_to_first_ok`.
fn flood_child(n: usize) -> Result<(), String> {
    use crossbeam_channel::TryRecvError;

    #[derive(Default)]
    struct Count {
        ok: u64,
        busy: u64,
        other: u64,
        unanswered: u64,
    }
    impl Count {
        fn answer(&mut self, answer: Result<(), DomException>) {
            match answer {
                Ok(()) => self.ok += 1,
                Err(e)
                    if e.name == DomExceptionName::UnknownError && e.message.contains("busy") =>
                {
                    self.busy += 1
                }
                Err(_) => self.other += 1,
            }
        }
    }

    let sync = start(builder(host(), windows()).call_capacity(CALL_CAPACITY))?;
    let tags: Vec<Tag> = (0..FLOOD_TAGS)
        .map(|i| Tag::from(format!("flood-{i}").as_str()))
        .collect();
    let before = crate::bench::peak_rss();
    let t = Instant::now();
    let mut count = Count::default();
    let mut waiting = std::collections::VecDeque::new();
    let mut most_waiting = 0;
    // When the first call accepted into the queue was answered.
    let mut first_ok = None;
    let o = a();
    for i in 0..n {
        let reply = sync.register_with_reply(&o, SW_A, tags[i % FLOOD_TAGS].clone());
        // A refusal ("busy") is answered at once; only calls with no answer yet are kept.
        match reply.try_recv() {
            Ok(answer) => count.answer(answer),
            Err(TryRecvError::Empty) => waiting.push_back(reply),
            Err(TryRecvError::Disconnected) => count.unanswered += 1,
        }
        while let Some(front) = waiting.front() {
            match front.try_recv() {
                Ok(answer) => {
                    if answer.is_ok() && first_ok.is_none() {
                        first_ok = Some(t.elapsed());
                    }
                    count.answer(answer)
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => count.unanswered += 1,
            }
            waiting.pop_front();
        }
        most_waiting = most_waiting.max(waiting.len());
    }
    let sent = t.elapsed();
    for reply in waiting {
        match reply.recv_timeout(ANSWER) {
            Ok(answer) => {
                if answer.is_ok() && first_ok.is_none() {
                    first_ok = Some(t.elapsed());
                }
                count.answer(answer)
            }
            Err(_) => count.unanswered += 1,
        }
    }
    let ms = t.elapsed().as_millis();
    let held = sync
        .status_blocking()
        .map_err(|e| e.to_string())?
        .registrations;
    let after = crate::bench::peak_rss();
    let Count {
        ok,
        busy,
        other,
        unanswered,
    } = count;
    let first_ok = first_ok.map_or(u128::MAX, |d| d.as_millis());
    let sent = sent.as_millis();
    println!(
        "{before} {after} {ok} {busy} {other} {unanswered} {ms} {held} {most_waiting} {sent} {first_ok}"
    );
    Ok(())
}

// ---- 13. A log nobody reads ----

fn unread_log() -> Outcome {
    let (tx, _never_read) = crossbeam_channel::bounded(1);
    let sync = start(builder(host(), windows()).log_to(tx))?;
    let t = Instant::now();
    for i in 0..50 {
        register_ok(&sync, &a(), SW_A, &format!("t{i}"))?;
    }
    let status = sync.status_blocking().map_err(|e| e.to_string())?;
    if status.log_lines_dropped == 0 || status.registrations != 50 {
        return Err(format!(
            "{} registrations held, {} log lines dropped",
            status.registrations, status.log_lines_dropped
        ));
    }
    Ok(Got::Pass(format!(
        "50 registers Ok in {} ms; {} log lines dropped",
        t.elapsed().as_millis(),
        status.log_lines_dropped
    )))
}

// ---- 14. The clock set back ----

/// A wall clock the drill sets, backwards too (a [`VirtualClock`] only moves forward).
#[derive(Clone)]
struct SettableClock(Arc<tokio::sync::watch::Sender<u64>>);

impl SettableClock {
    fn set(&self, t: Timestamp) {
        self.0.send_replace(t.0);
    }
}

impl Clock for SettableClock {
    fn now(&self) -> Timestamp {
        Timestamp(*self.0.borrow())
    }
    fn sleep_until(&self, deadline: Timestamp) -> Sleep {
        let mut rx = self.0.subscribe();
        Box::pin(async move {
            let _ = rx.wait_for(|now| *now >= deadline.0).await;
        })
    }
}

fn clock_back() -> Outcome {
    let clock = SettableClock(Arc::new(tokio::sync::watch::Sender::new(NOW.0)));
    let host = host();
    host.script([Behaviour::Settle(DispatchOutcome::Rejected)]);
    let sync = start(
        builder(host.clone(), windows())
            .network(Arc::new(FixedNetwork(true)))
            .clock(Arc::new(clock.clone())),
    )?;
    register_ok(&sync, &a(), SW_A, "send-mail")?;
    let failed = sync.status_blocking().map_err(|e| e.to_string())?;
    if host.fired().len() != 1 || failed.next_timer != Some(Timestamp(NOW.0 + 5 * MINUTE)) {
        return Err(format!(
            "before the jump: {} event(s) fired, next timer {:?} (expected {})",
            host.fired().len(),
            failed.next_timer,
            NOW.0 + 5 * MINUTE
        ));
    }
    let back = Timestamp(NOW.0 - YEAR);
    clock.set(back);
    let after_jump = sync
        .status_blocking()
        .map_err(|e| e.to_string())?
        .next_timer;
    clock.set(Timestamp(back.0 + 5 * MINUTE - 1));
    sync.settle_blocking();
    let early = host.fired().len();
    clock.set(Timestamp(back.0 + 5 * MINUTE));
    sync.settle_blocking();
    let fired = host.fired().len();
    let in_minutes = |t: Option<Timestamp>| {
        t.map_or("none".into(), |t| {
            format!("{:+} min", (t.0 as i64 - back.0 as i64) / MINUTE as i64)
        })
    };
    if early != 1 || fired != 2 {
        return Err(format!(
            "after setting the clock back a year the next timer is {} from the new now; {} event(s) by 4:59 later, {fired} by 5:00",
            in_minutes(after_jump),
            early
        ));
    }
    Ok(Got::Pass(format!(
        "after the jump the next timer is {} from the new now; the retry fired at +5:00, not before",
        in_minutes(after_jump)
    )))
}

// ---- 15. Shutdown under load ----

fn shutdown_under_load() -> Outcome {
    let (mut ok_total, mut rejected_total) = (0, 0);
    for round in 0..10 {
        let dir = temp_dir()?;
        let sync = start_in(dir.path())?;
        let calls: Vec<(String, _)> = (0..64)
            .map(|i| {
                let tag = format!("r{round}-{i}");
                let rx = sync.register_with_reply(a(), SW_A, tag.as_str());
                (tag, rx)
            })
            .collect();
        sync.shutdown();
        let (mut acked, mut rejected) = (Vec::new(), Vec::new());
        for (tag, rx) in calls {
            match rx.recv_timeout(ANSWER) {
                Ok(Ok(())) => acked.push(tag),
                Ok(Err(_)) => rejected.push(tag),
                Err(_) => return Err(format!("round {round}: {tag} not answered")),
            }
        }
        drop(sync);
        let now = stored_tags(dir.path())?;
        none_lost(&acked, &rejected, &now).map_err(|e| format!("round {round}: {e}"))?;
        ok_total += acked.len();
        rejected_total += rejected.len();
    }
    Ok(Got::Pass(format!(
        "640 calls: {ok_total} answered Ok, all stored; {rejected_total} rejected, none stored"
    )))
}

/// Copies every file of `from` into `to` (the files a crash at this moment would leave).
fn copy_files(from: &Path, to: &Path) -> Result<(), String> {
    for e in std::fs::read_dir(from).map_err(|e| e.to_string())? {
        let e = e.map_err(|e| e.to_string())?;
        std::fs::copy(e.path(), to.join(e.file_name())).map_err(|e| e.to_string())?;
    }
    Ok(())
}
