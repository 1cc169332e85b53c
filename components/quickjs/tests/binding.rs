//! JS snippets through the globals: the register → sync → waitUntil path, every refusal, WebIDL
//! shapes, global identities and the worker lifecycle.

use std::time::Duration;

use bgsync_quickjs::{GlobalKind, PageElement, RealmId, UserAgent, UserAgentConfig};

const T: Duration = Duration::from_secs(10);

/// A worker that records its events and settles `sync` as the tag says.
const WORKER: &str = r#"
self.seen = [];
self.addEventListener('install', e => e.waitUntil(Promise.resolve()));
self.addEventListener('activate', e => e.waitUntil(Promise.resolve()));
self.onsync = e => {
  const tag = e.tag;
  if (tag.startsWith('reject')) e.waitUntil(Promise.reject(new Error('server down')));
  else if (tag.startsWith('throw')) throw new Error('handler threw');
  else if (tag.startsWith('hang')) e.waitUntil(new Promise(() => {}));
  else e.waitUntil(new Promise(r => setTimeout(r, 1)));
};
"#;

struct Page {
    _dir: tempfile::TempDir,
    ua: UserAgent,
    page: RealmId,
}

fn page_with(worker: &str) -> Page {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sw.js"), worker).unwrap();
    let mut ua = UserAgent::new(UserAgentConfig::new(dir.path())).unwrap();
    let url = ua.url_for("app/index.html").unwrap();
    let page = ua.open(GlobalKind::Window, &url).unwrap();
    Page {
        _dir: dir,
        ua,
        page,
    }
}

impl Page {
    fn run(&mut self, js: &str) -> Result<String, String> {
        self.ua.eval_async(self.page, js, T)
    }
    fn ok(&mut self, js: &str) -> String {
        self.run(js)
            .unwrap_or_else(|e| panic!("{js}\n=> {e}\nconsole: {:#?}", self.ua.console()))
    }
    /// Registers ../sw.js and waits for it to be active; `self.reg` is the registration.
    fn ready(&mut self) {
        self.ok("navigator.serviceWorker.register('/sw.js', {scope: '/'}).then(() => navigator.serviceWorker.ready).then(r => { self.reg = r; })");
    }
    fn log(&mut self) -> String {
        self.ok("bgsyncTest.log().then(l => l.map(e => e.type + ':' + e.tag + (e.type === 'dispatched' ? ':' + e.lastChance : '') + (e.outcome ? ':' + e.outcome : '') + '@' + e.time).join(' '))")
    }
}

#[test]
fn register_fires_sync_and_a_fulfilled_wait_until_completes_it() {
    let mut p = page_with(WORKER);
    p.ready();
    p.ok("reg.sync.register('send-mail')");
    p.ok("bgsyncTest.idle()");
    assert_eq!(
        p.log(),
        r#""registered:send-mail@0 dispatched:send-mail:false@0 completed:send-mail:fulfilled@0""#
    );
    assert_eq!(p.ok("reg.sync.getTags()"), "[]");
}

#[test]
fn a_throwing_listener_without_wait_until_completes() {
    // Only extend lifetime promises decide an attempt (docs/chromium.md).
    let mut p = page_with(WORKER);
    p.ready();
    p.ok("reg.sync.register('throw-1')");
    p.ok("bgsyncTest.idle()");
    assert_eq!(
        p.log(),
        r#""registered:throw-1@0 dispatched:throw-1:false@0 completed:throw-1:fulfilled@0""#
    );
    assert_eq!(p.ok("reg.sync.getTags()"), "[]");
}

#[test]
fn rejection_backs_off_and_last_chance_comes_third() {
    let tag = "reject-1";
    {
        let mut p = page_with(WORKER);
        p.ready();
        p.ok(&format!("reg.sync.register('{tag}')"));
        p.ok("bgsyncTest.idle()");
        assert_eq!(p.ok("reg.sync.getTags()"), format!(r#"["{tag}"]"#));
        p.ok("bgsyncTest.advanceTime(5 * 60 * 1000 - 1)");
        assert_eq!(
            p.ok("bgsyncTest.log().then(l => l.filter(e => e.type === 'dispatched').length)"),
            "1"
        );
        p.ok("bgsyncTest.advanceTime(1).then(() => bgsyncTest.idle())");
        p.ok("bgsyncTest.advanceTime(15 * 60 * 1000).then(() => bgsyncTest.idle())");
        let log = p.log();
        assert_eq!(
            log,
            format!(
                r#""registered:{tag}@0 dispatched:{tag}:false@0 completed:{tag}:rejected@0 dispatched:{tag}:false@300000 completed:{tag}:rejected@300000 dispatched:{tag}:true@1200000 completed:{tag}:rejected@1200000""#
            ),
            "{tag}"
        );
        assert_eq!(p.ok("reg.sync.getTags()"), "[]");
    }
}

#[test]
fn a_wait_until_that_never_settles_times_out_after_3_minutes() {
    let mut p = page_with(WORKER);
    p.ready();
    p.ok("reg.sync.register('hang')");
    p.ok("bgsyncTest.advanceTime(3 * 60 * 1000 - 1)");
    assert!(!p.log().contains("completed"), "{}", p.log());
    p.ok("bgsyncTest.advanceTime(1)");
    assert!(
        p.log().contains("completed:hang:timeout@180000"),
        "{}",
        p.log()
    );
}

#[test]
fn terminating_the_worker_fails_the_event_in_flight() {
    let mut p = page_with(WORKER);
    p.ready();
    p.ok("reg.sync.register('hang')");
    p.ok("bgsyncTest.terminateWorker()");
    assert!(
        p.log().contains("completed:hang:terminated@0"),
        "{}",
        p.log()
    );
    // The worker starts again for the retry.
    p.ok("bgsyncTest.advanceTime(5 * 60 * 1000)");
    assert!(
        p.log().contains("dispatched:hang:false@300000"),
        "{}",
        p.log()
    );
}

#[test]
fn restart_keeps_registrations_and_the_pages_objects() {
    let mut p = page_with(WORKER);
    p.ready();
    p.ok("bgsyncTest.setOnline(false)");
    p.ok("reg.sync.register('after-restart')");
    p.ok("bgsyncTest.restart()");
    assert_eq!(p.ok("reg.sync.getTags()"), r#"["after-restart"]"#);
    p.ok("bgsyncTest.setOnline(true).then(() => bgsyncTest.idle())");
    assert!(
        p.log().contains("completed:after-restart:fulfilled"),
        "{}",
        p.log()
    );
}

#[test]
fn every_refusal_has_its_exception() {
    let mut p = page_with(WORKER);
    let name = |p: &mut Page, js: &str| {
        p.run(js)
            .map(|_| "resolved".to_owned())
            .unwrap_or_else(|e| e.split(':').next().unwrap().to_owned())
    };
    // No active worker yet: the registration resolves while the worker is installing.
    let installing = p.ok("navigator.serviceWorker.register('/sw.js', {scope: '/'}).then(r => [r.installing && r.installing.state, r.active, r.sync.register('x').then(() => 'resolved', e => e.name)]).then(([s, a, p]) => p.then(n => [s, a, n]))");
    assert_eq!(installing, r#"["installing",null,"InvalidStateError"]"#);
    p.ready();
    assert_eq!(
        name(&mut p, "reg.sync.register('x'.repeat(10241))"),
        "InvalidAccessError"
    );
    assert_eq!(
        name(&mut p, "reg.sync.register('x'.repeat(10240))"),
        "resolved"
    );
    assert_eq!(name(&mut p, "reg.sync.register(Symbol('x'))"), "TypeError");
    assert_eq!(name(&mut p, "reg.sync.register()"), "TypeError");
    assert_eq!(
        name(&mut p, "SyncManager.prototype.register.call({}, 'x')"),
        "TypeError"
    );
    assert_eq!(
        name(&mut p, "SyncManager.prototype.getTags.call(null)"),
        "TypeError"
    );
    assert_eq!(
        name(&mut p, "(async () => new SyncManager())()"),
        "TypeError"
    );
    assert_eq!(
        name(
            &mut p,
            "reg.sync.register({ toString() { return 'converted'; } })"
        ),
        "resolved"
    );
    assert_eq!(name(&mut p, "reg.sync.register(42)"), "resolved");
    p.ok("bgsyncTest.setWindowClient(false)");
    assert_eq!(name(&mut p, "reg.sync.register('x')"), "InvalidAccessError");
    p.ok("bgsyncTest.setWindowClient(true)");
    p.ok("test_driver.set_permission({name: 'background-sync'}, 'denied')");
    assert_eq!(
        p.ok("navigator.permissions.query({name: 'background-sync'}).then(s => s.state)"),
        r#""denied""#
    );
    assert_eq!(name(&mut p, "reg.sync.register('x')"), "NotAllowedError");
    p.ok("test_driver.set_permission({name: 'background-sync'}, 'granted')");
    p.ok("reg.unregister()");
    assert_eq!(name(&mut p, "reg.sync.register('x')"), "InvalidStateError");
    assert_eq!(p.ok("[String(42), 'converted'].length"), "2");
}

#[test]
fn lone_surrogate_tags_survive_the_round_trip() {
    let mut p = page_with("self.onsync = e => { self.lastTag = e.tag; };");
    p.ready();
    p.ok("bgsyncTest.setOnline(false)");
    p.ok("reg.sync.register('\\uD800').then(() => reg.sync.register('\\uDC00'))");
    assert_eq!(
        p.ok("reg.sync.getTags().then(t => t.map(s => s.charCodeAt(0)))"),
        "[55296,56320]"
    );
    assert_eq!(
        p.ok("reg.sync.getTags().then(t => t.map(s => s.length))"),
        "[1,1]"
    );
}

#[test]
fn webidl_shapes() {
    let mut p = page_with(WORKER);
    p.ready();
    let checks = [
        "SyncManager.prototype.register.length === 1",
        "SyncManager.prototype.getTags.length === 0",
        "SyncManager.name === 'SyncManager' && SyncManager.length === 0",
        "Object.prototype.toString.call(reg.sync) === '[object SyncManager]'",
        "reg.sync === reg.sync",
        "Object.getOwnPropertyDescriptor(SyncManager, 'prototype').writable === false",
        "Object.getOwnPropertyDescriptor(SyncManager.prototype, 'register').enumerable",
        "Object.getOwnPropertyDescriptor(SyncManager.prototype, Symbol.toStringTag).value === 'SyncManager'",
        "SyncManager.prototype.constructor === SyncManager",
        "Object.getOwnPropertyDescriptor(ServiceWorkerRegistration.prototype, 'sync').get.name === 'get sync'",
        "Object.getOwnPropertyDescriptor(ServiceWorkerRegistration.prototype, 'sync').set === undefined",
        "Object.getPrototypeOf(ServiceWorkerRegistration.prototype) === EventTarget.prototype",
        "typeof SyncEvent === 'undefined' && typeof ExtendableEvent === 'undefined'",
        "self instanceof Window && self instanceof EventTarget && Object.prototype.toString.call(self) === '[object Window]'",
        "document instanceof Document && document.readyState === 'loading' && isSecureContext === true",
        "parent === self && top === self && opener === null && document.currentScript === null",
        "location.pathname === '/app/index.html' && location.origin === 'https://web-platform.test:8443'",
        "new DOMException('m', 'InvalidStateError').code === 11 && DOMException.INVALID_STATE_ERR === 11",
        "Object.getPrototypeOf(DOMException.prototype) === Error.prototype",
        "new URL('b?c#d', 'https://a.example/x/').href === 'https://a.example/x/b?c#d'",
        "navigator.onLine === true",
        "(() => { try { Window(); return false; } catch (e) { return e instanceof TypeError; } })()",
    ];
    for c in checks {
        assert_eq!(p.ok(c), "true", "{c}");
    }
}

#[test]
fn the_service_worker_global_has_its_identity_and_sync_event() {
    let mut p = page_with(
        r#"
        self.checks = {
          identity: self instanceof ServiceWorkerGlobalScope && self instanceof WorkerGlobalScope && typeof DedicatedWorkerGlobalScope === 'undefined',
          chain: Object.getPrototypeOf(SyncEvent.prototype) === ExtendableEvent.prototype && Object.getPrototypeOf(ExtendableEvent.prototype) === Event.prototype,
          noWindow: typeof Window === 'undefined',
          ctorThrows: (() => { try { new SyncEvent('sync'); return false; } catch (e) { return e instanceof TypeError; } })(),
          defaults: new SyncEvent('sync', {tag: 'x'}).lastChance === false && new SyncEvent('sync', {tag: 'x', lastChance: true}).lastChance === true,
          untrusted: (() => { try { new ExtendableEvent('x').waitUntil(Promise.resolve()); return false; } catch (e) { return e.name === 'InvalidStateError'; } })(),
        };
        self.onsync = e => {
          e.waitUntil(Promise.resolve());
          const late = () => { try { e.waitUntil(Promise.resolve()); return 'accepted'; } catch (err) { return err.name; } };
          setTimeout(() => clients.matchAll({includeUncontrolled: true}).then(cs => cs.forEach(c => c.postMessage({checks: self.checks, late: late(), tag: e.tag, lastChance: e.lastChance, trusted: e.isTrusted}))), 5);
        };
        "#,
    );
    p.ready();
    let got = p.ok(
        "new Promise(resolve => { navigator.serviceWorker.onmessage = e => resolve(e.data); reg.sync.register('t'); })",
    );
    assert_eq!(
        got,
        r#"{"checks":{"identity":true,"chain":true,"noWindow":true,"ctorThrows":true,"defaults":true,"untrusted":true},"late":"InvalidStateError","tag":"t","lastChance":false,"trusted":true}"#
    );
}

#[test]
fn a_dedicated_worker_global_has_its_identity() {
    let dir = tempfile::tempdir().unwrap();
    let mut ua = UserAgent::new(UserAgentConfig::new(dir.path())).unwrap();
    let w = ua
        .open(GlobalKind::DedicatedWorker, &ua.url_for("w.js").unwrap())
        .unwrap();
    let r = ua.eval_async(w, "self instanceof DedicatedWorkerGlobalScope && self instanceof WorkerGlobalScope && typeof SyncManager === 'function' && typeof SyncEvent === 'undefined' && typeof Window === 'undefined'", T);
    assert_eq!(r.unwrap(), "true");
}

#[test]
fn the_worker_runs_through_its_lifecycle_with_statechange() {
    let mut p = page_with("self.oninstall = e => e.waitUntil(new Promise(r => setTimeout(r, 5)));");
    let states = p.ok(
        "navigator.serviceWorker.register('/sw.js', {scope: '/'}).then(r => new Promise(resolve => {
            const w = r.installing; const seen = [w.state];
            w.onstatechange = () => { seen.push(w.state); if (w.state === 'activated') resolve([seen, r.active === w, r.installing]); };
        }))",
    );
    assert_eq!(
        states,
        r#"[["installing","installed","activating","activated"],true,null]"#
    );
    assert_eq!(
        p.ok("navigator.serviceWorker.getRegistration('/app/x').then(r => r.scope)"),
        r#""https://web-platform.test:8443/""#
    );
}

#[test]
fn network_state_reaches_navigator_and_fires_events() {
    let mut p = page_with(WORKER);
    let r = p.ok("new Promise(resolve => { self.onoffline = () => resolve(navigator.onLine); bgsyncTest.setOnline(false); })");
    assert_eq!(r, "false");
}

#[test]
fn the_watchdog_stops_a_runaway_script() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = UserAgentConfig::new(dir.path());
    cfg.watchdog = Duration::from_millis(200);
    let mut ua = UserAgent::new(cfg).unwrap();
    let page = ua
        .open(GlobalKind::Window, &ua.url_for("index.html").unwrap())
        .unwrap();
    let err = ua.eval(page, "for (;;) {}", "loop.js").unwrap_err();
    assert!(err.to_string().contains("interrupted"), "{err}");
    // The realm is still usable.
    assert_eq!(ua.eval_async(page, "1 + 1", T).unwrap(), "2");
}

#[test]
fn messages_flow_both_ways_with_their_sources() {
    let mut p = page_with(
        "self.onmessage = e => e.source.postMessage({echo: e.data, from: e.source.url, type: e.source.type, isMessageEvent: e instanceof MessageEvent});",
    );
    p.ready();
    let got = p.ok(
        "new Promise(resolve => {
            navigator.serviceWorker.onmessage = e => resolve([e.data, e.source === reg.active, e.source.scriptURL]);
            reg.active.postMessage('ping');
        })",
    );
    assert_eq!(
        got,
        r#"[{"echo":"ping","from":"https://web-platform.test:8443/app/index.html","type":"window","isMessageEvent":true},true,"https://web-platform.test:8443/sw.js"]"#
    );
}

#[test]
fn timers_and_microtasks_run_on_real_time_independent_of_the_engine_clock() {
    let mut p = page_with(WORKER);
    let got = p.ok(
        "new Promise(resolve => {
            const order = [];
            queueMicrotask(() => order.push('micro'));
            const i = setInterval(() => { order.push('interval'); if (order.filter(x => x === 'interval').length === 2) { clearInterval(i); resolve(order); } }, 1);
            setTimeout(() => order.push('timeout'), 0);
            const never = setTimeout(() => order.push('cleared'), 0);
            clearTimeout(never);
        })",
    );
    assert_eq!(got, r#"["micro","timeout","interval","interval"]"#);
    assert_eq!(p.ok("bgsyncTest.log().then(l => l.length)"), "0");
}

/// A page loads as a browser loads markup: scripts in order as `document.currentScript`, a
/// microtask checkpoint after each, a script that cannot be fetched gets `error` and the page
/// goes on, an exception is reported at the window, and only then `DOMContentLoaded` and `load`.
#[test]
fn a_page_loads_with_the_html_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.js"),
        "self.steps = [`a:${document.readyState}:${document.currentScript.src}`];\n\
         Promise.resolve().then(() => steps.push('a-microtask'));\n\
         addEventListener('error', e => steps.push(`error-event:${e.message}:${e.error && e.error.message}`));\n\
         self.onerror = (m) => { steps.push('onerror'); };\n\
         document.addEventListener('DOMContentLoaded', () => steps.push(`dcl:${document.readyState}`));\n\
         addEventListener('load', () => steps.push(`load:${document.readyState}`));",
    )
    .unwrap();
    std::fs::write(dir.path().join("c.js"), "steps.push(`c:${document.title}:${document.getElementById('log').localName}`);\nthrow new TypeError('c threw');").unwrap();
    let mut ua = UserAgent::new(UserAgentConfig::new(dir.path())).unwrap();
    let page = ua
        .open(GlobalKind::Window, &ua.url_for("index.html").unwrap())
        .unwrap();
    let failures = ua.load_page(
        page,
        &[
            PageElement::Title("the page".into()),
            PageElement::Script(ua.url_for("a.js").unwrap()),
            PageElement::Script(ua.url_for("missing.js").unwrap()),
            PageElement::Div(vec![("id".into(), "log".into())]),
            PageElement::InlineScript(
                "steps.push(`inline:${document.currentScript.src === ''}:${document.getElementsByTagName('script').length}`);".into(),
            ),
            PageElement::Script(ua.url_for("c.js").unwrap()),
        ],
    );
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(failures[0].contains("missing.js"), "{failures:?}");
    assert!(failures[1].contains("c threw"), "{failures:?}");
    let steps = ua
        .eval_async(
            page,
            "new Promise(r => setTimeout(r, 0)).then(() => steps)",
            T,
        )
        .unwrap();
    assert_eq!(
        steps,
        r#"["a:loading:https://web-platform.test:8443/a.js","a-microtask","inline:true:3","c:the page:div","error-event:TypeError: c threw:c threw","onerror","dcl:interactive","load:complete"]"#
    );
}

/// A worker whose `sync` handler fails in ways that are hard to report: what it throws cannot be
/// turned into a string, or the handler recurses without bound.
const HOSTILE_WORKER: &str = r#"
self.onsync = e => {
  const tag = e.tag;
  if (tag === 'symbol') throw Symbol('x');
  if (tag === 'to-string-throws') throw { toString() { throw new Error('no string for you'); } };
  if (tag === 'null-prototype') throw Object.create(null);
  if (tag === 'proxy') throw new Proxy({}, { get() { throw 1; }, has() { throw 2; }, getPrototypeOf() { throw 3; } });
  if (tag === 'getters-throw') throw Object.defineProperties(new Error('x'), { name: { get() { throw Symbol('n'); } }, message: { get() { throw Symbol('m'); } }, stack: { get() { throw Symbol('s'); } } });
  if (tag === 'recurse') (function f() { f(); })();
};
"#;

/// Whatever a `sync` handler throws, the dispatch finishes at once (not when the event's
/// 3-minute time limit runs out) and, with no `waitUntil()` promise, the attempt succeeds; what
/// was thrown is reported.
#[test]
fn a_handler_throwing_what_cannot_be_stringified_completes_at_once() {
    for (tag, reported) in [
        ("symbol", "Symbol(x)"),
        ("to-string-throws", "[object Object]"),
        ("null-prototype", "[object Object]"),
        ("proxy", "[object]"),
        ("getters-throw", "[object Error]"),
        ("recurse", "RangeError: Maximum call stack size exceeded"),
    ] {
        let mut p = page_with(HOSTILE_WORKER);
        p.ready();
        p.ok(&format!("reg.sync.register('{tag}')"));
        p.ok("bgsyncTest.idle()");
        assert_eq!(
            p.log(),
            format!(r#""registered:{tag}@0 dispatched:{tag}:false@0 completed:{tag}:fulfilled@0""#),
            "{tag}: {:#?}",
            p.ua.console()
        );
        // Reported as what was thrown, not as a failure to report it.
        assert_eq!(p.ua.uncaught(), [reported], "{tag}");
    }
}

/// A `sync` handler that runs until the watchdog stops it (an exception no script can catch)
/// has still finished its dispatch: the attempt is rejected at once.
#[test]
fn a_handler_the_watchdog_stops_is_rejected_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sw.js"),
        "self.onsync = e => { for (;;) {} };",
    )
    .unwrap();
    let mut config = UserAgentConfig::new(dir.path());
    config.watchdog = Duration::from_millis(200);
    let mut ua = UserAgent::new(config).unwrap();
    let url = ua.url_for("app/index.html").unwrap();
    let page = ua.open(GlobalKind::Window, &url).unwrap();
    let mut p = Page {
        _dir: dir,
        ua,
        page,
    };
    p.ready();
    p.ok("reg.sync.register('spin').then(() => bgsyncTest.idle())");
    assert_eq!(
        p.log(),
        r#""registered:spin@0 dispatched:spin:false@0 completed:spin:rejected@0""#
    );
}

/// Unbounded recursion is a `RangeError` the script can catch, on a thread with Rust's default
/// 2 MiB stack (wpt-runner's), not a stack overflow that aborts the process; the user agent
/// goes on.
#[test]
fn unbounded_recursion_is_a_range_error_on_a_2_mib_thread() {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| {
            let mut p = page_with(HOSTILE_WORKER);
            for js in [
                "(function f() { return f() + 1; })()",
                "(function f() { return [0].map(f); })()",
                "(function f() { return JSON.parse(JSON.stringify({ toJSON: f })); })()",
                "(function f() { return { toString: f } + ''; })()",
            ] {
                assert_eq!(
                    p.run(&format!("(() => {{ try {{ {js}; return 'returned'; }} catch (e) {{ return [e instanceof RangeError, e.message]; }} }})()")),
                    Ok(r#"[true,"Maximum call stack size exceeded"]"#.to_owned()),
                    "{js}"
                );
            }
            let err = p
                .ua
                .eval(p.page, "(function f() { f(); })()", "recurse.js")
                .unwrap_err();
            assert!(err.to_string().starts_with("RangeError"), "{err}");
            assert_eq!(p.ok("1 + 1"), "2");
            // In a service worker too: the recursing handler's RangeError is thrown (and
            // reported), and the dispatch ends at once.
            p.ready();
            p.ok("reg.sync.register('recurse').then(() => bgsyncTest.idle())");
            assert!(
                p.log().contains("completed:recurse:fulfilled@0"),
                "{}",
                p.log()
            );
        })
        .unwrap()
        .join()
        .unwrap();
}

/// A tag longer than the cap in UTF-16 code units is longer still in UTF-8: it is refused
/// before it is converted (50 M units would take GBs as a list of units).
#[test]
fn an_overlong_tag_is_refused_before_it_is_converted() {
    let mut p = page_with(WORKER);
    p.ready();
    assert_eq!(
        p.ok("reg.sync.register('x'.repeat(50_000_000)).then(() => 'resolved', e => [e instanceof DOMException, e.name, e.message])"),
        r#"[true,"InvalidAccessError","Registration failed: the tag is at least 50000000 bytes of UTF-8; the limit is 10240"]"#
    );
    // Under the cap in units but over it in bytes: the engine measures it.
    assert_eq!(
        p.ok("reg.sync.register('\\u20ac'.repeat(3414)).then(() => 'resolved', e => e.name)"),
        r#""InvalidAccessError""#
    );
    assert_eq!(p.ok("reg.sync.getTags()"), "[]");
    assert_eq!(p.log(), r#""""#);
}

/// The runtime has a memory limit: an allocation beyond it is an exception the script can
/// catch, and the user agent goes on.
#[test]
fn an_allocation_beyond_the_memory_limit_is_an_exception() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = UserAgentConfig::new(dir.path());
    assert_eq!(config.memory_limit, Some(512 * 1024 * 1024));
    config.memory_limit = Some(64 * 1024 * 1024);
    let mut ua = UserAgent::new(config).unwrap();
    let page = ua
        .open(GlobalKind::Window, &ua.url_for("index.html").unwrap())
        .unwrap();
    // 128 arrays of 2 MiB each: 256 MiB, four times the limit.
    let got = ua.eval_async(
        page,
        "(() => { const keep = []; try { for (let i = 0; i < 128; i++) keep.push(new Array(1 << 17).fill(i)); return 'unlimited'; } catch (e) { return String(e); } })()",
        T,
    );
    assert_eq!(got.unwrap(), r#""InternalError: out of memory""#);
    assert_eq!(ua.eval_async(page, "1 + 1", T).unwrap(), "2");
}

/// `SyncManager` is `[SecureContext]`, and so is `ServiceWorkerRegistration` (whose partial
/// interface declares `sync`): neither shows in a global whose origin is not potentially
/// trustworthy.
#[test]
fn sync_manager_is_exposed_only_in_secure_contexts() {
    let dir = tempfile::tempdir().unwrap();
    let mut ua = UserAgent::new(UserAgentConfig::new(dir.path())).unwrap();
    let probe = "[isSecureContext, typeof SyncManager, 'SyncManager' in self, 'sync' in ServiceWorkerRegistration.prototype]";
    for (url, secure) in [
        ("http://example.test/index.html", false),
        ("http://example.test/w.js", false),
        ("https://example.test/index.html", true),
        ("http://localhost:8000/index.html", true),
        ("http://127.0.0.1/index.html", true),
    ] {
        let kind = if url.ends_with(".js") {
            GlobalKind::DedicatedWorker
        } else {
            GlobalKind::Window
        };
        let realm = ua.open(kind, &url::Url::parse(url).unwrap()).unwrap();
        let expected = if secure {
            r#"[true,"function",true,true]"#
        } else {
            r#"[false,"undefined",false,false]"#
        };
        assert_eq!(ua.eval_async(realm, probe, T).unwrap(), expected, "{url}");
    }
}

/// DevTools' "Sync" button through the control surface: an event now, offline, with the
/// chosen lastChance, and its outcome; no registration changes.
#[test]
fn dispatch_sync_event_fires_now_and_reports_the_outcome() {
    let mut p = page_with(
        r#"
        self.seen = [];
        self.addEventListener('install', e => e.waitUntil(Promise.resolve()));
        self.addEventListener('activate', e => e.waitUntil(Promise.resolve()));
        self.onsync = e => {
          self.seen.push(`${e.tag}:${e.lastChance}`);
          if (e.tag.startsWith('reject')) e.waitUntil(Promise.reject(new Error('no')));
        };
        "#,
    );
    p.ready();
    p.ok("bgsyncTest.setOnline(false)");
    assert_eq!(
        p.ok("bgsyncTest.dispatchSyncEvent(reg, 'now', true)"),
        r#""fulfilled""#
    );
    assert_eq!(
        p.ok("bgsyncTest.dispatchSyncEvent(reg, 'reject-me', false)"),
        r#""rejected""#
    );
    assert_eq!(p.ok("reg.sync.getTags()"), "[]", "no registration was made");
    let err = p.run("bgsyncTest.dispatchSyncEvent({}, 'x')").unwrap_err();
    assert!(err.starts_with("TypeError"), "{err}");
}

/// A worker that answers a message with its clocks.
const CLOCK_WORKER: &str = r#"
self.addEventListener('install', e => e.waitUntil(Promise.resolve()));
self.addEventListener('activate', e => e.waitUntil(Promise.resolve()));
self.onmessage = e => e.source.postMessage({ now: Date.now(), date: new Date().getTime(), perf: performance.now() });
"#;

/// `Date.now()` and `new Date()` read the controlled clock in every realm, and
/// `performance.now()` and timers jump with it, so an event time a fixture records reads the
/// same as the engine's log (and as Chromium's under libfaketime).
#[test]
fn date_performance_and_timers_follow_the_controlled_clock_in_every_realm() {
    let hour = 3_600_000u64;
    let mut p = page_with(CLOCK_WORKER);
    p.ready();
    assert_eq!(p.ok("Date.now()"), "0");
    assert_eq!(
        p.ok("[typeof Date(), new Date(5).getTime(), new Date() instanceof Date, Date.name, Date.length, Date.UTC(1970, 0, 1)]"),
        r#"["string",5,true,"Date",7,0]"#
    );
    p.ok("(self.fired = 0, setTimeout(() => { self.fired += 1; }, 2 * 3600000), 0)");
    let perf_before: f64 = p.ok("performance.now()").parse().unwrap();
    p.ok(&format!("bgsyncTest.advanceTime({hour})"));
    assert_eq!(
        p.ok("[Date.now(), new Date().getTime()]"),
        format!("[{hour},{hour}]")
    );
    let perf_after: f64 = p.ok("performance.now()").parse().unwrap();
    assert!(
        perf_after - perf_before >= hour as f64,
        "performance.now() jumped with the clock: {perf_before} → {perf_after}"
    );
    assert_eq!(
        p.ok("self.fired"),
        "0",
        "the two-hour timer is not due after one"
    );
    p.ok(&format!("bgsyncTest.advanceTime({hour})"));
    assert_eq!(
        p.ok("new Promise(r => setTimeout(() => r(self.fired), 0))"),
        "1",
        "and is after two"
    );
    // The service worker's realm reads the same clock.
    let worker = p.ok("new Promise(r => { navigator.serviceWorker.onmessage = e => r(e.data); reg.active.postMessage('clocks'); })");
    assert!(
        worker.starts_with(&format!(
            r#"{{"now":{},"date":{},"perf":"#,
            2 * hour,
            2 * hour
        )),
        "{worker}"
    );
}

#[test]
fn a_burst_of_registers_from_one_task_all_resolve_in_order() {
    // 64 calls made in one task, whose answers come back as separate tasks once committed
    // (that they share commits is checked in components/bgsync/tests/callbacks.rs): each
    // promise settles, in the order the calls were made.
    let mut p = page_with(WORKER);
    p.ready();
    p.ok("bgsyncTest.setOnline(false)");
    assert_eq!(
        p.ok("(async () => { const order = []; await Promise.all(Array.from({length: 64}, (_, i) => reg.sync.register('t' + i).then(() => order.push(i)))); return order.every((v, i) => v === i) && order.length; })()"),
        "64"
    );
    assert_eq!(
        p.ok("reg.sync.getTags().then(t => t.length + ':' + t[0] + ':' + t[63])"),
        r#""64:t0:t63""#
    );
}
