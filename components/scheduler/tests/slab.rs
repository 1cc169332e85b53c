//! The registrations' slab: slots are reused, an event's id carries its slot, removals leave
//! index entries that are skipped and compacted, and writes may be acknowledged out of order.

mod common;

use bgsync_scheduler::DispatchOutcome;
use common::{origin, Harness};

#[test]
fn an_outcome_for_a_slot_reused_by_another_registration_is_ignored() {
    let mut h = Harness::new();
    let a = origin("https://a.example");
    h.register_ok(&a, 1, "first");
    let first = h.last_dispatch();
    // The registration goes (its service worker registration is unregistered) while its event
    // is in flight; a new registration takes its slot.
    h.core
        .service_worker_unregistered(h.now, bgsync_types::SwRegistrationId(1));
    h.run();
    h.register_ok(&a, 2, "second");
    let second = h.last_dispatch();
    assert_eq!(
        first.id.0 & 0xFFFF_FFFF,
        second.id.0 & 0xFFFF_FFFF,
        "the slot is reused"
    );
    assert_ne!(first.id, second.id);
    // The first event's late outcome finds the slot held by another event: ignored.
    h.complete(&first, DispatchOutcome::Fulfilled);
    assert_eq!(h.get_tags(&a, 2).unwrap(), vec!["second"]);
    h.complete(&second, DispatchOutcome::Fulfilled);
    assert!(h.core.is_empty());
}

#[test]
fn many_removals_compact_the_index_and_keys_can_be_registered_again() {
    let a = origin("https://a.example");
    let params = bgsync_scheduler::Parameters {
        max_registrations_per_origin: None,
        ..Default::default()
    };
    let mut h = Harness::with_params(params);
    h.set_online(false);
    for i in 0..5_000 {
        h.register_ok(&a, 1, &format!("t{i}"));
    }
    h.set_online(true);
    let events = h.dispatched();
    assert_eq!(events.len(), 5_000);
    // Going online fires in the list's order: the order of registration.
    let tags: Vec<String> = events.iter().map(|d| d.tag.to_string()).collect();
    assert_eq!(tags[..3], ["t0", "t1", "t2"]);
    assert_eq!(tags[4_999], "t4999");
    // Completing all but 10 leaves stale index entries; while most registrations are in
    // flight (a fan-out), they are not compacted: those are about to go too.
    for d in &events[..4_990] {
        h.complete(d, DispatchOutcome::Fulfilled);
    }
    assert_eq!(h.core.len(), 10);
    assert_eq!(h.core.index_entries(), 5_000);
    // The last ten fail (they wait, and stay); the next removal compacts the index.
    for d in &events[4_990..] {
        h.complete(d, DispatchOutcome::Rejected);
    }
    h.register_ok(&a, 1, "one more");
    let last = h.last_dispatch();
    h.complete(&last, DispatchOutcome::Fulfilled);
    assert_eq!(h.core.index_entries(), 10, "compacted to the live entries");
    let left: Vec<String> = (4_990..5_000).map(|i| format!("t{i}")).collect();
    assert_eq!(h.get_tags(&a, 1).unwrap(), left);
    // A removed key registers again as new, with a fresh place at the end of the list.
    h.register_ok(&a, 1, "t0");
    let mut expected = left.clone();
    expected.push("t0".into());
    assert_eq!(h.get_tags(&a, 1).unwrap(), expected);
    assert_eq!(h.core.inspect().len(), 11);
    assert_eq!(h.store.snapshot().len(), 11);
}

#[test]
fn writes_acknowledged_out_of_order_each_settle_their_own_call() {
    let mut h = Harness::new();
    h.auto_ack = false;
    let a = origin("https://a.example");
    let r1 = h.register(&a, 1, "one");
    let r2 = h.register(&a, 1, "two");
    let r3 = h.register(&a, 1, "three");
    let held = std::mem::take(&mut h.held);
    assert_eq!(held.len(), 3);
    // The last write first, then the first, then the middle one.
    for i in [2, 0, 1] {
        let (id, ops) = &held[i];
        let result =
            bgsync_store::RegistrationStore::commit(&mut h.store, ops).map_err(|e| e.to_string());
        h.core.persist_completed(h.now, *id, result);
        h.run();
    }
    for r in [r1, r2, r3] {
        h.assert_resolved(r);
    }
    // An acknowledgement for a write that was never staged, or twice, changes nothing.
    h.core.persist_completed(h.now, held[0].0, Ok(()));
    h.core
        .persist_completed(h.now, bgsync_types::PersistId(999), Ok(()));
    h.run();
    assert_eq!(h.get_tags(&a, 1).unwrap(), vec!["one", "two", "three"]);
}

#[test]
fn registrations_always_in_flight_with_new_tags_keep_the_index_bounded() {
    // A site that keeps 100 events in flight and registers a new tag as each ends: most
    // registrations are always in flight, yet the index must not keep every removed key.
    let mut h = Harness::new();
    let a = origin("https://a.example");
    let mut in_flight = std::collections::VecDeque::new();
    for i in 0..100 {
        h.register_ok(&a, 1, &format!("t{i}"));
        in_flight.push_back(h.last_dispatch());
    }
    for i in 100..20_100 {
        let oldest = in_flight.pop_front().expect("100 in flight");
        h.complete(&oldest, DispatchOutcome::Fulfilled);
        h.register_ok(&a, 1, &format!("t{i}"));
        in_flight.push_back(h.last_dispatch());
        h.seen.clear();
    }
    assert_eq!(h.core.len(), 100);
    assert!(
        h.core.index_entries() <= 4 * 100 + 1_024 + 1,
        "the index holds {} entries for 100 registrations",
        h.core.index_entries()
    );
}

#[test]
fn a_key_registered_again_and_again_is_found_and_keeps_the_index_bounded() {
    // The index is a hash table whose removed places stay until a compaction: the same key
    // registered and removed 5,000 times, beside registrations of other service workers, must
    // be found each time (never taken for one of its removed places, whose slots were reused),
    // and the places kept must stay bounded.
    let mut h = Harness::new();
    let a = origin("https://a.example");
    let b = origin("https://b.example");
    h.set_online(false);
    for i in 0..10 {
        h.register_ok(&b, 2, &format!("kept{i}"));
    }
    h.set_online(true);
    let kept = h.dispatched();
    assert_eq!(kept.len(), 10);
    for d in &kept {
        h.complete(d, DispatchOutcome::Rejected); // they wait for their retry, and stay
    }
    for round in 0..5_000 {
        h.register_ok(&a, 1, "same");
        let d = h.last_dispatch();
        assert_eq!(d.tag.to_string(), "same");
        // A second register() finds the registration in flight: no second registration.
        h.register_ok(&a, 1, "same");
        assert_eq!(h.get_tags(&a, 1).unwrap(), vec!["same"], "round {round}");
        // It was re-registered while firing, so it fires once more before it goes.
        h.complete(&d, DispatchOutcome::Fulfilled);
        let again = h.last_dispatch();
        assert_ne!(again.id, d.id, "round {round}");
        h.complete(&again, DispatchOutcome::Fulfilled);
        assert_eq!(h.get_tags(&a, 1).unwrap(), Vec::<String>::new());
        h.seen.clear();
        if round == 500 {
            // Before any compaction (1,024 removals): the key's earlier places are dropped as
            // it is registered again, not piled up in the index.
            assert!(
                h.core.index_entries() <= 12,
                "the index holds {} entries for 10 registrations after 500 rounds",
                h.core.index_entries()
            );
        }
    }
    assert_eq!(h.core.len(), 10);
    assert!(
        h.core.index_entries() <= 4 * 11 + 1_024 + 1,
        "the index holds {} entries for 10 registrations",
        h.core.index_entries()
    );
    let expected: Vec<String> = (0..10).map(|i| format!("kept{i}")).collect();
    assert_eq!(h.get_tags(&b, 2).unwrap(), expected);
    assert_eq!(h.core.inspect().len(), 10);
}
