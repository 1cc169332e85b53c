//! The IDL conversions, in the neutral crate and through the QuickJS binding: arbitrary strings
//! (lone surrogates and huge tags included) become tags of the same code units, or the right
//! exception; nothing panics.
//!
//! One user agent serves many inputs, so every input leaves allocations behind; `cargo xtask
//! fuzz` runs this target with `-detect_leaks=0` (why: xtask/src/fuzz/targets.rs).
#![no_main]

use std::cell::RefCell;
use std::time::Duration;

use bgsync_idl::{to_dom_string, IdlValue};
use bgsync_quickjs::{GlobalKind, RealmId, UserAgent, UserAgentConfig};
use bgsync_types::Tag;
use libfuzzer_sys::fuzz_target;

/// A page whose service worker registration takes the tags, and how many inputs it has seen.
struct Page {
    ua: UserAgent,
    page: RealmId,
    runs: u32,
    _root: tempfile::TempDir,
}

thread_local! {
    static PAGE: RefCell<Option<Page>> = const { RefCell::new(None) };
}

/// A fresh user agent now and then bounds what a long run accumulates (the engine's log).
const RUNS_PER_USER_AGENT: u32 = 1000;

/// `check(s)`: register(s), then getTags(); `{tag}` with the tag of the list that is `s` (`===`
/// compares code units; JSON.stringify escapes lone surrogates, so the tag reaches Rust whole),
/// `{error}` with the exception's name if register() rejected. A registered tag then fires
/// (online until idle) and is gone, so that getTags() stays one tag long: a list growing with
/// every input made each input slower than the last.
const CHECK: &str = "self.check = s => reg.sync.register(s).then(\
    () => reg.sync.getTags()\
        .then(tags => ({ tag: tags.find(t => t === s) ?? null }))\
        .then(r => bgsyncTest.setOnline(true).then(() => bgsyncTest.idle()).then(() => bgsyncTest.setOnline(false)).then(() => r)),\
    e => ({ error: e.name }))";

fn page() -> Page {
    let root = tempfile::tempdir().expect("temporary directory");
    std::fs::write(root.path().join("sw.js"), "self.onsync = e => e.waitUntil(Promise.resolve());").expect("worker");
    let mut config = UserAgentConfig::new(root.path());
    // No cap, so the check below stays exact whatever is in flight.
    config.params.max_registrations_per_origin = None;
    let mut ua = UserAgent::new(config).expect("user agent");
    let page = ua.open(GlobalKind::Window, &ua.url_for("index.html").expect("url")).expect("page");
    ua.eval_async(
        page,
        &format!("navigator.serviceWorker.register('/sw.js').then(() => navigator.serviceWorker.ready).then(r => {{ self.reg = r; {CHECK}; return bgsyncTest.setOnline(false); }})"),
        Duration::from_secs(10),
    )
    .expect("worker ready");
    Page { ua, page, runs: 0, _root: root }
}

/// A JavaScript string literal of exactly these code units: scalar values as themselves (the
/// source is UTF-8), lone surrogates and what a literal cannot hold as `\uXXXX`.
fn js_literal(units: &[u16]) -> String {
    let mut out = String::with_capacity(units.len() + 2);
    out.push('"');
    for c in char::decode_utf16(units.iter().copied()) {
        match c {
            Ok(c) if c >= ' ' && !matches!(c, '"' | '\\' | '\u{7f}' | '\u{2028}' | '\u{2029}') => out.push(c),
            Ok(c) => out.push_str(&format!("\\u{:04X}", c as u32)),
            Err(lone) => out.push_str(&format!("\\u{:04X}", lone.unpaired_surrogate())),
        }
    }
    out.push('"');
    out
}

fuzz_target!(|data: &[u8]| {
    let units: Vec<u16> = data.chunks(2).map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)])).collect();
    // The neutral conversion keeps strings as they are.
    let converted = to_dom_string(IdlValue::String(units.clone()), || Ok(IdlValue::Null)).expect("strings convert");
    assert_eq!(converted, units);
    let tag = Tag::from_utf16(converted);
    let too_long = tag.utf8_len() > 10_240;
    // Through the binding: register(), then read the tags back.
    let js = format!("check({})", js_literal(&units));
    let result = PAGE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|p| p.runs >= RUNS_PER_USER_AGENT) {
            *slot = Some(page());
        }
        let p = slot.as_mut().expect("set above");
        p.runs += 1;
        p.ua.eval_async(p.page, &js, Duration::from_secs(10))
    });
    // The tag read back must be these code units, compared in Rust, so that nothing between
    // (the literal, QuickJS's strings) can make the check pass on other units.
    let got = match &result {
        Ok(v) if v == r#"{"error":"InvalidAccessError"}"# => Ok(None),
        Ok(v) => v.strip_prefix(r#"{"tag":"#).and_then(|t| t.strip_suffix('}')).and_then(json_string).map(Some).ok_or(v),
        Err(e) => Err(e),
    };
    let what = format!("register() of {} code units, {} bytes of UTF-8", units.len(), tag.utf8_len());
    match (too_long, got) {
        (true, Ok(None)) => {}
        (false, Ok(Some(back))) if back == units => {}
        (_, Ok(Some(back))) if too_long => panic!("{what}: registered (getTags() has it, {} units), expected InvalidAccessError", back.len()),
        (_, Ok(Some(back))) => {
            let at = back.iter().zip(&units).position(|(b, u)| b != u).unwrap_or(back.len().min(units.len()));
            panic!(
                "{what}: getTags() gave {} code units, differing from unit {at} ({:04X?} instead of {:04X?})",
                back.len(),
                back.get(at..(at + 4).min(back.len())).unwrap_or_default(),
                &units[at.min(units.len())..(at + 4).min(units.len())]
            )
        }
        (_, Ok(None)) => panic!("{what}: InvalidAccessError, expected the tag to be registered"),
        (_, Err(other)) if other == r#"{"tag":null}"# => panic!("{what}: registered, but getTags() does not have it"),
        (_, Err(other)) => panic!("{what}: {}", other.chars().take(200).collect::<String>()),
    }
});

/// The code units of a JSON string (`"..."`, escapes included).
fn json_string(json: &str) -> Option<Vec<u16>> {
    let body = json.strip_prefix('"')?.strip_suffix('"')?;
    let mut units = Vec::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u16; 2];
            units.extend_from_slice(c.encode_utf16(&mut buf));
            continue;
        }
        units.push(match chars.next()? {
            '"' => 0x22,
            '\\' => 0x5C,
            '/' => 0x2F,
            'b' => 0x08,
            'f' => 0x0C,
            'n' => 0x0A,
            'r' => 0x0D,
            't' => 0x09,
            'u' => u16::from_str_radix(&chars.by_ref().take(4).collect::<String>(), 16).ok()?,
            _ => return None,
        });
    }
    Some(units)
}
