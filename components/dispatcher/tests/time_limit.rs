//! The dispatcher's contract with the host: time limits, late outcomes, dropped reporters.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bgsync_dispatcher::{
    Dispatcher, OutcomeReporter, RegistrationInfo, ServiceWorkerHost, SyncEventDispatch,
};
use bgsync_scheduler::{DispatchOutcome, DispatchRequest};
use bgsync_types::{DispatchId, Origin, SwRegistrationId, Tag, Timestamp};

#[derive(Default)]
struct Host {
    /// Reporters the test answers by hand.
    held: Mutex<Vec<(SyncEventDispatch, OutcomeReporter)>>,
    terminated: Mutex<Vec<DispatchId>>,
    no_worker: bool,
}

impl ServiceWorkerHost for Host {
    fn registration(&self, _sw: SwRegistrationId) -> Option<RegistrationInfo> {
        Some(RegistrationInfo {
            origin: origin(),
            partition: Default::default(),
            has_active_worker: !self.no_worker,
        })
    }
    fn fire_sync_event(&self, event: SyncEventDispatch, reply: OutcomeReporter) {
        self.held.lock().unwrap().push((event, reply));
    }
    fn terminate(&self, event: DispatchId, _sw: SwRegistrationId) {
        self.terminated.lock().unwrap().push(event);
    }
}

fn origin() -> Origin {
    Origin::parse("https://a.example").unwrap()
}

type Reports = Arc<Mutex<Vec<(DispatchId, DispatchOutcome)>>>;

fn setup(host: Host) -> (Arc<Host>, Dispatcher, Reports) {
    let host = Arc::new(host);
    let reports: Reports = Arc::default();
    let sink = reports.clone();
    let d = Dispatcher::new(
        host.clone(),
        Arc::new(move |id, o| sink.lock().unwrap().push((id, o))),
    );
    (host, d, reports)
}

fn request(id: u64, last_chance: bool) -> DispatchRequest {
    DispatchRequest {
        id: DispatchId(id),
        sw: SwRegistrationId(1),
        origin: origin(),
        tag: Tag::from("t"),
        last_chance,
        time_limit: Duration::from_secs(180),
        kind: bgsync_types::SyncKind::OneShot,
    }
}

#[test]
fn the_host_sees_tag_and_last_chance() {
    let (host, mut d, _) = setup(Host::default());
    assert_eq!(d.dispatch(Timestamp(0), request(1, true)), None);
    let held = host.held.lock().unwrap();
    assert_eq!(held[0].0.tag, Tag::from("t"));
    assert!(held[0].0.last_chance);
}

#[test]
fn an_event_past_its_time_limit_times_out_and_is_terminated() {
    let (host, mut d, reports) = setup(Host::default());
    d.dispatch(Timestamp(1_000), request(1, false));
    assert_eq!(d.poll_timeout(), Some(Timestamp(181_000)));
    assert!(d.handle_timeout(Timestamp(180_999)).is_empty());
    assert_eq!(
        d.handle_timeout(Timestamp(181_000)),
        vec![(DispatchId(1), DispatchOutcome::TimedOut)]
    );
    assert_eq!(*host.terminated.lock().unwrap(), vec![DispatchId(1)]);
    // The worker's late success is ignored.
    let (_, reply) = host.held.lock().unwrap().pop().unwrap();
    reply.report(DispatchOutcome::Fulfilled);
    let (id, outcome) = reports.lock().unwrap()[0];
    assert_eq!(d.outcome_reported(id, outcome), None);
    assert_eq!(d.poll_timeout(), None);
}

#[test]
fn an_outcome_in_time_clears_the_deadline() {
    let (host, mut d, reports) = setup(Host::default());
    d.dispatch(Timestamp(0), request(1, false));
    let (_, reply) = host.held.lock().unwrap().pop().unwrap();
    reply.report(DispatchOutcome::Rejected);
    let (id, outcome) = reports.lock().unwrap()[0];
    assert_eq!(
        d.outcome_reported(id, outcome),
        Some(DispatchOutcome::Rejected)
    );
    assert_eq!(d.poll_timeout(), None);
    assert!(d.handle_timeout(Timestamp(u64::MAX)).is_empty());
}

#[test]
fn a_dropped_reporter_counts_as_a_terminated_worker() {
    let (host, mut d, reports) = setup(Host::default());
    d.dispatch(Timestamp(0), request(1, false));
    host.held.lock().unwrap().clear();
    assert_eq!(
        *reports.lock().unwrap(),
        vec![(DispatchId(1), DispatchOutcome::WorkerTerminated)]
    );
}

#[test]
fn no_active_worker_fails_the_attempt_at_once() {
    let (host, mut d, _) = setup(Host {
        no_worker: true,
        ..Host::default()
    });
    assert_eq!(
        d.dispatch(Timestamp(0), request(1, false)),
        Some((DispatchId(1), DispatchOutcome::WorkerFailedToStart))
    );
    assert!(host.held.lock().unwrap().is_empty());
    assert_eq!(d.in_flight(), 0);
}

#[test]
fn abandoning_terminates_and_ignores_the_outcome() {
    let (host, mut d, _) = setup(Host::default());
    d.dispatch(Timestamp(0), request(7, false));
    d.abandon(DispatchId(7));
    assert_eq!(*host.terminated.lock().unwrap(), vec![DispatchId(7)]);
    assert_eq!(
        d.outcome_reported(DispatchId(7), DispatchOutcome::Fulfilled),
        None
    );
    assert_eq!(d.poll_timeout(), None);
}

#[test]
fn time_limits_run_out_in_deadline_order_whatever_the_order_of_dispatch_and_of_outcomes() {
    let (_host, mut d, _) = setup(Host::default());
    let with_limit = |id: u64, secs: u64| DispatchRequest {
        time_limit: Duration::from_secs(secs),
        ..request(id, false)
    };
    // 1 and 2 with the usual limit; 3 with a shorter one, so its deadline is earlier than
    // theirs; 4 after 3 with the usual limit again.
    d.dispatch(Timestamp(0), with_limit(1, 180));
    d.dispatch(Timestamp(1_000), with_limit(2, 180));
    d.dispatch(Timestamp(2_000), with_limit(3, 10));
    d.dispatch(Timestamp(3_000), with_limit(4, 180));
    assert_eq!(d.in_flight(), 4);
    assert_eq!(d.poll_timeout(), Some(Timestamp(12_000)));
    // 2 ends before 1: 1 stays the next of the usual limits.
    assert_eq!(
        d.outcome_reported(DispatchId(2), DispatchOutcome::Fulfilled),
        Some(DispatchOutcome::Fulfilled)
    );
    // The clock goes back 1 s: every limit keeps the time it had left.
    d.clock_went_back(Timestamp(5_000), Timestamp(4_000));
    assert_eq!(d.poll_timeout(), Some(Timestamp(11_000)));
    assert_eq!(
        d.handle_timeout(Timestamp(11_000)),
        vec![(DispatchId(3), DispatchOutcome::TimedOut)]
    );
    assert_eq!(d.poll_timeout(), Some(Timestamp(179_000)));
    assert_eq!(
        d.handle_timeout(Timestamp(u64::MAX)),
        vec![
            (DispatchId(1), DispatchOutcome::TimedOut),
            (DispatchId(4), DispatchOutcome::TimedOut)
        ]
    );
    assert_eq!(d.in_flight(), 0);
    assert_eq!(d.poll_timeout(), None);
}

/// The events in flight against a plain map of them, under random dispatches (ids mostly
/// increasing, some below the last, as periodic and one-shot ids interleave; limits mostly the
/// same), outcomes in any order (some twice, some for unknown ids), abandons, time limits and
/// the clock going back.
#[test]
fn events_in_flight_match_a_plain_map_whatever_the_order() {
    use std::collections::BTreeMap;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    for _round in 0..50 {
        let (_host, mut d, _) = setup(Host::default());
        // id → deadline
        let mut expected: BTreeMap<u64, u64> = BTreeMap::new();
        let (mut now, mut last_id) = (0u64, 1_000u64);
        for _ in 0..400 {
            match next(10) {
                0..=3 => {
                    let id = if next(5) == 0 {
                        next(1_000) // below every increasing id
                    } else {
                        last_id += 1 + next(3);
                        last_id
                    };
                    if expected.contains_key(&id) {
                        continue;
                    }
                    let secs = [180, 180, 180, 10, 60][next(5) as usize];
                    let mut r = request(id, false);
                    r.time_limit = Duration::from_secs(secs);
                    assert_eq!(d.dispatch(Timestamp(now), r), None);
                    expected.insert(id, now + secs * 1_000);
                }
                4..=6 => {
                    // An event in flight, one that ended, or one never dispatched.
                    let id = match expected
                        .keys()
                        .nth(next(expected.len() as u64 + 1) as usize)
                    {
                        Some(&id) if next(4) != 0 => id,
                        _ => next(last_id + 1),
                    };
                    let got = d.outcome_reported(DispatchId(id), DispatchOutcome::Fulfilled);
                    let was = expected.remove(&id).is_some();
                    assert_eq!(got.is_some(), was, "outcome of {id}");
                }
                7 => {
                    if let Some(&id) = expected.keys().next() {
                        d.abandon(DispatchId(id));
                        expected.remove(&id);
                    }
                }
                8 => {
                    now += next(70_000);
                    let mut due: Vec<(u64, u64)> = expected
                        .iter()
                        .filter(|&(_, &t)| t <= now)
                        .map(|(&id, &t)| (t, id))
                        .collect();
                    due.sort_unstable();
                    let got = d.handle_timeout(Timestamp(now));
                    let want: Vec<_> = due
                        .iter()
                        .map(|&(_, id)| (DispatchId(id), DispatchOutcome::TimedOut))
                        .collect();
                    assert_eq!(got, want, "time limits at {now}");
                    for (_, id) in due {
                        expected.remove(&id);
                    }
                }
                _ => {
                    let back = next(5_000);
                    d.clock_went_back(Timestamp(now + back), Timestamp(now));
                    for t in expected.values_mut() {
                        *t = t.saturating_sub(back);
                    }
                }
            }
            assert_eq!(d.in_flight(), expected.len());
            let soonest = expected.values().min().copied();
            assert_eq!(d.poll_timeout().map(|t| t.0), soonest);
        }
    }
}
