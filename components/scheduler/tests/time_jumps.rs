//! The wall clock moving backwards: a back-off keeps its length (it is not stretched by the
//! jump), and a stored next-fire time far beyond anything a back-off can be is brought back.

mod common;

use bgsync_scheduler::{DispatchOutcome, Parameters, Scheduler};
use bgsync_store::StoredRegistration;
use bgsync_types::{SwRegistrationId, SyncKind, Tag, Timestamp};
use common::{origin, Harness, MIN};

const YEAR: u64 = 365 * 24 * 60 * MIN;

#[test]
fn a_clock_set_back_a_year_does_not_stretch_a_back_off() {
    let mut h = Harness::new();
    h.now = Timestamp(2 * YEAR);
    let a = origin("https://mail.example");
    h.register(&a, 1, "send-mail");
    let first = h.last_dispatch();
    h.complete(&first, DispatchOutcome::Rejected);
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
