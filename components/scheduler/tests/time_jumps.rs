//! The wall clock moving backwards: a back-off keeps its length (it is not stretched by the
//! jump), and a stored next-fire time far beyond anything a back-off can be is brought back.

mod common;

use bgsync_scheduler::{DispatchOutcome, Parameters, Scheduler};
use bgsync_store::StoredRegistration;
use bgsync_types::{SwRegistrationId, SyncKind, Tag, Timestamp};
use common::{origin, Harness, MIN};

const YEAR: u64 = 365 * 24 * 60 * MIN;

/// At two years, "send-mail" of mail.example failed once: it backs off for 5 minutes.
fn failed_once_at_two_years() -> Harness {
    let mut h = Harness::new();
    h.now = Timestamp(2 * YEAR);
    h.register(&origin("https://mail.example"), 1, "send-mail");
    let first = h.last_dispatch();
    h.complete(&first, DispatchOutcome::Rejected);
    h
}

#[test]
fn a_clock_set_back_a_year_does_not_stretch_a_back_off() {
    let mut h = failed_once_at_two_years();
    assert_eq!(h.core.poll_timeout(), Some(Timestamp(2 * YEAR + 5 * MIN)));
    // The user sets the clock back a year.
    h.now = Timestamp(YEAR);
    h.advance(0);
    assert_eq!(
        h.core.poll_timeout(),
        Some(Timestamp(YEAR + 5 * MIN)),
        "the back-off still ends 5 minutes after the failure"
    );
    h.advance(5 * MIN);
    assert_eq!(h.dispatched().len(), 2, "the retry came 5 minutes later");
}

#[test]
fn a_stored_next_fire_beyond_any_back_off_is_brought_back() {
    let mut core = Scheduler::new(Parameters::default());
    let now = Timestamp(YEAR);
    core.set_online(now, false);
    core.restore_one(
        now,
        StoredRegistration {
            origin: origin("https://mail.example"),
            partition: Default::default(),
            seq: 0,
            sw: SwRegistrationId(1),
            tag: Tag::from("send-mail"),
            kind: SyncKind::OneShot,
            attempts: 1,
            max_attempts: 3,
            // Written while the clock was a year ahead.
            next_fire: Timestamp(2 * YEAR + 5 * MIN),
            periodic_interval: None,
        },
    );
    assert_eq!(
        core.poll_timeout(),
        Some(Timestamp(YEAR + 5 * MIN)),
        "a registration after one failure waits at most its 5 minute back-off"
    );
}

#[test]
fn the_times_moved_back_are_written_so_a_restart_finds_them() {
    // One registration backing off, one pending while offline (registered at 2 years).
    let mut h = failed_once_at_two_years();
    h.set_online(false);
    h.register_ok(&origin("https://mail.example"), 1, "queued");
    h.now = Timestamp(YEAR);
    h.advance(0);
    let stored = |h: &Harness, tag: &str| {
        h.store
            .snapshot()
            .into_iter()
            .find(|r| r.tag.to_string() == tag)
            .map(|r| r.next_fire)
    };
    assert_eq!(stored(&h, "send-mail"), Some(Timestamp(YEAR + 5 * MIN)));
    assert!(
        stored(&h, "queued") <= Some(h.now),
        "a pending registration's time is not read as a back-off after a restart"
    );
    // A restart from what the store holds: the same back-off end, and the pending one fires.
    let mut core = Scheduler::new(Parameters::default());
    core.restore(h.now, h.store.snapshot());
    assert_eq!(core.poll_timeout(), Some(Timestamp(YEAR + 5 * MIN)));
    let fired: Vec<String> = std::iter::from_fn(|| core.poll_effect())
        .filter_map(|e| match e {
            bgsync_scheduler::Effect::Dispatch(d) => Some(d.tag.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(fired, ["queued"]);
}

#[test]
fn a_periodic_interval_keeps_the_time_it_had_left() {
    use bgsync_scheduler::{Engagement, PeriodicRegisterCall, RegisterContext};
    use bgsync_types::{RequestId, StorageKey};
    const H: u64 = 60 * MIN;
    let mut h = Harness::new();
    h.now = Timestamp(2 * YEAR);
    let a = origin("https://a.example");
    h.core.periodic_register(
        h.now,
        RequestId(1),
        PeriodicRegisterCall {
            caller: StorageKey::new(a.clone()),
            sw: SwRegistrationId(1),
            tag: Tag::from("news"),
            min_interval: std::time::Duration::from_millis(12 * H),
            context: RegisterContext::ready(a),
            engagement: Engagement::High,
        },
    );
    h.run();
    h.advance(2 * H);
    assert_eq!(h.core.poll_timeout(), Some(Timestamp(2 * YEAR + 12 * H)));
    // Set back a year, two hours after registering: ten hours are still to wait.
    h.now = Timestamp(YEAR);
    h.advance(0);
    assert_eq!(h.core.poll_timeout(), Some(Timestamp(YEAR + 10 * H)));
    let record = h.store.snapshot().pop().expect("the periodic record");
    assert_eq!(
        record.next_fire,
        Timestamp(YEAR + 10 * H),
        "written at once"
    );
    h.advance(10 * H);
    assert_eq!(h.dispatched().len(), 1, "it fired ten hours later");
}
