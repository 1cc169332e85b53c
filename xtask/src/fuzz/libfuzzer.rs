//! Reading libFuzzer's output: how many inputs ran, and for each crash what it said (the panic
//! message, the sanitizer's ERROR and SUMMARY lines) and where the input was written.

/// What libFuzzer reported about one failing input.
#[derive(Debug, PartialEq, Eq)]
pub struct Crash {
    /// The panic message (from `panicked at` to the note or backtrace that follows it), then
    /// the sanitizer's or libFuzzer's `ERROR` line and its `SUMMARY` line.
    pub message: String,
    /// The input, as libFuzzer wrote it (`Test unit written to PATH`).
    pub artifact: Option<String>,
}

/// The most lines of a panic message kept (the differential's prints the whole scenario).
const MESSAGE_LINES: usize = 30;
/// The longest line kept, in characters.
const LINE_CHARS: usize = 300;

/// How many inputs ran: libFuzzer's final `stat::number_of_executed_units`, or (if the run
/// stopped before printing it) the count on its last status line (`#<n> ...`).
pub fn executions(log: &str) -> u64 {
    let stat = log
        .lines()
        .filter_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .filter_map(|n| n.trim().parse().ok())
        .next_back();
    stat.unwrap_or_else(|| {
        log.lines()
            .filter_map(|l| l.strip_prefix('#'))
            .filter_map(|r| r.split_whitespace().next()?.parse().ok())
            .next_back()
            .unwrap_or(0)
    })
}

/// A field of libFuzzer's last status line (`cov: 5283 ft: 8137 corp: 304/3210b ...`): the
/// word after `name:`.
pub fn status_field<'a>(log: &'a str, name: &str) -> Option<&'a str> {
    let line = log
        .lines()
        .rfind(|l| l.starts_with('#') && l.contains(" cov: "))?;
    let mut words = line.split_whitespace();
    words.find(|w| w.strip_suffix(':') == Some(name))?;
    words.next()
}

/// Every crash in `log`, in order: each report ends where libFuzzer names the file it wrote;
/// a report with no file (the process died first) is kept with none.
pub fn crashes(log: &str) -> Vec<Crash> {
    let lines: Vec<&str> = log.lines().collect();
    let mut out = Vec::new();
    let mut start = 0;
    for (i, line) in lines.iter().enumerate() {
        if let Some((_, path)) = line.split_once("Test unit written to ") {
            out.push(Crash {
                message: describe(&lines[start..i]),
                artifact: Some(path.trim().to_owned()),
            });
            start = i + 1;
        }
    }
    let rest = &lines[start..];
    if rest
        .iter()
        .any(|l| l.contains(" panicked at ") || is_error_line(l))
    {
        out.push(Crash {
            message: describe(rest),
            artifact: None,
        });
    }
    out
}

/// `==1234== ERROR: AddressSanitizer: ...`, `==1234==ERROR: libFuzzer: deadly signal`.
fn is_error_line(line: &str) -> bool {
    line.starts_with("==") && line.contains("ERROR: ")
}

/// The message of one crash report: the last panic in it, then its ERROR and SUMMARY lines.
fn describe(lines: &[&str]) -> String {
    let mut out: Vec<String> = Vec::new();
    if let Some(p) = lines.iter().rposition(|l| l.contains(" panicked at ")) {
        let body = lines[p + 1..]
            .iter()
            .take_while(|l| !ends_panic(l))
            .collect::<Vec<_>>();
        out.push(shorten(lines[p]));
        out.extend(body.iter().take(MESSAGE_LINES).map(|l| shorten(l)));
        if body.len() > MESSAGE_LINES {
            out.push(format!(
                "… ({} more lines in the log)",
                body.len() - MESSAGE_LINES
            ));
        }
    }
    for wanted in [is_error_line as fn(&str) -> bool, |l| {
        l.starts_with("SUMMARY: ")
    }] {
        if let Some(l) = lines.iter().find(|l| wanted(l)) {
            out.push(shorten(l));
        }
    }
    if out.is_empty() {
        // Neither a panic nor a sanitizer report: the last lines are all there is.
        out.extend(
            lines[lines.len().saturating_sub(10)..]
                .iter()
                .map(|l| shorten(l)),
        );
    }
    out.join("\n")
}

/// Where a Rust panic message stops: the note about backtraces, the backtrace, libFuzzer's or
/// the sanitizer's own report.
fn ends_panic(line: &&&str) -> bool {
    line.starts_with("note: ")
        || line.starts_with("stack backtrace:")
        || line.starts_with("==")
        || line.starts_with("SUMMARY: ")
}

fn shorten(line: &str) -> String {
    if line.chars().count() > LINE_CHARS {
        format!(
            "{}… ({} bytes)",
            line.chars().take(LINE_CHARS).collect::<String>(),
            line.len()
        )
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Rust panic in a target, as cargo-fuzz 0.13 and libfuzzer-sys 0.4 print it (the
    /// backtrace shortened).
    const PANIC: &str = "\
INFO: Running with entropic power schedule (0xFF, 100).
INFO: Seed: 2871183471
INFO: Loaded 1 modules   (214077 inline 8-bit counters): 214077 [0x55d0, 0x5600), 
INFO:      126 files found in /work/main/fuzz/corpus/store_open
INFO: seed corpus: files: 129 min: 1b max: 28672b total: 2801664b rss: 52Mb
#64\tpulse  cov: 4121 ft: 5820 corp: 51/1024Kb exec/s: 32 rss: 201Mb
#71\tINITED cov: 4180 ft: 6003 corp: 60/1340Kb exec/s: 35 rss: 210Mb

thread '<unnamed>' panicked at fuzz_targets/store_open.rs:17:38:
a commit on an opened store succeeds: Corrupt { cause: \"database disk image is malformed\" }
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace
==4242== ERROR: libFuzzer: deadly signal
    #0 0x55d0c0 in __sanitizer_print_stack_trace
    #1 0x55d0c1 in fuzzer::PrintStackTrace()
NOTE: libFuzzer has rudimentary signal handlers.
SUMMARY: libFuzzer: deadly signal
MS: 1 ChangeBit-; base unit: 0838e7464fc130e8d0430f5d894e7b28008f1624
artifact_prefix='/work/main/fuzz/artifacts/store_open/'; Test unit written to /work/main/fuzz/artifacts/store_open/crash-7f3c
Base64: U1FMaXRl
stat::number_of_executed_units: 73
stat::average_exec_per_sec:     36
stat::new_units_added:          0
stat::slowest_unit_time_sec:    0
stat::peak_rss_mb:              214
";

    #[test]
    fn a_panic_is_its_message_not_the_backtrace() {
        let crashes = crashes(PANIC);
        assert_eq!(
            crashes,
            vec![Crash {
                message: "thread '<unnamed>' panicked at fuzz_targets/store_open.rs:17:38:\n\
                          a commit on an opened store succeeds: Corrupt { cause: \"database disk image is malformed\" }\n\
                          ==4242== ERROR: libFuzzer: deadly signal\n\
                          SUMMARY: libFuzzer: deadly signal"
                    .into(),
                artifact: Some("/work/main/fuzz/artifacts/store_open/crash-7f3c".into()),
            }]
        );
        assert_eq!(executions(PANIC), 73);
        assert_eq!(status_field(PANIC, "cov"), Some("4180"));
    }

    #[test]
    fn a_sanitizer_report_is_its_error_and_summary() {
        let log = "\
#5\tINITED cov: 10 ft: 10 corp: 1/1b exec/s: 0 rss: 30Mb
=================================================================
==77==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x602000000011 at pc 0x1 bp 0x2 sp 0x3
READ of size 1 at 0x602000000011 thread T0
    #0 0x55 in decode fuzz_targets/decode_row.rs:9:5
SUMMARY: AddressSanitizer: heap-buffer-overflow fuzz_targets/decode_row.rs:9:5 in decode
MS: 2 InsertByte-ChangeBit-; base unit: 00
artifact_prefix='artifacts/decode_row/'; Test unit written to artifacts/decode_row/crash-00aa
";
        let c = crashes(log);
        assert_eq!(c.len(), 1);
        assert_eq!(
            c[0].message,
            "==77==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x602000000011 at pc 0x1 bp 0x2 sp 0x3\n\
             SUMMARY: AddressSanitizer: heap-buffer-overflow fuzz_targets/decode_row.rs:9:5 in decode"
        );
        assert_eq!(
            c[0].artifact.as_deref(),
            Some("artifacts/decode_row/crash-00aa")
        );
        // No final stats: the last status line counts.
        assert_eq!(executions(log), 5);
    }

    #[test]
    fn a_long_panic_message_is_cut_and_says_where_the_rest_is() {
        let mut log =
            String::from("thread '<unnamed>' panicked at fuzz_targets/differential.rs:11:9:\n");
        log.push_str("the engine diverged from the model after step 3\n");
        for i in 0..50 {
            log.push_str(&format!("    Op {i},\n"));
        }
        log.push_str(&format!("{}\n", "x".repeat(400)));
        log.push_str("==9== ERROR: libFuzzer: deadly signal\nSUMMARY: libFuzzer: deadly signal\n");
        let c = crashes(&log);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].artifact, None, "no file was written");
        let lines: Vec<&str> = c[0].message.lines().collect();
        assert_eq!(lines.len(), 1 + MESSAGE_LINES + 1 + 2);
        assert_eq!(lines[MESSAGE_LINES + 1], "… (22 more lines in the log)");
    }

    #[test]
    fn a_clean_run_has_no_crash() {
        let log = "\
#31197\tDONE   cov: 5283 ft: 8137 corp: 304/3210b lim: 98 exec/s: 511 rss: 582Mb
Done 31197 runs in 61 second(s)
stat::number_of_executed_units: 31197
";
        assert!(crashes(log).is_empty());
        assert_eq!(executions(log), 31197);
        assert_eq!(status_field(log, "corp"), Some("304/3210b"));
    }

    #[test]
    fn a_timeout_is_reported() {
        let log = "\
ALARM: working on the last Unit for 31 seconds
       and the timeout value is 30 (use -timeout=N to change)
==5== ERROR: libFuzzer: timeout after 31 seconds
    #0 0x1 in __sanitizer_print_stack_trace
SUMMARY: libFuzzer: timeout
artifact_prefix='a/'; Test unit written to a/timeout-01
";
        let c = crashes(log);
        assert_eq!(
            c[0].message,
            "==5== ERROR: libFuzzer: timeout after 31 seconds\nSUMMARY: libFuzzer: timeout"
        );
    }
}
