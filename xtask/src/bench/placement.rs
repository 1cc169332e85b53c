//! `bench-one placement [N]`: where benchmark 3's threads run, against the CPU that takes the
//! disk's interrupts, and what that costs a commit (docs/performance.md, "The async tasks' miss,
//! taken apart").
//!
//! A thread that waits in `fdatasync` is woken by the disk's completion interrupt. On a machine
//! whose disk interrupts all go to one CPU, a thread sleeping on another CPU is woken across
//! CPUs, which in a virtual machine costs a wake-up of that CPU. SQLite's limit runs on one
//! thread that only the disk wakes, and was always found on the disk's CPU; the Background Sync
//! thread is also woken by its callers, and was found on either. This command
//! runs each side free (where the kernel puts it), with the thread that commits pinned to the
//! disk's CPU, and pinned to another CPU (the callers' thread, for the tasks, on the CPU left),
//! sampling every thread's CPU each millisecond, and prints each run and the medians.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bgsync_store_sqlite::{CommitPhases, SqliteStore};
use rustix::process::Pid;
use rustix::thread::CpuSet;

/// How a run's committing thread is placed.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Place {
    /// Where the kernel puts it.
    Free,
    /// Pinned to the CPU that takes the disk's interrupts.
    DiskCpu,
    /// Pinned to another CPU.
    OtherCpu,
}

impl Place {
    fn label(self) -> &'static str {
        match self {
            Place::Free => "free",
            Place::DiskCpu => "on the disk's CPU",
            Place::OtherCpu => "on another CPU",
        }
    }
}

/// One run's figures.
struct Run {
    rate: f64,
    /// Mean per commit: statements, `COMMIT`, and (tasks only) the time between commits.
    statements_us: f64,
    commit_us: f64,
    between_us: Option<f64>,
    /// Each thread's name and the share of its samples on each CPU.
    seen: String,
}

/// The CPU whose interrupt count rose most with `syncs` appends synced to a file in `dir`, and
/// the interrupt line's name.
fn disk_cpu(dir: &Path, syncs: usize) -> Result<(usize, String), String> {
    use std::io::Write;
    let before = interrupts()?;
    let path = dir.join("irq-probe");
    let mut f = std::fs::File::create(&path).map_err(|e| e.to_string())?;
    for _ in 0..syncs {
        f.write_all(&[0u8; 100]).map_err(|e| e.to_string())?;
        f.sync_data().map_err(|e| e.to_string())?;
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    disk_cpu_between(&before, &interrupts()?, syncs)
}

/// The CPU whose device interrupt count rose most between two readings of /proc/interrupts
/// taken around `syncs` syncs, and the interrupt line's name; an error if no line rose by half
/// as many.
pub(super) fn disk_cpu_between(
    before: &BTreeMap<String, Vec<u64>>,
    after: &BTreeMap<String, Vec<u64>>,
    syncs: usize,
) -> Result<(usize, String), String> {
    let mut best: Option<(u64, usize, String)> = None;
    for (line, counts) in after {
        let Some(old) = before.get(line) else {
            continue;
        };
        let rises: Vec<u64> = counts
            .iter()
            .zip(old)
            .map(|(a, b)| a.saturating_sub(*b))
            .collect();
        let total: u64 = rises.iter().sum();
        let cpu = (0..rises.len()).max_by_key(|&c| rises[c]).unwrap_or(0);
        if best.as_ref().is_none_or(|(t, _, _)| total > *t) {
            best = Some((total, cpu, line.clone()));
        }
    }
    match best {
        Some((total, cpu, line)) if total >= syncs as u64 / 2 => Ok((cpu, line)),
        _ => Err(format!(
            "no device interrupt rose with {syncs} syncs in /proc/interrupts"
        )),
    }
}

/// The device interrupt lines of /proc/interrupts (numbered ones: not the timer's, the
/// rescheduling IPIs' and the like), by name, with their counts per CPU.
pub(super) fn interrupts() -> Result<BTreeMap<String, Vec<u64>>, String> {
    let text = std::fs::read_to_string("/proc/interrupts").map_err(|e| e.to_string())?;
    Ok(parse_interrupts(&text))
}

/// [`interrupts`] of the text of /proc/interrupts.
fn parse_interrupts(text: &str) -> BTreeMap<String, Vec<u64>> {
    let mut lines = text.lines();
    let cpus = lines.next().map_or(0, |h| h.split_whitespace().count());
    let mut out = BTreeMap::new();
    for line in lines {
        let mut words = line.split_whitespace();
        let Some(irq) = words.next() else { continue };
        if !irq
            .trim_end_matches(':')
            .chars()
            .all(|c| c.is_ascii_digit())
        {
            continue;
        }
        let words: Vec<&str> = words.collect();
        let counts: Vec<u64> = words
            .iter()
            .take(cpus)
            .map_while(|w| w.parse().ok())
            .collect();
        let name = words
            .get(counts.len()..)
            .map_or(String::new(), |w| w.join(" "));
        out.insert(format!("{irq} {name}"), counts);
    }
    out
}

/// This process's threads: id and name.
fn threads() -> Vec<(i32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let tid: i32 = e.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(e.path().join("comm")).ok()?;
            Some((tid, name.trim().to_owned()))
        })
        .collect()
}

/// How long thread `tid` (0: the calling thread) has run, in ns (the first field of its
/// schedstat: the scheduler's own count, not the 10 ms ticks of its stat).
pub(super) fn run_ns(tid: i32) -> Option<u64> {
    thread_file(tid, "schedstat")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The file `name` of thread `tid` (0: the calling thread) in `/proc`.
fn thread_file(tid: i32, name: &str) -> Option<String> {
    let path = match tid {
        0 => format!("/proc/thread-self/{name}"),
        t => format!("/proc/self/task/{t}/{name}"),
    };
    std::fs::read_to_string(path).ok()
}

/// How many times thread `tid` (0: the calling thread) has been switched out, from
/// `/proc/.../status`: `[slept, preempted]`. It slept (a voluntary switch) each time it waited
/// for something (a call, an answer, the disk) that another thread's or CPU's wake-up ends; it
/// was preempted (an involuntary switch) each time another thread took its CPU.
pub(super) fn switches(tid: i32) -> Option<[u64; 2]> {
    let status = thread_file(tid, "status")?;
    let count = |key: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .trim()
            .parse()
            .ok()
    };
    Some([
        count("voluntary_ctxt_switches:")?,
        count("nonvoluntary_ctxt_switches:")?,
    ])
}

/// Thread `tid`'s switches since it had `since`.
pub(super) fn switches_since(tid: i32, since: Option<[u64; 2]>) -> Option<[u64; 2]> {
    let (now, since) = (switches(tid)?, since?);
    Some([
        now[0].saturating_sub(since[0]),
        now[1].saturating_sub(since[1]),
    ])
}

/// How long thread `tid` (0: the calling thread) has run since it had run `since` ns.
pub(super) fn run_ns_since(tid: i32, since: Option<u64>) -> Option<u64> {
    Some(run_ns(tid)?.saturating_sub(since?))
}

/// The newest thread named `background-sync` (the Background Sync thread of the engine
/// started last), waiting up to a second for it: a new thread names itself once it runs.
/// A thread the Background Sync thread starts (the store's) has its name too until it names
/// itself, which it does at once: a thread is taken once it still has the name 2 ms later.
pub(super) fn engine_thread() -> Option<i32> {
    let named = |tid: i32| {
        std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
            .is_ok_and(|name| name.trim() == "background-sync")
    };
    for _ in 0..500 {
        let newest = threads()
            .into_iter()
            .filter(|(_, name)| name == "background-sync")
            .map(|(tid, _)| tid)
            .max();
        std::thread::sleep(Duration::from_millis(2));
        if let Some(tid) = newest.filter(|&tid| named(tid)) {
            return Some(tid);
        }
    }
    None
}

/// Where the Background Sync thread of the engine started last (the newest thread named
/// `background-sync`) runs during a benchmark: its CPU read every 10 ms, about 10 µs of
/// another thread's time each, so that the benchmark keeps its cores.
pub(super) struct EngineWhere(Sampler);

impl EngineWhere {
    pub(super) fn start() -> Option<EngineWhere> {
        let tid = engine_thread()?;
        Some(EngineWhere(Sampler::every(
            Duration::from_millis(10),
            Some(tid),
        )))
    }

    /// The CPU the thread was seen on most, and the share of the samples it was seen there.
    pub(super) fn finish(self) -> Option<(usize, f64)> {
        let counts = self.0.counts();
        let total: u64 = counts.values().sum();
        let ((_, cpu), n) = counts.into_iter().max_by_key(|(_, n)| *n)?;
        Some((cpu, n as f64 / total as f64))
    }
}

/// The CPU thread `tid` last ran on (field 39 of its stat).
fn cpu_of(tid: i32) -> Option<usize> {
    stat_cpu(&std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?)
}

/// The CPU field of a thread's stat line.
fn stat_cpu(stat: &str) -> Option<usize> {
    // The name, in parentheses, may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(36)?.parse().ok()
}

/// Pins thread `tid` (0: the calling thread) to `cpus`.
fn pin(tid: i32, cpus: &[usize]) -> Result<(), String> {
    let mut set = CpuSet::new();
    for &c in cpus {
        set.set(c);
    }
    let pid = match tid {
        0 => None,
        t => Some(Pid::from_raw(t).ok_or("no such thread")?),
    };
    rustix::thread::sched_setaffinity(pid, &set).map_err(|e| format!("sched_setaffinity: {e}"))
}

/// Samples every thread's CPU each millisecond until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<BTreeMap<(String, usize), u64>>,
}

impl Sampler {
    /// Every thread, each millisecond.
    fn start() -> Sampler {
        Sampler::every(Duration::from_millis(1), None)
    }

    /// Every thread, or only thread `only`, each `interval`.
    fn every(interval: Duration, only: Option<i32>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("placement".into())
            .spawn(move || {
                let mut seen = BTreeMap::new();
                while !flag.load(Ordering::Relaxed) {
                    for (tid, name) in threads() {
                        if name == "placement" || only.is_some_and(|t| t != tid) {
                            continue;
                        }
                        if let Some(cpu) = cpu_of(tid) {
                            *seen.entry((name, cpu)).or_insert(0) += 1;
                        }
                    }
                    std::thread::sleep(interval);
                }
                seen
            })
            .expect("spawning the sampler");
        Sampler { stop, thread }
    }

    /// The samples by thread name and CPU.
    fn counts(self) -> BTreeMap<(String, usize), u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }

    /// Each thread's samples as shares per CPU, e.g. `background-sync: CPU0 12 %, CPU1 88 %`.
    fn finish(self) -> String {
        let seen = self.counts();
        let mut by_thread: BTreeMap<&str, Vec<(usize, u64)>> = BTreeMap::new();
        for ((name, cpu), n) in &seen {
            by_thread.entry(name).or_default().push((*cpu, *n));
        }
        by_thread
            .iter()
            .map(|(name, cpus)| {
                let total: u64 = cpus.iter().map(|(_, n)| n).sum();
                let shares: Vec<String> = cpus
                    .iter()
                    .map(|(c, n)| format!("CPU{c} {:.0} %", *n as f64 * 100.0 / total as f64))
                    .collect();
                format!("{name}: {}", shares.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The machine's CPUs, and the one that takes the disk's interrupts.
#[derive(Clone, Copy)]
struct Machine {
    cpus: usize,
    disk: usize,
}

impl Machine {
    fn all(self) -> Vec<usize> {
        (0..self.cpus).collect()
    }

    /// The CPUs for the committing thread, and for the others, placed as `place` says.
    fn split(self, place: Place) -> (Vec<usize>, Vec<usize>) {
        let others: Vec<usize> = (0..self.cpus).filter(|&c| c != self.disk).collect();
        match place {
            Place::Free => (self.all(), self.all()),
            Place::DiskCpu => (vec![self.disk], others),
            Place::OtherCpu => (others, vec![self.disk]),
        }
    }
}

impl Run {
    fn new(rate: f64, phases: &CommitPhases, between_us: Option<f64>, seen: String) -> Run {
        let (_, statements, commit) = phases.means();
        Run {
            rate,
            statements_us: statements.as_secs_f64() * 1e6,
            commit_us: commit.as_secs_f64() * 1e6,
            between_us,
            seen,
        }
    }
}

/// SQLite's limit on the calling thread, placed as `place` says.
fn limit_run(dir: &Path, per_caller: usize, place: Place, m: Machine) -> Result<Run, String> {
    pin(0, &m.split(place).0)?;
    let phases = Arc::new(CommitPhases::default());
    let sampler = Sampler::start();
    let rate = super::sqlite_group_limit_timed(dir, per_caller, Some(phases.clone()));
    let seen = sampler.finish();
    pin(0, &m.all())?;
    Ok(Run::new(rate?, &phases, None, seen))
}

/// The 64 async tasks (on the calling thread) on an engine whose Background Sync thread, which
/// makes the held groups' commits itself, is placed as `place` says; the callers' thread goes
/// to the CPU left.
fn tasks_run(dir: &Path, per_caller: usize, place: Place, m: Machine) -> Result<Run, String> {
    let _ = std::fs::remove_dir_all(dir);
    let mut store = SqliteStore::open(dir).map_err(|e| e.to_string())?;
    let phases = Arc::new(CommitPhases::default());
    store.time_commits(phases.clone());
    let (sync, stats) = super::counted_engine(store)?;
    let bgs = engine_thread().ok_or("no thread named background-sync")?;
    let (engine, callers) = m.split(place);
    pin(bgs, &engine)?;
    pin(0, &callers)?;
    let sampler = Sampler::start();
    let result = super::tasks_on(sync, stats, per_caller);
    let seen = sampler.finish();
    pin(0, &m.all())?;
    let (rate, per_commit) = result?;
    Ok(Run::new(rate, &phases, Some(per_commit.between_us), seen))
}

/// A commit's two halves, and the time between commits where there is one.
fn commit_times(statements_us: f64, commit_us: f64, between_us: Option<f64>) -> String {
    let between = between_us.map_or(String::new(), |b| format!(", {b:.0} µs between commits"));
    format!("statements {statements_us:.0} µs, COMMIT {commit_us:.0} µs a commit{between}")
}

/// `bench-one placement N`: `rounds` rounds of each side in each placement, `n` rows a run.
pub fn run(base: &Path, n: usize, rounds: usize) -> Result<(), String> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        println!("placement: skipped, this machine has one CPU");
        return Ok(());
    }
    std::fs::create_dir_all(base).map_err(|e| e.to_string())?;
    let (disk, line) = match disk_cpu(base, 200) {
        Ok(found) => found,
        Err(why) => {
            println!("placement: skipped, {why}");
            return Ok(());
        }
    };
    println!("the disk's interrupts ({line}) go to CPU{disk} of {cpus}; {n} rows a run");
    let m = Machine { cpus, disk };
    let per_caller = n.div_ceil(64);
    let places = [Place::Free, Place::DiskCpu, Place::OtherCpu];
    type Measure = fn(&Path, usize, Place, Machine) -> Result<Run, String>;
    let sides: [(&str, Measure); 2] = [("limit", limit_run), ("tasks", tasks_run)];
    let mut results: BTreeMap<(&str, Place), Vec<Run>> = BTreeMap::new();
    for r in 0..rounds {
        for place in places {
            for (side, measure) in sides {
                let dir = base.join(format!("{side}-{r}-{place:?}"));
                let run = measure(&dir, per_caller, place, m)?;
                let _ = std::fs::remove_dir_all(&dir);
                println!(
                    "{side}, committing thread {}: {:.0} a second; {}; {}",
                    place.label(),
                    run.rate,
                    commit_times(run.statements_us, run.commit_us, run.between_us),
                    run.seen
                );
                results.entry((side, place)).or_default().push(run);
            }
        }
    }
    println!("medians over {rounds} rounds:");
    let median_of = |runs: &[Run], f: fn(&Run) -> f64| super::median(runs.iter().map(f).collect());
    let free_limit = median_of(&results[&("limit", Place::Free)], |r| r.rate);
    for ((side, place), runs) in &results {
        let rate = median_of(runs, |r| r.rate);
        let between = runs[0]
            .between_us
            .map(|_| median_of(runs, |r| r.between_us.unwrap_or(0.0)));
        println!(
            "  {side:5} {:17}: {rate:>8.0} a second = {:.2} × the free limit; {}",
            place.label(),
            rate / free_limit,
            commit_times(
                median_of(runs, |r| r.statements_us),
                median_of(runs, |r| r.commit_us),
                between
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_lines_are_read_with_their_counts_and_the_others_left_out() {
        let text = "           CPU0       CPU1       \n \
             36:          0    1286042 PCI-MSIX-0000:00:02.0   1-edge      virtio1-req.0\n \
             39:      18815          0 PCI-MSIX-0000:00:03.0   2-edge      virtio2-output.0\n\
            LOC:    1336365    1562289   Local timer interrupts\n\
            ERR:          0\n";
        let lines = parse_interrupts(text);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(
            lines["36: PCI-MSIX-0000:00:02.0 1-edge virtio1-req.0"],
            vec![0, 1_286_042]
        );
        assert_eq!(
            lines["39: PCI-MSIX-0000:00:03.0 2-edge virtio2-output.0"],
            vec![18_815, 0]
        );
    }

    #[test]
    fn the_disks_cpu_is_the_one_whose_line_rose_with_the_syncs() {
        let snapshot = |disk: [u64; 2], net: [u64; 2]| {
            BTreeMap::from([
                ("36: virtio1-req.0".to_owned(), disk.to_vec()),
                ("39: virtio2-output.0".to_owned(), net.to_vec()),
            ])
        };
        let before = snapshot([0, 1_000], [50, 0]);
        let after = snapshot([3, 1_400], [90, 0]);
        assert_eq!(
            disk_cpu_between(&before, &after, 400),
            Ok((1, "36: virtio1-req.0".to_owned()))
        );
        // Fewer than half as many interrupts as syncs: not the disk's.
        let err = disk_cpu_between(&before, &after, 1_000).unwrap_err();
        assert!(err.contains("no device interrupt rose"), "{err}");
    }

    #[test]
    fn a_thread_that_waits_is_counted_asleep_and_one_that_runs_is_not() {
        if switches(0).is_none() {
            return; // No /proc: nothing to count (the benchmarks print no switches then).
        }
        let before = switches(0);
        for _ in 0..5 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let [slept, _] = switches_since(0, before).unwrap();
        assert!(slept >= 5, "{slept}");
        let before = switches(0);
        let mut x = 0u64;
        for i in 0..1_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        // Running, a thread may be preempted (an involuntary switch), not asleep (but reading
        // /proc may wait on a kernel lock another test thread holds: rarely, and once).
        let [slept, _] = switches_since(0, before).unwrap();
        assert!(slept < 5, "{slept} {x}");
    }

    #[test]
    fn a_threads_cpu_is_found_after_a_name_holding_spaces_and_parentheses() {
        // Field 39 of proc_pid_stat(5): 36 fields after the state's.
        let after: Vec<String> = (3..=52)
            .map(|f| {
                if f == 39 {
                    "1".into()
                } else {
                    format!("{}", f * 10)
                }
            })
            .collect();
        let stat = format!("1234 (a (b) c) {}", after.join(" "));
        assert_eq!(stat_cpu(&stat), Some(1));
        assert_eq!(stat_cpu("1234 (x) R 1 2"), None);
    }
}
