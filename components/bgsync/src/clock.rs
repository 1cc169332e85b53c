//! Time for the engine: real in production, virtual in tests.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bgsync_types::Timestamp;
use tokio::sync::watch;

/// A future the driver awaits until a deadline.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The engine's clock: wall-clock time (next-fire times are persisted, so they are wall-clock
/// times) and a way to sleep until one.
///
/// ```
/// use bgsync::{Clock, Sleep};
/// use bgsync_types::Timestamp;
///
/// /// A clock that follows the engine's own time source.
/// struct EngineClock;
/// impl Clock for EngineClock {
///     fn now(&self) -> Timestamp {
///         bgsync::SystemClock.now()
///     }
///     fn sleep_until(&self, deadline: Timestamp) -> Sleep {
///         bgsync::SystemClock.sleep_until(deadline)
///     }
/// }
/// ```
pub trait Clock: Send + Sync + 'static {
    /// The current wall-clock time.
    fn now(&self) -> Timestamp;

    /// A future that completes once [`now`](Clock::now) has reached `deadline`. It is polled on
    /// the engine's tokio runtime, so tokio's timers may be used.
    fn sleep_until(&self, deadline: Timestamp) -> Sleep;
}

/// The system's wall clock, sleeping on tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Timestamp(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
    }

    fn sleep_until(&self, deadline: Timestamp) -> Sleep {
        let wait = deadline.saturating_duration_since(self.now());
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that moves only when told to: tests and simulations run hours of back-off in no
/// time, and never sleep.
///
/// After moving it, call [`BackgroundSync::settle`](crate::BackgroundSync::settle) to wait until
/// the engine has done everything that became due.
#[derive(Debug, Clone)]
pub struct VirtualClock {
    now: Arc<watch::Sender<u64>>,
}

impl VirtualClock {
    /// A clock that reads `start`.
    pub fn new(start: Timestamp) -> Self {
        VirtualClock {
            now: Arc::new(watch::Sender::new(start.0)),
        }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let to = self.now().saturating_add(d);
        self.set(to);
    }

    /// Moves the clock to `t` (never backwards).
    pub fn set(&self, t: Timestamp) {
        self.now.send_modify(|now| *now = (*now).max(t.0));
    }
}

impl Default for VirtualClock {
    fn default() -> Self {
        VirtualClock::new(Timestamp(0))
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Timestamp {
        Timestamp(*self.now.borrow())
    }

    fn sleep_until(&self, deadline: Timestamp) -> Sleep {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            let _ = rx.wait_for(|now| *now >= deadline.0).await;
        })
    }
}
