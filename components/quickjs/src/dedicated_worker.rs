//! Dedicated workers (HTML § 10.2, `DedicatedWorkerGlobalScope`): running a worker's main script
//! as HTML's "run a worker" does, reporting an exception at the global. (Opening one is
//! [`UserAgent::open`] with [`GlobalKind::DedicatedWorker`](crate::GlobalKind::DedicatedWorker);
//! what the global looks like, `postMessage` to the host included, is in the prelude. A host
//! runs a service worker's script this way too, after
//! [`open_service_worker`](UserAgent::open_service_worker).)

use url::Url;

use crate::realm::UserAgent;
use crate::values::RealmId;
use crate::UaError;

impl UserAgent {
    /// Runs a worker's main script from `url` in `realm` as a browser does: an exception it
    /// throws is reported at the global (an `error` event, then `onerror`) and returned.
    pub fn run_main_script(&mut self, realm: RealmId, url: &Url) -> Result<(), UaError> {
        let source = self.state.borrow().load(url)?;
        self.eval_reporting(realm, &source, url.as_str())
    }
}
