//! The Rust functions a realm's prelude calls (`native.*` in prelude.js).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bgsync_types::{Origin, SwRegistrationId, Tag};
use rquickjs::{Ctx, Exception, Function, Object, Value};
use url::Url;

use crate::agent::{State, Task};
use crate::host::HostCall;
use crate::values::{options, to_js, ErrOut, Out, RealmId};

type Shared = Rc<RefCell<State>>;

fn err(name: &str, message: impl Into<String>) -> ErrOut {
    ErrOut::new(name, message)
}

/// Where the engine's answer to call `call` of `realm` goes: back to the event loop's queue,
/// as a task (the page's thread does not wait for it).
fn answer_to(
    replies: crossbeam_channel::Sender<HostCall>,
    realm: RealmId,
    call: f64,
) -> impl FnOnce(Result<Out, ErrOut>) + Send + 'static {
    move |result| {
        let _ = replies.send(HostCall::Reply {
            realm,
            call: call as u64,
            result,
        });
    }
}

/// A tag from the UTF-16 code units script passed.
fn tag_of(units: Vec<u32>) -> Tag {
    Tag::from_utf16(units.into_iter().map(|u| u as u16).collect::<Vec<u16>>())
}

/// What a call into the engine from `realm` needs: the engine, the realm's storage key and
/// where answers go. With `active`, the call needs that service worker registration to have an
/// active worker: Chromium's renderer checks it when the call is made (and the engine again
/// when it runs the call), so a worker that activates meanwhile does not turn an early call
/// into a registration. Refused, the call is answered here and `None` returned.
fn engine_call(
    st: &Shared,
    realm: RealmId,
    call: f64,
    active: Option<SwRegistrationId>,
) -> Option<(
    bgsync::BackgroundSync,
    bgsync_types::StorageKey,
    crossbeam_channel::Sender<HostCall>,
)> {
    let mut s = st.borrow_mut();
    if active.is_some_and(|sw| !s.has_active_worker(sw)) {
        s.deliver(
            realm,
            call as u64,
            Err(err(
                "InvalidStateError",
                "Registration failed: the service worker registration has no active worker",
            )),
        );
        return None;
    }
    Some((s.engine().clone(), s.realm_key(realm), s.replies()))
}

/// Builds the `native` object of realm `realm`.
pub(crate) fn make<'js>(
    ctx: &Ctx<'js>,
    realm: RealmId,
    state: Shared,
) -> rquickjs::Result<Object<'js>> {
    let o = Object::new(ctx.clone())?;
    macro_rules! native {
        ($name:literal, $f:expr) => {
            o.set($name, Function::new(ctx.clone(), $f)?)?;
        };
    }

    let st = state.clone();
    native!("print", move |level: String, text: String| st
        .borrow_mut()
        .print(&level, text));
    let st = state.clone();
    native!("uncaught", move |text: String| st
        .borrow_mut()
        .report_uncaught(text));
    native!("parseUrl", move |ctx: Ctx<'js>,
                              input: String,
                              base: Option<String>|
          -> rquickjs::Result<Value<'js>> {
        let parsed = match base {
            Some(b) => Url::parse(&b).and_then(|b| b.join(&input)),
            None => Url::parse(&input),
        };
        match parsed {
            Ok(url) => to_js(&ctx, url_parts(&url)),
            Err(_) => Ok(Value::new_null(ctx)),
        }
    });
    let st = state.clone();
    native!("online", move || st.borrow().online());
    let st = state.clone();
    native!("permissionState", move |name: String| -> String {
        let s = st.borrow();
        if name == "background-sync" {
            s.permission(realm).to_owned()
        } else if name == "periodic-background-sync" {
            s.periodic_permissions
                .get(&s.realm_origin(realm))
                .copied()
                .unwrap_or("denied")
                .to_owned()
        } else {
            "denied".to_owned()
        }
    });

    // PeriodicSyncManager.register(tag, {minInterval}), unregister(tag) and getTags().
    let st = state.clone();
    native!(
        "periodicRegister",
        move |call: f64, sw: f64, units: Vec<u32>, min_interval: f64| {
            let Some((engine, key, replies)) =
                engine_call(&st, realm, call, Some(SwRegistrationId(sw as u64)))
            else {
                return;
            };
            let tag = tag_of(units);
            let answer = answer_to(replies, realm, call);
            engine.periodic_register_then(
                key,
                SwRegistrationId(sw as u64),
                tag,
                Duration::from_millis(min_interval as u64),
                move |r| answer(r.map(|()| Out::Undefined).map_err(ErrOut::from)),
            );
        }
    );
    let st = state.clone();
    native!(
        "periodicUnregister",
        move |call: f64, sw: f64, units: Vec<u32>| {
            let Some((engine, key, replies)) = engine_call(&st, realm, call, None) else {
                return;
            };
            let tag = tag_of(units);
            let answer = answer_to(replies, realm, call);
            engine.periodic_unregister_then(key, SwRegistrationId(sw as u64), tag, move |r| {
                answer(r.map(|()| Out::Undefined).map_err(ErrOut::from))
            });
        }
    );
    let st = state.clone();
    native!("periodicGetTags", move |call: f64, sw: f64| {
        let Some((engine, key, replies)) = engine_call(&st, realm, call, None) else {
            return;
        };
        let answer = answer_to(replies, realm, call);
        engine.periodic_get_tags_then(key, SwRegistrationId(sw as u64), move |r| {
            answer(
                r.map(|tags| {
                    Out::List(
                        tags.iter()
                            .map(|t| Out::Units(t.as_utf16().to_vec()))
                            .collect(),
                    )
                })
                .map_err(ErrOut::from),
            )
        });
    });

    // SyncManager.register(tag) and getTags().
    let st = state.clone();
    native!("register", move |call: f64, sw: f64, units: Vec<u32>| {
        let Some((engine, origin, replies)) =
            engine_call(&st, realm, call, Some(SwRegistrationId(sw as u64)))
        else {
            return;
        };
        let tag = tag_of(units);
        let answer = answer_to(replies, realm, call);
        engine.register_then(origin, SwRegistrationId(sw as u64), tag, move |r| {
            answer(r.map(|()| Out::Undefined).map_err(ErrOut::from))
        });
    });
    // Chromium: a tag of more UTF-16 code units than the cap has bytes, refused as the engine
    // refuses an over-long tag, without its units.
    let st = state.clone();
    native!("tagTooLong", move |call: f64, units: f64| {
        let mut s = st.borrow_mut();
        let message = format!(
            "Registration failed: the tag is at least {} bytes of UTF-8; the limit is {}",
            units as u64,
            s.max_tag_bytes()
        );
        s.deliver(realm, call as u64, Err(err("InvalidAccessError", message)));
    });
    let st = state.clone();
    native!("getTags", move |call: f64, sw: f64| {
        let Some((engine, key, replies)) = engine_call(&st, realm, call, None) else {
            return;
        };
        let answer = answer_to(replies, realm, call);
        engine.get_tags_then(key, SwRegistrationId(sw as u64), move |r| {
            answer(
                r.map(|tags| {
                    // A well-formed tag becomes a JS string here; one with a lone
                    // surrogate goes as code units, which the prelude joins.
                    Out::List(
                        tags.iter()
                            .map(|t| match String::from_utf16(t.as_utf16()) {
                                Ok(s) => Out::Str(s),
                                Err(_) => Out::Units(t.as_utf16().to_vec()),
                            })
                            .collect(),
                    )
                })
                .map_err(ErrOut::from),
            )
        });
    });

    // navigator.serviceWorker.*
    let st = state.clone();
    native!(
        "registerServiceWorker",
        move |call: f64, url: String, scope: Option<String>| {
            let mut s = st.borrow_mut();
            let result =
                register_service_worker(&mut s, realm, call as u64, &url, scope.as_deref());
            if let Err(e) = result {
                s.deliver(realm, call as u64, Err(e));
            }
        }
    );
    let st = state.clone();
    native!("getRegistration", move |call: f64, url: String| {
        let mut s = st.borrow_mut();
        let result = s
            .realm_url(realm)
            .join(&url)
            .map_err(|e| {
                err(
                    "TypeError",
                    format!("Failed to execute 'getRegistration': invalid URL: {e}"),
                )
            })
            .and_then(|client| {
                if Origin::from_url(&client).ok() != Some(s.realm_origin(realm)) {
                    return Err(err(
                        "SecurityError",
                        "The URL is not of the caller's origin.",
                    ));
                }
                Ok(s.match_scope(client.as_str(), &s.realm_key(realm))
                    .map_or(Out::Undefined, |sw| s.registration_out(sw)))
            });
        s.deliver(realm, call as u64, result);
    });
    let st = state.clone();
    native!("getRegistrations", move |call: f64| {
        let mut s = st.borrow_mut();
        let key = s.realm_key(realm);
        let list = s
            .registrations_of(&key)
            .into_iter()
            .map(|sw| s.registration_out(sw))
            .collect();
        s.deliver(realm, call as u64, Ok(Out::List(list)));
    });
    let st = state.clone();
    native!("unregister", move |call: f64, sw: f64| {
        let mut s = st.borrow_mut();
        let sw = SwRegistrationId(sw as u64);
        let ok = s.registrations_of(&s.realm_key(realm)).contains(&sw) && s.unregister_sw(sw);
        s.deliver(realm, call as u64, Ok(Out::Bool(ok)));
    });
    let st = state.clone();
    native!("watchReady", move || {
        let mut s = st.borrow_mut();
        let url = s.realm_url(realm);
        if let Some(sw) = s
            .match_scope(url.as_str(), &s.realm_key(realm))
            .filter(|sw| s.is_active(*sw))
        {
            let out = s.registration_out(sw);
            s.hook(realm, "ready", vec![out]);
        }
    });
    let st = state.clone();
    native!("skipWaiting", move |call: f64| st.borrow_mut().deliver(
        realm,
        call as u64,
        Ok(Out::Undefined)
    ));
    let st = state.clone();
    native!("postToWorker", move |sw: f64, json: String| {
        let mut s = st.borrow_mut();
        let url = s.realm_url(realm);
        let source = Out::Obj(vec![
            ("url", Out::Str(url.to_string())),
            ("id", Out::Str(format!("client-{realm}"))),
            ("realm", Out::Num(realm as f64)),
        ]);
        s.push_task(Task::PostToWorker {
            sw: SwRegistrationId(sw as u64),
            json,
            source,
        });
    });
    let st = state.clone();
    native!("postToClient", move |target: f64, json: String| {
        let mut s = st.borrow_mut();
        let key = s.realm_key(realm);
        let sw = s
            .registrations_of(&key)
            .into_iter()
            .find(|sw| s.sw_realm(*sw) == Some(realm));
        let source = sw.map_or(Out::Null, |sw| s.registration_out(sw));
        s.hook(target as usize, "message", vec![Out::Str(json), source]);
    });
    let st = state.clone();
    native!(
        "windowClients",
        move |ctx: Ctx<'js>| -> rquickjs::Result<Value<'js>> {
            let s = st.borrow();
            let list = s
                .windows_of(&s.realm_key(realm))
                .into_iter()
                .map(|(r, url, top_level)| {
                    Out::Obj(vec![
                        ("url", Out::Str(url.to_string())),
                        ("id", Out::Str(format!("client-{r}"))),
                        ("realm", Out::Num(r as f64)),
                        (
                            "frameType",
                            Out::Str(if top_level { "top-level" } else { "nested" }.into()),
                        ),
                    ])
                })
                .collect();
            to_js(&ctx, Out::List(list))
        }
    );

    // Clocks: the controlled wall clock (Date.now()) and the monotonic clock (timers,
    // performance.now()), both in milliseconds.
    let st = state.clone();
    native!("now", move || st.borrow().clock_now().0 as f64);
    let st = state.clone();
    native!("monotonic", move || st.borrow().monotonic().as_secs_f64()
        * 1000.0);

    // Timers (on the monotonic clock).
    let st = state.clone();
    native!("setTimer", move |id: f64, ms: f64, repeat: bool| {
        let after = Duration::from_millis(if ms.is_finite() {
            ms.max(0.0) as u64
        } else {
            0
        });
        st.borrow_mut().add_timer(
            realm,
            id as u64,
            after,
            repeat.then_some(after.max(Duration::from_millis(1))),
        );
    });
    let st = state.clone();
    native!("clearTimer", move |id: f64| st
        .borrow_mut()
        .clear_timer(realm, id as u64));

    // ExtendableEvent lifetimes (the rules live in bgsync-idl).
    let st = state.clone();
    native!("waitUntil", move |ctx: Ctx<'js>,
                               lifetime: f64|
          -> rquickjs::Result<Value<'js>> {
        match st.borrow_mut().wait_until(lifetime as u64) {
            Ok(()) => Ok(Value::new_null(ctx)),
            Err(e) => to_js(
                &ctx,
                Out::Obj(vec![
                    ("name", Out::Str(e.name.as_str().into())),
                    ("message", Out::Str(e.message)),
                ]),
            ),
        }
    });
    let st = state.clone();
    native!("lifetimeSettled", move |lifetime: f64, fulfilled: bool| st
        .borrow_mut()
        .lifetime_settled(lifetime as u64, fulfilled));
    let st = state.clone();
    native!("dispatchFinished", move |lifetime: f64, threw: bool| st
        .borrow_mut()
        .dispatch_finished(lifetime as u64, threw));

    // importScripts(), synchronously, in this realm.
    let st = state.clone();
    native!("importScript", move |ctx: Ctx<'js>,
                                  url: String|
          -> rquickjs::Result<()> {
        let (source, name) = {
            let s = st.borrow();
            let resolved = s
                .realm_url(realm)
                .join(&url)
                .map_err(|e| Exception::throw_type(&ctx, &format!("importScripts: {e}")))?;
            let source = s
                .load(&resolved)
                .map_err(|e| Exception::throw_type(&ctx, &format!("importScripts: {e}")))?;
            (source, resolved.to_string())
        };
        ctx.eval_with_options::<(), _>(source, options(&name))
    });

    // fetch() of same-origin paths, served like scripts.
    let st = state.clone();
    native!("fetch", move |call: f64, url: String| {
        let mut s = st.borrow_mut();
        let result = match s.realm_url(realm).join(&url) {
            Ok(resolved) => match s.load(&resolved) {
                Ok(body) => Out::Obj(vec![
                    ("status", Out::Num(200.0)),
                    ("url", Out::Str(resolved.to_string())),
                    ("body", Out::Str(body)),
                ]),
                Err(_) => Out::Obj(vec![
                    ("status", Out::Num(404.0)),
                    ("url", Out::Str(resolved.to_string())),
                    ("body", Out::Str(String::new())),
                ]),
            },
            Err(e) => {
                s.deliver(
                    realm,
                    call as u64,
                    Err(err("TypeError", format!("Failed to fetch: {e}"))),
                );
                return;
            }
        };
        s.deliver(realm, call as u64, Ok(result));
    });
    let st = state.clone();
    native!("hostReport", move |text: String| st
        .borrow_mut()
        .host_report(text));

    // Dedicated workers: `new Worker(url)` and messages both ways (JSON-cloned).
    let st = state.clone();
    native!("startWorker", move |ctx: Ctx<'js>,
                                 url: String|
          -> rquickjs::Result<f64> {
        let mut s = st.borrow_mut();
        let throw = |name: &str, message: String| {
            let e = Object::new(ctx.clone())?;
            e.set("name", name)?;
            e.set("message", message)?;
            Err::<f64, _>(ctx.throw(e.into_value()))
        };
        let resolved = match s.realm_url(realm).join(&url) {
            Ok(u) => u,
            Err(e) => {
                return throw(
                    "SyntaxError",
                    format!("Failed to construct 'Worker': the script URL {url} is invalid: {e}"),
                )
            }
        };
        if Origin::from_url(&resolved).ok() != Some(s.realm_origin(realm)) {
            return throw(
                "SecurityError",
                format!(
                    "Failed to construct 'Worker': the script at {resolved} cannot be accessed from origin {}.",
                    s.realm_origin(realm)
                ),
            );
        }
        let handle = s.next_dedicated;
        s.next_dedicated += 1;
        s.dedicated.insert(
            handle,
            crate::agent::Dedicated {
                parent: realm,
                realm: None,
            },
        );
        s.push_task(Task::StartWorker {
            parent: realm,
            handle,
            url: resolved,
        });
        Ok(handle as f64)
    });
    let st = state.clone();
    native!("postToDedicated", move |handle: f64, json: String| st
        .borrow_mut()
        .push_task(Task::PostToDedicated {
            handle: handle as u64,
            json
        }));
    let st = state.clone();
    native!("terminateDedicated", move |handle: f64| st
        .borrow_mut()
        .push_task(Task::TerminateDedicated(handle as u64)));
    let st = state.clone();
    native!("postToParent", move |json: String| {
        let mut s = st.borrow_mut();
        let owner = s
            .dedicated
            .iter()
            .find(|(_, d)| d.realm == Some(realm))
            .map(|(h, d)| (*h, d.parent));
        if let Some((handle, parent)) = owner {
            s.hook(
                parent,
                "workerMessage",
                vec![Out::Num(handle as f64), Out::Str(json)],
            );
        }
    });

    // The end of `executeScript` in this realm: the answer goes to the realm that asked.
    let st = state.clone();
    native!("remoteDone", move |id: f64,
                                ok: bool,
                                payload: String,
                                name: String| {
        let mut s = st.borrow_mut();
        if let Some((caller, call)) = s.remote_calls.remove(&(id as u64)) {
            let result = if ok {
                Ok(Out::Str(payload))
            } else {
                Err(err(&name, payload))
            };
            s.deliver(caller, call, result);
        }
    });

    // The control surface.
    let st = state.clone();
    native!("control", move |call: f64, op: String, arg: Value<'js>| {
        let arg = if let Some(b) = arg.as_bool() {
            Out::Bool(b)
        } else if let Some(n) = arg.as_number() {
            Out::Num(n)
        } else if let Some(a) = arg.as_array() {
            Out::List(
                a.iter::<String>()
                    .filter_map(Result::ok)
                    .map(Out::Str)
                    .collect(),
            )
        } else {
            Out::Undefined
        };
        st.borrow_mut().push_task(Task::Control {
            realm,
            call: call as u64,
            op,
            arg,
        });
    });
    Ok(o)
}

fn url_parts(url: &Url) -> Out {
    let port = url.port().map(|p| p.to_string()).unwrap_or_default();
    let host = match url.host_str() {
        Some(h) if !port.is_empty() => format!("{h}:{port}"),
        Some(h) => h.to_owned(),
        None => String::new(),
    };
    let search = url
        .query()
        .filter(|q| !q.is_empty())
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let hash = url
        .fragment()
        .filter(|f| !f.is_empty())
        .map(|f| format!("#{f}"))
        .unwrap_or_default();
    Out::Obj(vec![
        ("href", Out::Str(url.to_string())),
        ("origin", Out::Str(url.origin().ascii_serialization())),
        ("protocol", Out::Str(format!("{}:", url.scheme()))),
        ("username", Out::Str(url.username().to_owned())),
        (
            "password",
            Out::Str(url.password().unwrap_or("").to_owned()),
        ),
        ("host", Out::Str(host)),
        (
            "hostname",
            Out::Str(url.host_str().unwrap_or("").to_owned()),
        ),
        ("port", Out::Str(port)),
        ("pathname", Out::Str(url.path().to_owned())),
        ("search", Out::Str(search)),
        ("hash", Out::Str(hash)),
    ])
}

/// `navigator.serviceWorker.register(url, {scope})`: checks, then installs in a task.
fn register_service_worker(
    s: &mut State,
    realm: RealmId,
    call: u64,
    url: &str,
    scope: Option<&str>,
) -> Result<(), ErrOut> {
    let base = s.realm_url(realm);
    let origin = s.realm_origin(realm);
    let script = base.join(url).map_err(|e| {
        err(
            "TypeError",
            format!("Failed to register a ServiceWorker: invalid script URL: {e}"),
        )
    })?;
    if !matches!(script.scheme(), "https" | "http") {
        return Err(err(
            "TypeError",
            "Failed to register a ServiceWorker: the script URL must be http(s).",
        ));
    }
    let scope = match scope {
        Some(sc) => base.join(sc).map_err(|e| {
            err(
                "TypeError",
                format!("Failed to register a ServiceWorker: invalid scope: {e}"),
            )
        })?,
        None => script
            .join("./")
            .map_err(|e| err("TypeError", e.to_string()))?,
    };
    if Origin::from_url(&script).ok() != Some(origin.clone())
        || Origin::from_url(&scope).ok() != Some(origin.clone())
    {
        return Err(err("SecurityError", "Failed to register a ServiceWorker: the script and scope must be of the caller's origin."));
    }
    if !origin.is_potentially_trustworthy() {
        return Err(err(
            "SecurityError",
            "Failed to register a ServiceWorker: the origin is not a secure context.",
        ));
    }
    let max_scope = script
        .join("./")
        .map_err(|e| err("TypeError", e.to_string()))?;
    if !scope.as_str().starts_with(max_scope.as_str()) {
        return Err(err("SecurityError", format!("Failed to register a ServiceWorker: the scope {scope} is not under the script's directory {max_scope}.")));
    }
    let partition = s.realm_key(realm).partition;
    if let Some(existing) = s.scope_registration(&scope, &partition) {
        let out = s.registration_out(existing);
        s.deliver(realm, call, Ok(out));
        return Ok(());
    }
    let sw = s.new_sw(scope, script, origin, partition);
    s.push_task(Task::Install {
        sw,
        caller: Some((realm, call)),
    });
    Ok(())
}
