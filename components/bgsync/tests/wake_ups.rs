//! The browser's wake-up scheduler is told, not asked: when to wake the browser, and whether to
//! keep it alive while events run (and so when the work of a wake-up is done).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bgsync::testing::{Behaviour, FixedNetwork, OpenWindows, ScriptedHost};
use bgsync::{BackgroundSync, DispatchOutcome, Origin, SwRegistrationId, Timestamp, VirtualClock};

#[tokio::test]
async fn wake_ups_follow_back_offs_and_events_in_flight() {
    let a = Origin::parse("https://a.example").unwrap();
    let host = Arc::new(ScriptedHost::new());
    host.add_registration(SwRegistrationId(1), a.clone());
    let clock = VirtualClock::new(Timestamp(1_000));
    let sync = BackgroundSync::builder(host.clone(), Arc::new(OpenWindows::with([a.clone()])))
        .network(Arc::new(FixedNetwork(true)))
        .clock(Arc::new(clock.clone()))
        .start()
        .unwrap();
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
