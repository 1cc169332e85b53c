//! The Background Sync thread: runs the core, the dispatcher and the store on a tokio runtime.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bgsync_dispatcher::{Dispatcher, ServiceWorkerHost};
use bgsync_scheduler::{
    DispatchOutcome, Effect, LogEntry, LogEvent, RegisterCall, RegisterContext, Response, Scheduler,
};
use bgsync_store::{RegistrationStore, StoreOp};
use bgsync_types::{
    DispatchId, DomException, DomExceptionName, Origin, PermissionState, RequestId,
    SwRegistrationId, Tag, Timestamp,
};
use tokio::sync::{mpsc, oneshot};

use crate::{Clock, Permissions, WindowClients};

/// Where an answer goes: an async caller's oneshot, or an engine thread's crossbeam channel.
pub(crate) enum Reply<T> {
    Async(oneshot::Sender<T>),
    Channel(crossbeam_channel::Sender<T>),
}

impl<T> Reply<T> {
    fn send(self, value: T) {
        // A caller that went away no longer wants the answer.
        match self {
            Reply::Async(tx) => {
                let _ = tx.send(value);
            }
            Reply::Channel(tx) => {
                let _ = tx.send(value);
            }
        }
    }
}

pub(crate) enum Msg {
    Register {
        caller: Origin,
        sw: SwRegistrationId,
        tag: Tag,
        reply: Reply<Result<(), DomException>>,
    },
    GetTags {
        caller: Origin,
        sw: SwRegistrationId,
        reply: Reply<Result<Vec<Tag>, DomException>>,
    },
    Outcome(DispatchId, DispatchOutcome),
    Network(bool),
    Permission(Origin, PermissionState),
    SwUnregistered(SwRegistrationId),
    ClearOrigin(Origin, Reply<Result<(), DomException>>),
    ClearAll(Reply<Result<(), DomException>>),
    Settle(Reply<()>),
    Log(Reply<Vec<LogEntry>>),
    SubscribeLog(crossbeam_channel::Sender<LogEntry>),
    WakeUp(Reply<Option<Timestamp>>),
    Status(Reply<crate::EngineStatus>),
    Shutdown,
}

enum Pending {
    Register(Reply<Result<(), DomException>>),
    Clear(Reply<Result<(), DomException>>),
    Tags(Reply<Result<Vec<Tag>, DomException>>),
}

pub(crate) struct Embedder {
    pub host: Arc<dyn ServiceWorkerHost>,
    pub clients: Arc<dyn WindowClients>,
    pub permissions: Arc<dyn Permissions>,
    pub clock: Arc<dyn Clock>,
}

pub(crate) struct Driver {
    pub core: Scheduler,
    pub dispatcher: Dispatcher,
    pub store: Box<dyn RegistrationStore>,
    pub embedder: Embedder,
    pub rx: mpsc::UnboundedReceiver<Msg>,
    pub log_capacity: usize,
    pending: HashMap<RequestId, Pending>,
    next_request: u64,
    log: VecDeque<LogEntry>,
    log_subscribers: Vec<crossbeam_channel::Sender<LogEntry>>,
    settle_waiters: Vec<Reply<()>>,
    shutting_down: bool,
}

impl Driver {
    pub fn new(
        core: Scheduler,
        dispatcher: Dispatcher,
        store: Box<dyn RegistrationStore>,
        embedder: Embedder,
        rx: mpsc::UnboundedReceiver<Msg>,
        log_capacity: usize,
        log_subscribers: Vec<crossbeam_channel::Sender<LogEntry>>,
    ) -> Self {
        Driver {
            core,
            dispatcher,
            store,
            embedder,
            rx,
            log_capacity,
            pending: HashMap::new(),
            next_request: 1,
            log: VecDeque::new(),
            log_subscribers,
            settle_waiters: Vec::new(),
            shutting_down: false,
        }
    }

    fn now(&self) -> Timestamp {
        self.embedder.clock.now()
    }

    /// Runs until every handle is dropped or shutdown is asked for.
    pub async fn run(mut self) {
        self.tick();
        self.flush();
        while !self.shutting_down {
            let wake = match (self.core.poll_timeout(), self.dispatcher.poll_timeout()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let sleep = match wake {
                Some(t) => self.embedder.clock.sleep_until(t),
                None => Box::pin(std::future::pending()),
            };
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(msg) => self.handle(msg),
                    None => break,
                },
                () = sleep => {}
            }
            // Take everything else that is queued before writing, so concurrent calls share one
            // commit; repeat while hosts that settle at once keep queueing outcomes.
            loop {
                while let Ok(msg) = self.rx.try_recv() {
                    self.handle(msg);
                }
                self.tick();
                self.flush();
                if self.rx.is_empty() {
                    break;
                }
            }
            for waiter in self.settle_waiters.drain(..) {
                waiter.send(());
            }
        }
        for (_, pending) in self.pending.drain() {
            let gone = DomException::new(
                DomExceptionName::UnknownError,
                "Background Sync shut down before the call completed",
            );
            match pending {
                Pending::Register(r) | Pending::Clear(r) => r.send(Err(gone)),
                Pending::Tags(r) => r.send(Err(gone)),
            }
        }
    }

    fn request_id(&mut self) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        id
    }

    fn handle(&mut self, msg: Msg) {
        let now = self.now();
        match msg {
            Msg::Register {
                caller,
                sw,
                tag,
                reply,
            } => {
                let span = tracing::info_span!("register", origin = %caller, %sw, %tag);
                let _entered = span.enter();
                let info = self.embedder.host.registration(sw);
                let context = RegisterContext {
                    registration_origin: info.as_ref().map(|i| i.origin.clone()),
                    has_active_worker: info.is_some_and(|i| i.has_active_worker),
                    has_window_client: self.embedder.clients.has_window_client(&caller),
                    permission: self.embedder.permissions.background_sync(&caller),
                };
                let request = self.request_id();
                self.pending.insert(request, Pending::Register(reply));
                self.core.register(
                    now,
                    request,
                    RegisterCall {
                        caller,
                        sw,
                        tag,
                        context,
                    },
                );
            }
            Msg::GetTags { caller, sw, reply } => {
                let span = tracing::info_span!("get_tags", origin = %caller, %sw);
                let _entered = span.enter();
                let owner = self.embedder.host.registration(sw).map(|i| i.origin);
                let request = self.request_id();
                self.pending.insert(request, Pending::Tags(reply));
                self.core
                    .get_tags(now, request, &caller, sw, owner.as_ref());
            }
            Msg::Outcome(id, outcome) => {
                let span = tracing::info_span!("sync_event_settled", id = id.0, ?outcome);
                let _entered = span.enter();
                if let Some(outcome) = self.dispatcher.outcome_reported(id, outcome) {
                    self.core.dispatch_completed(now, id, outcome);
                } else {
                    tracing::debug!("outcome of an event that timed out or was abandoned; ignored");
                }
            }
            Msg::Network(online) => {
                let _entered = tracing::info_span!("network_changed", online).entered();
                self.core.set_online(now, online);
            }
            Msg::Permission(origin, state) => {
                let _entered = tracing::info_span!("permission_changed", %origin, ?state).entered();
                self.core.set_permission(now, &origin, state);
            }
            Msg::SwUnregistered(sw) => {
                let _entered = tracing::info_span!("service_worker_unregistered", %sw).entered();
                self.core.service_worker_unregistered(now, sw);
            }
            Msg::ClearOrigin(origin, reply) => {
                let _entered = tracing::info_span!("clear_origin", %origin).entered();
                let request = self.request_id();
                self.pending.insert(request, Pending::Clear(reply));
                self.core.clear_origin(now, request, &origin);
            }
            Msg::ClearAll(reply) => {
                let _entered = tracing::info_span!("clear_all").entered();
                let request = self.request_id();
                self.pending.insert(request, Pending::Clear(reply));
                self.core.clear_all(now, request);
            }
            Msg::Settle(reply) => self.settle_waiters.push(reply),
            Msg::Log(reply) => reply.send(self.log.iter().cloned().collect()),
            Msg::SubscribeLog(tx) => self.log_subscribers.push(tx),
            Msg::WakeUp(reply) => reply.send(self.core.wake_up_time()),
            Msg::Status(reply) => reply.send(crate::EngineStatus {
                next_timer: match (self.core.poll_timeout(), self.dispatcher.poll_timeout()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                },
                in_flight: self.dispatcher.in_flight(),
                registrations: self.core.len(),
            }),
            Msg::Shutdown => self.shutting_down = true,
        }
    }

    /// Gives the core and the dispatcher the time: time limits that ran out fail their attempts,
    /// back-offs that ended fire.
    fn tick(&mut self) {
        let now = self.now();
        for (id, outcome) in self.dispatcher.handle_timeout(now) {
            self.core.dispatch_completed(now, id, outcome);
        }
        self.core.handle_timeout(now);
    }

    /// Carries out the core's effects until it has none left. The writes that are ready together
    /// go to the store as one commit (group commit).
    fn flush(&mut self) {
        loop {
            let now = self.now();
            let mut persists = Vec::new();
            while let Some(effect) = self.core.poll_effect() {
                match effect {
                    Effect::Persist { id, ops } => persists.push((id, ops)),
                    Effect::Settle { request, result } => self.settle(request, result),
                    Effect::Dispatch(request) => {
                        let _entered = tracing::info_span!(
                            "dispatch_sync_event",
                            id = request.id.0,
                            sw = %request.sw,
                            tag = %request.tag,
                            last_chance = request.last_chance
                        )
                        .entered();
                        if let Some((id, outcome)) = self.dispatcher.dispatch(now, request) {
                            self.core.dispatch_completed(now, id, outcome);
                        }
                    }
                    Effect::AbandonDispatch { id } => self.dispatcher.abandon(id),
                }
            }
            self.drain_log();
            if persists.is_empty() {
                return;
            }
            let batch: Vec<StoreOp> = persists.iter().flat_map(|(_, ops)| ops.clone()).collect();
            let result = {
                let _entered = tracing::debug_span!("commit", ops = batch.len()).entered();
                self.store.commit(&batch).map_err(|e| {
                    tracing::error!(error = %e, "store commit failed");
                    e.to_string()
                })
            };
            for (id, _) in persists {
                self.core.persist_completed(now, id, result.clone());
            }
        }
    }

    fn settle(&mut self, request: RequestId, result: Result<Response, DomException>) {
        match (self.pending.remove(&request), result) {
            (Some(Pending::Register(reply) | Pending::Clear(reply)), Ok(_)) => reply.send(Ok(())),
            (Some(Pending::Register(reply) | Pending::Clear(reply)), Err(e)) => reply.send(Err(e)),
            (Some(Pending::Tags(reply)), Ok(Response::Tags(tags))) => reply.send(Ok(tags)),
            (Some(Pending::Tags(reply)), Ok(_)) => reply.send(Ok(Vec::new())),
            (Some(Pending::Tags(reply)), Err(e)) => reply.send(Err(e)),
            (None, _) => {}
        }
    }

    fn drain_log(&mut self) {
        for entry in self.core.take_log() {
            match &entry.event {
                LogEvent::StoreFailed { cause } => tracing::warn!(
                    origin = %entry.origin, sw = %entry.sw, tag = %entry.tag, %cause,
                    "background sync: store failed"
                ),
                event => tracing::info!(
                    origin = %entry.origin, sw = %entry.sw, tag = %entry.tag, ?event,
                    "background sync"
                ),
            }
            // Subscribers that went away are forgotten.
            self.log_subscribers
                .retain(|tx| tx.send(entry.clone()).is_ok());
            if self.log.len() == self.log_capacity {
                self.log.pop_front();
            }
            if self.log_capacity > 0 {
                self.log.push_back(entry);
            }
        }
    }
}
