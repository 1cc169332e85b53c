//! DevTools' "Sync" button: a sync event with a chosen tag and lastChance, now, offline or not,
//! with its outcome told to the caller and no registration changed.

use std::sync::Arc;

use bgsync::testing::{Behaviour, FixedNetwork, OpenWindows, ScriptedHost};
use bgsync::{
    BackgroundSync, DispatchOutcome, DomExceptionName, LogEvent, Origin, SwRegistrationId, Tag,
};

#[tokio::test]
async fn devtools_dispatches_now_whatever_the_network() {
    let a = Origin::parse("https://a.example").unwrap();
    let host = Arc::new(ScriptedHost::new());
    host.add_registration(SwRegistrationId(1), a.clone());
    let sync = BackgroundSync::builder(host.clone(), Arc::new(OpenWindows::with([a.clone()])))
        .network(Arc::new(FixedNetwork(false)))
        .start()
        .unwrap();
    sync.register(&a, SwRegistrationId(1), "queued")
        .await
        .unwrap();

    let outcome = sync
        .dispatch_sync_event(&a, SwRegistrationId(1), "from-devtools", true)
        .await
        .unwrap();
    assert_eq!(outcome, DispatchOutcome::Fulfilled);
    let fired = host.fired();
    assert_eq!(fired.len(), 1, "offline, only DevTools' event fired");
    assert_eq!(fired[0].tag, Tag::from("from-devtools"));
    assert!(fired[0].last_chance);

    host.script([Behaviour::Settle(DispatchOutcome::Rejected)]);
    let outcome = sync
        .dispatch_sync_event(&a, SwRegistrationId(1), "queued", false)
        .await
        .unwrap();
    assert_eq!(outcome, DispatchOutcome::Rejected);
    // The registration with that tag is untouched: still pending, no attempt counted.
    let snapshot = sync.registrations().await.unwrap();
    assert_eq!(snapshot.len(), 1);
    assert_eq!(snapshot[0].attempts, 0);

    let log = sync.log().await.unwrap();
    let devtools: Vec<_> = log
        .iter()
        .filter(|e| {
            matches!(
                e.event,
                LogEvent::DevToolsDispatched { .. } | LogEvent::DevToolsCompleted { .. }
            )
        })
        .collect();
    assert_eq!(devtools.len(), 4, "{log:#?}");

    let e = sync
        .dispatch_sync_event(&a, SwRegistrationId(9), "x", false)
        .await
        .unwrap_err();
    assert_eq!(e.name, DomExceptionName::InvalidStateError);
}
