//! "Why didn't my sync fire?": every registration with what it waits for, and a log line for
//! every refused register() with the exception script saw.

use std::sync::Arc;

use bgsync::testing::{Behaviour, FixedNetwork, OpenWindows, PermissionTable, ScriptedHost};
use bgsync::{
    BackgroundSync, DispatchOutcome, DomExceptionName, LogEvent, Origin, PermissionState,
    SwRegistrationId, Tag, Timestamp, VirtualClock, WaitingFor,
};

fn origin(s: &str) -> Origin {
    Origin::parse(s).unwrap()
}

#[tokio::test]
async fn each_registration_says_what_it_waits_for() {
    let (a, b) = (origin("https://a.example"), origin("https://b.example"));
    let host = Arc::new(ScriptedHost::new());
    host.add_registration(SwRegistrationId(1), a.clone());
    host.add_registration(SwRegistrationId(2), b.clone());
    let permissions = Arc::new(PermissionTable::default());
    let clock = VirtualClock::new(Timestamp(1_000));
    let sync = BackgroundSync::builder(
        host.clone(),
        Arc::new(OpenWindows::with([a.clone(), b.clone()])),
    )
    .network(Arc::new(FixedNetwork(false)))
    .permissions(permissions.clone())
    .clock(Arc::new(clock.clone()))
    .start()
    .unwrap();
    sync.register(&a, SwRegistrationId(1), "offline")
        .await
        .unwrap();
    let snapshot = sync.registrations().await.unwrap();
    assert_eq!(snapshot.len(), 1);
    assert_eq!(snapshot[0].waiting_for, Some(WaitingFor::Network));

    // Online: b is denied, a's first attempt fails and backs off, a's second is held in flight.
    sync.register(&b, SwRegistrationId(2), "denied")
        .await
        .unwrap();
    permissions.set(&b, PermissionState::Denied);
    sync.permission_changed(&b, PermissionState::Denied);
    host.script([
        Behaviour::Settle(DispatchOutcome::Rejected),
        Behaviour::Hold,
    ]);
    sync.network_changed(true);
    sync.settle().await;
    let by_tag = |tag: &str, s: &[bgsync::RegistrationSnapshot]| {
        s.iter().find(|r| r.tag == Tag::from(tag)).cloned().unwrap()
    };
    let snapshot = sync.registrations().await.unwrap();
    assert_eq!(
        by_tag("denied", &snapshot).waiting_for,
        Some(WaitingFor::Permission)
    );
    let offline = by_tag("offline", &snapshot);
    assert_eq!(offline.waiting_for, Some(WaitingFor::BackOff));
    assert_eq!(offline.attempts, 1);
    assert_eq!(offline.next_fire, Timestamp(1_000 + 5 * 60_000));
    sync.register(&a, SwRegistrationId(1), "held")
        .await
        .unwrap();
    sync.settle().await;
    let snapshot = sync.registrations().await.unwrap();
    assert_eq!(
        by_tag("held", &snapshot).waiting_for,
        Some(WaitingFor::EventInFlight)
    );
}

#[tokio::test]
async fn a_refused_register_leaves_a_log_line_with_why() {
    let a = origin("https://a.example");
    let host = Arc::new(ScriptedHost::new());
    host.add_registration(SwRegistrationId(1), a.clone());
    // No window of a: register() is refused.
    let sync = BackgroundSync::builder(host, Arc::new(OpenWindows::with([])))
        .network(Arc::new(FixedNetwork(false)))
        .start()
        .unwrap();
    let e = sync
        .register(&a, SwRegistrationId(1), "from the background")
        .await
        .unwrap_err();
    let log = sync.log().await.unwrap();
    let line = log
        .iter()
        .find(|l| matches!(l.event, LogEvent::Rejected { .. }))
        .expect("a log line for the refusal");
    assert_eq!(line.origin, a);
    assert_eq!(line.tag, Tag::from("from the background"));
    match &line.event {
        LogEvent::Rejected { name, message } => {
            assert_eq!(*name, e.name);
            assert_eq!(*name, DomExceptionName::InvalidAccessError);
            assert_eq!(*message, e.message);
        }
        other => panic!("{other:?}"),
    }
}
