//! Bounded resources: a flood of calls that nobody waits for is refused once the call queue is
//! full instead of growing without bound, and a log reader that does not read loses lines
//! (counted) instead of freezing the engine.

use std::sync::Arc;
use std::time::Duration;

use bgsync::testing::{FixedNetwork, OpenWindows, ScriptedHost};
use bgsync::{BackgroundSync, VirtualClock};
use bgsync_types::{DomExceptionName, Origin, SwRegistrationId, Timestamp};

fn engine(builder: impl FnOnce(bgsync::Builder) -> bgsync::Builder) -> BackgroundSync {
    let origin = Origin::parse("https://a.example").unwrap();
    let host = Arc::new(ScriptedHost::new());
    host.add_registration(SwRegistrationId(1), origin.clone());
    let b = BackgroundSync::builder(host, Arc::new(OpenWindows::with([origin])))
        .network(Arc::new(FixedNetwork(false)))
        .clock(Arc::new(VirtualClock::new(Timestamp(0))))
        .params(bgsync::Parameters {
            max_registrations_per_origin: None,
            ..bgsync::Parameters::default()
        });
    builder(b).start().unwrap()
}

#[test]
fn a_flood_of_unawaited_calls_is_refused_beyond_the_queue() {
    let sync = engine(|b| b.call_capacity(100));
    let origin = Origin::parse("https://a.example").unwrap();
    let replies: Vec<_> = (0..20_000)
        .map(|i| sync.register_with_reply(&origin, SwRegistrationId(1), format!("t{i}").as_str()))
        .collect();
    let (mut ok, mut busy) = (0, 0);
    for rx in replies {
        match rx
            .recv_timeout(Duration::from_secs(30))
            .expect("every call is answered")
        {
            Ok(()) => ok += 1,
            Err(e) => {
                assert_eq!(e.name, DomExceptionName::UnknownError, "{e:?}");
                assert!(e.message.contains("busy"), "{}", e.message);
                busy += 1;
            }
        }
    }
    assert!(busy > 0, "20,000 calls never filled a queue of 100");
    assert!(ok >= 100, "only {ok} carried out");
    assert_eq!(sync.status_blocking().unwrap().registrations, ok);
}

#[test]
fn a_log_reader_that_never_reads_does_not_freeze_the_engine() {
    let (tx, _rx) = crossbeam_channel::bounded(1);
    let sync = engine(|b| b.log_to(tx));
    let origin = Origin::parse("https://a.example").unwrap();
    for i in 0..50 {
        let r = sync
            .register_with_reply(&origin, SwRegistrationId(1), format!("t{i}").as_str())
            .recv_timeout(Duration::from_secs(10))
            .expect("the engine answers while the log reader sleeps");
        assert!(r.is_ok(), "{r:?}");
    }
    let status = sync.status_blocking().unwrap();
    assert_eq!(status.registrations, 50);
    assert_eq!(
        status.log_lines_dropped, 49,
        "one line fits the reader's channel"
    );
}
