//! Realms (HTML § 8.1.3 realms and their global objects): the [`UserAgent`] itself — one
//! QuickJS runtime, one context per global — creating a realm with its prelude and native
//! functions, running script in it under the watchdog, the microtask checkpoint, and calling
//! the prelude's hooks. What is specific to one kind of global lives in `window`,
//! `dedicated_worker` and `service_worker`.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bgsync_types::{Origin, SwRegistrationId};
use rquickjs::function::Rest;
use rquickjs::{CatchResultExt, CaughtError, Context, Function, Object, Persistent, Runtime};
use url::Url;

use crate::agent::{Placement, RealmInfo, State};
use crate::values::{describe, js_error, options, to_js, GlobalKind, Out, RealmId};
use crate::UaError;

const PRELUDE: &str = include_str!("prelude.js");

/// A user agent: pages, dedicated workers and service workers on one QuickJS runtime, and one
/// Background Sync engine on a virtual clock.
pub struct UserAgent {
    pub(crate) rt: Runtime,
    pub(crate) contexts: Vec<Option<(Context, Persistent<Object<'static>>)>>,
    pub(crate) state: Rc<RefCell<State>>,
    pub(crate) watchdog: Arc<AtomicU64>,
    pub(crate) started: Instant,
}

impl UserAgent {
    pub(crate) fn open_realm(
        &mut self,
        kind: GlobalKind,
        url: &Url,
        sw: Option<SwRegistrationId>,
        placement: Placement,
    ) -> Result<RealmId, UaError> {
        let origin = Origin::from_url(url).map_err(|e| UaError::Script(e.to_string()))?;
        let id = self.contexts.len();
        let top_level = kind == GlobalKind::Window && placement.top_level;
        let dedicated_child = kind == GlobalKind::DedicatedWorker && placement.parent.is_some();
        {
            let mut st = self.state.borrow_mut();
            st.realms.push(RealmInfo {
                kind,
                url: url.clone(),
                origin: origin.clone(),
                partition: placement.partition,
                top_level,
                parent: placement.parent,
                alive: true,
            });
            // A top-level window makes its origin a window client (not a frame: Chromium counts
            // main frames only).
            if top_level {
                st.shared.windows().insert(origin.clone());
            }
        }
        let ctx = Context::full(&self.rt).map_err(|e| UaError::Script(e.to_string()))?;
        let registration = sw.map(|sw| self.state.borrow().registration_out(sw));
        let max_tag_bytes = self.state.borrow().max_tag_bytes() as f64;
        let state = self.state.clone();
        let hooks = ctx.with(|ctx| -> Result<Persistent<Object<'static>>, UaError> {
            let native = crate::native::make(&ctx, id, state).map_err(|e| js_error(&ctx, e))?;
            let info = (|| -> rquickjs::Result<Object> {
                let info = Object::new(ctx.clone())?;
                info.set("href", url.as_str())?;
                info.set("origin", origin.serialize())?;
                info.set("isSecureContext", origin.is_potentially_trustworthy())?;
                info.set("maxTagBytes", max_tag_bytes)?;
                info.set("topLevel", top_level || kind != GlobalKind::Window)?;
                info.set("hasParent", dedicated_child)?;
                if let Some(r) = registration {
                    info.set("registration", to_js(&ctx, r)?)?;
                }
                Ok(info)
            })()
            .map_err(|e| js_error(&ctx, e))?;
            let prelude: Function = ctx
                .eval_with_options(PRELUDE, options("bgsync-prelude.js"))
                .catch(&ctx)
                .map_err(|e| UaError::Script(e.to_string()))?;
            let hooks: Object = prelude
                .call((native, kind.as_str(), info))
                .catch(&ctx)
                .map_err(|e| UaError::Script(e.to_string()))?;
            Ok(Persistent::save(&ctx, hooks))
        })?;
        self.contexts.push(Some((ctx, hooks)));
        Ok(id)
    }

    /// Runs a classic script in `realm`. An exception is returned as text (`Name: message`).
    pub fn eval(&mut self, realm: RealmId, source: &str, name: &str) -> Result<(), UaError> {
        let Some((ctx, _)) = self.contexts.get(realm).and_then(Option::as_ref) else {
            return Err(UaError::Script(format!("realm {realm} is gone")));
        };
        self.arm_watchdog();
        let result = ctx.with(|ctx| {
            ctx.eval_with_options::<(), _>(source, options(name))
                .catch(&ctx)
                .map_err(|e| UaError::Script(describe(&e)))
        });
        self.disarm_watchdog();
        self.run_microtasks();
        result
    }

    /// Loads `url` from disk and runs it in `realm`.
    pub fn run_script(&mut self, realm: RealmId, url: &Url) -> Result<(), UaError> {
        let source = self.state.borrow().load(url)?;
        self.eval(realm, &source, url.as_str())
    }

    /// Runs `source` in `realm`, reporting an exception at the global (HTML's "report an
    /// exception") as well as returning it.
    pub(crate) fn eval_reporting(
        &mut self,
        realm: RealmId,
        source: &str,
        name: &str,
    ) -> Result<(), UaError> {
        let Some((ctx, hooks)) = self.contexts.get(realm).and_then(Option::as_ref) else {
            return Err(UaError::Script(format!("realm {realm} is gone")));
        };
        self.arm_watchdog();
        let (watchdog, started) = (self.watchdog.clone(), self.started);
        let limit = self.state.borrow().config.watchdog;
        let result = ctx.with(|ctx| {
            let caught = match ctx
                .eval_with_options::<(), _>(source, options(name))
                .catch(&ctx)
            {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let text = describe(&caught);
            let value = match caught {
                CaughtError::Exception(ex) => Some(ex.into_value()),
                CaughtError::Value(v) => Some(v),
                CaughtError::Error(_) => None,
            };
            // The handlers get a watchdog period of their own (an interrupted script used its up).
            let at = started.elapsed() + limit;
            watchdog.store(
                u64::try_from(at.as_millis()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            if let Some(v) = value {
                let report = hooks
                    .clone()
                    .restore(&ctx)
                    .and_then(|h| h.get::<_, Function>("reportException"))
                    .and_then(|f| f.call::<_, ()>((v,)));
                if let Err(e) = report {
                    tracing::warn!("reporting an exception failed: {e}");
                }
            }
            Err(UaError::Script(text))
        });
        self.disarm_watchdog();
        self.run_microtasks();
        result
    }

    /// The kind of `realm`'s global.
    pub fn kind(&self, realm: RealmId) -> Option<GlobalKind> {
        self.state.borrow().realms.get(realm).map(|r| r.kind)
    }

    fn arm_watchdog(&self) {
        let limit = self.state.borrow().config.watchdog;
        let at = self.started.elapsed() + limit;
        self.watchdog.store(
            u64::try_from(at.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn disarm_watchdog(&self) {
        self.watchdog.store(u64::MAX, Ordering::Relaxed);
    }

    pub(crate) fn run_microtasks(&mut self) {
        self.arm_watchdog();
        loop {
            match self.rt.execute_pending_job() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    let msg = e.0.with(|ctx| {
                        describe(&CaughtError::from_error(&ctx, rquickjs::Error::Exception))
                    });
                    let mut st = self.state.borrow_mut();
                    st.console
                        .push(format!("error: Uncaught (in promise job) {msg}"));
                    st.uncaught.push(msg);
                }
            }
        }
        self.disarm_watchdog();
    }

    /// Calls a hook that returns a number (an index); NaN when it fails.
    pub(crate) fn hooks_call_value(&mut self, realm: RealmId, hook: &str, args: Vec<Out>) -> f64 {
        let Some((ctx, hooks)) = self.contexts.get(realm).and_then(Option::as_ref) else {
            return f64::NAN;
        };
        self.arm_watchdog();
        let result = ctx.with(|ctx| -> Result<f64, String> {
            let hooks = hooks.clone().restore(&ctx).map_err(|e| e.to_string())?;
            let f: Function = hooks.get(hook).map_err(|e| e.to_string())?;
            let mut values = Vec::new();
            for a in args {
                values.push(to_js(&ctx, a).map_err(|e| e.to_string())?);
            }
            f.call::<_, f64>((Rest(values),))
                .catch(&ctx)
                .map_err(|e| describe(&e))
        });
        self.disarm_watchdog();
        result.unwrap_or_else(|e| {
            self.state.borrow_mut().console.push(format!("error: {e}"));
            f64::NAN
        })
    }

    /// Calls a hook; false if it threw (reported as uncaught) or the realm is gone.
    pub(crate) fn hooks_call(&mut self, realm: RealmId, hook: &str, args: Vec<Out>) -> bool {
        let Some((ctx, hooks)) = self.contexts.get(realm).and_then(Option::as_ref) else {
            return false;
        };
        self.arm_watchdog();
        let result = ctx.with(|ctx| -> Result<(), String> {
            let hooks = hooks.clone().restore(&ctx).map_err(|e| e.to_string())?;
            let f: Function = hooks.get(hook).map_err(|e| e.to_string())?;
            let mut values = Vec::new();
            for a in args {
                values.push(to_js(&ctx, a).map_err(|e| e.to_string())?);
            }
            f.call::<_, ()>((Rest(values),))
                .catch(&ctx)
                .map_err(|e| describe(&e))
        });
        self.disarm_watchdog();
        if let Err(e) = result {
            let mut st = self.state.borrow_mut();
            st.console.push(format!("error: Uncaught {e}"));
            st.uncaught.push(e);
            return false;
        }
        true
    }

    /// Closes `realm` and what is nested in it (frames, dedicated workers): their timers stop,
    /// their globals go, and an origin left with no top-level window is in the background.
    pub(crate) fn close(&mut self, realm: RealmId) {
        let closed = {
            let mut st = self.state.borrow_mut();
            let closed = st.close_realm(realm);
            let timers: Vec<(RealmId, u64)> = st
                .timer_index
                .keys()
                .filter(|k| closed.contains(&k.0))
                .copied()
                .collect();
            for (r, id) in timers {
                st.clear_timer(r, id);
            }
            closed
        };
        for r in closed {
            if let Some(slot) = self.contexts.get_mut(r) {
                *slot = None;
            }
        }
    }
}
