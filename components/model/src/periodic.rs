//! The reference model of Periodic Background Sync
//! (<https://wicg.github.io/periodic-background-sync/>), with Chromium's schedule where the
//! spec leaves it to the user agent: written as plainly as the rules read, over lists.
//!
//! - An interval is `minInterval` rounded up to a whole number (at least one) of units, a unit
//!   being 12 h times the origin's engagement penalty (1 high, 2 medium or low, 3 minimal); an
//!   origin without engagement has no schedule at all.
//! - A registration is due one interval after its anchor (its registration, or its last event),
//!   and not sooner than 12 h after its origin's last round; a retry is due when its back-off
//!   ends.
//! - When the user agent is online and an origin has a due registration, the origin's round
//!   fires it and every other of its registrations due within the next 12 h (a retry only when
//!   due); a round that is not only retries is the origin's last round.
//! - An event that fails is retried after the one-shot back-off until the attempts run out; any
//!   other end (success, attempts exhausted, re-registered while firing) anchors it anew.

use crate::model::{
    utf8_bytes, Caller, Engagement, Exception, Fired, Model, Permission, Settled, SwId, Tag,
};

/// A periodic sync registration.
#[derive(Debug, Clone)]
pub struct PeriodicRegistration {
    /// Its service worker registration.
    pub sw: SwId,
    /// Its tag.
    pub tag: Tag,
    /// `minInterval`, in ms.
    pub min_interval: u64,
    /// When it was registered or its last event ended.
    pub anchor: u64,
    /// Failed attempts of this round.
    pub attempts: u32,
    /// When a failed event's retry is due.
    pub retry_at: Option<u64>,
    /// While its event is in flight: when the event's time limit ends.
    pub deadline: Option<u64>,
    /// Registered again while its event was in flight.
    pub reregistered: bool,
}

/// Chromium: the least time between two rounds of one origin (12 h; the spec's "minimum
/// periodic sync interval for any origin", which it says SHOULD be at least 12 hours).
fn gap(model: &Model) -> u64 {
    model.params.min_periodic_interval
}

impl Model {
    fn engagement_of(&self, origin: &str) -> Engagement {
        self.engagement
            .iter()
            .find(|(o, _)| o == origin)
            .map_or(Engagement::High, |(_, e)| *e)
    }

    /// The interval `r` fires at, or `None` without engagement: the spec's "effective minimum
    /// interval" is left to the user agent. Chromium: `minInterval` rounded up to a whole
    /// number (at least one) of units of 12 h times the engagement penalty.
    fn interval(&self, r: &PeriodicRegistration) -> Option<u64> {
        let origin = self.origin_of(r.sw)?;
        // Chromium: the penalty of each engagement level; none suspends the registration.
        let penalty = match self.engagement_of(origin) {
            Engagement::High => 1,
            Engagement::Medium | Engagement::Low => 2,
            Engagement::Minimal => 3,
            Engagement::None => return None,
        };
        let unit = gap(self) * penalty;
        let units = r.min_interval.div_ceil(unit).max(1);
        Some(unit.saturating_mul(units))
    }

    /// When `r` is due (if pending): the processing loop's "anchor time + minInterval ≤ now"
    /// and "last fire + effective interval ≤ now" for its origin. Chromium: the effective
    /// interval is the rounded one above, the origin's rounds are 12 h apart, and a retry is
    /// due when its back-off ends.
    fn due(&self, r: &PeriodicRegistration) -> Option<u64> {
        if r.deadline.is_some() {
            return None;
        }
        if let Some(t) = r.retry_at {
            return Some(t);
        }
        let own = r.anchor.saturating_add(self.interval(r)?);
        let origin = self.origin_of(r.sw)?;
        let after_round = self
            .last_fired
            .iter()
            .find(|(o, _)| *o == origin)
            .map(|(_, t)| t.saturating_add(gap(self)));
        Some(after_round.map_or(own, |t| own.max(t)))
    }

    fn find_periodic(&self, sw: SwId, tag: &[u16]) -> Option<usize> {
        self.periodic
            .iter()
            .position(|r| r.sw == sw && r.tag == tag)
    }

    /// The "periodic-background-sync" permission of `origin` (prompt until set).
    pub fn periodic_permission(&self, origin: &str) -> Permission {
        self.periodic_permissions
            .iter()
            .find(|(o, _)| o == origin)
            .map_or(Permission::Prompt, |(_, p)| *p)
    }

    /// [`periodicSync.register(tag, {minInterval})`](https://wicg.github.io/periodic-background-sync/#dom-periodicsyncmanager-register)
    /// from `caller` on `sw`. The spec's checks (no active worker, permission not granted, in
    /// the background); Chromium: in Chromium's order (the window and the tag's length before
    /// the permission), and the one-shot tag limit. Ours: the per-origin cap.
    pub fn periodic_register(
        &mut self,
        caller: &Caller,
        sw: SwId,
        tag: &[u16],
        min_interval: u64,
    ) -> Result<(), Exception> {
        self.check_registrant(caller, sw)?;
        if self.in_background(caller) {
            return Err("InvalidAccessError");
        }
        if utf8_bytes(tag) > self.params.max_tag_bytes {
            return Err("InvalidAccessError");
        }
        // Not granted (denied or prompt): NotAllowedError.
        if self.periodic_permission(&caller.origin) != Permission::Granted {
            return Err("NotAllowedError");
        }
        if let Some(i) = self.find_periodic(sw, tag) {
            let r = &mut self.periodic[i];
            r.min_interval = min_interval;
            if r.deadline.is_some() {
                r.reregistered = true;
            }
            // A shorter interval may make it due now: the processing loop fires it.
            self.fire_due_periodic();
            return Ok(());
        }
        let held = self
            .periodic
            .iter()
            .filter(|r| self.origin_of(r.sw) == Some(caller.origin.as_str()))
            .count();
        if self
            .params
            .max_registrations_per_origin
            .is_some_and(|cap| held >= cap)
        {
            return Err("QuotaExceededError");
        }
        self.periodic.push(PeriodicRegistration {
            sw,
            tag: tag.to_vec(),
            min_interval,
            anchor: self.now,
            attempts: 0,
            retry_at: None,
            deadline: None,
            reregistered: false,
        });
        Ok(())
    }

    /// [`periodic_register`](Model::periodic_register) when the store fails the call's write.
    /// Ours: a call that writes (a new registration, or a new `minInterval`) rejects with
    /// UnknownError and changes nothing; one that writes nothing goes as usual.
    pub fn periodic_register_failing_write(
        &mut self,
        caller: &Caller,
        sw: SwId,
        tag: &[u16],
        min_interval: u64,
    ) -> Result<(), Exception> {
        let before = self
            .find_periodic(sw, tag)
            .map(|i| self.periodic[i].min_interval);
        let mut trial = self.clone();
        let result = trial.periodic_register(caller, sw, tag, min_interval);
        if result.is_ok() && before != Some(min_interval) {
            return Err("UnknownError");
        }
        *self = trial;
        result
    }

    /// `periodicSync.unregister(tag)`: removes it if there is one; resolves either way.
    pub fn periodic_unregister(
        &mut self,
        caller: &Caller,
        sw: SwId,
        tag: &[u16],
    ) -> Result<(), Exception> {
        self.check_reader(caller, sw)?;
        self.periodic.retain(|r| !(r.sw == sw && r.tag == tag));
        Ok(())
    }

    /// `periodicSync.getTags()`, in the order of registration.
    pub fn periodic_get_tags(&self, caller: &Caller, sw: SwId) -> Result<Vec<Tag>, Exception> {
        self.check_reader(caller, sw)?;
        Ok(self
            .periodic
            .iter()
            .filter(|r| r.sw == sw)
            .map(|r| r.tag.clone())
            .collect())
    }

    /// The processing loop: fires what is due, if online. Chromium: each due retry on its own,
    /// and each origin's round (its registrations due now, and those due within the next 12 h
    /// that did not just end an event), so that an origin wakes the user agent at most once
    /// every 12 h.
    pub(crate) fn fire_due_periodic(&mut self) {
        if !self.online {
            return;
        }
        let now = self.now;
        let horizon = now.saturating_add(gap(self));
        let mut fire: Vec<usize> = Vec::new();
        let mut origins: Vec<String> = Vec::new();
        for (i, r) in self.periodic.iter().enumerate() {
            let Some(due) = self.due(r) else { continue };
            if due > now {
                continue;
            }
            if r.retry_at.is_some() {
                fire.push(i);
            } else if let Some(o) = self.origin_of(r.sw) {
                if !origins.iter().any(|x| x == o) {
                    origins.push(o.to_owned());
                }
            }
        }
        for origin in &origins {
            for (i, r) in self.periodic.iter().enumerate() {
                if self.origin_of(r.sw) != Some(origin.as_str()) || r.retry_at.is_some() {
                    continue;
                }
                let Some(due) = self.due(r) else { continue };
                if due <= now || (due <= horizon && r.anchor < now) {
                    fire.push(i);
                }
            }
            self.last_fired.retain(|(o, _)| o != origin);
            self.last_fired.push((origin.clone(), now));
            self.last_round = Some(now);
        }
        for i in fire {
            let deadline = now.saturating_add(self.params.max_event_duration);
            let r = &mut self.periodic[i];
            r.deadline = Some(deadline);
            self.fired.push(Fired {
                sw: r.sw,
                tag: r.tag.clone(),
                last_chance: false,
                periodic: true,
            });
        }
    }

    /// The `periodicsync` event of (`sw`, `tag`) ended. The spec: success, retries exhausted
    /// or re-registered while firing → pending with a new anchor; otherwise back off and retry.
    /// Chromium: the one-shot back-off and attempt limit (the spec's "max retries").
    pub fn settle_periodic(&mut self, sw: SwId, tag: &[u16], how: Settled) {
        let Some(i) = self.find_periodic(sw, tag) else {
            return;
        };
        if self.periodic[i].deadline.take().is_none() {
            return;
        }
        let now = self.now;
        let max_attempts = self.params.max_attempts.max(1);
        let r = &mut self.periodic[i];
        let attempts = r.attempts + 1;
        if how == Settled::Failed && !r.reregistered && attempts < max_attempts {
            r.attempts = attempts;
            r.retry_at = Some(now.saturating_add(self.params.retry_delay(attempts)));
        } else {
            r.attempts = 0;
            r.retry_at = None;
            r.anchor = now;
        }
        r.reregistered = false;
    }

    /// Periodic events in flight.
    pub fn periodic_in_flight(&self) -> Vec<(SwId, Tag)> {
        let mut v: Vec<_> = self
            .periodic
            .iter()
            .filter(|r| r.deadline.is_some())
            .map(|r| (r.sw, r.tag.clone()))
            .collect();
        v.sort();
        v
    }

    /// The next time something periodic happens: a time limit, or (online) a due time.
    pub(crate) fn periodic_next(&self) -> Option<u64> {
        let deadline = self.periodic.iter().filter_map(|r| r.deadline).min();
        let due = if self.online {
            self.periodic.iter().filter_map(|r| self.due(r)).min()
        } else {
            None
        };
        [deadline, due].into_iter().flatten().min()
    }

    /// Time limits that ended by `t` count as failed events.
    pub(crate) fn periodic_time_outs(&mut self, t: u64) {
        let ended: Vec<(SwId, Tag)> = self
            .periodic
            .iter()
            .filter(|r| r.deadline.is_some_and(|d| d <= t))
            .map(|r| (r.sw, r.tag.clone()))
            .collect();
        for (sw, tag) in ended {
            self.settle_periodic(sw, &tag, Settled::Failed);
        }
    }

    /// The engagement of `origin` changed.
    pub fn set_engagement(&mut self, origin: &str, level: Engagement) {
        self.engagement.retain(|(o, _)| o != origin);
        self.engagement.push((origin.to_owned(), level));
        self.fire_due_periodic();
    }

    /// "periodic-background-sync" for `origin` changed: granted, due registrations may fire;
    /// anything else revokes it and its periodic registrations go (the spec; Chromium too).
    pub fn set_periodic_permission(&mut self, origin: &str, state: Permission) {
        self.periodic_permissions.retain(|(o, _)| o != origin);
        self.periodic_permissions.push((origin.to_owned(), state));
        if state == Permission::Granted {
            self.fire_due_periodic();
        } else {
            let gone: Vec<SwId> = self
                .workers
                .iter()
                .filter(|w| w.origin == *origin)
                .map(|w| w.sw)
                .collect();
            self.periodic.retain(|r| !gone.contains(&r.sw));
        }
    }

    /// A restart: events in flight are lost; what was written stays (the anchor, a retry).
    /// Chromium: each origin's last round is not stored, so it is forgotten. Due registrations
    /// fire once online.
    pub(crate) fn periodic_restart(&mut self) {
        for r in &mut self.periodic {
            r.deadline = None;
            r.reregistered = false;
        }
        self.last_fired.clear();
        self.last_round = None;
        self.fire_due_periodic();
    }

    /// Chromium: the OS wake-up for periodic events: a round's is held until 12 h after the last
    /// round (of any origin); a retry's is not.
    pub(crate) fn periodic_wake_up(&self) -> Option<u64> {
        let held = self.last_round.map(|t| t.saturating_add(gap(self)));
        self.periodic
            .iter()
            .filter_map(|r| {
                let due = self.due(r)?;
                Some(match held {
                    Some(h) if r.retry_at.is_none() => due.max(h),
                    _ => due,
                })
            })
            .min()
    }
}
