//! The `bgsyncTest` control surface (and `test_driver.set_permission`): what a conformance test
//! asks of the user agent rather than of the web platform — going offline, advancing the
//! clock, terminating workers, restarting, DevTools' dispatch of a `sync` event, the engine's
//! log — and the waits that answer it once the engine has settled.

use bgsync_types::{Origin, PermissionState, SwRegistrationId, Tag, Timestamp};

use crate::agent::{outcome_name, start_engine, Purpose, Task, Waiter, Waiting};
use crate::host::HostCall;
use crate::realm::UserAgent;
use crate::values::{type_error, ErrOut, Out, RealmId};
use crate::UaError;

impl UserAgent {
    /// The conformance-test control surface (`bgsyncTest.*`, `test_driver.set_permission`).
    pub(crate) fn control(&mut self, realm: RealmId, call: u64, op: &str, arg: Out) {
        let wait = |ua: &mut Self, what: Waiting| {
            ua.state
                .borrow_mut()
                .waiters
                .push(Waiter { realm, call, what });
        };
        match (op, arg) {
            ("setOnline", Out::Bool(online)) => {
                let mut st = self.state.borrow_mut();
                st.engine.network_changed(online);
                if st.online != online {
                    st.online = online;
                    let realms: Vec<RealmId> = (0..st.realms.len())
                        .filter(|r| st.realms[*r].alive)
                        .collect();
                    for r in realms {
                        st.hook(r, "network", vec![Out::Bool(online)]);
                    }
                }
                drop(st);
                wait(self, Waiting::Settled);
            }
            ("advanceTime", Out::Num(ms)) => {
                let st = self.state.borrow();
                let target = Timestamp(st.clock_now().0.saturating_add(ms as u64));
                drop(st);
                wait(self, Waiting::Advance(target));
            }
            ("setWindowClient", Out::Bool(present)) => {
                let st = self.state.borrow();
                let origin = st.realms[realm].origin.clone();
                if present {
                    st.shared.windows().insert(origin);
                } else {
                    st.shared.windows().remove(&origin);
                }
                drop(st);
                wait(self, Waiting::Settled);
            }
            ("setPermission", Out::List(v)) => {
                let (Some(Out::Str(name)), Some(Out::Str(value))) = (v.first(), v.get(1)) else {
                    return;
                };
                let mut st = self.state.borrow_mut();
                let origin = st.realms[realm].origin.clone();
                let value: &'static str = match value.as_str() {
                    "granted" => "granted",
                    "denied" => "denied",
                    _ => "prompt",
                };
                if name == "background-sync" {
                    st.permissions.insert(origin.clone(), value);
                    // 'prompt' is not disabled: register() is not refused (the spec's step 3,
                    // and Chromium; docs/chromium.md).
                    let state = match value {
                        "granted" => PermissionState::Granted,
                        "denied" => PermissionState::Denied,
                        _ => PermissionState::Prompt,
                    };
                    if state == PermissionState::Denied {
                        st.shared.denied().insert(origin.clone());
                    } else {
                        st.shared.denied().remove(&origin);
                    }
                    st.engine.permission_changed(&origin, state);
                } else if name == "periodic-background-sync" {
                    st.periodic_permissions.insert(origin.clone(), value);
                    // Chromium: denied until granted; only 'granted' lets register() through.
                    let state = if value == "granted" {
                        st.shared.periodic_granted().insert(origin.clone());
                        PermissionState::Granted
                    } else {
                        st.shared.periodic_granted().remove(&origin);
                        if value == "denied" {
                            PermissionState::Denied
                        } else {
                            PermissionState::Prompt
                        }
                    };
                    st.engine.periodic_permission_changed(&origin, state);
                }
                drop(st);
                wait(self, Waiting::Settled);
            }
            ("setEngagement", Out::List(v)) => {
                let (Some(Out::Str(origin)), Some(Out::Str(level))) = (v.first(), v.get(1)) else {
                    return self.state.borrow_mut().deliver(
                        realm,
                        call,
                        Err(type_error("setEngagement(origin, level)")),
                    );
                };
                let (Ok(origin), Some(level)) =
                    (Origin::parse(origin), bgsync::Engagement::parse(level))
                else {
                    return self.state.borrow_mut().deliver(
                        realm,
                        call,
                        Err(type_error(format!(
                            "setEngagement: {origin:?} is not an origin, or {level:?} is not one of none, minimal, low, medium, high"
                        ))),
                    );
                };
                {
                    let st = self.state.borrow();
                    st.shared.engagement().insert(origin.clone(), level);
                    st.engine.engagement_changed(&origin, level);
                }
                wait(self, Waiting::Settled);
            }
            ("terminateWorker", _) => {
                self.terminate_workers();
                wait(self, Waiting::Settled);
            }
            ("dispatchSyncEvent", Out::List(v)) => {
                // [service worker registration id, the tag's code units, "1" for lastChance]
                let parsed = (|| {
                    let sw: u64 = match v.first()? {
                        Out::Str(s) => s.parse().ok()?,
                        _ => return None,
                    };
                    let units: Vec<u16> = match v.get(1)? {
                        Out::Str(s) if s.is_empty() => Vec::new(),
                        Out::Str(s) => s
                            .split(',')
                            .map(|u| u.parse().ok())
                            .collect::<Option<_>>()?,
                        _ => return None,
                    };
                    let last_chance = matches!(v.get(2)?, Out::Str(s) if s == "1");
                    Some((SwRegistrationId(sw), Tag::from_utf16(units), last_chance))
                })();
                let mut st = self.state.borrow_mut();
                match parsed {
                    Some((sw, tag, last_chance)) => {
                        let origin = st.realms[realm].origin.clone();
                        let rx =
                            st.engine
                                .dispatch_sync_event_with_reply(&origin, sw, tag, last_chance);
                        st.devtools.push((realm, call, rx));
                    }
                    None => st.deliver(
                        realm,
                        call,
                        Err(type_error(
                            "dispatchSyncEvent(registration, tag, lastChance)",
                        )),
                    ),
                }
            }
            ("restart", _) => {
                if let Err(e) = self.restart() {
                    self.state.borrow_mut().deliver(
                        realm,
                        call,
                        Err(ErrOut {
                            name: "UnknownError".into(),
                            message: e.to_string(),
                        }),
                    );
                    return;
                }
                wait(self, Waiting::Settled);
            }
            ("idle", _) => wait(self, Waiting::Idle),
            ("log", _) => {
                let mut st = self.state.borrow_mut();
                st.pump_log();
                let list = st
                    .log
                    .iter()
                    .map(|r| {
                        Out::Obj(vec![
                            ("type", Out::Str(r.kind.into())),
                            ("tag", Out::Units(r.tag.as_utf16().to_vec())),
                            ("time", Out::Num(r.time as f64)),
                            ("lastChance", Out::Bool(r.last_chance)),
                            ("outcome", Out::Str(r.outcome.into())),
                        ])
                    })
                    .collect();
                st.deliver(realm, call, Ok(Out::List(list)));
            }
            ("openWindow" | "addIframe", Out::List(v)) => {
                let strings: Vec<String> = v
                    .into_iter()
                    .filter_map(|o| match o {
                        Out::Str(s) => Some(s),
                        _ => None,
                    })
                    .collect();
                // addIframe: [window, url, scripts…]; openWindow: [url, scripts…].
                let (frame_of, rest) = if op == "addIframe" {
                    let parent = strings.first().and_then(|s| s.parse::<RealmId>().ok());
                    (
                        Some(parent.unwrap_or(realm)),
                        strings.get(1..).unwrap_or(&[]),
                    )
                } else {
                    (None, &strings[..])
                };
                let result = self.open_remote(realm, frame_of, rest);
                self.state.borrow_mut().deliver(realm, call, result);
            }
            ("executeScript", Out::List(v)) => {
                let (Some(Out::Str(target)), Some(Out::Str(source)), Some(Out::Str(args))) =
                    (v.first(), v.get(1), v.get(2))
                else {
                    return self.state.borrow_mut().deliver(
                        realm,
                        call,
                        Err(type_error("executeScript: bad arguments")),
                    );
                };
                let target = target.parse::<RealmId>().unwrap_or(usize::MAX);
                self.execute_script(realm, call, target, source, args);
            }
            ("close", Out::List(v)) => {
                let target = match v.first() {
                    Some(Out::Str(t)) => t.parse::<RealmId>().ok(),
                    _ => None,
                };
                if let Some(target) = target {
                    if self.contexts.get(target).is_some_and(Option::is_some) {
                        self.close(target);
                    }
                }
                self.state
                    .borrow_mut()
                    .deliver(realm, call, Ok(Out::Undefined));
            }
            ("clearSiteData", Out::List(v)) => {
                let st = self.state.borrow();
                let origin = match v.first() {
                    Some(Out::Str(o)) => o.clone(),
                    _ => String::new(),
                };
                match Origin::parse(&origin) {
                    Ok(origin) => {
                        let replies = st.replies();
                        st.engine.clear_origin_then(&origin, move |r| {
                            let _ = replies.send(HostCall::Reply {
                                realm,
                                call,
                                result: r.map(|()| Out::Undefined).map_err(ErrOut::from),
                            });
                        });
                    }
                    Err(e) => {
                        drop(st);
                        self.state.borrow_mut().deliver(
                            realm,
                            call,
                            Err(type_error(format!("clearSiteData: {e}"))),
                        );
                    }
                }
            }
            (op, _) => self.state.borrow_mut().deliver(
                realm,
                call,
                Err(type_error(format!("bgsyncTest: bad call {op}"))),
            ),
        }
    }

    /// Kills every running service worker; events in flight count as failed.
    /// `bgsyncTest.openWindow(url, {scripts})` and `addIframe`: `args` is the URL, then the
    /// scripts, each resolved against the caller's URL.
    fn open_remote(
        &mut self,
        caller: RealmId,
        frame_of: Option<RealmId>,
        args: &[String],
    ) -> Result<Out, ErrOut> {
        if let Some(parent) = frame_of {
            if !self
                .state
                .borrow()
                .realms
                .get(parent)
                .is_some_and(|r| r.alive)
            {
                return Err(ErrOut::new("InvalidStateError", "the window was closed"));
            }
        }
        // A frame's URL is resolved against the window it goes in (its document would hold the
        // iframe element), a new window's against the caller's; scripts against the new one.
        let resolve = |base: &url::Url, s: &String| {
            base.join(s)
                .map_err(|e| type_error(format!("{s} is not a valid URL: {e}")))
        };
        let base = self.state.borrow().realm_url(frame_of.unwrap_or(caller));
        let url = resolve(
            &base,
            args.first()
                .ok_or_else(|| type_error("a URL is required"))?,
        )?;
        let scripts = args[1..]
            .iter()
            .map(|s| resolve(&url, s))
            .collect::<Result<Vec<_>, _>>()?;
        let realm = self
            .open_window(&url, frame_of, &scripts)
            .map_err(|e| ErrOut::new("NetworkError", e.to_string()))?;
        let st = self.state.borrow();
        Ok(Out::Obj(vec![
            ("id", Out::Str(realm.to_string())),
            ("url", Out::Str(url.to_string())),
            ("origin", Out::Str(st.realm_origin(realm).serialize())),
        ]))
    }

    /// `handle.executeScript(fn, args)`: runs `source` (a function's text) with the JSON
    /// `args` in `target`; its result, or what it threw, goes back to `caller`'s call when it
    /// settles.
    fn execute_script(
        &mut self,
        caller: RealmId,
        call: u64,
        target: RealmId,
        source: &str,
        args: &str,
    ) {
        if !self.contexts.get(target).is_some_and(Option::is_some) {
            return self.state.borrow_mut().deliver(
                caller,
                call,
                Err(ErrOut::new("InvalidStateError", "the window was closed")),
            );
        }
        let id = {
            let mut st = self.state.borrow_mut();
            let id = st.next_remote;
            st.next_remote += 1;
            st.remote_calls.insert(id, (caller, call));
            id
        };
        let code = format!(
            "(() => {{ const f = ({source}\n); const a = JSON.parse({args}); \
             Promise.resolve().then(() => f(...a)).then((v) => JSON.stringify(v === undefined ? null : v)).then(\
             (j) => __bgsyncRemoteDone({id}, true, j, ''), \
             (e) => __bgsyncRemoteDone({id}, false, String(e && e.message !== undefined ? e.message : e), String((e && e.name) || 'Error'))); }})();",
            args = js_string(args),
        );
        if let Err(e) = self.eval(target, &code, "executeScript") {
            let mut st = self.state.borrow_mut();
            if st.remote_calls.remove(&id).is_some() {
                st.deliver(caller, call, Err(ErrOut::new("SyntaxError", e.to_string())));
            }
        }
    }

    fn terminate_workers(&mut self) {
        let realms: Vec<RealmId> = {
            let st = self.state.borrow();
            st.sws.values().filter_map(|r| r.realm).collect()
        };
        {
            let mut st = self.state.borrow_mut();
            // Dropping the reporters reports the events as terminated.
            st.lifetimes
                .retain(|_, (_, p)| !matches!(p, Purpose::Sync(_)));
            for reg in st.sws.values_mut() {
                reg.realm = None;
            }
            for &r in &realms {
                st.realms[r].alive = false;
                let timers: Vec<(RealmId, u64)> = st
                    .timer_index
                    .keys()
                    .filter(|k| k.0 == r)
                    .copied()
                    .collect();
                for (realm, id) in timers {
                    st.clear_timer(realm, id);
                }
            }
        }
        for r in realms {
            self.contexts[r] = None;
        }
    }

    /// A user-agent restart: the engine is rebuilt from its store; events in flight are lost
    /// (not counted) and workers start afresh when next needed.
    fn restart(&mut self) -> Result<(), UaError> {
        {
            let mut st = self.state.borrow_mut();
            st.engine.settle_blocking();
            st.pump_log();
            st.engine.shutdown();
            // The old engine is gone: its events' reporters lead nowhere.
            while st.host_rx.try_recv().is_ok() {}
            st.lifetimes
                .retain(|_, (_, p)| !matches!(p, Purpose::Sync(_)));
            st.tasks.retain(|t| !matches!(t, Task::FireSync(..)));
        }
        self.terminate_workers();
        let mut st = self.state.borrow_mut();
        let (engine, log_rx) = start_engine(
            &st.config,
            &st.clock,
            &st.store,
            &st.shared,
            &st.host_tx,
            st.online,
        )?;
        st.engine = engine;
        st.log_rx = log_rx;
        Ok(())
    }

    /// Delivers the outcomes of DevTools dispatches that ended; true if one did.
    pub(crate) fn step_devtools(&mut self) -> bool {
        let mut st = self.state.borrow_mut();
        if st.devtools.is_empty() {
            return false;
        }
        let mut progressed = false;
        let pending = std::mem::take(&mut st.devtools);
        for (realm, call, rx) in pending {
            match rx.try_recv() {
                Ok(result) => {
                    let result = result
                        .map(|o| Out::Str(outcome_name(o).into()))
                        .map_err(ErrOut::from);
                    st.tasks.push_back(Task::Deliver {
                        realm,
                        call,
                        result,
                    });
                    progressed = true;
                }
                Err(crossbeam_channel::TryRecvError::Empty) => st.devtools.push((realm, call, rx)),
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    st.tasks.push_back(Task::Deliver {
                        realm,
                        call,
                        result: Err(ErrOut::new("UnknownError", "Background Sync has shut down")),
                    });
                    progressed = true;
                }
            }
        }
        progressed
    }

    /// Steps the waiters of the control surface; true if one made progress.
    pub(crate) fn step_waiters(&mut self) -> bool {
        let waiters = std::mem::take(&mut self.state.borrow_mut().waiters);
        if waiters.is_empty() {
            return false;
        }
        let mut progressed = false;
        let mut keep = Vec::new();
        for w in waiters {
            let engine = self.state.borrow().engine.clone();
            let status = engine.status_blocking().unwrap_or_default();
            self.state.borrow_mut().pump_host();
            if !self.state.borrow().tasks.is_empty() {
                keep.push(w);
                progressed = true;
                continue;
            }
            let now = self.state.borrow().clock_now();
            let lifetimes_busy = self
                .state
                .borrow()
                .lifetimes
                .values()
                .any(|(_, p)| matches!(p, Purpose::Sync(_)));
            let finished = match w.what {
                Waiting::Settled => true,
                Waiting::Idle => {
                    status.in_flight == 0
                        && !lifetimes_busy
                        && status.next_timer.is_none_or(|t| t > now)
                }
                Waiting::Advance(target) => {
                    if now >= target {
                        true
                    } else {
                        let next = status
                            .next_timer
                            .filter(|t| *t > now)
                            .map_or(target, |t| t.min(target));
                        self.state.borrow_mut().set_clock(next);
                        engine.settle_blocking();
                        self.state.borrow_mut().pump_host();
                        progressed = true;
                        false
                    }
                }
            };
            if finished {
                self.state.borrow_mut().tasks.push_back(Task::Deliver {
                    realm: w.realm,
                    call: w.call,
                    result: Ok(Out::Undefined),
                });
                progressed = true;
            } else {
                keep.push(w);
            }
        }
        self.state.borrow_mut().waiters.extend(keep);
        progressed
    }
}

/// A JavaScript string literal of `s`.
fn js_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
