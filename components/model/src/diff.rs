//! The differential harness: the same operations on the engine (scheduler + dispatcher + store)
//! and on the [`Model`]; after every step, what script could observe must agree.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use bgsync_dispatcher::{
    Dispatcher, OutcomeReporter, RegistrationInfo, ServiceWorkerHost, SyncEventDispatch,
};
use bgsync_scheduler::{
    DispatchOutcome, Effect, Engagement, Parameters, PeriodicRegisterCall, RegisterCall,
    RegisterContext, Response, Scheduler,
};
use bgsync_store::{MemoryStore, RegistrationStore};
use bgsync_types::{
    DispatchId, DomException, DomExceptionName, Origin, PermissionState, RequestId, StorageKey,
    SwRegistrationId, SyncKind, Tag, Timestamp,
};

use crate::model::{Fired, Model, Settled};

/// The origins scenarios use: two secure ones and an insecure one.
pub fn origins() -> [Origin; 3] {
    [
        "https://a.example",
        "https://b.example",
        "http://insecure.example",
    ]
    .map(|s| Origin::parse(s).expect("static origin"))
}

/// The service worker registrations: two of origin A, one of origin B.
pub const WORKERS: [(u64, usize); 3] = [(1, 0), (2, 0), (3, 1)];

/// The tags scenarios use: plain, empty, lone surrogates, astral, and one over the byte cap.
pub fn tags() -> Vec<Tag> {
    vec![
        Tag::from("a"),
        Tag::from("b"),
        Tag::from(""),
        Tag::from_utf16(vec![0xD800]),
        Tag::from_utf16(vec![0xDC00]),
        Tag::from("📧"),
        Tag::from("x".repeat(10_241)),
    ]
}

/// The parameters scenarios run with: Chromium's, with a per-origin cap of 4 so the cap is
/// reached.
pub fn params() -> Parameters {
    Parameters {
        max_registrations_per_origin: Some(4),
        ..Parameters::default()
    }
}

/// One step of a scenario. Indexes are taken modulo the universe's sizes ([`origins`],
/// [`WORKERS`], [`tags`]); each variant's fields are named for what they index.
#[derive(Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Op {
    /// `register(tag)` from `origin` on service worker registration `sw`.
    Register { origin: u8, sw: u8, tag: u8 },
    /// `getTags()` from `origin` on `sw`.
    GetTags { origin: u8, sw: u8 },
    /// The `n`-th event in flight (in (sw, tag) order) settles.
    Settle { n: u8, fulfilled: bool },
    /// The network changes.
    Online(bool),
    /// The permission of `origin` changes.
    Permission { origin: u8, granted: bool },
    /// `origin` gains or loses its window client.
    Window { origin: u8, open: bool },
    /// The worker of `sw` dies.
    Terminate { sw: u8 },
    /// `sw` is unregistered.
    Unregister { sw: u8 },
    /// The user agent restarts.
    Restart,
    /// Time passes.
    Advance(u64),
    /// `periodicSync.register(tag, {minInterval: INTERVALS[interval]})`.
    PeriodicRegister {
        origin: u8,
        sw: u8,
        tag: u8,
        interval: u8,
    },
    /// `periodicSync.unregister(tag)`.
    PeriodicUnregister { origin: u8, sw: u8, tag: u8 },
    /// The `n`-th periodic event in flight settles.
    PeriodicSettle { n: u8, fulfilled: bool },
    /// `origin`'s engagement becomes `ENGAGEMENTS[level]`.
    Engagement { origin: u8, level: u8 },
    /// `origin`'s "periodic-background-sync" permission is granted or revoked.
    PeriodicPermission { origin: u8, granted: bool },
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

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = |i: &u8| origins()[*i as usize % 3].serialize();
        let sw = |i: &u8| WORKERS[*i as usize % WORKERS.len()].0;
        let t = |i: &u8| {
            let tags = tags();
            let tag = &tags[*i as usize % tags.len()];
            if tag.utf8_len() > 64 {
                format!("<{} bytes>", tag.utf8_len())
            } else {
                format!("{tag:?}")
            }
        };
        match self {
            Op::Register { origin, sw: s, tag } => {
                write!(f, "register({}, sw#{}, {})", o(origin), sw(s), t(tag))
            }
            Op::GetTags { origin, sw: s } => write!(f, "getTags({}, sw#{})", o(origin), sw(s)),
            Op::Settle { n, fulfilled } => write!(
                f,
                "settle(event #{n}, {})",
                if *fulfilled { "fulfil" } else { "reject" }
            ),
            Op::Online(b) => write!(f, "online({b})"),
            Op::Permission { origin, granted } => write!(
                f,
                "permission({}, {})",
                o(origin),
                if *granted { "granted" } else { "denied" }
            ),
            Op::Window { origin, open } => write!(
                f,
                "window({}, {})",
                o(origin),
                if *open { "open" } else { "closed" }
            ),
            Op::Terminate { sw: s } => write!(f, "terminate worker of sw#{}", sw(s)),
            Op::Unregister { sw: s } => write!(f, "unregister sw#{}", sw(s)),
            Op::Restart => write!(f, "restart"),
            Op::Advance(ms) => write!(f, "advance {ms} ms"),
            Op::PeriodicRegister {
                origin,
                sw: s,
                tag,
                interval,
            } => write!(
                f,
                "periodicSync.register({}, sw#{}, {}, minInterval {} ms)",
                o(origin),
                sw(s),
                t(tag),
                INTERVALS[*interval as usize % INTERVALS.len()]
            ),
            Op::PeriodicUnregister { origin, sw: s, tag } => write!(
                f,
                "periodicSync.unregister({}, sw#{}, {})",
                o(origin),
                sw(s),
                t(tag)
            ),
            Op::PeriodicSettle { n, fulfilled } => write!(
                f,
                "settle(periodic event #{n}, {})",
                if *fulfilled { "fulfil" } else { "reject" }
            ),
            Op::Engagement { origin, level } => write!(
                f,
                "engagement({}, {:?})",
                o(origin),
                ENGAGEMENTS[*level as usize % ENGAGEMENTS.len()]
            ),
            Op::PeriodicPermission { origin, granted } => write!(
                f,
                "periodic permission({}, {})",
                o(origin),
                if *granted { "granted" } else { "denied" }
            ),
        }
    }
}

impl Op {
    /// Decodes operations from bytes (for coverage-guided fuzzing): 3 bytes an operation.
    pub fn decode(bytes: &[u8]) -> Vec<Op> {
        const ADVANCES: [u64; 11] = [
            1, 1_000, 60_000, 179_999, 180_000, 300_000, 900_000, 3_600_000, 43_199_999,
            43_200_000, 86_400_000,
        ];
        bytes
            .chunks_exact(3)
            .map(|c| {
                let (a, b) = (c[1], c[2]);
                match c[0] % 15 {
                    0 => Op::Register {
                        origin: a % 3,
                        sw: b % 3,
                        tag: (a / 3) % 7,
                    },
                    1 => Op::GetTags {
                        origin: a % 3,
                        sw: b % 3,
                    },
                    2 => Op::Settle {
                        n: a,
                        fulfilled: b % 2 == 0,
                    },
                    3 => Op::Online(a % 2 == 0),
                    4 => Op::Permission {
                        origin: a % 3,
                        granted: b % 2 == 0,
                    },
                    5 => Op::Window {
                        origin: a % 3,
                        open: b % 2 == 0,
                    },
                    6 => Op::Terminate { sw: a % 3 },
                    7 => Op::Unregister { sw: a % 3 },
                    8 => Op::Restart,
                    10 => Op::PeriodicRegister {
                        origin: a % 3,
                        sw: b % 3,
                        tag: (a / 3) % 7,
                        interval: b / 3,
                    },
                    11 => Op::PeriodicUnregister {
                        origin: a % 3,
                        sw: b % 3,
                        tag: (a / 3) % 7,
                    },
                    12 => Op::PeriodicSettle {
                        n: a,
                        fulfilled: b % 2 == 0,
                    },
                    13 => Op::Engagement {
                        origin: a % 3,
                        level: b,
                    },
                    14 => Op::PeriodicPermission {
                        origin: a % 3,
                        granted: b % 2 == 0,
                    },
                    _ => Op::Advance(ADVANCES[a as usize % ADVANCES.len()]),
                }
            })
            .collect()
    }
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

/// The service-worker host of the engine side: records events and holds their reporters until
/// the scenario settles them.
#[derive(Default)]
struct Host {
    registered: Mutex<HashMap<SwRegistrationId, Origin>>,
    fired: Mutex<Vec<(SyncEventDispatch, Option<OutcomeReporter>)>>,
}

impl Host {
    /// The storage key owning `sw`, if the host knows it.
    fn owner(&self, sw: SwRegistrationId) -> Option<StorageKey> {
        self.registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&sw)
            .cloned()
            .map(StorageKey::new)
    }
}

impl ServiceWorkerHost for Host {
    fn registration(&self, sw: SwRegistrationId) -> Option<RegistrationInfo> {
        let map = self.registered.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&sw).map(|o| RegistrationInfo {
            origin: o.clone(),
            partition: Default::default(),
            has_active_worker: true,
        })
    }
    fn fire_sync_event(&self, event: SyncEventDispatch, reply: OutcomeReporter) {
        self.fired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((event, Some(reply)));
    }
}

/// The engine, driven synchronously: every write is acknowledged at once.
struct Engine {
    core: Scheduler,
    dispatcher: Dispatcher,
    store: MemoryStore,
    /// Outcomes reporters sent (dropped reporters of dead workers); ignored by design.
    reported: Arc<Mutex<Vec<(DispatchId, DispatchOutcome)>>>,
    /// Events in flight, by key.
    in_flight: HashMap<(SwRegistrationId, Tag), DispatchId>,
    /// Periodic events in flight, by key.
    periodic_in_flight: HashMap<(SwRegistrationId, Tag), DispatchId>,
    settled: HashMap<RequestId, Result<Response, DomException>>,
    fired: Vec<Fired>,
    next_request: u64,
    now: Timestamp,
}

impl Engine {
    fn start(
        store: MemoryStore,
        host: Arc<Host>,
        now: Timestamp,
        online: bool,
        denied: &[Origin],
        engagement: &[(Origin, Engagement)],
    ) -> Engine {
        let reported: Arc<Mutex<Vec<(DispatchId, DispatchOutcome)>>> = Arc::default();
        let sink = reported.clone();
        let dispatcher = Dispatcher::new(
            host.clone(),
            Arc::new(move |id, o| sink.lock().unwrap_or_else(|e| e.into_inner()).push((id, o))),
        );
        let mut core = Scheduler::new(params());
        core.set_online(now, online);
        for o in denied {
            core.set_permission(now, o, PermissionState::Denied);
        }
        // What a driver asks the embedder at start-up for the origins it holds.
        for (o, level) in engagement {
            core.set_engagement(now, o, *level);
        }
        let mut records = store.snapshot();
        let live = host
            .registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        records.retain(|r| live.contains_key(&r.sw));
        let mut e = Engine {
            core,
            dispatcher,
            store,
            reported,
            in_flight: HashMap::new(),
            periodic_in_flight: HashMap::new(),
            settled: HashMap::new(),
            fired: Vec::new(),
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
                Effect::Persist { id, ops } => {
                    let result = self.store.commit(&ops).map_err(|e| e.to_string());
                    self.core.persist_completed(self.now, id, result);
                }
                Effect::Settle { request, result } => {
                    self.settled.insert(request, result);
                }
                Effect::Dispatch(d) => {
                    let periodic = d.kind == SyncKind::Periodic;
                    self.fired.push(Fired {
                        sw: d.sw,
                        tag: d.tag.clone(),
                        last_chance: d.last_chance,
                        periodic,
                    });
                    let key = (d.sw, d.tag.clone());
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
                    self.in_flight.retain(|_, v| *v != id);
                    self.periodic_in_flight.retain(|_, v| *v != id);
                }
            }
        }
        // Reports of dropped reporters reach an engine that already forgot those events.
        self.reported
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// How the call `request` settled: resolved, or the exception's name.
    fn outcome(&mut self, request: RequestId) -> Option<Result<(), DomExceptionName>> {
        self.settled
            .remove(&request)
            .map(|r| r.map(|_| ()).map_err(|e| e.name))
    }

    fn request(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    fn complete(&mut self, id: DispatchId, outcome: DispatchOutcome) {
        self.in_flight.retain(|_, v| *v != id);
        self.periodic_in_flight.retain(|_, v| *v != id);
        if let Some(o) = self.dispatcher.outcome_reported(id, outcome) {
            self.core.dispatch_completed(self.now, id, o);
        }
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
                        self.in_flight.retain(|_, v| *v != id);
                        self.periodic_in_flight.retain(|_, v| *v != id);
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
        expected: &Result<(), DomExceptionName>,
    ) -> Result<(), String> {
        self.run();
        match self.outcome(request) {
            None => Err("the engine did not settle the promise".into()),
            Some(got) if got != *expected => Err(format!("engine {got:?}, model {expected:?}")),
            Some(_) => Ok(()),
        }
    }

    /// Settles the `n`th event of `kind` in flight, after checking that the engine and the model
    /// have the same events in flight (`model_keys`, sorted); `None` when none are.
    fn settle_nth(
        &mut self,
        kind: SyncKind,
        model_keys: &[(SwRegistrationId, Tag)],
        n: u8,
        fulfilled: bool,
    ) -> Result<Option<(SwRegistrationId, Tag)>, String> {
        let in_flight = if kind == SyncKind::Periodic {
            &self.periodic_in_flight
        } else {
            &self.in_flight
        };
        let mut keys: Vec<_> = in_flight.keys().cloned().collect();
        keys.sort();
        if keys != model_keys {
            return Err(format!(
                "{kind:?} in flight: engine {keys:?}, model {model_keys:?}"
            ));
        }
        let Some(key) = keys.get(n as usize % keys.len().max(1)).cloned() else {
            return Ok(None);
        };
        let id = in_flight[&key];
        let outcome = if fulfilled {
            DispatchOutcome::Fulfilled
        } else {
            DispatchOutcome::Rejected
        };
        self.complete(id, outcome);
        Ok(Some(key))
    }
}

/// The model's word for how a `waitUntil` promise settled.
fn settled(fulfilled: bool) -> Settled {
    if fulfilled {
        Settled::Fulfilled
    } else {
        Settled::Failed
    }
}

/// Runs `ops` on the engine and the model; the first disagreement is returned.
pub fn run_scenario(ops: &[Op]) -> Result<(), Divergence> {
    let origins = origins();
    let tags = tags();
    let workers: Vec<(SwRegistrationId, Origin)> = WORKERS
        .iter()
        .map(|(sw, o)| (SwRegistrationId(*sw), origins[*o].clone()))
        .collect();
    let mut model = Model::new(params(), workers.clone());
    let host = Arc::new(Host::default());
    for (sw, o) in &workers {
        host.registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(*sw, o.clone());
    }
    let mut windows: Vec<Origin> = workers.iter().map(|(_, o)| o.clone()).collect();
    let mut denied: Vec<Origin> = Vec::new();
    let mut online = true;
    let mut engine = Engine::start(
        MemoryStore::new(),
        host.clone(),
        Timestamp(0),
        true,
        &[],
        &[],
    );
    let mut engagement: Vec<(Origin, Engagement)> = Vec::new();
    let mut periodic_granted: Vec<Origin> = Vec::new();

    for (step, op) in ops.iter().enumerate() {
        let diverge = |what: String| Divergence {
            step,
            what: format!("{op:?}: {what}"),
        };
        let o = |i: &u8| origins[*i as usize % origins.len()].clone();
        let sw = |i: &u8| SwRegistrationId(WORKERS[*i as usize % WORKERS.len()].0);
        match op {
            Op::Register { origin, sw: s, tag } => {
                let caller = o(origin);
                let tag = tags[*tag as usize % tags.len()].clone();
                let expected = model.register(&caller, sw(s), &tag);
                let request = engine.request();
                let owner = host.owner(sw(s));
                let context = RegisterContext {
                    registration_key: owner,
                    has_active_worker: true,
                    has_window_client: windows.contains(&caller),
                    permission: if denied.contains(&caller) {
                        PermissionState::Denied
                    } else {
                        PermissionState::Granted
                    },
                };
                engine.core.register(
                    engine.now,
                    request,
                    RegisterCall {
                        caller: caller.clone().into(),
                        sw: sw(s),
                        tag,
                        context,
                    },
                );
                engine.settles_as(request, &expected).map_err(diverge)?;
            }
            Op::GetTags { origin, sw: s } => {
                let caller = o(origin);
                let expected = model.get_tags(&caller, sw(s));
                let got = engine_tags(&mut engine, &host, &caller, sw(s), false);
                if got != expected {
                    return Err(diverge(format!("engine {got:?}, model {expected:?}")));
                }
            }
            Op::Settle { n, fulfilled } => {
                let keys = model.in_flight();
                if let Some((s, tag)) = engine
                    .settle_nth(SyncKind::OneShot, &keys, *n, *fulfilled)
                    .map_err(diverge)?
                {
                    model.settle(s, &tag, settled(*fulfilled));
                }
            }
            Op::Online(b) => {
                online = *b;
                model.set_online(*b);
                engine.core.set_online(engine.now, *b);
                engine.run();
            }
            Op::Permission { origin, granted } => {
                let origin = o(origin);
                denied.retain(|x| *x != origin);
                if !granted {
                    denied.push(origin.clone());
                }
                model.set_permission(&origin, *granted);
                let state = if *granted {
                    PermissionState::Granted
                } else {
                    PermissionState::Denied
                };
                engine.core.set_permission(engine.now, &origin, state);
                engine.run();
            }
            Op::Window { origin, open } => {
                let origin = o(origin);
                windows.retain(|x| *x != origin);
                if *open {
                    windows.push(origin.clone());
                }
                model.set_window(&origin, *open);
            }
            Op::Terminate { sw: s } => {
                model.terminate_worker(sw(s));
                let ids: Vec<DispatchId> = engine
                    .in_flight
                    .iter()
                    .filter(|((x, _), _)| *x == sw(s))
                    .map(|(_, id)| *id)
                    .collect();
                let periodic: Vec<DispatchId> = engine
                    .periodic_in_flight
                    .iter()
                    .filter(|((x, _), _)| *x == sw(s))
                    .map(|(_, id)| *id)
                    .collect();
                for id in ids.into_iter().chain(periodic) {
                    engine.complete(id, DispatchOutcome::WorkerTerminated);
                }
            }
            Op::Unregister { sw: s } => {
                model.unregister(sw(s));
                host.registered
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&sw(s));
                engine.core.service_worker_unregistered(engine.now, sw(s));
                engine.run();
            }
            Op::Restart => {
                model.restart();
                let (store, now) = (engine.store.clone(), engine.now);
                host.fired.lock().unwrap_or_else(|e| e.into_inner()).clear();
                engine = Engine::start(store, host.clone(), now, online, &denied, &engagement);
            }
            Op::Advance(ms) => {
                let target = Timestamp(engine.now.0 + ms);
                model.advance_to(target);
                engine.advance_to(target);
            }
            Op::PeriodicRegister {
                origin,
                sw: s,
                tag,
                interval,
            } => {
                let caller = o(origin);
                let tag = tags[*tag as usize % tags.len()].clone();
                let ms = INTERVALS[*interval as usize % INTERVALS.len()];
                let expected = model.periodic_register(&caller, sw(s), &tag, ms);
                let request = engine.request();
                let owner = host.owner(sw(s));
                let level = engagement
                    .iter()
                    .find(|(x, _)| *x == caller)
                    .map_or(Engagement::High, |(_, l)| *l);
                engine.core.periodic_register(
                    engine.now,
                    request,
                    PeriodicRegisterCall {
                        caller: caller.clone().into(),
                        sw: sw(s),
                        tag,
                        min_interval: std::time::Duration::from_millis(ms),
                        context: RegisterContext {
                            registration_key: owner,
                            has_active_worker: true,
                            has_window_client: windows.contains(&caller),
                            permission: if periodic_granted.contains(&caller) {
                                PermissionState::Granted
                            } else {
                                PermissionState::Denied
                            },
                        },
                        engagement: level,
                    },
                );
                engine.settles_as(request, &expected).map_err(diverge)?;
            }
            Op::PeriodicUnregister { origin, sw: s, tag } => {
                let caller = o(origin);
                let tag = tags[*tag as usize % tags.len()].clone();
                let expected = model.periodic_unregister(&caller, sw(s), &tag);
                let request = engine.request();
                let owner = host.owner(sw(s));
                engine.core.periodic_unregister(
                    engine.now,
                    request,
                    &StorageKey::new(caller.clone()),
                    sw(s),
                    tag,
                    owner.as_ref(),
                );
                engine.settles_as(request, &expected).map_err(diverge)?;
            }
            Op::PeriodicSettle { n, fulfilled } => {
                let keys = model.periodic_in_flight();
                if let Some((s, tag)) = engine
                    .settle_nth(SyncKind::Periodic, &keys, *n, *fulfilled)
                    .map_err(diverge)?
                {
                    model.settle_periodic(s, &tag, settled(*fulfilled));
                }
            }
            Op::Engagement { origin, level } => {
                let origin = o(origin);
                let level = ENGAGEMENTS[*level as usize % ENGAGEMENTS.len()];
                engagement.retain(|(x, _)| *x != origin);
                engagement.push((origin.clone(), level));
                model.set_engagement(&origin, level);
                engine.core.set_engagement(engine.now, &origin, level);
                engine.run();
            }
            Op::PeriodicPermission { origin, granted } => {
                let origin = o(origin);
                periodic_granted.retain(|x| *x != origin);
                if *granted {
                    periodic_granted.push(origin.clone());
                }
                model.set_periodic_permission(&origin, *granted);
                engine.core.set_periodic_permission(
                    engine.now,
                    &origin,
                    if *granted {
                        PermissionState::Granted
                    } else {
                        PermissionState::Denied
                    },
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
        for (s, owner) in &workers {
            let got = engine_tags(&mut engine, &host, owner, *s, false);
            let want = model.get_tags(owner, *s);
            if got != want {
                return Err(diverge(format!(
                    "getTags of {s}: engine {got:?}, model {want:?}"
                )));
            }
            let got = engine_tags(&mut engine, &host, owner, *s, true);
            let want = model.periodic_get_tags(owner, *s);
            if got != want {
                return Err(diverge(format!(
                    "periodicSync.getTags of {s}: engine {got:?}, model {want:?}"
                )));
            }
        }
        if engine.core.wake_up_time() != model.wake_up() {
            return Err(diverge(format!(
                "wake-up: engine {:?}, model {:?}",
                engine.core.wake_up_time(),
                model.wake_up()
            )));
        }
    }
    Ok(())
}

fn engine_tags(
    engine: &mut Engine,
    host: &Host,
    caller: &Origin,
    sw: SwRegistrationId,
    periodic: bool,
) -> Result<Vec<Tag>, DomExceptionName> {
    let request = engine.request();
    let owner = host.owner(sw);
    let caller = StorageKey::new(caller.clone());
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
        Some(Ok(Response::Tags(t))) => Ok(t),
        Some(Ok(other)) => Ok(vec![Tag::from(format!("{other:?}"))]),
        Some(Err(e)) => Err(e.name),
        None => Ok(vec![Tag::from("<unsettled>")]),
    }
}
