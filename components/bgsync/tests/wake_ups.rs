//! The browser's wake-up scheduler is told, not asked: when to wake the browser, and whether to
//! keep it alive while events run (and so when the work of a wake-up is done).

mod common;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bgsync::testing::{Behaviour, FixedNetwork, OpenWindows, ScriptedHost};
use bgsync::{BackgroundSync, DispatchOutcome, Origin, SwRegistrationId, Timestamp, VirtualClock};

#[tokio::test]
async fn wake_ups_follow_back_offs_and_events_in_flight() {
    let (a, host, _, sync) = common::online_engine(1_000);
    let mut wake = sync.wake_ups();
    assert_eq!(wake.borrow_and_update().at, None, "nothing to wake for");

    // An event in flight: keep the browser alive; wake it within the recovery time.
    host.script([Behaviour::Hold]);
    sync.register(&a, SwRegistrationId(1), "t").await.unwrap();
    sync.settle().await;
    assert!(wake.has_changed().unwrap());
    let w = *wake.borrow_and_update();
    assert!(w.keep_alive);
    assert_eq!(
        w.at,
        Some(UNIX_EPOCH + Duration::from_millis(1_000 + 6 * 60_000))
    );

    // It fails: nothing in flight (idle), a wake-up at the end of the 5-minute back-off.
    let held = host.held();
    assert!(host.settle_held(held[0].id, DispatchOutcome::Rejected));
    sync.settle().await;
    let w = *wake.borrow_and_update();
    assert!(!w.keep_alive);
    assert_eq!(
        w.at,
        Some(UNIX_EPOCH + Duration::from_millis(1_000 + 5 * 60_000))
    );
}

/// A memory store whose commits of a retry (a record with failed attempts) wait until the test
/// lets them through.
struct HeldRemovals {
    inner: bgsync::MemoryStore,
    entered: crossbeam_channel::Sender<()>,
    release: crossbeam_channel::Receiver<()>,
}

impl bgsync::RegistrationStore for HeldRemovals {
    fn load_all(&mut self) -> Result<Vec<bgsync::StoredRegistration>, bgsync::StoreError> {
        self.inner.load_all()
    }
    fn commit(&mut self, batch: &[bgsync::StoreOp]) -> Result<(), bgsync::StoreError> {
        if batch
            .iter()
            .any(|op| matches!(op, bgsync::StoreOp::Put(r) if r.attempts > 0))
        {
            let _ = self.entered.send(());
            let _ = self.release.recv();
        }
        self.inner.commit(batch)
    }
}

/// Between an event's outcome and the commit of its retry, nothing is in flight and no
/// back-off is scheduled yet: the browser must still be kept alive (found by the out-of-tree
/// embedder, which slept through that gap under load and lost the retry).
#[test]
fn keep_alive_holds_until_the_outcome_is_durable() {
    let a = Origin::parse("https://a.example").unwrap();
    let host = Arc::new(ScriptedHost::new());
    host.add_registration(SwRegistrationId(1), a.clone());
    host.set_default(Behaviour::Settle(DispatchOutcome::Rejected));
    let (entered_tx, entered) = crossbeam_channel::bounded(1);
    let (release, release_rx) = crossbeam_channel::bounded(1);
    let sync = BackgroundSync::builder(host, Arc::new(OpenWindows::with([a.clone()])))
        .network(Arc::new(FixedNetwork(true)))
        .clock(Arc::new(VirtualClock::new(Timestamp(1_000))))
        .store(Box::new(HeldRemovals {
            inner: bgsync::MemoryStore::new(),
            entered: entered_tx,
            release: release_rx,
        }))
        .start()
        .unwrap();
    let wake = sync.wake_ups();
    let registered = sync.register_with_reply(&a, SwRegistrationId(1), "t");
    assert_eq!(registered.recv().unwrap(), Ok(()));
    // The event failed at once; the write of its retry is held.
    entered.recv_timeout(Duration::from_secs(10)).unwrap();
    // Whatever the engine published last, it keeps the browser alive. (Seen, then checked once
    // the commit is let through, so that a failure cannot leave the store waiting.)
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        seen.push(*wake.borrow());
        std::thread::sleep(Duration::from_millis(10));
    }
    release.send(()).unwrap();
    assert!(
        seen.iter().all(|w| w.keep_alive),
        "the retry was not durable yet: {:?}",
        seen.iter().find(|w| !w.keep_alive)
    );
    sync.settle_blocking();
    let w = *wake.borrow();
    assert!(!w.keep_alive);
    assert_eq!(
        w.at,
        Some(UNIX_EPOCH + Duration::from_millis(1_000 + 5 * 60_000))
    );
}
