//! The timeline page, read back as XML: one row per tag, a bar per sync event coloured by its
//! outcome, the back-offs at their lengths, lastChance marked, and page text escaped.

mod common;

use std::time::Duration;

use bgsync::testing::Behaviour;
use bgsync::{DispatchOutcome, SwRegistrationId};

#[tokio::test]
async fn the_timeline_shows_each_attempt_back_off_and_last_chance() {
    let (a, host, clock, sync) = common::online_engine(1_000_000);
    host.script([
        Behaviour::Settle(DispatchOutcome::Fulfilled),
        Behaviour::Settle(DispatchOutcome::Rejected),
        Behaviour::Settle(DispatchOutcome::Rejected),
        Behaviour::Settle(DispatchOutcome::Rejected),
    ]);
    sync.register(&a, SwRegistrationId(1), "ok").await.unwrap();
    sync.settle().await;
    let hostile = "<script>alert('x')</script>&\n";
    sync.register(&a, SwRegistrationId(1), hostile)
        .await
        .unwrap();
    sync.settle().await;
    clock.advance(Duration::from_secs(5 * 60));
    sync.settle().await;
    clock.advance(Duration::from_secs(15 * 60));
    sync.settle().await;
    let log = sync.log().await.unwrap();
    let page = bgsync::timeline::render_html("run <1>", &log);

    assert!(!page.contains("<script>"), "page text is escaped");
    let doc = roxmltree::Document::parse_with_options(
        &page,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .expect("the page is well-formed XML");
    let class = |n: &roxmltree::Node, c: &str| {
        n.attribute("class")
            .is_some_and(|v| v.split(' ').any(|w| w == c))
    };
    let all =
        |c: &str| -> Vec<roxmltree::Node> { doc.descendants().filter(|n| class(n, c)).collect() };
    assert_eq!(
        doc.descendants()
            .find(|n| n.has_tag_name("title"))
            .and_then(|n| n.text()),
        Some("run <1>")
    );

    let labels: Vec<String> = all("label")
        .iter()
        .map(|n| n.text().unwrap_or("").to_owned())
        .collect();
    assert_eq!(labels.len(), 2, "{labels:?}");
    assert!(labels[0].ends_with("· ok"), "{labels:?}");
    // A long label is cut short; its tooltip has it whole.
    assert!(labels[1].contains("<script>alert('x')</"), "{labels:?}");
    let whole = all("label")[1]
        .children()
        .find(|n| n.has_tag_name("title"))
        .and_then(|n| n.text())
        .unwrap();
    assert!(
        whole.ends_with("<script>alert('x')</script>&\\n"),
        "{whole}"
    );

    let bars = all("dispatch");
    let outcomes: Vec<_> = bars
        .iter()
        .map(|n| n.attribute("data-outcome").unwrap())
        .collect();
    assert_eq!(outcomes, ["fulfilled", "rejected", "rejected", "rejected"]);
    let last: Vec<bool> = bars.iter().map(|n| class(n, "last-chance")).collect();
    assert_eq!(last, [false, false, false, true]);
    assert_eq!(all("last-chance-mark").len(), 1);
    assert_eq!(all("done").len(), 1);
    assert_eq!(all("gave-up").len(), 1);

    // The second back-off is three times the first (5 min, then 15 min), and each starts where
    // an attempt ended and ends where the next began.
    let span = |n: &roxmltree::Node, a: &str, b: &str| {
        let f = |k| n.attribute(k).unwrap().parse::<f64>().unwrap();
        (f(a), f(b))
    };
    let back_offs: Vec<(f64, f64)> = all("back-off")
        .iter()
        .map(|n| span(n, "x1", "x2"))
        .collect();
    assert_eq!(back_offs.len(), 2);
    let (first, second) = (
        back_offs[0].1 - back_offs[0].0,
        back_offs[1].1 - back_offs[1].0,
    );
    assert!((second / first - 3.0).abs() < 0.01, "{back_offs:?}");
    let bar_x: Vec<f64> = bars
        .iter()
        .map(|n| n.attribute("x").unwrap().parse().unwrap())
        .collect();
    assert!(
        (back_offs[0].1 - bar_x[2]).abs() < 0.5,
        "{back_offs:?} {bar_x:?}"
    );
    assert!(
        (back_offs[1].1 - bar_x[3]).abs() < 0.5,
        "{back_offs:?} {bar_x:?}"
    );

    let rows = doc.descendants().filter(|n| n.has_tag_name("tr")).count();
    assert_eq!(
        rows,
        log.len() + 1,
        "a table row per log line, and the header"
    );
}

#[test]
fn an_empty_log_is_an_empty_picture() {
    let page = bgsync::timeline::render_html("nothing", &[]);
    roxmltree::Document::parse_with_options(
        &page,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(page.contains("0 log lines"));
}
