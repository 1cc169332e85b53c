//! An engine embedding bgsync from outside its workspace, as docs/embedding.md describes: the
//! order of start-up with a registry that loads late, stable ids for an engine whose ids last
//! one session, partitioned storage, engine threads on crossbeam channels, the OS wake-up timer,
//! diagnostics, and a private-browsing engine beside the profile's.
//!
//! It runs two browser sessions on a profile directory and checks what happened, exiting
//! non-zero if anything differs. `RUST_LOG=bgsync=info` shows bgsync's tracing events;
//! `BGSYNC_TIMELINE=file.html` writes the second session's timeline.

mod engine;

use std::error::Error;
use std::path::Path;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use bgsync::{
    BackgroundSync, DispatchOutcome, NetworkState, Origin, StorageKey, Timestamp, VirtualClock,
    WaitingFor,
};
use engine::{Fired, Registry, Tabs};

/// The service worker's scope, the same in both partitions.
const SCOPE: &str = "https://mail.example/app/";

fn mail() -> Origin {
    Origin::parse("https://mail.example").expect("a valid origin")
}

/// mail.example in a tab of its own: partitioned by its own site.
fn top_level() -> StorageKey {
    StorageKey::partitioned(mail(), "https://mail.example")
}

/// mail.example in an iframe on news.example: the same origin, another partition.
fn embedded() -> StorageKey {
    StorageKey::partitioned(mail(), "https://news.example")
}

/// What the engine's registry holds on disk: one registration per partition.
fn on_disk() -> Vec<(StorageKey, String)> {
    vec![(top_level(), SCOPE.into()), (embedded(), SCOPE.into())]
}

/// The network as the engine knows it at start-up: offline. Changes are pushed with
/// `network_changed`.
struct Offline;

impl NetworkState for Offline {
    fn is_online(&self) -> bool {
        false
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    // bgsync logs through `tracing`, with fields (origin, sw, tag, outcome, ...).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let profile = std::env::temp_dir().join(format!("bgsync-embedder-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let result = run(&profile);
    let _ = std::fs::remove_dir_all(&profile);
    result
}

/// Fails the run with `what` unless `ok`.
fn check(ok: bool, what: &str) -> Result<(), Box<dyn Error>> {
    if ok {
        println!("ok    {what}");
        Ok(())
    } else {
        Err(format!("FAIL  {what}").into())
    }
}

/// Starts the profile's engine. A real engine passes `SystemClock` (the default); the example
/// steps virtual time so that a five-minute back-off takes none.
fn start(
    profile: &Path,
    registry: &Arc<Registry>,
    tabs: &Arc<Tabs>,
    clock: &VirtualClock,
) -> Result<BackgroundSync, Box<dyn Error>> {
    Ok(BackgroundSync::builder(registry.clone(), tabs.clone())
        // The registry loads after start-up: keep the rows of workers not found yet.
        .registry_loading()
        .data_dir(profile.join("background-sync"))
        .network(Arc::new(Offline))
        .clock(Arc::new(clock.clone()))
        .start()?)
}

/// Script in a tab calls `registration.sync.register(tag)`: on the tab's own thread, answered
/// on a crossbeam channel (the engine would resolve the page's promise with it).
fn register_from_tab(
    sync: &BackgroundSync,
    registry: &Registry,
    key: StorageKey,
    tag: &'static str,
) -> std::thread::JoinHandle<Result<(), bgsync::DomException>> {
    let sw = registry.id_of(&key, SCOPE).expect("the registry is loaded");
    let sync = sync.clone();
    std::thread::spawn(move || {
        sync.register_with_reply(&key, sw, tag)
            .recv()
            .unwrap_or_else(|_| {
                Err(bgsync::DomException::new(
                    bgsync::DomExceptionName::UnknownError,
                    "Background Sync went away",
                ))
            })
    })
}

/// The browser's OS wake-up timer: while bgsync asks to keep the browser alive (events in
/// flight, or their outcomes not yet durable) it stays up and waits; once not, it sleeps until
/// bgsync's next wake-up (here: sets the virtual clock to it), for as long as there is one.
fn run_wake_ups(sync: &BackgroundSync, clock: &VirtualClock) {
    let wake_ups = sync.wake_ups();
    loop {
        sync.settle_blocking();
        let wake = *wake_ups.borrow();
        if wake.keep_alive {
            // The worker thread is still running an event: sleeping past its time limit would
            // fail it. (A real browser just stays awake.)
            std::thread::sleep(std::time::Duration::from_millis(1));
            continue;
        }
        let Some(at) = wake.at else {
            return;
        };
        let millis = at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        clock.set(Timestamp(u64::try_from(millis).unwrap_or(u64::MAX)));
    }
}

fn run(profile: &Path) -> Result<(), Box<dyn Error>> {
    let async_calls = tokio::runtime::Builder::new_current_thread().build()?;
    let clock = VirtualClock::new(Timestamp(1_800_000_000_000));

    println!("== session 1: offline, a mail written in each partition, then the browser quits ==");
    let (registry, worker) = Registry::start(0);
    let tabs = Arc::new(Tabs::default());
    tabs.open(top_level());
    tabs.open(embedded());
    let sync = start(profile, &registry, &tabs, &clock)?;
    registry
        .load_async(&sync, on_disk())
        .join()
        .map_err(|_| "the registry thread panicked")?;
    let first_ids = (
        registry.id_of(&top_level(), SCOPE),
        registry.id_of(&embedded(), SCOPE),
    );
    check(
        first_ids.0 != first_ids.1,
        "the two partitions' registrations have different stable ids",
    )?;
    let tabs_done = [
        register_from_tab(&sync, &registry, top_level(), "send-mail"),
        register_from_tab(&sync, &registry, embedded(), "send-mail"),
    ];
    for tab in tabs_done {
        let answer = tab.join().map_err(|_| "a tab thread panicked")?;
        check(
            answer.is_ok(),
            "register('send-mail') resolved while offline",
        )?;
    }
    let waiting = async_calls.block_on(sync.registrations())?;
    check(
        waiting.len() == 2
            && waiting
                .iter()
                .all(|r| r.waiting_for == Some(WaitingFor::Network)),
        "both registrations wait for the network (registrations())",
    )?;
    sync.shutdown();
    drop(registry);
    worker.join();

    println!("== session 2: restart; the registry loads late; the network returns ==");
    // The mail server refuses the first attempt.
    let (registry, worker) = Registry::start(1);
    let sync = start(profile, &registry, &tabs, &clock)?;
    sync.network_changed(true);
    sync.settle_blocking();
    check(
        worker.fired().is_empty(),
        "nothing fires before the registry is loaded, even online",
    )?;
    check(
        sync.start_report().restored == 2,
        "both registrations were restored (start_report())",
    )?;
    registry
        .load_async(&sync, on_disk())
        .join()
        .map_err(|_| "the registry thread panicked")?;
    check(
        (
            registry.id_of(&top_level(), SCOPE),
            registry.id_of(&embedded(), SCOPE),
        ) == first_ids,
        "the per-session registry got the same stable ids back (service_worker_id)",
    )?;
    run_wake_ups(&sync, &clock);
    if let Some(sw) = first_ids.0 {
        println!(
            "      the top-level registration: engine id {:?} this session, bgsync id {sw}",
            registry.session_id(sw)
        );
    }
    let fired = worker.fired();
    for line in &fired {
        println!(
            "      sync '{}' in {} lastChance={} -> {:?}",
            line.tag, line.key, line.last_chance, line.outcome
        );
    }
    let count = |key: StorageKey, outcome: DispatchOutcome| {
        fired
            .iter()
            .filter(|f: &&Fired| f.key == key && f.outcome == outcome)
            .count()
    };
    let rejected_once = count(top_level(), DispatchOutcome::Rejected)
        + count(embedded(), DispatchOutcome::Rejected)
        == 1;
    check(
        fired.len() == 3
            && rejected_once
            && count(top_level(), DispatchOutcome::Fulfilled) == 1
            && count(embedded(), DispatchOutcome::Fulfilled) == 1,
        "each partition's mail was sent; the refused attempt was retried after its back-off",
    )?;
    check(
        async_calls.block_on(sync.registrations())?.is_empty() && registry.terminated() == 0,
        "no registration is left, and no event had to be stopped",
    )?;
    let log = async_calls.block_on(sync.log())?;
    let page = bgsync::timeline::render_html("embedder example, session 2", &log);
    if let Some(path) = std::env::var_os("BGSYNC_TIMELINE") {
        std::fs::write(&path, &page)?;
        println!("      timeline written to {}", Path::new(&path).display());
    }

    // Offline again: two more mails wait; then clear-site-data for the iframe's partition only.
    sync.network_changed(false);
    for key in [top_level(), embedded()] {
        let tab = register_from_tab(&sync, &registry, key, "later");
        check(
            tab.join().map_err(|_| "a tab thread panicked")?.is_ok(),
            "register('later')",
        )?;
    }
    async_calls.block_on(sync.clear_storage_key(embedded()))?;
    let tags = |key: StorageKey| -> Result<usize, Box<dyn Error>> {
        let sw = registry.id_of(&key, SCOPE).ok_or("loaded")?;
        Ok(sync.get_tags_with_reply(&key, sw).recv()??.len())
    };
    check(
        tags(top_level())? == 1 && tags(embedded())? == 0,
        "clear_storage_key removed the iframe partition's registration only",
    )?;
    sync.shutdown();
    drop(registry);
    worker.join();

    println!("== a private window: its own engine, in memory only ==");
    let (registry, worker) = Registry::start(0);
    let refused = BackgroundSync::builder(registry.clone(), tabs.clone())
        .private_browsing()
        .data_dir(profile.join("private"))
        .start();
    check(
        matches!(refused, Err(bgsync::StartError::Config(_))) && !profile.join("private").exists(),
        "a private engine refuses a data directory and creates none",
    )?;
    let private = BackgroundSync::builder(registry.clone(), tabs.clone())
        .private_browsing()
        .network(Arc::new(Offline))
        .start()?;
    registry
        .load_async(&private, on_disk())
        .join()
        .map_err(|_| "the registry thread panicked")?;
    let tab = register_from_tab(&private, &registry, top_level(), "draft");
    check(
        tab.join().map_err(|_| "a tab thread panicked")?.is_ok(),
        "register() in the private engine",
    )?;
    private.shutdown();
    drop(registry);
    worker.join();
    println!("all checks passed");
    Ok(())
}
