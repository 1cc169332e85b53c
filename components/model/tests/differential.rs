//! The engine against the reference model on random scenarios. `BGSYNC_FUZZ_CASES` sets how many
//! (default 300; `cargo xtask fuzz --cases N` runs more). A divergence fails with the shrunk
//! scenario, one operation a line. Each run prints what the scenarios reached (the states of
//! registrations, whole-engine states, what came of each kind of call) and writes it to
//! `target/differential-reached.txt`.

use bgsync_model::{
    run_scenario, run_scenario_with, Op, Reached, Setup, Who, INTERVALS, MAX_WORKERS, ORIGINS,
    PLAIN_TAGS,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestError, TestRunner};

/// Mostly the registration's own origin, mostly a window; sometimes another origin (the
/// insecure one included) or a service worker, dedicated worker or nested frame.
fn who() -> impl Strategy<Value = Who> {
    let origin = prop_oneof![17 => Just(0u8), 3 => 1u8..=ORIGINS.len() as u8];
    let kind = prop_oneof![10 => Just(0u8), 3 => Just(1u8), 5 => Just(2u8), 2 => Just(3u8)];
    (origin, kind).prop_map(|(origin, kind)| Who { origin, kind })
}

/// Mostly the plain tags (so registrations hold many), sometimes an edge.
fn tag() -> impl Strategy<Value = u8> {
    prop_oneof![7 => 0u8..PLAIN_TAGS as u8, 3 => PLAIN_TAGS as u8..u8::MAX]
}

/// Mostly the service worker registrations that exist from the start; any of those made later.
fn sw() -> impl Strategy<Value = u8> {
    prop_oneof![4 => 0u8..3, 1 => 0u8..MAX_WORKERS as u8]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (who(), sw(), tag()).prop_map(|(who, sw, tag)| Op::Register { who, sw, tag }),
        3 => (who(), sw(), tag(), 2u8..10, prop::bool::weighted(0.2), any::<bool>(), prop_oneof![6 => Just(0u8), 1 => 1u8..3]).prop_map(|(who, sw, tag, n, crash, settle, then)| Op::Burst { who, sw, tag, n, crash, settle, then }),
        1 => Just(Op::FailNextWrite),
        2 => (who(), sw()).prop_map(|(who, sw)| Op::GetTags { who, sw }),
        // Events are mostly settled before their time limit, in every way a listener can.
        10 => (any::<u8>(), any::<u8>()).prop_map(|(n, listener)| Op::Settle { n, listener }),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(n, fulfilled)| Op::LateOutcome { n, fulfilled }),
        2 => prop::bool::weighted(0.7).prop_map(Op::Online),
        1 => (0u8..4, any::<u8>()).prop_map(|(origin, state)| Op::Permission { origin, state }),
        1 => (0u8..4, any::<bool>()).prop_map(|(origin, open)| Op::Window { origin, open }),
        1 => (0u8..4).prop_map(|origin| Op::NewWorker { origin }),
        1 => (0u8..MAX_WORKERS as u8).prop_map(|sw| Op::Activate { sw }),
        1 => sw().prop_map(|sw| Op::Terminate { sw }),
        1 => (0u8..MAX_WORKERS as u8).prop_map(|sw| Op::Unregister { sw }),
        1 => (0u8..4, any::<bool>()).prop_map(|(origin, by_key)| Op::ClearSiteData { origin, by_key }),
        1 => Just(Op::ClearAll),
        2 => Just(Op::Restart),
        // Mostly short steps (events settle before the limit), and the edges of the limit and
        // of the back-offs.
        6 => prop::sample::select(vec![1u64, 1_000, 10_000, 60_000, 179_999, 180_000, 300_000, 900_000, 3_600_000, 2_700_000]).prop_map(Op::Advance),
        // The wall clock set back (by the user, or time sync): every wait keeps its time left.
        1 => prop::sample::select(vec![1_000u64, 60_000, 3_600_000, 86_400_000]).prop_map(Op::ClockBack),
        // Periodic Background Sync: registrations, their events, engagement and permission,
        // and the half-days their schedule is counted in.
        3 => (who(), sw(), tag(), 0u8..INTERVALS.len() as u8).prop_map(|(who, sw, tag, interval)| Op::PeriodicRegister { who, sw, tag, interval }),
        1 => (who(), sw(), tag()).prop_map(|(who, sw, tag)| Op::PeriodicUnregister { who, sw, tag }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(n, listener)| Op::PeriodicSettle { n, listener }),
        1 => (0u8..4, any::<u8>()).prop_map(|(origin, level)| Op::Engagement { origin, level }),
        2 => (prop_oneof![3 => 0u8..2, 1 => 2u8..4], prop_oneof![4 => Just(0u8), 1 => 1u8..3]).prop_map(|(origin, state)| Op::PeriodicPermission { origin, state }),
        2 => prop::sample::select(vec![43_199_999u64, 43_200_000, 46_800_000, 86_400_000]).prop_map(Op::Advance),
    ]
}

/// The constants, drawn per scenario: attempts 1-5, back-offs from 1 s to an hour and factors
/// 1-10, time limits, caps from 1 to none (and byte caps per origin and in all), periodic
/// units of 12 h or 2 h.
fn setup() -> impl Strategy<Value = Setup> {
    (
        (
            1u32..=5,
            prop::sample::select(vec![1_000u64, 60_000, 300_000, 3_600_000]),
            prop::sample::select(vec![1u32, 2, 3, 10]),
        ),
        (
            prop::sample::select(vec![10_000u64, 180_000, 600_000]),
            prop::sample::select(vec![60_000u64, 360_000]),
        ),
        (
            prop::sample::select(vec![Some(1usize), Some(2), Some(4), Some(8), None]),
            prop::sample::select(vec![None, None, None, Some(400u64), Some(25_000)]),
            prop::sample::select(vec![None, None, None, Some(600u64), Some(45_000)]),
        ),
        prop::sample::select(vec![43_200_000u64, 43_200_000, 7_200_000]),
    )
        .prop_map(
            |(
                (max_attempts, initial_retry_delay, retry_delay_factor),
                (max_event_duration, recovery_time),
                (cap, bytes, total),
                min_periodic_interval,
            )| Setup {
                max_attempts,
                initial_retry_delay,
                retry_delay_factor,
                max_event_duration,
                recovery_time,
                max_registrations_per_origin: cap,
                max_bytes_per_origin: bytes,
                max_bytes_total: total,
                min_periodic_interval,
            },
        )
}

fn cases() -> u32 {
    std::env::var("BGSYNC_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

#[test]
fn the_engine_agrees_with_the_model() {
    let config = Config {
        cases: cases(),
        max_shrink_iters: 10_000,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let reached = std::cell::RefCell::new(Reached::default());
    let strategy = (setup(), prop::collection::vec(op(), 1..80));
    let result = runner.run(&strategy, |(setup, ops)| {
        let mut mine = Reached::default();
        let r = run_scenario_with(&setup, &ops, &mut mine);
        reached.borrow_mut().merge(mine);
        r.map_err(|d| TestCaseError::fail(d.to_string()))
    });
    let report = format!("{} scenarios\n{}", cases(), reached.borrow().report());
    println!("{report}");
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    let _ = std::fs::write(target.join("differential-reached.txt"), &report);
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, (setup, ops))) => {
            let step = why
                .message()
                .strip_prefix("after step ")
                .and_then(|r| r.split(':').next())
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(ops.len());
            let scenario: Vec<String> = ops
                .iter()
                .take(step + 1)
                .enumerate()
                .map(|(i, o)| format!("  {i:>2}. {o:?}"))
                .collect();
            panic!(
                "the engine diverged from the model {}\nsetup: {setup:?}\nscenario:\n{}",
                why.message(),
                scenario.join("\n")
            );
        }
        Err(e) => panic!("{e}"),
    }
}

/// Scenarios worth keeping whatever the random generator does
/// (`bgsync_model::regression_scenarios`).
#[test]
fn regression_scenarios() {
    for s in bgsync_model::regression_scenarios() {
        if let Err(d) = run_scenario(&s) {
            panic!("{d}\n{s:#?}");
        }
    }
}

/// The byte encoding the coverage-guided target reads gives back the scenarios.
#[test]
fn scenarios_encode_and_decode() {
    for s in bgsync_model::regression_scenarios() {
        let bytes = bgsync_model::encode_scenario(&Setup::default(), &s);
        assert_eq!(Op::decode(&bytes), (Setup::default(), s));
    }
}

#[test]
fn decoded_bytes_run_too() {
    let bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let (setup, ops) = Op::decode(&bytes);
    assert_eq!(ops.len(), (bytes.len() - 1) / 4);
    run_scenario_with(&setup, &ops, &mut Reached::default()).unwrap();
}
