//! DevTools' "Sync" button: a sync event with a chosen tag and lastChance, now, offline or not,
//! with its outcome told to the caller and no registration changed.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bgsync::testing::{Behaviour, FixedNetwork, OpenWindows, ScriptedHost};
use bgsync::{
    BackgroundSync, DispatchOutcome, DomExceptionName, LogEvent, Origin, SwRegistrationId, Tag,
    Timestamp,
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

/// The Background Services panel: while recording, each registration, dispatch and outcome
/// becomes an event with Chromium's names and metadata; nothing is kept while not recording,
/// and clearing forgets what was kept.
#[tokio::test]
async fn the_background_services_recording_follows_the_log_while_on() {
    let (a, host, clock, sync) = common::online_engine(1_000);
    let mut recorder = sync.background_service_recorder();
    assert!(!recorder.is_recording());

    // Not recording: nothing kept.
    sync.register(&a, SwRegistrationId(1), "before")
        .await
        .unwrap();
    sync.settle().await;
    assert!(recorder.events().is_empty());

    recorder.set_recording(true);
    host.script([
        Behaviour::Settle(DispatchOutcome::Rejected),
        Behaviour::Settle(DispatchOutcome::Fulfilled),
    ]);
    sync.register(&a, SwRegistrationId(1), "mail\n")
        .await
        .unwrap();
    sync.settle().await;
    clock.advance(Duration::from_secs(300));
    sync.settle().await;
    sync.dispatch_sync_event(&a, SwRegistrationId(1), "button", true)
        .await
        .unwrap();
    sync.settle().await;

    type Shown = (String, String, Vec<(String, String)>);
    let shown: Vec<Shown> = recorder
        .take_new()
        .into_iter()
        .map(|e| {
            assert_eq!(e.origin, a);
            assert_eq!(e.service_worker_registration_id, SwRegistrationId(1));
            assert_eq!(e.service.protocol_name(), "backgroundSync");
            (e.event_name, e.instance_id, e.event_metadata)
        })
        .collect();
    let m = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let mail = "mail\n".to_owned();
    assert_eq!(
        shown,
        vec![
            ("Registered sync".into(), mail.clone(), m(&[])),
            (
                "Dispatched sync event".into(),
                mail.clone(),
                m(&[("Last Chance", "No"), ("Attempt", "1")])
            ),
            (
                "sync event failed".into(),
                mail.clone(),
                m(&[
                    ("Next Attempt Delay (ms)", "300000"),
                    ("Failure Reason", "waitUntil rejected")
                ])
            ),
            (
                "Dispatched sync event".into(),
                mail.clone(),
                m(&[("Last Chance", "No"), ("Attempt", "2")])
            ),
            (
                "Sync completed".into(),
                mail.clone(),
                m(&[("Status", "succeeded")])
            ),
            (
                "Dispatched sync event".into(),
                "button".into(),
                m(&[("Last Chance", "Yes")])
            ),
        ]
    );
    assert!(recorder.take_new().is_empty(), "each event is new once");
    assert_eq!(recorder.events().len(), 6, "but stays recorded");
    let times: Vec<_> = recorder.events().iter().map(|e| e.timestamp).collect();
    assert_eq!(times[0], Timestamp(1_000));
    assert_eq!(times[4], Timestamp(1_000 + 300_000));

    recorder.set_recording(false);
    sync.register(&a, SwRegistrationId(1), "after")
        .await
        .unwrap();
    sync.settle().await;
    assert_eq!(recorder.events().len(), 6, "not recording: nothing added");
    recorder.clear();
    assert!(recorder.events().is_empty());
    assert!(!recorder.is_recording());
}

#[tokio::test]
async fn the_log_keeps_its_newest_lines_up_to_its_capacity_in_order() {
    let a = Origin::parse("https://a.example").unwrap();
    let host = Arc::new(ScriptedHost::new());
    host.add_registration(SwRegistrationId(1), a.clone());
    // With a subscriber, each line also goes to it as it comes; without, the lines go to the
    // log together. The log is the same either way.
    let (tx, rx) = crossbeam_channel::unbounded();
    let start = |capacity, subscribed: bool| {
        let builder =
            BackgroundSync::builder(host.clone(), Arc::new(OpenWindows::with([a.clone()])))
                .network(Arc::new(FixedNetwork(false)))
                .log_capacity(capacity);
        let builder = if subscribed {
            builder.log_to(tx.clone())
        } else {
            builder
        };
        builder.start().unwrap()
    };
    let registered = |log: &[bgsync::LogEntry]| -> Vec<String> {
        log.iter()
            .filter(|e| matches!(e.event, LogEvent::Registered))
            .map(|e| e.tag.to_string())
            .collect()
    };
    for subscribed in [false, true] {
        let sync = start(5, subscribed);
        // One at a time (a pass each), then a burst of eight (their lines come in one pass).
        for i in 0..3 {
            sync.register(&a, SwRegistrationId(1), format!("one-{i}"))
                .await
                .unwrap();
        }
        assert_eq!(
            registered(&sync.log().await.unwrap()),
            ["one-0", "one-1", "one-2"]
        );
        let burst: Vec<_> = (0..8)
            .map(|i| sync.register(&a, SwRegistrationId(1), format!("burst-{i}")))
            .collect();
        for call in burst {
            call.await.unwrap();
        }
        let log = sync.log().await.unwrap();
        assert_eq!(log.len(), 5, "{log:#?}");
        assert_eq!(
            registered(&log),
            ["burst-3", "burst-4", "burst-5", "burst-6", "burst-7"]
        );
        sync.shutdown();

        // With no room, nothing is kept.
        let sync = start(0, subscribed);
        sync.register(&a, SwRegistrationId(1), "t").await.unwrap();
        assert!(sync.log().await.unwrap().is_empty());
        sync.shutdown();
    }
    // The subscriber had every line of its two engines: 3 + 8 + 1 registrations.
    let told = rx
        .try_iter()
        .filter(|e| matches!(e.event, LogEvent::Registered))
        .count();
    assert_eq!(told, 12);
}
