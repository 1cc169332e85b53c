//! The sans-IO core of the Background Sync engine.
//!
//! [`Scheduler`] is a deterministic state machine that implements the
//! [Web Background Synchronization](https://wicg.github.io/background-sync/spec/) algorithms for
//! one-shot sync. It never reads a clock, sleeps, spawns, locks or touches a disk: the caller
//! hands it inputs with the current time — API calls, embedder events, dispatch outcomes, store
//! acknowledgements — and drains [`Effect`]s: persist these records, settle this promise, fire this
//! event. It tells the caller when it next needs to be woken ([`Scheduler::poll_timeout`]) and the
//! OS wake-up the user agent should ask for ([`Scheduler::wake_up_time`]).
//!
//! ```
//! use bgsync_scheduler::{Effect, Parameters, RegisterCall, RegisterContext, Scheduler};
//! use bgsync_types::{Origin, RequestId, SwRegistrationId, Tag, Timestamp};
//!
//! let origin = Origin::parse("https://mail.example").unwrap();
//! let mut core = Scheduler::new(Parameters::default());
//! core.register(
//!     Timestamp(0),
//!     RequestId(1),
//!     RegisterCall {
//!         caller: origin.clone().into(),
//!         sw: SwRegistrationId(7),
//!         tag: Tag::from("send-mail"),
//!         context: RegisterContext::ready(origin),
//!     },
//! );
//! // The registration must be durable before the promise resolves.
//! let Some(Effect::Persist { id, .. }) = core.poll_effect() else { panic!() };
//! core.persist_completed(Timestamp(1), id, Ok(()));
//! assert!(matches!(core.poll_effect(), Some(Effect::Settle { result: Ok(_), .. })));
//! // Online (the default), so the event fires once the promise has resolved.
//! assert!(matches!(core.poll_effect(), Some(Effect::Dispatch(d)) if !d.last_chance));
//! ```

mod effects;
mod params;
mod periodic;
mod scheduler;

pub use effects::{
    DispatchOutcome, DispatchRequest, Effect, LogEntry, LogEvent, NextStep, Response, StoreOps,
};
pub use params::Parameters;
pub use periodic::{Engagement, PeriodicRegisterCall, PeriodicState};
pub use scheduler::{RegisterCall, RegisterContext, Scheduler};

/// One registration as the engine holds it, for diagnostics ("why didn't my sync fire?").
/// Not in the spec: the spec's state plus what the engine keeps beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RegistrationSnapshot {
    /// The owning origin.
    pub origin: bgsync_types::Origin,
    /// The storage partition of its service worker registration.
    pub partition: bgsync_types::Partition,
    /// The service worker registration.
    pub sw: bgsync_types::SwRegistrationId,
    /// The tag.
    pub tag: bgsync_types::Tag,
    /// The spec's state.
    pub state: RegistrationState,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// The end of the back-off, when waiting.
    pub next_fire: bgsync_types::Timestamp,
    /// What it is waiting for before it can fire, if anything.
    pub waiting_for: Option<WaitingFor>,
}

/// Why a registration has not fired yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum WaitingFor {
    /// The user agent is offline.
    Network,
    /// The origin's "background-sync" permission is not granted.
    Permission,
    /// A failed attempt's back-off runs until `next_fire`.
    BackOff,
    /// Its `sync` event is in flight.
    EventInFlight,
}

/// The state of a one-shot sync registration.
///
/// See [sync registration state](https://wicg.github.io/background-sync/spec/#sync-registration-registration-state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum RegistrationState {
    /// Waiting to fire: it fires as soon as the user agent is online and permission is granted.
    Pending,
    /// A failed attempt's back-off is running.
    Waiting,
    /// A `sync` event is in flight.
    Firing,
    /// `register()` was called while its event was in flight: it runs once more.
    ReregisteredWhileFiring,
}
