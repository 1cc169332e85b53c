//! Hostile input through the facade: other origins' ids, insecure and opaque origins, edge-size
//! and odd tags, floods against the per-origin cap, workers that never settle, and storms of
//! calls from many origins while the network flaps. Nothing panics; every call is answered.

use std::sync::Arc;
use std::time::Duration;

use bgsync::testing::{Behaviour, FixedNetwork, OpenWindows, ScriptedHost};
use bgsync::{BackgroundSync, Parameters, VirtualClock};
use bgsync_store::MemoryStore;
use bgsync_types::{DomExceptionName, Origin, SwRegistrationId, Tag, Timestamp};

fn origin(s: &str) -> Origin {
    Origin::parse(s).unwrap()
}

fn engine(
    origins: &[(u64, Origin)],
    params: Parameters,
    online: bool,
) -> (BackgroundSync, Arc<ScriptedHost>, VirtualClock, MemoryStore) {
    let host = Arc::new(ScriptedHost::new());
    for (sw, o) in origins {
        host.add_registration(SwRegistrationId(*sw), o.clone());
    }
    let clock = VirtualClock::new(Timestamp(0));
    let store = MemoryStore::new();
    let sync = BackgroundSync::builder(
        host.clone(),
        Arc::new(OpenWindows::with(origins.iter().map(|(_, o)| o.clone()))),
    )
    .clock(Arc::new(clock.clone()))
    .network(Arc::new(FixedNetwork(online)))
    .params(params)
    .store(Box::new(store.clone()))
    .start()
    .unwrap();
    (sync, host, clock, store)
}

#[tokio::test]
async fn another_origins_registration_id_is_refused_and_its_data_unobservable() {
    let a = origin("https://a.example");
    let b = origin("https://b.example");
    let (sync, _, _, store) = engine(
        &[(1, a.clone()), (2, b.clone())],
        Parameters::default(),
        false,
    );
    sync.register(&a, SwRegistrationId(1), "secret")
        .await
        .unwrap();
    let before = store.snapshot();
    for tag in ["secret", "other"] {
        let e = sync
            .register(&b, SwRegistrationId(1), tag)
            .await
            .unwrap_err();
        assert_eq!(e.name, DomExceptionName::SecurityError);
        assert!(
            !e.message.contains("secret"),
            "the message leaks A's data: {}",
            e.message
        );
    }
    let e = sync.get_tags(&b, SwRegistrationId(1)).await.unwrap_err();
    assert_eq!(e.name, DomExceptionName::SecurityError);
    assert_eq!(store.snapshot(), before);
    assert_eq!(
        sync.get_tags(&a, SwRegistrationId(1)).await.unwrap(),
        [Tag::from("secret")]
    );
}

#[tokio::test]
async fn insecure_origins_are_refused_and_loopback_is_allowed() {
    let cases = [
        ("http://example.com", Some(DomExceptionName::SecurityError)),
        ("http://localhost:8080", None),
        ("http://127.0.0.1", None),
        ("http://[::1]:9000", None),
        ("https://example.com", None),
    ];
    for (i, (url, expected)) in cases.iter().enumerate() {
        let o = origin(url);
        let sw = i as u64 + 1;
        let (sync, _, _, _) = engine(&[(sw, o.clone())], Parameters::default(), false);
        let got = sync
            .register(&o, SwRegistrationId(sw), "t")
            .await
            .err()
            .map(|e| e.name);
        assert_eq!(got, *expected, "{url}");
    }
    // Opaque origins cannot even be made: the caller gets a SecurityError from the conversion.
    let err = Origin::parse("data:text/html,x").unwrap_err();
    assert_eq!(
        bgsync_types::DomException::from(err).name,
        DomExceptionName::SecurityError
    );
}

#[tokio::test]
async fn tag_sizes_and_odd_characters() {
    let a = origin("https://a.example");
    let (sync, _, _, _) = engine(&[(1, a.clone())], Parameters::default(), false);
    let sw = SwRegistrationId(1);
    for tag in [
        Tag::from(""),
        Tag::from("x".repeat(10_240)),
        Tag::from("a\0b"),
        Tag::from_utf16(vec![0xD800]),
        Tag::from_utf16(vec![0xDC00]),
        Tag::from("📧"),
    ] {
        sync.register(&a, sw, tag.clone())
            .await
            .unwrap_or_else(|e| panic!("{tag:?}: {e}"));
    }
    let e = sync
        .register(&a, sw, "x".repeat(10_241).as_str())
        .await
        .unwrap_err();
    assert_eq!(e.name, DomExceptionName::InvalidAccessError);
    let e = sync
        .register(
            &a,
            sw,
            Tag::from(format!("{}\u{1F4E7}", "x".repeat(10_237))),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.name,
        DomExceptionName::InvalidAccessError,
        "10,241 bytes with an astral character"
    );
    assert_eq!(sync.get_tags(&a, sw).await.unwrap().len(), 6);
}

#[tokio::test]
async fn a_flood_of_registrations_stops_at_the_per_origin_cap() {
    let a = origin("https://a.example");
    let b = origin("https://b.example");
    assert_eq!(
        Parameters::default().max_registrations_per_origin,
        Some(1_000),
        "the documented default"
    );
    let params = Parameters {
        max_registrations_per_origin: Some(50_000),
        max_bytes_per_origin: None,
        max_bytes_total: None,
        ..Parameters::default()
    };
    let (sync, _, _, store) = engine(
        &[(1, a.clone()), (2, a.clone()), (3, b.clone())],
        params,
        false,
    );
    // Waves of 5,000 calls nobody waits for one by one: each wave fits the call queue
    // (beyond it calls are refused as busy; tests/backpressure.rs).
    let mut ok = 0;
    let mut quota = 0;
    for wave in 0..20u32 {
        let replies: Vec<_> = (wave * 5_000..(wave + 1) * 5_000)
            .map(|i| {
                sync.register_with_reply(
                    &a,
                    SwRegistrationId(1 + u64::from(i % 2)),
                    format!("t{i}"),
                )
            })
            .collect();
        for r in replies {
            match r.recv().unwrap() {
                Ok(()) => ok += 1,
                Err(e) if e.name == DomExceptionName::QuotaExceededError => quota += 1,
                Err(e) => panic!("{e}"),
            }
        }
    }
    assert_eq!((ok, quota), (50_000, 50_000));
    assert_eq!(store.snapshot().len(), 50_000);
    // Another origin is not affected by A's flood.
    sync.register(&b, SwRegistrationId(3), "t").await.unwrap();
    assert!(
        store.commit_count() < 100_000,
        "group commit: {} commits",
        store.commit_count()
    );
}

#[tokio::test]
async fn a_worker_that_never_settles_is_cut_off_every_time_and_told_its_last_chance() {
    let a = origin("https://a.example");
    let (sync, host, clock, _) = engine(&[(1, a.clone())], Parameters::default(), true);
    host.set_default(Behaviour::Hold);
    sync.register(&a, SwRegistrationId(1), "hang")
        .await
        .unwrap();
    sync.settle().await;
    for _ in 0..4 {
        // Step through every deadline and back-off the engine asks for.
        for _ in 0..10 {
            let next = sync.status_blocking().unwrap().next_timer;
            let Some(t) = next else { break };
            clock.set(t);
            sync.settle().await;
        }
        clock.advance(Duration::from_secs(3_600));
        sync.settle().await;
    }
    let fired = host.fired();
    assert_eq!(
        fired.iter().map(|e| e.last_chance).collect::<Vec<_>>(),
        [false, false, true]
    );
    assert_eq!(
        host.terminated().len(),
        3,
        "each attempt was cut off at the time limit"
    );
    assert!(sync
        .get_tags(&a, SwRegistrationId(1))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_storm_from_many_origins_with_the_network_flapping() {
    let origins: Vec<(u64, Origin)> = (0..40u64)
        .map(|i| (i + 1, origin(&format!("https://o{i}.example"))))
        .collect();
    let (sync, host, clock, _) = engine(&origins, Parameters::default(), true);
    host.set_default(Behaviour::Settle(bgsync::DispatchOutcome::Rejected));
    let mut replies = Vec::new();
    let mut tag_replies = Vec::new();
    for round in 0..50u64 {
        sync.network_changed(round % 3 != 0);
        for (sw, o) in &origins {
            replies.push(sync.register_with_reply(
                o,
                SwRegistrationId(*sw),
                format!("r{}", round % 7),
            ));
            tag_replies.push(sync.get_tags_with_reply(o, SwRegistrationId(*sw)));
            // Now and then, someone else's id.
            let other = SwRegistrationId((sw % 40) + 1);
            if other.0 != *sw {
                replies.push(sync.register_with_reply(o, other, "x"));
            }
        }
        clock.advance(Duration::from_secs(61));
    }
    let mut security = 0;
    for r in replies {
        match r.recv().expect("every call is answered") {
            Ok(()) => {}
            Err(e) if e.name == DomExceptionName::SecurityError => security += 1,
            Err(e) => panic!("unexpected refusal {e}"),
        }
    }
    assert!(security > 0);
    for r in tag_replies {
        let tags = r.recv().unwrap().unwrap();
        assert!(
            tags.len() <= 7 && tags.windows(2).all(|w| w[0] < w[1]),
            "{tags:?}"
        );
    }
    sync.network_changed(true);
    for _ in 0..200 {
        match sync.status_blocking().unwrap().next_timer {
            Some(t) => {
                clock.set(t);
                sync.settle().await;
            }
            None => break,
        }
    }
    // Everything ran out of attempts: nothing is left, and no event was fired while offline
    // beyond what the flapping allowed.
    for (sw, o) in &origins {
        assert!(sync
            .get_tags(o, SwRegistrationId(*sw))
            .await
            .unwrap()
            .is_empty());
    }
    assert!(!host.fired().is_empty());
}
