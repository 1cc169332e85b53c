//! The one-shot algorithms of the spec and Chromium's parameters, each pinned by a test, on
//! virtual time.

mod common;

use std::time::Duration;

use bgsync_scheduler::{
    DispatchOutcome, LogEvent, NextStep, Parameters, RegisterContext, RegistrationState, Response,
};
use bgsync_store::{RegistrationStore, StoreOp};
use bgsync_types::{DomExceptionName, PermissionState, SwRegistrationId, Tag, Timestamp};
use common::{origin, Harness, Seen, MIN};

#[test]
fn register_resolves_then_fires_and_success_removes_it() {
    let mut h = Harness::new();
    let a = origin("https://mail.example");
    let req = h.register(&a, 1, "send-mail");
    // The promise resolves before the event is dispatched.
    assert!(matches!(&h.seen[0], Seen::Settled(r, Ok(Response::Registered)) if *r == req));
    assert!(matches!(&h.seen[1], Seen::Dispatched(d) if d.tag == Tag::from("send-mail")));
    let d = h.last_dispatch();
    assert!(!d.last_chance);
    assert_eq!(d.origin, a);
    assert_eq!(d.time_limit, Duration::from_secs(180));
    assert_eq!(h.store.snapshot().len(), 1);
    h.complete(&d, DispatchOutcome::Fulfilled);
    assert_eq!(h.get_tags(&a, 1).unwrap(), Vec::<String>::new());
    assert!(h.store.snapshot().is_empty());
    assert!(h.core.is_empty());
}

#[test]
fn register_is_not_resolved_until_the_write_is_acknowledged() {
    let mut h = Harness::new();
    h.auto_ack = false;
    let a = origin("https://mail.example");
    let req = h.register(&a, 1, "send-mail");
    assert_eq!(h.result(req), None, "resolved before durable");
    assert!(h.dispatched().is_empty());
    assert_eq!(h.get_tags(&a, 1).unwrap(), Vec::<String>::new());
    h.ack_held();
    h.assert_resolved(req);
    assert_eq!(h.dispatched().len(), 1);
}

/// A driver answers each caller of a group commit as its write is acknowledged
/// (`poll_settlement`), before the next write's acknowledgement, without taking any other effect
/// out of order: online, the first registration's event follows its answer, and the answers
/// after it wait for that event.
#[test]
fn a_settlement_is_taken_as_soon_as_it_is_known_and_nothing_else_early() {
    let mut h = Harness::new();
    h.auto_ack = false;
    let a = origin("https://mail.example");
    let reqs: Vec<_> = (0..3)
        .map(|i| h.register(&a, 1, &format!("t{i}")))
        .collect();
    let held = std::mem::take(&mut h.held);
    assert_eq!(held.len(), 3);
    let ack = |h: &mut Harness, i: usize| {
        let result = h.store.commit(&held[i].1).map_err(|e| e.to_string());
        h.core.persist_completed(h.now, held[i].0, result);
    };
    // Offline: each acknowledgement's answer is there at once, and only it.
    h.set_online(false);
    ack(&mut h, 0);
    match h.core.poll_settlement() {
        Some((r, Ok(Response::Registered))) => assert_eq!(r, reqs[0]),
        other => panic!("expected the first caller's answer, got {other:?}"),
    }
    assert!(h.core.poll_settlement().is_none(), "one write, one answer");
    // Online: t1's answer comes first, then its event, which poll_settlement leaves, and with
    // it t2's answer, for poll_effect to give in order.
    h.core.set_online(h.now, true);
    ack(&mut h, 1);
    assert!(matches!(h.core.poll_settlement(), Some((r, Ok(_))) if r == reqs[1]));
    ack(&mut h, 2);
    assert!(
        h.core.poll_settlement().is_none(),
        "an event is in front of the answer"
    );
    match h.core.poll_effect() {
        Some(bgsync_scheduler::Effect::Dispatch(d)) => assert_eq!(d.tag, Tag::from("t1")),
        other => panic!("expected t1's event, got {other:?}"),
    }
    assert_eq!(h.result(reqs[2]), None, "t2's answer is still queued");
    h.run();
    h.assert_resolved(reqs[2]);
    let mut fired: Vec<String> = h.dispatched().iter().map(|d| d.tag.to_string()).collect();
    fired.sort();
    assert_eq!(fired, ["t0", "t2"], "the others fire, each once");
}

#[test]
fn concurrent_registers_can_share_one_commit() {
    let mut h = Harness::new();
    h.auto_ack = false;
    let a = origin("https://mail.example");
    let reqs: Vec<_> = (0..64)
        .map(|i| h.register(&a, 1, &format!("t{i}")))
        .collect();
    assert_eq!(h.held.len(), 64);
    h.ack_held();
    for r in reqs {
        h.assert_resolved(r);
    }
    assert_eq!(h.store.commit_count(), 1);
    assert_eq!(h.store.snapshot().len(), 64);
}

#[test]
fn a_failed_write_rejects_with_unknown_error_and_leaves_no_trace() {
    let mut h = Harness::new();
    let a = origin("https://mail.example");
    let kept = h.register(&a, 1, "kept");
    h.assert_resolved(kept);
    h.store.faults().fail_next_commits(1);
    let req = h.register(&a, 1, "lost");
    assert_eq!(h.rejection(req), DomExceptionName::UnknownError);
    assert_eq!(h.get_tags(&a, 1).unwrap(), vec!["kept"]);
    assert_eq!(h.store.snapshot().len(), 1);
    assert_eq!(
        h.dispatched().len(),
        1,
        "the failed registration must not fire"
    );
    // The store recovered: the same tag registers fine now.
    let again = h.register(&a, 1, "lost");
    h.assert_resolved(again);
}

#[test]
fn back_off_is_5_then_15_minutes_from_the_end_of_the_failed_attempt() {
    let mut h = Harness::new();
    let a = origin("https://mail.example");
    h.register(&a, 1, "send-mail");
    let first = h.last_dispatch();
    // The attempt runs for 2 minutes before it rejects; the back-off starts when it ends.
    h.advance(2 * MIN);
    h.complete(&first, DispatchOutcome::Rejected);
    assert_eq!(h.core.poll_timeout(), Some(Timestamp(7 * MIN)));
    assert_eq!(
        h.core
            .registration_state(SwRegistrationId(1), &Tag::from("send-mail")),
        Some(RegistrationState::Waiting)
    );
    h.advance(5 * MIN - 1);
    assert_eq!(
        h.dispatched().len(),
        1,
        "fired before the 5 minute back-off ended"
    );
    h.advance(1);
    assert_eq!(h.dispatched().len(), 2);
    let second = h.last_dispatch();
    h.complete(&second, DispatchOutcome::Rejected);
    assert_eq!(h.core.poll_timeout(), Some(Timestamp(22 * MIN)));
    h.advance(15 * MIN - 1);
    assert_eq!(
        h.dispatched().len(),
        2,
        "fired before the 15 minute back-off ended"
    );
    h.advance(1);
    assert_eq!(h.dispatched().len(), 3);
    // The store followed: attempts and next-fire were committed with each failure.
    let stored = h.store.snapshot();
    assert_eq!(stored[0].attempts, 2);
    assert_eq!(stored[0].next_fire, Timestamp(22 * MIN));
}

#[test]
fn last_chance_is_false_false_true_and_the_third_failure_drops_it() {
    let mut h = Harness::new();
    let a = origin("https://mail.example");
    h.register(&a, 1, "send-mail");
    let mut flags = Vec::new();
    for _ in 0..3 {
        let d = h.last_dispatch();
        flags.push(d.last_chance);
        h.complete(&d, DispatchOutcome::Rejected);
        h.advance(60 * MIN);
    }
    assert_eq!(flags, [false, false, true]);
    assert_eq!(h.dispatched().len(), 3);
    assert!(h.core.is_empty());
    assert!(h.store.snapshot().is_empty());
    let log = h.core.take_log();
    assert!(log.iter().any(|e| matches!(
        e.event,
        LogEvent::Completed {
            next: NextStep::GaveUp,
            outcome: DispatchOutcome::Rejected
        }
    )));
}

#[test]
fn parameters_are_overridable() {
    let params = Parameters {
        max_attempts: 5,
        initial_retry_delay: Duration::from_secs(10),
        retry_delay_factor: 2,
        ..Parameters::default()
    };
    let mut h = Harness::with_params(params);
    let a = origin("https://mail.example");
    h.register(&a, 1, "t");
    let mut flags = Vec::new();
    let mut delays = Vec::new();
    for _ in 0..5 {
        let d = h.last_dispatch();
        flags.push(d.last_chance);
        h.complete(&d, DispatchOutcome::Rejected);
        if let Some(t) = h.core.poll_timeout() {
            delays.push(t.0 - h.now.0);
            h.advance(t.0 - h.now.0);
        }
    }
    assert_eq!(flags, [false, false, false, false, true]);
    assert_eq!(delays, [10_000, 20_000, 40_000, 80_000]);
}

#[test]
fn reregister_while_firing_runs_once_more_with_attempts_reset() {
    let mut h = Harness::new();
    let a = origin("https://mail.example");
    h.register(&a, 1, "t");
    let first = h.last_dispatch();
    h.complete(&first, DispatchOutcome::Rejected);
    h.advance(5 * MIN);
    let second = h.last_dispatch();
    assert_eq!(
        h.core.attempts(SwRegistrationId(1), &Tag::from("t")),
        Some(1)
    );
    let req = h.register(&a, 1, "t");
    h.assert_resolved(req);
    assert_eq!(
        h.core
            .registration_state(SwRegistrationId(1), &Tag::from("t")),
        Some(RegistrationState::ReregisteredWhileFiring)
    );
    // Even a success runs once more: the page asked for a sync after this one started.
    h.complete(&second, DispatchOutcome::Fulfilled);
    assert_eq!(h.dispatched().len(), 3);
    let third = h.last_dispatch();
    assert!(!third.last_chance, "attempts were reset");
    assert_eq!(
        h.core.attempts(SwRegistrationId(1), &Tag::from("t")),
        Some(0)
    );
    h.complete(&third, DispatchOutcome::Fulfilled);
    assert!(h.core.is_empty());
}

#[test]
fn reregister_while_firing_then_failure_also_runs_again_at_once() {
    let mut h = Harness::new();
    let a = origin("https://mail.example");
    h.register(&a, 1, "t");
    let first = h.last_dispatch();
    h.register(&a, 1, "t");
    h.complete(&first, DispatchOutcome::Rejected);
    assert_eq!(
        h.dispatched().len(),
        2,
        "no back-off after a re-registration"
    );
    assert_eq!(h.store.snapshot()[0].attempts, 0);
}

#[test]
fn reregister_while_waiting_sets_it_pending_and_fires_at_once() {
    // The spec's register step 8.1 (Chromium keeps the back-off: docs/chromium.md).
    let mut h = Harness::new();
    let a = origin("https://mail.example");
    h.register(&a, 1, "t");
    let first = h.last_dispatch();
    h.complete(&first, DispatchOutcome::Rejected);
    h.advance(MIN);
    assert_eq!(h.dispatched().len(), 1, "waiting out its back-off");
    let req = h.register(&a, 1, "t");
    h.assert_resolved(req);
    assert_eq!(h.dispatched().len(), 2, "fired at once, online");
    assert_eq!(
        h.core.attempts(SwRegistrationId(1), &Tag::from("t")),
        Some(1),
        "the failed attempt still counts"
    );
    // Offline, it becomes pending and waits for the network, not for the old back-off.
    let second = h.last_dispatch();
    h.complete(&second, DispatchOutcome::Rejected);
    h.set_online(false);
    let req = h.register(&a, 1, "t");
    h.assert_resolved(req);
    assert_eq!(
        h.core
            .registration_state(SwRegistrationId(1), &Tag::from("t")),
        Some(RegistrationState::Pending)
    );
    h.set_online(true);
    assert_eq!(h.dispatched().len(), 3);
}

#[test]
fn reregister_while_pending_changes_nothing() {
    let mut h = Harness::new();
    h.set_online(false);
    let a = origin("https://mail.example");
    h.register(&a, 1, "t");
    let req = h.register(&a, 1, "t");
    h.assert_resolved(req);
    assert_eq!(
        h.store.commit_count(),
        1,
        "a pending re-registration writes nothing"
    );
    h.set_online(true);
    assert_eq!(h.dispatched().len(), 1, "one registration, one event");
}

#[test]
fn going_online_fires_every_pending_registration_across_origins() {
    let mut h = Harness::new();
    h.set_online(false);
    let a = origin("https://a.example");
    let b = origin("https://b.example");
    let c = origin("http://localhost:8080");
    h.register(&a, 1, "x");
    h.register(&a, 1, "y");
    h.register(&b, 2, "x");
    h.register(&c, 3, "z");
    assert!(h.dispatched().is_empty(), "nothing fires offline");
    h.set_online(true);
    let mut fired: Vec<(u64, String)> = h
        .dispatched()
        .iter()
        .map(|d| (d.sw.0, d.tag.to_string()))
        .collect();
    fired.sort();
    assert_eq!(
        fired,
        [
            (1, "x".into()),
            (1, "y".into()),
            (2, "x".into()),
            (3, "z".into())
        ]
    );
    // Going online again while online fires nothing new.
    h.set_online(true);
    assert_eq!(h.dispatched().len(), 4);
}

#[test]
fn a_back_off_that_ends_offline_fires_when_the_network_returns() {
    let mut h = Harness::new();
    let a = origin("https://a.example");
    h.register(&a, 1, "x");
    let first = h.last_dispatch();
    h.complete(&first, DispatchOutcome::Rejected);
    h.set_online(false);
    h.advance(10 * MIN);
    assert_eq!(h.dispatched().len(), 1);
    assert_eq!(
        h.core
            .registration_state(SwRegistrationId(1), &Tag::from("x")),
        Some(RegistrationState::Pending)
    );
    h.set_online(true);
    assert_eq!(h.dispatched().len(), 2);
    assert_eq!(
        h.core.attempts(SwRegistrationId(1), &Tag::from("x")),
        Some(1)
    );
}

#[test]
fn going_offline_does_not_touch_events_in_flight() {
    let mut h = Harness::new();
    let a = origin("https://a.example");
    h.register(&a, 1, "x");
    let d = h.last_dispatch();
    h.set_online(false);
    h.complete(&d, DispatchOutcome::Fulfilled);
    assert!(h.core.is_empty());
}

#[test]
fn timeouts_terminations_and_start_failures_each_count_as_a_failed_attempt() {
    for outcome in [
        DispatchOutcome::TimedOut,
        DispatchOutcome::WorkerTerminated,
        DispatchOutcome::WorkerFailedToStart,
        DispatchOutcome::Rejected,
    ] {
        let mut h = Harness::new();
        let a = origin("https://a.example");
        h.register(&a, 1, "x");
        let d = h.last_dispatch();
        h.advance(3 * MIN);
        h.complete(&d, outcome);
        assert_eq!(
            h.core.attempts(SwRegistrationId(1), &Tag::from("x")),
            Some(1),
            "{outcome:?}"
        );
        assert_eq!(
            h.core.poll_timeout(),
            Some(Timestamp(8 * MIN)),
            "{outcome:?}"
        );
    }
}

#[test]
fn unregistering_the_service_worker_drops_its_registrations_and_ignores_the_outcome() {
    let mut h = Harness::new();
    let a = origin("https://a.example");
    h.register(&a, 1, "x");
    h.register(&a, 1, "y");
    h.register(&a, 2, "z");
    let x = h.dispatched()[0].clone();
    assert_eq!(x.tag, Tag::from("x"));
    h.core
        .service_worker_unregistered(h.now, SwRegistrationId(1));
    h.run();
    assert!(h.seen.contains(&Seen::Abandoned(x.id)));
    assert_eq!(h.get_tags(&a, 1).unwrap(), Vec::<String>::new());
    assert_eq!(h.get_tags(&a, 2).unwrap(), vec!["z"]);
    let dispatched = h.dispatched().len();
    h.complete(&x, DispatchOutcome::Rejected);
    assert_eq!(
        h.core.poll_timeout(),
        None,
        "the ignored failure scheduled a retry"
    );
    assert_eq!(h.dispatched().len(), dispatched);
    let stored: Vec<u64> = h.store.snapshot().iter().map(|r| r.sw.0).collect();
    assert_eq!(stored, [2]);
    // The dead registration refuses new syncs.
    let req = h.register(&a, 1, "x");
    assert_eq!(h.rejection(req), DomExceptionName::InvalidStateError);
}

#[test]
fn permission_denied_stops_firing_until_granted_again() {
    let mut h = Harness::new();
    let a = origin("https://a.example");
    let b = origin("https://b.example");
    h.set_online(false);
    h.register(&a, 1, "x");
    h.register(&b, 2, "x");
    h.core.set_permission(h.now, &a, PermissionState::Denied);
    h.set_online(true);
    let fired: Vec<u64> = h.dispatched().iter().map(|d| d.sw.0).collect();
    assert_eq!(fired, [2], "a denied origin fired");
    // A denied origin cannot register, and the existing registration stays.
    let mut ctx = RegisterContext::ready(a.clone());
    ctx.permission = PermissionState::Denied;
    let req = h.register_with(&a, 1, Tag::from("y"), ctx);
    assert_eq!(h.rejection(req), DomExceptionName::NotAllowedError);
    assert_eq!(h.get_tags(&a, 1).unwrap(), vec!["x"]);
    h.core.set_permission(h.now, &a, PermissionState::Granted);
    h.run();
    let fired: Vec<u64> = h.dispatched().iter().map(|d| d.sw.0).collect();
    assert_eq!(fired, [2, 1]);
}

#[test]
fn a_back_off_that_ends_while_denied_waits_for_the_grant() {
    let mut h = Harness::new();
    let a = origin("https://a.example");
    h.register(&a, 1, "x");
    let d = h.last_dispatch();
    h.complete(&d, DispatchOutcome::Rejected);
    h.core.set_permission(h.now, &a, PermissionState::Denied);
    h.advance(30 * MIN);
    assert_eq!(h.dispatched().len(), 1);
    h.core.set_permission(h.now, &a, PermissionState::Granted);
    h.run();
    assert_eq!(h.dispatched().len(), 2);
}

#[test]
fn refusals_carry_the_named_exception() {
    let a = origin("https://a.example");
    let b = origin("https://b.example");
    let cases: Vec<(
        &str,
        RegisterContext,
        Tag,
        bgsync_types::Origin,
        DomExceptionName,
    )> = vec![
        (
            "no active worker",
            RegisterContext {
                has_active_worker: false,
                ..RegisterContext::ready(a.clone())
            },
            Tag::from("t"),
            a.clone(),
            DomExceptionName::InvalidStateError,
        ),
        (
            "no such registration",
            RegisterContext {
                registration_key: None,
                ..RegisterContext::ready(a.clone())
            },
            Tag::from("t"),
            a.clone(),
            DomExceptionName::InvalidStateError,
        ),
        (
            "no window client",
            RegisterContext {
                has_window_client: false,
                ..RegisterContext::ready(a.clone())
            },
            Tag::from("t"),
            a.clone(),
            DomExceptionName::InvalidAccessError,
        ),
        (
            "tag too long",
            RegisterContext::ready(a.clone()),
            Tag::from("x".repeat(10_241)),
            a.clone(),
            DomExceptionName::InvalidAccessError,
        ),
        (
            "permission denied",
            RegisterContext {
                permission: PermissionState::Denied,
                ..RegisterContext::ready(a.clone())
            },
            Tag::from("t"),
            a.clone(),
            DomExceptionName::NotAllowedError,
        ),
        (
            "insecure origin",
            RegisterContext::ready(origin("http://a.example")),
            Tag::from("t"),
            origin("http://a.example"),
            DomExceptionName::SecurityError,
        ),
        (
            "another origin's registration",
            RegisterContext::ready(b.clone()),
            Tag::from("t"),
            a.clone(),
            DomExceptionName::SecurityError,
        ),
    ];
    for (what, ctx, tag, caller, expected) in cases {
        let mut h = Harness::new();
        let req = h.register_with(&caller, 1, tag, ctx);
        let Some(Err(e)) = h.result(req) else {
            panic!("{what}: not rejected")
        };
        assert_eq!(e.name, expected, "{what}: {}", e.message);
        assert!(!e.message.is_empty());
        assert!(h.store.snapshot().is_empty(), "{what}: wrote to the store");
        assert!(h.dispatched().is_empty(), "{what}: fired");
    }
}

#[test]
fn checks_run_in_the_specs_order() {
    // The spec checks the permission (step 3) before the window (steps 4-6); Chromium the
    // other way round (docs/chromium.md).
    let a = origin("https://a.example");
    let mut h = Harness::new();
    // No worker and no window and denied: the worker check wins.
    let ctx = RegisterContext {
        registration_key: Some(a.clone().into()),
        has_active_worker: false,
        has_window_client: false,
        permission: PermissionState::Denied,
    };
    let r = h.register_with(&a, 1, Tag::from("t"), ctx.clone());
    assert_eq!(h.rejection(r), DomExceptionName::InvalidStateError);
    let r = h.register_with(
        &a,
        1,
        Tag::from("t"),
        RegisterContext {
            has_active_worker: true,
            ..ctx.clone()
        },
    );
    assert_eq!(h.rejection(r), DomExceptionName::NotAllowedError);
    let r = h.register_with(
        &a,
        1,
        Tag::from("t"),
        RegisterContext {
            has_active_worker: true,
            permission: PermissionState::Prompt,
            ..ctx
        },
    );
    assert_eq!(
        h.rejection(r),
        DomExceptionName::InvalidAccessError,
        "'prompt' is not disabled: the window check comes next"
    );
}

#[test]
fn another_origins_registration_is_refused_without_touching_its_data() {
    let mut h = Harness::new();
    let a = origin("https://a.example");
    let evil = origin("https://evil.example");
    h.set_online(false);
    h.register(&a, 1, "secret");
    let before = h.store.snapshot();
    // The embedder says sw 1 belongs to A; evil calls with it anyway.
    let r = h.register_with(
        &evil,
        1,
        Tag::from("secret"),
        RegisterContext::ready(a.clone()),
    );
    assert_eq!(h.rejection(r), DomExceptionName::SecurityError);
    // Even an embedder that wrongly vouches for evil cannot reach A's registration.
    let r = h.register_with(
        &evil,
        1,
        Tag::from("secret"),
        RegisterContext::ready(evil.clone()),
    );
    assert_eq!(h.rejection(r), DomExceptionName::SecurityError);
    let r = h.get_tags(&evil, 1);
    assert_eq!(r.unwrap_err().name, DomExceptionName::SecurityError);
    assert_eq!(h.store.snapshot(), before);
    assert_eq!(h.get_tags(&a, 1).unwrap(), vec!["secret"]);
    assert_eq!(
        h.core
            .registration_state(SwRegistrationId(1), &Tag::from("secret")),
        Some(RegistrationState::Pending)
    );
}

#[test]
fn tags_are_utf16_and_capped_at_10240_utf8_bytes() {
    let mut h = Harness::new();
    h.set_online(false);
    let a = origin("https://a.example");
    let hi = Tag::from_utf16(vec![0xD800]);
    let lo = Tag::from_utf16(vec![0xDC00]);
    h.register_with(&a, 1, hi.clone(), RegisterContext::ready(a.clone()));
    h.register_with(&a, 1, lo.clone(), RegisterContext::ready(a.clone()));
    assert_eq!(h.core.len(), 2, "\\uD800 and \\uDC00 are two tags");
    // Exactly 10,240 bytes is accepted, 10,241 refused; a lone surrogate counts 3 bytes.
    let ok = h.register(&a, 1, &"x".repeat(10_240));
    h.assert_resolved(ok);
    let mut units: Vec<u16> = "x".repeat(10_237).encode_utf16().collect();
    units.push(0xDBFF);
    let ok = h.register_with(
        &a,
        1,
        Tag::from_utf16(units.clone()),
        RegisterContext::ready(a.clone()),
    );
    h.assert_resolved(ok);
    units.insert(0, u16::from(b'x'));
    let too_long = h.register_with(
        &a,
        1,
        Tag::from_utf16(units),
        RegisterContext::ready(a.clone()),
    );
    assert_eq!(h.rejection(too_long), DomExceptionName::InvalidAccessError);
    let too_long = h.register(&a, 1, &"é".repeat(5_121));
    assert_eq!(h.rejection(too_long), DomExceptionName::InvalidAccessError);
    // The empty tag is valid; a NUL is just a character.
    h.register_ok(&a, 1, "");
    h.register_ok(&a, 1, "a\0b");
    // The store keeps the code units as they were.
    let stored: Vec<Tag> = h.store.snapshot().into_iter().map(|r| r.tag).collect();
    assert!(stored.contains(&hi) && stored.contains(&lo));
}

#[test]
fn get_tags_lists_every_state_in_registration_order() {
    let mut h = Harness::new();
    let a = origin("https://a.example");
    h.set_online(false);
    h.register(&a, 1, "pending");
    h.set_online(true);
    // "pending" fired on the way online; fail it so it waits.
    let d = h.last_dispatch();
    h.complete(&d, DispatchOutcome::Rejected);
    h.register(&a, 1, "firing");
    let firing = h.last_dispatch();
    h.register(&a, 1, "rewired");
    h.register(&a, 1, "rewired");
    h.set_online(false);
    h.register(&a, 1, "offline");
    h.register(&a, 1, "📧");
    h.register(&a, 1, "～");
    h.register(&a, 2, "other-sw");
    let state = |h: &Harness, t: &str| {
        h.core
            .registration_state(SwRegistrationId(1), &Tag::from(t))
    };
    assert_eq!(state(&h, "pending"), Some(RegistrationState::Waiting));
    assert_eq!(state(&h, "firing"), Some(RegistrationState::Firing));
    assert_eq!(
        state(&h, "rewired"),
        Some(RegistrationState::ReregisteredWhileFiring)
    );
    assert_eq!(state(&h, "offline"), Some(RegistrationState::Pending));
    assert_eq!(
        h.get_tags(&a, 1).unwrap(),
        ["pending", "firing", "rewired", "offline", "📧", "～"]
    );
    h.complete(&firing, DispatchOutcome::Fulfilled);
    assert_eq!(
        h.get_tags(&a, 1).unwrap(),
        ["pending", "rewired", "offline", "📧", "～"]
    );
    assert_eq!(h.get_tags(&a, 2).unwrap(), ["other-sw"]);
    assert_eq!(h.get_tags(&a, 3).unwrap(), Vec::<String>::new());
}

#[test]
fn restart_keeps_attempts_and_fires_when_due() {
    let mut h = Harness::new();
    let a = origin("https://a.example");
    h.register(&a, 1, "was-firing");
    h.register(&a, 1, "was-waiting");
    let ds = h.dispatched();
    h.complete(&ds[1], DispatchOutcome::Rejected);
    h.complete(&ds[0], DispatchOutcome::Rejected);
    h.advance(5 * MIN);
    // Both are in their second attempt. "was-waiting" fails again and waits 15 minutes;
    // "was-firing" is still firing when the user agent dies.
    let ds = h.dispatched();
    let waiting = ds
        .iter()
        .rev()
        .find(|d| d.tag == Tag::from("was-waiting"))
        .unwrap()
        .clone();
    h.complete(&waiting, DispatchOutcome::Rejected);
    let records = h.store.snapshot();

    // A new user agent, 1 minute later.
    let mut h2 = Harness::new();
    h2.store = h.store.clone();
    h2.now = Timestamp(h.now.0 + MIN);
    h2.core.restore(h2.now, records);
    h2.run();
    let fired = h2.dispatched();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].tag, Tag::from("was-firing"));
    assert_eq!(
        h2.core
            .attempts(SwRegistrationId(1), &Tag::from("was-firing")),
        Some(1)
    );
    assert!(!fired[0].last_chance, "a crash is not a failed attempt");
    assert_eq!(
        h2.core
            .registration_state(SwRegistrationId(1), &Tag::from("was-waiting")),
        Some(RegistrationState::Waiting)
    );
    h2.advance(14 * MIN);
    let fired = h2.dispatched();
    assert_eq!(fired.len(), 2);
    assert!(fired[1].last_chance, "the third attempt is the last chance");
}

#[test]
fn the_wake_up_covers_events_in_flight() {
    let mut h = Harness::new();
    let a = origin("https://a.example");
    assert_eq!(h.core.wake_up_time(), None);
    h.register(&a, 1, "x");
    let d = h.last_dispatch();
    assert_eq!(h.core.wake_up_time(), Some(Timestamp(6 * MIN)));
    assert_eq!(h.core.poll_timeout(), None);
    h.complete(&d, DispatchOutcome::Rejected);
    assert_eq!(h.core.wake_up_time(), Some(Timestamp(5 * MIN)));
    h.register(&a, 1, "y");
    assert_eq!(
        h.core.wake_up_time(),
        Some(Timestamp(5 * MIN)),
        "the earlier of the two"
    );
}

#[test]
fn the_per_origin_cap_refuses_with_quota_exceeded() {
    let params = Parameters {
        max_registrations_per_origin: Some(3),
        ..Parameters::default()
    };
    let mut h = Harness::with_params(params);
    h.set_online(false);
    let a = origin("https://a.example");
    let b = origin("https://b.example");
    for t in ["1", "2", "3"] {
        h.register_ok(&a, 1, t);
    }
    let r = h.register(&a, 2, "4");
    assert_eq!(h.rejection(r), DomExceptionName::QuotaExceededError);
    // Re-registering an existing tag is not a new registration.
    h.register_ok(&a, 1, "3");
    h.register_ok(&b, 3, "1");
    h.set_online(true);
    let d = h.dispatched()[0].clone();
    h.complete(&d, DispatchOutcome::Fulfilled);
    h.register_ok(&a, 1, "4");
}

#[test]
fn a_register_during_a_completion_write_runs_after_it() {
    let mut h = Harness::new();
    let a = origin("https://a.example");
    h.register(&a, 1, "x");
    let d = h.last_dispatch();
    h.auto_ack = false;
    h.complete(&d, DispatchOutcome::Fulfilled);
    assert_eq!(h.held.len(), 1);
    assert!(matches!(h.held[0].1[0], StoreOp::Delete(_)));
    let req = h.register(&a, 1, "x");
    assert_eq!(h.result(req), None, "queued behind the removal");
    h.ack_held(); // the removal
    h.ack_held(); // the new registration
    h.assert_resolved(req);
    assert_eq!(h.dispatched().len(), 2, "a fresh registration fires again");
    assert_eq!(h.store.snapshot().len(), 1);
}

/// Found by the differential (a burst of calls meeting a write in flight): a call that waits for
/// a write on its key keeps its place in the order of registration, the order of the calls.
#[test]
fn a_register_that_waits_for_a_write_keeps_the_order_of_the_calls() {
    let mut h = Harness::new();
    let a = origin("https://a.example");
    h.register(&a, 1, "x");
    let d = h.last_dispatch();
    h.auto_ack = false;
    h.complete(&d, DispatchOutcome::Fulfilled);
    let first = h.register(&a, 1, "x");
    let second = h.register(&a, 1, "y");
    h.ack_held(); // the removal of "x" and the new "y"
    h.ack_held(); // the new "x"
    h.assert_resolved(first);
    h.assert_resolved(second);
    assert_eq!(h.get_tags(&a, 1).unwrap(), ["x", "y"]);
}

#[test]
fn the_log_reads_like_devtools() {
    let mut h = Harness::new();
    let a = origin("https://a.example");
    h.register(&a, 1, "x");
    let d = h.last_dispatch();
    h.complete(&d, DispatchOutcome::Rejected);
    h.register(&a, 1, "x");
    h.advance(5 * MIN);
    let d = h.last_dispatch();
    h.complete(&d, DispatchOutcome::Fulfilled);
    let events: Vec<LogEvent> = h.core.take_log().into_iter().map(|e| e.event).collect();
    assert_eq!(
        events,
        [
            LogEvent::Registered,
            LogEvent::Dispatched {
                last_chance: false,
                previous_attempts: 0
            },
            LogEvent::Completed {
                outcome: DispatchOutcome::Rejected,
                next: NextStep::RetryAfter(Duration::from_secs(300)),
            },
            LogEvent::Reregistered {
                state: RegistrationState::Waiting
            },
            LogEvent::Dispatched {
                last_chance: false,
                previous_attempts: 1
            },
            LogEvent::Completed {
                outcome: DispatchOutcome::Fulfilled,
                next: NextStep::Removed
            },
        ]
    );
}

#[test]
fn clearing_an_origin_removes_only_its_registrations_and_abandons_its_events() {
    let mut h = Harness::new();
    let a = origin("https://a.example");
    let b = origin("https://b.example");
    h.register(&a, 1, "x");
    h.register(&a, 2, "y");
    h.register(&b, 3, "x");
    let x = h.dispatched()[0].clone();
    h.core.clear_origin(h.now, bgsync_types::RequestId(900), &a);
    h.run();
    assert_eq!(
        h.result(bgsync_types::RequestId(900)),
        Some(Ok(Response::Cleared))
    );
    assert!(h.seen.contains(&Seen::Abandoned(x.id)));
    assert_eq!(h.get_tags(&a, 1).unwrap(), Vec::<String>::new());
    assert_eq!(h.get_tags(&a, 2).unwrap(), Vec::<String>::new());
    assert_eq!(h.get_tags(&b, 3).unwrap(), ["x"]);
    let stored: Vec<u64> = h.store.snapshot().iter().map(|r| r.sw.0).collect();
    assert_eq!(stored, [3]);
    // The origin may register again afterwards: clearing data is not unregistering.
    h.register_ok(&a, 1, "x");
}

#[test]
fn a_register_being_stored_when_the_origin_is_cleared_is_rejected_and_leaves_nothing() {
    let mut h = Harness::new();
    h.auto_ack = false;
    let a = origin("https://a.example");
    let req = h.register(&a, 1, "x");
    h.core.clear_origin(h.now, bgsync_types::RequestId(900), &a);
    h.run();
    h.ack_held(); // the Put and the DeleteOrigin, in order, in one commit
    assert_eq!(h.rejection(req), DomExceptionName::UnknownError);
    assert!(h.core.is_empty());
    assert!(h.store.snapshot().is_empty());
    assert!(h.dispatched().is_empty());
}

#[test]
fn a_failed_clear_is_reported_so_the_embedder_can_retry() {
    let mut h = Harness::new();
    let a = origin("https://a.example");
    h.set_online(false);
    h.register(&a, 1, "x");
    h.store.faults().fail_next_commits(1);
    h.core.clear_all(h.now, bgsync_types::RequestId(900));
    h.run();
    let Some(Err(e)) = h.result(bgsync_types::RequestId(900)) else {
        panic!()
    };
    assert_eq!(e.name, DomExceptionName::UnknownError);
    assert_eq!(h.store.snapshot().len(), 1);
    h.core.clear_all(h.now, bgsync_types::RequestId(901));
    h.run();
    assert_eq!(
        h.result(bgsync_types::RequestId(901)),
        Some(Ok(Response::Cleared))
    );
    assert!(h.store.snapshot().is_empty());
}
