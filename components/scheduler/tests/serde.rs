//! With the `serde` feature, log entries (and what they hold) round-trip through JSON: an
//! origin as its serialization, a tag as a string, or as code units when it has a lone
//! surrogate.
#![cfg(feature = "serde")]

use bgsync_scheduler::{DispatchOutcome, LogEntry, LogEvent, NextStep};
use bgsync_types::{DomExceptionName, Origin, SwRegistrationId, Tag, Timestamp};

#[test]
fn log_entries_round_trip_through_json() {
    let entries = vec![
        LogEntry {
            time: Timestamp(5),
            origin: Origin::parse("https://mail.example").unwrap(),
            sw: SwRegistrationId(7),
            tag: Tag::from("send-mail"),
            event: LogEvent::Completed {
                outcome: DispatchOutcome::Rejected,
                next: NextStep::RetryAfter(std::time::Duration::from_secs(300)),
            },
        },
        LogEntry {
            time: Timestamp(6),
            origin: Origin::parse("https://mail.example").unwrap(),
            sw: SwRegistrationId(7),
            tag: Tag::from_utf16(vec![0xD800]),
            event: LogEvent::Rejected {
                name: DomExceptionName::InvalidAccessError,
                message: "no window".into(),
            },
        },
    ];
    let json = serde_json::to_string(&entries).unwrap();
    assert!(
        json.contains(r#""origin":"https://mail.example""#),
        "{json}"
    );
    assert!(json.contains(r#""tag":"send-mail""#), "{json}");
    assert!(json.contains(r#""tag":[55296]"#), "{json}");
    let back: Vec<LogEntry> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, entries);
}
