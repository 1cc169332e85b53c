//! The e-mail outbox: a message composed offline is sent by the service worker when the network
//! returns. The second run makes the mail server fail twice, showing the 5 and 15 minute
//! back-off and `lastChance` on the third attempt. Everything runs on virtual time.
//!
//! Run it with `cargo run -p bgsync --example outbox`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bgsync::testing::{FixedNetwork, OpenWindows};
use bgsync::{
    BackgroundSync, DispatchOutcome, LogEntry, LogEvent, NextStep, OutcomeReporter,
    RegistrationInfo, ServiceWorkerHost, SyncEventDispatch, VirtualClock,
};
use bgsync_types::{Origin, SwRegistrationId, Tag, Timestamp};
use parking_lot::Mutex;

const START: Timestamp = Timestamp(1_800_000_000_000);
const SW: SwRegistrationId = SwRegistrationId(1);

/// The mail app's service worker, as the engine's host would run it: on `sync` it sends what is
/// in the outbox, and its `waitUntil` promise rejects while the server is down.
struct MailWorker {
    origin: Origin,
    outbox: Mutex<Vec<String>>,
    sent: Mutex<Vec<String>>,
    /// How many more sends the server will refuse.
    server_failures: Mutex<u32>,
    /// What the worker did, one line per event, for the timeline.
    lines: Mutex<VecDeque<String>>,
}

impl ServiceWorkerHost for MailWorker {
    fn registration(&self, sw: SwRegistrationId) -> Option<RegistrationInfo> {
        (sw == SW).then(|| RegistrationInfo {
            origin: self.origin.clone(),
            partition: Default::default(),
            has_active_worker: true,
        })
    }

    fn fire_sync_event(&self, event: SyncEventDispatch, reply: OutcomeReporter) {
        let mut failures = self.server_failures.lock();
        let line = if *failures > 0 {
            *failures -= 1;
            reply.report(DispatchOutcome::Rejected);
            "worker   mail server answered 503; waitUntil() rejects".to_owned()
        } else {
            let messages: Vec<String> = self.outbox.lock().drain(..).collect();
            let line = format!("worker   sent {messages:?}; waitUntil() fulfils");
            self.sent.lock().extend(messages);
            reply.report(DispatchOutcome::Fulfilled);
            line
        };
        let note = if event.last_chance {
            " (told this is the last chance)"
        } else {
            ""
        };
        self.lines.lock().push_back(format!("{line}{note}"));
    }
}

fn stamp(t: Timestamp) -> String {
    let s = t.saturating_duration_since(START).as_secs();
    format!("+{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

struct Timeline {
    sync: BackgroundSync,
    clock: VirtualClock,
    worker: Arc<MailWorker>,
    printed: usize,
}

impl Timeline {
    fn say(&self, who: &str, what: &str) {
        println!("{}  {who:<8} {what}", stamp(self.clock_now()));
    }

    fn clock_now(&self) -> Timestamp {
        bgsync::Clock::now(&self.clock)
    }

    /// Prints the engine's log lines written since the last call, each dispatch followed by what
    /// the worker did with it.
    async fn print_log(&mut self) {
        let log = self.sync.log().await.unwrap_or_default();
        for entry in &log[self.printed..] {
            println!("{}  engine   {}", stamp(entry.time), describe(entry));
            if matches!(entry.event, LogEvent::Dispatched { .. }) {
                if let Some(line) = self.worker.lines.lock().pop_front() {
                    println!("{}  {line}", stamp(entry.time));
                }
            }
        }
        self.printed = log.len();
    }

    /// Lets virtual time run to each wake-up the engine asks for, until it asks for none.
    async fn run_until_idle(&mut self) {
        self.sync.settle().await;
        self.print_log().await;
        while let Ok(Some(at)) = self.sync.next_wake_up().await {
            self.clock.set(at);
            self.sync.settle().await;
            self.print_log().await;
        }
    }
}

fn describe(entry: &LogEntry) -> String {
    let tag = &entry.tag;
    match &entry.event {
        LogEvent::Registered => format!("registered '{tag}' durably; register() resolved"),
        LogEvent::Reregistered { state } => format!("re-registered '{tag}' while {state:?}"),
        LogEvent::Dispatched {
            last_chance,
            previous_attempts,
        } => format!(
            "sync event '{tag}', attempt {}, lastChance = {last_chance}",
            previous_attempts + 1
        ),
        LogEvent::Completed { outcome, next } => {
            let next = match next {
                NextStep::Removed => "registration done and removed".to_owned(),
                NextStep::RetryAfter(d) => format!("retry in {} min", d.as_secs() / 60),
                NextStep::GaveUp => "no attempts left; registration removed".to_owned(),
                NextStep::RunAgain => "re-registered meanwhile; runs again".to_owned(),
                other => format!("{other:?}"),
            };
            format!("attempt {outcome:?}: {next}")
        }
        LogEvent::Unregistered => "service worker unregistered".to_owned(),
        LogEvent::Cleared => "site data cleared".to_owned(),
        LogEvent::StoreFailed { cause } => format!("store failed: {cause}"),
        LogEvent::StoreRecovered { cause, kept } => {
            format!("store rebuilt after damage, {kept} kept: {cause}")
        }
        other => format!("{other:?}"),
    }
}

async fn run(title: &str, server_failures: u32) -> Result<(), Box<dyn std::error::Error>> {
    println!("\n== {title} ==");
    let origin = Origin::parse("https://mail.example")?;
    let worker = Arc::new(MailWorker {
        origin: origin.clone(),
        outbox: Mutex::new(Vec::new()),
        sent: Mutex::new(Vec::new()),
        server_failures: Mutex::new(server_failures),
        lines: Mutex::new(VecDeque::new()),
    });
    let clock = VirtualClock::new(START);
    let sync = BackgroundSync::builder(
        worker.clone(),
        Arc::new(OpenWindows::with([origin.clone()])),
    )
    .clock(Arc::new(clock.clone()))
    .network(Arc::new(FixedNetwork(false)))
    .start()?;
    let mut t = Timeline {
        sync: sync.clone(),
        clock,
        worker: worker.clone(),
        printed: 0,
    };

    t.say("network", "offline");
    worker.outbox.lock().push("Lunch on Friday?".to_owned());
    t.say(
        "page",
        "composed \"Lunch on Friday?\" into the outbox; register('send-mail')",
    );
    sync.register(&origin, SW, "send-mail").await?;
    t.print_log().await;
    let tags: Vec<String> = sync
        .get_tags(&origin, SW)
        .await?
        .iter()
        .map(Tag::to_string)
        .collect();
    t.say("page", &format!("getTags() = {tags:?}"));

    t.clock.advance(Duration::from_secs(2 * 60));
    t.say("network", "online again");
    sync.network_changed(true);
    t.run_until_idle().await;

    let sent = worker.sent.lock().clone();
    t.say("result", &format!("delivered: {sent:?}"));
    sync.shutdown();
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The engine's tracing (spans per call, a line per log entry with its fields): shown with
    // RUST_LOG=bgsync=info (or debug), off by default so the timeline stays readable.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .init();
    run("Run 1: composed offline, sent when the network returns", 0).await?;
    run("Run 2: the mail server fails the first two attempts", 2).await?;
    Ok(())
}
