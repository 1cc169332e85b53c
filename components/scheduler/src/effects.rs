use std::time::Duration;

use bgsync_store::StoreOp;
use bgsync_types::{
    DispatchId, DomException, Origin, PersistId, RequestId, SwRegistrationId, Tag, Timestamp,
};

use crate::RegistrationState;

/// The writes of one [`Effect::Persist`], in order: a slice of [`StoreOp`]s. Most are one row
/// (a registration made, an event's end), held without an allocation of their own.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreOps {
    /// One write.
    One(StoreOp),
    /// Any number of writes.
    Many(Vec<StoreOp>),
}

impl std::ops::Deref for StoreOps {
    type Target = [StoreOp];

    fn deref(&self) -> &[StoreOp] {
        match self {
            StoreOps::One(op) => std::slice::from_ref(op),
            StoreOps::Many(ops) => ops,
        }
    }
}

impl IntoIterator for StoreOps {
    type Item = StoreOp;
    type IntoIter = std::iter::Chain<std::option::IntoIter<StoreOp>, std::vec::IntoIter<StoreOp>>;

    fn into_iter(self) -> Self::IntoIter {
        match self {
            StoreOps::One(op) => Some(op).into_iter().chain(Vec::new()),
            StoreOps::Many(ops) => None.into_iter().chain(ops),
        }
    }
}

impl From<StoreOp> for StoreOps {
    fn from(op: StoreOp) -> StoreOps {
        StoreOps::One(op)
    }
}

impl From<Vec<StoreOp>> for StoreOps {
    fn from(ops: Vec<StoreOp>) -> StoreOps {
        StoreOps::Many(ops)
    }
}

/// Something the core asks its driver to do. Drained with
/// [`Scheduler::poll_effect`](crate::Scheduler::poll_effect), in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Write these operations to the store, atomically, then call
    /// [`Scheduler::persist_completed`](crate::Scheduler::persist_completed) with `id`. The
    /// driver may commit several `Persist` effects in one transaction (group commit), in order.
    Persist {
        /// Acknowledge with this id.
        id: PersistId,
        /// The writes.
        ops: StoreOps,
    },
    /// Settle the promise of an API call.
    Settle {
        /// The call.
        request: RequestId,
        /// Resolve with the response, or reject with the exception.
        result: Result<Response, DomException>,
    },
    /// Fire a `sync` event at the service worker registration and report the outcome with
    /// [`Scheduler::dispatch_completed`](crate::Scheduler::dispatch_completed).
    Dispatch(DispatchRequest),
    /// Forget an event in flight (its service worker registration is gone): terminate it if you
    /// can; its outcome, if reported, is ignored.
    AbandonDispatch {
        /// The event.
        id: DispatchId,
    },
}

/// What a resolved API call resolves with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `register()` resolved with undefined.
    Registered,
    /// `getTags()` resolved with these tags, in the order they were registered.
    Tags(Vec<Tag>),
    /// A clear (site data, or everything) is durable.
    Cleared,
}

/// One `sync` event to fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchRequest {
    /// Report the outcome with this id.
    pub id: DispatchId,
    /// The service worker registration to fire at.
    pub sw: SwRegistrationId,
    /// Its origin.
    pub origin: Origin,
    /// `SyncEvent.tag`.
    pub tag: Tag,
    /// `SyncEvent.lastChance`: the user agent will not retry after this attempt.
    pub last_chance: bool,
    /// How long the event may run; past it the attempt counts as failed.
    pub time_limit: Duration,
    /// `sync` (one-shot) or `periodicsync` (periodic).
    pub kind: bgsync_types::SyncKind,
}

/// How a dispatched `sync` event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum DispatchOutcome {
    /// Every `waitUntil` promise fulfilled (or none was given).
    Fulfilled,
    /// A `waitUntil` promise rejected, or the handler threw.
    Rejected,
    /// The event ran past the time limit.
    TimedOut,
    /// The worker was terminated or crashed while the event ran.
    WorkerTerminated,
    /// No worker could be started to receive the event.
    WorkerFailedToStart,
}

impl DispatchOutcome {
    /// Whether the attempt succeeded.
    pub fn is_success(self) -> bool {
        self == DispatchOutcome::Fulfilled
    }
}

/// One line of the DevTools-style Background Sync log.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LogEntry {
    /// When it happened.
    pub time: Timestamp,
    /// The registration's origin.
    pub origin: Origin,
    /// Its service worker registration.
    pub sw: SwRegistrationId,
    /// Its tag.
    pub tag: Tag,
    /// What happened.
    pub event: LogEvent,
}

/// What a [`LogEntry`] records.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum LogEvent {
    /// A new registration was committed and its `register()` resolved.
    Registered,
    /// `register()` was called for an existing tag; the registration was in `state`.
    Reregistered {
        /// The state it was in when `register()` was called.
        state: RegistrationState,
    },
    /// A `sync` event was dispatched.
    Dispatched {
        /// The event's `lastChance`.
        last_chance: bool,
        /// Failed attempts before this one.
        previous_attempts: u32,
    },
    /// A `sync` event ended.
    Completed {
        /// How it ended.
        outcome: DispatchOutcome,
        /// What happens to the registration next.
        next: NextStep,
    },
    /// The registration was dropped because its service worker registration was unregistered.
    Unregistered,
    /// The registration was dropped because the site's data was cleared.
    Cleared,
    /// The store failed to commit a change to this registration.
    StoreFailed {
        /// The store's message.
        cause: String,
    },
    /// `register()` was refused (the DOMException script saw): logged with the caller's
    /// origin, the service worker registration and the tag it asked for.
    Rejected {
        /// The exception's name.
        name: bgsync_types::DomExceptionName,
        /// Its message.
        message: String,
    },
    /// DevTools dispatched a `sync` event for this tag (not a registration's attempt).
    DevToolsDispatched {
        /// The `lastChance` it was given.
        last_chance: bool,
    },
    /// The event DevTools dispatched ended; no registration changed.
    DevToolsCompleted {
        /// How it ended.
        outcome: DispatchOutcome,
    },
    /// A periodic registration was made (its `register()` resolves once durable).
    PeriodicRegistered {
        /// The `minInterval` asked for.
        min_interval: Duration,
        /// The interval it fires at, given the origin's engagement (`None`: suspended).
        effective: Option<Duration>,
    },
    /// A periodic registration was removed (`unregister()`, or the permission revoked).
    PeriodicUnregistered,
    /// A `periodicsync` event was dispatched.
    PeriodicDispatched {
        /// Failed attempts of this round before this one.
        previous_attempts: u32,
    },
    /// A `periodicsync` event ended.
    PeriodicCompleted {
        /// How it ended.
        outcome: DispatchOutcome,
        /// Whether it is retried after a back-off (else it is back on its interval).
        retry: bool,
        /// When it fires next (`None`: suspended for want of engagement).
        next_fire: Option<bgsync_types::Timestamp>,
    },
    /// The registration database was found damaged, moved aside and rebuilt. Written once per
    /// origin with registrations in it, naming that origin's first kept registration.
    StoreRecovered {
        /// What was wrong, where the damaged file went, and what could not be kept.
        cause: String,
        /// How many of this origin's registrations were kept.
        kept: u64,
    },
}

/// What happens to a registration after an event ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum NextStep {
    /// It succeeded and was removed.
    Removed,
    /// It failed and will be retried after this delay.
    RetryAfter(Duration),
    /// It failed on its last chance and was removed.
    GaveUp,
    /// It was re-registered while firing: it runs again, with its attempts reset.
    RunAgain,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delete(sw: u64) -> StoreOp {
        StoreOp::DeleteServiceWorker(SwRegistrationId(sw))
    }

    #[test]
    fn store_ops_read_and_iterate_as_their_writes_in_order() {
        let one = StoreOps::from(delete(1));
        assert_eq!(one, StoreOps::One(delete(1)));
        assert_eq!(&one[..], &[delete(1)]);
        assert_eq!(one.into_iter().collect::<Vec<_>>(), vec![delete(1)]);

        let many = StoreOps::from(vec![delete(1), delete(2), delete(3)]);
        assert_eq!(many.len(), 3);
        assert_eq!(&many[..], &[delete(1), delete(2), delete(3)]);
        assert_eq!(
            many.into_iter().collect::<Vec<_>>(),
            vec![delete(1), delete(2), delete(3)]
        );

        let none = StoreOps::from(Vec::new());
        assert!(none.is_empty());
        assert_eq!(none.into_iter().count(), 0);
    }
}
