//! Dedicated workers (HTML § 10.2, `DedicatedWorkerGlobalScope`): running a worker's main script
//! as HTML's "run a worker" does, reporting an exception at the global; `new Worker(url)` from
//! a page (the worker is of the page's origin and storage partition), and messages both ways
//! between the `Worker` object and the worker's global. (A host opens one of its own with
//! [`UserAgent::open`] and [`GlobalKind::DedicatedWorker`](crate::GlobalKind::DedicatedWorker);
//! its `postMessage` then goes to the host. A host runs a service worker's script this way too,
//! after [`open_service_worker`](UserAgent::open_service_worker).)

use url::Url;

use crate::agent::Placement;
use crate::realm::UserAgent;
use crate::values::{GlobalKind, Out, RealmId};
use crate::UaError;

impl UserAgent {
    /// Runs a worker's main script from `url` in `realm` as a browser does: an exception it
    /// throws is reported at the global (an `error` event, then `onerror`) and returned.
    pub fn run_main_script(&mut self, realm: RealmId, url: &Url) -> Result<(), UaError> {
        let source = self.state.borrow().load(url)?;
        self.eval_reporting(realm, &source, url.as_str())
    }

    /// HTML's "run a worker" for `new Worker(url)` in `parent`: a realm of the parent's origin
    /// and partition, then its script. A script that cannot be fetched fires `error` at the
    /// `Worker` object, as a network error does.
    pub(crate) fn start_dedicated(&mut self, parent: RealmId, handle: u64, url: &Url) {
        let (partition, alive) = {
            let st = self.state.borrow();
            let p = &st.realms[parent];
            (p.partition.clone(), p.alive)
        };
        if !alive {
            return;
        }
        let placement = Placement {
            parent: Some(parent),
            top_level: false,
            partition,
        };
        // A worker that cannot start fires `error` at its Worker object.
        let failed = |ua: &mut Self, e: UaError| {
            ua.hooks_call(
                parent,
                "workerError",
                vec![Out::Num(handle as f64), Out::Str(e.to_string())],
            );
        };
        let fetched = self.state.borrow().load(url);
        let source = match fetched {
            Ok(s) => s,
            Err(e) => {
                self.state.borrow_mut().dedicated.remove(&handle);
                return failed(self, e);
            }
        };
        let realm = match self.open_realm(GlobalKind::DedicatedWorker, url, None, placement) {
            Ok(r) => r,
            Err(e) => return failed(self, e),
        };
        if let Some(d) = self.state.borrow_mut().dedicated.get_mut(&handle) {
            d.realm = Some(realm);
        }
        if let Err(e) = self.eval_reporting(realm, &source, url.as_str()) {
            failed(self, e);
        }
    }

    /// `worker.postMessage(message)`: a `message` event at the worker's global.
    pub(crate) fn post_to_dedicated(&mut self, handle: u64, json: String) {
        let realm = self
            .state
            .borrow()
            .dedicated
            .get(&handle)
            .and_then(|d| d.realm);
        if let Some(realm) = realm {
            self.hooks_call(realm, "message", vec![Out::Str(json), Out::Null]);
        }
    }

    /// `worker.terminate()`: the worker's global goes, with its timers; messages no longer
    /// arrive either way.
    pub(crate) fn terminate_dedicated(&mut self, handle: u64) {
        let realm = self
            .state
            .borrow_mut()
            .dedicated
            .remove(&handle)
            .and_then(|d| d.realm);
        if let Some(realm) = realm {
            self.close(realm);
        }
    }
}
