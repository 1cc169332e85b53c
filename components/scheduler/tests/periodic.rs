//! Periodic Background Sync in the core: Chromium's schedule (intervals snapped to the
//! engagement penalty × 12 h, one round per origin per 12 h with coalescing), retries, what
//! never removes a registration and what does, and durability.

mod common;

use std::time::Duration;

use bgsync_scheduler::{
    DispatchOutcome, Engagement, PeriodicRegisterCall, RegisterContext, Response,
};
use bgsync_store::RegistrationStore;
use bgsync_types::{
    DomExceptionName, PermissionState, RequestId, StorageKey, SwRegistrationId, SyncKind, Tag,
};
use common::{origin, Harness};

const H: u64 = 60 * 60 * 1000;

fn call(
    h: &Harness,
    tag: &str,
    min_interval_ms: u64,
    engagement: Engagement,
) -> PeriodicRegisterCall {
    let a = origin("https://a.example");
    let _ = h;
    PeriodicRegisterCall {
        caller: StorageKey::new(a.clone()),
        sw: SwRegistrationId(1),
        tag: Tag::from(tag),
        min_interval: Duration::from_millis(min_interval_ms),
        context: RegisterContext::ready(a),
        engagement,
    }
}

fn register(h: &mut Harness, tag: &str, min_interval_ms: u64, engagement: Engagement) -> RequestId {
    let request = RequestId(1_000_000 + h.seen.len() as u64);
    let c = call(h, tag, min_interval_ms, engagement);
    h.core.periodic_register(h.now, request, c);
    h.run();
    request
}

/// getTags() of the periodic registrations of service worker registration 1.
fn tags(h: &mut Harness) -> Vec<String> {
    let request = RequestId(2_000_000 + h.seen.len() as u64);
    let key = StorageKey::new(origin("https://a.example"));
    h.core
        .periodic_get_tags(h.now, request, &key, SwRegistrationId(1), Some(&key));
    h.run();
    match h.result(request) {
        Some(Ok(Response::Tags(t))) => t.iter().map(Tag::to_string).collect(),
        other => panic!("getTags gave {other:?}"),
    }
}

#[test]
fn never_fires_at_registration_then_every_snapped_interval() {
    let mut h = Harness::new();
    let r = register(&mut h, "news", 0, Engagement::High);
    h.assert_resolved(r);
    assert!(h.dispatched().is_empty(), "no event at registration");
    h.advance(12 * H - 1);
    assert!(h.dispatched().is_empty(), "not before 12 h");
    h.advance(1);
    let d = h.last_dispatch();
    assert_eq!(
        (d.kind, d.tag.to_string(), d.last_chance),
        (SyncKind::Periodic, "news".into(), false)
    );
    h.complete(&d, DispatchOutcome::Fulfilled);
    h.advance(12 * H);
    assert_eq!(h.dispatched().len(), 2, "again 12 h after the last fire");
    let d = h.last_dispatch();
    h.complete(&d, DispatchOutcome::Fulfilled);
    assert_eq!(tags(&mut h), ["news"], "success keeps it");
}

#[test]
fn min_interval_snaps_up_to_a_multiple_of_the_engagement_penalty_times_12_hours() {
    for (engagement, asked, fires_at) in [
        (Engagement::High, 13 * H, 24 * H),
        (Engagement::High, 24 * H, 24 * H),
        (Engagement::Medium, 13 * H, 24 * H),
        (Engagement::Low, 25 * H, 48 * H),
        (Engagement::Minimal, 1, 36 * H),
    ] {
        let mut h = Harness::new();
        register(&mut h, "t", asked, engagement);
        h.advance(fires_at - 1);
        assert!(h.dispatched().is_empty(), "{engagement:?} {asked}: early");
        h.advance(1);
        assert_eq!(
            h.dispatched().len(),
            1,
            "{engagement:?} {asked}: at {fires_at}"
        );
    }
}

#[test]
fn an_origins_registrations_due_within_12_hours_fire_together() {
    let mut h = Harness::new();
    register(&mut h, "a", 12 * H, Engagement::High);
    register(&mut h, "b", 24 * H, Engagement::High);
    h.advance(12 * H);
    let tags: Vec<String> = h.dispatched().iter().map(|d| d.tag.to_string()).collect();
    assert_eq!(
        tags,
        ["a", "b"],
        "b (due at 24 h) comes with a's round at 12 h"
    );
}

#[test]
fn no_engagement_suspends_and_engagement_revives() {
    let mut h = Harness::new();
    register(&mut h, "t", 0, Engagement::None);
    h.advance(100 * H);
    assert!(h.dispatched().is_empty(), "suspended");
    h.core
        .set_engagement(h.now, &origin("https://a.example"), Engagement::High);
    h.run();
    assert_eq!(h.dispatched().len(), 1, "due long ago: fires on revival");
}

#[test]
fn failures_retry_with_the_one_shot_back_off_then_return_to_the_interval() {
    let mut h = Harness::new();
    register(&mut h, "t", 0, Engagement::High);
    h.advance(12 * H);
    for (n, wait) in [(1, 5 * 60_000), (2, 15 * 60_000)] {
        let d = h.last_dispatch();
        h.complete(&d, DispatchOutcome::Rejected);
        h.advance(wait - 1);
        assert_eq!(h.dispatched().len(), n, "retry {n} not early");
        h.advance(1);
        assert_eq!(h.dispatched().len(), n + 1, "retry {n} on time");
    }
    let d = h.last_dispatch();
    h.complete(&d, DispatchOutcome::Rejected);
    let done = h.now.0;
    h.advance(12 * H - 1);
    assert_eq!(
        h.dispatched().len(),
        3,
        "retries exhausted: back on the interval"
    );
    h.advance(1);
    assert_eq!(h.dispatched().len(), 4);
    assert_eq!(h.now.0 - done, 12 * H);
    assert_eq!(tags(&mut h), ["t"], "failures never remove it");
}

#[test]
fn offline_holds_events_until_online_and_unregister_stops_them() {
    let mut h = Harness::new();
    register(&mut h, "t", 0, Engagement::High);
    h.set_online(false);
    h.advance(13 * H);
    assert!(h.dispatched().is_empty());
    h.set_online(true);
    assert_eq!(h.dispatched().len(), 1, "fires once online");
    let d = h.last_dispatch();
    h.complete(&d, DispatchOutcome::Fulfilled);
    let req = RequestId(77);
    let key = StorageKey::new(origin("https://a.example"));
    h.core.periodic_unregister(
        h.now,
        req,
        &key,
        SwRegistrationId(1),
        Tag::from("t"),
        Some(&key),
    );
    h.run();
    assert_eq!(h.result(req), Some(Ok(Response::Registered)));
    h.advance(48 * H);
    assert_eq!(h.dispatched().len(), 1, "no event after unregister");
    assert!(h.store.snapshot().is_empty(), "the removal is written");
    // Unregistering an unknown tag resolves too.
    h.core.periodic_unregister(
        h.now,
        RequestId(78),
        &key,
        SwRegistrationId(1),
        Tag::from("never"),
        Some(&key),
    );
    h.run();
    assert_eq!(h.result(RequestId(78)), Some(Ok(Response::Registered)));
}

#[test]
fn refusals_and_a_revoked_permission() {
    let mut h = Harness::new();
    let mut c = call(&h, "t", 0, Engagement::High);
    c.context.permission = PermissionState::Prompt;
    h.core.periodic_register(h.now, RequestId(1), c);
    let mut c = call(&h, "t", 0, Engagement::High);
    c.context.has_active_worker = false;
    h.core.periodic_register(h.now, RequestId(2), c);
    let mut c = call(&h, "t", 0, Engagement::High);
    c.context.has_window_client = false;
    h.core.periodic_register(h.now, RequestId(3), c);
    h.run();
    assert_eq!(h.rejection(RequestId(1)), DomExceptionName::NotAllowedError);
    assert_eq!(
        h.rejection(RequestId(2)),
        DomExceptionName::InvalidStateError
    );
    assert_eq!(
        h.rejection(RequestId(3)),
        DomExceptionName::InvalidAccessError
    );
    register(&mut h, "kept-until-revoked", 0, Engagement::High);
    assert_eq!(h.store.snapshot().len(), 1);
    h.core
        .set_periodic_permission(h.now, &origin("https://a.example"), PermissionState::Denied);
    h.run();
    assert!(h.store.snapshot().is_empty(), "revoking removes, durably");
    h.advance(24 * H);
    assert!(h.dispatched().is_empty());
}

#[test]
fn a_restart_keeps_the_next_fire_time() {
    let mut h = Harness::new();
    register(&mut h, "t", 13 * H, Engagement::High);
    h.advance(5 * H);
    let stored = h.store.load_all().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].kind, SyncKind::Periodic);
    let mut h2 = Harness::new();
    h2.now = h.now;
    h2.core.restore(h2.now, stored);
    h2.run();
    h2.advance(19 * H - 1);
    assert!(
        h2.dispatched().is_empty(),
        "not before 24 h from registration"
    );
    h2.advance(1);
    assert_eq!(h2.dispatched().len(), 1, "at 24 h, as before the restart");
}

#[test]
fn the_browser_is_woken_for_periodic_rounds_at_most_once_per_12_hours_but_retries_are_not_held() {
    for outcome in [DispatchOutcome::Fulfilled, DispatchOutcome::Rejected] {
        let mut h = Harness::new();
        register(&mut h, "a", 0, Engagement::High);
        assert_eq!(h.core.wake_up_time(), Some(bgsync_types::Timestamp(12 * H)));
        // Another origin's registration, due at 13 h.
        h.advance(H);
        let b = origin("https://b.example");
        h.core.periodic_register(
            h.now,
            RequestId(9),
            PeriodicRegisterCall {
                caller: StorageKey::new(b.clone()),
                sw: SwRegistrationId(2),
                tag: Tag::from("b"),
                min_interval: Duration::from_millis(0),
                context: RegisterContext::ready(b),
                engagement: Engagement::High,
            },
        );
        h.run();
        h.advance(11 * H);
        let d = h.last_dispatch();
        assert_eq!(d.tag, Tag::from("a"), "a's round at 12 h");
        h.complete(&d, outcome);
        let expected = if outcome == DispatchOutcome::Rejected {
            // a's retry, 5 minutes after its failure, wakes the browser then.
            12 * H + 5 * 60_000
        } else {
            // b is due at 13 h (and fires then if the browser is running), but the browser
            // is not woken for a round until 12 h after the last one.
            24 * H
        };
        assert_eq!(
            h.core.wake_up_time(),
            Some(bgsync_types::Timestamp(expected)),
            "{outcome:?}"
        );
        assert_eq!(
            h.core.poll_timeout(),
            Some(bgsync_types::Timestamp(expected.min(13 * H)))
        );
    }
}

/// Found by the differential (a failing store): a new `minInterval` whose write fails is undone,
/// and the registration stays (it used to be taken out of memory, then came back from the store
/// at the next start).
#[test]
fn a_failed_interval_update_keeps_the_registration_and_its_old_interval() {
    let mut h = Harness::new();
    let first = register(&mut h, "t", 13 * H, Engagement::High);
    assert!(matches!(h.result(first), Some(Ok(_))));
    h.store.faults().fail_next_commits(1);
    let update = register(&mut h, "t", 48 * H, Engagement::High);
    assert_eq!(
        h.result(update).and_then(Result::err).map(|e| e.name),
        Some(DomExceptionName::UnknownError)
    );
    assert_eq!(tags(&mut h), ["t"], "still registered");
    assert_eq!(
        h.core.stored_registrations(),
        h.store.load_all().unwrap(),
        "memory matches the store"
    );
    h.advance(24 * H);
    assert_eq!(h.dispatched().len(), 1, "fires on its old interval (24 h)");
}

/// Found by the differential: a shorter `minInterval` takes effect once it is durable, so one
/// whose write fails never fires the registration early.
#[test]
fn a_shorter_interval_that_fails_to_be_written_fires_nothing() {
    let mut h = Harness::new();
    register(&mut h, "t", 48 * H, Engagement::High);
    h.advance(30 * H);
    h.store.faults().fail_next_commits(1);
    let update = register(&mut h, "t", 0, Engagement::High);
    assert_eq!(
        h.result(update).and_then(Result::err).map(|e| e.name),
        Some(DomExceptionName::UnknownError)
    );
    h.advance(1);
    assert!(h.dispatched().is_empty(), "not at 30 h");
    h.advance(18 * H);
    assert_eq!(h.dispatched().len(), 1, "at 48 h, its interval");
}
