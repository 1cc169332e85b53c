use std::fmt;
use std::time::Duration;

/// A wall-clock instant in milliseconds since the Unix epoch.
///
/// Next-fire times are persisted, so they are wall-clock times, as in Chromium. The core never
/// reads a clock: every input carries the current `Timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The instant `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Timestamp(millis)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at the end of time instead of overflowing.
    pub fn saturating_add(self, d: Duration) -> Self {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturating_add_never_overflows() {
        let t = Timestamp(u64::MAX - 1);
        assert_eq!(
            t.saturating_add(Duration::from_secs(10)),
            Timestamp(u64::MAX)
        );
        assert_eq!(
            Timestamp(1000).saturating_add(Duration::from_secs(2)),
            Timestamp(3000)
        );
    }

    #[test]
    fn duration_since_is_zero_when_reversed() {
        assert_eq!(
            Timestamp(5).saturating_duration_since(Timestamp(9)),
            Duration::ZERO
        );
        assert_eq!(
            Timestamp(9).saturating_duration_since(Timestamp(5)),
            Duration::from_millis(4)
        );
    }
}
