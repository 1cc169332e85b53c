//! [Web Periodic Background Synchronization](https://wicg.github.io/periodic-background-sync/):
//! periodic sync registrations, their schedule and their `periodicsync` events, beside the
//! one-shot registrations of `scheduler`. Where the spec leaves room, Chromium's choices, each
//! marked `Chromium:`.
//!
//! Chromium's schedule: a registration's effective interval is its `minInterval` rounded up to
//! a multiple of (engagement penalty × 12 h) — penalty 1 for high engagement, 2 for medium and
//! low, 3 for minimal, and no events at all without engagement (suspended, revived when
//! engagement returns). It never fires at registration: first after one effective interval from
//! its anchor (registration, or last fire). An origin gets at most one round of periodic events
//! per 12 h: when one of its registrations fires, the others due within the next 12 h fire with
//! it (coalescing). A failed event retries with the one-shot back-off; success, or retries
//! exhausted, puts it back on its interval; outcomes never remove it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bgsync_store::{RegistrationKey, StoreOp, StoredRegistration};
use bgsync_types::{
    DispatchId, DomException, DomExceptionName, Origin, PermissionState, RequestId, StorageKey,
    SwRegistrationId, SyncKind, Tag, Timestamp,
};

use crate::scheduler::{HashMap, RegisterContext, Staged};
use crate::{DispatchOutcome, DispatchRequest, Effect, LogEntry, LogEvent, Response, Scheduler};

/// Chromium: how much a site is used, as its site-engagement service scores it. It sets how
/// often the site's periodic registrations may fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Engagement {
    /// Not engaged: its periodic registrations are suspended.
    None,
    /// Minimal engagement: intervals snap to multiples of 36 h.
    Minimal,
    /// Low engagement: multiples of 24 h.
    Low,
    /// Medium engagement: multiples of 24 h.
    Medium,
    /// High engagement: multiples of 12 h.
    #[default]
    High,
}

impl Engagement {
    /// Chromium's penalty: the multiple of the 12 h minimum an interval snaps to; `None` when
    /// the origin's periodic registrations do not fire at all.
    pub fn penalty(self) -> Option<u32> {
        match self {
            Engagement::None => None,
            Engagement::Minimal => Some(3),
            Engagement::Low | Engagement::Medium => Some(2),
            Engagement::High => Some(1),
        }
    }

    /// The name `bgsyncTest.setEngagement` and logs use.
    pub fn as_str(self) -> &'static str {
        match self {
            Engagement::None => "none",
            Engagement::Minimal => "minimal",
            Engagement::Low => "low",
            Engagement::Medium => "medium",
            Engagement::High => "high",
        }
    }

    /// The level named `s` (`"none"`, `"minimal"`, `"low"`, `"medium"`, `"high"`).
    pub fn parse(s: &str) -> Option<Engagement> {
        Some(match s {
            "none" => Engagement::None,
            "minimal" => Engagement::Minimal,
            "low" => Engagement::Low,
            "medium" => Engagement::Medium,
            "high" => Engagement::High,
            _ => return None,
        })
    }
}

/// The state of a periodic sync registration (the spec's, without `suspended`, which here is
/// an origin without engagement: its registrations stay pending with no next fire time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum PeriodicState {
    /// Waiting for its next fire time.
    Pending,
    /// A `periodicsync` event is in flight.
    Firing,
    /// `register()` was called while its event was in flight.
    ReregisteredWhileFiring,
}

/// One `PeriodicSyncManager.register(tag, {minInterval})` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodicRegisterCall {
    /// The caller's storage key.
    pub caller: StorageKey,
    /// The `PeriodicSyncManager`'s service worker registration.
    pub sw: SwRegistrationId,
    /// The tag.
    pub tag: Tag,
    /// `minInterval`, in ms as given (after WebIDL's `[EnforceRange] unsigned long long`).
    pub min_interval: Duration,
    /// What the embedder knew; `permission` is the "periodic-background-sync" permission.
    pub context: RegisterContext,
    /// The origin's engagement now.
    pub engagement: Engagement,
}

type Key = (SwRegistrationId, Tag);

#[derive(Debug, Clone)]
struct PeriodicRegistration {
    origin: Origin,
    partition: bgsync_types::Partition,
    min_interval: Duration,
    /// The last fire (or the registration): the interval counts from here.
    anchor: Timestamp,
    state: PeriodicState,
    /// Failed attempts of the current round.
    attempts: u32,
    /// When it fires next (`None`: suspended for want of engagement).
    next_fire: Option<Timestamp>,
    /// Whether `next_fire` is a retry's (a retry is not held by the origin's 12 h gap).
    retrying: bool,
    /// While retrying: when the retry is (or was) due; it is what is written, so that a retry
    /// in flight at a crash is retried after the restart.
    retry_at: Option<Timestamp>,
    /// Attempts a round gets (the parameters' when it was registered).
    max_attempts: u32,
    in_flight: Option<DispatchId>,
    seq: u64,
}

/// The periodic registrations and their schedule.
#[derive(Debug, Default)]
pub(crate) struct Periodic {
    regs: BTreeMap<Key, PeriodicRegistration>,
    /// Each origin's registrations (a round, engagement and permission are per origin).
    by_origin: HashMap<Origin, BTreeSet<Key>>,
    timers: BTreeSet<(Timestamp, Key)>,
    in_flight: HashMap<DispatchId, Key>,
    /// When each origin's periodic events last fired.
    last_fired: HashMap<Origin, Timestamp>,
    engagement: HashMap<Origin, Engagement>,
    /// When the last round of periodic events (of any origin) fired.
    last_round: Option<Timestamp>,
    /// Origins whose "periodic-background-sync" permission was revoked since start-up.
    denied: std::collections::HashSet<Origin>,
    next_dispatch: u64,
    next_seq: u64,
}

/// Periodic dispatch ids have bit 62 set: the one-shot ids stay below 2^62 (`dispatch_id`),
/// a driver's own from 2^63.
const PERIODIC_ID: u64 = 1 << 62;

pub(crate) fn is_periodic(id: DispatchId) -> bool {
    id.0 & PERIODIC_ID != 0 && id.0 < (1 << 63)
}

impl Periodic {
    /// Chromium: the effective interval for `min_interval` at `engagement`.
    fn effective(
        min_interval: Duration,
        engagement: Engagement,
        gap: Duration,
    ) -> Option<Duration> {
        let unit = gap.checked_mul(engagement.penalty()?)?;
        let units = min_interval
            .as_millis()
            .div_ceil(unit.as_millis().max(1))
            .max(1);
        unit.checked_mul(u32::try_from(units).unwrap_or(u32::MAX))
            .or(Some(Duration::MAX))
    }

    fn add(&mut self, key: Key, reg: PeriodicRegistration) {
        self.by_origin
            .entry(reg.origin.clone())
            .or_default()
            .insert(key.clone());
        self.regs.insert(key, reg);
    }

    fn take(&mut self, key: &Key) -> Option<PeriodicRegistration> {
        let reg = self.regs.remove(key)?;
        if let Some(keys) = self.by_origin.get_mut(&reg.origin) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_origin.remove(&reg.origin);
            }
        }
        Some(reg)
    }

    /// The keys of `origin`'s registrations.
    fn keys_of(&self, origin: &Origin) -> Vec<Key> {
        self.by_origin
            .get(origin)
            .map(|k| k.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn engagement_of(&self, origin: &Origin) -> Engagement {
        self.engagement.get(origin).copied().unwrap_or_default()
    }

    /// Recomputes `key`'s next fire time: its anchor plus its effective interval, not before
    /// its origin's last round plus the 12 h gap.
    fn reschedule(&mut self, key: &Key, gap: Duration) {
        let Some(reg) = self.regs.get(key) else {
            return;
        };
        if let Some(t) = reg.next_fire {
            self.timers.remove(&(t, key.clone()));
        }
        if reg.state != PeriodicState::Pending {
            return;
        }
        let engagement = self.engagement_of(&reg.origin);
        let next = if reg.retrying {
            reg.next_fire
        } else {
            Self::effective(reg.min_interval, engagement, gap).map(|eff| {
                let own = reg.anchor.saturating_add(eff);
                match self.last_fired.get(&reg.origin) {
                    Some(last) => own.max(last.saturating_add(gap)),
                    None => own,
                }
            })
        };
        let reg = self.regs.get_mut(key).expect("checked above");
        reg.next_fire = next;
        if let Some(t) = next {
            self.timers.insert((t, key.clone()));
        }
    }

    /// The soonest time a registration is due that can fire then (not of an origin whose
    /// permission was revoked).
    pub(crate) fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers
            .iter()
            .find(|(_, k)| self.regs.get(k).is_some_and(|r| !self.is_denied(&r.origin)))
            .map(|(t, _)| *t)
    }

    /// Chromium: when to wake the browser for periodic events. A round wakes it at most once
    /// per `gap` (12 h) whatever the origins, so a round's wake-up is held until `gap` after
    /// the last round; a retry's is not.
    pub(crate) fn wake_up(&self, gap: Duration) -> Option<Timestamp> {
        let held = self.last_round.map(|t| t.saturating_add(gap));
        let mut soonest: Option<Timestamp> = None;
        for (t, key) in &self.timers {
            if soonest.is_some_and(|s| s <= *t) {
                break;
            }
            let retrying = self.regs.get(key).is_some_and(|r| r.retrying);
            let at = match held {
                Some(h) if !retrying => (*t).max(h),
                _ => *t,
            };
            soonest = Some(soonest.map_or(at, |s| s.min(at)));
        }
        soonest
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

impl Scheduler {
    /// The minimum gap between two rounds of an origin's periodic events (12 h).
    fn periodic_gap(&self) -> Duration {
        self.params().min_periodic_interval
    }

    /// [`register(tag, options)`](https://wicg.github.io/periodic-background-sync/#dom-periodicsyncmanager-register),
    /// with Chromium's checks in Chromium's order.
    pub fn periodic_register(
        &mut self,
        now: Timestamp,
        request: RequestId,
        call: PeriodicRegisterCall,
    ) {
        self.advance(now);
        let key = (call.sw, call.tag.clone());
        let origin = call.caller.origin.clone();
        match self.periodic_register_steps(call) {
            Ok(Some((ops, change))) => self.stage_periodic(ops, request, Some(change)),
            Ok(None) => self.settle(request, Ok(Response::Registered)),
            Err(e) => {
                self.push_log(LogEntry {
                    time: self.now(),
                    origin,
                    sw: key.0,
                    tag: key.1,
                    event: LogEvent::Rejected {
                        name: e.name,
                        message: e.message.clone(),
                    },
                });
                self.settle(request, Err(e));
            }
        }
    }

    /// The steps of register(); returns the writes to make durable before resolving, and the
    /// change they make (`None`: nothing to write).
    fn periodic_register_steps(
        &mut self,
        call: PeriodicRegisterCall,
    ) -> Result<Option<(Vec<StoreOp>, PeriodicChange)>, DomException> {
        let PeriodicRegisterCall {
            caller,
            sw,
            tag,
            min_interval,
            context,
            engagement,
        } = call;
        caller.origin.require_potentially_trustworthy()?;
        self.check_owner(&caller, sw, context.registration_key.as_ref())?;
        // 3. If the registration has no active worker, reject with an InvalidStateError.
        if !context.has_active_worker {
            return Err(DomException::new(
                DomExceptionName::InvalidStateError,
                "Registration failed: the service worker registration has no active worker; wait \
                 for navigator.serviceWorker.ready before registering a periodic sync",
            ));
        }
        // Chromium: a periodic registration needs a top-level window too, checked before the
        // permission, with the tag's length.
        if !context.has_window_client {
            return Err(DomException::new(
                DomExceptionName::InvalidAccessError,
                "Registration failed: a periodic sync can only be registered while a window of \
                 the origin is open",
            ));
        }
        if tag.utf8_len() > self.params().max_tag_bytes {
            return Err(DomException::new(
                DomExceptionName::InvalidAccessError,
                format!(
                    "Registration failed: the tag is {} bytes of UTF-8; the limit is {}",
                    tag.utf8_len(),
                    self.params().max_tag_bytes
                ),
            ));
        }
        // 4. If the "periodic-background-sync" permission is not granted, reject with a
        //    NotAllowedError (Chromium: 'prompt' refuses too; it is denied until granted).
        if context.permission != PermissionState::Granted {
            return Err(DomException::new(
                DomExceptionName::NotAllowedError,
                "Registration failed: the periodic-background-sync permission is not granted for \
                 this origin",
            ));
        }
        let gap = self.periodic_gap();
        let now = self.now();
        let p = &mut self.periodic;
        p.engagement.insert(caller.origin.clone(), engagement);
        let key = (sw, tag.clone());
        if let Some(reg) = p.regs.get_mut(&key) {
            // 5. An existing registration: update its interval if it differs; if firing, it
            //    is re-registered while firing. Either way, resolve.
            if reg.min_interval == min_interval {
                if reg.state == PeriodicState::Firing {
                    reg.state = PeriodicState::ReregisteredWhileFiring;
                }
                return Ok(None);
            }
            // A new interval takes effect once it is durable (found by the differential with a
            // failing store: applied at once, a shorter one fired before its write failed).
            let mut updated = reg.clone();
            updated.min_interval = min_interval;
            let record = record_of(&key, &updated);
            return Ok(Some((
                vec![StoreOp::Put(record)],
                PeriodicChange::Interval(key, min_interval),
            )));
        }
        if let Some(cap) = self.params().max_registrations_per_origin {
            let held = self
                .periodic
                .regs
                .values()
                .filter(|r| r.origin == caller.origin && r.partition == caller.partition)
                .count();
            if held >= cap {
                return Err(DomException::new(
                    DomExceptionName::QuotaExceededError,
                    format!(
                        "Registration failed: {caller} already holds {held} periodic sync \
                         registrations, the most one origin may hold"
                    ),
                ));
            }
        }
        // 6. A new registration, anchored now, pending; it never fires at registration.
        let max_attempts = self.params().max_attempts.max(1);
        let p = &mut self.periodic;
        p.next_seq += 1;
        let reg = PeriodicRegistration {
            origin: caller.origin.clone(),
            partition: caller.partition.clone(),
            min_interval,
            anchor: now,
            state: PeriodicState::Pending,
            attempts: 0,
            next_fire: None,
            retrying: false,
            retry_at: None,
            max_attempts,
            in_flight: None,
            seq: p.next_seq,
        };
        let record = record_of(&key, &reg);
        p.add(key.clone(), reg);
        p.reschedule(&key, gap);
        self.note_sw_key(sw, &caller);
        let effective = Periodic::effective(min_interval, engagement, gap);
        self.push_log(LogEntry {
            time: now,
            origin: caller.origin,
            sw,
            tag,
            event: LogEvent::PeriodicRegistered {
                min_interval,
                effective,
            },
        });
        Ok(Some((vec![StoreOp::Put(record)], PeriodicChange::New(key))))
    }

    /// [`unregister(tag)`](https://wicg.github.io/periodic-background-sync/#dom-periodicsyncmanager-unregister):
    /// removes the registration if there is one; resolves either way (an event in flight runs
    /// to its end; its outcome is ignored).
    pub fn periodic_unregister(
        &mut self,
        now: Timestamp,
        request: RequestId,
        caller: &StorageKey,
        sw: SwRegistrationId,
        tag: Tag,
        registration_key: Option<&StorageKey>,
    ) {
        self.advance(now);
        if let Err(e) = self.check_periodic_caller(caller, sw, registration_key) {
            return self.settle(request, Err(e));
        }
        let key = (sw, tag);
        match self.remove_periodic(&key, LogEvent::PeriodicUnregistered) {
            Some(op) => self.stage_periodic(vec![op], request, None),
            None => self.settle(request, Ok(Response::Registered)),
        }
    }

    /// A secure caller, and `sw` its own when the embedder knows `sw` (a registration it no
    /// longer knows has nothing left to read or remove).
    fn check_periodic_caller(
        &self,
        caller: &StorageKey,
        sw: SwRegistrationId,
        registration_key: Option<&StorageKey>,
    ) -> Result<(), DomException> {
        caller.origin.require_potentially_trustworthy()?;
        match registration_key {
            Some(k) => self.check_owner(caller, sw, Some(k)),
            None => Ok(()),
        }
    }

    /// `PeriodicSyncManager.getTags()`: the tags of `sw`'s periodic registrations, in the order
    /// they were registered.
    pub fn periodic_get_tags(
        &mut self,
        now: Timestamp,
        request: RequestId,
        caller: &StorageKey,
        sw: SwRegistrationId,
        registration_key: Option<&StorageKey>,
    ) {
        self.advance(now);
        let result = self
            .check_periodic_caller(caller, sw, registration_key)
            .map(|()| {
                let mut placed: Vec<(u64, Tag)> = self
                    .periodic
                    .regs
                    .range((sw, Tag::default())..)
                    .take_while(|((s, _), _)| *s == sw)
                    .map(|((_, t), r)| (r.seq, t.clone()))
                    .collect();
                placed.sort_by_key(|(seq, _)| *seq);
                Response::Tags(placed.into_iter().map(|(_, t)| t).collect())
            });
        self.settle(request, result);
    }

    /// The origins holding periodic registrations.
    pub fn periodic_origins(&self) -> Vec<Origin> {
        self.periodic.by_origin.keys().cloned().collect()
    }

    /// The origin's engagement changed: its registrations' intervals snap to the new penalty;
    /// with none they are suspended, and revived when it returns.
    pub fn set_engagement(&mut self, now: Timestamp, origin: &Origin, engagement: Engagement) {
        self.advance(now);
        self.periodic.engagement.insert(origin.clone(), engagement);
        let gap = self.periodic_gap();
        for key in self.periodic.keys_of(origin) {
            self.periodic.reschedule(&key, gap);
        }
        self.fire_due_periodic();
    }

    /// The "periodic-background-sync" permission of `origin` changed. Chromium: revoked
    /// removes the origin's periodic registrations (and that is written).
    pub fn set_periodic_permission(
        &mut self,
        now: Timestamp,
        origin: &Origin,
        state: PermissionState,
    ) {
        self.advance(now);
        if state == PermissionState::Granted {
            self.periodic.denied_remove(origin);
            self.fire_due_periodic();
            return;
        }
        self.periodic.denied_insert(origin);
        let keys = self.periodic.keys_of(origin);
        let ops: Vec<StoreOp> = keys
            .iter()
            .filter_map(|k| self.remove_periodic(k, LogEvent::PeriodicUnregistered))
            .collect();
        if !ops.is_empty() {
            self.stage(None, ops, Staged::Removal { request: None });
        }
    }

    /// Takes `key`'s periodic registration out (abandoning its event in flight); the write that
    /// makes it durable.
    pub(crate) fn remove_periodic(&mut self, key: &Key, event: LogEvent) -> Option<StoreOp> {
        let reg = self.periodic.take(key)?;
        if let Some(t) = reg.next_fire {
            self.periodic.timers.remove(&(t, key.clone()));
        }
        if let Some(id) = reg.in_flight {
            self.periodic.in_flight.remove(&id);
            self.push_effect(Effect::AbandonDispatch { id });
        }
        self.push_log(LogEntry {
            time: self.now(),
            origin: reg.origin,
            sw: key.0,
            tag: key.1.clone(),
            event,
        });
        Some(StoreOp::Delete(RegistrationKey {
            sw: key.0,
            kind: SyncKind::Periodic,
            tag: key.1.clone(),
        }))
    }

    /// Every periodic registration of `sw` goes (unregistered, or its site's data cleared);
    /// the caller writes the removal.
    pub(crate) fn drop_periodic_of(&mut self, sw: SwRegistrationId, event: &LogEvent) {
        let keys: Vec<Key> = self
            .periodic
            .regs
            .range((sw, Tag::default())..)
            .take_while(|((s, _), _)| *s == sw)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.remove_periodic(&key, event.clone());
        }
    }

    /// Loads a periodic record at start-up: pending, anchored where it was, its next fire time
    /// kept (a retry's included).
    pub(crate) fn restore_periodic(&mut self, r: StoredRegistration) {
        let key = (r.sw, r.tag.clone());
        let min_interval = r.periodic_interval.unwrap_or_default();
        let gap = self.periodic_gap();
        let p = &mut self.periodic;
        p.next_seq = p.next_seq.max(r.seq);
        let reg = PeriodicRegistration {
            origin: r.origin.clone(),
            partition: r.partition.clone(),
            min_interval,
            // The record holds the anchor plus `minInterval` (`record_of`).
            anchor: r
                .next_fire
                .0
                .checked_sub(u64::try_from(min_interval.as_millis()).unwrap_or(u64::MAX))
                .map_or(Timestamp(0), Timestamp),
            state: PeriodicState::Pending,
            attempts: r.attempts,
            next_fire: None,
            retrying: r.attempts > 0,
            retry_at: (r.attempts > 0).then_some(r.next_fire),
            max_attempts: r.max_attempts.max(1),
            in_flight: None,
            seq: if r.seq == 0 { p.next_seq + 1 } else { r.seq },
        };
        p.next_seq = p.next_seq.max(reg.seq);
        let retry_at = reg.retrying.then_some(r.next_fire);
        p.add(key.clone(), reg);
        if let Some(t) = retry_at {
            if let Some(reg) = p.regs.get_mut(&key) {
                reg.next_fire = Some(t);
            }
            p.timers.insert((t, key.clone()));
        } else {
            p.reschedule(&key, gap);
        }
        self.note_sw_key(
            r.sw,
            &StorageKey {
                origin: r.origin,
                partition: r.partition,
            },
        );
    }

    /// Ours (see `Scheduler::clock_went_back`): the wall clock went back by `back` ms, and the
    /// periodic schedule keeps the time it had left — anchors (so an interval counts the time
    /// that really passed), next fire times, retries, each origin's last round and the last
    /// round of all (so the 12 h gaps do too); times before 0 are 0. Returns the records to
    /// rewrite, which hold the anchor or the retry time.
    pub(crate) fn periodic_clock_went_back(&mut self, back: u64) -> Vec<StoreOp> {
        let shift = |t: Timestamp| Timestamp(t.0.saturating_sub(back));
        let p = &mut self.periodic;
        p.timers = std::mem::take(&mut p.timers)
            .into_iter()
            .map(|(t, key)| (shift(t), key))
            .collect();
        for r in p.regs.values_mut() {
            r.anchor = shift(r.anchor);
            r.next_fire = r.next_fire.map(shift);
            r.retry_at = r.retry_at.map(shift);
        }
        for t in p.last_fired.values_mut() {
            *t = shift(*t);
        }
        p.last_round = p.last_round.map(shift);
        // Next fire times follow from the anchors (an anchor cannot go below time 0, so a jump
        // to before it keeps less time left than it had: the model's rule too).
        let gap = self.periodic_gap();
        let p = &mut self.periodic;
        let keys: Vec<Key> = p.regs.keys().cloned().collect();
        for key in &keys {
            p.reschedule(key, gap);
        }
        p.regs
            .iter()
            .map(|(k, r)| StoreOp::Put(record_of(k, r)))
            .collect()
    }

    /// The periodic records the store holds (for a rebuilt store).
    pub(crate) fn stored_periodic(&self) -> Vec<StoredRegistration> {
        self.periodic
            .regs
            .iter()
            .map(|(k, r)| record_of(k, r))
            .collect()
    }

    /// Fires the periodic registrations whose time has come, if the user agent is online and
    /// their origin may: per origin, the one due and every other due within the 12 h gap
    /// (Chromium's coalescing), so that the origin is woken once a round.
    pub(crate) fn fire_due_periodic(&mut self) {
        let now = self.now();
        // Called after every input: nothing to do is the common case, and must cost nothing.
        if !self.is_online() || self.periodic.timers.first().is_none_or(|(t, _)| *t > now) {
            return;
        }
        let gap = self.periodic_gap();
        // Due retries fire on their own; an origin with a due registration that is not a
        // retry has a round.
        let (retries, due_origins): (Vec<Key>, Vec<Origin>) = {
            let p = &self.periodic;
            let mut seen = std::collections::HashSet::new();
            let (mut retries, mut origins) = (Vec::new(), Vec::new());
            for (t, key) in &p.timers {
                if *t > now {
                    break;
                }
                let Some(r) = p.regs.get(key) else { continue };
                if p.is_denied(&r.origin) {
                    continue;
                }
                if r.retrying {
                    retries.push((r.seq, key.clone()));
                } else if seen.insert(r.origin.clone()) {
                    origins.push(r.origin.clone());
                }
            }
            retries.sort();
            (retries.into_iter().map(|(_, k)| k).collect(), origins)
        };
        for key in retries {
            self.fire_periodic(&key);
        }
        for origin in due_origins {
            // The round: every registration of the origin due now, and every other (not a
            // retry, and not one whose event ended this very moment) due within the gap.
            let horizon = now.saturating_add(gap);
            let mut keys: Vec<(u64, Key)> = self
                .periodic
                .keys_of(&origin)
                .into_iter()
                .filter_map(|k| {
                    let r = self.periodic.regs.get(&k)?;
                    let t = r.next_fire?;
                    let due = t <= now && !r.retrying;
                    let coalesced = !r.retrying && t <= horizon && r.anchor < now;
                    (r.state == PeriodicState::Pending && (due || coalesced)).then_some((r.seq, k))
                })
                .collect();
            keys.sort();
            self.periodic.last_fired.insert(origin.clone(), now);
            self.periodic.last_round = Some(now);
            for (_, key) in keys {
                self.fire_periodic(&key);
            }
        }
    }

    /// [Fire a periodicsync event](https://wicg.github.io/periodic-background-sync/#fire-a-periodicsync-event)
    /// for `key`: its state becomes firing and the event goes to its worker.
    fn fire_periodic(&mut self, key: &Key) {
        let time_limit = self.params().max_sync_event_duration;
        let now = self.now();
        let p = &mut self.periodic;
        let Some(reg) = p.regs.get_mut(key) else {
            return;
        };
        if let Some(t) = reg.next_fire.take() {
            p.timers.remove(&(t, key.clone()));
        }
        p.next_dispatch += 1;
        let id = DispatchId(PERIODIC_ID | p.next_dispatch);
        // 1. Set the state to firing.
        reg.state = PeriodicState::Firing;
        reg.in_flight = Some(id);
        p.in_flight.insert(id, key.clone());
        let (origin, attempts) = (reg.origin.clone(), reg.attempts);
        self.push_log(LogEntry {
            time: now,
            origin: origin.clone(),
            sw: key.0,
            tag: key.1.clone(),
            event: LogEvent::PeriodicDispatched {
                previous_attempts: attempts,
            },
        });
        // 2. Fire a functional event "periodicsync" with the tag.
        self.push_effect(Effect::Dispatch(DispatchRequest {
            id,
            sw: key.0,
            origin,
            tag: key.1.clone(),
            last_chance: false,
            time_limit,
            kind: SyncKind::Periodic,
        }));
    }

    /// The end of a `periodicsync` event: success (or retries exhausted, or re-registered while
    /// firing) puts it back on its interval, anchored now; a failure retries with the one-shot
    /// back-off. Outcomes never remove it.
    pub(crate) fn periodic_completed(&mut self, id: DispatchId, outcome: DispatchOutcome) {
        let now = self.now();
        let gap = self.periodic_gap();
        let max_attempts = self.params().max_attempts;
        let Some(key) = self.periodic.in_flight.remove(&id) else {
            return;
        };
        let retry_delay = |attempts| self.params().retry_delay(attempts);
        let Some(reg) = self.periodic.regs.get(&key) else {
            return;
        };
        let rerun = reg.state == PeriodicState::ReregisteredWhileFiring;
        let max_attempts = reg.max_attempts.min(max_attempts).max(1);
        let attempts = reg.attempts.saturating_add(1);
        let delay = retry_delay(attempts);
        let reg = self.periodic.regs.get_mut(&key).expect("checked above");
        reg.in_flight = None;
        reg.state = PeriodicState::Pending;
        let retry = !outcome.is_success() && !rerun && attempts < max_attempts;
        if retry {
            reg.attempts = attempts;
            reg.retrying = true;
            reg.retry_at = Some(now.saturating_add(delay));
            reg.next_fire = reg.retry_at;
        } else {
            reg.attempts = 0;
            reg.retrying = false;
            reg.retry_at = None;
            reg.anchor = now;
        }
        let record = record_of(&key, reg);
        let origin = reg.origin.clone();
        if retry {
            let t = now.saturating_add(delay);
            self.periodic.timers.insert((t, key.clone()));
        } else {
            self.periodic.reschedule(&key, gap);
        }
        let next_fire = self.periodic.regs.get(&key).and_then(|r| r.next_fire);
        self.push_log(LogEntry {
            time: now,
            origin,
            sw: key.0,
            tag: key.1.clone(),
            event: LogEvent::PeriodicCompleted {
                outcome,
                retry,
                next_fire,
            },
        });
        self.stage(
            None,
            StoreOp::Put(record),
            Staged::Removal { request: None },
        );
    }

    fn stage_periodic(
        &mut self,
        ops: Vec<StoreOp>,
        request: RequestId,
        change: Option<PeriodicChange>,
    ) {
        self.stage(None, ops, Staged::Periodic { request, change });
    }

    /// A periodic write was acknowledged (`ok`) or failed: a new interval takes effect, or a
    /// new registration is taken back out, so that memory keeps matching the store (and a
    /// caller told UnknownError sees nothing changed).
    pub(crate) fn periodic_write_done(&mut self, change: Option<PeriodicChange>, ok: bool) {
        match (change, ok) {
            (None, _) | (Some(PeriodicChange::New(_)), true) => {}
            (Some(PeriodicChange::New(key)), false) => {
                if let Some(reg) = self.periodic.take(&key) {
                    if let Some(t) = reg.next_fire {
                        self.periodic.timers.remove(&(t, key));
                    }
                }
            }
            // 5. Update the interval; if firing, it is re-registered while firing.
            (Some(PeriodicChange::Interval(key, interval)), true) => {
                let gap = self.periodic_gap();
                let p = &mut self.periodic;
                if let Some(reg) = p.regs.get_mut(&key) {
                    reg.min_interval = interval;
                    if reg.state == PeriodicState::Firing {
                        reg.state = PeriodicState::ReregisteredWhileFiring;
                    }
                    p.reschedule(&key, gap);
                }
                self.fire_due_periodic();
            }
            (Some(PeriodicChange::Interval(..)), false) => {}
        }
    }
}

/// What a periodic registration's write is for.
#[derive(Debug)]
pub(crate) enum PeriodicChange {
    /// A new registration (already in memory; taken out if the write fails).
    New(Key),
    /// A new `minInterval` (applied when the write is acknowledged).
    Interval(Key, Duration),
}

impl Periodic {
    fn is_denied(&self, origin: &Origin) -> bool {
        self.denied.contains(origin)
    }

    fn denied_insert(&mut self, origin: &Origin) {
        self.denied.insert(origin.clone());
    }

    fn denied_remove(&mut self, origin: &Origin) {
        self.denied.remove(origin);
    }
}

/// The stored record of a periodic registration. Its `next_fire` holds a retry's time while
/// retrying (with `attempts` > 0), else the anchor plus `minInterval`: from that the anchor is
/// restored, and the schedule recomputed with the engagement known then.
fn record_of(key: &Key, reg: &PeriodicRegistration) -> StoredRegistration {
    let next_fire = match (reg.retrying, reg.retry_at) {
        (true, Some(t)) => t,
        _ => reg.anchor.saturating_add(reg.min_interval),
    };
    StoredRegistration {
        origin: reg.origin.clone(),
        partition: reg.partition.clone(),
        seq: reg.seq,
        sw: key.0,
        tag: key.1.clone(),
        kind: SyncKind::Periodic,
        attempts: if reg.retrying { reg.attempts.max(1) } else { 0 },
        max_attempts: reg.max_attempts,
        next_fire,
        periodic_interval: Some(reg.min_interval),
    }
}
