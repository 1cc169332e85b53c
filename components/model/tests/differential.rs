//! The engine against the reference model on random scenarios. `BGSYNC_FUZZ_CASES` sets how many
//! (default 300; `cargo xtask fuzz --cases N` runs more). A divergence fails with the shrunk
//! scenario, one operation a line.

use bgsync_model::{run_scenario, Op};
use proptest::prelude::*;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, 0u8..3, 0u8..7).prop_map(|(origin, sw, tag)| Op::Register { origin, sw, tag }),
        1 => (0u8..3, 0u8..3).prop_map(|(origin, sw)| Op::GetTags { origin, sw }),
        3 => (any::<u8>(), any::<bool>()).prop_map(|(n, fulfilled)| Op::Settle { n, fulfilled }),
        1 => any::<bool>().prop_map(Op::Online),
        1 => (0u8..3, any::<bool>()).prop_map(|(origin, granted)| Op::Permission { origin, granted }),
        1 => (0u8..3, any::<bool>()).prop_map(|(origin, open)| Op::Window { origin, open }),
        1 => (0u8..3).prop_map(|sw| Op::Terminate { sw }),
        1 => (0u8..3).prop_map(|sw| Op::Unregister { sw }),
        1 => Just(Op::Restart),
        3 => prop::sample::select(vec![1u64, 1_000, 60_000, 179_999, 180_000, 300_000, 900_000, 3_600_000]).prop_map(Op::Advance),
        // Periodic Background Sync: registrations, their events, engagement and permission,
        // and the half-days their schedule is counted in.
        3 => (0u8..3, 0u8..3, 0u8..7, any::<u8>()).prop_map(|(origin, sw, tag, interval)| Op::PeriodicRegister { origin, sw, tag, interval }),
        1 => (0u8..3, 0u8..3, 0u8..7).prop_map(|(origin, sw, tag)| Op::PeriodicUnregister { origin, sw, tag }),
        2 => (any::<u8>(), any::<bool>()).prop_map(|(n, fulfilled)| Op::PeriodicSettle { n, fulfilled }),
        1 => (0u8..3, any::<u8>()).prop_map(|(origin, level)| Op::Engagement { origin, level }),
        2 => (0u8..3, prop::bool::weighted(0.8)).prop_map(|(origin, granted)| Op::PeriodicPermission { origin, granted }),
        2 => prop::sample::select(vec![43_199_999u64, 43_200_000, 46_800_000, 86_400_000]).prop_map(Op::Advance),
    ]
}

fn cases() -> u32 {
    std::env::var("BGSYNC_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 10_000, ..ProptestConfig::default() })]

    #[test]
    fn the_engine_agrees_with_the_model(ops in prop::collection::vec(op(), 1..60)) {
        if let Err(d) = run_scenario(&ops) {
            let scenario: Vec<String> = ops.iter().take(d.step + 1).enumerate().map(|(i, o)| format!("  {i:>2}. {o:?}")).collect();
            prop_assert!(false, "the engine diverged from the model {d}\nscenario:\n{}", scenario.join("\n"));
        }
    }
}

/// Scenarios worth keeping whatever the random generator does.
#[test]
fn regression_scenarios() {
    use Op::*;
    let scenarios: Vec<Vec<Op>> = vec![
        // Periodic: a shorter minInterval makes a registration due at once (found by the
        // differential when periodic sync was added).
        vec![
            PeriodicPermission {
                origin: 0,
                granted: true,
            },
            PeriodicRegister {
                origin: 0,
                sw: 0,
                tag: 2,
                interval: 3,
            },
            Advance(43_200_000),
            PeriodicRegister {
                origin: 0,
                sw: 0,
                tag: 2,
                interval: 0,
            },
        ],
        // Periodic: re-registered during a retry in flight, then a restart: the retry is
        // written with its time, and runs again after the restart.
        vec![
            PeriodicPermission {
                origin: 0,
                granted: true,
            },
            PeriodicRegister {
                origin: 0,
                sw: 1,
                tag: 0,
                interval: 0,
            },
            Advance(43_199_999),
            Advance(179_999),
            Advance(179_999),
            Advance(179_999),
            PeriodicRegister {
                origin: 0,
                sw: 1,
                tag: 0,
                interval: 3,
            },
            Restart,
        ],
        // Periodic: a retry and an event's end at the same moment: a retry does not start a
        // round, and a registration whose event just ended is not coalesced into one.
        vec![
            PeriodicPermission {
                origin: 0,
                granted: true,
            },
            Register {
                origin: 0,
                sw: 0,
                tag: 0,
            },
            PeriodicRegister {
                origin: 0,
                sw: 1,
                tag: 0,
                interval: 0,
            },
            Advance(43_200_000),
            Register {
                origin: 0,
                sw: 0,
                tag: 0,
            },
            PeriodicRegister {
                origin: 0,
                sw: 0,
                tag: 0,
                interval: 3,
            },
            PeriodicSettle {
                n: 0,
                fulfilled: false,
            },
            Advance(43_199_999),
            Advance(1_000),
            Advance(46_800_000),
            Advance(179_999),
            Restart,
            PeriodicSettle {
                n: 155,
                fulfilled: false,
            },
            Advance(43_199_999),
        ],
        // Three failures, then gone.
        vec![
            Register {
                origin: 0,
                sw: 0,
                tag: 0,
            },
            Settle {
                n: 0,
                fulfilled: false,
            },
            Advance(300_000),
            Settle {
                n: 0,
                fulfilled: false,
            },
            Advance(900_000),
            Settle {
                n: 0,
                fulfilled: false,
            },
            Advance(3_600_000),
        ],
        // Re-registered while firing, then the time limit.
        vec![
            Register {
                origin: 0,
                sw: 0,
                tag: 1,
            },
            Register {
                origin: 0,
                sw: 0,
                tag: 1,
            },
            Advance(180_000),
            Advance(180_000),
            Advance(300_000),
        ],
        // A restart while firing and while waiting.
        vec![
            Register {
                origin: 0,
                sw: 0,
                tag: 0,
            },
            Register {
                origin: 1,
                sw: 2,
                tag: 0,
            },
            Settle {
                n: 1,
                fulfilled: false,
            },
            Restart,
            Advance(300_000),
        ],
        // Cross-origin calls and the cap.
        vec![
            Register {
                origin: 1,
                sw: 0,
                tag: 0,
            },
            GetTags { origin: 1, sw: 0 },
            Online(false),
            Register {
                origin: 0,
                sw: 0,
                tag: 0,
            },
            Register {
                origin: 0,
                sw: 0,
                tag: 1,
            },
            Register {
                origin: 0,
                sw: 1,
                tag: 2,
            },
            Register {
                origin: 0,
                sw: 1,
                tag: 3,
            },
            Register {
                origin: 0,
                sw: 1,
                tag: 4,
            },
        ],
        // Permission denied, then online, then granted.
        vec![
            Online(false),
            Register {
                origin: 0,
                sw: 0,
                tag: 0,
            },
            Permission {
                origin: 0,
                granted: false,
            },
            Online(true),
            Permission {
                origin: 0,
                granted: true,
            },
        ],
        // Unregistered mid-event, outcome ignored.
        vec![
            Register {
                origin: 0,
                sw: 0,
                tag: 0,
            },
            Unregister { sw: 0 },
            Settle {
                n: 0,
                fulfilled: false,
            },
            Register {
                origin: 0,
                sw: 0,
                tag: 0,
            },
        ],
        // The worker dies mid-event.
        vec![
            Register {
                origin: 1,
                sw: 2,
                tag: 5,
            },
            Terminate { sw: 2 },
            Advance(299_999),
            Advance(1),
        ],
    ];
    for s in scenarios {
        if let Err(d) = run_scenario(&s) {
            panic!("{d}\n{s:#?}");
        }
    }
}

#[test]
fn decoded_bytes_run_too() {
    let bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let ops = Op::decode(&bytes);
    assert_eq!(ops.len(), bytes.len() / 3);
    run_scenario(&ops).unwrap();
}
