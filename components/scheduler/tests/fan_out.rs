//! Going online with many pending registrations: each fires as the effects before it are
//! taken, so a driver settles a fan-out in rounds; any other input fires the rest first.

mod common;

use bgsync_scheduler::{DispatchOutcome, Effect, Parameters, RegistrationState};
use bgsync_store::RegistrationStore;
use bgsync_types::{SwRegistrationId, Tag, Timestamp};
use common::{origin, Harness};

fn offline_with(n: usize) -> Harness {
    let params = Parameters {
        max_registrations_per_origin: None,
        ..Default::default()
    };
    let mut h = Harness::with_params(params);
    h.set_online(false);
    let a = origin("https://a.example");
    for i in 0..n {
        h.register_ok(&a, 1, &format!("t{i}"));
    }
    h
}

fn state(h: &Harness, tag: &str) -> Option<RegistrationState> {
    h.core
        .registration_state(SwRegistrationId(1), &Tag::from(tag))
}

#[test]
fn an_outcome_taken_mid_fan_out_is_settled_before_the_later_registrations_fire() {
    let mut h = offline_with(1_000);
    h.core.set_online(h.now, true);
    // The first ten events are sent and their outcomes come back at once.
    let mut first = Vec::new();
    for _ in 0..10 {
        match h.core.poll_effect() {
            Some(Effect::Dispatch(d)) => first.push(d),
            other => panic!("expected a dispatch, got {other:?}"),
        }
    }
    assert_eq!(state(&h, "t10"), Some(RegistrationState::Pending));
    for d in &first {
        h.core
            .dispatch_completed(h.now, d.id, DispatchOutcome::Fulfilled);
    }
    // Their removals are written next, before the eleventh registration fires.
    match h.core.poll_effect() {
        Some(Effect::Persist { id, ops }) => {
            let result = h.store.commit(&ops).map_err(|e| e.to_string());
            h.core.persist_completed(h.now, id, result);
        }
        other => panic!("expected the first removal's write, got {other:?}"),
    }
    h.run();
    let later = h.dispatched();
    assert_eq!(later.len(), 990, "every other registration fires once");
    assert_eq!(later[0].tag.to_string(), "t10", "in the list's order");
    let ids: Vec<u64> = first.iter().chain(&later).map(|d| d.id.0 >> 32).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids increase in dispatch order"
    );
    for d in &later {
        h.complete(d, DispatchOutcome::Fulfilled);
    }
    assert!(h.core.is_empty());
    assert!(h.store.snapshot().is_empty());
}

#[test]
fn any_other_input_fires_every_registration_still_queued_first() {
    let mut h = offline_with(100);
    h.core.set_online(h.now, true);
    // Going offline again before any effect was taken: what going online decided stands.
    h.core.set_online(h.now, false);
    h.run();
    assert_eq!(h.dispatched().len(), 100);
    assert_eq!(state(&h, "t99"), Some(RegistrationState::Firing));

    let mut h = offline_with(100);
    h.core.set_online(h.now, true);
    // A getTags() (an input like any other) sees them all firing.
    let tags = h.get_tags(&origin("https://a.example"), 1).unwrap();
    assert_eq!(tags.len(), 100);
    assert_eq!(state(&h, "t99"), Some(RegistrationState::Firing));
    assert_eq!(h.dispatched().len(), 100);
}

#[test]
fn a_queued_registration_is_part_of_the_wake_up_and_fires_at_the_time_it_is_sent() {
    let mut h = offline_with(3);
    h.core.set_online(h.now, true);
    assert!(
        h.core.wake_up_time().is_some(),
        "events about to be in flight"
    );
    let first = match h.core.poll_effect() {
        Some(Effect::Dispatch(d)) => d,
        other => panic!("expected a dispatch, got {other:?}"),
    };
    // An outcome a little later: the registrations not yet sent are sent at that time.
    h.now = Timestamp(5);
    h.core
        .dispatch_completed(h.now, first.id, DispatchOutcome::Rejected);
    let mut log = Vec::new();
    h.run();
    h.core.append_log_to(&mut log);
    let dispatched: Vec<u64> = log
        .iter()
        .filter(|l| matches!(l.event, bgsync_scheduler::LogEvent::Dispatched { .. }))
        .map(|l| l.time.0)
        .collect();
    assert_eq!(dispatched, [0, 5, 5]);
    assert_eq!(state(&h, "t0"), Some(RegistrationState::Waiting));
}
