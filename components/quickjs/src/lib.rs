//! Background Sync's JavaScript binding on QuickJS, with a minimal service-worker environment.
//!
//! A [`UserAgent`] is one QuickJS runtime with one realm per global — windows, dedicated
//! workers, service workers, each with its real identity (`self instanceof Window`, …) — and one
//! Background Sync engine on a virtual clock. Script calls `registration.sync.register('x')`
//! and the engine sees it; the engine fires `sync` and the worker's `waitUntil` decides the
//! outcome. The engine-neutral semantics (DOMString conversion, `waitUntil` rules, error names)
//! live in `bgsync-idl`; this crate is the QuickJS glue and the environment around it.
//!
//! ```
//! use std::time::Duration;
//! use bgsync_quickjs::{GlobalKind, UserAgent, UserAgentConfig};
//!
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("sw.js"), "self.onsync = e => e.waitUntil(Promise.resolve());").unwrap();
//! let mut ua = UserAgent::new(UserAgentConfig::new(dir.path())).unwrap();
//! let page = ua.open(GlobalKind::Window, &ua.url_for("index.html").unwrap()).unwrap();
//! let r = ua.eval_async(page, "(async () => {
//!     await navigator.serviceWorker.register('sw.js');
//!     const reg = await navigator.serviceWorker.ready;
//!     await reg.sync.register('send-mail');
//!     await bgsyncTest.idle();
//!     return (await bgsyncTest.log()).map(e => e.type + ':' + (e.outcome || e.tag));
//! })()", Duration::from_secs(5));
//! assert_eq!(r.unwrap(), r#"["registered:send-mail","dispatched:send-mail","completed:fulfilled"]"#);
//! ```

// The modules, layer by layer from the bottom: a module uses only modules of the layers before
// its own, never one of its own layer or a later one, so there is no cycle among them.
mod config;
mod values;

mod host;

mod agent;

mod registration;

mod extendable_event;

mod native;

mod realm;

mod control;
mod dedicated_worker;
mod service_worker;
mod window;

mod ua;

pub use agent::LogRecord;
pub use config::{Served, UserAgentConfig};
pub use realm::UserAgent;
pub use values::{GlobalKind, RealmId};
pub use window::PageElement;

/// Why the user agent could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UaError {
    /// A script threw, or could not be compiled.
    #[error("{0}")]
    Script(String),
    /// A URL is not served from the root directory.
    #[error("not found: {0}")]
    NotFound(String),
    /// The Background Sync engine could not start.
    #[error("the Background Sync engine could not start: {0}")]
    Engine(String),
}
