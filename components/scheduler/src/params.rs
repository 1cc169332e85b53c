use std::time::Duration;

/// The user agent's tunables, with Chromium's values as defaults. Every one may be overridden by
/// the embedder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameters {
    /// Attempts a one-shot registration gets before it is dropped. The last one is dispatched
    /// with `lastChance` true. Default 3.
    pub max_attempts: u32,
    /// The wait after the first failed attempt. Default 5 minutes.
    pub initial_retry_delay: Duration,
    /// Each further failed attempt multiplies the wait by this. Default 3 (5 min, 15 min, …).
    pub retry_delay_factor: u32,
    /// How long one `sync` event may run before the attempt counts as failed. Default 3 minutes.
    pub max_sync_event_duration: Duration,
    /// While events are in flight, the OS wake-up asked for is at most this far away, so a user
    /// agent killed mid-event is woken to fire again. Default 6 minutes.
    pub min_sync_recovery_time: Duration,
    /// The longest tag accepted, in UTF-8 bytes. Default 10,240.
    pub max_tag_bytes: usize,
    /// The most one-shot registrations one origin may hold at once; `None` for no cap. Chromium
    /// has none; our default is 1,000, which no reasonable app reaches and which keeps one
    /// origin from filling the user's disk.
    pub max_registrations_per_origin: Option<usize>,
    /// The most bytes one origin's registrations may take in the store (each counts its tag as
    /// stored, two bytes a UTF-16 code unit, plus [`RECORD_OVERHEAD`] bytes); `None` for no
    /// cap. Chromium has none; our default of 1 MiB holds a thousand 500-byte tags, and keeps
    /// one origin of 10,240-byte tags from filling the disk.
    pub max_bytes_per_origin: Option<u64>,
    /// The most bytes all origins' registrations together may take; `None` for no cap.
    /// Default 64 MiB: many origins cannot together fill the disk either.
    pub max_bytes_total: Option<u64>,
    /// Chromium: the least time between two rounds of one origin's `periodicsync` events, and
    /// the unit periodic intervals snap to (times the engagement penalty). Default 12 hours.
    pub min_periodic_interval: Duration,
}

/// What one registration is counted for in the byte quotas besides its tag: the origin,
/// the ids, the counters and the store's own per-row cost, estimated.
pub const RECORD_OVERHEAD: u64 = 64;

impl Default for Parameters {
    fn default() -> Self {
        Parameters {
            max_attempts: 3,
            initial_retry_delay: Duration::from_secs(5 * 60),
            retry_delay_factor: 3,
            max_sync_event_duration: Duration::from_secs(3 * 60),
            min_sync_recovery_time: Duration::from_secs(6 * 60),
            max_tag_bytes: 10_240,
            max_registrations_per_origin: Some(1_000),
            max_bytes_per_origin: Some(1 << 20),
            max_bytes_total: Some(64 << 20),
            min_periodic_interval: Duration::from_secs(12 * 60 * 60),
        }
    }
}

impl Parameters {
    /// The wait after failed attempt number `failed_attempts` (1-based):
    /// `initial_retry_delay × retry_delay_factor^(failed_attempts − 1)`, saturating.
    pub fn retry_delay(&self, failed_attempts: u32) -> Duration {
        let exponent = failed_attempts.saturating_sub(1);
        self.retry_delay_factor
            .checked_pow(exponent)
            .and_then(|factor| self.initial_retry_delay.checked_mul(factor))
            .unwrap_or(Duration::MAX)
    }

    /// What a registration with `tag` counts for in the byte quotas.
    pub fn footprint(tag: &bgsync_types::Tag) -> u64 {
        (tag.as_utf16().len() as u64) * 2 + RECORD_OVERHEAD
    }

    /// Whether the attempt about to be dispatched, after `failed_attempts` failures, is the last
    /// one the user agent will make for a registration allowed `max_attempts`.
    pub fn is_last_chance(failed_attempts: u32, max_attempts: u32) -> bool {
        failed_attempts.saturating_add(1) >= max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chromium_defaults() {
        let p = Parameters::default();
        assert_eq!(p.max_attempts, 3);
        assert_eq!(p.retry_delay(1), Duration::from_secs(300));
        assert_eq!(p.retry_delay(2), Duration::from_secs(900));
        assert_eq!(p.retry_delay(3), Duration::from_secs(2700));
        assert_eq!(p.max_sync_event_duration, Duration::from_secs(180));
        assert_eq!(p.min_sync_recovery_time, Duration::from_secs(360));
        assert_eq!(p.max_tag_bytes, 10_240);
    }

    #[test]
    fn last_chance_is_false_false_true() {
        let p = Parameters::default();
        let seq: Vec<bool> = (0..3)
            .map(|n| Parameters::is_last_chance(n, p.max_attempts))
            .collect();
        assert_eq!(seq, [false, false, true]);
    }

    #[test]
    fn retry_delay_saturates() {
        let p = Parameters::default();
        assert_eq!(p.retry_delay(u32::MAX), Duration::MAX);
    }
}
