//! The model is an independent oracle: its source uses nothing of the engine's, so a bug in the
//! engine's back-off, byte count, tag order or origin checks cannot hide in both.

use bgsync_model::{is_secure, utf8_bytes, Listener, Params, Settled};

#[test]
fn the_model_imports_nothing_of_the_engine() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for file in ["model.rs", "periodic.rs"] {
        let source = std::fs::read_to_string(dir.join(file)).expect("the model's source");
        for (n, line) in source.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for engine in ["bgsync_", "crate::diff", "super::diff"] {
                assert!(
                    !code.contains(engine),
                    "{file}:{}: the model uses the engine ({engine}): {line}",
                    n + 1
                );
            }
        }
    }
}

#[test]
fn utf8_bytes_counts_as_the_encoding_standard_does() {
    let units = |s: &str| s.encode_utf16().collect::<Vec<u16>>();
    assert_eq!(utf8_bytes(&units("")), 0);
    assert_eq!(utf8_bytes(&units("a")), 1);
    assert_eq!(utf8_bytes(&units("é")), 2);
    assert_eq!(utf8_bytes(&units("\u{FFFD}")), 3);
    assert_eq!(utf8_bytes(&units("📧")), 4);
    // A lone surrogate is encoded as U+FFFD; a low surrogate before a high one pairs with nothing.
    assert_eq!(utf8_bytes(&[0xD800]), 3);
    assert_eq!(utf8_bytes(&[0xDC00, 0xD800]), 6);
    assert_eq!(utf8_bytes(&[0xD800, 0x61]), 4);
    assert_eq!(utf8_bytes(&[0xD83D, 0xDCE7, 0xD800]), 7);
}

#[test]
fn the_back_off_is_chromiums() {
    let p = Params::chromium();
    let minutes: Vec<u64> = (1..=4).map(|n| p.retry_delay(n) / 60_000).collect();
    assert_eq!(minutes, [5, 15, 45, 135]);
    let big = Params {
        retry_delay_factor: 10,
        ..Params::chromium()
    };
    assert_eq!(big.retry_delay(200), u64::MAX, "saturates");
}

#[test]
fn only_a_rejected_wait_until_or_a_dead_worker_fails_an_event() {
    let ran = |wait_until, threw| Listener::Ran { wait_until, threw }.settled();
    assert_eq!(ran(None, false), Settled::Fulfilled);
    assert_eq!(ran(None, true), Settled::Fulfilled);
    assert_eq!(ran(Some(true), true), Settled::Fulfilled);
    assert_eq!(ran(Some(false), false), Settled::Failed);
    assert_eq!(Listener::WorkerFailedToStart.settled(), Settled::Failed);
    assert_eq!(Listener::WorkerDied.settled(), Settled::Failed);
}

#[test]
fn secure_origins() {
    assert!(is_secure("https://a.example"));
    assert!(is_secure("https://a.example:8443"));
    assert!(is_secure("http://localhost:8000"));
    assert!(!is_secure("http://insecure.example"));
}
