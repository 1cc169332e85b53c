//! What a DevTools backend needs for its Background Services panel: a recording of Background
//! Sync events shaped like the DevTools protocol's `BackgroundService` domain
//! (<https://chromedevtools.github.io/devtools-protocol/tot/BackgroundService/>).
//!
//! The protocol's commands map onto a [`BackgroundServiceRecorder`]:
//!
//! | protocol                                   | recorder                                   |
//! |--------------------------------------------|--------------------------------------------|
//! | `setRecording(shouldRecord, service)`      | [`set_recording`](BackgroundServiceRecorder::set_recording) |
//! | `startObserving(service)` (stored events)  | [`events`](BackgroundServiceRecorder::events) |
//! | `backgroundServiceEventReceived`           | [`take_new`](BackgroundServiceRecorder::take_new) |
//! | `clearEvents(service)`                     | [`clear`](BackgroundServiceRecorder::clear) |
//!
//! Events are recorded only while recording is on, as Chromium does: the recorder follows the
//! engine's log ([`BackgroundSync::subscribe_log`](crate::BackgroundSync::subscribe_log)) and
//! turns the lines DevTools shows into [`BackgroundServiceEvent`]s with the event names and
//! metadata keys Chromium's panel uses. The recording lives in memory with the recorder (Chromium
//! keeps its recording for three days on disk; an embedder that wants that stores the events,
//! which are plain data).

use bgsync_scheduler::{DispatchOutcome, LogEntry, LogEvent, NextStep};
use bgsync_types::{Origin, SwRegistrationId, Timestamp};

/// The background service an event belongs to (the protocol's `ServiceName`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackgroundService {
    /// `backgroundSync`: one-shot Background Sync.
    BackgroundSync,
}

impl BackgroundService {
    /// The protocol's name for the service.
    pub fn protocol_name(self) -> &'static str {
        match self {
            BackgroundService::BackgroundSync => "backgroundSync",
        }
    }
}

/// One recorded event (the protocol's `BackgroundServiceEvent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackgroundServiceEvent {
    /// When it happened.
    pub timestamp: Timestamp,
    /// The registration's origin.
    pub origin: Origin,
    /// Its service worker registration.
    pub service_worker_registration_id: SwRegistrationId,
    /// The service.
    pub service: BackgroundService,
    /// What happened, in the words DevTools shows ("Registered sync", "Dispatched sync event",
    /// "sync event failed", "Sync event reregistered", "Sync completed").
    pub event_name: String,
    /// The instance: the registration's tag (lone surrogates replaced, for JSON).
    pub instance_id: String,
    /// Key and value pairs, in the order DevTools lists them.
    pub event_metadata: Vec<(String, String)>,
}

impl BackgroundServiceEvent {
    /// The event DevTools records for a log line, or `None` for lines it does not show
    /// (refusals, removals by unregistration or clearing, store trouble, and the end of an event
    /// DevTools itself dispatched).
    pub fn from_log_entry(entry: &LogEntry) -> Option<Self> {
        let (name, metadata): (&str, Vec<(&str, String)>) = match &entry.event {
            LogEvent::Registered => ("Registered sync", vec![]),
            LogEvent::Dispatched {
                last_chance,
                previous_attempts,
            } => (
                "Dispatched sync event",
                vec![
                    ("Last Chance", yes_no(*last_chance)),
                    // Not in Chromium's panel: which attempt this is, counting from 1.
                    ("Attempt", (u64::from(*previous_attempts) + 1).to_string()),
                ],
            ),
            LogEvent::DevToolsDispatched { last_chance } => (
                "Dispatched sync event",
                vec![("Last Chance", yes_no(*last_chance))],
            ),
            LogEvent::Completed { outcome, next } => match next {
                NextStep::RunAgain => ("Sync event reregistered", vec![]),
                NextStep::RetryAfter(delay) => (
                    if outcome.is_success() {
                        "sync event completed"
                    } else {
                        "sync event failed"
                    },
                    {
                        let mut m =
                            vec![("Next Attempt Delay (ms)", delay.as_millis().to_string())];
                        if !outcome.is_success() {
                            m.push(("Failure Reason", status(*outcome).to_owned()));
                        }
                        m
                    },
                ),
                NextStep::Removed | NextStep::GaveUp => (
                    "Sync completed",
                    vec![("Status", status(*outcome).to_owned())],
                ),
                _ => return None,
            },
            _ => return None,
        };
        Some(BackgroundServiceEvent {
            timestamp: entry.time,
            origin: entry.origin.clone(),
            service_worker_registration_id: entry.sw,
            service: BackgroundService::BackgroundSync,
            event_name: name.to_owned(),
            instance_id: entry.tag.to_string_lossy(),
            event_metadata: metadata
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        })
    }
}

fn yes_no(b: bool) -> String {
    if b { "Yes" } else { "No" }.to_owned()
}

/// The words Chromium's panel uses for how an event ended.
fn status(outcome: DispatchOutcome) -> &'static str {
    match outcome {
        DispatchOutcome::Fulfilled => "succeeded",
        DispatchOutcome::Rejected => "waitUntil rejected",
        DispatchOutcome::TimedOut => "timeout",
        // Measured on Chromium 148 (docs/chromium.md): a worker stopped mid-event is "failed".
        DispatchOutcome::WorkerTerminated => "failed",
        DispatchOutcome::WorkerFailedToStart => "failed",
        _ => "unknown error",
    }
}

/// A DevTools recording of Background Sync events; make one with
/// [`BackgroundSync::background_service_recorder`](crate::BackgroundSync::background_service_recorder).
///
/// It starts not recording. The engine never waits for it: log lines it has not read wait in a
/// channel of [`LOG_SUBSCRIPTION_CAPACITY`](crate::LOG_SUBSCRIPTION_CAPACITY) lines, and lines
/// beyond that are dropped and counted in
/// [`EngineStatus::log_lines_dropped`](crate::EngineStatus::log_lines_dropped); call any method now and then
/// (DevTools polls or is woken by the embedder) to keep up.
#[derive(Debug)]
pub struct BackgroundServiceRecorder {
    log: crossbeam_channel::Receiver<LogEntry>,
    recording: bool,
    events: Vec<BackgroundServiceEvent>,
    /// Index in `events` of the first event not yet handed out by `take_new`.
    unseen: usize,
}

impl BackgroundServiceRecorder {
    pub(crate) fn new(log: crossbeam_channel::Receiver<LogEntry>) -> Self {
        BackgroundServiceRecorder {
            log,
            recording: false,
            events: Vec::new(),
            unseen: 0,
        }
    }

    /// Turns recording on or off (`setRecording`). Lines written before the call are handled
    /// under the old setting.
    pub fn set_recording(&mut self, recording: bool) {
        self.pump();
        self.recording = recording;
    }

    /// Whether it is recording (`recordingStateChanged`).
    pub fn is_recording(&mut self) -> bool {
        self.pump();
        self.recording
    }

    /// Every event recorded and not cleared, oldest first (what `startObserving` sends).
    pub fn events(&mut self) -> &[BackgroundServiceEvent] {
        self.pump();
        &self.events
    }

    /// The events recorded since the last call (each one a `backgroundServiceEventReceived`).
    pub fn take_new(&mut self) -> Vec<BackgroundServiceEvent> {
        self.pump();
        let new = self.events[self.unseen..].to_vec();
        self.unseen = self.events.len();
        new
    }

    /// Forgets every recorded event (`clearEvents`); recording stays as it was.
    pub fn clear(&mut self) {
        self.pump();
        self.events.clear();
        self.unseen = 0;
    }

    /// Reads the log lines waiting, keeping what DevTools shows while recording.
    fn pump(&mut self) {
        for entry in self.log.try_iter() {
            if self.recording {
                if let Some(event) = BackgroundServiceEvent::from_log_entry(&entry) {
                    self.events.push(event);
                }
            }
        }
    }
}
