//! The outbox page and worker in examples/outbox, unchanged, on the QuickJS user agent: two
//! failed attempts, then delivery on the last chance after 5 and 15 minutes of back-off.

use std::time::Duration;

use bgsync_quickjs::{GlobalKind, UserAgent, UserAgentConfig};

#[test]
fn the_outbox_is_sent_on_the_last_chance() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/outbox");
    let mut ua = UserAgent::new(UserAgentConfig::new(root)).unwrap();
    let page = ua
        .open(GlobalKind::Window, &ua.url_for("index.html").unwrap())
        .unwrap();
    ua.run_script(page, &ua.url_for("app.js").unwrap()).unwrap();
    let t = Duration::from_secs(10);
    // The page starts offline, composes, and the network comes back later.
    ua.eval_async(page, "bgsyncTest.setOnline(false)", t)
        .unwrap();
    ua.eval(page, "self.result = main();", "start").unwrap();
    ua.eval_async(page, "bgsyncTest.idle()", t).unwrap();
    ua.eval_async(page, "bgsyncTest.setOnline(true)", t)
        .unwrap();
    ua.eval_async(page, "bgsyncTest.advanceTime(20 * 60 * 1000)", t)
        .unwrap();
    let result = ua.eval_async(page, "self.result", t).unwrap();
    assert_eq!(
        result,
        r#"{"status":"queued","pending":["send-mail"],"delivered":["Lunch on Friday?"]}"#
    );
    let log: Vec<String> = ua
        .log()
        .iter()
        .filter(|r| r.kind == "dispatched")
        .map(|r| format!("{}@{} lastChance={}", r.tag, r.time / 60_000, r.last_chance))
        .collect();
    assert_eq!(
        log,
        [
            "send-mail@0 lastChance=false",
            "send-mail@5 lastChance=false",
            "send-mail@20 lastChance=true"
        ]
    );
    assert!(ua.uncaught().is_empty(), "{:?}", ua.uncaught());
}
