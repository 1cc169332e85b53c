//! The differential harness: the same operations on the engine (scheduler + dispatcher + store,
//! and the neutral `ExtendableEvent` lifetime that decides an event's outcome) and on the
//! [`Model`]; after every step, what script could observe must agree. The harness plays the
//! embedder: it knows the service worker registrations, the windows and the permissions, and
//! tells the engine what an embedder would.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bgsync_dispatcher::{
    Dispatcher, OutcomeReporter, RegistrationInfo, ServiceWorkerHost, SyncEventDispatch,
};
use bgsync_idl::{EventOutcome, ExtendableEventLifetime};
use bgsync_scheduler::{
    DispatchOutcome, Effect, Engagement as EngineEngagement, Parameters, PeriodicRegisterCall,
    RegisterCall, RegisterContext, Response, Scheduler,
};
use bgsync_store::{MemoryStore, RegistrationStore, StoreOp};
use bgsync_types::{
    DispatchId, DomException, Origin, PermissionState, PersistId, RequestId, StorageKey,
    SwRegistrationId, SyncKind, Tag as EngineTag, Timestamp,
};

use crate::model::{
    utf8_bytes, Caller, CallerKind, Engagement, Exception, Fired, Listener, Model, Params,
    Permission, State, Tag,
};

/// The origins scenarios use: three secure ones (two of one site) and an insecure one.
pub const ORIGINS: [&str; 4] = [
    "https://a.example",
    "https://b.example",
    "https://a.example:8443",
    "http://insecure.example",
];

/// The service worker registrations every scenario starts with (id, index into [`ORIGINS`]):
/// two of origin A, one of origin B. [`Op::NewWorker`] adds more, up to [`MAX_WORKERS`].
pub const WORKERS: [(u64, usize); 3] = [(1, 0), (2, 0), (3, 1)];

/// The most service worker registrations a scenario holds.
pub const MAX_WORKERS: usize = 8;

/// How many of [`tags`] are plain short tags (the rest are edge cases).
pub const PLAIN_TAGS: usize = 16;

/// The tags scenarios use, as code units: sixteen plain ones (so that a registration holds
/// many), then the edges: empty, astral, lone surrogates, U+FFFD (which a lone surrogate becomes
/// in UTF-8, but is not equal to), the private-use and last BMP code points, non-ASCII that
/// UTF-8 orders differently from UTF-16, and tags of exactly 10,240 UTF-8 bytes and one over,
/// built from one-, three- (U+FFFD, lone surrogates) and four-byte code points.
pub fn tags() -> Vec<Tag> {
    let s = |t: &str| t.encode_utf16().collect::<Vec<u16>>();
    let mut v: Vec<Tag> = (0..PLAIN_TAGS).map(|i| s(&format!("t{i}"))).collect();
    let rep = |unit: u16, n: usize, tail: &str| {
        let mut t = vec![unit; n];
        t.extend(tail.encode_utf16());
        t
    };
    v.extend([
        Vec::new(),
        s("📧"),
        vec![0xD800],
        vec![0xDC00],
        vec![0xFFFD],
        vec![0xD800, 0x61],
        vec![0xE000],
        vec![0xFFFF],
        s("\u{FF21}"),
        s("é"),
        s(&"x".repeat(10_240)),
        s(&"x".repeat(10_241)),
        rep(0xFFFD, 3_413, "x"),
        rep(0xDC00, 3_413, "x"),
        rep(0xDC00, 3_414, ""),
        s(&"📧".repeat(2_560)),
    ]);
    v
}

/// The `minInterval`s periodic registrations ask for, in ms.
pub const INTERVALS: [u64; 8] = [
    0,
    3_600_000,
    43_200_000,
    46_800_000,
    86_400_000,
    90_000_000,
    129_600_000,
    172_800_000,
];

/// The engagement levels scenarios set.
pub const ENGAGEMENTS: [Engagement; 5] = [
    Engagement::None,
    Engagement::Minimal,
    Engagement::Low,
    Engagement::Medium,
    Engagement::High,
];

/// The permission states scenarios set.
pub const PERMISSIONS: [Permission; 3] =
    [Permission::Granted, Permission::Denied, Permission::Prompt];

/// The callers' kinds.
pub const KINDS: [CallerKind; 4] = [
    CallerKind::Window,
    CallerKind::DedicatedWorker,
    CallerKind::ServiceWorker,
    CallerKind::NestedFrame,
];

/// How listeners meet events ([`Op::Settle`]'s `listener` indexes it).
pub const LISTENERS: [Listener; 7] = [
    Listener::Ran {
        wait_until: Some(true),
        threw: false,
    },
    Listener::Ran {
        wait_until: Some(false),
        threw: false,
    },
    Listener::Ran {
        wait_until: None,
        threw: true,
    },
    Listener::Ran {
        wait_until: Some(true),
        threw: true,
    },
    Listener::Ran {
        wait_until: Some(false),
        threw: true,
    },
    Listener::Ran {
        wait_until: None,
        threw: false,
    },
    Listener::WorkerFailedToStart,
];

/// The user agent's constants for one scenario: drawn per scenario so that back-off, retry
/// limits, time limits and caps vary. Times in ms.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Setup {
    pub max_attempts: u32,
    pub initial_retry_delay: u64,
    pub retry_delay_factor: u32,
    pub max_event_duration: u64,
    pub recovery_time: u64,
    pub max_registrations_per_origin: Option<usize>,
    pub max_bytes_per_origin: Option<u64>,
    pub max_bytes_total: Option<u64>,
    pub min_periodic_interval: u64,
}

impl Default for Setup {
    /// Chromium's constants, with a per-origin cap of 4 so that the cap is reached.
    fn default() -> Self {
        let p = Params::chromium();
        Setup {
            max_attempts: p.max_attempts,
            initial_retry_delay: p.initial_retry_delay,
            retry_delay_factor: p.retry_delay_factor,
            max_event_duration: p.max_event_duration,
            recovery_time: p.recovery_time,
            max_registrations_per_origin: Some(4),
            max_bytes_per_origin: None,
            max_bytes_total: None,
            min_periodic_interval: p.min_periodic_interval,
        }
    }
}

impl Setup {
    /// The model's constants.
    pub fn model_params(&self) -> Params {
        Params {
            max_attempts: self.max_attempts,
            initial_retry_delay: self.initial_retry_delay,
            retry_delay_factor: self.retry_delay_factor,
            max_event_duration: self.max_event_duration,
            recovery_time: self.recovery_time,
            max_tag_bytes: 10_240,
            max_registrations_per_origin: self.max_registrations_per_origin,
            max_bytes_per_origin: self.max_bytes_per_origin,
            max_bytes_total: self.max_bytes_total,
            min_periodic_interval: self.min_periodic_interval,
        }
    }

    /// The engine's parameters, the same constants.
    pub fn engine_params(&self) -> Parameters {
        Parameters {
            max_attempts: self.max_attempts,
            initial_retry_delay: Duration::from_millis(self.initial_retry_delay),
            retry_delay_factor: self.retry_delay_factor,
            max_sync_event_duration: Duration::from_millis(self.max_event_duration),
            min_sync_recovery_time: Duration::from_millis(self.recovery_time),
            // The engine's own default: the model's is Chromium's 10,240 bytes, so a different
            // default would diverge.
            max_tag_bytes: Parameters::default().max_tag_bytes,
            max_registrations_per_origin: self.max_registrations_per_origin,
            max_bytes_per_origin: self.max_bytes_per_origin,
            max_bytes_total: self.max_bytes_total,
            min_periodic_interval: Duration::from_millis(self.min_periodic_interval),
        }
    }
}

/// Who calls: `origin` 0 is the origin of the registration called on (the common case), `k > 0`
/// is `ORIGINS[k - 1]`; `kind` indexes [`KINDS`].
#[derive(Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Who {
    pub origin: u8,
    pub kind: u8,
}

/// One step of a scenario. Indexes are taken modulo the universe's sizes; `sw` indexes the
/// service worker registrations the scenario has made so far (unregistered ones included).
#[derive(Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Op {
    /// `sync.register(tag)` on `sw`.
    Register { who: Who, sw: u8, tag: u8 },
    /// `n` calls of `sync.register()` on `sw` with the tags from `tag` on, all made before the
    /// store acknowledges any write (so they queue and share commits); with `crash`, the user
    /// agent dies before any of those writes is done, and restarts. Each tag is used twice in
    /// a row. With `settle` (and no crash), the first event in flight of `sw` ends first (its
    /// write is held too) and the first calls use its tag: they meet a write in flight. With
    /// `then` 1 (2), `sw` is unregistered (its origin's data cleared) before the writes are
    /// done.
    Burst {
        who: Who,
        sw: u8,
        tag: u8,
        n: u8,
        crash: bool,
        settle: bool,
        then: u8,
    },
    /// The store will fail the write of the next `register()` or `periodicSync.register()`
    /// (if it makes one).
    FailNextWrite,
    /// `sync.getTags()` on `sw`.
    GetTags { who: Who, sw: u8 },
    /// The `n`-th event in flight (in (sw, tag) order) ends as `LISTENERS[listener]` says.
    Settle { n: u8, listener: u8 },
    /// The `n`-th event that already ended (time limit, worker death) reports an outcome late.
    LateOutcome { n: u8, fulfilled: bool },
    /// The network changes.
    Online(bool),
    /// The "background-sync" permission of `ORIGINS[origin]` becomes `PERMISSIONS[state]`.
    Permission { origin: u8, state: u8 },
    /// `ORIGINS[origin]` gains or loses its top-level window.
    Window { origin: u8, open: bool },
    /// A new service worker registration of `ORIGINS[origin]`, not yet active.
    NewWorker { origin: u8 },
    /// `sw`'s worker becomes active.
    Activate { sw: u8 },
    /// The worker of `sw` dies.
    Terminate { sw: u8 },
    /// `sw` is unregistered.
    Unregister { sw: u8 },
    /// Clear-Site-Data for `ORIGINS[origin]`.
    ClearSiteData { origin: u8, by_key: bool },
    /// The user clears all browsing data.
    ClearAll,
    /// The user agent restarts.
    Restart,
    /// Time passes, in ms.
    Advance(u64),
    /// The wall clock is set back, in ms (no further back than time 0).
    ClockBack(u64),
    /// `periodicSync.register(tag, {minInterval: INTERVALS[interval]})`.
    PeriodicRegister {
        who: Who,
        sw: u8,
        tag: u8,
        interval: u8,
    },
    /// `periodicSync.unregister(tag)`.
    PeriodicUnregister { who: Who, sw: u8, tag: u8 },
    /// The `n`-th periodic event in flight ends as `LISTENERS[listener]` says.
    PeriodicSettle { n: u8, listener: u8 },
    /// `ORIGINS[origin]`'s engagement becomes `ENGAGEMENTS[level]`.
    Engagement { origin: u8, level: u8 },
    /// `ORIGINS[origin]`'s "periodic-background-sync" permission becomes `PERMISSIONS[state]`.
    PeriodicPermission { origin: u8, state: u8 },
}

fn pick<T: Copy>(list: &[T], i: u8) -> T {
    list[i as usize % list.len()]
}

fn tag_label(i: u8) -> String {
    let tags = tags();
    let tag = &tags[i as usize % tags.len()];
    if tag.len() > 16 {
        format!("<{} units, {} UTF-8 bytes>", tag.len(), utf8_bytes(tag))
    } else {
        format!("{:?}", String::from_utf16_lossy(tag)) + &format!(" {tag:04X?}")
    }
}

impl fmt::Debug for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = pick(&KINDS, self.kind);
        match self.origin as usize % (ORIGINS.len() + 1) {
            0 => write!(f, "{kind:?} of its origin"),
            k => write!(f, "{kind:?} of {}", ORIGINS[k - 1]),
        }
    }
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = |i: &u8| pick(&ORIGINS, *i);
        match self {
            Op::Register { who, sw, tag } => {
                write!(f, "register(sw {sw}, {}) from {who:?}", tag_label(*tag))
            }
            Op::Burst {
                who,
                sw,
                tag,
                n,
                crash,
                settle,
                then,
            } => write!(
                f,
                "burst of {} register(sw {sw}) from tag {} on, from {who:?}{}{}",
                n,
                tag_label(*tag),
                if *settle {
                    ", after the end of its first event in flight"
                } else {
                    ""
                },
                match (crash, then % 3) {
                    (true, _) => ", then a crash before any write is done",
                    (false, 1) => ", then sw is unregistered before any write is done",
                    (false, 2) => ", then its origin's data is cleared before any write is done",
                    _ => "",
                }
            ),
            Op::FailNextWrite => write!(f, "the store fails the next register()'s write"),
            Op::GetTags { who, sw } => write!(f, "getTags(sw {sw}) from {who:?}"),
            Op::Settle { n, listener } => {
                write!(f, "event #{n}: {:?}", pick(&LISTENERS, *listener))
            }
            Op::LateOutcome { n, fulfilled } => {
                write!(f, "ended event #{n} reports late (fulfilled: {fulfilled})")
            }
            Op::Online(b) => write!(f, "online({b})"),
            Op::Permission { origin, state } => {
                write!(
                    f,
                    "permission({}, {:?})",
                    o(origin),
                    pick(&PERMISSIONS, *state)
                )
            }
            Op::Window { origin, open } => write!(f, "window({}, open: {open})", o(origin)),
            Op::NewWorker { origin } => {
                write!(f, "new service worker registration of {}", o(origin))
            }
            Op::Activate { sw } => write!(f, "activate the worker of sw {sw}"),
            Op::Terminate { sw } => write!(f, "terminate the worker of sw {sw}"),
            Op::Unregister { sw } => write!(f, "unregister sw {sw}"),
            Op::ClearSiteData { origin, by_key } => write!(
                f,
                "Clear-Site-Data for {}{}",
                o(origin),
                if *by_key { " (its storage key)" } else { "" }
            ),
            Op::ClearAll => write!(f, "clear all browsing data"),
            Op::Restart => write!(f, "restart"),
            Op::Advance(ms) => write!(f, "advance {ms} ms"),
            Op::ClockBack(ms) => write!(f, "set the clock back {ms} ms"),
            Op::PeriodicRegister {
                who,
                sw,
                tag,
                interval,
            } => write!(
                f,
                "periodicSync.register(sw {sw}, {}, minInterval {} ms) from {who:?}",
                tag_label(*tag),
                pick(&INTERVALS, *interval)
            ),
            Op::PeriodicUnregister { who, sw, tag } => write!(
                f,
                "periodicSync.unregister(sw {sw}, {}) from {who:?}",
                tag_label(*tag)
            ),
            Op::PeriodicSettle { n, listener } => {
                write!(f, "periodic event #{n}: {:?}", pick(&LISTENERS, *listener))
            }
            Op::Engagement { origin, level } => {
                write!(
                    f,
                    "engagement({}, {:?})",
                    o(origin),
                    pick(&ENGAGEMENTS, *level)
                )
            }
            Op::PeriodicPermission { origin, state } => write!(
                f,
                "periodic permission({}, {:?})",
                o(origin),
                pick(&PERMISSIONS, *state)
            ),
        }
    }
}

/// The time steps [`Op::decode`] can express, in ms.
pub const ADVANCES: [u64; 17] = [
    1,
    1_000,
    10_000,
    60_000,
    179_999,
    180_000,
    299_999,
    300_000,
    900_000,
    2_700_000,
    3_600_000,
    7_200_000,
    43_199_999,
    43_200_000,
    46_800_000,
    86_400_000,
    172_800_000,
];

const ATTEMPTS: [u32; 5] = [1, 2, 3, 4, 5];
const DELAYS: [u64; 4] = [300_000, 1_000, 60_000, 3_600_000];
const FACTORS: [u32; 4] = [3, 1, 2, 10];
const CAPS: [Option<usize>; 5] = [Some(4), Some(1), Some(2), Some(8), None];
const BYTE_CAPS: [Option<u64>; 3] = [None, Some(400), Some(25_000)];
const TOTAL_CAPS: [Option<u64>; 3] = [None, Some(600), Some(45_000)];
const LIMITS: [u64; 3] = [180_000, 10_000, 600_000];
const GAPS: [u64; 2] = [43_200_000, 7_200_000];
const RECOVERIES: [u64; 2] = [360_000, 60_000];

fn index_of<T: PartialEq>(table: &[T], value: &T) -> Option<u8> {
    table.iter().position(|v| v == value).map(|i| i as u8)
}

impl Setup {
    /// The two bytes [`Op::decode`] reads this setup from, if its values are in the tables.
    pub fn encode(&self) -> Option<[u8; 2]> {
        let a = index_of(&ATTEMPTS, &self.max_attempts)?
            + 5 * index_of(&DELAYS, &self.initial_retry_delay)?
            + 20 * index_of(&FACTORS, &self.retry_delay_factor)?
            + 80 * index_of(&TOTAL_CAPS, &self.max_bytes_total)?;
        let b = index_of(&CAPS, &self.max_registrations_per_origin)?
            + 5 * index_of(&BYTE_CAPS, &self.max_bytes_per_origin)?
            + 15 * index_of(&LIMITS, &self.max_event_duration)?
            + 45 * index_of(&GAPS, &self.min_periodic_interval)?
            + 90 * index_of(&RECOVERIES, &self.recovery_time)?;
        Some([a, b])
    }

    fn decode(a: u8, b: u8) -> Setup {
        let (a, b) = (usize::from(a), usize::from(b));
        Setup {
            max_attempts: ATTEMPTS[a % 5],
            initial_retry_delay: DELAYS[a / 5 % 4],
            retry_delay_factor: FACTORS[a / 20 % 4],
            max_bytes_total: TOTAL_CAPS[a / 80 % 3],
            max_registrations_per_origin: CAPS[b % 5],
            max_bytes_per_origin: BYTE_CAPS[b / 5 % 3],
            max_event_duration: LIMITS[b / 15 % 3],
            min_periodic_interval: GAPS[b / 45 % 2],
            recovery_time: RECOVERIES[b / 90 % 2],
        }
    }
}

impl Who {
    fn encode(self) -> u8 {
        self.origin % 8 + 8 * (self.kind % 4)
    }

    fn decode(d: u8) -> Who {
        Who {
            origin: d % 8,
            kind: d / 8 % 4,
        }
    }
}

impl Op {
    /// Decodes a scenario from bytes (for coverage-guided fuzzing): two bytes pick the setup
    /// ([`Setup`]'s fields from small tables), then 4 bytes an operation. Any bytes decode.
    pub fn decode(bytes: &[u8]) -> (Setup, Vec<Op>) {
        let (setup, rest) = match bytes {
            [a, b, rest @ ..] => (Setup::decode(*a, *b), rest),
            _ => (Setup::default(), &[][..]),
        };
        let ops = rest
            .chunks_exact(4)
            .map(|c| {
                let (a, b, d) = (c[1], c[2], c[3]);
                let who = Who::decode(d);
                match c[0] % 23 {
                    0 | 1 => Op::Register { who, sw: a, tag: b },
                    2 => Op::Burst {
                        who,
                        sw: a & 0x7F,
                        tag: b & 0x7F,
                        n: 2 + d / 32,
                        crash: a & 0x80 != 0,
                        settle: b & 0x80 != 0,
                        then: c[0] / 23 % 3,
                    },
                    3 => Op::FailNextWrite,
                    4 => Op::GetTags { who, sw: a },
                    5 | 6 => Op::Settle { n: a, listener: b },
                    7 => Op::LateOutcome {
                        n: a,
                        fulfilled: b % 2 == 0,
                    },
                    8 => Op::Online(a % 2 == 0),
                    9 => Op::Permission {
                        origin: a,
                        state: b,
                    },
                    10 => Op::Window {
                        origin: a,
                        open: b % 2 == 0,
                    },
                    11 => Op::NewWorker { origin: a },
                    12 => Op::Activate { sw: a },
                    13 => Op::Terminate { sw: a },
                    14 => Op::Unregister { sw: a },
                    15 if b % 4 == 0 => Op::ClearAll,
                    15 => Op::ClearSiteData {
                        origin: a,
                        by_key: b % 4 == 2,
                    },
                    16 => Op::Restart,
                    17 => Op::PeriodicRegister {
                        who,
                        sw: a,
                        tag: b,
                        interval: d / 32,
                    },
                    18 => Op::PeriodicUnregister { who, sw: a, tag: b },
                    19 => Op::PeriodicSettle { n: a, listener: b },
                    20 => Op::Engagement {
                        origin: a,
                        level: b,
                    },
                    21 => Op::PeriodicPermission {
                        origin: a,
                        state: b,
                    },
                    _ if b % 8 == 1 => Op::ClockBack(ADVANCES[a as usize % ADVANCES.len()]),
                    _ => Op::Advance(ADVANCES[a as usize % ADVANCES.len()]),
                }
            })
            .collect();
        (setup, ops)
    }

    /// The four bytes [`Op::decode`] reads this operation from (an `Advance` not in
    /// [`ADVANCES`] becomes the longest one that is not longer; a burst's `n` is 2 to 9).
    pub fn encode(&self) -> [u8; 4] {
        let flag = |b: bool| u8::from(b) << 7;
        match self {
            Op::Register { who, sw, tag } => [0, *sw, *tag, who.encode()],
            Op::Burst {
                who,
                sw,
                tag,
                n,
                crash,
                settle,
                then,
            } => [
                2 + 23 * (then % 3),
                (sw & 0x7F) | flag(*crash),
                (tag & 0x7F) | flag(*settle),
                who.encode() + 32 * (n.clamp(&2, &9) - 2),
            ],
            Op::FailNextWrite => [3, 0, 0, 0],
            Op::GetTags { who, sw } => [4, *sw, 0, who.encode()],
            Op::Settle { n, listener } => [5, *n, *listener, 0],
            Op::LateOutcome { n, fulfilled } => [7, *n, u8::from(!fulfilled), 0],
            Op::Online(b) => [8, u8::from(!b), 0, 0],
            Op::Permission { origin, state } => [9, *origin, *state, 0],
            Op::Window { origin, open } => [10, *origin, u8::from(!open), 0],
            Op::NewWorker { origin } => [11, *origin, 0, 0],
            Op::Activate { sw } => [12, *sw, 0, 0],
            Op::Terminate { sw } => [13, *sw, 0, 0],
            Op::Unregister { sw } => [14, *sw, 0, 0],
            Op::ClearSiteData { origin, by_key } => [15, *origin, if *by_key { 2 } else { 1 }, 0],
            Op::ClearAll => [15, 0, 0, 0],
            Op::Restart => [16, 0, 0, 0],
            Op::PeriodicRegister {
                who,
                sw,
                tag,
                interval,
            } => [17, *sw, *tag, who.encode() + 32 * (interval % 8)],
            Op::PeriodicUnregister { who, sw, tag } => [18, *sw, *tag, who.encode()],
            Op::PeriodicSettle { n, listener } => [19, *n, *listener, 0],
            Op::Engagement { origin, level } => [20, *origin, *level, 0],
            Op::PeriodicPermission { origin, state } => [21, *origin, *state, 0],
            Op::Advance(ms) => {
                let i = ADVANCES.iter().rposition(|a| a <= ms).unwrap_or(0);
                [22, i as u8, 0, 0]
            }
            Op::ClockBack(ms) => {
                let i = ADVANCES.iter().rposition(|a| a <= ms).unwrap_or(0);
                [22, i as u8, 1, 0]
            }
        }
    }
}

/// A scenario as the bytes [`Op::decode`] reads (a setup outside the tables is encoded as the
/// default one).
pub fn encode_scenario(setup: &Setup, ops: &[Op]) -> Vec<u8> {
    let head = setup
        .encode()
        .or_else(|| Setup::default().encode())
        .unwrap_or([2, 0]);
    head.into_iter()
        .chain(ops.iter().flat_map(Op::encode))
        .collect()
}

/// Where the engine and the model disagreed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// The step (0-based) after which they disagreed.
    pub step: usize,
    /// What differed.
    pub what: String,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "after step {}: {}", self.step, self.what)
    }
}

/// What scenarios reached, gathered over a run: how a fuzzing team judges a generator.
#[derive(Debug, Default, Clone)]
pub struct Reached {
    /// Distinct (state, attempts, lastChance, kind) of single registrations.
    pub registration_states: BTreeSet<(String, u32, Option<bool>, &'static str)>,
    /// Distinct whole-user-agent states: online, and the multiset of every registration's
    /// (kind, state, attempts, lastChance).
    pub engine_states: BTreeSet<u64>,
    /// Counters: operations and what came of them.
    pub counts: BTreeMap<String, u64>,
    /// The most tags one getTags() returned.
    pub max_tags: usize,
    /// What this scenario did at least once; [`merge`](Reached::merge) counts the scenarios.
    pub flags: BTreeSet<&'static str>,
}

impl Reached {
    fn count(&mut self, what: impl Into<String>) {
        *self.counts.entry(what.into()).or_default() += 1;
    }

    fn observe(&mut self, model: &Model) {
        use std::hash::{Hash, Hasher};
        let mut whole: Vec<(&'static str, String, u32, Option<bool>)> = Vec::new();
        for r in &model.registrations {
            let key = (
                format!("{:?}", r.state),
                r.attempts,
                r.event.map(|(l, _)| l),
                "one-shot",
            );
            whole.push((key.3, key.0.clone(), key.1, key.2));
            self.registration_states.insert(key);
        }
        for r in &model.periodic {
            let state = match (r.deadline.is_some(), r.reregistered, r.retry_at.is_some()) {
                (true, true, _) => "ReregisteredWhileFiring",
                (true, false, _) => "Firing",
                (false, _, true) => "Waiting",
                (false, _, false) => "Pending",
            };
            let key = (state.to_owned(), r.attempts, None, "periodic");
            whole.push((key.3, key.0.clone(), key.1, key.2));
            self.registration_states.insert(key);
        }
        whole.sort();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (model.online, whole).hash(&mut h);
        self.engine_states.insert(h.finish());
    }

    /// Adds another scenario's figures.
    pub fn merge(&mut self, other: Reached) {
        for flag in other.flags {
            *self
                .counts
                .entry(format!("scenarios in which {flag}"))
                .or_default() += 1;
        }
        self.registration_states.extend(other.registration_states);
        self.engine_states.extend(other.engine_states);
        for (k, v) in other.counts {
            *self.counts.entry(k).or_default() += v;
        }
        self.max_tags = self.max_tags.max(other.max_tags);
    }

    /// The report, one figure a line.
    pub fn report(&self) -> String {
        let mut out = format!(
            "distinct (state, attempts, lastChance, kind) of a registration: {}\n\
             distinct whole-engine states (online + every registration's state): {}\n\
             most tags one getTags() returned: {}\n",
            self.registration_states.len(),
            self.engine_states.len(),
            self.max_tags
        );
        for (k, v) in &self.counts {
            out.push_str(&format!("{k}: {v}\n"));
        }
        out
    }
}

/// The service-worker host of the engine side: the registrations the harness made, and the
/// events fired, holding their reporters until the scenario settles them.
#[derive(Default)]
struct Host {
    /// Each registration's origin and whether it has an active worker.
    registered: Mutex<HashMap<SwRegistrationId, (Origin, bool)>>,
    fired: Mutex<Vec<(SyncEventDispatch, Option<OutcomeReporter>)>>,
}

impl Host {
    fn get(&self, sw: SwRegistrationId) -> Option<(Origin, bool)> {
        self.registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&sw)
            .cloned()
    }

    /// The storage key owning `sw`, if the host knows it.
    fn owner(&self, sw: SwRegistrationId) -> Option<StorageKey> {
        self.get(sw).map(|(o, _)| StorageKey::new(o))
    }

    fn set(&self, sw: SwRegistrationId, value: Option<(Origin, bool)>) {
        let mut map = self.registered.lock().unwrap_or_else(|e| e.into_inner());
        match value {
            Some(v) => map.insert(sw, v),
            None => map.remove(&sw),
        };
    }
}

impl ServiceWorkerHost for Host {
    fn registration(&self, sw: SwRegistrationId) -> Option<RegistrationInfo> {
        self.get(sw).map(|(origin, active)| RegistrationInfo {
            origin,
            partition: Default::default(),
            has_active_worker: active,
        })
    }
    fn fire_sync_event(&self, event: SyncEventDispatch, reply: OutcomeReporter) {
        self.fired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((event, Some(reply)));
    }
}

/// The engine, driven synchronously. Writes are acknowledged at once, unless held (a burst of
/// calls) or failed (`fail_next`).
struct Engine {
    core: Scheduler,
    dispatcher: Dispatcher,
    store: MemoryStore,
    /// Outcomes reporters sent (dropped reporters of dead workers); ignored by design.
    reported: Arc<Mutex<Vec<(DispatchId, DispatchOutcome)>>>,
    /// Events in flight, by key.
    in_flight: HashMap<(SwRegistrationId, Vec<u16>), DispatchId>,
    /// Periodic events in flight, by key.
    periodic_in_flight: HashMap<(SwRegistrationId, Vec<u16>), DispatchId>,
    /// Events that ended without their worker's word (time limit, death), for late outcomes.
    ended: Vec<DispatchId>,
    settled: HashMap<RequestId, Result<Response, DomException>>,
    fired: Vec<Fired>,
    /// Writes held back while a burst of calls is made.
    held: Option<Vec<(PersistId, bgsync_scheduler::StoreOps)>>,
    /// The next write fails.
    fail_next: bool,
    next_request: u64,
    now: Timestamp,
}

impl Engine {
    fn start(store: MemoryStore, host: Arc<Host>, now: Timestamp, ua: &Ua) -> Engine {
        let reported: Arc<Mutex<Vec<(DispatchId, DispatchOutcome)>>> = Arc::default();
        let sink = reported.clone();
        let dispatcher = Dispatcher::new(
            host.clone(),
            Arc::new(move |id, o| sink.lock().unwrap_or_else(|e| e.into_inner()).push((id, o))),
        );
        let mut core = Scheduler::new(ua.setup.engine_params());
        core.set_online(now, ua.online);
        // What a driver asks the embedder at start-up for the origins it holds.
        for (o, p) in &ua.permissions {
            core.set_permission(now, &origin(o), permission_state(*p));
        }
        for (o, p) in &ua.periodic_permissions {
            core.set_periodic_permission(now, &origin(o), permission_state(*p));
        }
        for (o, level) in &ua.engagement {
            core.set_engagement(now, &origin(o), engine_engagement(*level));
        }
        let mut records = store.snapshot();
        records.retain(|r| host.get(r.sw).is_some());
        let mut e = Engine {
            core,
            dispatcher,
            store,
            reported,
            in_flight: HashMap::new(),
            periodic_in_flight: HashMap::new(),
            ended: Vec::new(),
            settled: HashMap::new(),
            fired: Vec::new(),
            held: None,
            fail_next: false,
            next_request: 1,
            now,
        };
        e.core.restore(now, records);
        e.run();
        e
    }

    fn run(&mut self) {
        while let Some(effect) = self.core.poll_effect() {
            match effect {
                Effect::Persist { id, ops } => match &mut self.held {
                    Some(held) => held.push((id, ops)),
                    None => self.write(id, &ops),
                },
                Effect::Settle { request, result } => {
                    self.settled.insert(request, result);
                }
                Effect::Dispatch(d) => {
                    let periodic = d.kind == SyncKind::Periodic;
                    self.fired.push(Fired {
                        sw: d.sw.0,
                        tag: d.tag.as_utf16().to_vec(),
                        last_chance: d.last_chance,
                        periodic,
                    });
                    let key = (d.sw, d.tag.as_utf16().to_vec());
                    let id = d.id;
                    match self.dispatcher.dispatch(self.now, d) {
                        Some((id, outcome)) => self.core.dispatch_completed(self.now, id, outcome),
                        None if periodic => {
                            self.periodic_in_flight.insert(key, id);
                        }
                        None => {
                            self.in_flight.insert(key, id);
                        }
                    }
                }
                Effect::AbandonDispatch { id } => {
                    self.dispatcher.abandon(id);
                    self.forget(id);
                }
            }
        }
        // Reports of dropped reporters reach an engine that already forgot those events.
        self.reported
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The store takes (or fails) one write.
    fn write(&mut self, id: PersistId, ops: &[StoreOp]) {
        let result = if std::mem::take(&mut self.fail_next) {
            Err("the disk is full (a failure the scenario asked for)".to_owned())
        } else {
            self.store.commit(ops).map_err(|e| e.to_string())
        };
        self.core.persist_completed(self.now, id, result);
        // As the facade's driver does: the answers at the front are taken at once, each write
        // of a group commit answering its caller before the next write is acknowledged.
        while let Some((request, result)) = self.core.poll_settlement() {
            self.settled.insert(request, result);
        }
    }

    /// Holds writes until [`release`](Engine::release).
    fn hold(&mut self) {
        self.held.get_or_insert_with(Vec::new);
    }

    /// Acknowledges the held writes, in order, and runs what they set off.
    fn release(&mut self) {
        for (id, ops) in self.held.take().unwrap_or_default() {
            self.write(id, &ops);
        }
        self.run();
    }

    /// Forgets an event in flight; `ended` keeps its id for a late outcome.
    fn forget(&mut self, id: DispatchId) {
        let before = self.in_flight.len() + self.periodic_in_flight.len();
        self.in_flight.retain(|_, v| *v != id);
        self.periodic_in_flight.retain(|_, v| *v != id);
        if self.in_flight.len() + self.periodic_in_flight.len() < before {
            self.ended.push(id);
            if self.ended.len() > 16 {
                self.ended.remove(0);
            }
        }
    }

    /// How the call `request` settled: resolved, or the exception's name.
    fn outcome(&mut self, request: RequestId) -> Option<Result<(), Exception>> {
        self.settled
            .remove(&request)
            .map(|r| r.map(|_| ()).map_err(|e| e.name.as_str()))
    }

    fn request(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    fn complete(&mut self, id: DispatchId, outcome: DispatchOutcome) {
        self.forget(id);
        if let Some(o) = self.dispatcher.outcome_reported(id, outcome) {
            self.core.dispatch_completed(self.now, id, o);
        }
        self.run();
    }

    /// The wall clock is set back `back` ms, as the driver sees it: the dispatcher's time
    /// limits and then the core are told.
    fn clock_went_back(&mut self, back: u64) {
        let from = self.now;
        self.now = Timestamp(from.0.saturating_sub(back));
        self.dispatcher.clock_went_back(from, self.now);
        self.core.handle_timeout(self.now);
        self.run();
    }

    fn advance_to(&mut self, target: Timestamp) {
        loop {
            let next = [self.core.poll_timeout(), self.dispatcher.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= target => {
                    self.now = self.now.max(t);
                    for (id, outcome) in self.dispatcher.handle_timeout(self.now) {
                        self.forget(id);
                        self.core.dispatch_completed(self.now, id, outcome);
                    }
                    self.core.handle_timeout(self.now);
                    self.run();
                }
                _ => break,
            }
        }
        self.now = self.now.max(target);
        self.core.handle_timeout(self.now);
        self.run();
    }

    /// Runs the core, then checks that the call `request` settled as the model says it does.
    fn settles_as(
        &mut self,
        request: RequestId,
        expected: &Result<(), Exception>,
    ) -> Result<(), String> {
        self.run();
        match self.outcome(request) {
            None => Err("the engine did not settle the promise".into()),
            Some(got) if got != *expected => Err(format!("engine {got:?}, model {expected:?}")),
            Some(_) => Ok(()),
        }
    }

    /// Ends the `n`th event of `kind` in flight as `listener` says, after checking that the
    /// engine and the model have the same events in flight (`model_keys`, sorted); `None` when
    /// none are.
    fn settle_nth(
        &mut self,
        kind: SyncKind,
        model_keys: &[(u64, Tag)],
        n: u8,
        listener: Listener,
    ) -> Result<Option<(u64, Tag)>, String> {
        let in_flight = if kind == SyncKind::Periodic {
            &self.periodic_in_flight
        } else {
            &self.in_flight
        };
        let mut keys: Vec<(u64, Tag)> = in_flight.keys().map(|(s, t)| (s.0, t.clone())).collect();
        keys.sort();
        if keys != model_keys {
            return Err(format!(
                "{kind:?} in flight: engine {keys:?}, model {model_keys:?}"
            ));
        }
        let Some(key) = keys.get(n as usize % keys.len().max(1)).cloned() else {
            return Ok(None);
        };
        let id = in_flight[&(SwRegistrationId(key.0), key.1.clone())];
        self.complete(id, dispatch_outcome(listener));
        Ok(Some(key))
    }
}

/// What the engine's binding reports for `listener`: the neutral `ExtendableEvent` lifetime
/// decides from the listener's `waitUntil` and whether it threw.
fn dispatch_outcome(listener: Listener) -> DispatchOutcome {
    match listener {
        Listener::WorkerDied => DispatchOutcome::WorkerTerminated,
        Listener::WorkerFailedToStart => DispatchOutcome::WorkerFailedToStart,
        Listener::Ran { wait_until, threw } => {
            let mut lifetime = ExtendableEventLifetime::new(true);
            if wait_until.is_some() && lifetime.wait_until().is_err() {
                return DispatchOutcome::Rejected;
            }
            lifetime.dispatch_finished(threw);
            if let Some(fulfilled) = wait_until {
                lifetime.promise_settled(fulfilled);
            }
            match lifetime.outcome() {
                Some(EventOutcome::Fulfilled) => DispatchOutcome::Fulfilled,
                Some(EventOutcome::Rejected) | None => DispatchOutcome::Rejected,
            }
        }
    }
}

fn origin(s: &str) -> Origin {
    Origin::parse(s).expect("the scenarios' origins parse")
}

fn permission_state(p: Permission) -> PermissionState {
    match p {
        Permission::Granted => PermissionState::Granted,
        Permission::Denied => PermissionState::Denied,
        Permission::Prompt => PermissionState::Prompt,
    }
}

/// The engine's engagement level of the model's, by the names the engine's API takes
/// (`bgsyncTest.setEngagement`).
fn engine_engagement(e: Engagement) -> EngineEngagement {
    let name = match e {
        Engagement::None => "none",
        Engagement::Minimal => "minimal",
        Engagement::Low => "low",
        Engagement::Medium => "medium",
        Engagement::High => "high",
    };
    let level = EngineEngagement::parse(name).expect("the engine takes every level by its name");
    assert_eq!(
        level.as_str(),
        name,
        "the engine names the level as it takes it"
    );
    level
}

/// What the harness, as the embedder, knows about the user agent.
struct Ua {
    setup: Setup,
    online: bool,
    windows: Vec<&'static str>,
    permissions: Vec<(&'static str, Permission)>,
    periodic_permissions: Vec<(&'static str, Permission)>,
    engagement: Vec<(&'static str, Engagement)>,
    /// Every service worker registration made (id, origin), unregistered ones included.
    workers: Vec<(u64, &'static str)>,
}

fn set<T: Copy>(list: &mut Vec<(&'static str, T)>, key: &'static str, value: T) {
    list.retain(|(k, _)| *k != key);
    list.push((key, value));
}

fn get<T: Copy>(list: &[(&'static str, T)], key: &str, default: T) -> T {
    list.iter()
        .find(|(k, _)| *k == key)
        .map_or(default, |(_, v)| *v)
}

impl Ua {
    fn sw(&self, i: u8) -> u64 {
        self.workers[i as usize % self.workers.len()].0
    }

    fn caller(&self, who: Who, sw: u64) -> Caller {
        let own = self
            .workers
            .iter()
            .find(|(id, _)| *id == sw)
            .map_or(ORIGINS[0], |(_, o)| *o);
        let origin = match who.origin as usize % (ORIGINS.len() + 1) {
            0 => own,
            k => ORIGINS[k - 1],
        };
        Caller {
            origin: origin.to_owned(),
            kind: pick(&KINDS, who.kind),
        }
    }

    /// What the embedder tells the engine about a register() call.
    fn context(
        &self,
        host: &Host,
        caller: &Caller,
        sw: u64,
        permission: Permission,
    ) -> RegisterContext {
        let sw = SwRegistrationId(sw);
        RegisterContext {
            registration_key: host.owner(sw),
            has_active_worker: host.get(sw).is_some_and(|(_, active)| active),
            // The caller itself counts if it is (or belongs to) a top-level window.
            has_window_client: matches!(
                caller.kind,
                CallerKind::Window | CallerKind::DedicatedWorker
            ) || self.windows.contains(&caller.origin.as_str()),
            permission: permission_state(permission),
        }
    }
}

/// Runs `ops` with [`Setup::default`]; the first disagreement is returned.
pub fn run_scenario(ops: &[Op]) -> Result<(), Divergence> {
    run_scenario_with(&Setup::default(), ops, &mut Reached::default())
}

/// Runs `ops` on the engine and the model with the constants of `setup`, noting what the
/// scenario reached in `reached`; the first disagreement is returned.
pub fn run_scenario_with(
    setup: &Setup,
    ops: &[Op],
    reached: &mut Reached,
) -> Result<(), Divergence> {
    let tags = tags();
    let mut ua = Ua {
        setup: setup.clone(),
        online: true,
        windows: WORKERS.iter().map(|(_, o)| ORIGINS[*o]).collect(),
        permissions: Vec::new(),
        periodic_permissions: Vec::new(),
        engagement: Vec::new(),
        workers: WORKERS.iter().map(|(sw, o)| (*sw, ORIGINS[*o])).collect(),
    };
    ua.windows.dedup();
    let mut model = Model::new(
        setup.model_params(),
        ua.workers
            .iter()
            .map(|(sw, o)| (*sw, o.to_string()))
            .collect(),
    );
    let host = Arc::new(Host::default());
    for (sw, o) in &ua.workers {
        host.set(SwRegistrationId(*sw), Some((origin(o), true)));
    }
    let mut engine = Engine::start(MemoryStore::new(), host.clone(), Timestamp(0), &ua);
    let mut fail_next = false;
    // Reporters of events from before a restart, for late outcomes.
    let mut stale: Vec<OutcomeReporter> = Vec::new();

    for (step, op) in ops.iter().enumerate() {
        let diverge = |what: String| Divergence {
            step,
            what: format!("{op:?}: {what}"),
        };
        let o = |i: &u8| pick(&ORIGINS, *i);
        match op {
            Op::Register { who, sw, tag } => {
                let sw = ua.sw(*sw);
                let caller = ua.caller(*who, sw);
                let tag = &tags[*tag as usize % tags.len()];
                register_both(
                    &mut model,
                    &mut engine,
                    &host,
                    &ua,
                    &caller,
                    sw,
                    tag,
                    fail_next,
                    reached,
                )
                .map_err(diverge)?;
                fail_next = false;
            }
            Op::Burst {
                who,
                sw,
                tag,
                n,
                crash,
                settle,
                then,
            } => {
                let sw = ua.sw(*sw);
                let caller = ua.caller(*who, sw);
                // Unregistration or clearing before the writes are done: a call whose write is
                // in flight then, or queued behind one, is rejected (Ours: InvalidStateError
                // for an unregistered registration, UnknownError for cleared data; a waiting
                // registration made pending finds itself gone: InvalidStateError).
                let then = if *crash { 0 } else { then % 3 };
                engine.hold();
                let mut first: Option<Tag> = None;
                if *settle && !*crash {
                    let keys = model.in_flight();
                    if let Some(k) = keys.iter().position(|(s, _)| *s == sw) {
                        let listener = LISTENERS[*n as usize % 2];
                        engine
                            .settle_nth(SyncKind::OneShot, &keys, k as u8, listener)
                            .map_err(diverge)?;
                        // The registration stays (and counts against the caps) until its
                        // outcome's write is done: before the unregistration or the clearing,
                        // that is never.
                        if then == 0 {
                            model.settle(sw, &keys[k].1, listener.settled());
                        }
                        first = Some(keys[k].1.clone());
                        reached.count("burst meets an event's write in flight");
                    }
                }
                let mut calls = Vec::new();
                let mut busy: Vec<Tag> = first.iter().cloned().collect();
                for k in 0..*n as usize {
                    let tag = match &first {
                        Some(t) if k < 2 => t,
                        _ => &tags[(*tag as usize + k / 2) % tags.len()],
                    };
                    // A crash before the writes: what the calls did dies with the user agent
                    // (the model does not make them; their promises never settle).
                    let expected = if *crash {
                        Ok(())
                    } else if then == 0 {
                        model.register(&caller, sw, tag)
                    } else if busy.contains(tag) {
                        Err(if then == 1 {
                            "InvalidStateError"
                        } else {
                            "UnknownError"
                        })
                    } else {
                        let before = model
                            .registrations
                            .iter()
                            .find(|r| r.sw == sw && r.tag == *tag)
                            .map(|r| r.state);
                        // Made in the model (it counts against the caps for the calls after
                        // it), but an event it fired never fires: its write is never done.
                        let fired = model.fired.len();
                        let result = model.register(&caller, sw, tag);
                        match before {
                            _ if result.is_err() => result,
                            None | Some(State::Waiting) => {
                                model.fired.truncate(fired);
                                busy.push(tag.clone());
                                Err(match (before, then) {
                                    (None, 2) => "UnknownError",
                                    _ => "InvalidStateError",
                                })
                            }
                            Some(_) => result,
                        }
                    };
                    count_call(reached, "register (burst)", &expected);
                    let request = engine.request();
                    engine.core.register(
                        engine.now,
                        request,
                        RegisterCall {
                            caller: origin(&caller.origin).into(),
                            sw: SwRegistrationId(sw),
                            tag: EngineTag::from_utf16(tag.clone()),
                            context: ua.context(
                                &host,
                                &caller,
                                sw,
                                model.permission(&caller.origin),
                            ),
                        },
                    );
                    engine.run();
                    calls.push((request, expected));
                }
                if *crash {
                    engine.held = None;
                    reached.count("crash with writes in flight");
                    restart(&mut model, &mut engine, &host, &ua, &mut stale);
                    calls.clear();
                }
                let mut cleared = None;
                if then == 1 {
                    reached.count("unregistered with writes in flight");
                    model.unregister(sw);
                    host.set(SwRegistrationId(sw), None);
                    engine
                        .core
                        .service_worker_unregistered(engine.now, SwRegistrationId(sw));
                    engine.run();
                } else if then == 2 {
                    reached.count("cleared with writes in flight");
                    let name = model.origin_of(sw).unwrap_or(ORIGINS[0]).to_owned();
                    model.clear_site_data(&name);
                    let request = engine.request();
                    engine
                        .core
                        .clear_origin(engine.now, request, &origin(&name));
                    engine.run();
                    cleared = Some(request);
                }
                engine.release();
                for (request, expected) in calls.into_iter().chain(cleared.map(|r| (r, Ok(())))) {
                    engine.settles_as(request, &expected).map_err(diverge)?;
                }
            }
            Op::FailNextWrite => fail_next = true,
            Op::GetTags { who, sw } => {
                let sw = ua.sw(*sw);
                let caller = ua.caller(*who, sw);
                let expected = model.get_tags(&caller, sw);
                let got = engine_tags(&mut engine, &host, &caller.origin, sw, false);
                if let Ok(t) = &expected {
                    reached.max_tags = reached.max_tags.max(t.len());
                    if t.len() >= 4 {
                        reached.flags.insert("a getTags() returned 4 tags or more");
                    }
                }
                count_call(
                    reached,
                    "getTags",
                    &expected.as_ref().map(|_| ()).map_err(|e| *e),
                );
                if got != expected {
                    return Err(diverge(format!("engine {got:?}, model {expected:?}")));
                }
            }
            Op::Settle { n, listener } => {
                let keys = model.in_flight();
                let listener = pick(&LISTENERS, *listener);
                match engine
                    .settle_nth(SyncKind::OneShot, &keys, *n, listener)
                    .map_err(diverge)?
                {
                    Some((s, tag)) => {
                        model.settle(s, &tag, listener.settled());
                        reached.count(format!("settle: {listener:?}"));
                    }
                    None => reached.count("settle: nothing in flight"),
                }
            }
            Op::LateOutcome { n, fulfilled } => {
                let outcome = if *fulfilled {
                    DispatchOutcome::Fulfilled
                } else {
                    DispatchOutcome::Rejected
                };
                if n % 2 == 1 && !stale.is_empty() {
                    // A worker of the user agent before the restart answers now.
                    let reporter = stale.remove(*n as usize % stale.len());
                    reporter.report(outcome);
                    engine.run();
                    reached.count("late outcome from before a restart");
                } else if let Some(&id) = engine.ended.get(*n as usize % engine.ended.len().max(1))
                {
                    reached.count("late outcome of an ended event");
                    engine.complete(id, outcome);
                }
            }
            Op::Online(b) => {
                ua.online = *b;
                model.set_online(*b);
                engine.core.set_online(engine.now, *b);
                engine.run();
            }
            Op::Permission { origin: i, state } => {
                let (name, state) = (o(i), pick(&PERMISSIONS, *state));
                set(&mut ua.permissions, name, state);
                model.set_permission(name, state);
                engine
                    .core
                    .set_permission(engine.now, &origin(name), permission_state(state));
                engine.run();
            }
            Op::Window { origin: i, open } => {
                let name = o(i);
                ua.windows.retain(|x| *x != name);
                if *open {
                    ua.windows.push(name);
                }
                model.set_window(name, *open);
            }
            Op::NewWorker { origin: i } => {
                if ua.workers.len() < MAX_WORKERS {
                    let sw = ua.workers.iter().map(|(s, _)| *s).max().unwrap_or(0) + 1;
                    ua.workers.push((sw, o(i)));
                    model.add_worker(sw, o(i));
                    host.set(SwRegistrationId(sw), Some((origin(o(i)), false)));
                    reached.count("new service worker registration");
                }
            }
            Op::Activate { sw } => {
                let sw = ua.sw(*sw);
                model.activate(sw);
                if let Some((origin, _)) = host.get(SwRegistrationId(sw)) {
                    host.set(SwRegistrationId(sw), Some((origin, true)));
                }
            }
            Op::Terminate { sw } => {
                let sw = SwRegistrationId(ua.sw(*sw));
                model.terminate_worker(sw.0);
                let ids: Vec<DispatchId> = engine
                    .in_flight
                    .iter()
                    .chain(engine.periodic_in_flight.iter())
                    .filter(|((x, _), _)| *x == sw)
                    .map(|(_, id)| *id)
                    .collect();
                for id in ids {
                    engine.complete(id, dispatch_outcome(Listener::WorkerDied));
                }
            }
            Op::Unregister { sw } => {
                let sw = ua.sw(*sw);
                model.unregister(sw);
                host.set(SwRegistrationId(sw), None);
                engine
                    .core
                    .service_worker_unregistered(engine.now, SwRegistrationId(sw));
                engine.run();
            }
            Op::ClearSiteData { origin: i, by_key } => {
                let name = o(i);
                model.clear_site_data(name);
                let request = engine.request();
                if *by_key {
                    let key = StorageKey::new(origin(name));
                    engine.core.clear_storage_key(engine.now, request, &key);
                } else {
                    engine.core.clear_origin(engine.now, request, &origin(name));
                }
                engine.settles_as(request, &Ok(())).map_err(diverge)?;
                reached.count("clear-site-data");
            }
            Op::ClearAll => {
                for name in ORIGINS {
                    model.clear_site_data(name);
                }
                let request = engine.request();
                engine.core.clear_all(engine.now, request);
                engine.settles_as(request, &Ok(())).map_err(diverge)?;
                reached.count("clear all browsing data");
            }
            Op::Restart => {
                reached.count(format!(
                    "restart with {} events in flight",
                    if model.in_flight().is_empty() {
                        "no"
                    } else {
                        "some"
                    }
                ));
                restart(&mut model, &mut engine, &host, &ua, &mut stale);
            }
            Op::Advance(ms) => {
                let target = engine.now.0 + ms;
                model.advance_to(target);
                engine.advance_to(Timestamp(target));
            }
            Op::ClockBack(ms) => {
                let waiting = model
                    .registrations
                    .iter()
                    .any(|r| r.state == State::Waiting);
                let firing = !model.in_flight().is_empty();
                reached.count(format!(
                    "clock set back with {} waiting, {} in flight, {} periodic",
                    if waiting { "some" } else { "none" },
                    if firing { "some" } else { "none" },
                    if model.periodic.is_empty() {
                        "none"
                    } else {
                        "some"
                    },
                ));
                model.clock_went_back(*ms);
                engine.clock_went_back(*ms);
            }
            Op::PeriodicRegister {
                who,
                sw,
                tag,
                interval,
            } => {
                let sw = ua.sw(*sw);
                let caller = ua.caller(*who, sw);
                let tag = &tags[*tag as usize % tags.len()];
                let ms = pick(&INTERVALS, *interval);
                let expected = if fail_next {
                    model.periodic_register_failing_write(&caller, sw, tag, ms)
                } else {
                    model.periodic_register(&caller, sw, tag, ms)
                };
                count_call(
                    reached,
                    if fail_next {
                        "periodicSync.register (failing write)"
                    } else {
                        "periodicSync.register"
                    },
                    &expected,
                );
                let request = engine.request();
                engine.fail_next = std::mem::take(&mut fail_next);
                let level = get(&ua.engagement, &caller.origin, Engagement::High);
                engine.core.periodic_register(
                    engine.now,
                    request,
                    PeriodicRegisterCall {
                        caller: origin(&caller.origin).into(),
                        sw: SwRegistrationId(sw),
                        tag: EngineTag::from_utf16(tag.clone()),
                        min_interval: Duration::from_millis(ms),
                        context: ua.context(
                            &host,
                            &caller,
                            sw,
                            model.periodic_permission(&caller.origin),
                        ),
                        engagement: engine_engagement(level),
                    },
                );
                let settled = engine.settles_as(request, &expected);
                engine.fail_next = false;
                settled.map_err(diverge)?;
            }
            Op::PeriodicUnregister { who, sw, tag } => {
                let sw = ua.sw(*sw);
                let caller = ua.caller(*who, sw);
                let tag = &tags[*tag as usize % tags.len()];
                let expected = model.periodic_unregister(&caller, sw, tag);
                let request = engine.request();
                let owner = host.owner(SwRegistrationId(sw));
                engine.core.periodic_unregister(
                    engine.now,
                    request,
                    &StorageKey::new(origin(&caller.origin)),
                    SwRegistrationId(sw),
                    EngineTag::from_utf16(tag.clone()),
                    owner.as_ref(),
                );
                engine.settles_as(request, &expected).map_err(diverge)?;
            }
            Op::PeriodicSettle { n, listener } => {
                let keys = model.periodic_in_flight();
                let listener = pick(&LISTENERS, *listener);
                match engine
                    .settle_nth(SyncKind::Periodic, &keys, *n, listener)
                    .map_err(diverge)?
                {
                    Some((s, tag)) => {
                        model.settle_periodic(s, &tag, listener.settled());
                        reached.count("periodic settle: an event");
                    }
                    None => reached.count("periodic settle: nothing in flight"),
                }
            }
            Op::Engagement { origin: i, level } => {
                let (name, level) = (o(i), pick(&ENGAGEMENTS, *level));
                set(&mut ua.engagement, name, level);
                model.set_engagement(name, level);
                engine
                    .core
                    .set_engagement(engine.now, &origin(name), engine_engagement(level));
                engine.run();
            }
            Op::PeriodicPermission { origin: i, state } => {
                let (name, state) = (o(i), pick(&PERMISSIONS, *state));
                set(&mut ua.periodic_permissions, name, state);
                model.set_periodic_permission(name, state);
                engine.core.set_periodic_permission(
                    engine.now,
                    &origin(name),
                    permission_state(state),
                );
                engine.run();
            }
        }
        // What script can observe: the events fired, the tags of every registration, the wake-up.
        let mut fired = std::mem::take(&mut engine.fired);
        fired.sort();
        let expected = model.take_fired();
        if fired != expected {
            return Err(diverge(format!(
                "fired: engine {fired:?}, model {expected:?}"
            )));
        }
        for f in &expected {
            if f.last_chance {
                reached.flags.insert("a lastChance event fired");
            }
            reached.count(if f.periodic {
                "fired: periodicsync".to_owned()
            } else {
                format!("fired: sync, lastChance {}", f.last_chance)
            });
        }
        for (s, owner) in &ua.workers {
            for periodic in [false, true] {
                let caller = Caller {
                    origin: owner.to_string(),
                    kind: CallerKind::Window,
                };
                let got = engine_tags(&mut engine, &host, owner, *s, periodic);
                let want = if periodic {
                    model.periodic_get_tags(&caller, *s)
                } else {
                    model.get_tags(&caller, *s)
                };
                if got != want {
                    return Err(diverge(format!(
                        "{} of sw {s}: engine {got:?}, model {want:?}",
                        if periodic {
                            "periodicSync.getTags"
                        } else {
                            "getTags"
                        }
                    )));
                }
            }
        }
        // The spec's state of every registration, and the attempts counted (DevTools shows
        // both), agree too.
        let mut states: Vec<(u64, Tag, String, u32, Option<u64>)> = engine
            .core
            .inspect()
            .into_iter()
            .map(|r| {
                let waiting = r.state == bgsync_scheduler::RegistrationState::Waiting;
                (
                    r.sw.0,
                    r.tag.as_utf16().to_vec(),
                    format!("{:?}", r.state),
                    r.attempts,
                    waiting.then_some(r.next_fire.0),
                )
            })
            .collect();
        states.sort();
        let mut want: Vec<(u64, Tag, String, u32, Option<u64>)> = model
            .registrations
            .iter()
            .map(|r| {
                let waiting = r.state == State::Waiting;
                (
                    r.sw,
                    r.tag.clone(),
                    format!("{:?}", r.state),
                    r.attempts,
                    waiting.then_some(r.retry_at),
                )
            })
            .collect();
        want.sort();
        if states != want {
            return Err(diverge(format!(
                "states: engine {states:?}, model {want:?}"
            )));
        }
        // The core's own accounts agree with the list: its size, each registration's state and
        // attempts, the origins and service worker registrations that hold registrations.
        check_accounts(&engine.core, &model).map_err(diverge)?;
        // What the store holds is what the core says is durable (no write is held between
        // steps, and a failed write leaves nothing behind).
        let key = |r: &bgsync_store::StoredRegistration| {
            (
                r.sw,
                r.kind == SyncKind::Periodic,
                r.tag.as_utf16().to_vec(),
            )
        };
        let mut stored = engine.core.stored_registrations();
        stored.sort_by_key(key);
        let mut on_disk = engine.store.snapshot();
        on_disk.sort_by_key(key);
        if stored != on_disk {
            return Err(diverge(format!(
                "the store holds {on_disk:?}, the core says it holds {stored:?}"
            )));
        }
        // The log is taken, as a driver does.
        let mut log = Vec::new();
        engine.core.append_log_to(&mut log);
        let wake = engine.core.wake_up_time().map(|t| t.0);
        if wake != model.wake_up() {
            return Err(diverge(format!(
                "wake-up: engine {wake:?}, model {:?}",
                model.wake_up()
            )));
        }
        note_reached(reached, &model, &ua);
    }
    Ok(())
}

/// A user-agent restart on both sides: the engine starts again on what its store holds; the
/// reporters of the events it had dispatched are kept, to answer late.
fn restart(
    model: &mut Model,
    engine: &mut Engine,
    host: &Arc<Host>,
    ua: &Ua,
    stale: &mut Vec<OutcomeReporter>,
) {
    model.restart();
    let (store, now) = (engine.store.clone(), engine.now);
    let fired = std::mem::take(&mut *host.fired.lock().unwrap_or_else(|e| e.into_inner()));
    stale.extend(fired.into_iter().filter_map(|(_, r)| r));
    stale.truncate(16);
    *engine = Engine::start(store, host.clone(), now, ua);
}

/// The scheduler's accessors against the model's lists.
fn check_accounts(core: &Scheduler, model: &Model) -> Result<(), String> {
    let n = model.registrations.len();
    if core.len() != n || core.is_empty() != (n == 0) {
        return Err(format!(
            "the core counts {} registrations, the model {n}",
            core.len()
        ));
    }
    for r in &model.registrations {
        let (sw, tag) = (SwRegistrationId(r.sw), EngineTag::from_utf16(r.tag.clone()));
        let state = core.registration_state(sw, &tag).map(|s| format!("{s:?}"));
        if state != Some(format!("{:?}", r.state)) || core.attempts(sw, &tag) != Some(r.attempts) {
            return Err(format!(
                "sw {} {:?}: the core has {state:?} after {:?} attempts, the model {:?} after {}",
                r.sw,
                r.tag,
                core.attempts(sw, &tag),
                r.state,
                r.attempts
            ));
        }
        let owner = model.origin_of(r.sw).map(|o| StorageKey::new(origin(o)));
        if core.service_worker_key(sw) != owner
            || !core.service_worker_registrations().contains(&sw)
        {
            return Err(format!("the core does not know sw {} as {owner:?}'s", r.sw));
        }
    }
    // The origins holding registrations of each kind, as the core and the model list them.
    let origins = |core_list: Vec<Origin>, sws: Vec<u64>, what: &str| {
        let mut core_list: Vec<String> = core_list.iter().map(Origin::serialize).collect();
        let mut model_list: Vec<String> = sws
            .iter()
            .filter_map(|sw| model.origin_of(*sw).map(str::to_owned))
            .collect();
        core_list.sort();
        model_list.sort();
        model_list.dedup();
        if core_list == model_list {
            Ok(())
        } else {
            Err(format!(
                "origins holding {what}: the core {core_list:?}, the model {model_list:?}"
            ))
        }
    };
    origins(
        core.origins(),
        model.registrations.iter().map(|r| r.sw).collect(),
        "registrations",
    )?;
    origins(
        core.periodic_origins(),
        model.periodic.iter().map(|r| r.sw).collect(),
        "periodic registrations",
    )?;
    Ok(())
}

/// A one-shot `register()` on both sides, the store failing its write if `fail` says so.
#[allow(clippy::too_many_arguments)]
fn register_both(
    model: &mut Model,
    engine: &mut Engine,
    host: &Host,
    ua: &Ua,
    caller: &Caller,
    sw: u64,
    tag: &[u16],
    fail: bool,
    reached: &mut Reached,
) -> Result<(), String> {
    let reregister_last_chance = model
        .registrations
        .iter()
        .any(|r| r.sw == sw && r.tag == tag && r.event.is_some_and(|(l, _)| l));
    let expected = if fail {
        model.register_failing_write(caller, sw, tag)
    } else {
        model.register(caller, sw, tag)
    };
    count_call(
        reached,
        if fail {
            "register (failing write)"
        } else {
            "register"
        },
        &expected,
    );
    if reregister_last_chance && expected.is_ok() {
        reached.count("register again while its lastChance event is in flight");
        reached
            .flags
            .insert("a registration was registered again while its lastChance event was in flight");
    }
    let request = engine.request();
    engine.fail_next = fail;
    engine.core.register(
        engine.now,
        request,
        RegisterCall {
            caller: origin(&caller.origin).into(),
            sw: SwRegistrationId(sw),
            tag: EngineTag::from_utf16(tag.to_vec()),
            context: ua.context(host, caller, sw, model.permission(&caller.origin)),
        },
    );
    let result = engine.settles_as(request, &expected);
    // A call that wrote nothing leaves the failure unused: it is not carried over.
    engine.fail_next = false;
    result
}

fn count_call(reached: &mut Reached, call: &str, result: &Result<(), Exception>) {
    match result {
        Ok(()) => reached.count(format!("{call}: resolved")),
        Err(e) => reached.count(format!("{call}: {e}")),
    }
}

fn note_reached(reached: &mut Reached, model: &Model, ua: &Ua) {
    reached.observe(model);
    for o in ORIGINS {
        let held = model
            .registrations
            .iter()
            .filter(|r| model.origin_of(r.sw) == Some(o))
            .count();
        if ua
            .setup
            .max_registrations_per_origin
            .is_some_and(|cap| held >= cap)
        {
            reached.count("steps with an origin at its cap");
            reached.flags.insert("an origin reached its cap");
            break;
        }
    }
    if model
        .registrations
        .iter()
        .any(|r| r.state == State::ReregisteredWhileFiring)
    {
        reached.count("steps with a registration re-registered while firing");
    }
}

fn engine_tags(
    engine: &mut Engine,
    host: &Host,
    caller: &str,
    sw: u64,
    periodic: bool,
) -> Result<Vec<Tag>, Exception> {
    let request = engine.request();
    let sw = SwRegistrationId(sw);
    let owner = host.owner(sw);
    let caller = StorageKey::new(origin(caller));
    if periodic {
        engine
            .core
            .periodic_get_tags(engine.now, request, &caller, sw, owner.as_ref());
    } else {
        engine
            .core
            .get_tags(engine.now, request, &caller, sw, owner.as_ref());
    }
    engine.run();
    match engine.settled.remove(&request) {
        Some(Ok(Response::Tags(t))) => Ok(t.iter().map(|t| t.as_utf16().to_vec()).collect()),
        Some(Ok(other)) => Ok(vec![format!("{other:?}").encode_utf16().collect()]),
        Some(Err(e)) => Err(e.name.as_str()),
        None => Ok(vec!["<unsettled>".encode_utf16().collect()]),
    }
}
