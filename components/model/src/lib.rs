//! The reference model of Background Sync and the differential harness.
//!
//! [`Model`] is the oracle: the one-shot algorithms of the
//! [spec](https://wicg.github.io/background-sync/spec/) with our documented parameters, written
//! with lists and linear scans so that a reader can hold it against the spec. It is not the
//! product. [`run_scenario`] runs a sequence of [`Op`]s on the engine (the scheduler, the
//! dispatcher with its time limits, a store) and on the model, and returns the first step after
//! which what script could observe differs: a promise's outcome, the events fired (tag,
//! lastChance), any registration's tags, or the wake-up time.
//!
//! ```
//! use bgsync_model::{run_scenario, Op, Who};
//!
//! let scenario = [
//!     Op::Online(false),
//!     Op::Register { who: Who { origin: 0, kind: 0 }, sw: 0, tag: 0 },
//!     Op::Online(true),
//!     Op::Settle { n: 0, listener: 1 },
//!     Op::Advance(300_000),
//! ];
//! assert_eq!(run_scenario(&scenario), Ok(()));
//! ```

mod diff;
mod model;
mod periodic;
mod scenarios;

pub use diff::{
    encode_scenario, run_scenario, run_scenario_with, tags, Divergence, Op, Reached, Setup, Who,
    ADVANCES, ENGAGEMENTS, INTERVALS, KINDS, LISTENERS, MAX_WORKERS, ORIGINS, PERMISSIONS,
    PLAIN_TAGS, WORKERS,
};
pub use model::{
    is_secure, utf8_bytes, Caller, CallerKind, Engagement, Exception, Fired, Listener, Model,
    Params, Permission, Registration, ServiceWorker, Settled, State, SwId, Tag,
};
pub use periodic::PeriodicRegistration;
pub use scenarios::regression_scenarios;
