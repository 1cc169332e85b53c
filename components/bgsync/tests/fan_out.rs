//! Going online with many pending registrations: the engine takes the outcomes that came back
//! every `DISPATCH_ROUND` events and writes what they changed, so a large fan-out settles in
//! rounds instead of sending every event before it settles any.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgsync::testing::{FixedNetwork, OpenWindows, ScriptedHost};
use bgsync::{BackgroundSync, LogEvent, MemoryStore, Origin, SwRegistrationId, DISPATCH_ROUND};

#[test]
fn a_large_fan_out_settles_events_while_it_still_sends_others() {
    // Four origins (one origin may hold 1,000), each with its window open.
    let origins: Vec<Origin> = ["a", "b", "c", "d"]
        .iter()
        .map(|o| Origin::parse(&format!("https://{o}.example")).unwrap())
        .collect();
    let host = Arc::new(ScriptedHost::new());
    for (i, o) in origins.iter().enumerate() {
        host.add_registration(SwRegistrationId(i as u64 + 1), o.clone());
    }
    let store = MemoryStore::new();
    let sync = BackgroundSync::builder(host.clone(), Arc::new(OpenWindows::with(origins.clone())))
        .network(Arc::new(FixedNetwork(false)))
        .store(Box::new(store.clone()))
        .start()
        .unwrap();
    let n = 8 * DISPATCH_ROUND;
    for i in 0..n {
        let sw = i % origins.len();
        let o = origins[sw].clone();
        sync.register_blocking(o, SwRegistrationId(sw as u64 + 1), format!("t{i}"))
            .unwrap();
    }
    let log = sync.subscribe_log();
    // When the last event is sent, the removals of the first rounds' registrations must be on
    // their way to the store: wait (on the engine's thread, so it sends nothing more meanwhile)
    // until the store has one. The store runs on its own thread, so how soon it gets there is
    // up to the machine; sending every event before writing any would leave it waiting for
    // ever, hence the bound, which is about liveness and far above any real wait.
    let written_during_fan_out = Arc::new(AtomicBool::new(false));
    {
        let (fired, written, store) = (
            AtomicUsize::new(0),
            written_during_fan_out.clone(),
            store.clone(),
        );
        host.on_fire(move |_| {
            if fired.fetch_add(1, Ordering::SeqCst) + 1 != n {
                return;
            }
            let until = Instant::now() + Duration::from_secs(30);
            while Instant::now() < until {
                if store.snapshot().len() < n {
                    written.store(true, Ordering::SeqCst);
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
    }
    // The host's workers succeed at once, from inside the dispatch.
    sync.network_changed(true);
    sync.settle_blocking();
    let lines: Vec<LogEvent> = log.try_iter().map(|l| l.event).collect();
    let count = |kind: fn(&LogEvent) -> bool| lines.iter().filter(|e| kind(e)).count();
    let dispatched = count(|e| matches!(e, LogEvent::Dispatched { .. }));
    let completed = count(|e| matches!(e, LogEvent::Completed { .. }));
    assert_eq!((dispatched, completed), (n, n));
    assert_eq!(host.fired().len(), n, "each registration fired once");
    // Events were settled, and their removals sent to the store, before the last ones were
    // sent. (When the log says so depends on when the store's thread acknowledges the write.)
    assert!(
        written_during_fan_out.load(Ordering::SeqCst),
        "no removal reached the store while the fan-out was still sending"
    );
    assert!(store.snapshot().is_empty(), "every removal is durable");
}
