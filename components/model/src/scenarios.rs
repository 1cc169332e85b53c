//! Hand-written scenarios: the differential's regressions, and a seed corpus for the
//! coverage-guided `differential` target.

use crate::diff::{Op, Who};

/// Old-style operations, as the first scenarios were written: origins A, B, insecure; tags "a",
/// "b", "", U+D800, U+DC00, U+1F4E7, 10,241 × "x".
pub(crate) fn reg(origin: u8, sw: u8, tag: u8) -> Op {
    Op::Register {
        who: who_of(origin, sw),
        sw,
        tag: old_tag(tag),
    }
}

fn who_of(origin: u8, sw: u8) -> Who {
    let own = if sw == 2 { 1 } else { 0 };
    Who {
        origin: if origin == own {
            0
        } else {
            [1, 2, 4][origin as usize]
        },
        kind: 0,
    }
}

fn old_tag(tag: u8) -> u8 {
    [0, 1, 16, 18, 19, 17, 27][tag as usize]
}

fn preg(origin: u8, sw: u8, tag: u8, interval: u8) -> Op {
    Op::PeriodicRegister {
        who: who_of(origin, sw),
        sw,
        tag: old_tag(tag),
        interval,
    }
}

const FAIL: u8 = 1;
const FULFIL: u8 = 0;
const THROW: u8 = 2;

/// Scenarios worth keeping whatever the random generator does: each divergence found so far,
/// and one for each feature the generator reaches only by chance. `tests/differential.rs` runs
/// them; `cargo xtask fuzz` seeds the `differential` target with them.
pub fn regression_scenarios() -> Vec<Vec<Op>> {
    use Op::*;
    let grant = |origin| PeriodicPermission { origin, state: 0 };
    let scenarios: Vec<Vec<Op>> = vec![
        // Periodic: a shorter minInterval makes a registration due at once (found by the
        // differential when periodic sync was added).
        vec![
            grant(0),
            preg(0, 0, 2, 3),
            Advance(43_200_000),
            preg(0, 0, 2, 0),
        ],
        // Periodic: re-registered during a retry in flight, then a restart: the retry is
        // written with its time, and runs again after the restart.
        vec![
            grant(0),
            preg(0, 1, 0, 0),
            Advance(43_199_999),
            Advance(179_999),
            Advance(179_999),
            Advance(179_999),
            preg(0, 1, 0, 3),
            Restart,
        ],
        // Periodic: a retry and an event's end at the same moment: a retry does not start a
        // round, and a registration whose event just ended is not coalesced into one.
        vec![
            grant(0),
            reg(0, 0, 0),
            preg(0, 1, 0, 0),
            Advance(43_200_000),
            reg(0, 0, 0),
            preg(0, 0, 0, 3),
            PeriodicSettle {
                n: 0,
                listener: FAIL,
            },
            Advance(43_199_999),
            Advance(1_000),
            Advance(46_800_000),
            Advance(179_999),
            Restart,
            PeriodicSettle {
                n: 155,
                listener: FAIL,
            },
            Advance(43_199_999),
        ],
        // The clock set back to before a periodic registration's anchor (found by the
        // differential when the clock rule was added: the next fire time kept its time left,
        // the anchor could not go below 0; both now follow the anchor).
        vec![grant(1), preg(1, 2, 0, 0), Advance(1), ClockBack(1_000)],
        // The clock set back while a registration backs off, one is in flight and one is
        // pending offline; then a restart finds the times moved back.
        vec![
            reg(0, 0, 0),
            reg(0, 0, 1),
            Settle {
                n: 0,
                listener: FAIL,
            },
            Online(false),
            reg(1, 2, 0),
            ClockBack(60_000),
            Restart,
            Online(true),
            Advance(300_000),
        ],
        // Three failures, then gone.
        vec![
            reg(0, 0, 0),
            Settle {
                n: 0,
                listener: FAIL,
            },
            Advance(300_000),
            Settle {
                n: 0,
                listener: FAIL,
            },
            Advance(900_000),
            Settle {
                n: 0,
                listener: FAIL,
            },
            Advance(3_600_000),
        ],
        // Re-registered while firing, then the time limit.
        vec![
            reg(0, 0, 1),
            reg(0, 0, 1),
            Advance(180_000),
            Advance(180_000),
            Advance(300_000),
        ],
        // A restart while firing and while waiting.
        vec![
            reg(0, 0, 0),
            reg(1, 2, 0),
            Settle {
                n: 1,
                listener: FAIL,
            },
            Restart,
            Advance(300_000),
        ],
        // Cross-origin calls and the cap.
        vec![
            reg(1, 0, 0),
            GetTags {
                who: who_of(1, 0),
                sw: 0,
            },
            Online(false),
            reg(0, 0, 0),
            reg(0, 0, 1),
            reg(0, 1, 2),
            reg(0, 1, 3),
            reg(0, 1, 4),
        ],
        // Permission denied, then online, then granted.
        vec![
            Online(false),
            reg(0, 0, 0),
            Permission {
                origin: 0,
                state: 1,
            },
            Online(true),
            Permission {
                origin: 0,
                state: 0,
            },
        ],
        // Unregistered mid-event, outcome ignored.
        vec![
            reg(0, 0, 0),
            Unregister { sw: 0 },
            Settle {
                n: 0,
                listener: FAIL,
            },
            reg(0, 0, 0),
        ],
        // The worker dies mid-event.
        vec![
            reg(1, 2, 5),
            Terminate { sw: 2 },
            Advance(299_999),
            Advance(1),
        ],
        // A listener that throws without waitUntil succeeds; one that throws after a rejected
        // waitUntil fails.
        vec![
            reg(0, 0, 0),
            Settle {
                n: 0,
                listener: THROW,
            },
            reg(0, 0, 1),
            Settle { n: 0, listener: 4 },
            Advance(300_000),
        ],
        // 'prompt' neither refuses register() nor holds events; 'denied' does both.
        vec![
            Permission {
                origin: 0,
                state: 2,
            },
            reg(0, 0, 0),
            Permission {
                origin: 0,
                state: 1,
            },
            reg(0, 0, 1),
        ],
        // A failed write: a new registration leaves no trace; a waiting one stays waiting.
        vec![
            FailNextWrite,
            reg(0, 0, 0),
            reg(0, 0, 1),
            Settle {
                n: 0,
                listener: FAIL,
            },
            FailNextWrite,
            reg(0, 0, 1),
            Advance(300_000),
        ],
        // A burst over the cap, some tags repeated, while offline; then online.
        vec![
            Online(false),
            Burst {
                who: who_of(0, 0),
                sw: 0,
                tag: 14,
                n: 9,
                crash: false,
                settle: false,
                then: 0,
            },
            Online(true),
            Burst {
                who: who_of(0, 0),
                sw: 0,
                tag: 2,
                n: 4,
                crash: true,
                settle: false,
                then: 0,
            },
            reg(0, 0, 0),
            Burst {
                who: who_of(0, 0),
                sw: 0,
                tag: 1,
                n: 4,
                crash: false,
                settle: true,
                then: 0,
            },
        ],
        // Unregistered, then cleared, while a burst's writes (and an event's) are in flight.
        vec![
            reg(0, 0, 0),
            Settle {
                n: 0,
                listener: FAIL,
            },
            Burst {
                who: who_of(0, 0),
                sw: 0,
                tag: 0,
                n: 5,
                crash: false,
                settle: false,
                then: 1,
            },
            reg(0, 1, 0),
            Burst {
                who: who_of(0, 1),
                sw: 1,
                tag: 1,
                n: 4,
                crash: false,
                settle: true,
                then: 2,
            },
        ],
        // An outcome reported after the time limit, and again after the event was settled.
        vec![
            reg(0, 0, 0),
            Advance(180_000),
            LateOutcome {
                n: 0,
                fulfilled: true,
            },
            Advance(300_000),
            Settle {
                n: 0,
                listener: FULFIL,
            },
            LateOutcome {
                n: 1,
                fulfilled: false,
            },
        ],
        // A registration without an active worker, then activated; a worker that fails to
        // start; clear-site-data.
        vec![
            NewWorker { origin: 1 },
            Register {
                who: who_of(0, 0),
                sw: 3,
                tag: 0,
            },
            Activate { sw: 3 },
            Register {
                who: who_of(0, 0),
                sw: 3,
                tag: 0,
            },
            Settle { n: 0, listener: 6 },
            ClearSiteData {
                origin: 1,
                by_key: false,
            },
            ClearAll,
            GetTags {
                who: who_of(0, 0),
                sw: 3,
            },
        ],
        // The byte-length edges: exactly 10,240 UTF-8 bytes (ASCII, U+FFFD, lone surrogates,
        // astral) are accepted, one over is not; a lone surrogate is not U+FFFD.
        (26..32)
            .chain([18, 20, 18])
            .map(|tag| Register {
                who: who_of(0, 0),
                sw: 0,
                tag,
            })
            .chain([Restart])
            .collect(),
        // A service worker caller and a nested frame with no window of their origin.
        vec![
            Window {
                origin: 0,
                open: false,
            },
            Register {
                who: Who { origin: 0, kind: 2 },
                sw: 0,
                tag: 0,
            },
            Register {
                who: Who { origin: 0, kind: 3 },
                sw: 0,
                tag: 0,
            },
            Register {
                who: Who { origin: 0, kind: 1 },
                sw: 0,
                tag: 0,
            },
        ],
    ];
    scenarios
}
