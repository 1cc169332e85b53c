//! A small driver for the core in tests: applies persist effects to an in-memory store at once
//! (or holds them back), records settled promises and dispatched events, on virtual time.
#![allow(dead_code, missing_docs)]

use std::time::Duration;

use bgsync_scheduler::{
    DispatchOutcome, DispatchRequest, Effect, Parameters, RegisterCall, RegisterContext, Response,
    Scheduler,
};
use bgsync_store::{MemoryStore, RegistrationStore, StoreOp};
use bgsync_types::{
    DomException, DomExceptionName, Origin, PersistId, RequestId, StorageKey, SwRegistrationId,
    Tag, Timestamp,
};

pub const MIN: u64 = 60_000;

pub fn origin(s: &str) -> Origin {
    Origin::parse(s).unwrap()
}

/// What happened, in order, as a test wants to read it.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    Settled(RequestId, Result<Response, DomException>),
    Dispatched(DispatchRequest),
    Abandoned(bgsync_types::DispatchId),
}

pub struct Harness {
    pub core: Scheduler,
    pub store: MemoryStore,
    pub now: Timestamp,
    pub seen: Vec<Seen>,
    /// When false, persist effects wait in `held` until `ack_held` is called.
    pub auto_ack: bool,
    pub held: Vec<(PersistId, bgsync_scheduler::StoreOps)>,
    next_request: u64,
}

impl Harness {
    pub fn new() -> Self {
        Harness::with_params(Parameters::default())
    }

    pub fn with_params(params: Parameters) -> Self {
        Harness {
            core: Scheduler::new(params),
            store: MemoryStore::new(),
            now: Timestamp(0),
            seen: Vec::new(),
            auto_ack: true,
            held: Vec::new(),
            next_request: 1,
        }
    }

    /// Drains effects until none is left, acknowledging writes when `auto_ack` is set.
    pub fn run(&mut self) {
        while let Some(effect) = self.core.poll_effect() {
            match effect {
                Effect::Persist { id, ops } => {
                    if self.auto_ack {
                        let result = self.store.commit(&ops).map_err(|e| e.to_string());
                        self.core.persist_completed(self.now, id, result);
                    } else {
                        self.held.push((id, ops));
                    }
                }
                Effect::Settle { request, result } => {
                    self.seen.push(Seen::Settled(request, result))
                }
                Effect::Dispatch(d) => self.seen.push(Seen::Dispatched(d)),
                Effect::AbandonDispatch { id } => self.seen.push(Seen::Abandoned(id)),
            }
        }
    }

    /// Acknowledges every held write, in order, as one group commit.
    pub fn ack_held(&mut self) {
        let held = std::mem::take(&mut self.held);
        let ops: Vec<StoreOp> = held.iter().flat_map(|(_, o)| o.clone()).collect();
        let result = self.store.commit(&ops).map_err(|e| e.to_string());
        for (id, _) in held {
            self.core.persist_completed(self.now, id, result.clone());
        }
        self.run();
    }

    pub fn advance(&mut self, ms: u64) {
        self.now = Timestamp(self.now.0 + ms);
        self.core.handle_timeout(self.now);
        self.run();
    }

    pub fn register_with(
        &mut self,
        caller: &Origin,
        sw: u64,
        tag: Tag,
        context: RegisterContext,
    ) -> RequestId {
        let request = RequestId(self.next_request);
        self.next_request += 1;
        self.core.register(
            self.now,
            request,
            RegisterCall {
                caller: caller.clone().into(),
                sw: SwRegistrationId(sw),
                tag,
                context,
            },
        );
        self.run();
        request
    }

    pub fn register(&mut self, caller: &Origin, sw: u64, tag: &str) -> RequestId {
        self.register_with(
            caller,
            sw,
            Tag::from(tag),
            RegisterContext::ready(caller.clone()),
        )
    }

    /// Registers and asserts that the promise resolved.
    pub fn register_ok(&mut self, caller: &Origin, sw: u64, tag: &str) {
        let request = self.register(caller, sw, tag);
        self.assert_resolved(request);
    }

    /// The outcome of `request`, if it settled.
    pub fn result(&self, request: RequestId) -> Option<Result<Response, DomException>> {
        self.seen.iter().find_map(|s| match s {
            Seen::Settled(r, result) if *r == request => Some(result.clone()),
            _ => None,
        })
    }

    pub fn assert_resolved(&self, request: RequestId) {
        assert_eq!(
            self.result(request),
            Some(Ok(Response::Registered)),
            "{:#?}",
            self.seen
        );
    }

    pub fn rejection(&self, request: RequestId) -> DomExceptionName {
        match self.result(request) {
            Some(Err(e)) => e.name,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    pub fn get_tags(&mut self, caller: &Origin, sw: u64) -> Result<Vec<String>, DomException> {
        let request = RequestId(self.next_request);
        self.next_request += 1;
        let key = StorageKey::new(caller.clone());
        self.core
            .get_tags(self.now, request, &key, SwRegistrationId(sw), Some(&key));
        self.run();
        match self.result(request).expect("getTags settles at once") {
            Ok(Response::Tags(tags)) => Ok(tags.iter().map(Tag::to_string).collect()),
            Ok(other) => panic!("getTags resolved with {other:?}"),
            Err(e) => Err(e),
        }
    }

    /// Every dispatched event so far.
    pub fn dispatched(&self) -> Vec<DispatchRequest> {
        self.seen
            .iter()
            .filter_map(|s| match s {
                Seen::Dispatched(d) => Some(d.clone()),
                _ => None,
            })
            .collect()
    }

    /// The most recent dispatched event.
    pub fn last_dispatch(&self) -> DispatchRequest {
        self.dispatched().pop().expect("an event was dispatched")
    }

    pub fn complete(&mut self, d: &DispatchRequest, outcome: DispatchOutcome) {
        self.core.dispatch_completed(self.now, d.id, outcome);
        self.run();
    }

    pub fn set_online(&mut self, online: bool) {
        self.core.set_online(self.now, online);
        self.run();
    }

    pub fn retry_delays(params: &Parameters) -> Vec<Duration> {
        (1..params.max_attempts)
            .map(|n| params.retry_delay(n))
            .collect()
    }
}
