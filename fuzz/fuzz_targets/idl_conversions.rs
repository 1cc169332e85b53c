//! The IDL conversions, in the neutral crate and through the QuickJS binding: arbitrary strings
//! (lone surrogates and huge tags included) become tags of the same code units, or the right
//! exception; nothing panics.
#![no_main]

use std::cell::RefCell;
use std::time::Duration;

use bgsync_idl::{to_dom_string, IdlValue};
use bgsync_quickjs::{GlobalKind, RealmId, UserAgent, UserAgentConfig};
use bgsync_types::Tag;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static UA: RefCell<Option<(UserAgent, RealmId, tempfile::TempDir)>> = const { RefCell::new(None) };
    static RUNS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Every input adds a tag and getTags() returns them all, so a long-lived user agent would make
/// each run slower than the last; a fresh one every 200 runs keeps runs cheap.
const RUNS_PER_USER_AGENT: u32 = 200;

fn with_page<R>(f: impl FnOnce(&mut UserAgent, RealmId) -> R) -> R {
    UA.with(|cell| {
        let mut slot = cell.borrow_mut();
        let runs = RUNS.with(|r| {
            r.set(r.get() + 1);
            r.get()
        });
        if runs % RUNS_PER_USER_AGENT == 0 {
            *slot = None;
        }
        if slot.is_none() {
            let dir = tempfile::tempdir().expect("temporary directory");
            std::fs::write(dir.path().join("sw.js"), "self.onsync = e => e.waitUntil(Promise.resolve());").expect("worker");
            let mut config = UserAgentConfig::new(dir.path());
            // Every input registers a new tag; no cap, so the check below stays exact.
            config.params.max_registrations_per_origin = None;
            let mut ua = UserAgent::new(config).expect("user agent");
            let page = ua.open(GlobalKind::Window, &ua.url_for("index.html").expect("url")).expect("page");
            ua.eval_async(page, "navigator.serviceWorker.register('/sw.js').then(() => navigator.serviceWorker.ready).then(r => { self.reg = r; return bgsyncTest.setOnline(false); })", Duration::from_secs(10)).expect("worker ready");
            *slot = Some((ua, page, dir));
        }
        let (ua, page, _) = slot.as_mut().expect("set above");
        f(ua, *page)
    })
}

fuzz_target!(|data: &[u8]| {
    let units: Vec<u16> = data.chunks(2).map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)])).collect();
    // The neutral conversion keeps strings as they are.
    let converted = to_dom_string(IdlValue::String(units.clone()), || Ok(IdlValue::Null)).expect("strings convert");
    assert_eq!(converted, units);
    let tag = Tag::from_utf16(converted);
    let too_long = tag.utf8_len() > 10_240;
    // Through the binding: register(), then read the tags back as code units.
    let list: Vec<String> = units.iter().map(|u| u.to_string()).collect();
    let js = format!(
        "reg.sync.register(String.fromCharCode({})).then(() => reg.sync.getTags(), e => e.name).then(r => Array.isArray(r) ? r.some(t => t.length === {} && Array.from({{length: t.length}}, (_, i) => t.charCodeAt(i)).join(',') === '{}') : r)",
        list.join(","),
        units.len(),
        list.join(",")
    );
    let result = with_page(|ua, page| ua.eval_async(page, &js, Duration::from_secs(10)));
    let expected = if too_long { "\"InvalidAccessError\"" } else { "true" };
    match result {
        Ok(v) if v == expected => {}
        other => panic!("register({} units) gave {other:?}, expected {expected}", units.len()),
    }
});
