//! A picture of a run: every registration, dispatch, outcome, back-off and `lastChance` on a
//! time axis, one row per origin, service worker registration and tag, as a self-contained HTML
//! page with an inline SVG (no script, no external resources), written from the log the way
//! DevTools' Background Services panel lists it.
//!
//! ```
//! # async fn f(sync: &bgsync::BackgroundSync) -> Result<(), bgsync::DomException> {
//! let page = bgsync::timeline::render_html("my run", &sync.log().await?);
//! # let _ = page; Ok(()) }
//! ```
//!
//! The page is well-formed XML as well as HTML, so tools can read it back. Everything that
//! comes from a page (tags, origins) is escaped.

use std::collections::HashMap;
use std::fmt::Write;

use bgsync_scheduler::{DispatchOutcome, LogEntry, LogEvent, NextStep};
use bgsync_types::{Origin, SwRegistrationId, Tag};

const LABEL_WIDTH: f64 = 300.0;
const PLOT_WIDTH: f64 = 900.0;
const ROW_HEIGHT: f64 = 28.0;
const TOP: f64 = 30.0;

/// One row of the picture: everything that happened to one tag of one service worker
/// registration.
type RowKey = (Origin, SwRegistrationId, Tag);

/// A self-contained HTML page showing `entries` (oldest first, as [`BackgroundSync::log`]
/// returns them) on a time axis, titled `title`.
///
/// Marks: a circle where a registration was made (hollow when re-registered), a bar from each
/// dispatch to its end coloured by outcome (green fulfilled, red rejected, orange timed out,
/// grey worker terminated or not started), a black outline and a `!` on a `lastChance`
/// dispatch, a dashed line over each back-off, and a ✓ or ✗ where the registration ended. Every
/// mark has a tooltip, and a table under the picture lists every line.
///
/// [`BackgroundSync::log`]: crate::BackgroundSync::log
pub fn render_html(title: &str, entries: &[LogEntry]) -> String {
    render_html_sections(title, &[(String::new(), entries)])
}

/// Like [`render_html`], with one picture per section: a heading (none when empty) and its log,
/// as a test runner shows one per test.
pub fn render_html_sections(title: &str, sections: &[(String, &[LogEntry])]) -> String {
    let mut body = String::new();
    for (heading, entries) in sections {
        body.push_str("<section>");
        if !heading.is_empty() {
            let _ = write!(body, "<h2>{}</h2>", escape(heading));
        }
        body.push_str(&section(entries));
        body.push_str("</section>\n");
    }
    format!(
        r#"<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" lang="en"><head><meta charset="utf-8"/><title>{t}</title>
<style>body{{font-family:sans-serif;margin:1em}}table{{border-collapse:collapse;font-size:12px}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left}}</style></head>
<body><h1>{t}</h1><p>Time runs from each picture's first log line. Circle: registered (hollow: re-registered); bar: a sync event from dispatch to end (green fulfilled, red rejected, orange timed out, grey terminated; outlined with ! on lastChance); dashed: back-off; ✓ done, ✗ gave up.</p>
{body}</body></html>
"#,
        t = escape(title),
    )
}

/// One picture and its table.
fn section(entries: &[LogEntry]) -> String {
    let mut rows: Vec<RowKey> = Vec::new();
    let mut row_of: HashMap<RowKey, usize> = HashMap::new();
    for e in entries {
        let key = (e.origin.clone(), e.sw, e.tag.clone());
        if !row_of.contains_key(&key) {
            row_of.insert(key.clone(), rows.len());
            rows.push(key);
        }
    }
    let start = entries.iter().map(|e| e.time.0).min().unwrap_or(0);
    // The axis also covers the end of every back-off.
    let end = entries
        .iter()
        .map(|e| match e.event {
            LogEvent::Completed {
                next: NextStep::RetryAfter(d),
                ..
            } => e.time.0.saturating_add(d.as_millis() as u64),
            _ => e.time.0,
        })
        .max()
        .unwrap_or(0)
        .max(start + 1);
    let x =
        |t: u64| LABEL_WIDTH + (t.saturating_sub(start)) as f64 / (end - start) as f64 * PLOT_WIDTH;
    let y = |row: usize| TOP + row as f64 * ROW_HEIGHT + ROW_HEIGHT / 2.0;
    let height = TOP + rows.len().max(1) as f64 * ROW_HEIGHT + 30.0;
    let width = LABEL_WIDTH + PLOT_WIDTH + 60.0;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    // Rows and their labels.
    for (i, (origin, sw, tag)) in rows.iter().enumerate() {
        let label = format!("{origin} · sw {} · {tag}", sw.0);
        let _ = write!(
            svg,
            r##"<g class="row"><rect x="0" y="{}" width="{width}" height="{ROW_HEIGHT}" fill="{}"/><text class="label" x="4" y="{}">{}<title>{}</title></text></g>"##,
            y(i) - ROW_HEIGHT / 2.0,
            if i % 2 == 0 { "#f4f4f4" } else { "#ffffff" },
            y(i) + 4.0,
            escape(&truncate(&label, 48)),
            escape(&label),
        );
    }
    // The time axis.
    let axis_y = TOP + rows.len().max(1) as f64 * ROW_HEIGHT + 4.0;
    let _ = write!(
        svg,
        r##"<line class="axis" x1="{LABEL_WIDTH}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="#333"/>"##,
        LABEL_WIDTH + PLOT_WIDTH
    );
    for k in 0..=4 {
        let t = start + (end - start) * k / 4;
        let _ = write!(
            svg,
            r##"<text class="tick" x="{}" y="{}" text-anchor="middle">{}</text>"##,
            x(t),
            axis_y + 16.0,
            escape(&format_offset(t - start)),
        );
    }
    // Marks. A dispatch's bar ends at the next completion of the same row.
    let mut open: HashMap<usize, (u64, bool)> = HashMap::new();
    for e in entries {
        let row = row_of[&(e.origin.clone(), e.sw, e.tag.clone())];
        let (cx, cy) = (x(e.time.0), y(row));
        let at = format_offset(e.time.0 - start);
        match &e.event {
            LogEvent::Registered | LogEvent::Reregistered { .. } => {
                let again = matches!(e.event, LogEvent::Reregistered { .. });
                let _ = write!(
                    svg,
                    r##"<circle class="{}" cx="{cx}" cy="{cy}" r="5" fill="{}" stroke="#1a5fb4" stroke-width="2"><title>{}</title></circle>"##,
                    if again { "reregistered" } else { "registered" },
                    if again { "none" } else { "#1a5fb4" },
                    escape(&format!(
                        "{at}: {} {}",
                        if again { "re-registered" } else { "registered" },
                        e.tag
                    )),
                );
            }
            LogEvent::Dispatched { last_chance, .. }
            | LogEvent::DevToolsDispatched { last_chance } => {
                open.insert(row, (e.time.0, *last_chance));
            }
            LogEvent::Completed { outcome, .. } | LogEvent::DevToolsCompleted { outcome } => {
                let (from, last_chance) = open.remove(&row).unwrap_or((e.time.0, false));
                let x0 = x(from);
                let w = (cx - x0).max(3.0);
                let devtools = matches!(e.event, LogEvent::DevToolsCompleted { .. });
                let _ = write!(
                    svg,
                    r##"<rect class="dispatch{}{}" data-outcome="{}" x="{x0}" y="{}" width="{w}" height="12" fill="{}" stroke="{}" stroke-width="{}"><title>{}</title></rect>"##,
                    if last_chance { " last-chance" } else { "" },
                    if devtools { " devtools" } else { "" },
                    outcome_name(*outcome),
                    cy - 6.0,
                    outcome_colour(*outcome),
                    if last_chance { "#000" } else { "none" },
                    if last_chance { 2 } else { 0 },
                    escape(&format!(
                        "{}: sync event{}{} → {}",
                        format_offset(from - start),
                        if last_chance { " (lastChance)" } else { "" },
                        if devtools { " from DevTools" } else { "" },
                        outcome_name(*outcome)
                    )),
                );
                if last_chance {
                    let _ = write!(
                        svg,
                        r##"<text class="last-chance-mark" x="{}" y="{}" font-weight="bold">!</text>"##,
                        x0 - 8.0,
                        cy + 4.0
                    );
                }
                if let LogEvent::Completed { next, .. } = &e.event {
                    match next {
                        NextStep::RetryAfter(d) => {
                            let until = e.time.0.saturating_add(d.as_millis() as u64);
                            let _ = write!(
                                svg,
                                r##"<line class="back-off" x1="{cx}" y1="{cy}" x2="{}" y2="{cy}" stroke="#c01c28" stroke-dasharray="4 3"><title>{}</title></line>"##,
                                x(until),
                                escape(&format!(
                                    "{at}: back-off of {} until {}",
                                    format_offset(d.as_millis() as u64),
                                    format_offset(until - start)
                                )),
                            );
                        }
                        NextStep::Removed | NextStep::GaveUp => {
                            let gave_up = matches!(next, NextStep::GaveUp);
                            let _ = write!(
                                svg,
                                r##"<text class="{}" x="{}" y="{}" fill="{}">{}<title>{}</title></text>"##,
                                if gave_up { "gave-up" } else { "done" },
                                cx + 4.0,
                                cy + 4.0,
                                if gave_up { "#c01c28" } else { "#26a269" },
                                if gave_up { "✗" } else { "✓" },
                                escape(&format!(
                                    "{at}: {}",
                                    if gave_up {
                                        "gave up after its last chance"
                                    } else {
                                        "done"
                                    }
                                )),
                            );
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    svg.push_str("</svg>");

    let mut table = String::from(
        "<table><thead><tr><th>time</th><th>origin</th><th>sw</th><th>tag</th><th>event</th></tr></thead><tbody>",
    );
    for e in entries {
        let _ = write!(
            table,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&format_offset(e.time.0 - start)),
            escape(&e.origin.to_string()),
            e.sw.0,
            escape(&e.tag.to_string()),
            escape(&describe(&e.event)),
        );
    }
    table.push_str("</tbody></table>");
    format!(
        "<p>{} log lines, {} registrations; the first at {start} ms on the engine's clock.</p>\n{svg}\n{table}",
        entries.len(),
        rows.len(),
    )
}

fn outcome_name(outcome: DispatchOutcome) -> &'static str {
    match outcome {
        DispatchOutcome::Fulfilled => "fulfilled",
        DispatchOutcome::Rejected => "rejected",
        DispatchOutcome::TimedOut => "timeout",
        DispatchOutcome::WorkerTerminated => "terminated",
        DispatchOutcome::WorkerFailedToStart => "failed-to-start",
        _ => "other",
    }
}

fn outcome_colour(outcome: DispatchOutcome) -> &'static str {
    match outcome {
        DispatchOutcome::Fulfilled => "#26a269",
        DispatchOutcome::Rejected => "#c01c28",
        DispatchOutcome::TimedOut => "#e66100",
        _ => "#77767b",
    }
}

/// A log event in words, for the table.
fn describe(event: &LogEvent) -> String {
    match event {
        LogEvent::Registered => "registered".to_owned(),
        LogEvent::Reregistered { state } => format!("re-registered while {state:?}"),
        LogEvent::Dispatched {
            last_chance,
            previous_attempts,
        } => format!(
            "sync event dispatched (attempt {}{})",
            u64::from(*previous_attempts) + 1,
            if *last_chance { ", lastChance" } else { "" }
        ),
        LogEvent::Completed { outcome, next } => {
            let next = match next {
                NextStep::Removed => "done".to_owned(),
                NextStep::RetryAfter(d) => {
                    format!("retry after {}", format_offset(d.as_millis() as u64))
                }
                NextStep::GaveUp => "gave up".to_owned(),
                NextStep::RunAgain => "runs again (re-registered while firing)".to_owned(),
                other => format!("{other:?}"),
            };
            format!("sync event {}; {next}", outcome_name(*outcome))
        }
        LogEvent::DevToolsDispatched { last_chance } => format!(
            "sync event dispatched from DevTools{}",
            if *last_chance { " (lastChance)" } else { "" }
        ),
        LogEvent::DevToolsCompleted { outcome } => {
            format!("DevTools' sync event {}", outcome_name(*outcome))
        }
        LogEvent::Rejected { name, message } => {
            format!("register() refused: {}: {message}", name.as_str())
        }
        other => format!("{other:?}"),
    }
}

/// `ms` as a short duration: `0 ms`, `1.5 s`, `5 min`, `1 h 2 min`.
fn format_offset(ms: u64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1_000.0)
    } else if ms < 3_600_000 {
        let (m, s) = (ms / 60_000, (ms % 60_000) / 1_000);
        if s == 0 {
            format!("{m} min")
        } else {
            format!("{m} min {s} s")
        }
    } else {
        format!("{} h {} min", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    }
}

fn truncate(s: &str, chars: usize) -> String {
    if s.chars().count() <= chars {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(chars - 1).collect();
        t.push('…');
        t
    }
}

/// `s` as XML text or attribute content.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Not allowed in XML 1.0 text; Tag's Display already escapes them, origins hold none.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}
